/* conv.c - validation, output shapes and dispatch of 2-D convolution. */
#include <limits.h>
#include <math.h>
#include <string.h>

#include "core/internal.h"

/* Checks desc against x_shape and w_shape and fills g. Messages go to ctx
 * (which may be NULL) and name the caller's arguments x_name and w_name
 * (the tensors whose shapes x_shape and w_shape are: "dx", "dw", ...). */
static cudl_status make_geometry(cudl_context *ctx, const char *function,
                                 const cudl_conv2d_desc *desc,
                                 const int64_t x_shape[4], const char *x_name,
                                 const int64_t w_shape[4], const char *w_name,
                                 cudl_conv2d_geometry *g) {
  static const char *const x_dims[4] = {"N", "C", "H", "W"};
  static const char *const w_dims[4] = {"K", "C / groups", "R", "S"};
  int i;
  if (desc == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function, "desc is NULL");
  if (desc->stride_h < 1 || desc->stride_w < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "stride %dx%d: both must be >= 1", desc->stride_h,
                      desc->stride_w);
  if (desc->dilation_h < 1 || desc->dilation_w < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "dilation %dx%d: both must be >= 1", desc->dilation_h,
                      desc->dilation_w);
  if (desc->groups < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "groups is %d: must be >= 1", desc->groups);
  if (desc->pad_h < 0 || desc->pad_w < 0)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "pad %dx%d: must be >= 0", desc->pad_h, desc->pad_w);
  for (i = 0; i < 4; ++i) {
    if (x_shape[i] < (i == 0 ? 0 : 1))
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s dimension %s is %lld: must be >= %d", x_name,
                        x_dims[i], (long long)x_shape[i], i == 0 ? 0 : 1);
    if (w_shape[i] < 1)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s dimension %s is %lld: must be >= 1", w_name,
                        w_dims[i], (long long)w_shape[i]);
    /* cuDNN and the BLAS interfaces take int sizes. */
    if (x_shape[i] > INT_MAX || w_shape[i] > INT_MAX)
      return cudl__fail(
          ctx, CUDL_ERR_UNSUPPORTED, function,
          "%s dimension %s is %lld: larger than INT_MAX (%d), "
          "the most cuDNN and the BLAS take",
          x_shape[i] > INT_MAX ? x_name : w_name,
          x_shape[i] > INT_MAX ? x_dims[i] : w_dims[i],
          (long long)(x_shape[i] > INT_MAX ? x_shape[i] : w_shape[i]), INT_MAX);
  }
  memset(g, 0, sizeof *g);
  g->n = x_shape[0];
  g->c = x_shape[1];
  g->h = x_shape[2];
  g->w = x_shape[3];
  g->k = w_shape[0];
  g->r = w_shape[2];
  g->s = w_shape[3];
  g->sh = desc->stride_h;
  g->sw = desc->stride_w;
  g->ph = desc->pad_h;
  g->pw = desc->pad_w;
  g->dh = desc->dilation_h;
  g->dw = desc->dilation_w;
  g->groups = desc->groups;
  if (g->c % g->groups != 0 || g->k % g->groups != 0)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "groups %lld must divide both C (%lld) and K (%lld)",
                      (long long)g->groups, (long long)g->c, (long long)g->k);
  if (w_shape[1] != g->c / g->groups)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s has %lld input channels per filter; C / groups "
                      "is %lld",
                      w_name, (long long)w_shape[1],
                      (long long)(g->c / g->groups));
  /* pad <= dilation * (kernel - 1), written so that nothing overflows. */
  if ((g->ph + g->dh - 1) / g->dh > g->r - 1 ||
      (g->pw + g->dw - 1) / g->dw > g->s - 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "pad %lldx%lld is larger than the kernel allows: at "
                      "most dilation * (kernel - 1) = %lldx%lld",
                      (long long)g->ph, (long long)g->pw,
                      (long long)(g->dh * (g->r - 1)),
                      (long long)(g->dw * (g->s - 1)));
  /* The dilated kernel, dilation * (kernel - 1) + 1, must fit the padded
   * input; pad <= dilation * (kernel - 1) bounds the products. */
  if (g->dh * (g->r - 1) + 1 > g->h + 2 * g->ph ||
      g->dw * (g->s - 1) + 1 > g->w + 2 * g->pw)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "the dilated kernel %lldx%lld is larger than the padded "
                      "input %lldx%lld",
                      (long long)(g->dh * (g->r - 1) + 1),
                      (long long)(g->dw * (g->s - 1) + 1),
                      (long long)(g->h + 2 * g->ph),
                      (long long)(g->w + 2 * g->pw));
  g->oh = (g->h + 2 * g->ph - g->dh * (g->r - 1) - 1) / g->sh + 1;
  g->ow = (g->w + 2 * g->pw - g->dw * (g->s - 1) - 1) / g->sw + 1;
  /* The matrix products' sizes: output pixels per image, and one column of
   * the unrolled input. */
  if (g->oh * g->ow > INT_MAX || (g->c / g->groups) * g->r * g->s > INT_MAX)
    return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, function,
                      "the convolution's matrix sizes exceed INT_MAX");
  return CUDL_OK;
}

