/* cpu_conv.c - 2-D convolution on the CPU through oneDNN.
 *
 * Chosen by measurement over im2col + OpenBLAS sgemm, which this file used
 * to do: on ResNet-20 and small-CNN layers oneDNN's direct convolutions are
 * several times faster in all three passes (benchmarks/results/, made with
 * benchmarks/cpu/bench_layers).
 *
 * cudl's tensors are plain NCHW (weights OIHW, or GOIHW for groups, which
 * is the same bytes) or channels-last (NHWC, weights OHWI or GOHWI). For
 * NCHW tensors oneDNN is asked for the layouts it prefers (format_tag any, in
 * practice channel-blocked ones); operands whose preferred layout differs from
 * the plain one are reordered into the context's workspace before the call
 * and, for the output, back after it, as PyTorch does with its NCHW tensors.
 * Channels-last activations are handed to oneDNN as they are (its nhwc
 * kernels, as PyTorch's channels-last): the reorders cost ResNet-20 at batch
 * 128 a tenth of its training step on the 2-core development machine, and
 * the nhwc kernels run as fast as the blocked ones there. Only where oneDNN
 * has nothing but its reference loops for nhwc (a shape its optimised kernels
 * do not take) does a channels-last pass go through the blocked layouts. A
 * pass's primitive and reorders are made at its shape's first call and kept
 * in the context (a plan, below), so a repeated shape makes nothing.
 * Scratchpads come from the same workspace (scratchpad mode user), so a
 * steady-state call allocates nothing but oneDNN's memory handles.
 *
 * bf16 takes the same path where oneDNN computes in bf16 with the CPU's
 * own instructions (cudl__cpu_bf16_native: AVX512-BF16 or AMX) and has an
 * optimised kernel for the shape: bf16 operands and layouts, f32
 * accumulation inside oneDNN, one rounding of the output (the hardware's,
 * which flushes subnormal results to zero). The bf16 entries (cpu_lowp.c)
 * come here first; everywhere else (other CPUs, or a shape only oneDNN's
 * reference loops take) they widen around the f32 entry, as f16's always
 * do. Folding the conversion
 * into the layout reorders instead was measured up to 30 times slower
 * than f32 on the ResNet-20 layers on the AVX2 development machine:
 * oneDNN 2.6 converts there with its scalar reference reorder.
 */
#include <string.h>
#ifdef _OPENMP
#  include <omp.h>
#endif

#include "cpu/cpu_dnnl.h"

typedef enum pass {
  PASS_FORWARD,
  PASS_BACKWARD_DATA,
  PASS_BACKWARD_FILTER
} pass;

/* The descriptors of x [n, c, h, w], w ([k, c/g, r, s], or
 * [g, k/g, c/g, r, s] for groups) and y [n, k, oh, ow] of `type`, plain
 * (NCHW, or channels-last: x [n, h, w, c], w [k, r, s, c/g] or
 * [g, k/g, r, s, c/g], y [n, oh, ow, k]) and what the primitive is asked
 * for: `any` (the layout oneDNN prefers) for the weights, and for x and y
 * too unless data_as_is asks for their plain layout; and oneDNN's stride,
 * dilation
 * (d - 1) and padding arrays. padding_r makes oneDNN's output size come out
 * as ours even where the last window does not reach the padded edge. */
typedef struct conv_descs {
  dnnl_memory_desc_t x, w, y, bias, x_any, w_any, y_any;
  dnnl_dims_t strides, dilates, pad_l, pad_r;
} conv_descs;

