/*
 * grad_sync.c - gradients averaged over the ranks in buckets while
 * backward still runs (cudl_model_set_grad_sync), and
 * cudl_comm_average_grads, which is the same with one bucket after
 * backward.
 *
 * Backward runs from the last node down, so the gradient arena (laid out
 * in the order the parameters were added) fills from its end. A bucket is
 * a contiguous range of it; once backward has passed the lowest-numbered
 * node owning a parameter in it, its values are final and its reduction
 * starts, non-blocking, while backward goes on. Each bucket is a reduce to
 * rank 0 then a broadcast, as every sum of the communicator, so the ranks
 * get the same bits; and each value's sum is the same operation whatever
 * the buckets, so --bucket-mb does not change the result (for 2 ranks bit
 * for bit; beyond, MPI may group the additions differently for other
 * message sizes, docs/distributed.md).
 *
 * Non-blocking collectives match in the order they are started, so every
 * rank starts them in one order fixed by the plan: the reduce of bucket k
 * when backward passes its node, then the broadcast of bucket k - 1 (which
 * waits for that bucket's reduce: rank 0 has the sum only then, and the
 * others' reduce may still read the buffer the broadcast writes); after
 * backward the last broadcast, then waits in bucket order. A broadcast
 * started as soon as its reduce happened to complete would be started in
 * a different order on different ranks.
 *
 * The wire (cudl_model_set_grad_wire): under bf16 or fp16 mixed precision
 * a bucket travels in that 16-bit type, as PyTorch DDP's compression hooks
 * send it: converted from the f32 arena into a 16-bit copy of it
 * (cudl_tensor_convert, on the model's device, before any host staging,
 * so the staging copies halve too) after dividing each rank's values by
 * the number of ranks, summed in 16 bits (each addition rounded: the sum
 * of the shares is the mean), converted back to f32. Half the bytes of
 * f32, at the price of bf16's 8 or f16's 11 significant bits in the mean.
 * Dividing first, as PyTorch's fp16 compression hook does, keeps f16's
 * sum in range wherever each rank's values are; in fp16 the gradients are
 * still multiplied by the loss scale here, which keeps small ones
 * representable, and an overflow is one the loss scale's check sees.
 */
#include <string.h>
#include <time.h>

#include "dist/comm_internal.h"
#include "dist/grad_sync.h"

/* The most values one bucket's message carries (MPI counts are int). */
#define MAX_BUCKET_FLOATS ((int64_t)2147483647)

typedef struct grad_sync {
  cudl_comm *comm;
  cudl_allocator allocator;
  int64_t bucket_bytes;
  cudl__grad_bucket *buckets;
  int count;
  /* views of the gradient arena, one per bucket */
  cudl_tensor **views;
  /* this backward: buckets reduced and broadcast so far, whether the
   * buckets go through the communicator's host buffer, and the seconds
   * spent waiting for them */
  int reduced, broadcast, in_flight, staged;
  char *host; /* the values as the backend reads them (wire dtype) */
  double wait_seconds;
  /* The wire's dtype this backward, and for a 16-bit one the arena's
   * 16-bit copy with a view per bucket (kept while the dtype is). */
  cudl_dtype wire;
  cudl_tensor *wire_arena;
  cudl_tensor **wire_views;
} grad_sync;

static double now_seconds(void) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0) return 0.0;
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* ---- the plan ---- */

static cudl_status push_bucket(cudl_model *m, cudl__grad_bucket **list,
                               int *count, int *capacity, int64_t first,
                               int64_t length, int ready) {
  if (*count == *capacity) {
    const int grown_capacity = *capacity == 0 ? 16 : *capacity * 2;
    cudl__grad_bucket *grown = (cudl__grad_bucket *)cudl__host_alloc(
        &m->allocator, (size_t)grown_capacity * sizeof *grown, 64);
    if (grown == NULL)
      return CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot allocate %d gradient buckets", grown_capacity);
    if (*count > 0) memcpy(grown, *list, (size_t)*count * sizeof *grown);
    cudl__host_free(&m->allocator, *list, (size_t)*capacity * sizeof *grown);
    *list = grown;
    *capacity = grown_capacity;
  }
  (*list)[*count].first = first;
  (*list)[*count].count = length;
  (*list)[*count].ready_node = ready;
  ++*count;
  return CUDL_OK;
}

