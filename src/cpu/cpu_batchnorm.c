/* cpu_batchnorm.c - batch normalisation on the CPU in the steps of ops.def:
 * the statistics (one pass over x, shifted sums in double), the apply (the
 * normalisation and, on the fused path, a residual and a ReLU) and the
 * backward (with the fused path's ReLU mask and residual gradient); the
 * training forward is the first two, the plain backward the third without
 * mask or residual. Each step reads its inputs once, but the backward,
 * which needs its sums before it can write dx: twice. On the fused path
 * its first pass writes the residual's gradient g, and the second reads g
 * instead of y and dy.
 *
 * x viewed as [outer, channels, inner] with inner > 1 (NCHW images) goes a
 * channel per iteration, its sums in lanes (channel_moments); inner = 1
 * (channels-last images, and [N, C]) goes by blocks of channels over fixed
 * slices of the rows (the *_rows functions), with the same arithmetic.
 *
 * The loops are in cpu_batchnorm_loops.h, included for f32 and for bf16:
 * the bf16 entries read and write bf16 directly (computing in f32, rounded
 * once, as every 16-bit entry does) rather than widening whole tensors to
 * f32 copies around the f32 entries; f16 still goes that way (cpu_lowp.c).
 * They are inlined with constant flags (has a residual, a ReLU, a mask) so
 * that each variant is its own vectorised loop, without a test per
 * element. */
#include <math.h>
#include <stdint.h>
#include <string.h>

#include "core/half.h"
#include "cpu/cpu_internal.h"

#if defined(__GNUC__)
#  define BN_INLINE __attribute__((always_inline)) inline
#else
#  define BN_INLINE inline
#endif

/* Element i of channel c's m = outer * inner values. */
#define BN_INDEX(n, c, i) (((n)*channels + (c)) * inner + (i))

/* The channel sums use independent double accumulators (element i of a
 * row goes to lane i % LANES) so that the loops vectorise, then add the
 * lanes in order (cpu_internal.h). */
#define LANES CUDL_CPU_LANES
#define add_lanes cudl__cpu_lane_total

/* Whether a loop over `elements` values is worth a parallel region. */
#define WORTH_THREADS(elements) ((elements) > 32768)

/* The ReLU of the apply, as cudl_activation_forward computes it. */
static BN_INLINE float relu_of(float v) { return v < 0.0f ? 0.0f : v; }

/* The fused backward's gradient through the ReLU, from its output: dy
 * where y > 0, else +0 (cudl_activation_backward's ReLU). As a mask on the
 * bits rather than a choice: GCC turned the choice into a branch per
 * element in the lane loops of backward_channel_sums, mispredicted on
 * half of a ResNet's values (the NCHW backward ran 4x slower than
 * unmasked). */
static BN_INLINE float through_relu(float y, float dy) {
  const uint32_t keep = (uint32_t)0 - (uint32_t)(y > 0.0f);
  uint32_t bits;
  float g;
  memcpy(&bits, &dy, sizeof bits);
  bits &= keep;
  memcpy(&g, &bits, sizeof g);
  return g;
}

/* The shift the one-pass statistics subtract: the channel's first value,
 * when finite. The sums are of d = x - shift and d^2, and the squared
 * deviation from the mean is sum d^2 - (sum d)^2 / m, which cancels only
 * as far as the mean lies from the shift: a value of the channel lies
 * within a few deviations of its mean, so in double the variance keeps
 * about 14 digits (a mean of 1000 and a deviation of 0.05 included),
 * where E[x^2] - E[x]^2 in float keeps none. */
static double first_value_shift(float first) {
  return isfinite(first) ? (double)first : 0.0;
}

/* The mean, variance, saved statistics and running statistics of channel c
 * from the sums of d = x - shift and of d^2 over its m values. */
