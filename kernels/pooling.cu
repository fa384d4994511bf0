/*
 * pooling.cu - pooling on CUDA (cudl/pooling.h): 2-D max and average
 * pooling and global average pooling, forward and backward. Kernels
 * first, then the backend entries.
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

template <class I, class T>
__device__ I window_argmax(const Geometry<I> &g, const T *plane, I oh, I ow) {
  const I h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  I best = -1;
  float best_v = 0.0f;
  for (I i = 0; i < g.kh; ++i) {
    const I h = h0 + i;
    if (h < 0 || h >= g.h) continue;
    for (I j = 0; j < g.kw; ++j) {
      const I w = w0 + j;
      if (w < 0 || w >= g.w) continue;
      const float v = cudl__load(plane, h * g.w + w);
      if (best < 0 || (!isnan(best_v) && (v > best_v || isnan(v)))) {
        best = h * g.w + w;
        best_v = v;
      }
    }
  }
  return best;
}

template <class I>
__device__ I window_count(const Geometry<I> &g, I oh, I ow) {
  if (g.count_include_pad) return g.kh * g.kw;
  const I h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  const I h1 = min(h0 + g.kh, g.h), w1 = min(w0 + g.kw, g.w);
  return (h1 - max(h0, (I)0)) * (w1 - max(w0, (I)0));
}

template <class I, class T>
__global__ void pool_forward_kernel(const Geometry<I> g, int is_max, const T *x,
                                    T *y) {
  const I total = g.n * g.c * g.oh * g.ow;
  for (I o = (I)(blockIdx.x * blockDim.x + threadIdx.x); o < total;
       o += (I)(gridDim.x * blockDim.x)) {
    const I ow = o % g.ow, oh = (o / g.ow) % g.oh, p = o / (g.ow * g.oh);
    const T *plane = x + (int64_t)p * g.h * g.w;
    if (is_max) {
      const I chosen = window_argmax(g, plane, oh, ow);
      cudl__store(y, o, cudl__load(plane, chosen));
    } else {
      const I h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
      float sum = 0.0f;
      for (I h = max(h0, (I)0); h < min(h0 + g.kh, g.h); ++h)
        for (I w = max(w0, (I)0); w < min(w0 + g.kw, g.w); ++w)
          sum += cudl__load(plane, h * g.w + w);
      cudl__store(y, o, sum / (float)window_count(g, oh, ow));
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

template <class I, class T>
__global__ void pool_backward_kernel(const Geometry<I> g, int is_max,
                                     const T *x, const T *dy, T *dx) {
  const I total = g.n * g.c * g.h * g.w;
  for (I e = (I)(blockIdx.x * blockDim.x + threadIdx.x); e < total;
       e += (I)(gridDim.x * blockDim.x)) {
    const I w = e % g.w, h = (e / g.w) % g.h, p = e / (g.w * g.h);
    const T *up = dy + (int64_t)p * g.oh * g.ow;
    I oh0, oh1, ow0, ow1;
    covering(h, g.ph, g.kh, g.sh, g.oh, &oh0, &oh1);
    covering(w, g.pw, g.kw, g.sw, g.ow, &ow0, &ow1);
    float sum = 0.0f;
    for (I oh = oh0; oh <= oh1; ++oh)
      for (I ow = ow0; ow <= ow1; ++ow) {
        if (is_max) {
          if (window_argmax(g, x + (int64_t)p * g.h * g.w, oh, ow) ==
              h * g.w + w)
            sum += cudl__load(up, oh * g.ow + ow);
        } else {
          sum +=
              cudl__load(up, oh * g.ow + ow) / (float)window_count(g, oh, ow);
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
template <class I, class T>
__global__ void pool_backward_disjoint_kernel(const Geometry<I> g, int is_max,
                                              const T *x, const T *dy, T *dx) {
  const I total = g.n * g.c * g.oh * g.ow;
  for (I o = (I)(blockIdx.x * blockDim.x + threadIdx.x); o < total;
       o += (I)(gridDim.x * blockDim.x)) {
    const I ow = o % g.ow, oh = (o / g.ow) % g.oh, p = o / (g.ow * g.oh);
    const int64_t offset = (int64_t)p * g.h * g.w;
    const I chosen = is_max ? window_argmax(g, x + offset, oh, ow) : -1;
    const float value =
        is_max ? cudl__load(dy, o)
               : cudl__load(dy, o) / (float)window_count(g, oh, ow);
    const I h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
    for (I h = max(h0, (I)0); h < min(h0 + g.kh, g.h); ++h)
      for (I w = max(w0, (I)0); w < min(w0 + g.kw, g.w); ++w)
        cudl__store(dx, offset + h * g.w + w,
                    (!is_max || h * g.w + w == chosen) ? value : 0.0f);
  }
}

// Whether the windows leave some input uncovered (whose gradient is 0).
bool leaves_gaps(const cudl_pool2d_geometry &g) {
  return g.ph != 0 || g.pw != 0 || g.sh != g.kh || g.sw != g.kw ||
         g.oh * g.sh != g.h || g.ow * g.sw != g.w;
}

template <class I, class T>
cudl_status pool_backward(cudl_context *ctx, cudaStream_t stream,
                          const cudl_pool2d_geometry &g, int is_max, const T *x,
                          const T *dy, T *dx) {
  const Geometry<I> gi = geometry_as<I>(g);
  if (g.sh >= g.kh && g.sw >= g.kw) {
    if (leaves_gaps(g))
      CUDL_CUDA_TRY(
          ctx, cudaMemsetAsync(
                   dx, 0, (size_t)(g.n * g.c * g.h * g.w) * sizeof(T), stream));
    pool_backward_disjoint_kernel<I>
        <<<cudl__grid_for(g.n * g.c * g.oh * g.ow), CUDL_BLOCK_SIZE, 0,
           stream>>>(gi, is_max, x, dy, dx);
  } else {
    pool_backward_kernel<I>
        <<<cudl__grid_for(g.n * g.c * g.h * g.w), CUDL_BLOCK_SIZE, 0, stream>>>(
            gi, is_max, x, dy, dx);
  }
  return CUDL_CUDA_LAUNCHED(ctx);
}

// One block per row: the mean of `cols` elements.
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

template <class T>
__global__ void global_avg_backward_kernel(const T *dy, T *dx, int64_t rows,
                                           int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = CUDL_GRID_START; i < total; i += CUDL_GRID_STRIDE)
    cudl__store(dx, i, cudl__load(dy, i / cols) / (float)cols);
}

// ---- the entries' bodies, one per storage type T ----

template <class T>
cudl_status pool2d_forward(cudl_context *ctx, const cudl_pool2d_geometry *g,
                           int is_max, const void *x, void *y) {
  const unsigned grid = cudl__grid_for(g->n * g->c * g->oh * g->ow);
  CUDA_ENTER(ctx, s);
  if (fits_int32(*g))
    pool_forward_kernel<int32_t><<<grid, CUDL_BLOCK_SIZE, 0, s->stream>>>(
        geometry_as<int32_t>(*g), is_max, cudl__typed<T>(x), cudl__typed<T>(y));
  else
    pool_forward_kernel<int64_t><<<grid, CUDL_BLOCK_SIZE, 0, s->stream>>>(
        geometry_as<int64_t>(*g), is_max, cudl__typed<T>(x), cudl__typed<T>(y));
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status pool2d_backward(cudl_context *ctx, const cudl_pool2d_geometry *g,
                            int is_max, const void *x, const void *dy,
                            void *dx) {
  CUDA_ENTER(ctx, s);
  return fits_int32(*g)
             ? pool_backward<int32_t>(ctx, s->stream, *g, is_max,
                                      cudl__typed<T>(x), cudl__typed<T>(dy),
                                      cudl__typed<T>(dx))
             : pool_backward<int64_t>(ctx, s->stream, *g, is_max,
                                      cudl__typed<T>(x), cudl__typed<T>(dy),
                                      cudl__typed<T>(dx));
}

template <class T>
cudl_status global_avg_pool_forward(cudl_context *ctx, const void *x, void *y,
                                    int64_t rows, int64_t cols) {
  const unsigned blocks =
      (unsigned)(rows < CUDL_MAX_GRID ? rows : CUDL_MAX_GRID);
  CUDA_ENTER(ctx, s);
  global_avg_forward_kernel<<<blocks, CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__typed<T>(x), cudl__typed<T>(y), rows, cols);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status global_avg_pool_backward(cudl_context *ctx, const void *dy,
                                     void *dx, int64_t rows, int64_t cols) {
  CUDA_ENTER(ctx, s);
  global_avg_backward_kernel<<<cudl__grid_for(rows * cols), CUDL_BLOCK_SIZE, 0,
                               s->stream>>>(cudl__typed<T>(dy),
                                            cudl__typed<T>(dx), rows, cols);
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
                 (cudl_context * ctx, const void *x, void *y, int64_t rows,
                  int64_t cols),
                 global_avg_pool_forward, (ctx, x, y, rows, cols))
CUDL_CUDA_FLOATS(global_avg_pool_backward,
                 (cudl_context * ctx, const void *dy, void *dx, int64_t rows,
                  int64_t cols),
                 global_avg_pool_backward, (ctx, dy, dx, rows, cols))
