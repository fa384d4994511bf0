/*
 * idx.c - IDX files (MNIST, Fashion-MNIST): an image file and a label file,
 * each raw or gzip.
 *
 * Layout: magic 0x00 0x00 <type> <ndim>, then ndim big-endian u32
 * dimensions, then the elements. cudl reads type 0x08 (unsigned byte):
 * images with ndim 3 ([count, rows, columns]) and labels with ndim 1.
 *
 * Order: both headers are read and checked (magic, type, ndim, limits,
 * sizes against what each file can hold, equal counts) before the dataset
 * is allocated; then the pixels and labels are read and each stream must
 * end exactly there; then every label is checked against `classes`.
 */
#include <string.h>

#include "data/data_internal.h"
#include "data/stream.h"

#define IDX_TYPE_U8 0x08

typedef struct idx_header {
  int ndim;
  uint64_t dims[3];
  uint64_t header_bytes; /* 4 + 4 * ndim */
} idx_header;

static cudl_status read_header(cudl_data_stream *s, int want_ndim,
                               const char *kind, idx_header *h) {
  unsigned char magic[4], dims[12];
  cudl_status status;
  int d;
  status = cudl__stream_read(s, magic, 4, "the IDX magic number");
  if (status != CUDL_OK) return status;
  if (magic[0] != 0 || magic[1] != 0)
    return cudl__fail(s->ctx, CUDL_ERR_FILE_FORMAT, s->function,
                      "'%s' is not an IDX file: magic number 0x%02x%02x%02x%02x"
                      " (an IDX %s file starts 0x000008%02x)",
                      s->name, magic[0], magic[1], magic[2], magic[3], kind,
                      want_ndim);
  if (magic[2] != IDX_TYPE_U8)
    return cudl__fail(s->ctx, CUDL_ERR_FILE_FORMAT, s->function,
                      "'%s' holds IDX elements of type 0x%02x; cudl reads "
                      "unsigned bytes (0x08)",
                      s->name, magic[2]);
  if (magic[3] != want_ndim)
    return cudl__fail(s->ctx, CUDL_ERR_FILE_FORMAT, s->function,
                      "'%s' has %d dimensions; an IDX %s file has %d", s->name,
                      magic[3], kind, want_ndim);
  status =
      cudl__stream_read(s, dims, (size_t)(4 * want_ndim), "the IDX dimensions");
  if (status != CUDL_OK) return status;
  h->ndim = want_ndim;
  for (d = 0; d < want_ndim; ++d)
    h->dims[d] = (uint64_t)dims[4 * d] << 24 | (uint64_t)dims[4 * d + 1] << 16 |
                 (uint64_t)dims[4 * d + 2] << 8 | (uint64_t)dims[4 * d + 3];
  h->header_bytes = 4 + 4 * (uint64_t)want_ndim;
  return CUDL_OK;
}

/* `bytes` of elements after the header: can the stream hold them? Raw
 * files must hold exactly that; gzip at most its expansion limit. */
static cudl_status check_size(cudl_data_stream *s, uint64_t bytes,
                              const char *what) {
  uint64_t capacity = cudl__stream_capacity(s), total = s->produced + bytes;
  if (!s->gzip) {
    if (total > capacity)
      return cudl__fail(s->ctx, CUDL_ERR_FILE_TRUNCATED, s->function,
                        "'%s' is %llu bytes but its header describes %llu "
                        "(%llu bytes of %s)",
                        s->name, (unsigned long long)capacity,
                        (unsigned long long)total, (unsigned long long)bytes,
                        what);
    if (total < capacity)
      return cudl__fail(s->ctx, CUDL_ERR_FILE_TRAILING_DATA, s->function,
                        "%llu bytes follow the %llu bytes of %s that the "
                        "header of '%s' describes",
                        (unsigned long long)(capacity - total),
                        (unsigned long long)bytes, what, s->name);
  } else if (total > capacity) {
    return cudl__fail(s->ctx, CUDL_ERR_FILE_TRUNCATED, s->function,
                      "the header of '%s' describes %llu bytes, more than "
                      "its %llu bytes of gzip data can hold (deflate expands "
                      "at most %u:1)",
                      s->name, (unsigned long long)total,
                      (unsigned long long)s->size, CUDL_GZIP_MAX_RATIO);
  }
  return CUDL_OK;
}

