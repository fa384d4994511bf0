/*
 * image_resize.c - a decoded image to the dataset's layout: channel
 * conversion (gray <-> RGB) into planar bytes, then separable resampling
 * with an antialiased triangle filter. cudl/image.h gives the formulas; the
 * tests recompute them in double, independently.
 */
#include <math.h>
#include <string.h>

#include "data/image_internal.h"

/* BT.601 luma in 16-bit fixed point (the weights sum to 65536). */
#define LUMA_R 19595u
#define LUMA_G 38470u
#define LUMA_B 7471u

static void convert_planar(const uint8_t *src, int src_channels,
                           size_t plane, int channels, uint8_t *out) {
  size_t p;
  int c;
  if (src_channels == 1) {
    for (c = 0; c < channels; ++c) memcpy(out + (size_t)c * plane, src, plane);
  } else if (channels == 3) {
    for (p = 0; p < plane; ++p)
      for (c = 0; c < 3; ++c) out[(size_t)c * plane + p] = src[p * 3 + c];
  } else {
    for (p = 0; p < plane; ++p)
      out[p] = (uint8_t)((LUMA_R * src[p * 3] + LUMA_G * src[p * 3 + 1] +
                          LUMA_B * src[p * 3 + 2] + 32768u) >>
                         16);
  }
}

/* The taps of one axis resampled from n to m: output o reads `count[o]`
 * inputs from `first[o]` with weights[o * taps ..]. */
typedef struct axis_taps {
  int taps;
  int *first, *count;
  double *weights;
  size_t first_size, weights_size;
} axis_taps;

static void axis_free(const cudl_allocator *a, axis_taps *t) {
  cudl__image_free(a, t->first, t->first_size);
  cudl__image_free(a, t->count, t->first_size);
  cudl__image_free(a, t->weights, t->weights_size);
}

static double triangle(double x) {
  x = fabs(x);
  return x < 1.0 ? 1.0 - x : 0.0;
}

static int axis_make(const cudl_allocator *a, int n, int m, axis_taps *t) {
  const double scale = (double)n / (double)m;
  const double support = scale > 1.0 ? scale : 1.0; /* 1 widened by scale */
  int o, k;
  memset(t, 0, sizeof *t);
  t->taps = (int)ceil(support) * 2 + 1;
  t->first_size = (size_t)m * sizeof(int);
  /* m <= 2^15 and taps <= 2^16 + 1: no overflow. */
  t->weights_size = (size_t)m * (size_t)t->taps * sizeof(double);
  t->first = (int *)cudl__image_alloc(a, t->first_size);
  t->count = (int *)cudl__image_alloc(a, t->first_size);
  t->weights = (double *)cudl__image_alloc(a, t->weights_size);
  if (t->first == NULL || t->count == NULL || t->weights == NULL) {
    axis_free(a, t);
    return 0;
  }
  for (o = 0; o < m; ++o) {
    const double centre = (o + 0.5) * scale;
    double *w = t->weights + (size_t)o * (size_t)t->taps, sum = 0.0;
    int lo = (int)(centre - support + 0.5), hi = (int)(centre + support + 0.5);
    if (lo < 0) lo = 0;
    if (hi > n) hi = n;
    t->first[o] = lo;
    t->count[o] = hi - lo;
    for (k = 0; k < hi - lo; ++k) {
      w[k] = triangle((k + lo - centre + 0.5) / support);
      sum += w[k];
    }
    if (sum > 0.0)
      for (k = 0; k < hi - lo; ++k) w[k] /= sum;
  }
  return 1;
}

static uint8_t to_byte(double v) {
  v = floor(v + 0.5);
  return (uint8_t)(v < 0.0 ? 0.0 : v > 255.0 ? 255.0 : v);
}

/* One plane through both passes. The intermediate of h x width (rows
 * first) or height x w (columns first) doubles is the smaller of the two:
 * at most sqrt(input pixels x output pixels), so a tall thin image
 * resized wide costs no more than the pixels involved. */
