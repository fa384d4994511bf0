/*
 * cuda_conv.c - 2-D convolution through cuDNN 9's legacy convolution API,
 * with the algorithm chosen once per shape and cached in the context, and
 * the context's one grow-only workspace.
 *
 * Layouts. NCHW, or channels-last where g->channels_last says so: then
 * every descriptor has cuDNN's CUDNN_TENSOR_NHWC format, x / dx [n, h, w,
 * c] and y / dy [n, oh, ow, k] in memory and w / dw [k, r, s, c / groups]
 * (the sizes are still passed in NCHW order; the format says how the bytes
 * lie). It is the order cuDNN's tensor-core kernels read natively; on
 * NCHW data they generally need transposes of cuDNN's own around them.
 *
 * Plans. A plan holds the four cuDNN descriptors of one convolution
 * (x / dx, w / dw, y / dy, and the convolution with its math type), the
 * algorithm and its workspace size. It is keyed by the full geometry, its
 * layout included (channels_last, stored as 0 or 1), the direction
 * (forward, backward data, backward filter), the dtype of the data (f32,
 * bf16 or f16: descriptors and algorithms differ, so a plan is never run
 * on another dtype's data) and the two modes that change the choice,
 * ctx->deterministic and ctx->allow_tf32 (for f32 data only, below):
 * flipping either selects (or creates) another plan at the next call. The
 * cache is an array in the context state, searched linearly (a 64-bit hash
 * first): a ResNet has a few dozen shapes, three directions each, in one
 * or two dtypes. At CONV_PLAN_MAX plans, new ones replace old ones
 * round-robin.
 *
 * A cache hit runs the plan: no host synchronisation, no allocation unless
 * the workspace has to grow back after an out-of-memory episode (below).
 *
 * A miss (the first call for a shape) chooses the algorithm:
 * - normally by timing the candidates on the call's own buffers
 *   (cudnnFind*AlgorithmEx; it writes the output, which the real call
 *   overwrites next). This synchronises, once per shape. The search gets a
 *   temporary buffer of CONV_WORKSPACE_CAP bytes from the pool, halved
 *   while the device cannot supply it (down to CONV_SEARCH_MIN, then none:
 *   only algorithms without workspace are timed); it goes back to the pool
 *   (stream-ordered) before the workspace grows, so the two never add up;
 * - in deterministic mode by cuDNN's heuristics (cudnnGet*Algorithm_v7),
 *   because timing is noisy: two runs could time different (each
 *   deterministic) algorithms fastest and so differ in their low bits. The
 *   heuristics depend only on the shape, the dtype, the GPU and the cuDNN
 *   version.
 *   Candidates cuDNN marks CUDNN_NON_DETERMINISTIC (the backward algorithms
 *   that add with atomics) are skipped.
 * Candidates are tried in cuDNN's order (fastest, or most promising,
 * first), skipping those that failed, that need more than
 * CONV_WORKSPACE_CAP bytes of workspace, that use a math type the plan may
 * not use (below), or that the workspace query rejects. The first one whose
 * workspace can be allocated wins; if the device is out of memory for it,
 * the next one (typically needing less) is tried, so a full device degrades
 * to a slower algorithm (implicit GEMM needs no workspace) rather than
 * failing. Only when no candidate is left does the call fail:
 * CUDL_ERR_OUT_OF_MEMORY if memory was the reason, else
 * CUDL_ERR_UNSUPPORTED.
 *
 * Workspace cap: 512 MiB. The fastest algorithms for ResNet-sized layers
 * need far less (tens of MiB); the cap keeps FFT-based algorithms, whose
 * workspace can reach gigabytes on large images, from taking memory that
 * training needs for activations. It bounds the temporary search buffer and
 * every plan's workspace.
 *
 * TF32: without ctx->allow_tf32 every f32 plan runs with CUDNN_FMA_MATH,
 * which restricts cuDNN to FMA (full f32) kernels; on Ampere and newer
 * CUDNN_DEFAULT_MATH would let it use TF32 tensor cores. With
 * ctx->allow_tf32 the descriptor starts as CUDNN_DEFAULT_MATH (TF32
 * permitted) and each plan keeps the math type its algorithm was found
 * with. CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION (which may convert f32 data
 * to f16) is never used, for any dtype.
 *
 * bf16 and f16: x, w and y are in the 16-bit type (CUDNN_DATA_BFLOAT16,
 * CUDNN_DATA_HALF) and the convolution computes in f32 (its descriptor's
 * CUDNN_DATA_FLOAT: cuDNN's PSEUDO_BFLOAT16 and PSEUDO_HALF
 * configurations), so each output is accumulated in f32 and rounded once
 * when stored, the definition of a 16-bit entry (core/ops.def). The
 * descriptor starts as CUDNN_TENSOR_OP_MATH and each plan keeps the math
 * type its algorithm was found with, as with TF32: tensor cores multiply
 * 16-bit numbers exactly, so ctx->allow_tf32 has nothing to decide and is
 * left out of these plans' keys (0), sparing a second, identical plan.
 *
 * cuDNN's legacy descriptors take int sizes and at most INT_MAX elements a
 * tensor; src/core/conv.c bounds each dimension, this file the products.
 */
