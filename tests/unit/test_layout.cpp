// test_layout.cpp - channels-last (CUDL_LAYOUT_NHWC) tensors and the CPU's
// channels-last operators, through the public API.
//
//  * Tensors: cudl_tensor_set_layout's rules, cudl_tensor_convert between
//    layouts (the exact element mapping, with and without a dtype change,
//    16-bit special values, shapes beyond one transpose tile), copies that
//    refuse a layout mismatch, reshape and flatten that refuse a
//    channels-last tensor, narrow that keeps it, operators that refuse
//    operands of mixed layouts.
//  * Operators: every one is run on NCHW tensors and on channels-last
//    copies of the same values (made by cudl_tensor_convert), and the
//    channels-last results, converted back, are compared with the NCHW
//    ones:
//      - max and average pooling, forward and backward, and global average
//        pooling: bit for bit, in f32, bf16 and f16 (cudl/pooling.h: the
//        results are the same values in either layout; max pooling is a
//        choice, and the CPU sums each window, and each global mean, in the
//        same order whichever way round the values lie);
//      - convolution (forward with bias, both backward passes, the bias
//        gradient): both layouts against a float64 reference, within
//        test_conv's bound, in f32 and in bf16 and f16;
//      - batch norm (training forward, backward, inference) and per-channel
//        PReLU: within a few f32 roundings of the NCHW results (the
//        statistics are sums in another order), or bit for bit where the
//        operator is elementwise.
// The model's use of these (test_model_layout.cpp) and the CUDA backend's
// (test_backends.cpp) are tested elsewhere.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "core/half.h"
#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;
using cudl_test::kBf16;
using cudl_test::kF16;
using cudl_test::Lowp;
using cudl_test::ReadBits16;
using cudl_test::ReadF32;
using cudl_test::WriteF32;

constexpr double kEps = FLT_EPSILON;

std::vector<float> RandomValues(size_t n, uint32_t seed, float low = -1.0f, float high = 1.0f) {
  std::mt19937 gen(seed);
  std::uniform_real_distribution<float> dist(low, high);
  std::vector<float> v(n);
  for (float &x : v) x = dist(gen);
  return v;
}

// Small integers, so that max pooling windows hold ties, and now and then
// a NaN.
std::vector<float> TiedValues(size_t n, uint32_t seed) {
  std::mt19937 gen(seed);
  std::vector<float> v(n);
  for (float &x : v) {
    const uint32_t r = gen();
    x = static_cast<float>(static_cast<int>(r % 7) - 3);
    if (r % 89 == 0) x = std::numeric_limits<float>::quiet_NaN();
  }
  return v;
}

std::string LastError(const cudl_context *ctx) { return cudl_context_last_error(ctx); }

// Element [n, c, h, w] of a tensor of logical shape `s` is at this index of
// its bytes in layout `layout`.
size_t Offset(const std::vector<int64_t> &s, cudl_layout layout, int64_t n, int64_t c, int64_t h,
              int64_t w) {
  if (layout == CUDL_LAYOUT_NHWC) return static_cast<size_t>(((n * s[2] + h) * s[3] + w) * s[1] + c);
  return static_cast<size_t>(((n * s[1] + c) * s[2] + h) * s[3] + w);
}

// NCHW values rearranged into channels-last order, on the host.
std::vector<float> HostToNhwc(const std::vector<float> &v, const std::vector<int64_t> &s) {
  std::vector<float> out(v.size());
  for (int64_t n = 0; n < s[0]; ++n)
    for (int64_t c = 0; c < s[1]; ++c)
      for (int64_t h = 0; h < s[2]; ++h)
        for (int64_t w = 0; w < s[3]; ++w)
          out[Offset(s, CUDL_LAYOUT_NHWC, n, c, h, w)] = v[Offset(s, CUDL_LAYOUT_NCHW, n, c, h, w)];
  return out;
}

class LayoutTest : public cudl_test::TensorFixture {
 protected:
  // A tensor of ctx_ in `dtype` and `layout`, zero-filled.
  cudl_tensor *New(const std::vector<int64_t> &shape, cudl_dtype dtype = CUDL_DTYPE_F32,
                   cudl_layout layout = CUDL_LAYOUT_NCHW) {
    cudl_tensor *t = MakeOf(dtype, shape);
    if (t != nullptr && layout != CUDL_LAYOUT_NCHW) {
      EXPECT_EQ(cudl_tensor_set_layout(t, layout), CUDL_OK) << LastError(ctx_);
    }
    return t;
  }
  // An NCHW f32 tensor holding `values`.
  cudl_tensor *Nchw(const std::vector<int64_t> &shape, const std::vector<float> &values) {
    cudl_tensor *t = New(shape);
    EXPECT_EQ(WriteF32(t, values), CUDL_OK);
    return t;
  }
  // src's values in `dtype` and `layout`, by cudl_tensor_convert.
  cudl_tensor *As(const cudl_tensor *src, cudl_dtype dtype, cudl_layout layout) {
    const std::vector<int64_t> shape(cudl_tensor_shape(src),
                                     cudl_tensor_shape(src) + cudl_tensor_ndim(src));
    cudl_tensor *t = New(shape, dtype, layout);
    EXPECT_EQ(cudl_tensor_convert(t, src), CUDL_OK) << LastError(ctx_);
    return t;
  }
  // t's values as NCHW f32 (whatever t's layout and dtype), on the host.
  std::vector<float> Values(const cudl_tensor *t) {
    return ReadF32(cudl_tensor_layout(t) == CUDL_LAYOUT_NCHW && cudl_tensor_dtype(t) == CUDL_DTYPE_F32
                       ? t
                       : As(t, CUDL_DTYPE_F32, CUDL_LAYOUT_NCHW));
  }
};

// ---------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------

TEST_F(LayoutTest, SetLayoutRules) {
  EXPECT_STREQ(cudl_layout_name(CUDL_LAYOUT_NCHW), "nchw");
  EXPECT_STREQ(cudl_layout_name(CUDL_LAYOUT_NHWC), "nhwc");
  EXPECT_STREQ(cudl_layout_name(static_cast<cudl_layout>(7)), "unknown");
  EXPECT_EQ(cudl_tensor_layout(nullptr), CUDL_LAYOUT_NCHW);
  EXPECT_EQ(cudl_tensor_set_layout(nullptr, CUDL_LAYOUT_NHWC), CUDL_ERR_INVALID_ARGUMENT);

  cudl_tensor *image = New({2, 3, 4, 5});
  EXPECT_EQ(cudl_tensor_layout(image), CUDL_LAYOUT_NCHW) << "every tensor starts NCHW";
  ASSERT_EQ(cudl_tensor_set_layout(image, CUDL_LAYOUT_NHWC), CUDL_OK);
  EXPECT_EQ(cudl_tensor_layout(image), CUDL_LAYOUT_NHWC);
  EXPECT_EQ(cudl_tensor_set_layout(image, static_cast<cudl_layout>(2)), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_tensor_layout(image), CUDL_LAYOUT_NHWC) << "a refused change changes nothing";
  ASSERT_EQ(cudl_tensor_set_layout(image, CUDL_LAYOUT_NCHW), CUDL_OK);
  EXPECT_EQ(cudl_tensor_layout(image), CUDL_LAYOUT_NCHW);

  for (const std::vector<int64_t> &shape :
       {std::vector<int64_t>{}, {6}, {2, 3}, {2, 3, 4}, {1, 2, 3, 4, 5}}) {
    cudl_tensor *t = New(shape);
    EXPECT_EQ(cudl_tensor_set_layout(t, CUDL_LAYOUT_NHWC), CUDL_ERR_SHAPE)
        << shape.size() << " dimensions";
    EXPECT_EQ(cudl_tensor_layout(t), CUDL_LAYOUT_NCHW);
    EXPECT_EQ(cudl_tensor_set_layout(t, CUDL_LAYOUT_NCHW), CUDL_OK);
  }
}

