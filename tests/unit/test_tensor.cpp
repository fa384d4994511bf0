// test_tensor.cpp - CPU tensors: creation and shape queries, argument and
// overflow errors, host copies and tensor-to-tensor copies, fill, the
// Philox uniform and normal initialisers (bit for bit against a reference
// written here, plus statistics), and the host allocator hooks.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <climits>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

#if defined(__SANITIZE_ADDRESS__)
#  define CUDL_TEST_ASAN 1
#elif defined(__has_feature)
#  if __has_feature(address_sanitizer)
#    define CUDL_TEST_ASAN 1
#  endif
#endif

#if defined(CUDL_TEST_ASAN)
// A failed huge allocation must come back as NULL (as from glibc), not
// abort the process, so that the out-of-memory path is tested under ASan too.
extern "C" const char *__asan_default_options() { return "allocator_may_return_null=1"; }
#endif

namespace {

using cudl_test::BitEqual;
using cudl_test::CountingAllocator;
using cudl_test::FloatBits;
using cudl_test::HasSubstr;
using cudl_test::ReadF32;
using cudl_test::ReferenceNormal;
using cudl_test::ReferenceUniform;
using cudl_test::StartsWith;
using cudl_test::WriteF32;

const cudl_dtype kAllDtypes[] = {CUDL_DTYPE_F32, CUDL_DTYPE_F16, CUDL_DTYPE_BF16};

cudl_tensor *SentinelTensor() {
  static int dummy;
  return reinterpret_cast<cudl_tensor *>(&dummy);
}

class TensorTest : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK); }
  void TearDown() override {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    cudl_context_destroy(ctx_);
  }

  // A tensor destroyed in TearDown (or by Destroy); NULL and a test failure
  // if creation fails.
  cudl_tensor *Make(const std::vector<int64_t> &shape, cudl_dtype dtype = CUDL_DTYPE_F32,
                    cudl_context *ctx = nullptr) {
    cudl_tensor *t = nullptr;
    const cudl_status s = cudl_tensor_create(ctx == nullptr ? ctx_ : ctx, dtype,
                                             static_cast<int>(shape.size()),
                                             shape.empty() ? nullptr : shape.data(), &t);
    EXPECT_EQ(s, CUDL_OK) << cudl_status_name(s) << ": " << cudl_context_last_error(ctx_);
    if (t != nullptr) owned_.push_back(t);
    return t;
  }
  void Destroy(cudl_tensor *t) {
    owned_.erase(std::remove(owned_.begin(), owned_.end(), t), owned_.end());
    cudl_tensor_destroy(t);
  }
  uint64_t Offset() const {
    uint64_t seed = 0, offset = 0;
    EXPECT_EQ(cudl_context_rng_state(ctx_, &seed, &offset), CUDL_OK);
    return offset;
  }
  // The context still works: a new tensor can be created, filled and read.
  void ExpectUsable() {
    cudl_tensor *t = nullptr;
    const int64_t shape[] = {3};
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
    EXPECT_EQ(cudl_tensor_fill(t, 4.5f), CUDL_OK);
    float out[3] = {0, 0, 0};
    EXPECT_EQ(cudl_tensor_copy_to_host(t, out, sizeof out), CUDL_OK);
    EXPECT_EQ(out[0], 4.5f);
    EXPECT_EQ(out[2], 4.5f);
    cudl_tensor_destroy(t);
  }

  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> owned_;
};

// ==========================================================================
// Creation and queries
// ==========================================================================

TEST_F(TensorTest, CreateEveryRankAndDtype) {
  const std::vector<std::vector<int64_t>> shapes = {
      {}, {7}, {7, 13}, {2, 3, 5}, {2, 3, 5, 7}, {1, 2, 3, 4, 5}};
  for (cudl_dtype dtype : kAllDtypes) {
    for (const auto &shape : shapes) {
      SCOPED_TRACE(std::string(cudl_dtype_name(dtype)) + " ndim " + std::to_string(shape.size()));
      cudl_tensor *t = Make(shape, dtype);
      ASSERT_NE(t, nullptr);
      const int ndim = static_cast<int>(shape.size());
      int64_t numel = 1;
      for (int64_t d : shape) numel *= d;
      EXPECT_EQ(cudl_tensor_ndim(t), ndim);
      EXPECT_EQ(cudl_tensor_dtype(t), dtype);
      EXPECT_EQ(cudl_tensor_device(t), CUDL_DEVICE_CPU);
      EXPECT_EQ(cudl_tensor_context(t), ctx_);
      EXPECT_EQ(cudl_tensor_numel(t), numel);
      EXPECT_EQ(cudl_tensor_nbytes(t), static_cast<size_t>(numel) * cudl_dtype_size(dtype));
      ASSERT_NE(cudl_tensor_shape(t), nullptr);
      for (int i = 0; i < ndim; ++i) {
        EXPECT_EQ(cudl_tensor_shape(t)[i], shape[static_cast<size_t>(i)]) << i;
        EXPECT_EQ(cudl_tensor_dim(t, i), shape[static_cast<size_t>(i)]) << i;
        // Negative axes count from the end: -1 is the last.
        EXPECT_EQ(cudl_tensor_dim(t, i - ndim), shape[static_cast<size_t>(i)]) << i - ndim;
      }
      EXPECT_EQ(cudl_tensor_dim(t, ndim), -1);
      EXPECT_EQ(cudl_tensor_dim(t, ndim + 1), -1);
      EXPECT_EQ(cudl_tensor_dim(t, -ndim - 1), -1);
      EXPECT_EQ(cudl_tensor_dim(t, INT_MAX), -1);
      EXPECT_EQ(cudl_tensor_dim(t, INT_MIN), -1);
      EXPECT_NE(cudl_tensor_data(t), nullptr);
      Destroy(t);
    }
  }
}

TEST_F(TensorTest, ScalarHasOneElement) {
  cudl_tensor *t = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 0, nullptr, &t), CUDL_OK);
  owned_.push_back(t);
  EXPECT_EQ(cudl_tensor_ndim(t), 0);
  EXPECT_EQ(cudl_tensor_numel(t), 1);
  EXPECT_EQ(cudl_tensor_nbytes(t), 4u);
  EXPECT_EQ(cudl_tensor_dim(t, 0), -1);
  EXPECT_EQ(cudl_tensor_dim(t, -1), -1);
  ASSERT_EQ(cudl_tensor_fill(t, -2.25f), CUDL_OK);
  float v = 0.0f;
  ASSERT_EQ(cudl_tensor_copy_to_host(t, &v, sizeof v), CUDL_OK);
  EXPECT_EQ(v, -2.25f);
  // A non-NULL shape pointer with ndim 0 is ignored.
  const int64_t ignored[] = {-5};
  cudl_tensor *u = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F16, 0, ignored, &u), CUDL_OK);
  EXPECT_EQ(cudl_tensor_nbytes(u), 2u);
  cudl_tensor_destroy(u);
}

TEST_F(TensorTest, DimsAreCopiedFromTheCaller) {
  int64_t shape[] = {4, 6};
  cudl_tensor *t = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 2, shape, &t), CUDL_OK);
  owned_.push_back(t);
  shape[0] = 99;
  shape[1] = -1;
  EXPECT_EQ(cudl_tensor_dim(t, 0), 4);
  EXPECT_EQ(cudl_tensor_dim(t, 1), 6);
  EXPECT_EQ(cudl_tensor_numel(t), 24);
}

TEST(Tensor, NullQueries) {
  EXPECT_EQ(cudl_tensor_context(nullptr), nullptr);
  EXPECT_EQ(cudl_tensor_ndim(nullptr), 0);
  EXPECT_EQ(cudl_tensor_dim(nullptr, 0), -1);
  EXPECT_EQ(cudl_tensor_dim(nullptr, -1), -1);
  EXPECT_EQ(cudl_tensor_shape(nullptr), nullptr);
  EXPECT_EQ(cudl_tensor_numel(nullptr), 0);
  EXPECT_EQ(cudl_tensor_nbytes(nullptr), 0u);
  EXPECT_EQ(cudl_tensor_data(nullptr), nullptr);
  EXPECT_EQ(cudl_tensor_device(nullptr), CUDL_DEVICE_CPU);
  cudl_tensor_destroy(nullptr);  // no-op
}

TEST_F(TensorTest, ZeroFilledOnCreation) {
  // The counting allocator hands out memory filled with 0xA5, so a zero
  // result proves the library cleared it (fresh pages from the OS would be
  // zero anyway and prove nothing).
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  for (cudl_dtype dtype : kAllDtypes) {
    for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{5}, int64_t{1021}, int64_t{65537}}) {
      cudl_tensor *t = nullptr;
      const int64_t shape[] = {n};
      ASSERT_EQ(cudl_tensor_create(ctx_, dtype, 1, shape, &t), CUDL_OK);
      std::vector<unsigned char> bytes(cudl_tensor_nbytes(t), 0xee);
      ASSERT_EQ(cudl_tensor_copy_to_host(t, bytes.data(), bytes.size()), CUDL_OK);
      const size_t nonzero = static_cast<size_t>(
          std::count_if(bytes.begin(), bytes.end(), [](unsigned char b) { return b != 0; }));
      EXPECT_EQ(nonzero, 0u) << cudl_dtype_name(dtype) << " n=" << n;
      cudl_tensor_destroy(t);
    }
  }
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  EXPECT_GT(counting.allocs, 0u) << "the hooks were not used, so the check proved nothing";
  EXPECT_TRUE(counting.live.empty());
}

TEST_F(TensorTest, CpuStorageIsCacheLineAligned) {
  // internal.h: CPU storage is aligned to CUDL_HOST_ALIGNMENT (64).
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{17}, int64_t{1021}}) {
    cudl_tensor *t = Make({n});
    ASSERT_NE(t, nullptr);
    EXPECT_EQ(reinterpret_cast<uintptr_t>(cudl_tensor_data(t)) % 64u, 0u) << n;
  }
}

// ==========================================================================
// Empty tensors
// ==========================================================================

TEST_F(TensorTest, EmptyTensors) {
  const std::vector<std::vector<int64_t>> shapes = {{0}, {3, 0}, {0, 5, 7}, {2, 3, 0, 1, 1}};
  for (const auto &shape : shapes) {
    SCOPED_TRACE("ndim " + std::to_string(shape.size()));
    cudl_tensor *t = Make(shape);
    cudl_tensor *u = Make(shape);
    ASSERT_NE(t, nullptr);
    ASSERT_NE(u, nullptr);
    EXPECT_EQ(cudl_tensor_numel(t), 0);
    EXPECT_EQ(cudl_tensor_nbytes(t), 0u);
    EXPECT_EQ(cudl_tensor_data(t), nullptr);
    for (size_t i = 0; i < shape.size(); ++i)
      EXPECT_EQ(cudl_tensor_dim(t, static_cast<int>(i)), shape[i]);
    float dummy = 1.0f;
    EXPECT_EQ(cudl_tensor_copy_from_host(t, nullptr, 0), CUDL_OK);
    EXPECT_EQ(cudl_tensor_copy_from_host(t, &dummy, 0), CUDL_OK);
    EXPECT_EQ(cudl_tensor_copy_to_host(t, nullptr, 0), CUDL_OK);
    EXPECT_EQ(cudl_tensor_copy_to_host(t, &dummy, 0), CUDL_OK);
    EXPECT_EQ(dummy, 1.0f);
    EXPECT_EQ(cudl_tensor_copy_from_host(t, &dummy, sizeof dummy), CUDL_ERR_SHAPE);
    EXPECT_EQ(cudl_tensor_copy(u, t), CUDL_OK);
    EXPECT_EQ(cudl_tensor_fill(t, 3.0f), CUDL_OK);
    const uint64_t before = Offset();
    EXPECT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
    EXPECT_EQ(cudl_tensor_normal(t, 0.0f, 1.0f), CUDL_OK);
    EXPECT_EQ(Offset(), before) << "an empty tensor consumes no random blocks";
  }
  // Two empty tensors of different shapes are still different shapes.
  cudl_tensor *a = Make({0, 3});
  cudl_tensor *b = Make({3, 0});
  EXPECT_EQ(cudl_tensor_copy(a, b), CUDL_ERR_SHAPE);
}

TEST_F(TensorTest, EmptyTensorAllocatesNoStorage) {
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {4, 0};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 2, shape, &t), CUDL_OK);
  EXPECT_EQ(counting.allocs, 1u) << "the tensor object only";
  for (const auto &r : counting.requests) EXPECT_GT(r.first, 0u) << "a zero-byte request";
  cudl_tensor_destroy(t);
  EXPECT_EQ(counting.frees, counting.allocs);
  EXPECT_TRUE(counting.live.empty());
}

