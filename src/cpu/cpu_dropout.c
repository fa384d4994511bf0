/* cpu_dropout.c - inverted dropout on the CPU. */
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
  const int64_t blocks = (n + 3) / 4;
  int64_t b;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (b = 0; b < blocks; ++b) {
    cudl_philox_block r = {{0, 0, 0, 0}};
    int k;
    if (training) r = cudl_philox_at(seed, offset + (uint64_t)b);
    for (k = 0; k < 4 && 4 * b + k < n; ++k) {
      const int64_t i = 4 * b + k;
      const float m =
          training ? (cudl_dropout_keep(r.v[k], p) ? scale : 0.0f) : 1.0f;
      if (mask != NULL) mask[i] = m;
      y[i] = x[i] * m;
    }
  }
  return CUDL_OK;
}
