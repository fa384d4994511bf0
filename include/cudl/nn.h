/*
 * cudl/nn.h - networks as graphs of layers: build, compile for a batch
 * size, run forward and backward, read and write parameters by name.
 *
 * A model is a directed acyclic graph with one input (images [N, C, H, W]
 * or features [N, F]) and one output node whose value goes to a loss.
 * Nodes are numbered in the order they are added; a layer's inputs must
 * already exist, so that order is a topological order and forward runs it
 * front to back, backward back to front. Layers with parameters take a name
 * and their parameters are called as PyTorch's state_dict calls them:
 * "<name>.weight", "<name>.bias", and for batch norm also
 * "<name>.running_mean" and "<name>.running_var". Use PyTorch's module
 * paths as names ("conv1", "layer1.0.bn2", "fc") and a cudl checkpoint is a
 * PyTorch state_dict.
 *
 * Memory, planned once by cudl_model_compile: all trainable parameters live
 * in one arena tensor and their gradients in another of the same layout
 * (so an optimizer updates the whole model in one pass; cudl/optim.h), the
 * batch-norm running statistics in a third. Every node's output is kept for
 * backward; gradient buffers are shared between nodes whose gradients are
 * never alive at the same time.
 *
 * Building returns statuses like every call: an invalid layer (unknown
 * input node, a shape the layer cannot take, a duplicate name) is rejected
 * when it is added, with the reason in the context's last error, and the
 * model stays usable. Adding layers after compiling is an error.
 */
#ifndef CUDL_NN_H
#define CUDL_NN_H

#include <stdint.h>

#include "cudl/activation.h"
#include "cudl/context.h"
#include "cudl/conv.h"
#include "cudl/export.h"
#include "cudl/loss.h"
#include "cudl/pooling.h"
#include "cudl/safetensors.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

typedef struct cudl_model cudl_model;

/** The loss applied to the output node. */
typedef enum cudl_model_loss {
  /** Softmax cross-entropy on logits [N, K] against i32 labels [N]. */
  CUDL_MODEL_LOSS_CROSS_ENTROPY = 0,
  /** Mean squared error against f32 targets of the output's shape. */
  CUDL_MODEL_LOSS_MSE = 1,
  /** Binary cross-entropy on logits against f32 targets in [0, 1]. */
  CUDL_MODEL_LOSS_BCE_WITH_LOGITS = 2
} cudl_model_loss;

/**
 * A model whose input has the per-sample shape `input_shape` (input_ndim
 * 1 to 3 dimensions: [F], or [C, H, W] for images; [H, W] is taken as
 * [1, H, W]). The input is node 0. On failure *out is NULL.
 */
CUDL_API cudl_status cudl_model_create(cudl_context *ctx, int input_ndim,
                                       const int64_t *input_shape,
                                       cudl_model **out);

/** Release the model, its tensors and arenas. NULL is a no-op. */
CUDL_API void cudl_model_destroy(cudl_model *model);

/** The context the model was created with (where its failures are
 *  recorded: cudl_context_last_error); NULL for NULL. */
CUDL_API cudl_context *cudl_model_context(const cudl_model *model);

/* ---- layers: each writes the new node's number to *node ---- */

/** 2-D convolution with out_channels filters of kernel_h x kernel_w; bias
 *  optional. Parameters "<name>.weight" [K, C/groups, R, S] and
 *  "<name>.bias" [K]. out_channels must be in [1, INT_MAX]
 *  (CUDL_ERR_INVALID_ARGUMENT naming it); a geometry that does not fit the
 *  input, a dimension or matrix size of the convolution above INT_MAX, or
 *  an output of more than 2^31 values per sample give CUDL_ERR_SHAPE, with
 *  the layer and the sizes in the message. Checked before anything is
 *  allocated. */
CUDL_API cudl_status cudl_model_add_conv2d(cudl_model *model, int input,
                                           const char *name,
                                           int64_t out_channels, int kernel_h,
                                           int kernel_w,
                                           const cudl_conv2d_desc *desc,
                                           int bias, int *node);

/** Fully connected: the input is flattened per sample ([N, ...] ->
 *  [N, features]). Parameters "<name>.weight" [out, in], "<name>.bias". */
CUDL_API cudl_status cudl_model_add_linear(cudl_model *model, int input,
                                           const char *name,
                                           int64_t out_features, int bias,
                                           int *node);

/** Batch normalisation per channel (4-D input) or per feature (2-D),
 *  with PyTorch's momentum (0.1) and eps (1e-5) unless given otherwise.
 *  Parameters "<name>.weight" (gamma), "<name>.bias" (beta); buffers
 *  "<name>.running_mean", "<name>.running_var". */
