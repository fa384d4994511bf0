/*
 * cuda_gemm.c - the CUDA backend's matrix product, through cuBLAS (the
 * per-channel bias kernels that go with it are in kernels/bias.cu).
 *
 * cuBLAS is column-major; cudl's matrices are row-major. A row-major
 * matrix M with row stride ld is, read column-major with the same ld, M^T.
 * So the row-major product C = op(A) op(B) is computed as the column-major
 * C^T = op(B)^T op(A)^T: the operands swap places (B first), m and n swap,
 * and each keeps its own transpose flag and leading dimension.
 *
 * Precision: in full f32 (CUBLAS_COMPUTE_32F_PEDANTIC, and the handle in
 * CUBLAS_PEDANTIC_MATH, which also rules out NVIDIA_TF32_OVERRIDE and any
 * reduced-precision emulation) unless the context allows TF32
 * (CUBLAS_COMPUTE_32F_FAST_TF32 and CUBLAS_TF32_TENSOR_OP_MATH). The math
 * mode is set on every call, so a change of ctx->allow_tf32 takes effect
 * at once. cuBLAS's GEMMs on one stream are deterministic run to run on
 * the same GPU model (no atomics unless cublasSetAtomicsMode allows them,
 * which cudl never does).
 */
#include "cuda/cuda_internal.h"

cudl_status cudl__cuda_gemm(cudl_context *ctx, int trans_a, int trans_b,
                            int64_t m, int64_t n, int64_t k, float alpha,
                            const void *a, int64_t lda, const void *b,
                            int64_t ldb, float beta, void *c, int64_t ldc) {
  const int tf32 = ctx->allow_tf32;
  CUDA_ENTER(ctx, s);
  CUDL_CUBLAS_TRY(ctx,
                  cublasSetMathMode(s->cublas, tf32 ? CUBLAS_TF32_TENSOR_OP_MATH
                                                    : CUBLAS_PEDANTIC_MATH));
  /* m, n, k and the strides are at most INT_MAX (src/core/linear.c). */
  CUDL_CUBLAS_TRY(
      ctx, cublasGemmEx(s->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                        trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                        (int)k, &alpha, b, CUDA_R_32F, (int)ldb, a, CUDA_R_32F,
                        (int)lda, &beta, c, CUDA_R_32F, (int)ldc,
                        tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32
                             : CUBLAS_COMPUTE_32F_PEDANTIC,
                        CUBLAS_GEMM_DEFAULT));
  return CUDL_OK;
}
