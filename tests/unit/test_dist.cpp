// The communicator's API (cudl/dist.h) in one process: the local backend's
// calls and their bad arguments, the model helpers, and what a build
// without MPI says. The MPI backend runs under mpirun in tests/dist.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <condition_variable>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cudl/cudl.h"
extern "C" {
#include "core/half.h"
#include "dist/comm_internal.h"
#include "dist/grad_sync.h"
}
#include "nn/graph.h"
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

// One training step of small-cnn (two batch-norm layers) on a fixed batch:
// the output, the gradients and the batch norms' running statistics.
struct SyncBnStep {
  std::vector<float> output, grads, running;
};

// Rows [first, first + count) of a fixed batch of 4.
static SyncBnStep TrainStep(cudl_context *ctx, cudl_model *m, int first = 0, int count = 4) {
  SyncBnStep r;
  const int64_t xs[4] = {count, 1, 8, 8}, ts[1] = {count};
  std::vector<float> x(4 * 64);
  for (size_t i = 0; i < x.size(); ++i) x[i] = static_cast<float>((i * 37 % 101) / 50.0 - 1.0);
  const int32_t labels[4] = {0, 2, 1, 2};
  cudl_tensor *xt = nullptr, *tt = nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &xt));
  EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, ts, &tt));
  EXPECT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(xt, x.data() + first * 64,
                                                    static_cast<size_t>(count) * 64 * 4));
  EXPECT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(tt, labels + first,
                                                    static_cast<size_t>(count) * 4));
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

static cudl_model *SmallCnn(cudl_context *ctx, cudl_layout layout = CUDL_LAYOUT_NCHW) {
  cudl_model *m = nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_zoo_small_cnn(ctx, 1, 8, 8, 3, 0.0f, &m));
  if (m == nullptr) return nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_model_set_layout(m, layout));
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

// Two replicas in two threads, each with its own context and half of the
// batch, joined by a sum that stands in for the communicator's (the
// model's internal bn_sum hook, which cudl_model_set_sync_bn sets): the
// same arithmetic as ranks under mpirun, without MPI, so that a build
// without it still checks it. Each sum is a rendezvous of both threads
// (a forced interleaving), added in rank order as the MPI backend does.
class TwoReplicaSum {
 public:
  static cudl_status Sum(void *group, double *values, int64_t count) {
    auto *self = static_cast<Replica *>(group);
    return self->shared->Exchange(self->rank, values, count);
  }
  struct Replica {
    TwoReplicaSum *shared;
    int rank;
  };
  Replica replicas[2] = {{this, 0}, {this, 1}};

 private:
  cudl_status Exchange(int rank, double *values, int64_t count) {
    std::unique_lock<std::mutex> lock(mutex_);
    slots_[rank].assign(values, values + count);
    Arrive(lock);  // both deposited
    for (int64_t i = 0; i < count; ++i) values[i] = slots_[0][i] + slots_[1][i];
    Arrive(lock);  // both read: the slots may be written again
    return CUDL_OK;
  }
  void Arrive(std::unique_lock<std::mutex> &lock) {
    const long generation = generation_;
    if (++arrived_ == 2) {
      arrived_ = 0;
      ++generation_;
      ready_.notify_all();
    } else {
      ready_.wait(lock, [&] { return generation_ != generation; });
    }
  }
  std::mutex mutex_;
  std::condition_variable ready_;
  int arrived_ = 0;
  long generation_ = 0;
  std::vector<double> slots_[2];
};

// Largest |a - b| / (1 + |b|).
static double Worst(const std::vector<float> &a, const std::vector<float> &b) {
  double worst = a.size() == b.size() ? 0.0 : INFINITY;
  for (size_t i = 0; i < a.size() && i < b.size(); ++i)
    worst = std::max(worst, std::fabs(static_cast<double>(a[i]) - b[i]) / (1.0 + std::fabs(b[i])));
  return worst;
}

