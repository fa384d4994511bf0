/* model.c - the model graph: building with shape inference, memory
 * planning (arenas, shared gradient buffers), forward and backward through
 * the public operator calls, parameters by name. */
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

#define NAME_SIZE 128
/* Arena offsets are rounded up to this many floats (64 bytes), so every
 * parameter is aligned for vector loads. */
#define ARENA_ALIGN 16

typedef enum node_kind {
  NODE_INPUT,
  NODE_CONV,
  NODE_LINEAR,
  NODE_BATCHNORM,
  NODE_ACTIVATION,
  NODE_PRELU,
  NODE_RRELU,
  NODE_DROPOUT,
  NODE_POOL,
  NODE_GLOBAL_AVG_POOL,
  NODE_FLATTEN,
  NODE_ADD
} node_kind;

static const char *const kind_names[] = {
    "input", "conv2d",  "linear", "batchnorm",       "activation", "prelu",
    "rrelu", "dropout", "pool2d", "global_avg_pool", "flatten",    "add"};

typedef struct param_entry {
  char name[NAME_SIZE];
  int trainable;
  int ndim;
  int64_t shape[4];
  int64_t numel;
  int64_t offset;     /* in its arena, in floats */
  cudl_tensor *value; /* view into the parameter or buffer arena */
  cudl_tensor *grad;  /* view into the gradient arena (trainable only) */
} param_entry;

typedef struct node {
  node_kind kind;
  int in[2], n_in;
  int ndim; /* per-sample shape */
  int64_t shape[3];
  int64_t numel; /* per sample */
  char name[NAME_SIZE];
  /* layer settings */
  cudl_conv2d_desc conv;
  cudl_pool2d_desc pool;
  int is_max;
  cudl_activation_type act;
  float alpha, lower, upper, p, momentum, eps, init_slope;
  int has_bias;
  int weight, bias, running_mean, running_var; /* param indices, or -1 */
  /* planning */
  int consumers;
  int grad_slot; /* -1: no gradient buffer */
  /* memory for max_batch rows */
  cudl_tensor *out_full; /* NULL for flatten (a view of its input) */
  cudl_tensor *aux_full; /* dropout mask, RReLU noise */
  cudl_tensor *save_mean, *save_invstd; /* batch norm */
  /* views for the current number of rows */
  cudl_tensor *y, *dy, *aux;
  cudl_tensor *flat_in;       /* linear: input as [rows, features] */
  cudl_tensor *dx_view[2];    /* gradient of input k, in this node's
                                 view of it (linear: flat) */
  cudl_tensor *dx_scratch[2]; /* the same shape in the scratch buffer */
  int grad_written;           /* this backward pass */
  cudl_tensor *activity;      /* diagnostics: [units] of a ReLU-family
                                 node's input, 1 once active in the window */
} node;

struct cudl_model {
  cudl_context *ctx;
  /* The context's allocator when the model was made: everything the model
   * allocates on the host goes back to it, even if the context's changes. */
  cudl_allocator allocator;
  node *nodes;
  int node_count, node_capacity;
  param_entry *params;
  int param_count, param_capacity;
  int output;
  cudl_model_loss loss;
  int has_output;
  int compiled;
  int training;
  int64_t max_batch;
  int64_t rows; /* of the current views; 0 before the first forward */
  cudl_tensor *param_arena, *grad_arena, *buffer_arena;
  int64_t param_floats, buffer_floats;
  cudl_tensor **slots; /* gradient buffers, [max_batch * slot_numel] */
  int64_t *slot_numel;
  int slot_count;
  cudl_tensor *scratch;    /* [max_batch * max numel] */
  cudl_tensor *loss_value; /* [1] */
  /* The last forward's target as the loss sees it: the caller's, or
   * target_view, the caller's in the output's shape (kept for backward). */
  const cudl_tensor *target;
  cudl_tensor *target_view;
  int forward_done;
  /* Diagnostics (cudl_model_set_diagnostics): the training forwards of the
   * window and since switching on, and per node i the L2 norm of its
   * output gradient at [i] and of its weight gradient at [node_count + i]
   * from the last backward that recorded them (every diagnostics-th). */
  int diagnostics; /* the period in training steps; 0: off */
  int64_t diag_steps, diag_forwards;
  int diag_norms_now; /* this step's backward records the norms */
  cudl_tensor *diag_norms;
  /* Check-numerics mode (cudl_model_set_check_numerics) and its last
   * finding; backward passes completed, for the report's step. */
  int check_numerics;
  cudl_numerics_report numerics;
  int64_t backward_passes;
};

/* ---- small helpers ---- */

static void destroy_views(cudl_model *m) {
  int i, k;
  for (i = 0; i < m->node_count; ++i) {
    node *n = &m->nodes[i];
    cudl_tensor **views[] = {
        &n->y,          &n->dy,         &n->aux,           &n->flat_in,
        &n->dx_view[0], &n->dx_view[1], &n->dx_scratch[0], &n->dx_scratch[1]};
    for (k = 0; k < (int)(sizeof views / sizeof views[0]); ++k) {
      cudl_tensor_destroy(*views[k]);
      *views[k] = NULL;
    }
  }
  m->rows = 0;
}

cudl_context *cudl_model_context(const cudl_model *m) {
  return m == NULL ? NULL : m->ctx;
}

void cudl_model_destroy(cudl_model *m) {
  cudl_allocator allocator;
  int i;
  if (m == NULL) return;
  destroy_views(m);
  cudl_model_set_diagnostics(m, 0);
  for (i = 0; i < m->node_count; ++i) {
    cudl_tensor_destroy(m->nodes[i].out_full);
    cudl_tensor_destroy(m->nodes[i].aux_full);
    cudl_tensor_destroy(m->nodes[i].save_mean);
    cudl_tensor_destroy(m->nodes[i].save_invstd);
  }
  for (i = 0; i < m->param_count; ++i) {
    cudl_tensor_destroy(m->params[i].value);
    cudl_tensor_destroy(m->params[i].grad);
  }
  for (i = 0; i < m->slot_count; ++i) cudl_tensor_destroy(m->slots[i]);
  cudl_tensor_destroy(m->scratch);
  cudl_tensor_destroy(m->loss_value);
  cudl_tensor_destroy(m->target_view);
  cudl_tensor_destroy(m->param_arena);
  cudl_tensor_destroy(m->grad_arena);
  cudl_tensor_destroy(m->buffer_arena);
  allocator = m->allocator;
  cudl__host_free(&allocator, m->slots,
                  (size_t)m->slot_count * sizeof *m->slots);
  cudl__host_free(&allocator, m->slot_numel,
                  (size_t)m->slot_count * sizeof *m->slot_numel);
  cudl__host_free(&allocator, m->nodes,
                  (size_t)m->node_capacity * sizeof *m->nodes);
  cudl__host_free(&allocator, m->params,
                  (size_t)m->param_capacity * sizeof *m->params);
  cudl__host_free(&allocator, m, sizeof *m);
}

/* Grow an array of `size`-byte elements to hold at least need. */
static cudl_status grow(cudl_model *m, void **array, int *capacity, int need,
                        size_t size) {
  cudl_context *ctx = m->ctx;
  void *bigger;
  int cap = *capacity;
  if (need <= cap) return CUDL_OK;
  while (cap < need) cap = cap == 0 ? 16 : 2 * cap;
  bigger = cudl__host_alloc(&m->allocator, (size_t)cap * size, 16);
  if (bigger == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot grow the model");
  memset(bigger, 0, (size_t)cap * size);
  if (*array != NULL) {
    memcpy(bigger, *array, (size_t)*capacity * size);
    cudl__host_free(&m->allocator, *array, (size_t)*capacity * size);
  }
  *array = bigger;
  *capacity = cap;
  return CUDL_OK;
}

cudl_status cudl_model_create(cudl_context *ctx, int input_ndim,
                              const int64_t *input_shape, cudl_model **out) {
  cudl_model *m;
  node *in;
  int i;
  int64_t values = 1;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || input_shape == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "%s is NULL",
                     out == NULL ? "out" : "input_shape");
  if (input_ndim < 1 || input_ndim > 3)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "input_ndim is %d: the per-sample input is [F], [H, W] "
                     "or [C, H, W]",
                     input_ndim);
  for (i = 0; i < input_ndim; ++i)
    if (input_shape[i] < 1 || input_shape[i] > (int64_t)1 << 31)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "input dimension %d is %lld: must be in [1, 2^31]", i,
                       (long long)input_shape[i]);
  /* Each factor <= 2^31, so each product fits before it is checked. */
  for (i = 0; i < input_ndim; ++i) {
    values *= input_shape[i];
    if (values > (int64_t)1 << 31)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "the input has more than 2^31 values per sample");
  }
  m = (cudl_model *)cudl__host_alloc(&ctx->allocator, sizeof *m, 16);
  if (m == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot allocate the model");
  memset(m, 0, sizeof *m);
  m->ctx = ctx;
  m->allocator = ctx->allocator;
  m->training = 1;
  m->output = -1;
  status = grow(m, (void **)&m->nodes, &m->node_capacity, 1, sizeof *m->nodes);
  if (status != CUDL_OK) {
    cudl__host_free(&m->allocator, m, sizeof *m);
    return status;
  }
  in = &m->nodes[0];
  in->kind = NODE_INPUT;
  in->ndim = input_ndim == 2 ? 3 : input_ndim;
  if (input_ndim == 2) {
    in->shape[0] = 1;
    in->shape[1] = input_shape[0];
    in->shape[2] = input_shape[1];
  } else {
    for (i = 0; i < input_ndim; ++i) in->shape[i] = input_shape[i];
  }
  in->numel = 1;
  for (i = 0; i < in->ndim; ++i) in->numel *= in->shape[i];
  in->weight = in->bias = in->running_mean = in->running_var = -1;
  in->grad_slot = -1;
  strcpy(in->name, "input");
  m->node_count = 1;
  *out = m;
  return CUDL_OK;
}

