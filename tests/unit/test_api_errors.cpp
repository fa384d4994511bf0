// Bad arguments to the public API, one row a call (issue 13, item 11).
//
// status.h promises that a failing call with a context records a detail
// message (cudl_context_last_error). Each row calls one public function with
// one bad argument and checks three things: the documented status; a
// message from that function (it starts with the function's name, so it is
// not left over from an earlier call) that names the argument; and that
// every object of the fixture still works afterwards (the context, a
// compiled model, an uncompiled one, the optimizer, an event).
#include <gtest/gtest.h>

#include <climits>
#include <cstdint>
#include <cstdlib>
#include <functional>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::HasSubstr;
using cudl_test::StartsWith;

// A file of this test alone: ctest runs the rows in parallel.
std::string TempPath(const std::string &name) {
  const char *dir = std::getenv("CUDL_TEST_TMPDIR");
  const ::testing::TestInfo *test = ::testing::UnitTest::GetInstance()->current_test_info();
  std::string tag = test != nullptr ? std::string(test->test_suite_name()) + "." + test->name()
                                    : std::string("none");
  for (char &c : tag)
    if (c == '/') c = '_';
  return std::string(dir != nullptr ? dir : ".") + "/api_errors_" + tag + "_" + name;
}

// Conv (1 -> 2 channels, 3x3) on 1x6x6, flatten, linear to 3 classes.
cudl_status BuildModel(cudl_context *ctx, cudl_model **out) {
  const int64_t in[3] = {1, 6, 6};
  cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
  int conv = 0, flat = 0, fc = 0;
  cudl_status s = cudl_model_create(ctx, 3, in, out);
  if (s == CUDL_OK) s = cudl_model_add_conv2d(*out, 0, "conv", 2, 3, 3, &d, 1, &conv);
  if (s == CUDL_OK) s = cudl_model_add_flatten(*out, conv, &flat);
  if (s == CUDL_OK) s = cudl_model_add_linear(*out, flat, "fc", 3, 1, &fc);
  if (s == CUDL_OK) s = cudl_model_set_output(*out, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY);
  return s;
}

struct Fixture {
  cudl_context *ctx = nullptr;
  cudl_model *model = nullptr;          // compiled, initialised
  cudl_model *uncompiled = nullptr;     // built, output set, not compiled
  cudl_optimizer *opt = nullptr;        // for the compiled model
  cudl_optimizer *wrong_opt = nullptr;  // SGD without state, 1 parameter too many
  cudl_event *start = nullptr, *end = nullptr;
  cudl_safetensors *set = nullptr;  // the compiled model's tensors
  cudl_tensor *x = nullptr, *labels = nullptr;
  cudl_train_state state = {};
  std::string model_path = TempPath("model.safetensors");
  std::string checkpoint_path = TempPath("checkpoint.safetensors");
  int uncompiled_nodes = 0;
};

