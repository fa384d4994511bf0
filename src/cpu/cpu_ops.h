/* cpu_ops.h - CPU implementations of the operators, one file per family,
 * gathered into the backend table in cpu_backend.c. */
#ifndef CUDL_CPU_OPS_H
#define CUDL_CPU_OPS_H

#include "core/internal.h"

cudl_status cudl__cpu_activation_forward(cudl_context *ctx,
                                         cudl_activation_kind kind, float alpha,
                                         const float *x, float *y, int64_t n);
cudl_status cudl__cpu_activation_backward(cudl_context *ctx,
                                          cudl_activation_kind kind,
                                          float alpha, const float *saved,
                                          const float *dy, float *dx,
                                          int64_t n);

#endif /* CUDL_CPU_OPS_H */
