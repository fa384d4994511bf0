// test_conv.cpp - 2-D convolution (cudl/conv.h).
//
//  * Forward (with and without bias), backward data, backward filter and
//    backward bias against a float64 reference written here from the
//    header's formula: a direct seven-loop convolution, whose adjoint loops
//    give the three gradients. Shapes chosen to catch indexing bugs (batch
//    1, primes, 1x1 / 3x3 / 5x3 / 7x7 kernels, strides 2 and 3, every pad
//    from 0 to dilation * (kernel - 1), dilation, groups, depthwise,
//    non-square everything, a dilated kernel wider than the image), the
//    ResNet-20 / CIFAR layers, and a batch that needs several im2col chunks.
//  * The three gradients against central finite differences of
//    L = sum(y * g) through the library's forward.
//  * N = 0, cudl_conv2d_output_shape against PyTorch's formula, every kind
//    of bad input (status, a message naming the argument, nothing written),
//    outputs aliasing inputs.
//  * CUDA (against float64, deterministic mode bitwise reproducible, TF32
//    off by default) is checked by the cross-backend table,
//    test_backends.cpp, with these geometries.
//
// Tolerances. A float result that sums T terms (products x * w, w * dy or
// x * dy, and a bias) is compared with the float64 sum within
//   bound * FLT_EPSILON * sum |terms|,
// with sum |terms| computed in double alongside the reference (the scale of
// every rounding error the float sum can make). The worst case for T terms
// is about T * FLT_EPSILON / 2 * sum |terms|, which nobody reaches: with
// random-sign inputs the roundings are independent and of mean zero, and
// their sum has a standard deviation below FLT_EPSILON / 2 * sum |terms|
// whatever T (blocked sums, as BLAS and oneDNN do, are better still).
// kCpuBound = 4 is about 8 of those standard deviations (the worst seen over
// every element here is near 2.2; the tests print it), while an indexing
// bug moves a result by at least one whole term, sum |terms| / T, which is
// at least 5 times the bound for every shape here (T <= 403,275).
#include <gtest/gtest.h>
#ifdef _OPENMP
#  include <omp.h>
#else
static int omp_get_max_threads() { return 1; }
static void omp_set_num_threads(int) {}
#endif

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "core/half.h"
#include "cpu/cpu_internal.h"
#include "core/internal.h"
#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;
using cudl_test::ReadF32;
using cudl_test::WriteF32;

constexpr double kEps = FLT_EPSILON;
// |cpu - float64| <= kCpuBound * FLT_EPSILON * sum|terms| (see the top).
constexpr double kCpuBound = 4;

cudl_conv2d_desc Desc(int sh, int sw, int ph, int pw, int dh = 1, int dw = 1, int groups = 1) {
  cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
  d.stride_h = sh;
  d.stride_w = sw;
  d.pad_h = ph;
  d.pad_w = pw;
  d.dilation_h = dh;
  d.dilation_w = dw;
  d.groups = groups;
  return d;
}

// One convolution: x [n, c, h, w], w [k, c / groups, r, s].
struct Case {
  int64_t n, c, h, w;
  int64_t k, r, s;
  cudl_conv2d_desc d;

  int64_t cg() const { return c / d.groups; }
  int64_t kg() const { return k / d.groups; }
  // torch.nn.Conv2d's documented formula:
  // floor((H + 2 * padding - dilation * (kernel - 1) - 1) / stride + 1);
  // the numerator is >= 0 for every valid case, so / is floor.
  int64_t oh() const { return (h + 2 * d.pad_h - d.dilation_h * (r - 1) - 1) / d.stride_h + 1; }
  int64_t ow() const { return (w + 2 * d.pad_w - d.dilation_w * (s - 1) - 1) / d.stride_w + 1; }
  std::vector<int64_t> x_shape() const { return {n, c, h, w}; }
  std::vector<int64_t> w_shape() const { return {k, cg(), r, s}; }
  std::vector<int64_t> y_shape() const { return {n, k, oh(), ow()}; }
  size_t x_size() const { return static_cast<size_t>(n * c * h * w); }
  size_t w_size() const { return static_cast<size_t>(k * cg() * r * s); }
  size_t y_size() const { return static_cast<size_t>(n * k * oh() * ow()); }
  std::string str() const {
    char buf[256];
    std::snprintf(buf, sizeof buf,
                  "x %lldx%lldx%lldx%lld w %lldx%lldx%lldx%lld stride %dx%d pad %dx%d "
                  "dilation %dx%d groups %d",
                  static_cast<long long>(n), static_cast<long long>(c), static_cast<long long>(h),
                  static_cast<long long>(w), static_cast<long long>(k),
                  static_cast<long long>(cg()), static_cast<long long>(r),
                  static_cast<long long>(s), d.stride_h, d.stride_w, d.pad_h, d.pad_w,
                  d.dilation_h, d.dilation_w, d.groups);
    return buf;
  }
};

// Shapes for the float64 comparison: each line says what it is for.
std::vector<Case> HandWrittenCases() {
  return {
      {1, 1, 1, 1, 1, 1, 1, Desc(1, 1, 0, 0)},            // the smallest: one multiply
      {1, 3, 7, 13, 5, 3, 3, Desc(1, 1, 1, 1)},           // batch 1, prime sizes, "same" 3x3
      {2, 3, 7, 13, 7, 5, 3, Desc(2, 3, 2, 1)},           // 5x3 kernel, stride 2x3, pad 2x1
      {3, 5, 13, 7, 3, 1, 1, Desc(2, 2, 0, 0)},           // 1x1 stride 2: inputs skipped
      {1, 7, 5, 7, 4, 1, 1, Desc(3, 1, 0, 0)},            // 1x1 stride 3x1
      {2, 3, 11, 13, 5, 7, 7, Desc(3, 3, 3, 3)},          // 7x7 stride 3 pad 3
      {1, 3, 9, 8, 2, 7, 7, Desc(2, 1, 6, 0)},            // 7x7 pad 6 (the most) by 0
      {2, 3, 7, 13, 4, 3, 3, Desc(1, 1, 4, 2, 2, 2)},     // dilation 2, pad 4 (the most) by 2
      {2, 5, 9, 11, 3, 3, 3, Desc(1, 2, 2, 0, 2, 1)},     // dilation 2x1, stride 1x2
      {2, 6, 9, 11, 4, 3, 3, Desc(1, 1, 1, 1, 1, 1, 2)},  // groups 2
      {1, 6, 7, 13, 6, 5, 3, Desc(2, 1, 2, 1, 1, 1, 3)},  // groups 3, 5x3, stride 2x1
      {2, 7, 13, 7, 7, 3, 3, Desc(2, 2, 1, 1, 1, 1, 7)},  // depthwise, stride 2
      {1, 5, 7, 9, 10, 5, 3, Desc(1, 1, 0, 2, 1, 1, 5)},  // depthwise, 2 filters per channel
      {2, 4, 8, 8, 6, 3, 3, Desc(2, 2, 0, 0, 2, 2, 2)},   // dilation, groups and stride
      {2, 3, 6, 5, 4, 3, 3, Desc(1, 2, 3, 2, 3, 4)},      // dilated kernel (9) wider than the
                                                          // image (5): only padding makes it fit
      {2, 3, 7, 7, 5, 7, 7, Desc(1, 1, 0, 0)},            // kernel = image: 1x1 output
      {1, 2, 3, 3, 3, 5, 5, Desc(1, 1, 1, 1)},            // kernel > image, padded fits exactly
  };
}

std::vector<Case> Cases() {
  std::vector<Case> cases = HandWrittenCases();
  // Every pad from 0 to dilation * (kernel - 1), stride 2, for dilation 1
  // and 2 (a 3x3 kernel on a 7x13 image).
  for (int dil = 1; dil <= 2; ++dil)
    for (int pad = 0; pad <= dil * 2; ++pad)
      cases.push_back({1, 3, 7, 13, 2, 3, 3, Desc(2, 2, pad, pad, dil, dil)});
  return cases;
}

// ResNet-20 on CIFAR-10 (32x32): the stem 3 -> 16, the first convolution of
// a downsampling block 16 -> 32 stride 2, and its 1x1 stride-2 projection.
std::vector<Case> ResNet20Cases(int64_t n) {
  return {{n, 3, 32, 32, 16, 3, 3, Desc(1, 1, 1, 1)},
          {n, 16, 32, 32, 32, 3, 3, Desc(2, 2, 1, 1)},
          {n, 16, 32, 32, 32, 1, 1, Desc(2, 2, 0, 0)}};
}

