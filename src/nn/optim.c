/*
 * optim.c - optimizers (SGD, Adam, AdamW) and gradient-norm clipping:
 * validation, state, the step count, and the scalars of each step, then one
 * backend call over the whole parameter arena.
 *
 * The scalars are derived as PyTorch 1.13's torch.optim derives them: in
 * double (its Python floats) from the config's floats, then rounded once to
 * float where a float kernel receives them (cudl_*_step_args).
 */
#include <math.h>
#include <string.h>

#include "core/internal.h"

struct cudl_optimizer {
  cudl_context *ctx;
  cudl_allocator allocator; /* allocated this object */
  cudl_optimizer_config config;
  int64_t numel;
  int64_t steps;
  int state_count;
  cudl_tensor *state[2];
  const char *state_names[2];
};

cudl_status cudl_optimizer_config_default(cudl_optimizer_kind kind,
                                          cudl_optimizer_config *config) {
  cudl_optimizer_config c;
  if (config == NULL)
    return cudl__fail(NULL, CUDL_ERR_INVALID_ARGUMENT, __func__,
                      "config is NULL");
  if (kind != CUDL_OPTIMIZER_SGD && kind != CUDL_OPTIMIZER_ADAM &&
      kind != CUDL_OPTIMIZER_ADAMW)
    return cudl__fail(NULL, CUDL_ERR_INVALID_ARGUMENT, __func__,
                      "unknown optimizer kind %d", (int)kind);
  memset(&c, 0, sizeof c);
  c.kind = kind;
  c.lr = kind == CUDL_OPTIMIZER_SGD ? 0.01f : 0.001f;
  c.momentum = 0.0f;
  c.dampening = 0.0f;
  c.nesterov = 0;
  c.weight_decay = kind == CUDL_OPTIMIZER_ADAMW ? 0.01f : 0.0f;
  c.beta1 = 0.9f;
  c.beta2 = 0.999f;
  c.eps = 1e-8f;
  *config = c;
  return CUDL_OK;
}

/* A field in [low, high) (high_open) or [low, high]; NaN fails. */
static int in_range(float v, double low, double high, int high_open) {
  const double d = (double)v;
  return d >= low && (high_open ? d < high : d <= high);
}

static cudl_status check_config(cudl_context *ctx, const char *function,
                                const cudl_optimizer_config *c) {
  if (c->kind != CUDL_OPTIMIZER_SGD && c->kind != CUDL_OPTIMIZER_ADAM &&
      c->kind != CUDL_OPTIMIZER_ADAMW)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "config.kind %d is not an optimizer kind", (int)c->kind);
  if (!(isfinite(c->lr) && c->lr > 0.0f))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "config.lr must be finite and > 0, got %g",
                      (double)c->lr);
  if (!(isfinite(c->weight_decay) && c->weight_decay >= 0.0f))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "config.weight_decay must be finite and >= 0, got %g",
                      (double)c->weight_decay);
  if (c->kind == CUDL_OPTIMIZER_SGD) {
    if (!in_range(c->momentum, 0.0, 1.0, 1))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "config.momentum must be in [0, 1), got %g",
                        (double)c->momentum);
    if (!in_range(c->dampening, 0.0, 1.0, 0))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "config.dampening must be in [0, 1], got %g",
                        (double)c->dampening);
    if (c->nesterov && (c->momentum <= 0.0f || c->dampening != 0.0f))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "config.nesterov needs momentum > 0 and dampening 0 "
                        "(got momentum %g, dampening %g)",
                        (double)c->momentum, (double)c->dampening);
  } else {
    if (!in_range(c->beta1, 0.0, 1.0, 1))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "config.beta1 must be in [0, 1), got %g",
                        (double)c->beta1);
    if (!in_range(c->beta2, 0.0, 1.0, 1))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "config.beta2 must be in [0, 1), got %g",
                        (double)c->beta2);
    if (!(isfinite(c->eps) && c->eps > 0.0f))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "config.eps must be finite and > 0, got %g",
                        (double)c->eps);
  }
  return CUDL_OK;
}

void cudl_optimizer_destroy(cudl_optimizer *opt) {
  cudl_allocator allocator;
  int i;
  if (opt == NULL) return;
  for (i = 0; i < 2; ++i) cudl_tensor_destroy(opt->state[i]);
  allocator = opt->allocator;
  cudl__host_free(&allocator, opt, sizeof *opt);
}

