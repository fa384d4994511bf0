// test_linear.cpp - fully connected layers (cudl/linear.h): forward and the
// three gradients against float64 references written here, central finite
// differences (of a float64 forward, and of cudl's own forward), optional
// outputs, empty dimensions, bad input (each writes nothing), the context's
// TF32 and deterministic switches. CUDA with TF32 off and on:
// test_backends.cpp.
//
// Tolerances. A sum of n products computed in f32 in any order, blocked,
// vectorised, with or without fused multiply-adds (as BLAS kernels do), is
// within gamma_n = n u / (1 - n u) of the exact sum, relative to the sum of
// the absolute values of its terms (Higham, Accuracy and Stability of
// Numerical Algorithms, 2nd ed., section 3.1; u = 2^-24); adding the bias
// is one more rounding. So each element is checked against
//     |got - exact| <= (n + 2) u * sum|terms|,
// with sum|terms| computed in double next to the exact value ((n + 2) u
// covers gamma_(n+1) while n u < 1e-3). That is a worst-case bound, yet it
// still fails on an indexing bug: a single wrong or missing term moves a
// result by about sum|terms| / n, which exceeds the bound while n^2 u << 1
// (at n = 784, the largest here, by a factor of 27), and a wrong element
// moves it by about sum|terms|. A relative-to-|exact| bound would be
// meaningless where the terms cancel.
#include <gtest/gtest.h>

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "core/internal.h"
#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;
using cudl_test::FloatBits;
using cudl_test::HasSubstr;
using cudl_test::ReadF32;
using cudl_test::WriteF32;

// Unit roundoff of f32 (round to nearest).
constexpr double kU = FLT_EPSILON / 2.0;
// Written into outputs before calls that must overwrite them (NaN: a kernel
// that adds to its output instead of overwriting it is caught) or must leave
// them alone (kSentinel).
constexpr float kSentinel = 1234.5f;

std::vector<float> Uniform(size_t n, uint32_t seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(lo, hi);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

std::vector<int64_t> Append(std::vector<int64_t> lead, int64_t last) {
  lead.push_back(last);
  return lead;
}

// One problem size: x is lead + [in], y and dy are lead + [out].
struct Case {
  std::vector<int64_t> lead;
  int64_t in, out;
  int64_t rows() const {
    int64_t r = 1;
    for (int64_t d : lead) r *= d;
    return r;
  }
  std::string name() const {
    std::string s = "x [";
    for (int64_t d : lead) s += std::to_string(d) + ", ";
    return s + std::to_string(in) + "] -> " + std::to_string(out);
  }
};

// Sizes that catch indexing bugs (a 1 in every place, primes, non-square,
// more than two dimensions) and the sizes of real layers.
const Case kCases[] = {
    {{1}, 1, 1},           // one of everything
    {{1}, 7, 3},           // one row
    {{5}, 1, 4},           // one input feature
    {{6}, 9, 1},           // one output
    {{7}, 13, 11},         // primes
    {{3}, 17, 2},          // wide and short
    {{2, 5}, 7, 3},        // 3-D x: two leading dimensions
    {{2, 1, 3, 2}, 3, 5},  // 5-D x (CUDL_MAX_DIMS)
    {{128}, 64, 10},       // ResNet-20 / CIFAR-10 classifier head, batch 128
    {{128}, 784, 256},     // MNIST MLP first layer, batch 128
};

// Small enough that the rigorous bound on finite differences of cudl's own
// f32 forward stays far below the gradients (see ForwardFiniteDifferences).
const Case kSmallCases[] = {{{1}, 1, 1}, {{1}, 7, 3}, {{5}, 1, 4}, {{7}, 13, 11}, {{2, 5}, 7, 3}};

// ---------------------------------------------------------------------------
// float64 references: each element's exact value (to double precision) and
// the sum of the absolute values of its terms, the scale of its f32 error.
// ---------------------------------------------------------------------------

struct Ref {
  std::vector<double> value, scale;
};

// y[r, o] = sum_i x[r, i] w[o, i] + bias[o]
Ref RefForward(const std::vector<float> &x, const std::vector<float> &w,
               const std::vector<float> *bias, int64_t rows, int64_t in, int64_t out) {
  Ref r;
  r.value.assign(static_cast<size_t>(rows * out), 0.0);
  r.scale.assign(static_cast<size_t>(rows * out), 0.0);
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      double s = 0, a = 0;
      for (int64_t k = 0; k < in; ++k) {
        const double t = static_cast<double>(x[static_cast<size_t>(i * in + k)]) *
                         static_cast<double>(w[static_cast<size_t>(o * in + k)]);
        s += t;
        a += std::fabs(t);
      }
      if (bias != nullptr) {
        s += (*bias)[static_cast<size_t>(o)];
        a += std::fabs((*bias)[static_cast<size_t>(o)]);
      }
      r.value[static_cast<size_t>(i * out + o)] = s;
      r.scale[static_cast<size_t>(i * out + o)] = a;
    }
  }
  return r;
}

// dx[r, i] = sum_o dy[r, o] w[o, i]
Ref RefDx(const std::vector<float> &dy, const std::vector<float> &w, int64_t rows, int64_t in,
          int64_t out) {
  Ref r;
  r.value.assign(static_cast<size_t>(rows * in), 0.0);
  r.scale.assign(static_cast<size_t>(rows * in), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t k = 0; k < in; ++k)
      for (int64_t o = 0; o < out; ++o) {
        const double t = static_cast<double>(dy[static_cast<size_t>(i * out + o)]) *
                         static_cast<double>(w[static_cast<size_t>(o * in + k)]);
        r.value[static_cast<size_t>(i * in + k)] += t;
        r.scale[static_cast<size_t>(i * in + k)] += std::fabs(t);
      }
  return r;
}

// dw[o, i] = sum_r dy[r, o] x[r, i]
Ref RefDw(const std::vector<float> &dy, const std::vector<float> &x, int64_t rows, int64_t in,
          int64_t out) {
  Ref r;
  r.value.assign(static_cast<size_t>(out * in), 0.0);
  r.scale.assign(static_cast<size_t>(out * in), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < out; ++o)
      for (int64_t k = 0; k < in; ++k) {
        const double t = static_cast<double>(dy[static_cast<size_t>(i * out + o)]) *
                         static_cast<double>(x[static_cast<size_t>(i * in + k)]);
        r.value[static_cast<size_t>(o * in + k)] += t;
        r.scale[static_cast<size_t>(o * in + k)] += std::fabs(t);
      }
  return r;
}

// dbias[o] = sum_r dy[r, o]
Ref RefDbias(const std::vector<float> &dy, int64_t rows, int64_t out) {
  Ref r;
  r.value.assign(static_cast<size_t>(out), 0.0);
  r.scale.assign(static_cast<size_t>(out), 0.0);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t o = 0; o < out; ++o) {
      const double t = dy[static_cast<size_t>(i * out + o)];
      r.value[static_cast<size_t>(o)] += t;
      r.scale[static_cast<size_t>(o)] += std::fabs(t);
    }
  return r;
}

// The f32 bound for a sum of n products (and a bias): see the top of the file.
double F32Bound(int64_t n) { return static_cast<double>(n + 2) * kU; }

// Success when |got[i] - want[i]| <= per_scale * scale[i] + abs_tol for
// every i (a NaN fails); otherwise how many differ and the first few.
::testing::AssertionResult WithinBound(const std::vector<float> &got,
                                       const std::vector<double> &want,
                                       const std::vector<double> &scale, double per_scale,
                                       double abs_tol = 0.0) {
  if (got.size() != want.size() || scale.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  size_t bad = 0;
  std::string first;
  double worst = 0;  // largest |error| / bound, for the message
  for (size_t i = 0; i < got.size(); ++i) {
    const double bound = per_scale * scale[i] + abs_tol;
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= bound)) {
      if (bad < 5) {
        char line[200];
        std::snprintf(line, sizeof line, "\n  [%zu] got %.9g, want %.12g, |error| %.3g > bound %.3g",
                      i, static_cast<double>(got[i]), want[i], err, bound);
        first += line;
      }
      ++bad;
    }
    if (bound > 0) worst = std::max(worst, err / bound);
  }
  if (bad == 0) return ::testing::AssertionSuccess() << "worst error / bound " << worst;
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements outside the bound"
                                       << first;
}

::testing::AssertionResult WithinF32Bound(const std::vector<float> &got, const Ref &ref, int64_t n) {
  return WithinBound(got, ref.value, ref.scale, F32Bound(n));
}

std::vector<double> ToDouble(const std::vector<float> &v) { return {v.begin(), v.end()}; }