// Random inputs: uniform in [-1, 1], so products have random signs.
std::vector<float> RandomValues(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

struct Data {
  std::vector<float> x, w, b, dy;
};

Data RandomData(const Case &t, uint32_t seed) {
  Data d;
  d.x = RandomValues(t.x_size(), 4 * seed);
  d.w = RandomValues(t.w_size(), 4 * seed + 1);
  d.b = RandomValues(static_cast<size_t>(t.k), 4 * seed + 2);
  d.dy = RandomValues(t.y_size(), 4 * seed + 3);
  return d;
}

// The float64 reference, and per element the sum of |terms| (the scale of
// the rounding error of a float computation of the same sum).
struct Reference {
  std::vector<double> conv, conv_mag;  // forward without bias
  std::vector<double> y, y_mag;        // forward with bias
  std::vector<double> dx, dx_mag;      // backward data of dy
  std::vector<double> dw, dw_mag;      // backward filter of x and dy
  std::vector<double> db, db_mag;      // backward bias of dy
};

// conv.h's formula, loop by loop:
//   y[n, k, p, q] = bias[k] + sum over c < C/groups, r < R, s < S of
//     x[n, (k / (K/groups)) * C/groups + c, p*sh - ph + r*dh, q*sw - pw + s*dw]
//     * w[k, c, r, s]
// with x zero outside the image (those terms are skipped). L = sum(y * dy)
// has dL/dx, dL/dw and dL/dbias: every term x * w of y[o] gives w * dy[o]
// to its x element and x * dy[o] to its w element, and bias[k] gets dy[o].
Reference Compute(const Case &t, const Data &d) {
  const int64_t oh = t.oh(), ow = t.ow(), cg = t.cg(), kg = t.kg();
  Reference ref;
  ref.conv.assign(t.y_size(), 0.0);
  ref.conv_mag.assign(t.y_size(), 0.0);
  ref.y.assign(t.y_size(), 0.0);
  ref.y_mag.assign(t.y_size(), 0.0);
  ref.dx.assign(t.x_size(), 0.0);
  ref.dx_mag.assign(t.x_size(), 0.0);
  ref.dw.assign(t.w_size(), 0.0);
  ref.dw_mag.assign(t.w_size(), 0.0);
  ref.db.assign(static_cast<size_t>(t.k), 0.0);
  ref.db_mag.assign(static_cast<size_t>(t.k), 0.0);
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t k = 0; k < t.k; ++k)
      for (int64_t p = 0; p < oh; ++p)
        for (int64_t q = 0; q < ow; ++q) {
          const size_t o = static_cast<size_t>(((n * t.k + k) * oh + p) * ow + q);
          const double g = d.dy[o];
          const int64_t group = k / kg;
          double sum = 0.0, mag = 0.0;
          for (int64_t c = 0; c < cg; ++c)
            for (int64_t r = 0; r < t.r; ++r)
              for (int64_t s = 0; s < t.s; ++s) {
                const int64_t ih = p * t.d.stride_h - t.d.pad_h + r * t.d.dilation_h;
                const int64_t iw = q * t.d.stride_w - t.d.pad_w + s * t.d.dilation_w;
                if (ih < 0 || ih >= t.h || iw < 0 || iw >= t.w) continue;
                const size_t xi =
                    static_cast<size_t>(((n * t.c + group * cg + c) * t.h + ih) * t.w + iw);
                const size_t wi = static_cast<size_t>(((k * cg + c) * t.r + r) * t.s + s);
                const double xv = d.x[xi], wv = d.w[wi];
                sum += xv * wv;  // exact: a product of two floats fits a double
                mag += std::fabs(xv * wv);
                ref.dx[xi] += wv * g;
                ref.dx_mag[xi] += std::fabs(wv * g);
                ref.dw[wi] += xv * g;
                ref.dw_mag[wi] += std::fabs(xv * g);
              }
          const double b = d.b[static_cast<size_t>(k)];
          ref.conv[o] = sum;
          ref.conv_mag[o] = mag;
          ref.y[o] = sum + b;
          ref.y_mag[o] = mag + std::fabs(b);
          ref.db[static_cast<size_t>(k)] += g;
          ref.db_mag[static_cast<size_t>(k)] += std::fabs(g);
        }
  return ref;
}

// The worst |got - want| / (FLT_EPSILON * sum|terms|) seen per output, for
// the log.
std::map<std::string, double> g_worst;

void PrintWorst(const char *what) {
  std::printf("worst |%s - float64| / (FLT_EPSILON * sum|terms|):", what);
  for (const auto &entry : g_worst) std::printf(" %s %.3f", entry.first.c_str(), entry.second);
  std::printf("\n");
  g_worst.clear();
}

// |got[i] - want[i]| <= allowed(i) for every i (a NaN fails), listing the
// first elements that are not.
::testing::AssertionResult ElementsWithin(const std::vector<float> &got,
                                          const std::vector<double> &want,
                                          const std::function<double(size_t)> &allowed) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    const double tol = allowed(i);
    if (!(err <= tol)) {
      if (bad < 5) {
        char line[200];
        std::snprintf(line, sizeof line,
                      "\n  [%zu] got %.9g, want %.17g (error %.3g, allowed %.3g)", i,
                      static_cast<double>(got[i]), want[i], err, tol);
        first += line;
      }
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " elements off" << first;
}

// |got[i] - want[i]| <= bound * FLT_EPSILON * mag[i] for every i (a NaN
// fails). Where mag is 0 (an element no term reaches, e.g. an input that a
// stride skips) the result must be exactly 0.
::testing::AssertionResult WithinBound(const std::vector<float> &got,
                                       const std::vector<double> &want,
                                       const std::vector<double> &mag, double bound,
                                       const char *label) {
  double &worst = g_worst[label];
  for (size_t i = 0; i < got.size() && i < want.size(); ++i)
    if (mag[i] > 0)
      worst = std::max(worst, std::fabs(static_cast<double>(got[i]) - want[i]) / (kEps * mag[i]));
  return ElementsWithin(got, want, [&](size_t i) { return bound * kEps * mag[i]; });
}

// True when `name` occurs in `message` as a whole word: "x" is named by
// "x is NULL" but not by "dx is NULL" or "x_shape".
::testing::AssertionResult NamesArgument(const std::string &message, const std::string &name) {
  auto word = [](char ch) {
    return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
           ch == '_';
  };
  for (size_t at = message.find(name); at != std::string::npos; at = message.find(name, at + 1)) {
    const bool left = at == 0 || !word(message[at - 1]);
    const size_t end = at + name.size();
    const bool right = end == message.size() || !word(message[end]);
    if (left && right) return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "'" << message << "' does not name '" << name << "'";
}

// Tensors destroyed at the end of a scope (so a GPU context declared
// before them outlives them).
class Tensors {
 public:
  explicit Tensors(cudl_context *ctx) : ctx_(ctx) {}
  ~Tensors() {
    for (cudl_tensor *t : list_) cudl_tensor_destroy(t);
  }
  Tensors(const Tensors &) = delete;
  Tensors &operator=(const Tensors &) = delete;

  cudl_tensor *Make(const std::vector<int64_t> &shape, const std::vector<float> &values = {},
                    cudl_dtype dtype = CUDL_DTYPE_F32) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx_, dtype, static_cast<int>(shape.size()), shape.data(), &t),
              CUDL_OK)
        << cudl_context_last_error(ctx_);
    if (t == nullptr) return nullptr;
    list_.push_back(t);
    if (!values.empty()) {
      EXPECT_EQ(WriteF32(t, values), CUDL_OK) << cudl_context_last_error(ctx_);
    }
    return t;
  }
  // A view of src with another shape, sharing its storage.
  cudl_tensor *View(const cudl_tensor *src, const std::vector<int64_t> &shape) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_reshape(src, static_cast<int>(shape.size()), shape.data(), &t), CUDL_OK);
    if (t != nullptr) list_.push_back(t);
    return t;
  }

 private:
  cudl_context *ctx_;
  std::vector<cudl_tensor *> list_;
};

// Destroys a context (created by the test) when the scope ends.
struct ContextGuard {
  cudl_context *ctx = nullptr;
  ContextGuard() = default;
  ContextGuard(const ContextGuard &) = delete;
  ContextGuard &operator=(const ContextGuard &) = delete;
  ~ContextGuard() { cudl_context_destroy(ctx); }
};

struct Outputs {
  std::vector<float> conv, y, dx, dw, db;
};

std::string LastError(cudl_context *ctx) { return cudl_context_last_error(ctx); }

// Runs forward without and with bias, backward data, backward filter and
// backward bias of t on ctx. Every output starts as NaN, so an element a
// call leaves unwritten (or adds to instead of overwriting) shows up;
// the inputs must come back unchanged.
::testing::AssertionResult RunAll(cudl_context *ctx, const Case &t, const Data &d, Outputs *out) {
  Tensors ts(ctx);
  const float nan = std::numeric_limits<float>::quiet_NaN();
  cudl_tensor *x = ts.Make(t.x_shape(), d.x), *w = ts.Make(t.w_shape(), d.w);
  cudl_tensor *b = ts.Make({t.k}, d.b), *dy = ts.Make(t.y_shape(), d.dy);
  cudl_tensor *y = ts.Make(t.y_shape(), std::vector<float>(t.y_size(), nan));
  cudl_tensor *dx = ts.Make(t.x_shape(), std::vector<float>(t.x_size(), nan));
  cudl_tensor *dw = ts.Make(t.w_shape(), std::vector<float>(t.w_size(), nan));
  cudl_tensor *db = ts.Make({t.k}, std::vector<float>(static_cast<size_t>(t.k), nan));
  if (!x || !w || !b || !dy || !y || !dx || !dw || !db)
    return ::testing::AssertionFailure() << "tensor creation failed";
  cudl_status s = cudl_conv2d_forward(ctx, &t.d, x, w, nullptr, y);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure()
           << "forward: " << cudl_status_name(s) << ": " << LastError(ctx);
  out->conv = ReadF32(y);
  if (WriteF32(y, std::vector<float>(t.y_size(), nan)) != CUDL_OK)
    return ::testing::AssertionFailure() << "refill y";
  s = cudl_conv2d_forward(ctx, &t.d, x, w, b, y);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure() << "forward with bias: " << cudl_status_name(s) << ": "
                                         << LastError(ctx);
  s = cudl_conv2d_backward_data(ctx, &t.d, w, dy, dx);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure() << "backward data: " << cudl_status_name(s) << ": "
                                         << LastError(ctx);
  s = cudl_conv2d_backward_filter(ctx, &t.d, x, dy, dw);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure() << "backward filter: " << cudl_status_name(s) << ": "
                                         << LastError(ctx);
  s = cudl_conv2d_backward_bias(ctx, dy, db);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure() << "backward bias: " << cudl_status_name(s) << ": "
                                         << LastError(ctx);
  out->y = ReadF32(y);
  out->dx = ReadF32(dx);
  out->dw = ReadF32(dw);
  out->db = ReadF32(db);
  if (!BitEqual(ReadF32(x), d.x) || !BitEqual(ReadF32(w), d.w) || !BitEqual(ReadF32(b), d.b) ||
      !BitEqual(ReadF32(dy), d.dy))
    return ::testing::AssertionFailure() << "an input was modified";
  return ::testing::AssertionSuccess();
}

