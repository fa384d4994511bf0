/*
 * loss.cu - softmax and the losses on CUDA, kernels then the backend
 * entries: softmax and log-softmax (one block per row: the row's
 * maximum, then the sum of exp(x - max), both block reductions from
 * kernels/reduce.cuh) and the MSE and BCE-with-logits losses (block partial
 * sums added in a fixed order by one thread: deterministic), and the
 * softmax cross-entropy with label smoothing (a label outside [0, cols)
 * makes its row NaN), and the count of a classifier's correct rows.
 */
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
#include "kernels/launch.cuh"
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
      m = cudl__nan_max(m, in[i]);
    m = cudl__block_max(m);
    if (threadIdx.x == 0) row_max = m;
    __syncthreads();
    float s = 0.0f;
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      s += expf(in[i] - row_max);
    s = cudl__block_sum(s);
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
    s = cudl__block_sum(s);
    if (threadIdx.x == 0) row_dot = s;
    __syncthreads();
    for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
      d[i] = is_log ? g[i] - expf(out[i]) * row_dot : out[i] * (g[i] - row_dot);
    __syncthreads();
  }
}

__device__ float loss_term(cudl_loss_kind kind, float a, float b) {
  if (kind == CUDL_LOSS_MSE) return (a - b) * (a - b);
  return fmaxf(a, 0.0f) - a * b + log1pf(expf(-fabsf(a)));
}

__device__ float loss_derivative(cudl_loss_kind kind, float a, float b) {
  if (kind == CUDL_LOSS_MSE) return 2.0f * (a - b);
  // sigmoid without overflow: exp of -|a| only.
  const float e = expf(-fabsf(a));
  const float s = a >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  return s - b;
}

__global__ void loss_partial_kernel(cudl_loss_kind kind, const float *a,
                                    const float *b, int64_t n, float *partial) {
  float s = 0.0f;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    s += loss_term(kind, a[i], b[i]);
  s = cudl__block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

// One block adds the values in double (a single thread adding 65536 row
// losses one after another took 2.5 ms on an H200).
__global__ void sum_to_loss_kernel(const float *values, int64_t count, int mean,
                                   int64_t n, float *loss) {
  double s = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) s += values[i];
  s = cudl__block_sum(s);
  if (threadIdx.x == 0) loss[0] = (float)(mean ? s / (double)n : s);
}

__global__ void loss_backward_kernel(cudl_loss_kind kind, const float *a,
                                     const float *b, float *d, int64_t n,
                                     float scale) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    d[i] = scale * loss_derivative(kind, a[i], b[i]);
}

// Block-wide log-sum-exp and plain sum of one row; valid in every thread.
__device__ void row_statistics(const float *row, int64_t cols, float *lse,
                               float *sum) {
  __shared__ float shared_max, shared_lse, shared_sum;
  float m = row[0];
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x)
    m = cudl__nan_max(m, row[i]);
  m = cudl__block_max(m);
  if (threadIdx.x == 0) shared_max = m;
  __syncthreads();
  float e = 0.0f, s = 0.0f;
  for (int64_t i = threadIdx.x; i < cols; i += blockDim.x) {
    e += expf(row[i] - shared_max);
    s += row[i];
  }
  e = cudl__block_sum(e);
  __syncthreads();  // the block sum's shared memory is reused just below
  s = cudl__block_sum(s);
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

// One block: each thread finds the class of its rows (the first largest
// value, NaNs skipped) and the block adds the integer counts, so the result
// is exact whatever the order.
__global__ void count_hits_kernel(const float *x, const int32_t *labels,
                                  float *hits, int64_t rows, int64_t cols) {
  int count = 0;
  for (int64_t r = threadIdx.x; r < rows; r += blockDim.x) {
    const float *row = x + r * cols;
    int64_t best = -1;
    for (int64_t k = 0; k < cols; ++k)
      if (!isnan(row[k]) && (best < 0 || row[k] > row[best])) best = k;
    count += best >= 0 && best == labels[r];
  }
  count = cudl__block_sum(count);
  if (threadIdx.x == 0) hits[0] = (float)count;
}

