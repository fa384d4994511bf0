// Tests of a model's precision (cudl_model_set_precision) on the CPU: the
// rules of setting it, that bf16 and fp16 models compute what the fp32
// model computes to within 16-bit rounding while their inputs, outputs,
// parameters and gradients stay f32, that they train, and FP16's dynamic
// loss scaling: an overflow skips the step and halves the scale, clean
// steps double it, and checkpoints carry it. The CPU computes 16-bit models
// with the same entries the CUDA backend's kernels are checked against
// (test_backends), so this is the reference for the GPU's mixed precision.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::HasSubstr;

// Where the checkpoint test writes (as test_checkpoint.cpp).
std::string TempPath(const char *name) {
  const char *dir = std::getenv("CUDL_TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : ".") + "/" + name;
}

constexpr int64_t kBatch = 16;
constexpr int64_t kFeatures = 8;
constexpr int64_t kClasses = 4;

class PrecisionTest : public ::testing::Test {
 protected:
  // Emulated 16-bit arithmetic: the CPU computes in f32 with 16-bit
  // storage, the reference the GPU's native mixed precision is held to.
  void SetUp() override {
    ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK);
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

  // An MLP kFeatures -> 32 (ReLU) -> kClasses in `precision`, compiled and
  // initialised from seed 7 (the same weights in every precision), or
  // nullptr when the precision is refused (*status says how).
  cudl_model *Mlp(cudl_precision precision, cudl_status *status = nullptr) {
    const int64_t input[1] = {kFeatures}, widths[1] = {32};
    cudl_model *m = nullptr;
    EXPECT_EQ(cudl_zoo_mlp(ctx_, 1, input, 1, widths, CUDL_ACT_RELU, 0.0f, kClasses, &m), CUDL_OK);
    models_.push_back(m);
    const cudl_status s = cudl_model_set_precision(m, precision);
    if (status != nullptr) *status = s;
    if (s != CUDL_OK) return nullptr;
    EXPECT_EQ(cudl_model_compile(m, kBatch), CUDL_OK);
    EXPECT_EQ(cudl_context_set_seed(ctx_, 7), CUDL_OK);
    EXPECT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK);
    return m;
  }

  // Fixed inputs and labels: x uniform in [-1, 1), labels from the sign
  // pattern of two features (a problem an MLP learns).
  void Batch(cudl_tensor **x, cudl_tensor **labels) {
    *x = Tensor({kBatch, kFeatures});
    *labels = Tensor({kBatch}, CUDL_DTYPE_I32);
    std::vector<float> xs(kBatch * kFeatures);
    std::vector<int32_t> ys(kBatch);
    uint32_t state = 12345;
    for (float &v : xs) {
      state = state * 1664525u + 1013904223u;
      v = (float)(state >> 8) / (float)(1u << 24) * 2.0f - 1.0f;
    }
    for (int64_t i = 0; i < kBatch; ++i)
      ys[i] = (xs[i * kFeatures] > 0 ? 1 : 0) + (xs[i * kFeatures + 1] > 0 ? 2 : 0);
    ASSERT_EQ(cudl_tensor_copy_from_host(*x, xs.data(), xs.size() * sizeof(float)), CUDL_OK);
    ASSERT_EQ(cudl_tensor_copy_from_host(*labels, ys.data(), ys.size() * sizeof(int32_t)), CUDL_OK);
  }

  std::string Error() const { return cudl_context_last_error(ctx_); }

  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> tensors_;
  std::vector<cudl_model *> models_;
};

