/*
 * comm_nccl.c - the NCCL backend of the communicator (cudl/dist.h): one
 * GPU per rank, bootstrapped over a host communicator (MPI, or the local
 * one for a single rank), whose NCCL calls live in src/cuda/cuda_nccl.c.
 *
 * Tensors go to NCCL where they are, in the context's device memory, on
 * its stream (device_buffers = 1): comm.c neither stages them nor scales
 * them on the host. The few host values (cudl_comm_allreduce_sum_f64,
 * cudl_comm_agree's minimum) and the barrier go through the bootstrap
 * communicator instead: they are host memory already, and a round trip to
 * the GPU for a handful of numbers would cost more than MPI's message.
 * The bootstrap takes this communicator's timeout for them.
 *
 * Sums are NCCL's all-reduce, not a reduce and a broadcast as in the MPI
 * backend: NCCL's algorithms (ring: reduce-scatter then all-gather; tree:
 * reduce up then broadcast down; NVLS: reduced by the switch, multicast
 * back) compute each element's sum once and copy it to every rank, so the
 * replicas hold the same bits.
 *
 * NCCL lives in the CUDA backend module, which loads libnccl.so.2 on
 * first use (core/cuda_module.h): without the module, without NCCL in the
 * module's build, or without the library on this host,
 * cudl_comm_create_nccl says which.
 */
#include <stdio.h>
#include <string.h>

#include "core/cuda_module.h"
#include "dist/comm_internal.h"

/* The module when NCCL can be used, else NULL with the reason. */
static const cudl_cuda_module *nccl_module(char *reason, size_t reason_size) {
  const cudl_cuda_module *m = cudl__cuda_module(reason, reason_size);
  if (m == NULL || m->nccl_load(reason, reason_size) != CUDL_OK) return NULL;
  return m;
}

int cudl_comm_nccl_available(void) { return nccl_module(NULL, 0) != NULL; }

typedef struct nccl_impl {
  const cudl_cuda_module *m;
  cudl_nccl *nccl;
  cudl_comm *bootstrap; /* borrowed: the caller destroys it after */
} nccl_impl;

static nccl_impl *impl_of(const cudl_comm *c) { return (nccl_impl *)c->impl; }

/* The bootstrap's failure (status s) recorded in c's context too, when the
 * two differ. */
static cudl_status relay(cudl_comm *c, const cudl_comm *bootstrap,
                         cudl_status s, const char *function) {
  if (s == CUDL_OK || bootstrap->ctx == c->ctx) return s;
  return cudl__fail(c->ctx, s, function, "through the bootstrap: %s",
                    cudl_context_last_error(bootstrap->ctx));
}

static cudl_status nccl_sum_f32(cudl_comm *c, float *v, size_t n) {
  return impl_of(c)->m->nccl_sum(impl_of(c)->nccl, v, n, CUDL_DTYPE_F32,
                                 c->timeout_seconds,
                                 "cudl_comm_allreduce_mean");
}

/* The bootstrap, carrying c's timeout for the host values' exchange;
 * bootstrap_done gives it back its own and relays its failure to c. */
static cudl_comm *bootstrap_begin(cudl_comm *c, double *saved) {
  cudl_comm *b = impl_of(c)->bootstrap;
  *saved = b->timeout_seconds;
  b->timeout_seconds = c->timeout_seconds;
  return b;
}

static cudl_status bootstrap_done(cudl_comm *c, cudl_comm *b, double saved,
                                  cudl_status s, const char *function) {
  b->timeout_seconds = saved;
  return relay(c, b, s, function);
}

static cudl_status nccl_sum_f64(cudl_comm *c, double *v, size_t n) {
  double saved;
  cudl_comm *b = bootstrap_begin(c, &saved);
  return bootstrap_done(c, b, saved, b->ops->sum_f64(b, v, n),
                        "cudl_comm_allreduce_sum_f64");
}

static cudl_status nccl_min_u64(cudl_comm *c, uint64_t *v, size_t n) {
  double saved;
  cudl_comm *b = bootstrap_begin(c, &saved);
  return bootstrap_done(c, b, saved, b->ops->min_u64(b, v, n),
                        "cudl_comm_agree");
}

static cudl_status nccl_broadcast(cudl_comm *c, void *data, size_t bytes,
                                  int root) {
  return impl_of(c)->m->nccl_broadcast(impl_of(c)->nccl, data, bytes, root,
                              c->timeout_seconds, "cudl_comm_broadcast");
}

static cudl_status nccl_barrier(cudl_comm *c) {
  double saved;
  cudl_comm *b = bootstrap_begin(c, &saved);
  return bootstrap_done(c, b, saved, b->ops->barrier(b), "cudl_comm_barrier");
}

/* NCCL first, so that this rank's kernels stop waiting for peers, then the
 * job through the bootstrap (MPI_Abort). */
static void nccl_abort(cudl_comm *c, int code) {
  impl_of(c)->m->nccl_abort(impl_of(c)->nccl);
  impl_of(c)->bootstrap->ops->abort(impl_of(c)->bootstrap, code);
}

