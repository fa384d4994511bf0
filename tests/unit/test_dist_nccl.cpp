// The NCCL communicator (cudl_comm_create_nccl) in one process: its bad
// arguments and what a build without NCCL says, which run anywhere; and on
// a GPU, one rank bootstrapped over the local communicator (one GPU cannot
// hold two ranks of one NCCL communicator, and a GPU machine may lack MPI).
// With one rank the public tensor calls have nothing to exchange, so the
// backend's own operations (dist/comm_internal.h) are called as well: they
// run NCCL's all-reduce and broadcast, whose sum over one rank is the
// values themselves. Several ranks run under mpirun (docs/distributed.md).
#include <dlfcn.h>
#include <gtest/gtest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "dist/comm_internal.h"
#include "test_util.h"

#define EXPECT_STATUS(expected, expr) \
  EXPECT_STREQ(cudl_status_name(expected), cudl_status_name(expr))
#define ASSERT_STATUS(expected, expr) \
  ASSERT_STREQ(cudl_status_name(expected), cudl_status_name(expr))

namespace {

class DistNcclTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &cpu_));
    ASSERT_STATUS(CUDL_OK, cudl_comm_create_local(cpu_, &local_));
  }
  void TearDown() override {
    cudl_comm_destroy(local_);
    cudl_context_destroy(cpu_);
  }
  cudl_context *cpu_ = nullptr;
  cudl_comm *local_ = nullptr;
};

// NCCL is there when the build has it, its CUDA backend loads and so does
// libnccl.so.2 (both at run time): asked here of the loader directly.
TEST_F(DistNcclTest, AvailabilityIsTheBuildsAndTheHosts) {
  int expected = CUDL_TEST_HAVE_NCCL;
  if (expected) {
    char reason[512];
    expected = cudl_cuda_backend_load(nullptr, 0, reason, sizeof reason) == CUDL_OK;
    void *nccl = dlopen("libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    if (nccl == nullptr) nccl = dlopen(CUDL_TEST_NCCL_LIBRARY_DIR "/libnccl.so.2", RTLD_NOW | RTLD_LOCAL);
    expected = expected && nccl != nullptr;
    if (nccl != nullptr) dlclose(nccl);
  }
  EXPECT_EQ(cudl_comm_nccl_available(), expected);
}

TEST_F(DistNcclTest, BadArguments) {
  cudl_comm *c = reinterpret_cast<cudl_comm *>(&c);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_create_nccl(nullptr, local_, &c));
  EXPECT_EQ(c, nullptr);
  if (!cudl_comm_nccl_available()) GTEST_SKIP() << "this build has no NCCL (the next test checks what it says)";
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_create_nccl(cpu_, local_, nullptr));
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(cpu_), "out is NULL"));
  c = reinterpret_cast<cudl_comm *>(&c);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_create_nccl(cpu_, nullptr, &c));
  EXPECT_EQ(c, nullptr);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(cpu_), "bootstrap is NULL"));
  // NCCL connects GPUs: a CPU context is refused before anything is sent.
  c = reinterpret_cast<cudl_comm *>(&c);
  EXPECT_STATUS(CUDL_ERR_DEVICE_MISMATCH, cudl_comm_create_nccl(cpu_, local_, &c));
  EXPECT_EQ(c, nullptr);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(cpu_), "not a CUDA one"));
  // The bootstrap is still usable.
  int same = 0;
  EXPECT_STATUS(CUDL_OK, cudl_comm_agree(local_, 7, &same, nullptr, nullptr));
  EXPECT_EQ(same, 1);
}

TEST_F(DistNcclTest, WithoutNcclSaysWhatIsMissing) {
  if (cudl_comm_nccl_available()) GTEST_SKIP() << "this build has NCCL";
  cudl_comm *c = reinterpret_cast<cudl_comm *>(&c);
  EXPECT_STATUS(CUDL_ERR_UNSUPPORTED, cudl_comm_create_nccl(cpu_, local_, &c));
  EXPECT_EQ(c, nullptr);
  const std::string error = cudl_context_last_error(cpu_);
  EXPECT_TRUE(cudl_test::HasSubstr(error, "NCCL is not available: ")) << error;
  // Why: the build has no CUDA backend, or it cannot be loaded here, or
  // the build has no NCCL (CMake's reason: not found, or turned off), or
  // libnccl.so.2 cannot be loaded here.
  EXPECT_TRUE(cudl_test::HasSubstr(error, "built without CUDA") ||
              cudl_test::HasSubstr(error, "the CUDA backend") ||
              (cudl_test::HasSubstr(error, "built without NCCL: ") &&
               (cudl_test::HasSubstr(error, "NCCL_ROOT") || cudl_test::HasSubstr(error, "CUDL_NCCL=OFF"))) ||
              cudl_test::HasSubstr(error, "NCCL could not be loaded"))
      << error;
}

