// test_pooling.cpp - max, average and global average pooling against float64
// references written here (windows enumerated directly), finite differences,
// the tie and NaN rules, padding divisors, bad input. CUDA:
// test_backends.cpp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;
using cudl_test::ReadF32;
using cudl_test::WriteF32;

struct Geometry {
  int64_t n, c, h, w;
  cudl_pool2d_desc d;
  int64_t oh() const { return (h + 2 * d.pad_h - d.kernel_h) / d.stride_h + 1; }
  int64_t ow() const { return (w + 2 * d.pad_w - d.kernel_w) / d.stride_w + 1; }
  std::string str() const {
    return std::to_string(n) + "x" + std::to_string(c) + "x" + std::to_string(h) + "x" +
           std::to_string(w) + " k" + std::to_string(d.kernel_h) + "x" +
           std::to_string(d.kernel_w) + " s" + std::to_string(d.stride_h) + "x" +
           std::to_string(d.stride_w) + " p" + std::to_string(d.pad_h) + "x" +
           std::to_string(d.pad_w) + (d.count_include_pad ? " incl" : "");
  }
};

cudl_pool2d_desc Desc(int kh, int kw, int sh, int sw, int ph, int pw, int incl = 0) {
  cudl_pool2d_desc d = {};
  d.kernel_h = kh;
  d.kernel_w = kw;
  d.stride_h = sh;
  d.stride_w = sw;
  d.pad_h = ph;
  d.pad_w = pw;
  d.count_include_pad = incl;
  return d;
}

// Overlapping and not, padded and not, square and not, primes.
std::vector<Geometry> Geometries() {
  return {{1, 1, 5, 5, Desc(2, 2, 2, 2, 0, 0)},  {2, 3, 7, 13, Desc(3, 3, 1, 1, 1, 1)},
          {2, 3, 7, 13, Desc(3, 3, 2, 2, 1, 1, 1)}, {1, 2, 8, 9, Desc(2, 2, 1, 1, 0, 0)},
          {3, 1, 4, 4, Desc(1, 1, 1, 1, 0, 0)},  {1, 2, 11, 10, Desc(3, 2, 2, 1, 1, 0)},
          {2, 2, 9, 9, Desc(3, 3, 3, 3, 0, 0)},  {1, 1, 6, 7, Desc(5, 3, 2, 2, 2, 1, 1)},
          // Windows apart (gaps between them), and apart with padding.
          {1, 2, 8, 7, Desc(2, 2, 3, 3, 0, 0)},  {2, 1, 6, 6, Desc(2, 2, 2, 2, 1, 1, 1)}};
}

// One window's valid elements (plane offsets) in row-major order.
std::vector<int64_t> Window(const Geometry &g, int64_t oh, int64_t ow) {
  std::vector<int64_t> out;
  for (int64_t i = 0; i < g.d.kernel_h; ++i)
    for (int64_t j = 0; j < g.d.kernel_w; ++j) {
      const int64_t h = oh * g.d.stride_h - g.d.pad_h + i, w = ow * g.d.stride_w - g.d.pad_w + j;
      if (h >= 0 && h < g.h && w >= 0 && w < g.w) out.push_back(h * g.w + w);
    }
  return out;
}

double Divisor(const Geometry &g, const std::vector<int64_t> &window) {
  return g.d.count_include_pad ? g.d.kernel_h * g.d.kernel_w : static_cast<double>(window.size());
}

// Reference forward and backward (dy given), in double.
void Reference(const Geometry &g, bool is_max, const std::vector<float> &x,
               const std::vector<float> &dy, std::vector<double> *y, std::vector<double> *dx) {
  y->assign(static_cast<size_t>(g.n * g.c * g.oh() * g.ow()), 0.0);
  dx->assign(x.size(), 0.0);
  for (int64_t p = 0; p < g.n * g.c; ++p)
    for (int64_t oh = 0; oh < g.oh(); ++oh)
      for (int64_t ow = 0; ow < g.ow(); ++ow) {
        const std::vector<int64_t> win = Window(g, oh, ow);
        const size_t o = static_cast<size_t>((p * g.oh() + oh) * g.ow() + ow);
        const size_t base = static_cast<size_t>(p * g.h * g.w);
        if (is_max) {
          size_t best = base + static_cast<size_t>(win[0]);
          for (int64_t k : win)
            if (x[base + static_cast<size_t>(k)] > x[best]) best = base + static_cast<size_t>(k);
          (*y)[o] = x[best];
          (*dx)[best] += dy[o];
        } else {
          double sum = 0;
          for (int64_t k : win) sum += x[base + static_cast<size_t>(k)];
          (*y)[o] = sum / Divisor(g, win);
          for (int64_t k : win) (*dx)[base + static_cast<size_t>(k)] += dy[o] / Divisor(g, win);
        }
      }
}

