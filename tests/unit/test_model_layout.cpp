// Tests of a model's layout (cudl_model_set_layout): the rules of setting
// it, and that a channels-last model computes what the NCHW model computes
// (outputs, loss, every parameter gradient, training steps, diagnostics)
// while everything the caller sees keeps PyTorch's layout: NCHW input and
// output, [K, C, R, S] parameters and checkpoints. The operators are checked
// one by one in test_layout and test_backends' nhwc rows; this checks how
// the model strings them together (the weight copies, the flatten that
// reorders, the input and output transposes), on the CPU and, where there
// is a GPU, on CUDA (skipped with the reason otherwise).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <tuple>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::HasSubstr;

std::string TempPath(const char *name) {
  const char *dir = std::getenv("CUDL_TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : ".") + "/" + name;
}

constexpr int64_t kBatch = 8;
constexpr int64_t kClasses = 5;

// The models the layouts are compared on, each with every kind of layer a
// channels-last model treats differently.
enum class Net {
  kSmallCnn,   // conv, BN, ReLU, max pool, flatten of 64x7x7, linear
  kResNet8,    // residual adds, 1x1 strided shortcuts, global pool
  kAssorted,   // PReLU per channel, avg pool, grouped and dilated conv,
               // flatten of an image, 1-channel flatten, no bias
  kImageOut,   // an image-shaped output (MSE): the output is transposed back
};

class ModelLayoutTest : public ::testing::Test {
 protected:
  void SetUp() override { Open(CUDL_DEVICE_CPU); }
  // A context on `device` (emulated 16-bit allowed, for the CPU), or a
  // skip saying why there is no CUDA device.
  void Open(cudl_device_kind device) {
    if (device == CUDL_DEVICE_CUDA) {
      const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
      if (!a.available) GTEST_SKIP() << "no CUDA device: " << a.reason;
    }
    ASSERT_EQ(cudl_context_create(device, 0, &ctx_), CUDL_OK);
    ASSERT_EQ(cudl_context_set_allow_emulated_precision(ctx_, 1), CUDL_OK);
  }
  void TearDown() override {
    for (cudl_tensor *t : tensors_) cudl_tensor_destroy(t);
    for (cudl_model *m : models_) cudl_model_destroy(m);
    cudl_context_destroy(ctx_);
  }

  cudl_tensor *Tensor(std::vector<int64_t> shape, cudl_dtype dtype = CUDL_DTYPE_F32) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx_, dtype, (int)shape.size(), shape.data(), &t), CUDL_OK);
    tensors_.push_back(t);
    return t;
  }
  static std::vector<float> Host(const cudl_tensor *t) {
    std::vector<float> v(cudl_tensor_numel(t));
    EXPECT_EQ(cudl_tensor_copy_to_host(t, v.data(), v.size() * sizeof(float)), CUDL_OK);
    return v;
  }
  std::string Error() const { return cudl_context_last_error(ctx_); }

  static std::vector<int64_t> InputShape(Net net) {
    switch (net) {
      case Net::kSmallCnn: return {1, 28, 28};
      case Net::kResNet8: return {3, 16, 16};
      case Net::kAssorted: return {4, 12, 10};
      case Net::kImageOut: return {3, 9, 7};
    }
    return {};
  }

  // The model, built (not compiled), or nullptr after a failed step.
  cudl_model *Build(Net net) {
    const std::vector<int64_t> in = InputShape(net);
    cudl_model *m = nullptr;
    switch (net) {
      case Net::kSmallCnn:
        EXPECT_EQ(cudl_zoo_small_cnn(ctx_, in[0], in[1], in[2], kClasses, 0.0f, &m), CUDL_OK)
            << Error();
        break;
      case Net::kResNet8:
        EXPECT_EQ(cudl_zoo_resnet(ctx_, 8, 0, in[0], in[1], in[2], kClasses, &m), CUDL_OK)
            << Error();
        break;
      case Net::kAssorted:
      case Net::kImageOut:
        m = Custom(net, in);
        break;
    }
    if (m != nullptr) models_.push_back(m);
    return m;
  }

  cudl_model *Custom(Net net, const std::vector<int64_t> &in) {
    cudl_model *m = nullptr;
    if (cudl_model_create(ctx_, 3, in.data(), &m) != CUDL_OK) return nullptr;
    int node = 0, ok = 1;
    auto check = [&](cudl_status s) { ok = ok && s == CUDL_OK; };
    cudl_conv2d_desc conv = CUDL_CONV2D_DESC_DEFAULT;
    conv.pad_h = conv.pad_w = 1;
    if (net == Net::kImageOut) {
      check(cudl_model_add_conv2d(m, node, "c1", 6, 3, 3, &conv, 1, &node));
      check(cudl_model_add_batchnorm(m, node, "bn1", 0.1f, 1e-5f, &node));
      check(cudl_model_add_activation(m, node, CUDL_ACT_TANH, 0.0f, &node));
      check(cudl_model_add_conv2d(m, node, "c2", 2, 3, 3, &conv, 1, &node));
      check(cudl_model_set_output(m, node, CUDL_MODEL_LOSS_MSE));
    } else {
      check(cudl_model_add_conv2d(m, node, "c1", 8, 3, 3, &conv, 1, &node));
      check(cudl_model_add_prelu(m, node, "p1", 1, 0.25f, &node));
      cudl_conv2d_desc grouped = CUDL_CONV2D_DESC_DEFAULT;
      grouped.groups = 2;
      grouped.dilation_h = grouped.dilation_w = 2;
      grouped.pad_h = grouped.pad_w = 2;
      grouped.stride_h = 2;
      check(cudl_model_add_conv2d(m, node, "c2", 6, 3, 3, &grouped, 0, &node));
      check(cudl_model_add_batchnorm(m, node, "bn2", 0.1f, 1e-5f, &node));
      check(cudl_model_add_activation(m, node, CUDL_ACT_LEAKY_RELU, 0.1f, &node));
      cudl_pool2d_desc pool = {3, 3, 2, 2, 1, 1, 0, 0};
      check(cudl_model_add_pool2d(m, node, 0, &pool, &node));
      const int image = node;
      check(cudl_model_add_flatten(m, image, &node));  // 6 channels: reorders
      check(cudl_model_add_linear(m, node, "fc1", 16, 1, &node));
      check(cudl_model_add_activation(m, node, CUDL_ACT_RELU, 0.0f, &node));
      check(cudl_model_add_linear(m, node, "fc2", kClasses, 1, &node));
      check(cudl_model_set_output(m, node, CUDL_MODEL_LOSS_CROSS_ENTROPY));
    }
    if (!ok) ADD_FAILURE() << Error();
    return ok ? m : nullptr;
  }

  // Built, laid out, compiled and initialised from seed 11: the same master
  // weights in either layout.
  cudl_model *Make(Net net, cudl_layout layout,
                   cudl_precision precision = CUDL_PRECISION_FP32) {
    cudl_model *m = Build(net);
    if (m == nullptr) return nullptr;
    EXPECT_EQ(cudl_model_set_precision(m, precision), CUDL_OK) << Error();
    EXPECT_EQ(cudl_model_set_layout(m, layout), CUDL_OK) << Error();
    EXPECT_EQ(cudl_model_layout(m), layout);
    EXPECT_EQ(cudl_model_compile(m, kBatch), CUDL_OK) << Error();
    EXPECT_EQ(cudl_context_set_seed(ctx_, 11), CUDL_OK);
    EXPECT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK) << Error();
    return m;
  }

  // A fixed batch of net's input shape and its target: labels, or for the
  // image output an f32 target of the output's shape.
  void Batch(Net net, cudl_model *m, cudl_tensor **x, cudl_tensor **target) {
    std::vector<int64_t> shape = InputShape(net);
    shape.insert(shape.begin(), kBatch);
    *x = Tensor(shape);
    std::vector<float> xs(cudl_tensor_numel(*x));
    uint32_t state = 2024;
    auto next = [&] {
      state = state * 1664525u + 1013904223u;
      return (float)(state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    };
    for (float &v : xs) v = next();
    ASSERT_EQ(cudl_tensor_copy_from_host(*x, xs.data(), xs.size() * sizeof(float)), CUDL_OK);
    if (net == Net::kImageOut) {
      int64_t out[3];
      ASSERT_EQ(cudl_model_node_shape(m, cudl_model_node_count(m) - 1, out), 3);
      *target = Tensor({kBatch, out[0], out[1], out[2]});
      std::vector<float> ts(cudl_tensor_numel(*target));
      for (float &v : ts) v = next();
      ASSERT_EQ(cudl_tensor_copy_from_host(*target, ts.data(), ts.size() * sizeof(float)),
                CUDL_OK);
      return;
    }
    *target = Tensor({kBatch}, CUDL_DTYPE_I32);
    std::vector<int32_t> ys(kBatch);
    for (int64_t i = 0; i < kBatch; ++i) ys[i] = (int32_t)(i * 3 % kClasses);
    ASSERT_EQ(cudl_tensor_copy_from_host(*target, ys.data(), ys.size() * sizeof(int32_t)),
              CUDL_OK);
  }

  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> tensors_;
  std::vector<cudl_model *> models_;
};

