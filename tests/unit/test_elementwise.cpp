// test_elementwise.cpp - add with a scale, multiply, scale, sum and mean:
// against references computed here, in place, bad input. CUDA:
// test_backends.cpp.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;
using cudl_test::ReadF32;
using cudl_test::WriteF32;

std::vector<float> Uniform(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-3.0f, 3.0f);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

class ElementwiseTest : public cudl_test::TensorFixture {};

TEST_F(ElementwiseTest, AddMulScaleMatchReference) {
  for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1021}, (int64_t{1} << 20) + 3}) {
    SCOPED_TRACE("n " + std::to_string(n));
    const std::vector<float> a = Uniform(static_cast<size_t>(n), 1), b = Uniform(static_cast<size_t>(n), 2);
    cudl_tensor *ta = Make(ctx_, {n}, a), *tb = Make(ctx_, {n}, b), *out = Make(ctx_, {n});
    ASSERT_EQ(cudl_add(ctx_, ta, -0.5f, tb, out), CUDL_OK) << cudl_context_last_error(ctx_);
    std::vector<float> got = ReadF32(out);
    // At most two float roundings (the product, the sum) after the exact
    // value: within 2 ulp of |a| + |alpha b|.
    for (size_t i = 0; i < a.size(); ++i) {
      const double want = static_cast<double>(a[i]) - 0.5 * b[i];
      ASSERT_NEAR(got[i], want, 2 * FLT_EPSILON * (std::fabs(a[i]) + 0.5 * std::fabs(b[i]))) << i;
    }
    ASSERT_EQ(cudl_mul(ctx_, ta, tb, out), CUDL_OK);
    got = ReadF32(out);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(got[i], a[i] * b[i]) << i;  // one rounding
    ASSERT_EQ(cudl_scale(ctx_, ta, 0.25f, out), CUDL_OK);
    got = ReadF32(out);
    for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(got[i], 0.25f * a[i]) << i;  // exact
  }
}

// The CPU's bf16 add reads and writes bf16 itself: the f32 add on the
// widened values, rounded once, bit for bit (ops.def's 16-bit definition),
// past the size that goes to threads, and in place.
TEST_F(ElementwiseTest, Bf16AddIsTheF32AddRoundedOnce) {
  for (int64_t n : {int64_t{7}, (int64_t{1} << 17) + 3}) {
    SCOPED_TRACE("n " + std::to_string(n));
    cudl_tensor *a = Make(ctx_, {n}, Uniform(static_cast<size_t>(n), 3)),
                *b = Make(ctx_, {n}, Uniform(static_cast<size_t>(n), 4)), *sum = Make(ctx_, {n});
    cudl_tensor *a16 = MakeOf(CUDL_DTYPE_BF16, {n}), *b16 = MakeOf(CUDL_DTYPE_BF16, {n}),
                *sum16 = MakeOf(CUDL_DTYPE_BF16, {n}), *want = MakeOf(CUDL_DTYPE_BF16, {n});
    ASSERT_EQ(cudl_tensor_convert(a16, a), CUDL_OK);
    ASSERT_EQ(cudl_tensor_convert(b16, b), CUDL_OK);
    ASSERT_EQ(cudl_tensor_convert(a, a16), CUDL_OK);  // the values bf16 holds
    ASSERT_EQ(cudl_tensor_convert(b, b16), CUDL_OK);
    ASSERT_EQ(cudl_add(ctx_, a, -0.75f, b, sum), CUDL_OK);
    ASSERT_EQ(cudl_tensor_convert(want, sum), CUDL_OK);
    ASSERT_EQ(cudl_add(ctx_, a16, -0.75f, b16, sum16), CUDL_OK);
    EXPECT_EQ(cudl_test::ReadBits16(sum16), cudl_test::ReadBits16(want));
    ASSERT_EQ(cudl_add(ctx_, a16, -0.75f, b16, a16), CUDL_OK);
    EXPECT_EQ(cudl_test::ReadBits16(a16), cudl_test::ReadBits16(want)) << "in place";
  }
}

TEST_F(ElementwiseTest, InPlaceAccumulation) {
  // acc += grad, three times, as a training step accumulates gradients.
  const std::vector<float> g = {1.5f, -2.0f, 0.25f};
  cudl_tensor *acc = Make(ctx_, {3}), *grad = Make(ctx_, {3}, g);
  for (int k = 0; k < 3; ++k) ASSERT_EQ(cudl_add(ctx_, acc, 1.0f, grad, acc), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(acc), {4.5f, -6.0f, 0.75f}));
  ASSERT_EQ(cudl_scale(ctx_, acc, 2.0f, acc), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(acc), {9.0f, -12.0f, 1.5f}));
}

TEST_F(ElementwiseTest, SumAndMean) {
  for (int64_t n : {int64_t{1}, int64_t{1021}, (int64_t{1} << 24) + 3}) {
    SCOPED_TRACE("n " + std::to_string(n));
    const std::vector<float> x = Uniform(static_cast<size_t>(n), 3);
    cudl_tensor *tx = Make(ctx_, {n}, x), *s = Make(ctx_, {}), *m = Make(ctx_, {1});
    ASSERT_EQ(cudl_sum(ctx_, tx, s), CUDL_OK);
    ASSERT_EQ(cudl_mean(ctx_, tx, m), CUDL_OK);
    double want = 0;
    for (float v : x) want += v;
    // The CPU adds in double in the same order: one rounding at the end.
    EXPECT_EQ(ReadF32(s)[0], static_cast<float>(want));
    EXPECT_EQ(ReadF32(m)[0], static_cast<float>(want / static_cast<double>(n)));
  }
  cudl_tensor *empty = Make(ctx_, {0, 4}), *s = Make(ctx_, {1}, {9});
  ASSERT_EQ(cudl_sum(ctx_, empty, s), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(s), {0.0f}));
  ASSERT_EQ(WriteF32(s, {9}), CUDL_OK);
  EXPECT_EQ(cudl_mean(ctx_, empty, s), CUDL_ERR_SHAPE);
  EXPECT_TRUE(BitEqual(ReadF32(s), {9.0f}));
}

