/* cpu_gemm.c - matrix products, and the per-channel bias ops that go with
 * linear and convolution layers.
 *
 * The product is oneDNN's dnnl_sgemm, a row-major BLAS sgemm, chosen by
 * measurement over OpenBLAS 0.3.21's cblas_sgemm: on the development
 * machine (2-core AMD EPYC with AVX-512) it is 2-2.5 times faster on
 * linear layers of 128 x 784 x 256 and larger, and it runs on the same
 * OpenMP threads as the rest of the backend instead of a second pool that
 * competes for the cores (benchmarks/cpu/bench_layers). */
#include "cpu/cpu_dnnl.h"

cudl_status cudl__cpu_gemm(cudl_context *ctx, int trans_a, int trans_b,
                           int64_t m, int64_t n, int64_t k, float alpha,
                           const void *a_, int64_t lda, const void *b_,
                           int64_t ldb, float beta, void *c_, int64_t ldc) {
  const float *a = a_;
  const float *b = b_;
  float *c = c_;
  cudl_status status = CUDL_OK;
  DNNL_TRY(dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, alpha,
                      a, lda, b, ldb, beta, c, ldc));
done:
  return status;
}

cudl_status cudl__cpu_bias_add(cudl_context *ctx, void *y_, const void *bias_,
                               int64_t outer, int64_t channels, int64_t inner) {
  float *y = y_;
  const float *bias = bias_;
  int64_t row;
  (void)ctx;
#pragma omp parallel for schedule(static) if (outer * channels * inner > 32768)
  for (row = 0; row < outer * channels; ++row) {
    int64_t i;
    float *yr = y + row * inner;
    const float b = bias[row % channels];
    for (i = 0; i < inner; ++i) yr[i] += b;
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_channel_sum(cudl_context *ctx, const void *x_, void *out_,
                                  int64_t outer, int64_t channels,
                                  int64_t inner) {
  const float *x = x_;
  float *out = out_;
  int64_t c;
  (void)ctx;
  /* In double and in a fixed order per channel: deterministic whatever the
   * thread count, and a reference for the CUDA kernel. */
#pragma omp parallel for schedule(static) if (outer * channels * inner > 32768)
  for (c = 0; c < channels; ++c) {
    double sum = 0.0;
    int64_t o, i;
    for (o = 0; o < outer; ++o) {
      const float *xr = x + (o * channels + c) * inner;
      for (i = 0; i < inner; ++i) sum += xr[i];
    }
    out[c] = (float)sum;
  }
  return CUDL_OK;
}
