/*
 * cuda_backend.c - the CUDA backend: one stream, one stream-ordered memory
 * pool and the cuBLAS/cuDNN handles per context; kernels from kernels/.
 *
 * Every entry first makes the context's GPU current (the calling thread may
 * have used another) and checks each CUDA call. Nothing here synchronises
 * the host except copy_to_host and synchronize, whose contract is to wait.
 */
#include <stdio.h>
#include <string.h>

#include "cuda/cuda_internal.h"
#include "kernels/activation_kernels.h"
#include "kernels/batchnorm_kernels.h"
#include "kernels/dropout_kernels.h"
#include "kernels/elementwise_kernels.h"
#include "kernels/init_kernels.h"
#include "kernels/loss_kernels.h"
#include "kernels/pooling_kernels.h"

/* The limit's message for a pool allocation it refused, once. */
static int take_limit_refusal(cudl_context *ctx, cudaError_t err, size_t *bytes,
                              uint64_t *in_use) {
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
  if (take_limit_refusal(ctx, err, &refused_bytes, &refused_in_use))
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

static void release_state(cudl_cuda_state *s) {
  cudl__cuda_conv_release(s); /* frees on the stream: before it goes */
  if (s->cudnn != NULL) cudnnDestroy(s->cudnn);
  if (s->cublas != NULL) cublasDestroy(s->cublas);
  if (s->stream != NULL) {
    cudaStreamSynchronize(s->stream);
    cudaStreamDestroy(s->stream);
  }
  if (s->pool != NULL) cudaMemPoolDestroy(s->pool);
  (void)cudaGetLastError();
  memset(s, 0, sizeof *s);
}

static cudl_status open_state(cudl_context *ctx, cudl_cuda_state *s,
                              int device_index) {
  struct cudaMemPoolProps props;
  struct cudaDeviceProp device;
  uint64_t keep_all = UINT64_MAX;
  CUDL_CUDA_TRY(ctx, cudaSetDevice(device_index));
  CUDL_CUDA_TRY(ctx, cudaGetDeviceProperties(&device, device_index));
  snprintf(ctx->device_name, sizeof ctx->device_name, "cuda:%d (%s, sm_%d%d)",
           device_index, device.name, device.major, device.minor);
  /* cudaMalloc fails cleanly when the card is full; the limit is for
   * programs that share it (cudl_context_set_memory_limit). */
  ctx->memory_limit_default = (uint64_t)device.totalGlobalMem;
  CUDL_CUDA_TRY(ctx,
                cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
  memset(&props, 0, sizeof props);
  props.allocType = cudaMemAllocationTypePinned;
  props.location.type = cudaMemLocationTypeDevice;
  props.location.id = device_index;
  CUDL_CUDA_TRY(ctx, cudaMemPoolCreate(&s->pool, &props));
  /* Keep freed blocks in the pool: training reallocates the same sizes
   * every step, and returning memory to the driver would synchronise. */
  CUDL_CUDA_TRY(ctx, cudaMemPoolSetAttribute(
                         s->pool, cudaMemPoolAttrReleaseThreshold, &keep_all));
  CUDL_CUBLAS_TRY(ctx, cublasCreate(&s->cublas));
  CUDL_CUBLAS_TRY(ctx, cublasSetStream(s->cublas, s->stream));
  /* TF32 is opt-in: pedantic FP32 until the context asks otherwise. */
  CUDL_CUBLAS_TRY(ctx, cublasSetMathMode(s->cublas, CUBLAS_PEDANTIC_MATH));
  CUDL_CUDNN_TRY(ctx, cudnnCreate(&s->cudnn));
  CUDL_CUDNN_TRY(ctx, cudnnSetStream(s->cudnn, s->stream));
  return CUDL_OK;
}

static cudl_status cuda_open(cudl_context *ctx, int device_index) {
  cudl_status status;
  cudl_cuda_state *s = (cudl_cuda_state *)cudl__host_alloc(
      &cudl__default_allocator, sizeof *s, sizeof(void *));
  if (s == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, "cuda",
                      "cannot allocate the CUDA context state");
  memset(s, 0, sizeof *s);
  status = open_state(ctx, s, device_index);
  if (status != CUDL_OK) {
    release_state(s);
    cudl__host_free(&cudl__default_allocator, s, sizeof *s);
    return status;
  }
  ctx->backend_state = s;
  return CUDL_OK;
}

static void cuda_close(cudl_context *ctx) {
  cudl_cuda_state *s = cudl__cuda_state(ctx);
  if (s == NULL) return;
  (void)cudaSetDevice(ctx->device_index);
  release_state(s);
  /* Allocated at creation, before any allocator hook could be installed. */
  cudl__host_free(&cudl__default_allocator, s, sizeof *s);
  ctx->backend_state = NULL;
}

static cudl_status cuda_alloc_zeroed(cudl_context *ctx,
                                     const cudl_allocator *host, size_t nbytes,
                                     void **ptr) {
  void *p = NULL;
  size_t refused_bytes;
  uint64_t refused_in_use;
  cudaError_t err;
  CUDA_ENTER(ctx, s);
  (void)host;
  err = cudl__cuda_pool_alloc(ctx, s, &p, nbytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (take_limit_refusal(ctx, err, &refused_bytes, &refused_in_use))
      return cudl__memory_limit_fail(ctx, "cuda", refused_bytes,
                                     refused_in_use);
    return cudl__fail(ctx,
                      err == cudaErrorMemoryAllocation ? CUDL_ERR_OUT_OF_MEMORY
                                                       : CUDL_ERR_CUDA,
                      "cuda", "cannot allocate %zu bytes on %s: %s", nbytes,
                      ctx->device_name, cudaGetErrorString(err));
  }
  err = cudaMemsetAsync(p, 0, nbytes, s->stream);
  if (err != cudaSuccess) {
    cudaFreeAsync(p, s->stream);
    return cudl__cuda_error(ctx, err, "cudaMemsetAsync", __FILE__, __LINE__);
  }
  *ptr = p;
  return CUDL_OK;
}

static void cuda_free(cudl_context *ctx, const cudl_allocator *host, void *ptr,
                      size_t nbytes) {
  cudl_cuda_state *s = cudl__cuda_state(ctx);
  (void)host;
  (void)nbytes;
  /* Stream-ordered: the memory returns to the pool after queued work. */
  if (cudaSetDevice(ctx->device_index) != cudaSuccess ||
      cudaFreeAsync(ptr, s->stream) != cudaSuccess)
    (void)cudaGetLastError();
}

static cudl_status cuda_copy_from_host(cudl_context *ctx, void *dst,
                                       const void *src, size_t nbytes) {
  struct cudaPointerAttributes attributes;
  int pinned;
  CUDA_ENTER(ctx, s);
  /* From pageable memory the runtime stages src before returning, so the
   * caller may reuse it at once. From pinned memory (an allocator hook may
   * hand out cudaMallocHost blocks) the copy is truly asynchronous: wait
   * for it, to keep the promise that src may be reused on return. */
  pinned = cudaPointerGetAttributes(&attributes, src) == cudaSuccess &&
           attributes.type == cudaMemoryTypeHost;
  (void)cudaGetLastError();
  CUDL_CUDA_TRY(ctx, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice,
                                     s->stream));
  if (pinned) CUDL_CUDA_TRY(ctx, cudaStreamSynchronize(s->stream));
  return CUDL_OK;
}

static cudl_status cuda_copy_to_host(cudl_context *ctx, void *dst,
                                     const void *src, size_t nbytes) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToHost,
                                     s->stream));
  CUDL_CUDA_TRY(ctx, cudaStreamSynchronize(s->stream));
  return CUDL_OK;
}

