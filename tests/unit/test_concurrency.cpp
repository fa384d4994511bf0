// The threading contract (cudl/context.h, docs/architecture.md): different
// contexts may be used from different threads at the same time with no
// locking by the caller, and the process-wide log callback may be replaced
// while they log. Two contexts train in two threads at once and must end
// with exactly the weights and losses each reaches alone.
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

struct Run {
  std::vector<float> losses, params;
  std::string error;  // empty when the run completed
};

enum class Model { kResNet8, kSmallCnn };

// A few SGD steps on a small dataset of its own, through the augmenting
// loader, with dropout in the small CNN: every source of randomness the
// engine has, all seeded from the context.
Run Train(cudl_device_kind device, Model which, uint64_t seed, int steps) {
  Run run;
  cudl_context *ctx = nullptr;
  cudl_dataset *ds = nullptr;
  cudl_loader *loader = nullptr;
  cudl_model *model = nullptr;
  cudl_optimizer *opt = nullptr;
  cudl_tensor *x = nullptr, *labels = nullptr;
  const int64_t count = 24, batch = 8, size = 12, classes = 4;
  auto fail = [&](const char *what) {
    run.error = std::string(what) + ": " + (ctx ? cudl_context_last_error(ctx) : "no context");
  };
  std::vector<uint8_t> pixels(static_cast<size_t>(count * size * size)), ys(count);
  for (size_t i = 0; i < pixels.size(); ++i)
    pixels[i] = static_cast<uint8_t>((i * 31 + seed * 7) % 256);
  for (size_t i = 0; i < ys.size(); ++i) ys[i] = static_cast<uint8_t>((i + seed) % classes);
  cudl_loader_config config = cudl_loader_config_default();
  config.batch = batch;
  config.seed = seed;
  config.augment = 1;
  config.crop_padding = 2;
  config.horizontal_flip = 1;
  cudl_optimizer_config sgd;
  const int64_t xs[4] = {batch, 1, size, size}, ls[1] = {batch};
  if (cudl_context_create(device, 0, &ctx) != CUDL_OK) {
    fail("context");
    return run;
  }
  // Heuristic (not timed) convolution algorithms: the same on every run.
  if (cudl_context_set_deterministic(ctx, 1) != CUDL_OK || cudl_context_set_seed(ctx, seed) != CUDL_OK)
    fail("settings");
  else if (cudl_dataset_create(ctx, count, 1, size, size, classes, pixels.data(), ys.data(), &ds) !=
           CUDL_OK)
    fail("dataset");
  else if (cudl_loader_create(ctx, ds, &config, &loader) != CUDL_OK)
    fail("loader");
  else if ((which == Model::kResNet8 ? cudl_zoo_resnet(ctx, 8, 0, 1, size, size, classes, &model)
                                     : cudl_zoo_small_cnn(ctx, 1, size, size, classes, 0.25f, &model)) !=
               CUDL_OK ||
           cudl_model_compile(model, batch) != CUDL_OK ||
           cudl_model_init(model, CUDL_INIT_KAIMING_NORMAL) != CUDL_OK)
    fail("model");
  else if (cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &sgd) != CUDL_OK ||
           (sgd.momentum = 0.9f, cudl_optimizer_create(ctx, &sgd,
                                                       cudl_tensor_numel(cudl_model_params(model)),
                                                       &opt)) != CUDL_OK)
    fail("optimizer");
  else if (cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &x) != CUDL_OK ||
           cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, ls, &labels) != CUDL_OK)
    fail("tensors");
  for (int step = 0; run.error.empty() && step < steps; ++step) {
    float loss = 0.0f;
    if (cudl_loader_next(loader, x, labels, nullptr, nullptr) != CUDL_OK ||
        cudl_model_forward(model, x, labels, &loss) != CUDL_OK ||
        cudl_model_backward(model) != CUDL_OK ||
        cudl_optimizer_step(opt, cudl_model_params(model), cudl_model_grads(model), 0.05f) !=
            CUDL_OK)
      fail("step");
    run.losses.push_back(loss);
  }
  if (run.error.empty()) {
    const cudl_tensor *p = cudl_model_params(model);
    run.params.resize(static_cast<size_t>(cudl_tensor_numel(p)));
    if (cudl_tensor_copy_to_host(p, run.params.data(), run.params.size() * sizeof(float)) != CUDL_OK)
      fail("params");
  }
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_optimizer_destroy(opt);
  cudl_model_destroy(model);
  cudl_loader_destroy(loader);
  cudl_dataset_destroy(ds);
  cudl_context_destroy(ctx);
  return run;
}

void TwoContextsAtOnceMatchEachAlone(cudl_device_kind device) {
  const int steps = 6;
  // Alone, one after the other.
  const Run resnet_alone = Train(device, Model::kResNet8, 11, steps);
  const Run cnn_alone = Train(device, Model::kSmallCnn, 12, steps);
  ASSERT_EQ(resnet_alone.error, "");
  ASSERT_EQ(cnn_alone.error, "");
  // Together, several times: a race shows up as a difference in some round.
  for (int round = 0; round < 3; ++round) {
    SCOPED_TRACE("round " + std::to_string(round));
    Run resnet, cnn, resnet_again;
    std::thread a([&] { resnet = Train(device, Model::kResNet8, 11, steps); });
    std::thread b([&] { cnn = Train(device, Model::kSmallCnn, 12, steps); });
    // A third thread trains the same model as the first: two contexts with
    // the same seed must not share anything either.
    std::thread c([&] { resnet_again = Train(device, Model::kResNet8, 11, steps); });
    a.join();
    b.join();
    c.join();
    ASSERT_EQ(resnet.error, "");
    ASSERT_EQ(cnn.error, "");
    ASSERT_EQ(resnet_again.error, "");
    EXPECT_TRUE(cudl_test::BitEqual(resnet.losses, resnet_alone.losses));
    EXPECT_TRUE(cudl_test::BitEqual(resnet.params, resnet_alone.params));
    EXPECT_TRUE(cudl_test::BitEqual(resnet_again.params, resnet_alone.params));
    EXPECT_TRUE(cudl_test::BitEqual(cnn.losses, cnn_alone.losses));
    EXPECT_TRUE(cudl_test::BitEqual(cnn.params, cnn_alone.params));
  }
  // The two models did learn something different from their starts.
  EXPECT_NE(resnet_alone.losses.front(), resnet_alone.losses.back());
  EXPECT_NE(cnn_alone.losses.front(), cnn_alone.losses.back());
}