TEST(PrecisionNames, RoundTrip) {
  const cudl_precision all[] = {CUDL_PRECISION_FP32, CUDL_PRECISION_TF32, CUDL_PRECISION_BF16,
                                CUDL_PRECISION_FP16};
  const char *const names[] = {"fp32", "tf32", "bf16", "fp16"};
  for (int i = 0; i < 4; ++i) {
    ASSERT_STREQ(cudl_precision_name(all[i]), names[i]);
    cudl_precision p = CUDL_PRECISION_FP32;
    EXPECT_EQ(cudl_precision_from_name(names[i], &p), CUDL_OK);
    EXPECT_EQ(p, all[i]);
  }
  cudl_precision p = CUDL_PRECISION_BF16;
  EXPECT_EQ(cudl_precision_from_name("float16", &p), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_precision_from_name("BF16", &p), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(p, CUDL_PRECISION_BF16) << "a failed parse leaves the value alone";
  EXPECT_EQ(cudl_precision_from_name(nullptr, &p), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_precision_name((cudl_precision)4), nullptr);
  EXPECT_EQ(cudl_precision_name((cudl_precision)-1), nullptr);
}

TEST_F(PrecisionTest, SetOnlyBeforeCompilingAndOnlyKnownValues) {
  cudl_model *m = Mlp(CUDL_PRECISION_FP32);
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(cudl_model_precision(m), CUDL_PRECISION_FP32);
  EXPECT_EQ(cudl_model_set_precision(m, CUDL_PRECISION_FP16), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "compiled"));
  EXPECT_EQ(cudl_model_precision(m), CUDL_PRECISION_FP32);
  EXPECT_EQ(cudl_model_set_precision(nullptr, CUDL_PRECISION_FP32), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_precision(nullptr), CUDL_PRECISION_FP32);

  const int64_t input[1] = {3};
  cudl_model *fresh = nullptr;
  ASSERT_EQ(cudl_model_create(ctx_, 1, input, &fresh), CUDL_OK);
  models_.push_back(fresh);
  EXPECT_EQ(cudl_model_set_precision(fresh, (cudl_precision)9), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "unknown precision 9"));
  EXPECT_EQ(cudl_model_set_precision(fresh, CUDL_PRECISION_TF32), CUDL_OK);
  EXPECT_EQ(cudl_model_precision(fresh), CUDL_PRECISION_TF32);
  EXPECT_EQ(cudl_model_loss_scale(fresh), 1.0f);
}

