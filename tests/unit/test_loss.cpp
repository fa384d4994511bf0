// test_loss.cpp - softmax, log-softmax, MSE and BCE-with-logits against
// float64 references written here, extremal inputs, backward against the
// derivative and finite differences, bad input, and what CUDA does with an
// invalid label. CUDA against float64: test_backends.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
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

std::vector<float> Uniform(size_t n, float lo, float hi, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

// Row-wise float64 softmax or log-softmax over rows of `cols`.
std::vector<double> RefSoftmax(const std::vector<float> &x, int64_t cols, bool is_log) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / static_cast<size_t>(cols); ++r) {
    const size_t b = r * static_cast<size_t>(cols);
    double m = -INFINITY;
    for (int64_t i = 0; i < cols; ++i) m = std::max(m, static_cast<double>(x[b + static_cast<size_t>(i)]));
    double s = 0;
    for (int64_t i = 0; i < cols; ++i) s += std::exp(x[b + static_cast<size_t>(i)] - m);
    for (int64_t i = 0; i < cols; ++i) {
      const double v = x[b + static_cast<size_t>(i)] - m;
      y[b + static_cast<size_t>(i)] = is_log ? v - std::log(s) : std::exp(v) / s;
    }
  }
  return y;
}

class LossTest : public cudl_test::TensorFixture {};

const std::vector<std::vector<int64_t>> kShapes = {{1, 1}, {7, 13}, {3, 1021}, {2, 3, 5}, {10}};

TEST_F(LossTest, SoftmaxAndLogSoftmaxMatchFloat64) {
  for (bool is_log : {false, true}) {
    for (const auto &shape : kShapes) {
      SCOPED_TRACE(std::string(is_log ? "log_softmax " : "softmax ") +
                   std::to_string(shape.back()) + " columns");
      int64_t n = 1;
      for (int64_t d : shape) n *= d;
      const std::vector<float> xs = Uniform(static_cast<size_t>(n), -10, 10, 1);
      cudl_tensor *x = Make(ctx_, shape, xs), *y = Make(ctx_, shape);
      ASSERT_EQ(is_log ? cudl_log_softmax_forward(ctx_, x, y) : cudl_softmax_forward(ctx_, x, y),
                CUDL_OK)
          << cudl_context_last_error(ctx_);
      const std::vector<double> want = RefSoftmax(xs, shape.back(), is_log);
      const std::vector<float> ys = ReadF32(y);
      // The CPU computes in double and rounds once: 1 ulp (2 allowed).
      for (size_t i = 0; i < ys.size(); ++i)
        ASSERT_NEAR(ys[i], want[i], 2 * FLT_EPSILON * std::fabs(want[i]) + FLT_MIN) << i;
    }
  }
}

TEST_F(LossTest, SoftmaxExtremes) {
  // exp would overflow without the max shift; NaN rows stay NaN, other rows
  // are untouched by them.
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::vector<float> xs = {1e4f, 1e4f - 1, -1e4f, 88.0f, 89.0f, 90.0f, 1.0f, nan, 2.0f};
  cudl_tensor *x = Make(ctx_, {3, 3}, xs), *y = Make(ctx_, {3, 3}), *ly = Make(ctx_, {3, 3});
  ASSERT_EQ(cudl_softmax_forward(ctx_, x, y), CUDL_OK);
  ASSERT_EQ(cudl_log_softmax_forward(ctx_, x, ly), CUDL_OK);
  const std::vector<float> ys = ReadF32(y), ls = ReadF32(ly);
  const std::vector<double> want = RefSoftmax({1e4f, 1e4f - 1, -1e4f, 88, 89, 90}, 3, false);
  for (size_t i = 0; i < 6; ++i) {
    ASSERT_TRUE(std::isfinite(ys[i])) << i;
    ASSERT_NEAR(ys[i], want[i], 2 * FLT_EPSILON * want[i] + FLT_MIN) << i;
    ASSERT_TRUE(std::isfinite(ls[i]) || want[i] == 0) << i;
  }
  for (size_t i = 6; i < 9; ++i) {
    EXPECT_TRUE(std::isnan(ys[i])) << i;
    EXPECT_TRUE(std::isnan(ls[i])) << i;
  }
}