static cudl_status cuda_copy_on_device(cudl_context *ctx, void *dst,
                                       const void *src, size_t nbytes) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyDeviceToDevice,
                                     s->stream));
  return CUDL_OK;
}

static cudl_status cuda_copy_from_peer(cudl_context *ctx, void *dst,
                                       cudl_context *src_ctx, const void *src,
                                       size_t nbytes) {
  CUDA_ENTER(ctx, s);
  cudaEvent_t copied;
  cudaError_t err;
  CUDL_CUDA_TRY(ctx,
                cudaMemcpyPeerAsync(dst, ctx->device_index, src,
                                    src_ctx->device_index, nbytes, s->stream));
  /* The copy runs on this context's stream; order the source context's
   * later work (a write, or the cudaFreeAsync of src) after it. Destroying
   * the event while it is pending is allowed. */
  CUDL_CUDA_TRY(ctx, cudaEventCreateWithFlags(&copied, cudaEventDisableTiming));
  err = cudaEventRecord(copied, s->stream);
  if (err == cudaSuccess)
    err = cudaStreamWaitEvent(cudl__cuda_state(src_ctx)->stream, copied, 0);
  cudaEventDestroy(copied);
  if (err != cudaSuccess)
    return cudl__cuda_error(ctx, err, "ordering a cross-context copy", __FILE__,
                            __LINE__);
  return CUDL_OK;
}

