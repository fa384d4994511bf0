// test_dropout.cpp - inverted dropout: the mask against the documented
// Philox stream, scaling, p = 0 and p = 1 exactly, evaluation, the RNG
// offset, backward, bad input; dropout after an activation in one pass
// against the two layers. CUDA masks (bit-identical to the CPU's):
// test_backends.cpp.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;
using cudl_test::ReadF32;
using cudl_test::WriteF32;

// The multipliers the header documents, computed here from Philox itself.
std::vector<float> ReferenceMask(int64_t n, uint64_t seed, uint64_t offset, float p) {
  const float scale = p < 1.0f ? 1.0f / (1.0f - p) : 0.0f;
  std::vector<float> mask(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) {
    const cudl_philox_block r = cudl_test::ReferenceBlock(seed, offset + static_cast<uint64_t>(i / 4));
    const double u = static_cast<double>(r.v[i % 4] >> 8) / 16777216.0;
    mask[static_cast<size_t>(i)] = u >= static_cast<double>(p) ? scale : 0.0f;
  }
  return mask;
}

std::vector<float> RandomValues(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-4.0f, 4.0f);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

// The activation layer through its public call (the model's layer).
void LayerForward(cudl_context *ctx, cudl_activation_type t, float alpha, const cudl_tensor *x,
                  cudl_tensor *y) {
  cudl_status s = CUDL_ERR_INVALID_ARGUMENT;
  switch (t) {
    case CUDL_ACT_RELU:
      s = cudl_relu_forward(ctx, x, y);
      break;
    case CUDL_ACT_LEAKY_RELU:
      s = cudl_leaky_relu_forward(ctx, x, alpha, y);
      break;
    case CUDL_ACT_ELU:
      s = cudl_elu_forward(ctx, x, alpha, y);
      break;
    case CUDL_ACT_GELU:
      s = cudl_gelu_forward(ctx, x, y);
      break;
    case CUDL_ACT_SILU:
      s = cudl_silu_forward(ctx, x, y);
      break;
    default:
      break;
  }
  EXPECT_EQ(s, CUDL_OK) << cudl_context_last_error(ctx);
}
void LayerBackward(cudl_context *ctx, cudl_activation_type t, float alpha, const cudl_tensor *x,
                   const cudl_tensor *dy, cudl_tensor *dx) {
  cudl_status s = CUDL_ERR_INVALID_ARGUMENT;
  switch (t) {
    case CUDL_ACT_RELU:
      s = cudl_relu_backward(ctx, x, dy, dx);
      break;
    case CUDL_ACT_LEAKY_RELU:
      s = cudl_leaky_relu_backward(ctx, x, alpha, dy, dx);
      break;
    case CUDL_ACT_ELU:
      s = cudl_elu_backward(ctx, x, alpha, dy, dx);
      break;
    case CUDL_ACT_GELU:
      s = cudl_gelu_backward(ctx, x, dy, dx);
      break;
    case CUDL_ACT_SILU:
      s = cudl_silu_backward(ctx, x, dy, dx);
      break;
    default:
      break;
  }
  EXPECT_EQ(s, CUDL_OK) << cudl_context_last_error(ctx);
}

class DropoutTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK); }
  void TearDown() override {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    cudl_context_destroy(ctx_);
  }
  cudl_tensor *Make(cudl_context *ctx, int64_t n, const std::vector<float> &values = {}) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &n, &t), CUDL_OK);
    if (t != nullptr) {
      owned_.push_back(t);
      if (!values.empty()) {
        EXPECT_EQ(WriteF32(t, values), CUDL_OK);
      }
    }
    return t;
  }
  uint64_t Offset(cudl_context *ctx) {
    uint64_t seed = 0, offset = 0;
    EXPECT_EQ(cudl_context_rng_state(ctx, &seed, &offset), CUDL_OK);
    return offset;
  }
  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> owned_;
};

