/*
 * elementwise_kernels.cu - product, scaled sum, scaling and the full sum
 * (block partial sums, then one thread adds them in order in double:
 * deterministic).
 *
 * The three elementwise ops are memory-bound: when every pointer is 16-byte
 * aligned (pool storage always is) each thread moves float4 vectors in a
 * grid-stride loop and the last n % 4 elements are done one by one;
 * otherwise the scalar loop does all of it, as in activation_kernels.cu.
 */
#include "kernels/elementwise_kernels.h"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"

namespace {

struct Mul {
  __device__ float operator()(float a, float b) const { return a * b; }
};
struct AddScaled {
  float alpha;
  __device__ float operator()(float a, float b) const { return a + alpha * b; }
};
struct Scale {
  float alpha;
  __device__ float operator()(float a, float) const { return alpha * a; }
};

/* out = op(a, b) elementwise; b is not read when it is NULL (op ignores
 * its second argument then). */
template <typename Op>
__global__ void elementwise_kernel(const float *a, const float *b, float *out,
                                   int64_t n, Op op, bool vectorised) {
  int64_t tail = 0;
  if (vectorised) {
    const int64_t n4 = n / 4;
    const float4 *a4 = reinterpret_cast<const float4 *>(a);
    const float4 *b4 = reinterpret_cast<const float4 *>(b);
    float4 *out4 = reinterpret_cast<float4 *>(out);
    for (int64_t i = CUDL_GRID_START; i < n4; i += CUDL_GRID_STRIDE) {
      const float4 x = a4[i];
      const float4 y = b != nullptr ? b4[i] : x;
      float4 r;
      r.x = op(x.x, y.x);
      r.y = op(x.y, y.y);
      r.z = op(x.z, y.z);
      r.w = op(x.w, y.w);
      out4[i] = r;
    }
    tail = n4 * 4;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    out[i] = op(a[i], b != nullptr ? b[i] : a[i]);
}

template <typename Op>
cudaError_t launch_elementwise(cudaStream_t stream, const float *a,
                               const float *b, float *out, int64_t n, Op op) {
  const bool vec = cudl_aligned16(a) && cudl_aligned16(out) &&
                   (b == nullptr || cudl_aligned16(b));
  (void)cudaGetLastError();
  elementwise_kernel<<<cudl_grid_for(vec ? (n + 3) / 4 : n), CUDL_BLOCK_SIZE, 0,
                       stream>>>(a, b, out, n, op, vec);
  return cudaGetLastError();
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
  return launch_elementwise(stream, a, b, out, n, Mul());
}

extern "C" cudaError_t cudl_launch_add_scaled_f32(cudaStream_t stream,
                                                  const float *a, float alpha,
                                                  const float *b, float *out,
                                                  int64_t n) {
  return launch_elementwise(stream, a, b, out, n, AddScaled{alpha});
}

extern "C" cudaError_t cudl_launch_scale_f32(cudaStream_t stream,
                                             const float *a, float alpha,
                                             float *out, int64_t n) {
  return launch_elementwise(stream, a, nullptr, out, n, Scale{alpha});
}

namespace {

// Counts are integers, so adding the blocks' totals atomically is exact
// in any order.
__global__ void count_nonfinite_kernel(const float *x, int64_t n,
                                       unsigned long long *counts) {
  unsigned long long nan = 0, inf = 0;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    nan += isnan(x[i]) ? 1u : 0u;
    inf += isinf(x[i]) ? 1u : 0u;
  }
  nan = cudl_block_sum(nan);
  __syncthreads();  // the block sum's shared memory is reused just below
  inf = cudl_block_sum(inf);
  if (threadIdx.x == 0) {
    if (nan != 0) atomicAdd(&counts[0], nan);
    if (inf != 0) atomicAdd(&counts[1], inf);
  }
}

}  // namespace

extern "C" cudaError_t cudl_launch_count_nonfinite_f32(
    cudaStream_t stream, const float *x, int64_t n,
    unsigned long long *counts) {
  (void)cudaGetLastError();
  count_nonfinite_kernel<<<cudl_grid_for(n), CUDL_BLOCK_SIZE, 0, stream>>>(
      x, n, counts);
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
