/*
 * cudl/optim.h - optimizers, learning-rate schedules and gradient clipping.
 *
 * An optimizer updates one flat f32 parameter tensor from a gradient tensor
 * of the same shape: a model keeps all its parameters in one arena and all
 * its gradients in another (cudl/nn.h), so a step is one pass over memory
 * (on CUDA one fused kernel launch), whatever the number of layers. The
 * optimizer owns its state (momentum, or Adam's two moments) in tensors of
 * the same shape, readable and writable for checkpoints.
 *
 * The update rules are PyTorch's (torch.optim, 1.13), step by step:
 *   SGD:   g = grad + weight_decay * p
 *          b = g                        (first step)
 *          b = momentum * b + (1 - dampening) * g   (later steps)
 *          g = nesterov ? g + momentum * b : b      (when momentum != 0)
 *          p = p - lr * g
 *   Adam:  g = grad + weight_decay * p  (L2, coupled)
 *   AdamW: p = p * (1 - lr * weight_decay)   (decoupled)
 *          then both: m = beta1 * m + (1 - beta1) * g
 *                     v = beta2 * v + (1 - beta2) * g^2
 *                     p = p - (lr / (1 - beta1^t)) * m /
 *                             (sqrt(v) / sqrt(1 - beta2^t) + eps)
 * where t counts the steps taken (from 1). Weight decay applies to every
 * element given, as PyTorch's default single parameter group does.
 *
 * The arithmetic is PyTorch's to the rounding: the same float operations
 * in the same order (fused multiply-adds where PyTorch's vectorised
 * `add(..., alpha=)` and `addcmul` fuse), with the scalars (1 - beta1,
 * lr / (1 - beta1^t), ...) computed in double and rounded once, so that a
 * step matches torch.optim's CPU result bit for bit (docs/ops.md).
 */
#ifndef CUDL_OPTIM_H
#define CUDL_OPTIM_H

#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

typedef enum cudl_optimizer_kind {
  CUDL_OPTIMIZER_SGD = 0,
  CUDL_OPTIMIZER_ADAM = 1,
  CUDL_OPTIMIZER_ADAMW = 2
} cudl_optimizer_kind;

/** Hyper-parameters. cudl_optimizer_config_default fills PyTorch's
 *  defaults for a kind (lr 0.001 for Adam and AdamW, and 0.01 for SGD,
 *  which has no default in PyTorch 1.13; momentum 0; betas 0.9, 0.999;
 *  eps 1e-8; weight decay 0, or 0.01 for AdamW). The fields another kind
 *  uses are ignored. */
typedef struct cudl_optimizer_config {
  cudl_optimizer_kind kind;
  float lr;           /* > 0; cudl_optimizer_step may override per step */
  float momentum;     /* SGD: [0, 1) */
  float dampening;    /* SGD: [0, 1] */
  int nesterov;       /* SGD: needs momentum > 0 and dampening 0 */
  float weight_decay; /* >= 0 */
  float beta1, beta2; /* Adam(W): [0, 1) */
  float eps;          /* Adam(W): > 0 */
} cudl_optimizer_config;

/** PyTorch's defaults for `kind` (CUDL_ERR_INVALID_ARGUMENT for an unknown
 *  kind or NULL config). */
CUDL_API cudl_status cudl_optimizer_config_default(
    cudl_optimizer_kind kind, cudl_optimizer_config *config);

typedef struct cudl_optimizer cudl_optimizer;

/**
 * An optimizer for `numel` (>= 0) parameters on ctx's device. Its state
 * tensors ([numel] f32, zero) are allocated now. Each field of config the
 * kind uses is checked (CUDL_ERR_INVALID_ARGUMENT naming it). On failure
 * *out is NULL.
 */
CUDL_API cudl_status cudl_optimizer_create(cudl_context *ctx,
                                           const cudl_optimizer_config *config,
                                           int64_t numel, cudl_optimizer **out);

/** Release the optimizer and its state. NULL is a no-op. */
CUDL_API void cudl_optimizer_destroy(cudl_optimizer *opt);

/**
 * One update of params from grads (both f32 with numel elements, any
 * shape, of the optimizer's context, not sharing storage, nor bytes of
 * memory wrapped twice: CUDL_ERR_INVALID_ARGUMENT) with learning
 * rate lr (finite, >= 0: pass the schedule's value, which may reach 0, or
 * config.lr). The step count t advances by one. On CUDA this is one kernel
 * launch and never synchronises. On a failed check nothing is written.
 */
CUDL_API cudl_status cudl_optimizer_step(cudl_optimizer *opt,
                                         cudl_tensor *params,
                                         const cudl_tensor *grads, float lr);

/** The config the optimizer was created with (NULL for NULL). */
CUDL_API const cudl_optimizer_config *cudl_optimizer_config_query(
    const cudl_optimizer *opt);

/** Steps taken so far (t). 0 for NULL. */
CUDL_API int64_t cudl_optimizer_steps(const cudl_optimizer *opt);

