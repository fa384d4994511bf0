/*
 * image_png.c - PNG through libpng: every colour type and bit depth to 8-bit
 * gray or RGB (cudl/image.h says how), from memory, with the limits checked
 * on the IHDR chunk before libpng allocates anything for the image.
 *
 * libpng reports errors by calling our handler, which longjmps back to the
 * setjmp in cudl__png_decode; what was allocated since is held in volatile
 * locals so that the error path frees it.
 */
#include <png.h>
#include <setjmp.h>
#include <string.h>

#include "data/image_internal.h"

#define PNG_SIGNATURE_BYTES 8
/* signature, IHDR length and type, width, height, depth, colour type */
#define PNG_IHDR_END 26
/* Ancillary chunks (text, ICC profiles) are decompressed up to this. */
#define PNG_CHUNK_MALLOC_MAX (8u << 20)
#define PNG_CHUNK_CACHE_MAX 128

typedef struct png_job {
  const uint8_t *data;
  size_t size, at;
  cudl_image_error *err;
  jmp_buf jump;
} png_job;

static void on_error(png_structp png, png_const_charp message) {
  png_job *job = (png_job *)png_get_error_ptr(png);
  /* A reason set before (the data ran out) is the better one. */
  /* libpng's words for IDAT data that ends before the last row. */
  const int short_data = strcmp(message, "Not enough image data") == 0;
  if (job->err->status == CUDL_OK)
    cudl__image_error(job->err,
                      short_data ? CUDL_ERR_FILE_TRUNCATED : CUDL_ERR_FILE_FORMAT,
                      "PNG: %s", message);
  longjmp(job->jump, 1);
}

/* Warnings (a bad CRC in an ancillary chunk, an unknown sRGB intent) lose
 * no pixel: libpng goes on, and so does cudl, silently. */
static void on_warning(png_structp png, png_const_charp message) {
  (void)png;
  (void)message;
}

