/*
 * cpu_optim.c - optimizer updates and gradient clipping on the CPU.
 *
 * The updates repeat, operation for operation, what PyTorch 1.13's
 * single-tensor torch.optim code does to a float tensor on an x86-64 CPU,
 * so that the results agree with it bit for bit (tests/golden/optim.*):
 *   - `t.add(u, alpha=a)` and `t.mul_(b).add_(u, alpha=a)` run a vectorised
 *     fused multiply-add, fma(u, a, t); `t.addcmul_(u, w, value=s)` is
 *     fma(s * u, w, t); everything else is one rounding per operation.
 *   - every scalar arrives already rounded to float (cudl_*_step_args).
 * Each rounding is its own statement, so that no compiler contracts two of
 * them into one fma (ISO C allows that only within an expression).
 */
#include <math.h>

#include "cpu/cpu_internal.h"

/* fmaf is one instruction where the CPU has FMA and a slow exact libm
 * routine where it must be emulated; the library is built for any x86-64,
 * so the update loops are compiled twice (CUDL_FMA_CLONES, cpu_internal.h)
 * and the loader picks (both round the same: fmaf is exact by definition).
 * cudl bench ops: SGD over 272192 parameters 0.62 ms with the libm call. */

CUDL_FMA_CLONES
cudl_status cudl__cpu_sgd_step(cudl_context *ctx, float *params,
                               const float *grads, float *momentum_buffer,
                               int64_t n, const cudl_sgd_step_args *args) {
  const float neg_lr = args->neg_lr, weight_decay = args->weight_decay;
  const float momentum = args->momentum, keep = args->one_minus_dampening;
  const int nesterov = args->nesterov, first = args->first_step;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i) {
    const float p = params[i];
    float d = grads[i];
    if (weight_decay != 0.0f) d = fmaf(p, weight_decay, d);
    if (momentum_buffer != NULL) {
      float b;
      if (first) {
        b = d;
      } else {
        const float decayed = momentum_buffer[i] * momentum;
        b = fmaf(d, keep, decayed);
      }
      momentum_buffer[i] = b;
      d = nesterov ? fmaf(b, momentum, d) : b;
    }
    params[i] = fmaf(d, neg_lr, p);
  }
  return CUDL_OK;
}

CUDL_FMA_CLONES
cudl_status cudl__cpu_adam_step(cudl_context *ctx, float *params,
                                const float *grads, float *exp_avg,
                                float *exp_avg_sq, int64_t n,
                                const cudl_adam_step_args *args) {
  const cudl_adam_step_args a = *args;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i) {
    float p = params[i], g = grads[i], m, v, m_decayed, v_decayed, g_scaled;
    float denom, update;
    if (a.decay != 1.0f) p = p * a.decay; /* AdamW; times 1 is exact */
    if (a.weight_decay != 0.0f) g = fmaf(p, a.weight_decay, g); /* Adam */
    m_decayed = exp_avg[i] * a.beta1;
    m = fmaf(g, a.one_minus_beta1, m_decayed);
    v_decayed = exp_avg_sq[i] * a.beta2;
    g_scaled = a.one_minus_beta2 * g;
    v = fmaf(g_scaled, g, v_decayed);
    denom = sqrtf(v);
    denom = denom / a.bias_correction2_sqrt;
    denom = denom + a.eps;
    update = a.neg_step_size * m;
    update = update / denom;
    exp_avg[i] = m;
    exp_avg_sq[i] = v;
    params[i] = p + update;
  }
  return CUDL_OK;
}

/* Squares are summed in double over fixed chunks of CHUNK elements, in
 * parallel, and the chunks' sums are added in order: the result does not
 * depend on the number of threads. */
#define CHUNK 65536

static double sum_squares(const float *x, int64_t begin, int64_t end) {
  double s = 0.0;
  int64_t i;
  for (i = begin; i < end; ++i) {
    const double v = (double)x[i];
    s += v * v; /* exact product: two floats' product fits a double */
  }
  return s;
}

cudl_status cudl__cpu_l2_norm(cudl_context *ctx, const void *x_, float *norm,
                              int64_t n) {
  const float *x = x_;
  const int64_t chunks = (n + CHUNK - 1) / CHUNK;
  double total = 0.0;
  if (chunks <= 1) {
    total = sum_squares(x, 0, n);
  } else {
    double *partial = NULL;
    int64_t c;
    cudl_status status = cudl__cpu_workspace(
        ctx, (size_t)chunks * sizeof(double), (void **)&partial);
    if (status != CUDL_OK) return status;
#pragma omp parallel for schedule(static)
    for (c = 0; c < chunks; ++c) {
      const int64_t end = (c + 1) * CHUNK < n ? (c + 1) * CHUNK : n;
      partial[c] = sum_squares(x, c * CHUNK, end);
    }
    for (c = 0; c < chunks; ++c) total += partial[c];
  }
  norm[0] = (float)sqrt(total);
  return CUDL_OK;
}

cudl_status cudl__cpu_clip_scale(cudl_context *ctx, void *x_, int64_t n,
                                 const float *norm, float max_norm) {
  float *x = x_;
  const float value = norm[0];
  float coef;
  int64_t i;
  (void)ctx;
  if (!isfinite(value)) return CUDL_OK;
  /* PyTorch: max_norm / (total_norm + 1e-6) on a float tensor is
   * reciprocal(total_norm + 1e-6) * max_norm, then clamp(max=1). */
  coef = value + (float)1e-6;
  coef = 1.0f / coef;
  coef = coef * max_norm;
  if (!(coef < 1.0f)) return CUDL_OK;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i) x[i] = x[i] * coef;
  return CUDL_OK;
}
