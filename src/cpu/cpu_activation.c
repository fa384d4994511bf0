/* cpu_activation.c - the activations on the CPU: the reference the CUDA
 * kernels are compared with, written independently of them. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/half.h"
#include "core/philox.h"
#include "cpu/cpu_internal.h"

/* Loops split across threads only when the work pays for the fork. */
#define CPU_PARALLEL_MIN 32768

/* 2^k for integer k in [-126, 127], from its bits. */
static inline float power_of_two(int32_t k) {
  const uint32_t bits = (uint32_t)(k + 127) << 23;
  float f;
  memcpy(&f, &bits, sizeof f);
  return f;
}

/* e^x for x <= 0, without a libm call or a branch, so that a loop over it
 * vectorises (a loop calling expf stays scalar: cudl bench ops measured
 * sigmoid at 14x PyTorch's time). x = k ln 2 + r with |r| <= ln 2 / 2
 * (Cody and Waite's two-part ln 2), e^r by its Taylor series to r^7
 * (truncation below 2^-27 relative), and 2^k as two normal factors so
 * that results below FLT_MIN underflow gradually. Within a few ulps of
 * expf; NaN gives NaN. */
static inline float exp_nonpositive(float x) {
  const float round_magic = 12582912.0f; /* 1.5 * 2^23: adding rounds */
  const float clamped = x < -104.0f ? -104.0f : x;
  const float k = (clamped * 1.44269504f + round_magic) - round_magic;
  const float r = (clamped - k * 0.693145751953125f) - k * 1.42860677e-6f;
  const int32_t ki = (int32_t)k, half = ki / 2;
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  p = p * power_of_two(half) * power_of_two(ki - half);
  return x != x ? x : p;
}

/* tanh without a libm call, for the same reason: below |x| = 0.3 its odd
 * Taylor series to x^11 (the next term is under 2^-30 relative), above
 * (1 - e) / (1 + e) with e = e^-2|x|, where 1 - e >= 0.45 cancels little.
 * NaN gives NaN (through the polynomial's select), +-inf +-1. */
static inline float tanh_vectorisable(float x) {
  const float a = fabsf(x), x2 = x * x;
  const float e = exp_nonpositive(-2.0f * a);
  const float far = copysignf((1.0f - e) / (1.0f + e), x);
  float p = -1382.0f / 155925.0f;
  p = p * x2 + 62.0f / 2835.0f;
  p = p * x2 - 17.0f / 315.0f;
  p = p * x2 + 2.0f / 15.0f;
  p = p * x2 - 1.0f / 3.0f;
  p = x * (1.0f + p * x2); /* not x + x * (...): -0 stays -0 */
  return a < 0.3f ? p : (x != x ? x : far);
}

/* e^x - 1 for x <= 0 (ELU), likewise: its Taylor series to x^8 above
 * -0.3, where e^x - 1 would cancel, e^x - 1 below. NaN gives NaN. */
static inline float expm1_nonpositive(float x) {
  float p = 1.0f / 40320.0f;
  p = p * x + 1.0f / 5040.0f;
  p = p * x + 1.0f / 720.0f;
  p = p * x + 1.0f / 120.0f;
  p = p * x + 1.0f / 24.0f;
  p = p * x + 1.0f / 6.0f;
  p = p * x + 0.5f;
  p = x * (1.0f + p * x);
  return x > -0.3f ? p : exp_nonpositive(x) - 1.0f;
}

/* GELU's Phi(x) = erfc(-x / sqrt 2) / 2: erfc keeps the negative tail's
 * relative accuracy where 1 + erf(x / sqrt 2) would cancel to 0. libm's
 * erfcf does not vectorise; GELU is not on a path this project tunes yet. */
static inline float normal_cdf(float x) {
  return 0.5f * erfcf(-x * 0.70710678118654752f);
}

/* 1 / (1 + e^-x) without overflow: e is only taken of -|x|. */
static inline float sigmoid(float x) {
  const float e = exp_nonpositive(-fabsf(x)), d = 1.0f / (1.0f + e);
  return x >= 0.0f ? d : e * d;
}

/* sigmoid(x) and 1 - sigmoid(x) = sigmoid(-x), both without cancellation:
 * SiLU's derivative needs the complement where s rounds to 1. */
static inline float sigmoid_complement(float x, float *complement) {
  const float e = exp_nonpositive(-fabsf(x)), d = 1.0f / (1.0f + e);
  *complement = x >= 0.0f ? e * d : d;
  return x >= 0.0f ? d : e * d;
}