// ==========================================================================
// Creation errors
// ==========================================================================

struct BadShape {
  const char *what;
  // An int, converted at the call: C lets a C enum hold any int, but a C++
  // load of an out-of-range enum value is undefined (UBSan reports it).
  int dtype;
  int ndim;
  std::vector<int64_t> shape;  // empty: pass NULL
  cudl_status status;
  const char *message_part;  // expected in last_error
};

const int64_t kTwo31 = int64_t{1} << 31;
const int64_t kTwo32 = int64_t{1} << 32;
const int64_t kTwo62 = int64_t{1} << 62;

const BadShape kBadShapes[] = {
    {"ndim -1", CUDL_DTYPE_F32, -1, {}, CUDL_ERR_SHAPE, "ndim"},
    {"ndim 6", CUDL_DTYPE_F32, 6, {1, 1, 1, 1, 1, 1}, CUDL_ERR_SHAPE, "ndim"},
    {"ndim INT_MIN", CUDL_DTYPE_F32, INT_MIN, {}, CUDL_ERR_SHAPE, "ndim"},
    {"ndim INT_MAX", CUDL_DTYPE_F32, INT_MAX, {}, CUDL_ERR_SHAPE, "ndim"},
    {"NULL shape, ndim 2", CUDL_DTYPE_F32, 2, {}, CUDL_ERR_INVALID_ARGUMENT, "shape"},
    {"negative dim", CUDL_DTYPE_F32, 2, {3, -1}, CUDL_ERR_SHAPE, "negative"},
    {"INT64_MIN dim", CUDL_DTYPE_F32, 1, {INT64_MIN}, CUDL_ERR_SHAPE, "negative"},
    {"negative after zero", CUDL_DTYPE_F32, 2, {0, -3}, CUDL_ERR_SHAPE, "negative"},
    {"count overflow {INT64_MAX, 2}", CUDL_DTYPE_F32, 2, {INT64_MAX, 2}, CUDL_ERR_SHAPE, "overflow"},
    {"count overflow {2^32, 2^32}", CUDL_DTYPE_F32, 2, {kTwo32, kTwo32}, CUDL_ERR_SHAPE, "overflow"},
    {"count overflow {2^31 x 3}, f16", CUDL_DTYPE_F16, 3, {kTwo31, kTwo31, kTwo31}, CUDL_ERR_SHAPE, "overflow"},
    {"count over INT64_MAX {2^31, 2^31, 2}, bf16", CUDL_DTYPE_BF16, 3, {kTwo31, kTwo31, 2}, CUDL_ERR_SHAPE, "overflow"},
    {"bytes overflow {2^62} f32", CUDL_DTYPE_F32, 1, {kTwo62}, CUDL_ERR_SHAPE, "overflow"},
    {"bytes overflow {INT64_MAX} f32", CUDL_DTYPE_F32, 1, {INT64_MAX}, CUDL_ERR_SHAPE, "overflow"},
    {"bytes overflow {2^62, 2} f16", CUDL_DTYPE_F16, 2, {kTwo62, 2}, CUDL_ERR_SHAPE, "overflow"},
    {"unknown dtype", 7, 1, {4}, CUDL_ERR_DTYPE, "dtype"},
};

TEST_F(TensorTest, CreateRejectsBadShapes) {
  // A counting allocator shows that nothing was allocated: sizes are
  // checked before allocation.
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  for (const BadShape &c : kBadShapes) {
    SCOPED_TRACE(c.what);
    cudl_tensor *t = SentinelTensor();
    const size_t requests_before = counting.requests.size();
    const cudl_status s = cudl_tensor_create(ctx_, static_cast<cudl_dtype>(c.dtype), c.ndim,
                                             c.shape.empty() ? nullptr : c.shape.data(), &t);
    EXPECT_EQ(s, c.status) << cudl_status_name(s);
    EXPECT_EQ(counting.requests.size(), requests_before) << "a rejected shape reached the allocator";
    EXPECT_EQ(t, nullptr) << "*out must be NULL on failure";
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_create"));
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), c.message_part));
    if (t != nullptr && t != SentinelTensor()) cudl_tensor_destroy(t);
    ExpectUsable();
  }
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  EXPECT_TRUE(counting.live.empty());
}

TEST_F(TensorTest, CreateNullArguments) {
  const int64_t shape[] = {2};
  cudl_tensor *t = SentinelTensor();
  EXPECT_EQ(cudl_tensor_create(nullptr, CUDL_DTYPE_F32, 1, shape, &t), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(t, nullptr) << "*out must be NULL on failure";
  EXPECT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_create"));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "out"));
  ExpectUsable();
}

TEST_F(TensorTest, ZeroDimensionValidationDoesNotDependOnOrder) {
  // The same multiset of dimensions must be accepted or rejected the same
  // way whatever their order. Whether an empty tensor with huge other
  // dimensions is valid is a policy choice; giving two answers is a bug.
  const int64_t zero_first[] = {0, kTwo62, kTwo62};
  const int64_t zero_last[] = {kTwo62, kTwo62, 0};
  cudl_tensor *a = nullptr, *b = nullptr;
  const cudl_status sa = cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 3, zero_first, &a);
  const cudl_status sb = cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 3, zero_last, &b);
  EXPECT_EQ(sa, sb) << "{0, 2^62, 2^62} gives " << cudl_status_name(sa)
                    << " but {2^62, 2^62, 0} gives " << cudl_status_name(sb);
  cudl_tensor_destroy(a);
  cudl_tensor_destroy(b);
}

TEST_F(TensorTest, HugeTensorFailsWithOutOfMemory) {
  // 2^40 floats (4 TiB) fit in size_t but not in the heap: an allocator
  // refusing it (here the test's, capped at 4 GiB) gives OUT_OF_MEMORY,
  // a message, *out NULL, nothing leaked, and a working context.
  // The context's memory limit would refuse it before the allocator is
  // asked (test_context.cpp tests that): lift it, to test the allocator's
  // refusal.
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  ASSERT_EQ(cudl_context_set_memory_limit(ctx_, UINT64_MAX), CUDL_OK);
  const int64_t shape[] = {int64_t{1} << 40};
  cudl_tensor *t = SentinelTensor();
  EXPECT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(t, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "allocate"));
  EXPECT_GE(counting.failed, 1u);
  EXPECT_EQ(counting.frees, counting.allocs);
  EXPECT_TRUE(counting.live.empty());
  ExpectUsable();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
}

TEST_F(TensorTest, HugeTensorDefaultAllocator) {
  // 2^61 floats = 2^63 bytes: more than any heap can give (glibc refuses
  // anything above PTRDIFF_MAX), so the default allocator fails cleanly.
  const int64_t shape[] = {int64_t{1} << 61};
  cudl_tensor *t = SentinelTensor();
  EXPECT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_ERR_OUT_OF_MEMORY);
  EXPECT_EQ(t, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "allocate"));
  ExpectUsable();
}

// ==========================================================================
// Host copies
// ==========================================================================

std::vector<float> Pattern(int64_t n) {
  // Distinct values with special cases mixed in, so a copy that moves,
  // drops or converts anything shows.
  const float specials[] = {0.0f, -0.0f, std::numeric_limits<float>::infinity(),
                            -std::numeric_limits<float>::infinity(),
                            std::numeric_limits<float>::quiet_NaN(), FLT_MIN / 4, -FLT_MAX};
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = i % 17 == 5 ? specials[(i / 17) % 7] : static_cast<float>(i) * 0.5f - 3.0f;
  return v;
}

TEST_F(TensorTest, HostRoundTripIsBitExact) {
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{5}, int64_t{1021}, int64_t{7 * 13}}) {
    cudl_tensor *t = Make({n});
    const std::vector<float> in = Pattern(n);
    ASSERT_EQ(WriteF32(t, in), CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(t), in)) << n;
  }
  // Raw bytes of an f16 tensor travel unchanged.
  cudl_tensor *h = Make({7, 13}, CUDL_DTYPE_F16);
  std::vector<uint16_t> in(91), out(91, 0);
  for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint16_t>(0x3c00u + 37u * i);
  ASSERT_EQ(cudl_tensor_copy_from_host(h, in.data(), in.size() * 2), CUDL_OK);
  ASSERT_EQ(cudl_tensor_copy_to_host(h, out.data(), out.size() * 2), CUDL_OK);
  EXPECT_EQ(in, out);
}

TEST_F(TensorTest, CopyFromHostRejectsWrongSizeAndNull) {
  cudl_tensor *t = Make({5});
  ASSERT_EQ(cudl_tensor_fill(t, 9.0f), CUDL_OK);
  const std::vector<float> src(8, 1.0f);
  for (size_t nbytes : {size_t{0}, size_t{19}, size_t{21}, size_t{24}, size_t{4}, SIZE_MAX}) {
    EXPECT_EQ(cudl_tensor_copy_from_host(t, src.data(), nbytes), CUDL_ERR_SHAPE) << nbytes;
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_copy_from_host"));
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "20")) << "names the expected size";
  }
  EXPECT_EQ(cudl_tensor_copy_from_host(t, nullptr, 20), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "src"));
  EXPECT_EQ(cudl_tensor_copy_from_host(nullptr, src.data(), 20), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(5, 9.0f))) << "a failed copy changed the tensor";
}

TEST_F(TensorTest, CopyToHostRejectsWrongSizeAndNull) {
  cudl_tensor *t = Make({5});
  ASSERT_EQ(cudl_tensor_fill(t, 9.0f), CUDL_OK);
  std::vector<float> dst(8, -1.0f);
  for (size_t nbytes : {size_t{0}, size_t{19}, size_t{21}, size_t{24}, SIZE_MAX}) {
    EXPECT_EQ(cudl_tensor_copy_to_host(t, dst.data(), nbytes), CUDL_ERR_SHAPE) << nbytes;
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_copy_to_host"));
  }
  EXPECT_TRUE(BitEqual(dst, std::vector<float>(8, -1.0f))) << "a failed copy wrote to dst";
  EXPECT_EQ(cudl_tensor_copy_to_host(t, nullptr, 20), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "dst"));
  EXPECT_EQ(cudl_tensor_copy_to_host(nullptr, dst.data(), 20), CUDL_ERR_INVALID_ARGUMENT);
}

// ==========================================================================
// Tensor-to-tensor copies
// ==========================================================================

TEST_F(TensorTest, CopySameShape) {
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1021}}) {
    cudl_tensor *src = Make({n});
    cudl_tensor *dst = Make({n});
    ASSERT_EQ(WriteF32(src, Pattern(n)), CUDL_OK);
    ASSERT_EQ(cudl_tensor_copy(dst, src), CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(dst), Pattern(n)));
    EXPECT_TRUE(BitEqual(ReadF32(src), Pattern(n))) << "the source changed";
  }
  // Copying a tensor onto itself is allowed and changes nothing.
  cudl_tensor *self = Make({2, 3});
  ASSERT_EQ(WriteF32(self, Pattern(6)), CUDL_OK);
  EXPECT_EQ(cudl_tensor_copy(self, self), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(self), Pattern(6)));
}

TEST_F(TensorTest, CopyHalfPrecisionBytes) {
  for (cudl_dtype dtype : {CUDL_DTYPE_F16, CUDL_DTYPE_BF16}) {
    cudl_tensor *src = Make({3, 7}, dtype);
    cudl_tensor *dst = Make({3, 7}, dtype);
    std::vector<uint16_t> in(21), out(21, 0);
    for (size_t i = 0; i < in.size(); ++i) in[i] = static_cast<uint16_t>(0x8001u + 1000u * i);
    ASSERT_EQ(cudl_tensor_copy_from_host(src, in.data(), 42), CUDL_OK);
    ASSERT_EQ(cudl_tensor_copy(dst, src), CUDL_OK);
    ASSERT_EQ(cudl_tensor_copy_to_host(dst, out.data(), 42), CUDL_OK);
    EXPECT_EQ(in, out) << cudl_dtype_name(dtype);
  }
}

