/* cpu_images.c - a batch of images from their bytes (images_from_bytes):
 * the loader's crop, flip and normalisation, one table lookup a value. */
#include "cpu/cpu_internal.h"

cudl_status cudl__cpu_images_from_bytes(cudl_context *ctx,
                                        const uint8_t *pixels,
                                        const int32_t *crops, const float *lut,
                                        void *x_, int64_t rows,
                                        int64_t channels, int64_t height,
                                        int64_t width, int64_t pad) {
  float *x = x_;
  const int64_t plane = height * width, image = channels * plane;
  int64_t rc;
  (void)ctx;
#pragma omp parallel for schedule(static) if (rows * image > 65536)
  for (rc = 0; rc < rows * channels; ++rc) {
    const int64_t r = rc / channels, c = rc % channels;
    const uint8_t *src = pixels + r * image + c * plane;
    const float *table = lut + c * 256;
    const int64_t dy = crops[3 * r], dx = crops[3 * r + 1];
    const int flip = crops[3 * r + 2] != 0;
    float *out = x + r * image + c * plane;
    int64_t y, col;
    for (y = 0; y < height; ++y) {
      const int64_t sy = y + dy - pad;
      float *row = out + y * width;
      if (sy < 0 || sy >= height) {
        for (col = 0; col < width; ++col) row[col] = table[0];
        continue;
      }
      for (col = 0; col < width; ++col) {
        const int64_t sx = (flip ? width - 1 - col : col) + dx - pad;
        row[col] =
            sx < 0 || sx >= width ? table[0] : table[src[sy * width + sx]];
      }
    }
  }
  return CUDL_OK;
}
