/*
 * init_kernels.h - launchers for the initialisation kernels (fill, uniform,
 * normal). Callable from C. Each launcher queues its kernel on `stream` and
 * returns the launch status (cudaGetLastError); arguments are validated by
 * the caller. n may be any size; the kernels use grid-stride loops.
 */
#ifndef CUDL_INIT_KERNELS_H
#define CUDL_INIT_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t cudl_launch_fill_f32(cudaStream_t stream, float *dst, int64_t n,
                                 float value);
cudaError_t cudl_launch_uniform_f32(cudaStream_t stream, float *dst, int64_t n,
                                    uint64_t seed, uint64_t offset, float low,
                                    float high);
cudaError_t cudl_launch_normal_f32(cudaStream_t stream, float *dst, int64_t n,
                                   uint64_t seed, uint64_t offset, float mean,
                                   float stddev);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_INIT_KERNELS_H */
