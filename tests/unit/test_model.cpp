// Tests of the model graph (cudl/nn.h): building and shape inference,
// compiling, parameter names and arenas, forward/backward against central
// finite differences through whole graphs (convolution, batch norm, PReLU,
// pooling, residual add, flatten, linear, dropout, RReLU), partial batches,
// and the textbook experiments: XOR learned by an MLP, and zero
// initialisation leaving hidden units identical.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::HasSubstr;

class ModelTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK);
  }
  void TearDown() override {
    for (cudl_tensor *t : tensors_) cudl_tensor_destroy(t);
    for (cudl_model *m : models_) cudl_model_destroy(m);
    cudl_context_destroy(ctx_);
  }
  cudl_tensor *Tensor(std::vector<int64_t> shape,
                      cudl_dtype dtype = CUDL_DTYPE_F32) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx_, dtype, (int)shape.size(), shape.data(),
                                 &t),
              CUDL_OK);
    tensors_.push_back(t);
    return t;
  }
  cudl_model *Model(std::vector<int64_t> input) {
    cudl_model *m = nullptr;
    EXPECT_EQ(cudl_model_create(ctx_, (int)input.size(), input.data(), &m),
              CUDL_OK);
    models_.push_back(m);
    return m;
  }
  static std::vector<float> Host(const cudl_tensor *t) {
    std::vector<float> v(cudl_tensor_numel(t));
    EXPECT_EQ(cudl_tensor_copy_to_host(t, v.data(), v.size() * sizeof(float)),
              CUDL_OK);
    return v;
  }
  static void Set(cudl_tensor *t, const std::vector<float> &v) {
    ASSERT_EQ(cudl_tensor_copy_from_host(t, v.data(), v.size() * sizeof(float)),
              CUDL_OK);
  }
  std::string Error() const { return cudl_context_last_error(ctx_); }

  // Compare the model's gradients with central differences of its loss
  // on every trainable parameter element (every 7th of large tensors);
  // returns how many were checked. Dropout and RReLU draw from the
  // context's generator, so its state is reset before every forward to
  // keep their masks fixed.
  int CheckGradients(cudl_model *m, cudl_tensor *x, cudl_tensor *labels) {
  uint64_t seed = 0, offset = 0;
  EXPECT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
  auto loss_at = [&]() {
    float loss = 0.0f;
    EXPECT_EQ(cudl_context_set_rng_state(ctx_, seed, offset), CUDL_OK);
    EXPECT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK) << Error();
    return (double)loss;
  };
  const double base = loss_at();
  EXPECT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
  // The running statistics moved during those forwards; restore nothing:
  // they do not enter the training-mode loss.
  const std::vector<float> grads = Host(cudl_model_grads(m));
  cudl_tensor *params = cudl_model_params(m);
  std::vector<float> p0 = Host(params);
  const float h = 1e-2f;
  int checked = 0;
  for (int i = 0; i < cudl_model_param_count(m); ++i) {
    int trainable = 0;
    const char *name = cudl_model_param_name(m, i, &trainable);
    if (!trainable) continue;
    cudl_tensor *view = cudl_model_param(m, name);
    const int64_t offset_floats =
        (static_cast<const float *>(cudl_tensor_data(view)) -
         static_cast<const float *>(cudl_tensor_data(params)));
    const int64_t n = cudl_tensor_numel(view);
    for (int64_t j = 0; j < n; j += (n > 40 ? 7 : 1)) {
      std::vector<float> p = p0;
      p[offset_floats + j] = p0[offset_floats + j] + h;
      Set(params, p);
      const double up = loss_at();
      p[offset_floats + j] = p0[offset_floats + j] - h;
      Set(params, p);
      const double down = loss_at();
      const double fd = (up - down) / (2.0 * h);
      const double g = grads[offset_floats + j];
      EXPECT_NEAR(g, fd, 2e-3 + 2e-2 * std::fabs(fd))
          << name << "[" << j << "], loss " << base;
      ++checked;
    }
  }
  Set(params, p0);
    return checked;
  }

  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> tensors_;
  std::vector<cudl_model *> models_;
};

cudl_conv2d_desc Conv(int stride, int pad) {
  cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
  d.stride_h = d.stride_w = stride;
  d.pad_h = d.pad_w = pad;
  return d;
}

TEST_F(ModelTest, ShapesAndParameterNamesFollowPyTorch) {
  cudl_model *m = Model({3, 32, 32});
  int conv1, bn1, relu, pool, gap, flat, fc;
  const cudl_conv2d_desc d = Conv(1, 1);
  ASSERT_EQ(cudl_model_add_conv2d(m, 0, "conv1", 16, 3, 3, &d, 0, &conv1),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_batchnorm(m, conv1, "bn1", 0.1f, 1e-5f, &bn1),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, bn1, CUDL_ACT_RELU, 0.0f, &relu),
            CUDL_OK);
  cudl_pool2d_desc p = {2, 2, 2, 2, 0, 0, 0, 0};
  ASSERT_EQ(cudl_model_add_pool2d(m, relu, 1, &p, &pool), CUDL_OK);
  ASSERT_EQ(cudl_model_add_global_avg_pool(m, pool, &gap), CUDL_OK);
  ASSERT_EQ(cudl_model_add_flatten(m, gap, &flat), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, flat, "fc", 10, 1, &fc), CUDL_OK);
  int64_t shape[3];
  ASSERT_EQ(cudl_model_node_shape(m, pool, shape), 3);
  EXPECT_EQ(shape[0], 16);
  EXPECT_EQ(shape[1], 16);
  EXPECT_EQ(shape[2], 16);
  ASSERT_EQ(cudl_model_node_shape(m, flat, shape), 1);
  EXPECT_EQ(shape[0], 16);
  ASSERT_EQ(cudl_model_set_output(m, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY),
            CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 8), CUDL_OK);

  const char *expected[] = {"conv1.weight",     "bn1.weight", "bn1.bias",
                            "fc.weight",        "fc.bias",    "bn1.running_mean",
                            "bn1.running_var"};
  ASSERT_EQ(cudl_model_param_count(m), 7);
  for (int i = 0; i < 7; ++i) {
    int trainable = -1;
    const char *name = cudl_model_param_name(m, i, &trainable);
    ASSERT_NE(name, nullptr);
    EXPECT_STREQ(name, expected[i]);
    EXPECT_EQ(trainable, i < 5 ? 1 : 0) << name;
  }
  EXPECT_EQ(cudl_model_param_name(m, 7, nullptr), nullptr);
  cudl_tensor *w = cudl_model_param(m, "conv1.weight");
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(cudl_tensor_dim(w, 0), 16);
  EXPECT_EQ(cudl_tensor_dim(w, 1), 3);
  EXPECT_EQ(cudl_model_grad(m, "bn1.running_mean"), nullptr);
  EXPECT_EQ(cudl_model_param(m, "conv1.bias"), nullptr);
  // Parameters are views into one arena: 432 + 16 + 16 + 160 + 10 scalars,
  // each rounded up to 16 floats.
  EXPECT_EQ(cudl_tensor_numel(cudl_model_params(m)),
            432 + 16 + 16 + 160 + 16);
  // Compiled: gamma and running variance 1, the rest 0.
  for (float v : Host(cudl_model_param(m, "bn1.weight"))) EXPECT_EQ(v, 1.0f);
  for (float v : Host(cudl_model_param(m, "bn1.running_var")))
    EXPECT_EQ(v, 1.0f);
  // Writing a parameter view writes the arena.
  ASSERT_EQ(cudl_tensor_fill(cudl_model_param(m, "fc.bias"), 3.0f), CUDL_OK);
  std::vector<float> arena = Host(cudl_model_params(m));
  EXPECT_EQ(arena[432 + 16 + 16 + 160], 3.0f);
}