static cudl_status make_descs(cudl_context *ctx, const cudl_conv2d_geometry *g,
                              dnnl_data_type_t type, int data_as_is,
                              conv_descs *d) {
  dnnl_dims_t xd = {0}, wd = {0}, yd = {0}, bd = {0};
  int w_ndims;
  dnnl_format_tag_t data_tag, weight_tag;
  cudl_status status = CUDL_OK;
  xd[0] = g->n;
  xd[1] = g->c;
  xd[2] = g->h;
  xd[3] = g->w;
  yd[0] = g->n;
  yd[1] = g->k;
  yd[2] = g->oh;
  yd[3] = g->ow;
  if (g->groups == 1) {
    w_ndims = 4;
    wd[0] = g->k;
    wd[1] = g->c;
    wd[2] = g->r;
    wd[3] = g->s;
  } else {
    w_ndims = 5;
    wd[0] = g->groups;
    wd[1] = g->k / g->groups;
    wd[2] = g->c / g->groups;
    wd[3] = g->r;
    wd[4] = g->s;
  }
  /* oneDNN's dims are always the logical ones; the tag says where the
   * channels lie. */
  if (g->channels_last) {
    data_tag = dnnl_nhwc;
    weight_tag = w_ndims == 4 ? dnnl_ohwi : dnnl_gohwi;
  } else {
    data_tag = dnnl_nchw;
    weight_tag = w_ndims == 4 ? dnnl_oihw : dnnl_goihw;
  }
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&d->x, 4, xd, type, data_tag));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&d->y, 4, yd, type, data_tag));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&d->w, w_ndims, wd, type, weight_tag));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(
      &d->x_any, 4, xd, type, data_as_is ? data_tag : dnnl_format_tag_any));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(
      &d->y_any, 4, yd, type, data_as_is ? data_tag : dnnl_format_tag_any));
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&d->w_any, w_ndims, wd, type,
                                        dnnl_format_tag_any));
  bd[0] = g->k;
  DNNL_TRY(dnnl_memory_desc_init_by_tag(&d->bias, 1, bd, type, dnnl_a));
  memset(d->strides, 0, sizeof d->strides);
  memset(d->dilates, 0, sizeof d->dilates);
  memset(d->pad_l, 0, sizeof d->pad_l);
  memset(d->pad_r, 0, sizeof d->pad_r);
  d->strides[0] = g->sh;
  d->strides[1] = g->sw;
  d->dilates[0] = g->dh - 1;
  d->dilates[1] = g->dw - 1;
  d->pad_l[0] = g->ph;
  d->pad_l[1] = g->pw;
  d->pad_r[0] = (g->oh - 1) * g->sh + g->dh * (g->r - 1) + 1 - g->h - g->ph;
  d->pad_r[1] = (g->ow - 1) * g->sw + g->dw * (g->s - 1) + 1 - g->w - g->pw;
done:
  return status;
}

/* The primitive descriptor of pass `which` with algorithm `alg` on d's
 * `any` descriptors (and d's bias where `bias`) and, for the backward
 * passes, the forward one it takes as a hint. oneDNN's status, recorded
 * nowhere: the caller decides whether a failure is one. */
static dnnl_status_t make_pd(const cudl_cpu_state *dnnl, const conv_descs *d,
                             pass which, dnnl_alg_kind_t alg, int bias,
                             const_dnnl_primitive_attr_t attr,
                             dnnl_primitive_desc_t *pd,
                             dnnl_primitive_desc_t *fwd_pd) {
  dnnl_convolution_desc_t fwd_desc, bwd_desc;
  dnnl_status_t s = dnnl_dilated_convolution_forward_desc_init(
      &fwd_desc, dnnl_forward_training, alg, &d->x_any, &d->w_any,
      bias ? &d->bias : NULL, &d->y_any, d->strides, d->dilates, d->pad_l,
      d->pad_r);
  if (s != dnnl_success) return s;
  if (which == PASS_FORWARD)
    return dnnl_primitive_desc_create(pd, &fwd_desc, attr, dnnl->dnnl_engine,
                                      NULL);
  s = dnnl_primitive_desc_create(fwd_pd, &fwd_desc, NULL, dnnl->dnnl_engine,
                                 NULL);
  if (s != dnnl_success) return s;
  if (which == PASS_BACKWARD_DATA)
    s = dnnl_dilated_convolution_backward_data_desc_init(
        &bwd_desc, alg, &d->x_any, &d->w_any, &d->y_any, d->strides, d->dilates,
        d->pad_l, d->pad_r);
  else
    s = dnnl_dilated_convolution_backward_weights_desc_init(
        &bwd_desc, alg, &d->x_any, &d->w_any, NULL, &d->y_any, d->strides,
        d->dilates, d->pad_l, d->pad_r);
  if (s != dnnl_success) return s;
  return dnnl_primitive_desc_create(pd, &bwd_desc, attr, dnnl->dnnl_engine,
                                    *fwd_pd);
}

/* make_pd, but dnnl_unimplemented, with nothing left to destroy, where
 * oneDNN offers only its reference loops: the caller then tries another
 * algorithm or layout. */
static dnnl_status_t make_optimised_pd(const cudl_cpu_state *dnnl,
                                       const conv_descs *d, pass which,
                                       dnnl_alg_kind_t alg, int bias,
                                       const_dnnl_primitive_attr_t attr,
                                       dnnl_primitive_desc_t *pd,
                                       dnnl_primitive_desc_t *fwd_pd) {
  dnnl_status_t made = make_pd(dnnl, d, which, alg, bias, attr, pd, fwd_pd);
  if (made == dnnl_success && cudl__cpu_dnnl_is_reference(*pd)) {
    dnnl_primitive_desc_destroy(*pd);
    *pd = NULL;
    made = dnnl_unimplemented;
  }
  if (made != dnnl_success && *fwd_pd != NULL) {
    dnnl_primitive_desc_destroy(*fwd_pd);
    *fwd_pd = NULL;
  }
  return made;
}

