/*
 * cuda_nccl.c - the NCCL calls of the communicator's GPU backend
 * (cuda_nccl.h): an NCCL communicator per CUDA context, its collectives
 * queued on the context's stream.
 *
 * A bounded collective (timeout > 0) records an event after it and polls
 * the event and ncclCommGetAsyncError until the event completes, NCCL
 * reports an error, or the deadline passes; the last two abort the NCCL
 * communicator (ncclCommAbort), which is how NCCL lets a rank leave a
 * collective the others will never join. The poll spins for its first
 * millisecond, then sleeps 50 us between queries, as the MPI backend's
 * does. An unbounded collective is only queued: the host does not wait
 * for the GPU, and NCCL's asynchronous error is checked at the next call.
 */
#include "cuda/cuda_nccl.h"

#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <nccl.h>

#include "cuda/cuda_internal.h"

/* The NCCL functions used, as loaded. */
static struct nccl_api {
  ncclResult_t (*GetUniqueId)(ncclUniqueId *id);
  ncclResult_t (*CommInitRank)(ncclComm_t *comm, int size, ncclUniqueId id,
                               int rank);
  ncclResult_t (*CommAbort)(ncclComm_t comm);
  ncclResult_t (*CommDestroy)(ncclComm_t comm);
  ncclResult_t (*CommGetAsyncError)(ncclComm_t comm, ncclResult_t *async);
  ncclResult_t (*AllReduce)(const void *send, void *receive, size_t count,
                            ncclDataType_t type, ncclRedOp_t op,
                            ncclComm_t comm, cudaStream_t stream);
  ncclResult_t (*Broadcast)(const void *send, void *receive, size_t count,
                            ncclDataType_t type, int root, ncclComm_t comm,
                            cudaStream_t stream);
  const char *(*GetErrorString)(ncclResult_t result);
  const char *(*GetLastError)(ncclComm_t comm);
} nccl;

static pthread_once_t nccl_once = PTHREAD_ONCE_INIT;
static int nccl_loaded;
static char nccl_error[CUDL_ERROR_TEXT_SIZE];

/* One symbol of handle into *slot; 0 (with the reason) when missing. ISO
 * C cannot convert void * to a function pointer: POSIX makes the copy
 * work. */
static int take_symbol(void *handle, const char *name, void *slot,
                       size_t size) {
  void *symbol = dlsym(handle, name);
  if (symbol == NULL) {
    snprintf(nccl_error, sizeof nccl_error,
             "the NCCL library has no %s: NCCL 2.13 or later is needed", name);
    return 0;
  }
  memcpy(slot, &symbol, size);
  return 1;
}

static void nccl_load_once(void) {
  void *handle = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    char first[CUDL_ERROR_TEXT_SIZE];
    snprintf(first, sizeof first, "%s", dlerror());
    handle = dlopen(CUDL_NCCL_LIBRARY_DIR "/libnccl.so.2",
                    RTLD_NOW | RTLD_LOCAL);
    if (handle == NULL) {
      snprintf(nccl_error, sizeof nccl_error,
               "NCCL could not be loaded: %s (install NCCL, or put the "
               "directory of libnccl.so.2 in LD_LIBRARY_PATH)",
               first);
      return;
    }
  }
#define TAKE(field, name) take_symbol(handle, name, &nccl.field, sizeof nccl.field)
  if (!TAKE(GetUniqueId, "ncclGetUniqueId") ||
      !TAKE(CommInitRank, "ncclCommInitRank") ||
      !TAKE(CommAbort, "ncclCommAbort") ||
      !TAKE(CommDestroy, "ncclCommDestroy") ||
      !TAKE(CommGetAsyncError, "ncclCommGetAsyncError") ||
      !TAKE(AllReduce, "ncclAllReduce") || !TAKE(Broadcast, "ncclBroadcast") ||
      !TAKE(GetErrorString, "ncclGetErrorString") ||
      !TAKE(GetLastError, "ncclGetLastError")) {
    dlclose(handle);
    return;
  }
#undef TAKE
  nccl_loaded = 1;
}

cudl_status cudl__nccl_load(char *reason, size_t reason_size) {
  pthread_once(&nccl_once, nccl_load_once);
  if (nccl_loaded) return CUDL_OK;
  if (reason != NULL && reason_size > 0)
    snprintf(reason, reason_size, "%s", nccl_error);
  return CUDL_ERR_UNSUPPORTED;
}

typedef char cudl_nccl_id_bytes_agree
    [sizeof(((ncclUniqueId *)0)->internal) == CUDL_NCCL_ID_BYTES ? 1 : -1];

