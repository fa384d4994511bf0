// test_golden.cpp - cudl against PyTorch's own results.
//
// tests/golden/*.safetensors hold inputs, outputs and autograd gradients
// that PyTorch 1.13 (Debian's python3-torch) computed in float32 on the CPU;
// tests/golden/make_goldens.py wrote them (scripts/make-goldens.sh reruns
// it) and they are committed, so this test needs no torch. Each file is read
// with cudl's own safetensors loader; every case in it (one __metadata__
// entry "op=OP k=v ...") is run through cudl on the CPU and, where there is
// a GPU, on CUDA, and every output and gradient is compared with PyTorch's.
// A missing or unreadable file, a case of an unknown operator, an operator
// with no case, and a tensor no case used all fail the test.
//
// Gradients: the golden dX are d/dX of sum(y * g) for the stored g, i.e.
// the backward calls' outputs with dy = g (for the losses, whose y is one
// number, g is that number's gradient and is passed as `grad`).
//
// Tolerances. Two float32 implementations of one formula differ by their
// roundings, so each check has a bound per element, stated where it is
// computed, of one of these forms (eps = FLT_EPSILON = 2^-23):
//   * exact: no arithmetic, or one correctly rounded operation on the same
//     float operands on both sides (relu, leaky relu, PReLU's y and dx,
//     RReLU in evaluation, max pooling's forward, views).
//   * c * eps * |ref| (+ FLT_MIN, so results that underflow to different
//     subnormals compare equal): for libm-style functions (exp, tanh), each
//     side within a few ulp.
//   * 2 (n + k) eps * sum |terms| for anything that adds n terms: any
//     summation order (PyTorch's, a BLAS's, cudl's double sums, a GPU's
//     float partial sums) is within (n - 1) eps * sum |terms| of the exact
//     sum, so two of them are within twice that; k covers the roundings
//     around the sum (the products, a bias, a division). |terms| is computed
//     here in double from the golden inputs, per element, with the count of
//     terms that element has. An indexing or formula error changes results
//     by the size of the terms themselves, orders of magnitude above this.
// On CUDA every bound is doubled (the device's own libm and float partial
// sums; docs/ops.md compares CUDA with the CPU at twice the CPU's
// tolerance), and batch normalisation's statistics are allowed the error of
// float sums instead of the CPU's double sums.
//
// Each test prints, per operator, the largest error / bound seen (1 would be
// the limit), so the margins are visible in the log.
#include <gtest/gtest.h>

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <ostream>
#include <set>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

#ifndef CUDL_GOLDEN_DIR
#  error "CUDL_GOLDEN_DIR must name tests/golden (set in tests/CMakeLists.txt)"
#endif

namespace {

using cudl_test::ReadF32;

constexpr double kEps = FLT_EPSILON;
constexpr double kTiny = FLT_MIN;  // underflow: subnormals compare equal

// ---------------------------------------------------------------------------
// Golden files
// ---------------------------------------------------------------------------

struct Array {
  std::vector<int64_t> shape;
  std::vector<float> f;    // F32 tensors
  std::vector<int32_t> i;  // I32 tensors
  bool is_int = false;
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    return n;
  }
};

// One case's parameters: "op=conv2d dilation=1,1 groups=1 ..." as a map.
class Params {
 public:
  explicit Params(const std::string &text) {
    std::istringstream in(text);
    std::string word;
    while (in >> word) {
      const size_t eq = word.find('=');
      if (eq == std::string::npos || eq == 0) {
        ADD_FAILURE() << "malformed parameter '" << word << "' in '" << text << "'";
        continue;
      }
      values_[word.substr(0, eq)] = word.substr(eq + 1);
    }
  }
  bool Has(const std::string &key) const { return values_.count(key) != 0; }
  std::string Str(const std::string &key) const {
    auto it = values_.find(key);
    if (it == values_.end()) {
      ADD_FAILURE() << "parameter '" << key << "' missing";
      return "";
    }
    return it->second;
  }
  std::vector<double> Numbers(const std::string &key) const {
    std::vector<double> out;
    const std::string s = Str(key);
    size_t pos = 0;
    while (pos <= s.size() && !s.empty()) {
      const size_t comma = s.find(',', pos);
      const std::string item =
          s.substr(pos, comma == std::string::npos ? std::string::npos : comma - pos);
      char *end = nullptr;
      const double v = std::strtod(item.c_str(), &end);
      if (item.empty() || end == nullptr || *end != '\0')
        ADD_FAILURE() << "parameter '" << key << "': '" << item << "' is not a number";
      out.push_back(v);
      if (comma == std::string::npos) break;
      pos = comma + 1;
    }
    return out;
  }
  double Number(const std::string &key) const {
    const std::vector<double> v = Numbers(key);
    if (v.size() != 1) ADD_FAILURE() << "parameter '" << key << "' is not one number";
    return v.empty() ? 0.0 : v[0];
  }
  // The generator writes float parameters as the decimal of a double that
  // is exactly a float, so this is the very float PyTorch was given.
  float Float(const std::string &key) const { return static_cast<float>(Number(key)); }
  int Int(const std::string &key) const { return static_cast<int>(Number(key)); }
  std::pair<int, int> Pair(const std::string &key) const {
    const std::vector<double> v = Numbers(key);
    if (v.size() != 2) {
      ADD_FAILURE() << "parameter '" << key << "' is not a pair";
      return {0, 0};
    }
    return {static_cast<int>(v[0]), static_cast<int>(v[1])};
  }

 private:
  std::map<std::string, std::string> values_;
};

