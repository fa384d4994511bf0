/* concat.c - validation and dispatch of concatenation along dimension 1:
 * each input is one copy_2d between its rows and its columns of y. */
#include <stdio.h>

#include "core/internal.h"

/* t [d0, d1, ...] as copy_2d's rows x (its part of a row): NCHW rows = d0
 * and a row is d1 * (the rest); channels-last [n, h, w, c] rows = n * h * w
 * and a row is c. */
static void rows_of(const cudl_tensor *t, int64_t *rows, int64_t *width) {
  int d;
  if (t->layout == CUDL_LAYOUT_NHWC) {
    *rows = t->shape[0] * t->shape[2] * t->shape[3];
    *width = t->shape[1];
    return;
  }
  *rows = t->shape[0];
  *width = t->shape[1];
  for (d = 2; d < t->ndim; ++d) *width *= t->shape[d];
}

/* The checks both directions share: `whole` (y or dy) and the parts
 * (inputs or dinputs), which must fill whole's dimension 1 exactly; parts
 * that are written (backward) must not overlap each other. */
static cudl_status check_concat(cudl_context *ctx, const char *function,
                                const cudl_tensor *whole,
                                const char *whole_name, int count,
                                const cudl_tensor *const *parts,
                                const char *parts_name, int parts_written) {
  cudl_data_dtype data = CUDL_DATA_DTYPE_INIT;
  const char *names[1];
  char name[48];
  int64_t channels = 0;
  int i, j, d;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (count < 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "count is %d; it must be at least 1", count);
  if (parts == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function, "%s is NULL",
                      parts_name);
  names[0] = whole_name;
  status = cudl__check_data(ctx, function, &data, &whole, names, 1);
  if (status != CUDL_OK) return status;
  if (whole->ndim < 2 || whole->ndim > 4)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s has %d dimensions; concatenation takes 2 to 4",
                      whole_name, whole->ndim);
  for (i = 0; i < count; ++i) {
    const cudl_tensor *t = parts[i];
    snprintf(name, sizeof name, "%s[%d]", parts_name, i);
    names[0] = name;
    status = cudl__check_data(ctx, function, &data, &t, names, 1);
    if (status != CUDL_OK) return status;
    if (t->ndim != whole->ndim)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s has %d dimensions, %s %d", name, t->ndim,
                        whole_name, whole->ndim);
    if (t->layout != whole->layout)
      return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                        "%s and %s have different layouts", name, whole_name);
    for (d = 0; d < t->ndim; ++d)
      if (d != 1 && t->shape[d] != whole->shape[d])
        return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                          "%s has %lld in dimension %d, %s %lld (only "
                          "dimension 1 may differ)",
                          name, (long long)t->shape[d], d, whole_name,
                          (long long)whole->shape[d]);
    if (cudl__tensors_overlap(t, whole))
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "%s and %s share memory", name, whole_name);
    for (j = 0; parts_written && j < i; ++j)
      if (cudl__tensors_overlap(t, parts[j]))
        return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                          "%s and %s[%d] share memory", name, parts_name, j);
    channels += t->shape[1];
  }
  if (channels != whole->shape[1])
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s has %lld in dimension 1, the %s %lld together",
                      whole_name, (long long)whole->shape[1], parts_name,
                      (long long)channels);
  return CUDL_OK;
}

cudl_status cudl__concat_part(cudl_context *ctx, const char *function,
                              const cudl_tensor *whole, const cudl_tensor *part,
                              int64_t offset, int into_whole) {
  const size_t element = cudl_dtype_size(whole->dtype);
  int64_t rows, whole_width, part_width, inner;
  char *at;
  rows_of(whole, &rows, &whole_width);
  rows_of(part, &rows, &part_width);
  if (rows == 0 || part_width == 0) return CUDL_OK;
  /* A channel is `inner` elements of a row: h * w (or l) in NCHW, 1 in
   * channels-last. */
  inner = part_width / part->shape[1];
  at = (char *)whole->data + (size_t)(offset * inner) * element;
  if (into_whole)
    return CUDL_OP_CALL(ctx, function, whole->dtype, copy_2d, part->data,
                        part_width, at, whole_width, rows, part_width);
  return CUDL_OP_CALL(ctx, function, whole->dtype, copy_2d, at, whole_width,
                      part->data, part_width, rows, part_width);
}

cudl_status cudl_concat_forward(cudl_context *ctx, int count,
                                const cudl_tensor *const *inputs,
                                cudl_tensor *y) {
  int64_t offset = 0;
  int i;
  cudl_status status =
      check_concat(ctx, __func__, y, "y", count, inputs, "inputs", 0);
  for (i = 0; i < count && status == CUDL_OK; ++i) {
    status = cudl__concat_part(ctx, __func__, y, inputs[i], offset, 1);
    offset += inputs[i]->shape[1];
  }
  return status;
}

cudl_status cudl_concat_backward(cudl_context *ctx, const cudl_tensor *dy,
                                 int count, cudl_tensor *const *dinputs) {
  int64_t offset = 0;
  int i;
  cudl_status status =
      check_concat(ctx, __func__, dy, "dy", count,
                   (const cudl_tensor *const *)dinputs, "dinputs", 1);
  for (i = 0; i < count && status == CUDL_OK; ++i) {
    status = cudl__concat_part(ctx, __func__, dy, dinputs[i], offset, 0);
    offset += dinputs[i]->shape[1];
  }
  return status;
}
