/*
 * graph.h - what the model graph (model.c, graph.c) and its layers
 * (layers*.c) share: the records of nodes and parameters, the steps of
 * building a node, and the descriptor type saying how a node of one kind is
 * planned, runs, initialises its parameters, counts its FLOPs and shows in
 * the diagnostics. model.c never asks which kind a node is: it calls
 * through cudl__layers[n->kind] (layers.h). A new kind is an enumerator
 * here, a descriptor with its cudl_model_add_* in a layers*.c file, and a
 * row of the table in layers.c.
 */
#ifndef CUDL_NN_GRAPH_H
#define CUDL_NN_GRAPH_H

#include "core/internal.h"

#define NAME_SIZE 128

/* FP16 loss scaling, PyTorch's GradScaler defaults: the first scale, and
 * the clean steps after which it doubles. */
#define CUDL__LOSS_SCALE_INIT 65536.0f
#define CUDL__LOSS_SCALE_GROWTH_INTERVAL 2000

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
  NODE_ADD,
  NODE_CONCAT,
  NODE_RESHAPE,
  NODE_KIND_COUNT
} node_kind;

typedef struct param_entry {
  char name[NAME_SIZE];
  int trainable;
  int ndim;
  int64_t shape[4];
  int64_t numel;
  int64_t offset;     /* in its arena, in floats */
  cudl_tensor *value; /* view into the parameter or buffer arena */
  cudl_tensor *grad;  /* view into the gradient arena (trainable only) */
  /* Views of the same offsets in the working copies of the arenas, which
   * convolution and linear layers read and write (cudl__weight,
   * cudl__weight_grad): in mixed precision the 16-bit copy of every such
   * parameter, in channels-last the [K, R, S, C] copy of every convolution
   * weight; NULL where the layer computes with the f32 master itself. */
  cudl_tensor *compute_value, *compute_grad;
} param_entry;

/* The most inputs a node reads: a concatenation's limit. */
#define NODE_MAX_INPUTS CUDL_MODEL_CONCAT_MAX_INPUTS