/* ---- building ---- */

static cudl_status check_building(cudl_model *m, const char *function,
                                  int input, int *node_out) {
  if (m->compiled)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "the model is compiled; layers cannot be added");
  if (node_out == NULL)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "node is NULL");
  if (input < 0 || input >= m->node_count)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "input node %d does not exist (the model has %d)", input,
                      m->node_count);
  /* Room for the new node now, before the caller takes pointers into
   * m->nodes (its input's): new_node must not move the array. */
  return grow(m, (void **)&m->nodes, &m->node_capacity, m->node_count + 1,
              sizeof *m->nodes);
}

static cudl_status check_name(cudl_model *m, const char *function,
                              const char *name) {
  int i;
  if (name == NULL || name[0] == '\0')
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "name is empty: layers with parameters need one");
  /* Room for ".running_mean". */
  if (strlen(name) + 16 > NAME_SIZE)
    return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "name \"%.40s...\" is longer than %d characters", name,
                      NAME_SIZE - 16);
  for (i = 0; i < m->node_count; ++i)
    if (strcmp(m->nodes[i].name, name) == 0)
      return cudl__fail(m->ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                        "name \"%s\" is already used by node %d", name, i);
  return CUDL_OK;
}

/* Append a node of `kind` reading `inputs`; *out points at it. */
static cudl_status new_node(cudl_model *m, node_kind kind, int in0, int in1,
                            node **out) {
  node *n;
  cudl_status status = grow(m, (void **)&m->nodes, &m->node_capacity,
                            m->node_count + 1, sizeof *m->nodes);
  if (status != CUDL_OK) return status;
  n = &m->nodes[m->node_count];
  memset(n, 0, sizeof *n);
  n->kind = kind;
  n->in[0] = in0;
  n->in[1] = in1;
  n->n_in = in1 >= 0 ? 2 : 1;
  n->weight = n->bias = n->running_mean = n->running_var = -1;
  n->grad_slot = -1;
  *out = n;
  return CUDL_OK;
}

static void set_shape(node *n, int ndim, int64_t a, int64_t b, int64_t c) {
  n->ndim = ndim;
  n->shape[0] = a;
  n->shape[1] = b;
  n->shape[2] = c;
  n->numel = a * (ndim > 1 ? b : 1) * (ndim > 2 ? c : 1);
}

/* Register a parameter (or buffer) of node n called "<n->name>.<suffix>". */
static cudl_status add_param(cudl_model *m, node *n, const char *suffix,
                             int trainable, int ndim, const int64_t *shape,
                             int *index) {
  param_entry *p;
  int i;
  cudl_status status = grow(m, (void **)&m->params, &m->param_capacity,
                            m->param_count + 1, sizeof *m->params);
  if (status != CUDL_OK) return status;
  p = &m->params[m->param_count];
  memset(p, 0, sizeof *p);
  strcpy(p->name, n->name);
  strcat(p->name, ".");
  strcat(p->name, suffix);
  p->trainable = trainable;
  p->ndim = ndim;
  p->numel = 1;
  for (i = 0; i < ndim; ++i) {
    p->shape[i] = shape[i];
    p->numel *= shape[i];
  }
  *index = m->param_count++;
  return CUDL_OK;
}

/* Commit a node built in place at m->nodes[m->node_count]. */
static int commit_node(cudl_model *m, int *node_out) {
  int i, index = m->node_count++;
  node *n = &m->nodes[index];
  for (i = 0; i < n->n_in; ++i) m->nodes[n->in[i]].consumers++;
  *node_out = index;
  return index;
}

#define BUILD_PRELUDE(input)                               \
  cudl_status status;                                      \
  node *n;                                                 \
  const node *src;                                         \
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;         \
  status = check_building(m, __func__, (input), node_out); \
  if (status != CUDL_OK) return status;                    \
  src = &m->nodes[(input)];                                \
  (void)src