/** The number of parameters it updates (numel at creation). 0 for NULL. */
CUDL_API int64_t cudl_optimizer_numel(const cudl_optimizer *opt);

/**
 * The state, for checkpoints: `count` (0, 1 or 2) tensors of shape
 * [numel], owned by the optimizer: SGD with momentum has the momentum
 * buffer ("momentum_buffer"); Adam and AdamW have "exp_avg" and
 * "exp_avg_sq"; SGD without momentum has none. Names are PyTorch's.
 * cudl_optimizer_state returns the tensor `index` (< count) and sets *name
 * (name may be NULL); for a NULL opt or another index it returns NULL and
 * sets *name to NULL. Write a saved state into these tensors with
 * cudl_tensor_copy_from_host or cudl_tensor_copy.
 */
CUDL_API int cudl_optimizer_state_count(const cudl_optimizer *opt);
CUDL_API cudl_tensor *cudl_optimizer_state(cudl_optimizer *opt, int index,
                                           const char **name);

/** Restore the step count (from a checkpoint), so that Adam's bias
 *  correction and SGD's first-step rule (at t = 0 the momentum buffer is
 *  set to the gradient, not updated) continue where they stopped.
 *  CUDL_ERR_INVALID_ARGUMENT for a NULL opt or negative steps. */
CUDL_API cudl_status cudl_optimizer_set_steps(cudl_optimizer *opt,
                                              int64_t steps);

/* ---- learning-rate schedules ---- */

typedef enum cudl_lr_schedule_kind {
  CUDL_LR_CONSTANT = 0,
  CUDL_LR_STEP = 1,       /* lr * gamma^(floor(epoch / step_size)) */
  CUDL_LR_MULTI_STEP = 2, /* lr * gamma^(milestones passed) */
  CUDL_LR_COSINE = 3      /* eta_min + (lr - eta_min)(1 + cos(pi e / T)) / 2 */
} cudl_lr_schedule_kind;

#define CUDL_LR_MAX_MILESTONES 8

/** A schedule over epochs, as torch.optim.lr_scheduler's StepLR,
 *  MultiStepLR and CosineAnnealingLR (T = total_epochs; past T the cosine
 *  rises again, as PyTorch's does), optionally after a linear warm-up:
 *  with W = warmup_epochs * steps_per_epoch, step s < W gets
 *  base_lr * (s + 1) / W; after it, the schedule runs with epochs counted
 *  from the end of the warm-up. Fields another kind uses are ignored. */
typedef struct cudl_lr_schedule {
  cudl_lr_schedule_kind kind;
  float base_lr;                          /* finite, > 0 */
  float gamma;                            /* step, multi-step: finite, > 0 */
  int step_size;                          /* step: epochs, >= 1 */
  int milestones[CUDL_LR_MAX_MILESTONES]; /* multi-step: epochs >= 0,
                                             strictly increasing */
  int milestone_count;                    /* multi-step: 0 to 8 */
  int total_epochs;                       /* cosine: T >= 1 */
  float eta_min;                          /* cosine: finite, >= 0 */
  int warmup_epochs;                      /* >= 0 */
} cudl_lr_schedule;

/**
 * The learning rate for `step` (>= 0, counted from 0 over the whole run)
 * with steps_per_epoch (>= 1) steps an epoch. The warm-up advances per
 * step, the schedule per epoch (epoch = (step - W) / steps_per_epoch).
 * PyTorch's closed forms, in double, rounded once to float. A pure
 * function: no context, no state. CUDL_ERR_INVALID_ARGUMENT (and *lr
 * unchanged) for an invalid schedule or argument; the reason goes to the
 * log at DEBUG.
 */
CUDL_API cudl_status cudl_lr_schedule_at(const cudl_lr_schedule *schedule,
                                         int64_t step, int64_t steps_per_epoch,
                                         float *lr);

/* ---- gradient clipping ---- */

/**
 * Scale grads in place so that their L2 norm is at most max_norm (finite,
 * > 0), as torch.nn.utils.clip_grad_norm_ (1.13): with coef = max_norm /
 * (norm + 1e-6), computed in float as PyTorch does, grads *= coef when
 * coef < 1 (so clipping starts a hair below max_norm, as in PyTorch).
 * The norm is the square root of the squares summed in double, rounded
 * once to float; deterministic. `norm` receives it, before clipping (a
 * one-element f32 tensor of grads' context, so that CUDA need not
 * synchronise; NULL to skip; not sharing grads' storage or bytes). A
 * non-finite norm (a NaN or infinite gradient, or a norm above FLT_MAX)
 * leaves grads unchanged, where PyTorch would scale them by NaN or 0.
 */
CUDL_API cudl_status cudl_clip_grad_norm(cudl_context *ctx, cudl_tensor *grads,
                                         float max_norm, cudl_tensor *norm);

CUDL_EXTERN_C_END

#endif /* CUDL_OPTIM_H */
