// test_context.cpp - contexts: creation on each device kind, argument
// checking, logging (and silence without a callback), the random generator
// state, allocator hooks, last_error, the CUDA device queries, memory
// accounting and events.
//
// On a machine with a usable GPU the tests that expect "no device" switch
// to what must happen there instead (cudl_cuda_device_count decides).
#include <gtest/gtest.h>

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <oneapi/dnnl/dnnl.h>
#include <oneapi/dnnl/dnnl_debug.h>

#include "core/internal.h"
#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::HasSubstr;
using cudl_test::StartsWith;
using cudl_test::CudaAvailability;
using cudl_test::LogCapture;
using cudl_test::QueryCuda;

// A pointer that is not NULL and not a context: an output the library must
// overwrite with NULL on failure.
cudl_context *Sentinel() {
  static int dummy;
  return reinterpret_cast<cudl_context *>(&dummy);
}

// --------------------------------------------------------------------------
// CPU contexts
// --------------------------------------------------------------------------

TEST(Context, CpuCreateAndDestroy) {
  cudl_context *ctx = Sentinel();
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  ASSERT_NE(ctx, nullptr);
  ASSERT_NE(ctx, Sentinel());
  EXPECT_EQ(cudl_context_device(ctx), CUDL_DEVICE_CPU);
  EXPECT_EQ(cudl_context_device_index(ctx), 0);
  ASSERT_NE(cudl_context_device_name(ctx), nullptr);
  EXPECT_STREQ(cudl_context_device_name(ctx), "cpu");
  EXPECT_EQ(cudl_context_synchronize(ctx), CUDL_OK);
  cudl_context_destroy(ctx);
}

TEST(Context, DestroyNullIsNoOp) {
  cudl_context_destroy(nullptr);  // must not crash
  SUCCEED();
}

TEST(Context, ManyContextsAreIndependent) {
  cudl_context *a = nullptr, *b = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &a), CUDL_OK);
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &b), CUDL_OK);
  EXPECT_NE(a, b);
  ASSERT_EQ(cudl_context_set_rng_state(a, 7, 9), CUDL_OK);
  uint64_t seed = 1, offset = 1;
  ASSERT_EQ(cudl_context_rng_state(b, &seed, &offset), CUDL_OK);
  EXPECT_EQ(seed, 0u) << "setting a's seed changed b's";
  EXPECT_EQ(offset, 0u);
  // An error on a is not visible on b.
  cudl_tensor *t = nullptr;
  const int64_t bad[] = {-1};
  EXPECT_EQ(cudl_tensor_create(a, CUDL_DTYPE_F32, 1, bad, &t), CUDL_ERR_SHAPE);
  EXPECT_STRNE(cudl_context_last_error(a), "");
  EXPECT_STREQ(cudl_context_last_error(b), "");
  cudl_context_destroy(a);
  cudl_context_destroy(b);
}

TEST(Context, BadArguments) {
  // NULL out.
  EXPECT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_create(CUDL_DEVICE_AUTO, 0, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_create(CUDL_DEVICE_CUDA, 0, nullptr), CUDL_ERR_INVALID_ARGUMENT);

  struct Case {
    cudl_device_kind kind;
    int index;
    const char *what;
  };
  const Case cases[] = {
      {CUDL_DEVICE_CPU, 1, "CPU with index 1"},
      {CUDL_DEVICE_CPU, -1, "CPU with index -1"},
      {CUDL_DEVICE_AUTO, 1, "AUTO with index 1"},
      {CUDL_DEVICE_AUTO, -1, "AUTO with index -1"},
      {CUDL_DEVICE_CUDA, -1, "CUDA with index -1"},
      // 3 is inside the enum's value range (0..3) but names no kind.
      {static_cast<cudl_device_kind>(3), 0, "kind 3"},
  };
  for (const Case &c : cases) {
    cudl_context *ctx = Sentinel();
    EXPECT_EQ(cudl_context_create(c.kind, c.index, &ctx), CUDL_ERR_INVALID_ARGUMENT) << c.what;
    EXPECT_EQ(ctx, nullptr) << c.what << ": *out must be NULL on failure";
    if (ctx != nullptr && ctx != Sentinel()) cudl_context_destroy(ctx);
  }
}

TEST(Context, NullContextQueries) {
  EXPECT_EQ(cudl_context_device(nullptr), CUDL_DEVICE_CPU);
  EXPECT_EQ(cudl_context_device_index(nullptr), 0);
  EXPECT_NE(cudl_context_device_name(nullptr), nullptr);
  const char *text = cudl_context_last_error(nullptr);
  ASSERT_NE(text, nullptr);
  EXPECT_GT(std::strlen(text), 0u) << "a NULL context gets an explanatory static message";
  EXPECT_EQ(cudl_context_synchronize(nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_set_debug_sync(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_set_seed(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_set_rng_state(nullptr, 1, 2), CUDL_ERR_INVALID_ARGUMENT);
  uint64_t seed = 0, offset = 0;
  EXPECT_EQ(cudl_context_rng_state(nullptr, &seed, &offset), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_set_allocator(nullptr, nullptr), CUDL_ERR_INVALID_ARGUMENT);
}

// Fixture: a CPU context.
class CpuContext : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK); }
  void TearDown() override { cudl_context_destroy(ctx_); }
  cudl_context *ctx_ = nullptr;
};

TEST_F(CpuContext, LastErrorEmptyInitiallyThenDescribesTheFailure) {
  const char *text = cudl_context_last_error(ctx_);
  ASSERT_NE(text, nullptr);
  EXPECT_STREQ(text, "");
  cudl_tensor *t = nullptr;
  EXPECT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 6, nullptr, &t), CUDL_ERR_SHAPE);
  // "<function>: <message>": names the call and the bad value.
  EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_create"));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "6"));
}