static const char *creating(pass which) {
  return which == PASS_FORWARD ? "creating the forward convolution"
         : which == PASS_BACKWARD_DATA
             ? "creating the backward-data convolution"
             : "creating the backward-filter convolution";
}

/* Whether operand i (x, w, y in that order) is what `which` writes. */
static int is_output(pass which, int i) {
  return (which == PASS_FORWARD && i == 2) ||
         (which == PASS_BACKWARD_DATA && i == 0) ||
         (which == PASS_BACKWARD_FILTER && i == 1);
}

/* Round a workspace offset up to the host alignment. */
static size_t align_up(size_t n) {
  return (n + CUDL_HOST_ALIGNMENT - 1) & ~(size_t)(CUDL_HOST_ALIGNMENT - 1);
}

/* The epilogue as oneDNN's post-ops on attr: the residual through the sum
 * post-op (y += the result, so the residual is copied into y first), then
 * the (leaky) ReLU; the bias is the convolution's own operand. Not the
 * binary addition post-op, which reads the residual where it lies: oneDNN
 * 2.6's gemm-based channels-last kernel misplaces it (dilated or strided
 * shapes of test_backends' convolution rows came out wrong). */
static cudl_status set_epilogue(cudl_context *ctx,
                                const cudl_conv2d_epilogue *e,
                                dnnl_primitive_attr_t attr) {
  dnnl_post_ops_t post_ops = NULL;
  cudl_status status = CUDL_OK;
  DNNL_TRY(dnnl_post_ops_create(&post_ops));
  if (e->residual != NULL) DNNL_TRY(dnnl_post_ops_append_sum(post_ops, 1.0f));
  if (e->relu)
    DNNL_TRY(dnnl_post_ops_append_eltwise(post_ops, 1.0f, dnnl_eltwise_relu,
                                          e->negative_slope, 0.0f));
  DNNL_TRY(dnnl_primitive_attr_set_post_ops(attr, post_ops));
done:
  if (post_ops != NULL) dnnl_post_ops_destroy(post_ops);
  return status;
}

/* The least work (multiply-adds of the pass) that takes Winograd: ResNet-20's
 * 3x3 layers from batch 32 up. With no minimum, its training step took 1.27x
 * the direct one's time at batch 1 and 1.01-1.06x at batch 8 (1x28x28). */
#define WINOGRAD_MIN_MACS 33554432.0 /* 2^25 */

/* Whether an f32 pass goes through oneDNN's Winograd convolution (F(4x4,
 * 3x3), in its blocked layouts, the operands reordered around it): 3x3
 * kernels at stride 1, undilated and ungrouped, with channels in whole
 * blocks of 16, at least 32 of them, and work enough to repay the
 * transforms and reorders. On the 2-core Zen 4 development VM, batch 128,
 * channels-last, the 32- and 64-channel layers' passes took 0.46-0.84 of
 * their direct time and ResNet-20's fp32 training step 0.90-0.91
 * (benchmarks/results/cpu-amd-epyc-zen4-2core-2026-12-07-winograd); with
 * 16-channel layers admitted too the step was no faster (their reorders
 * cost what the transform saves). Where oneDNN has no Winograd kernel (a
 * CPU without AVX-512) the direct path runs. The choice depends on the
 * shape alone, so results are the same bits every run; its rounding error
 * is larger than a direct sum's, as cuDNN's Winograd and FFT algorithms'
 * are (test_backends' convolution rows bound both backends alike). bf16
 * has no Winograd kernel in oneDNN 2.6. */
static int takes_winograd(const cudl_conv2d_geometry *g, cudl_dtype dtype) {
  const double macs = (double)g->n * (double)g->oh * (double)g->ow *
                      (double)g->k * (double)g->c * 9.0;
  return dtype == CUDL_DTYPE_F32 && g->groups == 1 && g->r == 3 && g->s == 3 &&
         g->sh == 1 && g->sw == 1 && g->dh == 1 && g->dw == 1 &&
         g->c % 16 == 0 && g->k % 16 == 0 && g->c >= 32 && g->k >= 32 &&
         macs >= WINOGRAD_MIN_MACS;
}

/* ---- plans: what a pass needs from oneDNN, made once per shape ---- */

/* Everything a plan depends on, as 64-bit integers so that keys compare
 * with memcmp: the geometry, the pass, the dtype, the epilogue's parts and
 * the OpenMP threads (a oneDNN primitive sizes its scratchpad and splits
 * its work for the threads it was made with). */