// Without the emulation switch, a CPU refuses fp16 (no CPU has it), and
// bf16 unless it has bf16 arithmetic, saying why and how to run it anyway.
TEST_F(PrecisionTest, RefusedWithoutHardwareUnlessEmulationIsAllowed) {
  ASSERT_EQ(cudl_context_set_allow_emulated_precision(ctx_, 0), CUDL_OK);
  EXPECT_EQ(cudl_context_allow_emulated_precision(ctx_), 0);
  cudl_status s = CUDL_OK;
  EXPECT_EQ(Mlp(CUDL_PRECISION_FP16, &s), nullptr);
  EXPECT_EQ(s, CUDL_ERR_UNSUPPORTED);
  EXPECT_TRUE(HasSubstr(Error(), "cudl_model_set_precision"));
  EXPECT_TRUE(HasSubstr(Error(), "use bf16 on the CPU"));
  EXPECT_TRUE(HasSubstr(Error(), "cudl_context_set_allow_emulated_precision"));
  cudl_model *bf16 = Mlp(CUDL_PRECISION_BF16, &s);
  if (bf16 == nullptr) {
    EXPECT_EQ(s, CUDL_ERR_UNSUPPORTED);
    EXPECT_TRUE(HasSubstr(Error(), "AVX512-BF16 or AMX"));
  }
  EXPECT_NE(Mlp(CUDL_PRECISION_TF32, &s), nullptr) << "f32 data runs everywhere";
  ASSERT_EQ(cudl_context_set_allow_emulated_precision(ctx_, 1), CUDL_OK);
  EXPECT_NE(Mlp(CUDL_PRECISION_FP16, &s), nullptr) << Error();
  EXPECT_EQ(cudl_context_set_allow_emulated_precision(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
}

// The scale is FP16's alone; restoring it checks its values.
TEST_F(PrecisionTest, LossScaleStateIsChecked) {
  cudl_model *m = Mlp(CUDL_PRECISION_FP32);
  ASSERT_NE(m, nullptr);
  float scale = 0;
  int64_t clean = -1;
  ASSERT_EQ(cudl_model_loss_scale_state(m, &scale, &clean), CUDL_OK);
  EXPECT_EQ(scale, 1.0f);
  EXPECT_EQ(clean, 0);
  EXPECT_EQ(cudl_model_set_loss_scale_state(m, 1024.0f, 0), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(Error(), "only fp16"));
  EXPECT_EQ(cudl_model_set_loss_scale_state(m, 1.0f, 3), CUDL_OK);
  EXPECT_EQ(cudl_model_set_loss_scale_state(m, NAN, 0), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_set_loss_scale_state(m, -1.0f, 0), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_set_loss_scale_state(m, 1.0f, -1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_loss_scale_state(m, nullptr, &clean), CUDL_ERR_INVALID_ARGUMENT);
}

// A 16-bit model against the fp32 one with the same weights: the loss, the
// f32 output and every f32 gradient agree to within what bf16/f16 storage
// of the activations and weights allows, and what the API hands out stays
// f32 (the input, the output, the parameters, the gradients).
class PrecisionMatchTest : public PrecisionTest,
                           public ::testing::WithParamInterface<cudl_precision> {};

TEST_P(PrecisionMatchTest, MatchesFp32WithinRounding) {
  cudl_status s = CUDL_OK;
  cudl_model *low = Mlp(GetParam(), &s);
  ASSERT_NE(low, nullptr) << Error();
  cudl_model *ref = Mlp(CUDL_PRECISION_FP32);
  ASSERT_NE(ref, nullptr);
  cudl_tensor *x = nullptr, *labels = nullptr;
  Batch(&x, &labels);
  // Same weights: the f32 masters were drawn from the same seed.
  EXPECT_EQ(Host(cudl_model_params(low)), Host(cudl_model_params(ref)));

  float loss_low = 0, loss_ref = 0;
  ASSERT_EQ(cudl_model_forward(low, x, labels, &loss_low), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_forward(ref, x, labels, &loss_ref), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_backward(low), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_backward(ref), CUDL_OK) << Error();

  const cudl_tensor *out = cudl_model_output(low);
  ASSERT_NE(out, nullptr);
  EXPECT_EQ(cudl_tensor_dtype(out), CUDL_DTYPE_F32) << "the output is f32 in every precision";
  EXPECT_EQ(cudl_tensor_dtype(cudl_model_params(low)), CUDL_DTYPE_F32);
  EXPECT_EQ(cudl_tensor_dtype(cudl_model_grads(low)), CUDL_DTYPE_F32);
  const cudl_dtype compute = GetParam() == CUDL_PRECISION_BF16 ? CUDL_DTYPE_BF16 : CUDL_DTYPE_F16;
  EXPECT_EQ(cudl_tensor_dtype(cudl_model_node_output(low, 1)), compute)
      << "activations are in the compute dtype";
  EXPECT_EQ(cudl_model_step_skipped(low), 0);

  // u = 2^-8 (bf16) or 2^-11 (f16) per rounding; the input, the weights,
  // the hidden layer and the output are each rounded once on the way to
  // the loss, and the hidden layer's sum of 8 terms and the logits' of 32
  // carry those errors: a few dozen u relative to the magnitudes, measured
  // against the sum of |terms| by taking the largest gradient as the scale.
  const double u = GetParam() == CUDL_PRECISION_BF16 ? 1.0 / 256 : 1.0 / 2048;
  EXPECT_NEAR(loss_low, loss_ref, 16 * u * std::fabs(loss_ref)) << "loss";
  const std::vector<float> out_low = Host(out), out_ref = Host(cudl_model_output(ref));
  double out_scale = 0;
  for (float v : out_ref) out_scale = std::max(out_scale, (double)std::fabs(v));
  for (size_t i = 0; i < out_low.size(); ++i)
    ASSERT_NEAR(out_low[i], out_ref[i], 16 * u * out_scale) << "logit " << i;
  const std::vector<float> g_low = Host(cudl_model_grads(low)), g_ref = Host(cudl_model_grads(ref));
  double g_scale = 0;
  for (float v : g_ref) g_scale = std::max(g_scale, (double)std::fabs(v));
  ASSERT_GT(g_scale, 0);
  for (size_t i = 0; i < g_low.size(); ++i)
    ASSERT_NEAR(g_low[i], g_ref[i], 32 * u * g_scale) << "gradient " << i;
}

INSTANTIATE_TEST_SUITE_P(Precisions, PrecisionMatchTest,
                         ::testing::Values(CUDL_PRECISION_BF16, CUDL_PRECISION_FP16),
                         [](const ::testing::TestParamInfo<cudl_precision> &p) {
                           return std::string(cudl_precision_name(p.param));
                         });

// bf16 trains: SGD on the fixed batch takes the loss from ln 4 to a small
// value, as fp32 does.
TEST_F(PrecisionTest, Bf16Trains) {
  cudl_model *m = Mlp(CUDL_PRECISION_BF16);
  ASSERT_NE(m, nullptr) << Error();
  cudl_tensor *x = nullptr, *labels = nullptr;
  Batch(&x, &labels);
  cudl_optimizer_config config;
  ASSERT_EQ(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &config), CUDL_OK);
  config.momentum = 0.9f;
  cudl_optimizer *opt = nullptr;
  ASSERT_EQ(cudl_optimizer_create(ctx_, &config, cudl_tensor_numel(cudl_model_params(m)), &opt),
            CUDL_OK);
  float first = 0, loss = 0;
  for (int step = 0; step < 300; ++step) {
    ASSERT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK) << Error();
    if (step == 0) first = loss;
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
    ASSERT_EQ(cudl_optimizer_step(opt, cudl_model_params(m), cudl_model_grads(m), 0.1f), CUDL_OK);
  }
  cudl_optimizer_destroy(opt);
  EXPECT_GT(first, 1.0f);
  EXPECT_LT(loss, 0.1f) << "from " << first;
}

// FP16 on the CPU is the reference the GPU's fp16 mode is checked against:
// the same loss scaling.
class LossScaleTest : public PrecisionTest {
 protected:
  // The fp16 MLP (cross-entropy), emulated on the CPU.
  cudl_model *Fp16() {
    cudl_status s = CUDL_OK;
    cudl_model *m = Mlp(CUDL_PRECISION_FP16, &s);
    EXPECT_NE(m, nullptr) << Error();
    return m;
  }
};

TEST_F(LossScaleTest, StartsAtPyTorchsScale) {
  cudl_model *m = Fp16();
  ASSERT_NE(m, nullptr);
  EXPECT_EQ(cudl_model_loss_scale(m), 65536.0f);
}

TEST_F(LossScaleTest, OverflowSkipsTheStepAndHalvesTheScale) {
  cudl_model *m = Fp16();
  ASSERT_NE(m, nullptr);
  cudl_tensor *x = nullptr, *labels = nullptr;
  Batch(&x, &labels);
  // A scale so large that the loss gradient (about 1/16 per logit) times
  // it is beyond f16's range: the gradients cannot be finite.
  ASSERT_EQ(cudl_model_set_loss_scale_state(m, 1048576.0f * 1024.0f, 5), CUDL_OK);
  float loss = 0;
  ASSERT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK) << Error();
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK) << Error();
  EXPECT_EQ(cudl_model_step_skipped(m), 1);
  EXPECT_EQ(cudl_model_loss_scale(m), 536870912.0f) << "halved";
  float scale = 0;
  int64_t clean = -1;
  ASSERT_EQ(cudl_model_loss_scale_state(m, &scale, &clean), CUDL_OK);
  EXPECT_EQ(clean, 0) << "an overflow starts the count again";
  // The overflow is the scaler's business, not a failed step.
  cudl_numerics_report report;
  ASSERT_EQ(cudl_model_check_gradients(m, &report), CUDL_OK);
  EXPECT_EQ(report.node, -1);

  // Halving until the gradients fit: then a step is not skipped, and its
  // gradients are the unscaled ones (close to the fp32 model's).
  int skipped = 1, passes = 0;
  while (skipped && passes < 40) {
    ASSERT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK);
    ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
    skipped = cudl_model_step_skipped(m);
    ++passes;
  }
  ASSERT_EQ(skipped, 0) << "still overflowing after " << passes << " halvings";
  EXPECT_LT(cudl_model_loss_scale(m), 536870912.0f);
  cudl_model *ref = Mlp(CUDL_PRECISION_FP32);
  ASSERT_EQ(cudl_model_forward(ref, x, labels, &loss), CUDL_OK);
  ASSERT_EQ(cudl_model_backward(ref), CUDL_OK);
  const std::vector<float> g = Host(cudl_model_grads(m)), g_ref = Host(cudl_model_grads(ref));
  double g_scale = 0;
  for (float v : g_ref) g_scale = std::max(g_scale, (double)std::fabs(v));
  for (size_t i = 0; i < g.size(); ++i)
    ASSERT_NEAR(g[i], g_ref[i], 32.0 / 2048 * g_scale) << "gradient " << i;
}