TEST_F(CpuContext, SuccessfulCallsKeepTheLastError) {
  // Documented: valid until the next *failing* call.
  cudl_tensor *t = nullptr;
  const int64_t bad[] = {-2};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, bad, &t), CUDL_ERR_SHAPE);
  const std::string first = cudl_context_last_error(ctx_);
  ASSERT_FALSE(first.empty());
  const int64_t good[] = {3};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, good, &t), CUDL_OK);
  EXPECT_EQ(cudl_context_last_error(ctx_), first);
  cudl_tensor_destroy(t);
}

// The query the model layer asks before mixed precision
// (cudl__check_compute_dtype). On the CPU: f32 always; f16 never; bf16
// exactly where oneDNN reports an instruction set with bf16 arithmetic
// (AVX512-BF16, or AMX, which includes it), and otherwise refused naming
// the instruction set oneDNN reports. Each refusal leads with the caller.
TEST_F(CpuContext, ComputeDtypeQuery) {
  EXPECT_EQ(cudl__check_compute_dtype(ctx_, CUDL_DTYPE_F32, "caller"), CUDL_OK);
  EXPECT_STREQ(cudl_context_last_error(ctx_), "");

  EXPECT_EQ(cudl__check_compute_dtype(ctx_, CUDL_DTYPE_F16, "caller"), CUDL_ERR_UNSUPPORTED);
  EXPECT_STREQ(cudl_context_last_error(ctx_),
               "caller: cpu: fp16 mixed precision runs on GPUs; use bf16 on the CPU "
               "(cudl_context_set_allow_emulated_precision runs it emulated, for reference)");

  const std::string isa = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
  const bool native = isa == "cpu_isa_avx512_core_bf16" || isa == "cpu_isa_avx512_core_amx";
  const cudl_status bf16 = cudl__check_compute_dtype(ctx_, CUDL_DTYPE_BF16, "caller");
  std::printf("oneDNN reports %s: bf16 %s\n", isa.c_str(), native ? "native" : "refused");
  if (native) {
    EXPECT_EQ(bf16, CUDL_OK) << cudl_context_last_error(ctx_);
  } else {
    EXPECT_EQ(bf16, CUDL_ERR_UNSUPPORTED);
    const std::string message = cudl_context_last_error(ctx_);
    EXPECT_TRUE(StartsWith(message, "caller: cpu: bf16 mixed precision needs")) << message;
    EXPECT_TRUE(HasSubstr(message, " " + isa.substr(strlen("cpu_isa_")) + ",")) << message;
  }

  EXPECT_EQ(cudl__check_compute_dtype(ctx_, CUDL_DTYPE_I32, "caller"), CUDL_ERR_DTYPE);
  EXPECT_STREQ(cudl_context_last_error(ctx_),
               "caller: i32 is not a compute dtype (f32, bf16 or f16)");
}

TEST_F(CpuContext, SynchronizeAndDebugSync) {
  EXPECT_EQ(cudl_context_synchronize(ctx_), CUDL_OK);
  EXPECT_EQ(cudl_context_set_debug_sync(ctx_, 1), CUDL_OK);
  // Debug sync has no effect on the CPU: ops still work.
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {5};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
  EXPECT_EQ(cudl_tensor_fill(t, 2.0f), CUDL_OK);
  EXPECT_EQ(cudl_context_synchronize(ctx_), CUDL_OK);
  EXPECT_EQ(cudl_context_set_debug_sync(ctx_, 0), CUDL_OK);
  cudl_tensor_destroy(t);
}

TEST_F(CpuContext, RngStateStartsAtZero) {
  uint64_t seed = 123, offset = 456;
  ASSERT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
  EXPECT_EQ(seed, 0u);
  EXPECT_EQ(offset, 0u);
}

TEST_F(CpuContext, RngStateSetGet) {
  const uint64_t values[][2] = {{1, 2}, {0xfedcba9876543210ull, 0x0123456789abcdefull},
                                {UINT64_MAX, UINT64_MAX}, {0, 0}};
  for (const auto &v : values) {
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, v[0], v[1]), CUDL_OK);
    uint64_t seed = 0xaa, offset = 0xbb;
    ASSERT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
    EXPECT_EQ(seed, v[0]);
    EXPECT_EQ(offset, v[1]);
  }
}

TEST_F(CpuContext, SetSeedResetsOffset) {
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 5, 1000), CUDL_OK);
  ASSERT_EQ(cudl_context_set_seed(ctx_, 0xabcdef0123456789ull), CUDL_OK);
  uint64_t seed = 0, offset = 77;
  ASSERT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
  EXPECT_EQ(seed, 0xabcdef0123456789ull);
  EXPECT_EQ(offset, 0u);
}

TEST_F(CpuContext, GetRngStateNullOutputs) {
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 3, 4), CUDL_OK);
  uint64_t seed = 99, offset = 98;
  EXPECT_EQ(cudl_context_rng_state(ctx_, nullptr, &offset), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(offset, 98u) << "outputs are written only on success";
  EXPECT_EQ(cudl_context_rng_state(ctx_, &seed, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(seed, 99u) << "outputs are written only on success";
}

TEST_F(CpuContext, SetAllocatorValidation) {
  cudl_test::CountingAllocator counting;
  cudl_allocator a = counting.hooks();

  a.alloc = nullptr;
  EXPECT_EQ(cudl_context_set_allocator(ctx_, &a), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "alloc"));
  EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_context_set_allocator"));

  // Overwrite the message with another failure, so the next check sees
  // what set_allocator itself records.
  cudl_tensor *dummy = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, -1, nullptr, &dummy), CUDL_ERR_SHAPE);
  ASSERT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_create"));

  a = counting.hooks();
  a.free = nullptr;
  EXPECT_EQ(cudl_context_set_allocator(ctx_, &a), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_context_set_allocator"));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "free"));

  // The rejected allocators were not installed: a tensor still comes from
  // the default allocator.
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {16};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
  cudl_tensor_destroy(t);
  EXPECT_EQ(counting.allocs, 0u);
  EXPECT_TRUE(counting.requests.empty());
}

