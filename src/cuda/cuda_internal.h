/*
 * cuda_internal.h - state and error checking shared by the CUDA backend.
 */
#ifndef CUDL_CUDA_INTERNAL_H
#define CUDL_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "core/internal.h"

/* A cached cuDNN convolution plan (src/cuda/cuda_conv.c). */
struct cudl_conv_plan;

/* What a CUDA context owns (ctx->backend_state). */
typedef struct cudl_cuda_state {
  cudaStream_t stream;
  cudaMemPool_t pool; /* stream-ordered allocations of this context */
  cublasHandle_t cublas;
  cudnnHandle_t cudnn;
  /* The context's one grow-only device workspace (cuDNN convolutions), from
   * the pool on the stream; see cudl__cuda_workspace_reserve. */
  void *workspace;
  size_t workspace_bytes;
  /* cuDNN convolution algorithms chosen so far, one per shape, direction
   * and mode (cuda_conv.c); plan_count of plan_capacity slots used. */
  struct cudl_conv_plan *plans;
  size_t plan_count, plan_capacity, plan_evict_next;
  /* The last pool allocation was refused by the context's memory limit
   * (cudl__cuda_over_limit): its size and the bytes then in use, for the
   * message of whoever reports the failure. */
  int limit_refused;
  size_t refused_bytes;
  uint64_t refused_in_use;
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
#define CUDL_CUBLAS_TRY(ctx, call)                                            \
  do {                                                                        \
    cublasStatus_t cudl_err_ = (call);                                        \
    if (cudl_err_ != CUBLAS_STATUS_SUCCESS)                                   \
      return cudl__cublas_error((ctx), cudl_err_, #call, __FILE__, __LINE__); \
  } while (0)
#define CUDL_CUDNN_TRY(ctx, call)                                            \
  do {                                                                       \
    cudnnStatus_t cudl_err_ = (call);                                        \
    if (cudl_err_ != CUDNN_STATUS_SUCCESS)                                   \
      return cudl__cudnn_error((ctx), cudl_err_, #call, __FILE__, __LINE__); \
  } while (0)

/* In a backend entry: make the context's GPU current (the calling thread
 * may have used another) and declare `state`, its cudl_cuda_state. */
#define CUDA_ENTER(ctx, state)                    \
  cudl_cuda_state *state = cudl__cuda_state(ctx); \
  CUDL_CUDA_TRY((ctx), cudaSetDevice((ctx)->device_index))

/* ---- the context's workspace (cuda_conv.c) ---- */

/* Make s->workspace at least `bytes` long: grow-only; growing frees the old
 * block and allocates the new one from the pool, both stream-ordered, so
 * it never synchronises the host. On failure (cudaErrorMemoryAllocation
 * when the device is full) the workspace is left empty (NULL, 0 bytes) and
 * the error is returned, cleared from the runtime, for the caller to report
 * or to work around. */
cudaError_t cudl__cuda_workspace_reserve(cudl_context *ctx, cudl_cuda_state *s,
                                         size_t bytes);

/* 1 when `bytes` more from the pool would take the context past its
 * memory limit (the pool's bytes in use + bytes > the limit); then
 * s->limit_refused and the figures are set for the message, which
 * cudl__cuda_error and the callers give instead of the runtime's. */
int cudl__cuda_over_limit(cudl_context *ctx, cudl_cuda_state *s, size_t bytes);

/* Every device allocation: from the context's pool, on its stream, unless
 * the context's memory limit refuses it or fault injection
 * (cudl_context_fail_allocation) makes this one fail. */
static inline cudaError_t cudl__cuda_pool_alloc(cudl_context *ctx,
                                                cudl_cuda_state *s, void **p,
                                                size_t bytes) {
  if (cudl__cuda_over_limit(ctx, s, bytes)) return cudaErrorMemoryAllocation;
  if (cudl__allocation_fails(ctx)) return cudaErrorMemoryAllocation;
  return cudaMallocFromPoolAsync(p, bytes, s->pool, s->stream);
}
/* Free the workspace and every cached convolution plan (at close, before
 * the stream is destroyed). */
void cudl__cuda_conv_release(cudl_cuda_state *s);

/* ---- backend entries outside cuda_backend.c ---- */

/* cuda_gemm.c: cuBLAS matrix product and the per-channel bias kernels. */
cudl_status cudl__cuda_gemm_f32(cudl_context *ctx, int trans_a, int trans_b,
                                int64_t m, int64_t n, int64_t k, float alpha,
                                const float *a, int64_t lda, const float *b,
                                int64_t ldb, float beta, float *c, int64_t ldc);
cudl_status cudl__cuda_bias_add_f32(cudl_context *ctx, float *y,
                                    const float *bias, int64_t outer,
                                    int64_t channels, int64_t inner);
cudl_status cudl__cuda_channel_sum_f32(cudl_context *ctx, const float *x,
                                       float *out, int64_t outer,
                                       int64_t channels, int64_t inner);

/* cuda_conv.c: cuDNN convolutions. */
cudl_status cudl__cuda_conv2d_forward(cudl_context *ctx,
                                      const cudl_conv2d_geometry *g,
                                      const float *x, const float *w, float *y);
cudl_status cudl__cuda_conv2d_backward_data(cudl_context *ctx,
                                            const cudl_conv2d_geometry *g,
                                            const float *w, const float *dy,
                                            float *dx);
cudl_status cudl__cuda_conv2d_backward_filter(cudl_context *ctx,
                                              const cudl_conv2d_geometry *g,
                                              const float *x, const float *dy,
                                              float *dw);

/* cuda_optim.c: optimizer updates and gradient-norm clipping. */
cudl_status cudl__cuda_sgd_step(cudl_context *ctx, float *params,
                                const float *grads, float *momentum_buffer,
                                int64_t n, const cudl_sgd_step_args *args);
cudl_status cudl__cuda_adam_step(cudl_context *ctx, float *params,
                                 const float *grads, float *exp_avg,
                                 float *exp_avg_sq, int64_t n,
                                 const cudl_adam_step_args *args);
cudl_status cudl__cuda_l2_norm_f32(cudl_context *ctx, const float *x,
                                   float *norm, int64_t n);
cudl_status cudl__cuda_clip_scale_f32(cudl_context *ctx, float *x, int64_t n,
                                      const float *norm, float max_norm);

/* Device queries behind the public cudl_cuda_* functions (src/core/devices.c).
 */
cudl_status cudl__cuda_device_count(int *count, char *reason,
                                    size_t reason_size);
cudl_status cudl__cuda_device_properties(int index,
                                         cudl_cuda_device_properties *props);
cudl_status cudl__cuda_versions(cudl_cuda_versions *versions);

#endif /* CUDL_CUDA_INTERNAL_H */