cudl_status cudl_model_add_conv2d(cudl_model *m, int input, const char *name,
                                  int64_t out_channels, int kernel_h,
                                  int kernel_w, const cudl_conv2d_desc *desc,
                                  int bias, int *node_out) {
  int64_t x_shape[4], w_shape[4];
  cudl_conv2d_geometry g;
  char where[NAME_SIZE + 64];
  int saved_params;
  BUILD_PRELUDE(input);
  if (desc == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "desc is NULL");
  if (src->ndim != 3)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "input node %d is not an image ([C, H, W] per sample)",
                     input);
  /* Counts are checked before any size is computed from them. */
  if (out_channels > INT_MAX)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "out_channels is %lld: must be in [1, %d] (larger "
                     "counts overflow the int sizes of cuDNN and the BLAS)",
                     (long long)out_channels, INT_MAX);
  if (out_channels < 1 || kernel_h < 1 || kernel_w < 1 || desc->groups < 1 ||
      src->shape[0] % desc->groups != 0)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "out_channels %lld, kernel %dx%d, groups %d for %lld "
                     "input channels: need >= 1 each and groups dividing "
                     "the channels",
                     (long long)out_channels, kernel_h, kernel_w, desc->groups,
                     (long long)src->shape[0]);
  status = check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  x_shape[0] = 1;
  x_shape[1] = src->shape[0];
  x_shape[2] = src->shape[1];
  x_shape[3] = src->shape[2];
  w_shape[0] = out_channels;
  w_shape[1] = src->shape[0] / desc->groups;
  w_shape[2] = kernel_h;
  w_shape[3] = kernel_w;
  snprintf(where, sizeof where, "%s: conv2d \"%s\" on a %lldx%lldx%lld input",
           __func__, name, (long long)x_shape[1], (long long)x_shape[2],
           (long long)x_shape[3]);
  status = cudl__conv2d_geometry(m->ctx, where, desc, x_shape, "the input",
                                 w_shape, "the weight", &g);
  /* Sizes above the int limit of the convolution calls are a shape this
   * model cannot have, not an operation missing from a backend. */
  if (status == CUDL_ERR_UNSUPPORTED) return CUDL_ERR_SHAPE;
  if (status != CUDL_OK) return status;
  /* k and oh * ow are at most INT_MAX each: the product fits. */
  if (g.k * g.oh * g.ow > (int64_t)1 << 31)
    return cudl__fail(m->ctx, CUDL_ERR_SHAPE, where,
                      "the output, %lld x %lld x %lld, has more than 2^31 "
                      "values per sample",
                      (long long)g.k, (long long)g.oh, (long long)g.ow);
  status = new_node(m, NODE_CONV, input, -1, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->conv = *desc;
  n->has_bias = bias != 0;
  set_shape(n, 3, g.k, g.oh, g.ow);
  saved_params = m->param_count;
  status = add_param(m, n, "weight", 1, 4, w_shape, &n->weight);
  if (status == CUDL_OK && bias)
    status = add_param(m, n, "bias", 1, 1, &out_channels, &n->bias);
  if (status != CUDL_OK) {
    m->param_count = saved_params;
    return status;
  }
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_linear(cudl_model *m, int input, const char *name,
                                  int64_t out_features, int bias,
                                  int *node_out) {
  int64_t w_shape[2];
  int saved_params;
  BUILD_PRELUDE(input);
  if (out_features < 1 || out_features > (int64_t)1 << 31)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "out_features is %lld: must be in [1, 2^31]",
                     (long long)out_features);
  status = check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  status = new_node(m, NODE_LINEAR, input, -1, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->has_bias = bias != 0;
  set_shape(n, 1, out_features, 1, 1);
  w_shape[0] = out_features;
  w_shape[1] = m->nodes[input].numel;
  saved_params = m->param_count;
  status = add_param(m, n, "weight", 1, 2, w_shape, &n->weight);
  if (status == CUDL_OK && bias)
    status = add_param(m, n, "bias", 1, 1, &out_features, &n->bias);
  if (status != CUDL_OK) {
    m->param_count = saved_params;
    return status;
  }
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_batchnorm(cudl_model *m, int input, const char *name,
                                     float momentum, float eps, int *node_out) {
  int64_t channels;
  int saved_params;
  BUILD_PRELUDE(input);
  if (!(momentum >= 0.0f && momentum <= 1.0f) || !(eps > 0.0f) ||
      !isfinite(eps))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "momentum %g must be in [0, 1] and eps %g finite and > 0",
                     (double)momentum, (double)eps);
  if (src->ndim == 2)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "batch norm takes [C, H, W] or [F] per sample");
  status = check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  status = new_node(m, NODE_BATCHNORM, input, -1, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->momentum = momentum;
  n->eps = eps;
  set_shape(n, src->ndim, src->shape[0], src->shape[1], src->shape[2]);
  channels = src->shape[0];
  saved_params = m->param_count;
  status = add_param(m, n, "weight", 1, 1, &channels, &n->weight);
  if (status == CUDL_OK)
    status = add_param(m, n, "bias", 1, 1, &channels, &n->bias);
  if (status == CUDL_OK)
    status = add_param(m, n, "running_mean", 0, 1, &channels, &n->running_mean);
  if (status == CUDL_OK)
    status = add_param(m, n, "running_var", 0, 1, &channels, &n->running_var);
  if (status != CUDL_OK) {
    m->param_count = saved_params;
    return status;
  }
  commit_node(m, node_out);
  return CUDL_OK;
}

/* A node with its input's shape and no parameters. */
static cudl_status same_shape_node(cudl_model *m, node_kind kind, int input,
                                   node **out) {
  const node *src = &m->nodes[input];
  cudl_status status = new_node(m, kind, input, -1, out);
  if (status != CUDL_OK) return status;
  set_shape(*out, src->ndim, src->shape[0], src->shape[1], src->shape[2]);
  return CUDL_OK;
}

cudl_status cudl_model_add_activation(cudl_model *m, int input,
                                      cudl_activation_type type, float alpha,
                                      int *node_out) {
  BUILD_PRELUDE(input);
  if ((int)type < (int)CUDL_ACT_SIGMOID || (int)type > (int)CUDL_ACT_ELU)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "unknown activation type %d", (int)type);
  if (!isfinite(alpha))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "alpha must be finite");
  status = same_shape_node(m, NODE_ACTIVATION, input, &n);
  if (status != CUDL_OK) return status;
  n->act = type;
  n->alpha = alpha;
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_prelu(cudl_model *m, int input, const char *name,
                                 int per_channel, float init_slope,
                                 int *node_out) {
  int64_t count;
  BUILD_PRELUDE(input);
  if (!isfinite(init_slope))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "init_slope must be finite");
  status = check_name(m, __func__, name);
  if (status != CUDL_OK) return status;
  status = same_shape_node(m, NODE_PRELU, input, &n);
  if (status != CUDL_OK) return status;
  strcpy(n->name, name);
  n->init_slope = init_slope;
  count = per_channel ? src->shape[0] : 1;
  status = add_param(m, n, "weight", 1, 1, &count, &n->weight);
  if (status != CUDL_OK) return status;
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_rrelu(cudl_model *m, int input, float lower,
                                 float upper, int *node_out) {
  BUILD_PRELUDE(input);
  if (!isfinite(lower) || !isfinite(upper) || !(lower <= upper))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "need finite lower <= upper, got %g and %g", (double)lower,
                     (double)upper);
  status = same_shape_node(m, NODE_RRELU, input, &n);
  if (status != CUDL_OK) return status;
  n->lower = lower;
  n->upper = upper;
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_dropout(cudl_model *m, int input, float p,
                                   int *node_out) {
  BUILD_PRELUDE(input);
  if (!(p >= 0.0f && p <= 1.0f))
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "p is %g: must be in [0, 1]", (double)p);
  status = same_shape_node(m, NODE_DROPOUT, input, &n);
  if (status != CUDL_OK) return status;
  n->p = p;
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_pool2d(cudl_model *m, int input, int is_max,
                                  const cudl_pool2d_desc *desc, int *node_out) {
  int64_t in_shape[4], out_shape[4];
  BUILD_PRELUDE(input);
  if (desc == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "desc is NULL");
  if (src->ndim != 3)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "input node %d is not an image ([C, H, W] per sample)",
                     input);
  in_shape[0] = 1;
  in_shape[1] = src->shape[0];
  in_shape[2] = src->shape[1];
  in_shape[3] = src->shape[2];
  status = cudl_pool2d_output_shape(desc, in_shape, out_shape);
  if (status != CUDL_OK)
    return CUDL_FAIL(m->ctx, status,
                     "pool2d: the window does not fit a %lldx%lld input (%s)",
                     (long long)in_shape[2], (long long)in_shape[3],
                     cudl_status_string(status));
  status = new_node(m, NODE_POOL, input, -1, &n);
  if (status != CUDL_OK) return status;
  n->is_max = is_max != 0;
  n->pool = *desc;
  set_shape(n, 3, out_shape[1], out_shape[2], out_shape[3]);
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_global_avg_pool(cudl_model *m, int input,
                                           int *node_out) {
  BUILD_PRELUDE(input);
  if (src->ndim != 3)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "input node %d is not an image ([C, H, W] per sample)",
                     input);
  status = new_node(m, NODE_GLOBAL_AVG_POOL, input, -1, &n);
  if (status != CUDL_OK) return status;
  set_shape(n, 3, m->nodes[input].shape[0], 1, 1);
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_flatten(cudl_model *m, int input, int *node_out) {
  BUILD_PRELUDE(input);
  status = new_node(m, NODE_FLATTEN, input, -1, &n);
  if (status != CUDL_OK) return status;
  set_shape(n, 1, m->nodes[input].numel, 1, 1);
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_add_add(cudl_model *m, int a, int b, int *node_out) {
  const node *nb;
  BUILD_PRELUDE(a);
  if (b < 0 || b >= m->node_count)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "input node %d does not exist (the model has %d)", b,
                     m->node_count);
  nb = &m->nodes[b];
  if (src->ndim != nb->ndim ||
      memcmp(src->shape, nb->shape, (size_t)src->ndim * sizeof src->shape[0]))
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "nodes %d and %d have different shapes", a, b);
  status = new_node(m, NODE_ADD, a, b, &n);
  if (status != CUDL_OK) return status;
  set_shape(n, m->nodes[a].ndim, m->nodes[a].shape[0], m->nodes[a].shape[1],
            m->nodes[a].shape[2]);
  commit_node(m, node_out);
  return CUDL_OK;
}

cudl_status cudl_model_set_output(cudl_model *m, int output,
                                  cudl_model_loss loss) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is compiled; the output cannot change");
  if (output < 1 || output >= m->node_count)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "output node %d does not exist or is the input", output);
  if ((int)loss < (int)CUDL_MODEL_LOSS_CROSS_ENTROPY ||
      (int)loss > (int)CUDL_MODEL_LOSS_BCE_WITH_LOGITS)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "unknown loss %d",
                     (int)loss);
  if (loss == CUDL_MODEL_LOSS_CROSS_ENTROPY && m->nodes[output].ndim != 1)
    return CUDL_FAIL(m->ctx, CUDL_ERR_SHAPE,
                     "cross-entropy needs logits [K] per sample; node %d has "
                     "%d dimensions (add a flatten)",
                     output, m->nodes[output].ndim);
  m->output = output;
  m->loss = loss;
  m->has_output = 1;
  return CUDL_OK;
}

/* ---- compiling ---- */

static cudl_status make_batch_tensor(cudl_model *m, int64_t rows, const node *n,
                                     cudl_tensor **out) {
  int64_t shape[4];
  int i;
  shape[0] = rows;
  for (i = 0; i < n->ndim; ++i) shape[i + 1] = n->shape[i];
  return cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, n->ndim + 1, shape, out);
}

/* A gradient slot of numel floats per sample: a free one, or a new one. */
static cudl_status take_slot(cudl_model *m, int64_t numel, char *in_use,
                             int *slot) {
  int i, cap;
  for (i = 0; i < m->slot_count; ++i)
    if (!in_use[i] && m->slot_numel[i] == numel) {
      in_use[i] = 1;
      *slot = i;
      return CUDL_OK;
    }
  /* slots and slot_numel grow together, one at a time (few dozen). */
  cap = m->slot_count;
  {
    cudl_tensor **slots = (cudl_tensor **)cudl__host_alloc(
        &m->allocator, (size_t)(cap + 1) * sizeof *slots, 16);
    int64_t *nums = (int64_t *)cudl__host_alloc(
        &m->allocator, (size_t)(cap + 1) * sizeof *nums, 16);
    int64_t shape[1];
    cudl_status status;
    if (slots == NULL || nums == NULL) {
      cudl__host_free(&m->allocator, slots, (size_t)(cap + 1) * sizeof *slots);
      cudl__host_free(&m->allocator, nums, (size_t)(cap + 1) * sizeof *nums);
      return CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot plan gradient buffers");
    }
    if (cap > 0) {
      memcpy(slots, m->slots, (size_t)cap * sizeof *slots);
      memcpy(nums, m->slot_numel, (size_t)cap * sizeof *nums);
    }
    cudl__host_free(&m->allocator, m->slots, (size_t)cap * sizeof *slots);
    cudl__host_free(&m->allocator, m->slot_numel, (size_t)cap * sizeof *nums);
    m->slots = slots;
    m->slot_numel = nums;
    shape[0] = m->max_batch * numel;
    m->slots[cap] = NULL;
    m->slot_numel[cap] = numel;
    m->slot_count = cap + 1;
    status =
        cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, shape, &m->slots[cap]);
    if (status != CUDL_OK) return status;
  }
  in_use[cap] = 1;
  *slot = cap;
  return CUDL_OK;
}

/* Gradient buffers by liveness: walking backward from the last node, an
 * input's gradient is live from the step of its last consumer down to its
 * own step; a buffer is reused once its node's step is done. */
static cudl_status plan_gradients(cudl_model *m) {
  char in_use[4096];
  int i, k;
  cudl_status status;
  memset(in_use, 0, sizeof in_use);
  status = take_slot(m, m->nodes[m->output].numel, in_use,
                     &m->nodes[m->output].grad_slot);
  for (i = m->node_count - 1; i >= 1 && status == CUDL_OK; --i) {
    node *n = &m->nodes[i];
    if (n->grad_slot < 0) continue; /* no gradient reaches it */
    for (k = 0; k < n->n_in && status == CUDL_OK; ++k) {
      node *src = &m->nodes[n->in[k]];
      if (n->in[k] == 0 || src->grad_slot >= 0) continue;
      if (m->slot_count >= (int)sizeof in_use)
        return CUDL_FAIL(m->ctx, CUDL_ERR_UNSUPPORTED,
                         "too many gradient buffers");
      status = take_slot(m, src->numel, in_use, &src->grad_slot);
    }
    in_use[n->grad_slot] = 0;
  }
  return status;
}

