/*
 * pooling.cu - pooling on CUDA (cudl/pooling.h): 2-D max and average
 * pooling over NCHW or channels-last (NHWC) and global average pooling,
 * forward and backward. Kernels first, then the backend entries.
 *
 * Each kernel is a template over the storage type T of x, y, dy and dx
 * (kernels/dtype.cuh): values are widened to f32 on loading, the
 * arithmetic is f32 and each stored value is rounded once, so the bf16 and
 * f16 entries compute what the f32 entry computes on the widened input.
 *
 * Forward: one thread per output element. Backward: where windows do not
 * overlap, one thread per output writes its window; where they do, one
 * thread per input element gathers from the windows that cover it, in a
 * fixed order. Neither needs atomics, so results are deterministic (the CPU
 * scatters instead: the two are written independently). Max pooling's
 * choice is recomputed from x with the forward's rule, on the widened
 * values: the first maximum in row-major window order, the first NaN
 * winning over numbers.
 *
 * The 2-D kernels are templates over the layout too: threads take elements
 * in the order they lie in memory, [n, c, h, w] or [n, h, w, c], so
 * channels-last threads of a warp handle consecutive channels of one
 * pixel and their loads and stores are coalesced; only where a plane's
 * elements lie (locate) and how far apart (spatial_step) differ.
 *
 * Global average pooling on [outer, cols, inner]: NCHW (inner == 1) is
 * one block per row of cols; channels-last (inner = c) one thread per
 * (o, i) adding x[o, 0..cols, i] in order, a warp reading consecutive
 * channels.
 */
#include "cuda/cuda_internal.h"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"

