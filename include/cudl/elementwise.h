/*
 * cudl/elementwise.h - elementwise arithmetic and full reductions on
 * tensors of one context. Operands share one shape and one float dtype
 * (f32, bf16 or f16; sum and mean are f32-only); an output may be one of the
 * inputs (in place: `cudl_add(ctx, acc, 1.0f, grad, acc)` accumulates a
 * gradient). On failure nothing is written.
 */
#ifndef CUDL_ELEMENTWISE_H
#define CUDL_ELEMENTWISE_H

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** out = a + alpha * b (alpha finite): residual connections, gradient
 *  accumulation. */
CUDL_API cudl_status cudl_add(cudl_context *ctx, const cudl_tensor *a,
                              float alpha, const cudl_tensor *b,
                              cudl_tensor *out);

/** out = a * b. */
CUDL_API cudl_status cudl_mul(cudl_context *ctx, const cudl_tensor *a,
                              const cudl_tensor *b, cudl_tensor *out);

/** out = alpha * a (alpha finite). */
CUDL_API cudl_status cudl_scale(cudl_context *ctx, const cudl_tensor *a,
                                float alpha, cudl_tensor *out);

/** out (one element) = the sum of all of x's elements; 0 for an empty x.
 *  Deterministic: the CPU adds in double in order; CUDA adds per block and
 *  then the blocks' sums in order. */
CUDL_API cudl_status cudl_sum(cudl_context *ctx, const cudl_tensor *x,
                              cudl_tensor *out);

/** out (one element) = the mean of x's elements (CUDL_ERR_SHAPE if x is
 *  empty). */
CUDL_API cudl_status cudl_mean(cudl_context *ctx, const cudl_tensor *x,
                               cudl_tensor *out);

/** *nan_count and *inf_count (both non-NULL) = how many of x's elements
 *  are NaN and how many are infinite: for checks of numerics. Waits for
 *  the device to finish the count. */
CUDL_API cudl_status cudl_count_nonfinite(cudl_context *ctx,
                                          const cudl_tensor *x,
                                          int64_t *nan_count,
                                          int64_t *inf_count);

/** norm (one element, f32, on x's context) = the L2 norm of x's elements
 *  (0 for an empty x): the squares summed in double, deterministic, the
 *  square root rounded once to float; NaN when an element is NaN, infinite
 *  when one is or the norm passes FLT_MAX. x is f32, bf16 or f16. Nothing
 *  waits for the device, so a loop can keep a gradient's norm each step
 *  and look at it later. */
CUDL_API cudl_status cudl_l2_norm(cudl_context *ctx, const cudl_tensor *x,
                                  cudl_tensor *norm);

CUDL_EXTERN_C_END

#endif /* CUDL_ELEMENTWISE_H */
