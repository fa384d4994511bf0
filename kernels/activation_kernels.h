/*
 * activation_kernels.h - launchers for the elementwise activations.
 * `kind` is a cudl_activation_kind (src/core/backend.h); y may equal x and
 * dx may equal dy. Each queues one kernel on `stream` and returns the
 * launch status.
 */
#ifndef CUDL_ACTIVATION_KERNELS_H
#define CUDL_ACTIVATION_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t cudl_launch_activation_forward(cudaStream_t stream, int kind,
                                           float alpha, const float *x,
                                           float *y, int64_t n);
cudaError_t cudl_launch_activation_backward(cudaStream_t stream, int kind,
                                            float alpha, const float *saved,
                                            const float *dy, float *dx,
                                            int64_t n);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_ACTIVATION_KERNELS_H */
