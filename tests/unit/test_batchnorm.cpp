// test_batchnorm.cpp - batch normalisation against a float64 reference
// written here: training statistics (with a large mean and a small variance),
// running-statistics updates, inference, backward against the formula and
// against finite differences, the fused path's halves against the whole,
// bad input. CUDA: test_backends.cpp.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;
using cudl_test::ReadF32;
using cudl_test::WriteF32;

std::vector<float> Normal(size_t n, double mean, double stddev, uint32_t seed) {
  std::mt19937 gen(seed);
  std::normal_distribution<double> dist(mean, stddev);
  std::vector<float> v(n);
  for (float &x : v) x = static_cast<float>(dist(gen));
  return v;
}

struct Layout {
  int64_t outer, channels, inner;
  size_t index(int64_t n, int64_t c, int64_t i) const {
    return static_cast<size_t>((n * channels + c) * inner + i);
  }
};

Layout LayoutOf(const std::vector<int64_t> &shape) {
  int64_t inner = 1;
  for (size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
  return {shape[0], shape[1], inner};
}

// Per-channel mean and biased variance in double (two passes).
void Stats(const std::vector<float> &x, const Layout &l, std::vector<double> *mean,
           std::vector<double> *var) {
  mean->assign(static_cast<size_t>(l.channels), 0.0);
  var->assign(static_cast<size_t>(l.channels), 0.0);
  const double m = static_cast<double>(l.outer * l.inner);
  for (int64_t c = 0; c < l.channels; ++c) {
    double s = 0;
    for (int64_t n = 0; n < l.outer; ++n)
      for (int64_t i = 0; i < l.inner; ++i) s += x[l.index(n, c, i)];
    const double mu = s / m;
    double q = 0;
    for (int64_t n = 0; n < l.outer; ++n)
      for (int64_t i = 0; i < l.inner; ++i) q += (x[l.index(n, c, i)] - mu) * (x[l.index(n, c, i)] - mu);
    (*mean)[static_cast<size_t>(c)] = mu;
    (*var)[static_cast<size_t>(c)] = q / m;
  }
}

class BatchNormTest : public cudl_test::TensorFixture {
 protected:
  // Everything one training forward needs, on ctx.
  struct Bn {
    cudl_tensor *x, *gamma, *beta, *rmean, *rvar, *y, *smean, *sinv;
  };
  Bn MakeBn(cudl_context *ctx, const std::vector<int64_t> &shape, const std::vector<float> &xs,
            const std::vector<float> &gamma, const std::vector<float> &beta) {
    const int64_t c = shape[1];
    Bn b;
    b.x = Make(ctx, shape, xs);
    b.gamma = Make(ctx, {c}, gamma);
    b.beta = Make(ctx, {c}, beta);
    b.rmean = Make(ctx, {c}, std::vector<float>(static_cast<size_t>(c), 0.5f));
    b.rvar = Make(ctx, {c}, std::vector<float>(static_cast<size_t>(c), 2.0f));
    b.y = Make(ctx, shape);
    b.smean = Make(ctx, {c});
    b.sinv = Make(ctx, {c});
    return b;
  }
  cudl_status Train(cudl_context *ctx, const Bn &b, float momentum, float eps) {
    return cudl_batchnorm_forward_training(ctx, b.x, b.gamma, b.beta, momentum, eps, b.rmean,
                                           b.rvar, b.y, b.smean, b.sinv);
  }
};

// 4-D per channel, 2-D per feature, 3-D, primes, a channel of one.
const std::vector<std::vector<int64_t>> kShapes = {
    {4, 3, 5, 7}, {16, 10}, {3, 2, 11}, {2, 1, 3, 3}, {5, 7, 2, 3}};

TEST_F(BatchNormTest, TrainingMatchesFloat64Reference) {
  for (const auto &shape : kShapes) {
    // A large mean and a small variance: a one-pass E[x^2] - E[x]^2 in
    // float would lose the variance to cancellation, and at 30000 even in
    // double (about 5 digits kept) unless the sums are shifted.
    for (double mean : {0.0, 1000.0, 30000.0}) {
      SCOPED_TRACE("shape of " + std::to_string(shape.size()) + " dims, mean " +
                   std::to_string(mean));
      const Layout l = LayoutOf(shape);
      const size_t n = static_cast<size_t>(l.outer * l.channels * l.inner);
      const std::vector<float> xs = Normal(n, mean, mean == 0 ? 1.0 : 0.05, 1);
      const std::vector<float> gamma = Normal(static_cast<size_t>(l.channels), 1, 0.3, 2);
      const std::vector<float> beta = Normal(static_cast<size_t>(l.channels), 0, 0.3, 3);
      Bn b = MakeBn(ctx_, shape, xs, gamma, beta);
      const float momentum = 0.1f, eps = 1e-5f;
      ASSERT_EQ(Train(ctx_, b, momentum, eps), CUDL_OK) << cudl_context_last_error(ctx_);
      std::vector<double> mu, var;
      Stats(xs, l, &mu, &var);
      const std::vector<float> ys = ReadF32(b.y), sm = ReadF32(b.smean), si = ReadF32(b.sinv);
      const std::vector<float> rm = ReadF32(b.rmean), rv = ReadF32(b.rvar);
      const double m = static_cast<double>(l.outer * l.inner);
      for (int64_t c = 0; c < l.channels; ++c) {
        const size_t k = static_cast<size_t>(c);
        const double inv = 1.0 / std::sqrt(var[k] + eps);
        EXPECT_NEAR(sm[k], mu[k], 2 * FLT_EPSILON * std::fabs(mu[k]) + FLT_MIN);
        EXPECT_NEAR(si[k], inv, 4 * FLT_EPSILON * inv);
        EXPECT_NEAR(rm[k], 0.9 * 0.5 + 0.1 * mu[k], 4 * FLT_EPSILON * (std::fabs(mu[k]) + 1));
        EXPECT_NEAR(rv[k], 0.9 * 2.0 + 0.1 * var[k] * m / (m - 1), 4 * FLT_EPSILON * (var[k] + 2));
        for (int64_t nn = 0; nn < l.outer; ++nn)
          for (int64_t i = 0; i < l.inner; ++i) {
            const size_t e = l.index(nn, c, i);
            const double want = gamma[k] * (xs[e] - mu[k]) * inv + beta[k];
            // xhat is O(1) whatever the mean; float roundings of (x - mean)
            // lose up to eps * |mean| * inv: allow for that.
            const double tol = 8 * FLT_EPSILON * (std::fabs(want) + 1) +
                               2 * FLT_EPSILON * std::fabs(mu[k]) * inv * std::fabs(gamma[k]);
            ASSERT_NEAR(ys[e], want, tol) << "element " << e;
          }
      }
    }
  }
}

TEST_F(BatchNormTest, InferenceUsesRunningStatistics) {
  const std::vector<int64_t> shape = {3, 4, 2, 5};
  const Layout l = LayoutOf(shape);
  const size_t n = static_cast<size_t>(l.outer * l.channels * l.inner);
  const std::vector<float> xs = Normal(n, 0, 2, 4), gamma = {1, 2, 0.5f, -1}, beta = {0, 1, -1, 2};
  const std::vector<float> rm = {0.1f, -0.2f, 0.3f, 4.0f}, rv = {1.0f, 0.25f, 9.0f, 0.01f};
  cudl_tensor *x = Make(ctx_, shape, xs), *y = Make(ctx_, shape);
  cudl_tensor *g = Make(ctx_, {4}, gamma), *bt = Make(ctx_, {4}, beta);
  cudl_tensor *m = Make(ctx_, {4}, rm), *v = Make(ctx_, {4}, rv);
  ASSERT_EQ(cudl_batchnorm_forward_inference(ctx_, x, g, bt, m, v, 1e-3f, y), CUDL_OK);
  const std::vector<float> ys = ReadF32(y);
  for (int64_t nn = 0; nn < l.outer; ++nn)
    for (int64_t c = 0; c < l.channels; ++c)
      for (int64_t i = 0; i < l.inner; ++i) {
        const size_t e = l.index(nn, c, i), k = static_cast<size_t>(c);
        const double want = gamma[k] * (xs[e] - rm[k]) / std::sqrt(rv[k] + 1e-3f) + beta[k];
        ASSERT_NEAR(ys[e], want, 8 * FLT_EPSILON * (std::fabs(want) + 1)) << e;
      }
  EXPECT_TRUE(BitEqual(ReadF32(m), rm)) << "inference must not touch running statistics";
}

TEST_F(BatchNormTest, BackwardMatchesFormulaAndFiniteDifferences) {
  for (const auto &shape : kShapes) {
    SCOPED_TRACE("shape of " + std::to_string(shape.size()) + " dims");
    const Layout l = LayoutOf(shape);
    const size_t n = static_cast<size_t>(l.outer * l.channels * l.inner);
    const std::vector<float> xs = Normal(n, 0.5, 1.5, 5), ws = Normal(n, 0, 1, 6);
    const std::vector<float> gamma = Normal(static_cast<size_t>(l.channels), 1, 0.3, 7);
    const std::vector<float> beta = Normal(static_cast<size_t>(l.channels), 0, 0.3, 8);
    Bn b = MakeBn(ctx_, shape, xs, gamma, beta);
    ASSERT_EQ(Train(ctx_, b, 0.1f, 1e-5f), CUDL_OK);
    cudl_tensor *dy = Make(ctx_, shape, ws), *dx = Make(ctx_, shape);
    cudl_tensor *dg = Make(ctx_, {l.channels}), *db = Make(ctx_, {l.channels});
    ASSERT_EQ(cudl_batchnorm_backward(ctx_, b.x, dy, b.gamma, b.smean, b.sinv, dx, dg, db), CUDL_OK)
        << cudl_context_last_error(ctx_);
    const std::vector<float> dxs = ReadF32(dx), dgs = ReadF32(dg), dbs = ReadF32(db);
    // Loss L = sum(w * y): finite differences in x, gamma and beta through
    // the training forward (batch statistics included). h = 1e-2 on O(1)
    // inputs: truncation O(h^2), float rounding of L (|L| ~ sqrt(n)) over
    // 2h; tolerance 2e-3 * (1 + |fd|).
    auto loss = [&]() {
      EXPECT_EQ(Train(ctx_, b, 0.1f, 1e-5f), CUDL_OK);
      const std::vector<float> ys = ReadF32(b.y);
      double s = 0;
      for (size_t i = 0; i < n; ++i) s += static_cast<double>(ws[i]) * ys[i];
      return s;
    };
    auto fd = [&](cudl_tensor *t, std::vector<float> values, size_t i) {
      const float h = 1e-2f, orig = values[i];
      values[i] = orig + h;
      EXPECT_EQ(WriteF32(t, values), CUDL_OK);
      const double plus = loss();
      values[i] = orig - h;
      EXPECT_EQ(WriteF32(t, values), CUDL_OK);
      const double minus = loss();
      values[i] = orig;
      EXPECT_EQ(WriteF32(t, values), CUDL_OK);
      return (plus - minus) / (2.0 * h);
    };
    for (size_t i = 0; i < n; i += std::max<size_t>(1, n / 25)) {
      const double g = fd(b.x, xs, i);
      EXPECT_NEAR(dxs[i], g, 2e-3 * (1 + std::fabs(g))) << "dx " << i;
    }
    for (size_t c = 0; c < static_cast<size_t>(l.channels); ++c) {
      const double gg = fd(b.gamma, gamma, c), gb = fd(b.beta, beta, c);
      EXPECT_NEAR(dgs[c], gg, 2e-3 * (1 + std::fabs(gg))) << "dgamma " << c;
      EXPECT_NEAR(dbs[c], gb, 2e-3 * (1 + std::fabs(gb))) << "dbeta " << c;
    }
  }
}

TEST_F(BatchNormTest, BadInputWritesNothing) {
  const std::vector<int64_t> shape = {2, 3, 4};
  Bn b = MakeBn(ctx_, shape, Normal(24, 0, 1, 9), {1, 1, 1}, {0, 0, 0});
  ASSERT_EQ(WriteF32(b.y, std::vector<float>(24, 9.0f)), CUDL_OK);
  cudl_tensor *wrong_c = Make(ctx_, {4});
  cudl_tensor *one_value = Make(ctx_, {1, 3}), *one_y = Make(ctx_, {1, 3});
  const float nan = std::nanf("");
  EXPECT_EQ(Train(ctx_, b, 0.1f, 0.0f), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "eps"));
  EXPECT_EQ(Train(ctx_, b, 0.1f, nan), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(Train(ctx_, b, 1.5f, 1e-5f), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "momentum"));
  EXPECT_EQ(Train(ctx_, b, -0.1f, 1e-5f), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_batchnorm_forward_training(ctx_, b.x, wrong_c, b.beta, 0.1f, 1e-5f, b.rmean,
                                            b.rvar, b.y, b.smean, b.sinv),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "gamma"));
  EXPECT_EQ(cudl_batchnorm_forward_training(ctx_, one_value, b.gamma, b.beta, 0.1f, 1e-5f,
                                            b.rmean, b.rvar, one_y, b.smean, b.sinv),
            CUDL_ERR_SHAPE)
      << "one value per channel has no variance to train with";
  EXPECT_EQ(cudl_batchnorm_forward_inference(ctx_, b.x, b.gamma, b.beta, b.rmean, nullptr,
                                             1e-5f, b.y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_batchnorm_backward(ctx_, b.x, b.y, b.gamma, b.smean, b.sinv, b.y, wrong_c,
                                    b.beta),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(BitEqual(ReadF32(b.y), std::vector<float>(24, 9.0f))) << "y was written";
  EXPECT_TRUE(BitEqual(ReadF32(b.rmean), {0.5f, 0.5f, 0.5f})) << "running mean was updated";
  EXPECT_TRUE(BitEqual(ReadF32(b.rvar), {2.0f, 2.0f, 2.0f})) << "running var was updated";
}

// The fused path's halves are the training forward: statistics then apply
// give its bits; apply with a residual and a ReLU is relu(y + residual)
// bit for bit; the fused backward with a ReLU that passes everything is the
// plain backward, and with one that passes nothing writes zeros.
TEST_F(BatchNormTest, FusedHalvesAreTheTrainingForward) {
  for (const auto &shape : kShapes) {
    const Layout l = LayoutOf(shape);
    const size_t n = static_cast<size_t>(l.outer * l.channels * l.inner),
                 nc = static_cast<size_t>(l.channels);
    const std::vector<float> xs = Normal(n, 3.0, 2.0, 21), res = Normal(n, 0.0, 1.0, 22);
    const std::vector<float> gamma = Normal(nc, 1.0, 0.3, 23), beta = Normal(nc, 0.0, 0.5, 24);
    Bn whole = MakeBn(ctx_, shape, xs, gamma, beta), halves = MakeBn(ctx_, shape, xs, gamma, beta);
    ASSERT_EQ(Train(ctx_, whole, 0.1f, 1e-5f), CUDL_OK);
    ASSERT_EQ(cudl_batchnorm_statistics(ctx_, halves.x, 0.1f, 1e-5f, halves.rmean, halves.rvar,
                                        halves.smean, halves.sinv),
              CUDL_OK);
    ASSERT_EQ(cudl_batchnorm_apply(ctx_, halves.x, halves.gamma, halves.beta, halves.smean,
                                   halves.sinv, nullptr, 0, halves.y),
              CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(halves.y), ReadF32(whole.y)));
    EXPECT_TRUE(BitEqual(ReadF32(halves.smean), ReadF32(whole.smean)));
    EXPECT_TRUE(BitEqual(ReadF32(halves.sinv), ReadF32(whole.sinv)));
    EXPECT_TRUE(BitEqual(ReadF32(halves.rmean), ReadF32(whole.rmean)));
    EXPECT_TRUE(BitEqual(ReadF32(halves.rvar), ReadF32(whole.rvar)));

    cudl_tensor *r = Make(ctx_, shape, res), *fused = Make(ctx_, shape);
    ASSERT_EQ(cudl_batchnorm_apply(ctx_, halves.x, halves.gamma, halves.beta, halves.smean,
                                   halves.sinv, r, 1, fused),
              CUDL_OK);
    const std::vector<float> y = ReadF32(whole.y), f = ReadF32(fused);
    std::vector<float> want(n);
    for (size_t i = 0; i < n; ++i) {
      const float v = y[i] + res[i];
      want[i] = v < 0.0f ? 0.0f : v;
    }
    EXPECT_TRUE(BitEqual(f, want)) << "apply with a residual and a ReLU";

    const std::vector<float> dys = Normal(n, 0.0, 1.0, 25);
    cudl_tensor *dy = Make(ctx_, shape, dys), *dx = Make(ctx_, shape), *dx2 = Make(ctx_, shape),
                *dres = Make(ctx_, shape), *dg = Make(ctx_, {l.channels}),
                *db = Make(ctx_, {l.channels}), *dg2 = Make(ctx_, {l.channels}),
                *db2 = Make(ctx_, {l.channels});
    cudl_tensor *positive = Make(ctx_, shape, std::vector<float>(n, 1.0f)),
                *zero = Make(ctx_, shape, std::vector<float>(n, 0.0f));
    ASSERT_EQ(cudl_batchnorm_backward(ctx_, whole.x, dy, whole.gamma, whole.smean, whole.sinv, dx,
                                      dg, db),
              CUDL_OK);
    ASSERT_EQ(cudl_batchnorm_relu_backward(ctx_, whole.x, positive, dy, whole.gamma, whole.smean,
                                           whole.sinv, dx2, dres, dg2, db2),
              CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(dx2), ReadF32(dx)));
    EXPECT_TRUE(BitEqual(ReadF32(dg2), ReadF32(dg)));
    EXPECT_TRUE(BitEqual(ReadF32(db2), ReadF32(db)));
    EXPECT_TRUE(BitEqual(ReadF32(dres), dys)) << "the residual's gradient is dy";
    ASSERT_EQ(cudl_batchnorm_relu_backward(ctx_, whole.x, zero, dy, whole.gamma, whole.smean,
                                           whole.sinv, dx2, dres, dg2, db2),
              CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(dx2), std::vector<float>(n, 0.0f)));
    EXPECT_TRUE(BitEqual(ReadF32(dres), std::vector<float>(n, 0.0f)));
    EXPECT_TRUE(BitEqual(ReadF32(dg2), std::vector<float>(nc, 0.0f)));
  }
}

