/* cpu_batchnorm_loops.h - the loops of cpu_batchnorm.c over one storage
 * type of x, y, dy, dx and the residual, included once per type with
 *   BN_T          the element type (float, or uint16_t holding bf16)
 *   BN_LOAD(v)    an element widened to float (exact)
 *   BN_STORE(v)   a float rounded to an element (once)
 *   BN_NAME(f)    f's name for this type
 *   BN_ENTRY(op)  the backend entry of batch-norm step op for this type
 * Every value is computed in f32 (sums in double) from the widened
 * elements and rounded once on the way out: the 16-bit definition of
 * ops.def, without the f32 copies of the whole tensors that widening
 * around the f32 entry costs (cpu_lowp.c), so a bf16 batch norm moves half
 * the bytes of an f32 one. The helpers they share (the ReLU and its mask,
 * the shift, the statistics' finish, the row blocks and slices, the
 * scratch) are in cpu_batchnorm.c, above the includes. No include guard:
 * included once per type. */

/* Each function's name for this type. */
#define channel_moments BN_NAME(channel_moments)
#define statistics_planes BN_NAME(statistics_planes)
#define apply_plane BN_NAME(apply_plane)
#define apply_planes BN_NAME(apply_planes)
#define backward_channel_sums BN_NAME(backward_channel_sums)
#define input_gradient_plane BN_NAME(input_gradient_plane)
#define backward_planes BN_NAME(backward_planes)
#define row_moments BN_NAME(row_moments)
#define statistics_rows BN_NAME(statistics_rows)
#define apply_row BN_NAME(apply_row)
#define apply_rows BN_NAME(apply_rows)
#define backward_block_sums BN_NAME(backward_block_sums)
#define input_gradient_row BN_NAME(input_gradient_row)
#define backward_rows BN_NAME(backward_rows)

/* ---- inner > 1: a channel per iteration ---- */

/* Channel c's sums of d = x - shift and of d^2, in lanes, in one pass. */
CUDL_CPU_WIDE_CLONES static void channel_moments(const BN_T *x, int64_t outer,
                                                 int64_t channels,
                                                 int64_t inner, int64_t c,
                                                 double shift, double *sum,
                                                 double *squares) {
  double a[LANES] = {0}, b[LANES] = {0};
  int64_t n, i;
  int j;
  for (n = 0; n < outer; ++n) {
    const BN_T *row = x + BN_INDEX(n, c, 0);
    for (i = 0; i + LANES <= inner; i += LANES)
      for (j = 0; j < LANES; ++j) {
        const double d = (double)BN_LOAD(row[i + j]) - shift;
        a[j] += d;
        b[j] += d * d;
      }
    for (; i < inner; ++i) {
      const double d = (double)BN_LOAD(row[i]) - shift;
      a[i % LANES] += d;
      b[i % LANES] += d * d;
    }
  }
  *sum = add_lanes(a);
  *squares = add_lanes(b);
}

CUDL_CPU_WIDE_CLONES static void statistics_planes(
    const BN_T *x, float momentum, float eps, float *running_mean,
    float *running_var, float *save_mean, float *save_invstd, int64_t outer,
    int64_t channels, int64_t inner) {
  const double m = (double)(outer * inner);
  int64_t c;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels * inner))
  for (c = 0; c < channels; ++c) {
    const double shift = first_value_shift(BN_LOAD(x[BN_INDEX(0, c, 0)]));
    double sum, squares;
    channel_moments(x, outer, channels, inner, c, shift, &sum, &squares);
    finish_statistics(c, m, shift, sum, squares, momentum, eps, running_mean,
                      running_var, save_mean, save_invstd);
  }
}

/* One plane (or row) of `count` values of one channel. */
static BN_INLINE void apply_plane(const BN_T *x, float gamma, float beta,
                                  float mean, float invstd,
                                  const BN_T *residual, BN_T *y, int64_t count,
                                  const int has_residual, const int relu) {
  int64_t i;
#pragma omp simd
  for (i = 0; i < count; ++i) {
    float v = gamma * ((BN_LOAD(x[i]) - mean) * invstd) + beta;
    if (has_residual) v = v + BN_LOAD(residual[i]);
    y[i] = BN_STORE(relu ? relu_of(v) : v);
  }
}