#include <limits.h>
#include <string.h>

#include "cuda/cuda_internal.h"

#define CONV_WORKSPACE_CAP ((size_t)512 << 20)
#define CONV_SEARCH_MIN ((size_t)16 << 20)
#define CONV_PLAN_MAX 512
/* At least every direction's CUDNN_CONVOLUTION_*_ALGO_COUNT. */
#define CONV_ALGO_MAX 8

/* Failures name the operation, as the CPU backend's do ("cpu conv2d"). */
#define CONV_FAIL(ctx, status, ...) \
  cudl__fail((ctx), (status), "cuda conv2d", __VA_ARGS__)

typedef enum conv_direction {
  CONV_FORWARD = 0,        /* x, w -> y */
  CONV_BACKWARD_DATA = 1,  /* w, dy -> dx */
  CONV_BACKWARD_FILTER = 2 /* x, dy -> dw */
} conv_direction;

static const char *const direction_names[3] = {"forward", "backward data",
                                               "backward filter"};

/* What a plan depends on. All int64_t (g->channels_last too): no padding,
 * so memcmp and key_hash see every field and nothing else. allow_tf32 is 0
 * for 16-bit data (module comment). */
typedef struct conv_key {
  cudl_conv2d_geometry g;
  int64_t direction, dtype, deterministic, allow_tf32;
} conv_key;

struct cudl_conv_plan {
  conv_key key;
  uint64_t hash;
  /* Sizes in NCHW order, the format NCHW or NHWC (module comment). */
  cudnnTensorDescriptor_t x_desc;         /* x or dx: [n, c, h, w] */
  cudnnTensorDescriptor_t y_desc;         /* y or dy: [n, k, oh, ow] */
  cudnnFilterDescriptor_t w_desc;         /* w or dw: [k, c / groups, r, s] */
  cudnnConvolutionDescriptor_t conv_desc; /* math type set to `math` */
  int algo; /* a cudnnConvolution{Fwd,BwdData,BwdFilter}Algo_t */
  cudnnMathType_t math;
  size_t workspace_bytes;
};
typedef struct cudl_conv_plan conv_plan;

/* One entry of any direction's perf results. */
typedef struct conv_candidate {
  int algo;
  cudnnStatus_t status;
  float time_ms;
  size_t memory;
  cudnnDeterminism_t determinism;
  cudnnMathType_t math;
} conv_candidate;

/* The operands of one call, in cuDNN's argument order for its direction:
 * forward (x, w -> y), backward data (w, dy -> dx), backward filter
 * (x, dy -> dw). */
typedef struct conv_operands {
  const void *a, *b;
  void *out;
} conv_operands;

/* ---- the workspace ---- */

cudaError_t cudl__cuda_workspace_reserve(cudl_context *ctx, cudl_cuda_state *s,
                                         size_t bytes) {
  cudaError_t err;
  void *p = NULL;
  if (bytes <= s->workspace_bytes) return cudaSuccess;
  /* A workspace made while a graph is recorded would be the graph's
   * memory, gone with it: refused, so the caller runs without a graph. */
  if (s->capturing) return cudaErrorStreamCaptureUnsupported;
  if (s->workspace != NULL) {
    ++ctx->graph_epoch;
    err = cudaFreeAsync(s->workspace, s->stream);
    s->workspace = NULL;
    s->workspace_bytes = 0;
    if (err != cudaSuccess) {
      (void)cudaGetLastError();
      return err;
    }
  }
  err = cudl__cuda_pool_alloc(ctx, s, &p, bytes);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    return err;
  }
  s->workspace = p;
  s->workspace_bytes = bytes;
  return cudaSuccess;
}

