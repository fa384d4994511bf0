// test_inference.cpp - the inference compile (cudl_model_compile_inference)
// against the training compile in evaluation mode, from the same
// parameters: every zoo model and a model with a node of every kind, at
// several batch sizes up to the compiled one; its memory report
// (cudl_model_memory_usage) against the training compile's; and the calls
// an inference model refuses.
//
// Tolerance: both compiles compute in f32 from the same weights; folding a
// batch norm into the convolution before it changes the rounding only
// (gamma / sqrt(var + eps) multiplies the weight before the sum instead of
// the sum after it; the bias is added once instead of twice). Each differs
// from the exact value by a few float eps times the magnitude of the sum,
// and the networks here are at most 20 layers deep, so errors relative to
// the output's scale (its largest magnitude) stay below 1e-5; a wrong fold
// (a missing gamma, the mean subtracted twice, a wrong channel) or a reused
// buffer still in use changes the outputs by their own size.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

using namespace cudl_test;

namespace {

using Builder = cudl_status (*)(cudl_context *, cudl_model **);

cudl_status BuildMlp(cudl_context *ctx, cudl_model **out) {
  const int64_t input[3] = {1, 8, 8};
  const int64_t widths[2] = {32, 16};
  return cudl_zoo_mlp(ctx, 3, input, 2, widths, CUDL_ACT_RELU, 0.0f, 10,
                      out);
}
cudl_status BuildSmallCnn(cudl_context *ctx, cudl_model **out) {
  return cudl_zoo_small_cnn(ctx, 3, 16, 16, 10, 0.5f, out);
}
cudl_status BuildResnet8(cudl_context *ctx, cudl_model **out) {
  return cudl_zoo_resnet(ctx, 8, 0, 3, 16, 16, 10, out);
}
cudl_status BuildResnet20(cudl_context *ctx, cudl_model **out) {
  return cudl_zoo_resnet(ctx, 20, 0, 3, 32, 32, 10, out);
}
cudl_status BuildPlain8(cudl_context *ctx, cudl_model **out) {
  return cudl_zoo_resnet(ctx, 8, 1, 1, 12, 12, 10, out);
}

// A node of every kind: a convolution with a bias and its batch norm
// (folded), a convolution read by a batch norm and a residual add (not
// folded: its own output is still needed), a linear layer and its batch
// norm (folded, per feature), every activation, PReLU, RReLU, dropout, both
// poolings, global average pooling, concatenation, reshape, flatten.
cudl_status BuildEveryKind(cudl_context *ctx, cudl_model **out) {
  const int64_t input[3] = {3, 10, 10};
  cudl_model *m = nullptr;
  cudl_conv2d_desc conv = {1, 1, 1, 1, 1, 1, 1};
  cudl_pool2d_desc pool;
  std::memset(&pool, 0, sizeof pool);
  pool.kernel_h = pool.kernel_w = pool.stride_h = pool.stride_w = 2;
  int c1, b1, r1, c2, b2, sum, pr, rr, dr, mp, ap, cat, el, rs, gap, fl, l1,
      lb, th, sg, lk, l2;
  cudl_status s = cudl_model_create(ctx, 3, input, &m);
  auto ok = [&](cudl_status st) {
    if (s == CUDL_OK) s = st;
    return s == CUDL_OK;
  };
  ok(cudl_model_add_conv2d(m, 0, "c1", 6, 3, 3, &conv, 1, &c1));
  ok(cudl_model_add_batchnorm(m, c1, "b1", 0.1f, 1e-5f, &b1));
  ok(cudl_model_add_activation(m, b1, CUDL_ACT_RELU, 0.0f, &r1));
  ok(cudl_model_add_conv2d(m, r1, "c2", 6, 3, 3, &conv, 0, &c2));
  ok(cudl_model_add_batchnorm(m, c2, "b2", 0.1f, 1e-3f, &b2));
  ok(cudl_model_add_add(m, b2, c2, &sum));
  ok(cudl_model_add_prelu(m, sum, "pr", 1, 0.25f, &pr));
  ok(cudl_model_add_rrelu(m, pr, 0.1f, 0.3f, &rr));
  ok(cudl_model_add_dropout(m, rr, 0.3f, &dr));
  ok(cudl_model_add_pool2d(m, dr, 1, &pool, &mp));
  ok(cudl_model_add_pool2d(m, dr, 0, &pool, &ap));
  {
    const int parts[3] = {mp, ap, mp};
    ok(cudl_model_add_concat(m, 3, parts, &cat));
  }
  ok(cudl_model_add_activation(m, cat, CUDL_ACT_ELU, 1.0f, &el));
  {
    const int64_t shape[3] = {9, 10, 5};
    ok(cudl_model_add_reshape(m, el, 3, shape, &rs));
  }
  ok(cudl_model_add_global_avg_pool(m, rs, &gap));
  ok(cudl_model_add_flatten(m, el, &fl));
  ok(cudl_model_add_linear(m, fl, "l1", 12, 1, &l1));
  ok(cudl_model_add_batchnorm(m, l1, "lb", 0.1f, 1e-5f, &lb));
  ok(cudl_model_add_activation(m, lb, CUDL_ACT_TANH, 0.0f, &th));
  ok(cudl_model_add_activation(m, th, CUDL_ACT_SIGMOID, 0.0f, &sg));
  ok(cudl_model_add_activation(m, sg, CUDL_ACT_LEAKY_RELU, 0.05f, &lk));
  {
    int gf, both;
    ok(cudl_model_add_flatten(m, gap, &gf));
    const int joined[2] = {lk, gf};
    ok(cudl_model_add_concat(m, 2, joined, &both));
    ok(cudl_model_add_linear(m, both, "l2", 5, 1, &l2));
  }
  ok(cudl_model_set_output(m, l2, CUDL_MODEL_LOSS_CROSS_ENTROPY));
  if (s != CUDL_OK) {
    cudl_model_destroy(m);
    return s;
  }
  *out = m;
  return CUDL_OK;
}

// Every case of a convolution's epilogue (cudl_conv2d_forward_fused in the
// convolution's own pass): ReLU after a convolution with a bias and no
// batch norm; batch norm, residual addition and ReLU; a shortcut
// convolution built after the main one (it takes the addition and the leaky
// ReLU, the main one nothing); a convolution read twice (nothing fused); an
// addition read twice (fused, its ReLU not); and an image-shaped output.
cudl_status BuildEpilogues(cudl_context *ctx, cudl_model **out) {
  const int64_t input[3] = {4, 6, 6};
  cudl_model *m = nullptr;
  const cudl_conv2d_desc same = {1, 1, 1, 1, 1, 1, 1}, point = {1, 1, 0, 0, 1, 1, 1};
  int c1, r1, c2, b2, s2, r2, c3, b3, c4, b4, s3, lk, c5, t5, r5, u5, c6, b6, s6, e6, r6, f6, c7,
      r7;
  cudl_status s = cudl_model_create(ctx, 3, input, &m);
  auto ok = [&](cudl_status st) {
    if (s == CUDL_OK) s = st;
  };
  ok(cudl_model_add_conv2d(m, 0, "c1", 5, 3, 3, &same, 1, &c1));
  ok(cudl_model_add_activation(m, c1, CUDL_ACT_RELU, 0.0f, &r1));
  ok(cudl_model_add_conv2d(m, r1, "c2", 5, 3, 3, &same, 0, &c2));
  ok(cudl_model_add_batchnorm(m, c2, "b2", 0.1f, 1e-5f, &b2));
  ok(cudl_model_add_add(m, b2, r1, &s2));
  ok(cudl_model_add_activation(m, s2, CUDL_ACT_RELU, 0.0f, &r2));
  ok(cudl_model_add_conv2d(m, r2, "c3", 5, 3, 3, &same, 0, &c3));
  ok(cudl_model_add_batchnorm(m, c3, "b3", 0.1f, 1e-5f, &b3));
  ok(cudl_model_add_conv2d(m, r2, "c4", 5, 1, 1, &point, 0, &c4));
  ok(cudl_model_add_batchnorm(m, c4, "b4", 0.1f, 1e-5f, &b4));
  ok(cudl_model_add_add(m, b3, b4, &s3));
  ok(cudl_model_add_activation(m, s3, CUDL_ACT_LEAKY_RELU, 0.1f, &lk));
  // Read twice, the ReLU last (which the single-reader rule must see).
  ok(cudl_model_add_conv2d(m, lk, "c5", 5, 3, 3, &same, 1, &c5));
  ok(cudl_model_add_add(m, lk, c5, &t5));
  ok(cudl_model_add_activation(m, c5, CUDL_ACT_RELU, 0.0f, &r5));
  ok(cudl_model_add_add(m, t5, r5, &u5));
  ok(cudl_model_add_conv2d(m, u5, "c6", 5, 3, 3, &same, 0, &c6));
  ok(cudl_model_add_batchnorm(m, c6, "b6", 0.1f, 1e-5f, &b6));
  ok(cudl_model_add_add(m, u5, b6, &s6));
  ok(cudl_model_add_add(m, s6, u5, &e6));
  ok(cudl_model_add_activation(m, s6, CUDL_ACT_RELU, 0.0f, &r6));
  ok(cudl_model_add_add(m, e6, r6, &f6));
  ok(cudl_model_add_conv2d(m, f6, "c7", 3, 3, 3, &same, 1, &c7));
  ok(cudl_model_add_activation(m, c7, CUDL_ACT_RELU, 0.0f, &r7));
  ok(cudl_model_set_output(m, r7, CUDL_MODEL_LOSS_MSE));
  if (s != CUDL_OK) {
    cudl_model_destroy(m);
    return s;
  }
  *out = m;
  return CUDL_OK;
}

// Uniform values in [lo, hi) from a fixed linear congruential sequence.
void FillUniform(cudl_tensor *t, uint32_t seed, float lo, float hi) {
  std::vector<float> v(static_cast<size_t>(cudl_tensor_numel(t)));
  uint32_t state = seed * 2654435761u + 1u;
  for (float &x : v) {
    state = state * 1664525u + 1013904223u;
    x = lo + (hi - lo) * static_cast<float>(state >> 8) / 16777216.0f;
  }
  ASSERT_EQ(cudl_tensor_copy_from_host(t, v.data(), v.size() * sizeof(float)),
            CUDL_OK);
}

// Initialised weights, and batch-norm parameters and statistics far from
// their identity values, so that folding them matters.
void Randomise(cudl_model *m) {
  ASSERT_EQ(cudl_model_init(m, CUDL_INIT_PYTORCH_DEFAULT), CUDL_OK);
  for (int i = 0; i < cudl_model_param_count(m); ++i) {
    const std::string name = cudl_model_param_name(m, i, nullptr);
    cudl_tensor *t = cudl_model_param(m, name.c_str());
    auto ends = [&](const char *suffix) {
      const std::string s(suffix);
      return name.size() > s.size() &&
             name.compare(name.size() - s.size(), s.size(), s) == 0;
    };
    const bool bn = cudl_model_param(
                        m, (name.substr(0, name.rfind('.')) + ".running_var")
                               .c_str()) != nullptr;
    if (ends(".running_var")) FillUniform(t, 7u + i, 0.5f, 2.0f);
    if (ends(".running_mean")) FillUniform(t, 11u + i, -0.5f, 0.5f);
    if (bn && ends(".weight")) FillUniform(t, 13u + i, 0.5f, 1.5f);
    if (bn && ends(".bias")) FillUniform(t, 17u + i, -0.3f, 0.3f);
  }
}

void CopyParams(cudl_model *from, cudl_model *to) {
  ASSERT_EQ(cudl_model_param_count(from), cudl_model_param_count(to));
  for (int i = 0; i < cudl_model_param_count(from); ++i) {
    const char *name = cudl_model_param_name(from, i, nullptr);
    cudl_tensor *dst = cudl_model_param(to, name);
    ASSERT_NE(dst, nullptr) << name;
    ASSERT_EQ(cudl_tensor_copy(dst, cudl_model_param(from, name)), CUDL_OK);
  }
}

std::vector<float> Output(cudl_model *m) {
  const cudl_tensor *y = cudl_model_output(m);
  std::vector<float> v(y == nullptr ? 0 : static_cast<size_t>(cudl_tensor_numel(y)));
  if (y != nullptr) {
    EXPECT_EQ(cudl_tensor_copy_to_host(y, v.data(), v.size() * sizeof(float)),
              CUDL_OK);
  }
  return v;
}

// The two compiles of one model on ctx, with the same parameters.
struct Pair {
  cudl_model *train = nullptr, *infer = nullptr;
  ~Pair() {
    cudl_model_destroy(train);
    cudl_model_destroy(infer);
  }
};

void MakePair(cudl_context *ctx, Builder build, int64_t max_batch, Pair *p,
              cudl_layout layout = CUDL_LAYOUT_NCHW,
              cudl_precision precision = CUDL_PRECISION_FP32) {
  ASSERT_EQ(build(ctx, &p->train), CUDL_OK) << cudl_context_last_error(ctx);
  ASSERT_EQ(build(ctx, &p->infer), CUDL_OK);
  ASSERT_EQ(cudl_model_set_precision(p->train, precision), CUDL_OK);
  ASSERT_EQ(cudl_model_set_precision(p->infer, precision), CUDL_OK);
  ASSERT_EQ(cudl_model_set_layout(p->train, layout), CUDL_OK);
  ASSERT_EQ(cudl_model_set_layout(p->infer, layout), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(p->train, max_batch), CUDL_OK)
      << cudl_context_last_error(ctx);
  ASSERT_EQ(cudl_model_compile_inference(p->infer, max_batch), CUDL_OK)
      << cudl_context_last_error(ctx);
  ASSERT_TRUE(cudl_model_is_inference(p->infer));
  ASSERT_FALSE(cudl_model_is_inference(p->train));
  Randomise(p->train);
  CopyParams(p->train, p->infer);
  ASSERT_EQ(cudl_model_set_training(p->train, 0), CUDL_OK);
}

// Both compiles' outputs on the same batch of `rows`; the largest
// difference relative to the output's scale.
double Compare(cudl_context *ctx, Pair *p, int64_t rows, uint32_t seed) {
  int64_t shape[4] = {rows, 0, 0, 0};
  int ndim = cudl_model_node_shape(p->train, 0, shape + 1);
  cudl_tensor *x = nullptr;
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, ndim + 1, shape, &x), CUDL_OK);
  FillUniform(x, seed, -1.0f, 1.0f);
  EXPECT_EQ(cudl_model_forward(p->train, x, nullptr, nullptr), CUDL_OK)
      << cudl_context_last_error(ctx);
  EXPECT_EQ(cudl_model_forward(p->infer, x, nullptr, nullptr), CUDL_OK)
      << cudl_context_last_error(ctx);
  cudl_tensor_destroy(x);
  const std::vector<float> a = Output(p->train), b = Output(p->infer);
  EXPECT_EQ(a.size(), b.size());
  EXPECT_FALSE(a.empty());
  double scale = 0.0, err = 0.0;
  for (float v : a) scale = std::max(scale, std::fabs(static_cast<double>(v)));
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    err = std::max(err, std::fabs(static_cast<double>(a[i]) - b[i]));
  EXPECT_GT(scale, 0.0);
  return scale > 0.0 ? err / scale : 1.0;
}