cudl_status cudl__conv2d_geometry(cudl_context *ctx, const char *function,
                                  const cudl_conv2d_desc *desc,
                                  const int64_t x_shape[4], const char *x_name,
                                  const int64_t w_shape[4], const char *w_name,
                                  cudl_conv2d_geometry *g) {
  return make_geometry(ctx, function, desc, x_shape, x_name, w_shape, w_name,
                       g);
}

cudl_status cudl_conv2d_output_shape(const cudl_conv2d_desc *desc,
                                     const int64_t x_shape[4],
                                     const int64_t w_shape[4],
                                     int64_t out_shape[4]) {
  cudl_conv2d_geometry g;
  cudl_status status;
  if (x_shape == NULL || w_shape == NULL || out_shape == NULL)
    return CUDL_ERR_INVALID_ARGUMENT;
  status = make_geometry(NULL, __func__, desc, x_shape, "x_shape", w_shape,
                         "w_shape", &g);
  if (status != CUDL_OK) return status;
  out_shape[0] = g.n;
  out_shape[1] = g.k;
  out_shape[2] = g.oh;
  out_shape[3] = g.ow;
  return CUDL_OK;
}

/* Each tensor non-NULL, of ctx, 4-D and of one float dtype and layout
 * (set in *data);
 * `out` (the tensor written) shares no storage with the others. */
static cudl_status check_operands(cudl_context *ctx, const char *function,
                                  cudl_data_dtype *data, const cudl_tensor *in1,
                                  const char *name1, const cudl_tensor *in2,
                                  const char *name2, const cudl_tensor *out,
                                  const char *out_name) {
  const cudl_tensor *tensors[3];
  const char *names[3];
  cudl_status status;
  int i;
  tensors[0] = in1;
  tensors[1] = in2;
  tensors[2] = out;
  names[0] = name1;
  names[1] = name2;
  names[2] = out_name;
  for (i = 0; i < 3; ++i) {
    status = cudl__check_data(ctx, function, data, &tensors[i], &names[i], 1);
    if (status != CUDL_OK) return status;
    if (tensors[i]->ndim != 4)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s has %d dimensions; convolution takes 4", names[i],
                        tensors[i]->ndim);
  }
  if (cudl__tensors_overlap(out, in1) || cudl__tensors_overlap(out, in2))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "%s shares storage with an input; it must not", out_name);
  return CUDL_OK;
}

static cudl_status check_output_shape(cudl_context *ctx, const char *function,
                                      const cudl_conv2d_geometry *g,
                                      const cudl_tensor *t, const char *name) {
  if (t->shape[0] != g->n || t->shape[1] != g->k || t->shape[2] != g->oh ||
      t->shape[3] != g->ow)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s must have shape [%lld, %lld, %lld, %lld]", name,
                      (long long)g->n, (long long)g->k, (long long)g->oh,
                      (long long)g->ow);
  return CUDL_OK;
}

/* The checks of both forward calls: operands, geometry (into g), y's
 * shape and the bias. */
