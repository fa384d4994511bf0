/*
 * pooling_kernels.h - launchers for 2-D max/average pooling and global
 * average pooling (see cudl/pooling.h; geometry in src/core/backend.h).
 */
#ifndef CUDL_POOLING_KERNELS_H
#define CUDL_POOLING_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t cudl_launch_pool2d_forward(cudaStream_t stream,
                                       const cudl_pool2d_geometry *g,
                                       int is_max, const float *x, float *y);
cudaError_t cudl_launch_pool2d_backward(cudaStream_t stream,
                                        const cudl_pool2d_geometry *g,
                                        int is_max, const float *x,
                                        const float *dy, float *dx);
cudaError_t cudl_launch_global_avg_pool_forward(cudaStream_t stream,
                                                const float *x, float *y,
                                                int64_t rows, int64_t cols);
cudaError_t cudl_launch_global_avg_pool_backward(cudaStream_t stream,
                                                 const float *dy, float *dx,
                                                 int64_t rows, int64_t cols);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_POOLING_KERNELS_H */
