/* cpu_pooling.c - pooling on the CPU, NCHW or channels-last: loops over
 * output windows, sums in double. Backward scatters each output's gradient into
 * its window; the CUDA kernels gather instead, so the two are independent.
 * Channels-last max pooling whose windows do not overlap writes each input
 * gradient once instead, in f32, bf16 or f16 (cpu_pooling_tiles.h). */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/half.h"
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

/* The divisor of window (oh, ow) for average pooling: with padding counted,
 * the window clipped to the padded input (kh * kw except for a ceil-mode
 * window running past the right padding, as PyTorch counts it); else the
 * elements inside the input. */
static int64_t window_count(const cudl_pool2d_geometry *g, int64_t oh,
                            int64_t ow) {
  const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
  int64_t rows, cols;
  if (g->count_include_pad) {
    rows = (h0 + g->kh < g->h + g->ph ? h0 + g->kh : g->h + g->ph) - h0;
    cols = (w0 + g->kw < g->w + g->pw ? w0 + g->kw : g->w + g->pw) - w0;
    return rows * cols;
  }
  rows = (h0 + g->kh < g->h ? h0 + g->kh : g->h) - (h0 > 0 ? h0 : 0);
  cols = (w0 + g->kw < g->w ? w0 + g->kw : g->w) - (w0 > 0 ? w0 : 0);
  return rows * cols;
}

/* ---- channels-last: x [n, h, w, c], y [n, oh, ow, c] ----
 * The same windows, choices and summation order as the planes above, with
 * the channels innermost: each element of a window is a run of channels
 * that lie next to each other, and the loops over them vectorise (`omp
 * simd`, which GCC's -O2 needs for a loop of unknown trip count). Every
 * output element sees exactly the arithmetic the NCHW code does for it, so
 * the two layouts give the same bits. */

enum { CHANNEL_BLOCK = 64 };

/* Output (oh, ow)'s window clipped to the image: rows [*y0, *y1), columns
 * [*x0, *x1). Never empty (padding < kernel). */
static void clipped_window(const cudl_pool2d_geometry *g, int64_t oh,
                           int64_t ow, int64_t *y0, int64_t *y1, int64_t *x0,
                           int64_t *x1) {
  const int64_t h0 = oh * g->sh - g->ph, w0 = ow * g->sw - g->pw;
  *y0 = h0 > 0 ? h0 : 0;
  *x0 = w0 > 0 ? w0 : 0;
  *y1 = h0 + g->kh < g->h ? h0 + g->kh : g->h;
  *x1 = w0 + g->kw < g->w ? w0 + g->kw : g->w;
}

/* Max pooling of channels [c0, c0 + count) of output (oh, ow) of one image:
 * top[k] the value and, unless arg is NULL, arg[k] its pixel (y * w + x),
 * chosen by window_argmax's rule in its order. */
static void channels_window_max(const cudl_pool2d_geometry *g,
                                const float *image, int64_t oh, int64_t ow,
                                int64_t c0, int64_t count, float *top,
                                int64_t *arg) {
  int64_t y0, y1, x0, x1, y, x, k;
  clipped_window(g, oh, ow, &y0, &y1, &x0, &x1);
  for (k = 0; k < count; ++k) top[k] = image[(y0 * g->w + x0) * g->c + c0 + k];
  if (arg != NULL)
    for (k = 0; k < count; ++k) arg[k] = y0 * g->w + x0;
  for (y = y0; y < y1; ++y)
    for (x = x0; x < x1; ++x) {
      const int64_t at = y * g->w + x;
      const float *v = image + at * g->c + c0;
      if (at == y0 * g->w + x0) continue;
      /* take v when it is larger, or a NaN replacing a number; as masks,
       * so that the loops vectorise (see argmax_step) */
      if (arg == NULL) {
#pragma omp simd
        for (k = 0; k < count; ++k) {
          const float t = top[k];
          const int take = (v[k] > t) | ((v[k] != v[k]) & (t == t));
          top[k] = take ? v[k] : t;
        }
      } else {
#pragma omp simd
        for (k = 0; k < count; ++k) {
          const float t = top[k];
          const int64_t take = -(int64_t)(v[k] > t) |
                               (-(int64_t)(v[k] != v[k]) & -(int64_t)(t == t));
          arg[k] = (take & at) | (~take & arg[k]);
          top[k] = take ? v[k] : t;
        }
      }
    }
}

