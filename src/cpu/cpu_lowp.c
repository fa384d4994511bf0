/*
 * cpu_lowp.c - the CPU's conversions between float dtypes and its bf16 and
 * f16 entries.
 *
 * Each 16-bit entry widens its 16-bit inputs to f32, runs the operator's
 * f32 entry and rounds what it stores once. That is the definition every
 * backend's 16-bit entry meets (core/ops.def: f32 arithmetic, one rounding
 * on the way out), so the CPU's result is the reference the CUDA kernels
 * are held to, at the cost of a copy each way. f32 parameters, statistics
 * and reductions (float * in ops.def) pass through untouched.
 *
 * bf16 convolutions and matrix products first ask their f32 files for a
 * native run (cudl__cpu_<name>_native_bf16: oneDNN computing in bf16 where
 * the CPU has bf16 arithmetic) and widen only where there is none. The
 * bf16 entries of batch norm and add_scaled are not here: they read and
 * write bf16 themselves, computing in f32, on any CPU (cpu_batchnorm.c,
 * cpu_elementwise.c), and neither are the activations' forward and backward
 * (cpu_activation.c, each element widened in registers). Channels-last max
 * pooling whose windows do not overlap reads and writes 16 bits itself
 * (cpu_pooling.c); other pooling widens a sample at a time (below).
 */
#include "core/half.h"
#include "cpu/cpu_internal.h"

/* ---- conversions ---- */

static float load(cudl_dtype dtype, const void *p, int64_t i) {
  switch (dtype) {
    case CUDL_DTYPE_BF16:
      return cudl__bf16_to_f32(((const uint16_t *)p)[i]);
    case CUDL_DTYPE_F16:
      return cudl__f16_to_f32(((const uint16_t *)p)[i]);
    default:
      return ((const float *)p)[i];
  }
}

/* dst[i] = scale * src[i] rounded to dst_dtype. Each pair of dtypes is its
 * own loop, with the conversion inlined and branch-free, so that the
 * compiler vectorises it: a per-element dtype test and a NaN branch made
 * these copies a tenth of a bf16 training step. */
CUDL_CPU_WIDE_CLONES
static void convert(cudl_dtype src_dtype, const void *src, cudl_dtype dst_dtype,
                    void *dst, int64_t n, float scale) {
  int64_t i;
  if (src_dtype == CUDL_DTYPE_BF16 && dst_dtype == CUDL_DTYPE_F32) {
    const uint16_t *s = src;
    float *d = dst;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (i = 0; i < n; ++i) d[i] = scale * cudl__bf16_to_f32(s[i]);
  } else if (src_dtype == CUDL_DTYPE_F32 && dst_dtype == CUDL_DTYPE_BF16) {
    const float *s = src;
    uint16_t *d = dst;
#pragma omp parallel for simd schedule(static) if (n > 32768)
    for (i = 0; i < n; ++i) d[i] = cudl__f32_to_bf16(scale * s[i]);
  } else if (dst_dtype == CUDL_DTYPE_BF16) {
    uint16_t *d = dst;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (i = 0; i < n; ++i)
      d[i] = cudl__f32_to_bf16(scale * load(src_dtype, src, i));
  } else if (dst_dtype == CUDL_DTYPE_F16) {
    uint16_t *d = dst;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (i = 0; i < n; ++i)
      d[i] = cudl__f32_to_f16(scale * load(src_dtype, src, i));
  } else {
    float *d = dst;
#pragma omp parallel for schedule(static) if (n > 32768)
    for (i = 0; i < n; ++i) d[i] = scale * load(src_dtype, src, i);
  }
}

cudl_status cudl__cpu_convert(cudl_context *ctx, const void *src,
                              cudl_dtype src_dtype, void *dst, int64_t n,
                              float scale) {
  (void)ctx;
  convert(src_dtype, src, CUDL_DTYPE_F32, dst, n, scale);
  return CUDL_OK;
}
cudl_status cudl__cpu_convert_bf16(cudl_context *ctx, const void *src,
                                   cudl_dtype src_dtype, void *dst, int64_t n,
                                   float scale) {
  (void)ctx;
  convert(src_dtype, src, CUDL_DTYPE_BF16, dst, n, scale);
  return CUDL_OK;
}
cudl_status cudl__cpu_convert_f16(cudl_context *ctx, const void *src,
                                  cudl_dtype src_dtype, void *dst, int64_t n,
                                  float scale) {
  (void)ctx;
  convert(src_dtype, src, CUDL_DTYPE_F16, dst, n, scale);
  return CUDL_OK;
}

/* ---- transposes ---- */

/* The transpose works on TILE x TILE blocks, a source tile and its
 * destination tile (4 KiB each in f32) staying in L1: a plain double loop
 * over a large [c, h * w] plane walks one of the two a cache line per
 * element and runs at a fraction of memory speed. */
enum { TILE = 32 };

/* One (source, destination) pair of dtypes: `element(v)` turns source
 * value v into the stored destination value, converting as convert does.
 * Within a tile one side is walked along its rows and the other across
 * them, TILE rows apart: the one whose rows are shorter, since rows of a
 * multiple of 4 KiB (an NCHW plane of 32 x 32 floats) fall in one L1 set
 * and evict each other before the tile is done (measured 2x slower). */
