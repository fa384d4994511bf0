// Allocation failure injection (cudl_context_fail_allocation): a whole
// training step, from an empty context to the optimizer's update, with its
// k-th allocation failing, for every k. Each run must report
// CUDL_ERR_OUT_OF_MEMORY with a message (or absorb the failure where a
// documented fallback exists), leak nothing, and leave the context and
// every object already made usable: the step then completes and gives the
// loss of a run without failures.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

constexpr int64_t kImages = 8, kBatch = 4, kSize = 8, kClasses = 3;

// Everything a training step needs; each stage is made once and kept, so a
// step that failed half-way can be completed with what it already made.
struct Step {
  cudl_dataset *dataset = nullptr;
  cudl_loader *loader = nullptr;
  cudl_model *model = nullptr;
  bool compiled = false, initialised = false;
  cudl_optimizer *optimizer = nullptr;
  cudl_tensor *x = nullptr, *labels = nullptr;

  void Destroy() {
    cudl_tensor_destroy(x);
    cudl_tensor_destroy(labels);
    cudl_optimizer_destroy(optimizer);
    cudl_model_destroy(model);
    cudl_loader_destroy(loader);
    cudl_dataset_destroy(dataset);
    *this = Step();
  }
};

enum class Model { kResNet8, kSmallCnnWithDropout };

const char *Name(Model m) { return m == Model::kResNet8 ? "resnet8" : "small-cnn, dropout 0.25"; }

// Run the stages not yet done, then one step: the loader's first batch
// (with augmentation), forward with the loss, backward, an SGD update.
cudl_status RunStep(cudl_context *ctx, Model which, Step *s, float *loss) {
  cudl_status st;
  if (s->dataset == nullptr) {
    std::vector<uint8_t> pixels(static_cast<size_t>(kImages * kSize * kSize)), labels(kImages);
    for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = static_cast<uint8_t>((i * 37) % 251);
    for (size_t i = 0; i < labels.size(); ++i) labels[i] = static_cast<uint8_t>(i % kClasses);
    st = cudl_dataset_create(ctx, kImages, 1, kSize, kSize, kClasses, pixels.data(), labels.data(),
                             &s->dataset);
    if (st != CUDL_OK) return st;
  }
  if (s->loader == nullptr) {
    cudl_loader_config config = cudl_loader_config_default();
    config.batch = kBatch;
    config.seed = 3;
    config.augment = 1;
    config.crop_padding = 1;
    config.horizontal_flip = 1;
    st = cudl_loader_create(ctx, s->dataset, &config, &s->loader);
    if (st != CUDL_OK) return st;
  }
  if (s->model == nullptr) {
    st = which == Model::kResNet8
             ? cudl_zoo_resnet(ctx, 8, 0, 1, kSize, kSize, kClasses, &s->model)
             : cudl_zoo_small_cnn(ctx, 1, kSize, kSize, kClasses, 0.25f, &s->model);
    if (st != CUDL_OK) return st;
  }
  if (!s->compiled) {
    st = cudl_model_compile(s->model, kBatch);
    if (st != CUDL_OK) return st;
    s->compiled = true;
  }
  if (!s->initialised) {
    if ((st = cudl_context_set_seed(ctx, 5)) != CUDL_OK) return st;
    st = cudl_model_init(s->model, CUDL_INIT_KAIMING_NORMAL);
    if (st != CUDL_OK) return st;
    s->initialised = true;
  }
  if (s->optimizer == nullptr) {
    cudl_optimizer_config config;
    if ((st = cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &config)) != CUDL_OK) return st;
    config.momentum = 0.9f;
    config.weight_decay = 5e-4f;
    st = cudl_optimizer_create(ctx, &config, cudl_tensor_numel(cudl_model_params(s->model)),
                               &s->optimizer);
    if (st != CUDL_OK) return st;
  }
  if (s->x == nullptr) {
    const int64_t shape[4] = {kBatch, 1, kSize, kSize};
    if ((st = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &s->x)) != CUDL_OK) return st;
  }
  if (s->labels == nullptr) {
    const int64_t shape[1] = {kBatch};
    if ((st = cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, shape, &s->labels)) != CUDL_OK) return st;
  }
  // The step itself, from the same batch and random numbers every time.
  if ((st = cudl_loader_seek(s->loader, 0, 0)) != CUDL_OK) return st;
  if ((st = cudl_loader_next(s->loader, s->x, s->labels, nullptr, nullptr)) != CUDL_OK) return st;
  if ((st = cudl_context_set_rng_state(ctx, 99, 0)) != CUDL_OK) return st;
  if ((st = cudl_model_set_training(s->model, 1)) != CUDL_OK) return st;
  if ((st = cudl_model_forward(s->model, s->x, s->labels, loss)) != CUDL_OK) return st;
  if ((st = cudl_model_backward(s->model)) != CUDL_OK) return st;
  return cudl_optimizer_step(s->optimizer, cudl_model_params(s->model),
                             cudl_model_grads(s->model), 0.1f);
}

