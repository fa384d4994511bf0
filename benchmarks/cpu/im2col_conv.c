/*
 * im2col_conv.c - convolution by im2col and dnnl_sgemm: the alternative that
 * bench_layers measures beside cudl's CPU convolution (oneDNN's own
 * primitives), so that the choice between them stays reproducible. It
 * batches images into one product, as fast im2col implementations do; see
 * im2col_conv.h for the layout.
 */
#include "im2col_conv.h"

#include <oneapi/dnnl/dnnl.h>
#include <stdlib.h>
#include <string.h>

#define CONV_WORKSPACE_FLOATS ((int64_t)16 << 20)

static void gemm(int trans_a, int trans_b, int64_t m, int64_t n, int64_t k,
                 const float *a, int64_t lda, const float *b, int64_t ldb,
                 float beta, float *c, int64_t ldc) {
  dnnl_sgemm(trans_a ? 'T' : 'N', trans_b ? 'T' : 'N', m, n, k, 1.0f, a, lda, b,
             ldb, beta, c, ldc);
}

typedef struct conv_plan {
  int64_t cg, kg, col_rows, pixels, nb;
  float *col, *out;
} conv_plan;

/* One workspace kept across calls, as cudl keeps its own, so that neither
 * side pays for mapping fresh pages. The benchmark is single-threaded. */
static void *g_workspace;
static size_t g_workspace_size;

static int plan_conv(const im2col_geometry *g, conv_plan *plan) {
  int64_t per_image;
  size_t bytes;
  void *workspace;
  plan->cg = g->c / g->groups;
  plan->kg = g->k / g->groups;
  plan->col_rows = plan->cg * g->r * g->s;
  plan->pixels = g->oh * g->ow;
  per_image = (plan->col_rows + plan->kg) * plan->pixels;
  plan->nb = CONV_WORKSPACE_FLOATS / per_image;
  if (plan->nb < 1) plan->nb = 1;
  if (plan->nb > g->n) plan->nb = g->n;
  bytes = (size_t)(per_image * plan->nb) * sizeof(float);
  if (g_workspace_size < bytes) {
    free(g_workspace);
    g_workspace = malloc(bytes);
    g_workspace_size = g_workspace == NULL ? 0 : bytes;
  }
  workspace = g_workspace;
  if (workspace == NULL) return -1;
  plan->col = (float *)workspace;
  plan->out = plan->col + plan->col_rows * plan->nb * plan->pixels;
  return 0;
}

static void valid_range(int64_t start, int64_t stride, int64_t size,
                        int64_t count, int64_t *lo, int64_t *hi) {
  int64_t a = 0, b = count;
  if (start < 0) a = (-start + stride - 1) / stride;
  if (start >= size)
    b = 0;
  else if ((size - 1 - start) / stride + 1 < b)
    b = (size - 1 - start) / stride + 1;
  if (a > b) a = b;
  *lo = a;
  *hi = b;
}

static void im2col(const im2col_geometry *g, const conv_plan *plan,
                   const float *x, int64_t n0, int64_t nb, int64_t gi) {
  const int64_t width = nb * plan->pixels;
  int64_t row;
#pragma omp parallel for schedule(static)
  for (row = 0; row < plan->col_rows; ++row) {
    const int64_t c = row / (g->r * g->s);
    const int64_t r = (row / g->s) % g->r;
    const int64_t s = row % g->s;
    const int64_t h0 = r * g->dh - g->ph, w0 = s * g->dw - g->pw;
    int64_t q_lo, q_hi, i, p, q;
    valid_range(w0, g->sw, g->w, g->ow, &q_lo, &q_hi);
    for (i = 0; i < nb; ++i) {
      const float *plane =
          x + ((n0 + i) * g->c + gi * plan->cg + c) * g->h * g->w;
      float *dst = plan->col + row * width + i * plan->pixels;
      for (p = 0; p < g->oh; ++p, dst += g->ow) {
        const int64_t ih = p * g->sh + h0;
        const float *src;
        if (ih < 0 || ih >= g->h) {
          memset(dst, 0, (size_t)g->ow * sizeof *dst);
          continue;
        }
        src = plane + ih * g->w + w0;
        for (q = 0; q < q_lo; ++q) dst[q] = 0.0f;
        if (g->sw == 1)
          memcpy(dst + q_lo, src + q_lo, (size_t)(q_hi - q_lo) * sizeof *dst);
        else
          for (q = q_lo; q < q_hi; ++q) dst[q] = src[q * g->sw];
        for (q = q_hi; q < g->ow; ++q) dst[q] = 0.0f;
      }
    }
  }
}