// True when `message` starts with `function` and names `arg` as a word of its
// own: "w" is not found in "with", nor "y" in "dy" or "y's" in "dy's".
::testing::AssertionResult Names(const std::string &message, const std::string &function,
                                 const std::string &arg) {
  if (message.compare(0, function.size(), function) != 0)
    return ::testing::AssertionFailure() << "'" << message << "' does not start with '" << function << "'";
  auto ident = [](char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_'; };
  for (size_t at = message.find(arg, function.size()); at != std::string::npos;
       at = message.find(arg, at + 1)) {
    const size_t end = at + arg.size();
    if ((at == 0 || !ident(message[at - 1])) && (end == message.size() || !ident(message[end])))
      return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "'" << message << "' does not name '" << arg << "'";
}

// Forward (with bias) and all three gradients of one problem, read back.
struct Results {
  std::vector<float> y, dx, dw, db;
};

class LinearTest : public cudl_test::TensorFixture {
 protected:
  // Forward with bias and backward with every output, on ctx (outputs
  // pre-filled with NaN, so each must be overwritten).
  Results Run(cudl_context *ctx, const Case &c, const std::vector<float> &xs,
              const std::vector<float> &ws, const std::vector<float> &bs,
              const std::vector<float> &dys) {
    cudl_tensor *x = Make(ctx, Append(c.lead, c.in), xs), *w = Make(ctx, {c.out, c.in}, ws);
    cudl_tensor *b = Make(ctx, {c.out}, bs), *y = Make(ctx, Append(c.lead, c.out));
    cudl_tensor *dy = Make(ctx, Append(c.lead, c.out), dys);
    cudl_tensor *dx = Make(ctx, Append(c.lead, c.in)), *dw = Make(ctx, {c.out, c.in});
    cudl_tensor *db = Make(ctx, {c.out});
    for (cudl_tensor *o : {y, dx, dw, db}) EXPECT_EQ(cudl_tensor_fill(o, NAN), CUDL_OK);
    EXPECT_EQ(cudl_linear_forward(ctx, x, w, b, y), CUDL_OK) << cudl_context_last_error(ctx);
    EXPECT_EQ(cudl_linear_backward(ctx, x, w, dy, dx, dw, db), CUDL_OK)
        << cudl_context_last_error(ctx);
    return {ReadF32(y), ReadF32(dx), ReadF32(dw), ReadF32(db)};
  }
  void TearDown() override {
    // Tensors first, then the extra contexts they may belong to, then ctx_.
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    owned_.clear();
    for (cudl_context *c : extra_) cudl_context_destroy(c);
    cudl_test::TensorFixture::TearDown();
  }
  // A second context, destroyed after every tensor in TearDown.
  cudl_context *Another(cudl_device_kind kind) {
    cudl_context *c = nullptr;
    EXPECT_EQ(cudl_context_create(kind, 0, &c), CUDL_OK);
    if (c != nullptr) extra_.push_back(c);
    return c;
  }
  cudl_tensor *MakeDtype(cudl_context *ctx, cudl_dtype dtype, const std::vector<int64_t> &shape) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx, dtype, static_cast<int>(shape.size()), shape.data(), &t),
              CUDL_OK);
    if (t != nullptr) owned_.push_back(t);
    return t;
  }
  // A view of src with another shape (same storage).
  cudl_tensor *View(cudl_tensor *src, const std::vector<int64_t> &shape) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_reshape(src, static_cast<int>(shape.size()), shape.data(), &t), CUDL_OK)
        << cudl_context_last_error(cudl_tensor_context(src));
    if (t != nullptr) owned_.push_back(t);
    return t;
  }
  // Leaves a last error from another function, so that a check of the
  // message cannot pass on a stale one.
  void Poison(cudl_context *ctx) {
    cudl_tensor *t = Make(ctx, {1});
    ASSERT_EQ(cudl_tensor_copy_from_host(t, nullptr, 4), CUDL_ERR_INVALID_ARGUMENT);
    ASSERT_TRUE(HasSubstr(cudl_context_last_error(ctx), "cudl_tensor_copy_from_host"));
  }
  std::vector<cudl_context *> extra_;
};

// The contents of some tensors (any dtype, as bytes), to check later that a
// call left them alone.
class Snapshot {
 public:
  explicit Snapshot(const std::vector<cudl_tensor *> &tensors) : tensors_(tensors) {
    for (cudl_tensor *t : tensors_) bytes_.push_back(Bytes(t));
  }
  ::testing::AssertionResult Unchanged() const {
    for (size_t i = 0; i < tensors_.size(); ++i)
      if (Bytes(tensors_[i]) != bytes_[i])
        return ::testing::AssertionFailure() << "tensor " << i << " of the snapshot was written";
    return ::testing::AssertionSuccess();
  }

 private:
  static std::vector<unsigned char> Bytes(cudl_tensor *t) {
    std::vector<unsigned char> b(cudl_tensor_nbytes(t));
    EXPECT_EQ(cudl_tensor_copy_to_host(t, b.data(), b.size()), CUDL_OK);
    return b;
  }
  std::vector<cudl_tensor *> tensors_;
  std::vector<std::vector<unsigned char>> bytes_;
};

// ==========================================================================
// Against float64 references
// ==========================================================================

TEST_F(LinearTest, ForwardMatchesFloat64Reference) {
  uint32_t seed = 1;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.name());
    const int64_t rows = c.rows();
    const std::vector<float> xs = Uniform(static_cast<size_t>(rows * c.in), seed++);
    const std::vector<float> ws = Uniform(static_cast<size_t>(c.out * c.in), seed++);
    const std::vector<float> bs = Uniform(static_cast<size_t>(c.out), seed++);
    cudl_tensor *x = Make(ctx_, Append(c.lead, c.in), xs), *w = Make(ctx_, {c.out, c.in}, ws);
    cudl_tensor *b = Make(ctx_, {c.out}, bs), *y = Make(ctx_, Append(c.lead, c.out));
    for (bool with_bias : {true, false}) {
      SCOPED_TRACE(with_bias ? "with bias" : "without bias");
      ASSERT_EQ(cudl_tensor_fill(y, NAN), CUDL_OK);  // overwritten, not added to
      ASSERT_EQ(cudl_linear_forward(ctx_, x, w, with_bias ? b : nullptr, y), CUDL_OK)
          << cudl_context_last_error(ctx_);
      const Ref ref = RefForward(xs, ws, with_bias ? &bs : nullptr, rows, c.in, c.out);
      EXPECT_TRUE(WithinF32Bound(ReadF32(y), ref, c.in));
    }
  }
}

TEST_F(LinearTest, BackwardMatchesFloat64Reference) {
  uint32_t seed = 100;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.name());
    const int64_t rows = c.rows();
    const std::vector<float> xs = Uniform(static_cast<size_t>(rows * c.in), seed++);
    const std::vector<float> ws = Uniform(static_cast<size_t>(c.out * c.in), seed++);
    const std::vector<float> dys = Uniform(static_cast<size_t>(rows * c.out), seed++);
    cudl_tensor *x = Make(ctx_, Append(c.lead, c.in), xs), *w = Make(ctx_, {c.out, c.in}, ws);
    cudl_tensor *dy = Make(ctx_, Append(c.lead, c.out), dys);
    cudl_tensor *dx = Make(ctx_, Append(c.lead, c.in)), *dw = Make(ctx_, {c.out, c.in});
    cudl_tensor *db = Make(ctx_, {c.out});
    for (cudl_tensor *t : {dx, dw, db}) ASSERT_EQ(cudl_tensor_fill(t, NAN), CUDL_OK);
    ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK)
        << cudl_context_last_error(ctx_);
    // dx sums OUT products, dw and dbias ROWS terms.
    EXPECT_TRUE(WithinF32Bound(ReadF32(dx), RefDx(dys, ws, rows, c.in, c.out), c.out)) << "dx";
    EXPECT_TRUE(WithinF32Bound(ReadF32(dw), RefDw(dys, xs, rows, c.in, c.out), rows)) << "dw";
    EXPECT_TRUE(WithinF32Bound(ReadF32(db), RefDbias(dys, rows, c.out), rows)) << "dbias";
  }
}

// ==========================================================================
// Finite differences
// ==========================================================================

// L = sum(y * g) for the forward y = x w^T + b in double, restricted to the
// elements of y in row `row` (all rows when -1) and column `col` (all when
// -1). Perturbing x[r, i] changes only row r of y, and w[o, i] or b[o] only
// column o, so leaving the other elements out changes L(+h) - L(-h) by
// exactly nothing, and keeps double rounding of the rest out of it.
double PartialLoss(const std::vector<double> &x, const std::vector<double> &w,
                   const std::vector<double> &b, const std::vector<float> &g, int64_t rows,
                   int64_t in, int64_t out, int64_t row, int64_t col) {
  double loss = 0;
  for (int64_t r = row < 0 ? 0 : row; r < (row < 0 ? rows : row + 1); ++r)
    for (int64_t o = col < 0 ? 0 : col; o < (col < 0 ? out : col + 1); ++o) {
      double y = b[static_cast<size_t>(o)];
      for (int64_t k = 0; k < in; ++k)
        y += x[static_cast<size_t>(r * in + k)] * w[static_cast<size_t>(o * in + k)];
      loss += y * static_cast<double>(g[static_cast<size_t>(r * out + o)]);
    }
  return loss;
}

