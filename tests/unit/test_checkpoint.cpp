// Tests of training checkpoints (cudl/checkpoint.h): a run interrupted
// mid-epoch and resumed from its checkpoint gives exactly the losses of an
// uninterrupted run (model, optimizer state, step count, data position and
// the random generator all restored); and bad files change nothing.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::HasSubstr;

std::string TempPath(const char *name) {
  const char *dir = std::getenv("CUDL_TEST_TMPDIR");
  return std::string(dir != nullptr ? dir : ".") + "/" + name;
}

// A small image classifier with dropout (so the generator matters) on a
// synthetic dataset, trained with SGD momentum (so the optimizer state
// matters), shuffled and augmented (so the data position matters).
class Trainer {
 public:
  Trainer(cudl_context *ctx, const cudl_dataset *ds, cudl_optimizer_kind kind)
      : ctx_(ctx) {
    int64_t in[3] = {1, 8, 8};
    int c, bn, act, pool, flat, drop, fc;
    cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
    d.pad_h = d.pad_w = 1;
    cudl_pool2d_desc p = {2, 2, 2, 2, 0, 0, 0, 0};
    EXPECT_EQ(cudl_model_create(ctx, 3, in, &model_), CUDL_OK);
    EXPECT_EQ(cudl_model_add_conv2d(model_, 0, "conv1", 4, 3, 3, &d, 0, &c),
              CUDL_OK);
    EXPECT_EQ(cudl_model_add_batchnorm(model_, c, "bn1", 0.1f, 1e-5f, &bn),
              CUDL_OK);
    EXPECT_EQ(cudl_model_add_activation(model_, bn, CUDL_ACT_RELU, 0, &act),
              CUDL_OK);
    EXPECT_EQ(cudl_model_add_pool2d(model_, act, 1, &p, &pool), CUDL_OK);
    EXPECT_EQ(cudl_model_add_flatten(model_, pool, &flat), CUDL_OK);
    EXPECT_EQ(cudl_model_add_dropout(model_, flat, 0.2f, &drop), CUDL_OK);
    EXPECT_EQ(cudl_model_add_linear(model_, drop, "fc", 3, 1, &fc), CUDL_OK);
    EXPECT_EQ(cudl_model_set_output(model_, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY),
              CUDL_OK);
    EXPECT_EQ(cudl_model_compile(model_, 5), CUDL_OK);
    EXPECT_EQ(cudl_context_set_seed(ctx, 42), CUDL_OK);
    EXPECT_EQ(cudl_model_init(model_, CUDL_INIT_KAIMING_NORMAL), CUDL_OK);
    cudl_optimizer_config oc;
    EXPECT_EQ(cudl_optimizer_config_default(kind, &oc), CUDL_OK);
    oc.lr = 0.05f;
    if (kind == CUDL_OPTIMIZER_SGD) oc.momentum = 0.9f;
    EXPECT_EQ(cudl_optimizer_create(
                  ctx, &oc, cudl_tensor_numel(cudl_model_params(model_)),
                  &opt_),
              CUDL_OK);
    cudl_loader_config lc = cudl_loader_config_default();
    lc.batch = 5;
    lc.shuffle = 1;
    lc.seed = 9;
    lc.augment = 1;
    lc.crop_padding = 1;
    lc.horizontal_flip = 1;
    lc.mean[0] = 0.5f;
    lc.std[0] = 0.25f;
    EXPECT_EQ(cudl_loader_create(ctx, ds, &lc, &loader_), CUDL_OK);
    const int64_t xs[4] = {5, 1, 8, 8};
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &x_), CUDL_OK);
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, xs, &labels_),
              CUDL_OK);
  }
  ~Trainer() {
    cudl_tensor_destroy(x_);
    cudl_tensor_destroy(labels_);
    cudl_loader_destroy(loader_);
    cudl_optimizer_destroy(opt_);
    cudl_model_destroy(model_);
  }
  // One training step; returns the loss.
  float Step() {
    int64_t rows = 0;
    int done = 0;
    float loss = 0.0f;
    EXPECT_EQ(cudl_loader_next(loader_, x_, labels_, &rows, &done), CUDL_OK);
    EXPECT_EQ(rows, 5);
    EXPECT_EQ(cudl_model_forward(model_, x_, labels_, &loss), CUDL_OK)
        << cudl_context_last_error(ctx_);
    EXPECT_EQ(cudl_model_backward(model_), CUDL_OK);
    EXPECT_EQ(cudl_optimizer_step(opt_, cudl_model_params(model_),
                                  cudl_model_grads(model_), 0.05f),
              CUDL_OK);
    return loss;
  }
  cudl_train_state State() const {
    cudl_train_state st = {};
    EXPECT_EQ(cudl_loader_position(loader_, &st.epoch, &st.batch), CUDL_OK);
    st.step = cudl_optimizer_steps(opt_);
    st.data_seed = 9;
    EXPECT_EQ(cudl_context_rng_state(ctx_, &st.rng_seed, &st.rng_offset),
              CUDL_OK);
    return st;
  }

  cudl_context *ctx_;
  cudl_model *model_ = nullptr;
  cudl_optimizer *opt_ = nullptr;
  cudl_loader *loader_ = nullptr;
  cudl_tensor *x_ = nullptr, *labels_ = nullptr;
};

class CheckpointTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK);
    // 20 images of 8x8, three classes told apart by brightness.
    std::vector<uint8_t> pixels(20 * 64), labels(20);
    for (int i = 0; i < 20; ++i) {
      labels[i] = (uint8_t)(i % 3);
      for (int j = 0; j < 64; ++j)
        pixels[i * 64 + j] = (uint8_t)((labels[i] * 80 + i * 7 + j * 13) % 256);
    }
    ASSERT_EQ(cudl_dataset_create(ctx_, 20, 1, 8, 8, 3, pixels.data(),
                                  labels.data(), &ds_),
              CUDL_OK);
  }
  void TearDown() override {
    cudl_dataset_destroy(ds_);
    cudl_context_destroy(ctx_);
  }
  cudl_context *ctx_ = nullptr;
  cudl_dataset *ds_ = nullptr;
};

TEST_F(CheckpointTest, ResumedRunGivesTheSameLosses) {
  for (cudl_optimizer_kind kind : {CUDL_OPTIMIZER_SGD, CUDL_OPTIMIZER_ADAM}) {
    SCOPED_TRACE(kind == CUDL_OPTIMIZER_SGD ? "sgd" : "adam");
    // 4 batches an epoch; 10 steps cross two epoch boundaries.
    std::vector<float> straight;
    {
      Trainer t(ctx_, ds_, kind);
      for (int i = 0; i < 10; ++i) straight.push_back(t.Step());
    }
    const std::string path = TempPath("resume.ckpt.safetensors");
    std::vector<float> resumed;
    {
      Trainer t(ctx_, ds_, kind);
      for (int i = 0; i < 6; ++i) resumed.push_back(t.Step());  // mid-epoch 2
      const cudl_train_state st = t.State();
      EXPECT_EQ(st.epoch, 1);
      EXPECT_EQ(st.batch, 2);
      ASSERT_EQ(cudl_checkpoint_save(t.model_, t.opt_, &st, nullptr, 0,
                                     path.c_str()),
                CUDL_OK)
          << cudl_context_last_error(ctx_);
    }
    {
      // A fresh process would start here: new objects, other weights and
      // another generator state until the checkpoint is loaded.
      ASSERT_EQ(cudl_context_set_rng_state(ctx_, 1234, 99), CUDL_OK);
      Trainer t(ctx_, ds_, kind);
      cudl_train_state st = {};
      ASSERT_EQ(cudl_checkpoint_load(t.model_, t.opt_, &st, path.c_str()),
                CUDL_OK)
          << cudl_context_last_error(ctx_);
      EXPECT_EQ(st.epoch, 1);
      EXPECT_EQ(st.batch, 2);
      EXPECT_EQ(st.step, 6);
      ASSERT_EQ(cudl_context_set_rng_state(ctx_, st.rng_seed, st.rng_offset),
                CUDL_OK);
      ASSERT_EQ(cudl_loader_seek(t.loader_, st.epoch, st.batch), CUDL_OK);
      EXPECT_EQ(cudl_optimizer_steps(t.opt_), 6);
      for (int i = 6; i < 10; ++i) resumed.push_back(t.Step());
    }
    ASSERT_EQ(resumed.size(), straight.size());
    for (size_t i = 0; i < straight.size(); ++i)
      EXPECT_EQ(resumed[i], straight[i]) << "step " << i;
    std::remove(path.c_str());
  }
}

