/*
 * cifar.c - CIFAR-10 binary batches: records of one label byte (0-9) and
 * 3072 pixel bytes (32x32 red, then green, then blue), no header.
 *
 * First every file's size is checked (not empty, whole records, not gzip)
 * and the records are counted; then the dataset is allocated and each file
 * is read again, record by record, and must end exactly after the records
 * counted (a file that changed in between gives TRUNCATED or
 * TRAILING_DATA). Labels are checked as they are read.
 */
#include <stdio.h>
#include <string.h>

#include "data/data_internal.h"
#include "data/stream.h"

#define CIFAR_CLASSES 10

typedef struct cifar_source {
  const char *path; /* NULL for memory */
  const void *data;
  size_t size;
  char name[48]; /* for memory images */
} cifar_source;

static cudl_status open_source(cudl_context *ctx, const char *fn,
                               const cifar_source *src, cudl_data_stream *s) {
  cudl_status status = src->path != NULL
                           ? cudl__stream_open_file(ctx, fn, src->path, s)
                           : cudl__stream_open_memory(ctx, fn, src->name,
                                                      src->data, src->size, s);
  if (status != CUDL_OK) return status;
  if (s->gzip) {
    status = cudl__fail(ctx, CUDL_ERR_FILE_FORMAT, fn,
                        "'%s' is gzip-compressed; CIFAR-10 batches are read "
                        "uncompressed (extract cifar-10-binary.tar.gz)",
                        s->name);
    cudl__stream_close(s);
  }
  return status;
}

static cudl_status count_records(cudl_context *ctx, const char *fn,
                                 const cifar_source *src, uint64_t *records) {
  cudl_data_stream s;
  cudl_status status = open_source(ctx, fn, src, &s);
  if (status != CUDL_OK) return status;
  if (s.size == 0)
    status = cudl__fail(ctx, CUDL_ERR_FILE_TRUNCATED, fn,
                        "'%s' is empty; a CIFAR-10 file holds records of %d "
                        "bytes",
                        s.name, CUDL_CIFAR10_RECORD_BYTES);
  else if (s.size % CUDL_CIFAR10_RECORD_BYTES != 0)
    status = cudl__fail(
        ctx, CUDL_ERR_FILE_TRUNCATED, fn,
        "'%s' is %llu bytes, not a whole number of %d-byte "
        "CIFAR-10 records (the last one has %llu bytes)",
        s.name, (unsigned long long)s.size, CUDL_CIFAR10_RECORD_BYTES,
        (unsigned long long)(s.size % CUDL_CIFAR10_RECORD_BYTES));
  *records = s.size / CUDL_CIFAR10_RECORD_BYTES;
  cudl__stream_close(&s);
  return status;
}

static cudl_status read_records(cudl_context *ctx, const char *fn,
                                const cifar_source *src, uint64_t records,
                                cudl_dataset *ds, int64_t first) {
  cudl_data_stream s;
  uint64_t r;
  cudl_status status = open_source(ctx, fn, src, &s);
  if (status != CUDL_OK) return status;
  for (r = 0; r < records && status == CUDL_OK; ++r) {
    int64_t i = first + (int64_t)r;
    status = cudl__stream_read(&s, &ds->labels[i], 1, "a record's label");
    if (status == CUDL_OK && ds->labels[i] >= CIFAR_CLASSES)
      status = cudl__fail(ctx, CUDL_ERR_FILE_VALUE, fn,
                          "'%s': record %llu has label %d; CIFAR-10 labels "
                          "are 0 to 9",
                          s.name, (unsigned long long)r, ds->labels[i]);
    if (status == CUDL_OK)
      status = cudl__stream_read(&s, ds->pixels + (size_t)i * ds->image_bytes,
                                 ds->image_bytes, "a record's pixels");
  }
  if (status == CUDL_OK) status = cudl__stream_expect_end(&s, "the records");
  cudl__stream_close(&s);
  return status;
}

