/* cpu_pooling.c - pooling on the CPU: loops over output windows, sums in
 * double. Backward scatters each output's gradient into its window; the
 * CUDA kernels gather instead, so the two are independent. */
#include <math.h>
#include <string.h>

#include "cpu/cpu_ops.h"

/* Offset of the chosen element of window (oh, ow) in its H x W plane:
 * the first maximum in row-major order, a NaN winning over numbers (the
 * first NaN), padding never chosen. */
static int64_t window_argmax(const cudl_pool2d_geometry *g, const float *plane,
                             int64_t oh, int64_t ow) {
  const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
  int64_t best = -1, i, j;
  for (i = 0; i < g->kh; ++i) {
    const int64_t h = h0 + i;
    if (h < 0 || h >= g->h) continue;
    for (j = 0; j < g->kw; ++j) {
      const int64_t w = w0 + j;
      float v;
      if (w < 0 || w >= g->w) continue;
      v = plane[h * g->w + w];
      if (best < 0 || (!isnan(plane[best]) && (v > plane[best] || isnan(v))))
        best = h * g->w + w;
    }
  }
  return best;
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
                                     const float *x, float *y) {
  const int64_t planes = g->n * g->c;
  int64_t p;
  (void)ctx;
#pragma omp parallel for schedule(static) if (planes * g->oh * g->ow > 4096)
  for (p = 0; p < planes; ++p) {
    const float *plane = x + p * g->h * g->w;
    float *out = y + p * g->oh * g->ow;
    int64_t oh, ow;
    for (oh = 0; oh < g->oh; ++oh)
      for (ow = 0; ow < g->ow; ++ow) {
        if (is_max) {
          out[oh * g->ow + ow] = plane[window_argmax(g, plane, oh, ow)];
        } else {
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
                                      const float *x, const float *dy,
                                      float *dx) {
  const int64_t planes = g->n * g->c;
  int64_t p;
  (void)ctx;
  memset(dx, 0, (size_t)(planes * g->h * g->w) * sizeof *dx);
#pragma omp parallel for schedule(static) if (planes * g->oh * g->ow > 4096)
  for (p = 0; p < planes; ++p) {
    float *grad = dx + p * g->h * g->w;
    const float *up = dy + p * g->oh * g->ow;
    int64_t oh, ow;
    for (oh = 0; oh < g->oh; ++oh)
      for (ow = 0; ow < g->ow; ++ow) {
        const float d = up[oh * g->ow + ow];
        if (is_max) {
          grad[window_argmax(g, x + p * g->h * g->w, oh, ow)] += d;
        } else {
          const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
          const float share = d / (float)window_count(g, oh, ow);
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

cudl_status cudl__cpu_global_avg_pool_forward(cudl_context *ctx, const float *x,
                                              float *y, int64_t rows,
                                              int64_t cols) {
  int64_t r;
  (void)ctx;
#pragma omp parallel for schedule(static) if (rows * cols > 32768)
  for (r = 0; r < rows; ++r) {
    double sum = 0.0;
    int64_t i;
    for (i = 0; i < cols; ++i) sum += x[r * cols + i];
    y[r] = (float)(sum / (double)cols);
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_global_avg_pool_backward(cudl_context *ctx,
                                               const float *dy, float *dx,
                                               int64_t rows, int64_t cols) {
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