TEST_F(CpuContext, SetAllocatorNullRestoresDefault) {
  cudl_test::CountingAllocator counting;
  const cudl_allocator a = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &a), CUDL_OK);
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {16};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
  const size_t with_hooks = counting.allocs;
  EXPECT_GE(with_hooks, 2u) << "the tensor object and its storage";
  cudl_tensor_destroy(t);

  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
  cudl_tensor_destroy(t);
  EXPECT_EQ(counting.allocs, with_hooks) << "NULL must restore the default allocator";
  EXPECT_EQ(counting.frees, counting.allocs);
  EXPECT_TRUE(counting.live.empty());
}

TEST_F(CpuContext, AllocatorIsCopied) {
  // "copied": changing the caller's struct afterwards has no effect.
  cudl_test::CountingAllocator counting;
  cudl_allocator a = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &a), CUDL_OK);
  a.alloc = nullptr;
  a.free = nullptr;
  a.user_data = nullptr;
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {4};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
  cudl_tensor_destroy(t);
  EXPECT_GE(counting.allocs, 1u);
  EXPECT_EQ(counting.frees, counting.allocs);
}

// --------------------------------------------------------------------------
// Logging
// --------------------------------------------------------------------------

TEST(Logging, CallbackReceivesAndCanBeRemoved) {
  // A failing call reports through the callback; after NULL is installed
  // nothing more arrives.
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  size_t seen = 0;
  {
    LogCapture log;
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, -1, nullptr, &t), CUDL_ERR_SHAPE);
    seen = log.records().size();
    EXPECT_GE(seen, 1u) << "a failure is logged (at least at debug level)";
    for (const auto &r : log.records()) {
      EXPECT_GE(static_cast<int>(r.level), static_cast<int>(CUDL_LOG_DEBUG));
      EXPECT_LE(static_cast<int>(r.level), static_cast<int>(CUDL_LOG_ERROR));
      EXPECT_FALSE(r.message.empty());
      EXPECT_EQ(r.message.find('\n'), std::string::npos) << "no trailing newline: " << r.message;
    }
  }
  // LogCapture's destructor installed NULL; a second capture object sees
  // only what happens in its own lifetime.
  LogCapture later;
  later.clear();
  cudl_set_log_callback(nullptr, nullptr);
  cudl_tensor *t = nullptr;
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, -1, nullptr, &t), CUDL_ERR_SHAPE);
  EXPECT_TRUE(later.records().empty()) << later.dump();
  cudl_context_destroy(ctx);
}

TEST(Logging, UserDataIsPassedThrough) {
  struct Box {
    int calls = 0;
    void *seen = nullptr;
  } box;
  cudl_set_log_callback(
      [](cudl_log_level, const char *, void *user_data) {
        Box *b = static_cast<Box *>(user_data);
        ++b->calls;
        b->seen = user_data;
      },
      &box);
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  cudl_tensor *t = nullptr;
  EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 9, nullptr, &t), CUDL_ERR_SHAPE);
  cudl_set_log_callback(nullptr, nullptr);
  cudl_context_destroy(ctx);
  EXPECT_GE(box.calls, 1);
  EXPECT_EQ(box.seen, static_cast<void *>(&box));
}

TEST(Logging, SilentByDefault) {
  // No callback: the library must not print anything, even while it fails
  // and falls back. Capture both streams around calls that log.
  cudl_set_log_callback(nullptr, nullptr);
  testing::internal::CaptureStderr();
  testing::internal::CaptureStdout();
  cudl_context *ctx = nullptr;
  // CUDA: fails without a GPU (logged at error) or succeeds with one.
  cudl_context *cuda = Sentinel();
  const cudl_status cuda_status = cudl_context_create(CUDL_DEVICE_CUDA, 0, &cuda);
  // An index far out of range fails on every machine.
  cudl_context *none = Sentinel();
  const cudl_status none_status = cudl_context_create(CUDL_DEVICE_CUDA, 4096, &none);
  // AUTO: falls back to the CPU (logged at warn) without a GPU.
  const cudl_status auto_status = cudl_context_create(CUDL_DEVICE_AUTO, 0, &ctx);
  // Argument errors (logged at debug).
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {INT64_MAX, 2};
  const cudl_status shape_status =
      ctx == nullptr ? CUDL_OK : cudl_tensor_create(ctx, CUDL_DTYPE_F32, 2, shape, &t);
  char reason[8];
  int count = 0;
  (void)cudl_cuda_device_count(&count, reason, sizeof reason);
  const std::string out = testing::internal::GetCapturedStdout();
  const std::string err = testing::internal::GetCapturedStderr();

  EXPECT_EQ(err, "") << "cudl wrote to stderr without a log callback";
  EXPECT_EQ(out, "") << "cudl wrote to stdout without a log callback";
  EXPECT_EQ(none_status, CUDL_ERR_NO_DEVICE);
  EXPECT_EQ(none, nullptr);
  EXPECT_EQ(auto_status, CUDL_OK);
  EXPECT_EQ(shape_status, CUDL_ERR_SHAPE);
  if (cuda_status == CUDL_OK) {
    cudl_context_destroy(cuda);
  } else {
    EXPECT_EQ(cuda, nullptr);
  }
  cudl_context_destroy(ctx);
}

// --------------------------------------------------------------------------
// CUDA and AUTO contexts: behaviour depends on the machine
// --------------------------------------------------------------------------

TEST(CudaDevices, DeviceCountReportsConsistently) {
  int count = -5;
  char reason[512];
  std::memset(reason, 'x', sizeof reason);
  const cudl_status s = cudl_cuda_device_count(&count, reason, sizeof reason);
  ASSERT_NE(std::memchr(reason, '\0', sizeof reason), nullptr) << "reason not terminated";
  if (s == CUDL_OK) {
    EXPECT_GE(count, 1);
  } else {
    EXPECT_EQ(s, CUDL_ERR_NO_DEVICE);
    EXPECT_EQ(count, 0) << "*count is 0 on failure";
    EXPECT_GT(std::strlen(reason), 0u) << "a failure comes with a reason";
    EXPECT_EQ(std::strchr(reason, '\n'), nullptr) << "one line: " << reason;
  }
  EXPECT_EQ(cudl_cuda_device_count(nullptr, reason, sizeof reason), CUDL_ERR_INVALID_ARGUMENT);
}

