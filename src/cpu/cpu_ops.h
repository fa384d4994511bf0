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

cudl_status cudl__cpu_unit_activity_f32(cudl_context *ctx, const float *x,
                                        float *active, int64_t outer,
                                        int64_t units, int64_t inner);
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
cudl_status cudl__cpu_count_nonfinite_f32(cudl_context *ctx, const float *x,
                                          int64_t n, int64_t counts[2]);
cudl_status cudl__cpu_sum_f32(cudl_context *ctx, const float *x, float *out,
                              int64_t n, int mean);
cudl_status cudl__cpu_mul_f32(cudl_context *ctx, const float *a, const float *b,
                              float *out, int64_t n);
cudl_status cudl__cpu_sgd_step(cudl_context *ctx, float *params,
                               const float *grads, float *momentum_buffer,
                               int64_t n, const cudl_sgd_step_args *args);
cudl_status cudl__cpu_adam_step(cudl_context *ctx, float *params,
                                const float *grads, float *exp_avg,
                                float *exp_avg_sq, int64_t n,
                                const cudl_adam_step_args *args);
cudl_status cudl__cpu_l2_norm_f32(cudl_context *ctx, const float *x,
                                  float *norm, int64_t n);
cudl_status cudl__cpu_clip_scale_f32(cudl_context *ctx, float *x, int64_t n,
                                     const float *norm, float max_norm);

/* The CPU backend's per-context state (ctx->backend_state), made on first
 * use: a scratch buffer kept across calls, so that convolutions do not map
 * and fault in fresh pages every time, and oneDNN's engine and stream. */
struct dnnl_engine;
struct dnnl_stream;
/* Sums of float values in double that vectorise: value i goes to lane
 * i % CUDL_CPU_LANES, and the lanes are added in order at the end, so the
 * result depends on the values alone (not on threads). A single running
 * sum is one chain of dependent additions, several times slower. */
#define CUDL_CPU_LANES 8
static inline double cudl__cpu_lane_total(const double *lane) {
  double total = 0.0;
  int j;
  for (j = 0; j < CUDL_CPU_LANES; ++j) total += lane[j];
  return total;
}
static inline double cudl__cpu_sum_lanes(const float *x, int64_t n) {
  double lane[CUDL_CPU_LANES] = {0};
  int64_t i;
  int j;
  for (i = 0; i + CUDL_CPU_LANES <= n; i += CUDL_CPU_LANES)
    for (j = 0; j < CUDL_CPU_LANES; ++j) lane[j] += (double)x[i + j];
  for (; i < n; ++i) lane[i % CUDL_CPU_LANES] += (double)x[i];
  return cudl__cpu_lane_total(lane);
}

typedef struct cudl_cpu_state {
  cudl_allocator allocator; /* allocated this object */
  /* The workspace grows from the context's allocator of the moment (so
   * that allocations made after fault injection began are counted) and
   * goes back to the one it came from. */
  cudl_allocator workspace_allocator;
  void *workspace;
  size_t workspace_size;
  struct dnnl_engine *dnnl_engine; /* made on first use (cpu_dnnl.c) */
  struct dnnl_stream *dnnl_stream;
} cudl_cpu_state;

/* *out = the context's state, made on first use. */
cudl_status cudl__cpu_state(cudl_context *ctx, cudl_cpu_state **out);
/* *ptr = the context's workspace, grown to at least nbytes. Its contents
 * are undefined; a call must not hold it across another op. */
cudl_status cudl__cpu_workspace(cudl_context *ctx, size_t nbytes, void **ptr);
/* Release the oneDNN objects in state (cpu_dnnl.c). */
void cudl__cpu_dnnl_release(cudl_cpu_state *state);

cudl_status cudl__cpu_gemm_f32(cudl_context *ctx, int trans_a, int trans_b,
                               int64_t m, int64_t n, int64_t k, float alpha,
                               const float *a, int64_t lda, const float *b,
                               int64_t ldb, float beta, float *c, int64_t ldc);
cudl_status cudl__cpu_bias_add_f32(cudl_context *ctx, float *y,
                                   const float *bias, int64_t outer,
                                   int64_t channels, int64_t inner);
cudl_status cudl__cpu_channel_sum_f32(cudl_context *ctx, const float *x,
                                      float *out, int64_t outer,
                                      int64_t channels, int64_t inner);
cudl_status cudl__cpu_conv2d_forward(cudl_context *ctx,
                                     const cudl_conv2d_geometry *g,
                                     const float *x, const float *w, float *y);
cudl_status cudl__cpu_conv2d_backward_data(cudl_context *ctx,
                                           const cudl_conv2d_geometry *g,
                                           const float *w, const float *dy,
                                           float *dx);
cudl_status cudl__cpu_conv2d_backward_filter(cudl_context *ctx,
                                             const cudl_conv2d_geometry *g,
                                             const float *x, const float *dy,
                                             float *dw);

#endif /* CUDL_CPU_OPS_H */