CUDL_API cudl_status cudl_model_add_batchnorm(cudl_model *model, int input,
                                              const char *name, float momentum,
                                              float eps, int *node);

/** An elementwise activation (alpha for leaky ReLU and ELU). */
CUDL_API cudl_status cudl_model_add_activation(cudl_model *model, int input,
                                               cudl_activation_type type,
                                               float alpha, int *node);

/** PReLU with a learnable slope, one per channel (per_channel nonzero) or
 *  one shared, initialised to init_slope (PyTorch: 0.25). Parameter
 *  "<name>.weight". */
CUDL_API cudl_status cudl_model_add_prelu(cudl_model *model, int input,
                                          const char *name, int per_channel,
                                          float init_slope, int *node);

/** RReLU: slopes drawn from U(lower, upper) in training, (lower + upper)/2
 *  in evaluation. */
CUDL_API cudl_status cudl_model_add_rrelu(cudl_model *model, int input,
                                          float lower, float upper, int *node);

/** Inverted dropout with drop probability p in [0, 1]. */
CUDL_API cudl_status cudl_model_add_dropout(cudl_model *model, int input,
                                            float p, int *node);

/** Max (is_max nonzero) or average pooling over a 4-D input. */
CUDL_API cudl_status cudl_model_add_pool2d(cudl_model *model, int input,
                                           int is_max,
                                           const cudl_pool2d_desc *desc,
                                           int *node);

/** Global average pooling: [N, C, H, W] -> [N, C, 1, 1]. */
CUDL_API cudl_status cudl_model_add_global_avg_pool(cudl_model *model,
                                                    int input, int *node);

/** Flatten per sample: [N, ...] -> [N, features] (a view, no copy). */
CUDL_API cudl_status cudl_model_add_flatten(cudl_model *model, int input,
                                            int *node);

/** Elementwise sum of two nodes of the same shape (residual connections). */
CUDL_API cudl_status cudl_model_add_add(cudl_model *model, int a, int b,
                                        int *node);

/** The most inputs cudl_model_add_concat takes. */
#define CUDL_MODEL_CONCAT_MAX_INPUTS 8

/**
 * Concatenation along the first per-sample dimension (channels of images,
 * features of vectors; torch.cat(..., dim=1)) of `count` nodes, 2 to
 * CUDL_MODEL_CONCAT_MAX_INPUTS, in the order given: inputs[i] holds node
 * numbers, which may repeat. Every input must have the same number of
 * per-sample dimensions and the same sizes in all but the first ([C_i, H,
 * W] images of one size, or [F_i] vectors); the output is [sum C_i, H, W]
 * (or [sum F_i]). Each input's gradient is its part of the output's,
 * added to what the input's other consumers give it. Status:
 * CUDL_ERR_INVALID_ARGUMENT (model, inputs or node NULL, count out of
 * range, a node that does not exist, a compiled model), CUDL_ERR_SHAPE
 * (sizes that do not fit, the message naming both); the model is unchanged
 * on failure. Diagnostics kind "concat".
 */
CUDL_API cudl_status cudl_model_add_concat(cudl_model *model, int count,
                                           const int *inputs, int *node);

/**
 * The input's values per sample in another shape, in PyTorch's reshape
 * order: the logical [C, H, W] (row-major) order of the elements, whatever
 * the model's layout, so a channels-last model computes what an NCHW one
 * does (like a flatten, the reshape then reorders the bytes where the
 * channels-last order differs; otherwise it is a view, no copy). shape has
 * ndim (1 to 3) per-sample sizes, the batch excluded: [F], [A, B] or
 * [C, H, W]; one entry may be -1, inferred from the element count; the
 * others must be at least 1 and their product, with the inferred one,
 * equal the input's per-sample count. Status: CUDL_ERR_INVALID_ARGUMENT
 * (model, shape or node NULL, ndim out of range, a size below 1 other
 * than one -1, a node that does not exist, a compiled model),
 * CUDL_ERR_SHAPE (element counts that differ or a -1 that cannot be
 * inferred, the message naming both shapes); the model is unchanged on
 * failure. Layers' messages call it "reshape"; like a flatten it has no
 * row in the diagnostics (its values are its input's).
 */
CUDL_API cudl_status cudl_model_add_reshape(cudl_model *model, int input,
                                            int ndim, const int64_t *shape,
                                            int *node);

/** Make `output` the node the loss is computed on. Required before
 *  compiling. */