// Every output of `got` against the float64 reference.
void ExpectMatchesReference(const Outputs &got, const Reference &ref, double bound) {
  EXPECT_TRUE(WithinBound(got.conv, ref.conv, ref.conv_mag, bound, "y")) << "forward without bias";
  EXPECT_TRUE(WithinBound(got.y, ref.y, ref.y_mag, bound, "y+bias")) << "forward with bias";
  EXPECT_TRUE(WithinBound(got.dx, ref.dx, ref.dx_mag, bound, "dx")) << "backward data";
  EXPECT_TRUE(WithinBound(got.dw, ref.dw, ref.dw_mag, bound, "dw")) << "backward filter";
  EXPECT_TRUE(WithinBound(got.db, ref.db, ref.db_mag, bound, "dbias")) << "backward bias";
}

class ConvTest : public cudl_test::TensorFixture {};

// ---------------------------------------------------------------------------
// cudl_conv2d_output_shape
// ---------------------------------------------------------------------------

TEST_F(ConvTest, OutputShapeFollowsPyTorchFormula) {
  struct Known {
    int64_t x[4], w[4];
    cudl_conv2d_desc d;
    int64_t want[4];
  };
  // Worked by hand from torch.nn.Conv2d's formula
  // floor((H + 2p - d(k - 1) - 1) / s + 1).
  const Known known[] = {
      {{2, 3, 32, 32}, {16, 3, 3, 3}, Desc(1, 1, 1, 1), {2, 16, 32, 32}},     // ResNet-20 stem
      {{2, 16, 32, 32}, {32, 16, 3, 3}, Desc(2, 2, 1, 1), {2, 32, 16, 16}},   // downsampling 3x3
      {{2, 16, 32, 32}, {32, 16, 1, 1}, Desc(2, 2, 0, 0), {2, 32, 16, 16}},   // projection
      {{1, 3, 224, 224}, {64, 3, 7, 7}, Desc(2, 2, 3, 3), {1, 64, 112, 112}}, // ResNet-50 stem
      {{2, 3, 7, 13}, {7, 3, 5, 3}, Desc(2, 3, 2, 1), {2, 7, 4, 5}},          // (6/2)+1, (12/3)+1
      {{1, 4, 10, 9}, {6, 2, 3, 3}, Desc(3, 2, 1, 3, 2, 3, 2), {1, 6, 3, 5}}, // floor(7/3)+1, 8/2+1
      {{1, 1, 8, 8}, {1, 1, 3, 3}, Desc(3, 3, 0, 0), {1, 1, 2, 2}},           // floor(5/3)+1
      {{0, 3, 5, 5}, {2, 3, 3, 3}, Desc(1, 1, 0, 0), {0, 2, 3, 3}},           // N = 0 passes
  };
  for (const Known &c : known) {
    int64_t out[4] = {-7, -7, -7, -7};
    ASSERT_EQ(cudl_conv2d_output_shape(&c.d, c.x, c.w, out), CUDL_OK);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(out[i], c.want[i]) << "dimension " << i;
  }
  std::vector<Case> all = Cases();
  for (const Case &t : ResNet20Cases(8)) all.push_back(t);
  for (const Case &t : all) {
    SCOPED_TRACE(t.str());
    const std::vector<int64_t> xs = t.x_shape(), ws = t.w_shape(), want = t.y_shape();
    int64_t out[4] = {-7, -7, -7, -7};
    ASSERT_EQ(cudl_conv2d_output_shape(&t.d, xs.data(), ws.data(), out), CUDL_OK);
    EXPECT_EQ(std::vector<int64_t>(out, out + 4), want);
  }
}

TEST_F(ConvTest, OutputShapeRejectsBadArguments) {
  const int64_t x[4] = {2, 4, 7, 6}, w[4] = {6, 2, 3, 3};
  const cudl_conv2d_desc ok = Desc(1, 1, 1, 1, 1, 1, 2);
  int64_t out[4] = {-7, -7, -7, -7};
  EXPECT_EQ(cudl_conv2d_output_shape(&ok, x, w, out), CUDL_OK) << "the valid baseline";
  struct Bad {
    const char *what;
    cudl_conv2d_desc d;
    int64_t x[4], w[4];
    cudl_status want;
  };
  const cudl_status inval = CUDL_ERR_INVALID_ARGUMENT;
  const Bad bad[] = {
      {"stride 0", Desc(0, 1, 1, 1, 1, 1, 2), {2, 4, 7, 6}, {6, 2, 3, 3}, inval},
      {"dilation 0", Desc(1, 1, 1, 1, 1, 0, 2), {2, 4, 7, 6}, {6, 2, 3, 3}, inval},
      {"groups 0", Desc(1, 1, 1, 1, 1, 1, 0), {2, 4, 7, 6}, {6, 2, 3, 3}, inval},
      {"groups 3 does not divide C", Desc(1, 1, 1, 1, 1, 1, 3), {2, 4, 7, 6}, {6, 2, 3, 3}, inval},
      {"groups 4 does not divide K", Desc(1, 1, 1, 1, 1, 1, 4), {2, 4, 7, 6}, {6, 1, 3, 3}, inval},
      {"negative pad", Desc(1, 1, -1, 1, 1, 1, 2), {2, 4, 7, 6}, {6, 2, 3, 3}, inval},
      {"pad 3 > 1 * (3 - 1)", Desc(1, 1, 1, 3, 1, 1, 2), {2, 4, 7, 6}, {6, 2, 3, 3}, inval},
      {"w's C / groups wrong", ok, {2, 4, 7, 6}, {6, 4, 3, 3}, CUDL_ERR_SHAPE},
      {"negative N", ok, {-1, 4, 7, 6}, {6, 2, 3, 3}, CUDL_ERR_SHAPE},
      {"C = 0", ok, {2, 0, 7, 6}, {6, 2, 3, 3}, CUDL_ERR_SHAPE},
      {"K = 0", ok, {2, 4, 7, 6}, {0, 2, 3, 3}, CUDL_ERR_SHAPE},
      {"kernel larger than the padded input", ok, {2, 4, 7, 6}, {6, 2, 11, 3}, CUDL_ERR_SHAPE},
  };
  for (const Bad &c : bad) {
    SCOPED_TRACE(c.what);
    int64_t o[4] = {-7, -7, -7, -7};
    EXPECT_EQ(cudl_conv2d_output_shape(&c.d, c.x, c.w, o), c.want);
    for (int i = 0; i < 4; ++i) EXPECT_EQ(o[i], -7) << "out_shape was written";
  }
  int64_t o[4] = {-7, -7, -7, -7};
  EXPECT_EQ(cudl_conv2d_output_shape(nullptr, x, w, o), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_conv2d_output_shape(&ok, nullptr, w, o), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_conv2d_output_shape(&ok, x, nullptr, o), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_conv2d_output_shape(&ok, x, w, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(o[i], -7) << "out_shape was written";
}

// ---------------------------------------------------------------------------
// Against the float64 reference
// ---------------------------------------------------------------------------

TEST_F(ConvTest, ForwardAndBackwardMatchFloat64Reference) {
  g_worst.clear();
  uint32_t seed = 1;
  for (const Case &t : Cases()) {
    SCOPED_TRACE(t.str());
    const Data d = RandomData(t, seed++);
    Outputs got;
    ASSERT_TRUE(RunAll(ctx_, t, d, &got));
    ExpectMatchesReference(got, Compute(t, d), kCpuBound);
  }
  PrintWorst("cpu");
}

TEST_F(ConvTest, ResNet20ShapesMatchFloat64Reference) {
  uint32_t seed = 100;
  for (const Case &t : ResNet20Cases(4)) {
    SCOPED_TRACE(t.str());
    const Data d = RandomData(t, seed++);
    Outputs got;
    ASSERT_TRUE(RunAll(ctx_, t, d, &got));
    ExpectMatchesReference(got, Compute(t, d), kCpuBound);
  }
}

// The CPU keeps each convolution pass it has made ready (a plan per shape,
// pass and thread count: src/cpu/cpu_conv.c), at most CUDL_CPU_CONV_PLANS
// of them. One context runs every case at batch 1 and 2, which needs more
// plans than it keeps, twice over (the second round with one OpenMP
// thread, as a caller may change it between calls), and each result must
// be the bits a fresh context computes: a plan taken for the wrong shape
// or pass, or a stale one after eviction, shows (a key without the batch
// fails 200 checks).
TEST_F(ConvTest, KeptPlansGiveTheBitsOfAFreshContext) {
  std::vector<Case> cases;
  for (int64_t n : {1, 2})
    for (Case t : Cases()) {
      t.n = n;
      cases.push_back(t);
    }
  ASSERT_GT(3 * cases.size(), static_cast<size_t>(CUDL_CPU_CONV_PLANS))
      << "enough passes to evict plans";
  ContextGuard warm;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &warm.ctx), CUDL_OK);
  const int threads = omp_get_max_threads();
  for (int round = 0; round < 2; ++round) {
    if (round == 1) omp_set_num_threads(1);
    uint32_t seed = 300;
    for (const Case &t : cases) {
      SCOPED_TRACE(t.str() + " round " + std::to_string(round));
      const Data d = RandomData(t, seed++);
      ContextGuard cold;
      ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &cold.ctx), CUDL_OK);
      Outputs got, want;
      ASSERT_TRUE(RunAll(warm.ctx, t, d, &got));
      ASSERT_TRUE(RunAll(cold.ctx, t, d, &want));
      EXPECT_TRUE(BitEqual(got.conv, want.conv)) << "forward";
      EXPECT_TRUE(BitEqual(got.y, want.y)) << "forward with bias";
      EXPECT_TRUE(BitEqual(got.dx, want.dx)) << "backward data";
      EXPECT_TRUE(BitEqual(got.dw, want.dw)) << "backward filter";
    }
  }
  omp_set_num_threads(threads);
}

