// test_activation.cpp - sigmoid, tanh, ReLU, leaky ReLU and ELU: forward
// against float64 references written here, backward against the analytic
// derivative and against central finite differences of the forward op,
// extremal inputs, in-place use, bad input. CUDA: test_backends.cpp.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <limits>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::ReadF32;
using cudl_test::WriteF32;

// One activation as the tests see it: the public calls, and float64
// references of the function and of its derivative (as a function of x).
struct Op {
  std::string name;
  float alpha;
  // true: backward takes the output y (sigmoid, tanh); false: the input x.
  bool backward_uses_output;
  // Piecewise-linear ops are exact in float; the others are within
  // kUlpTolerance of the float64 reference (libm's expf/tanhf/expm1f are
  // within 1-2 ulp, the sigmoid's division adds one more).
  bool exact;
  std::function<cudl_status(cudl_context *, const cudl_tensor *, cudl_tensor *)> forward;
  std::function<cudl_status(cudl_context *, const cudl_tensor *, const cudl_tensor *,
                            cudl_tensor *)>
      backward;
  std::function<double(double)> f;
  std::function<double(double)> df;
};

constexpr double kUlpTolerance = 8.0;

double Sigmoid(double x) { return 1.0 / (1.0 + std::exp(-x)); }

std::vector<Op> AllOps() {
  const float leaky = 0.01f, elu = 1.5f;
  return {
      {"sigmoid", 0.0f, true, false, cudl_sigmoid_forward, cudl_sigmoid_backward, Sigmoid,
       [](double x) { return Sigmoid(x) * (1.0 - Sigmoid(x)); }},
      {"tanh", 0.0f, true, false, cudl_tanh_forward, cudl_tanh_backward,
       [](double x) { return std::tanh(x); },
       [](double x) { return 1.0 - std::tanh(x) * std::tanh(x); }},
      {"relu", 0.0f, false, true, cudl_relu_forward, cudl_relu_backward,
       [](double x) { return x > 0 ? x : 0.0; }, [](double x) { return x > 0 ? 1.0 : 0.0; }},
      {"leaky_relu", leaky, false, true,
       [=](cudl_context *c, const cudl_tensor *x, cudl_tensor *y) {
         return cudl_leaky_relu_forward(c, x, leaky, y);
       },
       [=](cudl_context *c, const cudl_tensor *x, const cudl_tensor *dy, cudl_tensor *dx) {
         return cudl_leaky_relu_backward(c, x, leaky, dy, dx);
       },
       [=](double x) { return x > 0 ? x : static_cast<double>(leaky) * x; },
       [=](double x) { return x > 0 ? 1.0 : static_cast<double>(leaky); }},
      {"elu", elu, false, false,
       [=](cudl_context *c, const cudl_tensor *x, cudl_tensor *y) {
         return cudl_elu_forward(c, x, elu, y);
       },
       [=](cudl_context *c, const cudl_tensor *x, const cudl_tensor *dy, cudl_tensor *dx) {
         return cudl_elu_backward(c, x, elu, dy, dx);
       },
       [=](double x) { return x > 0 ? x : static_cast<double>(elu) * std::expm1(x); },
       [=](double x) { return x > 0 ? 1.0 : static_cast<double>(elu) * std::exp(x); }},
  };
}

// |got - want| within `ulps` units of float rounding of |want| (plus the
// smallest normal float, so that results that underflow compare as equal);
// NaN must match NaN, infinities must match exactly.
::testing::AssertionResult Close(double want, float got, double ulps, double abs_tol = 0.0) {
  if (std::isnan(want))
    return std::isnan(got) ? ::testing::AssertionSuccess()
                           : ::testing::AssertionFailure() << "got " << got << ", want NaN";
  if (std::isinf(want) || ulps == 0.0) {
    if (static_cast<double>(got) == static_cast<float>(want)) return ::testing::AssertionSuccess();
    return ::testing::AssertionFailure() << "got " << got << ", want " << static_cast<float>(want);
  }
  const double tol = ulps * FLT_EPSILON * std::fabs(want) + FLT_MIN + abs_tol;
  if (std::fabs(static_cast<double>(got) - want) <= tol) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "got " << got << ", want " << want << " (tolerance "
                                       << tol << ")";
}

std::vector<float> RandomValues(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

class ActivationTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK); }
  void TearDown() override {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    cudl_context_destroy(ctx_);
  }
  cudl_tensor *Make(cudl_context *ctx, const std::vector<int64_t> &shape,
                    const std::vector<float> &values = {},
                    cudl_dtype dtype = CUDL_DTYPE_F32) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx, dtype, static_cast<int>(shape.size()), shape.data(), &t),
              CUDL_OK);
    if (t != nullptr) {
      owned_.push_back(t);
      if (!values.empty()) {
        EXPECT_EQ(WriteF32(t, values), CUDL_OK);
      }
    }
    return t;
  }
  cudl_tensor *Make(const std::vector<int64_t> &shape, const std::vector<float> &values = {}) {
    return Make(ctx_, shape, values);
  }

  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> owned_;
};

