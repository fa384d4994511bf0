// test_backends.cpp - the cross-backend operator table (after ggml's
// test-backend-ops): one row per operator and configuration. Each row
//
//   * makes its host inputs from seeded random numbers (the seed is a hash
//     of the row's name, so a row's data never changes when rows are added),
//   * runs forward and, where the operator has one, backward through the
//     public API on a context of the backend under test, returning every
//     output and gradient as host floats (outputs are filled with NaN
//     first, so an element the backend forgets to write fails),
//   * and has a float64 reference written here, from the same host inputs,
//     with a tolerance per row (abs + rel * scale, scale = |want| unless the
//     reference gives a per-element scale such as the sum of |terms| of a
//     reduction, or an explicit per-element bound). Each tolerance says why.
//
// The test is parameterised over rows x dtypes {f32, bf16, f16}: a row
// runs in the dtypes of its operators (ops.def: a FLOATS operator's rows in
// all three, an F32 operator's in f32 alone), and only those pairs are
// instantiated. One test per backend: ctest lists each case as
// Table/BackendOps.Cpu/<op>_<config>_<dtype> and
// Table/BackendOps.Cuda/<op>_<config>_<dtype>; the rows of 2^24+3 elements
// run in bf16 and f16 on CUDA alone, as Table/CudaOnlyOps.Cuda/... (Large).
//
// In bf16 and f16 a row's data inputs are rounded to the dtype on the host
// (with this file's own conversion, not the library's) before both the run
// and the float64 reference, so the reference sees exactly what the backend
// sees; parameters mixed precision keeps in f32 (batch-norm gamma, beta and
// statistics, PReLU slopes) stay f32. A 16-bit result computes in f32 and
// is rounded once when stored, so its tolerance is the row's f32 one plus
// u |result| per 16-bit rounding it passes (u = 2^-8 for bf16, 2^-11 for
// f16; one rounding unless the row says more, where a result goes through
// a 16-bit intermediate: Matches has the details); f32 outputs of a 16-bit
// run (dgamma, dslope) keep their f32 tolerance, their inputs being exact.
// Without a GPU the CUDA cases skip, saying why; the CPU cases check the CPU
// backend against float64 on their own. Flags (RowFlags) add checks: the
// same bits as the CPU (Philox-driven masks and noise, optimizer steps), a
// repeated run giving the same bits, deterministic mode switched on after a
// run in the default mode, TF32 allowed or switched off again, and tensors
// that are unaligned views. Each compared run prints, per output, its
// largest |error| / tolerance.
//
// Adding an operator: write a row builder (or reuse one: an elementwise
// activation is one entry in Activations()) with its float64 reference,
// and add its rows in BuildTable(). docs/testing.md describes the format.
//
// The per-operator files (test_activation.cpp, test_conv.cpp, ...) keep the
// CPU's own tighter bounds, finite differences, bad input and aliasing; a
// tolerance here must hold on every backend, so it is the GPU's: where the
// hand-written CUDA-against-CPU tests that this table replaced had a bound,
// at least that bound plus the CPU's own distance from float64, or else a
// bound in the sum of |terms| that holds for any order of summation.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <functional>
#include <iterator>
#include <limits>
#include <map>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

using cudl_test::BitEqual;

constexpr double kEps = FLT_EPSILON;    // 2^-23
constexpr double kU = FLT_EPSILON / 2;  // unit roundoff of f32
const float kNaN = std::numeric_limits<float>::quiet_NaN();
const float kInf = std::numeric_limits<float>::infinity();
// Past one full CUDA grid of float4 work (8192 blocks x 256 threads x 4 =
// 2^23): every thread of a grid-stride loop goes round more than once, and
// indices pass 2^24, where a float index would lose its last bit.
constexpr int64_t kLarge = (int64_t{1} << 24) + 3;

int64_t Numel(const std::vector<int64_t> &shape) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

std::string ShapeName(const std::vector<int64_t> &shape) {
  std::string s;
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? "x" : "") + std::to_string(shape[i]);
  return s.empty() ? "scalar" : s;
}

// ===========================================================================
// Float formats on the host
// ===========================================================================
//
// Written here from the formats' definitions, independent of the library's
// src/core/half.h, so that a conversion bug there cannot hide in both the
// run and the reference (HostFormats below checks f16 against the
// compiler's _Float16 where it has one).

// A binary floating-point format: `digits` significant bits (the implicit
// one included), normal exponents from emin, subnormals below 2^emin.
struct Format {
  int digits, emin;
  double max;  // the largest finite value
  double u;    // unit roundoff 2^-digits: a rounding's relative error
  double tiny;  // half the smallest subnormal: a rounding's absolute error
};

const Format &FormatOf(cudl_dtype dtype) {
  static const Format f32 = {24, -126, FLT_MAX, 0x1p-24, 0x1p-150};
  static const Format bf16 = {8, -126, 0x1.fep127, 0x1p-8, 0x1p-134};
  static const Format f16 = {11, -14, 65504.0, 0x1p-11, 0x1p-25};
  return dtype == CUDL_DTYPE_BF16 ? bf16 : dtype == CUDL_DTYPE_F16 ? f16 : f32;
}

bool Is16Bit(cudl_dtype dtype) { return dtype == CUDL_DTYPE_BF16 || dtype == CUDL_DTYPE_F16; }

// Compute dtypes, in the order of DtypeSet's bits. A new one goes here,
// with its Format (the host conversion of Env::In and Env::Read, and the
// unit roundoff that scales its tolerances).
struct Dtype {
  const char *name;
  cudl_dtype dtype;
};
const Dtype kDtypes[] = {
    {"f32", CUDL_DTYPE_F32}, {"bf16", CUDL_DTYPE_BF16}, {"f16", CUDL_DTYPE_F16}};

// x rounded once to `dtype`, to nearest with ties to even: magnitudes past
// the largest finite value by half a step or more become infinities, NaN
// stays NaN. From double directly (never through float, which would round
// twice).
double RoundTo(cudl_dtype dtype, double x) {
  if (!std::isfinite(x) || x == 0) return x;
  const Format &f = FormatOf(dtype);
  int e = 0;
  std::frexp(x, &e);  // |x| in [2^(e-1), 2^e)
  const int quantum = std::max(e - 1, f.emin) - (f.digits - 1);  // the step there
  // Scaling by powers of two is exact; nearbyint rounds to nearest even in
  // the default rounding mode.
  const double r = std::ldexp(std::nearbyint(std::ldexp(x, -quantum)), quantum);
  return std::fabs(r) > f.max ? std::copysign(INFINITY, x) : r;
}

// The bits of v (a value of the format, or NaN or an infinity) in bf16:
// the high half of its f32 bits, bf16 being f32 with 16 fewer fraction bits.
uint16_t Bf16Bits(float v) {
  uint32_t u;
  std::memcpy(&u, &v, sizeof u);
  return static_cast<uint16_t>(u >> 16);
}
float Bf16Value(uint16_t bits) {
  const uint32_t u = static_cast<uint32_t>(bits) << 16;
  float v;
  std::memcpy(&v, &u, sizeof v);
  return v;
}

// The bits of v (a value of the format, or NaN or an infinity) in f16:
// sign, 5 exponent bits biased by 15 (0: subnormal, m 2^-24), 10 fraction
// bits.
uint16_t F16Bits(float v) {
  const uint16_t sign = std::signbit(v) ? 0x8000u : 0u;
  const double a = std::fabs(static_cast<double>(v));
  if (std::isnan(v)) return static_cast<uint16_t>(sign | 0x7e00u);
  if (std::isinf(v)) return static_cast<uint16_t>(sign | 0x7c00u);
  if (a < 0x1p-14) return static_cast<uint16_t>(sign | static_cast<uint16_t>(a * 0x1p24));
  int e = 0;
  const double m = std::frexp(a, &e);  // a = m 2^e, m in [0.5, 1)
  const unsigned exponent = static_cast<unsigned>(e - 1 + 15);
  const unsigned fraction = static_cast<unsigned>((2 * m - 1) * 1024);
  return static_cast<uint16_t>(sign | (exponent << 10) | fraction);
}
float F16Value(uint16_t bits) {
  const double sign = (bits & 0x8000u) ? -1.0 : 1.0;
  const int exponent = (bits >> 10) & 0x1f, fraction = bits & 0x3ff;
  if (exponent == 31)
    return static_cast<float>(fraction ? std::copysign(NAN, sign) : sign * INFINITY);
  if (exponent == 0) return static_cast<float>(sign * std::ldexp(fraction, -24));
  return static_cast<float>(sign * std::ldexp(1024 + fraction, exponent - 25));
}

// ===========================================================================
// Rows
// ===========================================================================

// Host data: float values, or i32 ones (class labels). Float data is in
// the dtype under test, unless the tensor has a dtype of its own: f32 for
// what mixed precision keeps in f32 (Param), or a conversion's source.
struct HostTensor {
  std::vector<int64_t> shape;
  std::vector<float> f;
  std::vector<int32_t> i;
  bool is_i32 = false;
  bool own_dtype = false;
  cudl_dtype dtype = CUDL_DTYPE_F32;  // when own_dtype
};

// Data in the dtype under test (x, y, gradients, weights, biases).
HostTensor Data(std::vector<int64_t> shape, std::vector<float> values) {
  HostTensor t;
  t.shape = std::move(shape);
  t.f = std::move(values);
  return t;
}

// Float data in `dtype` whatever the dtype under test.
HostTensor Typed(cudl_dtype dtype, std::vector<int64_t> shape, std::vector<float> values) {
  HostTensor t = Data(std::move(shape), std::move(values));
  t.own_dtype = true;
  t.dtype = dtype;
  return t;
}

// A parameter or statistic that stays f32 in every dtype (gamma, beta,
// running statistics, PReLU slopes).
HostTensor Param(std::vector<int64_t> shape, std::vector<float> values) {
  return Typed(CUDL_DTYPE_F32, std::move(shape), std::move(values));
}

HostTensor I32(std::vector<int64_t> shape, std::vector<int32_t> values) {
  HostTensor t;
  t.shape = std::move(shape);
  t.i = std::move(values);
  t.is_i32 = true;
  return t;
}

using Inputs = std::map<std::string, HostTensor>;

// A tensor's contents on the host, and the dtype the tensor holds them in.
struct Values {
  std::vector<float> v;
  cudl_dtype dtype = CUDL_DTYPE_F32;
};

// One named output or gradient, read back to the host (or a number the
// run computed on the host, such as how far the RNG offset moved).
struct Output {
  std::string name;
  std::vector<float> v;
  cudl_dtype dtype = CUDL_DTYPE_F32;  // where it was stored: its rounding
  Output(std::string n, Values read)
      : name(std::move(n)), v(std::move(read.v)), dtype(read.dtype) {}
  Output(std::string n, std::vector<float> host) : name(std::move(n)), v(std::move(host)) {}
};
using Outputs = std::vector<Output>;

// |got - want| <= abs + rel * scale.
struct Tol {
  double abs;
  double rel;
};

// The float64 reference of one output.
struct Expect {
  std::string name;
  std::vector<double> value;
  std::vector<double> scale;  // multiplies tol.rel; empty: |value|
  std::vector<double> bound;  // an explicit allowed error per element (replaces tol)
  bool has_tol = false;       // tol below instead of the row's
  Tol tol{0, 0};
  // In bf16 and f16: the 16-bit roundings the result passes, each allowed
  // u times its magnitude (Matches). 1, its store, unless a row says
  // otherwise: more where it passes a 16-bit intermediate, 0 where it must
  // be correctly rounded.
  int roundings = 1;

  Expect(std::string n, std::vector<double> v) : name(std::move(n)), value(std::move(v)) {}
  Expect &&Scale(std::vector<double> s) && {
    scale = std::move(s);
    return std::move(*this);
  }
  Expect &&Bound(std::vector<double> b) && {
    bound = std::move(b);
    return std::move(*this);
  }
  Expect &&With(Tol t) && {
    has_tol = true;
    tol = t;
    return std::move(*this);
  }
  Expect &&Roundings(int k) && {
    roundings = k;
    return std::move(*this);
  }
};
using Expected = std::vector<Expect>;

// A vector of `items`, moved in (a braced list would copy them: the large
// rows hold 2^24 elements an output).
template <typename V, typename... T>
V Moved(T &&...items) {
  V v;
  v.reserve(sizeof...(items));
  (v.push_back(std::forward<T>(items)), ...);
  return v;
}

// Seeded host data for a row's inputs.
class Gen {
 public:
  explicit Gen(uint32_t seed) : gen_(seed) {}
  std::vector<float> Uniform(size_t n, float lo, float hi) {
    std::uniform_real_distribution<float> dist(lo, hi);
    std::vector<float> v(n);
    for (float &x : v) x = dist(gen_);
    return v;
  }
  std::vector<float> Normal(size_t n, double mean, double stddev) {
    std::normal_distribution<double> dist(mean, stddev);
    std::vector<float> v(n);
    for (float &x : v) x = static_cast<float>(dist(gen_));
    return v;
  }
  std::vector<int32_t> Labels(size_t n, int32_t classes) {
    std::uniform_int_distribution<int32_t> dist(0, classes - 1);
    std::vector<int32_t> v(n);
    for (int32_t &y : v) y = dist(gen_);
    return v;
  }

 private:
  std::mt19937 gen_;
};

// Puts `values` at evenly spread places of v (only where v has room for
// all of them twice over, so small shapes keep plain data).
void Sprinkle(std::vector<float> *v, const std::vector<float> &values) {
  const size_t n = v->size(), k = values.size();
  if (n < 2 * k) return;
  for (size_t j = 0; j < k; ++j) (*v)[(2 * j + 1) * n / (2 * k)] = values[j];
}

// Extremal inputs for elementwise operators: NaN, infinities, signed
// zeros, the largest floats (infinities in bf16 and f16), tiny normals
// (zeros in f16), arguments where exp overflows or underflows in float,
// and values near f16's largest, 65504, whose products overflow it.
const std::vector<float> kExtremes = {kNaN,    kInf,     -kInf,   0.0f,   -0.0f,   1e4f,
                                      -1e4f,   FLT_MAX,  -FLT_MAX, 1e-30f, -1e-30f, 88.75f,
                                      -88.75f, -104.0f,  6e4f,     -6e4f};

class Env;

// What a row adds to the plain comparison with float64.
enum RowFlags : unsigned {
  // On every other backend also run on the CPU and compare bit for bit
  // (operators whose results cudl documents as identical on every device).
  kSameBitsAsCpu = 1u << 0,
  // Run twice more on the same context: the last two runs give the same
  // bits.
  kRepeatable = 1u << 1,
  // A first run in the default mode (filling any per-shape algorithm
  // cache), then deterministic mode switched on in the same context (the
  // mode is part of the cache key: the next run must not reuse the default
  // choice) and the row run again; every run against float64.
  kDeterministic = 1u << 2,
  // Run with TF32 allowed (the row's tolerance must allow for it).
  kAllowTf32 = 1u << 3,
  // A first run with TF32 allowed (not compared), then TF32 switched off
  // again in the same context and the row run again: f32 accuracy again.
  kAfterTf32 = 1u << 5,
  // Every tensor a view one element into a larger one: storage not 16-byte
  // aligned, so CUDA kernels take their scalar path instead of float4.
  kUnaligned = 1u << 4,
  kChannelsLast = 1u << 5,  // 4-D data tensors channels-last (Env)
};

// The dtypes a row runs in: its operators' set in ops.def (FLOATS: all
// three; F32: f32 alone).
enum DtypeSet : unsigned {
  kF32Only = 1u << 0,
  kFloats = (1u << 0) | (1u << 1) | (1u << 2),
};

struct Row {
  std::string op;      // the operator (family), e.g. "relu", "conv2d"
  std::string config;  // shape and parameters, e.g. "7x13", "inplace_1021"
  Tol tol;             // for outputs whose Expect gives none
  std::function<Inputs(Gen &)> inputs;
  std::function<Outputs(Env &, const Inputs &)> run;
  std::function<Expected(const Inputs &)> reference;
  unsigned flags = 0;
  unsigned dtypes = kF32Only;  // a DtypeSet: bit k is kDtypes[k]
  // Those of `dtypes` the CPU runs it in too; the others run on CUDA alone
  // (Table/CudaOnlyOps.Cuda/...). All, except for rows that are there for
  // the kernels and cost the CPU much (Large).
  unsigned cpu_dtypes = kFloats;

  // A gtest name: letters, digits and single underscores.
  std::string name() const {
    std::string raw = op + "_" + config, s;
    for (char c : raw) {
      const bool word = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
      if (word)
        s += c;
      else if (!s.empty() && s.back() != '_')
        s += '_';
    }
    while (!s.empty() && s.back() == '_') s.pop_back();
    return s;
  }
};

// ===========================================================================
// Running a row on a context
// ===========================================================================

// The tensors of one run on one context, and the status of its calls.
class Env {
 public:
  Env(cudl_context *ctx, cudl_dtype dtype) : ctx_(ctx), dtype_(dtype) {}
  ~Env() {
    for (auto &fn : cleanup_) fn();
    for (cudl_tensor *t : tensors_) cudl_tensor_destroy(t);
  }
  Env(const Env &) = delete;
  Env &operator=(const Env &) = delete;

  cudl_context *ctx() const { return ctx_; }

  // From now on, create every tensor as a view `offset` elements into a
  // larger one (kUnaligned).
  void UseViews(int64_t offset) { view_offset_ = offset; }

  // From now on, hand the operators every 4-D float tensor channels-last
  // (kChannelsLast): In converts the NCHW values into one, Out makes one,
  // Read converts back, so a row's inputs, reference and comparison stay
  // NCHW while the operator under test reads and writes channels-last
  // bytes. The conversions are exact (cudl_tensor_convert in one dtype).
  void UseChannelsLast() { channels_last_ = true; }

  // A tensor holding `h`: float data in the dtype under test (or its own),
  // rounded to it on the host (CheckRow has already rounded the row's
  // inputs, for the reference; this keeps a direct caller safe); i32 as is.
  cudl_tensor *In(const HostTensor &h) {
    const cudl_dtype dtype = h.is_i32 ? CUDL_DTYPE_I32 : h.own_dtype ? h.dtype : dtype_;
    cudl_tensor *t = Create(dtype, h.shape);
    if (t == nullptr) return t;
    if (Numel(h.shape) == 0) {
      if (ChannelsLast(t))
        Call(cudl_tensor_set_layout(t, CUDL_LAYOUT_NHWC), "cudl_tensor_set_layout");
      return t;
    }
    Fill(t, h, dtype);
    if (!ChannelsLast(t)) return t;
    cudl_tensor *cl = Create(dtype, h.shape);
    if (cl == nullptr) return nullptr;
    Call(cudl_tensor_set_layout(cl, CUDL_LAYOUT_NHWC), "cudl_tensor_set_layout");
    Call(cudl_tensor_convert(cl, t), "cudl_tensor_convert to channels-last");
    return cl;
  }
  cudl_tensor *In(const Inputs &in, const char *name) { return In(in.at(name)); }

  // An output tensor in the dtype under test, filled with NaN so that every
  // element must be written.
  cudl_tensor *Out(const std::vector<int64_t> &shape) { return OutIn(dtype_, shape); }
  // An output that stays f32 in every dtype (statistics, parameter
  // gradients such as dgamma and dslope).
  cudl_tensor *OutF32(const std::vector<int64_t> &shape) {
    return OutIn(CUDL_DTYPE_F32, shape);
  }

  // t's contents as floats (16-bit values widened exactly), with its dtype;
  // NCHW order whatever t's layout.
  Values Read(const cudl_tensor *t) {
    if (t == nullptr) return {};
    if (cudl_tensor_layout(t) == CUDL_LAYOUT_NHWC) {
      std::vector<int64_t> shape(cudl_tensor_shape(t), cudl_tensor_shape(t) + 4);
      cudl_tensor *nchw = Create(cudl_tensor_dtype(t), shape);
      if (nchw == nullptr) return {};
      Call(cudl_tensor_convert(nchw, t), "cudl_tensor_convert from channels-last");
      return ReadBytes(nchw);
    }
    return ReadBytes(t);
  }

 private:
  bool ChannelsLast(const cudl_tensor *t) const {
    return channels_last_ && cudl_tensor_ndim(t) == 4 && cudl_tensor_dtype(t) != CUDL_DTYPE_I32;
  }

  void Fill(cudl_tensor *t, const HostTensor &h, cudl_dtype dtype) {
    if (Is16Bit(dtype)) {
      std::vector<uint16_t> bits(h.f.size());
      for (size_t k = 0; k < bits.size(); ++k) {
        const float v = static_cast<float>(RoundTo(dtype, h.f[k]));
        bits[k] = dtype == CUDL_DTYPE_BF16 ? Bf16Bits(v) : F16Bits(v);
      }
      Call(cudl_tensor_copy_from_host(t, bits.data(), bits.size() * sizeof(uint16_t)),
           "cudl_tensor_copy_from_host");
      return;
    }
    const size_t bytes = h.is_i32 ? h.i.size() * sizeof(int32_t) : h.f.size() * sizeof(float);
    Call(cudl_tensor_copy_from_host(t,
                                    h.is_i32 ? static_cast<const void *>(h.i.data())
                                             : static_cast<const void *>(h.f.data()),
                                    bytes),
         "cudl_tensor_copy_from_host");
  }