TEST_F(ModelTest, BuildingErrorsLeaveTheModelUsable) {
  cudl_model *m = Model({1, 8, 8});
  int node = -1, conv;
  const cudl_conv2d_desc d = Conv(1, 1);
  EXPECT_EQ(cudl_model_add_conv2d(m, 5, "c", 4, 3, 3, &d, 1, &node),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "does not exist"));
  ASSERT_EQ(cudl_model_add_conv2d(m, 0, "c", 4, 3, 3, &d, 1, &conv), CUDL_OK);
  EXPECT_EQ(cudl_model_add_conv2d(m, conv, "c", 4, 3, 3, &d, 1, &node),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "already used"));
  EXPECT_EQ(cudl_model_add_conv2d(m, conv, "", 4, 3, 3, &d, 1, &node),
            CUDL_ERR_INVALID_ARGUMENT);
  cudl_conv2d_desc big = Conv(1, 0);
  EXPECT_NE(cudl_model_add_conv2d(m, conv, "c2", 4, 9, 9, &big, 1, &node),
            CUDL_OK);
  EXPECT_EQ(cudl_model_add_dropout(m, conv, 1.5f, &node),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_rrelu(m, conv, 0.5f, 0.1f, &node),
            CUDL_ERR_INVALID_ARGUMENT);
  int flat, fc;
  ASSERT_EQ(cudl_model_add_flatten(m, conv, &flat), CUDL_OK);
  EXPECT_EQ(cudl_model_add_add(m, conv, flat, &node), CUDL_ERR_SHAPE);
  // Convolution and pooling read images; a flattened node is none.
  const cudl_pool2d_desc pd = {2, 2, 2, 2, 0, 0, 0, 0};
  EXPECT_EQ(cudl_model_add_conv2d(m, flat, "c3", 4, 3, 3, &d, 1, &node), CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(Error(), "is not an image"));
  EXPECT_EQ(cudl_model_add_pool2d(m, flat, 1, &pd, &node), CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(Error(), "cudl_model_add_pool2d"));
  EXPECT_EQ(cudl_model_add_global_avg_pool(m, flat, &node), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_model_set_output(m, conv, CUDL_MODEL_LOSS_CROSS_ENTROPY),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_model_compile(m, 4), CUDL_ERR_INVALID_ARGUMENT)
      << "no output yet";
  ASSERT_EQ(cudl_model_add_linear(m, flat, "fc", 3, 1, &fc), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY),
            CUDL_OK);
  EXPECT_EQ(cudl_model_compile(m, 0), CUDL_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(cudl_model_compile(m, 4), CUDL_OK);
  EXPECT_EQ(cudl_model_compile(m, 4), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_flatten(m, fc, &node), CUDL_ERR_INVALID_ARGUMENT);
  // Running: wrong shapes and rows.
  float loss = 0.0f;
  cudl_tensor *x_bad = Tensor({4, 2, 8, 8});
  cudl_tensor *x = Tensor({4, 1, 8, 8});
  cudl_tensor *x_big = Tensor({5, 1, 8, 8});
  cudl_tensor *labels = Tensor({4}, CUDL_DTYPE_I32);
  cudl_tensor *labels_f = Tensor({4});
  EXPECT_EQ(cudl_model_forward(m, x_bad, labels, &loss), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_model_forward(m, x_big, labels, &loss), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_model_forward(m, x, labels_f, &loss), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_model_backward(m), CUDL_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK);
  EXPECT_EQ(cudl_model_backward(m), CUDL_ERR_INVALID_ARGUMENT)
      << "no target, no loss to differentiate";
  ASSERT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK);
  EXPECT_NEAR(loss, std::log(3.0f), 1e-6) << "zero weights: uniform logits";
  EXPECT_EQ(cudl_model_backward(m), CUDL_OK);
}

// A graph of smooth layers (so that finite differences are exact enough):
// convolutions with and without bias, batch norm, ELU, a residual add,
// average pooling, a dead branch, flatten, linear, dropout, tanh.
TEST_F(ModelTest, GradientsMatchFiniteDifferencesThroughTheWholeGraph) {
  cudl_model *m = Model({2, 6, 6});
  int c1, bn, el, c2, add, pool, sg, gap, flat, fc1, dr, act, fc2;
  const cudl_conv2d_desc same = Conv(1, 1);
  ASSERT_EQ(cudl_model_add_conv2d(m, 0, "conv1", 3, 3, 3, &same, 1, &c1),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_batchnorm(m, c1, "bn1", 0.1f, 1e-5f, &bn), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, bn, CUDL_ACT_ELU, 1.0f, &el), CUDL_OK);
  ASSERT_EQ(cudl_model_add_conv2d(m, el, "conv2", 3, 3, 3, &same, 0, &c2),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_add(m, c2, c1, &add), CUDL_OK);  // residual
  cudl_pool2d_desc pd = {2, 2, 2, 2, 0, 0, 0, 0};
  ASSERT_EQ(cudl_model_add_pool2d(m, add, 0, &pd, &pool), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, pool, CUDL_ACT_SIGMOID, 0.0f, &sg), CUDL_OK);
  ASSERT_EQ(cudl_model_add_global_avg_pool(m, sg, &gap), CUDL_OK);
  ASSERT_EQ(cudl_model_add_flatten(m, sg, &flat), CUDL_OK);
  (void)gap;  // a dead branch: no gradient may reach it
  ASSERT_EQ(cudl_model_add_linear(m, flat, "fc1", 5, 1, &fc1), CUDL_OK);
  ASSERT_EQ(cudl_model_add_dropout(m, fc1, 0.3f, &dr), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, dr, CUDL_ACT_TANH, 0.0f, &act),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, act, "fc2", 4, 1, &fc2), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, fc2, CUDL_MODEL_LOSS_CROSS_ENTROPY),
            CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 3), CUDL_OK);
  ASSERT_EQ(cudl_context_set_seed(ctx_, 7), CUDL_OK);
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK);
  // Non-trivial batch-norm affine parameters and biases.
  ASSERT_EQ(cudl_tensor_uniform(cudl_model_param(m, "bn1.weight"), 0.5f, 1.5f),
            CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(cudl_model_param(m, "bn1.bias"), -0.5f, 0.5f),
            CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(cudl_model_param(m, "fc1.bias"), -0.5f, 0.5f),
            CUDL_OK);

  cudl_tensor *x = Tensor({3, 2, 6, 6});
  ASSERT_EQ(cudl_tensor_normal(x, 0.0f, 1.0f), CUDL_OK);
  cudl_tensor *labels = Tensor({3}, CUDL_DTYPE_I32);
  const int32_t y[3] = {0, 3, 1};
  ASSERT_EQ(cudl_tensor_copy_from_host(labels, y, sizeof y), CUDL_OK);

  EXPECT_GT(CheckGradients(m, x, labels), 60);
}

