/* inference.c - compiling a model for inference only: no gradients, the
 * nodes' outputs in buffers shared by liveness, batch norm folded into the
 * convolution or linear layer before it, dropout gone. model.c plans the
 * parameters and runs the graph; this file decides what differs. */
#include <math.h>
#include <string.h>

#include "cudl/batchnorm.h"
#include "cudl/linear.h"
#include "nn/layers.h"

/* Batch norm node bn can be folded into the layer before it when that
 * layer is a convolution or linear layer whose output nothing else reads:
 * once folded, that output is the normalised one. */
static int can_fold(const cudl_model *m, int index) {
  const node *bn = &m->nodes[index];
  const node *src;
  if (bn->kind != NODE_BATCHNORM) return 0;
  src = &m->nodes[bn->in[0]];
  return (src->kind == NODE_CONV || src->kind == NODE_LINEAR) &&
         src->consumers == 1 && bn->in[0] != m->output && src->folded_bn == 0;
}

int cudl__inference_viewed_input(const cudl_model *m, const node *n) {
  (void)m;
  if (n->kind == NODE_ADD && n->epilogue_of != 0) return n->epilogue_input;
  return (n->kind == NODE_BATCHNORM && n->folded) || n->kind == NODE_DROPOUT ||
                 n->epilogue_of != 0
             ? 0
             : -1;
}

static void clear_folds(cudl_model *m) {
  int i;
  for (i = 0; i < m->node_count; ++i) {
    node *n = &m->nodes[i];
    n->folded_bn = 0;
    n->folded = 0;
    n->value_kept = 0;
    n->epilogue_add = 0;
    n->epilogue_relu = 0;
    n->epilogue_of = 0;
    n->epilogue_input = 0;
  }
}

/* The one node that reads node `index`, or 0 (none, several, or the
 * model's output, which the caller reads). */
static int only_reader(const cudl_model *m, int index) {
  int i, k, reader = 0;
  if (m->nodes[index].consumers != 1 || index == m->output) return 0;
  for (i = index + 1; i < m->node_count; ++i)
    for (k = 0; k < m->nodes[i].n_in; ++k)
      if (m->nodes[i].in[k] == index) reader = i;
  return reader;
}

/* What convolution `index` can compute in its own pass after its folded
 * batch norm (cudl_conv2d_forward_fused): a residual addition that alone
 * reads it, when the addition's other input is computed before the
 * convolution runs; then a ReLU or leaky ReLU that alone reads the result.
 * A node read by others keeps its own value. */
static void mark_epilogue(cudl_model *m, int index) {
  node *conv = &m->nodes[index];
  int top = conv->folded_bn != 0 ? conv->folded_bn : index;
  int next = only_reader(m, top);
  if (next != 0 && m->nodes[next].kind == NODE_ADD) {
    node *add = &m->nodes[next];
    const int side = add->in[0] == top ? 0 : 1;
    if (add->in[1 - side] != top && add->in[1 - side] < index) {
      conv->epilogue_add = next;
      add->epilogue_of = index;
      add->epilogue_input = side;
      top = next;
      next = only_reader(m, top);
    }
  }
  if (next != 0 && m->nodes[next].kind == NODE_ACTIVATION &&
      (m->nodes[next].act == CUDL_ACT_RELU ||
       m->nodes[next].act == CUDL_ACT_LEAKY_RELU)) {
    conv->epilogue_relu = next;
    m->nodes[next].epilogue_of = index;
  }
}

cudl_status cudl__inference_mark(cudl_model *m) {
  int i;
  if (m->bn_sum != NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "synchronised batch norm is for training; an inference "
                     "compile uses the running statistics");
  clear_folds(m);
  for (i = 1; i < m->node_count; ++i)
    if (can_fold(m, i)) {
      m->nodes[i].folded = 1;
      m->nodes[m->nodes[i].in[0]].folded_bn = i;
    }
  for (i = 1; i < m->node_count; ++i)
    if (m->nodes[i].kind == NODE_CONV) mark_epilogue(m, i);
  return CUDL_OK;
}

void cudl__inference_unmark(cudl_model *m) { clear_folds(m); }

int cudl_model_is_inference(const cudl_model *m) {
  return m != NULL && m->inference;
}

/* ---- memory ---- */