// A batch too large for one im2col workspace. An im2col CPU convolution
// (as src/cpu/cpu_conv.c was written first) unrolls a chunk of images at a
// time, sized so that its workspace, (C/groups * R * S + K/groups) * OH * OW
// floats per image, stays under 16M floats. Here one image needs
// (4 * 5 * 3 + 2) * 283 * 285 = 5,000,610 floats, so the chunks hold 3
// images and a batch of 5 runs as 3 + 2: the second chunk is a remainder,
// backward filter must add the second chunk's sums to the first's, and
// every chunk loops over the 2 groups. Whatever the implementation, it is
// also the largest case here (3.2M inputs, 97M multiply-adds per pass).
TEST_F(ConvTest, BatchSpanningSeveralWorkspaceChunks) {
  const Case t = {5, 8, 283, 285, 4, 5, 3, Desc(1, 1, 2, 1, 1, 1, 2)};
  const int64_t per_image = (t.cg() * t.r * t.s + t.kg()) * t.oh() * t.ow();
  const int64_t limit = int64_t{16} << 20;
  ASSERT_EQ(per_image, 5000610);
  ASSERT_EQ(limit / per_image, 3) << "chunks of 3 images";
  ASSERT_NE(t.n % (limit / per_image), 0) << "a remainder chunk";
  const Data d = RandomData(t, 200);
  Outputs got;
  ASSERT_TRUE(RunAll(ctx_, t, d, &got));
  g_worst.clear();
  ExpectMatchesReference(got, Compute(t, d), kCpuBound);
  PrintWorst("cpu");
}

// ---------------------------------------------------------------------------
// Finite differences
// ---------------------------------------------------------------------------

TEST_F(ConvTest, BackwardMatchesFiniteDifferences) {
  // L(x, w, bias) = sum(y * g) for a fixed random g, so dL/dx =
  // backward_data(g), dL/dw = backward_filter(x, g), dL/dbias =
  // backward_bias(g). L is linear in each element, so a central difference
  // has no truncation error at any step; what is left is the float rounding
  // of the forward, which a large step (h = 1/4) keeps small relative to the
  // difference. The outputs an element feeds each carry at most
  // kCpuBound * FLT_EPSILON * sum|terms| of rounding in each of the two
  // runs (sum|terms| taken with every |x|, |w|, |bias| grown by h, the most
  // a perturbation can make it); the others are computed from identical
  // inputs, bit for bit the same. So
  //   |fd - dL| <= kCpuBound * eps * 2 * sum_o |g_o| * mag_o / step,
  // plus the analytic gradient's own kCpuBound * eps * sum|terms|, plus the
  // double sums' rounding (4 * DBL_EPSILON * sum|y * g| / step).
  const double h = 0.25;
  const std::vector<Case> cases = {
      {2, 4, 5, 7, 6, 3, 3, Desc(1, 1, 1, 1, 1, 1, 2)},  // groups 2
      {1, 3, 7, 6, 4, 3, 2, Desc(2, 1, 2, 1, 2, 1)},     // stride, dilation, 3x2 kernel
      {2, 3, 6, 5, 3, 3, 3, Desc(2, 2, 1, 1, 1, 1, 3)},  // depthwise, stride 2
      {1, 2, 5, 5, 3, 5, 3, Desc(1, 3, 0, 2)},           // 5x3 kernel, stride 1x3
  };
  uint32_t seed = 300;
  for (const Case &t : cases) {
    SCOPED_TRACE(t.str());
    const Data d = RandomData(t, seed++);
    const Reference ref = Compute(t, d);
    Tensors ts(ctx_);
    cudl_tensor *x = ts.Make(t.x_shape(), d.x), *w = ts.Make(t.w_shape(), d.w);
    cudl_tensor *b = ts.Make({t.k}, d.b), *g = ts.Make(t.y_shape(), d.dy);
    cudl_tensor *y = ts.Make(t.y_shape()), *dx = ts.Make(t.x_shape()), *dw = ts.Make(t.w_shape());
    cudl_tensor *db = ts.Make({t.k});
    ASSERT_EQ(cudl_conv2d_backward_data(ctx_, &t.d, w, g, dx), CUDL_OK) << LastError(ctx_);
    ASSERT_EQ(cudl_conv2d_backward_filter(ctx_, &t.d, x, g, dw), CUDL_OK) << LastError(ctx_);
    ASSERT_EQ(cudl_conv2d_backward_bias(ctx_, g, db), CUDL_OK) << LastError(ctx_);
    const std::vector<float> gx = ReadF32(dx), gw = ReadF32(dw), gb = ReadF32(db);

    // mag_o with every magnitude grown by h, and per element the sum of
    // |g_o| * mag_o over the outputs it feeds.
    const int64_t oh = t.oh(), ow = t.ow(), cg = t.cg(), kg = t.kg();
    std::vector<double> mag(t.y_size(), 0.0);
    std::vector<double> feed_x(t.x_size(), 0.0), feed_w(t.w_size(), 0.0);
    std::vector<double> feed_b(static_cast<size_t>(t.k), 0.0);
    double sum_yg = 0.0;
    for (int pass = 0; pass < 2; ++pass)
      for (int64_t n = 0; n < t.n; ++n)
        for (int64_t k = 0; k < t.k; ++k)
          for (int64_t p = 0; p < oh; ++p)
            for (int64_t q = 0; q < ow; ++q) {
              const size_t o = static_cast<size_t>(((n * t.k + k) * oh + p) * ow + q);
              const double weight = std::fabs(d.dy[o]) * mag[o];
              if (pass == 0) {
                mag[o] = std::fabs(d.b[static_cast<size_t>(k)]) + h;
                sum_yg += std::fabs(ref.y[o] * d.dy[o]);
              } else {
                feed_b[static_cast<size_t>(k)] += weight;
              }
              for (int64_t c = 0; c < cg; ++c)
                for (int64_t r = 0; r < t.r; ++r)
                  for (int64_t s = 0; s < t.s; ++s) {
                    const int64_t ih = p * t.d.stride_h - t.d.pad_h + r * t.d.dilation_h;
                    const int64_t iw = q * t.d.stride_w - t.d.pad_w + s * t.d.dilation_w;
                    if (ih < 0 || ih >= t.h || iw < 0 || iw >= t.w) continue;
                    const size_t xi = static_cast<size_t>(
                        ((n * t.c + (k / kg) * cg + c) * t.h + ih) * t.w + iw);
                    const size_t wi = static_cast<size_t>(((k * cg + c) * t.r + r) * t.s + s);
                    if (pass == 0) {
                      mag[o] += (std::fabs(d.x[xi]) + h) * (std::fabs(d.w[wi]) + h);
                    } else {
                      feed_x[xi] += weight;
                      feed_w[wi] += weight;
                    }
                  }
            }

    auto loss = [&]() {
      EXPECT_EQ(cudl_conv2d_forward(ctx_, &t.d, x, w, b, y), CUDL_OK) << LastError(ctx_);
      const std::vector<float> ys = ReadF32(y);
      double l = 0.0;
      for (size_t i = 0; i < ys.size(); ++i) l += static_cast<double>(ys[i]) * d.dy[i];
      return l;
    };
    // Central differences for every element of `tensor` (holding `values`),
    // against the analytic gradient `grad`.
    auto check = [&](const char *what, cudl_tensor *tensor, std::vector<float> values,
                     const std::vector<float> &grad, const std::vector<double> &feed,
                     const std::vector<double> &grad_mag) {
      SCOPED_TRACE(what);
      for (size_t i = 0; i < values.size(); ++i) {
        const float orig = values[i];
        values[i] = static_cast<float>(orig + h);
        const double plus = values[i];
        ASSERT_EQ(WriteF32(tensor, values), CUDL_OK);
        const double l_plus = loss();
        values[i] = static_cast<float>(orig - h);
        const double minus = values[i];
        ASSERT_EQ(WriteF32(tensor, values), CUDL_OK);
        const double l_minus = loss();
        values[i] = orig;
        const double step = plus - minus;
        const double fd = (l_plus - l_minus) / step;
        const double tol = kCpuBound * kEps * (2.0 * feed[i] / step + grad_mag[i]) +
                           4.0 * DBL_EPSILON * sum_yg / step;
        EXPECT_NEAR(grad[i], fd, tol) << "element " << i;
      }
      ASSERT_EQ(WriteF32(tensor, values), CUDL_OK);
    };
    check("dx", x, d.x, gx, feed_x, ref.dx_mag);
    check("dw", w, d.w, gw, feed_w, ref.dw_mag);
    check("dbias", b, d.b, gb, feed_b, ref.db_mag);
  }
}