// An Inception-like pair of branches joined by a concatenation, which also
// takes the stem itself (fan-out: the stem's gradient sums both branches'
// and its own part) and one branch twice; SiLU; ceil-mode average pooling;
// and reshapes through every way a reshape can meet the layout: a view, a
// [C, H, W] to [C', H', W'] with other channels, to 1-D and from 1-D back
// to an image. Returns the output node.
int BuildBranchNet(cudl_model *m) {
  int stem, a, b, sb, cat, pool, same_c, other_c, flat, image, d, flat2, fc;
  const cudl_conv2d_desc same = Conv(1, 1), one = Conv(1, 0);
  EXPECT_EQ(cudl_model_add_conv2d(m, 0, "stem", 4, 3, 3, &same, 1, &stem), CUDL_OK);
  EXPECT_EQ(cudl_model_add_conv2d(m, stem, "a", 2, 1, 1, &one, 1, &a), CUDL_OK);
  EXPECT_EQ(cudl_model_add_conv2d(m, stem, "b", 3, 3, 3, &same, 1, &b), CUDL_OK);
  EXPECT_EQ(cudl_model_add_activation(m, b, CUDL_ACT_SILU, 0.0f, &sb), CUDL_OK);
  const int parts[4] = {a, sb, stem, a};
  EXPECT_EQ(cudl_model_add_concat(m, 4, parts, &cat), CUDL_OK);  // [11, 6, 6]
  cudl_pool2d_desc pd = {3, 3, 2, 2, 1, 1, 0, 1};                 // ceil: 4x4
  EXPECT_EQ(cudl_model_add_pool2d(m, cat, 0, &pd, &pool), CUDL_OK);
  const int64_t s1[3] = {-1, 8, 2}, s2[3] = {4, 4, -1}, s3[1] = {176}, s4[3] = {2, 8, 11};
  EXPECT_EQ(cudl_model_add_reshape(m, pool, 3, s1, &same_c), CUDL_OK);     // [11, 8, 2]
  EXPECT_EQ(cudl_model_add_reshape(m, same_c, 3, s2, &other_c), CUDL_OK);  // [4, 4, 11]
  EXPECT_EQ(cudl_model_add_reshape(m, other_c, 1, s3, &flat), CUDL_OK);
  EXPECT_EQ(cudl_model_add_reshape(m, flat, 3, s4, &image), CUDL_OK);
  EXPECT_EQ(cudl_model_add_conv2d(m, image, "d", 3, 1, 1, &one, 1, &d), CUDL_OK);
  const int64_t s5[2] = {3, -1};
  EXPECT_EQ(cudl_model_add_reshape(m, d, 2, s5, &flat2), CUDL_OK);  // [3, 88]
  EXPECT_EQ(cudl_model_add_linear(m, flat2, "fc", 4, 1, &fc), CUDL_OK);
  EXPECT_EQ(cudl_model_set_output(m, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
  return fc;
}

TEST_F(ModelTest, ConcatAndReshapeShapesAndGradients) {
  for (cudl_layout layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
    SCOPED_TRACE(layout == CUDL_LAYOUT_NHWC ? "channels-last" : "NCHW");
    cudl_model *m = Model({2, 6, 6});
    BuildBranchNet(m);
    int64_t shape[3];
    EXPECT_EQ(cudl_model_node_shape(m, 5, shape), 3);  // the concat
    EXPECT_EQ(shape[0], 11);
    EXPECT_EQ(cudl_model_node_shape(m, 6, shape), 3);  // ceil-mode pooling
    EXPECT_EQ(shape[1], 4);
    EXPECT_EQ(shape[2], 4);
    EXPECT_EQ(cudl_model_node_shape(m, 8, shape), 3);  // [4, 4, 11]
    EXPECT_EQ(shape[0], 4);
    EXPECT_EQ(shape[2], 11);
    ASSERT_EQ(cudl_model_set_layout(m, layout), CUDL_OK);
    ASSERT_EQ(cudl_model_compile(m, 3), CUDL_OK) << Error();
    ASSERT_EQ(cudl_context_set_seed(ctx_, 11), CUDL_OK);
    ASSERT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK);
    for (const char *bias : {"stem.bias", "a.bias", "b.bias", "d.bias", "fc.bias"})
      ASSERT_EQ(cudl_tensor_uniform(cudl_model_param(m, bias), -0.5f, 0.5f), CUDL_OK);
    cudl_tensor *x = Tensor({3, 2, 6, 6});
    ASSERT_EQ(cudl_tensor_normal(x, 0.0f, 1.0f), CUDL_OK);
    cudl_tensor *labels = Tensor({3}, CUDL_DTYPE_I32);
    const int32_t y[3] = {2, 0, 3};
    ASSERT_EQ(cudl_tensor_copy_from_host(labels, y, sizeof y), CUDL_OK);
    // Every parameter, the stem's included (its gradient comes through all
    // four parts of the concatenation).
    EXPECT_GT(CheckGradients(m, x, labels), 150);
  }
}

// The same weights and batch give the same loss, output and gradients in
// both layouts: the reshapes list values in PyTorch's order either way.
TEST_F(ModelTest, ConcatAndReshapeSameInBothLayouts) {
  std::vector<float> loss(2), out[2], grads[2];
  std::vector<float> weights;
  for (int l = 0; l < 2; ++l) {
    cudl_model *m = Model({2, 6, 6});
    BuildBranchNet(m);
    ASSERT_EQ(cudl_model_set_layout(m, l ? CUDL_LAYOUT_NHWC : CUDL_LAYOUT_NCHW), CUDL_OK);
    ASSERT_EQ(cudl_model_compile(m, 3), CUDL_OK);
    ASSERT_EQ(cudl_model_set_diagnostics(m, 1), CUDL_OK);
    if (l == 0) {
      ASSERT_EQ(cudl_context_set_seed(ctx_, 5), CUDL_OK);
      ASSERT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK);
      ASSERT_EQ(cudl_tensor_uniform(cudl_model_param(m, "fc.bias"), -0.5f, 0.5f), CUDL_OK);
      weights = Host(cudl_model_params(m));
    } else {
      Set(cudl_model_params(m), weights);  // the NCHW masters, whatever the layout
    }
    cudl_tensor *x = Tensor({3, 2, 6, 6});
    std::vector<float> xs(3 * 2 * 6 * 6);
    for (size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37f * static_cast<float>(i));
    Set(x, xs);
    cudl_tensor *labels = Tensor({3}, CUDL_DTYPE_I32);
    const int32_t y[3] = {1, 3, 0};
    ASSERT_EQ(cudl_tensor_copy_from_host(labels, y, sizeof y), CUDL_OK);
    ASSERT_EQ(cudl_model_forward(m, x, labels, &loss[l]), CUDL_OK) << Error();
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
    out[l] = Host(cudl_model_output(m));
    grads[l] = Host(cudl_model_grads(m));
    // The kinds the diagnostics name: SiLU's and the concat's rows, no
    // reshape's (its values are its input's, as a flatten's).
    std::vector<cudl_layer_diagnostics> rows(static_cast<size_t>(cudl_model_node_count(m)));
    int count = 0;
    ASSERT_EQ(cudl_model_diagnostics(m, rows.data(), static_cast<int>(rows.size()), &count,
                                     nullptr),
              CUDL_OK);
    std::map<std::string, int> kinds;
    for (int i = 0; i < count; ++i) ++kinds[rows[static_cast<size_t>(i)].kind];
    EXPECT_EQ(kinds["silu"], 1);
    EXPECT_EQ(kinds["concat"], 1);
    EXPECT_EQ(kinds.count("reshape"), 0u);
    for (int i = 0; i < count; ++i)
      if (std::string(rows[static_cast<size_t>(i)].kind) == "silu") {
        EXPECT_TRUE(std::isnan(rows[static_cast<size_t>(i)].dead_fraction));
        EXPECT_TRUE(std::isnan(rows[static_cast<size_t>(i)].saturated_fraction));
      }
  }
  // The convolutions sum in another order in each layout (oneDNN): a few
  // ulp, far below what a misplaced element would change.
  EXPECT_NEAR(loss[0], loss[1], 1e-5 * std::fabs(loss[0]));
  ASSERT_EQ(out[0].size(), out[1].size());
  for (size_t i = 0; i < out[0].size(); ++i)
    EXPECT_NEAR(out[0][i], out[1][i], 1e-5 * (1 + std::fabs(out[0][i]))) << "output " << i;
  ASSERT_EQ(grads[0].size(), grads[1].size());
  for (size_t i = 0; i < grads[0].size(); ++i)
    EXPECT_NEAR(grads[0][i], grads[1][i], 1e-5 * (1 + std::fabs(grads[0][i]))) << "gradient " << i;
}

TEST_F(ModelTest, ConcatAndReshapeBadArgumentsLeaveTheModelUsable) {
  cudl_model *m = Model({2, 6, 6});
  int c, small, flat, node = -1;
  const cudl_conv2d_desc same = Conv(1, 1);
  ASSERT_EQ(cudl_model_add_conv2d(m, 0, "c", 3, 3, 3, &same, 1, &c), CUDL_OK);
  cudl_pool2d_desc pd = {2, 2, 2, 2, 0, 0, 0, 0};
  ASSERT_EQ(cudl_model_add_pool2d(m, c, 1, &pd, &small), CUDL_OK);
  ASSERT_EQ(cudl_model_add_flatten(m, c, &flat), CUDL_OK);
  const int count_before = cudl_model_node_count(m);
  const int two[2] = {0, c}, bad_size[2] = {c, small}, bad_rank[2] = {c, flat},
            missing[2] = {c, 99}, nine[9] = {c, c, c, c, c, c, c, c, c};
  EXPECT_EQ(cudl_model_add_concat(nullptr, 2, two, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_concat(m, 2, nullptr, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_concat(m, 2, two, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_concat(m, 1, two, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "2 to 8"));
  EXPECT_EQ(cudl_model_add_concat(m, 9, nine, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_concat(m, 2, missing, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "does not exist"));
  EXPECT_EQ(cudl_model_add_concat(m, 2, bad_size, &node), CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(Error(), "[3, 6, 6] and [3, 3, 3]")) << Error();
  EXPECT_EQ(cudl_model_add_concat(m, 2, bad_rank, &node), CUDL_ERR_SHAPE);
  const int64_t wrong[2] = {5, 20}, two_inferred[2] = {-1, -1}, zero[1] = {0},
                not_divisible[2] = {-1, 7}, ok[3] = {-1, 4, 9};
  EXPECT_EQ(cudl_model_add_reshape(nullptr, c, 2, wrong, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_reshape(m, c, 2, nullptr, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_reshape(m, c, 0, wrong, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_reshape(m, c, 4, wrong, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_reshape(m, 99, 2, wrong, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_reshape(m, c, 2, wrong, &node), CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(Error(), "[3, 6, 6]")) << Error();
  EXPECT_TRUE(HasSubstr(Error(), "[5, 20]")) << Error();
  EXPECT_EQ(cudl_model_add_reshape(m, c, 2, two_inferred, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_reshape(m, c, 1, zero, &node), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_add_reshape(m, c, 2, not_divisible, &node), CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(Error(), "[-1, 7]")) << Error();
  EXPECT_EQ(node, -1);
  EXPECT_EQ(cudl_model_node_count(m), count_before);
  // Still usable: the same calls done right, and a training step.
  int cat, r, fc;
  const int parts[2] = {c, c};
  ASSERT_EQ(cudl_model_add_concat(m, 2, parts, &cat), CUDL_OK);
  ASSERT_EQ(cudl_model_add_reshape(m, cat, 3, ok, &r), CUDL_OK);
  int64_t shape[3];
  EXPECT_EQ(cudl_model_node_shape(m, r, shape), 3);
  EXPECT_EQ(shape[0], 6);  // 6 * 6 * 6 / (4 * 9)
  ASSERT_EQ(cudl_model_add_flatten(m, r, &node), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, node, "fc", 2, 1, &fc), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 2), CUDL_OK) << Error();
  EXPECT_EQ(cudl_model_add_concat(m, 2, parts, &node), CUDL_ERR_INVALID_ARGUMENT)
      << "compiled";
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK);
  cudl_tensor *x = Tensor({2, 2, 6, 6});
  ASSERT_EQ(cudl_tensor_normal(x, 0.0f, 1.0f), CUDL_OK);
  cudl_tensor *labels = Tensor({2}, CUDL_DTYPE_I32);
  const int32_t y[2] = {1, 0};
  ASSERT_EQ(cudl_tensor_copy_from_host(labels, y, sizeof y), CUDL_OK);
  float loss = 0.0f;
  ASSERT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK) << Error();
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
}

// The layers with kinks (PReLU, RReLU, max pooling, ReLU) placed where no
// parameter perturbation moves their inputs across a kink: right after
// the data, whose values are kept at least 0.5 away from 0. PReLU's slope
// scales the negative side without changing signs or the order within a
// channel, so the max-pool choices stay put too.
TEST_F(ModelTest, GradientsThroughKinkedLayersMatchFiniteDifferences) {
  cudl_model *m = Model({2, 6, 6});
  int pr, rr, pool, c1, bn, relu, flat, fc;
  ASSERT_EQ(cudl_model_add_prelu(m, 0, "act0", 1, 0.25f, &pr), CUDL_OK);
  ASSERT_EQ(cudl_model_add_rrelu(m, pr, 0.3f, 0.6f, &rr), CUDL_OK);
  cudl_pool2d_desc pd = {2, 2, 2, 2, 0, 0, 0, 0};
  ASSERT_EQ(cudl_model_add_pool2d(m, rr, 1, &pd, &pool), CUDL_OK);
  const cudl_conv2d_desc same = Conv(1, 1);
  ASSERT_EQ(cudl_model_add_conv2d(m, pool, "conv1", 3, 3, 3, &same, 1, &c1),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_batchnorm(m, c1, "bn1", 0.1f, 1e-5f, &bn), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, bn, CUDL_ACT_TANH, 0.0f, &relu),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_flatten(m, relu, &flat), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, flat, "fc", 3, 1, &fc), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY),
            CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 3), CUDL_OK);
  ASSERT_EQ(cudl_context_set_seed(ctx_, 11), CUDL_OK);
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_PYTORCH_DEFAULT), CUDL_OK);
  cudl_tensor *x = Tensor({3, 2, 6, 6});
  std::vector<float> xs(3 * 2 * 6 * 6);
  for (size_t i = 0; i < xs.size(); ++i)  // |x| in [0.5, 1.5], mixed signs
    xs[i] = (0.5f + (float)((i * 37) % 11) / 10.0f) * ((i * 7) % 3 ? 1 : -1);
  Set(x, xs);
  cudl_tensor *labels = Tensor({3}, CUDL_DTYPE_I32);
  const int32_t y[3] = {2, 0, 1};
  ASSERT_EQ(cudl_tensor_copy_from_host(labels, y, sizeof y), CUDL_OK);
  EXPECT_GT(CheckGradients(m, x, labels), 30);
}