// Distinct values 1/64 apart in random order: no ties, and finite
// differences with a step far below the gaps never change a window's max.
std::vector<float> DistinctValues(size_t n, uint32_t seed) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>(i) / 64.0f - static_cast<float>(n) / 128.0f;
  std::shuffle(v.begin(), v.end(), std::mt19937(seed));
  return v;
}

std::vector<float> RandomValues(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

class PoolingTest : public cudl_test::TensorFixture {};

TEST_F(PoolingTest, OutputShape) {
  for (const Geometry &g : Geometries()) {
    const int64_t in[4] = {g.n, g.c, g.h, g.w};
    int64_t out[4] = {0, 0, 0, 0};
    ASSERT_EQ(cudl_pool2d_output_shape(&g.d, in, out), CUDL_OK) << g.str();
    EXPECT_EQ(out[0], g.n);
    EXPECT_EQ(out[1], g.c);
    EXPECT_EQ(out[2], g.oh()) << g.str();
    EXPECT_EQ(out[3], g.ow()) << g.str();
  }
}

TEST_F(PoolingTest, ForwardAndBackwardMatchFloat64Reference) {
  for (const Geometry &g : Geometries()) {
    for (bool is_max : {true, false}) {
      SCOPED_TRACE(g.str() + (is_max ? " max" : " avg"));
      const std::vector<int64_t> in = {g.n, g.c, g.h, g.w}, out = {g.n, g.c, g.oh(), g.ow()};
      const std::vector<float> xs = RandomValues(static_cast<size_t>(g.n * g.c * g.h * g.w), 1);
      const std::vector<float> gs = RandomValues(static_cast<size_t>(g.n * g.c * g.oh() * g.ow()), 2);
      cudl_tensor *x = Make(ctx_, in, xs), *y = Make(ctx_, out), *dy = Make(ctx_, out, gs);
      cudl_tensor *dx = Make(ctx_, in, std::vector<float>(xs.size(), 123.0f));
      if (is_max) {
        ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &g.d, x, y), CUDL_OK) << cudl_context_last_error(ctx_);
        ASSERT_EQ(cudl_max_pool2d_backward(ctx_, &g.d, x, dy, dx), CUDL_OK);
      } else {
        ASSERT_EQ(cudl_avg_pool2d_forward(ctx_, &g.d, x, y), CUDL_OK) << cudl_context_last_error(ctx_);
        ASSERT_EQ(cudl_avg_pool2d_backward(ctx_, &g.d, dy, dx), CUDL_OK);
      }
      std::vector<double> ry, rdx;
      Reference(g, is_max, xs, gs, &ry, &rdx);
      const std::vector<float> ys = ReadF32(y), dxs = ReadF32(dx);
      // Max picks an element: exact. Average: a double sum rounded once
      // on the CPU, so within half an ulp of the reference (1 ulp allowed).
      for (size_t i = 0; i < ys.size(); ++i)
        ASSERT_NEAR(ys[i], ry[i], is_max ? 0.0 : FLT_EPSILON * std::fabs(ry[i]) + FLT_MIN) << i;
      // dx sums up to kernel_h * kernel_w float contributions (overlapping
      // windows): within that many roundings of the float64 sum.
      const double terms = static_cast<double>(g.d.kernel_h * g.d.kernel_w);
      for (size_t i = 0; i < dxs.size(); ++i)
        ASSERT_NEAR(dxs[i], rdx[i], terms * 2 * FLT_EPSILON * (std::fabs(rdx[i]) + 1.0)) << i;
    }
  }
}