/* Average pooling of channels [c0, c0 + count) of output (oh, ow): the
 * window's elements summed in double in row-major order, as the NCHW loop
 * does, then divided by window_count. */
static void channels_window_mean(const cudl_pool2d_geometry *g,
                                 const float *image, int64_t oh, int64_t ow,
                                 int64_t c0, int64_t count, float *out) {
  double sum[CHANNEL_BLOCK];
  const double divisor = (double)window_count(g, oh, ow);
  int64_t y0, y1, x0, x1, y, x, k;
  clipped_window(g, oh, ow, &y0, &y1, &x0, &x1);
  for (k = 0; k < count; ++k) sum[k] = 0.0;
  for (y = y0; y < y1; ++y)
    for (x = x0; x < x1; ++x) {
      const float *v = image + (y * g->w + x) * g->c + c0;
#pragma omp simd
      for (k = 0; k < count; ++k) sum[k] += v[k];
    }
  for (k = 0; k < count; ++k) out[k] = (float)(sum[k] / divisor);
}

static void channels_last_forward(const cudl_pool2d_geometry *g, int is_max,
                                  const float *x, float *y) {
  const int64_t rows = g->n * g->oh;
  int64_t r;
#pragma omp parallel for schedule(static) if (rows * g->ow * g->c > 4096)
  for (r = 0; r < rows; ++r) {
    const float *image = x + r / g->oh * g->h * g->w * g->c;
    const int64_t oh = r % g->oh;
    int64_t ow, c0;
    for (ow = 0; ow < g->ow; ++ow) {
      float *out = y + (r * g->ow + ow) * g->c;
      for (c0 = 0; c0 < g->c; c0 += CHANNEL_BLOCK) {
        const int64_t count =
            g->c - c0 < CHANNEL_BLOCK ? g->c - c0 : CHANNEL_BLOCK;
        if (is_max)
          channels_window_max(g, image, oh, ow, c0, count, out + c0, NULL);
        else
          channels_window_mean(g, image, oh, ow, c0, count, out + c0);
      }
    }
  }
}

/* Backward scatters as the NCHW code does, each output's share into its
 * window in output order, so overlapping windows add up in the same order.
 * A thread owns a block of channels of one image: no two write the same
 * element, whatever the windows. */
static void channels_last_backward(const cudl_pool2d_geometry *g, int is_max,
                                   const float *x, const float *dy, float *dx) {
  const int64_t blocks = (g->c + CHANNEL_BLOCK - 1) / CHANNEL_BLOCK;
  const int64_t pixels = g->h * g->w;
  int64_t t;
#pragma omp parallel for schedule(static) if (g->n * g->oh * g->ow * g->c > \
                                              4096)
  for (t = 0; t < g->n * blocks; ++t) {
    const int64_t b = t / blocks, c0 = t % blocks * CHANNEL_BLOCK;
    const int64_t count = g->c - c0 < CHANNEL_BLOCK ? g->c - c0 : CHANNEL_BLOCK;
    const float *image = is_max ? x + b * pixels * g->c : NULL;
    float *grad = dx + b * pixels * g->c + c0;
    float top[CHANNEL_BLOCK], share[CHANNEL_BLOCK];
    int64_t arg[CHANNEL_BLOCK], p, oh, ow, k;
    for (p = 0; p < pixels; ++p)
      memset(grad + p * g->c, 0, (size_t)count * sizeof *grad);
    for (oh = 0; oh < g->oh; ++oh)
      for (ow = 0; ow < g->ow; ++ow) {
        const float *up = dy + ((b * g->oh + oh) * g->ow + ow) * g->c + c0;
        if (is_max) {
          channels_window_max(g, image, oh, ow, c0, count, top, arg);
          for (k = 0; k < count; ++k) grad[arg[k] * g->c + k] += up[k];
        } else {
          const float divisor = (float)window_count(g, oh, ow);
          int64_t y0, y1, x0, x1, yy, xx;
          clipped_window(g, oh, ow, &y0, &y1, &x0, &x1);
          for (k = 0; k < count; ++k) share[k] = up[k] / divisor;
          for (yy = y0; yy < y1; ++yy)
            for (xx = x0; xx < x1; ++xx) {
              float *cell = grad + (yy * g->w + xx) * g->c;
#pragma omp simd
              for (k = 0; k < count; ++k) cell[k] += share[k];
            }
        }
      }
  }
}

