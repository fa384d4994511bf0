// test_util.h - helpers shared by the unit tests (header only).
//
//  * LogCapture: installs a cudl log callback for its lifetime and restores
//    the silent default (NULL) when it goes away.
//  * Reference random generators written from the documentation in
//    cudl/tensor.h and core/philox.h, independent of the library's own
//    element layout code: they call only cudl_philox4x32_10 (checked against
//    the Random123 known-answer vectors in test_philox.cpp) and do the
//    counter/key packing and the integer-to-float maps themselves.
//  * Bit-exact and ulp comparisons of float arrays.
//  * Counting / failing host allocators for cudl_context_set_allocator.
#ifndef CUDL_TEST_UTIL_H
#define CUDL_TEST_UTIL_H

#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "core/half.h"
#include "core/philox.h"
#include "cudl/cudl.h"

namespace cudl_test {

// ---------------------------------------------------------------------------
// Logging
// ---------------------------------------------------------------------------

struct LogRecord {
  cudl_log_level level;
  std::string message;
};

// Installs a callback that records every message; the destructor restores
// NULL (silent), so one test cannot leak its callback into the next.
class LogCapture {
 public:
  LogCapture() { cudl_set_log_callback(&LogCapture::Callback, this); }
  ~LogCapture() { cudl_set_log_callback(nullptr, nullptr); }
  LogCapture(const LogCapture &) = delete;
  LogCapture &operator=(const LogCapture &) = delete;

  std::vector<LogRecord> records() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return records_;
  }
  void clear() {
    std::lock_guard<std::mutex> lock(mutex_);
    records_.clear();
  }
  // Number of messages at exactly `level`.
  size_t count(cudl_log_level level) const {
    std::lock_guard<std::mutex> lock(mutex_);
    size_t n = 0;
    for (const LogRecord &r : records_) n += r.level == level ? 1 : 0;
    return n;
  }
  // True when some message at `level` contains `needle`.
  bool contains(cudl_log_level level, const std::string &needle) const {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const LogRecord &r : records_)
      if (r.level == level && r.message.find(needle) != std::string::npos)
        return true;
    return false;
  }
  // All messages, one a line, for failure output.
  std::string dump() const {
    std::lock_guard<std::mutex> lock(mutex_);
    std::string s;
    for (const LogRecord &r : records_) {
      s += cudl_log_level_name(r.level);
      s += ": ";
      s += r.message;
      s += '\n';
    }
    return s.empty() ? std::string("(no messages)\n") : s;
  }

 private:
  static void Callback(cudl_log_level level, const char *message,
                       void *user_data) {
    LogCapture *self = static_cast<LogCapture *>(user_data);
    std::lock_guard<std::mutex> lock(self->mutex_);
    self->records_.push_back({level, message == nullptr ? "(null)" : message});
  }

  mutable std::mutex mutex_;
  std::vector<LogRecord> records_;
};

// Whether a CUDA context can be made on cuda:0, and if not, why: the
// status and reason of cudl_cuda_device_count (no CUDA, driver or GPU), or
// of cudl_cuda_device_supported (CUDL_ERR_UNSUPPORTED: this build has no
// code for the card), the status and text cudl_context_create fails with.
struct CudaAvailability {
  bool available = false;
  int count = 0;  // cudl_cuda_device_count's
  cudl_status status = CUDL_ERR_INTERNAL;
  std::string reason;
};

inline CudaAvailability QueryCuda() {
  CudaAvailability a;
  char reason[1024];
  std::memset(reason, 'x', sizeof reason);
  a.status = cudl_cuda_device_count(&a.count, reason, sizeof reason);
  if (a.status == CUDL_OK && a.count >= 1)
    a.status = cudl_cuda_device_supported(0, reason, sizeof reason);
  a.available = a.status == CUDL_OK && a.count >= 1;
  reason[sizeof reason - 1] = '\0';  // never trust a missing terminator
  a.reason = reason;
  return a;
}

// ---------------------------------------------------------------------------
// Strings (gmock is not linked, so plain predicates with good messages)
// ---------------------------------------------------------------------------

inline ::testing::AssertionResult HasSubstr(const std::string &haystack,
                                            const std::string &needle) {
  if (haystack.find(needle) != std::string::npos) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << haystack << "' does not contain '" << needle << "'";
}