// Up to about `count` indices of [0, n), spread out, always with the last.
std::vector<size_t> Sample(size_t n, size_t count) {
  std::vector<size_t> idx;
  const size_t stride = std::max<size_t>(1, n / count);
  for (size_t i = 0; i < n; i += stride) idx.push_back(i);
  if (n > 0 && idx.back() != n - 1) idx.push_back(n - 1);
  return idx;
}

TEST_F(LinearTest, GradientsMatchFiniteDifferencesOfFloat64Forward) {
  // L = sum(y * g) with y = x w^T + b in double; dy = g. L is affine in
  // every single variable, so the central difference has no truncation
  // error whatever h; h = 1/8 added to an f32 value is exact in double.
  // What remains is the double rounding of the partial loss (PartialLoss),
  // orders of magnitude below the f32 bound of the reference checks, which
  // is the tolerance; 1e-12 (1 + |fd|) is only slack for that rounding.
  const double h = 0.125;
  uint32_t seed = 200;
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.name());
    const int64_t rows = c.rows();
    const std::vector<float> xs = Uniform(static_cast<size_t>(rows * c.in), seed++);
    const std::vector<float> ws = Uniform(static_cast<size_t>(c.out * c.in), seed++);
    const std::vector<float> bs = Uniform(static_cast<size_t>(c.out), seed++);
    const std::vector<float> gs = Uniform(static_cast<size_t>(rows * c.out), seed++);
    cudl_tensor *x = Make(ctx_, Append(c.lead, c.in), xs), *w = Make(ctx_, {c.out, c.in}, ws);
    cudl_tensor *dy = Make(ctx_, Append(c.lead, c.out), gs);
    cudl_tensor *dx = Make(ctx_, Append(c.lead, c.in)), *dw = Make(ctx_, {c.out, c.in});
    cudl_tensor *db = Make(ctx_, {c.out});
    ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK)
        << cudl_context_last_error(ctx_);
    const std::vector<float> dxs = ReadF32(dx), dws = ReadF32(dw), dbs = ReadF32(db);
    // The f32 error scales of the gradients (the values are not used).
    const Ref rdx = RefDx(gs, ws, rows, c.in, c.out), rdw = RefDw(gs, xs, rows, c.in, c.out);
    const Ref rdb = RefDbias(gs, rows, c.out);

    std::vector<double> xd = ToDouble(xs), wd = ToDouble(ws), bd = ToDouble(bs);
    // Central difference of L in v[i]; row/col select the part of L that
    // depends on it.
    auto fd = [&](std::vector<double> &v, size_t i, int64_t row, int64_t col) {
      const double orig = v[i];
      v[i] = orig + h;
      const double plus = PartialLoss(xd, wd, bd, gs, rows, c.in, c.out, row, col);
      v[i] = orig - h;
      const double minus = PartialLoss(xd, wd, bd, gs, rows, c.in, c.out, row, col);
      v[i] = orig;
      return (plus - minus) / (2 * h);
    };
    auto check = [&](const char *what, float got, double want, double scale, int64_t n, size_t i) {
      EXPECT_LE(std::fabs(got - want), F32Bound(n) * scale + 1e-12 * (1 + std::fabs(want)))
          << what << "[" << i << "] got " << got << " finite difference " << want;
    };
    for (size_t i : Sample(xs.size(), 30))
      check("dx", dxs[i], fd(xd, i, static_cast<int64_t>(i) / c.in, -1), rdx.scale[i], c.out, i);
    for (size_t i : Sample(ws.size(), 30))
      check("dw", dws[i], fd(wd, i, -1, static_cast<int64_t>(i) / c.in), rdw.scale[i], rows, i);
    for (size_t o : Sample(bs.size(), 30))
      check("dbias", dbs[o], fd(bd, o, -1, static_cast<int64_t>(o)), rdb.scale[o], rows, o);
  }
}

TEST_F(LinearTest, GradientsMatchFiniteDifferencesOfCudlForward) {
  // The same through cudl's own f32 forward, so that its backward is tied to
  // its forward and not only to the references here. L = sum(y * g) over all
  // of y, accumulated in double. L is affine in each variable: no truncation
  // error; the step is the difference of the two f32 values actually used
  // (x + h is rounded to f32). Each evaluation of L is off by at most
  // sum |g| (in + 2) u sum|terms| (the f32 bound, with the terms at the
  // perturbed point), plus double rounding; the difference quotient by the
  // sum of both over the step. That rigorous bound stays below ~3e-4 for
  // these small sizes, against gradients of order 1.
  const float h = 0.5f;
  uint32_t seed = 300;
  for (const Case &c : kSmallCases) {
    SCOPED_TRACE(c.name());
    const int64_t rows = c.rows();
    std::vector<float> xs = Uniform(static_cast<size_t>(rows * c.in), seed++);
    std::vector<float> ws = Uniform(static_cast<size_t>(c.out * c.in), seed++);
    std::vector<float> bs = Uniform(static_cast<size_t>(c.out), seed++);
    const std::vector<float> gs = Uniform(static_cast<size_t>(rows * c.out), seed++);
    cudl_tensor *x = Make(ctx_, Append(c.lead, c.in), xs), *w = Make(ctx_, {c.out, c.in}, ws);
    cudl_tensor *b = Make(ctx_, {c.out}, bs), *y = Make(ctx_, Append(c.lead, c.out));
    cudl_tensor *dy = Make(ctx_, Append(c.lead, c.out), gs);
    cudl_tensor *dx = Make(ctx_, Append(c.lead, c.in)), *dw = Make(ctx_, {c.out, c.in});
    cudl_tensor *db = Make(ctx_, {c.out});
    ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK)
        << cudl_context_last_error(ctx_);
    const std::vector<float> dxs = ReadF32(dx), dws = ReadF32(dw), dbs = ReadF32(db);

    // L at the current host values (after writing them), and its error bound.
    auto loss = [&](double *bound) {
      EXPECT_EQ(WriteF32(x, xs), CUDL_OK);
      EXPECT_EQ(WriteF32(w, ws), CUDL_OK);
      EXPECT_EQ(WriteF32(b, bs), CUDL_OK);
      EXPECT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK);
      const std::vector<float> ys = ReadF32(y);
      const Ref ref = RefForward(xs, ws, &bs, rows, c.in, c.out);
      double l = 0, e = 0, m = 0;
      for (size_t i = 0; i < ys.size(); ++i) {
        l += static_cast<double>(ys[i]) * gs[i];
        e += std::fabs(gs[i]) * F32Bound(c.in) * ref.scale[i];
        m += std::fabs(static_cast<double>(ys[i]) * gs[i]);
      }
      *bound = e + 1e-14 * m;
      return l;
    };
    auto fd = [&](std::vector<float> &v, size_t i, double *bound) {
      const float orig = v[i], up = orig + h, down = orig - h;
      double bp = 0, bm = 0;
      v[i] = up;
      const double plus = loss(&bp);
      v[i] = down;
      const double minus = loss(&bm);
      v[i] = orig;
      const double step = static_cast<double>(up) - static_cast<double>(down);
      *bound = (bp + bm) / step;
      return (plus - minus) / step;
    };
    auto check = [&](const char *what, std::vector<float> &v, const std::vector<float> &got) {
      for (size_t i = 0; i < v.size(); ++i) {
        double bound = 0;
        const double want = fd(v, i, &bound);
        EXPECT_LT(bound, 1e-3) << "the bound is too loose to test anything";
        EXPECT_LE(std::fabs(got[i] - want), bound) << what << "[" << i << "] got " << got[i]
                                                   << " finite difference " << want;
      }
    };
    check("dx", xs, dxs);
    check("dw", ws, dws);
    check("dbias", bs, dbs);
  }
}

// ==========================================================================
// Optional outputs, empty dimensions
// ==========================================================================