/* _Pragma needs its string literal whole, so the formatter keeps out. */
/* clang-format off */
#define DEFINE_TRANSPOSE(name, src_type, dst_type, element)                   \
  static void name(const src_type *src, dst_type *dst, int64_t batch,         \
                   int64_t rows, int64_t cols, float scale) {                 \
    const int64_t row_tiles = (rows + TILE - 1) / TILE;                       \
    const int64_t col_tiles = (cols + TILE - 1) / TILE;                       \
    const int64_t tiles = batch * row_tiles * col_tiles;                      \
    const int64_t n = batch * rows * cols;                                    \
    int64_t t;                                                                \
    (void)scale;                                                              \
    _Pragma("omp parallel for schedule(static) if (n > 32768)")               \
    for (t = 0; t < tiles; ++t) {                                             \
      const int64_t b = t / (row_tiles * col_tiles);                          \
      const int64_t i0 = t / col_tiles % row_tiles * TILE;                    \
      const int64_t j0 = t % col_tiles * TILE;                                \
      const int64_t i1 = i0 + TILE < rows ? i0 + TILE : rows;                 \
      const int64_t j1 = j0 + TILE < cols ? j0 + TILE : cols;                 \
      const src_type *in = src + b * rows * cols;                             \
      dst_type *out = dst + b * rows * cols;                                  \
      int64_t i, j;                                                           \
      if (rows < cols) {                                                      \
        for (i = i0; i < i1; ++i)                                             \
          for (j = j0; j < j1; ++j) {                                         \
            const src_type v = in[i * cols + j];                              \
            out[j * rows + i] = element(v);                                   \
          }                                                                   \
      } else {                                                                \
        for (j = j0; j < j1; ++j)                                             \
          for (i = i0; i < i1; ++i) {                                         \
            const src_type v = in[i * cols + j];                              \
            out[j * rows + i] = element(v);                                   \
          }                                                                   \
      }                                                                       \
    }                                                                         \
  }
/* clang-format on */

#define F32_FROM_F32(v) (scale * (v))
#define F32_FROM_BF16(v) (scale * cudl__bf16_to_f32(v))
#define F32_FROM_F16(v) (scale * cudl__f16_to_f32(v))
#define BF16_FROM_F32(v) cudl__f32_to_bf16(F32_FROM_F32(v))
#define BF16_FROM_BF16(v) cudl__f32_to_bf16(F32_FROM_BF16(v))
#define BF16_FROM_F16(v) cudl__f32_to_bf16(F32_FROM_F16(v))
#define F16_FROM_F32(v) cudl__f32_to_f16(F32_FROM_F32(v))
#define F16_FROM_BF16(v) cudl__f32_to_f16(F32_FROM_BF16(v))
#define F16_FROM_F16(v) cudl__f32_to_f16(F32_FROM_F16(v))
/* A 16-bit value through f32 and back unscaled is itself, but for a NaN,
 * which becomes the canonical 0x7fff: the same bits without the
 * arithmetic (the common case: a layout change within one dtype). */
#define BF16_KEPT(v) ((v & 0x7fffu) > 0x7f80u ? (uint16_t)0x7fffu : v)
#define F16_KEPT(v) ((v & 0x7fffu) > 0x7c00u ? (uint16_t)0x7fffu : v)

DEFINE_TRANSPOSE(transpose_f32_f32, float, float, F32_FROM_F32)
DEFINE_TRANSPOSE(transpose_bf16_f32, uint16_t, float, F32_FROM_BF16)
DEFINE_TRANSPOSE(transpose_f16_f32, uint16_t, float, F32_FROM_F16)
DEFINE_TRANSPOSE(transpose_f32_bf16, float, uint16_t, BF16_FROM_F32)
DEFINE_TRANSPOSE(transpose_bf16_bf16, uint16_t, uint16_t, BF16_FROM_BF16)
DEFINE_TRANSPOSE(transpose_f16_bf16, uint16_t, uint16_t, BF16_FROM_F16)
DEFINE_TRANSPOSE(transpose_f32_f16, float, uint16_t, F16_FROM_F32)
DEFINE_TRANSPOSE(transpose_bf16_f16, uint16_t, uint16_t, F16_FROM_BF16)
DEFINE_TRANSPOSE(transpose_f16_f16, uint16_t, uint16_t, F16_FROM_F16)
DEFINE_TRANSPOSE(transpose_bf16_kept, uint16_t, uint16_t, BF16_KEPT)
DEFINE_TRANSPOSE(transpose_f16_kept, uint16_t, uint16_t, F16_KEPT)

/* dst [batch, cols, rows] in dst_dtype = scale * src [batch, rows, cols]
 * transposed, each element converted as convert does. */
static void transpose(cudl_dtype src_dtype, const void *src,
                      cudl_dtype dst_dtype, void *dst, int64_t batch,
                      int64_t rows, int64_t cols, float scale) {
  const int src_bf16 = src_dtype == CUDL_DTYPE_BF16;
  const int src_f16 = src_dtype == CUDL_DTYPE_F16;
  /* A single row or column is laid out the same both ways round. */
  if (rows == 1 || cols == 1) {
    convert(src_dtype, src, dst_dtype, dst, batch * rows * cols, scale);
  } else if (dst_dtype == CUDL_DTYPE_BF16) {
    if (src_bf16 && scale == 1.0f)
      transpose_bf16_kept(src, dst, batch, rows, cols, scale);
    else if (src_bf16)
      transpose_bf16_bf16(src, dst, batch, rows, cols, scale);
    else if (src_f16)
      transpose_f16_bf16(src, dst, batch, rows, cols, scale);
    else
      transpose_f32_bf16(src, dst, batch, rows, cols, scale);
  } else if (dst_dtype == CUDL_DTYPE_F16) {
    if (src_f16 && scale == 1.0f)
      transpose_f16_kept(src, dst, batch, rows, cols, scale);
    else if (src_bf16)
      transpose_bf16_f16(src, dst, batch, rows, cols, scale);
    else if (src_f16)
      transpose_f16_f16(src, dst, batch, rows, cols, scale);
    else
      transpose_f32_f16(src, dst, batch, rows, cols, scale);
  } else {
    if (src_bf16)
      transpose_bf16_f32(src, dst, batch, rows, cols, scale);
    else if (src_f16)
      transpose_f16_f32(src, dst, batch, rows, cols, scale);
    else
      transpose_f32_f32(src, dst, batch, rows, cols, scale);
  }
}

cudl_status cudl__cpu_transpose(cudl_context *ctx, const void *src,
                                cudl_dtype src_dtype, void *dst, int64_t batch,
                                int64_t rows, int64_t cols, float scale) {
  (void)ctx;
  transpose(src_dtype, src, CUDL_DTYPE_F32, dst, batch, rows, cols, scale);
  return CUDL_OK;
}
cudl_status cudl__cpu_transpose_bf16(cudl_context *ctx, const void *src,
                                     cudl_dtype src_dtype, void *dst,
                                     int64_t batch, int64_t rows, int64_t cols,
                                     float scale) {
  (void)ctx;
  transpose(src_dtype, src, CUDL_DTYPE_BF16, dst, batch, rows, cols, scale);
  return CUDL_OK;
}
cudl_status cudl__cpu_transpose_f16(cudl_context *ctx, const void *src,
                                    cudl_dtype src_dtype, void *dst,
                                    int64_t batch, int64_t rows, int64_t cols,
                                    float scale) {
  (void)ctx;
  transpose(src_dtype, src, CUDL_DTYPE_F16, dst, batch, rows, cols, scale);
  return CUDL_OK;
}

