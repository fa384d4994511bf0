/* cpu_copy.c - the strided block copy (copy_2d) on the CPU, in every float
 * dtype. A copy has no arithmetic to widen: the 16-bit entries move the
 * stored 2-byte values as they are, which is what widening to f32 and
 * rounding back once would store (every bf16 and f16 value is exact in
 * f32), without the round trip. */
#include <string.h>

#include "cpu/cpu_internal.h"

static cudl_status copy_rows(const void *src, int64_t src_pitch, void *dst,
                             int64_t dst_pitch, int64_t rows, int64_t width,
                             size_t element) {
  const char *from = src;
  char *to = dst;
  const size_t bytes = (size_t)width * element;
  int64_t r;
  if (src_pitch == width && dst_pitch == width) {
    memcpy(to, from, (size_t)rows * bytes);
    return CUDL_OK;
  }
  /* Many short rows (channels-last concatenation: one pixel's channels
   * each) are worth threads; a few long ones are memcpy's own work. */
#pragma omp parallel for schedule(static) if (rows * width > 32768)
  for (r = 0; r < rows; ++r)
    memcpy(to + (size_t)(r * dst_pitch) * element,
           from + (size_t)(r * src_pitch) * element, bytes);
  return CUDL_OK;
}

cudl_status cudl__cpu_copy_2d(cudl_context *ctx, const void *src,
                              int64_t src_pitch, void *dst, int64_t dst_pitch,
                              int64_t rows, int64_t width) {
  (void)ctx;
  return copy_rows(src, src_pitch, dst, dst_pitch, rows, width, sizeof(float));
}

cudl_status cudl__cpu_copy_2d_bf16(cudl_context *ctx, const void *src,
                                   int64_t src_pitch, void *dst,
                                   int64_t dst_pitch, int64_t rows,
                                   int64_t width) {
  (void)ctx;
  return copy_rows(src, src_pitch, dst, dst_pitch, rows, width,
                   sizeof(uint16_t));
}

cudl_status cudl__cpu_copy_2d_f16(cudl_context *ctx, const void *src,
                                  int64_t src_pitch, void *dst,
                                  int64_t dst_pitch, int64_t rows,
                                  int64_t width) {
  (void)ctx;
  return copy_rows(src, src_pitch, dst, dst_pitch, rows, width,
                   sizeof(uint16_t));
}
