/*
 * init.cu - fill, uniform and normal initialisation on CUDA: kernels,
 * then the backend entries. Fill takes f32, bf16 and f16 data (the value
 * rounded once to the dtype, dtype.cuh); uniform and normal are f32 only,
 * as they initialise the f32 master weights.
 *
 * The random kernels give thread work in Philox blocks: block b makes the
 * four numbers of elements 4b..4b+3 with the same header the CPU backend
 * uses (src/core/philox.h), so both devices produce the same bits.
 * Storage comes from the context's pool (256-byte aligned), so a block's
 * four floats are one aligned float4 store unless the tensor ends inside it.
 */
#include "core/philox.h"
#include "cuda/cuda_internal.h"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"

namespace {

template <typename T>
__global__ void fill_kernel(T *dst, int64_t n, float value) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    cudl__store(dst, i, value);
}

__device__ __forceinline__ void store4(float *dst, int64_t base, int64_t n,
                                       float4 v) {
  if (base + 4 <= n) {
    *reinterpret_cast<float4 *>(dst + base) = v;
  } else {
    const float parts[4] = {v.x, v.y, v.z, v.w};
    for (int k = 0; base + k < n; ++k) dst[base + k] = parts[k];
  }
}

__global__ void uniform_kernel(float *dst, int64_t n, uint64_t seed,
                               uint64_t offset, float low, float high) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = CUDL_GRID_START; b < blocks; b += CUDL_GRID_STRIDE) {
    cudl_philox_block r = cudl_philox_at(seed, offset + (uint64_t)b);
    float4 v = make_float4(cudl_uniform_from_bits(r.v[0], low, high),
                           cudl_uniform_from_bits(r.v[1], low, high),
                           cudl_uniform_from_bits(r.v[2], low, high),
                           cudl_uniform_from_bits(r.v[3], low, high));
    store4(dst, 4 * b, n, v);
  }
}

__global__ void normal_kernel(float *dst, int64_t n, uint64_t seed,
                              uint64_t offset, float mean, float stddev) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = CUDL_GRID_START; b < blocks; b += CUDL_GRID_STRIDE) {
    cudl_philox_block r = cudl_philox_at(seed, offset + (uint64_t)b);
    float4 v =
        make_float4(cudl_normal_from_bits(r.v[0], r.v[1], 0, mean, stddev),
                    cudl_normal_from_bits(r.v[0], r.v[1], 1, mean, stddev),
                    cudl_normal_from_bits(r.v[2], r.v[3], 0, mean, stddev),
                    cudl_normal_from_bits(r.v[2], r.v[3], 1, mean, stddev));
    store4(dst, 4 * b, n, v);
  }
}

template <typename T>
cudl_status fill(cudl_context *ctx, void *dst, int64_t n, float value) {
  CUDA_ENTER(ctx, s);
  fill_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__typed<T>(dst), n, value);
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

// ---- entries ----

CUDL_CUDA_FLOATS(fill, (cudl_context * ctx, void *dst, int64_t n, float value),
                 fill, (ctx, dst, n, value))

extern "C" cudl_status cudl__cuda_uniform(cudl_context *ctx, void *dst,
                                          int64_t n, uint64_t seed,
                                          uint64_t offset, float low,
                                          float high) {
  CUDA_ENTER(ctx, s);
  uniform_kernel<<<cudl__grid_for((n + 3) / 4), CUDL_BLOCK_SIZE, 0,
                   s->stream>>>(cudl__f32(dst), n, seed, offset, low, high);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_normal(cudl_context *ctx, void *dst,
                                         int64_t n, uint64_t seed,
                                         uint64_t offset, float mean,
                                         float stddev) {
  CUDA_ENTER(ctx, s);
  normal_kernel<<<cudl__grid_for((n + 3) / 4), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__f32(dst), n, seed, offset, mean, stddev);
  return CUDL_CUDA_LAUNCHED(ctx);
}