class GoldenFile {
 public:
  // Reads CUDL_GOLDEN_DIR/name completely. A missing file is a failure,
  // not a skip: the goldens are committed data.
  ::testing::AssertionResult Load(const std::string &name) {
    return LoadPath(std::string(CUDL_GOLDEN_DIR) + "/" + name);
  }
  ::testing::AssertionResult LoadPath(const std::string &path) {
    path_ = path;
    cudl_context *ctx = nullptr;
    if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK)
      return ::testing::AssertionFailure() << "no CPU context";
    cudl_safetensors *set = nullptr;
    const cudl_status s = cudl_safetensors_load(ctx, path.c_str(), 0, &set);
    if (s != CUDL_OK) {
      ::testing::AssertionResult r =
          ::testing::AssertionFailure()
          << "golden file " << path << " is missing or unreadable (" << cudl_status_name(s) << ": "
          << cudl_context_last_error(ctx)
          << "); it is committed with the sources: restore it, or regenerate it with "
             "scripts/make-goldens.sh (needs python3-torch)";
      cudl_context_destroy(ctx);
      return r;
    }
    ::testing::AssertionResult result = ::testing::AssertionSuccess();
    for (size_t k = 0; k < cudl_safetensors_count(set); ++k) {
      cudl_safetensors_entry e;
      if (cudl_safetensors_entry_query(set, k, &e) != CUDL_OK) {
        result = ::testing::AssertionFailure() << path << ": entry " << k;
        break;
      }
      Array a;
      a.shape.assign(e.shape, e.shape + e.ndim);
      const cudl_tensor *t = cudl_safetensors_tensor(set, k);
      cudl_status c = CUDL_ERR_DTYPE;
      if (e.dtype_known && e.dtype == CUDL_DTYPE_F32) {
        a.f.resize(static_cast<size_t>(a.numel()));
        c = cudl_tensor_copy_to_host(t, a.f.data(), a.f.size() * sizeof(float));
      } else if (e.dtype_known && e.dtype == CUDL_DTYPE_I32) {
        a.is_int = true;
        a.i.resize(static_cast<size_t>(a.numel()));
        c = cudl_tensor_copy_to_host(t, a.i.data(), a.i.size() * sizeof(int32_t));
      }
      if (c != CUDL_OK) {
        result = ::testing::AssertionFailure()
                 << path << ": tensor " << e.name << " (" << e.dtype_name
                 << ") could not be read: " << cudl_status_name(c);
        break;
      }
      arrays_[e.name] = std::move(a);
    }
    for (size_t k = 0; k < cudl_safetensors_metadata_count(set); ++k) {
      const std::string key = cudl_safetensors_metadata_key(set, k);
      if (!key.empty() && key[0] != '_') cases_[key] = cudl_safetensors_metadata_value(set, k);
    }
    cudl_safetensors_destroy(set);
    cudl_context_destroy(ctx);
    if (result && cases_.empty())
      result = ::testing::AssertionFailure() << path << " holds no cases";
    return result;
  }

  const std::map<std::string, std::string> &cases() const { return cases_; }
  const std::string &path() const { return path_; }

  // CASE.ROLE; a failure (and an empty array) when absent.
  const Array &Get(const std::string &c, const std::string &role, bool want_int = false) {
    const std::string name = c + "." + role;
    auto it = arrays_.find(name);
    if (it == arrays_.end()) {
      ADD_FAILURE() << path_ << ": no tensor " << name;
      return empty_;
    }
    if (it->second.is_int != want_int) ADD_FAILURE() << name << " has the wrong dtype";
    used_.insert(name);
    return it->second;
  }
  bool Has(const std::string &c, const std::string &role) const {
    return arrays_.count(c + "." + role) != 0;
  }
  std::vector<std::string> Unused() const {
    std::vector<std::string> out;
    for (const auto &kv : arrays_)
      if (used_.count(kv.first) == 0) out.push_back(kv.first);
    return out;
  }

 private:
  std::string path_;
  std::map<std::string, Array> arrays_;
  std::map<std::string, std::string> cases_;
  std::set<std::string> used_;
  Array empty_;
};

// ---------------------------------------------------------------------------
// Comparisons
// ---------------------------------------------------------------------------

// Largest error / bound per operator and output ("conv2d dw"), for the log.
using Margins = std::map<std::string, double>;

// Every |got - ref| <= bound (scaled by `factor`); NaN only where ref is NaN.
::testing::AssertionResult Near(const std::vector<float> &got, const std::vector<float> &ref,
                                const std::vector<double> &bound, double factor, double *worst) {
  if (got.size() != ref.size() || bound.size() != ref.size())
    return ::testing::AssertionFailure() << "sizes differ: got " << got.size() << ", want "
                                         << ref.size() << ", bounds " << bound.size();
  size_t bad = 0;
  std::string first;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double g = got[i], r = ref[i], b = bound[i] * factor;
    bool ok;
    double ratio = 0.0;
    if (std::isnan(r) || std::isnan(g)) {
      ok = std::isnan(r) && std::isnan(g);
    } else {
      const double err = std::fabs(g - r);
      ok = err <= b;
      ratio = err == 0.0 ? 0.0 : (b > 0.0 ? err / b : HUGE_VAL);
    }
    *worst = std::max(*worst, ratio);
    if (!ok) {
      if (bad < 5) {
        char line[200];
        std::snprintf(line, sizeof line, "\n  [%zu] got %.9g, want %.9g, |diff| %.3g > bound %.3g",
                      i, g, r, std::fabs(g - r), b);
        first += line;
      }
      ++bad;
    }
  }
  if (bad == 0) return ::testing::AssertionSuccess();
  return ::testing::AssertionFailure()
         << bad << " of " << ref.size() << " elements outside the bound" << first;
}

std::vector<double> RelBound(const std::vector<float> &ref, double c) {
  std::vector<double> b(ref.size());
  for (size_t i = 0; i < ref.size(); ++i) b[i] = c * kEps * std::fabs(ref[i]) + kTiny;
  return b;
}

// Terms of a sum: per output element, how many and sum |term|.
struct SumMagnitude {
  std::vector<double> mag;
  std::vector<int64_t> count;
  explicit SumMagnitude(size_t n) : mag(n, 0.0), count(n, 0) {}
  void Add(size_t i, double term) {
    mag[i] += std::fabs(term);
    ++count[i];
  }
  // 2 (n + extra) eps sum|terms|: two orders of summation, plus `extra`
  // roundings around the sum.
  std::vector<double> Bound(int extra) const {
    std::vector<double> b(mag.size());
    for (size_t i = 0; i < mag.size(); ++i)
      b[i] = 2.0 * static_cast<double>(count[i] + extra) * kEps * mag[i] + kTiny;
    return b;
  }
};

// ---------------------------------------------------------------------------
// Running cases
// ---------------------------------------------------------------------------

// Tensors on one context for one case, destroyed with it.
class Tensors {
 public:
  explicit Tensors(cudl_context *ctx) : ctx_(ctx) {}
  ~Tensors() {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
  }
  Tensors(const Tensors &) = delete;
  Tensors &operator=(const Tensors &) = delete;

  cudl_tensor *Empty(const std::vector<int64_t> &shape, cudl_dtype dtype = CUDL_DTYPE_F32) {
    cudl_tensor *t = nullptr;
    const cudl_status s =
        cudl_tensor_create(ctx_, dtype, static_cast<int>(shape.size()), shape.data(), &t);
    EXPECT_EQ(s, CUDL_OK) << cudl_context_last_error(ctx_);
    if (t == nullptr) return nullptr;
    owned_.push_back(t);
    // Poison outputs: a call that writes nothing cannot pass by accident.
    if (dtype == CUDL_DTYPE_F32) {
      EXPECT_EQ(cudl_tensor_fill(t, NAN), CUDL_OK);
    }
    return t;
  }
  cudl_tensor *Of(const Array &a) {
    cudl_tensor *t = Empty(a.shape, a.is_int ? CUDL_DTYPE_I32 : CUDL_DTYPE_F32);
    if (t == nullptr) return nullptr;
    const cudl_status s =
        a.is_int ? cudl_tensor_copy_from_host(t, a.i.data(), a.i.size() * sizeof(int32_t))
                 : cudl_tensor_copy_from_host(t, a.f.data(), a.f.size() * sizeof(float));
    EXPECT_EQ(s, CUDL_OK) << cudl_context_last_error(ctx_);
    return t;
  }
  void Adopt(cudl_tensor *t) { owned_.push_back(t); }

 private:
  cudl_context *ctx_;
  std::vector<cudl_tensor *> owned_;
};

// Stops a case at its first failed call (the comparisons would only repeat
// it), naming the call and the context's message.
#define CALL(ctx, expr)                                              \
  do {                                                               \
    const cudl_status s_ = (expr);                                   \
    if (s_ != CUDL_OK) {                                             \
      ADD_FAILURE() << #expr << ": " << cudl_status_name(s_) << ": " \
                    << cudl_context_last_error(ctx);                 \
      return;                                                        \
    }                                                                \
  } while (0)