struct Case {
  const char *name;
  Builder build;
};
const Case kCases[] = {{"mlp", BuildMlp},
                       {"small_cnn", BuildSmallCnn},
                       {"resnet8", BuildResnet8},
                       {"resnet20", BuildResnet20},
                       {"plain8", BuildPlain8},
                       {"every_kind", BuildEveryKind},
                       {"epilogues", BuildEpilogues}};

void CheckAllCases(cudl_context *ctx, double bound, cudl_layout layout,
                   cudl_precision precision = CUDL_PRECISION_FP32) {
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.name);
    Pair p;
    MakePair(ctx, c.build, 8, &p, layout, precision);
    if (::testing::Test::HasFatalFailure()) return;
    // Every batch size up to the compiled one, in an order that changes
    // the views both ways.
    const int64_t rows[] = {8, 1, 5, 8, 3};
    for (size_t k = 0; k < sizeof rows / sizeof rows[0]; ++k) {
      const double err = Compare(ctx, &p, rows[k], 100u + static_cast<uint32_t>(k));
      std::printf("%s rows %lld: error / bound %.3g\n", c.name,
                  static_cast<long long>(rows[k]), err / bound);
      EXPECT_LE(err, bound) << "rows " << rows[k];
    }
  }
}

TEST(Inference, EqualsTrainingCompileInEvalModeCpu) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  CheckAllCases(ctx, 1e-5, CUDL_LAYOUT_NCHW);
  cudl_context_destroy(ctx);
}

