/*
 * optim_kernels.h - launchers for the optimizer updates and gradient-norm
 * clipping (see cudl/optim.h; the step arguments in src/core/backend.h).
 * Each update is one fused kernel over the whole parameter arena. The norm
 * needs cudl_l2_norm_workspace(n) doubles of device memory.
 */
#ifndef CUDL_OPTIM_KERNELS_H
#define CUDL_OPTIM_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "core/backend.h"

#ifdef __cplusplus
extern "C" {
#endif

/* momentum_buffer is NULL when args->momentum is 0. */
cudaError_t cudl_launch_sgd_step(cudaStream_t stream, float *params,
                                 const float *grads, float *momentum_buffer,
                                 int64_t n, const cudl_sgd_step_args *args);
cudaError_t cudl_launch_adam_step(cudaStream_t stream, float *params,
                                  const float *grads, float *exp_avg,
                                  float *exp_avg_sq, int64_t n,
                                  const cudl_adam_step_args *args);
size_t cudl_l2_norm_workspace(int64_t n);
/* norm[0] = sqrt(sum of x^2), the squares summed in double: per block,
 * then the blocks' sums by one thread in order (deterministic). */
cudaError_t cudl_launch_l2_norm_f32(cudaStream_t stream, const float *x,
                                    float *norm, int64_t n, double *workspace);
/* x *= coef where coef < 1, coef computed on the device from norm[0]. */
cudaError_t cudl_launch_clip_scale_f32(cudaStream_t stream, float *x, int64_t n,
                                       const float *norm, float max_norm);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_OPTIM_KERNELS_H */