// |a - b| <= tol * (1 + max |b|) element for element: the two layouts sum
// the same products in different orders (oneDNN's kernels differ), so the
// results agree to f32 rounding relative to the values' scale.
void ExpectClose(const std::vector<float> &a, const std::vector<float> &b, double tol,
                 const char *what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double scale = 0.0;
  for (float v : b) scale = std::max(scale, (double)std::fabs(v));
  size_t bad = 0, first = a.size();
  for (size_t i = 0; i < a.size(); ++i)
    if (!(std::fabs((double)a[i] - (double)b[i]) <= tol * (1.0 + scale))) {
      if (bad++ == 0) first = i;
    }
  EXPECT_EQ(bad, 0u) << what << ": first at " << first << ": " << a[first] << " vs "
                     << b[first] << " (scale " << scale << ")";
}

TEST_F(ModelLayoutTest, SettingTheLayout) {
  cudl_model *m = Build(Net::kSmallCnn);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(cudl_model_layout(m), CUDL_LAYOUT_NCHW) << "the default";
  EXPECT_EQ(cudl_model_layout(nullptr), CUDL_LAYOUT_NCHW);
  EXPECT_EQ(cudl_model_set_layout(nullptr, CUDL_LAYOUT_NHWC), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_set_layout(m, (cudl_layout)2), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "unknown layout 2"));
  ASSERT_EQ(cudl_model_set_layout(m, CUDL_LAYOUT_NHWC), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(m, 4), CUDL_OK) << Error();
  EXPECT_EQ(cudl_model_set_layout(m, CUDL_LAYOUT_NCHW), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "set its layout before"));
  EXPECT_EQ(cudl_model_layout(m), CUDL_LAYOUT_NHWC);
  EXPECT_STREQ(cudl_layout_name(CUDL_LAYOUT_NCHW), "nchw");
  EXPECT_STREQ(cudl_layout_name(CUDL_LAYOUT_NHWC), "nhwc");
  EXPECT_STREQ(cudl_layout_name((cudl_layout)7), "unknown");
}

