/* dropout.c - validation and dispatch of inverted dropout, alone and after
 * an activation. */
#include <math.h>

#include "core/internal.h"

/* The checks of both forwards (ctx not NULL): p in [0, 1], the mask that
 * training's backward needs, and the tensors. */
static cudl_status check_forward(cudl_context *ctx, const char *function,
                                 const cudl_tensor *x, float p, int training,
                                 const cudl_tensor *mask,
                                 const cudl_tensor *y) {
  const cudl_tensor *tensors[3];
  static const char *const names[3] = {"x", "y", "mask"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  tensors[0] = x;
  tensors[1] = y;
  tensors[2] = mask;
  if (!(p >= 0.0f && p <= 1.0f))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "p must be in [0, 1], got %g", (double)p);
  if (training && mask == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "mask is NULL in training, where backward needs it");
  return cudl__check_data(ctx, function, &data, tensors, names,
                          mask == NULL ? 2 : 3);
}

cudl_status cudl_dropout_forward(cudl_context *ctx, const cudl_tensor *x,
                                 float p, int training, cudl_tensor *mask,
                                 cudl_tensor *y) {
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_forward(ctx, __func__, x, p, training, mask, y);
  if (status != CUDL_OK || x->numel == 0) return status;
  status = CUDL_OP_CALL(ctx, __func__, x->dtype, dropout_forward, x->data,
                        mask == NULL ? NULL : mask->data, y->data, x->numel, p,
                        training != 0, ctx->rng_seed, ctx->rng_offset);
  if (status == CUDL_OK && training)
    ctx->rng_offset += cudl__philox_blocks(x->numel);
  return status;
}

cudl_status cudl_dropout_backward(cudl_context *ctx, const cudl_tensor *mask,
                                  const cudl_tensor *dy, cudl_tensor *dx) {
  const cudl_tensor *tensors[3];
  static const char *const names[3] = {"mask", "dy", "dx"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = mask;
  tensors[1] = dy;
  tensors[2] = dx;
  status = cudl__check_data(ctx, __func__, &data, tensors, names, 3);
  if (status != CUDL_OK || mask->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, dy->dtype, mul, dy->data, mask->data,
                      dx->data, mask->numel);
}

/* The checks the fused calls share beyond their tensors': a known type
 * whose backward reads x, and a finite alpha. */
static cudl_status check_fused_activation(cudl_context *ctx,
                                          const char *function,
                                          cudl_activation_type type,
                                          float alpha) {
  const cudl_activation_info *info = cudl__activation_info(type);
  if (info == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "unknown activation type %d", (int)type);
  if (info->backward_from_y)
    return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, function,
                      "%s's gradient is computed from its output, which the "
                      "fused pass does not keep: apply it, then "
                      "cudl_dropout_forward",
                      info->name);
  if (!isfinite(alpha))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "alpha must be finite, got %g", (double)alpha);
  return CUDL_OK;
}

cudl_status cudl_activation_dropout_forward(cudl_context *ctx,
                                            cudl_activation_type type,
                                            float alpha, const cudl_tensor *x,
                                            float p, cudl_tensor *mask,
                                            cudl_tensor *y) {
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_fused_activation(ctx, __func__, type, alpha);
  if (status == CUDL_OK)
    status = check_forward(ctx, __func__, x, p, 1, mask, y);
  if (status != CUDL_OK || x->numel == 0) return status;
  status = CUDL_OP_CALL(ctx, __func__, x->dtype, activation_dropout_forward,
                        type, alpha, x->data, mask->data, y->data, x->numel, p,
                        ctx->rng_seed, ctx->rng_offset);
  if (status == CUDL_OK) ctx->rng_offset += cudl__philox_blocks(x->numel);
  return status;
}

cudl_status cudl_activation_dropout_backward(cudl_context *ctx,
                                             cudl_activation_type type,
                                             float alpha, const cudl_tensor *x,
                                             const cudl_tensor *mask,
                                             const cudl_tensor *dy,
                                             cudl_tensor *dx) {
  const cudl_tensor *tensors[4];
  static const char *const names[4] = {"x", "mask", "dy", "dx"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = x;
  tensors[1] = mask;
  tensors[2] = dy;
  tensors[3] = dx;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_fused_activation(ctx, __func__, type, alpha);
  if (status != CUDL_OK) return status;
  status = cudl__check_data(ctx, __func__, &data, tensors, names, 4);
  if (status != CUDL_OK || x->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, x->dtype, activation_dropout_backward,
                      type, alpha, x->data, mask->data, dy->data, dx->data,
                      x->numel);
}
