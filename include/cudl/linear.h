/*
 * cudl/linear.h - fully connected layers on float tensors (f32, bf16 or
 * f16, every operand of a call in one), forward and backward, as PyTorch's
 * nn.Linear:
 *   y = x w^T + bias,  x [..., IN], w [OUT, IN], bias [OUT], y [..., OUT]
 * where "..." is any number of leading dimensions (at least one dimension in
 * all), the same for x, dx, y and dy; they are treated as ROWS rows.
 *
 * CPU: a BLAS sgemm. CUDA: cuBLAS, in full f32 unless the context allows
 * TF32 (cudl_context_set_allow_tf32). Shapes that do not agree give
 * CUDL_ERR_SHAPE; dimensions above INT_MAX (the BLAS interfaces' limit)
 * give CUDL_ERR_UNSUPPORTED. On failure nothing is written.
 */
#ifndef CUDL_LINEAR_H
#define CUDL_LINEAR_H

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** y = x w^T + bias; bias may be NULL (no bias). */
CUDL_API cudl_status cudl_linear_forward(cudl_context *ctx,
                                         const cudl_tensor *x,
                                         const cudl_tensor *w,
                                         const cudl_tensor *bias,
                                         cudl_tensor *y);

/**
 * Gradients from dy (y's gradient): dx = dy w, dw = dy^T x (summed over
 * the rows), dbias = the column sums of dy. Each output is optional (NULL:
 * not computed; a first layer needs no dx) and is overwritten, not added
 * to. x is needed only for dw and may be NULL when dw is.
 */
CUDL_API cudl_status cudl_linear_backward(cudl_context *ctx,
                                          const cudl_tensor *x,
                                          const cudl_tensor *w,
                                          const cudl_tensor *dy,
                                          cudl_tensor *dx, cudl_tensor *dw,
                                          cudl_tensor *dbias);

CUDL_EXTERN_C_END

#endif /* CUDL_LINEAR_H */
