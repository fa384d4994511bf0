/*
 * activation.cu - the activations on CUDA: sigmoid, tanh, ReLU, leaky ReLU,
 * ELU, GELU and SiLU forward and backward, each also followed by dropout in
 * one pass (all but sigmoid and tanh), PReLU forward and backward, RReLU
 * forward and the unit-activity diagnostic, each in f32, bf16 and f16. Kernels
 * first, then the backend entries.
 *
 * Every kernel is a template over the storage type T (dtype.cuh): it loads
 * to f32, computes in f32 and rounds what it stores once, so a 16-bit
 * result is the f32 one rounded. PReLU's slopes and dslope and the unit
 * activity stay f32 whatever T is.
 *
 * One kernel template per direction, specialised on the activation so the
 * inner loop has no switch. Memory-bound: when every pointer is 16-byte
 * aligned (tensor storage from the pool always is) each thread moves
 * 16-byte vectors (vec.cuh: four f32 or eight 16-bit values) in a
 * grid-stride loop and the last n % width elements are done one by one;
 * otherwise the scalar loop does all of it.
 *
 * PReLU's backward writes dx and adds dslope per channel in two fixed-order
 * stages (deterministic): blocks write partial sums of a part of each
 * channel, a finishing kernel adds a channel's parts in order. For inner
 * > 1 a block covers a part of one channel; for inner == 1 (channels-last
 * activations [n * h * w, c], a linear layer's [N, features]) the rows
 * shape of kernels/rows.cuh, threads along channels, so a warp reads
 * consecutive channels of a row instead of one element per 32-byte
 * sector, the channels lying c apart.
 */
#include <type_traits>

#include "core/philox.h"
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rows.cuh"
#include "kernels/scale_block.cuh"
#include "kernels/vec.cuh"