static cudl_status check_forward(cudl_context *ctx, const char *function,
                                 cudl_data_dtype *data,
                                 const cudl_conv2d_desc *desc,
                                 const cudl_tensor *x, const cudl_tensor *w,
                                 const cudl_tensor *bias, const cudl_tensor *y,
                                 cudl_conv2d_geometry *g) {
  cudl_status status =
      check_operands(ctx, function, data, x, "x", w, "w", y, "y");
  if (status == CUDL_OK)
    status =
        make_geometry(ctx, function, desc, x->shape, "x", w->shape, "w", g);
  if (status == CUDL_OK) /* x's layout is w's and y's (check_operands) */
    g->channels_last = x->layout == CUDL_LAYOUT_NHWC;
  if (status == CUDL_OK) status = check_output_shape(ctx, function, g, y, "y");
  if (status == CUDL_OK && bias != NULL)
    status = cudl__check_vector(ctx, function, data, bias, "bias", g->k);
  if (status == CUDL_OK && cudl__tensors_overlap(y, bias))
    status = cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "y shares storage with bias; it must not");
  return status;
}

/* y = conv(x, w), then y += bias where there is one: two operators. */
static cudl_status convolve_then_bias(cudl_context *ctx, const char *function,
                                      const cudl_conv2d_geometry *g,
                                      const cudl_tensor *x,
                                      const cudl_tensor *w,
                                      const cudl_tensor *bias, cudl_tensor *y) {
  cudl_status status = CUDL_OP_CALL(ctx, function, x->dtype, conv2d_forward, g,
                                    x->data, w->data, y->data);
  if (status == CUDL_OK && bias != NULL) {
    int64_t outer, channels, inner;
    cudl__channel_view(y, &outer, &channels, &inner);
    status = CUDL_OP_CALL(ctx, function, y->dtype, bias_add, y->data,
                          bias->data, outer, channels, inner);
  }
  return status;
}

cudl_status cudl_conv2d_forward(cudl_context *ctx, const cudl_conv2d_desc *desc,
                                const cudl_tensor *x, const cudl_tensor *w,
                                const cudl_tensor *bias, cudl_tensor *y) {
  cudl_conv2d_geometry g;
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_forward(ctx, __func__, &data, desc, x, w, bias, y, &g);
  if (status != CUDL_OK || g.n == 0) return status;
  return convolve_then_bias(ctx, __func__, &g, x, w, bias, y);
}

cudl_status cudl_conv2d_forward_fused(
    cudl_context *ctx, const cudl_conv2d_desc *desc, const cudl_tensor *x,
    const cudl_tensor *w, const cudl_tensor *bias, const cudl_tensor *residual,
    int relu, float negative_slope, cudl_tensor *y) {
  static const char *const residual_name = "residual";
  cudl_conv2d_geometry g;
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_conv2d_epilogue e;
  cudl_status status;
  int fused = 0, i;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_forward(ctx, __func__, &data, desc, x, w, bias, y, &g);
  if (status == CUDL_OK && residual != NULL)
    status =
        cudl__check_data(ctx, __func__, &data, &residual, &residual_name, 1);
  for (i = 0; status == CUDL_OK && residual != NULL && i < 4; ++i)
    if (residual->ndim != 4 || residual->shape[i] != y->shape[i])
      status = CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                         "residual must have y's shape [%lld, %lld, %lld, "
                         "%lld]",
                         (long long)y->shape[0], (long long)y->shape[1],
                         (long long)y->shape[2], (long long)y->shape[3]);
  /* Composed, y is written before the residual is read. */
  if (status == CUDL_OK && cudl__tensors_overlap(y, residual))
    status = CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "y shares storage with residual; it must not");
  if (status == CUDL_OK && relu && !isfinite(negative_slope))
    status = CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "negative_slope is %g: must be finite",
                       (double)negative_slope);
  if (status != CUDL_OK || g.n == 0) return status;
  e.bias = bias != NULL ? bias->data : NULL;
  e.residual = residual != NULL ? residual->data : NULL;
  e.relu = relu != 0;
  e.negative_slope = relu ? negative_slope : 0.0f;
  status = CUDL_OP_CALL(ctx, __func__, x->dtype, conv2d_forward_fused, &g,
                        x->data, w->data, &e, y->data, &fused);
  if (status != CUDL_OK || fused) return status;
  /* The backend has no single pass for this case: each part on its own, in
   * the order of the formula. */
  status = convolve_then_bias(ctx, __func__, &g, x, w, bias, y);
  if (status == CUDL_OK && residual != NULL)
    status = CUDL_OP_CALL(ctx, __func__, y->dtype, add_scaled, y->data, 1.0f,
                          residual->data, y->data, y->numel);
  if (status == CUDL_OK && relu)
    status = CUDL_OP_CALL(
        ctx, __func__, y->dtype, activation_forward,
        negative_slope == 0.0f ? CUDL_ACT_RELU : CUDL_ACT_LEAKY_RELU,
        negative_slope, y->data, y->data, y->numel);
  return status;
}

