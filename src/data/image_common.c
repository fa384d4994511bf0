/*
 * image_common.c - what the image decoders, the resize and the folder
 * reader share: their error record, the allocator taken one thread at a
 * time, the size limits and recognising a format.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "data/image_internal.h"

cudl_status cudl__image_error(cudl_image_error *err, cudl_status status,
                              const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  vsnprintf(err->text, sizeof err->text, fmt, args);
  va_end(args);
  err->status = status;
  return status;
}

void *cudl__image_alloc(const cudl_allocator *a, size_t size) {
  void *p;
#pragma omp critical
  p = cudl__host_alloc(a, size, 16);
  return p;
}

void cudl__image_free(const cudl_allocator *a, void *ptr, size_t size) {
  if (ptr == NULL) return;
#pragma omp critical
  cudl__host_free(a, ptr, size);
}

cudl_status cudl__image_check_size(const char *format, uint64_t height,
                                   uint64_t width, uint64_t max_pixels,
                                   cudl_image_error *err) {
  if (height == 0 || width == 0 || height > CUDL_DATASET_MAX_SIDE ||
      width > CUDL_DATASET_MAX_SIDE)
    return cudl__image_error(err, CUDL_ERR_FILE_SHAPE,
                             "%s: %llu x %llu pixels; each side must be 1 to "
                             "%d",
                             format, (unsigned long long)height,
                             (unsigned long long)width, CUDL_DATASET_MAX_SIDE);
  if (height * width > max_pixels)
    return cudl__image_error(err, CUDL_ERR_FILE_SHAPE,
                             "%s: %llu x %llu pixels, above the limit of %llu "
                             "pixels",
                             format, (unsigned long long)height,
                             (unsigned long long)width,
                             (unsigned long long)max_pixels);
  return CUDL_OK;
}

cudl_image_format cudl__image_sniff(const uint8_t *data, size_t size) {
  static const uint8_t png[8] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
  if (size >= 8 && memcmp(data, png, 8) == 0) return CUDL_IMAGE_FORMAT_PNG;
  if (size >= 3 && data[0] == 0xff && data[1] == 0xd8 && data[2] == 0xff)
    return CUDL_IMAGE_FORMAT_JPEG;
  return CUDL_IMAGE_FORMAT_UNKNOWN;
}
