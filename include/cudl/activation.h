/*
 * cudl/activation.h - elementwise activations, forward and backward.
 *
 * Every call works on f32 tensors of any shape on the context's device.
 * The tensors of one call must belong to ctx and have equal shapes; an
 * output may be the same tensor as an input (in place). On failure nothing
 * is written. Status: CUDL_ERR_INVALID_ARGUMENT (NULL, or a parameter out
 * of range), CUDL_ERR_DEVICE_MISMATCH (a tensor of another context),
 * CUDL_ERR_SHAPE, CUDL_ERR_DTYPE, CUDL_ERR_CUDA.
 *
 * NaN inputs give NaN outputs. Backward calls take the upstream gradient dy
 * and write dx = dy * f'(.), evaluated at the tensor named in each call
 * (the input x, or for sigmoid and tanh their output y, which is what a
 * training graph keeps).
 */
#ifndef CUDL_ACTIVATION_H
#define CUDL_ACTIVATION_H

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** y = 1 / (1 + exp(-x)), computed so that neither branch overflows:
 *  exactly 0 or 1 only where the float result rounds there. */
CUDL_API cudl_status cudl_sigmoid_forward(cudl_context *ctx,
                                          const cudl_tensor *x, cudl_tensor *y);
/** dx = dy * y * (1 - y), with y the forward output. */
CUDL_API cudl_status cudl_sigmoid_backward(cudl_context *ctx,
                                           const cudl_tensor *y,
                                           const cudl_tensor *dy,
                                           cudl_tensor *dx);

/** y = tanh(x). */
CUDL_API cudl_status cudl_tanh_forward(cudl_context *ctx, const cudl_tensor *x,
                                       cudl_tensor *y);
/** dx = dy * (1 - y^2), with y the forward output. */
CUDL_API cudl_status cudl_tanh_backward(cudl_context *ctx, const cudl_tensor *y,
                                        const cudl_tensor *dy, cudl_tensor *dx);

/** y = max(x, 0) (NaN stays NaN). */
CUDL_API cudl_status cudl_relu_forward(cudl_context *ctx, const cudl_tensor *x,
                                       cudl_tensor *y);
/** dx = dy where x > 0, else 0 (the gradient at 0 is 0, as in PyTorch). */
CUDL_API cudl_status cudl_relu_backward(cudl_context *ctx, const cudl_tensor *x,
                                        const cudl_tensor *dy, cudl_tensor *dx);

/** y = x where x > 0, else alpha * x. alpha must be finite. */
CUDL_API cudl_status cudl_leaky_relu_forward(cudl_context *ctx,
                                             const cudl_tensor *x, float alpha,
                                             cudl_tensor *y);
/** dx = dy where x > 0, else alpha * dy. */
CUDL_API cudl_status cudl_leaky_relu_backward(cudl_context *ctx,
                                              const cudl_tensor *x, float alpha,
                                              const cudl_tensor *dy,
                                              cudl_tensor *dx);

/** y = x where x > 0, else alpha * (exp(x) - 1). alpha must be finite. */
CUDL_API cudl_status cudl_elu_forward(cudl_context *ctx, const cudl_tensor *x,
                                      float alpha, cudl_tensor *y);
/** dx = dy where x > 0, else dy * alpha * exp(x). */
CUDL_API cudl_status cudl_elu_backward(cudl_context *ctx, const cudl_tensor *x,
                                       float alpha, const cudl_tensor *dy,
                                       cudl_tensor *dx);

CUDL_EXTERN_C_END

#endif /* CUDL_ACTIVATION_H */