// Element [n, c, h, w] of the destination is element [n, c, h, w] of the
// source, in every pair of layouts and float dtypes, read back as raw bytes.
TEST_F(LayoutTest, ConvertMapsEveryElement) {
  // [2, 3, 4, 5] is a small image; [3, 37, 33, 35] has planes and channel
  // counts that are no multiple of a transpose tile (nor of 8 or 16);
  // [40, 1, 1, 1] and [1, 1, 6, 7] have one channel or one pixel.
  for (const std::vector<int64_t> &shape : {std::vector<int64_t>{2, 3, 4, 5},
                                           std::vector<int64_t>{3, 37, 33, 35},
                                           std::vector<int64_t>{40, 1, 1, 1},
                                           std::vector<int64_t>{1, 1, 6, 7},
                                           std::vector<int64_t>{2, 70, 1, 1}}) {
    const size_t numel = static_cast<size_t>(shape[0] * shape[1] * shape[2] * shape[3]);
    // Distinct values, exact in bf16 and f16 where they are small.
    std::vector<float> values(numel);
    for (size_t i = 0; i < numel; ++i)
      values[i] = static_cast<float>(static_cast<int>(i % 251) - 125) * (i % 2 ? 0.5f : 1.0f) +
                  static_cast<float>(i) * 1e-3f;
    cudl_tensor *src32 = Nchw(shape, values);
    for (cudl_dtype src_dtype : {CUDL_DTYPE_F32, CUDL_DTYPE_BF16, CUDL_DTYPE_F16})
      for (cudl_layout src_layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
        cudl_tensor *src = As(src32, src_dtype, src_layout);
        // src's values as f32, on the host: the reference for every dst.
        std::vector<float> want(numel);
        {
          const size_t size = src_dtype == CUDL_DTYPE_F32 ? 4 : 2;
          std::vector<unsigned char> raw(numel * size);
          ASSERT_EQ(cudl_tensor_copy_to_host(src, raw.data(), raw.size()), CUDL_OK);
          for (int64_t n = 0; n < shape[0]; ++n)
            for (int64_t c = 0; c < shape[1]; ++c)
              for (int64_t h = 0; h < shape[2]; ++h)
                for (int64_t w = 0; w < shape[3]; ++w) {
                  const size_t at = Offset(shape, src_layout, n, c, h, w);
                  float v;
                  if (size == 4) {
                    std::memcpy(&v, raw.data() + 4 * at, 4);
                  } else {
                    uint16_t bits;
                    std::memcpy(&bits, raw.data() + 2 * at, 2);
                    v = src_dtype == CUDL_DTYPE_BF16 ? cudl__bf16_to_f32(bits)
                                                     : cudl__f16_to_f32(bits);
                  }
                  want[Offset(shape, CUDL_LAYOUT_NCHW, n, c, h, w)] = v;
                }
        }
        for (cudl_dtype dst_dtype : {CUDL_DTYPE_F32, CUDL_DTYPE_BF16, CUDL_DTYPE_F16})
          for (cudl_layout dst_layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
            SCOPED_TRACE(std::to_string(shape[1]) + " channels, " + cudl_dtype_name(src_dtype) +
                         " " + cudl_layout_name(src_layout) + " -> " +
                         cudl_dtype_name(dst_dtype) + " " + cudl_layout_name(dst_layout));
            cudl_tensor *dst = New(shape, dst_dtype, dst_layout);
            ASSERT_EQ(cudl_tensor_convert(dst, src), CUDL_OK) << LastError(ctx_);
            EXPECT_EQ(cudl_tensor_layout(dst), dst_layout) << "convert keeps dst's layout";
            size_t wrong = 0;
            if (dst_dtype == CUDL_DTYPE_F32) {
              const std::vector<float> got = ReadF32(dst);
              for (int64_t n = 0; n < shape[0]; ++n)
                for (int64_t c = 0; c < shape[1]; ++c)
                  for (int64_t h = 0; h < shape[2]; ++h)
                    for (int64_t w = 0; w < shape[3]; ++w)
                      wrong += cudl_test::FloatBits(got[Offset(shape, dst_layout, n, c, h, w)]) !=
                               cudl_test::FloatBits(
                                   want[Offset(shape, CUDL_LAYOUT_NCHW, n, c, h, w)]);
            } else {
              const Lowp &lp = dst_dtype == CUDL_DTYPE_BF16 ? kBf16 : kF16;
              const std::vector<uint16_t> got = ReadBits16(dst);
              for (int64_t n = 0; n < shape[0]; ++n)
                for (int64_t c = 0; c < shape[1]; ++c)
                  for (int64_t h = 0; h < shape[2]; ++h)
                    for (int64_t w = 0; w < shape[3]; ++w)
                      wrong += got[Offset(shape, dst_layout, n, c, h, w)] !=
                               lp.Narrow(want[Offset(shape, CUDL_LAYOUT_NCHW, n, c, h, w)]);
            }
            EXPECT_EQ(wrong, 0u) << "elements in the wrong place or wrongly rounded";
          }
      }
  }
}