namespace {

// The geometry in the index type the kernels compute with: 32-bit when
// every index fits (64-bit division and remainder per element held these
// kernels to a quarter of cuDNN's speed on an H200), else 64-bit.
template <class I>
struct Geometry {
  I n, c, h, w, oh, ow, kh, kw, sh, sw, ph, pw;
  int count_include_pad;
};

template <class I>
Geometry<I> geometry_as(const cudl_pool2d_geometry &g) {
  return {(I)g.n,  (I)g.c,  (I)g.h,  (I)g.w,  (I)g.oh, (I)g.ow, (I)g.kh,
          (I)g.kw, (I)g.sh, (I)g.sw, (I)g.ph, (I)g.pw, g.count_include_pad};
}

bool fits_int32(const cudl_pool2d_geometry &g) {
  const int64_t limit = INT32_MAX;
  return g.n * g.c * g.h * g.w <= limit && g.n * g.c * g.oh * g.ow <= limit &&
         g.h + g.ph + g.kh <= limit && g.w + g.pw + g.kw <= limit &&
         g.oh * g.sh <= limit && g.ow * g.sw <= limit;
}

// Where element k of x (or y) lies, for an enumeration of [n * c planes,
// rows, cols] (NCHW) or [n, rows, cols, c] (channels-last), rows x cols
// being h x w or oh x ow: its spatial position and the first element of
// its channel plane in x (dx) and in y (dy). Spatial neighbours in a plane
// are spatial_step() apart: 1, or c channels-last.
template <class I>
struct Site {
  I row, col;
  int64_t x_base, y_base;
};

template <bool ChannelsLast, class I>
__device__ __forceinline__ I spatial_step(const Geometry<I> &g) {
  return ChannelsLast ? g.c : (I)1;
}

template <bool ChannelsLast, class I>
__device__ __forceinline__ Site<I> locate(const Geometry<I> &g, I k, I rows,
                                          I cols) {
  I q = k, c = 0;
  if (ChannelsLast) {
    c = q % g.c;
    q /= g.c;
  }
  Site<I> at;
  at.col = q % cols;
  q /= cols;
  at.row = q % rows;
  q /= rows;  // the plane (NCHW) or the image (channels-last)
  const int64_t channels = ChannelsLast ? g.c : 1;
  at.x_base = (int64_t)q * g.h * g.w * channels + c;
  at.y_base = (int64_t)q * g.oh * g.ow * channels + c;
  return at;
}

// The spatial index h * w_size + w of the window's choice in `plane`
// (elements `step` apart).
template <class I, class T>
__device__ I window_argmax(const Geometry<I> &g, const T *plane, I step, I oh,
                           I ow) {
  const I h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  I best = -1;
  float best_v = 0.0f;
  for (I i = 0; i < g.kh; ++i) {
    const I h = h0 + i;
    if (h < 0 || h >= g.h) continue;
    for (I j = 0; j < g.kw; ++j) {
      const I w = w0 + j;
      if (w < 0 || w >= g.w) continue;
      const float v = cudl__load(plane, (h * g.w + w) * step);
      if (best < 0 || (!isnan(best_v) && (v > best_v || isnan(v)))) {
        best = h * g.w + w;
        best_v = v;
      }
    }
  }
  return best;
}

// With padding counted, the window clipped to the padded input (a ceil-mode
// window may run past the right padding: PyTorch's divisor); else the
// elements inside the input.
template <class I>
__device__ I window_count(const Geometry<I> &g, I oh, I ow) {
  const I h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  if (g.count_include_pad)
    return (min(h0 + g.kh, g.h + g.ph) - h0) * (min(w0 + g.kw, g.w + g.pw) - w0);
  const I h1 = min(h0 + g.kh, g.h), w1 = min(w0 + g.kw, g.w);
  return (h1 - max(h0, (I)0)) * (w1 - max(w0, (I)0));
}

// One thread per output o, in y's order.
template <bool ChannelsLast, class I, class T>
__global__ void pool_forward_kernel(const Geometry<I> g, int is_max, const T *x,
                                    T *y) {
  const I total = g.n * g.c * g.oh * g.ow, step = spatial_step<ChannelsLast>(g);
  for (I o = (I)(blockIdx.x * blockDim.x + threadIdx.x); o < total;
       o += (I)(gridDim.x * blockDim.x)) {
    const Site<I> at = locate<ChannelsLast>(g, o, g.oh, g.ow);
    const T *plane = x + at.x_base;
    if (is_max) {
      const I chosen = window_argmax(g, plane, step, at.row, at.col);
      cudl__store(y, o, cudl__load(plane, chosen * step));
    } else {
      const I h0 = at.row * g.sh - g.ph, w0 = at.col * g.sw - g.pw;
      float sum = 0.0f;
      for (I h = max(h0, (I)0); h < min(h0 + g.kh, g.h); ++h)
        for (I w = max(w0, (I)0); w < min(w0 + g.kw, g.w); ++w)
          sum += cudl__load(plane, (h * g.w + w) * step);
      cudl__store(y, o, sum / (float)window_count(g, at.row, at.col));
    }
  }
}

// First and last output index along one dimension whose window covers
// input position `pos` (empty when first > last).
template <class I>
__device__ void covering(I pos, I pad, I kernel, I stride, I out, I *first,
                         I *last) {
  const I lo = pos + pad - kernel + 1;
  *first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  *last = min((pos + pad) / stride, out - 1);
}

// One thread per input element e, in x's order.
template <bool ChannelsLast, class I, class T>
__global__ void pool_backward_kernel(const Geometry<I> g, int is_max,
                                     const T *x, const T *dy, T *dx) {
  const I total = g.n * g.c * g.h * g.w, step = spatial_step<ChannelsLast>(g);
  for (I e = (I)(blockIdx.x * blockDim.x + threadIdx.x); e < total;
       e += (I)(gridDim.x * blockDim.x)) {
    const Site<I> at = locate<ChannelsLast>(g, e, g.h, g.w);
    const I h = at.row, w = at.col;
    const T *up = dy + at.y_base;
    I oh0, oh1, ow0, ow1;
    covering(h, g.ph, g.kh, g.sh, g.oh, &oh0, &oh1);
    covering(w, g.pw, g.kw, g.sw, g.ow, &ow0, &ow1);
    float sum = 0.0f;
    for (I oh = oh0; oh <= oh1; ++oh)
      for (I ow = ow0; ow <= ow1; ++ow) {
        if (is_max) {
          if (window_argmax(g, x + at.x_base, step, oh, ow) == h * g.w + w)
            sum += cudl__load(up, (oh * g.ow + ow) * step);
        } else {
          sum += cudl__load(up, (oh * g.ow + ow) * step) /
                 (float)window_count(g, oh, ow);
        }
      }
    cudl__store(dx, e, sum);
  }
}

// Windows that do not overlap (stride >= kernel in both dimensions, as in
// the usual 2x2 stride 2): each input lies in at most one window, so one
// thread per output writes its whole window, finding the maximum once
// rather than once per input element. The values are those the gather
// above computes. Inputs that no window covers are zeroed beforehand.
template <bool ChannelsLast, class I, class T>
__global__ void pool_backward_disjoint_kernel(const Geometry<I> g, int is_max,
                                              const T *x, const T *dy, T *dx) {
  const I total = g.n * g.c * g.oh * g.ow, step = spatial_step<ChannelsLast>(g);
  for (I o = (I)(blockIdx.x * blockDim.x + threadIdx.x); o < total;
       o += (I)(gridDim.x * blockDim.x)) {
    const Site<I> at = locate<ChannelsLast>(g, o, g.oh, g.ow);
    const I chosen =
        is_max ? window_argmax(g, x + at.x_base, step, at.row, at.col) : -1;
    const float value =
        is_max ? cudl__load(dy, o)
               : cudl__load(dy, o) / (float)window_count(g, at.row, at.col);
    const I h0 = at.row * g.sh - g.ph, w0 = at.col * g.sw - g.pw;
    for (I h = max(h0, (I)0); h < min(h0 + g.kh, g.h); ++h)
      for (I w = max(w0, (I)0); w < min(w0 + g.kw, g.w); ++w)
        cudl__store(dx, at.x_base + (h * g.w + w) * step,
                    (!is_max || h * g.w + w == chosen) ? value : 0.0f);
  }
}

// Whether the windows leave some input uncovered (whose gradient is 0).
bool leaves_gaps(const cudl_pool2d_geometry &g) {
  return g.ph != 0 || g.pw != 0 || g.sh != g.kh || g.sw != g.kw ||
         g.oh * g.sh != g.h || g.ow * g.sw != g.w;
}

template <bool ChannelsLast, class I, class T>
void pool_forward(cudaStream_t stream, const cudl_pool2d_geometry &g,
                  int is_max, const T *x, T *y) {
  pool_forward_kernel<ChannelsLast, I>
      <<<cudl__grid_for(g.n * g.c * g.oh * g.ow), CUDL_BLOCK_SIZE, 0, stream>>>(
          geometry_as<I>(g), is_max, x, y);
}

template <bool ChannelsLast, class I, class T>
cudl_status pool_backward(cudl_context *ctx, cudaStream_t stream,
                          const cudl_pool2d_geometry &g, int is_max, const T *x,
                          const T *dy, T *dx) {
  const Geometry<I> gi = geometry_as<I>(g);
  if (g.sh >= g.kh && g.sw >= g.kw) {
    if (leaves_gaps(g))
      CUDL_CUDA_TRY(
          ctx, cudaMemsetAsync(
                   dx, 0, (size_t)(g.n * g.c * g.h * g.w) * sizeof(T), stream));
    pool_backward_disjoint_kernel<ChannelsLast, I>
        <<<cudl__grid_for(g.n * g.c * g.oh * g.ow), CUDL_BLOCK_SIZE, 0,
           stream>>>(gi, is_max, x, dy, dx);
  } else {
    pool_backward_kernel<ChannelsLast, I>
        <<<cudl__grid_for(g.n * g.c * g.h * g.w), CUDL_BLOCK_SIZE, 0, stream>>>(
            gi, is_max, x, dy, dx);
  }
  return CUDL_CUDA_LAUNCHED(ctx);
}

// inner == 1: one block per row, the mean of its `cols` elements.
template <class T>
__global__ void global_avg_forward_kernel(const T *x, T *y, int64_t rows,
                                          int64_t cols) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      sum += cudl__load(x, r * cols + i);
    sum = cudl__block_sum(sum);
    if (threadIdx.x == 0) cudl__store(y, r, sum / (float)cols);
    __syncthreads();  // the block sum's shared memory is reused next row
  }
}

