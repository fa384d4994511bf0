/* fusion.c - the fused training path: where a batch norm's output goes
 * only to a ReLU, or only to a residual addition whose output goes only to
 * a ReLU (a ResNet block's end), the ReLU node computes the whole group in
 * one pass over memory forward (cudl_batchnorm_apply from the batch norm's
 * input) and one backward (cudl_batchnorm_relu_backward), instead of a
 * pass per layer; the batch norm node computes only its statistics. Where
 * an activation's output goes only to a dropout, the dropout node computes
 * both (cudl_activation_dropout_forward and _backward) and the activation
 * node nothing. The groups are marked when the model compiles for
 * training; each forward decides whether it takes the path, and its
 * backward follows it. */
#include "cudl/batchnorm.h"
#include "cudl/dropout.h"
#include "nn/graph.h"

/* Node `index` is a batch norm whose value goes to one reader only. */
static int fusable_batchnorm(const cudl_model *m, int index) {
  const node *b = &m->nodes[index];
  return b->kind == NODE_BATCHNORM && b->consumers == 1 && index != m->output;
}

void cudl__fusion_clear(cudl_model *m) {
  int i;
  for (i = 0; i < m->node_count; ++i) {
    node *n = &m->nodes[i];
    n->fused_bn = n->fused_add = n->fused_residual = n->fused_into = 0;
    n->fused_act = 0;
  }
  m->fused_forward = 0;
}

/* Node `index` is an activation whose backward reads its input (not
 * sigmoid or tanh), whose value goes to one reader only and that no batch
 * norm group has taken. */
static int fusable_activation(const cudl_model *m, int index) {
  const node *a = &m->nodes[index];
  return a->kind == NODE_ACTIVATION && a->consumers == 1 &&
         index != m->output && a->fused_bn == 0 && a->fused_into == 0 &&
         !cudl__activation_info(a->act)->backward_from_y;
}

void cudl__fusion_mark(cudl_model *m) {
  int i, k;
  cudl__fusion_clear(m);
  for (i = 1; i < m->node_count; ++i) {
    node *relu = &m->nodes[i];
    const int in = relu->in[0];
    const node *add = &m->nodes[in];
    if (relu->kind != NODE_ACTIVATION || relu->act != CUDL_ACT_RELU) continue;
    if (fusable_batchnorm(m, in)) {
      relu->fused_bn = in;
      m->nodes[in].fused_into = i;
      continue;
    }
    if (add->kind != NODE_ADD || add->consumers != 1 || in == m->output)
      continue;
    for (k = 0; k < 2; ++k) {
      const int bn = add->in[k], residual = add->in[1 - k];
      /* The residual must not be the batch norm's input: the one backward
       * call writes both gradients, which would then be one buffer. */
      if (fusable_batchnorm(m, bn) && residual != m->nodes[bn].in[0]) {
        relu->fused_bn = bn;
        relu->fused_add = in;
        relu->fused_residual = residual;
        m->nodes[bn].fused_into = i;
        m->nodes[in].fused_into = i;
        break;
      }
    }
  }
  /* After the batch-norm groups, whose ReLUs stay theirs. */
  for (i = 1; i < m->node_count; ++i) {
    node *dropout = &m->nodes[i];
    if (dropout->kind == NODE_DROPOUT &&
        fusable_activation(m, dropout->in[0])) {
      dropout->fused_act = dropout->in[0];
      m->nodes[dropout->in[0]].fused_into = i;
    }
  }
}

int cudl__fusion_active(const cudl_model *m) {
  return !m->fusion_off && m->training && !m->inference && !m->diagnostics &&
         !m->check_numerics && m->bn_sum == NULL;
}

int cudl__fusion_involves(const node *n) {
  return n->fused_bn != 0 || n->fused_act != 0 || n->fused_into != 0;
}

int cudl__fusion_leads(const node *n) {
  return n->fused_bn != 0 || n->fused_act != 0;
}

