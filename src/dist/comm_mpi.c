/*
 * comm_mpi.c - the MPI backend of the communicator (cudl/dist.h): a
 * duplicate of MPI_COMM_WORLD with MPI_ERRORS_RETURN, over host memory.
 *
 * Sums are MPI_Reduce to rank 0 then MPI_Bcast rather than MPI_Allreduce:
 * an all-reduce may combine the ranks' values in a different order on each
 * rank (recursive doubling, rings), and f32 sums that differ in their last
 * bit make the replicas drift apart. Reduce-then-broadcast computes the
 * sum once. Messages larger than INT_MAX elements go in pieces (MPI counts
 * are int).
 *
 * With a timeout (cudl_comm_set_timeout) every collective is MPI's
 * non-blocking form, tested until it completes or the deadline passes, so
 * that a rank that hangs (alive, never calling) fails the others' calls
 * instead of holding them forever; without one, the blocking calls. The
 * test loop spins for its first 100 ms, then sleeps 50 us between tests
 * so that a long wait (rank 0 evaluating or saving) leaves the cores to
 * the ranks that compute. MPI progresses the operation only inside a test,
 * a fragment at a time for a large message (shared memory moves it in
 * pieces of tens of KB), so the spin must outlast the transfer: sleeping
 * after the first millisecond, as this loop once did, stretched a 1.7 MB
 * reduce between two ranks of one machine from about 1 ms to 70 ms.
 *
 * Built only with MPI (CUDL_HAVE_MPI); without it cudl_comm_create_mpi
 * says what is missing.
 */
#include <limits.h>
#include <string.h>
#include <time.h>

#include "core/half.h"
#include "dist/comm_internal.h"

#ifdef CUDL_HAVE_MPI

#include <mpi.h>

/* One gradient bucket in flight: its reduction, then its broadcast. */
typedef struct mpi_bucket {
  MPI_Request reduce, broadcast;
  void *values;
  int count;
  MPI_Datatype type;
} mpi_bucket;

typedef struct mpi_impl {
  MPI_Comm comm;
  int finalize; /* this communicator initialised MPI */
  mpi_bucket *buckets;
  int bucket_capacity;
  /* Sums of bf16 and f16 values (MPI has neither type): made with the
   * communicator, freed with it. */
  MPI_Op sum_bf16, sum_f16;
} mpi_impl;

/* The 16-bit sums: each pair added in f32 and rounded back, as NCCL's
 * bf16 and f16 sums do. MPI hands them 16-bit words (MPI_UINT16_T). */
static void sum_words(const void *in, void *inout, int count,
                      float (*widen)(uint16_t), uint16_t (*narrow)(float)) {
  const uint16_t *a = (const uint16_t *)in;
  uint16_t *b = (uint16_t *)inout;
  int i;
  for (i = 0; i < count; ++i) b[i] = narrow(widen(a[i]) + widen(b[i]));
}

static void sum_bf16_words(void *in, void *inout, int *count,
                           MPI_Datatype *type) {
  (void)type;
  sum_words(in, inout, *count, cudl__bf16_to_f32, cudl__f32_to_bf16);
}

static void sum_f16_words(void *in, void *inout, int *count,
                          MPI_Datatype *type) {
  (void)type;
  sum_words(in, inout, *count, cudl__f16_to_f32, cudl__f32_to_f16);
}

static MPI_Comm comm_of(const cudl_comm *c) {
  return ((const mpi_impl *)c->impl)->comm;
}

/* An MPI failure as a status, with MPI's own text. */
static cudl_status mpi_fail(cudl_context *ctx, const char *function,
                            const char *call, int code) {
  char text[MPI_MAX_ERROR_STRING];
  int length = 0;
  if (MPI_Error_string(code, text, &length) != MPI_SUCCESS) length = 0;
  text[length < MPI_MAX_ERROR_STRING ? length : MPI_MAX_ERROR_STRING - 1] =
      '\0';
  return cudl__fail(ctx, CUDL_ERR_IO, function, "%s failed: %s (MPI error %d)",
                    call, length > 0 ? text : "no text", code);
}

static double timeout_of(const cudl_comm *c) { return c->timeout_seconds; }

/* Complete the non-blocking collective *request started by call (its
 * start's status rc), within the communicator's timeout (none: 0). */