namespace {

template <cudl_activation_type Kind>
struct Activation;

template <>
struct Activation<CUDL_ACT_SIGMOID> {
  // exp of -|x| only, so neither branch overflows.
  __device__ static float forward(float x, float) {
    const float e = expf(-fabsf(x));
    return x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
  }
  __device__ static float backward(float y, float dy, float) {
    return dy * y * (1.0f - y);
  }
};

template <>
struct Activation<CUDL_ACT_TANH> {
  __device__ static float forward(float x, float) { return tanhf(x); }
  __device__ static float backward(float y, float dy, float) {
    return dy * ((1.0f - y) * (1.0f + y));
  }
};

template <>
struct Activation<CUDL_ACT_RELU> {
  __device__ static float forward(float x, float) {
    return x < 0.0f ? 0.0f : x;  // NaN passes through
  }
  __device__ static float backward(float x, float dy, float) {
    return x > 0.0f ? dy : 0.0f;
  }
};

template <>
struct Activation<CUDL_ACT_LEAKY_RELU> {
  __device__ static float forward(float x, float alpha) {
    return x > 0.0f ? x : alpha * x;
  }
  __device__ static float backward(float x, float dy, float alpha) {
    return x > 0.0f ? dy : alpha * dy;
  }
};

template <>
struct Activation<CUDL_ACT_ELU> {
  __device__ static float forward(float x, float alpha) {
    return x > 0.0f ? x : alpha * expm1f(x);
  }
  __device__ static float backward(float x, float dy, float alpha) {
    return x > 0.0f ? dy : dy * alpha * expf(x);
  }
};

// Phi(x) through erfc, which keeps the negative tail's relative accuracy;
// the limits where x * Phi(x) or x * phi(x) would be inf * 0.
template <>
struct Activation<CUDL_ACT_GELU> {
  __device__ static float cdf(float x) {
    return 0.5f * erfcf(-x * 0.70710678118654752f);
  }
  __device__ static float forward(float x, float) {
    const float p = cdf(x);
    return p == 0.0f ? -0.0f : x * p;
  }
  __device__ static float backward(float x, float dy, float) {
    const float pdf = 0.39894228040143268f * expf(-0.5f * x * x);
    if (isinf(x)) return x > 0.0f ? dy : 0.0f;
    return dy * (cdf(x) + x * pdf);
  }
};

// sigmoid(x) from exp(-|x|) as above, and its complement sigmoid(-x), which
// the derivative needs where sigmoid(x) rounds to 1; the limits where
// x * sigmoid(x) or x * (1 - s) would be inf * 0.
template <>
struct Activation<CUDL_ACT_SILU> {
  __device__ static float forward(float x, float) {
    const float e = expf(-fabsf(x));
    const float s = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    return s == 0.0f ? -0.0f : x * s;
  }
  __device__ static float backward(float x, float dy, float) {
    if (isinf(x)) return x > 0.0f ? dy : 0.0f;
    const float e = expf(-fabsf(x)), d = 1.0f / (1.0f + e);
    const float s = x >= 0.0f ? d : e * d, complement = x >= 0.0f ? e * d : d;
    return dy * (s * (1.0f + x * complement));
  }
};

template <typename T, cudl_activation_type Kind>
__global__ void forward_kernel(const T *x, T *y, int64_t n, float alpha,
                               bool vectorised) {
  using A = Activation<Kind>;
  using V = cudl__vec16<T>;
  constexpr int width = sizeof(V) / sizeof(T);
  int64_t tail = 0;
  if (vectorised) {
    const int64_t nv = n / width;
    const V *xv = reinterpret_cast<const V *>(x);
    V *yv = reinterpret_cast<V *>(y);
    for (int64_t i = CUDL_GRID_START; i < nv; i += CUDL_GRID_STRIDE) {
      const V v = xv[i];
      V r;
#pragma unroll
      for (int k = 0; k < width; ++k)
        r.v[k] = cudl__from_f32<T>(A::forward(cudl__to_f32(v.v[k]), alpha));
      yv[i] = r;
    }
    tail = nv * width;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    cudl__store(y, i, A::forward(cudl__load(x, i), alpha));
}

// dx = f'(saved) * dy, or, after a dropout fused in (mask not null),
// f'(saved) * (dy * mask): the activation's backward on the dropout's.
template <typename T, cudl_activation_type Kind>
__global__ void backward_kernel(const T *saved, const T *dy, const T *mask,
                                T *dx, int64_t n, float alpha,
                                bool vectorised) {
  using A = Activation<Kind>;
  using V = cudl__vec16<T>;
  constexpr int width = sizeof(V) / sizeof(T);
  int64_t tail = 0;
  if (vectorised) {
    const int64_t nv = n / width;
    const V *sv = reinterpret_cast<const V *>(saved);
    const V *gv = reinterpret_cast<const V *>(dy);
    const V *mv = reinterpret_cast<const V *>(mask);
    V *dv = reinterpret_cast<V *>(dx);
    for (int64_t i = CUDL_GRID_START; i < nv; i += CUDL_GRID_STRIDE) {
      const V s = sv[i];
      const V g = gv[i];
      float gf[width];
#pragma unroll
      for (int k = 0; k < width; ++k) gf[k] = cudl__to_f32(g.v[k]);
      if (mask != nullptr) {
        const V m = mv[i];
#pragma unroll
        for (int k = 0; k < width; ++k) gf[k] *= cudl__to_f32(m.v[k]);
      }
      V r;
#pragma unroll
      for (int k = 0; k < width; ++k)
        r.v[k] =
            cudl__from_f32<T>(A::backward(cudl__to_f32(s.v[k]), gf[k], alpha));
      dv[i] = r;
    }
    tail = nv * width;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    float g = cudl__load(dy, i);
    if (mask != nullptr) g *= cudl__load(mask, i);
    cudl__store(dx, i, A::backward(cudl__load(saved, i), g, alpha));
  }
}

// Dropout after the activation (dropout.cu's keep test and multiplier) on
// the activation's value: y = f(x) * m, Philox block b deciding elements
// 4b..4b+3.
template <typename T, cudl_activation_type Kind>
__global__ void dropout_forward_kernel(const T *x, T *mask, T *y, int64_t n,
                                       float alpha, float p, float scale,
                                       uint64_t seed, uint64_t offset,
                                       bool vectorised) {
  using A = Activation<Kind>;
  const int64_t blocks = (n + 3) / 4;
  for (int64_t b = CUDL_GRID_START; b < blocks; b += CUDL_GRID_STRIDE) {
    const cudl_philox_block r = cudl_philox_at(seed, offset + (uint64_t)b);
    cudl__scale_block(
        x, mask, y, n, b, vectorised,
        [&](int k, float) {
          return cudl_dropout_keep(r.v[k], p) ? scale : 0.0f;
        },
        [&](float v) { return A::forward(v, alpha); });
  }
}

// Calls launch(k), k a std::integral_constant holding `kind`, so that the
// kernels are chosen at compile time; false for a kind without kernels.
template <class Launch>
bool with_kind(cudl_activation_type kind, Launch launch) {
  switch (kind) {
    case CUDL_ACT_SIGMOID:
      launch(std::integral_constant<cudl_activation_type, CUDL_ACT_SIGMOID>());
      return true;
    case CUDL_ACT_TANH:
      launch(std::integral_constant<cudl_activation_type, CUDL_ACT_TANH>());
      return true;
    case CUDL_ACT_RELU:
      launch(std::integral_constant<cudl_activation_type, CUDL_ACT_RELU>());
      return true;
    case CUDL_ACT_LEAKY_RELU:
      launch(
          std::integral_constant<cudl_activation_type, CUDL_ACT_LEAKY_RELU>());
      return true;
    case CUDL_ACT_ELU:
      launch(std::integral_constant<cudl_activation_type, CUDL_ACT_ELU>());
      return true;
    case CUDL_ACT_GELU:
      launch(std::integral_constant<cudl_activation_type, CUDL_ACT_GELU>());
      return true;
    case CUDL_ACT_SILU:
      launch(std::integral_constant<cudl_activation_type, CUDL_ACT_SILU>());
      return true;
    default:
      return false;
  }
}

// ---- PReLU, RReLU and unit activity ----

template <typename T>
__global__ void prelu_forward_kernel(const T *x, const float *slope, T *y,
                                     int64_t n, int64_t channels,
                                     int64_t inner) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    const float v = cudl__load(x, i);
    cudl__store(y, i, v > 0.0f ? v : slope[(i / inner) % channels] * v);
  }
}

