// The communicator's API (cudl/dist.h) in one process: the local backend's
// calls and their bad arguments, the model helpers, and what a build
// without MPI says. The MPI backend runs under mpirun in tests/dist.
#include <gtest/gtest.h>

#include <cmath>
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

TEST_F(DistTest, TimeoutIsCheckedAndKept) {
  EXPECT_EQ(cudl_comm_timeout(comm_), 0.0);  // no limit by default
  EXPECT_STATUS(CUDL_OK, cudl_comm_set_timeout(comm_, 2.5));
  EXPECT_EQ(cudl_comm_timeout(comm_), 2.5);
  // Out of range: refused, the earlier value kept.
  for (double bad : {-1.0, 1e10, std::nan(""), HUGE_VAL}) {
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_set_timeout(comm_, bad));
    EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "timeout"), nullptr);
    EXPECT_EQ(cudl_comm_timeout(comm_), 2.5);
  }
  EXPECT_STATUS(CUDL_OK, cudl_comm_set_timeout(comm_, 0.0));
  EXPECT_EQ(cudl_comm_timeout(comm_), 0.0);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_set_timeout(nullptr, 1.0));
  EXPECT_EQ(cudl_comm_timeout(nullptr), 0.0);
  // A local communicator's collectives are unaffected by a timeout.
  EXPECT_STATUS(CUDL_OK, cudl_comm_set_timeout(comm_, 1.0));
  double sums[2] = {1.5, -2.0};
  EXPECT_STATUS(CUDL_OK, cudl_comm_allreduce_sum_f64(comm_, sums, 2));
  EXPECT_EQ(sums[0], 1.5);
  EXPECT_STATUS(CUDL_OK, cudl_comm_barrier(comm_));
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