// cudl_l2_norm: squares summed in double in order, the root rounded once;
// NaN and infinity come through; 16-bit data widens; 0 for no elements.
TEST_F(ElementwiseTest, L2Norm) {
  const std::vector<float> x = Uniform(100003, 5);
  cudl_tensor *tx = Make(ctx_, {100003}, x), *norm = Make(ctx_, {}, {9});
  ASSERT_EQ(cudl_l2_norm(ctx_, tx, norm), CUDL_OK) << cudl_context_last_error(ctx_);
  double squares = 0;
  for (float v : x) squares += static_cast<double>(v) * v;
  EXPECT_EQ(ReadF32(norm)[0], static_cast<float>(std::sqrt(squares)));
  cudl_tensor *h = MakeOf(CUDL_DTYPE_BF16, {4});
  ASSERT_EQ(cudl_tensor_fill(h, 2.0f), CUDL_OK);
  ASSERT_EQ(cudl_l2_norm(ctx_, h, norm), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(norm), {4.0f}));
  cudl_tensor *nan = Make(ctx_, {3}, {1, std::nanf(""), 2}), *inf = Make(ctx_, {2}, {1, INFINITY});
  ASSERT_EQ(cudl_l2_norm(ctx_, nan, norm), CUDL_OK);
  EXPECT_TRUE(std::isnan(ReadF32(norm)[0]));
  ASSERT_EQ(cudl_l2_norm(ctx_, inf, norm), CUDL_OK);
  EXPECT_TRUE(std::isinf(ReadF32(norm)[0]));
  cudl_tensor *empty = Make(ctx_, {0});
  ASSERT_EQ(cudl_l2_norm(ctx_, empty, norm), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(norm), {0.0f}));
  // Bad tensors: nothing written.
  ASSERT_EQ(WriteF32(norm, {9}), CUDL_OK);
  cudl_tensor *two = Make(ctx_, {2}), *h_norm = MakeOf(CUDL_DTYPE_BF16, {1});
  cudl_tensor *labels = MakeOf(CUDL_DTYPE_I32, {3}), *view = nullptr;
  EXPECT_EQ(cudl_l2_norm(ctx_, tx, two), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_l2_norm(ctx_, tx, h_norm), CUDL_ERR_DTYPE);
  EXPECT_EQ(cudl_l2_norm(ctx_, labels, norm), CUDL_ERR_DTYPE);
  EXPECT_EQ(cudl_l2_norm(ctx_, nullptr, norm), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_l2_norm(ctx_, tx, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(cudl_tensor_narrow(tx, 5, 1, &view), CUDL_OK);
  EXPECT_EQ(cudl_l2_norm(ctx_, tx, view), CUDL_ERR_INVALID_ARGUMENT) << "norm inside x";
  cudl_tensor_destroy(view);
  EXPECT_TRUE(BitEqual(ReadF32(norm), {9}));
}

TEST_F(ElementwiseTest, BadInputWritesNothing) {
  cudl_tensor *a = Make(ctx_, {2, 2}, {1, 2, 3, 4}), *b = Make(ctx_, {4}, {1, 1, 1, 1});
  cudl_tensor *out = Make(ctx_, {2, 2}, {9, 9, 9, 9}), *two = Make(ctx_, {2});
  EXPECT_EQ(cudl_add(ctx_, a, 1.0f, b, out), CUDL_ERR_SHAPE) << "same count, other shape";
  EXPECT_EQ(cudl_add(ctx_, a, std::nanf(""), a, out), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "alpha"));
  EXPECT_EQ(cudl_scale(ctx_, a, INFINITY, out), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_mul(ctx_, a, nullptr, out), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_sum(ctx_, a, two), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_sum(nullptr, a, out), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(out), {9, 9, 9, 9}));
}

// add, mul and scale take f32, bf16 or f16, every operand in one; sum
// and mean are f32-only.
TEST_F(ElementwiseTest, DtypeRule) {
  cudl_tensor *a = MakeOf(CUDL_DTYPE_F16, {5}), *b = MakeOf(CUDL_DTYPE_F16, {5});
  cudl_tensor *b_bf16 = MakeOf(CUDL_DTYPE_BF16, {5}), *out = Make(ctx_, {1}, {9});
  ASSERT_EQ(cudl_tensor_fill(a, 1.5f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(b, 2.0f), CUDL_OK);
  EXPECT_EQ(cudl_mul(ctx_, a, b, b), CUDL_OK) << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_test::ReadBits16(b), std::vector<uint16_t>(5, 0x4200)) << "1.5 * 2 = 3 in f16";
  EXPECT_EQ(cudl_add(ctx_, a, 1.0f, b_bf16, a), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"b", "bf16", "a", "f16"}));
  EXPECT_EQ(cudl_sum(ctx_, a, out), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"cudl_sum", "f16", "f32-only"}));
  EXPECT_TRUE(BitEqual(ReadF32(out), {9}));
  EXPECT_EQ(cudl_test::ReadBits16(a), std::vector<uint16_t>(5, 0x3e00)) << "a was written";
}

}  // namespace