// Element idx of PReLU's backward with slope a: dx written, and what it
// adds to the slope's gradient returned (g * x where x <= 0).
template <typename T>
__device__ __forceinline__ float prelu_backward_element(const T *x, const T *dy,
                                                        T *dx, float a,
                                                        int64_t idx) {
  const float v = cudl__load(x, idx), g = cudl__load(dy, idx);
  if (v > 0.0f) {
    cudl__store(dx, idx, g);
    return 0.0f;
  }
  cudl__store(dx, idx, a * g);
  return g * v;
}

// Block (c, b) covers part b of channel c's outer * inner elements: writes
// their dx and the partial sum of dy * x over those with x <= 0.
template <typename T>
__global__ void prelu_backward_partial_kernel(const T *x, const float *slope,
                                              const T *dy, T *dx,
                                              float *partial, int64_t outer,
                                              int64_t channels, int64_t inner) {
  const int64_t c = blockIdx.x, per_channel = outer * inner;
  const float a = slope[c];
  float sum = 0.0f;
  for (int64_t e = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
       e < per_channel; e += (int64_t)gridDim.y * blockDim.x) {
    sum += prelu_backward_element(x, dy, dx, a,
                                  ((e / inner) * channels + c) * inner +
                                      e % inner);
  }
  sum = cudl__block_sum(sum);
  if (threadIdx.x == 0) partial[c * gridDim.y + blockIdx.y] = sum;
}

// inner == 1: block (tile, p) of the rows shape covers part p of its
// channels' rows, as the kernel above does a part of one channel.
template <typename T>
__global__ void prelu_backward_rows_kernel(const T *x, const float *slope,
                                           const T *dy, T *dx, float *partial,
                                           int64_t rows, int64_t channels) {
  const int64_t c = cudl__rows_channel();
  float sum = 0.0f;
  if (c < channels) {
    const float a = slope[c];
    for (int64_t r = cudl__rows_first(); r < rows; r += cudl__rows_step()) {
      sum += prelu_backward_element(x, dy, dx, a, r * channels + c);
    }
  }
  sum = cudl__column_sum(sum);
  if (threadIdx.y == 0 && c < channels)
    partial[c * gridDim.y + blockIdx.y] = sum;
}

