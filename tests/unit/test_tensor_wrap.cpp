// test_tensor_wrap.cpp - tensors on the caller's memory (cudl_tensor_wrap)
// on the CPU: the tensor is the caller's bytes (same pointer, writes seen
// both ways, operators and a model reading and writing them in place), it
// is never freed by cudl (the allocator hooks see no free of it, nor does
// the memory count), views share it, bad arguments are refused leaving the
// context usable; and cudl_context_create_cuda_stream's refusals where no
// GPU can be used. The GPU side is test_cuda_interop.cpp.
#include <gtest/gtest.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::CountingAllocator;
using cudl_test::HasSubstr;
using cudl_test::LogCapture;

// Host memory the test owns, aligned to 64 bytes (more than cudl asks),
// with room for a misaligned start.
class HostBuffer {
 public:
  explicit HostBuffer(size_t floats) : size_(floats) {
    void *p = nullptr;
    if (posix_memalign(&p, 64, (floats + 16) * sizeof(float)) == 0)
      data_ = static_cast<float *>(p);
    if (data_ != nullptr) std::memset(data_, 0, (floats + 16) * sizeof(float));
  }
  ~HostBuffer() { std::free(data_); }
  HostBuffer(const HostBuffer &) = delete;
  HostBuffer &operator=(const HostBuffer &) = delete;
  float *data() { return data_; }
  float &operator[](size_t i) { return data_[i]; }
  size_t size() const { return size_; }

 private:
  size_t size_;
  float *data_ = nullptr;
};

class TensorWrap : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK);
    ASSERT_EQ(cudl_context_set_allocator(ctx_, &hooks_), CUDL_OK);
  }
  void TearDown() override {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    cudl_context_destroy(ctx_);
    // Every free the hooks saw was of a block they gave: never the
    // caller's memory.
    EXPECT_EQ(counting_.unknown_frees, 0u);
    EXPECT_TRUE(counting_.live.empty());
  }

  cudl_tensor *Wrap(const std::vector<int64_t> &shape, void *data,
                    cudl_dtype dtype = CUDL_DTYPE_F32) {
    cudl_tensor *t = nullptr;
    const cudl_status s =
        cudl_tensor_wrap(ctx_, dtype, static_cast<int>(shape.size()),
                         shape.empty() ? nullptr : shape.data(), data, &t);
    EXPECT_EQ(s, CUDL_OK) << cudl_status_name(s) << ": "
                          << cudl_context_last_error(ctx_);
    if (t != nullptr) owned_.push_back(t);
    return t;
  }
  cudl_tensor *Make(const std::vector<int64_t> &shape) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(
        cudl_tensor_create(ctx_, CUDL_DTYPE_F32, static_cast<int>(shape.size()),
                           shape.data(), &t),
        CUDL_OK);
    if (t != nullptr) owned_.push_back(t);
    return t;
  }
  void Destroy(cudl_tensor *t) {
    for (auto it = owned_.begin(); it != owned_.end(); ++it)
      if (*it == t) {
        owned_.erase(it);
        break;
      }
    cudl_tensor_destroy(t);
  }
  // The status of a wrap expected to fail, checking *out is NULL after.
  cudl_status WrapFails(cudl_context *ctx, cudl_dtype dtype, int ndim,
                        const int64_t *shape, void *data) {
    cudl_tensor *t = reinterpret_cast<cudl_tensor *>(&sentinel_);
    const cudl_status s = cudl_tensor_wrap(ctx, dtype, ndim, shape, data, &t);
    EXPECT_EQ(t, nullptr);
    if (s == CUDL_OK) owned_.push_back(t);
    return s;
  }
  // The context still makes and fills tensors.
  void ExpectUsable() {
    cudl_tensor *t = Make({7});
    ASSERT_NE(t, nullptr);
    ASSERT_EQ(cudl_tensor_fill(t, 3.0f), CUDL_OK);
    float v[7];
    ASSERT_EQ(cudl_tensor_copy_to_host(t, v, sizeof v), CUDL_OK);
    EXPECT_EQ(v[6], 3.0f);
  }

  CountingAllocator counting_;
  cudl_allocator hooks_ = counting_.hooks();
  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> owned_;
  int sentinel_ = 0;
};