// Replicas of rows [0, 2) and [2, 4) against one model of the 4 rows: with
// synchronised statistics, the outputs, the mean of the replicas'
// gradients (conv1's and conv2's depend on batch norm's dx) and the
// running statistics match; with per-replica statistics (!sync) they
// do not.
static void TwoReplicaStep(bool sync, cudl_layout layout, double *worst_output,
                           double *worst_grads, double *worst_running) {
  cudl_context *ctx[3] = {nullptr, nullptr, nullptr};
  cudl_model *m[3] = {nullptr, nullptr, nullptr};
  for (int i = 0; i < 3; ++i) {
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx[i]));
    m[i] = SmallCnn(ctx[i], layout);
    ASSERT_NE(m[i], nullptr);
    ASSERT_STATUS(CUDL_OK, cudl_model_init(m[i], CUDL_INIT_KAIMING_NORMAL));
  }
  const std::vector<float> weights = cudl_test::ReadF32(cudl_model_params(m[2]));
  TwoReplicaSum group;
  for (int i = 0; i < 2; ++i) {
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(cudl_model_params(m[i]), weights.data(),
                                                      weights.size() * 4));
    if (sync) {
      m[i]->bn_sum = TwoReplicaSum::Sum;
      m[i]->bn_group = &group.replicas[i];
    }
  }
  SyncBnStep half[2];
  std::thread other([&] { half[1] = TrainStep(ctx[1], m[1], 2, 2); });
  half[0] = TrainStep(ctx[0], m[0], 0, 2);
  other.join();
  const SyncBnStep whole = TrainStep(ctx[2], m[2]);
  std::vector<float> output = half[0].output, grads(whole.grads.size());
  output.insert(output.end(), half[1].output.begin(), half[1].output.end());
  for (size_t i = 0; i < grads.size() && i < half[1].grads.size(); ++i)
    grads[i] = (half[0].grads[i] + half[1].grads[i]) / 2.0f;
  *worst_output = Worst(output, whole.output);
  *worst_grads = Worst(grads, whole.grads);
  *worst_running = std::max(Worst(half[0].running, whole.running),
                            Worst(half[1].running, whole.running));
  for (int i = 0; i < 3; ++i) {
    cudl_model_destroy(m[i]);
    cudl_context_destroy(ctx[i]);
  }
}

TEST(SyncBatchNorm, TwoReplicasTrainAsOneModelOfTheirRows) {
  double output = 1.0, grads = 1.0, running = 1.0;
  TwoReplicaStep(true, CUDL_LAYOUT_NCHW, &output, &grads, &running);
  // f32 means and variances reach the sums (measured: 3.8e-7, 5.7e-7 and
  // 5.9e-8; without backward's sum the gradients are 0.04 off).
  EXPECT_LT(output, 1e-5);
  EXPECT_LT(grads, 1e-5);
  EXPECT_LT(running, 1e-5);
  // The control: per-replica statistics are far off (measured: 0.13,
  // 0.21 and 0.016).
  TwoReplicaStep(false, CUDL_LAYOUT_NCHW, &output, &grads, &running);
  EXPECT_GT(output, 1e-3);
  EXPECT_GT(grads, 1e-3);
  EXPECT_GT(running, 1e-3);
}