/* a + b and a * b, stuck at UINT64_MAX rather than wrapping. */
static uint64_t add_saturated(uint64_t a, uint64_t b) {
  return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}
static uint64_t mul_saturated(uint64_t a, uint64_t b) {
  return b != 0 && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* What compiling for max_batch takes at least (parameters, their
 * gradients, buffers, every node's output and mask for max_batch rows, the
 * scratch; the gradient buffers come on top), against the context's memory
 * limit before anything is allocated: a batch far too large fails at once,
 * instead of after the memory it did get has been filled (zeroed) almost
 * to the limit, where the operating system may end the process first. */
static cudl_status check_compile_memory(const cudl_model *m,
                                        int64_t max_batch) {
  cudl_context *ctx = m->ctx;
  cudl_memory_stats stats;
  uint64_t per_row = 0, floats, bytes, max_numel = 1;
  int i;
  for (i = 0; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    if (n->kind != NODE_FLATTEN)
      per_row = add_saturated(per_row, (uint64_t)n->numel);
    if (n->kind == NODE_DROPOUT || n->kind == NODE_RRELU)
      per_row = add_saturated(per_row, (uint64_t)n->numel);
    if ((uint64_t)n->numel > max_numel) max_numel = (uint64_t)n->numel;
  }
  per_row = add_saturated(per_row, max_numel); /* the scratch */
  floats =
      add_saturated(mul_saturated((uint64_t)max_batch, per_row),
                    add_saturated(mul_saturated(2, (uint64_t)m->param_floats),
                                  (uint64_t)m->buffer_floats));
  bytes = mul_saturated(floats, sizeof(float));
  if (cudl_context_memory_stats(ctx, &stats) != CUDL_OK) return CUDL_OK;
  if (bytes <= (uint64_t)SIZE_MAX &&
      !cudl__memory_limit_exceeded(ctx, (size_t)bytes, stats.bytes_in_use))
    return CUDL_OK;
  return cudl__fail(
      ctx, CUDL_ERR_OUT_OF_MEMORY, "cudl_model_compile",
      "batches of %lld need at least %.1f MiB (parameters, gradients and "
      "every layer's output), with %.1f MiB in use: more than the "
      "context's memory limit of %.1f MiB; a smaller batch needs less "
      "(cudl_context_set_memory_limit changes the limit)",
      (long long)max_batch, (double)bytes / 1048576.0,
      (double)stats.bytes_in_use / 1048576.0,
      (double)cudl__memory_limit(ctx) / 1048576.0);
}

cudl_status cudl_model_compile(cudl_model *m, int64_t max_batch) {
  cudl_context *ctx;
  int64_t shape[1], max_numel = 1;
  int i;
  cudl_status status = CUDL_OK;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = m->ctx;
  if (m->compiled)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is already compiled");
  if (!m->has_output)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "no output: call cudl_model_set_output first");
  if (max_batch < 1 || max_batch > (int64_t)1 << 31)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "max_batch is %lld: must be in [1, 2^31]",
                     (long long)max_batch);
  m->max_batch = max_batch;

  /* Arenas: trainable parameters, then buffers, each aligned. Each count
   * is below 2^63 (the layers bound their factors); the sums are checked
   * here, before anything is allocated. */
  m->param_floats = m->buffer_floats = 0;
  for (i = 0; i < m->param_count; ++i) {
    param_entry *p = &m->params[i];
    int64_t *cursor = p->trainable ? &m->param_floats : &m->buffer_floats;
    int64_t aligned;
    if (p->numel > INT64_MAX - (ARENA_ALIGN - 1) ||
        (aligned = (p->numel + ARENA_ALIGN - 1) / ARENA_ALIGN * ARENA_ALIGN) >
            INT64_MAX - *cursor)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "the %s overflow a 64-bit count at \"%s\" (%lld "
                       "values)",
                       p->trainable ? "parameters" : "buffers", p->name,
                       (long long)p->numel);
    p->offset = *cursor;
    *cursor += aligned;
  }
  status = check_compile_memory(m, max_batch);
  if (status != CUDL_OK) return status;
  shape[0] = m->param_floats;
  status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->param_arena);
  if (status == CUDL_OK)
    status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->grad_arena);
  shape[0] = m->buffer_floats;
  if (status == CUDL_OK)
    status =
        cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->buffer_arena);
  for (i = 0; i < m->param_count && status == CUDL_OK; ++i) {
    param_entry *p = &m->params[i];
    status = cudl__tensor_view(p->trainable ? m->param_arena : m->buffer_arena,
                               p->offset, p->ndim, p->shape, &p->value);
    if (status == CUDL_OK && p->trainable)
      status = cudl__tensor_view(m->grad_arena, p->offset, p->ndim, p->shape,
                                 &p->grad);
  }

  /* Node memory. */
  for (i = 0; i < m->node_count && status == CUDL_OK; ++i) {
    node *n = &m->nodes[i];
    if (n->numel > max_numel) max_numel = n->numel;
    if (n->kind != NODE_FLATTEN)
      status = make_batch_tensor(m, max_batch, n, &n->out_full);
    if (status == CUDL_OK && (n->kind == NODE_DROPOUT || n->kind == NODE_RRELU))
      status = make_batch_tensor(m, max_batch, n, &n->aux_full);
    if (status == CUDL_OK && n->kind == NODE_BATCHNORM) {
      shape[0] = n->shape[0];
      status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &n->save_mean);
      if (status == CUDL_OK)
        status =
            cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &n->save_invstd);
    }
  }
  if (status == CUDL_OK) status = plan_gradients(m);
  shape[0] = max_batch * max_numel;
  if (status == CUDL_OK)
    status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &m->scratch);
  shape[0] = 1;
  if (status == CUDL_OK)
    status = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 0, shape, &m->loss_value);
  if (status != CUDL_OK) {
    /* Leave the model as it was before compiling: release what was made. */
    cudl_status kept = status;
    for (i = 0; i < m->node_count; ++i) {
      node *n = &m->nodes[i];
      cudl_tensor_destroy(n->out_full);
      cudl_tensor_destroy(n->aux_full);
      cudl_tensor_destroy(n->save_mean);
      cudl_tensor_destroy(n->save_invstd);
      n->out_full = n->aux_full = n->save_mean = n->save_invstd = NULL;
      n->grad_slot = -1;
    }
    for (i = 0; i < m->param_count; ++i) {
      cudl_tensor_destroy(m->params[i].value);
      cudl_tensor_destroy(m->params[i].grad);
      m->params[i].value = m->params[i].grad = NULL;
    }
    for (i = 0; i < m->slot_count; ++i) cudl_tensor_destroy(m->slots[i]);
    cudl__host_free(&m->allocator, m->slots,
                    (size_t)m->slot_count * sizeof *m->slots);
    cudl__host_free(&m->allocator, m->slot_numel,
                    (size_t)m->slot_count * sizeof *m->slot_numel);
    m->slots = NULL;
    m->slot_numel = NULL;
    m->slot_count = 0;
    cudl_tensor_destroy(m->scratch);
    cudl_tensor_destroy(m->loss_value);
    cudl_tensor_destroy(m->param_arena);
    cudl_tensor_destroy(m->grad_arena);
    cudl_tensor_destroy(m->buffer_arena);
    m->scratch = m->loss_value = NULL;
    m->param_arena = m->grad_arena = m->buffer_arena = NULL;
    return kept;
  }
  m->compiled = 1;
  return cudl_model_init(m, CUDL_INIT_ZEROS);
}

/* ---- parameters ---- */

static int find_param(const cudl_model *m, const char *name) {
  int i;
  if (m == NULL || name == NULL) return -1;
  for (i = 0; i < m->param_count; ++i)
    if (strcmp(m->params[i].name, name) == 0) return i;
  return -1;
}

/* Parameters are registered per layer; list the trainable ones first. */
static int param_by_listing(const cudl_model *m, int index) {
  int i, seen = 0, pass;
  for (pass = 1; pass >= 0; --pass)
    for (i = 0; i < m->param_count; ++i)
      if (m->params[i].trainable == pass && seen++ == index) return i;
  return -1;
}

int cudl_model_param_count(const cudl_model *m) {
  return m == NULL ? 0 : m->param_count;
}

const char *cudl_model_param_name(const cudl_model *m, int index,
                                  int *trainable) {
  int i;
  if (m == NULL || index < 0 || index >= m->param_count) return NULL;
  i = param_by_listing(m, index);
  if (trainable != NULL) *trainable = m->params[i].trainable;
  return m->params[i].name;
}

cudl_tensor *cudl_model_param(cudl_model *m, const char *name) {
  int i = find_param(m, name);
  return i < 0 ? NULL : m->params[i].value;
}

cudl_tensor *cudl_model_grad(cudl_model *m, const char *name) {
  int i = find_param(m, name);
  return i < 0 ? NULL : m->params[i].grad;
}

cudl_tensor *cudl_model_params(cudl_model *m) {
  return m == NULL ? NULL : m->param_arena;
}