std::vector<float> Params(Step *s) {
  const cudl_tensor *p = cudl_model_params(s->model);
  std::vector<float> host(static_cast<size_t>(cudl_tensor_numel(p)));
  EXPECT_EQ(cudl_tensor_copy_to_host(p, host.data(), host.size() * sizeof(float)), CUDL_OK);
  return host;
}

uint64_t BytesInUse(cudl_context *ctx) {
  cudl_memory_stats stats;
  EXPECT_EQ(cudl_context_memory_stats(ctx, &stats), CUDL_OK);
  return stats.bytes_in_use;
}

void EveryAllocationFails(cudl_device_kind device, Model which) {
  SCOPED_TRACE(Name(which));
  // The run without failures: its loss, updated weights, allocation count,
  // and the memory still in use once its objects are gone (workspaces).
  float want_loss = NAN;
  std::vector<float> want_params;
  uint64_t allocations = 0, baseline = 0;
  {
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(device, 0, &ctx), CUDL_OK);
    ASSERT_EQ(cudl_context_set_deterministic(ctx, 1), CUDL_OK);
    ASSERT_EQ(cudl_context_fail_allocation(ctx, 0), CUDL_OK);
    Step s;
    ASSERT_EQ(RunStep(ctx, which, &s, &want_loss), CUDL_OK) << cudl_context_last_error(ctx);
    ASSERT_EQ(cudl_context_allocation_count(ctx, &allocations, nullptr), CUDL_OK);
    want_params = Params(&s);
    s.Destroy();
    baseline = BytesInUse(ctx);
    cudl_context_destroy(ctx);
  }
  ASSERT_GT(allocations, 20u);
  // On the CPU every result is bitwise the same; on a GPU a failed
  // algorithm search may pick another convolution algorithm.
  const double tolerance = device == CUDL_DEVICE_CPU ? 0.0 : 1e-4;
  size_t out_of_memory = 0, absorbed = 0;
  for (uint64_t k = 1; k <= allocations; ++k) {
    SCOPED_TRACE("allocation " + std::to_string(k) + " of " + std::to_string(allocations));
    cudl_test::CountingAllocator host;
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(device, 0, &ctx), CUDL_OK);
    // Heuristic convolution algorithms: the same choice as the clean run.
    ASSERT_EQ(cudl_context_set_deterministic(ctx, 1), CUDL_OK);
    const cudl_allocator hooks = host.hooks();
    ASSERT_EQ(cudl_context_set_allocator(ctx, &hooks), CUDL_OK);
    ASSERT_EQ(cudl_context_fail_allocation(ctx, static_cast<int64_t>(k)), CUDL_OK);
    Step s;
    float loss = NAN;
    const cudl_status failed_run = RunStep(ctx, which, &s, &loss);
    uint64_t counted = 0, failures = 0;
    ASSERT_EQ(cudl_context_allocation_count(ctx, &counted, &failures), CUDL_OK);
    ASSERT_EQ(failures, 1u) << "the allocations are not the same from run to run";
    if (failed_run == CUDL_OK) {
      ++absorbed;  // a fallback took over; the result must still be right
      EXPECT_NEAR(loss, want_loss, tolerance * std::fabs(want_loss));
    } else {
      ++out_of_memory;
      ASSERT_EQ(failed_run, CUDL_ERR_OUT_OF_MEMORY)
          << cudl_status_name(failed_run) << ": " << cudl_context_last_error(ctx);
      EXPECT_GT(std::strlen(cudl_context_last_error(ctx)), 10u);
      // What the failed run made is usable: the step completes, with the
      // same loss and update as a run without failures.
      ASSERT_EQ(cudl_context_fail_allocation(ctx, -1), CUDL_OK);
      ASSERT_EQ(RunStep(ctx, which, &s, &loss), CUDL_OK) << cudl_context_last_error(ctx);
      EXPECT_NEAR(loss, want_loss, tolerance * std::fabs(want_loss));
      const std::vector<float> params = Params(&s);
      ASSERT_EQ(params.size(), want_params.size());
      for (size_t i = 0; i < params.size(); ++i)
        ASSERT_NEAR(params[i], want_params[i], tolerance * (std::fabs(want_params[i]) + 1)) << i;
    }
    s.Destroy();
    // Nothing leaked: the device memory is back to what a clean run keeps
    // (its workspaces), and every host block went back to the hooks. On a
    // GPU a failed workspace may have made a convolution fall back to an
    // algorithm with a smaller one.
    if (device == CUDL_DEVICE_CPU)
      EXPECT_EQ(BytesInUse(ctx), baseline);
    else
      EXPECT_LE(BytesInUse(ctx), baseline);
    ASSERT_EQ(cudl_context_fail_allocation(ctx, -1), CUDL_OK);
    cudl_context_destroy(ctx);
    EXPECT_TRUE(host.live.empty()) << host.live.size() << " host blocks leaked";
    EXPECT_EQ(host.size_mismatches + host.unknown_frees, 0u);
    if (::testing::Test::HasFailure()) return;  // one broken k says enough
  }
  std::printf("[ faults ] %s on %s: %llu allocations, each failed in turn: %zu out of memory, "
              "%zu absorbed by a fallback, no leak\n",
              Name(which), device == CUDL_DEVICE_CPU ? "cpu" : "cuda",
              static_cast<unsigned long long>(allocations), out_of_memory, absorbed);
}

