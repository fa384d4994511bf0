/*
 * cudl/pooling.h - 2-D max and average pooling and global average pooling
 * over NCHW or channels-last float tensors (f32, bf16 or f16; one dtype and
 * one layout per call, cudl/tensor.h), forward and backward. Shapes are the
 * logical [N, C, H, W] in either layout; the results are the same values.
 *
 * Output size per spatial dimension: floor((in + 2 * pad - kernel) / stride)
 * + 1, or with ceil_mode the ceiling, less one when the last window would
 * start past the input and its left padding ((out - 1) * stride >= in +
 * pad): PyTorch's ceil_mode=False and True. Windows may overlap (stride <
 * kernel); in ceil mode the last may run past the right padding (and the
 * kernel may be larger than the padded input). Requirements (else
 * CUDL_ERR_INVALID_ARGUMENT, with the field named): kernel >= 1, stride >=
 * 1, 0 <= pad <= kernel / 2, and an output of at least one element per
 * dimension. x must be 4-D and y of the output shape
 * (CUDL_ERR_SHAPE). On failure nothing is written.
 */
#ifndef CUDL_POOLING_H
#define CUDL_POOLING_H

#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** Window geometry of a 2-D pooling. */
typedef struct cudl_pool2d_desc {
  int kernel_h, kernel_w;
  int stride_h, stride_w;
  int pad_h, pad_w;
  /** Average pooling only: nonzero divides every window by its size with
   *  padding included, kernel_h * kernel_w except for a ceil-mode window
   *  running past the right padding, which counts only up to the padding's
   *  end (PyTorch's count_include_pad=True); zero divides by the number of
   *  elements inside the input. */
  int count_include_pad;
  /** Nonzero: the output size rounds up (PyTorch's ceil_mode=True, see
   *  above); zero, as a zero-initialised desc has it: down. */
  int ceil_mode;
} cudl_pool2d_desc;

/** The output shape {N, C, OH, OW} for an input of shape in_shape (4 dims). */
CUDL_API cudl_status cudl_pool2d_output_shape(const cudl_pool2d_desc *desc,
                                              const int64_t in_shape[4],
                                              int64_t out_shape[4]);

/**
 * Max pooling. Padding never wins (it is -infinity). Within a window the
 * first maximum in row-major order is the one chosen, on every device; a
 * NaN in the window makes the output NaN.
 */
CUDL_API cudl_status cudl_max_pool2d_forward(cudl_context *ctx,
                                             const cudl_pool2d_desc *desc,
                                             const cudl_tensor *x,
                                             cudl_tensor *y);
/** dx: each output's gradient goes to the element its window chose (the
 *  choice is recomputed from x by the forward rule); overlapping windows
 *  add up. */
CUDL_API cudl_status cudl_max_pool2d_backward(cudl_context *ctx,
                                              const cudl_pool2d_desc *desc,
                                              const cudl_tensor *x,
                                              const cudl_tensor *dy,
                                              cudl_tensor *dx);

/** Average pooling (see count_include_pad). */
CUDL_API cudl_status cudl_avg_pool2d_forward(cudl_context *ctx,
                                             const cudl_pool2d_desc *desc,
                                             const cudl_tensor *x,
                                             cudl_tensor *y);
/** dx: each output's gradient spread evenly over its window's elements. */
CUDL_API cudl_status cudl_avg_pool2d_backward(cudl_context *ctx,
                                              const cudl_pool2d_desc *desc,
                                              const cudl_tensor *dy,
                                              cudl_tensor *dx);

/** Global average pooling: y[n, c, 0, 0] = mean of x[n, c, :, :]; y has
 *  shape {N, C, 1, 1}. */
CUDL_API cudl_status cudl_global_avg_pool_forward(cudl_context *ctx,
                                                  const cudl_tensor *x,
                                                  cudl_tensor *y);
/** dx[n, c, h, w] = dy[n, c, 0, 0] / (H * W). */
CUDL_API cudl_status cudl_global_avg_pool_backward(cudl_context *ctx,
                                                   const cudl_tensor *dy,
                                                   cudl_tensor *dx);

CUDL_EXTERN_C_END

#endif /* CUDL_POOLING_H */