// Channels-last: the folded convolution weights go through the working
// copy in [K, R, S, C] order.
TEST(Inference, EqualsTrainingCompileInEvalModeChannelsLastCpu) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  CheckAllCases(ctx, 1e-5, CUDL_LAYOUT_NHWC);
  cudl_context_destroy(ctx);
}

// bf16: the folded weights go through the 16-bit working copies, in both
// layouts. Each compile rounds every activation to bf16 (8 bits of
// mantissa, 2^-9 relative), but at different points (the folded layer
// rounds once where the other rounds the convolution's output and then the
// normalised one), so the two differ by a few bf16 roundings per layer:
// 5e-2 of the output's scale over up to 20 layers; a wrong fold is off by
// the output's own size.
TEST(Inference, EqualsTrainingCompileInEvalModeBf16Cpu) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  // A CPU without native bf16 emulates it (test_precision.cpp does too).
  ASSERT_EQ(cudl_context_set_allow_emulated_precision(ctx, 1), CUDL_OK);
  CheckAllCases(ctx, 5e-2, CUDL_LAYOUT_NCHW, CUDL_PRECISION_BF16);
  CheckAllCases(ctx, 5e-2, CUDL_LAYOUT_NHWC, CUDL_PRECISION_BF16);
  cudl_context_destroy(ctx);
}

