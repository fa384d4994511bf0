/*
 * cuda_internal.h - what the files of the CUDA backend share: the context
 * state, error checking, the memory pool and the workspace. The C files
 * of src/cuda and the C++ entries in kernels/ include it; no file of the
 * backend needs another's private declarations.
 *
 * The operators' entries, cudl__cuda_<name>, are declared by core/ops.h
 * from core/ops.def.
 */
#ifndef CUDL_CUDA_INTERNAL_H
#define CUDL_CUDA_INTERNAL_H

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "core/internal.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A cached cuDNN convolution plan (src/cuda/cuda_conv.c). */
struct cudl_conv_plan;

/* What a CUDA context owns (ctx->backend_state). */
typedef struct cudl_cuda_state {
  cudaStream_t stream;
  /* The caller's stream (ctx->caller_stream): never destroyed. */
  int stream_borrowed;
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
  /* The stream's work is being recorded into a graph (graph_begin): what
   * would outlive the recording (a plan, a larger workspace) is refused. */
  int capturing;
  /* cuBLAS's workspace from the pool, given before the first recording
   * (cublasSetWorkspace): without it cuBLAS would allocate inside the
   * recording, outside the pool, or choose other algorithms there. */
  void *cublas_workspace;
} cudl_cuda_state;

static inline cudl_cuda_state *cudl__cuda_state(cudl_context *ctx) {
  return (cudl_cuda_state *)ctx->backend_state;
}

/* ---- errors (cuda_error.c) ---- */

/* Turn a failed CUDA runtime call into a status with "<call>: failed at
 * file:line: <text> (<name>)" recorded in ctx, and clear the error from the
 * runtime; cudaErrorMemoryAllocation becomes CUDL_ERR_OUT_OF_MEMORY, with
 * the memory limit's message when the limit refused the allocation
 * (cudl__cuda_over_limit). CUDL_OK for cudaSuccess. */
cudl_status cudl__cuda_error(cudl_context *ctx, cudaError_t err,
                             const char *call, const char *file, int line);
cudl_status cudl__cublas_error(cudl_context *ctx, cublasStatus_t err,
                               const char *call, const char *file, int line);
cudl_status cudl__cudnn_error(cudl_context *ctx, cudnnStatus_t err,
                              const char *call, const char *file, int line);
/* 1 when `bytes` more from the pool would take the context past its
 * memory limit (the pool's bytes in use + bytes > the limit); then
 * s->limit_refused and the figures are set for the message, which
 * cudl__cuda_error and the callers give instead of the runtime's. */
int cudl__cuda_over_limit(cudl_context *ctx, cudl_cuda_state *s, size_t bytes);
/* 1 when err is the refusal cudl__cuda_over_limit last recorded in ctx's
 * state: then *bytes and *in_use are its figures, and the record is
 * cleared, so the limit's message is given once. */
int cudl__cuda_take_limit_refusal(cudl_context *ctx, cudaError_t err,
                                  size_t *bytes, uint64_t *in_use);

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
 * may have used another), declare `state`, its cudl_cuda_state, and clear
 * an error an earlier call left pending (the host program's own, say), so
 * that what the entry reports is its own. */
#define CUDA_ENTER(ctx, state)                              \
  cudl_cuda_state *state = cudl__cuda_state(ctx);           \
  CUDL_CUDA_TRY((ctx), cudaSetDevice((ctx)->device_index)); \
  (void)cudaGetLastError()

/* The status of an entry's kernel launches, which report failures only
 * through cudaGetLastError: the expression its entry returns last. */
#define CUDL_CUDA_LAUNCHED(ctx) \
  cudl__cuda_error((ctx), cudaGetLastError(), __func__, __FILE__, __LINE__)

/* ---- the context's workspace (cuda_conv.c) ---- */

/* Make s->workspace at least `bytes` long: grow-only; growing frees the old
 * block and allocates the new one from the pool, both stream-ordered, so
 * it never synchronises the host. On failure (cudaErrorMemoryAllocation
 * when the device is full) the workspace is left empty (NULL, 0 bytes) and
 * the error is returned, cleared from the runtime, for the caller to report
 * or to work around. */
cudaError_t cudl__cuda_workspace_reserve(cudl_context *ctx, cudl_cuda_state *s,
                                         size_t bytes);

/* ---- memory ---- */

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

/* ---- the module (cuda_module.c, cuda_core_calls.c) ---- */

/* The backend the module's table hands the library (cuda_runtime.c), and
 * the table (cuda_module.c) its entry returns (cuda_core_calls.c). */
extern const cudl_backend cudl__cuda_backend;
struct cudl_cuda_module;
extern const struct cudl_cuda_module cudl__cuda_module_table;

/* Device queries behind the public cudl_cuda_* functions (core/devices.c,
 * through the module's table). */
cudl_status cudl__cuda_device_count(int *count, char *reason,
                                    size_t reason_size);
cudl_status cudl__cuda_device_properties(int index,
                                         cudl_cuda_device_properties *props);
cudl_status cudl__cuda_versions(cudl_cuda_versions *versions);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_CUDA_INTERNAL_H */