// Shapes that catch indexing bugs: one element, primes, a non-multiple of
// 4 (the CUDA float4 tail), 4-D.
const std::vector<std::vector<int64_t>> kShapes = {{1}, {7, 13}, {1021}, {3, 5, 7, 11}};

int64_t Numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

TEST_F(ActivationTest, ForwardMatchesFloat64Reference) {
  for (const Op &op : AllOps()) {
    for (const auto &shape : kShapes) {
      SCOPED_TRACE(op.name + ", " + std::to_string(Numel(shape)) + " elements");
      const std::vector<float> xs = RandomValues(static_cast<size_t>(Numel(shape)), -8, 8, 1);
      cudl_tensor *x = Make(shape, xs);
      cudl_tensor *y = Make(shape);
      ASSERT_EQ(op.forward(ctx_, x, y), CUDL_OK) << cudl_context_last_error(ctx_);
      const std::vector<float> ys = ReadF32(y);
      for (size_t i = 0; i < xs.size(); ++i)
        ASSERT_TRUE(Close(op.f(xs[i]), ys[i], op.exact ? 0.0 : kUlpTolerance)) << "x " << xs[i];
    }
  }
}

TEST_F(ActivationTest, ExtremalInputs) {
  // Sigmoid and tanh must neither overflow nor give NaN up to |x| = 1e4 and
  // at infinity; NaN propagates through every op.
  const float inf = std::numeric_limits<float>::infinity();
  const std::vector<float> xs = {0.0f, -0.0f, 1e-30f, -1e-30f, 20.0f, -20.0f, 88.0f, -88.0f,
                                 104.0f, -104.0f, 1e4f, -1e4f, FLT_MAX, -FLT_MAX, inf, -inf,
                                 std::numeric_limits<float>::quiet_NaN()};
  for (const Op &op : AllOps()) {
    SCOPED_TRACE(op.name);
    cudl_tensor *x = Make({static_cast<int64_t>(xs.size())}, xs);
    cudl_tensor *y = Make({static_cast<int64_t>(xs.size())});
    ASSERT_EQ(op.forward(ctx_, x, y), CUDL_OK);
    const std::vector<float> ys = ReadF32(y);
    for (size_t i = 0; i < xs.size(); ++i) {
      // The float64 reference at FLT_MAX * alpha etc. is finite in double
      // but not in float: compare with the float-rounded reference.
      const double want = std::isnan(xs[i]) ? static_cast<double>(xs[i])
                                            : op.f(static_cast<double>(xs[i]));
      EXPECT_TRUE(Close(static_cast<double>(static_cast<float>(want)), ys[i],
                        op.exact ? 0.0 : kUlpTolerance))
          << "x " << xs[i];
      if (!std::isnan(xs[i]) && (op.name == "sigmoid" || op.name == "tanh")) {
        EXPECT_FALSE(std::isnan(ys[i])) << "x " << xs[i];
      }
    }
  }
}

TEST_F(ActivationTest, BackwardMatchesTheDerivative) {
  for (const Op &op : AllOps()) {
    for (const auto &shape : kShapes) {
      SCOPED_TRACE(op.name + ", " + std::to_string(Numel(shape)) + " elements");
      const size_t n = static_cast<size_t>(Numel(shape));
      const std::vector<float> xs = RandomValues(n, -6, 6, 2);
      const std::vector<float> gs = RandomValues(n, -2, 2, 3);
      cudl_tensor *x = Make(shape, xs);
      cudl_tensor *y = Make(shape);
      cudl_tensor *dy = Make(shape, gs);
      cudl_tensor *dx = Make(shape);
      ASSERT_EQ(op.forward(ctx_, x, y), CUDL_OK);
      ASSERT_EQ(op.backward(ctx_, op.backward_uses_output ? y : x, dy, dx), CUDL_OK)
          << cudl_context_last_error(ctx_);
      const std::vector<float> ys = ReadF32(y), dxs = ReadF32(dx);
      for (size_t i = 0; i < n; ++i) {
        // For sigmoid and tanh the derivative is evaluated from the float
        // output y, as documented, so the reference uses y too.
        double d;
        if (op.name == "sigmoid") d = static_cast<double>(ys[i]) * (1.0 - ys[i]);
        else if (op.name == "tanh") d = 1.0 - static_cast<double>(ys[i]) * ys[i];
        else d = op.df(xs[i]);
        // A few float roundings after the reference (products); for tanh
        // and sigmoid also 1 - y*y or 1 - y, which cancel as |y| nears 1:
        // the rounding of y*y (half an ulp of 1) then costs up to
        // |dy| * FLT_EPSILON in absolute terms.
        const double cancel = op.backward_uses_output ? std::fabs(gs[i]) * FLT_EPSILON : 0.0;
        ASSERT_TRUE(Close(d * gs[i], dxs[i], op.exact ? 1.0 : kUlpTolerance, cancel))
            << "x " << xs[i];
      }
    }
  }
}

