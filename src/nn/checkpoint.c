/* checkpoint.c - model, optimizer and run position in one safetensors
 * file (cudl/checkpoint.h). */
#include <ctype.h>
#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nn/nn_internal.h"

#define FORMAT_KEY CUDL_CHECKPOINT_FORMAT_KEY
#define FORMAT_VALUE CUDL_CHECKPOINT_FORMAT
#define OPTIMIZER_PREFIX "optimizer."
/* Model tensors + up to 2 optimizer states; metadata: ours + extra. */
#define OUR_METADATA 13 /* and cudl.architecture, where the model has one */

static const char *optimizer_kind_name(const cudl_optimizer *opt) {
  if (opt == NULL) return "none";
  switch (cudl_optimizer_config_query(opt)->kind) {
    case CUDL_OPTIMIZER_SGD:
      return "sgd";
    case CUDL_OPTIMIZER_ADAM:
      return "adam";
    case CUDL_OPTIMIZER_ADAMW:
      return "adamw";
  }
  return "unknown";
}

/* The optimizer (may be NULL) must update exactly the model's trainable
 * parameters: a checkpoint pairs one with the other. */
static cudl_status check_optimizer(cudl_model *model, const cudl_optimizer *opt,
                                   const char *function) {
  const int64_t params = cudl_tensor_numel(cudl_model_params(model));
  if (opt == NULL || cudl_optimizer_numel(opt) == params) return CUDL_OK;
  return cudl__fail(cudl_model_context(model), CUDL_ERR_SHAPE, function,
                    "optimizer is for %lld parameters but the model has "
                    "%lld",
                    (long long)cudl_optimizer_numel(opt), (long long)params);
}