TEST_F(LossTest, SoftmaxBackwardMatchesFiniteDifferences) {
  // L = sum(w * y): central differences with h = 1e-3 on O(1) inputs;
  // truncation ~h^2 and rounding ~eps * |L| / h stay below 1e-3 relative.
  for (bool is_log : {false, true}) {
    SCOPED_TRACE(is_log ? "log_softmax" : "softmax");
    const std::vector<int64_t> shape = {4, 7};
    const std::vector<float> xs = Uniform(28, -2, 2, 2), ws = Uniform(28, -1, 1, 3);
    cudl_tensor *x = Make(ctx_, shape, xs), *y = Make(ctx_, shape), *w = Make(ctx_, shape, ws);
    cudl_tensor *dx = Make(ctx_, shape);
    auto forward = [&](cudl_tensor *in, cudl_tensor *out) {
      return is_log ? cudl_log_softmax_forward(ctx_, in, out) : cudl_softmax_forward(ctx_, in, out);
    };
    ASSERT_EQ(forward(x, y), CUDL_OK);
    ASSERT_EQ(is_log ? cudl_log_softmax_backward(ctx_, y, w, dx) : cudl_softmax_backward(ctx_, y, w, dx),
              CUDL_OK);
    const std::vector<float> g = ReadF32(dx);
    for (size_t i = 0; i < xs.size(); ++i) {
      std::vector<float> p = xs, m = xs;
      p[i] += 1e-3f;
      m[i] -= 1e-3f;
      cudl_tensor *xp = Make(ctx_, shape, p), *xm = Make(ctx_, shape, m);
      cudl_tensor *yp = Make(ctx_, shape), *ym = Make(ctx_, shape);
      ASSERT_EQ(forward(xp, yp), CUDL_OK);
      ASSERT_EQ(forward(xm, ym), CUDL_OK);
      const std::vector<float> fp = ReadF32(yp), fm = ReadF32(ym);
      double lp = 0, lm = 0;
      for (size_t k = 0; k < xs.size(); ++k) {
        lp += static_cast<double>(ws[k]) * fp[k];
        lm += static_cast<double>(ws[k]) * fm[k];
      }
      const double fd = (lp - lm) / (static_cast<double>(p[i]) - m[i]);
      EXPECT_NEAR(g[i], fd, 2e-3 * (1 + std::fabs(fd))) << i;
    }
  }
}

struct LossOp {
  std::string name;
  std::function<cudl_status(cudl_context *, const cudl_tensor *, const cudl_tensor *,
                            cudl_reduction, cudl_tensor *)>
      forward;
  std::function<cudl_status(cudl_context *, const cudl_tensor *, const cudl_tensor *,
                            cudl_reduction, float, cudl_tensor *)>
      backward;
  std::function<double(double, double)> term, derivative;
  float target_lo, target_hi;
};

std::vector<LossOp> Losses() {
  return {{"mse", cudl_mse_loss_forward, cudl_mse_loss_backward,
           [](double a, double b) { return (a - b) * (a - b); },
           [](double a, double b) { return 2 * (a - b); }, -3, 3},
          {"bce_with_logits", cudl_bce_with_logits_forward, cudl_bce_with_logits_backward,
           [](double x, double t) {
             const double s = 1 / (1 + std::exp(-x));
             return -t * std::log(s) - (1 - t) * std::log1p(-s);
           },
           [](double x, double t) { return 1 / (1 + std::exp(-x)) - t; }, 0, 1}};
}

