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
 * Precision of f32 data: full f32 (CUBLAS_COMPUTE_32F_PEDANTIC, and the
 * handle in CUBLAS_PEDANTIC_MATH, which also rules out
 * NVIDIA_TF32_OVERRIDE and any reduced-precision emulation) unless the
 * context allows TF32 (CUBLAS_COMPUTE_32F_FAST_TF32 and
 * CUBLAS_TF32_TENSOR_OP_MATH).
 *
 * bf16 and f16 data: A, B and C all in the 16-bit type, computed in f32
 * (CUBLAS_COMPUTE_32F, float alpha and beta), so C is alpha * op(A) op(B)
 * + beta * C accumulated in f32 and rounded once when stored, the
 * definition of a 16-bit entry (core/ops.def). cuBLAS runs such products
 * on tensor cores wherever the shape and alignment allow; a product of two
 * 16-bit numbers is exact in f32, so allow_tf32 has nothing to decide
 * here. The handle is in CUBLAS_DEFAULT_MATH with
 * CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION: without that flag a
 * split-k product may add its partial sums in the 16-bit output type,
 * rounding more than once.
 *
 * The math mode is set on every call, so a change of ctx->allow_tf32 or of
 * dtype between calls takes effect at once. cuBLAS's GEMMs on one stream
 * are deterministic run to run on the same GPU model (no atomics unless
 * cublasSetAtomicsMode allows them, which cudl never does).
 */
#include "cuda/cuda_internal.h"

/* How cuBLAS stores and computes one dtype's product (module comment). */
typedef struct gemm_mode {
  cudaDataType_t data; /* of A, B and C */
  cublasComputeType_t compute;
  cublasMath_t math;
} gemm_mode;

static gemm_mode gemm_mode_for(cudl_dtype dtype, int allow_tf32) {
  gemm_mode mode;
  if (dtype == CUDL_DTYPE_BF16 || dtype == CUDL_DTYPE_F16) {
    mode.data = dtype == CUDL_DTYPE_BF16 ? CUDA_R_16BF : CUDA_R_16F;
    mode.compute = CUBLAS_COMPUTE_32F;
    mode.math =
        (cublasMath_t)(CUBLAS_DEFAULT_MATH |
                       CUBLAS_MATH_DISALLOW_REDUCED_PRECISION_REDUCTION);
  } else {
    mode.data = CUDA_R_32F;
    mode.compute =
        allow_tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F_PEDANTIC;
    mode.math = allow_tf32 ? CUBLAS_TF32_TENSOR_OP_MATH : CUBLAS_PEDANTIC_MATH;
  }
  return mode;
}

static cudl_status gemm(cudl_context *ctx, cudl_dtype dtype, int trans_a,
                        int trans_b, int64_t m, int64_t n, int64_t k,
                        float alpha, const void *a, int64_t lda, const void *b,
                        int64_t ldb, float beta, void *c, int64_t ldc) {
  const gemm_mode mode = gemm_mode_for(dtype, ctx->allow_tf32);
  CUDA_ENTER(ctx, s);
  CUDL_CUBLAS_TRY(ctx, cublasSetMathMode(s->cublas, mode.math));
  /* m, n, k and the strides are at most INT_MAX (src/core/linear.c). */
  CUDL_CUBLAS_TRY(
      ctx, cublasGemmEx(s->cublas, trans_b ? CUBLAS_OP_T : CUBLAS_OP_N,
                        trans_a ? CUBLAS_OP_T : CUBLAS_OP_N, (int)n, (int)m,
                        (int)k, &alpha, b, mode.data, (int)ldb, a, mode.data,
                        (int)lda, &beta, c, mode.data, (int)ldc, mode.compute,
                        CUBLAS_GEMM_DEFAULT));
  return CUDL_OK;
}

/* The entry cudl__cuda_gemm<suffix> for `dtype` (core/ops.h). */
#define GEMM_ENTRY(suffix, dtype)                                          \
  cudl_status cudl__cuda_gemm##suffix(                                     \
      cudl_context *ctx, int trans_a, int trans_b, int64_t m, int64_t n,   \
      int64_t k, float alpha, const void *a, int64_t lda, const void *b,   \
      int64_t ldb, float beta, void *c, int64_t ldc) {                     \
    return gemm(ctx, (dtype), trans_a, trans_b, m, n, k, alpha, a, lda, b, \
                ldb, beta, c, ldc);                                        \
  }
GEMM_ENTRY(, CUDL_DTYPE_F32)
GEMM_ENTRY(_bf16, CUDL_DTYPE_BF16)
GEMM_ENTRY(_f16, CUDL_DTYPE_F16)
