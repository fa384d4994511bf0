/*
 * dropout.cu - inverted dropout on CUDA (cudl/dropout.h) in f32, bf16 and
 * f16: the kernel, then the backend entries. Each thread takes Philox
 * blocks: block b decides elements 4b..4b+3 with the keep test of
 * src/core/philox.h, which the CPU uses too, so masks are bit-identical
 * across devices. The multiplier and y = x * m are computed in f32 and
 * rounded once each to the data's dtype (scale_block.cuh).
 */
#include "core/philox.h"
#include "cuda/cuda_internal.h"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/scale_block.cuh"
#include "kernels/vec.cuh"

namespace {

template <typename T>
__global__ void dropout_forward_kernel(const T *x, T *mask, T *y, int64_t n,
                                       float p, float scale, int training,
                                       uint64_t seed, uint64_t offset,
                                       bool vectorised) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = CUDL_GRID_START; b < blocks; b += CUDL_GRID_STRIDE) {
    cudl_philox_block r = {{0, 0, 0, 0}};
    if (training) r = cudl_philox_at(seed, offset + (uint64_t)b);
    cudl__scale_block(x, mask, y, n, b, vectorised, [&](int k, float) {
      return training ? (cudl_dropout_keep(r.v[k], p) ? scale : 0.0f) : 1.0f;
    });
  }
}

template <typename T>
cudl_status dropout_forward(cudl_context *ctx, const void *x, void *mask,
                            void *y, int64_t n, float p, int training,
                            uint64_t seed, uint64_t offset) {
  // Computed once, on the host, as the CPU backend computes it.
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const bool vectorised = cudl__vec_aligned<T, 4>(x) &&
                          cudl__vec_aligned<T, 4>(mask) &&
                          cudl__vec_aligned<T, 4>(y);
  CUDA_ENTER(ctx, s);
  dropout_forward_kernel<<<cudl__grid_for((n + 3) / 4), CUDL_BLOCK_SIZE, 0,
                           s->stream>>>(cudl__typed<T>(x), cudl__typed<T>(mask),
                                        cudl__typed<T>(y), n, p, scale,
                                        training, seed, offset, vectorised);
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

// ---- entries ----

CUDL_CUDA_FLOATS(dropout_forward,
                 (cudl_context * ctx, const void *x, void *mask, void *y,
                  int64_t n, float p, int training, uint64_t seed,
                  uint64_t offset),
                 dropout_forward,
                 (ctx, x, mask, y, n, p, training, seed, offset))