TEST(FaultInjection, EveryAllocationOfATrainingStepFailsCleanlyOnCpu) {
  EveryAllocationFails(CUDL_DEVICE_CPU, Model::kResNet8);
  EveryAllocationFails(CUDL_DEVICE_CPU, Model::kSmallCnnWithDropout);
}

TEST(FaultInjection, EveryAllocationOfATrainingStepFailsCleanlyOnCuda) {
  const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
  if (!a.available) GTEST_SKIP() << "no CUDA device: " << a.reason;
  EveryAllocationFails(CUDL_DEVICE_CUDA, Model::kResNet8);
  EveryAllocationFails(CUDL_DEVICE_CUDA, Model::kSmallCnnWithDropout);
}

// The CPU loss sums large inputs in parallel blocks whose partial sums
// take workspace: a failure to get it is reported and writes nothing.
TEST(FaultInjection, LossWorkspaceFailureWritesNothing) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  const int64_t n = (int64_t{1} << 17) + 3, one = 1;
  cudl_tensor *a = nullptr, *b = nullptr, *loss = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &n, &a), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &n, &b), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &one, &loss), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(a, 3.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(b, 1.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(loss, 7.0f), CUDL_OK);
  ASSERT_EQ(cudl_context_fail_allocation(ctx, 1), CUDL_OK);
  EXPECT_EQ(cudl_mse_loss_forward(ctx, a, b, CUDL_REDUCTION_MEAN, loss), CUDL_ERR_OUT_OF_MEMORY);
  uint64_t failed = 0;
  ASSERT_EQ(cudl_context_allocation_count(ctx, nullptr, &failed), CUDL_OK);
  EXPECT_EQ(failed, 1u);
  float value = 0.0f;
  ASSERT_EQ(cudl_tensor_copy_to_host(loss, &value, sizeof value), CUDL_OK);
  EXPECT_EQ(value, 7.0f) << "the loss was written";
  ASSERT_EQ(cudl_context_fail_allocation(ctx, -1), CUDL_OK);
  ASSERT_EQ(cudl_mse_loss_forward(ctx, a, b, CUDL_REDUCTION_MEAN, loss), CUDL_OK);
  ASSERT_EQ(cudl_tensor_copy_to_host(loss, &value, sizeof value), CUDL_OK);
  EXPECT_EQ(value, 4.0f);
  cudl_tensor_destroy(a);
  cudl_tensor_destroy(b);
  cudl_tensor_destroy(loss);
  cudl_context_destroy(ctx);
}

