// test_model_file.cpp - model files (cudl/model_file.h):
//
//  * round trips: a model using every layer kind (every activation type,
//    both poolings, non-default and default settings) is described, parsed
//    and described again to the same text, with the same parameter names
//    and shapes; the kind table has a row for every node kind and every
//    activation type;
//  * the canonical text itself: defaults left out, pairs and floats written
//    as the docs say, ids for skip connections, "output" when it is not the
//    last layer; the buffer contract;
//  * hand-written files: references by name, id and "input", comments;
//  * one test per class of malformed file: the exact status and message
//    (line and column for JSON syntax, the path for the rest), and the
//    context still usable afterwards;
//  * the zoo as files: examples/models/*.json are what the zoo describes
//    today, build the zoo's parameter names, shapes and counts, and train
//    to bit-identical losses on the CPU (small CNN, ResNet-20, MLP).
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "nn/model_file.h"

namespace {

const std::string kModels = std::string(CUDL_GOLDEN_DIR) + "/../../examples/models/";

std::string Describe(const cudl_model *m) {
  size_t length = 0;
  EXPECT_EQ(cudl_model_describe(m, nullptr, 0, &length), CUDL_OK)
      << cudl_context_last_error(cudl_model_context(m));
  std::vector<char> buf(length + 1);
  EXPECT_EQ(cudl_model_describe(m, buf.data(), buf.size(), &length), CUDL_OK)
      << cudl_context_last_error(cudl_model_context(m));
  return std::string(buf.data(), length);
}

std::string ReadText(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

struct Param {
  std::string name;
  std::vector<int64_t> shape;
  int trainable;
  bool operator==(const Param &o) const {
    return name == o.name && shape == o.shape && trainable == o.trainable;
  }
};

// Every named tensor with its shape (compiles m at batch 1).
std::vector<Param> Params(cudl_model *m) {
  std::vector<Param> out;
  EXPECT_EQ(cudl_model_compile(m, 1), CUDL_OK)
      << cudl_context_last_error(cudl_model_context(m));
  for (int i = 0; i < cudl_model_param_count(m); ++i) {
    Param p;
    p.name = cudl_model_param_name(m, i, &p.trainable);
    const cudl_tensor *t = cudl_model_param(m, p.name.c_str());
    EXPECT_NE(t, nullptr) << p.name;
    if (t == nullptr) continue;
    for (int d = 0; d < cudl_tensor_ndim(t); ++d) p.shape.push_back(cudl_tensor_shape(t)[d]);
    out.push_back(p);
  }
  return out;
}

class ModelFile : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK); }
  void TearDown() override { cudl_context_destroy(ctx_); }

  // Parse `text` as "net.json"; nullptr (and *status) on failure.
  cudl_model *Parse(const std::string &text, cudl_status *status = nullptr) {
    cudl_model *m = reinterpret_cast<cudl_model *>(this);  // must be reset
    const cudl_status s = cudl_model_parse(ctx_, text.data(), text.size(), "net.json", &m);
    if (status != nullptr) *status = s;
    if (s != CUDL_OK) {
      EXPECT_EQ(m, nullptr) << "*out is NULL on failure";
    }
    return s == CUDL_OK ? m : nullptr;
  }

  // The status and message of parsing a file that must fail, after which
  // the context must still parse and describe a good file.
  void ExpectFailure(const std::string &text, cudl_status status, const std::string &message) {
    cudl_status s = CUDL_OK;
    cudl_model *m = Parse(text, &s);
    EXPECT_EQ(m, nullptr);
    cudl_model_destroy(m);
    EXPECT_EQ(s, status) << cudl_status_name(s) << ": " << cudl_context_last_error(ctx_);
    EXPECT_EQ(std::string(cudl_context_last_error(ctx_)), "cudl_model_parse: " + message);
    const std::string good =
        "{\"input_shape\": [4], \"layers\": [{\"kind\": \"linear\", \"name\": \"fc\", "
        "\"out_features\": 2}]}";
    cudl_model *ok = Parse(good);
    ASSERT_NE(ok, nullptr) << cudl_context_last_error(ctx_);
    EXPECT_EQ(cudl_model_compile(ok, 2), CUDL_OK);
    cudl_model_destroy(ok);
  }

  // A one-layer-list file around `layers` on a 1x8x8 input.
  static std::string Net(const std::string &layers, const std::string &extra = "") {
    return "{\"input_shape\": [1, 8, 8], \"layers\": [" + layers + "]" + extra + "}";
  }

  cudl_context *ctx_ = nullptr;
};

