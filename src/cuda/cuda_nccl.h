/*
 * cuda_nccl.h - NCCL for the communicator's GPU backend
 * (src/dist/comm_nccl.c): an NCCL communicator on a CUDA context's device
 * whose collectives run on the context's stream. The CUDA and NCCL calls
 * stay in src/cuda; this header names none of their types, so the
 * communicator's side includes neither. Built only with NCCL's header
 * (CUDL_HAVE_NCCL); the library reaches these through the module's table
 * (core/cuda_module.h).
 */
#ifndef CUDL_CUDA_NCCL_H
#define CUDL_CUDA_NCCL_H

#include <stddef.h>

#include "core/cuda_module.h"
#include "core/internal.h"

/* Whether libnccl.so.2 loads, loading it on the first call: CUDL_OK, or
 * CUDL_ERR_UNSUPPORTED with the loader's reason. The calls below need it
 * to have succeeded. */
cudl_status cudl__nccl_load(char *reason, size_t reason_size);

/* A new unique id (ncclGetUniqueId) into id[0..CUDL_NCCL_ID_BYTES), for
 * rank 0 to send to the others. Errors are recorded in ctx under
 * function's name. */
cudl_status cudl__nccl_unique_id(cudl_context *ctx, unsigned char *id,
                                 const char *function);

/* Join the NCCL communicator of id as rank of size (ncclCommInitRank on
 * ctx's device, ctx a CUDA context): collective over the ranks, and not
 * bounded by a timeout. *out is NULL on failure. */
cudl_status cudl__nccl_open(cudl_context *ctx, const unsigned char *id,
                            int rank, int size, const char *function,
                            cudl_nccl **out);

/* In-place sum over the ranks of count values of dtype (f32, bf16 or
 * f16: NCCL adds in that type) in device memory of the context, on its
 * stream (ncclAllReduce). With timeout_seconds > 0 the host waits until
 * the sum is done or the deadline passes (then the NCCL communicator is
 * aborted and the call fails); with 0 it returns once the sum is queued,
 * after checking NCCL's asynchronous error. */
cudl_status cudl__nccl_sum(cudl_nccl *n, void *values, size_t count,
                           cudl_dtype dtype, double timeout_seconds,
                           const char *function);

/* In-place copy of root's bytes (device memory of the context) to every
 * rank (ncclBroadcast), on the context's stream; the timeout as for the
 * sum. */
cudl_status cudl__nccl_broadcast(cudl_nccl *n, void *data, size_t bytes,
                                 int root, double timeout_seconds,
                                 const char *function);

/* Gradient buckets (dist/comm_internal.h) on a second stream of the
 * context's device, so that their sums overlap the rest of backward.
 * bucket_slots makes the stream (once) and room for count buckets in
 * flight. bucket_start queues bucket slot's sum of count values of dtype
 * (f32, bf16, f16) in device memory on the second stream, after what the
 * context's stream has queued so far (the layers that wrote them).
 * bucket_finish makes the context's stream wait for that sum; with
 * timeout_seconds > 0 the host also waits for it within the timeout (a
 * watchdog: past it the communicator is aborted). */
cudl_status cudl__nccl_bucket_slots(cudl_nccl *n, int count,
                                    const char *function);
cudl_status cudl__nccl_bucket_start(cudl_nccl *n, int slot, void *values,
                                    size_t count, cudl_dtype dtype,
                                    const char *function);
cudl_status cudl__nccl_bucket_finish(cudl_nccl *n, int slot,
                                     double timeout_seconds,
                                     const char *function);

/* ncclCommAbort: stop the communicator's pending work without waiting for
 * the other ranks; every later collective fails. */
void cudl__nccl_abort(cudl_nccl *n);

/* Release the communicator (ncclCommDestroy, or nothing more after an
 * abort); NULL is a no-op. */
void cudl__nccl_close(cudl_nccl *n);

#endif /* CUDL_CUDA_NCCL_H */