TEST_F(ActivationTest, BackwardMatchesFiniteDifferences) {
  // Central differences of the forward op itself, in double from float
  // outputs, with h = 1e-2 and inputs kept 0.05 away from the kinks of the
  // piecewise ops. Error budget: truncation h^2/6 * |f'''| <= 2e-5 for these
  // functions on [-4, 4], rounding 2 * 6e-8 * |f| / (2h) <= 3e-5 for |f| <= 4;
  // tolerance 1e-3 absolute plus 1e-3 relative leaves a wide margin while a
  // wrong formula (a missing factor, a sign) is off by O(1).
  const double h = 1e-2;
  for (const Op &op : AllOps()) {
    SCOPED_TRACE(op.name);
    std::vector<float> xs = RandomValues(91, -4, 4, 4);
    for (float &v : xs)
      if (std::fabs(v) < 0.05f) v = v < 0 ? -0.05f - std::fabs(v) : 0.05f + v;
    std::vector<float> plus(xs.size()), minus(xs.size());
    for (size_t i = 0; i < xs.size(); ++i) {
      plus[i] = static_cast<float>(xs[i] + h);
      minus[i] = static_cast<float>(xs[i] - h);
    }
    const std::vector<int64_t> shape = {7, 13};
    cudl_tensor *x = Make(shape, xs), *xp = Make(shape, plus), *xm = Make(shape, minus);
    cudl_tensor *y = Make(shape), *yp = Make(shape), *ym = Make(shape);
    cudl_tensor *ones = Make(shape, std::vector<float>(xs.size(), 1.0f));
    cudl_tensor *dx = Make(shape);
    ASSERT_EQ(op.forward(ctx_, x, y), CUDL_OK);
    ASSERT_EQ(op.forward(ctx_, xp, yp), CUDL_OK);
    ASSERT_EQ(op.forward(ctx_, xm, ym), CUDL_OK);
    ASSERT_EQ(op.backward(ctx_, op.backward_uses_output ? y : x, ones, dx), CUDL_OK);
    const std::vector<float> fp = ReadF32(yp), fm = ReadF32(ym), g = ReadF32(dx);
    for (size_t i = 0; i < xs.size(); ++i) {
      // The step actually taken, after rounding x +- h to float.
      const double step = static_cast<double>(plus[i]) - static_cast<double>(minus[i]);
      const double fd = (static_cast<double>(fp[i]) - fm[i]) / step;
      EXPECT_NEAR(g[i], fd, 1e-3 + 1e-3 * std::fabs(fd)) << "x " << xs[i];
    }
  }
}

TEST_F(ActivationTest, InPlace) {
  for (const Op &op : AllOps()) {
    SCOPED_TRACE(op.name);
    const std::vector<float> xs = RandomValues(1021, -5, 5, 5);
    cudl_tensor *a = Make({1021}, xs);
    cudl_tensor *x = Make({1021}, xs);
    cudl_tensor *y = Make({1021});
    ASSERT_EQ(op.forward(ctx_, a, a), CUDL_OK);
    ASSERT_EQ(op.forward(ctx_, x, y), CUDL_OK);
    EXPECT_TRUE(cudl_test::BitEqual(ReadF32(a), ReadF32(y)));
    // Backward with dx == dy.
    const std::vector<float> gs = RandomValues(1021, -1, 1, 6);
    cudl_tensor *g = Make({1021}, gs), *g2 = Make({1021}, gs), *dx = Make({1021});
    cudl_tensor *saved = op.backward_uses_output ? y : x;
    ASSERT_EQ(op.backward(ctx_, saved, g, g), CUDL_OK);
    ASSERT_EQ(op.backward(ctx_, saved, g2, dx), CUDL_OK);
    EXPECT_TRUE(cudl_test::BitEqual(ReadF32(g), ReadF32(dx)));
  }
}

