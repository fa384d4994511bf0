/* zoo.c - ready-made networks (cudl/zoo.h) built through the public model
 * graph calls (cudl/nn.h), with PyTorch's module names. The PyTorch
 * definitions are in benchmarks/models.py; tests/unit/test_zoo.cpp checks
 * that names, shapes and results agree. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

/* The deepest network of He et al. 2016 (section 4.2). */
/* Per-sample input values at most 2^31, so that no layer's sizes come
 * near int64 overflow. */
#define ZOO_MAX_INPUT ((int64_t)1 << 31)

/* The product of n sizes, each >= 1, or -1 when one is < 1 or the
 * product exceeds ZOO_MAX_INPUT. */
static int64_t bounded_product(int n, const int64_t *sizes) {
  int64_t product = 1;
  int i;
  for (i = 0; i < n; ++i) {
    if (sizes[i] < 1 || sizes[i] > ZOO_MAX_INPUT / product) return -1;
    product *= sizes[i];
  }
  return product;
}

/* Checks shared by the image networks; names the function in the error. */
static cudl_status check_image(cudl_context *ctx, const char *function,
                               int64_t channels, int64_t height, int64_t width,
                               int64_t min_side, int64_t classes,
                               cudl_model **out) {
  int64_t shape[3];
  shape[0] = channels;
  shape[1] = height;
  shape[2] = width;
  if (out == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function, "out is NULL");
  if (bounded_product(3, shape) < 0 || height < min_side || width < min_side)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "input %lldx%lldx%lld: channels must be >= 1, height "
                      "and width >= %lld, and the image at most 2^31 values",
                      (long long)channels, (long long)height, (long long)width,
                      (long long)min_side);
  if (classes < 1 || classes > ZOO_MAX_INPUT)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, function,
                      "classes is %lld: must be in [1, 2^31]",
                      (long long)classes);
  return CUDL_OK;
}

static cudl_status create_image_model(cudl_context *ctx, int64_t channels,
                                      int64_t height, int64_t width,
                                      cudl_model **out) {
  int64_t shape[3];
  shape[0] = channels;
  shape[1] = height;
  shape[2] = width;
  return cudl_model_create(ctx, 3, shape, out);
}

/* Finish a build: on success set the output, else release the model. */
static cudl_status finish(cudl_model *m, int output, cudl_status status,
                          cudl_model **out) {
  if (status == CUDL_OK)
    status = cudl_model_set_output(m, output, CUDL_MODEL_LOSS_CROSS_ENTROPY);
  if (status != CUDL_OK) {
    cudl_model_destroy(m);
    return status;
  }
  *out = m;
  return CUDL_OK;
}

/* ---- MLP ---- */

cudl_status cudl_zoo_mlp(cudl_context *ctx, int input_ndim,
                         const int64_t *input_shape, int hidden_count,
                         const int64_t *widths, cudl_activation_type activation,
                         float alpha, int64_t classes, cudl_model **out) {
  cudl_model *m = NULL;
  char name[32];
  int i, node = 0;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || input_shape == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "%s is NULL",
                     out == NULL ? "out" : "input_shape");
  if (hidden_count < 0 || (hidden_count > 0 && widths == NULL))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "hidden_count is %d%s: need >= 0 widths", hidden_count,
                     hidden_count > 0 ? " and widths is NULL" : "");
  for (i = 0; i < hidden_count; ++i)
    if (widths[i] < 1 || widths[i] > ZOO_MAX_INPUT)
      return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "widths[%d] is %lld: must be in [1, 2^31]", i,
                       (long long)widths[i]);
  if (cudl_activation_name(activation) == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "unknown activation type %d", (int)activation);
  if (classes < 1 || classes > ZOO_MAX_INPUT)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "classes is %lld: must be in [1, 2^31]",
                     (long long)classes);
  if (input_ndim < 1 || input_ndim > 3 ||
      bounded_product(input_ndim, input_shape) < 0)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the input shape must have 1 to 3 dimensions, each >= 1, "
                     "and at most 2^31 values (input_ndim %d)",
                     input_ndim);
  status = cudl_model_create(ctx, input_ndim, input_shape, &m);
  if (status != CUDL_OK) return status;
  /* Linear layers flatten their input per sample. */
  for (i = 0; i < hidden_count && status == CUDL_OK; ++i) {
    snprintf(name, sizeof name, "hidden.%d", i);
    status = cudl_model_add_linear(m, node, name, widths[i], 1, &node);
    if (status == CUDL_OK)
      status = cudl_model_add_activation(m, node, activation, alpha, &node);
  }
  if (status == CUDL_OK)
    status = cudl_model_add_linear(m, node, "fc", classes, 1, &node);
  return finish(m, node, status, out);
}

