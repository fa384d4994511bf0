/* cpu_gemm.c - matrix products, and the per-channel bias ops that go with
 * linear and convolution layers.
 *
 * The product is oneDNN's dnnl_sgemm, a row-major BLAS sgemm, chosen by
 * measurement over OpenBLAS 0.3.21's cblas_sgemm: on the development
 * machine (2-core AMD EPYC with AVX-512) it is 2-2.5 times faster on
 * linear layers of 128 x 784 x 256 and larger, and it runs on the same
 * OpenMP threads as the rest of the backend instead of a second pool that
 * competes for the cores (benchmarks/cpu/bench_layers).
 *
 * bf16 products run as a oneDNN matmul in bf16 where the CPU has bf16
 * arithmetic (cudl__cpu_bf16_native) and oneDNN an optimised kernel for
 * them; elsewhere, and for f16, the entries of cpu_lowp.c run dnnl_sgemm
 * on f32 copies. Both accumulate in f32 and round C once. */
#include <string.h>

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

/* C = alpha op(A) op(B) + beta C on row-major bf16 matrices with oneDNN's
 * matmul (cpu_internal.h): products accumulated in f32, alpha applied as
 * its output scale and beta C as a sum post-op, both in f32 before the one
 * rounding to bf16 (so C is read only when beta is not 0). *ran is 0, with
 * nothing done and nothing recorded, where the CPU has no bf16 arithmetic,
 * oneDNN only its reference loops for the problem, or the problem no
 * elements: oneDNN skips those, but k = 0 must still scale C by beta. */
cudl_status cudl__cpu_gemm_native_bf16(cudl_context *ctx, int trans_a,
                                       int trans_b, int64_t m, int64_t n,
                                       int64_t k, float alpha, const void *a,
                                       int64_t lda, const void *b, int64_t ldb,
                                       float beta, void *c, int64_t ldc,
                                       int *ran) {
  cudl_cpu_state *dnnl = NULL;
  dnnl_memory_desc_t a_md, b_md, c_md;
  dnnl_dims_t a_dims, b_dims, c_dims, a_strides, b_strides, c_strides;
  dnnl_matmul_desc_t desc;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_post_ops_t post_ops = NULL;
  dnnl_primitive_desc_t pd = NULL;
  dnnl_primitive_t prim = NULL;
  dnnl_memory_t a_mem = NULL, b_mem = NULL, c_mem = NULL, scratch_mem = NULL;
  const dnnl_memory_desc_t *scratch_md;
  size_t scratch_bytes;
  void *workspace;
  dnnl_exec_arg_t args[4];
  dnnl_status_t made;
  cudl_status status;

  *ran = 0;
  if (!cudl__cpu_bf16_native() || m == 0 || n == 0 || k == 0) return CUDL_OK;
  status = cudl__cpu_dnnl(ctx, &dnnl);
  if (status != CUDL_OK) return status;
  /* A transposed matrix is the stored one read with its strides swapped. */
  memset(a_dims, 0, sizeof a_dims);
  memset(b_dims, 0, sizeof b_dims);
  memset(c_dims, 0, sizeof c_dims);
  memset(a_strides, 0, sizeof a_strides);
  memset(b_strides, 0, sizeof b_strides);
  memset(c_strides, 0, sizeof c_strides);
  a_dims[0] = m;
  a_dims[1] = k;
  a_strides[0] = trans_a ? 1 : lda;
  a_strides[1] = trans_a ? lda : 1;
  b_dims[0] = k;
  b_dims[1] = n;
  b_strides[0] = trans_b ? 1 : ldb;
  b_strides[1] = trans_b ? ldb : 1;
  c_dims[0] = m;
  c_dims[1] = n;
  c_strides[0] = ldc;
  c_strides[1] = 1;
  DNNL_TRY(
      dnnl_memory_desc_init_by_strides(&a_md, 2, a_dims, dnnl_bf16, a_strides));
  DNNL_TRY(
      dnnl_memory_desc_init_by_strides(&b_md, 2, b_dims, dnnl_bf16, b_strides));
  DNNL_TRY(
      dnnl_memory_desc_init_by_strides(&c_md, 2, c_dims, dnnl_bf16, c_strides));
  DNNL_TRY(dnnl_matmul_desc_init(&desc, &a_md, &b_md, NULL, &c_md));
  DNNL_TRY(dnnl_primitive_attr_create(&attr));
  DNNL_TRY(
      dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
  if (alpha != 1.0f)
    DNNL_TRY(dnnl_primitive_attr_set_output_scales(attr, 1, 0, &alpha));
  if (beta != 0.0f) {
    DNNL_TRY(dnnl_post_ops_create(&post_ops));
    DNNL_TRY(dnnl_post_ops_append_sum(post_ops, beta));
    DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, post_ops));
  }
  made = dnnl_primitive_desc_create(&pd, &desc, attr, dnnl->dnnl_engine, NULL);
  if (made == dnnl_unimplemented ||
      (made == dnnl_success && cudl__cpu_dnnl_is_reference(pd)))
    goto done;
  if (made != dnnl_success) {
    status = cudl__cpu_dnnl_error(ctx, made, "creating the bf16 matmul",
                                  __FILE__, __LINE__);
    goto done;
  }

  scratch_md = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  scratch_bytes =
      scratch_md != NULL ? dnnl_memory_desc_get_size(scratch_md) : 0;
  status = cudl__cpu_workspace(ctx, scratch_bytes > 0 ? scratch_bytes : 1,
                               &workspace);
  if (status != CUDL_OK) goto done;
  DNNL_TRY(dnnl_memory_create(&a_mem, &a_md, dnnl->dnnl_engine, (void *)a));
  DNNL_TRY(dnnl_memory_create(&b_mem, &b_md, dnnl->dnnl_engine, (void *)b));
  DNNL_TRY(dnnl_memory_create(&c_mem, &c_md, dnnl->dnnl_engine, c));
  args[0].arg = DNNL_ARG_SRC;
  args[0].memory = a_mem;
  args[1].arg = DNNL_ARG_WEIGHTS;
  args[1].memory = b_mem;
  args[2].arg = DNNL_ARG_DST;
  args[2].memory = c_mem;
  if (scratch_bytes > 0)
    DNNL_TRY(dnnl_memory_create(&scratch_mem, scratch_md, dnnl->dnnl_engine,
                                workspace));
  args[3].arg = DNNL_ARG_SCRATCHPAD;
  args[3].memory = scratch_mem;
  DNNL_TRY(dnnl_primitive_create(&prim, pd));
  DNNL_TRY(dnnl_primitive_execute(prim, dnnl->dnnl_stream,
                                  scratch_mem != NULL ? 4 : 3, args));
  DNNL_TRY(dnnl_stream_wait(dnnl->dnnl_stream));
  *ran = 1;

