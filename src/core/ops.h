/*
 * ops.h - the operator table through which src/core dispatches to a device,
 * generated from ops.def, and the argument types the operators share.
 *
 * Each backend has one cudl_ops: for every operator in ops.def an entry per
 * dtype, filled by CUDL_REGISTER_OP with its cudl__<backend>_<name>
 * functions. Callers, public or internal, go through CUDL_OP_CALL.
 */
#ifndef CUDL_OPS_H
#define CUDL_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "cudl/cudl.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The geometry of a 2-D pooling, validated, with the sizes filled in. */
typedef struct cudl_pool2d_geometry {
  int64_t n, c, h, w; /* input */
  int64_t oh, ow;     /* output */
  int64_t kh, kw, sh, sw, ph, pw;
  int count_include_pad; /* average pooling's divisor rule */
  int channels_last;     /* x and y are [n, h, w, c], [n, oh, ow, c] */
} cudl_pool2d_geometry;

/* The geometry of a 2-D convolution, validated (cudl/conv.h). */
typedef struct cudl_conv2d_geometry {
  int64_t n, c, h, w;             /* input x [n, c, h, w] */
  int64_t k, r, s;                /* weight [k, c / groups, r, s] */
  int64_t oh, ow;                 /* output y [n, k, oh, ow] */
  int64_t sh, sw, ph, pw, dh, dw; /* stride, padding, dilation */
  int64_t groups;
  /* Nonzero: channels-last, x [n, h, w, c], w [k, r, s, c / groups], y [n,
   * oh, ow, k] (cudl/tensor.h's CUDL_LAYOUT_NHWC). */
  int64_t channels_last;
} cudl_conv2d_geometry;

/* What conv2d_forward_fused does to a convolution's output before storing
 * it (cudl_conv2d_forward_fused): y = act(conv + bias + residual), each
 * part optional. */
typedef struct cudl_conv2d_epilogue {
  const void *bias;     /* [k], or NULL */
  const void *residual; /* y's shape and layout, or NULL */
  int relu;             /* nonzero: max(v, 0) + negative_slope * min(v, 0) */
  float negative_slope; /* 0 for ReLU, the slope for leaky ReLU */
} cudl_conv2d_epilogue;

/* Losses of loss_forward and loss_backward (cudl/loss.h). */
typedef enum cudl_loss_kind {
  CUDL_LOSS_MSE,
  CUDL_LOSS_BCE_WITH_LOGITS
} cudl_loss_kind;

/* The scalars of one optimizer step (cudl/optim.h), already in the floats
 * PyTorch's torch.optim (1.13) computes with: src/nn/optim.c derives them
 * from the config in double and rounds each once, as PyTorch's Python
 * floats are rounded when they reach a float kernel. */
typedef struct cudl_sgd_step_args {
  float neg_lr;              /* -lr */
  float weight_decay;        /* d = fma(p, weight_decay, g) when nonzero */
  float momentum;            /* 0: no buffer (the pointer is NULL) */
  float one_minus_dampening; /* 1 - dampening */
  int nesterov;
  int first_step; /* momentum: the buffer becomes d (PyTorch's clone) */
} cudl_sgd_step_args;

typedef struct cudl_adam_step_args {
  float decay;        /* AdamW: p *= 1 - lr * weight_decay; 1 for Adam */
  float weight_decay; /* Adam: g = fma(p, weight_decay, g); 0 for AdamW */
  float beta1, one_minus_beta1;
  float beta2, one_minus_beta2;
  float neg_step_size;         /* -lr / (1 - beta1^t) */
  float bias_correction2_sqrt; /* sqrt(1 - beta2^t) */
  float eps;
} cudl_adam_step_args;

/* Each operator's entries, one per dtype; NULL where the backend has no
 * implementation for that dtype. */
#define CUDL_DTYPE_COUNT 4

typedef struct cudl_ops {
#define CUDL_OP(name, dtypes, params) \
  cudl_status(*name[CUDL_DTYPE_COUNT]) params;
#include "core/ops.def"
#undef CUDL_OP
} cudl_ops;

/* The prototypes of a backend's entries and the table that registers them,
 * for each operator's set of dtypes (ops.def): cudl__<prefix>_<name> is the
 * f32 entry, _bf16 and _f16 the 16-bit ones of a FLOATS operator. A backend
 * defines every entry of ops.def: one it lacks fails to link, not at run
 * time. */
#define CUDL_DECLARE_F32(prefix, name, params) \
  cudl_status cudl__##prefix##_##name params;
#define CUDL_DECLARE_FLOATS(prefix, name, params)    \
  CUDL_DECLARE_F32(prefix, name, params)             \
  cudl_status cudl__##prefix##_##name##_bf16 params; \
  cudl_status cudl__##prefix##_##name##_f16 params;
#define CUDL_DECLARE_OP(prefix, name, dtypes, params) \
  CUDL_DECLARE_##dtypes(prefix, name, params)

#define CUDL_REGISTER_F32(prefix, name) \
  [CUDL_DTYPE_F32] = cudl__##prefix##_##name
#define CUDL_REGISTER_FLOATS(prefix, name)                  \
  CUDL_REGISTER_F32(prefix, name),                          \
      [CUDL_DTYPE_BF16] = cudl__##prefix##_##name##_bf16, \
      [CUDL_DTYPE_F16] = cudl__##prefix##_##name##_f16
#define CUDL_REGISTER_OP(prefix, name, dtypes) \
  .name = {CUDL_REGISTER_##dtypes(prefix, name)},

#define CUDL_OP(name, dtypes, params) \
  CUDL_DECLARE_OP(cpu, name, dtypes, params)
#include "core/ops.def"
#undef CUDL_OP
#if defined(CUDL_HAVE_CUDA)
#  define CUDL_OP(name, dtypes, params) \
    CUDL_DECLARE_OP(cuda, name, dtypes, params)
#  include "core/ops.def"
#  undef CUDL_OP
#endif

#ifdef __cplusplus
}
#endif

#endif /* CUDL_OPS_H */
