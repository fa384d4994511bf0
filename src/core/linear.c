/* linear.c - validation and dispatch of fully connected layers: three
 * matrix products and a bias, through the backend's gemm. */
#include <limits.h>

#include "core/internal.h"

/* The rows of an [..., features] tensor: the product of its leading
 * dimensions (not numel / features, which fails for features = 0). */
static int64_t leading_rows(const cudl_tensor *t) {
  int64_t rows = 1;
  int i;
  for (i = 0; i + 1 < t->ndim; ++i) rows *= t->shape[i];
  return rows;
}

/* a [..., a_last] and b [..., b_last] share their leading dimensions. */
static cudl_status check_rows(cudl_context *ctx, const char *function,
                              const cudl_tensor *a, const char *a_name,
                              int64_t a_last, const cudl_tensor *b,
                              const char *b_name, int64_t b_last) {
  int i;
  cudl_status status = cudl__require_nchw(ctx, function, a, a_name);
  if (status == CUDL_OK) status = cudl__require_nchw(ctx, function, b, b_name);
  if (status != CUDL_OK) return status;
  if (a->ndim < 1 || a->shape[a->ndim - 1] != a_last)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s's last dimension must be %lld", a_name,
                      (long long)a_last);
  if (b->ndim != a->ndim || b->shape[b->ndim - 1] != b_last)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s must have %s's leading dimensions and a last "
                      "dimension of %lld",
                      b_name, a_name, (long long)b_last);
  for (i = 0; i + 1 < a->ndim; ++i)
    if (a->shape[i] != b->shape[i])
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s and %s differ in dimension %d", a_name, b_name, i);
  return CUDL_OK;
}

/* w is [OUT, IN] and the sizes fit the BLAS interfaces' int. */
static cudl_status check_weight(cudl_context *ctx, const char *function,
                                const cudl_tensor *w, int64_t rows) {
  if (w->ndim != 2)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "w has %d dimensions; it must be [OUT, IN]", w->ndim);
  if (w->shape[0] > INT_MAX || w->shape[1] > INT_MAX || rows > INT_MAX)
    return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, function,
                      "a matrix dimension exceeds INT_MAX");
  return CUDL_OK;
}

cudl_status cudl_linear_forward(cudl_context *ctx, const cudl_tensor *x,
                                const cudl_tensor *w, const cudl_tensor *bias,
                                cudl_tensor *y) {
  const cudl_tensor *tensors[3];
  static const char *const names[3] = {"x", "w", "y"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  int64_t rows, in, out;
  cudl_status status;
  int i;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  tensors[0] = x;
  tensors[1] = w;
  tensors[2] = y;
  for (i = 0; i < 3; ++i) {
    status = cudl__check_data(ctx, __func__, &data, &tensors[i], &names[i], 1);
    if (status != CUDL_OK) return status;
  }
  rows = leading_rows(x);
  status = check_weight(ctx, __func__, w, rows);
  if (status != CUDL_OK) return status;
  out = w->shape[0];
  in = w->shape[1];
  status = check_rows(ctx, __func__, x, "x", in, y, "y", out);
  if (status == CUDL_OK && bias != NULL)
    status = cudl__check_vector(ctx, __func__, &data, bias, "bias", out);
  if (status == CUDL_OK &&
      (cudl__tensors_overlap(y, x) || cudl__tensors_overlap(y, w) ||
       cudl__tensors_overlap(y, bias)))
    status = CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "y shares storage with an input; it must not");
  if (status != CUDL_OK || y->numel == 0) return status;
  if (in == 0) /* an empty product: y = bias, or 0 */
    status =
        CUDL_OP_CALL(ctx, __func__, y->dtype, fill, y->data, y->numel, 0.0f);
  else
    status = CUDL_OP_CALL(ctx, __func__, x->dtype, gemm, 0, 1, rows, out, in,
                          1.0f, x->data, in, w->data, in, 0.0f, y->data, out);
  if (status == CUDL_OK && bias != NULL)
    status = CUDL_OP_CALL(ctx, __func__, y->dtype, bias_add, y->data,
                          bias->data, rows, out, 1);
  return status;
}

