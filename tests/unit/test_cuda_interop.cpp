// test_cuda_interop.cpp - cudl inside a program that already uses CUDA:
// the test makes its own streams, cudaMalloc's its own buffers and runs a
// kernel of its own (interop_kernels.cu), and checks that a context made
// on its stream (cudl_context_create_cuda_stream) queues every piece of
// work there, in order with the program's, without synchronising; that
// wrapped device memory (cudl_tensor_wrap) is used in place, never freed,
// and refused when it is not the context's GPU's; and that a model run
// this way gives the CPU's results. The one test executable linked to the
// CUDA runtime (tests/CMakeLists.txt), in CUDA builds only; every test
// skips, saying why, without a usable GPU.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

#if defined(CUDL_TEST_HAVE_CUDA)

#  include <cuda_runtime_api.h>

extern "C" cudaError_t cudl_test_gate_then_fill(
    cudaStream_t stream, const volatile int *open, int *timed_out, float *x,
    int64_t n, float base, float step, uint64_t timeout_ns);
extern "C" cudaError_t cudl_test_affine(cudaStream_t stream, const float *in,
                                        float *out, int64_t n, float a,
                                        float b);

namespace {

using cudl_test::HasSubstr;

// Long enough for any cudl call to return, short enough that a cudl call
// that waits for the stream (which the gate holds) fails the test instead
// of hanging it.
const uint64_t kGateTimeoutNs = 10ull * 1000 * 1000 * 1000;

#  define CUDA_OK(call)                                         \
    do {                                                        \
      const cudaError_t cuda_ok_err_ = (call);                  \
      ASSERT_EQ(cuda_ok_err_, cudaSuccess)                      \
          << #call << ": " << cudaGetErrorString(cuda_ok_err_); \
    } while (0)

class CudaInterop : public ::testing::Test {
 protected:
  void SetUp() override {
    const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
    if (!a.available) GTEST_SKIP() << "no CUDA device: " << a.reason;
    CUDA_OK(cudaSetDevice(0));
    CUDA_OK(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking));
    CUDA_OK(cudaStreamCreateWithFlags(&side_, cudaStreamNonBlocking));
    // The gate's flags: host memory the kernel reads and writes.
    CUDA_OK(cudaHostAlloc(reinterpret_cast<void **>(&gate_), 2 * sizeof(int),
                          cudaHostAllocMapped));
    gate_[0] = gate_[1] = 0;
    const cudl_status s = cudl_context_create_cuda_stream(0, stream_, &ctx_);
    ASSERT_EQ(s, CUDL_OK) << cudl_status_name(s);
  }
  void TearDown() override {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    cudl_context_destroy(ctx_);
    if (stream_ != nullptr) {
      // The context is gone and the stream is still the program's.
      EXPECT_EQ(cudaMemsetAsync(scratch(), 0, 16, stream_), cudaSuccess);
      EXPECT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
      cudaStreamDestroy(stream_);
    }
    if (side_ != nullptr) cudaStreamDestroy(side_);
    for (void *p : device_) cudaFree(p);
    if (gate_ != nullptr) cudaFreeHost(gate_);
  }

  float *DeviceFloats(size_t n) {
    void *p = nullptr;
    EXPECT_EQ(cudaMalloc(&p, n * sizeof(float)), cudaSuccess);
    if (p != nullptr) device_.push_back(p);
    return static_cast<float *>(p);
  }
  void *scratch() {
    if (scratch_ == nullptr) scratch_ = DeviceFloats(4);
    return scratch_;
  }
  cudl_tensor *Wrap(const std::vector<int64_t> &shape, void *data) {
    cudl_tensor *t = nullptr;
    const cudl_status s =
        cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, static_cast<int>(shape.size()),
                         shape.data(), data, &t);
    EXPECT_EQ(s, CUDL_OK) << cudl_status_name(s) << ": "
                          << cudl_context_last_error(ctx_);
    if (t != nullptr) owned_.push_back(t);
    return t;
  }
  std::vector<float> Read(const float *device, size_t n) {
    std::vector<float> host(n);
    EXPECT_EQ(cudaMemcpy(host.data(), device, n * sizeof(float),
                         cudaMemcpyDeviceToHost),
              cudaSuccess);
    return host;
  }
  // Read device memory through the side stream, while the context's
  // stream may be held: what is there now, whatever is queued on it.
  std::vector<uint32_t> Peek(const float *device, size_t n, uint32_t *pinned) {
    EXPECT_EQ(cudaMemcpyAsync(pinned, device, n * sizeof(float),
                              cudaMemcpyDeviceToHost, side_),
              cudaSuccess);
    EXPECT_EQ(cudaStreamSynchronize(side_), cudaSuccess);
    return std::vector<uint32_t>(pinned, pinned + n);
  }
  // Hold the stream: what is queued after this waits for Open().
  void Gate(float *x, int64_t n, float base, float step,
            uint64_t timeout_ns = kGateTimeoutNs) {
    gate_[0] = gate_[1] = 0;
    ASSERT_EQ(cudl_test_gate_then_fill(stream_, &gate_[0], &gate_[1], x, n,
                                       base, step, timeout_ns),
              cudaSuccess);
  }
  void Open() {
    __atomic_store_n(&gate_[0], 1, __ATOMIC_SEQ_CST);
    ASSERT_EQ(cudaStreamSynchronize(stream_), cudaSuccess);
    ASSERT_EQ(gate_[1], 0)
        << "the gate timed out: a cudl call waited for the stream it holds";
  }

  cudaStream_t stream_ = nullptr, side_ = nullptr;
  int *gate_ = nullptr;
  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> owned_;
  std::vector<void *> device_;
  void *scratch_ = nullptr;
};

