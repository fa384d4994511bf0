/*
 * dropout_kernels.cu - inverted dropout. Each thread takes Philox blocks:
 * block b decides elements 4b..4b+3 with the keep test of src/core/philox.h,
 * which the CPU uses too, so masks are bit-identical across devices.
 */
#include "core/philox.h"
#include "kernels/dropout_kernels.h"
#include "kernels/launch.cuh"
#include "kernels/scale_block.cuh"

namespace {

__global__ void dropout_forward_kernel(const float *x, float *mask, float *y,
                                       int64_t n, float p, float scale,
                                       int training, uint64_t seed,
                                       uint64_t offset, bool vectorised) {
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = CUDL_GRID_START; b < blocks; b += CUDL_GRID_STRIDE) {
    cudl_philox_block r = {{0, 0, 0, 0}};
    if (training) r = cudl_philox_at(seed, offset + (uint64_t)b);
    cudl_scale_block(x, mask, y, n, b, vectorised, [&](int k, float) {
      return training ? (cudl_dropout_keep(r.v[k], p) ? scale : 0.0f) : 1.0f;
    });
  }
}

}  // namespace

extern "C" cudaError_t cudl_launch_dropout_forward(cudaStream_t stream,
                                                   const float *x, float *mask,
                                                   float *y, int64_t n, float p,
                                                   int training, uint64_t seed,
                                                   uint64_t offset) {
  // Computed once, on the host, as the CPU backend computes it.
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  (void)cudaGetLastError();  // report this launch's status, not an older one
  const bool vectorised =
      cudl_aligned16(x) && cudl_aligned16(mask) && cudl_aligned16(y);
  dropout_forward_kernel<<<cudl_grid_for((n + 3) / 4), CUDL_BLOCK_SIZE, 0,
                           stream>>>(x, mask, y, n, p, scale, training, seed,
                                     offset, vectorised);
  return cudaGetLastError();
}