struct Run {
  cudl_context *ctx;
  GoldenFile *file;
  std::string name;  // the case
  const Params *p;
  double factor;     // 1 on the CPU, 2 on CUDA
  bool float_stats;  // batch-norm statistics summed in float (CUDA)
  Margins *margins;
  std::string op;

  const Array &G(const std::string &role) { return file->Get(name, role); }
  const Array &GI(const std::string &role) { return file->Get(name, role, true); }

  void Expect(const std::string &role, cudl_tensor *t, const std::vector<double> &bound) {
    const Array &ref = G(role);
    ASSERT_NE(t, nullptr);
    const int64_t *shape = cudl_tensor_shape(t);
    const std::vector<int64_t> got_shape(shape, shape + cudl_tensor_ndim(t));
    EXPECT_EQ(got_shape, ref.shape) << name << "." << role << ": shape";
    double &worst = (*margins)[op + " " + role];
    EXPECT_TRUE(Near(ReadF32(t), ref.f, bound, factor, &worst)) << name << "." << role;
  }
  void ExpectExact(const std::string &role, cudl_tensor *t) {
    Expect(role, t, std::vector<double>(G(role).f.size(), 0.0));
  }
  void ExpectRel(const std::string &role, cudl_tensor *t, double c) {
    Expect(role, t, RelBound(G(role).f, c));
  }
};

// ---- activations ----------------------------------------------------------

void RunActivation(Run &r) {
  Tensors t(r.ctx);
  const Array &x = r.G("x"), &g = r.G("g"), &y = r.G("y");
  cudl_tensor *tx = t.Of(x), *tg = t.Of(g), *ty = t.Empty(x.shape), *tdx = t.Empty(x.shape);
  const size_t n = x.f.size();
  if (r.op == "sigmoid") {
    CALL(r.ctx, cudl_sigmoid_forward(r.ctx, tx, ty));
    CALL(r.ctx, cudl_sigmoid_backward(r.ctx, ty, tg, tdx));
    // y: exp within a few ulp on each side (PyTorch: 1 / (1 + exp(-x));
    // cudl takes exp of -|x| only): 8 eps |y|.
    r.ExpectRel("y", ty, 8);
    // dx = g y (1 - y) from cudl's own y: its 8 eps y error moves dx by at
    // most |g| 8 eps y (the derivative of y (1 - y) is at most 1 in size),
    // plus 8 eps |dx| for the products. 1 - y cancels near y = 1, hence the
    // absolute part.
    std::vector<double> b = RelBound(r.G("dx").f, 8);
    for (size_t i = 0; i < n; ++i) b[i] += 8 * kEps * std::fabs(g.f[i]) * std::fabs(y.f[i]);
    r.Expect("dx", tdx, b);
  } else if (r.op == "tanh") {
    CALL(r.ctx, cudl_tanh_forward(r.ctx, tx, ty));
    CALL(r.ctx, cudl_tanh_backward(r.ctx, ty, tg, tdx));
    r.ExpectRel("y", ty, 8);  // tanhf and Sleef's tanh within a few ulp
    // dx = g (1 - y^2): an 8 eps |y| error in y moves it by 2 |g y| 8 eps |y|.
    std::vector<double> b = RelBound(r.G("dx").f, 8);
    for (size_t i = 0; i < n; ++i)
      b[i] += 16 * kEps * std::fabs(g.f[i]) * static_cast<double>(y.f[i]) * y.f[i];
    r.Expect("dx", tdx, b);
  } else if (r.op == "relu") {
    CALL(r.ctx, cudl_relu_forward(r.ctx, tx, ty));
    CALL(r.ctx, cudl_relu_backward(r.ctx, tx, tg, tdx));
    r.ExpectExact("y", ty);    // selection, no arithmetic
    r.ExpectExact("dx", tdx);  // the gradient at 0 is 0 on both sides
  } else if (r.op == "silu") {
    CALL(r.ctx, cudl_silu_forward(r.ctx, tx, ty));
    CALL(r.ctx, cudl_silu_backward(r.ctx, tx, tg, tdx));
    // y = x sigmoid(x): exp within a few ulp on each side (PyTorch:
    // x / (1 + exp(-x))), then a division and a product: 8 eps |y|.
    r.ExpectRel("y", ty, 8);
    // dx = g s (1 + x (1 - s)): the two terms of 1 + x (1 - s) cancel near
    // x = -1.28, so the bound is in their magnitudes: 8 eps |g| s (1 +
    // |x| (1 - s)) (PyTorch forms 1 - s by subtraction, which loses s's
    // relative accuracy where s is near 1: within x eps there), plus the
    // smallest normal: at x = -100 the two underflow differently (PyTorch
    // flushes to 0, cudl keeps a subnormal).
    std::vector<double> b(n);
    for (size_t i = 0; i < n; ++i) {
      const double xi = x.f[i], s = 1.0 / (1.0 + std::exp(-xi));
      b[i] = FLT_MIN +
             8 * kEps * std::fabs(g.f[i]) * s * (1.0 + std::fabs(xi) * (1.0 - s) + std::fabs(xi));
    }
    r.Expect("dx", tdx, b);
  } else if (r.op == "leaky_relu") {
    const float alpha = r.p->Float("alpha");
    CALL(r.ctx, cudl_leaky_relu_forward(r.ctx, tx, alpha, ty));
    CALL(r.ctx, cudl_leaky_relu_backward(r.ctx, tx, alpha, tg, tdx));
    r.ExpectExact("y", ty);  // one float product alpha * x on both sides
    r.ExpectExact("dx", tdx);
  } else if (r.op == "elu") {
    const float alpha = r.p->Float("alpha");
    CALL(r.ctx, cudl_elu_forward(r.ctx, tx, alpha, ty));
    CALL(r.ctx, cudl_elu_backward(r.ctx, tx, alpha, tg, tdx));
    // PyTorch 1.13 evaluates alpha (exp(x) - 1) in float, which cancels
    // near 0 (at x = -1e-6 it is 1.3% off; cudl uses expm1 and is not):
    // its error is the rounding of exp(x), about 2 eps e^x, times alpha, on
    // top of 8 eps |y| for the functions themselves.
    std::vector<double> b = RelBound(y.f, 8);
    for (size_t i = 0; i < n; ++i)
      if (x.f[i] <= 0) b[i] += 2 * kEps * std::fabs(alpha) * std::exp(static_cast<double>(x.f[i]));
    r.Expect("y", ty, b);
    r.ExpectRel("dx", tdx, 8);  // g alpha exp(x): exp within a few ulp
  } else if (r.op == "rrelu_eval") {
    const float lower = r.p->Float("lower"), upper = r.p->Float("upper");
    cudl_tensor *noise = t.Empty(x.shape);
    CALL(r.ctx, cudl_rrelu_forward(r.ctx, tx, lower, upper, 0, noise, ty));
    CALL(r.ctx, cudl_rrelu_backward(r.ctx, noise, tg, tdx));
    // Slope (lower + upper) / 2: PyTorch forms it in double from the same
    // floats and rounds once; cudl in float, exactly (same exponent range).
    r.ExpectExact("y", ty);
    r.ExpectExact("dx", tdx);
  } else if (r.op == "dropout_eval") {
    cudl_tensor *mask = t.Empty(x.shape);
    CALL(r.ctx, cudl_dropout_forward(r.ctx, tx, r.p->Float("p"), 0, mask, ty));
    CALL(r.ctx, cudl_dropout_backward(r.ctx, mask, tg, tdx));
    r.ExpectExact("y", ty);  // the identity
    r.ExpectExact("dx", tdx);
  } else if (r.op == "prelu") {
    const Array &slope = r.G("slope");
    EXPECT_EQ(static_cast<int>(slope.f.size()), r.p->Int("num_parameters"));
    cudl_tensor *ts = t.Of(slope), *tds = t.Empty(slope.shape);
    CALL(r.ctx, cudl_prelu_forward(r.ctx, tx, ts, ty));
    CALL(r.ctx, cudl_prelu_backward(r.ctx, tx, ts, tg, tdx, tds));
    r.ExpectExact("y", ty);    // one product slope * x
    r.ExpectExact("dx", tdx);  // one product slope * g
    // dslope_c = sum over channel c's elements with x <= 0 of g x.
    const int64_t channels = static_cast<int64_t>(slope.f.size());
    const int64_t inner = x.numel() / (x.shape[0] * x.shape[1]);
    SumMagnitude m(slope.f.size());
    for (size_t i = 0; i < n; ++i) {
      const int64_t c = channels == 1 ? 0 : (static_cast<int64_t>(i) / inner) % x.shape[1];
      if (x.f[i] <= 0) m.Add(static_cast<size_t>(c), static_cast<double>(g.f[i]) * x.f[i]);
    }
    r.Expect("dslope", tds, m.Bound(1));
  } else {
    ADD_FAILURE() << "no runner for " << r.op;
  }
}