typedef struct node {
  node_kind kind;
  int in[NODE_MAX_INPUTS], n_in;
  /* While the graph runs backward: the input k whose gradient the layer's
   * backward call writes (a concatenation's inputs take different parts of
   * its gradient, and the same node may be two of them). */
  int backward_input;
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
  int per_channel; /* PReLU: one slope per channel (not shared) */
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
  cudl_tensor *dx_view[NODE_MAX_INPUTS];    /* gradient of input k, in this
                                               node's view of it (linear:
                                               flat) */
  cudl_tensor *dx_scratch[NODE_MAX_INPUTS]; /* the same shape in the scratch
                                               buffer */
  int grad_written;           /* this backward pass */
  cudl_tensor *activity;      /* diagnostics: [units] of a ReLU-family
                                 node's input, 1 once active in the window */
  /* Inference compile (inference.c): a convolution or linear layer's batch
   * norm folded into it (its node number; 0: none), a batch norm whose
   * values its input's layer now writes, and whether the node's value
   * outlives the forward (its buffer is not reused by a later node). */
  int folded_bn;
  int folded;
  int value_kept;
  /* Also in an inference compile: a convolution's epilogue, the residual
   * addition (epilogue_add) and the ReLU or leaky ReLU (epilogue_relu)
   * that it computes in its own pass (0: none); on those two, the
   * convolution (epilogue_of; 0: none), and on the addition the input
   * that comes from it (epilogue_input; the other is the residual). */
  int epilogue_add, epilogue_relu, epilogue_of, epilogue_input;
  /* The fused training path (fusion.c), marked when the model compiles for
   * training: on a ReLU node, the batch norm it computes from that norm's
   * input (fused_bn; 0: none) and the residual addition in between
   * (fused_add; 0: none) with the addition's other input (fused_residual);
   * on that batch norm and addition, the ReLU node doing their work
   * (fused_into; 0: none). On a dropout node, the activation it computes
   * from that activation's input (fused_act; 0: none), which is marked
   * fused_into the dropout. */
  int fused_bn, fused_add, fused_residual;
  int fused_act;
  int fused_into;
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
  /* Synchronised batch norm (cudl_model_set_sync_bn): sums count doubles
   * over the replicas in place, every replica getting the same bits. NULL:
   * each replica normalises with its own rows' statistics. */
  cudl_status (*bn_sum)(void *group, double *values, int64_t count);
  void *bn_group;
  /* Gradient averaging during backward (cudl_model_set_grad_sync,
   * dist/grad_sync.c): NULL when the model's backward leaves its gradients
   * its own. */
  const struct cudl__grad_sync_hooks *grad_sync;
  void *grad_sync_state;
  /* What its gradients travel between ranks as: a cudl_grad_wire
   * (cudl/dist.h, cudl_model_set_grad_wire); 0, auto, by default. */
  int grad_wire;
  int64_t max_batch;
  /* Precision (cudl_model_set_precision) and the dtype of activations,
   * their gradients and the weights' working copies. */
  cudl_precision precision;
  cudl_dtype dtype;
  /* The memory layout of [C, H, W] nodes' outputs and gradients
   * (cudl_model_set_layout). */
  cudl_layout layout;
  /* Working copies of the parameter and gradient arenas in the compute
   * dtype, when some parameter has one (param_entry's compute_value): the
   * forward converts the master weights into compute_arena; the backward
   * converts compute_grad_arena's weight gradients back. NULL otherwise. */
  cudl_tensor *compute_arena, *compute_grad_arena;
  /* The output and its loss gradient as the loss sees them, f32 and NCHW,
   * [max_batch * output numel], and their views for the current rows: made
   * when the output node's own are 16-bit or channels-last, else NULL. */
  cudl_tensor *output_f32_full, *output_grad_f32_full;
  cudl_tensor *output_f32, *output_grad_f32;
  /* FP16's dynamic loss scaling (nn.h): the scale, the clean steps since it
   * last changed, and whether the last backward overflowed. */
  float loss_scale;
  int64_t clean_steps;
  int step_skipped;
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
  /* Diagnostics (cudl_model_set_diagnostics_after): the training forwards
   * of the window and of the run (counted from the steps done when switched
   * on, so that a resumed run records the norms at the steps it did before),
   * and per node i the L2 norm of its output gradient at [i] and of its
   * weight gradient at [node_count + i] from the last backward that
   * recorded them (every diagnostics-th). */
  int diagnostics; /* the period in training steps; 0: off */
  int64_t diag_steps, diag_forwards;
  int diag_norms_now; /* this step's backward records the norms */
  cudl_tensor *diag_norms;
  /* Check-numerics mode (cudl_model_set_check_numerics) and its last
   * finding; backward passes completed, for the report's step. */
  int check_numerics;
  cudl_numerics_report numerics;
  int64_t backward_passes;
  /* Compiled for inference only (cudl_model_compile_inference): no
   * gradients, node outputs in act_buffers shared by liveness, batch norm
   * folded into the layer before it through the fold_* workspace (the
   * folded weight and bias in f32, NCHW; their copies in the compute dtype
   * and layout when the layer computes in another; zeros per channel). */
  int inference;
  /* CUDA graphs of the inference forward (cudl_model_set_graphs): on, and
   * the recorded forward with its counts (core/replay.c). */
  int graphs;
  cudl__replay replay;
  /* cudl_model_set_fusion(m, 0) (fusion is on by default), and whether the
   * last forward took the fused path (the backward follows it). */
  int fusion_off;
  int fused_forward;
  cudl_tensor **act_buffers;
  int act_buffer_count;
  cudl_tensor *fold_weight, *fold_bias, *fold_zeros;
  cudl_tensor *fold_weight_compute, *fold_bias_compute;
};

/* What backward calls when a model averages its gradients as they are
 * produced (dist/grad_sync.c), so that the graph does not depend on the
 * communicator. begin: before the first node; node_done(done): after node
 * done (from the last down to 1), whose parameters' gradients are then
 * final in the f32 arena (written, converted from the working copy, or
 * zeroed when no gradient reached it); finish: after node 1, leaving every
 * gradient averaged; release: when the model goes or is detached. */
typedef struct cudl__grad_sync_hooks {
  cudl_status (*begin)(void *state, cudl_model *m);
  cudl_status (*node_done)(void *state, cudl_model *m, int done);
  cudl_status (*finish)(void *state, cudl_model *m);
  void (*release)(void *state);
} cudl__grad_sync_hooks;

/* One node kind. A hook left NULL means nothing to do (forward, backward,
 * init), nothing counted (flops) or nothing to report (the rest). */