// dx or dresidual may be dy itself: the backward's first pass writes the
// residual's gradient, which its second pass reads back, so each is
// checked in place against separate buffers, in both loop shapes ({16,
// 10} is the rows one). A shifted view of dy is refused.
TEST_F(BatchNormTest, FusedBackwardOverDyItself) {
  for (const auto &shape : kShapes) {
    const Layout l = LayoutOf(shape);
    const size_t n = static_cast<size_t>(l.outer * l.channels * l.inner),
                 nc = static_cast<size_t>(l.channels);
    const std::vector<float> xs = Normal(n, 1.0, 2.0, 31), ys = Normal(n, 0.0, 1.0, 32),
                             dys = Normal(n, 0.0, 1.0, 33);
    Bn b = MakeBn(ctx_, shape, xs, Normal(nc, 1.0, 0.3, 34), Normal(nc, 0.0, 0.5, 35));
    ASSERT_EQ(Train(ctx_, b, 0.1f, 1e-5f), CUDL_OK);
    cudl_tensor *y = Make(ctx_, shape, ys), *dy = Make(ctx_, shape, dys), *dx = Make(ctx_, shape),
                *dres = Make(ctx_, shape), *dg = Make(ctx_, {l.channels}),
                *db = Make(ctx_, {l.channels});
    ASSERT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, y, dy, b.gamma, b.smean, b.sinv, dx, dres,
                                           dg, db),
              CUDL_OK);
    const std::vector<float> want_dx = ReadF32(dx), want_dres = ReadF32(dres);

    cudl_tensor *dy_dres = Make(ctx_, shape, dys);
    ASSERT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, y, dy_dres, b.gamma, b.smean, b.sinv, dx,
                                           dy_dres, dg, db),
              CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(dx), want_dx)) << "dresidual over dy";
    EXPECT_TRUE(BitEqual(ReadF32(dy_dres), want_dres)) << "dresidual over dy";

    cudl_tensor *dy_dx = Make(ctx_, shape, dys);
    ASSERT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, y, dy_dx, b.gamma, b.smean, b.sinv, dy_dx,
                                           dres, dg, db),
              CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(dy_dx), want_dx)) << "dx over dy";
    EXPECT_TRUE(BitEqual(ReadF32(dres), want_dres)) << "dx over dy";
  }

  // Two views of one buffer of three samples, one sample apart.
  const std::vector<int64_t> shape = {2, 3, 4};
  Bn b = MakeBn(ctx_, shape, Normal(24, 0, 1, 36), {1, 1, 1}, {0, 0, 0});
  ASSERT_EQ(Train(ctx_, b, 0.1f, 1e-5f), CUDL_OK);
  cudl_tensor *buffer = Make(ctx_, {3, 3, 4}, std::vector<float>(36, 5.0f)), *dy = nullptr,
              *shifted = nullptr;
  ASSERT_EQ(cudl_tensor_narrow(buffer, 0, 2, &dy), CUDL_OK);
  ASSERT_EQ(cudl_tensor_narrow(buffer, 1, 2, &shifted), CUDL_OK);
  cudl_tensor *dx = Make(ctx_, shape), *dres = Make(ctx_, shape), *dg = Make(ctx_, {3}),
              *db = Make(ctx_, {3});
  EXPECT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, b.y, dy, b.gamma, b.smean, b.sinv, shifted,
                                         dres, dg, db),
            CUDL_ERR_INVALID_ARGUMENT)
      << "dx over a shifted view of dy";
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "shifted view"));
  EXPECT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, b.y, dy, b.gamma, b.smean, b.sinv, dx,
                                         shifted, dg, db),
            CUDL_ERR_INVALID_ARGUMENT)
      << "dresidual over a shifted view of dy";
  EXPECT_TRUE(BitEqual(ReadF32(buffer), std::vector<float>(36, 5.0f))) << "written";
  cudl_tensor_destroy(dy);
  cudl_tensor_destroy(shifted);
}