// inner > 1 (channels-last): one thread per output (o, i), adding its
// column in order; a warp reads consecutive i of one x[o, j, :].
template <class T>
__global__ void global_avg_forward_strided_kernel(const T *x, T *y,
                                                  int64_t outer, int64_t cols,
                                                  int64_t inner) {
  const int64_t total = outer * inner;
  for (int64_t t = CUDL_GRID_START; t < total; t += CUDL_GRID_STRIDE) {
    const T *column = x + (t / inner) * cols * inner + t % inner;
    float sum = 0.0f;
    for (int64_t j = 0; j < cols; ++j) sum += cudl__load(column, j * inner);
    cudl__store(y, t, sum / (float)cols);
  }
}

template <class T>
__global__ void global_avg_backward_kernel(const T *dy, T *dx, int64_t rows,
                                           int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = CUDL_GRID_START; i < total; i += CUDL_GRID_STRIDE)
    cudl__store(dx, i, cudl__load(dy, i / cols) / (float)cols);
}

template <class T>
__global__ void global_avg_backward_strided_kernel(const T *dy, T *dx,
                                                   int64_t outer, int64_t cols,
                                                   int64_t inner) {
  const int64_t total = outer * cols * inner, plane = cols * inner;
  for (int64_t e = CUDL_GRID_START; e < total; e += CUDL_GRID_STRIDE)
    cudl__store(dx, e,
                cudl__load(dy, (e / plane) * inner + e % inner) / (float)cols);
}

