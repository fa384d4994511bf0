/*
 * dtype.cuh - the storage types of the CUDA entries and how their kernels
 * read and write them. A kernel of a FLOATS operator (core/ops.def) is a
 * template over the storage type T (float, __nv_bfloat16 or __half): it
 * loads each value to f32 with cudl__load, computes in f32 and stores with
 * cudl__store, which rounds once to nearest with ties to even (the same
 * bits as the CPU's core/half.h). CUDL_CUDA_FLOATS defines the operator's
 * three extern "C" entries from one template.
 */
#ifndef CUDL_DTYPE_CUH
#define CUDL_DTYPE_CUH

#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float cudl__to_f32(float v) { return v; }
__device__ __forceinline__ float cudl__to_f32(__nv_bfloat16 v) {
  return __bfloat162float(v);
}
__device__ __forceinline__ float cudl__to_f32(__half v) {
  return __half2float(v);
}

template <typename T>
__device__ __forceinline__ T cudl__from_f32(float v);
template <>
__device__ __forceinline__ float cudl__from_f32<float>(float v) {
  return v;
}
template <>
__device__ __forceinline__ __nv_bfloat16 cudl__from_f32<__nv_bfloat16>(
    float v) {
  return __float2bfloat16_rn(v);
}
template <>
__device__ __forceinline__ __half cudl__from_f32<__half>(float v) {
  return __float2half_rn(v);
}

template <typename T>
__device__ __forceinline__ float cudl__load(const T *p, int64_t i) {
  return cudl__to_f32(p[i]);
}
template <typename T>
__device__ __forceinline__ void cudl__store(T *p, int64_t i, float v) {
  p[i] = cudl__from_f32<T>(v);
}

/* The typed view of data an entry receives as void *. */
template <typename T>
static inline const T *cudl__typed(const void *p) {
  return static_cast<const T *>(p);
}
template <typename T>
static inline T *cudl__typed(void *p) {
  return static_cast<T *>(p);
}

/* The three entries of a FLOATS operator: `params` its ops.def parameter
 * list, `impl` a function template over T taking the same arguments
 * (`args`, the parameter names in parentheses). */
#define CUDL_CUDA_FLOATS(name, params, impl, args)                     \
  extern "C" cudl_status cudl__cuda_##name params {                    \
    return impl<float> args;                                           \
  }                                                                    \
  extern "C" cudl_status cudl__cuda_##name##_bf16 params {             \
    return impl<__nv_bfloat16> args;                                   \
  }                                                                    \
  extern "C" cudl_status cudl__cuda_##name##_f16 params {              \
    return impl<__half> args;                                          \
  }

#endif /* CUDL_DTYPE_CUH */