TEST_F(LossTest, LossesMatchFloat64ForwardAndBackward) {
  for (const LossOp &op : Losses()) {
    for (cudl_reduction red : {CUDL_REDUCTION_MEAN, CUDL_REDUCTION_SUM}) {
      for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1021}, int64_t{100003}}) {
        SCOPED_TRACE(op.name + (red == CUDL_REDUCTION_MEAN ? " mean " : " sum ") + std::to_string(n));
        const std::vector<float> a = Uniform(static_cast<size_t>(n), -4, 4, 4);
        const std::vector<float> b = Uniform(static_cast<size_t>(n), op.target_lo, op.target_hi, 5);
        cudl_tensor *ta = Make(ctx_, {n}, a), *tb = Make(ctx_, {n}, b), *loss = Make(ctx_, {});
        cudl_tensor *d = Make(ctx_, {n});
        ASSERT_EQ(op.forward(ctx_, ta, tb, red, loss), CUDL_OK) << cudl_context_last_error(ctx_);
        ASSERT_EQ(op.backward(ctx_, ta, tb, red, 0.5f, d), CUDL_OK);
        double sum = 0;
        for (size_t i = 0; i < a.size(); ++i) sum += op.term(a[i], b[i]);
        const double want = red == CUDL_REDUCTION_MEAN ? sum / static_cast<double>(n) : sum;
        EXPECT_NEAR(ReadF32(loss)[0], want, 4 * FLT_EPSILON * std::fabs(want) + FLT_MIN);
        const std::vector<float> ds = ReadF32(d);
        const double scale = red == CUDL_REDUCTION_MEAN ? 0.5 / static_cast<double>(n) : 0.5;
        for (size_t i = 0; i < a.size(); ++i) {
          const double g = scale * op.derivative(a[i], b[i]);
          ASSERT_NEAR(ds[i], g, 4 * FLT_EPSILON * std::fabs(g) + FLT_MIN) << i;
        }
      }
    }
  }
}

TEST_F(LossTest, LossBackwardMatchesFiniteDifferences) {
  for (const LossOp &op : Losses()) {
    SCOPED_TRACE(op.name);
    const std::vector<float> a = Uniform(9, -3, 3, 6), b = Uniform(9, op.target_lo, op.target_hi, 7);
    cudl_tensor *ta = Make(ctx_, {3, 3}, a), *tb = Make(ctx_, {3, 3}, b), *loss = Make(ctx_, {1});
    cudl_tensor *d = Make(ctx_, {3, 3});
    ASSERT_EQ(op.backward(ctx_, ta, tb, CUDL_REDUCTION_SUM, 1.0f, d), CUDL_OK);
    const std::vector<float> g = ReadF32(d);
    for (size_t i = 0; i < a.size(); ++i) {
      std::vector<float> p = a, m = a;
      p[i] += 1e-2f;
      m[i] -= 1e-2f;
      ASSERT_EQ(WriteF32(ta, p), CUDL_OK);
      ASSERT_EQ(op.forward(ctx_, ta, tb, CUDL_REDUCTION_SUM, loss), CUDL_OK);
      const double lp = ReadF32(loss)[0];
      ASSERT_EQ(WriteF32(ta, m), CUDL_OK);
      ASSERT_EQ(op.forward(ctx_, ta, tb, CUDL_REDUCTION_SUM, loss), CUDL_OK);
      const double lm = ReadF32(loss)[0];
      const double fd = (lp - lm) / (static_cast<double>(p[i]) - m[i]);
      EXPECT_NEAR(g[i], fd, 2e-3 * (1 + std::fabs(fd))) << i;
    }
  }
}

TEST_F(LossTest, BceWithLogitsIsStableForLargeLogits) {
  // log(sigmoid(x)) by the naive formula overflows or gives -inf at these
  // logits; the stable form stays finite and exact to float.
  const std::vector<float> x = {100, -100, 1e4f, -1e4f}, t = {0, 1, 1, 0};
  cudl_tensor *tx = Make(ctx_, {4}, x), *tt = Make(ctx_, {4}, t), *loss = Make(ctx_, {1});
  ASSERT_EQ(cudl_bce_with_logits_forward(ctx_, tx, tt, CUDL_REDUCTION_SUM, loss), CUDL_OK);
  EXPECT_NEAR(ReadF32(loss)[0], 200.0, 200 * 4 * FLT_EPSILON);
  cudl_tensor *d = Make(ctx_, {4});
  ASSERT_EQ(cudl_bce_with_logits_backward(ctx_, tx, tt, CUDL_REDUCTION_SUM, 1.0f, d), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(d), {1, -1, 0, 0}));
}

