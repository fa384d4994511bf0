/*
 * loader.c - batches prepared on a background thread, finished on the
 * device.
 *
 * Three slots, each a batch's worth of image bytes, crops (dy, dx, flip)
 * and i32 labels. The thread takes a free slot, fills it with the next
 * batch of its position (outside the lock: the images' bytes, decoded for
 * a streamed set, and their crops, batch.c) and marks it ready;
 * cudl_loader_next waits for the slot of the batch it wants, uploads it to
 * the loader's context and runs images_from_bytes there (crop, flip and
 * normalisation: on a GPU a kernel, a quarter of the bytes to upload). So
 * the thread works up to two batches ahead and the caller waits only when
 * it consumes faster than the host can prepare.
 *
 * The uploads do not wait for the device: the slots are pinned host memory
 * (cudl__host_pinned_alloc), the copies are queued behind the work already
 * on the stream, and the slot stays in flight, with an event recorded
 * after its copies, until the next cudl_loader_next (or destroy) waits for
 * that event and frees it (a seek leaves it in flight: the thread refills
 * only free slots). On a GPU a training step then holds
 * no host synchronisation for its data (a copy from pageable memory would
 * wait for the stream), and the host runs at most about a step ahead of
 * the device (the next call waits for the previous batch's upload, which
 * follows the step before it). Tensors of another context receive the
 * batch from the loader's own buffers (cudl_tensor_copy, which waits).
 *
 * Seeking bumps a generation number: ready slots are dropped, a slot being
 * filled for an older generation is dropped when the thread finishes it,
 * and the thread restarts from the new position. Every batch is a pure
 * function of (seed, epoch, batch) (batch.c), so where the thread was
 * does not matter.
 *
 * The thread never calls into the context (whose contract is one thread at
 * a time) and never logs: it records a failure in the loader, and the
 * caller's next cudl_loader_next reports it. It allocates only to decode
 * the images of a streamed dataset (a batch's worth, in parallel, into
 * the staging buffer), from malloc, since the context's allocator is the
 * caller's thread's.
 */
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "data/data_internal.h"
#include "data/image_internal.h"

#define LOADER_SLOTS 3
/* A message naming a batch, an image and its file (up to 4096 bytes). */
#define LOADER_ERROR_TEXT 4608

enum { SLOT_FREE, SLOT_FILLING, SLOT_READY, SLOT_COPYING, SLOT_IN_FLIGHT };

typedef struct loader_slot {
  int state;
  uint64_t generation;
  int64_t epoch, batch, rows;
  int last; /* the epoch's last batch */
  uint8_t *pixels;
  int32_t *crops, *labels;
  cudl_event *copied; /* recorded after the slot's copies (in flight) */
} loader_slot;

struct cudl_loader {
  cudl_context *ctx;
  cudl_allocator allocator; /* allocated this struct and its buffers */
  const cudl_dataset *ds;
  cudl_batch_recipe recipe;
  int shuffle;
  int64_t batch, batches, count;
  int64_t global_batch, shard_start; /* world * batch; rank * batch */
  int64_t rows; /* the most a batch holds: min(batch, count) */
  size_t pixels_size, crops_size, labels_size, perm_size; /* buffer bytes */
  /* On the context: a slot's upload (the bytes in an i32 tensor's
   * storage), the normalisation table, and where a batch for tensors of
   * another context is made (made at the first such call). */
  cudl_tensor *pixels_dev, *crops_dev, *lut_dev, *x_dev, *labels_dev;

  /* The thread's own. */
  uint32_t *perm;
  int64_t perm_epoch; /* the epoch perm holds; -1 for none */
  char stage_error[LOADER_ERROR_TEXT];

  /* Shared, under mutex. */
  pthread_mutex_t mutex;
  pthread_cond_t work;  /* the thread waits: a slot freed, seek, stop */
  pthread_cond_t ready; /* the caller waits: a slot ready, an error */
  int stop;
  uint64_t generation;
  int64_t work_epoch, work_batch; /* the next batch the thread prepares */
  loader_slot slots[LOADER_SLOTS];
  cudl_status error;
  char error_text[LOADER_ERROR_TEXT];
  int64_t fail_epoch, fail_batch; /* test hook */