typedef struct cudl__layer {
  /* In messages ("node 3 (conv2d c1)") and, unless diagnostics_kind says
   * otherwise, as the diagnostics' kind. */
  const char *name;

  /* What compiling allocates beside the node's output [rows, shape]: */
  /* Nonzero when n's output is its input's values seen in another shape:
   * no buffer and no copy, so nothing to check or report either (NULL:
   * never). */
  int (*output_is_view)(const cudl_model *m, const node *n);
  int element_aux;    /* n->aux, of the output's shape: what backward
                         needs of a random forward (mask, noise) */
  /* The same for some nodes of the kind only (NULL: none): a reshape's
   * intermediate where it reorders on both sides. */
  int (*needs_aux)(const cudl_model *m, const node *n);
  int channel_stats;  /* n->save_mean and n->save_invstd [channels]: the
                         batch's statistics, for backward */
  int flat_input;     /* reads its input as [rows, features] (n->flat_in)
                         and writes that input's gradient the same way */
  int dtype_weights;  /* computes with its weight and bias in the model's
                         dtype (cudl__weight, cudl__weight_grad): in mixed
                         precision, 16-bit copies of the f32 masters */

  /* n->y from x, the first input's output, in m->training's mode. */
  cudl_status (*forward)(cudl_model *m, node *n, const cudl_tensor *x);
  /* With n->dy complete: called once per input, in order, with x that
   * input's output and dx where its gradient goes (NULL: it needs none;
   * otherwise dx is written, and the graph adds it to what other consumers
   * wrote). A layer with parameters has one input and writes their
   * gradients too (overwriting). */
  cudl_status (*backward)(cudl_model *m, node *n, const cudl_tensor *x,
                          cudl_tensor *dx);
  /* Set the node's parameters and buffers by scheme (cudl_model_init). */
  cudl_status (*init)(cudl_model *m, const node *n, cudl_init_scheme scheme);
  /* One sample's forward FLOPs (cudl_model_flops); works before compiling. */
  int64_t (*flops)(const cudl_model *m, const node *n);

  /* Diagnostics (cudl_model_diagnostics): the row's kind; whether the
   * node's input units are watched for never being active (the ReLU
   * family); the fraction of the outputs y[0, count) where the derivative
   * is nearly 0, or NaN when that does not apply to n. */
  const char *(*diagnostics_kind)(const node *n);
  int (*has_dead_units)(const node *n);
  double (*saturated_fraction)(const node *n, const float *y, int64_t count);
} cudl__layer;

/* ---- building a node (graph.c): the steps of every cudl_model_add_* ---- */

/* The model takes layers (not compiled), node_out is not NULL, `input`
 * exists, and the node array has room for one more (so pointers to its
 * nodes stay valid until the node is committed). Failures are recorded as
 * `function`'s. */
cudl_status cudl__model_check_building(cudl_model *m, const char *function,
                                       int input, int *node_out);

/* A layer name that is not empty, leaves room for the longest parameter
 * suffix, and is not already used. */
cudl_status cudl__model_check_name(cudl_model *m, const char *function,
                                   const char *name);

/* Start a node of `kind` reading in0 (and in1, or -1) at
 * m->nodes[m->node_count], without parameters; *out points at it. It is
 * part of the model only once committed. */
cudl_status cudl__model_new_node(cudl_model *m, node_kind kind, int in0,
                                 int in1, node **out);

/* The input node holds an image per sample ([C, H, W]): what convolution
 * and pooling read. CUDL_ERR_SHAPE, as `function`'s, otherwise. */
cudl_status cudl__model_check_image(cudl_model *m, const char *function,
                                    int input);

/* The same, shaped as its input. */
cudl_status cudl__model_same_shape_node(cudl_model *m, node_kind kind,
                                        int input, node **out);

void cudl__node_set_shape(node *n, int ndim, int64_t a, int64_t b, int64_t c);

/* Register a parameter (or a buffer: trainable 0) of node n called
 * "<n->name>.<suffix>"; *index receives its number. */
cudl_status cudl__model_add_param(cudl_model *m, node *n, const char *suffix,
                                  int trainable, int ndim, const int64_t *shape,
                                  int *index);

/* Make the started node part of the model; *node_out gets its number. */
void cudl__model_commit_node(cudl_model *m, int *node_out);

/* The start of every cudl_model_add_*: declares status, n (the node to
 * start) and src (the input node), and returns on a failed
 * cudl__model_check_building. */
#define BUILD_PRELUDE(input)                                           \
  cudl_status status;                                                  \
  node *n;                                                             \
  const node *src;                                                     \
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;                     \
  status = cudl__model_check_building(m, __func__, (input), node_out); \
  if (status != CUDL_OK) return status;                                \
  src = &m->nodes[(input)];                                            \
  (void)src

/* ---- running a node ---- */

/* Parameter `index`'s value and gradient views (NULL for index -1). */
/* Batch norm of node n in training mode with the statistics of every
 * replica's rows together, through m->bn_sum (nn/sync_batchnorm.c). */
cudl_status cudl__sync_batchnorm_forward(cudl_model *m, node *n,
                                         const cudl_tensor *x);