cudl_status cudl_checkpoint_save(cudl_model *model, cudl_optimizer *opt,
                                 const cudl_train_state *state,
                                 const cudl_metadata_pair *extra,
                                 size_t n_extra, const char *path) {
  cudl_context *ctx;
  cudl_named_tensor *tensors = NULL;
  cudl_metadata_pair *meta = NULL;
  char *architecture = NULL;
  char numbers[9][32], names[2][64];
  size_t n_tensors = 0, n_meta = 0, i, tensor_bytes, meta_bytes;
  size_t arch_bytes = 0;
  int k, n_params, n_states;
  cudl_status status;
  if (model == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl__model_require_compiled(model, __func__);
  if (status != CUDL_OK) return status;
  ctx = cudl_model_context(model);
  if (state == NULL || path == NULL || (extra == NULL && n_extra > 0))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "%s is NULL",
                     state == NULL  ? "state"
                     : path == NULL ? "path"
                                    : "extra");
  for (i = 0; i < n_extra; ++i)
    if (extra[i].key == NULL || strncmp(extra[i].key, "cudl.", 5) == 0)
      return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "extra metadata key %zu is NULL or starts with "
                       "\"cudl.\" (reserved)",
                       i);
  status = check_optimizer(model, opt, __func__);
  if (status != CUDL_OK) return status;
  n_params = cudl_model_param_count(model);
  n_states = opt == NULL ? 0 : cudl_optimizer_state_count(opt);
  tensor_bytes = (size_t)(n_params + n_states + 1) * sizeof *tensors;
  status = cudl__model_architecture(model, __func__, &architecture,
                                    &arch_bytes);
  if (status != CUDL_OK) return status;
  meta_bytes = (OUR_METADATA + 1 + n_extra) * sizeof *meta;
  tensors =
      (cudl_named_tensor *)cudl__host_alloc(&ctx->allocator, tensor_bytes, 16);
  meta =
      (cudl_metadata_pair *)cudl__host_alloc(&ctx->allocator, meta_bytes, 16);
  if (tensors == NULL || meta == NULL) {
    cudl__host_free(&ctx->allocator, tensors, tensor_bytes);
    cudl__host_free(&ctx->allocator, meta, meta_bytes);
    cudl__host_free(&ctx->allocator, architecture, arch_bytes);
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                     "cannot list the checkpoint's contents");
  }
  for (k = 0; k < n_params; ++k) {
    tensors[n_tensors].name = cudl_model_param_name(model, k, NULL);
    tensors[n_tensors].tensor =
        cudl_model_param(model, tensors[n_tensors].name);
    ++n_tensors;
  }
  for (k = 0; k < n_states; ++k) {
    const char *name = NULL;
    cudl_tensor *t = cudl_optimizer_state(opt, k, &name);
    snprintf(names[k], sizeof names[k], OPTIMIZER_PREFIX "%s", name);
    tensors[n_tensors].name = names[k];
    tensors[n_tensors].tensor = t;
    ++n_tensors;
  }
  snprintf(numbers[0], sizeof numbers[0], "%" PRId64, state->epoch);
  snprintf(numbers[1], sizeof numbers[1], "%" PRId64, state->batch);
  snprintf(numbers[2], sizeof numbers[2], "%" PRId64, state->step);
  snprintf(numbers[3], sizeof numbers[3], "%" PRIu64, state->data_seed);
  snprintf(numbers[4], sizeof numbers[4], "%" PRIu64, state->rng_seed);
  snprintf(numbers[5], sizeof numbers[5], "%" PRIu64, state->rng_offset);
  snprintf(numbers[6], sizeof numbers[6], "%" PRId64,
           opt == NULL ? (int64_t)0 : cudl_optimizer_steps(opt));
  {
    /* FP16's loss scaler, so that a resumed run goes on with the scale it
     * had (%.9g: a float read back exactly). */
    float scale = 1.0f;
    int64_t clean = 0;
    cudl_model_loss_scale_state(model, &scale, &clean);
    snprintf(numbers[7], sizeof numbers[7], "%.9g", (double)scale);
    snprintf(numbers[8], sizeof numbers[8], "%" PRId64, clean);
  }
  {
    const char *keys[OUR_METADATA] = {
        FORMAT_KEY,        "cudl.epoch",
        "cudl.batch",      "cudl.step",
        "cudl.data_seed",  "cudl.rng_seed",
        "cudl.rng_offset", "cudl.optimizer_steps",
        "cudl.optimizer",  "cudl.precision",
        "cudl.loss_scale", "cudl.loss_scale_clean_steps",
        "cudl.layout"};
    const char *values[OUR_METADATA] = {
        FORMAT_VALUE,
        numbers[0],
        numbers[1],
        numbers[2],
        numbers[3],
        numbers[4],
        numbers[5],
        numbers[6],
        optimizer_kind_name(opt),
        cudl_precision_name(cudl_model_precision(model)),
        numbers[7],
        numbers[8],
        cudl_layout_name(cudl_model_layout(model))};
    for (k = 0; k < OUR_METADATA; ++k) {
      meta[n_meta].key = keys[k];
      meta[n_meta].value = values[k];
      ++n_meta;
    }
  }
  if (architecture != NULL) {
    meta[n_meta].key = CUDL_METADATA_ARCHITECTURE;
    meta[n_meta].value = architecture;
    ++n_meta;
  }
  for (i = 0; i < n_extra; ++i) meta[n_meta++] = extra[i];
  status = cudl_safetensors_save(ctx, path, tensors, n_tensors, meta, n_meta);
  cudl__host_free(&ctx->allocator, tensors, tensor_bytes);
  cudl__host_free(&ctx->allocator, meta, meta_bytes);
  cudl__host_free(&ctx->allocator, architecture, arch_bytes);
  return status;
}

/* Metadata `key` of set as a decimal integer (no sign for unsigned).
 * strtoll/strtoull skip any leading white space and then take a sign, so
 * the first character must be a digit (or '-' for signed): "\t-1" would
 * otherwise be read as an unsigned 2^64 - 1. */