CUDL_CPU_WIDE_CLONES static void apply_planes(
    const BN_T *x, const float *gamma, const float *beta, const float *mean,
    const float *invstd, const BN_T *residual, int relu, BN_T *y, int64_t outer,
    int64_t channels, int64_t inner) {
  int64_t plane;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels * inner))
  for (plane = 0; plane < outer * channels; ++plane) {
    const int64_t c = plane % channels, at = plane * inner;
    const BN_T *res = residual != NULL ? residual + at : NULL;
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
    const BN_T *x, const BN_T *y, const BN_T *dy, double mean, double invstd,
    int64_t outer, int64_t channels, int64_t inner, int64_t c, BN_T *g_out,
    double *sum_g, double *sum_g_xhat, const int masked, const int writes_g) {
  double a[LANES] = {0}, b[LANES] = {0};
  int64_t n, i;
  int j;
  for (n = 0; n < outer; ++n) {
    const int64_t at = BN_INDEX(n, c, 0);
    const BN_T *dy_row = dy + at, *x_row = x + at;
    const BN_T *y_row = masked ? y + at : NULL;
    BN_T *g_row = writes_g ? g_out + at : NULL;
    for (i = 0; i + LANES <= inner; i += LANES)
      for (j = 0; j < LANES; ++j) {
        const float g =
            masked ? through_relu(BN_LOAD(y_row[i + j]), BN_LOAD(dy_row[i + j]))
                   : BN_LOAD(dy_row[i + j]);
        if (writes_g) g_row[i + j] = BN_STORE(g);
        a[j] += g;
        b[j] += g * (BN_LOAD(x_row[i + j]) - mean) * invstd;
      }
    for (; i < inner; ++i) {
      const float g = masked
                          ? through_relu(BN_LOAD(y_row[i]), BN_LOAD(dy_row[i]))
                          : BN_LOAD(dy_row[i]);
      if (writes_g) g_row[i] = BN_STORE(g);
      a[i % LANES] += g;
      b[i % LANES] += g * (BN_LOAD(x_row[i]) - mean) * invstd;
    }
  }
  *sum_g = add_lanes(a);
  *sum_g_xhat = add_lanes(b);
}

/* dx = k_dy * g + (k_xhat * xhat + k_0) over `count` values of a channel. */
static BN_INLINE void input_gradient_plane(const BN_T *x, const BN_T *y,
                                           const BN_T *dy, float mean,
                                           float invstd, float k_dy,
                                           float k_xhat, float k_0, BN_T *dx,
                                           int64_t count, const int masked) {
  int64_t i;
#pragma omp simd
  for (i = 0; i < count; ++i) {
    const float g =
        masked ? through_relu(BN_LOAD(y[i]), BN_LOAD(dy[i])) : BN_LOAD(dy[i]);
    const float xhat = (BN_LOAD(x[i]) - mean) * invstd;
    dx[i] = BN_STORE(k_dy * g + (k_xhat * xhat + k_0));
  }
}