TEST_F(CheckpointTest, BadCheckpointsChangeNothing) {
  const std::string path = TempPath("bad.ckpt.safetensors");
  Trainer saved(ctx_, ds_, CUDL_OPTIMIZER_SGD);
  saved.Step();
  const cudl_train_state st = saved.State();
  const cudl_metadata_pair extra[] = {{"model", "test"}};
  ASSERT_EQ(cudl_checkpoint_save(saved.model_, saved.opt_, &st, extra, 1,
                                 path.c_str()),
            CUDL_OK);
  const cudl_metadata_pair reserved[] = {{"cudl.epoch", "7"}};
  EXPECT_EQ(cudl_checkpoint_save(saved.model_, saved.opt_, &st, reserved, 1,
                                 path.c_str()),
            CUDL_ERR_INVALID_ARGUMENT);

  Trainer other(ctx_, ds_, CUDL_OPTIMIZER_ADAM);
  std::vector<float> before(cudl_tensor_numel(cudl_model_params(other.model_)));
  ASSERT_EQ(cudl_tensor_copy_to_host(cudl_model_params(other.model_),
                                     before.data(),
                                     before.size() * sizeof(float)),
            CUDL_OK);
  cudl_train_state got = {};
  got.epoch = -5;
  // Another optimizer kind: refused before anything is copied.
  EXPECT_EQ(cudl_checkpoint_load(other.model_, other.opt_, &got, path.c_str()),
            CUDL_ERR_FILE_METADATA);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "sgd"));
  EXPECT_EQ(got.epoch, -5);
  std::vector<float> after(before.size());
  ASSERT_EQ(cudl_tensor_copy_to_host(cudl_model_params(other.model_),
                                     after.data(), after.size() * sizeof(float)),
            CUDL_OK);
  EXPECT_EQ(after, before);
  // Without the optimizer the model alone loads.
  EXPECT_EQ(cudl_checkpoint_load(other.model_, nullptr, &got, path.c_str()),
            CUDL_OK);
  EXPECT_EQ(got.step, 1);
  // A plain weights file is not a checkpoint.
  const std::string weights = TempPath("bad.weights.safetensors");
  ASSERT_EQ(cudl_model_save(saved.model_, weights.c_str(), nullptr, 0),
            CUDL_OK);
  EXPECT_EQ(cudl_checkpoint_load(other.model_, nullptr, &got, weights.c_str()),
            CUDL_ERR_FILE_METADATA);
  EXPECT_EQ(cudl_checkpoint_load(other.model_, nullptr, &got, nullptr),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_checkpoint_load(nullptr, nullptr, &got, path.c_str()),
            CUDL_ERR_INVALID_ARGUMENT);
  std::remove(path.c_str());
  std::remove(weights.c_str());
}