static void finish_statistics(int64_t c, double m, double shift, double sum,
                              double squares, float momentum, float eps,
                              float *running_mean, float *running_var,
                              float *save_mean, float *save_invstd) {
  const double mean_d = sum / m;
  const double deviations = squares - sum * mean_d;
  /* Rounding can take a constant channel's just below 0; NaN stays. */
  const double var = deviations < 0.0 ? 0.0 : deviations / m;
  const double mean = shift + mean_d;
  save_mean[c] = (float)mean;
  save_invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
  running_mean[c] =
      (float)((1.0 - momentum) * running_mean[c] + momentum * mean);
  running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                           momentum * var * m / (m - 1.0));
}

/* ---- inner = 1: x is [outer, channels], as channels-last tensors are ----
 * One channel's values are a column, `channels` apart: the per-channel
 * loops (inner > 1) would walk all of x once per channel (a cache line per
 * element as soon as channels >= 16). These walk blocks of ROW_BLOCK channels
 * over slices of the rows: a ResNet's 16 to 64 channels are one or two blocks,
 * so splitting by channels alone left the second core idle (measured on
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
static void slice_rows(int64_t slice, int64_t outer, int64_t *n0, int64_t *n1) {
  *n0 = outer * slice / ROW_SLICES;
  *n1 = outer * (slice + 1) / ROW_SLICES;
}

/* The per-slice and per-channel arrays of the rows functions, in the
 * workspace: part and part2 [ROW_SLICES * channels], the rest [channels]. */
typedef struct rows_scratch {
  double *part, *part2, *sum, *squares, *shift;
  float *finvstd, *k_dy, *k_xhat, *k_0;
} rows_scratch;

static cudl_status rows_scratch_take(cudl_context *ctx, int64_t channels,
                                     rows_scratch *w) {
  const size_t c = (size_t)channels;
  void *base;
  float *f;
  cudl_status status = cudl__cpu_workspace(
      ctx, (2 * ROW_SLICES + 3) * c * sizeof(double) + 4 * c * sizeof(float),
      &base);
  if (status != CUDL_OK) return status;
  w->part = base;
  w->part2 = w->part + ROW_SLICES * c;
  w->sum = w->part2 + ROW_SLICES * c;
  w->squares = w->sum + c;
  w->shift = w->squares + c;
  f = (float *)(w->shift + c);
  w->finvstd = f;
  w->k_dy = f + c;
  w->k_xhat = f + 2 * c;
  w->k_0 = f + 3 * c;
  return CUDL_OK;
}

/* 1 / sqrt(running_var + eps) per channel, for the inference forward's
 * apply, in the workspace. */
static cudl_status inference_invstd(cudl_context *ctx, const float *running_var,
                                    float eps, int64_t channels,
                                    float **invstd) {
  void *space;
  int64_t c;
  cudl_status status =
      cudl__cpu_workspace(ctx, (size_t)channels * sizeof(float), &space);
  if (status != CUDL_OK) return status;
  *invstd = space;
  for (c = 0; c < channels; ++c)
    (*invstd)[c] = (float)(1.0 / sqrt((double)running_var[c] + (double)eps));
  return CUDL_OK;
}

/* ---- the loops and entries, f32 then bf16 ---- */

#define BN_T float
#define BN_LOAD(v) (v)
#define BN_STORE(v) (v)
#define BN_NAME(f) f##_f32
#define BN_ENTRY(op) cudl__cpu_batchnorm_##op
#include "cpu/cpu_batchnorm_loops.h"
#undef BN_T
#undef BN_LOAD
#undef BN_STORE
#undef BN_NAME
#undef BN_ENTRY

#define BN_T uint16_t
#define BN_LOAD(v) cudl__bf16_to_f32(v)
#define BN_STORE(v) cudl__f32_to_bf16(v)
#define BN_NAME(f) f##_bf16
#define BN_ENTRY(op) cudl__cpu_batchnorm_##op##_bf16
#include "cpu/cpu_batchnorm_loops.h"
