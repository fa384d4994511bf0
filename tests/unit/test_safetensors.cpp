// test_safetensors.cpp - the safetensors writer and reader on the CPU:
// round trips (names, shapes, dtypes and bytes), the exact bytes the writer
// produces, HEADER_ONLY inspection, lookups, argument errors, and atomic
// replacement of an existing file.
//
// Malformed files (each with its own status) are in
// test_safetensors_malformed.cpp; the reader/writer written from the
// specification in Python is scripts/safetensors_spec.py (tests/interop).
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <fstream>
#include <functional>
#include <sstream>
#include <string>
#include <vector>

#include <jansson.h>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

// Status comparisons print the enum names on failure.
#define EXPECT_STATUS(expected, expr) \
  EXPECT_STREQ(cudl_status_name(expected), cudl_status_name(expr))
#define ASSERT_STATUS(expected, expr) \
  ASSERT_STREQ(cudl_status_name(expected), cudl_status_name(expr))

// ---------------------------------------------------------------- files ---

std::string TempBase() {
  const char *env = std::getenv("CUDL_TEST_TMPDIR");
  return (env != nullptr && env[0] != '\0') ? env : "/tmp";
}

std::string MakeTempDir() {
  std::string tmpl = TempBase() + "/cudl_st_XXXXXX";
  std::vector<char> buf(tmpl.begin(), tmpl.end());
  buf.push_back('\0');
  if (mkdtemp(buf.data()) == nullptr) return std::string();
  return std::string(buf.data());
}

int RemoveEntry(const char *path, const struct stat *, int, struct FTW *) {
  return std::remove(path);
}

void RemoveTree(const std::string &dir) {
  if (!dir.empty()) nftw(dir.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
}

bool Exists(const std::string &path) {
  struct stat st;
  return lstat(path.c_str(), &st) == 0;
}

std::string ReadFile(const std::string &path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

bool WriteFile(const std::string &path, const std::string &bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  return static_cast<bool>(out);
}

// Names in dir that look like the writer's temporaries ("<name>.tmp.<pid>.<n>").
std::vector<std::string> Temporaries(const std::string &dir) {
  std::vector<std::string> found;
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return found;
  while (struct dirent *e = readdir(d)) {
    if (std::strstr(e->d_name, ".tmp.") != nullptr) found.push_back(e->d_name);
  }
  closedir(d);
  return found;
}

std::string Octal(mode_t mode) {
  char buf[16];
  std::snprintf(buf, sizeof buf, "0%03o", static_cast<unsigned>(mode));
  return buf;
}

std::vector<std::string> DirEntries(const std::string &dir) {
  std::vector<std::string> found;
  DIR *d = opendir(dir.c_str());
  if (d == nullptr) return found;
  while (struct dirent *e = readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0)
      found.push_back(e->d_name);
  }
  closedir(d);
  return found;
}

// The permission bits of path in octal ("0644"), "missing" if it is not there.
std::string FileMode(const std::string &path) {
  struct stat st;
  if (stat(path.c_str(), &st) != 0) return "missing";
  return Octal(st.st_mode & 07777);
}

// ---------------------------------------------------------------- bytes ---

// Deterministic bytes (an LCG's high byte): every bit pattern occurs,
// NaN payloads included, so a reader or writer that converts values instead
// of copying bytes is caught.
std::string PatternBytes(size_t n, uint32_t seed) {
  std::string out(n, '\0');
  uint32_t x = seed * 2654435761u + 12345u;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    out[i] = static_cast<char>(x >> 24);
  }
  return out;
}

std::string Le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// A file image: header JSON padded with spaces to a multiple of 8, then data.
std::string Image(const std::string &json, const std::string &data) {
  std::string header = json;
  while (header.size() % 8 != 0) header.push_back(' ');
  return Le64(header.size()) + header + data;
}

const char *FormatDtypeName(cudl_dtype dtype) {
  switch (dtype) {
    case CUDL_DTYPE_F32: return "F32";
    case CUDL_DTYPE_F16: return "F16";
    case CUDL_DTYPE_BF16: return "BF16";
    case CUDL_DTYPE_I32: return "I32";
  }
  return "?";
}


// ---------------------------------------------------------------- fixture ---

struct Spec {
  std::string name;
  cudl_dtype dtype;
  std::vector<int64_t> shape;
};

class SafetensorsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_));
    dir_ = MakeTempDir();
    ASSERT_FALSE(dir_.empty()) << "cannot create a scratch directory under "
                               << TempBase();
  }

  void TearDown() override {
    for (cudl_tensor *t : owned_) cudl_tensor_destroy(t);
    cudl_context_destroy(ctx_);
    RemoveTree(dir_);
  }

  std::string Path(const std::string &name) const { return dir_ + "/" + name; }

  // A CPU tensor filled with PatternBytes(nbytes, seed); owned by the fixture.
  cudl_tensor *Make(cudl_dtype dtype, const std::vector<int64_t> &shape,
                    uint32_t seed) {
    cudl_tensor *t = nullptr;
    EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, dtype,
                                              static_cast<int>(shape.size()),
                                              shape.data(), &t));
    if (t == nullptr) return nullptr;
    owned_.push_back(t);
    std::string bytes = PatternBytes(cudl_tensor_nbytes(t), seed);
    EXPECT_STATUS(CUDL_OK,
                  cudl_tensor_copy_from_host(t, bytes.data(), bytes.size()));
    return t;
  }

  // Tensors for specs, seeded by position; the names are kept by the
  // fixture, so the result outlives the specs.
  std::vector<cudl_named_tensor> MakeAll(const std::vector<Spec> &specs) {
    std::vector<cudl_named_tensor> out;
    for (size_t i = 0; i < specs.size(); ++i) {
      names_.push_back(specs[i].name);
      out.push_back({names_.back().c_str(),
                     Make(specs[i].dtype, specs[i].shape,
                          static_cast<uint32_t>(i + 1))});
    }
    return out;
  }

  // Make last_error hold a known, unrelated message, so a later check can
  // tell that a failing call recorded its own.
  std::string PrimeLastError() {
    cudl_safetensors *out = nullptr;
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                  cudl_safetensors_load_memory(ctx_, nullptr, 1, 0, &out));
    return cudl_context_last_error(ctx_);
  }

  // The loaded set holds exactly `expected`, with the same names, dtypes,
  // shapes and bytes, and its entries tile the data section in order.
  void ExpectSetHolds(const cudl_safetensors *set,
                      const std::vector<cudl_named_tensor> &expected) {
    ASSERT_NE(set, nullptr);
    ASSERT_EQ(cudl_safetensors_count(set), expected.size());
    uint64_t expected_begin = 0;
    for (size_t i = 0; i < expected.size(); ++i) {
      cudl_safetensors_entry e;
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(set, i, &e));
      EXPECT_EQ(e.data_begin, expected_begin) << "entry " << i;
      EXPECT_LE(e.data_begin, e.data_end) << "entry " << i;
      expected_begin = e.data_end;
    }
    for (const cudl_named_tensor &nt : expected) {
      SCOPED_TRACE("tensor '" + cudl_test::Printable(nt.name) + "'");
      int64_t idx = cudl_safetensors_find(set, nt.name);
      ASSERT_GE(idx, 0);
      cudl_safetensors_entry e;
      ASSERT_STATUS(CUDL_OK,
                    cudl_safetensors_entry_query(set, static_cast<size_t>(idx), &e));
      EXPECT_EQ(std::string(e.name), std::string(nt.name));
      cudl_dtype dtype = cudl_tensor_dtype(nt.tensor);
      EXPECT_STREQ(e.dtype_name, FormatDtypeName(dtype));
      EXPECT_EQ(e.dtype_known, 1);
      EXPECT_EQ(e.dtype, dtype);
      int ndim = cudl_tensor_ndim(nt.tensor);
      ASSERT_EQ(e.ndim, ndim);
      for (int d = 0; d < ndim; ++d)
        EXPECT_EQ(e.shape[d], cudl_tensor_shape(nt.tensor)[d]) << "dim " << d;
      size_t nbytes = cudl_tensor_nbytes(nt.tensor);
      EXPECT_EQ(e.data_end - e.data_begin, nbytes);

      cudl_tensor *t = cudl_safetensors_tensor(set, static_cast<size_t>(idx));
      ASSERT_NE(t, nullptr);
      EXPECT_EQ(cudl_tensor_device(t), CUDL_DEVICE_CPU);
      EXPECT_EQ(cudl_tensor_dtype(t), dtype);
      ASSERT_EQ(cudl_tensor_ndim(t), ndim);
      for (int d = 0; d < ndim; ++d)
        EXPECT_EQ(cudl_tensor_shape(t)[d], cudl_tensor_shape(nt.tensor)[d]);
      ASSERT_EQ(cudl_tensor_nbytes(t), nbytes);
      if (nbytes > 0) {
        std::string want(nbytes, '\0'), got(nbytes, '\0');
        ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(nt.tensor, &want[0], nbytes));
        ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(t, &got[0], nbytes));
        EXPECT_TRUE(want == got) << "the bytes differ";
      }
    }
  }

  // Save, load from the file and check; returns the file's bytes.
  std::string RoundTrip(const std::vector<cudl_named_tensor> &tensors,
                        const std::vector<cudl_metadata_pair> &metadata = {}) {
    std::string path = Path("round.safetensors");
    EXPECT_STATUS(CUDL_OK,
                  cudl_safetensors_save(ctx_, path.c_str(), tensors.data(),
                                        tensors.size(),
                                        metadata.empty() ? nullptr : metadata.data(),
                                        metadata.size()))
        << cudl_context_last_error(ctx_);
    cudl_safetensors *set = nullptr;
    EXPECT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, path.c_str(), 0, &set))
        << cudl_context_last_error(ctx_);
    ExpectSetHolds(set, tensors);
    EXPECT_EQ(cudl_safetensors_metadata_count(set), metadata.size());
    for (const cudl_metadata_pair &m : metadata) {
      const char *v = cudl_safetensors_metadata_find(set, m.key);
      EXPECT_NE(v, nullptr) << "metadata key '" << cudl_test::Printable(m.key) << "'";
      if (v != nullptr) {
        EXPECT_EQ(std::string(v), std::string(m.value));
      }
    }
    cudl_safetensors_destroy(set);
    EXPECT_TRUE(Temporaries(dir_).empty());
    return ReadFile(path);
  }

  cudl_context *ctx_ = nullptr;
  std::string dir_;
  std::vector<cudl_tensor *> owned_;
  std::deque<std::string> names_;
};