static void nccl_release(cudl_comm *c) {
  nccl_impl *impl = impl_of(c);
  if (impl == NULL) return;
  impl->m->nccl_close(impl->nccl);
  cudl__host_free(&c->allocator, impl, sizeof *impl);
  c->impl = NULL;
}

/* Gradient buckets (comm_internal.h) on the module's second stream: each
 * bucket's all-reduce is queued there after the layers that wrote it, so
 * it runs while backward computes the earlier layers, and the context's
 * stream waits for it at bucket_wait, before the mean and the optimizer.
 * An all-reduce leaves nothing to broadcast. With a timeout the host
 * waits for each sum there, within it, which bounds a hung peer. */
static const char bucket_fn[] = "averaging the gradients";

static cudl_status nccl_bucket_slots(cudl_comm *c, int count) {
  return impl_of(c)->m->nccl_bucket_slots(impl_of(c)->nccl, count, bucket_fn);
}

static cudl_status nccl_bucket_reduce(cudl_comm *c, int slot, void *values,
                                      size_t count, cudl_dtype dtype) {
  return impl_of(c)->m->nccl_bucket_start(impl_of(c)->nccl, slot, values,
                                          count, dtype, bucket_fn);
}

static cudl_status nccl_bucket_broadcast(cudl_comm *c, int slot) {
  (void)c, (void)slot;
  return CUDL_OK;
}

static cudl_status nccl_bucket_progress(cudl_comm *c) {
  (void)c;
  return CUDL_OK;
}

static cudl_status nccl_bucket_wait(cudl_comm *c, int slot) {
  return impl_of(c)->m->nccl_bucket_finish(impl_of(c)->nccl, slot,
                                           c->timeout_seconds, bucket_fn);
}

static const cudl_comm_ops nccl_ops = {
    "nccl",         1,            nccl_sum_f32, nccl_sum_f64, nccl_min_u64,
    nccl_broadcast, nccl_barrier, nccl_abort,   nccl_release,
    nccl_bucket_slots, nccl_bucket_reduce, nccl_bucket_broadcast,
    nccl_bucket_progress, nccl_bucket_wait};

cudl_status cudl_comm_create_nccl(cudl_context *ctx, cudl_comm *bootstrap,
                                  cudl_comm **out) {
  static const char fn[] = "cudl_comm_create_nccl";
  /* Rank 0's verdict, then the id: the others learn of its failure from
   * the same broadcast instead of waiting in ncclCommInitRank. */
  unsigned char message[1 + CUDL_NCCL_ID_BYTES];
  char reason[CUDL_ERROR_TEXT_SIZE];
  const cudl_cuda_module *m;
  cudl_status s = CUDL_OK;
  cudl_nccl *nccl = NULL;
  nccl_impl *impl;
  cudl_comm *c;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  m = nccl_module(reason, sizeof reason);
  if (m == NULL)
    return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, fn, "NCCL is not available: %s",
                      reason);
  if (out == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  if (bootstrap == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "bootstrap is NULL: give the MPI communicator of the "
                      "job (or a local one for a single rank)");
  if (ctx->device != CUDL_DEVICE_CUDA)
    return cudl__fail(ctx, CUDL_ERR_DEVICE_MISMATCH, fn,
                      "the context is not a CUDA one: NCCL connects GPUs; "
                      "create the communicator on the rank's CUDA context, "
                      "or use the MPI communicator for CPU ranks");
  if (bootstrap->ops->device_buffers)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "the bootstrap is a %s communicator; it must be one "
                      "over host memory (mpi or local)",
                      bootstrap->ops->name);
  memset(message, 0, sizeof message);
  if (bootstrap->rank == 0) {
    s = m->nccl_unique_id(ctx, message + 1, fn);
    message[0] = s == CUDL_OK;
  }
  if (bootstrap->size > 1) {
    cudl_status sent =
        bootstrap->ops->broadcast(bootstrap, message, sizeof message, 0);
    if (sent != CUDL_OK)
      return bootstrap->ctx == ctx
                 ? sent
                 : cudl__fail(ctx, sent, fn,
                              "sending NCCL's id through the bootstrap: %s",
                              cudl_context_last_error(bootstrap->ctx));
  }
  if (s != CUDL_OK) return s;
  if (!message[0])
    return cudl__fail(ctx, CUDL_ERR_IO, fn,
                      "rank 0 could not make NCCL's id (its own error says "
                      "why)");
  s = m->nccl_open(ctx, message + 1, bootstrap->rank, bootstrap->size, fn,
                      &nccl);
  if (s != CUDL_OK) return s;
  impl = (nccl_impl *)cudl__host_alloc(&ctx->allocator, sizeof *impl, 64);
  c = impl == NULL ? NULL
                   : cudl__comm_new(ctx, &nccl_ops, bootstrap->rank,
                                    bootstrap->size, fn);
  if (c == NULL) {
    if (impl == NULL)
      cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                 "cannot allocate the communicator");
    cudl__host_free(&ctx->allocator, impl, sizeof *impl);
    m->nccl_close(nccl);
    return CUDL_ERR_OUT_OF_MEMORY;
  }
  impl->m = m;
  impl->nccl = nccl;
  impl->bootstrap = bootstrap;
  c->impl = impl;
  *out = c;
  return CUDL_OK;
}