/* Bucket [first, end) as pieces of at most max_floats, the highest first
 * (the order backward fills them). */
static cudl_status push_pieces(cudl_model *m, cudl__grad_bucket **list,
                               int *count, int *capacity, int64_t first,
                               int64_t end, int ready, int64_t max_floats) {
  cudl_status status = CUDL_OK;
  while (end > first && status == CUDL_OK) {
    const int64_t length = end - first < max_floats ? end - first : max_floats;
    status = push_bucket(m, list, count, capacity, end - length, length, ready);
    end -= length;
  }
  return status;
}

void cudl__grad_buckets_free(cudl_allocator *allocator,
                             cudl__grad_bucket *buckets, int count) {
  cudl__host_free(allocator, buckets, (size_t)count * sizeof *buckets);
}

cudl_status cudl__grad_buckets_plan(cudl_model *m, int64_t bucket_bytes,
                                    int64_t max_floats,
                                    cudl__grad_bucket **out, int *count) {
  cudl__grad_bucket *list = NULL;
  int n = 0, capacity = 0, i, k, ready = 0, have = 0;
  int64_t end, low = 0;
  cudl_status status = CUDL_OK;
  *out = NULL;
  *count = 0;
  end = m->param_floats;
  /* Trainable parameters take the arena in the order they were added
   * (cudl_model_compile), each owned by one node as its weight or bias:
   * walking the parameters down walks the arena down. */
  for (i = m->param_count - 1; i >= 0 && status == CUDL_OK; --i) {
    const param_entry *p = &m->params[i];
    int owner = 0;
    if (!p->trainable) continue;
    for (k = 1; k < m->node_count; ++k)
      if (m->nodes[k].weight == i || m->nodes[k].bias == i) owner = k;
    /* Bytes of [p, end): p with everything above it in this bucket. */
    if (have && bucket_bytes > 0 &&
        (end - p->offset) > bucket_bytes / (int64_t)sizeof(float)) {
      status = push_pieces(m, &list, &n, &capacity, low, end, ready,
                           max_floats);
      end = low;
      have = 0;
    }
    low = p->offset;
    ready = have && ready < owner ? ready : owner;
    have = 1;
  }
  /* The last bucket starts at the arena's start (the first parameter's
   * offset, 0). */
  if (status == CUDL_OK && have)
    status = push_pieces(m, &list, &n, &capacity, 0, end, ready, max_floats);
  /* Kept at its exact size, which is what releasing it names. */
  if (status == CUDL_OK && n > 0) {
    *out = (cudl__grad_bucket *)cudl__host_alloc(&m->allocator,
                                                 (size_t)n * sizeof *list, 64);
    if (*out == NULL)
      status = CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                         "cannot allocate %d gradient buckets", n);
    else
      memcpy(*out, list, (size_t)n * sizeof *list);
  }
  cudl__host_free(&m->allocator, list, (size_t)capacity * sizeof *list);
  if (status == CUDL_OK) *count = n;
  return status;
}

/* ---- one backward's buckets ---- */

static const char fn[] = "averaging the gradients";

static void release_views(grad_sync *g) {
  int i;
  if (g->views == NULL) return;
  for (i = 0; i < g->count; ++i) cudl_tensor_destroy(g->views[i]);
  cudl__host_free(&g->allocator, g->views, (size_t)g->count * sizeof *g->views);
  g->views = NULL;
}

static void release_wire(grad_sync *g) {
  int i;
  if (g->wire_views != NULL) {
    for (i = 0; i < g->count; ++i) cudl_tensor_destroy(g->wire_views[i]);
    cudl__host_free(&g->allocator, g->wire_views,
                    (size_t)g->count * sizeof *g->wire_views);
    g->wire_views = NULL;
  }
  cudl_tensor_destroy(g->wire_arena);
  g->wire_arena = NULL;
}

static void release_state(void *state) {
  grad_sync *g = (grad_sync *)state;
  if (g == NULL) return;
  release_wire(g);
  release_views(g);
  cudl__grad_buckets_free(&g->allocator, g->buckets, g->count);
  cudl__host_free(&g->allocator, g, sizeof *g);
}