// Channels-last activations: batch norm's input, and the correction made
// like it, in NHWC.
TEST(SyncBatchNorm, TwoReplicasChannelsLast) {
  double output = 1.0, grads = 1.0, running = 1.0;
  TwoReplicaStep(true, CUDL_LAYOUT_NHWC, &output, &grads, &running);
  EXPECT_LT(output, 1e-5);
  EXPECT_LT(grads, 1e-5);
  EXPECT_LT(running, 1e-5);
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

// ---- gradient buckets (cudl_model_set_grad_sync) ----

// The node owning trainable parameter p (as its weight or bias).
static int OwnerOf(const cudl_model *m, int p) {
  for (int k = 1; k < m->node_count; ++k)
    if (m->nodes[k].weight == p || m->nodes[k].bias == p) return k;
  return -1;
}

// The buckets of cap bytes, checked against their definition: they cover
// the arena exactly, from its end down, each a run of whole parameters
// (with the padding after each) that stays within the cap unless it is
// one parameter alone, as full as the cap allows, and ready at the lowest
// node owning one of its parameters.
static void CheckPlan(cudl_model *m, int64_t cap) {
  SCOPED_TRACE("cap " + std::to_string(cap));
  cudl__grad_bucket *b = nullptr;
  int count = 0;
  ASSERT_STATUS(CUDL_OK, cudl__grad_buckets_plan(m, cap, INT64_MAX, &b, &count));
  ASSERT_GT(count, 0);
  // Parameter starts, in the arena's order.
  std::vector<int> trainable;
  for (int i = 0; i < m->param_count; ++i)
    if (m->params[i].trainable) trainable.push_back(i);
  int64_t end = m->param_floats;
  size_t next = trainable.size();  // parameters above `end` are taken
  for (int k = 0; k < count; ++k) {
    SCOPED_TRACE("bucket " + std::to_string(k));
    EXPECT_EQ(b[k].first + b[k].count, end);
    std::vector<int> in;
    while (next > 0 && m->params[trainable[next - 1]].offset >= b[k].first)
      in.push_back(trainable[--next]);
    ASSERT_FALSE(in.empty());
    EXPECT_EQ(m->params[in.back()].offset, b[k].first) << "starts at a parameter";
    int ready = INT32_MAX;
    for (int p : in) ready = std::min(ready, OwnerOf(m, p));
    EXPECT_EQ(b[k].ready_node, ready);
    const int64_t bytes = 4 * b[k].count;
    if (cap > 0 && in.size() > 1) { EXPECT_LE(bytes, cap); }
    // Full: the next parameter down would have passed the cap.
    if (cap > 0 && next > 0) { EXPECT_GT(4 * (end - m->params[trainable[next - 1]].offset), cap); }
    if (cap == 0) { EXPECT_EQ(count, 1); }
    end = b[k].first;
  }
  EXPECT_EQ(end, 0);
  EXPECT_EQ(next, 0u);
  cudl__grad_buckets_free(&m->allocator, b, count);
}

TEST_F(DistTest, GradBucketsCutTheArenaAtParameters) {
  cudl_model *m = SmallCnn(ctx_);
  ASSERT_NE(m, nullptr);
  // small-cnn: conv weights, batch-norm weights and biases, a linear layer.
  int64_t smallest = INT64_MAX;
  for (int i = 0; i < m->param_count; ++i)
    if (m->params[i].trainable) smallest = std::min(smallest, 4 * m->params[i].numel);
  for (int64_t cap : {int64_t{0}, int64_t{4}, smallest - 1, smallest, int64_t{256},
                      int64_t{1000}, int64_t{4096}, 4 * m->param_floats - 4,
                      4 * m->param_floats, int64_t{25} << 20})
    CheckPlan(m, cap);
  // A cap below every parameter: each its own bucket, ready at its node.
  cudl__grad_bucket *b = nullptr;
  int count = 0, trainable = 0;
  for (int i = 0; i < m->param_count; ++i) trainable += m->params[i].trainable;
  ASSERT_STATUS(CUDL_OK, cudl__grad_buckets_plan(m, 1, INT64_MAX, &b, &count));
  EXPECT_EQ(count, trainable);
  cudl__grad_buckets_free(&m->allocator, b, count);
  // Pieces of at most max_floats, cut from the top, keeping the ready node.
  cudl__grad_bucket *whole = nullptr, *pieces = nullptr;
  int n_whole = 0, n_pieces = 0;
  ASSERT_STATUS(CUDL_OK, cudl__grad_buckets_plan(m, 0, INT64_MAX, &whole, &n_whole));
  ASSERT_STATUS(CUDL_OK, cudl__grad_buckets_plan(m, 0, 100, &pieces, &n_pieces));
  ASSERT_EQ(n_whole, 1);
  EXPECT_EQ(n_pieces, (m->param_floats + 99) / 100);
  int64_t end = m->param_floats;
  for (int k = 0; k < n_pieces; ++k) {
    EXPECT_EQ(pieces[k].first + pieces[k].count, end);
    EXPECT_LE(pieces[k].count, 100);
    EXPECT_EQ(pieces[k].ready_node, whole[0].ready_node);
    end = pieces[k].first;
  }
  EXPECT_EQ(end, 0);
  cudl__grad_buckets_free(&m->allocator, whole, n_whole);
  cudl__grad_buckets_free(&m->allocator, pieces, n_pieces);
  cudl_model_destroy(m);
}

TEST_F(DistTest, GradSyncBadArgumentsAndOneRank) {
  cudl_model *m = nullptr;
  const int64_t input[3] = {1, 4, 4}, widths[1] = {5};
  ASSERT_STATUS(CUDL_OK, cudl_zoo_mlp(ctx_, 3, input, 1, widths, CUDL_ACT_RELU, 0.0f, 3, &m));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_sync(nullptr, comm_, 0));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_sync(m, comm_, 0));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "not compiled"), nullptr);
  {
    // Compiled for inference: no gradients, and the reason says so.
    cudl_model *inference = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_zoo_mlp(ctx_, 3, input, 1, widths, CUDL_ACT_RELU, 0.0f, 3, &inference));
    ASSERT_STATUS(CUDL_OK, cudl_model_compile_inference(inference, 2));
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_sync(inference, comm_, 0));
    EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "compiled for inference"));
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_average_grads(comm_, inference));
    EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "compiled for inference"));
    cudl_model_destroy(inference);
  }
  ASSERT_STATUS(CUDL_OK, cudl_model_compile(m, 2));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_sync(m, comm_, -1));
  EXPECT_EQ(cudl_model_grad_sync_buckets(m), 0);
  cudl_context *other = nullptr;
  cudl_comm *foreign = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &other));
  ASSERT_STATUS(CUDL_OK, cudl_comm_create_local(other, &foreign));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_sync(m, foreign, 0));
  cudl_comm_destroy(foreign);
  cudl_context_destroy(other);
  // mlp: 4 parameters; each its own bucket below the smallest.
  EXPECT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, comm_, 4));
  EXPECT_EQ(cudl_model_grad_sync_buckets(m), 4);
  // The backward averages: averaging again is refused, not done twice.
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_comm_average_grads(comm_, m));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "cudl_model_set_grad_sync"), nullptr);
  EXPECT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, comm_, 0));
  EXPECT_EQ(cudl_model_grad_sync_buckets(m), 1);
  EXPECT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, nullptr, 0));
  EXPECT_EQ(cudl_model_grad_sync_buckets(m), 0);
  EXPECT_EQ(cudl_model_grad_sync_wait_seconds(m), 0.0);
  EXPECT_STATUS(CUDL_OK, cudl_comm_average_grads(comm_, m));
  // Destroying an attached model releases its buckets (leak checkers).
  EXPECT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, comm_, 64));
  cudl_model_destroy(m);
}

