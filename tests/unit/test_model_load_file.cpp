// Tests of self-describing weights files: cudl_model_save and
// cudl_checkpoint_save store the model's architecture, and
// cudl_model_load_file rebuilds, compiles and loads the model from the file
// alone; a file without an architecture, with a broken one, or whose
// tensors do not fit it, is refused with the reason and nothing leaks.
#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
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

std::vector<float> HostValues(const cudl_tensor *t) {
  std::vector<float> v(static_cast<size_t>(cudl_tensor_numel(t)));
  EXPECT_EQ(cudl_tensor_copy_to_host(t, v.data(), v.size() * sizeof(float)),
            CUDL_OK);
  return v;
}

std::string Describe(const cudl_model *m) {
  size_t length = 0;
  EXPECT_EQ(cudl_model_describe(m, nullptr, 0, &length), CUDL_OK);
  std::string text(length + 1, '\0');
  EXPECT_EQ(cudl_model_describe(m, &text[0], text.size(), nullptr), CUDL_OK);
  text.resize(length);
  return text;
}

class ModelLoadFile : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK);
    ASSERT_EQ(cudl_context_set_seed(ctx_, 7), CUDL_OK);
    // ResNet-8 on 3x8x8: batch norm buffers, skip connections with
    // projections, and 5 classes, so little is left at a default.
    ASSERT_EQ(cudl_zoo_resnet(ctx_, 8, 0, 3, 8, 8, 5, &model_), CUDL_OK);
    ASSERT_EQ(cudl_model_compile(model_, 4), CUDL_OK);
    ASSERT_EQ(cudl_model_init(model_, CUDL_INIT_KAIMING_NORMAL), CUDL_OK);
    // Running statistics away from their initial 0 and 1, so that loading
    // buffers is checked too.
    const int64_t xs[4] = {4, 3, 8, 8};
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, xs, &x_), CUDL_OK);
    ASSERT_EQ(cudl_tensor_normal(x_, 0.5f, 1.0f), CUDL_OK);
    const int64_t ls[1] = {4};
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, ls, &labels_),
              CUDL_OK);
    const int32_t l[4] = {0, 1, 4, 2};
    ASSERT_EQ(cudl_tensor_copy_from_host(labels_, l, sizeof l), CUDL_OK);
    float loss = 0.0f;
    ASSERT_EQ(cudl_model_forward(model_, x_, labels_, &loss), CUDL_OK);
  }
  void TearDown() override {
    cudl_tensor_destroy(x_);
    cudl_tensor_destroy(labels_);
    cudl_model_destroy(model_);
    cudl_context_destroy(ctx_);
  }

  // The loaded model holds the same tensors, bit for bit, and predicts
  // the same logits.
  void ExpectSameModel(cudl_model *loaded) {
    ASSERT_EQ(cudl_model_param_count(loaded), cudl_model_param_count(model_));
    for (int k = 0; k < cudl_model_param_count(model_); ++k) {
      const char *name = cudl_model_param_name(model_, k, nullptr);
      ASSERT_STREQ(cudl_model_param_name(loaded, k, nullptr), name);
      EXPECT_EQ(HostValues(cudl_model_param(loaded, name)),
                HostValues(cudl_model_param(model_, name)))
          << name;
    }
    ASSERT_EQ(cudl_model_set_training(model_, 0), CUDL_OK);
    ASSERT_EQ(cudl_model_set_training(loaded, 0), CUDL_OK);
    ASSERT_EQ(cudl_model_forward(model_, x_, nullptr, nullptr), CUDL_OK);
    ASSERT_EQ(cudl_model_forward(loaded, x_, nullptr, nullptr), CUDL_OK);
    EXPECT_EQ(HostValues(cudl_model_output(loaded)),
              HostValues(cudl_model_output(model_)));
    EXPECT_EQ(Describe(loaded), Describe(model_));
  }

  cudl_context *ctx_ = nullptr;
  cudl_model *model_ = nullptr;
  cudl_tensor *x_ = nullptr, *labels_ = nullptr;
};

