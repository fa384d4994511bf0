/* cpu_batchnorm.c - batch normalisation on the CPU in the steps of ops.def:
 * the statistics (one pass over x, shifted sums in double), the apply (the
 * normalisation and, on the fused path, a residual and a ReLU) and the
 * backward (with the fused path's ReLU mask and residual gradient); the
 * training forward is the first two, the plain backward the third without
 * mask or residual. Each step reads its inputs once, but the backward,
 * which needs its sums before it can write dx: twice. On the fused path
 * its first pass writes the residual's gradient g, and the second reads g
 * instead of y and dy.
 *
 * x viewed as [outer, channels, inner] with inner > 1 (NCHW images) goes a
 * channel per iteration, its sums in lanes (channel_sums); inner = 1
 * (channels-last images, and [N, C]) goes by blocks of channels over fixed
 * slices of the rows (the *_rows functions), with the same arithmetic.
 *
 * The per-row and per-plane loops are inlined with constant flags (has a
 * residual, a ReLU, a mask) so that each variant is its own vectorised
 * loop, without a test per element. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "cpu/cpu_internal.h"

#if defined(__GNUC__)
#define BN_INLINE __attribute__((always_inline)) inline
#else
#define BN_INLINE inline
#endif

/* Element i of channel c's m = outer * inner values. */
#define BN_INDEX(n, c, i) (((n)*channels + (c)) * inner + (i))

/* The channel sums use independent double accumulators (element i of a
 * row goes to lane i % LANES) so that the loops vectorise, then add the
 * lanes in order (cpu_internal.h). */
#define LANES CUDL_CPU_LANES
#define add_lanes cudl__cpu_lane_total

/* Whether a loop over `elements` values is worth a parallel region. */
#define WORTH_THREADS(elements) ((elements) > 32768)

/* The ReLU of the apply, as cudl_activation_forward computes it. */
static BN_INLINE float relu_of(float v) { return v < 0.0f ? 0.0f : v; }

/* The fused backward's gradient through the ReLU, from its output: dy
 * where y > 0, else +0 (cudl_activation_backward's ReLU). As a mask on the
 * bits rather than a choice: GCC turned the choice into a branch per
 * element in the lane loops of backward_channel_sums, mispredicted on
 * half of a ResNet's values (the NCHW backward ran 4x slower than
 * unmasked). */
static BN_INLINE float through_relu(float y, float dy) {
  const uint32_t keep = (uint32_t)0 - (uint32_t)(y > 0.0f);
  uint32_t bits;
  float g;
  memcpy(&bits, &dy, sizeof bits);
  bits &= keep;
  memcpy(&g, &bits, sizeof g);
  return g;
}

/* ---- inner > 1: a channel per iteration ---- */

/* The shift the one-pass statistics subtract: the channel's first value,
 * when finite. The sums are of d = x - shift and d^2, and the squared
 * deviation from the mean is sum d^2 - (sum d)^2 / m, which cancels only
 * as far as the mean lies from the shift: a value of the channel lies
 * within a few deviations of its mean, so in double the variance keeps
 * about 14 digits (a mean of 1000 and a deviation of 0.05 included),
 * where E[x^2] - E[x]^2 in float keeps none. */
static double first_value_shift(float first) {
  return isfinite(first) ? (double)first : 0.0;
}

/* Channel c's sums of d = x - shift and of d^2, in lanes, in one pass. */
static void channel_moments(const float *x, int64_t outer, int64_t channels,
                            int64_t inner, int64_t c, double shift,
                            double *sum, double *squares) {
  double a[LANES] = {0}, b[LANES] = {0};
  int64_t n, i;
  int j;
  for (n = 0; n < outer; ++n) {
    const float *row = x + BN_INDEX(n, c, 0);
    for (i = 0; i + LANES <= inner; i += LANES)
      for (j = 0; j < LANES; ++j) {
        const double d = (double)row[i + j] - shift;
        a[j] += d;
        b[j] += d * d;
      }
    for (; i < inner; ++i) {
      const double d = (double)row[i] - shift;
      a[i % LANES] += d;
      b[i % LANES] += d * d;
    }
  }
  *sum = add_lanes(a);
  *squares = add_lanes(b);
}