// The 16-bit special values survive a change of layout as they survive a
// plain conversion: infinities, signed zeros and subnormals exactly, NaN
// as the canonical 0x7fff.
TEST_F(LayoutTest, ConvertAcrossLayoutsKeepsSixteenBitSpecials) {
  const std::vector<int64_t> shape = {1, 3, 2, 2};
  for (const Lowp &lp : {kBf16, kF16}) {
    SCOPED_TRACE(cudl_dtype_name(lp.dtype));
    const uint16_t inf = lp.dtype == CUDL_DTYPE_BF16 ? 0x7f80 : 0x7c00;
    const std::vector<uint16_t> bits = {0x0000, 0x8000, 0x0001, 0x8001, inf,
                                        static_cast<uint16_t>(inf | 0x8000),
                                        static_cast<uint16_t>(inf | 1),  // a NaN with a payload
                                        0xffff, 0x3c00, 0x4000, 0x0400, 0x1234};
    cudl_tensor *nchw = New(shape, lp.dtype);
    ASSERT_EQ(cudl_tensor_copy_from_host(nchw, bits.data(), bits.size() * 2), CUDL_OK);
    cudl_tensor *nhwc = New(shape, lp.dtype, CUDL_LAYOUT_NHWC);
    ASSERT_EQ(cudl_tensor_convert(nhwc, nchw), CUDL_OK) << LastError(ctx_);
    const std::vector<uint16_t> got = ReadBits16(nhwc);
    for (int64_t c = 0; c < 3; ++c)
      for (int64_t h = 0; h < 2; ++h)
        for (int64_t w = 0; w < 2; ++w) {
          const uint16_t in = bits[Offset(shape, CUDL_LAYOUT_NCHW, 0, c, h, w)];
          const bool nan = lp.dtype == CUDL_DTYPE_BF16 ? (in & 0x7fff) > 0x7f80
                                                       : (in & 0x7fff) > 0x7c00;
          EXPECT_EQ(got[Offset(shape, CUDL_LAYOUT_NHWC, 0, c, h, w)], nan ? 0x7fff : in)
              << "element " << c << "," << h << "," << w;
        }
  }
}

TEST_F(LayoutTest, ConvertRoundTripAndScaleFreeWeights) {
  // A convolution weight [K, C / groups, R, S] goes channels-last as
  // [K, R, S, C / groups]: the same convert.
  const std::vector<int64_t> shape = {6, 5, 3, 3};
  const std::vector<float> values = RandomValues(6 * 5 * 3 * 3, 11);
  cudl_tensor *w = Nchw(shape, values);
  cudl_tensor *w_last = As(w, CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
  EXPECT_TRUE(BitEqual(ReadF32(w_last), HostToNhwc(values, shape)));
  cudl_tensor *back = As(w_last, CUDL_DTYPE_F32, CUDL_LAYOUT_NCHW);
  EXPECT_TRUE(BitEqual(ReadF32(back), values));
}

TEST_F(LayoutTest, ConvertRefusesALayoutChangeInPlace) {
  const std::vector<int64_t> shape = {2, 3, 4, 4};
  cudl_tensor *x = Nchw(shape, RandomValues(96, 12));
  cudl_tensor *view = nullptr;
  ASSERT_EQ(cudl_tensor_narrow(x, 0, 2, &view), CUDL_OK);  // the same bytes
  ASSERT_EQ(cudl_tensor_set_layout(view, CUDL_LAYOUT_NHWC), CUDL_OK);
  const std::vector<float> before = ReadF32(x);
  EXPECT_EQ(cudl_tensor_convert(view, x), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::HasSubstr(LastError(ctx_), "layout"));
  EXPECT_TRUE(BitEqual(ReadF32(x), before)) << "nothing written";
  // Converting a tensor into itself stays allowed.
  EXPECT_EQ(cudl_tensor_convert(x, x), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(x), before));
  cudl_tensor_destroy(view);
}

TEST_F(LayoutTest, CopyNeedsTheSameLayout) {
  const std::vector<int64_t> shape = {2, 3, 4, 5};
  const std::vector<float> values = RandomValues(120, 13);
  cudl_tensor *nchw = Nchw(shape, values);
  cudl_tensor *nhwc = New(shape, CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
  EXPECT_EQ(cudl_tensor_copy(nhwc, nchw), CUDL_ERR_SHAPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"nchw", "nhwc"}));
  EXPECT_TRUE(BitEqual(ReadF32(nhwc), std::vector<float>(120, 0.0f))) << "nothing copied";
  EXPECT_EQ(cudl_tensor_copy(nchw, nhwc), CUDL_ERR_SHAPE);
  EXPECT_TRUE(BitEqual(ReadF32(nchw), values));

  // Same layout: the bytes move as they are.
  ASSERT_EQ(cudl_tensor_convert(nhwc, nchw), CUDL_OK);
  cudl_tensor *other = New(shape, CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
  ASSERT_EQ(cudl_tensor_copy(other, nhwc), CUDL_OK) << LastError(ctx_);
  EXPECT_TRUE(BitEqual(ReadF32(other), HostToNhwc(values, shape)));
}

TEST_F(LayoutTest, ReshapeAndFlattenRefuseChannelsLast) {
  cudl_tensor *x = New({2, 3, 4, 5}, CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
  cudl_tensor *out = reinterpret_cast<cudl_tensor *>(&out);  // must become NULL
  const int64_t flat[2] = {2, 60};
  EXPECT_EQ(cudl_tensor_reshape(x, 2, flat, &out), CUDL_ERR_SHAPE);
  EXPECT_EQ(out, nullptr);
  EXPECT_TRUE(cudl_test::HasSubstr(LastError(ctx_), "cudl_tensor_convert"));
  out = reinterpret_cast<cudl_tensor *>(&out);
  EXPECT_EQ(cudl_tensor_flatten(x, 1, -1, &out), CUDL_ERR_SHAPE);
  EXPECT_EQ(out, nullptr);
  // The same tensor read as NCHW reshapes.
  ASSERT_EQ(cudl_tensor_set_layout(x, CUDL_LAYOUT_NCHW), CUDL_OK);
  ASSERT_EQ(cudl_tensor_flatten(x, 1, -1, &out), CUDL_OK);
  EXPECT_EQ(cudl_tensor_layout(out), CUDL_LAYOUT_NCHW);
  cudl_tensor_destroy(out);
}

TEST_F(LayoutTest, NarrowKeepsTheLayoutAndTheRows) {
  const std::vector<int64_t> shape = {4, 3, 5, 2};
  const std::vector<float> values = RandomValues(120, 14);
  cudl_tensor *x = As(Nchw(shape, values), CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
  cudl_tensor *rows = nullptr;
  ASSERT_EQ(cudl_tensor_narrow(x, 1, 2, &rows), CUDL_OK) << LastError(ctx_);
  EXPECT_EQ(cudl_tensor_layout(rows), CUDL_LAYOUT_NHWC);
  // Images 1 and 2, whichever way round their bytes are.
  const std::vector<float> want(values.begin() + 30, values.begin() + 90);
  EXPECT_TRUE(BitEqual(Values(rows), want));
  cudl_tensor_destroy(rows);
}

// An operator's 4-D data tensors must share one layout; the refusal names
// both and writes nothing.
TEST_F(LayoutTest, MixedLayoutsAreRefused) {
  const std::vector<int64_t> xs = {2, 4, 6, 6};
  cudl_tensor *x = Nchw(xs, RandomValues(288, 15));
  cudl_tensor *x_last = As(x, CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
  const std::vector<float> sentinel(2 * 3 * 6 * 6, 7.0f);

  {  // convolution: x channels-last, the weight NCHW
    cudl_tensor *w = Nchw({3, 4, 3, 3}, RandomValues(108, 16));
    cudl_tensor *y = New({2, 3, 6, 6}, CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
    ASSERT_EQ(WriteF32(y, sentinel), CUDL_OK);
    cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
    d.pad_h = d.pad_w = 1;
    EXPECT_EQ(cudl_conv2d_forward(ctx_, &d, x_last, w, nullptr, y), CUDL_ERR_SHAPE);
    EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"nchw", "nhwc", "x", "w"}));
    EXPECT_TRUE(BitEqual(ReadF32(y), sentinel)) << "nothing written";
  }
  {  // pooling: x channels-last, y NCHW
    cudl_pool2d_desc d = {2, 2, 2, 2, 0, 0, 0, 0};
    cudl_tensor *y = New({2, 4, 3, 3});
    EXPECT_EQ(cudl_max_pool2d_forward(ctx_, &d, x_last, y), CUDL_ERR_SHAPE);
    EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"nchw", "nhwc"}));
    EXPECT_EQ(cudl_avg_pool2d_forward(ctx_, &d, x_last, y), CUDL_ERR_SHAPE);
  }
  {  // batch norm: x NCHW, y channels-last
    cudl_tensor *y = New(xs, CUDL_DTYPE_F32, CUDL_LAYOUT_NHWC);
    cudl_tensor *gamma = Make(ctx_, {4}, {1, 1, 1, 1}), *beta = Make(ctx_, {4});
    cudl_tensor *mean = Make(ctx_, {4}), *var = Make(ctx_, {4}, {1, 1, 1, 1});
    cudl_tensor *save_mean = Make(ctx_, {4}), *save_invstd = Make(ctx_, {4});
    EXPECT_EQ(cudl_batchnorm_forward_training(ctx_, x, gamma, beta, 0.1f, 1e-5f, mean, var, y,
                                              save_mean, save_invstd),
              CUDL_ERR_SHAPE);
    EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"nchw", "nhwc"}));
    EXPECT_TRUE(BitEqual(ReadF32(var), {1, 1, 1, 1})) << "running statistics untouched";
  }
  {  // an elementwise operator
    cudl_tensor *out = New(xs);
    EXPECT_EQ(cudl_add(ctx_, x, 1.0f, x_last, out), CUDL_ERR_SHAPE);
    EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"nchw", "nhwc"}));
  }
}