// The caller's kernel, then a cudl operator, then the caller's kernel
// again, all queued while the stream is held: cudl's work waits behind the
// first (it has not run while the gate is closed: the output still holds
// the sentinel, and an event after it is pending) and the caller's second
// kernel sees cudl's result, with no synchronisation in between.
TEST_F(CudaInterop, WorkRunsInOrderOnTheCallersStream) {
  const int64_t n = 1021;
  float *x = DeviceFloats(n), *y = DeviceFloats(n), *z = DeviceFloats(n);
  uint32_t *pinned = nullptr;
  CUDA_OK(
      cudaMallocHost(reinterpret_cast<void **>(&pinned), n * sizeof(float)));
  cudl_tensor *tx = Wrap({n}, x), *ty = Wrap({n}, y);
  ASSERT_NE(ty, nullptr);
  EXPECT_EQ(cudl_tensor_data(tx), x);
  EXPECT_EQ(cudl_tensor_data(ty), y);
  // Once before, so nothing lazy happens in the held run.
  ASSERT_EQ(cudl_scale(ctx_, tx, 3.0f, ty), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_context_synchronize(ctx_), CUDL_OK);
  CUDA_OK(cudaMemset(y, 0xff, n * sizeof(float)));
  // The legacy stream's work is not ordered with the non-blocking
  // streams': finished before the gate goes up.
  CUDA_OK(cudaDeviceSynchronize());

  Gate(x, n, 1.0f, 0.5f);
  ASSERT_EQ(cudl_scale(ctx_, tx, 3.0f, ty), CUDL_OK)
      << cudl_context_last_error(ctx_);
  CUDA_OK(cudl_test_affine(stream_, y, z, n, 2.0f, 1.0f));
  cudaEvent_t after = nullptr;
  CUDA_OK(cudaEventCreateWithFlags(&after, cudaEventDisableTiming));
  CUDA_OK(cudaEventRecord(after, stream_));
  EXPECT_EQ(cudaEventQuery(after), cudaErrorNotReady);
  EXPECT_EQ(cudaStreamQuery(stream_), cudaErrorNotReady);
  const std::vector<uint32_t> held = Peek(y, n, pinned);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(held[i], 0xffffffffu) << "cudl ran early at " << i;
  Open();
  EXPECT_EQ(cudaEventQuery(after), cudaSuccess);
  cudaEventDestroy(after);

  const std::vector<float> ys = Read(y, n), zs = Read(z, n);
  for (int64_t i = 0; i < n; ++i) {
    const float xi = 1.0f + static_cast<float>(i) * 0.5f;
    ASSERT_EQ(ys[i], 3.0f * xi) << i;
    ASSERT_EQ(zs[i], 2.0f * ys[i] + 1.0f) << i;
  }
  cudaFreeHost(pinned);
}

