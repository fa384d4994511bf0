/*
 * cudl/activation.h - elementwise activations, forward and backward.
 *
 * Every call works on float tensors (f32, bf16 or f16, one dtype per call;
 * PReLU slopes are f32: cudl/tensor.h) of any shape on the context's device.
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

/** The elementwise activations as a value: what a model layer applies
 *  (cudl_model_add_activation, cudl_zoo_mlp). */
typedef enum cudl_activation_type {
  CUDL_ACT_SIGMOID = 0,
  CUDL_ACT_TANH = 1,
  CUDL_ACT_RELU = 2,
  CUDL_ACT_LEAKY_RELU = 3, /**< alpha: the negative slope */
  CUDL_ACT_ELU = 4,        /**< alpha: the saturation value */
  CUDL_ACT_GELU = 5,
  CUDL_ACT_SILU = 6, /**< x * sigmoid(x), also called swish */
  /** The number of types, not a type: a new type takes its place, so its
   *  value grows between versions. */
  CUDL_ACT_COUNT = 7
} cudl_activation_type;

/** The type's name, its enumerator's suffix in lower case ("sigmoid",
 *  "leaky_relu", "gelu", ...; static text, as in
 *  cudl_layer_diagnostics.kind); NULL for a value that is no type. */
CUDL_API const char *cudl_activation_name(cudl_activation_type type);

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

/** GELU, the exact form (PyTorch's nn.GELU(), approximate='none'):
 *  y = x * Phi(x), Phi the standard normal distribution function,
 *  computed as x * erfc(-x / sqrt 2) / 2 so that the negative tail keeps its
 *  relative accuracy; -inf gives -0 (the limit), NaN stays NaN. */
CUDL_API cudl_status cudl_gelu_forward(cudl_context *ctx, const cudl_tensor *x,
                                       cudl_tensor *y);
/** dx = dy * (Phi(x) + x * phi(x)), phi the standard normal density
 *  (its limits 1 and 0 at +inf and -inf). x is the forward's input. */
CUDL_API cudl_status cudl_gelu_backward(cudl_context *ctx, const cudl_tensor *x,
                                        const cudl_tensor *dy, cudl_tensor *dx);

/** SiLU (swish, PyTorch's nn.SiLU()): y = x * sigmoid(x), the sigmoid
 *  computed from exp(-|x|) as cudl_sigmoid_forward's; -inf gives -0 (the
 *  limit), NaN stays NaN. */
CUDL_API cudl_status cudl_silu_forward(cudl_context *ctx, const cudl_tensor *x,
                                       cudl_tensor *y);
/** dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x), 1 - s computed as
 *  sigmoid(-x) (no cancellation); its limits 1 and 0 at +inf and -inf. x is
 *  the forward's input. */
CUDL_API cudl_status cudl_silu_backward(cudl_context *ctx, const cudl_tensor *x,
                                        const cudl_tensor *dy, cudl_tensor *dx);

/**
 * PReLU: y = x where x > 0, else slope[c] * x, with a learnable slope.
 * slope has one element (shared by all of x) or C elements, one per channel,
 * the channel being dimension 1 of x (x of at least 2 dimensions: N, C, ...;
 * a channels-last image's too).
 * CUDL_ERR_SHAPE if slope has another element count.
 */
CUDL_API cudl_status cudl_prelu_forward(cudl_context *ctx, const cudl_tensor *x,
                                        const cudl_tensor *slope,
                                        cudl_tensor *y);
/**
 * dx = dy where x > 0, else slope[c] * dy; and the slope's gradient
 * dslope[c] = sum over the elements of channel c (or all, when shared) with
 * x <= 0 of dy * x, written (not accumulated) to dslope, which has slope's
 * shape. The sum is deterministic: the same inputs give the same bits.
 */
CUDL_API cudl_status cudl_prelu_backward(cudl_context *ctx,
                                         const cudl_tensor *x,
                                         const cudl_tensor *slope,
                                         const cudl_tensor *dy, cudl_tensor *dx,
                                         cudl_tensor *dslope);

/**
 * RReLU: y = x * noise, where noise = 1 for x > 0 and, for x <= 0 (as in
 * PyTorch), a slope:
 *   training (nonzero): drawn per element from U(lower, upper) with the
 *     context's Philox generator (element i takes word i % 4 of the block at
 *     offset + i / 4, as cudl_tensor_uniform; the offset then advances by
 *     ceil(numel / 4) whatever x holds), bit-identical on CPU and CUDA;
 *   evaluation (0): the fixed slope (lower + upper) / 2.
 * noise (x's shape) receives the multipliers for backward; it may be NULL
 * only when not training. Requires finite 0 <= lower <= upper.
 */
CUDL_API cudl_status cudl_rrelu_forward(cudl_context *ctx, const cudl_tensor *x,
                                        float lower, float upper, int training,
                                        cudl_tensor *noise, cudl_tensor *y);
/** dx = dy * noise, with noise from cudl_rrelu_forward. */
CUDL_API cudl_status cudl_rrelu_backward(cudl_context *ctx,
                                         const cudl_tensor *noise,
                                         const cudl_tensor *dy,
                                         cudl_tensor *dx);

CUDL_EXTERN_C_END

#endif /* CUDL_ACTIVATION_H */
