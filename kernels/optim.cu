/*
 * optim.cu - the optimizer updates on CUDA, on f32 master weights: SGD
 * and Adam(W) steps, and gradient-norm clipping (the norm and the
 * scaling). Kernels first, then the backend entries. The norm alone is
 * also defined for bf16 and f16 data (core/ops.def), each value widened
 * exactly to f32 (kernels/dtype.cuh) and summed as below.
 *
 * Each update is one grid-stride kernel over the whole parameter arena
 * (params, grads and the state read and written once), moving float4
 * vectors when every pointer is 16-byte aligned (pool storage always is)
 * and doing the last n % 4 elements one by one, as activation.cu.
 *
 * The arithmetic is spelled out with the IEEE intrinsics (__fmaf_rn,
 * __fmul_rn, __fadd_rn, __fdiv_rn, __fsqrt_rn): nvcc would otherwise
 * contract a * b + c into fma wherever it likes, and these updates must do
 * exactly the roundings of src/cpu/cpu_optim.c (PyTorch's own), so that
 * the two backends agree bit for bit.
 *
 * The norm: each thread sums its squares in double (a float's square is
 * exact in double), each block adds its threads' sums (reduce.cuh's block
 * sum, in double), and one thread adds the blocks' sums in order:
 * deterministic. Its scratch comes from the context's pool and goes back
 * stream-ordered, and the scaling kernel reads the norm from device
 * memory, so clipping never synchronises.
 */
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"

namespace {

/* ---- SGD ---- */

/* One element: p, and b (the momentum buffer) when has_buffer. */
__device__ __forceinline__ void sgd_one(float &p, float g, float &b,
                                        const cudl_sgd_step_args &a,
                                        bool has_buffer) {
  float d = g;
  if (a.weight_decay != 0.0f) d = __fmaf_rn(p, a.weight_decay, d);
  if (has_buffer) {
    b = a.first_step
            ? d
            : __fmaf_rn(d, a.one_minus_dampening, __fmul_rn(b, a.momentum));
    d = a.nesterov ? __fmaf_rn(b, a.momentum, d) : b;
  }
  p = __fmaf_rn(d, a.neg_lr, p);
}

__global__ void sgd_kernel(float *params, const float *grads, float *buffer,
                           int64_t n, cudl_sgd_step_args a, bool vectorised) {
  const bool has_buffer = buffer != nullptr;
  int64_t tail = 0;
  if (vectorised) {
    const int64_t n4 = n / 4;
    float4 *p4 = reinterpret_cast<float4 *>(params);
    const float4 *g4 = reinterpret_cast<const float4 *>(grads);
    float4 *b4 = reinterpret_cast<float4 *>(buffer);
    for (int64_t i = CUDL_GRID_START; i < n4; i += CUDL_GRID_STRIDE) {
      float4 p = p4[i];
      const float4 g = g4[i];
      float4 b = has_buffer ? b4[i] : make_float4(0.0f, 0.0f, 0.0f, 0.0f);
      sgd_one(p.x, g.x, b.x, a, has_buffer);
      sgd_one(p.y, g.y, b.y, a, has_buffer);
      sgd_one(p.z, g.z, b.z, a, has_buffer);
      sgd_one(p.w, g.w, b.w, a, has_buffer);
      p4[i] = p;
      if (has_buffer) b4[i] = b;
    }
    tail = n4 * 4;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    float p = params[i];
    float b = has_buffer ? buffer[i] : 0.0f;
    sgd_one(p, grads[i], b, a, has_buffer);
    params[i] = p;
    if (has_buffer) buffer[i] = b;
  }
}

/* ---- Adam and AdamW ---- */

__device__ __forceinline__ void adam_one(float &p, float g, float &m, float &v,
                                         const cudl_adam_step_args &a) {
  if (a.decay != 1.0f) p = __fmul_rn(p, a.decay);                  /* AdamW */
  if (a.weight_decay != 0.0f) g = __fmaf_rn(p, a.weight_decay, g); /* Adam */
  m = __fmaf_rn(g, a.one_minus_beta1, __fmul_rn(m, a.beta1));
  v = __fmaf_rn(__fmul_rn(a.one_minus_beta2, g), g, __fmul_rn(v, a.beta2));
  const float denom =
      __fadd_rn(__fdiv_rn(__fsqrt_rn(v), a.bias_correction2_sqrt), a.eps);
  p = __fadd_rn(p, __fdiv_rn(__fmul_rn(a.neg_step_size, m), denom));
}

__global__ void adam_kernel(float *params, const float *grads, float *exp_avg,
                            float *exp_avg_sq, int64_t n, cudl_adam_step_args a,
                            bool vectorised) {
  int64_t tail = 0;
  if (vectorised) {
    const int64_t n4 = n / 4;
    float4 *p4 = reinterpret_cast<float4 *>(params);
    const float4 *g4 = reinterpret_cast<const float4 *>(grads);
    float4 *m4 = reinterpret_cast<float4 *>(exp_avg);
    float4 *v4 = reinterpret_cast<float4 *>(exp_avg_sq);
    for (int64_t i = CUDL_GRID_START; i < n4; i += CUDL_GRID_STRIDE) {
      float4 p = p4[i], m = m4[i], v = v4[i];
      const float4 g = g4[i];
      adam_one(p.x, g.x, m.x, v.x, a);
      adam_one(p.y, g.y, m.y, v.y, a);
      adam_one(p.z, g.z, m.z, v.z, a);
      adam_one(p.w, g.w, m.w, v.w, a);
      p4[i] = p;
      m4[i] = m;
      v4[i] = v;
    }
    tail = n4 * 4;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    float p = params[i], m = exp_avg[i], v = exp_avg_sq[i];
    adam_one(p, grads[i], m, v, a);
    params[i] = p;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
  }
}

/* ---- the norm ---- */

template <class T>
__global__ void sum_squares_kernel(const T *x, int64_t n, double *partial) {
  double s = 0.0;
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    const double v = (double)cudl__load(x, i);
    s = __dadd_rn(s, __dmul_rn(v, v));
  }
  s = cudl__block_sum(s);
  if (threadIdx.x == 0) partial[blockIdx.x] = s;
}