inline ::testing::AssertionResult StartsWith(const std::string &s, const std::string &prefix) {
  if (s.compare(0, prefix.size(), prefix) == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure() << "'" << s << "' does not start with '" << prefix << "'";
}

// ---------------------------------------------------------------------------
// Reference random numbers
// ---------------------------------------------------------------------------

// Block `block_index` of the stream keyed by `seed`, packed as documented in
// core/philox.h: counter = (index low, index high, 0, 0), key = (seed low,
// seed high).
inline cudl_philox_block ReferenceBlock(uint64_t seed, uint64_t block_index) {
  cudl_philox_block counter;
  counter.v[0] = static_cast<uint32_t>(block_index & 0xffffffffu);
  counter.v[1] = static_cast<uint32_t>(block_index >> 32);
  counter.v[2] = 0;
  counter.v[3] = 0;
  return cudl_philox4x32_10(counter, static_cast<uint32_t>(seed & 0xffffffffu),
                            static_cast<uint32_t>(seed >> 32));
}

// 2^-24 as a float and a double (exact).
constexpr float kTwoPowMinus24f = 5.9604644775390625e-08f;
constexpr double kTwoPowMinus24 = 5.9604644775390625e-08;

// One uniform in [low, high) from word x, as cudl/tensor.h documents:
// (x >> 8) * 2^-24 is exact in float; one fused multiply-add
// fmaf(u, high - low, low); a result that rounds up to `high` (possible
// when low < high) is replaced by the float just below high.
inline float ReferenceUniformFromBits(uint32_t x, float low, float high) {
  const float u = static_cast<float>(x >> 8) * kTwoPowMinus24f;
  const float range = high - low;
  float r = std::fma(u, range, low);  // the float overload: fmaf
  if (low < high && r >= high) r = std::nextafter(high, low);
  return r;
}

// Element i = word i % 4 of block offset + i / 4.
inline std::vector<float> ReferenceUniform(int64_t n, uint64_t seed,
                                           uint64_t offset, float low,
                                           float high) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t b = 0; 4 * b < n; ++b) {
    const cudl_philox_block r = ReferenceBlock(seed, offset + static_cast<uint64_t>(b));
    for (int k = 0; k < 4 && 4 * b + k < n; ++k)
      out[static_cast<size_t>(4 * b + k)] = ReferenceUniformFromBits(r.v[k], low, high);
  }
  return out;
}

// Box-Muller as documented: u1 = ((a >> 8) + 1) * 2^-24 in (0, 1],
// u2 = (b >> 8) * 2^-24 in [0, 1), radius sqrt(-2 log u1), angle 2 pi u2,
// z = radius * cos (which == 0) or radius * sin (which == 1), all in double,
// result (float)fma(stddev, z, mean).
inline float ReferenceNormalFromBits(uint32_t a, uint32_t b, int which,
                                     float mean, float stddev) {
  const double two_pi = 6.283185307179586476925286766559;
  const double u1 = static_cast<double>((a >> 8) + 1u) * kTwoPowMinus24;
  const double u2 = static_cast<double>(b >> 8) * kTwoPowMinus24;
  const double radius = std::sqrt(-2.0 * std::log(u1));
  const double angle = two_pi * u2;
  const double z = radius * (which == 0 ? std::cos(angle) : std::sin(angle));
  return static_cast<float>(std::fma(static_cast<double>(stddev), z,
                                     static_cast<double>(mean)));
}

// Elements 2k and 2k+1 of a block share words (0, 1) and (2, 3): element
// 4b+0 = cos of (v0, v1), 4b+1 = sin of (v0, v1), 4b+2 = cos of (v2, v3),
// 4b+3 = sin of (v2, v3).
inline std::vector<float> ReferenceNormal(int64_t n, uint64_t seed,
                                          uint64_t offset, float mean,
                                          float stddev) {
  std::vector<float> out(static_cast<size_t>(n));
  for (int64_t b = 0; 4 * b < n; ++b) {
    const cudl_philox_block r = ReferenceBlock(seed, offset + static_cast<uint64_t>(b));
    const float four[4] = {ReferenceNormalFromBits(r.v[0], r.v[1], 0, mean, stddev),
                           ReferenceNormalFromBits(r.v[0], r.v[1], 1, mean, stddev),
                           ReferenceNormalFromBits(r.v[2], r.v[3], 0, mean, stddev),
                           ReferenceNormalFromBits(r.v[2], r.v[3], 1, mean, stddev)};
    for (int k = 0; k < 4 && 4 * b + k < n; ++k)
      out[static_cast<size_t>(4 * b + k)] = four[k];
  }
  return out;
}

// ---------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------

inline uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

// Distance in units in the last place between two finite floats (ordered
// integer representation, so it works across zero).
inline int64_t UlpDistance(float a, float b) {
  auto ordered = [](float f) -> int64_t {
    const int32_t i = static_cast<int32_t>(FloatBits(f));
    return i < 0 ? static_cast<int64_t>(INT32_MIN) - i : i;
  };
  const int64_t d = ordered(a) - ordered(b);
  return d < 0 ? -d : d;
}

