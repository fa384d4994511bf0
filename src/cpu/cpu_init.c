/* cpu_init.c - the initialising fills: a constant, and uniform and normal
 * numbers from Philox, drawn exactly as the CUDA kernels draw them. */
#include "core/internal.h"
#include "core/philox.h"
#include "cpu/cpu_internal.h"

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
  const int64_t runs = (n + CUDL_CPU_PHILOX_WORDS - 1) / CUDL_CPU_PHILOX_WORDS;
  int64_t run;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 65536)
  for (run = 0; run < runs; ++run) {
    const int64_t first = run * CUDL_CPU_PHILOX_WORDS;
    const int64_t count =
        n - first < CUDL_CPU_PHILOX_WORDS ? n - first : CUDL_CPU_PHILOX_WORDS;
    uint32_t bits[CUDL_CPU_PHILOX_WORDS];
    int64_t e;
    cudl__cpu_philox_words(seed, offset + (uint64_t)(run * CUDL_CPU_PHILOX_RUN),
                           bits);
    for (e = 0; e < count; ++e)
      dst[first + e] = cudl_uniform_from_bits(bits[e], low, high);
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_normal(cudl_context *ctx, void *dst_, int64_t n,
                             uint64_t seed, uint64_t offset, float mean,
                             float stddev) {
  float *dst = dst_;
  const int64_t runs = (n + CUDL_CPU_PHILOX_WORDS - 1) / CUDL_CPU_PHILOX_WORDS;
  int64_t run;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 16384)
  for (run = 0; run < runs; ++run) {
    const int64_t first = run * CUDL_CPU_PHILOX_WORDS;
    const int64_t count =
        n - first < CUDL_CPU_PHILOX_WORDS ? n - first : CUDL_CPU_PHILOX_WORDS;
    uint32_t bits[CUDL_CPU_PHILOX_WORDS];
    int64_t e;
    cudl__cpu_philox_words(seed, offset + (uint64_t)(run * CUDL_CPU_PHILOX_RUN),
                           bits);
    /* element 4b + k takes words k & 2 and (k & 2) + 1 of block b: the
     * pair at e & ~1 */
    for (e = 0; e < count; ++e)
      dst[first + e] = cudl_normal_from_bits(bits[e & ~1], bits[(e & ~1) + 1],
                                             (int)(e & 1), mean, stddev);
  }
  return CUDL_OK;
}