CUDL_API cudl_status cudl_model_set_output(cudl_model *model, int output,
                                           cudl_model_loss loss);

/* ---- compiling and parameters ---- */

/**
 * Plan memory for batches of up to max_batch samples and allocate it:
 * the parameter, gradient and buffer arenas and the nodes' buffers.
 * Parameters start at zero and batch-norm's gamma and running variance at
 * one; call cudl_model_init to initialise them. Layers cannot be added
 * afterwards.
 */
CUDL_API cudl_status cudl_model_compile(cudl_model *model, int64_t max_batch);

/**
 * Compile for inference only, for batches of 1 to max_batch samples: what
 * cudl_model_compile does, without what training needs. No gradient arena
 * (cudl_model_grads and cudl_model_grad give NULL, so no optimizer can
 * step it) and no batch statistics or dropout masks kept for a backward.
 * The nodes' outputs share buffers by liveness: a buffer is reused once
 * every reader of its value has run, so only the values still needed at
 * the end (the output's) stay readable (cudl_model_node_output gives NULL
 * for the others). Dropout passes its input on; RReLU uses its fixed
 * slope; a batch norm whose input is a convolution or linear layer read by
 * nothing else is folded into that layer: it runs with weight
 * w * gamma / sqrt(running_var + eps) per output channel and bias
 * (b - running_mean) * gamma / sqrt(running_var + eps) + beta, recomputed
 * from the parameters at every forward (so loading or writing them through
 * cudl_model_param works as in a training compile, at the cost of one pass
 * over each folded weight). Other batch norms use their running
 * statistics. Results equal the training compile's in evaluation mode to
 * float rounding. Precision and layout apply as to cudl_model_compile.
 *
 * The model stays in evaluation mode: cudl_model_set_training(model, 1),
 * cudl_model_backward and cudl_model_set_diagnostics (nonzero) fail with
 * CUDL_ERR_INVALID_ARGUMENT saying it is compiled for inference; forward
 * with a target still computes the loss. Errors are cudl_model_compile's,
 * and CUDL_ERR_INVALID_ARGUMENT with synchronised batch norm set
 * (cudl_model_set_sync_bn: training only). The model is unchanged on
 * failure and may be compiled either way after.
 */
CUDL_API cudl_status cudl_model_compile_inference(cudl_model *model,
                                                  int64_t max_batch);

/** Whether the model was compiled by cudl_model_compile_inference (0 for
 *  NULL). */
CUDL_API int cudl_model_is_inference(const cudl_model *model);

/**
 * The bytes a compiled model holds on its device, by what they are for
 * (cudl_model_memory_usage). An optimizer's state (momentum, Adam's
 * moments) belongs to the optimizer (cudl/optim.h) and is not counted.
 */
typedef struct cudl_model_memory {
  /** The parameter and batch-norm buffer arenas, and the working copies
   *  of the weights in another precision or layout. */
  uint64_t parameters;
  /** The nodes' outputs: one buffer per node in a training compile (all
   *  are kept for backward), the buffers shared by liveness in an
   *  inference compile; and the output in f32 where it is computed in
   *  another dtype or layout. */
  uint64_t activations;
  /** The gradient arena, its working copy, and the nodes' gradient
   *  buffers (shared by liveness). 0 for an inference compile. */
  uint64_t gradients;
  /** What a training forward keeps only for backward: dropout masks,
   *  RReLU noise, batch norm's batch statistics. 0 for an inference
   *  compile. */
  uint64_t saved_activations;
  /** Scratch: where backward adds gradients (training), batch-norm
   *  folding (inference), the loss. */
  uint64_t workspace;
  /** The sum of the above. */
  uint64_t total;
} cudl_model_memory;

/** The bytes the compiled model holds, by use, into *out (zeroed on
 *  failure). CUDL_ERR_INVALID_ARGUMENT for out NULL or a model not
 *  compiled. The context's own caches (convolution workspaces, cuDNN
 *  plans) are not the model's: cudl_context_memory_stats counts them. */
CUDL_API cudl_status cudl_model_memory_usage(const cudl_model *model,
                                             cudl_model_memory *out);