/* The dtype the gradients of m travel as (cudl_model_grad_wire_dtype). */
static cudl_dtype wire_dtype(const cudl_model *m) {
  switch ((cudl_grad_wire)m->grad_wire) {
    case CUDL_GRAD_WIRE_F32: return CUDL_DTYPE_F32;
    case CUDL_GRAD_WIRE_BF16: return CUDL_DTYPE_BF16;
    case CUDL_GRAD_WIRE_F16: return CUDL_DTYPE_F16;
    case CUDL_GRAD_WIRE_AUTO: break;
  }
  return m->precision == CUDL_PRECISION_BF16   ? CUDL_DTYPE_BF16
         : m->precision == CUDL_PRECISION_FP16 ? CUDL_DTYPE_F16
                                               : CUDL_DTYPE_F32;
}

/* A 16-bit copy of m's gradient arena in dtype, with a view per bucket,
 * unless g has it already. */
static cudl_status prepare_wire(grad_sync *g, cudl_model *m, cudl_dtype dtype) {
  int64_t floats = m->param_floats;
  int k;
  cudl_status status;
  if (g->wire_arena != NULL && cudl_tensor_dtype(g->wire_arena) == dtype)
    return CUDL_OK;
  release_wire(g);
  status = cudl_tensor_create(m->ctx, dtype, 1, &floats, &g->wire_arena);
  if (status != CUDL_OK)
    return cudl__fail(m->ctx, status, fn,
                      "cannot allocate the gradients' %s copy for the wire: "
                      "%s",
                      cudl_dtype_name(dtype), cudl_context_last_error(m->ctx));
  g->wire_views = (cudl_tensor **)cudl__host_alloc(
      &g->allocator, (size_t)g->count * sizeof *g->wire_views, 64);
  if (g->wire_views == NULL) {
    release_wire(g);
    return cudl__fail(m->ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate the gradient buckets' wire views");
  }
  memset(g->wire_views, 0, (size_t)g->count * sizeof *g->wire_views);
  for (k = 0; k < g->count; ++k) {
    status = cudl__tensor_view(g->wire_arena, g->buckets[k].first, 1,
                               &g->buckets[k].count, &g->wire_views[k]);
    if (status != CUDL_OK) {
      release_wire(g);
      return status;
    }
  }
  return CUDL_OK;
}

static cudl_status sync_begin(void *state, cudl_model *m) {
  grad_sync *g = (grad_sync *)state;
  cudl_comm *c = g->comm;
  cudl_status status;
  if (g->in_flight)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "an earlier backward failed with gradient reductions "
                      "in flight: the ranks' exchanges no longer match; end "
                      "the job (cudl_comm_abort)");
  g->reduced = g->broadcast = 0;
  g->wait_seconds = 0.0;
  /* One rank exchanges nothing: its gradients stay exact. */
  g->wire = c->size > 1 ? wire_dtype(m) : CUDL_DTYPE_F32;
  if (g->wire != CUDL_DTYPE_F32) {
    status = prepare_wire(g, m, g->wire);
    if (status != CUDL_OK) return status;
  }
  g->host = (char *)(g->wire == CUDL_DTYPE_F32 ? m->grad_arena->data
                                               : g->wire_arena->data);
  g->staged = !c->ops->device_buffers &&
              m->grad_arena->ctx->device != CUDL_DEVICE_CPU && c->size > 1;
  if (g->staged) {
    g->host = (char *)cudl__comm_staging(
        c, (size_t)m->param_floats * cudl_dtype_size(g->wire), fn);
    if (g->host == NULL) return CUDL_ERR_OUT_OF_MEMORY;
  }
  return c->ops->bucket_slots(c, g->count);
}

/* Bucket k's values as they travel: its f32 view, or its 16-bit copy. */
static cudl_tensor *wire_view(const grad_sync *g, int k) {
  return g->wire == CUDL_DTYPE_F32 ? g->views[k] : g->wire_views[k];
}