// The CPU's 16-bit activations are the f32 op on the widened values
// rounded once (ops.def's 16-bit definition), bit for bit, forward and
// backward, short and past the size that goes to threads, in place too.
TEST_F(ActivationTest, SixteenBitIsTheF32OpRoundedOnce) {
  for (const Op &op : AllOps())
    for (cudl_dtype dtype : {CUDL_DTYPE_BF16, CUDL_DTYPE_F16})
      for (int64_t n : {int64_t{7}, int64_t{100003}}) {
        SCOPED_TRACE(op.name + " " + cudl_dtype_name(dtype) + " " + std::to_string(n));
        // f32 and 16-bit tensors of the same values.
        auto pair = [&](float lo, float hi, uint32_t seed, cudl_tensor **wide,
                        cudl_tensor **narrow) {
          *wide = Make({n}, RandomValues(static_cast<size_t>(n), lo, hi, seed));
          *narrow = Make(ctx_, {n}, {}, dtype);
          ASSERT_EQ(cudl_tensor_convert(*narrow, *wide), CUDL_OK);
          ASSERT_EQ(cudl_tensor_convert(*wide, *narrow), CUDL_OK);
        };
        auto same = [&](cudl_tensor *wide, cudl_tensor *narrow) {
          cudl_tensor *rounded = Make(ctx_, {n}, {}, dtype);
          EXPECT_EQ(cudl_tensor_convert(rounded, wide), CUDL_OK);
          return cudl_test::ReadBits16(rounded) == cudl_test::ReadBits16(narrow);
        };
        cudl_tensor *x32, *x16, *g32, *g16;
        pair(-6, 6, 11, &x32, &x16);
        pair(-1, 1, 12, &g32, &g16);
        cudl_tensor *y32 = Make({n}), *y16 = Make(ctx_, {n}, {}, dtype), *dx32 = Make({n}),
                    *dx16 = Make(ctx_, {n}, {}, dtype);
        ASSERT_EQ(op.forward(ctx_, x32, y32), CUDL_OK);
        ASSERT_EQ(op.forward(ctx_, x16, y16), CUDL_OK);
        EXPECT_TRUE(same(y32, y16)) << "forward";
        // The backward from the 16-bit forward's values, widened.
        cudl_tensor *saved16 = op.backward_uses_output ? y16 : x16;
        cudl_tensor *saved32 = Make({n});
        ASSERT_EQ(cudl_tensor_convert(saved32, saved16), CUDL_OK);
        ASSERT_EQ(op.backward(ctx_, saved32, g32, dx32), CUDL_OK);
        ASSERT_EQ(op.backward(ctx_, saved16, g16, dx16), CUDL_OK);
        EXPECT_TRUE(same(dx32, dx16)) << "backward";
        ASSERT_EQ(op.backward(ctx_, saved16, g16, g16), CUDL_OK);
        EXPECT_TRUE(same(dx32, g16)) << "backward in place";
      }
}

TEST_F(ActivationTest, EmptyTensors) {
  for (const Op &op : AllOps()) {
    cudl_tensor *x = Make({0, 3}), *y = Make({0, 3});
    EXPECT_EQ(op.forward(ctx_, x, y), CUDL_OK) << op.name;
    EXPECT_EQ(op.backward(ctx_, x, x, y), CUDL_OK) << op.name;
  }
}

// The names the model's diagnostics report: one per type, none past the end.
TEST(ActivationNames, EveryTypeHasItsNameAndNothingElseHasOne) {
  // Every value below CUDL_ACT_COUNT is a type with a name of its own, in
  // lower case; the first five keep the names files and logs already use.
  // A type added later needs no line here.
  const std::vector<std::string> known = {"sigmoid", "tanh", "relu", "leaky_relu", "elu"};
  ASSERT_GE(static_cast<size_t>(CUDL_ACT_COUNT), known.size());
  std::set<std::string> seen;
  for (int t = 0; t < CUDL_ACT_COUNT; ++t) {
    const char *name = cudl_activation_name(static_cast<cudl_activation_type>(t));
    ASSERT_NE(name, nullptr) << "type " << t;
    const std::string s = name;
    EXPECT_FALSE(s.empty()) << "type " << t;
    EXPECT_EQ(s.find_first_not_of("abcdefghijklmnopqrstuvwxyz_0123456789"), std::string::npos)
        << s;
    EXPECT_TRUE(seen.insert(s).second) << "two types are called " << s;
    if (static_cast<size_t>(t) < known.size()) {
      EXPECT_EQ(s, known[static_cast<size_t>(t)]);
    }
  }
  EXPECT_EQ(cudl_activation_name(CUDL_ACT_COUNT), nullptr);
  EXPECT_EQ(cudl_activation_name(static_cast<cudl_activation_type>(-1)), nullptr);
}

TEST_F(ActivationTest, LargeTensor) {
  // More than 2^24 elements: 64-bit indexing and the parallel loop.
  const int64_t n = (int64_t{1} << 24) + 3;
  std::vector<float> xs(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) xs[static_cast<size_t>(i)] = static_cast<float>(i % 17) - 8.0f;
  cudl_tensor *x = Make({n}, xs), *y = Make({n});
  ASSERT_EQ(cudl_relu_forward(ctx_, x, y), CUDL_OK);
  const std::vector<float> ys = ReadF32(y);
  for (int64_t i = 0; i < n; ++i) {
    const float want = xs[static_cast<size_t>(i)] > 0 ? xs[static_cast<size_t>(i)] : 0.0f;
    ASSERT_EQ(ys[static_cast<size_t>(i)], want) << "element " << i;
  }
}