// Copy the safetensors file `from` to `to` (metadata and every tensor) with
// element `index` of tensor `name` set to `value`, through the library's
// own reader and writer.
void CopyWithValue(cudl_context *ctx, const std::string &from, const std::string &to,
                   const std::string &name, int64_t index, float value) {
  cudl_safetensors *set = nullptr;
  ASSERT_EQ(cudl_safetensors_load(ctx, from.c_str(), 0, &set), CUDL_OK);
  const int64_t found = cudl_safetensors_find(set, name.c_str());
  ASSERT_GE(found, 0) << name;
  const cudl_tensor *original = cudl_safetensors_tensor(set, (size_t)found);
  cudl_tensor *changed = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, cudl_tensor_ndim(original),
                               cudl_tensor_shape(original), &changed),
            CUDL_OK);
  std::vector<float> values(cudl_tensor_numel(original));
  ASSERT_EQ(cudl_tensor_copy_to_host(original, values.data(), values.size() * sizeof(float)),
            CUDL_OK);
  ASSERT_LT(index, (int64_t)values.size());
  values[index] = value;
  ASSERT_EQ(cudl_tensor_copy_from_host(changed, values.data(), values.size() * sizeof(float)),
            CUDL_OK);
  std::vector<cudl_named_tensor> tensors;
  std::vector<cudl_safetensors_entry> entries(cudl_safetensors_count(set));
  for (size_t i = 0; i < entries.size(); ++i) {
    ASSERT_EQ(cudl_safetensors_entry_query(set, i, &entries[i]), CUDL_OK);
    tensors.push_back(
        {entries[i].name, (int64_t)i == found ? changed : cudl_safetensors_tensor(set, i)});
  }
  std::vector<cudl_metadata_pair> meta;
  for (size_t i = 0; i < cudl_safetensors_metadata_count(set); ++i)
    meta.push_back(
        {cudl_safetensors_metadata_key(set, i), cudl_safetensors_metadata_value(set, i)});
  EXPECT_EQ(cudl_safetensors_save(ctx, to.c_str(), tensors.data(), tensors.size(), meta.data(),
                                  meta.size()),
            CUDL_OK)
      << cudl_context_last_error(ctx);
  cudl_tensor_destroy(changed);
  cudl_safetensors_destroy(set);
}

// The bytes of every model tensor and optimizer state, by name.
std::map<std::string, std::vector<float>> Snapshot(Trainer &t) {
  std::map<std::string, std::vector<float>> out;
  auto take = [&out](const std::string &name, const cudl_tensor *x) {
    std::vector<float> v(cudl_tensor_numel(x));
    EXPECT_EQ(cudl_tensor_copy_to_host(x, v.data(), v.size() * sizeof(float)), CUDL_OK);
    out[name] = v;
  };
  for (int k = 0; k < cudl_model_param_count(t.model_); ++k) {
    const char *name = cudl_model_param_name(t.model_, k, nullptr);
    take(name, cudl_model_param(t.model_, name));
  }
  for (int k = 0; k < cudl_optimizer_state_count(t.opt_); ++k) {
    const char *name = nullptr;
    const cudl_tensor *x = cudl_optimizer_state(t.opt_, k, &name);
    take(std::string("optimizer.") + name, x);
  }
  return out;
}

// Bitwise, so that a NaN copied in (which compares unequal) is caught too.
::testing::AssertionResult SameBits(const std::map<std::string, std::vector<float>> &a,
                                    const std::map<std::string, std::vector<float>> &b) {
  if (a.size() != b.size()) return ::testing::AssertionFailure() << "different tensors";
  for (const auto &entry : a) {
    const std::vector<float> &other = b.at(entry.first);
    if (other.size() != entry.second.size() ||
        std::memcmp(other.data(), entry.second.data(), other.size() * sizeof(float)) != 0)
      return ::testing::AssertionFailure() << "\"" << entry.first << "\" changed";
  }
  return ::testing::AssertionSuccess();
}