  /* The caller's. */
  int64_t next_epoch, next_batch;
  pthread_t thread;
  int thread_started, mutex_ready, work_ready, ready_ready;
};

/* ---- the thread ---- */

static void advance(int64_t *epoch, int64_t *batch, int64_t batches) {
  if (++*batch == batches) {
    *batch = 0;
    ++*epoch;
  }
}

static loader_slot *free_slot(cudl_loader *l) {
  int i;
  for (i = 0; i < LOADER_SLOTS; ++i)
    if (l->slots[i].state == SLOT_FREE) return &l->slots[i];
  return NULL;
}

/* Decode the images order[0..rows) of a streamed dataset into staged, in
 * parallel; each image lands in its row whatever the thread, so the batch
 * does not depend on the thread count. On failure text names the first
 * failing row's image and file. */
static cudl_status stage_images(const cudl_dataset *ds, const uint32_t *order,
                                int64_t rows, uint8_t *staged, char *text,
                                size_t size) {
  int64_t r, first_bad = rows;
  cudl_status bad_status = CUDL_OK;
  cudl_image_error bad;
  bad.text[0] = '\0';
#pragma omp parallel for schedule(dynamic, 1)
  for (r = 0; r < rows; ++r) {
    cudl_image_error err;
    const cudl_status s =
        cudl__dataset_decode(ds, order[r], &cudl__default_allocator,
                             staged + (size_t)r * ds->image_bytes, &err);
    if (s != CUDL_OK) {
#pragma omp critical
      if (r < first_bad) {
        first_bad = r;
        bad_status = s;
        bad = err;
      }
    }
  }
  if (bad_status != CUDL_OK)
    snprintf(text, size, "image %u, '%s': %s", order[first_bad],
             cudl__dataset_image_path(ds, order[first_bad]), bad.text);
  return bad_status;
}

static void *loader_thread(void *arg) {
  cudl_loader *l = (cudl_loader *)arg;
  for (;;) {
    loader_slot *slot;
    uint64_t generation;
    int64_t epoch, batch, first, rows;
    cudl_status status = CUDL_OK;
    int fail;
    pthread_mutex_lock(&l->mutex);
    while (!l->stop && (l->error != CUDL_OK || free_slot(l) == NULL))
      pthread_cond_wait(&l->work, &l->mutex);
    if (l->stop) {
      pthread_mutex_unlock(&l->mutex);
      return NULL;
    }
    slot = free_slot(l);
    slot->state = SLOT_FILLING;
    generation = l->generation;
    epoch = l->work_epoch;
    batch = l->work_batch;
    fail = epoch == l->fail_epoch && batch == l->fail_batch;
    advance(&l->work_epoch, &l->work_batch, l->batches);
    pthread_mutex_unlock(&l->mutex);

    first = batch * l->global_batch + l->shard_start;
    rows = first >= l->count            ? 0
           : l->count - first < l->batch ? l->count - first
                                         : l->batch;
    if (!fail) {
      if (l->perm_epoch != epoch) {
        cudl__data_order(l->perm, l->count, l->shuffle, l->recipe.seed, epoch);
        l->perm_epoch = epoch;
      }
      if (l->ds->streamed)
        status = stage_images(l->ds, l->perm + first, rows, slot->pixels,
                              l->stage_error, sizeof l->stage_error);
      if (status == CUDL_OK)
        cudl__data_gather(&l->recipe, l->perm + first, rows, epoch,
                          l->ds->streamed, slot->pixels, slot->crops,
                          slot->labels);
    }

    pthread_mutex_lock(&l->mutex);
    if (generation != l->generation) {
      slot->state = SLOT_FREE; /* a seek made it stale */
    } else if (fail || status != CUDL_OK) {
      slot->state = SLOT_FREE;
      l->error = fail ? CUDL_ERR_IO : status;
      if (fail)
        snprintf(l->error_text, sizeof l->error_text,
                 "the loader's thread failed at batch %lld of epoch %lld "
                 "(injected failure)",
                 (long long)batch, (long long)epoch);
      else
        snprintf(l->error_text, sizeof l->error_text,
                 "batch %lld of epoch %lld: %s", (long long)batch,
                 (long long)epoch, l->stage_error);
      pthread_cond_broadcast(&l->ready);
    } else {
      slot->generation = generation;
      slot->epoch = epoch;
      slot->batch = batch;
      slot->rows = rows;
      slot->last = batch == l->batches - 1;
      slot->state = SLOT_READY;
      pthread_cond_broadcast(&l->ready);
    }
    pthread_mutex_unlock(&l->mutex);
  }
}

