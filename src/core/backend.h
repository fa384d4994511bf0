/*
 * backend.h - the table through which src/core dispatches to a device.
 *
 * Each backend (src/cpu, src/cuda) fills one of these. Arguments arrive
 * validated: non-NULL, sizes consistent, dtype accepted. A backend may leave
 * an entry NULL; the public call then returns CUDL_ERR_UNSUPPORTED. Entries
 * report failures with cudl__fail on the context they are given.
 */
#ifndef CUDL_BACKEND_H
#define CUDL_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "cudl/context.h"

/* The geometry of a 2-D pooling, validated, with the sizes filled in. */
typedef struct cudl_pool2d_geometry {
  int64_t n, c, h, w; /* input */
  int64_t oh, ow;     /* output */
  int64_t kh, kw, sh, sw, ph, pw;
  int count_include_pad; /* average pooling's divisor rule */
} cudl_pool2d_geometry;

/* The geometry of a 2-D convolution, validated (cudl/conv.h). */
typedef struct cudl_conv2d_geometry {
  int64_t n, c, h, w;             /* input x [n, c, h, w] */
  int64_t k, r, s;                /* weight [k, c / groups, r, s] */
  int64_t oh, ow;                 /* output y [n, k, oh, ow] */
  int64_t sh, sw, ph, pw, dh, dw; /* stride, padding, dilation */
  int64_t groups;
} cudl_conv2d_geometry;

/* Elementwise activations the backends implement (cudl/activation.h). */
typedef enum cudl_activation_kind {
  CUDL_ACTIVATION_SIGMOID,
  CUDL_ACTIVATION_TANH,
  CUDL_ACTIVATION_RELU,
  CUDL_ACTIVATION_LEAKY_RELU, /* alpha: the negative slope */
  CUDL_ACTIVATION_ELU         /* alpha: the saturation value */
} cudl_activation_kind;

/* Losses the backends implement (cudl/loss.h). */
typedef enum cudl_loss_kind {
  CUDL_LOSS_MSE,
  CUDL_LOSS_BCE_WITH_LOGITS
} cudl_loss_kind;

/* The scalars of one optimizer step (cudl/optim.h), already in the floats
 * PyTorch's torch.optim (1.13) computes with: src/nn/optim.c derives them
 * from the config in double and rounds each once, as PyTorch's Python
 * floats are rounded when they reach a float kernel. */
typedef struct cudl_sgd_step_args {
  float neg_lr;              /* -lr */
  float weight_decay;        /* d = fma(p, weight_decay, g) when nonzero */
  float momentum;            /* 0: no buffer (the pointer is NULL) */
  float one_minus_dampening; /* 1 - dampening */
  int nesterov;
  int first_step; /* momentum: the buffer becomes d (PyTorch's clone) */
} cudl_sgd_step_args;

typedef struct cudl_adam_step_args {
  float decay;        /* AdamW: p *= 1 - lr * weight_decay; 1 for Adam */
  float weight_decay; /* Adam: g = fma(p, weight_decay, g); 0 for AdamW */
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float neg_step_size;         /* -lr / (1 - beta1^t) */
  float bias_correction2_sqrt; /* sqrt(1 - beta2^t) */
  float eps;
} cudl_adam_step_args;

