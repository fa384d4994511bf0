/*
 * loss_kernels.cu - softmax and log-softmax (one block per row: the row's
 * maximum, then the sum of exp(x - max), both block reductions from
 * kernels/reduce.cuh) and the MSE and BCE-with-logits losses (block partial
 * sums added in a fixed order by one thread: deterministic).
 */
#include "core/backend.h"
#include "kernels/launch.cuh"
#include "kernels/loss_kernels.h"
#include "kernels/reduce.cuh"

namespace {

__global__ void softmax_forward_kernel(const float *x, float *y, int64_t rows,
                                       int64_t cols, int is_log) {
  __shared__ float row_max, row_sum;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *in = x + r * cols;
    float *out = y + r * cols;
    float m = in[0];
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      m = cudl_nan_max(m, in[i]);
    m = cudl_block_max(m);
    if (threadIdx.x == 0) row_max = m;
    __syncthreads();
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      s += expf(in[i] - row_max);
    s = cudl_block_sum(s);
    if (threadIdx.x == 0) row_sum = s;
    __syncthreads();
    const float log_sum = logf(row_sum);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      out[i] =
          is_log ? in[i] - row_max - log_sum : expf(in[i] - row_max) / row_sum;
    __syncthreads();  // row_max and row_sum are rewritten for the next row
  }
}

__global__ void softmax_backward_kernel(const float *y, const float *dy,
                                        float *dx, int64_t rows, int64_t cols,
                                        int is_log) {
  __shared__ float row_dot;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *out = y + r * cols, *g = dy + r * cols;
    float *d = dx + r * cols;
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      s += is_log ? g[i] : g[i] * out[i];
    s = cudl_block_sum(s);
    if (threadIdx.x == 0) row_dot = s;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      d[i] = is_log ? g[i] - expf(out[i]) * row_dot : out[i] * (g[i] - row_dot);
    __syncthreads();
  }
}

__device__ float loss_term(int kind, float a, float b) {
  if (kind == CUDL_LOSS_MSE) return (a - b) * (a - b);
  return fmaxf(a, 0.0f) - a * b + log1pf(expf(-fabsf(a)));
}

__device__ float loss_derivative(int kind, float a, float b) {
  if (kind == CUDL_LOSS_MSE) return 2.0f * (a - b);
  // sigmoid without overflow: exp of -|a| only.
  const float e = expf(-fabsf(a));
  const float s = a >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  return s - b;
}

int loss_parts(int64_t n) {
  int64_t parts = (n + CUDL_BLOCK_SIZE * 4 - 1) / (CUDL_BLOCK_SIZE * 4);
  if (parts > 1024) parts = 1024;
  return parts < 1 ? 1 : (int)parts;
}

__global__ void loss_partial_kernel(int kind, const float *a, const float *b,
                                    int64_t n, float *partial) {
  float s = 0.0f;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    s += loss_term(kind, a[i], b[i]);
  s = cudl_block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block adds the values in double (a single thread adding 65536 row
// losses one after another took 2.5 ms on an H200).
__global__ void sum_to_loss_kernel(const float *values, int64_t count,
                                   int mean, int64_t n, float *loss) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += values[i];
  s = cudl_block_sum(s);
  if (threadIdx.x == 0) loss[0] = (float)(mean ? s / (double)n : s);
}

__global__ void loss_backward_kernel(int kind, const float *a, const float *b,
                                     float *d, int64_t n, float scale) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    d[i] = scale * loss_derivative(kind, a[i], b[i]);
}

// Block-wide log-sum-exp and plain sum of one row; valid in every thread.
__device__ void row_statistics(const float *row, int64_t cols, float *lse,
                               float *sum) {
  __shared__ float shared_max, shared_lse, shared_sum;
  float m = row[0];
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    m = cudl_nan_max(m, row[i]);
  m = cudl_block_max(m);
  if (threadIdx.x == 0) shared_max = m;
  __syncthreads();
  float e = 0.0f, s = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    e += expf(row[i] - shared_max);
    s += row[i];
  }
  e = cudl_block_sum(e);
  __syncthreads();  // the block sum's shared memory is reused just below
  s = cudl_block_sum(s);
  if (threadIdx.x == 0) {
    shared_lse = shared_max + logf(e);
    shared_sum = s;
  }
  __syncthreads();
  *lse = shared_lse;
  *sum = shared_sum;
  __syncthreads();  // the shared values are rewritten for the next row
}