TEST_F(LossScaleTest, GrowsAfterTheIntervalOfCleanSteps) {
  cudl_model *m = Fp16();
  ASSERT_NE(m, nullptr);
  cudl_tensor *x = nullptr, *labels = nullptr;
  Batch(&x, &labels);
  ASSERT_EQ(cudl_model_set_loss_scale_state(m, 1024.0f, 1998), CUDL_OK);
  float loss = 0;
  ASSERT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK);
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
  EXPECT_EQ(cudl_model_step_skipped(m), 0);
  EXPECT_EQ(cudl_model_loss_scale(m), 1024.0f) << "1999 clean steps: not yet";
  ASSERT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK);
  ASSERT_EQ(cudl_model_backward(m), CUDL_OK);
  EXPECT_EQ(cudl_model_loss_scale(m), 2048.0f) << "the 2000th clean step doubles it";
  float scale = 0;
  int64_t clean = -1;
  ASSERT_EQ(cudl_model_loss_scale_state(m, &scale, &clean), CUDL_OK);
  EXPECT_EQ(clean, 0);
}

TEST_F(LossScaleTest, CheckpointsCarryTheScale) {
  cudl_model *m = Fp16();
  ASSERT_NE(m, nullptr);
  ASSERT_EQ(cudl_model_set_loss_scale_state(m, 512.0f, 77), CUDL_OK);
  const std::string path = TempPath("precision_ckpt.safetensors");
  cudl_train_state state = {};
  ASSERT_EQ(cudl_checkpoint_save(m, nullptr, &state, nullptr, 0, path.c_str()), CUDL_OK) << Error();

  cudl_model *back = Fp16();
  ASSERT_NE(back, nullptr);
  ASSERT_EQ(cudl_checkpoint_load(back, nullptr, nullptr, path.c_str()), CUDL_OK) << Error();
  float scale = 0;
  int64_t clean = -1;
  ASSERT_EQ(cudl_model_loss_scale_state(back, &scale, &clean), CUDL_OK);
  EXPECT_EQ(scale, 512.0f);
  EXPECT_EQ(clean, 77);

  // An fp32 model takes the weights (f32 in every precision) and keeps 1.
  cudl_model *fp32 = Mlp(CUDL_PRECISION_FP32);
  ASSERT_EQ(cudl_checkpoint_load(fp32, nullptr, nullptr, path.c_str()), CUDL_OK) << Error();
  EXPECT_EQ(cudl_model_loss_scale(fp32), 1.0f);
  EXPECT_EQ(Host(cudl_model_params(fp32)), Host(cudl_model_params(m)));
  std::remove(path.c_str());
}

}  // namespace
