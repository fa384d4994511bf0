/*
 * cudl/zoo.h - ready-made networks: an MLP, a small CNN, and CIFAR-style
 * ResNets and plain nets of depth 6n + 2.
 *
 * Each function builds (does not compile) a cudl_model (cudl/nn.h) whose
 * output is the logits [classes] with the cross-entropy loss
 * (CUDL_MODEL_LOSS_CROSS_ENTROPY: labels are i32 class numbers). The caller
 * compiles it for a batch size (cudl_model_compile), initialises it
 * (cudl_model_init) or loads weights (cudl_model_load), and runs it; the
 * caller owns it and releases it with cudl_model_destroy.
 *
 * Parameter names are PyTorch's: benchmarks/models.py defines the same
 * networks as torch.nn modules whose state_dict keys are exactly these
 * names (PyTorch adds batch norm's num_batches_tracked, which cudl skips
 * when loading), so a PyTorch state_dict saved as safetensors loads into the
 * zoo model with cudl_model_load, and a cudl checkpoint loads into PyTorch
 * with load_state_dict. Convolutions followed by batch norm have no bias
 * (BN's beta makes it redundant), as in torchvision. Batch norm uses
 * PyTorch's momentum 0.1 and eps 1e-5. docs/models.md lists every model's
 * tensors and parameter counts.
 *
 * Errors: CUDL_ERR_INVALID_ARGUMENT for a NULL ctx or out or an argument out
 * of its documented range (the context's last error names it); an input
 * the network's geometry cannot take is CUDL_ERR_INVALID_ARGUMENT too. On
 * failure *out is NULL and nothing is left allocated.
 */
#ifndef CUDL_ZOO_H
#define CUDL_ZOO_H

#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/nn.h"
#include "cudl/status.h"

CUDL_EXTERN_C_BEGIN

/**
 * A multilayer perceptron: the input (per-sample shape input_shape of
 * input_ndim 1 to 3 dimensions, as cudl_model_create takes it: features,
 * or an image, flattened first) goes through hidden_count fully connected
 * layers of widths[0], ..., widths[hidden_count - 1] units (each >= 1),
 * each followed by `activation` (alpha: the negative slope of leaky ReLU,
 * PyTorch's default 0.01, or ELU's saturation, default 1; ignored by the
 * others), then through a fully connected layer to `classes` (>= 1)
 * logits. hidden_count 0 (widths may then be NULL) is multinomial logistic
 * regression.
 *
 * Names: "hidden.0", ..., "hidden.<hidden_count - 1>" and "fc", each with
 * ".weight" [out, in] and ".bias" [out] (PyTorch: an nn.ModuleList
 * `hidden` of nn.Linear and an nn.Linear `fc`).
 */
CUDL_API cudl_status cudl_zoo_mlp(cudl_context *ctx, int input_ndim,
                                  const int64_t *input_shape, int hidden_count,
                                  const int64_t *widths,
                                  cudl_activation_type activation, float alpha,
                                  int64_t classes, cudl_model **out);

/**
 * A small CNN for [channels, height, width] images (1 channel for MNIST
 * and Fashion-MNIST, 3 for CIFAR-10; any channels >= 1; height and width
 * >= 4):
 *   conv1 (3x3, 32 filters, pad 1, no bias), bn1, ReLU, 2x2 max pooling,
 *   conv2 (3x3, 64 filters, pad 1, no bias), bn2, ReLU, 2x2 max pooling,
 *   dropout(p), fc1 (128 units), ReLU, dropout(p), fc2 (classes >= 1).
 * dropout is the drop probability p in [0, 1] (0.25 is a usual choice; 0
 * makes training deterministic). fc1 takes 64 * (height/4) * (width/4)
 * inputs (pooling rounds down): 3136 for 28x28 images, 4096 for 32x32.
 *
 * Names: "conv1", "bn1", "conv2", "bn2", "fc1", "fc2" (PyTorch module
 * attributes of the same names; benchmarks/models.py small_cnn).
 */
CUDL_API cudl_status cudl_zoo_small_cnn(cudl_context *ctx, int64_t channels,
                                        int64_t height, int64_t width,
                                        int64_t classes, float dropout,
                                        cudl_model **out);

/**
 * The CIFAR-10 ResNet of He et al. 2016 (section 4.2) of `depth` = 6n + 2
 * layers (20, 32, 44, 56, 110, ...; 8 <= depth <= 1202, the deepest in the
 * paper), for [channels, height, width] images (channels >= 1, height and
 * width >= 1: every stride rounds up, so 28x28 becomes 14x14 then 7x7):
 *   conv1 (3x3, 16, pad 1), bn1, ReLU;
 *   three stages of n BasicBlocks with 16, 32 and 64 channels; a block is
 *     conv1 (3x3, stride s, pad 1), bn1, ReLU, conv2 (3x3, pad 1), bn2,
 *     plus the shortcut, ReLU; s = 2 in the first block of stages 2 and 3
 *     (halving height and width), else 1;
 *   global average pooling, fc (64 -> classes >= 1, with bias).
 * Convolutions have no bias. The shortcut is the block's input, or, where
 * the shape changes (the first block of stages 2 and 3), its projection: a
 * 1x1 convolution of stride 2 and batch norm ("option B").
 * With plain nonzero, the "plain" net of the paper: the same layers
 * without any shortcut (and so without the projections).
 *
 * Names, torchvision's: "conv1", "bn1", "layer<stage>.<block>.conv1",
 * ".bn1", ".conv2", ".bn2", "layer2.0.downsample.0" (the 1x1 convolution)
 * and "layer2.0.downsample.1" (its batch norm), the same in layer3, and
 * "fc". Parameters: 272,474 for ResNet-20 on 3 channels (269,722 plain).
 */
CUDL_API cudl_status cudl_zoo_resnet(cudl_context *ctx, int depth, int plain,
                                     int64_t channels, int64_t height,
                                     int64_t width, int64_t classes,
                                     cudl_model **out);

/** The deepest ResNet cudl_zoo_resnet builds (the paper's deepest). */
#define CUDL_ZOO_RESNET_MAX_DEPTH 1202

/** 1 when cudl_zoo_resnet takes `depth`: 6n + 2 with n >= 1, up to
 *  CUDL_ZOO_RESNET_MAX_DEPTH (8, 14, 20, ..., 1202); else 0. */
CUDL_API int cudl_zoo_resnet_depth_valid(int depth);

CUDL_EXTERN_C_END

#endif /* CUDL_ZOO_H */