static cudl_status cuda_synchronize(cudl_context *ctx) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaStreamSynchronize(s->stream));
  return CUDL_OK;
}

static cudl_status cuda_memory_stats(cudl_context *ctx,
                                     cudl_memory_stats *stats) {
  uint64_t used = 0, used_high = 0, reserved = 0, reserved_high = 0;
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaMemPoolGetAttribute(
                         s->pool, cudaMemPoolAttrUsedMemCurrent, &used));
  CUDL_CUDA_TRY(ctx, cudaMemPoolGetAttribute(
                         s->pool, cudaMemPoolAttrUsedMemHigh, &used_high));
  CUDL_CUDA_TRY(
      ctx, cudaMemPoolGetAttribute(s->pool, cudaMemPoolAttrReservedMemCurrent,
                                   &reserved));
  CUDL_CUDA_TRY(ctx,
                cudaMemPoolGetAttribute(s->pool, cudaMemPoolAttrReservedMemHigh,
                                        &reserved_high));
  stats->bytes_in_use = used;
  stats->peak_bytes_in_use = used_high;
  stats->bytes_reserved = reserved;
  stats->peak_bytes_reserved = reserved_high;
  return CUDL_OK;
}

static cudl_status cuda_reset_peak_memory(cudl_context *ctx) {
  uint64_t zero = 0; /* the only value accepted: restart from current */
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(
      ctx, cudaMemPoolSetAttribute(s->pool, cudaMemPoolAttrUsedMemHigh, &zero));
  CUDL_CUDA_TRY(ctx, cudaMemPoolSetAttribute(
                         s->pool, cudaMemPoolAttrReservedMemHigh, &zero));
  return CUDL_OK;
}

static cudl_status cuda_event_create(cudl_context *ctx, cudl_event *event) {
  cudaEvent_t handle = NULL;
  CUDL_CUDA_TRY(ctx, cudaSetDevice(ctx->device_index));
  CUDL_CUDA_TRY(ctx, cudaEventCreate(&handle));
  event->handle = handle;
  return CUDL_OK;
}

static void cuda_event_destroy(cudl_context *ctx, cudl_event *event) {
  (void)ctx;
  if (event->handle != NULL) cudaEventDestroy((cudaEvent_t)event->handle);
  (void)cudaGetLastError();
}

static cudl_status cuda_event_record(cudl_context *ctx, cudl_event *event) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaEventRecord((cudaEvent_t)event->handle, s->stream));
  return CUDL_OK;
}

static cudl_status cuda_event_elapsed_ms(cudl_context *ctx, cudl_event *start,
                                         cudl_event *end, double *ms) {
  float elapsed = 0.0f;
  CUDL_CUDA_TRY(ctx, cudaSetDevice(ctx->device_index));
  CUDL_CUDA_TRY(ctx, cudaEventSynchronize((cudaEvent_t)end->handle));
  CUDL_CUDA_TRY(ctx, cudaEventElapsedTime(&elapsed, (cudaEvent_t)start->handle,
                                          (cudaEvent_t)end->handle));
  *ms = (double)elapsed;
  return CUDL_OK;
}