/* The mean, variance, saved statistics and running statistics of channel c
 * from the sums of d = x - shift and of d^2 over its m values. */
static void finish_statistics(int64_t c, double m, double shift, double sum,
                              double squares, float momentum, float eps,
                              float *running_mean, float *running_var,
                              float *save_mean, float *save_invstd) {
  const double mean_d = sum / m;
  const double deviations = squares - sum * mean_d;
  /* Rounding can take a constant channel's just below 0; NaN stays. */
  const double var = deviations < 0.0 ? 0.0 : deviations / m;
  const double mean = shift + mean_d;
  save_mean[c] = (float)mean;
  save_invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
  running_mean[c] = (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
  running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                           momentum * var * m / (m - 1.0));
}

static void statistics_planes(const float *x, float momentum, float eps,
                              float *running_mean, float *running_var,
                              float *save_mean, float *save_invstd,
                              int64_t outer, int64_t channels, int64_t inner) {
  const double m = (double)(outer * inner);
  int64_t c;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels * inner))
  for (c = 0; c < channels; ++c) {
    const double shift = first_value_shift(x[BN_INDEX(0, c, 0)]);
    double sum, squares;
    channel_moments(x, outer, channels, inner, c, shift, &sum, &squares);
    finish_statistics(c, m, shift, sum, squares, momentum, eps, running_mean,
                      running_var, save_mean, save_invstd);
  }
}

/* One plane (or row) of `count` values of one channel. */
static BN_INLINE void apply_plane(const float *x, float gamma, float beta,
                                  float mean, float invstd,
                                  const float *residual, float *y,
                                  int64_t count, const int has_residual,
                                  const int relu) {
  int64_t i;
#pragma omp simd
  for (i = 0; i < count; ++i) {
    float v = gamma * ((x[i] - mean) * invstd) + beta;
    if (has_residual) v = v + residual[i];
    y[i] = relu ? relu_of(v) : v;
  }
}

static void apply_planes(const float *x, const float *gamma, const float *beta,
                         const float *mean, const float *invstd,
                         const float *residual, int relu, float *y,
                         int64_t outer, int64_t channels, int64_t inner) {
  int64_t plane;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels * inner))
  for (plane = 0; plane < outer * channels; ++plane) {
    const int64_t c = plane % channels, at = plane * inner;
    const float *res = residual != NULL ? residual + at : NULL;
    if (res == NULL && !relu)
      apply_plane(x + at, gamma[c], beta[c], mean[c], invstd[c], res, y + at,
                  inner, 0, 0);
    else if (res == NULL)
      apply_plane(x + at, gamma[c], beta[c], mean[c], invstd[c], res, y + at,
                  inner, 0, 1);
    else if (!relu)
      apply_plane(x + at, gamma[c], beta[c], mean[c], invstd[c], res, y + at,
                  inner, 1, 0);
    else
      apply_plane(x + at, gamma[c], beta[c], mean[c], invstd[c], res, y + at,
                  inner, 1, 1);
  }
}

/* Channel c's sums of g and of g * xhat, in lanes, where g is dy, or dy
 * through the ReLU whose output is y when masked; with writes_g, g into
 * g_out as well (the fused path's residual gradient, which the input
 * gradient's pass then reads instead of y and dy). */
