/*
 * images.cu - a batch of images from their bytes (images_from_bytes) on
 * CUDA: the loader's crop, flip and normalisation, one thread per value
 * in a grid-stride loop, each a table lookup, so the values are the CPU's
 * bits. The loader uploads bytes (a quarter of the floats) and the
 * conversion runs here instead of on its host thread.
 */
#include "cuda/cuda_internal.h"
#include "kernels/launch.cuh"

namespace {

__global__ void images_from_bytes_kernel(const uint8_t *pixels,
                                         const int32_t *crops, const float *lut,
                                         float *x, int64_t rows,
                                         int64_t channels, int64_t height,
                                         int64_t width, int64_t pad) {
  const int64_t plane = height * width, image = channels * plane;
  const int64_t total = rows * image;
  for (int64_t i = CUDL_GRID_START; i < total; i += CUDL_GRID_STRIDE) {
    const int64_t r = i / image, within = i - r * image;
    const int64_t c = within / plane, at = within - c * plane;
    const int64_t y = at / width, col = at - y * width;
    const int64_t sy = y + crops[3 * r] - pad;
    const int64_t sx = (crops[3 * r + 2] != 0 ? width - 1 - col : col) +
                       crops[3 * r + 1] - pad;
    const float *table = lut + c * 256;
    x[i] = sy < 0 || sy >= height || sx < 0 || sx >= width
               ? table[0]
               : table[pixels[r * image + c * plane + sy * width + sx]];
  }
}

}  // namespace

extern "C" cudl_status cudl__cuda_images_from_bytes(
    cudl_context *ctx, const uint8_t *pixels, const int32_t *crops,
    const float *lut, void *x, int64_t rows, int64_t channels, int64_t height,
    int64_t width, int64_t pad) {
  CUDA_ENTER(ctx, s);
  images_from_bytes_kernel<<<cudl__grid_for(rows * channels * height * width),
                             CUDL_BLOCK_SIZE, 0, s->stream>>>(
      pixels, crops, lut, cudl__f32(x), rows, channels, height, width, pad);
  return CUDL_CUDA_LAUNCHED(ctx);
}
