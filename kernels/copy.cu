/*
 * copy.cu - the strided block copy (copy_2d) on CUDA, in every float
 * dtype: the kernel, then the backend entries. A copy stores each value as
 * it was loaded, so one template over the element type serves f32, bf16
 * and f16 (no widening: every 16-bit value is exact in f32, so the round
 * trip would store the same value).
 *
 * One thread per element in a grid-stride loop over rows * width, row and
 * column from one division; consecutive threads take consecutive columns
 * of a row, so a warp reads and writes contiguous runs (a channels-last
 * concatenation's rows are one pixel's channels).
 */
#include "cuda/cuda_internal.h"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"

namespace {

template <typename T>
__global__ void copy_2d_kernel(const T *src, int64_t src_pitch, T *dst,
                               int64_t dst_pitch, int64_t rows, int64_t width) {
  const int64_t total = rows * width;
  for (int64_t i = CUDL_GRID_START; i < total; i += CUDL_GRID_STRIDE) {
    const int64_t r = i / width, c = i - r * width;
    dst[r * dst_pitch + c] = src[r * src_pitch + c];
  }
}

template <typename T>
cudl_status copy_2d(cudl_context *ctx, const void *src, int64_t src_pitch,
                    void *dst, int64_t dst_pitch, int64_t rows, int64_t width) {
  CUDA_ENTER(ctx, s);
  copy_2d_kernel<<<cudl__grid_for(rows * width), CUDL_BLOCK_SIZE, 0,
                   s->stream>>>(static_cast<const T *>(src), src_pitch,
                                static_cast<T *>(dst), dst_pitch, rows, width);
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

CUDL_CUDA_FLOATS(copy_2d,
                 (cudl_context * ctx, const void *src, int64_t src_pitch,
                  void *dst, int64_t dst_pitch, int64_t rows, int64_t width),
                 copy_2d, (ctx, src, src_pitch, dst, dst_pitch, rows, width))