// A CUDA context and an NCCL communicator of one rank on it, or the reason
// there is none.
class DistNcclGpuTest : public DistNcclTest {
 protected:
  void SetUp() override {
    DistNcclTest::SetUp();
    if (!cudl_comm_nccl_available()) GTEST_SKIP() << "this build has no NCCL";
    const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
    if (!a.available) GTEST_SKIP() << "no usable GPU: " << a.reason;
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CUDA, 0, &gpu_));
    // The bootstrap records its errors in the CPU context: the NCCL
    // communicator relays them into its own.
    ASSERT_STATUS(CUDL_OK, cudl_comm_create_nccl(gpu_, local_, &nccl_))
        << cudl_context_last_error(gpu_);
  }
  void TearDown() override {
    cudl_comm_destroy(nccl_);
    cudl_context_destroy(gpu_);
    DistNcclTest::TearDown();
  }
  // A device tensor of gpu_ holding values.
  cudl_tensor *Tensor(const std::vector<float> &values) {
    cudl_tensor *t = nullptr;
    const int64_t shape[1] = {static_cast<int64_t>(values.size())};
    EXPECT_STATUS(CUDL_OK, cudl_tensor_create(gpu_, CUDL_DTYPE_F32, 1, shape, &t));
    if (t != nullptr) {
      EXPECT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(t, values.data(), values.size() * 4));
    }
    return t;
  }
  cudl_context *gpu_ = nullptr;
  cudl_comm *nccl_ = nullptr;
};

// Values that catch a sum done twice, a scale applied, or bytes moved
// wrongly: signs, a subnormal, a large and an odd count (1031 elements).
std::vector<float> Values() {
  std::vector<float> v(1031);
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>((i * 37 % 101) / 7.0 - 6.5);
  v[3] = 1e-40f;
  v[5] = -3.0e38f;
  return v;
}

TEST_F(DistNcclGpuTest, OneRankKeepsEveryValue) {
  EXPECT_EQ(cudl_comm_rank(nccl_), 0);
  EXPECT_EQ(cudl_comm_size(nccl_), 1);
  EXPECT_STREQ(cudl_comm_backend(nccl_), "nccl");
  const std::vector<float> values = Values();
  cudl_tensor *t = Tensor(values);
  ASSERT_NE(t, nullptr);
  // The public calls (nothing to exchange with one rank).
  EXPECT_STATUS(CUDL_OK, cudl_comm_allreduce_mean(nccl_, t));
  EXPECT_STATUS(CUDL_OK, cudl_comm_broadcast(nccl_, t, 0));
  EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(t), values));
  // NCCL's own all-reduce and broadcast on the device buffer, unbounded
  // (queued only) and bounded (the host polls until they are done).
  for (double timeout : {0.0, 60.0}) {
    ASSERT_STATUS(CUDL_OK, cudl_comm_set_timeout(nccl_, timeout));
    EXPECT_STATUS(CUDL_OK, nccl_->ops->sum_f32(nccl_, static_cast<float *>(cudl_tensor_data(t)),
                                                values.size()));
    EXPECT_STATUS(CUDL_OK, nccl_->ops->broadcast(nccl_, cudl_tensor_data(t), values.size() * 4, 0));
    EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(t), values)) << "timeout " << timeout;
  }
  // Host values go through the bootstrap.
  double sums[3] = {1.5, -2.0, 1e300};
  EXPECT_STATUS(CUDL_OK, nccl_->ops->sum_f64(nccl_, sums, 3));
  EXPECT_EQ(sums[0], 1.5);
  EXPECT_EQ(sums[2], 1e300);
  EXPECT_STATUS(CUDL_OK, cudl_comm_allreduce_sum_f64(nccl_, sums, 3));
  int same = 0;
  uint64_t lo = 0, hi = 0;
  EXPECT_STATUS(CUDL_OK, cudl_comm_agree(nccl_, 0x0123456789abcdefull, &same, &lo, &hi));
  EXPECT_EQ(same, 1);
  EXPECT_EQ(lo, 0x0123456789abcdefull);
  EXPECT_EQ(hi, 0x0123456789abcdefull);
  EXPECT_STATUS(CUDL_OK, cudl_comm_barrier(nccl_));
  EXPECT_STATUS(CUDL_OK, nccl_->ops->barrier(nccl_));
  cudl_tensor_destroy(t);
}

