/*
 * cudl/onnx.h - a model as an ONNX file, to run in other inference
 * engines (ONNX Runtime, TensorRT, OpenVINO, ...).
 *
 * The file is an ONNX ModelProto of IR version CUDL_ONNX_IR_VERSION that
 * imports the default operator set at version CUDL_ONNX_OPSET and nothing
 * else. It computes what cudl_model_forward computes in evaluation mode
 * (cudl_model_set_training(model, 0)): the graph's input "input" is the
 * model's input, f32 NCHW [N, C, H, W] (or [N, F]) with N left free (the
 * dimension parameter "N"), already normalised as the model was trained;
 * its output "output" is the output node's value, f32 [N, ...] (the
 * logits of a classifier). The parameters and batch-norm statistics are
 * initializers named as the model names them ("layer1.0.conv1.weight"),
 * f32, little-endian raw data; the model's layout and precision do not
 * change the file (the f32 master weights are written, in NCHW order).
 *
 * Each node becomes standard operators (docs/deploy.md has the table):
 *   conv2d          Conv (strides, pads, dilations, group)
 *   linear          Gemm (transB = 1), after Flatten (axis 1) when its
 *                   input is not [N, F]
 *   batchnorm       BatchNormalization with the running statistics
 *   relu, sigmoid, tanh, leaky_relu, elu
 *                   Relu, Sigmoid, Tanh, LeakyRelu, Elu
 *   gelu            0.5 * x * (1 + Erf(x / sqrt 2)): Div, Erf, Add, Mul
 *                   (opset 17 has no Gelu)
 *   silu            x * Sigmoid(x)
 *   prelu           PRelu, the slope shaped [C, 1, 1] (or [C, 1], [1]) to
 *                   broadcast over the channel axis
 *   rrelu           LeakyRelu with its evaluation slope (lower + upper) / 2
 *   dropout         Identity (nothing is dropped in evaluation)
 *   max_pool, avg_pool
 *                   MaxPool, AveragePool (pads, ceil_mode,
 *                   count_include_pad)
 *   global_avg_pool GlobalAveragePool
 *   flatten         Flatten (axis 1)
 *   add             Add
 *   concat          Concat (axis 1)
 *   reshape         Reshape to [0, ...] (the batch kept)
 * A kind without such a mapping is refused with CUDL_ERR_UNSUPPORTED
 * naming it (every kind of this version has one).
 */
#ifndef CUDL_ONNX_H
#define CUDL_ONNX_H

#include <stddef.h>

#include "cudl/export.h"
#include "cudl/nn.h"
#include "cudl/safetensors.h"
#include "cudl/status.h"

CUDL_EXTERN_C_BEGIN

/** The ONNX operator set (default domain) the files import. */
#define CUDL_ONNX_OPSET 17
/** The ONNX IR version of the files (the one that goes with opset 17). */
#define CUDL_ONNX_IR_VERSION 8

/** Metadata keys that cudl_model_export_onnx writes itself (and refuses
 *  in cudl_onnx_options.metadata): the cudl version that wrote the file,
 *  and the model file of the network (cudl_model_describe's text, as
 *  under CUDL_METADATA_ARCHITECTURE in weights files). */
#define CUDL_ONNX_METADATA_VERSION "cudl.version"
#define CUDL_ONNX_METADATA_ARCHITECTURE "cudl.architecture"

/** Where the bytes of the file go: called one or more times, in order,
 *  with the next `size` bytes; returns CUDL_OK, or a status that stops
 *  the export and is returned by it (record the reason yourself). */
typedef cudl_status (*cudl_onnx_write_fn)(void *user, const void *data,
                                          size_t size);

/** What an export adds beside the network. Zero-initialise it, then set
 *  what you need. */
typedef struct cudl_onnx_options {
  /** Nonzero: a second graph output "probabilities", Softmax (axis 1) of
   *  the output for a model trained with cross-entropy, Sigmoid for
   *  binary cross-entropy with logits. A model trained with MSE has no
   *  probabilities (CUDL_ERR_INVALID_ARGUMENT). */
  int probabilities;
  /** metadata_count pairs for the model's metadata_props, written in the
   *  order given: the class names and normalisation, under the keys cudl
   *  train's weights files use ("classes": a JSON array of strings;
   *  "normalize.mean" and "normalize.std": one number per channel,
   *  separated by commas). Keys non-empty and unique, keys and values
   *  UTF-8, no key of the CUDL_ONNX_METADATA_* above. */
  const cudl_metadata_pair *metadata;
  size_t metadata_count;
} cudl_onnx_options;

/**
 * Write `model` as an ONNX file (see above) through `write`. The model
 * must be compiled (its parameters exist only then) and have an output
 * (cudl_model_set_output); it is not changed, and its mode does not
 * matter: the file always computes evaluation mode. options may be NULL
 * (no probabilities, no metadata of the caller's). The whole file is
 * built in host memory before the first call of `write`, so a failure
 * before then writes nothing.
 *
 * Status: CUDL_ERR_INVALID_ARGUMENT for a NULL model (nothing recorded)
 * or write, a model not compiled or without an output, metadata that
 * breaks the rules above, probabilities for an MSE model;
 * CUDL_ERR_UNSUPPORTED for a node kind that has no ONNX mapping (naming
 * it), a layer name that is not UTF-8 (ONNX names are protobuf strings),
 * or a file that would reach 2 GiB (ONNX's external-data form, which
 * larger models need, is not written); CUDL_ERR_OUT_OF_MEMORY; a status
 * from copying parameters off a device; or what `write` returned. The
 * reason is in the model's context (cudl_context_last_error) except for
 * the callback's own statuses.
 */
CUDL_API cudl_status cudl_model_export_onnx(cudl_model *model,
                                            const cudl_onnx_options *options,
                                            cudl_onnx_write_fn write,
                                            void *user);

CUDL_EXTERN_C_END

#endif /* CUDL_ONNX_H */