/* ---- f32 working copies ---- */

/* The f32 buffers of one 16-bit call, from the context's allocator (not the
 * workspace: the f32 entry may use that). */
#define MAX_WIDE 5
typedef struct wide_set {
  cudl_context *ctx;
  cudl_dtype dtype;
  float *buffer[MAX_WIDE];
  size_t bytes[MAX_WIDE];
  int count;
  cudl_status status; /* the first failure; later calls do nothing */
} wide_set;

static wide_set wide_begin(cudl_context *ctx, cudl_dtype dtype) {
  wide_set w;
  memset(&w, 0, sizeof w);
  w.ctx = ctx;
  w.dtype = dtype;
  w.status = CUDL_OK;
  return w;
}

/* An f32 buffer of n elements, holding src widened unless src is NULL. NULL
 * after a failure (recorded in w->status), or for n = 0. */
static float *wide(wide_set *w, const void *src, int64_t n) {
  size_t bytes;
  float *p;
  if (w->status != CUDL_OK || n <= 0) return NULL;
  if (w->count == MAX_WIDE) { /* a wrapper below asks for too many */
    w->status = cudl__fail(w->ctx, CUDL_ERR_INTERNAL, __func__,
                           "more than %d f32 copies in one call", MAX_WIDE);
    return NULL;
  }
  if (!cudl__mul_size((size_t)n, sizeof(float), &bytes)) {
    w->status = cudl__fail(w->ctx, CUDL_ERR_OUT_OF_MEMORY, __func__,
                           "an f32 copy of %lld elements overflows size_t",
                           (long long)n);
    return NULL;
  }
  p = cudl__host_alloc(&w->ctx->allocator, bytes, CUDL_HOST_ALIGNMENT);
  if (p == NULL) {
    w->status = cudl__fail(w->ctx, CUDL_ERR_OUT_OF_MEMORY, __func__,
                           "no memory for an f32 copy of %lld %s elements",
                           (long long)n, cudl_dtype_name(w->dtype));
    return NULL;
  }
  w->buffer[w->count] = p;
  w->bytes[w->count] = bytes;
  ++w->count;
  if (src != NULL) convert(w->dtype, src, CUDL_DTYPE_F32, p, n, 1.0f);
  return p;
}

/* Round src (n f32 values) into dst, if everything so far succeeded. */
static void narrow(wide_set *w, const float *src, void *dst, int64_t n) {
  if (w->status == CUDL_OK && dst != NULL && n > 0)
    convert(CUDL_DTYPE_F32, src, w->dtype, dst, n, 1.0f);
}

/* Free the buffers; `status` is the f32 entry's, unless a buffer failed. */
static cudl_status wide_end(wide_set *w, cudl_status status) {
  int k;
  for (k = 0; k < w->count; ++k)
    cudl__host_free(&w->ctx->allocator, w->buffer[k], w->bytes[k]);
  return w->status != CUDL_OK ? w->status : status;
}

/* Run `call` (an f32 entry) once every buffer exists. */
#define RUN(w, call) ((w).status == CUDL_OK ? (call) : (w).status)

/* Both 16-bit entries of an operator from its lowp_<name>(dtype, ...). */
#define LOWP_ENTRIES(name, params, args)               \
  cudl_status cudl__cpu_##name##_bf16 params {         \
    return lowp_##name(CUDL_DTYPE_BF16, UNPAREN args); \
  }                                                    \
  cudl_status cudl__cpu_##name##_f16 params {          \
    return lowp_##name(CUDL_DTYPE_F16, UNPAREN args);  \
  }
#define UNPAREN(...) __VA_ARGS__

/* The f16 entry alone, for an operator whose bf16 entry reads and writes
 * bf16 itself (batch norm: cpu_batchnorm_loops.h; add_scaled:
 * cpu_elementwise.c). */
#define LOWP_ENTRY_F16(name, params, args)            \
  cudl_status cudl__cpu_##name##_f16 params {         \
    return lowp_##name(CUDL_DTYPE_F16, UNPAREN args); \
  }

/* The same, for an operator whose bf16 entry runs natively where it can. */
#define LOWP_ENTRIES_NATIVE_BF16(name, params, args)                         \
  cudl_status cudl__cpu_##name##_bf16 params {                               \
    int ran = 0;                                                             \
    cudl_status status = cudl__cpu_##name##_native_bf16(UNPAREN args, &ran); \
    if (status != CUDL_OK || ran) return status;                             \
    return lowp_##name(CUDL_DTYPE_BF16, UNPAREN args);                       \
  }                                                                          \
  cudl_status cudl__cpu_##name##_f16 params {                                \
    return lowp_##name(CUDL_DTYPE_F16, UNPAREN args);                        \
  }

/* ---- initialisation ---- */

static cudl_status lowp_fill(cudl_dtype dtype, cudl_context *ctx, void *dst,
                             int64_t n, float value) {
  const uint16_t bits = dtype == CUDL_DTYPE_BF16 ? cudl__f32_to_bf16(value)
                                                 : cudl__f32_to_f16(value);
  uint16_t *d = dst;
  int64_t i;
  (void)ctx;
  for (i = 0; i < n; ++i) d[i] = bits;
  return CUDL_OK;
}
LOWP_ENTRIES(fill, (cudl_context * ctx, void *dst, int64_t n, float value),
             (ctx, dst, n, value))

/* ---- activations and dropout ---- */

/* The activations' 16-bit entries are cpu_activation.c's own loops, which
 * widen each element in registers. */