unsigned row_grid(int64_t rows) {
  return (unsigned)(rows < CUDL_MAX_GRID ? rows : CUDL_MAX_GRID);
}

}  // namespace

// ---- entries ----

extern "C" cudl_status cudl__cuda_softmax_forward(cudl_context *ctx,
                                                  const void *x, void *y,
                                                  int64_t rows, int64_t cols,
                                                  int is_log) {
  CUDA_ENTER(ctx, s);
  softmax_forward_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__f32(x), cudl__f32(y), rows, cols, is_log);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_softmax_backward(cudl_context *ctx,
                                                   const void *y,
                                                   const void *dy, void *dx,
                                                   int64_t rows, int64_t cols,
                                                   int is_log) {
  CUDA_ENTER(ctx, s);
  softmax_backward_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__f32(y), cudl__f32(dy), cudl__f32(dx), rows, cols, is_log);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_loss_forward(cudl_context *ctx,
                                               cudl_loss_kind kind,
                                               const void *a, const void *b,
                                               float *loss, int64_t n,
                                               int mean) {
  const int parts = cudl__reduce_parts(n);
  CUDA_ENTER(ctx, s);
  Scratch<float> partial(s);
  CUDL_CUDA_TRY(ctx, partial.alloc(ctx, (size_t)parts));
  loss_partial_kernel<<<parts, CUDL_BLOCK_SIZE, 0, s->stream>>>(
      kind, cudl__f32(a), cudl__f32(b), n, partial.get());
  sum_to_loss_kernel<<<1, CUDL_BLOCK_SIZE, 0, s->stream>>>(partial.get(), parts,
                                                           mean, n, loss);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_loss_backward(cudl_context *ctx,
                                                cudl_loss_kind kind,
                                                const void *a, const void *b,
                                                void *d, int64_t n, int mean,
                                                float grad) {
  const float scale = mean ? (float)((double)grad / (double)n) : grad;
  CUDA_ENTER(ctx, s);
  loss_backward_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      kind, cudl__f32(a), cudl__f32(b), cudl__f32(d), n, scale);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_cross_entropy_forward(
    cudl_context *ctx, const void *x, const int32_t *labels, float *loss,
    int64_t rows, int64_t cols, float smoothing, int mean) {
  CUDA_ENTER(ctx, s);
  Scratch<float> row_loss(s);
  CUDL_CUDA_TRY(ctx, row_loss.alloc(ctx, rows > 0 ? (size_t)rows : 1));
  if (rows > 0)
    cross_entropy_rows_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0,
                                s->stream>>>(
        cudl__f32(x), labels, row_loss.get(), rows, cols, smoothing);
  sum_to_loss_kernel<<<1, CUDL_BLOCK_SIZE, 0, s->stream>>>(row_loss.get(), rows,
                                                           mean, rows, loss);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_cross_entropy_backward(
    cudl_context *ctx, const void *x, const int32_t *labels, void *dx,
    int64_t rows, int64_t cols, float smoothing, int mean, float grad) {
  const float scale = mean ? (float)((double)grad / (double)rows) : grad;
  CUDA_ENTER(ctx, s);
  cross_entropy_backward_kernel<<<row_grid(rows), CUDL_BLOCK_SIZE, 0,
                                  s->stream>>>(
      cudl__f32(x), labels, cudl__f32(dx), rows, cols, smoothing, scale);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_count_hits(cudl_context *ctx, const void *x,
                                             const int32_t *labels, float *hits,
                                             int64_t rows, int64_t cols) {
  CUDA_ENTER(ctx, s);
  count_hits_kernel<<<1, CUDL_BLOCK_SIZE, 0, s->stream>>>(cudl__f32(x), labels,
                                                          hits, rows, cols);
  return CUDL_CUDA_LAUNCHED(ctx);
}