// cudl's own copies are on the stream too: a device copy queued behind
// the gate waits for it, and a copy to the host waits for the stream, the
// program's kernel included.
TEST_F(CudaInterop, CopiesAreOrderedOnTheCallersStream) {
  const int64_t n = 300;
  float *x = DeviceFloats(n), *y = DeviceFloats(n);
  uint32_t *pinned = nullptr;
  CUDA_OK(
      cudaMallocHost(reinterpret_cast<void **>(&pinned), n * sizeof(float)));
  cudl_tensor *tx = Wrap({n}, x), *ty = Wrap({n}, y);
  ASSERT_NE(ty, nullptr);
  CUDA_OK(cudaMemset(y, 0xff, n * sizeof(float)));
  // The legacy stream's work is not ordered with the non-blocking
  // streams': finished before the gate goes up.
  CUDA_OK(cudaDeviceSynchronize());
  Gate(x, n, -2.0f, 0.25f);
  ASSERT_EQ(cudl_tensor_copy(ty, tx), CUDL_OK) << cudl_context_last_error(ctx_);
  const std::vector<uint32_t> held = Peek(y, n, pinned);
  for (int64_t i = 0; i < n; ++i) ASSERT_EQ(held[i], 0xffffffffu) << i;
  Open();
  // A second gate that this thread never opens: it lets go by itself
  // after 200 ms. copy_to_host, queued behind it, must wait that long and
  // then read what the program's kernel wrote; on another stream it would
  // return the first gate's values at once.
  std::vector<float> host(n);
  Gate(x, n, 5.0f, 1.0f, 200ull * 1000 * 1000);
  ASSERT_EQ(cudl_tensor_copy_to_host(tx, host.data(), n * sizeof(float)),
            CUDL_OK);
  EXPECT_EQ(__atomic_load_n(&gate_[1], __ATOMIC_SEQ_CST), 1)
      << "the copy did not wait";
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(host[i], 5.0f + static_cast<float>(i)) << i;
  const std::vector<float> ys = Read(y, n);
  for (int64_t i = 0; i < n; ++i)
    ASSERT_EQ(ys[i], -2.0f + static_cast<float>(i) * 0.25f) << i;
  cudaFreeHost(pinned);
}

// Wrapped device memory is the tensor's storage, not a copy of it; it is
// not counted, and neither the tensor nor its views free it.
TEST_F(CudaInterop, WrappedDeviceMemoryIsUsedInPlaceAndNeverFreed) {
  const int64_t rows = 64, cols = 64;
  void *p = nullptr;
  CUDA_OK(cudaMalloc(&p, rows * cols * sizeof(float)));
  cudl_memory_stats before, after;
  ASSERT_EQ(cudl_context_memory_stats(ctx_, &before), CUDL_OK);
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {rows, cols};
  ASSERT_EQ(cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, 2, shape, p, &t), CUDL_OK)
      << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_tensor_data(t), p);
  EXPECT_EQ(cudl_tensor_device(t), CUDL_DEVICE_CUDA);
  ASSERT_EQ(cudl_context_memory_stats(ctx_, &after), CUDL_OK);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);

  ASSERT_EQ(cudl_tensor_fill(t, 1.5f), CUDL_OK);
  cudl_tensor *row = nullptr, *flat = nullptr;
  ASSERT_EQ(cudl_tensor_narrow(t, 3, 1, &row), CUDL_OK);
  ASSERT_EQ(cudl_tensor_flatten(t, 0, -1, &flat), CUDL_OK);
  EXPECT_EQ(cudl_tensor_data(row), static_cast<float *>(p) + 3 * cols);
  ASSERT_EQ(cudl_tensor_fill(row, -4.0f), CUDL_OK);
  ASSERT_EQ(cudl_context_synchronize(ctx_), CUDL_OK);
  const std::vector<float> values = Read(static_cast<float *>(p), rows * cols);
  for (int64_t i = 0; i < rows * cols; ++i)
    ASSERT_EQ(values[i], i / cols == 3 ? -4.0f : 1.5f) << i;

  cudl_tensor_destroy(t);
  cudl_tensor_destroy(row);
  cudl_tensor_destroy(flat);
  ASSERT_EQ(cudl_context_synchronize(ctx_), CUDL_OK);
  // Still allocated: usable, and freed once, by its owner.
  CUDA_OK(cudaMemset(p, 0, rows * cols * sizeof(float)));
  CUDA_OK(cudaDeviceSynchronize());
  EXPECT_EQ(cudaFree(p), cudaSuccess);
  ASSERT_EQ(cudl_context_memory_stats(ctx_, &after), CUDL_OK);
  EXPECT_EQ(after.bytes_in_use, before.bytes_in_use);
}