cudl_status cudl_optimizer_create(cudl_context *ctx,
                                  const cudl_optimizer_config *config,
                                  int64_t numel, cudl_optimizer **out) {
  cudl_optimizer *opt;
  cudl_status status;
  int i;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  if (config == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "config is NULL");
  status = check_config(ctx, __func__, config);
  if (status != CUDL_OK) return status;
  if (numel < 0)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE, "numel is negative (%lld)",
                     (long long)numel);
  opt = (cudl_optimizer *)cudl__host_alloc(&ctx->allocator, sizeof *opt,
                                           sizeof(void *));
  if (opt == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                     "cannot allocate the optimizer");
  memset(opt, 0, sizeof *opt);
  opt->ctx = ctx;
  opt->allocator = ctx->allocator;
  opt->config = *config;
  opt->config.nesterov = config->nesterov != 0;
  opt->numel = numel;
  if (config->kind == CUDL_OPTIMIZER_SGD) {
    if (config->momentum != 0.0f) {
      opt->state_count = 1;
      opt->state_names[0] = "momentum_buffer";
    }
  } else {
    opt->state_count = 2;
    opt->state_names[0] = "exp_avg";
    opt->state_names[1] = "exp_avg_sq";
  }
  for (i = 0; i < opt->state_count; ++i) {
    /* Zeroed by the backend's allocation. */
    status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &numel, &opt->state[i]);
    if (status != CUDL_OK) {
      cudl_optimizer_destroy(opt);
      return status;
    }
  }
  *out = opt;
  return CUDL_OK;
}

const cudl_optimizer_config *cudl_optimizer_config_query(
    const cudl_optimizer *opt) {
  return opt == NULL ? NULL : &opt->config;
}

int64_t cudl_optimizer_steps(const cudl_optimizer *opt) {
  return opt == NULL ? 0 : opt->steps;
}

int64_t cudl_optimizer_numel(const cudl_optimizer *opt) {
  return opt == NULL ? 0 : opt->numel;
}

int cudl_optimizer_state_count(const cudl_optimizer *opt) {
  return opt == NULL ? 0 : opt->state_count;
}

cudl_tensor *cudl_optimizer_state(cudl_optimizer *opt, int index,
                                  const char **name) {
  if (name != NULL) *name = NULL;
  if (opt == NULL || index < 0 || index >= opt->state_count) return NULL;
  if (name != NULL) *name = opt->state_names[index];
  return opt->state[index];
}

cudl_status cudl_optimizer_set_steps(cudl_optimizer *opt, int64_t steps) {
  if (opt == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (steps < 0)
    return cudl__fail(opt->ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                      "steps is negative (%lld)", (long long)steps);
  opt->steps = steps;
  return CUDL_OK;
}

/* params and grads: non-NULL, f32, of ctx, numel elements each, distinct. */
static cudl_status check_step_tensors(cudl_context *ctx, const char *function,
                                      const cudl_tensor *params,
                                      const cudl_tensor *grads, int64_t numel) {
  const cudl_tensor *tensors[2];
  static const char *const names[2] = {"params", "grads"};
  int i;
  tensors[0] = params;
  tensors[1] = grads;
  for (i = 0; i < 2; ++i) {
    /* One at a time: any shapes, the same count. */
    cudl_status status =
        cudl__check_f32_op(ctx, function, &tensors[i], &names[i], 1);
    if (status != CUDL_OK) return status;
    if (tensors[i]->numel != numel)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s has %lld elements; the optimizer was made for "
                        "%lld",
                        names[i], (long long)tensors[i]->numel,
                        (long long)numel);
  }
  /* One storage, or the caller's memory wrapped twice (cudl_tensor_wrap)
   * with bytes in common. */
  if ((params->storage != NULL && params->storage == grads->storage) ||
      cudl__tensors_overlap(params, grads))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "params and grads share storage");
  return CUDL_OK;
}

static cudl_status sgd_step(cudl_optimizer *opt, float *params,
                            const float *grads, float lr) {
  cudl_context *ctx = opt->ctx;
  const cudl_optimizer_config *c = &opt->config;
  cudl_sgd_step_args a;
  float *buffer = NULL;
  memset(&a, 0, sizeof a);
  /* param.add_(d_p, alpha=-lr): -lr is exact. */
  a.neg_lr = -lr;
  a.weight_decay = c->weight_decay;
  a.momentum = c->momentum;
  /* buf.mul_(momentum).add_(d_p, alpha=1 - dampening), 1 - d in double. */
  a.one_minus_dampening = (float)(1.0 - (double)c->dampening);
  a.nesterov = c->nesterov;
  a.first_step = opt->steps == 0;
  if (c->momentum != 0.0f) buffer = (float *)opt->state[0]->data;
  return CUDL_OP_CALL(ctx, __func__, CUDL_DTYPE_F32, sgd_step, params, grads,
                      buffer, opt->numel, &a);
}