// The CPU's 16-bit pooling widens a sample at a time when a batch has 16 or
// more (cpu_lowp.c), whole tensors below that, and computes channels-last
// max pooling whose windows do not overlap on the 16-bit values themselves
// (cpu_pooling_tiles.h): each way the f32 entry's bits on the widened
// values, rounded once. Batches of the geometries' own sizes and of 17,
// NCHW and channels-last, max and average, bf16 and f16.
TEST_F(PoolingTest, SixteenBitIsTheF32PoolingRoundedOnce) {
  uint32_t seed = 70;
  for (Geometry g : Geometries())
    for (int64_t n : {g.n, int64_t{17}})
      for (int channels_last = 0; channels_last < 2; ++channels_last)
        for (cudl_dtype dtype : {CUDL_DTYPE_BF16, CUDL_DTYPE_F16})
          for (int is_max = 0; is_max < 2; ++is_max) {
            g.n = n;
            SCOPED_TRACE(g.str() + (channels_last ? " nhwc " : " nchw ") +
                         cudl_dtype_name(dtype) + (is_max ? " max" : " avg"));
            const std::vector<int64_t> in = {g.n, g.c, g.h, g.w},
                                       out = {g.n, g.c, g.oh(), g.ow()};
            auto make = [&](const std::vector<int64_t> &shape, cudl_dtype t) {
              cudl_tensor *x =
                  t == CUDL_DTYPE_F32 ? Make(ctx_, shape) : MakeOf(t, shape);
              if (channels_last) {
                EXPECT_EQ(cudl_tensor_set_layout(x, CUDL_LAYOUT_NHWC), CUDL_OK);
              }
              return x;
            };
            // f32 and 16-bit tensors holding the same values.
            auto values = [&](const std::vector<int64_t> &shape,
                              cudl_tensor **wide, cudl_tensor **narrow) {
              size_t count = 1;
              for (int64_t d : shape) count *= static_cast<size_t>(d);
              *wide = make(shape, CUDL_DTYPE_F32);
              *narrow = make(shape, dtype);
              EXPECT_EQ(WriteF32(*wide, RandomValues(count, ++seed)), CUDL_OK);
              EXPECT_EQ(cudl_tensor_convert(*narrow, *wide), CUDL_OK);
              EXPECT_EQ(cudl_tensor_convert(*wide, *narrow), CUDL_OK);
            };
            auto same = [&](cudl_tensor *wide, cudl_tensor *narrow,
                            const std::vector<int64_t> &shape) {
              cudl_tensor *rounded = make(shape, dtype);
              EXPECT_EQ(cudl_tensor_convert(rounded, wide), CUDL_OK);
              return cudl_test::ReadBits16(rounded) ==
                     cudl_test::ReadBits16(narrow);
            };
            cudl_tensor *x32, *x16, *dy32, *dy16;
            values(in, &x32, &x16);
            values(out, &dy32, &dy16);
            cudl_tensor *y32 = make(out, CUDL_DTYPE_F32),
                        *y16 = make(out, dtype),
                        *dx32 = make(in, CUDL_DTYPE_F32),
                        *dx16 = make(in, dtype);
            if (is_max) {
              ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &g.d, x32, y32), CUDL_OK);
              ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &g.d, x16, y16), CUDL_OK);
              ASSERT_EQ(cudl_max_pool2d_backward(ctx_, &g.d, x32, dy32, dx32),
                        CUDL_OK);
              ASSERT_EQ(cudl_max_pool2d_backward(ctx_, &g.d, x16, dy16, dx16),
                        CUDL_OK);
            } else {
              ASSERT_EQ(cudl_avg_pool2d_forward(ctx_, &g.d, x32, y32), CUDL_OK);
              ASSERT_EQ(cudl_avg_pool2d_forward(ctx_, &g.d, x16, y16), CUDL_OK);
              ASSERT_EQ(cudl_avg_pool2d_backward(ctx_, &g.d, dy32, dx32),
                        CUDL_OK);
              ASSERT_EQ(cudl_avg_pool2d_backward(ctx_, &g.d, dy16, dx16),
                        CUDL_OK);
            }
            EXPECT_TRUE(same(y32, y16, out)) << "forward";
            EXPECT_TRUE(same(dx32, dx16, in)) << "backward";
          }
}