TEST_F(TensorTest, CopyRejectsMismatches) {
  cudl_tensor *a23 = Make({2, 3});
  cudl_tensor *a32 = Make({3, 2});
  cudl_tensor *a6 = Make({6});
  cudl_tensor *a16 = Make({1, 6});
  cudl_tensor *h23 = Make({2, 3}, CUDL_DTYPE_F16);
  cudl_tensor *b23 = Make({2, 3}, CUDL_DTYPE_BF16);
  ASSERT_EQ(cudl_tensor_fill(a23, 1.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(a32, 2.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(a6, 3.0f), CUDL_OK);

  // Same element count, different shape: rejected (no implicit reshape).
  EXPECT_EQ(cudl_tensor_copy(a23, a32), CUDL_ERR_SHAPE);
  EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_copy"));
  EXPECT_EQ(cudl_tensor_copy(a16, a6), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_tensor_copy(a6, a16), CUDL_ERR_SHAPE);
  // Same shape, different dtype.
  EXPECT_EQ(cudl_tensor_copy(h23, a23), CUDL_ERR_DTYPE);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "f16"));
  EXPECT_EQ(cudl_tensor_copy(a23, h23), CUDL_ERR_DTYPE);
  EXPECT_EQ(cudl_tensor_copy(b23, h23), CUDL_ERR_DTYPE);
  // NULLs.
  EXPECT_EQ(cudl_tensor_copy(a23, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_tensor_copy(nullptr, a23), CUDL_ERR_INVALID_ARGUMENT);
  // Nothing changed.
  EXPECT_TRUE(BitEqual(ReadF32(a23), std::vector<float>(6, 1.0f)));
  EXPECT_TRUE(BitEqual(ReadF32(a6), std::vector<float>(6, 3.0f)));
  EXPECT_TRUE(BitEqual(ReadF32(a16), std::vector<float>(6, 0.0f)));
}

TEST_F(TensorTest, CopyAcrossTwoCpuContexts) {
  cudl_context *other = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &other), CUDL_OK);
  cudl_tensor *src = nullptr;
  const int64_t shape[] = {7, 13};
  ASSERT_EQ(cudl_tensor_create(other, CUDL_DTYPE_F32, 2, shape, &src), CUDL_OK);
  ASSERT_EQ(WriteF32(src, Pattern(91)), CUDL_OK);
  cudl_tensor *dst = Make({7, 13});
  ASSERT_EQ(cudl_tensor_copy(dst, src), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(dst), Pattern(91)));
  // And back.
  ASSERT_EQ(cudl_tensor_fill(dst, -1.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_copy(src, dst), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(src), std::vector<float>(91, -1.0f)));
  // Errors go to dst's context, not src's.
  cudl_tensor *wrong = Make({13, 7});
  EXPECT_STREQ(cudl_context_last_error(other), "");
  EXPECT_EQ(cudl_tensor_copy(src, wrong), CUDL_ERR_SHAPE);
  EXPECT_TRUE(StartsWith(cudl_context_last_error(other), "cudl_tensor_copy"));
  const std::string mine = cudl_context_last_error(ctx_);
  EXPECT_TRUE(mine.find("shapes differ") == std::string::npos) << mine;
  cudl_tensor_destroy(src);
  cudl_context_destroy(other);
}

// ==========================================================================
// Fill
// ==========================================================================

TEST_F(TensorTest, FillIsExact) {
  const float values[] = {0.0f, -0.0f, 1.5f, -FLT_MAX, FLT_TRUE_MIN,
                          std::numeric_limits<float>::infinity(),
                          -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN(), 3.14159274f};
  // 65536 and above cross the OpenMP threshold of the CPU backend.
  for (int64_t n : {int64_t{1}, int64_t{3}, int64_t{5}, int64_t{1021}, int64_t{65536},
                    int64_t{65537}, int64_t{100003}}) {
    cudl_tensor *t = Make({n});
    for (float v : values) {
      ASSERT_EQ(cudl_tensor_fill(t, v), CUDL_OK);
      EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(static_cast<size_t>(n), v)))
          << "n " << n << " value " << v;
    }
    Destroy(t);
  }
  // Every rank, including a scalar and a 5-d prime shape.
  cudl_tensor *t5 = Make({2, 3, 5, 7, 11});
  ASSERT_EQ(cudl_tensor_fill(t5, 0.25f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t5), std::vector<float>(2310, 0.25f)));
}

TEST_F(TensorTest, FillDoesNotTouchNeighbours) {
  cudl_tensor *a = Make({5});
  cudl_tensor *b = Make({5});
  ASSERT_EQ(cudl_tensor_fill(b, 7.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(a, 1.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(b), std::vector<float>(5, 7.0f)));
}

TEST_F(TensorTest, InitialisersRejectNull) {
  EXPECT_EQ(cudl_tensor_fill(nullptr, 1.0f), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_tensor_uniform(nullptr, 0.0f, 1.0f), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_tensor_normal(nullptr, 0.0f, 1.0f), CUDL_ERR_INVALID_ARGUMENT);
}

// fill rounds the value once to the tensor's dtype (to nearest, ties to
// even): the bits, worked out by hand, for ties, overflow, subnormals,
// signed zero, infinities and NaN, at sizes around the vector widths.
TEST_F(TensorTest, FillSixteenBitTensorsRoundsOnce) {
  struct Case {
    float value;
    uint16_t bf16, f16;
  };
  const Case cases[] = {
      {1.0f, 0x3f80, 0x3c00},
      {-0.0f, 0x8000, 0x8000},
      {1.0f + 0x1p-8f, 0x3f80, 0x3c04},      // a bf16 tie, to even; exact in f16
      {1.0f + 3 * 0x1p-8f, 0x3f82, 0x3c0c},  // a bf16 tie, up to even
      {1.0f + 0x1p-11f, 0x3f80, 0x3c00},     // an f16 tie, to even
      {1.0f + 3 * 0x1p-11f, 0x3f80, 0x3c02}, // an f16 tie, up to even
      {65504.0f, 0x4780, 0x7bff},            // the largest f16; 65536 in bf16
      {65520.0f, 0x4780, 0x7c00},            // f16's overflow tie: infinity
      {-1e6f, 0xc974, 0xfc00},
      {0x1p-24f, 0x3380, 0x0001},            // the least f16 subnormal
      {0x1p-25f, 0x3300, 0x0000},            // half of it: a tie, to 0
      {3 * 0x1p-25f, 0x33c0, 0x0002},        // an f16 subnormal tie, up to even
      {std::numeric_limits<float>::infinity(), 0x7f80, 0x7c00},
      {-std::numeric_limits<float>::infinity(), 0xff80, 0xfc00},
      {FLT_MAX, 0x7f80, 0x7c00},             // overflow in both
  };
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1021}, int64_t{65537}}) {
    cudl_tensor *b = Make({n}, CUDL_DTYPE_BF16), *h = Make({n}, CUDL_DTYPE_F16);
    for (const Case &c : cases) {
      SCOPED_TRACE("n " + std::to_string(n) + " value " + std::to_string(c.value));
      ASSERT_EQ(cudl_tensor_fill(b, c.value), CUDL_OK) << cudl_context_last_error(ctx_);
      ASSERT_EQ(cudl_tensor_fill(h, c.value), CUDL_OK) << cudl_context_last_error(ctx_);
      EXPECT_EQ(cudl_test::ReadBits16(b), std::vector<uint16_t>(static_cast<size_t>(n), c.bf16));
      EXPECT_EQ(cudl_test::ReadBits16(h), std::vector<uint16_t>(static_cast<size_t>(n), c.f16));
    }
    // NaN stays NaN: exponent all ones, fraction not zero.
    ASSERT_EQ(cudl_tensor_fill(b, std::numeric_limits<float>::quiet_NaN()), CUDL_OK);
    ASSERT_EQ(cudl_tensor_fill(h, std::numeric_limits<float>::quiet_NaN()), CUDL_OK);
    for (uint16_t v : cudl_test::ReadBits16(b)) EXPECT_TRUE((v & 0x7f80) == 0x7f80 && (v & 0x7f));
    for (uint16_t v : cudl_test::ReadBits16(h)) EXPECT_TRUE((v & 0x7c00) == 0x7c00 && (v & 0x3ff));
    Destroy(b);
    Destroy(h);
  }
}

// uniform and normal are f32-only (mixed precision draws f32 master
// weights and converts): a 16-bit tensor is refused, saying so, without
// consuming random numbers or writing.
TEST_F(TensorTest, RandomInitialisersAreF32Only) {
  for (cudl_dtype dtype : {CUDL_DTYPE_F16, CUDL_DTYPE_BF16}) {
    SCOPED_TRACE(cudl_dtype_name(dtype));
    cudl_tensor *t = Make({5}, dtype);
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, 1, 10), CUDL_OK);
    EXPECT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_ERR_DTYPE);
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_uniform"));
    EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {cudl_dtype_name(dtype), "f32-only"}));
    EXPECT_EQ(cudl_tensor_normal(t, 0.0f, 1.0f), CUDL_ERR_DTYPE);
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_normal"));
    EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {cudl_dtype_name(dtype), "f32-only"}));
    EXPECT_EQ(Offset(), 10u) << "a rejected call consumed random blocks";
    EXPECT_EQ(cudl_test::ReadBits16(t), std::vector<uint16_t>(5, 0))
        << "a rejected call wrote to the tensor";
  }
  cudl_tensor *ints = Make({5}, CUDL_DTYPE_I32);
  EXPECT_EQ(cudl_tensor_fill(ints, 1.0f), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"cudl_tensor_fill", "i32"}));
  EXPECT_EQ(cudl_tensor_uniform(ints, 0.0f, 1.0f), CUDL_ERR_DTYPE);
}

// ==========================================================================
// Conversion between float dtypes
// ==========================================================================

// Raw elements as 32-bit words (f32 bits, or 16-bit ones zero-extended).
std::vector<uint32_t> ReadWords(const cudl_tensor *t) {
  if (cudl_tensor_dtype(t) != CUDL_DTYPE_F32) {
    const std::vector<uint16_t> h = cudl_test::ReadBits16(t);
    return std::vector<uint32_t>(h.begin(), h.end());
  }
  std::vector<uint32_t> out(static_cast<size_t>(cudl_tensor_numel(t)));
  EXPECT_EQ(cudl_tensor_copy_to_host(t, out.data(), out.size() * 4), CUDL_OK);
  return out;
}

cudl_status WriteWords(cudl_tensor *t, const std::vector<uint32_t> &words) {
  if (cudl_tensor_dtype(t) == CUDL_DTYPE_F32)
    return cudl_tensor_copy_from_host(t, words.data(), words.size() * 4);
  const std::vector<uint16_t> h(words.begin(), words.end());
  return cudl_tensor_copy_from_host(t, h.data(), h.size() * 2);
}

// A NaN converted to 16 bits is the canonical 0x7fff, as the GPU's
// conversion instructions give it (so both devices agree bit for bit); to
// f32 any quiet NaN (the GPU's arithmetic does not keep a NaN's sign).
bool IsConvertedNaN(cudl_dtype dtype, uint32_t bits) {
  if (dtype == CUDL_DTYPE_F32) return (bits & 0x7fc00000u) == 0x7fc00000u;
  return bits == 0x7fffu;
}

