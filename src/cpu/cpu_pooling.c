/* cpu_pooling.c - pooling on the CPU: loops over output windows, sums in
 * double. Backward scatters each output's gradient into its window; the
 * CUDA kernels gather instead, so the two are independent. */
#include <math.h>
#include <string.h>

#include "cpu/cpu_internal.h"

/* Offset of the chosen element of window (oh, ow) in its H x W plane:
 * the first maximum in row-major order, a NaN winning over numbers (the
 * first NaN), padding never chosen. */
static int64_t window_argmax(const cudl_pool2d_geometry *g, const float *plane,
                             int64_t oh, int64_t ow) {
  const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
  /* The window clipped to the plane (never empty: padding < kernel). */
  const int64_t i0 = h0 < 0 ? -h0 : 0, j0 = w0 < 0 ? -w0 : 0;
  const int64_t i1 = h0 + g->kh > g->h ? g->h - h0 : g->kh;
  const int64_t j1 = w0 + g->kw > g->w ? g->w - w0 : g->kw;
  int64_t best = (h0 + i0) * g->w + (w0 + j0), i, j;
  float top = plane[best];
  /* Selects, not branches: on random data a branch per element
   * mispredicts half the time (cudl bench ops: 25x slower). */
  for (i = i0; i < i1; ++i)
    for (j = j0; j < j1; ++j) {
      const int64_t at = (h0 + i) * g->w + (w0 + j);
      const float v = plane[at];
      const int take = (!isnan(top)) & ((v > top) | (isnan(v) != 0));
      best = take ? at : best;
      top = take ? v : top;
    }
  return best;
}

/* Max pooling along output row oh of a plane, for the count outputs from
 * ow0 whose windows lie inside the plane: top[k] and arg[k] (its offset in
 * the plane, which has fewer than 2^31 elements) by the same rule and order
 * as window_argmax, but with the kernel loops outside and the outputs
 * inside, and the choice as integer masks, so that the compiler vectorises
 * across outputs (it does not if-convert the boolean form). */
enum { POOL_CHUNK = 64 };

/* One kernel element's pass over the outputs: from plane[first], stride
 * apart. Inlined with a constant stride where it is 1 or 2, since a
 * variable stride is a gather the compiler does not vectorise. */
static inline void argmax_step(const float *plane, int64_t first,
                               int64_t stride, int64_t count, float *top,
                               int32_t *arg) {
  int64_t k;
  for (k = 0; k < count; ++k) {
    const int32_t at = (int32_t)(first + k * stride);
    const float v = plane[first + k * stride], t = top[k];
    /* take v when it is larger, or a NaN replacing a number */
    const int32_t take =
        -(int32_t)(v > t) | (-(int32_t)(v != v) & -(int32_t)(t == t));
    arg[k] = (take & at) | (~take & arg[k]);
    top[k] = take ? v : t;
  }
}

static void row_argmax(const cudl_pool2d_geometry *g, const float *plane,
                       int64_t oh, int64_t ow0, int64_t count, float *top,
                       int32_t *arg) {
  const int64_t h0 = oh * g->sh - g->ph, w0 = ow0 * g->sw - g->pw;
  int64_t i, j, k;
  for (k = 0; k < count; ++k) {
    arg[k] = (int32_t)(h0 * g->w + w0 + k * g->sw);
    top[k] = plane[arg[k]];
  }
  for (i = 0; i < g->kh; ++i)
    for (j = 0; j < g->kw; ++j) {
      const int64_t first = (h0 + i) * g->w + w0 + j;
      if (i == 0 && j == 0) continue;
      if (g->sw == 2)
        argmax_step(plane, first, 2, count, top, arg);
      else if (g->sw == 1)
        argmax_step(plane, first, 1, count, top, arg);
      else
        argmax_step(plane, first, g->sw, count, top, arg);
    }
}

/* The outputs [*lo, *hi) of a row whose windows lie inside the columns, and
 * whether row oh's windows lie inside the rows. */
static int inside_columns(const cudl_pool2d_geometry *g, int64_t oh,
                          int64_t *lo, int64_t *hi) {
  const int64_t h0 = oh * g->sh - g->ph;
  *lo = (g->pw + g->sw - 1) / g->sw;
  *hi = g->w - g->kw + g->pw >= 0 ? (g->w - g->kw + g->pw) / g->sw + 1 : 0;
  if (*hi > g->ow) *hi = g->ow;
  if (*lo > *hi) *lo = *hi;
  return h0 >= 0 && h0 + g->kh <= g->h;
}

/* Max pooling of one output row of a plane: the inside windows in chunks
 * through row_argmax, those that overlap padding one by one. Forward writes
 * the values to y_row; backward (y_row NULL) adds dy_row's gradients to the
 * chosen elements of grad, the plane's gradient. */