// The batch's rows can be fewer than the compiled maximum; in evaluation
// mode each row's output does not depend on the others.
TEST_F(ModelTest, PartialBatchesGiveTheSameRows) {
  cudl_model *m = Model({4});
  int fc1, bn, act, fc2;
  ASSERT_EQ(cudl_model_add_linear(m, 0, "fc1", 6, 1, &fc1), CUDL_OK);
  ASSERT_EQ(cudl_model_add_batchnorm(m, fc1, "bn", 0.1f, 1e-5f, &bn), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, bn, CUDL_ACT_ELU, 1.0f, &act),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, act, "fc2", 3, 1, &fc2), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, fc2, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 8), CUDL_OK);
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_XAVIER_NORMAL), CUDL_OK);
  cudl_tensor *x8 = Tensor({8, 4});
  ASSERT_EQ(cudl_tensor_uniform(x8, -1.0f, 1.0f), CUDL_OK);
  std::vector<float> all = Host(x8);
  cudl_tensor *x3 = Tensor({3, 4});
  Set(x3, std::vector<float>(all.begin(), all.begin() + 12));
  ASSERT_EQ(cudl_model_set_training(m, 0), CUDL_OK);
  ASSERT_EQ(cudl_model_forward(m, x8, nullptr, nullptr), CUDL_OK);
  std::vector<float> full = Host(cudl_model_output(m));
  ASSERT_EQ(cudl_model_forward(m, x3, nullptr, nullptr), CUDL_OK);
  std::vector<float> part = Host(cudl_model_output(m));
  ASSERT_EQ(part.size(), 9u);
  for (size_t i = 0; i < part.size(); ++i) EXPECT_EQ(part[i], full[i]) << i;
  // Training with 3 rows: a loss and gradients, and then 8 again.
  ASSERT_EQ(cudl_model_set_training(m, 1), CUDL_OK);
  cudl_tensor *t3 = Tensor({3, 3});
  float loss = -1.0f;
  ASSERT_EQ(cudl_model_forward(m, x3, t3, &loss), CUDL_OK) << Error();
  EXPECT_GT(loss, 0.0f);
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
  cudl_tensor *t8 = Tensor({8, 3});
  ASSERT_EQ(cudl_model_forward(m, x8, t8, &loss), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
}

// Plain gradient descent on the model's arenas (no optimizer object, so
// that this test depends on the graph only).
void SgdStep(cudl_context *ctx, cudl_model *m, float lr) {
  ASSERT_EQ(cudl_add(ctx, cudl_model_params(m), -lr, cudl_model_grads(m),
                     cudl_model_params(m)),
            CUDL_OK);
}

// The chapter's first network: XOR is not linearly separable, but a
// 2-4-1 multilayer perceptron with tanh hidden units learns it.
TEST_F(ModelTest, MlpLearnsXor) {
  cudl_model *m = Model({2});
  int h, act, out;
  ASSERT_EQ(cudl_model_add_linear(m, 0, "hidden", 4, 1, &h), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, h, CUDL_ACT_TANH, 0.0f, &act),
            CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, act, "out", 1, 1, &out), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, out, CUDL_MODEL_LOSS_BCE_WITH_LOGITS),
            CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 4), CUDL_OK);
  ASSERT_EQ(cudl_context_set_seed(ctx_, 1), CUDL_OK);
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_XAVIER_UNIFORM), CUDL_OK);
  cudl_tensor *x = Tensor({4, 2});
  cudl_tensor *t = Tensor({4, 1});
  Set(x, {0, 0, 0, 1, 1, 0, 1, 1});
  Set(t, {0, 1, 1, 0});
  float loss = 0.0f;
  for (int step = 0; step < 2000; ++step) {
    ASSERT_EQ(cudl_model_forward(m, x, t, &loss), CUDL_OK);
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
    SgdStep(ctx_, m, 0.5f);
  }
  EXPECT_LT(loss, 0.05f);
  // The loss where it was computed: the value forward read back.
  const cudl_tensor *loss_value = cudl_model_loss_value(m);
  ASSERT_NE(loss_value, nullptr);
  EXPECT_EQ(cudl_tensor_ndim(loss_value), 0);
  EXPECT_TRUE(cudl_test::BitEqual(Host(loss_value), {loss}));
  ASSERT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK);
  EXPECT_EQ(cudl_model_loss_value(m), nullptr) << "a forward without a target has no loss";
  EXPECT_EQ(cudl_model_loss_value(nullptr), nullptr);
  std::vector<float> logits = Host(cudl_model_output(m));
  EXPECT_LT(logits[0], 0.0f);
  EXPECT_GT(logits[1], 0.0f);
  EXPECT_GT(logits[2], 0.0f);
  EXPECT_LT(logits[3], 0.0f);
}

// Why zero initialisation fails: every hidden unit computes the same
// function and receives the same gradient, so after training they are
// still identical; a random start breaks the symmetry.
TEST_F(ModelTest, ZeroInitialisationKeepsHiddenUnitsIdentical) {
  for (cudl_init_scheme scheme : {CUDL_INIT_ZEROS, CUDL_INIT_KAIMING_NORMAL}) {
    SCOPED_TRACE(scheme == CUDL_INIT_ZEROS ? "zeros" : "kaiming");
    cudl_model *m = Model({3});
    int h, act, out;
    ASSERT_EQ(cudl_model_add_linear(m, 0, "hidden", 5, 1, &h), CUDL_OK);
    ASSERT_EQ(cudl_model_add_activation(m, h, CUDL_ACT_SIGMOID, 0.0f, &act),
              CUDL_OK);
    ASSERT_EQ(cudl_model_add_linear(m, act, "out", 2, 1, &out), CUDL_OK);
    ASSERT_EQ(cudl_model_set_output(m, out, CUDL_MODEL_LOSS_MSE), CUDL_OK);
    ASSERT_EQ(cudl_model_compile(m, 6), CUDL_OK);
    ASSERT_EQ(cudl_context_set_seed(ctx_, 3), CUDL_OK);
    ASSERT_EQ(cudl_model_init(m, scheme), CUDL_OK);
    cudl_tensor *x = Tensor({6, 3});
    cudl_tensor *t = Tensor({6, 2});
    ASSERT_EQ(cudl_tensor_uniform(x, -1.0f, 1.0f), CUDL_OK);
    ASSERT_EQ(cudl_tensor_uniform(t, -1.0f, 1.0f), CUDL_OK);
    float first = 0.0f, loss = 0.0f;
    for (int step = 0; step < 200; ++step) {
      ASSERT_EQ(cudl_model_forward(m, x, t, &loss), CUDL_OK);
      if (step == 0) first = loss;
      ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
      SgdStep(ctx_, m, 0.5f);
    }
    EXPECT_LT(loss, first) << "training must still lower the loss";
    // Hidden weights: 5 rows of 3; identical rows <=> identical units.
    std::vector<float> w = Host(cudl_model_param(m, "hidden.weight"));
    std::vector<float> hidden = Host(cudl_model_node_output(m, act));
    float spread = 0.0f;
    for (int u = 1; u < 5; ++u)
      for (int k = 0; k < 3; ++k)
        spread = std::max(spread, std::fabs(w[u * 3 + k] - w[k]));
    for (int r = 0; r < 6; ++r)
      for (int u = 1; u < 5; ++u)
        spread = std::max(spread, std::fabs(hidden[r * 5 + u] - hidden[r * 5]));
    if (scheme == CUDL_INIT_ZEROS)
      EXPECT_EQ(spread, 0.0f) << "the units must stay exactly identical";
    else
      EXPECT_GT(spread, 0.1f) << "random units must differ";
  }
}

