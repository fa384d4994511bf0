/* graph.c - building the model graph: creating a model and the steps every
 * cudl_model_add_* shares (checks, a new node, its parameters, committing
 * it), and where a backward step writes an input's gradient (for the
 * graph's walk and the fused path alike). Below the layers: nothing here
 * knows what a node of a kind does. */
#include <string.h>

#include "nn/graph.h"

/* Grow an array of `size`-byte elements to hold at least need. */
static cudl_status grow(cudl_model *m, void **array, int *capacity, int need,
                        size_t size) {
  cudl_context *ctx = m->ctx;
  void *bigger;
  int cap = *capacity;
  if (need <= cap) return CUDL_OK;
  while (cap < need) cap = cap == 0 ? 16 : 2 * cap;
  bigger = cudl__host_alloc(&m->allocator, (size_t)cap * size, 16);
  if (bigger == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot grow the model");
  memset(bigger, 0, (size_t)cap * size);
  if (*array != NULL) {
    memcpy(bigger, *array, (size_t)*capacity * size);
    cudl__host_free(&m->allocator, *array, (size_t)*capacity * size);
  }
  *array = bigger;
  *capacity = cap;
  return CUDL_OK;
}

cudl_status cudl_model_create(cudl_context *ctx, int input_ndim,
                              const int64_t *input_shape, cudl_model **out) {
  cudl_model *m;
  node *in;
  int i;
  int64_t values = 1;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || input_shape == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "%s is NULL",
                     out == NULL ? "out" : "input_shape");
  if (input_ndim < 1 || input_ndim > 3)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "input_ndim is %d: the per-sample input is [F], [H, W] "
                     "or [C, H, W]",
                     input_ndim);
  for (i = 0; i < input_ndim; ++i)
    if (input_shape[i] < 1 || input_shape[i] > (int64_t)1 << 31)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "input dimension %d is %lld: must be in [1, 2^31]", i,
                       (long long)input_shape[i]);
  /* Each factor <= 2^31, so each product fits before it is checked. */
  for (i = 0; i < input_ndim; ++i) {
    values *= input_shape[i];
    if (values > (int64_t)1 << 31)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "the input has more than 2^31 values per sample");
  }
  m = (cudl_model *)cudl__host_alloc(&ctx->allocator, sizeof *m, 16);
  if (m == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot allocate the model");
  memset(m, 0, sizeof *m);
  m->ctx = ctx;
  m->allocator = ctx->allocator;
  m->training = 1;
  m->output = -1;
  m->precision = CUDL_PRECISION_FP32;
  m->dtype = CUDL_DTYPE_F32;
  m->loss_scale = 1.0f;
  status = grow(m, (void **)&m->nodes, &m->node_capacity, 1, sizeof *m->nodes);
  if (status != CUDL_OK) {
    cudl__host_free(&m->allocator, m, sizeof *m);
    return status;
  }
  in = &m->nodes[0];
  in->kind = NODE_INPUT;
  in->ndim = input_ndim == 2 ? 3 : input_ndim;
  if (input_ndim == 2) {
    in->shape[0] = 1;
    in->shape[1] = input_shape[0];
    in->shape[2] = input_shape[1];
  } else {
    for (i = 0; i < input_ndim; ++i) in->shape[i] = input_shape[i];
  }
  in->numel = 1;
  for (i = 0; i < in->ndim; ++i) in->numel *= in->shape[i];
  in->weight = in->bias = in->running_mean = in->running_var = -1;
  in->grad_slot = -1;
  strcpy(in->name, "input");
  m->node_count = 1;
  *out = m;
  return CUDL_OK;
}

/* ---- building ---- */

cudl_status cudl__model_check_building(cudl_model *m, const char *function,
                                       int input, int *node_out) {
  if (m->compiled)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "the model is compiled; layers cannot be added");
  if (node_out == NULL)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "node is NULL");
  if (input < 0 || input >= m->node_count)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "input node %d does not exist (the model has %d)", input,
                      m->node_count);
  /* Room for the new node now, before the caller takes pointers into
   * m->nodes (its input's): starting the node must not move the array. */
  return grow(m, (void **)&m->nodes, &m->node_capacity, m->node_count + 1,
              sizeof *m->nodes);
}

