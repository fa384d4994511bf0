/* layers_act.c - the activation layers: the fixed elementwise functions
 * (one node kind for every cudl_activation_type), PReLU and RReLU. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

/* ---- the fixed activations ---- */

cudl_status cudl_model_add_activation(cudl_model *m, int input,
                                      cudl_activation_type type, float alpha,
                                      int *node_out) {
  BUILD_PRELUDE(input);
  if (cudl_activation_name(type) == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "unknown activation type %d", (int)type);
  if (!isfinite(alpha))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "alpha must be finite");
  status = cudl__model_same_shape_node(m, NODE_ACTIVATION, input, &n);
  if (status != CUDL_OK) return status;
  n->act = type;
  n->alpha = alpha;
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status activation_forward(cudl_model *m, node *n,
                                      const cudl_tensor *x) {
  return cudl__activation_forward(m->ctx, __func__, n->act, n->alpha, x, n->y);
}

static cudl_status activation_backward(cudl_model *m, node *n,
                                       const cudl_tensor *x, cudl_tensor *dx) {
  if (dx == NULL) return CUDL_OK;
  return cudl__activation_backward(m->ctx, __func__, n->act, n->alpha, x, n->y,
                                   n->dy, dx);
}

static const char *activation_diagnostics_kind(const node *n) {
  return cudl_activation_name(n->act);
}

static int activation_has_dead_units(const node *n) {
  return cudl__activation_info(n->act)->dead_units;
}

static double activation_saturated_fraction(const node *n, const float *y,
                                            int64_t count) {
  const cudl_activation_info *a = cudl__activation_info(n->act);
  int64_t k, saturated = 0;
  if (!(a->low < a->high)) return NAN;
  for (k = 0; k < count; ++k) saturated += y[k] < a->low || y[k] > a->high;
  return (double)saturated / (double)count;
}

const cudl__layer cudl__layer_activation = {
    .name = "activation",
    .forward = activation_forward,
    .backward = activation_backward,
    .diagnostics_kind = activation_diagnostics_kind,
    .has_dead_units = activation_has_dead_units,
    .saturated_fraction = activation_saturated_fraction,
};

/* ---- PReLU and RReLU ---- */

static int always(const node *n) {
  (void)n;
  return 1;
}

cudl_status cudl_model_add_prelu(cudl_model *m, int input, const char *name,
                                 int per_channel, float init_slope,
                                 int *node_out) {
  int64_t count;
  BUILD_PRELUDE(input);
  if (!isfinite(init_slope))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "init_slope must be finite");
  status = cudl__model_check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  status = cudl__model_same_shape_node(m, NODE_PRELU, input, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->init_slope = init_slope;
  n->per_channel = per_channel != 0;
  count = per_channel ? src->shape[0] : 1;
  status = cudl__model_add_param(m, n, "weight", 1, 1, &count, &n->weight);
  if (status != CUDL_OK) return status;
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status prelu_forward(cudl_model *m, node *n, const cudl_tensor *x) {
  return cudl_prelu_forward(m->ctx, x, cudl__param(m, n->weight), n->y);
}

static cudl_status prelu_backward(cudl_model *m, node *n, const cudl_tensor *x,
                                  cudl_tensor *dx) {
  /* The slope's gradient needs a dx even where the input needs none. */
  return cudl_prelu_backward(m->ctx, x, cudl__param(m, n->weight), n->dy,
                             dx != NULL ? dx : n->dx_scratch[0],
                             cudl__grad(m, n->weight));
}

static cudl_status prelu_init(cudl_model *m, const node *n,
                              cudl_init_scheme scheme) {
  (void)scheme; /* a slope starts where the layer was told */
  return cudl_tensor_fill(m->params[n->weight].value, n->init_slope);
}

const cudl__layer cudl__layer_prelu = {
    .name = "prelu",
    .forward = prelu_forward,
    .backward = prelu_backward,
    .init = prelu_init,
    .has_dead_units = always,
};

cudl_status cudl_model_add_rrelu(cudl_model *m, int input, float lower,
                                 float upper, int *node_out) {
  BUILD_PRELUDE(input);
  if (!isfinite(lower) || !isfinite(upper) || !(lower <= upper))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "need finite lower <= upper, got %g and %g", (double)lower,
                     (double)upper);
  status = cudl__model_same_shape_node(m, NODE_RRELU, input, &n);
  if (status != CUDL_OK) return status;
  n->lower = lower;
  n->upper = upper;
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status rrelu_forward(cudl_model *m, node *n, const cudl_tensor *x) {
  return cudl_rrelu_forward(m->ctx, x, n->lower, n->upper, m->training,
                            m->training ? n->aux : NULL, n->y);
}

static cudl_status rrelu_backward(cudl_model *m, node *n, const cudl_tensor *x,
                                  cudl_tensor *dx) {
  (void)x;
  if (dx == NULL) return CUDL_OK;
  if (!m->training)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "backward in evaluation mode: RReLU keeps no slopes");
  return cudl_rrelu_backward(m->ctx, n->aux, n->dy, dx);
}

const cudl__layer cudl__layer_rrelu = {
    .name = "rrelu",
    .element_aux = 1,
    .forward = rrelu_forward,
    .backward = rrelu_backward,
    .has_dead_units = always,
};