  Values ReadBytes(const cudl_tensor *t) {
    const cudl_dtype dtype = cudl_tensor_dtype(t);
    const size_t n = static_cast<size_t>(cudl_tensor_numel(t));
    Values out{std::vector<float>(n), dtype};
    if (n == 0) return out;
    if (Is16Bit(dtype)) {
      std::vector<uint16_t> bits(n);
      Call(cudl_tensor_copy_to_host(t, bits.data(), n * sizeof(uint16_t)),
           "cudl_tensor_copy_to_host");
      for (size_t k = 0; k < n; ++k)
        out.v[k] = dtype == CUDL_DTYPE_BF16 ? Bf16Value(bits[k]) : F16Value(bits[k]);
      return out;
    }
    Call(cudl_tensor_copy_to_host(t, out.v.data(), n * sizeof(float)), "cudl_tensor_copy_to_host");
    return out;
  }

 public:
  uint64_t RngOffset() {
    uint64_t seed = 0, offset = 0;
    Call(cudl_context_rng_state(ctx_, &seed, &offset), "cudl_context_rng_state");
    return offset;
  }

  // Runs at destruction, before the tensors go (an optimizer, say).
  void Defer(std::function<void()> fn) { cleanup_.push_back(std::move(fn)); }

  // Records a failed call: CUDL_ERR_UNSUPPORTED (a backend may leave an
  // operator out) separately from real failures.
  void Call(cudl_status s, const char *what) {
    if (s == CUDL_OK) return;
    if (s == CUDL_ERR_UNSUPPORTED) {
      if (unsupported_.empty())
        unsupported_ = std::string(what) + ": " + cudl_context_last_error(ctx_);
      return;
    }
    ++failures_;
    ADD_FAILURE() << what << " returned " << cudl_status_name(s) << ": "
                  << cudl_context_last_error(ctx_);
  }

  int failures() const { return failures_; }
  const std::string &unsupported() const { return unsupported_; }

 private:
  cudl_tensor *OutIn(cudl_dtype dtype, const std::vector<int64_t> &shape) {
    cudl_tensor *t = Create(dtype, shape);
    if (t != nullptr && ChannelsLast(t))
      Call(cudl_tensor_set_layout(t, CUDL_LAYOUT_NHWC), "cudl_tensor_set_layout");
    if (t != nullptr && Numel(shape) > 0) Call(cudl_tensor_fill(t, kNaN), "cudl_tensor_fill");
    return t;
  }

  cudl_tensor *Create(cudl_dtype dtype, const std::vector<int64_t> &shape) {
    cudl_tensor *t = nullptr;
    if (view_offset_ == 0) {
      Call(cudl_tensor_create(ctx_, dtype, static_cast<int>(shape.size()), shape.data(), &t),
           "cudl_tensor_create");
      if (t != nullptr) tensors_.push_back(t);
      return t;
    }
    // [offset + n], narrowed to its last n elements, reshaped to `shape`.
    const int64_t n = Numel(shape), whole = view_offset_ + n;
    cudl_tensor *base = nullptr, *tail = nullptr;
    Call(cudl_tensor_create(ctx_, dtype, 1, &whole, &base), "cudl_tensor_create");
    if (base == nullptr) return nullptr;
    tensors_.push_back(base);
    Call(cudl_tensor_narrow(base, view_offset_, n, &tail), "cudl_tensor_narrow");
    if (tail == nullptr) return nullptr;
    tensors_.push_back(tail);
    Call(cudl_tensor_reshape(tail, static_cast<int>(shape.size()), shape.data(), &t),
         "cudl_tensor_reshape");
    if (t != nullptr) tensors_.push_back(t);
    return t;
  }

  cudl_context *ctx_;
  cudl_dtype dtype_;
  std::vector<cudl_tensor *> tensors_;
  std::vector<std::function<void()>> cleanup_;
  std::string unsupported_;
  int failures_ = 0;
  int64_t view_offset_ = 0;
  bool channels_last_ = false;
};

// Calls a public function and records its status with the call's text.
#define CALL(env, expr) (env).Call((expr), #expr)

// ===========================================================================
// Comparison
// ===========================================================================

// Every element of got within its tolerance of want: NaN where want is
// NaN, infinities equal, and otherwise |got - want| <= allowed, or got is
// want rounded to the dtype got was stored in (so Tol{0, 0} means
// "correctly rounded"). An infinity where want is finite must be what a
// value within the tolerance rounds to (overflow past the dtype's largest
// finite value). *worst receives the largest |got - want| / allowed (0 when
// every element is exact), for the log: how close a backend comes to its
// tolerance.
//
// allowed: the row's f32 tolerance e (its Tol, or the Expect's bound), and
// for a 16-bit result the roundings to 16 bits it passes: its store, at
// most u (|want| + e) + tiny away from the f32 result (u the dtype's unit
// roundoff, tiny half its smallest subnormal), and each 16-bit intermediate
// before it u scale + tiny (scale: the Expect's, which bounds every partial
// result, or |want|).
::testing::AssertionResult Matches(const Output &got, const Expect &want, const Tol &row_tol,
                                   double *worst) {
  if (got.v.size() != want.value.size())
    return ::testing::AssertionFailure()
           << want.name << ": " << got.v.size() << " elements, want " << want.value.size();
  const Tol tol = want.has_tol ? want.tol : row_tol;
  const Format &format = FormatOf(got.dtype);
  const bool narrow = Is16Bit(got.dtype);
  size_t bad = 0;
  *worst = 0;
  std::string first;
  for (size_t i = 0; i < got.v.size(); ++i) {
    const double w = want.value[i], g = got.v[i];
    double allowed = 0;
    bool ok;
    if (std::isnan(w)) {
      ok = std::isnan(g);
    } else if (std::isinf(w)) {
      ok = g == w;
    } else {
      const double scale = want.scale.empty() ? std::fabs(w) : want.scale[i];
      allowed = !want.bound.empty() ? want.bound[i] : tol.abs + tol.rel * scale;
      if (narrow && want.roundings > 0)
        allowed += format.u * (std::fabs(w) + allowed) + format.tiny +
                   (want.roundings - 1) * (format.u * std::max(scale, std::fabs(w)) + format.tiny);
      if (!std::isfinite(g)) {
        ok = std::isinf(g) && RoundTo(got.dtype, w + std::copysign(allowed, g)) == g;
      } else {
        const double err = std::fabs(g - w);
        const bool rounded = g == RoundTo(got.dtype, w);
        ok = err <= allowed || rounded;
        if (!rounded && err > 0) *worst = std::max(*worst, allowed > 0 ? err / allowed : INFINITY);
      }
    }
    if (!ok) {
      if (bad < 5) {
        char line[200];
        std::snprintf(line, sizeof line,
                      "\n  [%zu] got %.9g, want %.17g (error %.3g, allowed %.3g)", i, g, w,
                      std::fabs(g - w), allowed);
        first += line;
      }
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  ::testing::AssertionResult r = ::testing::AssertionFailure();
  r << want.name << " (" << cudl_dtype_name(got.dtype) << "): " << bad << " of " << got.v.size()
    << " elements off";
  if (*worst > 0) r << " (worst " << *worst << " times the tolerance)";
  return r << first;
}

// ===========================================================================
// Shared float64 helpers
// ===========================================================================

// The [0, 1) number of word `word` of the Philox stream at element i, as
// cudl/tensor.h documents (element i: word i % 4 of block offset + i / 4;
// 24 bits), exactly, in double.
double PhiloxUnit(uint64_t seed, uint64_t offset, int64_t i) {
  const cudl_philox_block r =
      cudl_test::ReferenceBlock(seed, offset + static_cast<uint64_t>(i / 4));
  return static_cast<double>(r.v[i % 4] >> 8) * cudl_test::kTwoPowMinus24;
}

// ===========================================================================
// Activations
// ===========================================================================

using UnaryFn = std::function<cudl_status(cudl_context *, const cudl_tensor *, cudl_tensor *)>;
using UnaryBackwardFn = std::function<cudl_status(cudl_context *, const cudl_tensor *,
                                                  const cudl_tensor *, cudl_tensor *)>;

// An elementwise activation: its two calls and its float64 reference.
struct Activation {
  std::string name;
  UnaryFn forward;                       // (ctx, x, y)
  UnaryBackwardFn backward;              // (ctx, saved, dy, dx)
  bool backward_from_output;             // saved = y (sigmoid, tanh), else x
  std::function<double(double)> f;       // y = f(x)
  std::function<double(double)> dsaved;  // dy/dx as a function of the saved tensor
  Tol tol;
  // Where |y| or |dy/dx| is not the scale of the error (terms that cancel,
  // an argument whose rounding the function magnifies): the scale tol.rel
  // multiplies, of y and of dx / dy, as functions of x. Empty: |value|.
  std::function<double(double)> y_scale = nullptr, d_scale = nullptr;
};

// Piecewise-linear activations are exact: one float product at most, which
// rounds the exact double value once (Tol{0, 0}: correctly rounded).
const Tol kExact{0, 0};
// expf, tanhf and expm1f are within 2 ulp on the CPU (glibc) and on CUDA
// (the CUDA math library's documented bounds); the sigmoid's division and
// the products of backward add a few roundings: 16 ulp of |want| (the
// hand-written CUDA test allowed 16 against the CPU), plus the smallest
// normal for results that underflow. A wrong formula or element is off by
// far more.
const Tol kTranscendental{FLT_MIN, 16 * kEps};

std::vector<Activation> Activations() {
  const float leaky = 0.01f, elu = 1.5f;
  const double a_leaky = leaky, a_elu = elu;
  return {
      {"sigmoid", cudl_sigmoid_forward, cudl_sigmoid_backward, true,
       [](double x) { return 1.0 / (1.0 + std::exp(-x)); }, [](double y) { return y * (1.0 - y); },
       kTranscendental},
      {"tanh", cudl_tanh_forward, cudl_tanh_backward, true, [](double x) { return std::tanh(x); },
       [](double y) { return 1.0 - y * y; }, kTranscendental},
      {"relu", cudl_relu_forward, cudl_relu_backward, false,
       [](double x) { return x > 0 || std::isnan(x) ? x : 0.0; },
       [](double x) { return x > 0 ? 1.0 : 0.0; }, kExact},
      {"leaky_relu",
       [=](cudl_context *c, const cudl_tensor *x, cudl_tensor *y) {
         return cudl_leaky_relu_forward(c, x, leaky, y);
       },
       [=](cudl_context *c, const cudl_tensor *x, const cudl_tensor *dy, cudl_tensor *dx) {
         return cudl_leaky_relu_backward(c, x, leaky, dy, dx);
       },
       false, [=](double x) { return x > 0 ? x : a_leaky * x; },
       [=](double x) { return x > 0 ? 1.0 : a_leaky; }, kExact},
      {"elu",
       [=](cudl_context *c, const cudl_tensor *x, cudl_tensor *y) {
         return cudl_elu_forward(c, x, elu, y);
       },
       [=](cudl_context *c, const cudl_tensor *x, const cudl_tensor *dy, cudl_tensor *dx) {
         return cudl_elu_backward(c, x, elu, dy, dx);
       },
       false, [=](double x) { return x > 0 ? x : a_elu * std::expm1(x); },
       [=](double x) { return x > 0 ? 1.0 : a_elu * std::exp(x); }, kTranscendental},
      // x * Phi(x) and Phi(x) + x * phi(x). Both backends round x / sqrt 2
      // (and x^2 / 2) once before erfc (exp), which magnifies that relative
      // error about x^2 times in the tails; the derivative's two terms
      // cancel near x = -0.75, so its error scales with their sum.
      {"gelu", cudl_gelu_forward, cudl_gelu_backward, false,
       [](double x) {
         if (std::isinf(x)) return x > 0 ? x : -0.0;
         return x * 0.5 * std::erfc(-x / std::sqrt(2.0));
       },
       [](double x) {
         if (std::isinf(x)) return x > 0 ? 1.0 : 0.0;
         return 0.5 * std::erfc(-x / std::sqrt(2.0)) +
                x * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
       },
       kTranscendental,
       [](double x) {
         const double y = std::isinf(x) ? 0.0 : x * 0.5 * std::erfc(-x / std::sqrt(2.0));
         return std::fabs(y) * (1.0 + (x < 0 ? x * x : 0.0));
       },
       [](double x) {
         if (std::isinf(x)) return 0.0;
         const double terms = 0.5 * std::erfc(-x / std::sqrt(2.0)) +
                              std::fabs(x) * std::exp(-0.5 * x * x) / std::sqrt(2.0 * M_PI);
         return terms * (1.0 + x * x);
       }},
      // x * s and s * (1 + x * (1 - s)), s = sigmoid(x): exp within 2 ulp,
      // a division and products (kTranscendental). 1 - s is computed as
      // sigmoid(-x) by both backends (no cancellation); the derivative's
      // terms 1 and x (1 - s) cancel near x = -1.28, so its error scales
      // with s (1 + |x| (1 - s)).
      {"silu", cudl_silu_forward, cudl_silu_backward, false,
       [](double x) {
         if (std::isinf(x)) return x > 0 ? x : -0.0;
         return x / (1.0 + std::exp(-x));
       },
       [](double x) {
         if (std::isinf(x)) return x > 0 ? 1.0 : 0.0;
         const double s = 1.0 / (1.0 + std::exp(-x));
         return s * (1.0 + x * (1.0 - s));
       },
       kTranscendental, nullptr,
       [](double x) {
         if (std::isinf(x)) return 0.0;
         const double s = 1.0 / (1.0 + std::exp(-x)), c = 1.0 / (1.0 + std::exp(x));
         return s * (1.0 + std::fabs(x) * c);
       }},
  };
}

// Forward on x (with kExtremes sprinkled in) and backward from dy, the
// saved tensor being x or, for sigmoid and tanh, the float y that a
// training graph keeps (given to every backend alike, so only backward's
// formula is compared). In place: y written over x, dx over dy.
Row ActivationRow(const Activation &a, const std::vector<int64_t> &shape, bool in_place) {
  Row r;
  r.op = a.name;
  r.config = (in_place ? "inplace_" : "") + ShapeName(shape);
  r.tol = a.tol;
  r.dtypes = kFloats;
  r.inputs = [a, shape](Gen &g) {
    const size_t n = static_cast<size_t>(Numel(shape));
    std::vector<float> x = g.Uniform(n, -10.0f, 10.0f);
    Sprinkle(&x, kExtremes);
    Inputs in;
    in["dy"] = Data(shape, g.Uniform(n, -1.0f, 1.0f));
    if (a.backward_from_output) {
      std::vector<float> y(n);
      for (size_t i = 0; i < n; ++i) y[i] = static_cast<float>(a.f(x[i]));
      in["y"] = Data(shape, std::move(y));
    }
    in["x"] = Data(shape, std::move(x));
    return in;
  };
  r.run = [a, shape, in_place](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x");
    cudl_tensor *y = in_place ? x : e.Out(shape);
    e.Call(a.forward(e.ctx(), x, y), "forward");
    cudl_tensor *saved = e.In(in, a.backward_from_output ? "y" : "x");
    cudl_tensor *dy = e.In(in, "dy");
    cudl_tensor *dx = in_place ? dy : e.Out(shape);
    e.Call(a.backward(e.ctx(), saved, dy, dx), "backward");
    return Moved<Outputs>(Output{"y", e.Read(y)}, Output{"dx", e.Read(dx)});
  };
  r.reference = [a](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &dy = in.at("dy").f;
    const std::vector<float> &saved = in.at(a.backward_from_output ? "y" : "x").f;
    std::vector<double> y(x.size()), dx(x.size()), y_scale, d_scale;
    for (size_t i = 0; i < x.size(); ++i) {
      y[i] = a.f(x[i]);
      dx[i] = dy[i] * a.dsaved(saved[i]);
    }
    Expect ey("y", std::move(y)), edx("dx", std::move(dx));
    if (a.y_scale) {
      for (float v : x) y_scale.push_back(a.y_scale(v));
      ey.scale = std::move(y_scale);
    }
    if (a.d_scale) {
      for (size_t i = 0; i < x.size(); ++i)
        d_scale.push_back(std::fabs(dy[i]) * a.d_scale(saved[i]));
      edx.scale = std::move(d_scale);
    }
    return Moved<Expected>(std::move(ey), std::move(edx));
  };
  return r;
}

// PReLU with one slope per channel (dimension 1) or one shared: y and dx
// are one float product each (exact); dslope sums dy * x over a channel's
// elements with x <= 0. The CPU sums in double; CUDA sums floats in parts
// and then the parts in a fixed order: within 64 eps of sum |dy * x| (the
// bound the hand-written CUDA test used), while a wrong or missing element
// moves the sum by one whole term.
Row PreluRow(const std::vector<int64_t> &shape, bool shared) {
  Row r;
  r.op = "prelu";
  r.config = (shared ? "shared_" : "per_channel_") + ShapeName(shape);
  r.tol = kExact;
  r.dtypes = kFloats;
  const int64_t channels = shared ? 1 : shape[1];
  r.inputs = [shape, channels](Gen &g) {
    const size_t n = static_cast<size_t>(Numel(shape));
    std::vector<float> x = g.Uniform(n, -2.0f, 2.0f);
    Sprinkle(&x, {0.0f, -0.0f});
    Inputs in;
    in["x"] = Data(shape, std::move(x));
    in["dy"] = Data(shape, g.Uniform(n, -1.0f, 1.0f));
    in["slope"] = Param({channels}, g.Uniform(static_cast<size_t>(channels), -0.5f, 0.5f));
    return in;
  };
  r.run = [shape, channels](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *slope = e.In(in, "slope"), *dy = e.In(in, "dy");
    cudl_tensor *y = e.Out(shape), *dx = e.Out(shape), *dslope = e.OutF32({channels});
    CALL(e, cudl_prelu_forward(e.ctx(), x, slope, y));
    CALL(e, cudl_prelu_backward(e.ctx(), x, slope, dy, dx, dslope));
    return Outputs{{"y", e.Read(y)}, {"dx", e.Read(dx)}, {"dslope", e.Read(dslope)}};
  };
  r.reference = [shape, channels, shared](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &dy = in.at("dy").f, &s = in.at("slope").f;
    int64_t inner = 1;
    for (size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
    std::vector<double> y(x.size()), dx(x.size()), ds(static_cast<size_t>(channels), 0.0),
        mag(static_cast<size_t>(channels), 0.0);
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t c =
          shared ? 0 : static_cast<size_t>((static_cast<int64_t>(i) / inner) % channels);
      const bool pos = x[i] > 0;
      y[i] = pos ? x[i] : static_cast<double>(s[c]) * x[i];
      dx[i] = pos ? dy[i] : static_cast<double>(s[c]) * dy[i];
      if (!pos) {
        ds[c] += static_cast<double>(dy[i]) * x[i];
        mag[c] += std::fabs(static_cast<double>(dy[i]) * x[i]);
      }
    }
    return Expected{Expect("y", y), Expect("dx", dx),
                    Expect("dslope", ds).Scale(mag).With({FLT_MIN, 64 * kEps})};
  };
  return r;
}

// RReLU. Training draws each slope from the context's Philox stream (state
// (31, 2^32 - 16): the block counter crosses 2^32): noise = lower + u *
// (upper - lower) for x <= 0 (u = the element's 24-bit number), 1 above;
// y = x * noise; dx = dy * noise; the offset advances by ceil(n / 4).
// The library computes the slope with one fma (correctly rounded: within
// half an ulp) and a product after it: 2 ulp of |want|. Every backend uses
// the same scalar code, so the bits must equal the CPU's. Evaluation uses
// the fixed slope (lower + upper) / 2 and no random numbers. In 16 bits
// backward multiplies by the stored noise, already rounded: dx passes two
// 16-bit roundings.
Row RreluRow(int64_t n, bool training) {
  Row r;
  r.op = training ? "rrelu_train" : "rrelu_eval";
  r.config = std::to_string(n);
  r.tol = {0, 2 * kEps};
  r.flags = kSameBitsAsCpu;
  r.dtypes = kFloats;
  const float lower = 0.125f, upper = 0.375f;
  const uint64_t seed = 31, offset = 0xfffffff0ull;
  r.inputs = [n](Gen &g) {
    std::vector<float> x = g.Uniform(static_cast<size_t>(n), -1.0f, 1.0f);
    Sprinkle(&x, {0.0f, -0.0f, kNaN});
    Inputs in;
    in["x"] = Data({n}, std::move(x));
    in["dy"] = Data({n}, g.Uniform(static_cast<size_t>(n), -1.0f, 1.0f));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *dy = e.In(in, "dy");
    cudl_tensor *noise = e.Out({n}), *y = e.Out({n}), *dx = e.Out({n});
    CALL(e, cudl_context_set_rng_state(e.ctx(), seed, offset));
    CALL(e, cudl_rrelu_forward(e.ctx(), x, lower, upper, training ? 1 : 0, noise, y));
    const float advance = static_cast<float>(e.RngOffset() - offset);
    CALL(e, cudl_rrelu_backward(e.ctx(), noise, dy, dx));
    return Moved<Outputs>(Output{"noise", e.Read(noise)}, Output{"y", e.Read(y)},
                          Output{"dx", e.Read(dx)}, Output{"rng_advance", {advance}});
  };
  r.reference = [=](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &dy = in.at("dy").f;
    std::vector<double> noise(x.size()), y(x.size()), dx(x.size());
    const double lo = lower, hi = upper;
    for (size_t i = 0; i < x.size(); ++i) {
      const double slope = training
                               ? lo + PhiloxUnit(seed, offset, static_cast<int64_t>(i)) * (hi - lo)
                               : (lo + hi) / 2;
      noise[i] = x[i] > 0 ? 1.0 : slope;
      y[i] = x[i] * noise[i];
      dx[i] = dy[i] * noise[i];
    }
    const double advance = training ? static_cast<double>((n + 3) / 4) : 0.0;
    return Moved<Expected>(Expect("noise", std::move(noise)), Expect("y", std::move(y)),
                           Expect("dx", std::move(dx)).Roundings(2),
                           Expect("rng_advance", {advance}));
  };
  return r;
}

// ===========================================================================
// Dropout
// ===========================================================================

// Training: element i kept when its Philox number is >= p (state (77,
// 2^32 - 1)), mask = 1 / (1 - p) or 0, y = x * mask, dx = dy * mask, the
// offset advancing by ceil(n / 4). The library's 1 / (1 - p) is two float
// roundings of the exact double value (within 1 ulp), then one product:
// 2 ulp of |want|. Masks are the same bits on every backend. p = 0 keeps
// x exactly, infinities and NaN included. Evaluation: y = x, mask 1. In 16
// bits the mask is stored rounded (1 / 0.75 is not exact) and backward
// multiplies by it: dx passes two 16-bit roundings.
Row DropoutRow(int64_t n, float p, bool training, bool in_place) {
  Row r;
  r.op = training ? "dropout_train" : "dropout_eval";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%sp%g_%lld", in_place ? "inplace_" : "", static_cast<double>(p),
                static_cast<long long>(n));
  r.config = buf;
  r.tol = {0, 2 * kEps};
  r.flags = kSameBitsAsCpu;
  r.dtypes = kFloats;
  const uint64_t seed = 77, offset = 0xffffffffull;
  r.inputs = [n, p](Gen &g) {
    std::vector<float> x = g.Uniform(static_cast<size_t>(n), -4.0f, 4.0f);
    if (p == 0.0f) Sprinkle(&x, {kInf, -kInf, kNaN, -0.0f, FLT_MAX});
    Inputs in;
    in["x"] = Data({n}, std::move(x));
    in["dy"] = Data({n}, g.Uniform(static_cast<size_t>(n), -1.0f, 1.0f));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *dy = e.In(in, "dy");
    cudl_tensor *mask = e.Out({n}), *y = in_place ? x : e.Out({n}), *dx = e.Out({n});
    CALL(e, cudl_context_set_rng_state(e.ctx(), seed, offset));
    CALL(e, cudl_dropout_forward(e.ctx(), x, p, training ? 1 : 0, mask, y));
    const float advance = static_cast<float>(e.RngOffset() - offset);
    CALL(e, cudl_dropout_backward(e.ctx(), mask, dy, dx));
    return Moved<Outputs>(Output{"mask", e.Read(mask)}, Output{"y", e.Read(y)},
                          Output{"dx", e.Read(dx)}, Output{"rng_advance", {advance}});
  };
  r.reference = [=](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &dy = in.at("dy").f;
    std::vector<double> mask(x.size()), y(x.size()), dx(x.size());
    const double scale = p < 1.0f ? 1.0 / (1.0 - static_cast<double>(p)) : 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      mask[i] = !training ? 1.0
                : PhiloxUnit(seed, offset, static_cast<int64_t>(i)) >= static_cast<double>(p)
                    ? scale
                    : 0.0;
      y[i] = x[i] * mask[i];
      dx[i] = dy[i] * mask[i];
    }
    const double advance = training ? static_cast<double>((n + 3) / 4) : 0.0;
    return Moved<Expected>(Expect("mask", std::move(mask)), Expect("y", std::move(y)),
                           Expect("dx", std::move(dx)).Roundings(2),
                           Expect("rng_advance", {advance}));
  };
  return r;
}