TEST_F(PoolingTest, BackwardMatchesFiniteDifferences) {
  // L = sum(w * y). Average pooling is linear and max pooling is linear
  // between ties, so central differences with h = 1/1024 (far below the 1/64
  // gaps between the distinct inputs) are exact up to rounding.
  const double h = 1.0 / 1024;
  for (const Geometry &g : Geometries()) {
    for (bool is_max : {true, false}) {
      SCOPED_TRACE(g.str() + (is_max ? " max" : " avg"));
      const std::vector<int64_t> in = {g.n, g.c, g.h, g.w},
                                 out = {g.n, g.c, g.oh(), g.ow()};
      const size_t n_in = static_cast<size_t>(g.n * g.c * g.h * g.w);
      const std::vector<float> xs = DistinctValues(n_in, 3);
      const std::vector<float> ws =
          RandomValues(static_cast<size_t>(g.n * g.c * g.oh() * g.ow()), 4);
      cudl_tensor *x = Make(ctx_, in, xs), *y = Make(ctx_, out),
                  *w = Make(ctx_, out, ws);
      cudl_tensor *dx = Make(ctx_, in);
      auto forward = [&](const std::vector<float> &v) {
        EXPECT_EQ(WriteF32(x, v), CUDL_OK);
        EXPECT_EQ(is_max ? cudl_max_pool2d_forward(ctx_, &g.d, x, y)
                         : cudl_avg_pool2d_forward(ctx_, &g.d, x, y),
                  CUDL_OK);
        const std::vector<float> ys = ReadF32(y);
        double loss = 0;
        for (size_t i = 0; i < ys.size(); ++i)
          loss += static_cast<double>(ws[i]) * ys[i];
        return loss;
      };
      ASSERT_EQ(WriteF32(x, xs), CUDL_OK);
      ASSERT_EQ(is_max ? cudl_max_pool2d_backward(ctx_, &g.d, x, w, dx)
                       : cudl_avg_pool2d_backward(ctx_, &g.d, w, dx),
                CUDL_OK);
      const std::vector<float> grad = ReadF32(dx);
      for (size_t i = 0; i < n_in; i += std::max<size_t>(1, n_in / 40)) {
        std::vector<float> plus = xs, minus = xs;
        plus[i] = static_cast<float>(xs[i] + h);
        minus[i] = static_cast<float>(xs[i] - h);
        const double fd = (forward(plus) - forward(minus)) / (static_cast<double>(plus[i]) - minus[i]);
        EXPECT_NEAR(grad[i], fd, 1e-3 * (1 + std::fabs(fd))) << "element " << i;
      }
    }
  }
}

TEST_F(PoolingTest, TiesGoToTheFirstElementAndNanPropagates) {
  const cudl_pool2d_desc d = Desc(2, 2, 2, 2, 0, 0);
  cudl_tensor *x = Make(ctx_, {1, 1, 2, 4}, {1, 1, 5, 2, 1, 1, 2, NAN});
  cudl_tensor *y = Make(ctx_, {1, 1, 1, 2}), *dy = Make(ctx_, {1, 1, 1, 2}, {10, 20});
  cudl_tensor *dx = Make(ctx_, {1, 1, 2, 4});
  ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &d, x, y), CUDL_OK);
  const std::vector<float> ys = ReadF32(y);
  EXPECT_EQ(ys[0], 1.0f);
  EXPECT_TRUE(std::isnan(ys[1])) << "a NaN in the window makes the output NaN";
  ASSERT_EQ(cudl_max_pool2d_backward(ctx_, &d, x, dy, dx), CUDL_OK);
  // Window 0 is all ones: the first in row-major order takes the gradient.
  // Window 1 holds a NaN: the NaN element takes it.
  EXPECT_TRUE(BitEqual(ReadF32(dx), {10, 0, 0, 0, 0, 0, 0, 20}));
}