TEST_F(LossTest, BadInputWritesNothing) {
  cudl_tensor *a = Make(ctx_, {4}, {1, 2, 3, 4}), *b = Make(ctx_, {4}, {0, 0, 0, 0});
  cudl_tensor *loss = Make(ctx_, {1}, {9}), *two = Make(ctx_, {2}), *wrong = Make(ctx_, {5});
  cudl_tensor *empty = Make(ctx_, {0}), *scalar = Make(ctx_, {}, {1}), *sy = Make(ctx_, {});
  cudl_tensor *d = Make(ctx_, {4}, {9, 9, 9, 9});
  EXPECT_EQ(cudl_mse_loss_forward(ctx_, a, b, static_cast<cudl_reduction>(7), loss),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "reduction"));
  EXPECT_EQ(cudl_mse_loss_forward(ctx_, a, b, CUDL_REDUCTION_MEAN, two), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_mse_loss_forward(ctx_, a, wrong, CUDL_REDUCTION_MEAN, loss), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_mse_loss_forward(ctx_, empty, empty, CUDL_REDUCTION_MEAN, loss), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_bce_with_logits_backward(ctx_, a, b, CUDL_REDUCTION_SUM, std::nanf(""), d),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_softmax_forward(ctx_, scalar, sy), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_softmax_backward(ctx_, a, nullptr, d), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(loss), {9}));
  EXPECT_TRUE(BitEqual(ReadF32(d), {9, 9, 9, 9}));
  // The sum over no elements is 0.
  EXPECT_EQ(cudl_mse_loss_forward(ctx_, empty, empty, CUDL_REDUCTION_SUM, loss), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(loss), {0}));
}

// Float64 reference: loss terms per row and the gradient of their sum.
void RefCrossEntropy(const std::vector<float> &x, const std::vector<int32_t> &y, int64_t cols,
                     double s, std::vector<double> *row_loss, std::vector<double> *grad) {
  const size_t rows = y.size(), k = static_cast<size_t>(cols);
  row_loss->assign(rows, 0.0);
  grad->assign(x.size(), 0.0);
  for (size_t r = 0; r < rows; ++r) {
    double m = -INFINITY, e = 0, sum = 0;
    for (size_t i = 0; i < k; ++i) m = std::max(m, static_cast<double>(x[r * k + i]));
    for (size_t i = 0; i < k; ++i) {
      e += std::exp(x[r * k + i] - m);
      sum += x[r * k + i];
    }
    const double lse = m + std::log(e);
    (*row_loss)[r] = lse - (1 - s) * x[r * k + static_cast<size_t>(y[r])] - s / cols * sum;
    for (size_t i = 0; i < k; ++i)
      (*grad)[r * k + i] = std::exp(x[r * k + i] - lse) - s / cols -
                           (static_cast<int32_t>(i) == y[r] ? 1 - s : 0.0);
  }
}

cudl_tensor *MakeLabels(cudl_context *ctx, const std::vector<int32_t> &labels,
                        std::vector<cudl_tensor *> *owned) {
  const int64_t n = static_cast<int64_t>(labels.size());
  cudl_tensor *t = nullptr;
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, &n, &t), CUDL_OK);
  if (t == nullptr) return nullptr;
  owned->push_back(t);
  EXPECT_EQ(cudl_tensor_copy_from_host(t, labels.data(), labels.size() * sizeof(int32_t)), CUDL_OK);
  return t;
}

std::vector<int32_t> RandomLabels(size_t n, int32_t k, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_int_distribution<int32_t> dist(0, k - 1);
  std::vector<int32_t> v(n);
  for (int32_t &y : v) y = dist(gen);
  return v;
}

