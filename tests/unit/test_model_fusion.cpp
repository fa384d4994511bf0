// Tests of fused training (cudl_model_set_fusion): a model that takes the
// fused path (batch norm, residual addition and ReLU computed by the ReLU's
// node; an activation and dropout by the dropout's) trains as the same
// model run layer by layer. The operators are checked against float64 in
// test_backends' batchnorm_fused and *_dropout rows; this
// checks how the graph uses them: which groups it fuses, the gradient
// buffers the fused backward writes earlier than the layers would (a
// projection shortcut built between the batch norm and the addition, a
// residual whose gradient another reader wrote first, a batch norm on the
// data itself), what a fused node's output reads as, and when the model
// runs the layers one by one instead.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <string>
#include <tuple>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

constexpr int64_t kBatch = 6;
constexpr int64_t kClasses = 4;

// The nodes of Net() a test looks at.
struct Nodes {
  int bn_on_data, relu_on_data;       // a batch norm of the input, fused
  int bn1, relu1;                     // batch norm then ReLU, fused
  int bn2, shortcut_bn, add2, relu2;  // a projection shortcut built between
  int bn3, relu3;                     // the residual first in the addition;
                                      // it and bn3's input read again later
  int shared_bn;                      // read by a ReLU and an addition: not
  int shared_relu;                    // fused
  int relu_fc, drop_fc;               // ReLU then dropout, fused
  int leaky, drop_leaky;              // the same, the leaky ReLU's input read
                                      // again later
  int sigmoid, drop_sigmoid;          // sigmoid then dropout: not fused
  int shared_elu, drop_elu;           // an ELU with two readers: not fused
};

class ModelFusionTest : public ::testing::TestWithParam<std::tuple<cudl_layout, int>> {
 protected:
  cudl_layout layout() const { return std::get<0>(GetParam()); }
  bool cuda() const { return std::get<1>(GetParam()) != 0; }

