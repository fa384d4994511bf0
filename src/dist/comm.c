/*
 * comm.c - the communicator's public entries (cudl/dist.h): argument
 * checks, staging of tensors that are not in host memory, the mean and the
 * agreement built on the backends' sums and minimums, the parameters'
 * broadcast, and the one-rank "local" backend (the gradients' averaging is
 * grad_sync.c's).
 */
#include <string.h>

#include "dist/comm_internal.h"

/* ---- the local backend: one rank, nothing to exchange ---- */

static cudl_status local_sum_f32(cudl_comm *c, float *v, size_t n) {
  (void)c, (void)v, (void)n;
  return CUDL_OK;
}
static cudl_status local_sum_f64(cudl_comm *c, double *v, size_t n) {
  (void)c, (void)v, (void)n;
  return CUDL_OK;
}
static cudl_status local_min_u64(cudl_comm *c, uint64_t *v, size_t n) {
  (void)c, (void)v, (void)n;
  return CUDL_OK;
}
static cudl_status local_broadcast(cudl_comm *c, void *d, size_t n, int r) {
  (void)c, (void)d, (void)n, (void)r;
  return CUDL_OK;
}
static cudl_status local_barrier(cudl_comm *c) {
  (void)c;
  return CUDL_OK;
}
static void local_abort(cudl_comm *c, int code) { (void)c, (void)code; }
static void local_release(cudl_comm *c) { (void)c; }
static cudl_status local_bucket_slots(cudl_comm *c, int n) {
  (void)c, (void)n;
  return CUDL_OK;
}
static cudl_status local_bucket_reduce(cudl_comm *c, int s, void *v,
                                       size_t n, cudl_dtype dtype) {
  (void)c, (void)s, (void)v, (void)n, (void)dtype;
  return CUDL_OK;
}
static cudl_status local_bucket_slot(cudl_comm *c, int s) {
  (void)c, (void)s;
  return CUDL_OK;
}
static cudl_status local_bucket_progress(cudl_comm *c) {
  (void)c;
  return CUDL_OK;
}

static const cudl_comm_ops local_ops = {
    "local",       0,          local_sum_f32, local_sum_f64, local_min_u64,
    local_broadcast, local_barrier, local_abort, local_release,
    local_bucket_slots, local_bucket_reduce, local_bucket_slot,
    local_bucket_progress, local_bucket_slot};

/* ---- creation ---- */

cudl_comm *cudl__comm_new(cudl_context *ctx, const cudl_comm_ops *ops,
                          int rank, int size, const char *function) {
  cudl_comm *c =
      (cudl_comm *)cudl__host_alloc(&ctx->allocator, sizeof *c, 64);
  if (c == NULL) {
    cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
               "cannot allocate the communicator");
    return NULL;
  }
  memset(c, 0, sizeof *c);
  c->ctx = ctx;
  c->allocator = ctx->allocator;
  c->ops = ops;
  c->rank = rank;
  c->size = size;
  return c;
}

cudl_status cudl_comm_create_local(cudl_context *ctx, cudl_comm **out) {
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  *out = cudl__comm_new(ctx, &local_ops, 0, 1, __func__);
  return *out == NULL ? CUDL_ERR_OUT_OF_MEMORY : CUDL_OK;
}

void cudl_comm_destroy(cudl_comm *c) {
  cudl_allocator allocator;
  if (c == NULL) return;
  c->ops->release(c);
  allocator = c->allocator;
  cudl__host_free(&allocator, c->staging, c->staging_bytes);
  cudl__host_free(&allocator, c, sizeof *c);
}

int cudl_comm_rank(const cudl_comm *c) { return c == NULL ? 0 : c->rank; }
int cudl_comm_size(const cudl_comm *c) { return c == NULL ? 1 : c->size; }
const char *cudl_comm_backend(const cudl_comm *c) {
  return c == NULL ? NULL : c->ops->name;
}

