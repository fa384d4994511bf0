/*
 * im2col_conv.h - a plain im2col + sgemm convolution over NCHW f32, for
 * benchmarking only (not part of libcudl).
 *
 * For group gi, a chunk of images is unrolled into col, with one row per
 * (c, r, s) of the group's input channels and one column per output pixel
 * of every image in the chunk; then, with Wg the group's [Kg, Cg*R*S]
 * block of w and Y the chunk's output gathered as [Kg, nb*OH*OW]:
 *   forward          Y = Wg col
 *   backward data    col = Wg^T dY, then col2im adds col into dx
 *   backward filter  dWg += dY col^T
 * Chunks keep col and Y under 64 MiB. Each call returns 0, or -1 when its
 * workspace cannot be allocated.
 */
#ifndef CUDL_BENCH_IM2COL_CONV_H
#define CUDL_BENCH_IM2COL_CONV_H

#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct im2col_geometry {
  int64_t n, c, h, w; /* input */
  int64_t k, r, s;    /* weight [k, c / groups, r, s] */
  int64_t oh, ow;     /* output */
  int64_t sh, sw, ph, pw, dh, dw; /* stride, padding, dilation */
  int64_t groups;
} im2col_geometry;

int im2col_conv2d_forward(const im2col_geometry *g, const float *x,
                          const float *w, float *y);
int im2col_conv2d_backward_data(const im2col_geometry *g, const float *w,
                                const float *dy, float *dx);
int im2col_conv2d_backward_filter(const im2col_geometry *g, const float *x,
                                  const float *dy, float *dw);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_BENCH_IM2COL_CONV_H */