  void SetUp() override {
    if (cuda()) {
      const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
      if (!a.available) GTEST_SKIP() << "no CUDA device: " << a.reason;
    }
    ASSERT_EQ(cudl_context_create(cuda() ? CUDL_DEVICE_CUDA : CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK);
    ASSERT_EQ(cudl_context_set_allow_emulated_precision(ctx_, 1), CUDL_OK);
  }
  void TearDown() override {
    for (cudl_tensor *t : tensors_) cudl_tensor_destroy(t);
    for (cudl_model *m : models_) cudl_model_destroy(m);
    cudl_context_destroy(ctx_);
  }
  std::string Error() const { return cudl_context_last_error(ctx_); }

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

  // Every case the graph's fusion treats differently, in [3, 8, 8] inputs.
  cudl_model *Net(Nodes *k) {
    const int64_t in[3] = {3, 8, 8};
    cudl_model *m = nullptr;
    if (cudl_model_create(ctx_, 3, in, &m) != CUDL_OK) return nullptr;
    models_.push_back(m);
    int ok = 1, n = 0, c = 0, c3 = 0, sc = 0, r = 0;
    auto check = [&](cudl_status s) { ok = ok && s == CUDL_OK; };
    cudl_conv2d_desc conv = CUDL_CONV2D_DESC_DEFAULT;
    conv.pad_h = conv.pad_w = 1;
    cudl_conv2d_desc one = CUDL_CONV2D_DESC_DEFAULT;
    check(cudl_model_add_batchnorm(m, 0, "bn0", 0.1f, 1e-5f, &k->bn_on_data));
    check(cudl_model_add_activation(m, k->bn_on_data, CUDL_ACT_RELU, 0.0f, &k->relu_on_data));
    check(cudl_model_add_conv2d(m, k->relu_on_data, "c1", 8, 3, 3, &conv, 0, &c));
    check(cudl_model_add_batchnorm(m, c, "bn1", 0.1f, 1e-5f, &k->bn1));
    check(cudl_model_add_activation(m, k->bn1, CUDL_ACT_RELU, 0.0f, &k->relu1));
    // bn2 + (shortcut conv + bn, built after bn2) -> add -> ReLU.
    check(cudl_model_add_conv2d(m, k->relu1, "c2", 6, 3, 3, &conv, 0, &c));
    check(cudl_model_add_batchnorm(m, c, "bn2", 0.1f, 1e-5f, &k->bn2));
    check(cudl_model_add_conv2d(m, k->relu1, "sc", 6, 1, 1, &one, 0, &sc));
    check(cudl_model_add_batchnorm(m, sc, "scbn", 0.1f, 1e-5f, &k->shortcut_bn));
    check(cudl_model_add_add(m, k->bn2, k->shortcut_bn, &k->add2));
    check(cudl_model_add_activation(m, k->add2, CUDL_ACT_RELU, 0.0f, &k->relu2));
    // The residual (relu2) first in the addition; it and bn3's input (c3)
    // are read again after the ReLU, so both gradients are partly written
    // when the fused backward comes to them.
    check(cudl_model_add_conv2d(m, k->relu2, "c3", 6, 3, 3, &conv, 0, &c3));
    check(cudl_model_add_batchnorm(m, c3, "bn3", 0.1f, 1e-5f, &k->bn3));
    check(cudl_model_add_add(m, k->relu2, k->bn3, &n));
    check(cudl_model_add_activation(m, n, CUDL_ACT_RELU, 0.0f, &k->relu3));
    check(cudl_model_add_add(m, k->relu3, k->relu2, &n));
    check(cudl_model_add_add(m, n, c3, &n));
    // A batch norm with two readers stays as it is.
    check(cudl_model_add_conv2d(m, n, "c4", 6, 3, 3, &conv, 0, &c));
    check(cudl_model_add_batchnorm(m, c, "bn4", 0.1f, 1e-5f, &k->shared_bn));
    check(cudl_model_add_activation(m, k->shared_bn, CUDL_ACT_RELU, 0.0f, &k->shared_relu));
    check(cudl_model_add_add(m, k->shared_relu, k->shared_bn, &r));
    check(cudl_model_add_global_avg_pool(m, r, &n));
    check(cudl_model_add_flatten(m, n, &n));
    // Activations then dropout: fused where the activation's backward reads
    // its input and the dropout is its only reader.
    int f = 0, d = 0;
    check(cudl_model_add_linear(m, n, "fc0", 12, 1, &f));
    check(cudl_model_add_activation(m, f, CUDL_ACT_RELU, 0.0f, &k->relu_fc));
    check(cudl_model_add_dropout(m, k->relu_fc, 0.3f, &k->drop_fc));
    check(cudl_model_add_activation(m, k->drop_fc, CUDL_ACT_LEAKY_RELU, 0.1f, &k->leaky));
    check(cudl_model_add_dropout(m, k->leaky, 0.5f, &k->drop_leaky));
    check(cudl_model_add_add(m, k->drop_leaky, k->drop_fc, &d));
    check(cudl_model_add_activation(m, d, CUDL_ACT_SIGMOID, 0.0f, &k->sigmoid));
    check(cudl_model_add_dropout(m, k->sigmoid, 0.2f, &k->drop_sigmoid));
    check(cudl_model_add_activation(m, k->drop_sigmoid, CUDL_ACT_ELU, 1.0f, &k->shared_elu));
    check(cudl_model_add_dropout(m, k->shared_elu, 0.4f, &d));
    check(cudl_model_add_add(m, d, k->shared_elu, &k->drop_elu));
    n = k->drop_elu;
    check(cudl_model_add_linear(m, n, "fc", kClasses, 1, &n));
    check(cudl_model_set_output(m, n, CUDL_MODEL_LOSS_CROSS_ENTROPY));
    if (!ok) {
      ADD_FAILURE() << Error();
      return nullptr;
    }
    return m;
  }

  // Net() compiled in the layout and precision, initialised from seed 5,
  // with fusion on or off.
  cudl_model *Make(int fusion, Nodes *k, cudl_precision precision = CUDL_PRECISION_FP32) {
    cudl_model *m = Net(k);
    if (m == nullptr) return nullptr;
    EXPECT_EQ(cudl_model_set_precision(m, precision), CUDL_OK) << Error();
    EXPECT_EQ(cudl_model_set_layout(m, layout()), CUDL_OK) << Error();
    EXPECT_EQ(cudl_model_set_fusion(m, fusion), CUDL_OK);
    EXPECT_EQ(cudl_model_fusion(m), fusion);
    EXPECT_EQ(cudl_model_compile(m, kBatch), CUDL_OK) << Error();
    EXPECT_EQ(cudl_context_set_seed(ctx_, 5), CUDL_OK);
    EXPECT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK) << Error();
    EXPECT_EQ(cudl_model_set_training(m, 1), CUDL_OK);
    return m;
  }