// The exact bits of conversions between every pair of float dtypes, for
// values worked out by hand: ties to even, overflow to infinity (f16 past
// 65504 + 8, bf16 past its largest finite value), f16 and bf16 subnormals,
// signed zero and infinities. A NaN (kNaN below) must come out as
// IsConvertedNaN says, whatever its sign and payload were.
TEST_F(TensorTest, ConvertGivesExactBits) {
  const uint32_t kNaN = 0xffffffffu;  // "a NaN, as IsConvertedNaN says"
  struct Case {
    cudl_dtype from, to;
    std::vector<uint32_t> in, want;
  };
  const cudl_dtype f32 = CUDL_DTYPE_F32, bf16 = CUDL_DTYPE_BF16, f16 = CUDL_DTYPE_F16;
  const std::vector<Case> cases = {
      {f32, bf16,
       {0x3f808000u,    // 1 + 2^-8: a tie, to the even 1
        0x3f818000u,    // 1 + 3 2^-8: a tie, up to even
        0x3f808001u,    // just past a tie: up
        0xbf808000u,    // -(1 + 2^-8)
        0x7f7f7fffu,    // below the tie past bf16's largest: its largest
        0x7f7f8000u,    // that tie: infinity (the largest is odd)
        0x7f7fffffu,    // FLT_MAX: infinity
        0x00000001u,    // the least f32 subnormal: 0
        0x00008000u,    // 2^-134, half bf16's least subnormal: a tie, to 0
        0x00018000u,    // a subnormal tie, up to even
        0x00010000u,    // 2^-133: exact
        0x80000000u, 0x7f800000u, 0xff800000u, 0x7fc00001u, 0xffc00000u, 0x7f800001u},
       {0x3f80u, 0x3f82u, 0x3f81u, 0xbf80u, 0x7f7fu, 0x7f80u, 0x7f80u, 0x0000u, 0x0000u, 0x0002u,
        0x0001u, 0x8000u, 0x7f80u, 0xff80u, kNaN, kNaN, kNaN}},
      {f32, f16,
       {0x3f801000u,    // 1 + 2^-11: a tie, to even
        0x3f803000u,    // 1 + 3 2^-11: a tie, up to even
        0x477fe000u,    // 65504, the largest f16
        0x477fefffu,    // just below the overflow tie: 65504
        0x477ff000u,    // 65520, the tie: infinity
        0xc77ff000u,    // -65520
        0x7f7fffffu,    // FLT_MAX
        0x33800000u,    // 2^-24, the least subnormal
        0x33000000u,    // 2^-25: a tie, to 0
        0x33000001u,    // just past it: the least subnormal
        0x33c00000u,    // 3 2^-25: a tie, up to even
        0x387fc000u,    // 1023 2^-24, the largest subnormal
        0x387fe000u,    // 1023.5 2^-24: a tie, up to the least normal
        0x322bcc77u,    // 1e-8: 0
        0x80000000u, 0xff800000u, 0x7fc00000u, 0xffc00001u},
       {0x3c00u, 0x3c02u, 0x7bffu, 0x7bffu, 0x7c00u, 0xfc00u, 0x7c00u, 0x0001u, 0x0000u, 0x0001u,
        0x0002u, 0x03ffu, 0x0400u, 0x0000u, 0x8000u, 0xfc00u, kNaN, kNaN}},
      // Widening is exact.
      {bf16, f32,
       {0x3f81u, 0x0001u, 0x8000u, 0xff80u, 0x7f7fu, 0x7fc0u},
       {0x3f810000u, 0x00010000u, 0x80000000u, 0xff800000u, 0x7f7f0000u, kNaN}},
      {f16, f32,
       {0x0001u, 0x03ffu, 0x0400u, 0x7bffu, 0xfc00u, 0x8000u, 0x3c01u, 0xfe00u},
       {0x33800000u, 0x387fc000u, 0x38800000u, 0x477fe000u, 0xff800000u, 0x80000000u,
        0x3f802000u, kNaN}},
      {bf16, f16,
       {0x4780u,    // 65536: infinity
        0x3f81u,    // 1.0078125: exact
        0x3380u,    // 2^-24: the least f16 subnormal
        0x0001u,    // 2^-133: 0
        0xff80u, 0xffc0u},
       {0x7c00u, 0x3c08u, 0x0001u, 0x0000u, 0xfc00u, kNaN}},
      {f16, bf16,
       {0x7bffu,    // 65504: 65536 in bf16
        0x3c01u,    // 1 + 2^-10: 1
        0x0001u,    // 2^-24: exact
        0x8000u, 0x7c00u, 0x7e00u},
       {0x4780u, 0x3f80u, 0x3380u, 0x8000u, 0x7f80u, kNaN}},
      // The same dtype: a copy (NaN aside).
      {f16, f16, {0x0001u, 0x7bffu, 0xfc00u, 0x3555u}, {0x0001u, 0x7bffu, 0xfc00u, 0x3555u}},
      {bf16, bf16, {0x0001u, 0x7f7fu, 0xff80u, 0x3eabu}, {0x0001u, 0x7f7fu, 0xff80u, 0x3eabu}},
      {f32, f32, {0x00000001u, 0x7f7fffffu, 0x3eaaaaabu}, {0x00000001u, 0x7f7fffffu, 0x3eaaaaabu}},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(cudl_dtype_name(c.from)) + " to " + cudl_dtype_name(c.to));
    ASSERT_EQ(c.in.size(), c.want.size());
    const int64_t n = static_cast<int64_t>(c.in.size());
    cudl_tensor *src = Make({n}, c.from), *dst = Make({n}, c.to);
    ASSERT_EQ(WriteWords(src, c.in), CUDL_OK);
    ASSERT_EQ(cudl_tensor_convert(dst, src), CUDL_OK) << cudl_context_last_error(ctx_);
    const std::vector<uint32_t> got = ReadWords(dst);
    for (size_t i = 0; i < got.size(); ++i) {
      if (c.want[i] == kNaN)
        EXPECT_TRUE(IsConvertedNaN(c.to, got[i]))
            << "element " << i << ": 0x" << std::hex << got[i];
      else
        EXPECT_EQ(got[i], c.want[i]) << "element " << i << std::hex << ": 0x" << c.in[i];
    }
    EXPECT_EQ(ReadWords(src), c.in) << "the source changed";
  }
}

// Converting a tensor into itself leaves it as it was.
TEST_F(TensorTest, ConvertInPlaceIsTheIdentity) {
  for (cudl_dtype dtype : kAllDtypes) {
    cudl_tensor *t = Make({3}, dtype);
    const std::vector<uint32_t> words =
        dtype == CUDL_DTYPE_F32 ? std::vector<uint32_t>{0x3f800001u, 0x00000003u, 0xff800000u}
                                : std::vector<uint32_t>{0x3c01u, 0x0003u, 0xfc00u};
    ASSERT_EQ(WriteWords(t, words), CUDL_OK);
    EXPECT_EQ(cudl_tensor_convert(t, t), CUDL_OK) << cudl_context_last_error(ctx_);
    EXPECT_EQ(ReadWords(t), words) << cudl_dtype_name(dtype);
  }
}

// Bad input: the documented status, a message naming what is wrong, dst
// unchanged, and the context still usable.
TEST_F(TensorTest, ConvertRejectsBadInput) {
  cudl_context *other = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &other), CUDL_OK);
  cudl_tensor *src = Make({2, 3}), *dst = Make({2, 3}, CUDL_DTYPE_BF16);
  cudl_tensor *ints = Make({2, 3}, CUDL_DTYPE_I32), *wide = Make({3, 2}, CUDL_DTYPE_F16);
  cudl_tensor *foreign = Make({2, 3}, CUDL_DTYPE_F32, other);
  cudl_tensor *whole = Make({4}), *head = nullptr, *tail = nullptr;
  ASSERT_EQ(WriteF32(src, {1, 2, 3, 4, 5, 6}), CUDL_OK);
  ASSERT_EQ(WriteF32(whole, {1, 2, 3, 4}), CUDL_OK);
  ASSERT_EQ(cudl_tensor_narrow(whole, 0, 3, &head), CUDL_OK);
  owned_.push_back(head);
  ASSERT_EQ(cudl_tensor_narrow(whole, 1, 3, &tail), CUDL_OK);
  owned_.push_back(tail);
  ASSERT_EQ(cudl_tensor_fill(dst, 7.0f), CUDL_OK);
  const std::vector<uint16_t> dst_bits = cudl_test::ReadBits16(dst);

  EXPECT_EQ(cudl_tensor_convert(nullptr, src), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_tensor_convert(dst, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"cudl_tensor_convert", "src"}));
  EXPECT_EQ(cudl_tensor_convert(dst, ints), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"i32", "bf16"}));
  EXPECT_EQ(cudl_tensor_convert(ints, src), CUDL_ERR_DTYPE);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"f32", "i32"}));
  EXPECT_EQ(cudl_tensor_convert(wide, src), CUDL_ERR_SHAPE) << "same count, other shape";
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"shape"}));
  EXPECT_EQ(cudl_tensor_convert(dst, foreign), CUDL_ERR_DEVICE_MISMATCH);
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"context", "cudl_tensor_copy"}));
  EXPECT_EQ(cudl_tensor_convert(tail, head), CUDL_ERR_INVALID_ARGUMENT)
      << "overlapping views of one storage";
  EXPECT_TRUE(cudl_test::ErrorMentions(ctx_, {"overlap"}));
  EXPECT_EQ(cudl_test::ReadBits16(dst), dst_bits) << "dst was written";
  EXPECT_TRUE(BitEqual(ReadF32(whole), {1, 2, 3, 4})) << "an overlapping view was written";
  EXPECT_EQ(cudl_tensor_convert(dst, src), CUDL_OK);
  EXPECT_EQ(cudl_test::ReadBits16(dst),
            (std::vector<uint16_t>{0x3f80, 0x4000, 0x4040, 0x4080, 0x40a0, 0x40c0}));
  cudl_test::DestroyTensorsOf(other, &owned_);
  cudl_context_destroy(other);
}

// ==========================================================================
// Uniform
// ==========================================================================

struct RandomCase {
  std::vector<int64_t> shape;
  uint64_t seed;
  uint64_t offset;
  float a, b;  // [low, high) or (mean, stddev)
};

int64_t Numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

uint64_t Blocks(int64_t n) { return (static_cast<uint64_t>(n) + 3u) / 4u; }

// Shapes that catch indexing bugs: 1, primes, non-multiples of 4, a 2-d
// prime shape, sizes either side of the CPU backend's OpenMP thresholds
// (16384 for normal, 65536 for uniform), offsets with both 32-bit halves
// in use, and a stream that crosses 2^32 blocks inside one tensor (a
// 32-bit counter would repeat blocks there).
const RandomCase kRandomCases[] = {
    {{1}, 0, 0, 0.0f, 1.0f},
    {{3}, 1, 0, -1.0f, 1.0f},
    {{5}, 42, 7, -2.5f, 0.5f},
    {{1021}, 0xdeadbeefcafef00dull, 123456789, -3.0f, 5.0f},
    {{7, 13}, 0x0123456789abcdefull, 0x0000000500000003ull, 10.0f, 10.5f},
    {{7 * 13 * 4 + 1}, 7, 1, -1e-3f, 1e-3f},
    {{2, 3, 5, 7, 11}, 99, 0, 0.0f, 1.0f},
    {{16385}, 5, 3, 0.0f, 2.0f},
    {{65537}, 6, 0, -4.0f, 4.0f},
    {{4099}, 0xffffffffffffffffull, 0xfffffffeull, 0.0f, 1.0f},  // crosses 2^32
    {{17}, 3, 0xfffffffffffffffeull, 0.0f, 1.0f},  // the 64-bit counter wraps
};

class UniformTest : public TensorTest {};

TEST_F(UniformTest, MatchesReferenceBitForBit) {
  for (const RandomCase &c : kRandomCases) {
    const int64_t n = Numel(c.shape);
    SCOPED_TRACE("n " + std::to_string(n) + " seed " + std::to_string(c.seed) + " offset " +
                 std::to_string(c.offset));
    cudl_tensor *t = Make(c.shape);
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, c.seed, c.offset), CUDL_OK);
    ASSERT_EQ(cudl_tensor_uniform(t, c.a, c.b), CUDL_OK);
    const std::vector<float> got = ReadF32(t);
    EXPECT_TRUE(BitEqual(got, ReferenceUniform(n, c.seed, c.offset, c.a, c.b)));
    for (size_t i = 0; i < got.size(); ++i) {
      ASSERT_GE(got[i], c.a) << i;
      ASSERT_LT(got[i], c.b) << i;
    }
    EXPECT_EQ(Offset(), c.offset + Blocks(n)) << "the offset advances by ceil(n / 4)";
    Destroy(t);
  }
}

TEST_F(UniformTest, LargeTensorMatchesReference) {
  // 2^24 + 3 elements: past every threshold and not a multiple of 4.
  const int64_t n = (int64_t{1} << 24) + 3;
  cudl_tensor *t = Make({n});
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 0x5eed, 1000), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, -1.0f, 1.0f), CUDL_OK);
  const std::vector<float> got = ReadF32(t);
  EXPECT_TRUE(BitEqual(got, ReferenceUniform(n, 0x5eed, 1000, -1.0f, 1.0f)));
  EXPECT_EQ(Offset(), 1000u + Blocks(n));
  const float lo = *std::min_element(got.begin(), got.end());
  const float hi = *std::max_element(got.begin(), got.end());
  EXPECT_GE(lo, -1.0f);
  EXPECT_LT(hi, 1.0f);
}

TEST_F(UniformTest, OffsetAdvancesByBlocksPerCall) {
  for (int64_t n : {int64_t{1}, int64_t{2}, int64_t{3}, int64_t{4}, int64_t{5}, int64_t{8},
                    int64_t{9}, int64_t{1021}}) {
    cudl_tensor *t = Make({n});
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, 11, 100), CUDL_OK);
    ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
    EXPECT_EQ(Offset(), 100u + Blocks(n)) << "uniform n " << n;
    ASSERT_EQ(cudl_tensor_normal(t, 0.0f, 1.0f), CUDL_OK);
    EXPECT_EQ(Offset(), 100u + 2 * Blocks(n)) << "normal n " << n;
    Destroy(t);
  }
}