/* ---- channels-last max pooling whose windows do not overlap ----
 * Stride at least the kernel both ways (the 2 x 2, stride 2 pooling of most
 * CNNs): every input element lies in one window at most. Backward then
 * writes each element once instead of zeroing dx and scattering, and the
 * 16-bit types run the same loops on their own storage instead of on f32
 * copies (cpu_lowp.c). */

int cudl__cpu_pool2d_tiles(const cudl_pool2d_geometry *g, int is_max) {
  return is_max && g->channels_last && g->sh >= g->kh && g->sw >= g->kw;
}

/* Whether the windows cover the input with nothing left over. */
static int tiles_exactly(const cudl_pool2d_geometry *g) {
  return g->ph == 0 && g->pw == 0 && g->sh == g->kh && g->sw == g->kw &&
         g->oh * g->kh == g->h && g->ow * g->kw == g->w;
}

/* The input rows [*first, *last) whose gradient output row oh writes: its
 * windows' rows and those up to the next output row's, the rows above the
 * first window and below the last going to the first and last output row. */
static void tile_rows(const cudl_pool2d_geometry *g, int64_t oh, int64_t *first,
                      int64_t *last) {
  const int64_t start = oh * g->sh - g->ph, next = start + g->sh;
  *first = oh == 0 || start < 0 ? 0 : start;
  *last = oh == g->oh - 1 || next > g->h ? g->h : next;
  if (*last < *first) *last = *first;
}

#define POOL_T float
#define POOL_LOAD(v) (v)
#define POOL_STORE(v) (v)
#define POOL_NAME(f) f##_f32
#include "cpu/cpu_pooling_tiles.h"
#undef POOL_T
#undef POOL_LOAD
#undef POOL_STORE
#undef POOL_NAME

#define POOL_T uint16_t
#define POOL_LOAD(v) cudl__bf16_to_f32(v)
#define POOL_STORE(v) cudl__f32_to_bf16(v)
#define POOL_NAME(f) f##_bf16
#include "cpu/cpu_pooling_tiles.h"
#undef POOL_T
#undef POOL_LOAD
#undef POOL_STORE
#undef POOL_NAME

#define POOL_T uint16_t
#define POOL_LOAD(v) cudl__f16_to_f32(v)
#define POOL_STORE(v) cudl__f32_to_f16(v)
#define POOL_NAME(f) f##_f16
#include "cpu/cpu_pooling_tiles.h"
#undef POOL_T
#undef POOL_LOAD
#undef POOL_STORE
#undef POOL_NAME

void cudl__cpu_max_pool2d_tiles_forward(cudl_dtype dtype,
                                        const cudl_pool2d_geometry *g,
                                        const void *x, void *y) {
  if (dtype == CUDL_DTYPE_BF16)
    tiles_forward_bf16(g, x, y);
  else if (dtype == CUDL_DTYPE_F16)
    tiles_forward_f16(g, x, y);
  else
    tiles_forward_f32(g, x, y);
}

void cudl__cpu_max_pool2d_tiles_backward(cudl_dtype dtype,
                                         const cudl_pool2d_geometry *g,
                                         const void *x, const void *dy,
                                         void *dx) {
  if (dtype == CUDL_DTYPE_BF16)
    tiles_backward_bf16(g, x, dy, dx);
  else if (dtype == CUDL_DTYPE_F16)
    tiles_backward_f16(g, x, dy, dx);
  else
    tiles_backward_f32(g, x, dy, dx);
}