  void Batch(cudl_tensor **x, cudl_tensor **target) {
    *x = Tensor({kBatch, 3, 8, 8});
    std::vector<float> xs(cudl_tensor_numel(*x));
    uint32_t state = 77;
    for (float &v : xs) {
      state = state * 1664525u + 1013904223u;
      v = (float)(state >> 8) / (float)(1u << 24) * 4.0f - 2.0f;
    }
    ASSERT_EQ(cudl_tensor_copy_from_host(*x, xs.data(), xs.size() * sizeof(float)), CUDL_OK);
    *target = Tensor({kBatch}, CUDL_DTYPE_I32);
    std::vector<int32_t> ys(kBatch);
    for (int64_t i = 0; i < kBatch; ++i) ys[i] = (int32_t)(i % kClasses);
    ASSERT_EQ(cudl_tensor_copy_from_host(*target, ys.data(), ys.size() * sizeof(int32_t)),
              CUDL_OK);
  }

  // What a training step leaves: the loss, the output, every gradient, the
  // parameters after the update and the running statistics.
  struct Step {
    float loss = 0;
    std::vector<float> output, grads, params, running;
  };
  std::vector<Step> Train(cudl_model *m, int steps) {
    cudl_tensor *x = nullptr, *target = nullptr;
    Batch(&x, &target);
    // The same dropout masks for every model trained.
    EXPECT_EQ(cudl_context_set_seed(ctx_, 11), CUDL_OK);
    cudl_optimizer_config config;
    EXPECT_EQ(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &config), CUDL_OK);
    config.momentum = 0.9f;
    cudl_optimizer *opt = nullptr;
    EXPECT_EQ(cudl_optimizer_create(ctx_, &config, cudl_tensor_numel(cudl_model_params(m)), &opt),
              CUDL_OK);
    std::vector<Step> out;
    for (int s = 0; s < steps; ++s) {
      Step st;
      EXPECT_EQ(cudl_model_forward(m, x, target, &st.loss), CUDL_OK) << Error();
      EXPECT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
      EXPECT_EQ(cudl_optimizer_step(opt, cudl_model_params(m), cudl_model_grads(m), 0.05f),
                CUDL_OK);
      st.output = Host(cudl_model_output(m));
      st.grads = Host(cudl_model_grads(m));
      st.params = Host(cudl_model_params(m));
      for (const char *name : {"bn0", "bn1", "bn2", "scbn", "bn3", "bn4"})
        for (const char *what : {".running_mean", ".running_var"}) {
          const std::vector<float> v = Host(cudl_model_param(m, (std::string(name) + what).c_str()));
          st.running.insert(st.running.end(), v.begin(), v.end());
        }
      out.push_back(st);
    }
    cudl_optimizer_destroy(opt);
    return out;
  }

  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> tensors_;
  std::vector<cudl_model *> models_;
};

