/*
 * batchnorm.cu - batch normalisation on CUDA, on x viewed as [outer,
 * channels, inner]: training forward (the statistics in one pass over x,
 * then the normalisation), inference forward and backward, and the fused
 * path's halves (ops.def): the statistics alone, the normalisation with a
 * residual and a ReLU after it, and the backward through that ReLU writing
 * the residual's gradient. Kernels first, then the backend entries.
 *
 * Every per-channel reduction uses one pattern: block (c, p) reduces part p
 * of channel c's elements (kernels/reduce.cuh), writing partial[c * parts +
 * p]; a finishing kernel merges a channel's parts in order and applies
 * what the result is for (mean, inverse deviation and running statistics;
 * the gradients of gamma and beta). The order depends only on the shape,
 * so results are deterministic. Each thread reduces into an accumulator:
 * Moments for the statistics (Welford's count, mean and squared deviations
 * of x less a shift, merged by Chan's formula, so one pass keeps the
 * variance where E[x^2] - E[x]^2 in float would cancel it away), SumPair
 * for the backward's two sums (of g and of g * xhat, also in one pass). A
 * training step's batch norm is thus three launches forward and three
 * backward: reduce, finish, elementwise.
 *
 * inner == 1 (channels-last activations [n * h * w, c], and [N, C]) takes
 * the rows shape of kernels/rows.cuh instead, in the reductions and in the
 * elementwise passes: threads run along channels, so a warp reads
 * consecutive channels of a row (block (c, p) would read one element per
 * 32-byte sector, the channels lying c apart), each thread takes its
 * channel's constants once and no element pays for a 64-bit division. The
 * reductions keep the two fixed-order stages: block (tile, p) writes
 * partial[c * parts + p] for its channels and the same finishing kernels
 * merge the parts.
 *
 * x, y, dy and dx are in the entry's dtype; every kernel reading or writing
 * them is a template over that storage type T (kernels/dtype.cuh): values
 * are widened to f32 on loading and each stored one is rounded once. gamma,
 * beta, the statistics and the gradients of gamma and beta are f32 whatever
 * T, so the bf16 and f16 entries compute what the f32 entry computes on the
 * widened input.
 */
#include "cuda/cuda_internal.h"
#include "cuda/cuda_scratch.cuh"
#include "kernels/dtype.cuh"
#include "kernels/launch.cuh"
#include "kernels/reduce.cuh"
#include "kernels/rows.cuh"