struct cudl_nccl {
  cudl_context *ctx;
  ncclComm_t comm;
  cudaEvent_t done; /* recorded after a bounded collective */
  int rank, size;
  int aborted; /* ncclCommAbort was called: nothing more can run */
  /* Gradient buckets: the second stream their sums run on, and per slot
   * the event after the layers that wrote it (ready) and the one after
   * its sum (summed); slots of them created. */
  cudaStream_t side;
  cudaEvent_t *ready, *summed;
  int slots;
};

/* An NCCL failure as a status, with NCCL's text for the code and its last
 * error message (the call's detail, where NCCL kept one). */
static cudl_status nccl_fail(cudl_context *ctx, const char *function,
                             const char *call, ncclResult_t result,
                             ncclComm_t comm, const char *after) {
  const char *detail = nccl.GetLastError(comm);
  return cudl__fail(
      ctx, result == ncclUnhandledCudaError ? CUDL_ERR_CUDA : CUDL_ERR_IO,
      function, "%s failed: %s%s%s (NCCL error %d)%s", call,
      nccl.GetErrorString(result), detail != NULL && detail[0] != '\0' ? ": " : "",
      detail != NULL ? detail : "", (int)result, after);
}

static double seconds_now(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
  return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

cudl_status cudl__nccl_unique_id(cudl_context *ctx, unsigned char *id,
                                 const char *function) {
  ncclUniqueId unique;
  ncclResult_t result = nccl.GetUniqueId(&unique);
  if (result != ncclSuccess)
    return nccl_fail(ctx, function, "ncclGetUniqueId", result, NULL, "");
  memcpy(id, unique.internal, CUDL_NCCL_ID_BYTES);
  return CUDL_OK;
}

cudl_status cudl__nccl_open(cudl_context *ctx, const unsigned char *id,
                            int rank, int size, const char *function,
                            cudl_nccl **out) {
  ncclUniqueId unique;
  ncclResult_t result;
  cudaError_t err;
  cudl_nccl *n;
  *out = NULL;
  /* ncclCommInitRank binds the communicator to the current device. */
  err = cudaSetDevice(ctx->device_index);
  if (err != cudaSuccess)
    return cudl__cuda_error(ctx, err, "cudaSetDevice", __FILE__, __LINE__);
  n = (cudl_nccl *)cudl__host_alloc(&ctx->allocator, sizeof *n, 64);
  if (n == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the NCCL communicator's state");
  memset(n, 0, sizeof *n);
  n->ctx = ctx;
  n->rank = rank;
  n->size = size;
  err = cudaEventCreateWithFlags(&n->done, cudaEventDisableTiming);
  if (err != cudaSuccess) {
    cudl__host_free(&ctx->allocator, n, sizeof *n);
    return cudl__cuda_error(ctx, err, "cudaEventCreateWithFlags", __FILE__,
                            __LINE__);
  }
  memcpy(unique.internal, id, CUDL_NCCL_ID_BYTES);
  result = nccl.CommInitRank(&n->comm, size, unique, rank);
  if (result != ncclSuccess) {
    cudl_status s =
        nccl_fail(ctx, function, "ncclCommInitRank", result, NULL, "");
    cudaEventDestroy(n->done);
    cudl__host_free(&ctx->allocator, n, sizeof *n);
    return s;
  }
  *out = n;
  return CUDL_OK;
}

void cudl__nccl_abort(cudl_nccl *n) {
  if (n == NULL || n->aborted) return;
  nccl.CommAbort(n->comm);
  n->aborted = 1;
}

/* The bucket slots' events and their arrays. */
static void release_bucket_events(cudl_nccl *n) {
  int i;
  for (i = 0; i < n->slots; ++i) {
    if (n->ready[i] != NULL) cudaEventDestroy(n->ready[i]);
    if (n->summed[i] != NULL) cudaEventDestroy(n->summed[i]);
  }
  cudl__host_free(&n->ctx->allocator, n->ready, (size_t)n->slots * sizeof *n->ready);
  cudl__host_free(&n->ctx->allocator, n->summed,
                  (size_t)n->slots * sizeof *n->summed);
  n->ready = n->summed = NULL;
  n->slots = 0;
}

void cudl__nccl_close(cudl_nccl *n) {
  cudl_allocator allocator;
  if (n == NULL) return;
  (void)cudaSetDevice(n->ctx->device_index);
  if (!n->aborted) nccl.CommDestroy(n->comm);
  cudaEventDestroy(n->done);
  release_bucket_events(n);
  if (n->side != NULL) cudaStreamDestroy(n->side);
  (void)cudaGetLastError();
  allocator = n->ctx->allocator;
  cudl__host_free(&allocator, n, sizeof *n);
}

/* The communicator's asynchronous error (a failed peer, a network error)
 * as a status; an error aborts the communicator. */
static cudl_status check_async(cudl_nccl *n, const char *call,
                               const char *function) {
  ncclResult_t async = ncclSuccess;
  ncclResult_t result = nccl.CommGetAsyncError(n->comm, &async);
  cudl_status s;
  if (result != ncclSuccess)
    return nccl_fail(n->ctx, function, "ncclCommGetAsyncError", result,
                     n->comm, "");
  if (async == ncclSuccess || async == ncclInProgress) return CUDL_OK;
  /* The text first: ncclGetLastError is the communicator's until the
   * abort releases it. */
  s = nccl_fail(n->ctx, function, call, async, n->comm,
                ": the NCCL communicator has been aborted and cannot be "
                "used again, end the job");
  cudl__nccl_abort(n);
  return s;
}

/* Before a collective: the context's device current, no error left
 * pending by an earlier call, and a communicator still usable. */
static cudl_status enter(cudl_nccl *n, const char *function) {
  cudaError_t err;
  if (n->aborted)
    return cudl__fail(n->ctx, CUDL_ERR_IO, function,
                      "the NCCL communicator was aborted after an earlier "
                      "failure or timeout and cannot be used again: end the "
                      "job");
  err = cudaSetDevice(n->ctx->device_index);
  if (err != cudaSuccess)
    return cudl__cuda_error(n->ctx, err, "cudaSetDevice", __FILE__, __LINE__);
  (void)cudaGetLastError();
  return CUDL_OK;
}

/* Wait on the host for event (recorded after call) within limit seconds,
 * checking NCCL's asynchronous error meanwhile; past the deadline the
 * communicator is aborted. */
static cudl_status wait_event(cudl_nccl *n, cudaEvent_t event,
                              const char *call, double limit,
                              const char *function) {
  const struct timespec pause = {0, 50000};
  const double start = seconds_now();
  for (;;) {
    cudl_status s;
    double waited;
    cudaError_t err = cudaEventQuery(event);
    if (err == cudaSuccess) return check_async(n, call, function);
    if (err != cudaErrorNotReady)
      return cudl__cuda_error(n->ctx, err, "cudaEventQuery", __FILE__,
                              __LINE__);
    s = check_async(n, call, function);
    if (s != CUDL_OK) return s;
    waited = seconds_now() - start;
    if (waited > limit) {
      cudl__nccl_abort(n);
      return cudl__fail(n->ctx, CUDL_ERR_IO, function,
                        "%s did not complete within the timeout of %g s "
                        "(rank %d of %d waited %.1f s): another rank is hung "
                        "or far slower; the NCCL communicator has been "
                        "aborted and cannot be used again, end the job",
                        call, limit, n->rank, n->size, waited);
    }
    if (waited > 1e-3) nanosleep(&pause, NULL);
  }
}

/* After call (queued with result): without a timeout, its asynchronous
 * error; with one, wait for it on the host until the deadline. */
static cudl_status finish(cudl_nccl *n, ncclResult_t result, const char *call,
                          double limit, const char *function) {
  cudaError_t err;
  if (result != ncclSuccess && result != ncclInProgress)
    return nccl_fail(n->ctx, function, call, result, n->comm, "");
  if (limit <= 0.0) return check_async(n, call, function);
  err = cudaEventRecord(n->done, cudl__cuda_state(n->ctx)->stream);
  if (err != cudaSuccess)
    return cudl__cuda_error(n->ctx, err, "cudaEventRecord", __FILE__,
                            __LINE__);
  return wait_event(n, n->done, call, limit, function);
}

static ncclDataType_t nccl_type(cudl_dtype dtype) {
  return dtype == CUDL_DTYPE_BF16  ? ncclBfloat16
         : dtype == CUDL_DTYPE_F16 ? ncclFloat16
                                   : ncclFloat32;
}

cudl_status cudl__nccl_sum(cudl_nccl *n, void *values, size_t count,
                           cudl_dtype dtype, double timeout_seconds,
                           const char *function) {
  cudl_status s = enter(n, function);
  if (s != CUDL_OK) return s;
  return finish(n,
                nccl.AllReduce(values, values, count, nccl_type(dtype),
                               ncclSum, n->comm,
                               cudl__cuda_state(n->ctx)->stream),
                "ncclAllReduce", timeout_seconds, function);
}

cudl_status cudl__nccl_broadcast(cudl_nccl *n, void *data, size_t bytes,
                                 int root, double timeout_seconds,
                                 const char *function) {
  cudl_status s = enter(n, function);
  if (s != CUDL_OK) return s;
  return finish(n,
                nccl.Broadcast(data, data, bytes, ncclUint8, root, n->comm,
                              cudl__cuda_state(n->ctx)->stream),
                "ncclBroadcast", timeout_seconds, function);
}

/* ---- gradient buckets on the second stream (dist/comm_internal.h) ---- */

#define BUCKET_TRY(call)                                                  \
  do {                                                                    \
    cudaError_t cudl_err_ = (call);                                       \
    if (cudl_err_ != cudaSuccess)                                         \
      return cudl__cuda_error(n->ctx, cudl_err_, #call, __FILE__, __LINE__); \
  } while (0)

cudl_status cudl__nccl_bucket_slots(cudl_nccl *n, int count,
                                    const char *function) {
  cudaEvent_t *ready, *summed;
  int i;
  cudl_status s = enter(n, function);
  if (s != CUDL_OK) return s;
  /* Its sums wait for nothing else, so give them the stream priority
   * that lets them start between the kernels of backward. */
  if (n->side == NULL) {
    int least = 0, greatest = 0;
    BUCKET_TRY(cudaDeviceGetStreamPriorityRange(&least, &greatest));
    BUCKET_TRY(cudaStreamCreateWithPriority(&n->side, cudaStreamNonBlocking,
                                            greatest));
  }
  if (count <= n->slots) return CUDL_OK;
  ready = (cudaEvent_t *)cudl__host_alloc(&n->ctx->allocator,
                                          (size_t)count * sizeof *ready, 64);
  summed = (cudaEvent_t *)cudl__host_alloc(&n->ctx->allocator,
                                           (size_t)count * sizeof *summed, 64);
  if (ready == NULL || summed == NULL) {
    cudl__host_free(&n->ctx->allocator, ready, (size_t)count * sizeof *ready);
    cudl__host_free(&n->ctx->allocator, summed,
                    (size_t)count * sizeof *summed);
    return cudl__fail(n->ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the events of %d gradient buckets",
                      count);
  }
  memset(ready, 0, (size_t)count * sizeof *ready);
  memset(summed, 0, (size_t)count * sizeof *summed);
  release_bucket_events(n);
  n->ready = ready;
  n->summed = summed;
  n->slots = count;
  for (i = 0; i < count; ++i) {
    BUCKET_TRY(cudaEventCreateWithFlags(&n->ready[i], cudaEventDisableTiming));
    BUCKET_TRY(cudaEventCreateWithFlags(&n->summed[i], cudaEventDisableTiming));
  }
  return CUDL_OK;
}

cudl_status cudl__nccl_bucket_start(cudl_nccl *n, int slot, void *values,
                                    size_t count, cudl_dtype dtype,
                                    const char *function) {
  ncclResult_t result;
  cudl_status s = enter(n, function);
  if (s != CUDL_OK) return s;
  if (slot < 0 || slot >= n->slots || n->side == NULL)
    return cudl__fail(n->ctx, CUDL_ERR_INTERNAL, function,
                      "gradient bucket %d started without its slot (%d made)",
                      slot, n->slots);
  /* After the layers that wrote the bucket, on the side stream. */
  BUCKET_TRY(cudaEventRecord(n->ready[slot], cudl__cuda_state(n->ctx)->stream));
  BUCKET_TRY(cudaStreamWaitEvent(n->side, n->ready[slot], 0));
  result = nccl.AllReduce(values, values, count, nccl_type(dtype), ncclSum,
                          n->comm, n->side);
  if (result != ncclSuccess && result != ncclInProgress)
    return nccl_fail(n->ctx, function, "ncclAllReduce", result, n->comm, "");
  return check_async(n, "ncclAllReduce", function);
}

cudl_status cudl__nccl_bucket_finish(cudl_nccl *n, int slot,
                                     double timeout_seconds,
                                     const char *function) {
  cudl_status s = enter(n, function);
  if (s != CUDL_OK) return s;
  if (slot < 0 || slot >= n->slots || n->side == NULL)
    return cudl__fail(n->ctx, CUDL_ERR_INTERNAL, function,
                      "gradient bucket %d finished without its slot (%d made)",
                      slot, n->slots);
  /* The context's later work (the mean, the optimizer) after the sum. */
  BUCKET_TRY(cudaEventRecord(n->summed[slot], n->side));
  BUCKET_TRY(cudaStreamWaitEvent(cudl__cuda_state(n->ctx)->stream,
                                 n->summed[slot], 0));
  if (timeout_seconds <= 0.0) return check_async(n, "ncclAllReduce", function);
  return wait_event(n, n->summed[slot], "ncclAllReduce", timeout_seconds,
                    function);
}