// ---------------------------------------------------------------------------
// Pooling: the same bits in either layout
// ---------------------------------------------------------------------------

struct PoolCase {
  int64_t n, c, h, w;
  cudl_pool2d_desc d;
};

cudl_pool2d_desc PoolDesc(int kh, int kw, int sh, int sw, int ph, int pw, int incl = 0,
                          int ceil = 0) {
  cudl_pool2d_desc d = {};
  d.ceil_mode = ceil;
  d.kernel_h = kh;
  d.kernel_w = kw;
  d.stride_h = sh;
  d.stride_w = sw;
  d.pad_h = ph;
  d.pad_w = pw;
  d.count_include_pad = incl;
  return d;
}

std::string Str(const PoolCase &p) {
  char buf[160];
  std::snprintf(buf, sizeof buf, "%lldx%lldx%lldx%lld k%dx%d s%dx%d p%dx%d%s%s",
                static_cast<long long>(p.n), static_cast<long long>(p.c),
                static_cast<long long>(p.h), static_cast<long long>(p.w), p.d.kernel_h,
                p.d.kernel_w, p.d.stride_h, p.d.stride_w, p.d.pad_h, p.d.pad_w,
                p.d.count_include_pad ? " incl" : "", p.d.ceil_mode ? " ceil" : "");
  return buf;
}

// Overlapping windows (which add up in backward), padding on either side,
// the divisor both ways, windows with gaps between them, 1x1, non-square;
// 1, 3 and 70 channels (more than one block of any power-of-two width).
// Windows that do not overlap (stride >= kernel: the CPU's channels-last
// max pooling writes each element of dx once, cpu_pooling_tiles.h) tiling
// the input exactly, with padding, with gaps, short of the input's last
// row and column and past them in ceil mode, and large enough to be split
// over threads.
std::vector<PoolCase> PoolCases() {
  std::vector<PoolCase> cases;
  for (int64_t c : {1, 3, 70}) {
    cases.push_back({2, c, 7, 13, PoolDesc(3, 3, 1, 1, 1, 1)});
    cases.push_back({2, c, 7, 13, PoolDesc(3, 3, 2, 2, 1, 1, 1)});
    cases.push_back({1, c, 8, 9, PoolDesc(2, 2, 1, 1, 0, 0)});
    cases.push_back({1, c, 11, 10, PoolDesc(3, 2, 2, 1, 1, 0)});
    cases.push_back({1, c, 6, 7, PoolDesc(5, 3, 2, 2, 2, 1, 1)});
    cases.push_back({1, c, 6, 7, PoolDesc(5, 3, 2, 2, 2, 1, 0)});
    cases.push_back({1, c, 8, 7, PoolDesc(2, 2, 3, 3, 0, 0)});
    cases.push_back({3, c, 4, 4, PoolDesc(1, 1, 1, 1, 0, 0)});
    cases.push_back({2, c, 16, 16, PoolDesc(3, 3, 2, 2, 1, 1)});  // ResNet's stem pooling
    cases.push_back({2, c, 8, 6, PoolDesc(2, 2, 2, 2, 0, 0)});
    cases.push_back({2, c, 7, 9, PoolDesc(2, 2, 2, 2, 1, 1)});
    cases.push_back({1, c, 10, 11, PoolDesc(2, 3, 3, 4, 1, 0)});
    cases.push_back({1, c, 9, 9, PoolDesc(2, 2, 2, 2, 0, 0)});
    cases.push_back({1, c, 9, 9, PoolDesc(2, 2, 2, 2, 0, 0, 0, 1)});
    cases.push_back({4, c, 16, 16, PoolDesc(2, 2, 2, 2, 0, 0)});
  }
  return cases;
}

// Forward and backward of max (is_max) or average pooling on x (any
// layout and dtype): y and dx, as NCHW f32 values.
struct PoolResult {
  std::vector<float> y, dx;
};