static cudl_status cuda_unit_activity_f32(cudl_context *ctx, const float *x,
                                          float *active, int64_t outer,
                                          int64_t units, int64_t inner) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_unit_activity(s->stream, x, active, outer,
                                               units, inner));
  return CUDL_OK;
}

static cudl_status cuda_fill_f32(cudl_context *ctx, float *dst, int64_t n,
                                 float value) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_fill_f32(s->stream, dst, n, value));
  return CUDL_OK;
}

static cudl_status cuda_uniform_f32(cudl_context *ctx, float *dst, int64_t n,
                                    uint64_t seed, uint64_t offset, float low,
                                    float high) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(
      ctx, cudl_launch_uniform_f32(s->stream, dst, n, seed, offset, low, high));
  return CUDL_OK;
}

static cudl_status cuda_normal_f32(cudl_context *ctx, float *dst, int64_t n,
                                   uint64_t seed, uint64_t offset, float mean,
                                   float stddev) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_normal_f32(s->stream, dst, n, seed, offset,
                                            mean, stddev));
  return CUDL_OK;
}

static cudl_status cuda_activation_forward(cudl_context *ctx,
                                           cudl_activation_kind kind,
                                           float alpha, const float *x,
                                           float *y, int64_t n) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_activation_forward(s->stream, (int)kind, alpha,
                                                    x, y, n));
  return CUDL_OK;
}

static cudl_status cuda_activation_backward(cudl_context *ctx,
                                            cudl_activation_kind kind,
                                            float alpha, const float *saved,
                                            const float *dy, float *dx,
                                            int64_t n) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_activation_backward(s->stream, (int)kind,
                                                     alpha, saved, dy, dx, n));
  return CUDL_OK;
}

static cudl_status cuda_prelu_forward(cudl_context *ctx, const float *x,
                                      const float *slope, float *y,
                                      int64_t outer, int64_t channels,
                                      int64_t inner) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_prelu_forward(s->stream, x, slope, y, outer,
                                               channels, inner));
  return CUDL_OK;
}

/* Stream-ordered scratch of `floats` floats from the context's pool: no
 * synchronisation to allocate it or to give it back with cudaFreeAsync. */
static cudl_status scratch_alloc(cudl_context *ctx, cudl_cuda_state *s,
                                 size_t floats, float **out) {
  void *p = NULL;
  CUDL_CUDA_TRY(ctx, cudl__cuda_pool_alloc(ctx, s, &p, floats * sizeof(float)));
  *out = (float *)p;
  return CUDL_OK;
}

static cudl_status cuda_prelu_backward(cudl_context *ctx, const float *x,
                                       const float *slope, const float *dy,
                                       float *dx, float *dslope, int64_t outer,
                                       int64_t channels, int64_t inner) {
  float *workspace = NULL;
  cudaError_t err;
  cudl_status status;
  CUDA_ENTER(ctx, s);
  status = scratch_alloc(ctx, s,
                         cudl_prelu_backward_workspace(outer, channels, inner),
                         &workspace);
  if (status != CUDL_OK) return status;
  err = cudl_launch_prelu_backward(s->stream, x, slope, dy, dx, dslope, outer,
                                   channels, inner, workspace);
  cudaFreeAsync(workspace, s->stream);
  return cudl__cuda_error(ctx, err, "cudl_launch_prelu_backward", __FILE__,
                          __LINE__);
}

static cudl_status cuda_rrelu_forward(cudl_context *ctx, const float *x,
                                      float *noise, float *y, int64_t n,
                                      float lower, float upper, int training,
                                      uint64_t seed, uint64_t offset) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_rrelu_forward(s->stream, x, noise, y, n, lower,
                                               upper, training, seed, offset));
  return CUDL_OK;
}

static cudl_status cuda_dropout_forward(cudl_context *ctx, const float *x,
                                        float *mask, float *y, int64_t n,
                                        float p, int training, uint64_t seed,
                                        uint64_t offset) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_dropout_forward(s->stream, x, mask, y, n, p,
                                                 training, seed, offset));
  return CUDL_OK;
}