// ---------------------------------------------------------------------------
// The 16-bit entries
// ---------------------------------------------------------------------------
//
// The public calls take f32 tensors; the model layer reaches the bf16 and
// f16 entries of ops.def through the operator table, and so do these tests.
// An entry computes in f32 (or, for bf16 where oneDNN does it natively, in
// bf16 with f32 accumulation: the products of bf16 values are exact in f32
// either way) and rounds its output once. So the inputs are rounded to the
// dtype, the float64 reference is computed from the rounded values, and an
// output may be off by
//   kCpuBound * eps * sum|terms|        the f32 sum, as in the f32 tests,
//   + u * (|want| + that)               its one rounding to the dtype,
//   + tiny                              below the dtype's normal range,
// with u half a unit in the last place (2^-8 for bf16, 2^-11 for f16) and
// tiny 2^-25 for f16 (half its smallest subnormal step) and 2^-126 for
// bf16 (native bf16 kernels flush subnormal results to zero). The shapes are
// small (at most 198 terms a sum), so one term more or less, an indexing
// bug, moves a result by sum|terms| / 198 on average: more than the
// rounding allowance, u * |want| <= sum|terms| / 256 for bf16.

using cudl_test::kBf16;
using cudl_test::kF16;
using cudl_test::Lowp;

::testing::AssertionResult WithinLowpBound(const Lowp &lp, const std::vector<float> &got,
                                           const std::vector<double> &want,
                                           const std::vector<double> &mag) {
  return ElementsWithin(got, want, [&](size_t i) {
    const double sum_error = kCpuBound * kEps * mag[i];
    return sum_error + lp.unit * (std::fabs(want[i]) + sum_error) + lp.tiny;
  });
}

// The three passes of t through the CPU's entries for `dtype` (ops.def's
// conv2d_* in the operator table), on buffers of that dtype.
::testing::AssertionResult RunEntries(cudl_context *ctx, cudl_dtype dtype, const Case &t,
                                      const void *x, const void *w, const void *dy, void *y,
                                      void *dx, void *dw) {
  const int64_t xs[4] = {t.n, t.c, t.h, t.w}, ws[4] = {t.k, t.cg(), t.r, t.s};
  cudl_conv2d_geometry g;
  cudl_status s = cudl__conv2d_geometry(ctx, "RunEntries", &t.d, xs, "x", ws, "w", &g);
  if (s != CUDL_OK) return ::testing::AssertionFailure() << "geometry: " << LastError(ctx);
  const cudl_ops *ops = ctx->backend->ops;
  s = ops->conv2d_forward[dtype](ctx, &g, x, w, y);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure() << "forward: " << cudl_status_name(s) << ": "
                                         << LastError(ctx);
  s = ops->conv2d_backward_data[dtype](ctx, &g, w, dy, dx);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure() << "backward data: " << cudl_status_name(s) << ": "
                                         << LastError(ctx);
  s = ops->conv2d_backward_filter[dtype](ctx, &g, x, dy, dw);
  if (s != CUDL_OK)
    return ::testing::AssertionFailure() << "backward filter: " << cudl_status_name(s) << ": "
                                         << LastError(ctx);
  return ::testing::AssertionSuccess();
}

// Where a 16-bit convolution computes in f32 (f16 always, bf16 on a CPU
// without bf16 arithmetic), it is the f32 entry on widened copies, so its
// outputs are that entry's rounded once, bit for bit. Where bf16 runs
// natively, oneDNN's bf16 kernel sums in another order and only the
// float64 bound holds.
TEST_F(ConvTest, SixteenBitEntriesMatchFloat64OfRoundedInputs) {
  const bool native = cudl__check_compute_dtype(ctx_, CUDL_DTYPE_BF16, "test") == CUDL_OK;
  const std::string why = native ? "" : LastError(ctx_);
  std::printf("bf16 computes in %s\n", native ? "bf16 (native)" : ("f32 (" + why + ")").c_str());
  const std::vector<Case> cases = {
      {2, 6, 9, 11, 4, 3, 3, Desc(1, 1, 1, 1, 1, 1, 2)},  // groups 2
      {2, 3, 7, 13, 7, 5, 3, Desc(2, 3, 2, 1)},           // 5x3, stride 2x3, pad 2x1
      {2, 16, 8, 8, 16, 3, 3, Desc(1, 1, 1, 1)},          // ResNet-20's 3x3 (16 channels)
      {2, 16, 8, 8, 32, 3, 3, Desc(2, 2, 1, 1)},          // its downsampling 3x3
      {1, 7, 13, 7, 7, 3, 3, Desc(2, 2, 1, 1, 1, 1, 7)},  // depthwise, stride 2
  };
  const float nan = std::numeric_limits<float>::quiet_NaN();
  uint32_t seed = 300;
  for (const Lowp &lp : {kBf16, kF16}) {
    const bool computes_in_f32 = lp.dtype == CUDL_DTYPE_F16 || !native;
    for (const Case &t : cases) {
      SCOPED_TRACE(std::string(cudl_dtype_name(lp.dtype)) + " " + t.str());
      Data d = RandomData(t, seed++);
      for (std::vector<float> *v : {&d.x, &d.w, &d.dy}) *v = lp.Widen(lp.Narrow(*v));
      const std::vector<uint16_t> x = lp.Narrow(d.x), w = lp.Narrow(d.w), dy = lp.Narrow(d.dy);
      // Outputs start as NaN, so an element left unwritten shows.
      std::vector<uint16_t> y(t.y_size(), lp.nan), dx(t.x_size(), lp.nan), dw(t.w_size(), lp.nan);
      ASSERT_TRUE(RunEntries(ctx_, lp.dtype, t, x.data(), w.data(), dy.data(), y.data(), dx.data(),
                             dw.data()));
      EXPECT_TRUE(x == lp.Narrow(d.x) && w == lp.Narrow(d.w) && dy == lp.Narrow(d.dy))
          << "an input was modified";
      const Reference ref = Compute(t, d);
      EXPECT_TRUE(WithinLowpBound(lp, lp.Widen(y), ref.conv, ref.conv_mag)) << "forward";
      EXPECT_TRUE(WithinLowpBound(lp, lp.Widen(dx), ref.dx, ref.dx_mag)) << "backward data";
      EXPECT_TRUE(WithinLowpBound(lp, lp.Widen(dw), ref.dw, ref.dw_mag)) << "backward filter";
      if (!computes_in_f32) continue;
      std::vector<float> y32(t.y_size(), nan), dx32(t.x_size(), nan), dw32(t.w_size(), nan);
      ASSERT_TRUE(RunEntries(ctx_, CUDL_DTYPE_F32, t, d.x.data(), d.w.data(), d.dy.data(),
                             y32.data(), dx32.data(), dw32.data()));
      EXPECT_TRUE(y == lp.Narrow(y32)) << "forward is not the f32 entry's, rounded once";
      EXPECT_TRUE(dx == lp.Narrow(dx32)) << "backward data is not the f32 entry's, rounded once";
      EXPECT_TRUE(dw == lp.Narrow(dw32)) << "backward filter is not the f32 entry's, rounded once";
    }
  }
}

// ---------------------------------------------------------------------------
// N = 0
// ---------------------------------------------------------------------------

TEST_F(ConvTest, EmptyBatch) {
  // Forward and backward data have nothing to write; backward filter and
  // backward bias are sums over an empty batch: zeros.
  const Case t = {0, 3, 7, 13, 5, 3, 3, Desc(1, 1, 1, 1)};
  Tensors ts(ctx_);
  const std::vector<float> ws = RandomValues(t.w_size(), 400), bs = RandomValues(5, 401);
  cudl_tensor *x = ts.Make(t.x_shape()), *w = ts.Make(t.w_shape(), ws), *b = ts.Make({5}, bs);
  cudl_tensor *y = ts.Make(t.y_shape()), *dy = ts.Make(t.y_shape()), *dx = ts.Make(t.x_shape());
  cudl_tensor *dw = ts.Make(t.w_shape(), std::vector<float>(t.w_size(), 7.25f));
  cudl_tensor *db = ts.Make({5}, std::vector<float>(5, 7.25f));
  EXPECT_EQ(cudl_conv2d_forward(ctx_, &t.d, x, w, nullptr, y), CUDL_OK) << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_forward(ctx_, &t.d, x, w, b, y), CUDL_OK) << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_backward_data(ctx_, &t.d, w, dy, dx), CUDL_OK) << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_backward_filter(ctx_, &t.d, x, dy, dw), CUDL_OK) << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_backward_bias(ctx_, dy, db), CUDL_OK) << LastError(ctx_);
  EXPECT_TRUE(BitEqual(ReadF32(dw), std::vector<float>(t.w_size(), 0.0f)));
  EXPECT_TRUE(BitEqual(ReadF32(db), std::vector<float>(5, 0.0f)));
  EXPECT_TRUE(BitEqual(ReadF32(w), ws)) << "w was modified";
  EXPECT_TRUE(BitEqual(ReadF32(b), bs)) << "bias was modified";
  // Arguments are still checked when there is nothing to compute.
  cudl_tensor *y_bad = ts.Make({0, 5, 7, 12}), *b_bad = ts.Make({4});
  EXPECT_EQ(cudl_conv2d_forward(ctx_, &t.d, x, w, nullptr, y_bad), CUDL_ERR_SHAPE);
  EXPECT_TRUE(NamesArgument(LastError(ctx_), "y"));
  EXPECT_EQ(cudl_conv2d_forward(ctx_, &t.d, x, w, b_bad, y), CUDL_ERR_SHAPE);
  EXPECT_TRUE(NamesArgument(LastError(ctx_), "bias"));
  const cudl_conv2d_desc zero_stride = Desc(0, 1, 1, 1);
  EXPECT_EQ(cudl_conv2d_backward_data(ctx_, &zero_stride, w, dy, dx), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(NamesArgument(LastError(ctx_), "stride"));
  ASSERT_EQ(cudl_tensor_fill(dw, 7.25f), CUDL_OK);
  EXPECT_EQ(cudl_conv2d_backward_filter(ctx_, &zero_stride, x, dy, dw), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(dw), std::vector<float>(t.w_size(), 7.25f))) << "dw was written";
}

