/* cpu_elementwise.c - elementwise arithmetic and full sums on the CPU. */
#include <math.h>

#include "cpu/cpu_ops.h"

cudl_status cudl__cpu_add_scaled_f32(cudl_context *ctx, const float *a,
                                     float alpha, const float *b, float *out,
                                     int64_t n) {
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i) out[i] = a[i] + alpha * b[i];
  return CUDL_OK;
}

cudl_status cudl__cpu_scale_f32(cudl_context *ctx, const float *a, float alpha,
                                float *out, int64_t n) {
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i) out[i] = alpha * a[i];
  return CUDL_OK;
}

cudl_status cudl__cpu_count_nonfinite_f32(cudl_context *ctx, const float *x,
                                          int64_t n, int64_t counts[2]) {
  int64_t i, nan = 0, inf = 0;
  (void)ctx;
#pragma omp parallel for schedule(static) reduction(+ : nan, inf) if (n > 32768)
  for (i = 0; i < n; ++i) {
    nan += isnan(x[i]) != 0;
    inf += isinf(x[i]) != 0;
  }
  counts[0] = nan;
  counts[1] = inf;
  return CUDL_OK;
}

cudl_status cudl__cpu_sum_f32(cudl_context *ctx, const float *x, float *out,
                              int64_t n, int mean) {
  double sum = 0.0;
  int64_t i;
  (void)ctx;
  /* In order, in double: the reference, and independent of threads. */
  for (i = 0; i < n; ++i) sum += x[i];
  out[0] = (float)(mean ? sum / (double)n : sum);
  return CUDL_OK;
}