// A backend of two ranks in one process, the other rank holding the same
// gradients as this one: a bucket's reduce takes a copy of the values as
// they are when it starts, and its broadcast gives back twice that copy
// (the sum), so that the mean is this rank's gradient bit for bit (a
// product by 2 then by 1/2) only if every bucket started after backward
// had finished its values. Every call is logged in order.
// The values travel as f32 or, on a 16-bit wire, as bf16 or f16 words,
// which the fake doubles in their own type (exact: one more exponent).
struct FakeTwoRanks {
  std::vector<std::vector<float>> taken;
  std::vector<void *> where;
  std::vector<cudl_dtype> dtypes;
  std::vector<std::string> log;
  int progress = 0;
  bool fail_broadcast = false;
};
static FakeTwoRanks *fake = nullptr;

static float WireToF32(const void *values, size_t i, cudl_dtype dtype) {
  const uint16_t *w = static_cast<const uint16_t *>(values);
  if (dtype == CUDL_DTYPE_BF16) return cudl__bf16_to_f32(w[i]);
  if (dtype == CUDL_DTYPE_F16) return cudl__f16_to_f32(w[i]);
  return static_cast<const float *>(values)[i];
}
static void F32ToWire(void *values, size_t i, float v, cudl_dtype dtype) {
  uint16_t *w = static_cast<uint16_t *>(values);
  if (dtype == CUDL_DTYPE_BF16) w[i] = cudl__f32_to_bf16(v);
  else if (dtype == CUDL_DTYPE_F16) w[i] = cudl__f32_to_f16(v);
  else static_cast<float *>(values)[i] = v;
}

