/* layers.c - the table of node kinds, and the kinds that only route
 * values: the input, flatten (a view, or in channels-last a reordering)
 * and add (residual connections). */
#include <string.h>

#include "nn/layers.h"

const cudl__layer *const cudl__layers[] = {
    [NODE_INPUT] = &cudl__layer_input,
    [NODE_CONV] = &cudl__layer_conv2d,
    [NODE_LINEAR] = &cudl__layer_linear,
    [NODE_BATCHNORM] = &cudl__layer_batchnorm,
    [NODE_ACTIVATION] = &cudl__layer_activation,
    [NODE_PRELU] = &cudl__layer_prelu,
    [NODE_RRELU] = &cudl__layer_rrelu,
    [NODE_DROPOUT] = &cudl__layer_dropout,
    [NODE_POOL] = &cudl__layer_pool2d,
    [NODE_GLOBAL_AVG_POOL] = &cudl__layer_global_avg_pool,
    [NODE_FLATTEN] = &cudl__layer_flatten,
    [NODE_ADD] = &cudl__layer_add,
};
CUDL_STATIC_ASSERT(sizeof cudl__layers / sizeof cudl__layers[0] ==
                       NODE_KIND_COUNT,
                   one_layer_per_node_kind);

/* Node 0: the batch is copied into its output; nothing reaches back. */
const cudl__layer cudl__layer_input = {.name = "input"};

/* dx = dy, byte for byte: the gradient of a flatten's input (the same
 * values in another shape) and of each input of an add. */
static cudl_status pass_gradient(cudl_model *m, node *n, const cudl_tensor *x,
                                 cudl_tensor *dx) {
  cudl_context *ctx = m->ctx;
  (void)x;
  if (dx == NULL) return CUDL_OK;
  return cudl__copy_on_device(ctx, dx->data, n->dy->data, dx->nbytes);
}

cudl_status cudl_model_add_flatten(cudl_model *m, int input, int *node_out) {
  BUILD_PRELUDE(input);
  status = cudl__model_new_node(m, NODE_FLATTEN, input, -1, &n);
  if (status != CUDL_OK) return status;
  cudl__node_set_shape(n, 1, m->nodes[input].numel, 1, 1);
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

/* A flatten's output lists an image's values in PyTorch's [C, H, W]
 * order, which is the NCHW bytes: a view. A channels-last image's bytes
 * are in [H, W, C] order, which differs when there are several channels and
 * several pixels: then the flatten transposes each sample (as PyTorch's
 * flatten copies a channels-last tensor). */
static int flatten_reorders(const cudl_model *m, const node *n) {
  const node *src = &m->nodes[n->in[0]];
  return m->layout == CUDL_LAYOUT_NHWC && src->ndim == 3 &&
         src->shape[0] > 1 && src->shape[1] * src->shape[2] > 1;
}

static int flatten_is_view(const cudl_model *m, const node *n) {
  return !flatten_reorders(m, n);
}

static cudl_status flatten_forward(cudl_model *m, node *n,
                                   const cudl_tensor *x) {
  const node *src = &m->nodes[n->in[0]];
  cudl_context *ctx = m->ctx;
  if (!flatten_reorders(m, n)) return CUDL_OK;
  /* [rows, H * W, C] -> [rows, C, H * W] */
  return CUDL_OP_CALL(ctx, "flatten", x->dtype, transpose, x->data, x->dtype,
                      n->y->data, m->rows, src->shape[1] * src->shape[2],
                      src->shape[0], 1.0f);
}

static cudl_status flatten_backward(cudl_model *m, node *n,
                                    const cudl_tensor *x, cudl_tensor *dx) {
  const node *src = &m->nodes[n->in[0]];
  cudl_context *ctx = m->ctx;
  if (!flatten_reorders(m, n)) return pass_gradient(m, n, x, dx);
  if (dx == NULL) return CUDL_OK;
  return CUDL_OP_CALL(ctx, "flatten", dx->dtype, transpose, n->dy->data,
                      n->dy->dtype, dx->data, m->rows, src->shape[0],
                      src->shape[1] * src->shape[2], 1.0f);
}

const cudl__layer cudl__layer_flatten = {
    .name = "flatten",
    .output_is_view = flatten_is_view,
    .forward = flatten_forward,
    .backward = flatten_backward,
};

cudl_status cudl_model_add_add(cudl_model *m, int a, int b, int *node_out) {
  const node *nb;
  BUILD_PRELUDE(a);
  if (b < 0 || b >= m->node_count)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "input node %d does not exist (the model has %d)", b,
                     m->node_count);
  nb = &m->nodes[b];
  if (src->ndim != nb->ndim ||
      memcmp(src->shape, nb->shape, (size_t)src->ndim * sizeof src->shape[0]))
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "nodes %d and %d have different shapes", a, b);
  status = cudl__model_new_node(m, NODE_ADD, a, b, &n);
  if (status != CUDL_OK) return status;
  cudl__node_set_shape(n, m->nodes[a].ndim, m->nodes[a].shape[0],
                       m->nodes[a].shape[1], m->nodes[a].shape[2]);
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status add_forward(cudl_model *m, node *n, const cudl_tensor *x) {
  return cudl_add(m->ctx, x, 1.0f, m->nodes[n->in[1]].y, n->y);
}

const cudl__layer cudl__layer_add = {
    .name = "add",
    .forward = add_forward,
    .backward = pass_gradient,
};