/* ---- small CNN ---- */

/* conv (3x3, pad 1, no bias) + batch norm + ReLU + 2x2 max pooling. */
static cudl_status conv_bn_relu_pool(cudl_model *m, int input, const char *conv,
                                     const char *bn, int64_t filters,
                                     int *node) {
  cudl_conv2d_desc desc = CUDL_CONV2D_DESC_DEFAULT;
  cudl_pool2d_desc pool;
  cudl_status status;
  desc.pad_h = desc.pad_w = 1;
  memset(&pool, 0, sizeof pool);
  pool.kernel_h = pool.kernel_w = 2;
  pool.stride_h = pool.stride_w = 2;
  status = cudl_model_add_conv2d(m, input, conv, filters, 3, 3, &desc, 0, node);
  if (status == CUDL_OK)
    status = cudl_model_add_batchnorm(m, *node, bn, 0.1f, 1e-5f, node);
  if (status == CUDL_OK)
    status = cudl_model_add_activation(m, *node, CUDL_ACT_RELU, 0.0f, node);
  if (status == CUDL_OK)
    status = cudl_model_add_pool2d(m, *node, 1, &pool, node);
  return status;
}

cudl_status cudl_zoo_small_cnn(cudl_context *ctx, int64_t channels,
                               int64_t height, int64_t width, int64_t classes,
                               float dropout, cudl_model **out) {
  cudl_model *m = NULL;
  int node = 0;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = check_image(ctx, __func__, channels, height, width, 4, classes, out);
  if (status != CUDL_OK) return status;
  if (!(dropout >= 0.0f && dropout <= 1.0f))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "dropout is %g: must be in [0, 1]", (double)dropout);
  status = create_image_model(ctx, channels, height, width, &m);
  if (status != CUDL_OK) return status;
  status = conv_bn_relu_pool(m, 0, "conv1", "bn1", 32, &node);
  if (status == CUDL_OK)
    status = conv_bn_relu_pool(m, node, "conv2", "bn2", 64, &node);
  if (status == CUDL_OK) status = cudl_model_add_flatten(m, node, &node);
  if (status == CUDL_OK)
    status = cudl_model_add_dropout(m, node, dropout, &node);
  if (status == CUDL_OK)
    status = cudl_model_add_linear(m, node, "fc1", 128, 1, &node);
  if (status == CUDL_OK)
    status = cudl_model_add_activation(m, node, CUDL_ACT_RELU, 0.0f, &node);
  if (status == CUDL_OK)
    status = cudl_model_add_dropout(m, node, dropout, &node);
  if (status == CUDL_OK)
    status = cudl_model_add_linear(m, node, "fc2", classes, 1, &node);
  return finish(m, node, status, out);
}

/* ---- ResNet ---- */

/* "<prefix>.<suffix>" into buf (names here are short; see NAME_SIZE). */
static const char *join(char *buf, size_t size, const char *prefix,
                        const char *suffix) {
  snprintf(buf, size, "%s.%s", prefix, suffix);
  return buf;
}

/* conv (k x k, stride, pad (k - 1) / 2, no bias) + batch norm. */
static cudl_status conv_bn(cudl_model *m, int input, const char *conv,
                           const char *bn, int64_t filters, int k, int stride,
                           int *node) {
  cudl_conv2d_desc desc = CUDL_CONV2D_DESC_DEFAULT;
  cudl_status status;
  desc.stride_h = desc.stride_w = stride;
  desc.pad_h = desc.pad_w = (k - 1) / 2;
  status = cudl_model_add_conv2d(m, input, conv, filters, k, k, &desc, 0, node);
  if (status == CUDL_OK)
    status = cudl_model_add_batchnorm(m, *node, bn, 0.1f, 1e-5f, node);
  return status;
}

