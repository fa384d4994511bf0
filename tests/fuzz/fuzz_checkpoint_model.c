/*
 * fuzz_checkpoint_model.c - the fixture of fuzz_checkpoint_model.h.
 */
#include "fuzz_checkpoint_model.h"

#include <string.h>

/* At least the largest tensor: the optimizers' state, as long as the
 * model's parameter arena (40 scalars, each tensor's start aligned: 96). */
#define FUZZ_CKPT_MAX_NUMEL 128

cudl_status fuzz_ckpt_fixture_create(fuzz_ckpt_fixture *f) {
  static const cudl_optimizer_kind kinds[FUZZ_CKPT_OPTIMIZERS] = {
      CUDL_OPTIMIZER_SGD, CUDL_OPTIMIZER_SGD, CUDL_OPTIMIZER_ADAM,
      CUDL_OPTIMIZER_ADAMW};
  const int64_t input[3] = {1, 2, 2};
  cudl_conv2d_desc desc = CUDL_CONV2D_DESC_DEFAULT;
  cudl_status s;
  int conv, bn, act, flat, fc, k;
  memset(f, 0, sizeof *f);
  desc.pad_h = desc.pad_w = 1;
  s = cudl_context_create(CUDL_DEVICE_CPU, 0, &f->ctx);
  if (s == CUDL_OK) s = cudl_model_create(f->ctx, 3, input, &f->model);
  if (s == CUDL_OK)
    s = cudl_model_add_conv2d(f->model, 0, "conv", 2, 3, 3, &desc, 0, &conv);
  if (s == CUDL_OK)
    s = cudl_model_add_batchnorm(f->model, conv, "bn", 0.1f, 1e-5f, &bn);
  if (s == CUDL_OK)
    s = cudl_model_add_activation(f->model, bn, CUDL_ACT_RELU, 0.0f, &act);
  if (s == CUDL_OK) s = cudl_model_add_flatten(f->model, act, &flat);
  if (s == CUDL_OK) s = cudl_model_add_linear(f->model, flat, "fc", 2, 1, &fc);
  if (s == CUDL_OK)
    s = cudl_model_set_output(f->model, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY);
  if (s == CUDL_OK) s = cudl_model_compile(f->model, 1);
  for (k = 0; k < FUZZ_CKPT_OPTIMIZERS && s == CUDL_OK; ++k) {
    cudl_optimizer_config config;
    s = cudl_optimizer_config_default(kinds[k], &config);
    if (k == FUZZ_CKPT_SGD_MOMENTUM) config.momentum = 0.9f;
    if (s == CUDL_OK)
      s = cudl_optimizer_create(f->ctx, &config,
                                cudl_tensor_numel(cudl_model_params(f->model)),
                                &f->opt[k]);
  }
  if (s != CUDL_OK) fuzz_ckpt_fixture_destroy(f);
  return s;
}

void fuzz_ckpt_fixture_destroy(fuzz_ckpt_fixture *f) {
  int k;
  for (k = 0; k < FUZZ_CKPT_OPTIMIZERS; ++k) cudl_optimizer_destroy(f->opt[k]);
  cudl_model_destroy(f->model);
  cudl_context_destroy(f->ctx);
  memset(f, 0, sizeof *f);
}

/* The pattern of tensor number `which`: base + which + i/128, exact in
 * f32. */
static void pattern(float *values, int64_t n, float base, int which) {
  int64_t i;
  for (i = 0; i < n; ++i)
    values[i] = base + (float)which + (float)i / (float)FUZZ_CKPT_MAX_NUMEL;
}

/* Tensor number `which` of the fixture: the model's named tensors first,
 * then each optimizer's state (numbers of an optimizer with fewer states
 * are skipped, so that every optimizer's numbers stay the same). */
static cudl_tensor *tensor(fuzz_ckpt_fixture *f, int which) {
  int n = cudl_model_param_count(f->model);
  if (which < n)
    return cudl_model_param(f->model,
                            cudl_model_param_name(f->model, which, NULL));
  which -= n;
  return cudl_optimizer_state(f->opt[which / 2], which % 2, NULL);
}

static int tensor_count(fuzz_ckpt_fixture *f) {
  return cudl_model_param_count(f->model) + 2 * FUZZ_CKPT_OPTIMIZERS;
}

/* The part tensor `which` belongs to: FUZZ_CKPT_MODEL or an optimizer. */
static int owner(fuzz_ckpt_fixture *f, int which) {
  int n = cudl_model_param_count(f->model);
  return which < n ? FUZZ_CKPT_MODEL : (which - n) / 2;
}

cudl_status fuzz_ckpt_fill(fuzz_ckpt_fixture *f, float base, int64_t steps) {
  float values[FUZZ_CKPT_MAX_NUMEL];
  cudl_status s = CUDL_OK;
  int k;
  for (k = 0; k < tensor_count(f) && s == CUDL_OK; ++k) {
    cudl_tensor *t = tensor(f, k);
    if (t == NULL) continue;
    if (cudl_tensor_numel(t) > FUZZ_CKPT_MAX_NUMEL)
      return CUDL_ERR_INVALID_ARGUMENT;
    pattern(values, cudl_tensor_numel(t), base, k);
    s = cudl_tensor_copy_from_host(t, values, cudl_tensor_nbytes(t));
  }
  for (k = 0; k < FUZZ_CKPT_OPTIMIZERS && s == CUDL_OK; ++k)
    s = cudl_optimizer_set_steps(f->opt[k], steps);
  return s;
}

int fuzz_ckpt_holds(fuzz_ckpt_fixture *f, int part, float base) {
  float values[FUZZ_CKPT_MAX_NUMEL];
  int k;
  for (k = 0; k < tensor_count(f); ++k) {
    cudl_tensor *t = tensor(f, k);
    if (t == NULL || owner(f, k) != part) continue;
    /* Every tensor is on the CPU: its data is host memory. */
    pattern(values, cudl_tensor_numel(t), base, k);
    if (memcmp(cudl_tensor_data(t), values, cudl_tensor_nbytes(t)) != 0)
      return 0;
  }
  return 1;
}
