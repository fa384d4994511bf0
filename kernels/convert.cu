/*
 * convert.cu - conversion between the float dtypes on CUDA, plain
 * (convert) and with a transpose (transpose): one kernel per (source,
 * destination) pair, f32 arithmetic and one rounding (dtype.cuh). Mixed
 * precision converts the input and the master weights to 16 bits each step
 * and the gradients back, with the loss scale folded in; a channels-last
 * model moves images and weights between NCHW and NHWC with transpose.
 *
 * transpose: src [batch, rows, cols] to dst [batch, cols, rows]. A
 * 32 x 32 tile goes through shared memory, read along src's rows and
 * written along dst's, so both sides are coalesced (a direct transpose
 * would read or write one element per 32-byte sector); its rows are padded
 * to 33 floats so that the column reads hit 32 different banks. The grid
 * walks (column tile, row tile, batch) with a loop in each dimension, as
 * a batch (the images of a data set) may pass the 65535 blocks of grid y
 * and z. Where rows or cols is 1 the transpose moves nothing: it is a
 * convert over batch * rows * cols elements.
 */
#include "cuda/cuda_internal.h"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"

namespace {

constexpr int kTile = 32;     // a tile is kTile x kTile elements
constexpr int kTileRows = 8;  // threads per tile column: 32 x 8 a block
constexpr unsigned kMaxGridYZ = 65535;

template <typename S, typename D>
__global__ void convert_kernel(const S *src, D *dst, int64_t n, float scale) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    cudl__store(dst, i, scale * cudl__load(src, i));
}

// Block (x, y, z) transposes tile (row tile y, column tile x) of matrix z,
// then the tiles gridDim further on. The loop bounds depend on blockIdx
// only, so every thread of a block reaches each __syncthreads.
template <typename S, typename D>
__global__ void transpose_kernel(const S *src, D *dst, int64_t batch,
                                 int64_t rows, int64_t cols, float scale) {
  __shared__ float tile[kTile][kTile + 1];
  const int64_t row_tiles = (rows + kTile - 1) / kTile;
  const int64_t col_tiles = (cols + kTile - 1) / kTile;
  const int64_t matrix = rows * cols;
  const int tx = threadIdx.x, ty = threadIdx.y;
  for (int64_t b = blockIdx.z; b < batch; b += gridDim.z) {
    const S *from = src + b * matrix;
    D *to = dst + b * matrix;
    for (int64_t rt = blockIdx.y; rt < row_tiles; rt += gridDim.y) {
      for (int64_t ct = blockIdx.x; ct < col_tiles; ct += gridDim.x) {
        const int64_t r0 = rt * kTile, c0 = ct * kTile;
        // Read: a warp takes 32 consecutive elements of one src row.
        for (int k = ty; k < kTile; k += kTileRows) {
          const int64_t r = r0 + k, c = c0 + tx;
          if (r < rows && c < cols)
            tile[k][tx] = cudl__load(from, r * cols + c);
        }
        __syncthreads();
        // Write: a warp fills 32 consecutive elements of one dst row (a src
        // column), reading the tile down a column.
        for (int k = ty; k < kTile; k += kTileRows) {
          const int64_t c = c0 + k, r = r0 + tx;
          if (c < cols && r < rows)
            cudl__store(to, c * rows + r, scale * tile[tx][k]);
        }
        __syncthreads();  // the tile is refilled next
      }
    }
  }
}

unsigned grid_dim(int64_t blocks, unsigned cap) {
  return (unsigned)(blocks < (int64_t)cap ? blocks : (int64_t)cap);
}

// launch(p) with src as the typed pointer p of its dtype.
template <class Launch>
void with_source(cudl_dtype src_dtype, const void *src, Launch launch) {
  switch (src_dtype) {
    case CUDL_DTYPE_BF16:
      launch(cudl__typed<__nv_bfloat16>(src));
      break;
    case CUDL_DTYPE_F16:
      launch(cudl__typed<__half>(src));
      break;
    default: /* f32: the caller admits only float dtypes */
      launch(cudl__typed<float>(src));
      break;
  }
}

template <typename D>
cudl_status convert(cudl_context *ctx, const void *src, cudl_dtype src_dtype,
                    void *dst, int64_t n, float scale) {
  CUDA_ENTER(ctx, s);
  with_source(src_dtype, src, [&](auto from) {
    convert_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
        from, cudl__typed<D>(dst), n, scale);
  });
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename D>
cudl_status transpose(cudl_context *ctx, const void *src, cudl_dtype src_dtype,
                      void *dst, int64_t batch, int64_t rows, int64_t cols,
                      float scale) {
  if (rows == 1 || cols == 1)
    return convert<D>(ctx, src, src_dtype, dst, batch * rows * cols, scale);
  CUDA_ENTER(ctx, s);
  if (batch == 0 || rows == 0 || cols == 0) return CUDL_OK;
  const dim3 grid(grid_dim((cols + kTile - 1) / kTile, INT32_MAX),
                  grid_dim((rows + kTile - 1) / kTile, kMaxGridYZ),
                  grid_dim(batch, kMaxGridYZ));
  with_source(src_dtype, src, [&](auto from) {
    transpose_kernel<<<grid, dim3(kTile, kTileRows), 0, s->stream>>>(
        from, cudl__typed<D>(dst), batch, rows, cols, scale);
  });
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

CUDL_CUDA_FLOATS(convert,
                 (cudl_context * ctx, const void *src, cudl_dtype src_dtype,
                  void *dst, int64_t n, float scale),
                 convert, (ctx, src, src_dtype, dst, n, scale))
CUDL_CUDA_FLOATS(transpose,
                 (cudl_context * ctx, const void *src, cudl_dtype src_dtype,
                  void *dst, int64_t batch, int64_t rows, int64_t cols,
                  float scale),
                 transpose,
                 (ctx, src, src_dtype, dst, batch, rows, cols, scale))