cudl_status cudl__model_check_name(cudl_model *m, const char *function,
                                   const char *name) {
  int i;
  if (name == NULL || name[0] == '\0')
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "name is empty: layers with parameters need one");
  /* Room for ".running_mean". */
  if (strlen(name) + 16 > NAME_SIZE)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "name \"%.40s...\" is longer than %d characters", name,
                      NAME_SIZE - 16);
  for (i = 0; i < m->node_count; ++i)
    if (strcmp(m->nodes[i].name, name) == 0)
      return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "name \"%s\" is already used by node %d", name, i);
  return CUDL_OK;
}

cudl_status cudl__model_new_node(cudl_model *m, node_kind kind, int in0,
                                 int in1, node **out) {
  node *n;
  cudl_status status = grow(m, (void **)&m->nodes, &m->node_capacity,
                            m->node_count + 1, sizeof *m->nodes);
  if (status != CUDL_OK) return status;
  n = &m->nodes[m->node_count];
  memset(n, 0, sizeof *n);
  n->kind = kind;
  n->in[0] = in0;
  n->in[1] = in1;
  n->n_in = in1 >= 0 ? 2 : 1;
  n->weight = n->bias = n->running_mean = n->running_var = -1;
  n->grad_slot = -1;
  *out = n;
  return CUDL_OK;
}

void cudl__node_set_shape(node *n, int ndim, int64_t a, int64_t b, int64_t c) {
  n->ndim = ndim;
  n->shape[0] = a;
  n->shape[1] = b;
  n->shape[2] = c;
  n->numel = a * (ndim > 1 ? b : 1) * (ndim > 2 ? c : 1);
}

cudl_status cudl__model_add_param(cudl_model *m, node *n, const char *suffix,
                                  int trainable, int ndim, const int64_t *shape,
                                  int *index) {
  param_entry *p;
  int i;
  cudl_status status = grow(m, (void **)&m->params, &m->param_capacity,
                            m->param_count + 1, sizeof *m->params);
  if (status != CUDL_OK) return status;
  p = &m->params[m->param_count];
  memset(p, 0, sizeof *p);
  strcpy(p->name, n->name);
  strcat(p->name, ".");
  strcat(p->name, suffix);
  p->trainable = trainable;
  p->ndim = ndim;
  p->numel = 1;
  for (i = 0; i < ndim; ++i) {
    p->shape[i] = shape[i];
    p->numel *= shape[i];
  }
  *index = m->param_count++;
  return CUDL_OK;
}

void cudl__model_commit_node(cudl_model *m, int *node_out) {
  int i, index = m->node_count++;
  node *n = &m->nodes[index];
  for (i = 0; i < n->n_in; ++i) m->nodes[n->in[i]].consumers++;
  *node_out = index;
}

cudl_status cudl__model_same_shape_node(cudl_model *m, node_kind kind,
                                        int input, node **out) {
  const node *src = &m->nodes[input];
  cudl_status status = cudl__model_new_node(m, kind, input, -1, out);
  if (status != CUDL_OK) return status;
  cudl__node_set_shape(*out, src->ndim, src->shape[0], src->shape[1],
                       src->shape[2]);
  return CUDL_OK;
}

cudl_status cudl__model_check_image(cudl_model *m, const char *function,
                                    int input) {
  if (m->nodes[input].ndim != 3)
    return cudl__fail(m->ctx, CUDL_ERR_SHAPE, function,
                      "input node %d is not an image ([C, H, W] per sample)",
                      input);
  return CUDL_OK;
}

/* ---- gradient targets ---- */

cudl_tensor *cudl__input_grad_target(cudl_model *m, node *n, int k) {
  node *src = &m->nodes[n->in[k]];
  if (n->in[k] == 0 || src->grad_slot < 0) return NULL;
  return src->grad_written ? n->dx_scratch[k] : n->dx_view[k];
}

cudl_status cudl__finish_input(cudl_model *m, node *n, int k) {
  node *src = &m->nodes[n->in[k]];
  cudl_status status = CUDL_OK;
  if (n->in[k] == 0 || src->grad_slot < 0) return CUDL_OK;
  if (src->grad_written)
    status =
        cudl_add(m->ctx, n->dx_view[k], 1.0f, n->dx_scratch[k], n->dx_view[k]);
  src->grad_written = 1;
  return status;
}