TEST_F(ModelLoadFile, WeightsFileRebuildsTheModel) {
  const std::string path = TempPath("self_describing.safetensors");
  const cudl_metadata_pair meta[1] = {{"classes", "[\"a\",\"b\"]"}};
  ASSERT_EQ(cudl_model_save(model_, path.c_str(), meta, 1), CUDL_OK);

  cudl_safetensors *set = nullptr;
  ASSERT_EQ(cudl_safetensors_load(ctx_, path.c_str(),
                                  CUDL_SAFETENSORS_HEADER_ONLY, &set),
            CUDL_OK);
  const char *arch =
      cudl_safetensors_metadata_find(set, CUDL_METADATA_ARCHITECTURE);
  ASSERT_NE(arch, nullptr);
  EXPECT_EQ(std::string(arch), Describe(model_));
  EXPECT_STREQ(cudl_safetensors_metadata_find(set, "classes"), "[\"a\",\"b\"]");
  cudl_safetensors_destroy(set);

  cudl_model *loaded = nullptr;
  ASSERT_EQ(cudl_model_load_file(ctx_, path.c_str(), 4, &loaded), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ExpectSameModel(loaded);
  cudl_model_destroy(loaded);
  std::remove(path.c_str());
}

TEST_F(ModelLoadFile, CheckpointRebuildsTheModel) {
  const std::string path = TempPath("self_describing.ckpt.safetensors");
  cudl_optimizer_config oc;
  ASSERT_EQ(cudl_optimizer_config_default(CUDL_OPTIMIZER_ADAM, &oc), CUDL_OK);
  cudl_optimizer *opt = nullptr;
  ASSERT_EQ(cudl_optimizer_create(ctx_, &oc,
                                  cudl_tensor_numel(cudl_model_params(model_)),
                                  &opt),
            CUDL_OK)
      << cudl_context_last_error(ctx_);
  cudl_train_state state = {};
  ASSERT_EQ(cudl_checkpoint_save(model_, opt, &state, nullptr, 0,
                                 path.c_str()),
            CUDL_OK)
      << cudl_context_last_error(ctx_);
  cudl_optimizer_destroy(opt);
  cudl_model *loaded = nullptr;
  ASSERT_EQ(cudl_model_load_file(ctx_, path.c_str(), 4, &loaded), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ExpectSameModel(loaded);
  cudl_model_destroy(loaded);
  std::remove(path.c_str());
}

TEST_F(ModelLoadFile, SaveRefusesTheReservedKey) {
  const std::string path = TempPath("reserved_key.safetensors");
  const cudl_metadata_pair meta[1] = {{CUDL_METADATA_ARCHITECTURE, "{}"}};
  EXPECT_EQ(cudl_model_save(model_, path.c_str(), meta, 1),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "cudl.architecture"));
  EXPECT_EQ(cudl_model_save(model_, path.c_str(), nullptr, 1),
            CUDL_ERR_INVALID_ARGUMENT);
  // Nothing was written, and the model still saves.
  EXPECT_EQ(std::fopen(path.c_str(), "rb"), nullptr);
  EXPECT_EQ(cudl_model_save(model_, path.c_str(), nullptr, 0), CUDL_OK);
  std::remove(path.c_str());
}

// A file written with the model's tensors and the given metadata only.
void SaveWith(cudl_model *m, const std::string &path,
              const std::vector<cudl_metadata_pair> &meta,
              const char *skip_tensor = nullptr) {
  std::vector<cudl_named_tensor> list;
  for (int k = 0; k < cudl_model_param_count(m); ++k) {
    const char *name = cudl_model_param_name(m, k, nullptr);
    if (skip_tensor != nullptr && std::strcmp(name, skip_tensor) == 0)
      continue;
    list.push_back({name, cudl_model_param(m, name)});
  }
  ASSERT_EQ(cudl_safetensors_save(cudl_model_context(m), path.c_str(),
                                  list.data(), list.size(),
                                  meta.empty() ? nullptr : meta.data(),
                                  meta.size()),
            CUDL_OK);
}

TEST_F(ModelLoadFile, FileWithoutArchitecture) {
  const std::string path = TempPath("no_architecture.safetensors");
  SaveWith(model_, path, {{"model", "resnet8"}});
  cudl_model *loaded = reinterpret_cast<cudl_model *>(this);
  EXPECT_EQ(cudl_model_load_file(ctx_, path.c_str(), 4, &loaded),
            CUDL_ERR_FILE_METADATA);
  EXPECT_EQ(loaded, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "no \"cudl.architecture\""));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), path.c_str()));
  std::remove(path.c_str());
}