// ============================================================ round trips ===

TEST_F(SafetensorsTest, RoundTripsF32F16Bf16) {
  RoundTrip(MakeAll({{"weight", CUDL_DTYPE_F32, {2, 3}},
                     {"half", CUDL_DTYPE_F16, {7}},
                     {"brain", CUDL_DTYPE_BF16, {3, 1, 2}},
                     {"bias", CUDL_DTYPE_F32, {3}}}));
}

TEST_F(SafetensorsTest, RoundTripsScalarsAndEmptyTensors) {
  RoundTrip(MakeAll({{"scalar", CUDL_DTYPE_F32, {}},
                     {"scalar_h", CUDL_DTYPE_F16, {}},
                     {"scalar_b", CUDL_DTYPE_BF16, {}},
                     {"empty", CUDL_DTYPE_F32, {0}},
                     {"empty_mid", CUDL_DTYPE_F32, {3, 0, 2}},
                     {"empty_h", CUDL_DTYPE_F16, {0, 4}},
                     {"empty_b", CUDL_DTYPE_BF16, {5, 0}},
                     {"after", CUDL_DTYPE_F32, {2}}}));
}

TEST_F(SafetensorsTest, RoundTripsOnlyEmptyTensors) {
  std::string bytes = RoundTrip(MakeAll({{"a", CUDL_DTYPE_F32, {0}},
                                         {"b", CUDL_DTYPE_F16, {2, 0}}}));
  ASSERT_GE(bytes.size(), 8u);
  uint64_t n = 0;
  for (int i = 7; i >= 0; --i) n = (n << 8) | static_cast<unsigned char>(bytes[i]);
  EXPECT_EQ(bytes.size(), 8 + n) << "no data section for empty tensors";
}

TEST_F(SafetensorsTest, RoundTripsFiveDimensions) {
  RoundTrip(MakeAll({{"five", CUDL_DTYPE_F32, {2, 1, 3, 1, 2}},
                     {"five_h", CUDL_DTYPE_F16, {1, 2, 1, 2, 3}},
                     {"five_b", CUDL_DTYPE_BF16, {3, 2, 1, 1, 1}}}));
}

TEST_F(SafetensorsTest, RoundTripsManyTensors) {
  std::vector<Spec> specs;
  const cudl_dtype dtypes[] = {CUDL_DTYPE_F32, CUDL_DTYPE_F16, CUDL_DTYPE_BF16};
  for (int i = 0; i < 300; ++i) {
    char name[64];
    std::snprintf(name, sizeof name, "layers.%03d.%s", (i * 37) % 300,
                  i % 2 ? "weight" : "bias");
    std::vector<int64_t> shape;
    for (int d = 0; d < i % 4; ++d) shape.push_back(1 + (i + d) % 5);
    specs.push_back({name, dtypes[i % 3], shape});
  }
  RoundTrip(MakeAll(specs));
}

TEST_F(SafetensorsTest, RoundTripsEveryHalfBitPattern) {
  // All 65536 16-bit patterns, NaNs and infinities included, as F16 and BF16.
  std::string all(2 * 65536, '\0');
  for (uint32_t v = 0; v < 65536; ++v) {
    all[2 * v] = static_cast<char>(v & 0xFF);
    all[2 * v + 1] = static_cast<char>(v >> 8);
  }
  std::vector<cudl_named_tensor> tensors = MakeAll(
      {{"f16", CUDL_DTYPE_F16, {65536}}, {"bf16", CUDL_DTYPE_BF16, {256, 256}}});
  for (const cudl_named_tensor &nt : tensors)
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(
                               const_cast<cudl_tensor *>(nt.tensor), all.data(),
                               all.size()));
  RoundTrip(tensors);
}

TEST_F(SafetensorsTest, RoundTripsMetadataWithUnicodeAndSpecialCharacters) {
  std::vector<cudl_metadata_pair> metadata = {
      {"format", "pt"},
      {"\xe8\xaa\xac\xe6\x98\x8e", "na\xc3\xafve \xe2\x80\x94 \xe2\x9c\x93 \xf0\x9f\x99\x82"},
      {"quote\"key", "back\\slash \"quoted\" /slash/"},
      {"controls", "tab\there\nnew line\r\x01\x1f\x7f"},
      {"empty value", ""},
      {"", "empty key"},
      {"json-looking", "{\"a\": [1, 2]}"}};
  RoundTrip(MakeAll({{"w", CUDL_DTYPE_F32, {2}}}), metadata);
}

TEST_F(SafetensorsTest, RoundTripsMetadataWithoutTensors) {
  std::vector<cudl_metadata_pair> metadata = {{"only", "metadata"}};
  RoundTrip({}, metadata);
}

TEST_F(SafetensorsTest, RoundTripsNamesWithUnicodeAndJsonSpecials) {
  RoundTrip(MakeAll({{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e.\xe9\x87\x8d\xe3\x81\xbf",
                      CUDL_DTYPE_F32, {2}},
                     {"emoji\xf0\x9f\x99\x82", CUDL_DTYPE_F16, {3}},
                     {"quote\"d", CUDL_DTYPE_F32, {1}},
                     {"back\\slash", CUDL_DTYPE_BF16, {2}},
                     {"\\\"", CUDL_DTYPE_F32, {1}},
                     {"tab\tnew\nline\r", CUDL_DTYPE_F32, {1}},
                     {"control\x01\x1f", CUDL_DTYPE_F16, {1}},
                     {"/slash/and{braces}[brackets],:", CUDL_DTYPE_F32, {1}},
                     {" ", CUDL_DTYPE_F32, {1}},
                     {"__metadata", CUDL_DTYPE_F32, {1}},
                     {"__metadata__ ", CUDL_DTYPE_F32, {1}},
                     {"\\u0041", CUDL_DTYPE_F32, {1}}}));
}

TEST_F(SafetensorsTest, RoundTripsAnEmptySet) {
  std::string bytes = RoundTrip({});
  EXPECT_TRUE(bytes == Le64(8) + "{}      ") << cudl_test::Printable(bytes);
}

