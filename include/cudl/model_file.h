/*
 * cudl/model_file.h - networks written as JSON model files: build a model
 * (cudl/nn.h) from one, and write the file of any model the graph API
 * built (the zoo's included).
 *
 * docs/model-files.md describes the format, with examples, and
 * docs/model-file.schema.json is its JSON Schema. In short:
 *
 *   {
 *     "version": 1,
 *     "input_shape": [1, 28, 28],
 *     "layers": [
 *       {"kind": "conv2d", "name": "conv1", "out_channels": 32,
 *        "kernel_size": 3, "padding": 1, "bias": false},
 *       {"kind": "batchnorm", "name": "bn1"},
 *       {"kind": "relu", "id": "stem"},
 *       ...
 *       {"kind": "add", "inputs": ["layer1.0.bn2", "stem"]},
 *       {"kind": "linear", "name": "fc", "out_features": 10}
 *     ],
 *     "loss": "cross_entropy"
 *   }
 *
 * Layers are added in the order listed; each reads the previous layer
 * unless "input" (or, for add, "inputs") names an earlier layer by its
 * "name" (the prefix of its parameters' names, PyTorch's module path) or
 * its "id" (a label that exists only in the file), or "input", the
 * model's input. The output is the last layer unless "output" names one.
 *
 * Errors: a file that is not JSON gives CUDL_ERR_FILE_JSON (a key repeated
 * in one object CUDL_ERR_FILE_DUPLICATE) and the context's last error
 * names the line and column Jansson reports: "net.json:12:5: ...". A file
 * that is JSON but not a model file names the place by its path in the
 * document, layers counted from 0:
 * "net.json: layers[3] ("conv1").kernel_size: must be an integer from 1
 * to 4096":
 *   CUDL_ERR_FILE_SCHEMA     a key missing, unknown (a typo is never
 *                            ignored) or of the wrong JSON type; an unknown
 *                            kind, loss or reference; a reference to a
 *                            later layer;
 *   CUDL_ERR_FILE_VALUE      a number outside its range (the limits below
 *                            included), an unknown version;
 *   CUDL_ERR_FILE_DUPLICATE  two layers with one name or id (names and ids
 *                            share one namespace, with "input");
 *   CUDL_ERR_FILE_SHAPE      a layer the graph cannot add where it stands
 *                            (a window larger than its input, an add of
 *                            two shapes, cross-entropy on an image): the
 *                            graph's reason follows the layer's path.
 * CUDL_ERR_OUT_OF_MEMORY and CUDL_ERR_IO keep their meaning. The context
 * stays usable after any of them, and *out is NULL.
 */
#ifndef CUDL_MODEL_FILE_H
#define CUDL_MODEL_FILE_H

#include <stddef.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/nn.h"
#include "cudl/status.h"

CUDL_EXTERN_C_BEGIN

/* ---- limits: what a model file may ask for ----
 * A file is untrusted input; these bound the memory and time that parsing
 * and compiling it can take, far above the networks cudl trains (ResNet-1202
 * is 4,210 layers and 19 million parameters). Beyond them the file is
 * refused with CUDL_ERR_FILE_VALUE (CUDL_ERR_FILE_HEADER_SIZE for the file's
 * size). Every per-sample layer output is also at most 2^31 values, as the
 * graph API requires. */

/** The largest model file cudl_model_parse and cudl_model_read_file take,
 *  in bytes (16 MiB). */
#define CUDL_MODEL_FILE_MAX_BYTES ((size_t)16 << 20)
/** The most layers a file may list. */
#define CUDL_MODEL_FILE_MAX_LAYERS 16384
/** The largest channel or feature count (out_channels, out_features,
 *  input_shape dimensions, groups): 2^24. */
#define CUDL_MODEL_FILE_MAX_SIZE ((int64_t)1 << 24)
/** The largest kernel size, stride, padding or dilation of a convolution
 *  or pooling window. */
#define CUDL_MODEL_FILE_MAX_WINDOW 4096
/** The most scalars a model may hold, parameters and batch-norm buffers
 *  together: 2^31 (8 GiB in f32). */
#define CUDL_MODEL_FILE_MAX_PARAMETERS ((int64_t)1 << 31)
/** The version of the format this cudl reads and writes ("version"). */
#define CUDL_MODEL_FILE_VERSION 1

/**
 * Build a model from the model-file text text[0 .. length) (UTF-8 JSON,
 * need not be NUL-terminated; at most CUDL_MODEL_FILE_MAX_BYTES).
 * source_name names the text in messages (a file name: "net.json"; NULL
 * gives "model file"). On success *out is a new, uncompiled model with its
 * output and loss set: the caller may set its precision and layout, then
 * compiles, initialises or loads it, and destroys it. Errors as above;
 * CUDL_ERR_INVALID_ARGUMENT for a NULL ctx (nothing recorded), text or
 * out.
 */
