/*
 * scale_block.cuh - y = x * m for the four elements 4b..4b+3, m chosen per
 * element: the shape dropout and RReLU share, whose multipliers come four
 * at a time from one Philox block. With 16-byte aligned pointers a whole
 * block moves as float4 (scalar accesses four elements apart left these
 * kernels at 28 % of the copy rate on an H200); the last, partial block and
 * unaligned views go one element at a time.
 */
#ifndef CUDL_SCALE_BLOCK_CUH
#define CUDL_SCALE_BLOCK_CUH

#include "kernels/launch.cuh"

/* multiplier(k, x_k) gives m for element 4b + k; the multipliers are
 * written to m_out unless it is NULL. */
template <class Multiplier>
__device__ __forceinline__ void cudl__scale_block(const float *x, float *m_out,
                                                  float *y, int64_t n,
                                                  int64_t b, bool vectorised,
                                                  Multiplier multiplier) {
  const int64_t first = 4 * b;
  if (vectorised && first + 3 < n) {
    const float4 v = reinterpret_cast<const float4 *>(x)[b];
    const float4 m = make_float4(multiplier(0, v.x), multiplier(1, v.y),
                                 multiplier(2, v.z), multiplier(3, v.w));
    if (m_out != nullptr) reinterpret_cast<float4 *>(m_out)[b] = m;
    reinterpret_cast<float4 *>(y)[b] =
        make_float4(v.x * m.x, v.y * m.y, v.z * m.z, v.w * m.w);
    return;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (first + k >= n) break;
    const float xk = x[first + k];
    const float m = multiplier(k, xk);
    if (m_out != nullptr) m_out[first + k] = m;
    y[first + k] = xk * m;
  }
}

#endif /* CUDL_SCALE_BLOCK_CUH */