TEST_F(BatchNormTest, FusedPathBadInputWritesNothing) {
  const std::vector<int64_t> shape = {2, 3, 4};
  Bn b = MakeBn(ctx_, shape, Normal(24, 0, 1, 9), {1, 1, 1}, {0, 0, 0});
  ASSERT_EQ(WriteF32(b.y, std::vector<float>(24, 9.0f)), CUDL_OK);
  cudl_tensor *other = Make(ctx_, {2, 3, 5}), *wrong_c = Make(ctx_, {4});
  cudl_tensor *dy = Make(ctx_, shape, std::vector<float>(24, 1.0f)),
              *dx = Make(ctx_, shape, std::vector<float>(24, 7.0f));
  EXPECT_EQ(cudl_batchnorm_statistics(ctx_, nullptr, 0.1f, 1e-5f, b.rmean, b.rvar, b.smean,
                                      b.sinv),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_batchnorm_statistics(ctx_, b.x, 2.0f, 1e-5f, b.rmean, b.rvar, b.smean, b.sinv),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "momentum"));
  EXPECT_EQ(cudl_batchnorm_statistics(ctx_, b.x, 0.1f, 1e-5f, wrong_c, b.rvar, b.smean, b.sinv),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "running_mean"));
  EXPECT_EQ(cudl_batchnorm_apply(ctx_, b.x, b.gamma, b.beta, b.smean, b.sinv, other, 1, b.y),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "residual"));
  EXPECT_EQ(cudl_batchnorm_apply(ctx_, b.x, b.gamma, b.beta, nullptr, b.sinv, nullptr, 1, b.y),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, b.y, dy, b.gamma, b.smean, b.sinv, dx,
                                         other, b.rmean, b.rvar),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "dresidual"));
  EXPECT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, b.y, dy, b.gamma, b.smean, b.sinv, b.x,
                                         nullptr, b.rmean, b.rvar),
            CUDL_ERR_INVALID_ARGUMENT)
      << "dx over x";
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "share memory"));
  EXPECT_EQ(cudl_batchnorm_relu_backward(ctx_, b.x, b.y, dy, b.gamma, b.smean, b.sinv, dx, dx,
                                         b.rmean, b.rvar),
            CUDL_ERR_INVALID_ARGUMENT)
      << "dresidual over dx";
  EXPECT_TRUE(BitEqual(ReadF32(b.y), std::vector<float>(24, 9.0f))) << "y was written";
  EXPECT_TRUE(BitEqual(ReadF32(b.rmean), {0.5f, 0.5f, 0.5f})) << "running mean was updated";
  EXPECT_TRUE(BitEqual(ReadF32(dx), std::vector<float>(24, 7.0f))) << "dx was written";
}