// A model with every layer kind, every activation type and settings off
// their defaults, built through the graph API.
cudl_model *EveryKind(cudl_context *ctx) {
  const int64_t shape[3] = {3, 12, 10};
  cudl_model *m = nullptr;
  int n = 0, stem = 0, a = 0;
  EXPECT_EQ(cudl_model_create(ctx, 3, shape, &m), CUDL_OK);
  cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
  d.stride_h = 1;
  d.stride_w = 2;
  d.pad_h = 0;
  d.pad_w = 1;
  d.dilation_h = 2;
  d.groups = 3;
  EXPECT_EQ(cudl_model_add_conv2d(m, 0, "conv1", 6, 3, 2, &d, 1, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_batchnorm(m, n, "bn1", 0.25f, 1e-3f, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_prelu(m, n, "act1", 1, 0.1f, &n), CUDL_OK);
  stem = n;
  for (int t = 0; t < CUDL_ACT_COUNT; ++t)
    EXPECT_EQ(cudl_model_add_activation(m, n, static_cast<cudl_activation_type>(t),
                                        t == CUDL_ACT_LEAKY_RELU ? 0.2f
                                        : t == CUDL_ACT_ELU      ? 0.7f
                                                                 : 0.0f,
                                        &n),
              CUDL_OK)
        << cudl_activation_name(static_cast<cudl_activation_type>(t));
  EXPECT_EQ(cudl_model_add_add(m, n, stem, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_rrelu(m, n, 0.05f, 0.4f, &n), CUDL_OK);
  cudl_pool2d_desc p;
  std::memset(&p, 0, sizeof p);
  p.kernel_h = 3;
  p.kernel_w = 2;
  p.stride_h = 1;
  p.stride_w = 2;
  p.pad_h = 1;
  p.count_include_pad = 0;
  EXPECT_EQ(cudl_model_add_pool2d(m, n, 0, &p, &a), CUDL_OK);
  p.count_include_pad = 1;
  p.kernel_h = p.kernel_w = 2;
  p.stride_h = p.stride_w = 2;
  p.pad_h = 0;
  p.ceil_mode = 1;
  EXPECT_EQ(cudl_model_add_pool2d(m, stem, 1, &p, &n), CUDL_OK);  // a branch
  const cudl_conv2d_desc plain = CUDL_CONV2D_DESC_DEFAULT;
  EXPECT_EQ(cudl_model_add_conv2d(m, n, "conv2", 4, 1, 1, &plain, 0, &n), CUDL_OK);
  const int concat_in[3] = {n, n - 1, n};  // [4 + 6 + 4, 4, 3]
  EXPECT_EQ(cudl_model_add_concat(m, 3, concat_in, &n), CUDL_OK);
  const int64_t reshaped[3] = {14, 3, 4};
  EXPECT_EQ(cudl_model_add_reshape(m, n, 3, reshaped, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_global_avg_pool(m, n, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_flatten(m, n, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_dropout(m, n, 0.3f, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_batchnorm(m, n, "bn2", 0.1f, 1e-5f, &n), CUDL_OK);
  const int hidden = n;
  EXPECT_EQ(cudl_model_add_linear(m, n, "fc", 5, 0, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_add_prelu(m, hidden, "tail", 0, 0.25f, &n), CUDL_OK);
  (void)a;
  EXPECT_EQ(cudl_model_set_output(m, n - 1, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  return m;
}

}  // namespace

// ---------------------------------------------------------------------------
// The kind table
// ---------------------------------------------------------------------------

// Every node kind but the input, and every activation type, has a row: a
// new layer kind of the graph API cannot be missing from the format.
TEST(ModelFileKinds, EveryNodeKindAndActivationHasARow) {
  for (int kind = NODE_INPUT + 1; kind < NODE_KIND_COUNT; ++kind) {
    bool found = false;
    for (int i = 0; i < cudl__model_file_kind_count; ++i)
      found = found || cudl__model_file_kinds[i].builds == kind;
    EXPECT_TRUE(found) << "node kind " << kind << " has no model-file row";
  }
  for (int t = 0; t < CUDL_ACT_COUNT; ++t) {
    const cudl__model_file_kind *k =
        cudl__model_file_kind_by_name(cudl_activation_name(static_cast<cudl_activation_type>(t)));
    ASSERT_NE(k, nullptr) << cudl_activation_name(static_cast<cudl_activation_type>(t));
    EXPECT_EQ(k->builds, NODE_ACTIVATION);
    EXPECT_EQ(k->variant, t);
  }
  // Kind names are unique.
  for (int i = 0; i < cudl__model_file_kind_count; ++i)
    EXPECT_EQ(cudl__model_file_kind_by_name(cudl__model_file_kinds[i].kind),
              &cudl__model_file_kinds[i]);
}

// ---------------------------------------------------------------------------
// Round trips
// ---------------------------------------------------------------------------

TEST_F(ModelFile, EveryKindRoundTrips) {
  cudl_model *built = EveryKind(ctx_);
  ASSERT_NE(built, nullptr);
  const std::string text = Describe(built);
  cudl_model *parsed = Parse(text);
  ASSERT_NE(parsed, nullptr) << cudl_context_last_error(ctx_) << "\n" << text;
  EXPECT_EQ(Describe(parsed), text);
  ASSERT_EQ(cudl_model_node_count(parsed), cudl_model_node_count(built));
  for (int i = 0; i < cudl_model_node_count(built); ++i) {
    int64_t a[3] = {0, 0, 0}, b[3] = {0, 0, 0};
    EXPECT_EQ(cudl_model_node_shape(parsed, i, b), cudl_model_node_shape(built, i, a)) << i;
    EXPECT_EQ(std::vector<int64_t>(a, a + 3), std::vector<int64_t>(b, b + 3)) << i;
  }
  EXPECT_EQ(Params(parsed), Params(built));
  cudl_model_destroy(parsed);
  cudl_model_destroy(built);
}

// The canonical text, exactly: what a reader of the docs expects to see.
TEST_F(ModelFile, CanonicalText) {
  cudl_model *m = EveryKind(ctx_);
  ASSERT_NE(m, nullptr);
  const std::string expected =
      "{\n"
      "  \"version\": 1,\n"
      "  \"input_shape\": [3, 12, 10],\n"
      "  \"layers\": [\n"
      "    {\"kind\": \"conv2d\", \"name\": \"conv1\", \"out_channels\": 6, \"kernel_size\": [3, "
      "2], \"stride\": [1, 2], \"padding\": [0, 1], \"dilation\": [2, 1], \"groups\": 3},\n"
      "    {\"kind\": \"batchnorm\", \"name\": \"bn1\", \"momentum\": 0.25, \"eps\": 0.001},\n"
      "    {\"kind\": \"prelu\", \"name\": \"act1\", \"per_channel\": true, \"init_slope\": 0.1},\n"
      "    {\"kind\": \"sigmoid\"},\n"
      "    {\"kind\": \"tanh\"},\n"
      "    {\"kind\": \"relu\"},\n"
      "    {\"kind\": \"leaky_relu\", \"alpha\": 0.2},\n"
      "    {\"kind\": \"elu\", \"alpha\": 0.7},\n"
      "    {\"kind\": \"gelu\"},\n"
      "    {\"kind\": \"silu\", \"id\": \"silu_9\"},\n"
      "    {\"kind\": \"add\", \"inputs\": [\"silu_9\", \"act1\"]},\n"
      "    {\"kind\": \"rrelu\", \"lower\": 0.05, \"upper\": 0.4},\n"
      "    {\"kind\": \"avg_pool2d\", \"kernel_size\": [3, 2], \"stride\": [1, 2], \"padding\": "
      "[1, 0], \"count_include_pad\": false},\n"
      "    {\"kind\": \"max_pool2d\", \"id\": \"max_pool2d_13\", \"input\": \"act1\", "
      "\"kernel_size\": 2, \"ceil_mode\": true},\n"
      "    {\"kind\": \"conv2d\", \"name\": \"conv2\", \"out_channels\": 4, \"kernel_size\": 1, "
      "\"bias\": false},\n"
      "    {\"kind\": \"concat\", \"inputs\": [\"conv2\", \"max_pool2d_13\", \"conv2\"]},\n"
      "    {\"kind\": \"reshape\", \"shape\": [14, 3, 4]},\n"
      "    {\"kind\": \"global_avg_pool\"},\n"
      "    {\"kind\": \"flatten\"},\n"
      "    {\"kind\": \"dropout\", \"p\": 0.3},\n"
      "    {\"kind\": \"batchnorm\", \"name\": \"bn2\"},\n"
      "    {\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 5, \"bias\": false},\n"
      "    {\"kind\": \"prelu\", \"name\": \"tail\", \"input\": \"bn2\"}\n"
      "  ],\n"
      "  \"output\": \"fc\",\n"
      "  \"loss\": \"mse\"\n"
      "}\n";
  EXPECT_EQ(Describe(m), expected);
  cudl_model_destroy(m);
}

// Floats are written in the shortest form that reads back to the same
// float, for values a decimal cannot hold exactly too.
TEST_F(ModelFile, FloatsReadBackExactly) {
  const float values[] = {0.1f, 1.0f / 3.0f, 1e-7f, 0.99999994f, 0.7f, 1.17549435e-38f};
  for (float p : values) {
    const int64_t shape[1] = {4};
    cudl_model *m = nullptr;
    int n = 0;
    ASSERT_EQ(cudl_model_create(ctx_, 1, shape, &m), CUDL_OK);
    ASSERT_EQ(cudl_model_add_dropout(m, 0, p, &n), CUDL_OK);
    ASSERT_EQ(cudl_model_add_batchnorm(m, n, "bn", p, p, &n), CUDL_OK);
    ASSERT_EQ(cudl_model_set_output(m, n, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
    const std::string text = Describe(m);
    cudl_model *back = Parse(text);
    ASSERT_NE(back, nullptr) << cudl_context_last_error(ctx_) << text;
    EXPECT_EQ(Describe(back), text);
    // The parsed nodes hold the same bits (through the internal record).
    EXPECT_EQ(std::memcmp(&back->nodes[1].p, &p, sizeof p), 0) << text;
    EXPECT_EQ(std::memcmp(&back->nodes[2].momentum, &p, sizeof p), 0) << text;
    EXPECT_EQ(std::memcmp(&back->nodes[2].eps, &p, sizeof p), 0) << text;
    cudl_model_destroy(back);
    cudl_model_destroy(m);
  }
}

// A generated id never takes a layer's name: "_" is added.
TEST_F(ModelFile, GeneratedIdsAvoidNames) {
  const std::string text = Net(
      "{\"kind\": \"relu\", \"id\": \"a\"},"
      "{\"kind\": \"conv2d\", \"name\": \"relu_0\", \"out_channels\": 1, \"kernel_size\": 1},"
      "{\"kind\": \"add\", \"inputs\": [\"relu_0\", \"a\"]}",
      ", \"loss\": \"mse\"");
  cudl_model *m = Parse(text);
  ASSERT_NE(m, nullptr) << cudl_context_last_error(ctx_);
  const std::string canon = Describe(m);
  EXPECT_NE(canon.find("{\"kind\": \"relu\", \"id\": \"relu_0_\"}"), std::string::npos) << canon;
  EXPECT_NE(canon.find("\"inputs\": [\"relu_0\", \"relu_0_\"]"), std::string::npos) << canon;
  cudl_model *again = Parse(canon);
  ASSERT_NE(again, nullptr) << cudl_context_last_error(ctx_);
  EXPECT_EQ(Describe(again), canon);
  cudl_model_destroy(again);
  cudl_model_destroy(m);
}

// Names with characters JSON escapes survive; a name that is not UTF-8
// cannot be written.
TEST_F(ModelFile, NamesAreEscapedOrRefused) {
  const int64_t shape[1] = {3};
  cudl_model *m = nullptr;
  int n = 0;
  ASSERT_EQ(cudl_model_create(ctx_, 1, shape, &m), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, 0, "a \"q\" \\ \x01 \xc3\xa9", 2, 1, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, n, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
  const std::string text = Describe(m);
  EXPECT_NE(text.find("\"name\": \"a \\\"q\\\" \\\\ \\u0001 \xc3\xa9\""), std::string::npos)
      << text;
  cudl_model *back = Parse(text);
  ASSERT_NE(back, nullptr) << cudl_context_last_error(ctx_);
  EXPECT_STREQ(cudl_model_param_name(back, 0, nullptr), "a \"q\" \\ \x01 \xc3\xa9.weight");
  cudl_model_destroy(back);
  cudl_model_destroy(m);

  ASSERT_EQ(cudl_model_create(ctx_, 1, shape, &m), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(m, 0, "bad\xff", 2, 1, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, n, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
  size_t length = 0;
  EXPECT_EQ(cudl_model_describe(m, nullptr, 0, &length), CUDL_ERR_UNSUPPORTED);
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("not valid UTF-8"), std::string::npos);
  cudl_model_destroy(m);
}

// The buffer contract: a query, an exact fit, one byte short (refused, ""),
// bad arguments; a model without an output.
TEST_F(ModelFile, DescribeBuffer) {
  cudl_model *m = Parse(Net("{\"kind\": \"flatten\"}"));
  ASSERT_NE(m, nullptr) << cudl_context_last_error(ctx_);
  size_t length = 0;
  ASSERT_EQ(cudl_model_describe(m, nullptr, 0, &length), CUDL_OK);
  std::vector<char> buf(length + 1, 'x');
  size_t got = 0;
  EXPECT_EQ(cudl_model_describe(m, buf.data(), length + 1, &got), CUDL_OK);
  EXPECT_EQ(got, length);
  EXPECT_EQ(std::strlen(buf.data()), length);
  EXPECT_EQ(cudl_model_describe(m, buf.data(), length + 1, nullptr), CUDL_OK);
  std::fill(buf.begin(), buf.end(), 'x');
  got = 0;
  EXPECT_EQ(cudl_model_describe(m, buf.data(), length, &got), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(got, length);
  EXPECT_EQ(buf[0], '\0');
  EXPECT_EQ(cudl_model_describe(m, nullptr, 5, &got), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_describe(m, nullptr, 0, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_describe(nullptr, nullptr, 0, &got), CUDL_ERR_INVALID_ARGUMENT);
  cudl_model_destroy(m);

  const int64_t shape[1] = {3};
  ASSERT_EQ(cudl_model_create(ctx_, 1, shape, &m), CUDL_OK);
  int n = 0;
  ASSERT_EQ(cudl_model_add_linear(m, 0, "fc", 2, 1, &n), CUDL_OK);
  EXPECT_EQ(cudl_model_describe(m, nullptr, 0, &got), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("no output"), std::string::npos);
  cudl_model_destroy(m);
}

// ---------------------------------------------------------------------------
// Hand-written files
// ---------------------------------------------------------------------------

// A residual block written by hand, with references by name, by id and to
// the input, defaults and comments, builds the graph the same calls build.
TEST_F(ModelFile, HandWrittenSkipConnections) {
  const std::string text = R"({
  "comment": "a residual block",
  "input_shape": [2, 6, 6],
  "layers": [
    {"kind": "conv2d", "name": "conv1", "out_channels": 4, "kernel_size": 3, "padding": 1,
     "bias": false, "comment": "stem"},
    {"kind": "batchnorm", "name": "bn1"},
    {"kind": "relu", "id": "stem"},
    {"kind": "conv2d", "name": "block.conv", "out_channels": 4, "kernel_size": [3, 3],
     "padding": [1, 1], "bias": false},
    {"kind": "batchnorm", "name": "block.bn"},
    {"kind": "add", "inputs": ["block.bn", "stem"]},
    {"kind": "relu"},
    {"kind": "conv2d", "name": "skip", "input": "input", "out_channels": 4, "kernel_size": 1},
    {"kind": "add", "id": "sum", "inputs": ["skip", "relu_6"]},
    {"kind": "global_avg_pool"},
    {"kind": "flatten"},
    {"kind": "linear", "name": "fc", "out_features": 3}
  ]
})";
  cudl_status s = CUDL_OK;
  cudl_model *m = Parse(text, &s);
  // "relu_6" is no label in this file: ids exist only where they are given.
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(s, CUDL_ERR_FILE_SCHEMA);
  EXPECT_EQ(std::string(cudl_context_last_error(ctx_)),
            "cudl_model_parse: net.json: layers[8] (\"sum\").inputs[1]: no layer is called "
            "\"relu_6\"");
  std::string fixed = text;
  fixed.replace(fixed.find("{\"kind\": \"relu\"}"), 16, "{\"kind\": \"relu\", \"id\": \"out1\"}");
  fixed.replace(fixed.find("\"relu_6\""), 8, "\"out1\"");
  m = Parse(fixed);
  ASSERT_NE(m, nullptr) << cudl_context_last_error(ctx_);

  const int64_t shape[3] = {2, 6, 6};
  cudl_model *ref = nullptr;
  ASSERT_EQ(cudl_model_create(ctx_, 3, shape, &ref), CUDL_OK);
  cudl_conv2d_desc pad1 = CUDL_CONV2D_DESC_DEFAULT;
  pad1.pad_h = pad1.pad_w = 1;
  const cudl_conv2d_desc plain = CUDL_CONV2D_DESC_DEFAULT;
  int n = 0, stem = 0, out1 = 0, skip = 0;
  ASSERT_EQ(cudl_model_add_conv2d(ref, 0, "conv1", 4, 3, 3, &pad1, 0, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_batchnorm(ref, n, "bn1", 0.1f, 1e-5f, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(ref, n, CUDL_ACT_RELU, 0.0f, &stem), CUDL_OK);
  ASSERT_EQ(cudl_model_add_conv2d(ref, stem, "block.conv", 4, 3, 3, &pad1, 0, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_batchnorm(ref, n, "block.bn", 0.1f, 1e-5f, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_add(ref, n, stem, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(ref, n, CUDL_ACT_RELU, 0.0f, &out1), CUDL_OK);
  ASSERT_EQ(cudl_model_add_conv2d(ref, 0, "skip", 4, 1, 1, &plain, 1, &skip), CUDL_OK);
  ASSERT_EQ(cudl_model_add_add(ref, skip, out1, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_global_avg_pool(ref, n, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_flatten(ref, n, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_add_linear(ref, n, "fc", 3, 1, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(ref, n, CUDL_MODEL_LOSS_CROSS_ENTROPY), CUDL_OK);
  const std::string canon = Describe(ref);
  EXPECT_EQ(Describe(m), canon);
  EXPECT_NE(canon.find("{\"kind\": \"relu\", \"id\": \"relu_2\"}"), std::string::npos) << canon;
  EXPECT_NE(canon.find("{\"kind\": \"add\", \"inputs\": [\"block.bn\", \"relu_2\"]}"),
            std::string::npos)
      << canon;
  EXPECT_NE(canon.find("\"name\": \"skip\", \"input\": \"input\""), std::string::npos) << canon;
  EXPECT_EQ(Params(m), Params(ref));
  cudl_model_destroy(ref);
  cudl_model_destroy(m);
}

// "output" picks a layer other than the last; "loss" the loss.
TEST_F(ModelFile, OutputAndLoss) {
  cudl_model *m = Parse(Net(
      "{\"kind\": \"flatten\"}, {\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 3},"
      "{\"kind\": \"sigmoid\"}",
      ", \"output\": \"fc\", \"loss\": \"bce_with_logits\""));
  ASSERT_NE(m, nullptr) << cudl_context_last_error(ctx_);
  const std::string text = Describe(m);
  EXPECT_NE(text.find("\"output\": \"fc\",\n  \"loss\": \"bce_with_logits\""), std::string::npos)
      << text;
  ASSERT_EQ(cudl_model_compile(m, 2), CUDL_OK);
  int64_t shape[3];
  EXPECT_EQ(cudl_model_node_shape(m, 2, shape), 1);
  cudl_model_destroy(m);
}

// An unnamed output that is not the last layer gets an id to be named by.
TEST_F(ModelFile, UnnamedOutputGetsAnId) {
  const int64_t shape[1] = {5};
  cudl_model *m = nullptr;
  int n = 0, out = 0;
  ASSERT_EQ(cudl_model_create(ctx_, 1, shape, &m), CUDL_OK);
  ASSERT_EQ(cudl_model_add_activation(m, 0, CUDL_ACT_TANH, 0.0f, &out), CUDL_OK);
  ASSERT_EQ(cudl_model_add_dropout(m, out, 0.5f, &n), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(m, out, CUDL_MODEL_LOSS_MSE), CUDL_OK);
  const std::string text = Describe(m);
  EXPECT_NE(text.find("{\"kind\": \"tanh\", \"id\": \"tanh_0\"},\n    {\"kind\": \"dropout\"}"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("\"output\": \"tanh_0\""), std::string::npos) << text;
  cudl_model *back = Parse(text);
  ASSERT_NE(back, nullptr) << cudl_context_last_error(ctx_);
  EXPECT_EQ(Describe(back), text);
  cudl_model_destroy(back);
  cudl_model_destroy(m);
}

// ---------------------------------------------------------------------------
// Malformed files: one test per class, the exact message
// ---------------------------------------------------------------------------

TEST_F(ModelFile, JsonSyntaxNamesLineAndColumn) {
  ExpectFailure("{\n  \"input_shape\": [1, 8, 8],\n  \"layers\": [\n    {\"kind\": \"relu\",}\n",
                CUDL_ERR_FILE_JSON, "net.json:4:21: string or '}' expected near '}'");
  ExpectFailure("", CUDL_ERR_FILE_JSON, "net.json:1:0: '[' or '{' expected near end of file");
  ExpectFailure("{\"layers\": [], \"layers\": []}", CUDL_ERR_FILE_DUPLICATE,
                "net.json:1:23: duplicate object key near '\"layers\"'");
}

TEST_F(ModelFile, TopLevelStructure) {
  ExpectFailure("[1]", CUDL_ERR_FILE_SCHEMA,
                "net.json: the top level must be an object, not an array");
  ExpectFailure("{\"input_shape\": [4], \"layer\": []}", CUDL_ERR_FILE_SCHEMA,
                "net.json: layer: unknown key; a model file has version, input_shape, layers, "
                "output, loss and comment");
  ExpectFailure("{\"input_shape\": [4]}", CUDL_ERR_FILE_SCHEMA,
                "net.json: layers: missing: the list of layers is required");
  ExpectFailure("{\"input_shape\": [4], \"layers\": []}", CUDL_ERR_FILE_VALUE,
                "net.json: layers: must list 1 to 16384 layers, not 0");
  ExpectFailure("{\"layers\": [{\"kind\": \"relu\"}]}", CUDL_ERR_FILE_SCHEMA,
                "net.json: input_shape: missing: the per-sample input shape, [C, H, W] or [F], "
                "is required");
  ExpectFailure("{\"input_shape\": [3, 0, 4], \"layers\": [{\"kind\": \"relu\"}]}",
                CUDL_ERR_FILE_VALUE,
                "net.json: input_shape[1]: must be an integer from 1 to 16777216, not 0");
  ExpectFailure("{\"input_shape\": [1, 2, 3, 4], \"layers\": [{\"kind\": \"relu\"}]}",
                CUDL_ERR_FILE_SCHEMA,
                "net.json: input_shape: must be a list of 1 to 3 integers ([C, H, W], [H, W] or "
                "[F]), not a list of another length");
  ExpectFailure("{\"version\": 2, \"input_shape\": [4], \"layers\": [{\"kind\": \"relu\"}]}",
                CUDL_ERR_FILE_VALUE,
                "net.json: version: this cudl reads version 1 of the format, not 2");
}

TEST_F(ModelFile, UnknownKind) {
  ExpectFailure(Net("{\"kind\": \"relu\"}, {\"kind\": \"conv\", \"name\": \"c\"}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[1] (\"c\").kind: unknown kind \"conv\"; the kinds are conv2d, "
                "linear, batchnorm, sigmoid, tanh, relu, leaky_relu, elu, gelu, silu, prelu, "
                "rrelu, dropout, max_pool2d, avg_pool2d, global_avg_pool, flatten, add, concat, "
                "reshape");
  ExpectFailure(Net("{\"name\": \"x\"}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"x\").kind: missing: every layer has a kind");
  ExpectFailure(Net("3"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0]: must be an object, not an integer");
}

TEST_F(ModelFile, UnknownKeyIsATypo) {
  ExpectFailure(Net("{\"kind\": \"conv2d\", \"name\": \"conv1\", \"out_channels\": 4, "
                    "\"kernal_size\": 3}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"conv1\").kernal_size: unknown key; conv2d takes kind, "
                "name, input, id, comment, out_channels, kernel_size, stride, padding, "
                "dilation, groups, bias");
  ExpectFailure(Net("{\"kind\": \"relu\", \"alpha\": 0.1}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (relu).alpha: unknown key; relu takes kind, input, id, "
                "comment");
  ExpectFailure(Net("{\"kind\": \"relu\", \"name\": \"r\"}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"r\").name: relu has no parameters to name; label it "
                "with \"id\" to refer to it");
  ExpectFailure(Net("{\"kind\": \"relu\"}, {\"kind\": \"add\", \"input\": \"input\"}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[1] (add).input: add reads several layers: \"inputs\"");
}

TEST_F(ModelFile, WrongTypes) {
  ExpectFailure(Net("{\"kind\": \"conv2d\", \"name\": \"conv1\", \"out_channels\": 4, "
                    "\"kernel_size\": \"3\"}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"conv1\").kernel_size: must be an integer from 1 to 4096 "
                "or a pair [h, w] of them, not a string");
  ExpectFailure(Net("{\"kind\": \"conv2d\", \"name\": \"conv1\", \"out_channels\": 4.0, "
                    "\"kernel_size\": 3}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"conv1\").out_channels: must be an integer from 1 to "
                "16777216, not a real number");
  ExpectFailure(Net("{\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 2, \"bias\": 0}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"fc\").bias: must be true or false, not an integer");
  ExpectFailure(Net("{\"kind\": \"dropout\", \"p\": \"half\"}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (dropout).p: must be a number from 0 to 1, not a string");
  ExpectFailure(Net("{\"kind\": \"linear\", \"name\": 7, \"out_features\": 2}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (linear).name: must be a string, not an integer");
}

TEST_F(ModelFile, MissingRequiredKeys) {
  ExpectFailure(Net("{\"kind\": \"conv2d\", \"name\": \"conv1\", \"kernel_size\": 3}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"conv1\").out_channels: missing: an integer from 1 to "
                "16777216 is required");
  ExpectFailure(Net("{\"kind\": \"conv2d\", \"out_channels\": 2, \"kernel_size\": 3}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (conv2d).name: missing: a conv2d layer is named (its "
                "parameters are \"<name>.weight\", ...)");
  ExpectFailure(Net("{\"kind\": \"relu\"}, {\"kind\": \"add\"}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[1] (add).inputs: missing: add needs a list of 2 earlier "
                "layers");
}

TEST_F(ModelFile, ValuesOutOfRange) {
  ExpectFailure(Net("{\"kind\": \"relu\"}, {\"kind\": \"conv2d\", \"name\": \"conv1\", "
                    "\"out_channels\": 4, \"kernel_size\": 0}"),
                CUDL_ERR_FILE_VALUE,
                "net.json: layers[1] (\"conv1\").kernel_size: must be an integer from 1 to 4096 "
                "or a pair [h, w] of them, not 0");
  ExpectFailure(Net("{\"kind\": \"max_pool2d\", \"kernel_size\": 2, \"stride\": [1, 0]}"),
                CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (max_pool2d).stride[1]: must be an integer from 1 to 4096, "
                "not 0");
  ExpectFailure(Net("{\"kind\": \"dropout\", \"p\": 1.5}"), CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (dropout).p: must be a number from 0 to 1, not 1.5");
  ExpectFailure(Net("{\"kind\": \"batchnorm\", \"name\": \"bn\", \"eps\": 0}"),
                CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (\"bn\").eps: must be a number from 1e-45 to 1e+30, not 0");
  ExpectFailure(Net("{\"kind\": \"leaky_relu\", \"alpha\": 1e39}"), CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (leaky_relu).alpha: must be a number from -1e+30 to "
                "1e+30, not 1e+39");
  ExpectFailure(Net("{\"kind\": \"rrelu\", \"lower\": 0.5, \"upper\": 0.25}"),
                CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (rrelu).upper: must be at least lower (0.5), not 0.25");
  ExpectFailure(Net("{\"kind\": \"relu\", \"id\": \"\"}"), CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (\"\").id: must be 1 to 112 bytes long, not 0");
}

TEST_F(ModelFile, References) {
  ExpectFailure(Net("{\"kind\": \"relu\", \"input\": \"stem\"}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (relu).input: no layer is called \"stem\"");
  ExpectFailure(Net("{\"kind\": \"relu\", \"input\": \"later\"}, {\"kind\": \"tanh\", \"id\": "
                    "\"later\"}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (relu).input: \"later\" is layers[1], which comes later: a "
                "layer reads only layers before it");
  ExpectFailure(Net("{\"kind\": \"relu\", \"id\": \"me\", \"input\": \"me\"}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (\"me\").input: \"me\" is this layer: a layer reads only "
                "layers before it");
  ExpectFailure(Net("{\"kind\": \"relu\", \"input\": 0}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (relu).input: must be a string naming an earlier layer "
                "(its name or id) or \"input\", not an integer");
  ExpectFailure(Net("{\"kind\": \"relu\"}, {\"kind\": \"add\", \"inputs\": [\"input\"]}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[1] (add).inputs: must be a list of 2 layers (names or ids), "
                "not a list of another length");
  ExpectFailure(Net("{\"kind\": \"flatten\"}", ", \"output\": \"nowhere\""),
                CUDL_ERR_FILE_SCHEMA, "net.json: output: no layer is called \"nowhere\"");
  ExpectFailure(Net("{\"kind\": \"flatten\"}", ", \"output\": \"input\""), CUDL_ERR_FILE_SCHEMA,
                "net.json: output: must be a layer, not the model's input");
  ExpectFailure(Net("{\"kind\": \"flatten\"}", ", \"loss\": \"hinge\""), CUDL_ERR_FILE_SCHEMA,
                "net.json: loss: unknown loss \"hinge\"; the losses are cross_entropy, mse and "
                "bce_with_logits");
}

TEST_F(ModelFile, DuplicateNames) {
  ExpectFailure(Net("{\"kind\": \"conv2d\", \"name\": \"c\", \"out_channels\": 1, "
                    "\"kernel_size\": 1}, {\"kind\": \"relu\", \"id\": \"c\"}"),
                CUDL_ERR_FILE_DUPLICATE,
                "net.json: layers[1] (\"c\").id: \"c\" is already used by layers[0]");
  ExpectFailure(Net("{\"kind\": \"batchnorm\", \"name\": \"input\"}"), CUDL_ERR_FILE_DUPLICATE,
                "net.json: layers[0] (\"input\").name: \"input\" is the model's input; choose "
                "another");
  ExpectFailure(Net("{\"kind\": \"prelu\", \"name\": \"p\", \"id\": \"p\"}"),
                CUDL_ERR_FILE_DUPLICATE,
                "net.json: layers[0] (\"p\").id: \"p\" is the layer's name already");
  // Names from the file may hold control characters: the message stays one
  // line.
  ExpectFailure(Net("{\"kind\": \"relu\", \"id\": \"a\\nb\"}, {\"kind\": \"tanh\", \"id\": "
                    "\"a\\nb\"}"),
                CUDL_ERR_FILE_DUPLICATE,
                "net.json: layers[1] (\"a\\nb\").id: \"a\\nb\" is already used by layers[0]");
}

// What the graph API refuses where the layer stands: its reason, after the
// layer's path.
TEST_F(ModelFile, ShapeErrorsFromTheGraph) {
  ExpectFailure(Net("{\"kind\": \"relu\"}, {\"kind\": \"max_pool2d\", \"kernel_size\": 9}"),
                CUDL_ERR_FILE_SHAPE,
                "net.json: layers[1] (max_pool2d): pool2d: the window does not fit a 8x8 input "
                "(invalid argument)");
  ExpectFailure(Net("{\"kind\": \"conv2d\", \"name\": \"c\", \"out_channels\": 2, "
                    "\"kernel_size\": 3}, {\"kind\": \"add\", \"inputs\": [\"c\", \"input\"]}"),
                CUDL_ERR_FILE_SHAPE,
                "net.json: layers[1] (add): nodes 1 and 0 have different shapes");
  ExpectFailure(Net("{\"kind\": \"relu\"}"), CUDL_ERR_FILE_SHAPE,
                "net.json: loss: cross-entropy needs logits [K] per sample; node 1 has 3 "
                "dimensions (add a flatten)");
  ExpectFailure(Net("{\"kind\": \"flatten\"}, {\"kind\": \"conv2d\", \"name\": \"c\", "
                    "\"out_channels\": 1, \"kernel_size\": 1}"),
                CUDL_ERR_FILE_SHAPE,
                "net.json: layers[1] (\"c\"): input node 1 is not an image ([C, H, W] per "
                "sample)");
}

// The limits that keep an untrusted file from asking for terabytes.
TEST_F(ModelFile, Limits) {
  ExpectFailure("{\"input_shape\": [16777216, 16777216], \"layers\": [{\"kind\": \"relu\"}]}",
                CUDL_ERR_FILE_VALUE, "net.json: input_shape: more than 2^31 values per sample");
  ExpectFailure("{\"input_shape\": [16777216], \"layers\": [{\"kind\": \"linear\", \"name\": "
                "\"fc\", \"out_features\": 16777216}]}",
                CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (\"fc\"): the model would hold more than 2147483648 "
                "parameters and buffers (CUDL_MODEL_FILE_MAX_PARAMETERS)");
  std::string big(CUDL_MODEL_FILE_MAX_BYTES + 1, ' ');
  ExpectFailure(big, CUDL_ERR_FILE_HEADER_SIZE,
                "net.json: 16777217 bytes, more than the 16777216 a model file may have "
                "(CUDL_MODEL_FILE_MAX_BYTES)");
  std::string many = "{\"input_shape\": [4], \"layers\": [";
  for (int i = 0; i <= CUDL_MODEL_FILE_MAX_LAYERS; ++i) many += i ? ",{\"kind\":\"relu\"}" : "{\"kind\":\"relu\"}";
  many += "]}";
  ExpectFailure(many, CUDL_ERR_FILE_VALUE,
                "net.json: layers: must list 1 to 16384 layers, not 16385");
}

TEST_F(ModelFile, BadArguments) {
  cudl_model *m = nullptr;
  EXPECT_EQ(cudl_model_parse(nullptr, "{}", 2, "x", &m), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_parse(ctx_, nullptr, 2, "x", &m), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_parse(ctx_, "{}", 2, "x", nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_read_file(ctx_, nullptr, &m), CUDL_ERR_INVALID_ARGUMENT);
  // No source name: "model file".
  EXPECT_EQ(cudl_model_parse(ctx_, "[]", 2, nullptr, &m), CUDL_ERR_FILE_SCHEMA);
  EXPECT_STREQ(cudl_context_last_error(ctx_),
               "cudl_model_parse: model file: the top level must be an object, not an array");
}

TEST_F(ModelFile, ReadFile) {
  const char *tmp = std::getenv("CUDL_TEST_TMPDIR");
  const std::string dir = tmp != nullptr ? tmp : "/tmp";
  const std::string path = dir + "/test_model_file_read.json";
  {
    std::ofstream out(path, std::ios::binary);
    out << Net("{\"kind\": \"flatten\"}, {\"kind\": \"linear\", \"name\": \"fc\", "
               "\"out_features\": 2, \"bias\": 1}");
  }
  cudl_model *m = nullptr;
  EXPECT_EQ(cudl_model_read_file(ctx_, path.c_str(), &m), CUDL_ERR_FILE_SCHEMA);
  EXPECT_EQ(m, nullptr);
  EXPECT_EQ(std::string(cudl_context_last_error(ctx_)),
            "cudl_model_read_file: " + path +
                ": layers[1] (\"fc\").bias: must be true or false, not an integer");
  {
    std::ofstream out(path, std::ios::binary);
    out << Net("{\"kind\": \"flatten\"}, {\"kind\": \"linear\", \"name\": \"fc\", "
               "\"out_features\": 2}");
  }
  ASSERT_EQ(cudl_model_read_file(ctx_, path.c_str(), &m), CUDL_OK) << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_model_param_count(m), 2);
  cudl_model_destroy(m);
  std::remove(path.c_str());
  EXPECT_EQ(cudl_model_read_file(ctx_, path.c_str(), &m), CUDL_ERR_IO);
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("cannot open"), std::string::npos);
  EXPECT_EQ(cudl_model_read_file(ctx_, dir.c_str(), &m), CUDL_ERR_IO);
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("not a readable regular file"),
            std::string::npos);
}

// ---------------------------------------------------------------------------
// The zoo as files
// ---------------------------------------------------------------------------

struct ZooFile {
  const char *file;
  const char *model;  // as `cudl model describe --model` names it
};

const ZooFile kZooFiles[] = {
    {"mlp.json", "mlp"},           {"small-cnn.json", "small-cnn"},
    {"resnet20.json", "resnet20"}, {"resnet56.json", "resnet56"},
    {"plain20.json", "plain20"},   {"plain56.json", "plain56"},
};

// The zoo model the CLI builds by default for Fashion-MNIST (1x28x28, 10
// classes, small-cnn's dropout 0, the MLP's 256 and 128 ReLU units).
cudl_model *Zoo(cudl_context *ctx, const std::string &name) {
  cudl_model *m = nullptr;
  cudl_status s = CUDL_ERR_INVALID_ARGUMENT;
  if (name == "mlp") {
    const int64_t shape[3] = {1, 28, 28}, widths[2] = {256, 128};
    s = cudl_zoo_mlp(ctx, 3, shape, 2, widths, CUDL_ACT_RELU, 0.0f, 10, &m);
  } else if (name == "small-cnn") {
    s = cudl_zoo_small_cnn(ctx, 1, 28, 28, 10, 0.0f, &m);
  } else if (name.rfind("resnet", 0) == 0) {
    s = cudl_zoo_resnet(ctx, std::stoi(name.substr(6)), 0, 1, 28, 28, 10, &m);
  } else if (name.rfind("plain", 0) == 0) {
    s = cudl_zoo_resnet(ctx, std::stoi(name.substr(5)), 1, 1, 28, 28, 10, &m);
  }
  EXPECT_EQ(s, CUDL_OK) << name;
  return m;
}

// The committed files are what the zoo describes today; regenerate with
// `cudl model describe --model NAME --output examples/models/NAME.json`.
TEST_F(ModelFile, ZooFilesAreCurrent) {
  for (const ZooFile &z : kZooFiles) {
    SCOPED_TRACE(z.file);
    cudl_model *zoo = Zoo(ctx_, z.model);
    ASSERT_NE(zoo, nullptr);
    const std::string committed = ReadText(kModels + z.file);
    EXPECT_FALSE(committed.empty()) << kModels + z.file;
    EXPECT_TRUE(committed == Describe(zoo))
        << z.file << " differs from what the zoo describes: regenerate it with `cudl model "
        << "describe --model " << z.model << " --output examples/models/" << z.file << "`";
    cudl_model_destroy(zoo);
  }
}

// Each file builds the zoo's graph: the same nodes and shapes, parameter
// names, shapes and count, and describes back to itself.
TEST_F(ModelFile, ZooFilesBuildTheZoo) {
  for (const ZooFile &z : kZooFiles) {
    SCOPED_TRACE(z.file);
    cudl_model *zoo = Zoo(ctx_, z.model);
    cudl_model *file = nullptr;
    ASSERT_EQ(cudl_model_read_file(ctx_, (kModels + z.file).c_str(), &file), CUDL_OK)
        << cudl_context_last_error(ctx_);
    EXPECT_EQ(Describe(file), ReadText(kModels + z.file));
    ASSERT_EQ(cudl_model_node_count(file), cudl_model_node_count(zoo));
    for (int i = 0; i < cudl_model_node_count(zoo); ++i) {
      int64_t a[3] = {0, 0, 0}, b[3] = {0, 0, 0};
      EXPECT_EQ(cudl_model_node_shape(file, i, b), cudl_model_node_shape(zoo, i, a)) << i;
      EXPECT_EQ(std::vector<int64_t>(a, a + 3), std::vector<int64_t>(b, b + 3)) << i;
    }
    int64_t flops_zoo = 0, flops_file = 0;
    EXPECT_EQ(cudl_model_flops(zoo, &flops_zoo), CUDL_OK);
    EXPECT_EQ(cudl_model_flops(file, &flops_file), CUDL_OK);
    EXPECT_EQ(flops_file, flops_zoo);
    const std::vector<Param> pz = Params(zoo), pf = Params(file);
    EXPECT_EQ(pf, pz);
    EXPECT_EQ(cudl_tensor_numel(cudl_model_params(file)),
              cudl_tensor_numel(cudl_model_params(zoo)));
    cudl_model_destroy(file);
    cudl_model_destroy(zoo);
  }
}

// Training losses of a model: `steps` SGD steps (momentum 0.9) on seeded
// Kaiming weights and a fixed random batch.
std::vector<float> TrainLosses(cudl_context *ctx, cudl_model *m, int steps) {
  std::vector<float> losses;
  const int64_t batch = 8;
  EXPECT_EQ(cudl_model_compile(m, batch), CUDL_OK) << cudl_context_last_error(ctx);
  EXPECT_EQ(cudl_context_set_seed(ctx, 17), CUDL_OK);
  EXPECT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL), CUDL_OK);
  const int64_t xs[4] = {batch, 1, 28, 28}, ls[1] = {batch};
  cudl_tensor *x = nullptr, *labels = nullptr;
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &x), CUDL_OK);
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, ls, &labels), CUDL_OK);
  std::vector<float> xv(static_cast<size_t>(batch * 28 * 28));
  uint32_t state = 12345;
  for (float &v : xv) {
    state = state * 1664525u + 1013904223u;
    v = static_cast<float>(state >> 8) / 16777216.0f - 0.5f;
  }
  std::vector<int32_t> lv(static_cast<size_t>(batch));
  for (int i = 0; i < batch; ++i) lv[static_cast<size_t>(i)] = (i * 7) % 10;
  EXPECT_EQ(cudl_tensor_copy_from_host(x, xv.data(), xv.size() * sizeof(float)), CUDL_OK);
  EXPECT_EQ(cudl_tensor_copy_from_host(labels, lv.data(), lv.size() * sizeof(int32_t)), CUDL_OK);
  cudl_optimizer_config config;
  EXPECT_EQ(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &config), CUDL_OK);
  config.lr = 0.01f;
  config.momentum = 0.9f;
  cudl_optimizer *opt = nullptr;
  EXPECT_EQ(cudl_optimizer_create(ctx, &config, cudl_tensor_numel(cudl_model_params(m)), &opt),
            CUDL_OK);
  for (int step = 0; step < steps && opt != nullptr; ++step) {
    float loss = NAN;
    EXPECT_EQ(cudl_model_forward(m, x, labels, &loss), CUDL_OK) << cudl_context_last_error(ctx);
    EXPECT_EQ(cudl_model_backward(m), CUDL_OK) << cudl_context_last_error(ctx);
    EXPECT_EQ(cudl_optimizer_step(opt, cudl_model_params(m), cudl_model_grads(m), config.lr),
              CUDL_OK);
    losses.push_back(loss);
  }
  cudl_optimizer_destroy(opt);
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  return losses;
}

// The Done-when line of issue 17: the zoo rebuilt from its files trains to
// bit-identical losses on the CPU.
TEST_F(ModelFile, ZooFilesTrainBitIdentically) {
  for (const char *name : {"small-cnn", "resnet20", "mlp"}) {
    SCOPED_TRACE(name);
    cudl_model *zoo = Zoo(ctx_, name);
    cudl_model *file = nullptr;
    ASSERT_EQ(cudl_model_read_file(ctx_, (kModels + name + ".json").c_str(), &file), CUDL_OK)
        << cudl_context_last_error(ctx_);
    const std::vector<float> a = TrainLosses(ctx_, zoo, 3);
    const std::vector<float> b = TrainLosses(ctx_, file, 3);
    ASSERT_EQ(a.size(), 3u);
    ASSERT_EQ(b.size(), 3u);
    for (size_t i = 0; i < a.size(); ++i) {
      std::printf("[ model file ] %s step %zu: zoo %.9g, file %.9g\n", name, i, a[i], b[i]);
      EXPECT_EQ(std::memcmp(&a[i], &b[i], sizeof(float)), 0) << "step " << i;
    }
    // The steps trained: the loss moved.
    EXPECT_NE(a[0], a[2]);
    cudl_model_destroy(file);
    cudl_model_destroy(zoo);
  }
}

// The kinds that came with concatenation, reshape, SiLU and ceil mode: a
// hand-written file with an inferred size, its canonical form, and the
// errors of each new key.
TEST_F(ModelFile, ConcatReshapeSiluAndCeilMode) {
  const std::string text = Net(
      "{\"kind\": \"conv2d\", \"name\": \"a\", \"out_channels\": 2, \"kernel_size\": 1},"
      "{\"kind\": \"conv2d\", \"name\": \"b\", \"input\": \"input\", \"out_channels\": 3, "
      "\"kernel_size\": 1},"
      "{\"kind\": \"concat\", \"inputs\": [\"a\", \"b\"]},"
      "{\"kind\": \"silu\"},"
      "{\"kind\": \"max_pool2d\", \"kernel_size\": 3, \"stride\": 2, \"ceil_mode\": true},"
      "{\"kind\": \"reshape\", \"shape\": [5, -1]},"
      "{\"kind\": \"flatten\"},"
      "{\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 2}");
  cudl_model *m = Parse(text);
  ASSERT_NE(m, nullptr) << cudl_context_last_error(ctx_);
  // 8x8 pooled by 3 with stride 2: 3 by floor, 4 with ceil mode.
  int64_t shape[3] = {0, 0, 0};
  ASSERT_EQ(cudl_model_node_shape(m, 5, shape), 3);
  EXPECT_EQ(std::vector<int64_t>(shape, shape + 3), (std::vector<int64_t>{5, 4, 4}));
  ASSERT_EQ(cudl_model_node_shape(m, 6, shape), 2);
  EXPECT_EQ(shape[0], 5);
  EXPECT_EQ(shape[1], 16);  // the -1, inferred
  const std::string canonical = Describe(m);
  EXPECT_NE(canonical.find("{\"kind\": \"concat\", \"inputs\": [\"a\", \"b\"]},"),
            std::string::npos)
      << canonical;
  EXPECT_NE(canonical.find("{\"kind\": \"reshape\", \"shape\": [5, 16]},"), std::string::npos)
      << canonical;
  EXPECT_NE(canonical.find("\"stride\": 2, \"ceil_mode\": true},"), std::string::npos)
      << canonical;
  cudl_model *again = Parse(canonical);
  ASSERT_NE(again, nullptr) << cudl_context_last_error(ctx_);
  EXPECT_EQ(Describe(again), canonical);
  EXPECT_EQ(Params(again), Params(m));
  cudl_model_destroy(again);
  cudl_model_destroy(m);

  ExpectFailure(Net("{\"kind\": \"relu\", \"id\": \"r\"}, {\"kind\": \"concat\", \"inputs\": "
                    "[\"r\"]}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[1] (concat).inputs: must be a list of 2 to 8 layers (names or "
                "ids), not a list of another length");
  ExpectFailure(Net("{\"kind\": \"reshape\"}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (reshape).shape: missing: a reshape gives the per-sample "
                "shape");
  ExpectFailure(Net("{\"kind\": \"reshape\", \"shape\": [1, 1, 8, 8]}"), CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (reshape).shape: must be an array of 1 to 3 sizes, not an "
                "array of another length");
  ExpectFailure(Net("{\"kind\": \"reshape\", \"shape\": [0, 64]}"), CUDL_ERR_FILE_VALUE,
                "net.json: layers[0] (reshape).shape[0]: must be an integer from 1 to 16777216 "
                "or -1 (inferred), not 0");
  ExpectFailure(Net("{\"kind\": \"max_pool2d\", \"kernel_size\": 2, \"ceil_mode\": 1}"),
                CUDL_ERR_FILE_SCHEMA,
                "net.json: layers[0] (max_pool2d).ceil_mode: must be true or false, not an "
                "integer");
  // A shape the graph refuses: the graph's reason after the layer's path.
  cudl_status s = CUDL_OK;
  EXPECT_EQ(Parse(Net("{\"kind\": \"reshape\", \"shape\": [7, -1]}"), &s), nullptr);
  EXPECT_EQ(s, CUDL_ERR_FILE_SHAPE) << cudl_context_last_error(ctx_);
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("net.json: layers[0] (reshape): "),
            std::string::npos)
      << cudl_context_last_error(ctx_);
}
