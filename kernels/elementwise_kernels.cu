/*
 * elementwise_kernels.cu - product, scaled sum, scaling (grid-stride loops)
 * and the full sum (block partial sums, then one thread adds them in order
 * in double: deterministic).
 */
#include "kernels/elementwise_kernels.h"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"

namespace {

__global__ void mul_kernel(const float *a, const float *b, float *out,
                           int64_t n) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    out[i] = a[i] * b[i];
}

__global__ void add_scaled_kernel(const float *a, float alpha, const float *b,
                                  float *out, int64_t n) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    out[i] = a[i] + alpha * b[i];
}

__global__ void scale_kernel(const float *a, float alpha, float *out,
                             int64_t n) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    out[i] = alpha * a[i];
}

int sum_parts(int64_t n) {
  int64_t parts = (n + CUDL_BLOCK_SIZE * 4 - 1) / (CUDL_BLOCK_SIZE * 4);
  if (parts > 1024) parts = 1024;
  return parts < 1 ? 1 : (int)parts;
}

__global__ void sum_partial_kernel(const float *x, int64_t n, float *partial) {
  float s = 0.0f;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) s += x[i];
  s = cudl_block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_finish_kernel(const float *partial, int parts, int64_t n,
                                  int mean, float *out) {
  double s = 0.0;
  for (int p = 0; p < parts; ++p) s += partial[p];
  out[0] = (float)(mean ? s / (double)n : s);
}

}  // namespace

/* Each launcher clears an error the calling thread may have left pending,
 * so that the status it returns is its own launch's. */

extern "C" cudaError_t cudl_launch_mul_f32(cudaStream_t stream, const float *a,
                                           const float *b, float *out,
                                           int64_t n) {
  (void)cudaGetLastError();
  mul_kernel<<<cudl_grid_for(n), CUDL_BLOCK_SIZE, 0, stream>>>(a, b, out, n);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_add_scaled_f32(cudaStream_t stream,
                                                  const float *a, float alpha,
                                                  const float *b, float *out,
                                                  int64_t n) {
  (void)cudaGetLastError();
  add_scaled_kernel<<<cudl_grid_for(n), CUDL_BLOCK_SIZE, 0, stream>>>(
      a, alpha, b, out, n);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_scale_f32(cudaStream_t stream,
                                             const float *a, float alpha,
                                             float *out, int64_t n) {
  (void)cudaGetLastError();
  scale_kernel<<<cudl_grid_for(n), CUDL_BLOCK_SIZE, 0, stream>>>(a, alpha, out,
                                                                 n);
  return cudaGetLastError();
}

extern "C" size_t cudl_sum_workspace(int64_t n) { return (size_t)sum_parts(n); }

extern "C" cudaError_t cudl_launch_sum_f32(cudaStream_t stream, const float *x,
                                           float *out, int64_t n, int mean,
                                           float *workspace) {
  const int parts = sum_parts(n);
  (void)cudaGetLastError();
  sum_partial_kernel<<<parts, CUDL_BLOCK_SIZE, 0, stream>>>(x, n, workspace);
  sum_finish_kernel<<<1, 1, 0, stream>>>(workspace, parts, n, mean, out);
  return cudaGetLastError();
}
