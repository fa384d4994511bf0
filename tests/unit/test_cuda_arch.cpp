// test_cuda_arch.cpp - which cards a build's GPU code runs on: the pure
// rule of core/cuda_arch.h (SASS sm_XY on the same major from minor Y up,
// PTX compute_XY on anything from X.Y up, malformed lists refused) on every
// case that matters to users' cards; cudl_cuda_architectures and
// cudl_cuda_device_supported; and on a GPU, the driver's own answer
// (cudl__cuda_kernel_loads) for the library's code and for a kernel built
// for sm_80 alone, which a card of another major cannot run. The GPU tests
// skip, saying why, without a GPU or without CUDA.
#include <gtest/gtest.h>

#include <cstring>
#include <string>

#include "core/cuda_arch.h"
#include "cudl/cudl.h"
#include "test_util.h"
#if defined(CUDL_TEST_HAVE_CUDA)
#  include "cuda/cuda_probe.h"
extern "C" const void *cudl_test_sm80_only_kernel(void);  // sm80_kernel.cu
#endif

namespace {

using cudl_test::HasSubstr;
using cudl_test::LogCapture;

// What the default build contains (CMakeLists.txt).
const char kDefault[] = "sm_80 sm_86 sm_89 sm_90 compute_90";
const char kDefaultWithoutPtx[] = "sm_80 sm_86 sm_89 sm_90";

cudl_status Covers(const char *list, int major, int minor) {
  return cudl__cuda_arch_covers(list, major, minor);
}

TEST(CudaArchCovers, DefaultRunsOnTheCardsItIsBuiltFor) {
  // A100, A10 / RTX 30xx, RTX 40xx / L4, H100 / H200: their own SASS.
  for (const auto &cc : {std::make_pair(8, 0), std::make_pair(8, 6), std::make_pair(8, 9),
                         std::make_pair(9, 0)}) {
    EXPECT_EQ(Covers(kDefault, cc.first, cc.second), CUDL_OK) << cc.first << "." << cc.second;
    EXPECT_EQ(Covers(kDefaultWithoutPtx, cc.first, cc.second), CUDL_OK)
        << cc.first << "." << cc.second;
  }
}

TEST(CudaArchCovers, DefaultRefusesOlderCards) {
  // Turing (RTX 20xx, T4), Volta, and anything older: no SASS of their
  // major, and PTX runs only forward.
  for (const auto &cc : {std::make_pair(7, 5), std::make_pair(7, 0), std::make_pair(6, 1),
                         std::make_pair(5, 0), std::make_pair(1, 0)})
    EXPECT_EQ(Covers(kDefault, cc.first, cc.second), CUDL_ERR_UNSUPPORTED)
        << cc.first << "." << cc.second;
}

TEST(CudaArchCovers, SassRunsOnLaterMinorsOfItsMajorOnly) {
  // 8.7 (Jetson Orin) has no SASS of its own in the default list: sm_86's
  // runs on it, sm_89's does not.
  EXPECT_EQ(Covers(kDefault, 8, 7), CUDL_OK);
  EXPECT_EQ(Covers("sm_86", 8, 7), CUDL_OK);
  EXPECT_EQ(Covers("sm_86", 8, 9), CUDL_OK);
  EXPECT_EQ(Covers("sm_89", 8, 7), CUDL_ERR_UNSUPPORTED);
  EXPECT_EQ(Covers("sm_86", 8, 0), CUDL_ERR_UNSUPPORTED) << "an earlier minor";
  EXPECT_EQ(Covers("sm_86", 9, 0), CUDL_ERR_UNSUPPORTED) << "a later major";
  EXPECT_EQ(Covers("sm_90", 10, 0), CUDL_ERR_UNSUPPORTED) << "a later major";
  EXPECT_EQ(Covers("sm_90", 8, 9), CUDL_ERR_UNSUPPORTED) << "an earlier major";
  EXPECT_EQ(Covers(kDefaultWithoutPtx, 9, 9), CUDL_OK) << "a later 9.x, by sm_90";
  // Three digits: sm_100 is 10.0, not 1.00.
  EXPECT_EQ(Covers("sm_100", 10, 0), CUDL_OK);
  EXPECT_EQ(Covers("sm_100", 10, 3), CUDL_OK);
  EXPECT_EQ(Covers("sm_100", 12, 0), CUDL_ERR_UNSUPPORTED);
  EXPECT_EQ(Covers("sm_100", 1, 0), CUDL_ERR_UNSUPPORTED);
  EXPECT_EQ(Covers("sm_120", 12, 1), CUDL_OK);
}

TEST(CudaArchCovers, PtxRunsOnEveryLaterCard) {
  // Blackwell B200 (10.0), GB300 (10.3), RTX 50xx (12.0), DGX Spark (12.1):
  // compute_90 PTX, compiled by the driver.
  for (const auto &cc : {std::make_pair(10, 0), std::make_pair(10, 3), std::make_pair(12, 0),
                         std::make_pair(12, 1)}) {
    EXPECT_EQ(Covers(kDefault, cc.first, cc.second), CUDL_OK) << cc.first << "." << cc.second;
    EXPECT_EQ(Covers("compute_90", cc.first, cc.second), CUDL_OK) << cc.first << "." << cc.second;
    EXPECT_EQ(Covers(kDefaultWithoutPtx, cc.first, cc.second), CUDL_ERR_UNSUPPORTED)
        << "no PTX: " << cc.first << "." << cc.second;
  }
  EXPECT_EQ(Covers("compute_90", 9, 0), CUDL_OK);
  EXPECT_EQ(Covers("compute_90", 8, 9), CUDL_ERR_UNSUPPORTED) << "PTX never runs backwards";
  EXPECT_EQ(Covers("compute_86", 8, 9), CUDL_OK);
  EXPECT_EQ(Covers("compute_86", 8, 0), CUDL_ERR_UNSUPPORTED);
  // A major far beyond any card: compared without overflow.
  EXPECT_EQ(Covers("compute_90", 2000000000, 0), CUDL_OK);
  EXPECT_EQ(Covers("sm_90", 2000000000, 0), CUDL_ERR_UNSUPPORTED);
}

TEST(CudaArchCovers, ArchitectureSpecificCodeRunsOnItsOwnCardOnly) {
  EXPECT_EQ(Covers("sm_90a", 9, 0), CUDL_OK);
  EXPECT_EQ(Covers("sm_90a", 9, 1), CUDL_ERR_UNSUPPORTED);
  EXPECT_EQ(Covers("compute_90a", 9, 0), CUDL_OK);
  EXPECT_EQ(Covers("compute_90a", 10, 0), CUDL_ERR_UNSUPPORTED);
  EXPECT_EQ(Covers("sm_90a compute_90", 10, 0), CUDL_OK);
}

TEST(CudaArchCovers, AnyEntryCoveringIsEnoughInAnyOrder) {
  EXPECT_EQ(Covers("compute_90 sm_90 sm_89 sm_86 sm_80", 8, 6), CUDL_OK);
  EXPECT_EQ(Covers("sm_75 sm_80", 7, 5), CUDL_OK);
  EXPECT_EQ(Covers("sm_80 sm_80", 8, 0), CUDL_OK) << "a repeated entry";
  // Spaces around and between entries are separators.
  EXPECT_EQ(Covers("  sm_80   sm_90  ", 9, 0), CUDL_OK);
}

TEST(CudaArchCovers, MalformedListsAreRefusedWhateverTheCard) {
  // Each malformed, even where another entry would cover the card: the
  // whole list is checked, so a bad list cannot pass on some cards only.
  const char *const malformed[] = {
      "",          "   ",        "sm_",        "compute_",     "sm_8",         "sm_080",
      "sm_80x",    "sm_80aa",    "sm_a80",     "sm80",         "SM_80",        "Sm_80",
      "compute90", "80",         "80-real",    "sm_80,sm_90",  "sm_80;sm_90",  "sm_80\tsm_90",
      "sm_80\n",   "sm_-80",     "sm_ 80",     "sm_12345",     "sm_80 bogus",  "bogus sm_80",
      "sm_80 sm_", "compute_9",  "sass_80",    "sm_80 sm_90 compute_90 compute_"};
  for (const char *list : malformed)
    for (const auto &cc : {std::make_pair(8, 0), std::make_pair(9, 0), std::make_pair(10, 0)})
      EXPECT_EQ(Covers(list, cc.first, cc.second), CUDL_ERR_INVALID_ARGUMENT)
          << "'" << list << "' on " << cc.first << "." << cc.second;
  EXPECT_EQ(Covers(nullptr, 9, 0), CUDL_ERR_INVALID_ARGUMENT);
  // The largest numbers the names allow are well formed.
  EXPECT_EQ(Covers("sm_9999", 999, 9), CUDL_OK);
  EXPECT_EQ(Covers("sm_10", 1, 0), CUDL_OK);
}

TEST(CudaArchCovers, AComputeCapabilityMustBeOne) {
  for (const auto &cc : {std::make_pair(0, 0), std::make_pair(-1, 0), std::make_pair(9, -1),
                         std::make_pair(9, 10), std::make_pair(8, 100)})
    EXPECT_EQ(Covers(kDefault, cc.first, cc.second), CUDL_ERR_INVALID_ARGUMENT)
        << cc.first << "." << cc.second;
}

TEST(CudaArchRefusal, NamesTheCardItsCapabilityTheBuildAndTheFix) {
  char text[1024];
  std::memset(text, 'x', sizeof text);
  cudl__cuda_arch_refusal(text, sizeof text, 2, "NVIDIA GeForce RTX 2080 Ti", 7, 5, kDefault);
  const std::string s = text;
  EXPECT_TRUE(HasSubstr(s, "cuda:2 (NVIDIA GeForce RTX 2080 Ti)"));
  EXPECT_TRUE(HasSubstr(s, "compute capability 7.5"));
  EXPECT_TRUE(HasSubstr(s, kDefault));
  EXPECT_TRUE(HasSubstr(s, "-DCMAKE_CUDA_ARCHITECTURES=75"));
  EXPECT_EQ(s.find('\n'), std::string::npos) << "one line: " << s;

  cudl__cuda_arch_refusal(text, sizeof text, 0, "NVIDIA B200", 10, 0, kDefaultWithoutPtx);
  EXPECT_TRUE(HasSubstr(text, "compute capability 10.0"));
  EXPECT_TRUE(HasSubstr(text, "-DCMAKE_CUDA_ARCHITECTURES=100"));
}

TEST(CudaArchRefusal, TruncatesAndTerminatesAndWritesNothingIntoNothing) {
  char full[1024], small[17];
  cudl__cuda_arch_refusal(full, sizeof full, 0, "card", 7, 5, kDefault);
  std::memset(small, 'x', sizeof small);
  cudl__cuda_arch_refusal(small, sizeof small, 0, "card", 7, 5, kDefault);
  EXPECT_EQ(std::strlen(small), sizeof small - 1);
  EXPECT_EQ(std::string(full).compare(0, sizeof small - 1, small), 0) << small;
  char untouched[4] = {'a', 'b', 'c', 'd'};
  cudl__cuda_arch_refusal(untouched, 0, 0, "card", 7, 5, kDefault);
  EXPECT_EQ(std::memcmp(untouched, "abcd", 4), 0);
  cudl__cuda_arch_refusal(nullptr, 16, 0, "card", 7, 5, kDefault);  // must not crash
}

// ---------------------------------------------------------------------------
// The public queries (any build, any machine)
// ---------------------------------------------------------------------------

TEST(CudaArchitectures, ListTheBuildsCodeWellFormed) {
  const char *list = cudl_cuda_architectures();
  ASSERT_NE(list, nullptr);
  if (!cudl_cuda_compiled()) {
    EXPECT_STREQ(list, "");
    return;
  }
  // Well formed (the same parser refuses a malformed list whatever the
  // card), with SASS or PTX for at least one card.
  EXPECT_NE(Covers(list, 9, 0), CUDL_ERR_INVALID_ARGUMENT) << list;
  EXPECT_TRUE(HasSubstr(list, "sm_") || HasSubstr(list, "compute_")) << list;
  EXPECT_EQ(cudl_cuda_architectures(), list) << "one static string";
}

TEST(CudaDeviceSupported, BadIndexAndNoDevice) {
  char reason[1024];
  EXPECT_EQ(cudl_cuda_device_supported(-1, reason, sizeof reason), CUDL_ERR_INVALID_ARGUMENT);
  int count = 0;
  char count_reason[1024];
  const cudl_status counted = cudl_cuda_device_count(&count, count_reason, sizeof count_reason);
  if (counted != CUDL_OK) {
    // No CUDA, driver or GPU: the count's status and reason, for any index.
    for (int index : {0, 1, 1000}) {
      std::memset(reason, 'x', sizeof reason);
      EXPECT_EQ(cudl_cuda_device_supported(index, reason, sizeof reason), counted) << index;
      EXPECT_STREQ(reason, count_reason) << index;
    }
  } else {
    std::memset(reason, 'x', sizeof reason);
    EXPECT_EQ(cudl_cuda_device_supported(count, reason, sizeof reason), CUDL_ERR_NO_DEVICE);
    EXPECT_TRUE(HasSubstr(reason, std::to_string(count) + " requested")) << reason;
  }
  // reason may be NULL, and size 0 writes nothing.
  const cudl_status with_reason = cudl_cuda_device_supported(0, reason, sizeof reason);
  EXPECT_EQ(cudl_cuda_device_supported(0, nullptr, 0), with_reason);
  char untouched[4] = {'a', 'b', 'c', 'd'};
  EXPECT_EQ(cudl_cuda_device_supported(0, untouched, 0), with_reason);
  EXPECT_EQ(std::memcmp(untouched, "abcd", 4), 0);
}

// ---------------------------------------------------------------------------
// On a GPU
// ---------------------------------------------------------------------------

// The devices present, supported or not (these tests are about that
// question), and why there are none.
struct Devices {
  int count = 0;
  std::string reason;
};

Devices CountDevices() {
  Devices d;
  char reason[1024] = "";
  if (cudl_cuda_device_count(&d.count, reason, sizeof reason) != CUDL_OK) d.count = 0;
  d.reason = reason;
  return d;
}

// Every device: the listing's answer is the rule's on the card's compute
// capability, and context creation agrees with it, refusing a card the
// build has no code for with CUDL_ERR_UNSUPPORTED and the same reason.
TEST(CudaArchGpu, ListingAndContextCreationAgreeWithTheRule) {
  const Devices devices = CountDevices();
  if (devices.count == 0) GTEST_SKIP() << "no CUDA device: " << devices.reason;
  for (int i = 0; i < devices.count; ++i) {
    cudl_cuda_device_properties p;
    ASSERT_EQ(cudl_cuda_device_properties_query(i, &p), CUDL_OK) << i;
    const cudl_status expected =
        Covers(cudl_cuda_architectures(), p.compute_major, p.compute_minor);
    char reason[1024];
    std::memset(reason, 'x', sizeof reason);
    EXPECT_EQ(cudl_cuda_device_supported(i, reason, sizeof reason), expected)
        << "cuda:" << i << " " << p.name << ": " << reason;
    LogCapture log;
    cudl_context *ctx = nullptr;
    const cudl_status created = cudl_context_create(CUDL_DEVICE_CUDA, i, &ctx);
    if (expected == CUDL_OK) {
      EXPECT_STREQ(reason, "");
      if (created == CUDL_ERR_UNSUPPORTED) {
        // The one disagreement allowed: the build has PTX for the card but
        // the driver cannot compile it (older than the compiler).
        EXPECT_TRUE(log.contains(CUDL_LOG_ERROR, "the driver cannot load")) << log.dump();
      } else {
        EXPECT_EQ(created, CUDL_OK) << log.dump();
      }
    } else {
      EXPECT_TRUE(HasSubstr(reason, p.name)) << reason;
      EXPECT_EQ(created, CUDL_ERR_UNSUPPORTED) << log.dump();
      EXPECT_EQ(ctx, nullptr);
      EXPECT_TRUE(log.contains(CUDL_LOG_ERROR, reason)) << log.dump();
    }
    cudl_context_destroy(ctx);
  }
}

#if defined(CUDL_TEST_HAVE_CUDA)

// The library's own code loads on every card the rule accepts (but for the
// one disagreement allowed above, which must then say so).
TEST(CudaArchGpu, DriverLoadsTheLibrarysCodeWhereTheRuleSaysItRuns) {
  const Devices devices = CountDevices();
  if (devices.count == 0) GTEST_SKIP() << "no CUDA device: " << devices.reason;
  for (int i = 0; i < devices.count; ++i) {
    cudl_cuda_device_properties p;
    ASSERT_EQ(cudl_cuda_device_properties_query(i, &p), CUDL_OK) << i;
    if (Covers(cudl_cuda_architectures(), p.compute_major, p.compute_minor) != CUDL_OK) continue;
    char reason[1024] = "";
    const cudl_status loads = cudl__cuda_kernel_loads(
        i, cudl__cuda_probe_kernel(), cudl_cuda_architectures(), reason, sizeof reason);
    if (loads == CUDL_ERR_UNSUPPORTED)
      EXPECT_TRUE(HasSubstr(reason, "the driver cannot load")) << reason;
    else
      EXPECT_EQ(loads, CUDL_OK) << "cuda:" << i << " " << p.name << ": " << reason;
  }
}

// A kernel built for sm_80 alone: the driver refuses it on a card of
// another major (an H100 here), which the probe must report as
// CUDL_ERR_UNSUPPORTED with the refusal text, and runs it on an 8.x card.
// The refusal path of context creation, on a real card and driver.
TEST(CudaArchGpu, DriverRefusesAKernelWithoutCodeForTheCard) {
  const Devices devices = CountDevices();
  if (devices.count == 0) GTEST_SKIP() << "no CUDA device: " << devices.reason;
  for (int i = 0; i < devices.count; ++i) {
    cudl_cuda_device_properties p;
    ASSERT_EQ(cudl_cuda_device_properties_query(i, &p), CUDL_OK) << i;
    char reason[1024];
    std::memset(reason, 'x', sizeof reason);
    const cudl_status loads =
        cudl__cuda_kernel_loads(i, cudl_test_sm80_only_kernel(), "sm_80", reason, sizeof reason);
    if (Covers("sm_80", p.compute_major, p.compute_minor) == CUDL_OK) {
      EXPECT_EQ(loads, CUDL_OK) << p.name << ": " << reason;
      continue;
    }
    EXPECT_EQ(loads, CUDL_ERR_UNSUPPORTED) << p.name << ": " << reason;
    char expected[1024];
    cudl__cuda_arch_refusal(expected, sizeof expected, i, p.name, p.compute_major,
                            p.compute_minor, "sm_80");
    EXPECT_STREQ(reason, expected);
    // The refusal changed nothing: the library's code still loads.
    if (Covers(cudl_cuda_architectures(), p.compute_major, p.compute_minor) == CUDL_OK) {
      EXPECT_EQ(cudl__cuda_kernel_loads(i, cudl__cuda_probe_kernel(), cudl_cuda_architectures(),
                                        nullptr, 0),
                CUDL_OK);
    }
  }
}

#else

TEST(CudaArchGpu, DriverChecksNeedCuda) { GTEST_SKIP() << "this cudl was built without CUDA"; }

#endif

}  // namespace