// On CUDA the convolution algorithms sum in other orders: 4 times the
// CPU's bound, as test_zoo.cpp allows.
TEST(Inference, EqualsTrainingCompileInEvalModeCuda) {
  const CudaAvailability cuda = QueryCuda();
  if (!cuda.available) GTEST_SKIP() << "no usable GPU: " << cuda.reason;
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CUDA, 0, &ctx), CUDL_OK);
  CheckAllCases(ctx, 4e-5, CUDL_LAYOUT_NCHW);
  CheckAllCases(ctx, 4e-5, CUDL_LAYOUT_NHWC);
  cudl_context_destroy(ctx);
}

// The storage a node's output lies in (NULL: not kept after the forward).
const void *OutputData(cudl_model *m, int node) {
  const cudl_tensor *t = cudl_model_node_output(m, node);
  return t == nullptr ? nullptr : cudl_tensor_data(const_cast<cudl_tensor *>(t));
}

// A convolution that computes its epilogue writes the result into its own
// buffer, and the addition and ReLU it took over are views of it: so at
// the model's output their values are one storage, while a convolution
// whose result was only read on the way (the main branch beside a shortcut
// built after it) keeps none. Each tail ends the model, in both layouts.
TEST(Inference, ConvolutionsComputeTheirEpilogues) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  const cudl_conv2d_desc same = {1, 1, 1, 1, 1, 1, 1};
  for (cudl_layout layout : {CUDL_LAYOUT_NCHW, CUDL_LAYOUT_NHWC}) {
    for (int tail = 0; tail < 3; ++tail) {
      SCOPED_TRACE("tail " + std::to_string(tail) + ", layout " + std::to_string(layout));
      const int64_t input[3] = {3, 5, 5};
      cudl_model *m = nullptr;
      int c1, r1, c2, b2, sum, out;
      ASSERT_EQ(cudl_model_create(ctx, 3, input, &m), CUDL_OK);
      ASSERT_EQ(cudl_model_add_conv2d(m, 0, "c1", 4, 3, 3, &same, 1, &c1), CUDL_OK);
      ASSERT_EQ(cudl_model_add_activation(m, c1, CUDL_ACT_RELU, 0.0f, &r1), CUDL_OK);
      // 0: the ReLU after a convolution with a bias; 1: batch norm, the
      // residual r1 and a ReLU; 2: the same with a leaky ReLU, the
      // residual a convolution built after c2 (c3 takes the epilogue).
      int fused_conv = c1, main_conv = -1;
      out = r1;
      if (tail > 0) {
        ASSERT_EQ(cudl_model_add_conv2d(m, r1, "c2", 4, 3, 3, &same, 0, &c2), CUDL_OK);
        ASSERT_EQ(cudl_model_add_batchnorm(m, c2, "b2", 0.1f, 1e-5f, &b2), CUDL_OK);
        int residual = r1;
        fused_conv = c2;
        if (tail == 2) {
          int c3;
          ASSERT_EQ(cudl_model_add_conv2d(m, r1, "c3", 4, 3, 3, &same, 1, &c3), CUDL_OK);
          residual = b2;
          b2 = c3;
          main_conv = c2;
          fused_conv = c3;
        }
        ASSERT_EQ(cudl_model_add_add(m, residual, b2, &sum), CUDL_OK);
        ASSERT_EQ(cudl_model_add_activation(m, sum, tail == 2 ? CUDL_ACT_LEAKY_RELU : CUDL_ACT_RELU,
                                            0.2f, &out),
                  CUDL_OK);
      }
      ASSERT_EQ(cudl_model_set_output(m, out, CUDL_MODEL_LOSS_MSE), CUDL_OK);
      ASSERT_EQ(cudl_model_set_layout(m, layout), CUDL_OK);
      ASSERT_EQ(cudl_model_compile_inference(m, 2), CUDL_OK) << cudl_context_last_error(ctx);
      Randomise(m);
      const int64_t shape[4] = {2, 3, 5, 5};
      cudl_tensor *x = nullptr;
      ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &x), CUDL_OK);
      FillUniform(x, 3u, -1.0f, 1.0f);
      EXPECT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK)
          << cudl_context_last_error(ctx);
      const void *result = OutputData(m, out);
      EXPECT_NE(result, nullptr);
      EXPECT_EQ(OutputData(m, fused_conv), result) << "the convolution computes the output";
      if (tail > 0) {
        EXPECT_EQ(OutputData(m, sum), result) << "the addition is its view";
      }
      if (main_conv >= 0) {
        EXPECT_EQ(OutputData(m, main_conv), nullptr) << "the main branch";
      }
      cudl_tensor_destroy(x);
      cudl_model_destroy(m);
    }
  }
  cudl_context_destroy(ctx);
}

