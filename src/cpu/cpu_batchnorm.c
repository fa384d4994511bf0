/* cpu_batchnorm.c - batch normalisation on the CPU: two-pass statistics
 * summed in double (in lanes, see channel_sums), one channel per
 * iteration; channels-last (inner = 1) a block of channels per iteration,
 * with the same arithmetic (see the *_rows functions). */
#include <math.h>

#include "cpu/cpu_internal.h"

/* Element i of channel c's m = outer * inner values. */
#define BN_INDEX(n, c, i) (((n)*channels + (c)) * inner + (i))

/* The channel sums use independent double accumulators (element i of a
 * row goes to lane i % LANES) so that the loops vectorise, then add the
 * lanes in order (cpu_internal.h). */
#define LANES CUDL_CPU_LANES
#define add_lanes cudl__cpu_lane_total

/* Sum over channel c of x (squares NULL), or of (x - shift)^2 into
 * *squares. Two loops rather than one with a branch, so each vectorises. */
static void channel_sums(const float *x, int64_t outer, int64_t channels,
                         int64_t inner, int64_t c, double shift, double *sum,
                         double *squares) {
  double lane[LANES] = {0};
  int64_t n, i;
  int j;
  for (n = 0; n < outer; ++n) {
    const float *row = x + BN_INDEX(n, c, 0);
    if (squares == NULL) {
      for (i = 0; i + LANES <= inner; i += LANES)
        for (j = 0; j < LANES; ++j) lane[j] += (double)row[i + j];
      for (; i < inner; ++i) lane[i % LANES] += (double)row[i];
    } else {
      for (i = 0; i + LANES <= inner; i += LANES)
        for (j = 0; j < LANES; ++j) {
          const double d = (double)row[i + j] - shift;
          lane[j] += d * d;
        }
      for (; i < inner; ++i) {
        const double d = (double)row[i] - shift;
        lane[i % LANES] += d * d;
      }
    }
  }
  if (squares == NULL)
    *sum = add_lanes(lane);
  else
    *squares = add_lanes(lane);
}

/* ---- inner = 1: x is [outer, channels], as channels-last tensors are ----
 * One channel's values are a column, `channels` apart: the loops above
 * would walk all of x once per channel (a cache line per element as soon
 * as channels >= 16). These take ROW_BLOCK channels at a time, walking the
 * rows once per block, and do each channel's arithmetic in the order the
 * loops above do for inner = 1: every value of a row goes to lane 0 of
 * channel_sums, so its sum is the plain running sum over the rows (lane 0
 * starts at +0 and so is never -0: adding the empty lanes changes
 * nothing). The results are the same bits, and no less deterministic.
 * Blocks of 32 channels (two cache lines of a row) measured fastest; the
 * loops over a block are `omp simd` because GCC's -O2 does not vectorise a
 * loop of unknown trip count by itself (4x slower). */
enum { ROW_BLOCK = 32 };

/* Channels [c0, c0 + count) of the block that iteration `block` owns. */
static int64_t block_channels(int64_t block, int64_t channels, int64_t *c0) {
  *c0 = block * ROW_BLOCK;
  return channels - *c0 < ROW_BLOCK ? channels - *c0 : ROW_BLOCK;
}

static void forward_training_rows(const float *x, const float *gamma,
                                  const float *beta, float momentum, float eps,
                                  float *running_mean, float *running_var,
                                  float *y, float *save_mean,
                                  float *save_invstd, int64_t outer,
                                  int64_t channels) {
  const int64_t blocks = (channels + ROW_BLOCK - 1) / ROW_BLOCK;
  const double m = (double)outer;
  int64_t block;
#pragma omp parallel for schedule(static) if (outer * channels > 32768)
  for (block = 0; block < blocks; ++block) {
    double sum[ROW_BLOCK], squares[ROW_BLOCK], mean[ROW_BLOCK];
    float fmean[ROW_BLOCK], invstd[ROW_BLOCK];
    int64_t c0, n, k;
    const int64_t count = block_channels(block, channels, &c0);
    for (k = 0; k < count; ++k) sum[k] = squares[k] = 0.0;
    for (n = 0; n < outer; ++n) {
      const float *row = x + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) sum[k] += (double)row[k];
    }
    for (k = 0; k < count; ++k) mean[k] = sum[k] / m;
    for (n = 0; n < outer; ++n) {
      const float *row = x + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) {
        const double d = (double)row[k] - mean[k];
        squares[k] += d * d;
      }
    }
    for (k = 0; k < count; ++k) {
      const int64_t c = c0 + k;
      const double var = squares[k] / m;
      fmean[k] = (float)mean[k];
      invstd[k] = (float)(1.0 / sqrt(var + (double)eps));
      save_mean[c] = fmean[k];
      save_invstd[c] = invstd[k];
      running_mean[c] =
          (float)((1.0 - momentum) * running_mean[c] + momentum * mean[k]);
      running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                               momentum * var * m / (m - 1.0));
    }
    for (n = 0; n < outer; ++n) {
      const float *row = x + n * channels + c0;
      float *out = y + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k)
        out[k] =
            gamma[c0 + k] * ((row[k] - fmean[k]) * invstd[k]) + beta[c0 + k];
    }
  }
}

