/*
 * elementwise_kernels.h - launchers for elementwise arithmetic and full
 * sums (see cudl/elementwise.h). The sum needs cudl_sum_workspace(n)
 * floats of device memory.
 */
#ifndef CUDL_ELEMENTWISE_KERNELS_H
#define CUDL_ELEMENTWISE_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

cudaError_t cudl_launch_mul_f32(cudaStream_t stream, const float *a,
                                const float *b, float *out, int64_t n);
cudaError_t cudl_launch_add_scaled_f32(cudaStream_t stream, const float *a,
                                       float alpha, const float *b, float *out,
                                       int64_t n);
cudaError_t cudl_launch_scale_f32(cudaStream_t stream, const float *a,
                                  float alpha, float *out, int64_t n);
/* counts[0] += NaN values of x[0, n), counts[1] += infinities (counts
 * zeroed by the caller). */
cudaError_t cudl_launch_count_nonfinite_f32(cudaStream_t stream,
                                            const float *x, int64_t n,
                                            unsigned long long *counts);
size_t cudl_sum_workspace(int64_t n);
cudaError_t cudl_launch_sum_f32(cudaStream_t stream, const float *x, float *out,
                                int64_t n, int mean, float *workspace);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_ELEMENTWISE_KERNELS_H */