static cudl_status FakeSlots(cudl_comm *, int count) {
  fake->taken.assign(static_cast<size_t>(count), {});
  fake->where.assign(static_cast<size_t>(count), nullptr);
  fake->dtypes.assign(static_cast<size_t>(count), CUDL_DTYPE_I32);
  return CUDL_OK;
}
static cudl_status FakeReduce(cudl_comm *, int slot, void *values, size_t count,
                              cudl_dtype dtype) {
  std::vector<float> &taken = fake->taken[static_cast<size_t>(slot)];
  taken.resize(count);
  for (size_t i = 0; i < count; ++i) taken[i] = WireToF32(values, i, dtype);
  fake->where[static_cast<size_t>(slot)] = values;
  fake->dtypes[static_cast<size_t>(slot)] = dtype;
  fake->log.push_back("R" + std::to_string(slot));
  return CUDL_OK;
}
static cudl_status FakeBroadcast(cudl_comm *c, int slot) {
  if (fake->fail_broadcast)
    return cudl__fail(c->ctx, CUDL_ERR_IO, "test", "the broadcast failed");
  const size_t k = static_cast<size_t>(slot);
  const std::vector<float> &v = fake->taken[k];
  for (size_t i = 0; i < v.size(); ++i) F32ToWire(fake->where[k], i, 2.0f * v[i], fake->dtypes[k]);
  fake->log.push_back("B" + std::to_string(slot));
  return CUDL_OK;
}
static cudl_status FakeProgress(cudl_comm *) {
  ++fake->progress;
  return CUDL_OK;
}
static cudl_status FakeWait(cudl_comm *, int slot) {
  fake->log.push_back("W" + std::to_string(slot));
  return CUDL_OK;
}
static cudl_status FakeNothing(cudl_comm *) { return CUDL_OK; }
static void FakeAbort(cudl_comm *, int) {}
static void FakeRelease(cudl_comm *) {}

static cudl_comm_ops FakeOps() {
  cudl_comm_ops ops;
  std::memset(&ops, 0, sizeof ops);
  ops.name = "fake";
  ops.barrier = FakeNothing;
  ops.abort = FakeAbort;
  ops.release = FakeRelease;
  ops.bucket_slots = FakeSlots;
  ops.bucket_reduce = FakeReduce;
  ops.bucket_broadcast = FakeBroadcast;
  ops.bucket_progress = FakeProgress;
  ops.bucket_wait = FakeWait;
  return ops;
}