TEST_F(ModelTest, FirstNonFiniteNamesTheLayer) {
  cudl_model *m = Model({2});
  int a, b, c;
  ASSERT_EQ(cudl_model_add_linear(m, 0, "fc1", 3, 1, &a), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, a, CUDL_ACT_RELU, 0.0f, &b), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, b, "fc2", 2, 1, &c), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, c, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 2), CUDL_OK);
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_XAVIER_UNIFORM), CUDL_OK);
  cudl_tensor *x = Tensor({2, 2});
  Set(x, {1, 2, 3, 4});
  ASSERT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK);
  int node = 99;
  const char *what = nullptr;
  ASSERT_EQ(cudl_model_first_nonfinite(m, &node, &what), CUDL_OK);
  EXPECT_EQ(node, -1);
  ASSERT_EQ(cudl_tensor_fill(cudl_model_param(m, "fc1.bias"), INFINITY),
            CUDL_OK);
  ASSERT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK);
  ASSERT_EQ(cudl_model_first_nonfinite(m, &node, &what), CUDL_OK);
  EXPECT_EQ(node, a);
  EXPECT_STREQ(what, "fc1");
}

TEST_F(ModelTest, CountNonFiniteCountsNanAndInfinities) {
  for (int64_t n : {int64_t{0}, int64_t{1}, int64_t{37}, (int64_t{1} << 20) + 3}) {
    cudl_tensor *x = Tensor({n});
    std::vector<float> v(static_cast<size_t>(n), 1.5f);
    int64_t want_nan = 0, want_inf = 0;
    for (size_t i = 0; i < v.size(); i += 5) {
      v[i] = (i / 5) % 3 == 0 ? NAN : (i / 5) % 3 == 1 ? INFINITY : -INFINITY;
      ++((i / 5) % 3 == 0 ? want_nan : want_inf);
    }
    if (n > 0) Set(x, v);
    int64_t nan = -1, inf = -1;
    ASSERT_EQ(cudl_count_nonfinite(ctx_, x, &nan, &inf), CUDL_OK);
    EXPECT_EQ(nan, want_nan) << n;
    EXPECT_EQ(inf, want_inf) << n;
  }
  int64_t nan = 0, inf = 0;
  EXPECT_EQ(cudl_count_nonfinite(ctx_, nullptr, &nan, &inf), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_count_nonfinite(ctx_, Tensor({2}), nullptr, &inf), CUDL_ERR_INVALID_ARGUMENT);
}

