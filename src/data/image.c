/*
 * image.c - one image: the format by content, the limits, reading a file,
 * and the public calls that decode into the dataset's layout. The formats
 * are image_png.c's and image_jpeg.c's; conversion and resizing
 * image_resize.c's; what they all share image_common.c's.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/image_internal.h"

static cudl_status decode_any(const cudl_allocator *a, const uint8_t *data,
                              size_t size, uint64_t max_pixels, int header_only,
                              cudl_decoded_image *out, cudl_image_error *err) {
  /* The handlers keep the first reason set: start with none. */
  err->status = CUDL_OK;
  err->text[0] = '\0';
  switch (cudl__image_sniff(data, size)) {
  case CUDL_IMAGE_FORMAT_PNG:
    return cudl__png_decode(a, data, size, max_pixels, header_only, out, err);
  case CUDL_IMAGE_FORMAT_JPEG:
    return cudl__jpeg_decode(a, data, size, max_pixels, header_only, out, err);
  default:
    memset(out, 0, sizeof *out);
    return cudl__image_error(err, CUDL_ERR_FILE_FORMAT,
                             size == 0 ? "empty: not a PNG or JPEG image"
                                       : "not a PNG or JPEG image");
  }
}

cudl_status cudl__image_probe_memory(const uint8_t *data, size_t size,
                                     uint64_t max_pixels, cudl_image_info *info,
                                     cudl_image_error *err) {
  cudl_decoded_image image;
  cudl_status status =
      decode_any(&cudl__default_allocator, data, size, max_pixels, 1, &image,
                 err);
  if (status == CUDL_OK) *info = image.info;
  return status;
}

cudl_status cudl__image_decode_memory(const cudl_allocator *a,
                                      const uint8_t *data, size_t size,
                                      uint64_t max_pixels, int channels,
                                      int height, int width, uint8_t *pixels,
                                      cudl_image_error *err) {
  cudl_decoded_image image;
  cudl_status status = decode_any(a, data, size, max_pixels, 0, &image, err);
  if (status != CUDL_OK) return status;
  status = cudl__image_convert_resize(a, &image, channels, height, width,
                                      pixels, err);
  cudl__image_free(a, image.pixels, image.size);
  return status;
}

cudl_status cudl__image_read_file(const cudl_allocator *a, const char *path,
                                  uint8_t **data, size_t *size,
                                  cudl_image_error *err) {
  struct stat st;
  uint8_t *buffer;
  size_t at = 0, n;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer. */
  int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
  *data = NULL;
  *size = 0;
  if (fd < 0)
    return cudl__image_error(err, CUDL_ERR_IO, "cannot open: %s",
                             strerror(errno));
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return cudl__image_error(err, CUDL_ERR_IO, "not a regular file");
  }
  if ((uint64_t)st.st_size > CUDL_IMAGE_MAX_FILE_BYTES) {
    close(fd);
    return cudl__image_error(err, CUDL_ERR_FILE_SHAPE,
                             "%lld bytes, above the limit of %llu for an "
                             "image file",
                             (long long)st.st_size,
                             (unsigned long long)CUDL_IMAGE_MAX_FILE_BYTES);
  }
  n = (size_t)st.st_size;
  buffer = (uint8_t *)cudl__image_alloc(a, n > 0 ? n : 1);
  if (buffer == NULL) {
    close(fd);
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "cannot allocate %zu bytes to read it", n);
  }
  while (at < n) {
    ssize_t got = read(fd, buffer + at, n - at);
    if (got < 0 && errno == EINTR) continue;
    if (got <= 0) {
      cudl__image_error(err, got < 0 ? CUDL_ERR_IO : CUDL_ERR_FILE_TRUNCATED,
                        got < 0 ? "read failed: %s" : "%s",
                        got < 0 ? strerror(errno)
                                : "the file shrank while being read");
      cudl__image_free(a, buffer, n > 0 ? n : 1);
      close(fd);
      return err->status;
    }
    at += (size_t)got;
  }
  close(fd);
  *data = buffer;
  *size = n;
  return CUDL_OK;
}