// ---- the entries' bodies, one per storage type T ----

template <class T>
cudl_status pool2d_forward(cudl_context *ctx, const cudl_pool2d_geometry *g,
                           int is_max, const void *x, void *y) {
  const T *tx = cudl__typed<T>(x);
  T *ty = cudl__typed<T>(y);
  const bool narrow = fits_int32(*g);
  CUDA_ENTER(ctx, s);
  if (g->channels_last) {
    if (narrow)
      pool_forward<true, int32_t>(s->stream, *g, is_max, tx, ty);
    else
      pool_forward<true, int64_t>(s->stream, *g, is_max, tx, ty);
  } else {
    if (narrow)
      pool_forward<false, int32_t>(s->stream, *g, is_max, tx, ty);
    else
      pool_forward<false, int64_t>(s->stream, *g, is_max, tx, ty);
  }
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status pool2d_backward(cudl_context *ctx, const cudl_pool2d_geometry *g,
                            int is_max, const void *x, const void *dy,
                            void *dx) {
  const T *tx = cudl__typed<T>(x), *tdy = cudl__typed<T>(dy);
  T *tdx = cudl__typed<T>(dx);
  const bool narrow = fits_int32(*g);
  CUDA_ENTER(ctx, s);
  if (g->channels_last)
    return narrow ? pool_backward<true, int32_t>(ctx, s->stream, *g, is_max, tx,
                                                 tdy, tdx)
                  : pool_backward<true, int64_t>(ctx, s->stream, *g, is_max, tx,
                                                 tdy, tdx);
  return narrow ? pool_backward<false, int32_t>(ctx, s->stream, *g, is_max, tx,
                                                tdy, tdx)
                : pool_backward<false, int64_t>(ctx, s->stream, *g, is_max, tx,
                                                tdy, tdx);
}

template <class T>
cudl_status global_avg_pool_forward(cudl_context *ctx, const void *x, void *y,
                                    int64_t outer, int64_t cols,
                                    int64_t inner) {
  CUDA_ENTER(ctx, s);
  if (inner == 1) {
    const unsigned blocks =
        (unsigned)(outer < CUDL_MAX_GRID ? outer : CUDL_MAX_GRID);
    global_avg_forward_kernel<<<blocks, CUDL_BLOCK_SIZE, 0, s->stream>>>(
        cudl__typed<T>(x), cudl__typed<T>(y), outer, cols);
  } else {
    global_avg_forward_strided_kernel<<<cudl__grid_for(outer * inner),
                                        CUDL_BLOCK_SIZE, 0, s->stream>>>(
        cudl__typed<T>(x), cudl__typed<T>(y), outer, cols, inner);
  }
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status global_avg_pool_backward(cudl_context *ctx, const void *dy,
                                     void *dx, int64_t outer, int64_t cols,
                                     int64_t inner) {
  const unsigned grid = cudl__grid_for(outer * cols * inner);
  CUDA_ENTER(ctx, s);
  if (inner == 1)
    global_avg_backward_kernel<<<grid, CUDL_BLOCK_SIZE, 0, s->stream>>>(
        cudl__typed<T>(dy), cudl__typed<T>(dx), outer, cols);
  else
    global_avg_backward_strided_kernel<<<grid, CUDL_BLOCK_SIZE, 0, s->stream>>>(
        cudl__typed<T>(dy), cudl__typed<T>(dx), outer, cols, inner);
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

// ---- entries ----

CUDL_CUDA_FLOATS(pool2d_forward,
                 (cudl_context * ctx, const cudl_pool2d_geometry *g, int is_max,
                  const void *x, void *y),
                 pool2d_forward, (ctx, g, is_max, x, y))
CUDL_CUDA_FLOATS(pool2d_backward,
                 (cudl_context * ctx, const cudl_pool2d_geometry *g, int is_max,
                  const void *x, const void *dy, void *dx),
                 pool2d_backward, (ctx, g, is_max, x, dy, dx))
CUDL_CUDA_FLOATS(global_avg_pool_forward,
                 (cudl_context * ctx, const void *x, void *y, int64_t outer,
                  int64_t cols, int64_t inner),
                 global_avg_pool_forward, (ctx, x, y, outer, cols, inner))
CUDL_CUDA_FLOATS(global_avg_pool_backward,
                 (cudl_context * ctx, const void *dy, void *dx, int64_t outer,
                  int64_t cols, int64_t inner),
                 global_avg_pool_backward, (ctx, dy, dx, outer, cols, inner))