// A linear layer reading an image without a flatten would see [H, W, C]
// order: refused, with the fix in the message; NCHW compiles it.
TEST_F(ModelLayoutTest, LinearOnAnImageNeedsAFlatten) {
  const int64_t in[3] = {3, 6, 6};
  for (cudl_layout layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
    cudl_model *m = nullptr;
    ASSERT_EQ(cudl_model_create(ctx_, 3, in, &m), CUDL_OK);
    models_.push_back(m);
    cudl_conv2d_desc conv = CUDL_CONV2D_DESC_DEFAULT;
    int node = 0;
    ASSERT_EQ(cudl_model_add_conv2d(m, node, "c", 4, 3, 3, &conv, 1, &node), CUDL_OK);
    ASSERT_EQ(cudl_model_add_linear(m, node, "fc", 2, 1, &node), CUDL_OK);
    ASSERT_EQ(cudl_model_set_output(m, node, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
    ASSERT_EQ(cudl_model_set_layout(m, layout), CUDL_OK);
    const cudl_status s = cudl_model_compile(m, 2);
    if (layout == CUDL_LAYOUT_NCHW) {
      EXPECT_EQ(s, CUDL_OK) << Error();
    } else {
      EXPECT_EQ(s, CUDL_ERR_SHAPE);
      EXPECT_TRUE(HasSubstr(Error(), "cudl_model_compile: node 2 (linear fc) reads the "
                                         "[4, 4, 4] output of node 1 flat"));
      EXPECT_TRUE(HasSubstr(Error(), "add a flatten"));
    }
  }
}

// On each device: the layouts against each other on that device. cuDNN
// may choose other algorithms for the two layouts (Winograd, FFT, implicit
// GEMM), whose f32 results differ by more than oneDNN's, so CUDA's bounds
// are wider; a value in the wrong place is off by its own size, far
// outside either.
class LayoutEquivalence
    : public ModelLayoutTest,
      public ::testing::WithParamInterface<std::tuple<Net, cudl_device_kind>> {
 protected:
  void SetUp() override { Open(std::get<1>(GetParam())); }
  Net net() const { return std::get<0>(GetParam()); }
  bool cuda() const { return std::get<1>(GetParam()) == CUDL_DEVICE_CUDA; }
};

// One training forward and backward in each layout from the same weights
// and batch: the same loss, output and parameter gradients; the caller's
// tensors keep PyTorch's layout, node outputs are channels-last.
TEST_P(LayoutEquivalence, ForwardAndBackwardMatchNchw) {
  const Net net = this->net();
  const double tol = cuda() ? 1e-3 : 1e-5, grad_tol = cuda() ? 2e-3 : 1e-4;
  cudl_model *ref = Make(net, CUDL_LAYOUT_NCHW);
  cudl_model *cl = Make(net, CUDL_LAYOUT_NHWC);
  ASSERT_NE(ref, nullptr);
  ASSERT_NE(cl, nullptr);
  EXPECT_EQ(Host(cudl_model_params(cl)), Host(cudl_model_params(ref)))
      << "the master weights do not depend on the layout";
  cudl_tensor *x = nullptr, *target = nullptr;
  Batch(net, ref, &x, &target);
  ASSERT_EQ(cudl_model_set_training(ref, 1), CUDL_OK);
  ASSERT_EQ(cudl_model_set_training(cl, 1), CUDL_OK);
  float loss_ref = 0, loss_cl = 0;
  ASSERT_EQ(cudl_model_forward(ref, x, target, &loss_ref), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_forward(cl, x, target, &loss_cl), CUDL_OK) << Error();
  EXPECT_NEAR(loss_cl, loss_ref, tol * (1.0 + std::fabs(loss_ref)));
  const cudl_tensor *out = cudl_model_output(cl);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(cudl_tensor_layout(out), CUDL_LAYOUT_NCHW);
  ExpectClose(Host(out), Host(cudl_model_output(ref)), tol, "output");
  // Image nodes are channels-last inside; the input node too.
  const cudl_tensor *first = cudl_model_node_output(cl, 1);
  ASSERT_NE(first, nullptr);
  EXPECT_EQ(cudl_tensor_layout(first), CUDL_LAYOUT_NHWC);
  EXPECT_EQ(cudl_tensor_layout(cudl_model_node_output(ref, 1)), CUDL_LAYOUT_NCHW);

  ASSERT_EQ(cudl_model_backward(ref), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_backward(cl), CUDL_OK) << Error();
  for (int i = 0; i < cudl_model_param_count(ref); ++i) {
    int trainable = 0;
    const char *name = cudl_model_param_name(ref, i, &trainable);
    ASSERT_NE(name, nullptr);
    cudl_tensor *p = cudl_model_param(cl, name);
    ASSERT_NE(p, nullptr) << name;
    EXPECT_EQ(cudl_tensor_layout(p), CUDL_LAYOUT_NCHW) << name;
    // Running statistics moved the same way.
    ExpectClose(Host(p), Host(cudl_model_param(ref, name)), tol, name);
    if (trainable)
      ExpectClose(Host(cudl_model_grad(cl, name)), Host(cudl_model_grad(ref, name)), grad_tol,
                  name);
  }
}

// Twenty SGD steps: the layouts stay together (nothing drifts from a
// misplaced weight or gradient, which one step might hide). On the CPU,
// where the two layouts' sums differ only in order; on CUDA they may take
// other algorithms, whose differences twenty momentum steps amplify by an
// amount not yet measured on a GPU, so there the step test above stands.
TEST_P(LayoutEquivalence, TrainingStaysTogether) {
  if (cuda()) GTEST_SKIP() << "CPU only (see the comment)";
  const Net net = this->net();
  cudl_model *models[2] = {Make(net, CUDL_LAYOUT_NCHW), Make(net, CUDL_LAYOUT_NHWC)};
  ASSERT_NE(models[0], nullptr);
  ASSERT_NE(models[1], nullptr);
  cudl_tensor *x = nullptr, *target = nullptr;
  Batch(net, models[0], &x, &target);
  float first = 0, last[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    cudl_optimizer_config config;
    ASSERT_EQ(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &config), CUDL_OK);
    config.momentum = 0.9f;
    cudl_optimizer *opt = nullptr;
    ASSERT_EQ(cudl_optimizer_create(ctx_, &config, cudl_tensor_numel(cudl_model_params(models[k])),
                                    &opt),
              CUDL_OK);
    ASSERT_EQ(cudl_model_set_training(models[k], 1), CUDL_OK);
    for (int step = 0; step < 20; ++step) {
      ASSERT_EQ(cudl_model_forward(models[k], x, target, &last[k]), CUDL_OK) << Error();
      if (step == 0 && k == 0) first = last[k];
      ASSERT_EQ(cudl_model_backward(models[k]), CUDL_OK) << Error();
      ASSERT_EQ(cudl_optimizer_step(opt, cudl_model_params(models[k]), cudl_model_grads(models[k]),
                                    0.02f),
                CUDL_OK);
    }
    cudl_optimizer_destroy(opt);
  }
  EXPECT_LT(last[0], first) << "the reference learns";
  EXPECT_NEAR(last[1], last[0], 1e-3 * (1.0 + std::fabs(last[0])));
  ExpectClose(Host(cudl_model_params(models[1])), Host(cudl_model_params(models[0])), 1e-3,
              "parameters after 20 steps");
}

// Mixed precision in channels-last: bf16 computed either way (emulated on
// this CPU) agrees to bf16 rounding. The layouts round the same values at
// the same points, but sums run in other orders, so an output may land one
// bf16 step away.
TEST_P(LayoutEquivalence, Bf16MatchesNchwBf16) {
  const Net net = this->net();
  cudl_model *ref = Make(net, CUDL_LAYOUT_NCHW, CUDL_PRECISION_BF16);
  cudl_model *cl = Make(net, CUDL_LAYOUT_NHWC, CUDL_PRECISION_BF16);
  ASSERT_NE(ref, nullptr);
  ASSERT_NE(cl, nullptr);
  cudl_tensor *x = nullptr, *target = nullptr;
  Batch(net, ref, &x, &target);
  float loss_ref = 0, loss_cl = 0;
  ASSERT_EQ(cudl_model_set_training(ref, 1), CUDL_OK);
  ASSERT_EQ(cudl_model_set_training(cl, 1), CUDL_OK);
  ASSERT_EQ(cudl_model_forward(ref, x, target, &loss_ref), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_forward(cl, x, target, &loss_cl), CUDL_OK) << Error();
  EXPECT_EQ(cudl_tensor_dtype(cudl_model_node_output(cl, 1)), CUDL_DTYPE_BF16);
  EXPECT_EQ(cudl_tensor_layout(cudl_model_node_output(cl, 1)), CUDL_LAYOUT_NHWC);
  EXPECT_NEAR(loss_cl, loss_ref, 0.03 * (1.0 + std::fabs(loss_ref)));
  ExpectClose(Host(cudl_model_output(cl)), Host(cudl_model_output(ref)), 0.03, "bf16 output");
  ASSERT_EQ(cudl_model_backward(ref), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_backward(cl), CUDL_OK) << Error();
  ExpectClose(Host(cudl_model_grads(cl)), Host(cudl_model_grads(ref)), 0.05, "bf16 gradients");
}

std::string NetName(Net net) {
  switch (net) {
    case Net::kSmallCnn: return "SmallCnn";
    case Net::kResNet8: return "ResNet8";
    case Net::kAssorted: return "Assorted";
    case Net::kImageOut: return "ImageOutput";
  }
  return "unknown";
}

INSTANTIATE_TEST_SUITE_P(
    Nets, LayoutEquivalence,
    ::testing::Combine(::testing::Values(Net::kSmallCnn, Net::kResNet8, Net::kAssorted,
                                         Net::kImageOut),
                       ::testing::Values(CUDL_DEVICE_CPU, CUDL_DEVICE_CUDA)),
    [](const ::testing::TestParamInfo<std::tuple<Net, cudl_device_kind>> &param) {
      return NetName(std::get<0>(param.param)) +
             (std::get<1>(param.param) == CUDL_DEVICE_CUDA ? "Cuda" : "Cpu");
    });

// Diagnostics count dead units per channel: the same counts, the same
// rows (a channels-last flatten's copy is not reported, as its view is
// not) in both layouts.
TEST_F(ModelLayoutTest, DiagnosticsMatchNchw) {
  cudl_model *models[2] = {Make(Net::kAssorted, CUDL_LAYOUT_NCHW),
                           Make(Net::kAssorted, CUDL_LAYOUT_NHWC)};
  ASSERT_NE(models[0], nullptr);
  ASSERT_NE(models[1], nullptr);
  cudl_tensor *x = nullptr, *target = nullptr;
  Batch(Net::kAssorted, models[0], &x, &target);
  std::vector<cudl_layer_diagnostics> rows[2];
  int counts[2] = {0, 0};
  for (int k = 0; k < 2; ++k) {
    ASSERT_EQ(cudl_model_set_diagnostics(models[k], 1), CUDL_OK) << Error();
    ASSERT_EQ(cudl_model_set_training(models[k], 1), CUDL_OK);
    float loss = 0;
    ASSERT_EQ(cudl_model_forward(models[k], x, target, &loss), CUDL_OK) << Error();
    ASSERT_EQ(cudl_model_backward(models[k]), CUDL_OK) << Error();
    rows[k].resize(cudl_model_node_count(models[k]));
    int64_t steps = 0;
    ASSERT_EQ(cudl_model_diagnostics(models[k], rows[k].data(), (int)rows[k].size(), &counts[k],
                                     &steps),
              CUDL_OK)
        << Error();
  }
  ASSERT_EQ(counts[1], counts[0]);
  for (int i = 0; i < counts[0]; ++i) {
    const cudl_layer_diagnostics &a = rows[0][i], &b = rows[1][i];
    EXPECT_EQ(b.node, a.node);
    EXPECT_STREQ(b.kind, a.kind);
    EXPECT_NEAR(b.output_mean, a.output_mean, 1e-5 * (1.0 + std::fabs(a.output_mean)));
    EXPECT_NEAR(b.output_std, a.output_std, 1e-5 * (1.0 + a.output_std));
    if (std::isnan(a.dead_fraction)) {
      EXPECT_TRUE(std::isnan(b.dead_fraction)) << a.kind;
    } else {
      EXPECT_EQ(b.dead_fraction, a.dead_fraction) << a.kind;
    }
  }
}

// A channels-last model's checkpoint is an NCHW model's: PyTorch's weight
// layout on disk, loadable across layouts; its metadata says which layout
// trained it.
TEST_F(ModelLayoutTest, CheckpointsKeepPytorchLayout) {
  cudl_model *cl = Make(Net::kResNet8, CUDL_LAYOUT_NHWC);
  ASSERT_NE(cl, nullptr);
  const std::string path = TempPath("layout_ckpt.safetensors");
  cudl_train_state state = {};
  ASSERT_EQ(cudl_checkpoint_save(cl, nullptr, &state, nullptr, 0, path.c_str()), CUDL_OK)
      << Error();
  cudl_model *ref = Make(Net::kResNet8, CUDL_LAYOUT_NCHW);
  ASSERT_NE(ref, nullptr);
  ASSERT_EQ(cudl_tensor_fill(cudl_model_params(ref), 0.0f), CUDL_OK);
  ASSERT_EQ(cudl_checkpoint_load(ref, nullptr, nullptr, path.c_str()), CUDL_OK) << Error();
  EXPECT_EQ(Host(cudl_model_params(ref)), Host(cudl_model_params(cl)));

  cudl_safetensors *set = nullptr;
  ASSERT_EQ(cudl_safetensors_load(ctx_, path.c_str(), 0, &set), CUDL_OK) << Error();
  const char *layout = cudl_safetensors_metadata_find(set, "cudl.layout");
  ASSERT_NE(layout, nullptr);
  EXPECT_STREQ(layout, "nhwc");
  // conv1.weight [16, 3, 3, 3] holds the master's bytes, not [K, R, S, C].
  const int64_t index = cudl_safetensors_find(set, "conv1.weight");
  ASSERT_GE(index, 0);
  const cudl_tensor *w = cudl_safetensors_tensor(set, (size_t)index);
  ASSERT_NE(w, nullptr);
  EXPECT_EQ(Host(w), Host(cudl_model_param(cl, "conv1.weight")));
  cudl_safetensors_destroy(set);
  std::remove(path.c_str());
}

}  // namespace
