// test_onnx.cpp - the ONNX export (cudl/onnx.h) and its protobuf encoder
// (src/nn/protobuf.h):
//
//  * the encoder's bytes against hand-computed wire format: varints at
//    every length boundary (1 to 10 bytes), negative int64, keys of large
//    field numbers, fixed32 floats, length-delimited fields, nested
//    messages whose length needs one, two or three bytes, little-endian
//    float arrays; its sticky failures (out of memory, unbalanced ends);
//  * the export's contract: NULL and bad arguments, metadata rules,
//    uncompiled models, MSE without probabilities, a failing callback,
//    layer names that are not UTF-8 - each with its status and message,
//    the model usable afterwards;
//  * the file: deterministic, the same bytes in both layouts, starting
//    with the IR version, holding the opset, producer, metadata and
//    parameter names; every allocation failure gives CUDL_ERR_OUT_OF_MEMORY
//    without leaking or writing anything.
// What the file computes is checked against ONNX Runtime and the ONNX
// checker in tests/interop (onnx-interop.sh).
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "nn/protobuf.h"
#include "test_util.h"

namespace {

using cudl_test::CountingAllocator;

std::vector<unsigned char> Bytes(const cudl__pb &pb) {
  return std::vector<unsigned char>(pb.data, pb.data + pb.length);
}

class Protobuf : public ::testing::Test {
 protected:
  void SetUp() override { cudl__pb_init(&pb_, &cudl__default_allocator); }
  void TearDown() override { cudl__pb_release(&pb_); }
  cudl__pb pb_;
};

TEST_F(Protobuf, VarintsAtEveryLengthBoundary) {
  const struct {
    uint64_t value;
    std::vector<unsigned char> bytes;
  } cases[] = {
      {0, {0x00}},
      {1, {0x01}},
      {127, {0x7f}},
      {128, {0x80, 0x01}},
      {300, {0xac, 0x02}},  // the protobuf guide's example
      {16383, {0xff, 0x7f}},
      {16384, {0x80, 0x80, 0x01}},
      {(uint64_t)1 << 35, {0x80, 0x80, 0x80, 0x80, 0x80, 0x01}},
      {UINT64_MAX,
       {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}},
  };
  for (const auto &c : cases) {
    cudl__pb_release(&pb_);
    cudl__pb_init(&pb_, &cudl__default_allocator);
    cudl__pb_varint(&pb_, c.value);
    EXPECT_EQ(Bytes(pb_), c.bytes) << c.value;
    EXPECT_EQ(cudl__pb_varint_size(c.value), c.bytes.size()) << c.value;
  }
}

TEST_F(Protobuf, FieldsOfEachWireType) {
  cudl__pb_int(&pb_, 1, 8);        // key 0x08
  cudl__pb_int(&pb_, 3, -1);       // two's complement: ten bytes
  cudl__pb_float(&pb_, 2, 1.0f);   // key 0x15, 0x3f800000 little-endian
  cudl__pb_string(&pb_, 4, "ab");  // key 0x22, length 2
  cudl__pb_int(&pb_, 16, 1);       // a field number needing a 2-byte key
  cudl__pb_bytes(&pb_, 9, "", 0);  // empty bytes: key and zero length
  const std::vector<unsigned char> want = {
      0x08, 0x08, 0x18, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff,
      0xff, 0xff, 0x01, 0x15, 0x00, 0x00, 0x80, 0x3f, 0x22, 0x02,
      'a',  'b',  0x80, 0x01, 0x01, 0x4a, 0x00};
  EXPECT_EQ(Bytes(pb_), want);
  EXPECT_EQ(pb_.failed, CUDL__PB_OK);
}

TEST_F(Protobuf, FloatsLittleEndian) {
  const float values[3] = {1.0f, -2.0f, 0.5f};
  cudl__pb_floats_le(&pb_, 9, values, 3);
  const std::vector<unsigned char> want = {
      0x4a, 12,   0x00, 0x00, 0x80, 0x3f, 0x00, 0x00,
      0x00, 0xc0, 0x00, 0x00, 0x00, 0x3f};
  EXPECT_EQ(Bytes(pb_), want);
}

TEST_F(Protobuf, NestedMessagesGetTheirLengthInFront) {
  cudl__pb_int(&pb_, 1, 7);
  cudl__pb_begin(&pb_, 7);
  cudl__pb_string(&pb_, 2, "ab");
  cudl__pb_begin(&pb_, 5);
  cudl__pb_end(&pb_);  // empty
  cudl__pb_end(&pb_);
  cudl__pb_int(&pb_, 2, 3);
  const std::vector<unsigned char> want = {0x08, 0x07, 0x3a, 0x06, 0x12, 0x02,
                                           'a',  'b',  0x2a, 0x00, 0x10, 0x03};
  EXPECT_EQ(Bytes(pb_), want);
  EXPECT_EQ(pb_.depth, 0);
}

// Contents of 127, 128 and 16384 bytes: lengths of one, two and three
// bytes, the contents moved behind them intact.
TEST_F(Protobuf, NestedLengthsOfOneTwoAndThreeBytes) {
  for (size_t size : {size_t{127}, size_t{128}, size_t{16384}}) {
    std::vector<unsigned char> payload(size - 2 - (size > 129 ? 1 : 0));
    cudl__pb_release(&pb_);
    cudl__pb_init(&pb_, &cudl__default_allocator);
    for (size_t k = 0; k < payload.size(); ++k)
      payload[k] = static_cast<unsigned char>(k * 7 + 1);
    cudl__pb_begin(&pb_, 1);
    cudl__pb_bytes(&pb_, 2, payload.data(), payload.size());
    cudl__pb_end(&pb_);
    const size_t inner = 1 + cudl__pb_varint_size(payload.size()) + payload.size();
    ASSERT_EQ(inner, size);
    std::vector<unsigned char> want = {0x0a};
    uint64_t v = inner;
    while (v >= 0x80) {
      want.push_back(static_cast<unsigned char>(v | 0x80));
      v >>= 7;
    }
    want.push_back(static_cast<unsigned char>(v));
    want.push_back(0x12);
    v = payload.size();
    while (v >= 0x80) {
      want.push_back(static_cast<unsigned char>(v | 0x80));
      v >>= 7;
    }
    want.push_back(static_cast<unsigned char>(v));
    want.insert(want.end(), payload.begin(), payload.end());
    EXPECT_EQ(Bytes(pb_), want) << size;
  }
}

TEST_F(Protobuf, FailuresAreSticky) {
  cudl__pb_end(&pb_);  // no begin
  EXPECT_EQ(pb_.failed, CUDL__PB_TOO_DEEP);
  cudl__pb_int(&pb_, 1, 1);
  EXPECT_EQ(pb_.length, 0u);

  cudl__pb deep;
  cudl__pb_init(&deep, &cudl__default_allocator);
  for (int k = 0; k <= CUDL__PB_MAX_DEPTH; ++k) cudl__pb_begin(&deep, 1);
  EXPECT_EQ(deep.failed, CUDL__PB_TOO_DEEP);
  cudl__pb_release(&deep);

  CountingAllocator counting;
  counting.fail_at = 1;
  const cudl_allocator hooks = counting.hooks();
  cudl__pb oom;
  cudl__pb_init(&oom, &hooks);
  cudl__pb_int(&oom, 1, 1);
  EXPECT_EQ(oom.failed, CUDL__PB_OUT_OF_MEMORY);
  cudl__pb_string(&oom, 2, "more");
  EXPECT_EQ(oom.length, 0u);
  cudl__pb_release(&oom);
  EXPECT_TRUE(counting.live.empty());
}

// ---- the export ----

struct Sink {
  std::string bytes;
  int calls = 0;
  cudl_status answer = CUDL_OK;
};

cudl_status Collect(void *user, const void *data, size_t size) {
  Sink *sink = static_cast<Sink *>(user);
  ++sink->calls;
  if (sink->answer != CUDL_OK) return sink->answer;
  sink->bytes.append(static_cast<const char *>(data), size);
  return CUDL_OK;
}

const char kNet[] =
    "{\"version\": 1, \"input_shape\": [2, 6, 6], \"layers\": ["
    "{\"kind\": \"conv2d\", \"name\": \"conv1\", \"out_channels\": 3, "
    "\"kernel_size\": 3, \"padding\": 1},"
    "{\"kind\": \"batchnorm\", \"name\": \"bn1\"},"
    "{\"kind\": \"gelu\"},"
    "{\"kind\": \"max_pool2d\", \"kernel_size\": 2},"
    "{\"kind\": \"reshape\", \"shape\": [3, -1]},"
    "{\"kind\": \"flatten\"},"
    "{\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 4}]}";

class OnnxExport : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK);
  }
  void TearDown() override {
    cudl_model_destroy(model_);
    cudl_context_destroy(ctx_);
  }
  cudl_model *Build(cudl_layout layout = CUDL_LAYOUT_NCHW, bool compile = true,
                    const char *text = kNet) {
    cudl_model *m = nullptr;
    EXPECT_EQ(cudl_model_parse(ctx_, text, strlen(text), "net", &m), CUDL_OK)
        << cudl_context_last_error(ctx_);
    if (m == nullptr) return nullptr;
    EXPECT_EQ(cudl_model_set_layout(m, layout), CUDL_OK);
    if (compile) {
      EXPECT_EQ(cudl_model_compile(m, 2), CUDL_OK);
      cudl_tensor *p = cudl_model_params(m);
      std::vector<float> values(static_cast<size_t>(cudl_tensor_numel(p)));
      for (size_t k = 0; k < values.size(); ++k)
        values[k] = 0.01f * static_cast<float>(k % 17) - 0.05f;
      EXPECT_EQ(cudl_tensor_copy_from_host(p, values.data(),
                                           values.size() * sizeof(float)),
                CUDL_OK);
    }
    return m;
  }
  std::string Export(cudl_model *m, const cudl_onnx_options *o = nullptr) {
    Sink sink;
    EXPECT_EQ(cudl_model_export_onnx(m, o, Collect, &sink), CUDL_OK)
        << cudl_context_last_error(ctx_);
    return sink.bytes;
  }
  std::string Error() const { return cudl_context_last_error(ctx_); }
  cudl_context *ctx_ = nullptr;
  cudl_model *model_ = nullptr;
};