/* One BasicBlock named `prefix` ("layer2.0") from `input` with in_channels
 * channels to `filters` channels at `stride`. */
static cudl_status basic_block(cudl_model *m, int input, const char *prefix,
                               int64_t in_channels, int64_t filters, int stride,
                               int plain, int *node) {
  char a[64], b[64];
  int main_path, shortcut = input;
  cudl_status status;
  status =
      conv_bn(m, input, join(a, sizeof a, prefix, "conv1"),
              join(b, sizeof b, prefix, "bn1"), filters, 3, stride, &main_path);
  if (status == CUDL_OK)
    status = cudl_model_add_activation(m, main_path, CUDL_ACT_RELU, 0.0f,
                                       &main_path);
  if (status == CUDL_OK)
    status =
        conv_bn(m, main_path, join(a, sizeof a, prefix, "conv2"),
                join(b, sizeof b, prefix, "bn2"), filters, 3, 1, &main_path);
  if (status == CUDL_OK && !plain) {
    if (stride != 1 || in_channels != filters)
      status = conv_bn(m, input, join(a, sizeof a, prefix, "downsample.0"),
                       join(b, sizeof b, prefix, "downsample.1"), filters, 1,
                       stride, &shortcut);
    if (status == CUDL_OK)
      status = cudl_model_add_add(m, main_path, shortcut, &main_path);
  }
  if (status == CUDL_OK)
    status = cudl_model_add_activation(m, main_path, CUDL_ACT_RELU, 0.0f, node);
  return status;
}

int cudl_zoo_resnet_depth_valid(int depth) {
  return depth >= 8 && depth <= CUDL_ZOO_RESNET_MAX_DEPTH &&
         (depth - 2) % 6 == 0;
}

cudl_status cudl_zoo_resnet(cudl_context *ctx, int depth, int plain,
                            int64_t channels, int64_t height, int64_t width,
                            int64_t classes, cudl_model **out) {
  static const int64_t stage_filters[3] = {16, 32, 64};
  cudl_model *m = NULL;
  char prefix[32];
  int64_t in_channels = 16;
  int blocks, stage, block, node = 0;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!cudl_zoo_resnet_depth_valid(depth))
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "depth %d is not 6n + 2 in [8, %d] (20, 32, 44, 56, "
                     "110, ...)",
                     depth, CUDL_ZOO_RESNET_MAX_DEPTH);
  status = check_image(ctx, __func__, channels, height, width, 1, classes, out);
  if (status != CUDL_OK) return status;
  blocks = (depth - 2) / 6;
  status = create_image_model(ctx, channels, height, width, &m);
  if (status != CUDL_OK) return status;
  status = conv_bn(m, 0, "conv1", "bn1", 16, 3, 1, &node);
  if (status == CUDL_OK)
    status = cudl_model_add_activation(m, node, CUDL_ACT_RELU, 0.0f, &node);
  for (stage = 0; stage < 3 && status == CUDL_OK; ++stage)
    for (block = 0; block < blocks && status == CUDL_OK; ++block) {
      const int stride = stage > 0 && block == 0 ? 2 : 1;
      snprintf(prefix, sizeof prefix, "layer%d.%d", stage + 1, block);
      status = basic_block(m, node, prefix, in_channels, stage_filters[stage],
                           stride, plain, &node);
      in_channels = stage_filters[stage];
    }
  if (status == CUDL_OK)
    status = cudl_model_add_global_avg_pool(m, node, &node);
  if (status == CUDL_OK) status = cudl_model_add_flatten(m, node, &node);
  if (status == CUDL_OK)
    status = cudl_model_add_linear(m, node, "fc", classes, 1, &node);
  return finish(m, node, status, out);
}
