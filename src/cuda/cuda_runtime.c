/*
 * cuda_runtime.c - the CUDA device runtime (core/runtime.h): one stream,
 * one stream-ordered memory pool and the cuBLAS/cuDNN handles per context;
 * memory, copies, synchronisation and events; and the backend's
 * registration, the runtime beside the operators of kernels/ and of
 * cuda_gemm.c and cuda_conv.c.
 *
 * Every entry first makes the context's GPU current (the calling thread may
 * have used another) and checks each CUDA call. Nothing here synchronises
 * the host except copy_to_host and synchronize, whose contract is to wait.
 *
 * The stream is the context's own, or the caller's when it gave one
 * (cudl_context_create_cuda_stream): then everything runs on that stream
 * alike and only destroying it is left to the caller.
 */
#include <stdio.h>
#include <string.h>

#include "cuda/cuda_internal.h"
#include "cuda/cuda_probe.h"

static void release_state(cudl_cuda_state *s) {
  cudl__cuda_conv_release(s); /* frees on the stream: before it goes */
  if (s->cudnn != NULL) cudnnDestroy(s->cudnn);
  if (s->cublas != NULL) cublasDestroy(s->cublas);
  if (s->cublas_workspace != NULL)
    (void)cudaFreeAsync(s->cublas_workspace, s->stream);
  if (s->stream != NULL) {
    cudaStreamSynchronize(s->stream);
    if (!s->stream_borrowed) cudaStreamDestroy(s->stream);
  }
  if (s->pool != NULL) cudaMemPoolDestroy(s->pool);
  (void)cudaGetLastError();
  memset(s, 0, sizeof *s);
}

/* Make the caller's stream the context's, once it is known to be usable:
 * not the per-thread default stream, which is another stream in each
 * thread that may use the context; of the context's GPU where the runtime
 * can tell (cudaStreamGetDevice, CUDA 12.8). */
static cudl_status take_caller_stream(cudl_context *ctx, cudl_cuda_state *s,
                                      int device_index) {
  cudaStream_t stream = (cudaStream_t)ctx->caller_stream;
#if CUDART_VERSION >= 12080
  int stream_device = -1;
  cudaError_t err;
#endif
  if (stream == cudaStreamPerThread)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT,
                      "cudl_context_create_cuda_stream",
                      "cudaStreamPerThread is a different stream in each "
                      "thread; pass a stream the program created");
#if CUDART_VERSION >= 12080
  /* cudaStreamLegacy answers with the current device. */
  CUDL_CUDA_TRY(ctx, cudaSetDevice(device_index));
  err = cudaStreamGetDevice(stream, &stream_device);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT,
                      "cudl_context_create_cuda_stream",
                      "the stream is not usable: cudaStreamGetDevice: %s",
                      cudaGetErrorString(err));
  }
  if (stream_device != device_index)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT,
                      "cudl_context_create_cuda_stream",
                      "the stream belongs to cuda:%d, not cuda:%d",
                      stream_device, device_index);
#endif
  s->stream = stream;
  s->stream_borrowed = 1;
  return CUDL_OK;
}

static cudl_status open_state(cudl_context *ctx, cudl_cuda_state *s,
                              int device_index) {
  struct cudaMemPoolProps props;
  struct cudaDeviceProp device;
  uint64_t keep_all = UINT64_MAX;
  char reason[CUDL_ERROR_TEXT_SIZE];
  cudl_status status;
  /* A card the build has no code for is refused here, with the reason,
   * rather than by the first kernel launch. */
  status =
      cudl__cuda_kernel_loads(device_index, cudl__cuda_probe_kernel(),
                              cudl_cuda_architectures(), reason, sizeof reason);
  if (status != CUDL_OK)
    return cudl__fail(ctx, status, "cudl_context_create", "%s", reason);
  CUDL_CUDA_TRY(ctx, cudaGetDeviceProperties(&device, device_index));
  snprintf(ctx->device_name, sizeof ctx->device_name, "cuda:%d (%s, sm_%d%d)",
           device_index, device.name, device.major, device.minor);
  /* cudaMalloc fails cleanly when the card is full; the limit is for
   * programs that share it (cudl_context_set_memory_limit). */
  ctx->memory_limit_default = (uint64_t)device.totalGlobalMem;
  if (ctx->caller_stream != NULL) {
    status = take_caller_stream(ctx, s, device_index);
    if (status != CUDL_OK) return status;
  } else {
    CUDL_CUDA_TRY(ctx,
                  cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking));
  }
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
    if (cudl__cuda_take_limit_refusal(ctx, err, &refused_bytes,
                                      &refused_in_use))
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