/** A model's arithmetic (cudl_model_set_precision). */
typedef enum cudl_precision {
  /** f32 everywhere, TF32 off during the model's calls: the default and the
   *  deterministic reference. */
  CUDL_PRECISION_FP32 = 0,
  /** f32 data; convolutions and matrix products may round their inputs to
   *  TF32 on tensor cores (CUDA; the same as FP32 on the CPU). */
  CUDL_PRECISION_TF32 = 1,
  /** Mixed precision in bfloat16: activations, their gradients and 16-bit
   *  copies of the convolution and linear weights in bf16, computed in
   *  f32 and rounded once; f32 master weights, optimizer state, batch-norm
   *  statistics, softmax and losses. */
  CUDL_PRECISION_BF16 = 2,
  /** The same in IEEE half precision, with dynamic loss scaling
   *  (cudl_model_loss_scale). CUDA only. */
  CUDL_PRECISION_FP16 = 3
} cudl_precision;

/** "fp32", "tf32", "bf16" or "fp16"; NULL for another value. */
CUDL_API const char *cudl_precision_name(cudl_precision precision);
/** The precision called `name` (as cudl_precision_name spells it):
 *  CUDL_ERR_INVALID_ARGUMENT for any other text. */
CUDL_API cudl_status cudl_precision_from_name(const char *name,
                                              cudl_precision *precision);

/**
 * Set the model's precision, before compiling (CUDL_ERR_INVALID_ARGUMENT
 * after). BF16 and FP16 need the device to run them natively, else
 * CUDL_ERR_UNSUPPORTED says why: on the CPU, bf16 needs oneDNN's bf16
 * instructions (AVX-512 BF16 or AMX) and fp16 is refused; on CUDA both need
 * compute capability 8.0. The model's input, its output (cudl_model_output),
 * its parameters and gradients (cudl_model_params, cudl_model_grads) and
 * checkpoints stay f32 in every precision; cudl_model_node_output is in the
 * compute dtype.
 */
CUDL_API cudl_status cudl_model_set_precision(cudl_model *model,
                                              cudl_precision precision);
/** The model's precision (FP32 for NULL). */
CUDL_API cudl_precision cudl_model_precision(const cudl_model *model);

/**
 * Set the memory layout of the model's image activations, before compiling
 * (CUDL_ERR_INVALID_ARGUMENT after): CUDL_LAYOUT_NCHW (the default) or
 * CUDL_LAYOUT_NHWC, channels-last (cudl/tensor.h), the order cuDNN's
 * tensor-core convolutions work in. In channels-last every [C, H, W] node's output and gradient is
 * [N, H, W, C] in memory, convolutions compute with [K, R, S, C] copies of
 * their weights, and nothing is transposed between layers except where the
 * order of the values matters: the input batch on its way in, a flatten of
 * an image with more than one channel and pixel (which puts the features in
 * PyTorch's [C, H, W] order, as a linear layer's weights expect), and an
 * image-shaped output. Everything the caller sees keeps PyTorch's layout:
 * the input and cudl_model_output are NCHW, the parameters (cudl_model_param,
 * cudl_model_params), their gradients and checkpoints stay [K, C, R, S];
 * only cudl_model_node_output is channels-last (see cudl_tensor_layout).
 * Results equal NCHW's to rounding, except that dropout and RReLU draw
 * their random numbers in memory order, so their masks differ. A linear
 * layer reading an image node directly (without a flatten) cannot compile
 * in channels-last: CUDL_ERR_SHAPE says to add the flatten.
 */
CUDL_API cudl_status cudl_model_set_layout(cudl_model *model,
                                           cudl_layout layout);
/** The model's layout (CUDL_LAYOUT_NCHW for NULL). */
CUDL_API cudl_layout cudl_model_layout(const cudl_model *model);

/**
 * FP16's dynamic loss scaling, as PyTorch's GradScaler does it: backward
 * starts from the loss gradient times the scale S (initially 2^16) and
 * divides the parameter gradients by S before returning. When any gradient
 * is then not finite, the step must be skipped (cudl_model_step_skipped)
 * and S halves; after `growth_interval` (2000) clean steps in a row, S
 * doubles. In other precisions S is 1 and no step is skipped.
 */
CUDL_API float cudl_model_loss_scale(const cudl_model *model);
/** Whether the last backward's gradients overflowed (FP16 only): the caller
 *  skips that optimizer step (the gradients are not finite). */
CUDL_API int cudl_model_step_skipped(const cudl_model *model);
/** The loss scaler's state, to save and restore with a checkpoint: the
 *  scale and the clean steps since it last changed. */
CUDL_API cudl_status cudl_model_loss_scale_state(const cudl_model *model,
                                                 float *scale,
                                                 int64_t *clean_steps);
/** Restore the scaler: a finite scale > 0 and clean_steps >= 0, else
 *  CUDL_ERR_INVALID_ARGUMENT. */
