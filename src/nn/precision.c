/* precision.c - a model's precision (cudl_model_set_precision), its
 * layout (cudl_model_set_layout) and the state of FP16's loss scaler. What each precision computes in is decided
 * when the model is compiled (model.c). */
#include <math.h>
#include <string.h>

#include "nn/graph.h"

static const char *const names[] = {"fp32", "tf32", "bf16", "fp16"};

const char *cudl_precision_name(cudl_precision precision) {
  if ((int)precision < 0 ||
      (int)precision >= (int)(sizeof names / sizeof names[0]))
    return NULL;
  return names[precision];
}

cudl_status cudl_precision_from_name(const char *name,
                                     cudl_precision *precision) {
  int i;
  if (name == NULL || precision == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < (int)(sizeof names / sizeof names[0]); ++i)
    if (strcmp(name, names[i]) == 0) {
      *precision = (cudl_precision)i;
      return CUDL_OK;
    }
  return CUDL_ERR_INVALID_ARGUMENT;
}

/* The dtype activations and working weights have in each precision. */
static cudl_dtype compute_dtype(cudl_precision precision) {
  switch (precision) {
    case CUDL_PRECISION_BF16:
      return CUDL_DTYPE_BF16;
    case CUDL_PRECISION_FP16:
      return CUDL_DTYPE_F16;
    default:
      return CUDL_DTYPE_F32;
  }
}

cudl_status cudl_model_set_precision(cudl_model *m, cudl_precision precision) {
  cudl_dtype dtype;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (cudl_precision_name(precision) == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "unknown precision %d (fp32, tf32, bf16 or fp16)",
                     (int)precision);
  if (m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is compiled: set its precision before");
  dtype = compute_dtype(precision);
  status = cudl__check_compute_dtype(m->ctx, dtype, __func__);
  if (status != CUDL_OK) return status;
  m->precision = precision;
  m->dtype = dtype;
  m->loss_scale =
      precision == CUDL_PRECISION_FP16 ? CUDL__LOSS_SCALE_INIT : 1.0f;
  m->clean_steps = 0;
  m->step_skipped = 0;
  return CUDL_OK;
}

cudl_precision cudl_model_precision(const cudl_model *m) {
  return m == NULL ? CUDL_PRECISION_FP32 : m->precision;
}

float cudl_model_loss_scale(const cudl_model *m) {
  return m == NULL ? 1.0f : m->loss_scale;
}

int cudl_model_step_skipped(const cudl_model *m) {
  return m != NULL && m->step_skipped;
}

cudl_status cudl_model_loss_scale_state(const cudl_model *m, float *scale,
                                        int64_t *clean_steps) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (scale == NULL || clean_steps == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "scale and clean_steps must not be NULL");
  *scale = m->loss_scale;
  *clean_steps = m->clean_steps;
  return CUDL_OK;
}

cudl_status cudl_model_set_loss_scale_state(cudl_model *m, float scale,
                                            int64_t clean_steps) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!isfinite(scale) || scale <= 0.0f || clean_steps < 0)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "loss scale %g and clean steps %lld: need a finite "
                     "scale > 0 and clean steps >= 0",
                     (double)scale, (long long)clean_steps);
  if (m->precision != CUDL_PRECISION_FP16 && scale != 1.0f)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model's precision is %s: only fp16 scales its loss "
                     "(the scale must be 1)",
                     cudl_precision_name(m->precision));
  m->loss_scale = scale;
  m->clean_steps = clean_steps;
  return CUDL_OK;
}

cudl_status cudl_model_set_layout(cudl_model *m, cudl_layout layout) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (layout != CUDL_LAYOUT_NCHW && layout != CUDL_LAYOUT_NHWC)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "unknown layout %d (nchw or nhwc)", (int)layout);
  if (m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is compiled: set its layout before");
  m->layout = layout;
  return CUDL_OK;
}

cudl_layout cudl_model_layout(const cudl_model *m) {
  return m == NULL ? CUDL_LAYOUT_NCHW : m->layout;
}