static cudl_status lowp_prelu_forward(cudl_dtype dtype, cudl_context *ctx,
                                      const void *x, const float *slope,
                                      void *y, int64_t outer, int64_t channels,
                                      int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, NULL, n);
  cudl_status s = RUN(
      w, cudl__cpu_prelu_forward(ctx, wx, slope, wy, outer, channels, inner));
  if (s == CUDL_OK) narrow(&w, wy, y, n);
  return wide_end(&w, s);
}
LOWP_ENTRIES(prelu_forward,
             (cudl_context * ctx, const void *x, const float *slope, void *y,
              int64_t outer, int64_t channels, int64_t inner),
             (ctx, x, slope, y, outer, channels, inner))

static cudl_status lowp_prelu_backward(cudl_dtype dtype, cudl_context *ctx,
                                       const void *x, const float *slope,
                                       const void *dy, void *dx, float *dslope,
                                       int64_t outer, int64_t channels,
                                       int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wdy = wide(&w, dy, n);
  float *wdx = wide(&w, NULL, n);
  cudl_status s =
      RUN(w, cudl__cpu_prelu_backward(ctx, wx, slope, wdy, wdx, dslope, outer,
                                      channels, inner));
  if (s == CUDL_OK) narrow(&w, wdx, dx, n);
  return wide_end(&w, s);
}
LOWP_ENTRIES(prelu_backward,
             (cudl_context * ctx, const void *x, const float *slope,
              const void *dy, void *dx, float *dslope, int64_t outer,
              int64_t channels, int64_t inner),
             (ctx, x, slope, dy, dx, dslope, outer, channels, inner))

static cudl_status lowp_rrelu_forward(cudl_dtype dtype, cudl_context *ctx,
                                      const void *x, void *noise, void *y,
                                      int64_t n, float lower, float upper,
                                      int training, uint64_t seed,
                                      uint64_t offset) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, NULL, n);
  float *wnoise = noise != NULL ? wide(&w, NULL, n) : NULL;
  cudl_status s =
      RUN(w, cudl__cpu_rrelu_forward(ctx, wx, wnoise, wy, n, lower, upper,
                                     training, seed, offset));
  if (s == CUDL_OK) {
    narrow(&w, wy, y, n);
    narrow(&w, wnoise, noise, n);
  }
  return wide_end(&w, s);
}
LOWP_ENTRIES(rrelu_forward,
             (cudl_context * ctx, const void *x, void *noise, void *y,
              int64_t n, float lower, float upper, int training, uint64_t seed,
              uint64_t offset),
             (ctx, x, noise, y, n, lower, upper, training, seed, offset))

static cudl_status lowp_unit_activity(cudl_dtype dtype, cudl_context *ctx,
                                      const void *x, float *active,
                                      int64_t outer, int64_t units,
                                      int64_t inner) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, outer * units * inner);
  cudl_status s =
      RUN(w, cudl__cpu_unit_activity(ctx, wx, active, outer, units, inner));
  return wide_end(&w, s);
}
LOWP_ENTRIES(unit_activity,
             (cudl_context * ctx, const void *x, float *active, int64_t outer,
              int64_t units, int64_t inner),
             (ctx, x, active, outer, units, inner))

static cudl_status lowp_count_nonfinite(cudl_dtype dtype, cudl_context *ctx,
                                        const void *x, int64_t n,
                                        int64_t counts[2]) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n);
  cudl_status s = RUN(w, cudl__cpu_count_nonfinite(ctx, wx, n, counts));
  return wide_end(&w, s);
}
LOWP_ENTRIES(count_nonfinite,
             (cudl_context * ctx, const void *x, int64_t n, int64_t counts[2]),
             (ctx, x, n, counts))

static cudl_status lowp_dropout_forward(cudl_dtype dtype, cudl_context *ctx,
                                        const void *x, void *mask, void *y,
                                        int64_t n, float p, int training,
                                        uint64_t seed, uint64_t offset) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, NULL, n);
  float *wmask = mask != NULL ? wide(&w, NULL, n) : NULL;
  cudl_status s = RUN(w, cudl__cpu_dropout_forward(ctx, wx, wmask, wy, n, p,
                                                   training, seed, offset));
  if (s == CUDL_OK) {
    narrow(&w, wy, y, n);
    narrow(&w, wmask, mask, n);
  }
  return wide_end(&w, s);
}
LOWP_ENTRIES(dropout_forward,
             (cudl_context * ctx, const void *x, void *mask, void *y, int64_t n,
              float p, int training, uint64_t seed, uint64_t offset),
             (ctx, x, mask, y, n, p, training, seed, offset))

static cudl_status lowp_activation_dropout_forward(
    cudl_dtype dtype, cudl_context *ctx, cudl_activation_type kind, float alpha,
    const void *x, void *mask, void *y, int64_t n, float p, uint64_t seed,
    uint64_t offset) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, NULL, n);
  float *wmask = wide(&w, NULL, n);
  cudl_status s =
      RUN(w, cudl__cpu_activation_dropout_forward(ctx, kind, alpha, wx, wmask,
                                                  wy, n, p, seed, offset));
  if (s == CUDL_OK) {
    narrow(&w, wy, y, n);
    narrow(&w, wmask, mask, n);
  }
  return wide_end(&w, s);
}
LOWP_ENTRIES(activation_dropout_forward,
             (cudl_context * ctx, cudl_activation_type kind, float alpha,
              const void *x, void *mask, void *y, int64_t n, float p,
              uint64_t seed, uint64_t offset),
             (ctx, kind, alpha, x, mask, y, n, p, seed, offset))

static cudl_status lowp_activation_dropout_backward(
    cudl_dtype dtype, cudl_context *ctx, cudl_activation_type kind, float alpha,
    const void *x, const void *mask, const void *dy, void *dx, int64_t n) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wmask = wide(&w, mask, n);
  float *wdy = wide(&w, dy, n), *wdx = wide(&w, NULL, n);
  cudl_status s = RUN(w, cudl__cpu_activation_dropout_backward(
                             ctx, kind, alpha, wx, wmask, wdy, wdx, n));
  if (s == CUDL_OK) narrow(&w, wdx, dx, n);
  return wide_end(&w, s);
}
LOWP_ENTRIES(activation_dropout_backward,
             (cudl_context * ctx, cudl_activation_type kind, float alpha,
              const void *x, const void *mask, const void *dy, void *dx,
              int64_t n),
             (ctx, kind, alpha, x, mask, dy, dx, n))