static cudl_status cuda_pool2d_forward(cudl_context *ctx,
                                       const cudl_pool2d_geometry *g,
                                       int is_max, const float *x, float *y) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_pool2d_forward(s->stream, g, is_max, x, y));
  return CUDL_OK;
}

static cudl_status cuda_pool2d_backward(cudl_context *ctx,
                                        const cudl_pool2d_geometry *g,
                                        int is_max, const float *x,
                                        const float *dy, float *dx) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx,
                cudl_launch_pool2d_backward(s->stream, g, is_max, x, dy, dx));
  return CUDL_OK;
}

static cudl_status cuda_global_avg_pool_forward(cudl_context *ctx,
                                                const float *x, float *y,
                                                int64_t rows, int64_t cols) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(
      ctx, cudl_launch_global_avg_pool_forward(s->stream, x, y, rows, cols));
  return CUDL_OK;
}

static cudl_status cuda_global_avg_pool_backward(cudl_context *ctx,
                                                 const float *dy, float *dx,
                                                 int64_t rows, int64_t cols) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(
      ctx, cudl_launch_global_avg_pool_backward(s->stream, dy, dx, rows, cols));
  return CUDL_OK;
}

static cudl_status cuda_batchnorm_forward_training(
    cudl_context *ctx, const float *x, const float *gamma, const float *beta,
    float momentum, float eps, float *running_mean, float *running_var,
    float *y, float *save_mean, float *save_invstd, int64_t outer,
    int64_t channels, int64_t inner) {
  float *workspace = NULL;
  cudaError_t err;
  cudl_status status;
  CUDA_ENTER(ctx, s);
  status = scratch_alloc(
      ctx, s, cudl_batchnorm_workspace(outer, channels, inner), &workspace);
  if (status != CUDL_OK) return status;
  err = cudl_launch_batchnorm_forward_training(
      s->stream, x, gamma, beta, momentum, eps, running_mean, running_var, y,
      save_mean, save_invstd, outer, channels, inner, workspace);
  cudaFreeAsync(workspace, s->stream);
  return cudl__cuda_error(ctx, err, "cudl_launch_batchnorm_forward_training",
                          __FILE__, __LINE__);
}

static cudl_status cuda_batchnorm_forward_inference(
    cudl_context *ctx, const float *x, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, float eps, float *y,
    int64_t outer, int64_t channels, int64_t inner) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_batchnorm_forward_inference(
                         s->stream, x, gamma, beta, running_mean, running_var,
                         eps, y, outer, channels, inner));
  return CUDL_OK;
}

static cudl_status cuda_batchnorm_backward(
    cudl_context *ctx, const float *x, const float *dy, const float *gamma,
    const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
    float *dbeta, int64_t outer, int64_t channels, int64_t inner) {
  float *workspace = NULL;
  cudaError_t err;
  cudl_status status;
  CUDA_ENTER(ctx, s);
  status = scratch_alloc(
      ctx, s, cudl_batchnorm_workspace(outer, channels, inner), &workspace);
  if (status != CUDL_OK) return status;
  err = cudl_launch_batchnorm_backward(s->stream, x, dy, gamma, save_mean,
                                       save_invstd, dx, dgamma, dbeta, outer,
                                       channels, inner, workspace);
  cudaFreeAsync(workspace, s->stream);
  return cudl__cuda_error(ctx, err, "cudl_launch_batchnorm_backward", __FILE__,
                          __LINE__);
}

static cudl_status cuda_softmax_forward(cudl_context *ctx, const float *x,
                                        float *y, int64_t rows, int64_t cols,
                                        int is_log) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(
      ctx, cudl_launch_softmax_forward(s->stream, x, y, rows, cols, is_log));
  return CUDL_OK;
}