static cudl_status read_number(cudl_context *ctx, const cudl_safetensors *set,
                               const char *key, int is_signed,
                               uint64_t *value) {
  const char *text = cudl_safetensors_metadata_find(set, key);
  char *end = NULL;
  if (text == NULL ||
      !(isdigit((unsigned char)text[0]) || (is_signed && text[0] == '-')))
    return CUDL_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                     "the checkpoint's \"%s\" is missing or not a number", key);
  errno = 0;
  if (is_signed) {
    long long v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0)
      return CUDL_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                       "the checkpoint's \"%s\" is \"%s\", not a count", key,
                       text);
    *value = (uint64_t)v;
  } else {
    unsigned long long v = strtoull(text, &end, 10);
    if (errno != 0 || *end != '\0')
      return CUDL_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                       "the checkpoint's \"%s\" is \"%s\", not a number", key,
                       text);
    *value = (uint64_t)v;
  }
  return CUDL_OK;
}

/* The saved loss scaler (older checkpoints have none): *found
 * is 1 when the checkpoint was trained in fp16 and holds a valid one. */
static cudl_status read_loss_scale(cudl_context *ctx,
                                   const cudl_safetensors *set, int *found,
                                   float *scale, int64_t *clean_steps) {
  const char *precision = cudl_safetensors_metadata_find(set, "cudl.precision");
  const char *text = cudl_safetensors_metadata_find(set, "cudl.loss_scale");
  uint64_t clean = 0;
  char *end = NULL;
  double value;
  cudl_status status;
  *found = 0;
  if (precision == NULL || strcmp(precision, "fp16") != 0) return CUDL_OK;
  if (text == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                     "the fp16 checkpoint has no \"cudl.loss_scale\"");
  errno = 0;
  value = strtod(text, &end);
  /* Read as a float: finite and above 0. */
  if (errno != 0 || *end != '\0' || !(value > 0.0) || value > FLT_MAX)
    return CUDL_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                     "the fp16 checkpoint's \"cudl.loss_scale\" is \"%s\", "
                     "not a finite scale > 0",
                     text);
  status = read_number(ctx, set, "cudl.loss_scale_clean_steps", 1, &clean);
  if (status != CUDL_OK) return status;
  *found = 1;
  *scale = (float)value;
  *clean_steps = (int64_t)clean;
  return CUDL_OK;
}