/* ---- pooling ---- */

/* Pooling is per sample, and the f32 entry computes a sample of a batch as
 * it computes that sample alone (geometry n = 1): so with enough samples
 * to spread over the threads, the 16-bit entries widen one sample at a
 * time into f32 copies that stay in cache, rather than whole tensors
 * through memory (the small CNN's bf16 step spent an eighth of its time in
 * those copies). The samples go in SAMPLE_SLOTS fixed runs, each with its
 * own copies in the workspace; the results are the same bits either way. */
enum { SAMPLE_SLOTS = 16 };

static cudl_status pool2d_by_sample(cudl_dtype dtype, cudl_context *ctx,
                                    const cudl_pool2d_geometry *g, int is_max,
                                    const void *x, const void *dy, void *out,
                                    int backward) {
  const int64_t in = g->c * g->h * g->w, pooled = g->c * g->oh * g->ow;
  /* forward: x -> y (out); backward: x, dy -> dx (out) */
  const int64_t per_slot = backward ? 2 * in + pooled : in + pooled;
  cudl_pool2d_geometry one = *g;
  const uint16_t *x16 = x, *dy16 = dy;
  uint16_t *out16 = out;
  size_t bytes;
  void *space;
  int64_t slot;
  cudl_status status;
  if (!cudl__mul_size((size_t)(SAMPLE_SLOTS * per_slot), sizeof(float),
                      &bytes))
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, __func__,
                      "f32 copies of %lld samples overflow size_t",
                      (long long)SAMPLE_SLOTS);
  status = cudl__cpu_workspace(ctx, bytes, &space);
  if (status != CUDL_OK) return status;
  one.n = 1;
#pragma omp parallel for schedule(static)
  for (slot = 0; slot < SAMPLE_SLOTS; ++slot) {
    float *wx = (float *)space + slot * per_slot, *wy = wx + in;
    float *wdx = wy + pooled; /* backward */
    int64_t b;
    for (b = g->n * slot / SAMPLE_SLOTS; b < g->n * (slot + 1) / SAMPLE_SLOTS;
         ++b) {
      /* The f32 entries of pooling succeed whatever their input. */
      if (x != NULL) convert(dtype, x16 + b * in, CUDL_DTYPE_F32, wx, in, 1.0f);
      if (!backward) {
        (void)cudl__cpu_pool2d_forward(ctx, &one, is_max, wx, wy);
        convert(CUDL_DTYPE_F32, wy, dtype, out16 + b * pooled, pooled, 1.0f);
      } else {
        convert(dtype, dy16 + b * pooled, CUDL_DTYPE_F32, wy, pooled, 1.0f);
        (void)cudl__cpu_pool2d_backward(ctx, &one, is_max,
                                        x != NULL ? wx : NULL, wy, wdx);
        convert(CUDL_DTYPE_F32, wdx, dtype, out16 + b * in, in, 1.0f);
      }
    }
  }
  return CUDL_OK;
}

static cudl_status lowp_pool2d_forward(cudl_dtype dtype, cudl_context *ctx,
                                       const cudl_pool2d_geometry *g,
                                       int is_max, const void *x, void *y) {
  const int64_t nx = g->n * g->c * g->h * g->w,
                ny = g->n * g->c * g->oh * g->ow;
  wide_set w;
  cudl_status s;
  if (cudl__cpu_pool2d_tiles(g, is_max)) {
    cudl__cpu_max_pool2d_tiles_forward(dtype, g, x, y);
    return CUDL_OK;
  }
  if (g->n >= SAMPLE_SLOTS)
    return pool2d_by_sample(dtype, ctx, g, is_max, x, NULL, y, 0);
  w = wide_begin(ctx, dtype);
  {
    float *wx = wide(&w, x, nx), *wy = wide(&w, NULL, ny);
    s = RUN(w, cudl__cpu_pool2d_forward(ctx, g, is_max, wx, wy));
    if (s == CUDL_OK) narrow(&w, wy, y, ny);
  }
  return wide_end(&w, s);
}
LOWP_ENTRIES(pool2d_forward,
             (cudl_context * ctx, const cudl_pool2d_geometry *g, int is_max,
              const void *x, void *y),
             (ctx, g, is_max, x, y))

static cudl_status lowp_pool2d_backward(cudl_dtype dtype, cudl_context *ctx,
                                        const cudl_pool2d_geometry *g,
                                        int is_max, const void *x,
                                        const void *dy, void *dx) {
  const int64_t nx = g->n * g->c * g->h * g->w,
                ny = g->n * g->c * g->oh * g->ow;
  wide_set w;
  cudl_status s;
  if (cudl__cpu_pool2d_tiles(g, is_max)) {
    cudl__cpu_max_pool2d_tiles_backward(dtype, g, x, dy, dx);
    return CUDL_OK;
  }
  if (g->n >= SAMPLE_SLOTS)
    return pool2d_by_sample(dtype, ctx, g, is_max, x, dy, dx, 1);
  w = wide_begin(ctx, dtype);
  {
    float *wx = x != NULL ? wide(&w, x, nx) : NULL;
    float *wdy = wide(&w, dy, ny), *wdx = wide(&w, NULL, nx);
    s = RUN(w, cudl__cpu_pool2d_backward(ctx, g, is_max, wx, wdy, wdx));
    if (s == CUDL_OK) narrow(&w, wdx, dx, nx);
  }
  return wide_end(&w, s);
}
LOWP_ENTRIES(pool2d_backward,
             (cudl_context * ctx, const cudl_pool2d_geometry *g, int is_max,
              const void *x, const void *dy, void *dx),
             (ctx, g, is_max, x, dy, dx))

static cudl_status lowp_global_avg_pool_forward(cudl_dtype dtype,
                                                cudl_context *ctx,
                                                const void *x, void *y,
                                                int64_t outer, int64_t cols,
                                                int64_t inner) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, outer * cols * inner);
  float *wy = wide(&w, NULL, outer * inner);
  cudl_status s = RUN(
      w, cudl__cpu_global_avg_pool_forward(ctx, wx, wy, outer, cols, inner));
  if (s == CUDL_OK) narrow(&w, wy, y, outer * inner);
  return wide_end(&w, s);
}
LOWP_ENTRIES(global_avg_pool_forward,
             (cudl_context * ctx, const void *x, void *y, int64_t outer,
              int64_t cols, int64_t inner),
             (ctx, x, y, outer, cols, inner))