cudl_status cudl_comm_set_timeout(cudl_comm *c, double seconds) {
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  /* The upper bound keeps deadlines finite in any clock. */
  if (!(seconds >= 0.0 && seconds <= 1e9))
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the timeout must be from 0 (none) to 1e9 seconds, not "
                     "%g",
                     seconds);
  c->timeout_seconds = seconds;
  return CUDL_OK;
}

double cudl_comm_timeout(const cudl_comm *c) {
  return c == NULL ? 0.0 : c->timeout_seconds;
}

void cudl_comm_abort(cudl_comm *c, int code) {
  if (c != NULL) c->ops->abort(c, code);
}

/* ---- tensors ---- */

/* A device-buffer backend works on its context's device and stream:
 * another context's tensor may be on another GPU, or still being written
 * on another stream. Checked whatever the number of ranks, so that a
 * program fails alike alone and distributed. */
static cudl_status check_context(cudl_comm *c, const cudl_tensor *t,
                                 const char *function) {
  if (!c->ops->device_buffers || t->ctx == c->ctx) return CUDL_OK;
  return cudl__fail(c->ctx, CUDL_ERR_DEVICE_MISMATCH, function,
                    "the tensor belongs to another context than the "
                    "communicator's: the %s backend works on the "
                    "communicator's device and stream; make both with one "
                    "context",
                    c->ops->name);
}

void *cudl__comm_staging(cudl_comm *c, size_t bytes, const char *function) {
  if (c->staging_bytes < bytes) {
    void *grown = cudl__host_alloc(&c->allocator, bytes, CUDL_HOST_ALIGNMENT);
    if (grown == NULL) {
      cudl__fail(c->ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                 "cannot allocate a host buffer of %zu bytes for a device "
                 "tensor",
                 bytes);
      return NULL;
    }
    cudl__host_free(&c->allocator, c->staging, c->staging_bytes);
    c->staging = grown;
    c->staging_bytes = bytes;
  }
  return c->staging;
}

/* Where the backend can work on t's bytes: its own data (host memory, or
 * any memory for a device-buffer backend), else the staging buffer holding
 * a copy of them (*staged = 1). */
static cudl_status tensor_buffer(cudl_comm *c, cudl_tensor *t,
                                 const char *function, void **buffer,
                                 int *staged) {
  cudl_status s;
  *staged = 0;
  *buffer = t->data;
  if (c->ops->device_buffers || t->ctx->device == CUDL_DEVICE_CPU ||
      t->nbytes == 0)
    return CUDL_OK;
  if (c->staging_bytes < t->nbytes) {
    void *grown = cudl__host_alloc(&c->allocator, t->nbytes,
                                   CUDL_HOST_ALIGNMENT);
    if (grown == NULL)
      return cudl__fail(c->ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                        "cannot allocate a host buffer of %zu bytes for a "
                        "device tensor",
                        t->nbytes);
    cudl__host_free(&c->allocator, c->staging, c->staging_bytes);
    c->staging = grown;
    c->staging_bytes = t->nbytes;
  }
  s = cudl_tensor_copy_to_host(t, c->staging, t->nbytes);
  if (s != CUDL_OK)
    return cudl__fail(c->ctx, s, function,
                      "copying the tensor to host memory: %s",
                      cudl_context_last_error(t->ctx));
  *buffer = c->staging;
  *staged = 1;
  return CUDL_OK;
}

static cudl_status tensor_return(cudl_comm *c, cudl_tensor *t,
                                 const char *function, int staged) {
  cudl_status s;
  if (!staged) return CUDL_OK;
  s = cudl_tensor_copy_from_host(t, c->staging, t->nbytes);
  if (s != CUDL_OK)
    return cudl__fail(c->ctx, s, function,
                      "copying the tensor back to its device: %s",
                      cudl_context_last_error(t->ctx));
  return CUDL_OK;
}