TEST(Concurrency, TwoCpuContextsTrainingAtOnceMatchEachAlone) {
  TwoContextsAtOnceMatchEachAlone(CUDL_DEVICE_CPU);
}

TEST(Concurrency, TwoCudaContextsTrainingAtOnceMatchEachAlone) {
  const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
  if (!a.available) GTEST_SKIP() << "no CUDA device: " << a.reason;
  TwoContextsAtOnceMatchEachAlone(CUDL_DEVICE_CUDA);
}

// A log sink that checks each message arrives whole and once.
struct Sink {
  std::mutex mutex;
  std::vector<std::string> messages;
  static void Deliver(cudl_log_level, const char *message, void *user_data) {
    Sink *self = static_cast<Sink *>(user_data);
    std::lock_guard<std::mutex> lock(self->mutex);
    self->messages.emplace_back(message);
  }
};

// Threads log (every failed call logs at DEBUG) while the main thread
// switches the callback between two sinks: each message reaches exactly one
// of them, whole. The interleaving is forced, not left to the scheduler:
// after each switch the main thread waits until every thread has made a
// whole call since, and the threads keep calling until the main thread has
// switched kSwitches times. So every switch happens while all threads are
// logging, and both sinks receive messages from every thread, however the
// threads are scheduled (ctest -j on a busy machine included).
TEST(Concurrency, LogCallbackReplacedWhileThreadsLog) {
  Sink first, second;
  const int kThreads = 4, kSwitches = 40;
  std::atomic<bool> stop{false};
  std::atomic<long> calls[kThreads];
  std::vector<int> failures(kThreads, 0);
  for (auto &c : calls) c.store(0);
  cudl_set_log_callback(&Sink::Deliver, &first);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([t, &stop, &calls, &failures] {
      cudl_context *ctx = nullptr;
      if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK) {
        ++failures[static_cast<size_t>(t)];
        return;
      }
      // A shape of -(t + 1): each thread's message names its own value.
      const int64_t shape[1] = {-(t + 1)};
      while (!stop.load()) {
        cudl_tensor *tensor = nullptr;
        if (cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &tensor) ==
            CUDL_OK) {
          ++failures[static_cast<size_t>(t)];
          cudl_tensor_destroy(tensor);
        }
        calls[t].fetch_add(1);
      }
      cudl_context_destroy(ctx);
    });
  }
  bool all_logged_between_switches = true;
  for (int s = 0; s < kSwitches && all_logged_between_switches; ++s) {
    long before[kThreads];
    for (int t = 0; t < kThreads; ++t) before[t] = calls[t].load();
    cudl_set_log_callback(&Sink::Deliver, s % 2 == 0 ? &second : &first);
    // A call in flight at the switch may go to either sink; the second one
    // counted after it started after the switch. (A failed thread never
    // counts: the bound keeps the test from waiting forever then.)
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::seconds(60);
    for (int t = 0; t < kThreads; ++t)
      while (calls[t].load() < before[t] + 2) {
        if (std::chrono::steady_clock::now() > deadline) {
          all_logged_between_switches = false;
          break;
        }
        std::this_thread::yield();
      }
  }
  stop.store(true);
  for (auto &th : threads) th.join();
  cudl_set_log_callback(nullptr, nullptr);
  ASSERT_TRUE(all_logged_between_switches) << "a thread stopped calling";
  for (int t = 0; t < kThreads; ++t)
    EXPECT_EQ(failures[static_cast<size_t>(t)], 0) << t;
  // Every failed call logged one message; each went to one sink.
  std::vector<long> per_thread(kThreads, 0);
  long total = 0, expected = 0;
  for (Sink *sink : {&first, &second}) {
    std::vector<long> in_sink(kThreads, 0);
    for (const std::string &m : sink->messages) {
      ++total;
      ASSERT_NE(m.find("cudl_tensor_create"), std::string::npos) << m;
      int owner = -1;
      for (int t = 0; t < kThreads; ++t)
        if (m.find(std::to_string(-(t + 1))) != std::string::npos) owner = t;
      ASSERT_GE(owner, 0) << "a torn message: " << m;
      ++per_thread[static_cast<size_t>(owner)];
      ++in_sink[static_cast<size_t>(owner)];
    }
    for (int t = 0; t < kThreads; ++t)
      EXPECT_GT(in_sink[static_cast<size_t>(t)], 0)
          << "thread " << t << " logged nothing to one sink";
  }
  for (int t = 0; t < kThreads; ++t) {
    expected += calls[t].load();
    EXPECT_EQ(per_thread[static_cast<size_t>(t)], calls[t].load()) << t;
  }
  EXPECT_EQ(total, expected);
}

}  // namespace
