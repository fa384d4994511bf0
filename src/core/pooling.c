/* pooling.c - validation, output shapes and dispatch of the pooling ops. */
#include <string.h>

#include "core/internal.h"

/* The output size along one dimension, PyTorch's pooling_output_shape:
 * floor((in + 2 pad - kernel) / stride) + 1, or with ceil_mode the ceiling,
 * less the last window when it would start past the input and its left
 * padding (it would hold only right padding). 0 when nothing fits. */
static int output_size(int64_t in, int64_t kernel, int64_t stride, int64_t pad,
                       int ceil_mode, int64_t *out) {
  const int64_t span = in + 2 * pad - kernel + (ceil_mode ? stride - 1 : 0);
  if (span < 0) return 0;
  *out = span / stride + 1;
  if (ceil_mode && (*out - 1) * stride >= in + pad) --*out;
  return *out >= 1;
}

/* Checks desc against an input of in_shape and fills g. On failure the
 * message goes to ctx (which may be NULL). */
static cudl_status make_geometry(cudl_context *ctx, const char *function,
                                 const cudl_pool2d_desc *desc,
                                 const int64_t in_shape[4],
                                 cudl_pool2d_geometry *g) {
  int i;
  if (desc == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function, "desc is NULL");
  if (desc->kernel_h < 1 || desc->kernel_w < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "kernel %dx%d: both sides must be >= 1", desc->kernel_h,
                      desc->kernel_w);
  if (desc->stride_h < 1 || desc->stride_w < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "stride %dx%d: both must be >= 1", desc->stride_h,
                      desc->stride_w);
  if (desc->pad_h < 0 || desc->pad_w < 0 || desc->pad_h > desc->kernel_h / 2 ||
      desc->pad_w > desc->kernel_w / 2)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "pad %dx%d: must be in [0, kernel / 2] for kernel %dx%d",
                      desc->pad_h, desc->pad_w, desc->kernel_h, desc->kernel_w);
  for (i = 0; i < 4; ++i)
    if (in_shape[i] < 0)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "input dimension %d is negative", i);
  memset(g, 0, sizeof *g);
  g->n = in_shape[0];
  g->c = in_shape[1];
  g->h = in_shape[2];
  g->w = in_shape[3];
  g->kh = desc->kernel_h;
  g->kw = desc->kernel_w;
  g->sh = desc->stride_h;
  g->sw = desc->stride_w;
  g->ph = desc->pad_h;
  g->pw = desc->pad_w;
  g->count_include_pad = desc->count_include_pad != 0;
  if (!output_size(g->h, g->kh, g->sh, g->ph, desc->ceil_mode, &g->oh) ||
      !output_size(g->w, g->kw, g->sw, g->pw, desc->ceil_mode, &g->ow))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "kernel %lldx%lld (stride %lldx%lld%s) is larger "
                      "than the padded input %lldx%lld: no output",
                      (long long)g->kh, (long long)g->kw, (long long)g->sh,
                      (long long)g->sw, desc->ceil_mode ? " (ceil mode)" : "",
                      (long long)(g->h + 2 * g->ph),
                      (long long)(g->w + 2 * g->pw));
  return CUDL_OK;
}

cudl_status cudl_pool2d_output_shape(const cudl_pool2d_desc *desc,
                                     const int64_t in_shape[4],
                                     int64_t out_shape[4]) {
  cudl_pool2d_geometry g;
  cudl_status status;
  if (in_shape == NULL || out_shape == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = make_geometry(NULL, __func__, desc, in_shape, &g);
  if (status != CUDL_OK) return status;
  out_shape[0] = g.n;
  out_shape[1] = g.c;
  out_shape[2] = g.oh;
  out_shape[3] = g.ow;
  return CUDL_OK;
}

/* The checks shared by the pooling calls: `big` (x or dx) is 4-D and
 * `small` (y or dy) has the output shape; `extra` (x for max backward, may
 * be NULL) has big's shape. */
static cudl_status check_pool(cudl_context *ctx, const char *function,
                              const cudl_pool2d_desc *desc,
                              const cudl_tensor *big, const char *big_name,
                              const cudl_tensor *small, const char *small_name,
                              const cudl_tensor *extra,
                              cudl_pool2d_geometry *g) {
  const cudl_tensor *bigs[2], *one[1];
  const char *big_names[2], *small_names[1];
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  bigs[0] = big;
  bigs[1] = extra;
  big_names[0] = big_name;
  big_names[1] = "x";
  one[0] = small;
  small_names[0] = small_name;
  status = cudl__check_data(ctx, function, &data, bigs, big_names,
                            extra == NULL ? 1 : 2);
  if (status == CUDL_OK)
    status = cudl__check_data(ctx, function, &data, one, small_names, 1);
  if (status != CUDL_OK) return status;
  if (big->ndim != 4)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s has %d dimensions; pooling takes [N, C, H, W] (4)",
                      big_name, big->ndim);
  status = make_geometry(ctx, function, desc, big->shape, g);
  if (status != CUDL_OK) return status;
  g->channels_last = big->layout == CUDL_LAYOUT_NHWC; /* as small's */
  if (small->ndim != 4 || small->shape[0] != g->n || small->shape[1] != g->c ||
      small->shape[2] != g->oh || small->shape[3] != g->ow)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s must have shape [%lld, %lld, %lld, %lld]", small_name,
                      (long long)g->n, (long long)g->c, (long long)g->oh,
                      (long long)g->ow);
  return CUDL_OK;
}