static cudl_status start_reduce(grad_sync *g, cudl_model *m) {
  const int k = g->reduced;
  const cudl__grad_bucket *b = &g->buckets[k];
  const size_t element = cudl_dtype_size(g->wire);
  char *values = g->host + (size_t)b->first * element;
  cudl_comm *c = g->comm;
  cudl_status status = CUDL_OK;
  if (g->wire != CUDL_DTYPE_F32) {
    /* Divided by the ranks first, so that the 16-bit sum is the mean and
     * f16's sum stays in range where each rank's values are. */
    status = cudl_scale(m->ctx, g->views[k], 1.0f / (float)c->size,
                        g->views[k]);
    if (status == CUDL_OK)
      status = cudl_tensor_convert(g->wire_views[k], g->views[k]);
    if (status != CUDL_OK)
      return cudl__fail(m->ctx, status, fn,
                        "converting gradients to %s for the wire: %s",
                        cudl_dtype_name(g->wire),
                        cudl_context_last_error(m->ctx));
  }
  if (g->staged) {
    status = cudl_tensor_copy_to_host(wire_view(g, k), values,
                                      (size_t)b->count * element);
    if (status != CUDL_OK)
      return cudl__fail(m->ctx, status, fn,
                        "copying gradients to host memory: %s",
                        cudl_context_last_error(m->ctx));
  }
  /* From the first start to the last wait the ranks' exchanges are in
   * flight together: a backward failing in between leaves them so. */
  g->in_flight = 1;
  status = c->ops->bucket_reduce(c, k, values, (size_t)b->count, g->wire);
  if (status == CUDL_OK) ++g->reduced;
  return status;
}

static cudl_status start_broadcast(grad_sync *g) {
  const double start = now_seconds();
  cudl_status status = g->comm->ops->bucket_broadcast(g->comm, g->broadcast);
  g->wait_seconds += now_seconds() - start;
  if (status == CUDL_OK) ++g->broadcast;
  return status;
}

static cudl_status sync_node_done(void *state, cudl_model *m, int done) {
  grad_sync *g = (grad_sync *)state;
  cudl_status status = CUDL_OK;
  while (status == CUDL_OK && g->reduced < g->count &&
         g->buckets[g->reduced].ready_node >= done)
    status = start_reduce(g, m);
  while (status == CUDL_OK && g->broadcast < g->reduced - 1)
    status = start_broadcast(g);
  if (status == CUDL_OK && g->broadcast < g->reduced)
    status = g->comm->ops->bucket_progress(g->comm);
  return status;
}

/* Bucket k's broadcast complete: its sum into its mean (the same f32
 * product as cudl_comm_allreduce_mean's), back on the device if staged;
 * from a 16-bit wire, back in f32 (the sum of shares divided already). */
static cudl_status finish_bucket(grad_sync *g, cudl_model *m, int k) {
  const cudl__grad_bucket *b = &g->buckets[k];
  const size_t element = cudl_dtype_size(g->wire);
  char *values = g->host + (size_t)b->first * element;
  cudl_comm *c = g->comm;
  const float scale = 1.0f / (float)c->size;
  cudl_status status = c->ops->bucket_wait(c, k);
  if (status != CUDL_OK || c->size == 1) return status;
  if (g->staged) {
    status = cudl_tensor_copy_from_host(wire_view(g, k), values,
                                        (size_t)b->count * element);
    if (status != CUDL_OK)
      return cudl__fail(m->ctx, status, fn,
                        "copying the summed gradients back to the device: %s",
                        cudl_context_last_error(m->ctx));
  }
  if (g->wire != CUDL_DTYPE_F32) {
    /* Already the mean (start_reduce divided each rank's share). */
    status = cudl_tensor_convert(g->views[k], g->wire_views[k]);
    if (status != CUDL_OK)
      return cudl__fail(m->ctx, status, fn,
                        "converting the averaged gradients from %s: %s",
                        cudl_dtype_name(g->wire),
                        cudl_context_last_error(m->ctx));
    return CUDL_OK;
  }
  if (c->ops->device_buffers || g->staged)
    return cudl_scale(m->ctx, g->views[k], scale, g->views[k]);
  {
    float *v = (float *)values;
    int64_t i;
    for (i = 0; i < b->count; ++i) v[i] *= scale;
  }
  return CUDL_OK;
}

static cudl_status sync_finish(void *state, cudl_model *m) {
  grad_sync *g = (grad_sync *)state;
  double start;
  int k;
  cudl_status status = CUDL_OK;
  if (g->reduced != g->count)
    return cudl__fail(m->ctx, CUDL_ERR_INTERNAL, fn,
                      "backward ended with %d of %d gradient buckets not "
                      "started",
                      g->count - g->reduced, g->count);
  start = now_seconds();
  while (status == CUDL_OK && g->broadcast < g->count)
    status = g->comm->ops->bucket_broadcast(g->comm, g->broadcast++);
  for (k = 0; k < g->count && status == CUDL_OK; ++k)
    status = finish_bucket(g, m, k);
  g->wait_seconds += now_seconds() - start;
  if (status == CUDL_OK) g->in_flight = 0;
  return status;
}

