/*
 * convert.cu - conversion between the float dtypes on CUDA: one kernel per
 * (source, destination) pair, f32 arithmetic and one rounding (dtype.cuh).
 * Mixed precision converts the input and the master weights to 16 bits
 * each step and the gradients back, with the loss scale folded in.
 */
#include "cuda/cuda_internal.h"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"

namespace {

template <typename S, typename D>
__global__ void convert_kernel(const S *src, D *dst, int64_t n, float scale) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    cudl__store(dst, i, scale * cudl__load(src, i));
}

template <typename D>
cudl_status convert(cudl_context *ctx, const void *src, cudl_dtype src_dtype,
                    void *dst, int64_t n, float scale) {
  CUDA_ENTER(ctx, s);
  const unsigned grid = cudl__grid_for(n);
  switch (src_dtype) {
    case CUDL_DTYPE_BF16:
      convert_kernel<<<grid, CUDL_BLOCK_SIZE, 0, s->stream>>>(
          cudl__typed<__nv_bfloat16>(src), cudl__typed<D>(dst), n, scale);
      break;
    case CUDL_DTYPE_F16:
      convert_kernel<<<grid, CUDL_BLOCK_SIZE, 0, s->stream>>>(
          cudl__typed<__half>(src), cudl__typed<D>(dst), n, scale);
      break;
    default: /* f32: the caller admits only float dtypes */
      convert_kernel<<<grid, CUDL_BLOCK_SIZE, 0, s->stream>>>(
          cudl__typed<float>(src), cudl__typed<D>(dst), n, scale);
      break;
  }
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

CUDL_CUDA_FLOATS(convert,
                 (cudl_context * ctx, const void *src, cudl_dtype src_dtype,
                  void *dst, int64_t n, float scale),
                 convert, (ctx, src, src_dtype, dst, n, scale))