/* ---- plans ---- */

static void destroy_descriptors(conv_plan *p) {
  if (p->x_desc != NULL) cudnnDestroyTensorDescriptor(p->x_desc);
  if (p->y_desc != NULL) cudnnDestroyTensorDescriptor(p->y_desc);
  if (p->w_desc != NULL) cudnnDestroyFilterDescriptor(p->w_desc);
  if (p->conv_desc != NULL) cudnnDestroyConvolutionDescriptor(p->conv_desc);
  p->x_desc = NULL;
  p->y_desc = NULL;
  p->w_desc = NULL;
  p->conv_desc = NULL;
}

void cudl__cuda_conv_release(cudl_cuda_state *s) {
  size_t i;
  for (i = 0; i < s->plan_count; ++i) destroy_descriptors(&s->plans[i]);
  cudl__host_free(&cudl__default_allocator, s->plans,
                  s->plan_capacity * sizeof *s->plans);
  s->plans = NULL;
  s->plan_count = s->plan_capacity = s->plan_evict_next = 0;
  if (s->workspace != NULL &&
      cudaFreeAsync(s->workspace, s->stream) != cudaSuccess)
    (void)cudaGetLastError();
  s->workspace = NULL;
  s->workspace_bytes = 0;
}

/* FNV-1a over the key's bytes. */
static uint64_t key_hash(const conv_key *key) {
  const unsigned char *bytes = (const unsigned char *)key;
  uint64_t h = 14695981039346656037u;
  size_t i;
  for (i = 0; i < sizeof *key; ++i) {
    h ^= bytes[i];
    h *= 1099511628211u;
  }
  return h;
}

/* a * b * c * d <= INT_MAX, for factors >= 0, without overflow. */
static int fits_int(int64_t a, int64_t b, int64_t c, int64_t d) {
  int64_t product = a;
  if (a == 0 || b == 0 || c == 0 || d == 0) return 1;
  if (b > INT_MAX / product) return 0;
  product *= b;
  if (c > INT_MAX / product) return 0;
  product *= c;
  return d <= INT_MAX / product;
}

/* cuDNN's type for data of the key's dtype. */
static cudnnDataType_t data_type(const conv_key *key) {
  switch ((cudl_dtype)key->dtype) {
    case CUDL_DTYPE_BF16:
      return CUDNN_DATA_BFLOAT16;
    case CUDL_DTYPE_F16:
      return CUDNN_DATA_HALF;
    default:
      return CUDNN_DATA_FLOAT;
  }
}

/* 1 when the plan may run tensor-core kernels (module comment): always on
 * 16-bit data, on f32 data only where TF32 is allowed. */
static int tensor_math_allowed(const conv_key *key) {
  return key->dtype != CUDL_DTYPE_F32 || key->allow_tf32;
}

/* The math type the descriptor starts with, for the algorithm search. */
static cudnnMathType_t search_math(const conv_key *key) {
  if (key->dtype != CUDL_DTYPE_F32) return CUDNN_TENSOR_OP_MATH;
  return key->allow_tf32 ? CUDNN_DEFAULT_MATH : CUDNN_FMA_MATH;
}

/* Create and set p's descriptors for p->key; on failure the caller
 * destroys what was created (destroy_descriptors). */
