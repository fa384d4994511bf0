/*
 * dataset.c - the dataset object: limits, allocation, creation from memory,
 * queries and per-channel statistics. What the readers (idx.c, cifar.c)
 * build on; loading a dataset by name is catalog.c's.
 */
#include <math.h>
#include <string.h>

#include "data/data_internal.h"

cudl_status cudl__dataset_check_shape(cudl_context *ctx, const char *function,
                                      cudl_status status_if_bad,
                                      const char *what, uint64_t count,
                                      uint64_t channels, uint64_t height,
                                      uint64_t width) {
  uint64_t image_bytes;
  if (count == 0 || count > CUDL_DATASET_MAX_IMAGES)
    return cudl__fail(ctx, status_if_bad, function,
                      "%s: %llu images; a dataset holds 1 to %d", what,
                      (unsigned long long)count, CUDL_DATASET_MAX_IMAGES);
  if (channels == 0 || channels > CUDL_DATASET_MAX_CHANNELS)
    return cudl__fail(ctx, status_if_bad, function,
                      "%s: %llu channels; a dataset has 1 to %d", what,
                      (unsigned long long)channels, CUDL_DATASET_MAX_CHANNELS);
  if (height == 0 || height > CUDL_DATASET_MAX_SIDE || width == 0 ||
      width > CUDL_DATASET_MAX_SIDE)
    return cudl__fail(ctx, status_if_bad, function,
                      "%s: images of %llu x %llu pixels; each side must be 1 "
                      "to %d",
                      what, (unsigned long long)height,
                      (unsigned long long)width, CUDL_DATASET_MAX_SIDE);
  /* Each factor is below 2^16 here, so nothing overflows. */
  image_bytes = channels * height * width;
  if (image_bytes > CUDL_DATASET_MAX_IMAGE_BYTES)
    return cudl__fail(ctx, status_if_bad, function,
                      "%s: %llu bytes per image, above the limit of %llu", what,
                      (unsigned long long)image_bytes,
                      (unsigned long long)CUDL_DATASET_MAX_IMAGE_BYTES);
  return CUDL_OK;
}

cudl_status cudl__dataset_check(cudl_context *ctx, const char *function,
                                cudl_status status_if_bad, const char *what,
                                uint64_t count, uint64_t channels,
                                uint64_t height, uint64_t width) {
  uint64_t image_bytes;
  cudl_status status = cudl__dataset_check_shape(
      ctx, function, status_if_bad, what, count, channels, height, width);
  if (status != CUDL_OK) return status;
  image_bytes = channels * height * width;
  /* count < 2^31 and image_bytes <= 2^26: the product fits in 64 bits. */
  if (count * image_bytes > CUDL_DATASET_MAX_BYTES ||
      count * image_bytes > (uint64_t)SIZE_MAX)
    return cudl__fail(ctx, status_if_bad, function,
                      "%s: %llu images of %llu bytes, above the limit of %llu "
                      "bytes of pixels",
                      what, (unsigned long long)count,
                      (unsigned long long)image_bytes,
                      (unsigned long long)CUDL_DATASET_MAX_BYTES);
  return CUDL_OK;
}

/* A dataset with its labels, and its pixels unless streamed. */
static cudl_status dataset_new(cudl_context *ctx, const char *function,
                               int64_t count, int channels, int height,
                               int width, int classes, int streamed,
                               cudl_dataset **out) {
  cudl_dataset *ds =
      (cudl_dataset *)cudl__host_alloc(&ctx->allocator, sizeof *ds, 16);
  *out = NULL;
  if (ds == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the dataset");
  memset(ds, 0, sizeof *ds);
  ds->allocator = ctx->allocator;
  ds->ctx = ctx;
  ds->count = count;
  ds->channels = channels;
  ds->height = height;
  ds->width = width;
  ds->classes = classes;
  ds->streamed = streamed;
  /* Checked by cudl__dataset_check(_shape): no overflow. */
  ds->image_bytes = (size_t)channels * (size_t)height * (size_t)width;
  if (!streamed) {
    ds->pixels_size = (size_t)count * ds->image_bytes;
    ds->pixels = (uint8_t *)cudl__host_alloc(&ctx->allocator, ds->pixels_size,
                                             CUDL_HOST_ALIGNMENT);
    if (ds->pixels == NULL) {
      size_t size = ds->pixels_size;
      cudl_dataset_destroy(ds);
      return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                        "cannot allocate %zu bytes of pixels", size);
    }
  }
  ds->labels_size = (size_t)count;
  ds->labels = (uint8_t *)cudl__host_alloc(&ctx->allocator, ds->labels_size, 16);
  if (ds->labels == NULL) {
    cudl_dataset_destroy(ds);
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate %lld labels", (long long)count);
  }
  *out = ds;
  return CUDL_OK;
}