static BN_INLINE void backward_channel_sums(
    const float *x, const float *y, const float *dy, double mean,
    double invstd, int64_t outer, int64_t channels, int64_t inner, int64_t c,
    float *g_out, double *sum_g, double *sum_g_xhat, const int masked,
    const int writes_g) {
  double a[LANES] = {0}, b[LANES] = {0};
  int64_t n, i;
  int j;
  for (n = 0; n < outer; ++n) {
    const int64_t at = BN_INDEX(n, c, 0);
    const float *dy_row = dy + at, *x_row = x + at;
    const float *y_row = masked ? y + at : NULL;
    float *g_row = writes_g ? g_out + at : NULL;
    for (i = 0; i + LANES <= inner; i += LANES)
      for (j = 0; j < LANES; ++j) {
        const float g =
            masked ? through_relu(y_row[i + j], dy_row[i + j]) : dy_row[i + j];
        if (writes_g) g_row[i + j] = g;
        a[j] += g;
        b[j] += g * (x_row[i + j] - mean) * invstd;
      }
    for (; i < inner; ++i) {
      const float g = masked ? through_relu(y_row[i], dy_row[i]) : dy_row[i];
      if (writes_g) g_row[i] = g;
      a[i % LANES] += g;
      b[i % LANES] += g * (x_row[i] - mean) * invstd;
    }
  }
  *sum_g = add_lanes(a);
  *sum_g_xhat = add_lanes(b);
}

/* dx = k_dy * g + (k_xhat * xhat + k_0) over `count` values of a channel. */
static BN_INLINE void input_gradient_plane(const float *x, const float *y,
                                           const float *dy, float mean,
                                           float invstd, float k_dy,
                                           float k_xhat, float k_0, float *dx,
                                           int64_t count, const int masked) {
  int64_t i;
#pragma omp simd
  for (i = 0; i < count; ++i) {
    const float g = masked ? through_relu(y[i], dy[i]) : dy[i];
    const float xhat = (x[i] - mean) * invstd;
    dx[i] = k_dy * g + (k_xhat * xhat + k_0);
  }
}

static void backward_planes(const float *x, const float *y, const float *dy,
                            const float *gamma, const float *save_mean,
                            const float *save_invstd, float *dx,
                            float *dresidual, float *dgamma, float *dbeta,
                            int64_t outer, int64_t channels, int64_t inner) {
  const double m = (double)(outer * inner);
  int64_t c;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels * inner))
  for (c = 0; c < channels; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_g, sum_g_xhat, scale;
    float mean_f, invstd_f, k_dy, k_xhat, k_0;
    int64_t n;
    if (dresidual != NULL)
      backward_channel_sums(x, y, dy, mean, invstd, outer, channels, inner, c,
                            dresidual, &sum_g, &sum_g_xhat, 1, 1);
    else if (y != NULL)
      backward_channel_sums(x, y, dy, mean, invstd, outer, channels, inner, c,
                            NULL, &sum_g, &sum_g_xhat, 1, 0);
    else
      backward_channel_sums(x, y, dy, mean, invstd, outer, channels, inner, c,
                            NULL, &sum_g, &sum_g_xhat, 0, 0);
    dbeta[c] = (float)sum_g;
    dgamma[c] = (float)sum_g_xhat;
    if (m == 0.0) continue;
    /* dx = scale * (m g - sum_g - xhat sum_g_xhat) as a float affine map
     * of g and xhat, its coefficients rounded once from double: it
     * vectorises 16 wide (1.6x faster than the double form here), and xhat
     * is formed before the products, so a large channel mean does not
     * cancel. */
    scale = gamma[c] * invstd / m;
    mean_f = (float)mean;
    invstd_f = (float)invstd;
    k_dy = (float)(scale * m);
    k_xhat = (float)(-scale * sum_g_xhat);
    k_0 = (float)(-scale * sum_g);
    for (n = 0; n < outer; ++n) {
      const int64_t at = BN_INDEX(n, c, 0);
      /* g is dresidual where the sums wrote it. */
      if (dresidual != NULL)
        input_gradient_plane(x + at, NULL, dresidual + at, mean_f, invstd_f,
                             k_dy, k_xhat, k_0, dx + at, inner, 0);
      else if (y == NULL)
        input_gradient_plane(x + at, NULL, dy + at, mean_f, invstd_f, k_dy,
                             k_xhat, k_0, dx + at, inner, 0);
      else
        input_gradient_plane(x + at, y + at, dy + at, mean_f, invstd_f, k_dy,
                             k_xhat, k_0, dx + at, inner, 1);
    }
  }
}

