/* layers_weighted.c - the layers with weight matrices: 2-D convolution and
 * linear. Their weights take the initialisation schemes, and they are the
 * layers whose FLOPs cudl_model_flops counts. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "nn/graph.h"

/* ---- building ---- */

cudl_status cudl_model_add_conv2d(cudl_model *m, int input, const char *name,
                                  int64_t out_channels, int kernel_h,
                                  int kernel_w, const cudl_conv2d_desc *desc,
                                  int bias, int *node_out) {
  int64_t x_shape[4], w_shape[4];
  cudl_conv2d_geometry g;
  char where[NAME_SIZE + 64];
  int saved_params;
  BUILD_PRELUDE(input);
  if (desc == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "desc is NULL");
  status = cudl__model_check_image(m, __func__, input);
  if (status != CUDL_OK) return status;
  /* Counts are checked before any size is computed from them. */
  if (out_channels > INT_MAX)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "out_channels is %lld: must be in [1, %d] (larger "
                     "counts overflow the int sizes of cuDNN and the BLAS)",
                     (long long)out_channels, INT_MAX);
  if (out_channels < 1 || kernel_h < 1 || kernel_w < 1 || desc->groups < 1 ||
      src->shape[0] % desc->groups != 0)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "out_channels %lld, kernel %dx%d, groups %d for %lld "
                     "input channels: need >= 1 each and groups dividing "
                     "the channels",
                     (long long)out_channels, kernel_h, kernel_w, desc->groups,
                     (long long)src->shape[0]);
  status = cudl__model_check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  x_shape[0] = 1;
  x_shape[1] = src->shape[0];
  x_shape[2] = src->shape[1];
  x_shape[3] = src->shape[2];
  w_shape[0] = out_channels;
  w_shape[1] = src->shape[0] / desc->groups;
  w_shape[2] = kernel_h;
  w_shape[3] = kernel_w;
  snprintf(where, sizeof where, "%s: conv2d \"%s\" on a %lldx%lldx%lld input",
           __func__, name, (long long)x_shape[1], (long long)x_shape[2],
           (long long)x_shape[3]);
  status = cudl__conv2d_geometry(m->ctx, where, desc, x_shape, "the input",
                                 w_shape, "the weight", &g);
  /* Sizes above the int limit of the convolution calls are a shape this
   * model cannot have, not an operation missing from a backend. */
  if (status == CUDL_ERR_UNSUPPORTED) return CUDL_ERR_SHAPE;
  if (status != CUDL_OK) return status;
  /* k and oh * ow are at most INT_MAX each: the product fits. */
  if (g.k * g.oh * g.ow > (int64_t)1 << 31)
    return cudl__fail(m->ctx, CUDL_ERR_SHAPE, where,
                      "the output, %lld x %lld x %lld, has more than 2^31 "
                      "values per sample",
                      (long long)g.k, (long long)g.oh, (long long)g.ow);
  status = cudl__model_new_node(m, NODE_CONV, input, -1, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->conv = *desc;
  n->has_bias = bias != 0;
  cudl__node_set_shape(n, 3, g.k, g.oh, g.ow);
  saved_params = m->param_count;
  status = cudl__model_add_param(m, n, "weight", 1, 4, w_shape, &n->weight);
  if (status == CUDL_OK && bias)
    status = cudl__model_add_param(m, n, "bias", 1, 1, &out_channels, &n->bias);
  if (status != CUDL_OK) {
    m->param_count = saved_params;
    return status;
  }
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_linear(cudl_model *m, int input, const char *name,
                                  int64_t out_features, int bias,
                                  int *node_out) {
  int64_t w_shape[2];
  int saved_params;
  BUILD_PRELUDE(input);
  if (out_features < 1 || out_features > (int64_t)1 << 31)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "out_features is %lld: must be in [1, 2^31]",
                     (long long)out_features);
  status = cudl__model_check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  status = cudl__model_new_node(m, NODE_LINEAR, input, -1, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->has_bias = bias != 0;
  cudl__node_set_shape(n, 1, out_features, 1, 1);
  w_shape[0] = out_features;
  w_shape[1] = m->nodes[input].numel;
  saved_params = m->param_count;
  status = cudl__model_add_param(m, n, "weight", 1, 2, w_shape, &n->weight);
  if (status == CUDL_OK && bias)
    status = cudl__model_add_param(m, n, "bias", 1, 1, &out_features, &n->bias);
  if (status != CUDL_OK) {
    m->param_count = saved_params;
    return status;
  }
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

/* ---- running ---- */

static cudl_status conv2d_forward(cudl_model *m, node *n,
                                  const cudl_tensor *x) {
  return cudl_conv2d_forward(m->ctx, &n->conv, x, cudl__weight(m, n->weight),
                             cudl__weight(m, n->bias), n->y);
}

static cudl_status conv2d_backward(cudl_model *m, node *n, const cudl_tensor *x,
                                   cudl_tensor *dx) {
  cudl_context *ctx = m->ctx;
  cudl_status status = cudl_conv2d_backward_filter(ctx, &n->conv, x, n->dy,
                                                   cudl__weight_grad(m, n->weight));
  if (status == CUDL_OK && n->bias >= 0)
    status = cudl_conv2d_backward_bias(ctx, n->dy, cudl__weight_grad(m, n->bias));
  if (status == CUDL_OK && dx != NULL)
    status = cudl_conv2d_backward_data(ctx, &n->conv, cudl__weight(m, n->weight),
                                       n->dy, dx);
  return status;
}

static cudl_status linear_forward(cudl_model *m, node *n,
                                  const cudl_tensor *x) {
  (void)x; /* read flat, through n->flat_in */
  return cudl_linear_forward(m->ctx, n->flat_in, cudl__weight(m, n->weight),
                             cudl__weight(m, n->bias), n->y);
}

static cudl_status linear_backward(cudl_model *m, node *n, const cudl_tensor *x,
                                   cudl_tensor *dx) {
  (void)x;
  return cudl_linear_backward(m->ctx, n->flat_in, cudl__weight(m, n->weight),
                              n->dy, dx, cudl__weight_grad(m, n->weight),
                              cudl__weight_grad(m, n->bias));
}

/* ---- initialisation and FLOPs ---- */

/* fan_in and fan_out of a weight, as torch.nn.init computes them. */
static void fans(const param_entry *w, double *fan_in, double *fan_out) {
  double receptive = w->ndim == 4 ? (double)(w->shape[2] * w->shape[3]) : 1.0;
  *fan_in = (double)w->shape[1] * receptive;
  *fan_out = (double)w->shape[0] * receptive;
}

static cudl_status weighted_init(cudl_model *m, const node *n,
                                 cudl_init_scheme scheme) {
  param_entry *w = &m->params[n->weight];
  double fan_in, fan_out, bound;
  cudl_status status = CUDL_OK;
  fans(w, &fan_in, &fan_out);
  switch (scheme) {
    case CUDL_INIT_KAIMING_NORMAL:
      status = cudl_tensor_normal(w->value, 0.0f, (float)sqrt(2.0 / fan_in));
      break;
    case CUDL_INIT_KAIMING_UNIFORM:
      bound = sqrt(6.0 / fan_in);
      status = cudl_tensor_uniform(w->value, (float)-bound, (float)bound);
      break;
    case CUDL_INIT_XAVIER_NORMAL:
      status = cudl_tensor_normal(w->value, 0.0f,
                                  (float)sqrt(2.0 / (fan_in + fan_out)));
      break;
    case CUDL_INIT_XAVIER_UNIFORM:
      bound = sqrt(6.0 / (fan_in + fan_out));
      status = cudl_tensor_uniform(w->value, (float)-bound, (float)bound);
      break;
    case CUDL_INIT_PYTORCH_DEFAULT:
      bound = 1.0 / sqrt(fan_in);
      status = cudl_tensor_uniform(w->value, (float)-bound, (float)bound);
      if (status == CUDL_OK && n->bias >= 0)
        status = cudl_tensor_uniform(m->params[n->bias].value, (float)-bound,
                                     (float)bound);
      break;
    case CUDL_INIT_ZEROS:
      status = cudl_tensor_fill(w->value, 0.0f);
      break;
  }
  if (status == CUDL_OK && n->bias >= 0 && scheme != CUDL_INIT_PYTORCH_DEFAULT)
    status = cudl_tensor_fill(m->params[n->bias].value, 0.0f);
  return status;
}

/* At each output position a convolution uses every weight once (the
 * C/groups*R*S of each of the K output channels): weights x positions
 * multiply-adds. */
static int64_t conv2d_flops(const cudl_model *m, const node *n) {
  return 2 * m->params[n->weight].numel * (n->numel / n->shape[0]);
}

/* A linear layer uses every weight once. */
static int64_t linear_flops(const cudl_model *m, const node *n) {
  return 2 * m->params[n->weight].numel;
}

const cudl__layer cudl__layer_conv2d = {
    .name = "conv2d",
    .dtype_weights = 1,
    .forward = conv2d_forward,
    .backward = conv2d_backward,
    .init = weighted_init,
    .flops = conv2d_flops,
};

const cudl__layer cudl__layer_linear = {
    .name = "linear",
    .flat_input = 1,
    .dtype_weights = 1,
    .forward = linear_forward,
    .backward = linear_backward,
    .init = weighted_init,
    .flops = linear_flops,
};
