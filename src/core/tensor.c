/* tensor.c - tensor objects, copies and initialisation, dispatched to the
 * context's backend. */
#include <math.h>
#include <string.h>

#include "core/internal.h"

cudl_status cudl__shape_check(cudl_context *ctx, const char *function,
                              cudl_dtype dtype, int ndim, const int64_t *shape,
                              int64_t *numel, size_t *nbytes) {
  size_t elem_size = cudl_dtype_size(dtype);
  size_t extent = 1, bytes;
  int i, empty = 0;
  if (elem_size == 0)
    return cudl__fail(ctx, CUDL_ERR_DTYPE, function, "unknown dtype %d",
                      (int)dtype);
  if (ndim < 0 || ndim > CUDL_MAX_DIMS)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "ndim %d is outside [0, %d]", ndim, CUDL_MAX_DIMS);
  if (ndim > 0 && shape == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "shape is NULL with ndim %d", ndim);
  /* The product of the non-zero dimensions must fit even when another
   * dimension is 0, so that the verdict does not depend on their order and
   * strides computed from the shape never overflow. */
  for (i = 0; i < ndim; ++i) {
    if (shape[i] < 0)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "dimension %d is negative (%lld)", i,
                        (long long)shape[i]);
    if (shape[i] == 0) {
      empty = 1;
      continue;
    }
    if ((uint64_t)shape[i] > SIZE_MAX ||
        !cudl__mul_size(extent, (size_t)shape[i], &extent))
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "element count overflows at dimension %d (%lld)", i,
                        (long long)shape[i]);
  }
  if (extent > (size_t)INT64_MAX || !cudl__mul_size(extent, elem_size, &bytes))
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "byte size of %zu %s elements overflows", extent,
                      cudl_dtype_name(dtype));
  *numel = empty ? 0 : (int64_t)extent;
  *nbytes = empty ? 0 : bytes;
  return CUDL_OK;
}

/* A tensor object of a checked shape and, when it has bytes, its storage
 * object, whose data the caller fills in (tensor_discard undoes it). */
static cudl_status tensor_new(cudl_context *ctx, const char *function,
                              cudl_dtype dtype, int ndim, const int64_t *shape,
                              int64_t numel, size_t nbytes, cudl_tensor **out) {
  cudl_tensor *t = (cudl_tensor *)cudl__host_alloc(&ctx->allocator, sizeof *t,
                                                   sizeof(void *));
  if (t == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the tensor object");
  memset(t, 0, sizeof *t);
  t->ctx = ctx;
  t->allocator = ctx->allocator;
  t->dtype = dtype;
  t->ndim = ndim;
  if (ndim > 0) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  t->numel = numel;
  t->nbytes = nbytes;
  if (nbytes > 0) {
    cudl_storage *storage = (cudl_storage *)cudl__host_alloc(
        &ctx->allocator, sizeof *storage, sizeof(void *));
    if (storage == NULL) {
      cudl__host_free(&t->allocator, t, sizeof *t);
      return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                        "cannot allocate the storage object");
    }
    memset(storage, 0, sizeof *storage);
    storage->ctx = ctx;
    storage->allocator = ctx->allocator;
    storage->nbytes = nbytes;
    storage->refs = 1;
    t->storage = storage;
  }
  *out = t;
  return CUDL_OK;
}

/* Free what tensor_new made, before any data was attached. */
static void tensor_discard(cudl_tensor *t) {
  if (t->storage != NULL)
    cudl__host_free(&t->storage->allocator, t->storage, sizeof *t->storage);
  cudl__host_free(&t->allocator, t, sizeof *t);
}

