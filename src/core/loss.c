/* loss.c - validation and dispatch of softmax, log-softmax and the losses. */
#include <math.h>

#include "core/internal.h"

static cudl_status softmax_call(cudl_context *ctx, const char *function,
                                int is_log, const cudl_tensor *a,
                                const char *a_name, const cudl_tensor *dy,
                                cudl_tensor *out, const char *out_name,
                                int backward) {
  const cudl_tensor *tensors[3];
  const char *names[3];
  int64_t cols;
  cudl_status status;
  tensors[0] = a;
  tensors[1] = out;
  tensors[2] = dy;
  names[0] = a_name;
  names[1] = out_name;
  names[2] = "dy";
  status = cudl__check_f32_op(ctx, function, tensors, names, backward ? 3 : 2);
  if (status == CUDL_OK)
    status = cudl__require_nchw(ctx, function, a, a_name);
  if (status != CUDL_OK) return status;
  if (a->ndim < 1)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "%s is a scalar; softmax runs over the last dimension",
                      a_name);
  cols = a->shape[a->ndim - 1];
  if (a->numel == 0) return CUDL_OK;
  if (backward) {
    return CUDL_OP_CALL(ctx, function, a->dtype, softmax_backward, a->data,
                        dy->data, out->data, a->numel / cols, cols, is_log);
  }
  return CUDL_OP_CALL(ctx, function, a->dtype, softmax_forward, a->data,
                      out->data, a->numel / cols, cols, is_log);
}

cudl_status cudl_softmax_forward(cudl_context *ctx, const cudl_tensor *x,
                                 cudl_tensor *y) {
  return softmax_call(ctx, __func__, 0, x, "x", NULL, y, "y", 0);
}
cudl_status cudl_softmax_backward(cudl_context *ctx, const cudl_tensor *y,
                                  const cudl_tensor *dy, cudl_tensor *dx) {
  return softmax_call(ctx, __func__, 0, y, "y", dy, dx, "dx", 1);
}
cudl_status cudl_log_softmax_forward(cudl_context *ctx, const cudl_tensor *x,
                                     cudl_tensor *y) {
  return softmax_call(ctx, __func__, 1, x, "x", NULL, y, "y", 0);
}
cudl_status cudl_log_softmax_backward(cudl_context *ctx, const cudl_tensor *y,
                                      const cudl_tensor *dy, cudl_tensor *dx) {
  return softmax_call(ctx, __func__, 1, y, "y", dy, dx, "dx", 1);
}

static cudl_status check_reduction(cudl_context *ctx, const char *function,
                                   cudl_reduction reduction) {
  if (reduction != CUDL_REDUCTION_MEAN && reduction != CUDL_REDUCTION_SUM)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "reduction %d is neither CUDL_REDUCTION_MEAN nor "
                      "CUDL_REDUCTION_SUM",
                      (int)reduction);
  return CUDL_OK;
}

static cudl_status loss_forward(cudl_context *ctx, const char *function,
                                cudl_loss_kind kind, const cudl_tensor *a,
                                const cudl_tensor *b, cudl_reduction reduction,
                                cudl_tensor *loss) {
  const cudl_tensor *tensors[2];
  static const char *const names[2] = {"input", "target"};
  cudl_status status;
  tensors[0] = a;
  tensors[1] = b;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_reduction(ctx, function, reduction);
  if (status == CUDL_OK)
    status = cudl__check_f32_op(ctx, function, tensors, names, 2);
  if (status == CUDL_OK)
    status = cudl__check_f32_scalar(ctx, function, loss, "loss");
  if (status != CUDL_OK) return status;
  if (a->numel == 0 && reduction == CUDL_REDUCTION_MEAN)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "the mean of no elements is undefined");
  return CUDL_OP_CALL(ctx, function, a->dtype, loss_forward, kind, a->data,
                      b->data, loss->data, a->numel,
                      reduction == CUDL_REDUCTION_MEAN);
}

static cudl_status loss_backward(cudl_context *ctx, const char *function,
                                 cudl_loss_kind kind, const cudl_tensor *a,
                                 const cudl_tensor *b, cudl_reduction reduction,
                                 float grad, cudl_tensor *d,
                                 const char *d_name) {
  const cudl_tensor *tensors[3];
  const char *names[3];
  cudl_status status;
  tensors[0] = a;
  tensors[1] = b;
  tensors[2] = d;
  names[0] = "input";
  names[1] = "target";
  names[2] = d_name;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_reduction(ctx, function, reduction);
  if (status == CUDL_OK && !isfinite(grad))
    status = cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "grad must be finite, got %g", (double)grad);
  if (status == CUDL_OK)
    status = cudl__check_f32_op(ctx, function, tensors, names, 3);
  if (status != CUDL_OK || a->numel == 0) return status;
  return CUDL_OP_CALL(ctx, function, a->dtype, loss_backward, kind, a->data,
                      b->data, d->data, a->numel,
                      reduction == CUDL_REDUCTION_MEAN, grad);
}