static cudl_status cuda_softmax_backward(cudl_context *ctx, const float *y,
                                         const float *dy, float *dx,
                                         int64_t rows, int64_t cols,
                                         int is_log) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_softmax_backward(s->stream, y, dy, dx, rows,
                                                  cols, is_log));
  return CUDL_OK;
}

static cudl_status cuda_loss_forward(cudl_context *ctx, cudl_loss_kind kind,
                                     const float *a, const float *b,
                                     float *loss, int64_t n, int mean) {
  float *workspace = NULL;
  cudaError_t err;
  cudl_status status;
  CUDA_ENTER(ctx, s);
  status = scratch_alloc(ctx, s, cudl_loss_workspace(n), &workspace);
  if (status != CUDL_OK) return status;
  err = cudl_launch_loss_forward(s->stream, (int)kind, a, b, loss, n, mean,
                                 workspace);
  cudaFreeAsync(workspace, s->stream);
  return cudl__cuda_error(ctx, err, "cudl_launch_loss_forward", __FILE__,
                          __LINE__);
}

static cudl_status cuda_loss_backward(cudl_context *ctx, cudl_loss_kind kind,
                                      const float *a, const float *b, float *d,
                                      int64_t n, int mean, float grad) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_loss_backward(s->stream, (int)kind, a, b, d, n,
                                               mean, grad));
  return CUDL_OK;
}

static cudl_status cuda_cross_entropy_forward(cudl_context *ctx, const float *x,
                                              const int32_t *labels,
                                              float *loss, int64_t rows,
                                              int64_t cols, float smoothing,
                                              int mean) {
  float *workspace = NULL;
  cudaError_t err;
  cudl_status status;
  CUDA_ENTER(ctx, s);
  status =
      scratch_alloc(ctx, s, cudl_cross_entropy_workspace(rows), &workspace);
  if (status != CUDL_OK) return status;
  err = cudl_launch_cross_entropy_forward(s->stream, x, labels, loss, rows,
                                          cols, smoothing, mean, workspace);
  cudaFreeAsync(workspace, s->stream);
  return cudl__cuda_error(ctx, err, "cudl_launch_cross_entropy_forward",
                          __FILE__, __LINE__);
}

static cudl_status cuda_cross_entropy_backward(
    cudl_context *ctx, const float *x, const int32_t *labels, float *dx,
    int64_t rows, int64_t cols, float smoothing, int mean, float grad) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(
      ctx, cudl_launch_cross_entropy_backward(s->stream, x, labels, dx, rows,
                                              cols, smoothing, mean, grad));
  return CUDL_OK;
}

static cudl_status cuda_add_scaled_f32(cudl_context *ctx, const float *a,
                                       float alpha, const float *b, float *out,
                                       int64_t n) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx,
                cudl_launch_add_scaled_f32(s->stream, a, alpha, b, out, n));
  return CUDL_OK;
}

static cudl_status cuda_scale_f32(cudl_context *ctx, const float *a,
                                  float alpha, float *out, int64_t n) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_scale_f32(s->stream, a, alpha, out, n));
  return CUDL_OK;
}

static cudl_status cuda_sum_f32(cudl_context *ctx, const float *x, float *out,
                                int64_t n, int mean) {
  float *workspace = NULL;
  cudaError_t err;
  cudl_status status;
  CUDA_ENTER(ctx, s);
  status = scratch_alloc(ctx, s, cudl_sum_workspace(n), &workspace);
  if (status != CUDL_OK) return status;
  err = cudl_launch_sum_f32(s->stream, x, out, n, mean, workspace);
  cudaFreeAsync(workspace, s->stream);
  return cudl__cuda_error(ctx, err, "cudl_launch_sum_f32", __FILE__, __LINE__);
}