TEST_F(UniformTest, SameStateSameNumbersOtherStateOtherNumbers) {
  const int64_t n = 1021;
  cudl_tensor *t = Make({n});
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 77, 5), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  const std::vector<float> first = ReadF32(t);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 77, 5), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t), first)) << "same seed and offset must repeat";

  // Another offset, another seed: independent numbers. Two independent
  // 24-bit values coincide with probability 2^-24, so even 5 equal
  // elements out of 1021 would point at shared blocks.
  auto equal_count = [&](const std::vector<float> &other) {
    size_t same = 0;
    for (size_t i = 0; i < first.size(); ++i) same += first[i] == other[i];
    return same;
  };
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 77, 6), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  EXPECT_LT(equal_count(ReadF32(t)), 5u) << "offset 6 vs 5";
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 78, 5), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  EXPECT_LT(equal_count(ReadF32(t)), 5u) << "seed 78 vs 77";
  // Seeds differing only in the high 32 bits differ too.
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 77 + (uint64_t{1} << 32), 5), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  EXPECT_LT(equal_count(ReadF32(t)), 5u) << "seed high word ignored";
}

TEST_F(UniformTest, ConsecutiveCallsContinueTheStream) {
  // Two calls of 5 elements use blocks 0-1 and 2-3: the second tensor is
  // the reference at offset 2, not a repeat of the first.
  cudl_tensor *a = Make({5});
  cudl_tensor *b = Make({5});
  ASSERT_EQ(cudl_context_set_seed(ctx_, 31337), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(a, 0.0f, 1.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(b, 0.0f, 1.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(a), ReferenceUniform(5, 31337, 0, 0.0f, 1.0f)));
  EXPECT_TRUE(BitEqual(ReadF32(b), ReferenceUniform(5, 31337, 2, 0.0f, 1.0f)));
  // A block-aligned split equals one call: 8 = 4 + 4.
  cudl_tensor *whole = Make({8});
  cudl_tensor *h1 = Make({4});
  cudl_tensor *h2 = Make({4});
  ASSERT_EQ(cudl_context_set_seed(ctx_, 4), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(whole, 0.0f, 1.0f), CUDL_OK);
  ASSERT_EQ(cudl_context_set_seed(ctx_, 4), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(h1, 0.0f, 1.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(h2, 0.0f, 1.0f), CUDL_OK);
  std::vector<float> joined = ReadF32(h1);
  const std::vector<float> second = ReadF32(h2);
  joined.insert(joined.end(), second.begin(), second.end());
  EXPECT_TRUE(BitEqual(joined, ReadF32(whole)));
}

TEST_F(UniformTest, ShapeDoesNotMatterOnlyElementOrder) {
  cudl_tensor *flat = Make({91});
  cudl_tensor *grid = Make({7, 13});
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 3, 3), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(flat, 0.0f, 1.0f), CUDL_OK);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 3, 3), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(grid, 0.0f, 1.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(grid), ReadF32(flat)));
}

TEST_F(UniformTest, Statistics) {
  // n = 2^20 draws of U[0, 1): mean 1/2, variance 1/12. The sample mean
  // has standard error sqrt(1/12 / n) = 2.8e-4; allow 5 of them. The
  // sample variance of U[0,1) has standard error sqrt((1/80 - 1/144) / n)
  // = 7.3e-5; allow 5. Each of 16 equal bins expects n/16 = 65536 hits
  // with standard deviation sqrt(n * 1/16 * 15/16) = 248; allow 5 sigma.
  const int64_t n = int64_t{1} << 20;
  cudl_tensor *t = Make({n});
  ASSERT_EQ(cudl_context_set_seed(ctx_, 12345), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  const std::vector<float> v = ReadF32(t);
  double sum = 0, sum2 = 0;
  std::vector<int64_t> bins(16, 0);
  for (float x : v) {
    sum += x;
    sum2 += static_cast<double>(x) * x;
    ++bins[static_cast<size_t>(std::min(15, static_cast<int>(x * 16.0f)))];
  }
  const double mean = sum / static_cast<double>(n);
  const double var = sum2 / static_cast<double>(n) - mean * mean;
  const double nn = static_cast<double>(n);
  EXPECT_LT(std::fabs(mean - 0.5), 5 * std::sqrt(1.0 / 12.0 / nn)) << mean;
  EXPECT_LT(std::fabs(var - 1.0 / 12.0), 5 * std::sqrt((1.0 / 80.0 - 1.0 / 144.0) / nn)) << var;
  const double bin_sd = std::sqrt(nn / 16.0 * 15.0 / 16.0);
  for (size_t i = 0; i < bins.size(); ++i)
    EXPECT_LT(std::fabs(static_cast<double>(bins[i]) - nn / 16.0), 5 * bin_sd) << "bin " << i;
}

TEST_F(UniformTest, NeverReturnsHigh) {
  // On [1, 2) only the top 24-bit value rounds up to high (once in 2^24
  // draws; test_philox.cpp checks that word directly). A range one ulp
  // wide makes every draw with u > 1/2 round up to high, so about half of
  // these 4096 must be moved below it - which leaves only low.
  const int64_t n = 4096;
  cudl_tensor *t = Make({n});
  const float lo = 1.0f, hi = std::nextafter(1.0f, 2.0f);
  ASSERT_EQ(cudl_tensor_uniform(t, lo, hi), CUDL_OK);
  for (float x : ReadF32(t)) {
    ASSERT_EQ(x, lo) << "a one-ulp range can only give low";
  }
  // A range of large magnitude where high - low is not exact.
  ASSERT_EQ(cudl_tensor_uniform(t, -1e-30f, 1e8f), CUDL_OK);
  for (float x : ReadF32(t)) {
    ASSERT_GE(x, -1e-30f);
    ASSERT_LT(x, 1e8f);
  }
}

TEST_F(UniformTest, EmptyRangeGivesLowAndAdvances) {
  cudl_tensor *t = Make({9});
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 1, 0), CUDL_OK);
  ASSERT_EQ(cudl_tensor_uniform(t, -0.75f, -0.75f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(9, -0.75f)));
  EXPECT_EQ(Offset(), 3u) << "every random call advances the offset";
}

TEST_F(UniformTest, InvalidBoundsLeaveEverythingUnchanged) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float bad[][2] = {{nan, 1.0f}, {0.0f, nan}, {nan, nan}, {-inf, 0.0f},
                          {0.0f, inf}, {inf, inf}, {-inf, inf}, {1.0f, 0.0f},
                          {1.0f, std::nextafter(1.0f, 0.0f)},
                          // finite bounds whose difference overflows
                          {-FLT_MAX, FLT_MAX}};
  cudl_tensor *t = Make({7});
  ASSERT_EQ(cudl_tensor_fill(t, 42.0f), CUDL_OK);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 9, 21), CUDL_OK);
  for (const auto &b : bad) {
    SCOPED_TRACE("[" + std::to_string(b[0]) + ", " + std::to_string(b[1]) + ")");
    EXPECT_EQ(cudl_tensor_uniform(t, b[0], b[1]), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_uniform"));
    EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(7, 42.0f)));
    EXPECT_EQ(Offset(), 21u);
  }
}

// ==========================================================================
// Normal
// ==========================================================================

class NormalTest : public TensorTest {};

TEST_F(NormalTest, MatchesReferenceBitForBit) {
  // The reference is the documented double-precision Box-Muller; the test
  // and the library call the same libm, so the results must be identical.
  const float params[][2] = {{0.0f, 1.0f}, {3.0f, 0.5f}, {-2.0f, 10.0f}, {1000.0f, 1e-3f}};
  size_t k = 0;
  for (const RandomCase &c : kRandomCases) {
    const float mean = params[k % 4][0], stddev = params[k % 4][1];
    ++k;
    const int64_t n = Numel(c.shape);
    SCOPED_TRACE("n " + std::to_string(n) + " seed " + std::to_string(c.seed) + " offset " +
                 std::to_string(c.offset) + " mean " + std::to_string(mean));
    cudl_tensor *t = Make(c.shape);
    ASSERT_EQ(cudl_context_set_rng_state(ctx_, c.seed, c.offset), CUDL_OK);
    ASSERT_EQ(cudl_tensor_normal(t, mean, stddev), CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(t), ReferenceNormal(n, c.seed, c.offset, mean, stddev)));
    EXPECT_EQ(Offset(), c.offset + Blocks(n));
    Destroy(t);
  }
}

// Mean, variance, the share within one standard deviation, and the
// correlation of the two members of each Box-Muller pair, on n = 2^20
// draws, each held to 5 standard errors:
//   mean:      sigma / sqrt(n)
//   variance:  sigma^2 sqrt(2 / n)            (normal fourth moment)
//   |z| < 1:   sqrt(p (1 - p) / n), p = 0.682689
//   pair corr: 1 / sqrt(n / 2)                 (n/2 independent pairs)
// The 24-bit u1 caps |z| at 5.77, which removes a tail of mass 8e-9 and
// moves none of these by a measurable amount.
void CheckNormalStatistics(const std::vector<float> &v, double mean, double sd) {
  const double n = static_cast<double>(v.size());
  double sum = 0, sum2 = 0, within = 0, pair_sum = 0;
  for (size_t i = 0; i < v.size(); ++i) {
    const double z = (static_cast<double>(v[i]) - mean) / sd;
    sum += z;
    sum2 += z * z;
    within += std::fabs(z) < 1.0 ? 1.0 : 0.0;
    if (i % 2 == 0 && i + 1 < v.size())
      pair_sum += z * ((static_cast<double>(v[i + 1]) - mean) / sd);
  }
  const double m = sum / n;
  const double var = sum2 / n - m * m;
  const double p = 0.682689492137;
  EXPECT_LT(std::fabs(m), 5.0 / std::sqrt(n)) << "standardised mean " << m;
  EXPECT_LT(std::fabs(var - 1.0), 5.0 * std::sqrt(2.0 / n)) << "standardised variance " << var;
  EXPECT_LT(std::fabs(within / n - p), 5.0 * std::sqrt(p * (1 - p) / n)) << within / n;
  EXPECT_LT(std::fabs(pair_sum / (n / 2)), 5.0 / std::sqrt(n / 2)) << "pair correlation";
}

TEST_F(NormalTest, StatisticsStandard) {
  const int64_t n = int64_t{1} << 20;
  cudl_tensor *t = Make({n});
  ASSERT_EQ(cudl_context_set_seed(ctx_, 2718), CUDL_OK);
  ASSERT_EQ(cudl_tensor_normal(t, 0.0f, 1.0f), CUDL_OK);
  const std::vector<float> v = ReadF32(t);
  CheckNormalStatistics(v, 0.0, 1.0);
  EXPECT_TRUE(BitEqual(v, ReferenceNormal(n, 2718, 0, 0.0f, 1.0f)));
}

TEST_F(NormalTest, StatisticsShifted) {
  const int64_t n = int64_t{1} << 20;
  cudl_tensor *t = Make({n});
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 1618, 99), CUDL_OK);
  ASSERT_EQ(cudl_tensor_normal(t, 3.0f, 2.0f), CUDL_OK);
  CheckNormalStatistics(ReadF32(t), 3.0, 2.0);
}

TEST_F(NormalTest, ZeroStddevGivesTheMean) {
  cudl_tensor *t = Make({13});
  ASSERT_EQ(cudl_tensor_normal(t, -1.25f, 0.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(13, -1.25f)));
  // -0.0 satisfies stddev >= 0.
  ASSERT_EQ(cudl_tensor_normal(t, 2.5f, -0.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(13, 2.5f)));
}

TEST_F(NormalTest, SameStateSameNumbers) {
  cudl_tensor *t = Make({1021});
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 8, 8), CUDL_OK);
  ASSERT_EQ(cudl_tensor_normal(t, 0.0f, 1.0f), CUDL_OK);
  const std::vector<float> first = ReadF32(t);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 8, 8), CUDL_OK);
  ASSERT_EQ(cudl_tensor_normal(t, 0.0f, 1.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t), first));
  ASSERT_EQ(cudl_tensor_normal(t, 0.0f, 1.0f), CUDL_OK);  // offset moved on
  size_t same = 0;
  const std::vector<float> next = ReadF32(t);
  for (size_t i = 0; i < next.size(); ++i) same += next[i] == first[i];
  EXPECT_LT(same, 5u);
}

TEST_F(NormalTest, InvalidParametersLeaveEverythingUnchanged) {
  const float inf = std::numeric_limits<float>::infinity();
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const float bad[][2] = {{nan, 1.0f}, {inf, 1.0f},  {-inf, 1.0f}, {0.0f, -1.0f},
                          {0.0f, -FLT_TRUE_MIN},     {0.0f, nan},  {0.0f, inf},
                          {nan, nan}};
  cudl_tensor *t = Make({7});
  ASSERT_EQ(cudl_tensor_fill(t, 42.0f), CUDL_OK);
  ASSERT_EQ(cudl_context_set_rng_state(ctx_, 9, 21), CUDL_OK);
  for (const auto &b : bad) {
    SCOPED_TRACE("mean " + std::to_string(b[0]) + " stddev " + std::to_string(b[1]));
    EXPECT_EQ(cudl_tensor_normal(t, b[0], b[1]), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_normal"));
    EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(7, 42.0f)));
    EXPECT_EQ(Offset(), 21u);
  }
}