// The CPU's 16-bit pooling (a batch of 16 or more, widened a sample at a
// time) and bf16 batch norm on channels-last rows take workspace: a failure
// to get it is reported and writes nothing; the next call works.
TEST(FaultInjection, SixteenBitWorkspaceFailureWritesNothing) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  const int64_t in[4] = {17, 3, 8, 8}, out[4] = {17, 3, 4, 4}, rows[2] = {64, 5}, c = 5;
  cudl_tensor *x = nullptr, *y = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_BF16, 4, in, &x), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_BF16, 4, out, &y), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(x, 1.5f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(y, 9.0f), CUDL_OK);
  cudl_pool2d_desc d = {};
  d.kernel_h = d.kernel_w = d.stride_h = d.stride_w = 2;
  auto all_of = [](const cudl_tensor *t, float v) {
    for (float e : cudl_test::ReadF32(t))
      if (e != v) return false;
    return true;
  };
  // bf16 bits: 9 is 0x4110, 1.5 is 0x3fc0.
  auto all_bits = [](const cudl_tensor *t, uint16_t v) {
    for (uint16_t e : cudl_test::ReadBits16(t))
      if (e != v) return false;
    return true;
  };

  ASSERT_EQ(cudl_context_fail_allocation(ctx, 1), CUDL_OK);
  EXPECT_EQ(cudl_max_pool2d_forward(ctx, &d, x, y), CUDL_ERR_OUT_OF_MEMORY);
  EXPECT_TRUE(all_bits(y, 0x4110)) << "the pooling wrote its output";
  ASSERT_EQ(cudl_context_fail_allocation(ctx, -1), CUDL_OK);
  ASSERT_EQ(cudl_max_pool2d_forward(ctx, &d, x, y), CUDL_OK);
  EXPECT_TRUE(all_bits(y, 0x3fc0));

  cudl_context *fresh = nullptr;  // a workspace not yet grown
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &fresh), CUDL_OK);
  cudl_tensor *rf = nullptr, *sf[4] = {};
  ASSERT_EQ(cudl_tensor_create(fresh, CUDL_DTYPE_BF16, 2, rows, &rf), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(rf, 2.0f), CUDL_OK);
  for (cudl_tensor *&t : sf) {
    ASSERT_EQ(cudl_tensor_create(fresh, CUDL_DTYPE_F32, 1, &c, &t), CUDL_OK);
    ASSERT_EQ(cudl_tensor_fill(t, 7.0f), CUDL_OK);
  }
  ASSERT_EQ(cudl_context_fail_allocation(fresh, 1), CUDL_OK);
  EXPECT_EQ(cudl_batchnorm_statistics(fresh, rf, 0.1f, 1e-5f, sf[0], sf[1], sf[2], sf[3]),
            CUDL_ERR_OUT_OF_MEMORY);
  for (cudl_tensor *t : sf) EXPECT_TRUE(all_of(t, 7.0f)) << "a statistic was written";
  ASSERT_EQ(cudl_context_fail_allocation(fresh, -1), CUDL_OK);
  ASSERT_EQ(cudl_batchnorm_statistics(fresh, rf, 0.1f, 1e-5f, sf[0], sf[1], sf[2], sf[3]),
            CUDL_OK);
  EXPECT_TRUE(all_of(sf[2], 2.0f)) << "the mean of a constant";
  for (cudl_tensor *t : sf) cudl_tensor_destroy(t);
  cudl_tensor_destroy(rf);
  cudl_context_destroy(fresh);
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(y);
  cudl_context_destroy(ctx);
}

