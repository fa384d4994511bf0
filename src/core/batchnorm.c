/* batchnorm.c - validation and dispatch of batch normalisation. */
#include <math.h>

#include "core/internal.h"

/* x (and the data tensors of its shape, all in x's dtype) is [N, C, ...]
 * with 2 to 5 dimensions; the per-channel tensors (parameters and
 * statistics) are f32 of ctx with C elements each, whatever x's dtype. */
static cudl_status check_batchnorm(cudl_context *ctx, const char *function,
                                   const cudl_tensor *const *full,
                                   const char *const *full_names, int n_full,
                                   const cudl_tensor *const *channel,
                                   const char *const *channel_names,
                                   int n_channel, int64_t *outer,
                                   int64_t *channels, int64_t *inner) {
  const cudl_tensor *x = full[0];
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  int i;
  cudl_status status =
      cudl__check_data(ctx, function, &data, full, full_names, n_full);
  if (status != CUDL_OK) return status;
  for (i = 0; i < n_channel && status == CUDL_OK; ++i)
    status = cudl__check_f32_params(ctx, function, channel + i,
                                    channel_names + i, 1);
  if (status != CUDL_OK) return status;
  if (x->ndim < 2)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "x has %d dimensions; batch normalisation needs [N, C, "
                      "...] (2 to 5)",
                      x->ndim);
  for (i = 0; i < n_channel; ++i)
    if (channel[i]->numel != x->shape[1])
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s has %lld elements; x has %lld channels",
                        channel_names[i], (long long)channel[i]->numel,
                        (long long)x->shape[1]);
  cudl__channel_view(x, outer, channels, inner);
  return CUDL_OK;
}

static cudl_status check_eps(cudl_context *ctx, const char *function,
                             float eps) {
  if (!(eps > 0.0f) || !isfinite(eps))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "eps must be finite and > 0, got %g", (double)eps);
  return CUDL_OK;
}

/* The settings of the training statistics: eps, and momentum in [0, 1]. */
static cudl_status check_training_settings(cudl_context *ctx,
                                           const char *function, float momentum,
                                           float eps) {
  cudl_status status = check_eps(ctx, function, eps);
  if (status == CUDL_OK && !(momentum >= 0.0f && momentum <= 1.0f))
    status = cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "momentum must be in [0, 1], got %g", (double)momentum);
  return status;
}

/* The training statistics need a variance: at least 2 values per channel. */
static cudl_status check_training_values(cudl_context *ctx,
                                         const char *function, int64_t values) {
  if (values < 2)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "training needs at least 2 values per channel, x has "
                      "%lld",
                      (long long)values);
  return CUDL_OK;
}

cudl_status cudl_batchnorm_forward_training(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *gamma,
    const cudl_tensor *beta, float momentum, float eps,
    cudl_tensor *running_mean, cudl_tensor *running_var, cudl_tensor *y,
    cudl_tensor *save_mean, cudl_tensor *save_invstd) {
  const cudl_tensor *full[2], *channel[6];
  static const char *const full_names[2] = {"x", "y"};
  static const char *const channel_names[6] = {"gamma",        "beta",
                                               "running_mean", "running_var",
                                               "save_mean",    "save_invstd"};
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_training_settings(ctx, __func__, momentum, eps);
  if (status != CUDL_OK) return status;
  full[0] = x;
  full[1] = y;
  channel[0] = gamma;
  channel[1] = beta;
  channel[2] = running_mean;
  channel[3] = running_var;
  channel[4] = save_mean;
  channel[5] = save_invstd;
  status = check_batchnorm(ctx, __func__, full, full_names, 2, channel,
                           channel_names, 6, &outer, &channels, &inner);
  if (status != CUDL_OK || channels == 0) return status;
  status = check_training_values(ctx, __func__, outer * inner);
  if (status != CUDL_OK) return status;
  return CUDL_OP_CALL(
      ctx, __func__, x->dtype, batchnorm_forward_training, x->data, gamma->data,
      beta->data, momentum, eps, running_mean->data, running_var->data, y->data,
      save_mean->data, save_invstd->data, outer, channels, inner);
}

cudl_status cudl_batchnorm_forward_inference(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *gamma,
    const cudl_tensor *beta, const cudl_tensor *running_mean,
    const cudl_tensor *running_var, float eps, cudl_tensor *y) {
  const cudl_tensor *full[2], *channel[4];
  static const char *const full_names[2] = {"x", "y"};
  static const char *const channel_names[4] = {"gamma", "beta", "running_mean",
                                               "running_var"};
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_eps(ctx, __func__, eps);
  if (status != CUDL_OK) return status;
  full[0] = x;
  full[1] = y;
  channel[0] = gamma;
  channel[1] = beta;
  channel[2] = running_mean;
  channel[3] = running_var;
  status = check_batchnorm(ctx, __func__, full, full_names, 2, channel,
                           channel_names, 4, &outer, &channels, &inner);
  if (status != CUDL_OK || x->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, x->dtype, batchnorm_forward_inference,
                      x->data, gamma->data, beta->data, running_mean->data,
                      running_var->data, eps, y->data, outer, channels, inner);
}

