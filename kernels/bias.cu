/*
 * bias.cu - the per-channel bias of linear and convolution layers on
 * [outer, channels, inner]: the addition (forward) and the channel sums
 * (the bias gradient). Kernels first, then the backend entries.
 *
 * y, bias, x and out are in the entry's dtype: each kernel is a template
 * over that storage type T (kernels/dtype.cuh), widening what it reads to
 * f32 (to double in the sums) and rounding each stored value once, so the
 * bf16 and f16 entries compute what the f32 entry computes on the widened
 * input.
 *
 * bias_add: a grid-stride loop over every element.
 *
 * channel_sum, two layouts, both deterministic (each output is written by
 * one block, and the order of its additions depends only on the shape):
 * - inner > 1 (a convolution's dy, [N, K, OH * OW]): one block per channel
 *   (grid-stride over channels). The block's threads walk the channel's
 *   outer * inner elements in order, so a warp reads consecutive elements
 *   of one row; each thread accumulates its share in double, then
 *   cudl__block_sum (kernels/reduce.cuh) adds the 256 partial sums.
 * - inner == 1 (a linear layer's dy, [rows, OUT], and a channels-last
 *   convolution's, [N * OH * OW, K]): a channel's elements are `channels`
 *   apart, so one block per channel would read one element per 32-byte
 *   sector. Instead the rows shape of kernels/rows.cuh: threads run along
 *   channels (a warp reads consecutive elements of a row), a block adds
 *   its threads' sums of a channel in order from shared memory, and a
 *   long matrix is split into parts (one block per column tile alone
 *   left a few blocks to read [N * OH * OW, K], tens of MiB, serially),
 *   whose double partial sums a second kernel adds in order per channel.
 *
 * Why double per thread: a thread adds up to (outer * inner) / 256 terms
 * serially (hundreds for CIFAR-sized layers, tens of thousands for large
 * ones), where float's error grows with the count; in double it stays far
 * below float's resolution and the result matches the CPU reference
 * (src/cpu/cpu_gemm.c, a double sum per channel) to about one float
 * rounding. The final tree of 256 partial sums is short, so
 * cudl__block_sum's float tree adds at most a few roundings; the inner ==
 * 1 path adds its partial sums in double throughout. The kernels are
 * bound by memory bandwidth; double adds (fast on Hopper) cost nothing.
 */
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rows.cuh"