cudl_status cudl__dataset_alloc(cudl_context *ctx, const char *function,
                                int64_t count, int channels, int height,
                                int width, int classes, cudl_dataset **out) {
  return dataset_new(ctx, function, count, channels, height, width, classes,
                     0, out);
}

cudl_status cudl__dataset_alloc_streamed(cudl_context *ctx,
                                         const char *function, int64_t count,
                                         int channels, int height, int width,
                                         int classes, cudl_dataset **out) {
  cudl_dataset *ds;
  size_t moments;
  cudl_status status = dataset_new(ctx, function, count, channels, height,
                                   width, classes, 1, &ds);
  if (status != CUDL_OK) return status;
  /* count < 2^31, channels <= 4: no overflow on 64-bit sizes. */
  ds->image_source_size = (size_t)count * sizeof *ds->image_source;
  moments = (size_t)count * (size_t)channels * CUDL_MOMENTS;
  if (!cudl__mul_size(moments, sizeof *ds->moments, &ds->moments_size)) {
    cudl_dataset_destroy(ds);
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "the per-image statistics of %lld images overflow",
                      (long long)count);
  }
  ds->image_source = (uint32_t *)cudl__host_alloc(&ctx->allocator,
                                                  ds->image_source_size, 16);
  ds->moments =
      (uint64_t *)cudl__host_alloc(&ctx->allocator, ds->moments_size, 16);
  if (ds->image_source == NULL || ds->moments == NULL) {
    cudl_dataset_destroy(ds);
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the file list of %lld images",
                      (long long)count);
  }
  *out = ds;
  return CUDL_OK;
}

void cudl_dataset_destroy(cudl_dataset *ds) {
  cudl_allocator allocator;
  if (ds == NULL) return;
  allocator = ds->allocator;
  cudl__host_free(&allocator, ds->pixels, ds->pixels_size);
  cudl__host_free(&allocator, ds->labels, ds->labels_size);
  cudl__host_free(&allocator, ds->sources, ds->sources_size);
  cudl__host_free(&allocator, ds->source_offsets,
                  (size_t)ds->source_count * sizeof(size_t));
  cudl__host_free(&allocator, ds->class_names, ds->class_names_size);
  cudl__host_free(&allocator, ds->skipped, ds->skipped_size);
  cudl__host_free(&allocator, ds->skipped_offsets,
                  (size_t)ds->skipped_count * sizeof(size_t));
  cudl__host_free(&allocator, ds->image_source, ds->image_source_size);
  cudl__host_free(&allocator, ds->moments, ds->moments_size);
  cudl__host_free(&allocator, ds, sizeof *ds);
}

cudl_status cudl__dataset_set_sources(cudl_context *ctx, const char *function,
                                      cudl_dataset *ds,
                                      const char *const *paths, int count) {
  size_t size = 0, at = 0;
  int i;
  for (i = 0; i < count; ++i) size += strlen(paths[i]) + 1;
  ds->sources = (char *)cudl__host_alloc(&ds->allocator, size, 1);
  ds->source_offsets = (size_t *)cudl__host_alloc(
      &ds->allocator, (size_t)count * sizeof(size_t), 16);
  ds->sources_size = size;
  ds->source_count = count;
  if (ds->sources == NULL || ds->source_offsets == NULL) {
    cudl_dataset_destroy(ds);
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the dataset's file names");
  }
  for (i = 0; i < count; ++i) {
    const size_t n = strlen(paths[i]) + 1;
    ds->source_offsets[i] = at;
    memcpy(ds->sources + at, paths[i], n);
    at += n;
  }
  return CUDL_OK;
}

