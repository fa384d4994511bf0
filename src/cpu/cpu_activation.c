/* cpu_activation.c - the activations on the CPU: the reference the CUDA
 * kernels are compared with, written independently of them. */
#include <math.h>

#include "cpu/cpu_ops.h"

/* Loops split across threads only when the work pays for the fork. */
#define CPU_PARALLEL_MIN 32768

/* 1 / (1 + exp(-x)) without overflow: exp is only taken of -|x|. */
static float sigmoid(float x) {
  if (x >= 0.0f) return 1.0f / (1.0f + expf(-x));
  {
    float e = expf(x);
    return e / (1.0f + e);
  }
}

static float forward_one(cudl_activation_kind kind, float alpha, float x) {
  switch (kind) {
    case CUDL_ACTIVATION_SIGMOID:
      return sigmoid(x);
    case CUDL_ACTIVATION_TANH:
      return tanhf(x);
    case CUDL_ACTIVATION_RELU:
      return x < 0.0f ? 0.0f : x; /* NaN stays */
    case CUDL_ACTIVATION_LEAKY_RELU:
      return x > 0.0f ? x : alpha * x;
    case CUDL_ACTIVATION_ELU:
      return x > 0.0f ? x : alpha * expm1f(x);
  }
  return x;
}

static float backward_one(cudl_activation_kind kind, float alpha, float saved,
                          float dy) {
  switch (kind) {
    case CUDL_ACTIVATION_SIGMOID:
      return dy * saved * (1.0f - saved);
    case CUDL_ACTIVATION_TANH:
      return dy * (1.0f - saved * saved);
    case CUDL_ACTIVATION_RELU:
      return saved > 0.0f ? dy : 0.0f;
    case CUDL_ACTIVATION_LEAKY_RELU:
      return saved > 0.0f ? dy : alpha * dy;
    case CUDL_ACTIVATION_ELU:
      return saved > 0.0f ? dy : dy * alpha * expf(saved);
  }
  return dy;
}

cudl_status cudl__cpu_activation_forward(cudl_context *ctx,
                                         cudl_activation_kind kind, float alpha,
                                         const float *x, float *y, int64_t n) {
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
  for (i = 0; i < n; ++i) y[i] = forward_one(kind, alpha, x[i]);
  return CUDL_OK;
}

cudl_status cudl__cpu_activation_backward(cudl_context *ctx,
                                          cudl_activation_kind kind,
                                          float alpha, const float *saved,
                                          const float *dy, float *dx,
                                          int64_t n) {
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > CPU_PARALLEL_MIN)
  for (i = 0; i < n; ++i) dx[i] = backward_one(kind, alpha, saved[i], dy[i]);
  return CUDL_OK;
}