TEST(CudaDevices, ReasonMayBeNullOrTruncated) {
  int count = -1;
  struct {
    cudl_status status;
    int count = -1;
    std::string reason;
  } full;
  char reason[1024];
  full.status = cudl_cuda_device_count(&full.count, reason, sizeof reason);
  full.reason = reason;
  EXPECT_EQ(cudl_cuda_device_count(&count, nullptr, 0), full.status);
  EXPECT_EQ(count, full.count);
  // A 6-byte buffer: at most 5 characters and a terminator, and they are
  // the start of the full reason.
  char small[6];
  std::memset(small, 'x', sizeof small);
  EXPECT_EQ(cudl_cuda_device_count(&count, small, sizeof small), full.status);
  ASSERT_NE(std::memchr(small, '\0', sizeof small), nullptr);
  EXPECT_EQ(full.reason.compare(0, std::strlen(small), small), 0)
      << "'" << small << "' is not a prefix of '" << full.reason << "'";
  // Size 0: nothing may be written.
  char untouched[4] = {'a', 'b', 'c', 'd'};
  EXPECT_EQ(cudl_cuda_device_count(&count, untouched, 0), full.status);
  EXPECT_EQ(std::memcmp(untouched, "abcd", 4), 0) << "reason_size 0 but the buffer changed";
}

TEST(CudaDevices, CompiledFlagMatchesReason) {
  const CudaAvailability a = QueryCuda();
  const int compiled = cudl_cuda_compiled();
  ASSERT_TRUE(compiled == 0 || compiled == 1) << compiled;
  if (!compiled) {
    EXPECT_FALSE(a.available) << "a build without CUDA found a device";
    EXPECT_EQ(a.status, CUDL_ERR_NO_DEVICE);
    EXPECT_TRUE(HasSubstr(a.reason, "without CUDA"));
  } else if (!a.available) {
    // Compiled in: the reason is about the machine, not the build.
    EXPECT_FALSE(HasSubstr(a.reason, "without CUDA"));
  }
}

// The CUDA backend is a module loaded at run time: either it is loaded,
// from a file that exists, or the reason says why not; a build without it
// says so. Every later call gives the same answer.
TEST(CudaDevices, BackendLoadsOrSaysWhy) {
  char path[1024], reason[512];
  std::memset(path, 'x', sizeof path);
  std::memset(reason, 'x', sizeof reason);
  const cudl_status s = cudl_cuda_backend_load(path, sizeof path, reason, sizeof reason);
  if (!cudl_cuda_compiled()) {
    EXPECT_EQ(s, CUDL_ERR_UNSUPPORTED);
    EXPECT_STREQ(path, "");
    EXPECT_TRUE(HasSubstr(reason, "without CUDA")) << reason;
  } else if (s == CUDL_OK) {
    EXPECT_STREQ(reason, "");
    EXPECT_EQ(path[0], '/') << path;
    EXPECT_TRUE(HasSubstr(path, "libcudl_cuda.so.")) << path;
    EXPECT_EQ(access(path, R_OK), 0) << path;
  } else {
    EXPECT_EQ(s, CUDL_ERR_NO_DEVICE);
    EXPECT_STREQ(path, "");
    EXPECT_TRUE(HasSubstr(reason, "CUDA backend")) << reason;
    // And the device queries give the same reason.
    int count = -1;
    char again[512];
    EXPECT_EQ(cudl_cuda_device_count(&count, again, sizeof again), CUDL_ERR_NO_DEVICE);
    EXPECT_EQ(count, 0);
    EXPECT_STREQ(again, reason);
  }
  // Truncated, terminated, and NULL texts are fine.
  char small[8];
  const cudl_status again = cudl_cuda_backend_load(small, sizeof small, small, sizeof small);
  EXPECT_EQ(again, s);
  EXPECT_LT(std::strlen(small), sizeof small);
  EXPECT_EQ(cudl_cuda_backend_load(nullptr, 0, nullptr, 0), s);
}