static void resample_plane(const uint8_t *in, int h, int w, int height,
                           int width, const axis_taps *across,
                           const axis_taps *down, int rows_first, double *tmp,
                           uint8_t *out) {
  int y, x, k;
  if (rows_first) {
    for (y = 0; y < h; ++y)
      for (x = 0; x < width; ++x) {
        const double *wt = across->weights + (size_t)x * (size_t)across->taps;
        const uint8_t *p = in + (size_t)y * (size_t)w + across->first[x];
        double sum = 0.0;
        for (k = 0; k < across->count[x]; ++k) sum += wt[k] * p[k];
        tmp[(size_t)y * (size_t)width + (size_t)x] = sum;
      }
    for (y = 0; y < height; ++y) {
      const double *wt = down->weights + (size_t)y * (size_t)down->taps;
      const double *col = tmp + (size_t)down->first[y] * (size_t)width;
      for (x = 0; x < width; ++x) {
        double sum = 0.0;
        for (k = 0; k < down->count[y]; ++k)
          sum += wt[k] * col[(size_t)k * (size_t)width + (size_t)x];
        out[(size_t)y * (size_t)width + (size_t)x] = to_byte(sum);
      }
    }
  } else {
    for (y = 0; y < height; ++y) {
      const double *wt = down->weights + (size_t)y * (size_t)down->taps;
      const uint8_t *col = in + (size_t)down->first[y] * (size_t)w;
      for (x = 0; x < w; ++x) {
        double sum = 0.0;
        for (k = 0; k < down->count[y]; ++k)
          sum += wt[k] * col[(size_t)k * (size_t)w + (size_t)x];
        tmp[(size_t)y * (size_t)w + (size_t)x] = sum;
      }
    }
    for (y = 0; y < height; ++y)
      for (x = 0; x < width; ++x) {
        const double *wt = across->weights + (size_t)x * (size_t)across->taps;
        const double *p = tmp + (size_t)y * (size_t)w + across->first[x];
        double sum = 0.0;
        for (k = 0; k < across->count[x]; ++k) sum += wt[k] * p[k];
        out[(size_t)y * (size_t)width + (size_t)x] = to_byte(sum);
      }
  }
}

cudl_status cudl__image_convert_resize(const cudl_allocator *a,
                                       const cudl_decoded_image *src,
                                       int channels, int height, int width,
                                       uint8_t *out, cudl_image_error *err) {
  const int h = src->info.height, w = src->info.width;
  const size_t plane = (size_t)h * (size_t)w;
  const size_t rows_first_size = (size_t)h * (size_t)width;
  const size_t columns_first_size = (size_t)height * (size_t)w;
  const int rows_first = rows_first_size <= columns_first_size;
  uint8_t *planar;
  double *tmp;
  size_t planar_size, tmp_size;
  axis_taps across, down;
  int c;
  if (h == height && w == width) {
    convert_planar(src->pixels, src->info.channels, plane, channels, out);
    return CUDL_OK;
  }
  planar_size = plane * (size_t)channels;
  planar = (uint8_t *)cudl__image_alloc(a, planar_size);
  if (planar == NULL)
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "cannot allocate %zu bytes to resize", planar_size);
  convert_planar(src->pixels, src->info.channels, plane, channels, planar);
  if (!axis_make(a, w, width, &across)) {
    cudl__image_free(a, planar, planar_size);
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "cannot allocate the resize filter");
  }
  if (!axis_make(a, h, height, &down)) {
    axis_free(a, &across);
    cudl__image_free(a, planar, planar_size);
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "cannot allocate the resize filter");
  }
  /* Both sizes are below 2^30 (sides <= 2^15): no overflow. */
  tmp_size = (rows_first ? rows_first_size : columns_first_size) * sizeof(double);
  tmp = (double *)cudl__image_alloc(a, tmp_size);
  if (tmp == NULL) {
    axis_free(a, &down);
    axis_free(a, &across);
    cudl__image_free(a, planar, planar_size);
    return cudl__image_error(err, CUDL_ERR_OUT_OF_MEMORY,
                             "cannot allocate %zu bytes to resize", tmp_size);
  }
  for (c = 0; c < channels; ++c)
    resample_plane(planar + (size_t)c * plane, h, w, height, width, &across,
                   &down, rows_first, tmp,
                   out + (size_t)c * (size_t)height * (size_t)width);
  cudl__image_free(a, tmp, tmp_size);
  axis_free(a, &down);
  axis_free(a, &across);
  cudl__image_free(a, planar, planar_size);
  return CUDL_OK;
}