typedef struct plan_key {
  cudl_conv2d_geometry g;
  int64_t which, dtype, threads;
  int64_t epilogue, bias, residual, relu, negative_slope_bits;
} plan_key;

/* A pass made ready to run: the primitive, the reorders around it, and the
 * workspace's layout. oneDNN's own primitive cache keeps the generated
 * code, but making the descriptors, the primitive descriptor and the
 * primitive again each call took a fifth of ResNet-20's time at batch 1
 * (1x28x28, fp32) on the development machine; a plan takes none of it. */
struct cudl_cpu_conv_plan {
  plan_key key;
  uint64_t last_used;
  cudl_allocator allocator; /* allocated this plan */
  /* Nothing to run: bf16 with only oneDNN's reference loops for the pass,
   * or an epilogue no optimised kernel takes. The caller falls back. */
  int declined;
  dnnl_primitive_t prim;
  /* x, w, y in the roles of the pass (run_pass): cudl's layout, the
   * primitive's, the argument each is, and the reorder into the
   * primitive's layout (inputs, and y where a residual is summed into it)
   * or back out of it (the output); NULL where the layouts agree. */
  dnnl_memory_desc_t plain[3], wanted[3], bias, scratch;
  int arg_of[3];
  dnnl_primitive_t to_wanted[3], from_wanted[3];
  size_t offsets[4], total;
};

static void plan_destroy(struct cudl_cpu_conv_plan *p) {
  cudl_allocator allocator;
  int i;
  if (p == NULL) return;
  for (i = 0; i < 3; ++i) {
    if (p->to_wanted[i] != NULL) dnnl_primitive_destroy(p->to_wanted[i]);
    if (p->from_wanted[i] != NULL) dnnl_primitive_destroy(p->from_wanted[i]);
  }
  if (p->prim != NULL) dnnl_primitive_destroy(p->prim);
  allocator = p->allocator;
  cudl__host_free(&allocator, p, sizeof *p);
}

void cudl__cpu_conv_plans_release(cudl_cpu_state *state) {
  int i;
  for (i = 0; i < CUDL_CPU_CONV_PLANS; ++i) {
    plan_destroy(state->conv_plans[i]);
    state->conv_plans[i] = NULL;
  }
}

static plan_key make_key(const cudl_conv2d_geometry *g, pass which,
                         cudl_dtype dtype, const cudl_conv2d_epilogue *e) {
  plan_key k;
  memset(&k, 0, sizeof k);
  k.g = *g;
  k.which = which;
  k.dtype = dtype;
#ifdef _OPENMP
  k.threads = omp_get_max_threads();
#else
  k.threads = 1;
#endif
  if (e != NULL) {
    uint32_t bits;
    memcpy(&bits, &e->negative_slope, sizeof bits);
    k.epilogue = 1;
    k.bias = e->bias != NULL;
    k.residual = e->residual != NULL;
    k.relu = e->relu != 0;
    k.negative_slope_bits = bits;
  }
  return k;
}

/* A reorder primitive from `from` to `to`. */
static cudl_status make_reorder(cudl_context *ctx, cudl_cpu_state *dnnl,
                                const dnnl_memory_desc_t *from,
                                const dnnl_memory_desc_t *to,
                                dnnl_primitive_t *prim) {
  dnnl_primitive_desc_t pd = NULL;
  cudl_status status = CUDL_OK;
  DNNL_TRY(dnnl_reorder_primitive_desc_create(&pd, from, dnnl->dnnl_engine, to,
                                              dnnl->dnnl_engine, NULL));
  DNNL_TRY(dnnl_primitive_create(prim, pd));
done:
  if (pd != NULL) dnnl_primitive_desc_destroy(pd);
  return status;
}

/* The primitive descriptor for p's pass, trying the algorithms and layouts
 * in order: Winograd where it takes the shape, channels-last tensors as
 * they are, then oneDNN's preferred layouts (for an epilogue or bf16, only
 * optimised kernels; else whatever oneDNN has). *pd is NULL, with nothing
 * recorded, where the pass is declined; d holds the descriptors made. */
