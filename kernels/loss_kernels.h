/*
 * loss_kernels.h - launchers for softmax, log-softmax and the losses (see
 * cudl/loss.h). The loss forward needs a workspace of
 * cudl_loss_workspace(n) floats of device memory.
 */
#ifndef CUDL_LOSS_KERNELS_H
#define CUDL_LOSS_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t cudl_launch_softmax_forward(cudaStream_t stream, const float *x,
                                        float *y, int64_t rows, int64_t cols,
                                        int is_log);
cudaError_t cudl_launch_softmax_backward(cudaStream_t stream, const float *y,
                                         const float *dy, float *dx,
                                         int64_t rows, int64_t cols,
                                         int is_log);
size_t cudl_loss_workspace(int64_t n);
cudaError_t cudl_launch_loss_forward(cudaStream_t stream, int kind,
                                     const float *a, const float *b,
                                     float *loss, int64_t n, int mean,
                                     float *workspace);
cudaError_t cudl_launch_loss_backward(cudaStream_t stream, int kind,
                                      const float *a, const float *b, float *d,
                                      int64_t n, int mean, float grad);

/* Softmax cross-entropy; the forward needs cudl_cross_entropy_workspace
 * (rows) floats. A label outside [0, cols) makes its row NaN. */
size_t cudl_cross_entropy_workspace(int64_t rows);
cudaError_t cudl_launch_cross_entropy_forward(
    cudaStream_t stream, const float *x, const int32_t *labels, float *loss,
    int64_t rows, int64_t cols, float smoothing, int mean, float *workspace);
cudaError_t cudl_launch_cross_entropy_backward(
    cudaStream_t stream, const float *x, const int32_t *labels, float *dx,
    int64_t rows, int64_t cols, float smoothing, int mean, float grad);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_LOSS_KERNELS_H */