TEST(CudaDevices, VersionsAndProperties) {
  const CudaAvailability a = QueryCuda();
  cudl_cuda_versions v;
  std::memset(&v, 0x7f, sizeof v);
  const cudl_status vs = cudl_cuda_versions_query(&v);
  EXPECT_EQ(cudl_cuda_versions_query(nullptr), CUDL_ERR_INVALID_ARGUMENT);
  if (!cudl_cuda_compiled() || cudl_cuda_backend_load(nullptr, 0, nullptr, 0) != CUDL_OK) {
    EXPECT_EQ(vs, CUDL_ERR_UNSUPPORTED) << "no CUDA backend, no CUDA library versions";
  } else {
    ASSERT_EQ(vs, CUDL_OK);
    EXPECT_GE(v.runtime, 11000) << "CUDA runtime version";
    EXPECT_GT(v.cudnn_compiled, 0);
    EXPECT_GT(v.cudnn_loaded, 0);
    EXPECT_GE(v.driver, 0);
    if (a.available) {
      EXPECT_GT(v.driver, 0) << "a GPU is usable, so a driver is loaded";
    }
  }

  cudl_cuda_device_properties p;
  EXPECT_EQ(cudl_cuda_device_properties_query(0, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_cuda_device_properties_query(-1, &p), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_cuda_device_properties_query(a.count, &p), CUDL_ERR_NO_DEVICE)
      << "index one past the last device";
  if (a.available) {
    ASSERT_EQ(cudl_cuda_device_properties_query(0, &p), CUDL_OK);
    EXPECT_GT(std::strlen(p.name), 0u);
    EXPECT_GE(p.compute_major, 7) << "CUDA 13 needs sm_75 or newer";
    EXPECT_GT(p.multiprocessor_count, 0);
    EXPECT_GT(p.total_memory, 0u);
  }
}

TEST(CudaContext, CreateWithoutDeviceFailsAndLogsTheReason) {
  const CudaAvailability a = QueryCuda();
  LogCapture log;
  cudl_context *ctx = Sentinel();
  const cudl_status s = cudl_context_create(CUDL_DEVICE_CUDA, 0, &ctx);
  if (a.available) {
    ASSERT_EQ(s, CUDL_OK) << log.dump();
    ASSERT_NE(ctx, nullptr);
    EXPECT_EQ(cudl_context_device(ctx), CUDL_DEVICE_CUDA);
    EXPECT_EQ(log.count(CUDL_LOG_ERROR), 0u) << log.dump();
    cudl_context_destroy(ctx);
    return;
  }
  // No device (CUDL_ERR_NO_DEVICE), or a card this build has no code for
  // (CUDL_ERR_UNSUPPORTED): the status and the reason of the device queries.
  EXPECT_EQ(s, a.status) << log.dump();
  EXPECT_EQ(ctx, nullptr) << "*out must be NULL on failure";
  EXPECT_TRUE(log.contains(CUDL_LOG_ERROR, a.reason))
      << "the error log must carry the device queries' reason '" << a.reason
      << "'; got:\n" << log.dump();
}

TEST(CudaContext, IndexOutOfRangeFailsAndLogs) {
  const CudaAvailability a = QueryCuda();
  LogCapture log;
  // One past the last device (0 when there is none), and far out.
  for (int index : {a.count, a.count + 1, 1000}) {
    log.clear();
    cudl_context *ctx = Sentinel();
    EXPECT_EQ(cudl_context_create(CUDL_DEVICE_CUDA, index, &ctx), CUDL_ERR_NO_DEVICE) << index;
    EXPECT_EQ(ctx, nullptr) << index;
    EXPECT_GE(log.count(CUDL_LOG_ERROR), 1u) << "index " << index << "\n" << log.dump();
    if (a.available) {
      EXPECT_TRUE(log.contains(CUDL_LOG_ERROR, std::to_string(index))) << log.dump();
    }
  }
}

TEST(CudaContext, AutoFallsBackToCpuWithWarning) {
  const CudaAvailability a = QueryCuda();
  LogCapture log;
  cudl_context *ctx = Sentinel();
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_AUTO, 0, &ctx), CUDL_OK) << log.dump();
  ASSERT_NE(ctx, nullptr);
  ASSERT_NE(ctx, Sentinel());
  if (a.available) {
    EXPECT_EQ(cudl_context_device(ctx), CUDL_DEVICE_CUDA);
    EXPECT_TRUE(StartsWith(cudl_context_device_name(ctx), "cuda:0"));
    EXPECT_EQ(log.count(CUDL_LOG_WARN), 0u) << log.dump();
  } else if (cudl_context_device(ctx) == CUDL_DEVICE_CUDA) {
    // cuda:0 is a card this build has no code for, and a later one is not.
    EXPECT_EQ(a.status, CUDL_ERR_UNSUPPORTED) << a.reason;
    EXPECT_FALSE(StartsWith(cudl_context_device_name(ctx), "cuda:0"));
    EXPECT_EQ(log.count(CUDL_LOG_ERROR), 0u) << log.dump();
  } else {
    EXPECT_EQ(cudl_context_device(ctx), CUDL_DEVICE_CPU) << "AUTO never reports itself";
    EXPECT_STREQ(cudl_context_device_name(ctx), "cpu");
    EXPECT_TRUE(log.contains(CUDL_LOG_WARN, a.reason))
        << "the warning must name the reason '" << a.reason << "'; got:\n" << log.dump();
    // Falling back is not an error.
    EXPECT_EQ(log.count(CUDL_LOG_ERROR), 0u) << log.dump();
    // The fallback context works.
    cudl_tensor *t = nullptr;
    const int64_t shape[] = {3};
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
    EXPECT_EQ(cudl_tensor_device(t), CUDL_DEVICE_CPU);
    cudl_tensor_destroy(t);
  }
  EXPECT_NE(cudl_context_device(ctx), CUDL_DEVICE_AUTO);
  cudl_context_destroy(ctx);
}

// --------------------------------------------------------------------------
// Threads: different contexts in different threads are independent.
// --------------------------------------------------------------------------

TEST(Threads, ContextsInParallelThreadsGiveTheSameStreams) {
  const int kThreads = 4;
  constexpr int64_t n = 4099;  // constexpr: usable in the lambda uncaptured
  std::vector<std::vector<float>> results(kThreads);
  std::vector<int> ok(kThreads, 0);
  std::vector<std::thread> threads;
  for (int i = 0; i < kThreads; ++i) {
    threads.emplace_back([i, &results, &ok] {
      cudl_context *ctx = nullptr;
      if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK) return;
      cudl_tensor *t = nullptr;
      const int64_t shape[] = {n};
      if (cudl_context_set_seed(ctx, 2024) == CUDL_OK &&
          cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &t) == CUDL_OK) {
        for (int rep = 0; rep < 50 && ok[i] == 0; ++rep) {
          if (cudl_context_set_seed(ctx, 2024) != CUDL_OK ||
              cudl_tensor_uniform(t, -1.0f, 1.0f) != CUDL_OK)
            ok[i] = -1;
        }
        results[i].resize(static_cast<size_t>(n));
        if (ok[i] == 0 &&
            cudl_tensor_copy_to_host(t, results[i].data(), results[i].size() * 4) == CUDL_OK)
          ok[i] = 1;
      }
      cudl_tensor_destroy(t);
      cudl_context_destroy(ctx);
    });
  }
  for (auto &th : threads) th.join();
  const std::vector<float> want = cudl_test::ReferenceUniform(n, 2024, 0, -1.0f, 1.0f);
  for (int i = 0; i < kThreads; ++i) {
    ASSERT_EQ(ok[i], 1) << "thread " << i;
    EXPECT_TRUE(cudl_test::BitEqual(results[i], want)) << "thread " << i;
  }
}

// --------------------------------------------------------------------------
// Memory accounting and events, on the CPU and (when present) on a GPU.
// --------------------------------------------------------------------------

// The devices a test runs on: the CPU always, cuda:0 when there is one.
std::vector<cudl_device_kind> DevicesHere() {
  std::vector<cudl_device_kind> kinds{CUDL_DEVICE_CPU};
  if (QueryCuda().available) kinds.push_back(CUDL_DEVICE_CUDA);
  return kinds;
}

