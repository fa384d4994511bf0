/*
 * activation_kernels.h - launchers for the elementwise activations.
 * `kind` is a cudl_activation_kind (src/core/backend.h); y may equal x and
 * dx may equal dy. Each queues one kernel on `stream` and returns the
 * launch status.
 */
#ifndef CUDL_ACTIVATION_KERNELS_H
#define CUDL_ACTIVATION_KERNELS_H

#include <stddef.h>
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

/* PReLU on x viewed as [outer, channels, inner]. Backward needs a
 * workspace of cudl_prelu_backward_workspace(...) floats (device memory,
 * the caller's), and writes dslope deterministically. */
cudaError_t cudl_launch_prelu_forward(cudaStream_t stream, const float *x,
                                      const float *slope, float *y,
                                      int64_t outer, int64_t channels,
                                      int64_t inner);
size_t cudl_prelu_backward_workspace(int64_t outer, int64_t channels,
                                     int64_t inner);
cudaError_t cudl_launch_prelu_backward(cudaStream_t stream, const float *x,
                                       const float *slope, const float *dy,
                                       float *dx, float *dslope, int64_t outer,
                                       int64_t channels, int64_t inner,
                                       float *workspace);

/* RReLU forward with Philox slopes (training) or the fixed mean slope. */
cudaError_t cudl_launch_rrelu_forward(cudaStream_t stream, const float *x,
                                      float *noise, float *y, int64_t n,
                                      float lower, float upper, int training,
                                      uint64_t seed, uint64_t offset);

/* Diagnostics: active[u] = 1 where some element of unit u of x, viewed as
 * [outer, units, inner], is positive; other entries are left alone. */
cudaError_t cudl_launch_unit_activity(cudaStream_t stream, const float *x,
                                      float *active, int64_t outer,
                                      int64_t units, int64_t inner);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_ACTIVATION_KERNELS_H */