static cudl_status lowp_global_avg_pool_backward(cudl_dtype dtype,
                                                 cudl_context *ctx,
                                                 const void *dy, void *dx,
                                                 int64_t outer, int64_t cols,
                                                 int64_t inner) {
  wide_set w = wide_begin(ctx, dtype);
  float *wdy = wide(&w, dy, outer * inner);
  float *wdx = wide(&w, NULL, outer * cols * inner);
  cudl_status s = RUN(
      w, cudl__cpu_global_avg_pool_backward(ctx, wdy, wdx, outer, cols, inner));
  if (s == CUDL_OK) narrow(&w, wdx, dx, outer * cols * inner);
  return wide_end(&w, s);
}
LOWP_ENTRIES(global_avg_pool_backward,
             (cudl_context * ctx, const void *dy, void *dx, int64_t outer,
              int64_t cols, int64_t inner),
             (ctx, dy, dx, outer, cols, inner))

/* ---- batch normalisation: f16 (bf16 is cpu_batchnorm.c's) ---- */

static cudl_status lowp_batchnorm_forward_training(
    cudl_dtype dtype, cudl_context *ctx, const void *x, const float *gamma,
    const float *beta, float momentum, float eps, float *running_mean,
    float *running_var, void *y, float *save_mean, float *save_invstd,
    int64_t outer, int64_t channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, NULL, n);
  cudl_status s =
      RUN(w, cudl__cpu_batchnorm_forward_training(
                 ctx, wx, gamma, beta, momentum, eps, running_mean, running_var,
                 wy, save_mean, save_invstd, outer, channels, inner));
  if (s == CUDL_OK) narrow(&w, wy, y, n);
  return wide_end(&w, s);
}
LOWP_ENTRY_F16(batchnorm_forward_training,
             (cudl_context * ctx, const void *x, const float *gamma,
              const float *beta, float momentum, float eps, float *running_mean,
              float *running_var, void *y, float *save_mean, float *save_invstd,
              int64_t outer, int64_t channels, int64_t inner),
             (ctx, x, gamma, beta, momentum, eps, running_mean, running_var, y,
              save_mean, save_invstd, outer, channels, inner))

static cudl_status lowp_batchnorm_forward_inference(
    cudl_dtype dtype, cudl_context *ctx, const void *x, const float *gamma,
    const float *beta, const float *running_mean, const float *running_var,
    float eps, void *y, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, NULL, n);
  cudl_status s = RUN(w, cudl__cpu_batchnorm_forward_inference(
                             ctx, wx, gamma, beta, running_mean, running_var,
                             eps, wy, outer, channels, inner));
  if (s == CUDL_OK) narrow(&w, wy, y, n);
  return wide_end(&w, s);
}
LOWP_ENTRY_F16(batchnorm_forward_inference,
             (cudl_context * ctx, const void *x, const float *gamma,
              const float *beta, const float *running_mean,
              const float *running_var, float eps, void *y, int64_t outer,
              int64_t channels, int64_t inner),
             (ctx, x, gamma, beta, running_mean, running_var, eps, y, outer,
              channels, inner))

static cudl_status lowp_batchnorm_backward(
    cudl_dtype dtype, cudl_context *ctx, const void *x, const void *dy,
    const float *gamma, const float *save_mean, const float *save_invstd,
    void *dx, float *dgamma, float *dbeta, int64_t outer, int64_t channels,
    int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wdy = wide(&w, dy, n);
  float *wdx = wide(&w, NULL, n);
  cudl_status s = RUN(w, cudl__cpu_batchnorm_backward(
                             ctx, wx, wdy, gamma, save_mean, save_invstd, wdx,
                             dgamma, dbeta, outer, channels, inner));
  if (s == CUDL_OK) narrow(&w, wdx, dx, n);
  return wide_end(&w, s);
}
LOWP_ENTRY_F16(batchnorm_backward,
             (cudl_context * ctx, const void *x, const void *dy,
              const float *gamma, const float *save_mean,
              const float *save_invstd, void *dx, float *dgamma, float *dbeta,
              int64_t outer, int64_t channels, int64_t inner),
             (ctx, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
              outer, channels, inner))

static cudl_status lowp_batchnorm_statistics(
    cudl_dtype dtype, cudl_context *ctx, const void *x, float momentum,
    float eps, float *running_mean, float *running_var, float *save_mean,
    float *save_invstd, int64_t outer, int64_t channels, int64_t inner) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, outer * channels * inner);
  cudl_status s = RUN(w, cudl__cpu_batchnorm_statistics(
                             ctx, wx, momentum, eps, running_mean, running_var,
                             save_mean, save_invstd, outer, channels, inner));
  return wide_end(&w, s);
}
LOWP_ENTRY_F16(batchnorm_statistics,
             (cudl_context * ctx, const void *x, float momentum, float eps,
              float *running_mean, float *running_var, float *save_mean,
              float *save_invstd, int64_t outer, int64_t channels,
              int64_t inner),
             (ctx, x, momentum, eps, running_mean, running_var, save_mean,
              save_invstd, outer, channels, inner))

static cudl_status lowp_batchnorm_apply(
    cudl_dtype dtype, cudl_context *ctx, const void *x, const float *gamma,
    const float *beta, const float *mean, const float *invstd,
    const void *residual, int relu, void *y, int64_t outer, int64_t channels,
    int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, NULL, n);
  float *wres = residual != NULL ? wide(&w, residual, n) : NULL;
  cudl_status s = RUN(w, cudl__cpu_batchnorm_apply(ctx, wx, gamma, beta, mean,
                                                   invstd, wres, relu, wy,
                                                   outer, channels, inner));
  if (s == CUDL_OK) narrow(&w, wy, y, n);
  return wide_end(&w, s);
}
LOWP_ENTRY_F16(batchnorm_apply,
             (cudl_context * ctx, const void *x, const float *gamma,
              const float *beta, const float *mean, const float *invstd,
              const void *residual, int relu, void *y, int64_t outer,
              int64_t channels, int64_t inner),
             (ctx, x, gamma, beta, mean, invstd, residual, relu, y, outer,
              channels, inner))