// ---------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------

// A valid grouped convolution (x [2, 4, 7, 6], w [6, 2, 3, 3], groups 2,
// pad 1) with every input random and every output holding a sentinel, the
// same tensors on a second CPU context, f16 and 3-D versions, and tensors
// of wrong shapes. Watch() checks that no f32 tensor has changed.
class ConvBadInputTest : public ConvTest {
 protected:
  void SetUp() override {
    ConvTest::SetUp();
    ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &other_.ctx), CUDL_OK);
    mine_ = std::make_unique<Tensors>(ctx_);
    theirs_ = std::make_unique<Tensors>(other_.ctx);
    const Case t = {2, 4, 7, 6, 6, 3, 3, Desc(1, 1, 1, 1, 1, 1, 2)};
    ok_ = t.d;
    x = Input(t.x_shape());
    w = Input(t.w_shape());
    b = Input({6});
    dy = Input(t.y_shape());
    y = Output(t.y_shape());
    dx = Output(t.x_shape());
    dw = Output(t.w_shape());
    db = Output({6});
    const std::vector<int64_t> shapes[8] = {t.x_shape(), t.w_shape(), {6},          t.y_shape(),
                                            t.y_shape(), t.x_shape(), t.w_shape(), {6}};
    for (int i = 0; i < 8; ++i) {
      foreign[i] = Watch(theirs_.get(), shapes[i]);
      half[i] = mine_->Make(shapes[i], {}, CUDL_DTYPE_F16);
    }
    x3 = Watch(mine_.get(), {4, 7, 6});
    w3 = Watch(mine_.get(), {6, 2, 9});
    y3 = Watch(mine_.get(), {6, 7, 6});
    y_narrow = Watch(mine_.get(), {2, 6, 7, 5});
    y_k5 = Watch(mine_.get(), {2, 5, 7, 6});
    y_n3 = Watch(mine_.get(), {3, 6, 7, 6});
    w_c4 = Watch(mine_.get(), {6, 4, 3, 3});
    w_k5 = Watch(mine_.get(), {5, 2, 3, 3});
    w_tall = Watch(mine_.get(), {6, 2, 11, 3});
    x_c5 = Watch(mine_.get(), {2, 5, 7, 6});
    x_c0 = Watch(mine_.get(), {2, 0, 7, 6});
    x_c6 = Watch(mine_.get(), {2, 6, 7, 6});
    b7 = Watch(mine_.get(), {7});
    b5 = Watch(mine_.get(), {5});
    b_2d = Watch(mine_.get(), {1, 6});
  }
  void TearDown() override {
    mine_.reset();
    theirs_.reset();
    ConvTest::TearDown();
  }

  cudl_tensor *Watch(Tensors *where, const std::vector<int64_t> &shape, float fill = 7.25f) {
    int64_t count = 1;
    for (int64_t dim : shape) count *= dim;
    std::vector<float> values(static_cast<size_t>(count), fill);
    cudl_tensor *t = where->Make(shape, values);
    watched_.push_back({t, values});
    return t;
  }
  cudl_tensor *Input(const std::vector<int64_t> &shape) {
    int64_t count = 1;
    for (int64_t dim : shape) count *= dim;
    const std::vector<float> values = RandomValues(static_cast<size_t>(count), seed_++);
    cudl_tensor *t = mine_->Make(shape, values);
    watched_.push_back({t, values});
    return t;
  }
  cudl_tensor *Output(const std::vector<int64_t> &shape) { return Watch(mine_.get(), shape); }

  // Every f32 tensor holds what it was given.
  ::testing::AssertionResult NothingWritten() {
    for (const auto &entry : watched_) {
      ::testing::AssertionResult same = BitEqual(ReadF32(entry.first), entry.second);
      if (!same) return same;
    }
    return ::testing::AssertionSuccess();
  }

  struct BadCall {
    std::string what;
    cudl_status want;
    const char *names;  // the argument the message must name; NULL: no context
    std::function<cudl_status()> call;
  };
  void Expect(const std::vector<BadCall> &cases) {
    for (const BadCall &c : cases) {
      SCOPED_TRACE(c.what);
      const cudl_status got = c.call();
      EXPECT_EQ(got, c.want) << cudl_status_name(got) << ": " << LastError(ctx_);
      if (c.names != nullptr) {
        EXPECT_TRUE(NamesArgument(LastError(ctx_), c.names));
      }
      EXPECT_TRUE(NothingWritten());
    }
    // And the context still works.
    EXPECT_EQ(cudl_conv2d_forward(ctx_, &ok_, x, w, b, y), CUDL_OK) << LastError(ctx_);
  }

  ContextGuard other_;
  std::unique_ptr<Tensors> mine_, theirs_;
  std::vector<std::pair<cudl_tensor *, std::vector<float>>> watched_;
  uint32_t seed_ = 500;
  cudl_conv2d_desc ok_;
  // Valid operands.
  cudl_tensor *x, *w, *b, *dy, *y, *dx, *dw, *db;
  // On the other context and f16, in the order x, w, b, dy, y, dx, dw, db.
  cudl_tensor *foreign[8], *half[8];
  cudl_tensor *x3, *w3, *y3, *y_narrow, *y_k5, *y_n3, *w_c4, *w_k5, *w_tall, *x_c5, *x_c0, *x_c6;
  cudl_tensor *b7, *b5, *b_2d;
};

TEST_F(ConvBadInputTest, BadDescriptorsWriteNothing) {
  struct BadDesc {
    const char *what;
    cudl_conv2d_desc d;
    cudl_status want;
    const char *names;
  };
  const BadDesc descs[] = {
      {"stride_h 0", Desc(0, 1, 1, 1, 1, 1, 2), CUDL_ERR_INVALID_ARGUMENT, "stride"},
      {"stride_w -1", Desc(1, -1, 1, 1, 1, 1, 2), CUDL_ERR_INVALID_ARGUMENT, "stride"},
      {"dilation_h 0", Desc(1, 1, 1, 1, 0, 1, 2), CUDL_ERR_INVALID_ARGUMENT, "dilation"},
      {"dilation_w -2", Desc(1, 1, 1, 1, 1, -2, 2), CUDL_ERR_INVALID_ARGUMENT, "dilation"},
      {"groups 0", Desc(1, 1, 1, 1, 1, 1, 0), CUDL_ERR_INVALID_ARGUMENT, "groups"},
      {"groups -2", Desc(1, 1, 1, 1, 1, 1, -2), CUDL_ERR_INVALID_ARGUMENT, "groups"},
      {"groups 3 divides K = 6, not C = 4", Desc(1, 1, 1, 1, 1, 1, 3), CUDL_ERR_INVALID_ARGUMENT,
       "groups"},
      {"groups 4 divides C = 4, not K = 6", Desc(1, 1, 1, 1, 1, 1, 4), CUDL_ERR_INVALID_ARGUMENT,
       "groups"},
      {"pad_h -1", Desc(1, 1, -1, 1, 1, 1, 2), CUDL_ERR_INVALID_ARGUMENT, "pad"},
      {"pad_w 3 > 1 * (3 - 1)", Desc(1, 1, 1, 3, 1, 1, 2), CUDL_ERR_INVALID_ARGUMENT, "pad"},
      {"pad_h 5 > 2 * (3 - 1)", Desc(1, 1, 5, 1, 2, 1, 2), CUDL_ERR_INVALID_ARGUMENT, "pad"},
      {"dilated kernel 9 > padded height 7", Desc(1, 1, 0, 1, 4, 1, 2), CUDL_ERR_SHAPE, "kernel"},
      {"dilated kernel 7 > padded width 6", Desc(1, 1, 1, 0, 1, 3, 2), CUDL_ERR_SHAPE, "kernel"},
  };
  std::vector<BadCall> cases;
  for (const BadDesc &c : descs) {
    const cudl_conv2d_desc d = c.d;
    cases.push_back({std::string("forward, ") + c.what, c.want, c.names,
                     [=] { return cudl_conv2d_forward(ctx_, &d, x, w, b, y); }});
    cases.push_back({std::string("backward data, ") + c.what, c.want, c.names,
                     [=] { return cudl_conv2d_backward_data(ctx_, &d, w, dy, dx); }});
    cases.push_back({std::string("backward filter, ") + c.what, c.want, c.names,
                     [=] { return cudl_conv2d_backward_filter(ctx_, &d, x, dy, dw); }});
  }
  cases.push_back({"forward, NULL desc", CUDL_ERR_INVALID_ARGUMENT, "desc",
                   [=] { return cudl_conv2d_forward(ctx_, nullptr, x, w, b, y); }});
  cases.push_back({"backward data, NULL desc", CUDL_ERR_INVALID_ARGUMENT, "desc",
                   [=] { return cudl_conv2d_backward_data(ctx_, nullptr, w, dy, dx); }});
  cases.push_back({"backward filter, NULL desc", CUDL_ERR_INVALID_ARGUMENT, "desc",
                   [=] { return cudl_conv2d_backward_filter(ctx_, nullptr, x, dy, dw); }});
  Expect(cases);
}