// A linear layer whose output (1e19) and loss (1e38) are finite, while the
// weight gradient dloss/dy * x = 2e19 * 1e20 overflows: check-numerics mode
// names the parameter, and so does the cheap gradient check.
TEST_F(ModelTest, CheckNumericsNamesWhereValuesStopBeingFinite) {
  cudl_model *m = Model({4});
  int fc, act;
  ASSERT_EQ(cudl_model_add_linear(m, 0, "fc", 1, 1, &fc), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, fc, CUDL_ACT_RELU, 0.0f, &act), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, act, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 1), CUDL_OK);
  Set(cudl_model_param(m, "fc.weight"), {0.1f, 0.0f, 0.0f, 0.0f});
  cudl_tensor *x = Tensor({1, 4}), *target = Tensor({1, 1});
  Set(x, {1e20f, 0.0f, 0.0f, 0.0f});
  Set(target, {0.0f});
  cudl_numerics_report r;
  // Off: the step goes through, and the gradient check finds the overflow.
  float loss = 0.0f;
  ASSERT_EQ(cudl_model_forward(m, x, target, &loss), CUDL_OK);
  EXPECT_TRUE(std::isfinite(loss));
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
  ASSERT_EQ(cudl_model_check_gradients(m, &r), CUDL_OK);
  EXPECT_EQ(r.node, fc);
  EXPECT_STREQ(r.layer, "fc.weight");
  EXPECT_STREQ(r.what, "parameter gradient");
  EXPECT_EQ(r.step, 0);
  EXPECT_EQ(r.nan_count, 0);
  EXPECT_EQ(r.inf_count, 1);
  EXPECT_EQ(r.numel, 4);
  EXPECT_EQ(r.total_nan, 0);
  EXPECT_EQ(r.total_inf, 1);
  // On: the backward stops at the weight gradient with CUDL_ERR_NUMERICS.
  ASSERT_EQ(cudl_model_set_check_numerics(m, 1), CUDL_OK);
  ASSERT_EQ(cudl_model_numerics_report(m, &r), CUDL_OK);
  EXPECT_EQ(r.node, -1);
  ASSERT_EQ(cudl_model_forward(m, x, target, &loss), CUDL_OK);
  EXPECT_EQ(cudl_model_backward(m), CUDL_ERR_NUMERICS);
  const std::string message = cudl_context_last_error(ctx_);
  EXPECT_NE(message.find("step 1"), std::string::npos) << message;
  EXPECT_NE(message.find("fc.weight"), std::string::npos) << message;
  EXPECT_NE(message.find("1 infinite of 4"), std::string::npos) << message;
  ASSERT_EQ(cudl_model_numerics_report(m, &r), CUDL_OK);
  EXPECT_EQ(r.node, fc);
  EXPECT_STREQ(r.what, "parameter gradient");
  EXPECT_EQ(r.step, 1);
  EXPECT_EQ(r.inf_count, 1);
  // A NaN input stops the forward at the first node it reaches, before the
  // loss is computed.
  Set(x, {NAN, 1.0f, 1.0f, 1.0f});
  EXPECT_EQ(cudl_model_forward(m, x, target, &loss), CUDL_ERR_NUMERICS);
  ASSERT_EQ(cudl_model_numerics_report(m, &r), CUDL_OK);
  EXPECT_EQ(r.node, fc);
  EXPECT_STREQ(r.layer, "fc");
  EXPECT_STREQ(r.what, "output");
  EXPECT_EQ(r.nan_count, 1);
  // An overflowing loss is named as the loss.
  Set(x, {1e21f, 0.0f, 0.0f, 0.0f});
  EXPECT_EQ(cudl_model_forward(m, x, target, &loss), CUDL_ERR_NUMERICS);
  ASSERT_EQ(cudl_model_numerics_report(m, &r), CUDL_OK);
  EXPECT_STREQ(r.what, "loss");
  EXPECT_EQ(r.inf_count, 1);
  // Finite values pass, and switching off stops the checks.
  Set(x, {1.0f, 2.0f, 3.0f, 4.0f});
  ASSERT_EQ(cudl_model_forward(m, x, target, &loss), CUDL_OK);
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
  ASSERT_EQ(cudl_model_set_check_numerics(m, 0), CUDL_OK);
  Set(x, {NAN, 1.0f, 1.0f, 1.0f});
  EXPECT_EQ(cudl_model_forward(m, x, target, &loss), CUDL_OK);
  EXPECT_EQ(cudl_model_set_check_numerics(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_numerics_report(m, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_check_gradients(m, nullptr), CUDL_ERR_INVALID_ARGUMENT);
}

TEST_F(ModelTest, SaveAndLoadByName) {
  auto build = [&](int64_t hidden) {
    cudl_model *m = Model({4});
    int fc1, bn, fc2;
    EXPECT_EQ(cudl_model_add_linear(m, 0, "fc1", hidden, 1, &fc1), CUDL_OK);
    EXPECT_EQ(cudl_model_add_batchnorm(m, fc1, "bn1", 0.1f, 1e-5f, &bn),
              CUDL_OK);
    EXPECT_EQ(cudl_model_add_linear(m, bn, "fc2", 2, 1, &fc2), CUDL_OK);
    EXPECT_EQ(cudl_model_set_output(m, fc2, CUDL_MODEL_LOSS_MSE), CUDL_OK);
    EXPECT_EQ(cudl_model_compile(m, 2), CUDL_OK);
    return m;
  };
  const char *tmp = std::getenv("CUDL_TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : ".";
  const std::string path = dir + "/model_io_test.safetensors";
  cudl_model *a = build(5);
  ASSERT_EQ(cudl_context_set_seed(ctx_, 5), CUDL_OK);
  ASSERT_EQ(cudl_model_init(a, CUDL_INIT_KAIMING_NORMAL), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(cudl_model_param(a, "bn1.running_mean"), 0.5f),
            CUDL_OK);
  const cudl_metadata_pair meta[] = {{"epoch", "3"}};
  ASSERT_EQ(cudl_model_save(a, path.c_str(), meta, 1), CUDL_OK) << Error();

  cudl_model *b = build(5);
  ASSERT_EQ(cudl_model_load(b, path.c_str(), 1), CUDL_OK) << Error();
  for (int i = 0; i < cudl_model_param_count(a); ++i) {
    const char *name = cudl_model_param_name(a, i, nullptr);
    EXPECT_EQ(Host(cudl_model_param(a, name)), Host(cudl_model_param(b, name)))
        << name;
  }
  // A model of another shape: nothing changes, and the name is given.
  cudl_model *c = build(6);
  const std::vector<float> before = Host(cudl_model_params(c));
  EXPECT_EQ(cudl_model_load(c, path.c_str(), 0), CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(Error(), "fc1.weight"));
  EXPECT_EQ(Host(cudl_model_params(c)), before);
  // Strict loading rejects entries the model does not have, except
  // PyTorch's batch-norm counters, which are I64 (skipped on load).
  cudl_safetensors *set = nullptr;
  ASSERT_EQ(cudl_safetensors_load(ctx_, path.c_str(), 0, &set), CUDL_OK);
  std::vector<cudl_named_tensor> entries;
  for (size_t i = 0; i < cudl_safetensors_count(set); ++i) {
    cudl_safetensors_entry e;
    ASSERT_EQ(cudl_safetensors_entry_query(set, i, &e), CUDL_OK);
    entries.push_back({e.name, cudl_safetensors_tensor(set, i)});
  }
  cudl_tensor *extra = Tensor({1});
  entries.push_back({"head.weight", extra});
  const std::string path2 = dir + "/model_io_extra.safetensors";
  ASSERT_EQ(cudl_safetensors_save(ctx_, path2.c_str(), entries.data(),
                                  entries.size(), nullptr, 0),
            CUDL_OK);
  cudl_safetensors_destroy(set);
  EXPECT_EQ(cudl_model_load(b, path2.c_str(), 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "head.weight"));
  EXPECT_EQ(cudl_model_load(b, path2.c_str(), 0), CUDL_OK);

  // A PyTorch-style file: an I64 num_batches_tracked next to the f32
  // tensors. Written by hand: header, then the data.
  {
    std::vector<cudl_named_tensor> f32;
    ASSERT_EQ(cudl_safetensors_load(ctx_, path.c_str(), 0, &set), CUDL_OK);
    std::string header = "{";
    std::vector<char> data(8, 0);  // num_batches_tracked = 0
    header += "\"bn1.num_batches_tracked\":{\"dtype\":\"I64\",\"shape\":[],"
              "\"data_offsets\":[0,8]}";
    for (size_t i = 0; i < cudl_safetensors_count(set); ++i) {
      cudl_safetensors_entry e;
      ASSERT_EQ(cudl_safetensors_entry_query(set, i, &e), CUDL_OK);
      std::vector<float> v = Host(cudl_safetensors_tensor(set, i));
      header += ",\"" + std::string(e.name) + "\":{\"dtype\":\"F32\",\"shape\":[";
      for (int d = 0; d < e.ndim; ++d)
        header += (d ? "," : "") + std::to_string(e.shape[d]);
      const size_t begin = data.size();
      data.insert(data.end(), reinterpret_cast<char *>(v.data()),
                  reinterpret_cast<char *>(v.data() + v.size()));
      header += "],\"data_offsets\":[" + std::to_string(begin) + "," +
                std::to_string(data.size()) + "]}";
    }
    header += "}";
    while (header.size() % 8) header += ' ';
    cudl_safetensors_destroy(set);
    const std::string path3 = dir + "/model_io_torch.safetensors";
    std::ofstream f(path3, std::ios::binary);
    const uint64_t n = header.size();
    f.write(reinterpret_cast<const char *>(&n), 8);
    f.write(header.data(), (std::streamsize)header.size());
    f.write(data.data(), (std::streamsize)data.size());
    f.close();
    cudl_model *d = build(5);
    ASSERT_EQ(cudl_model_load(d, path3.c_str(), 1), CUDL_OK) << Error();
    EXPECT_EQ(Host(cudl_model_params(d)), Host(cudl_model_params(a)));
    EXPECT_EQ(Host(cudl_model_param(d, "bn1.running_mean")),
              Host(cudl_model_param(a, "bn1.running_mean")));
    // Without the flag the same file is refused as unsupported.
    EXPECT_EQ(cudl_safetensors_load(ctx_, path3.c_str(), 0, &set),
              CUDL_ERR_UNSUPPORTED);
    ASSERT_EQ(cudl_safetensors_load(ctx_, path3.c_str(),
                                    CUDL_SAFETENSORS_SKIP_UNSUPPORTED, &set),
              CUDL_OK);
    const int64_t i64 = cudl_safetensors_find(set, "bn1.num_batches_tracked");
    ASSERT_GE(i64, 0);
    EXPECT_EQ(cudl_safetensors_tensor(set, (size_t)i64), nullptr);
    cudl_safetensors_destroy(set);
    std::remove(path3.c_str());
  }
  std::remove(path.c_str());
  std::remove(path2.c_str());
}

// Host memory goes back to the allocator the model was made with, even
// after the context's allocator changes.
TEST_F(ModelTest, MemoryGoesBackToTheAllocatorItCameFrom) {
  cudl_test::CountingAllocator first, second;
  const cudl_allocator hooks1 = first.hooks(), hooks2 = second.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks1), CUDL_OK);
  cudl_model *m = nullptr;
  const int64_t input[1] = {3};
  ASSERT_EQ(cudl_model_create(ctx_, 1, input, &m), CUDL_OK);
  int node = 0;
  for (int i = 0; i < 40; ++i)  // enough to grow the node array
    ASSERT_EQ(cudl_model_add_activation(m, node, CUDL_ACT_TANH, 0.0f, &node),
              CUDL_OK);
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks2), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, node, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 2), CUDL_OK);
  cudl_model_destroy(m);
  EXPECT_EQ(first.unknown_frees + second.unknown_frees, 0u);
  EXPECT_TRUE(first.live.empty()) << first.live.size() << " blocks leaked";
  EXPECT_TRUE(second.live.empty());
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
}

// A parameter on a dead branch (not on the path to the loss) gets a zero
// gradient, whatever the arena held; a target of another shape with the
// output's element count ([N] for one output per row) gives the same loss
// and gradients as one of the output's shape.
TEST_F(ModelTest, DeadBranchesGetZeroGradientsAndTargetsMayBeFlat) {
  cudl_model *m = Model({3});
  int fc, dead, out;
  ASSERT_EQ(cudl_model_add_linear(m, 0, "fc", 4, 1, &fc), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, fc, "dead", 2, 1, &dead), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, fc, "out", 1, 1, &out), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, out, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 5), CUDL_OK);
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_XAVIER_UNIFORM), CUDL_OK);
  cudl_tensor *x = Tensor({5, 3});
  ASSERT_EQ(cudl_tensor_uniform(x, -1.0f, 1.0f), CUDL_OK);
  cudl_tensor *t2 = Tensor({5, 1}), *t1 = Tensor({5});
  ASSERT_EQ(cudl_tensor_uniform(t2, -1.0f, 1.0f), CUDL_OK);
  Set(t1, Host(t2));
  ASSERT_EQ(cudl_tensor_fill(cudl_model_grads(m), 7.0f), CUDL_OK);
  float loss2 = 0.0f, loss1 = 0.0f;
  ASSERT_EQ(cudl_model_forward(m, x, t2, &loss2), CUDL_OK);
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
  const std::vector<float> g2 = Host(cudl_model_grads(m));
  for (float v : Host(cudl_model_grad(m, "dead.weight"))) EXPECT_EQ(v, 0.0f);
  for (float v : Host(cudl_model_grad(m, "dead.bias"))) EXPECT_EQ(v, 0.0f);
  float norm = 0.0f;
  for (float v : Host(cudl_model_grad(m, "fc.weight"))) norm += v * v;
  EXPECT_GT(norm, 0.0f);
  ASSERT_EQ(cudl_model_forward(m, x, t1, &loss1), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
  EXPECT_EQ(loss1, loss2);
  EXPECT_EQ(Host(cudl_model_grads(m)), g2);
}

}  // namespace

// ---------------------------------------------------------------------------
// Diagnostics: every figure against what the layers hold, computed here.
// ---------------------------------------------------------------------------