TEST(Inference, MemoryBelowTrainingByGradientsAndSavedActivations) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.name);
    for (int64_t batch : {1, 64}) {
      Pair p;
      MakePair(ctx, c.build, batch, &p);
      if (::testing::Test::HasFatalFailure()) break;
      cudl_model_memory train, infer;
      ASSERT_EQ(cudl_model_memory_usage(p.train, &train), CUDL_OK);
      ASSERT_EQ(cudl_model_memory_usage(p.infer, &infer), CUDL_OK);
      std::printf("%s batch %lld: training %llu bytes (gradients %llu, saved "
                  "%llu, activations %llu), inference %llu (activations %llu, "
                  "workspace %llu)\n",
                  c.name, static_cast<long long>(batch),
                  static_cast<unsigned long long>(train.total),
                  static_cast<unsigned long long>(train.gradients),
                  static_cast<unsigned long long>(train.saved_activations),
                  static_cast<unsigned long long>(train.activations),
                  static_cast<unsigned long long>(infer.total),
                  static_cast<unsigned long long>(infer.activations),
                  static_cast<unsigned long long>(infer.workspace));
      EXPECT_EQ(train.total, train.parameters + train.activations +
                                 train.gradients + train.saved_activations +
                                 train.workspace);
      EXPECT_EQ(infer.total, infer.parameters + infer.activations +
                                 infer.gradients + infer.saved_activations +
                                 infer.workspace);
      EXPECT_EQ(infer.gradients, 0u);
      EXPECT_EQ(infer.saved_activations, 0u);
      EXPECT_EQ(infer.parameters, train.parameters);
      // The gradient arena alone is as large as the parameters.
      EXPECT_GE(train.gradients,
                static_cast<uint64_t>(cudl_tensor_nbytes(cudl_model_params(p.train))));
      EXPECT_LE(infer.activations, train.activations);
      // Below the training compile by its gradients and saved activations,
      // less the folding workspace (the largest folded weight), which the
      // activations saved by liveness pay for except in tiny networks at
      // batch 1 (plain8 on 12x12 images); for the benchmark's models
      // (docs/benchmarks.md) the whole claim holds.
      EXPECT_LE(infer.total + train.gradients + train.saved_activations,
                train.total + infer.workspace);
      const std::string name(c.name);
      if (name == "mlp" || name == "small_cnn" || name == "resnet20" ||
          batch == 64) {
        EXPECT_LE(infer.total + train.gradients + train.saved_activations,
                  train.total);
      }
      // Sharing buffers by liveness saves most activations wherever a
      // network is more than a few layers deep.
      if (batch == 64 && name != "mlp") {
        EXPECT_LT(infer.activations * 2, train.activations);
      }
    }
  }
  cudl_context_destroy(ctx);
}