const node *cudl__fusion_owner(const cudl_model *m, const node *n) {
  if (n->fused_bn != 0) return &m->nodes[n->fused_bn];
  if (n->fused_act != 0) return &m->nodes[n->fused_act];
  return n;
}

cudl_status cudl__fusion_forward(cudl_model *m, node *n) {
  const node *bn;
  if (n->kind == NODE_BATCHNORM)
    return cudl_batchnorm_statistics(
        m->ctx, m->nodes[n->in[0]].y, n->momentum, n->eps,
        cudl__param(m, n->running_mean), cudl__param(m, n->running_var),
        n->save_mean, n->save_invstd);
  if (n->fused_act != 0) {
    const node *act = &m->nodes[n->fused_act];
    return cudl_activation_dropout_forward(m->ctx, act->act, act->alpha,
                                           m->nodes[act->in[0]].y, n->p, n->aux,
                                           n->y);
  }
  /* the addition or the activation: the ReLU or the dropout computes it */
  if (n->fused_bn == 0) return CUDL_OK;
  bn = &m->nodes[n->fused_bn];
  return cudl_batchnorm_apply(
      m->ctx, m->nodes[bn->in[0]].y, cudl__param(m, bn->weight),
      cudl__param(m, bn->bias), bn->save_mean, bn->save_invstd,
      n->fused_add != 0 ? m->nodes[n->fused_residual].y : NULL, 1, n->y);
}

/* A dropout's backward through its activation: the gradient of the
 * activation's input, and the activation marked done. */
static cudl_status dropout_group_backward(cudl_model *m, node *n) {
  node *act = &m->nodes[n->fused_act];
  cudl_tensor *dx = cudl__input_grad_target(m, act, 0);
  cudl_status status = CUDL_OK;
  if (dx != NULL)
    status = cudl_activation_dropout_backward(m->ctx, act->act, act->alpha,
                                              m->nodes[act->in[0]].y, n->aux,
                                              n->dy, dx);
  if (status == CUDL_OK) status = cudl__finish_input(m, act, 0);
  act->grad_written = 1;
  return status;
}

cudl_status cudl__fusion_backward(cudl_model *m, node *n) {
  node *bn = &m->nodes[n->fused_bn];
  node *add = n->fused_add != 0 ? &m->nodes[n->fused_add] : NULL;
  cudl_tensor *dresidual = NULL, *dx;
  int residual_input = -1; /* the addition's input k of the residual */
  cudl_status status = CUDL_OK;
  if (n->fused_act != 0) return dropout_group_backward(m, n);
  if (add != NULL) {
    residual_input = add->in[0] == n->fused_residual ? 0 : 1;
    dresidual = cudl__input_grad_target(m, add, residual_input);
    if (dresidual != NULL && m->nodes[n->fused_residual].grad_written) {
      /* Another reader of the residual wrote its gradient first: this one
       * goes through the scratch and is added, before the batch norm's
       * input may need the scratch too. */
      status = cudl__activation_backward(m->ctx, __func__, CUDL_ACT_RELU, 0.0f,
                                         n->y, n->y, n->dy, dresidual);
      if (status == CUDL_OK)
        status = cudl__finish_input(m, add, residual_input);
      dresidual = NULL;
      residual_input = -1;
    }
  }
  /* The parameters' gradients need a dx even where the input needs none. */
  dx = cudl__input_grad_target(m, bn, 0);
  if (status == CUDL_OK)
    status = cudl_batchnorm_relu_backward(
        m->ctx, m->nodes[bn->in[0]].y, n->y, n->dy, cudl__param(m, bn->weight),
        bn->save_mean, bn->save_invstd, dx != NULL ? dx : bn->dx_scratch[0],
        dresidual, cudl__grad(m, bn->weight), cudl__grad(m, bn->bias));
  if (status == CUDL_OK) status = cudl__finish_input(m, bn, 0);
  if (status == CUDL_OK && residual_input >= 0)
    status = cudl__finish_input(m, add, residual_input);
  /* Their work is done: the graph must not count them as unreached. */
  bn->grad_written = 1;
  if (add != NULL) add->grad_written = 1;
  return status;
}