void SetUpFixture(Fixture &f) {
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &f.ctx), CUDL_OK);
  ASSERT_EQ(BuildModel(f.ctx, &f.model), CUDL_OK);
  ASSERT_EQ(cudl_model_compile(f.model, 4), CUDL_OK);
  ASSERT_EQ(cudl_context_set_seed(f.ctx, 3), CUDL_OK);
  ASSERT_EQ(cudl_model_init(f.model, CUDL_INIT_KAIMING_NORMAL), CUDL_OK);
  ASSERT_EQ(BuildModel(f.ctx, &f.uncompiled), CUDL_OK);
  f.uncompiled_nodes = cudl_model_node_count(f.uncompiled);
  const int64_t params = cudl_tensor_numel(cudl_model_params(f.model));
  cudl_optimizer_config oc;
  ASSERT_EQ(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &oc), CUDL_OK);
  ASSERT_EQ(cudl_optimizer_create(f.ctx, &oc, params + 1, &f.wrong_opt), CUDL_OK);
  oc.momentum = 0.9f;
  ASSERT_EQ(cudl_optimizer_create(f.ctx, &oc, params, &f.opt), CUDL_OK);
  ASSERT_EQ(cudl_event_create(f.ctx, &f.start), CUDL_OK);
  ASSERT_EQ(cudl_event_create(f.ctx, &f.end), CUDL_OK);
  ASSERT_EQ(cudl_event_record(f.start), CUDL_OK);
  ASSERT_EQ(cudl_event_record(f.end), CUDL_OK);
  ASSERT_EQ(cudl_model_save(f.model, f.model_path.c_str(), nullptr, 0), CUDL_OK);
  ASSERT_EQ(cudl_checkpoint_save(f.model, f.opt, &f.state, nullptr, 0, f.checkpoint_path.c_str()),
            CUDL_OK);
  ASSERT_EQ(cudl_safetensors_load(f.ctx, f.model_path.c_str(), 0, &f.set), CUDL_OK);
  const int64_t xs[4] = {2, 1, 6, 6};
  ASSERT_EQ(cudl_tensor_create(f.ctx, CUDL_DTYPE_F32, 4, xs, &f.x), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(f.ctx, CUDL_DTYPE_I32, 1, xs, &f.labels), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(f.x, -1.0f, 1.0f), CUDL_OK);
  ASSERT_STREQ(cudl_context_last_error(f.ctx), "");
}

void TearDownFixture(Fixture &f) {
  cudl_tensor_destroy(f.x);
  cudl_tensor_destroy(f.labels);
  cudl_safetensors_destroy(f.set);
  cudl_event_destroy(f.start);
  cudl_event_destroy(f.end);
  cudl_optimizer_destroy(f.opt);
  cudl_optimizer_destroy(f.wrong_opt);
  cudl_model_destroy(f.uncompiled);
  cudl_model_destroy(f.model);
  cudl_context_destroy(f.ctx);
  std::remove(f.model_path.c_str());
  std::remove(f.checkpoint_path.c_str());
}

// Everything in the fixture still does its job after the failed call.
void ExpectUsable(Fixture &f) {
  cudl_memory_stats stats;
  EXPECT_EQ(cudl_context_memory_stats(f.ctx, &stats), CUDL_OK);
  uint64_t seed = 0, offset = 0;
  EXPECT_EQ(cudl_context_rng_state(f.ctx, &seed, &offset), CUDL_OK);
  EXPECT_EQ(seed, 3u);
  double ms = -1.0;
  EXPECT_EQ(cudl_event_record(f.end), CUDL_OK);
  EXPECT_EQ(cudl_event_elapsed_ms(f.start, f.end, &ms), CUDL_OK);
  EXPECT_GE(ms, 0.0);
  // The compiled model trains a step and saves and loads a checkpoint.
  float loss = 0.0f;
  EXPECT_EQ(cudl_model_forward(f.model, f.x, f.labels, &loss), CUDL_OK)
      << cudl_context_last_error(f.ctx);
  EXPECT_TRUE(std::isfinite(loss));
  EXPECT_EQ(cudl_model_backward(f.model), CUDL_OK);
  EXPECT_EQ(
      cudl_optimizer_step(f.opt, cudl_model_params(f.model), cudl_model_grads(f.model), 0.01f),
      CUDL_OK);
  EXPECT_EQ(cudl_checkpoint_save(f.model, f.opt, &f.state, nullptr, 0, f.checkpoint_path.c_str()),
            CUDL_OK)
      << cudl_context_last_error(f.ctx);
  EXPECT_EQ(cudl_checkpoint_load(f.model, f.opt, nullptr, f.checkpoint_path.c_str()), CUDL_OK)
      << cudl_context_last_error(f.ctx);
  // The uncompiled model gained no node, and compiles and runs.
  EXPECT_EQ(cudl_model_node_count(f.uncompiled), f.uncompiled_nodes);
  EXPECT_EQ(cudl_model_compile(f.uncompiled, 2), CUDL_OK) << cudl_context_last_error(f.ctx);
  EXPECT_EQ(cudl_model_load(f.uncompiled, f.model_path.c_str(), 1), CUDL_OK)
      << cudl_context_last_error(f.ctx);
  EXPECT_EQ(cudl_model_forward(f.uncompiled, f.x, f.labels, &loss), CUDL_OK);
}