cudl_status cudl_linear_backward(cudl_context *ctx, const cudl_tensor *x,
                                 const cudl_tensor *w, const cudl_tensor *dy,
                                 cudl_tensor *dx, cudl_tensor *dw,
                                 cudl_tensor *dbias) {
  const cudl_tensor *inputs[3], *outputs[3];
  static const char *const input_names[3] = {"w", "dy", "x"};
  static const char *const output_names[3] = {"dx", "dw", "dbias"};
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  int64_t rows, in, out;
  cudl_status status;
  int i, j;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  inputs[0] = w;
  inputs[1] = dy;
  inputs[2] = x;
  outputs[0] = dx;
  outputs[1] = dw;
  outputs[2] = dbias;
  /* x is needed (and checked) only for dw. */
  for (i = 0; i < (dw != NULL ? 3 : 2); ++i) {
    status =
        cudl__check_data(ctx, __func__, &data, &inputs[i], &input_names[i], 1);
    if (status != CUDL_OK) return status;
  }
  for (i = 0; i < 3; ++i) {
    if (outputs[i] == NULL) continue;
    status = cudl__check_data(ctx, __func__, &data, &outputs[i],
                              &output_names[i], 1);
    if (status != CUDL_OK) return status;
    for (j = 0; j < 3; ++j)
      if (cudl__tensors_overlap(outputs[i], inputs[j]) ||
          (j != i && cudl__tensors_overlap(outputs[i], outputs[j])))
        return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                         "%s shares storage with another operand; it must "
                         "not",
                         output_names[i]);
  }
  rows = leading_rows(dy);
  status = check_weight(ctx, __func__, w, rows);
  if (status != CUDL_OK) return status;
  out = w->shape[0];
  in = w->shape[1];
  if (dy->ndim < 1 || dy->shape[dy->ndim - 1] != out)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE, "dy's last dimension must be %lld",
                     (long long)out);
  if (dx != NULL)
    status = check_rows(ctx, __func__, dy, "dy", out, dx, "dx", in);
  if (status == CUDL_OK && dw != NULL)
    status = check_rows(ctx, __func__, dy, "dy", out, x, "x", in);
  if (status == CUDL_OK && dw != NULL &&
      (dw->ndim != 2 || dw->shape[0] != out || dw->shape[1] != in))
    status =
        CUDL_FAIL(ctx, CUDL_ERR_SHAPE, "dw must have w's shape [%lld, %lld]",
                  (long long)out, (long long)in);
  if (status == CUDL_OK && dbias != NULL)
    status = cudl__check_vector(ctx, __func__, &data, dbias, "dbias", out);
  if (status != CUDL_OK) return status;

  /* dx[rows, in] = dy[rows, out] w[out, in] */
  if (dx != NULL && dx->numel > 0)
    status = out == 0 ? CUDL_OP_CALL(ctx, __func__, dx->dtype, fill, dx->data,
                                     dx->numel, 0.0f)
                      : CUDL_OP_CALL(ctx, __func__, dy->dtype, gemm, 0, 0, rows,
                                     in, out, 1.0f, dy->data, out, w->data, in,
                                     0.0f, dx->data, in);
  /* dw[out, in] = dy^T[out, rows] x[rows, in] */
  if (status == CUDL_OK && dw != NULL && dw->numel > 0)
    status = rows == 0 ? CUDL_OP_CALL(ctx, __func__, dw->dtype, fill, dw->data,
                                      dw->numel, 0.0f)
                       : CUDL_OP_CALL(ctx, __func__, dy->dtype, gemm, 1, 0, out,
                                      in, rows, 1.0f, dy->data, out, x->data,
                                      in, 0.0f, dw->data, in);
  if (status == CUDL_OK && dbias != NULL && dbias->numel > 0)
    status = rows == 0 ? CUDL_OP_CALL(ctx, __func__, dbias->dtype, fill,
                                      dbias->data, dbias->numel, 0.0f)
                       : CUDL_OP_CALL(ctx, __func__, dy->dtype, channel_sum,
                                      dy->data, dbias->data, rows, out, 1);
  return status;
}