// Dropout after an activation in one pass (cudl_activation_dropout_*): the
// dropout row's mask, numbers and offset on the activation's value, y =
// f(x) * mask and dx = dy * mask * f'(x), for the activations whose
// backward reads x. Tolerances: the activation's (Activations()) plus the
// product by the mask and the mask's own rounding (4 eps); in 16 bits the
// mask is stored rounded and backward multiplies by it, so dx passes two
// roundings. Sigmoid and tanh are refused (test_activation).
Row ActivationDropoutRow(const Activation &a, int64_t n, float p, bool in_place) {
  static const std::map<std::string, std::pair<cudl_activation_type, float>> kinds = {
      {"relu", {CUDL_ACT_RELU, 0.0f}},
      {"leaky_relu", {CUDL_ACT_LEAKY_RELU, 0.01f}},
      {"elu", {CUDL_ACT_ELU, 1.5f}},
      {"gelu", {CUDL_ACT_GELU, 0.0f}},
      {"silu", {CUDL_ACT_SILU, 0.0f}}};
  const cudl_activation_type type = kinds.at(a.name).first;
  const float alpha = kinds.at(a.name).second;
  Row r;
  r.op = a.name + "_dropout";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%sp%g_%lld", in_place ? "inplace_" : "", static_cast<double>(p),
                static_cast<long long>(n));
  r.config = buf;
  r.tol = {4 * a.tol.abs, a.tol.rel + 4 * kEps};
  r.dtypes = kFloats;
  const uint64_t seed = 77, offset = 0xffffffffull;
  r.inputs = [n](Gen &g) {
    Inputs in;
    in["x"] = Data({n}, g.Uniform(static_cast<size_t>(n), -4.0f, 4.0f));
    in["dy"] = Data({n}, g.Uniform(static_cast<size_t>(n), -1.0f, 1.0f));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    // In place: y over a copy of x, which backward still reads; dx over dy.
    cudl_tensor *x = e.In(in, "x"), *dy = e.In(in, "dy");
    cudl_tensor *mask = e.Out({n}), *y = in_place ? e.In(in, "x") : e.Out({n});
    cudl_tensor *dx = in_place ? dy : e.Out({n});
    CALL(e, cudl_context_set_rng_state(e.ctx(), seed, offset));
    CALL(e, cudl_activation_dropout_forward(e.ctx(), type, alpha, in_place ? y : x, p, mask, y));
    const float advance = static_cast<float>(e.RngOffset() - offset);
    CALL(e, cudl_activation_dropout_backward(e.ctx(), type, alpha, x, mask, dy, dx));
    return Moved<Outputs>(Output{"mask", e.Read(mask)}, Output{"y", e.Read(y)},
                          Output{"dx", e.Read(dx)}, Output{"rng_advance", {advance}});
  };
  r.reference = [=](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &dy = in.at("dy").f;
    std::vector<double> mask(x.size()), y(x.size()), dx(x.size()), y_scale, d_scale;
    const double scale = p < 1.0f ? 1.0 / (1.0 - static_cast<double>(p)) : 0.0;
    for (size_t i = 0; i < x.size(); ++i) {
      mask[i] =
          PhiloxUnit(seed, offset, static_cast<int64_t>(i)) >= static_cast<double>(p) ? scale : 0.0;
      y[i] = a.f(x[i]) * mask[i];
      dx[i] = dy[i] * mask[i] * a.dsaved(x[i]);
      y_scale.push_back(mask[i] * (a.y_scale ? a.y_scale(x[i]) : std::fabs(a.f(x[i]))));
      d_scale.push_back(std::fabs(dy[i] * mask[i]) *
                        (a.d_scale ? a.d_scale(x[i]) : std::fabs(a.dsaved(x[i]))));
    }
    return Moved<Expected>(Expect("mask", std::move(mask)),
                           Expect("y", std::move(y)).Scale(std::move(y_scale)),
                           Expect("dx", std::move(dx)).Scale(std::move(d_scale)).Roundings(2),
                           Expect("rng_advance", {static_cast<double>((n + 3) / 4)}));
  };
  return r;
}

// ===========================================================================
// Pooling
// ===========================================================================

cudl_pool2d_desc PoolDesc(int kh, int kw, int sh, int sw, int ph, int pw, int incl = 0,
                          int ceil = 0) {
  cudl_pool2d_desc d = {};
  d.ceil_mode = ceil;
  d.kernel_h = kh;
  d.kernel_w = kw;
  d.stride_h = sh;
  d.stride_w = sw;
  d.pad_h = ph;
  d.pad_w = pw;
  d.count_include_pad = incl;
  return d;
}

struct PoolGeometry {
  int64_t n, c, h, w;
  cudl_pool2d_desc d;
  // PyTorch's pooling_output_shape, written from its definition: in ceil
  // mode the size rounds up, less a last window starting past the input
  // and its left padding.
  static int64_t Size(int64_t in, int64_t k, int64_t s, int64_t p, bool ceil) {
    int64_t out = (in + 2 * p - k + (ceil ? s - 1 : 0)) / s + 1;
    if (ceil && (out - 1) * s >= in + p) --out;
    return out;
  }
  int64_t oh() const { return Size(h, d.kernel_h, d.stride_h, d.pad_h, d.ceil_mode != 0); }
  int64_t ow() const { return Size(w, d.kernel_w, d.stride_w, d.pad_w, d.ceil_mode != 0); }
  std::vector<int64_t> in() const { return {n, c, h, w}; }
  std::vector<int64_t> out() const { return {n, c, oh(), ow()}; }
  std::string str() const {
    return ShapeName(in()) + "_k" + std::to_string(d.kernel_h) + "x" + std::to_string(d.kernel_w) +
           "_s" + std::to_string(d.stride_h) + "x" + std::to_string(d.stride_w) + "_p" +
           std::to_string(d.pad_h) + "x" + std::to_string(d.pad_w) +
           (d.count_include_pad ? "_incl" : "") + (d.ceil_mode ? "_ceil" : "");
  }
};

// Overlapping and not, padded and not (count_include_pad both ways),
// square and not, primes, windows with gaps between them, and a
// ResNet-sized layer.
std::vector<PoolGeometry> PoolGeometries() {
  return {{1, 1, 5, 5, PoolDesc(2, 2, 2, 2, 0, 0)},     {2, 3, 7, 13, PoolDesc(3, 3, 1, 1, 1, 1)},
          {2, 3, 7, 13, PoolDesc(3, 3, 2, 2, 1, 1, 1)}, {1, 2, 8, 9, PoolDesc(2, 2, 1, 1, 0, 0)},
          {3, 1, 4, 4, PoolDesc(1, 1, 1, 1, 0, 0)},     {1, 2, 11, 10, PoolDesc(3, 2, 2, 1, 1, 0)},
          {2, 2, 9, 9, PoolDesc(3, 3, 3, 3, 0, 0)},     {1, 1, 6, 7, PoolDesc(5, 3, 2, 2, 2, 1, 1)},
          {1, 2, 8, 7, PoolDesc(2, 2, 3, 3, 0, 0)},     {2, 1, 6, 6, PoolDesc(2, 2, 2, 2, 1, 1, 1)},
          {8, 16, 32, 32, PoolDesc(3, 3, 2, 2, 1, 1)},
          // Ceil mode: last windows running past the input (and past the
          // right padding, where count_include_pad's divisor stops at the
          // padding), a last window dropped for starting in the right
          // padding (5 + 2 * 1 with k2 s2: 4 rounded up, 3 kept), a kernel
          // larger than the input, odd sizes with stride != kernel.
          {2, 3, 6, 6, PoolDesc(3, 3, 2, 2, 1, 1, 1, 1)},
          {2, 3, 6, 6, PoolDesc(3, 3, 2, 2, 1, 1, 0, 1)},
          {1, 2, 5, 5, PoolDesc(2, 2, 2, 2, 1, 1, 1, 1)},
          {2, 2, 7, 11, PoolDesc(3, 2, 2, 3, 0, 1, 1, 1)},
          {1, 3, 9, 10, PoolDesc(2, 3, 3, 2, 1, 0, 0, 1)},
          {1, 2, 2, 3, PoolDesc(3, 3, 2, 2, 0, 0, 1, 1)}};
}

// Max pooling: y exact (a copy of the chosen element: the first maximum in
// row-major order, a NaN taking the window, padding never); dx adds each
// output's dy to its chosen element, overlapping windows summed in some
// order: within 16 eps of the sum of |contributions| (at most 9 terms
// here, so at most 4 eps in any order). Average pooling: y sums a window
// and divides; dx spreads dy / divisor; both within 16 eps of sum|terms|
// (at most 15 terms and a division: 8 eps in any order). The hand-written
// CUDA test allowed 16-32 eps of (|want| + 1); the bounds here scale with
// the terms and so catch a wrong element even where the terms cancel.
// `values`: "random" (U(-1, 1)), "ties" (small integers, many equal, some
// NaN) or "negative" (all below zero: padding must not win).
Row PoolRow(const PoolGeometry &g, bool is_max, const std::string &values = "random") {
  Row r;
  r.op = is_max ? "max_pool2d" : "avg_pool2d";
  r.config = (values == "random" ? "" : values + "_") + g.str();
  r.tol = {0, 16 * kEps};
  r.dtypes = kFloats;
  r.inputs = [g, values](Gen &gen) {
    const size_t nx = static_cast<size_t>(Numel(g.in())), ny = static_cast<size_t>(Numel(g.out()));
    std::vector<float> x = gen.Uniform(nx, -1.0f, 1.0f);
    if (values == "ties") {
      for (float &v : x) v = std::floor(v * 2.0f);  // -2, -1, 0, 1
      for (size_t i = 5; i < nx; i += 29) x[i] = kNaN;
    } else if (values == "negative") {
      for (float &v : x) v = -1.0f - std::fabs(v);
    }
    Inputs in;
    in["x"] = Data(g.in(), std::move(x));
    in["dy"] = Data(g.out(), gen.Uniform(ny, -1.0f, 1.0f));
    return in;
  };
  r.run = [g, is_max](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *dy = e.In(in, "dy");
    cudl_tensor *y = e.Out(g.out()), *dx = e.Out(g.in());
    if (is_max) {
      CALL(e, cudl_max_pool2d_forward(e.ctx(), &g.d, x, y));
      CALL(e, cudl_max_pool2d_backward(e.ctx(), &g.d, x, dy, dx));
    } else {
      CALL(e, cudl_avg_pool2d_forward(e.ctx(), &g.d, x, y));
      CALL(e, cudl_avg_pool2d_backward(e.ctx(), &g.d, dy, dx));
    }
    return Outputs{{"y", e.Read(y)}, {"dx", e.Read(dx)}};
  };
  r.reference = [g, is_max](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &dy = in.at("dy").f;
    const int64_t oh = g.oh(), ow = g.ow();
    std::vector<double> y(dy.size()), ymag(dy.size()), dx(x.size(), 0.0), dxmag(x.size(), 0.0);
    for (int64_t plane = 0; plane < g.n * g.c; ++plane)
      for (int64_t p = 0; p < oh; ++p)
        for (int64_t q = 0; q < ow; ++q) {
          std::vector<size_t> win;  // the window's elements inside x, row-major
          for (int64_t i = 0; i < g.d.kernel_h; ++i)
            for (int64_t j = 0; j < g.d.kernel_w; ++j) {
              const int64_t h = p * g.d.stride_h - g.d.pad_h + i,
                            w = q * g.d.stride_w - g.d.pad_w + j;
              if (h >= 0 && h < g.h && w >= 0 && w < g.w)
                win.push_back(static_cast<size_t>((plane * g.h + h) * g.w + w));
            }
          const size_t o = static_cast<size_t>((plane * oh + p) * ow + q);
          if (is_max) {
            size_t best = win[0];
            for (size_t k : win)
              if (!std::isnan(x[best]) && (x[k] > x[best] || std::isnan(x[k]))) best = k;
            y[o] = x[best];
            dx[best] += dy[o];
            dxmag[best] += std::fabs(dy[o]);
          } else {
            // With padding counted: the window clipped to the padded
            // input (only a ceil-mode window reaches past it).
            const int64_t h0 = p * g.d.stride_h - g.d.pad_h, w0 = q * g.d.stride_w - g.d.pad_w;
            const int64_t padded_rows = std::min(h0 + g.d.kernel_h, g.h + g.d.pad_h) - h0,
                          padded_cols = std::min(w0 + g.d.kernel_w, g.w + g.d.pad_w) - w0;
            const double div = g.d.count_include_pad
                                   ? static_cast<double>(padded_rows * padded_cols)
                                   : static_cast<double>(win.size());
            double sum = 0, mag = 0;
            for (size_t k : win) {
              sum += x[k];
              mag += std::fabs(x[k]);
              dx[k] += dy[o] / div;
              dxmag[k] += std::fabs(dy[o]) / div;
            }
            y[o] = sum / div;
            ymag[o] = mag / div;
          }
        }
    if (is_max) return Expected{Expect("y", y).With(kExact), Expect("dx", dx).Scale(dxmag)};
    return Expected{Expect("y", y).Scale(ymag), Expect("dx", dx).Scale(dxmag)};
  };
  return r;
}

// Global average pooling: y = the mean of each plane, within 32 eps of
// mean |x| (a float sum of H * W terms in any tree or chunked order; the
// hand-written CUDA test allowed 1e-6 absolute on U(-1, 1) data, about the
// same); dx = dy / (H * W), one division (or a product with a rounded
// reciprocal): 2 ulp.
Row GlobalAvgPoolRow(const std::vector<int64_t> &shape) {
  Row r;
  r.op = "global_avg_pool";
  r.config = ShapeName(shape);
  r.tol = {0, 2 * kEps};
  r.dtypes = kFloats;
  const std::vector<int64_t> out = {shape[0], shape[1], 1, 1};
  r.inputs = [shape, out](Gen &g) {
    Inputs in;
    in["x"] = Data(shape, g.Uniform(static_cast<size_t>(Numel(shape)), -1.0f, 1.0f));
    in["dy"] = Data(out, g.Uniform(static_cast<size_t>(Numel(out)), -1.0f, 1.0f));
    return in;
  };
  r.run = [shape, out](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *dy = e.In(in, "dy");
    cudl_tensor *y = e.Out(out), *dx = e.Out(shape);
    CALL(e, cudl_global_avg_pool_forward(e.ctx(), x, y));
    CALL(e, cudl_global_avg_pool_backward(e.ctx(), dy, dx));
    return Outputs{{"y", e.Read(y)}, {"dx", e.Read(dx)}};
  };
  r.reference = [shape](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &dy = in.at("dy").f;
    const size_t planes = dy.size(), hw = static_cast<size_t>(shape[2] * shape[3]);
    std::vector<double> y(planes), mag(planes), dx(x.size());
    for (size_t p = 0; p < planes; ++p) {
      double s = 0, m = 0;
      for (size_t i = 0; i < hw; ++i) {
        s += x[p * hw + i];
        m += std::fabs(x[p * hw + i]);
        dx[p * hw + i] = dy[p] / static_cast<double>(hw);
      }
      y[p] = s / static_cast<double>(hw);
      mag[p] = m / static_cast<double>(hw);
    }
    return Expected{Expect("y", y).Scale(mag).With({0, 32 * kEps}), Expect("dx", dx)};
  };
  return r;
}

// ===========================================================================
// Concatenation
// ===========================================================================

// Concatenation along dimension 1 of parts [d0, c_i, ...] into y, and
// backward splitting dy into the parts' gradients: copies, exact in every
// dtype (Tol{0, 0}). The unwritten NaN of Out catches an element the copy
// misses, a wrong offset or pitch moves whole values.
Row ConcatRow(const std::vector<int64_t> &base, const std::vector<int64_t> &channels) {
  Row r;
  r.op = "concat";
  std::vector<int64_t> whole = base;
  whole[1] = 0;
  for (int64_t c : channels) whole[1] += c;
  r.config = ShapeName(whole) + "_of";
  for (int64_t c : channels) r.config += "_" + std::to_string(c);
  r.tol = kExact;
  r.dtypes = kFloats;
  auto part_shape = [base](int64_t c) {
    std::vector<int64_t> s = base;
    s[1] = c;
    return s;
  };
  r.inputs = [whole, channels, part_shape](Gen &g) {
    Inputs in;
    for (size_t i = 0; i < channels.size(); ++i) {
      const std::vector<int64_t> s = part_shape(channels[i]);
      std::vector<float> v = g.Uniform(static_cast<size_t>(Numel(s)), -4.0f, 4.0f);
      Sprinkle(&v, {-0.0f, kInf, -kInf});
      in["x" + std::to_string(i)] = Data(s, std::move(v));
    }
    in["dy"] = Data(whole, g.Uniform(static_cast<size_t>(Numel(whole)), -1.0f, 1.0f));
    return in;
  };
  r.run = [whole, channels, part_shape](Env &e, const Inputs &in) {
    std::vector<const cudl_tensor *> xs;
    std::vector<cudl_tensor *> dxs;
    for (size_t i = 0; i < channels.size(); ++i) {
      xs.push_back(e.In(in, ("x" + std::to_string(i)).c_str()));
      dxs.push_back(e.Out(part_shape(channels[i])));
    }
    cudl_tensor *y = e.Out(whole), *dy = e.In(in, "dy");
    const int count = static_cast<int>(channels.size());
    CALL(e, cudl_concat_forward(e.ctx(), count, xs.data(), y));
    CALL(e, cudl_concat_backward(e.ctx(), dy, count, dxs.data()));
    Outputs out{{"y", e.Read(y)}};
    for (size_t i = 0; i < channels.size(); ++i)
      out.push_back({"dx" + std::to_string(i), e.Read(dxs[i])});
    return out;
  };
  r.reference = [whole, channels](const Inputs &in) {
    // Element (n, c, rest) of y is element (n, c - offset_i, rest) of part i.
    int64_t inner = 1;
    for (size_t d = 2; d < whole.size(); ++d) inner *= whole[d];
    const std::vector<float> &dy = in.at("dy").f;
    std::vector<double> y(dy.size());
    Expected want;
    int64_t offset = 0;
    for (size_t i = 0; i < channels.size(); ++i) {
      const std::vector<float> &x = in.at("x" + std::to_string(i)).f;
      std::vector<double> dx(x.size());
      for (int64_t n = 0; n < whole[0]; ++n)
        for (int64_t c = 0; c < channels[i]; ++c)
          for (int64_t k = 0; k < inner; ++k) {
            const size_t at_part = static_cast<size_t>((n * channels[i] + c) * inner + k);
            const size_t at_whole = static_cast<size_t>((n * whole[1] + offset + c) * inner + k);
            y[at_whole] = x[at_part];
            dx[at_part] = dy[at_whole];
          }
      // Roundings(0): the 16-bit inputs are already in the dtype, so a
      // copy must give them back bit for bit.
      want.push_back(Expect("dx" + std::to_string(i), std::move(dx)).Roundings(0));
      offset += channels[i];
    }
    want.insert(want.begin(), Expect("y", std::move(y)).Roundings(0));
    return want;
  };
  return r;
}