TEST_F(ActivationTest, BadInputWritesNothing) {
  cudl_context *other = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &other), CUDL_OK);
  cudl_tensor *x = Make({4}, {1, -2, 3, -4});
  cudl_tensor *y = Make({4}, {9, 9, 9, 9});
  cudl_tensor *wrong_shape = Make({5});
  cudl_tensor *other_shape_same_count = Make({2, 2});
  cudl_tensor *half = Make(ctx_, {4}, {}, CUDL_DTYPE_F16);
  cudl_tensor *foreign = Make(other, {4}, {1, 1, 1, 1});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  struct Case {
    const char *what;
    cudl_status want;
    std::function<cudl_status()> call;
  };
  const std::vector<Case> cases = {
      {"NULL ctx", CUDL_ERR_INVALID_ARGUMENT, [&] { return cudl_relu_forward(nullptr, x, y); }},
      {"NULL x", CUDL_ERR_INVALID_ARGUMENT, [&] { return cudl_sigmoid_forward(ctx_, nullptr, y); }},
      {"NULL y", CUDL_ERR_INVALID_ARGUMENT, [&] { return cudl_tanh_forward(ctx_, x, nullptr); }},
      {"NULL dy", CUDL_ERR_INVALID_ARGUMENT,
       [&] { return cudl_relu_backward(ctx_, x, nullptr, y); }},
      {"shape", CUDL_ERR_SHAPE, [&] { return cudl_relu_forward(ctx_, x, wrong_shape); }},
      {"same count, other shape", CUDL_ERR_SHAPE,
       [&] { return cudl_elu_forward(ctx_, x, 1.0f, other_shape_same_count); }},
      {"dtype", CUDL_ERR_DTYPE, [&] { return cudl_sigmoid_forward(ctx_, half, y); }},
      {"other context", CUDL_ERR_DEVICE_MISMATCH,
       [&] { return cudl_tanh_backward(ctx_, foreign, x, y); }},
      {"NaN alpha", CUDL_ERR_INVALID_ARGUMENT,
       [&] { return cudl_leaky_relu_forward(ctx_, x, nan, y); }},
      {"infinite alpha", CUDL_ERR_INVALID_ARGUMENT,
       [&] { return cudl_elu_backward(ctx_, x, std::numeric_limits<float>::infinity(), x, y); }},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(c.call(), c.want);
    if (std::string(c.what) != "NULL ctx") {
      EXPECT_STRNE(cudl_context_last_error(ctx_), "");
    }
    EXPECT_TRUE(cudl_test::BitEqual(ReadF32(y), {9, 9, 9, 9})) << "y was written";
  }
  // The message names the argument.
  EXPECT_EQ(cudl_relu_forward(ctx_, x, wrong_shape), CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "y"));
  EXPECT_EQ(cudl_leaky_relu_forward(ctx_, x, nan, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "alpha"));
  // And the context still works.
  EXPECT_EQ(cudl_relu_forward(ctx_, x, y), CUDL_OK);
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(y), {1, 0, 3, 0}));
  cudl_test::DestroyTensorsOf(other, &owned_);
  cudl_context_destroy(other);
}

// ---------------------------------------------------------------------------
// PReLU
// ---------------------------------------------------------------------------

// Float64 reference of PReLU backward's slope gradient for x viewed as
// [outer, channels, inner]; also the sum of |terms|, which bounds rounding.
void PreluSlopeGradient(const std::vector<float> &x, const std::vector<float> &dy,
                        int64_t outer, int64_t channels, int64_t inner,
                        std::vector<double> *sum, std::vector<double> *abs_sum) {
  sum->assign(static_cast<size_t>(channels), 0.0);
  abs_sum->assign(static_cast<size_t>(channels), 0.0);
  for (int64_t n = 0; n < outer; ++n)
    for (int64_t c = 0; c < channels; ++c)
      for (int64_t i = 0; i < inner; ++i) {
        const size_t k = static_cast<size_t>((n * channels + c) * inner + i);
        if (x[k] <= 0.0f) {
          (*sum)[static_cast<size_t>(c)] += static_cast<double>(dy[k]) * x[k];
          (*abs_sum)[static_cast<size_t>(c)] += std::fabs(static_cast<double>(dy[k]) * x[k]);
        }
      }
}