CUDL_CPU_WIDE_CLONES static void backward_planes(
    const BN_T *x, const BN_T *y, const BN_T *dy, const float *gamma,
    const float *save_mean, const float *save_invstd, BN_T *dx, BN_T *dresidual,
    float *dgamma, float *dbeta, int64_t outer, int64_t channels,
    int64_t inner) {
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

/* ---- inner = 1: x is [outer, channels] (cpu_batchnorm.c) ---- */

/* Per slice, the sums over its rows of d = x[n, c] - shift[c] (into part)
 * and of d^2 (into part2), in one pass; then sum[c] and squares[c], the
 * slices' sums added in order. */
CUDL_CPU_WIDE_CLONES static void row_moments(const BN_T *x, int64_t outer,
                                             int64_t channels,
                                             const double *shift,
                                             rows_scratch *w) {
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
      const BN_T *row = x + n * channels + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) {
        const double d = (double)BN_LOAD(row[k]) - s[k];
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

static cudl_status statistics_rows(cudl_context *ctx, const BN_T *x,
                                   float momentum, float eps,
                                   float *running_mean, float *running_var,
                                   float *save_mean, float *save_invstd,
                                   int64_t outer, int64_t channels) {
  rows_scratch w;
  int64_t c;
  cudl_status status = rows_scratch_take(ctx, channels, &w);
  if (status != CUDL_OK) return status;
  for (c = 0; c < channels; ++c) w.shift[c] = first_value_shift(BN_LOAD(x[c]));
  row_moments(x, outer, channels, w.shift, &w);
  for (c = 0; c < channels; ++c)
    finish_statistics(c, (double)outer, w.shift[c], w.sum[c], w.squares[c],
                      momentum, eps, running_mean, running_var, save_mean,
                      save_invstd);
  return CUDL_OK;
}

/* One row of `channels` values, the constants per channel. */
static BN_INLINE void apply_row(const BN_T *x, const float *gamma,
                                const float *beta, const float *mean,
                                const float *invstd, const BN_T *residual,
                                BN_T *y, int64_t channels,
                                const int has_residual, const int relu) {
  int64_t k;
#pragma omp simd
  for (k = 0; k < channels; ++k) {
    float v = gamma[k] * ((BN_LOAD(x[k]) - mean[k]) * invstd[k]) + beta[k];
    if (has_residual) v = v + BN_LOAD(residual[k]);
    y[k] = BN_STORE(relu ? relu_of(v) : v);
  }
}

CUDL_CPU_WIDE_CLONES static void apply_rows(
    const BN_T *x, const float *gamma, const float *beta, const float *mean,
    const float *invstd, const BN_T *residual, int relu, BN_T *y, int64_t outer,
    int64_t channels) {
  int64_t n;
#pragma omp parallel for schedule(static) if (WORTH_THREADS(outer * channels))
  for (n = 0; n < outer; ++n) {
    const int64_t at = n * channels;
    const BN_T *res = residual != NULL ? residual + at : NULL;
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
    const BN_T *x, const BN_T *y, const BN_T *dy, const double *mean,
    const double *invstd, int64_t n0, int64_t n1, int64_t channels, int64_t c0,
    int64_t count, BN_T *g_out, double *a, double *b, const int masked,
    const int writes_g) {
  int64_t n, k;
  for (n = n0; n < n1; ++n) {
    const int64_t at = n * channels + c0;
    const BN_T *dy_row = dy + at, *x_row = x + at;
    const BN_T *y_row = masked ? y + at : NULL;
    BN_T *g_row = writes_g ? g_out + at : NULL;
#pragma omp simd
    for (k = 0; k < count; ++k) {
      const float g = masked
                          ? through_relu(BN_LOAD(y_row[k]), BN_LOAD(dy_row[k]))
                          : BN_LOAD(dy_row[k]);
      if (writes_g) g_row[k] = BN_STORE(g);
      a[k] += g;
      b[k] += g * (BN_LOAD(x_row[k]) - mean[k]) * invstd[k];
    }
  }
}

/* One row's dx. */
static BN_INLINE void input_gradient_row(const BN_T *x, const BN_T *y,
                                         const BN_T *dy, const float *mean,
                                         const float *invstd, const float *k_dy,
                                         const float *k_xhat, const float *k_0,
                                         BN_T *dx, int64_t channels,
                                         const int masked) {
  int64_t k;
#pragma omp simd
  for (k = 0; k < channels; ++k) {
    const float g =
        masked ? through_relu(BN_LOAD(y[k]), BN_LOAD(dy[k])) : BN_LOAD(dy[k]);
    const float xhat = (BN_LOAD(x[k]) - mean[k]) * invstd[k];
    dx[k] = BN_STORE(k_dy[k] * g + (k_xhat[k] * xhat + k_0[k]));
  }
}

CUDL_CPU_WIDE_CLONES static cudl_status backward_rows(
    cudl_context *ctx, const BN_T *x, const BN_T *y, const BN_T *dy,
    const float *gamma, const float *save_mean, const float *save_invstd,
    BN_T *dx, BN_T *dresidual, float *dgamma, float *dbeta, int64_t outer,
    int64_t channels) {
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

/* ---- the entries (ops.def) ---- */

cudl_status BN_ENTRY(statistics)(cudl_context *ctx, const void *x,
                                 float momentum, float eps, float *running_mean,
                                 float *running_var, float *save_mean,
                                 float *save_invstd, int64_t outer,
                                 int64_t channels, int64_t inner) {
  if (inner == 1)
    return statistics_rows(ctx, x, momentum, eps, running_mean, running_var,
                           save_mean, save_invstd, outer, channels);
  statistics_planes(x, momentum, eps, running_mean, running_var, save_mean,
                    save_invstd, outer, channels, inner);
  return CUDL_OK;
}

cudl_status BN_ENTRY(apply)(cudl_context *ctx, const void *x,
                            const float *gamma, const float *beta,
                            const float *mean, const float *invstd,
                            const void *residual, int relu, void *y,
                            int64_t outer, int64_t channels, int64_t inner) {
  (void)ctx;
  if (inner == 1)
    apply_rows(x, gamma, beta, mean, invstd, residual, relu, y, outer,
               channels);
  else
    apply_planes(x, gamma, beta, mean, invstd, residual, relu, y, outer,
                 channels, inner);
  return CUDL_OK;
}

cudl_status BN_ENTRY(relu_backward)(cudl_context *ctx, const void *x,
                                    const void *y, const void *dy,
                                    const float *gamma, const float *save_mean,
                                    const float *save_invstd, void *dx,
                                    void *dresidual, float *dgamma,
                                    float *dbeta, int64_t outer,
                                    int64_t channels, int64_t inner) {
  if (inner == 1)
    return backward_rows(ctx, x, y, dy, gamma, save_mean, save_invstd, dx,
                         dresidual, dgamma, dbeta, outer, channels);
  backward_planes(x, y, dy, gamma, save_mean, save_invstd, dx, dresidual,
                  dgamma, dbeta, outer, channels, inner);
  return CUDL_OK;
}

cudl_status BN_ENTRY(forward_training)(cudl_context *ctx, const void *x,
                                       const float *gamma, const float *beta,
                                       float momentum, float eps,
                                       float *running_mean, float *running_var,
                                       void *y, float *save_mean,
                                       float *save_invstd, int64_t outer,
                                       int64_t channels, int64_t inner) {
  cudl_status status =
      BN_ENTRY(statistics)(ctx, x, momentum, eps, running_mean, running_var,
                           save_mean, save_invstd, outer, channels, inner);
  if (status != CUDL_OK) return status;
  return BN_ENTRY(apply)(ctx, x, gamma, beta, save_mean, save_invstd, NULL, 0,
                         y, outer, channels, inner);
}

cudl_status BN_ENTRY(forward_inference)(cudl_context *ctx, const void *x,
                                        const float *gamma, const float *beta,
                                        const float *running_mean,
                                        const float *running_var, float eps,
                                        void *y, int64_t outer,
                                        int64_t channels, int64_t inner) {
  float *invstd;
  cudl_status status =
      inference_invstd(ctx, running_var, eps, channels, &invstd);
  if (status != CUDL_OK) return status;
  return BN_ENTRY(apply)(ctx, x, gamma, beta, running_mean, invstd, NULL, 0, y,
                         outer, channels, inner);
}

cudl_status BN_ENTRY(backward)(cudl_context *ctx, const void *x, const void *dy,
                               const float *gamma, const float *save_mean,
                               const float *save_invstd, void *dx,
                               float *dgamma, float *dbeta, int64_t outer,
                               int64_t channels, int64_t inner) {
  return BN_ENTRY(relu_backward)(ctx, x, NULL, dy, gamma, save_mean,
                                 save_invstd, dx, NULL, dgamma, dbeta, outer,
                                 channels, inner);
}

#undef channel_moments
#undef statistics_planes
#undef apply_plane
#undef apply_planes
#undef backward_channel_sums
#undef input_gradient_plane
#undef backward_planes
#undef row_moments
#undef statistics_rows
#undef apply_row
#undef apply_rows
#undef backward_block_sums
#undef input_gradient_row
#undef backward_rows