// One step of an attached small-cnn against the same model unattached: the
// gradients backward returns are the same bits for every cap, the buckets
// start in the order the ranks must share (reduce k, then broadcast k - 1;
// the last broadcast and the waits after backward), and none starts before
// its gradients are final (its copy would hold the stale values planted in
// the arena, which the broadcast would put back).
static void AttachedMatchesPlain(cudl_context *ctx, cudl_layout layout) {
  static const cudl_comm_ops ops = FakeOps();
  FakeTwoRanks state;
  fake = &state;
  cudl_comm *two = cudl__comm_new(ctx, &ops, 0, 2, "test");
  ASSERT_NE(two, nullptr);
  cudl_model *plain = SmallCnn(ctx, layout);
  ASSERT_NE(plain, nullptr);
  ASSERT_STATUS(CUDL_OK, cudl_model_init(plain, CUDL_INIT_KAIMING_NORMAL));
  // The same stale values in both arenas: backward overwrites every
  // parameter's gradient, never the alignment padding between them.
  ASSERT_STATUS(CUDL_OK, cudl_tensor_fill(cudl_model_grads(plain), 12345.0f));
  const SyncBnStep want = TrainStep(ctx, plain);
  for (int64_t cap : {int64_t{0}, int64_t{1}, int64_t{300}, int64_t{2000}, int64_t{25} << 20}) {
    SCOPED_TRACE("cap " + std::to_string(cap));
    cudl_model *m = SmallCnn(ctx, layout);
    ASSERT_NE(m, nullptr);
    ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy(cudl_model_params(m), cudl_model_params(plain)));
    ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, two, cap));
    const int buckets = cudl_model_grad_sync_buckets(m);
    ASSERT_GT(buckets, 0);
    state.log.clear();
    state.progress = 0;
    ASSERT_STATUS(CUDL_OK, cudl_tensor_fill(cudl_model_grads(m), 12345.0f));
    const SyncBnStep got = TrainStep(ctx, m);
    EXPECT_TRUE(cudl_test::BitEqual(got.grads, want.grads));
    // The order every rank must share: walking the layers down, the reduce
    // of each bucket whose layers are all done, then the broadcasts of
    // every bucket but the last reduced; after backward the rest, then
    // the waits.
    cudl__grad_bucket *plan = nullptr;
    int planned = 0;
    ASSERT_STATUS(CUDL_OK, cudl__grad_buckets_plan(m, cap, INT32_MAX, &plan, &planned));
    ASSERT_EQ(planned, buckets);
    std::vector<std::string> order;
    int reduced = 0, broadcast = 0;
    for (int node = m->node_count - 1; node >= 1; --node) {
      while (reduced < planned && plan[reduced].ready_node >= node)
        order.push_back("R" + std::to_string(reduced++));
      while (broadcast < reduced - 1) order.push_back("B" + std::to_string(broadcast++));
    }
    while (broadcast < planned) order.push_back("B" + std::to_string(broadcast++));
    for (int k = 0; k < planned; ++k) order.push_back("W" + std::to_string(k));
    cudl__grad_buckets_free(&m->allocator, plan, planned);
    EXPECT_EQ(state.log, order);
    // Between the first bucket and the end, backward lets them move.
    if (buckets > 1) { EXPECT_GT(state.progress, 0); }
    EXPECT_GE(cudl_model_grad_sync_wait_seconds(m), 0.0);
    cudl_model_destroy(m);
  }
  cudl_model_destroy(plain);
  cudl_comm_destroy(two);
  fake = nullptr;
}

TEST_F(DistTest, AttachedGradientsAreThePlainOnesForEveryCap) {
  AttachedMatchesPlain(ctx_, CUDL_LAYOUT_NCHW);
}

// Channels-last: the convolutions' gradients come through working copies,
// converted into the arena node by node before their bucket starts.
TEST_F(DistTest, AttachedGradientsChannelsLast) { AttachedMatchesPlain(ctx_, CUDL_LAYOUT_NHWC); }