class PoolLayoutTest : public LayoutTest {
 protected:
  PoolResult Run(const PoolCase &p, bool is_max, cudl_tensor *x, cudl_tensor *dy_nchw32) {
    const cudl_dtype dtype = cudl_tensor_dtype(x);
    const cudl_layout layout = cudl_tensor_layout(x);
    const int64_t in_shape[4] = {p.n, p.c, p.h, p.w};
    int64_t out_shape[4];
    EXPECT_EQ(cudl_pool2d_output_shape(&p.d, in_shape, out_shape), CUDL_OK);
    cudl_tensor *y = New({out_shape, out_shape + 4}, dtype, layout);
    // NaN in dx beforehand: an element backward does not write shows.
    const std::vector<int64_t> in = {p.n, p.c, p.h, p.w};
    const std::vector<float> nans(static_cast<size_t>(p.n * p.c * p.h * p.w),
                                  std::numeric_limits<float>::quiet_NaN());
    cudl_tensor *dx = As(Nchw(in, nans), dtype, layout);
    cudl_tensor *dy = As(dy_nchw32, dtype, layout);
    PoolResult r;
    if (is_max) {
      EXPECT_EQ(cudl_max_pool2d_forward(ctx_, &p.d, x, y), CUDL_OK) << LastError(ctx_);
      EXPECT_EQ(cudl_max_pool2d_backward(ctx_, &p.d, x, dy, dx), CUDL_OK) << LastError(ctx_);
    } else {
      EXPECT_EQ(cudl_avg_pool2d_forward(ctx_, &p.d, x, y), CUDL_OK) << LastError(ctx_);
      EXPECT_EQ(cudl_avg_pool2d_backward(ctx_, &p.d, dy, dx), CUDL_OK) << LastError(ctx_);
    }
    EXPECT_EQ(cudl_tensor_layout(y), layout);
    r.y = Values(y);
    r.dx = Values(dx);
    return r;
  }
};

TEST_F(PoolLayoutTest, MaxAndAveragePoolingGiveTheSameBits) {
  uint32_t seed = 100;
  for (const PoolCase &p : PoolCases())
    for (bool is_max : {true, false}) {
      const int64_t in_shape[4] = {p.n, p.c, p.h, p.w};
      int64_t out_shape[4];
      ASSERT_EQ(cudl_pool2d_output_shape(&p.d, in_shape, out_shape), CUDL_OK);
      const size_t nx = static_cast<size_t>(p.n * p.c * p.h * p.w);
      const size_t ny = static_cast<size_t>(out_shape[0] * out_shape[1] * out_shape[2] * out_shape[3]);
      // Max pooling on ties and NaNs (the first maximum, a NaN winning);
      // average pooling on values whose sums round.
      cudl_tensor *x32 = Nchw({p.n, p.c, p.h, p.w},
                              is_max ? TiedValues(nx, seed) : RandomValues(nx, seed, -3, 5));
      cudl_tensor *dy32 = Nchw({out_shape, out_shape + 4}, RandomValues(ny, seed + 1));
      seed += 2;
      for (cudl_dtype dtype : {CUDL_DTYPE_F32, CUDL_DTYPE_BF16, CUDL_DTYPE_F16}) {
        SCOPED_TRACE(std::string(is_max ? "max " : "avg ") + Str(p) + " " +
                     cudl_dtype_name(dtype));
        const PoolResult nchw = Run(p, is_max, As(x32, dtype, CUDL_LAYOUT_NCHW), dy32);
        const PoolResult nhwc = Run(p, is_max, As(x32, dtype, CUDL_LAYOUT_NHWC), dy32);
        EXPECT_TRUE(BitEqual(nhwc.y, nchw.y)) << "forward";
        EXPECT_TRUE(BitEqual(nhwc.dx, nchw.dx)) << "backward";
      }
    }
}