static void forward_inference_rows(const float *x, const float *gamma,
                                   const float *beta, const float *running_mean,
                                   const float *running_var, float eps,
                                   float *y, int64_t outer, int64_t channels) {
  const int64_t blocks = (channels + ROW_BLOCK - 1) / ROW_BLOCK;
  int64_t block;
#pragma omp parallel for schedule(static) if (outer * channels > 32768)
  for (block = 0; block < blocks; ++block) {
    float invstd[ROW_BLOCK];
    int64_t c0, n, k;
    const int64_t count = block_channels(block, channels, &c0);
    for (k = 0; k < count; ++k)
      invstd[k] =
          (float)(1.0 / sqrt((double)running_var[c0 + k] + (double)eps));
    for (n = 0; n < outer; ++n) {
      const float *row = x + n * channels + c0;
      float *out = y + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k)
        out[k] = gamma[c0 + k] * ((row[k] - running_mean[c0 + k]) * invstd[k]) +
                 beta[c0 + k];
    }
  }
}

static void backward_rows(const float *x, const float *dy, const float *gamma,
                          const float *save_mean, const float *save_invstd,
                          float *dx, float *dgamma, float *dbeta, int64_t outer,
                          int64_t channels) {
  const int64_t blocks = (channels + ROW_BLOCK - 1) / ROW_BLOCK;
  const double m = (double)outer;
  int64_t block;
#pragma omp parallel for schedule(static) if (outer * channels > 32768)
  for (block = 0; block < blocks; ++block) {
    double mean[ROW_BLOCK], invstd[ROW_BLOCK], a[ROW_BLOCK], b[ROW_BLOCK];
    float mean_f[ROW_BLOCK], invstd_f[ROW_BLOCK], k_dy[ROW_BLOCK],
        k_xhat[ROW_BLOCK], k_0[ROW_BLOCK];
    int64_t c0, n, k;
    const int64_t count = block_channels(block, channels, &c0);
    for (k = 0; k < count; ++k) {
      mean[k] = save_mean[c0 + k];
      invstd[k] = save_invstd[c0 + k];
      a[k] = b[k] = 0.0;
    }
    for (n = 0; n < outer; ++n) {
      const float *dy_row = dy + n * channels + c0;
      const float *x_row = x + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) {
        a[k] += dy_row[k];
        b[k] += dy_row[k] * (x_row[k] - mean[k]) * invstd[k];
      }
    }
    for (k = 0; k < count; ++k) {
      const double scale = gamma[c0 + k] * invstd[k] / m;
      dbeta[c0 + k] = (float)a[k];
      dgamma[c0 + k] = (float)b[k];
      mean_f[k] = (float)mean[k];
      invstd_f[k] = (float)invstd[k];
      k_dy[k] = (float)(scale * m);
      k_xhat[k] = (float)(-scale * b[k]);
      k_0[k] = (float)(-scale * a[k]);
    }
    if (m == 0.0) continue;
    for (n = 0; n < outer; ++n) {
      const float *dy_row = dy + n * channels + c0;
      const float *x_row = x + n * channels + c0;
      float *dx_row = dx + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) {
        const float xhat = (x_row[k] - mean_f[k]) * invstd_f[k];
        dx_row[k] = k_dy[k] * dy_row[k] + (k_xhat[k] * xhat + k_0[k]);
      }
    }
  }
}