TEST_F(TensorWrap, IsTheCallersMemory) {
  HostBuffer buf(15);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i) - 7.0f;
  cudl_tensor *t = Wrap({3, 5}, buf.data());
  ASSERT_NE(t, nullptr);
  EXPECT_EQ(cudl_tensor_data(t), buf.data());
  EXPECT_EQ(cudl_tensor_numel(t), 15);
  EXPECT_EQ(cudl_tensor_nbytes(t), 15 * sizeof(float));
  EXPECT_EQ(cudl_tensor_dim(t, 0), 3);
  EXPECT_EQ(cudl_tensor_dim(t, 1), 5);
  EXPECT_EQ(cudl_tensor_device(t), CUDL_DEVICE_CPU);
  EXPECT_EQ(cudl_tensor_context(t), ctx_);

  // The caller's writes are the tensor's values...
  float read[15];
  ASSERT_EQ(cudl_tensor_copy_to_host(t, read, sizeof read), CUDL_OK);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(read[i], static_cast<float>(i) - 7.0f);
  buf[4] = 100.0f;
  ASSERT_EQ(cudl_tensor_copy_to_host(t, read, sizeof read), CUDL_OK);
  EXPECT_EQ(read[4], 100.0f);
  // ...and cudl's writes land in the caller's memory.
  ASSERT_EQ(cudl_tensor_fill(t, 2.5f), CUDL_OK);
  for (int i = 0; i < 15; ++i) EXPECT_EQ(buf[i], 2.5f) << i;
  const float fresh[15] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15};
  ASSERT_EQ(cudl_tensor_copy_from_host(t, fresh, sizeof fresh), CUDL_OK);
  EXPECT_EQ(std::memcmp(buf.data(), fresh, sizeof fresh), 0);
  // The bytes past the tensor are not touched.
  EXPECT_EQ(buf[15], 0.0f);
}

TEST_F(TensorWrap, ScalarsAndOtherDtypes) {
  HostBuffer buf(4);
  buf[0] = 4.0f;
  cudl_tensor *scalar = Wrap({}, buf.data());
  ASSERT_NE(scalar, nullptr);
  EXPECT_EQ(cudl_tensor_ndim(scalar), 0);
  EXPECT_EQ(cudl_tensor_numel(scalar), 1);
  EXPECT_EQ(cudl_tensor_data(scalar), buf.data());

  alignas(16) int32_t labels[8] = {0, 1, 2, 3, 4, 5, 6, 7};
  cudl_tensor *i32 = Wrap({8}, labels, CUDL_DTYPE_I32);
  ASSERT_NE(i32, nullptr);
  EXPECT_EQ(cudl_tensor_dtype(i32), CUDL_DTYPE_I32);
  EXPECT_EQ(cudl_tensor_nbytes(i32), sizeof labels);
}

TEST_F(TensorWrap, OperatorsReadAndWriteInPlace) {
  HostBuffer x(1021), y(1021), sum(1021);
  for (size_t i = 0; i < x.size(); ++i)
    x[i] = static_cast<float>(i % 13) - 6.0f;
  cudl_tensor *tx = Wrap({1021}, x.data());
  cudl_tensor *ty = Wrap({1021}, y.data());
  cudl_tensor *ts = Wrap({1021}, sum.data());
  ASSERT_NE(ts, nullptr);
  ASSERT_EQ(cudl_relu_forward(ctx_, tx, ty), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_add(ctx_, tx, 2.0f, ty, ts), CUDL_OK)
      << cudl_context_last_error(ctx_);
  for (size_t i = 0; i < x.size(); ++i) {
    const float relu = x[i] > 0.0f ? x[i] : 0.0f;
    ASSERT_EQ(y[i], relu) << i;
    ASSERT_EQ(sum[i], x[i] + 2.0f * relu) << i;
  }
  // A wrapped output of an op on a created input, and in place.
  cudl_tensor *created = Make({1021});
  ASSERT_EQ(cudl_tensor_fill(created, -1.5f), CUDL_OK);
  ASSERT_EQ(cudl_scale(ctx_, created, 2.0f, ty), CUDL_OK);
  EXPECT_EQ(y[1020], -3.0f);
  ASSERT_EQ(cudl_scale(ctx_, ty, -1.0f, ty), CUDL_OK);
  EXPECT_EQ(y[0], 3.0f);
}

