/*
 * elementwise.cu - elementwise arithmetic on CUDA: product, scaled sum,
 * scaling, the full sum (block partial sums, then one thread adds them in
 * order in double: deterministic) and the count of non-finite values.
 * Kernels first, then the backend entries.
 *
 * The three elementwise ops are memory-bound: when every pointer is 16-byte
 * aligned (pool storage always is) each thread moves float4 vectors in a
 * grid-stride loop and the last n % 4 elements are done one by one;
 * otherwise the scalar loop does all of it, as in activation.cu.
 */
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
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
void launch_elementwise(cudaStream_t stream, const float *a, const float *b,
                        float *out, int64_t n, Op op) {
  const bool vec = cudl__aligned16(a) && cudl__aligned16(out) &&
                   (b == nullptr || cudl__aligned16(b));
  elementwise_kernel<<<cudl__grid_for(vec ? (n + 3) / 4 : n), CUDL_BLOCK_SIZE,
                       0, stream>>>(a, b, out, n, op, vec);
}

__global__ void sum_partial_kernel(const float *x, int64_t n, float *partial) {
  float s = 0.0f;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) s += x[i];
  s = cudl__block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void sum_finish_kernel(const float *partial, int parts, int64_t n,
                                  int mean, float *out) {
  double s = 0.0;
  for (int p = 0; p < parts; ++p) s += partial[p];
  out[0] = (float)(mean ? s / (double)n : s);
}

// Counts are integers, so adding the blocks' totals atomically is exact
// in any order.
__global__ void count_nonfinite_kernel(const float *x, int64_t n,
                                       unsigned long long *counts) {
  unsigned long long nan = 0, inf = 0;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    nan += isnan(x[i]) ? 1u : 0u;
    inf += isinf(x[i]) ? 1u : 0u;
  }
  nan = cudl__block_sum(nan);
  __syncthreads();  // the block sum's shared memory is reused just below
  inf = cudl__block_sum(inf);
  if (threadIdx.x == 0) {
    if (nan != 0) atomicAdd(&counts[0], nan);
    if (inf != 0) atomicAdd(&counts[1], inf);
  }
}

}  // namespace

// ---- entries ----

extern "C" cudl_status cudl__cuda_add_scaled(cudl_context *ctx, const void *a,
                                             float alpha, const void *b,
                                             void *out, int64_t n) {
  CUDA_ENTER(ctx, s);
  launch_elementwise(s->stream, cudl__f32(a), cudl__f32(b), cudl__f32(out), n,
                     AddScaled{alpha});
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_scale(cudl_context *ctx, const void *a,
                                        float alpha, void *out, int64_t n) {
  CUDA_ENTER(ctx, s);
  launch_elementwise(s->stream, cudl__f32(a), nullptr, cudl__f32(out), n,
                     Scale{alpha});
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_mul(cudl_context *ctx, const void *a,
                                      const void *b, void *out, int64_t n) {
  CUDA_ENTER(ctx, s);
  launch_elementwise(s->stream, cudl__f32(a), cudl__f32(b), cudl__f32(out), n,
                     Mul());
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_sum(cudl_context *ctx, const void *x,
                                      void *out, int64_t n, int mean) {
  const int parts = cudl__reduce_parts(n);
  CUDA_ENTER(ctx, s);
  Scratch<float> partial(s);
  CUDL_CUDA_TRY(ctx, partial.alloc(ctx, (size_t)parts));
  sum_partial_kernel<<<parts, CUDL_BLOCK_SIZE, 0, s->stream>>>(cudl__f32(x), n,
                                                               partial.get());
  sum_finish_kernel<<<1, 1, 0, s->stream>>>(partial.get(), parts, n, mean,
                                            cudl__f32(out));
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_count_nonfinite(cudl_context *ctx,
                                                  const void *x, int64_t n,
                                                  int64_t counts[2]) {
  unsigned long long host[2] = {0, 0};
  CUDA_ENTER(ctx, s);
  {
    Scratch<unsigned long long> device(s);
    CUDL_CUDA_TRY(ctx, device.alloc(ctx, 2));
    CUDL_CUDA_TRY(ctx,
                  cudaMemsetAsync(device.get(), 0, sizeof host, s->stream));
    count_nonfinite_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0,
                             s->stream>>>(cudl__f32(x), n, device.get());
    CUDL_CUDA_TRY(ctx, cudaGetLastError());
    CUDL_CUDA_TRY(ctx, cudaMemcpyAsync(host, device.get(), sizeof host,
                                       cudaMemcpyDeviceToHost, s->stream));
  }  // the scratch goes back before the wait, so the wait covers its free
  CUDL_CUDA_TRY(ctx, cudaStreamSynchronize(s->stream));
  counts[0] = (int64_t)host[0];
  counts[1] = (int64_t)host[1];
  return CUDL_OK;
}