// ---- pooling ----------------------------------------------------------------

void RunPooling(Run &r) {
  Tensors t(r.ctx);
  const Array &x = r.G("x"), &g = r.G("g"), &y = r.G("y");
  cudl_tensor *tx = t.Of(x), *tg = t.Of(g), *ty = t.Empty(y.shape), *tdx = t.Empty(x.shape);
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  if (r.op == "global_avg_pool") {
    CALL(r.ctx, cudl_global_avg_pool_forward(r.ctx, tx, ty));
    CALL(r.ctx, cudl_global_avg_pool_backward(r.ctx, tg, tdx));
    SumMagnitude m(y.f.size());
    for (size_t i = 0; i < x.f.size(); ++i)
      m.Add(i / static_cast<size_t>(H * W), x.f[i] / static_cast<double>(H * W));
    r.Expect("y", ty, m.Bound(2));  // H W terms, then a division
    r.ExpectRel("dx", tdx, 4);      // g / (H W): a division, or a reciprocal and a product
    return;
  }
  cudl_pool2d_desc d = {};
  const std::pair<int, int> k = r.p->Pair("kernel"), s = r.p->Pair("stride"), p = r.p->Pair("pad");
  d.kernel_h = k.first;
  d.kernel_w = k.second;
  d.stride_h = s.first;
  d.stride_w = s.second;
  d.pad_h = p.first;
  d.pad_w = p.second;
  d.count_include_pad = r.p->Has("count_include_pad") ? r.p->Int("count_include_pad") : 0;
  d.ceil_mode = r.p->Has("ceil_mode") ? r.p->Int("ceil_mode") : 0;
  int64_t want_shape[4];
  const int64_t in_shape[4] = {N, C, H, W};
  ASSERT_EQ(cudl_pool2d_output_shape(&d, in_shape, want_shape), CUDL_OK);
  EXPECT_EQ(std::vector<int64_t>(want_shape, want_shape + 4), y.shape) << "output shape";
  const int64_t OH = y.shape[2], OW = y.shape[3];
  // Per output: the window's in-image elements; per input: the windows
  // that contain it (for the sizes of the backward sums).
  SumMagnitude ym(y.f.size()), dxm(x.f.size());
  const bool is_max = r.op == "max_pool2d";
  for (int64_t plane = 0; plane < N * C; ++plane)
    for (int64_t oh = 0; oh < OH; ++oh)
      for (int64_t ow = 0; ow < OW; ++ow) {
        const size_t o = static_cast<size_t>((plane * OH + oh) * OW + ow);
        std::vector<size_t> window;
        for (int64_t i = 0; i < d.kernel_h; ++i)
          for (int64_t j = 0; j < d.kernel_w; ++j) {
            const int64_t h = oh * d.stride_h - d.pad_h + i, w = ow * d.stride_w - d.pad_w + j;
            if (h >= 0 && h < H && w >= 0 && w < W)
              window.push_back(static_cast<size_t>((plane * H + h) * W + w));
          }
        // With padding counted, the window clipped to the padded input
        // (a ceil-mode window may run past it).
        const int64_t h0 = oh * d.stride_h - d.pad_h, w0 = ow * d.stride_w - d.pad_w;
        const double div =
            d.count_include_pad
                ? static_cast<double>((std::min<int64_t>(h0 + d.kernel_h, H + d.pad_h) - h0) *
                                      (std::min<int64_t>(w0 + d.kernel_w, W + d.pad_w) - w0))
                : static_cast<double>(window.size());
        for (size_t e : window) {
          ym.Add(o, x.f[e] / div);
          dxm.Add(e, g.f[o] / (is_max ? 1.0 : div));
        }
      }
  if (is_max) {
    CALL(r.ctx, cudl_max_pool2d_forward(r.ctx, &d, tx, ty));
    CALL(r.ctx, cudl_max_pool2d_backward(r.ctx, &d, tx, tg, tdx));
    r.ExpectExact("y", ty);  // a selection (random inputs: no ties)
    // dx adds the g of every window that chose the element: at most as many
    // terms as windows contain it.
    r.Expect("dx", tdx, dxm.Bound(0));
  } else {
    CALL(r.ctx, cudl_avg_pool2d_forward(r.ctx, &d, tx, ty));
    CALL(r.ctx, cudl_avg_pool2d_backward(r.ctx, &d, tg, tdx));
    r.Expect("y", ty, ym.Bound(2));     // window sum, then a division
    r.Expect("dx", tdx, dxm.Bound(2));  // sum of g / divisor over windows
  }
}

// ---- batch normalisation --------------------------------------------------

