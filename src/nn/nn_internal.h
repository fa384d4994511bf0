/*
 * nn_internal.h - what the files of src/nn share beyond the public API:
 * the checks that model and checkpoint loading both make.
 */
#ifndef CUDL_NN_INTERNAL_H
#define CUDL_NN_INTERNAL_H

#include "core/internal.h"

/* CUDL_OK when m is compiled; otherwise CUDL_ERR_INVALID_ARGUMENT with a
 * message in m's context saying so. m is not NULL. */
cudl_status cudl__model_require_compiled(cudl_model *m, const char *function);

/* CUDL_OK when every element of t (f32, of any context) is finite;
 * otherwise CUDL_ERR_FILE_VALUE with a message in ctx naming `file` (NULL:
 * "the set"), the tensor `name` and how many of its values are NaN and
 * infinite. A failure to count is reported in ctx too. */
cudl_status cudl__check_finite(cudl_context *ctx, const char *function,
                               const char *file, const char *name,
                               const cudl_tensor *t);

/* cudl_model_load_set, for a set read from `file` (named in messages; NULL
 * for a set the caller loaded), reporting as `function`. */
cudl_status cudl__model_load_set(cudl_model *m, const cudl_safetensors *set,
                                 int strict, const char *file,
                                 const char *function);

/* The model's file text (cudl_model_describe) in a buffer from the
 * context's allocator, *bytes long (NUL included), for the
 * CUDL_METADATA_ARCHITECTURE of the files it is saved to; *text NULL (and
 * CUDL_OK) for a model that cannot be described (a layer name that is not
 * UTF-8). The caller frees it with cudl__host_free. */
cudl_status cudl__model_architecture(cudl_model *m, const char *function,
                                     char **text, size_t *bytes);

#endif /* CUDL_NN_INTERNAL_H */
