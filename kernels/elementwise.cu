/*
 * elementwise.cu - elementwise arithmetic on CUDA: product, scaled sum,
 * scaling, the full sum (block partial sums, then one thread adds them in
 * order in double: deterministic) and the count of non-finite values.
 * Kernels first, then the backend entries.
 *
 * All but the sum (f32 only) take f32, bf16 and f16 data: their kernels are
 * templates over the storage type T (dtype.cuh), computing in f32 and
 * rounding each stored value once. The three elementwise ops are
 * memory-bound: when every pointer is 16-byte aligned (pool storage always
 * is) each thread moves 16-byte vectors (vec.cuh: four f32 or eight 16-bit
 * values) in a grid-stride loop and the last n % width elements are done
 * one by one; otherwise the scalar loop does all of it, as in
 * activation.cu.
 */
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"
#include "kernels/vec.cuh"

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
template <typename T, typename Op>
__global__ void elementwise_kernel(const T *a, const T *b, T *out, int64_t n,
                                   Op op, bool vectorised) {
  using V = cudl__vec16<T>;
  constexpr int width = sizeof(V) / sizeof(T);
  int64_t tail = 0;
  if (vectorised) {
    const int64_t nv = n / width;
    const V *av = reinterpret_cast<const V *>(a);
    const V *bv = reinterpret_cast<const V *>(b);
    V *outv = reinterpret_cast<V *>(out);
    for (int64_t i = CUDL_GRID_START; i < nv; i += CUDL_GRID_STRIDE) {
      const V x = av[i];
      const V y = b != nullptr ? bv[i] : x;
      V r;
#pragma unroll
      for (int k = 0; k < width; ++k)
        r.v[k] =
            cudl__from_f32<T>(op(cudl__to_f32(x.v[k]), cudl__to_f32(y.v[k])));
      outv[i] = r;
    }
    tail = nv * width;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    cudl__store(out, i,
                op(cudl__load(a, i),
                   b != nullptr ? cudl__load(b, i) : cudl__load(a, i)));
}

// a, b (NULL for an op of one operand) and out in the storage type T.
template <typename T, typename Op>
void launch_elementwise(cudaStream_t stream, const void *a, const void *b,
                        void *out, int64_t n, Op op) {
  constexpr int width = sizeof(cudl__vec16<T>) / sizeof(T);
  const bool vec = cudl__vec_aligned<T, width>(a) &&
                   cudl__vec_aligned<T, width>(b) &&
                   cudl__vec_aligned<T, width>(out);
  elementwise_kernel<<<cudl__grid_for(vec ? (n + width - 1) / width : n),
                       CUDL_BLOCK_SIZE, 0, stream>>>(
      cudl__typed<T>(a), cudl__typed<T>(b), cudl__typed<T>(out), n, op, vec);
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
// in any order. Widening to f32 keeps a NaN a NaN and an infinity
// infinite, so the 16-bit counts are those of the stored values.
template <typename T>
__global__ void count_nonfinite_kernel(const T *x, int64_t n,
                                       unsigned long long *counts) {
  unsigned long long nan = 0, inf = 0;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    const float v = cudl__load(x, i);
    nan += isnan(v) ? 1u : 0u;
    inf += isinf(v) ? 1u : 0u;
  }
  nan = cudl__block_sum(nan);
  __syncthreads();  // the block sum's shared memory is reused just below
  inf = cudl__block_sum(inf);
  if (threadIdx.x == 0) {
    if (nan != 0) atomicAdd(&counts[0], nan);
    if (inf != 0) atomicAdd(&counts[1], inf);
  }
}

// ---- the entries' bodies, one template over T each ----

template <typename T>
cudl_status add_scaled(cudl_context *ctx, const void *a, float alpha,
                       const void *b, void *out, int64_t n) {
  CUDA_ENTER(ctx, s);
  launch_elementwise<T>(s->stream, a, b, out, n, AddScaled{alpha});
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status scale(cudl_context *ctx, const void *a, float alpha, void *out,
                  int64_t n) {
  CUDA_ENTER(ctx, s);
  launch_elementwise<T>(s->stream, a, nullptr, out, n, Scale{alpha});
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status mul(cudl_context *ctx, const void *a, const void *b, void *out,
                int64_t n) {
  CUDA_ENTER(ctx, s);
  launch_elementwise<T>(s->stream, a, b, out, n, Mul());
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status count_nonfinite(cudl_context *ctx, const void *x, int64_t n,
                            int64_t counts[2]) {
  unsigned long long host[2] = {0, 0};
  CUDA_ENTER(ctx, s);
  {
    Scratch<unsigned long long> device(s);
    CUDL_CUDA_TRY(ctx, device.alloc(ctx, 2));
    CUDL_CUDA_TRY(ctx,
                  cudaMemsetAsync(device.get(), 0, sizeof host, s->stream));
    count_nonfinite_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0,
                             s->stream>>>(cudl__typed<T>(x), n, device.get());
    CUDL_CUDA_TRY(ctx, cudaGetLastError());
    CUDL_CUDA_TRY(ctx, cudaMemcpyAsync(host, device.get(), sizeof host,
                                       cudaMemcpyDeviceToHost, s->stream));
  }  // the scratch goes back before the wait, so the wait covers its free
  CUDL_CUDA_TRY(ctx, cudaStreamSynchronize(s->stream));
  counts[0] = (int64_t)host[0];
  counts[1] = (int64_t)host[1];
  return CUDL_OK;
}

}  // namespace

// ---- entries ----

CUDL_CUDA_FLOATS(add_scaled,
                 (cudl_context * ctx, const void *a, float alpha, const void *b,
                  void *out, int64_t n),
                 add_scaled, (ctx, a, alpha, b, out, n))

CUDL_CUDA_FLOATS(scale,
                 (cudl_context * ctx, const void *a, float alpha, void *out,
                  int64_t n),
                 scale, (ctx, a, alpha, out, n))

CUDL_CUDA_FLOATS(mul,
                 (cudl_context * ctx, const void *a, const void *b, void *out,
                  int64_t n),
                 mul, (ctx, a, b, out, n))

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

CUDL_CUDA_FLOATS(count_nonfinite,
                 (cudl_context * ctx, const void *x, int64_t n,
                  int64_t counts[2]),
                 count_nonfinite, (ctx, x, n, counts))