void RunBatchnorm(Run &r) {
  Tensors t(r.ctx);
  const Array &x = r.G("x"), &gamma = r.G("gamma"), &beta = r.G("beta");
  const Array &rm = r.G("running_mean"), &rv = r.G("running_var");
  const float eps = r.p->Float("eps");
  const int64_t N = x.shape[0], C = x.shape[1];
  const int64_t inner = x.numel() / (N * C);
  const int64_t m = N * inner;
  auto channel = [&](size_t i) {
    return static_cast<size_t>((static_cast<int64_t>(i) / inner) % C);
  };
  cudl_tensor *tx = t.Of(x), *tgamma = t.Of(gamma), *tbeta = t.Of(beta);
  cudl_tensor *trm = t.Of(rm), *trv = t.Of(rv), *ty = t.Empty(x.shape);
  const size_t n = x.f.size(), nc = static_cast<size_t>(C);

  if (r.op == "batchnorm_eval") {
    CALL(r.ctx, cudl_batchnorm_forward_inference(r.ctx, tx, tgamma, tbeta, trm, trv, eps, ty));
    // y = gamma (x - rm) / sqrt(rv + eps) + beta: a handful of roundings,
    // each relative to the size of the terms it works on (PyTorch folds it
    // into x * a + b, which cancels when |x|, |rm| >> |x - rm|).
    std::vector<double> b(n);
    for (size_t i = 0; i < n; ++i) {
      const size_t c = channel(i);
      const double inv = 1.0 / std::sqrt(static_cast<double>(rv.f[c]) + eps);
      b[i] = 8 * kEps *
                 (std::fabs(gamma.f[c]) * inv * (std::fabs(x.f[i]) + std::fabs(rm.f[c])) +
                  std::fabs(beta.f[c])) +
             kTiny;
    }
    r.Expect("y", ty, b);
    return;
  }

  const float momentum = r.p->Float("momentum");
  const Array &g = r.G("g");
  cudl_tensor *tsm = t.Empty({C}), *tsi = t.Empty({C}), *tg = t.Of(g);
  cudl_tensor *tdx = t.Empty(x.shape), *tdgamma = t.Empty({C}), *tdbeta = t.Empty({C});
  CALL(r.ctx, cudl_batchnorm_forward_training(r.ctx, tx, tgamma, tbeta, momentum, eps, trm, trv, ty,
                                              tsm, tsi));
  CALL(r.ctx, cudl_batchnorm_backward(r.ctx, tx, tg, tgamma, tsm, tsi, tdx, tdgamma, tdbeta));

  // The batch statistics in double (two passes), and the sizes of things.
  std::vector<double> mean(nc, 0.0), var(nc, 0.0), absx(nc, 0.0), sum_absg(nc, 0.0),
      dgamma(nc, 0.0), sum_absg_xhat(nc, 0.0);
  for (size_t i = 0; i < n; ++i) {
    mean[channel(i)] += x.f[i];
    absx[channel(i)] += std::fabs(x.f[i]);
  }
  for (size_t c = 0; c < nc; ++c) {
    mean[c] /= static_cast<double>(m);
    absx[c] /= static_cast<double>(m);
  }
  for (size_t i = 0; i < n; ++i)
    var[channel(i)] += (x.f[i] - mean[channel(i)]) * (x.f[i] - mean[channel(i)]);
  for (size_t c = 0; c < nc; ++c) var[c] /= static_cast<double>(m);
  std::vector<double> invstd(nc);
  for (size_t c = 0; c < nc; ++c) invstd[c] = 1.0 / std::sqrt(var[c] + eps);
  // The statistics' own error, relative: the CPU sums in double and rounds
  // once (a few eps); CUDA sums m values in float (2 (m + 2) eps of the
  // sum of magnitudes). PyTorch's CPU statistics are double-accumulated.
  const double stat = r.float_stats ? 2.0 * static_cast<double>(m + 2) * kEps : 4 * kEps;
  // |x - mean| as a float computation sees it: x and mean rounded apart.
  auto xhat_mag = [&](size_t i) {
    const size_t c = channel(i);
    return (std::fabs(x.f[i]) + std::fabs(mean[c])) * invstd[c];
  };
  std::vector<double> by(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = channel(i);
    const double xh = (x.f[i] - mean[c]) * invstd[c];
    dgamma[c] += static_cast<double>(g.f[i]) * xh;
    sum_absg[c] += std::fabs(g.f[i]);
    sum_absg_xhat[c] += std::fabs(g.f[i]) * xhat_mag(i);
    // y = gamma (x - mean) invstd + beta, in float on both sides: 8 eps of
    // the terms; plus the statistics' error (mean off by stat |x|, and the
    // variance off by stat relative, which scales xhat by stat / 2).
    by[i] = 8 * kEps * (std::fabs(gamma.f[c]) * xhat_mag(i) + std::fabs(beta.f[c])) +
            std::fabs(gamma.f[c]) * (stat * absx[c] * invstd[c] + stat * std::fabs(xh)) + kTiny;
  }
  r.Expect("y", ty, by);

  // running = (1 - momentum) running + momentum * statistic (the variance
  // unbiased, * m / (m - 1)).
  std::vector<double> brm(nc), brv(nc);
  for (size_t c = 0; c < nc; ++c) {
    const double unbiased = var[c] * static_cast<double>(m) / static_cast<double>(m - 1);
    brm[c] = 4 * kEps * ((1 - momentum) * std::fabs(rm.f[c]) + momentum * std::fabs(mean[c])) +
             momentum * stat * absx[c] + kTiny;
    brv[c] = 4 * kEps * ((1 - momentum) * std::fabs(rv.f[c]) + momentum * unbiased) +
             momentum * 2 * stat * unbiased + kTiny;
  }
  r.Expect("running_mean_out", trm, brm);
  r.Expect("running_var_out", trv, brv);

  // dbeta = sum g, dgamma = sum g xhat: m terms each (xhat's own rounding
  // is in xhat_mag).
  std::vector<double> bdbeta(nc), bdgamma(nc);
  for (size_t c = 0; c < nc; ++c) {
    bdbeta[c] = 2.0 * static_cast<double>(m + 1) * kEps * sum_absg[c] + kTiny;
    bdgamma[c] = 2.0 * static_cast<double>(m + 4) * kEps * sum_absg_xhat[c] +
                 stat * sum_absg_xhat[c] + kTiny;
  }
  r.Expect("dbeta", tdbeta, bdbeta);
  r.Expect("dgamma", tdgamma, bdgamma);

  // dx = gamma invstd / m (m g - dbeta - xhat dgamma): the error of the two
  // sums (as above) carried through, plus a few roundings of each term.
  std::vector<double> bdx(n);
  for (size_t i = 0; i < n; ++i) {
    const size_t c = channel(i);
    const double sums =
        bdbeta[c] + xhat_mag(i) * bdgamma[c] + 8 * kEps * xhat_mag(i) * std::fabs(dgamma[c]);
    bdx[i] =
        std::fabs(gamma.f[c]) * invstd[c] *
            (8 * kEps * (std::fabs(g.f[i]) + (sum_absg[c] + sum_absg_xhat[c] * xhat_mag(i)) / m) +
             sums / static_cast<double>(m) +
             stat * (std::fabs(g.f[i]) + std::fabs(dgamma[c]) * xhat_mag(i) / m)) +
        kTiny;
  }
  r.Expect("dx", tdx, bdx);
}

// ---- softmax and losses -----------------------------------------------------