cudl_status cudl_batchnorm_backward(cudl_context *ctx, const cudl_tensor *x,
                                    const cudl_tensor *dy,
                                    const cudl_tensor *gamma,
                                    const cudl_tensor *save_mean,
                                    const cudl_tensor *save_invstd,
                                    cudl_tensor *dx, cudl_tensor *dgamma,
                                    cudl_tensor *dbeta) {
  const cudl_tensor *full[3], *channel[5];
  static const char *const full_names[3] = {"x", "dy", "dx"};
  static const char *const channel_names[5] = {
      "gamma", "save_mean", "save_invstd", "dgamma", "dbeta"};
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  full[0] = x;
  full[1] = dy;
  full[2] = dx;
  channel[0] = gamma;
  channel[1] = save_mean;
  channel[2] = save_invstd;
  channel[3] = dgamma;
  channel[4] = dbeta;
  status = check_batchnorm(ctx, __func__, full, full_names, 3, channel,
                           channel_names, 5, &outer, &channels, &inner);
  if (status != CUDL_OK || channels == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, x->dtype, batchnorm_backward, x->data,
                      dy->data, gamma->data, save_mean->data, save_invstd->data,
                      dx->data, dgamma->data, dbeta->data, outer, channels,
                      inner);
}

cudl_status cudl_batchnorm_statistics(cudl_context *ctx, const cudl_tensor *x,
                                      float momentum, float eps,
                                      cudl_tensor *running_mean,
                                      cudl_tensor *running_var,
                                      cudl_tensor *save_mean,
                                      cudl_tensor *save_invstd) {
  const cudl_tensor *full[1], *channel[4];
  static const char *const full_names[1] = {"x"};
  static const char *const channel_names[4] = {"running_mean", "running_var",
                                               "save_mean", "save_invstd"};
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_training_settings(ctx, __func__, momentum, eps);
  if (status != CUDL_OK) return status;
  full[0] = x;
  channel[0] = running_mean;
  channel[1] = running_var;
  channel[2] = save_mean;
  channel[3] = save_invstd;
  status = check_batchnorm(ctx, __func__, full, full_names, 1, channel,
                           channel_names, 4, &outer, &channels, &inner);
  if (status != CUDL_OK || channels == 0) return status;
  status = check_training_values(ctx, __func__, outer * inner);
  if (status != CUDL_OK) return status;
  return CUDL_OP_CALL(ctx, __func__, x->dtype, batchnorm_statistics, x->data,
                      momentum, eps, running_mean->data, running_var->data,
                      save_mean->data, save_invstd->data, outer, channels,
                      inner);
}

cudl_status cudl_batchnorm_apply(cudl_context *ctx, const cudl_tensor *x,
                                 const cudl_tensor *gamma,
                                 const cudl_tensor *beta,
                                 const cudl_tensor *mean,
                                 const cudl_tensor *invstd,
                                 const cudl_tensor *residual, int relu,
                                 cudl_tensor *y) {
  const cudl_tensor *full[3], *channel[4];
  static const char *const channel_names[4] = {"gamma", "beta", "mean",
                                               "invstd"};
  const char *full_names[3];
  int n_full = 0;
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  full_names[n_full] = "x";
  full[n_full++] = x;
  full_names[n_full] = "y";
  full[n_full++] = y;
  if (residual != NULL) {
    full_names[n_full] = "residual";
    full[n_full++] = residual;
  }
  channel[0] = gamma;
  channel[1] = beta;
  channel[2] = mean;
  channel[3] = invstd;
  status = check_batchnorm(ctx, __func__, full, full_names, n_full, channel,
                           channel_names, 4, &outer, &channels, &inner);
  if (status != CUDL_OK || x->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, x->dtype, batchnorm_apply, x->data,
                      gamma->data, beta->data, mean->data, invstd->data,
                      residual != NULL ? residual->data : NULL, relu != 0,
                      y->data, outer, channels, inner);
}

cudl_status cudl_batchnorm_relu_backward(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *y,
    const cudl_tensor *dy, const cudl_tensor *gamma,
    const cudl_tensor *save_mean, const cudl_tensor *save_invstd,
    cudl_tensor *dx, cudl_tensor *dresidual, cudl_tensor *dgamma,
    cudl_tensor *dbeta) {
  const cudl_tensor *full[5], *channel[5];
  static const char *const channel_names[5] = {
      "gamma", "save_mean", "save_invstd", "dgamma", "dbeta"};
  const char *full_names[5];
  int n_full = 0;
  int64_t outer = 0, channels = 0, inner = 0;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  full_names[n_full] = "x";
  full[n_full++] = x;
  full_names[n_full] = "y";
  full[n_full++] = y;
  full_names[n_full] = "dy";
  full[n_full++] = dy;
  full_names[n_full] = "dx";
  full[n_full++] = dx;
  if (dresidual != NULL) {
    full_names[n_full] = "dresidual";
    full[n_full++] = dresidual;
  }
  channel[0] = gamma;
  channel[1] = save_mean;
  channel[2] = save_invstd;
  channel[3] = dgamma;
  channel[4] = dbeta;
  status = check_batchnorm(ctx, __func__, full, full_names, n_full, channel,
                           channel_names, 5, &outer, &channels, &inner);
  if (status != CUDL_OK) return status;
  /* The passes read x, y and dy after writing some of dx and dresidual;
   * dy only element by element, before writing that element. */
  if (cudl__tensors_overlap(dx, x) || cudl__tensors_overlap(dx, y) ||
      cudl__tensors_overlap(dresidual, x) ||
      cudl__tensors_overlap(dresidual, y) ||
      cudl__tensors_overlap(dresidual, dx) ||
      cudl__tensors_overlap_unlike(dx, dy) ||
      cudl__tensors_overlap_unlike(dresidual, dy))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "dx and dresidual may share memory with dy only, and "
                     "only as dy itself (not a shifted view of it)");
  if (channels == 0) return CUDL_OK;
  return CUDL_OP_CALL(ctx, __func__, x->dtype, batchnorm_relu_backward,
                      x->data, y->data, dy->data, gamma->data, save_mean->data,
                      save_invstd->data, dx->data,
                      dresidual != NULL ? dresidual->data : NULL, dgamma->data,
                      dbeta->data, outer, channels, inner);
}
