/* activation.c - validation and dispatch of the elementwise activations. */
#include <math.h>
#include <string.h>

#include "core/internal.h"

/* Everything the library knows of an activation type beyond its kernels,
 * one row each: the name, which tensor backward reads, and what the
 * model's diagnostics look for. */
static const cudl_activation_info activation_info[] = {
    [CUDL_ACT_SIGMOID] = {"sigmoid", 1, 0, 0.01f, 0.99f},
    [CUDL_ACT_TANH] = {"tanh", 1, 0, -0.99f, 0.99f},
    [CUDL_ACT_RELU] = {"relu", 0, 1, 0.0f, 0.0f},
    [CUDL_ACT_LEAKY_RELU] = {"leaky_relu", 0, 1, 0.0f, 0.0f},
    [CUDL_ACT_ELU] = {"elu", 0, 1, 0.0f, 0.0f},
    /* Not counted as dead: below 0 the gradient shrinks but is not 0. */
    [CUDL_ACT_GELU] = {"gelu", 0, 0, 0.0f, 0.0f},
    /* Neither dead nor saturated, as GELU: for x < 0 the gradient decays
     * like |x| e^x but never reaches 0, and the output has no upper bound
     * (its minimum, -0.278 at x = -1.278, is not a saturation). */
    [CUDL_ACT_SILU] = {"silu", 0, 0, 0.0f, 0.0f},
};
CUDL_STATIC_ASSERT(sizeof activation_info / sizeof activation_info[0] ==
                       CUDL_ACT_COUNT,
                   one_row_per_activation_type);

const cudl_activation_info *cudl__activation_info(cudl_activation_type type) {
  if ((int)type < 0 || (int)type >= (int)CUDL_ACT_COUNT) return NULL;
  return &activation_info[type];
}

const char *cudl_activation_name(cudl_activation_type type) {
  const cudl_activation_info *info = cudl__activation_info(type);
  return info == NULL ? NULL : info->name;
}

static cudl_status check_alpha(cudl_context *ctx, const char *function,
                               float alpha) {
  if (!isfinite(alpha))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "alpha must be finite, got %g", (double)alpha);
  return CUDL_OK;
}