// ===========================================================================
// Batch normalisation
// ===========================================================================

struct BnLayout {
  int64_t outer, channels, inner;
  explicit BnLayout(const std::vector<int64_t> &shape)
      : outer(shape[0]), channels(shape[1]), inner(1) {
    for (size_t d = 2; d < shape.size(); ++d) inner *= shape[d];
  }
  size_t channel(size_t i) const {
    return static_cast<size_t>((static_cast<int64_t>(i) / inner) % channels);
  }
};

// Training forward (momentum 0.1, eps 1e-5, running statistics starting at
// 0.5 and 2) and backward from the backend's own saved statistics, against
// a two-pass float64 reference. x ~ N(mean, sd): mean 1000 with sd 0.05 is
// where a one-pass variance in float would lose everything. In bf16 and f16
// (steps of 4 and 0.5 there) all but a few x round to 1000: a channel of
// (nearly) equal values, where eps alone keeps invstd finite.
//
// The fused path (BnFused) runs the same through cudl_batchnorm_statistics,
// cudl_batchnorm_apply with a ReLU (and a residual, N(0, 1), added before
// it) and cudl_batchnorm_relu_backward (writing the residual's gradient):
// g = dy where the reference's v = y + residual is > 0 stands for dy in the
// backward. Where |v| is within v's bound the device may take either side
// of the ReLU: the bounds of such elements' dx and dresidual, and of their
// channel's sums, take |dy| more.
//
// Bounds, per element: the bounds the hand-written CUDA test held the GPU
// to against the CPU (mean 1e-6 relative + 1e-6, invstd and running var
// 1e-4 relative, y 1e-4 relative + 1e-3, dbeta 1e-5 relative + 1e-5
// sqrt(m), dgamma 1e-4 relative + 1e-4 sqrt(m), dx 1e-3 relative + 1e-4),
// plus the CPU's own distance from float64 (a few eps of each result, and
// the saved mean rounded to float: eps |mean|, which moves xhat by eps
// |mean| invstd, 2e-3 at mean 1000), carried through the backward formulas.
enum class BnFused { kNo, kRelu, kResidualRelu };

Row BatchNormTrainRow(const std::vector<int64_t> &shape, double mean, double sd,
                      BnFused fused = BnFused::kNo) {
  Row r;
  r.op = fused == BnFused::kNo     ? "batchnorm_train"
         : fused == BnFused::kRelu ? "batchnorm_fused_relu"
                                   : "batchnorm_fused_residual_relu";
  r.config = ShapeName(shape) + "_mean" + std::to_string(static_cast<int>(mean));
  r.tol = {0, 0};  // every output has its bound
  r.dtypes = kFloats;
  const int64_t c = shape[1];
  const float momentum = 0.1f, eps = 1e-5f;
  r.inputs = [=](Gen &g) {
    const size_t n = static_cast<size_t>(Numel(shape));
    Inputs in;
    in["x"] = Data(shape, g.Normal(n, mean, sd));
    in["gamma"] = Param({c}, g.Normal(static_cast<size_t>(c), 1.0, 0.3));
    in["beta"] = Param({c}, g.Normal(static_cast<size_t>(c), 0.0, 0.3));
    in["running_mean"] = Param({c}, std::vector<float>(static_cast<size_t>(c), 0.5f));
    in["running_var"] = Param({c}, std::vector<float>(static_cast<size_t>(c), 2.0f));
    in["dy"] = Data(shape, g.Normal(n, 0.0, 1.0));
    if (fused == BnFused::kResidualRelu) in["residual"] = Data(shape, g.Normal(n, 0.0, 1.0));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *gamma = e.In(in, "gamma"), *beta = e.In(in, "beta");
    cudl_tensor *rmean = e.In(in, "running_mean"), *rvar = e.In(in, "running_var");
    cudl_tensor *dy = e.In(in, "dy");
    cudl_tensor *y = e.Out(shape), *smean = e.OutF32({c}), *sinv = e.OutF32({c});
    cudl_tensor *dx = e.Out(shape), *dgamma = e.OutF32({c}), *dbeta = e.OutF32({c});
    cudl_tensor *dresidual = nullptr;
    if (fused != BnFused::kNo) {
      cudl_tensor *residual = fused == BnFused::kResidualRelu ? e.In(in, "residual") : nullptr;
      if (residual != nullptr) dresidual = e.Out(shape);
      CALL(e, cudl_batchnorm_statistics(e.ctx(), x, momentum, eps, rmean, rvar, smean, sinv));
      CALL(e, cudl_batchnorm_apply(e.ctx(), x, gamma, beta, smean, sinv, residual, 1, y));
      CALL(e, cudl_batchnorm_relu_backward(e.ctx(), x, y, dy, gamma, smean, sinv, dx, dresidual,
                                           dgamma, dbeta));
    } else {
      CALL(e, cudl_batchnorm_forward_training(e.ctx(), x, gamma, beta, momentum, eps, rmean, rvar,
                                              y, smean, sinv));
      CALL(e, cudl_batchnorm_backward(e.ctx(), x, dy, gamma, smean, sinv, dx, dgamma, dbeta));
    }
    Outputs out{{"y", e.Read(y)},
                {"save_mean", e.Read(smean)},
                {"save_invstd", e.Read(sinv)},
                {"running_mean", e.Read(rmean)},
                {"running_var", e.Read(rvar)},
                {"dx", e.Read(dx)},
                {"dgamma", e.Read(dgamma)},
                {"dbeta", e.Read(dbeta)}};
    if (dresidual != nullptr) out.push_back({"dresidual", e.Read(dresidual)});
    return out;
  };
  r.reference = [=](const Inputs &in) {
    const BnLayout l(shape);
    const std::vector<float> &x = in.at("x").f, &gamma = in.at("gamma").f, &beta = in.at("beta").f,
                             &dy = in.at("dy").f;
    const size_t nc = static_cast<size_t>(c), n = x.size();
    const double m = static_cast<double>(l.outer * l.inner), sqrt_m = std::sqrt(m);
    std::vector<double> mu(nc, 0.0), var(nc, 0.0), inv(nc), dmu(nc), dinv(nc);
    for (size_t i = 0; i < n; ++i) mu[l.channel(i)] += x[i];
    for (double &v : mu) v /= m;
    for (size_t i = 0; i < n; ++i)
      var[l.channel(i)] += (x[i] - mu[l.channel(i)]) * (x[i] - mu[l.channel(i)]);
    for (size_t k = 0; k < nc; ++k) {
      var[k] /= m;
      inv[k] = 1.0 / std::sqrt(var[k] + static_cast<double>(eps));
      dmu[k] = 1e-6 + (1e-6 + 2 * kEps) * std::fabs(mu[k]);  // the saved mean's bound
      dinv[k] = 1e-6 + (1e-4 + 4 * kEps) * inv[k];           // the saved invstd's bound
    }
    std::vector<double> b_rm(nc), rm(nc), rv(nc), b_rv(nc);
    const double mom = momentum;
    for (size_t k = 0; k < nc; ++k) {
      rm[k] = (1 - mom) * 0.5 + mom * mu[k];
      b_rm[k] = mom * dmu[k] + 4 * kEps * (std::fabs(mu[k]) + 1);
      rv[k] = (1 - mom) * 2.0 + mom * var[k] * m / (m - 1);
      b_rv[k] = 1e-6 + 1e-4 * rv[k] + 4 * kEps * (var[k] + 2);
    }
    // y (on the fused path through the residual and ReLU), the gradient g
    // the backward sums (dy, or dy through the ReLU), and the backward sums.
    std::vector<double> y(n), b_y(n), xhat(n), dxhat(n), g(n);
    std::vector<double> dresidual, b_dresidual;
    std::vector<bool> either(n, false);  // the ReLU may go either way
    std::vector<double> dbeta(nc, 0.0), dgamma(nc, 0.0), abs_dy(nc, 0.0), b_dg(nc, 0.0),
        b_either(nc, 0.0), b_either_xhat(nc, 0.0);
    if (fused != BnFused::kNo) {
      dresidual.assign(n, 0.0);
      b_dresidual.assign(n, 0.0);
    }
    for (size_t i = 0; i < n; ++i) {
      const size_t k = l.channel(i);
      xhat[i] = (x[i] - mu[k]) * inv[k];
      dxhat[i] =
          dmu[k] * inv[k] + std::fabs(x[i] - mu[k]) * dinv[k] + 2 * kEps * std::fabs(xhat[i]);
      y[i] = gamma[k] * xhat[i] + beta[k];
      b_y[i] = 1e-3 + 1e-4 * std::fabs(y[i]) + 8 * kEps * (std::fabs(y[i]) + 1) +
               std::fabs(gamma[k]) * dxhat[i];
      g[i] = dy[i];
      if (fused != BnFused::kNo) {
        if (fused == BnFused::kResidualRelu) {
          y[i] += in.at("residual").f[i];
          b_y[i] += 2 * kEps * std::fabs(y[i]);
        }
        either[i] = std::fabs(y[i]) <= b_y[i];
        g[i] = y[i] > 0 ? dy[i] : 0.0;
        y[i] = std::max(y[i], 0.0);
        dresidual[i] = g[i];
        if (either[i]) {
          b_dresidual[i] = std::fabs(dy[i]);
          b_either[k] += std::fabs(dy[i]);
          b_either_xhat[k] += std::fabs(dy[i] * xhat[i]);
        }
      }
      dbeta[k] += g[i];
      dgamma[k] += g[i] * xhat[i];
      abs_dy[k] += std::fabs(g[i]);
      b_dg[k] += std::fabs(g[i]) * dxhat[i] + 2 * kEps * std::fabs(g[i] * xhat[i]);
    }
    std::vector<double> b_db(nc);
    for (size_t k = 0; k < nc; ++k) {
      b_db[k] = 1e-5 * std::fabs(dbeta[k]) + 1e-5 * sqrt_m + 2 * kEps * abs_dy[k] + b_either[k];
      b_dg[k] += 1e-4 * std::fabs(dgamma[k]) + 1e-4 * sqrt_m + b_either_xhat[k];
    }
    std::vector<double> dx(n), b_dx(n);
    for (size_t i = 0; i < n; ++i) {
      const size_t k = l.channel(i);
      const double a = gamma[k] * inv[k] / m;
      dx[i] = a * (m * g[i] - dbeta[k] - xhat[i] * dgamma[k]);
      b_dx[i] =
          1e-4 + 1e-3 * std::fabs(dx[i]) + std::fabs(dx[i]) * dinv[k] / inv[k] +
          std::fabs(a) *
              (dxhat[i] * std::fabs(dgamma[k]) + std::fabs(xhat[i]) * b_dg[k] + b_db[k] +
               4 * kEps *
                   (m * std::fabs(g[i]) + std::fabs(dbeta[k]) + std::fabs(xhat[i] * dgamma[k])) +
               (either[i] ? m * std::fabs(dy[i]) : 0.0));
    }
    Expected want{Expect("y", y).Bound(b_y),
                  Expect("save_mean", mu).Bound(dmu),
                  Expect("save_invstd", inv).Bound(dinv),
                  Expect("running_mean", rm).Bound(b_rm),
                  Expect("running_var", rv).Bound(b_rv),
                  Expect("dx", dx).Bound(b_dx),
                  Expect("dgamma", dgamma).Bound(b_dg),
                  Expect("dbeta", dbeta).Bound(b_db)};
    if (fused == BnFused::kResidualRelu)
      want.push_back(Expect("dresidual", dresidual).Bound(b_dresidual));
    return want;
  };
  return r;
}

// Inference: y = gamma (x - running_mean) / sqrt(running_var + eps) + beta,
// elementwise: a subtraction, a (reciprocal) square root, a product and an
// fma or two: within 16 eps of |y| + 1 (the CPU test allows 8; CUDA's
// rsqrtf is 2 ulp).
Row BatchNormInferenceRow(const std::vector<int64_t> &shape) {
  Row r;
  r.op = "batchnorm_inference";
  r.config = ShapeName(shape);
  r.tol = {0, 16 * kEps};
  r.dtypes = kFloats;
  const int64_t c = shape[1];
  const float eps = 1e-3f;
  r.inputs = [=](Gen &g) {
    const size_t n = static_cast<size_t>(Numel(shape)), nc = static_cast<size_t>(c);
    Inputs in;
    in["x"] = Data(shape, g.Normal(n, 0.0, 2.0));
    in["gamma"] = Param({c}, g.Normal(nc, 1.0, 0.5));
    in["beta"] = Param({c}, g.Normal(nc, 0.0, 1.0));
    in["running_mean"] = Param({c}, g.Normal(nc, 0.0, 1.0));
    std::vector<float> v = g.Uniform(nc, 0.01f, 9.0f);
    in["running_var"] = Param({c}, std::move(v));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *y = e.Out(shape);
    CALL(e, cudl_batchnorm_forward_inference(e.ctx(), x, e.In(in, "gamma"), e.In(in, "beta"),
                                             e.In(in, "running_mean"), e.In(in, "running_var"), eps,
                                             y));
    return Outputs{{"y", e.Read(y)}};
  };
  r.reference = [=](const Inputs &in) {
    const BnLayout l(shape);
    const std::vector<float> &x = in.at("x").f, &gamma = in.at("gamma").f, &beta = in.at("beta").f,
                             &rm = in.at("running_mean").f, &rv = in.at("running_var").f;
    std::vector<double> y(x.size()), scale(x.size());
    for (size_t i = 0; i < x.size(); ++i) {
      const size_t k = l.channel(i);
      y[i] = gamma[k] * (x[i] - static_cast<double>(rm[k])) /
                 std::sqrt(static_cast<double>(rv[k]) + static_cast<double>(eps)) +
             beta[k];
      scale[i] = std::fabs(y[i]) + 1;
    }
    return Expected{Expect("y", y).Scale(scale)};
  };
  return r;
}

// ===========================================================================
// Softmax and losses
// ===========================================================================

// Softmax or log-softmax over the last dimension, forward, and backward
// from the float y a training graph keeps (the reference's, rounded; the
// same on every backend). Rows holding a NaN give NaN.
//
// Tolerance (18 + cols / 100) eps of each result's terms: the CPU is within
// 2 eps of |want| (it works in double and rounds once); the hand-written
// CUDA test allowed (16 + cols / 100) eps against it, for float sums over a
// row. The terms: |y| for softmax; |x - max| + log(sum) for log-softmax;
// |y| (|dy| + sum |dy y|) for softmax's backward dx = y (dy - sum dy y);
// |dy| + exp(y) sum |dy| for log-softmax's dx = dy - exp(y) sum dy.
Row SoftmaxRow(const std::vector<int64_t> &shape, bool is_log,
               const std::string &values = "random") {
  Row r;
  r.op = is_log ? "log_softmax" : "softmax";
  r.config = (values == "random" ? "" : values + "_") + ShapeName(shape);
  const int64_t cols = shape.back();
  r.tol = {FLT_MIN, (18 + static_cast<double>(cols) / 100) * kEps};
  auto forward = [cols, is_log](const std::vector<float> &x, std::vector<double> *y,
                                std::vector<double> *scale) {
    const size_t k = static_cast<size_t>(cols), rows = x.size() / k;
    y->assign(x.size(), 0.0);
    scale->assign(x.size(), 0.0);
    for (size_t row = 0; row < rows; ++row) {
      const float *xr = x.data() + row * k;
      bool nan = false;
      double m = -INFINITY, s = 0;
      for (size_t i = 0; i < k; ++i) {
        nan = nan || std::isnan(xr[i]);
        m = std::max(m, static_cast<double>(xr[i]));
      }
      for (size_t i = 0; i < k; ++i) s += std::exp(xr[i] - m);
      for (size_t i = 0; i < k; ++i) {
        const double v = xr[i] - m;
        (*y)[row * k + i] = nan ? NAN : is_log ? v - std::log(s) : std::exp(v) / s;
        (*scale)[row * k + i] = is_log ? std::fabs(v) + std::log(s) : std::exp(v) / s;
      }
    }
  };
  r.inputs = [shape, values, forward](Gen &g) {
    const size_t n = static_cast<size_t>(Numel(shape));
    std::vector<float> x = g.Uniform(n, -10.0f, 10.0f);
    if (values == "extremes")  // exp overflows without the max shift; a NaN row
      x = {1e4f, 1e4f - 1, -1e4f, 88.0f, 89.0f, 90.0f, 1.0f, kNaN, 2.0f};
    std::vector<double> y, unused;
    forward(x, &y, &unused);
    Inputs in;
    in["x"] = Data(shape, std::move(x));
    in["y"] = Data(shape, std::vector<float>(y.begin(), y.end()));
    in["dy"] = Data(shape, g.Uniform(n, -1.0f, 1.0f));
    return in;
  };
  r.run = [shape, is_log](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *saved = e.In(in, "y"), *dy = e.In(in, "dy");
    cudl_tensor *y = e.Out(shape), *dx = e.Out(shape);
    if (is_log) {
      CALL(e, cudl_log_softmax_forward(e.ctx(), x, y));
      CALL(e, cudl_log_softmax_backward(e.ctx(), saved, dy, dx));
    } else {
      CALL(e, cudl_softmax_forward(e.ctx(), x, y));
      CALL(e, cudl_softmax_backward(e.ctx(), saved, dy, dx));
    }
    return Outputs{{"y", e.Read(y)}, {"dx", e.Read(dx)}};
  };
  r.reference = [cols, is_log, forward](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &ys = in.at("y").f, &dy = in.at("dy").f;
    std::vector<double> y, yscale;
    forward(x, &y, &yscale);
    const size_t k = static_cast<size_t>(cols), rows = x.size() / k;
    std::vector<double> dx(x.size()), dscale(x.size());
    for (size_t row = 0; row < rows; ++row) {
      double s = 0, sabs = 0;  // softmax: sum dy y; log-softmax: sum dy
      for (size_t i = row * k; i < (row + 1) * k; ++i) {
        s += is_log ? dy[i] : static_cast<double>(dy[i]) * ys[i];
        sabs += std::fabs(is_log ? dy[i] : static_cast<double>(dy[i]) * ys[i]);
      }
      for (size_t i = row * k; i < (row + 1) * k; ++i) {
        if (is_log) {
          dx[i] = dy[i] - std::exp(static_cast<double>(ys[i])) * s;
          dscale[i] = std::fabs(dy[i]) + std::exp(static_cast<double>(ys[i])) * sabs;
        } else {
          dx[i] = ys[i] * (dy[i] - s);
          dscale[i] = std::fabs(ys[i]) * (std::fabs(dy[i]) + sabs);
        }
      }
    }
    return Expected{Expect("y", y).Scale(yscale), Expect("dx", dx).Scale(dscale)};
  };
  return r;
}

const char *ReductionName(cudl_reduction red) {
  return red == CUDL_REDUCTION_MEAN ? "mean" : "sum";
}