/* ---- creation ---- */

cudl_loader_config cudl_loader_config_default(void) {
  cudl_loader_config c;
  int i;
  memset(&c, 0, sizeof c);
  c.batch = 64;
  c.shuffle = 1;
  for (i = 0; i < 4; ++i) c.std[i] = 1.0f;
  c.world = 1;
  return c;
}

static cudl_status check_config(cudl_context *ctx, const cudl_dataset *ds,
                                const cudl_loader_config *c) {
  static const char fn[] = "cudl_loader_create";
  int i;
  if (c->batch < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "config->batch is %lld; it must be at least 1",
                      (long long)c->batch);
  if (c->world < 1 || c->rank < 0 || c->rank >= c->world)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "config->rank %d of config->world %d: the world must "
                      "be at least 1 and the rank 0 to world - 1",
                      c->rank, c->world);
  if (c->batch > INT64_MAX / c->world)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "config->batch (%lld) times config->world (%d) "
                      "overflows",
                      (long long)c->batch, c->world);
  if (c->drop_last && c->batch * c->world > ds->count)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "config->batch (%lld) times config->world (%d) is "
                      "larger than the dataset (%lld images) and drop_last "
                      "leaves no batch",
                      (long long)c->batch, c->world, (long long)ds->count);
  for (i = 0; i < ds->channels; ++i) {
    if (!isfinite(c->mean[i]))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                        "config->mean[%d] is not finite", i);
    if (!(c->std[i] > 0.0f) || !isfinite(c->std[i]))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                        "config->std[%d] is %g; it must be positive and "
                        "finite",
                        i, (double)c->std[i]);
  }
  if (c->augment) {
    int side = ds->height < ds->width ? ds->height : ds->width;
    if (c->crop_padding < 0 || c->crop_padding > side)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                        "config->crop_padding is %d; it must be 0 to %d "
                        "(the image's shorter side)",
                        c->crop_padding, side);
  }
  return CUDL_OK;
}

static cudl_status fail_create(cudl_loader *l, cudl_status status) {
  cudl_loader_destroy(l);
  return status;
}