static const cudl__grad_sync_hooks hooks = {sync_begin, sync_node_done,
                                            sync_finish, release_state};

/* A state for model m and comm with the buckets of bucket_bytes. */
static cudl_status make_state(cudl_model *m, cudl_comm *comm,
                              int64_t bucket_bytes, grad_sync **out) {
  grad_sync *g;
  int k;
  cudl_status status;
  *out = NULL;
  g = (grad_sync *)cudl__host_alloc(&m->allocator, sizeof *g, 64);
  if (g == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                     "cannot allocate the gradient buckets' state");
  memset(g, 0, sizeof *g);
  g->comm = comm;
  g->allocator = m->allocator;
  g->bucket_bytes = bucket_bytes;
  status = cudl__grad_buckets_plan(m, bucket_bytes, MAX_BUCKET_FLOATS,
                                   &g->buckets, &g->count);
  if (status == CUDL_OK && g->count > 0) {
    g->views = (cudl_tensor **)cudl__host_alloc(
        &m->allocator, (size_t)g->count * sizeof *g->views, 64);
    if (g->views == NULL)
      status = CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                         "cannot allocate the gradient buckets' views");
    else
      memset(g->views, 0, (size_t)g->count * sizeof *g->views);
  }
  for (k = 0; k < g->count && status == CUDL_OK; ++k)
    status = cudl__tensor_view(m->grad_arena, g->buckets[k].first, 1,
                               &g->buckets[k].count, &g->views[k]);
  if (status != CUDL_OK) {
    release_state(g);
    return status;
  }
  *out = g;
  return CUDL_OK;
}

static int has_bucket_ops(const cudl_comm *c) {
  return c->ops->bucket_slots != NULL && c->ops->bucket_reduce != NULL &&
         c->ops->bucket_broadcast != NULL && c->ops->bucket_progress != NULL &&
         c->ops->bucket_wait != NULL;
}

/* ---- the public entries ---- */

/* Why model has no gradient arena. */
static const char *no_gradients(const cudl_model *model) {
  return cudl_model_is_inference(model)
             ? "the model is compiled for inference: it has no gradients "
               "to average (compile it with cudl_model_compile to train)"
             : "the model is not compiled: it has no gradients yet";
}