TEST_F(SafetensorsTest, LoadMemoryEqualsLoad) {
  std::vector<cudl_named_tensor> tensors =
      MakeAll({{"a", CUDL_DTYPE_F32, {2, 2}},
               {"b", CUDL_DTYPE_BF16, {3}},
               {"c", CUDL_DTYPE_F16, {}},
               {"d", CUDL_DTYPE_F32, {0}}});
  std::vector<cudl_metadata_pair> metadata = {{"k", "v"}, {"k2", "v2"}};
  std::string bytes = RoundTrip(tensors, metadata);
  for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
    SCOPED_TRACE(flags);
    cudl_safetensors *from_file = nullptr, *from_memory = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, Path("round.safetensors").c_str(),
                                                 flags, &from_file));
    ASSERT_STATUS(CUDL_OK, cudl_safetensors_load_memory(ctx_, bytes.data(), bytes.size(),
                                                        flags, &from_memory));
    ASSERT_EQ(cudl_safetensors_count(from_file), cudl_safetensors_count(from_memory));
    for (size_t i = 0; i < cudl_safetensors_count(from_file); ++i) {
      cudl_safetensors_entry a, b;
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(from_file, i, &a));
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(from_memory, i, &b));
      EXPECT_STREQ(a.name, b.name);
      EXPECT_STREQ(a.dtype_name, b.dtype_name);
      EXPECT_EQ(a.dtype_known, b.dtype_known);
      EXPECT_EQ(a.dtype, b.dtype);
      ASSERT_EQ(a.ndim, b.ndim);
      for (int d = 0; d < a.ndim; ++d) EXPECT_EQ(a.shape[d], b.shape[d]);
      EXPECT_EQ(a.data_begin, b.data_begin);
      EXPECT_EQ(a.data_end, b.data_end);
      cudl_tensor *ta = cudl_safetensors_tensor(from_file, i);
      cudl_tensor *tb = cudl_safetensors_tensor(from_memory, i);
      ASSERT_EQ(ta == nullptr, tb == nullptr);
      EXPECT_EQ(ta == nullptr, flags == CUDL_SAFETENSORS_HEADER_ONLY);
      if (ta != nullptr) {
        ASSERT_EQ(cudl_tensor_nbytes(ta), cudl_tensor_nbytes(tb));
        if (cudl_tensor_nbytes(ta) > 0) {
          EXPECT_EQ(0, std::memcmp(cudl_tensor_data(ta), cudl_tensor_data(tb),
                                   cudl_tensor_nbytes(ta)));
          // And both equal the bytes in the file image.
          uint64_t n = 0;
          for (int k = 7; k >= 0; --k)
            n = (n << 8) | static_cast<unsigned char>(bytes[static_cast<size_t>(k)]);
          std::string in_file = bytes.substr(static_cast<size_t>(8 + n + a.data_begin),
                                             cudl_tensor_nbytes(ta));
          EXPECT_EQ(0, std::memcmp(cudl_tensor_data(ta), in_file.data(),
                                   in_file.size()));
        }
      }
    }
    ASSERT_EQ(cudl_safetensors_metadata_count(from_file),
              cudl_safetensors_metadata_count(from_memory));
    for (size_t i = 0; i < cudl_safetensors_metadata_count(from_file); ++i) {
      EXPECT_STREQ(cudl_safetensors_metadata_key(from_file, i),
                   cudl_safetensors_metadata_key(from_memory, i));
      EXPECT_STREQ(cudl_safetensors_metadata_value(from_file, i),
                   cudl_safetensors_metadata_value(from_memory, i));
    }
    cudl_safetensors_destroy(from_file);
    cudl_safetensors_destroy(from_memory);
  }
}

// ====================================================== the writer's bytes ===

TEST_F(SafetensorsTest, WriterOutputIsByteExact) {
  // Given out of order; the file must hold __metadata__ first (keys sorted),
  // then tensors in the reference's dtype order (F32, BF16, F16) then by
  // name, each entry's keys
  // as dtype, shape, data_offsets, compact JSON padded with spaces to 8.
  cudl_tensor *h = Make(CUDL_DTYPE_F16, {3}, 11);
  cudl_tensor *w = Make(CUDL_DTYPE_F32, {2}, 12);
  cudl_tensor *g = Make(CUDL_DTYPE_BF16, {1}, 13);
  cudl_tensor *s = Make(CUDL_DTYPE_F32, {}, 14);
  cudl_tensor *e = Make(CUDL_DTYPE_F32, {0}, 15);
  std::vector<cudl_named_tensor> tensors = {
      {"h", h}, {"w", w}, {"g", g}, {"s", s}, {"e", e}};
  std::vector<cudl_metadata_pair> metadata = {{"note", "a\"b\\c\n"},
                                              {"format", "pt"}};
  std::string path = Path("exact.safetensors");
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), tensors.data(),
                                               tensors.size(), metadata.data(),
                                               metadata.size()))
      << cudl_context_last_error(ctx_);

  const std::string json =
      "{\"__metadata__\":{\"format\":\"pt\",\"note\":\"a\\\"b\\\\c\\n\"},"
      "\"e\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[0,0]},"
      "\"s\":{\"dtype\":\"F32\",\"shape\":[],\"data_offsets\":[0,4]},"
      "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]},"
      "\"g\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[12,14]},"
      "\"h\":{\"dtype\":\"F16\",\"shape\":[3],\"data_offsets\":[14,20]}}";
  std::string header = json;
  while (header.size() % 8 != 0) header.push_back(' ');
  ASSERT_LT(header.size() - json.size(), 8u);
  std::string expected = Le64(header.size()) + header + PatternBytes(4, 14) +
                         PatternBytes(8, 12) + PatternBytes(2, 13) +
                         PatternBytes(6, 11);
  std::string got = ReadFile(path);
  EXPECT_TRUE(got == expected) << "got      " << cudl_test::Printable(got) << "\nexpected "
                               << cudl_test::Printable(expected);
}

// An embedding program may give Jansson its own allocator (a process-wide
// setting): memory Jansson hands out then is not malloc's, and cudl must
// neither realloc nor free it. These hooks put a 64-byte tag before each
// block, so a plain free() or realloc() of one would crash.
namespace {
size_t g_tagged_live = 0;
void *TaggedMalloc(size_t n) {
  unsigned char *p = static_cast<unsigned char *>(std::malloc(n + 64));
  if (p == nullptr) return nullptr;
  std::memset(p, 0x5A, 64);
  ++g_tagged_live;
  return p + 64;
}
void TaggedFree(void *ptr) {
  if (ptr == nullptr) return;
  unsigned char *p = static_cast<unsigned char *>(ptr) - 64;
  if (p[0] != 0x5A) std::abort();  // not ours: the test has failed
  --g_tagged_live;
  std::free(p);
}
}  // namespace

TEST_F(SafetensorsTest, SaveAndLoadWorkWithForeignJanssonAllocator) {
  json_malloc_t old_malloc;
  json_free_t old_free;
  json_get_alloc_funcs(&old_malloc, &old_free);
  json_set_alloc_funcs(TaggedMalloc, TaggedFree);
  cudl_tensor *w = Make(CUDL_DTYPE_F32, {3, 5}, 7);
  std::vector<cudl_named_tensor> tensors = {{"w", w}};
  std::vector<cudl_metadata_pair> metadata = {{"k", "v"}};
  const std::string path = Path("hooks.safetensors");
  const cudl_status saved = cudl_safetensors_save(
      ctx_, path.c_str(), tensors.data(), tensors.size(), metadata.data(),
      metadata.size());
  cudl_safetensors *set = nullptr;
  const cudl_status loaded = cudl_safetensors_load(ctx_, path.c_str(), 0, &set);
  cudl_safetensors_destroy(set);
  json_set_alloc_funcs(old_malloc, old_free);
  EXPECT_STATUS(CUDL_OK, saved) << cudl_context_last_error(ctx_);
  EXPECT_STATUS(CUDL_OK, loaded) << cudl_context_last_error(ctx_);
  EXPECT_EQ(g_tagged_live, 0u) << "Jansson blocks leaked or freed elsewhere";
}

TEST_F(SafetensorsTest, LoadingAFifoFailsInsteadOfWaiting) {
  // Opening a FIFO for reading blocks until a writer comes, unless the
  // loader opens it non-blocking; an alarm turns a hang into a failure.
  const std::string path = Path("fifo");
  ASSERT_EQ(mkfifo(path.c_str(), 0600), 0) << std::strerror(errno);
  alarm(10);
  cudl_safetensors *set = nullptr;
  const cudl_status status = cudl_safetensors_load(ctx_, path.c_str(), 0, &set);
  alarm(0);
  EXPECT_STATUS(CUDL_ERR_IO, status);
  EXPECT_EQ(set, nullptr);
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("regular file"), std::string::npos)
      << cudl_context_last_error(ctx_);
}