// The CPU's bf16 entries read and write bf16 themselves, where they once
// widened whole tensors to f32 around the f32 entries; the definition is
// unchanged (ops.def: f32 arithmetic on the widened values, one rounding
// out), so each step must give the f32 entry's bits on the widened values,
// rounded once: statistics, apply with and without residual and ReLU, the
// backward plain and through the ReLU with the residual's gradient. Both
// loop shapes, NCHW and channels-last, and the threaded rows ({1000, 40},
// {3, 40, 17, 19} channels-last).
TEST_F(BatchNormTest, Bf16StepsAreTheF32StepsRoundedOnce) {
  struct Case {
    std::vector<int64_t> shape;
    bool channels_last;
  };
  const std::vector<Case> cases = {
      {{4, 3, 5, 7}, false},   {{16, 10}, false},   {{5, 7, 2, 3}, true},
      {{3, 40, 17, 19}, true}, {{1000, 40}, false}, {{3, 2, 11}, false}};
  uint32_t seed = 40;
  for (const Case &k : cases) {
    SCOPED_TRACE("shape of " + std::to_string(k.shape.size()) + " dims, " +
                 std::to_string(k.shape[1]) + " channels" +
                 (k.channels_last ? ", NHWC" : ""));
    size_t n = 1;
    for (int64_t d : k.shape) n *= static_cast<size_t>(d);
    const int64_t c = k.shape[1];
    const size_t nc = static_cast<size_t>(c);
    // An f32 tensor and a bf16 one holding the same values (rounded to bf16).
    auto pair = [&](double mean, double stddev, cudl_tensor **wide,
                    cudl_tensor **narrow) {
      *wide = Make(ctx_, k.shape, Normal(n, mean, stddev, ++seed));
      *narrow = MakeOf(CUDL_DTYPE_BF16, k.shape);
      if (k.channels_last) {
        ASSERT_EQ(cudl_tensor_set_layout(*wide, CUDL_LAYOUT_NHWC), CUDL_OK);
        ASSERT_EQ(cudl_tensor_set_layout(*narrow, CUDL_LAYOUT_NHWC), CUDL_OK);
      }
      ASSERT_EQ(cudl_tensor_convert(*narrow, *wide), CUDL_OK);
      ASSERT_EQ(cudl_tensor_convert(*wide, *narrow), CUDL_OK);
    };
    auto out_pair = [&](cudl_tensor **wide, cudl_tensor **narrow) {
      *wide = Make(ctx_, k.shape);
      *narrow = MakeOf(CUDL_DTYPE_BF16, k.shape);
      if (k.channels_last) {
        ASSERT_EQ(cudl_tensor_set_layout(*wide, CUDL_LAYOUT_NHWC), CUDL_OK);
        ASSERT_EQ(cudl_tensor_set_layout(*narrow, CUDL_LAYOUT_NHWC), CUDL_OK);
      }
    };
    // The f32 result rounded once, and the bf16 one, as bits.
    auto same = [&](cudl_tensor *wide, cudl_tensor *narrow) {
      cudl_tensor *rounded = MakeOf(CUDL_DTYPE_BF16, k.shape);
      if (k.channels_last) {
        EXPECT_EQ(cudl_tensor_set_layout(rounded, CUDL_LAYOUT_NHWC), CUDL_OK);
      }
      EXPECT_EQ(cudl_tensor_convert(rounded, wide), CUDL_OK);
      return cudl_test::ReadBits16(rounded) == cudl_test::ReadBits16(narrow);
    };
    cudl_tensor *x32, *x16, *r32, *r16, *y32, *y16, *dy32, *dy16;
    pair(2.0, 3.0, &x32, &x16);
    pair(0.0, 1.0, &r32, &r16);
    pair(0.0, 1.0, &y32, &y16);  // either side of the ReLU
    pair(0.0, 1.0, &dy32, &dy16);
    if (HasFatalFailure()) return;
    const std::vector<float> gamma = Normal(nc, 1.0, 0.3, ++seed),
                             beta = Normal(nc, 0, 0.5, ++seed);
    Bn w = MakeBn(ctx_, k.shape, {}, gamma, beta),
       h = MakeBn(ctx_, k.shape, {}, gamma, beta);

    ASSERT_EQ(cudl_batchnorm_statistics(ctx_, x32, 0.1f, 1e-5f, w.rmean, w.rvar,
                                        w.smean, w.sinv),
              CUDL_OK);
    ASSERT_EQ(cudl_batchnorm_statistics(ctx_, x16, 0.1f, 1e-5f, h.rmean, h.rvar,
                                        h.smean, h.sinv),
              CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(h.smean), ReadF32(w.smean)));
    EXPECT_TRUE(BitEqual(ReadF32(h.sinv), ReadF32(w.sinv)));
    EXPECT_TRUE(BitEqual(ReadF32(h.rmean), ReadF32(w.rmean)));
    EXPECT_TRUE(BitEqual(ReadF32(h.rvar), ReadF32(w.rvar)));

    cudl_tensor *a32, *a16;
    out_pair(&a32, &a16);
    for (int fused = 0; fused < 2; ++fused) {
      ASSERT_EQ(cudl_batchnorm_apply(ctx_, x32, w.gamma, w.beta, w.smean,
                                     w.sinv, fused ? r32 : nullptr, fused, a32),
                CUDL_OK);
      ASSERT_EQ(cudl_batchnorm_apply(ctx_, x16, w.gamma, w.beta, w.smean,
                                     w.sinv, fused ? r16 : nullptr, fused, a16),
                CUDL_OK);
      EXPECT_TRUE(same(a32, a16))
          << (fused ? "apply with residual and ReLU" : "apply");
    }

    cudl_tensor *dx32, *dx16, *dres32, *dres16;
    out_pair(&dx32, &dx16);
    out_pair(&dres32, &dres16);
    cudl_tensor *dg32 = Make(ctx_, {c}), *db32 = Make(ctx_, {c}),
                *dg16 = Make(ctx_, {c}), *db16 = Make(ctx_, {c});
    ASSERT_EQ(cudl_batchnorm_backward(ctx_, x32, dy32, w.gamma, w.smean, w.sinv,
                                      dx32, dg32, db32),
              CUDL_OK);
    ASSERT_EQ(cudl_batchnorm_backward(ctx_, x16, dy16, w.gamma, w.smean, w.sinv,
                                      dx16, dg16, db16),
              CUDL_OK);
    EXPECT_TRUE(same(dx32, dx16)) << "backward";
    EXPECT_TRUE(BitEqual(ReadF32(dg16), ReadF32(dg32)));
    EXPECT_TRUE(BitEqual(ReadF32(db16), ReadF32(db32)));
    ASSERT_EQ(
        cudl_batchnorm_relu_backward(ctx_, x32, y32, dy32, w.gamma, w.smean,
                                     w.sinv, dx32, dres32, dg32, db32),
        CUDL_OK);
    ASSERT_EQ(
        cudl_batchnorm_relu_backward(ctx_, x16, y16, dy16, w.gamma, w.smean,
                                     w.sinv, dx16, dres16, dg16, db16),
        CUDL_OK);
    EXPECT_TRUE(same(dx32, dx16)) << "backward through the ReLU";
    EXPECT_TRUE(same(dres32, dres16)) << "the residual's gradient";
    EXPECT_TRUE(BitEqual(ReadF32(dg16), ReadF32(dg32)));
    EXPECT_TRUE(BitEqual(ReadF32(db16), ReadF32(db32)));
  }
}