namespace {

struct Layout {
  int64_t outer, channels, inner;
  __device__ int64_t index(int64_t c, int64_t e) const {
    return ((e / inner) * channels + c) * inner + e % inner;
  }
};

// The statistics are of x less a shift, the channel's first element (when
// finite): the shifted values are the size of the deviation, whatever the
// mean (a float mean of values near 1000 is off by a sizeable fraction of
// a deviation of 0.05).
template <class T>
__device__ float channel_shift(const T *x, Layout l, int64_t c) {
  const float s = cudl__load(x, c * l.inner);  // l.index(c, 0), undivided
  return isfinite(s) ? s : 0.0f;
}

// Count, mean and sum of squared deviations from it of some values:
// Welford's update per value, Chan et al.'s merge of two sets. The zero
// value is the empty set.
struct Moments {
  float n, mean, m2;
  __device__ void add(float v) {
    n += 1.0f;
    const float delta = v - mean;
    mean += delta / n;
    m2 += delta * (v - mean);
  }
  __device__ void merge(const Moments &o) {
    if (o.n == 0.0f) return;
    if (n == 0.0f) {
      *this = o;
      return;
    }
    const float total = n + o.n, delta = o.mean - mean, w = o.n / total;
    mean += delta * w;
    m2 += o.m2 + delta * delta * n * w;
    n = total;
  }
  __device__ Moments shfl_down(int offset) const {
    return {__shfl_down_sync(0xffffffffu, n, offset),
            __shfl_down_sync(0xffffffffu, mean, offset),
            __shfl_down_sync(0xffffffffu, m2, offset)};
  }
};

// The backward's two sums, of g and of g * xhat.
struct SumPair {
  float g, g_xhat;
  __device__ void add(const SumPair &v) { merge(v); }
  __device__ void merge(const SumPair &o) {
    g += o.g;
    g_xhat += o.g_xhat;
  }
  __device__ SumPair shfl_down(int offset) const {
    return {__shfl_down_sync(0xffffffffu, g, offset),
            __shfl_down_sync(0xffffffffu, g_xhat, offset)};
  }
};

// Per-element terms of the reductions: what an element adds (operator()),
// and the accumulator it adds to (Acc).
template <class T>
struct ShiftedXTerm {
  using Acc = Moments;
  const T *x;
  Layout l;
  __device__ float operator()(int64_t k, int64_t c) const {
    return cudl__load(x, k) - channel_shift(x, l, c);
  }
};
// The gradient the backward sums: dy, or on the fused path dy through the
// ReLU whose output is y (y not NULL).
template <class T>
__device__ float gradient_in(const T *y, const T *dy, int64_t k) {
  const float g = cudl__load(dy, k);
  return y == nullptr || cudl__load(y, k) > 0.0f ? g : 0.0f;
}

// g and g * xhat; on the fused path g is also the residual's gradient,
// written here (g_out not NULL) so that the input gradient's pass reads it
// instead of y and dy.
template <class T>
struct GradientTerm {
  using Acc = SumPair;
  const T *x, *y, *dy;
  const float *mean, *invstd;
  T *g_out;
  __device__ SumPair operator()(int64_t k, int64_t c) const {
    const float g = gradient_in(y, dy, k);
    if (g_out != nullptr) cudl__store(g_out, k, g);
    return {g, g * (cudl__load(x, k) - mean[c]) * invstd[c]};
  }
};

// Planes of at least this many elements are walked plane by plane: the
// sample n and channel c are known per plane, and no element pays for a
// 64-bit division (which held these kernels near 22 % of the copy rate on
// an H200). Narrower planes go element by element, but for inner == 1,
// which takes the rows shape (module comment).
constexpr int64_t kWidePlane = 64;

template <class Term>
__global__ void channel_partial_kernel(Term term, Layout l,
                                       typename Term::Acc *partial) {
  const int64_t c = blockIdx.x;
  typename Term::Acc acc{};
  if (l.inner >= kWidePlane) {
    for (int64_t n = blockIdx.y; n < l.outer; n += gridDim.y) {
      const int64_t base = (n * l.channels + c) * l.inner;
      for (int64_t i = threadIdx.x; i < l.inner; i += blockDim.x)
        acc.add(term(base + i, c));
    }
  } else {
    const int64_t m = l.outer * l.inner;
    for (int64_t e = (int64_t)blockIdx.y * blockDim.x + threadIdx.x; e < m;
         e += (int64_t)gridDim.y * blockDim.x)
      acc.add(term(l.index(c, e), c));
  }
  acc = cudl__block_merge(acc);
  if (threadIdx.x == 0) partial[c * gridDim.y + blockIdx.y] = acc;
}

// inner == 1: block (tile, p) of the rows shape reduces part p of its
// channels' rows.
template <class Term>
__global__ void rows_partial_kernel(Term term, int64_t rows, int64_t channels,
                                    typename Term::Acc *partial) {
  const int64_t c = cudl__rows_channel();
  typename Term::Acc acc{};
  if (c < channels)
    for (int64_t r = cudl__rows_first(); r < rows; r += cudl__rows_step())
      acc.add(term(r * channels + c, c));
  acc = cudl__column_merge(acc);
  if (threadIdx.y == 0 && c < channels)
    partial[c * gridDim.y + blockIdx.y] = acc;
}

// Channel c's parts merged in order, in double (a channel's count can pass
// float's 2^24), into its statistics.
template <class T>
__global__ void finish_statistics_kernel(const Moments *partial, int parts,
                                         const T *x, Layout l, float eps,
                                         float momentum, float *mean,
                                         float *invstd, float *running_mean,
                                         float *running_var) {
  for (int64_t c = CUDL_GRID_START; c < l.channels; c += CUDL_GRID_STRIDE) {
    double n = 0.0, mu = 0.0, m2 = 0.0;
    for (int p = 0; p < parts; ++p) {
      const Moments o = partial[c * parts + p];
      if (o.n == 0.0f) continue;
      const double total = n + (double)o.n, delta = (double)o.mean - mu,
                   w = (double)o.n / total;
      mu += delta * w;
      m2 += (double)o.m2 + delta * delta * n * w;
      n = total;
    }
    const double m = (double)(l.outer * l.inner), var = m2 / m,
                 value = (double)channel_shift(x, l, c) + mu;
    mean[c] = (float)value;
    invstd[c] = (float)(1.0 / sqrt(var + (double)eps));
    running_mean[c] =
        (float)((1.0 - momentum) * running_mean[c] + (double)momentum * value);
    running_var[c] = (float)((1.0 - momentum) * running_var[c] +
                             (double)momentum * var * m / (m - 1.0));
  }
}

__global__ void finish_gradients_kernel(const SumPair *partial, int parts,
                                        int64_t channels, float *dgamma,
                                        float *dbeta) {
  for (int64_t c = CUDL_GRID_START; c < channels; c += CUDL_GRID_STRIDE) {
    SumPair sum{};
    for (int p = 0; p < parts; ++p) sum.merge(partial[c * parts + p]);
    dbeta[c] = sum.g;
    dgamma[c] = sum.g_xhat;
  }
}

// The elementwise passes: each op takes a channel's constants once
// (channel(c)) and applies them to element k (apply).
struct NormaliseChannel {
  float gamma, beta, mean, invstd;
};

// y = gamma * xhat + beta, plus residual (unless NULL), through a ReLU
// where relu is set (the fused path; plain normalisation has neither).
template <class T>
struct Normalise {
  const T *x;
  const float *gamma, *beta, *mean, *invstd;
  const T *residual;
  bool relu;
  T *y;
  __device__ NormaliseChannel channel(int64_t c) const {
    return {gamma[c], beta[c], mean[c], invstd[c]};
  }
  __device__ void apply(int64_t k, const NormaliseChannel &ch) const {
    float v = ch.gamma * ((cudl__load(x, k) - ch.mean) * ch.invstd) + ch.beta;
    if (residual != nullptr) v = v + cudl__load(residual, k);
    if (relu) v = v < 0.0f ? 0.0f : v;
    cudl__store(y, k, v);
  }
};

template <class T>
struct Inference {
  const T *x;
  const float *gamma, *beta, *mean, *var;
  float eps;
  T *y;
  __device__ NormaliseChannel channel(int64_t c) const {
    return {gamma[c], beta[c], mean[c],
            (float)(1.0 / sqrt((double)var[c] + (double)eps))};
  }
  __device__ void apply(int64_t k, const NormaliseChannel &ch) const {
    cudl__store(
        y, k, ch.gamma * ((cudl__load(x, k) - ch.mean) * ch.invstd) + ch.beta);
  }
};

// dx from the gradient g (gradient_in).
template <class T>
struct InputGradient {
  const T *x, *y, *dy;
  const float *gamma, *mean, *invstd, *dgamma, *dbeta;
  T *dx;
  float m;
  struct Channel {
    float gamma, mean, invstd, dgamma, dbeta;
  };
  __device__ Channel channel(int64_t c) const {
    return {gamma[c], mean[c], invstd[c], dgamma[c], dbeta[c]};
  }
  __device__ void apply(int64_t k, const Channel &ch) const {
    const float g = gradient_in(y, dy, k);
    const float xhat = (cudl__load(x, k) - ch.mean) * ch.invstd;
    cudl__store(dx, k,
                ch.gamma * ch.invstd / m * (m * g - ch.dbeta - xhat * ch.dgamma));
  }
};

template <class Op>
__global__ void plane_kernel(Op op, Layout l) {
  const int64_t planes = l.outer * l.channels;
  for (int64_t p = blockIdx.x; p < planes; p += gridDim.x) {
    const auto ch = op.channel(p % l.channels);
    const int64_t base = p * l.inner;
    for (int64_t i = threadIdx.x; i < l.inner; i += blockDim.x)
      op.apply(base + i, ch);
  }
}

template <class Op>
__global__ void element_kernel(Op op, Layout l) {
  const int64_t n = l.outer * l.channels * l.inner;
  for (int64_t k = CUDL_GRID_START; k < n; k += CUDL_GRID_STRIDE)
    op.apply(k, op.channel((k / l.inner) % l.channels));
}

// inner == 1: a thread applies its channel's constants down its rows.
template <class Op>
__global__ void rows_kernel(Op op, int64_t rows, int64_t channels) {
  const int64_t c = cudl__rows_channel();
  if (c >= channels) return;
  const auto ch = op.channel(c);
  for (int64_t r = cudl__rows_first(); r < rows; r += cudl__rows_step())
    op.apply(r * channels + c, ch);
}

template <class Op>
void launch_elementwise(cudaStream_t stream, Op op, Layout l) {
  if (l.inner == 1) {
    const cudl__rows_shape shape = cudl__rows_shape_for(l.outer, l.channels);
    rows_kernel<<<shape.grid, shape.block, 0, stream>>>(op, l.outer,
                                                        l.channels);
  } else if (l.inner >= kWidePlane) {
    plane_kernel<<<cudl__grid_for(l.outer * l.channels * CUDL_BLOCK_SIZE),
                   CUDL_BLOCK_SIZE, 0, stream>>>(op, l);
  } else {
    element_kernel<<<cudl__grid_for(l.outer * l.channels * l.inner),
                     CUDL_BLOCK_SIZE, 0, stream>>>(op, l);
  }
}

// Parts per channel, as for PReLU: about 1024 blocks in all; for inner ==
// 1, the rows shape's.
int parts_for(int64_t outer, int64_t channels, int64_t inner) {
  if (inner == 1) return cudl__rows_shape_for(outer, channels).parts;
  const int64_t m = outer * inner;
  int64_t parts = (1024 + channels - 1) / channels;
  const int64_t useful =
      inner >= kWidePlane ? outer : (m + CUDL_BLOCK_SIZE - 1) / CUDL_BLOCK_SIZE;
  if (parts > useful) parts = useful;
  if (parts > 1024) parts = 1024;
  return parts < 1 ? 1 : (int)parts;
}

// parts is parts_for(l); partial holds l.channels * parts accumulators.
template <class Term>
void channel_partials(cudaStream_t stream, Term term, Layout l, int parts,
                      typename Term::Acc *partial) {
  if (l.inner == 1) {
    const cudl__rows_shape shape = cudl__rows_shape_for(l.outer, l.channels);
    rows_partial_kernel<<<shape.grid, shape.block, 0, stream>>>(
        term, l.outer, l.channels, partial);
    return;
  }
  channel_partial_kernel<<<dim3((unsigned)l.channels, (unsigned)parts),
                           CUDL_BLOCK_SIZE, 0, stream>>>(term, l, partial);
}

// ---- the entries' bodies, one per storage type T ----

template <class T>
cudl_status batchnorm_statistics(cudl_context *ctx, const void *x,
                                 float momentum, float eps,
                                 float *running_mean, float *running_var,
                                 float *save_mean, float *save_invstd,
                                 int64_t outer, int64_t channels,
                                 int64_t inner) {
  const Layout l = {outer, channels, inner};
  const int parts = parts_for(outer, channels, inner);
  const T *tx = cudl__typed<T>(x);
  CUDA_ENTER(ctx, s);
  Scratch<Moments> partial(s);
  CUDL_CUDA_TRY(ctx, partial.alloc(ctx, (size_t)channels * (size_t)parts));
  channel_partials(s->stream, ShiftedXTerm<T>{tx, l}, l, parts, partial.get());
  finish_statistics_kernel<<<cudl__grid_for(channels), CUDL_BLOCK_SIZE, 0,
                             s->stream>>>(partial.get(), parts, tx, l, eps,
                                          momentum, save_mean, save_invstd,
                                          running_mean, running_var);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status batchnorm_apply(cudl_context *ctx, const void *x,
                            const float *gamma, const float *beta,
                            const float *mean, const float *invstd,
                            const void *residual, int relu, void *y,
                            int64_t outer, int64_t channels, int64_t inner) {
  const Layout l = {outer, channels, inner};
  CUDA_ENTER(ctx, s);
  launch_elementwise(
      s->stream,
      Normalise<T>{cudl__typed<T>(x), gamma, beta, mean, invstd,
                   cudl__typed<T>(residual), relu != 0, cudl__typed<T>(y)},
      l);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status batchnorm_forward_training(cudl_context *ctx, const void *x,
                                       const float *gamma, const float *beta,
                                       float momentum, float eps,
                                       float *running_mean, float *running_var,
                                       void *y, float *save_mean,
                                       float *save_invstd, int64_t outer,
                                       int64_t channels, int64_t inner) {
  const cudl_status status =
      batchnorm_statistics<T>(ctx, x, momentum, eps, running_mean, running_var,
                              save_mean, save_invstd, outer, channels, inner);
  if (status != CUDL_OK) return status;
  return batchnorm_apply<T>(ctx, x, gamma, beta, save_mean, save_invstd,
                            nullptr, 0, y, outer, channels, inner);
}

template <class T>
cudl_status batchnorm_forward_inference(cudl_context *ctx, const void *x,
                                        const float *gamma, const float *beta,
                                        const float *running_mean,
                                        const float *running_var, float eps,
                                        void *y, int64_t outer,
                                        int64_t channels, int64_t inner) {
  const Layout l = {outer, channels, inner};
  CUDA_ENTER(ctx, s);
  launch_elementwise(s->stream,
                     Inference<T>{cudl__typed<T>(x), gamma, beta, running_mean,
                                  running_var, eps, cudl__typed<T>(y)},
                     l);
  return CUDL_CUDA_LAUNCHED(ctx);
}

// The backward, of plain batch norm (y and dresidual NULL) or through the
// fused path's ReLU.
template <class T>
cudl_status batchnorm_relu_backward(cudl_context *ctx, const void *x,
                                    const void *y, const void *dy,
                                    const float *gamma, const float *save_mean,
                                    const float *save_invstd, void *dx,
                                    void *dresidual, float *dgamma,
                                    float *dbeta, int64_t outer,
                                    int64_t channels, int64_t inner) {
  const Layout l = {outer, channels, inner};
  const int parts = parts_for(outer, channels, inner);
  const T *tx = cudl__typed<T>(x), *ty = cudl__typed<T>(y),
          *tdy = cudl__typed<T>(dy);
  T *tdres = cudl__typed<T>(dresidual);
  CUDA_ENTER(ctx, s);
  Scratch<SumPair> partial(s);
  CUDL_CUDA_TRY(ctx, partial.alloc(ctx, (size_t)channels * (size_t)parts));
  channel_partials(s->stream,
                   GradientTerm<T>{tx, ty, tdy, save_mean, save_invstd, tdres},
                   l, parts, partial.get());
  finish_gradients_kernel<<<cudl__grid_for(channels), CUDL_BLOCK_SIZE, 0,
                            s->stream>>>(partial.get(), parts, channels, dgamma,
                                         dbeta);
  // The input gradient's g: the residual's gradient where the reduction
  // wrote it (no mask to apply again), else dy through y's mask.
  if (outer * inner > 0)
    launch_elementwise(
        s->stream,
        InputGradient<T>{tx, tdres != nullptr ? nullptr : ty,
                         tdres != nullptr ? tdres : tdy, gamma, save_mean,
                         save_invstd, dgamma, dbeta, cudl__typed<T>(dx),
                         (float)(outer * inner)},
        l);
  return CUDL_CUDA_LAUNCHED(ctx);
}

template <class T>
cudl_status batchnorm_backward(cudl_context *ctx, const void *x, const void *dy,
                               const float *gamma, const float *save_mean,
                               const float *save_invstd, void *dx,
                               float *dgamma, float *dbeta, int64_t outer,
                               int64_t channels, int64_t inner) {
  return batchnorm_relu_backward<T>(ctx, x, nullptr, dy, gamma, save_mean,
                                    save_invstd, dx, nullptr, dgamma, dbeta,
                                    outer, channels, inner);
}

}  // namespace

// ---- entries ----

CUDL_CUDA_FLOATS(batchnorm_forward_training,
                 (cudl_context * ctx, const void *x, const float *gamma,
                  const float *beta, float momentum, float eps,
                  float *running_mean, float *running_var, void *y,
                  float *save_mean, float *save_invstd, int64_t outer,
                  int64_t channels, int64_t inner),
                 batchnorm_forward_training,
                 (ctx, x, gamma, beta, momentum, eps, running_mean, running_var,
                  y, save_mean, save_invstd, outer, channels, inner))
CUDL_CUDA_FLOATS(batchnorm_forward_inference,
                 (cudl_context * ctx, const void *x, const float *gamma,
                  const float *beta, const float *running_mean,
                  const float *running_var, float eps, void *y, int64_t outer,
                  int64_t channels, int64_t inner),
                 batchnorm_forward_inference,
                 (ctx, x, gamma, beta, running_mean, running_var, eps, y, outer,
                  channels, inner))
CUDL_CUDA_FLOATS(batchnorm_backward,
                 (cudl_context * ctx, const void *x, const void *dy,
                  const float *gamma, const float *save_mean,
                  const float *save_invstd, void *dx, float *dgamma,
                  float *dbeta, int64_t outer, int64_t channels, int64_t inner),
                 batchnorm_backward,
                 (ctx, x, dy, gamma, save_mean, save_invstd, dx, dgamma, dbeta,
                  outer, channels, inner))
CUDL_CUDA_FLOATS(batchnorm_statistics,
                 (cudl_context * ctx, const void *x, float momentum, float eps,
                  float *running_mean, float *running_var, float *save_mean,
                  float *save_invstd, int64_t outer, int64_t channels,
                  int64_t inner),
                 batchnorm_statistics,
                 (ctx, x, momentum, eps, running_mean, running_var, save_mean,
                  save_invstd, outer, channels, inner))
CUDL_CUDA_FLOATS(batchnorm_apply,
                 (cudl_context * ctx, const void *x, const float *gamma,
                  const float *beta, const float *mean, const float *invstd,
                  const void *residual, int relu, void *y, int64_t outer,
                  int64_t channels, int64_t inner),
                 batchnorm_apply,
                 (ctx, x, gamma, beta, mean, invstd, residual, relu, y, outer,
                  channels, inner))
CUDL_CUDA_FLOATS(batchnorm_relu_backward,
                 (cudl_context * ctx, const void *x, const void *y,
                  const void *dy, const float *gamma, const float *save_mean,
                  const float *save_invstd, void *dx, void *dresidual,
                  float *dgamma, float *dbeta, int64_t outer, int64_t channels,
                  int64_t inner),
                 batchnorm_relu_backward,
                 (ctx, x, y, dy, gamma, save_mean, save_invstd, dx, dresidual,
                  dgamma, dbeta, outer, channels, inner))