namespace {

double Norm(const std::vector<float> &v) {
  double s = 0.0;
  for (float x : v) s += (double)x * x;
  return std::sqrt(s);
}

// in [4] -> fc1 (6) -> relu -> fc2 (3) -> sigmoid -> out (2), MSE. Units 0
// and 1 of fc1 are pushed far negative (dead), unit 2 far positive, and
// fc2's weights are scaled up so that the sigmoid saturates.
struct DiagNet {
  int fc1, relu, fc2, sig, out;
};

DiagNet BuildDiagNet(cudl_context *ctx, cudl_model *m) {
  DiagNet d{};
  EXPECT_EQ(cudl_model_add_linear(m, 0, "fc1", 6, 1, &d.fc1), CUDL_OK);
  EXPECT_EQ(cudl_model_add_activation(m, d.fc1, CUDL_ACT_RELU, 0.0f, &d.relu),
            CUDL_OK);
  EXPECT_EQ(cudl_model_add_linear(m, d.relu, "fc2", 3, 1, &d.fc2), CUDL_OK);
  EXPECT_EQ(
      cudl_model_add_activation(m, d.fc2, CUDL_ACT_SIGMOID, 0.0f, &d.sig),
      CUDL_OK);
  EXPECT_EQ(cudl_model_add_linear(m, d.sig, "out", 2, 1, &d.out), CUDL_OK);
  EXPECT_EQ(cudl_model_set_output(m, d.out, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  EXPECT_EQ(cudl_model_compile(m, 8), CUDL_OK);
  EXPECT_EQ(cudl_context_set_seed(ctx, 5), CUDL_OK);
  EXPECT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL), CUDL_OK);
  std::vector<float> b1(6);
  EXPECT_EQ(cudl_tensor_copy_to_host(cudl_model_param(m, "fc1.bias"), b1.data(), 24), CUDL_OK);
  b1[0] = b1[1] = -100.0f;
  b1[2] = 100.0f;
  EXPECT_EQ(cudl_tensor_copy_from_host(cudl_model_param(m, "fc1.bias"), b1.data(), 24), CUDL_OK);
  cudl_tensor *w2 = cudl_model_param(m, "fc2.weight");
  EXPECT_EQ(cudl_scale(ctx, w2, 20.0f, w2), CUDL_OK);
  return d;
}

const cudl_layer_diagnostics *Row(const std::vector<cudl_layer_diagnostics> &rows, int node) {
  for (const auto &r : rows)
    if (r.node == node) return &r;
  return nullptr;
}

}  // namespace

TEST_F(ModelTest, DiagnosticsMatchWhatTheLayersHold) {
  cudl_model *m = Model({4});
  const DiagNet d = BuildDiagNet(ctx_, m);
  ASSERT_EQ(cudl_model_set_diagnostics(m, 1), CUDL_OK) << Error();
  cudl_tensor *x = Tensor({8, 4}), *t = Tensor({8, 2});
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  // Two training steps on different batches; which fc1 units were ever
  // positive, tracked here from the layer's output.
  std::vector<bool> active(6, false);
  for (int step = 0; step < 2; ++step) {
    ASSERT_EQ(cudl_tensor_uniform(x, -2.0f, 2.0f), CUDL_OK);
    ASSERT_EQ(cudl_model_forward(m, x, t, nullptr), CUDL_OK) << Error();
    const std::vector<float> h = Host(cudl_model_node_output(m, d.fc1));
    for (int r = 0; r < 8; ++r)
      for (int u = 0; u < 6; ++u)
        if (h[r * 6 + u] > 0.0f) active[u] = true;
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
  }
  // The last forward's output gradient of "out", for the input gradient.
  const std::vector<float> logits = Host(cudl_model_output(m));
  const std::vector<float> target = Host(t);
  const std::vector<float> w_out = Host(cudl_model_param(m, "out.weight"));  // [2, 3]
  std::vector<float> grad_sig(8 * 3, 0.0f);
  for (int r = 0; r < 8; ++r)
    for (int k = 0; k < 2; ++k) {
      const double dlogit = 2.0 * (logits[r * 2 + k] - target[r * 2 + k]) / 16.0;
      for (int j = 0; j < 3; ++j) grad_sig[r * 3 + j] += (float)(dlogit * w_out[k * 3 + j]);
    }

  std::vector<cudl_layer_diagnostics> rows(cudl_model_node_count(m));
  int count = 0;
  int64_t steps = 0;
  ASSERT_EQ(cudl_model_diagnostics(m, rows.data(), (int)rows.size(), &count, &steps), CUDL_OK)
      << Error();
  ASSERT_EQ(count, 5);
  rows.resize(count);
  EXPECT_EQ(steps, 2);

  const cudl_layer_diagnostics *fc1 = Row(rows, d.fc1), *relu = Row(rows, d.relu),
                               *sig = Row(rows, d.sig), *out = Row(rows, d.out);
  ASSERT_TRUE(fc1 && relu && sig && out);
  EXPECT_STREQ(fc1->name, "fc1");
  EXPECT_STREQ(fc1->kind, "linear");
  EXPECT_STREQ(relu->kind, "relu");
  EXPECT_STREQ(sig->kind, "sigmoid");
  // Output statistics of the last batch.
  for (const auto &r : rows) {
    const std::vector<float> y = Host(cudl_model_node_output(m, r.node));
    double mean = 0.0, var = 0.0;
    for (float v : y) mean += v;
    mean /= (double)y.size();
    for (float v : y) var += (v - mean) * (v - mean);
    EXPECT_NEAR(r.output_mean, mean, 1e-9 + 1e-9 * std::fabs(mean)) << r.kind;
    EXPECT_NEAR(r.output_std, std::sqrt(var / (double)y.size()), 1e-9) << r.kind;
  }
  // Saturation: the sigmoid outputs within 0.01 of 0 or 1.
  const std::vector<float> s = Host(cudl_model_node_output(m, d.sig));
  int saturated = 0;
  for (float v : s) saturated += v < 0.01f || v > 0.99f;
  EXPECT_DOUBLE_EQ(sig->saturated_fraction, saturated / 24.0);
  EXPECT_GT(saturated, 0) << "fc2's weights were scaled to saturate it";
  EXPECT_TRUE(std::isnan(relu->saturated_fraction));
  // Dead units: never positive in the window; units 0 and 1 at least.
  int dead = 0;
  for (bool a : active) dead += !a;
  EXPECT_GE(dead, 2);
  EXPECT_TRUE(active[2]);
  EXPECT_DOUBLE_EQ(relu->dead_fraction, dead / 6.0);
  EXPECT_TRUE(std::isnan(sig->dead_fraction));
  // Gradient norms: the weights' from the model's gradients, the input's
  // of "out" from the MSE gradient through out.weight computed above.
  EXPECT_NEAR(fc1->weight_grad_norm, Norm(Host(cudl_model_grad(m, "fc1.weight"))),
              1e-6 * fc1->weight_grad_norm + 1e-12);
  EXPECT_NEAR(out->weight_grad_norm, Norm(Host(cudl_model_grad(m, "out.weight"))),
              1e-6 * out->weight_grad_norm + 1e-12);
  EXPECT_NEAR(out->input_grad_norm, Norm(grad_sig), 1e-5 * Norm(grad_sig));
  EXPECT_TRUE(std::isnan(fc1->input_grad_norm)) << "fc1 reads the data";
  EXPECT_TRUE(std::isnan(relu->weight_grad_norm));
  // The saturated sigmoid passes (almost) nothing back: a gradient norm
  // that is there, finite, and possibly 0.
  EXPECT_TRUE(std::isfinite(relu->input_grad_norm));
  EXPECT_GE(relu->input_grad_norm, 0.0);

  // The call ended the window: one more step counts alone, and a unit
  // active in that step alone is alive again.
  ASSERT_EQ(cudl_tensor_uniform(x, -2.0f, 2.0f), CUDL_OK);
  ASSERT_EQ(cudl_model_forward(m, x, t, nullptr), CUDL_OK);
  const std::vector<float> h = Host(cudl_model_node_output(m, d.fc1));
  std::vector<bool> active_now(6, false);
  for (int r = 0; r < 8; ++r)
    for (int u = 0; u < 6; ++u)
      if (h[r * 6 + u] > 0.0f) active_now[u] = true;
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
  // Evaluation forwards are not training: they count no steps.
  ASSERT_EQ(cudl_model_set_training(m, 0), CUDL_OK);
  ASSERT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK);
  ASSERT_EQ(cudl_model_set_training(m, 1), CUDL_OK);
  rows.assign(cudl_model_node_count(m), cudl_layer_diagnostics{});
  ASSERT_EQ(cudl_model_diagnostics(m, rows.data(), (int)rows.size(), &count, &steps), CUDL_OK);
  EXPECT_EQ(steps, 1);
  int dead_now = 0;
  for (bool a : active_now) dead_now += !a;
  EXPECT_DOUBLE_EQ(Row(rows, d.relu)->dead_fraction, dead_now / 6.0);
}