static cudl_status choose_pd(cudl_context *ctx, cudl_cpu_state *dnnl,
                             const cudl_conv2d_geometry *g, pass which,
                             cudl_dtype dtype, const cudl_conv2d_epilogue *e,
                             conv_descs *d, dnnl_primitive_desc_t *pd) {
  const dnnl_data_type_t type = cudl__cpu_dnnl_type(dtype);
  const int bias = e != NULL && e->bias != NULL;
  dnnl_primitive_attr_t attr = NULL;
  dnnl_primitive_desc_t fwd_pd = NULL;
  dnnl_status_t made = dnnl_unimplemented;
  cudl_status status = CUDL_OK;
  *pd = NULL;
  DNNL_TRY(dnnl_primitive_attr_create(&attr));
  DNNL_TRY(
      dnnl_primitive_attr_set_scratchpad_mode(attr, dnnl_scratchpad_mode_user));
  if (e != NULL) {
    status = set_epilogue(ctx, e, attr);
    if (status != CUDL_OK) goto done;
  }
  if (takes_winograd(g, dtype)) {
    status = make_descs(ctx, g, type, 0, d);
    if (status != CUDL_OK) goto done;
    made = make_optimised_pd(dnnl, d, which, dnnl_convolution_winograd, bias,
                             attr, pd, &fwd_pd);
  }
  if (made != dnnl_success && g->channels_last) {
    status = make_descs(ctx, g, type, 1, d);
    if (status != CUDL_OK) goto done;
    made = make_optimised_pd(dnnl, d, which, dnnl_convolution_direct, bias,
                             attr, pd, &fwd_pd);
  }
  if (e != NULL && made != dnnl_success) goto done; /* declined */
  if (made != dnnl_success) {
    status = make_descs(ctx, g, type, 0, d);
    if (status != CUDL_OK) goto done;
    made =
        make_pd(dnnl, d, which, dnnl_convolution_direct, 0, attr, pd, &fwd_pd);
  }
  if (type == dnnl_bf16 &&
      (made == dnnl_unimplemented ||
       (made == dnnl_success && cudl__cpu_dnnl_is_reference(*pd)))) {
    made = dnnl_unimplemented; /* declined */
    goto done;
  }
  if (made != dnnl_success)
    status =
        cudl__cpu_dnnl_error(ctx, made, creating(which), __FILE__, __LINE__);
done:
  if (made != dnnl_success && *pd != NULL) {
    dnnl_primitive_desc_destroy(*pd);
    *pd = NULL;
  }
  if (fwd_pd != NULL) dnnl_primitive_desc_destroy(fwd_pd);
  if (attr != NULL) dnnl_primitive_attr_destroy(attr);
  return status;
}

/* Fill plan p (its key set, the rest zeroed) for its pass. */
static cudl_status make_plan(cudl_context *ctx, cudl_cpu_state *dnnl,
                             const cudl_conv2d_geometry *g, pass which,
                             cudl_dtype dtype, const cudl_conv2d_epilogue *e,
                             struct cudl_cpu_conv_plan *p) {
  static const dnnl_query_t forward[3] = {
      dnnl_query_src_md, dnnl_query_weights_md, dnnl_query_dst_md};
  static const dnnl_query_t backward_data[3] = {
      dnnl_query_diff_src_md, dnnl_query_weights_md, dnnl_query_diff_dst_md};
  static const dnnl_query_t backward_filter[3] = {
      dnnl_query_src_md, dnnl_query_diff_weights_md, dnnl_query_diff_dst_md};
  static const int forward_args[3] = {DNNL_ARG_SRC, DNNL_ARG_WEIGHTS,
                                      DNNL_ARG_DST};
  static const int backward_data_args[3] = {DNNL_ARG_DIFF_SRC, DNNL_ARG_WEIGHTS,
                                            DNNL_ARG_DIFF_DST};
  static const int backward_filter_args[3] = {
      DNNL_ARG_SRC, DNNL_ARG_DIFF_WEIGHTS, DNNL_ARG_DIFF_DST};
  const dnnl_query_t *queries = which == PASS_FORWARD         ? forward
                                : which == PASS_BACKWARD_DATA ? backward_data
                                                              : backward_filter;
  const int *args = which == PASS_FORWARD         ? forward_args
                    : which == PASS_BACKWARD_DATA ? backward_data_args
                                                  : backward_filter_args;
  const dnnl_memory_desc_t *scratch;
  dnnl_primitive_desc_t pd = NULL;
  conv_descs d;
  size_t total = 0;
  int i;
  cudl_status status = choose_pd(ctx, dnnl, g, which, dtype, e, &d, &pd);
  if (status != CUDL_OK) return status;
  if (pd == NULL) {
    p->declined = 1;
    return CUDL_OK;
  }
  p->plain[0] = d.x;
  p->plain[1] = d.w;
  p->plain[2] = d.y;
  p->bias = d.bias;
  for (i = 0; i < 3; ++i) {
    const dnnl_memory_desc_t *wanted =
        dnnl_primitive_desc_query_md(pd, queries[i], 0);
    if (wanted == NULL) {
      status = CUDL_FAIL(ctx, CUDL_ERR_INTERNAL,
                         "oneDNN returned no memory descriptor for an operand");
      goto done;
    }
    p->wanted[i] = *wanted;
    p->arg_of[i] = args[i];
  }
  scratch = dnnl_primitive_desc_query_md(pd, dnnl_query_scratchpad_md, 0);
  if (scratch != NULL) p->scratch = *scratch;
  /* The workspace: a buffer per operand in another layout, then the
   * scratchpad. */
  for (i = 0; i < 3; ++i) {
    p->offsets[i] = total;
    if (dnnl_memory_desc_equal(&p->plain[i], &p->wanted[i])) continue;
    total = align_up(total + dnnl_memory_desc_get_size(&p->wanted[i]));
    if (is_output(which, i)) {
      status = make_reorder(ctx, dnnl, &p->wanted[i], &p->plain[i],
                            &p->from_wanted[i]);
      if (status == CUDL_OK && e != NULL && e->residual != NULL)
        status = make_reorder(ctx, dnnl, &p->plain[i], &p->wanted[i],
                              &p->to_wanted[i]);
    } else {
      status = make_reorder(ctx, dnnl, &p->plain[i], &p->wanted[i],
                            &p->to_wanted[i]);
    }
    if (status != CUDL_OK) goto done;
  }
  p->offsets[3] = total;
  p->total = total + dnnl_memory_desc_get_size(&p->scratch);
  DNNL_TRY(dnnl_primitive_create(&p->prim, pd));
done:
  dnnl_primitive_desc_destroy(pd);
  return status;
}