// |a - b| <= tol * (1 + max |b|) element for element.
void ExpectClose(const std::vector<float> &a, const std::vector<float> &b, double tol,
                 const std::string &what) {
  ASSERT_EQ(a.size(), b.size()) << what;
  double scale = 0, worst = 0;
  size_t at = 0;
  for (float v : b) scale = std::fmax(scale, std::fabs((double)v));
  for (size_t i = 0; i < a.size(); ++i) {
    const double d = std::fabs((double)a[i] - (double)b[i]);
    if (!(d <= worst)) {
      worst = d;
      at = i;
    }
  }
  EXPECT_LE(worst, tol * (1 + scale)) << what << ": element " << at << " is " << a[at]
                                      << ", the layers give " << b[at];
}

// The fused model trains as the layers do: on the CPU the same bits (the
// fused loops compute each value with the layers' operations in their
// order); on CUDA within f32 rounding, where the compiler may contract
// other products into fused multiply-adds in the fused kernels.
TEST_P(ModelFusionTest, TrainsAsTheLayersDo) {
  Nodes k[2];
  cudl_model *fused = Make(1, &k[0]), *layers = Make(0, &k[1]);
  ASSERT_NE(fused, nullptr);
  ASSERT_NE(layers, nullptr);
  const std::vector<Step> a = Train(fused, 3), b = Train(layers, 3);
  ASSERT_EQ(a.size(), 3u);
  ASSERT_EQ(b.size(), 3u);
  EXPECT_LT(b[2].loss, b[0].loss) << "the reference learns";
  for (size_t s = 0; s < a.size(); ++s) {
    const std::string step = "step " + std::to_string(s) + ": ";
    if (!cuda()) {
      EXPECT_EQ(a[s].loss, b[s].loss) << step << "loss";
      EXPECT_TRUE(cudl_test::BitEqual(a[s].output, b[s].output)) << step << "output";
      EXPECT_TRUE(cudl_test::BitEqual(a[s].grads, b[s].grads)) << step << "gradients";
      EXPECT_TRUE(cudl_test::BitEqual(a[s].params, b[s].params)) << step << "parameters";
      EXPECT_TRUE(cudl_test::BitEqual(a[s].running, b[s].running)) << step << "running statistics";
    } else {
      EXPECT_NEAR(a[s].loss, b[s].loss, 1e-5 * (1 + std::fabs(b[s].loss))) << step << "loss";
      ExpectClose(a[s].output, b[s].output, 1e-5, step + "output");
      ExpectClose(a[s].grads, b[s].grads, 1e-4, step + "gradients");
      ExpectClose(a[s].params, b[s].params, 1e-5, step + "parameters");
      ExpectClose(a[s].running, b[s].running, 1e-5, step + "running statistics");
    }
  }
}

// bf16 (emulated on the CPU): the fused pass rounds once where the layers
// round the batch norm's and the addition's outputs to bf16 as well, so the
// two agree to a few bf16 roundings, not bit for bit.
TEST_P(ModelFusionTest, Bf16AgreesToRounding) {
  Nodes k[2];
  cudl_model *fused = Make(1, &k[0], CUDL_PRECISION_BF16),
             *layers = Make(0, &k[1], CUDL_PRECISION_BF16);
  ASSERT_NE(fused, nullptr);
  ASSERT_NE(layers, nullptr);
  const std::vector<Step> a = Train(fused, 1), b = Train(layers, 1);
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_NEAR(a[0].loss, b[0].loss, 2e-2 * (1 + std::fabs(b[0].loss)));
  ExpectClose(a[0].output, b[0].output, 3e-2, "output");
  ExpectClose(a[0].grads, b[0].grads, 5e-2, "gradients");
  ExpectClose(a[0].running, b[0].running, 2e-2, "running statistics");
}

