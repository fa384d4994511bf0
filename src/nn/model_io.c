/* model_io.c - a model's named tensors to and from safetensors files, and
 * the architecture that makes such a file enough to rebuild its model. */
#include <stdio.h>
#include <string.h>

#include "cudl/model_file.h"
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

cudl_status cudl__model_architecture(cudl_model *m, const char *function,
                                     char **text, size_t *bytes) {
  cudl_context *ctx = cudl_model_context(m);
  size_t length = 0;
  char *buffer;
  cudl_status status;
  *text = NULL;
  *bytes = 0;
  status = cudl_model_describe(m, NULL, 0, &length);
  /* A layer name that is not UTF-8 cannot go into a model file: such a
   * model is saved without its architecture (documented), not refused. */
  if (status == CUDL_ERR_UNSUPPORTED) return CUDL_OK;
  if (status != CUDL_OK) return status;
  buffer = (char *)cudl__host_alloc(&ctx->allocator, length + 1, 16);
  if (buffer == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, function,
                      "no memory for the model's architecture (%zu bytes)",
                      length + 1);
  status = cudl_model_describe(m, buffer, length + 1, NULL);
  if (status != CUDL_OK) {
    cudl__host_free(&ctx->allocator, buffer, length + 1);
    return status;
  }
  *text = buffer;
  *bytes = length + 1;
  return CUDL_OK;
}

cudl_status cudl_model_save(cudl_model *m, const char *path,
                            const cudl_metadata_pair *metadata,
                            size_t n_metadata) {
  cudl_named_tensor *list = NULL;
  cudl_metadata_pair *meta = NULL;
  char *architecture = NULL;
  cudl_context *ctx;
  int count = 0;
  size_t i, n_meta = 0, arch_bytes = 0;
  const size_t meta_bytes = (n_metadata + 1) * sizeof *meta;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl__model_require_compiled(m, __func__);
  if (status != CUDL_OK) return status;
  ctx = cudl_model_context(m);
  if (metadata == NULL && n_metadata > 0)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "metadata is NULL with n_metadata %zu", n_metadata);
  for (i = 0; i < n_metadata; ++i)
    if (metadata[i].key != NULL &&
        strcmp(metadata[i].key, CUDL_METADATA_ARCHITECTURE) == 0)
      return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "metadata key %zu is \"" CUDL_METADATA_ARCHITECTURE
                       "\", which cudl_model_save writes itself",
                       i);
  status = cudl__model_architecture(m, __func__, &architecture, &arch_bytes);
  if (status != CUDL_OK) return status;
  meta = (cudl_metadata_pair *)cudl__host_alloc(&ctx->allocator, meta_bytes,
                                                16);
  if (meta == NULL) {
    cudl__host_free(&ctx->allocator, architecture, arch_bytes);
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                     "cannot list the file's metadata");
  }
  if (architecture != NULL) {
    meta[n_meta].key = CUDL_METADATA_ARCHITECTURE;
    meta[n_meta].value = architecture;
    ++n_meta;
  }
  for (i = 0; i < n_metadata; ++i) meta[n_meta++] = metadata[i];
  status = collect(m, &list, &count);
  if (status == CUDL_OK)
    status = cudl_safetensors_save(ctx, path, list, (size_t)count, meta, n_meta);
  if (list != NULL)
    cudl__host_free(&ctx->allocator, list,
                    (size_t)(count > 0 ? count : 1) * sizeof *list);
  cudl__host_free(&ctx->allocator, meta, meta_bytes);
  cudl__host_free(&ctx->allocator, architecture, arch_bytes);
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

/* cudl_model_load_file and its inference twin, reporting as `function`. */
static cudl_status load_file(cudl_context *ctx, const char *path,
                             int64_t max_batch, int inference,
                             const char *function, cudl_model **out) {
  cudl_safetensors *set = NULL;
  cudl_model *m = NULL;
  const char *architecture;
  char source[4096 + sizeof ": " CUDL_METADATA_ARCHITECTURE];
  cudl_status status;
  if (ctx == NULL || out == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (path == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function, "path is NULL");
  if (max_batch < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                     "max_batch is %lld; a model is compiled for at least 1",
                     (long long)max_batch);
  status =
      cudl_safetensors_load(ctx, path, CUDL_SAFETENSORS_SKIP_UNSUPPORTED, &set);
  if (status != CUDL_OK) return status;
  architecture = cudl_safetensors_metadata_find(set, CUDL_METADATA_ARCHITECTURE);
  if (architecture == NULL) {
    cudl_safetensors_destroy(set);
    return cudl__fail(ctx, CUDL_ERR_FILE_METADATA, function,
                     "'%s' has no \"" CUDL_METADATA_ARCHITECTURE
                     "\" metadata (it was not written by cudl_model_save or "
                     "cudl_checkpoint_save of this version): build its model "
                     "and call cudl_model_load",
                     path);
  }
  /* Messages from the parser then name the file and the key. */
  snprintf(source, sizeof source, "%s: " CUDL_METADATA_ARCHITECTURE, path);
  status = cudl_model_parse(ctx, architecture, strlen(architecture), source, &m);
  if (status == CUDL_OK)
    status = inference ? cudl_model_compile_inference(m, max_batch)
                       : cudl_model_compile(m, max_batch);
  /* Not strict: a checkpoint also holds the optimizer's state. Every
   * parameter the architecture has must still be in the file. */
  if (status == CUDL_OK)
    status = cudl__model_load_set(m, set, 0, path, function);
  cudl_safetensors_destroy(set);
  if (status != CUDL_OK) {
    cudl_model_destroy(m);
    return status;
  }
  *out = m;
  return CUDL_OK;
}

cudl_status cudl_model_load_file(cudl_context *ctx, const char *path,
                                 int64_t max_batch, cudl_model **out) {
  return load_file(ctx, path, max_batch, 0, __func__, out);
}

cudl_status cudl_model_load_file_inference(cudl_context *ctx, const char *path,
                                           int64_t max_batch,
                                           cudl_model **out) {
  return load_file(ctx, path, max_batch, 1, __func__, out);
}