/* The context's plan for key (made and kept on first use; the least
 * recently used of CUDL_CPU_CONV_PLANS goes when they are all taken). */
static cudl_status find_plan(cudl_context *ctx, cudl_cpu_state *dnnl,
                             const plan_key *key, const cudl_conv2d_geometry *g,
                             pass which, cudl_dtype dtype,
                             const cudl_conv2d_epilogue *e,
                             struct cudl_cpu_conv_plan **out) {
  struct cudl_cpu_conv_plan *p;
  int i, slot = 0;
  cudl_status status;
  for (i = 0; i < CUDL_CPU_CONV_PLANS; ++i) {
    p = dnnl->conv_plans[i];
    if (p != NULL && memcmp(&p->key, key, sizeof *key) == 0) {
      p->last_used = ++dnnl->conv_plan_clock;
      *out = p;
      return CUDL_OK;
    }
    if (p == NULL || (dnnl->conv_plans[slot] != NULL &&
                      p->last_used < dnnl->conv_plans[slot]->last_used))
      slot = i;
  }
  p = (struct cudl_cpu_conv_plan *)cudl__host_alloc(&ctx->allocator, sizeof *p,
                                                    sizeof(void *));
  if (p == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                     "cannot allocate a convolution plan");
  memset(p, 0, sizeof *p);
  p->allocator = ctx->allocator;
  p->key = *key;
  status = make_plan(ctx, dnnl, g, which, dtype, e, p);
  if (status != CUDL_OK) {
    plan_destroy(p);
    return status;
  }
  plan_destroy(dnnl->conv_plans[slot]);
  p->last_used = ++dnnl->conv_plan_clock;
  dnnl->conv_plans[slot] = p;
  *out = p;
  return CUDL_OK;
}

/* Run reorder primitive r from `from` (layout from_md, at from_data) to
 * `to` (to_md, at to_data). */
static cudl_status run_reorder(cudl_context *ctx, cudl_cpu_state *dnnl,
                               dnnl_primitive_t r,
                               const dnnl_memory_desc_t *from_md,
                               const void *from_data,
                               const dnnl_memory_desc_t *to_md, void *to_data) {
  dnnl_memory_t from = NULL, to = NULL;
  dnnl_exec_arg_t args[2];
  cudl_status status = CUDL_OK;
  DNNL_TRY(
      dnnl_memory_create(&from, from_md, dnnl->dnnl_engine, (void *)from_data));
  DNNL_TRY(dnnl_memory_create(&to, to_md, dnnl->dnnl_engine, to_data));
  args[0].arg = DNNL_ARG_FROM;
  args[0].memory = from;
  args[1].arg = DNNL_ARG_TO;
  args[1].memory = to;
  DNNL_TRY(dnnl_primitive_execute(r, dnnl->dnnl_stream, 2, args));
done:
  if (from != NULL) dnnl_memory_destroy(from);
  if (to != NULL) dnnl_memory_destroy(to);
  return status;
}

