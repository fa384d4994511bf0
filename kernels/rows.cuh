/*
 * rows.cuh - the launch shape of per-channel work on a matrix [rows,
 * channels] (an operator's [outer, channels, inner] with inner == 1): the
 * activations of a channels-last model, [n * h * w, c], and a linear
 * layer's [batch, features]. A channel's elements are `channels` apart
 * there, so the NCHW pattern, one block per channel walking its elements,
 * reads one element per 32-byte sector (and a single block per channel
 * tile is too few blocks for a long matrix).
 *
 * Here threads run along channels. A block is width x height threads,
 * width channels side by side (a power of two, up to 32 and no wider than
 * the matrix needs, so a warp reads 32 consecutive channels of a row, or
 * whole rows of a narrow matrix) and height = CUDL_BLOCK_SIZE / width
 * rows. Block (x, y) covers channel tile x and rows y * height + ty, then
 * gridDim.y * height further on: part y of each channel's rows. A sum per
 * channel is then made in two stages, each in a fixed order, so it is
 * deterministic: each block adds its threads' sums of a channel in order
 * of threadIdx.y (cudl__column_sum) and writes part y of the channel; a
 * finishing kernel adds the channel's parts in order.
 */
#ifndef CUDL_ROWS_CUH
#define CUDL_ROWS_CUH

#include "kernels/launch.cuh"

struct cudl__rows_shape {
  dim3 grid, block;
  int parts; /* grid.y: the parts each channel's rows are split into */
};

/* Rows per thread below which a matrix is not split into more parts:
 * short matrices (a linear layer's batch) take one part, one launch. */
#define CUDL_ROWS_MIN_PER_THREAD 16

/* About 1024 blocks in all, as the per-channel kernels launch, at most
 * 1024 parts (the finishing kernels add them serially). */
static inline cudl__rows_shape cudl__rows_shape_for(int64_t rows,
                                                    int64_t channels) {
  unsigned width = 1;
  while (width < 32 && (int64_t)width < channels) width *= 2;
  const unsigned height = CUDL_BLOCK_SIZE / width;
  int64_t tiles = (channels + width - 1) / width;
  if (tiles < 1) tiles = 1;
  int64_t parts = (1024 + tiles - 1) / tiles;
  const int64_t per_part = (int64_t)height * CUDL_ROWS_MIN_PER_THREAD;
  const int64_t useful = (rows + per_part - 1) / per_part;
  if (parts > useful) parts = useful;
  if (parts > 1024) parts = 1024;
  if (parts < 1) parts = 1;
  cudl__rows_shape shape;
  shape.grid = dim3((unsigned)tiles, (unsigned)parts);
  shape.block = dim3(width, height);
  shape.parts = (int)parts;
  return shape;
}

/* In a block of the rows shape: this thread's channel and first row, and
 * the step to its next row. */
__device__ __forceinline__ int64_t cudl__rows_channel() {
  return (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
}
__device__ __forceinline__ int64_t cudl__rows_first() {
  return (int64_t)blockIdx.y * blockDim.y + threadIdx.y;
}
__device__ __forceinline__ int64_t cudl__rows_step() {
  return (int64_t)gridDim.y * blockDim.y;
}

/* The sum of v (float or double) over the block's threads with this
 * thread's threadIdx.x, added in order of threadIdx.y; valid where
 * threadIdx.y == 0. Every thread of the block must call it, once per
 * block (its shared memory is not reused). */
template <class T>
__device__ T cudl__column_sum(T v) {
  __shared__ T column[CUDL_BLOCK_SIZE];
  column[threadIdx.y * blockDim.x + threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0)
    for (unsigned y = 1; y < blockDim.y; ++y)
      v += column[y * blockDim.x + threadIdx.x];
  return v;
}

/* cudl__column_sum for a value of several numbers, merged in order of
 * threadIdx.y (T as for cudl__block_merge, kernels/reduce.cuh). */
template <class T>
__device__ T cudl__column_merge(T v) {
  __shared__ T column[CUDL_BLOCK_SIZE];
  column[threadIdx.y * blockDim.x + threadIdx.x] = v;
  __syncthreads();
  if (threadIdx.y == 0)
    for (unsigned y = 1; y < blockDim.y; ++y)
      v.merge(column[y * blockDim.x + threadIdx.x]);
  return v;
}

#endif /* CUDL_ROWS_CUH */
