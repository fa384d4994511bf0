/*
 * activation.cu - the activations on CUDA: sigmoid, tanh, ReLU, leaky ReLU,
 * ELU and GELU forward and backward, PReLU forward and backward, RReLU forward
 * and the unit-activity diagnostic. Kernels first, then the backend
 * entries.
 *
 * One kernel template per direction, specialised on the activation so the
 * inner loop has no switch. Memory-bound: when every pointer is 16-byte
 * aligned (tensor storage from the pool always is) each thread moves float4
 * vectors in a grid-stride loop and the last n % 4 elements are done one by
 * one; otherwise the scalar loop does all of it.
 */
#include <type_traits>

#include "core/philox.h"
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"
#include "kernels/scale_block.cuh"

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

template <cudl_activation_type Kind>
__global__ void forward_kernel(const float *x, float *y, int64_t n, float alpha,
                               bool vectorised) {
  using A = Activation<Kind>;
  int64_t tail = 0;
  if (vectorised) {
    const int64_t n4 = n / 4;
    const float4 *x4 = reinterpret_cast<const float4 *>(x);
    float4 *y4 = reinterpret_cast<float4 *>(y);
    for (int64_t i = CUDL_GRID_START; i < n4; i += CUDL_GRID_STRIDE) {
      float4 v = x4[i];
      v.x = A::forward(v.x, alpha);
      v.y = A::forward(v.y, alpha);
      v.z = A::forward(v.z, alpha);
      v.w = A::forward(v.w, alpha);
      y4[i] = v;
    }
    tail = n4 * 4;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    y[i] = A::forward(x[i], alpha);
}

template <cudl_activation_type Kind>
__global__ void backward_kernel(const float *saved, const float *dy, float *dx,
                                int64_t n, float alpha, bool vectorised) {
  using A = Activation<Kind>;
  int64_t tail = 0;
  if (vectorised) {
    const int64_t n4 = n / 4;
    const float4 *s4 = reinterpret_cast<const float4 *>(saved);
    const float4 *g4 = reinterpret_cast<const float4 *>(dy);
    float4 *d4 = reinterpret_cast<float4 *>(dx);
    for (int64_t i = CUDL_GRID_START; i < n4; i += CUDL_GRID_STRIDE) {
      const float4 s = s4[i];
      const float4 g = g4[i];
      float4 r;
      r.x = A::backward(s.x, g.x, alpha);
      r.y = A::backward(s.y, g.y, alpha);
      r.z = A::backward(s.z, g.z, alpha);
      r.w = A::backward(s.w, g.w, alpha);
      d4[i] = r;
    }
    tail = n4 * 4;
  }
  for (int64_t i = tail + CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    dx[i] = A::backward(saved[i], dy[i], alpha);
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
    default:
      return false;
  }
}

// ---- PReLU, RReLU and unit activity ----

__global__ void prelu_forward_kernel(const float *x, const float *slope,
                                     float *y, int64_t n, int64_t channels,
                                     int64_t inner) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE) {
    const float v = x[i];
    y[i] = v > 0.0f ? v : slope[(i / inner) % channels] * v;
  }
}