TEST(Inference, RefusesTraining) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  // The models go before their context.
  std::unique_ptr<Pair> pair(new Pair);
  Pair &p = *pair;
  MakePair(ctx, BuildSmallCnn, 4, &p);
  cudl_model *m = p.infer;
  EXPECT_EQ(cudl_model_grads(m), nullptr);
  EXPECT_EQ(cudl_model_grad(m, "fc1.weight"), nullptr);
  EXPECT_NE(cudl_model_params(m), nullptr);
  EXPECT_EQ(cudl_model_set_training(m, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "compiled for inference"));
  EXPECT_EQ(cudl_model_set_training(m, 0), CUDL_OK);
  EXPECT_EQ(cudl_model_set_diagnostics(m, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_compile_inference(m, 4), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_compile(m, 4), CUDL_ERR_INVALID_ARGUMENT);
  // A forward with a target gives the loss; backward is refused.
  const int64_t xs[4] = {4, 3, 16, 16}, ls[1] = {4};
  cudl_tensor *x = nullptr, *labels = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &x), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, ls, &labels), CUDL_OK);
  FillUniform(x, 3, -1.0f, 1.0f);
  float loss_infer = -1.0f, loss_train = -2.0f;
  EXPECT_EQ(cudl_model_forward(m, x, labels, &loss_infer), CUDL_OK);
  EXPECT_EQ(cudl_model_forward(p.train, x, labels, &loss_train), CUDL_OK);
  EXPECT_NEAR(loss_infer, loss_train, 1e-5 * std::fabs(loss_train));
  EXPECT_EQ(cudl_model_backward(m), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "compiled for inference"));
  // The output stays readable; a value whose buffer was reused does not.
  const int out = cudl_model_output_node(m);
  EXPECT_NE(cudl_model_node_output(m, out), nullptr);
  EXPECT_EQ(cudl_model_node_output(m, 1), nullptr);
  int bad = 0;
  EXPECT_EQ(cudl_model_first_nonfinite(m, &bad, nullptr), CUDL_OK);
  EXPECT_EQ(bad, -1);
  // Batches up to the compiled size only.
  cudl_tensor *big = nullptr;
  const int64_t bs[4] = {5, 3, 16, 16};
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, bs, &big), CUDL_OK);
  EXPECT_EQ(cudl_model_forward(m, big, nullptr, nullptr), CUDL_ERR_SHAPE);
  // Still usable after the failures.
  EXPECT_EQ(cudl_model_forward(m, x, nullptr, nullptr), CUDL_OK);
  cudl_tensor_destroy(big);
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_model_memory mem;
  EXPECT_EQ(cudl_model_memory_usage(nullptr, &mem), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_memory_usage(m, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_compile_inference(nullptr, 4), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_FALSE(cudl_model_is_inference(nullptr));
  pair.reset();
  cudl_context_destroy(ctx);
}

// ---- CUDA graphs (cudl_model_set_graphs) ----

// One model's forward with graphs on against the same model's forward
// without (the pair's inference compile), bit for bit, through what keeps
// or remakes a recording: new values in the same input, a weight changed
// in place, other rows, the input back, the TF32 setting, debug sync. On
// CUDA the recordings and replays are counted; on the CPU every forward
// runs directly and says why.
void CheckGraphs(cudl_context *ctx, Builder build, cudl_layout layout) {
  const bool cuda = cudl_context_device(ctx) == CUDL_DEVICE_CUDA;
  std::unique_ptr<Pair> pair(new Pair);
  Pair &p = *pair;
  MakePair(ctx, build, 8, &p, layout);
  if (::testing::Test::HasFatalFailure()) return;
  cudl_model *g = nullptr;
  ASSERT_EQ(build(ctx, &g), CUDL_OK);
  std::unique_ptr<cudl_model, void (*)(cudl_model *)> owned(g, cudl_model_destroy);
  ASSERT_EQ(cudl_model_set_layout(g, layout), CUDL_OK);
  ASSERT_EQ(cudl_model_compile_inference(g, 8), CUDL_OK) << cudl_context_last_error(ctx);
  CopyParams(p.train, g);
  ASSERT_EQ(cudl_model_set_graphs(g, 1), CUDL_OK) << cudl_context_last_error(ctx);
  int64_t shape[4] = {8, 0, 0, 0};
  const int ndim = cudl_model_node_shape(g, 0, shape + 1);
  cudl_tensor *x8 = nullptr, *x3 = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, ndim + 1, shape, &x8), CUDL_OK);
  shape[0] = 3;
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, ndim + 1, shape, &x3), CUDL_OK);
  cudl_graph_stats st{};
  auto same = [&](cudl_tensor *x, uint32_t seed, const char *what) {
    SCOPED_TRACE(what);
    FillUniform(x, seed, -1.0f, 1.0f);
    ASSERT_EQ(cudl_model_forward(p.infer, x, nullptr, nullptr), CUDL_OK)
        << cudl_context_last_error(ctx);
    ASSERT_EQ(cudl_model_forward(g, x, nullptr, nullptr), CUDL_OK) << cudl_context_last_error(ctx);
    const std::vector<float> want = Output(p.infer), got = Output(g);
    EXPECT_FALSE(want.empty());
    EXPECT_TRUE(BitEqual(got, want));
    ASSERT_EQ(cudl_model_graph_stats(g, &st), CUDL_OK);
  };
  // The pair's forward chooses every algorithm first, so the first forward
  // of g records; it also gives cuBLAS the workspace both models then use
  // (its algorithms may depend on the workspace's size).
  FillUniform(x8, 39u, -1.0f, 1.0f);
  ASSERT_EQ(cudl_model_forward(p.infer, x8, nullptr, nullptr), CUDL_OK);
  ASSERT_EQ(cudl_model_forward(g, x8, nullptr, nullptr), CUDL_OK)
      << cudl_context_last_error(ctx);
  for (uint32_t k = 0; k < 4; ++k) same(x8, 40u + k, "new values in the same input");
  if (cuda) {
    EXPECT_EQ(st.recorded, 1) << st.reason;
    EXPECT_EQ(st.replayed, 4);
    EXPECT_EQ(st.direct, 0);
    EXPECT_STREQ(st.reason, "");
  } else {
    EXPECT_EQ(st.direct, 5);
    EXPECT_EQ(st.recorded + st.replayed, 0);
    EXPECT_TRUE(HasSubstr(st.reason, "graphs are CUDA's")) << st.reason;
  }
  // A weight changed where it lies: the replay reads it.
  const char *first = cudl_model_param_name(g, 0, nullptr);
  for (cudl_model *m : {p.infer, g}) {
    cudl_tensor *w = cudl_model_param(m, first);
    ASSERT_EQ(cudl_scale(ctx, w, -0.5f, w), CUDL_OK);
  }
  const int64_t replayed = st.replayed, recorded = st.recorded;
  same(x8, 50u, "a weight changed in place");
  if (cuda) {
    EXPECT_EQ(st.replayed, replayed + 1);
  }
  same(x3, 51u, "other rows");
  if (cuda) {
    EXPECT_EQ(st.recorded, recorded + 1);
  }
  same(x8, 52u, "the first input again");
  if (cuda) {
    EXPECT_EQ(st.recorded, recorded + 2);
  }
  const int tf32 = cudl_context_allow_tf32(ctx);
  ASSERT_EQ(cudl_context_set_allow_tf32(ctx, !tf32), CUDL_OK);
  same(x8, 53u, "the other TF32 setting");
  if (cuda) {
    EXPECT_EQ(st.recorded, recorded + 3);
  }
  ASSERT_EQ(cudl_context_set_allow_tf32(ctx, tf32), CUDL_OK);
  // Deterministic mode chooses other algorithms: the recording follows.
  ASSERT_EQ(cudl_context_set_deterministic(ctx, 1), CUDL_OK);
  same(x8, 56u, "deterministic mode");
  if (cuda) {
    EXPECT_EQ(st.recorded, recorded + 4);
  }
  ASSERT_EQ(cudl_context_set_deterministic(ctx, 0), CUDL_OK);
  if (cuda) {
    ASSERT_EQ(cudl_context_set_debug_sync(ctx, 1), CUDL_OK);
    const int64_t direct = st.direct;
    same(x8, 54u, "debug sync");
    EXPECT_EQ(st.direct, direct + 1);
    EXPECT_TRUE(HasSubstr(st.reason, "debug sync")) << st.reason;
    ASSERT_EQ(cudl_context_set_debug_sync(ctx, 0), CUDL_OK);
  }
  // Off: the counts start again.
  ASSERT_EQ(cudl_model_set_graphs(g, 0), CUDL_OK);
  same(x8, 55u, "graphs off");
  EXPECT_EQ(st.recorded + st.replayed + st.direct, 0);
  cudl_tensor_destroy(x8);
  cudl_tensor_destroy(x3);
  owned.reset();
  pair.reset();
}