CUDL_API cudl_status cudl_model_set_loss_scale_state(cudl_model *model,
                                                     float scale,
                                                     int64_t clean_steps);

/** Weight initialisation schemes (cudl_model_init). fan_in = C/groups*R*S
 *  for convolutions and IN for linear layers; fan_out = K*R*S/groups or
 *  OUT. */
typedef enum cudl_init_scheme {
  /** N(0, 2/fan_in) (He et al., for ReLU networks); biases 0. */
  CUDL_INIT_KAIMING_NORMAL = 0,
  /** U(-b, b), b = sqrt(6/fan_in); biases 0. */
  CUDL_INIT_KAIMING_UNIFORM = 1,
  /** N(0, 2/(fan_in + fan_out)) (Glorot and Bengio); biases 0. */
  CUDL_INIT_XAVIER_NORMAL = 2,
  /** U(-b, b), b = sqrt(6/(fan_in + fan_out)); biases 0. */
  CUDL_INIT_XAVIER_UNIFORM = 3,
  /** PyTorch's default for Conv2d and Linear: weights and biases
   *  U(-1/sqrt(fan_in), 1/sqrt(fan_in)). */
  CUDL_INIT_PYTORCH_DEFAULT = 4,
  /** Every weight and bias 0: allowed, to show why it fails (the hidden
   *  units of a layer receive identical gradients and stay identical). */
  CUDL_INIT_ZEROS = 5
} cudl_init_scheme;

/**
 * Initialise every convolution and linear layer's weights and biases by
 * `scheme`, drawing from the context's Philox generator in node order (so a
 * seed gives the same model on every device); batch norm gets gamma 1,
 * beta 0, running mean 0 and running variance 1; PReLU slopes their initial
 * value. Requires a compiled model.
 */
CUDL_API cudl_status cudl_model_init(cudl_model *model,
                                     cudl_init_scheme scheme);

/** Number of named tensors: trainable parameters, then buffers. */
CUDL_API int cudl_model_param_count(const cudl_model *model);
/** Name of tensor `index` (NULL when out of range); *trainable (may be
 *  NULL) is 1 for parameters, 0 for batch-norm buffers. */
CUDL_API const char *cudl_model_param_name(const cudl_model *model, int index,
                                           int *trainable);
/** The tensor called `name`, or NULL (compiled models only). It is a view
 *  into the model's arena: reading and writing it reads and writes the
 *  model. Owned by the model. */
CUDL_API cudl_tensor *cudl_model_param(cudl_model *model, const char *name);
/** The gradient of trainable parameter `name` (same layout), or NULL. */
CUDL_API cudl_tensor *cudl_model_grad(cudl_model *model, const char *name);
/** The whole parameter and gradient arenas ([P] each) for an optimizer,
 *  and the number of trainable scalars P. NULL before compiling. */
CUDL_API cudl_tensor *cudl_model_params(cudl_model *model);
CUDL_API cudl_tensor *cudl_model_grads(cudl_model *model);

/* ---- running ---- */

/** Training mode (batch statistics, dropout and RReLU draws; the default)
 *  or evaluation mode (running statistics, identity dropout, fixed RReLU
 *  slope). */
CUDL_API cudl_status cudl_model_set_training(cudl_model *model, int training);

/**
 * Forward on a batch: x is [rows, input shape...] with rows <= max_batch,
 * on the model's device; target is i32 labels [rows] for cross-entropy and
 * f32 of the output's shape for the others (may be NULL: no loss, *loss
 * untouched). *loss (may be NULL) receives the mean loss over the batch;
 * reading it waits for the device. The output stays readable through
 * cudl_model_output until the next forward.
 */
CUDL_API cudl_status cudl_model_forward(cudl_model *model, const cudl_tensor *x,
                                        const cudl_tensor *target, float *loss);

/**
 * Backward from the loss of the last forward (which must have had a
 * target): writes every parameter's gradient into the gradient arena
 * (overwriting, not accumulating).
 */
CUDL_API cudl_status cudl_model_backward(cudl_model *model);

/** The output node's values of the last forward, in f32 whatever the
 *  precision: a view [rows, ...], owned by the model, valid until the next
 *  forward. */
CUDL_API const cudl_tensor *cudl_model_output(cudl_model *model);

/** The mean loss of the last forward, where it was computed: an f32 tensor
 *  of one element (shape []) on the model's device, owned by the model and
 *  rewritten by each forward with a target; NULL before the first such
 *  forward and after one without a target. Reading it is what waits for the
 *  device (cudl_model_forward's *loss does); a loop that copies it aside
 *  each step (cudl_tensor_copy) and reads the copies later does not wait
 *  inside the step. */