cudl_status cudl_tensor_create(cudl_context *ctx, cudl_dtype dtype, int ndim,
                               const int64_t *shape, cudl_tensor **out) {
  cudl_tensor *t;
  int64_t numel;
  size_t nbytes;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  status =
      cudl__shape_check(ctx, __func__, dtype, ndim, shape, &numel, &nbytes);
  if (status != CUDL_OK) return status;
  status = tensor_new(ctx, __func__, dtype, ndim, shape, numel, nbytes, &t);
  if (status != CUDL_OK) return status;
  if (t->storage != NULL) {
    status = ctx->backend->runtime->alloc_zeroed(ctx, &t->storage->allocator,
                                                 nbytes, &t->storage->data);
    if (status != CUDL_OK) {
      tensor_discard(t);
      return status;
    }
    t->data = t->storage->data;
  }
  *out = t;
  return CUDL_OK;
}

cudl_status cudl_tensor_wrap(cudl_context *ctx, cudl_dtype dtype, int ndim,
                             const int64_t *shape, void *data,
                             cudl_tensor **out) {
  cudl_tensor *t;
  int64_t numel;
  size_t nbytes;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  if (data == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "data is NULL");
  status =
      cudl__shape_check(ctx, __func__, dtype, ndim, shape, &numel, &nbytes);
  if (status != CUDL_OK) return status;
  if (nbytes == 0)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "the shape has no elements, so there is no memory to "
                     "wrap (cudl_tensor_create makes empty tensors)");
  if ((uintptr_t)data % CUDL_TENSOR_WRAP_ALIGNMENT != 0)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "data (%p) is not aligned to %d bytes, the widest "
                     "access the kernels make",
                     data, CUDL_TENSOR_WRAP_ALIGNMENT);
  status = ctx->backend->runtime->check_foreign_memory(ctx, data, nbytes);
  if (status != CUDL_OK) return status;
  status = tensor_new(ctx, __func__, dtype, ndim, shape, numel, nbytes, &t);
  if (status != CUDL_OK) return status;
  t->storage->data = data;
  t->storage->borrowed = 1;
  t->data = data;
  *out = t;
  return CUDL_OK;
}

static void storage_release(cudl_storage *storage) {
  cudl_allocator allocator;
  if (storage == NULL || --storage->refs > 0) return;
  if (!storage->borrowed)
    storage->ctx->backend->runtime->free(storage->ctx, &storage->allocator,
                                         storage->data, storage->nbytes);
  allocator = storage->allocator;
  cudl__host_free(&allocator, storage, sizeof *storage);
}

void cudl_tensor_destroy(cudl_tensor *t) {
  cudl_allocator allocator;
  if (t == NULL) return;
  storage_release(t->storage);
  allocator = t->allocator;
  cudl__host_free(&allocator, t, sizeof *t);
}

/* A new handle on src's storage with the given (already checked) shape,
 * starting `offset` elements into src's data, numel elements long. */