// dslope[c] = the parts of channel c, added in order.
__global__ void prelu_backward_finish_kernel(const float *partial,
                                             float *dslope, int64_t channels,
                                             int parts) {
  for (int64_t c = CUDL_GRID_START; c < channels; c += CUDL_GRID_STRIDE) {
    float sum = 0.0f;
    for (int p = 0; p < parts; ++p) sum += partial[c * parts + p];
    dslope[c] = sum;
  }
}

// Parts per channel: about 1024 blocks in all, none with less than one
// block's worth of elements, at most 1024 per channel; for inner == 1, the
// rows shape's.
int prelu_parts(int64_t outer, int64_t channels, int64_t inner) {
  if (inner == 1) return cudl__rows_shape_for(outer, channels).parts;
  const int64_t per_channel = outer * inner;
  int64_t parts = (1024 + channels - 1) / channels;
  const int64_t useful = (per_channel + CUDL_BLOCK_SIZE - 1) / CUDL_BLOCK_SIZE;
  if (parts > useful) parts = useful;
  if (parts > 1024) parts = 1024;
  return parts < 1 ? 1 : (int)parts;
}

template <typename T>
__global__ void rrelu_forward_kernel(const T *x, T *noise, T *y, int64_t n,
                                     float lower, float upper, int training,
                                     uint64_t seed, uint64_t offset,
                                     bool vectorised) {
  const int64_t blocks = (n + 3) / 4;
  const float fixed = (lower + upper) * 0.5f;
  for (int64_t b = CUDL_GRID_START; b < blocks; b += CUDL_GRID_STRIDE) {
    cudl_philox_block r = {{0, 0, 0, 0}};
    if (training) r = cudl_philox_at(seed, offset + (uint64_t)b);
    cudl__scale_block(x, noise, y, n, b, vectorised, [&](int k, float xk) {
      const float s =
          training ? cudl_uniform_from_bits(r.v[k], lower, upper) : fixed;
      return xk > 0.0f ? 1.0f : s;
    });
  }
}

// Every thread that sees a positive element of unit u writes 1 to
// active[u]: concurrent writes of the same value, so the result does not
// depend on their order.
template <typename T>
__global__ void unit_activity_kernel(const T *x, float *active, int64_t n,
                                     int64_t units, int64_t inner) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    if (cudl__load(x, i) > 0.0f) active[(i / inner) % units] = 1.0f;
}

// ---- the entries' bodies, one template over T each ----