cudl_status cudl__activation_forward(cudl_context *ctx, const char *function,
                                     cudl_activation_type kind, float alpha,
                                     const cudl_tensor *x, cudl_tensor *y) {
  const cudl_tensor *tensors[2];
  static const char *const names[2] = {"x", "y"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = x;
  tensors[1] = y;
  status = cudl__check_data(ctx, function, &data, tensors, names, 2);
  if (status != CUDL_OK) return status;
  if (x->numel == 0) return CUDL_OK;
  return CUDL_OP_CALL(ctx, function, x->dtype, activation_forward, kind, alpha,
                      x->data, y->data, x->numel);
}

static cudl_status backward(cudl_context *ctx, const char *function,
                            cudl_activation_type kind, float alpha,
                            const cudl_tensor *saved, const char *saved_name,
                            const cudl_tensor *dy, cudl_tensor *dx) {
  const cudl_tensor *tensors[3];
  const char *names[3];
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = saved;
  tensors[1] = dy;
  tensors[2] = dx;
  names[0] = saved_name;
  names[1] = "dy";
  names[2] = "dx";
  status = cudl__check_data(ctx, function, &data, tensors, names, 3);
  if (status != CUDL_OK) return status;
  if (saved->numel == 0) return CUDL_OK;
  return CUDL_OP_CALL(ctx, function, saved->dtype, activation_backward, kind,
                      alpha, saved->data, dy->data, dx->data, saved->numel);
}

cudl_status cudl__activation_backward(cudl_context *ctx, const char *function,
                                      cudl_activation_type kind, float alpha,
                                      const cudl_tensor *x,
                                      const cudl_tensor *y,
                                      const cudl_tensor *dy, cudl_tensor *dx) {
  const int from_y = activation_info[kind].backward_from_y;
  return backward(ctx, function, kind, alpha, from_y ? y : x,
                  from_y ? "y" : "x", dy, dx);
}

cudl_status cudl_sigmoid_forward(cudl_context *ctx, const cudl_tensor *x,
                                 cudl_tensor *y) {
  return cudl__activation_forward(ctx, __func__, CUDL_ACT_SIGMOID, 0.0f, x, y);
}
cudl_status cudl_sigmoid_backward(cudl_context *ctx, const cudl_tensor *y,
                                  const cudl_tensor *dy, cudl_tensor *dx) {
  return backward(ctx, __func__, CUDL_ACT_SIGMOID, 0.0f, y, "y", dy, dx);
}

cudl_status cudl_tanh_forward(cudl_context *ctx, const cudl_tensor *x,
                              cudl_tensor *y) {
  return cudl__activation_forward(ctx, __func__, CUDL_ACT_TANH, 0.0f, x, y);
}
cudl_status cudl_tanh_backward(cudl_context *ctx, const cudl_tensor *y,
                               const cudl_tensor *dy, cudl_tensor *dx) {
  return backward(ctx, __func__, CUDL_ACT_TANH, 0.0f, y, "y", dy, dx);
}

cudl_status cudl_relu_forward(cudl_context *ctx, const cudl_tensor *x,
                              cudl_tensor *y) {
  return cudl__activation_forward(ctx, __func__, CUDL_ACT_RELU, 0.0f, x, y);
}
cudl_status cudl_relu_backward(cudl_context *ctx, const cudl_tensor *x,
                               const cudl_tensor *dy, cudl_tensor *dx) {
  return backward(ctx, __func__, CUDL_ACT_RELU, 0.0f, x, "x", dy, dx);
}

cudl_status cudl_leaky_relu_forward(cudl_context *ctx, const cudl_tensor *x,
                                    float alpha, cudl_tensor *y) {
  if (ctx != NULL && check_alpha(ctx, __func__, alpha) != CUDL_OK)
    return CUDL_ERR_INVALID_ARGUMENT;
  return cudl__activation_forward(ctx, __func__, CUDL_ACT_LEAKY_RELU, alpha, x,
                                  y);
}
cudl_status cudl_leaky_relu_backward(cudl_context *ctx, const cudl_tensor *x,
                                     float alpha, const cudl_tensor *dy,
                                     cudl_tensor *dx) {
  if (ctx != NULL && check_alpha(ctx, __func__, alpha) != CUDL_OK)
    return CUDL_ERR_INVALID_ARGUMENT;
  return backward(ctx, __func__, CUDL_ACT_LEAKY_RELU, alpha, x, "x", dy, dx);
}

cudl_status cudl_elu_forward(cudl_context *ctx, const cudl_tensor *x,
                             float alpha, cudl_tensor *y) {
  if (ctx != NULL && check_alpha(ctx, __func__, alpha) != CUDL_OK)
    return CUDL_ERR_INVALID_ARGUMENT;
  return cudl__activation_forward(ctx, __func__, CUDL_ACT_ELU, alpha, x, y);
}
cudl_status cudl_elu_backward(cudl_context *ctx, const cudl_tensor *x,
                              float alpha, const cudl_tensor *dy,
                              cudl_tensor *dx) {
  if (ctx != NULL && check_alpha(ctx, __func__, alpha) != CUDL_OK)
    return CUDL_ERR_INVALID_ARGUMENT;
  return backward(ctx, __func__, CUDL_ACT_ELU, alpha, x, "x", dy, dx);
}

cudl_status cudl_gelu_forward(cudl_context *ctx, const cudl_tensor *x,
                              cudl_tensor *y) {
  return cudl__activation_forward(ctx, __func__, CUDL_ACT_GELU, 0.0f, x, y);
}
cudl_status cudl_gelu_backward(cudl_context *ctx, const cudl_tensor *x,
                               const cudl_tensor *dy, cudl_tensor *dx) {
  return backward(ctx, __func__, CUDL_ACT_GELU, 0.0f, x, "x", dy, dx);
}

cudl_status cudl_silu_forward(cudl_context *ctx, const cudl_tensor *x,
                              cudl_tensor *y) {
  return cudl__activation_forward(ctx, __func__, CUDL_ACT_SILU, 0.0f, x, y);
}
cudl_status cudl_silu_backward(cudl_context *ctx, const cudl_tensor *x,
                               const cudl_tensor *dy, cudl_tensor *dx) {
  return backward(ctx, __func__, CUDL_ACT_SILU, 0.0f, x, "x", dy, dx);
}

/* x viewed as [outer, channels, inner] for a slope of one element (shared)
 * or one per channel (dimension 1 of x). */
static cudl_status prelu_layout(cudl_context *ctx, const char *function,
                                const cudl_tensor *x, const cudl_tensor *slope,
                                int64_t *outer, int64_t *channels,
                                int64_t *inner) {
  if (slope->numel == 1) {
    *outer = 1;
    *channels = 1;
    *inner = x->numel;
    return CUDL_OK;
  }
  if (x->ndim < 2 || slope->numel != x->shape[1])
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "slope has %lld elements; it needs 1 or one per channel "
                      "(dimension 1 of x, which has %d dimensions)",
                      (long long)slope->numel, x->ndim);
  cudl__channel_view(x, outer, channels, inner);
  if (x->numel == 0) *inner = 0;
  return CUDL_OK;
}