// The 16-bit entries that widen to f32 copies (cpu_lowp.c) report a failed
// copy and write nothing: dropout after an activation in bf16 (neither y
// nor the mask, and the random offset stays), and the fused convolution in
// f16 on channels-last tensors; the next call works.
TEST(FaultInjection, SixteenBitWideningFailureWritesNothing) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  auto all_bits = [](const cudl_tensor *t, uint16_t v) {
    for (uint16_t e : cudl_test::ReadBits16(t))
      if (e != v) return false;
    return true;
  };
  const int64_t n = 1000;
  cudl_tensor *x = nullptr, *mask = nullptr, *y = nullptr;
  for (cudl_tensor **t : {&x, &mask, &y}) {
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_BF16, 1, &n, t), CUDL_OK);
    ASSERT_EQ(cudl_tensor_fill(*t, 9.0f), CUDL_OK);  // bf16 0x4110
  }
  ASSERT_EQ(cudl_context_set_rng_state(ctx, 5, 40), CUDL_OK);
  ASSERT_EQ(cudl_context_fail_allocation(ctx, 1), CUDL_OK);
  EXPECT_EQ(cudl_activation_dropout_forward(ctx, CUDL_ACT_RELU, 0.0f, x, 0.5f, mask, y),
            CUDL_ERR_OUT_OF_MEMORY);
  EXPECT_TRUE(all_bits(y, 0x4110)) << "y was written";
  EXPECT_TRUE(all_bits(mask, 0x4110)) << "the mask was written";
  uint64_t seed = 0, offset = 0;
  ASSERT_EQ(cudl_context_rng_state(ctx, &seed, &offset), CUDL_OK);
  EXPECT_EQ(offset, 40u) << "the random offset moved";
  ASSERT_EQ(cudl_context_fail_allocation(ctx, -1), CUDL_OK);
  ASSERT_EQ(cudl_activation_dropout_forward(ctx, CUDL_ACT_RELU, 0.0f, x, 0.5f, mask, y), CUDL_OK);
  EXPECT_FALSE(all_bits(mask, 0x4110)) << "the mask was not drawn";

  const int64_t xs[4] = {2, 3, 5, 5}, ws[4] = {4, 3, 3, 3}, ys[4] = {2, 4, 5, 5}, k = 4;
  const cudl_conv2d_desc same = {1, 1, 1, 1, 1, 1, 1};
  cudl_tensor *cx = nullptr, *cw = nullptr, *cb = nullptr, *res = nullptr, *cy = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F16, 4, xs, &cx), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F16, 4, ws, &cw), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F16, 1, &k, &cb), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F16, 4, ys, &res), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F16, 4, ys, &cy), CUDL_OK);
  for (cudl_tensor *t : {cx, cw, res, cy})
    ASSERT_EQ(cudl_tensor_set_layout(t, CUDL_LAYOUT_NHWC), CUDL_OK);
  for (cudl_tensor *t : {cx, cw, cb, res}) ASSERT_EQ(cudl_tensor_fill(t, 0.5f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(cy, 9.0f), CUDL_OK);  // f16 0x4880
  ASSERT_EQ(cudl_context_fail_allocation(ctx, 1), CUDL_OK);
  EXPECT_EQ(cudl_conv2d_forward_fused(ctx, &same, cx, cw, cb, res, 1, 0.0f, cy),
            CUDL_ERR_OUT_OF_MEMORY);
  EXPECT_TRUE(all_bits(cy, 0x4880)) << "the fused convolution wrote y";
  ASSERT_EQ(cudl_context_fail_allocation(ctx, -1), CUDL_OK);
  ASSERT_EQ(cudl_conv2d_forward_fused(ctx, &same, cx, cw, cb, res, 1, 0.0f, cy), CUDL_OK);
  // A centre pixel (memory order n, h, w, k) sees all 27 products 0.25:
  // 6.75 + the bias 0.5 + the residual 0.5 = 7.75, f16 0x47c0.
  EXPECT_EQ(cudl_test::ReadBits16(cy)[(2 * 5 + 2) * 4], 0x47c0);
  for (cudl_tensor *t : {x, mask, y, cx, cw, cb, res, cy}) cudl_tensor_destroy(t);
  cudl_context_destroy(ctx);
}

TEST(FaultInjection, CountingAndItsMisuse) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  uint64_t counted = 7, failed = 7;
  ASSERT_EQ(cudl_context_allocation_count(ctx, &counted, &failed), CUDL_OK);
  EXPECT_EQ(counted, 0u) << "counting is off by default";
  EXPECT_EQ(failed, 0u);
  // The second allocation fails, and only that one.
  ASSERT_EQ(cudl_context_fail_allocation(ctx, 2), CUDL_OK);
  const int64_t shape[1] = {16};
  cudl_tensor *a = nullptr, *b = nullptr;
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &a), CUDL_ERR_OUT_OF_MEMORY)
      << "object, then storage object: the second";
  EXPECT_EQ(a, nullptr);
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &a), CUDL_OK);
  ASSERT_EQ(cudl_context_allocation_count(ctx, &counted, &failed), CUDL_OK);
  EXPECT_EQ(failed, 1u);
  EXPECT_EQ(counted, 2u + 3u) << "object, storage object, CPU storage";
  // The hooks cannot change under objects the wrapper made.
  cudl_test::CountingAllocator other;
  const cudl_allocator hooks = other.hooks();
  EXPECT_EQ(cudl_context_set_allocator(ctx, &hooks), CUDL_ERR_INVALID_ARGUMENT);
  // Stopped: nothing is counted, and objects made while counting are freed.
  ASSERT_EQ(cudl_context_fail_allocation(ctx, -1), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &b), CUDL_OK);
  ASSERT_EQ(cudl_context_allocation_count(ctx, &counted, &failed), CUDL_OK);
  EXPECT_EQ(counted, 0u);
  cudl_tensor_destroy(a);
  cudl_tensor_destroy(b);
  EXPECT_EQ(cudl_context_fail_allocation(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_allocation_count(nullptr, &counted, &failed), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_allocation_count(ctx, nullptr, nullptr), CUDL_OK);
  cudl_context_destroy(ctx);
}

}  // namespace
