/*
 * cuda_error.c - the CUDA backend's error reporting: failed CUDA, cuBLAS
 * and cuDNN calls turned into statuses and messages, and the memory limit's
 * refusals, which the pool allocation records for whoever reports them.
 * Every file of the backend reports through these; they depend on nothing
 * else of it.
 */
#include "cuda/cuda_internal.h"

int cudl__cuda_take_limit_refusal(cudl_context *ctx, cudaError_t err,
                                  size_t *bytes, uint64_t *in_use) {
  cudl_cuda_state *s = ctx == NULL ? NULL : cudl__cuda_state(ctx);
  if (err != cudaErrorMemoryAllocation || s == NULL || !s->limit_refused)
    return 0;
  s->limit_refused = 0;
  *bytes = s->refused_bytes;
  *in_use = s->refused_in_use;
  return 1;
}

int cudl__cuda_over_limit(cudl_context *ctx, cudl_cuda_state *s, size_t bytes) {
  uint64_t used = 0;
  s->limit_refused = 0;
  if (cudaMemPoolGetAttribute(s->pool, cudaMemPoolAttrUsedMemCurrent, &used) !=
      cudaSuccess) {
    (void)cudaGetLastError(); /* the allocation itself will tell */
    return 0;
  }
  if (!cudl__memory_limit_exceeded(ctx, bytes, used)) return 0;
  s->limit_refused = 1;
  s->refused_bytes = bytes;
  s->refused_in_use = used;
  return 1;
}

cudl_status cudl__cuda_error(cudl_context *ctx, cudaError_t err,
                             const char *call, const char *file, int line) {
  size_t refused_bytes;
  uint64_t refused_in_use;
  if (err == cudaSuccess) return CUDL_OK;
  (void)cudaGetLastError(); /* clear a non-sticky error for the next call */
  if (cudl__cuda_take_limit_refusal(ctx, err, &refused_bytes, &refused_in_use))
    return cudl__memory_limit_fail(ctx, call, refused_bytes, refused_in_use);
  return cudl__fail(
      ctx,
      err == cudaErrorMemoryAllocation ? CUDL_ERR_OUT_OF_MEMORY : CUDL_ERR_CUDA,
      call, "failed at %s:%d: %s (%s)", file, line, cudaGetErrorString(err),
      cudaGetErrorName(err));
}

cudl_status cudl__cublas_error(cudl_context *ctx, cublasStatus_t err,
                               const char *call, const char *file, int line) {
  if (err == CUBLAS_STATUS_SUCCESS) return CUDL_OK;
  return cudl__fail(ctx,
                    err == CUBLAS_STATUS_ALLOC_FAILED ? CUDL_ERR_OUT_OF_MEMORY
                                                      : CUDL_ERR_CUDA,
                    call, "failed at %s:%d: %s (%s)", file, line,
                    cublasGetStatusString(err), cublasGetStatusName(err));
}

cudl_status cudl__cudnn_error(cudl_context *ctx, cudnnStatus_t err,
                              const char *call, const char *file, int line) {
  if (err == CUDNN_STATUS_SUCCESS) return CUDL_OK;
  return cudl__fail(
      ctx,
      err == CUDNN_STATUS_ALLOC_FAILED ? CUDL_ERR_OUT_OF_MEMORY : CUDL_ERR_CUDA,
      call, "failed at %s:%d: %s", file, line, cudnnGetErrorString(err));
}