const char *cudl_dataset_source(const cudl_dataset *ds, int i) {
  if (ds == NULL || i < 0 || i >= ds->source_count) return NULL;
  return ds->sources + ds->source_offsets[i];
}

cudl_status cudl__dataset_set_class_names(cudl_context *ctx,
                                          const char *function,
                                          cudl_dataset *ds,
                                          const char *const *names) {
  size_t size = 0, at = 0, n;
  char *buffer;
  int i, j;
  for (i = 0; i < ds->classes; ++i) {
    if (names[i] == NULL || names[i][0] == '\0' || strlen(names[i]) > 255)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "class name %d is %s; names are 1 to 255 bytes", i,
                        names[i] == NULL ? "NULL"
                        : names[i][0] == '\0' ? "empty"
                                              : "too long");
    for (j = 0; j < i; ++j)
      if (strcmp(names[i], names[j]) == 0)
        return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                          "classes %d and %d are both named '%s'", j, i,
                          names[i]);
    size += strlen(names[i]) + 1;
  }
  buffer = (char *)cudl__host_alloc(&ds->allocator, size, 1);
  if (buffer == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "cannot allocate the class names");
  for (i = 0; i < ds->classes; ++i) {
    n = strlen(names[i]) + 1;
    memcpy(buffer + at, names[i], n);
    at += n;
  }
  cudl__host_free(&ds->allocator, ds->class_names, ds->class_names_size);
  ds->class_names = buffer;
  ds->class_names_size = size;
  return CUDL_OK;
}

cudl_status cudl_dataset_set_class_names(cudl_context *ctx, cudl_dataset *ds,
                                         const char *const *names, int count) {
  static const char fn[] = "cudl_dataset_set_class_names";
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (ds == NULL || names == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      ds == NULL ? "ds" : "names");
  if (count != ds->classes)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "%d names for a dataset of %d classes", count,
                      ds->classes);
  return cudl__dataset_set_class_names(ctx, fn, ds, names);
}

const char *cudl_dataset_class_name(const cudl_dataset *ds, int class_index) {
  const char *p;
  if (ds == NULL || ds->class_names == NULL || class_index < 0 ||
      class_index >= ds->classes)
    return NULL;
  for (p = ds->class_names; class_index > 0; --class_index) p += strlen(p) + 1;
  return p;
}

cudl_status cudl_dataset_create(cudl_context *ctx, int64_t count, int channels,
                                int height, int width, int classes,
                                const uint8_t *pixels, const uint8_t *labels,
                                cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_create";
  cudl_dataset *ds;
  cudl_status status;
  int64_t i;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || pixels == NULL || labels == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      out == NULL      ? "out"
                      : pixels == NULL ? "pixels"
                                       : "labels");
  if (classes < 1 || classes > 256)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "classes is %d; it must be 1 to 256", classes);
  if (count < 0 || channels < 0 || height < 0 || width < 0)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "a negative count or size");
  status = cudl__dataset_check(ctx, fn, CUDL_ERR_INVALID_ARGUMENT, "the data",
                               (uint64_t)count, (uint64_t)channels,
                               (uint64_t)height, (uint64_t)width);
  if (status != CUDL_OK) return status;
  for (i = 0; i < count; ++i)
    if (labels[i] >= classes)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                        "labels[%lld] is %d; there are %d classes",
                        (long long)i, labels[i], classes);
  status = cudl__dataset_alloc(ctx, fn, count, channels, height, width, classes,
                               &ds);
  if (status != CUDL_OK) return status;
  memcpy(ds->pixels, pixels, ds->pixels_size);
  memcpy(ds->labels, labels, (size_t)count);
  *out = ds;
  return CUDL_OK;
}

/* ---- queries ---- */