TEST_F(LossTest, CrossEntropyMatchesFloat64) {
  for (float smoothing : {0.0f, 0.1f}) {
    for (cudl_reduction red : {CUDL_REDUCTION_MEAN, CUDL_REDUCTION_SUM}) {
      for (const auto &nk : std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 13}, {64, 10}, {3, 1021}}) {
        SCOPED_TRACE("smoothing " + std::to_string(smoothing) + " N " + std::to_string(nk.first) +
                     " K " + std::to_string(nk.second));
        const std::vector<float> xs = Uniform(static_cast<size_t>(nk.first * nk.second), -8, 8, 12);
        const std::vector<int32_t> ys =
            RandomLabels(static_cast<size_t>(nk.first), static_cast<int32_t>(nk.second), 13);
        cudl_tensor *x = Make(ctx_, {nk.first, nk.second}, xs), *loss = Make(ctx_, {});
        cudl_tensor *y = MakeLabels(ctx_, ys, &owned_), *dx = Make(ctx_, {nk.first, nk.second});
        ASSERT_EQ(cudl_cross_entropy_forward(ctx_, x, y, smoothing, red, loss), CUDL_OK)
            << cudl_context_last_error(ctx_);
        ASSERT_EQ(cudl_cross_entropy_backward(ctx_, x, y, smoothing, red, 2.0f, dx), CUDL_OK);
        std::vector<double> rows, grad;
        RefCrossEntropy(xs, ys, nk.second, smoothing, &rows, &grad);
        double total = 0;
        for (double v : rows) total += v;
        const double n = static_cast<double>(nk.first);
        const double want = red == CUDL_REDUCTION_MEAN ? total / n : total;
        EXPECT_NEAR(ReadF32(loss)[0], want, 4 * FLT_EPSILON * std::fabs(want) + 1e-6);
        const double scale = red == CUDL_REDUCTION_MEAN ? 2.0 / n : 2.0;
        const std::vector<float> g = ReadF32(dx);
        for (size_t i = 0; i < g.size(); ++i)
          ASSERT_NEAR(g[i], scale * grad[i], 4 * FLT_EPSILON * std::fabs(scale * grad[i]) + 1e-9) << i;
      }
    }
  }
}

TEST_F(LossTest, CrossEntropyBackwardMatchesFiniteDifferences) {
  const std::vector<float> xs = Uniform(5 * 6, -2, 2, 14);
  const std::vector<int32_t> ys = {0, 5, 2, 2, 3};
  cudl_tensor *x = Make(ctx_, {5, 6}, xs), *y = MakeLabels(ctx_, ys, &owned_);
  cudl_tensor *loss = Make(ctx_, {1}), *dx = Make(ctx_, {5, 6});
  ASSERT_EQ(cudl_cross_entropy_backward(ctx_, x, y, 0.2f, CUDL_REDUCTION_MEAN, 1.0f, dx), CUDL_OK);
  const std::vector<float> g = ReadF32(dx);
  for (size_t i = 0; i < xs.size(); ++i) {
    std::vector<float> p = xs, m = xs;
    p[i] += 1e-2f;
    m[i] -= 1e-2f;
    ASSERT_EQ(WriteF32(x, p), CUDL_OK);
    ASSERT_EQ(cudl_cross_entropy_forward(ctx_, x, y, 0.2f, CUDL_REDUCTION_MEAN, loss), CUDL_OK);
    const double lp = ReadF32(loss)[0];
    ASSERT_EQ(WriteF32(x, m), CUDL_OK);
    ASSERT_EQ(cudl_cross_entropy_forward(ctx_, x, y, 0.2f, CUDL_REDUCTION_MEAN, loss), CUDL_OK);
    const double lm = ReadF32(loss)[0];
    const double fd = (lp - lm) / (static_cast<double>(p[i]) - m[i]);
    EXPECT_NEAR(g[i], fd, 2e-3 * (1 + std::fabs(fd))) << i;
  }
}