TEST(MemoryStats, CountTensorStorageOnceAndKeepThePeak) {
  for (cudl_device_kind kind : DevicesHere()) {
    SCOPED_TRACE(kind == CUDL_DEVICE_CPU ? "cpu" : "cuda");
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(kind, 0, &ctx), CUDL_OK);
    cudl_memory_stats before{}, during{}, after{}, reset{};
    ASSERT_EQ(cudl_context_memory_stats(ctx, &before), CUDL_OK);
    const int64_t shape[] = {1 << 18};  // 1 MiB of f32
    const uint64_t bytes = uint64_t{1} << 20;
    cudl_tensor *t = nullptr, *view = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
    const int64_t view_shape[] = {512, 512};
    ASSERT_EQ(cudl_tensor_reshape(t, 2, view_shape, &view), CUDL_OK);
    ASSERT_EQ(cudl_context_memory_stats(ctx, &during), CUDL_OK);
    if (kind == CUDL_DEVICE_CPU) {
      // Exact on the CPU: the view shares the storage.
      EXPECT_EQ(during.bytes_in_use, before.bytes_in_use + bytes);
      EXPECT_EQ(during.bytes_reserved, during.bytes_in_use);
    } else {
      // The pool may round up to its granularity.
      EXPECT_GE(during.bytes_in_use, before.bytes_in_use + bytes);
      EXPECT_LT(during.bytes_in_use, before.bytes_in_use + 2 * bytes);
      EXPECT_GE(during.bytes_reserved, during.bytes_in_use);
    }
    EXPECT_GE(during.peak_bytes_in_use, during.bytes_in_use);
    cudl_tensor_destroy(view);
    cudl_tensor_destroy(t);
    ASSERT_EQ(cudl_context_synchronize(ctx), CUDL_OK);  // frees are queued
    ASSERT_EQ(cudl_context_memory_stats(ctx, &after), CUDL_OK);
    EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
    EXPECT_GE(after.peak_bytes_in_use, during.bytes_in_use)
        << "the peak must remember the freed tensor";
    ASSERT_EQ(cudl_context_reset_peak_memory(ctx), CUDL_OK);
    ASSERT_EQ(cudl_context_memory_stats(ctx, &reset), CUDL_OK);
    EXPECT_EQ(reset.peak_bytes_in_use, reset.bytes_in_use);
    cudl_context_destroy(ctx);
  }
}

TEST(MemoryStats, NullArguments) {
  cudl_memory_stats stats{};
  cudl_context *ctx = nullptr;
  EXPECT_EQ(cudl_context_memory_stats(nullptr, &stats), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_reset_peak_memory(nullptr), CUDL_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  EXPECT_EQ(cudl_context_memory_stats(ctx, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  cudl_context_destroy(ctx);
}

TEST(Event, MeasuresTheTimeBetweenTwoRecords) {
  for (cudl_device_kind kind : DevicesHere()) {
    SCOPED_TRACE(kind == CUDL_DEVICE_CPU ? "cpu" : "cuda");
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(kind, 0, &ctx), CUDL_OK);
    cudl_event *start = nullptr, *end = nullptr;
    ASSERT_EQ(cudl_event_create(ctx, &start), CUDL_OK);
    ASSERT_EQ(cudl_event_create(ctx, &end), CUDL_OK);
    const int64_t shape[] = {1 << 20};
    cudl_tensor *t = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
    ASSERT_EQ(cudl_event_record(start), CUDL_OK);
    ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
    ASSERT_EQ(cudl_event_record(end), CUDL_OK);
    double ms = -1.0;
    ASSERT_EQ(cudl_event_elapsed_ms(start, end, &ms), CUDL_OK);
    EXPECT_GE(ms, 0.0);
    // On the CPU the event is the monotonic clock: a sleep between two
    // records is at least as long as the sleep (no upper bound: the
    // machine may be busy).
    if (kind == CUDL_DEVICE_CPU) {
      ASSERT_EQ(cudl_event_record(start), CUDL_OK);
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
      ASSERT_EQ(cudl_event_record(end), CUDL_OK);
      ASSERT_EQ(cudl_event_elapsed_ms(start, end, &ms), CUDL_OK);
      EXPECT_GE(ms, 19.9);
    }
    cudl_tensor_destroy(t);
    cudl_event_destroy(start);
    cudl_event_destroy(end);
    cudl_context_destroy(ctx);
  }
}

// The loader's fences (cudl__event_create_fence) are waited for, and a
// fence given to the timing call is refused rather than read (a CUDA event
// made without timing has no timestamp).
TEST(Event, FencesAreWaitedForNotTimed) {
  for (cudl_device_kind kind : DevicesHere()) {
    SCOPED_TRACE(kind == CUDL_DEVICE_CPU ? "cpu" : "cuda");
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(kind, 0, &ctx), CUDL_OK);
    cudl_event *fence = nullptr, *timed = nullptr;
    ASSERT_EQ(cudl__event_create_fence(ctx, &fence), CUDL_OK);
    ASSERT_EQ(cudl_event_create(ctx, &timed), CUDL_OK);
    const int64_t shape[] = {1 << 20};
    cudl_tensor *t = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
    ASSERT_EQ(cudl_event_record(timed), CUDL_OK);
    ASSERT_EQ(cudl_tensor_fill(t, 2.0f), CUDL_OK);
    ASSERT_EQ(cudl_event_record(fence), CUDL_OK);
    ASSERT_EQ(cudl__event_wait(fence), CUDL_OK);
    double ms = -1.0;
    EXPECT_EQ(cudl_event_elapsed_ms(timed, fence, &ms), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "end event is a fence"));
    EXPECT_EQ(cudl_event_elapsed_ms(fence, timed, &ms), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "start event is a fence"));
    EXPECT_EQ(ms, -1.0);
    cudl_tensor_destroy(t);
    cudl_event_destroy(fence);
    cudl_event_destroy(timed);
    cudl_context_destroy(ctx);
  }
}