cudl_status cudl_prelu_forward(cudl_context *ctx, const cudl_tensor *x,
                               const cudl_tensor *slope, cudl_tensor *y) {
  const cudl_tensor *tensors[2];
  static const char *const names[2] = {"x", "y"};
  static const char *const slope_name[1] = {"slope"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  tensors[0] = x;
  tensors[1] = y;
  status = cudl__check_data(ctx, __func__, &data, tensors, names, 2);
  if (status == CUDL_OK)
    status = cudl__check_f32_params(ctx, __func__, &slope, slope_name, 1);
  if (status == CUDL_OK)
    status = prelu_layout(ctx, __func__, x, slope, &outer, &channels, &inner);
  if (status != CUDL_OK || x->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, x->dtype, prelu_forward, x->data,
                      (const float *)slope->data, y->data, outer, channels,
                      inner);
}

cudl_status cudl_prelu_backward(cudl_context *ctx, const cudl_tensor *x,
                                const cudl_tensor *slope, const cudl_tensor *dy,
                                cudl_tensor *dx, cudl_tensor *dslope) {
  const cudl_tensor *tensors[3], *slopes[2];
  static const char *const names[3] = {"x", "dy", "dx"};
  static const char *const slope_names[2] = {"slope", "dslope"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  tensors[0] = x;
  tensors[1] = dy;
  tensors[2] = dx;
  slopes[0] = slope;
  slopes[1] = dslope;
  status = cudl__check_data(ctx, __func__, &data, tensors, names, 3);
  if (status == CUDL_OK)
    status = cudl__check_f32_params(ctx, __func__, slopes, slope_names, 2);
  if (status == CUDL_OK)
    status = prelu_layout(ctx, __func__, x, slope, &outer, &channels, &inner);
  if (status != CUDL_OK || channels == 0) return status;
  /* An empty x still has a defined slope gradient: zero. */
  return CUDL_OP_CALL(ctx, __func__, x->dtype, prelu_backward, x->data,
                      (const float *)slope->data, dy->data, dx->data,
                      (float *)dslope->data, outer, channels, inner);
}

cudl_status cudl_rrelu_forward(cudl_context *ctx, const cudl_tensor *x,
                               float lower, float upper, int training,
                               cudl_tensor *noise, cudl_tensor *y) {
  const cudl_tensor *tensors[3];
  static const char *const names[3] = {"x", "y", "noise"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = x;
  tensors[1] = y;
  tensors[2] = noise;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!isfinite(lower) || !isfinite(upper) || !(lower >= 0.0f) ||
      !(lower <= upper))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "need finite 0 <= lower <= upper, got lower %g upper %g",
                     (double)lower, (double)upper);
  if (training && noise == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "noise is NULL in training, where backward needs it");
  status = cudl__check_data(ctx, __func__, &data, tensors, names,
                            noise == NULL ? 2 : 3);
  if (status != CUDL_OK || x->numel == 0) return status;
  status =
      CUDL_OP_CALL(ctx, __func__, x->dtype, rrelu_forward, x->data,
                   noise == NULL ? NULL : noise->data, y->data, x->numel, lower,
                   upper, training != 0, ctx->rng_seed, ctx->rng_offset);
  if (status == CUDL_OK && training)
    ctx->rng_offset += cudl__philox_blocks(x->numel);
  return status;
}

cudl_status cudl_rrelu_backward(cudl_context *ctx, const cudl_tensor *noise,
                                const cudl_tensor *dy, cudl_tensor *dx) {
  const cudl_tensor *tensors[3];
  static const char *const names[3] = {"noise", "dy", "dx"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = noise;
  tensors[1] = dy;
  tensors[2] = dx;
  status = cudl__check_data(ctx, __func__, &data, tensors, names, 3);
  if (status != CUDL_OK || noise->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, dy->dtype, mul, dy->data, noise->data,
                      dx->data, noise->numel);
}