static cudl_status lowp_batchnorm_relu_backward(
    cudl_dtype dtype, cudl_context *ctx, const void *x, const void *y,
    const void *dy, const float *gamma, const float *save_mean,
    const float *save_invstd, void *dx, void *dresidual, float *dgamma,
    float *dbeta, int64_t outer, int64_t channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n), *wy = wide(&w, y, n), *wdy = wide(&w, dy, n);
  float *wdx = wide(&w, NULL, n);
  float *wdres = dresidual != NULL ? wide(&w, NULL, n) : NULL;
  cudl_status s = RUN(
      w, cudl__cpu_batchnorm_relu_backward(ctx, wx, wy, wdy, gamma, save_mean,
                                           save_invstd, wdx, wdres, dgamma,
                                           dbeta, outer, channels, inner));
  if (s == CUDL_OK) {
    narrow(&w, wdx, dx, n);
    if (wdres != NULL) narrow(&w, wdres, dresidual, n);
  }
  return wide_end(&w, s);
}
LOWP_ENTRY_F16(batchnorm_relu_backward,
             (cudl_context * ctx, const void *x, const void *y, const void *dy,
              const float *gamma, const float *save_mean,
              const float *save_invstd, void *dx, void *dresidual,
              float *dgamma, float *dbeta, int64_t outer, int64_t channels,
              int64_t inner),
             (ctx, x, y, dy, gamma, save_mean, save_invstd, dx, dresidual,
              dgamma, dbeta, outer, channels, inner))

/* ---- elementwise arithmetic ---- */

static cudl_status lowp_add_scaled(cudl_dtype dtype, cudl_context *ctx,
                                   const void *a, float alpha, const void *b,
                                   void *out, int64_t n) {
  wide_set w = wide_begin(ctx, dtype);
  float *wa = wide(&w, a, n), *wb = wide(&w, b, n);
  cudl_status s = RUN(w, cudl__cpu_add_scaled(ctx, wa, alpha, wb, wa, n));
  if (s == CUDL_OK) narrow(&w, wa, out, n);
  return wide_end(&w, s);
}
LOWP_ENTRY_F16(add_scaled,
             (cudl_context * ctx, const void *a, float alpha, const void *b,
              void *out, int64_t n),
             (ctx, a, alpha, b, out, n))

static cudl_status lowp_scale(cudl_dtype dtype, cudl_context *ctx,
                              const void *a, float alpha, void *out,
                              int64_t n) {
  wide_set w = wide_begin(ctx, dtype);
  float *wa = wide(&w, a, n);
  cudl_status s = RUN(w, cudl__cpu_scale(ctx, wa, alpha, wa, n));
  if (s == CUDL_OK) narrow(&w, wa, out, n);
  return wide_end(&w, s);
}
LOWP_ENTRIES(scale,
             (cudl_context * ctx, const void *a, float alpha, void *out,
              int64_t n),
             (ctx, a, alpha, out, n))

static cudl_status lowp_mul(cudl_dtype dtype, cudl_context *ctx, const void *a,
                            const void *b, void *out, int64_t n) {
  wide_set w = wide_begin(ctx, dtype);
  float *wa = wide(&w, a, n), *wb = wide(&w, b, n);
  cudl_status s = RUN(w, cudl__cpu_mul(ctx, wa, wb, wa, n));
  if (s == CUDL_OK) narrow(&w, wa, out, n);
  return wide_end(&w, s);
}
LOWP_ENTRIES(mul,
             (cudl_context * ctx, const void *a, const void *b, void *out,
              int64_t n),
             (ctx, a, b, out, n))

static cudl_status lowp_l2_norm(cudl_dtype dtype, cudl_context *ctx,
                                const void *x, float *norm, int64_t n) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, n);
  cudl_status s = RUN(w, cudl__cpu_l2_norm(ctx, wx, norm, n));
  return wide_end(&w, s);
}
LOWP_ENTRIES(l2_norm,
             (cudl_context * ctx, const void *x, float *norm, int64_t n),
             (ctx, x, norm, n))

/* ---- matrix products and convolutions ---- */

/* Elements a rows x cols matrix with row stride ld spans. */
static int64_t span(int64_t rows, int64_t cols, int64_t ld) {
  return rows > 0 && cols > 0 ? (rows - 1) * ld + cols : 0;
}

static cudl_status lowp_gemm(cudl_dtype dtype, cudl_context *ctx, int trans_a,
                             int trans_b, int64_t m, int64_t n, int64_t k,
                             float alpha, const void *a, int64_t lda,
                             const void *b, int64_t ldb, float beta, void *c,
                             int64_t ldc) {
  const int64_t na = trans_a ? span(k, m, lda) : span(m, k, lda);
  const int64_t nb = trans_b ? span(n, k, ldb) : span(k, n, ldb);
  const int64_t nc = span(m, n, ldc);
  wide_set w = wide_begin(ctx, dtype);
  float *wa = wide(&w, a, na), *wb = wide(&w, b, nb);
  /* beta = 0 must not read C (it may hold NaN). */
  float *wc = wide(&w, beta != 0.0f ? c : NULL, nc);
  cudl_status s = RUN(w, cudl__cpu_gemm(ctx, trans_a, trans_b, m, n, k, alpha,
                                        wa, lda, wb, ldb, beta, wc, ldc));
  if (s == CUDL_OK) narrow(&w, wc, c, nc);
  return wide_end(&w, s);
}
LOWP_ENTRIES_NATIVE_BF16(gemm,
                         (cudl_context * ctx, int trans_a, int trans_b,
                          int64_t m, int64_t n, int64_t k, float alpha,
                          const void *a, int64_t lda, const void *b,
                          int64_t ldb, float beta, void *c, int64_t ldc),
                         (ctx, trans_a, trans_b, m, n, k, alpha, a, lda, b, ldb,
                          beta, c, ldc))