CUDL_API const cudl_tensor *cudl_model_loss_value(const cudl_model *model);

/** Number of nodes (0 for NULL) and the per-sample output shape of node
 *  `node` (written to shape, up to 3 dimensions; returns ndim, -1 when
 *  out of range). */
CUDL_API int cudl_model_node_count(const cudl_model *model);
CUDL_API int cudl_model_node_shape(const cudl_model *model, int node,
                                   int64_t shape[3]);

/** The node cudl_model_set_output chose (-1 for NULL or before it is
 *  set): with cudl_model_node_shape, the output's per-sample shape before
 *  any forward (a classifier's class count). */
CUDL_API int cudl_model_output_node(const cudl_model *model);

/**
 * *flops = the floating-point operations of one sample's forward pass
 * through the convolutions and linear layers (2 per multiply-add, bias
 * additions not counted); a training step costs about 3 times as much
 * (forward, backward data, backward filter). Other layers are memory-bound
 * and not counted. Works before compiling.
 */
CUDL_API cudl_status cudl_model_flops(const cudl_model *model,
                                      int64_t *flops);

/**
 * Fused training, on by default. Where a batch norm's output goes only to
 * a ReLU, or only to a residual addition whose output goes only to a ReLU
 * (the end of a ResNet block), a training forward computes the ReLU's
 * output from the batch norm's input in one pass (cudl_batchnorm_apply,
 * after cudl_batchnorm_statistics) and backward goes back through the
 * group in one (cudl_batchnorm_relu_backward): fewer passes over memory
 * and, on CUDA, fewer kernel launches. The results are the separate
 * layers', except that in bf16 and fp16 the fused pass keeps the
 * intermediate values in f32 and rounds once. The batch norm's and the
 * addition's own outputs are not computed then: cudl_model_node_output
 * gives NULL for them and cudl_model_first_nonfinite passes over them.
 * Evaluation forwards, and training with diagnostics
 * (cudl_model_set_diagnostics), check numerics or synchronised batch norm,
 * run the layers one by one. May be called at any time; it applies from
 * the next forward (a backward follows its forward).
 */
CUDL_API cudl_status cudl_model_set_fusion(cudl_model *model, int enabled);
/** Whether fused training is on (0 for NULL). */
CUDL_API int cudl_model_fusion(const cudl_model *model);

/** A node's output of the last forward ([rows, ...] view, owned by the
 *  model), e.g. to look at hidden units; NULL when out of range, before
 *  a forward, or for a node the fused path computed no value for
 *  (cudl_model_set_fusion). It is in the compute dtype
 *  (cudl_model_set_precision) and, for an image node, the model's layout
 *  (cudl_model_set_layout). */
CUDL_API const cudl_tensor *cudl_model_node_output(cudl_model *model, int node);

/** The first node (in forward order) whose output of the last forward
 *  holds a NaN or an infinity, or -1: for reporting where training
 *  diverged. Copies outputs to the host (slow; for error paths). */
CUDL_API cudl_status cudl_model_first_nonfinite(cudl_model *model, int *node,
                                                const char **description);

/* ---- diagnostics: the chapter's claims, measured per layer ---- */

/**
 * One layer's figures (cudl_model_diagnostics). A figure that does not
 * apply to the layer is NaN.
 */
typedef struct cudl_layer_diagnostics {
  int node;         /**< the node's number */
  const char *name; /**< the layer's name ("conv1"), or "" for unnamed ones */
  const char *kind; /**< "conv2d", "linear", "batchnorm", "relu",
                         "sigmoid", "tanh", "leaky_relu", "elu", "prelu",
                         "rrelu", "dropout", "pool2d", "global_avg_pool",
                         "add" */
  /** Mean and standard deviation of the layer's output over the last
   *  batch. */
  double output_mean, output_std;
  /** L2 norm of the gradient of the layer's weight (conv2d, linear,
   *  batchnorm's gamma, prelu's slope) from the last backward that
   *  recorded norms (cudl_model_set_diagnostics). */
  double weight_grad_norm;
  /** L2 norm of the gradient reaching the layer's input in that backward
   *  (NaN for layers reading the data, which has none). */
  double input_grad_norm;
  /** sigmoid: the fraction of the last batch's outputs within 0.01 of 0 or
   *  1 (where the derivative is below 0.0099); tanh: within 0.01 of -1 or 1
   *  (derivative below 0.02). */
  double saturated_fraction;
  /** relu, leaky_relu, elu, prelu, rrelu: the fraction of units whose
   *  input was <= 0 for every example of every training forward in the
   *  window (a unit is a channel of a [C, H, W] input, a feature of a flat
   *  one). For ReLU such a unit passes no gradient: it is dead. */
  double dead_fraction;
} cudl_layer_diagnostics;