TEST_F(LinearTest, EachGradientIsOptional) {
  const Case c = {{2, 5}, 7, 3};
  const int64_t rows = c.rows();
  const std::vector<float> xs = Uniform(static_cast<size_t>(rows * c.in), 400);
  const std::vector<float> ws = Uniform(static_cast<size_t>(c.out * c.in), 401);
  const std::vector<float> dys = Uniform(static_cast<size_t>(rows * c.out), 402);
  cudl_tensor *x = Make(ctx_, Append(c.lead, c.in), xs), *w = Make(ctx_, {c.out, c.in}, ws);
  cudl_tensor *dy = Make(ctx_, Append(c.lead, c.out), dys);
  cudl_tensor *dx = Make(ctx_, Append(c.lead, c.in)), *dw = Make(ctx_, {c.out, c.in});
  cudl_tensor *db = Make(ctx_, {c.out});
  ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK);
  const std::vector<float> all[3] = {ReadF32(dx), ReadF32(dw), ReadF32(db)};
  // All three computed: within the bound (so the comparisons below are not
  // against garbage).
  ASSERT_TRUE(WithinF32Bound(all[0], RefDx(dys, ws, rows, c.in, c.out), c.out));
  ASSERT_TRUE(WithinF32Bound(all[1], RefDw(dys, xs, rows, c.in, c.out), rows));
  ASSERT_TRUE(WithinF32Bound(all[2], RefDbias(dys, rows, c.out), rows));

  cudl_tensor *const outs[3] = {dx, dw, db};
  for (int mask = 0; mask < 8; ++mask) {
    for (bool pass_x : {true, false}) {
      const bool want[3] = {(mask & 1) != 0, (mask & 2) != 0, (mask & 4) != 0};
      if (!pass_x && want[1]) continue;  // x is required for dw (BadInput)
      SCOPED_TRACE("dx " + std::to_string(want[0]) + " dw " + std::to_string(want[1]) +
                   " dbias " + std::to_string(want[2]) + (pass_x ? " with x" : " x NULL"));
      for (cudl_tensor *t : outs) ASSERT_EQ(cudl_tensor_fill(t, kSentinel), CUDL_OK);
      ASSERT_EQ(cudl_linear_backward(ctx_, pass_x ? x : nullptr, w, dy, want[0] ? dx : nullptr,
                                     want[1] ? dw : nullptr, want[2] ? db : nullptr),
                CUDL_OK)
          << cudl_context_last_error(ctx_);
      for (int k = 0; k < 3; ++k) {
        // The CPU is deterministic: a gradient is the same bits whether or
        // not the others are computed; one not asked for is not touched.
        const std::vector<float> got = ReadF32(outs[k]);
        if (want[k]) {
          EXPECT_TRUE(BitEqual(got, all[k])) << "output " << k;
        } else {
          EXPECT_TRUE(BitEqual(got, std::vector<float>(got.size(), kSentinel))) << "output " << k;
        }
      }
    }
  }
}

TEST_F(LinearTest, ZeroInputFeatures) {
  // IN = 0: every product is empty, y = bias (or 0), dx is empty, dw is
  // empty, dbias still sums dy.
  const std::vector<float> bs = {0.5f, -2.0f, 3.25f, 7.0f};
  const std::vector<float> dys = Uniform(12, 500);
  cudl_tensor *x = Make(ctx_, {3, 0}), *w = Make(ctx_, {4, 0}), *b = Make(ctx_, {4}, bs);
  cudl_tensor *y = Make(ctx_, {3, 4});
  ASSERT_EQ(cudl_tensor_fill(y, NAN), CUDL_OK);
  ASSERT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK) << cudl_context_last_error(ctx_);
  std::vector<float> want;
  for (int r = 0; r < 3; ++r) want.insert(want.end(), bs.begin(), bs.end());
  EXPECT_TRUE(BitEqual(ReadF32(y), want)) << "y = bias";
  ASSERT_EQ(cudl_tensor_fill(y, NAN), CUDL_OK);
  ASSERT_EQ(cudl_linear_forward(ctx_, x, w, nullptr, y), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(y), std::vector<float>(12, 0.0f))) << "y = 0";

  cudl_tensor *dy = Make(ctx_, {3, 4}, dys), *dx = Make(ctx_, {3, 0}), *dw = Make(ctx_, {4, 0});
  cudl_tensor *db = Make(ctx_, {4});
  ASSERT_EQ(cudl_tensor_fill(db, NAN), CUDL_OK);
  ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK)
      << cudl_context_last_error(ctx_);
  EXPECT_TRUE(WithinF32Bound(ReadF32(db), RefDbias(dys, 3, 4), 3));
}

TEST_F(LinearTest, ZeroRows) {
  // No rows (directly, and through a 0 among x's leading dimensions): y is
  // empty, dw and dbias are sums over nothing and become zeros.
  for (const std::vector<int64_t> &lead : {std::vector<int64_t>{0}, std::vector<int64_t>{2, 0, 3}}) {
    SCOPED_TRACE("leading dimensions of " + std::to_string(lead.size()));
    cudl_tensor *x = Make(ctx_, Append(lead, 5)), *w = Make(ctx_, {4, 5}, Uniform(20, 510));
    cudl_tensor *b = Make(ctx_, {4}, Uniform(4, 511)), *y = Make(ctx_, Append(lead, 4));
    ASSERT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK) << cudl_context_last_error(ctx_);
    ASSERT_EQ(cudl_linear_forward(ctx_, x, w, nullptr, y), CUDL_OK);
    cudl_tensor *dy = Make(ctx_, Append(lead, 4)), *dx = Make(ctx_, Append(lead, 5));
    cudl_tensor *dw = Make(ctx_, {4, 5}), *db = Make(ctx_, {4});
    ASSERT_EQ(cudl_tensor_fill(dw, NAN), CUDL_OK);
    ASSERT_EQ(cudl_tensor_fill(db, NAN), CUDL_OK);
    ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK)
        << cudl_context_last_error(ctx_);
    EXPECT_TRUE(BitEqual(ReadF32(dw), std::vector<float>(20, 0.0f)));
    EXPECT_TRUE(BitEqual(ReadF32(db), std::vector<float>(4, 0.0f)));
  }
}

TEST_F(LinearTest, ZeroOutputFeatures) {
  // OUT = 0: y, dw and dbias are empty; dx = dy w sums nothing and is 0.
  cudl_tensor *x = Make(ctx_, {3, 5}, Uniform(15, 520)), *w = Make(ctx_, {0, 5});
  cudl_tensor *b = Make(ctx_, {0}), *y = Make(ctx_, {3, 0});
  ASSERT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK) << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_linear_forward(ctx_, x, w, nullptr, y), CUDL_OK);
  cudl_tensor *dy = Make(ctx_, {3, 0}), *dx = Make(ctx_, {3, 5}), *dw = Make(ctx_, {0, 5});
  cudl_tensor *db = Make(ctx_, {0});
  ASSERT_EQ(cudl_tensor_fill(dx, NAN), CUDL_OK);
  ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK)
      << cudl_context_last_error(ctx_);
  EXPECT_TRUE(BitEqual(ReadF32(dx), std::vector<float>(15, 0.0f)));
}

TEST_F(LinearTest, NoOutputsIsANoOp) {
  cudl_tensor *w = Make(ctx_, {2, 3}, Uniform(6, 530)), *dy = Make(ctx_, {4, 2}, Uniform(8, 531));
  const Snapshot before({w, dy});
  EXPECT_EQ(cudl_linear_backward(ctx_, nullptr, w, dy, nullptr, nullptr, nullptr), CUDL_OK);
  EXPECT_TRUE(before.Unchanged());
}

// ==========================================================================
// Bad input: the documented status, a message naming the argument, nothing
// written, and the objects still usable.
// ==========================================================================

