/* layers.c - the table of node kinds, and the kinds that only route
 * values: the input, flatten and reshape (views, or in channels-last
 * reorderings), add (residual connections) and concat. */
#include <stdio.h>
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
    [NODE_CONCAT] = &cudl__layer_concat,
    [NODE_RESHAPE] = &cudl__layer_reshape,
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

/* Flatten and reshape give their input's values in another per-sample
 * shape, in PyTorch's logical order: [C, H, W] row-major for an image. An
 * NCHW image's bytes are in that order; a channels-last image's are in
 * [H, W, C] order, which differs when it has several channels and several
 * pixels ("scrambled" below). So the node is a view of its input unless
 * one side is scrambled: then it transposes each sample (as PyTorch's
 * reshape of a channels-last tensor copies), or, with both sides
 * scrambled and different channel counts, transposes twice through n->aux.
 * Both scrambled with the same channels is a view again: [H * W, C] and
 * [H' * W', C] list the same bytes. */
static int scrambled(const cudl_model *m, const node *n) {
  return m->layout == CUDL_LAYOUT_NHWC && n->ndim == 3 && n->shape[0] > 1 &&
         n->shape[1] * n->shape[2] > 1;
}

static int reshape_is_view(const cudl_model *m, const node *n) {
  const node *src = &m->nodes[n->in[0]];
  const int in = scrambled(m, src), out = scrambled(m, n);
  return (!in && !out) || (in && out && src->shape[0] == n->shape[0]);
}

static int reshape_needs_aux(const cudl_model *m, const node *n) {
  return !reshape_is_view(m, n) && scrambled(m, &m->nodes[n->in[0]]) &&
         scrambled(m, n);
}

/* For node n, per sample: [pixels, channels] to [channels, pixels]
 * (to_logical) or back, for node t's image shape (n's or its input's). */
static cudl_status reorder(cudl_model *m, const node *n, const node *t,
                           int to_logical, const cudl_tensor *src, void *dst) {
  const int64_t pixels = t->shape[1] * t->shape[2], channels = t->shape[0];
  return CUDL_OP_CALL(m->ctx, cudl__layers[n->kind]->name, src->dtype,
                      transpose, src->data, src->dtype, dst, m->rows,
                      to_logical ? pixels : channels,
                      to_logical ? channels : pixels, 1.0f);
}

static cudl_status reshape_forward(cudl_model *m, node *n,
                                   const cudl_tensor *x) {
  const node *src = &m->nodes[n->in[0]];
  cudl_status status;
  if (reshape_is_view(m, n)) return CUDL_OK;
  if (!scrambled(m, n)) return reorder(m, n, src, 1, x, n->y->data);
  if (!scrambled(m, src)) return reorder(m, n, n, 0, x, n->y->data);
  status = reorder(m, n, src, 1, x, n->aux->data);
  if (status == CUDL_OK) status = reorder(m, n, n, 0, n->aux, n->y->data);
  return status;
}

static cudl_status reshape_backward(cudl_model *m, node *n,
                                    const cudl_tensor *x, cudl_tensor *dx) {
  const node *src = &m->nodes[n->in[0]];
  cudl_status status;
  if (reshape_is_view(m, n)) return pass_gradient(m, n, x, dx);
  if (dx == NULL) return CUDL_OK;
  if (!scrambled(m, n)) return reorder(m, n, src, 0, n->dy, dx->data);
  if (!scrambled(m, src)) return reorder(m, n, n, 1, n->dy, dx->data);
  status = reorder(m, n, n, 1, n->dy, n->aux->data);
  if (status == CUDL_OK) status = reorder(m, n, src, 0, n->aux, dx->data);
  return status;
}

const cudl__layer cudl__layer_flatten = {
    .name = "flatten",
    .output_is_view = reshape_is_view,
    .forward = reshape_forward,
    .backward = reshape_backward,
};

/* "[a, b, c]" for the n sizes of shape. */
static void format_shape(char *text, size_t size, int n, const int64_t *shape) {
  size_t used = 0;
  int i;
  text[0] = '\0';
  for (i = 0; i < n && used < size; ++i) {
    const int wrote = snprintf(text + used, size - used, "%s%lld",
                               i == 0 ? "[" : ", ", (long long)shape[i]);
    if (wrote < 0) return;
    used += (size_t)wrote;
  }
  if (used < size) snprintf(text + used, size - used, "]");
}