cudl_tensor *cudl_model_grads(cudl_model *m) {
  return m == NULL ? NULL : m->grad_arena;
}

/* fan_in and fan_out of a weight, as torch.nn.init computes them. */
static void fans(const param_entry *w, double *fan_in, double *fan_out) {
  double receptive = w->ndim == 4 ? (double)(w->shape[2] * w->shape[3]) : 1.0;
  *fan_in = (double)w->shape[1] * receptive;
  *fan_out = (double)w->shape[0] * receptive;
}

cudl_status cudl_model_init(cudl_model *m, cudl_init_scheme scheme) {
  int i;
  cudl_status status = CUDL_OK;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "compile the model before initialising it");
  if ((int)scheme < (int)CUDL_INIT_KAIMING_NORMAL ||
      (int)scheme > (int)CUDL_INIT_ZEROS)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "unknown initialisation scheme %d", (int)scheme);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    const node *n = &m->nodes[i];
    if (n->kind == NODE_CONV || n->kind == NODE_LINEAR) {
      param_entry *w = &m->params[n->weight];
      double fan_in, fan_out, bound;
      fans(w, &fan_in, &fan_out);
      switch (scheme) {
        case CUDL_INIT_KAIMING_NORMAL:
          status =
              cudl_tensor_normal(w->value, 0.0f, (float)sqrt(2.0 / fan_in));
          break;
        case CUDL_INIT_KAIMING_UNIFORM:
          bound = sqrt(6.0 / fan_in);
          status = cudl_tensor_uniform(w->value, (float)-bound, (float)bound);
          break;
        case CUDL_INIT_XAVIER_NORMAL:
          status = cudl_tensor_normal(w->value, 0.0f,
                                      (float)sqrt(2.0 / (fan_in + fan_out)));
          break;
        case CUDL_INIT_XAVIER_UNIFORM:
          bound = sqrt(6.0 / (fan_in + fan_out));
          status = cudl_tensor_uniform(w->value, (float)-bound, (float)bound);
          break;
        case CUDL_INIT_PYTORCH_DEFAULT:
          bound = 1.0 / sqrt(fan_in);
          status = cudl_tensor_uniform(w->value, (float)-bound, (float)bound);
          if (status == CUDL_OK && n->bias >= 0)
            status = cudl_tensor_uniform(m->params[n->bias].value,
                                         (float)-bound, (float)bound);
          break;
        case CUDL_INIT_ZEROS:
          status = cudl_tensor_fill(w->value, 0.0f);
          break;
      }
      if (status == CUDL_OK && n->bias >= 0 &&
          scheme != CUDL_INIT_PYTORCH_DEFAULT)
        status = cudl_tensor_fill(m->params[n->bias].value, 0.0f);
    } else if (n->kind == NODE_BATCHNORM) {
      status = cudl_tensor_fill(m->params[n->weight].value, 1.0f);
      if (status == CUDL_OK)
        status = cudl_tensor_fill(m->params[n->bias].value, 0.0f);
      if (status == CUDL_OK)
        status = cudl_tensor_fill(m->params[n->running_mean].value, 0.0f);
      if (status == CUDL_OK)
        status = cudl_tensor_fill(m->params[n->running_var].value, 1.0f);
    } else if (n->kind == NODE_PRELU) {
      status = cudl_tensor_fill(m->params[n->weight].value, n->init_slope);
    }
  }
  return status;
}

/* ---- views for the current batch size ---- */

static cudl_status batch_view(const cudl_model *m, const cudl_tensor *base,
                              int64_t rows, int ndim, const int64_t *shape,
                              cudl_tensor **out) {
  int64_t full[4];
  int i;
  (void)m;
  full[0] = rows;
  for (i = 0; i < ndim; ++i) full[i + 1] = shape[i];
  return cudl__tensor_view(base, 0, ndim + 1, full, out);
}

static cudl_status build_views(cudl_model *m, int64_t rows) {
  int i, k;
  cudl_status status = CUDL_OK;
  destroy_views(m);
  for (i = 0; i < m->node_count && status == CUDL_OK; ++i) {
    node *n = &m->nodes[i];
    /* A flatten views its input's values (built before it: nodes are in
     * topological order). */
    if (n->kind == NODE_FLATTEN)
      status =
          batch_view(m, m->nodes[n->in[0]].y, rows, n->ndim, n->shape, &n->y);
    else
      status = batch_view(m, n->out_full, rows, n->ndim, n->shape, &n->y);
    if (status == CUDL_OK && n->aux_full != NULL)
      status = batch_view(m, n->aux_full, rows, n->ndim, n->shape, &n->aux);
    if (status == CUDL_OK && n->grad_slot >= 0)
      status = batch_view(m, m->slots[n->grad_slot], rows, n->ndim, n->shape,
                          &n->dy);
    if (status == CUDL_OK && n->kind == NODE_LINEAR)
      status = batch_view(m, m->nodes[n->in[0]].y, rows, 1,
                          &m->nodes[n->in[0]].numel, &n->flat_in);
    for (k = 0; k < n->n_in && status == CUDL_OK && i > 0; ++k) {
      const node *src = &m->nodes[n->in[k]];
      int ndim = n->kind == NODE_LINEAR ? 1 : src->ndim;
      const int64_t *shape = n->kind == NODE_LINEAR ? &src->numel : src->shape;
      if (src->grad_slot >= 0)
        status = batch_view(m, m->slots[src->grad_slot], rows, ndim, shape,
                            &n->dx_view[k]);
      if (status == CUDL_OK)
        status =
            batch_view(m, m->scratch, rows, ndim, shape, &n->dx_scratch[k]);
    }
  }
  if (status == CUDL_OK)
    m->rows = rows;
  else
    destroy_views(m);
  return status;
}

/* ---- forward ---- */

cudl_status cudl_model_set_training(cudl_model *m, int training) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  m->training = training != 0;
  return CUDL_OK;
}

static cudl_tensor *param(cudl_model *m, int index) {
  return index < 0 ? NULL : m->params[index].value;
}

static cudl_tensor *grad_of(cudl_model *m, int index) {
  return index < 0 ? NULL : m->params[index].grad;
}

static cudl_status forward_node(cudl_model *m, node *n) {
  cudl_context *ctx = m->ctx;
  const cudl_tensor *x = m->nodes[n->in[0]].y;
  switch (n->kind) {
    case NODE_INPUT:
    case NODE_FLATTEN:
      return CUDL_OK; /* copied in / a view */
    case NODE_CONV:
      return cudl_conv2d_forward(ctx, &n->conv, x, param(m, n->weight),
                                 param(m, n->bias), n->y);
    case NODE_LINEAR:
      return cudl_linear_forward(ctx, n->flat_in, param(m, n->weight),
                                 param(m, n->bias), n->y);
    case NODE_BATCHNORM:
      if (m->training)
        return cudl_batchnorm_forward_training(
            ctx, x, param(m, n->weight), param(m, n->bias), n->momentum, n->eps,
            param(m, n->running_mean), param(m, n->running_var), n->y,
            n->save_mean, n->save_invstd);
      return cudl_batchnorm_forward_inference(
          ctx, x, param(m, n->weight), param(m, n->bias),
          param(m, n->running_mean), param(m, n->running_var), n->eps, n->y);
    case NODE_ACTIVATION:
      switch (n->act) {
        case CUDL_ACT_SIGMOID:
          return cudl_sigmoid_forward(ctx, x, n->y);
        case CUDL_ACT_TANH:
          return cudl_tanh_forward(ctx, x, n->y);
        case CUDL_ACT_RELU:
          return cudl_relu_forward(ctx, x, n->y);
        case CUDL_ACT_LEAKY_RELU:
          return cudl_leaky_relu_forward(ctx, x, n->alpha, n->y);
        case CUDL_ACT_ELU:
          return cudl_elu_forward(ctx, x, n->alpha, n->y);
      }
      break;
    case NODE_PRELU:
      return cudl_prelu_forward(ctx, x, param(m, n->weight), n->y);
    case NODE_RRELU:
      return cudl_rrelu_forward(ctx, x, n->lower, n->upper, m->training,
                                m->training ? n->aux : NULL, n->y);
    case NODE_DROPOUT:
      return cudl_dropout_forward(ctx, x, n->p, m->training,
                                  m->training ? n->aux : NULL, n->y);
    case NODE_POOL:
      return n->is_max ? cudl_max_pool2d_forward(ctx, &n->pool, x, n->y)
                       : cudl_avg_pool2d_forward(ctx, &n->pool, x, n->y);
    case NODE_GLOBAL_AVG_POOL:
      return cudl_global_avg_pool_forward(ctx, x, n->y);
    case NODE_ADD:
      return cudl_add(ctx, x, 1.0f, m->nodes[n->in[1]].y, n->y);
  }
  return CUDL_FAIL(ctx, CUDL_ERR_INTERNAL, "unknown node kind");
}

static cudl_status compute_loss(cudl_model *m, const cudl_tensor *target) {
  const cudl_tensor *out = m->nodes[m->output].y;
  switch (m->loss) {
    case CUDL_MODEL_LOSS_CROSS_ENTROPY:
      return cudl_cross_entropy_forward(m->ctx, out, target, 0.0f,
                                        CUDL_REDUCTION_MEAN, m->loss_value);
    case CUDL_MODEL_LOSS_MSE:
      return cudl_mse_loss_forward(m->ctx, out, target, CUDL_REDUCTION_MEAN,
                                   m->loss_value);
    case CUDL_MODEL_LOSS_BCE_WITH_LOGITS:
      return cudl_bce_with_logits_forward(m->ctx, out, target,
                                          CUDL_REDUCTION_MEAN, m->loss_value);
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_INTERNAL, "unknown loss");
}