static cudl_status lowp_bias_add(cudl_dtype dtype, cudl_context *ctx, void *y,
                                 const void *bias, int64_t outer,
                                 int64_t channels, int64_t inner) {
  const int64_t n = outer * channels * inner;
  wide_set w = wide_begin(ctx, dtype);
  float *wy = wide(&w, y, n), *wbias = wide(&w, bias, channels);
  cudl_status s =
      RUN(w, cudl__cpu_bias_add(ctx, wy, wbias, outer, channels, inner));
  if (s == CUDL_OK) narrow(&w, wy, y, n);
  return wide_end(&w, s);
}
LOWP_ENTRIES(bias_add,
             (cudl_context * ctx, void *y, const void *bias, int64_t outer,
              int64_t channels, int64_t inner),
             (ctx, y, bias, outer, channels, inner))

static cudl_status lowp_channel_sum(cudl_dtype dtype, cudl_context *ctx,
                                    const void *x, void *out, int64_t outer,
                                    int64_t channels, int64_t inner) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, outer * channels * inner);
  float *wout = wide(&w, NULL, channels);
  cudl_status s =
      RUN(w, cudl__cpu_channel_sum(ctx, wx, wout, outer, channels, inner));
  if (s == CUDL_OK) narrow(&w, wout, out, channels);
  return wide_end(&w, s);
}
LOWP_ENTRIES(channel_sum,
             (cudl_context * ctx, const void *x, void *out, int64_t outer,
              int64_t channels, int64_t inner),
             (ctx, x, out, outer, channels, inner))

static int64_t conv_x_numel(const cudl_conv2d_geometry *g) {
  return g->n * g->c * g->h * g->w;
}
static int64_t conv_w_numel(const cudl_conv2d_geometry *g) {
  return g->k * (g->c / g->groups) * g->r * g->s;
}
static int64_t conv_y_numel(const cudl_conv2d_geometry *g) {
  return g->n * g->k * g->oh * g->ow;
}

static cudl_status lowp_conv2d_forward(cudl_dtype dtype, cudl_context *ctx,
                                       const cudl_conv2d_geometry *g,
                                       const void *x, const void *wt, void *y) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, conv_x_numel(g));
  float *ww = wide(&w, wt, conv_w_numel(g));
  float *wy = wide(&w, NULL, conv_y_numel(g));
  cudl_status s = RUN(w, cudl__cpu_conv2d_forward(ctx, g, wx, ww, wy));
  if (s == CUDL_OK) narrow(&w, wy, y, conv_y_numel(g));
  return wide_end(&w, s);
}
LOWP_ENTRIES_NATIVE_BF16(conv2d_forward,
                         (cudl_context * ctx, const cudl_conv2d_geometry *g,
                          const void *x, const void *w, void *y),
                         (ctx, g, x, w, y))

/* The f32 pass takes an epilogue only on channels-last tensors
 * (cpu_conv.c): elsewhere it is declined before any copy is made. */
static cudl_status lowp_conv2d_forward_fused(cudl_dtype dtype,
                                             cudl_context *ctx,
                                             const cudl_conv2d_geometry *g,
                                             const void *x, const void *wt,
                                             const cudl_conv2d_epilogue *e,
                                             void *y, int *fused) {
  wide_set w = wide_begin(ctx, dtype);
  cudl_conv2d_epilogue wide_e = *e;
  float *wx, *ww, *wy;
  cudl_status s;
  *fused = 0;
  if (!g->channels_last) return CUDL_OK;
  wx = wide(&w, x, conv_x_numel(g));
  ww = wide(&w, wt, conv_w_numel(g));
  wy = wide(&w, NULL, conv_y_numel(g));
  if (e->bias != NULL) wide_e.bias = wide(&w, e->bias, g->k);
  if (e->residual != NULL)
    wide_e.residual = wide(&w, e->residual, conv_y_numel(g));
  s = RUN(w,
          cudl__cpu_conv2d_forward_fused(ctx, g, wx, ww, &wide_e, wy, fused));
  if (s == CUDL_OK && *fused) narrow(&w, wy, y, conv_y_numel(g));
  return wide_end(&w, s);
}
LOWP_ENTRIES_NATIVE_BF16(conv2d_forward_fused,
                         (cudl_context * ctx, const cudl_conv2d_geometry *g,
                          const void *x, const void *w,
                          const cudl_conv2d_epilogue *e, void *y, int *fused),
                         (ctx, g, x, w, e, y, fused))

static cudl_status lowp_conv2d_backward_data(cudl_dtype dtype,
                                             cudl_context *ctx,
                                             const cudl_conv2d_geometry *g,
                                             const void *wt, const void *dy,
                                             void *dx) {
  wide_set w = wide_begin(ctx, dtype);
  float *ww = wide(&w, wt, conv_w_numel(g));
  float *wdy = wide(&w, dy, conv_y_numel(g));
  float *wdx = wide(&w, NULL, conv_x_numel(g));
  cudl_status s = RUN(w, cudl__cpu_conv2d_backward_data(ctx, g, ww, wdy, wdx));
  if (s == CUDL_OK) narrow(&w, wdx, dx, conv_x_numel(g));
  return wide_end(&w, s);
}
LOWP_ENTRIES_NATIVE_BF16(conv2d_backward_data,
                         (cudl_context * ctx, const cudl_conv2d_geometry *g,
                          const void *w, const void *dy, void *dx),
                         (ctx, g, w, dy, dx))

static cudl_status lowp_conv2d_backward_filter(cudl_dtype dtype,
                                               cudl_context *ctx,
                                               const cudl_conv2d_geometry *g,
                                               const void *x, const void *dy,
                                               void *dw) {
  wide_set w = wide_begin(ctx, dtype);
  float *wx = wide(&w, x, conv_x_numel(g));
  float *wdy = wide(&w, dy, conv_y_numel(g));
  float *wdw = wide(&w, NULL, conv_w_numel(g));
  cudl_status s =
      RUN(w, cudl__cpu_conv2d_backward_filter(ctx, g, wx, wdy, wdw));
  if (s == CUDL_OK) narrow(&w, wdw, dw, conv_w_numel(g));
  return wide_end(&w, s);
}
LOWP_ENTRIES_NATIVE_BF16(conv2d_backward_filter,
                         (cudl_context * ctx, const cudl_conv2d_geometry *g,
                          const void *x, const void *dy, void *dw),
                         (ctx, g, x, dy, dw))