static cudl_status make_view_at(const cudl_tensor *src, const char *function,
                                int64_t offset, int64_t numel, int ndim,
                                const int64_t *shape, cudl_tensor **out) {
  cudl_context *ctx = src->ctx;
  cudl_tensor *t = (cudl_tensor *)cudl__host_alloc(&ctx->allocator, sizeof *t,
                                                   sizeof(void *));
  if (t == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the tensor object");
  memset(t, 0, sizeof *t);
  t->ctx = ctx;
  t->allocator = ctx->allocator;
  t->dtype = src->dtype;
  t->ndim = ndim;
  if (ndim > 0) memcpy(t->shape, shape, (size_t)ndim * sizeof *shape);
  t->numel = numel;
  t->nbytes = (size_t)numel * cudl_dtype_size(src->dtype);
  if (t->nbytes > 0) {
    t->storage = src->storage;
    t->data = (char *)src->data + (size_t)offset * cudl_dtype_size(src->dtype);
    ++t->storage->refs;
  }
  *out = t;
  return CUDL_OK;
}

static cudl_status make_view(const cudl_tensor *src, const char *function,
                             int ndim, const int64_t *shape,
                             cudl_tensor **out) {
  return make_view_at(src, function, 0, src->numel, ndim, shape, out);
}

cudl_status cudl__tensor_view(const cudl_tensor *src, int64_t offset, int ndim,
                              const int64_t *shape, cudl_tensor **out) {
  int64_t numel;
  size_t nbytes;
  cudl_status status;
  *out = NULL;
  status = cudl__shape_check(src->ctx, __func__, src->dtype, ndim, shape,
                             &numel, &nbytes);
  if (status != CUDL_OK) return status;
  if (offset < 0 || offset > src->numel || numel > src->numel - offset)
    return cudl__fail(src->ctx, CUDL_ERR_SHAPE, __func__,
                      "a view of %lld elements at %lld does not fit in %lld",
                      (long long)numel, (long long)offset,
                      (long long)src->numel);
  return make_view_at(src, __func__, offset, numel, ndim, shape, out);
}

cudl_status cudl_tensor_narrow(const cudl_tensor *src, int64_t start,
                               int64_t length, cudl_tensor **out) {
  int64_t shape[CUDL_MAX_DIMS], row = 1;
  int i;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (src == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return CUDL_FAIL(src->ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  if (src->ndim < 1)
    return CUDL_FAIL(src->ctx, CUDL_ERR_SHAPE,
                     "a scalar has no first dimension to narrow");
  if (start < 0 || length < 0 || start > src->shape[0] ||
      length > src->shape[0] - start)
    return CUDL_FAIL(src->ctx, CUDL_ERR_SHAPE,
                     "rows [%lld, %lld + %lld) are not within the %lld rows",
                     (long long)start, (long long)start, (long long)length,
                     (long long)src->shape[0]);
  for (i = 1; i < src->ndim; ++i) row *= src->shape[i];
  memcpy(shape, src->shape, (size_t)src->ndim * sizeof shape[0]);
  shape[0] = length;
  status = make_view_at(src, __func__, start * row, length * row, src->ndim,
                        shape, out);
  if (status == CUDL_OK) (*out)->layout = src->layout;
  return status;
}

int cudl__tensors_overlap(const cudl_tensor *a, const cudl_tensor *b) {
  const char *a0, *b0;
  if (a == NULL || b == NULL || a->storage == NULL || b->storage == NULL)
    return 0;
  /* Storages cudl allocated never share bytes, but the caller's memory
   * (cudl_tensor_wrap) may be wrapped twice, or be part of another
   * tensor's: then the addresses decide. */
  if (a->storage != b->storage && !a->storage->borrowed &&
      !b->storage->borrowed)
    return 0;
  a0 = (const char *)a->data;
  b0 = (const char *)b->data;
  return a0 < b0 + b->nbytes && b0 < a0 + a->nbytes;
}

int cudl__tensors_overlap_unlike(const cudl_tensor *a, const cudl_tensor *b) {
  return cudl__tensors_overlap(a, b) &&
         (a->data != b->data || a->layout != b->layout);
}

/* A reshape reads the elements in row-major order of the shape: a
 * channels-last tensor's bytes are in another order, so PyTorch copies
 * there; cudl asks for the copy to be explicit. */
static cudl_status refuse_channels_last(const cudl_tensor *src,
                                        const char *function) {
  return cudl__fail(src->ctx, CUDL_ERR_SHAPE, function,
                    "the tensor is channels-last (nhwc): its bytes are not in "
                    "the order of its [N, C, H, W] shape; convert it to an "
                    "nchw tensor first (cudl_tensor_convert)");
}

cudl_status cudl_tensor_reshape(const cudl_tensor *src, int ndim,
                                const int64_t *shape, cudl_tensor **out) {
  cudl_context *ctx;
  int64_t resolved[CUDL_MAX_DIMS], known = 1, numel;
  size_t nbytes;
  int i, inferred = -1, empty = 0;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (src == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = src->ctx;
  if (out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  if (src->layout != CUDL_LAYOUT_NCHW)
    return refuse_channels_last(src, __func__);
  if (ndim < 0 || ndim > CUDL_MAX_DIMS)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE, "ndim %d is outside [0, %d]", ndim,
                     CUDL_MAX_DIMS);
  if (ndim > 0 && shape == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "shape is NULL with ndim %d", ndim);
  for (i = 0; i < ndim; ++i) {
    resolved[i] = shape[i];
    if (shape[i] == -1) {
      if (inferred >= 0)
        return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                         "dimensions %d and %d are both -1; at most one can "
                         "be inferred",
                         inferred, i);
      inferred = i;
    } else if (shape[i] < 0) {
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE, "dimension %d is negative (%lld)",
                       i, (long long)shape[i]);
    } else if (shape[i] == 0) {
      empty = 1;
    } else if (known > INT64_MAX / shape[i]) {
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "element count overflows at dimension %d", i);
    } else {
      known *= shape[i];
    }
  }
  if (inferred >= 0) {
    /* As in PyTorch: -1 cannot be resolved next to a zero dimension. */
    if (empty || src->numel % known != 0)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "cannot infer dimension %d: %lld elements do not "
                       "divide into the other dimensions' %lld",
                       inferred, (long long)src->numel,
                       empty ? 0LL : (long long)known);
    resolved[inferred] = src->numel / known;
  }
  status = cudl__shape_check(ctx, __func__, src->dtype, ndim, resolved, &numel,
                             &nbytes);
  if (status != CUDL_OK) return status;
  if (numel != src->numel)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "the new shape has %lld elements but the tensor %lld",
                     (long long)numel, (long long)src->numel);
  return make_view(src, __func__, ndim, resolved, out);
}