cudl_status cudl_model_add_reshape(cudl_model *m, int input, int ndim,
                                   const int64_t *shape, int *node_out) {
  int64_t size[3], known = 1;
  int i, inferred = -1;
  char want[96], have[96];
  BUILD_PRELUDE(input);
  if (shape == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "shape is NULL");
  if (ndim < 1 || ndim > 3)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "ndim is %d; a per-sample shape has 1 to 3 dimensions",
                     ndim);
  for (i = 0; i < ndim; ++i) {
    if (shape[i] == -1 && inferred < 0) {
      inferred = i;
      continue;
    }
    if (shape[i] < 1)
      return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "shape[%d] is %lld; sizes are at least 1, and one "
                       "may be -1 (inferred)",
                       i, (long long)shape[i]);
    /* No product of sizes past the input's count can match it: stop
     * before it could overflow. */
    known =
        known > src->numel / shape[i] + 1 ? src->numel + 1 : known * shape[i];
  }
  format_shape(want, sizeof want, ndim, shape);
  format_shape(have, sizeof have, src->ndim, src->shape);
  if (inferred >= 0 ? src->numel % known != 0 : known != src->numel)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "cannot reshape node %d of shape %s (%lld elements per "
                     "sample) to %s",
                     input, have, (long long)src->numel, want);
  for (i = 0; i < 3; ++i) size[i] = i < ndim ? shape[i] : 1;
  if (inferred >= 0) size[inferred] = src->numel / known;
  status = cudl__model_new_node(m, NODE_RESHAPE, input, -1, &n);
  if (status != CUDL_OK) return status;
  cudl__node_set_shape(n, ndim, size[0], size[1], size[2]);
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

const cudl__layer cudl__layer_reshape = {
    .name = "reshape",
    .output_is_view = reshape_is_view,
    .needs_aux = reshape_needs_aux,
    .forward = reshape_forward,
    .backward = reshape_backward,
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

cudl_status cudl_model_add_concat(cudl_model *m, int count, const int *inputs,
                                  int *node_out) {
  int64_t channels = 0;
  const node *first;
  int i, d;
  cudl_status status;
  node *n;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (inputs == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "inputs is NULL");
  if (count < 2 || count > CUDL_MODEL_CONCAT_MAX_INPUTS)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "count is %d; a concatenation takes 2 to %d inputs", count,
                     CUDL_MODEL_CONCAT_MAX_INPUTS);
  for (i = 0; i < count; ++i) {
    status = cudl__model_check_building(m, __func__, inputs[i], node_out);
    if (status != CUDL_OK) return status;
  }
  first = &m->nodes[inputs[0]];
  for (i = 0; i < count; ++i) {
    const node *src = &m->nodes[inputs[i]];
    int same = src->ndim == first->ndim;
    for (d = 1; d < src->ndim && same; ++d)
      same = src->shape[d] == first->shape[d];
    if (!same)
      return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                       "nodes %d and %d differ in a size other than the "
                       "first per-sample one (%d and %d dimensions, sizes "
                       "[%lld, %lld, %lld] and [%lld, %lld, %lld])",
                       inputs[0], inputs[i], first->ndim, src->ndim,
                       (long long)first->shape[0], (long long)first->shape[1],
                       (long long)first->shape[2], (long long)src->shape[0],
                       (long long)src->shape[1], (long long)src->shape[2]);
    channels += src->shape[0];
  }
  status = cudl__model_new_node(m, NODE_CONCAT, inputs[0], -1, &n);
  if (status != CUDL_OK) return status;
  for (i = 0; i < count; ++i) n->in[i] = inputs[i];
  n->n_in = count;
  cudl__node_set_shape(n, first->ndim, channels, first->shape[1],
                       first->shape[2]);
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

/* Input k's first channel in the output. */
static int64_t concat_offset(const cudl_model *m, const node *n, int k) {
  int64_t offset = 0;
  int i;
  for (i = 0; i < k; ++i) offset += m->nodes[n->in[i]].shape[0];
  return offset;
}

static cudl_status concat_forward(cudl_model *m, node *n,
                                  const cudl_tensor *x) {
  cudl_status status = CUDL_OK;
  int k;
  (void)x;
  for (k = 0; k < n->n_in && status == CUDL_OK; ++k)
    status = cudl__concat_part(m->ctx, "concat", n->y, m->nodes[n->in[k]].y,
                               concat_offset(m, n, k), 1);
  return status;
}

static cudl_status concat_backward(cudl_model *m, node *n, const cudl_tensor *x,
                                   cudl_tensor *dx) {
  (void)x;
  if (dx == NULL) return CUDL_OK;
  return cudl__concat_part(m->ctx, "concat", n->dy, dx,
                           concat_offset(m, n, n->backward_input), 0);
}

const cudl__layer cudl__layer_concat = {
    .name = "concat",
    .forward = concat_forward,
    .backward = concat_backward,
};