TEST_F(SafetensorsTest, WriterMatchesTheReferenceImplementationsVectors) {
  // The byte strings the reference implementation's own tests expect.
  // 1. one F32 tensor "attn.0" of shape [1, 2, 3] holding 0, 1, ..., 5:
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {1, 2, 3}, 0);
  const float values[6] = {0, 1, 2, 3, 4, 5};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(t, values, sizeof values));
  cudl_named_tensor nt = {"attn.0", t};
  std::string path = Path("ref1.safetensors");
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
  std::string json =
      "{\"attn.0\":{\"dtype\":\"F32\",\"shape\":[1,2,3],\"data_offsets\":[0,24]}}";
  ASSERT_EQ(json.size(), 64u);  // no padding needed
  std::string data("\0\0\0\0\0\0\x80\x3f\0\0\0\x40\0\0\x40\x40\0\0\x80\x40\0\0\xa0\x40", 24);
  EXPECT_TRUE(ReadFile(path) == Le64(64) + json + data) << cudl_test::Printable(ReadFile(path));

  // 2. the same with the name "attn0", which needs 7 spaces of padding:
  nt.name = "attn0";
  const int64_t shape4[4] = {1, 1, 2, 3};
  cudl_tensor *t4 = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, shape4, &t4));
  owned_.push_back(t4);
  ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_from_host(t4, values, sizeof values));
  nt.tensor = t4;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
  json = "{\"attn0\":{\"dtype\":\"F32\",\"shape\":[1,1,2,3],\"data_offsets\":[0,24]}}";
  EXPECT_TRUE(ReadFile(path) == Le64(72) + json + "       " + data)
      << cudl_test::Printable(ReadFile(path));

  // 3. no tensors with {"framework": "pt"}:
  cudl_metadata_pair m = {"framework", "pt"};
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), nullptr, 0, &m, 1));
  EXPECT_TRUE(ReadFile(path) ==
              Le64(40) + "{\"__metadata__\":{\"framework\":\"pt\"}}     ")
      << cudl_test::Printable(ReadFile(path));
}

TEST_F(SafetensorsTest, WriterOrdersBf16BeforeF16LikeTheReference) {
  // The reference writer sorts by its dtype enum, descending (F64/I64 >
  // F32 > BF16 > F16 > ...), then by name; within one element size the
  // dtype comes before the name, so a BF16 tensor precedes an F16 one
  // whatever their names. safetensors.h promises the reference's output.
  cudl_tensor *a = Make(CUDL_DTYPE_F16, {1}, 1);
  cudl_tensor *b = Make(CUDL_DTYPE_BF16, {1}, 2);
  std::vector<cudl_named_tensor> tensors = {{"a", a}, {"b", b}};
  std::string path = Path("order.safetensors");
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), tensors.data(),
                                               2, nullptr, 0));
  std::string json =
      "{\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[0,2]},"
      "\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[2,4]}}";
  std::string header = json;
  while (header.size() % 8 != 0) header.push_back(' ');
  std::string expected =
      Le64(header.size()) + header + PatternBytes(2, 2) + PatternBytes(2, 1);
  EXPECT_TRUE(ReadFile(path) == expected) << cudl_test::Printable(ReadFile(path));
}

TEST_F(SafetensorsTest, WriterLayoutIsDtypeOrderThenName) {
  // F32, then BF16, then F16 (the reference's enum order, descending), and
  // by name (bytewise) within one dtype: names chosen against that order.
  cudl_tensor *a = Make(CUDL_DTYPE_F16, {1}, 1);
  cudl_tensor *b = Make(CUDL_DTYPE_BF16, {1}, 2);
  cudl_tensor *c = Make(CUDL_DTYPE_F32, {1}, 3);
  cudl_tensor *B = Make(CUDL_DTYPE_BF16, {2}, 4);
  cudl_tensor *z = Make(CUDL_DTYPE_F32, {0}, 5);
  std::vector<cudl_named_tensor> tensors = {{"a", a}, {"b", b}, {"c", c}, {"B", B}, {"z", z}};
  std::string path = Path("order.safetensors");
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), tensors.data(),
                                               tensors.size(), nullptr, 0));
  std::string json =
      "{\"c\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
      "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
      "\"B\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[4,8]},"
      "\"b\":{\"dtype\":\"BF16\",\"shape\":[1],\"data_offsets\":[8,10]},"
      "\"a\":{\"dtype\":\"F16\",\"shape\":[1],\"data_offsets\":[10,12]}}";
  std::string expected = Image(json, PatternBytes(4, 3) + PatternBytes(4, 4) +
                                         PatternBytes(2, 2) + PatternBytes(2, 1));
  EXPECT_TRUE(ReadFile(path) == expected) << cudl_test::Printable(ReadFile(path));
}

TEST_F(SafetensorsTest, LargeDimensionsOfEmptyTensorsRoundTripExactly) {
  // An empty tensor may have any dimension cudl_tensor_create accepts: up
  // to INT64_MAX, provided the non-zero dimensions times the element size
  // fit in 64 bits. The writer emits exact integer literals (not "1e+15",
  // not rounded through a double: 2^53 + 1 stays 2^53 + 1) and the reader
  // reads them back exactly.
  struct Big {
    cudl_dtype dtype;
    int64_t dim;
  };
  const Big big[] = {
      {CUDL_DTYPE_F32, INT64_C(1000000000000000)},
      {CUDL_DTYPE_F32, INT64_C(4503599627370497)},
      {CUDL_DTYPE_F32, INT64_C(9007199254740991)},   // 2^53 - 1
      {CUDL_DTYPE_F32, INT64_C(9007199254740993)},   // 2^53 + 1: a double rounds it
      {CUDL_DTYPE_BF16, INT64_C(9007199254740995)},  // 2^53 + 3
      {CUDL_DTYPE_F32, INT64_C(4611686018427387903)},  // (2^64 - 1) / 4
      {CUDL_DTYPE_F16, INT64_MAX},
  };
  for (const Big &b : big) {
    for (int zero_first = 0; zero_first < 2; ++zero_first) {
      SCOPED_TRACE(std::to_string(b.dim) + (zero_first ? ", zero first" : ""));
      const int64_t shape[2] = {zero_first ? 0 : b.dim, zero_first ? b.dim : 0};
      cudl_tensor *t = nullptr;
      ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, b.dtype, 2, shape, &t));
      owned_.push_back(t);
      cudl_named_tensor nt = {"big", t};
      std::string path = Path("big.safetensors");
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
      std::string bytes = ReadFile(path);
      std::string literal = "\"shape\":[" + std::to_string(shape[0]) + "," +
                            std::to_string(shape[1]) + "],\"data_offsets\":[0,0]";
      EXPECT_NE(bytes.find(literal), std::string::npos) << cudl_test::Printable(bytes);
      for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
        cudl_safetensors *set = nullptr;
        ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, path.c_str(), flags, &set))
            << cudl_context_last_error(ctx_);
        cudl_safetensors_entry e;
        ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(set, 0, &e));
        ASSERT_EQ(e.ndim, 2);
        EXPECT_EQ(e.shape[0], shape[0]);
        EXPECT_EQ(e.shape[1], shape[1]);
        EXPECT_EQ(e.dtype, b.dtype);
        if (flags == 0) {
          ASSERT_NE(cudl_safetensors_tensor(set, 0), nullptr);
          ExpectSetHolds(set, {nt});
        }
        cudl_safetensors_destroy(set);
      }
    }
  }
}

// =========================================================== HEADER_ONLY ===

struct ForeignEntry {
  const char *name;
  const char *dtype;
  size_t size;
  int known;
  std::vector<int64_t> shape;
};

const std::vector<ForeignEntry> &ForeignEntries() {
  static const std::vector<ForeignEntry> entries = {
      {"bool", "BOOL", 1, 0, {3}},       {"u8", "U8", 1, 0, {2}},
      {"i8", "I8", 1, 0, {1}},           {"e5m2", "F8_E5M2", 1, 0, {2}},
      {"e4m3", "F8_E4M3", 1, 0, {1}},    {"i16", "I16", 2, 0, {2}},
      {"u16", "U16", 2, 0, {}},          {"f16", "F16", 2, 1, {2}},
      {"bf16", "BF16", 2, 1, {1}},       {"i32", "I32", 4, 1, {2}},
      {"u32", "U32", 4, 0, {1}},         {"f32", "F32", 4, 1, {2, 1}},
      {"f64", "F64", 8, 0, {1}},         {"i64", "I64", 8, 0, {2}},
      {"u64", "U64", 8, 0, {1}},         {"six", "F32", 4, 1, {1, 1, 2, 1, 1, 1}},
      {"seven", "F16", 2, 1, {1, 1, 1, 1, 1, 1, 0}}};
  return entries;
}

// A file image with the given entries laid out in order, and its data.
std::string ForeignImage(const std::vector<ForeignEntry> &entries,
                         const std::string &metadata_json = "") {
  std::string json = "{" + metadata_json, data;
  uint64_t offset = 0;
  for (size_t i = 0; i < entries.size(); ++i) {
    const ForeignEntry &e = entries[i];
    uint64_t numel = 1;
    std::string shape;
    for (size_t d = 0; d < e.shape.size(); ++d) {
      shape += (d ? "," : "") + std::to_string(e.shape[d]);
      numel *= static_cast<uint64_t>(e.shape[d]);
    }
    uint64_t nbytes = numel * e.size;
    if (json.size() > 1) json += ",";
    json += "\"" + std::string(e.name) + "\":{\"dtype\":\"" + e.dtype +
            "\",\"shape\":[" + shape + "],\"data_offsets\":[" +
            std::to_string(offset) + "," + std::to_string(offset + nbytes) + "]}";
    data += PatternBytes(nbytes, static_cast<uint32_t>(i));
    offset += nbytes;
  }
  return Image(json + "}", data);
}