TEST_F(DropoutTest, TrainingMaskFollowsThePhiloxStream) {
  for (float p : {0.1f, 0.5f, 0.9f}) {
    for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1021}}) {
      SCOPED_TRACE("p " + std::to_string(p) + " n " + std::to_string(n));
      const std::vector<float> xs = RandomValues(static_cast<size_t>(n), 1);
      ASSERT_EQ(cudl_context_set_rng_state(ctx_, 2024, 0xfffffffeull), CUDL_OK);
      cudl_tensor *x = Make(ctx_, n, xs), *mask = Make(ctx_, n), *y = Make(ctx_, n);
      ASSERT_EQ(cudl_dropout_forward(ctx_, x, p, 1, mask, y), CUDL_OK)
          << cudl_context_last_error(ctx_);
      const std::vector<float> want = ReferenceMask(n, 2024, 0xfffffffeull, p);
      EXPECT_TRUE(BitEqual(ReadF32(mask), want));
      std::vector<float> ywant(xs.size());
      for (size_t i = 0; i < xs.size(); ++i) ywant[i] = xs[i] * want[i];
      EXPECT_TRUE(BitEqual(ReadF32(y), ywant));
      EXPECT_EQ(Offset(ctx_), 0xfffffffeull + (static_cast<uint64_t>(n) + 3) / 4);
    }
  }
}

TEST_F(DropoutTest, KeepsAboutOneMinusPAndPreservesTheMean) {
  // n = 2^20 Bernoulli(1 - p) draws: the kept fraction has standard error
  // sqrt(p (1 - p) / n) < 5e-4; allow 5 of them. Inverted scaling keeps the
  // mean of ones at 1 within the same relative bound.
  const int64_t n = int64_t{1} << 20;
  const float p = 0.3f;
  cudl_tensor *x = Make(ctx_, n, std::vector<float>(static_cast<size_t>(n), 1.0f));
  cudl_tensor *mask = Make(ctx_, n), *y = Make(ctx_, n);
  ASSERT_EQ(cudl_dropout_forward(ctx_, x, p, 1, mask, y), CUDL_OK);
  const std::vector<float> ys = ReadF32(y);
  double kept = 0, sum = 0;
  for (float v : ys) {
    kept += v != 0.0f;
    sum += v;
  }
  const double se = std::sqrt(p * (1 - p) / static_cast<double>(n));
  EXPECT_NEAR(kept / static_cast<double>(n), 1.0 - p, 5 * se);
  EXPECT_NEAR(sum / static_cast<double>(n), 1.0, 5 * se / (1.0 - p));
}

TEST_F(DropoutTest, ZeroAndOneAreExact) {
  const int64_t n = 1021;
  std::vector<float> xs = RandomValues(static_cast<size_t>(n), 2);
  xs[5] = std::numeric_limits<float>::infinity();
  cudl_tensor *x = Make(ctx_, n, xs), *mask = Make(ctx_, n), *y = Make(ctx_, n);
  ASSERT_EQ(cudl_dropout_forward(ctx_, x, 0.0f, 1, mask, y), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(y), xs)) << "p = 0 must keep every element unchanged";
  EXPECT_TRUE(BitEqual(ReadF32(mask), std::vector<float>(static_cast<size_t>(n), 1.0f)));
  xs[5] = 2.0f;  // (inf * 0 would be NaN: keep the p = 1 check about zeros)
  ASSERT_EQ(WriteF32(x, xs), CUDL_OK);
  ASSERT_EQ(cudl_dropout_forward(ctx_, x, 1.0f, 1, mask, y), CUDL_OK);
  const std::vector<float> ys = ReadF32(y);
  for (size_t i = 0; i < ys.size(); ++i) ASSERT_EQ(ys[i], 0.0f) << i;
  EXPECT_TRUE(BitEqual(ReadF32(mask), std::vector<float>(static_cast<size_t>(n), 0.0f)));
}

TEST_F(DropoutTest, EvaluationIsTheIdentity) {
  const std::vector<float> xs = RandomValues(1021, 3);
  cudl_tensor *x = Make(ctx_, 1021, xs), *mask = Make(ctx_, 1021), *y = Make(ctx_, 1021);
  const uint64_t before = Offset(ctx_);
  ASSERT_EQ(cudl_dropout_forward(ctx_, x, 0.5f, 0, mask, y), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(y), xs));
  EXPECT_TRUE(BitEqual(ReadF32(mask), std::vector<float>(1021, 1.0f)));
  ASSERT_EQ(cudl_dropout_forward(ctx_, x, 0.5f, 0, nullptr, y), CUDL_OK);
  EXPECT_EQ(Offset(ctx_), before) << "evaluation consumed random numbers";
}

