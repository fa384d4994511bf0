/* elementwise.c - validation and dispatch of elementwise arithmetic and
 * full reductions. */
#include <math.h>

#include "core/internal.h"

static cudl_status check_alpha(cudl_context *ctx, const char *function,
                               float alpha) {
  if (!isfinite(alpha))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "alpha must be finite, got %g", (double)alpha);
  return CUDL_OK;
}

cudl_status cudl_add(cudl_context *ctx, const cudl_tensor *a, float alpha,
                     const cudl_tensor *b, cudl_tensor *out) {
  const cudl_tensor *tensors[3];
  static const char *const names[3] = {"a", "b", "out"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = a;
  tensors[1] = b;
  tensors[2] = out;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_alpha(ctx, __func__, alpha);
  if (status == CUDL_OK)
    status = cudl__check_data(ctx, __func__, &data, tensors, names, 3);
  if (status != CUDL_OK || a->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, a->dtype, add_scaled, a->data, alpha,
                      b->data, out->data, a->numel);
}

cudl_status cudl_mul(cudl_context *ctx, const cudl_tensor *a,
                     const cudl_tensor *b, cudl_tensor *out) {
  const cudl_tensor *tensors[3];
  static const char *const names[3] = {"a", "b", "out"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = a;
  tensors[1] = b;
  tensors[2] = out;
  status = cudl__check_data(ctx, __func__, &data, tensors, names, 3);
  if (status != CUDL_OK || a->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, a->dtype, mul, a->data, b->data, out->data,
                      a->numel);
}

cudl_status cudl_scale(cudl_context *ctx, const cudl_tensor *a, float alpha,
                       cudl_tensor *out) {
  const cudl_tensor *tensors[2];
  static const char *const names[2] = {"a", "out"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = a;
  tensors[1] = out;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_alpha(ctx, __func__, alpha);
  if (status == CUDL_OK)
    status = cudl__check_data(ctx, __func__, &data, tensors, names, 2);
  if (status != CUDL_OK || a->numel == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, a->dtype, scale, a->data, alpha, out->data,
                      a->numel);
}

static cudl_status reduce_all(cudl_context *ctx, const char *function,
                              const cudl_tensor *x, cudl_tensor *out,
                              int mean) {
  static const char *const x_name[1] = {"x"};
  cudl_status status = cudl__check_f32_op(ctx, function, &x, x_name, 1);
  if (status == CUDL_OK)
    status = cudl__check_f32_scalar(ctx, function, out, "out");
  if (status != CUDL_OK) return status;
  if (mean && x->numel == 0)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "the mean of no elements is undefined");
  return CUDL_OP_CALL(ctx, function, x->dtype, sum, x->data, out->data,
                      x->numel, mean);
}

cudl_status cudl_sum(cudl_context *ctx, const cudl_tensor *x,
                     cudl_tensor *out) {
  return reduce_all(ctx, __func__, x, out, 0);
}

cudl_status cudl_mean(cudl_context *ctx, const cudl_tensor *x,
                      cudl_tensor *out) {
  return reduce_all(ctx, __func__, x, out, 1);
}

cudl_status cudl_count_nonfinite(cudl_context *ctx, const cudl_tensor *x,
                                 int64_t *nan_count, int64_t *inf_count) {
  static const char *const x_name[1] = {"x"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  int64_t counts[2] = {0, 0};
  cudl_status status = cudl__check_data(ctx, __func__, &data, &x, x_name, 1);
  if (status != CUDL_OK) return status;
  if (nan_count == NULL || inf_count == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                      "nan_count and inf_count must not be NULL");
  if (x->numel > 0)
    status = CUDL_OP_CALL(ctx, __func__, x->dtype, count_nonfinite, x->data,
                          x->numel, counts);
  if (status != CUDL_OK) return status;
  *nan_count = counts[0];
  *inf_count = counts[1];
  return CUDL_OK;
}

cudl_status cudl_l2_norm(cudl_context *ctx, const cudl_tensor *x,
                         cudl_tensor *norm) {
  static const char *const x_name[1] = {"x"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status = cudl__check_data(ctx, __func__, &data, &x, x_name, 1);
  if (status == CUDL_OK)
    status = cudl__check_f32_scalar(ctx, __func__, norm, "norm");
  if (status != CUDL_OK) return status;
  if (norm->storage == x->storage && cudl__tensors_overlap(norm, x))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "norm overlaps x");
  return CUDL_OP_CALL(ctx, __func__, x->dtype, l2_norm, x->data, norm->data,
                      x->numel);
}