/* ---- inner = 1: x is [outer, channels], as channels-last tensors are ----
 * One channel's values are a column, `channels` apart: the loops above
 * would walk all of x once per channel (a cache line per element as soon
 * as channels >= 16). These walk blocks of ROW_BLOCK channels over slices
 * of the rows: a ResNet's 16 to 64 channels are one or two blocks, so
 * splitting by channels alone left the second core idle (measured on
 * ResNet-20 channels-last, 2 threads: batch norm ran on one core). A
 * channel's sum is the sum over the ROW_SLICES slices, in order, of each
 * slice's running sum in double; the slices depend only on `outer`, so the
 * result is the same bits on any number of threads. Blocks of 32 channels
 * (two cache lines of a row) measured fastest; the loops over a block are
 * `omp simd` because GCC's -O2 does not vectorise a loop of unknown trip
 * count by itself (4x slower). */
enum { ROW_BLOCK = 32, ROW_SLICES = 16 };

/* Channels [c0, c0 + count) of block `block`. */
static int64_t block_channels(int64_t block, int64_t channels, int64_t *c0) {
  *c0 = block * ROW_BLOCK;
  return channels - *c0 < ROW_BLOCK ? channels - *c0 : ROW_BLOCK;
}

/* Rows [*n0, *n1) of slice `slice` of `outer`. */
static void slice_rows(int64_t slice, int64_t outer, int64_t *n0,
                       int64_t *n1) {
  *n0 = outer * slice / ROW_SLICES;
  *n1 = outer * (slice + 1) / ROW_SLICES;
}

/* The per-slice and per-channel arrays of the rows functions, in the
 * workspace: part and part2 [ROW_SLICES * channels], the rest [channels]. */
typedef struct rows_scratch {
  double *part, *part2, *sum, *squares, *shift;
  float *finvstd, *k_dy, *k_xhat, *k_0;
} rows_scratch;

static cudl_status rows_scratch_take(cudl_context *ctx, int64_t channels,
                                     rows_scratch *w) {
  const size_t c = (size_t)channels;
  void *base;
  float *f;
  cudl_status status = cudl__cpu_workspace(
      ctx, (2 * ROW_SLICES + 3) * c * sizeof(double) + 4 * c * sizeof(float),
      &base);
  if (status != CUDL_OK) return status;
  w->part = base;
  w->part2 = w->part + ROW_SLICES * c;
  w->sum = w->part2 + ROW_SLICES * c;
  w->squares = w->sum + c;
  w->shift = w->squares + c;
  f = (float *)(w->shift + c);
  w->finvstd = f;
  w->k_dy = f + c;
  w->k_xhat = f + 2 * c;
  w->k_0 = f + 3 * c;
  return CUDL_OK;
}

/* Per slice, the sums over its rows of d = x[n, c] - shift[c] (into part)
 * and of d^2 (into part2), in one pass; then sum[c] and squares[c], the
 * slices' sums added in order. */
static void row_moments(const float *x, int64_t outer, int64_t channels,
                        const double *shift, rows_scratch *w) {
  const int64_t blocks = (channels + ROW_BLOCK - 1) / ROW_BLOCK;
  int64_t task, c;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels))
  for (task = 0; task < ROW_SLICES * blocks; ++task) {
    const int64_t slice = task / blocks;
    double a[ROW_BLOCK], b[ROW_BLOCK], s[ROW_BLOCK];
    int64_t c0, n0, n1, n, k;
    const int64_t count = block_channels(task % blocks, channels, &c0);
    slice_rows(slice, outer, &n0, &n1);
    for (k = 0; k < count; ++k) {
      a[k] = b[k] = 0.0;
      s[k] = shift[c0 + k];
    }
    for (n = n0; n < n1; ++n) {
      const float *row = x + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) {
        const double d = (double)row[k] - s[k];
        a[k] += d;
        b[k] += d * d;
      }
    }
    for (k = 0; k < count; ++k) {
      w->part[slice * channels + c0 + k] = a[k];
      w->part2[slice * channels + c0 + k] = b[k];
    }
  }
  for (c = 0; c < channels; ++c) {
    double a = 0.0, b = 0.0;
    int64_t slice;
    for (slice = 0; slice < ROW_SLICES; ++slice) {
      a += w->part[slice * channels + c];
      b += w->part2[slice * channels + c];
    }
    w->sum[c] = a;
    w->squares[c] = b;
  }
}