// Success when `actual` and `expected` are equal bit for bit; otherwise
// the number of differing elements and the first few, with indices.
inline ::testing::AssertionResult BitEqual(const std::vector<float> &actual,
                                           const std::vector<float> &expected) {
  if (actual.size() != expected.size())
    return ::testing::AssertionFailure()
           << "sizes differ: " << actual.size() << " vs " << expected.size();
  size_t mismatches = 0;
  std::string first;
  for (size_t i = 0; i < actual.size(); ++i) {
    if (FloatBits(actual[i]) != FloatBits(expected[i])) {
      if (mismatches < 5) {
        char line[160];
        std::snprintf(line, sizeof line, "\n  [%zu] got %.9g (0x%08x), want %.9g (0x%08x)",
                      i, static_cast<double>(actual[i]), FloatBits(actual[i]),
                      static_cast<double>(expected[i]), FloatBits(expected[i]));
        first += line;
      }
      ++mismatches;
    }
  }
  if (mismatches == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << mismatches << " of " << actual.size() << " elements differ" << first;
}

// ---------------------------------------------------------------------------
// Tensors
// ---------------------------------------------------------------------------

inline std::vector<float> ReadF32(const cudl_tensor *t) {
  std::vector<float> out(static_cast<size_t>(cudl_tensor_numel(t)));
  const cudl_status s = cudl_tensor_copy_to_host(t, out.data(), out.size() * sizeof(float));
  EXPECT_EQ(s, CUDL_OK) << cudl_status_name(s) << ": "
                        << cudl_context_last_error(cudl_tensor_context(t));
  return out;
}

inline cudl_status WriteF32(cudl_tensor *t, const std::vector<float> &values) {
  return cudl_tensor_copy_from_host(t, values.data(), values.size() * sizeof(float));
}

// The raw elements of a bf16 or f16 tensor.
inline std::vector<uint16_t> ReadBits16(const cudl_tensor *t) {
  std::vector<uint16_t> out(static_cast<size_t>(cudl_tensor_numel(t)));
  const cudl_status s = cudl_tensor_copy_to_host(t, out.data(), out.size() * sizeof(uint16_t));
  EXPECT_EQ(s, CUDL_OK) << cudl_status_name(s) << ": "
                        << cudl_context_last_error(cudl_tensor_context(t));
  return out;
}

// Success when ctx's last error contains every one of `words` (the
// tensors and dtypes a message must name).
inline ::testing::AssertionResult ErrorMentions(const cudl_context *ctx,
                                                const std::vector<std::string> &words) {
  const std::string message = cudl_context_last_error(ctx);
  for (const std::string &w : words)
    if (message.find(w) == std::string::npos)
      return ::testing::AssertionFailure() << "'" << message << "' does not mention '" << w << "'";
  return ::testing::AssertionSuccess();
}

// ---------------------------------------------------------------------------
// Allocators
// ---------------------------------------------------------------------------

// Counts every call, remembers the size and alignment of each live block,
// checks that free gets back the requested size, and can be told to fail
// the k-th allocation (1-based; 0 = never). Fresh memory is filled with
// 0xA5 so a test can tell whether the library cleared it.
struct CountingAllocator {
  size_t allocs = 0;
  size_t frees = 0;
  size_t failed = 0;
  size_t fail_at = 0;           // 1-based index of the allocation to fail
  size_t max_size = size_t{1} << 32;  // larger requests fail (like a full heap)
  size_t size_mismatches = 0;   // free called with a size other than requested
  size_t unknown_frees = 0;     // free of a pointer this allocator never gave
  size_t bad_alignments = 0;    // alignment not a power of two in [1, 4096]
  std::map<void *, std::pair<size_t, size_t>> live;  // ptr -> (size, alignment)
  std::vector<std::pair<size_t, size_t>> requests;   // every (size, alignment)

  cudl_allocator hooks() {
    cudl_allocator a;
    a.alloc = &CountingAllocator::Alloc;
    a.free = &CountingAllocator::Free;
    a.user_data = this;
    return a;
  }

  static void *Alloc(size_t size, size_t alignment, void *user_data) {
    CountingAllocator *self = static_cast<CountingAllocator *>(user_data);
    self->requests.emplace_back(size, alignment);
    const size_t index = self->allocs + self->failed + 1;
    if ((self->fail_at != 0 && index == self->fail_at) || size > self->max_size) {
      ++self->failed;
      return nullptr;
    }
    if (alignment == 0 || (alignment & (alignment - 1)) != 0 || alignment > 4096)
      ++self->bad_alignments;
    size_t align = alignment < sizeof(void *) ? sizeof(void *) : alignment;
    if ((align & (align - 1)) != 0) align = 4096;
    void *p = nullptr;
    if (posix_memalign(&p, align, size) != 0) {
      ++self->failed;
      return nullptr;
    }
    std::memset(p, 0xA5, size);
    ++self->allocs;
    self->live[p] = {size, alignment};
    return p;
  }

  static void Free(void *ptr, size_t size, void *user_data) {
    CountingAllocator *self = static_cast<CountingAllocator *>(user_data);
    ++self->frees;
    auto it = self->live.find(ptr);
    if (it == self->live.end()) {
      ++self->unknown_frees;
      return;  // not ours: do not free it with the wrong allocator
    }
    if (it->second.first != size) ++self->size_mismatches;
    self->live.erase(it);
    std::free(ptr);
  }
};

// A CPU context and tensors that go away with the test. Make() creates an
// f32 tensor (filled from `values` when given) on any context, MakeOf()
// one of any dtype (zeros) on the fixture's.
class TensorFixture : public ::testing::Test {
 protected:
  void SetUp() override { ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_), CUDL_OK); }
  void TearDown() override {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    cudl_context_destroy(ctx_);
  }
  cudl_tensor *Make(cudl_context *ctx, const std::vector<int64_t> &shape,
                    const std::vector<float> &values = {}) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx, CUDL_DTYPE_F32, static_cast<int>(shape.size()),
                                 shape.data(), &t),
              CUDL_OK);
    if (t != nullptr) {
      owned_.push_back(t);
      if (!values.empty()) {
        EXPECT_EQ(cudl_tensor_copy_from_host(t, values.data(), values.size() * sizeof(float)),
                  CUDL_OK);
      }
    }
    return t;
  }
  cudl_tensor *MakeOf(cudl_dtype dtype, const std::vector<int64_t> &shape) {
    cudl_tensor *t = nullptr;
    EXPECT_EQ(cudl_tensor_create(ctx_, dtype, static_cast<int>(shape.size()), shape.data(), &t),
              CUDL_OK);
    if (t != nullptr) owned_.push_back(t);
    return t;
  }
  cudl_context *ctx_ = nullptr;
  std::vector<cudl_tensor *> owned_;
};

