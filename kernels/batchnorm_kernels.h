/*
 * batchnorm_kernels.h - launchers for batch normalisation (see
 * cudl/batchnorm.h) on x viewed as [outer, channels, inner]. The training
 * forward and the backward need a workspace of
 * cudl_batchnorm_workspace(...) floats of device memory.
 */
#ifndef CUDL_BATCHNORM_KERNELS_H
#define CUDL_BATCHNORM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

size_t cudl_batchnorm_workspace(int64_t outer, int64_t channels, int64_t inner);
cudaError_t cudl_launch_batchnorm_forward_training(
    cudaStream_t stream, const float *x, const float *gamma, const float *beta,
    float momentum, float eps, float *running_mean, float *running_var,
    float *y, float *save_mean, float *save_invstd, int64_t outer,
    int64_t channels, int64_t inner, float *workspace);
cudaError_t cudl_launch_batchnorm_forward_inference(
    cudaStream_t stream, const float *x, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, float eps, float *y,
    int64_t outer, int64_t channels, int64_t inner);
cudaError_t cudl_launch_batchnorm_backward(cudaStream_t stream, const float *x,
                                           const float *dy, const float *gamma,
                                           const float *save_mean,
                                           const float *save_invstd, float *dx,
                                           float *dgamma, float *dbeta,
                                           int64_t outer, int64_t channels,
                                           int64_t inner, float *workspace);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_BATCHNORM_KERNELS_H */