// MSE or BCE-with-logits: the loss (reduced over n) and its gradient for
// an upstream gradient of 0.5. The loss sums n non-negative terms: within
// 1.1e-5 of |want| (the hand-written CUDA test allowed 1e-5 against the
// CPU for float sums over up to 2^22 elements, and the CPU is within 4 eps).
// The gradient: s (pred - target) * 2 or s (sigmoid(x) - t) elementwise:
// within 12 eps of |want| + |t| s (the CUDA test allowed 8 against the CPU,
// whose own bound is 4; an expf ulp of sigmoid(x) cancels against t).
// "large": logits of +-100 and +-1e4, where log(sigmoid) by the naive
// formula overflows.
Row LossRow(bool is_bce, int64_t n, cudl_reduction red, const std::string &values = "random") {
  Row r;
  r.op = is_bce ? "bce_with_logits" : "mse_loss";
  r.config = std::string(ReductionName(red)) + "_" + (values == "random" ? "" : values + "_") +
             std::to_string(n);
  r.tol = {FLT_MIN, 12 * kEps};
  const float grad = 0.5f;
  r.inputs = [=](Gen &g) {
    std::vector<float> a = g.Uniform(static_cast<size_t>(n), -4.0f, 4.0f);
    std::vector<float> b =
        g.Uniform(static_cast<size_t>(n), is_bce ? 0.0f : -3.0f, is_bce ? 1.0f : 3.0f);
    if (values == "large") {
      a = {100.0f, -100.0f, 1e4f, -1e4f};
      b = {0.0f, 1.0f, 1.0f, 0.0f};
    }
    Inputs in;
    in["pred"] = Data({n}, std::move(a));
    in["target"] = Data({n}, std::move(b));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *a = e.In(in, "pred"), *b = e.In(in, "target");
    cudl_tensor *loss = e.Out({}), *d = e.Out({n});
    if (is_bce) {
      CALL(e, cudl_bce_with_logits_forward(e.ctx(), a, b, red, loss));
      CALL(e, cudl_bce_with_logits_backward(e.ctx(), a, b, red, grad, d));
    } else {
      CALL(e, cudl_mse_loss_forward(e.ctx(), a, b, red, loss));
      CALL(e, cudl_mse_loss_backward(e.ctx(), a, b, red, grad, d));
    }
    return Outputs{{"loss", e.Read(loss)}, {"dpred", e.Read(d)}};
  };
  r.reference = [=](const Inputs &in) {
    const std::vector<float> &a = in.at("pred").f, &b = in.at("target").f;
    const double s = red == CUDL_REDUCTION_MEAN ? grad / static_cast<double>(n) : grad;
    double sum = 0;
    std::vector<double> d(a.size()), scale(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      const double x = a[i], t = b[i];
      if (is_bce) {
        sum += std::max(x, 0.0) - x * t + std::log1p(std::exp(-std::fabs(x)));
        d[i] = s * (1.0 / (1.0 + std::exp(-x)) - t);
      } else {
        sum += (x - t) * (x - t);
        d[i] = s * 2 * (x - t);
      }
      scale[i] = std::fabs(d[i]) + std::fabs(t) * s;
    }
    const double loss = red == CUDL_REDUCTION_MEAN ? sum / static_cast<double>(n) : sum;
    return Expected{Expect("loss", {loss}).With({FLT_MIN, 1.1e-5}),
                    Expect("dpred", d).Scale(scale)};
  };
  return r;
}

// Softmax cross-entropy on logits [N, K] against i32 labels, with label
// smoothing s, for an upstream gradient of 2. Loss: within 1.1e-5 (|want|
// + 1) (the hand-written CUDA test allowed 1e-5 (|cpu| + 1); the CPU is
// within 4 eps |want| + 1e-6). Gradient softmax - target per row, scaled:
// within (16 + K / 100) eps of the scale 2 / N or 2 (the CUDA test's bound
// for row sums of K exponentials) plus 4 eps of |want| (the CPU's).
Row CrossEntropyRow(int64_t rows, int64_t classes, float smoothing, cudl_reduction red) {
  Row r;
  r.op = "cross_entropy";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s_smoothing%g_%lldx%lld", ReductionName(red),
                static_cast<double>(smoothing), static_cast<long long>(rows),
                static_cast<long long>(classes));
  r.config = buf;
  const float grad = 2.0f;
  const double gscale = red == CUDL_REDUCTION_MEAN ? grad / static_cast<double>(rows) : grad;
  r.tol = {(16 + static_cast<double>(classes) / 100) * kEps * gscale + 1e-9, 4 * kEps};
  r.inputs = [=](Gen &g) {
    Inputs in;
    in["logits"] =
        Data({rows, classes}, g.Uniform(static_cast<size_t>(rows * classes), -8.0f, 8.0f));
    in["labels"] = I32({rows}, g.Labels(static_cast<size_t>(rows), static_cast<int32_t>(classes)));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "logits"), *y = e.In(in, "labels");
    cudl_tensor *loss = e.Out({1}), *dx = e.Out({rows, classes});
    CALL(e, cudl_cross_entropy_forward(e.ctx(), x, y, smoothing, red, loss));
    CALL(e, cudl_cross_entropy_backward(e.ctx(), x, y, smoothing, red, grad, dx));
    return Outputs{{"loss", e.Read(loss)}, {"dlogits", e.Read(dx)}};
  };
  r.reference = [=](const Inputs &in) {
    const std::vector<float> &x = in.at("logits").f;
    const std::vector<int32_t> &y = in.at("labels").i;
    const size_t k = static_cast<size_t>(classes);
    const double sm = smoothing;
    double total = 0;
    std::vector<double> dx(x.size());
    for (size_t row = 0; row < y.size(); ++row) {
      const float *xr = x.data() + row * k;
      double m = -INFINITY, e = 0, sum = 0;
      for (size_t i = 0; i < k; ++i) m = std::max(m, static_cast<double>(xr[i]));
      for (size_t i = 0; i < k; ++i) {
        e += std::exp(xr[i] - m);
        sum += xr[i];
      }
      const double lse = m + std::log(e);
      total += lse - (1 - sm) * xr[y[row]] - sm / static_cast<double>(k) * sum;
      for (size_t i = 0; i < k; ++i)
        dx[row * k + i] = gscale * (std::exp(xr[i] - lse) - sm / static_cast<double>(k) -
                                    (static_cast<int32_t>(i) == y[row] ? 1 - sm : 0.0));
    }
    const double loss = red == CUDL_REDUCTION_MEAN ? total / static_cast<double>(rows) : total;
    return Expected{Expect("loss", {loss}).With({1.1e-5, 1.1e-5}), Expect("dlogits", dx)};
  };
  return r;
}

// A classifier's correct rows (cudl_count_hits), an exact count: logits
// on a grid of integers -3..3 so that rows often have equal largest values
// (the first is the class), every third label set to that class and every
// fifth to the last of the equal ones (a miss unless they are one); then
// rows with NaN (at the label, and a row all NaN: a miss), and labels -1
// and K (misses).
Row CountHitsRow(int64_t rows, int64_t classes) {
  Row r;
  r.op = "count_hits";
  r.config = std::to_string(rows) + "x" + std::to_string(classes);
  r.tol = {0, 0};
  // The class of a row: the first largest value, NaNs skipped; -1 if none.
  auto top = [=](const float *row, bool last) {
    int64_t best = -1;
    for (int64_t k = 0; k < classes; ++k)
      if (!std::isnan(row[k]) && (best < 0 || row[k] > row[best] || (last && row[k] == row[best])))
        best = k;
    return best;
  };
  r.inputs = [=](Gen &g) {
    std::vector<float> x = g.Uniform(static_cast<size_t>(rows * classes), -3.5f, 3.5f);
    for (float &v : x) v = std::round(v);
    std::vector<int32_t> y = g.Labels(static_cast<size_t>(rows), static_cast<int32_t>(classes));
    for (int64_t i = 0; i < rows; ++i) {
      const float *row = x.data() + i * classes;
      if (i % 3 == 0) y[i] = static_cast<int32_t>(top(row, false));
      if (i % 5 == 0) y[i] = static_cast<int32_t>(top(row, true));
    }
    if (rows >= 7) {
      x[static_cast<size_t>(1 * classes + y[1])] = kNaN;  // NaN at the label
      for (int64_t k = 0; k < classes; ++k) x[static_cast<size_t>(2 * classes + k)] = kNaN;
      y[2] = 0;
      y[4] = -1;
      y[6] = static_cast<int32_t>(classes);
    }
    Inputs in;
    in["logits"] = Data({rows, classes}, std::move(x));
    in["labels"] = I32({rows}, std::move(y));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "logits"), *y = e.In(in, "labels"), *hits = e.Out({1});
    CALL(e, cudl_count_hits(e.ctx(), x, y, hits));
    return Outputs{{"hits", e.Read(hits)}};
  };
  r.reference = [=](const Inputs &in) {
    const std::vector<float> &x = in.at("logits").f;
    const std::vector<int32_t> &y = in.at("labels").i;
    double hits = 0;
    for (int64_t i = 0; i < rows; ++i) {
      const int64_t best = top(x.data() + i * classes, false);
      hits += best >= 0 && best == y[static_cast<size_t>(i)];
    }
    return Expected{Expect("hits", {hits})};
  };
  return r;
}

// ===========================================================================
// Elementwise arithmetic and reductions (cudl/elementwise.h)
// ===========================================================================

// out = a + alpha b (alpha -0.5), a * b, alpha a (alpha 0.25), each on
// U(-3, 3) data with kExtremes in a: a product is one rounding of the exact
// double value and so is a scale by a power of two (Tol{0, 0}); a + alpha
// b is at most two roundings (or one, fused): 2 eps of |a| + |alpha b|.
// In place: out written over a (acc = acc + alpha b, as gradient
// accumulation does).
Row BinaryRow(const std::string &op, int64_t n, bool in_place) {
  Row r;
  r.op = op;
  r.config = (in_place ? "inplace_" : "") + std::to_string(n);
  r.tol = op == "add" ? Tol{0, 2 * kEps} : kExact;
  r.dtypes = kFloats;
  r.inputs = [n](Gen &g) {
    std::vector<float> a = g.Uniform(static_cast<size_t>(n), -3.0f, 3.0f);
    Sprinkle(&a, kExtremes);
    Inputs in;
    in["a"] = Data({n}, std::move(a));
    in["b"] = Data({n}, g.Uniform(static_cast<size_t>(n), -3.0f, 3.0f));
    return in;
  };
  r.run = [op, n, in_place](Env &e, const Inputs &in) {
    cudl_tensor *a = e.In(in, "a"), *b = e.In(in, "b");
    cudl_tensor *out = in_place ? a : e.Out({n});
    if (op == "add") CALL(e, cudl_add(e.ctx(), a, -0.5f, b, out));
    if (op == "mul") CALL(e, cudl_mul(e.ctx(), a, b, out));
    if (op == "scale") CALL(e, cudl_scale(e.ctx(), a, 0.25f, out));
    return Moved<Outputs>(Output{"out", e.Read(out)});
  };
  r.reference = [op](const Inputs &in) {
    const std::vector<float> &a = in.at("a").f, &b = in.at("b").f;
    std::vector<double> out(a.size()), scale(a.size());
    for (size_t i = 0; i < a.size(); ++i) {
      const double x = a[i], y = b[i];
      out[i] = op == "add" ? x - 0.5 * y : op == "mul" ? x * y : 0.25 * x;
      scale[i] = std::fabs(x) + 0.5 * std::fabs(y);
    }
    if (op == "add") return Moved<Expected>(Expect("out", std::move(out)).Scale(std::move(scale)));
    return Moved<Expected>(Expect("out", std::move(out)));
  };
  return r;
}

// The sum (or mean) of all elements. The CPU adds in double and rounds
// once; CUDA adds floats per block and the blocks' sums in order: the
// hand-written CUDA test allowed 1e-6 of sum |x| + 1e-6 (about 8 eps of
// sum |x|). A missing or doubled element moves the sum by one term, which
// is caught up to some 10^5 elements.
Row ReduceRow(bool mean, int64_t n) {
  Row r;
  r.op = mean ? "mean" : "sum";
  r.config = std::to_string(n);
  r.tol = {1e-6, 1e-6};
  r.inputs = [n](Gen &g) {
    Inputs in;
    in["x"] = Data({n}, g.Uniform(static_cast<size_t>(n), -3.0f, 3.0f));
    return in;
  };
  r.run = [mean](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *out = e.Out({1});
    if (mean)
      CALL(e, cudl_mean(e.ctx(), x, out));
    else
      CALL(e, cudl_sum(e.ctx(), x, out));
    return Outputs{{"out", e.Read(out)}};
  };
  r.reference = [mean, n](const Inputs &in) {
    double s = 0, m = 0;
    for (float v : in.at("x").f) {
      s += v;
      m += std::fabs(v);
    }
    const double d = mean ? static_cast<double>(n) : 1.0;
    return Expected{Expect("out", {s / d}).Scale({m / d})};
  };
  return r;
}

// NaN and infinity counts: exact.
Row CountNonfiniteRow(int64_t n) {
  Row r;
  r.op = "count_nonfinite";
  r.config = std::to_string(n);
  r.tol = kExact;
  r.dtypes = kFloats;
  r.inputs = [n](Gen &g) {
    std::vector<float> v = g.Uniform(static_cast<size_t>(n), -2.0f, 2.0f);
    for (size_t i = 0; i < v.size(); i += 7)
      v[i] = (i / 7) % 3 == 0 ? kNaN : (i / 7) % 3 == 1 ? kInf : -kInf;
    Inputs in;
    in["x"] = Data({n}, std::move(v));
    return in;
  };
  r.run = [](Env &e, const Inputs &in) {
    int64_t nan = -1, inf = -1;
    CALL(e, cudl_count_nonfinite(e.ctx(), e.In(in, "x"), &nan, &inf));
    return Outputs{{"nan_count", {static_cast<float>(nan)}},
                   {"inf_count", {static_cast<float>(inf)}}};
  };
  r.reference = [](const Inputs &in) {
    double nan = 0, inf = 0;
    for (float v : in.at("x").f) {
      nan += std::isnan(v) ? 1 : 0;
      inf += std::isinf(v) ? 1 : 0;
    }
    return Expected{Expect("nan_count", {nan}), Expect("inf_count", {inf})};
  };
  return r;
}

// ===========================================================================
// Conversion between float dtypes (cudl_tensor_convert)
// ===========================================================================

// Values where a conversion can go wrong, each commented with what it
// probes (the source dtype rounds them first, like every input).
std::vector<float> ConversionSpecials() {
  return {
      kNaN, -kNaN, kInf, -kInf, 0.0f, -0.0f, 1.0f, -2.5f,
      1.0f + 0x1p-8f, -(1.0f + 0x1p-8f),  // bf16 ties: to the even 1
      1.0f + 3 * 0x1p-8f,                 // a bf16 tie: up to the even 1 + 2^-6
      1.0f + 0x1p-8f + 0x1p-23f,          // just past a bf16 tie: up
      1.0f + 0x1p-11f, 1.0f + 3 * 0x1p-11f,  // f16 ties: down, then up
      2049.0f, 2051.0f,                      // f16 ties among integers
      65504.0f, 65519.0f,                    // the largest f16, and just below its tie
      65520.0f, -65520.0f, 65536.0f, 1e5f,   // f16 overflow: the tie and past it
      0x1.fep127f, 0x1.fefffep127f,          // the largest bf16, and just below its tie
      0x1.ffp127f, FLT_MAX, -FLT_MAX,        // bf16 overflow: the tie and past it
      0x1p-24f, -0x1p-24f, 0x1p-25f,         // the smallest f16 subnormal; a tie to 0
      3 * 0x1p-25f, 0x1p-14f - 0x1p-25f,     // f16 subnormal ties: up to even
      0x1.ff8p-15f, 1e-6f, 1e-8f,            // subnormal f16 values, one below half the least
      FLT_MIN, 0x1p-133f, 0x1.8p-133f,       // the least f32 normal; bf16 subnormals
      0x1p-134f, FLT_TRUE_MIN, -1e-40f,      // below bf16's least: ties and less to 0
  };
}

// dst = src converted, through cudl_tensor_convert (a scale of 1): every
// element src's value correctly rounded to dst's dtype (the one under
// test), infinities past the largest finite value, NaN kept, compared
// exactly (Roundings(0)) with this file's own rounding. `from`: the
// source dtype, or nothing for a conversion in place (dst the same tensor
// as src, in the dtype under test). `values`: "specials"
// (ConversionSpecials) or random magnitudes from 2^-30 to 2^20, across f16's
// subnormals and past its largest value.
Row ConvertRow(const std::string &values, int64_t count, const Dtype *from) {
  Row r;
  r.op = "convert";
  r.config = (from != nullptr ? std::string("from_") + from->name : std::string("inplace")) + "_" +
             (values == "specials" ? values : values + "_" + std::to_string(count));
  r.tol = kExact;
  r.dtypes = kFloats;
  r.inputs = [values, count, from](Gen &g) {
    std::vector<float> v = ConversionSpecials();
    if (values != "specials") {
      const size_t n = static_cast<size_t>(count);
      const std::vector<float> mantissa = g.Uniform(n, 1.0f, 2.0f),
                               exponent = g.Uniform(n, -30.0f, 21.0f),
                               sign = g.Uniform(n, -1.0f, 1.0f);
      v.resize(n);
      for (size_t i = 0; i < n; ++i)
        v[i] = std::copysign(std::ldexp(mantissa[i], static_cast<int>(std::floor(exponent[i]))),
                             sign[i]);
    }
    const std::vector<int64_t> shape = {static_cast<int64_t>(v.size())};
    Inputs in;
    in["src"] =
        from != nullptr ? Typed(from->dtype, shape, std::move(v)) : Data(shape, std::move(v));
    return in;
  };
  r.run = [from](Env &e, const Inputs &in) {
    cudl_tensor *src = e.In(in, "src");
    cudl_tensor *dst = from != nullptr ? e.Out(in.at("src").shape) : src;
    CALL(e, cudl_tensor_convert(dst, src));
    return Moved<Outputs>(Output{"dst", e.Read(dst)});
  };
  r.reference = [](const Inputs &in) {
    const std::vector<float> &src = in.at("src").f;
    return Moved<Expected>(Expect("dst", std::vector<double>(src.begin(), src.end())).Roundings(0));
  };
  return r;
}

// ===========================================================================
// Linear
// ===========================================================================

// y = x w^T + bias, dx = dy w, dw = dy^T x, dbias = column sums of dy. A
// float sum of n products in any order, blocked or fused, is within
// (n + 2) u sum |terms| of the exact sum (Higham, section 3.1), the bound
// test_linear.cpp holds the CPU to; the hand-written CUDA test allowed
// twice that against the CPU: 3 (n + 2) u sum |terms| here, n = IN for y,
// OUT for dx, ROWS for dw and dbias. A wrong or missing term moves a result
// by about sum |terms| / n, above the bound while n^2 u << 1.
// With TF32 allowed, 1e-2 of sum |terms| more (TF32 rounds inputs to 10
// bits: about 1e-3 relative per product).
//
// `grads`: which gradients backward computes ("all"; "dw_db": dx NULL;
// "dx": x, dw and dbias NULL, as a first layer or an empty one calls it).
struct LinearCase {
  std::vector<int64_t> lead;
  int64_t in, out;
  int64_t rows() const { return Numel(lead); }
};

Row LinearRow(const LinearCase &c, bool bias = true, const std::string &grads = "all",
              unsigned flags = 0, const std::string &tag = "") {
  Row r;
  r.op = "linear";
  std::vector<int64_t> xs = c.lead, ys = c.lead;
  xs.push_back(c.in);
  ys.push_back(c.out);
  r.config = (tag.empty() ? "" : tag + "_") + ShapeName(xs) + "_to_" + std::to_string(c.out) +
             (bias ? "" : "_nobias") + (grads == "all" ? "" : "_" + grads);
  r.tol = {0, 0};  // set per output below
  r.flags = flags;
  // TF32 rounds f32 inputs: a question for f32 alone (16-bit inputs are
  // already exact in TF32).
  r.dtypes = (flags & kAllowTf32) ? kF32Only : kFloats;
  const double tf32 = (flags & kAllowTf32) ? 1e-2 : 0.0;
  r.inputs = [=](Gen &g) {
    Inputs in;
    in["x"] = Data(xs, g.Uniform(static_cast<size_t>(c.rows() * c.in), -1.0f, 1.0f));
    in["w"] = Data({c.out, c.in}, g.Uniform(static_cast<size_t>(c.out * c.in), -1.0f, 1.0f));
    in["bias"] = Data({c.out}, g.Uniform(static_cast<size_t>(c.out), -1.0f, 1.0f));
    in["dy"] = Data(ys, g.Uniform(static_cast<size_t>(c.rows() * c.out), -1.0f, 1.0f));
    return in;
  };
  r.run = [=](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *w = e.In(in, "w"), *dy = e.In(in, "dy");
    cudl_tensor *b = bias ? e.In(in, "bias") : nullptr;
    cudl_tensor *y = e.Out(ys);
    CALL(e, cudl_linear_forward(e.ctx(), x, w, b, y));
    Outputs out = {{"y", e.Read(y)}};
    cudl_tensor *dx = grads != "dw_db" ? e.Out(xs) : nullptr;
    cudl_tensor *dw = grads != "dx" ? e.Out({c.out, c.in}) : nullptr;
    cudl_tensor *db = grads != "dx" ? e.Out({c.out}) : nullptr;
    CALL(e, cudl_linear_backward(e.ctx(), grads == "dx" ? nullptr : x, w, dy, dx, dw, db));
    if (dx != nullptr) out.push_back({"dx", e.Read(dx)});
    if (dw != nullptr) out.push_back({"dw", e.Read(dw)});
    if (db != nullptr) out.push_back({"dbias", e.Read(db)});
    return out;
  };
  r.reference = [=](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &w = in.at("w").f, &b = in.at("bias").f,
                             &dy = in.at("dy").f;
    const int64_t rows = c.rows();
    auto tol = [tf32](int64_t n) { return Tol{0, 3 * static_cast<double>(n + 2) * kU + tf32}; };
    std::vector<double> y(static_cast<size_t>(rows * c.out)), ym(y.size());
    std::vector<double> dx(x.size(), 0.0), dxm(x.size(), 0.0), dw(w.size(), 0.0),
        dwm(w.size(), 0.0);
    std::vector<double> db(static_cast<size_t>(c.out), 0.0), dbm(db.size(), 0.0);
    for (int64_t i = 0; i < rows; ++i)
      for (int64_t o = 0; o < c.out; ++o) {
        const size_t yo = static_cast<size_t>(i * c.out + o);
        double s = bias ? b[static_cast<size_t>(o)] : 0.0, m = std::fabs(s);
        for (int64_t k = 0; k < c.in; ++k) {
          const size_t xi = static_cast<size_t>(i * c.in + k),
                       wi = static_cast<size_t>(o * c.in + k);
          const double t = static_cast<double>(x[xi]) * w[wi];
          s += t;
          m += std::fabs(t);
          dx[xi] += static_cast<double>(dy[yo]) * w[wi];
          dxm[xi] += std::fabs(static_cast<double>(dy[yo]) * w[wi]);
          dw[wi] += static_cast<double>(dy[yo]) * x[xi];
          dwm[wi] += std::fabs(static_cast<double>(dy[yo]) * x[xi]);
        }
        y[yo] = s;
        ym[yo] = m;
        db[static_cast<size_t>(o)] += dy[yo];
        dbm[static_cast<size_t>(o)] += std::fabs(dy[yo]);
      }
    // With a bias, a 16-bit y is stored twice: the product, then the sum.
    Expected want = {Expect("y", y).Scale(ym).With(tol(c.in)).Roundings(bias ? 2 : 1)};
    if (grads != "dw_db") want.push_back(Expect("dx", dx).Scale(dxm).With(tol(c.out)));
    if (grads != "dx") {
      want.push_back(Expect("dw", dw).Scale(dwm).With(tol(rows)));
      want.push_back(Expect("dbias", db).Scale(dbm).With(tol(rows)));
    }
    return want;
  };
  return r;
}