// ==========================================================================
// Allocator hooks
// ==========================================================================

TEST_F(TensorTest, CountingAllocatorSeesEveryAllocation) {
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  cudl_tensor *a = nullptr, *b = nullptr, *s = nullptr;
  const int64_t shape_a[] = {7, 13};
  const int64_t shape_b[] = {5};
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 2, shape_a, &a), CUDL_OK);
  EXPECT_EQ(counting.allocs, 3u)
      << "the object, the storage object and the data";
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F16, 1, shape_b, &b), CUDL_OK);
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 0, nullptr, &s), CUDL_OK);
  EXPECT_EQ(counting.allocs, 9u);
  EXPECT_EQ(counting.live.size(), 9u);

  // The storage requests: exactly nbytes, aligned to at least a cache line.
  size_t storage_seen = 0;
  for (const auto &r : counting.requests) {
    if (r.first == 7 * 13 * 4 || r.first == 10 || r.first == 4) {
      ++storage_seen;
      EXPECT_GE(r.second, 64u) << "storage of " << r.first << " bytes";
    }
  }
  EXPECT_GE(storage_seen, 3u);
  EXPECT_EQ(reinterpret_cast<uintptr_t>(cudl_tensor_data(a)) % 64u, 0u);
  // The storage pointers are blocks this allocator handed out.
  EXPECT_EQ(counting.live.count(cudl_tensor_data(a)), 1u);
  EXPECT_EQ(counting.live.count(cudl_tensor_data(b)), 1u);

  cudl_tensor_destroy(a);
  cudl_tensor_destroy(b);
  cudl_tensor_destroy(s);
  EXPECT_EQ(counting.frees, counting.allocs);
  EXPECT_TRUE(counting.live.empty());
  EXPECT_EQ(counting.size_mismatches, 0u) << "free must receive the requested size";
  EXPECT_EQ(counting.unknown_frees, 0u);
  EXPECT_EQ(counting.bad_alignments, 0u) << "alignment must be a power of two <= 4096";
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
}

TEST_F(TensorTest, FailingAllocatorGivesOutOfMemoryAndLeaksNothing) {
  // A non-empty tensor allocates the object, the storage object and the
  // data, in that order: fail each in turn.
  for (size_t k : {size_t{1}, size_t{2}, size_t{3}}) {
    SCOPED_TRACE("failing allocation " + std::to_string(k));
    CountingAllocator counting;
    counting.fail_at = k;
    const cudl_allocator hooks = counting.hooks();
    ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
    const int64_t shape[] = {7, 13};
    cudl_tensor *t = SentinelTensor();
    EXPECT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 2, shape, &t), CUDL_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(t, nullptr) << "*out must be NULL on failure";
    EXPECT_EQ(counting.failed, 1u) << "the failure was not reached";
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "allocate"));
    EXPECT_EQ(counting.frees, counting.allocs) << "leaked on the failure path";
    EXPECT_TRUE(counting.live.empty());
    EXPECT_EQ(counting.unknown_frees, 0u);
    // The next allocations succeed again, and the context works.
    cudl_tensor *u = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 2, shape, &u), CUDL_OK);
    EXPECT_EQ(cudl_tensor_fill(u, 1.0f), CUDL_OK);
    cudl_tensor_destroy(u);
    EXPECT_TRUE(counting.live.empty());
    ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  }
}

TEST_F(TensorTest, TensorIsFreedThroughTheAllocatorItCameFrom) {
  CountingAllocator first, second;
  const cudl_allocator hooks1 = first.hooks(), hooks2 = second.hooks();
  const int64_t shape[] = {33};
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks1), CUDL_OK);
  cudl_tensor *a = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &a), CUDL_OK);
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks2), CUDL_OK);
  cudl_tensor *b = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &b), CUDL_OK);
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  cudl_tensor *c = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &c), CUDL_OK);
  EXPECT_EQ(first.allocs, 3u);
  EXPECT_EQ(second.allocs, 3u);

  cudl_tensor_destroy(a);
  EXPECT_EQ(first.frees, 3u) << "a must go back to the first allocator";
  EXPECT_EQ(second.frees, 0u);
  cudl_tensor_destroy(b);
  EXPECT_EQ(second.frees, 3u) << "b must go back to the second allocator";
  cudl_tensor_destroy(c);  // default allocator: neither counter moves
  EXPECT_EQ(first.frees, 3u);
  EXPECT_EQ(second.frees, 3u);
  EXPECT_EQ(first.unknown_frees + second.unknown_frees, 0u);
  EXPECT_EQ(first.size_mismatches + second.size_mismatches, 0u);
  EXPECT_TRUE(first.live.empty());
  EXPECT_TRUE(second.live.empty());
}


// ==========================================================================
// Views: cudl_tensor_reshape and cudl_tensor_flatten
// ==========================================================================

// 0, 1, 2, ... as floats (exact up to 2^24).
std::vector<float> ViewIota(int64_t n, float start = 0.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (size_t i = 0; i < v.size(); ++i) v[i] = start + static_cast<float>(i);
  return v;
}

std::vector<int64_t> ShapeOf(const cudl_tensor *t) {
  const int64_t *s = cudl_tensor_shape(t);
  return std::vector<int64_t>(s, s + cudl_tensor_ndim(t));
}

class ViewTest : public TensorTest {
 protected:
  // A view destroyed in TearDown; NULL and a test failure on error.
  cudl_tensor *Reshape(cudl_tensor *src, const std::vector<int64_t> &shape) {
    cudl_tensor *v = SentinelTensor();
    const cudl_status s = cudl_tensor_reshape(src, static_cast<int>(shape.size()),
                                              shape.empty() ? nullptr : shape.data(), &v);
    EXPECT_EQ(s, CUDL_OK) << cudl_status_name(s) << ": " << cudl_context_last_error(ctx_);
    if (s != CUDL_OK) return nullptr;
    owned_.push_back(v);
    return v;
  }
  cudl_tensor *Flatten(cudl_tensor *src, int start, int end) {
    cudl_tensor *v = SentinelTensor();
    const cudl_status s = cudl_tensor_flatten(src, start, end, &v);
    EXPECT_EQ(s, CUDL_OK) << cudl_status_name(s) << ": " << cudl_context_last_error(ctx_);
    if (s != CUDL_OK) return nullptr;
    owned_.push_back(v);
    return v;
  }
  // Everything a view must share with its source, and its own shape.
  void ExpectViewOf(cudl_tensor *v, cudl_tensor *src, const std::vector<int64_t> &shape) {
    ASSERT_NE(v, nullptr);
    EXPECT_NE(v, src) << "a view is a new handle";
    EXPECT_EQ(ShapeOf(v), shape);
    EXPECT_EQ(cudl_tensor_numel(v), cudl_tensor_numel(src));
    EXPECT_EQ(cudl_tensor_nbytes(v), cudl_tensor_nbytes(src));
    EXPECT_EQ(cudl_tensor_dtype(v), cudl_tensor_dtype(src));
    EXPECT_EQ(cudl_tensor_context(v), cudl_tensor_context(src));
    EXPECT_EQ(cudl_tensor_device(v), cudl_tensor_device(src));
    EXPECT_EQ(cudl_tensor_data(v), cudl_tensor_data(src)) << "nothing is copied";
  }
};

TEST_F(ViewTest, ReshapeSharesDataBothWays) {
  cudl_tensor *t = Make({2, 3, 4});
  ASSERT_EQ(WriteF32(t, ViewIota(24)), CUDL_OK);
  cudl_tensor *v = Reshape(t, {4, 6});
  ExpectViewOf(v, t, {4, 6});
  EXPECT_TRUE(BitEqual(ReadF32(v), ViewIota(24))) << "the same elements, in the same order";
  // Write through the view, read through the original...
  ASSERT_EQ(WriteF32(v, ViewIota(24, 100.0f)), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t), ViewIota(24, 100.0f)));
  ASSERT_EQ(cudl_tensor_fill(v, -2.5f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(t), std::vector<float>(24, -2.5f)));
  // ...and the other way round.
  ASSERT_EQ(WriteF32(t, ViewIota(24, -50.0f)), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(v), ViewIota(24, -50.0f)));
  ASSERT_EQ(cudl_tensor_uniform(t, 0.0f, 1.0f), CUDL_OK);
  EXPECT_TRUE(BitEqual(ReadF32(v), ReadF32(t)));
  // Through the raw pointer too.
  static_cast<float *>(cudl_tensor_data(v))[23] = 42.0f;
  EXPECT_EQ(ReadF32(t)[23], 42.0f);
  // The source is not changed by making a view.
  EXPECT_EQ(ShapeOf(t), (std::vector<int64_t>{2, 3, 4}));
}

TEST_F(ViewTest, ReshapeToEveryRankAndBack) {
  cudl_tensor *t = Make({2, 3, 4});
  ASSERT_EQ(WriteF32(t, ViewIota(24)), CUDL_OK);
  for (const std::vector<int64_t> &shape :
       {std::vector<int64_t>{24}, {2, 12}, {2, 3, 4}, {1, 2, 1, 12}, {2, 1, 3, 1, 4}}) {
    SCOPED_TRACE("rank " + std::to_string(shape.size()));
    cudl_tensor *v = Reshape(t, shape);
    ExpectViewOf(v, t, shape);
    EXPECT_TRUE(BitEqual(ReadF32(v), ViewIota(24)));
  }
  // A one-element tensor to a scalar (ndim 0, shape may be NULL) and back.
  cudl_tensor *one = Make({1, 1});
  ASSERT_EQ(WriteF32(one, {7.0f}), CUDL_OK);
  cudl_tensor *scalar = SentinelTensor();
  ASSERT_EQ(cudl_tensor_reshape(one, 0, nullptr, &scalar), CUDL_OK);
  owned_.push_back(scalar);
  ExpectViewOf(scalar, one, {});
  EXPECT_EQ(cudl_tensor_ndim(scalar), 0);
  EXPECT_TRUE(BitEqual(ReadF32(scalar), {7.0f}));
  ExpectViewOf(Reshape(scalar, {1, 1, 1}), one, {1, 1, 1});
  ExpectViewOf(Reshape(scalar, {-1}), one, {1});
}

TEST_F(ViewTest, ReshapeInfersOneDimension) {
  cudl_tensor *t = Make({2, 3, 4});
  ExpectViewOf(Reshape(t, {-1}), t, {24});
  ExpectViewOf(Reshape(t, {-1, 4}), t, {6, 4});
  ExpectViewOf(Reshape(t, {2, -1}), t, {2, 12});
  ExpectViewOf(Reshape(t, {3, -1, 2}), t, {3, 4, 2});
  ExpectViewOf(Reshape(t, {1, 1, 1, 1, -1}), t, {1, 1, 1, 1, 24});
  ExpectViewOf(Reshape(t, {-1, 24}), t, {1, 24});
  cudl_tensor *empty = Make({0, 3});
  ExpectViewOf(Reshape(empty, {-1, 3}), empty, {0, 3});  // 0 / 3 = 0 rows
  ExpectViewOf(Reshape(empty, {-1}), empty, {0});
  ExpectViewOf(Reshape(empty, {3, -1}), empty, {3, 0});
}

