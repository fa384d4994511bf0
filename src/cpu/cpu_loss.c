/* cpu_loss.c - softmax, log-softmax and the losses on the CPU, with
 * double accumulation. */
#include <math.h>

#include "cpu/cpu_internal.h"

cudl_status cudl__cpu_softmax_forward(cudl_context *ctx, const void *x_,
                                      void *y_, int64_t rows, int64_t cols,
                                      int is_log) {
  const float *x = x_;
  float *y = y_;
  int64_t r;
  (void)ctx;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (r = 0; r < rows; ++r) {
    const float *in = x + r * cols;
    float *out = y + r * cols;
    float max = in[0];
    double sum = 0.0;
    int64_t i;
    for (i = 1; i < cols; ++i)
      if (in[i] > max || isnan(in[i])) max = in[i];
    for (i = 0; i < cols; ++i) sum += exp((double)in[i] - (double)max);
    for (i = 0; i < cols; ++i)
      out[i] = is_log ? (float)((double)in[i] - (double)max - log(sum))
                      : (float)(exp((double)in[i] - (double)max) / sum);
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_softmax_backward(cudl_context *ctx, const void *y_,
                                       const void *dy_, void *dx_, int64_t rows,
                                       int64_t cols, int is_log) {
  const float *y = y_;
  const float *dy = dy_;
  float *dx = dx_;
  int64_t r;
  (void)ctx;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (r = 0; r < rows; ++r) {
    const float *out = y + r * cols, *g = dy + r * cols;
    float *d = dx + r * cols;
    double dot = 0.0;
    int64_t i;
    for (i = 0; i < cols; ++i)
      dot += is_log ? (double)g[i] : (double)g[i] * out[i];
    for (i = 0; i < cols; ++i)
      d[i] = is_log ? (float)((double)g[i] - exp((double)out[i]) * dot)
                    : (float)((double)out[i] * ((double)g[i] - dot));
  }
  return CUDL_OK;
}

/* One term of a loss and its derivative in a. */
static double loss_term(cudl_loss_kind kind, double a, double b) {
  if (kind == CUDL_LOSS_MSE) return (a - b) * (a - b);
  return (a > 0.0 ? a : 0.0) - a * b + log1p(exp(-fabs(a)));
}

static double loss_derivative(cudl_loss_kind kind, double a, double b) {
  if (kind == CUDL_LOSS_MSE) return 2.0 * (a - b);
  return 1.0 / (1.0 + exp(-a)) - b;
}

/* The terms of [first, last) summed in double lanes (cpu_internal.h); MSE's
 * loop vectorises. */
static double loss_block(cudl_loss_kind kind, const float *a, const float *b,
                         int64_t first, int64_t last) {
  double lane[CUDL_CPU_LANES] = {0};
  int64_t i = first;
  int j;
  if (kind == CUDL_LOSS_MSE)
    for (; i + CUDL_CPU_LANES <= last; i += CUDL_CPU_LANES)
      for (j = 0; j < CUDL_CPU_LANES; ++j) {
        const double d = (double)a[i + j] - (double)b[i + j];
        lane[j] += d * d;
      }
  for (; i < last; ++i)
    lane[(i - first) % CUDL_CPU_LANES] += loss_term(kind, a[i], b[i]);
  return cudl__cpu_lane_total(lane);
}

/* Blocks of this many terms are summed in parallel and their sums added in
 * order: the result depends on n, not on the number of threads. */
#define LOSS_BLOCK 65536

cudl_status cudl__cpu_loss_forward(cudl_context *ctx, cudl_loss_kind kind,
                                   const void *a_, const void *b_, float *loss,
                                   int64_t n, int mean) {
  const float *a = a_;
  const float *b = b_;
  const int64_t blocks = (n + LOSS_BLOCK - 1) / LOSS_BLOCK;
  double sum = 0.0, *partial = NULL;
  int64_t k;
  if (blocks <= 1) {
    sum = loss_block(kind, a, b, 0, n);
  } else {
    cudl_status status = cudl__cpu_workspace(
        ctx, (size_t)blocks * sizeof *partial, (void **)&partial);
    if (status != CUDL_OK) return status;
#pragma omp parallel for schedule(static)
    for (k = 0; k < blocks; ++k)
      partial[k] = loss_block(kind, a, b, k * LOSS_BLOCK,
                              k + 1 < blocks ? (k + 1) * LOSS_BLOCK : n);
    for (k = 0; k < blocks; ++k) sum += partial[k];
  }
  loss[0] = (float)(mean ? sum / (double)n : sum);
  return CUDL_OK;
}

cudl_status cudl__cpu_loss_backward(cudl_context *ctx, cudl_loss_kind kind,
                                    const void *a_, const void *b_, void *d_,
                                    int64_t n, int mean, float grad) {
  const float *a = a_;
  const float *b = b_;
  float *d = d_;
  const double scale = mean ? (double)grad / (double)n : (double)grad;
  int64_t i;
  (void)ctx;
#pragma omp parallel for schedule(static) if (n > 32768)
  for (i = 0; i < n; ++i)
    d[i] = (float)(scale * loss_derivative(kind, a[i], b[i]));
  return CUDL_OK;
}

/* The first row whose label is outside [0, cols), or -1. */
static int64_t first_bad_label(const int32_t *labels, int64_t rows,
                               int64_t cols) {
  int64_t r;
  for (r = 0; r < rows; ++r)
    if (labels[r] < 0 || labels[r] >= cols) return r;
  return -1;
}

/* log-sum-exp of one row, in double. */
static double row_logsumexp(const float *x, int64_t cols) {
  double max = x[0], sum = 0.0;
  int64_t i;
  for (i = 1; i < cols; ++i)
    if (x[i] > max || isnan(x[i])) max = x[i];
  for (i = 0; i < cols; ++i) sum += exp((double)x[i] - max);
  return max + log(sum);
}

cudl_status cudl__cpu_cross_entropy_forward(cudl_context *ctx, const void *x_,
                                            const int32_t *labels, float *loss,
                                            int64_t rows, int64_t cols,
                                            float smoothing, int mean) {
  const float *x = x_;
  const int64_t bad = first_bad_label(labels, rows, cols);
  double total = 0.0;
  int64_t r;
  if (bad >= 0)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT,
                      "cudl_cross_entropy_forward",
                      "labels[%lld] = %d is outside [0, %lld)", (long long)bad,
                      (int)labels[bad], (long long)cols);
  for (r = 0; r < rows; ++r) {
    const float *row = x + r * cols;
    double row_sum = 0.0;
    int64_t i;
    for (i = 0; i < cols; ++i) row_sum += row[i];
    total += row_logsumexp(row, cols) - (1.0 - smoothing) * row[labels[r]] -
             (double)smoothing / (double)cols * row_sum;
  }
  loss[0] = (float)(mean ? total / (double)rows : total);
  return CUDL_OK;
}

cudl_status cudl__cpu_cross_entropy_backward(cudl_context *ctx, const void *x_,
                                             const int32_t *labels, void *dx_,
                                             int64_t rows, int64_t cols,
                                             float smoothing, int mean,
                                             float grad) {
  const float *x = x_;
  float *dx = dx_;
  const int64_t bad = first_bad_label(labels, rows, cols);
  const double scale = mean ? (double)grad / (double)rows : (double)grad;
  const double off = (double)smoothing / (double)cols;
  int64_t r;
  if (bad >= 0)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT,
                      "cudl_cross_entropy_backward",
                      "labels[%lld] = %d is outside [0, %lld)", (long long)bad,
                      (int)labels[bad], (long long)cols);
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (r = 0; r < rows; ++r) {
    const float *row = x + r * cols;
    const double lse = row_logsumexp(row, cols);
    int64_t i;
    for (i = 0; i < cols; ++i) {
      const double target = off + (i == labels[r] ? 1.0 - smoothing : 0.0);
      dx[r * cols + i] = (float)(scale * (exp((double)row[i] - lse) - target));
    }
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_count_hits(cudl_context *ctx, const void *x_,
                                 const int32_t *labels, float *hits,
                                 int64_t rows, int64_t cols) {
  const float *x = x_;
  int64_t r, count = 0;
  (void)ctx;
  for (r = 0; r < rows; ++r) {
    const float *row = x + r * cols;
    int64_t k, best = -1;
    for (k = 0; k < cols; ++k)
      if (!isnan(row[k]) && (best < 0 || row[k] > row[best])) best = k;
    count += best >= 0 && best == labels[r];
  }
  hits[0] = (float)count;
  return CUDL_OK;
}