// A model reads a wrapped batch (narrowed to fewer rows than max_batch,
// as a partial batch is) like a created one, and its output copied into
// wrapped memory is the caller's.
TEST_F(TensorWrap, ModelForwardOnWrappedInput) {
  const int64_t features = 10, rows = 3, classes = 4;
  const int64_t widths[] = {16};
  const int64_t input_shape[] = {features};
  cudl_model *model = nullptr;
  ASSERT_EQ(cudl_zoo_mlp(ctx_, 1, input_shape, 1, widths, CUDL_ACT_RELU, 0.0f,
                         classes, &model),
            CUDL_OK)
      << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_model_compile_inference(model, 8), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_model_init(model, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK);

  HostBuffer x(8 * features), out(rows * classes);
  for (int64_t i = 0; i < rows * features; ++i)
    x[i] = static_cast<float>((i * 7) % 11) / 5.0f - 1.0f;
  cudl_tensor *wrapped = Wrap({8, features}, x.data());
  cudl_tensor *batch = nullptr;
  ASSERT_EQ(cudl_tensor_narrow(wrapped, 0, rows, &batch), CUDL_OK);
  owned_.push_back(batch);
  ASSERT_EQ(cudl_model_forward(model, batch, nullptr, nullptr), CUDL_OK)
      << cudl_context_last_error(ctx_);
  cudl_tensor *wrapped_out = Wrap({rows, classes}, out.data());
  ASSERT_EQ(cudl_tensor_copy(wrapped_out, cudl_model_output(model)), CUDL_OK)
      << cudl_context_last_error(ctx_);

  // The same rows in a tensor cudl made give the same output.
  cudl_tensor *copy = Make({rows, features});
  ASSERT_EQ(cudl_tensor_copy_from_host(copy, x.data(),
                                       rows * features * sizeof(float)),
            CUDL_OK);
  ASSERT_EQ(cudl_model_forward(model, copy, nullptr, nullptr), CUDL_OK);
  std::vector<float> expected(rows * classes);
  ASSERT_EQ(cudl_tensor_copy_to_host(cudl_model_output(model), expected.data(),
                                     expected.size() * sizeof(float)),
            CUDL_OK);
  bool any_nonzero = false;
  for (int64_t i = 0; i < rows * classes; ++i) {
    EXPECT_EQ(out[i], expected[i]) << i;
    any_nonzero = any_nonzero || out[i] != 0.0f;
  }
  EXPECT_TRUE(any_nonzero);
  cudl_model_destroy(model);
}

// Destroying the tensor (and its views, in either order) frees cudl's
// objects and never the caller's memory: the allocator hooks see every
// free (TearDown: none of a block they did not give), the bytes stay the
// caller's, and the memory figures never count them.
TEST_F(TensorWrap, NeverFreedNorCounted) {
  cudl_memory_stats before, after;
  ASSERT_EQ(cudl_context_memory_stats(ctx_, &before), CUDL_OK);
  HostBuffer buf(24);
  for (size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i);
  const size_t frees_before = counting_.frees;
  cudl_tensor *t = Wrap({2, 3, 4}, buf.data());
  ASSERT_NE(t, nullptr);
  ASSERT_EQ(cudl_context_memory_stats(ctx_, &after), CUDL_OK);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
  EXPECT_EQ(after.peak_bytes_in_use, before.peak_bytes_in_use);
  // The tensor and storage objects came from the hooks; the data did not.
  for (const auto &block : counting_.live) {
    EXPECT_NE(block.first, static_cast<void *>(buf.data()));
  }

  cudl_tensor *flat = nullptr, *rows = nullptr, *reshaped = nullptr;
  ASSERT_EQ(cudl_tensor_flatten(t, 0, -1, &flat), CUDL_OK);
  ASSERT_EQ(cudl_tensor_narrow(t, 1, 1, &rows), CUDL_OK);
  ASSERT_EQ(
      cudl_tensor_reshape(t, 1, std::vector<int64_t>{-1}.data(), &reshaped),
      CUDL_OK);
  EXPECT_EQ(cudl_tensor_data(flat), buf.data());
  EXPECT_EQ(cudl_tensor_data(rows), buf.data() + 12);
  // The tensor goes first; the views still read and write the caller's
  // memory.
  Destroy(t);
  ASSERT_EQ(cudl_tensor_fill(rows, -1.0f), CUDL_OK);
  EXPECT_EQ(buf[11], 11.0f);
  EXPECT_EQ(buf[12], -1.0f);
  EXPECT_EQ(buf[23], -1.0f);
  float read[24];
  ASSERT_EQ(cudl_tensor_copy_to_host(flat, read, sizeof read), CUDL_OK);
  EXPECT_EQ(read[0], 0.0f);
  EXPECT_EQ(read[23], -1.0f);
  cudl_tensor_destroy(flat);
  cudl_tensor_destroy(reshaped);
  cudl_tensor_destroy(rows);
  // Four tensor objects and one storage object: five frees, all known.
  EXPECT_EQ(counting_.frees - frees_before, 5u);
  EXPECT_EQ(counting_.unknown_frees, 0u);
  // Still the caller's, still writable (ASan would flag a freed block).
  buf[0] = 42.0f;
  EXPECT_EQ(buf[0], 42.0f);
  ASSERT_EQ(cudl_context_memory_stats(ctx_, &after), CUDL_OK);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
}