static float forward_one(cudl_activation_type kind, float alpha, float x) {
  switch (kind) {
    case CUDL_ACT_SIGMOID:
      return sigmoid(x);
    case CUDL_ACT_TANH:
      return tanh_vectorisable(x);
    case CUDL_ACT_RELU:
      return x < 0.0f ? 0.0f : x; /* NaN stays */
    case CUDL_ACT_LEAKY_RELU:
      return x > 0.0f ? x : alpha * x;
    case CUDL_ACT_ELU:
      return x > 0.0f ? x : alpha * expm1_nonpositive(x > 0.0f ? 0.0f : x);
    case CUDL_ACT_GELU: {
      const float p = normal_cdf(x);
      return p == 0.0f ? -0.0f : x * p; /* -inf * 0 would be NaN */
    }
    case CUDL_ACT_SILU: {
      const float s = sigmoid(x);
      return s == 0.0f ? -0.0f : x * s; /* -inf * 0 would be NaN */
    }
    case CUDL_ACT_COUNT: /* not a type; the caller checked */
      break;
  }
  return x;
}

static float backward_one(cudl_activation_type kind, float alpha, float saved,
                          float dy) {
  switch (kind) {
    case CUDL_ACT_SIGMOID:
      return dy * saved * (1.0f - saved);
    case CUDL_ACT_TANH:
      return dy * ((1.0f - saved) * (1.0f + saved));
    case CUDL_ACT_RELU:
      return saved > 0.0f ? dy : 0.0f;
    case CUDL_ACT_LEAKY_RELU:
      return saved > 0.0f ? dy : alpha * dy;
    case CUDL_ACT_ELU:
      return saved > 0.0f
                 ? dy
                 : dy * alpha * exp_nonpositive(saved > 0.0f ? 0.0f : saved);
    case CUDL_ACT_GELU: {
      /* x * phi(x) is inf * 0 at +-inf: there the limits, 1 and 0. */
      const float pdf = 0.39894228040143268f * expf(-0.5f * saved * saved);
      if (isinf(saved)) return saved > 0.0f ? dy : 0.0f;
      return dy * (normal_cdf(saved) + saved * pdf);
    }
    case CUDL_ACT_SILU: {
      /* x * (1 - s) is inf * 0 at +-inf: there the limits, 1 and 0. */
      float complement;
      const float s = sigmoid_complement(saved, &complement);
      if (isinf(saved)) return saved > 0.0f ? dy : 0.0f;
      return dy * (s * (1.0f + saved * complement));
    }
    case CUDL_ACT_COUNT:
      break;
  }
  return dy;
}

/* One loop per kind, so that each is a plain loop the compiler vectorises
 * (a switch inside the loop keeps it scalar; ReLU then costs as much as a
 * convolution's share of a ResNet step). */
/* _Pragma needs its string literal whole, so the formatter keeps out. */
/* clang-format off */
#define ELEMENTWISE_LOOP(statement)                                        \
  do {                                                                     \
    _Pragma("omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)") \
    for (i = 0; i < n; ++i) statement;                                     \
  } while (0)
/* clang-format on */

/* The forward and backward entries of f32, and of bf16 and f16 without
 * f32 copies: each element widened, computed in f32 and rounded once. */
#define ACT_T float
#define ACT_LOAD(v) (v)
#define ACT_STORE(v) (v)
#define ACT_NAME(f) f
#include "cpu/cpu_activation_loops.h"
#undef ACT_T
#undef ACT_LOAD
#undef ACT_STORE
#undef ACT_NAME

#define ACT_T uint16_t
#define ACT_LOAD(v) cudl__bf16_to_f32(v)
#define ACT_STORE(v) cudl__f32_to_bf16(v)
#define ACT_NAME(f) f##_bf16
#include "cpu/cpu_activation_loops.h"
#undef ACT_T
#undef ACT_LOAD
#undef ACT_STORE
#undef ACT_NAME

#define ACT_T uint16_t
#define ACT_LOAD(v) cudl__f16_to_f32(v)
#define ACT_STORE(v) cudl__f32_to_f16(v)
#define ACT_NAME(f) f##_f16
#include "cpu/cpu_activation_loops.h"
#undef ACT_T
#undef ACT_LOAD
#undef ACT_STORE
#undef ACT_NAME

/* Dropout's numbers (cpu_dropout.c) on the activation's output: Philox
 * block b decides elements 4b..4b+3. The kind is fixed per loop, as above;
 * f(x) * m is the product the two layers compute, so the bits are theirs. */
/* clang-format off */
#define ACTIVATION_DROPOUT_LOOP(KIND)                                        \
  do {                                                                      \
    _Pragma("omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)")  \
    for (b = 0; b < blocks; ++b) {                                          \
      const cudl_philox_block r = cudl_philox_at(seed, offset + (uint64_t)b); \
      int k;                                                                \
      for (k = 0; k < 4 && 4 * b + k < n; ++k) {                           \
        const int64_t i = 4 * b + k;                                        \
        const float m = cudl_dropout_keep(r.v[k], p) ? scale : 0.0f;        \
        mask[i] = m;                                                        \
        y[i] = forward_one(KIND, alpha, x[i]) * m;                          \
      }                                                                     \
    }                                                                       \
  } while (0)