CUDL_API cudl_status cudl_model_parse(cudl_context *ctx, const char *text,
                                      size_t length, const char *source_name,
                                      cudl_model **out);

/**
 * Read the model file at `path` and build it as cudl_model_parse does,
 * with the path as the source name. A file larger than
 * CUDL_MODEL_FILE_MAX_BYTES is refused before it is read
 * (CUDL_ERR_FILE_HEADER_SIZE); a file that cannot be opened or read gives
 * CUDL_ERR_IO with the system's reason.
 */
CUDL_API cudl_status cudl_model_read_file(cudl_context *ctx, const char *path,
                                          cudl_model **out);

/**
 * The model file of `model`: canonical text that cudl_model_parse turns
 * into the same graph (the same layers in the same order, parameter names
 * and shapes, settings, output and loss), and that describing that model
 * again reproduces byte for byte. Deterministic: the same graph always
 * gives the same text (one layer per line, keys in a fixed order, settings
 * equal to the format's defaults left out, floats in the shortest decimal
 * that reads back to the same float, unnamed layers that are read out of
 * order labelled "id": "<kind>_<layer index>"). Precision and layout are
 * not part of a model file.
 *
 * With buffer NULL and size 0, only *length is set: the text's length in
 * bytes, without the terminating NUL. Otherwise the text and a NUL are
 * written to buffer when they fit in `size` bytes; when they do not,
 * buffer receives "" (when size > 0), *length the length needed, and the
 * call fails with CUDL_ERR_INVALID_ARGUMENT: a truncated model file is
 * never returned. length may be NULL when a buffer is given.
 * Works on compiled and uncompiled models. CUDL_ERR_INVALID_ARGUMENT also
 * when the model has no output yet (cudl_model_set_output);
 * CUDL_ERR_UNSUPPORTED when a layer name is not valid UTF-8 (JSON cannot
 * hold it). The model is not changed.
 */
CUDL_API cudl_status cudl_model_describe(const cudl_model *model, char *buffer,
                                         size_t size, size_t *length);

/* ---- weights files that say what they are ---- */

/** The metadata key under which cudl_model_save and cudl_checkpoint_save
 *  store the model's architecture: the text of cudl_model_describe. */
#define CUDL_METADATA_ARCHITECTURE "cudl.architecture"

/**
 * Build, compile and load the model that a safetensors file written by
 * cudl_model_save or cudl_checkpoint_save holds, from the file alone: its
 * CUDL_METADATA_ARCHITECTURE is parsed as cudl_model_parse does (messages
 * name "PATH: cudl.architecture"), the model compiled for batches of up to
 * max_batch (>= 1) in f32 and NCHW (the defaults; to train in another
 * precision or layout, parse the text and set them before compiling), and
 * every parameter and buffer loaded from the file. Other tensors in the
 * file (a checkpoint's optimizer state) are ignored. On success *out is a
 * new compiled model in training mode, as after cudl_model_compile: call
 * cudl_model_set_training(model, 0) to predict. Errors:
 * CUDL_ERR_FILE_METADATA when the file has no architecture (files written
 * before it was stored, or by other programs: build the model and call
 * cudl_model_load), the model-file errors of cudl_model_parse, the
 * safetensors errors of cudl_safetensors_load, CUDL_ERR_SHAPE when a
 * parameter is missing or of another shape, CUDL_ERR_FILE_VALUE for a
 * weight that is not finite, CUDL_ERR_INVALID_ARGUMENT for a NULL ctx
 * (nothing recorded), path or out, or max_batch < 1. *out is NULL on
 * failure and the context stays usable. Normalisation and class names are
 * the writer's metadata (cudl train stores "normalize.mean",
 * "normalize.std" and "classes"; read them with cudl_safetensors_load and
 * cudl_safetensors_metadata_find).
 */
CUDL_API cudl_status cudl_model_load_file(cudl_context *ctx, const char *path,
                                          int64_t max_batch, cudl_model **out);

/**
 * cudl_model_load_file, compiled for inference only
 * (cudl_model_compile_inference, cudl/nn.h): no gradients, activations
 * shared by liveness, batch norm folded, dropout removed; the model is in
 * evaluation mode and predicts batches of 1 to max_batch rows. The same
 * errors as cudl_model_load_file.
 */
CUDL_API cudl_status cudl_model_load_file_inference(cudl_context *ctx,
                                                    const char *path,
                                                    int64_t max_batch,
                                                    cudl_model **out);

CUDL_EXTERN_C_END

#endif /* CUDL_MODEL_FILE_H */