TEST_F(SafetensorsTest, HeaderOnlyAcceptsEveryFormatDtypeAndMoreDimensions) {
  const std::vector<ForeignEntry> &entries = ForeignEntries();
  std::string image = ForeignImage(entries, "\"__metadata__\":{\"k\":\"v\"}");
  std::string path = Path("foreign.safetensors");
  ASSERT_TRUE(WriteFile(path, image));
  for (int from_file = 0; from_file < 2; ++from_file) {
    SCOPED_TRACE(from_file ? "from a file" : "from memory");
    cudl_safetensors *set = nullptr;
    cudl_status st =
        from_file ? cudl_safetensors_load(ctx_, path.c_str(),
                                          CUDL_SAFETENSORS_HEADER_ONLY, &set)
                  : cudl_safetensors_load_memory(ctx_, image.data(), image.size(),
                                                 CUDL_SAFETENSORS_HEADER_ONLY, &set);
    ASSERT_STATUS(CUDL_OK, st) << cudl_context_last_error(ctx_);
    ASSERT_EQ(cudl_safetensors_count(set), entries.size());
    EXPECT_STREQ(cudl_safetensors_metadata_find(set, "k"), "v");
    uint64_t offset = 0;
    for (size_t i = 0; i < entries.size(); ++i) {
      SCOPED_TRACE(entries[i].name);
      cudl_safetensors_entry e;
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(set, i, &e));
      EXPECT_STREQ(e.name, entries[i].name);  // entries are in offset order
      EXPECT_STREQ(e.dtype_name, entries[i].dtype);
      EXPECT_EQ(e.dtype_known, entries[i].known);
      if (entries[i].known) {
        cudl_dtype want = std::strcmp(entries[i].dtype, "F32") == 0   ? CUDL_DTYPE_F32
                          : std::strcmp(entries[i].dtype, "F16") == 0 ? CUDL_DTYPE_F16
                          : std::strcmp(entries[i].dtype, "I32") == 0 ? CUDL_DTYPE_I32
                                                                      : CUDL_DTYPE_BF16;
        EXPECT_EQ(e.dtype, want);
      }
      ASSERT_EQ(e.ndim, static_cast<int>(entries[i].shape.size()));
      uint64_t numel = 1;
      for (int d = 0; d < e.ndim; ++d) {
        EXPECT_EQ(e.shape[d], entries[i].shape[static_cast<size_t>(d)]);
        numel *= static_cast<uint64_t>(e.shape[d]);
      }
      EXPECT_EQ(e.data_begin, offset);
      EXPECT_EQ(e.data_end, offset + numel * entries[i].size);
      offset = e.data_end;
      EXPECT_EQ(cudl_safetensors_tensor(set, i), nullptr);
    }
    cudl_safetensors_destroy(set);
  }
}

TEST_F(SafetensorsTest, HeaderOnlyOfAWrittenFileHasNoTensors) {
  std::vector<cudl_named_tensor> tensors =
      MakeAll({{"a", CUDL_DTYPE_F32, {4}}, {"b", CUDL_DTYPE_F16, {2}}});
  std::string path = Path("h.safetensors");
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), tensors.data(),
                                               tensors.size(), nullptr, 0));
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, path.c_str(),
                                               CUDL_SAFETENSORS_HEADER_ONLY, &set));
  ASSERT_EQ(cudl_safetensors_count(set), 2u);
  EXPECT_EQ(cudl_safetensors_tensor(set, 0), nullptr);
  EXPECT_EQ(cudl_safetensors_tensor(set, 1), nullptr);
  cudl_safetensors_entry e;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(set, 0, &e));
  EXPECT_STREQ(e.name, "a");
  EXPECT_EQ(e.data_end, 16u);
  cudl_safetensors_destroy(set);
}


TEST_F(SafetensorsTest, FullLoadOfADtypeCudlCannotHoldIsUnsupported) {
  std::string path = Path("unsupported.safetensors");
  struct Case {
    const char *dtype;
    size_t size;
  };
  for (const Case &c : {Case{"I64", 8}, Case{"F64", 8}, Case{"BOOL", 1},
                        Case{"U8", 1}, Case{"U32", 4}, Case{"F8_E4M3", 1}}) {
    SCOPED_TRACE(c.dtype);
    // A valid F32 tensor first, so the failure comes after a tensor exists.
    std::string image = ForeignImage(
        {{"ok", "F32", 4, 1, {2}}, {"foreign", c.dtype, c.size, 0, {2}}});
    ASSERT_TRUE(WriteFile(path, image));
    for (int from_file = 0; from_file < 2; ++from_file) {
      std::string primed = PrimeLastError();
      cudl_safetensors *set = reinterpret_cast<cudl_safetensors *>(&primed);
      cudl_status st =
          from_file ? cudl_safetensors_load(ctx_, path.c_str(), 0, &set)
                    : cudl_safetensors_load_memory(ctx_, image.data(), image.size(),
                                                   0, &set);
      EXPECT_STATUS(CUDL_ERR_UNSUPPORTED, st);
      EXPECT_EQ(set, nullptr);
      std::string message = cudl_context_last_error(ctx_);
      EXPECT_NE(message, primed);
      EXPECT_NE(message.find(c.dtype), std::string::npos) << message;
      // The same file is fine for inspection.
      set = nullptr;
      EXPECT_STATUS(CUDL_OK, cudl_safetensors_load_memory(
                                 ctx_, image.data(), image.size(),
                                 CUDL_SAFETENSORS_HEADER_ONLY, &set));
      cudl_safetensors_destroy(set);
    }
  }
}

TEST_F(SafetensorsTest, FullLoadOfMoreThanFiveDimensionsIsUnsupported) {
  std::string path = Path("six.safetensors");
  std::string image = ForeignImage({{"five", "F32", 4, 1, {1, 2, 1, 1, 1}},
                                    {"six", "F32", 4, 1, {1, 1, 2, 1, 1, 1}}});
  ASSERT_TRUE(WriteFile(path, image));
  for (int from_file = 0; from_file < 2; ++from_file) {
    std::string primed = PrimeLastError();
    cudl_safetensors *set = reinterpret_cast<cudl_safetensors *>(&primed);
    cudl_status st =
        from_file ? cudl_safetensors_load(ctx_, path.c_str(), 0, &set)
                  : cudl_safetensors_load_memory(ctx_, image.data(), image.size(), 0,
                                                 &set);
    EXPECT_STATUS(CUDL_ERR_UNSUPPORTED, st);
    EXPECT_EQ(set, nullptr);
    std::string message = cudl_context_last_error(ctx_);
    EXPECT_NE(message, primed);
    EXPECT_NE(message.find("six"), std::string::npos) << message;
  }
  // Five dimensions alone load.
  std::string five = ForeignImage({{"five", "F32", 4, 1, {1, 2, 1, 1, 1}}});
  cudl_safetensors *set = nullptr;
  EXPECT_STATUS(CUDL_OK,
                cudl_safetensors_load_memory(ctx_, five.data(), five.size(), 0, &set));
  cudl_safetensors_destroy(set);
}

// ============================================================== lookups ===