// A 16-bit wire: each bucket leaves as the bf16 (f16) rounding of this
// rank's share of the mean (its f32 gradients halved) and comes back as
// the 16-bit sum of the shares, converted to f32, so the gradients backward
// returns are those roundings of the plain ones, bit for bit (for bf16 the
// plain ones rounded to bf16; f16's subnormals lose a bit to the halving);
// the wire follows the precision unless chosen, and one rank keeps f32.
TEST_F(DistTest, SixteenBitWireSendsTheRoundedGradients) {
  static const cudl_comm_ops ops = FakeOps();
  FakeTwoRanks state;
  fake = &state;
  cudl_comm *two = cudl__comm_new(ctx_, &ops, 0, 2, "test");
  ASSERT_NE(two, nullptr);
  cudl_model *plain = SmallCnn(ctx_);
  ASSERT_NE(plain, nullptr);
  ASSERT_STATUS(CUDL_OK, cudl_model_init(plain, CUDL_INIT_KAIMING_NORMAL));
  const SyncBnStep want = TrainStep(ctx_, plain);
  EXPECT_EQ(cudl_model_grad_wire_dtype(plain), CUDL_DTYPE_F32) << "f32 precision: an f32 wire";
  for (cudl_grad_wire wire : {CUDL_GRAD_WIRE_BF16, CUDL_GRAD_WIRE_F16, CUDL_GRAD_WIRE_F32}) {
    const cudl_dtype dtype = wire == CUDL_GRAD_WIRE_BF16  ? CUDL_DTYPE_BF16
                             : wire == CUDL_GRAD_WIRE_F16 ? CUDL_DTYPE_F16
                                                          : CUDL_DTYPE_F32;
    for (int64_t cap : {int64_t{0}, int64_t{300}}) {
      SCOPED_TRACE(std::string(cudl_grad_wire_name(wire)) + " cap " + std::to_string(cap));
      cudl_model *m = SmallCnn(ctx_);
      ASSERT_NE(m, nullptr);
      ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
      ASSERT_STATUS(CUDL_OK, cudl_tensor_copy(cudl_model_params(m), cudl_model_params(plain)));
      ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_wire(m, wire));
      EXPECT_EQ(cudl_model_grad_wire_dtype(m), dtype);
      ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, two, cap));
      const SyncBnStep got = TrainStep(ctx_, m);
      ASSERT_EQ(got.grads.size(), want.grads.size());
      for (cudl_dtype d : state.dtypes) EXPECT_EQ(d, dtype);
      size_t wrong = 0, changed = 0;
      for (size_t i = 0; i < want.grads.size(); ++i) {
        // This rank's share (half, in f32) rounded to the wire, the two
        // shares' sum rounded again (the fake's), back in f32; an f32
        // wire sums, then halves.
        float rounded = want.grads[i];
        if (dtype != CUDL_DTYPE_F32) {
          uint16_t share[1], sum[1];
          F32ToWire(share, 0, want.grads[i] * 0.5f, dtype);
          F32ToWire(sum, 0, 2.0f * WireToF32(share, 0, dtype), dtype);
          rounded = WireToF32(sum, 0, dtype);
        }
        uint32_t a, b;
        std::memcpy(&a, &rounded, 4);
        std::memcpy(&b, &got.grads[i], 4);
        wrong += a != b;
        changed += rounded != want.grads[i];
      }
      EXPECT_EQ(wrong, 0u) << "of " << want.grads.size();
      if (dtype == CUDL_DTYPE_F32) {
        EXPECT_EQ(changed, 0u);
      } else {
        EXPECT_GT(changed, want.grads.size() / 2) << "the wire rounded nothing";
      }
      cudl_model_destroy(m);
    }
  }
  // Cut off from the exchange (one rank), the gradients stay exact.
  {
    cudl_model *m = SmallCnn(ctx_);
    ASSERT_NE(m, nullptr);
    ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy(cudl_model_params(m), cudl_model_params(plain)));
    ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_wire(m, CUDL_GRAD_WIRE_BF16));
    ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, comm_, 300));
    EXPECT_TRUE(cudl_test::BitEqual(TrainStep(ctx_, m).grads, want.grads));
    cudl_model_destroy(m);
  }
  cudl_model_destroy(plain);
  cudl_comm_destroy(two);
  fake = nullptr;
}

TEST_F(DistTest, GradWireArgumentsAndNames) {
  cudl_model *m = SmallCnn(ctx_);
  ASSERT_NE(m, nullptr);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_wire(nullptr, CUDL_GRAD_WIRE_F32));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_wire(m, static_cast<cudl_grad_wire>(4)));
  EXPECT_TRUE(cudl_test::HasSubstr(cudl_context_last_error(ctx_), "wire is 4"));
  EXPECT_EQ(cudl_model_grad_wire_dtype(m), CUDL_DTYPE_F32) << "a refused value changes nothing";
  EXPECT_EQ(cudl_model_grad_wire_dtype(nullptr), CUDL_DTYPE_F32);
  for (cudl_grad_wire w : {CUDL_GRAD_WIRE_AUTO, CUDL_GRAD_WIRE_F32, CUDL_GRAD_WIRE_BF16, CUDL_GRAD_WIRE_F16}) {
    cudl_grad_wire back = static_cast<cudl_grad_wire>(7);
    EXPECT_STATUS(CUDL_OK, cudl_grad_wire_from_name(cudl_grad_wire_name(w), &back));
    EXPECT_EQ(back, w);
  }
  cudl_grad_wire kept = CUDL_GRAD_WIRE_F16;
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_grad_wire_from_name("fp16", &kept));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_grad_wire_from_name(nullptr, &kept));
  EXPECT_EQ(kept, CUDL_GRAD_WIRE_F16);
  EXPECT_STREQ(cudl_grad_wire_name(static_cast<cudl_grad_wire>(9)), "unknown");
  cudl_model_destroy(m);
  // Auto follows the precision (set before compiling; the CPU emulates
  // the 16-bit ones once allowed).
  ASSERT_STATUS(CUDL_OK, cudl_context_set_allow_emulated_precision(ctx_, 1));
  for (cudl_precision p : {CUDL_PRECISION_BF16, CUDL_PRECISION_FP16, CUDL_PRECISION_TF32}) {
    SCOPED_TRACE(cudl_precision_name(p));
    m = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_zoo_small_cnn(ctx_, 1, 8, 8, 3, 0.0f, &m));
    ASSERT_STATUS(CUDL_OK, cudl_model_set_precision(m, p)) << cudl_context_last_error(ctx_);
    EXPECT_EQ(cudl_model_grad_wire_dtype(m), p == CUDL_PRECISION_BF16   ? CUDL_DTYPE_BF16
                                             : p == CUDL_PRECISION_FP16 ? CUDL_DTYPE_F16
                                                                        : CUDL_DTYPE_F32);
    ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_wire(m, CUDL_GRAD_WIRE_F32));
    EXPECT_EQ(cudl_model_grad_wire_dtype(m), CUDL_DTYPE_F32) << "a chosen wire overrides";
    cudl_model_destroy(m);
  }
  ASSERT_STATUS(CUDL_OK, cudl_context_set_allow_emulated_precision(ctx_, 0));
}

