// The communicator's API (cudl/dist.h) in one process: the local backend's
// calls and their bad arguments, the model helpers, and what a build
// without MPI says. The MPI backend runs under mpirun in tests/dist.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

#define EXPECT_STATUS(expected, expr) \
  EXPECT_STREQ(cudl_status_name(expected), cudl_status_name(expr))
#define ASSERT_STATUS(expected, expr) \
  ASSERT_STREQ(cudl_status_name(expected), cudl_status_name(expr))

namespace {

class DistTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_));
    ASSERT_STATUS(CUDL_OK, cudl_comm_create_local(ctx_, &comm_));
  }
  void TearDown() override {
    cudl_comm_destroy(comm_);
    cudl_context_destroy(ctx_);
  }
  cudl_context *ctx_ = nullptr;
  cudl_comm *comm_ = nullptr;
};

TEST_F(DistTest, LocalIsRankZeroOfOne) {
  EXPECT_EQ(cudl_comm_rank(comm_), 0);
  EXPECT_EQ(cudl_comm_size(comm_), 1);
  EXPECT_STREQ(cudl_comm_backend(comm_), "local");
  EXPECT_EQ(cudl_comm_rank(nullptr), 0);
  EXPECT_EQ(cudl_comm_size(nullptr), 1);
  EXPECT_EQ(cudl_comm_backend(nullptr), nullptr);
  EXPECT_STATUS(CUDL_OK, cudl_comm_barrier(comm_));
  cudl_comm_destroy(nullptr);
  cudl_comm_abort(nullptr, 1);  // nothing to end
}

TEST_F(DistTest, LocalCollectivesKeepValues) {
  const std::vector<float> values = {1.5f, -2.0f, 3.25f, 1e-30f, 7.0f};
  cudl_tensor *t = nullptr;
  const int64_t shape[1] = {5};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(t, values.data(), 20));
  EXPECT_STATUS(CUDL_OK, cudl_comm_allreduce_mean(comm_, t));
  EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(t), values));
  EXPECT_STATUS(CUDL_OK, cudl_comm_broadcast(comm_, t, 0));
  EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(t), values));
  double sums[3] = {1.0, 2.5, -4.0};
  EXPECT_STATUS(CUDL_OK, cudl_comm_allreduce_sum_f64(comm_, sums, 3));
  EXPECT_EQ(sums[1], 2.5);
  EXPECT_STATUS(CUDL_OK, cudl_comm_allreduce_sum_f64(comm_, nullptr, 0));
  int same = -1;
  uint64_t lo = 0, hi = 0;
  EXPECT_STATUS(CUDL_OK, cudl_comm_agree(comm_, 0xfeedfacecafebeefull, &same, &lo, &hi));
  EXPECT_EQ(same, 1);
  EXPECT_EQ(lo, 0xfeedfacecafebeefull);
  EXPECT_EQ(hi, 0xfeedfacecafebeefull);
  EXPECT_STATUS(CUDL_OK, cudl_comm_agree(comm_, 0, &same, nullptr, nullptr));
  EXPECT_EQ(same, 1);
  cudl_tensor_destroy(t);
}

TEST_F(DistTest, BadArguments) {
  cudl_tensor *t = nullptr, *ints = nullptr;
  const int64_t shape[1] = {4};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, shape, &ints));
  cudl_comm *out = reinterpret_cast<cudl_comm *>(&out);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_create_local(nullptr, &out));
  EXPECT_EQ(out, nullptr);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_create_local(ctx_, nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_allreduce_mean(nullptr, t));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_allreduce_mean(comm_, nullptr));
  EXPECT_STATUS(CUDL_ERR_DTYPE, cudl_comm_allreduce_mean(comm_, ints));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "i32"), nullptr);
  double v = 0.0;
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_allreduce_sum_f64(comm_, &v, -1));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_allreduce_sum_f64(comm_, nullptr, 2));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_broadcast(comm_, t, 1));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "root is 1"), nullptr);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_broadcast(comm_, t, -1));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_broadcast(comm_, nullptr, 0));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_barrier(nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_agree(comm_, 1, nullptr, nullptr, nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_average_grads(comm_, nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_broadcast_params(nullptr, nullptr, 0));
  // Still usable.
  EXPECT_STATUS(CUDL_OK, cudl_comm_allreduce_mean(comm_, t));
  cudl_tensor_destroy(t);
  cudl_tensor_destroy(ints);
}

TEST_F(DistTest, ModelHelpersNeedACompiledModel) {
  cudl_model *m = nullptr;
  const int64_t input[3] = {1, 4, 4}, widths[1] = {5};
  ASSERT_STATUS(CUDL_OK, cudl_zoo_mlp(ctx_, 3, input, 1, widths, CUDL_ACT_RELU, 0.0f, 3, &m));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_average_grads(comm_, m));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "not compiled"), nullptr);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_broadcast_params(comm_, m, 0));
  ASSERT_STATUS(CUDL_OK, cudl_model_compile(m, 2));
  ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
  const std::vector<float> before = cudl_test::ReadF32(cudl_model_params(m));
  EXPECT_STATUS(CUDL_OK, cudl_comm_broadcast_params(comm_, m, 0));
  EXPECT_STATUS(CUDL_OK, cudl_comm_average_grads(comm_, m));
  EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(cudl_model_params(m)), before));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_broadcast_params(comm_, m, 1));
  cudl_model_destroy(m);
}