cudl_status cudl_loader_create(cudl_context *ctx, const cudl_dataset *ds,
                               const cudl_loader_config *config,
                               cudl_loader **out) {
  static const char fn[] = "cudl_loader_create";
  cudl_loader *l;
  cudl_status status;
  int64_t rows;
  sigset_t all, old;
  int i, v, err;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || ds == NULL || config == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      out == NULL  ? "out"
                      : ds == NULL ? "ds"
                                   : "config");
  status = check_config(ctx, ds, config);
  if (status != CUDL_OK) return status;

  l = (cudl_loader *)cudl__host_alloc(&ctx->allocator, sizeof *l, 64);
  if (l == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate the loader");
  memset(l, 0, sizeof *l);
  l->ctx = ctx;
  l->allocator = ctx->allocator;
  l->ds = ds;
  l->shuffle = config->shuffle != 0;
  l->batch = config->batch;
  l->count = ds->count;
  l->global_batch = config->batch * config->world;
  l->shard_start = config->batch * config->rank;
  l->batches = config->drop_last ? ds->count / l->global_batch
                                 : (ds->count - 1) / l->global_batch + 1;
  l->perm_epoch = -1;
  l->fail_epoch = -1;
  l->fail_batch = -1;
  l->recipe.ds = ds;
  l->recipe.seed = config->seed;
  l->recipe.augment = config->augment != 0;
  l->recipe.crop_padding = config->augment ? config->crop_padding : 0;
  l->recipe.horizontal_flip = config->augment && config->horizontal_flip;
  for (i = 0; i < ds->channels; ++i)
    for (v = 0; v < 256; ++v)
      l->recipe.lut[i][v] =
          ((float)v / 255.0f - config->mean[i]) / config->std[i];

  /* No batch has more rows than the dataset: the buffers are bounded by
   * the dataset's size, whatever config->batch says. */
  rows = config->batch < ds->count ? config->batch : ds->count;
  l->rows = rows;
  if (!cudl__mul_size((size_t)rows, ds->image_bytes, &l->pixels_size)) {
    return fail_create(l, cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                                     "a batch's size overflows"));
  }
  l->crops_size = (size_t)rows * 3 * sizeof(int32_t);
  l->labels_size = (size_t)rows * sizeof(int32_t);
  l->perm_size = (size_t)ds->count * sizeof(uint32_t);
  for (i = 0; i < LOADER_SLOTS; ++i) {
    loader_slot *slot = &l->slots[i];
    void *pixels = NULL, *crops = NULL, *labels = NULL;
    status = cudl__host_pinned_alloc(ctx, l->pixels_size, &pixels);
    slot->pixels = (uint8_t *)pixels;
    if (status == CUDL_OK)
      status = cudl__host_pinned_alloc(ctx, l->crops_size, &crops);
    slot->crops = (int32_t *)crops;
    if (status == CUDL_OK)
      status = cudl__host_pinned_alloc(ctx, l->labels_size, &labels);
    slot->labels = (int32_t *)labels;
    if (status == CUDL_OK)
      status = cudl__event_create_fence(ctx, &slot->copied);
    if (status != CUDL_OK)
      return fail_create(
          l, cudl__fail(ctx, status, fn, "making a batch slot failed: %s",
                        ctx->last_error));
  }
  l->perm = (uint32_t *)cudl__host_alloc(&ctx->allocator, l->perm_size, 64);
  if (l->perm == NULL)
    return fail_create(l, cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                                     "cannot allocate the epoch's order"));
  {
    /* The bytes ride in an i32 tensor's storage, rounded up to whole
     * elements. */
    const int64_t words = (int64_t)((l->pixels_size + 3) / 4);
    const int64_t crops = rows * 3, table = (int64_t)ds->channels * 256;
    status = cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, &words, &l->pixels_dev);
    if (status == CUDL_OK)
      status =
          cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, &crops, &l->crops_dev);
    if (status == CUDL_OK)
      status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &table, &l->lut_dev);
    for (i = 0; i < ds->channels && status == CUDL_OK; ++i)
      status =
          cudl__copy_from_host(ctx, (float *)l->lut_dev->data + (size_t)i * 256,
                               l->recipe.lut[i], sizeof l->recipe.lut[i]);
    if (status != CUDL_OK)
      return fail_create(
          l, cudl__fail(ctx, status, fn,
                        "making the batch's buffers on %s failed: %s",
                        ctx->device_name, ctx->last_error));
  }

  if ((err = pthread_mutex_init(&l->mutex, NULL)) != 0)
    return fail_create(l, cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                                     "pthread_mutex_init: %s", strerror(err)));
  l->mutex_ready = 1;
  if ((err = pthread_cond_init(&l->work, NULL)) != 0)
    return fail_create(l, cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                                     "pthread_cond_init: %s", strerror(err)));
  l->work_ready = 1;
  if ((err = pthread_cond_init(&l->ready, NULL)) != 0)
    return fail_create(l, cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                                     "pthread_cond_init: %s", strerror(err)));
  l->ready_ready = 1;

  /* The thread starts with the asynchronous signals blocked, so that a
   * program's handlers (Ctrl-C) run on its own threads; faults stay
   * deliverable. */
  sigfillset(&all);
  sigdelset(&all, SIGSEGV);
  sigdelset(&all, SIGBUS);
  sigdelset(&all, SIGFPE);
  sigdelset(&all, SIGILL);
  sigdelset(&all, SIGTRAP);
  sigdelset(&all, SIGABRT);
  sigdelset(&all, SIGSYS);
  pthread_sigmask(SIG_SETMASK, &all, &old);
  err = pthread_create(&l->thread, NULL, loader_thread, l);
  pthread_sigmask(SIG_SETMASK, &old, NULL);
  if (err != 0)
    return fail_create(
        l, cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot start the loader's thread: %s", strerror(err)));
  l->thread_started = 1;
  *out = l;
  return CUDL_OK;
}