cudl_status cudl_mse_loss_forward(cudl_context *ctx, const cudl_tensor *pred,
                                  const cudl_tensor *target,
                                  cudl_reduction reduction, cudl_tensor *loss) {
  return loss_forward(ctx, __func__, CUDL_LOSS_MSE, pred, target, reduction,
                      loss);
}
cudl_status cudl_mse_loss_backward(cudl_context *ctx, const cudl_tensor *pred,
                                   const cudl_tensor *target,
                                   cudl_reduction reduction, float grad,
                                   cudl_tensor *dpred) {
  return loss_backward(ctx, __func__, CUDL_LOSS_MSE, pred, target, reduction,
                       grad, dpred, "dpred");
}
cudl_status cudl_bce_with_logits_forward(cudl_context *ctx,
                                         const cudl_tensor *logits,
                                         const cudl_tensor *target,
                                         cudl_reduction reduction,
                                         cudl_tensor *loss) {
  return loss_forward(ctx, __func__, CUDL_LOSS_BCE_WITH_LOGITS, logits, target,
                      reduction, loss);
}
cudl_status cudl_bce_with_logits_backward(cudl_context *ctx,
                                          const cudl_tensor *logits,
                                          const cudl_tensor *target,
                                          cudl_reduction reduction, float grad,
                                          cudl_tensor *dlogits) {
  return loss_backward(ctx, __func__, CUDL_LOSS_BCE_WITH_LOGITS, logits, target,
                       reduction, grad, dlogits, "dlogits");
}

/* logits [N, K] f32, labels [N] i32, both of ctx; out (dlogits, or NULL)
 * of the logits' shape. */
static cudl_status check_cross_entropy(
    cudl_context *ctx, const char *function, const cudl_tensor *logits,
    const cudl_tensor *labels, float smoothing, cudl_reduction reduction,
    const cudl_tensor *out, const char *out_name) {
  const cudl_tensor *tensors[2];
  const char *names[2];
  cudl_status status;
  tensors[0] = logits;
  tensors[1] = out;
  names[0] = "logits";
  names[1] = out_name;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_reduction(ctx, function, reduction);
  if (status != CUDL_OK) return status;
  if (!(smoothing >= 0.0f && smoothing < 1.0f))
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "label_smoothing must be in [0, 1), got %g",
                      (double)smoothing);
  status = cudl__check_f32_op(ctx, function, tensors, names, out ? 2 : 1);
  if (status != CUDL_OK) return status;
  if (labels == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "labels is NULL");
  if (labels->ctx != ctx)
    return cudl__fail(ctx, CUDL_ERR_DEVICE_MISMATCH, function,
                      "labels belongs to another context");
  if (labels->dtype != CUDL_DTYPE_I32)
    return cudl__fail(ctx, CUDL_ERR_DTYPE, function,
                      "labels is %s; class indices are i32",
                      cudl_dtype_name(labels->dtype));
  if (logits->ndim != 2 || logits->shape[1] < 1)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "logits must be [N, K] with K >= 1");
  if (labels->ndim != 1 || labels->shape[0] != logits->shape[0])
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "labels must be [%lld] (one per row of logits)",
                      (long long)logits->shape[0]);
  if (logits->shape[0] == 0 && reduction == CUDL_REDUCTION_MEAN)
    return cudl__fail(ctx, CUDL_ERR_SHAPE, function,
                      "the mean over no rows is undefined");
  return CUDL_OK;
}

cudl_status cudl_cross_entropy_forward(
    cudl_context *ctx, const cudl_tensor *logits, const cudl_tensor *labels,
    float label_smoothing, cudl_reduction reduction, cudl_tensor *loss) {
  cudl_status status = check_cross_entropy(
      ctx, __func__, logits, labels, label_smoothing, reduction, NULL, "loss");
  if (status == CUDL_OK)
    status = cudl__check_f32_scalar(ctx, __func__, loss, "loss");
  if (status != CUDL_OK) return status;
  return CUDL_OP_CALL(ctx, __func__, logits->dtype, cross_entropy_forward,
                      logits->data, (const int32_t *)labels->data, loss->data,
                      logits->shape[0], logits->shape[1], label_smoothing,
                      reduction == CUDL_REDUCTION_MEAN);
}

cudl_status cudl_cross_entropy_backward(cudl_context *ctx,
                                        const cudl_tensor *logits,
                                        const cudl_tensor *labels,
                                        float label_smoothing,
                                        cudl_reduction reduction, float grad,
                                        cudl_tensor *dlogits) {
  cudl_status status =
      check_cross_entropy(ctx, __func__, logits, labels, label_smoothing,
                          reduction, dlogits, "dlogits");
  if (status != CUDL_OK) return status;
  if (!isfinite(grad))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "grad must be finite, got %g", (double)grad);
  if (logits->numel == 0) return CUDL_OK;
  return CUDL_OP_CALL(ctx, __func__, logits->dtype, cross_entropy_backward,
                      logits->data, (const int32_t *)labels->data,
                      dlogits->data, logits->shape[0], logits->shape[1],
                      label_smoothing, reduction == CUDL_REDUCTION_MEAN, grad);
}

cudl_status cudl_count_hits(cudl_context *ctx, const cudl_tensor *logits,
                            const cudl_tensor *labels, cudl_tensor *hits) {
  cudl_status status = check_cross_entropy(ctx, __func__, logits, labels, 0.0f,
                                           CUDL_REDUCTION_SUM, NULL, "hits");
  if (status == CUDL_OK)
    status = cudl__check_f32_scalar(ctx, __func__, hits, "hits");
  if (status != CUDL_OK) return status;
  /* Beyond 2^24 an f32 count would no longer be exact. */
  if (logits->shape[0] >= (int64_t)1 << 24)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "logits has %lld rows; an exact count takes fewer than "
                     "2^24",
                     (long long)logits->shape[0]);
  return CUDL_OP_CALL(ctx, __func__, logits->dtype, count_hits, logits->data,
                      (const int32_t *)labels->data, hits->data,
                      logits->shape[0], logits->shape[1]);
}