/**
 * Diagnostics every `every` training steps (>= 1), or off (0, the
 * default). When on, each training forward records which units of the
 * ReLU-family layers were active (one extra pass over those layers'
 * inputs), and the backward of every every-th training forward the norm of
 * each layer's output and weight gradients (a pass over all gradients:
 * cheap when amortised over many steps). Read them after such a step.
 * Switching on starts an empty window. Needs a compiled model.
 */
CUDL_API cudl_status cudl_model_set_diagnostics(cudl_model *model, int every);

/**
 * cudl_model_set_diagnostics for a run that has already taken `steps_done`
 * training steps (>= 0; a run resumed from a checkpoint): the norms are
 * recorded in the backward of the steps whose number in the whole run is a
 * multiple of `every`, the steps the run recorded before it stopped, so a
 * caller that reads the diagnostics when its own step count is a multiple of
 * `every` reads that step's norms. The first window then holds only the
 * steps since the call. cudl_model_set_diagnostics(model, every) is this
 * with steps_done 0.
 */
CUDL_API cudl_status cudl_model_set_diagnostics_after(cudl_model *model,
                                                      int every,
                                                      int64_t steps_done);

/**
 * The diagnostics of every layer (all nodes but the input, flattens and
 * reshapes)
 * into rows[0 .. *count), at most `capacity` rows (cudl_model_node_count
 * is always enough; CUDL_ERR_INVALID_ARGUMENT when fewer), from the last
 * forward and backward and the window since the previous call, which this
 * call ends: the next window starts empty. *steps receives the training
 * forwards the window held (may be NULL). Reads the device (waits for it).
 * Strings point into the model.
 */
CUDL_API cudl_status cudl_model_diagnostics(cudl_model *model,
                                            cudl_layer_diagnostics *rows,
                                            int capacity, int *count,
                                            int64_t *steps);

/* ---- CUDA graphs: an inference forward in one launch ---- */

/** What CUDA graphs did for a model's forwards (cudl_model_graph_stats),
 *  counted since cudl_model_set_graphs switched them on. */
typedef struct cudl_graph_stats {
  int64_t recorded; /**< forwards recorded into a graph (and run) */
  int64_t replayed; /**< forwards that replayed the recorded graph */
  int64_t direct;   /**< forwards run operator by operator instead */
  /** Why the last forward ran operator by operator ("" when it recorded
   *  or replayed a graph). */
  char reason[256];
} cudl_graph_stats;

/**
 * CUDA graphs for the forwards of a model compiled for inference (on 1,
 * off 0, the default). A forward without a target is recorded into a graph
 * and run; the next forwards with the same input tensor (the same data
 * address and rows) replay it: one launch for the whole forward instead of
 * one or more per layer, which is most of a small batch's time on a GPU.
 * The input's values and the weights (cudl_model_param, cudl_model_load)
 * may change between forwards: the graph reads them where they are.
 *
 * Another input address or row count, a change of the context's TF32 or
 * deterministic setting, or a larger convolution workspace (another model
 * or call of the context needed one) records the forward again. A forward
 * that cannot be recorded runs operator by operator with the same results,
 * and cudl_model_graph_stats says why: a shape whose convolution algorithm
 * has not been chosen yet (the next forward records it), check-numerics
 * mode or cudl_context_set_debug_sync (they wait for the device), a
 * caller's stream that its program is capturing itself or cannot be
 * captured, or a device without graphs (the CPU: the setting is accepted
 * and every forward runs directly). A forward with a target runs directly
 * and keeps the graph.
 *
 * On a caller's stream (cudl_context_create_cuda_stream) no other thread
 * may queue work on that stream during such a forward: it would be
 * recorded into the graph. The first recording gives cuBLAS a 32 MiB
 * workspace of the context (cublasSetWorkspace), kept until the context
 * is destroyed; the temporary memory a recorded forward allocates is the
 * graph's, outside the context's memory limit and statistics, and a
 * forward that fails while recorded (fault injection included) runs again
 * directly.
 *
 * An error inside a replay (a fault of the device) is reported by the
 * call that next waits for the device, as for any queued work; the
 * forward's own errors (a wrong tensor) are found before the replay.
 * CUDL_ERR_INVALID_ARGUMENT for a model not compiled for inference.
 */
