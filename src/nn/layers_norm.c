/* layers_norm.c - batch normalisation and dropout: the layers that act one
 * way in training (batch statistics, random masks) and another in
 * evaluation. */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

cudl_status cudl_model_add_batchnorm(cudl_model *m, int input, const char *name,
                                     float momentum, float eps, int *node_out) {
  int64_t channels;
  int saved_params;
  BUILD_PRELUDE(input);
  if (!(momentum >= 0.0f && momentum <= 1.0f) || !(eps > 0.0f) ||
      !isfinite(eps))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "momentum %g must be in [0, 1] and eps %g finite and > 0",
                     (double)momentum, (double)eps);
  if (src->ndim == 2)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "batch norm takes [C, H, W] or [F] per sample");
  status = cudl__model_check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  status = cudl__model_new_node(m, NODE_BATCHNORM, input, -1, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->momentum = momentum;
  n->eps = eps;
  cudl__node_set_shape(n, src->ndim, src->shape[0], src->shape[1],
                       src->shape[2]);
  channels = src->shape[0];
  saved_params = m->param_count;
  status = cudl__model_add_param(m, n, "weight", 1, 1, &channels, &n->weight);
  if (status == CUDL_OK)
    status = cudl__model_add_param(m, n, "bias", 1, 1, &channels, &n->bias);
  if (status == CUDL_OK)
    status = cudl__model_add_param(m, n, "running_mean", 0, 1, &channels,
                                   &n->running_mean);
  if (status == CUDL_OK)
    status = cudl__model_add_param(m, n, "running_var", 0, 1, &channels,
                                   &n->running_var);
  if (status != CUDL_OK) {
    m->param_count = saved_params;
    return status;
  }
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status batchnorm_forward(cudl_model *m, node *n,
                                     const cudl_tensor *x) {
  if (m->training && m->bn_sum != NULL)
    return cudl__sync_batchnorm_forward(m, n, x);
  if (m->training)
    return cudl_batchnorm_forward_training(
        m->ctx, x, cudl__param(m, n->weight), cudl__param(m, n->bias),
        n->momentum, n->eps, cudl__param(m, n->running_mean),
        cudl__param(m, n->running_var), n->y, n->save_mean, n->save_invstd);
  return cudl_batchnorm_forward_inference(
      m->ctx, x, cudl__param(m, n->weight), cudl__param(m, n->bias),
      cudl__param(m, n->running_mean), cudl__param(m, n->running_var), n->eps,
      n->y);
}

static cudl_status batchnorm_backward(cudl_model *m, node *n,
                                      const cudl_tensor *x, cudl_tensor *dx) {
  if (!m->training)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "backward in evaluation mode: batch norm's backward "
                     "needs the training forward's statistics");
  if (m->bn_sum != NULL) return cudl__sync_batchnorm_backward(m, n, x, dx);
  /* The parameters' gradients need a dx even where the input needs none. */
  return cudl_batchnorm_backward(
      m->ctx, x, n->dy, cudl__param(m, n->weight), n->save_mean, n->save_invstd,
      dx != NULL ? dx : n->dx_scratch[0], cudl__grad(m, n->weight),
      cudl__grad(m, n->bias));
}

static cudl_status batchnorm_init(cudl_model *m, const node *n,
                                  cudl_init_scheme scheme) {
  cudl_status status = cudl_tensor_fill(m->params[n->weight].value, 1.0f);
  (void)scheme; /* the schemes are for weights that multiply inputs */
  if (status == CUDL_OK)
    status = cudl_tensor_fill(m->params[n->bias].value, 0.0f);
  if (status == CUDL_OK)
    status = cudl_tensor_fill(m->params[n->running_mean].value, 0.0f);
  if (status == CUDL_OK)
    status = cudl_tensor_fill(m->params[n->running_var].value, 1.0f);
  return status;
}

const cudl__layer cudl__layer_batchnorm = {
    .name = "batchnorm",
    .channel_stats = 1,
    .forward = batchnorm_forward,
    .backward = batchnorm_backward,
    .init = batchnorm_init,
};

cudl_status cudl_model_add_dropout(cudl_model *m, int input, float p,
                                   int *node_out) {
  BUILD_PRELUDE(input);
  if (!(p >= 0.0f && p <= 1.0f))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "p is %g: must be in [0, 1]", (double)p);
  status = cudl__model_same_shape_node(m, NODE_DROPOUT, input, &n);
  if (status != CUDL_OK) return status;
  n->p = p;
  cudl__model_commit_node(m, node_out);
  return CUDL_OK;
}

static cudl_status dropout_forward(cudl_model *m, node *n,
                                   const cudl_tensor *x) {
  return cudl_dropout_forward(m->ctx, x, n->p, m->training,
                              m->training ? n->aux : NULL, n->y);
}

static cudl_status dropout_backward(cudl_model *m, node *n,
                                    const cudl_tensor *x, cudl_tensor *dx) {
  (void)x;
  if (dx == NULL) return CUDL_OK;
  return m->training ? cudl_dropout_backward(m->ctx, n->aux, n->dy, dx)
                     : cudl_tensor_copy(dx, n->dy);
}

const cudl__layer cudl__layer_dropout = {
    .name = "dropout",
    .element_aux = 1,
    .forward = dropout_forward,
    .backward = dropout_backward,
};