/* ---- diagnostics ---- */

/* Units of a node's per-sample shape: channels of [C, H, W], else every
 * feature; *inner the elements of one unit in one sample. */
static int64_t units_of(const node *n, int64_t *inner) {
  if (n->ndim == 3) {
    *inner = n->shape[1] * n->shape[2];
    return n->shape[0];
  }
  *inner = 1;
  return n->numel;
}

/* ReLU-family nodes, whose dead units the diagnostics count. */
static int has_dead_units(const node *n) {
  return n->kind == NODE_PRELU || n->kind == NODE_RRELU ||
         (n->kind == NODE_ACTIVATION &&
          (n->act == CUDL_ACT_RELU || n->act == CUDL_ACT_LEAKY_RELU ||
           n->act == CUDL_ACT_ELU));
}

static cudl_status record_activity(cudl_model *m, node *n) {
  const node *src = &m->nodes[n->in[0]];
  int64_t inner, units = units_of(src, &inner);
  cudl_context *ctx = m->ctx;
  return CUDL_OP_CALL(ctx, __func__, src->y->dtype, unit_activity, src->y->data,
                      (float *)n->activity->data, m->rows, units, inner);
}

/* diag_norms[slot] = the L2 norm of t, on the device (no waiting). */
static cudl_status norm_into(cudl_model *m, const cudl_tensor *t, int slot) {
  cudl_context *ctx = m->ctx;
  return CUDL_OP_CALL(ctx, __func__, t->dtype, l2_norm, t->data,
                      (float *)m->diag_norms->data + slot, t->numel);
}

cudl_status cudl_model_set_diagnostics(cudl_model *m, int every) {
  cudl_status status = CUDL_OK;
  int i;
  const int64_t two = 2;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  for (i = 0; i < m->node_count; ++i) {
    cudl_tensor_destroy(m->nodes[i].activity);
    m->nodes[i].activity = NULL;
  }
  cudl_tensor_destroy(m->diag_norms);
  m->diag_norms = NULL;
  m->diagnostics = 0;
  m->diag_steps = m->diag_forwards = 0;
  m->diag_norms_now = 0;
  if (every == 0) return CUDL_OK;
  if (every < 0)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "every is %d: the period must be at least 1 (0: off)",
                     every);
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "compile the model before switching diagnostics on");
  {
    const int64_t slots = two * m->node_count;
    status =
        cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &slots, &m->diag_norms);
  }
  if (status == CUDL_OK) status = cudl_tensor_fill(m->diag_norms, NAN);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    node *n = &m->nodes[i];
    int64_t inner, units;
    if (!has_dead_units(n)) continue;
    units = units_of(&m->nodes[n->in[0]], &inner);
    status = cudl_tensor_create(m->ctx, CUDL_DTYPE_F32, 1, &units,
                                &n->activity); /* zero-filled */
  }
  if (status != CUDL_OK) {
    cudl_model_set_diagnostics(m, 0);
    return status;
  }
  m->diagnostics = every;
  return CUDL_OK;
}

static const char *diagnostics_kind(const node *n) {
  static const char *const acts[] = {"sigmoid", "tanh", "relu", "leaky_relu",
                                     "elu"};
  if (n->kind == NODE_ACTIVATION && (int)n->act >= 0 && (int)n->act < 5)
    return acts[n->act];
  return kind_names[n->kind];
}

cudl_status cudl_model_diagnostics(cudl_model *m, cudl_layer_diagnostics *rows,
                                   int capacity, int *count, int64_t *steps) {
  cudl_status status = CUDL_OK;
  float *host = NULL, *norms = NULL;
  size_t host_bytes = 0, norm_bytes;
  int i, out = 0;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (rows == NULL || count == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "rows and count must not be NULL");
  *count = 0;
  if (!m->diagnostics)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "diagnostics are off (cudl_model_set_diagnostics)");
  if (!m->forward_done)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "diagnostics need a forward first");
  if (capacity < m->node_count - 1)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "capacity %d is below the %d layers", capacity,
                     m->node_count - 1);
  /* One host buffer large enough for any node's output, or its activity. */
  for (i = 1; i < m->node_count; ++i)
    if (m->nodes[i].y != NULL && m->nodes[i].y->nbytes > host_bytes)
      host_bytes = m->nodes[i].y->nbytes;
  norm_bytes = m->diag_norms->nbytes;
  host = (float *)cudl__host_alloc(&m->allocator, host_bytes, 64);
  norms = (float *)cudl__host_alloc(&m->allocator, norm_bytes, 64);
  if (host == NULL || norms == NULL)
    status = CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot allocate %zu bytes for the diagnostics",
                       host_bytes + norm_bytes);
  if (status == CUDL_OK)
    status = cudl_tensor_copy_to_host(m->diag_norms, norms, norm_bytes);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    const node *n = &m->nodes[i];
    cudl_layer_diagnostics *r;
    double sum = 0.0, sum_sq = 0.0, mean;
    int64_t k, count_y, saturated = 0;
    if (n->kind == NODE_FLATTEN) continue;
    r = &rows[out++];
    r->node = i;
    r->name = n->name;
    r->kind = diagnostics_kind(n);
    r->output_mean = r->output_std = NAN;
    r->saturated_fraction = r->dead_fraction = NAN;
    r->weight_grad_norm =
        n->weight >= 0 ? (double)norms[m->node_count + i] : NAN;
    r->input_grad_norm = n->in[0] > 0 ? (double)norms[n->in[0]] : NAN;
    status = cudl_tensor_copy_to_host(n->y, host, n->y->nbytes);
    if (status != CUDL_OK) break;
    count_y = n->y->numel;
    for (k = 0; k < count_y; ++k) sum += host[k];
    mean = count_y > 0 ? sum / (double)count_y : NAN;
    for (k = 0; k < count_y; ++k) {
      const double d = host[k] - mean;
      sum_sq += d * d;
    }
    r->output_mean = mean;
    r->output_std = count_y > 0 ? sqrt(sum_sq / (double)count_y) : NAN;
    if (n->kind == NODE_ACTIVATION &&
        (n->act == CUDL_ACT_SIGMOID || n->act == CUDL_ACT_TANH)) {
      const float low = n->act == CUDL_ACT_SIGMOID ? 0.01f : -0.99f;
      for (k = 0; k < count_y; ++k)
        saturated += host[k] < low || host[k] > 0.99f;
      r->saturated_fraction = (double)saturated / (double)count_y;
    }
    if (n->activity != NULL && m->diag_steps > 0) {
      const int64_t units = n->activity->numel;
      int64_t dead = 0;
      status = cudl_tensor_copy_to_host(n->activity, host, n->activity->nbytes);
      for (k = 0; status == CUDL_OK && k < units; ++k) dead += host[k] == 0.0f;
      r->dead_fraction = (double)dead / (double)units;
      if (status == CUDL_OK) status = cudl_tensor_fill(n->activity, 0.0f);
    }
  }
  cudl__host_free(&m->allocator, host, host_bytes);
  cudl__host_free(&m->allocator, norms, norm_bytes);
  if (status != CUDL_OK) return status;
  *count = out;
  if (steps != NULL) *steps = m->diag_steps;
  m->diag_steps = 0;
  return CUDL_OK;
}

/* ---- numerics ---- */

static const char *node_label(const node *n) {
  return n->name[0] ? n->name : kind_names[n->kind];
}

static void clear_report(cudl_numerics_report *r, int64_t step) {
  memset(r, 0, sizeof *r);
  r->step = step;
  r->node = -1;
  r->layer = r->what = "";
}

/* Check-numerics mode: CUDL_ERR_NUMERICS, with the report, when t (what
 * node `index` wrote) holds NaN or infinite values. */
static cudl_status check_values(cudl_model *m, const cudl_tensor *t, int index,
                                const char *layer, const char *what) {
  int64_t nan = 0, inf = 0;
  cudl_numerics_report *r = &m->numerics;
  cudl_status status = cudl_count_nonfinite(m->ctx, t, &nan, &inf);
  if (status != CUDL_OK || (nan == 0 && inf == 0)) return status;
  clear_report(r, m->backward_passes);
  r->node = index;
  r->layer = layer;
  r->what = what;
  r->nan_count = r->total_nan = nan;
  r->inf_count = r->total_inf = inf;
  r->numel = t->numel;
  return cudl__fail(m->ctx, CUDL_ERR_NUMERICS, "check-numerics",
                    "step %lld: the %s of node %d (%s %s) has %lld NaN and "
                    "%lld infinite of %lld values",
                    (long long)r->step, what, index,
                    kind_names[m->nodes[index].kind], layer, (long long)nan,
                    (long long)inf, (long long)t->numel);
}

cudl_status cudl_model_set_check_numerics(cudl_model *m, int enabled) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  m->check_numerics = enabled != 0;
  clear_report(&m->numerics, m->backward_passes);
  return CUDL_OK;
}

cudl_status cudl_model_numerics_report(const cudl_model *m,
                                       cudl_numerics_report *report) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (report == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "report is NULL");
  *report = m->numerics;
  if (report->layer == NULL) clear_report(report, m->backward_passes);
  return CUDL_OK;
}

