/* cpu_batchnorm.c - batch normalisation on the CPU: two-pass statistics
 * summed in double (in lanes, see channel_sums), one channel per
 * iteration; channels-last (inner = 1) blocks of channels over fixed slices
 * of the rows, with the same arithmetic (see the *_rows functions). */
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

/* Whether the loops are worth a parallel region. */
#define ROWS_PARALLEL(outer, channels) ((outer) * (channels) > 32768)

/* part[slice * channels + c] = the sum over slice's rows of x[n, c] (shift
 * NULL) or of (x[n, c] - shift[c])^2; then total[c] = the slices' sums
 * added in order. */
static void row_sums(const float *x, int64_t outer, int64_t channels,
                     const double *shift, double *part, double *total) {
  const int64_t blocks = (channels + ROW_BLOCK - 1) / ROW_BLOCK;
  int64_t task, c;
#pragma omp parallel for schedule(static) if (ROWS_PARALLEL(outer, channels))
  for (task = 0; task < ROW_SLICES * blocks; ++task) {
    const int64_t slice = task / blocks;
    double sum[ROW_BLOCK];
    int64_t c0, n0, n1, n, k;
    const int64_t count = block_channels(task % blocks, channels, &c0);
    slice_rows(slice, outer, &n0, &n1);
    for (k = 0; k < count; ++k) sum[k] = 0.0;
    for (n = n0; n < n1; ++n) {
      const float *row = x + n * channels + c0;
      if (shift == NULL) {
#pragma omp simd
        for (k = 0; k < count; ++k) sum[k] += (double)row[k];
      } else {
#pragma omp simd
        for (k = 0; k < count; ++k) {
          const double d = (double)row[k] - shift[c0 + k];
          sum[k] += d * d;
        }
      }
    }
    for (k = 0; k < count; ++k) part[slice * channels + c0 + k] = sum[k];
  }
  for (c = 0; c < channels; ++c) {
    double t = 0.0;
    int64_t slice;
    for (slice = 0; slice < ROW_SLICES; ++slice) t += part[slice * channels + c];
    total[c] = t;
  }
}

/* y[n, c] = a[c] * ((x[n, c] - mean[c]) * invstd[c]) + b[c]: the
 * normalisation's arithmetic, in its order. */
static void rows_affine(const float *x, const float *a, const float *mean,
                        const float *invstd, const float *b, float *y,
                        int64_t outer, int64_t channels) {
  int64_t n;
#pragma omp parallel for schedule(static) if (ROWS_PARALLEL(outer, channels))
  for (n = 0; n < outer; ++n) {
    const float *row = x + n * channels;
    float *out = y + n * channels;
    int64_t k;
#pragma omp simd
    for (k = 0; k < channels; ++k)
      out[k] = a[k] * ((row[k] - mean[k]) * invstd[k]) + b[k];
  }
}

/* The per-slice and per-channel arrays of the rows functions, in the
 * workspace: part and part2 [ROW_SLICES * channels], the rest [channels]. */
typedef struct rows_scratch {
  double *part, *part2, *sum, *squares, *mean;
  float *fmean, *finvstd, *k_dy, *k_xhat, *k_0;
} rows_scratch;

static cudl_status rows_scratch_take(cudl_context *ctx, int64_t channels,
                                     rows_scratch *w) {
  const size_t c = (size_t)channels;
  void *base;
  float *f;
  cudl_status status = cudl__cpu_workspace(
      ctx, (2 * ROW_SLICES + 3) * c * sizeof(double) + 5 * c * sizeof(float),
      &base);
  if (status != CUDL_OK) return status;
  w->part = base;
  w->part2 = w->part + ROW_SLICES * c;
  w->sum = w->part2 + ROW_SLICES * c;
  w->squares = w->sum + c;
  w->mean = w->squares + c;
  f = (float *)(w->mean + c);
  w->fmean = f;
  w->finvstd = f + c;
  w->k_dy = f + 2 * c;
  w->k_xhat = f + 3 * c;
  w->k_0 = f + 4 * c;
  return CUDL_OK;
}