static cudl_status cuda_count_nonfinite_f32(cudl_context *ctx, const float *x,
                                            int64_t n, int64_t counts[2]) {
  void *device = NULL;
  unsigned long long host[2] = {0, 0};
  cudaError_t err;
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl__cuda_pool_alloc(ctx, s, &device, sizeof host));
  err = cudaMemsetAsync(device, 0, sizeof host, s->stream);
  if (err == cudaSuccess)
    err = cudl_launch_count_nonfinite_f32(s->stream, x, n,
                                          (unsigned long long *)device);
  if (err == cudaSuccess)
    err = cudaMemcpyAsync(host, device, sizeof host, cudaMemcpyDeviceToHost,
                          s->stream);
  cudaFreeAsync(device, s->stream);
  if (err == cudaSuccess) err = cudaStreamSynchronize(s->stream);
  if (err != cudaSuccess)
    return cudl__cuda_error(ctx, err, "counting non-finite values", __FILE__,
                            __LINE__);
  counts[0] = (int64_t)host[0];
  counts[1] = (int64_t)host[1];
  return CUDL_OK;
}

static cudl_status cuda_mul_f32(cudl_context *ctx, const float *a,
                                const float *b, float *out, int64_t n) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudl_launch_mul_f32(s->stream, a, b, out, n));
  return CUDL_OK;
}

/* Designated initialisers: an entry added to cudl_backend cannot shift
 * the others, and one left out stays NULL (CUDL_ERR_UNSUPPORTED). */
const cudl_backend cudl__cuda_backend = {
    .name = "cuda",
    .open = cuda_open,
    .close = cuda_close,
    .alloc_zeroed = cuda_alloc_zeroed,
    .free = cuda_free,
    .copy_from_host = cuda_copy_from_host,
    .copy_to_host = cuda_copy_to_host,
    .copy_on_device = cuda_copy_on_device,
    .copy_from_peer = cuda_copy_from_peer,
    .synchronize = cuda_synchronize,
    .memory_stats = cuda_memory_stats,
    .reset_peak_memory = cuda_reset_peak_memory,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_elapsed_ms = cuda_event_elapsed_ms,
    .fill_f32 = cuda_fill_f32,
    .uniform_f32 = cuda_uniform_f32,
    .normal_f32 = cuda_normal_f32,
    .activation_forward = cuda_activation_forward,
    .activation_backward = cuda_activation_backward,
    .prelu_forward = cuda_prelu_forward,
    .prelu_backward = cuda_prelu_backward,
    .rrelu_forward = cuda_rrelu_forward,
    .unit_activity_f32 = cuda_unit_activity_f32,
    .dropout_forward = cuda_dropout_forward,
    .mul_f32 = cuda_mul_f32,
    .pool2d_forward = cuda_pool2d_forward,
    .pool2d_backward = cuda_pool2d_backward,
    .global_avg_pool_forward = cuda_global_avg_pool_forward,
    .global_avg_pool_backward = cuda_global_avg_pool_backward,
    .batchnorm_forward_training = cuda_batchnorm_forward_training,
    .batchnorm_forward_inference = cuda_batchnorm_forward_inference,
    .batchnorm_backward = cuda_batchnorm_backward,
    .softmax_forward = cuda_softmax_forward,
    .softmax_backward = cuda_softmax_backward,
    .loss_forward = cuda_loss_forward,
    .loss_backward = cuda_loss_backward,
    .cross_entropy_forward = cuda_cross_entropy_forward,
    .cross_entropy_backward = cuda_cross_entropy_backward,
    .add_scaled_f32 = cuda_add_scaled_f32,
    .scale_f32 = cuda_scale_f32,
    .sum_f32 = cuda_sum_f32,
    .count_nonfinite_f32 = cuda_count_nonfinite_f32,
    .gemm_f32 = cudl__cuda_gemm_f32,
    .bias_add_f32 = cudl__cuda_bias_add_f32,
    .channel_sum_f32 = cudl__cuda_channel_sum_f32,
    .conv2d_forward = cudl__cuda_conv2d_forward,
    .conv2d_backward_data = cudl__cuda_conv2d_backward_data,
    .conv2d_backward_filter = cudl__cuda_conv2d_backward_filter,
    .sgd_step = cudl__cuda_sgd_step,
    .adam_step = cudl__cuda_adam_step,
    .l2_norm_f32 = cudl__cuda_l2_norm_f32,
    .clip_scale_f32 = cudl__cuda_clip_scale_f32,
};