TEST_F(ActivationTest, PreluForwardAndBackwardPerChannelAndShared) {
  const std::vector<int64_t> shape = {2, 3, 5, 7};
  const size_t n = 2 * 3 * 5 * 7;
  const std::vector<float> xs = RandomValues(n, -3, 3, 11);
  const std::vector<float> gs = RandomValues(n, -1, 1, 12);
  struct Case {
    std::vector<int64_t> slope_shape;
    std::vector<float> slope;
  };
  for (const Case &c : {Case{{3}, {0.1f, -0.2f, 0.25f}}, Case{{1}, {0.3f}},
                        Case{{1, 3, 1, 1}, {0.5f, 0.0f, 2.0f}}}) {
    SCOPED_TRACE(std::to_string(c.slope.size()) + " slope(s)");
    const int64_t channels = static_cast<int64_t>(c.slope.size());
    const int64_t outer = channels == 1 ? 1 : 2, inner = channels == 1 ? int64_t(n) : 35;
    cudl_tensor *x = Make(shape, xs), *y = Make(shape), *dy = Make(shape, gs), *dx = Make(shape);
    cudl_tensor *a = Make(c.slope_shape, c.slope), *da = Make(c.slope_shape, c.slope);
    ASSERT_EQ(cudl_prelu_forward(ctx_, x, a, y), CUDL_OK) << cudl_context_last_error(ctx_);
    ASSERT_EQ(cudl_prelu_backward(ctx_, x, a, dy, dx, da), CUDL_OK)
        << cudl_context_last_error(ctx_);
    const std::vector<float> ys = ReadF32(y), dxs = ReadF32(dx), das = ReadF32(da);
    for (size_t i = 0; i < n; ++i) {
      const float slope = c.slope[(i / static_cast<size_t>(inner)) % c.slope.size()];
      // One multiplication each: exact against the same float product.
      ASSERT_EQ(ys[i], xs[i] > 0 ? xs[i] : slope * xs[i]) << i;
      ASSERT_EQ(dxs[i], xs[i] > 0 ? gs[i] : slope * gs[i]) << i;
    }
    std::vector<double> want, bound;
    PreluSlopeGradient(xs, gs, outer, channels, inner, &want, &bound);
    for (size_t k = 0; k < c.slope.size(); ++k)
      // The CPU sums in double and rounds once: within 1 ulp of the sum,
      // and the double sum's own error is far below that.
      EXPECT_NEAR(das[k], want[k], FLT_EPSILON * (std::fabs(want[k]) + 1e-30)) << "channel " << k;
    // Finite differences of sum(dy * y) in the slope (linear: exact up to
    // rounding) confirm the formula itself.
    for (size_t k = 0; k < c.slope.size(); ++k) {
      std::vector<float> plus = c.slope, minus = c.slope;
      plus[k] += 0.125f;
      minus[k] -= 0.125f;
      cudl_tensor *ap = Make(c.slope_shape, plus), *am = Make(c.slope_shape, minus);
      cudl_tensor *yp = Make(shape), *ym = Make(shape);
      ASSERT_EQ(cudl_prelu_forward(ctx_, x, ap, yp), CUDL_OK);
      ASSERT_EQ(cudl_prelu_forward(ctx_, x, am, ym), CUDL_OK);
      const std::vector<float> fp = ReadF32(yp), fm = ReadF32(ym);
      double lp = 0, lm = 0;
      for (size_t i = 0; i < n; ++i) {
        lp += static_cast<double>(gs[i]) * fp[i];
        lm += static_cast<double>(gs[i]) * fm[i];
      }
      EXPECT_NEAR(das[k], (lp - lm) / 0.25, 1e-4 * (bound[k] + 1)) << "channel " << k;
    }
  }
}

TEST_F(ActivationTest, PreluBackwardIsDeterministicAndHandlesEmptyInput) {
  const std::vector<float> xs = RandomValues(4 * 8 * 9, -1, 1, 13);
  cudl_tensor *x = Make({4, 8, 9}, xs), *dy = Make({4, 8, 9}, xs), *dx = Make({4, 8, 9});
  cudl_tensor *a = Make({8}, std::vector<float>(8, 0.25f));
  cudl_tensor *d1 = Make({8}), *d2 = Make({8});
  ASSERT_EQ(cudl_prelu_backward(ctx_, x, a, dy, dx, d1), CUDL_OK);
  ASSERT_EQ(cudl_prelu_backward(ctx_, x, a, dy, dx, d2), CUDL_OK);
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(d1), ReadF32(d2)));
  // No elements: the slope gradient is defined, and zero.
  cudl_tensor *ex = Make({0, 8, 3}), *edx = Make({0, 8, 3});
  cudl_tensor *ed = Make({8}, std::vector<float>(8, 7.0f));
  ASSERT_EQ(cudl_prelu_backward(ctx_, ex, a, ex, edx, ed), CUDL_OK);
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(ed), std::vector<float>(8, 0.0f)));
}

TEST_F(ActivationTest, PreluBadInput) {
  cudl_tensor *x = Make({2, 3, 4}, RandomValues(24, -1, 1, 14));
  cudl_tensor *y = Make({2, 3, 4}, std::vector<float>(24, 9.0f));
  cudl_tensor *a4 = Make({4}), *a3 = Make({3}), *d4 = Make({4});
  cudl_tensor *flat = Make({24}), *flat_y = Make({24});
  EXPECT_EQ(cudl_prelu_forward(ctx_, x, a4, y), CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "slope"));
  EXPECT_EQ(cudl_prelu_forward(ctx_, flat, a3, flat_y), CUDL_ERR_SHAPE)
      << "1-D input has no channel dimension";
  EXPECT_EQ(cudl_prelu_forward(ctx_, x, nullptr, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_prelu_backward(ctx_, x, a3, x, y, d4), CUDL_ERR_SHAPE) << "dslope's shape";
  EXPECT_EQ(cudl_prelu_backward(ctx_, x, a3, x, y, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(y), std::vector<float>(24, 9.0f))) << "y was written";
}

// ---------------------------------------------------------------------------
// RReLU
// ---------------------------------------------------------------------------