TEST_F(LayoutTest, GlobalAveragePoolingGivesTheSameBits) {
  // One pixel, planes shorter and longer than a sum's lanes, 70 channels.
  const std::vector<std::vector<int64_t>> shapes = {
      {3, 5, 1, 1}, {2, 3, 2, 3}, {2, 70, 7, 7}, {1, 16, 15, 17}, {4, 1, 8, 8}};
  uint32_t seed = 200;
  for (const std::vector<int64_t> &s : shapes) {
    const size_t nx = static_cast<size_t>(s[0] * s[1] * s[2] * s[3]);
    const std::vector<int64_t> ys = {s[0], s[1], 1, 1};
    cudl_tensor *x32 = Nchw(s, RandomValues(nx, seed++, -2, 6));
    cudl_tensor *dy32 = Nchw(ys, RandomValues(static_cast<size_t>(s[0] * s[1]), seed++));
    for (cudl_dtype dtype : {CUDL_DTYPE_F32, CUDL_DTYPE_BF16, CUDL_DTYPE_F16}) {
      SCOPED_TRACE(std::to_string(s[0]) + "x" + std::to_string(s[1]) + "x" +
                   std::to_string(s[2]) + "x" + std::to_string(s[3]) + " " +
                   cudl_dtype_name(dtype));
      std::vector<float> y[2], dx[2];
      int i = 0;
      for (cudl_layout layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
        cudl_tensor *x = As(x32, dtype, layout), *dy = As(dy32, dtype, layout);
        cudl_tensor *yt = New(ys, dtype, layout), *dxt = New(s, dtype, layout);
        ASSERT_EQ(cudl_global_avg_pool_forward(ctx_, x, yt), CUDL_OK) << LastError(ctx_);
        ASSERT_EQ(cudl_global_avg_pool_backward(ctx_, dy, dxt), CUDL_OK) << LastError(ctx_);
        y[i] = Values(yt);
        dx[i] = Values(dxt);
        ++i;
      }
      EXPECT_TRUE(BitEqual(y[1], y[0])) << "forward";
      EXPECT_TRUE(BitEqual(dx[1], dx[0])) << "backward";
      // And the mean is a mean (the NCHW operator is tested in
      // test_pooling; this catches both layouts going wrong together).
      if (dtype == CUDL_DTYPE_F32) {
        const std::vector<float> xv = ReadF32(x32);
        const int64_t plane = s[2] * s[3];
        for (int64_t k = 0; k < s[0] * s[1]; ++k) {
          double sum = 0;
          for (int64_t j = 0; j < plane; ++j) sum += xv[static_cast<size_t>(k * plane + j)];
          EXPECT_NEAR(y[1][static_cast<size_t>(k)], sum / static_cast<double>(plane),
                      4 * kEps * 6) << "mean " << k;
        }
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Convolution: both layouts against float64
// ---------------------------------------------------------------------------

cudl_conv2d_desc ConvDesc(int sh, int sw, int ph, int pw, int dh = 1, int dw = 1, int groups = 1) {
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

struct ConvCase {
  int64_t n, c, h, w, k, r, s;
  cudl_conv2d_desc d;
  int64_t cg() const { return c / d.groups; }
  int64_t oh() const { return (h + 2 * d.pad_h - d.dilation_h * (r - 1) - 1) / d.stride_h + 1; }
  int64_t ow() const { return (w + 2 * d.pad_w - d.dilation_w * (s - 1) - 1) / d.stride_w + 1; }
  std::vector<int64_t> x_shape() const { return {n, c, h, w}; }
  std::vector<int64_t> w_shape() const { return {k, cg(), r, s}; }
  std::vector<int64_t> y_shape() const { return {n, k, oh(), ow()}; }
  std::string str() const {
    char buf[200];
    std::snprintf(buf, sizeof buf, "x %lldx%lldx%lldx%lld w %lldx%lldx%lldx%lld s%dx%d p%dx%d d%dx%d g%d",
                  static_cast<long long>(n), static_cast<long long>(c), static_cast<long long>(h),
                  static_cast<long long>(w), static_cast<long long>(k),
                  static_cast<long long>(cg()), static_cast<long long>(r),
                  static_cast<long long>(s), d.stride_h, d.stride_w, d.pad_h, d.pad_w,
                  d.dilation_h, d.dilation_w, d.groups);
    return buf;
  }
};

std::vector<ConvCase> ConvCases() {
  return {
      {2, 3, 9, 11, 4, 3, 3, ConvDesc(1, 1, 1, 1)},           // 3x3 "same"
      {2, 8, 10, 9, 6, 3, 3, ConvDesc(2, 2, 1, 1)},           // stride 2
      {2, 3, 7, 13, 7, 5, 3, ConvDesc(2, 3, 2, 1)},           // 5x3, stride 2x3, pad 2x1
      {1, 4, 12, 9, 6, 3, 3, ConvDesc(1, 1, 2, 2, 2, 2)},     // dilation 2
      {2, 6, 9, 11, 4, 3, 3, ConvDesc(1, 1, 1, 1, 1, 1, 2)},  // groups 2
      {2, 16, 8, 8, 32, 1, 1, ConvDesc(1, 1, 0, 0)},          // 1x1
      {3, 5, 13, 7, 3, 1, 1, ConvDesc(2, 2, 0, 0)},           // 1x1 stride 2
      {1, 7, 13, 7, 7, 3, 3, ConvDesc(2, 2, 1, 1, 1, 1, 7)},  // depthwise, stride 2
      {2, 16, 8, 8, 16, 3, 3, ConvDesc(1, 1, 1, 1)},          // ResNet-20's 3x3
  };
}

// The float64 convolution of the header's formula, its two gradients for
// dy, the bias gradient, and for each result sum |terms|, the scale of the
// rounding errors a float sum of those terms makes (see test_conv.cpp).
struct ConvReference {
  std::vector<double> y, y_mag, dx, dx_mag, dw, dw_mag, db, db_mag;
  std::vector<double> y_conv;  // y without the bias
};

ConvReference ConvCompute(const ConvCase &t, const std::vector<float> &x, const std::vector<float> &w,
                          const std::vector<float> &bias, const std::vector<float> &dy) {
  ConvReference r;
  const int64_t oh = t.oh(), ow = t.ow(), cg = t.cg(), kg = t.k / t.d.groups;
  r.y.assign(static_cast<size_t>(t.n * t.k * oh * ow), 0.0);
  r.y_mag = r.y;
  r.dx.assign(static_cast<size_t>(t.n * t.c * t.h * t.w), 0.0);
  r.dx_mag = r.dx;
  r.dw.assign(static_cast<size_t>(t.k * cg * t.r * t.s), 0.0);
  r.dw_mag = r.dw;
  r.db.assign(static_cast<size_t>(t.k), 0.0);
  r.db_mag = r.db;
  r.y_conv = r.y;
  for (int64_t n = 0; n < t.n; ++n)
    for (int64_t k = 0; k < t.k; ++k)
      for (int64_t p = 0; p < oh; ++p)
        for (int64_t q = 0; q < ow; ++q) {
          const size_t yi = static_cast<size_t>(((n * t.k + k) * oh + p) * ow + q);
          const double g = dy[yi];
          r.y[yi] = bias[static_cast<size_t>(k)];
          r.y_mag[yi] = std::fabs(r.y[yi]);
          r.db[static_cast<size_t>(k)] += g;
          r.db_mag[static_cast<size_t>(k)] += std::fabs(g);
          for (int64_t cc = 0; cc < cg; ++cc) {
            const int64_t c = k / kg * cg + cc;
            for (int64_t i = 0; i < t.r; ++i)
              for (int64_t j = 0; j < t.s; ++j) {
                const int64_t hh = p * t.d.stride_h - t.d.pad_h + i * t.d.dilation_h;
                const int64_t ww = q * t.d.stride_w - t.d.pad_w + j * t.d.dilation_w;
                if (hh < 0 || hh >= t.h || ww < 0 || ww >= t.w) continue;
                const size_t xi = static_cast<size_t>(((n * t.c + c) * t.h + hh) * t.w + ww);
                const size_t wi = static_cast<size_t>(((k * cg + cc) * t.r + i) * t.s + j);
                const double xv = x[xi], wv = w[wi];
                r.y[yi] += xv * wv;
                r.y_conv[yi] += xv * wv;
                r.y_mag[yi] += std::fabs(xv * wv);
                r.dx[xi] += wv * g;
                r.dx_mag[xi] += std::fabs(wv * g);
                r.dw[wi] += xv * g;
                r.dw_mag[wi] += std::fabs(xv * g);
              }
          }
        }
  return r;
}

::testing::AssertionResult Within(const std::vector<float> &got, const std::vector<double> &want,
                                  const std::function<double(size_t)> &bound) {
  if (got.size() != want.size())
    return ::testing::AssertionFailure() << "sizes differ: " << got.size() << " vs " << want.size();
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < got.size(); ++i) {
    const double err = std::fabs(static_cast<double>(got[i]) - want[i]);
    if (!(err <= bound(i))) {
      if (bad < 5) {
        char line[160];
        std::snprintf(line, sizeof line, "\n  [%zu] got %.9g, want %.9g (error %.3g, bound %.3g)", i,
                      static_cast<double>(got[i]), want[i], err, bound(i));
        first += line;
      }
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << bad << " of " << got.size() << " out of bounds" << first;
}

// The f32 bound of test_conv.cpp: |got - float64| <= 4 * FLT_EPSILON *
// sum |terms| (about 8 standard deviations of the rounding error of a
// random-sign sum; an indexing bug moves a result by a whole term, at least
// 5 times more for these shapes). For 16 bits, plus the one rounding to the
// dtype: + u * (|want| + that) + tiny (test_conv.cpp's 16-bit bound).
constexpr double kConvBound = 4;

::testing::AssertionResult ConvWithin(const Lowp *lp, const std::vector<float> &got,
                                      const std::vector<double> &want,
                                      const std::vector<double> &mag) {
  return Within(got, want, [&](size_t i) {
    const double sum_error = kConvBound * kEps * mag[i];
    if (lp == nullptr) return sum_error;
    return sum_error + lp->unit * (std::fabs(want[i]) + sum_error) + lp->tiny;
  });
}

// The forward with a bias: in 16 bits cudl_conv2d_forward rounds twice, the
// convolution's output and then its sum with the bias (a second operator),
// so the bound has a rounding of each.
::testing::AssertionResult ConvWithBiasWithin(const Lowp *lp, const std::vector<float> &got,
                                              const ConvReference &ref) {
  if (lp == nullptr) return ConvWithin(lp, got, ref.y, ref.y_mag);
  return Within(got, ref.y, [&](size_t i) {
    const double sum_error = kConvBound * kEps * ref.y_mag[i];
    const double first = lp->unit * (std::fabs(ref.y_conv[i]) + sum_error) + lp->tiny;
    return sum_error + first + lp->unit * (std::fabs(ref.y[i]) + sum_error + first) + lp->tiny;
  });
}

TEST_F(LayoutTest, ConvolutionMatchesFloat64InBothLayouts) {
  uint32_t seed = 300;
  for (const ConvCase &t : ConvCases()) {
    const size_t nx = static_cast<size_t>(t.n * t.c * t.h * t.w);
    const size_t nw = static_cast<size_t>(t.k * t.cg() * t.r * t.s);
    const size_t ny = static_cast<size_t>(t.n * t.k * t.oh() * t.ow());
    const std::vector<float> x0 = RandomValues(nx, seed), w0 = RandomValues(nw, seed + 1),
                             b0 = RandomValues(static_cast<size_t>(t.k), seed + 2),
                             dy0 = RandomValues(ny, seed + 3);
    seed += 4;
    for (cudl_dtype dtype : {CUDL_DTYPE_F32, CUDL_DTYPE_BF16, CUDL_DTYPE_F16}) {
      const Lowp *lp = dtype == CUDL_DTYPE_BF16 ? &kBf16 : dtype == CUDL_DTYPE_F16 ? &kF16 : nullptr;
      // The reference sees the inputs as the dtype holds them.
      std::vector<float> x = x0, w = w0, b = b0, dy = dy0;
      if (lp != nullptr)
        for (std::vector<float> *v : {&x, &w, &b, &dy}) *v = lp->Widen(lp->Narrow(*v));
      const ConvReference ref = ConvCompute(t, x, w, b, dy);
      cudl_tensor *x32 = Nchw(t.x_shape(), x), *w32 = Nchw(t.w_shape(), w);
      cudl_tensor *b32 = Make(ctx_, {t.k}, b), *dy32 = Nchw(t.y_shape(), dy);
      std::vector<float> results[2][4];
      int li = 0;
      for (cudl_layout layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
        SCOPED_TRACE(t.str() + " " + cudl_dtype_name(dtype) + " " + cudl_layout_name(layout));
        cudl_tensor *xt = As(x32, dtype, layout), *wt = As(w32, dtype, layout);
        cudl_tensor *dyt = As(dy32, dtype, layout);
        cudl_tensor *bt = New({t.k}, dtype);
        ASSERT_EQ(cudl_tensor_convert(bt, b32), CUDL_OK);
        cudl_tensor *y = New(t.y_shape(), dtype, layout), *dx = New(t.x_shape(), dtype, layout);
        cudl_tensor *dw = New(t.w_shape(), dtype, layout), *db = New({t.k}, dtype);
        ASSERT_EQ(cudl_conv2d_forward(ctx_, &t.d, xt, wt, bt, y), CUDL_OK) << LastError(ctx_);
        ASSERT_EQ(cudl_conv2d_backward_data(ctx_, &t.d, wt, dyt, dx), CUDL_OK) << LastError(ctx_);
        ASSERT_EQ(cudl_conv2d_backward_filter(ctx_, &t.d, xt, dyt, dw), CUDL_OK)
            << LastError(ctx_);
        ASSERT_EQ(cudl_conv2d_backward_bias(ctx_, dyt, db), CUDL_OK) << LastError(ctx_);
        results[li][0] = Values(y);
        results[li][1] = Values(dx);
        results[li][2] = Values(dw);
        results[li][3] = Values(db);
        EXPECT_TRUE(ConvWithBiasWithin(lp, results[li][0], ref)) << "forward";
        EXPECT_TRUE(ConvWithin(lp, results[li][1], ref.dx, ref.dx_mag)) << "backward data";
        EXPECT_TRUE(ConvWithin(lp, results[li][2], ref.dw, ref.dw_mag)) << "backward filter";
        EXPECT_TRUE(ConvWithin(lp, results[li][3], ref.db, ref.db_mag)) << "backward bias";
        ++li;
      }
    }
  }
}

// ---------------------------------------------------------------------------
// Batch norm and PReLU
// ---------------------------------------------------------------------------

// Both layouts' batch norm: statistics over N, H, W per channel, summed in
// double in another order, so each float result may differ by a rounding
// or two of its own terms. The bounds below are 16 FLT_EPSILON of the
// magnitude of what each result is made of: far below what a channel mixed
// up with another, or an element left out, would move it by.
TEST_F(LayoutTest, BatchNormMatchesNchw) {
  const std::vector<std::vector<int64_t>> shapes = {
      {4, 5, 6, 7}, {2, 70, 3, 3}, {8, 3, 1, 1}, {1, 33, 5, 4}};
  uint32_t seed = 400;
  for (const std::vector<int64_t> &s : shapes) {
    const int64_t c = s[1], plane = s[2] * s[3];
    const size_t nx = static_cast<size_t>(s[0] * c * plane);
    const double m = static_cast<double>(s[0] * plane);
    // Channels with means away from zero, as activations have.
    std::vector<float> xv = RandomValues(nx, seed, -2, 2);
    for (size_t i = 0; i < nx; ++i) xv[i] += static_cast<float>(i / plane % c) * 0.5f;
    const std::vector<float> dyv = RandomValues(nx, seed + 1);
    const std::vector<float> gamma_v = RandomValues(static_cast<size_t>(c), seed + 2, 0.5f, 2.0f);
    const std::vector<float> beta_v = RandomValues(static_cast<size_t>(c), seed + 3);
    const std::vector<float> rmean_v = RandomValues(static_cast<size_t>(c), seed + 4);
    const std::vector<float> rvar_v = RandomValues(static_cast<size_t>(c), seed + 5, 0.5f, 2.0f);
    seed += 6;
    cudl_tensor *x32 = Nchw(s, xv), *dy32 = Nchw(s, dyv);
    cudl_tensor *gamma = Make(ctx_, {c}, gamma_v), *beta = Make(ctx_, {c}, beta_v);

    struct Out {
      std::vector<float> y, mean, invstd, rmean, rvar, dx, dgamma, dbeta, y_inf;
    } out[2];
    int li = 0;
    for (cudl_layout layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
      SCOPED_TRACE(std::string(cudl_layout_name(layout)) + " " + std::to_string(c) + " channels");
      cudl_tensor *x = As(x32, CUDL_DTYPE_F32, layout), *dy = As(dy32, CUDL_DTYPE_F32, layout);
      cudl_tensor *y = New(s, CUDL_DTYPE_F32, layout), *dx = New(s, CUDL_DTYPE_F32, layout);
      cudl_tensor *y_inf = New(s, CUDL_DTYPE_F32, layout);
      cudl_tensor *rmean = Make(ctx_, {c}, rmean_v), *rvar = Make(ctx_, {c}, rvar_v);
      cudl_tensor *save_mean = Make(ctx_, {c}), *save_invstd = Make(ctx_, {c});
      cudl_tensor *dgamma = Make(ctx_, {c}), *dbeta = Make(ctx_, {c});
      ASSERT_EQ(cudl_batchnorm_forward_training(ctx_, x, gamma, beta, 0.1f, 1e-5f, rmean, rvar, y,
                                                save_mean, save_invstd),
                CUDL_OK)
          << LastError(ctx_);
      ASSERT_EQ(cudl_batchnorm_backward(ctx_, x, dy, gamma, save_mean, save_invstd, dx, dgamma,
                                        dbeta),
                CUDL_OK)
          << LastError(ctx_);
      // Inference with the running statistics before training updated
      // them (the updated ones differ by a rounding between the layouts).
      cudl_tensor *rmean0 = Make(ctx_, {c}, rmean_v), *rvar0 = Make(ctx_, {c}, rvar_v);
      ASSERT_EQ(cudl_batchnorm_forward_inference(ctx_, x, gamma, beta, rmean0, rvar0, 1e-5f, y_inf),
                CUDL_OK)
          << LastError(ctx_);
      out[li] = {Values(y),      ReadF32(save_mean), ReadF32(save_invstd),
                 ReadF32(rmean), ReadF32(rvar),      Values(dx),
                 ReadF32(dgamma), ReadF32(dbeta),    Values(y_inf)};
      ++li;
    }
    const Out &a = out[0], &b = out[1];
    // Per channel: sum |x|, sum |dy|, sum |dy * xhat| (the scales of the
    // sums), from the NCHW statistics.
    std::vector<double> sum_abs_x(static_cast<size_t>(c)), sum_abs_dy(static_cast<size_t>(c)),
        sum_abs_dyx(static_cast<size_t>(c));
    for (size_t i = 0; i < nx; ++i) {
      const size_t ch = i / static_cast<size_t>(plane) % static_cast<size_t>(c);
      const double xhat = (xv[i] - a.mean[ch]) * static_cast<double>(a.invstd[ch]);
      sum_abs_x[ch] += std::fabs(xv[i]);
      sum_abs_dy[ch] += std::fabs(dyv[i]);
      sum_abs_dyx[ch] += std::fabs(dyv[i] * xhat);
    }
    const double k = 16 * kEps;
    for (int64_t ch = 0; ch < c; ++ch) {
      const size_t j = static_cast<size_t>(ch);
      EXPECT_NEAR(b.mean[j], a.mean[j], k * sum_abs_x[j] / m) << "save_mean " << ch;
      EXPECT_NEAR(b.invstd[j], a.invstd[j], k * a.invstd[j]) << "save_invstd " << ch;
      EXPECT_NEAR(b.rmean[j], a.rmean[j], k * (std::fabs(a.rmean[j]) + sum_abs_x[j] / m))
          << "running_mean " << ch;
      EXPECT_NEAR(b.rvar[j], a.rvar[j], k * std::fabs(a.rvar[j])) << "running_var " << ch;
      EXPECT_NEAR(b.dbeta[j], a.dbeta[j], k * sum_abs_dy[j]) << "dbeta " << ch;
      EXPECT_NEAR(b.dgamma[j], a.dgamma[j], k * sum_abs_dyx[j]) << "dgamma " << ch;
    }
    EXPECT_TRUE(BitEqual(b.y_inf, a.y_inf)) << "inference is elementwise: the same bits";
    size_t bad_y = 0, bad_dx = 0;
    for (size_t i = 0; i < nx; ++i) {
      const size_t ch = i / static_cast<size_t>(plane) % static_cast<size_t>(c);
      const double g = gamma_v[ch], inv = a.invstd[ch];
      // y = gamma (x - mean) invstd + beta: the scale of its terms.
      const double y_scale = g * (std::fabs(xv[i]) + std::fabs(a.mean[ch])) * inv +
                             std::fabs(beta_v[ch]);
      bad_y += !(std::fabs(b.y[i] - a.y[i]) <= k * y_scale);
      // dx = gamma invstd (dy - sum dy / m - xhat sum (dy xhat) / m).
      const double xhat = std::fabs((xv[i] - a.mean[ch]) * inv);
      const double dx_scale =
          g * inv * (std::fabs(dyv[i]) + sum_abs_dy[ch] / m + xhat * sum_abs_dyx[ch] / m);
      bad_dx += !(std::fabs(b.dx[i] - a.dx[i]) <= k * dx_scale);
    }
    EXPECT_EQ(bad_y, 0u) << "training forward outputs out of bounds";
    EXPECT_EQ(bad_dx, 0u) << "backward dx out of bounds";
  }
}

// PReLU with one slope per channel: y and dx elementwise (the same bits);
// the slope gradient a double sum rounded once, in another order.
TEST_F(LayoutTest, PreluPerChannelMatchesNchw) {
  const std::vector<int64_t> s = {3, 37, 5, 6};
  const size_t nx = static_cast<size_t>(3 * 37 * 5 * 6);
  const std::vector<float> xv = RandomValues(nx, 500), dyv = RandomValues(nx, 501);
  const std::vector<float> slope_v = RandomValues(37, 502, 0.0f, 0.5f);
  cudl_tensor *x32 = Nchw(s, xv), *dy32 = Nchw(s, dyv);
  cudl_tensor *slope = Make(ctx_, {37}, slope_v);
  std::vector<float> y[2], dx[2], ds[2];
  int li = 0;
  for (cudl_layout layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
    cudl_tensor *x = As(x32, CUDL_DTYPE_F32, layout), *dy = As(dy32, CUDL_DTYPE_F32, layout);
    cudl_tensor *yt = New(s, CUDL_DTYPE_F32, layout), *dxt = New(s, CUDL_DTYPE_F32, layout);
    cudl_tensor *dslope = Make(ctx_, {37});
    ASSERT_EQ(cudl_prelu_forward(ctx_, x, slope, yt), CUDL_OK) << LastError(ctx_);
    ASSERT_EQ(cudl_prelu_backward(ctx_, x, slope, dy, dxt, dslope), CUDL_OK) << LastError(ctx_);
    y[li] = Values(yt);
    dx[li] = Values(dxt);
    ds[li] = ReadF32(dslope);
    ++li;
  }
  EXPECT_TRUE(BitEqual(y[1], y[0])) << "forward";
  EXPECT_TRUE(BitEqual(dx[1], dx[0])) << "backward dx";
  std::vector<double> mag(37, 0.0);
  for (size_t i = 0; i < nx; ++i)
    if (!(xv[i] > 0)) mag[i / 30 % 37] += std::fabs(static_cast<double>(xv[i]) * dyv[i]);
  for (size_t ch = 0; ch < 37; ++ch)
    EXPECT_NEAR(ds[1][ch], ds[0][ch], 2 * kEps * mag[ch]) << "dslope " << ch;
}

}  // namespace