TEST_F(SafetensorsTest, FindAndMetadataFind) {
  std::vector<cudl_named_tensor> tensors =
      MakeAll({{"alpha", CUDL_DTYPE_F32, {1}},
               {"beta", CUDL_DTYPE_F16, {2}},
               {"gamma", CUDL_DTYPE_BF16, {3}}});
  std::vector<cudl_metadata_pair> metadata = {{"x", "1"}, {"y", "two"}};
  RoundTrip(tensors, metadata);
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, Path("round.safetensors").c_str(),
                                               0, &set));
  for (const char *name : {"alpha", "beta", "gamma"}) {
    int64_t i = cudl_safetensors_find(set, name);
    ASSERT_GE(i, 0) << name;
    ASSERT_LT(i, 3) << name;
    cudl_safetensors_entry e;
    ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(set, static_cast<size_t>(i), &e));
    EXPECT_STREQ(e.name, name);
  }
  EXPECT_EQ(cudl_safetensors_find(set, "delta"), -1);
  EXPECT_EQ(cudl_safetensors_find(set, "alph"), -1);
  EXPECT_EQ(cudl_safetensors_find(set, "alphaa"), -1);
  EXPECT_EQ(cudl_safetensors_find(set, ""), -1);
  EXPECT_EQ(cudl_safetensors_find(set, "__metadata__"), -1);
  EXPECT_EQ(cudl_safetensors_find(set, nullptr), -1);
  EXPECT_EQ(cudl_safetensors_find(nullptr, "alpha"), -1);

  ASSERT_EQ(cudl_safetensors_metadata_count(set), 2u);
  EXPECT_STREQ(cudl_safetensors_metadata_find(set, "x"), "1");
  EXPECT_STREQ(cudl_safetensors_metadata_find(set, "y"), "two");
  EXPECT_EQ(cudl_safetensors_metadata_find(set, "z"), nullptr);
  EXPECT_EQ(cudl_safetensors_metadata_find(set, "alpha"), nullptr);
  EXPECT_EQ(cudl_safetensors_metadata_find(set, nullptr), nullptr);
  EXPECT_EQ(cudl_safetensors_metadata_find(nullptr, "x"), nullptr);
  // Pairs by index: both present, each key with its value.
  std::string k0 = cudl_safetensors_metadata_key(set, 0);
  std::string k1 = cudl_safetensors_metadata_key(set, 1);
  EXPECT_TRUE((k0 == "x" && k1 == "y") || (k0 == "y" && k1 == "x"));
  EXPECT_STREQ(cudl_safetensors_metadata_value(set, 0), k0 == "x" ? "1" : "two");
  EXPECT_EQ(cudl_safetensors_metadata_key(set, 2), nullptr);
  EXPECT_EQ(cudl_safetensors_metadata_value(set, 2), nullptr);
  cudl_safetensors_destroy(set);
}

TEST_F(SafetensorsTest, AccessorsHandleNullAndOutOfRange) {
  RoundTrip(MakeAll({{"a", CUDL_DTYPE_F32, {1}}}));
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, Path("round.safetensors").c_str(),
                                               0, &set));
  cudl_safetensors_entry e;
  EXPECT_STATUS(CUDL_OK, cudl_safetensors_entry_query(set, 0, &e));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_safetensors_entry_query(set, 1, &e));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_safetensors_entry_query(set, SIZE_MAX, &e));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_safetensors_entry_query(set, 0, nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_safetensors_entry_query(nullptr, 0, &e));
  EXPECT_NE(cudl_safetensors_tensor(set, 0), nullptr);
  EXPECT_EQ(cudl_safetensors_tensor(set, 1), nullptr);
  EXPECT_EQ(cudl_safetensors_tensor(nullptr, 0), nullptr);
  EXPECT_EQ(cudl_safetensors_count(nullptr), 0u);
  EXPECT_EQ(cudl_safetensors_metadata_count(nullptr), 0u);
  EXPECT_EQ(cudl_safetensors_metadata_count(set), 0u);
  EXPECT_EQ(cudl_safetensors_metadata_key(set, 0), nullptr);
  EXPECT_EQ(cudl_safetensors_metadata_value(set, 0), nullptr);
  EXPECT_EQ(cudl_safetensors_metadata_key(nullptr, 0), nullptr);
  EXPECT_EQ(cudl_safetensors_metadata_value(nullptr, 0), nullptr);
  cudl_safetensors_destroy(set);
  cudl_safetensors_destroy(nullptr);
}

TEST_F(SafetensorsTest, LoadedTensorsBelongToTheLoadingContext) {
  RoundTrip(MakeAll({{"a", CUDL_DTYPE_F32, {3}}}));
  cudl_context *other = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &other));
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(other, Path("round.safetensors").c_str(),
                                               0, &set));
  EXPECT_EQ(cudl_tensor_context(cudl_safetensors_tensor(set, 0)), other);
  cudl_safetensors_destroy(set);
  cudl_context_destroy(other);
}

// ====================================================== argument errors ===

// Each failing save must return CUDL_ERR_INVALID_ARGUMENT with its own
// message, and touch nothing on disk: no new file, an old one unchanged, no
// temporary left behind.
TEST_F(SafetensorsTest, SaveRejectsBadArguments) {
  cudl_tensor *a = Make(CUDL_DTYPE_F32, {2}, 1);
  cudl_tensor *b = Make(CUDL_DTYPE_F16, {3}, 2);
  const std::string fresh = Path("fresh.safetensors");
  const std::string old = Path("old.safetensors");
  const std::string old_bytes = Image("{\"old\":{\"dtype\":\"F32\",\"shape\":[],"
                                      "\"data_offsets\":[0,4]}}", "\x01\x02\x03\x04");
  cudl_metadata_pair good_meta = {"k", "v"};

  using SaveFn = std::function<cudl_status(const char *path)>;
  struct Case {
    const char *what;
    const char *message_part;  // nullptr: path-independent NULL-path cases
    SaveFn save;
  };
  auto with = [&](std::vector<cudl_named_tensor> tensors,
                  std::vector<cudl_metadata_pair> metadata) {
    return [this, tensors, metadata](const char *path) {
      return cudl_safetensors_save(ctx_, path, tensors.data(), tensors.size(),
                                   metadata.data(), metadata.size());
    };
  };
  std::vector<Case> cases = {
      {"NULL tensors with a count", "tensors",
       [&](const char *path) {
         return cudl_safetensors_save(ctx_, path, nullptr, 1, nullptr, 0);
       }},
      {"NULL metadata with a count", "metadata",
       [&](const char *path) {
         cudl_named_tensor nt = {"a", a};
         return cudl_safetensors_save(ctx_, path, &nt, 1, nullptr, 2);
       }},
      {"NULL tensor", "NULL", with({{"a", a}, {"b", nullptr}}, {})},
      {"NULL name", "name", with({{nullptr, a}}, {})},
      {"empty name", "name", with({{"a", a}, {"", b}}, {})},
      {"__metadata__ as a name", "__metadata__", with({{"__metadata__", a}}, {})},
      {"duplicate names", "twice", with({{"a", a}, {"b", b}, {"a", b}}, {})},
      {"duplicate names, same tensor", "twice", with({{"x", a}, {"x", a}}, {})},
      {"duplicate metadata keys", "twice",
       with({{"a", a}}, {{"k", "1"}, {"j", "2"}, {"k", "3"}})},
      {"invalid UTF-8 name (0xff)", "UTF-8", with({{"bad\xff", a}}, {})},
      {"invalid UTF-8 name (overlong)", "UTF-8", with({{"\xc0\xaf", a}}, {})},
      {"invalid UTF-8 name (surrogate)", "UTF-8", with({{"\xed\xa0\x80", a}}, {})},
      {"invalid UTF-8 name (cut sequence)", "UTF-8", with({{"ok\xe2\x82", a}}, {})},
      {"invalid UTF-8 metadata key", "UTF-8", with({{"a", a}}, {{"\x80", "v"}})},
      {"invalid UTF-8 metadata value", "UTF-8",
       with({{"a", a}}, {good_meta, {"k2", "\xf5\x80\x80\x80"}})},
      {"NULL metadata key", "NULL", with({{"a", a}}, {{nullptr, "v"}})},
      {"NULL metadata value", "NULL", with({{"a", a}}, {{"k", nullptr}})},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    for (const std::string &path : {fresh, old}) {
      ASSERT_FALSE(Exists(fresh));
      ASSERT_TRUE(WriteFile(old, old_bytes));
      std::string primed = PrimeLastError();
      EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, c.save(path.c_str()));
      std::string message = cudl_context_last_error(ctx_);
      EXPECT_NE(message, primed);
      EXPECT_NE(message.find(c.message_part), std::string::npos) << message;
      EXPECT_FALSE(Exists(fresh));
      EXPECT_TRUE(ReadFile(old) == old_bytes);
      EXPECT_TRUE(Temporaries(dir_).empty());
    }
  }

  // The path itself.
  cudl_named_tensor nt = {"a", a};
  for (const char *path : {static_cast<const char *>(nullptr), ""}) {
    std::string primed = PrimeLastError();
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                  cudl_safetensors_save(ctx_, path, &nt, 1, nullptr, 0));
    std::string message = cudl_context_last_error(ctx_);
    EXPECT_NE(message, primed);
    EXPECT_NE(message.find("path"), std::string::npos) << message;
  }
  // No context: nothing to record the message in, and nothing written.
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_safetensors_save(nullptr, fresh.c_str(), &nt, 1, nullptr, 0));
  EXPECT_FALSE(Exists(fresh));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_safetensors_save(nullptr, old.c_str(), &nt, 1, nullptr, 0));
  EXPECT_TRUE(ReadFile(old) == old_bytes);
  std::vector<std::string> entries = DirEntries(dir_);
  EXPECT_EQ(entries, std::vector<std::string>{"old.safetensors"});

  // The context is still usable.
  EXPECT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, fresh.c_str(), &nt, 1, nullptr, 0));
}