static cudl_status pool_forward(cudl_context *ctx, const char *function,
                                const cudl_pool2d_desc *desc, int is_max,
                                const cudl_tensor *x, cudl_tensor *y) {
  cudl_pool2d_geometry g;
  cudl_status status =
      check_pool(ctx, function, desc, x, "x", y, "y", NULL, &g);
  if (status != CUDL_OK || y->numel == 0) return status;
  return CUDL_OP_CALL(ctx, function, x->dtype, pool2d_forward, &g, is_max,
                      x->data, y->data);
}

cudl_status cudl_max_pool2d_forward(cudl_context *ctx,
                                    const cudl_pool2d_desc *desc,
                                    const cudl_tensor *x, cudl_tensor *y) {
  return pool_forward(ctx, __func__, desc, 1, x, y);
}

cudl_status cudl_avg_pool2d_forward(cudl_context *ctx,
                                    const cudl_pool2d_desc *desc,
                                    const cudl_tensor *x, cudl_tensor *y) {
  return pool_forward(ctx, __func__, desc, 0, x, y);
}

static cudl_status pool_backward(cudl_context *ctx, const char *function,
                                 const cudl_pool2d_desc *desc, int is_max,
                                 const cudl_tensor *x, const cudl_tensor *dy,
                                 cudl_tensor *dx) {
  cudl_pool2d_geometry g;
  cudl_status status =
      check_pool(ctx, function, desc, dx, "dx", dy, "dy", x, &g);
  if (status != CUDL_OK || dx->numel == 0) return status;
  return CUDL_OP_CALL(ctx, function, dy->dtype, pool2d_backward, &g, is_max,
                      x == NULL ? NULL : x->data, dy->data, dx->data);
}

cudl_status cudl_max_pool2d_backward(cudl_context *ctx,
                                     const cudl_pool2d_desc *desc,
                                     const cudl_tensor *x,
                                     const cudl_tensor *dy, cudl_tensor *dx) {
  if (ctx != NULL && x == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "x is NULL");
  return pool_backward(ctx, __func__, desc, 1, x, dy, dx);
}

cudl_status cudl_avg_pool2d_backward(cudl_context *ctx,
                                     const cudl_pool2d_desc *desc,
                                     const cudl_tensor *dy, cudl_tensor *dx) {
  return pool_backward(ctx, __func__, desc, 0, NULL, dy, dx);
}

/* Global average pooling: big [N, C, H, W], small [N, C, 1, 1], of one
 * layout (for small, the same bytes either way). */
static cudl_status check_global(cudl_context *ctx, const char *function,
                                const cudl_tensor *big, const char *big_name,
                                const cudl_tensor *small,
                                const char *small_name) {
  const cudl_tensor *tensors[2];
  const char *names[2];
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  cudl_status status;
  tensors[0] = big;
  tensors[1] = small;
  names[0] = big_name;
  names[1] = small_name;
  status = cudl__check_data(ctx, function, &data, tensors, names, 1);
  if (status == CUDL_OK)
    status = cudl__check_data(ctx, function, &data, tensors + 1, names + 1, 1);
  if (status != CUDL_OK) return status;
  if (big->ndim != 4)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s has %d dimensions; pooling takes [N, C, H, W] (4)",
                      big_name, big->ndim);
  if (small->ndim != 4 || small->shape[0] != big->shape[0] ||
      small->shape[1] != big->shape[1] || small->shape[2] != 1 ||
      small->shape[3] != 1)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s must have shape [%lld, %lld, 1, 1]", small_name,
                      (long long)big->shape[0], (long long)big->shape[1]);
  if (big->shape[2] * big->shape[3] == 0 && small->numel > 0)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s has no spatial elements to average", big_name);
  return CUDL_OK;
}

/* The image tensor t [N, C, H, W] as the operator's [outer, cols, inner],
 * cols the H * W elements averaged: NCHW [N * C, H * W, 1], channels-last
 * [N, H * W, C]. */
static void global_view(const cudl_tensor *t, int64_t v[3]) {
  const int nhwc = t->layout == CUDL_LAYOUT_NHWC;
  v[0] = nhwc ? t->shape[0] : t->shape[0] * t->shape[1];
  v[1] = t->shape[2] * t->shape[3];
  v[2] = nhwc ? t->shape[1] : 1;
}

cudl_status cudl_global_avg_pool_forward(cudl_context *ctx,
                                         const cudl_tensor *x, cudl_tensor *y) {
  int64_t v[3];
  cudl_status status = check_global(ctx, __func__, x, "x", y, "y");
  if (status != CUDL_OK || y->numel == 0) return status;
  global_view(x, v);
  return CUDL_OP_CALL(ctx, __func__, x->dtype, global_avg_pool_forward, x->data,
                      y->data, v[0], v[1], v[2]);
}

cudl_status cudl_global_avg_pool_backward(cudl_context *ctx,
                                          const cudl_tensor *dy,
                                          cudl_tensor *dx) {
  int64_t v[3];
  cudl_status status = check_global(ctx, __func__, dx, "dx", dy, "dy");
  if (status != CUDL_OK || dy->numel == 0) return status;
  global_view(dx, v);
  return CUDL_OP_CALL(ctx, __func__, dy->dtype, global_avg_pool_backward,
                      dy->data, dx->data, v[0], v[1], v[2]);
}