bool Contains(const std::string &haystack, const std::string &needle) {
  return haystack.find(needle) != std::string::npos;
}

TEST_F(OnnxExport, FileHoldsWhatTheDocsPromise) {
  model_ = Build();
  const cudl_metadata_pair meta[2] = {{"classes", "[\"a\",\"b\",\"c\",\"d\"]"},
                                      {"normalize.mean", "0.5"}};
  cudl_onnx_options o = {};
  o.metadata = meta;
  o.metadata_count = 2;
  o.probabilities = 1;
  const std::string file = Export(model_, &o);
  ASSERT_GT(file.size(), 100u);
  // ir_version (field 1) = 8 first, then producer "cudl" (field 2).
  EXPECT_EQ(file.substr(0, 8), std::string("\x08\x08\x12\x04" "cudl", 8));
  // The opset import: domain "" and version 17.
  EXPECT_TRUE(Contains(file, std::string("\x42\x04\x0a\x00\x10\x11", 6)));
  for (const char *text :
       {"conv1.weight", "conv1.bias", "bn1.running_var", "fc.weight",
        "Conv", "BatchNormalization", "Erf", "MaxPool", "Reshape", "Flatten",
        "Gemm", "Softmax", "probabilities", "input", "output", "normalize.mean",
        "[\"a\",\"b\",\"c\",\"d\"]", "cudl.version", "cudl.architecture"})
    EXPECT_TRUE(Contains(file, text)) << text;
  EXPECT_TRUE(Contains(file, cudl_version()));
  // Deterministic.
  EXPECT_EQ(Export(model_, &o), file);
}

