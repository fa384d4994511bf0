/* cpu_elementwise.c - elementwise arithmetic and full sums on the CPU. */
#include <math.h>

#include "core/half.h"
#include "cpu/cpu_internal.h"

CUDL_CPU_WIDE_CLONES
cudl_status cudl__cpu_add_scaled(cudl_context *ctx, const void *a_, float alpha,
                                 const void *b_, void *out_, int64_t n) {
  const float *a = a_;
  const float *b = b_;
  float *out = out_;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i) out[i] = a[i] + alpha * b[i];
  return CUDL_OK;
}

/* bf16 read and written directly (f32 arithmetic on the widened values,
 * rounded once, as the widening entries of cpu_lowp.c compute): a
 * gradient's sum of two readers runs over whole activations on every
 * residual block, where widened copies tripled the bytes moved. */
CUDL_CPU_WIDE_CLONES
cudl_status cudl__cpu_add_scaled_bf16(cudl_context *ctx, const void *a_,
                                      float alpha, const void *b_, void *out_,
                                      int64_t n) {
  const uint16_t *a = a_;
  const uint16_t *b = b_;
  uint16_t *out = out_;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i)
    out[i] = cudl__f32_to_bf16(cudl__bf16_to_f32(a[i]) +
                               alpha * cudl__bf16_to_f32(b[i]));
  return CUDL_OK;
}

CUDL_CPU_WIDE_CLONES
cudl_status cudl__cpu_scale(cudl_context *ctx, const void *a_, float alpha,
                            void *out_, int64_t n) {
  const float *a = a_;
  float *out = out_;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i) out[i] = alpha * a[i];
  return CUDL_OK;
}

cudl_status cudl__cpu_count_nonfinite(cudl_context *ctx, const void *x_,
                                      int64_t n, int64_t counts[2]) {
  const float *x = x_;
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

cudl_status cudl__cpu_sum(cudl_context *ctx, const void *x_, void *out_,
                          int64_t n, int mean) {
  const float *x = x_;
  float *out = out_;
  double sum = 0.0;
  int64_t i;
  (void)ctx;
  /* In order, in double: the reference, and independent of threads. */
  for (i = 0; i < n; ++i) sum += x[i];
  out[0] = (float)(mean ? sum / (double)n : sum);
  return CUDL_OK;
}