static cudl_status statistics_rows(cudl_context *ctx, const float *x,
                                   float momentum, float eps,
                                   float *running_mean, float *running_var,
                                   float *save_mean, float *save_invstd,
                                   int64_t outer, int64_t channels) {
  rows_scratch w;
  int64_t c;
  cudl_status status = rows_scratch_take(ctx, channels, &w);
  if (status != CUDL_OK) return status;
  for (c = 0; c < channels; ++c) w.shift[c] = first_value_shift(x[c]);
  row_moments(x, outer, channels, w.shift, &w);
  for (c = 0; c < channels; ++c)
    finish_statistics(c, (double)outer, w.shift[c], w.sum[c], w.squares[c],
                      momentum, eps, running_mean, running_var, save_mean,
                      save_invstd);
  return CUDL_OK;
}

/* One row of `channels` values, the constants per channel. */
static BN_INLINE void apply_row(const float *x, const float *gamma,
                                const float *beta, const float *mean,
                                const float *invstd, const float *residual,
                                float *y, int64_t channels,
                                const int has_residual, const int relu) {
  int64_t k;
#pragma omp simd
  for (k = 0; k < channels; ++k) {
    float v = gamma[k] * ((x[k] - mean[k]) * invstd[k]) + beta[k];
    if (has_residual) v = v + residual[k];
    y[k] = relu ? relu_of(v) : v;
  }
}

static void apply_rows(const float *x, const float *gamma, const float *beta,
                       const float *mean, const float *invstd,
                       const float *residual, int relu, float *y,
                       int64_t outer, int64_t channels) {
  int64_t n;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels))
  for (n = 0; n < outer; ++n) {
    const int64_t at = n * channels;
    const float *res = residual != NULL ? residual + at : NULL;
    if (res == NULL && !relu)
      apply_row(x + at, gamma, beta, mean, invstd, res, y + at, channels, 0, 0);
    else if (res == NULL)
      apply_row(x + at, gamma, beta, mean, invstd, res, y + at, channels, 0, 1);
    else if (!relu)
      apply_row(x + at, gamma, beta, mean, invstd, res, y + at, channels, 1, 0);
    else
      apply_row(x + at, gamma, beta, mean, invstd, res, y + at, channels, 1, 1);
  }
}

/* Rows [n0, n1) of a block's sums of g and g * xhat (a and b), g being dy,
 * or dy through the ReLU whose output is y when masked; with writes_g, g
 * into g_out as well (backward_channel_sums). */
static BN_INLINE void backward_block_sums(
    const float *x, const float *y, const float *dy, const double *mean,
    const double *invstd, int64_t n0, int64_t n1, int64_t channels, int64_t c0,
    int64_t count, float *g_out, double *a, double *b, const int masked,
    const int writes_g) {
  int64_t n, k;
  for (n = n0; n < n1; ++n) {
    const int64_t at = n * channels + c0;
    const float *dy_row = dy + at, *x_row = x + at;
    const float *y_row = masked ? y + at : NULL;
    float *g_row = writes_g ? g_out + at : NULL;
#pragma omp simd
    for (k = 0; k < count; ++k) {
      const float g = masked ? through_relu(y_row[k], dy_row[k]) : dy_row[k];
      if (writes_g) g_row[k] = g;
      a[k] += g;
      b[k] += g * (x_row[k] - mean[k]) * invstd[k];
    }
  }
}