TEST_F(LinearTest, ForwardBadInputWritesNothing) {
  cudl_context *other = Another(CUDL_DEVICE_CPU);
  ASSERT_NE(other, nullptr);
  const char *fn = "cudl_linear_forward";
  // The valid problem: x [3, 4], w [2, 4], bias [2], y [3, 2].
  cudl_tensor *x = Make(ctx_, {3, 4}, Uniform(12, 600)), *w = Make(ctx_, {2, 4}, Uniform(8, 601));
  cudl_tensor *b = Make(ctx_, {2}, Uniform(2, 602)), *y = Make(ctx_, {3, 2});
  ASSERT_EQ(cudl_tensor_fill(y, kSentinel), CUDL_OK);
  // Outputs of the wrong shape, context or dtype, pre-filled too.
  cudl_tensor *y_out3 = Make(ctx_, {3, 3}), *y_rows4 = Make(ctx_, {4, 2});
  cudl_tensor *y_3d = Make(ctx_, {3, 1, 2}), *y_other = Make(other, {3, 2});
  for (cudl_tensor *t : {y_out3, y_rows4, y_3d, y_other})
    ASSERT_EQ(cudl_tensor_fill(t, kSentinel), CUDL_OK);
  cudl_tensor *y16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {3, 2});
  const std::vector<uint16_t> half_pattern(6, 0x3c00u);  // 1.0 in f16
  ASSERT_EQ(cudl_tensor_copy_from_host(y16, half_pattern.data(), 12), CUDL_OK);
  // Inputs that are wrong.
  cudl_tensor *x_other = Make(other, {3, 4}), *w_other = Make(other, {2, 4});
  cudl_tensor *b_other = Make(other, {2});
  cudl_tensor *x16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {3, 4});
  cudl_tensor *w16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {2, 4});
  cudl_tensor *b16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {2});
  cudl_tensor *w1 = Make(ctx_, {8}), *w3 = Make(ctx_, {2, 4, 1}), *x5 = Make(ctx_, {3, 5});
  cudl_tensor *x_scalar = Make(ctx_, {}), *x_3d = Make(ctx_, {3, 1, 4});
  cudl_tensor *b3 = Make(ctx_, {3}), *b_2d = Make(ctx_, {1, 2});

  const Snapshot outputs({y, y_out3, y_rows4, y_3d, y_other, y16});
  const Snapshot inputs({x, w, b});
  struct Bad {
    const char *what;
    cudl_context *ctx;
    const cudl_tensor *x, *w, *bias;
    cudl_tensor *y;
    cudl_status want;
    const char *arg;  // NULL: no message (NULL context)
  };
  const Bad cases[] = {
      {"NULL ctx", nullptr, x, w, b, y, CUDL_ERR_INVALID_ARGUMENT, nullptr},
      {"NULL x", ctx_, nullptr, w, b, y, CUDL_ERR_INVALID_ARGUMENT, "x"},
      {"NULL w", ctx_, x, nullptr, b, y, CUDL_ERR_INVALID_ARGUMENT, "w"},
      {"NULL y", ctx_, x, w, b, nullptr, CUDL_ERR_INVALID_ARGUMENT, "y"},
      {"x of another context", ctx_, x_other, w, b, y, CUDL_ERR_DEVICE_MISMATCH, "x"},
      {"w of another context", ctx_, x, w_other, b, y, CUDL_ERR_DEVICE_MISMATCH, "w"},
      {"bias of another context", ctx_, x, w, b_other, y, CUDL_ERR_DEVICE_MISMATCH, "bias"},
      {"y of another context", ctx_, x, w, b, y_other, CUDL_ERR_DEVICE_MISMATCH, "y"},
      {"called on the other context", other, x, w, b, y_other, CUDL_ERR_DEVICE_MISMATCH, "x"},
      {"x f16", ctx_, x16, w, b, y, CUDL_ERR_DTYPE, "x"},
      {"w f16", ctx_, x, w16, b, y, CUDL_ERR_DTYPE, "w"},
      {"bias f16", ctx_, x, w, b16, y, CUDL_ERR_DTYPE, "bias"},
      {"y f16", ctx_, x, w, b, y16, CUDL_ERR_DTYPE, "y"},
      {"w 1-D", ctx_, x, w1, b, y, CUDL_ERR_SHAPE, "w"},
      {"w 3-D", ctx_, x, w3, b, y, CUDL_ERR_SHAPE, "w"},
      {"x's last dimension is not IN", ctx_, x5, w, b, y, CUDL_ERR_SHAPE, "x"},
      {"x a scalar", ctx_, x_scalar, w, b, y, CUDL_ERR_SHAPE, "x"},
      {"y's last dimension is not OUT", ctx_, x, w, b, y_out3, CUDL_ERR_SHAPE, "y"},
      {"y has other rows", ctx_, x, w, b, y_rows4, CUDL_ERR_SHAPE, "y"},
      {"y has more dimensions", ctx_, x, w, b, y_3d, CUDL_ERR_SHAPE, "y"},
      {"x has more dimensions", ctx_, x_3d, w, b, y, CUDL_ERR_SHAPE, "y"},
      {"bias of the wrong length", ctx_, x, w, b3, y, CUDL_ERR_SHAPE, "bias"},
      {"bias 2-D", ctx_, x, w, b_2d, y, CUDL_ERR_SHAPE, "bias"},
  };
  for (const Bad &c : cases) {
    SCOPED_TRACE(c.what);
    if (c.ctx != nullptr) Poison(c.ctx);
    EXPECT_EQ(cudl_linear_forward(c.ctx, c.x, c.w, c.bias, c.y), c.want);
    if (c.arg != nullptr) {
      EXPECT_TRUE(Names(cudl_context_last_error(c.ctx), fn, c.arg));
    }
    EXPECT_TRUE(outputs.Unchanged());
    EXPECT_TRUE(inputs.Unchanged());
  }

  // y sharing storage with an input, through views (cudl_tensor_reshape):
  // the same shape, and other shapes that happen to fit.
  {
    SCOPED_TRACE("y a view of x");
    cudl_tensor *xs = Make(ctx_, {2, 3}, Uniform(6, 610)), *ws = Make(ctx_, {3, 3}, Uniform(9, 611));
    cudl_tensor *yv = View(xs, {-1, 3});
    const Snapshot s({xs, ws});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_forward(ctx_, xs, ws, nullptr, yv), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "y"));
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_forward(ctx_, xs, ws, nullptr, xs), CUDL_ERR_INVALID_ARGUMENT)
        << "y the same tensor as x";
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "y"));
    EXPECT_TRUE(s.Unchanged());
  }
  {
    SCOPED_TRACE("y a view of w");  // x [2, 2], w [3, 2], y [2, 3]
    cudl_tensor *xs = Make(ctx_, {2, 2}, Uniform(4, 612)), *ws = Make(ctx_, {3, 2}, Uniform(6, 613));
    cudl_tensor *yv = View(ws, {2, 3});
    const Snapshot s({xs, ws});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_forward(ctx_, xs, ws, nullptr, yv), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "y"));
    EXPECT_TRUE(s.Unchanged());
  }
  {
    SCOPED_TRACE("y a view of bias");  // x [1, 4], w [2, 4], bias [2], y [1, 2]
    cudl_tensor *xs = Make(ctx_, {1, 4}, Uniform(4, 614)), *bs = Make(ctx_, {2}, Uniform(2, 615));
    cudl_tensor *yv = View(bs, {1, 2});
    const Snapshot s({xs, w, bs});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_forward(ctx_, xs, w, bs, yv), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "y"));
    EXPECT_TRUE(s.Unchanged());
  }

  // Dimensions above INT_MAX (the BLAS limit), on empty tensors so that
  // nothing large is allocated.
  {
    const int64_t big = int64_t{INT_MAX} + 1;
    cudl_tensor *xw = Make(ctx_, {0, big}), *ww = Make(ctx_, {0, big}), *yw = Make(ctx_, {0, 0});
    EXPECT_EQ(cudl_linear_forward(ctx_, xw, ww, nullptr, yw), CUDL_ERR_UNSUPPORTED) << "IN";
    cudl_tensor *xr = Make(ctx_, {big, 0}), *wr = Make(ctx_, {0, 0}), *yr = Make(ctx_, {big, 0});
    EXPECT_EQ(cudl_linear_forward(ctx_, xr, wr, nullptr, yr), CUDL_ERR_UNSUPPORTED) << "rows";
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "INT_MAX"));
  }

  // Everything still works.
  ASSERT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK) << cudl_context_last_error(ctx_);
  const std::vector<float> bv = ReadF32(b);
  EXPECT_TRUE(WithinF32Bound(ReadF32(y), RefForward(ReadF32(x), ReadF32(w), &bv, 3, 4, 2), 4));
  ASSERT_EQ(cudl_linear_forward(other, x_other, w_other, b_other, y_other), CUDL_OK)
      << cudl_context_last_error(other);
}