/* The input whose buffer n's output is (a view, or an identity), or -1. */
static int shared_input(const cudl_model *m, const node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  const int k = cudl__inference_viewed_input(m, n);
  if (k >= 0) return k;
  return layer->output_is_view != NULL && layer->output_is_view(m, n) ? 0 : -1;
}

/* The output buffers, by liveness: walking forward, a node takes a free
 * buffer (the smallest that holds it, else the largest free one, grown)
 * and holds it until its last reader (through any views of it) has run;
 * the output's is held to the end. Sizes are per row; each buffer is made
 * for max_batch rows once every node has one. */
static cudl_status plan_activations(cudl_model *m) {
  const int count = m->node_count;
  const size_t ints = (size_t)count * sizeof(int);
  const size_t sizes = (size_t)count * sizeof(int64_t);
  int *root = (int *)cudl__host_alloc(&m->allocator, ints, 16);
  int *last = (int *)cudl__host_alloc(&m->allocator, ints, 16);
  int *busy_until = (int *)cudl__host_alloc(&m->allocator, ints, 16);
  int *assigned = (int *)cudl__host_alloc(&m->allocator, ints, 16);
  int64_t *size = (int64_t *)cudl__host_alloc(&m->allocator, sizes, 16);
  int i, k, b, buffers = 0;
  cudl_status status = CUDL_OK;
  if (root == NULL || last == NULL || busy_until == NULL || assigned == NULL ||
      size == NULL) {
    status = CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot plan the activation buffers");
    goto out;
  }
  for (i = 0; i < count; ++i) {
    const node *n = &m->nodes[i];
    const int shared = i > 0 ? shared_input(m, n) : -1;
    root[i] = shared >= 0 ? root[n->in[shared]] : i;
    last[i] = i;
    for (k = 0; k < n->n_in && i > 0; ++k)
      if (last[root[n->in[k]]] < i) last[root[n->in[k]]] = i;
  }
  last[root[m->output]] = count;
  for (i = 0; i < count; ++i) {
    const node *n = &m->nodes[i];
    int best = -1;
    m->nodes[i].value_kept = last[root[i]] == count;
    if (root[i] != i) continue;
    for (b = 0; b < buffers; ++b) {
      if (busy_until[b] >= i) continue;
      if (best < 0) {
        best = b;
        continue;
      }
      /* The smallest that fits; among those too small, the largest. */
      if (size[b] >= n->numel ? size[best] < n->numel || size[b] < size[best]
                              : size[best] < n->numel && size[b] > size[best])
        best = b;
    }
    if (best < 0) {
      best = buffers++;
      size[best] = 0;
    }
    if (size[best] < n->numel) size[best] = n->numel;
    busy_until[best] = last[i];
    assigned[i] = best;
  }
  m->act_buffers = (cudl_tensor **)cudl__host_alloc(
      &m->allocator, (size_t)buffers * sizeof *m->act_buffers, 16);
  if (m->act_buffers == NULL) {
    status = CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot plan the activation buffers");
    goto out;
  }
  memset(m->act_buffers, 0, (size_t)buffers * sizeof *m->act_buffers);
  m->act_buffer_count = buffers;
  for (b = 0; b < buffers && status == CUDL_OK; ++b) {
    /* max_batch <= 2^31 and a node's numel <= 2^31 (the layers check). */
    const int64_t elements = m->max_batch * size[b];
    status = cudl_tensor_create(m->ctx, m->dtype, 1, &elements,
                                &m->act_buffers[b]);
  }
  for (i = 0; i < count && status == CUDL_OK; ++i) {
    node *n = &m->nodes[i];
    const int64_t elements = m->max_batch * n->numel;
    if (root[i] != i) continue;
    status = cudl__tensor_view(m->act_buffers[assigned[i]], 0, 1, &elements,
                               &n->out_full);
  }
out:
  cudl__host_free(&m->allocator, root, ints);
  cudl__host_free(&m->allocator, last, ints);
  cudl__host_free(&m->allocator, busy_until, ints);
  cudl__host_free(&m->allocator, assigned, ints);
  cudl__host_free(&m->allocator, size, sizes);
  return status;
}

/* Whether a layer computes with a working copy of its weight (another
 * dtype or layout than the f32 master): the folded weight needs one too. */
static int weight_has_copy(const cudl_model *m, const node *n) {
  return m->params[n->weight].compute_value != NULL;
}

