/* cpu_batchnorm.c - batch normalisation on the CPU: two-pass statistics
 * summed in double (in lanes, see channel_sums), one channel per
 * iteration. */
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
