/*
 * launch.cuh - the launch shape every elementwise kernel uses: 256 threads a
 * block and a grid-stride loop, the grid capped so a huge tensor does not
 * launch millions of blocks (each thread then loops).
 */
#ifndef CUDL_LAUNCH_CUH
#define CUDL_LAUNCH_CUH

#include <stdint.h>

#define CUDL_BLOCK_SIZE 256
#define CUDL_MAX_GRID 8192

/* Blocks for `work` independent items, at least 1. */
static inline unsigned cudl__grid_for(int64_t work) {
  int64_t blocks = (work + CUDL_BLOCK_SIZE - 1) / CUDL_BLOCK_SIZE;
  if (blocks < 1) blocks = 1;
  if (blocks > CUDL_MAX_GRID) blocks = CUDL_MAX_GRID;
  return (unsigned)blocks;
}

/* True when p may be read as float4 (16-byte aligned). Tensor storage from
 * the pool always is; the check keeps kernels right for any pointer. */
static inline bool cudl__aligned16(const void *p) {
  return (reinterpret_cast<uintptr_t>(p) & 15u) == 0;
}

/* The f32 view of data an entry receives as void * (in the dtype it was
 * registered for, f32 for every kernel so far: core/ops.def). */
static inline const float *cudl__f32(const void *p) {
  return static_cast<const float *>(p);
}
static inline float *cudl__f32(void *p) { return static_cast<float *>(p); }

/* First index and stride of a grid-stride loop, in 64 bits. */
#define CUDL_GRID_START ((int64_t)blockIdx.x * blockDim.x + threadIdx.x)
#define CUDL_GRID_STRIDE ((int64_t)gridDim.x * blockDim.x)

#endif /* CUDL_LAUNCH_CUH */