struct Row {
  const char *name;                  // for the test's name
  const char *function;              // the public call; its message starts with it
  cudl_status status;                // documented status
  std::vector<std::string> needles;  // the message names these
  std::function<cudl_status(Fixture &)> call;
};

std::ostream &operator<<(std::ostream &os, const Row &r) { return os << r.name; }

const int64_t kTwoTo40 = int64_t{1} << 40;

const std::vector<Row> &Rows() {
  static const std::vector<Row> rows = {
      {"EventCreateNullOut",
       "cudl_event_create",
       CUDL_ERR_INVALID_ARGUMENT,
       {"out"},
       [](Fixture &f) { return cudl_event_create(f.ctx, nullptr); }},
      {"EventElapsedNullEnd",
       "cudl_event_elapsed_ms",
       CUDL_ERR_INVALID_ARGUMENT,
       {"end"},
       [](Fixture &f) {
         double ms;
         return cudl_event_elapsed_ms(f.start, nullptr, &ms);
       }},
      {"EventElapsedNullMs",
       "cudl_event_elapsed_ms",
       CUDL_ERR_INVALID_ARGUMENT,
       {"ms"},
       [](Fixture &f) { return cudl_event_elapsed_ms(f.start, f.end, nullptr); }},
      {"MemoryStatsNull",
       "cudl_context_memory_stats",
       CUDL_ERR_INVALID_ARGUMENT,
       {"stats"},
       [](Fixture &f) { return cudl_context_memory_stats(f.ctx, nullptr); }},
      {"RngStateNullBoth",
       "cudl_context_rng_state",
       CUDL_ERR_INVALID_ARGUMENT,
       {"seed"},
       [](Fixture &f) { return cudl_context_rng_state(f.ctx, nullptr, nullptr); }},
      {"RngStateNullOffset",
       "cudl_context_rng_state",
       CUDL_ERR_INVALID_ARGUMENT,
       {"offset"},
       [](Fixture &f) {
         uint64_t seed;
         return cudl_context_rng_state(f.ctx, &seed, nullptr);
       }},
      {"NumericsReportNull",
       "cudl_model_numerics_report",
       CUDL_ERR_INVALID_ARGUMENT,
       {"report"},
       [](Fixture &f) { return cudl_model_numerics_report(f.model, nullptr); }},
      {"FlopsNull",
       "cudl_model_flops",
       CUDL_ERR_INVALID_ARGUMENT,
       {"flops"},
       [](Fixture &f) { return cudl_model_flops(f.model, nullptr); }},
      {"FirstNonfiniteNullNode",
       "cudl_model_first_nonfinite",
       CUDL_ERR_INVALID_ARGUMENT,
       {"node"},
       [](Fixture &f) { return cudl_model_first_nonfinite(f.model, nullptr, nullptr); }},
      {"CheckpointSaveUncompiled",
       "cudl_checkpoint_save",
       CUDL_ERR_INVALID_ARGUMENT,
       {"not compiled", "cudl_model_compile"},
       [](Fixture &f) {
         return cudl_checkpoint_save(f.uncompiled, nullptr, &f.state, nullptr, 0,
                                     TempPath("unused.safetensors").c_str());
       }},
      {"CheckpointLoadUncompiled",
       "cudl_checkpoint_load",
       CUDL_ERR_INVALID_ARGUMENT,
       {"not compiled", "cudl_model_compile"},
       [](Fixture &f) {
         return cudl_checkpoint_load(f.uncompiled, nullptr, nullptr, f.checkpoint_path.c_str());
       }},
      {"ModelSaveUncompiled",
       "cudl_model_save",
       CUDL_ERR_INVALID_ARGUMENT,
       {"not compiled", "cudl_model_compile"},
       [](Fixture &f) {
         return cudl_model_save(f.uncompiled, TempPath("unused.safetensors").c_str(), nullptr, 0);
       }},
      {"ModelLoadUncompiled",
       "cudl_model_load",
       CUDL_ERR_INVALID_ARGUMENT,
       {"not compiled", "cudl_model_compile"},
       [](Fixture &f) { return cudl_model_load(f.uncompiled, f.model_path.c_str(), 1); }},
      {"ModelLoadSetUncompiled",
       "cudl_model_load_set",
       CUDL_ERR_INVALID_ARGUMENT,
       {"not compiled", "cudl_model_compile"},
       [](Fixture &f) { return cudl_model_load_set(f.uncompiled, f.set, 1); }},
      {"Conv2dOutChannels2To40",
       "cudl_model_add_conv2d",
       CUDL_ERR_INVALID_ARGUMENT,
       {"out_channels", "1099511627776", "overflow"},
       [](Fixture &f) {
         cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
         int node = -1;
         return cudl_model_add_conv2d(f.uncompiled, 0, "huge", kTwoTo40, 3, 3, &d, 0, &node);
       }},
      {"Conv2dOutputOver2To31PerSample",
       "cudl_model_add_conv2d",
       CUDL_ERR_SHAPE,
       {"conv2d \"wide\"", "2^31 values per sample"},
       [](Fixture &f) {
         cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
         int node = -1;
         // 2^30 channels of 4x4: 2^34 values a sample; the weight 9 * 2^30.
         return cudl_model_add_conv2d(f.uncompiled, 0, "wide", int64_t{1} << 30, 3, 3, &d, 0,
                                      &node);
       }},
      {"Conv2dInputOverIntMax",
       "cudl_model_add_conv2d",
       CUDL_ERR_SHAPE,
       {"the input dimension C", "2147483648", "INT_MAX"},
       [](Fixture &f) {
         // A model whose input has 2^31 channels (allowed): a convolution
         // cannot take that many (int sizes), which is a shape error.
         const int64_t in[3] = {int64_t{1} << 31, 1, 1};
         cudl_model *m = nullptr;
         cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
         int node = -1;
         cudl_status s = cudl_model_create(f.ctx, 3, in, &m);
         if (s == CUDL_OK) s = cudl_model_add_conv2d(m, 0, "c", 1, 1, 1, &d, 0, &node);
         cudl_model_destroy(m);
         return s;
       }},
      {"CheckpointSaveOptimizerOfOtherSize",
       "cudl_checkpoint_save",
       CUDL_ERR_SHAPE,
       {"optimizer", "parameters"},
       [](Fixture &f) {
         return cudl_checkpoint_save(f.model, f.wrong_opt, &f.state, nullptr, 0,
                                     TempPath("mismatch.safetensors").c_str());
       }},
      {"CheckpointLoadOptimizerOfOtherSize",
       "cudl_checkpoint_load",
       CUDL_ERR_SHAPE,
       {"optimizer", "parameters"},
       [](Fixture &f) {
         return cudl_checkpoint_load(f.model, f.wrong_opt, nullptr, f.checkpoint_path.c_str());
       }},
      // The uncompiled model: 0 input [1, 6, 6], 1 conv [2, 4, 4], 2 flatten.
      {"ModelAddConcatCountOne",
       "cudl_model_add_concat",
       CUDL_ERR_INVALID_ARGUMENT,
       {"count", "2 to 8"},
       [](Fixture &f) {
         const int inputs[2] = {1, 1};
         int node = -1;
         return cudl_model_add_concat(f.uncompiled, 1, inputs, &node);
       }},
      {"ModelAddConcatOtherSizes",
       "cudl_model_add_concat",
       CUDL_ERR_SHAPE,
       {"nodes 0 and 1", "[1, 6, 6] and [2, 4, 4]"},
       [](Fixture &f) {
         const int inputs[2] = {0, 1};
         int node = -1;
         return cudl_model_add_concat(f.uncompiled, 2, inputs, &node);
       }},
      {"ModelAddReshapeOtherCount",
       "cudl_model_add_reshape",
       CUDL_ERR_SHAPE,
       {"[2, 4, 4]", "[5, 7]"},
       [](Fixture &f) {
         const int64_t shape[2] = {5, 7};
         int node = -1;
         return cudl_model_add_reshape(f.uncompiled, 1, 2, shape, &node);
       }},
      {"ConcatForwardNullInputs",
       "cudl_concat_forward",
       CUDL_ERR_INVALID_ARGUMENT,
       {"inputs"},
       [](Fixture &f) { return cudl_concat_forward(f.ctx, 2, nullptr, f.x); }},
      {"ConcatForwardOutputIsAnInput",
       "cudl_concat_forward",
       CUDL_ERR_INVALID_ARGUMENT,
       {"inputs[0]", "share memory"},
       [](Fixture &f) {
         const cudl_tensor *inputs[1] = {f.x};
         return cudl_concat_forward(f.ctx, 1, inputs, f.x);
       }},
      {"ConcatBackwardWrongChannels",
       "cudl_concat_backward",
       CUDL_ERR_SHAPE,
       {"dy", "dimension 1"},
       [](Fixture &f) {
         const int64_t shape[4] = {2, 2, 6, 6};
         cudl_tensor *dy = nullptr;
         cudl_status s = cudl_tensor_create(f.ctx, CUDL_DTYPE_F32, 4, shape, &dy);
         cudl_tensor *parts[1] = {f.x};
         if (s == CUDL_OK) s = cudl_concat_backward(f.ctx, dy, 1, parts);
         cudl_tensor_destroy(dy);
         return s;
       }},
  };
  return rows;
}