template <typename T>
cudl_status activation_forward(cudl_context *ctx, cudl_activation_type kind,
                               float alpha, const void *x, void *y, int64_t n) {
  constexpr int width = sizeof(cudl__vec16<T>) / sizeof(T);
  const bool vec =
      cudl__vec_aligned<T, width>(x) && cudl__vec_aligned<T, width>(y);
  CUDA_ENTER(ctx, s);
  if (!with_kind(kind, [&](auto k) {
        forward_kernel<T, decltype(k)::value>
            <<<cudl__grid_for(vec ? n / width + 1 : n), CUDL_BLOCK_SIZE, 0,
               s->stream>>>(cudl__typed<T>(x), cudl__typed<T>(y), n, alpha,
                            vec);
      }))
    return cudl__cuda_error(ctx, cudaErrorInvalidValue, __func__, __FILE__,
                            __LINE__);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status activation_backward(cudl_context *ctx, cudl_activation_type kind,
                                float alpha, const void *saved, const void *dy,
                                void *dx, int64_t n) {
  constexpr int width = sizeof(cudl__vec16<T>) / sizeof(T);
  const bool vec = cudl__vec_aligned<T, width>(saved) &&
                   cudl__vec_aligned<T, width>(dy) &&
                   cudl__vec_aligned<T, width>(dx);
  CUDA_ENTER(ctx, s);
  if (!with_kind(kind, [&](auto k) {
        backward_kernel<T, decltype(k)::value>
            <<<cudl__grid_for(vec ? n / width + 1 : n), CUDL_BLOCK_SIZE, 0,
               s->stream>>>(cudl__typed<T>(saved), cudl__typed<T>(dy),
                            static_cast<const T *>(nullptr), cudl__typed<T>(dx),
                            n, alpha, vec);
      }))
    return cudl__cuda_error(ctx, cudaErrorInvalidValue, __func__, __FILE__,
                            __LINE__);
  return CUDL_CUDA_LAUNCHED(ctx);
}

// Sigmoid and tanh have no fused kernels: their backward reads y, which the
// fused pass does not keep (the caller refuses them).
template <typename T>
cudl_status activation_dropout_forward(cudl_context *ctx,
                                       cudl_activation_type kind, float alpha,
                                       const void *x, void *mask, void *y,
                                       int64_t n, float p, uint64_t seed,
                                       uint64_t offset) {
  // Computed once, on the host, as dropout.cu and the CPU compute it.
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const bool vec = cudl__vec_aligned<T, 4>(x) &&
                   cudl__vec_aligned<T, 4>(mask) && cudl__vec_aligned<T, 4>(y);
  CUDA_ENTER(ctx, s);
  if (kind == CUDL_ACT_SIGMOID || kind == CUDL_ACT_TANH ||
      !with_kind(kind, [&](auto k) {
        dropout_forward_kernel<T, decltype(k)::value>
            <<<cudl__grid_for((n + 3) / 4), CUDL_BLOCK_SIZE, 0, s->stream>>>(
                cudl__typed<T>(x), cudl__typed<T>(mask), cudl__typed<T>(y), n,
                alpha, p, scale, seed, offset, vec);
      }))
    return cudl__cuda_error(ctx, cudaErrorInvalidValue, __func__, __FILE__,
                            __LINE__);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status activation_dropout_backward(cudl_context *ctx,
                                        cudl_activation_type kind, float alpha,
                                        const void *x, const void *mask,
                                        const void *dy, void *dx, int64_t n) {
  constexpr int width = sizeof(cudl__vec16<T>) / sizeof(T);
  const bool vec =
      cudl__vec_aligned<T, width>(x) && cudl__vec_aligned<T, width>(mask) &&
      cudl__vec_aligned<T, width>(dy) && cudl__vec_aligned<T, width>(dx);
  CUDA_ENTER(ctx, s);
  if (kind == CUDL_ACT_SIGMOID || kind == CUDL_ACT_TANH ||
      !with_kind(kind, [&](auto k) {
        backward_kernel<T, decltype(k)::value>
            <<<cudl__grid_for(vec ? n / width + 1 : n), CUDL_BLOCK_SIZE, 0,
               s->stream>>>(cudl__typed<T>(x), cudl__typed<T>(dy),
                            cudl__typed<T>(mask), cudl__typed<T>(dx), n, alpha,
                            vec);
      }))
    return cudl__cuda_error(ctx, cudaErrorInvalidValue, __func__, __FILE__,
                            __LINE__);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status prelu_forward(cudl_context *ctx, const void *x, const float *slope,
                          void *y, int64_t outer, int64_t channels,
                          int64_t inner) {
  const int64_t n = outer * channels * inner;
  CUDA_ENTER(ctx, s);
  prelu_forward_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__typed<T>(x), slope, cudl__typed<T>(y), n, channels, inner);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status prelu_backward(cudl_context *ctx, const void *x, const float *slope,
                           const void *dy, void *dx, float *dslope,
                           int64_t outer, int64_t channels, int64_t inner) {
  const int parts = prelu_parts(outer, channels, inner);
  CUDA_ENTER(ctx, s);
  Scratch<float> partial(s);
  CUDL_CUDA_TRY(ctx, partial.alloc(ctx, (size_t)channels * (size_t)parts));
  if (inner == 1) {
    const cudl__rows_shape shape = cudl__rows_shape_for(outer, channels);
    prelu_backward_rows_kernel<<<shape.grid, shape.block, 0, s->stream>>>(
        cudl__typed<T>(x), slope, cudl__typed<T>(dy), cudl__typed<T>(dx),
        partial.get(), outer, channels);
  } else {
    prelu_backward_partial_kernel<<<dim3((unsigned)channels, (unsigned)parts),
                                    CUDL_BLOCK_SIZE, 0, s->stream>>>(
        cudl__typed<T>(x), slope, cudl__typed<T>(dy), cudl__typed<T>(dx),
        partial.get(), outer, channels, inner);
  }
  prelu_backward_finish_kernel<<<cudl__grid_for(channels), CUDL_BLOCK_SIZE, 0,
                                 s->stream>>>(partial.get(), dslope, channels,
                                              parts);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status rrelu_forward(cudl_context *ctx, const void *x, void *noise,
                          void *y, int64_t n, float lower, float upper,
                          int training, uint64_t seed, uint64_t offset) {
  const bool vectorised = cudl__vec_aligned<T, 4>(x) &&
                          cudl__vec_aligned<T, 4>(noise) &&
                          cudl__vec_aligned<T, 4>(y);
  CUDA_ENTER(ctx, s);
  rrelu_forward_kernel<<<cudl__grid_for((n + 3) / 4), CUDL_BLOCK_SIZE, 0,
                         s->stream>>>(cudl__typed<T>(x), cudl__typed<T>(noise),
                                      cudl__typed<T>(y), n, lower, upper,
                                      training, seed, offset, vectorised);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <typename T>
cudl_status unit_activity(cudl_context *ctx, const void *x, float *active,
                          int64_t outer, int64_t units, int64_t inner) {
  const int64_t n = outer * units * inner;
  CUDA_ENTER(ctx, s);
  if (n == 0) return CUDL_OK;
  unit_activity_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__typed<T>(x), active, n, units, inner);
  return CUDL_CUDA_LAUNCHED(ctx);
}

}  // namespace

// ---- entries ----

CUDL_CUDA_FLOATS(activation_forward,
                 (cudl_context * ctx, cudl_activation_type kind, float alpha,
                  const void *x, void *y, int64_t n),
                 activation_forward, (ctx, kind, alpha, x, y, n))

CUDL_CUDA_FLOATS(activation_backward,
                 (cudl_context * ctx, cudl_activation_type kind, float alpha,
                  const void *saved, const void *dy, void *dx, int64_t n),
                 activation_backward, (ctx, kind, alpha, saved, dy, dx, n))

CUDL_CUDA_FLOATS(activation_dropout_forward,
                 (cudl_context * ctx, cudl_activation_type kind, float alpha,
                  const void *x, void *mask, void *y, int64_t n, float p,
                  uint64_t seed, uint64_t offset),
                 activation_dropout_forward,
                 (ctx, kind, alpha, x, mask, y, n, p, seed, offset))

CUDL_CUDA_FLOATS(activation_dropout_backward,
                 (cudl_context * ctx, cudl_activation_type kind, float alpha,
                  const void *x, const void *mask, const void *dy, void *dx,
                  int64_t n),
                 activation_dropout_backward,
                 (ctx, kind, alpha, x, mask, dy, dx, n))

CUDL_CUDA_FLOATS(prelu_forward,
                 (cudl_context * ctx, const void *x, const float *slope,
                  void *y, int64_t outer, int64_t channels, int64_t inner),
                 prelu_forward, (ctx, x, slope, y, outer, channels, inner))

CUDL_CUDA_FLOATS(prelu_backward,
                 (cudl_context * ctx, const void *x, const float *slope,
                  const void *dy, void *dx, float *dslope, int64_t outer,
                  int64_t channels, int64_t inner),
                 prelu_backward,
                 (ctx, x, slope, dy, dx, dslope, outer, channels, inner))

CUDL_CUDA_FLOATS(rrelu_forward,
                 (cudl_context * ctx, const void *x, void *noise, void *y,
                  int64_t n, float lower, float upper, int training,
                  uint64_t seed, uint64_t offset),
                 rrelu_forward,
                 (ctx, x, noise, y, n, lower, upper, training, seed, offset))

CUDL_CUDA_FLOATS(unit_activity,
                 (cudl_context * ctx, const void *x, float *active,
                  int64_t outer, int64_t units, int64_t inner),
                 unit_activity, (ctx, x, active, outer, units, inner))
