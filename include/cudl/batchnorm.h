/*
 * cudl/batchnorm.h - batch normalisation, forward (training and inference)
 * and backward, hand-written on both devices.
 *
 * x has 2 to 5 dimensions [N, C, ...]: statistics are per channel C over N
 * and every trailing dimension (per feature over N for 2-D input, per
 * channel over N, H, W for images, NCHW or channels-last alike). gamma,
 * beta, running_mean, running_var, save_mean, save_invstd, dgamma and dbeta
 * hold C elements each (any shape with C elements). All tensors of ctx; x,
 * y, dy and dx share one float dtype (f32, bf16 or f16), x's shape and x's
 * layout; the per-channel tensors are f32 whatever it is (cudl/tensor.h).
 * On failure nothing is written.
 *
 * Numerics: the mean and the variance are computed in two passes (the mean
 * first, then the mean of squared deviations from it), so a large mean with
 * a small variance loses nothing to cancellation. The CPU sums in double;
 * CUDA sums in float per (channel, part) and adds the parts in a fixed
 * order (deterministic).
 */
#ifndef CUDL_BATCHNORM_H
#define CUDL_BATCHNORM_H

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/**
 * Training: normalise with the batch statistics,
 *   y = gamma * (x - mean) / sqrt(var + eps) + beta   (var biased, over m),
 * then update running_mean = (1 - momentum) * running_mean + momentum * mean
 * and running_var the same with the unbiased variance var * m / (m - 1), as
 * PyTorch does (m = elements per channel; at least 2, else CUDL_ERR_SHAPE).
 * save_mean and save_invstd = 1 / sqrt(var + eps) are kept for backward.
 * eps > 0 and momentum in [0, 1], finite (CUDL_ERR_INVALID_ARGUMENT).
 */
CUDL_API cudl_status cudl_batchnorm_forward_training(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *gamma,
    const cudl_tensor *beta, float momentum, float eps,
    cudl_tensor *running_mean, cudl_tensor *running_var, cudl_tensor *y,
    cudl_tensor *save_mean, cudl_tensor *save_invstd);

/** Inference: y = gamma * (x - running_mean) / sqrt(running_var + eps) +
 *  beta. eps > 0. */
CUDL_API cudl_status cudl_batchnorm_forward_inference(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *gamma,
    const cudl_tensor *beta, const cudl_tensor *running_mean,
    const cudl_tensor *running_var, float eps, cudl_tensor *y);

/**
 * Backward of the training forward, from its saved statistics:
 *   dbeta = sum dy,  dgamma = sum dy * xhat  (xhat = (x - mean) * invstd),
 *   dx = gamma * invstd / m * (m * dy - dbeta - xhat * dgamma).
 * dgamma and dbeta are written (not accumulated).
 */
CUDL_API cudl_status cudl_batchnorm_backward(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *dy,
    const cudl_tensor *gamma, const cudl_tensor *save_mean,
    const cudl_tensor *save_invstd, cudl_tensor *dx, cudl_tensor *dgamma,
    cudl_tensor *dbeta);

/**
 * The fused path: batch normalisation and what follows it in a network
 * (a ReLU, or a residual addition and a ReLU, as in a ResNet block) in one
 * pass over the data instead of two or three. cudl_model uses it when it
 * trains (cudl_model_set_fusion, cudl/nn.h).
 *
 * cudl_batchnorm_forward_training is cudl_batchnorm_statistics followed by
 * cudl_batchnorm_apply(x, gamma, beta, save_mean, save_invstd, NULL, 0, y),
 * with the same results. This is the first half: the batch statistics
 * alone, save_mean, save_invstd and the updated running statistics, with
 * the rules of cudl_batchnorm_forward_training.
 */
CUDL_API cudl_status cudl_batchnorm_statistics(
    cudl_context *ctx, const cudl_tensor *x, float momentum, float eps,
    cudl_tensor *running_mean, cudl_tensor *running_var,
    cudl_tensor *save_mean, cudl_tensor *save_invstd);

/**
 * The second half: v = gamma * (x - mean) * invstd + beta, plus residual
 * where it is not NULL (x's shape, dtype and layout), and y = max(v, 0)
 * where relu is nonzero (NaN stays NaN), else v. mean and invstd are per
 * channel, f32 (save_mean and save_invstd of cudl_batchnorm_statistics).
 * Computed in f32 and rounded once into y, which may be x or residual.
 */
CUDL_API cudl_status cudl_batchnorm_apply(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *gamma,
    const cudl_tensor *beta, const cudl_tensor *mean, const cudl_tensor *invstd,
    const cudl_tensor *residual, int relu, cudl_tensor *y);

/**
 * Backward through cudl_batchnorm_apply with relu, from its output y and
 * that output's gradient dy: g = dy where y > 0, else 0; dresidual = g
 * where it is not NULL (the residual's gradient); dx, dgamma and dbeta as
 * cudl_batchnorm_backward computes them from g. dx and dresidual may be
 * dy itself (not a shifted view of it), not each other, and neither may
 * be x or y (CUDL_ERR_INVALID_ARGUMENT).
 */
CUDL_API cudl_status cudl_batchnorm_relu_backward(
    cudl_context *ctx, const cudl_tensor *x, const cudl_tensor *y,
    const cudl_tensor *dy, const cudl_tensor *gamma,
    const cudl_tensor *save_mean, const cudl_tensor *save_invstd,
    cudl_tensor *dx, cudl_tensor *dresidual, cudl_tensor *dgamma,
    cudl_tensor *dbeta);

CUDL_EXTERN_C_END

#endif /* CUDL_BATCHNORM_H */