TEST_F(TensorWrap, BadArguments) {
  HostBuffer buf(64);
  const int64_t shape[] = {4, 4};
  cudl_tensor *t = nullptr;
  EXPECT_EQ(cudl_tensor_wrap(nullptr, CUDL_DTYPE_F32, 2, shape, buf.data(), &t),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(
      cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, 2, shape, buf.data(), nullptr),
      CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "out is NULL"));
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 2, shape, nullptr),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "data is NULL"));
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 2, nullptr, buf.data()),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "shape is NULL"));

  // Misaligned: every start that is not a multiple of 16 bytes, even one
  // aligned to the element.
  for (int offset : {1, 2, 3}) {
    EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 2, shape, buf.data() + offset),
              CUDL_ERR_INVALID_ARGUMENT)
        << offset;
    EXPECT_TRUE(
        HasSubstr(cudl_context_last_error(ctx_), "not aligned to 16 bytes"))
        << cudl_context_last_error(ctx_);
  }
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F16, 2, shape,
                      reinterpret_cast<char *>(buf.data()) + 2),
            CUDL_ERR_INVALID_ARGUMENT);
  // 16 bytes in is aligned.
  cudl_tensor *ok = Wrap({4, 4}, buf.data() + 4);
  EXPECT_NE(ok, nullptr);

  // Shapes: no elements, negative, too many dimensions, overflow; dtype.
  const int64_t zero[] = {4, 0};
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 2, zero, buf.data()),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "no elements"));
  const int64_t negative[] = {4, -2};
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 2, negative, buf.data()),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "negative"));
  const int64_t six[] = {1, 1, 1, 1, 1, 1};
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 6, six, buf.data()),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, -1, shape, buf.data()),
            CUDL_ERR_SHAPE);
  const int64_t huge[] = {int64_t{1} << 40, int64_t{1} << 40};
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 2, huge, buf.data()),
            CUDL_ERR_SHAPE);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "overflows"));
  // Elements fit in int64 but bytes do not.
  const int64_t bytes_overflow[] = {int64_t{1} << 62};
  EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 1, bytes_overflow, buf.data()),
            CUDL_ERR_SHAPE);
  EXPECT_EQ(WrapFails(ctx_, static_cast<cudl_dtype>(99), 2, shape, buf.data()),
            CUDL_ERR_DTYPE);

  // Nothing was written to the caller's memory by any of these.
  for (size_t i = 0; i < buf.size(); ++i) ASSERT_EQ(buf[i], 0.0f) << i;
  ExpectUsable();
}

// An allocation failure (the tensor object, then the storage object)
// fails the wrap cleanly: nothing leaks (TearDown's live blocks) and the
// caller's memory is not freed.
TEST_F(TensorWrap, AllocationFailures) {
  HostBuffer buf(16);
  const int64_t shape[] = {16};
  for (int k = 1; k <= 2; ++k) {
    ASSERT_EQ(cudl_context_fail_allocation(ctx_, k), CUDL_OK);
    EXPECT_EQ(WrapFails(ctx_, CUDL_DTYPE_F32, 1, shape, buf.data()),
              CUDL_ERR_OUT_OF_MEMORY)
        << k;
    uint64_t counted = 0, failed = 0;
    ASSERT_EQ(cudl_context_allocation_count(ctx_, &counted, &failed), CUDL_OK);
    EXPECT_EQ(failed, 1u) << k;
    ASSERT_EQ(cudl_context_fail_allocation(ctx_, -1), CUDL_OK);
  }
  buf[15] = 1.0f;
  EXPECT_NE(Wrap({16}, buf.data()), nullptr);
}