TEST_F(SafetensorsTest, LoadRejectsBadArguments) {
  RoundTrip(MakeAll({{"a", CUDL_DTYPE_F32, {1}}}));
  const std::string path = Path("round.safetensors");
  const std::string bytes = ReadFile(path);
  int sentinel = 0;
  cudl_safetensors *const not_null = reinterpret_cast<cudl_safetensors *>(&sentinel);

  struct Case {
    const char *what;
    const char *message_part;
    std::function<cudl_status(cudl_safetensors **out)> load;
  };
  std::vector<Case> cases = {
      {"load: NULL path", "path",
       [&](cudl_safetensors **out) { return cudl_safetensors_load(ctx_, nullptr, 0, out); }},
      {"load: unknown flag 4", "flags",
       [&](cudl_safetensors **out) { return cudl_safetensors_load(ctx_, path.c_str(), 4, out); }},
      {"load: unknown high flag", "flags",
       [&](cudl_safetensors **out) {
         return cudl_safetensors_load(ctx_, path.c_str(), 0x80000001u, out);
       }},
      {"load_memory: unknown flag", "flags",
       [&](cudl_safetensors **out) {
         return cudl_safetensors_load_memory(ctx_, bytes.data(), bytes.size(), 4, out);
       }},
      {"load_memory: NULL data with a size", "data",
       [&](cudl_safetensors **out) {
         return cudl_safetensors_load_memory(ctx_, nullptr, bytes.size(), 0, out);
       }},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    cudl_safetensors *out = not_null;
    // Prime with a different message than the one expected.
    cudl_safetensors *scratch = nullptr;
    EXPECT_STATUS(CUDL_ERR_IO, cudl_safetensors_load(ctx_, Path("none").c_str(), 0,
                                                     &scratch));
    std::string primed = cudl_context_last_error(ctx_);
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, c.load(&out));
    EXPECT_EQ(out, nullptr);
    std::string message = cudl_context_last_error(ctx_);
    EXPECT_NE(message, primed);
    EXPECT_NE(message.find(c.message_part), std::string::npos) << message;
  }

  // NULL out: reported, nothing else to check.
  std::string primed = PrimeLastError();
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_safetensors_load(ctx_, path.c_str(), 0, nullptr));
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)), primed);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_safetensors_load_memory(ctx_, bytes.data(), bytes.size(), 0, nullptr));
  // NULL context: *out is still cleared.
  cudl_safetensors *out = not_null;
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_safetensors_load(nullptr, path.c_str(), 0, &out));
  EXPECT_EQ(out, nullptr);
  out = not_null;
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_safetensors_load_memory(nullptr, bytes.data(), bytes.size(), 0, &out));
  EXPECT_EQ(out, nullptr);
  // NULL data with size 0 is an empty image: too short, not an argument error.
  out = not_null;
  EXPECT_STATUS(CUDL_ERR_FILE_TRUNCATED, cudl_safetensors_load_memory(ctx_, nullptr, 0, 0, &out));
  EXPECT_EQ(out, nullptr);

  // The context is still usable.
  out = nullptr;
  EXPECT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, path.c_str(), 0, &out));
  cudl_safetensors_destroy(out);
}

TEST_F(SafetensorsTest, LoadOfAMissingFileOrADirectoryIsAnIoError) {
  const std::string missing = Path("missing.safetensors");
  const std::string sub = Path("a_directory");
  ASSERT_EQ(0, mkdir(sub.c_str(), 0755));
  for (const std::string &path : {missing, sub, Path("no/such/dir/x.safetensors")}) {
    SCOPED_TRACE(path);
    for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
      int sentinel = 0;
      cudl_safetensors *out = reinterpret_cast<cudl_safetensors *>(&sentinel);
      std::string primed = PrimeLastError();
      EXPECT_STATUS(CUDL_ERR_IO, cudl_safetensors_load(ctx_, path.c_str(), flags, &out));
      EXPECT_EQ(out, nullptr);
      std::string message = cudl_context_last_error(ctx_);
      EXPECT_NE(message, primed);
      EXPECT_NE(message.find(path), std::string::npos) << message;
    }
  }
  EXPECT_FALSE(Exists(missing));
}

// ===================================================== atomic replacement ===

TEST_F(SafetensorsTest, SavingOverAFileReplacesItCompletely) {
  const std::string path = Path("model.safetensors");
  std::vector<cudl_named_tensor> big = MakeAll({{"big", CUDL_DTYPE_F32, {64, 64}},
                                                {"other", CUDL_DTYPE_F16, {100}}});
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), big.data(),
                                               big.size(), nullptr, 0));
  const size_t big_size = ReadFile(path).size();
  cudl_tensor *small = Make(CUDL_DTYPE_BF16, {3}, 99);
  cudl_named_tensor nt = {"small", small};
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
  // Exactly what a save to a new path gives: no tail of the old file.
  const std::string reference = Path("reference.safetensors");
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, reference.c_str(), &nt, 1, nullptr, 0));
  std::string bytes = ReadFile(path);
  EXPECT_LT(bytes.size(), big_size);
  EXPECT_TRUE(bytes == ReadFile(reference));
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, path.c_str(), 0, &set));
  ExpectSetHolds(set, {nt});
  cudl_safetensors_destroy(set);
  EXPECT_TRUE(Temporaries(dir_).empty());
}

TEST_F(SafetensorsTest, SaveWithARelativePathWritesIntoTheWorkingDirectory) {
  char cwd[4096];
  ASSERT_NE(getcwd(cwd, sizeof cwd), nullptr);
  ASSERT_EQ(0, chdir(dir_.c_str()));
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 5);
  cudl_named_tensor nt = {"t", t};
  cudl_status st = cudl_safetensors_save(ctx_, "relative.safetensors", &nt, 1, nullptr, 0);
  ASSERT_EQ(0, chdir(cwd));
  EXPECT_STATUS(CUDL_OK, st) << cudl_context_last_error(ctx_);
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, Path("relative.safetensors").c_str(),
                                               0, &set));
  ExpectSetHolds(set, {nt});
  cudl_safetensors_destroy(set);
  EXPECT_TRUE(Temporaries(dir_).empty());
}

// A write that fails half-way (the file size limit is hit) must leave the
// old file as it was and remove the temporary.
TEST_F(SafetensorsTest, AFailedWriteLeavesTheOldFileAndNoTemporary) {
  const std::string path = Path("model.safetensors");
  cudl_tensor *small = Make(CUDL_DTYPE_F32, {4}, 1);
  cudl_named_tensor old_nt = {"old", small};
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &old_nt, 1, nullptr, 0));
  const std::string old_bytes = ReadFile(path);
  ASSERT_EQ(0, chmod(path.c_str(), 0640));

  cudl_tensor *big = Make(CUDL_DTYPE_F32, {256, 1024}, 2);  // 1 MiB
  cudl_named_tensor nt = {"big", big};
  struct rlimit saved;
  ASSERT_EQ(0, getrlimit(RLIMIT_FSIZE, &saved));
  struct rlimit limited = saved;
  limited.rlim_cur = 64 * 1024;
  void (*saved_handler)(int) = signal(SIGXFSZ, SIG_IGN);
  ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &limited));
  std::string primed = PrimeLastError();
  cudl_status st = cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0);
  std::string message = cudl_context_last_error(ctx_);
  ASSERT_EQ(0, setrlimit(RLIMIT_FSIZE, &saved));
  signal(SIGXFSZ, saved_handler);

  EXPECT_STATUS(CUDL_ERR_IO, st);
  EXPECT_NE(message, primed);
  EXPECT_TRUE(ReadFile(path) == old_bytes);
  EXPECT_EQ(FileMode(path), "0640");
  EXPECT_TRUE(Temporaries(dir_).empty());
  EXPECT_EQ(DirEntries(dir_), std::vector<std::string>{"model.safetensors"});

  // With the limit lifted the same save works.
  EXPECT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, path.c_str(), 0, &set));
  ExpectSetHolds(set, {nt});
  cudl_safetensors_destroy(set);
}

// A save whose final rename fails (the target is a directory) removes its
// temporary and leaves the target alone.
TEST_F(SafetensorsTest, AFailedRenameLeavesNoTemporary) {
  const std::string target = Path("is_a_directory");
  ASSERT_EQ(0, mkdir(target.c_str(), 0755));
  ASSERT_TRUE(WriteFile(target + "/inside", "keep"));
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 3);
  cudl_named_tensor nt = {"t", t};
  std::string primed = PrimeLastError();
  EXPECT_STATUS(CUDL_ERR_IO, cudl_safetensors_save(ctx_, target.c_str(), &nt, 1, nullptr, 0));
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)), primed);
  struct stat st;
  ASSERT_EQ(0, stat(target.c_str(), &st));
  EXPECT_TRUE(S_ISDIR(st.st_mode));
  EXPECT_EQ(ReadFile(target + "/inside"), "keep");
  EXPECT_TRUE(Temporaries(dir_).empty());
  EXPECT_TRUE(Temporaries(target).empty());
  EXPECT_EQ(DirEntries(dir_), std::vector<std::string>{"is_a_directory"});
}