static cudl_status adam_step(cudl_optimizer *opt, float *params,
                             const float *grads, float lr) {
  cudl_context *ctx = opt->ctx;
  const cudl_optimizer_config *c = &opt->config;
  const double t = (double)(opt->steps + 1);
  const double beta1 = c->beta1, beta2 = c->beta2;
  /* _single_tensor_adam(w): step = step_t.item(), then in Python floats
   * bias_correction1 = 1 - beta1 ** step, bias_correction2 = 1 - beta2 **
   * step, step_size = lr / bias_correction1 and bias_correction2_sqrt =
   * math.sqrt(bias_correction2). */
  const double bias_correction1 = 1.0 - pow(beta1, t);
  const double bias_correction2 = 1.0 - pow(beta2, t);
  cudl_adam_step_args a;
  memset(&a, 0, sizeof a);
  if (c->kind == CUDL_OPTIMIZER_ADAMW) {
    /* param.mul_(1 - lr * weight_decay) */
    a.decay = (float)(1.0 - (double)lr * (double)c->weight_decay);
    a.weight_decay = 0.0f;
  } else {
    a.decay = 1.0f;
    a.weight_decay = c->weight_decay; /* grad.add(param, alpha=wd) */
  }
  a.beta1 = c->beta1;
  a.one_minus_beta1 = (float)(1.0 - beta1);
  a.beta2 = c->beta2;
  a.one_minus_beta2 = (float)(1.0 - beta2);
  /* param.addcdiv_(exp_avg, denom, value=-step_size) */
  a.neg_step_size = (float)(-((double)lr / bias_correction1));
  /* denom = (exp_avg_sq.sqrt() / bias_correction2_sqrt).add_(eps) */
  a.bias_correction2_sqrt = (float)sqrt(bias_correction2);
  a.eps = c->eps;
  return CUDL_OP_CALL(ctx, __func__, CUDL_DTYPE_F32, adam_step, params, grads,
                      (float *)opt->state[0]->data,
                      (float *)opt->state[1]->data, opt->numel, &a);
}

cudl_status cudl_optimizer_step(cudl_optimizer *opt, cudl_tensor *params,
                                const cudl_tensor *grads, float lr) {
  cudl_context *ctx;
  cudl_status status;
  if (opt == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = opt->ctx;
  status = check_step_tensors(ctx, __func__, params, grads, opt->numel);
  if (status != CUDL_OK) return status;
  if (!(isfinite(lr) && lr >= 0.0f))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "lr must be finite and >= 0, got %g", (double)lr);
  if (opt->steps == INT64_MAX)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the step count cannot advance past %lld",
                     (long long)INT64_MAX);
  if (opt->numel > 0) {
    if (opt->config.kind == CUDL_OPTIMIZER_SGD)
      status =
          sgd_step(opt, (float *)params->data, (const float *)grads->data, lr);
    else
      status =
          adam_step(opt, (float *)params->data, (const float *)grads->data, lr);
    if (status != CUDL_OK) return status;
  }
  ++opt->steps;
  return CUDL_OK;
}

/* ---- gradient clipping ---- */

cudl_status cudl_clip_grad_norm(cudl_context *ctx, cudl_tensor *grads,
                                float max_norm, cudl_tensor *norm) {
  static const char *const grads_name[1] = {"grads"};
  const cudl_tensor *check;
  cudl_tensor *scratch = NULL;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  check = grads;
  status = cudl__check_f32_op(ctx, __func__, &check, grads_name, 1);
  if (status != CUDL_OK) return status;
  if (norm != NULL) {
    status = cudl__check_f32_scalar(ctx, __func__, norm, "norm");
    if (status != CUDL_OK) return status;
    if (norm->storage == grads->storage || cudl__tensors_overlap(norm, grads))
      return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "norm and grads share storage");
  }
  if (!(isfinite(max_norm) && max_norm > 0.0f))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "max_norm must be finite and > 0, got %g",
                     (double)max_norm);
  if (norm == NULL) {
    const int64_t one = 1;
    status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &one, &scratch);
    if (status != CUDL_OK) return status;
    norm = scratch;
  }
  status = CUDL_OP_CALL(ctx, __func__, grads->dtype, l2_norm, grads->data,
                        norm->data, grads->numel);
  if (status == CUDL_OK && grads->numel > 0)
    status = CUDL_OP_CALL(ctx, __func__, grads->dtype, clip_scale, grads->data,
                          grads->numel, norm->data, max_norm);
  cudl_tensor_destroy(scratch); /* stream-ordered on CUDA: no wait */
  return status;
}