/* One row's dx. */
static BN_INLINE void input_gradient_row(const float *x, const float *y,
                                         const float *dy, const float *mean,
                                         const float *invstd,
                                         const float *k_dy, const float *k_xhat,
                                         const float *k_0, float *dx,
                                         int64_t channels, const int masked) {
  int64_t k;
#pragma omp simd
  for (k = 0; k < channels; ++k) {
    const float g = masked ? through_relu(y[k], dy[k]) : dy[k];
    const float xhat = (x[k] - mean[k]) * invstd[k];
    dx[k] = k_dy[k] * g + (k_xhat[k] * xhat + k_0[k]);
  }
}

static cudl_status backward_rows(cudl_context *ctx, const float *x,
                                 const float *y, const float *dy,
                                 const float *gamma, const float *save_mean,
                                 const float *save_invstd, float *dx,
                                 float *dresidual, float *dgamma, float *dbeta,
                                 int64_t outer, int64_t channels) {
  const int64_t blocks = (channels + ROW_BLOCK - 1) / ROW_BLOCK;
  const double m = (double)outer;
  rows_scratch w;
  int64_t task, c, n;
  cudl_status status = rows_scratch_take(ctx, channels, &w);
  if (status != CUDL_OK) return status;
  /* Per slice: the sums of g (part) and of g * xhat (part2). */
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels))
  for (task = 0; task < ROW_SLICES * blocks; ++task) {
    const int64_t slice = task / blocks;
    double a[ROW_BLOCK], b[ROW_BLOCK], mean[ROW_BLOCK], invstd[ROW_BLOCK];
    int64_t c0, n0, n1, k;
    const int64_t count = block_channels(task % blocks, channels, &c0);
    slice_rows(slice, outer, &n0, &n1);
    for (k = 0; k < count; ++k) {
      mean[k] = save_mean[c0 + k];
      invstd[k] = save_invstd[c0 + k];
      a[k] = b[k] = 0.0;
    }
    if (dresidual != NULL)
      backward_block_sums(x, y, dy, mean, invstd, n0, n1, channels, c0, count,
                          dresidual, a, b, 1, 1);
    else if (y != NULL)
      backward_block_sums(x, y, dy, mean, invstd, n0, n1, channels, c0, count,
                          NULL, a, b, 1, 0);
    else
      backward_block_sums(x, y, dy, mean, invstd, n0, n1, channels, c0, count,
                          NULL, a, b, 0, 0);
    for (k = 0; k < count; ++k) {
      w.part[slice * channels + c0 + k] = a[k];
      w.part2[slice * channels + c0 + k] = b[k];
    }
  }
  for (c = 0; c < channels; ++c) {
    double a = 0.0, b = 0.0, scale;
    int64_t slice;
    for (slice = 0; slice < ROW_SLICES; ++slice) {
      a += w.part[slice * channels + c];
      b += w.part2[slice * channels + c];
    }
    dbeta[c] = (float)a;
    dgamma[c] = (float)b;
    /* dx as the float affine map of g and xhat of backward_planes. */
    scale = m > 0.0 ? gamma[c] * (double)save_invstd[c] / m : 0.0;
    w.k_dy[c] = (float)(scale * m);
    w.k_xhat[c] = (float)(-scale * b);
    w.k_0[c] = (float)(-scale * a);
  }
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels))
  for (n = 0; n < outer; ++n) {
    const int64_t at = n * channels;
    /* g is dresidual where the sums wrote it. */
    if (dresidual != NULL)
      input_gradient_row(x + at, NULL, dresidual + at, save_mean, save_invstd,
                         w.k_dy, w.k_xhat, w.k_0, dx + at, channels, 0);
    else if (y == NULL)
      input_gradient_row(x + at, NULL, dy + at, save_mean, save_invstd, w.k_dy,
                         w.k_xhat, w.k_0, dx + at, channels, 0);
    else
      input_gradient_row(x + at, y + at, dy + at, save_mean, save_invstd,
                         w.k_dy, w.k_xhat, w.k_0, dx + at, channels, 1);
  }
  return CUDL_OK;
}