TEST_F(OnnxExport, SameBytesInEitherLayout) {
  model_ = Build(CUDL_LAYOUT_NCHW);
  cudl_model *nhwc = Build(CUDL_LAYOUT_NHWC);
  ASSERT_NE(nhwc, nullptr);
  EXPECT_EQ(Export(model_), Export(nhwc));
  cudl_model_destroy(nhwc);
}

TEST_F(OnnxExport, BadArguments) {
  Sink sink;
  EXPECT_EQ(cudl_model_export_onnx(nullptr, nullptr, Collect, &sink),
            CUDL_ERR_INVALID_ARGUMENT);
  model_ = Build(CUDL_LAYOUT_NCHW, false);
  EXPECT_EQ(cudl_model_export_onnx(model_, nullptr, nullptr, nullptr),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(Error(), "write is NULL")) << Error();
  EXPECT_EQ(cudl_model_export_onnx(model_, nullptr, Collect, &sink),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(Error(), "not compiled")) << Error();
  EXPECT_EQ(sink.calls, 0);
}

TEST_F(OnnxExport, MetadataRules) {
  model_ = Build();
  Sink sink;
  cudl_onnx_options o = {};
  o.metadata_count = 1;
  EXPECT_EQ(cudl_model_export_onnx(model_, &o, Collect, &sink),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(Error(), "metadata is NULL")) << Error();

  const struct {
    cudl_metadata_pair pairs[2];
    size_t count;
    const char *message;
  } bad[] = {
      {{{"", "x"}, {"", ""}}, 1, "non-empty"},
      {{{"k", nullptr}, {"", ""}}, 1, "non-empty"},
      {{{"k", "\xff"}, {"", ""}}, 1, "UTF-8"},
      {{{"a", "1"}, {"a", "2"}}, 2, "repeats metadata[0]"},
      {{{"cudl.version", "0"}, {"", ""}}, 1, "written by the export"},
      {{{"cudl.architecture", "{}"}, {"", ""}}, 1, "written by the export"},
  };
  for (const auto &b : bad) {
    o.metadata = b.pairs;
    o.metadata_count = b.count;
    EXPECT_EQ(cudl_model_export_onnx(model_, &o, Collect, &sink),
              CUDL_ERR_INVALID_ARGUMENT)
        << b.message;
    EXPECT_TRUE(Contains(Error(), b.message)) << Error();
  }
  EXPECT_EQ(sink.calls, 0);
  // The model is still usable.
  EXPECT_FALSE(Export(model_).empty());
}