__global__ void norm_finish_kernel(const double *partial, int parts,
                                   float *norm) {
  double s = 0.0;
  for (int p = 0; p < parts; ++p) s = __dadd_rn(s, partial[p]);
  norm[0] = __double2float_rn(__dsqrt_rn(s));
}

/* ---- clipping's scaling ---- */

__global__ void clip_scale_kernel(float *x, int64_t n, const float *norm,
                                  float max_norm, bool vectorised) {
  /* Every thread reads the one norm and derives the same factor:
   * PyTorch's reciprocal(norm + 1e-6) * max_norm, applied when < 1. */
  const float value = *norm;
  if (!isfinite(value)) return;
  const float coef =
      __fmul_rn(__fdiv_rn(1.0f, __fadd_rn(value, (float)1e-6)), max_norm);
  if (!(coef < 1.0f)) return;
  int64_t tail = 0;
  if (vectorised) {
    const int64_t n4 = n / 4;
    float4 *x4 = reinterpret_cast<float4 *>(x);
    for (int64_t i = CUDL_GRID_START; i < n4; i += CUDL_GRID_STRIDE) {
      float4 v = x4[i];
      v.x = __fmul_rn(v.x, coef);
      v.y = __fmul_rn(v.y, coef);
      v.z = __fmul_rn(v.z, coef);
      v.w = __fmul_rn(v.w, coef);
      x4[i] = v;
    }
    tail = n4 * 4;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    x[i] = __fmul_rn(x[i], coef);
}

/* ---- the norm entry's body, one per storage type T ---- */

template <class T>
cudl_status l2_norm(cudl_context *ctx, const void *x, float *norm, int64_t n) {
  const int parts = cudl__reduce_parts(n);
  CUDA_ENTER(ctx, s);
  Scratch<double> partial(s);
  CUDL_CUDA_TRY(ctx, partial.alloc(ctx, (size_t)parts));
  sum_squares_kernel<<<parts, CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__typed<T>(x), n, partial.get());
  norm_finish_kernel<<<1, 1, 0, s->stream>>>(partial.get(), parts, norm);
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

// ---- entries ----

extern "C" cudl_status cudl__cuda_sgd_step(cudl_context *ctx, float *params,
                                           const float *grads,
                                           float *momentum_buffer, int64_t n,
                                           const cudl_sgd_step_args *args) {
  const bool vec =
      cudl__aligned16(params) && cudl__aligned16(grads) &&
      (momentum_buffer == nullptr || cudl__aligned16(momentum_buffer));
  CUDA_ENTER(ctx, s);
  sgd_kernel<<<cudl__grid_for(vec ? (n + 3) / 4 : n), CUDL_BLOCK_SIZE, 0,
               s->stream>>>(params, grads, momentum_buffer, n, *args, vec);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_adam_step(cudl_context *ctx, float *params,
                                            const float *grads, float *exp_avg,
                                            float *exp_avg_sq, int64_t n,
                                            const cudl_adam_step_args *args) {
  const bool vec = cudl__aligned16(params) && cudl__aligned16(grads) &&
                   cudl__aligned16(exp_avg) && cudl__aligned16(exp_avg_sq);
  CUDA_ENTER(ctx, s);
  adam_kernel<<<cudl__grid_for(vec ? (n + 3) / 4 : n), CUDL_BLOCK_SIZE, 0,
                s->stream>>>(params, grads, exp_avg, exp_avg_sq, n, *args, vec);
  return CUDL_CUDA_LAUNCHED(ctx);
}

CUDL_CUDA_FLOATS(l2_norm,
                 (cudl_context * ctx, const void *x, float *norm, int64_t n),
                 l2_norm, (ctx, x, norm, n))

extern "C" cudl_status cudl__cuda_clip_scale(cudl_context *ctx, void *x,
                                             int64_t n, const float *norm,
                                             float max_norm) {
  const bool vec = cudl__aligned16(x);
  CUDA_ENTER(ctx, s);
  clip_scale_kernel<<<cudl__grid_for(vec ? (n + 3) / 4 : n), CUDL_BLOCK_SIZE, 0,
                      s->stream>>>(cudl__f32(x), n, norm, max_norm, vec);
  return CUDL_CUDA_LAUNCHED(ctx);
}
