/* cpu_init.c - the initialising fills: a constant, and uniform and normal
 * numbers from Philox, drawn exactly as the CUDA kernels draw them. */
#include "core/internal.h"
#include "core/philox.h"

cudl_status cudl__cpu_fill(cudl_context *ctx, void *dst_, int64_t n,
                           float value) {
  float *dst = dst_;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (i = 0; i < n; ++i) dst[i] = value;
  return CUDL_OK;
}

/* Both random fills walk Philox blocks: block b covers elements 4b..4b+3. */
cudl_status cudl__cpu_uniform(cudl_context *ctx, void *dst_, int64_t n,
                              uint64_t seed, uint64_t offset, float low,
                              float high) {
  float *dst = dst_;
  int64_t blocks = (n + 3) / 4, b;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (b = 0; b < blocks; ++b) {
    cudl_philox_block r = cudl_philox_at(seed, offset + (uint64_t)b);
    int64_t base = 4 * b;
    int k;
    for (k = 0; k < 4 && base + k < n; ++k)
      dst[base + k] = cudl_uniform_from_bits(r.v[k], low, high);
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_normal(cudl_context *ctx, void *dst_, int64_t n,
                             uint64_t seed, uint64_t offset, float mean,
                             float stddev) {
  float *dst = dst_;
  int64_t blocks = (n + 3) / 4, b;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 16384)
  for (b = 0; b < blocks; ++b) {
    cudl_philox_block r = cudl_philox_at(seed, offset + (uint64_t)b);
    int64_t base = 4 * b;
    int k;
    for (k = 0; k < 4 && base + k < n; ++k)
      dst[base + k] = cudl_normal_from_bits(r.v[k & 2], r.v[(k & 2) + 1], k & 1,
                                            mean, stddev);
  }
  return CUDL_OK;
}