TEST_F(ViewTest, ReshapeRejectsBadShapes) {
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  cudl_tensor *t = Make({2, 3, 4});  // before the counting allocator
  cudl_tensor *empty = Make({0, 3}), *one = Make({1});
  ASSERT_EQ(WriteF32(t, ViewIota(24)), CUDL_OK);
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  const int64_t big = int64_t{1} << 62;
  struct Bad {
    const char *what;
    cudl_tensor *src;
    std::vector<int64_t> shape;
    cudl_status want;
    const char *says;  // part of the message
  };
  const Bad cases[] = {
      {"two -1", t, {-1, -1}, CUDL_ERR_SHAPE, "inferred"},
      {"two -1 among others", t, {2, -1, 3, -1}, CUDL_ERR_SHAPE, "inferred"},
      {"fewer elements", t, {5, 4}, CUDL_ERR_SHAPE, "elements"},
      {"more elements", t, {5, 5}, CUDL_ERR_SHAPE, "elements"},
      {"zero elements", t, {0, 24}, CUDL_ERR_SHAPE, "elements"},
      {"-1 does not divide", t, {-1, 5}, CUDL_ERR_SHAPE, "infer"},
      {"-1 with a 0", t, {-1, 0}, CUDL_ERR_SHAPE, "infer"},
      {"-1 with a 0, empty source", empty, {-1, 0}, CUDL_ERR_SHAPE, "infer"},
      {"-1 with a 0 first", empty, {0, -1}, CUDL_ERR_SHAPE, "infer"},
      {"negative dimension", t, {-2, -12}, CUDL_ERR_SHAPE, "negative"},
      {"negative with -1", t, {-1, -24}, CUDL_ERR_SHAPE, "negative"},
      {"INT64_MIN", t, {INT64_MIN}, CUDL_ERR_SHAPE, "negative"},
      {"overflowing count", t, {big, big}, CUDL_ERR_SHAPE, "overflow"},
      {"overflowing count with -1", t, {big, big, -1}, CUDL_ERR_SHAPE, "overflow"},
      {"empty source, non-empty shape", empty, {3}, CUDL_ERR_SHAPE, "elements"},
      {"one element to none", one, {0}, CUDL_ERR_SHAPE, "elements"},
  };
  for (const Bad &c : cases) {
    SCOPED_TRACE(c.what);
    cudl_tensor *v = SentinelTensor();
    EXPECT_EQ(cudl_tensor_reshape(c.src, static_cast<int>(c.shape.size()), c.shape.data(), &v),
              c.want);
    EXPECT_EQ(v, nullptr) << "*out must be NULL on failure";
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_reshape"));
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), c.says));
  }
  const int64_t six[] = {2, 2, 2, 3, 1, 1};
  for (int ndim : {-1, 6, INT_MAX, INT_MIN}) {
    SCOPED_TRACE("ndim " + std::to_string(ndim));
    cudl_tensor *v = SentinelTensor();
    EXPECT_EQ(cudl_tensor_reshape(t, ndim, six, &v), CUDL_ERR_SHAPE);
    EXPECT_EQ(v, nullptr);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "ndim"));
  }
  // NULL arguments.
  cudl_tensor *v = SentinelTensor();
  const int64_t shape[] = {4, 6};
  EXPECT_EQ(cudl_tensor_reshape(nullptr, 2, shape, &v), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(v, nullptr);
  v = SentinelTensor();
  EXPECT_EQ(cudl_tensor_reshape(t, 2, nullptr, &v), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(v, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "shape"));
  EXPECT_EQ(cudl_tensor_reshape(t, 2, shape, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "out"));

  // Nothing was allocated, and the source is untouched and usable.
  EXPECT_EQ(counting.allocs + counting.failed, 0u);
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  EXPECT_EQ(ShapeOf(t), (std::vector<int64_t>{2, 3, 4}));
  EXPECT_TRUE(BitEqual(ReadF32(t), ViewIota(24)));
  ExpectViewOf(Reshape(t, {4, 6}), t, {4, 6});
}

TEST_F(ViewTest, FlattenMergesAxes) {
  cudl_tensor *t = Make({2, 3, 4, 5});  // [N, C, H, W]
  ASSERT_EQ(WriteF32(t, ViewIota(120)), CUDL_OK);
  struct Case {
    int start, end;
    std::vector<int64_t> shape;
  };
  const Case cases[] = {
      {1, -1, {2, 60}},         // [N, C*H*W]: the classifier head's input
      {1, 3, {2, 60}},          // the same with positive axes
      {0, -1, {120}},           // everything
      {-4, -1, {120}},          //
      {0, 1, {6, 4, 5}},        // leading
      {2, 3, {2, 3, 20}},       // trailing
      {-3, -2, {2, 12, 5}},     // middle
      {2, 2, {2, 3, 4, 5}},     // one axis: the same shape, still a view
      {-1, -1, {2, 3, 4, 5}},   //
      {0, 0, {2, 3, 4, 5}},     //
      {3, -1, {2, 3, 4, 5}},    //
  };
  for (const Case &c : cases) {
    SCOPED_TRACE("flatten " + std::to_string(c.start) + ".." + std::to_string(c.end));
    cudl_tensor *v = Flatten(t, c.start, c.end);
    ExpectViewOf(v, t, c.shape);
    EXPECT_TRUE(BitEqual(ReadF32(v), ViewIota(120)));
  }
  // 1-D and empty tensors.
  cudl_tensor *line = Make({7});
  ExpectViewOf(Flatten(line, 0, -1), line, {7});
  cudl_tensor *empty = Make({2, 0, 3});
  ExpectViewOf(Flatten(empty, 1, -1), empty, {2, 0});
  ExpectViewOf(Flatten(empty, 0, 1), empty, {0, 3});
  ExpectViewOf(Flatten(empty, 0, -1), empty, {0});
}

TEST_F(ViewTest, FlattenScalarCountsAsOneDimension) {
  cudl_tensor *s = Make({});
  ASSERT_EQ(WriteF32(s, {3.5f}), CUDL_OK);
  for (const std::pair<int, int> &axes :
       {std::pair<int, int>{0, 0}, {0, -1}, {-1, -1}, {-1, 0}}) {
    SCOPED_TRACE(std::to_string(axes.first) + ".." + std::to_string(axes.second));
    cudl_tensor *v = Flatten(s, axes.first, axes.second);
    ExpectViewOf(v, s, {1});
    EXPECT_TRUE(BitEqual(ReadF32(v), {3.5f}));
  }
  for (const std::pair<int, int> &axes :
       {std::pair<int, int>{1, 1}, {0, 1}, {-2, 0}, {0, -2}}) {
    cudl_tensor *v = SentinelTensor();
    EXPECT_EQ(cudl_tensor_flatten(s, axes.first, axes.second, &v), CUDL_ERR_INVALID_ARGUMENT)
        << axes.first << ".." << axes.second;
    EXPECT_EQ(v, nullptr);
  }
}

TEST_F(ViewTest, FlattenRejectsBadAxes) {
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  cudl_tensor *t = Make({2, 3, 4, 5});
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  const std::pair<int, int> bad[] = {
      {2, 1},  {-1, 0}, {3, 2},   // start after end
      {4, 4},  {0, 4},  {4, -1},  // past the end
      {-5, -1}, {0, -5}, {-5, -5},  // before the start
      {INT_MIN, 0}, {0, INT_MAX}, {INT_MAX, INT_MAX}, {INT_MIN, INT_MIN},
  };
  for (const auto &axes : bad) {
    SCOPED_TRACE(std::to_string(axes.first) + ".." + std::to_string(axes.second));
    cudl_tensor *v = SentinelTensor();
    EXPECT_EQ(cudl_tensor_flatten(t, axes.first, axes.second, &v), CUDL_ERR_INVALID_ARGUMENT);
    EXPECT_EQ(v, nullptr) << "*out must be NULL on failure";
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_), "cudl_tensor_flatten"));
  }
  cudl_tensor *v = SentinelTensor();
  EXPECT_EQ(cudl_tensor_flatten(nullptr, 1, -1, &v), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(v, nullptr);
  EXPECT_EQ(cudl_tensor_flatten(t, 1, -1, nullptr), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "out"));
  EXPECT_EQ(counting.allocs + counting.failed, 0u);
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
}

TEST_F(ViewTest, HalfPrecisionViews) {
  cudl_tensor *t = Make({4, 6}, CUDL_DTYPE_F16);
  std::vector<uint16_t> bits(24);
  for (size_t i = 0; i < bits.size(); ++i) bits[i] = static_cast<uint16_t>(0x3c00u + i);
  ASSERT_EQ(cudl_tensor_copy_from_host(t, bits.data(), 48), CUDL_OK);
  cudl_tensor *v = Reshape(t, {2, -1, 3});
  ExpectViewOf(v, t, {2, 4, 3});
  EXPECT_EQ(cudl_tensor_nbytes(v), 48u);
  std::vector<uint16_t> back(24);
  ASSERT_EQ(cudl_tensor_copy_to_host(v, back.data(), 48), CUDL_OK);
  EXPECT_EQ(back, bits);
}

// Destroying the tensors sharing one storage in every order: each block is
// freed exactly once (through the allocator it came from), and only with
// the last tensor; under ASan a premature free shows as a use after free.
TEST_F(ViewTest, StorageLivesUntilTheLastTensor) {
  const int64_t shape[] = {7, 13};
  const int64_t view_shape[] = {13, 7};
  for (bool original_first : {true, false}) {
    SCOPED_TRACE(original_first ? "original destroyed first" : "view destroyed first");
    CountingAllocator counting;
    const cudl_allocator hooks = counting.hooks();
    ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
    cudl_tensor *t = nullptr, *v = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 2, shape, &t), CUDL_OK);
    ASSERT_EQ(counting.allocs, 3u) << "object, storage object, data";
    ASSERT_EQ(cudl_tensor_reshape(t, 2, view_shape, &v), CUDL_OK);
    EXPECT_EQ(counting.allocs, 4u) << "a view allocates only its object";
    void *data = cudl_tensor_data(t);
    ASSERT_EQ(counting.live.count(data), 1u);

    cudl_tensor *first = original_first ? t : v, *second = original_first ? v : t;
    cudl_tensor_destroy(first);
    EXPECT_EQ(counting.frees, 1u) << "only the handle goes";
    EXPECT_EQ(counting.live.count(data), 1u) << "the data must outlive the first handle";
    // The survivor still works (under ASan: reads and writes live memory).
    ASSERT_EQ(WriteF32(second, ViewIota(91)), CUDL_OK);
    EXPECT_TRUE(BitEqual(ReadF32(second), ViewIota(91)));
    ASSERT_EQ(cudl_tensor_fill(second, 1.0f), CUDL_OK);
    cudl_tensor_destroy(second);

    EXPECT_EQ(counting.frees, counting.allocs);
    EXPECT_TRUE(counting.live.empty()) << "leaked";
    EXPECT_EQ(counting.unknown_frees, 0u) << "freed twice or not ours";
    EXPECT_EQ(counting.size_mismatches, 0u);
    ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  }
}

TEST_F(ViewTest, ViewsOfViewsInEveryOrder) {
  // t -> a (reshape) -> b (flatten of a) -> c (reshape of b): four handles on
  // one storage, destroyed in each of the 24 orders.
  std::vector<int> order = {0, 1, 2, 3};
  const int64_t shape[] = {2, 3, 4};
  const int64_t a_shape[] = {6, 2, 2};
  const int64_t c_shape[] = {-1};
  do {
    std::string name = "order";
    for (int k : order) name += " " + std::to_string(k);
    SCOPED_TRACE(name);
    CountingAllocator counting;
    const cudl_allocator hooks = counting.hooks();
    ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
    cudl_tensor *h[4] = {nullptr, nullptr, nullptr, nullptr};
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 3, shape, &h[0]), CUDL_OK);
    ASSERT_EQ(WriteF32(h[0], ViewIota(24)), CUDL_OK);
    ASSERT_EQ(cudl_tensor_reshape(h[0], 3, a_shape, &h[1]), CUDL_OK);
    ASSERT_EQ(cudl_tensor_flatten(h[1], 1, 2, &h[2]), CUDL_OK);
    ASSERT_EQ(cudl_tensor_reshape(h[2], 1, c_shape, &h[3]), CUDL_OK);
    EXPECT_EQ(ShapeOf(h[2]), (std::vector<int64_t>{6, 4}));
    EXPECT_EQ(ShapeOf(h[3]), (std::vector<int64_t>{24}));
    EXPECT_EQ(counting.allocs, 6u);
    void *data = cudl_tensor_data(h[0]);
    for (int k = 1; k < 4; ++k) EXPECT_EQ(cudl_tensor_data(h[k]), data);
    for (size_t n = 0; n < order.size(); ++n) {
      cudl_tensor_destroy(h[order[n]]);
      h[order[n]] = nullptr;
      if (n + 1 < order.size()) {
        EXPECT_EQ(counting.live.count(data), 1u) << "freed with handles left";
        // Every survivor still sees the data and can change it.
        for (cudl_tensor *left : h) {
          if (left == nullptr) continue;
          EXPECT_TRUE(BitEqual(ReadF32(left), ViewIota(24, static_cast<float>(n))));
        }
        for (cudl_tensor *left : h) {
          if (left == nullptr) continue;
          ASSERT_EQ(WriteF32(left, ViewIota(24, static_cast<float>(n + 1))), CUDL_OK);
          break;
        }
      }
    }
    EXPECT_EQ(counting.frees, counting.allocs);
    EXPECT_TRUE(counting.live.empty());
    EXPECT_EQ(counting.unknown_frees, 0u);
    EXPECT_EQ(counting.size_mismatches, 0u);
    ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  } while (std::next_permutation(order.begin(), order.end()));
}