CUDL_API cudl_status cudl_model_set_graphs(cudl_model *model, int on);

/**
 * The counts and the last reason of cudl_model_set_graphs into *stats
 * (zeros and "" while graphs are off).
 */
CUDL_API cudl_status cudl_model_graph_stats(const cudl_model *model,
                                            cudl_graph_stats *stats);

/* ---- numerics: where a run stops being finite ---- */

/** Where NaN or infinite values were found (strings point into the
 *  model). */
typedef struct cudl_numerics_report {
  int64_t step;      /**< backward passes completed before (the training
                          step, from 0) */
  int node;          /**< the node that wrote the values; -1: all finite */
  const char *layer; /**< its name, or its kind when unnamed; for a
                          parameter gradient the parameter's name */
  const char *what;  /**< "output", "loss", "loss gradient", "input
                          gradient" or "parameter gradient" */
  int64_t nan_count, inf_count, numel; /**< in those values */
  int64_t total_nan, total_inf; /**< cudl_model_check_gradients: over all
                                     parameter gradients */
} cudl_numerics_report;

/**
 * Check-numerics mode (off by default): every forward and backward counts
 * the NaN and infinite values in what each node writes (its output, the
 * loss, the gradients of its inputs and parameters) and stops at the first
 * that holds any: the call returns CUDL_ERR_NUMERICS, whose message names
 * the step, node, layer, values and counts, and
 * cudl_model_numerics_report gives the same as a record. Each count waits
 * for the device: a mode for finding where a run diverges, not for speed.
 */
CUDL_API cudl_status cudl_model_set_check_numerics(cudl_model *model,
                                                   int enabled);

/** The report of the last CUDL_ERR_NUMERICS of check-numerics mode (node
 *  -1 if there was none). */
CUDL_API cudl_status cudl_model_numerics_report(const cudl_model *model,
                                                cudl_numerics_report *report);

/**
 * After a backward, without check-numerics mode: count NaN and infinities
 * over all parameter gradients (one pass, then one per parameter only when
 * some are not finite). *report gets node -1 when all are finite, else the
 * first parameter (in model order) that holds such values, its counts, and
 * the totals. A cheap guard for every training step.
 */
CUDL_API cudl_status cudl_model_check_gradients(cudl_model *model,
                                                cudl_numerics_report *report);

/* ---- weights in files ---- */

/**
 * Save every named tensor (parameters and buffers, by their PyTorch names)
 * to a safetensors file, atomically (cudl_safetensors_save), with optional
 * metadata. The file is a PyTorch state_dict: safetensors.torch.load_file
 * and load_state_dict read it (PyTorch fills in batch norm's
 * num_batches_tracked, which cudl does not keep). The model must be
 * compiled (CUDL_ERR_INVALID_ARGUMENT saying so), here and for the loads
 * below. The metadata also gets the model's architecture under
 * CUDL_METADATA_ARCHITECTURE ("cudl.architecture", the text of
 * cudl_model_describe, cudl/model_file.h), which cudl_model_load_file
 * rebuilds the model from; a metadata key of that name is refused
 * (CUDL_ERR_INVALID_ARGUMENT). A model with a layer name that is not UTF-8
 * cannot be described and is saved without it.
 */
CUDL_API cudl_status cudl_model_save(cudl_model *model, const char *path,
                                     const cudl_metadata_pair *metadata,
                                     size_t n_metadata);

/**
 * Copy the model's named tensors from a loaded safetensors set (any
 * device; f32 entries). Every parameter and buffer of the model must be in
 * the set with its shape (CUDL_ERR_SHAPE naming the first missing or
 * mismatched one); with strict nonzero, entries the model does not have
 * are an error too (CUDL_ERR_INVALID_ARGUMENT), except PyTorch's
 * "*.num_batches_tracked". Every tensor to be copied must be finite: a NaN
 * or an infinity gives CUDL_ERR_FILE_VALUE naming the tensor and the
 * counts. Nothing is changed on failure.
 */
CUDL_API cudl_status cudl_model_load_set(cudl_model *model,
                                         const cudl_safetensors *set,
                                         int strict);

/** Load a safetensors file (e.g. a PyTorch state_dict saved with
 *  safetensors.torch.save_file) into the model, as cudl_model_load_set;
 *  entries of dtypes cudl does not hold (PyTorch's I64
 *  num_batches_tracked) are skipped. */
CUDL_API cudl_status cudl_model_load(cudl_model *model, const char *path,
                                     int strict);

CUDL_EXTERN_C_END

#endif /* CUDL_NN_H */