static cudl_status load_cifar(cudl_context *ctx, const char *fn,
                              const cifar_source *sources, int count,
                              uint64_t *records, cudl_dataset **out) {
  uint64_t total = 0;
  int64_t first = 0;
  cudl_dataset *ds;
  cudl_status status;
  int f;
  for (f = 0; f < count; ++f) {
    status = count_records(ctx, fn, &sources[f], &records[f]);
    if (status != CUDL_OK) return status;
    /* Stop adding before anything can overflow. */
    total += records[f] > CUDL_DATASET_MAX_IMAGES
                 ? CUDL_DATASET_MAX_IMAGES + 1ull
                 : records[f];
    if (total > CUDL_DATASET_MAX_IMAGES) break;
  }
  status = cudl__dataset_check(
      ctx, fn, CUDL_ERR_FILE_SHAPE,
      count == 1 ? (sources[0].path != NULL ? sources[0].path : sources[0].name)
                 : "the CIFAR-10 files",
      total, 3, CUDL_CIFAR10_SIDE, CUDL_CIFAR10_SIDE);
  if (status != CUDL_OK) return status;
  status = cudl__dataset_alloc(ctx, fn, (int64_t)total, 3, CUDL_CIFAR10_SIDE,
                               CUDL_CIFAR10_SIDE, CIFAR_CLASSES, &ds);
  if (status != CUDL_OK) return status;
  for (f = 0; f < count && status == CUDL_OK; ++f) {
    status = read_records(ctx, fn, &sources[f], records[f], ds, first);
    first += (int64_t)records[f];
  }
  if (status != CUDL_OK) {
    cudl_dataset_destroy(ds);
    return status;
  }
  *out = ds;
  return CUDL_OK;
}

/* The sources and their record counts, on the stack for a few files and
 * from the allocator for more. */
typedef struct cifar_job {
  cifar_source *sources;
  uint64_t *records;
  size_t bytes;
  cifar_source small_sources[8];
  uint64_t small_records[8];
} cifar_job;

static cudl_status job_start(cudl_context *ctx, const char *fn, int count,
                             cifar_job *job) {
  job->bytes = 0;
  if (count <= 8) {
    job->sources = job->small_sources;
    job->records = job->small_records;
  } else {
    job->bytes = (size_t)count * (sizeof(cifar_source) + sizeof(uint64_t));
    job->sources =
        (cifar_source *)cudl__host_alloc(&ctx->allocator, job->bytes, 16);
    if (job->sources == NULL)
      return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                        "cannot allocate the list of %d files", count);
    job->records = (uint64_t *)(void *)(job->sources + count);
  }
  memset(job->sources, 0, (size_t)count * sizeof(cifar_source));
  return CUDL_OK;
}

static void job_end(cudl_context *ctx, cifar_job *job) {
  if (job->bytes > 0)
    cudl__host_free(&ctx->allocator, job->sources, job->bytes);
}

static cudl_status check_args(cudl_context *ctx, const char *fn,
                              const void *list, int count, cudl_dataset **out) {
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || list == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      out == NULL ? "out" : "paths");
  if (count < 1 || count > CUDL_CIFAR10_MAX_FILES)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "count is %d; it must be 1 to %d", count,
                      CUDL_CIFAR10_MAX_FILES);
  return CUDL_OK;
}

cudl_status cudl_dataset_load_cifar10(cudl_context *ctx,
                                      const char *const *paths, int count,
                                      cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_load_cifar10";
  cifar_job job;
  cudl_status status = check_args(ctx, fn, paths, count, out);
  int f;
  if (status != CUDL_OK) return status;
  for (f = 0; f < count; ++f)
    if (paths[f] == NULL)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "paths[%d] is NULL",
                        f);
  status = job_start(ctx, fn, count, &job);
  if (status != CUDL_OK) return status;
  for (f = 0; f < count; ++f) job.sources[f].path = paths[f];
  status = load_cifar(ctx, fn, job.sources, count, job.records, out);
  job_end(ctx, &job);
  if (status == CUDL_OK) {
    status = cudl__dataset_set_sources(ctx, fn, *out, paths, count);
    if (status != CUDL_OK) *out = NULL;
  }
  return status;
}

cudl_status cudl__dataset_load_cifar10_memory(cudl_context *ctx,
                                              const void *const *data,
                                              const size_t *sizes, int count,
                                              cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_load_cifar10";
  cifar_job job;
  cudl_status status = check_args(ctx, fn, data, count, out);
  int f;
  if (status != CUDL_OK) return status;
  if (sizes == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "sizes is NULL");
  for (f = 0; f < count; ++f)
    if (data[f] == NULL && sizes[f] > 0)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "data[%d] is NULL",
                        f);
  status = job_start(ctx, fn, count, &job);
  if (status != CUDL_OK) return status;
  for (f = 0; f < count; ++f) {
    job.sources[f].data = data[f];
    job.sources[f].size = sizes[f];
    snprintf(job.sources[f].name, sizeof job.sources[f].name,
             "<CIFAR-10 file %d in memory>", f);
  }
  status = load_cifar(ctx, fn, job.sources, count, job.records, out);
  job_end(ctx, &job);
  return status;
}