static cudl_status forward_training_rows(
    cudl_context *ctx, const float *x, const float *gamma, const float *beta,
    float momentum, float eps, float *running_mean, float *running_var,
    float *y, float *save_mean, float *save_invstd, int64_t outer,
    int64_t channels) {
  const double m = (double)outer;
  rows_scratch w;
  int64_t c;
  cudl_status status = rows_scratch_take(ctx, channels, &w);
  if (status != CUDL_OK) return status;
  /* Two passes: the mean, then squared deviations from it. */
  row_sums(x, outer, channels, NULL, w.part, w.sum);
  for (c = 0; c < channels; ++c) w.mean[c] = w.sum[c] / m;
  row_sums(x, outer, channels, w.mean, w.part, w.squares);
  for (c = 0; c < channels; ++c) {
    const double var = w.squares[c] / m;
    w.fmean[c] = (float)w.mean[c];
    w.finvstd[c] = (float)(1.0 / sqrt(var + (double)eps));
    save_mean[c] = w.fmean[c];
    save_invstd[c] = w.finvstd[c];
    running_mean[c] =
        (float)((1.0 - momentum) * running_mean[c] + momentum * w.mean[c]);
    running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                             momentum * var * m / (m - 1.0));
  }
  rows_affine(x, gamma, w.fmean, w.finvstd, beta, y, outer, channels);
  return CUDL_OK;
}

static cudl_status forward_inference_rows(
    cudl_context *ctx, const float *x, const float *gamma, const float *beta,
    const float *running_mean, const float *running_var, float eps, float *y,
    int64_t outer, int64_t channels) {
  rows_scratch w;
  int64_t c;
  cudl_status status = rows_scratch_take(ctx, channels, &w);
  if (status != CUDL_OK) return status;
  for (c = 0; c < channels; ++c)
    w.finvstd[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
  rows_affine(x, gamma, running_mean, w.finvstd, beta, y, outer, channels);
  return CUDL_OK;
}

static cudl_status backward_rows(cudl_context *ctx, const float *x,
                                 const float *dy, const float *gamma,
                                 const float *save_mean,
                                 const float *save_invstd, float *dx,
                                 float *dgamma, float *dbeta, int64_t outer,
                                 int64_t channels) {
  const int64_t blocks = (channels + ROW_BLOCK - 1) / ROW_BLOCK;
  const double m = (double)outer;
  rows_scratch w;
  int64_t task, c, n;
  cudl_status status = rows_scratch_take(ctx, channels, &w);
  if (status != CUDL_OK) return status;
  /* Per slice: the sums of dy (part) and of dy * xhat (part2). */
#pragma omp parallel for schedule(static) if (ROWS_PARALLEL(outer, channels))
  for (task = 0; task < ROW_SLICES * blocks; ++task) {
    const int64_t slice = task / blocks;
    double a[ROW_BLOCK], b[ROW_BLOCK], mean[ROW_BLOCK], invstd[ROW_BLOCK];
    int64_t c0, n0, n1, i, k;
    const int64_t count = block_channels(task % blocks, channels, &c0);
    slice_rows(slice, outer, &n0, &n1);
    for (k = 0; k < count; ++k) {
      mean[k] = save_mean[c0 + k];
      invstd[k] = save_invstd[c0 + k];
      a[k] = b[k] = 0.0;
    }
    for (i = n0; i < n1; ++i) {
      const float *dy_row = dy + i * channels + c0;
      const float *x_row = x + i * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) {
        a[k] += dy_row[k];
        b[k] += dy_row[k] * (x_row[k] - mean[k]) * invstd[k];
      }
    }
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
    /* dx as the float affine map of dy and xhat of the loops below. */
    scale = m > 0.0 ? gamma[c] * (double)save_invstd[c] / m : 0.0;
    w.k_dy[c] = (float)(scale * m);
    w.k_xhat[c] = (float)(-scale * b);
    w.k_0[c] = (float)(-scale * a);
  }
#pragma omp parallel for schedule(static) if (ROWS_PARALLEL(outer, channels))
  for (n = 0; n < outer; ++n) {
    const float *dy_row = dy + n * channels;
    const float *x_row = x + n * channels;
    float *dx_row = dx + n * channels;
    int64_t k;
#pragma omp simd
    for (k = 0; k < channels; ++k) {
      const float xhat = (x_row[k] - save_mean[k]) * save_invstd[k];
      dx_row[k] = w.k_dy[k] * dy_row[k] + (w.k_xhat[k] * xhat + w.k_0[k]);
    }
  }
  return CUDL_OK;
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
    return forward_training_rows(ctx, x, gamma, beta, momentum, eps,
                                 running_mean, running_var, y, save_mean,
                                 save_invstd, outer, channels);
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
    return forward_inference_rows(ctx, x, gamma, beta, running_mean,
                                  running_var, eps, y, outer, channels);
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
    return backward_rows(ctx, x, dy, gamma, save_mean, save_invstd, dx,
                         dgamma, dbeta, outer, channels);
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