// A model (cuDNN convolutions, cuBLAS products, cudl's kernels) on the
// program's memory and stream: the input written by the program's kernel
// behind the gate, the output copied into the program's buffer and read
// by its next kernel, all queued before the gate opens; the results are
// the CPU's.
TEST_F(CudaInterop, ModelForwardOnTheCallersStreamMatchesTheCpu) {
  const int64_t batch = 3, channels = 2, size = 12, classes = 5;
  const int64_t numel = batch * channels * size * size;
  const float base = -1.0f, step = 2.0f / static_cast<float>(numel);
  cudl_context *cpu = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &cpu), CUDL_OK);
  cudl_model *on_cpu = nullptr, *on_gpu = nullptr;
  ASSERT_EQ(
      cudl_zoo_small_cnn(cpu, channels, size, size, classes, 0.0f, &on_cpu),
      CUDL_OK);
  ASSERT_EQ(
      cudl_zoo_small_cnn(ctx_, channels, size, size, classes, 0.0f, &on_gpu),
      CUDL_OK);
  for (cudl_model *m : {on_cpu, on_gpu}) {
    ASSERT_EQ(cudl_model_compile_inference(m, 4), CUDL_OK);
    ASSERT_EQ(cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM), CUDL_OK);
  }

  // The CPU's answer on the same input.
  std::vector<float> input(numel);
  for (int64_t i = 0; i < numel; ++i)
    input[i] = base + static_cast<float>(i) * step;
  cudl_tensor *cpu_x = nullptr;
  const int64_t shape[] = {batch, channels, size, size};
  ASSERT_EQ(cudl_tensor_create(cpu, CUDL_DTYPE_F32, 4, shape, &cpu_x), CUDL_OK);
  ASSERT_EQ(
      cudl_tensor_copy_from_host(cpu_x, input.data(), numel * sizeof(float)),
      CUDL_OK);
  ASSERT_EQ(cudl_model_forward(on_cpu, cpu_x, nullptr, nullptr), CUDL_OK);
  std::vector<float> expected(batch * classes);
  ASSERT_EQ(cudl_tensor_copy_to_host(cudl_model_output(on_cpu), expected.data(),
                                     expected.size() * sizeof(float)),
            CUDL_OK);

  float *x = DeviceFloats(numel), *out = DeviceFloats(batch * classes);
  float *doubled = DeviceFloats(batch * classes);
  uint32_t *pinned = nullptr;
  CUDA_OK(cudaMallocHost(reinterpret_cast<void **>(&pinned),
                         batch * classes * sizeof(float)));
  cudl_tensor *tx = Wrap({batch, channels, size, size}, x);
  cudl_tensor *tout = Wrap({batch, classes}, out);
  ASSERT_NE(tout, nullptr);
  // A first forward chooses the convolution algorithms (which waits).
  CUDA_OK(cudaMemcpy(x, input.data(), numel * sizeof(float),
                     cudaMemcpyHostToDevice));
  CUDA_OK(cudaDeviceSynchronize());
  ASSERT_EQ(cudl_model_forward(on_gpu, tx, nullptr, nullptr), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_context_synchronize(ctx_), CUDL_OK);
  CUDA_OK(cudaMemset(x, 0, numel * sizeof(float)));
  CUDA_OK(cudaMemset(out, 0xff, batch * classes * sizeof(float)));
  // The legacy stream's work is not ordered with the non-blocking
  // streams': finished before the gate goes up.
  CUDA_OK(cudaDeviceSynchronize());

  Gate(x, numel, base, step);
  ASSERT_EQ(cudl_model_forward(on_gpu, tx, nullptr, nullptr), CUDL_OK)
      << cudl_context_last_error(ctx_);
  ASSERT_EQ(cudl_tensor_copy(tout, cudl_model_output(on_gpu)), CUDL_OK)
      << cudl_context_last_error(ctx_);
  CUDA_OK(cudl_test_affine(stream_, out, doubled, batch * classes, 2.0f, 0.0f));
  const std::vector<uint32_t> held = Peek(out, batch * classes, pinned);
  for (size_t i = 0; i < held.size(); ++i) ASSERT_EQ(held[i], 0xffffffffu) << i;
  EXPECT_EQ(cudaStreamQuery(stream_), cudaErrorNotReady);
  Open();

  const std::vector<float> got = Read(out, batch * classes),
                           twice = Read(doubled, batch * classes);
  for (size_t i = 0; i < got.size(); ++i) {
    // f32 on both (TF32 is off by default): sums of a few hundred
    // products in different orders differ by rounding only.
    EXPECT_NEAR(got[i], expected[i], 1e-4 + 1e-4 * std::fabs(expected[i])) << i;
    EXPECT_EQ(twice[i], 2.0f * got[i]) << i;
  }
  cudaFreeHost(pinned);
  cudl_tensor_destroy(cpu_x);
  cudl_model_destroy(on_cpu);
  cudl_model_destroy(on_gpu);
  cudl_context_destroy(cpu);
}