/* The node a parameter belongs to (-1 if none). */
static int owner_of(const cudl_model *m, int param) {
  int i;
  for (i = 0; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    if (n->weight == param || n->bias == param) return i;
  }
  return -1;
}

cudl_status cudl_model_check_gradients(cudl_model *m,
                                       cudl_numerics_report *report) {
  int64_t nan = 0, inf = 0;
  int i;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (report == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "report is NULL");
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "compile the model first");
  /* The step whose gradients these are: the last backward's. */
  clear_report(report, m->backward_passes > 0 ? m->backward_passes - 1 : 0);
  status = cudl_count_nonfinite(m->ctx, m->grad_arena, &nan, &inf);
  if (status != CUDL_OK || (nan == 0 && inf == 0)) return status;
  report->total_nan = nan;
  report->total_inf = inf;
  report->what = "parameter gradient";
  for (i = 0; i < m->param_count; ++i) {
    const param_entry *p = &m->params[i];
    if (p->grad == NULL) continue;
    status = cudl_count_nonfinite(m->ctx, p->grad, &nan, &inf);
    if (status != CUDL_OK) return status;
    if (nan != 0 || inf != 0) {
      report->node = owner_of(m, i);
      report->layer = p->name;
      report->nan_count = nan;
      report->inf_count = inf;
      report->numel = p->numel;
      return CUDL_OK;
    }
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_INTERNAL,
                   "non-finite gradients found in no parameter");
}

cudl_status cudl_model_forward(cudl_model *m, const cudl_tensor *x,
                               const cudl_tensor *target, float *loss) {
  cudl_context *ctx;
  const node *in;
  int64_t rows;
  int i;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx = m->ctx;
  m->forward_done = 0;
  m->target = NULL;
  cudl_tensor_destroy(m->target_view);
  m->target_view = NULL;
  if (!m->compiled)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "compile the model before running it");
  if (x == NULL) return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "x is NULL");
  in = &m->nodes[0];
  if (x->ctx != ctx || x->dtype != CUDL_DTYPE_F32)
    return CUDL_FAIL(ctx,
                     x->ctx != ctx ? CUDL_ERR_DEVICE_MISMATCH : CUDL_ERR_DTYPE,
                     "x must be an f32 tensor of the model's context");
  /* x is [rows, input shape]; an [N, H, W] batch also fits a [1, H, W]
   * input, since the bytes are the same. */
  rows = x->ndim >= 1 ? x->shape[0] : 0;
  if (rows < 1 || rows > m->max_batch || x->numel != rows * in->numel)
    return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                     "x must hold 1 to %lld rows of %lld values (the input "
                     "shape); it has %lld elements in %lld rows",
                     (long long)m->max_batch, (long long)in->numel,
                     (long long)x->numel, (long long)rows);
  if (rows != m->rows) {
    status = build_views(m, rows);
    if (status != CUDL_OK) return status;
  }
  if (target != NULL) {
    const node *o = &m->nodes[m->output];
    int ok = target->ctx == ctx;
    if (m->loss == CUDL_MODEL_LOSS_CROSS_ENTROPY)
      ok = ok && target->dtype == CUDL_DTYPE_I32 && target->ndim == 1 &&
           target->shape[0] == rows;
    else
      ok = ok && target->dtype == CUDL_DTYPE_F32 && target->ndim >= 1 &&
           target->shape[0] == rows && target->numel == rows * o->numel;
    if (!ok)
      return CUDL_FAIL(ctx, CUDL_ERR_SHAPE,
                       "target must be %s of the model's context",
                       m->loss == CUDL_MODEL_LOSS_CROSS_ENTROPY
                           ? "i32 labels [rows]"
                           : "f32 of the output's shape");
  }
  /* The input batch into node 0's buffer. */
  status = cudl__copy_on_device(ctx, m->nodes[0].y->data, x->data, x->nbytes);
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    status = forward_node(m, &m->nodes[i]);
    if (status == CUDL_OK && m->diagnostics && m->training &&
        m->nodes[i].activity != NULL)
      status = record_activity(m, &m->nodes[i]);
    if (status != CUDL_OK) {
      const char *detail = cudl_context_last_error(ctx);
      char copy[CUDL_ERROR_TEXT_SIZE];
      strncpy(copy, detail, sizeof copy - 1);
      copy[sizeof copy - 1] = '\0';
      return CUDL_FAIL(ctx, status, "node %d (%s%s%s): %s", i,
                       kind_names[m->nodes[i].kind],
                       m->nodes[i].name[0] ? " " : "", m->nodes[i].name, copy);
    }
    if (m->check_numerics && m->nodes[i].kind != NODE_FLATTEN) {
      status =
          check_values(m, m->nodes[i].y, i, node_label(&m->nodes[i]), "output");
      if (status != CUDL_OK) return status;
    }
  }
  if (target != NULL) {
    /* A target of another shape (e.g. [N] for one output): seen in the
     * output's shape, and kept for backward. */
    const node *o = &m->nodes[m->output];
    const cudl_tensor *t = target;
    if (m->loss != CUDL_MODEL_LOSS_CROSS_ENTROPY &&
        (target->ndim != o->ndim + 1 ||
         memcmp(target->shape + 1, o->shape,
                (size_t)o->ndim * sizeof o->shape[0]))) {
      status = batch_view(m, target, rows, o->ndim, o->shape, &m->target_view);
      t = m->target_view;
    }
    if (status == CUDL_OK) status = compute_loss(m, t);
    if (status == CUDL_OK && m->check_numerics)
      status = check_values(m, m->loss_value, m->output,
                            node_label(&m->nodes[m->output]), "loss");
    if (status == CUDL_OK && loss != NULL)
      status = cudl_tensor_copy_to_host(m->loss_value, loss, sizeof *loss);
    if (status != CUDL_OK) return status;
    m->target = t;
  }
  if (m->diagnostics && m->training) {
    ++m->diag_steps;
    m->diag_norms_now = ++m->diag_forwards % m->diagnostics == 0;
  }
  m->forward_done = 1;
  return CUDL_OK;
}

/* ---- backward ---- */

/* Where node n's backward writes the gradient of its input k: straight
 * into the input's buffer when it is the first contribution this pass,
 * else into scratch, to be added (the caller's finish_input). NULL when
 * the input (the data) needs no gradient. */
static cudl_tensor *input_grad_target(cudl_model *m, node *n, int k) {
  node *src = &m->nodes[n->in[k]];
  if (n->in[k] == 0 || src->grad_slot < 0) return NULL;
  return src->grad_written ? n->dx_scratch[k] : n->dx_view[k];
}

static cudl_status finish_input(cudl_model *m, node *n, int k) {
  node *src = &m->nodes[n->in[k]];
  cudl_status status = CUDL_OK;
  if (n->in[k] == 0 || src->grad_slot < 0) return CUDL_OK;
  if (src->grad_written)
    status =
        cudl_add(m->ctx, n->dx_view[k], 1.0f, n->dx_scratch[k], n->dx_view[k]);
  src->grad_written = 1;
  return status;
}

static cudl_status backward_node(cudl_model *m, node *n) {
  cudl_context *ctx = m->ctx;
  const node *src = &m->nodes[n->in[0]];
  const cudl_tensor *x = src->y;
  cudl_tensor *dx = input_grad_target(m, n, 0);
  cudl_tensor *dx_or_scratch = dx != NULL ? dx : n->dx_scratch[0];
  cudl_status status = CUDL_OK;
  switch (n->kind) {
    case NODE_INPUT:
      return CUDL_OK;
    case NODE_CONV:
      status = cudl_conv2d_backward_filter(ctx, &n->conv, x, n->dy,
                                           grad_of(m, n->weight));
      if (status == CUDL_OK && n->bias >= 0)
        status = cudl_conv2d_backward_bias(ctx, n->dy, grad_of(m, n->bias));
      if (status == CUDL_OK && dx != NULL)
        status = cudl_conv2d_backward_data(ctx, &n->conv, param(m, n->weight),
                                           n->dy, dx);
      break;
    case NODE_LINEAR:
      status =
          cudl_linear_backward(ctx, n->flat_in, param(m, n->weight), n->dy, dx,
                               grad_of(m, n->weight), grad_of(m, n->bias));
      break;
    case NODE_BATCHNORM:
      if (!m->training)
        return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                         "backward in evaluation mode: batch norm's backward "
                         "needs the training forward's statistics");
      status = cudl_batchnorm_backward(
          ctx, x, n->dy, param(m, n->weight), n->save_mean, n->save_invstd,
          dx_or_scratch, grad_of(m, n->weight), grad_of(m, n->bias));
      break;
    case NODE_ACTIVATION:
      if (dx == NULL) break;
      switch (n->act) {
        case CUDL_ACT_SIGMOID:
          status = cudl_sigmoid_backward(ctx, n->y, n->dy, dx);
          break;
        case CUDL_ACT_TANH:
          status = cudl_tanh_backward(ctx, n->y, n->dy, dx);
          break;
        case CUDL_ACT_RELU:
          status = cudl_relu_backward(ctx, x, n->dy, dx);
          break;
        case CUDL_ACT_LEAKY_RELU:
          status = cudl_leaky_relu_backward(ctx, x, n->alpha, n->dy, dx);
          break;
        case CUDL_ACT_ELU:
          status = cudl_elu_backward(ctx, x, n->alpha, n->dy, dx);
          break;
      }
      break;
    case NODE_PRELU:
      status = cudl_prelu_backward(ctx, x, param(m, n->weight), n->dy,
                                   dx_or_scratch, grad_of(m, n->weight));
      break;
    case NODE_RRELU:
      if (dx == NULL) break;
      if (!m->training)
        return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                         "backward in evaluation mode: RReLU keeps no slopes");
      status = cudl_rrelu_backward(ctx, n->aux, n->dy, dx);
      break;
    case NODE_DROPOUT:
      if (dx == NULL) break;
      status = m->training ? cudl_dropout_backward(ctx, n->aux, n->dy, dx)
                           : cudl_tensor_copy(dx, n->dy);
      break;
    case NODE_POOL:
      if (dx == NULL) break;
      status = n->is_max ? cudl_max_pool2d_backward(ctx, &n->pool, x, n->dy, dx)
                         : cudl_avg_pool2d_backward(ctx, &n->pool, n->dy, dx);
      break;
    case NODE_GLOBAL_AVG_POOL:
      if (dx == NULL) break;
      status = cudl_global_avg_pool_backward(ctx, n->dy, dx);
      break;
    case NODE_FLATTEN:
      /* The same bytes in another shape. */
      if (dx == NULL) break;
      status = cudl__copy_on_device(ctx, dx->data, n->dy->data, dx->nbytes);
      break;
    case NODE_ADD: {
      cudl_tensor *db;
      if (dx != NULL)
        status = cudl__copy_on_device(ctx, dx->data, n->dy->data, dx->nbytes);
      if (status == CUDL_OK) status = finish_input(m, n, 0);
      if (status != CUDL_OK) return status;
      db = input_grad_target(m, n, 1);
      if (db != NULL)
        status = cudl__copy_on_device(ctx, db->data, n->dy->data, db->nbytes);
      if (status == CUDL_OK) status = finish_input(m, n, 1);
      return status;
    }
  }
  if (status == CUDL_OK) status = finish_input(m, n, 0);
  return status;
}