/* ---- the entries ---- */

cudl_status cudl__cpu_batchnorm_statistics(
    cudl_context *ctx, const void *x, float momentum, float eps,
    float *running_mean, float *running_var, float *save_mean,
    float *save_invstd, int64_t outer, int64_t channels, int64_t inner) {
  if (inner == 1)
    return statistics_rows(ctx, x, momentum, eps, running_mean, running_var,
                           save_mean, save_invstd, outer, channels);
  statistics_planes(x, momentum, eps, running_mean, running_var, save_mean,
                    save_invstd, outer, channels, inner);
  return CUDL_OK;
}

cudl_status cudl__cpu_batchnorm_apply(cudl_context *ctx, const void *x,
                                      const float *gamma, const float *beta,
                                      const float *mean, const float *invstd,
                                      const void *residual, int relu, void *y,
                                      int64_t outer, int64_t channels,
                                      int64_t inner) {
  (void)ctx;
  if (inner == 1)
    apply_rows(x, gamma, beta, mean, invstd, residual, relu, y, outer,
               channels);
  else
    apply_planes(x, gamma, beta, mean, invstd, residual, relu, y, outer,
                 channels, inner);
  return CUDL_OK;
}

cudl_status cudl__cpu_batchnorm_relu_backward(
    cudl_context *ctx, const void *x, const void *y, const void *dy,
    const float *gamma, const float *save_mean, const float *save_invstd,
    void *dx, void *dresidual, float *dgamma, float *dbeta, int64_t outer,
    int64_t channels, int64_t inner) {
  if (inner == 1)
    return backward_rows(ctx, x, y, dy, gamma, save_mean, save_invstd, dx,
                         dresidual, dgamma, dbeta, outer, channels);
  backward_planes(x, y, dy, gamma, save_mean, save_invstd, dx, dresidual,
                  dgamma, dbeta, outer, channels, inner);
  return CUDL_OK;
}

cudl_status cudl__cpu_batchnorm_forward_training(
    cudl_context *ctx, const void *x, const float *gamma, const float *beta,
    float momentum, float eps, float *running_mean, float *running_var,
    void *y, float *save_mean, float *save_invstd, int64_t outer,
    int64_t channels, int64_t inner) {
  cudl_status status = cudl__cpu_batchnorm_statistics(
      ctx, x, momentum, eps, running_mean, running_var, save_mean, save_invstd,
      outer, channels, inner);
  if (status != CUDL_OK) return status;
  return cudl__cpu_batchnorm_apply(ctx, x, gamma, beta, save_mean, save_invstd,
                                   NULL, 0, y, outer, channels, inner);
}

cudl_status cudl__cpu_batchnorm_forward_inference(
    cudl_context *ctx, const void *x, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, float eps, void *y,
    int64_t outer, int64_t channels, int64_t inner) {
  void *space;
  float *invstd;
  int64_t c;
  cudl_status status =
      cudl__cpu_workspace(ctx, (size_t)channels * sizeof(float), &space);
  if (status != CUDL_OK) return status;
  invstd = space;
  for (c = 0; c < channels; ++c)
    invstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
  return cudl__cpu_batchnorm_apply(ctx, x, gamma, beta, running_mean, invstd,
                                   NULL, 0, y, outer, channels, inner);
}

cudl_status cudl__cpu_batchnorm_backward(
    cudl_context *ctx, const void *x, const void *dy, const float *gamma,
    const float *save_mean, const float *save_invstd, void *dx, float *dgamma,
    float *dbeta, int64_t outer, int64_t channels, int64_t inner) {
  return cudl__cpu_batchnorm_relu_backward(ctx, x, NULL, dy, gamma, save_mean,
                                           save_invstd, dx, NULL, dgamma, dbeta,
                                           outer, channels, inner);
}
