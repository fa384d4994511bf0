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

cudl_status cudl__cpu_prelu_forward(cudl_context *ctx, const float *x,
                                    const float *slope, float *y, int64_t outer,
                                    int64_t channels, int64_t inner);
cudl_status cudl__cpu_prelu_backward(cudl_context *ctx, const float *x,
                                     const float *slope, const float *dy,
                                     float *dx, float *dslope, int64_t outer,
                                     int64_t channels, int64_t inner);
cudl_status cudl__cpu_rrelu_forward(cudl_context *ctx, const float *x,
                                    float *noise, float *y, int64_t n,
                                    float lower, float upper, int training,
                                    uint64_t seed, uint64_t offset);
cudl_status cudl__cpu_dropout_forward(cudl_context *ctx, const float *x,
                                      float *mask, float *y, int64_t n, float p,
                                      int training, uint64_t seed,
                                      uint64_t offset);
cudl_status cudl__cpu_pool2d_forward(cudl_context *ctx,
                                     const cudl_pool2d_geometry *g, int is_max,
                                     const float *x, float *y);
cudl_status cudl__cpu_pool2d_backward(cudl_context *ctx,
                                      const cudl_pool2d_geometry *g, int is_max,
                                      const float *x, const float *dy,
                                      float *dx);
cudl_status cudl__cpu_global_avg_pool_forward(cudl_context *ctx, const float *x,
                                              float *y, int64_t rows,
                                              int64_t cols);
cudl_status cudl__cpu_global_avg_pool_backward(cudl_context *ctx,
                                               const float *dy, float *dx,
                                               int64_t rows, int64_t cols);
cudl_status cudl__cpu_batchnorm_forward_training(
    cudl_context *ctx, const float *x, const float *gamma, const float *beta,
    float momentum, float eps, float *running_mean, float *running_var,
    float *y, float *save_mean, float *save_invstd, int64_t outer,
    int64_t channels, int64_t inner);
cudl_status cudl__cpu_batchnorm_forward_inference(
    cudl_context *ctx, const float *x, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, float eps, float *y,
    int64_t outer, int64_t channels, int64_t inner);
cudl_status cudl__cpu_batchnorm_backward(
    cudl_context *ctx, const float *x, const float *dy, const float *gamma,
    const float *save_mean, const float *save_invstd, float *dx, float *dgamma,
    float *dbeta, int64_t outer, int64_t channels, int64_t inner);
cudl_status cudl__cpu_softmax_forward(cudl_context *ctx, const float *x,
                                      float *y, int64_t rows, int64_t cols,
                                      int is_log);
cudl_status cudl__cpu_softmax_backward(cudl_context *ctx, const float *y,
                                       const float *dy, float *dx, int64_t rows,
                                       int64_t cols, int is_log);
cudl_status cudl__cpu_loss_forward(cudl_context *ctx, cudl_loss_kind kind,
                                   const float *a, const float *b, float *loss,
                                   int64_t n, int mean);
cudl_status cudl__cpu_loss_backward(cudl_context *ctx, cudl_loss_kind kind,
                                    const float *a, const float *b, float *d,
                                    int64_t n, int mean, float grad);
cudl_status cudl__cpu_cross_entropy_forward(cudl_context *ctx, const float *x,
                                            const int32_t *labels, float *loss,
                                            int64_t rows, int64_t cols,
                                            float smoothing, int mean);
cudl_status cudl__cpu_cross_entropy_backward(cudl_context *ctx, const float *x,
                                             const int32_t *labels, float *dx,
                                             int64_t rows, int64_t cols,
                                             float smoothing, int mean,
                                             float grad);
cudl_status cudl__cpu_add_scaled_f32(cudl_context *ctx, const float *a,
                                     float alpha, const float *b, float *out,
                                     int64_t n);
cudl_status cudl__cpu_scale_f32(cudl_context *ctx, const float *a, float alpha,
                                float *out, int64_t n);
cudl_status cudl__cpu_sum_f32(cudl_context *ctx, const float *x, float *out,
                              int64_t n, int mean);
cudl_status cudl__cpu_mul_f32(cudl_context *ctx, const float *a, const float *b,
                              float *out, int64_t n);

#endif /* CUDL_CPU_OPS_H */