static cudl_status loss_backward(cudl_model *m) {
  node *o = &m->nodes[m->output];
  const cudl_tensor *target = m->target; /* already in the output's shape */
  switch (m->loss) {
    case CUDL_MODEL_LOSS_CROSS_ENTROPY:
      return cudl_cross_entropy_backward(m->ctx, o->y, target, 0.0f,
                                         CUDL_REDUCTION_MEAN, 1.0f, o->dy);
    case CUDL_MODEL_LOSS_MSE:
      return cudl_mse_loss_backward(m->ctx, o->y, target, CUDL_REDUCTION_MEAN,
                                    1.0f, o->dy);
    case CUDL_MODEL_LOSS_BCE_WITH_LOGITS:
      return cudl_bce_with_logits_backward(m->ctx, o->y, target,
                                           CUDL_REDUCTION_MEAN, 1.0f, o->dy);
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_INTERNAL, "unknown loss");
}

/* Zero the gradients of parameters no gradient reached this pass (a dead
 * branch): every reached layer overwrites its own, so the whole arena need
 * not be cleared each step. */
static cudl_status zero_unreached(cudl_model *m) {
  int i, k;
  cudl_status status = CUDL_OK;
  for (i = 1; i < m->node_count && status == CUDL_OK; ++i) {
    const node *n = &m->nodes[i];
    const int owned[2] = {n->weight, n->bias};
    if (n->grad_written) continue;
    for (k = 0; k < 2 && status == CUDL_OK; ++k)
      if (owned[k] >= 0 && m->params[owned[k]].grad != NULL)
        status = cudl_tensor_fill(m->params[owned[k]].grad, 0.0f);
  }
  return status;
}

/* Check-numerics mode after node n's backward: the gradients it wrote into
 * its inputs' gradient buffers, and into its parameters'. An input's
 * buffer may hold other consumers' contributions too, but those were
 * checked when written, so a non-finite value there is n's. */
static cudl_status check_backward(cudl_model *m, const node *n, int index) {
  const int params[2] = {n->weight, n->bias};
  cudl_status status = CUDL_OK;
  int k;
  for (k = 0; k < n->n_in && status == CUDL_OK; ++k) {
    const node *src = &m->nodes[n->in[k]];
    if (n->in[k] > 0 && src->dy != NULL)
      status = check_values(m, src->dy, index, node_label(n), "input gradient");
  }
  for (k = 0; k < 2 && status == CUDL_OK; ++k)
    if (params[k] >= 0 && grad_of(m, params[k]) != NULL)
      status = check_values(m, grad_of(m, params[k]), index,
                            m->params[params[k]].name, "parameter gradient");
  return status;
}

cudl_status cudl_model_backward(cudl_model *m) {
  int i, norms;
  cudl_status status;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!m->forward_done || m->target == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "backward needs a forward with a target first");
  for (i = 0; i < m->node_count; ++i) m->nodes[i].grad_written = 0;
  status = loss_backward(m);
  m->nodes[m->output].grad_written = 1;
  if (status == CUDL_OK && m->check_numerics)
    status = check_values(m, m->nodes[m->output].dy, m->output,
                          node_label(&m->nodes[m->output]), "loss gradient");
  /* Nodes no gradient reaches keep NaN norms. */
  norms = m->diagnostics && m->diag_norms_now;
  if (status == CUDL_OK && norms) status = cudl_tensor_fill(m->diag_norms, NAN);
  for (i = m->node_count - 1; i >= 1 && status == CUDL_OK; --i) {
    node *n = &m->nodes[i];
    if (!n->grad_written) continue; /* no gradient reaches this node */
    /* Its output gradient is complete: every consumer has added to it. */
    if (norms) status = norm_into(m, n->dy, i);
    if (status == CUDL_OK) status = backward_node(m, n);
    if (status != CUDL_OK) {
      char copy[CUDL_ERROR_TEXT_SIZE];
      strncpy(copy, cudl_context_last_error(m->ctx), sizeof copy - 1);
      copy[sizeof copy - 1] = '\0';
      return CUDL_FAIL(m->ctx, status, "backward of node %d (%s%s%s): %s", i,
                       kind_names[n->kind], n->name[0] ? " " : "", n->name,
                       copy);
    }
    if (m->check_numerics) {
      status = check_backward(m, n, i);
      if (status != CUDL_OK) return status;
    }
  }
  if (status == CUDL_OK) status = zero_unreached(m);
  for (i = 1; i < m->node_count && status == CUDL_OK && norms; ++i)
    if (m->nodes[i].weight >= 0 && m->nodes[i].grad_written)
      status = norm_into(m, grad_of(m, m->nodes[i].weight), m->node_count + i);
  if (status == CUDL_OK) ++m->backward_passes;
  return status;
}

/* ---- inspection ---- */

const cudl_tensor *cudl_model_output(cudl_model *m) {
  if (m == NULL || !m->forward_done) return NULL;
  return m->nodes[m->output].y;
}

cudl_status cudl_model_flops(const cudl_model *m, int64_t *flops) {
  int i;
  int64_t total = 0;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (flops == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "flops is NULL");
  for (i = 0; i < m->node_count; ++i) {
    const node *n = &m->nodes[i];
    const param_entry *w;
    if (n->kind != NODE_CONV && n->kind != NODE_LINEAR) continue;
    w = &m->params[n->weight];
    /* At each output position a convolution uses every weight once (the
     * C/groups*R*S of each of the K output channels): weights x positions
     * multiply-adds. A linear layer uses every weight once. */
    total += 2 * w->numel * (n->kind == NODE_CONV ? n->numel / n->shape[0] : 1);
  }
  *flops = total;
  return CUDL_OK;
}

int cudl_model_node_count(const cudl_model *m) {
  return m == NULL ? 0 : m->node_count;
}

int cudl_model_node_shape(const cudl_model *m, int index, int64_t shape[3]) {
  int i;
  if (m == NULL || shape == NULL || index < 0 || index >= m->node_count)
    return -1;
  for (i = 0; i < m->nodes[index].ndim; ++i)
    shape[i] = m->nodes[index].shape[i];
  return m->nodes[index].ndim;
}

const cudl_tensor *cudl_model_node_output(cudl_model *m, int index) {
  if (m == NULL || !m->forward_done || index < 0 || index >= m->node_count)
    return NULL;
  return m->nodes[index].y;
}

cudl_status cudl_model_first_nonfinite(cudl_model *m, int *node_out,
                                       const char **description) {
  int i;
  int64_t j;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (node_out == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "node is NULL");
  *node_out = -1;
  if (description != NULL) *description = "";
  if (!m->forward_done)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT, "no forward yet");
  for (i = 0; i < m->node_count; ++i) {
    const cudl_tensor *y = m->nodes[i].y;
    float *host = (float *)cudl__host_alloc(&m->allocator, y->nbytes, 64);
    cudl_status status;
    int bad = 0;
    if (host == NULL)
      return CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot copy node %d to the host", i);
    status = cudl_tensor_copy_to_host(y, host, y->nbytes);
    for (j = 0; status == CUDL_OK && j < y->numel && !bad; ++j)
      bad = !isfinite(host[j]);
    cudl__host_free(&m->allocator, host, y->nbytes);
    if (status != CUDL_OK) return status;
    if (bad) {
      *node_out = i;
      if (description != NULL)
        *description = m->nodes[i].name[0] ? m->nodes[i].name
                                           : kind_names[m->nodes[i].kind];
      return CUDL_OK;
    }
  }
  return CUDL_OK;
}