TEST(Inference, GraphsRunDirectlyOnTheCpuAndRefuseBadUse) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  CheckGraphs(ctx, BuildResnet8, CUDL_LAYOUT_NHWC);
  {
    std::unique_ptr<Pair> pair(new Pair);
    MakePair(ctx, BuildMlp, 4, pair.get());
    EXPECT_EQ(cudl_model_set_graphs(pair->train, 1), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "compiled for inference"));
    EXPECT_EQ(cudl_model_set_graphs(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
    cudl_graph_stats st;
    EXPECT_EQ(cudl_model_graph_stats(nullptr, &st), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(cudl_model_graph_stats(pair->infer, nullptr), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "stats is NULL"));
  }
  cudl_context_destroy(ctx);
}

TEST(Inference, GraphsReplayTheForwardCuda) {
  const CudaAvailability cuda = QueryCuda();
  if (!cuda.available) GTEST_SKIP() << "no usable GPU: " << cuda.reason;
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CUDA, 0, &ctx), CUDL_OK);
  for (const Case &c : kCases) {
    SCOPED_TRACE(c.name);
    CheckGraphs(ctx, c.build, CUDL_LAYOUT_NCHW);
    CheckGraphs(ctx, c.build, CUDL_LAYOUT_NHWC);
  }
  cudl_context_destroy(ctx);
}

