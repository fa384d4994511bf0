/*
 * cudl/dropout.h - inverted dropout, forward and backward.
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

CUDL_EXTERN_C_END

#endif /* CUDL_DROPOUT_H */