TEST_F(ConvBadInputTest, ForwardBadTensorsWriteNothing) {
  const cudl_conv2d_desc *d = &ok_;
  auto fwd = [=](const cudl_tensor *xx, const cudl_tensor *ww, const cudl_tensor *bb,
                 cudl_tensor *yy) {
    return [=] { return cudl_conv2d_forward(ctx_, d, xx, ww, bb, yy); };
  };
  const cudl_status inval = CUDL_ERR_INVALID_ARGUMENT, shape = CUDL_ERR_SHAPE;
  Expect({
      {"NULL ctx", inval, nullptr, [=] { return cudl_conv2d_forward(nullptr, d, x, w, b, y); }},
      {"NULL x", inval, "x", fwd(nullptr, w, b, y)},
      {"NULL w", inval, "w", fwd(x, nullptr, b, y)},
      {"NULL y", inval, "y", fwd(x, w, b, nullptr)},
      {"x of another context", CUDL_ERR_DEVICE_MISMATCH, "x", fwd(foreign[0], w, b, y)},
      {"w of another context", CUDL_ERR_DEVICE_MISMATCH, "w", fwd(x, foreign[1], b, y)},
      {"bias of another context", CUDL_ERR_DEVICE_MISMATCH, "bias", fwd(x, w, foreign[2], y)},
      {"y of another context", CUDL_ERR_DEVICE_MISMATCH, "y", fwd(x, w, b, foreign[4])},
      {"x f16", CUDL_ERR_DTYPE, "x", fwd(half[0], w, b, y)},
      {"w f16", CUDL_ERR_DTYPE, "w", fwd(x, half[1], b, y)},
      {"bias f16", CUDL_ERR_DTYPE, "bias", fwd(x, w, half[2], y)},
      {"y f16", CUDL_ERR_DTYPE, "y", fwd(x, w, b, half[4])},
      {"x 3-D", shape, "x", fwd(x3, w, b, y)},
      {"w 3-D", shape, "w", fwd(x, w3, b, y)},
      {"y 3-D", shape, "y", fwd(x, w, b, y3)},
      {"y one column short", shape, "y", fwd(x, w, b, y_narrow)},
      {"y with K - 1 channels", shape, "y", fwd(x, w, b, y_k5)},
      {"y with another N", shape, "y", fwd(x, w, b, y_n3)},
      {"w with C, not C / groups, channels", shape, "w", fwd(x, w_c4, b, y)},
      {"x with C = 6: w's 2 channels are not C / groups", shape, "w", fwd(x_c6, w, b, y)},
      {"groups 2 does not divide K = 5", inval, "groups", fwd(x, w_k5, b, y_k5)},
      {"groups 2 does not divide C = 5", inval, "groups", fwd(x_c5, w, b, y)},
      {"x with C = 0", shape, "x", fwd(x_c0, w, b, y)},
      {"kernel 11 > padded height 9", shape, "kernel", fwd(x, w_tall, b, y)},
      {"bias of length K + 1", shape, "bias", fwd(x, w, b7, y)},
      {"bias 2-D", shape, "bias", fwd(x, w, b_2d, y)},
  });
}

// The fused forward checks what the forward does, then the residual (y's
// shape, dtype, layout and context), the slope, and that y is not the
// residual (composed, y is written before the residual is read).
TEST_F(ConvBadInputTest, FusedForwardBadTensorsWriteNothing) {
  const cudl_conv2d_desc *d = &ok_;
  cudl_tensor *res = Input({2, 6, 7, 6}), *res_nhwc = Input({2, 6, 7, 6});
  ASSERT_EQ(cudl_tensor_set_layout(res_nhwc, CUDL_LAYOUT_NHWC), CUDL_OK);
  // The valid call (into a tensor of its own, which is written).
  ASSERT_EQ(cudl_conv2d_forward_fused(ctx_, d, x, w, b, res, 1, 0.1f, mine_->Make({2, 6, 7, 6})),
            CUDL_OK)
      << LastError(ctx_);
  auto fused = [=](const cudl_tensor *xx, const cudl_tensor *ww, const cudl_tensor *bb,
                   const cudl_tensor *rr, float slope, cudl_tensor *yy) {
    return [=] { return cudl_conv2d_forward_fused(ctx_, d, xx, ww, bb, rr, 1, slope, yy); };
  };
  const cudl_status inval = CUDL_ERR_INVALID_ARGUMENT, shape = CUDL_ERR_SHAPE;
  Expect({
      {"NULL ctx", inval, nullptr,
       [=] { return cudl_conv2d_forward_fused(nullptr, d, x, w, b, res, 1, 0.0f, y); }},
      {"NULL desc", inval, "desc",
       [=] { return cudl_conv2d_forward_fused(ctx_, nullptr, x, w, b, res, 1, 0.0f, y); }},
      {"NULL x", inval, "x", fused(nullptr, w, b, res, 0.0f, y)},
      {"NULL w", inval, "w", fused(x, nullptr, b, res, 0.0f, y)},
      {"NULL y", inval, "y", fused(x, w, b, res, 0.0f, nullptr)},
      {"x f16", CUDL_ERR_DTYPE, "x", fused(half[0], w, b, res, 0.0f, y)},
      {"y with K - 1 channels", shape, "y", fused(x, w, b, res, 0.0f, y_k5)},
      {"bias of length K + 1", shape, "bias", fused(x, w, b7, res, 0.0f, y)},
      {"residual of another context", CUDL_ERR_DEVICE_MISMATCH, "residual",
       fused(x, w, b, foreign[4], 0.0f, y)},
      {"residual f16", CUDL_ERR_DTYPE, "residual", fused(x, w, b, half[4], 0.0f, y)},
      {"residual 3-D", shape, "residual", fused(x, w, b, y3, 0.0f, y)},
      {"residual one column short", shape, "residual", fused(x, w, b, y_narrow, 0.0f, y)},
      {"residual with another N", shape, "residual", fused(x, w, b, y_n3, 0.0f, y)},
      {"residual channels-last, the rest NCHW", shape, "residual",
       fused(x, w, b, res_nhwc, 0.0f, y)},
      {"negative_slope NaN", inval, "negative_slope", fused(x, w, b, res, NAN, y)},
      {"negative_slope infinite", inval, "negative_slope", fused(x, w, b, res, INFINITY, y)},
      {"y is the residual", inval, "residual", fused(x, w, b, y, 0.0f, y)},
  });
}

TEST_F(ConvBadInputTest, BackwardDataBadTensorsWriteNothing) {
  const cudl_conv2d_desc *d = &ok_;
  auto bwd = [=](const cudl_tensor *ww, const cudl_tensor *gy, cudl_tensor *gx) {
    return [=] { return cudl_conv2d_backward_data(ctx_, d, ww, gy, gx); };
  };
  const cudl_status inval = CUDL_ERR_INVALID_ARGUMENT, shape = CUDL_ERR_SHAPE;
  Expect({
      {"NULL ctx", inval, nullptr,
       [=] { return cudl_conv2d_backward_data(nullptr, d, w, dy, dx); }},
      {"NULL w", inval, "w", bwd(nullptr, dy, dx)},
      {"NULL dy", inval, "dy", bwd(w, nullptr, dx)},
      {"NULL dx", inval, "dx", bwd(w, dy, nullptr)},
      {"w of another context", CUDL_ERR_DEVICE_MISMATCH, "w", bwd(foreign[1], dy, dx)},
      {"dy of another context", CUDL_ERR_DEVICE_MISMATCH, "dy", bwd(w, foreign[3], dx)},
      {"dx of another context", CUDL_ERR_DEVICE_MISMATCH, "dx", bwd(w, dy, foreign[5])},
      {"w f16", CUDL_ERR_DTYPE, "w", bwd(half[1], dy, dx)},
      {"dy f16", CUDL_ERR_DTYPE, "dy", bwd(w, half[3], dx)},
      {"dx f16", CUDL_ERR_DTYPE, "dx", bwd(w, dy, half[5])},
      {"w 3-D", shape, "w", bwd(w3, dy, dx)},
      {"dy 3-D", shape, "dy", bwd(w, y3, dx)},
      {"dx 3-D", shape, "dx", bwd(w, dy, x3)},
      {"dy one column short", shape, "dy", bwd(w, y_narrow, dx)},
      {"dy with another N", shape, "dy", bwd(w, y_n3, dx)},
      {"dx with C = 6: w's 2 channels are not C / groups", shape, "w", bwd(w, dy, x_c6)},
      {"w with C, not C / groups, channels", shape, "w", bwd(w_c4, dy, dx)},
      {"groups 2 does not divide C = 5", inval, "groups", bwd(w, dy, x_c5)},
      {"groups 2 does not divide K = 5", inval, "groups", bwd(w_k5, y_k5, dx)},
      {"dx with C = 0", shape, "dx", bwd(w, dy, x_c0)},
      {"kernel 11 > padded height 9", shape, "kernel", bwd(w_tall, dy, dx)},
  });
}

