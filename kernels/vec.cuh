/*
 * vec.cuh - N consecutive elements of a storage type T moved as one memory
 * access. The memory-bound kernels are limited by their loads and stores,
 * not their arithmetic: one 16-byte access instead of four f32 or eight
 * 16-bit ones keeps them near the copy rate. A kernel may use a vector
 * only where every pointer it reads or writes that way is aligned to the
 * vector's size (cudl__vec_aligned), which tensor storage from the pool
 * always is (256 bytes); unaligned views take the kernel's scalar loop.
 */
#ifndef CUDL_VEC_CUH
#define CUDL_VEC_CUH

#include <stdint.h>

template <typename T, int N>
struct alignas(N * sizeof(T)) cudl__vec {
  T v[N];
};

/* The widest vector the kernels use: 16 bytes, four f32 or eight 16-bit
 * values. */
template <typename T>
using cudl__vec16 = cudl__vec<T, 16 / sizeof(T)>;

/* True when p may be accessed as cudl__vec<T, N>; NULL is (never read). */
template <typename T, int N>
static inline bool cudl__vec_aligned(const void *p) {
  return reinterpret_cast<uintptr_t>(p) % sizeof(cudl__vec<T, N>) == 0;
}

#endif /* CUDL_VEC_CUH */