done:
  if (a_mem != NULL) dnnl_memory_destroy(a_mem);
  if (b_mem != NULL) dnnl_memory_destroy(b_mem);
  if (c_mem != NULL) dnnl_memory_destroy(c_mem);
  if (scratch_mem != NULL) dnnl_memory_destroy(scratch_mem);
  if (prim != NULL) dnnl_primitive_destroy(prim);
  if (pd != NULL) dnnl_primitive_desc_destroy(pd);
  if (post_ops != NULL) dnnl_post_ops_destroy(post_ops);
  if (attr != NULL) dnnl_primitive_attr_destroy(attr);
  return status;
}

cudl_status cudl__cpu_bias_add(cudl_context *ctx, void *y_, const void *bias_,
                               int64_t outer, int64_t channels, int64_t inner) {
  float *y = y_;
  const float *bias = bias_;
  int64_t row;
  (void)ctx;
  if (inner == 1) { /* channels-last: no division per element */
#pragma omp parallel for schedule(static) if (outer * channels > 32768)
    for (row = 0; row < outer; ++row) {
      float *yr = y + row * channels;
      int64_t c;
#pragma omp simd
      for (c = 0; c < channels; ++c) yr[c] += bias[c];
    }
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * channels * inner > 32768)
  for (row = 0; row < outer * channels; ++row) {
    int64_t i;
    float *yr = y + row * inner;
    const float b = bias[row % channels];
    for (i = 0; i < inner; ++i) yr[i] += b;
  }
  return CUDL_OK;
}

enum { SUM_BLOCK = 32 };

cudl_status cudl__cpu_channel_sum(cudl_context *ctx, const void *x_, void *out_,
                                  int64_t outer, int64_t channels,
                                  int64_t inner) {
  const float *x = x_;
  float *out = out_;
  int64_t c;
  (void)ctx;
  /* In double and in a fixed order per channel: deterministic whatever the
   * thread count, and a reference for the CUDA kernel. */
  if (inner == 1) {
    /* Channels-last: a channel is a column of x, so a block of channels
     * walks the rows together (one column at a time would read all of x
     * once per channel); each sum runs over the rows in the same order. */
    const int64_t blocks = (channels + SUM_BLOCK - 1) / SUM_BLOCK;
    int64_t block;
#pragma omp parallel for schedule(static) if (outer * channels > 32768)
    for (block = 0; block < blocks; ++block) {
      const int64_t c0 = block * SUM_BLOCK;
      const int64_t count =
          channels - c0 < SUM_BLOCK ? channels - c0 : SUM_BLOCK;
      double sum[SUM_BLOCK];
      int64_t o, k;
      for (k = 0; k < count; ++k) sum[k] = 0.0;
      for (o = 0; o < outer; ++o) {
        const float *xr = x + o * channels + c0;
#pragma omp simd
        for (k = 0; k < count; ++k) sum[k] += xr[k];
      }
      for (k = 0; k < count; ++k) out[c0 + k] = (float)sum[k];
    }
    return CUDL_OK;
  }
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