TEST_F(ActivationTest, RreluTrainingDrawsDocumentedSlopes) {
  const float lower = 0.125f, upper = 1.0f / 3.0f;
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1021}}) {
    SCOPED_TRACE("n " + std::to_string(n));
    std::vector<float> xs = RandomValues(static_cast<size_t>(n), -2, 2, 15);
    if (n > 2) xs[2] = 0.0f;  // zero takes a slope, as in PyTorch
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, 99, 12345), CUDL_OK);
    cudl_tensor *x = Make({n}, xs), *y = Make({n}), *noise = Make({n});
    ASSERT_EQ(cudl_rrelu_forward(ctx_, x, lower, upper, 1, noise, y), CUDL_OK)
        << cudl_context_last_error(ctx_);
    uint64_t seed = 0, offset = 0;
    ASSERT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
    EXPECT_EQ(offset, 12345u + (static_cast<uint64_t>(n) + 3) / 4);
    const std::vector<float> slopes = cudl_test::ReferenceUniform(n, 99, 12345, lower, upper);
    const std::vector<float> ns = ReadF32(noise), ys = ReadF32(y);
    for (size_t i = 0; i < xs.size(); ++i) {
      const float m = xs[i] > 0 ? 1.0f : slopes[i];
      ASSERT_EQ(ns[i], m) << i;
      ASSERT_EQ(ys[i], xs[i] * m) << i;
      if (xs[i] <= 0) {
        ASSERT_GE(ns[i], lower);
        ASSERT_LT(ns[i], upper);
      }
    }
    // Backward multiplies by the kept noise.
    const std::vector<float> gs = RandomValues(static_cast<size_t>(n), -1, 1, 16);
    cudl_tensor *dy = Make({n}, gs), *dx = Make({n});
    ASSERT_EQ(cudl_rrelu_backward(ctx_, noise, dy, dx), CUDL_OK);
    const std::vector<float> dxs = ReadF32(dx);
    for (size_t i = 0; i < xs.size(); ++i) ASSERT_EQ(dxs[i], gs[i] * ns[i]) << i;
  }
}

TEST_F(ActivationTest, RreluEvaluationUsesTheMeanSlope) {
  const std::vector<float> xs = {-2.0f, -0.5f, 0.0f, 0.5f, 3.0f};
  cudl_tensor *x = Make({5}, xs), *y = Make({5}), *noise = Make({5});
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 1, 77), CUDL_OK);
  ASSERT_EQ(cudl_rrelu_forward(ctx_, x, 0.25f, 0.5f, 0, noise, y), CUDL_OK);
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(noise), {0.375f, 0.375f, 0.375f, 1.0f, 1.0f}));
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(y), {-0.75f, -0.1875f, 0.0f, 0.5f, 3.0f}));
  // No noise tensor needed for inference; no random numbers consumed.
  ASSERT_EQ(cudl_rrelu_forward(ctx_, x, 0.25f, 0.5f, 0, nullptr, y), CUDL_OK);
  uint64_t seed = 0, offset = 0;
  ASSERT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
  EXPECT_EQ(offset, 77u);
}

TEST_F(ActivationTest, RreluBadInputChangesNothing) {
  cudl_tensor *x = Make({4}, {1, -1, 2, -2}), *y = Make({4}, {9, 9, 9, 9});
  cudl_tensor *noise = Make({4}, {9, 9, 9, 9}), *wrong = Make({3});
  const float nan = std::numeric_limits<float>::quiet_NaN();
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 5, 6), CUDL_OK);
  EXPECT_EQ(cudl_rrelu_forward(ctx_, x, 0.1f, 0.3f, 1, nullptr, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "noise"));
  EXPECT_EQ(cudl_rrelu_forward(ctx_, x, 0.3f, 0.1f, 1, noise, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_rrelu_forward(ctx_, x, -0.1f, 0.1f, 1, noise, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_rrelu_forward(ctx_, x, nan, 0.1f, 1, noise, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_rrelu_forward(ctx_, x, 0.1f, 0.3f, 1, wrong, y), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_rrelu_backward(ctx_, wrong, x, y), CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(y), {9, 9, 9, 9}));
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(noise), {9, 9, 9, 9}));
  uint64_t seed = 0, offset = 0;
  ASSERT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
  EXPECT_EQ(offset, 6u) << "a failed call consumed random numbers";
}

// ---------------------------------------------------------------------------
// CUDA against the CPU
// ---------------------------------------------------------------------------

