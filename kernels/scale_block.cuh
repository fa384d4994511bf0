/*
 * scale_block.cuh - y = x * m for the four elements 4b..4b+3, m chosen per
 * element (or y = f(x) * m, dropout after an activation): the shape
 * dropout and RReLU share, whose multipliers come four
 * at a time from one Philox block. x, m and y are in the storage type T
 * (dtype.cuh); m is computed in f32, y = x * m in f32, and each is rounded
 * once where it is stored, so a 16-bit mask holds the f32 multiplier
 * rounded, not the ratio of the stored y to x. When every pointer is
 * aligned to four elements (cudl__vec_aligned<T, 4>) a whole block moves as
 * one cudl__vec<T, 4> (scalar accesses four elements apart left these
 * kernels at 28 % of the copy rate on an H200); the last, partial block and
 * unaligned views go one element at a time.
 */
#ifndef CUDL_SCALE_BLOCK_CUH
#define CUDL_SCALE_BLOCK_CUH

#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/vec.cuh"

/* multiplier(k, x_k) gives m for element 4b + k; the multipliers are
 * written to m_out unless it is NULL. y = value(x_k) * m: dropout after an
 * activation scales the activation's value (value is the identity for
 * dropout and RReLU themselves, the overload below). */
template <typename T, class Multiplier, class Value>
__device__ __forceinline__ void cudl__scale_block(const T *x, T *m_out, T *y,
                                                  int64_t n, int64_t b,
                                                  bool vectorised,
                                                  Multiplier multiplier,
                                                  Value value) {
  using Quad = cudl__vec<T, 4>;
  const int64_t first = 4 * b;
  if (vectorised && first + 3 < n) {
    const Quad v = reinterpret_cast<const Quad *>(x)[b];
    float xf[4], mf[4];
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      xf[k] = cudl__to_f32(v.v[k]);
      mf[k] = multiplier(k, xf[k]);
    }
    Quad m, out;
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      m.v[k] = cudl__from_f32<T>(mf[k]);
      out.v[k] = cudl__from_f32<T>(value(xf[k]) * mf[k]);
    }
    if (m_out != nullptr) reinterpret_cast<Quad *>(m_out)[b] = m;
    reinterpret_cast<Quad *>(y)[b] = out;
    return;
  }
#pragma unroll
  for (int k = 0; k < 4; ++k) {
    if (first + k >= n) break;
    const float xk = cudl__load(x, first + k);
    const float m = multiplier(k, xk);
    if (m_out != nullptr) cudl__store(m_out, first + k, m);
    cudl__store(y, first + k, value(xk) * m);
  }
}

template <typename T, class Multiplier>
__device__ __forceinline__ void cudl__scale_block(const T *x, T *m_out, T *y,
                                                  int64_t n, int64_t b,
                                                  bool vectorised,
                                                  Multiplier multiplier) {
  cudl__scale_block(x, m_out, y, n, b, vectorised, multiplier,
                    [](float v) { return v; });
}

#endif /* CUDL_SCALE_BLOCK_CUH */
