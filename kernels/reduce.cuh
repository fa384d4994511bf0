/*
 * reduce.cuh - the one reduction pattern the kernels share: each thread
 * accumulates its grid-stride share, then the block sums the threads'
 * values with warp shuffles and one shared-memory pass. The order of the
 * additions depends only on the launch shape, so results are reproducible.
 */
#ifndef CUDL_REDUCE_CUH
#define CUDL_REDUCE_CUH

#include "kernels/launch.cuh"

/* Blocks for a reduction of n elements to per-block partial sums: one per
 * 4 * CUDL_BLOCK_SIZE elements, 1 to 1024, so that one thread can add the
 * partials in order. */
static inline int cudl__reduce_parts(int64_t n) {
  int64_t parts = (n + CUDL_BLOCK_SIZE * 4 - 1) / (CUDL_BLOCK_SIZE * 4);
  if (parts > 1024) parts = 1024;
  return parts < 1 ? 1 : (int)parts;
}

/* Sum of v (float or double) over the block (blockDim.x a multiple of 32,
 * at most 1024); the result is valid in thread 0. */
template <class T>
__device__ __forceinline__ T cudl__block_sum(T v) {
  __shared__ T warp_sums[32];
  const unsigned lane = threadIdx.x % 32u, warp = threadIdx.x / 32u;
  for (int offset = 16; offset > 0; offset /= 2)
    v += __shfl_down_sync(0xffffffffu, v, offset);
  if (lane == 0) warp_sums[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32u ? warp_sums[lane] : T(0);
    for (int offset = 16; offset > 0; offset /= 2)
      v += __shfl_down_sync(0xffffffffu, v, offset);
  }
  return v;
}

/* The same pattern for a value that is more than one number (the count,
 * mean and squared deviations of batch norm's statistics): T has
 * `void merge(const T &)`, `T shfl_down(int offset) const` (each member
 * through __shfl_down_sync) and zero for its value-initialised state. The
 * merges go in the order cudl__block_sum adds; valid in thread 0. */
template <class T>
__device__ __forceinline__ T cudl__block_merge(T v) {
  __shared__ T warp_values[32];
  const unsigned lane = threadIdx.x % 32u, warp = threadIdx.x / 32u;
  for (int offset = 16; offset > 0; offset /= 2) v.merge(v.shfl_down(offset));
  if (lane == 0) warp_values[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32u ? warp_values[lane] : T();
    for (int offset = 16; offset > 0; offset /= 2)
      v.merge(v.shfl_down(offset));
  }
  return v;
}

/* Maximum of v over the block, NaN winning (a row with NaN stays NaN);
 * valid in thread 0. */
__device__ __forceinline__ float cudl__nan_max(float a, float b) {
  return (a > b || isnan(a)) ? a : b;
}

__device__ __forceinline__ float cudl__block_max(float v) {
  __shared__ float warp_max[32];
  const unsigned lane = threadIdx.x % 32u, warp = threadIdx.x / 32u;
  for (int offset = 16; offset > 0; offset /= 2)
    v = cudl__nan_max(v, __shfl_down_sync(0xffffffffu, v, offset));
  if (lane == 0) warp_max[warp] = v;
  __syncthreads();
  if (warp == 0) {
    v = lane < blockDim.x / 32u ? warp_max[lane] : warp_max[0];
    for (int offset = 16; offset > 0; offset /= 2)
      v = cudl__nan_max(v, __shfl_down_sync(0xffffffffu, v, offset));
  }
  return v;
}

#endif /* CUDL_REDUCE_CUH */
