/*
 * dropout_kernels.h - launcher for inverted dropout (see cudl/dropout.h).
 */
#ifndef CUDL_DROPOUT_KERNELS_H
#define CUDL_DROPOUT_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t cudl_launch_dropout_forward(cudaStream_t stream, const float *x,
                                        float *mask, float *y, int64_t n,
                                        float p, int training, uint64_t seed,
                                        uint64_t offset);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_DROPOUT_KERNELS_H */