static cudl_status make_descriptors(cudl_context *ctx, conv_plan *p) {
  const cudl_conv2d_geometry *g = &p->key.g;
  const cudnnDataType_t type = data_type(&p->key);
  const cudnnTensorFormat_t format =
      g->channels_last ? CUDNN_TENSOR_NHWC : CUDNN_TENSOR_NCHW;
  int n = 0, k = 0, oh = 0, ow = 0;
  if (!fits_int(g->n, g->c, g->h, g->w) ||
      !fits_int(g->n, g->k, g->oh, g->ow) ||
      !fits_int(g->k, g->c / g->groups, g->r, g->s))
    return CONV_FAIL(ctx, CUDL_ERR_UNSUPPORTED,
                     "cuDNN takes tensors of at most INT_MAX elements; this "
                     "convolution's input, output or weight is larger");
  CUDL_CUDNN_TRY(ctx, cudnnCreateTensorDescriptor(&p->x_desc));
  CUDL_CUDNN_TRY(ctx, cudnnCreateTensorDescriptor(&p->y_desc));
  CUDL_CUDNN_TRY(ctx, cudnnCreateFilterDescriptor(&p->w_desc));
  CUDL_CUDNN_TRY(ctx, cudnnCreateConvolutionDescriptor(&p->conv_desc));
  /* Every size below is at most INT_MAX (src/core/conv.c and fits_int).
   * The convolution computes in f32 whatever the data's type. */
  CUDL_CUDNN_TRY(ctx,
                 cudnnSetTensor4dDescriptor(p->x_desc, format, type, (int)g->n,
                                            (int)g->c, (int)g->h, (int)g->w));
  CUDL_CUDNN_TRY(ctx,
                 cudnnSetTensor4dDescriptor(p->y_desc, format, type, (int)g->n,
                                            (int)g->k, (int)g->oh, (int)g->ow));
  CUDL_CUDNN_TRY(ctx, cudnnSetFilter4dDescriptor(
                          p->w_desc, type, format, (int)g->k,
                          (int)(g->c / g->groups), (int)g->r, (int)g->s));
  CUDL_CUDNN_TRY(ctx, cudnnSetConvolution2dDescriptor(
                          p->conv_desc, (int)g->ph, (int)g->pw, (int)g->sh,
                          (int)g->sw, (int)g->dh, (int)g->dw,
                          CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT));
  CUDL_CUDNN_TRY(ctx,
                 cudnnSetConvolutionGroupCount(p->conv_desc, (int)g->groups));
  CUDL_CUDNN_TRY(
      ctx, cudnnSetConvolutionMathType(p->conv_desc, search_math(&p->key)));
  /* cuDNN must agree with src/core/conv.c on the output size. */
  CUDL_CUDNN_TRY(
      ctx, cudnnGetConvolution2dForwardOutputDim(p->conv_desc, p->x_desc,
                                                 p->w_desc, &n, &k, &oh, &ow));
  if (n != g->n || k != g->k || oh != g->oh || ow != g->ow)
    return CONV_FAIL(ctx, CUDL_ERR_CUDA,
                     "cuDNN computes the output as [%d, %d, %d, %d]; cudl "
                     "as [%lld, %lld, %lld, %lld]",
                     n, k, oh, ow, (long long)g->n, (long long)g->k,
                     (long long)g->oh, (long long)g->ow);
  return CUDL_OK;
}

/* Copy a direction's perf results (identical layouts, distinct types). */
#define COPY_CANDIDATES(perf, count, out)             \
  do {                                                \
    int i_;                                           \
    for (i_ = 0; i_ < (count); ++i_) {                \
      (out)[i_].algo = (int)(perf)[i_].algo;          \
      (out)[i_].status = (perf)[i_].status;           \
      (out)[i_].time_ms = (perf)[i_].time;            \
      (out)[i_].memory = (perf)[i_].memory;           \
      (out)[i_].determinism = (perf)[i_].determinism; \
      (out)[i_].math = (perf)[i_].mathType;           \
    }                                                 \
  } while (0)

/* cuDNN's heuristic ranking (no timing, no synchronisation). */
static cudl_status heuristic_candidates(cudl_context *ctx, cudl_cuda_state *s,
                                        const conv_plan *p, conv_candidate *out,
                                        int *count) {
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  cudnnConvolutionBwdFilterAlgoPerf_t
      filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  int n = 0;
  switch ((conv_direction)p->key.direction) {
    case CONV_FORWARD:
      CUDL_CUDNN_TRY(
          ctx, cudnnGetConvolutionForwardAlgorithm_v7(
                   s->cudnn, p->x_desc, p->w_desc, p->conv_desc, p->y_desc,
                   CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fwd));
      COPY_CANDIDATES(fwd, n, out);
      break;
    case CONV_BACKWARD_DATA:
      CUDL_CUDNN_TRY(
          ctx, cudnnGetConvolutionBackwardDataAlgorithm_v7(
                   s->cudnn, p->w_desc, p->y_desc, p->conv_desc, p->x_desc,
                   CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, data));
      COPY_CANDIDATES(data, n, out);
      break;
    case CONV_BACKWARD_FILTER:
      CUDL_CUDNN_TRY(
          ctx, cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                   s->cudnn, p->x_desc, p->y_desc, p->conv_desc, p->w_desc,
                   CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, filter));
      COPY_CANDIDATES(filter, n, out);
      break;
  }
  *count = n;
  return CUDL_OK;
}