static void read_bytes(png_structp png, png_bytep out, size_t n) {
  png_job *job = (png_job *)png_get_io_ptr(png);
  if (n > job->size - job->at) {
    cudl__image_error(job->err, CUDL_ERR_FILE_TRUNCATED,
                      "PNG: the data ends after %zu bytes, before the image "
                      "does",
                      job->size);
    png_error(png, "truncated");
  }
  memcpy(out, job->data + job->at, n);
  job->at += n;
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

/* The header, read by hand: the limits are checked before libpng sees it. */
static cudl_status read_ihdr(const uint8_t *data, size_t size,
                             uint64_t max_pixels, cudl_image_info *info,
                             cudl_image_error *err) {
  int color_type;
  cudl_status status;
  if (size < PNG_IHDR_END)
    return cudl__image_error(err, CUDL_ERR_FILE_TRUNCATED,
                             "PNG: %zu bytes, too short to hold the header",
                             size);
  if (memcmp(data + 12, "IHDR", 4) != 0 || be32(data + 8) != 13)
    return cudl__image_error(err, CUDL_ERR_FILE_FORMAT,
                             "PNG: the first chunk is not a 13-byte IHDR");
  status = cudl__image_check_size("PNG", be32(data + 20), be32(data + 16),
                                  max_pixels, err);
  if (status != CUDL_OK) return status;
  color_type = data[25];
  memset(info, 0, sizeof *info);
  info->format = CUDL_IMAGE_FORMAT_PNG;
  info->height = (int)be32(data + 20);
  info->width = (int)be32(data + 16);
  /* Colour types 2 (RGB), 3 (palette), 6 (RGBA) have bit 1 set. */
  info->channels = (color_type & 2) ? 3 : 1;
  info->bit_depth = data[24];
  return CUDL_OK;
}

/* Walk the chunks before libpng does: libpng allocates a buffer of a
 * chunk's declared length before reading it (up to 2^31 bytes for a few
 * bytes of file), so every length must first fit in what the file holds.
 * Stops after IEND; what follows it is ignored, as libpng ignores it. */
static cudl_status check_chunks(const uint8_t *data, size_t size,
                                cudl_image_error *err) {
  size_t at = PNG_SIGNATURE_BYTES;
  while (size - at >= 12) {
    const uint32_t length = be32(data + at);
    char type[5] = "?";
    int i, letters = 1;
    for (i = 0; i < 4; ++i) {
      const uint8_t c = data[at + 4 + (size_t)i];
      letters &= (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
    }
    if (letters) { /* a chunk type is 4 letters; anything else is not printed */
      memcpy(type, data + at + 4, 4);
      type[4] = '\0';
    }
    if (length > size - at - 12)
      return cudl__image_error(
          err, CUDL_ERR_FILE_TRUNCATED,
          "PNG: chunk %s at byte %zu declares %lu bytes, the file has %zu "
          "left",
          type, at,
          (unsigned long)length, size - at - 12);
    if (memcmp(data + at + 4, "IEND", 4) == 0) return CUDL_OK;
    at += 12 + (size_t)length;
  }
  return cudl__image_error(err, CUDL_ERR_FILE_TRUNCATED,
                           "PNG: the data ends after %zu bytes, before IEND",
                           size);
}

cudl_status cudl__png_decode(const cudl_allocator *a, const uint8_t *data,
                             size_t size, uint64_t max_pixels, int header_only,
                             cudl_decoded_image *out, cudl_image_error *err) {
  png_job job;
  png_structp png;
  png_infop info;
  uint8_t *volatile pixels = NULL;
  volatile size_t pixels_size = 0;
  png_bytep *volatile rows = NULL;
  volatile size_t rows_size = 0;
  size_t row_bytes, height, width, samples, keep, i;
  cudl_status status;
  memset(out, 0, sizeof *out);
  status = read_ihdr(data, size, max_pixels, &out->info, err);
  if (status != CUDL_OK || header_only) return status;
  status = check_chunks(data, size, err);
  if (status != CUDL_OK) return status;
  height = (size_t)out->info.height;
  width = (size_t)out->info.width;
  job.data = data;
  job.size = size;
  job.at = 0;
  job.err = err;
  png = png_create_read_struct(PNG_LIBPNG_VER_STRING, &job, on_error,
                               on_warning);
  if (png == NULL)
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "PNG: cannot create libpng's reader");
  info = png_create_info_struct(png);
  if (info == NULL) {
    png_destroy_read_struct(&png, NULL, NULL);
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "PNG: cannot create libpng's reader");
  }
  if (setjmp(job.jump)) {
    cudl__image_free(a, rows, rows_size);
    cudl__image_free(a, pixels, pixels_size);
    png_destroy_read_struct(&png, &info, NULL);
    return err->status;
  }
  png_set_user_limits(png, CUDL_DATASET_MAX_SIDE, CUDL_DATASET_MAX_SIDE);
  png_set_chunk_malloc_max(png, PNG_CHUNK_MALLOC_MAX);
  png_set_chunk_cache_max(png, PNG_CHUNK_CACHE_MAX);
  png_set_read_fn(png, &job, read_bytes);
  png_read_info(png, info);
  if (png_get_image_width(png, info) != width ||
      png_get_image_height(png, info) != height)
    png_error(png, "IHDR changed while being read");
  png_set_scale_16(png);
  png_set_palette_to_rgb(png);
  png_set_expand_gray_1_2_4_to_8(png);
  png_set_interlace_handling(png);
  png_read_update_info(png, info);
  /* Alpha (from the colour type or tRNS) is dropped below, by hand. */
  samples = png_get_channels(png, info);
  row_bytes = png_get_rowbytes(png, info);
  if (png_get_bit_depth(png, info) != 8 || samples < 1 || samples > 4 ||
      row_bytes != width * samples)
    png_error(png, "unexpected layout after the 8-bit transformations");
  /* height * width <= max_pixels < 2^32 and samples <= 4: no overflow. */
  pixels_size = height * row_bytes;
  pixels = (uint8_t *)cudl__image_alloc(a, pixels_size);
  rows_size = height * sizeof(png_bytep);
  rows = (png_bytep *)cudl__image_alloc(a, rows_size);
  if (pixels == NULL || rows == NULL) {
    cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                      "PNG: cannot allocate %zu bytes for %zu x %zu pixels",
                      (size_t)pixels_size, height, width);
    png_error(png, "out of memory");
  }
  for (i = 0; i < height; ++i) rows[i] = pixels + i * row_bytes;
  png_read_image(png, rows);
  keep = samples >= 3 ? 3 : 1;
  if (keep != samples) {
    /* Each pixel moves down or stays: in place, front to back. */
    const size_t n = height * width;
    size_t p, c;
    for (p = 0; p < n; ++p)
      for (c = 0; c < keep; ++c) pixels[p * keep + c] = pixels[p * samples + c];
  }
  out->info.channels = (int)keep;
  /* The rest of the file: the last IDAT's checksums (a corrupt or cut
   * tail) and IEND. */
  png_read_end(png, NULL);
  cudl__image_free(a, rows, rows_size);
  png_destroy_read_struct(&png, &info, NULL);
  out->pixels = pixels;
  out->size = pixels_size;
  return CUDL_OK;
}
