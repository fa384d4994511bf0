/*
 * pooling_kernels.cu - pooling on CUDA.
 *
 * Forward: one thread per output element. Backward gathers: one thread per
 * input element visits the windows that cover it, in a fixed order, so no
 * atomics are needed and the result is deterministic (the CPU scatters
 * instead: the two are written independently). Max pooling's choice is
 * recomputed from x with the forward's rule: the first maximum in
 * row-major window order, the first NaN winning over numbers.
 */
#include "kernels/launch.cuh"
#include "kernels/pooling_kernels.h"
#include "kernels/reduce.cuh"

namespace {

__device__ int64_t window_argmax(const cudl_pool2d_geometry g,
                                 const float *plane, int64_t oh, int64_t ow) {
  const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  int64_t best = -1;
  float best_v = 0.0f;
  for (int64_t i = 0; i < g.kh; ++i) {
    const int64_t h = h0 + i;
    if (h < 0 || h >= g.h) continue;
    for (int64_t j = 0; j < g.kw; ++j) {
      const int64_t w = w0 + j;
      if (w < 0 || w >= g.w) continue;
      const float v = plane[h * g.w + w];
      if (best < 0 || (!isnan(best_v) && (v > best_v || isnan(v)))) {
        best = h * g.w + w;
        best_v = v;
      }
    }
  }
  return best;
}

__device__ int64_t window_count(const cudl_pool2d_geometry g, int64_t oh,
                                int64_t ow) {
  if (g.count_include_pad) return g.kh * g.kw;
  const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
  const int64_t h1 = min(h0 + g.kh, g.h), w1 = min(w0 + g.kw, g.w);
  return (h1 - max(h0, (int64_t)0)) * (w1 - max(w0, (int64_t)0));
}

__global__ void pool_forward_kernel(const cudl_pool2d_geometry g, int is_max,
                                    const float *x, float *y) {
  const int64_t total = g.n * g.c * g.oh * g.ow;
  for (int64_t o = CUDL_GRID_START; o < total; o += CUDL_GRID_STRIDE) {
    const int64_t ow = o % g.ow, oh = (o / g.ow) % g.oh, p = o / (g.ow * g.oh);
    const float *plane = x + p * g.h * g.w;
    if (is_max) {
      y[o] = plane[window_argmax(g, plane, oh, ow)];
    } else {
      const int64_t h0 = oh * g.sh - g.ph, w0 = ow * g.sw - g.pw;
      float sum = 0.0f;
      for (int64_t h = max(h0, (int64_t)0); h < min(h0 + g.kh, g.h); ++h)
        for (int64_t w = max(w0, (int64_t)0); w < min(w0 + g.kw, g.w); ++w)
          sum += plane[h * g.w + w];
      y[o] = sum / (float)window_count(g, oh, ow);
    }
  }
}

// First and last output index along one dimension whose window covers
// input position `pos` (empty when first > last).
__device__ void covering(int64_t pos, int64_t pad, int64_t kernel,
                         int64_t stride, int64_t out, int64_t *first,
                         int64_t *last) {
  const int64_t lo = pos + pad - kernel + 1;
  *first = lo <= 0 ? 0 : (lo + stride - 1) / stride;
  *last = min((pos + pad) / stride, out - 1);
}

__global__ void pool_backward_kernel(const cudl_pool2d_geometry g, int is_max,
                                     const float *x, const float *dy,
                                     float *dx) {
  const int64_t total = g.n * g.c * g.h * g.w;
  for (int64_t e = CUDL_GRID_START; e < total; e += CUDL_GRID_STRIDE) {
    const int64_t w = e % g.w, h = (e / g.w) % g.h, p = e / (g.w * g.h);
    const float *up = dy + p * g.oh * g.ow;
    int64_t oh0, oh1, ow0, ow1;
    covering(h, g.ph, g.kh, g.sh, g.oh, &oh0, &oh1);
    covering(w, g.pw, g.kw, g.sw, g.ow, &ow0, &ow1);
    float sum = 0.0f;
    for (int64_t oh = oh0; oh <= oh1; ++oh)
      for (int64_t ow = ow0; ow <= ow1; ++ow) {
        if (is_max) {
          if (window_argmax(g, x + p * g.h * g.w, oh, ow) == h * g.w + w)
            sum += up[oh * g.ow + ow];
        } else {
          sum += up[oh * g.ow + ow] / (float)window_count(g, oh, ow);
        }
      }
    dx[e] = sum;
  }
}

// One block per row: the mean of `cols` elements.
__global__ void global_avg_forward_kernel(const float *x, float *y,
                                          int64_t rows, int64_t cols) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    float sum = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      sum += x[r * cols + i];
    sum = cudl_block_sum(sum);
    if (threadIdx.x == 0) y[r] = sum / (float)cols;
    __syncthreads();  // the block sum's shared memory is reused next row
  }
}

__global__ void global_avg_backward_kernel(const float *dy, float *dx,
                                           int64_t rows, int64_t cols) {
  const int64_t total = rows * cols;
  for (int64_t i = CUDL_GRID_START; i < total; i += CUDL_GRID_STRIDE)
    dx[i] = dy[i / cols] / (float)cols;
}

}  // namespace

extern "C" cudaError_t cudl_launch_pool2d_forward(cudaStream_t stream,
                                                  const cudl_pool2d_geometry *g,
                                                  int is_max, const float *x,
                                                  float *y) {
  (void)cudaGetLastError();  // report this launch's status, not an older one
  pool_forward_kernel<<<cudl_grid_for(g->n * g->c * g->oh * g->ow),
                        CUDL_BLOCK_SIZE, 0, stream>>>(*g, is_max, x, y);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_pool2d_backward(
    cudaStream_t stream, const cudl_pool2d_geometry *g, int is_max,
    const float *x, const float *dy, float *dx) {
  (void)cudaGetLastError();
  pool_backward_kernel<<<cudl_grid_for(g->n * g->c * g->h * g->w),
                         CUDL_BLOCK_SIZE, 0, stream>>>(*g, is_max, x, dy, dx);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_global_avg_pool_forward(
    cudaStream_t stream, const float *x, float *y, int64_t rows, int64_t cols) {
  const unsigned blocks =
      (unsigned)(rows < CUDL_MAX_GRID ? rows : CUDL_MAX_GRID);
  (void)cudaGetLastError();
  global_avg_forward_kernel<<<blocks, CUDL_BLOCK_SIZE, 0, stream>>>(x, y, rows,
                                                                    cols);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_global_avg_pool_backward(cudaStream_t stream,
                                                            const float *dy,
                                                            float *dx,
                                                            int64_t rows,
                                                            int64_t cols) {
  (void)cudaGetLastError();
  global_avg_backward_kernel<<<cudl_grid_for(rows * cols), CUDL_BLOCK_SIZE, 0,
                               stream>>>(dy, dx, rows, cols);
  return cudaGetLastError();
}