cudl_status cudl_conv2d_backward_data(cudl_context *ctx,
                                      const cudl_conv2d_desc *desc,
                                      const cudl_tensor *w,
                                      const cudl_tensor *dy, cudl_tensor *dx) {
  cudl_conv2d_geometry g;
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_operands(ctx, __func__, &data, w, "w", dy, "dy", dx, "dx");
  if (status == CUDL_OK)
    status =
        make_geometry(ctx, __func__, desc, dx->shape, "dx", w->shape, "w", &g);
  if (status == CUDL_OK) g.channels_last = dx->layout == CUDL_LAYOUT_NHWC;
  if (status == CUDL_OK)
    status = check_output_shape(ctx, __func__, &g, dy, "dy");
  if (status != CUDL_OK || g.n == 0) return status;
  return CUDL_OP_CALL(ctx, __func__, w->dtype, conv2d_backward_data, &g,
                      w->data, dy->data, dx->data);
}

cudl_status cudl_conv2d_backward_filter(cudl_context *ctx,
                                        const cudl_conv2d_desc *desc,
                                        const cudl_tensor *x,
                                        const cudl_tensor *dy,
                                        cudl_tensor *dw) {
  cudl_conv2d_geometry g;
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_operands(ctx, __func__, &data, x, "x", dy, "dy", dw, "dw");
  if (status == CUDL_OK)
    status =
        make_geometry(ctx, __func__, desc, x->shape, "x", dw->shape, "dw", &g);
  if (status == CUDL_OK) g.channels_last = x->layout == CUDL_LAYOUT_NHWC;
  if (status == CUDL_OK)
    status = check_output_shape(ctx, __func__, &g, dy, "dy");
  if (status != CUDL_OK) return status;
  if (g.n == 0) { /* the sum over an empty batch */
    return CUDL_OP_CALL(ctx, __func__, dw->dtype, fill, dw->data, dw->numel,
                        0.0f);
  }
  return CUDL_OP_CALL(ctx, __func__, x->dtype, conv2d_backward_filter, &g,
                      x->data, dy->data, dw->data);
}

cudl_status cudl_conv2d_backward_bias(cudl_context *ctx, const cudl_tensor *dy,
                                      cudl_tensor *dbias) {
  cudl_status status;
  static const char *const dy_name = "dy";
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl__check_data(ctx, __func__, &data, &dy, &dy_name, 1);
  if (status != CUDL_OK) return status;
  if (dy->ndim != 4)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "dy has %d dimensions; convolution takes 4", dy->ndim);
  status =
      cudl__check_vector(ctx, __func__, &data, dbias, "dbias", dy->shape[1]);
  if (status != CUDL_OK || dbias->numel == 0) return status;
  if (dy->numel == 0) {
    return CUDL_OP_CALL(ctx, __func__, dbias->dtype, fill, dbias->data,
                        dbias->numel, 0.0f);
  }
  {
    int64_t outer, channels, inner;
    cudl__channel_view(dy, &outer, &channels, &inner);
    return CUDL_OP_CALL(ctx, __func__, dy->dtype, channel_sum, dy->data,
                        dbias->data, outer, channels, inner);
  }
}