// A layer built between an activation and its dropout, whose gradient is
// added after them: that gradient is live while the dropout's step writes
// the activation's input's, so the gradient plan must give the two
// different buffers (with first-fit reuse, the between layer's is the one
// free at the activation's own step). Fused and layer by layer, two SGD
// steps give the same bits on the CPU.
TEST_P(ModelFusionTest, ALayerBuiltBetweenActivationAndDropoutKeepsItsGradient) {
  int r = 0;  // the ReLU, fused into the dropout
  auto build = [&](int fusion) {
    const int64_t in[1] = {6};
    cudl_model *m = nullptr;
    EXPECT_EQ(cudl_model_create(ctx_, 1, in, &m), CUDL_OK);
    models_.push_back(m);
    int a = 0, between = 0, d = 0, s = 0, out = 0;
    EXPECT_EQ(cudl_model_add_linear(m, 0, "fa", 12, 1, &a), CUDL_OK);
    EXPECT_EQ(cudl_model_add_activation(m, a, CUDL_ACT_RELU, 0.0f, &r), CUDL_OK);
    EXPECT_EQ(cudl_model_add_linear(m, 0, "fx", 12, 1, &between), CUDL_OK);
    EXPECT_EQ(cudl_model_add_dropout(m, r, 0.25f, &d), CUDL_OK);
    EXPECT_EQ(cudl_model_add_add(m, between, d, &s), CUDL_OK);
    EXPECT_EQ(cudl_model_add_linear(m, s, "fo", kClasses, 1, &out), CUDL_OK);
    EXPECT_EQ(cudl_model_set_output(m, out, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
    EXPECT_EQ(cudl_model_set_fusion(m, fusion), CUDL_OK);
    EXPECT_EQ(cudl_model_compile(m, kBatch), CUDL_OK) << Error();
    EXPECT_EQ(cudl_context_set_seed(ctx_, 5), CUDL_OK);
    EXPECT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK) << Error();
    EXPECT_EQ(cudl_model_set_training(m, 1), CUDL_OK);
    return m;
  };
  cudl_tensor *x = Tensor({kBatch, 6}), *target = Tensor({kBatch}, CUDL_DTYPE_I32);
  std::vector<float> xs(kBatch * 6);
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.7f * (float)i) * 2.0f;
  std::vector<int32_t> ys(kBatch);
  for (int64_t i = 0; i < kBatch; ++i) ys[i] = (int32_t)(i % kClasses);
  ASSERT_EQ(cudl_tensor_copy_from_host(x, xs.data(), xs.size() * sizeof(float)), CUDL_OK);
  ASSERT_EQ(cudl_tensor_copy_from_host(target, ys.data(), ys.size() * sizeof(int32_t)), CUDL_OK);
  std::vector<float> grads[2];
  for (int fusion : {1, 0}) {
    cudl_model *m = build(fusion);
    cudl_optimizer_config config;
    ASSERT_EQ(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &config), CUDL_OK);
    cudl_optimizer *opt = nullptr;
    ASSERT_EQ(cudl_optimizer_create(ctx_, &config, cudl_tensor_numel(cudl_model_params(m)), &opt),
              CUDL_OK);
    ASSERT_EQ(cudl_context_set_seed(ctx_, 11), CUDL_OK);
    for (int step = 0; step < 2; ++step) {
      EXPECT_EQ(cudl_model_forward(m, x, target, nullptr), CUDL_OK) << Error();
      EXPECT_EQ(cudl_model_node_output(m, r) == nullptr, fusion == 1) << "the fused path taken";
      EXPECT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
      EXPECT_EQ(cudl_optimizer_step(opt, cudl_model_params(m), cudl_model_grads(m), 0.1f), CUDL_OK);
    }
    cudl_optimizer_destroy(opt);
    grads[fusion] = Host(cudl_model_grads(m));
  }
  if (!cuda()) {
    EXPECT_TRUE(cudl_test::BitEqual(grads[1], grads[0])) << "gradients";
  } else {
    ExpectClose(grads[1], grads[0], 1e-4, "gradients");
  }
}

