/*
 * cudl/dropout.h - inverted dropout, forward and backward, alone or after
 * an activation in one pass.
 *
 * Training: element i is kept when the uniform number of the context's
 * Philox stream for it (word i % 4 of the block at offset + i / 4, mapped
 * to [0, 1) with 24 bits, as cudl_tensor_uniform) is >= p; kept elements
 * are scaled by 1 / (1 - p), dropped ones become 0. The offset then
 * advances by ceil(numel / 4). The same seed and offset give bit-identical
 * masks on the CPU and CUDA. p = 0 keeps everything exactly (y = x);
 * p = 1 drops everything (y = 0).
 * Evaluation: y = x.
 *
 * mask (x's shape and dtype) receives the multiplier of each element (0 or
 * 1 / (1 - p), rounded to the dtype; 1 in evaluation) for backward; it may
 * be NULL only when not training. Tensors must belong to ctx and share x's
 * shape and float dtype (f32, bf16 or f16); y may be x. On failure nothing
 * is written and the offset does not move.
 */
#ifndef CUDL_DROPOUT_H
#define CUDL_DROPOUT_H

#include "cudl/activation.h"
#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** Forward; p must be in [0, 1] (CUDL_ERR_INVALID_ARGUMENT otherwise). */
CUDL_API cudl_status cudl_dropout_forward(cudl_context *ctx,
                                          const cudl_tensor *x, float p,
                                          int training, cudl_tensor *mask,
                                          cudl_tensor *y);

/** dx = dy * mask, with mask from cudl_dropout_forward. */
CUDL_API cudl_status cudl_dropout_backward(cudl_context *ctx,
                                           const cudl_tensor *mask,
                                           const cudl_tensor *dy,
                                           cudl_tensor *dx);

/** Dropout after an elementwise activation, in one pass over memory, for
 *  training: y = f(x) * mask, f the activation `type` with `alpha` (as
 *  cudl_model_add_activation takes them), mask drawn as
 *  cudl_dropout_forward draws it in training (the same offset gives the
 *  same mask, and the offset advances alike). In f32 the result is that of
 *  the activation then the dropout (bit for bit on the CPU); in bf16 and
 *  f16, f(x) is not rounded before the product. Types whose gradient is
 *  computed from their output (sigmoid, tanh), which this does not keep,
 *  are refused with CUDL_ERR_UNSUPPORTED; an unknown type, a non-finite
 *  alpha, p outside [0, 1] or a NULL mask with CUDL_ERR_INVALID_ARGUMENT.
 *  mask and y as cudl_dropout_forward's; y may be x. */
CUDL_API cudl_status cudl_activation_dropout_forward(
    cudl_context *ctx, cudl_activation_type type, float alpha,
    const cudl_tensor *x, float p, cudl_tensor *mask, cudl_tensor *y);

/** Its backward: dx = f'(x) * (dy * mask), with the forward's x and mask
 *  (the activation's backward on the dropout's); dx may be dy. */
CUDL_API cudl_status cudl_activation_dropout_backward(
    cudl_context *ctx, cudl_activation_type type, float alpha,
    const cudl_tensor *x, const cudl_tensor *mask, const cudl_tensor *dy,
    cudl_tensor *dx);

CUDL_EXTERN_C_END

#endif /* CUDL_DROPOUT_H */
