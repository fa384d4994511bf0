/*
 * cudl/conv.h - 2-D convolution over NCHW or channels-last float tensors
 * (f32, bf16 or f16; every operand of a call in one dtype and one layout:
 * cudl/tensor.h): forward, the two backward passes, and the bias.
 *
 * Shapes: x [N, C, H, W]; w [K, C / groups, R, S] (PyTorch's Conv2d weight
 * layout); bias [K]; y [N, K, OH, OW] with, per spatial dimension,
 *   OH = floor((H + 2 * pad_h - dilation_h * (R - 1) - 1) / stride_h) + 1.
 * This is cross-correlation, as in PyTorch and cuDNN:
 *   y[n, k, p, q] = bias[k] + sum over c in k's group, r, s of
 *     x[n, c, p * stride_h - pad_h + r * dilation_h,
 *            q * stride_w - pad_w + s * dilation_w] * w[k, c mod C/g, r, s]
 * with x zero outside the image. Shapes are these logical ones in either
 * layout; channels-last x, w and y hold their bytes as [N, H, W, C],
 * [K, R, S, C / groups] and [N, OH, OW, K] (cudl_tensor_convert makes
 * them from NCHW tensors): the order cuDNN's tensor-core kernels work in.
 *
 * Requirements (CUDL_ERR_INVALID_ARGUMENT, naming the field): stride >= 1,
 * dilation >= 1, groups >= 1 dividing both C and K, 0 <= pad <=
 * dilation * (kernel - 1) (so every output sees at least one input
 * element), and an output of at least one element per dimension. Shapes
 * that do not fit these rules give CUDL_ERR_SHAPE. C, K, R, S, H, W must be
 * >= 1; N may be 0 (nothing is computed). A dimension, OH * OW, or
 * C / groups * R * S above INT_MAX (the int sizes of cuDNN and the BLAS)
 * gives CUDL_ERR_UNSUPPORTED naming the tensor and dimension.
 *
 * CPU: oneDNN. CUDA: cuDNN, with the algorithm
 * chosen once per shape (by timing the candidates) and cached in the
 * context, and one workspace per context that grows on demand; see
 * cudl_context_set_deterministic and cudl_context_set_allow_tf32.
 * On failure nothing is written.
 */
#ifndef CUDL_CONV_H
#define CUDL_CONV_H

#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** Geometry of a 2-D convolution (the kernel size comes from w). */
typedef struct cudl_conv2d_desc {
  int stride_h, stride_w;
  int pad_h, pad_w;
  int dilation_h, dilation_w;
  int groups;
} cudl_conv2d_desc;

/** Stride 1, no padding, no dilation, one group: initialise a desc with
 *  this and change what differs. */
#define CUDL_CONV2D_DESC_DEFAULT \
  { 1, 1, 0, 0, 1, 1, 1 }

/** The output shape {N, K, OH, OW} for input shape x_shape and weight shape
 *  w_shape (4 dimensions each), checked as the calls below check them. */
CUDL_API cudl_status cudl_conv2d_output_shape(const cudl_conv2d_desc *desc,
                                              const int64_t x_shape[4],
                                              const int64_t w_shape[4],
                                              int64_t out_shape[4]);

/** y = conv(x, w) + bias. bias may be NULL (no bias). */
CUDL_API cudl_status cudl_conv2d_forward(
    cudl_context *ctx, const cudl_conv2d_desc *desc, const cudl_tensor *x,
    const cudl_tensor *w, const cudl_tensor *bias, cudl_tensor *y);

/** y = act(conv(x, w) + bias + residual): a convolution with what
 *  usually follows it (a folded batch norm's bias, a residual block's
 *  shortcut, the ReLU) in one pass where the device has one, as cuDNN's
 *  cudnnConvolutionBiasActivationForward and oneDNN's post-ops do; for
 *  inference (there is no matching backward).
 *
 *  bias [K] and residual (y's shape, dtype and layout) may each be NULL.
 *  act is the identity when relu is 0, else max(v, 0) + negative_slope *
 *  min(v, 0): ReLU for a negative_slope of 0, leaky ReLU otherwise
 *  (negative_slope must be finite). y may not share storage with any
 *  input.
 *
 *  In one pass (the CPU on channels-last tensors, through oneDNN's
 *  optimised kernels) a 16-bit y is rounded once, from f32; elsewhere
 *  (NCHW on the CPU, and CUDA for now) the parts run one after another,
 *  as cudl_conv2d_forward, cudl_add and cudl_relu_forward or
 *  cudl_leaky_relu_forward would, each rounding a 16-bit y. In f32 the two
 *  agree to rounding (oneDNN adds the bias and the residual inside its
 *  kernels, in its own order). */
CUDL_API cudl_status cudl_conv2d_forward_fused(
    cudl_context *ctx, const cudl_conv2d_desc *desc, const cudl_tensor *x,
    const cudl_tensor *w, const cudl_tensor *bias, const cudl_tensor *residual,
    int relu, float negative_slope, cudl_tensor *y);

/** dx = the gradient of the loss with respect to x, given dy (y's
 *  gradient). dx's shape fixes H and W (several input sizes can give one
 *  output size when stride > 1); dx is overwritten. */
CUDL_API cudl_status cudl_conv2d_backward_data(cudl_context *ctx,
                                               const cudl_conv2d_desc *desc,
                                               const cudl_tensor *w,
                                               const cudl_tensor *dy,
                                               cudl_tensor *dx);

/** dw = the gradient with respect to w (summed over the batch), given the
 *  forward input x and dy; dw has w's shape and is overwritten. */
CUDL_API cudl_status cudl_conv2d_backward_filter(cudl_context *ctx,
                                                 const cudl_conv2d_desc *desc,
                                                 const cudl_tensor *x,
                                                 const cudl_tensor *dy,
                                                 cudl_tensor *dw);

/** dbias[k] = the sum of dy[:, k, :, :]; dy is 4-D, dbias [K], overwritten.
 *  Deterministic on every device. */
CUDL_API cudl_status cudl_conv2d_backward_bias(cudl_context *ctx,
                                               const cudl_tensor *dy,
                                               cudl_tensor *dbias);

CUDL_EXTERN_C_END

#endif /* CUDL_CONV_H */