TEST_F(ViewTest, ViewIsFreedThroughTheAllocatorItCameFrom) {
  // The original from one allocator, its view's object from another: each
  // block goes back where it came from, in either order.
  const int64_t shape[] = {33};
  const int64_t view_shape[] = {3, 11};
  for (bool original_first : {true, false}) {
    SCOPED_TRACE(original_first ? "original destroyed first" : "view destroyed first");
    CountingAllocator first, second;
    const cudl_allocator hooks1 = first.hooks(), hooks2 = second.hooks();
    ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks1), CUDL_OK);
    cudl_tensor *t = nullptr, *v = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
    ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks2), CUDL_OK);
    ASSERT_EQ(cudl_tensor_reshape(t, 2, view_shape, &v), CUDL_OK);
    ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
    EXPECT_EQ(first.allocs, 3u);
    EXPECT_EQ(second.allocs, 1u);
    cudl_tensor_destroy(original_first ? t : v);
    cudl_tensor_destroy(original_first ? v : t);
    EXPECT_EQ(first.frees, 3u);
    EXPECT_EQ(second.frees, 1u);
    EXPECT_TRUE(first.live.empty());
    EXPECT_TRUE(second.live.empty());
    EXPECT_EQ(first.unknown_frees + second.unknown_frees, 0u);
    EXPECT_EQ(first.size_mismatches + second.size_mismatches, 0u);
  }
}

TEST_F(ViewTest, ViewsOfEmptyTensors) {
  CountingAllocator counting;
  const cudl_allocator hooks = counting.hooks();
  ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
  const int64_t shape[] = {0, 3};
  cudl_tensor *t = nullptr;
  ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 2, shape, &t), CUDL_OK);
  EXPECT_EQ(counting.allocs, 1u) << "an empty tensor has no storage";
  const std::vector<std::vector<int64_t>> shapes = {{3, 0}, {0}, {-1, 3}, {1, 0, 5, 2}};
  std::vector<cudl_tensor *> views;
  for (const auto &s : shapes) {
    cudl_tensor *v = nullptr;
    ASSERT_EQ(cudl_tensor_reshape(t, static_cast<int>(s.size()), s.data(), &v), CUDL_OK)
        << cudl_context_last_error(ctx_);
    views.push_back(v);
  }
  cudl_tensor *flat = nullptr;
  ASSERT_EQ(cudl_tensor_flatten(views[3], 1, 2, &flat), CUDL_OK);
  views.push_back(flat);
  EXPECT_EQ(ShapeOf(views[2]), (std::vector<int64_t>{0, 3}));
  EXPECT_EQ(ShapeOf(flat), (std::vector<int64_t>{1, 0, 2}));
  for (cudl_tensor *v : views) {
    EXPECT_EQ(cudl_tensor_numel(v), 0);
    EXPECT_EQ(cudl_tensor_nbytes(v), 0u);
    EXPECT_EQ(cudl_tensor_data(v), nullptr);
    EXPECT_EQ(cudl_tensor_fill(v, 1.0f), CUDL_OK);
    EXPECT_EQ(cudl_tensor_copy_to_host(v, nullptr, 0), CUDL_OK);
  }
  EXPECT_EQ(counting.allocs, 1u + views.size());
  // The original in the middle of its views.
  cudl_tensor_destroy(views[0]);
  cudl_tensor_destroy(views[1]);
  cudl_tensor_destroy(t);
  for (size_t k = 2; k < views.size(); ++k) cudl_tensor_destroy(views[k]);
  EXPECT_EQ(counting.frees, counting.allocs);
  EXPECT_TRUE(counting.live.empty());
  EXPECT_EQ(counting.unknown_frees, 0u);
  ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
}

TEST_F(ViewTest, FailedViewAllocationLeaksNothing) {
  // A view's one allocation (its object) fails: CUDL_ERR_OUT_OF_MEMORY,
  // *out NULL, and the storage's count untouched, so that destroying the
  // original alone frees everything.
  for (bool flatten : {false, true}) {
    SCOPED_TRACE(flatten ? "flatten" : "reshape");
    CountingAllocator counting;
    const cudl_allocator hooks = counting.hooks();
    ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks), CUDL_OK);
    const int64_t shape[] = {2, 3, 5};
    const int64_t view_shape[] = {6, -1};
    cudl_tensor *t = nullptr;
    ASSERT_EQ(cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 3, shape, &t), CUDL_OK);
    ASSERT_EQ(WriteF32(t, ViewIota(30)), CUDL_OK);
    counting.fail_at = counting.allocs + 1;  // the next one
    cudl_tensor *v = SentinelTensor();
    const cudl_status s = flatten ? cudl_tensor_flatten(t, 1, -1, &v)
                                  : cudl_tensor_reshape(t, 2, view_shape, &v);
    EXPECT_EQ(s, CUDL_ERR_OUT_OF_MEMORY);
    EXPECT_EQ(v, nullptr) << "*out must be NULL on failure";
    EXPECT_EQ(counting.failed, 1u) << "the failure was not reached";
    EXPECT_TRUE(StartsWith(cudl_context_last_error(ctx_),
                           flatten ? "cudl_tensor_flatten" : "cudl_tensor_reshape"));
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "allocate"));
    EXPECT_EQ(counting.allocs, 3u);
    // The original is intact, and a view can be made once memory is back.
    EXPECT_TRUE(BitEqual(ReadF32(t), ViewIota(30)));
    cudl_tensor *ok = nullptr;
    ASSERT_EQ(cudl_tensor_reshape(t, 2, view_shape, &ok), CUDL_OK);
    cudl_tensor_destroy(ok);
    EXPECT_EQ(counting.live.size(), 3u) << "the storage must outlive the view";
    cudl_tensor_destroy(t);
    EXPECT_EQ(counting.frees, counting.allocs);
    EXPECT_TRUE(counting.live.empty()) << "a failed view kept a reference";
    EXPECT_EQ(counting.unknown_frees, 0u);
    ASSERT_EQ(cudl_context_set_allocator(ctx_, nullptr), CUDL_OK);
  }
}

TEST_F(ViewTest, OpsAcceptViews) {
  // A classifier head on a flattened [N, C, H, W] feature map:
  // y = flatten(x, 1, -1) w^T + b, and its input gradient written through a
  // view of a [N, C, H, W] tensor. Checked against float64 with the bound of
  // test_linear.cpp: (n + 2) u * sum|terms| for a sum of n products.
  const int64_t n = 4, c = 3, hw = 5, in = c * hw * hw, out = 10;
  std::vector<float> xs(static_cast<size_t>(n * in)), ws(static_cast<size_t>(out * in));
  std::vector<float> bs(static_cast<size_t>(out)), dys(static_cast<size_t>(n * out));
  for (size_t i = 0; i < xs.size(); ++i) xs[i] = std::sin(0.37f * static_cast<float>(i));
  for (size_t i = 0; i < ws.size(); ++i) ws[i] = std::cos(0.11f * static_cast<float>(i));
  for (size_t i = 0; i < bs.size(); ++i) bs[i] = 0.1f * static_cast<float>(i) - 0.5f;
  for (size_t i = 0; i < dys.size(); ++i) dys[i] = std::sin(1.3f * static_cast<float>(i));
  cudl_tensor *x4 = Make({n, c, hw, hw}), *w = Make({out, in}), *b = Make({out});
  cudl_tensor *y_store = Make({n * out}), *dy = Make({n, out}), *dx4 = Make({n, c, hw, hw});
  ASSERT_EQ(WriteF32(x4, xs), CUDL_OK);
  ASSERT_EQ(WriteF32(w, ws), CUDL_OK);
  ASSERT_EQ(WriteF32(b, bs), CUDL_OK);
  ASSERT_EQ(WriteF32(dy, dys), CUDL_OK);
  cudl_tensor *x = Flatten(x4, 1, -1), *y = Reshape(y_store, {n, -1});
  cudl_tensor *dx = Flatten(dx4, 1, 3);
  ASSERT_EQ(ShapeOf(x), (std::vector<int64_t>{n, in}));
  ASSERT_EQ(cudl_linear_forward(ctx_, x, w, b, y), CUDL_OK) << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_linear_backward(ctx_, x, w, dy, dx, nullptr, nullptr), CUDL_OK)
      << cudl_context_last_error(ctx_);
  const std::vector<float> ys = ReadF32(y_store), dxs = ReadF32(dx4);
  const double u = FLT_EPSILON / 2.0;
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t o = 0; o < out; ++o) {
      double want = bs[static_cast<size_t>(o)], scale = std::fabs(want);
      for (int64_t k = 0; k < in; ++k) {
        const double t = static_cast<double>(xs[static_cast<size_t>(r * in + k)]) *
                         ws[static_cast<size_t>(o * in + k)];
        want += t;
        scale += std::fabs(t);
      }
      ASSERT_NEAR(ys[static_cast<size_t>(r * out + o)], want, (in + 2) * u * scale)
          << "y[" << r << ", " << o << "]";
    }
    for (int64_t k = 0; k < in; ++k) {
      double want = 0, scale = 0;
      for (int64_t o = 0; o < out; ++o) {
        const double t = static_cast<double>(dys[static_cast<size_t>(r * out + o)]) *
                         ws[static_cast<size_t>(o * in + k)];
        want += t;
        scale += std::fabs(t);
      }
      ASSERT_NEAR(dxs[static_cast<size_t>(r * in + k)], want, (out + 2) * u * scale)
          << "dx[" << r << ", " << k << "]";
    }
  }
  EXPECT_TRUE(BitEqual(ReadF32(dx), dxs)) << "the view and the original agree";
  // Elementwise ops on views (same shapes) work the same way.
  cudl_tensor *y2 = Make({n, out});
  ASSERT_EQ(cudl_scale(ctx_, y, 2.0f, y2), CUDL_OK);
  std::vector<float> doubled = ys;
  for (float &v : doubled) v *= 2.0f;
  EXPECT_TRUE(BitEqual(ReadF32(y2), doubled));
}

// narrow: a view of rows [start, start + length) of the first dimension.
TEST_F(TensorTest, NarrowViewsRowsOfTheFirstDimension) {
  cudl_tensor *t = Make({5, 2, 3});
  std::vector<float> values(30);
  for (int i = 0; i < 30; ++i) values[i] = (float)i;
  ASSERT_EQ(cudl_tensor_copy_from_host(t, values.data(), 30 * sizeof(float)),
            CUDL_OK);
  cudl_tensor *v = nullptr;
  ASSERT_EQ(cudl_tensor_narrow(t, 1, 3, &v), CUDL_OK);
  EXPECT_EQ(cudl_tensor_ndim(v), 3);
  EXPECT_EQ(cudl_tensor_dim(v, 0), 3);
  EXPECT_EQ(cudl_tensor_dim(v, 2), 3);
  EXPECT_EQ(cudl_tensor_numel(v), 18);
  EXPECT_EQ(static_cast<float *>(cudl_tensor_data(v)),
            static_cast<float *>(cudl_tensor_data(t)) + 6);
  std::vector<float> got(18);
  ASSERT_EQ(cudl_tensor_copy_to_host(v, got.data(), 18 * sizeof(float)),
            CUDL_OK);
  for (int i = 0; i < 18; ++i) EXPECT_EQ(got[i], (float)(i + 6));
  // Writes through the view land in the original's rows 1..3 only.
  ASSERT_EQ(cudl_tensor_fill(v, -1.0f), CUDL_OK);
  ASSERT_EQ(cudl_tensor_copy_to_host(t, values.data(), 30 * sizeof(float)),
            CUDL_OK);
  for (int i = 0; i < 30; ++i)
    EXPECT_EQ(values[i], i >= 6 && i < 24 ? -1.0f : (float)i) << i;
  cudl_tensor_destroy(t);  // the view keeps the storage
  owned_.erase(std::remove(owned_.begin(), owned_.end(), t), owned_.end());
  EXPECT_EQ(cudl_tensor_fill(v, 2.0f), CUDL_OK);
  cudl_tensor_destroy(v);

  cudl_tensor *u = Make({4});
  cudl_tensor *w = reinterpret_cast<cudl_tensor *>(1);
  EXPECT_EQ(cudl_tensor_narrow(u, 0, 0, &w), CUDL_OK) << "empty is allowed";
  EXPECT_EQ(cudl_tensor_numel(w), 0);
  cudl_tensor_destroy(w);
  w = reinterpret_cast<cudl_tensor *>(1);
  EXPECT_EQ(cudl_tensor_narrow(u, 3, 2, &w), CUDL_ERR_SHAPE);
  EXPECT_EQ(w, nullptr);
  EXPECT_EQ(cudl_tensor_narrow(u, -1, 1, &w), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_tensor_narrow(u, 0, -1, &w), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_tensor_narrow(Make({}), 0, 1, &w), CUDL_ERR_SHAPE);
  EXPECT_EQ(cudl_tensor_narrow(nullptr, 0, 1, &w), CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_tensor_narrow(u, 0, 1, nullptr), CUDL_ERR_INVALID_ARGUMENT);
}

}  // namespace