TEST(Inference, UncompiledAndFailedCompiles) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  cudl_model *m = nullptr;
  ASSERT_EQ(BuildResnet8(ctx, &m), CUDL_OK);
  cudl_model_memory mem;
  EXPECT_EQ(cudl_model_memory_usage(m, &mem), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_compile_inference(m, 0), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_FALSE(cudl_model_is_inference(m));
  // A failed inference compile leaves a model that trains.
  ASSERT_EQ(cudl_model_compile(m, 2), CUDL_OK);
  EXPECT_EQ(cudl_model_set_training(m, 1), CUDL_OK);
  EXPECT_NE(cudl_model_grads(m), nullptr);
  cudl_model_destroy(m);
  cudl_context_destroy(ctx);
}

// Every host allocation of building, compiling for inference and a first
// forward failed in turn: CUDL_ERR_OUT_OF_MEMORY, nothing leaked, and a
// model whose compile failed compiles for inference once memory is there.
TEST(Inference, FailureAtEveryAllocationLeavesNothing) {
  for (const Case &c : kCases) {
    const std::string name(c.name);
    if (name != "resnet8" && name != "every_kind") continue;
    SCOPED_TRACE(c.name);
    size_t points = 0;
    for (size_t k = 1;; ++k) {
      CountingAllocator counting;
      counting.fail_at = k;
      cudl_context *ctx = nullptr;
      ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
      const cudl_allocator hooks = counting.hooks();
      ASSERT_EQ(cudl_context_set_allocator(ctx, &hooks), CUDL_OK);
      cudl_model *m = nullptr;
      cudl_tensor *x = nullptr;
      cudl_status st = c.build(ctx, &m);
      if (st == CUDL_OK) {
        st = cudl_model_compile_inference(m, 3);
        if (st != CUDL_OK) {
          EXPECT_EQ(st, CUDL_ERR_OUT_OF_MEMORY) << k << ": " << cudl_context_last_error(ctx);
          EXPECT_FALSE(cudl_model_is_inference(m));
          counting.fail_at = 0;
          EXPECT_EQ(cudl_model_compile_inference(m, 3), CUDL_OK)
              << k << ": " << cudl_context_last_error(ctx);
        }
      }
      if (st == CUDL_OK) {
        int64_t shape[4] = {2, 0, 0, 0};
        const int ndim = cudl_model_node_shape(m, 0, shape + 1);
        st = cudl_tensor_create(ctx, CUDL_DTYPE_F32, ndim + 1, shape, &x);
        if (st == CUDL_OK) st = cudl_model_forward(m, x, nullptr, nullptr);
      }
      EXPECT_TRUE(st == CUDL_OK || st == CUDL_ERR_OUT_OF_MEMORY)
          << k << ": " << cudl_status_name(st);
      cudl_tensor_destroy(x);
      cudl_model_destroy(m);
      // The context's caches (the CPU convolutions' primitives) go with it.
      cudl_context_destroy(ctx);
      EXPECT_TRUE(counting.live.empty())
          << "allocation " << k << " failing leaks " << counting.live.size() << " blocks";
      EXPECT_EQ(counting.size_mismatches + counting.unknown_frees, 0u) << k;
      if (counting.failed == 0) break;  // every allocation succeeded: done
      ++points;
      ASSERT_LT(k, 5000u) << "no end to the allocations";
    }
    std::printf("%s: failed each of %zu allocations in turn, no leak\n", c.name, points);
  }
}

}  // namespace