// Inputs that TF32 would change but f32 computes exactly (from
// test_linear.cpp): x = +-(1 + k 2^-20) needs 21 mantissa bits (TF32 keeps
// 10), w and the backward's x are powers of two, so every product and
// partial sum is exact in f32 in any order: with TF32 off (the default)
// every backend must give the exact results (Tol{0, 0}). The forward takes
// the fine values as x, the backward as dy.
// kAfterTf32: first run with TF32 allowed, then off again: exact again.
// f32 alone: the fine values are what 16 bits cannot hold.
Row LinearTf32ProbeRow(unsigned flags) {
  Row r;
  r.op = "linear";
  r.config =
      std::string(flags & kAfterTf32 ? "tf32_probe_after_tf32_" : "tf32_probe_") + "4x3_to_3";
  r.tol = kExact;
  r.flags = flags;
  r.inputs = [](Gen &) {
    const float p2[] = {1.0f, -1.0f, 0.5f, -0.5f, 2.0f};
    std::vector<float> fine(12), pow2(12), w(9);
    for (size_t i = 0; i < fine.size(); ++i) {
      fine[i] = (i % 2 == 0 ? 1.0f : -1.0f) * (1.0f + static_cast<float>(i + 1) * 0x1p-20f);
      pow2[i] = p2[(i * 3) % 5];
    }
    for (size_t i = 0; i < w.size(); ++i) w[i] = p2[(i * 2 + 1) % 5];
    Inputs in;
    in["x_forward"] = Data({4, 3}, fine);
    in["x_backward"] = Data({4, 3}, pow2);
    in["dy"] = Data({4, 3}, fine);
    in["w"] = Data({3, 3}, w);
    in["bias"] = Data({3}, {0.25f, -0.5f, 1.0f});
    return in;
  };
  r.run = [](Env &e, const Inputs &in) {
    cudl_tensor *w = e.In(in, "w"), *y = e.Out({4, 3}), *dx = e.Out({4, 3}), *dw = e.Out({3, 3});
    cudl_tensor *db = e.Out({3});
    CALL(e, cudl_linear_forward(e.ctx(), e.In(in, "x_forward"), w, e.In(in, "bias"), y));
    CALL(e, cudl_linear_backward(e.ctx(), e.In(in, "x_backward"), w, e.In(in, "dy"), dx, dw, db));
    return Outputs{{"y", e.Read(y)}, {"dx", e.Read(dx)}, {"dw", e.Read(dw)}, {"dbias", e.Read(db)}};
  };
  r.reference = [](const Inputs &in) {
    const std::vector<float> &xf = in.at("x_forward").f, &xb = in.at("x_backward").f,
                             &dy = in.at("dy").f, &w = in.at("w").f, &b = in.at("bias").f;
    std::vector<double> y(12), dx(12, 0.0), dw(9, 0.0), db(3, 0.0);
    for (size_t i = 0; i < 4; ++i)
      for (size_t o = 0; o < 3; ++o) {
        y[i * 3 + o] = b[o];
        for (size_t k = 0; k < 3; ++k) {
          y[i * 3 + o] += static_cast<double>(xf[i * 3 + k]) * w[o * 3 + k];
          dx[i * 3 + k] += static_cast<double>(dy[i * 3 + o]) * w[o * 3 + k];
          dw[o * 3 + k] += static_cast<double>(dy[i * 3 + o]) * xb[i * 3 + k];
        }
        db[o] += dy[i * 3 + o];
      }
    return Expected{Expect("y", y), Expect("dx", dx), Expect("dw", dw), Expect("dbias", db)};
  };
  return r;
}

// ===========================================================================
// Convolution
// ===========================================================================

cudl_conv2d_desc ConvDesc(int sh, int sw, int ph, int pw, int dh = 1, int dw = 1, int groups = 1) {
  cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
  d.stride_h = sh;
  d.stride_w = sw;
  d.pad_h = ph;
  d.pad_w = pw;
  d.dilation_h = dh;
  d.dilation_w = dw;
  d.groups = groups;
  return d;
}

// x [n, c, h, w], w [k, c / groups, r, s].
struct ConvCase {
  int64_t n, c, h, w;
  int64_t k, r, s;
  cudl_conv2d_desc d;
  int64_t cg() const { return c / d.groups; }
  int64_t kg() const { return k / d.groups; }
  int64_t oh() const { return (h + 2 * d.pad_h - d.dilation_h * (r - 1) - 1) / d.stride_h + 1; }
  int64_t ow() const { return (w + 2 * d.pad_w - d.dilation_w * (s - 1) - 1) / d.stride_w + 1; }
  std::vector<int64_t> x_shape() const { return {n, c, h, w}; }
  std::vector<int64_t> w_shape() const { return {k, cg(), r, s}; }
  std::vector<int64_t> y_shape() const { return {n, k, oh(), ow()}; }
  std::string str() const {
    char buf[160];
    std::snprintf(
        buf, sizeof buf, "x%lldx%lldx%lldx%lld_w%lldx%lldx%lldx%lld_s%dx%d_p%dx%d_d%dx%d_g%d",
        static_cast<long long>(n), static_cast<long long>(c), static_cast<long long>(h),
        static_cast<long long>(w), static_cast<long long>(k), static_cast<long long>(cg()),
        static_cast<long long>(r), static_cast<long long>(s), d.stride_h, d.stride_w, d.pad_h,
        d.pad_w, d.dilation_h, d.dilation_w, d.groups);
    return buf;
  }
};

// The geometries of test_conv.cpp, each line saying what it is for.
std::vector<ConvCase> ConvCases() {
  std::vector<ConvCase> cases = {
      {1, 1, 1, 1, 1, 1, 1, ConvDesc(1, 1, 0, 0)},            // the smallest: one multiply
      {1, 3, 7, 13, 5, 3, 3, ConvDesc(1, 1, 1, 1)},           // batch 1, prime sizes, "same" 3x3
      {2, 3, 7, 13, 7, 5, 3, ConvDesc(2, 3, 2, 1)},           // 5x3 kernel, stride 2x3, pad 2x1
      {3, 5, 13, 7, 3, 1, 1, ConvDesc(2, 2, 0, 0)},           // 1x1 stride 2: inputs skipped
      {1, 7, 5, 7, 4, 1, 1, ConvDesc(3, 1, 0, 0)},            // 1x1 stride 3x1
      {2, 3, 11, 13, 5, 7, 7, ConvDesc(3, 3, 3, 3)},          // 7x7 stride 3 pad 3
      {1, 3, 9, 8, 2, 7, 7, ConvDesc(2, 1, 6, 0)},            // 7x7 pad 6 (the most) by 0
      {2, 3, 7, 13, 4, 3, 3, ConvDesc(1, 1, 4, 2, 2, 2)},     // dilation 2, pad 4 (the most) by 2
      {2, 5, 9, 11, 3, 3, 3, ConvDesc(1, 2, 2, 0, 2, 1)},     // dilation 2x1, stride 1x2
      {2, 6, 9, 11, 4, 3, 3, ConvDesc(1, 1, 1, 1, 1, 1, 2)},  // groups 2
      {1, 6, 7, 13, 6, 5, 3, ConvDesc(2, 1, 2, 1, 1, 1, 3)},  // groups 3, 5x3, stride 2x1
      {2, 7, 13, 7, 7, 3, 3, ConvDesc(2, 2, 1, 1, 1, 1, 7)},  // depthwise, stride 2
      {1, 5, 7, 9, 10, 5, 3, ConvDesc(1, 1, 0, 2, 1, 1, 5)},  // depthwise, 2 filters per channel
      {2, 4, 8, 8, 6, 3, 3, ConvDesc(2, 2, 0, 0, 2, 2, 2)},   // dilation, groups and stride
      // A dilated kernel (9) wider than the image (5): only padding makes it fit.
      {2, 3, 6, 5, 4, 3, 3, ConvDesc(1, 2, 3, 2, 3, 4)},
      {2, 3, 7, 7, 5, 7, 7, ConvDesc(1, 1, 0, 0)},  // kernel = image: 1x1 output
      {1, 2, 3, 3, 3, 5, 5, ConvDesc(1, 1, 1, 1)},  // kernel > image, padded fits exactly
      // ResNet-20 on CIFAR-10 (batch 8): the stem, a downsampling 3x3 and
      // its 1x1 projection.
      {8, 3, 32, 32, 16, 3, 3, ConvDesc(1, 1, 1, 1)},
      {8, 16, 32, 32, 32, 3, 3, ConvDesc(2, 2, 1, 1)},
      {8, 16, 32, 32, 32, 1, 1, ConvDesc(2, 2, 0, 0)},
      {8, 32, 16, 16, 32, 3, 3, ConvDesc(1, 1, 1, 1, 1, 1, 32)},  // depthwise
      {4, 16, 15, 17, 32, 3, 3, ConvDesc(2, 2, 1, 1, 1, 1, 4)},   // 4 groups, odd sizes
      // The CPU's f32 Winograd path (cpu_conv.c: 3x3, stride 1, channels in
      // blocks of 16, at least 32, and work enough): odd sizes, so its 4x4
      // output tiles overhang the image; 3 blocks of channels in, 4 out.
      {8, 48, 17, 13, 64, 3, 3, ConvDesc(1, 1, 1, 1)},
      {0, 3, 7, 13, 5, 3, 3, ConvDesc(1, 1, 1, 1)},  // N = 0: empty y and dx, zero dw and dbias
  };
  // Every pad from 0 to dilation * (kernel - 1), stride 2, dilation 1 and 2.
  for (int dil = 1; dil <= 2; ++dil)
    for (int pad = 0; pad <= dil * 2; ++pad)
      cases.push_back({1, 3, 7, 13, 2, 3, 3, ConvDesc(2, 2, pad, pad, dil, dil)});
  return cases;
}

// Layers whose backward passes cuDNN likes to reduce with atomics (large
// batch, many output pixels per filter): run in deterministic mode, twice.
// The last: a 3x3 layer of 32 channels in and 48 out at batch 16, which
// the CPU runs with Winograd; the same bits twice there too.
std::vector<ConvCase> ConvDeterministicCases() {
  return {{32, 16, 32, 32, 32, 3, 3, ConvDesc(2, 2, 1, 1)},
          {32, 3, 32, 32, 16, 3, 3, ConvDesc(1, 1, 1, 1)},
          {16, 32, 16, 16, 32, 3, 3, ConvDesc(1, 1, 1, 1, 1, 1, 32)},
          {16, 32, 16, 16, 48, 3, 3, ConvDesc(1, 1, 1, 1)}};
}

// Forward without and with bias, the forward fused with its epilogue
// (bias, residual and ReLU; residual and leaky ReLU without bias; bias and
// ReLU), backward data, filter and bias, against a direct seven-loop
// float64 convolution and its adjoints. Each result sums
// T terms: within 32 eps of sum |terms| (test_conv.cpp's kCudaBound: cuDNN
// may pick Winograd or FFT algorithms with larger constants than a dot
// product; TF32, 10-bit inputs, would be some 400 eps here and fails it, so
// this also checks that TF32 is off by default). The CPU is within 4 where
// it sums directly; its f32 Winograd path (cpu_conv.c) came within 9 on
// the rows that take it. A wrong or missing term moves a result by
// sum |terms| / T, at least 5 times the bound for every shape here. An
// element no term reaches (mag 0) must be exactly 0.
constexpr float kConvLeakySlope = 0.125f;  // exact in every dtype

Row ConvRow(const ConvCase &t, unsigned flags = 0) {
  Row r;
  r.op = "conv2d";
  r.config = ((flags & kDeterministic) ? "deterministic_" : "") + t.str();
  r.tol = {0, 32 * kEps};
  r.flags = flags;
  r.dtypes = kFloats;
  r.inputs = [t](Gen &g) {
    Inputs in;
    in["x"] = Data(t.x_shape(), g.Uniform(static_cast<size_t>(Numel(t.x_shape())), -1.0f, 1.0f));
    in["w"] = Data(t.w_shape(), g.Uniform(static_cast<size_t>(Numel(t.w_shape())), -1.0f, 1.0f));
    in["bias"] = Data({t.k}, g.Uniform(static_cast<size_t>(t.k), -1.0f, 1.0f));
    in["dy"] = Data(t.y_shape(), g.Uniform(static_cast<size_t>(Numel(t.y_shape())), -1.0f, 1.0f));
    in["residual"] =
        Data(t.y_shape(), g.Uniform(static_cast<size_t>(Numel(t.y_shape())), -1.0f, 1.0f));
    return in;
  };
  r.run = [t](Env &e, const Inputs &in) {
    cudl_tensor *x = e.In(in, "x"), *w = e.In(in, "w"), *b = e.In(in, "bias"), *dy = e.In(in, "dy");
    cudl_tensor *res = e.In(in, "residual");
    cudl_tensor *conv = e.Out(t.y_shape()), *y = e.Out(t.y_shape()), *dx = e.Out(t.x_shape());
    cudl_tensor *dw = e.Out(t.w_shape()), *db = e.Out({t.k});
    cudl_tensor *fused = e.Out(t.y_shape()), *leaky = e.Out(t.y_shape());
    cudl_tensor *bias_relu = e.Out(t.y_shape());
    CALL(e, cudl_conv2d_forward(e.ctx(), &t.d, x, w, nullptr, conv));
    CALL(e, cudl_conv2d_forward(e.ctx(), &t.d, x, w, b, y));
    CALL(e, cudl_conv2d_forward_fused(e.ctx(), &t.d, x, w, b, res, 1, 0.0f, fused));
    CALL(e,
         cudl_conv2d_forward_fused(e.ctx(), &t.d, x, w, nullptr, res, 1, kConvLeakySlope, leaky));
    CALL(e, cudl_conv2d_forward_fused(e.ctx(), &t.d, x, w, b, nullptr, 1, 0.0f, bias_relu));
    CALL(e, cudl_conv2d_backward_data(e.ctx(), &t.d, w, dy, dx));
    CALL(e, cudl_conv2d_backward_filter(e.ctx(), &t.d, x, dy, dw));
    CALL(e, cudl_conv2d_backward_bias(e.ctx(), dy, db));
    return Outputs{{"y_nobias", e.Read(conv)},
                   {"y", e.Read(y)},
                   {"y_fused", e.Read(fused)},
                   {"y_fused_leaky", e.Read(leaky)},
                   {"y_fused_bias_relu", e.Read(bias_relu)},
                   {"dx", e.Read(dx)},
                   {"dw", e.Read(dw)},
                   {"dbias", e.Read(db)}};
  };
  r.reference = [t](const Inputs &in) {
    const std::vector<float> &x = in.at("x").f, &w = in.at("w").f, &b = in.at("bias").f,
                             &dy = in.at("dy").f, &res = in.at("residual").f;
    const int64_t oh = t.oh(), ow = t.ow(), cg = t.cg(), kg = t.kg();
    std::vector<double> conv(dy.size()), conv_m(dy.size()), y(dy.size()), y_m(dy.size());
    std::vector<double> fused(dy.size()), fused_m(dy.size()), leaky(dy.size()), leaky_m(dy.size()),
        bias_relu(dy.size());
    std::vector<double> dx(x.size(), 0.0), dx_m(x.size(), 0.0), dw(w.size(), 0.0),
        dw_m(w.size(), 0.0), db(b.size(), 0.0), db_m(b.size(), 0.0);
    for (int64_t n = 0; n < t.n; ++n)
      for (int64_t k = 0; k < t.k; ++k)
        for (int64_t p = 0; p < oh; ++p)
          for (int64_t q = 0; q < ow; ++q) {
            const size_t o = static_cast<size_t>(((n * t.k + k) * oh + p) * ow + q);
            const double g = dy[o];
            const int64_t group = k / kg;
            double sum = 0.0, mag = 0.0;
            for (int64_t c = 0; c < cg; ++c)
              for (int64_t i = 0; i < t.r; ++i)
                for (int64_t j = 0; j < t.s; ++j) {
                  const int64_t ih = p * t.d.stride_h - t.d.pad_h + i * t.d.dilation_h;
                  const int64_t iw = q * t.d.stride_w - t.d.pad_w + j * t.d.dilation_w;
                  if (ih < 0 || ih >= t.h || iw < 0 || iw >= t.w) continue;
                  const size_t xi =
                      static_cast<size_t>(((n * t.c + group * cg + c) * t.h + ih) * t.w + iw);
                  const size_t wi = static_cast<size_t>(((k * cg + c) * t.r + i) * t.s + j);
                  const double xv = x[xi], wv = w[wi];
                  sum += xv * wv;
                  mag += std::fabs(xv * wv);
                  dx[xi] += wv * g;
                  dx_m[xi] += std::fabs(wv * g);
                  dw[wi] += xv * g;
                  dw_m[wi] += std::fabs(xv * g);
                }
            const double bk = b[static_cast<size_t>(k)];
            conv[o] = sum;
            conv_m[o] = mag;
            y[o] = sum + bk;
            y_m[o] = mag + std::fabs(bk);
            // The ReLUs' scale is their input's: a value within the bound
            // of 0 may fall on either side.
            const double v = sum + bk + res[o], lv = sum + res[o];
            fused[o] = v > 0 ? v : 0.0;
            fused_m[o] = y_m[o] + std::fabs(res[o]);
            leaky[o] = lv > 0 ? lv : kConvLeakySlope * lv;
            leaky_m[o] = mag + std::fabs(res[o]);
            bias_relu[o] = y[o] > 0 ? y[o] : 0.0;
            db[static_cast<size_t>(k)] += g;
            db_m[static_cast<size_t>(k)] += std::fabs(g);
          }
    // A 16-bit y with bias is stored twice: the convolution, then the sum.
    // The fused forward rounds once where the backend has one pass, and up
    // to three times (convolution, bias, residual) where it composes them.
    return Expected{Expect("y_nobias", conv).Scale(conv_m),
                    Expect("y", y).Scale(y_m).Roundings(2),
                    Expect("y_fused", fused).Scale(fused_m).Roundings(3),
                    Expect("y_fused_leaky", leaky).Scale(leaky_m).Roundings(2),
                    Expect("y_fused_bias_relu", bias_relu).Scale(y_m).Roundings(2),
                    Expect("dx", dx).Scale(dx_m),
                    Expect("dw", dw).Scale(dw_m),
                    Expect("dbias", db).Scale(db_m)};
  };
  return r;
}

// The bias gradient alone, run twice in the default mode: cudl/conv.h
// documents it as deterministic on every device whatever the mode (it is
// cudl's own reduction, not cuDNN's). Tolerance as ConvRow's.
Row ConvBiasRow(const ConvCase &t) {
  Row r;
  r.op = "conv2d_backward_bias";
  r.config = ShapeName(t.y_shape());
  r.tol = {0, 32 * kEps};
  r.flags = kRepeatable;
  r.dtypes = kFloats;
  r.inputs = [t](Gen &g) {
    Inputs in;
    in["dy"] = Data(t.y_shape(), g.Uniform(static_cast<size_t>(Numel(t.y_shape())), -1.0f, 1.0f));
    return in;
  };
  r.run = [t](Env &e, const Inputs &in) {
    cudl_tensor *db = e.Out({t.k});
    CALL(e, cudl_conv2d_backward_bias(e.ctx(), e.In(in, "dy"), db));
    return Outputs{{"dbias", e.Read(db)}};
  };
  r.reference = [t](const Inputs &in) {
    const std::vector<float> &dy = in.at("dy").f;
    const size_t plane = static_cast<size_t>(t.oh() * t.ow()), k = static_cast<size_t>(t.k);
    std::vector<double> db(k, 0.0), mag(k, 0.0);
    for (size_t i = 0; i < dy.size(); ++i) {
      db[(i / plane) % k] += dy[i];
      mag[(i / plane) % k] += std::fabs(dy[i]);
    }
    return Expected{Expect("dbias", db).Scale(mag)};
  };
  return r;
}