void RunSoftmax(Run &r) {
  Tensors t(r.ctx);
  const Array &x = r.G("x"), &g = r.G("g");
  EXPECT_EQ(r.p->Int("dim"), -1);
  cudl_tensor *tx = t.Of(x), *tg = t.Of(g), *ty = t.Empty(x.shape), *tdx = t.Empty(x.shape);
  const bool log = r.op == "log_softmax";
  if (log) {
    CALL(r.ctx, cudl_log_softmax_forward(r.ctx, tx, ty));
    CALL(r.ctx, cudl_log_softmax_backward(r.ctx, ty, tg, tdx));
  } else {
    CALL(r.ctx, cudl_softmax_forward(r.ctx, tx, ty));
    CALL(r.ctx, cudl_softmax_backward(r.ctx, ty, tg, tdx));
  }
  const int64_t K = x.shape.back();
  const size_t rows = x.f.size() / static_cast<size_t>(K);
  const double cK = 2.0 * static_cast<double>(K + 8) * kEps;  // a K-term sum and a few roundings
  std::vector<double> by(x.f.size()), bdx(x.f.size());
  for (size_t row = 0; row < rows; ++row) {
    const size_t o = row * static_cast<size_t>(K);
    double mx = -HUGE_VAL, sum = 0.0, sum_absg = 0.0, sum_absgy = 0.0;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, static_cast<double>(x.f[o + k]));
    for (int64_t k = 0; k < K; ++k) {
      sum += std::exp(x.f[o + k] - mx);
      sum_absg += std::fabs(g.f[o + k]);
    }
    const double lse = std::log(sum);
    for (int64_t k = 0; k < K; ++k) {
      const double p = std::exp(x.f[o + k] - mx - lse);  // softmax in double
      sum_absgy += std::fabs(g.f[o + k]) * p;
    }
    for (int64_t k = 0; k < K; ++k) {
      const size_t i = o + static_cast<size_t>(k);
      const double p = std::exp(x.f[i] - mx - lse);
      if (log) {
        // y = x - max - log(sum): roundings relative to |x| + |max| and the
        // sum's relative error cK becoming an absolute one in the log.
        const double yb = 4 * kEps * (std::fabs(x.f[i]) + std::fabs(mx) + std::fabs(lse)) + cK;
        by[i] = yb + kTiny;
        // dx = g - exp(y) sum g: exp(y) is off by p (yb + 8 eps).
        bdx[i] = cK * (std::fabs(g.f[i]) + p * sum_absg) + p * (yb + 8 * kEps) * sum_absg + kTiny;
      } else {
        // y = exp(x - max) / sum: exp, the K-term sum of positive values,
        // a division; plus exp's argument x - max rounded (eps |x - max|).
        const double rel = cK + 2 * kEps * std::fabs(x.f[i] - mx);
        by[i] = rel * p + kTiny;
        // dx = y (g - sum g y): cudl's y carries rel; the K-term sum.
        bdx[i] =
            p * (cK * (std::fabs(g.f[i]) + sum_absgy) + rel * (std::fabs(g.f[i]) + sum_absgy)) +
            kTiny;
      }
    }
  }
  r.Expect("y", ty, by);
  r.Expect("dx", tdx, bdx);
}

cudl_reduction Reduction(const Run &r) {
  const std::string s = r.p->Str("reduction");
  if (s != "mean" && s != "sum") ADD_FAILURE() << "reduction " << s;
  return s == "sum" ? CUDL_REDUCTION_SUM : CUDL_REDUCTION_MEAN;
}

void RunLoss(Run &r) {
  Tensors t(r.ctx);
  const cudl_reduction red = Reduction(r);
  const float grad = r.G("g").f.at(0);
  cudl_tensor *tloss = t.Empty({});
  if (r.op == "mse_loss" || r.op == "bce_with_logits") {
    const bool mse = r.op == "mse_loss";
    const Array &x = r.G(mse ? "pred" : "x"), &target = r.G("target");
    const size_t n = x.f.size();
    const double scale = red == CUDL_REDUCTION_MEAN ? 1.0 / static_cast<double>(n) : 1.0;
    cudl_tensor *tx = t.Of(x), *tt = t.Of(target), *tdx = t.Empty(x.shape);
    SumMagnitude lm(1);
    std::vector<double> bdx(n);
    if (mse) {
      CALL(r.ctx, cudl_mse_loss_forward(r.ctx, tx, tt, red, tloss));
      CALL(r.ctx, cudl_mse_loss_backward(r.ctx, tx, tt, red, grad, tdx));
      for (size_t i = 0; i < n; ++i) {
        const double d = static_cast<double>(x.f[i]) - target.f[i];
        lm.Add(0, d * d * scale);  // (p - t)^2 rounded twice, then summed
        bdx[i] = 8 * kEps * std::fabs(2 * d * grad * scale) + kTiny;  // a few products
      }
    } else {
      CALL(r.ctx, cudl_bce_with_logits_forward(r.ctx, tx, tt, red, tloss));
      CALL(r.ctx, cudl_bce_with_logits_backward(r.ctx, tx, tt, red, grad, tdx));
      for (size_t i = 0; i < n; ++i) {
        const double xi = x.f[i], ti = target.f[i];
        // PyTorch: (1 - t) x + max(-x, 0) + log(exp(-m) + exp(-x - m));
        // cudl: max(x, 0) - x t + log1p(exp(-|x|)). Either adds terms no
        // larger than 2 |x| + |x t| + 1 in size, each rounded.
        lm.Add(0, (2 * std::fabs(xi) + std::fabs(xi * ti) + 1) * scale);
        const double sig = 1.0 / (1.0 + std::exp(-xi));
        // (sigmoid(x) - t) g / n; PyTorch's autograd goes through exp and
        // log with a few roundings each: 16 eps of the terms.
        bdx[i] = 16 * kEps * (sig + std::fabs(ti)) * std::fabs(grad) * scale + kTiny;
      }
    }
    r.Expect("loss", tloss, lm.Bound(4));
    r.Expect(mse ? "dpred" : "dx", tdx, bdx);
    return;
  }
  if (r.op != "cross_entropy") {
    ADD_FAILURE() << "no runner for " << r.op;
    return;
  }
  const Array &logits = r.G("logits"), &labels = r.GI("labels");
  const float s = r.p->Float("label_smoothing");
  const int64_t N = logits.shape[0], K = logits.shape[1];
  cudl_tensor *tl = t.Of(logits), *ty = t.Of(labels), *tdl = t.Empty(logits.shape);
  CALL(r.ctx, cudl_cross_entropy_forward(r.ctx, tl, ty, s, red, tloss));
  CALL(r.ctx, cudl_cross_entropy_backward(r.ctx, tl, ty, s, red, grad, tdl));
  const double scale = red == CUDL_REDUCTION_MEAN ? 1.0 / static_cast<double>(N) : 1.0;
  const double cK = 2.0 * static_cast<double>(K + 8) * kEps;
  double loss_bound = 0.0;
  std::vector<double> bdl(logits.f.size());
  for (int64_t i = 0; i < N; ++i) {
    const float *row = &logits.f[static_cast<size_t>(i * K)];
    double mx = -HUGE_VAL, sum = 0.0, sum_abs = 0.0;
    for (int64_t k = 0; k < K; ++k) mx = std::max(mx, static_cast<double>(row[k]));
    for (int64_t k = 0; k < K; ++k) {
      sum += std::exp(row[k] - mx);
      sum_abs += std::fabs(row[k]);
    }
    const double lse = mx + std::log(sum);
    const int32_t label = labels.i[static_cast<size_t>(i)];
    // loss_i = lse - (1 - s) x_label - (s / K) sum x: the K-term sums and
    // log (cK, absolute in the log), then N rows added (the N-term sum).
    const double mag = std::fabs(lse) + std::fabs(mx) + std::fabs(row[label]) + s * sum_abs / K + 1;
    loss_bound += (cK + 2.0 * static_cast<double>(N + 2) * kEps) * mag * scale;
    for (int64_t k = 0; k < K; ++k) {
      const double p = std::exp(row[k] - lse);
      const double target = (k == label ? 1.0 - s : 0.0) + s / K;
      // g (softmax - target) / N: softmax relative cK (plus exp's argument
      // rounding), target and the products a few eps.
      bdl[static_cast<size_t>(i * K + k)] =
          (cK + 2 * kEps * std::fabs(row[k] - mx)) * p * std::fabs(grad) * scale +
          8 * kEps * (p + target) * std::fabs(grad) * scale + kTiny;
    }
  }
  r.Expect("loss", tloss, {loss_bound + kTiny});
  r.Expect("dlogits", tdl, bdl);
}