// Block (c, b) covers part b of channel c's outer * inner elements: writes
// their dx and the partial sum of dy * x over those with x <= 0.
__global__ void prelu_backward_partial_kernel(const float *x,
                                              const float *slope,
                                              const float *dy, float *dx,
                                              float *partial, int64_t outer,
                                              int64_t channels, int64_t inner) {
  const int64_t c = blockIdx.x, per_channel = outer * inner;
  const float a = slope[c];
  float sum = 0.0f;
  for (int64_t e = (int64_t)blockIdx.y * blockDim.x + threadIdx.x;
       e < per_channel; e += (int64_t)gridDim.y * blockDim.x) {
    const int64_t idx = ((e / inner) * channels + c) * inner + e % inner;
    const float v = x[idx], g = dy[idx];
    if (v > 0.0f) {
      dx[idx] = g;
    } else {
      dx[idx] = a * g;
      sum += g * v;
    }
  }
  sum = cudl__block_sum(sum);
  if (threadIdx.x == 0) partial[c * gridDim.y + blockIdx.y] = sum;
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
// block's worth of elements, at most 1024 per channel.
int prelu_parts(int64_t outer, int64_t channels, int64_t inner) {
  const int64_t per_channel = outer * inner;
  int64_t parts = (1024 + channels - 1) / channels;
  const int64_t useful = (per_channel + CUDL_BLOCK_SIZE - 1) / CUDL_BLOCK_SIZE;
  if (parts > useful) parts = useful;
  if (parts > 1024) parts = 1024;
  return parts < 1 ? 1 : (int)parts;
}

__global__ void rrelu_forward_kernel(const float *x, float *noise, float *y,
                                     int64_t n, float lower, float upper,
                                     int training, uint64_t seed,
                                     uint64_t offset, bool vectorised) {
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
__global__ void unit_activity_kernel(const float *x, float *active, int64_t n,
                                     int64_t units, int64_t inner) {
  for (int64_t i = CUDL_GRID_START; i < n; i += CUDL_GRID_STRIDE)
    if (x[i] > 0.0f) active[(i / inner) % units] = 1.0f;
}

}  // namespace

// ---- entries ----

extern "C" cudl_status cudl__cuda_activation_forward(cudl_context *ctx,
                                                     cudl_activation_type kind,
                                                     float alpha, const void *x,
                                                     void *y, int64_t n) {
  const bool vec = cudl__aligned16(x) && cudl__aligned16(y);
  CUDA_ENTER(ctx, s);
  if (!with_kind(kind, [&](auto k) {
        forward_kernel<decltype(k)::value>
            <<<cudl__grid_for(vec ? n / 4 + 1 : n), CUDL_BLOCK_SIZE, 0,
               s->stream>>>(cudl__f32(x), cudl__f32(y), n, alpha, vec);
      }))
    return cudl__cuda_error(ctx, cudaErrorInvalidValue, __func__, __FILE__,
                            __LINE__);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_activation_backward(
    cudl_context *ctx, cudl_activation_type kind, float alpha,
    const void *saved, const void *dy, void *dx, int64_t n) {
  const bool vec =
      cudl__aligned16(saved) && cudl__aligned16(dy) && cudl__aligned16(dx);
  CUDA_ENTER(ctx, s);
  if (!with_kind(kind, [&](auto k) {
        backward_kernel<decltype(k)::value>
            <<<cudl__grid_for(vec ? n / 4 + 1 : n), CUDL_BLOCK_SIZE, 0,
               s->stream>>>(cudl__f32(saved), cudl__f32(dy), cudl__f32(dx), n,
                            alpha, vec);
      }))
    return cudl__cuda_error(ctx, cudaErrorInvalidValue, __func__, __FILE__,
                            __LINE__);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_prelu_forward(cudl_context *ctx,
                                                const void *x,
                                                const float *slope, void *y,
                                                int64_t outer, int64_t channels,
                                                int64_t inner) {
  const int64_t n = outer * channels * inner;
  CUDA_ENTER(ctx, s);
  prelu_forward_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__f32(x), slope, cudl__f32(y), n, channels, inner);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_prelu_backward(
    cudl_context *ctx, const void *x, const float *slope, const void *dy,
    void *dx, float *dslope, int64_t outer, int64_t channels, int64_t inner) {
  const int parts = prelu_parts(outer, channels, inner);
  CUDA_ENTER(ctx, s);
  Scratch<float> partial(s);
  CUDL_CUDA_TRY(ctx, partial.alloc(ctx, (size_t)channels * (size_t)parts));
  prelu_backward_partial_kernel<<<dim3((unsigned)channels, (unsigned)parts),
                                  CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__f32(x), slope, cudl__f32(dy), cudl__f32(dx), partial.get(), outer,
      channels, inner);
  prelu_backward_finish_kernel<<<cudl__grid_for(channels), CUDL_BLOCK_SIZE, 0,
                                 s->stream>>>(partial.get(), dslope, channels,
                                              parts);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_rrelu_forward(
    cudl_context *ctx, const void *x, void *noise, void *y, int64_t n,
    float lower, float upper, int training, uint64_t seed, uint64_t offset) {
  const bool vectorised =
      cudl__aligned16(x) && cudl__aligned16(noise) && cudl__aligned16(y);
  CUDA_ENTER(ctx, s);
  rrelu_forward_kernel<<<cudl__grid_for((n + 3) / 4), CUDL_BLOCK_SIZE, 0,
                         s->stream>>>(cudl__f32(x), cudl__f32(noise),
                                      cudl__f32(y), n, lower, upper, training,
                                      seed, offset, vectorised);
  return CUDL_CUDA_LAUNCHED(ctx);
}

extern "C" cudl_status cudl__cuda_unit_activity(cudl_context *ctx,
                                                const void *x, float *active,
                                                int64_t outer, int64_t units,
                                                int64_t inner) {
  const int64_t n = outer * units * inner;
  CUDA_ENTER(ctx, s);
  if (n == 0) return CUDL_OK;
  unit_activity_kernel<<<cudl__grid_for(n), CUDL_BLOCK_SIZE, 0, s->stream>>>(
      cudl__f32(x), active, n, units, inner);
  return CUDL_CUDA_LAUNCHED(ctx);
}