// ===========================================================================
// Optimizers and gradient clipping (cudl/optim.h)
// ===========================================================================

struct OptimConfig {
  std::string name;
  cudl_optimizer_config c;
};

cudl_optimizer_config DefaultConfig(cudl_optimizer_kind kind) {
  cudl_optimizer_config c;
  std::memset(&c, 0, sizeof c);
  (void)cudl_optimizer_config_default(kind, &c);  // test_optim.cpp checks it
  return c;
}

std::vector<OptimConfig> OptimConfigs() {
  std::vector<OptimConfig> out;
  cudl_optimizer_config c = DefaultConfig(CUDL_OPTIMIZER_SGD);
  c.lr = 0.1f;
  out.push_back({"sgd", c});
  c.weight_decay = 0.01f;
  out.push_back({"sgd_wd", c});
  c.weight_decay = 0.0f;
  c.momentum = 0.9f;
  out.push_back({"sgd_momentum", c});
  c.dampening = 0.3f;
  out.push_back({"sgd_momentum_dampening", c});
  c.dampening = 0.0f;
  c.nesterov = 1;
  c.weight_decay = 5e-4f;
  out.push_back({"sgd_nesterov_wd", c});
  c = DefaultConfig(CUDL_OPTIMIZER_ADAM);
  out.push_back({"adam", c});
  c.weight_decay = 0.05f;
  c.beta1 = 0.8f;
  c.beta2 = 0.99f;
  c.eps = 1e-6f;
  out.push_back({"adam_wd", c});
  c = DefaultConfig(CUDL_OPTIMIZER_ADAMW);
  out.push_back({"adamw", c});
  c.weight_decay = 0.1f;
  c.lr = 0.01f;
  out.push_back({"adamw_wd0.1", c});
  return out;
}

// One step of an optimizer from a given state: params p, gradients g, the
// state tensors (zero at t = 0, as after create; random at t = 4, written
// through cudl_optimizer_state, with the count restored by
// cudl_optimizer_set_steps), learning rate lr. The float64 reference is
// cudl/optim.h's update rule, with a per-element bound from
// test_optim.cpp's DoubleStep: each float operation rounds by at most eps/2
// of its result; 4 eps (SGD) or 8 eps (Adam) of the magnitudes that meet in
// an output covers the two to six roundings on any path, while a wrong
// formula (a missing dampening, a bias correction off by a step, weight
// decay coupled instead of decoupled) moves an output by one of the terms.
// Every backend does the same float operations in the same order, so the
// bits equal the CPU's (test_optim.cpp checks them against PyTorch's).
Row OptimRow(const OptimConfig &cfg, int64_t n, int64_t t0, float lr_factor) {
  Row r;
  r.op = "optimizer_step";
  char buf[96];
  std::snprintf(buf, sizeof buf, "%s_t%lld_lr%g_%lld", cfg.name.c_str(), static_cast<long long>(t0),
                static_cast<double>(cfg.c.lr * lr_factor), static_cast<long long>(n));
  r.config = buf;
  r.tol = {0, 0};  // every output has its bound
  r.flags = kSameBitsAsCpu;
  const cudl_optimizer_config c = cfg.c;
  const float lr = c.lr * lr_factor;
  r.inputs = [n, t0](Gen &g) {
    const size_t un = static_cast<size_t>(n);
    std::vector<float> grad = g.Normal(un, 0.0, 1.0);
    Sprinkle(&grad, {0.0f, -0.0f});  // zero gradients
    std::vector<float> s0(un, 0.0f), s1(un, 0.0f);
    if (t0 > 0) {
      s0 = g.Normal(un, 0.0, 0.5);
      s1 = g.Normal(un, 0.0, 1.0);
      for (float &v : s1) v = v * v;  // a second moment is >= 0
    }
    Inputs in;
    in["params"] = Data({n}, g.Normal(un, 0.0, 1.0));
    in["grads"] = Data({n}, std::move(grad));
    in["state0"] = Data({n}, std::move(s0));
    in["state1"] = Data({n}, std::move(s1));
    return in;
  };
  r.run = [c, n, t0, lr](Env &e, const Inputs &in) {
    cudl_optimizer *opt = nullptr;
    CALL(e, cudl_optimizer_create(e.ctx(), &c, n, &opt));
    if (opt == nullptr) return Outputs{};
    e.Defer([opt]() { cudl_optimizer_destroy(opt); });
    const int count = cudl_optimizer_state_count(opt);
    for (int i = 0; i < count; ++i) {
      const HostTensor &h = in.at(i == 0 ? "state0" : "state1");
      CALL(e, cudl_tensor_copy_from_host(cudl_optimizer_state(opt, i, nullptr), h.f.data(),
                                         h.f.size() * sizeof(float)));
    }
    CALL(e, cudl_optimizer_set_steps(opt, t0));
    cudl_tensor *p = e.In(in, "params"), *g = e.In(in, "grads");
    CALL(e, cudl_optimizer_step(opt, p, g, lr));
    Outputs out = {{"params", e.Read(p)}};
    for (int i = 0; i < count; ++i) {
      const char *name = nullptr;
      const cudl_tensor *s = cudl_optimizer_state(opt, i, &name);
      out.push_back({name == nullptr ? "?" : name, e.Read(s)});
    }
    return out;
  };
  r.reference = [c, t0, lr](const Inputs &in) {
    const std::vector<float> &ps = in.at("params").f, &gs = in.at("grads").f,
                             &s0s = in.at("state0").f, &s1s = in.at("state1").f;
    const size_t n_ = gs.size();
    std::vector<double> p(n_), bp(n_), s0(n_), bs0(n_), s1(n_), bs1(n_);
    const double wd = c.weight_decay, L = lr;
    if (c.kind == CUDL_OPTIMIZER_SGD) {
      const double mom = c.momentum, keep = 1.0 - static_cast<double>(c.dampening);
      for (size_t i = 0; i < n_; ++i) {
        const double pi = ps[i];
        double d = gs[i] + wd * pi, md = std::fabs(gs[i]) + wd * std::fabs(pi);
        if (mom != 0.0) {
          const double old = s0s[i];
          const double b = t0 == 0 ? d : mom * old + keep * d;
          const double mb = t0 == 0 ? md : mom * std::fabs(old) + keep * md;
          s0[i] = b;
          bs0[i] = 4 * kEps * mb + FLT_MIN;
          d = c.nesterov ? d + mom * b : b;
          md = c.nesterov ? md + mom * mb : mb;
        }
        p[i] = pi - L * d;
        bp[i] = 4 * kEps * (std::fabs(pi) + L * md) + FLT_MIN;
      }
      Expected want = {Expect("params", p).Bound(bp)};
      if (c.momentum != 0.0f) want.push_back(Expect("momentum_buffer", s0).Bound(bs0));
      return want;
    }
    const double t = static_cast<double>(t0 + 1), b1 = c.beta1, b2 = c.beta2;
    const double bc1 = 1.0 - std::pow(b1, t), bc2 = 1.0 - std::pow(b2, t);
    const bool adamw = c.kind == CUDL_OPTIMIZER_ADAMW;
    for (size_t i = 0; i < n_; ++i) {
      const double pi = adamw ? ps[i] * (1.0 - L * wd) : ps[i];
      const double gi = adamw ? gs[i] : gs[i] + wd * pi;
      const double mg = adamw ? std::fabs(gs[i]) : std::fabs(gs[i]) + wd * std::fabs(pi);
      const double m = b1 * s0s[i] + (1.0 - b1) * gi;
      const double mm = b1 * std::fabs(s0s[i]) + (1.0 - b1) * mg;
      const double v = b2 * s1s[i] + (1.0 - b2) * gi * gi;
      const double mv = b2 * s1s[i] + (1.0 - b2) * mg * mg;
      const double denom = std::sqrt(v) / std::sqrt(bc2) + static_cast<double>(c.eps);
      const double update = L / bc1 * m / denom;
      // The update's error: m's (relative to mm), and the denominator's,
      // whose square root halves v's relative error mv / v.
      const double rel_denom = 2 * kEps + (v > 0 ? kEps * mv / v : 0.0);
      const double bu =
          L / bc1 * 3 * kEps * mm / denom + std::fabs(update) * (rel_denom + 3 * kEps);
      s0[i] = m;
      s1[i] = v;
      bs0[i] = 4 * kEps * mm + FLT_MIN;
      bs1[i] = 4 * kEps * mv + FLT_MIN;
      p[i] = pi - update;
      bp[i] = 8 * kEps * std::fabs(pi) + 2 * bu + FLT_MIN;
    }
    return Expected{Expect("params", p).Bound(bp), Expect("exp_avg", s0).Bound(bs0),
                    Expect("exp_avg_sq", s1).Bound(bs1)};
  };
  return r;
}

// clip_grad_norm: the norm, sqrt(sum g^2) in double rounded once (the CPU
// is exact to that rounding; CUDA sums in another order: within 1 ulp,
// which the hand-written CUDA test allowed), 2 eps of |want|; then grads *=
// max_norm / (norm + 1e-6) when that is below 1, in float (the norm's ulp,
// the sum, the division and the product: 4 eps of |want|). A NaN or
// infinite gradient, or a norm above FLT_MAX, leaves grads unchanged.
// max_norm is `ratio` times the norm (0.5 clips, 4 does not). Without
// the norm tensor (NULL) only the gradients are written.
Row ClipRow(const std::string &values, int64_t n, double ratio, bool with_norm = true) {
  Row r;
  r.op = "clip_grad_norm";
  char buf[64];
  std::snprintf(buf, sizeof buf, "%s%s_ratio%g_%lld", values.c_str(), with_norm ? "" : "_no_norm",
                ratio, static_cast<long long>(n));
  r.config = buf;
  r.tol = {0, 4 * kEps};
  auto norm_of = [](const std::vector<float> &g) {
    double s = 0;
    for (float v : g) s += static_cast<double>(v) * v;
    return std::sqrt(s);
  };
  auto max_norm_of = [ratio, norm_of](const std::vector<float> &g) {
    const double max_norm = norm_of(g) * ratio;  // finite and > 0 for the call
    return std::isfinite(max_norm) && max_norm > 0 && max_norm <= FLT_MAX
               ? static_cast<float>(max_norm)
               : 1.0f;
  };
  r.inputs = [n, values](Gen &gen) {
    std::vector<float> g = gen.Normal(static_cast<size_t>(n), 0.0, 0.01);
    if (values == "nan") g[g.size() / 2] = kNaN;
    if (values == "inf") g[g.size() / 2] = -kInf;
    if (values == "overflow") g = std::vector<float>(g.size(), 3e38f);  // norm > FLT_MAX
    Inputs in;
    in["grads"] = Data({n}, std::move(g));
    return in;
  };
  r.run = [max_norm_of, with_norm](Env &e, const Inputs &in) {
    cudl_tensor *g = e.In(in, "grads"), *norm = with_norm ? e.Out({1}) : nullptr;
    CALL(e, cudl_clip_grad_norm(e.ctx(), g, max_norm_of(in.at("grads").f), norm));
    Outputs out = {{"grads", e.Read(g)}};
    if (with_norm) out.push_back({"norm", e.Read(norm)});
    return out;
  };
  r.reference = [norm_of, max_norm_of, with_norm](const Inputs &in) {
    const std::vector<float> &g = in.at("grads").f;
    const double norm = norm_of(g), max_norm = max_norm_of(g);
    const bool clip = std::isfinite(norm) && norm <= FLT_MAX && max_norm / (norm + 1e-6) < 1.0;
    std::vector<double> out(g.size());
    for (size_t i = 0; i < g.size(); ++i) out[i] = clip ? g[i] * (max_norm / (norm + 1e-6)) : g[i];
    Expected want = {Expect("grads", out)};
    if (with_norm) want.push_back(Expect("norm", {norm}).With({0, 2 * kEps}));
    return want;
  };
  return r;
}

// ===========================================================================
// The table
// ===========================================================================

// The row on unaligned views (kUnaligned).
Row Unaligned(Row r) {
  r.flags |= kUnaligned;
  r.config = "unaligned_" + r.config;
  return r;
}

// The row with its 4-D data channels-last (kChannelsLast): the same
// values, reference and tolerance, in the other memory order.
Row ChannelsLast(Row r) {
  r.flags |= kChannelsLast;
  r.config = "nhwc_" + r.config;
  return r;
}

// A row of kLarge elements: in bf16 and f16 on CUDA alone. It is there for
// the kernels (grid-stride loops going round, indices past 2^24, the new
// 16-bit kernels' vector paths); the CPU's 16-bit entries are its f32 loops,
// which run at this size in f32, inside conversion loops with 64-bit
// indices, so in 16 bits the CPU would spend some 20 s a row (the f32 rows
// take 10 to 55 s each, mostly in the float64 reference) to catch nothing
// new.
Row Large(Row r) {
  r.cpu_dtypes = kF32Only;
  return r;
}

std::vector<Row> BuildTable() {
  std::vector<Row> t;
  // Activations: 1, a tail alone, one float4, a float4 and a tail, primes,
  // 4-D, and past one CUDA grid; kExtremes in every shape of 32 elements or
  // more. In place, and on
  // unaligned views, at 1021.
  const std::vector<std::vector<int64_t>> act_shapes = {{1},     {3},    {4},           {5},
                                                        {7, 13}, {1021}, {3, 5, 7, 11}, {kLarge}};
  for (const Activation &a : Activations()) {
    for (const auto &shape : act_shapes)
      t.push_back(shape[0] == kLarge ? Large(ActivationRow(a, shape, false))
                                     : ActivationRow(a, shape, false));
    t.push_back(ActivationRow(a, {1021}, true));
    t.push_back(Unaligned(ActivationRow(a, {1021}, false)));
  }
  // PReLU: few channels with many elements each, many channels with few,
  // one element, and a 4-D batch; per channel and shared.
  for (const auto &shape :
       std::vector<std::vector<int64_t>>{{8, 3, 33, 31}, {2, 700, 3}, {1, 1, 1}, {2, 3, 5, 7}})
    for (bool shared : {false, true}) {
      t.push_back(PreluRow(shape, shared));
      if (shape.size() == 4) t.push_back(ChannelsLast(PreluRow(shape, shared)));
    }
  for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1021}}) t.push_back(RreluRow(n, true));
  t.push_back(Large(RreluRow(kLarge, true)));
  t.push_back(Unaligned(RreluRow(1021, true)));
  t.push_back(RreluRow(1021, false));
  // Dropout: p = 0 and 1 exactly, two between; evaluation; in place. One
  // large size (p = 0 and 1 run the same kernel with another constant).
  for (float p : {0.0f, 0.2f, 0.5f, 1.0f})
    for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1021}})
      t.push_back(DropoutRow(n, p, true, false));
  t.push_back(Large(DropoutRow(kLarge, 0.5f, true, false)));
  t.push_back(DropoutRow(1021, 0.5f, false, false));
  // Dropout after an activation: every activation whose backward reads x,
  // at a tail alone, a prime past one vector, in place and unaligned; ReLU
  // past one CUDA grid too (every kind runs the same grid-stride loops).
  for (const Activation &a : Activations()) {
    if (a.backward_from_output) continue;
    for (int64_t n : {int64_t{3}, int64_t{1021}})
      t.push_back(ActivationDropoutRow(a, n, 0.3f, false));
    t.push_back(ActivationDropoutRow(a, 999, 0.5f, true));
    t.push_back(Unaligned(ActivationDropoutRow(a, 1021, 0.5f, false)));
    if (a.name == "relu") t.push_back(Large(ActivationDropoutRow(a, kLarge, 0.2f, false)));
  }
  // Concatenation: 2-D features (one part of one feature), 3-D, 4-D in both
  // layouts (parts of 1 and of prime channel counts, odd planes), one input
  // alone, and a batch past a CUDA grid's first pass.
  t.push_back(ConcatRow({3, 0}, {1, 5, 2}));
  t.push_back(ConcatRow({2, 0, 5}, {3, 1, 4}));
  for (const auto &parts : std::vector<std::vector<int64_t>>{{3, 5, 1}, {2}, {1, 1}}) {
    t.push_back(ConcatRow({2, 0, 7, 9}, parts));
    t.push_back(ChannelsLast(ConcatRow({2, 0, 7, 9}, parts)));
  }
  t.push_back(ConcatRow({8, 0, 33, 31}, {16, 13, 32}));
  t.push_back(ChannelsLast(ConcatRow({8, 0, 33, 31}, {16, 13, 32})));
  t.push_back(DropoutRow(999, 0.25f, true, true));
  t.push_back(Unaligned(DropoutRow(1021, 0.5f, true, false)));
  // Pooling: every geometry, max and average; ties and NaN; all-negative
  // input with padding (padding must not win; divisors both ways).
  for (const PoolGeometry &g : PoolGeometries())
    for (bool is_max : {true, false}) {
      t.push_back(PoolRow(g, is_max));
      t.push_back(ChannelsLast(PoolRow(g, is_max)));
    }
  t.push_back(PoolRow({2, 2, 7, 40, PoolDesc(2, 2, 2, 2, 0, 0)}, true, "ties"));
  t.push_back(PoolRow({1, 2, 9, 41, PoolDesc(3, 3, 1, 1, 1, 1)}, true, "ties"));
  t.push_back(ChannelsLast(PoolRow({1, 2, 9, 41, PoolDesc(3, 3, 1, 1, 1, 1)}, true, "ties")));
  for (int incl : {0, 1}) {
    t.push_back(PoolRow({2, 3, 5, 6, PoolDesc(3, 3, 1, 1, 1, 1, incl)}, true, "negative"));
    t.push_back(PoolRow({2, 3, 5, 6, PoolDesc(3, 3, 1, 1, 1, 1, incl)}, false, "negative"));
  }
  for (const auto &shape :
       std::vector<std::vector<int64_t>>{{4, 64, 8, 8}, {2, 3, 7, 5}, {1, 1, 1, 1}, {3, 5, 7, 11}}) {
    t.push_back(GlobalAvgPoolRow(shape));
    t.push_back(ChannelsLast(GlobalAvgPoolRow(shape)));
  }
  // Batch norm: 4-D per channel, 2-D per feature, 3-D, primes, a channel of
  // one, a ResNet-20 layer's batch; mean 0 and a large mean with a small
  // deviation. Inference 2-D and 4-D. {3, 40, 17, 19} and {1000, 40} are
  // large enough for the CPU's threads, with a partial block of channels
  // and rows that do not split evenly (channels-last and 2-D run by rows).
  for (const auto &shape : std::vector<std::vector<int64_t>>{{4, 3, 5, 7},
                                                             {16, 10},
                                                             {3, 2, 11},
                                                             {2, 1, 3, 3},
                                                             {5, 7, 2, 3},
                                                             {128, 16, 32, 32},
                                                             {3, 40, 17, 19},
                                                             {1000, 40}}) {
    t.push_back(BatchNormTrainRow(shape, 0.0, 1.0));
    t.push_back(BatchNormTrainRow(shape, 1000.0, 0.05));
    if (shape.size() == 4) {  // images: channels-last too
      t.push_back(ChannelsLast(BatchNormTrainRow(shape, 0.0, 1.0)));
      t.push_back(ChannelsLast(BatchNormTrainRow(shape, 1000.0, 0.05)));
    }
  }
  // The fused path (a ReLU, a residual and a ReLU): the shapes above that
  // take each loop of both backends (planes, narrow planes, rows, threads).
  for (BnFused fused : {BnFused::kRelu, BnFused::kResidualRelu})
    for (const auto &shape : std::vector<std::vector<int64_t>>{
             {4, 3, 5, 7}, {16, 10}, {2, 1, 3, 3}, {128, 16, 32, 32}, {3, 40, 17, 19}}) {
      t.push_back(BatchNormTrainRow(shape, 0.0, 1.0, fused));
      if (shape.size() == 4) t.push_back(ChannelsLast(BatchNormTrainRow(shape, 0.0, 1.0, fused)));
    }
  t.push_back(BatchNormInferenceRow({16, 10}));
  t.push_back(BatchNormInferenceRow({3, 4, 2, 5}));
  t.push_back(ChannelsLast(BatchNormInferenceRow({3, 4, 2, 5})));
  t.push_back(ChannelsLast(BatchNormInferenceRow({3, 40, 17, 19})));
  // Softmax and log-softmax: a column of one, primes, 3-D, 1-D, a
  // classifier batch, rows longer than a block; extreme values and NaN.
  for (bool is_log : {false, true}) {
    for (const auto &shape : std::vector<std::vector<int64_t>>{
             {1, 1}, {7, 13}, {3, 1021}, {2, 3, 5}, {10}, {128, 10}, {2, 100003}})
      t.push_back(SoftmaxRow(shape, is_log));
    t.push_back(SoftmaxRow({3, 3}, is_log, "extremes"));
  }
  // Losses: both reductions at 1, 7, 1021 and 100003 elements, the mean
  // over 2^22; BCE at large logits.
  for (bool is_bce : {false, true}) {
    for (cudl_reduction red : {CUDL_REDUCTION_MEAN, CUDL_REDUCTION_SUM})
      for (int64_t n : {int64_t{1}, int64_t{7}, int64_t{1021}, int64_t{100003}})
        t.push_back(LossRow(is_bce, n, red));
    t.push_back(LossRow(is_bce, int64_t{1} << 22, CUDL_REDUCTION_MEAN));
  }
  t.push_back(LossRow(true, 4, CUDL_REDUCTION_SUM, "large"));
  for (const auto &nk :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 13}, {128, 10}, {3, 1021}})
    for (float smoothing : {0.0f, 0.1f})
      for (cudl_reduction red : {CUDL_REDUCTION_MEAN, CUDL_REDUCTION_SUM})
        t.push_back(CrossEntropyRow(nk.first, nk.second, smoothing, red));
  t.push_back(CrossEntropyRow(4096, 100, 0.1f, CUDL_REDUCTION_MEAN));
  // Hits: one row, one class, a block's worth of rows and more (threads
  // that take several), long rows.
  for (const auto &nk :
       std::vector<std::pair<int64_t, int64_t>>{{1, 1}, {7, 13}, {128, 10}, {3, 1021}, {4099, 7}})
    t.push_back(CountHitsRow(nk.first, nk.second));
  // Elementwise: 1, a float4 and a tail, primes, the CPU's threaded path,
  // past one CUDA grid; in place; sums and counts.
  for (const char *op : {"add", "mul", "scale"}) {
    for (int64_t n : {int64_t{1}, int64_t{5}, int64_t{1021}, int64_t{100003}})
      t.push_back(BinaryRow(op, n, false));
    t.push_back(Large(BinaryRow(op, kLarge, false)));
    t.push_back(BinaryRow(op, 1021, true));
    t.push_back(Unaligned(BinaryRow(op, 1021, false)));
  }
  for (bool mean : {false, true})
    for (int64_t n : {int64_t{1}, int64_t{1021}, int64_t{100003}, kLarge})
      t.push_back(ReduceRow(mean, n));
  for (int64_t n : {int64_t{1}, int64_t{1000}, (int64_t{1} << 22) + 5})
    t.push_back(CountNonfiniteRow(n));
  // Conversions: from each dtype to each (the dtype under test), the
  // special values, random ones at 1021 and past the CPU's threading
  // threshold, and from f32 past one CUDA grid; in place.
  for (const Dtype &from : kDtypes) {
    t.push_back(ConvertRow("specials", 0, &from));
    for (int64_t n : {int64_t{1021}, int64_t{100003}}) t.push_back(ConvertRow("random", n, &from));
  }
  Row large_convert = Large(ConvertRow("random", kLarge, &kDtypes[0]));
  large_convert.cpu_dtypes = 0;  // f32 to f32: the CPU's loop at 100003 again
  t.push_back(std::move(large_convert));
  t.push_back(ConvertRow("specials", 0, nullptr));
  // Linear: a 1 in every place, primes, non-square, 3-D and 5-D x, the
  // ResNet-20 head and an MNIST MLP layer; no bias; empty IN, rows and OUT
  // (with the gradients a caller would ask for); the TF32 probe; TF32
  // allowed; deterministic mode repeating bit for bit.
  const std::vector<LinearCase> linear = {
      {{1}, 1, 1},  {{1}, 7, 3},    {{5}, 1, 4},          {{6}, 9, 1},     {{7}, 13, 11},
      {{3}, 17, 2}, {{2, 5}, 7, 3}, {{2, 1, 3, 2}, 3, 5}, {{128}, 64, 10}, {{128}, 784, 256}};
  for (const LinearCase &c : linear) t.push_back(LinearRow(c));
  t.push_back(LinearRow({{7}, 13, 11}, false));
  t.push_back(LinearRow({{3}, 0, 2}));
  t.push_back(LinearRow({{0}, 3, 2}, true, "dw_db"));
  t.push_back(LinearRow({{2}, 3, 0}, true, "dx"));
  t.push_back(LinearTf32ProbeRow(0));
  t.push_back(LinearTf32ProbeRow(kAfterTf32));
  for (const LinearCase &c :
       {LinearCase{{7}, 13, 11}, LinearCase{{128}, 64, 10}, LinearCase{{128}, 784, 256}})
    t.push_back(LinearRow(c, true, "all", kAllowTf32, "tf32"));
  t.push_back(
      LinearRow({{128}, 784, 256}, true, "all", kDeterministic | kRepeatable, "deterministic"));
  // Convolution: test_conv.cpp's geometries, ResNet-20 layers, N = 0; three
  // layers in deterministic mode, twice, and their bias gradient twice in
  // the default mode (deterministic in any mode).
  for (const ConvCase &c : ConvCases()) {
    t.push_back(ConvRow(c));
    t.push_back(ChannelsLast(ConvRow(c)));
  }
  for (const ConvCase &c : ConvDeterministicCases()) {
    t.push_back(ConvRow(c, kDeterministic | kRepeatable));
    t.push_back(ChannelsLast(ConvRow(c, kDeterministic | kRepeatable)));
    t.push_back(ConvBiasRow(c));
    t.push_back(ChannelsLast(ConvBiasRow(c)));
  }
  // Optimizers: every configuration, the first step (SGD copies the
  // gradient into its buffer, Adam's bias correction at t = 1) and a later
  // one from a random state, at 1, 5 (a float4 and a tail) and 1021
  // elements and past the CPU's threading threshold (2^20 + 3).
  for (const OptimConfig &cfg : OptimConfigs()) {
    t.push_back(OptimRow(cfg, 1, 0, 1.0f));
    t.push_back(OptimRow(cfg, 1021, 0, 1.0f));
    t.push_back(OptimRow(cfg, 5, 4, 0.25f));
    t.push_back(OptimRow(cfg, 1021, 4, 0.5f));
    t.push_back(OptimRow(cfg, (int64_t{1} << 20) + 3, 4, 1.5f));
  }
  for (int64_t n : {int64_t{1}, int64_t{1021}, int64_t{3 * 65536 + 5}, (int64_t{1} << 22) + 5})
    for (double ratio : {0.5, 4.0}) t.push_back(ClipRow("normal", n, ratio));
  for (const char *values : {"nan", "inf", "overflow"}) t.push_back(ClipRow(values, 1021, 0.5));
  t.push_back(ClipRow("normal", 1021, 0.5, false));
  t.push_back(ClipRow("nan", 1021, 0.5, false));
  return t;
}