static cudl_status finish(cudl_comm *c, int rc, MPI_Request *request,
                          const char *call, const char *function) {
  const double start = MPI_Wtime(), limit = timeout_of(c);
  const struct timespec pause = {0, 50000};
  int done = 0;
  if (rc != MPI_SUCCESS) return mpi_fail(c->ctx, function, call, rc);
  for (;;) {
    double waited;
    rc = MPI_Test(request, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(c->ctx, function, call, rc);
    if (done) return CUDL_OK;
    waited = MPI_Wtime() - start;
    if (limit > 0.0 && waited > limit)
      return cudl__fail(c->ctx, CUDL_ERR_IO, function,
                        "%s did not complete within the timeout of %g s "
                        "(rank %d of %d waited %.1f s): another rank is hung "
                        "or far slower; the communicator cannot be used "
                        "again, end the job",
                        call, limit, c->rank, c->size, waited);
    if (waited > 0.1) nanosleep(&pause, NULL);
  }
}

/* The largest piece one MPI call moves. */
#define PIECE ((size_t)INT_MAX)

static cudl_status reduce_bcast(cudl_comm *c, void *values, size_t count,
                                size_t size, MPI_Datatype type, MPI_Op op,
                                const char *function) {
  MPI_Comm comm = comm_of(c);
  char *bytes = (char *)values;
  while (count > 0) {
    const int n = (int)(count < PIECE ? count : PIECE);
    void *send = c->rank == 0 ? MPI_IN_PLACE : bytes;
    void *receive = c->rank == 0 ? bytes : NULL;
    cudl_status s;
    if (timeout_of(c) > 0.0) {
      MPI_Request request;
      int rc = MPI_Ireduce(send, receive, n, type, op, 0, comm, &request);
      s = finish(c, rc, &request, "MPI_Ireduce", function);
      if (s != CUDL_OK) return s;
      rc = MPI_Ibcast(bytes, n, type, 0, comm, &request);
      s = finish(c, rc, &request, "MPI_Ibcast", function);
      if (s != CUDL_OK) return s;
    } else {
      int rc = MPI_Reduce(send, receive, n, type, op, 0, comm);
      if (rc != MPI_SUCCESS)
        return mpi_fail(c->ctx, function, "MPI_Reduce", rc);
      rc = MPI_Bcast(bytes, n, type, 0, comm);
      if (rc != MPI_SUCCESS)
        return mpi_fail(c->ctx, function, "MPI_Bcast", rc);
    }
    bytes += (size_t)n * size;
    count -= (size_t)n;
  }
  return CUDL_OK;
}

static cudl_status mpi_sum_f32(cudl_comm *c, float *v, size_t n) {
  return reduce_bcast(c, v, n, sizeof *v, MPI_FLOAT, MPI_SUM,
                      "cudl_comm_allreduce_mean");
}

static cudl_status mpi_sum_f64(cudl_comm *c, double *v, size_t n) {
  return reduce_bcast(c, v, n, sizeof *v, MPI_DOUBLE, MPI_SUM,
                      "cudl_comm_allreduce_sum_f64");
}

static cudl_status mpi_min_u64(cudl_comm *c, uint64_t *v, size_t n) {
  int rc;
  if (timeout_of(c) > 0.0) {
    MPI_Request request;
    rc = MPI_Iallreduce(MPI_IN_PLACE, v, (int)n, MPI_UINT64_T, MPI_MIN,
                        comm_of(c), &request);
    return finish(c, rc, &request, "MPI_Iallreduce", "cudl_comm_agree");
  }
  rc = MPI_Allreduce(MPI_IN_PLACE, v, (int)n, MPI_UINT64_T, MPI_MIN,
                     comm_of(c));
  return rc == MPI_SUCCESS
             ? CUDL_OK
             : mpi_fail(c->ctx, "cudl_comm_agree", "MPI_Allreduce", rc);
}

static cudl_status mpi_broadcast(cudl_comm *c, void *data, size_t bytes,
                                 int root) {
  char *p = (char *)data;
  while (bytes > 0) {
    const int n = (int)(bytes < PIECE ? bytes : PIECE);
    if (timeout_of(c) > 0.0) {
      MPI_Request request;
      int rc = MPI_Ibcast(p, n, MPI_BYTE, root, comm_of(c), &request);
      cudl_status s =
          finish(c, rc, &request, "MPI_Ibcast", "cudl_comm_broadcast");
      if (s != CUDL_OK) return s;
    } else {
      int rc = MPI_Bcast(p, n, MPI_BYTE, root, comm_of(c));
      if (rc != MPI_SUCCESS)
        return mpi_fail(c->ctx, "cudl_comm_broadcast", "MPI_Bcast", rc);
    }
    p += n;
    bytes -= (size_t)n;
  }
  return CUDL_OK;
}

static cudl_status mpi_barrier(cudl_comm *c) {
  int rc;
  if (timeout_of(c) > 0.0) {
    MPI_Request request;
    rc = MPI_Ibarrier(comm_of(c), &request);
    return finish(c, rc, &request, "MPI_Ibarrier", "cudl_comm_barrier");
  }
  rc = MPI_Barrier(comm_of(c));
  return rc == MPI_SUCCESS
             ? CUDL_OK
             : mpi_fail(c->ctx, "cudl_comm_barrier", "MPI_Barrier", rc);
}

/* ---- gradient buckets (comm_internal.h): always non-blocking, so that
 * backward computes while they move; waited with finish's deadline ---- */

static const char bucket_fn[] = "averaging the gradients";

static cudl_status mpi_bucket_slots(cudl_comm *c, int count) {
  mpi_impl *impl = (mpi_impl *)c->impl;
  mpi_bucket *grown;
  int i;
  if (count <= impl->bucket_capacity) return CUDL_OK;
  grown = (mpi_bucket *)cudl__host_alloc(
      &c->allocator, (size_t)count * sizeof *grown, 64);
  if (grown == NULL)
    return cudl__fail(c->ctx, CUDL_ERR_OUT_OF_MEMORY, bucket_fn,
                      "cannot allocate the state of %d gradient buckets",
                      count);
  for (i = 0; i < count; ++i) {
    grown[i].reduce = grown[i].broadcast = MPI_REQUEST_NULL;
    grown[i].values = NULL;
    grown[i].count = 0;
  }
  cudl__host_free(&c->allocator, impl->buckets,
                  (size_t)impl->bucket_capacity * sizeof *impl->buckets);
  impl->buckets = grown;
  impl->bucket_capacity = count;
  return CUDL_OK;
}

static cudl_status mpi_bucket_reduce(cudl_comm *c, int slot, void *values,
                                     size_t count, cudl_dtype dtype) {
  mpi_impl *impl = (mpi_impl *)c->impl;
  mpi_bucket *b = &impl->buckets[slot];
  MPI_Op op = dtype == CUDL_DTYPE_BF16  ? impl->sum_bf16
              : dtype == CUDL_DTYPE_F16 ? impl->sum_f16
                                        : MPI_SUM;
  int rc;
  if (count > PIECE)
    return cudl__fail(c->ctx, CUDL_ERR_INTERNAL, bucket_fn,
                      "a bucket of %zu values is over MPI's int count",
                      count);
  b->values = values;
  b->count = (int)count;
  b->type = dtype == CUDL_DTYPE_F32 ? MPI_FLOAT : MPI_UINT16_T;
  rc = MPI_Ireduce(c->rank == 0 ? MPI_IN_PLACE : values,
                   c->rank == 0 ? values : NULL, b->count, b->type, op, 0,
                   comm_of(c), &b->reduce);
  return rc == MPI_SUCCESS ? CUDL_OK
                           : mpi_fail(c->ctx, bucket_fn, "MPI_Ireduce", rc);
}

static cudl_status mpi_bucket_broadcast(cudl_comm *c, int slot) {
  mpi_bucket *b = &((mpi_impl *)c->impl)->buckets[slot];
  int rc;
  /* Rank 0 holds the sum only once its reduce completes; the others'
   * reduce may still read the buffer the broadcast will write. */
  cudl_status s = finish(c, MPI_SUCCESS, &b->reduce, "MPI_Ireduce", bucket_fn);
  if (s != CUDL_OK) return s;
  rc = MPI_Ibcast(b->values, b->count, b->type, 0, comm_of(c),
                  &b->broadcast);
  return rc == MPI_SUCCESS ? CUDL_OK
                           : mpi_fail(c->ctx, bucket_fn, "MPI_Ibcast", rc);
}

static cudl_status mpi_bucket_progress(cudl_comm *c) {
  mpi_impl *impl = (mpi_impl *)c->impl;
  int i;
  for (i = 0; i < impl->bucket_capacity; ++i) {
    mpi_bucket *b = &impl->buckets[i];
    int done = 0, rc = MPI_SUCCESS;
    /* A completed request becomes MPI_REQUEST_NULL, which tests done. */
    if (b->reduce != MPI_REQUEST_NULL)
      rc = MPI_Test(&b->reduce, &done, MPI_STATUS_IGNORE);
    if (rc == MPI_SUCCESS && b->broadcast != MPI_REQUEST_NULL)
      rc = MPI_Test(&b->broadcast, &done, MPI_STATUS_IGNORE);
    if (rc != MPI_SUCCESS) return mpi_fail(c->ctx, bucket_fn, "MPI_Test", rc);
  }
  return CUDL_OK;
}

static cudl_status mpi_bucket_wait(cudl_comm *c, int slot) {
  mpi_bucket *b = &((mpi_impl *)c->impl)->buckets[slot];
  return finish(c, MPI_SUCCESS, &b->broadcast, "MPI_Ibcast", bucket_fn);
}

static void mpi_abort(cudl_comm *c, int code) { MPI_Abort(comm_of(c), code); }

static void mpi_release(cudl_comm *c) {
  mpi_impl *impl = (mpi_impl *)c->impl;
  int finalized = 0;
  if (impl == NULL) return;
  cudl__host_free(&c->allocator, impl->buckets,
                  (size_t)impl->bucket_capacity * sizeof *impl->buckets);
  MPI_Finalized(&finalized);
  if (!finalized) {
    if (impl->sum_bf16 != MPI_OP_NULL) MPI_Op_free(&impl->sum_bf16);
    if (impl->sum_f16 != MPI_OP_NULL) MPI_Op_free(&impl->sum_f16);
    MPI_Comm_free(&impl->comm);
    if (impl->finalize) MPI_Finalize();
  }
  cudl__host_free(&c->allocator, impl, sizeof *impl);
  c->impl = NULL;
}

static const cudl_comm_ops mpi_ops = {
    "mpi",         0,           mpi_sum_f32, mpi_sum_f64, mpi_min_u64,
    mpi_broadcast, mpi_barrier, mpi_abort,   mpi_release,
    mpi_bucket_slots, mpi_bucket_reduce, mpi_bucket_broadcast,
    mpi_bucket_progress, mpi_bucket_wait};

int cudl_comm_mpi_available(void) { return 1; }

cudl_status cudl_comm_create_mpi(cudl_context *ctx, cudl_comm **out) {
  static const char fn[] = "cudl_comm_create_mpi";
  int initialized = 0, finalized = 0, rank = 0, size = 1, rc, we_init = 0;
  MPI_Comm comm = MPI_COMM_NULL;
  mpi_impl *impl;
  cudl_comm *c;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  MPI_Finalized(&finalized);
  if (finalized)
    return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, fn,
                      "MPI has been finalised in this process and cannot "
                      "start again");
  MPI_Initialized(&initialized);
  if (!initialized) {
    rc = MPI_Init(NULL, NULL);
    if (rc != MPI_SUCCESS) return mpi_fail(ctx, fn, "MPI_Init", rc);
    we_init = 1;
  }
  rc = MPI_Comm_dup(MPI_COMM_WORLD, &comm);
  if (rc == MPI_SUCCESS)
    rc = MPI_Comm_set_errhandler(comm, MPI_ERRORS_RETURN);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_rank(comm, &rank);
  if (rc == MPI_SUCCESS) rc = MPI_Comm_size(comm, &size);
  if (rc != MPI_SUCCESS) {
    cudl_status s = mpi_fail(ctx, fn, "setting up the communicator", rc);
    if (comm != MPI_COMM_NULL) MPI_Comm_free(&comm);
    if (we_init) MPI_Finalize();
    return s;
  }
  impl = (mpi_impl *)cudl__host_alloc(&ctx->allocator, sizeof *impl, 64);
  c = impl == NULL ? NULL : cudl__comm_new(ctx, &mpi_ops, rank, size, fn);
  if (c == NULL) {
    if (impl == NULL)
      cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                 "cannot allocate the communicator");
    cudl__host_free(&ctx->allocator, impl, sizeof *impl);
    MPI_Comm_free(&comm);
    if (we_init) MPI_Finalize();
    return CUDL_ERR_OUT_OF_MEMORY;
  }
  memset(impl, 0, sizeof *impl);
  impl->comm = comm;
  impl->finalize = we_init;
  impl->sum_bf16 = impl->sum_f16 = MPI_OP_NULL;
  c->impl = impl;
  rc = MPI_Op_create(sum_bf16_words, 1, &impl->sum_bf16);
  if (rc == MPI_SUCCESS) rc = MPI_Op_create(sum_f16_words, 1, &impl->sum_f16);
  if (rc != MPI_SUCCESS) {
    cudl_status s = mpi_fail(ctx, fn, "MPI_Op_create", rc);
    cudl_comm_destroy(c);
    return s;
  }
  *out = c;
  return CUDL_OK;
}

#else /* !CUDL_HAVE_MPI */

int cudl_comm_mpi_available(void) { return 0; }

cudl_status cudl_comm_create_mpi(cudl_context *ctx, cudl_comm **out) {
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, "cudl_comm_create_mpi",
                    "this cudl was built without MPI: install Open MPI's "
                    "development files (Debian: libopenmpi-dev) and "
                    "configure with -DCUDL_MPI=ON");
}

#endif