cudl_status cudl_tensor_flatten(const cudl_tensor *src, int start_axis,
                                int end_axis, cudl_tensor **out) {
  cudl_context *ctx;
  int64_t shape[CUDL_MAX_DIMS], merged = 1;
  int i, ndim = 0, start = start_axis, end = end_axis, rank;
  if (out != NULL) *out = NULL;
  if (src == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = src->ctx;
  if (out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  if (src->layout != CUDL_LAYOUT_NCHW)
    return refuse_channels_last(src, __func__);
  /* A scalar flattens as if it had one dimension, as in PyTorch. */
  rank = src->ndim == 0 ? 1 : src->ndim;
  if (start < 0) start += rank;
  if (end < 0) end += rank;
  if (start < 0 || start >= rank || end < 0 || end >= rank || start > end)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "axes %d..%d do not name a range of the tensor's %d "
                     "dimensions",
                     start_axis, end_axis, src->ndim);
  if (src->ndim == 0) return make_view(src, __func__, 1, &src->numel, out);
  for (i = 0; i < start; ++i) shape[ndim++] = src->shape[i];
  for (i = start; i <= end; ++i) merged *= src->shape[i];
  shape[ndim++] = merged; /* cannot overflow: bounded by numel or a 0 */
  for (i = end + 1; i < src->ndim; ++i) shape[ndim++] = src->shape[i];
  return make_view(src, __func__, ndim, shape, out);
}

cudl_context *cudl_tensor_context(const cudl_tensor *t) {
  return t == NULL ? NULL : t->ctx;
}
cudl_device_kind cudl_tensor_device(const cudl_tensor *t) {
  return t == NULL ? CUDL_DEVICE_CPU : t->ctx->device;
}
cudl_dtype cudl_tensor_dtype(const cudl_tensor *t) {
  return t == NULL ? CUDL_DTYPE_F32 : t->dtype;
}
int cudl_tensor_ndim(const cudl_tensor *t) { return t == NULL ? 0 : t->ndim; }
int64_t cudl_tensor_dim(const cudl_tensor *t, int axis) {
  if (t == NULL) return -1;
  if (axis < 0) axis += t->ndim;
  if (axis < 0 || axis >= t->ndim) return -1;
  return t->shape[axis];
}
const int64_t *cudl_tensor_shape(const cudl_tensor *t) {
  return t == NULL ? NULL : t->shape;
}
int64_t cudl_tensor_numel(const cudl_tensor *t) {
  return t == NULL ? 0 : t->numel;
}
size_t cudl_tensor_nbytes(const cudl_tensor *t) {
  return t == NULL ? 0 : t->nbytes;
}
void *cudl_tensor_data(cudl_tensor *t) { return t == NULL ? NULL : t->data; }

const char *cudl_layout_name(cudl_layout layout) {
  switch (layout) {
    case CUDL_LAYOUT_NCHW:
      return "nchw";
    case CUDL_LAYOUT_NHWC:
      return "nhwc";
  }
  return "unknown";
}

cudl_layout cudl_tensor_layout(const cudl_tensor *t) {
  return t == NULL ? CUDL_LAYOUT_NCHW : t->layout;
}

cudl_status cudl_tensor_set_layout(cudl_tensor *t, cudl_layout layout) {
  if (t == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (layout != CUDL_LAYOUT_NCHW && layout != CUDL_LAYOUT_NHWC)
    return CUDL_FAIL(t->ctx, CUDL_ERR_INVALID_ARGUMENT, "unknown layout %d",
                     (int)layout);
  if (layout == CUDL_LAYOUT_NHWC && t->ndim != 4)
    return CUDL_FAIL(t->ctx, CUDL_ERR_SHAPE,
                     "the tensor has %d dimensions; channels-last (nhwc) is "
                     "a layout of 4-D [N, C, H, W] tensors",
                     t->ndim);
  t->layout = layout;
  return CUDL_OK;
}

cudl_status cudl_tensor_copy_from_host(cudl_tensor *dst, const void *src,
                                       size_t nbytes) {
  if (dst == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (src == NULL && nbytes > 0)
    return CUDL_FAIL(dst->ctx, CUDL_ERR_INVALID_ARGUMENT, "src is NULL");
  if (nbytes != dst->nbytes)
    return CUDL_FAIL(dst->ctx, CUDL_ERR_SHAPE,
                     "nbytes is %zu but the tensor holds %zu bytes", nbytes,
                     dst->nbytes);
  if (nbytes == 0) return CUDL_OK;
  return cudl__after_op(dst->ctx, dst->ctx->backend->runtime->copy_from_host(
                                      dst->ctx, dst->data, src, nbytes));
}

cudl_status cudl_tensor_copy_to_host(const cudl_tensor *src, void *dst,
                                     size_t nbytes) {
  if (src == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (dst == NULL && nbytes > 0)
    return CUDL_FAIL(src->ctx, CUDL_ERR_INVALID_ARGUMENT, "dst is NULL");
  if (nbytes != src->nbytes)
    return CUDL_FAIL(src->ctx, CUDL_ERR_SHAPE,
                     "nbytes is %zu but the tensor holds %zu bytes", nbytes,
                     src->nbytes);
  if (nbytes == 0) return CUDL_OK;
  return src->ctx->backend->runtime->copy_to_host(src->ctx, dst, src->data,
                                                  nbytes);
}

static int same_shape(const cudl_tensor *a, const cudl_tensor *b) {
  return a->ndim == b->ndim &&
         (a->ndim == 0 || memcmp(a->shape, b->shape,
                                 (size_t)a->ndim * sizeof a->shape[0]) == 0);
}

cudl_status cudl_tensor_copy(cudl_tensor *dst, const cudl_tensor *src) {
  cudl_context *ctx;
  cudl_status status;
  if (dst == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = dst->ctx;
  if (src == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "src is NULL");
  if (src->dtype != dst->dtype)
    return CUDL_FAIL(ctx, CUDL_ERR_DTYPE, "src is %s but dst is %s",
                     cudl_dtype_name(src->dtype), cudl_dtype_name(dst->dtype));
  if (!same_shape(dst, src))
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE, "src and dst shapes differ");
  if (src->layout != dst->layout)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "src is %s but dst is %s: a copy moves bytes; "
                     "cudl_tensor_convert changes the layout",
                     cudl_layout_name(src->layout),
                     cudl_layout_name(dst->layout));
  if (dst->nbytes == 0 || dst == src) return CUDL_OK;

  if (src->ctx == ctx)
    return cudl__after_op(ctx, ctx->backend->runtime->copy_on_device(
                                   ctx, dst->data, src->data, dst->nbytes));
  /* Another context: let its queued work finish so the copy sees it. */
  status = src->ctx->backend->runtime->synchronize(src->ctx);
  if (status != CUDL_OK)
    return CUDL_FAIL(ctx, status, "synchronising the source context failed: %s",
                     src->ctx->last_error);
  if (src->ctx->device == CUDL_DEVICE_CPU)
    status = ctx->backend->runtime->copy_from_host(ctx, dst->data, src->data,
                                                   dst->nbytes);
  else if (ctx->device == CUDL_DEVICE_CPU)
    status = src->ctx->backend->runtime->copy_to_host(src->ctx, dst->data,
                                                      src->data, dst->nbytes);
  else
    status = ctx->backend->runtime->copy_from_peer(ctx, dst->data, src->ctx,
                                                   src->data, dst->nbytes);
  if (status != CUDL_OK && ctx->device == CUDL_DEVICE_CPU &&
      src->ctx->device != CUDL_DEVICE_CPU)
    return CUDL_FAIL(ctx, status, "device-to-host copy failed: %s",
                     src->ctx->last_error);
  return cudl__after_op(ctx, status);
}

static int is_float(cudl_dtype dtype) {
  return dtype == CUDL_DTYPE_F32 || dtype == CUDL_DTYPE_BF16 ||
         dtype == CUDL_DTYPE_F16;
}

cudl_status cudl_tensor_convert(cudl_tensor *dst, const cudl_tensor *src) {
  cudl_context *ctx;
  if (dst == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = dst->ctx;
  if (src == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "src is NULL");
  if (src->ctx != ctx)
    return CUDL_FAIL(ctx, CUDL_ERR_DEVICE_MISMATCH,
                     "src and dst belong to different contexts (convert "
                     "on one device, then cudl_tensor_copy)");
  if (!is_float(src->dtype) || !is_float(dst->dtype))
    return CUDL_FAIL(ctx, CUDL_ERR_DTYPE,
                     "converts between f32, bf16 and f16, got %s to %s",
                     cudl_dtype_name(src->dtype), cudl_dtype_name(dst->dtype));
  if (!same_shape(dst, src))
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE, "src and dst shapes differ");
  /* Elements are read and written in any order (in parallel on a GPU), so
   * only the same elements may be both. */
  if (cudl__tensors_overlap_unlike(dst, src))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "dst and src overlap without being the same elements%s",
                     dst->layout != src->layout
                         ? " (a change of layout needs distinct tensors)"
                         : "");
  if (dst->numel == 0) return CUDL_OK;
  return cudl__convert_scaled(ctx, __func__, dst, src, 1.0f);
}

cudl_status cudl__convert_scaled(cudl_context *ctx, const char *function,
                                 cudl_tensor *dst, const cudl_tensor *src,
                                 float scale) {
  if (dst->layout == src->layout)
    return CUDL_OP_CALL(ctx, function, dst->dtype, convert, src->data,
                        src->dtype, dst->data, dst->numel, scale);
  {
    /* [N, C, H*W] <-> [N, H*W, C]: one transpose per image. */
    const int64_t planes = src->shape[2] * src->shape[3];
    const int to_nhwc = dst->layout == CUDL_LAYOUT_NHWC;
    return CUDL_OP_CALL(ctx, function, dst->dtype, transpose, src->data,
                        src->dtype, dst->data, src->shape[0],
                        to_nhwc ? src->shape[1] : planes,
                        to_nhwc ? planes : src->shape[1], scale);
  }
}

/* Common checks for the random initialisers (f32-only): a non-NULL f32
 * tensor. */
static cudl_status check_f32(const cudl_tensor *t, const char *function) {
  static const char *const name = "t";
  if (t == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  return cudl__check_f32_op(t->ctx, function, &t, &name, 1);
}

cudl_status cudl_tensor_fill(cudl_tensor *t, float value) {
  if (t == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!is_float(t->dtype))
    return CUDL_FAIL(t->ctx, CUDL_ERR_DTYPE,
                     "fills f32, bf16 and f16 tensors, got %s",
                     cudl_dtype_name(t->dtype));
  if (t->numel == 0) return CUDL_OK;
  return CUDL_OP_CALL(t->ctx, __func__, t->dtype, fill, t->data, t->numel,
                      value);
}

cudl_status cudl_tensor_uniform(cudl_tensor *t, float low, float high) {
  cudl_context *ctx;
  cudl_status status = check_f32(t, __func__);
  if (status != CUDL_OK) return status;
  ctx = t->ctx;
  if (!isfinite(low) || !isfinite(high) || !(low <= high) ||
      !isfinite(high - low))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "need finite low <= high (and a finite high - low), got "
                     "[%g, %g)",
                     (double)low, (double)high);
  if (t->numel == 0) return CUDL_OK;
  status = CUDL_OP_CALL(ctx, __func__, t->dtype, uniform, t->data, t->numel,
                        ctx->rng_seed, ctx->rng_offset, low, high);
  if (status == CUDL_OK) ctx->rng_offset += cudl__philox_blocks(t->numel);
  return status;
}

cudl_status cudl_tensor_normal(cudl_tensor *t, float mean, float stddev) {
  cudl_context *ctx;
  cudl_status status = check_f32(t, __func__);
  if (status != CUDL_OK) return status;
  ctx = t->ctx;
  if (!isfinite(mean) || !isfinite(stddev) || stddev < 0.0f)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "need finite mean and stddev >= 0, got mean %g stddev %g",
                     (double)mean, (double)stddev);
  if (t->numel == 0) return CUDL_OK;
  status = CUDL_OP_CALL(ctx, __func__, t->dtype, normal, t->data, t->numel,
                        ctx->rng_seed, ctx->rng_offset, mean, stddev);
  if (status == CUDL_OK) ctx->rng_offset += cudl__philox_blocks(t->numel);
  return status;
}

/* How a group of tensors is judged for its dtype (internal.h). */
typedef enum dtype_rule { DATA, F32_PARAMS, F32_OP } dtype_rule;

static cudl_status check_dtype(cudl_context *ctx, const char *function,
                               dtype_rule rule, cudl_data_dtype *data,
                               const cudl_tensor *t, const char *name) {
  if (rule == F32_OP) {
    if (t->dtype == CUDL_DTYPE_F32) return CUDL_OK;
    if (is_float(t->dtype))
      return cudl__fail(ctx, CUDL_ERR_DTYPE, function,
                        "%s is %s; this operator is f32-only (mixed "
                        "precision keeps softmax, losses, sums, optimizers "
                        "and random initialisation in f32: convert with "
                        "cudl_tensor_convert)",
                        name, cudl_dtype_name(t->dtype));
    return cudl__fail(ctx, CUDL_ERR_DTYPE, function,
                      "%s is %s; this operator takes f32", name,
                      cudl_dtype_name(t->dtype));
  }
  if (rule == F32_PARAMS) {
    if (t->dtype == CUDL_DTYPE_F32) return CUDL_OK;
    return cudl__fail(ctx, CUDL_ERR_DTYPE, function,
                      "%s is %s but must be f32 whatever the data's dtype: "
                      "parameters, statistics and norms stay f32 in mixed "
                      "precision",
                      name, cudl_dtype_name(t->dtype));
  }
  if (data->name == NULL) {
    if (!is_float(t->dtype))
      return cudl__fail(ctx, CUDL_ERR_DTYPE, function,
                        "%s is %s; operators take f32, bf16 or f16 data", name,
                        cudl_dtype_name(t->dtype));
    data->dtype = t->dtype;
    data->name = name;
    return CUDL_OK;
  }
  if (t->dtype != data->dtype)
    return cudl__fail(ctx, CUDL_ERR_DTYPE, function,
                      "%s is %s but %s is %s; an operator's data tensors "
                      "share one dtype",
                      name, cudl_dtype_name(t->dtype), data->name,
                      cudl_dtype_name(data->dtype));
  return CUDL_OK;
}

static cudl_status check_group(cudl_context *ctx, const char *function,
                               dtype_rule rule, cudl_data_dtype *data,
                               const cudl_tensor *const *tensors,
                               const char *const *names, int count) {
  int i;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < count; ++i) {
    const cudl_tensor *t = tensors[i];
    if (t == NULL)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function, "%s is NULL",
                        names[i]);
    if (t->ctx != ctx)
      return cudl__fail(ctx, CUDL_ERR_DEVICE_MISMATCH, function,
                        "%s belongs to another context (%s, not %s)", names[i],
                        t->ctx->device_name, ctx->device_name);
    status = check_dtype(ctx, function, rule, data, t, names[i]);
    if (status != CUDL_OK) return status;
    if (rule == DATA && t->ndim == 4) {
      if (data->layout_name == NULL) {
        data->layout = t->layout;
        data->layout_name = names[i];
      } else if (t->layout != data->layout) {
        return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                          "%s is %s but %s is %s; an operator's 4-D data "
                          "tensors share one layout (cudl_tensor_convert "
                          "changes it)",
                          names[i], cudl_layout_name(t->layout),
                          data->layout_name, cudl_layout_name(data->layout));
      }
    }
    if (i > 0 &&
        (t->ndim != tensors[0]->ndim ||
         (t->ndim > 0 && memcmp(t->shape, tensors[0]->shape,
                                (size_t)t->ndim * sizeof t->shape[0]) != 0)))
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s and %s have different shapes", names[i], names[0]);
  }
  return CUDL_OK;
}