int64_t cudl_dataset_count(const cudl_dataset *ds) {
  return ds == NULL ? 0 : ds->count;
}
int cudl_dataset_channels(const cudl_dataset *ds) {
  return ds == NULL ? 0 : ds->channels;
}
int cudl_dataset_height(const cudl_dataset *ds) {
  return ds == NULL ? 0 : ds->height;
}
int cudl_dataset_width(const cudl_dataset *ds) {
  return ds == NULL ? 0 : ds->width;
}
int cudl_dataset_classes(const cudl_dataset *ds) {
  return ds == NULL ? 0 : ds->classes;
}

const uint8_t *cudl_dataset_image(const cudl_dataset *ds, int64_t i) {
  if (ds == NULL || ds->streamed || i < 0 || i >= ds->count) return NULL;
  return ds->pixels + (size_t)i * ds->image_bytes;
}

int cudl_dataset_streamed(const cudl_dataset *ds) {
  return ds != NULL && ds->streamed;
}

int cudl_dataset_label(const cudl_dataset *ds, int64_t i) {
  if (ds == NULL || i < 0 || i >= ds->count) return -1;
  return ds->labels[i];
}

void cudl__image_moments(const uint8_t *pixels, int channels, size_t plane,
                         uint64_t *out) {
  int c;
  for (c = 0; c < channels; ++c) {
    const uint8_t *p = pixels + (size_t)c * plane;
    uint64_t sum = 0, squares = 0;
    size_t i;
    for (i = 0; i < plane; ++i) {
      const uint32_t v = p[i];
      sum += v;
      squares += v * v;
    }
    out[c * CUDL_MOMENTS] = sum;
    out[c * CUDL_MOMENTS + 1] = squares;
  }
}

/* A 128-bit sum: a set of 2^31 images of 2^26 pixels overflows 64 bits. */
typedef struct wide_sum {
  uint64_t hi, lo;
} wide_sum;

static void wide_add(wide_sum *s, uint64_t v) {
  s->lo += v;
  if (s->lo < v) ++s->hi;
}

static double wide_value(const wide_sum *s) {
  return (double)s->hi * 18446744073709551616.0 + (double)s->lo;
}

cudl_status cudl_dataset_channel_stats(const cudl_dataset *ds, float *mean,
                                       float *std) {
  wide_sum totals[CUDL_DATASET_MAX_CHANNELS * CUDL_MOMENTS];
  uint64_t image[CUDL_DATASET_MAX_CHANNELS * CUDL_MOMENTS];
  const size_t plane = ds != NULL ? (size_t)ds->height * (size_t)ds->width : 0;
  int64_t n;
  int c, k;
  if (ds == NULL || mean == NULL || std == NULL)
    return CUDL_ERR_INVALID_ARGUMENT;
  memset(totals, 0, sizeof totals);
  /* Exact integer sums, image by image: a streamed set kept its images'
   * sums from the load, a cached one sums its pixels now; both give the
   * same totals, hence the same statistics. */
  for (n = 0; n < ds->count; ++n) {
    const uint64_t *m = image;
    if (ds->streamed)
      m = ds->moments + (size_t)n * (size_t)ds->channels * CUDL_MOMENTS;
    else
      cudl__image_moments(ds->pixels + (size_t)n * ds->image_bytes,
                          ds->channels, plane, image);
    for (k = 0; k < ds->channels * CUDL_MOMENTS; ++k) wide_add(&totals[k], m[k]);
  }
  for (c = 0; c < ds->channels; ++c) {
    const double total = (double)ds->count * (double)plane;
    const double m1 = wide_value(&totals[c * CUDL_MOMENTS]) / total;
    const double m2 = wide_value(&totals[c * CUDL_MOMENTS + 1]) / total;
    /* In pixel units; exact for a constant channel (m2 = m1^2). */
    double var = m2 - m1 * m1;
    if (var < 0.0) var = 0.0;
    mean[c] = (float)(m1 / 255.0);
    std[c] = (float)(sqrt(var) / 255.0);
  }
  return CUDL_OK;
}
