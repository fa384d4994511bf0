/* model_io.c - a model's named tensors to and from safetensors files. */
#include <string.h>

#include "nn/nn_internal.h"

/* The model's tensors by name (cudl_model_param_name order). */
static cudl_status collect(cudl_model *m, cudl_named_tensor **out, int *count) {
  cudl_context *ctx = cudl_tensor_context(cudl_model_params(m));
  const int n = cudl_model_param_count(m);
  cudl_named_tensor *list;
  int i;
  list = (cudl_named_tensor *)cudl__host_alloc(
      &ctx->allocator, (size_t)(n > 0 ? n : 1) * sizeof *list, 16);
  if (list == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, "cudl_model_save",
                      "cannot list the model's tensors");
  for (i = 0; i < n; ++i) {
    list[i].name = cudl_model_param_name(m, i, NULL);
    list[i].tensor = cudl_model_param(m, list[i].name);
  }
  *out = list;
  *count = n;
  return CUDL_OK;
}

cudl_status cudl__check_finite(cudl_context *ctx, const char *function,
                               const char *file, const char *name,
                               const cudl_tensor *t) {
  cudl_context *owner = cudl_tensor_context(t);
  int64_t nan_count = 0, inf_count = 0;
  cudl_status status = cudl_count_nonfinite(owner, t, &nan_count, &inf_count);
  if (status != CUDL_OK)
    return cudl__fail(ctx, status, function,
                      "cannot check \"%s\" for NaN and infinities: %s", name,
                      cudl_context_last_error(owner));
  if (nan_count == 0 && inf_count == 0) return CUDL_OK;
  return cudl__fail(ctx, CUDL_ERR_FILE_VALUE, function,
                    "%s%s%s: \"%s\" has %lld NaN and %lld infinite values "
                    "(of %lld): weights and optimizer state must be finite",
                    file == NULL ? "the set" : "'", file == NULL ? "" : file,
                    file == NULL ? "" : "'", name, (long long)nan_count,
                    (long long)inf_count, (long long)cudl_tensor_numel(t));
}

cudl_status cudl__model_require_compiled(cudl_model *m, const char *function) {
  if (cudl_model_params(m) != NULL) return CUDL_OK;
  return cudl__fail(cudl_model_context(m), CUDL_ERR_INVALID_ARGUMENT, function,
                    "the model is not compiled: call cudl_model_compile "
                    "first");
}

cudl_status cudl_model_save(cudl_model *m, const char *path,
                            const cudl_metadata_pair *metadata,
                            size_t n_metadata) {
  cudl_named_tensor *list = NULL;
  cudl_context *ctx;
  int count = 0;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl__model_require_compiled(m, __func__);
  if (status != CUDL_OK) return status;
  ctx = cudl_model_context(m);
  status = collect(m, &list, &count);
  if (status != CUDL_OK) return status;
  status = cudl_safetensors_save(ctx, path, list, (size_t)count, metadata,
                                 n_metadata);
  cudl__host_free(&ctx->allocator, list,
                  (size_t)(count > 0 ? count : 1) * sizeof *list);
  return status;
}

static int ends_with(const char *s, const char *suffix) {
  size_t a = strlen(s), b = strlen(suffix);
  return a >= b && strcmp(s + a - b, suffix) == 0;
}

cudl_status cudl__model_load_set(cudl_model *m, const cudl_safetensors *set,
                                 int strict, const char *file,
                                 const char *function) {
  cudl_context *ctx;
  const int n = cudl_model_param_count(m);
  size_t i;
  int k;
  cudl_status status = cudl__model_require_compiled(m, function);
  if (status != CUDL_OK) return status;
  ctx = cudl_model_context(m);
  if (set == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function, "set is NULL");
  /* Check everything before copying anything. */
  for (k = 0; k < n; ++k) {
    const char *name = cudl_model_param_name(m, k, NULL);
    const cudl_tensor *dst = cudl_model_param(m, name);
    const int64_t index = cudl_safetensors_find(set, name);
    const cudl_tensor *src =
        index < 0 ? NULL : cudl_safetensors_tensor(set, (size_t)index);
    if (src == NULL)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "\"%s\" is not in the file%s", name,
                        index < 0 ? "" : " as a loaded tensor");
    if (cudl_tensor_dtype(src) != CUDL_DTYPE_F32 ||
        cudl_tensor_ndim(src) != cudl_tensor_ndim(dst) ||
        memcmp(cudl_tensor_shape(src), cudl_tensor_shape(dst),
               (size_t)cudl_tensor_ndim(dst) * sizeof(int64_t)) != 0)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "\"%s\" in the file is not f32 of the model's shape",
                        name);
  }
  if (strict)
    for (i = 0; i < cudl_safetensors_count(set); ++i) {
      cudl_safetensors_entry e;
      status = cudl_safetensors_entry_query(set, i, &e);
      if (status != CUDL_OK)
        return cudl__fail(ctx, status, function, "cannot read entry %zu", i);
      if (cudl_model_param(m, e.name) == NULL &&
          !ends_with(e.name, ".num_batches_tracked"))
        return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                          "the file has \"%s\", which the model does not "
                          "(strict loading)",
                          e.name);
    }
  /* Values last (a pass over the data): a NaN or infinite weight, or
   * batch-norm statistic, would make every later result NaN. */
  for (k = 0; k < n; ++k) {
    const char *name = cudl_model_param_name(m, k, NULL);
    status = cudl__check_finite(
        ctx, function, file, name,
        cudl_safetensors_tensor(set, (size_t)cudl_safetensors_find(set, name)));
    if (status != CUDL_OK) return status;
  }
  for (k = 0; k < n && status == CUDL_OK; ++k) {
    const char *name = cudl_model_param_name(m, k, NULL);
    status = cudl_tensor_copy(
        cudl_model_param(m, name),
        cudl_safetensors_tensor(set, (size_t)cudl_safetensors_find(set, name)));
  }
  return status;
}

cudl_status cudl_model_load_set(cudl_model *m, const cudl_safetensors *set,
                                int strict) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  return cudl__model_load_set(m, set, strict, NULL, __func__);
}

cudl_status cudl_model_load(cudl_model *m, const char *path, int strict) {
  cudl_safetensors *set = NULL;
  cudl_context *ctx;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl__model_require_compiled(m, __func__);
  if (status != CUDL_OK) return status;
  ctx = cudl_model_context(m);
  status =
      cudl_safetensors_load(ctx, path, CUDL_SAFETENSORS_SKIP_UNSUPPORTED, &set);
  if (status == CUDL_OK)
    status = cudl__model_load_set(m, set, strict, path, __func__);
  cudl_safetensors_destroy(set);
  return status;
}