TEST_F(DistNcclGpuTest, AveragesAModelsGradients) {
  cudl_model *m = nullptr;
  const int64_t input[3] = {1, 4, 4}, widths[1] = {5};
  ASSERT_STATUS(CUDL_OK, cudl_zoo_mlp(gpu_, 3, input, 1, widths, CUDL_ACT_RELU, 0.0f, 3, &m));
  ASSERT_STATUS(CUDL_OK, cudl_model_compile(m, 2));
  ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
  cudl_tensor *grads = cudl_model_grads(m);
  const int64_t n = cudl_tensor_numel(grads);
  std::vector<float> g(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) g[static_cast<size_t>(i)] = static_cast<float>(i % 13) - 6.25f;
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(grads, g.data(), g.size() * 4));
  const std::vector<float> params = cudl_test::ReadF32(cudl_model_params(m));
  ASSERT_STATUS(CUDL_OK, cudl_comm_set_timeout(nccl_, 60.0));
  EXPECT_STATUS(CUDL_OK, cudl_comm_average_grads(nccl_, m));
  EXPECT_STATUS(CUDL_OK, cudl_comm_broadcast_params(nccl_, m, 0));
  // The arena through NCCL itself: the sum of one rank.
  EXPECT_STATUS(CUDL_OK, nccl_->ops->sum_f32(nccl_, static_cast<float *>(cudl_tensor_data(grads)),
                                              static_cast<size_t>(n)));
  EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(grads), g));
  EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(cudl_model_params(m)), params));
  cudl_model_destroy(m);
}

// The gradient buckets' path: each bucket's all-reduce queued on the
// second stream behind an event of the context's stream, the context's
// stream waiting for it. One rank's sum is its values, in every wire
// dtype; buckets queued before the last is waited for.
TEST_F(DistNcclGpuTest, BucketsOnTheSecondStreamKeepEveryValue) {
  for (cudl_dtype dtype : {CUDL_DTYPE_F32, CUDL_DTYPE_BF16, CUDL_DTYPE_F16}) {
    SCOPED_TRACE(cudl_dtype_name(dtype));
    const int64_t shape[1] = {1031};
    cudl_tensor *t[3] = {nullptr, nullptr, nullptr}, *f = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu_, CUDL_DTYPE_F32, 1, shape, &f));
    std::vector<float> v(1031);
    for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i % 29) * 0.125f - 1.5f;
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(f, v.data(), v.size() * 4));
    for (auto &x : t) {
      ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu_, dtype, 1, shape, &x));
      ASSERT_STATUS(CUDL_OK, cudl_tensor_convert(x, f));
    }
    for (double timeout : {0.0, 60.0}) {
      ASSERT_STATUS(CUDL_OK, cudl_comm_set_timeout(nccl_, timeout));
      ASSERT_STATUS(CUDL_OK, nccl_->ops->bucket_slots(nccl_, 3));
      for (int k = 0; k < 3; ++k)
        ASSERT_STATUS(CUDL_OK, nccl_->ops->bucket_reduce(nccl_, k, cudl_tensor_data(t[k]), 1031, dtype))
            << cudl_context_last_error(gpu_);
      for (int k = 0; k < 3; ++k) ASSERT_STATUS(CUDL_OK, nccl_->ops->bucket_broadcast(nccl_, k));
      for (int k = 0; k < 3; ++k) ASSERT_STATUS(CUDL_OK, nccl_->ops->bucket_wait(nccl_, k));
      for (auto *x : t) {
        ASSERT_STATUS(CUDL_OK, cudl_tensor_convert(f, x));
        EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(f), v)) << "timeout " << timeout;
      }
    }
    for (auto *x : t) cudl_tensor_destroy(x);
    cudl_tensor_destroy(f);
  }
}