/* cudnnFind*AlgorithmEx over `workspace` (bytes long, possibly NULL and
 * 0), returning cuDNN's status. */
static cudnnStatus_t find_ex(cudl_cuda_state *s, const conv_plan *p,
                             const conv_operands *ops, void *workspace,
                             size_t bytes, conv_candidate *out, int *count) {
  cudnnConvolutionFwdAlgoPerf_t fwd[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
  cudnnConvolutionBwdDataAlgoPerf_t data[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
  cudnnConvolutionBwdFilterAlgoPerf_t
      filter[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
  cudnnStatus_t st = CUDNN_STATUS_SUCCESS;
  int n = 0;
  switch ((conv_direction)p->key.direction) {
    case CONV_FORWARD:
      st = cudnnFindConvolutionForwardAlgorithmEx(
          s->cudnn, p->x_desc, ops->a, p->w_desc, ops->b, p->conv_desc,
          p->y_desc, ops->out, CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fwd,
          workspace, bytes);
      if (st == CUDNN_STATUS_SUCCESS) COPY_CANDIDATES(fwd, n, out);
      break;
    case CONV_BACKWARD_DATA:
      st = cudnnFindConvolutionBackwardDataAlgorithmEx(
          s->cudnn, p->w_desc, ops->a, p->y_desc, ops->b, p->conv_desc,
          p->x_desc, ops->out, CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &n, data,
          workspace, bytes);
      if (st == CUDNN_STATUS_SUCCESS) COPY_CANDIDATES(data, n, out);
      break;
    case CONV_BACKWARD_FILTER:
      st = cudnnFindConvolutionBackwardFilterAlgorithmEx(
          s->cudnn, p->x_desc, ops->a, p->y_desc, ops->b, p->conv_desc,
          p->w_desc, ops->out, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n,
          filter, workspace, bytes);
      if (st == CUDNN_STATUS_SUCCESS) COPY_CANDIDATES(filter, n, out);
      break;
  }
  *count = st == CUDNN_STATUS_SUCCESS ? n : 0;
  return st;
}

/* Time the candidates on the call's buffers, with a temporary search
 * workspace from the pool (as large as the cap, or the device, allows). */
static cudl_status timed_candidates(cudl_context *ctx, cudl_cuda_state *s,
                                    const conv_plan *p,
                                    const conv_operands *ops,
                                    conv_candidate *out, int *count) {
  void *search = NULL;
  size_t bytes = CONV_WORKSPACE_CAP;
  cudnnStatus_t st;
  cudaError_t err;
  while (bytes >= CONV_SEARCH_MIN) {
    if (cudl__cuda_pool_alloc(ctx, s, &search, bytes) == cudaSuccess) break;
    (void)cudaGetLastError(); /* out of memory: try half */
    search = NULL;
    bytes /= 2;
  }
  if (search == NULL) bytes = 0;
  st = find_ex(s, p, ops, search, bytes, out, count);
  err = search != NULL ? cudaFreeAsync(search, s->stream) : cudaSuccess;
  if (st != CUDNN_STATUS_SUCCESS)
    return cudl__cudnn_error(ctx, st, "cudnnFindConvolution*AlgorithmEx",
                             __FILE__, __LINE__);
  CUDL_CUDA_TRY(ctx, err);
  return CUDL_OK;
}

/* The workspace `algo` needs with the descriptor's current math type. */
static cudnnStatus_t workspace_size(cudl_cuda_state *s, const conv_plan *p,
                                    int algo, size_t *bytes) {
  switch ((conv_direction)p->key.direction) {
    case CONV_FORWARD:
      return cudnnGetConvolutionForwardWorkspaceSize(
          s->cudnn, p->x_desc, p->w_desc, p->conv_desc, p->y_desc,
          (cudnnConvolutionFwdAlgo_t)algo, bytes);
    case CONV_BACKWARD_DATA:
      return cudnnGetConvolutionBackwardDataWorkspaceSize(
          s->cudnn, p->w_desc, p->y_desc, p->conv_desc, p->x_desc,
          (cudnnConvolutionBwdDataAlgo_t)algo, bytes);
    case CONV_BACKWARD_FILTER:
      return cudnnGetConvolutionBackwardFilterWorkspaceSize(
          s->cudnn, p->x_desc, p->y_desc, p->conv_desc, p->w_desc,
          (cudnnConvolutionBwdFilterAlgo_t)algo, bytes);
  }
  return CUDNN_STATUS_BAD_PARAM;
}

/* Choose p's algorithm and math type (module comment) and grow the
 * workspace to what it needs. */
static cudl_status choose_algorithm(cudl_context *ctx, cudl_cuda_state *s,
                                    conv_plan *p, const conv_operands *ops) {
  conv_candidate candidates[CONV_ALGO_MAX];
  const cudl_conv2d_geometry *g = &p->key.g;
  int count = 0, i, out_of_memory = 0;
  cudl_status status;
  status = p->key.deterministic
               ? heuristic_candidates(ctx, s, p, candidates, &count)
               : timed_candidates(ctx, s, p, ops, candidates, &count);
  if (status != CUDL_OK) return status;
  for (i = 0; i < count && i < CONV_ALGO_MAX; ++i) {
    const conv_candidate *cand = &candidates[i];
    cudnnMathType_t math = CUDNN_FMA_MATH;
    size_t bytes = 0;
    cudaError_t err;
    if (cand->status != CUDNN_STATUS_SUCCESS) continue;
    if (p->key.deterministic && cand->determinism != CUDNN_DETERMINISTIC)
      continue;
    if (cand->math == CUDNN_TENSOR_OP_MATH_ALLOW_CONVERSION) continue;
    if (tensor_math_allowed(&p->key))
      math = cand->math;
    else if (cand->math == CUDNN_TENSOR_OP_MATH)
      continue; /* a tensor-core kernel on f32 data: TF32 */
    if (cand->memory > CONV_WORKSPACE_CAP) continue;
    CUDL_CUDNN_TRY(ctx, cudnnSetConvolutionMathType(p->conv_desc, math));
    if (workspace_size(s, p, cand->algo, &bytes) != CUDNN_STATUS_SUCCESS)
      continue; /* not supported with this math type after all */
    if (bytes < cand->memory) bytes = cand->memory;
    if (bytes > CONV_WORKSPACE_CAP) continue;
    err = cudl__cuda_workspace_reserve(ctx, s, bytes);
    if (err == cudaErrorMemoryAllocation) {
      out_of_memory = 1; /* try one that needs less */
      continue;
    }
    if (err != cudaSuccess)
      return cudl__cuda_error(ctx, err, "growing the cuDNN workspace", __FILE__,
                              __LINE__);
    p->algo = cand->algo;
    p->math = math;
    p->workspace_bytes = bytes;
    cudl__log(CUDL_LOG_DEBUG,
              "%s: conv2d %s, %s%s x [%lld, %lld, %lld, %lld] w [%lld, %lld, "
              "%lld, %lld] groups %lld: cuDNN algorithm %d, math type %d, %zu "
              "workspace bytes%s",
              ctx->device_name, direction_names[p->key.direction],
              cudl_dtype_name((cudl_dtype)p->key.dtype),
              g->channels_last ? " channels-last" : "", (long long)g->n,
              (long long)g->c, (long long)g->h, (long long)g->w,
              (long long)g->k, (long long)(g->c / g->groups), (long long)g->r,
              (long long)g->s, (long long)g->groups, p->algo, (int)p->math,
              bytes, p->key.deterministic ? " (deterministic, heuristic)" : "");
    return CUDL_OK;
  }
  return CONV_FAIL(
      ctx, out_of_memory ? CUDL_ERR_OUT_OF_MEMORY : CUDL_ERR_UNSUPPORTED,
      "no cuDNN %s algorithm for %s%s x [%lld, %lld, %lld, %lld] w [%lld, "
      "%lld, %lld, %lld]%s%s (%d candidates)",
      direction_names[p->key.direction],
      cudl_dtype_name((cudl_dtype)p->key.dtype),
      g->channels_last ? " channels-last" : "", (long long)g->n,
      (long long)g->c, (long long)g->h, (long long)g->w, (long long)g->k,
      (long long)(g->c / g->groups), (long long)g->r, (long long)g->s,
      !out_of_memory ? ""
      : s->limit_refused
          ? ": their workspace would take the context past its memory limit "
            "(cudl_context_set_memory_limit)"
          : ": the device has no memory for their workspace",
      p->key.deterministic ? " in deterministic mode" : "", count);
}

/* A free slot for a new plan: append, grow the array, or (at
 * CONV_PLAN_MAX) replace the oldest-inserted plan, round-robin. */
static cudl_status plan_slot(cudl_context *ctx, cudl_cuda_state *s,
                             conv_plan **slot) {
  conv_plan *victim;
  if (s->plan_count == s->plan_capacity && s->plan_capacity < CONV_PLAN_MAX) {
    const size_t capacity = s->plan_capacity == 0 ? 16 : 2 * s->plan_capacity;
    conv_plan *plans = (conv_plan *)cudl__host_alloc(
        &cudl__default_allocator, capacity * sizeof *plans, sizeof(void *));
    if (plans == NULL)
      return CONV_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot grow the convolution plan cache");
    if (s->plan_count > 0)
      memcpy(plans, s->plans, s->plan_count * sizeof *plans);
    cudl__host_free(&cudl__default_allocator, s->plans,
                    s->plan_capacity * sizeof *s->plans);
    s->plans = plans;
    s->plan_capacity = capacity;
  }
  if (s->plan_count < s->plan_capacity) {
    *slot = &s->plans[s->plan_count++];
    return CUDL_OK;
  }
  victim = &s->plans[s->plan_evict_next];
  s->plan_evict_next = (s->plan_evict_next + 1) % s->plan_count;
  destroy_descriptors(victim);
  *slot = victim;
  return CUDL_OK;
}

/* The cached plan for `key`, or a new one (chosen on ops' buffers). */
static cudl_status find_plan(cudl_context *ctx, cudl_cuda_state *s,
                             const conv_key *key, const conv_operands *ops,
                             conv_plan **out) {
  const uint64_t hash = key_hash(key);
  conv_plan plan, *slot = NULL;
  cudl_status status;
  size_t i;
  for (i = 0; i < s->plan_count; ++i)
    if (s->plans[i].hash == hash &&
        memcmp(&s->plans[i].key, key, sizeof *key) == 0) {
      *out = &s->plans[i];
      return CUDL_OK;
    }
  /* Choosing times the candidates (host waits): not while recording. */
  if (s->capturing)
    return CONV_FAIL(ctx, CUDL_ERR_UNSUPPORTED,
                     "a convolution of a shape not run before cannot be "
                     "recorded in a CUDA graph (its algorithm is chosen by "
                     "timing); run it once first");
  memset(&plan, 0, sizeof plan);
  plan.key = *key;
  plan.hash = hash;
  status = make_descriptors(ctx, &plan);
  if (status == CUDL_OK) status = choose_algorithm(ctx, s, &plan, ops);
  if (status == CUDL_OK) status = plan_slot(ctx, s, &slot);
  if (status != CUDL_OK) {
    destroy_descriptors(&plan);
    return status;
  }
  *slot = plan;
  *out = slot;
  return CUDL_OK;
}

static cudl_status run_plan(cudl_context *ctx, cudl_cuda_state *s,
                            const conv_plan *p, const conv_operands *ops) {
  const float one = 1.0f, zero = 0.0f;
  switch ((conv_direction)p->key.direction) {
    case CONV_FORWARD:
      CUDL_CUDNN_TRY(ctx, cudnnConvolutionForward(
                              s->cudnn, &one, p->x_desc, ops->a, p->w_desc,
                              ops->b, p->conv_desc,
                              (cudnnConvolutionFwdAlgo_t)p->algo, s->workspace,
                              p->workspace_bytes, &zero, p->y_desc, ops->out));
      break;
    case CONV_BACKWARD_DATA:
      CUDL_CUDNN_TRY(
          ctx,
          cudnnConvolutionBackwardData(
              s->cudnn, &one, p->w_desc, ops->a, p->y_desc, ops->b,
              p->conv_desc, (cudnnConvolutionBwdDataAlgo_t)p->algo,
              s->workspace, p->workspace_bytes, &zero, p->x_desc, ops->out));
      break;
    case CONV_BACKWARD_FILTER:
      CUDL_CUDNN_TRY(
          ctx,
          cudnnConvolutionBackwardFilter(
              s->cudnn, &one, p->x_desc, ops->a, p->y_desc, ops->b,
              p->conv_desc, (cudnnConvolutionBwdFilterAlgo_t)p->algo,
              s->workspace, p->workspace_bytes, &zero, p->w_desc, ops->out));
      break;
  }
  return CUDL_OK;
}

static cudl_status convolve(cudl_context *ctx, const cudl_conv2d_geometry *g,
                            conv_direction direction, cudl_dtype dtype,
                            const void *a, const void *b, void *out) {
  conv_key key;
  conv_operands ops;
  conv_plan *plan = NULL;
  cudl_status status;
  cudaError_t err;
  CUDA_ENTER(ctx, s);
  memset(&key, 0, sizeof key);
  key.g = *g;
  /* One plan for every nonzero spelling of channels-last. */
  key.g.channels_last = g->channels_last != 0;
  key.direction = direction;
  key.dtype = dtype;
  key.deterministic = ctx->deterministic != 0;
  key.allow_tf32 = dtype == CUDL_DTYPE_F32 && ctx->allow_tf32 != 0;
  ops.a = a;
  ops.b = b;
  ops.out = out;
  status = find_plan(ctx, s, &key, &ops, &plan);
  if (status != CUDL_OK) return status;
  /* A no-op unless an out-of-memory episode since the plan was made left
   * the workspace smaller. */
  err = cudl__cuda_workspace_reserve(ctx, s, plan->workspace_bytes);
  if (err != cudaSuccess)
    return cudl__cuda_error(ctx, err, "growing the cuDNN workspace", __FILE__,
                            __LINE__);
  return run_plan(ctx, s, plan, &ops);
}

/* The entry cudl__cuda_<entry> (core/ops.h), its operands a, b -> out
 * named as in ops.def and passed in cuDNN's order (conv_operands). */
#define CONV_ENTRY(entry, direction, dtype, a, b, out)                         \
  cudl_status cudl__cuda_##entry(cudl_context *ctx,                            \
                                 const cudl_conv2d_geometry *g, const void *a, \
                                 const void *b, void *out) {                   \
    return convolve(ctx, g, (direction), (dtype), a, b, out);                  \
  }
/* A direction's f32, bf16 and f16 entries. */
#define CONV_ENTRIES(name, direction, a, b, out)                 \
  CONV_ENTRY(name, direction, CUDL_DTYPE_F32, a, b, out)         \
  CONV_ENTRY(name##_bf16, direction, CUDL_DTYPE_BF16, a, b, out) \
  CONV_ENTRY(name##_f16, direction, CUDL_DTYPE_F16, a, b, out)

CONV_ENTRIES(conv2d_forward, CONV_FORWARD, x, w, y)

/* The convolution with its epilogue in one pass is declined on CUDA: core
 * runs the cuDNN convolution, then the bias, the residual and the ReLU with
 * the kernels every layer uses. cudnnConvolutionBiasActivationForward
 * would fuse them; it waits until it can be measured against that on a
 * GPU. */
#define CONV_FUSED_ENTRY(entry)                                            \
  cudl_status cudl__cuda_##entry(                                          \
      cudl_context *ctx, const cudl_conv2d_geometry *g, const void *x,     \
      const void *w, const cudl_conv2d_epilogue *e, void *y, int *fused) { \
    (void)ctx, (void)g, (void)x, (void)w, (void)e, (void)y;                \
    *fused = 0;                                                            \
    return CUDL_OK;                                                        \
  }
CONV_FUSED_ENTRY(conv2d_forward_fused)
CONV_FUSED_ENTRY(conv2d_forward_fused_bf16)
CONV_FUSED_ENTRY(conv2d_forward_fused_f16)
CONV_ENTRIES(conv2d_backward_data, CONV_BACKWARD_DATA, w, dy, dx)
CONV_ENTRIES(conv2d_backward_filter, CONV_BACKWARD_FILTER, x, dy, dw)