// The dtype rule (cudl/tensor.h): x, y, dy and dx in one float dtype;
// gamma, beta and every statistic f32 whatever it is. A break is
// CUDL_ERR_DTYPE naming the tensor and both dtypes, and writes nothing
// (the running statistics included).
TEST_F(BatchNormTest, SixteenBitDataWithF32Statistics) {
  const std::vector<int64_t> shape = {2, 3, 4};
  Bn b = MakeBn(ctx_, shape, Normal(24, 0, 1, 12), {1, 2, 3}, {0, 1, 0});
  cudl_tensor *x = MakeOf(CUDL_DTYPE_BF16, shape),
              *y = MakeOf(CUDL_DTYPE_BF16, shape);
  cudl_tensor *dx = MakeOf(CUDL_DTYPE_BF16, shape),
              *y_f16 = MakeOf(CUDL_DTYPE_F16, shape);
  cudl_tensor *gamma16 = MakeOf(CUDL_DTYPE_BF16, {3}),
              *dgamma = Make(ctx_, {3});
  cudl_tensor *dbeta = Make(ctx_, {3}), *dgamma16 = MakeOf(CUDL_DTYPE_F16, {3});
  ASSERT_EQ(cudl_tensor_convert(x, b.x), CUDL_OK);
  EXPECT_EQ(
      cudl_batchnorm_forward_training(ctx_, x, b.gamma, b.beta, 0.1f, 1e-5f,
                                      b.rmean, b.rvar, y, b.smean, b.sinv),
      CUDL_OK)
      << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_batchnorm_backward(ctx_, x, y, b.gamma, b.smean, b.sinv, dx, dgamma, dbeta),
            CUDL_OK);
  const std::vector<float> rmean = ReadF32(b.rmean), rvar = ReadF32(b.rvar);
  const std::vector<uint16_t> y_bits = cudl_test::ReadBits16(y);
  EXPECT_EQ(cudl_batchnorm_forward_training(ctx_, x, gamma16, b.beta, 0.1f, 1e-5f, b.rmean,
                                            b.rvar, y, b.smean, b.sinv),
            CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"gamma", "bf16", "must be f32"}));
  EXPECT_EQ(cudl_batchnorm_forward_training(ctx_, x, b.gamma, b.beta, 0.1f, 1e-5f, b.rmean,
                                            b.rvar, y_f16, b.smean, b.sinv),
            CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"y", "f16", "x", "bf16"}));
  EXPECT_EQ(cudl_batchnorm_forward_inference(ctx_, x, b.gamma, b.beta, b.rmean, b.rvar, 1e-5f,
                                             b.y),
            CUDL_ERR_DTYPE)
      << "an f32 y for bf16 x";
  EXPECT_EQ(cudl_batchnorm_backward(ctx_, x, y, b.gamma, b.smean, b.sinv, dx, dgamma16, dbeta),
            CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"dgamma", "f16", "must be f32"}));
  EXPECT_TRUE(BitEqual(ReadF32(b.rmean), rmean)) << "running mean was updated";
  EXPECT_TRUE(BitEqual(ReadF32(b.rvar), rvar)) << "running var was updated";
  EXPECT_EQ(cudl_test::ReadBits16(y), y_bits) << "y was written";
}

}  // namespace
