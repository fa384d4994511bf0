/* cpu_internal.h - what the CPU backend's files share: the per-context
 * state, the workspace and the summation helpers. The operators' prototypes
 * come from core/ops.h. */
#ifndef CUDL_CPU_INTERNAL_H
#define CUDL_CPU_INTERNAL_H

#include "core/internal.h"

/* The CPU backend's per-context state (ctx->backend_state), made on first
 * use: a scratch buffer kept across calls, so that convolutions do not map
 * and fault in fresh pages every time, and oneDNN's engine and stream. */
struct dnnl_engine;
struct dnnl_stream;
/* Sums of float values in double that vectorise: value i goes to lane
 * i % CUDL_CPU_LANES, and the lanes are added in order at the end, so the
 * result depends on the values alone (not on threads). A single running
 * sum is one chain of dependent additions, several times slower. */
#define CUDL_CPU_LANES 8
static inline double cudl__cpu_lane_total(const double *lane) {
  double total = 0.0;
  int j;
  for (j = 0; j < CUDL_CPU_LANES; ++j) total += lane[j];
  return total;
}
static inline double cudl__cpu_sum_lanes(const float *x, int64_t n) {
  double lane[CUDL_CPU_LANES] = {0};
  int64_t i;
  int j;
  for (i = 0; i + CUDL_CPU_LANES <= n; i += CUDL_CPU_LANES)
    for (j = 0; j < CUDL_CPU_LANES; ++j) lane[j] += (double)x[i + j];
  for (; i < n; ++i) lane[i % CUDL_CPU_LANES] += (double)x[i];
  return cudl__cpu_lane_total(lane);
}

/* The library is built for any x86-64 (SSE2), where the loops that widen
 * 16-bit values, compute in f32 and round back run 4 elements a vector.
 * Functions marked CUDL_CPU_WIDE_CLONES are compiled again for x86-64-v3
 * (AVX2) and x86-64-v4 (AVX-512) and the loader picks the widest the CPU
 * has (a GNU ifunc). Every clone performs the same IEEE operations in the
 * same order (no contraction into fused multiply-adds: -ffp-contract=off),
 * so results do not depend on the CPU. A bf16 ReLU over 2^20 elements on one Zen 4 core:
 * 0.61 ms SSE2, 0.28 ms AVX2, 0.16 ms AVX-512. CUDL_FMA_CLONES is the same
 * for the optimizer updates, whose fmaf is one instruction with FMA.
 * ThreadSanitizer builds define CUDL_NO_TARGET_CLONES (it crashes on an
 * ifunc resolver that runs before it is initialised); clang before 15
 * emits a clone only under its .ifunc name, which does not link. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__)) && \
    !defined(CUDL_NO_TARGET_CLONES) &&                                  \
    !(defined(__clang__) && __clang_major__ < 15)
#  define CUDL_CPU_WIDE_CLONES \
    __attribute__((            \
        target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#  define CUDL_FMA_CLONES __attribute__((target_clones("fma", "default")))
#else
#  define CUDL_CPU_WIDE_CLONES
#  define CUDL_FMA_CLONES
#endif

/* How many convolution plans a context keeps: every pass of the zoo's
 * models at two batch sizes (the last batch of an epoch is often smaller),
 * with room to spare. */
#define CUDL_CPU_CONV_PLANS 96

typedef struct cudl_cpu_state {
  cudl_allocator allocator; /* allocated this object */
  /* The workspace grows from the context's allocator of the moment (so
   * that allocations made after fault injection began are counted) and
   * goes back to the one it came from. */
  cudl_allocator workspace_allocator;
  void *workspace;
  size_t workspace_size;
  struct dnnl_engine *dnnl_engine; /* made on first use (cpu_dnnl.c) */
  struct dnnl_stream *dnnl_stream;
  /* The convolution passes made ready to run (cpu_conv.c), by shape. */
  struct cudl_cpu_conv_plan *conv_plans[CUDL_CPU_CONV_PLANS];
  uint64_t conv_plan_clock; /* counts uses, for least recently used */
} cudl_cpu_state;

/* *out = the context's state, made on first use. */
cudl_status cudl__cpu_state(cudl_context *ctx, cudl_cpu_state **out);
/* *ptr = the context's workspace, grown to at least nbytes. Its contents
 * are undefined; a call must not hold it across another op. */
cudl_status cudl__cpu_workspace(cudl_context *ctx, size_t nbytes, void **ptr);
/* Release the oneDNN objects in state (cpu_dnnl.c). */
void cudl__cpu_dnnl_release(cudl_cpu_state *state);
/* Release the convolution plans in state (cpu_conv.c), before the engine. */
void cudl__cpu_conv_plans_release(cudl_cpu_state *state);
/* bf16 matrix products and convolutions computed in bf16 by oneDNN
 * (cpu_gemm.c, cpu_conv.c), for the bf16 entries of cpu_lowp.c: the
 * arguments of ops.def's gemm and conv2d_*, and *ran, 0 with nothing done
 * where the CPU has no bf16 arithmetic or oneDNN no optimised kernel for
 * the problem (the entry widens to f32 then). */
cudl_status cudl__cpu_gemm_native_bf16(cudl_context *ctx, int trans_a,
                                       int trans_b, int64_t m, int64_t n,
                                       int64_t k, float alpha, const void *a,
                                       int64_t lda, const void *b, int64_t ldb,
                                       float beta, void *c, int64_t ldc,
                                       int *ran);
cudl_status cudl__cpu_conv2d_forward_native_bf16(cudl_context *ctx,
                                                 const cudl_conv2d_geometry *g,
                                                 const void *x, const void *w,
                                                 void *y, int *ran);
cudl_status cudl__cpu_conv2d_forward_fused_native_bf16(
    cudl_context *ctx, const cudl_conv2d_geometry *g, const void *x,
    const void *w, const cudl_conv2d_epilogue *e, void *y, int *fused,
    int *ran);
cudl_status cudl__cpu_conv2d_backward_data_native_bf16(
    cudl_context *ctx, const cudl_conv2d_geometry *g, const void *w,
    const void *dy, void *dx, int *ran);
cudl_status cudl__cpu_conv2d_backward_filter_native_bf16(
    cudl_context *ctx, const cudl_conv2d_geometry *g, const void *x,
    const void *dy, void *dw, int *ran);
/* Whether pool2d on geometry g is channels-last max pooling whose windows
 * do not overlap (stride >= kernel), which cpu_pooling.c computes in the
 * tensors' own dtype: the f32, bf16 and f16 entries all run these two
 * (they cannot fail: the geometry is validated). */
int cudl__cpu_pool2d_tiles(const cudl_pool2d_geometry *g, int is_max);
void cudl__cpu_max_pool2d_tiles_forward(cudl_dtype dtype,
                                        const cudl_pool2d_geometry *g,
                                        const void *x, void *y);
void cudl__cpu_max_pool2d_tiles_backward(cudl_dtype dtype,
                                         const cudl_pool2d_geometry *g,
                                         const void *x, const void *dy,
                                         void *dx);
/* The runtime's check_compute_dtype (core/runtime.h), in cpu_dnnl.c: f32
 * always, bf16 where oneDNN computes in it natively, f16 never. */
cudl_status cudl__cpu_check_compute_dtype(cudl_context *ctx, cudl_dtype dtype);

#endif /* CUDL_CPU_INTERNAL_H */