// The CPU sigmoid, tanh and ELU compute e^x themselves (a polynomial that
// vectorises, not expf), and tanh and ELU near 0 their Taylor series: every
// float step of [-110, 30] (the gradual-underflow range below -87
// included), the neighbourhood of 0 and the switches at |x| = 0.3, against
// float64.
TEST_F(ActivationTest, SigmoidTanhAndEluAcrossTheirWholeRange) {
  std::vector<float> xs;
  for (double x = -110.0; x <= 30.0; x += 0.0037) xs.push_back(static_cast<float>(x));
  for (float x = -1e-3f; x <= 1e-3f; x += 1.3e-6f) xs.push_back(x);
  for (float x = 0.29f; x <= 0.31f; x += 1e-5f) {
    xs.push_back(x);
    xs.push_back(-x);
  }
  for (float x : {-103.9f, -103.97f, -104.0f, -87.33f, -87.34f, 88.0f, 89.0f, 1e-30f, -1e-30f,
                  0.3f, -0.3f, std::nextafter(0.3f, 0.0f), 0.0f, -0.0f})
    xs.push_back(x);
  const int64_t n = static_cast<int64_t>(xs.size());
  cudl_tensor *x = Make({n}, xs), *s = Make({n}), *t = Make({n});
  ASSERT_EQ(cudl_sigmoid_forward(ctx_, x, s), CUDL_OK);
  ASSERT_EQ(cudl_tanh_forward(ctx_, x, t), CUDL_OK);
  // ELU (alpha 1.5) forward and backward (dy = 1) likewise: e^x - 1 and e^x.
  cudl_tensor *e = Make({n}), *ones = Make({n}, std::vector<float>(xs.size(), 1.0f)),
              *de = Make({n});
  ASSERT_EQ(cudl_elu_forward(ctx_, x, 1.5f, e), CUDL_OK);
  ASSERT_EQ(cudl_elu_backward(ctx_, x, 1.5f, ones, de), CUDL_OK);
  const std::vector<float> es = ReadF32(e), des = ReadF32(de);
  for (size_t i = 0; i < xs.size(); ++i) {
    const double v = xs[i];
    ASSERT_TRUE(Close(v > 0 ? v : 1.5 * std::expm1(v), es[i], 4.0)) << "elu x " << xs[i];
    ASSERT_TRUE(Close(v > 0 ? 1.0 : 1.5 * std::exp(v), des[i], 4.0)) << "elu' x " << xs[i];
  }
  const std::vector<float> ss = ReadF32(s), ts = ReadF32(t);
  for (size_t i = 0; i < xs.size(); ++i) {
    ASSERT_TRUE(Close(Sigmoid(xs[i]), ss[i], 4.0)) << "sigmoid x " << xs[i];
    ASSERT_TRUE(Close(std::tanh(static_cast<double>(xs[i])), ts[i], 4.0)) << "tanh x " << xs[i];
    if (xs[i] == 0.0f) {
      EXPECT_EQ(std::signbit(ts[i]), std::signbit(xs[i])) << "tanh keeps -0";
    }
  }
}

// The dtype rule (cudl/tensor.h): x, y and the gradients share one float
// dtype, which picks the entry; PReLU's slopes and their gradient are f32
// whatever it is. A break is CUDL_ERR_DTYPE naming the tensor and both
// dtypes, and writes nothing.
TEST_F(ActivationTest, DataShareOneDtypeAndSlopesStayF32) {
  const cudl_dtype bf16 = CUDL_DTYPE_BF16, f16 = CUDL_DTYPE_F16;
  cudl_tensor *x = Make(ctx_, {2, 3}, {}, bf16), *y = Make(ctx_, {2, 3}, {}, bf16);
  cudl_tensor *y_f16 = Make(ctx_, {2, 3}, {}, f16), *y_f32 = Make({2, 3}, std::vector<float>(6, 9));
  cudl_tensor *ints = Make(ctx_, {2, 3}, {}, CUDL_DTYPE_I32);
  ASSERT_EQ(cudl_tensor_fill(x, -1.5f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(y_f16, 7.0f), CUDL_OK);
  // All bf16: accepted (what it computes is test_backends.cpp's).
  EXPECT_EQ(cudl_relu_forward(ctx_, x, y), CUDL_OK) << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_leaky_relu_backward(ctx_, x, 0.1f, x, y), CUDL_OK);
  const std::vector<uint16_t> y_f16_bits = cudl_test::ReadBits16(y_f16);
  EXPECT_EQ(cudl_relu_forward(ctx_, x, y_f16), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"y", "f16", "x", "bf16"}));
  EXPECT_EQ(cudl_tanh_forward(ctx_, x, y_f32), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"y", "f32", "x", "bf16"}));
  EXPECT_EQ(cudl_relu_backward(ctx_, x, y_f16, y), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"dy", "f16", "bf16"}));
  EXPECT_EQ(cudl_sigmoid_forward(ctx_, ints, ints), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"x", "i32", "f32, bf16 or f16"}));
  EXPECT_EQ(cudl_test::ReadBits16(y_f16), y_f16_bits) << "y was written";
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(y_f32), std::vector<float>(6, 9))) << "y was written";

  // PReLU: bf16 data with f32 slopes; slopes in the data's dtype refused.
  cudl_tensor *slope = Make({3}, {0.25f, 0.5f, -1.0f}), *dslope = Make({3});
  cudl_tensor *slope16 = Make(ctx_, {3}, {}, bf16), *dslope16 = Make(ctx_, {3}, {}, bf16);
  EXPECT_EQ(cudl_prelu_forward(ctx_, x, slope, y), CUDL_OK) << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_prelu_backward(ctx_, x, slope, x, y, dslope), CUDL_OK);
  EXPECT_EQ(cudl_prelu_forward(ctx_, x, slope16, y_f16), CUDL_ERR_DTYPE) << "y first";
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"y", "f16"}));
  EXPECT_EQ(cudl_prelu_forward(ctx_, x, slope16, y), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"slope", "bf16", "must be f32"}));
  EXPECT_EQ(cudl_prelu_backward(ctx_, x, slope, x, y, dslope16), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"dslope", "bf16", "must be f32"}));
  // And the context still works.
  EXPECT_EQ(cudl_relu_forward(ctx_, x, y), CUDL_OK);
}

}  // namespace