cudl_status cudl_checkpoint_load(cudl_model *model, cudl_optimizer *opt,
                                 cudl_train_state *state, const char *path) {
  cudl_context *ctx;
  cudl_safetensors *set = NULL;
  cudl_train_state loaded;
  uint64_t numbers[7];
  const char *format, *kind;
  static const char *const keys[7] = {"cudl.epoch",          "cudl.batch",
                                      "cudl.step",           "cudl.data_seed",
                                      "cudl.rng_seed",       "cudl.rng_offset",
                                      "cudl.optimizer_steps"};
  int k, n_states, has_scale = 0;
  float scale = 1.0f;
  int64_t clean_steps = 0;
  size_t i;
  cudl_status status;
  if (model == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl__model_require_compiled(model, __func__);
  if (status != CUDL_OK) return status;
  ctx = cudl_model_context(model);
  if (path == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "path is NULL");
  status = check_optimizer(model, opt, __func__);
  if (status != CUDL_OK) return status;
  status = cudl_safetensors_load(ctx, path, 0, &set);
  if (status != CUDL_OK) return status;
  format = cudl_safetensors_metadata_find(set, FORMAT_KEY);
  if (format == NULL || strcmp(format, FORMAT_VALUE) != 0) {
    status = CUDL_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                       "%s is not a cudl checkpoint (no \"%s\": \"%s\")", path,
                       FORMAT_KEY, FORMAT_VALUE);
    goto done;
  }
  for (k = 0; k < 7 && status == CUDL_OK; ++k)
    status = read_number(ctx, set, keys[k], k < 3 || k == 6, &numbers[k]);
  if (status != CUDL_OK) goto done;
  status = read_loss_scale(ctx, set, &has_scale, &scale, &clean_steps);
  if (status != CUDL_OK) goto done;
  kind = cudl_safetensors_metadata_find(set, "cudl.optimizer");
  /* The optimizer's state: of the kind saved, each tensor present with
   * the optimizer's shape (not only its size: the copy below needs the
   * shape, and must not fail after the model has been changed). */
  n_states = opt == NULL ? 0 : cudl_optimizer_state_count(opt);
  if (opt != NULL &&
      (kind == NULL || strcmp(kind, optimizer_kind_name(opt)) != 0)) {
    status =
        CUDL_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                  "the checkpoint's optimizer is \"%s\", not \"%s\"",
                  kind == NULL ? "(none)" : kind, optimizer_kind_name(opt));
    goto done;
  }
  for (k = 0; k < n_states; ++k) {
    char name[64];
    const char *state_name = NULL;
    cudl_tensor *dst = cudl_optimizer_state(opt, k, &state_name);
    int64_t index;
    const cudl_tensor *src;
    snprintf(name, sizeof name, OPTIMIZER_PREFIX "%s", state_name);
    index = cudl_safetensors_find(set, name);
    src = index < 0 ? NULL : cudl_safetensors_tensor(set, (size_t)index);
    if (src == NULL || cudl_tensor_dtype(src) != CUDL_DTYPE_F32 ||
        cudl_tensor_ndim(src) != 1 ||
        cudl_tensor_numel(src) != cudl_tensor_numel(dst)) {
      status = CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                         "the checkpoint has no \"%s\" of shape [%lld] (f32)",
                         name, (long long)cudl_tensor_numel(dst));
      goto done;
    }
    status = cudl__check_finite(ctx, __func__, path, name, src);
    if (status != CUDL_OK) goto done;
  }
  /* Every entry is the model's or the optimizer's. */
  for (i = 0; i < cudl_safetensors_count(set); ++i) {
    cudl_safetensors_entry e;
    status = cudl_safetensors_entry_query(set, i, &e);
    if (status != CUDL_OK) goto done;
    if (cudl_model_param(model, e.name) == NULL &&
        strncmp(e.name, OPTIMIZER_PREFIX, strlen(OPTIMIZER_PREFIX)) != 0) {
      status = CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                         "the checkpoint has \"%s\", which the model does not",
                         e.name);
      goto done;
    }
  }
  /* Checked: now change things. The model checks its part again and
   * copies only when all of it fits. */
  status = cudl__model_load_set(model, set, 0, path, __func__);
  for (k = 0; k < n_states && status == CUDL_OK; ++k) {
    char name[64];
    const char *state_name = NULL;
    cudl_tensor *dst = cudl_optimizer_state(opt, k, &state_name);
    snprintf(name, sizeof name, OPTIMIZER_PREFIX "%s", state_name);
    status = cudl_tensor_copy(
        dst,
        cudl_safetensors_tensor(set, (size_t)cudl_safetensors_find(set, name)));
  }
  if (status == CUDL_OK && opt != NULL)
    status = cudl_optimizer_set_steps(opt, (int64_t)numbers[6]);
  /* An fp16 model goes on with the saved scale; another precision has
   * none to take (a checkpoint's weights are f32 in every precision). */
  if (status == CUDL_OK && has_scale &&
      cudl_model_precision(model) == CUDL_PRECISION_FP16)
    status = cudl_model_set_loss_scale_state(model, scale, clean_steps);
  if (status == CUDL_OK && state != NULL) {
    loaded.epoch = (int64_t)numbers[0];
    loaded.batch = (int64_t)numbers[1];
    loaded.step = (int64_t)numbers[2];
    loaded.data_seed = numbers[3];
    loaded.rng_seed = numbers[4];
    loaded.rng_offset = numbers[5];
    *state = loaded;
  }
done:
  cudl_safetensors_destroy(set);
  return status;
}