TEST_F(ModelLoadFile, BrokenArchitectureNamesTheFileAndKey) {
  const std::string path = TempPath("broken_architecture.safetensors");
  SaveWith(model_, path, {{CUDL_METADATA_ARCHITECTURE, "{\"version\": 1,"}});
  cudl_model *loaded = nullptr;
  const cudl_status s = cudl_model_load_file(ctx_, path.c_str(), 4, &loaded);
  EXPECT_NE(s, CUDL_OK);
  EXPECT_EQ(loaded, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_),
                  (path + ": cudl.architecture:").c_str()));
  std::remove(path.c_str());
}

TEST_F(ModelLoadFile, TensorsThatDoNotFitTheArchitecture) {
  const std::string arch = Describe(model_);
  const std::string path = TempPath("missing_tensor.safetensors");
  const char *skipped = cudl_model_param_name(model_, 3, nullptr);
  SaveWith(model_, path, {{CUDL_METADATA_ARCHITECTURE, arch.c_str()}},
           skipped);
  cudl_model *loaded = nullptr;
  EXPECT_EQ(cudl_model_load_file(ctx_, path.c_str(), 4, &loaded),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(loaded, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), skipped));

  // The architecture of another model (a wider first convolution).
  cudl_model *other = nullptr;
  ASSERT_EQ(cudl_zoo_resnet(ctx_, 8, 0, 1, 8, 8, 5, &other), CUDL_OK);
  const std::string other_arch = Describe(other);
  cudl_model_destroy(other);
  SaveWith(model_, path, {{CUDL_METADATA_ARCHITECTURE, other_arch.c_str()}});
  EXPECT_EQ(cudl_model_load_file(ctx_, path.c_str(), 4, &loaded),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(loaded, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "conv1.weight"));

  // The same file with the matching architecture loads: the failures
  // above were the architecture's, and left the context usable.
  SaveWith(model_, path, {{CUDL_METADATA_ARCHITECTURE, arch.c_str()}});
  ASSERT_EQ(cudl_model_load_file(ctx_, path.c_str(), 4, &loaded), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ExpectSameModel(loaded);
  cudl_model_destroy(loaded);
  std::remove(path.c_str());
}

TEST_F(ModelLoadFile, BadArguments) {
  const std::string path = TempPath("bad_arguments.safetensors");
  ASSERT_EQ(cudl_model_save(model_, path.c_str(), nullptr, 0), CUDL_OK);
  cudl_model *loaded = nullptr;
  EXPECT_EQ(cudl_model_load_file(nullptr, path.c_str(), 4, &loaded),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_load_file(ctx_, nullptr, 4, &loaded),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_load_file(ctx_, path.c_str(), 4, nullptr),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_model_load_file(ctx_, path.c_str(), 0, &loaded),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "max_batch"));
  EXPECT_EQ(loaded, nullptr);
  EXPECT_NE(cudl_model_load_file(ctx_, TempPath("absent.safetensors").c_str(),
                                 4, &loaded),
            CUDL_OK);
  EXPECT_EQ(loaded, nullptr);
  std::remove(path.c_str());
}

}  // namespace