namespace {

template <class T>
__global__ void bias_add_kernel(T *y, const T *bias, int64_t channels,
                                int64_t inner, int64_t n) {
  for (int64_t k = CUDL_GRID_START; k < n; k += CUDL_GRID_STRIDE) {
    const float b = cudl__load(bias, (k / inner) % channels);
    cudl__store(y, k, cudl__load(y, k) + b);
  }
}

// Block b sums channels b, b + gridDim.x, ...; blockDim.x threads.
template <class T>
__global__ void channel_sum_kernel(const T *x, T *out, int64_t outer,
                                   int64_t channels, int64_t inner) {
  const int64_t m = outer * inner;
  // Element e = o * inner + i of a channel; a thread's next element is
  // blockDim.x further on, i.e. (step_o, step_i) in (o, i): no division in
  // the loop.
  const int64_t step_o = blockDim.x / inner, step_i = blockDim.x % inner;
  for (int64_t c = blockIdx.x; c < channels; c += gridDim.x) {
    double sum = 0.0;
    int64_t o = threadIdx.x / inner, i = threadIdx.x % inner;
    for (int64_t e = threadIdx.x; e < m; e += blockDim.x) {
      sum += cudl__load(x, (o * channels + c) * inner + i);
      o += step_o;
      i += step_i;
      if (i >= inner) {
        i -= inner;
        ++o;
      }
    }
    const float total = cudl__block_sum((float)sum);
    if (threadIdx.x == 0) cudl__store(out, c, total);
    __syncthreads();  // cudl__block_sum's shared memory is reused next
  }
}

// inner == 1: x is [rows, channels]; block (tile, p) of the rows shape
// sums part p of its channels' rows: into out when that is the whole
// (one part), else into partial[c * parts + p].
template <class T>
__global__ void column_sum_kernel(const T *x, T *out, double *partial,
                                  int64_t rows, int64_t channels) {
  const int64_t c = cudl__rows_channel();
  double sum = 0.0;
  if (c < channels)
    for (int64_t r = cudl__rows_first(); r < rows; r += cudl__rows_step())
      sum += cudl__load(x, r * channels + c);
  sum = cudl__column_sum(sum);
  if (threadIdx.y == 0 && c < channels) {
    if (gridDim.y == 1)
      cudl__store(out, c, (float)sum);  // the f32 sum, then T
    else
      partial[c * gridDim.y + blockIdx.y] = sum;
  }
}

// out[c] = channel c's parts, added in order.
template <class T>
__global__ void column_finish_kernel(const double *partial, int parts,
                                     int64_t channels, T *out) {
  for (int64_t c = CUDL_GRID_START; c < channels; c += CUDL_GRID_STRIDE) {
    double sum = 0.0;
    for (int p = 0; p < parts; ++p) sum += partial[c * parts + p];
    cudl__store(out, c, (float)sum);
  }
}

unsigned capped_grid(int64_t blocks) {
  if (blocks < 1) blocks = 1;
  if (blocks > CUDL_MAX_GRID) blocks = CUDL_MAX_GRID;
  return (unsigned)blocks;
}

// ---- the entries' bodies, one per storage type T ----

template <class T>
cudl_status bias_add(cudl_context *ctx, void *y, const void *bias,
                     int64_t outer, int64_t channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  CUDA_ENTER(ctx, s);
  if (n == 0) return CUDL_OK;
  bias_add_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__typed<T>(y), cudl__typed<T>(bias), channels, inner, n);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status channel_sum(cudl_context *ctx, const void *x, void *out,
                        int64_t outer, int64_t channels, int64_t inner) {
  CUDA_ENTER(ctx, s);
  if (channels == 0) return CUDL_OK;
  if (outer == 0 || inner == 0) {  // empty channels: sums of nothing, +0
    CUDL_CUDA_TRY(
        ctx, cudaMemsetAsync(out, 0, (size_t)channels * sizeof(T), s->stream));
    return CUDL_OK;
  }
  if (inner == 1) {
    const cudl__rows_shape shape = cudl__rows_shape_for(outer, channels);
    Scratch<double> partial(s);
    if (shape.parts > 1)
      CUDL_CUDA_TRY(ctx,
                    partial.alloc(ctx, (size_t)channels * (size_t)shape.parts));
    column_sum_kernel<<<shape.grid, shape.block, 0, s->stream>>>(
        cudl__typed<T>(x), cudl__typed<T>(out), partial.get(), outer, channels);
    if (shape.parts > 1)
      column_finish_kernel<<<cudl__grid_for(channels), CUDL_BLOCK_SIZE, 0,
                             s->stream>>>(partial.get(), shape.parts, channels,
                                          cudl__typed<T>(out));
  } else {
    channel_sum_kernel<<<capped_grid(channels), CUDL_BLOCK_SIZE, 0,
                         s->stream>>>(cudl__typed<T>(x), cudl__typed<T>(out),
                                      outer, channels, inner);
  }
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

// ---- entries ----

CUDL_CUDA_FLOATS(bias_add,
                 (cudl_context * ctx, void *y, const void *bias, int64_t outer,
                  int64_t channels, int64_t inner),
                 bias_add, (ctx, y, bias, outer, channels, inner))
CUDL_CUDA_FLOATS(channel_sum,
                 (cudl_context * ctx, const void *x, void *out, int64_t outer,
                  int64_t channels, int64_t inner),
                 channel_sum, (ctx, x, out, outer, channels, inner))