static cudl_status mean_f32(cudl_comm *c, cudl_tensor *t,
                            const char *function) {
  void *buffer;
  int staged;
  cudl_status s;
  if (t->dtype != CUDL_DTYPE_F32)
    return cudl__fail(c->ctx, CUDL_ERR_DTYPE, function,
                      "the tensor is %s; the mean is of f32 tensors",
                      cudl_dtype_name(t->dtype));
  s = check_context(c, t, function);
  if (s != CUDL_OK) return s;
  if (c->size == 1 || t->numel == 0) return CUDL_OK;
  s = tensor_buffer(c, t, function, &buffer, &staged);
  if (s == CUDL_OK) s = c->ops->sum_f32(c, (float *)buffer, (size_t)t->numel);
  if (s == CUDL_OK && c->ops->device_buffers) {
    /* The device backend scales on its own stream. */
    s = cudl_scale(t->ctx, t, 1.0f / (float)c->size, t);
  } else if (s == CUDL_OK) {
    float *v = (float *)buffer;
    const float scale = 1.0f / (float)c->size;
    int64_t i;
    for (i = 0; i < t->numel; ++i) v[i] *= scale;
  }
  if (s == CUDL_OK) s = tensor_return(c, t, function, staged);
  return s;
}

cudl_status cudl_comm_allreduce_mean(cudl_comm *c, cudl_tensor *t) {
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (t == NULL)
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT, "t is NULL");
  return mean_f32(c, t, __func__);
}

cudl_status cudl_comm_allreduce_sum_f64(cudl_comm *c, double *values,
                                        int64_t count) {
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (count < 0 || (values == NULL && count > 0))
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     count < 0 ? "count is %lld; it must be >= 0"
                               : "values is NULL with count %lld",
                     (long long)count);
  if (count == 0 || c->size == 1) return CUDL_OK;
  return c->ops->sum_f64(c, values, (size_t)count);
}

static cudl_status broadcast_tensor(cudl_comm *c, cudl_tensor *t, int root,
                                    const char *function) {
  void *buffer;
  int staged;
  cudl_status s;
  if (root < 0 || root >= c->size)
    return cudl__fail(c->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "root is %d; it must be 0 to %d", root, c->size - 1);
  s = check_context(c, t, function);
  if (s != CUDL_OK) return s;
  if (c->size == 1 || t->nbytes == 0) return CUDL_OK;
  s = tensor_buffer(c, t, function, &buffer, &staged);
  if (s == CUDL_OK) s = c->ops->broadcast(c, buffer, t->nbytes, root);
  if (s == CUDL_OK) s = tensor_return(c, t, function, staged);
  return s;
}

cudl_status cudl_comm_broadcast(cudl_comm *c, cudl_tensor *t, int root) {
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (t == NULL)
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT, "t is NULL");
  return broadcast_tensor(c, t, root, __func__);
}

cudl_status cudl_comm_barrier(cudl_comm *c) {
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  return c->size == 1 ? CUDL_OK : c->ops->barrier(c);
}

cudl_status cudl_comm_agree(cudl_comm *c, uint64_t value, int *same,
                            uint64_t *lowest, uint64_t *highest) {
  /* One minimum of (value, ~value): the second is ~(the largest value). */
  uint64_t v[2];
  cudl_status s;
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (same == NULL)
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT, "same is NULL");
  v[0] = value;
  v[1] = ~value;
  s = c->size == 1 ? CUDL_OK : c->ops->min_u64(c, v, 2);
  if (s != CUDL_OK) return s;
  *same = v[0] == ~v[1];
  if (lowest != NULL) *lowest = v[0];
  if (highest != NULL) *highest = ~v[1];
  return CUDL_OK;
}

/* ---- models ---- */

cudl_status cudl_comm_broadcast_params(cudl_comm *c, cudl_model *model,
                                       int root) {
  cudl_tensor *params;
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (model == NULL)
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT, "model is NULL");
  params = cudl_model_params(model);
  if (params == NULL)
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is not compiled: it has no parameters yet");
  return broadcast_tensor(c, params, root, __func__);
}