// Issue 13, item 6: NaN or infinite weights, batch-norm statistics or
// optimizer state in a file are refused at load (CUDL_ERR_FILE_VALUE naming
// the file, the tensor and the counts), and nothing changes.
TEST_F(CheckpointTest, NonFiniteValuesAreRefusedAndChangeNothing) {
  const float nan = std::nanf("");
  const float inf = std::numeric_limits<float>::infinity();
  Trainer saved(ctx_, ds_, CUDL_OPTIMIZER_ADAM);
  saved.Step();
  saved.Step();
  const cudl_train_state st = saved.State();
  const std::string good_ckpt = TempPath("finite.ckpt.safetensors");
  const std::string good_weights = TempPath("finite.weights.safetensors");
  ASSERT_EQ(cudl_checkpoint_save(saved.model_, saved.opt_, &st, nullptr, 0, good_ckpt.c_str()),
            CUDL_OK);
  ASSERT_EQ(cudl_model_save(saved.model_, good_weights.c_str(), nullptr, 0), CUDL_OK);

  // Another run, one step in: its values differ from the files' and must
  // survive every refused load.
  Trainer target(ctx_, ds_, CUDL_OPTIMIZER_ADAM);
  target.Step();
  const auto before = Snapshot(target);
  ASSERT_FALSE(SameBits(before, Snapshot(saved)));

  struct Case {
    const char *what;
    bool checkpoint;  // cudl_checkpoint_load, else cudl_model_load
    const char *tensor;
    int64_t index;
    float value;
    const char *counts;  // in the message
  } cases[] = {
      {"NaN weight, weights file", false, "conv1.weight", 7, nan,
       "1 NaN and 0 infinite values (of 36)"},
      {"Inf running_var, weights file", false, "bn1.running_var", 2, inf,
       "0 NaN and 1 infinite values (of 4)"},
      {"-Inf bias, weights file", false, "fc.bias", 0, -inf, "0 NaN and 1 infinite values (of 3)"},
      {"NaN weight, checkpoint", true, "fc.weight", 11, nan,
       "1 NaN and 0 infinite values (of 192)"},
      {"Inf running_var, checkpoint", true, "bn1.running_var", 0, inf,
       "0 NaN and 1 infinite values (of 4)"},
      {"NaN exp_avg, checkpoint", true, "optimizer.exp_avg", 5, nan, "1 NaN and 0 infinite values"},
      {"Inf exp_avg_sq, checkpoint", true, "optimizer.exp_avg_sq", 0, inf,
       "0 NaN and 1 infinite values"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    const std::string bad = TempPath("nonfinite.safetensors");
    CopyWithValue(ctx_, c.checkpoint ? good_ckpt : good_weights, bad, c.tensor, c.index, c.value);
    cudl_train_state got = {};
    got.epoch = -5;
    const cudl_status status =
        c.checkpoint ? cudl_checkpoint_load(target.model_, target.opt_, &got, bad.c_str())
                     : cudl_model_load(target.model_, bad.c_str(), 1);
    EXPECT_EQ(status, CUDL_ERR_FILE_VALUE) << cudl_status_name(status);
    const std::string message = cudl_context_last_error(ctx_);
    EXPECT_TRUE(HasSubstr(message, bad));
    EXPECT_TRUE(HasSubstr(message, std::string("\"") + c.tensor + "\""));
    EXPECT_TRUE(HasSubstr(message, c.counts));
    EXPECT_EQ(got.epoch, -5);
    EXPECT_TRUE(SameBits(before, Snapshot(target)));
    EXPECT_EQ(cudl_optimizer_steps(target.opt_), 1);
    std::remove(bad.c_str());
  }
  // The same set, given directly: the message says "the set".
  {
    const std::string bad = TempPath("nonfinite.safetensors");
    CopyWithValue(ctx_, good_weights, bad, "bn1.running_mean", 1, nan);
    cudl_safetensors *set = nullptr;
    ASSERT_EQ(cudl_safetensors_load(ctx_, bad.c_str(), 0, &set), CUDL_OK);
    EXPECT_EQ(cudl_model_load_set(target.model_, set, 1), CUDL_ERR_FILE_VALUE);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "the set: \"bn1.running_mean\""));
    EXPECT_TRUE(SameBits(before, Snapshot(target)));
    cudl_safetensors_destroy(set);
    std::remove(bad.c_str());
  }
  // The finite files still load, and then the values are the saved ones.
  EXPECT_EQ(cudl_checkpoint_load(target.model_, target.opt_, nullptr, good_ckpt.c_str()), CUDL_OK)
      << cudl_context_last_error(ctx_);
  EXPECT_TRUE(SameBits(Snapshot(saved), Snapshot(target)));
  EXPECT_EQ(cudl_model_load(target.model_, good_weights.c_str(), 1), CUDL_OK);
  std::remove(good_ckpt.c_str());
  std::remove(good_weights.c_str());
}

}  // namespace