// ---- convolution, linear, views ------------------------------------------

void RunConv(Run &r) {
  Tensors t(r.ctx);
  const Array &x = r.G("x"), &w = r.G("w"), &b = r.G("b"), &y = r.G("y"), &g = r.G("g");
  cudl_conv2d_desc d = CUDL_CONV2D_DESC_DEFAULT;
  const std::pair<int, int> s = r.p->Pair("stride"), p = r.p->Pair("pad"),
                            dil = r.p->Pair("dilation");
  d.stride_h = s.first;
  d.stride_w = s.second;
  d.pad_h = p.first;
  d.pad_w = p.second;
  d.dilation_h = dil.first;
  d.dilation_w = dil.second;
  d.groups = r.p->Int("groups");
  int64_t out_shape[4];
  ASSERT_EQ(cudl_conv2d_output_shape(&d, x.shape.data(), w.shape.data(), out_shape), CUDL_OK);
  EXPECT_EQ(std::vector<int64_t>(out_shape, out_shape + 4), y.shape);
  cudl_tensor *tx = t.Of(x), *tw = t.Of(w), *tb = t.Of(b), *tg = t.Of(g);
  cudl_tensor *ty = t.Empty(y.shape), *tdx = t.Empty(x.shape), *tdw = t.Empty(w.shape),
              *tdb = t.Empty(b.shape);
  CALL(r.ctx, cudl_conv2d_forward(r.ctx, &d, tx, tw, tb, ty));
  CALL(r.ctx, cudl_conv2d_backward_data(r.ctx, &d, tw, tg, tdx));
  CALL(r.ctx, cudl_conv2d_backward_filter(r.ctx, &d, tx, tg, tdw));
  CALL(r.ctx, cudl_conv2d_backward_bias(r.ctx, tg, tdb));

  // Every product x * w that reaches an output, dx and dw, counted per
  // element: y sums C/groups * R * S products and the bias, dx sums the
  // products w * g that touch it, dw sums x * g over the batch and the
  // output plane, db sums g. PyTorch (oneDNN) and cudl (im2col + BLAS) add
  // them in different orders.
  const int64_t N = x.shape[0], C = x.shape[1], H = x.shape[2], W = x.shape[3];
  const int64_t K = w.shape[0], Cg = w.shape[1], R = w.shape[2], S = w.shape[3];
  const int64_t OH = y.shape[2], OW = y.shape[3], Kg = K / d.groups;
  SumMagnitude ym(y.f.size()), dxm(x.f.size()), dwm(w.f.size()), dbm(b.f.size());
  for (int64_t n = 0; n < N; ++n)
    for (int64_t k = 0; k < K; ++k)
      for (int64_t oh = 0; oh < OH; ++oh)
        for (int64_t ow = 0; ow < OW; ++ow) {
          const size_t o = static_cast<size_t>(((n * K + k) * OH + oh) * OW + ow);
          ym.Add(o, b.f[static_cast<size_t>(k)]);
          dbm.Add(static_cast<size_t>(k), g.f[o]);
          for (int64_t c = 0; c < Cg; ++c)
            for (int64_t rr = 0; rr < R; ++rr)
              for (int64_t ss = 0; ss < S; ++ss) {
                const int64_t h = oh * d.stride_h - d.pad_h + rr * d.dilation_h;
                const int64_t ww = ow * d.stride_w - d.pad_w + ss * d.dilation_w;
                if (h < 0 || h >= H || ww < 0 || ww >= W) continue;
                const int64_t ci = (k / Kg) * Cg + c;
                const size_t xi = static_cast<size_t>(((n * C + ci) * H + h) * W + ww);
                const size_t wi = static_cast<size_t>(((k * Cg + c) * R + rr) * S + ss);
                ym.Add(o, static_cast<double>(x.f[xi]) * w.f[wi]);
                dxm.Add(xi, static_cast<double>(w.f[wi]) * g.f[o]);
                dwm.Add(wi, static_cast<double>(x.f[xi]) * g.f[o]);
              }
        }
  r.Expect("y", ty, ym.Bound(1));  // one rounding per product
  r.Expect("dx", tdx, dxm.Bound(1));
  r.Expect("dw", tdw, dwm.Bound(1));
  r.Expect("db", tdb, dbm.Bound(0));
}

void RunLinear(Run &r) {
  Tensors t(r.ctx);
  const bool bias = r.p->Int("bias") != 0;
  const Array &x = r.G("x"), &w = r.G("w"), &y = r.G("y"), &g = r.G("g");
  const Array *b = bias ? &r.G("b") : nullptr;
  cudl_tensor *tx = t.Of(x), *tw = t.Of(w), *tb = bias ? t.Of(*b) : nullptr, *tg = t.Of(g);
  cudl_tensor *ty = t.Empty(y.shape), *tdx = t.Empty(x.shape), *tdw = t.Empty(w.shape);
  cudl_tensor *tdb = bias ? t.Empty(b->shape) : nullptr;
  CALL(r.ctx, cudl_linear_forward(r.ctx, tx, tw, tb, ty));
  CALL(r.ctx, cudl_linear_backward(r.ctx, tx, tw, tg, tdx, tdw, tdb));
  // Dot products of length IN (y), OUT (dx) and ROWS (dw, db), in whatever
  // order sgemm and PyTorch's addmm take them.
  const int64_t OUT = w.shape[0], IN = w.shape[1], ROWS = x.numel() / IN;
  SumMagnitude ym(y.f.size()), dxm(x.f.size()), dwm(w.f.size()), dbm(static_cast<size_t>(OUT));
  for (int64_t row = 0; row < ROWS; ++row)
    for (int64_t o = 0; o < OUT; ++o) {
      const size_t yi = static_cast<size_t>(row * OUT + o);
      if (bias) ym.Add(yi, b->f[static_cast<size_t>(o)]);
      dbm.Add(static_cast<size_t>(o), g.f[yi]);
      for (int64_t i = 0; i < IN; ++i) {
        const size_t xi = static_cast<size_t>(row * IN + i), wi = static_cast<size_t>(o * IN + i);
        ym.Add(yi, static_cast<double>(x.f[xi]) * w.f[wi]);
        dxm.Add(xi, static_cast<double>(w.f[wi]) * g.f[yi]);
        dwm.Add(wi, static_cast<double>(x.f[xi]) * g.f[yi]);
      }
    }
  r.Expect("y", ty, ym.Bound(1));
  r.Expect("dx", tdx, dxm.Bound(1));
  r.Expect("dw", tdw, dwm.Bound(1));
  if (bias) r.Expect("db", tdb, dbm.Bound(0));
}