__global__ void cross_entropy_rows_kernel(const float *x, const int32_t *labels,
                                          float *row_loss, int64_t rows,
                                          int64_t cols, float smoothing) {
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *row = x + r * cols;
    float lse, sum;
    row_statistics(row, cols, &lse, &sum);
    if (threadIdx.x == 0) {
      const int32_t y = labels[r];
      row_loss[r] = (y < 0 || y >= cols)
                        ? __int_as_float(0x7fc00000)  // NaN: invalid label
                        : lse - (1.0f - smoothing) * row[y] -
                              smoothing / (float)cols * sum;
    }
  }
}

__global__ void cross_entropy_backward_kernel(const float *x,
                                              const int32_t *labels, float *dx,
                                              int64_t rows, int64_t cols,
                                              float smoothing, float scale) {
  const float off = smoothing / (float)cols;
  for (int64_t r = blockIdx.x; r < rows; r += gridDim.x) {
    const float *row = x + r * cols;
    float lse, sum;
    const int32_t y = labels[r];
    const bool valid = y >= 0 && y < cols;
    row_statistics(row, cols, &lse, &sum);
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
      const float target = off + (i == y ? 1.0f - smoothing : 0.0f);
      dx[r * cols + i] = valid ? scale * (expf(row[i] - lse) - target)
                               : __int_as_float(0x7fc00000);
    }
  }
}

unsigned row_grid(int64_t rows) {
  return (unsigned)(rows < CUDL_MAX_GRID ? rows : CUDL_MAX_GRID);
}

}  // namespace

extern "C" cudaError_t cudl_launch_softmax_forward(cudaStream_t stream,
                                                   const float *x, float *y,
                                                   int64_t rows, int64_t cols,
                                                   int is_log) {
  (void)cudaGetLastError();  // report this launch's status, not an older one
  softmax_forward_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0, stream>>>(
      x, y, rows, cols, is_log);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_softmax_backward(cudaStream_t stream,
                                                    const float *y,
                                                    const float *dy, float *dx,
                                                    int64_t rows, int64_t cols,
                                                    int is_log) {
  (void)cudaGetLastError();
  softmax_backward_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0, stream>>>(
      y, dy, dx, rows, cols, is_log);
  return cudaGetLastError();
}

extern "C" size_t cudl_loss_workspace(int64_t n) {
  return (size_t)loss_parts(n);
}

extern "C" cudaError_t cudl_launch_loss_forward(cudaStream_t stream, int kind,
                                                const float *a, const float *b,
                                                float *loss, int64_t n,
                                                int mean, float *workspace) {
  const int parts = loss_parts(n);
  (void)cudaGetLastError();
  loss_partial_kernel<<<parts, CUDL_BLOCK_SIZE, 0, stream>>>(kind, a, b, n,
                                                             workspace);
  sum_to_loss_kernel<<<1, CUDL_BLOCK_SIZE, 0, stream>>>(workspace, parts, mean,
                                                        n, loss);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_loss_backward(cudaStream_t stream, int kind,
                                                 const float *a, const float *b,
                                                 float *d, int64_t n, int mean,
                                                 float grad) {
  const float scale = mean ? (float)((double)grad / (double)n) : grad;
  (void)cudaGetLastError();
  loss_backward_kernel<<<cudl_grid_for(n), CUDL_BLOCK_SIZE, 0, stream>>>(
      kind, a, b, d, n, scale);
  return cudaGetLastError();
}

extern "C" size_t cudl_cross_entropy_workspace(int64_t rows) {
  return rows > 0 ? (size_t)rows : 1;
}

extern "C" cudaError_t cudl_launch_cross_entropy_forward(
    cudaStream_t stream, const float *x, const int32_t *labels, float *loss,
    int64_t rows, int64_t cols, float smoothing, int mean, float *workspace) {
  (void)cudaGetLastError();
  if (rows > 0)
    cross_entropy_rows_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0, stream>>>(
        x, labels, workspace, rows, cols, smoothing);
  sum_to_loss_kernel<<<1, CUDL_BLOCK_SIZE, 0, stream>>>(workspace, rows, mean,
                                                        rows, loss);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_launch_cross_entropy_backward(
    cudaStream_t stream, const float *x, const int32_t *labels, float *dx,
    int64_t rows, int64_t cols, float smoothing, int mean, float grad) {
  const float scale = mean ? (float)((double)grad / (double)rows) : grad;
  (void)cudaGetLastError();
  cross_entropy_backward_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0, stream>>>(
      x, labels, dx, rows, cols, smoothing, scale);
  return cudaGetLastError();
}