TEST_F(DropoutTest, InPlaceAndBackward) {
  const std::vector<float> xs = RandomValues(999, 4), gs = RandomValues(999, 5);
  cudl_tensor *a = Make(ctx_, 999, xs), *x = Make(ctx_, 999, xs);
  cudl_tensor *m1 = Make(ctx_, 999), *m2 = Make(ctx_, 999), *y = Make(ctx_, 999);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 8, 0), CUDL_OK);
  ASSERT_EQ(cudl_dropout_forward(ctx_, a, 0.25f, 1, m1, a), CUDL_OK);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 8, 0), CUDL_OK);
  ASSERT_EQ(cudl_dropout_forward(ctx_, x, 0.25f, 1, m2, y), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(a), ReadF32(y)));
  cudl_tensor *dy = Make(ctx_, 999, gs), *dx = Make(ctx_, 999);
  ASSERT_EQ(cudl_dropout_backward(ctx_, m2, dy, dx), CUDL_OK);
  const std::vector<float> mask = ReadF32(m2), dxs = ReadF32(dx);
  for (size_t i = 0; i < gs.size(); ++i) ASSERT_EQ(dxs[i], gs[i] * mask[i]) << i;
}

TEST_F(DropoutTest, BadInputChangesNothing) {
  cudl_tensor *x = Make(ctx_, 4, {1, 2, 3, 4}), *y = Make(ctx_, 4, {9, 9, 9, 9});
  cudl_tensor *mask = Make(ctx_, 4, {9, 9, 9, 9}), *wrong = Make(ctx_, 5);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 1, 2), CUDL_OK);
  const float bad_p[] = {-0.1f, 1.5f, std::numeric_limits<float>::quiet_NaN(),
                         std::numeric_limits<float>::infinity()};
  for (float p : bad_p) {
    EXPECT_EQ(cudl_dropout_forward(ctx_, x, p, 1, mask, y), CUDL_ERR_INVALID_ARGUMENT) << p;
    EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "p must be"));
  }
  EXPECT_EQ(cudl_dropout_forward(ctx_, x, 0.5f, 1, nullptr, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_dropout_forward(ctx_, x, 0.5f, 1, wrong, y), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_dropout_forward(nullptr, x, 0.5f, 1, mask, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_dropout_backward(ctx_, wrong, x, y), CUDL_ERR_SHAPE);
  EXPECT_TRUE(BitEqual(ReadF32(y), {9, 9, 9, 9}));
  EXPECT_TRUE(BitEqual(ReadF32(mask), {9, 9, 9, 9}));
  EXPECT_EQ(Offset(ctx_), 2u);
}

// x, y and the mask share one float dtype (cudl/tensor.h): a bf16 x with
// an f32 mask is CUDL_ERR_DTYPE naming the mask, and neither the tensors
// nor the RNG offset move; all bf16 is accepted.
TEST_F(DropoutTest, MaskSharesTheDataDtype) {
  const int64_t n = 8;
  cudl_tensor *x = nullptr, *y = nullptr, *mask16 = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_BF16, 1, &n, &x), CUDL_OK);
  owned_.push_back(x);
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_BF16, 1, &n, &y), CUDL_OK);
  owned_.push_back(y);
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_BF16, 1, &n, &mask16), CUDL_OK);
  owned_.push_back(mask16);
  cudl_tensor *mask = Make(ctx_, n, std::vector<float>(8, 9.0f));
  ASSERT_EQ(cudl_tensor_fill(x, 1.0f), CUDL_OK);
  const uint64_t before = Offset(ctx_);
  EXPECT_EQ(cudl_dropout_forward(ctx_, x, 0.5f, 1, mask, y), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"mask", "f32", "x", "bf16"}));
  EXPECT_EQ(Offset(ctx_), before);
  EXPECT_TRUE(BitEqual(ReadF32(mask), std::vector<float>(8, 9.0f)));
  EXPECT_EQ(cudl_test::ReadBits16(y), std::vector<uint16_t>(8, 0));
  EXPECT_EQ(cudl_dropout_forward(ctx_, x, 0.5f, 1, mask16, y), CUDL_OK)
      << cudl_context_last_error(ctx_);
  EXPECT_EQ(Offset(ctx_), before + 2);
  EXPECT_EQ(cudl_dropout_backward(ctx_, mask16, y, y), CUDL_OK);
}