TEST_F(ConvBadInputTest, BackwardFilterBadTensorsWriteNothing) {
  const cudl_conv2d_desc *d = &ok_;
  auto bwd = [=](const cudl_tensor *xx, const cudl_tensor *gy, cudl_tensor *gw) {
    return [=] { return cudl_conv2d_backward_filter(ctx_, d, xx, gy, gw); };
  };
  const cudl_status inval = CUDL_ERR_INVALID_ARGUMENT, shape = CUDL_ERR_SHAPE;
  Expect({
      {"NULL ctx", inval, nullptr,
       [=] { return cudl_conv2d_backward_filter(nullptr, d, x, dy, dw); }},
      {"NULL x", inval, "x", bwd(nullptr, dy, dw)},
      {"NULL dy", inval, "dy", bwd(x, nullptr, dw)},
      {"NULL dw", inval, "dw", bwd(x, dy, nullptr)},
      {"x of another context", CUDL_ERR_DEVICE_MISMATCH, "x", bwd(foreign[0], dy, dw)},
      {"dy of another context", CUDL_ERR_DEVICE_MISMATCH, "dy", bwd(x, foreign[3], dw)},
      {"dw of another context", CUDL_ERR_DEVICE_MISMATCH, "dw", bwd(x, dy, foreign[6])},
      {"x f16", CUDL_ERR_DTYPE, "x", bwd(half[0], dy, dw)},
      {"dy f16", CUDL_ERR_DTYPE, "dy", bwd(x, half[3], dw)},
      {"dw f16", CUDL_ERR_DTYPE, "dw", bwd(x, dy, half[6])},
      {"x 3-D", shape, "x", bwd(x3, dy, dw)},
      {"dy 3-D", shape, "dy", bwd(x, y3, dw)},
      {"dw 3-D", shape, "dw", bwd(x, dy, w3)},
      {"dy one column short", shape, "dy", bwd(x, y_narrow, dw)},
      {"dy with K - 1 channels", shape, "dy", bwd(x, y_k5, dw)},
      {"dw with C, not C / groups, channels", shape, "dw", bwd(x, dy, w_c4)},
      {"x with C = 6: dw's 2 channels are not C / groups", shape, "dw", bwd(x_c6, dy, dw)},
      {"groups 2 does not divide C = 5", inval, "groups", bwd(x_c5, dy, dw)},
      {"groups 2 does not divide K = 5", inval, "groups", bwd(x, y_k5, w_k5)},
      {"x with C = 0", shape, "x", bwd(x_c0, dy, dw)},
      {"kernel 11 > padded height 9", shape, "kernel", bwd(x, dy, w_tall)},
  });
}

TEST_F(ConvBadInputTest, BackwardBiasBadTensorsWriteNothing) {
  auto bwd = [=](const cudl_tensor *gy, cudl_tensor *gb) {
    return [=] { return cudl_conv2d_backward_bias(ctx_, gy, gb); };
  };
  const cudl_status inval = CUDL_ERR_INVALID_ARGUMENT, shape = CUDL_ERR_SHAPE;
  Expect({
      {"NULL ctx", inval, nullptr, [=] { return cudl_conv2d_backward_bias(nullptr, dy, db); }},
      {"NULL dy", inval, "dy", bwd(nullptr, db)},
      {"NULL dbias", inval, "dbias", bwd(dy, nullptr)},
      {"dy of another context", CUDL_ERR_DEVICE_MISMATCH, "dy", bwd(foreign[3], db)},
      {"dbias of another context", CUDL_ERR_DEVICE_MISMATCH, "dbias", bwd(dy, foreign[7])},
      {"dy f16", CUDL_ERR_DTYPE, "dy", bwd(half[3], db)},
      {"dbias f16", CUDL_ERR_DTYPE, "dbias", bwd(dy, half[7])},
      {"dy 3-D", shape, "dy", bwd(y3, db)},
      {"dbias of length K + 1", shape, "dbias", bwd(dy, b7)},
      {"dbias of length K - 1", shape, "dbias", bwd(dy, b5)},
      {"dbias 2-D", shape, "dbias", bwd(dy, b_2d)},
      {"dy with K - 1 channels", shape, "dbias", bwd(y_k5, db)},
  });
}

// Every operand of a call in one float dtype (cudl/tensor.h): all f16 is
// accepted by each call, and a mismatch names the tensor and both dtypes
// (the f16 cases above: the first tensor checked sets the dtype).
TEST_F(ConvBadInputTest, SixteenBitOperandsInOneDtypeAreAccepted) {
  EXPECT_EQ(cudl_conv2d_forward(ctx_, &ok_, half[0], half[1], half[2], half[4]), CUDL_OK)
      << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_backward_data(ctx_, &ok_, half[1], half[3], half[5]), CUDL_OK)
      << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_backward_filter(ctx_, &ok_, half[0], half[3], half[6]), CUDL_OK)
      << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_backward_bias(ctx_, half[3], half[7]), CUDL_OK) << LastError(ctx_);
  EXPECT_EQ(cudl_conv2d_forward(ctx_, &ok_, x, half[1], b, y), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"w is f16", "x is f32"}));
  EXPECT_EQ(cudl_conv2d_forward(ctx_, &ok_, half[0], half[1], b, half[4]), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"bias is f32", "x is f16"}));
  EXPECT_EQ(cudl_conv2d_backward_bias(ctx_, half[3], db), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"dbias is f32", "dy is f16"}));
  EXPECT_TRUE(NothingWritten());
}

TEST_F(ConvTest, OutputSharingStorageWithAnInputIsRejected) {
  // 1x1 convolutions with C = K = 4 on 2x2 images, so that x, w, y, dy,
  // dx and dw all have 16 elements and a view of one can stand in for
  // another (cudl_tensor_reshape shares storage).
  const cudl_conv2d_desc d = Desc(1, 1, 0, 0);
  Tensors ts(ctx_);
  const std::vector<float> xs = RandomValues(16, 600), ws = RandomValues(16, 601),
                           bs = RandomValues(4, 602), gs = RandomValues(16, 603);
  cudl_tensor *x = ts.Make({1, 4, 2, 2}, xs), *w = ts.Make({4, 4, 1, 1}, ws);
  cudl_tensor *b = ts.Make({4}, bs), *dy = ts.Make({1, 4, 2, 2}, gs);
  cudl_tensor *x1 = ts.Make({1, 4, 1, 1}, {1, 2, 3, 4});
  // The same calls with outputs of their own succeed: the shapes are right.
  cudl_tensor *y = ts.Make({1, 4, 2, 2}), *y1 = ts.Make({1, 4, 1, 1});
  cudl_tensor *dx = ts.Make({1, 4, 2, 2}), *dw = ts.Make({4, 4, 1, 1});
  ASSERT_EQ(cudl_conv2d_forward(ctx_, &d, x, w, b, y), CUDL_OK) << LastError(ctx_);
  ASSERT_EQ(cudl_conv2d_forward(ctx_, &d, x1, w, b, y1), CUDL_OK) << LastError(ctx_);
  ASSERT_EQ(cudl_conv2d_backward_data(ctx_, &d, w, dy, dx), CUDL_OK) << LastError(ctx_);
  ASSERT_EQ(cudl_conv2d_backward_filter(ctx_, &d, x, dy, dw), CUDL_OK) << LastError(ctx_);
  struct Alias {
    const char *what;
    const char *names;
    std::function<cudl_status()> call;
  };
  const std::vector<Alias> cases = {
      {"y is x", "y",
       [&] { return cudl_conv2d_forward(ctx_, &d, x, w, b, ts.View(x, {1, 4, 2, 2})); }},
      {"y is w", "y",
       [&] { return cudl_conv2d_forward(ctx_, &d, x, w, nullptr, ts.View(w, {1, 4, 2, 2})); }},
      {"y is bias", "y",
       [&] { return cudl_conv2d_forward(ctx_, &d, x1, w, b, ts.View(b, {1, 4, 1, 1})); }},
      {"dx is dy", "dx",
       [&] { return cudl_conv2d_backward_data(ctx_, &d, w, dy, ts.View(dy, {1, 4, 2, 2})); }},
      {"dx is w", "dx",
       [&] { return cudl_conv2d_backward_data(ctx_, &d, w, dy, ts.View(w, {1, 4, 2, 2})); }},
      {"dw is x", "dw",
       [&] { return cudl_conv2d_backward_filter(ctx_, &d, x, dy, ts.View(x, {4, 4, 1, 1})); }},
      {"dw is dy", "dw",
       [&] { return cudl_conv2d_backward_filter(ctx_, &d, x, dy, ts.View(dy, {4, 4, 1, 1})); }},
  };
  for (const Alias &c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(c.call(), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(NamesArgument(LastError(ctx_), c.names));
    EXPECT_TRUE(BitEqual(ReadF32(x), xs)) << "x was written";
    EXPECT_TRUE(BitEqual(ReadF32(w), ws)) << "w was written";
    EXPECT_TRUE(BitEqual(ReadF32(b), bs)) << "bias was written";
    EXPECT_TRUE(BitEqual(ReadF32(dy), gs)) << "dy was written";
  }
}

}  // namespace