// One training step of small-cnn (two batch-norm layers) on a fixed batch:
// the output, the gradients and the batch norms' running statistics.
struct SyncBnStep {
  std::vector<float> output, grads, running;
};

static SyncBnStep TrainStep(cudl_context *ctx, cudl_model *m) {
  SyncBnStep r;
  const int64_t xs[4] = {4, 1, 8, 8}, ts[1] = {4};
  std::vector<float> x(4 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37 % 101) / 50.0 - 1.0);
  const int32_t labels[4] = {0, 2, 1, 2};
  cudl_tensor *xt = nullptr, *tt = nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &xt));
  EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, ts, &tt));
  EXPECT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(xt, x.data(), x.size() * 4));
  EXPECT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(tt, labels, sizeof labels));
  EXPECT_STATUS(CUDL_OK, cudl_model_set_training(m, 1));
  float loss = 0.0f;
  EXPECT_STATUS(CUDL_OK, cudl_model_forward(m, xt, tt, &loss));
  EXPECT_STATUS(CUDL_OK, cudl_model_backward(m));
  r.output = cudl_test::ReadF32(cudl_model_output(m));
  r.grads = cudl_test::ReadF32(cudl_model_grads(m));
  for (const char *name : {"bn1.running_mean", "bn1.running_var", "bn2.running_mean",
                           "bn2.running_var"}) {
    const cudl_tensor *t = cudl_model_param(m, name);
    EXPECT_NE(t, nullptr) << name;
    if (t == nullptr) continue;
    const std::vector<float> v = cudl_test::ReadF32(t);
    r.running.insert(r.running.end(), v.begin(), v.end());
  }
  cudl_tensor_destroy(xt);
  cudl_tensor_destroy(tt);
  return r;
}

static cudl_model *SmallCnn(cudl_context *ctx) {
  cudl_model *m = nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_zoo_small_cnn(ctx, 1, 8, 8, 3, 0.0f, &m));
  if (m == nullptr) return nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_model_compile(m, 4));
  return m;
}

TEST_F(DistTest, SyncBatchNormOverOneRankIsPlainBatchNormBitForBit) {
  cudl_model *plain = SmallCnn(ctx_), *synced = SmallCnn(ctx_);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(synced, nullptr);
  ASSERT_STATUS(CUDL_OK, cudl_model_init(plain, CUDL_INIT_KAIMING_NORMAL));
  ASSERT_STATUS(CUDL_OK, cudl_model_init(synced, CUDL_INIT_KAIMING_NORMAL));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy(cudl_model_params(synced), cudl_model_params(plain)));
  ASSERT_STATUS(CUDL_OK, cudl_model_set_sync_bn(synced, comm_));
  const SyncBnStep a = TrainStep(ctx_, plain), b = TrainStep(ctx_, synced);
  ASSERT_FALSE(a.output.empty());
  EXPECT_TRUE(cudl_test::BitEqual(b.output, a.output));
  EXPECT_TRUE(cudl_test::BitEqual(b.grads, a.grads));
  EXPECT_TRUE(cudl_test::BitEqual(b.running, a.running));
  // Detached again: still the same layer.
  EXPECT_STATUS(CUDL_OK, cudl_model_set_sync_bn(synced, nullptr));
  const SyncBnStep c = TrainStep(ctx_, plain), d = TrainStep(ctx_, synced);
  EXPECT_TRUE(cudl_test::BitEqual(d.grads, c.grads));
  EXPECT_TRUE(cudl_test::BitEqual(d.running, c.running));
  cudl_model_destroy(plain);
  cudl_model_destroy(synced);
}

TEST_F(DistTest, SyncBatchNormBadArguments) {
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_sync_bn(nullptr, comm_));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_sync_bn(nullptr, nullptr));
  // A communicator of another context: its errors would land elsewhere.
  cudl_context *other = nullptr;
  cudl_comm *other_comm = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &other));
  ASSERT_STATUS(CUDL_OK, cudl_comm_create_local(other, &other_comm));
  cudl_model *m = SmallCnn(ctx_);
  ASSERT_NE(m, nullptr);
  ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_sync_bn(m, other_comm));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "another context"), nullptr);
  // The model is still usable, and attaching before compiling is fine.
  EXPECT_FALSE(TrainStep(ctx_, m).grads.empty());
  cudl_model *uncompiled = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_zoo_small_cnn(ctx_, 1, 8, 8, 3, 0.0f, &uncompiled));
  EXPECT_STATUS(CUDL_OK, cudl_model_set_sync_bn(uncompiled, comm_));
  cudl_model_destroy(uncompiled);
  cudl_model_destroy(m);
  cudl_comm_destroy(other_comm);
  cudl_context_destroy(other);
}

TEST_F(DistTest, MpiCreationWithoutMpiSaysWhatIsMissing) {
  cudl_comm *c = reinterpret_cast<cudl_comm *>(&c);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_create_mpi(nullptr, &c));
  EXPECT_EQ(c, nullptr);
  if (cudl_comm_mpi_available()) GTEST_SKIP() << "this build has MPI (tests/dist runs it)";
  EXPECT_STATUS(CUDL_ERR_UNSUPPORTED, cudl_comm_create_mpi(ctx_, &c));
  EXPECT_EQ(c, nullptr);
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "without MPI"), nullptr);
}

}  // namespace