TEST_F(CudaInterop, MemoryThatIsNotTheContextsGpusIsRefused) {
  const int64_t shape[] = {64};
  cudl_tensor *t = nullptr;
  // Host memory, pageable and page-locked.
  void *host = std::aligned_alloc(64, 64 * sizeof(float));
  ASSERT_NE(host, nullptr);
  EXPECT_EQ(cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, 1, shape, host, &t),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(t, nullptr);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "not device memory"))
      << cudl_context_last_error(ctx_);
  std::free(host);
  void *pinned = nullptr;
  CUDA_OK(cudaMallocHost(&pinned, 64 * sizeof(float)));
  EXPECT_EQ(cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, 1, shape, pinned, &t),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(
      HasSubstr(cudl_context_last_error(ctx_), "page-locked host memory"))
      << cudl_context_last_error(ctx_);
  cudaFreeHost(pinned);
  // Misaligned device memory; a size running far past the allocation.
  float *d = DeviceFloats(64);
  EXPECT_EQ(cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, 1, shape, d + 1, &t),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "not aligned"));
  const int64_t tebibyte[] = {int64_t{1} << 38};
  EXPECT_EQ(cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, 1, tebibyte, d, &t),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "the last byte of data"))
      << cudl_context_last_error(ctx_);
  EXPECT_EQ(t, nullptr);
  // The context still works.
  cudl_tensor *ok = Wrap({64}, d);
  ASSERT_EQ(cudl_tensor_fill(ok, 2.0f), CUDL_OK);
  ASSERT_EQ(cudl_context_synchronize(ctx_), CUDL_OK);
  EXPECT_EQ(Read(d, 64)[63], 2.0f);
}

TEST_F(CudaInterop, AnotherGpusMemoryAndStreamAreRefused) {
  int count = 0;
  CUDA_OK(cudaGetDeviceCount(&count));
  if (count < 2)
    GTEST_SKIP() << "one GPU: no other GPU's memory or stream to refuse";
  void *theirs = nullptr;
  cudaStream_t their_stream = nullptr;
  CUDA_OK(cudaSetDevice(1));
  CUDA_OK(cudaMalloc(&theirs, 256));
  CUDA_OK(cudaStreamCreate(&their_stream));
  CUDA_OK(cudaSetDevice(0));
  const int64_t shape[] = {64};
  cudl_tensor *t = nullptr;
  EXPECT_EQ(cudl_tensor_wrap(ctx_, CUDL_DTYPE_F32, 1, shape, theirs, &t),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "memory of cuda:1"))
      << cudl_context_last_error(ctx_);
#  if CUDART_VERSION >= 12080
  cudl_context *wrong = nullptr;
  EXPECT_EQ(cudl_context_create_cuda_stream(0, their_stream, &wrong),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(wrong, nullptr);
#  endif
  cudaStreamDestroy(their_stream);
  cudaFree(theirs);
}

TEST_F(CudaInterop, StreamArgumentsRefused) {
  cudl_test::LogCapture log;
  cudl_context *other = nullptr;
  EXPECT_EQ(cudl_context_create_cuda_stream(0, cudaStreamPerThread, &other),
            CUDL_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(other, nullptr);
  bool said = false;
  for (const auto &r : log.records())
    said = said || HasSubstr(r.message, "cudaStreamPerThread");
  EXPECT_TRUE(said);
  EXPECT_EQ(cudl_context_create_cuda_stream(0, nullptr, &other),
            CUDL_ERR_INVALID_ARGUMENT);
  int count = 0;
  CUDA_OK(cudaGetDeviceCount(&count));
  EXPECT_EQ(cudl_context_create_cuda_stream(count, stream_, &other),
            CUDL_ERR_NO_DEVICE);
  // The legacy default stream is a stream like another.
  ASSERT_EQ(cudl_context_create_cuda_stream(0, cudaStreamLegacy, &other),
            CUDL_OK);
  cudl_tensor *t = nullptr;
  const int64_t shape[] = {5};
  ASSERT_EQ(cudl_tensor_create(other, CUDL_DTYPE_F32, 1, shape, &t), CUDL_OK);
  ASSERT_EQ(cudl_tensor_fill(t, 7.0f), CUDL_OK);
  float v[5];
  ASSERT_EQ(cudl_tensor_copy_to_host(t, v, sizeof v), CUDL_OK);
  EXPECT_EQ(v[4], 7.0f);
  cudl_tensor_destroy(t);
  cudl_context_destroy(other);
}

}  // namespace

#else  // !CUDL_TEST_HAVE_CUDA

TEST(CudaInterop, NeedsACudaBuild) {
  GTEST_SKIP()
      << "this cudl was built without CUDA (CUDL_CUDA=OFF or no nvcc): no CUDA "
         "program to embed it in";
}

#endif