TEST_F(LossTest, CrossEntropyStableAndChecked) {
  // Logits of 1e4 would overflow a naive exp.
  cudl_tensor *x = Make(ctx_, {2, 3}, {1e4f, 0, -1e4f, -1e4f, 1e4f, 1e4f});
  cudl_tensor *y = MakeLabels(ctx_, {0, 1}, &owned_), *loss = Make(ctx_, {1}, {9});
  ASSERT_EQ(cudl_cross_entropy_forward(ctx_, x, y, 0.0f, CUDL_REDUCTION_SUM, loss), CUDL_OK);
  EXPECT_NEAR(ReadF32(loss)[0], std::log(2.0), 1e-6) << "row 0 costs 0, row 1 log 2";
  // Bad labels, dtypes, shapes, parameters: a clear error and nothing written.
  cudl_tensor *bad = MakeLabels(ctx_, {0, 3}, &owned_), *neg = MakeLabels(ctx_, {-1, 0}, &owned_);
  cudl_tensor *f32_labels = Make(ctx_, {2}, {0, 1}), *three = MakeLabels(ctx_, {0, 1, 2}, &owned_);
  cudl_tensor *dx = Make(ctx_, {2, 3}, std::vector<float>(6, 9.0f));
  ASSERT_EQ(WriteF32(loss, {9}), CUDL_OK);
  EXPECT_EQ(cudl_cross_entropy_forward(ctx_, x, bad, 0.0f, CUDL_REDUCTION_SUM, loss),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "labels[1] = 3"));
  EXPECT_EQ(cudl_cross_entropy_backward(ctx_, x, neg, 0.0f, CUDL_REDUCTION_SUM, 1.0f, dx),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_cross_entropy_forward(ctx_, x, f32_labels, 0.0f, CUDL_REDUCTION_SUM, loss),
            CUDL_ERR_DTYPE);
  EXPECT_EQ(cudl_cross_entropy_forward(ctx_, x, three, 0.0f, CUDL_REDUCTION_SUM, loss),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_cross_entropy_forward(ctx_, x, y, 1.0f, CUDL_REDUCTION_SUM, loss),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "label_smoothing"));
  EXPECT_EQ(cudl_cross_entropy_forward(ctx_, x, nullptr, 0.0f, CUDL_REDUCTION_SUM, loss),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(loss), {9}));
  EXPECT_TRUE(BitEqual(ReadF32(dx), std::vector<float>(6, 9.0f)));
}

// cudl_count_hits: the count is the host loop's (first largest value,
// NaN skipped); bad tensors are refused with nothing written, and a count
// past what an f32 holds exactly is refused before any work.
TEST_F(LossTest, CountHitsCountsAndRefusesBadTensors) {
  cudl_tensor *x = Make(ctx_, {4, 3}, {1, 5, 5, 0, 0, 0, std::nanf(""), 1, 0, 2, 1, 9});
  cudl_tensor *y = MakeLabels(ctx_, {1, 0, 1, 2}, &owned_), *hits = Make(ctx_, {1}, {7});
  ASSERT_EQ(cudl_count_hits(ctx_, x, y, hits), CUDL_OK) << cudl_context_last_error(ctx_);
  EXPECT_TRUE(BitEqual(ReadF32(hits), {4})) << "ties go to the first; NaN is skipped";
  cudl_tensor *y2 = MakeLabels(ctx_, {2, 1, 0, 3}, &owned_);
  ASSERT_EQ(cudl_count_hits(ctx_, x, y2, hits), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(hits), {0})) << "the last of equal values, NaN, out of range";
  ASSERT_EQ(WriteF32(hits, {7}), CUDL_OK);
  cudl_tensor *two = Make(ctx_, {2}), *flat = Make(ctx_, {12});
  cudl_tensor *f32_labels = Make(ctx_, {4}, {1, 0, 1, 2}),
              *three = MakeLabels(ctx_, {0, 1, 2}, &owned_);
  cudl_tensor *h16 = MakeOf(CUDL_DTYPE_BF16, {1});
  EXPECT_EQ(cudl_count_hits(ctx_, x, y, two), CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "hits has 2 elements"));
  EXPECT_EQ(cudl_count_hits(ctx_, flat, y, hits), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_count_hits(ctx_, x, three, hits), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_count_hits(ctx_, x, f32_labels, hits), CUDL_ERR_DTYPE);
  EXPECT_EQ(cudl_count_hits(ctx_, x, y, h16), CUDL_ERR_DTYPE);
  EXPECT_EQ(cudl_count_hits(ctx_, x, nullptr, hits), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_count_hits(ctx_, x, y, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_count_hits(nullptr, x, y, hits), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(hits), {7}));
  // 2^24 rows of one class: 64 MiB of logits, never read.
  cudl_tensor *many = MakeOf(CUDL_DTYPE_F32, {int64_t{1} << 24, 1});
  cudl_tensor *many_y = MakeOf(CUDL_DTYPE_I32, {int64_t{1} << 24});
  EXPECT_EQ(cudl_count_hits(ctx_, many, many_y, hits), CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "2^24"));
  EXPECT_TRUE(BitEqual(ReadF32(hits), {7}));
}