TEST_F(LinearTest, BackwardBadInputWritesNothing) {
  cudl_context *other = Another(CUDL_DEVICE_CPU);
  ASSERT_NE(other, nullptr);
  const char *fn = "cudl_linear_backward";
  // The valid problem: x [3, 4], w [2, 4], dy [3, 2]; dx [3, 4], dw [2, 4],
  // dbias [2].
  cudl_tensor *x = Make(ctx_, {3, 4}, Uniform(12, 700)), *w = Make(ctx_, {2, 4}, Uniform(8, 701));
  cudl_tensor *dy = Make(ctx_, {3, 2}, Uniform(6, 702));
  cudl_tensor *dx = Make(ctx_, {3, 4}), *dw = Make(ctx_, {2, 4}), *db = Make(ctx_, {2});
  // Wrong ones.
  cudl_tensor *x_other = Make(other, {3, 4}), *w_other = Make(other, {2, 4});
  cudl_tensor *dy_other = Make(other, {3, 2}), *dx_other = Make(other, {3, 4});
  cudl_tensor *dw_other = Make(other, {2, 4}), *db_other = Make(other, {2});
  cudl_tensor *x16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {3, 4});
  cudl_tensor *w16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {2, 4});
  cudl_tensor *dy16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {3, 2});
  cudl_tensor *dx16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {3, 4});
  cudl_tensor *dw16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {2, 4});
  cudl_tensor *db16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {2});
  cudl_tensor *w1 = Make(ctx_, {8}), *dy3 = Make(ctx_, {3, 3}), *dy_scalar = Make(ctx_, {});
  cudl_tensor *dx5 = Make(ctx_, {3, 5}), *dx_rows = Make(ctx_, {4, 4}), *dx_3d = Make(ctx_, {3, 1, 4});
  cudl_tensor *x5 = Make(ctx_, {3, 5}), *x_rows = Make(ctx_, {4, 4});
  cudl_tensor *dw_t = Make(ctx_, {4, 2}), *dw_3d = Make(ctx_, {2, 4, 1}), *dw_1d = Make(ctx_, {8});
  cudl_tensor *db3 = Make(ctx_, {3}), *db_2d = Make(ctx_, {1, 2});
  const std::vector<cudl_tensor *> outs = {dx, dw, db, dx_other, dw_other, db_other, dx5,
                                           dx_rows, dx_3d, dw_t, dw_3d, dw_1d, db3, db_2d};
  for (cudl_tensor *t : outs) ASSERT_EQ(cudl_tensor_fill(t, kSentinel), CUDL_OK);
  std::vector<cudl_tensor *> all = outs;
  for (cudl_tensor *t : {dx16, dw16, db16}) all.push_back(t);  // zero bytes, any change shows
  const Snapshot outputs(all);
  const Snapshot inputs({x, w, dy});

  struct Bad {
    const char *what;
    cudl_context *ctx;
    const cudl_tensor *x, *w, *dy;
    cudl_tensor *dx, *dw, *dbias;
    cudl_status want;
    const char *arg;
  };
  const Bad cases[] = {
      {"NULL ctx", nullptr, x, w, dy, dx, dw, db, CUDL_ERR_INVALID_ARGUMENT, nullptr},
      {"NULL w", ctx_, x, nullptr, dy, dx, dw, db, CUDL_ERR_INVALID_ARGUMENT, "w"},
      {"NULL dy", ctx_, x, w, nullptr, dx, dw, db, CUDL_ERR_INVALID_ARGUMENT, "dy"},
      {"NULL x with dw", ctx_, nullptr, w, dy, dx, dw, db, CUDL_ERR_INVALID_ARGUMENT, "x"},
      {"NULL x with dw only", ctx_, nullptr, w, dy, nullptr, dw, nullptr, CUDL_ERR_INVALID_ARGUMENT, "x"},
      {"w of another context", ctx_, x, w_other, dy, dx, dw, db, CUDL_ERR_DEVICE_MISMATCH, "w"},
      {"dy of another context", ctx_, x, w, dy_other, dx, dw, db, CUDL_ERR_DEVICE_MISMATCH, "dy"},
      {"x of another context", ctx_, x_other, w, dy, dx, dw, db, CUDL_ERR_DEVICE_MISMATCH, "x"},
      {"dx of another context", ctx_, x, w, dy, dx_other, dw, db, CUDL_ERR_DEVICE_MISMATCH, "dx"},
      {"dw of another context", ctx_, x, w, dy, dx, dw_other, db, CUDL_ERR_DEVICE_MISMATCH, "dw"},
      {"dbias of another context", ctx_, x, w, dy, dx, dw, db_other, CUDL_ERR_DEVICE_MISMATCH, "dbias"},
      {"w f16", ctx_, x, w16, dy, dx, dw, db, CUDL_ERR_DTYPE, "w"},
      {"dy f16", ctx_, x, w, dy16, dx, dw, db, CUDL_ERR_DTYPE, "dy"},
      {"x f16", ctx_, x16, w, dy, dx, dw, db, CUDL_ERR_DTYPE, "x"},
      {"dx f16", ctx_, x, w, dy, dx16, dw, db, CUDL_ERR_DTYPE, "dx"},
      {"dw f16", ctx_, x, w, dy, dx, dw16, db, CUDL_ERR_DTYPE, "dw"},
      {"dbias f16", ctx_, x, w, dy, dx, dw, db16, CUDL_ERR_DTYPE, "dbias"},
      {"w 1-D", ctx_, x, w1, dy, dx, dw, db, CUDL_ERR_SHAPE, "w"},
      {"dy's last dimension is not OUT", ctx_, x, w, dy3, dx, dw, db, CUDL_ERR_SHAPE, "dy"},
      {"dy a scalar", ctx_, x, w, dy_scalar, dx, dw, db, CUDL_ERR_SHAPE, "dy"},
      {"dx's last dimension is not IN", ctx_, x, w, dy, dx5, dw, db, CUDL_ERR_SHAPE, "dx"},
      {"dx has other rows", ctx_, x, w, dy, dx_rows, dw, db, CUDL_ERR_SHAPE, "dx"},
      {"dx has more dimensions", ctx_, x, w, dy, dx_3d, dw, db, CUDL_ERR_SHAPE, "dx"},
      {"x's last dimension is not IN", ctx_, x5, w, dy, dx, dw, db, CUDL_ERR_SHAPE, "x"},
      {"x has other rows", ctx_, x_rows, w, dy, dx, dw, db, CUDL_ERR_SHAPE, "x"},
      {"dw transposed", ctx_, x, w, dy, dx, dw_t, db, CUDL_ERR_SHAPE, "dw"},
      {"dw 3-D", ctx_, x, w, dy, dx, dw_3d, db, CUDL_ERR_SHAPE, "dw"},
      {"dw 1-D", ctx_, x, w, dy, dx, dw_1d, db, CUDL_ERR_SHAPE, "dw"},
      {"dbias of the wrong length", ctx_, x, w, dy, dx, dw, db3, CUDL_ERR_SHAPE, "dbias"},
      {"dbias 2-D", ctx_, x, w, dy, dx, dw, db_2d, CUDL_ERR_SHAPE, "dbias"},
      {"dbias wrong, others NULL", ctx_, nullptr, w, dy, nullptr, nullptr, db3, CUDL_ERR_SHAPE, "dbias"},
  };
  for (const Bad &c : cases) {
    SCOPED_TRACE(c.what);
    if (c.ctx != nullptr) Poison(c.ctx);
    EXPECT_EQ(cudl_linear_backward(c.ctx, c.x, c.w, c.dy, c.dx, c.dw, c.dbias), c.want);
    if (c.arg != nullptr) {
      EXPECT_TRUE(Names(cudl_context_last_error(c.ctx), fn, c.arg));
    }
    EXPECT_TRUE(outputs.Unchanged());
    EXPECT_TRUE(inputs.Unchanged());
  }

  // Outputs sharing storage with an input or with each other (views).
  {
    SCOPED_TRACE("dx a view of dy");  // IN = OUT = 2
    cudl_tensor *xs = Make(ctx_, {3, 2}, Uniform(6, 710)), *ws = Make(ctx_, {2, 2}, Uniform(4, 711));
    cudl_tensor *dys = Make(ctx_, {3, 2}, Uniform(6, 712)), *dxv = View(dys, {6, 1});
    cudl_tensor *dxv2 = View(dxv, {3, 2});  // a view of the view
    const Snapshot s({xs, ws, dys});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_backward(ctx_, xs, ws, dys, dxv2, nullptr, nullptr), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "dx"));
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_backward(ctx_, xs, ws, dys, dys, nullptr, nullptr), CUDL_ERR_INVALID_ARGUMENT)
        << "dx the same tensor as dy";
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "dx"));
    EXPECT_TRUE(s.Unchanged());
  }
  {
    SCOPED_TRACE("dx a view of x");
    cudl_tensor *dxv = View(x, {3, 4});
    const Snapshot s({x, w, dy, dw});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_backward(ctx_, x, w, dy, dxv, dw, nullptr), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "dx"));
    EXPECT_TRUE(s.Unchanged());
  }
  {
    SCOPED_TRACE("dw a view of w");
    cudl_tensor *dwv = View(w, {2, -1});
    const Snapshot s({x, w, dy});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_backward(ctx_, x, w, dy, nullptr, dwv, nullptr), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "dw"));
    EXPECT_TRUE(s.Unchanged());
  }
  {
    SCOPED_TRACE("dbias a view of dy");  // one row: dy [1, 2]
    cudl_tensor *dy1 = Make(ctx_, {1, 2}, Uniform(2, 720)), *dbv = View(dy1, {2});
    const Snapshot s({w, dy1});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_backward(ctx_, nullptr, w, dy1, nullptr, nullptr, dbv), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(Names(cudl_context_last_error(ctx_), fn, "dbias"));
    EXPECT_TRUE(s.Unchanged());
  }
  {
    SCOPED_TRACE("dbias a view of dw");  // IN = 1: dw [2, 1], dbias [2]
    cudl_tensor *x1 = Make(ctx_, {3, 1}, Uniform(3, 721)), *w21 = Make(ctx_, {2, 1}, Uniform(2, 722));
    cudl_tensor *dw21 = Make(ctx_, {2, 1}), *dbv = View(dw21, {2});
    ASSERT_EQ(cudl_tensor_fill(dw21, kSentinel), CUDL_OK);
    const Snapshot s({x1, w21, dy, dw21});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_backward(ctx_, x1, w21, dy, nullptr, dw21, dbv), CUDL_ERR_INVALID_ARGUMENT);
    // The first output found sharing is named: dw (with dbias) or dbias.
    const std::string msg = cudl_context_last_error(ctx_);
    EXPECT_TRUE(Names(msg, fn, "dw") || Names(msg, fn, "dbias")) << msg;
    EXPECT_TRUE(HasSubstr(msg, "shares storage"));
    EXPECT_TRUE(s.Unchanged());
  }
  {
    SCOPED_TRACE("dx a view of dw");  // rows = OUT = 2, IN = 4: dx [2, 4], dw [2, 4]
    cudl_tensor *x2 = Make(ctx_, {2, 4}, Uniform(8, 723)), *dy2 = Make(ctx_, {2, 2}, Uniform(4, 724));
    cudl_tensor *dxv = View(dw, {2, 4});
    Poison(ctx_);
    EXPECT_EQ(cudl_linear_backward(ctx_, x2, w, dy2, dxv, dw, nullptr), CUDL_ERR_INVALID_ARGUMENT);
    const std::string msg = cudl_context_last_error(ctx_);
    EXPECT_TRUE(Names(msg, fn, "dx") || Names(msg, fn, "dw")) << msg;
    EXPECT_TRUE(HasSubstr(msg, "shares storage"));
    EXPECT_TRUE(outputs.Unchanged());
  }

  // Dimensions above INT_MAX, on empty tensors.
  {
    const int64_t big = int64_t{INT_MAX} + 1;
    cudl_tensor *dyr = Make(ctx_, {big, 0}), *wr = Make(ctx_, {0, 0}), *dxr = Make(ctx_, {big, 0});
    EXPECT_EQ(cudl_linear_backward(ctx_, nullptr, wr, dyr, dxr, nullptr, nullptr), CUDL_ERR_UNSUPPORTED)
        << "rows";
    cudl_tensor *wi = Make(ctx_, {0, big}), *dyi = Make(ctx_, {0, 0}), *dxi = Make(ctx_, {0, big});
    EXPECT_EQ(cudl_linear_backward(ctx_, nullptr, wi, dyi, dxi, nullptr, nullptr), CUDL_ERR_UNSUPPORTED)
        << "IN";
  }

  // Everything still works.
  EXPECT_TRUE(outputs.Unchanged());
  ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK) << cudl_context_last_error(ctx_);
  EXPECT_TRUE(WithinF32Bound(ReadF32(dw), RefDw(ReadF32(dy), ReadF32(x), 3, 4, 2), 3));
  ASSERT_EQ(cudl_linear_backward(other, x_other, w_other, dy_other, dx_other, dw_other, db_other), CUDL_OK)
      << cudl_context_last_error(other);
}