void cudl_loader_destroy(cudl_loader *l) {
  cudl_allocator allocator;
  int i;
  if (l == NULL) return;
  if (l->thread_started) {
    pthread_mutex_lock(&l->mutex);
    l->stop = 1;
    pthread_cond_broadcast(&l->work);
    pthread_mutex_unlock(&l->mutex);
    pthread_join(l->thread, NULL);
  }
  if (l->ready_ready) pthread_cond_destroy(&l->ready);
  if (l->work_ready) pthread_cond_destroy(&l->work);
  if (l->mutex_ready) pthread_mutex_destroy(&l->mutex);
  allocator = l->allocator;
  for (i = 0; i < LOADER_SLOTS; ++i) {
    loader_slot *slot = &l->slots[i];
    /* The device may still be reading a slot in flight. */
    if (slot->state == SLOT_IN_FLIGHT) (void)cudl__event_wait(slot->copied);
    cudl__host_pinned_free(l->ctx, slot->pixels, l->pixels_size);
    cudl__host_pinned_free(l->ctx, slot->crops, l->crops_size);
    cudl__host_pinned_free(l->ctx, slot->labels, l->labels_size);
    cudl_event_destroy(slot->copied);
  }
  cudl_tensor_destroy(l->pixels_dev);
  cudl_tensor_destroy(l->crops_dev);
  cudl_tensor_destroy(l->lut_dev);
  cudl_tensor_destroy(l->x_dev);
  cudl_tensor_destroy(l->labels_dev);
  cudl__host_free(&allocator, l->perm, l->perm_size);
  cudl__host_free(&allocator, l, sizeof *l);
}

/* ---- use ---- */

int64_t cudl_loader_batches(const cudl_loader *l) {
  return l == NULL ? 0 : l->batches;
}

