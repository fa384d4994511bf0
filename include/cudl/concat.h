/*
 * cudl/concat.h - concatenation along dimension 1 (channels or features),
 * forward and backward.
 *
 * The tensors of one call are float tensors (f32, bf16 or f16, one dtype
 * per call: cudl/tensor.h) of ctx, of one rank from 2 to 4 ([N, F],
 * [N, C, L] or [N, C, H, W]) and one layout (4-D tensors may be
 * channels-last, cudl_tensor_set_layout; the values are those of the
 * logical shape either way). Every dimension but 1 must be equal across
 * them; y's dimension 1 is the sum of the inputs'. Input i occupies
 * y[:, offset_i : offset_i + d_i], offset_i being the sum of the dimension 1
 * of the inputs before it, as torch.cat(inputs, dim=1). The result is
 * exact (a copy). y must share no memory with an input, nor two gradients
 * of backward with each other or with dy.
 *
 * Status: CUDL_ERR_INVALID_ARGUMENT (ctx, inputs or y NULL, count < 1,
 * overlapping tensors), CUDL_ERR_DEVICE_MISMATCH (a tensor of another
 * context), CUDL_ERR_SHAPE (ranks or dimensions that do not fit, layouts
 * that differ), CUDL_ERR_DTYPE, CUDL_ERR_CUDA; the message names the
 * tensor. On failure nothing is written.
 */
#ifndef CUDL_CONCAT_H
#define CUDL_CONCAT_H

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** y = the count tensors inputs[0..count) concatenated along dimension 1
 *  (count >= 1; each entry non-NULL). */
CUDL_API cudl_status cudl_concat_forward(cudl_context *ctx, int count,
                                         const cudl_tensor *const *inputs,
                                         cudl_tensor *y);

/** The gradients of a concatenation: dinputs[i] = dy's part that
 *  inputs[i] filled, for each i whose dinputs[i] is not NULL (an input
 *  that needs no gradient); at least one must be non-NULL, and every one
 *  has the shape of its input. */
CUDL_API cudl_status cudl_concat_backward(cudl_context *ctx,
                                          const cudl_tensor *dy, int count,
                                          cudl_tensor *const *dinputs);

CUDL_EXTERN_C_END

#endif /* CUDL_CONCAT_H */
