/*
 * cudl/loss.h - softmax and log-softmax, and the mean squared error and
 * binary cross-entropy (on logits) losses, forward and backward.
 *
 * All tensors f32 (these calls are f32-only: mixed precision keeps them in
 * f32), of ctx. On failure nothing is written. Losses write one
 * number into `loss` (a tensor with one element, of any shape such as []
 * or [1]); their backward takes the upstream gradient of that number as a
 * float (1 for a loss minimised directly).
 */
#ifndef CUDL_LOSS_H
#define CUDL_LOSS_H

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** How a loss combines its per-element terms. */
typedef enum cudl_reduction {
  CUDL_REDUCTION_MEAN = 0, /**< sum / number of elements */
  CUDL_REDUCTION_SUM = 1
} cudl_reduction;

/** Softmax over the last dimension of x (at least 1-D, last dimension at
 *  least 1), computed as exp(x - max) / sum exp(x - max): no overflow for
 *  any finite input; a row holding NaN gives NaN. y has x's shape. */
CUDL_API cudl_status cudl_softmax_forward(cudl_context *ctx,
                                          const cudl_tensor *x, cudl_tensor *y);
/** dx = y * (dy - sum over the row of dy * y), with y the forward output. */
CUDL_API cudl_status cudl_softmax_backward(cudl_context *ctx,
                                           const cudl_tensor *y,
                                           const cudl_tensor *dy,
                                           cudl_tensor *dx);

/** log_softmax(x) = x - max - log(sum exp(x - max)) over the last dim. */
CUDL_API cudl_status cudl_log_softmax_forward(cudl_context *ctx,
                                              const cudl_tensor *x,
                                              cudl_tensor *y);
/** dx = dy - exp(y) * sum over the row of dy, with y the forward output. */
CUDL_API cudl_status cudl_log_softmax_backward(cudl_context *ctx,
                                               const cudl_tensor *y,
                                               const cudl_tensor *dy,
                                               cudl_tensor *dx);

/** loss = reduce((pred - target)^2); pred and target of one shape. */
CUDL_API cudl_status cudl_mse_loss_forward(cudl_context *ctx,
                                           const cudl_tensor *pred,
                                           const cudl_tensor *target,
                                           cudl_reduction reduction,
                                           cudl_tensor *loss);
/** dpred = grad * 2 (pred - target) (/ n for the mean). */
CUDL_API cudl_status cudl_mse_loss_backward(cudl_context *ctx,
                                            const cudl_tensor *pred,
                                            const cudl_tensor *target,
                                            cudl_reduction reduction,
                                            float grad, cudl_tensor *dpred);

/**
 * Binary cross-entropy on logits x against targets t in [0, 1]:
 * loss = reduce(max(x, 0) - x t + log(1 + exp(-|x|))), which is
 * -t log sigmoid(x) - (1 - t) log(1 - sigmoid(x)) without overflow.
 */
CUDL_API cudl_status cudl_bce_with_logits_forward(cudl_context *ctx,
                                                  const cudl_tensor *logits,
                                                  const cudl_tensor *target,
                                                  cudl_reduction reduction,
                                                  cudl_tensor *loss);
/** dlogits = grad * (sigmoid(x) - t) (/ n for the mean). */
CUDL_API cudl_status cudl_bce_with_logits_backward(
    cudl_context *ctx, const cudl_tensor *logits, const cudl_tensor *target,
    cudl_reduction reduction, float grad, cudl_tensor *dlogits);

/**
 * Softmax cross-entropy, fused and stable (log-sum-exp), on logits [N, K]
 * against class indices `labels` ([N], i32), with label smoothing s in
 * [0, 1) (the target puts 1 - s + s / K on the label and s / K elsewhere):
 *   loss_i = logsumexp(x_i) - (1 - s) x_i[y_i] - (s / K) sum_k x_ik,
 * reduced over N. A label outside [0, K) is CUDL_ERR_INVALID_ARGUMENT on
 * the CPU (the message names the row); on CUDA, where checking would need a
 * host synchronisation, that row's loss is NaN, and so is the result.
 */
CUDL_API cudl_status cudl_cross_entropy_forward(
    cudl_context *ctx, const cudl_tensor *logits, const cudl_tensor *labels,
    float label_smoothing, cudl_reduction reduction, cudl_tensor *loss);
/** dlogits_ik = grad * (softmax(x_i)_k - target_ik) (/ N for the mean);
 *  rows with an invalid label get NaN on CUDA (an error on the CPU). */
CUDL_API cudl_status cudl_cross_entropy_backward(
    cudl_context *ctx, const cudl_tensor *logits, const cudl_tensor *labels,
    float label_smoothing, cudl_reduction reduction, float grad,
    cudl_tensor *dlogits);

/**
 * A classifier's correct rows, counted where the logits are: hits (f32, one
 * element, on the logits' context) receives the number of rows of logits
 * [N, K] (f32) whose largest value is at their label (labels [N], i32),
 * exactly (N < 2^24). The first of equal values is the row's class, as
 * argmax's; NaNs are skipped (a row of NaN is a miss), and a label outside
 * [0, K) is a miss. Nothing waits for the device: a training loop keeps each
 * step's count beside its loss (cudl_model_loss_value) and reads them all
 * once per progress interval.
 */
CUDL_API cudl_status cudl_count_hits(cudl_context *ctx,
                                     const cudl_tensor *logits,
                                     const cudl_tensor *labels,
                                     cudl_tensor *hits);

CUDL_EXTERN_C_END

#endif /* CUDL_LOSS_H */