cudl_status cudl_loader_position(const cudl_loader *l, int64_t *epoch,
                                 int64_t *batch) {
  if (l == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (epoch == NULL || batch == NULL)
    return cudl__fail(l->ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_loader_position",
                      "%s is NULL", epoch == NULL ? "epoch" : "batch");
  *epoch = l->next_epoch;
  *batch = l->next_batch;
  return CUDL_OK;
}

cudl_status cudl_loader_seek(cudl_loader *l, int64_t epoch, int64_t batch) {
  int i;
  if (l == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (epoch < 0 || batch < 0 || batch > l->batches ||
      (batch == l->batches && epoch == INT64_MAX))
    return cudl__fail(l->ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_loader_seek",
                      "position (epoch %lld, batch %lld): the epoch must be "
                      ">= 0 and the batch 0 to %lld",
                      (long long)epoch, (long long)batch,
                      (long long)l->batches);
  if (batch == l->batches) { /* the end of an epoch: the next one's start */
    ++epoch;
    batch = 0;
  }
  pthread_mutex_lock(&l->mutex);
  ++l->generation;
  l->work_epoch = epoch;
  l->work_batch = batch;
  for (i = 0; i < LOADER_SLOTS; ++i)
    if (l->slots[i].state == SLOT_READY) l->slots[i].state = SLOT_FREE;
  l->error = CUDL_OK;
  pthread_cond_broadcast(&l->work);
  pthread_mutex_unlock(&l->mutex);
  l->next_epoch = epoch;
  l->next_batch = batch;
  return CUDL_OK;
}

static cudl_status check_tensor(cudl_loader *l, const cudl_tensor *t,
                                const char *name, cudl_dtype dtype, int ndim,
                                const int64_t *shape) {
  static const char fn[] = "cudl_loader_next";
  int d;
  if (t == NULL)
    return cudl__fail(l->ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      name);
  if (t->dtype != dtype)
    return cudl__fail(l->ctx, CUDL_ERR_DTYPE, fn, "%s is %s; it must be %s",
                      name, cudl_dtype_name(t->dtype), cudl_dtype_name(dtype));
  if (t->ndim == ndim) {
    for (d = 0; d < ndim && t->shape[d] == shape[d]; ++d) {
    }
    if (d == ndim) return CUDL_OK;
  }
  if (ndim == 4)
    return cudl__fail(l->ctx, CUDL_ERR_SHAPE, fn,
                      "%s must have shape [%lld, %lld, %lld, %lld] (the batch "
                      "size and the dataset's C, H, W)",
                      name, (long long)shape[0], (long long)shape[1],
                      (long long)shape[2], (long long)shape[3]);
  return cudl__fail(l->ctx, CUDL_ERR_SHAPE, fn,
                    "%s must have shape [%lld] (the batch size)", name,
                    (long long)shape[0]);
}

/* Free the slots whose copies were queued by an earlier call, once the
 * device has read them. Only the caller's thread moves a slot in or out
 * of flight, so which slots are in flight can be read once under the lock
 * and the waits done outside it; the states themselves change under it,
 * since the thread writes the other slots' states. */
static cudl_status settle_copies(cudl_loader *l) {
  int in_flight[LOADER_SLOTS], i, any = 0;
  pthread_mutex_lock(&l->mutex);
  for (i = 0; i < LOADER_SLOTS; ++i) {
    in_flight[i] = l->slots[i].state == SLOT_IN_FLIGHT;
    any |= in_flight[i];
  }
  pthread_mutex_unlock(&l->mutex);
  if (!any) return CUDL_OK;
  for (i = 0; i < LOADER_SLOTS; ++i) {
    if (in_flight[i]) {
      const cudl_status status = cudl__event_wait(l->slots[i].copied);
      if (status != CUDL_OK) return status;
    }
  }
  pthread_mutex_lock(&l->mutex);
  for (i = 0; i < LOADER_SLOTS; ++i)
    if (in_flight[i]) l->slots[i].state = SLOT_FREE;
  pthread_cond_broadcast(&l->work);
  pthread_mutex_unlock(&l->mutex);
  return CUDL_OK;
}

/* The loader's own buffer of shape [rows, rest of t's shape] and t's
 * dtype, made at the first call that needs it: where a batch is made for a
 * tensor t of another context. */
static cudl_status own_buffer(cudl_loader *l, const cudl_tensor *t,
                              cudl_tensor **buffer) {
  int64_t shape[4];
  int d;
  if (*buffer != NULL) return CUDL_OK;
  for (d = 0; d < t->ndim; ++d) shape[d] = t->shape[d];
  shape[0] = l->rows;
  return cudl_tensor_create(l->ctx, t->dtype, t->ndim, shape, buffer);
}

/* Rows [0, rows) of src into t (of another context), waiting for both.
 * On failure *failed is the context holding the error: src's where its
 * view could not be made, else t's. */
static cudl_status copy_rows_to(cudl_tensor *t, const cudl_tensor *src,
                                int64_t rows, cudl_context **failed) {
  cudl_tensor *to = NULL, *from = NULL;
  cudl_status status = cudl_tensor_narrow(t, 0, rows, &to);
  *failed = t->ctx;
  if (status == CUDL_OK) {
    status = cudl_tensor_narrow(src, 0, rows, &from);
    if (status != CUDL_OK) *failed = src->ctx;
  }
  if (status == CUDL_OK) status = cudl_tensor_copy(to, from);
  cudl_tensor_destroy(to);
  cudl_tensor_destroy(from);
  return status;
}

/* The slot's batch into x and labels: its bytes, crops and labels queued
 * up to the loader's context, then images_from_bytes there, into x itself
 * when x is of that context (else into the loader's buffer, then copied),
 * and likewise the labels; the event after the uploads. On failure *failed
 * is the context holding the error. */
static cudl_status make_batch(cudl_loader *l, loader_slot *slot, cudl_tensor *x,
                              cudl_tensor *labels, cudl_context **failed) {
  const cudl_dataset *ds = l->ds;
  cudl_context *ctx = l->ctx;
  const int64_t pad = l->recipe.augment ? l->recipe.crop_padding : 0;
  cudl_tensor *x_to = x, *labels_to = labels;
  cudl_status status = CUDL_OK;
  *failed = ctx;
  if (x->ctx != ctx) status = own_buffer(l, x, &l->x_dev);
  if (x->ctx != ctx) x_to = l->x_dev;
  if (status == CUDL_OK && labels->ctx != ctx)
    status = own_buffer(l, labels, &l->labels_dev);
  if (labels->ctx != ctx) labels_to = l->labels_dev;
  if (status == CUDL_OK)
    status = cudl__copy_from_host_async(ctx, l->pixels_dev->data, slot->pixels,
                                        (size_t)slot->rows * ds->image_bytes);
  if (status == CUDL_OK)
    status =
        cudl__copy_from_host_async(ctx, l->crops_dev->data, slot->crops,
                                   (size_t)slot->rows * 3 * sizeof(int32_t));
  if (status == CUDL_OK)
    status = cudl__copy_from_host_async(ctx, labels_to->data, slot->labels,
                                        (size_t)slot->rows * sizeof(int32_t));
  if (status == CUDL_OK) status = cudl_event_record(slot->copied);
  if (status == CUDL_OK && slot->rows > 0)
    status = CUDL_OP_CALL(
        ctx, "cudl_loader_next", CUDL_DTYPE_F32, images_from_bytes,
        (const uint8_t *)l->pixels_dev->data,
        (const int32_t *)l->crops_dev->data, (const float *)l->lut_dev->data,
        x_to->data, slot->rows, (int64_t)ds->channels, (int64_t)ds->height,
        (int64_t)ds->width, pad);
  if (status == CUDL_OK && x_to != x)
    status = copy_rows_to(x, x_to, slot->rows, failed);
  if (status == CUDL_OK && labels_to != labels)
    status = copy_rows_to(labels, labels_to, slot->rows, failed);
  return status;
}

static loader_slot *wanted_slot(cudl_loader *l) {
  int i;
  for (i = 0; i < LOADER_SLOTS; ++i) {
    loader_slot *s = &l->slots[i];
    if (s->state == SLOT_READY && s->generation == l->generation &&
        s->epoch == l->next_epoch && s->batch == l->next_batch)
      return s;
  }
  return NULL;
}

cudl_status cudl_loader_next(cudl_loader *l, cudl_tensor *x,
                             cudl_tensor *labels, int64_t *rows,
                             int *epoch_done) {
  static const char fn[] = "cudl_loader_next";
  const cudl_dataset *ds;
  int64_t x_shape[4], labels_shape[1];
  loader_slot *slot;
  cudl_context *failed;
  cudl_status status;
  char error_text[sizeof l->error_text];
  if (l == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ds = l->ds;
  x_shape[0] = l->batch;
  x_shape[1] = ds->channels;
  x_shape[2] = ds->height;
  x_shape[3] = ds->width;
  labels_shape[0] = l->batch;
  status = check_tensor(l, x, "x", CUDL_DTYPE_F32, 4, x_shape);
  if (status == CUDL_OK)
    status = check_tensor(l, labels, "labels", CUDL_DTYPE_I32, 1, labels_shape);
  if (status != CUDL_OK) return status;

  status = settle_copies(l);
  if (status != CUDL_OK)
    return cudl__fail(l->ctx, status, fn, "an earlier batch's copy failed: %s",
                      l->ctx->last_error);

  pthread_mutex_lock(&l->mutex);
  while ((slot = wanted_slot(l)) == NULL && l->error == CUDL_OK)
    pthread_cond_wait(&l->ready, &l->mutex);
  if (slot == NULL) {
    status = l->error;
    memcpy(error_text, l->error_text, sizeof error_text);
    pthread_mutex_unlock(&l->mutex);
    return cudl__fail(l->ctx, status, fn, "%s", error_text);
  }
  slot->state = SLOT_COPYING;
  pthread_mutex_unlock(&l->mutex);

  /* The caller's thread: the tensors' contexts are used here, as in any
   * call. Only the batch's rows are written. */
  status = make_batch(l, slot, x, labels, &failed);
  /* A failure: copies queued before it may still read the slot, which is
   * offered again (or freed by a seek) only after they are done. */
  if (status != CUDL_OK) (void)cudl_context_synchronize(l->ctx);

  pthread_mutex_lock(&l->mutex);
  if (status != CUDL_OK) {
    slot->state = SLOT_READY; /* the same batch again next time */
  } else {
    slot->state = SLOT_IN_FLIGHT; /* freed by settle_copies */
    if (rows != NULL) *rows = slot->rows;
    if (epoch_done != NULL) *epoch_done = slot->last;
  }
  pthread_mutex_unlock(&l->mutex);
  if (status != CUDL_OK)
    return cudl__fail(l->ctx, status, fn, "copying the batch failed: %s",
                      failed->last_error);
  advance(&l->next_epoch, &l->next_batch, l->batches);
  return CUDL_OK;
}

void cudl__loader_fail_at(cudl_loader *l, int64_t epoch, int64_t batch) {
  pthread_mutex_lock(&l->mutex);
  l->fail_epoch = epoch;
  l->fail_batch = batch;
  pthread_mutex_unlock(&l->mutex);
}