// ==========================================================================
// Context switches
// ==========================================================================

TEST_F(LinearTest, Tf32AndDeterministicSwitches) {
  EXPECT_EQ(cudl_context_allow_tf32(ctx_), 0) << "TF32 is opt-in";
  EXPECT_EQ(cudl_context_deterministic(ctx_), 0);
  ASSERT_EQ(cudl_context_set_allow_tf32(ctx_, 1), CUDL_OK);
  EXPECT_EQ(cudl_context_allow_tf32(ctx_), 1);
  EXPECT_EQ(cudl_context_deterministic(ctx_), 0) << "the switches are independent";
  ASSERT_EQ(cudl_context_set_allow_tf32(ctx_, 0), CUDL_OK);
  EXPECT_EQ(cudl_context_allow_tf32(ctx_), 0);
  ASSERT_EQ(cudl_context_set_allow_tf32(ctx_, -7), CUDL_OK);
  EXPECT_EQ(cudl_context_allow_tf32(ctx_), 1) << "any nonzero value allows, and reads back as 1";
  ASSERT_EQ(cudl_context_set_deterministic(ctx_, 1), CUDL_OK);
  EXPECT_EQ(cudl_context_deterministic(ctx_), 1);
  EXPECT_EQ(cudl_context_allow_tf32(ctx_), 1);
  ASSERT_EQ(cudl_context_set_deterministic(ctx_, 42), CUDL_OK);
  EXPECT_EQ(cudl_context_deterministic(ctx_), 1);
  ASSERT_EQ(cudl_context_set_deterministic(ctx_, 0), CUDL_OK);
  EXPECT_EQ(cudl_context_deterministic(ctx_), 0);

  EXPECT_EQ(cudl_context_set_allow_tf32(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_set_deterministic(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_allow_tf32(nullptr), 0);
  EXPECT_EQ(cudl_context_deterministic(nullptr), 0);

  // Per context: a second one starts with both off.
  cudl_context *other = Another(CUDL_DEVICE_CPU);
  ASSERT_NE(other, nullptr);
  EXPECT_EQ(cudl_context_allow_tf32(other), 0);
  EXPECT_EQ(cudl_context_deterministic(other), 0);
}

TEST_F(LinearTest, SwitchesDoNotChangeCpuResults) {
  // "No effect on the CPU": the same bits with TF32 and determinism on.
  cudl_tensor *x = Make(ctx_, {7, 13}, Uniform(91, 800)), *w = Make(ctx_, {11, 13}, Uniform(143, 801));
  cudl_tensor *b = Make(ctx_, {11}, Uniform(11, 802)), *y = Make(ctx_, {7, 11});
  cudl_tensor *dy = Make(ctx_, {7, 11}, Uniform(77, 803)), *dx = Make(ctx_, {7, 13});
  cudl_tensor *dw = Make(ctx_, {11, 13}), *db = Make(ctx_, {11});
  auto run = [&]() {
    EXPECT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK);
    EXPECT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, dw, db), CUDL_OK);
    return std::vector<std::vector<float>>{ReadF32(y), ReadF32(dx), ReadF32(dw), ReadF32(db)};
  };
  const auto off = run();
  ASSERT_EQ(cudl_context_set_allow_tf32(ctx_, 1), CUDL_OK);
  ASSERT_EQ(cudl_context_set_deterministic(ctx_, 1), CUDL_OK);
  const auto on = run();
  for (size_t k = 0; k < off.size(); ++k) EXPECT_TRUE(BitEqual(on[k], off[k])) << "result " << k;
}

// ==========================================================================
// TF32 (CUDA against float64, TF32 off, on, and off again: test_backends.cpp)
// ==========================================================================

// Inputs that TF32 would change but f32 computes exactly: +-(1 + k 2^-20)
// needs 21 mantissa bits (TF32 keeps 10); the others are powers of two.
// Every product and partial sum is then exact in f32 (magnitudes below 8 on
// a 2^-21 grid), in any order, with or without fused multiply-adds. Used as
// x in the forward and as dy in the backward (with power-of-two x, so that
// dw is exact too).
struct Tf32Probe {
  Case c = {{4}, 3, 3};
  std::vector<float> fine, pow2, w, b;
  Tf32Probe() : fine(12), pow2(12), w(9), b{0.25f, -0.5f, 1.0f} {
    const float p2[] = {1.0f, -1.0f, 0.5f, -0.5f, 2.0f};
    for (size_t i = 0; i < fine.size(); ++i) {
      fine[i] = (i % 2 == 0 ? 1.0f : -1.0f) * (1.0f + static_cast<float>(i + 1) * 0x1p-20f);
      pow2[i] = p2[(i * 3) % 5];
    }
    for (size_t i = 0; i < w.size(); ++i) w[i] = p2[(i * 2 + 1) % 5];
  }
};

// The exact values as floats; a failure when one is not representable.
std::vector<float> ExactF32(const std::vector<double> &v) {
  std::vector<float> f(v.begin(), v.end());
  for (size_t i = 0; i < v.size(); ++i)
    EXPECT_EQ(static_cast<double>(f[i]), v[i]) << "element " << i << " is not exact in f32";
  return f;
}

TEST_F(LinearTest, Tf32ProbeIsExactOnCpu) {
  // Checks, without a GPU, the premise of the TF32 probe rows of
  // test_backends.cpp (the same inputs, which every backend must compute
  // exactly with TF32 off): the CPU's results on the probe are the exact
  // ones.
  const Tf32Probe p;
  const Results fwd = Run(ctx_, p.c, p.fine, p.w, p.b, p.pow2);
  const Results bwd = Run(ctx_, p.c, p.pow2, p.w, p.b, p.fine);
  EXPECT_TRUE(BitEqual(fwd.y, ExactF32(RefForward(p.fine, p.w, &p.b, 4, 3, 3).value)));
  EXPECT_TRUE(BitEqual(bwd.dx, ExactF32(RefDx(p.fine, p.w, 4, 3, 3).value)));
  EXPECT_TRUE(BitEqual(bwd.dw, ExactF32(RefDw(p.fine, p.pow2, 4, 3, 3).value)));
  EXPECT_TRUE(BitEqual(bwd.db, ExactF32(RefDbias(p.fine, 4, 3).value)));
  // And TF32 would change them: the fine inputs are not TF32 values.
  for (float v : p.fine) EXPECT_NE(FloatBits(v) & 0x1fffu, 0u) << v;
}