// Dropout after an activation in one pass: in f32 the bits of the
// activation then the dropout (mask, y, dx and the RNG offset), for every
// activation whose backward reads x; in place too.
TEST_F(DropoutTest, AfterAnActivationIsTheTwoLayersInOnePass) {
  const int64_t n = 1001;
  const std::vector<float> xs = RandomValues(n, 6), gs = RandomValues(n, 7);
  const struct {
    cudl_activation_type type;
    float alpha;
  } kinds[] = {{CUDL_ACT_RELU, 0.0f},
               {CUDL_ACT_LEAKY_RELU, 0.05f},
               {CUDL_ACT_ELU, 1.2f},
               {CUDL_ACT_GELU, 0.0f},
               {CUDL_ACT_SILU, 0.0f}};
  for (const auto &k : kinds) {
    SCOPED_TRACE(cudl_activation_name(k.type));
    cudl_tensor *x = Make(ctx_, n, xs), *dy = Make(ctx_, n, gs);
    // The layers: activation, dropout; backward through both.
    cudl_tensor *act = Make(ctx_, n), *m1 = Make(ctx_, n), *y1 = Make(ctx_, n);
    cudl_tensor *g1 = Make(ctx_, n), *dx1 = Make(ctx_, n);
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, 3, 40), CUDL_OK);
    LayerForward(ctx_, k.type, k.alpha, x, act);
    ASSERT_EQ(cudl_dropout_forward(ctx_, act, 0.3f, 1, m1, y1), CUDL_OK);
    const uint64_t after_layers = Offset(ctx_);
    ASSERT_EQ(cudl_dropout_backward(ctx_, m1, dy, g1), CUDL_OK);
    LayerBackward(ctx_, k.type, k.alpha, x, g1, dx1);
    // Fused, y over a copy of x and dx over a copy of dy.
    cudl_tensor *m2 = Make(ctx_, n), *y2 = Make(ctx_, n, xs), *dx2 = Make(ctx_, n, gs);
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, 3, 40), CUDL_OK);
    ASSERT_EQ(cudl_activation_dropout_forward(ctx_, k.type, k.alpha, y2, 0.3f, m2, y2), CUDL_OK)
        << cudl_context_last_error(ctx_);
    EXPECT_EQ(Offset(ctx_), after_layers);
    ASSERT_EQ(cudl_activation_dropout_backward(ctx_, k.type, k.alpha, x, m2, dx2, dx2), CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(m2), ReadF32(m1))) << "mask";
    EXPECT_TRUE(BitEqual(ReadF32(y2), ReadF32(y1))) << "y";
    EXPECT_TRUE(BitEqual(ReadF32(dx2), ReadF32(dx1))) << "dx";
  }
}

TEST_F(DropoutTest, AfterAnActivationRefusesWhatItCannotDo) {
  cudl_tensor *x = Make(ctx_, 4, {1, 2, 3, 4}), *y = Make(ctx_, 4, {9, 9, 9, 9});
  cudl_tensor *mask = Make(ctx_, 4, {9, 9, 9, 9}), *wrong = Make(ctx_, 5);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 1, 2), CUDL_OK);
  for (cudl_activation_type t : {CUDL_ACT_SIGMOID, CUDL_ACT_TANH}) {
    EXPECT_EQ(cudl_activation_dropout_forward(ctx_, t, 0.0f, x, 0.5f, mask, y),
              CUDL_ERR_UNSUPPORTED);
    EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {cudl_activation_name(t), "output"}));
    EXPECT_EQ(cudl_activation_dropout_backward(ctx_, t, 0.0f, x, mask, x, y), CUDL_ERR_UNSUPPORTED);
  }
  EXPECT_EQ(cudl_activation_dropout_forward(ctx_, CUDL_ACT_COUNT, 0.0f, x, 0.5f, mask, y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_activation_dropout_forward(ctx_, CUDL_ACT_LEAKY_RELU, NAN, x, 0.5f, mask, y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_activation_dropout_forward(ctx_, CUDL_ACT_RELU, 0.0f, x, 1.5f, mask, y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_activation_dropout_forward(ctx_, CUDL_ACT_RELU, 0.0f, x, 0.5f, nullptr, y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_activation_dropout_forward(ctx_, CUDL_ACT_RELU, 0.0f, x, 0.5f, wrong, y),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_activation_dropout_forward(nullptr, CUDL_ACT_RELU, 0.0f, x, 0.5f, mask, y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_activation_dropout_backward(ctx_, CUDL_ACT_RELU, 0.0f, x, wrong, x, y),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_activation_dropout_backward(ctx_, CUDL_ACT_RELU, 0.0f, x, mask, nullptr, y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(y), {9, 9, 9, 9}));
  EXPECT_TRUE(BitEqual(ReadF32(mask), {9, 9, 9, 9}));
  EXPECT_EQ(Offset(ctx_), 2u);
}

}  // namespace