// A label outside [0, K) cannot be reported on CUDA without a host
// synchronisation (cudl/loss.h): its row, and so the loss, is NaN there,
// where the CPU returns CUDL_ERR_INVALID_ARGUMENT (CrossEntropyStableAndChecked).
// Not a comparison of backends: the table in test_backends.cpp does those.
TEST_F(LossTest, CudaInvalidLabelGivesNaN) {
  const cudl_test::CudaAvailability av = cudl_test::QueryCuda();
  if (!av.available) GTEST_SKIP() << "no CUDA device: " << av.reason;
  cudl_context *gpu = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CUDA, 0, &gpu), CUDL_OK);
  cudl_tensor *gx = Make(gpu, {2, 3}, {1, 2, 3, 4, 5, 6}), *gy = MakeLabels(gpu, {0, 7}, &owned_);
  cudl_tensor *gl = Make(gpu, {1});
  ASSERT_EQ(cudl_cross_entropy_forward(gpu, gx, gy, 0.0f, CUDL_REDUCTION_MEAN, gl), CUDL_OK)
      << cudl_context_last_error(gpu);
  EXPECT_TRUE(std::isnan(ReadF32(gl)[0]));
  cudl_tensor *gd = Make(gpu, {2, 3});
  ASSERT_EQ(cudl_cross_entropy_backward(gpu, gx, gy, 0.0f, CUDL_REDUCTION_MEAN, 1.0f, gd), CUDL_OK)
      << cudl_context_last_error(gpu);
  const std::vector<float> d = ReadF32(gd);
  for (size_t i = 3; i < 6; ++i) EXPECT_TRUE(std::isnan(d[i])) << "row 1, element " << i;
  cudl_test::DestroyTensorsOf(gpu, &owned_);
  cudl_context_destroy(gpu);
}

// Softmax and the losses are f32-only (mixed precision keeps them in f32):
// a 16-bit tensor gives CUDL_ERR_DTYPE with a message that says so.
TEST_F(LossTest, SixteenBitTensorsAreRefusedAsF32Only) {
  cudl_tensor *a = Make(ctx_, {4}, {1, 2, 3, 4}), *loss = Make(ctx_, {1}, {9});
  cudl_tensor *h = MakeOf(CUDL_DTYPE_BF16, {4}), *hy = MakeOf(CUDL_DTYPE_BF16, {4});
  cudl_tensor *logits = MakeOf(CUDL_DTYPE_F16, {2, 2}), *labels = MakeOf(CUDL_DTYPE_I32, {2});
  EXPECT_EQ(cudl_softmax_forward(ctx_, h, hy), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"cudl_softmax_forward", "x", "bf16", "f32-only"}));
  EXPECT_EQ(cudl_log_softmax_backward(ctx_, a, h, a), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"dy", "bf16", "f32-only"}));
  EXPECT_EQ(cudl_mse_loss_forward(ctx_, h, a, CUDL_REDUCTION_MEAN, loss), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"input", "bf16", "f32-only"}));
  EXPECT_EQ(cudl_cross_entropy_forward(ctx_, logits, labels, 0.0f, CUDL_REDUCTION_MEAN, loss),
            CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"logits", "f16", "f32-only"}));
  EXPECT_TRUE(BitEqual(ReadF32(loss), {9}));
}

}  // namespace
