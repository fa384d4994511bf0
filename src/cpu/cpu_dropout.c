/* cpu_dropout.c - inverted dropout on the CPU. */
#include <string.h>

#include "core/philox.h"
#include "cpu/cpu_internal.h"

cudl_status cudl__cpu_dropout_forward(cudl_context *ctx, const void *x_,
                                      void *mask_, void *y_, int64_t n, float p,
                                      int training, uint64_t seed,
                                      uint64_t offset) {
  const float *x = x_;
  float *mask = mask_;
  float *y = y_;
  /* p = 1 drops all: its scale would be infinite and is never used. */
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const int64_t runs = (n + CUDL_CPU_PHILOX_WORDS - 1) / CUDL_CPU_PHILOX_WORDS;
  int64_t run;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (run = 0; run < runs; ++run) {
    const int64_t first = run * CUDL_CPU_PHILOX_WORDS;
    const int64_t count =
        n - first < CUDL_CPU_PHILOX_WORDS ? n - first : CUDL_CPU_PHILOX_WORDS;
    uint32_t bits[CUDL_CPU_PHILOX_WORDS];
    int64_t e;
    if (training)
      cudl__cpu_philox_words(
          seed, offset + (uint64_t)(run * CUDL_CPU_PHILOX_RUN), bits);
    else
      memset(bits, 0, sizeof bits); /* not read */
    for (e = 0; e < count; ++e) {
      const float m =
          training ? (cudl_dropout_keep(bits[e], p) ? scale : 0.0f) : 1.0f;
      if (mask != NULL) mask[first + e] = m;
      y[first + e] = x[first + e] * m;
    }
  }
  return CUDL_OK;
}