/* ---- the public calls ---- */

static cudl_status check_output(cudl_context *ctx, const char *fn,
                                int channels, int height, int width,
                                const void *pixels) {
  if (pixels == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "pixels is NULL");
  if (channels != 1 && channels != 3)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "channels is %d; it must be 1 (gray) or 3 (RGB)",
                      channels);
  if (height < 1 || width < 1 || height > CUDL_DATASET_MAX_SIDE ||
      width > CUDL_DATASET_MAX_SIDE)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "%d x %d pixels; each side must be 1 to %d", height,
                      width, CUDL_DATASET_MAX_SIDE);
  if ((uint64_t)channels * (uint64_t)height * (uint64_t)width >
      CUDL_DATASET_MAX_IMAGE_BYTES)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "%d x %d x %d bytes, above the limit of %llu", channels,
                      height, width,
                      (unsigned long long)CUDL_DATASET_MAX_IMAGE_BYTES);
  return CUDL_OK;
}

cudl_status cudl_image_probe(cudl_context *ctx, const void *data, size_t size,
                             cudl_image_info *info) {
  cudl_image_error err;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (info == NULL || (data == NULL && size > 0))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_image_probe",
                      "%s is NULL", info == NULL ? "info" : "data");
  status = cudl__image_probe_memory((const uint8_t *)data, size,
                                    CUDL_IMAGE_MAX_PIXELS, info, &err);
  if (status != CUDL_OK)
    return cudl__fail(ctx, status, "cudl_image_probe", "<image in memory>: %s",
                      err.text);
  return CUDL_OK;
}

cudl_status cudl_image_probe_file(cudl_context *ctx, const char *path,
                                  cudl_image_info *info) {
  cudl_image_error err;
  uint8_t *data;
  size_t size;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (info == NULL || path == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_image_probe_file",
                      "%s is NULL", info == NULL ? "info" : "path");
  status = cudl__image_read_file(&ctx->allocator, path, &data, &size, &err);
  if (status == CUDL_OK) {
    status = cudl__image_probe_memory(data, size, CUDL_IMAGE_MAX_PIXELS, info,
                                      &err);
    cudl__image_free(&ctx->allocator, data, size > 0 ? size : 1);
  }
  if (status != CUDL_OK)
    return cudl__fail(ctx, status, "cudl_image_probe_file", "'%s': %s", path,
                      err.text);
  return CUDL_OK;
}

cudl_status cudl_image_decode(cudl_context *ctx, const void *data, size_t size,
                              int channels, int height, int width,
                              uint8_t *pixels) {
  static const char fn[] = "cudl_image_decode";
  cudl_image_error err;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (data == NULL && size > 0)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "data is NULL");
  status = check_output(ctx, fn, channels, height, width, pixels);
  if (status != CUDL_OK) return status;
  status = cudl__image_decode_memory(&ctx->allocator, (const uint8_t *)data,
                                     size, CUDL_IMAGE_MAX_PIXELS, channels,
                                     height, width, pixels, &err);
  if (status != CUDL_OK)
    return cudl__fail(ctx, status, fn, "<image in memory>: %s", err.text);
  return CUDL_OK;
}

cudl_status cudl_image_load(cudl_context *ctx, const char *path, int channels,
                            int height, int width, uint8_t *pixels) {
  static const char fn[] = "cudl_image_load";
  cudl_image_error err;
  uint8_t *data;
  size_t size;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (path == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "path is NULL");
  status = check_output(ctx, fn, channels, height, width, pixels);
  if (status != CUDL_OK) return status;
  status = cudl__image_read_file(&ctx->allocator, path, &data, &size, &err);
  if (status == CUDL_OK) {
    status = cudl__image_decode_memory(&ctx->allocator, data, size,
                                       CUDL_IMAGE_MAX_PIXELS, channels, height,
                                       width, pixels, &err);
    cudl__image_free(&ctx->allocator, data, size > 0 ? size : 1);
  }
  if (status != CUDL_OK)
    return cudl__fail(ctx, status, fn, "'%s': %s", path, err.text);
  return CUDL_OK;
}