TEST(Event, BadUseIsAnErrorWithAReason) {
  cudl_context *a = nullptr, *b = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &a), CUDL_OK);
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &b), CUDL_OK);
  cudl_event *ea = nullptr, *eb = nullptr, *unrecorded = nullptr;
  cudl_event *sentinel = reinterpret_cast<cudl_event *>(Sentinel());
  cudl_event *out = sentinel;
  EXPECT_EQ(cudl_event_create(nullptr, &out), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(out, nullptr) << "*out must be NULL on failure";
  EXPECT_EQ(cudl_event_create(a, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(cudl_event_create(a, &ea), CUDL_OK);
  ASSERT_EQ(cudl_event_create(b, &eb), CUDL_OK);
  ASSERT_EQ(cudl_event_create(a, &unrecorded), CUDL_OK);
  ASSERT_EQ(cudl_event_record(ea), CUDL_OK);
  ASSERT_EQ(cudl_event_record(eb), CUDL_OK);
  double ms = 0.0;
  EXPECT_EQ(cudl_event_elapsed_ms(ea, eb, &ms), CUDL_ERR_DEVICE_MISMATCH);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(a), "different contexts"));
  EXPECT_EQ(cudl_event_elapsed_ms(ea, unrecorded, &ms), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(a), "end event has not been recorded"));
  EXPECT_EQ(cudl_event_elapsed_ms(ea, ea, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_event_record(nullptr), CUDL_ERR_INVALID_ARGUMENT);
  ASSERT_EQ(cudl_event_elapsed_ms(ea, ea, &ms), CUDL_OK);
  EXPECT_EQ(ms, 0.0);
  cudl_event_destroy(nullptr);
  cudl_event_destroy(ea);
  cudl_event_destroy(eb);
  cudl_event_destroy(unrecorded);
  cudl_context_destroy(a);
  cudl_context_destroy(b);
}

// --------------------------------------------------------------------------
// Memory limit (cudl_context_set_memory_limit; issue 13, item 5)
// --------------------------------------------------------------------------

// A /proc/meminfo figure in bytes; 0 when absent.
uint64_t MeminfoBytes(const char *key) {
  FILE *f = std::fopen("/proc/meminfo", "r");
  char line[256];
  uint64_t value = 0;
  if (f == nullptr) return 0;
  while (std::fgets(line, sizeof line, f) != nullptr) {
    unsigned long long kb = 0;
    if (std::strncmp(line, key, std::strlen(key)) == 0 &&
        std::sscanf(line + std::strlen(key), ": %llu kB", &kb) == 1)
      value = uint64_t{kb} * 1024u;
  }
  std::fclose(f);
  return value;
}

TEST(MemoryLimit, DefaultIsPositiveAndAtMostTheMachine) {
  for (cudl_device_kind kind : DevicesHere()) {
    SCOPED_TRACE(kind == CUDL_DEVICE_CPU ? "cpu" : "cuda");
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(kind, 0, &ctx), CUDL_OK);
    uint64_t limit = 0, again = 0;
    ASSERT_EQ(cudl_context_memory_limit(ctx, &limit), CUDL_OK);
    EXPECT_GT(limit, 0u);
    if (kind == CUDL_DEVICE_CPU) {
      // What the process can get: at most the machine's memory, plus its
      // swap, which the default counts (SwapFree).
      const uint64_t physical = uint64_t(sysconf(_SC_PHYS_PAGES)) * uint64_t(sysconf(_SC_PAGESIZE));
      EXPECT_LE(limit, physical + MeminfoBytes("SwapTotal"));
    } else {
      cudl_cuda_device_properties props;
      ASSERT_EQ(cudl_cuda_device_properties_query(0, &props), CUDL_OK);
      EXPECT_EQ(limit, props.total_memory);
    }
    // Set, read back, and 0 restores the default.
    ASSERT_EQ(cudl_context_set_memory_limit(ctx, 12345), CUDL_OK);
    ASSERT_EQ(cudl_context_memory_limit(ctx, &again), CUDL_OK);
    EXPECT_EQ(again, 12345u);
    ASSERT_EQ(cudl_context_set_memory_limit(ctx, 0), CUDL_OK);
    ASSERT_EQ(cudl_context_memory_limit(ctx, &again), CUDL_OK);
    EXPECT_EQ(again, limit);
    // Bad arguments.
    EXPECT_EQ(cudl_context_memory_limit(ctx, nullptr), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx), "cudl_context_memory_limit: bytes"));
    EXPECT_EQ(cudl_context_memory_limit(nullptr, &again), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(cudl_context_set_memory_limit(nullptr, 1), CUDL_ERR_INVALID_ARGUMENT);
    cudl_context_destroy(ctx);
  }
}

// A model whose activations for max_batch 64 need some 20 MiB: conv
// 3 -> 16 channels on 32x32 (4 MiB of output), batch norm, ReLU, ...
cudl_status SmallConvNet(cudl_context *ctx, cudl_model **out) {
  const int64_t in[3] = {3, 32, 32};
  cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
  d.pad_h = d.pad_w = 1;
  int c = 0, bn = 0, act = 0, gap = 0, flat = 0, fc = 0;
  cudl_status s = cudl_model_create(ctx, 3, in, out);
  if (s == CUDL_OK) s = cudl_model_add_conv2d(*out, 0, "conv", 16, 3, 3, &d, 0, &c);
  if (s == CUDL_OK) s = cudl_model_add_batchnorm(*out, c, "bn", 0.1f, 1e-5f, &bn);
  if (s == CUDL_OK) s = cudl_model_add_activation(*out, bn, CUDL_ACT_RELU, 0.0f, &act);
  if (s == CUDL_OK) s = cudl_model_add_global_avg_pool(*out, act, &gap);
  if (s == CUDL_OK) s = cudl_model_add_flatten(*out, gap, &flat);
  if (s == CUDL_OK) s = cudl_model_add_linear(*out, flat, "fc", 10, 1, &fc);
  if (s == CUDL_OK) s = cudl_model_set_output(*out, fc, CUDL_MODEL_LOSS_CROSS_ENTROPY);
  return s;
}