/* One workspace for every folded layer, as large as the largest: a fold is
 * computed just before its layer runs, so they never overlap. */
static cudl_status plan_folding(cudl_model *m) {
  int64_t weights = 0, channels = 0;
  int i, copy = 0;
  cudl_status status = CUDL_OK;
  for (i = 1; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    if (n->folded_bn == 0) continue;
    if (m->params[n->weight].numel > weights)
      weights = m->params[n->weight].numel;
    if (m->nodes[n->folded_bn].shape[0] > channels)
      channels = m->nodes[n->folded_bn].shape[0];
    copy |= weight_has_copy(m, n);
  }
  if (weights == 0) return CUDL_OK;
  status = cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &weights,
                              &m->fold_weight);
  if (status == CUDL_OK)
    status = cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &channels,
                                &m->fold_bias);
  if (status == CUDL_OK) /* zero-filled, and never written */
    status = cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &channels,
                                &m->fold_zeros);
  if (status == CUDL_OK && copy)
    status = cudl_tensor_create(m->ctx, m->dtype, 1, &weights,
                                &m->fold_weight_compute);
  if (status == CUDL_OK && m->dtype != CUDL_DTYPE_F32)
    status = cudl_tensor_create(m->ctx, m->dtype, 1, &channels,
                                &m->fold_bias_compute);
  return status;
}

cudl_status cudl__inference_plan(cudl_model *m) {
  cudl_status status = plan_activations(m);
  if (status == CUDL_OK) status = plan_folding(m);
  return status;
}

void cudl__inference_release(cudl_model *m) {
  int b;
  cudl_tensor **fold[] = {&m->fold_weight, &m->fold_bias, &m->fold_zeros,
                          &m->fold_weight_compute, &m->fold_bias_compute};
  for (b = 0; b < m->act_buffer_count; ++b)
    cudl_tensor_destroy(m->act_buffers[b]);
  cudl__host_free(&m->allocator, m->act_buffers,
                  (size_t)m->act_buffer_count * sizeof *m->act_buffers);
  m->act_buffers = NULL;
  m->act_buffer_count = 0;
  for (b = 0; b < (int)(sizeof fold / sizeof fold[0]); ++b) {
    cudl_tensor_destroy(*fold[b]);
    *fold[b] = NULL;
  }
}

/* ---- running ---- */

/* Layer n (a convolution or linear layer) with this weight and bias, and
 * a convolution's epilogue in the same pass. */
static cudl_status weighted_forward(cudl_model *m, node *n,
                                    const cudl_tensor *weight,
                                    const cudl_tensor *bias) {
  const cudl_tensor *x = m->nodes[n->in[0]].y, *residual = NULL;
  float slope = 0.0f;
  if (n->kind == NODE_LINEAR)
    return cudl_linear_forward(m->ctx, n->flat_in, weight, bias, n->y);
  if (n->epilogue_add == 0 && n->epilogue_relu == 0)
    return cudl_conv2d_forward(m->ctx, &n->conv, x, weight, bias, n->y);
  if (n->epilogue_add != 0) {
    const node *add = &m->nodes[n->epilogue_add];
    residual = m->nodes[add->in[1 - add->epilogue_input]].y;
  }
  if (n->epilogue_relu != 0 &&
      m->nodes[n->epilogue_relu].act == CUDL_ACT_LEAKY_RELU)
    slope = m->nodes[n->epilogue_relu].alpha;
  return cudl_conv2d_forward_fused(m->ctx, &n->conv, x, weight, bias, residual,
                                   n->epilogue_relu != 0, slope, n->y);
}

/* The views a folded layer runs with, made for one call. */
typedef struct fold_views {
  cudl_tensor *w_in, *w_out, *b_in, *b_out, *zeros, *weight, *bias;
  cudl_tensor *weight_copy, *bias_copy;
} fold_views;

static void release_views(fold_views *v) {
  cudl_tensor *all[] = {v->w_in,   v->w_out,  v->b_in,        v->b_out,
                        v->zeros,  v->weight, v->bias,        v->weight_copy,
                        v->bias_copy};
  size_t i;
  for (i = 0; i < sizeof all / sizeof all[0]; ++i) cudl_tensor_destroy(all[i]);
}

