/* cpu_pooling_tiles.h - channels-last max pooling whose windows do not
 * overlap (cudl__cpu_max_pool2d_tiles_* in cpu_pooling.c), over one storage
 * type of x, y, dy and dx, included once per type with
 *   POOL_T          the element type (float, or uint16_t holding bf16/f16)
 *   POOL_LOAD(v)    an element widened to float (exact)
 *   POOL_STORE(v)   a float rounded to an element
 *   POOL_NAME(f)    f's name for this type
 * The window's choice is window_argmax's (the first maximum, the first NaN
 * over numbers), made on the widened values; the stored value and gradient
 * are the f32 pooling's rounded once, so a 16-bit tensor gets the bits its
 * widened copy would, reading and writing only 16-bit memory. No include
 * guard: included once per type. */

#define tile_top POOL_NAME(tile_top)
#define tiles_forward POOL_NAME(tiles_forward)
#define tiles_backward POOL_NAME(tiles_backward)

/* The maximum over window (oh, ow) of channels [c0, c0 + count) of image,
 * widened, into top. */
static inline void tile_top(const cudl_pool2d_geometry *g, const POOL_T *image,
                            int64_t oh, int64_t ow, int64_t c0, int64_t count,
                            float *top) {
  int64_t y0, y1, x0, x1, y, x, k;
  clipped_window(g, oh, ow, &y0, &y1, &x0, &x1);
  {
    const POOL_T *first = image + (y0 * g->w + x0) * g->c + c0;
#pragma omp simd
    for (k = 0; k < count; ++k) top[k] = POOL_LOAD(first[k]);
  }
  for (y = y0; y < y1; ++y)
    for (x = x0; x < x1; ++x) {
      const POOL_T *v = image + (y * g->w + x) * g->c + c0;
      if (y == y0 && x == x0) continue;
#pragma omp simd
      for (k = 0; k < count; ++k) {
        const float t = top[k], u = POOL_LOAD(v[k]);
        /* take u when it is larger, or a NaN replacing a number */
        const int take = (u > t) | ((u != u) & (t == t));
        top[k] = take ? u : t;
      }
    }
}

CUDL_CPU_WIDE_CLONES static void tiles_forward(const cudl_pool2d_geometry *g,
                                               const POOL_T *x, POOL_T *y) {
  const int64_t rows = g->n * g->oh;
  int64_t r;
#pragma omp parallel for schedule(static) if (rows * g->ow * g->c > 4096)
  for (r = 0; r < rows; ++r) {
    const POOL_T *image = x + r / g->oh * g->h * g->w * g->c;
    float top[CHANNEL_BLOCK];
    int64_t ow, c0, k;
    for (ow = 0; ow < g->ow; ++ow) {
      POOL_T *out = y + (r * g->ow + ow) * g->c;
      for (c0 = 0; c0 < g->c; c0 += CHANNEL_BLOCK) {
        const int64_t count =
            g->c - c0 < CHANNEL_BLOCK ? g->c - c0 : CHANNEL_BLOCK;
        tile_top(g, image, r % g->oh, ow, c0, count, top);
#pragma omp simd
        for (k = 0; k < count; ++k) out[c0 + k] = POOL_STORE(top[k]);
      }
    }
  }
}

/* Each input element lies in one window at most, so its gradient is 0 +
 * dy at its window's choice (what the scattering loops' single addition
 * gives), else 0: written once, gathered per window, without a scatter or
 * a zeroing pass over the windows' elements. A thread owns output rows and
 * the input rows from its first window row to the next one's (tile_rows),
 * so the rows between and below the windows are zeroed by one thread. */
CUDL_CPU_WIDE_CLONES static void tiles_backward(const cudl_pool2d_geometry *g,
                                                const POOL_T *x,
                                                const POOL_T *dy, POOL_T *dx) {
  const int64_t rows = g->n * g->oh, row_size = g->w * g->c;
  const int exact = tiles_exactly(g);
  int64_t r;
#pragma omp parallel for schedule(static) if (rows * g->ow * g->c > 4096)
  for (r = 0; r < rows; ++r) {
    const int64_t b = r / g->oh, oh = r % g->oh;
    const POOL_T *image = x + b * g->h * row_size;
    POOL_T *grad = dx + b * g->h * row_size;
    float top[CHANNEL_BLOCK], up[CHANNEL_BLOCK];
    int found[CHANNEL_BLOCK];
    int64_t ow, c0, k, y, x0, x1, y0, y1, xx, first, last;
    if (!exact) {
      const POOL_T zero = POOL_STORE(0.0f);
      tile_rows(g, oh, &first, &last);
      for (k = first * row_size; k < last * row_size; ++k) grad[k] = zero;
    }
    for (ow = 0; ow < g->ow; ++ow) {
      const POOL_T *from = dy + (r * g->ow + ow) * g->c;
      clipped_window(g, oh, ow, &y0, &y1, &x0, &x1);
      for (c0 = 0; c0 < g->c; c0 += CHANNEL_BLOCK) {
        const int64_t count =
            g->c - c0 < CHANNEL_BLOCK ? g->c - c0 : CHANNEL_BLOCK;
        tile_top(g, image, oh, ow, c0, count, top);
#pragma omp simd
        for (k = 0; k < count; ++k) {
          up[k] = 0.0f + POOL_LOAD(from[c0 + k]);
          found[k] = 0;
        }
        /* The chosen element is the first equal to the maximum (the first
         * NaN when it is a NaN): a later equal one never replaces it. */
        for (y = y0; y < y1; ++y)
          for (xx = x0; xx < x1; ++xx) {
            const int64_t at = (y * g->w + xx) * g->c + c0;
            const POOL_T *v = image + at;
            POOL_T *cell = grad + at;
#pragma omp simd
            for (k = 0; k < count; ++k) {
              const float u = POOL_LOAD(v[k]), t = top[k];
              const int hit =
                  (found[k] == 0) & ((u == t) | ((u != u) & (t != t)));
              found[k] |= hit;
              cell[k] = POOL_STORE(hit ? up[k] : 0.0f);
            }
          }
      }
    }
  }
}

#undef tile_top
#undef tiles_forward
#undef tiles_backward