cudl_status cudl__sync_batchnorm_backward(cudl_model *m, node *n,
                                          const cudl_tensor *x,
                                          cudl_tensor *dx);

static inline cudl_tensor *cudl__param(cudl_model *m, int index) {
  return index < 0 ? NULL : m->params[index].value;
}
static inline cudl_tensor *cudl__grad(cudl_model *m, int index) {
  return index < 0 ? NULL : m->params[index].grad;
}
/* What convolution and linear layers compute with: the parameter and its
 * gradient in the model's dtype (the 16-bit copies in mixed precision). */
static inline cudl_tensor *cudl__weight(cudl_model *m, int index) {
  if (index < 0) return NULL;
  return m->params[index].compute_value != NULL ? m->params[index].compute_value
                                                : m->params[index].value;
}
static inline cudl_tensor *cudl__weight_grad(cudl_model *m, int index) {
  if (index < 0) return NULL;
  return m->params[index].compute_grad != NULL ? m->params[index].compute_grad
                                               : m->params[index].grad;
}

/* ---- where a backward step writes a gradient (graph.c) ---- */

/* Where node n's backward writes the gradient of its input k: that
 * input's gradient buffer (its view in n's shape), or the scratch when
 * another consumer wrote the buffer first; NULL when the input needs no
 * gradient (the data, or a node no gradient flows to). */
cudl_tensor *cudl__input_grad_target(cudl_model *m, node *n, int k);
/* After writing that target: add the scratch into the buffer when it was
 * used, and mark the input's gradient written. */
cudl_status cudl__finish_input(cudl_model *m, node *n, int k);

/* ---- the fused training path (fusion.c), for model.c ---- */

/* At a training compile: mark the groups the fused path computes (a batch
 * norm read only by a ReLU, or only by a residual addition read only by a
 * ReLU; an activation whose backward reads its input, read only by a
 * dropout). */
void cudl__fusion_mark(cudl_model *m);
/* Clear the marks (an inference compile, a failed compile). */
void cudl__fusion_clear(cudl_model *m);
/* Whether this forward takes the fused path: fusion on, training, and
 * nothing that reads the fused nodes' own values or runs batch norm its
 * own way (diagnostics, check numerics, synchronised batch norm). */
int cudl__fusion_active(const cudl_model *m);
/* Whether node n runs differently on the fused path (a marked ReLU or
 * dropout, or a node it computes). */
int cudl__fusion_involves(const node *n);
/* Whether node n computes a fused group (a marked ReLU or dropout): its
 * backward is cudl__fusion_backward on the fused path. */
int cudl__fusion_leads(const node *n);
/* The node whose input gradients a group's leader writes (the batch norm,
 * the activation), or n itself when it leads none. */
const node *cudl__fusion_owner(const cudl_model *m, const node *n);
/* Node n's forward on the fused path: a batch norm's statistics, nothing
 * for the addition or the activation, the normalisation, residual and
 * ReLU for the ReLU, the activation and dropout for the dropout. */
cudl_status cudl__fusion_forward(cudl_model *m, node *n);
/* A leader's backward on the fused path: a ReLU's writes the gradients of
 * the batch norm's input, its parameters and the residual; a dropout's
 * that of the activation's input; the nodes it computed are marked done. */
cudl_status cudl__fusion_backward(cudl_model *m, node *n);

/* ---- the inference compile (inference.c), for model.c ---- */

/* Before cudl_model_compile_inference compiles: refuse what an inference
 * compile cannot take (synchronised batch norm) and mark the batch norms
 * it folds and the layers they fold into. */
cudl_status cudl__inference_mark(cudl_model *m);

/* Undo cudl__inference_mark (a failed compile). */
void cudl__inference_unmark(cudl_model *m);

/* The input k whose buffer node n, of an inference-compiled model, passes
 * on as its output, or -1: a batch norm folded into the layer before it, a
 * dropout, and an addition or ReLU that a convolution's epilogue computed
 * (its output is then that input's buffer, already holding the result). */
int cudl__inference_viewed_input(const cudl_model *m, const node *n);

/* After model.c made the parameters: every non-view node's out_full, in
 * buffers shared by nodes whose values are never needed at the same
 * time, and the folding workspace. */
cudl_status cudl__inference_plan(cudl_model *m);

/* Node n's forward in an inference-compiled model. */
cudl_status cudl__inference_forward_node(cudl_model *m, node *n);

/* Release what cudl__inference_plan made (on destroy, or a failed
 * compile). */
void cudl__inference_release(cudl_model *m);

#endif /* CUDL_NN_GRAPH_H */