cudl_status cudl_model_set_grad_sync(cudl_model *model, cudl_comm *comm,
                                     int64_t bucket_bytes) {
  grad_sync *g = NULL;
  cudl_status status;
  if (model == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (comm != NULL) {
    if (comm->ctx != model->ctx)
      return CUDL_FAIL(model->ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "the communicator records its errors in another "
                       "context than the model's: make both with one "
                       "context");
    if (!model->compiled || model->grad_arena == NULL)
      return CUDL_FAIL(model->ctx, CUDL_ERR_INVALID_ARGUMENT, "%s",
                       no_gradients(model));
    if (bucket_bytes < 0)
      return CUDL_FAIL(model->ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "bucket_bytes is %lld; it must be >= 0 (0: one "
                       "bucket)",
                       (long long)bucket_bytes);
    if (!has_bucket_ops(comm))
      return CUDL_FAIL(model->ctx, CUDL_ERR_UNSUPPORTED,
                       "the %s backend cannot reduce gradient buckets",
                       comm->ops->name);
    if (model->grad_sync != NULL &&
        ((grad_sync *)model->grad_sync_state)->in_flight)
      return CUDL_FAIL(model->ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "an earlier backward failed with gradient reductions "
                       "in flight: end the job (cudl_comm_abort)");
    status = make_state(model, comm, bucket_bytes, &g);
    if (status != CUDL_OK) return status;
  }
  if (model->grad_sync != NULL)
    model->grad_sync->release(model->grad_sync_state);
  model->grad_sync = g == NULL ? NULL : &hooks;
  model->grad_sync_state = g;
  return CUDL_OK;
}

int cudl_model_grad_sync_buckets(const cudl_model *model) {
  if (model == NULL || model->grad_sync == NULL) return 0;
  return ((const grad_sync *)model->grad_sync_state)->count;
}

double cudl_model_grad_sync_wait_seconds(const cudl_model *model) {
  if (model == NULL || model->grad_sync == NULL) return 0.0;
  return ((const grad_sync *)model->grad_sync_state)->wait_seconds;
}

/* A model that is not attached: the whole gradient arena as one bucket,
 * through the same steps as an attached model's backward. */
cudl_status cudl_comm_average_grads(cudl_comm *c, cudl_model *model) {
  static const char function[] = "cudl_comm_average_grads";
  grad_sync g;
  cudl__grad_bucket whole;
  cudl_tensor *view;
  cudl_status status;
  if (c == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (model == NULL)
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT, "model is NULL");
  view = cudl_model_grads(model);
  if (view == NULL)
    return CUDL_FAIL(c->ctx, CUDL_ERR_INVALID_ARGUMENT, "%s",
                     no_gradients(model));
  if (model->grad_sync != NULL)
    return cudl__fail(c->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "the model's backward averages its gradients already "
                      "(cudl_model_set_grad_sync): averaging them again "
                      "would exchange them twice");
  if (c->size == 1 || model->param_floats == 0) return CUDL_OK;
  if (!has_bucket_ops(c))
    return cudl__fail(c->ctx, CUDL_ERR_UNSUPPORTED, function,
                      "the %s backend cannot reduce gradient buckets",
                      c->ops->name);
  /* One bucket of the whole arena, through the steps of a backward. */
  memset(&g, 0, sizeof g);
  g.comm = c;
  g.allocator = model->allocator;
  whole.first = 0;
  whole.count = model->param_floats;
  whole.ready_node = 0;
  if (whole.count > MAX_BUCKET_FLOATS)
    return cudl__fail(c->ctx, CUDL_ERR_UNSUPPORTED, function,
                      "the gradient arena holds %lld values, over one "
                      "message's %lld: attach the model "
                      "(cudl_model_set_grad_sync), whose buckets are cut to "
                      "size",
                      (long long)whole.count, (long long)MAX_BUCKET_FLOATS);
  g.buckets = &whole;
  g.count = 1;
  g.views = &view;
  status = sync_begin(&g, model);
  if (status == CUDL_OK) status = start_reduce(&g, model);
  if (status == CUDL_OK) status = sync_finish(&g, model);
  release_wire(&g);
  return status;
}

cudl_status cudl_model_set_grad_wire(cudl_model *model, cudl_grad_wire wire) {
  if (model == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (wire != CUDL_GRAD_WIRE_AUTO && wire != CUDL_GRAD_WIRE_F32 &&
      wire != CUDL_GRAD_WIRE_BF16 && wire != CUDL_GRAD_WIRE_F16)
    return CUDL_FAIL(model->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "wire is %d: give CUDL_GRAD_WIRE_AUTO, _F32, _BF16 or "
                     "_F16",
                     (int)wire);
  model->grad_wire = (int)wire;
  return CUDL_OK;
}

cudl_dtype cudl_model_grad_wire_dtype(const cudl_model *model) {
  return model == NULL ? CUDL_DTYPE_F32 : wire_dtype(model);
}

const char *cudl_grad_wire_name(cudl_grad_wire wire) {
  switch (wire) {
    case CUDL_GRAD_WIRE_AUTO: return "auto";
    case CUDL_GRAD_WIRE_F32: return "f32";
    case CUDL_GRAD_WIRE_BF16: return "bf16";
    case CUDL_GRAD_WIRE_F16: return "f16";
  }
  return "unknown";
}

cudl_status cudl_grad_wire_from_name(const char *name, cudl_grad_wire *out) {
  static const cudl_grad_wire all[] = {CUDL_GRAD_WIRE_AUTO, CUDL_GRAD_WIRE_F32,
                                       CUDL_GRAD_WIRE_BF16, CUDL_GRAD_WIRE_F16};
  size_t i;
  if (name == NULL || out == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < sizeof all / sizeof all[0]; ++i)
    if (strcmp(name, cudl_grad_wire_name(all[i])) == 0) {
      *out = all[i];
      return CUDL_OK;
    }
  return CUDL_ERR_INVALID_ARGUMENT;
}