// The vectorised CPU path keeps the same rule in every lane: a NaN that
// comes first is not replaced by a larger number, of two NaNs the first
// wins, and a tie keeps the first; windows 2x2 stride 2 and, overlapping,
// 3x3 stride 1 over a row wide enough for several vector lanes.
TEST_F(PoolingTest, NanAndTieRulesHoldAcrossAWideRow) {
  const int64_t w = 40;
  std::vector<float> xs(2 * w);
  for (int64_t i = 0; i < 2 * w; ++i) xs[i] = static_cast<float>(i % 7) - 3.0f;
  // window 3 (columns 6, 7): NaN first, then larger numbers
  xs[6] = NAN;
  xs[7] = 100.0f;
  xs[w + 6] = 200.0f;
  // window 5 (columns 10, 11): two NaNs, the second row's one later
  xs[11] = NAN;
  xs[w + 10] = NAN;
  xs[10] = -50.0f;
  // window 8 (columns 16, 17): a tie between the two rows
  xs[16] = 9.0f;
  xs[w + 17] = 9.0f;
  cudl_tensor *x = Make(ctx_, {1, 1, 2, w}, xs);
  cudl_tensor *y = Make(ctx_, {1, 1, 1, w / 2}), *dy = Make(ctx_, {1, 1, 1, w / 2});
  cudl_tensor *dx = Make(ctx_, {1, 1, 2, w});
  std::vector<float> ones(w / 2, 1.0f);
  ASSERT_EQ(WriteF32(dy, ones), CUDL_OK);
  const cudl_pool2d_desc d = Desc(2, 2, 2, 2, 0, 0);
  ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &d, x, y), CUDL_OK);
  const std::vector<float> ys = ReadF32(y);
  EXPECT_TRUE(std::isnan(ys[3]));
  EXPECT_TRUE(std::isnan(ys[5]));
  EXPECT_EQ(ys[8], 9.0f);
  ASSERT_EQ(cudl_max_pool2d_backward(ctx_, &d, x, dy, dx), CUDL_OK);
  const std::vector<float> dxs = ReadF32(dx);
  EXPECT_EQ(dxs[6], 1.0f) << "the first NaN keeps the window";
  EXPECT_EQ(dxs[7] + dxs[w + 6] + dxs[w + 7], 0.0f);
  EXPECT_EQ(dxs[11], 1.0f) << "of two NaNs, the first in row-major order";
  EXPECT_EQ(dxs[w + 10], 0.0f);
  EXPECT_EQ(dxs[16], 1.0f) << "a tie goes to the first";
  EXPECT_EQ(dxs[w + 17], 0.0f);
  float total = 0.0f;
  for (float v : dxs) total += v;
  EXPECT_EQ(total, static_cast<float>(w / 2)) << "each window passes its gradient once";
  // Overlapping 3x3 windows, stride 1, on 3 rows: each output's choice
  // against a scalar reference of the rule.
  std::vector<float> x3(3 * w);
  for (int64_t i = 0; i < 3 * w; ++i) x3[i] = static_cast<float>((i * 37) % 11);
  x3[5] = NAN;
  x3[w + 20] = NAN;
  x3[2 * w + 19] = NAN;
  cudl_tensor *xo = Make(ctx_, {1, 1, 3, w}, x3);
  cudl_tensor *yo = Make(ctx_, {1, 1, 1, w - 2});
  const cudl_pool2d_desc d3 = Desc(3, 3, 1, 1, 0, 0);
  ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &d3, xo, yo), CUDL_OK);
  const std::vector<float> yos = ReadF32(yo);
  for (int64_t o = 0; o < w - 2; ++o) {
    float best = x3[o];
    for (int i = 0; i < 3; ++i)
      for (int j = 0; j < 3; ++j) {
        const float v = x3[i * w + o + j];
        if (!std::isnan(best) && (v > best || std::isnan(v))) best = v;
      }
    EXPECT_TRUE(BitEqual({yos[o]}, {best})) << "output " << o;
  }
}

TEST_F(PoolingTest, PaddingNeverWinsAndDivisorsFollowCountIncludePad) {
  // All-negative input: padding must not contribute a 0 to max pooling.
  cudl_tensor *x = Make(ctx_, {1, 1, 2, 2}, {-4, -3, -2, -1});
  cudl_tensor *y = Make(ctx_, {1, 1, 2, 2});
  const cudl_pool2d_desc d = Desc(3, 3, 1, 1, 1, 1, 0), incl = Desc(3, 3, 1, 1, 1, 1, 1);
  ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &d, x, y), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(y), {-1, -1, -1, -1}));
  ASSERT_EQ(cudl_avg_pool2d_forward(ctx_, &d, x, y), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(y), {-2.5f, -2.5f, -2.5f, -2.5f})) << "divide by the 4 inside";
  ASSERT_EQ(cudl_avg_pool2d_forward(ctx_, &incl, x, y), CUDL_OK);
  const float ninth = static_cast<float>(-10.0 / 9.0);
  EXPECT_TRUE(BitEqual(ReadF32(y), {ninth, ninth, ninth, ninth})) << "divide by all 9";
}