// Destroy the tensors of `owned` that belong to ctx (and drop them from the
// list), so that ctx itself can be destroyed before the rest.
inline void DestroyTensorsOf(cudl_context *ctx, std::vector<cudl_tensor *> *owned) {
  for (auto it = owned->begin(); it != owned->end();) {
    if (cudl_tensor_context(*it) == ctx) {
      cudl_tensor_destroy(*it);
      it = owned->erase(it);
    } else {
      ++it;
    }
  }
}

// Bytes as text for failure messages: printable ASCII as is, the rest \xNN,
// cut after max_chars.
inline std::string Printable(const std::string &s,
                             size_t max_chars = std::string::npos) {
  std::string out;
  for (unsigned char c : s) {
    if (c >= 0x20 && c < 0x7F) {
      out.push_back(static_cast<char>(c));
    } else {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\x%02x", c);
      out += buf;
    }
  }
  return out.size() > max_chars ? out.substr(0, max_chars) + "..." : out;
}

// ---------------------------------------------------------------------------
// 16-bit storage, for checking the CPU's bf16 and f16 entries: the library's
// own conversions (core/half.h, themselves checked bit for bit in
// test_tensor.cpp and against the compiler's _Float16 in test_backends.cpp)
// and what a tolerance needs to know of the format.
// ---------------------------------------------------------------------------

struct Lowp {
  cudl_dtype dtype;
  double unit;    // u: half a unit in the last place, relative
  double tiny;    // absolute error allowed below the normal range
  uint16_t nan;   // a NaN, to fill outputs that must be written
  uint16_t Narrow(float v) const {
    return dtype == CUDL_DTYPE_BF16 ? cudl__f32_to_bf16(v) : cudl__f32_to_f16(v);
  }
  float Widen(uint16_t h) const {
    return dtype == CUDL_DTYPE_BF16 ? cudl__bf16_to_f32(h) : cudl__f16_to_f32(h);
  }
  std::vector<uint16_t> Narrow(const std::vector<float> &v) const {
    std::vector<uint16_t> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = Narrow(v[i]);
    return out;
  }
  std::vector<float> Widen(const std::vector<uint16_t> &v) const {
    std::vector<float> out(v.size());
    for (size_t i = 0; i < v.size(); ++i) out[i] = Widen(v[i]);
    return out;
  }
};

inline const Lowp kBf16 = {CUDL_DTYPE_BF16, 0x1p-8, 0x1p-126, 0x7fff};
inline const Lowp kF16 = {CUDL_DTYPE_F16, 0x1p-11, 0x1p-25, 0x7fff};

}  // namespace cudl_test

#endif  // CUDL_TEST_UTIL_H
