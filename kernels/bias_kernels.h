/*
 * bias_kernels.h - launchers for the per-channel bias of linear and
 * convolution layers, on y viewed as [outer, channels, inner]: the addition
 * (forward) and the channel sums (the bias gradient). Neither needs a
 * workspace; the sums are deterministic (no atomics, a fixed order).
 */
#ifndef CUDL_BIAS_KERNELS_H
#define CUDL_BIAS_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

/* y[o, c, i] += bias[c]. */
cudaError_t cudl_launch_bias_add(cudaStream_t stream, float *y,
                                 const float *bias, int64_t outer,
                                 int64_t channels, int64_t inner);
/* out[c] = the sum over o and i of x[o, c, i] (0 for an empty channel). */
cudaError_t cudl_launch_channel_sum(cudaStream_t stream, const float *x,
                                    float *out, int64_t outer, int64_t channels,
                                    int64_t inner);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_BIAS_KERNELS_H */