static cudl_status load_idx(cudl_data_stream *is, cudl_data_stream *ls,
                            int classes, cudl_dataset **out) {
  /* Initialised for gcc -O3, which cannot see read_header set them. */
  idx_header ih = {0, {0, 0, 0}, 0}, lh = {0, {0, 0, 0}, 0};
  cudl_dataset *ds = NULL;
  cudl_status status;
  int64_t i;

  status = read_header(is, 3, "image", &ih);
  if (status != CUDL_OK) return status;
  status = cudl__dataset_check(is->ctx, is->function, CUDL_ERR_FILE_SHAPE,
                               is->name, ih.dims[0], 1, ih.dims[1], ih.dims[2]);
  if (status != CUDL_OK) return status;
  /* Within the limits: the product fits. */
  status = check_size(is, ih.dims[0] * ih.dims[1] * ih.dims[2], "pixels");
  if (status != CUDL_OK) return status;

  status = read_header(ls, 1, "label", &lh);
  if (status != CUDL_OK) return status;
  if (lh.dims[0] != ih.dims[0])
    return cudl__fail(ls->ctx, CUDL_ERR_FILE_SHAPE, ls->function,
                      "'%s' holds %llu labels but '%s' holds %llu images",
                      ls->name, (unsigned long long)lh.dims[0], is->name,
                      (unsigned long long)ih.dims[0]);
  status = check_size(ls, lh.dims[0], "labels");
  if (status != CUDL_OK) return status;

  status = cudl__dataset_alloc(is->ctx, is->function, (int64_t)ih.dims[0], 1,
                               (int)ih.dims[1], (int)ih.dims[2], classes, &ds);
  if (status != CUDL_OK) return status;
  status = cudl__stream_read(is, ds->pixels, ds->pixels_size, "the pixels");
  if (status == CUDL_OK)
    status = cudl__stream_expect_end(is, "the header and pixels");
  if (status == CUDL_OK)
    status = cudl__stream_read(ls, ds->labels, (size_t)ds->count, "the labels");
  if (status == CUDL_OK)
    status = cudl__stream_expect_end(ls, "the header and labels");
  for (i = 0; status == CUDL_OK && i < ds->count; ++i)
    if (ds->labels[i] >= classes)
      status = cudl__fail(ls->ctx, CUDL_ERR_FILE_VALUE, ls->function,
                          "'%s': label %lld is %d; there are %d classes",
                          ls->name, (long long)i, ds->labels[i], classes);
  if (status != CUDL_OK) {
    cudl_dataset_destroy(ds);
    return status;
  }
  *out = ds;
  return CUDL_OK;
}

static cudl_status check_args(cudl_context *ctx, const char *fn, int *classes,
                              cudl_dataset **out) {
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  if (*classes == 0) *classes = 10;
  if (*classes < 1 || *classes > 256)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "classes is %d; it must be 1 to 256 (or 0 for 10)",
                      *classes);
  return CUDL_OK;
}

cudl_status cudl_dataset_load_idx(cudl_context *ctx, const char *images_path,
                                  const char *labels_path, int classes,
                                  cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_load_idx";
  cudl_data_stream is, ls;
  cudl_status status = check_args(ctx, fn, &classes, out);
  if (status != CUDL_OK) return status;
  if (images_path == NULL || labels_path == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      images_path == NULL ? "images_path" : "labels_path");
  status = cudl__stream_open_file(ctx, fn, images_path, &is);
  if (status != CUDL_OK) return status;
  status = cudl__stream_open_file(ctx, fn, labels_path, &ls);
  if (status == CUDL_OK) {
    status = load_idx(&is, &ls, classes, out);
    cudl__stream_close(&ls);
  }
  cudl__stream_close(&is);
  if (status == CUDL_OK) {
    const char *paths[2];
    paths[0] = images_path;
    paths[1] = labels_path;
    status = cudl__dataset_set_sources(ctx, fn, *out, paths, 2);
    if (status != CUDL_OK) *out = NULL;
  }
  return status;
}

cudl_status cudl__dataset_load_idx_memory(cudl_context *ctx, const void *images,
                                          size_t images_size,
                                          const void *labels,
                                          size_t labels_size, int classes,
                                          cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_load_idx";
  cudl_data_stream is, ls;
  cudl_status status = check_args(ctx, fn, &classes, out);
  if (status != CUDL_OK) return status;
  if ((images == NULL && images_size > 0) ||
      (labels == NULL && labels_size > 0))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "data is NULL");
  status = cudl__stream_open_memory(ctx, fn, "<images in memory>", images,
                                    images_size, &is);
  if (status != CUDL_OK) return status;
  status = cudl__stream_open_memory(ctx, fn, "<labels in memory>", labels,
                                    labels_size, &ls);
  if (status == CUDL_OK) {
    status = load_idx(&is, &ls, classes, out);
    cudl__stream_close(&ls);
  }
  cudl__stream_close(&is);
  return status;
}
