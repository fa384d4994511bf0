/*
 * comm_internal.h - the communicator behind cudl/dist.h: a handle with a
 * table of the few collective operations a backend provides. comm.c holds
 * the checked public entries (which stage device tensors through host
 * memory for backends that need host buffers) and the "local" backend;
 * comm_mpi.c the MPI backend; comm_nccl.c the NCCL one.
 *
 * The NCCL backend's table has device_buffers = 1: its sum_f32 and
 * broadcast take device pointers of the communicator's context, on its
 * stream, so comm.c passes a tensor's data without staging it (and
 * refuses another context's tensor); its host-value operations (sum_f64,
 * min_u64, barrier) go through the bootstrap communicator it was created
 * over (cudl_comm_create_nccl).
 */
#ifndef CUDL_DIST_COMM_INTERNAL_H
#define CUDL_DIST_COMM_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include <cudl/dist.h>

#include "core/internal.h"

typedef struct cudl_comm_ops {
  const char *name;
  /* 1: sum_f32 and broadcast take device memory of the communicator's
   * context (NCCL); 0: host memory. sum_f64 and min_u64 always take host
   * memory. */
  int device_buffers;
  /* Sum over the ranks into every rank's buffer, identical bits on each. */
  cudl_status (*sum_f32)(cudl_comm *comm, float *values, size_t count);
  cudl_status (*sum_f64)(cudl_comm *comm, double *values, size_t count);
  /* Elementwise minimum over the ranks, in place. */
  cudl_status (*min_u64)(cudl_comm *comm, uint64_t *values, size_t count);
  cudl_status (*broadcast)(cudl_comm *comm, void *data, size_t bytes,
                           int root);
  cudl_status (*barrier)(cudl_comm *comm);
  void (*abort)(cudl_comm *comm, int code);
  /* Release the backend's state (impl); comm.c frees the rest. */
  void (*release)(cudl_comm *comm);

  /* Gradient buckets (grad_sync.c): the gradient arena averaged in pieces
   * while backward still computes the earlier layers. A bucket's sum is a
   * reduction to rank 0 then a broadcast from it, like sum_f32, so every
   * rank gets the same bits; each is started and completed in separate
   * calls, the slot (0 to count - 1 of the last bucket_slots) naming it.
   * grad_sync.c calls them in the same order on every rank (the order in
   * which the ranks' non-blocking collectives match): bucket_reduce of
   * each bucket in turn as backward finishes its gradients, the broadcast
   * of bucket k - 1 right after the reduce of bucket k is started, the
   * last broadcast after backward, then bucket_wait of every slot.
   *
   * bucket_slots: room for count buckets in flight (kept between calls).
   * bucket_reduce: start summing values[0..count) (count <= INT_MAX) of
   *   dtype (f32, or bf16 or f16: each addition rounded to it, the
   *   gradients' 16-bit wire) into rank 0's buffer; return without
   *   waiting. values stay untouched by the caller until the slot's
   *   bucket_wait.
   * bucket_broadcast: complete slot's reduction (waiting within the
   *   communicator's timeout) and start the broadcast of rank 0's sum into
   *   every rank's values; return without waiting for it.
   * bucket_progress: let started operations move (MPI progresses inside
   *   its calls); never waits.
   * bucket_wait: complete slot's broadcast, within the timeout.
   *
   * The NCCL backend: buffers are device memory and its calls enqueue. It
   * keeps a second stream; bucket_reduce records an event on the
   * context's stream after the layers that wrote the bucket, makes the
   * second stream wait for it and enqueues the bucket's ncclAllReduce
   * there (NCCL computes each sum once and copies it to every rank, so
   * there is nothing left to broadcast: bucket_broadcast and
   * bucket_progress do nothing); bucket_wait records an event on the
   * second stream and makes the context's stream wait for it (the mean and
   * the optimizer's kernels then follow the sum), with the timeout a
   * watchdog on the host that ends the communicator (ncclCommAbort) when
   * the event has not completed in time. The layers must not write a
   * bucket's gradients again before its bucket_wait: they do not (each
   * node's parameters are written once per backward). */
  cudl_status (*bucket_slots)(cudl_comm *comm, int count);
  cudl_status (*bucket_reduce)(cudl_comm *comm, int slot, void *values,
                               size_t count, cudl_dtype dtype);
  cudl_status (*bucket_broadcast)(cudl_comm *comm, int slot);
  cudl_status (*bucket_progress)(cudl_comm *comm);
  cudl_status (*bucket_wait)(cudl_comm *comm, int slot);
} cudl_comm_ops;

struct cudl_comm {
  cudl_context *ctx; /* errors */
  cudl_allocator allocator;
  const cudl_comm_ops *ops;
  int rank, size;
  /* cudl_comm_set_timeout: the longest wait in one collective, in
   * seconds; 0 for no limit. */
  double timeout_seconds;
  void *impl; /* the backend's */
  /* Host copy of a tensor that is not in host memory, grown on demand. */
  void *staging;
  size_t staging_bytes;
};

/* A communicator with ops, rank and size, its other fields zero; NULL when
 * out of memory (recorded in ctx). */
cudl_comm *cudl__comm_new(cudl_context *ctx, const cudl_comm_ops *ops,
                          int rank, int size, const char *function);

/* The communicator's host staging buffer, grown to at least bytes (what
 * tensors that are not in host memory go through); NULL when out of memory
 * (recorded as function's). */
void *cudl__comm_staging(cudl_comm *comm, size_t bytes, const char *function);

#endif /* CUDL_DIST_COMM_INTERNAL_H */