static void max_pool_row(const cudl_pool2d_geometry *g, const float *plane,
                         int64_t oh, float *y_row, const float *dy_row,
                         float *grad) {
  float top[POOL_CHUNK];
  int32_t arg[POOL_CHUNK];
  int64_t lo, hi, ow = 0, k;
  if (!inside_columns(g, oh, &lo, &hi) || g->h * g->w > INT32_MAX)
    lo = hi = g->ow;
  while (ow < g->ow) {
    if (ow >= lo && ow < hi) {
      const int64_t count = hi - ow < POOL_CHUNK ? hi - ow : POOL_CHUNK;
      row_argmax(g, plane, oh, ow, count, top, arg);
      for (k = 0; k < count; ++k) {
        if (y_row != NULL)
          y_row[ow + k] = top[k];
        else
          grad[arg[k]] += dy_row[ow + k];
      }
      ow += count;
    } else {
      const int64_t at = window_argmax(g, plane, oh, ow);
      if (y_row != NULL)
        y_row[ow] = plane[at];
      else
        grad[at] += dy_row[ow];
      ow += 1;
    }
  }
}

/* The divisor of window (oh, ow) for average pooling. */
static int64_t window_count(const cudl_pool2d_geometry *g, int64_t oh,
                            int64_t ow) {
  const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
  int64_t rows, cols;
  if (g->count_include_pad) return g->kh * g->kw;
  rows = (h0 + g->kh < g->h ? h0 + g->kh : g->h) - (h0 > 0 ? h0 : 0);
  cols = (w0 + g->kw < g->w ? w0 + g->kw : g->w) - (w0 > 0 ? w0 : 0);
  return rows * cols;
}

cudl_status cudl__cpu_pool2d_forward(cudl_context *ctx,
                                     const cudl_pool2d_geometry *g, int is_max,
                                     const void *x_, void *y_) {
  const float *x = x_;
  float *y = y_;
  const int64_t planes = g->n * g->c;
  int64_t p;
  (void)ctx;
#pragma omp parallel for schedule(static) if (planes * g->oh * g->ow > 4096)
  for (p = 0; p < planes; ++p) {
    const float *plane = x + p * g->h * g->w;
    float *out = y + p * g->oh * g->ow;
    int64_t oh, ow;
    for (oh = 0; oh < g->oh; ++oh) {
      if (is_max) {
        max_pool_row(g, plane, oh, out + oh * g->ow, NULL, NULL);
        continue;
      }
      for (ow = 0; ow < g->ow; ++ow) {
        const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
        double sum = 0.0;
        int64_t i, j;
        for (i = 0; i < g->kh; ++i)
          for (j = 0; j < g->kw; ++j)
            if (h0 + i >= 0 && h0 + i < g->h && w0 + j >= 0 && w0 + j < g->w)
              sum += plane[(h0 + i) * g->w + (w0 + j)];
        out[oh * g->ow + ow] = (float)(sum / (double)window_count(g, oh, ow));
      }
    }
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_pool2d_backward(cudl_context *ctx,
                                      const cudl_pool2d_geometry *g, int is_max,
                                      const void *x_, const void *dy_,
                                      void *dx_) {
  const float *x = x_;
  const float *dy = dy_;
  float *dx = dx_;
  const int64_t planes = g->n * g->c;
  int64_t p;
  (void)ctx;
  /* Each plane is zeroed by the thread that fills it, not all of dx up
   * front by one thread. */
#pragma omp parallel for schedule(static) if (planes * g->oh * g->ow > 4096)
  for (p = 0; p < planes; ++p) {
    float *grad = dx + p * g->h * g->w;
    const float *up = dy + p * g->oh * g->ow;
    int64_t oh, ow;
    memset(grad, 0, (size_t)(g->h * g->w) * sizeof *grad);
    for (oh = 0; oh < g->oh; ++oh) {
      if (is_max) {
        max_pool_row(g, x + p * g->h * g->w, oh, NULL, up + oh * g->ow, grad);
        continue;
      }
      for (ow = 0; ow < g->ow; ++ow) {
        const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
        const float share =
            up[oh * g->ow + ow] / (float)window_count(g, oh, ow);
        int64_t i, j;
        for (i = 0; i < g->kh; ++i)
          for (j = 0; j < g->kw; ++j)
            if (h0 + i >= 0 && h0 + i < g->h && w0 + j >= 0 && w0 + j < g->w)
              grad[(h0 + i) * g->w + (w0 + j)] += share;
      }
    }
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_global_avg_pool_forward(cudl_context *ctx, const void *x_,
                                              void *y_, int64_t rows,
                                              int64_t cols) {
  const float *x = x_;
  float *y = y_;
  int64_t r;
  (void)ctx;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (r = 0; r < rows; ++r)
    y[r] = (float)(cudl__cpu_sum_lanes(x + r * cols, cols) / (double)cols);
  return CUDL_OK;
}

cudl_status cudl__cpu_global_avg_pool_backward(cudl_context *ctx,
                                               const void *dy_, void *dx_,
                                               int64_t rows, int64_t cols) {
  const float *dy = dy_;
  float *dx = dx_;
  int64_t r;
  (void)ctx;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (r = 0; r < rows; ++r) {
    const float share = dy[r] / (float)cols;
    int64_t i;
    for (i = 0; i < cols; ++i) dx[r * cols + i] = share;
  }
  return CUDL_OK;
}