/* Layer n with its batch norm bn folded in: with s = gamma /
 * sqrt(running_var + eps) per output channel k, the weight's rows
 * w[k, ...] * s[k] and the bias (b[k] - running_mean[k]) * s[k] + beta[k]
 * (b = 0 without one): BN(W x + b) = W' x + b'. Both are batch norm's own
 * inference formula, applied to the weight (its rows as channels, with mean
 * and beta 0) and to the bias, so every backend computes them; they are
 * computed each call, since the caller may have changed the parameters
 * through their views (one pass over the weight, small beside the layer's
 * own work). */
static cudl_status fused_forward(cudl_model *m, node *n) {
  cudl_context *ctx = m->ctx;
  const node *bn = &m->nodes[n->folded_bn];
  const param_entry *w = &m->params[n->weight];
  const int64_t channels = bn->shape[0];
  const int64_t rows_shape[3] = {1, channels, w->numel / channels};
  const int64_t bias_shape[3] = {1, channels, 1};
  fold_views v;
  const cudl_tensor *weight, *bias;
  cudl_status status;
  memset(&v, 0, sizeof v);
  status = cudl__tensor_view(w->value, 0, 3, rows_shape, &v.w_in);
  if (status == CUDL_OK)
    status = cudl__tensor_view(m->fold_weight, 0, 3, rows_shape, &v.w_out);
  if (status == CUDL_OK)
    status = cudl__tensor_view(m->fold_zeros, 0, 1, &channels, &v.zeros);
  if (status == CUDL_OK)
    status = cudl__tensor_view(n->bias >= 0 ? m->params[n->bias].value
                                            : m->fold_zeros,
                               0, 3, bias_shape, &v.b_in);
  if (status == CUDL_OK)
    status = cudl__tensor_view(m->fold_bias, 0, 3, bias_shape, &v.b_out);
  if (status == CUDL_OK)
    status = cudl_batchnorm_forward_inference(
        ctx, v.w_in, cudl__param(m, bn->weight), v.zeros, v.zeros,
        cudl__param(m, bn->running_var), bn->eps, v.w_out);
  if (status == CUDL_OK)
    status = cudl_batchnorm_forward_inference(
        ctx, v.b_in, cudl__param(m, bn->weight), cudl__param(m, bn->bias),
        cudl__param(m, bn->running_mean), cudl__param(m, bn->running_var),
        bn->eps, v.b_out);
  /* In the parameter's own shape, then in the dtype and layout the layer
   * computes in. */
  if (status == CUDL_OK)
    status = cudl__tensor_view(m->fold_weight, 0, w->ndim, w->shape, &v.weight);
  if (status == CUDL_OK)
    status = cudl__tensor_view(m->fold_bias, 0, 1, &channels, &v.bias);
  weight = v.weight;
  bias = v.bias;
  if (status == CUDL_OK && weight_has_copy(m, n)) {
    status = cudl__tensor_view(m->fold_weight_compute, 0, w->ndim, w->shape,
                               &v.weight_copy);
    if (status == CUDL_OK)
      status =
          cudl_tensor_set_layout(v.weight_copy, w->compute_value->layout);
    if (status == CUDL_OK)
      status = cudl__convert_scaled(ctx, "cudl_model_forward", v.weight_copy,
                                    v.weight, 1.0f);
    weight = v.weight_copy;
  }
  if (status == CUDL_OK && m->dtype != CUDL_DTYPE_F32) {
    status = cudl__tensor_view(m->fold_bias_compute, 0, 1, &channels,
                               &v.bias_copy);
    if (status == CUDL_OK)
      status = cudl__convert_scaled(ctx, "cudl_model_forward", v.bias_copy,
                                    v.bias, 1.0f);
    bias = v.bias_copy;
  }
  if (status == CUDL_OK) status = weighted_forward(m, n, weight, bias);
  release_views(&v);
  return status;
}

cudl_status cudl__inference_forward_node(cudl_model *m, node *n) {
  const cudl__layer *layer = cudl__layers[n->kind];
  if (cudl__inference_viewed_input(m, n) >= 0) return CUDL_OK; /* a view */
  if (n->folded_bn != 0) return fused_forward(m, n);
  if (n->epilogue_add != 0 || n->epilogue_relu != 0)
    return weighted_forward(m, n, cudl__weight(m, n->weight),
                            cudl__weight(m, n->bias));
  if (layer->forward == NULL) return CUDL_OK;
  return layer->forward(m, n, m->nodes[n->in[0]].y);
}