// A model attached to the one-rank NCCL communicator: backward's buckets
// go through the second stream, and the gradients are the unattached
// model's, bit for bit, whatever the buckets.
TEST_F(DistNcclGpuTest, AttachedModelsGradientsAreThePlainOnes) {
  auto make = [&](cudl_model **m) {
    const int64_t input[3] = {1, 8, 8}, widths[2] = {37, 19};
    ASSERT_STATUS(CUDL_OK, cudl_zoo_mlp(gpu_, 3, input, 2, widths, CUDL_ACT_RELU, 0.0f, 3, m));
    ASSERT_STATUS(CUDL_OK, cudl_model_compile(*m, 4));
    ASSERT_STATUS(CUDL_OK, cudl_model_init(*m, CUDL_INIT_KAIMING_NORMAL));
  };
  cudl_model *plain = nullptr, *m = nullptr;
  make(&plain);
  make(&m);
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy(cudl_model_params(m), cudl_model_params(plain)));
  const int64_t xs[4] = {4, 1, 8, 8}, ts[1] = {4};
  cudl_tensor *x = nullptr, *labels = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu_, CUDL_DTYPE_F32, 4, xs, &x));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu_, CUDL_DTYPE_I32, 1, ts, &labels));
  std::vector<float> xv(4 * 64);
  for (size_t i = 0; i < xv.size(); ++i) xv[i] = static_cast<float>((i * 37) % 101) / 50.0f - 1.0f;
  const int32_t lv[4] = {0, 2, 1, 2};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(x, xv.data(), xv.size() * 4));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(labels, lv, sizeof lv));
  float loss = 0.0f;
  ASSERT_STATUS(CUDL_OK, cudl_model_forward(plain, x, labels, &loss));
  ASSERT_STATUS(CUDL_OK, cudl_model_backward(plain));
  const std::vector<float> want = cudl_test::ReadF32(cudl_model_grads(plain));
  for (int64_t cap : {int64_t{0}, int64_t{256}}) {
    ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, nccl_, cap));
    ASSERT_STATUS(CUDL_OK, cudl_model_forward(m, x, labels, &loss));
    ASSERT_STATUS(CUDL_OK, cudl_model_backward(m)) << cudl_context_last_error(gpu_);
    EXPECT_TRUE(cudl_test::BitEqual(cudl_test::ReadF32(cudl_model_grads(m)), want)) << "cap " << cap;
  }
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_model_destroy(m);
  cudl_model_destroy(plain);
}

TEST_F(DistNcclGpuTest, RefusesAnotherContextsTensor) {
  cudl_tensor *t = nullptr;
  const int64_t shape[1] = {4};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(cpu_, CUDL_DTYPE_F32, 1, shape, &t));
  EXPECT_STATUS(CUDL_ERR_DEVICE_MISMATCH, cudl_comm_allreduce_mean(nccl_, t));
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(gpu_), "another context"));
  EXPECT_STATUS(CUDL_ERR_DEVICE_MISMATCH, cudl_comm_broadcast(nccl_, t, 0));
  // An NCCL communicator cannot bootstrap another.
  cudl_comm *c = reinterpret_cast<cudl_comm *>(&c);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_create_nccl(gpu_, nccl_, &c));
  EXPECT_EQ(c, nullptr);
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(gpu_), "host memory"));
  cudl_tensor_destroy(t);
  // Still usable.
  int same = 0;
  EXPECT_STATUS(CUDL_OK, cudl_comm_agree(nccl_, 1, &same, nullptr, nullptr));
  EXPECT_EQ(same, 1);
}

TEST_F(DistNcclGpuTest, AbortedCommunicatorRefusesLaterCalls) {
  cudl_tensor *t = Tensor({1.0f, 2.0f});
  ASSERT_NE(t, nullptr);
  // The local bootstrap's abort returns: only NCCL's communicator ends.
  cudl_comm_abort(nccl_, 3);
  EXPECT_STATUS(CUDL_ERR_IO, nccl_->ops->sum_f32(nccl_, static_cast<float *>(cudl_tensor_data(t)), 2));
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(gpu_), "aborted"));
  EXPECT_STATUS(CUDL_ERR_IO, nccl_->ops->broadcast(nccl_, cudl_tensor_data(t), 8, 0));
  cudl_tensor_destroy(t);
  // Destroying it after the abort is fine (TearDown).
}

}  // namespace