void RunView(Run &r) {
  Tensors t(r.ctx);
  const Array &x = r.G("x"), &y = r.G("y"), &g = r.G("g");
  cudl_tensor *tx = t.Of(x), *tg = t.Of(g), *view = nullptr, *back = nullptr;
  if (r.op == "flatten") {
    CALL(r.ctx, cudl_tensor_flatten(tx, r.p->Int("start"), r.p->Int("end"), &view));
  } else {
    CALL(r.ctx, cudl_tensor_reshape(tx, static_cast<int>(y.shape.size()), y.shape.data(), &view));
  }
  t.Adopt(view);
  // The gradient of a view is the upstream gradient viewed back.
  CALL(r.ctx, cudl_tensor_reshape(tg, static_cast<int>(x.shape.size()), x.shape.data(), &back));
  t.Adopt(back);
  r.ExpectExact("y", view);
  r.ExpectExact("dx", back);
}

// ---------------------------------------------------------------------------
// Driver
// ---------------------------------------------------------------------------

using Runner = void (*)(Run &);

const std::map<std::string, Runner> &Runners() {
  static const std::map<std::string, Runner> runners = {
      {"sigmoid", RunActivation},
      {"tanh", RunActivation},
      {"relu", RunActivation},
      {"silu", RunActivation},
      {"leaky_relu", RunActivation},
      {"elu", RunActivation},
      {"prelu", RunActivation},
      {"rrelu_eval", RunActivation},
      {"dropout_eval", RunActivation},
      {"max_pool2d", RunPooling},
      {"avg_pool2d", RunPooling},
      {"global_avg_pool", RunPooling},
      {"batchnorm_train", RunBatchnorm},
      {"batchnorm_eval", RunBatchnorm},
      {"softmax", RunSoftmax},
      {"log_softmax", RunSoftmax},
      {"mse_loss", RunLoss},
      {"bce_with_logits", RunLoss},
      {"cross_entropy", RunLoss},
      {"conv2d", RunConv},
      {"linear", RunLinear},
      {"flatten", RunView},
      {"reshape", RunView},
  };
  return runners;
}

// Runs every case of `file` on ctx. `ops` must each have at least one case.
void RunFile(cudl_context *ctx, const std::string &file, const std::vector<std::string> &ops) {
  GoldenFile golden;
  ASSERT_TRUE(golden.Load(file));
  const bool cuda = cudl_context_device(ctx) == CUDL_DEVICE_CUDA;
  Margins margins;
  std::map<std::string, int> per_op;
  for (const auto &kv : golden.cases()) {
    SCOPED_TRACE(file + ": " + kv.first + " (" + kv.second + ")");
    const Params params(kv.second);
    const std::string op = params.Str("op");
    auto it = Runners().find(op);
    if (it == Runners().end()) {
      ADD_FAILURE() << "unknown operator '" << op << "'";
      continue;
    }
    ++per_op[op];
    Run run{ctx, &golden, kv.first, &params, cuda ? 2.0 : 1.0, cuda, &margins, op};
    it->second(run);
  }
  for (const std::string &op : ops) EXPECT_GT(per_op[op], 0) << file << " has no " << op << " case";
  for (const auto &kv : per_op)
    EXPECT_NE(std::find(ops.begin(), ops.end(), kv.first), ops.end())
        << file << ": operator " << kv.first << " is not expected here";
  const std::vector<std::string> unused = golden.Unused();
  EXPECT_TRUE(unused.empty()) << file << ": " << unused.size() << " tensors no case checked, first "
                              << (unused.empty() ? "" : unused[0]);
  for (const auto &kv : margins)
    std::printf("[ golden   ] %-5s %-34s %2d cases, largest error / bound %.3g\n",
                cuda ? "cuda" : "cpu", kv.first.c_str(),
                per_op[kv.first.substr(0, kv.first.find(' '))], kv.second);
}

struct FileSpec {
  const char *file;
  std::vector<std::string> ops;
};

void PrintTo(const FileSpec &f, std::ostream *os) { *os << f.file; }

const std::vector<FileSpec> &Files() {
  static const std::vector<FileSpec> files = {
      {"activations.safetensors",
       {"sigmoid", "tanh", "relu", "silu", "leaky_relu", "elu", "prelu", "rrelu_eval", "dropout_eval"}},
      {"pooling.safetensors", {"max_pool2d", "avg_pool2d", "global_avg_pool"}},
      {"batchnorm.safetensors", {"batchnorm_train", "batchnorm_eval"}},
      {"losses.safetensors",
       {"softmax", "log_softmax", "mse_loss", "bce_with_logits", "cross_entropy"}},
      {"conv_linear.safetensors", {"conv2d", "linear", "flatten", "reshape"}},
  };
  return files;
}

class GoldenTest : public ::testing::TestWithParam<FileSpec> {};

TEST_P(GoldenTest, Cpu) {
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx), CUDL_OK);
  RunFile(ctx, GetParam().file, GetParam().ops);
  cudl_context_destroy(ctx);
}

TEST_P(GoldenTest, Cuda) {
  const cudl_test::CudaAvailability a = cudl_test::QueryCuda();
  if (!a.available) GTEST_SKIP() << "no CUDA device: " << a.reason;
  cudl_context *ctx = nullptr;
  ASSERT_EQ(cudl_context_create(CUDL_DEVICE_CUDA, 0, &ctx), CUDL_OK);
  ASSERT_EQ(cudl_context_allow_tf32(ctx), 0) << "TF32 must be off by default";
  RunFile(ctx, GetParam().file, GetParam().ops);
  cudl_context_destroy(ctx);
}

std::string FileName(const ::testing::TestParamInfo<FileSpec> &info) {
  std::string name = info.param.file;
  name = name.substr(0, name.find('.'));
  return name;
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenTest, ::testing::ValuesIn(Files()), FileName);

// The loader's failure path: a missing golden fails with a message that
// says what to do, rather than skipping.
TEST(GoldenFile, MissingFileFailsWithAMessage) {
  GoldenFile golden;
  const ::testing::AssertionResult r = golden.Load("no-such-golden.safetensors");
  EXPECT_FALSE(r);
  EXPECT_TRUE(cudl_test::HasSubstr(r.message(), "no-such-golden.safetensors"));
  EXPECT_TRUE(cudl_test::HasSubstr(r.message(), "missing or unreadable"));
  EXPECT_TRUE(cudl_test::HasSubstr(r.message(), "scripts/make-goldens.sh"));
}

// Every golden file is there, and each of its cases names an operator this
// test runs (so a case added to the generator cannot go unchecked).
TEST(GoldenFile, EveryFileLoadsAndEveryCaseHasARunner) {
  for (const FileSpec &f : Files()) {
    GoldenFile golden;
    ASSERT_TRUE(golden.Load(f.file));
    for (const auto &kv : golden.cases()) {
      const Params p(kv.second);
      EXPECT_EQ(Runners().count(p.Str("op")), 1u) << f.file << ": " << kv.first;
    }
  }
}

}  // namespace
