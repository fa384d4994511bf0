/*
 * image_internal.h - what the image files share: the decoders of one
 * format each (image_png.c, image_jpeg.c), channel conversion and resizing
 * (image_resize.c), and the context-free decoding that the folder reader's
 * threads and the fuzz target call (image.c). Private.
 *
 * Nothing here touches a context: errors go into a cudl_image_error, and
 * the allocator is called inside an OpenMP critical section, so that
 * threads decoding different files may share the context's allocator
 * (which need not be thread-safe) while the caller of the folder reader
 * waits.
 */
#ifndef CUDL_DATA_IMAGE_INTERNAL_H
#define CUDL_DATA_IMAGE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "cudl/image.h"

CUDL_EXTERN_C_BEGIN

/* A decoder's verdict: the status and a one-line reason. */
typedef struct cudl_image_error {
  cudl_status status;
  char text[256];
} cudl_image_error;

/* Record status and a printf-style reason in err; returns status. */
cudl_status cudl__image_error(cudl_image_error *err, cudl_status status,
                              const char *fmt, ...) CUDL_PRINTF(3, 4);

/* The allocator, one thread at a time; NULL on failure. */
void *cudl__image_alloc(const cudl_allocator *a, size_t size);
void cudl__image_free(const cudl_allocator *a, void *ptr, size_t size);

/* An image decoded to 8 bits, interleaved, info.channels (1 or 3) samples
 * per pixel, alpha dropped. */
typedef struct cudl_decoded_image {
  cudl_image_info info;
  uint8_t *pixels; /* height * width * channels bytes, from the allocator */
  size_t size;
} cudl_decoded_image;

/* Check a header's sides and pixel count against the limits. */
cudl_status cudl__image_check_size(const char *format, uint64_t height,
                                   uint64_t width, uint64_t max_pixels,
                                   cudl_image_error *err);

/* The format by its leading bytes. */
cudl_image_format cudl__image_sniff(const uint8_t *data, size_t size);

/* The decoders. header_only: fill out->info and stop (pixels NULL). On
 * failure nothing is left allocated. */
cudl_status cudl__png_decode(const cudl_allocator *a, const uint8_t *data,
                             size_t size, uint64_t max_pixels, int header_only,
                             cudl_decoded_image *out, cudl_image_error *err);
cudl_status cudl__jpeg_decode(const cudl_allocator *a, const uint8_t *data,
                              size_t size, uint64_t max_pixels, int header_only,
                              cudl_decoded_image *out, cudl_image_error *err);

/* Convert src to `channels` planar channels and resample it to height x
 * width into out (cudl/image.h says how). */
cudl_status cudl__image_convert_resize(const cudl_allocator *a,
                                       const cudl_decoded_image *src,
                                       int channels, int height, int width,
                                       uint8_t *out, cudl_image_error *err);

/* Probe or decode memory without a context. max_pixels: the pixel budget
 * (CUDL_IMAGE_MAX_PIXELS; the fuzz target lowers it to stay fast). */
cudl_status cudl__image_probe_memory(const uint8_t *data, size_t size,
                                     uint64_t max_pixels, cudl_image_info *info,
                                     cudl_image_error *err);
cudl_status cudl__image_decode_memory(const cudl_allocator *a,
                                      const uint8_t *data, size_t size,
                                      uint64_t max_pixels, int channels,
                                      int height, int width, uint8_t *pixels,
                                      cudl_image_error *err);

/* The whole of a regular file of at most CUDL_IMAGE_MAX_FILE_BYTES into
 * *data (from a; *size bytes, free with cudl__image_free). */
cudl_status cudl__image_read_file(const cudl_allocator *a, const char *path,
                                  uint8_t **data, size_t *size,
                                  cudl_image_error *err);

CUDL_EXTERN_C_END

#endif /* CUDL_DATA_IMAGE_INTERNAL_H */