TEST_F(ModelTest, DiagnosticsBadUse) {
  cudl_model *m = Model({4});
  int fc = 0;
  ASSERT_EQ(cudl_model_add_linear(m, 0, "fc", 2, 1, &fc), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, fc, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  EXPECT_EQ(cudl_model_set_diagnostics(m, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "compile"));
  EXPECT_EQ(cudl_model_set_diagnostics(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(cudl_model_compile(m, 2), CUDL_OK);
  EXPECT_EQ(cudl_model_set_diagnostics(m, -1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "period"));
  EXPECT_EQ(cudl_model_set_diagnostics_after(m, 2, -1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "steps_done is -1"));
  cudl_layer_diagnostics rows[4];
  int count = -1;
  EXPECT_EQ(cudl_model_diagnostics(m, rows, 4, &count, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "diagnostics are off"));
  EXPECT_EQ(count, 0);
  ASSERT_EQ(cudl_model_set_diagnostics(m, 1), CUDL_OK);
  EXPECT_EQ(cudl_model_diagnostics(m, rows, 4, &count, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "forward first"));
  cudl_tensor *x = Tensor({2, 4});
  ASSERT_EQ(cudl_tensor_fill(x, 1.0f), CUDL_OK);
  ASSERT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK);
  EXPECT_EQ(cudl_model_diagnostics(m, rows, 0, &count, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "capacity"));
  EXPECT_EQ(cudl_model_diagnostics(m, nullptr, 4, &count, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_diagnostics(m, rows, 4, nullptr, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  // No backward yet: the gradient norms are NaN, the rest is there.
  ASSERT_EQ(cudl_model_diagnostics(m, rows, 4, &count, nullptr), CUDL_OK);
  ASSERT_EQ(count, 1);
  EXPECT_TRUE(std::isnan(rows[0].weight_grad_norm));
  EXPECT_FALSE(std::isnan(rows[0].output_mean));
  EXPECT_EQ(cudl_model_set_diagnostics(m, 0), CUDL_OK);
  EXPECT_EQ(cudl_model_diagnostics(m, rows, 4, &count, nullptr), CUDL_ERR_INVALID_ARGUMENT);
}

// With a period of 3, the gradient norms come from every third training
// step only (NaN before the first), and the activity from every step.
TEST_F(ModelTest, DiagnosticsNormsFollowThePeriod) {
  cudl_model *m = Model({4});
  const DiagNet d = BuildDiagNet(ctx_, m);
  ASSERT_EQ(cudl_model_set_diagnostics(m, 3), CUDL_OK);
  cudl_tensor *x = Tensor({8, 4}), *t = Tensor({8, 2});
  ASSERT_EQ(cudl_tensor_uniform(x, -2.0f, 2.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  std::vector<cudl_layer_diagnostics> rows(cudl_model_node_count(m));
  int count = 0;
  int64_t steps = 0;
  for (int step = 1; step <= 3; ++step) {
    ASSERT_EQ(cudl_model_forward(m, x, t, nullptr), CUDL_OK);
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
    if (step == 2) {
      ASSERT_EQ(cudl_model_diagnostics(m, rows.data(), (int)rows.size(), &count, &steps),
                CUDL_OK);
      EXPECT_EQ(steps, 2);
      EXPECT_TRUE(std::isnan(Row(rows, d.out)->weight_grad_norm)) << "not a recorded step";
      EXPECT_FALSE(std::isnan(Row(rows, d.relu)->dead_fraction));
    }
  }
  ASSERT_EQ(cudl_model_diagnostics(m, rows.data(), (int)rows.size(), &count, &steps), CUDL_OK);
  EXPECT_EQ(steps, 1);
  EXPECT_GT(Row(rows, d.out)->weight_grad_norm, 0.0);
  EXPECT_NEAR(Row(rows, d.out)->weight_grad_norm, Norm(Host(cudl_model_grad(m, "out.weight"))),
              1e-6 * Row(rows, d.out)->weight_grad_norm);
}

// A run resumed after 7 steps with a period of 3 records the norms at the
// run's step 9, its second step since switching on, not at its third.
TEST_F(ModelTest, DiagnosticsAfterStepsDoneKeepTheRunsPeriod) {
  cudl_model *m = Model({4});
  const DiagNet d = BuildDiagNet(ctx_, m);
  ASSERT_EQ(cudl_model_set_diagnostics_after(m, 3, 7), CUDL_OK) << Error();
  cudl_tensor *x = Tensor({8, 4}), *t = Tensor({8, 2});
  ASSERT_EQ(cudl_tensor_uniform(x, -2.0f, 2.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  std::vector<cudl_layer_diagnostics> rows(cudl_model_node_count(m));
  int count = 0;
  int64_t steps = 0;
  for (int64_t step = 8; step <= 10; ++step) {
    ASSERT_EQ(cudl_model_forward(m, x, t, nullptr), CUDL_OK);
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
    ASSERT_EQ(cudl_model_diagnostics(m, rows.data(), (int)rows.size(), &count, &steps), CUDL_OK);
    EXPECT_EQ(steps, 1);
    if (step == 9) {
      EXPECT_GT(Row(rows, d.out)->weight_grad_norm, 0.0);
      EXPECT_NEAR(Row(rows, d.out)->weight_grad_norm, Norm(Host(cudl_model_grad(m, "out.weight"))),
                  1e-6 * Row(rows, d.out)->weight_grad_norm);
      // Step 10's other targets give other gradients, whose norm it does
      // not record: its figures stay step 9's.
      ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
    } else if (step == 8) {
      EXPECT_TRUE(std::isnan(Row(rows, d.out)->weight_grad_norm)) << "step 8 is not recorded";
    } else {
      EXPECT_GT(std::fabs(Row(rows, d.out)->weight_grad_norm -
                          Norm(Host(cudl_model_grad(m, "out.weight")))),
                1e-4 * Row(rows, d.out)->weight_grad_norm)
          << "step 10 is not recorded";
    }
  }
}

// The same net, weights and batches on the GPU give the CPU's figures.
TEST_F(ModelTest, DiagnosticsCudaMatchCpu) {
  const cudl_test::CudaAvailability cuda = cudl_test::QueryCuda();
  if (!cuda.available) GTEST_SKIP() << "no CUDA device: " << cuda.reason;
  cudl_context *gpu = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CUDA, 0, &gpu), CUDL_OK);
  std::vector<std::vector<cudl_layer_diagnostics>> results;
  std::vector<float> params, xs(8 * 4), ts(8 * 2);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = (float)((i * 37) % 17) / 4.0f - 2.0f;
  for (size_t i = 0; i < ts.size(); ++i) ts[i] = (float)(i % 5) / 5.0f;
  for (cudl_context *c : {ctx_, gpu}) {
    cudl_model *m = nullptr;
    const int64_t in = 4, xshape[2] = {8, 4}, tshape[2] = {8, 2};
    ASSERT_EQ(cudl_model_create(c, 1, &in, &m), CUDL_OK);
    BuildDiagNet(c, m);
    cudl_tensor *p = cudl_model_params(m);
    if (params.empty()) {
      params.resize(cudl_tensor_numel(p));
      ASSERT_EQ(cudl_tensor_copy_to_host(p, params.data(), params.size() * 4), CUDL_OK);
    } else {
      ASSERT_EQ(cudl_tensor_copy_from_host(p, params.data(), params.size() * 4), CUDL_OK);
    }
    cudl_tensor *x = nullptr, *t = nullptr;
    ASSERT_EQ(cudl_tensor_create(c, CUDL_DTYPE_F32, 2, xshape, &x), CUDL_OK);
    ASSERT_EQ(cudl_tensor_create(c, CUDL_DTYPE_F32, 2, tshape, &t), CUDL_OK);
    ASSERT_EQ(cudl_tensor_copy_from_host(x, xs.data(), xs.size() * 4), CUDL_OK);
    ASSERT_EQ(cudl_tensor_copy_from_host(t, ts.data(), ts.size() * 4), CUDL_OK);
    ASSERT_EQ(cudl_model_set_diagnostics(m, 1), CUDL_OK);
    ASSERT_EQ(cudl_model_forward(m, x, t, nullptr), CUDL_OK);
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
    std::vector<cudl_layer_diagnostics> rows(cudl_model_node_count(m));
    int count = 0;
    ASSERT_EQ(cudl_model_diagnostics(m, rows.data(), (int)rows.size(), &count, nullptr), CUDL_OK);
    rows.resize(count);
    results.push_back(rows);
    cudl_tensor_destroy(x);
    cudl_tensor_destroy(t);
    cudl_model_destroy(m);
  }
  cudl_context_destroy(gpu);
  ASSERT_EQ(results[0].size(), results[1].size());
  auto close = [](double a, double b) {
    return (std::isnan(a) && std::isnan(b)) || std::fabs(a - b) <= 1e-4 * (std::fabs(a) + 1e-3);
  };
  for (size_t i = 0; i < results[0].size(); ++i) {
    const auto &a = results[0][i], &b = results[1][i];
    SCOPED_TRACE(a.kind);
    EXPECT_TRUE(close(a.output_mean, b.output_mean)) << a.output_mean << " " << b.output_mean;
    EXPECT_TRUE(close(a.output_std, b.output_std));
    EXPECT_TRUE(close(a.weight_grad_norm, b.weight_grad_norm));
    EXPECT_TRUE(close(a.input_grad_norm, b.input_grad_norm));
    EXPECT_TRUE(close(a.saturated_fraction, b.saturated_fraction));
    EXPECT_TRUE(close(a.dead_fraction, b.dead_fraction));
  }
}
