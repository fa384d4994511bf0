/*
 * fuzz_image.c - libFuzzer target for the PNG and JPEG decoders' wrapper
 * (src/data/image*.c), through cudl__image_probe_memory and
 * cudl__image_decode_memory, the calls under cudl_image_decode and the
 * folder reader.
 *
 * Input: [mode][height][width][image...]
 *   mode & 1: also resize, to (height % 48 + 1) x (width % 48 + 1);
 *             otherwise the image's own size (from the probe).
 * The pixel budget is 2^20 here (the library's is 2^26), so that a header
 * declaring a large image costs milliseconds, not seconds, per input; the
 * limit checks are the same code.
 * Promises checked (a broken one aborts, which libFuzzer reports):
 *   - a failure is a documented status (FILE_FORMAT, FILE_SHAPE,
 *     FILE_TRUNCATED, OUT_OF_MEMORY) with a non-empty one-line reason, and
 *     the probe and the decoder agree on header failures;
 *   - a success decodes to 1 and to 3 channels consistently: for a gray
 *     image the three RGB planes equal the gray one; for a colour image the
 *     gray one is the BT.601 luma of the RGB planes (at the image's own
 *     size, where no resampling intervenes);
 *   - the probe's sides are within the limits.
 * Built as tests/fuzz/CMakeLists.txt says.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "data/image_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_PIXELS (1u << 20)

#define FUZZ_CHECK(cond)                                                 \
  do {                                                                   \
    if (!(cond)) {                                                       \
      fprintf(stderr, "fuzz_image: %s:%d: check failed: %s\n", __FILE__, \
              __LINE__, #cond);                                          \
      abort();                                                           \
    }                                                                    \
  } while (0)

static void check_failure(cudl_status s, const cudl_image_error *err) {
  FUZZ_CHECK(s == CUDL_ERR_FILE_FORMAT || s == CUDL_ERR_FILE_SHAPE ||
             s == CUDL_ERR_FILE_TRUNCATED || s == CUDL_ERR_OUT_OF_MEMORY);
  FUZZ_CHECK(err->status == s);
  FUZZ_CHECK(err->text[0] != '\0');
  FUZZ_CHECK(strchr(err->text, '\n') == NULL);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const cudl_allocator *a = &cudl__default_allocator;
  cudl_image_info info;
  cudl_image_error err;
  uint8_t *gray = NULL, *rgb = NULL;
  size_t plane, p;
  int height, width;
  cudl_status s, s1, s3;
  if (size < 3) return 0;
  s = cudl__image_probe_memory(data + 3, size - 3, FUZZ_PIXELS, &info, &err);
  if (s != CUDL_OK) {
    check_failure(s, &err);
    /* What the header refuses, decoding refuses the same way. */
    uint8_t pixel[3];
    s1 = cudl__image_decode_memory(a, data + 3, size - 3, FUZZ_PIXELS, 1, 1,
                                   1, pixel, &err);
    FUZZ_CHECK(s1 == s);
    return 0;
  }
  FUZZ_CHECK(info.height >= 1 && info.width >= 1);
  FUZZ_CHECK((uint64_t)info.height * (uint64_t)info.width <= FUZZ_PIXELS);
  FUZZ_CHECK(info.channels == 1 || info.channels == 3 || info.channels == 4);
  height = (data[0] & 1) ? data[1] % 48 + 1 : info.height;
  width = (data[0] & 1) ? data[2] % 48 + 1 : info.width;
  plane = (size_t)height * (size_t)width;
  gray = (uint8_t *)malloc(plane);
  rgb = (uint8_t *)malloc(plane * 3);
  FUZZ_CHECK(gray != NULL && rgb != NULL);
  s1 = cudl__image_decode_memory(a, data + 3, size - 3, FUZZ_PIXELS, 1, height,
                                 width, gray, &err);
  if (s1 != CUDL_OK) check_failure(s1, &err);
  s3 = cudl__image_decode_memory(a, data + 3, size - 3, FUZZ_PIXELS, 3, height,
                                 width, rgb, &err);
  if (s3 != CUDL_OK) check_failure(s3, &err);
  FUZZ_CHECK(s1 == s3); /* the same data decodes the same way */
  if (s1 == CUDL_OK && !(data[0] & 1)) {
    for (p = 0; p < plane; ++p) {
      if (info.channels == 1) {
        FUZZ_CHECK(rgb[p] == gray[p] && rgb[plane + p] == gray[p] &&
                   rgb[2 * plane + p] == gray[p]);
      } else {
        const unsigned luma =
            (19595u * rgb[p] + 38470u * rgb[plane + p] +
             7471u * rgb[2 * plane + p] + 32768u) >>
            16;
        FUZZ_CHECK(gray[p] == luma);
      }
    }
  }
  free(gray);
  free(rgb);
  return 0;
}