// x, w, bias, y and the gradients share one float dtype (cudl/tensor.h):
// all bf16 is accepted; one tensor in another dtype is CUDL_ERR_DTYPE
// naming it and both dtypes, and nothing is written.
TEST_F(LinearTest, OperandsShareOneFloatDtype) {
  const cudl_dtype bf16 = CUDL_DTYPE_BF16;
  cudl_tensor *x = MakeDtype(ctx_, bf16, {3, 4}), *w = MakeDtype(ctx_, bf16, {2, 4});
  cudl_tensor *b = MakeDtype(ctx_, bf16, {2}), *y = MakeDtype(ctx_, bf16, {3, 2});
  cudl_tensor *dx = MakeDtype(ctx_, bf16, {3, 4}), *dw = MakeDtype(ctx_, bf16, {2, 4});
  cudl_tensor *db = MakeDtype(ctx_, bf16, {2}), *b16 = MakeDtype(ctx_, CUDL_DTYPE_F16, {2});
  cudl_tensor *dw32 = Make(ctx_, {2, 4}, std::vector<float>(8, kSentinel));
  for (cudl_tensor *t : {x, w, b}) ASSERT_EQ(cudl_tensor_fill(t, 0.5f), CUDL_OK);
  EXPECT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK) << cudl_context_last_error(ctx_);
  // 4 * 0.25 + 0.5 = 1.5, exact in bf16.
  EXPECT_EQ(cudl_test::ReadBits16(y), std::vector<uint16_t>(6, 0x3fc0));
  EXPECT_EQ(cudl_linear_backward(ctx_, x, w, y, dx, dw, db), CUDL_OK);
  const std::vector<uint16_t> y_bits = cudl_test::ReadBits16(y);
  EXPECT_EQ(cudl_linear_forward(ctx_, x, w, b16, y), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"bias", "f16", "x", "bf16"}));
  EXPECT_EQ(cudl_test::ReadBits16(y), y_bits) << "y was written";
  EXPECT_EQ(cudl_linear_backward(ctx_, x, w, y, dx, dw32, db), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"dw", "f32", "bf16"}));
  EXPECT_TRUE(cudl_test::BitEqual(ReadF32(dw32), std::vector<float>(8, kSentinel)));
}

// ==========================================================================
// The 16-bit matrix products
// ==========================================================================
//
// The public calls take f32 tensors; the model layer reaches the bf16 and
// f16 entries of ops.def's gemm through the operator table, and so does
// this test. An entry computes alpha op(A) op(B) + beta C in f32 (or, for
// bf16 where oneDNN does it natively, from bf16 operands with f32
// accumulation: their products are exact in f32 either way) and rounds C
// once. So the inputs are rounded to the dtype and the float64 reference is
// computed from the rounded values; each element may be off by the f32
// computation's (k + 2) u * sum|terms| (as at the top of this file, the
// terms being alpha a b and beta c), plus the one rounding to the dtype,
// u16 * (|exact| + that), with u16 half a unit in the last place (2^-8 for
// bf16, 2^-11 for f16), plus below the normal range 2^-126 (bf16: native
// bf16 kernels flush subnormal results) or 2^-25 (f16, half its smallest
// subnormal step). With k <= 130 a missing or extra term, about
// sum|terms| / k, is above the u16 * |exact| <= sum|terms| / 256 allowed
// for rounding.

using cudl_test::Lowp;

// C = alpha op(A) op(B) + beta C, op(A) m x k, op(B) k x n, each stored
// row-major with `pad` unused elements after each stored row.
struct GemmCase {
  const char *what;
  int trans_a, trans_b;
  int64_t m, n, k;
  float alpha, beta;
  int64_t pad;
  int64_t a_rows() const { return trans_a ? k : m; }
  int64_t lda() const { return (trans_a ? m : k) + pad; }
  int64_t b_rows() const { return trans_b ? n : k; }
  int64_t ldb() const { return (trans_b ? k : n) + pad; }
  int64_t ldc() const { return n + pad; }
  size_t a_size() const { return static_cast<size_t>(a_rows() * lda()); }
  size_t b_size() const { return static_cast<size_t>(b_rows() * ldb()); }
  size_t c_size() const { return static_cast<size_t>(m * ldc()); }
  double A(const std::vector<float> &a, int64_t i, int64_t p) const {
    return a[static_cast<size_t>(trans_a ? p * lda() + i : i * lda() + p)];
  }
  double B(const std::vector<float> &b, int64_t p, int64_t j) const {
    return b[static_cast<size_t>(trans_b ? j * ldb() + p : p * ldb() + j)];
  }
};

cudl_status RunGemm(cudl_context *ctx, cudl_dtype dtype, const GemmCase &g, const void *a,
                    const void *b, void *c) {
  return ctx->backend->ops->gemm[dtype](ctx, g.trans_a, g.trans_b, g.m, g.n, g.k, g.alpha, a,
                                        g.lda(), b, g.ldb(), g.beta, c, g.ldc());
}

// Where a 16-bit product computes in f32 (f16 always, bf16 on a CPU without
// bf16 arithmetic) it is dnnl_sgemm on the same values, so C is the f32
// entry's rounded once, bit for bit; a native bf16 matmul sums in another
// order and only the float64 bound holds.
TEST_F(LinearTest, SixteenBitGemmMatchesFloat64OfRoundedInputs) {
  const bool native = cudl__check_compute_dtype(ctx_, CUDL_DTYPE_BF16, "test") == CUDL_OK;
  const std::string why = native ? "" : cudl_context_last_error(ctx_);
  std::printf("bf16 computes in %s\n", native ? "bf16 (native)" : ("f32 (" + why + ")").c_str());
  const GemmCase cases[] = {
      {"forward, y = x w^T", 0, 1, 7, 5, 13, 1.0f, 0.0f, 0},
      {"backward data, dx = dy w", 0, 0, 7, 13, 5, 1.0f, 0.0f, 0},
      {"backward filter, dw = dy^T x", 1, 0, 5, 13, 7, 1.0f, 0.0f, 0},
      {"both transposed, alpha and beta, padded rows", 1, 1, 6, 9, 11, 2.0f, 0.5f, 3},
      {"longer sums, negative alpha, beta 1", 0, 1, 33, 17, 130, -1.5f, 1.0f, 1},
  };
  const Lowp halves[] = {cudl_test::kBf16, cudl_test::kF16};
  uint32_t seed = 700;
  for (const Lowp &h : halves) {
    const bool computes_in_f32 = h.dtype == CUDL_DTYPE_F16 || !native;
    for (const GemmCase &g : cases) {
      SCOPED_TRACE(std::string(cudl_dtype_name(h.dtype)) + ", " + g.what);
      const std::vector<float> a = h.Widen(h.Narrow(Uniform(g.a_size(), seed++)));
      const std::vector<float> b = h.Widen(h.Narrow(Uniform(g.b_size(), seed++)));
      // C holds NaN where beta = 0 (it must not be read) and a sentinel in
      // the padding (it must not be written).
      std::vector<float> c0 = h.Widen(h.Narrow(Uniform(g.c_size(), seed++)));
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.ldc(); ++j) {
          float &v = c0[static_cast<size_t>(i * g.ldc() + j)];
          if (j >= g.n)
            v = kSentinel;
          else if (g.beta == 0.0f)
            v = std::numeric_limits<float>::quiet_NaN();
        }
      const std::vector<uint16_t> a16 = h.Narrow(a), b16 = h.Narrow(b);
      std::vector<uint16_t> c16 = h.Narrow(c0);
      ASSERT_EQ(RunGemm(ctx_, h.dtype, g, a16.data(), b16.data(), c16.data()), CUDL_OK)
          << cudl_context_last_error(ctx_);
      EXPECT_TRUE(a16 == h.Narrow(a) && b16 == h.Narrow(b)) << "an input was modified";
      const std::vector<float> c = h.Widen(c16);
      for (int64_t i = 0; i < g.m; ++i)
        for (int64_t j = 0; j < g.ldc(); ++j) {
          const size_t at = static_cast<size_t>(i * g.ldc() + j);
          if (j >= g.n) {
            EXPECT_EQ(c16[at], h.Narrow(kSentinel)) << "padding written at " << i << ", " << j;
            continue;
          }
          double exact = 0.0, mag = 0.0;
          for (int64_t p = 0; p < g.k; ++p) {
            const double term = g.alpha * g.A(a, i, p) * g.B(b, p, j);
            exact += term;
            mag += std::fabs(term);
          }
          if (g.beta != 0.0f) {
            exact += g.beta * static_cast<double>(c0[at]);
            mag += std::fabs(g.beta * static_cast<double>(c0[at]));
          }
          const double sum_error = static_cast<double>(g.k + 2) * kU * mag;
          const double tol = sum_error + h.unit * (std::fabs(exact) + sum_error) + h.tiny;
          EXPECT_NEAR(c[at], exact, tol) << "C[" << i << ", " << j << "]";
        }
      if (!computes_in_f32) continue;
      std::vector<float> c32 = c0;
      ASSERT_EQ(RunGemm(ctx_, CUDL_DTYPE_F32, g, a.data(), b.data(), c32.data()), CUDL_OK)
          << cudl_context_last_error(ctx_);
      EXPECT_TRUE(c16 == h.Narrow(c32)) << "C is not the f32 entry's, rounded once";
    }
  }
}

}  // namespace