uint64_t BytesInUse(cudl_context *ctx) {
  cudl_memory_stats stats{};
  EXPECT_EQ(cudl_context_synchronize(ctx), CUDL_OK);  // CUDA frees are queued
  EXPECT_EQ(cudl_context_memory_stats(ctx, &stats), CUDL_OK);
  return stats.bytes_in_use;
}

TEST(MemoryLimit, AllocationsPastTheLimitFailCleanlyUntilItIsRaised) {
  for (cudl_device_kind kind : DevicesHere()) {
    SCOPED_TRACE(kind == CUDL_DEVICE_CPU ? "cpu" : "cuda");
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(kind, 0, &ctx), CUDL_OK);
    const uint64_t mib = uint64_t{1} << 20;
    const uint64_t start = BytesInUse(ctx);
    const uint64_t limit = start + 4 * mib;
    ASSERT_EQ(cudl_context_set_memory_limit(ctx, limit), CUDL_OK);

    // Within the limit: fine. Past it: CUDL_ERR_OUT_OF_MEMORY, with the
    // request, what is in use, the limit and how to change it.
    const int64_t small[1] = {int64_t(mib / 4)}, big[1] = {int64_t(2 * mib)};  // 1 and 8 MiB
    cudl_tensor *kept = nullptr, *refused = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, small, &kept), CUDL_OK);
    const uint64_t held = BytesInUse(ctx);
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, big, &refused), CUDL_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(refused, nullptr);
    const std::string message = cudl_context_last_error(ctx);
    EXPECT_TRUE(HasSubstr(message, "cannot allocate 8388608 bytes"));
    EXPECT_TRUE(HasSubstr(message, "with " + std::to_string(held) + " bytes"));
    EXPECT_TRUE(HasSubstr(message, "memory limit of " + std::to_string(limit) + " bytes"));
    EXPECT_TRUE(HasSubstr(message, "cudl_context_set_memory_limit"));
    EXPECT_EQ(BytesInUse(ctx), held);

    // A model whose activations do not fit: compile fails cleanly, and
    // frees what it had made.
    cudl_model *model = nullptr;
    ASSERT_EQ(SmallConvNet(ctx, &model), CUDL_OK);
    // A batch whose layer outputs alone pass the limit fails before any of
    // it is allocated (the peak stays where it was).
    ASSERT_EQ(cudl_context_reset_peak_memory(ctx), CUDL_OK);
    EXPECT_EQ(cudl_model_compile(model, 4096), CUDL_ERR_OUT_OF_MEMORY);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "batches of 4096 need at least"))
        << cudl_context_last_error(ctx);
    cudl_memory_stats stats;
    ASSERT_EQ(cudl_context_memory_stats(ctx, &stats), CUDL_OK);
    EXPECT_EQ(stats.peak_bytes_in_use, held) << "compile allocated before it knew";
    EXPECT_EQ(cudl_model_compile(model, 64), CUDL_ERR_OUT_OF_MEMORY);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "memory limit"));
    EXPECT_EQ(cudl_model_params(model), nullptr);
    EXPECT_EQ(BytesInUse(ctx), held);

    // Raised again (0: the default), the same calls succeed.
    ASSERT_EQ(cudl_context_set_memory_limit(ctx, 0), CUDL_OK);
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, big, &refused), CUDL_OK)
        << cudl_context_last_error(ctx);
    ASSERT_EQ(cudl_model_compile(model, 64), CUDL_OK) << cudl_context_last_error(ctx);
    EXPECT_GT(BytesInUse(ctx), limit);
    // A limit below what is in use is accepted; the next allocation fails.
    ASSERT_EQ(cudl_context_set_memory_limit(ctx, limit), CUDL_OK);
    cudl_tensor *one_more = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, small, &one_more), CUDL_ERR_OUT_OF_MEMORY);
    // Freeing brings it back within reach.
    cudl_model_destroy(model);
    cudl_tensor_destroy(refused);
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, small, &one_more), CUDL_OK)
        << cudl_context_last_error(ctx);
    cudl_tensor_destroy(one_more);
    cudl_tensor_destroy(kept);
    EXPECT_EQ(BytesInUse(ctx), start);
    cudl_context_destroy(ctx);
  }
}

TEST(MemoryLimit, TensorLargerThanTheDefaultFailsWithoutAllocating) {
  for (cudl_device_kind kind : DevicesHere()) {
    SCOPED_TRACE(kind == CUDL_DEVICE_CPU ? "cpu" : "cuda");
    cudl_context *ctx = nullptr;
    ASSERT_EQ(cudl_context_create(kind, 0, &ctx), CUDL_OK);
    // Every host allocation is recorded, and none above 1 GiB is made: a
    // request for the tensor's storage would show in `requests`.
    cudl_test::CountingAllocator counting;
    counting.max_size = size_t{1} << 30;
    const cudl_allocator hooks = counting.hooks();
    ASSERT_EQ(cudl_context_set_allocator(ctx, &hooks), CUDL_OK);
    uint64_t limit = 0;
    ASSERT_EQ(cudl_context_memory_limit(ctx, &limit), CUDL_OK);
    const int64_t shape[1] = {int64_t(limit / 4 + 1)};            // one float more than the limit
    cudl_tensor *t = reinterpret_cast<cudl_tensor *>(&counting);  // not NULL: must become NULL
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, shape, &t), CUDL_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(t, nullptr);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "memory limit"));
    EXPECT_EQ(counting.failed, 0u) << "the allocator was asked for the storage";
    for (const auto &request : counting.requests) EXPECT_LT(request.first, size_t{1} << 20);
    EXPECT_EQ(counting.allocs, counting.frees);
    // Still usable.
    const int64_t one[1] = {1};
    ASSERT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, one, &t), CUDL_OK);
    cudl_tensor_destroy(t);
    ASSERT_EQ(cudl_context_set_allocator(ctx, nullptr), CUDL_OK);
    cudl_context_destroy(ctx);
  }
}

}  // namespace