// Memory wrapped twice is one memory to the aliasing checks: an output
// overlapping an input is refused as for views of one tensor, whether both
// are wrapped or one is a tensor cudl made; apart, they run.
TEST_F(TensorWrap, OverlappingWrapsAreOneMemory) {
  HostBuffer buf(32);
  cudl_tensor *x = Wrap({2, 4}, buf.data());            // floats 0..7
  cudl_tensor *y_over = Wrap({2, 3}, buf.data() + 4);   // floats 4..9
  cudl_tensor *y_apart = Wrap({2, 3}, buf.data() + 8);  // floats 8..13
  cudl_tensor *w = Make({3, 4});
  ASSERT_NE(w, nullptr);
  ASSERT_EQ(cudl_tensor_fill(w, 1.0f), CUDL_OK);
  EXPECT_EQ(cudl_linear_forward(ctx_, x, w, nullptr, y_over),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "shares storage"))
      << cudl_context_last_error(ctx_);
  for (int i = 0; i < 8; ++i) buf[i] = 1.0f;
  ASSERT_EQ(cudl_linear_forward(ctx_, x, w, nullptr, y_apart), CUDL_OK)
      << cudl_context_last_error(ctx_);
  EXPECT_EQ(buf[8], 4.0f);
  EXPECT_EQ(buf[13], 4.0f);
  // The weights' own bytes wrapped again as the output.
  cudl_tensor *y_on_w = Wrap({2, 3}, cudl_tensor_data(w));
  EXPECT_EQ(cudl_linear_forward(ctx_, x, w, nullptr, y_on_w),
            CUDL_ERR_INVALID_ARGUMENT);
}

TEST_F(TensorWrap, AnotherContextsTensorIsRefused) {
  cudl_context *other = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &other), CUDL_OK);
  HostBuffer a(8), b(8);
  cudl_tensor *theirs = nullptr;
  const int64_t shape[] = {8};
  ASSERT_EQ(
      cudl_tensor_wrap(other, CUDL_DTYPE_F32, 1, shape, a.data(), &theirs),
      CUDL_OK);
  cudl_tensor *mine = Wrap({8}, b.data());
  EXPECT_EQ(cudl_relu_forward(ctx_, theirs, mine), CUDL_ERR_DEVICE_MISMATCH);
  EXPECT_TRUE(
      HasSubstr(cudl_context_last_error(ctx_), "belongs to another context"))
      << cudl_context_last_error(ctx_);
  // A copy between the two contexts is allowed and lands in b.
  a[3] = 9.0f;
  ASSERT_EQ(cudl_tensor_copy(mine, theirs), CUDL_OK);
  EXPECT_EQ(b[3], 9.0f);
  cudl_tensor_destroy(theirs);
  cudl_context_destroy(other);
  EXPECT_EQ(a[3], 9.0f);  // still the caller's after its context went
}

// ---------------------------------------------------------------------------
// cudl_context_create_cuda_stream where it cannot succeed
// ---------------------------------------------------------------------------

TEST(ContextCudaStream, ArgumentsRefusedEverywhere) {
  int stream_stand_in = 0;
  cudl_context *ctx = reinterpret_cast<cudl_context *>(&stream_stand_in);
  EXPECT_EQ(cudl_context_create_cuda_stream(0, &stream_stand_in, nullptr),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(cudl_context_create_cuda_stream(-1, &stream_stand_in, &ctx),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ctx, nullptr);
  LogCapture log;
  ctx = reinterpret_cast<cudl_context *>(&stream_stand_in);
  EXPECT_EQ(cudl_context_create_cuda_stream(0, nullptr, &ctx),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(ctx, nullptr);
  bool said = false;
  for (const auto &r : log.records())
    said = said || (r.level == CUDL_LOG_ERROR &&
                    HasSubstr(r.message, "stream is NULL"));
  EXPECT_TRUE(said);
}

// Without a usable GPU (a CPU-only build, no driver, no device) the call
// fails as cudl_context_create does, with the same status and logged
// reason. A stand-in stream is never given to CUDA here: the test skips
// where a GPU could take it.
TEST(ContextCudaStream, WithoutAGpuAsContextCreate) {
  int count = 0;
  char reason[256];
  const cudl_status expected =
      cudl_cuda_device_count(&count, reason, sizeof reason);
  if (expected == CUDL_OK) {
    GTEST_SKIP() << "a CUDA device is present: test_cuda_interop covers it";
  }
  int stream_stand_in = 0;
  cudl_context *ctx = reinterpret_cast<cudl_context *>(&stream_stand_in);
  LogCapture log;
  EXPECT_EQ(cudl_context_create_cuda_stream(0, &stream_stand_in, &ctx),
            expected);
  EXPECT_EQ(ctx, nullptr);
  ASSERT_FALSE(log.records().empty());
  const std::string message = log.records().back().message;
  EXPECT_TRUE(HasSubstr(message, "cannot create a CUDA context")) << message;
  EXPECT_TRUE(HasSubstr(message, reason)) << message;
  if (!cudl_cuda_compiled()) {
    EXPECT_EQ(expected, CUDL_ERR_NO_DEVICE);
  }
}

}  // namespace