/* One end of a wrapped range: device or managed memory of ctx's GPU. */
static cudl_status check_device_pointer(cudl_context *ctx, const void *p,
                                        const char *what) {
  struct cudaPointerAttributes attributes;
  cudaError_t err = cudaPointerGetAttributes(&attributes, p);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_tensor_wrap",
                      "%s (%p) is not memory CUDA knows: "
                      "cudaPointerGetAttributes: %s",
                      what, p, cudaGetErrorString(err));
  }
  switch (attributes.type) {
    case cudaMemoryTypeDevice:
    case cudaMemoryTypeManaged:
      if (attributes.device == ctx->device_index) return CUDL_OK;
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_tensor_wrap",
                        "%s (%p) is memory of cuda:%d, but the context is on "
                        "%s",
                        what, p, attributes.device, ctx->device_name);
    case cudaMemoryTypeHost:
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_tensor_wrap",
                        "%s (%p) is page-locked host memory; a CUDA context "
                        "wraps device memory of its GPU (copy host data in "
                        "with cudl_tensor_copy_from_host)",
                        what, p);
    default:
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_tensor_wrap",
                        "%s (%p) is not device memory (host memory, or not "
                        "allocated); a CUDA context wraps device memory of "
                        "its GPU (copy host data in with "
                        "cudl_tensor_copy_from_host)",
                        what, p);
  }
}

/* Both ends, so that a size running past a device allocation is caught
 * in the usual case (the bytes after it unmapped). */
static cudl_status cuda_check_foreign_memory(cudl_context *ctx, const void *ptr,
                                             size_t nbytes) {
  cudl_status status;
  CUDA_ENTER(ctx, s);
  (void)s;
  status = check_device_pointer(ctx, ptr, "data");
  if (status != CUDL_OK || nbytes <= 1) return status;
  return check_device_pointer(ctx, (const char *)ptr + (nbytes - 1),
                              "the last byte of data");
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

/* Page-locked, so that the DMA engine reads it while the host goes on;
 * portable, so that any context's stream may copy from it. */
static cudl_status cuda_host_pinned_alloc(cudl_context *ctx, size_t nbytes,
                                          void **ptr) {
  void *p = NULL;
  cudaError_t err;
  *ptr = NULL;
  CUDL_CUDA_TRY(ctx, cudaSetDevice(ctx->device_index));
  /* Counted by fault injection as the device's allocations are; reported
   * here, since the memory limit (device memory) has no say in it. */
  err = cudl__allocation_fails(ctx)
            ? cudaErrorMemoryAllocation
            : cudaHostAlloc(&p, nbytes > 0 ? nbytes : 1, cudaHostAllocPortable);
  if (err == cudaErrorMemoryAllocation) {
    (void)cudaGetLastError();
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, "cuda",
                      "cannot allocate %zu bytes of page-locked host memory",
                      nbytes);
  }
  CUDL_CUDA_TRY(ctx, err);
  *ptr = p;
  return CUDL_OK;
}

static void cuda_host_pinned_free(cudl_context *ctx, void *ptr, size_t nbytes) {
  (void)ctx;
  (void)nbytes;
  if (ptr != NULL) cudaFreeHost(ptr);
  (void)cudaGetLastError();
}

/* No wait: from pinned memory the copy runs behind the stream's work (the
 * caller waits for an event before it reuses src); from pageable memory
 * the runtime stages src before returning. */
static cudl_status cuda_copy_from_host_async(cudl_context *ctx, void *dst,
                                             const void *src, size_t nbytes) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaMemcpyAsync(dst, src, nbytes, cudaMemcpyHostToDevice,
                                     s->stream));
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
  CUDL_CUDA_TRY(ctx, cudaEventCreateWithFlags(
                         &handle, event->timing ? cudaEventDefault
                                                : cudaEventDisableTiming));
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

static cudl_status cuda_event_wait(cudl_context *ctx, cudl_event *event) {
  CUDL_CUDA_TRY(ctx, cudaSetDevice(ctx->device_index));
  CUDL_CUDA_TRY(ctx, cudaEventSynchronize((cudaEvent_t)event->handle));
  return CUDL_OK;
}

/* ---- graphs ---- */

/* NVIDIA's recommended cuBLAS workspace for Hopper (smaller cards need
 * less; one size keeps the algorithms the same on every card). */
#define CUBLAS_GRAPH_WORKSPACE ((size_t)32 << 20)

/* Thread-local capture: only this thread's calls that would break the
 * recording (a synchronisation, a cudaMalloc) are refused, not those of
 * the program's other threads. A caller's stream that its owner is
 * capturing is left alone: captures do not nest. */
static cudl_status cuda_graph_begin(cudl_context *ctx) {
  enum cudaStreamCaptureStatus status = cudaStreamCaptureStatusNone;
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaStreamIsCapturing(s->stream, &status));
  if (status != cudaStreamCaptureStatusNone)
    return CUDL_FAIL(ctx, CUDL_ERR_UNSUPPORTED,
                     "the context's stream is being captured already (by "
                     "the program that gave it): cudl records nothing "
                     "inside another capture");
  if (s->cublas_workspace == NULL) {
    void *p = NULL;
    cudaError_t err = cudl__cuda_pool_alloc(ctx, s, &p, CUBLAS_GRAPH_WORKSPACE);
    if (err != cudaSuccess)
      return cudl__cuda_error(ctx, err, "a cuBLAS workspace for CUDA graphs",
                              __FILE__, __LINE__);
    if (cublasSetWorkspace(s->cublas, p, CUBLAS_GRAPH_WORKSPACE) !=
        CUBLAS_STATUS_SUCCESS) {
      (void)cudaFreeAsync(p, s->stream);
      (void)cudaGetLastError();
      return CUDL_FAIL(ctx, CUDL_ERR_INTERNAL,
                       "cublasSetWorkspace refused %zu bytes",
                       CUBLAS_GRAPH_WORKSPACE);
    }
    s->cublas_workspace = p;
  }
  CUDL_CUDA_TRY(
      ctx, cudaStreamBeginCapture(s->stream, cudaStreamCaptureModeThreadLocal));
  s->capturing = 1;
  return CUDL_OK;
}