/* One convolution pass on tensors of `dtype` (f32, or bf16 computed in
 * bf16). in1 and in2 are the inputs, out the output, in the order and with
 * the roles of `which`:
 *   forward          x, w -> y
 *   backward data    w, dy -> dx
 *   backward filter  x, dy -> dw
 * For bf16, *ran is 0, with nothing done and nothing recorded, where
 * oneDNN has no bf16 kernel for the pass but its reference loops.
 * A forward pass with an epilogue e (else NULL) runs only on channels-last
 * tensors, with an optimised kernel that takes the post-ops (the Winograd
 * path's included, its residual reordered into the output's buffer):
 * elsewhere *ran is 0 and nothing is done, and the caller applies e on its
 * own. */
static cudl_status run_pass(cudl_context *ctx, const cudl_conv2d_geometry *g,
                            pass which, cudl_dtype dtype,
                            const cudl_conv2d_epilogue *e, const void *in1,
                            const void *in2, void *out, int *ran) {
  cudl_cpu_state *dnnl = NULL;
  struct cudl_cpu_conv_plan *p = NULL;
  plan_key key;
  dnnl_memory_t mem[3] = {NULL, NULL, NULL};
  dnnl_memory_t scratch_mem = NULL, bias_mem = NULL;
  void *data[3], *buffer[3], *workspace;
  int i, nargs = 0;
  dnnl_exec_arg_t args[5]; /* x, w, y, the bias, the scratchpad */
  cudl_status status;

  *ran = 0;
  if (e != NULL && !g->channels_last) return CUDL_OK; /* declined */
  status = cudl__cpu_dnnl(ctx, &dnnl);
  if (status != CUDL_OK) return status;
  key = make_key(g, which, dtype, e);
  status = find_plan(ctx, dnnl, &key, g, which, dtype, e, &p);
  if (status != CUDL_OK || p->declined) return status;
  switch (which) {
    case PASS_FORWARD:
      data[0] = (void *)in1;
      data[1] = (void *)in2;
      data[2] = out;
      break;
    case PASS_BACKWARD_DATA:
      data[0] = out;
      data[1] = (void *)in1;
      data[2] = (void *)in2;
      break;
    default:
      data[0] = (void *)in1;
      data[1] = out;
      data[2] = (void *)in2;
      break;
  }
  status = cudl__cpu_workspace(ctx, p->total > 0 ? p->total : 1, &workspace);
  if (status != CUDL_OK) return status;

  /* Inputs in another layout than the primitive's go through a reorder
   * into their buffer; outputs get an empty one. */
  for (i = 0; i < 3; ++i) {
    const int reordered = p->to_wanted[i] != NULL || p->from_wanted[i] != NULL;
    buffer[i] = reordered ? (char *)workspace + p->offsets[i] : NULL;
    DNNL_TRY(
        dnnl_memory_create(&mem[i], reordered ? &p->wanted[i] : &p->plain[i],
                           dnnl->dnnl_engine, reordered ? buffer[i] : data[i]));
    if (p->to_wanted[i] != NULL && !is_output(which, i)) {
      status = run_reorder(ctx, dnnl, p->to_wanted[i], &p->plain[i], data[i],
                           &p->wanted[i], buffer[i]);
      if (status != CUDL_OK) goto done;
    }
    args[nargs].arg = p->arg_of[i];
    args[nargs].memory = mem[i];
    ++nargs;
  }
  if (e != NULL && e->bias != NULL) {
    DNNL_TRY(dnnl_memory_create(&bias_mem, &p->bias, dnnl->dnnl_engine,
                                (void *)e->bias));
    args[nargs].arg = DNNL_ARG_BIAS;
    args[nargs].memory = bias_mem;
    ++nargs;
  }
  if (dnnl_memory_desc_get_size(&p->scratch) > 0) {
    DNNL_TRY(dnnl_memory_create(&scratch_mem, &p->scratch, dnnl->dnnl_engine,
                                (char *)workspace + p->offsets[3]));
    args[nargs].arg = DNNL_ARG_SCRATCHPAD;
    args[nargs].memory = scratch_mem;
    ++nargs;
  }
  /* The sum post-op's operand where the primitive writes: y itself, now
   * that nothing is left to fail before the convolution overwrites it
   * anyway, or y's buffer in the Winograd path's layout (core refuses a y
   * that overlaps the residual). */
  if (e != NULL && e->residual != NULL) {
    if (buffer[2] == NULL)
      memcpy(out, e->residual, dnnl_memory_desc_get_size(&p->plain[2]));
    else
      status = run_reorder(ctx, dnnl, p->to_wanted[2], &p->plain[2],
                           e->residual, &p->wanted[2], buffer[2]);
    if (status != CUDL_OK) goto done;
  }
  DNNL_TRY(dnnl_primitive_execute(p->prim, dnnl->dnnl_stream, nargs, args));

  /* The output back into cudl's layout. */
  for (i = 0; i < 3; ++i) {
    if (p->from_wanted[i] == NULL) continue;
    status = run_reorder(ctx, dnnl, p->from_wanted[i], &p->wanted[i], buffer[i],
                         &p->plain[i], data[i]);
    if (status != CUDL_OK) goto done;
  }
  DNNL_TRY(dnnl_stream_wait(dnnl->dnnl_stream));
  *ran = 1;

done:
  for (i = 0; i < 3; ++i)
    if (mem[i] != NULL) dnnl_memory_destroy(mem[i]);
  if (scratch_mem != NULL) dnnl_memory_destroy(scratch_mem);
  if (bias_mem != NULL) dnnl_memory_destroy(bias_mem);
  return status;
}