const std::vector<Row> &Table() {
  static const std::vector<Row> table = BuildTable();
  return table;
}

// ===========================================================================
// The test
// ===========================================================================

struct Backend {
  const char *name;
  cudl_device_kind kind;
};


// Each float input rounded to the dtype its tensor will hold (the dtype
// under test, or its own), so that the reference computes from exactly
// what the backend is given.
void RoundInputs(Inputs *in, cudl_dtype dtype) {
  for (auto &entry : *in) {
    HostTensor &h = entry.second;
    const cudl_dtype held = h.own_dtype ? h.dtype : dtype;
    if (h.is_i32 || held == CUDL_DTYPE_F32) continue;
    for (float &v : h.f) v = static_cast<float>(RoundTo(held, v));
  }
}

uint32_t Seed(const Row &row) {  // FNV-1a of the row's name
  uint32_t h = 2166136261u;
  for (char c : row.name()) h = (h ^ static_cast<uint8_t>(c)) * 16777619u;
  return h;
}

enum class RunResult { kRan, kFailed, kUnsupported };

// One run of a row: the context settings it runs under, and whether its
// outputs are compared with float64.
struct Phase {
  int tf32, deterministic;
  bool compare;
};

// The runs a row's flags ask for, in order, on one context.
std::vector<Phase> Phases(unsigned flags) {
  const int tf32 = (flags & kAllowTf32) ? 1 : 0;
  std::vector<Phase> phases;
  if (flags & kAfterTf32) phases.push_back({1, 0, false});
  if (flags & kDeterministic) phases.push_back({tf32, 0, true});
  const int det = (flags & kDeterministic) ? 1 : 0;
  phases.push_back({tf32, det, true});
  if (flags & kRepeatable) phases.push_back({tf32, det, true});
  return phases;
}

// Runs the row's phases (or only its last one) on a new context of `kind`;
// the outputs of each run go to *runs.
RunResult RunRow(const Row &row, cudl_device_kind kind, cudl_dtype dtype, const Inputs &in,
                 const std::vector<Phase> &phases, std::vector<Outputs> *runs, std::string *why) {
  cudl_context *ctx = nullptr;
  const cudl_status s = cudl_context_create(kind, 0, &ctx);
  if (s != CUDL_OK) {
    ADD_FAILURE() << "cudl_context_create: " << cudl_status_name(s);
    return RunResult::kFailed;
  }
  // TF32 is opt-in and deterministic mode off: the defaults every
  // tolerance above assumes.
  EXPECT_EQ(cudl_context_allow_tf32(ctx), 0) << "TF32 must be off by default";
  EXPECT_EQ(cudl_context_deterministic(ctx), 0);
  RunResult result = RunResult::kRan;
  for (size_t k = 0; k < phases.size() && result == RunResult::kRan; ++k) {
    EXPECT_EQ(cudl_context_set_allow_tf32(ctx, phases[k].tf32), CUDL_OK);
    EXPECT_EQ(cudl_context_set_deterministic(ctx, phases[k].deterministic), CUDL_OK);
    Env env(ctx, dtype);
    if (row.flags & kUnaligned) env.UseViews(1);
    if (row.flags & kChannelsLast) env.UseChannelsLast();
    Outputs out = row.run(env, in);
    if (!env.unsupported().empty()) {
      *why = env.unsupported();
      result = RunResult::kUnsupported;
    } else if (env.failures() > 0) {
      result = RunResult::kFailed;
    }
    runs->push_back(std::move(out));
  }
  cudl_context_destroy(ctx);
  return result;
}

// One row on one backend and dtype: every compared run against float64,
// and what the row's flags add.
void CheckRow(const Row &row, const Backend &backend, const Dtype &dtype) {
  Gen gen(Seed(row));
  Inputs in = row.inputs(gen);
  RoundInputs(&in, dtype.dtype);
  const std::vector<Phase> phases = Phases(row.flags);
  std::vector<Outputs> runs;
  std::string why;
  const RunResult result = RunRow(row, backend.kind, dtype.dtype, in, phases, &runs, &why);
  if (result == RunResult::kUnsupported) {
    // The CPU backend is the reference and implements every operator;
    // another backend may leave one out (cudl/context.h).
    ASSERT_NE(backend.kind, CUDL_DEVICE_CPU) << why;
    GTEST_SKIP() << "the " << backend.name << " backend does not implement it: " << why;
  }
  ASSERT_EQ(result, RunResult::kRan);
  const Expected want = row.reference(in);
  for (size_t run = 0; run < runs.size(); ++run) {
    if (!phases[run].compare) continue;
    SCOPED_TRACE("run " + std::to_string(run + 1) + " of " + std::to_string(runs.size()) +
                 (phases[run].deterministic ? ", deterministic mode" : "") +
                 (phases[run].tf32 ? ", TF32 allowed" : ""));
    const Outputs &got = runs[run];
    ASSERT_EQ(got.size(), want.size()) << "outputs of the run and of the reference";
    std::string log = "[ error/tolerance ]";
    for (size_t k = 0; k < want.size(); ++k) {
      ASSERT_EQ(got[k].name, want[k].name);
      double worst = 0;
      EXPECT_TRUE(Matches(got[k], want[k], row.tol, &worst)) << "against float64";
      char item[96];
      std::snprintf(item, sizeof item, " %s %.3g", want[k].name.c_str(), worst);
      log += item;
    }
    std::printf("%s\n", log.c_str());
  }
  const Outputs &last = runs.back();
  if (row.flags & kRepeatable) {
    const Outputs &before = runs[runs.size() - 2];
    for (size_t k = 0; k < last.size(); ++k)
      EXPECT_TRUE(BitEqual(last[k].v, before[k].v)) << last[k].name << ": a second run differs";
  }
  if ((row.flags & kSameBitsAsCpu) && backend.kind != CUDL_DEVICE_CPU) {
    std::vector<Outputs> cpu;
    ASSERT_EQ(RunRow(row, CUDL_DEVICE_CPU, dtype.dtype, in, {phases.back()}, &cpu, &why),
              RunResult::kRan);
    for (size_t k = 0; k < last.size(); ++k)
      EXPECT_TRUE(BitEqual(last[k].v, cpu[0][k].v)) << last[k].name << ": not the CPU's bits";
  }
}

// Parameters: (row, dtype), the pairs where the row runs in the dtype. One
// test per backend, as GoldenTest.Cpu and .Cuda, so that ctest lists
// Table/BackendOps.Cpu/<row>_<dtype> and Table/BackendOps.Cuda/<row>_<dtype>
// (and gpu-check.sh's *Cuda* filter finds the CUDA cases).
class BackendOps : public ::testing::TestWithParam<std::tuple<size_t, size_t>> {
 protected:
  const Row &row() const { return Table()[std::get<0>(GetParam())]; }
  const Dtype &dtype() const { return kDtypes[std::get<1>(GetParam())]; }
};

TEST_P(BackendOps, Cpu) { CheckRow(row(), {"CPU", CUDL_DEVICE_CPU}, dtype()); }

void CheckCuda(const Row &row, const Dtype &dtype) {
  const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
  if (!a.available) GTEST_SKIP() << "no CUDA device: " << a.reason;
  CheckRow(row, {"CUDA", CUDL_DEVICE_CUDA}, dtype);
}

TEST_P(BackendOps, Cuda) { CheckCuda(row(), dtype()); }

// The pairs a row runs in on CUDA alone (Row::cpu_dtypes).
class CudaOnlyOps : public BackendOps {};

TEST_P(CudaOnlyOps, Cuda) { CheckCuda(row(), dtype()); }

std::string ParamName(const ::testing::TestParamInfo<BackendOps::ParamType> &info) {
  return Table()[std::get<0>(info.param)].name() + "_" + kDtypes[std::get<1>(info.param)].name;
}

// The (row, dtype) pairs of the row's dtypes, on the CPU too or not.
std::vector<std::tuple<size_t, size_t>> Cases(bool on_cpu) {
  std::vector<std::tuple<size_t, size_t>> cases;
  for (size_t r = 0; r < Table().size(); ++r) {
    const Row &row = Table()[r];
    for (size_t d = 0; d < std::size(kDtypes); ++d) {
      const unsigned bit = 1u << d;
      if ((row.dtypes & bit) && ((row.cpu_dtypes & bit) != 0) == on_cpu)
        cases.emplace_back(r, d);
    }
  }
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Table, BackendOps, ::testing::ValuesIn(Cases(true)), ParamName);
INSTANTIATE_TEST_SUITE_P(Table, CudaOnlyOps, ::testing::ValuesIn(Cases(false)), ParamName);

// ===========================================================================
// The host conversions the table relies on
// ===========================================================================

// Decoding every f16 and bf16 bit pattern and encoding it again gives the
// same bits (NaN aside: one quiet NaN per sign); every value decoded is a
// fixed point of RoundTo.
TEST(HostFormats, EveryPatternRoundTrips) {
  for (uint32_t b = 0; b <= 0xffff; ++b) {
    const uint16_t bits = static_cast<uint16_t>(b);
    const float h = F16Value(bits), g = Bf16Value(bits);
    if (std::isnan(h)) {
      EXPECT_EQ(F16Bits(h), (bits & 0x8000u) | 0x7e00u) << std::hex << b;
    } else {
      EXPECT_EQ(F16Bits(h), bits) << std::hex << b;
      EXPECT_EQ(RoundTo(CUDL_DTYPE_F16, h), h) << std::hex << b;
    }
    if (!std::isnan(g)) {
      EXPECT_EQ(Bf16Bits(g), bits) << std::hex << b;
      EXPECT_EQ(RoundTo(CUDL_DTYPE_BF16, g), g) << std::hex << b;
    }
  }
  EXPECT_EQ(F16Value(0x0001), 0x1p-24f);
  EXPECT_EQ(F16Value(0x03ff), 0x1.ff8p-15f);
  EXPECT_EQ(F16Value(0x3c00), 1.0f);
  EXPECT_EQ(F16Value(0x7bff), 65504.0f);
  EXPECT_EQ(F16Value(0xfc00), -kInf);
  EXPECT_EQ(Bf16Value(0x3f80), 1.0f);
  EXPECT_EQ(Bf16Value(0x7f7f), 0x1.fep127f);
}

// RoundTo at ties, overflow and subnormals, worked out by hand.
TEST(HostFormats, RoundToNearestEven) {
  struct Case {
    cudl_dtype dtype;
    double x, want;
  };
  const Case cases[] = {
      {CUDL_DTYPE_BF16, 1 + 0x1p-8, 1.0},                  // a tie, to the even 1
      {CUDL_DTYPE_BF16, 1 + 3 * 0x1p-8, 1 + 0x1p-6},       // a tie, up to even
      {CUDL_DTYPE_BF16, 1 + 0x1p-8 + 0x1p-40, 1 + 0x1p-7}, // just past a tie
      {CUDL_DTYPE_BF16, -(1 + 0x1p-8), -1.0},
      {CUDL_DTYPE_BF16, 0x1.fefffep127, 0x1.fep127},       // below the overflow tie
      {CUDL_DTYPE_BF16, 0x1.ffp127, INFINITY},             // the tie overflows
      {CUDL_DTYPE_BF16, -1e39, -INFINITY},
      {CUDL_DTYPE_BF16, 0x1p-134, 0.0},                    // half the least subnormal
      {CUDL_DTYPE_BF16, 0x1.8p-133, 0x1p-132},             // a subnormal tie, up to even
      {CUDL_DTYPE_F16, 1 + 0x1p-11, 1.0},
      {CUDL_DTYPE_F16, 1 + 3 * 0x1p-11, 1 + 0x1p-9},
      {CUDL_DTYPE_F16, 2049.0, 2048.0},
      {CUDL_DTYPE_F16, 65519.99, 65504.0},
      {CUDL_DTYPE_F16, 65520.0, INFINITY},                 // the tie overflows
      {CUDL_DTYPE_F16, 0x1p-25, 0.0},                      // half the least subnormal
      {CUDL_DTYPE_F16, 0x1p-25 + 0x1p-40, 0x1p-24},
      {CUDL_DTYPE_F16, 3 * 0x1p-25, 0x1p-23},              // a subnormal tie, up to even
      {CUDL_DTYPE_F16, 0x1p-14 - 0x1p-25, 0x1p-14},        // to the least normal
      {CUDL_DTYPE_F32, 1 + 0x1p-24, 1.0},
      {CUDL_DTYPE_F32, 0x1p-150, 0.0},
      {CUDL_DTYPE_F32, 0x1.ffffffp127, INFINITY},
  };
  for (const Case &c : cases)
    EXPECT_EQ(RoundTo(c.dtype, c.x), c.want) << cudl_dtype_name(c.dtype) << " " << c.x;
  EXPECT_TRUE(std::isnan(RoundTo(CUDL_DTYPE_F16, NAN)));
  EXPECT_EQ(RoundTo(CUDL_DTYPE_BF16, -0.0), 0.0);
  EXPECT_TRUE(std::signbit(RoundTo(CUDL_DTYPE_BF16, -0.0)));
  EXPECT_TRUE(std::signbit(RoundTo(CUDL_DTYPE_F16, -0x1p-30)));  // to -0
}

#if defined(__FLT16_MANT_DIG__)
// Where the compiler has _Float16 (GCC 12, Clang 15 on x86-64), its
// conversion from double, which rounds once, agrees with RoundTo on every
// midpoint between neighbouring f16 values, just either side of it, and
// random doubles over the whole range.
TEST(HostFormats, F16MatchesTheCompiler) {
  auto compiler = [](double x) { return static_cast<double>(static_cast<_Float16>(x)); };
  for (uint32_t b = 0; b < 0x7c00; ++b) {
    const double lo = F16Value(static_cast<uint16_t>(b)),
                 hi = b + 1 < 0x7c00 ? F16Value(static_cast<uint16_t>(b + 1)) : 65536.0;
    for (double x : {(lo + hi) / 2, std::nextafter((lo + hi) / 2, 0.0),
                     std::nextafter((lo + hi) / 2, 1e9), lo}) {
      ASSERT_EQ(RoundTo(CUDL_DTYPE_F16, x), compiler(x)) << x;
      ASSERT_EQ(RoundTo(CUDL_DTYPE_F16, -x), compiler(-x)) << -x;
    }
  }
  std::mt19937 gen(5);
  std::uniform_real_distribution<double> exponent(-30.0, 18.0), mantissa(1.0, 2.0);
  for (int i = 0; i < 100000; ++i) {
    const double x = std::ldexp(mantissa(gen), static_cast<int>(std::floor(exponent(gen))));
    ASSERT_EQ(RoundTo(CUDL_DTYPE_F16, x), compiler(x)) << x;
  }
}
#endif

}  // namespace