cudl_status cudl__cpu_batchnorm_forward_training(
    cudl_context *ctx, const void *x_, const float *gamma, const float *beta,
    float momentum, float eps, float *running_mean, float *running_var,
    void *y_, float *save_mean, float *save_invstd, int64_t outer,
    int64_t channels, int64_t inner) {
  const float *x = x_;
  float *y = y_;
  const double m = (double)(outer * inner);
  int64_t c;
  (void)ctx;
  if (inner == 1) {
    forward_training_rows(x, gamma, beta, momentum, eps, running_mean,
                          running_var, y, save_mean, save_invstd, outer,
                          channels);
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * channels * inner > 32768)
  for (c = 0; c < channels; ++c) {
    double sum = 0.0, squares = 0.0, mean, var;
    float fmean, invstd;
    int64_t n, i;
    /* Two passes: the mean, then squared deviations from it. */
    channel_sums(x, outer, channels, inner, c, 0.0, &sum, NULL);
    mean = sum / m;
    channel_sums(x, outer, channels, inner, c, mean, NULL, &squares);
    var = squares / m;
    fmean = (float)mean;
    invstd = (float)(1.0 / sqrt(var + (double)eps));
    for (n = 0; n < outer; ++n)
      for (i = 0; i < inner; ++i) {
        const int64_t k = BN_INDEX(n, c, i);
        y[k] = gamma[c] * ((x[k] - fmean) * invstd) + beta[c];
      }
    save_mean[c] = fmean;
    save_invstd[c] = invstd;
    running_mean[c] =
        (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
    running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                             momentum * var * m / (m - 1.0));
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_batchnorm_forward_inference(
    cudl_context *ctx, const void *x_, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, float eps, void *y_,
    int64_t outer, int64_t channels, int64_t inner) {
  const float *x = x_;
  float *y = y_;
  int64_t c;
  (void)ctx;
  if (inner == 1) {
    forward_inference_rows(x, gamma, beta, running_mean, running_var, eps, y,
                           outer, channels);
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * channels * inner > 32768)
  for (c = 0; c < channels; ++c) {
    const float invstd =
        (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
    int64_t n, i;
    for (n = 0; n < outer; ++n)
      for (i = 0; i < inner; ++i) {
        const int64_t k = BN_INDEX(n, c, i);
        y[k] = gamma[c] * ((x[k] - running_mean[c]) * invstd) + beta[c];
      }
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_batchnorm_backward(
    cudl_context *ctx, const void *x_, const void *dy_, const float *gamma,
    const float *save_mean, const float *save_invstd, void *dx_, float *dgamma,
    float *dbeta, int64_t outer, int64_t channels, int64_t inner) {
  const float *x = x_;
  const float *dy = dy_;
  float *dx = dx_;
  const double m = (double)(outer * inner);
  int64_t c;
  (void)ctx;
  if (inner == 1) {
    backward_rows(x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                  outer, channels);
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * channels * inner > 32768)
  for (c = 0; c < channels; ++c) {
    const double mean = save_mean[c], invstd = save_invstd[c];
    double sum_dy = 0.0, sum_dy_xhat = 0.0, scale;
    double a[LANES] = {0}, b[LANES] = {0};
    int64_t n, i;
    int j;
    for (n = 0; n < outer; ++n) {
      const float *dy_row = dy + BN_INDEX(n, c, 0);
      const float *x_row = x + BN_INDEX(n, c, 0);
      for (i = 0; i + LANES <= inner; i += LANES)
        for (j = 0; j < LANES; ++j) {
          a[j] += dy_row[i + j];
          b[j] += dy_row[i + j] * (x_row[i + j] - mean) * invstd;
        }
      for (; i < inner; ++i) {
        a[i % LANES] += dy_row[i];
        b[i % LANES] += dy_row[i] * (x_row[i] - mean) * invstd;
      }
    }
    sum_dy = add_lanes(a);
    sum_dy_xhat = add_lanes(b);
    dbeta[c] = (float)sum_dy;
    dgamma[c] = (float)sum_dy_xhat;
    if (m == 0.0) continue;
    scale = gamma[c] * invstd / m;
    {
      /* dx = scale * (m dy - sum_dy - xhat sum_dy_xhat) as a float affine
       * map of dy and xhat, its coefficients rounded once from double: it
       * vectorises 16 wide (1.6x faster than the double form here), and
       * xhat is formed before the products, so a large channel mean does
       * not cancel. */
      const float mean_f = (float)mean, invstd_f = (float)invstd;
      const float k_dy = (float)(scale * m),
                  k_xhat = (float)(-scale * sum_dy_xhat);
      const float k_0 = (float)(-scale * sum_dy);
      for (n = 0; n < outer; ++n) {
        const float *dy_row = dy + BN_INDEX(n, c, 0);
        const float *x_row = x + BN_INDEX(n, c, 0);
        float *dx_row = dx + BN_INDEX(n, c, 0);
        for (i = 0; i < inner; ++i) {
          const float xhat = (x_row[i] - mean_f) * invstd_f;
          dx_row[i] = k_dy * dy_row[i] + (k_xhat * xhat + k_0);
        }
      }
    }
  }
  return CUDL_OK;
}