cudl_status cudl__cpu_conv2d_forward(cudl_context *ctx,
                                     const cudl_conv2d_geometry *g,
                                     const void *x, const void *w, void *y) {
  int ran;
  return run_pass(ctx, g, PASS_FORWARD, CUDL_DTYPE_F32, NULL, x, w, y, &ran);
}

cudl_status cudl__cpu_conv2d_backward_data(cudl_context *ctx,
                                           const cudl_conv2d_geometry *g,
                                           const void *w, const void *dy,
                                           void *dx) {
  int ran;
  return run_pass(ctx, g, PASS_BACKWARD_DATA, CUDL_DTYPE_F32, NULL, w, dy, dx,
                  &ran);
}

cudl_status cudl__cpu_conv2d_backward_filter(cudl_context *ctx,
                                             const cudl_conv2d_geometry *g,
                                             const void *x, const void *dy,
                                             void *dw) {
  int ran;
  return run_pass(ctx, g, PASS_BACKWARD_FILTER, CUDL_DTYPE_F32, NULL, x, dy, dw,
                  &ran);
}

cudl_status cudl__cpu_conv2d_forward_fused(cudl_context *ctx,
                                           const cudl_conv2d_geometry *g,
                                           const void *x, const void *w,
                                           const cudl_conv2d_epilogue *e,
                                           void *y, int *fused) {
  return run_pass(ctx, g, PASS_FORWARD, CUDL_DTYPE_F32, e, x, w, y, fused);
}

/* bf16 computed in bf16 (cpu_internal.h): *ran is 0, and nothing done,
 * where the CPU has no bf16 arithmetic or oneDNN only its reference loops
 * for the pass. */
cudl_status cudl__cpu_conv2d_forward_native_bf16(cudl_context *ctx,
                                                 const cudl_conv2d_geometry *g,
                                                 const void *x, const void *w,
                                                 void *y, int *ran) {
  *ran = 0;
  if (!cudl__cpu_bf16_native()) return CUDL_OK;
  return run_pass(ctx, g, PASS_FORWARD, CUDL_DTYPE_BF16, NULL, x, w, y, ran);
}

cudl_status cudl__cpu_conv2d_backward_data_native_bf16(
    cudl_context *ctx, const cudl_conv2d_geometry *g, const void *w,
    const void *dy, void *dx, int *ran) {
  *ran = 0;
  if (!cudl__cpu_bf16_native()) return CUDL_OK;
  return run_pass(ctx, g, PASS_BACKWARD_DATA, CUDL_DTYPE_BF16, NULL, w, dy, dx,
                  ran);
}

cudl_status cudl__cpu_conv2d_backward_filter_native_bf16(
    cudl_context *ctx, const cudl_conv2d_geometry *g, const void *x,
    const void *dy, void *dw, int *ran) {
  *ran = 0;
  if (!cudl__cpu_bf16_native()) return CUDL_OK;
  return run_pass(ctx, g, PASS_BACKWARD_FILTER, CUDL_DTYPE_BF16, NULL, x, dy,
                  dw, ran);
}

cudl_status cudl__cpu_conv2d_forward_fused_native_bf16(
    cudl_context *ctx, const cudl_conv2d_geometry *g, const void *x,
    const void *w, const cudl_conv2d_epilogue *e, void *y, int *fused,
    int *ran) {
  cudl_status status = CUDL_OK;
  *fused = 0;
  if (cudl__cpu_bf16_native())
    status = run_pass(ctx, g, PASS_FORWARD, CUDL_DTYPE_BF16, e, x, w, y, fused);
  *ran = *fused;
  return status;
}