// The local backend attached: the same gradients as unattached, bit for bit.
TEST_F(DistTest, AttachedToOneRankChangesNothing) {
  cudl_model *plain = SmallCnn(ctx_), *m = SmallCnn(ctx_);
  ASSERT_NE(plain, nullptr);
  ASSERT_NE(m, nullptr);
  ASSERT_STATUS(CUDL_OK, cudl_model_init(plain, CUDL_INIT_KAIMING_NORMAL));
  ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy(cudl_model_params(m), cudl_model_params(plain)));
  ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, comm_, 256));
  EXPECT_GT(cudl_model_grad_sync_buckets(m), 1);
  const SyncBnStep want = TrainStep(ctx_, plain), got = TrainStep(ctx_, m);
  EXPECT_TRUE(cudl_test::BitEqual(got.grads, want.grads));
  EXPECT_TRUE(cudl_test::BitEqual(got.output, want.output));
  cudl_model_destroy(plain);
  cudl_model_destroy(m);
}

// A backward that fails with buckets in flight: the other ranks' exchanges
// no longer match this rank's, so the next backward and attaching again
// are refused, saying so, rather than start exchanges that pair wrongly.
TEST_F(DistTest, FailedBackwardWithBucketsInFlightRefusesTheNext) {
  static const cudl_comm_ops ops = FakeOps();
  FakeTwoRanks state;
  fake = &state;
  cudl_comm *two = cudl__comm_new(ctx_, &ops, 0, 2, "test");
  ASSERT_NE(two, nullptr);
  cudl_model *m = SmallCnn(ctx_);
  ASSERT_NE(m, nullptr);
  ASSERT_STATUS(CUDL_OK, cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
  ASSERT_STATUS(CUDL_OK, cudl_model_set_grad_sync(m, two, 1));
  ASSERT_GT(cudl_model_grad_sync_buckets(m), 2);
  TrainStep(ctx_, m);  // a clean step first: nothing left in flight
  state.fail_broadcast = true;
  const int64_t xs[4] = {4, 1, 8, 8}, ts[1] = {4};
  cudl_tensor *x = nullptr, *t = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, xs, &x));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, ts, &t));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_fill(x, 0.5f));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(t, std::vector<int32_t>{0, 1, 2, 0}.data(), 16));
  ASSERT_STATUS(CUDL_OK, cudl_model_forward(m, x, t, nullptr));
  EXPECT_STATUS(CUDL_ERR_IO, cudl_model_backward(m));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "the broadcast failed"), nullptr);
  state.fail_broadcast = false;
  ASSERT_STATUS(CUDL_OK, cudl_model_forward(m, x, t, nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_backward(m));
  EXPECT_NE(std::strstr(cudl_context_last_error(ctx_), "in flight"), nullptr);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_model_set_grad_sync(m, two, 0));
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(t);
  cudl_model_destroy(m);
  cudl_comm_destroy(two);
  fake = nullptr;
}

}  // namespace