// Which nodes the fused path computes no value for, and when the model runs
// the layers one by one: evaluation, diagnostics, check numerics, fusion
// off. The marks follow the rules: a batch norm of the data and one before
// a residual addition fuse; a batch norm with two readers does not.
TEST_P(ModelFusionTest, FusedNodesHaveNoOutputAndTheLayersRunWhenAsked) {
  Nodes k;
  cudl_model *m = Make(1, &k);
  ASSERT_NE(m, nullptr);
  cudl_tensor *x = nullptr, *target = nullptr;
  Batch(&x, &target);
  auto forward = [&] { ASSERT_EQ(cudl_model_forward(m, x, target, nullptr), CUDL_OK) << Error(); };
  auto has_value = [&](int node) { return cudl_model_node_output(m, node) != nullptr; };

  forward();
  for (int node : {k.bn_on_data, k.bn1, k.bn2, k.add2, k.bn3})
    EXPECT_FALSE(has_value(node)) << "node " << node << " is computed by its ReLU";
  for (int node : {k.relu_fc, k.leaky})
    EXPECT_FALSE(has_value(node)) << "node " << node << " is computed by its dropout";
  for (int node : {k.relu_on_data, k.relu1, k.relu2, k.relu3, k.shortcut_bn, k.shared_bn,
                   k.shared_relu, k.drop_fc, k.drop_leaky, k.sigmoid, k.drop_sigmoid, k.shared_elu})
    EXPECT_TRUE(has_value(node)) << "node " << node;
  int bad = -2;
  ASSERT_EQ(cudl_model_first_nonfinite(m, &bad, nullptr), CUDL_OK) << Error();
  EXPECT_EQ(bad, -1) << "the fused nodes are passed over";

  // Evaluation runs the layers.
  ASSERT_EQ(cudl_model_set_training(m, 0), CUDL_OK);
  forward();
  EXPECT_TRUE(has_value(k.bn1));
  ASSERT_EQ(cudl_model_set_training(m, 1), CUDL_OK);

  // So do diagnostics, which read every layer's output.
  ASSERT_EQ(cudl_model_set_diagnostics(m, 1), CUDL_OK) << Error();
  forward();
  EXPECT_TRUE(has_value(k.bn1));
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_set_diagnostics(m, 0), CUDL_OK) << Error();

  // Check numerics switched on between a fused forward and its backward:
  // the backward checks the gradients the fused step wrote.
  forward();
  EXPECT_FALSE(has_value(k.bn1));
  ASSERT_EQ(cudl_model_set_check_numerics(m, 1), CUDL_OK);
  EXPECT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
  forward();
  EXPECT_TRUE(has_value(k.bn1)) << "check numerics reads every output";
  ASSERT_EQ(cudl_model_set_check_numerics(m, 0), CUDL_OK);

  // Fusion off, then on again.
  ASSERT_EQ(cudl_model_set_fusion(m, 0), CUDL_OK);
  forward();
  EXPECT_TRUE(has_value(k.bn1));
  EXPECT_TRUE(has_value(k.relu_fc));
  ASSERT_EQ(cudl_model_set_fusion(m, 1), CUDL_OK);
  forward();
  EXPECT_FALSE(has_value(k.bn1));
  EXPECT_FALSE(has_value(k.relu_fc));

  EXPECT_EQ(cudl_model_set_fusion(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_fusion(nullptr), 0);
}

std::string Name(const ::testing::TestParamInfo<std::tuple<cudl_layout, int>> &info) {
  return std::string(std::get<0>(info.param) == CUDL_LAYOUT_NHWC ? "Nhwc" : "Nchw") +
         (std::get<1>(info.param) ? "Cuda" : "Cpu");
}

INSTANTIATE_TEST_SUITE_P(Layouts, ModelFusionTest,
                         ::testing::Combine(::testing::Values(CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC),
                                            ::testing::Values(0, 1)),
                         Name);

}  // namespace