typedef struct cudl_backend {
  const char *name;

  /* Per-context state: open sets ctx->backend_state, close releases it. */
  cudl_status (*open)(cudl_context *ctx, int device_index);
  void (*close)(cudl_context *ctx);

  /* Storage. `host` is the allocator recorded in the tensor, for backends
   * whose storage is host memory. alloc returns zeroed memory. */
  cudl_status (*alloc_zeroed)(cudl_context *ctx, const cudl_allocator *host,
                              size_t nbytes, void **ptr);
  void (*free)(cudl_context *ctx, const cudl_allocator *host, void *ptr,
               size_t nbytes);

  /* Copies within the device and across the host boundary. */
  cudl_status (*copy_from_host)(cudl_context *ctx, void *dst, const void *src,
                                size_t nbytes);
  cudl_status (*copy_to_host)(cudl_context *ctx, void *dst, const void *src,
                              size_t nbytes);
  cudl_status (*copy_on_device)(cudl_context *ctx, void *dst, const void *src,
                                size_t nbytes);
  /* From another context of the same backend (a different GPU, or another
   * stream on the same one). src_ctx has already been synchronised. */
  cudl_status (*copy_from_peer)(cudl_context *ctx, void *dst,
                                cudl_context *src_ctx, const void *src,
                                size_t nbytes);
  cudl_status (*synchronize)(cudl_context *ctx);

  /* Memory accounting (cudl_context_memory_stats). */
  cudl_status (*memory_stats)(cudl_context *ctx, cudl_memory_stats *stats);
  cudl_status (*reset_peak_memory)(cudl_context *ctx);
  /* Events (cudl_event_*): create may set event->handle; record marks the
   * point reached by the work queued so far; elapsed_ms waits for end. */
  cudl_status (*event_create)(cudl_context *ctx, cudl_event *event);
  void (*event_destroy)(cudl_context *ctx, cudl_event *event);
  cudl_status (*event_record)(cudl_context *ctx, cudl_event *event);
  cudl_status (*event_elapsed_ms)(cudl_context *ctx, cudl_event *start,
                                  cudl_event *end, double *ms);

  /* f32 initialisation. */
  cudl_status (*fill_f32)(cudl_context *ctx, float *dst, int64_t n,
                          float value);
  cudl_status (*uniform_f32)(cudl_context *ctx, float *dst, int64_t n,
                             uint64_t seed, uint64_t offset, float low,
                             float high);
  cudl_status (*normal_f32)(cudl_context *ctx, float *dst, int64_t n,
                            uint64_t seed, uint64_t offset, float mean,
                            float stddev);

  /* Activations over n f32 elements; y may equal x, dx may equal dy.
   * Backward: `saved` is y for sigmoid and tanh, x for the others. */
  cudl_status (*activation_forward)(cudl_context *ctx,
                                    cudl_activation_kind kind, float alpha,
                                    const float *x, float *y, int64_t n);
  cudl_status (*activation_backward)(cudl_context *ctx,
                                     cudl_activation_kind kind, float alpha,
                                     const float *saved, const float *dy,
                                     float *dx, int64_t n);

  /* PReLU on x viewed as [outer, channels, inner] with slope[channels]
   * (a shared slope is channels = 1, outer = 1, inner = n). Backward writes
   * dx and dslope[c] = sum of dy * x over channel c where x <= 0. */
  cudl_status (*prelu_forward)(cudl_context *ctx, const float *x,
                               const float *slope, float *y, int64_t outer,
                               int64_t channels, int64_t inner);
  cudl_status (*prelu_backward)(cudl_context *ctx, const float *x,
                                const float *slope, const float *dy, float *dx,
                                float *dslope, int64_t outer, int64_t channels,
                                int64_t inner);
  /* RReLU: noise[i] = 1 for x > 0, else the slope (drawn from Philox at
   * (seed, offset) when training, (lower + upper) / 2 otherwise); y = x *
   * noise. noise may be NULL when not training. */
  cudl_status (*rrelu_forward)(cudl_context *ctx, const float *x, float *noise,
                               float *y, int64_t n, float lower, float upper,
                               int training, uint64_t seed, uint64_t offset);
  /* Unit activity, for diagnostics: on x viewed as [outer, units, inner],
   * active[u] = 1 where some x[o, u, i] > 0, and left as it was otherwise,
   * so that calls accumulate over a window. */
  cudl_status (*unit_activity_f32)(cudl_context *ctx, const float *x,
                                   float *active, int64_t outer, int64_t units,
                                   int64_t inner);
  /* counts[0] = NaN values in x[0, n), counts[1] = infinities; returns
   * once the counts are on the host. */
  cudl_status (*count_nonfinite_f32)(cudl_context *ctx, const float *x,
                                     int64_t n, int64_t counts[2]);
  /* Inverted dropout: mask[i] = keep ? scale : 0 (1 when not training,
   * mask then possibly NULL), y = x * mask. */
  cudl_status (*dropout_forward)(cudl_context *ctx, const float *x, float *mask,
                                 float *y, int64_t n, float p, int training,
                                 uint64_t seed, uint64_t offset);
  /* 2-D pooling over NCHW (cudl/pooling.h). is_max selects max or
   * average; backward of max reads x, of average ignores it (NULL). */
  cudl_status (*pool2d_forward)(cudl_context *ctx,
                                const cudl_pool2d_geometry *g, int is_max,
                                const float *x, float *y);
  cudl_status (*pool2d_backward)(cudl_context *ctx,
                                 const cudl_pool2d_geometry *g, int is_max,
                                 const float *x, const float *dy, float *dx);
  /* Global average pooling of `rows` rows of `cols` elements each. */
  cudl_status (*global_avg_pool_forward)(cudl_context *ctx, const float *x,
                                         float *y, int64_t rows, int64_t cols);
  cudl_status (*global_avg_pool_backward)(cudl_context *ctx, const float *dy,
                                          float *dx, int64_t rows,
                                          int64_t cols);
  /* Batch normalisation on x viewed as [outer, channels, inner]. Training
   * computes the statistics, writes y, save_mean, save_invstd and updates
   * the running statistics in place. */
  cudl_status (*batchnorm_forward_training)(
      cudl_context *ctx, const float *x, const float *gamma, const float *beta,
      float momentum, float eps, float *running_mean, float *running_var,
      float *y, float *save_mean, float *save_invstd, int64_t outer,
      int64_t channels, int64_t inner);
  cudl_status (*batchnorm_forward_inference)(
      cudl_context *ctx, const float *x, const float *gamma, const float *beta,
      const float *running_mean, const float *running_var, float eps, float *y,
      int64_t outer, int64_t channels, int64_t inner);
  cudl_status (*batchnorm_backward)(cudl_context *ctx, const float *x,
                                    const float *dy, const float *gamma,
                                    const float *save_mean,
                                    const float *save_invstd, float *dx,
                                    float *dgamma, float *dbeta, int64_t outer,
                                    int64_t channels, int64_t inner);
  /* Softmax (is_log = 0) or log-softmax over rows of `cols` elements. */
  cudl_status (*softmax_forward)(cudl_context *ctx, const float *x, float *y,
                                 int64_t rows, int64_t cols, int is_log);
  cudl_status (*softmax_backward)(cudl_context *ctx, const float *y,
                                  const float *dy, float *dx, int64_t rows,
                                  int64_t cols, int is_log);
  /* A loss over n elements: forward writes loss[0] (sum, or mean when
   * mean is nonzero); backward writes d = grad * dterm (/ n for the mean). */
  cudl_status (*loss_forward)(cudl_context *ctx, cudl_loss_kind kind,
                              const float *a, const float *b, float *loss,
                              int64_t n, int mean);
  cudl_status (*loss_backward)(cudl_context *ctx, cudl_loss_kind kind,
                               const float *a, const float *b, float *d,
                               int64_t n, int mean, float grad);
  /* Softmax cross-entropy of rows x[rows, cols] against labels[rows]. */
  cudl_status (*cross_entropy_forward)(cudl_context *ctx, const float *x,
                                       const int32_t *labels, float *loss,
                                       int64_t rows, int64_t cols,
                                       float smoothing, int mean);
  cudl_status (*cross_entropy_backward)(cudl_context *ctx, const float *x,
                                        const int32_t *labels, float *dx,
                                        int64_t rows, int64_t cols,
                                        float smoothing, int mean, float grad);
  /* out = a + alpha * b, and out = alpha * a (out may alias an input). */
  cudl_status (*add_scaled_f32)(cudl_context *ctx, const float *a, float alpha,
                                const float *b, float *out, int64_t n);
  cudl_status (*scale_f32)(cudl_context *ctx, const float *a, float alpha,
                           float *out, int64_t n);
  /* out[0] = the sum of n elements (divided by n when mean is nonzero). */
  cudl_status (*sum_f32)(cudl_context *ctx, const float *x, float *out,
                         int64_t n, int mean);
  /* out = a * b elementwise (out may alias either). */
  cudl_status (*mul_f32)(cudl_context *ctx, const float *a, const float *b,
                         float *out, int64_t n);

  /* Row-major C[m, n] = alpha * op(A) op(B) + beta * C, op(A) [m, k] and
   * op(B) [k, n]; A is stored [k, m] when trans_a, B [n, k] when trans_b;
   * lda, ldb, ldc are row strides. m, n, k, and the strides are at most
   * INT_MAX (checked by the caller). CUDA honours ctx->allow_tf32. */
  cudl_status (*gemm_f32)(cudl_context *ctx, int trans_a, int trans_b,
                          int64_t m, int64_t n, int64_t k, float alpha,
                          const float *a, int64_t lda, const float *b,
                          int64_t ldb, float beta, float *c, int64_t ldc);
  /* On y viewed as [outer, channels, inner]: y[o, c, i] += bias[c]. */
  cudl_status (*bias_add_f32)(cudl_context *ctx, float *y, const float *bias,
                              int64_t outer, int64_t channels, int64_t inner);
  /* out[c] = the sum over o and i of x[o, c, i], deterministic. */
  cudl_status (*channel_sum_f32)(cudl_context *ctx, const float *x, float *out,
                                 int64_t outer, int64_t channels,
                                 int64_t inner);
  /* Convolution without bias (cudl/conv.h); each overwrites its output.
   * CUDA honours ctx->deterministic and ctx->allow_tf32. */
  cudl_status (*conv2d_forward)(cudl_context *ctx,
                                const cudl_conv2d_geometry *g, const float *x,
                                const float *w, float *y);
  cudl_status (*conv2d_backward_data)(cudl_context *ctx,
                                      const cudl_conv2d_geometry *g,
                                      const float *w, const float *dy,
                                      float *dx);
  cudl_status (*conv2d_backward_filter)(cudl_context *ctx,
                                        const cudl_conv2d_geometry *g,
                                        const float *x, const float *dy,
                                        float *dw);

  /* Optimizer updates in place over n elements (cudl/optim.h), with the
   * exact float operations documented in src/cpu/cpu_optim.c; any order
   * over elements. momentum_buffer is NULL when args->momentum is 0. */
  cudl_status (*sgd_step)(cudl_context *ctx, float *params, const float *grads,
                          float *momentum_buffer, int64_t n,
                          const cudl_sgd_step_args *args);
  cudl_status (*adam_step)(cudl_context *ctx, float *params, const float *grads,
                           float *exp_avg, float *exp_avg_sq, int64_t n,
                           const cudl_adam_step_args *args);
  /* norm[0] = the L2 norm of n elements (n may be 0): squares summed in
   * double, deterministic; the square root in double, rounded once. */
  cudl_status (*l2_norm_f32)(cudl_context *ctx, const float *x, float *norm,
                             int64_t n);
  /* Gradient clipping's scaling, reading norm[0] where it lies (device
   * memory on CUDA: no synchronisation): when it is finite, coef =
   * (1 / (norm + 1e-6f)) * max_norm in float, and x *= coef if coef < 1. */
  cudl_status (*clip_scale_f32)(cudl_context *ctx, float *x, int64_t n,
                                const float *norm, float max_norm);
} cudl_backend;

extern const cudl_backend cudl__cpu_backend;
#if defined(CUDL_HAVE_CUDA)
extern const cudl_backend cudl__cuda_backend;
#endif

#endif /* CUDL_BACKEND_H */
