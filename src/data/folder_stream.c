/*
 * folder_stream.c - folder datasets streamed from disk (cudl/image.h): how
 * many bytes of decoded pixels a folder may keep in memory by default,
 * decoding one image of a streamed set when it is read, checked against
 * what the load saw, and cudl_dataset_image_read, which reads an image of
 * any dataset, from memory or from its file.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data/data_internal.h"
#include "data/image_internal.h"

/* When the system says nothing about its memory. */
#define FOLDER_FALLBACK_CACHE_BYTES (1ull << 30)

/* MemAvailable of /proc/meminfo in bytes (the kernel's estimate of what
 * can be allocated without swapping, page cache included); 0 when it
 * cannot be read (not Linux, /proc not mounted). */
static uint64_t meminfo_available(void) {
  char line[256];
  unsigned long long kib = 0;
  int found = 0;
  FILE *f = fopen("/proc/meminfo", "r");
  if (f == NULL) return 0;
  while (!found && fgets(line, sizeof line, f) != NULL)
    found = sscanf(line, "MemAvailable: %llu kB", &kib) == 1;
  fclose(f);
  return found && kib <= UINT64_MAX / 1024 ? (uint64_t)kib * 1024 : 0;
}

uint64_t cudl_folder_default_cache_bytes(void) {
  uint64_t available = meminfo_available();
  if (available == 0) {
    /* Free pages only (no page cache): an underestimate, which errs
     * towards streaming. */
    const long pages = sysconf(_SC_AVPHYS_PAGES);
    const long page = sysconf(_SC_PAGESIZE);
    if (pages > 0 && page > 0 &&
        (uint64_t)pages <= UINT64_MAX / (uint64_t)page)
      available = (uint64_t)pages * (uint64_t)page;
  }
  if (available == 0) return FOLDER_FALLBACK_CACHE_BYTES;
  /* Half: the other half is the model's, its activations', the batches'
   * and the page cache's, which a streamed set's files live in. */
  available /= 2;
  return available < CUDL_DATASET_MAX_BYTES ? available
                                            : CUDL_DATASET_MAX_BYTES;
}

cudl_status cudl__dataset_decode(const cudl_dataset *ds, int64_t i,
                                 const cudl_allocator *a, uint8_t *out,
                                 cudl_image_error *err) {
  const size_t stride = (size_t)ds->channels * CUDL_MOMENTS;
  uint64_t moments[CUDL_DATASET_MAX_CHANNELS * CUDL_MOMENTS];
  uint8_t *data;
  size_t size;
  cudl_status status = cudl__image_read_file(
      a, cudl__dataset_image_path(ds, i), &data, &size, err);
  if (status != CUDL_OK) return status;
  status = cudl__image_decode_memory(a, data, size, CUDL_IMAGE_MAX_PIXELS,
                                     ds->channels, ds->height, ds->width, out,
                                     err);
  cudl__image_free(a, data, size > 0 ? size : 1);
  if (status != CUDL_OK) return status;
  /* Another image in the file's place would give other batches than a
   * cached set's, silently: its sums tell (almost always). */
  cudl__image_moments(out, ds->channels,
                      (size_t)ds->height * (size_t)ds->width, moments);
  if (memcmp(moments, ds->moments + (size_t)i * stride,
             stride * sizeof *moments) != 0)
    return cudl__image_error(err, CUDL_ERR_IO,
                             "the image changed since the dataset was loaded "
                             "(its pixels differ)");
  return CUDL_OK;
}

const char *cudl__dataset_image_path(const cudl_dataset *ds, int64_t i) {
  return ds->streamed ? cudl_dataset_source(ds, (int)ds->image_source[i])
                      : NULL;
}

cudl_status cudl_dataset_image_read(const cudl_dataset *ds, int64_t i,
                                    uint8_t *out) {
  static const char fn[] = "cudl_dataset_image_read";
  cudl_image_error err;
  cudl_status status;
  if (ds == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || i < 0 || i >= ds->count)
    return out == NULL
               ? cudl__fail(ds->ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                            "out is NULL")
               : cudl__fail(ds->ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                            "image %lld of a dataset of %lld", (long long)i,
                            (long long)ds->count);
  if (!ds->streamed) {
    memcpy(out, ds->pixels + (size_t)i * ds->image_bytes, ds->image_bytes);
    return CUDL_OK;
  }
  status = cudl__dataset_decode(ds, i, &ds->allocator, out, &err);
  if (status != CUDL_OK)
    return cudl__fail(ds->ctx, status, fn, "image %lld, '%s': %s",
                      (long long)i, cudl__dataset_image_path(ds, i), err.text);
  return CUDL_OK;
}