static void col2im_add(const im2col_geometry *g, const conv_plan *plan,
                       float *dx, int64_t n0, int64_t nb, int64_t gi) {
  const int64_t width = nb * plan->pixels;
  int64_t plane_index;
#pragma omp parallel for schedule(static)
  for (plane_index = 0; plane_index < nb * plan->cg; ++plane_index) {
    const int64_t i = plane_index / plan->cg, c = plane_index % plan->cg;
    float *plane = dx + ((n0 + i) * g->c + gi * plan->cg + c) * g->h * g->w;
    int64_t r, s, p, q;
    for (r = 0; r < g->r; ++r)
      for (s = 0; s < g->s; ++s) {
        const int64_t row = (c * g->r + r) * g->s + s;
        const int64_t h0 = r * g->dh - g->ph, w0 = s * g->dw - g->pw;
        const float *src = plan->col + row * width + i * plan->pixels;
        int64_t q_lo, q_hi;
        valid_range(w0, g->sw, g->w, g->ow, &q_lo, &q_hi);
        for (p = 0; p < g->oh; ++p, src += g->ow) {
          const int64_t ih = p * g->sh + h0;
          float *dst;
          if (ih < 0 || ih >= g->h) continue;
          dst = plane + ih * g->w + w0;
          for (q = q_lo; q < q_hi; ++q) dst[q * g->sw] += src[q];
        }
      }
  }
}

static void move_output(const im2col_geometry *g, const conv_plan *plan,
                        float *y, int64_t n0, int64_t nb, int64_t gi,
                        int to_y) {
  int64_t row;
#pragma omp parallel for schedule(static)
  for (row = 0; row < plan->kg * nb; ++row) {
    const int64_t k = row / nb, i = row % nb;
    float *a = plan->out + k * nb * plan->pixels + i * plan->pixels;
    float *b = y + ((n0 + i) * g->k + gi * plan->kg + k) * plan->pixels;
    if (to_y)
      memcpy(b, a, (size_t)plan->pixels * sizeof(float));
    else
      memcpy(a, b, (size_t)plan->pixels * sizeof(float));
  }
}

int im2col_conv2d_forward(const im2col_geometry *g, const float *x,
                          const float *w, float *y) {
  conv_plan plan;
  int64_t n0, gi;
  if (plan_conv(g, &plan) != 0) return -1;
  for (n0 = 0; n0 < g->n; n0 += plan.nb) {
    const int64_t nb = g->n - n0 < plan.nb ? g->n - n0 : plan.nb;
    const int64_t width = nb * plan.pixels;
    for (gi = 0; gi < g->groups; ++gi) {
      im2col(g, &plan, x, n0, nb, gi);
      gemm(0, 0, plan.kg, width, plan.col_rows,
           w + gi * plan.kg * plan.col_rows, plan.col_rows, plan.col, width,
           0.0f, plan.out, width);
      move_output(g, &plan, y, n0, nb, gi, 1);
    }
  }
  return 0;
}

int im2col_conv2d_backward_data(const im2col_geometry *g, const float *w,
                                const float *dy, float *dx) {
  conv_plan plan;
  int64_t n0, gi;
  if (plan_conv(g, &plan) != 0) return -1;
  memset(dx, 0, (size_t)(g->n * g->c * g->h * g->w) * sizeof *dx);
  for (n0 = 0; n0 < g->n; n0 += plan.nb) {
    const int64_t nb = g->n - n0 < plan.nb ? g->n - n0 : plan.nb;
    const int64_t width = nb * plan.pixels;
    for (gi = 0; gi < g->groups; ++gi) {
      move_output(g, &plan, (float *)dy, n0, nb, gi, 0);
      gemm(1, 0, plan.col_rows, width, plan.kg,
           w + gi * plan.kg * plan.col_rows, plan.col_rows, plan.out, width,
           0.0f, plan.col, width);
      col2im_add(g, &plan, dx, n0, nb, gi);
    }
  }
  return 0;
}

int im2col_conv2d_backward_filter(const im2col_geometry *g, const float *x,
                                  const float *dy, float *dw) {
  conv_plan plan;
  int64_t n0, gi;
  if (plan_conv(g, &plan) != 0) return -1;
  for (n0 = 0; n0 < g->n; n0 += plan.nb) {
    const int64_t nb = g->n - n0 < plan.nb ? g->n - n0 : plan.nb;
    const int64_t width = nb * plan.pixels;
    for (gi = 0; gi < g->groups; ++gi) {
      im2col(g, &plan, x, n0, nb, gi);
      move_output(g, &plan, (float *)dy, n0, nb, gi, 0);
      gemm(0, 1, plan.kg, plan.col_rows, width, plan.out, width, plan.col,
           width, n0 == 0 ? 0.0f : 1.0f, dw + gi * plan.kg * plan.col_rows,
           plan.col_rows);
    }
  }
  return 0;
}