// A save renames only over a regular file: what else is at the path (a
// FIFO, a device, a socket, a link to nothing) stays as it was, and a
// symbolic link is followed, its target replaced and the link kept.
TEST_F(SafetensorsTest, OnlyARegularFileIsReplaced) {
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 3);
  cudl_named_tensor nt = {"t", t};
  struct Case {
    const char *name;
    std::function<bool(const std::string &)> make;
    mode_t type;
  };
  const std::vector<Case> cases = {
      {"fifo", [](const std::string &p) { return mkfifo(p.c_str(), 0644) == 0; }, S_IFIFO},
      // A device node of the null device's numbers, in the test's directory
      // (root only): a writer that renamed over it would replace only this.
      {"device",
       [](const std::string &p) {
         return mknod(p.c_str(), S_IFCHR | 0666, makedev(1, 3)) == 0;
       },
       S_IFCHR},
      {"socket",
       [](const std::string &p) {
         sockaddr_un addr{};
         addr.sun_family = AF_UNIX;
         if (p.size() >= sizeof addr.sun_path) return false;
         std::strcpy(addr.sun_path, p.c_str());
         const int fd = socket(AF_UNIX, SOCK_STREAM, 0);
         const bool ok =
             fd >= 0 && bind(fd, reinterpret_cast<sockaddr *>(&addr), sizeof addr) == 0;
         if (fd >= 0) close(fd);
         return ok;
       },
       S_IFSOCK},
      {"dangling", [](const std::string &p) { return symlink("nowhere", p.c_str()) == 0; },
       S_IFLNK},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    const std::string path = Path(c.name);
    if (!c.make(path)) {
      std::printf("skipped the %s case: cannot make one here (%s)\n", c.name, std::strerror(errno));
      continue;
    }
    const std::string primed = PrimeLastError();
    EXPECT_STATUS(CUDL_ERR_IO, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
    const std::string message = cudl_context_last_error(ctx_);
    EXPECT_NE(message, primed);
    EXPECT_NE(message.find(path), std::string::npos) << message;
    struct stat st;
    ASSERT_EQ(0, lstat(path.c_str(), &st));
    EXPECT_EQ(st.st_mode & S_IFMT, c.type) << "it was replaced";
    EXPECT_TRUE(Temporaries(dir_).empty());
    ASSERT_EQ(0, unlink(path.c_str()));
  }
  // Through a link: the file it names gets the tensors, the link stays.
  const std::string target = Path("target.safetensors"), link = Path("link.safetensors");
  ASSERT_TRUE(WriteFile(target, "old"));
  ASSERT_EQ(0, symlink("target.safetensors", link.c_str()));
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, link.c_str(), &nt, 1, nullptr, 0))
      << cudl_context_last_error(ctx_);
  struct stat st;
  ASSERT_EQ(0, lstat(link.c_str(), &st));
  EXPECT_TRUE(S_ISLNK(st.st_mode)) << "the link was replaced by a file";
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, target.c_str(), 0, &set));
  ExpectSetHolds(set, {nt});
  cudl_safetensors_destroy(set);
  EXPECT_TRUE(Temporaries(dir_).empty());
}

TEST_F(SafetensorsTest, SavingIntoAMissingDirectoryIsAnIoError) {
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 3);
  cudl_named_tensor nt = {"t", t};
  const std::string path = Path("missing_dir/model.safetensors");
  std::string primed = PrimeLastError();
  EXPECT_STATUS(CUDL_ERR_IO, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
  std::string message = cudl_context_last_error(ctx_);
  EXPECT_NE(message, primed);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_TRUE(DirEntries(dir_).empty());
}

TEST_F(SafetensorsTest, AReplacedFileKeepsItsMode) {
  const std::string path = Path("model.safetensors");
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 3);
  cudl_named_tensor nt = {"t", t};
  for (mode_t mode : {0600u, 0640u, 0604u, 0755u}) {
    SCOPED_TRACE(mode);
    ASSERT_TRUE(WriteFile(path, "old contents"));
    ASSERT_EQ(0, chmod(path.c_str(), mode));
    ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
    EXPECT_EQ(FileMode(path), Octal(mode));
    EXPECT_NE(ReadFile(path), "old contents");
  }
}

// The temporary is created with O_CREAT | O_EXCL as "<path>.tmp.<pid>.<n>":
// a name already taken (a leftover, another process's file, or a symbolic
// link planted there) is skipped and left untouched, never written through.
TEST_F(SafetensorsTest, ATakenTemporaryNameIsSkippedAndLeftAlone) {
  const std::string path = Path("model.safetensors");
  const std::string prefix = path + ".tmp." + std::to_string(getpid()) + ".";
  const std::string victim = Path("victim");
  ASSERT_TRUE(WriteFile(victim, "victim"));
  ASSERT_TRUE(WriteFile(prefix + "0", "squatter"));
  ASSERT_EQ(0, symlink(victim.c_str(), (prefix + "1").c_str()));
  ASSERT_EQ(0, symlink(Path("dangling").c_str(), (prefix + "2").c_str()));
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 3);
  cudl_named_tensor nt = {"t", t};
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0))
      << cudl_context_last_error(ctx_);
  EXPECT_EQ(ReadFile(prefix + "0"), "squatter");
  EXPECT_EQ(ReadFile(victim), "victim");
  struct stat st;
  ASSERT_EQ(0, lstat((prefix + "1").c_str(), &st));
  EXPECT_TRUE(S_ISLNK(st.st_mode));
  EXPECT_FALSE(Exists(Path("dangling")));
  EXPECT_FALSE(Exists(prefix + "3"));  // the one used was renamed away
  std::vector<std::string> entries = DirEntries(dir_);
  EXPECT_EQ(entries.size(), 5u);  // model, victim and the three taken names
  cudl_safetensors *set = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load(ctx_, path.c_str(), 0, &set));
  ExpectSetHolds(set, {nt});
  cudl_safetensors_destroy(set);
}

// When every temporary name the writer tries is taken, the save fails with
// CUDL_ERR_IO naming the path, and the old file and the taken names stay.
TEST_F(SafetensorsTest, WhenEveryTemporaryNameIsTakenTheSaveFails) {
  const std::string path = Path("model.safetensors");
  ASSERT_TRUE(WriteFile(path, "old contents"));
  const std::string prefix = path + ".tmp." + std::to_string(getpid()) + ".";
  for (int n = 0; n < 100; ++n) ASSERT_TRUE(WriteFile(prefix + std::to_string(n), "taken"));
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 3);
  cudl_named_tensor nt = {"t", t};
  std::string primed = PrimeLastError();
  EXPECT_STATUS(CUDL_ERR_IO, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
  std::string message = cudl_context_last_error(ctx_);
  EXPECT_NE(message, primed);
  EXPECT_NE(message.find(path), std::string::npos) << message;
  EXPECT_EQ(ReadFile(path), "old contents");
  EXPECT_EQ(DirEntries(dir_).size(), 101u);
  EXPECT_EQ(ReadFile(prefix + "0"), "taken");
  EXPECT_EQ(ReadFile(prefix + "99"), "taken");
  // With one name free again, the save works.
  ASSERT_EQ(0, unlink((prefix + "42").c_str()));
  EXPECT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0));
  EXPECT_FALSE(Exists(prefix + "42"));
  EXPECT_EQ(DirEntries(dir_).size(), 100u);
}

// A new file gets the permissions any new file gets: 0666 less the umask.
TEST_F(SafetensorsTest, ANewFileHonoursTheUmask) {
  cudl_tensor *t = Make(CUDL_DTYPE_F32, {2}, 3);
  cudl_named_tensor nt = {"t", t};
  for (mode_t mask : {022u, 077u, 027u, 002u, 0u}) {
    SCOPED_TRACE(mask);
    const std::string path = Path("new_" + std::to_string(mask) + ".safetensors");
    mode_t saved = umask(mask);
    cudl_status st = cudl_safetensors_save(ctx_, path.c_str(), &nt, 1, nullptr, 0);
    umask(saved);
    ASSERT_STATUS(CUDL_OK, st);
    EXPECT_EQ(FileMode(path), Octal(0666u & ~mask));
  }
}

}  // namespace