class ApiErrors : public ::testing::TestWithParam<Row> {
 protected:
  void SetUp() override { SetUpFixture(f_); }
  void TearDown() override { TearDownFixture(f_); }
  Fixture f_;
};

TEST_P(ApiErrors, StatusMessageAndUsableObjects) {
  ASSERT_FALSE(HasFailure());
  const Row &row = GetParam();
  const cudl_status got = row.call(f_);
  EXPECT_EQ(got, row.status) << cudl_status_name(got) << ": " << cudl_context_last_error(f_.ctx);
  const std::string message = cudl_context_last_error(f_.ctx);
  EXPECT_TRUE(StartsWith(message, std::string(row.function) + ":"));
  for (const std::string &needle : row.needles) EXPECT_TRUE(HasSubstr(message, needle));
  ExpectUsable(f_);
}

INSTANTIATE_TEST_SUITE_P(Rows, ApiErrors, ::testing::ValuesIn(Rows()),
                         [](const ::testing::TestParamInfo<Row> &row_info) {
                           return std::string(row_info.param.name);
                         });

// The optimizer rows name both counts.
TEST(ApiErrorsDetail, OptimizerMismatchNamesBothCounts) {
  Fixture f;
  SetUpFixture(f);
  ASSERT_FALSE(::testing::Test::HasFailure());
  const int64_t params = cudl_tensor_numel(cudl_model_params(f.model));
  const std::string model_count = std::to_string(params);
  const std::string opt_count = std::to_string(params + 1);
  std::remove(TempPath("mismatch.safetensors").c_str());
  EXPECT_EQ(cudl_checkpoint_save(f.model, f.wrong_opt, &f.state, nullptr, 0,
                                 TempPath("mismatch.safetensors").c_str()),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(f.ctx), opt_count + " parameters"));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(f.ctx), "model has " + model_count));
  EXPECT_EQ(cudl_checkpoint_load(f.model, f.wrong_opt, nullptr, f.checkpoint_path.c_str()),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(f.ctx), opt_count + " parameters"));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(f.ctx), "model has " + model_count));
  // Nothing was written for the refused save.
  FILE *file = std::fopen(TempPath("mismatch.safetensors").c_str(), "rb");
  EXPECT_EQ(file, nullptr);
  if (file != nullptr) std::fclose(file);
  TearDownFixture(f);
}

}  // namespace