static cudl_status cuda_graph_end(cudl_context *ctx, int keep, void **graph) {
  cudaGraph_t recorded = NULL;
  cudaGraphExec_t exec = NULL;
  cudaError_t err;
  cudl_cuda_state *s = cudl__cuda_state(ctx);
  *graph = NULL;
  /* Ends the capture whatever happened, even when an operator broke it
   * (then err says so and no graph is returned): the stream must run work
   * again. */
  (void)cudaSetDevice(ctx->device_index);
  err = cudaStreamEndCapture(s->stream, &recorded);
  s->capturing = 0;
  if (err == cudaSuccess && keep)
    err = cudaGraphInstantiate(&exec, recorded, 0);
  if (recorded != NULL) cudaGraphDestroy(recorded);
  if (err != cudaSuccess)
    return cudl__cuda_error(ctx, err, "recording a CUDA graph", __FILE__,
                            __LINE__);
  *graph = exec; /* NULL without keep */
  return CUDL_OK;
}

static cudl_status cuda_graph_launch(cudl_context *ctx, void *graph) {
  CUDA_ENTER(ctx, s);
  CUDL_CUDA_TRY(ctx, cudaGraphLaunch((cudaGraphExec_t)graph, s->stream));
  return CUDL_OK;
}

static void cuda_graph_destroy(cudl_context *ctx, void *graph) {
  (void)ctx;
  if (graph != NULL) cudaGraphExecDestroy((cudaGraphExec_t)graph);
  (void)cudaGetLastError();
}

/* bf16 arithmetic (tensor cores and scalar) starts at compute capability
 * 8.0. f16 tensor cores are older (7.0), but cudl's kernels target the
 * cards of sm_80 and newer, so one threshold serves both 16-bit types. */
static cudl_status cuda_check_compute_dtype(cudl_context *ctx,
                                            cudl_dtype dtype) {
  int major = 0;
  if (dtype == CUDL_DTYPE_F32) return CUDL_OK;
  CUDL_CUDA_TRY(
      ctx, cudaDeviceGetAttribute(&major, cudaDevAttrComputeCapabilityMajor,
                                  ctx->device_index));
  if (major >= 8) return CUDL_OK;
  return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, "cuda",
                    "%s mixed precision needs compute capability 8.0 or "
                    "newer; %s has %d.x",
                    cudl_dtype_name(dtype), ctx->device_name, major);
}

static const cudl_runtime cuda_runtime = {
    .open = cuda_open,
    .close = cuda_close,
    .alloc_zeroed = cuda_alloc_zeroed,
    .free = cuda_free,
    .check_foreign_memory = cuda_check_foreign_memory,
    .copy_from_host = cuda_copy_from_host,
    .copy_to_host = cuda_copy_to_host,
    .copy_on_device = cuda_copy_on_device,
    .copy_from_peer = cuda_copy_from_peer,
    .host_pinned_alloc = cuda_host_pinned_alloc,
    .host_pinned_free = cuda_host_pinned_free,
    .copy_from_host_async = cuda_copy_from_host_async,
    .synchronize = cuda_synchronize,
    .memory_stats = cuda_memory_stats,
    .reset_peak_memory = cuda_reset_peak_memory,
    .event_create = cuda_event_create,
    .event_destroy = cuda_event_destroy,
    .event_record = cuda_event_record,
    .event_elapsed_ms = cuda_event_elapsed_ms,
    .event_wait = cuda_event_wait,
    .check_compute_dtype = cuda_check_compute_dtype,
    .graph_begin = cuda_graph_begin,
    .graph_end = cuda_graph_end,
    .graph_launch = cuda_graph_launch,
    .graph_destroy = cuda_graph_destroy,
};

/* Every operator of ops.def, each defined in the kernels/ file of its family
 * or, for cuBLAS and cuDNN, in cuda_gemm.c and cuda_conv.c: one missing
 * fails to link. C, for the designated initialisers. */
const cudl_ops cudl__cuda_ops = {
#define CUDL_OP(name, dtypes, params) CUDL_REGISTER_OP(cuda, name, dtypes)
#include "core/ops.def"
#undef CUDL_OP
};

const cudl_backend cudl__cuda_backend = {"cuda", &cuda_runtime,
                                         &cudl__cuda_ops};