cudl_status cudl__cpu_pool2d_forward(cudl_context *ctx,
                                     const cudl_pool2d_geometry *g, int is_max,
                                     const void *x_, void *y_) {
  const float *x = x_;
  float *y = y_;
  const int64_t planes = g->n * g->c;
  int64_t p;
  (void)ctx;
  if (cudl__cpu_pool2d_tiles(g, is_max)) {
    cudl__cpu_max_pool2d_tiles_forward(CUDL_DTYPE_F32, g, x, y);
    return CUDL_OK;
  }
  if (g->channels_last) {
    channels_last_forward(g, is_max, x, y);
    return CUDL_OK;
  }
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
  if (cudl__cpu_pool2d_tiles(g, is_max)) {
    cudl__cpu_max_pool2d_tiles_backward(CUDL_DTYPE_F32, g, x, dy, dx);
    return CUDL_OK;
  }
  if (g->channels_last) {
    channels_last_backward(g, is_max, x, dy, dx);
    return CUDL_OK;
  }
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

/* Global average pooling with inner > 1 (channels-last: inner = c), for
 * INNER_BLOCK positions i at a time: their sums take the same lanes as
 * cudl__cpu_sum_lanes (value j into lane j % CUDL_CPU_LANES, the lanes
 * added in order), so a mean is the same bits whichever way round the
 * values lie, and the loop over i vectorises. */
enum { INNER_BLOCK = 64 };

static void strided_means(const float *x, float *y, int64_t cols, int64_t inner,
                          int64_t i0, int64_t count) {
  double lane[CUDL_CPU_LANES][INNER_BLOCK];
  int64_t j, i;
  int l;
  for (l = 0; l < CUDL_CPU_LANES; ++l)
    for (i = 0; i < count; ++i) lane[l][i] = 0.0;
  for (j = 0; j < cols; ++j) {
    const float *row = x + j * inner + i0;
    double *sum = lane[j % CUDL_CPU_LANES];
    for (i = 0; i < count; ++i) sum[i] += (double)row[i];
  }
  for (i = 0; i < count; ++i) {
    double total = 0.0;
    for (l = 0; l < CUDL_CPU_LANES; ++l) total += lane[l][i];
    y[i0 + i] = (float)(total / (double)cols);
  }
}

cudl_status cudl__cpu_global_avg_pool_forward(cudl_context *ctx, const void *x_,
                                              void *y_, int64_t outer,
                                              int64_t cols, int64_t inner) {
  const float *x = x_;
  float *y = y_;
  const int64_t blocks = (inner + INNER_BLOCK - 1) / INNER_BLOCK;
  int64_t r;
  (void)ctx;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * cols > 32768)
    for (r = 0; r < outer; ++r)
      y[r] = (float)(cudl__cpu_sum_lanes(x + r * cols, cols) / (double)cols);
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * cols * inner > 32768)
  for (r = 0; r < outer * blocks; ++r) {
    const int64_t o = r / blocks, i0 = r % blocks * INNER_BLOCK;
    const int64_t count = inner - i0 < INNER_BLOCK ? inner - i0 : INNER_BLOCK;
    strided_means(x + o * cols * inner, y + o * inner, cols, inner, i0, count);
  }
  return CUDL_OK;
}

cudl_status cudl__cpu_global_avg_pool_backward(cudl_context *ctx,
                                               const void *dy_, void *dx_,
                                               int64_t outer, int64_t cols,
                                               int64_t inner) {
  const float *dy = dy_;
  float *dx = dx_;
  int64_t r;
  (void)ctx;
  if (inner == 1) {
#pragma omp parallel for schedule(static) if (outer * cols > 32768)
    for (r = 0; r < outer; ++r) {
      const float share = dy[r] / (float)cols;
      int64_t j;
      for (j = 0; j < cols; ++j) dx[r * cols + j] = share;
    }
    return CUDL_OK;
  }
#pragma omp parallel for schedule(static) if (outer * cols * inner > 32768)
  for (r = 0; r < outer * cols; ++r) {
    const float *up = dy + r / cols * inner;
    float *grad = dx + r * inner;
    int64_t i;
    for (i = 0; i < inner; ++i) grad[i] = up[i] / (float)cols;
  }
  return CUDL_OK;
}
