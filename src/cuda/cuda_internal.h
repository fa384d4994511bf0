/*
 * cuda_internal.h - state and error checking shared by the CUDA backend.
 */
#ifndef CUDL_CUDA_INTERNAL_H
#define CUDL_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "core/internal.h"

/* What a CUDA context owns (ctx->backend_state). */
typedef struct cudl_cuda_state {
  cudaStream_t stream;
  cudaMemPool_t pool; /* stream-ordered allocations of this context */
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
} cudl_cuda_state;

static inline cudl_cuda_state *cudl__cuda_state(cudl_context *ctx) {
  return (cudl_cuda_state *)ctx->backend_state;
}

/* Turn a failed CUDA runtime call into a status with "<call> failed at
 * file:line: <text> (<name>)" recorded in ctx; cudaErrorMemoryAllocation
 * becomes CUDL_ERR_OUT_OF_MEMORY. CUDL_OK for cudaSuccess. */
cudl_status cudl__cuda_error(cudl_context *ctx, cudaError_t err,
                             const char *call, const char *file, int line);
cudl_status cudl__cublas_error(cudl_context *ctx, cublasStatus_t err,
                               const char *call, const char *file, int line);
cudl_status cudl__cudnn_error(cudl_context *ctx, cudnnStatus_t err,
                              const char *call, const char *file, int line);

#define CUDL_CUDA_TRY(ctx, call)                                            \
  do {                                                                      \
    cudaError_t cudl_err_ = (call);                                         \
    if (cudl_err_ != cudaSuccess)                                           \
      return cudl__cuda_error((ctx), cudl_err_, #call, __FILE__, __LINE__); \
  } while (0)

/* Device queries behind the public cudl_cuda_* functions (src/core/devices.c).
 */
cudl_status cudl__cuda_device_count(int *count, char *reason,
                                    size_t reason_size);
cudl_status cudl__cuda_device_properties(int index,
                                         cudl_cuda_device_properties *props);
cudl_status cudl__cuda_versions(cudl_cuda_versions *versions);

#endif /* CUDL_CUDA_INTERNAL_H */