cudl_status cudl__check_data(cudl_context *ctx, const char *function,
                             cudl_data_dtype *data,
                             const cudl_tensor *const *tensors,
                             const char *const *names, int count) {
  return check_group(ctx, function, DATA, data, tensors, names, count);
}

cudl_status cudl__check_f32_params(cudl_context *ctx, const char *function,
                                   const cudl_tensor *const *tensors,
                                   const char *const *names, int count) {
  return check_group(ctx, function, F32_PARAMS, NULL, tensors, names, count);
}

cudl_status cudl__check_f32_op(cudl_context *ctx, const char *function,
                               const cudl_tensor *const *tensors,
                               const char *const *names, int count) {
  return check_group(ctx, function, F32_OP, NULL, tensors, names, count);
}

void cudl__channel_view(const cudl_tensor *x, int64_t *outer,
                        int64_t *channels, int64_t *inner) {
  *channels = x->shape[1];
  if (x->layout == CUDL_LAYOUT_NHWC) {
    *outer = x->shape[0] * x->shape[2] * x->shape[3];
    *inner = 1;
    return;
  }
  *outer = x->shape[0];
  *inner = *outer * *channels == 0 ? 0 : x->numel / (*outer * *channels);
}

cudl_status cudl__require_nchw(cudl_context *ctx, const char *function,
                               const cudl_tensor *t, const char *name) {
  if (t == NULL || t->layout == CUDL_LAYOUT_NCHW) return CUDL_OK;
  return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                    "%s is channels-last (nhwc); this operator reads the last "
                    "dimension of its shape as a row: convert it to nchw "
                    "(cudl_tensor_convert), or flatten a [N, C, 1, 1] one",
                    name);
}

cudl_status cudl__check_f32_scalar(cudl_context *ctx, const char *function,
                                   const cudl_tensor *t, const char *name) {
  cudl_status status = cudl__check_f32_op(ctx, function, &t, &name, 1);
  if (status != CUDL_OK) return status;
  if (t->numel != 1)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s has %lld elements; it must hold one", name,
                      (long long)t->numel);
  return CUDL_OK;
}

cudl_status cudl__check_vector(cudl_context *ctx, const char *function,
                               cudl_data_dtype *data, const cudl_tensor *t,
                               const char *name, int64_t n) {
  cudl_status status = cudl__check_data(ctx, function, data, &t, &name, 1);
  if (status != CUDL_OK) return status;
  if (t->ndim != 1 || t->shape[0] != n)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s must have shape [%lld]", name, (long long)n);
  return CUDL_OK;
}