TEST_F(OnnxExport, ProbabilitiesNeedAClassifier) {
  const char mse[] =
      "{\"version\": 1, \"input_shape\": [3], \"layers\": ["
      "{\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 2}],"
      " \"loss\": \"mse\"}";
  model_ = Build(CUDL_LAYOUT_NCHW, true, mse);
  cudl_onnx_options o = {};
  o.probabilities = 1;
  Sink sink;
  EXPECT_EQ(cudl_model_export_onnx(model_, &o, Collect, &sink),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(Error(), "MSE")) << Error();
  o.probabilities = 0;
  EXPECT_FALSE(Contains(Export(model_, &o), "probabilities"));
}

TEST_F(OnnxExport, CallbackStatusIsReturned) {
  model_ = Build();
  Sink sink;
  sink.answer = CUDL_ERR_IO;
  EXPECT_EQ(cudl_model_export_onnx(model_, nullptr, Collect, &sink),
            CUDL_ERR_IO);
  EXPECT_EQ(sink.calls, 1);
}

TEST_F(OnnxExport, NamesMustBeUtf8) {
  const char text[] =
      "{\"version\": 1, \"input_shape\": [3], \"layers\": ["
      "{\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 2}]}";
  model_ = Build(CUDL_LAYOUT_NCHW, false, text);
  // The graph API takes any bytes as a name; the file format only UTF-8.
  int fc2 = -1;
  ASSERT_EQ(cudl_model_add_linear(model_, 1, "bad\xc3(", 2, 1, &fc2), CUDL_OK);
  ASSERT_EQ(cudl_model_set_output(model_, fc2, CUDL_MODEL_LOSS_CROSS_ENTROPY),
            CUDL_OK);
  ASSERT_EQ(cudl_model_compile(model_, 1), CUDL_OK);
  Sink sink;
  EXPECT_EQ(cudl_model_export_onnx(model_, nullptr, Collect, &sink),
            CUDL_ERR_UNSUPPORTED);
  EXPECT_TRUE(Contains(Error(), "node 2")) << Error();
  EXPECT_EQ(sink.calls, 0);
}

// Every allocation of the export fails once in turn: each gives
// CUDL_ERR_OUT_OF_MEMORY, writes nothing and leaks nothing; then it works.
TEST_F(OnnxExport, EveryAllocationFailureIsClean) {
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  model_ = Build();
  const size_t live = counting.live.size();
  int failures = 0;
  for (size_t k = 1; k < 200; ++k) {
    counting.fail_at = counting.allocs + counting.failed + k;
    Sink sink;
    const cudl_status s = cudl_model_export_onnx(model_, nullptr, Collect, &sink);
    EXPECT_EQ(counting.live.size(), live) << k;
    if (s == CUDL_OK) break;
    ++failures;
    EXPECT_EQ(s, CUDL_ERR_OUT_OF_MEMORY) << k;
    EXPECT_EQ(sink.calls, 0) << k;
  }
  counting.fail_at = 0;
  EXPECT_GE(failures, 3);  // the host copy, the two builders, the file ...
  EXPECT_FALSE(Export(model_).empty());
  EXPECT_EQ(counting.size_mismatches, 0u);
  EXPECT_EQ(counting.unknown_frees, 0u);
  cudl_model_destroy(model_);
  model_ = nullptr;
}

}  // namespace