/* clang-format on */

cudl_status cudl__cpu_activation_dropout_forward(
    cudl_context *ctx, cudl_activation_type kind, float alpha, const void *x_,
    void *mask_, void *y_, int64_t n, float p, uint64_t seed, uint64_t offset) {
  const float *x = x_;
  float *mask = mask_;
  float *y = y_;
  /* as cudl__cpu_dropout_forward: p = 1 drops all */
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  const int64_t blocks = (n + 3) / 4;
  int64_t b;
  (void)ctx;
  switch (kind) {
    case CUDL_ACT_RELU:
      ACTIVATION_DROPOUT_LOOP(CUDL_ACT_RELU);
      break;
    case CUDL_ACT_LEAKY_RELU:
      ACTIVATION_DROPOUT_LOOP(CUDL_ACT_LEAKY_RELU);
      break;
    case CUDL_ACT_ELU:
      ACTIVATION_DROPOUT_LOOP(CUDL_ACT_ELU);
      break;
    case CUDL_ACT_GELU:
      ACTIVATION_DROPOUT_LOOP(CUDL_ACT_GELU);
      break;
    case CUDL_ACT_SILU:
      ACTIVATION_DROPOUT_LOOP(CUDL_ACT_SILU);
      break;
    default: /* sigmoid and tanh: refused by the caller */
      break;
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_activation_dropout_backward(
    cudl_context *ctx, cudl_activation_type kind, float alpha, const void *x_,
    const void *mask_, const void *dy_, void *dx_, int64_t n) {
  const float *x = x_;
  const float *mask = mask_;
  const float *dy = dy_;
  float *dx = dx_;
  int64_t i;
  (void)ctx;
  switch (kind) {
    case CUDL_ACT_RELU:
      ELEMENTWISE_LOOP(
          dx[i] = backward_one(CUDL_ACT_RELU, alpha, x[i], dy[i] * mask[i]));
      break;
    case CUDL_ACT_LEAKY_RELU:
      ELEMENTWISE_LOOP(dx[i] = backward_one(CUDL_ACT_LEAKY_RELU, alpha, x[i],
                                            dy[i] * mask[i]));
      break;
    case CUDL_ACT_ELU:
      ELEMENTWISE_LOOP(
          dx[i] = backward_one(CUDL_ACT_ELU, alpha, x[i], dy[i] * mask[i]));
      break;
    case CUDL_ACT_GELU:
      ELEMENTWISE_LOOP(
          dx[i] = backward_one(CUDL_ACT_GELU, alpha, x[i], dy[i] * mask[i]));
      break;
    case CUDL_ACT_SILU:
      ELEMENTWISE_LOOP(
          dx[i] = backward_one(CUDL_ACT_SILU, alpha, x[i], dy[i] * mask[i]));
      break;
    default: /* sigmoid and tanh: refused by the caller */
      break;
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_prelu_forward(cudl_context *ctx, const void *x_,
                                    const float *slope, void *y_, int64_t outer,
                                    int64_t channels, int64_t inner) {
  const float *x = x_;
  float *y = y_;
  int64_t row;
  (void)ctx;
  if (inner == 1) { /* channels-last: no division per element */
#pragma omp parallel for schedule(static) if (outer * channels > \
                                              CPU_PARALLEL_MIN)
    for (row = 0; row < outer; ++row) {
      const float *in = x + row * channels;
      float *out = y + row * channels;
      int64_t c;
      for (c = 0; c < channels; ++c)
        out[c] = in[c] > 0.0f ? in[c] : slope[c] * in[c];
    }
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * channels * inner > \
                                              CPU_PARALLEL_MIN)
  for (row = 0; row < outer * channels; ++row) {
    const float a = slope[row % channels];
    const float *in = x + row * inner;
    float *out = y + row * inner;
    int64_t i;
    for (i = 0; i < inner; ++i) out[i] = in[i] > 0.0f ? in[i] : a * in[i];
  }
  return CUDL_OK;
}

/* prelu_backward for inner = 1 (channels-last): a channel is a column of
 * x, so PRELU_BLOCK channels walk the rows together rather than each
 * reading all of x; every channel's sum runs over the rows in the order the
 * loop below takes them, so the results are the same bits. Adding +0 for a
 * positive x leaves a sum unchanged (it starts at +0, so it is never -0). */
enum { PRELU_BLOCK = 32 };

static void prelu_backward_rows(const float *x, const float *slope,
                                const float *dy, float *dx, float *dslope,
                                int64_t outer, int64_t channels) {
  const int64_t blocks = (channels + PRELU_BLOCK - 1) / PRELU_BLOCK;
  int64_t block;
#pragma omp parallel for schedule(static) if (outer * channels > \
                                              CPU_PARALLEL_MIN)
  for (block = 0; block < blocks; ++block) {
    const int64_t c0 = block * PRELU_BLOCK;
    const int64_t count =
        channels - c0 < PRELU_BLOCK ? channels - c0 : PRELU_BLOCK;
    double sum[PRELU_BLOCK];
    int64_t n, k;
    for (k = 0; k < count; ++k) sum[k] = 0.0;
    for (n = 0; n < outer; ++n) {
      const float *v = x + n * channels + c0, *g = dy + n * channels + c0;
      float *out = dx + n * channels + c0;
      for (k = 0; k < count; ++k) {
        const int positive = v[k] > 0.0f;
        out[k] = positive ? g[k] : slope[c0 + k] * g[k];
        sum[k] += positive ? 0.0 : (double)g[k] * (double)v[k];
      }
    }
    for (k = 0; k < count; ++k) dslope[c0 + k] = (float)sum[k];
  }
}

cudl_status cudl__cpu_prelu_backward(cudl_context *ctx, const void *x_,
                                     const float *slope, const void *dy_,
                                     void *dx_, float *dslope, int64_t outer,
                                     int64_t channels, int64_t inner) {
  const float *x = x_;
  const float *dy = dy_;
  float *dx = dx_;
  int64_t c;
  (void)ctx;
  /* One channel per iteration, its sum in double in a fixed order: the
   * reference for the CUDA reduction, and deterministic. */
  if (inner == 1) {
    prelu_backward_rows(x, slope, dy, dx, dslope, outer, channels);
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * channels * inner > \
                                              CPU_PARALLEL_MIN)
  for (c = 0; c < channels; ++c) {
    const float a = slope[c];
    double sum = 0.0;
    int64_t n, i;
    for (n = 0; n < outer; ++n) {
      const int64_t base = (n * channels + c) * inner;
      for (i = 0; i < inner; ++i) {
        const float v = x[base + i], g = dy[base + i];
        if (v > 0.0f) {
          dx[base + i] = g;
        } else {
          dx[base + i] = a * g;
          sum += (double)g * (double)v;
        }
      }
    }
    dslope[c] = (float)sum;
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_rrelu_forward(cudl_context *ctx, const void *x_,
                                    void *noise_, void *y_, int64_t n,
                                    float lower, float upper, int training,
                                    uint64_t seed, uint64_t offset) {
  const float *x = x_;
  float *noise = noise_;
  float *y = y_;
  const float fixed = (lower + upper) * 0.5f;
  const int64_t blocks = (n + 3) / 4;
  int64_t b;
  (void)ctx;
  /* Walk Philox blocks as cudl_tensor_uniform does; the slope of element i
   * is word i % 4 of block offset + i / 4, drawn whatever x holds. */
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
  for (b = 0; b < blocks; ++b) {
    cudl_philox_block r = {{0, 0, 0, 0}};
    int k;
    if (training) r = cudl_philox_at(seed, offset + (uint64_t)b);
    for (k = 0; k < 4 && 4 * b + k < n; ++k) {
      const int64_t i = 4 * b + k;
      const float slope =
          training ? cudl_uniform_from_bits(r.v[k], lower, upper) : fixed;
      const float m = x[i] > 0.0f ? 1.0f : slope; /* as PyTorch: 0 too */
      if (noise != NULL) noise[i] = m;
      y[i] = x[i] * m;
    }
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_mul(cudl_context *ctx, const void *a_, const void *b_,
                          void *out_, int64_t n) {
  const float *a = a_;
  const float *b = b_;
  float *out = out_;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
  for (i = 0; i < n; ++i) out[i] = a[i] * b[i];
  return CUDL_OK;
}

cudl_status cudl__cpu_unit_activity(cudl_context *ctx, const void *x_,
                                    float *active, int64_t outer, int64_t units,
                                    int64_t inner) {
  const float *x = x_;
  int64_t u;
  (void)ctx;
#pragma omp parallel for schedule(static) if (outer * units * inner > \
                                              CPU_PARALLEL_MIN)
  for (u = 0; u < units; ++u) {
    int64_t o, i;
    int any = 0;
    for (o = 0; o < outer && !any; ++o) {
      const float *row = x + (o * units + u) * inner;
      for (i = 0; i < inner; ++i) any |= row[i] > 0.0f;
    }
    if (any) active[u] = 1.0f;
  }
  return CUDL_OK;
}