TEST_F(PoolingTest, GlobalAveragePooling) {
  const std::vector<float> xs = RandomValues(2 * 3 * 7 * 5, 5);
  cudl_tensor *x = Make(ctx_, {2, 3, 7, 5}, xs), *y = Make(ctx_, {2, 3, 1, 1});
  ASSERT_EQ(cudl_global_avg_pool_forward(ctx_, x, y), CUDL_OK) << cudl_context_last_error(ctx_);
  const std::vector<float> ys = ReadF32(y);
  for (size_t r = 0; r < 6; ++r) {
    double sum = 0;
    for (size_t i = 0; i < 35; ++i) sum += xs[r * 35 + i];
    EXPECT_NEAR(ys[r], sum / 35, FLT_EPSILON * std::fabs(sum / 35) + FLT_MIN) << r;
  }
  cudl_tensor *dy = Make(ctx_, {2, 3, 1, 1}, {1, 2, 3, 4, 5, 6}), *dx = Make(ctx_, {2, 3, 7, 5});
  ASSERT_EQ(cudl_global_avg_pool_backward(ctx_, dy, dx), CUDL_OK);
  const std::vector<float> dxs = ReadF32(dx);
  for (size_t i = 0; i < dxs.size(); ++i)
    ASSERT_EQ(dxs[i], static_cast<float>(i / 35 + 1) / 35.0f) << i;
}

TEST_F(PoolingTest, BadInputWritesNothing) {
  cudl_tensor *x = Make(ctx_, {1, 2, 5, 5}, RandomValues(50, 6));
  cudl_tensor *y = Make(ctx_, {1, 2, 2, 2}, std::vector<float>(8, 9.0f));
  cudl_tensor *flat = Make(ctx_, {50});
  struct Case {
    const char *what;
    cudl_pool2d_desc d;
    cudl_status want;
    const char *names;
  };
  const Case cases[] = {
      {"kernel 0", Desc(0, 2, 2, 2, 0, 0), CUDL_ERR_INVALID_ARGUMENT, "kernel"},
      {"stride 0", Desc(2, 2, 0, 2, 0, 0), CUDL_ERR_INVALID_ARGUMENT, "stride"},
      {"pad above kernel / 2", Desc(2, 2, 2, 2, 2, 0), CUDL_ERR_INVALID_ARGUMENT, "pad"},
      {"negative pad", Desc(2, 2, 2, 2, 0, -1), CUDL_ERR_INVALID_ARGUMENT, "pad"},
      {"kernel larger than the input", Desc(7, 7, 1, 1, 0, 0), CUDL_ERR_INVALID_ARGUMENT, "larger"},
      {"y of the wrong shape", Desc(3, 3, 1, 1, 0, 0), CUDL_ERR_SHAPE, "y must have shape"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    EXPECT_EQ(cudl_max_pool2d_forward(ctx_, &c.d, x, y), c.want);
    EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), c.names));
    EXPECT_EQ(cudl_avg_pool2d_forward(ctx_, &c.d, x, y), c.want);
  }
  const cudl_pool2d_desc ok = Desc(2, 2, 2, 2, 0, 0);
  EXPECT_EQ(cudl_max_pool2d_forward(ctx_, nullptr, x, y), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_max_pool2d_forward(ctx_, &ok, flat, y), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_max_pool2d_backward(ctx_, &ok, nullptr, y, x), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_global_avg_pool_forward(ctx_, x, y), CUDL_ERR_SHAPE);
  int64_t out[4];
  const int64_t in[4] = {1, 2, 5, 5};
  const cudl_pool2d_desc bad = Desc(2, 2, 0, 2, 0, 0);
  EXPECT_EQ(cudl_pool2d_output_shape(&bad, in, out), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(y), std::vector<float>(8, 9.0f))) << "y was written";
  ASSERT_EQ(cudl_max_pool2d_forward(ctx_, &ok, x, y), CUDL_OK) << "the context still works";
}

}  // namespace
