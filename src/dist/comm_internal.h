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

#endif /* CUDL_DIST_COMM_INTERNAL_H */
