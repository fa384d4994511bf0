// test_safetensors_malformed.cpp - every kind of malformed safetensors file
// and the exact status the loader gives it.
//
// Each image is built in memory (header JSON + data) and loaded with
// cudl_safetensors_load_memory from a heap buffer of exactly its size (so
// AddressSanitizer sees any read past the end), with flags 0 and with
// CUDL_SAFETENSORS_HEADER_ONLY: validation is the same for both. Every
// failure must
//   - return its own status (see cudl/status.h for what each means),
//   - leave *out NULL,
//   - record a new message in cudl_context_last_error,
//   - give back every byte it took from the context's allocator (a counting
//     allocator checks this, and that each free gets the size allocated),
//   - leave the context usable: a valid load right after succeeds.
// A few cases also go through files with cudl_safetensors_load.
#include <gtest/gtest.h>

#include <dirent.h>
#include <fcntl.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "cudl/cudl.h"
#include "test_util.h"

namespace {

#define EXPECT_STATUS(expected, expr) \
  EXPECT_STREQ(cudl_status_name(expected), cudl_status_name(expr))
#define ASSERT_STATUS(expected, expr) \
  ASSERT_STREQ(cudl_status_name(expected), cudl_status_name(expr))

// ------------------------------------------------------------ images ---

std::string Le64(uint64_t v) {
  std::string out(8, '\0');
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return out;
}

// Header text padded with spaces to a multiple of 8, its length, then data.
std::string Image(const std::string &json, const std::string &data = "") {
  std::string header = json;
  while (header.size() % 8 != 0) header.push_back(' ');
  return Le64(header.size()) + header + data;
}

// Bytes 0, 1, 2, ... (mod 251).
std::string Data(size_t n) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>(i % 251);
  return out;
}

// One entry: "name":{"dtype":..,"shape":[..],"data_offsets":[..]}.
std::string Entry(const std::string &name, const std::string &dtype,
                  const std::string &shape, const std::string &offsets) {
  return "\"" + name + "\":{\"dtype\":\"" + dtype + "\",\"shape\":[" + shape +
         "],\"data_offsets\":[" + offsets + "]}";
}

// An entry whose body is given raw.
std::string RawEntry(const std::string &name, const std::string &body) {
  return "\"" + name + "\":" + body;
}

std::string Obj(const std::vector<std::string> &members) {
  std::string out = "{";
  for (size_t i = 0; i < members.size(); ++i) out += (i ? "," : "") + members[i];
  return out + "}";
}

// The valid file the malformed ones are variations of: metadata, an F32
// [2] tensor and an F16 [3] tensor, 14 bytes of data.
std::string ValidJson() {
  return Obj({"\"__metadata__\":{\"format\":\"pt\"}",
              Entry("a", "F32", "2", "0,8"), Entry("b", "F16", "3", "8,14")});
}
std::string ValidImage() { return Image(ValidJson(), Data(14)); }


// Files in dir named like the writer's temporaries ("<name>.tmp.<pid>.<n>").
size_t TemporaryCount(const std::string &dir) {
  size_t n = 0;
  if (DIR *d = opendir(dir.c_str())) {
    while (struct dirent *e = readdir(d))
      if (std::strstr(e->d_name, ".tmp.") != nullptr) ++n;
    closedir(d);
  }
  return n;
}

// ------------------------------------------------ a counting allocator ---

struct Counting {
  std::map<void *, size_t> live;
  size_t allocations = 0;       // successful or not
  long fail_at = -1;            // this allocation (0-based) returns NULL
  std::vector<std::string> errors;

  static void *Alloc(size_t size, size_t alignment, void *user) {
    Counting *c = static_cast<Counting *>(user);
    size_t index = c->allocations++;
    if (c->fail_at >= 0 && index == static_cast<size_t>(c->fail_at)) return nullptr;
    if (alignment < sizeof(void *)) alignment = sizeof(void *);
    void *p = nullptr;
    if (posix_memalign(&p, alignment, size) != 0) return nullptr;
    c->live[p] = size;
    return p;
  }
  static void Free(void *ptr, size_t size, void *user) {
    Counting *c = static_cast<Counting *>(user);
    auto it = c->live.find(ptr);
    if (it == c->live.end()) {
      c->errors.push_back("free of a pointer not allocated here");
    } else {
      if (it->second != size)
        c->errors.push_back("free with size " + std::to_string(size) +
                            " of a block of " + std::to_string(it->second));
      c->live.erase(it);
    }
    std::free(ptr);
  }
};

// ------------------------------------------------------------- fixture ---

class MalformedTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_));
    cudl_allocator a = {Counting::Alloc, Counting::Free, &counting_};
    ASSERT_STATUS(CUDL_OK, cudl_context_set_allocator(ctx_, &a));
    const char *env = std::getenv("CUDL_TEST_TMPDIR");
    std::string base = (env != nullptr && env[0] != '\0') ? env : "/tmp";
    std::string tmpl = base + "/cudl_stm_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
  }

  void TearDown() override {
    EXPECT_TRUE(counting_.live.empty()) << counting_.live.size() << " blocks leaked";
    for (const std::string &e : counting_.errors) ADD_FAILURE() << e;
    cudl_context_destroy(ctx_);
    for (const std::string &f : files_) unlink(f.c_str());
    rmdir(dir_.c_str());
  }

  std::string WriteTemp(const std::string &bytes) {
    std::string path = dir_ + "/f" + std::to_string(files_.size()) + ".safetensors";
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    out.close();
    files_.push_back(path);
    return path;
  }

  // Load image from a heap copy of exactly its size; return the status.
  // On failure checks the contract above and returns the message in *message.
  cudl_status LoadOnce(const std::string &image, unsigned flags, bool from_file,
                       std::string *message) {
    // Prime last_error with an unrelated message.
    cudl_safetensors *scratch = nullptr;
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                  cudl_safetensors_load_memory(ctx_, nullptr, 1, 0, &scratch));
    const std::string primed = cudl_context_last_error(ctx_);

    int sentinel = 0;
    cudl_safetensors *out = reinterpret_cast<cudl_safetensors *>(&sentinel);
    cudl_status st;
    if (from_file) {
      st = cudl_safetensors_load(ctx_, WriteTemp(image).c_str(), flags, &out);
    } else {
      std::unique_ptr<char[]> copy(new char[image.size() ? image.size() : 1]);
      if (!image.empty()) std::memcpy(copy.get(), image.data(), image.size());
      st = cudl_safetensors_load_memory(ctx_, image.empty() ? nullptr : copy.get(),
                                        image.size(), flags, &out);
    }
    if (st == CUDL_OK) {
      EXPECT_NE(out, nullptr);
      cudl_safetensors_destroy(out);
    } else {
      EXPECT_EQ(out, nullptr);
      std::string m = cudl_context_last_error(ctx_);
      EXPECT_FALSE(m.empty());
      EXPECT_NE(m, primed) << "no message of its own";
      if (message != nullptr) *message = m;
    }
    EXPECT_TRUE(counting_.live.empty()) << counting_.live.size()
                                        << " blocks still allocated";
    return st;
  }

  // The context still loads a valid image.
  void ExpectUsable() {
    std::string valid = ValidImage();
    cudl_safetensors *out = nullptr;
    EXPECT_STATUS(CUDL_OK, cudl_safetensors_load_memory(ctx_, valid.data(),
                                                        valid.size(), 0, &out))
        << cudl_context_last_error(ctx_);
    EXPECT_EQ(cudl_safetensors_count(out), 2u);
    cudl_safetensors_destroy(out);
  }

  // image must fail with `expected` with both flags; returns the message
  // (of the flags-0 load).
  std::string ExpectFails(cudl_status expected, const std::string &image,
                          bool from_file = false) {
    std::string message, first;
    for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
      SCOPED_TRACE(flags ? "HEADER_ONLY" : "flags 0");
      EXPECT_STATUS(expected, LoadOnce(image, flags, from_file, &message))
          << "image: " << cudl_test::Printable(image, 300) << "\nmessage: " << message;
      if (flags == 0) first = message;
      ExpectUsable();
    }
    return first;
  }

  void ExpectLoads(const std::string &image) {
    for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
      std::string message;
      EXPECT_STATUS(CUDL_OK, LoadOnce(image, flags, false, &message))
          << "image: " << cudl_test::Printable(image, 300) << "\nmessage: " << message;
    }
  }

  cudl_context *ctx_ = nullptr;
  Counting counting_;
  std::string dir_;
  std::vector<std::string> files_;
};

struct Case {
  const char *what;
  std::string image;
};

// ============================================================ truncation ===

TEST_F(MalformedTest, TheValidImageLoads) {
  std::string image = ValidImage();
  cudl_safetensors *out = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load_memory(ctx_, image.data(), image.size(),
                                                      0, &out));
  ASSERT_EQ(cudl_safetensors_count(out), 2u);
  cudl_safetensors_entry e;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(out, 1, &e));
  EXPECT_STREQ(e.name, "b");
  EXPECT_EQ(std::memcmp(cudl_tensor_data(cudl_safetensors_tensor(out, 1)),
                        Data(14).data() + 8, 6),
            0);
  EXPECT_STREQ(cudl_safetensors_metadata_find(out, "format"), "pt");
  cudl_safetensors_destroy(out);
  EXPECT_TRUE(counting_.live.empty());
}

// Cut the valid file at every length. Whether the cut lands in the 8-byte
// length, in the header or in the data, the file ends before what it
// promises: CUDL_ERR_FILE_TRUNCATED, never a header-size or JSON error
// (the header length is only read from a complete 8-byte field, and the
// header is only parsed once all of it is present).
TEST_F(MalformedTest, EveryTruncationIsTruncated) {
  const std::string image = ValidImage();
  ASSERT_GT(image.size(), 8u + 14u);
  for (size_t cut = 0; cut < image.size(); ++cut) {
    SCOPED_TRACE("cut at " + std::to_string(cut) + " of " + std::to_string(image.size()));
    for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
      std::string message;
      EXPECT_STATUS(CUDL_ERR_FILE_TRUNCATED,
                    LoadOnce(image.substr(0, cut), flags, false, &message))
          << message;
    }
  }
  ExpectUsable();
}

TEST_F(MalformedTest, TruncatedFilesAreTruncated) {
  const std::string image = ValidImage();
  const size_t header_end = image.size() - 14;
  for (size_t cut : {size_t{0}, size_t{1}, size_t{7}, size_t{8}, size_t{9}, header_end - 1,
                     header_end, header_end + 7, image.size() - 1}) {
    SCOPED_TRACE("cut at " + std::to_string(cut));
    ExpectFails(CUDL_ERR_FILE_TRUNCATED, image.substr(0, cut), /*from_file=*/true);
  }
}

// ========================================================= header length ===

TEST_F(MalformedTest, HeaderLengthOutOfRange) {
  std::string msg;
  msg = ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(0) + "{}      ");
  EXPECT_NE(msg.find("header length"), std::string::npos) << msg;
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(0));
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(1) + "{");
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(1) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(100000001) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(UINT64_C(1) << 32) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(UINT64_C(1) << 63) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(UINT64_MAX) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(UINT64_MAX - 7) + "{}      ");
  // The same through a file.
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(0) + "{}      ", true);
  ExpectFails(CUDL_ERR_FILE_HEADER_SIZE, Le64(200000000) + "{}      ", true);
}

TEST_F(MalformedTest, HeaderLengthBeyondTheFileIsTruncated) {
  // The limit itself is allowed, so a small file is merely too short.
  ExpectFails(CUDL_ERR_FILE_TRUNCATED, Le64(100000000) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_TRUNCATED, Le64(1000) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_TRUNCATED, Le64(9) + "{}      ");
  ExpectFails(CUDL_ERR_FILE_TRUNCATED, Le64(2) + "{");
  ExpectFails(CUDL_ERR_FILE_TRUNCATED, Le64(1000) + "{}      ", true);
}

TEST_F(MalformedTest, SmallestHeaderLoads) {
  ExpectLoads(Le64(2) + "{}");
  ExpectLoads(Le64(8) + "{}      ");
  ExpectLoads(Le64(3) + "{} ");
}

TEST_F(MalformedTest, HeaderLengthThatCutsTheJsonIsAJsonError) {
  const std::string json = ValidJson();
  // The length stops inside the JSON; the rest of the JSON and the data
  // become the data section, but the header is checked first.
  ExpectFails(CUDL_ERR_FILE_JSON, Le64(json.size() - 1) + json + Data(14));
  ExpectFails(CUDL_ERR_FILE_JSON, Le64(5) + json + Data(14));
  // The length reaches into the data: binary bytes after the object.
  ExpectFails(CUDL_ERR_FILE_JSON, Le64(json.size() + 4) + json + Data(14));
}

// ============================================================ UTF-8, JSON ===

// Jansson checks UTF-8 while it parses; the loader reports what Jansson
// classifies as invalid UTF-8 as "the header is not valid UTF-8: ...".
TEST_F(MalformedTest, InvalidUtf8IsAJsonError) {
  const std::vector<Case> cases = {
      {"0xff in a name", Image(Obj({Entry("a\xff", "F32", "1", "0,4")}), Data(4))},
      {"0x80 alone", Image(Obj({Entry("\x80", "F32", "1", "0,4")}), Data(4))},
      {"overlong '/'", Image(Obj({Entry("\xc0\xaf", "F32", "1", "0,4")}), Data(4))},
      {"overlong 3-byte", Image(Obj({Entry("\xe0\x80\xaf", "F32", "1", "0,4")}), Data(4))},
      {"surrogate", Image(Obj({Entry("\xed\xa0\x80", "F32", "1", "0,4")}), Data(4))},
      {"above U+10FFFF", Image(Obj({Entry("\xf4\x90\x80\x80", "F32", "1", "0,4")}), Data(4))},
      {"0xf8 lead", Image(Obj({Entry("\xf8\x88\x80\x80\x80", "F32", "1", "0,4")}), Data(4))},
      {"cut sequence", Image(Obj({Entry("\xe2\x82", "F32", "1", "0,4")}), Data(4))},
      {"in metadata", Image("{\"__metadata__\":{\"k\":\"\xfe\"}}")},
      {"in a dtype", Image(Obj({Entry("a", "F3\xb2", "1", "0,4")}), Data(4))},
      {"in the padding", Le64(8) + "{}   \xc3  "},
      {"cut at the header's end", Le64(3) + "{}\xc3"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    std::string msg = ExpectFails(CUDL_ERR_FILE_JSON, c.image);
    EXPECT_NE(msg.find("UTF-8"), std::string::npos) << msg;
  }
}

// A NUL byte is valid UTF-8 but never valid in the header: raw, it is a
// control character (in a string) or not JSON at all (outside one), and
// Jansson refuses the escape \u0000 in keys and in string values (a C
// string would silently end there). All are CUDL_ERR_FILE_JSON, with
// Jansson's own text in the message (not classified as UTF-8).
TEST_F(MalformedTest, NulBytesAreJsonErrors) {
  const std::vector<Case> cases = {
      {"NUL in the padding", Le64(8) + "{}" + std::string(6, '\0')},
      {"NUL as the whole padding", Le64(3) + "{}" + std::string(1, '\0')},
      {"NUL in a name", Image(Obj({Entry(std::string("a\0b", 3), "F32", "1", "0,4")}), Data(4))},
      {"NUL in a metadata value", Image(std::string("{\"__metadata__\":{\"k\":\"a") + '\0' + "\"}}")},
      {"escaped NUL as a name", Image(Obj({Entry("\\u0000", "F32", "1", "0,4")}), Data(4))},
      {"escaped NUL inside a name", Image(Obj({Entry("a\\u0000b", "F32", "1", "0,4")}), Data(4))},
      {"escaped NUL in a dtype", Image(Obj({Entry("a", "F32\\u0000x", "1", "0,4")}), Data(4))},
      {"escaped NUL as a metadata key", Image("{\"__metadata__\":{\"\\u0000\":\"v\"}}")},
      {"escaped NUL in a metadata value", Image("{\"__metadata__\":{\"k\":\"a\\u0000b\"}}")},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    ExpectFails(CUDL_ERR_FILE_JSON, c.image);
  }
}

TEST_F(MalformedTest, ValidUtf8OfEveryLengthLoads) {
  // 1- to 4-byte sequences at the edges of their ranges.
  ExpectLoads(Image(Obj({Entry("\x7f", "F32", "", "0,4"),
                         Entry("\xc2\x80\xdf\xbf", "F32", "", "4,8"),
                         Entry("\xe0\xa0\x80\xed\x9f\xbf\xee\x80\x80\xef\xbf\xbf", "F32", "", "8,12"),
                         Entry("\xf0\x90\x80\x80\xf4\x8f\xbf\xbf", "F32", "", "12,16")}),
                    Data(16)));
}

TEST_F(MalformedTest, BadJson) {
  const std::vector<Case> cases = {
      {"unbalanced object", Image("{")},
      {"unbalanced nested object", Image("{\"a\":{\"dtype\":\"F32\"")},
      {"unbalanced array", Image(Obj({RawEntry("a", "{\"dtype\":\"F32\",\"shape\":[1,\"data_offsets\":[0,4]}")}), Data(4))},
      {"a lone closing brace", Image("}")},
      {"trailing garbage", Image("{} x")},
      {"trailing brace", Image("{}}")},
      {"two objects", Image("{}{}")},
      {"trailing comma", Image("{\"__metadata__\":{},}")},
      {"leading comma", Image("{,}")},
      {"missing colon", Image("{\"__metadata__\" {}}")},
      {"missing comma", Image("{\"__metadata__\":{} \"x\":{}}")},
      {"single quotes", Image("{'__metadata__':{}}")},
      {"unquoted key", Image("{__metadata__:{}}")},
      {"unterminated string", Image("{\"__metadata__")},
      {"bad escape", Image("{\"a\\q\":{}}")},
      {"lone surrogate escape", Image("{\"\\ud800\":{}}")},
      {"NaN", Image("{\"__metadata__\":{\"k\":NaN}}")},
      {"top-level array", Image("[]")},
      {"top-level array of an object", Image("[" + ValidJson() + "]", Data(14))},
      {"top-level string", Image("\"abc\"")},
      {"top-level number", Image("12")},
      {"top-level null", Image("null")},
      {"top-level true", Image("true")},
      {"empty header (spaces)", Le64(8) + "        "},
      {"empty header (2 spaces)", Le64(2) + "  "},
      {"comment", Image("{} // c")},
      // Jansson limits nesting depth (no stack overflow): refused as JSON
      // before __metadata__ or any entry is looked at.
      {"arrays nested 100000 deep",
       Image(std::string(100000, '[') + std::string(100000, ']'))},
      {"metadata nested 100000 deep",
       Image("{\"__metadata__\":" + std::string(100000, '[') + std::string(100000, ']') + "}")},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    ExpectFails(CUDL_ERR_FILE_JSON, c.image);
  }
  ExpectFails(CUDL_ERR_FILE_JSON, Image("{\"a\":"), true);
}

TEST_F(MalformedTest, WhitespaceAroundTheJsonIsAllowed) {
  const std::string data = Data(14);
  ExpectLoads(Image(ValidJson() + " \t\r\n", data));
  ExpectLoads(Image(" " + ValidJson(), data));
  ExpectLoads(Image(
      "{\n  \"a\": {\"dtype\": \"F32\", \"shape\": [ 2 ], \"data_offsets\": [0, 8]},\n"
      "  \"b\": {\"dtype\": \"F16\", \"shape\": [3], \"data_offsets\": [8, 14]}\n}\n",
      data));
}

// ================================================================ schema ===

TEST_F(MalformedTest, EntryNotAnObject) {
  for (const char *body : {"1", "[]", "[\"F32\",[1],[0,4]]", "\"F32\"", "null", "true"}) {
    SCOPED_TRACE(body);
    ExpectFails(CUDL_ERR_FILE_SCHEMA, Image(Obj({RawEntry("a", body)}), Data(4)));
  }
  // After a valid entry too.
  ExpectFails(CUDL_ERR_FILE_SCHEMA,
              Image(Obj({Entry("a", "F32", "1", "0,4"), RawEntry("b", "7")}), Data(4)));
}

TEST_F(MalformedTest, EmptyTensorName) {
  std::string msg =
      ExpectFails(CUDL_ERR_FILE_SCHEMA, Image(Obj({Entry("", "F32", "1", "0,4")}), Data(4)));
  EXPECT_NE(msg.find("empty name"), std::string::npos) << msg;
  // Also after a valid entry.
  ExpectFails(CUDL_ERR_FILE_SCHEMA,
              Image(Obj({Entry("a", "F32", "1", "0,4"), Entry("", "F32", "0", "4,4")}), Data(4)));
  // A name that is empty as a C string ("\u0000") is a JSON error instead:
  // see NulBytesAreJsonErrors.
}

TEST_F(MalformedTest, MissingUnknownAndRepeatedKeys) {
  const std::string d = "\"dtype\":\"F32\"", s = "\"shape\":[1]", o = "\"data_offsets\":[0,4]";
  const std::vector<std::pair<const char *, std::string>> bodies = {
      {"no dtype", "{" + s + "," + o + "}"},
      {"no shape", "{" + d + "," + o + "}"},
      {"no data_offsets", "{" + d + "," + s + "}"},
      {"empty object", "{}"},
      {"unknown key", "{" + d + "," + s + "," + o + ",\"extra\":1}"},
      {"unknown key instead", "{" + d + "," + s + ",\"offsets\":[0,4]}"},
      {"key in another case", "{\"Dtype\":\"F32\"," + s + "," + o + "}"},
  };
  for (const auto &b : bodies) {
    SCOPED_TRACE(b.first);
    ExpectFails(CUDL_ERR_FILE_SCHEMA, Image(Obj({RawEntry("a", b.second)}), Data(4)));
  }
  // A key twice in one entry is a duplicate, found by the parser (which
  // rejects a repeated key in any object), whether or not the values agree.
  const std::vector<std::pair<const char *, std::string>> repeated = {
      {"dtype twice", "{" + d + "," + s + "," + o + "," + d + "}"},
      {"dtype twice, different values", "{" + d + "," + s + "," + o + ",\"dtype\":\"F16\"}"},
      {"shape twice", "{" + d + "," + s + "," + s + "," + o + "}"},
      {"data_offsets twice", "{" + o + "," + d + "," + s + "," + o + "}"},
      {"unknown key twice", "{" + d + "," + s + "," + o + ",\"x\":1,\"x\":1}"},
      {"escaped spelling", "{" + d + "," + s + "," + o + ",\"\\u0064type\":\"F32\"}"},
  };
  for (const auto &b : repeated) {
    SCOPED_TRACE(b.first);
    std::string msg =
        ExpectFails(CUDL_ERR_FILE_DUPLICATE, Image(Obj({RawEntry("a", b.second)}), Data(4)));
    EXPECT_NE(msg.find("duplicate"), std::string::npos) << msg;
  }
  // Keys in any order are fine.
  ExpectLoads(Image(Obj({RawEntry("a", "{" + o + "," + s + "," + d + "}")}), Data(4)));
}

TEST_F(MalformedTest, DtypeNotAString) {
  for (const char *v : {"32", "null", "[\"F32\"]", "{}", "true"}) {
    SCOPED_TRACE(v);
    ExpectFails(CUDL_ERR_FILE_SCHEMA,
                Image(Obj({RawEntry("a", std::string("{\"dtype\":") + v +
                                             ",\"shape\":[1],\"data_offsets\":[0,4]}")}),
                      Data(4)));
  }
}

TEST_F(MalformedTest, UnknownDtype) {
  for (const char *dtype : {"F99", "f32", "", "F32 ", "FLOAT", "F8", "C64"}) {
    SCOPED_TRACE(dtype);
    std::string msg =
        ExpectFails(CUDL_ERR_FILE_DTYPE, Image(Obj({Entry("a", dtype, "1", "0,4")}), Data(4)));
    EXPECT_NE(msg.find("dtype"), std::string::npos) << msg;
  }
}

// ================================================================= shape ===

TEST_F(MalformedTest, ShapeNotAnArray) {
  for (const char *v : {"2", "\"2\"", "{}", "null", "{\"0\":2}"}) {
    SCOPED_TRACE(v);
    ExpectFails(CUDL_ERR_FILE_SCHEMA,
                Image(Obj({RawEntry("a", std::string("{\"dtype\":\"F32\",\"shape\":") + v +
                                             ",\"data_offsets\":[0,8]}")}),
                      Data(8)));
  }
}

TEST_F(MalformedTest, BadDimensions) {
  const std::vector<std::pair<const char *, const char *>> shapes = {
      {"negative", "-1"},
      {"negative after a positive", "2,-2"},
      {"negative zero point five", "-0.5"},
      {"fractional", "1.5"},
      {"fractional, tiny", "2.000001"},
      {"integral real", "4.0"},
      {"integral real after a zero", "0, 4.0"},
      {"exponent", "1e3"},
      {"exponent, capital, signed", "2E+0"},
      {"negative zero real", "-0.0"},
      {"INT64_MIN", "-9223372036854775808"},
      {"string", "\"2\""},
      {"null", "null"},
      {"bool", "true"},
      {"nested array", "[2]"},
      {"object", "{}"},
      {"huge real", "1e300, 0"},
      {"overflowing numel", "4294967296, 4294967296, 16"},
      {"overflowing numel, 3 x 2^32", "4294967296, 4294967296, 4294967296"},
      {"numel above INT64_MAX", "4294967296, 2147483648"},
      {"byte size overflows (2^62 F32)", "2147483648, 2147483648"},
      // Empty tensors too: the non-zero dimensions must fit (as in
      // cudl_tensor_create), so 2^62 F32 elements of 4 bytes do not.
      {"2^62 F32 elements, empty", "4611686018427387904, 0"},
      {"INT64_MAX F32 elements, empty", "9223372036854775807, 0"},
  };
  for (const auto &s : shapes) {
    SCOPED_TRACE(s.first);
    ExpectFails(CUDL_ERR_FILE_SHAPE, Image(Obj({Entry("a", "F32", s.second, "0,8")}), Data(8)));
  }
}

// Integers are read exactly as 64-bit integers; a zero dimension keeps the
// tensor empty, and the product of the non-zero dimensions times the
// element size must fit in 64 bits (as in cudl_tensor_create).
TEST_F(MalformedTest, LargeDimensionsOfEmptyTensorsLoad) {
  struct Big {
    const char *dtype;
    const char *shape;
    int which;      // the index of the large dimension
    int64_t dim;
    bool full;      // cudl holds the dtype, so a full load works too
  };
  const std::vector<Big> cases = {
      {"F32", "9007199254740991, 0", 0, INT64_C(9007199254740991), true},
      {"F16", "0, 9007199254740991", 1, INT64_C(9007199254740991), true},
      // (2^64 - 1) / 4: the most F32 elements whose byte size fits.
      {"F32", "4611686018427387903, 0", 0, INT64_C(4611686018427387903), true},
      {"F32", "0, 4611686018427387903", 1, INT64_C(4611686018427387903), true},
      // INT64_MAX two-byte elements still fit in 2^64 - 1 bytes.
      {"BF16", "9223372036854775807, 0", 0, INT64_MAX, true},
      {"U8", "9223372036854775807, 0", 0, INT64_MAX, false},
      {"U8", "0, 9223372036854775807", 1, INT64_MAX, false},
  };
  for (const Big &c : cases) {
    SCOPED_TRACE(std::string(c.dtype) + " [" + c.shape + "]");
    std::string image = Image(Obj({Entry("a", c.dtype, c.shape, "0,0")}));
    for (unsigned flags : {static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY), 0u}) {
      if (flags == 0 && !c.full) continue;
      cudl_safetensors *out = nullptr;
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_load_memory(ctx_, image.data(), image.size(),
                                                          flags, &out))
          << cudl_context_last_error(ctx_);
      cudl_safetensors_entry e;
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(out, 0, &e));
      ASSERT_EQ(e.ndim, 2);
      EXPECT_EQ(e.shape[c.which], c.dim);
      EXPECT_EQ(e.shape[1 - c.which], 0);
      if (flags == 0) {
        const cudl_tensor *t = cudl_safetensors_tensor(out, 0);
        ASSERT_NE(t, nullptr);
        EXPECT_EQ(cudl_tensor_dim(t, c.which), c.dim);
        EXPECT_EQ(cudl_tensor_numel(t), 0);
        EXPECT_EQ(cudl_tensor_nbytes(t), 0u);
      }
      cudl_safetensors_destroy(out);
    }
  }
  // The byte size of non-empty tensors must fit as well: one more element
  // than the largest F32 and U8 empty shapes above.
  ExpectFails(CUDL_ERR_FILE_SHAPE, Image(Obj({Entry("a", "F32", "4611686018427387904, 0", "0,0")})));
  ExpectFails(CUDL_ERR_FILE_SHAPE, Image(Obj({Entry("a", "F32", "0, 4611686018427387904", "0,0")})));
}

// Whether a shape overflows does not depend on the order of its
// dimensions: like cudl_tensor_create, the loader multiplies the non-zero
// dimensions, wherever the zero is, so HEADER_ONLY and a full load agree
// (a full load never meets CUDL_ERR_SHAPE in cudl_tensor_create).
TEST_F(MalformedTest, ShapeOverflowDoesNotDependOnTheOrderOfDimensions) {
  for (const char *shape : {"4294967296, 4294967296, 4294967296, 0",
                            "0, 4294967296, 4294967296, 4294967296",
                            "4294967296, 0, 4294967296, 4294967296",
                            "0, 2147483648, 2147483648",
                            "2147483648, 0, 2147483648",
                            "2147483648, 2147483648, 0"}) {
    SCOPED_TRACE(shape);
    ExpectFails(CUDL_ERR_FILE_SHAPE, Image(Obj({Entry("a", "F32", shape, "0,0")})));
  }
  // 2^30 x 2^31 F32 elements are 2^63 bytes, which fit: every order loads.
  for (const char *shape : {"0, 1073741824, 2147483648", "1073741824, 0, 2147483648",
                            "1073741824, 2147483648, 0", "2147483648, 1073741824, 0"}) {
    SCOPED_TRACE(shape);
    ExpectLoads(Image(Obj({Entry("a", "F32", shape, "0,0")})));
  }
}

// Integers are exact 64-bit integers (Jansson's json_int_t), not doubles:
// 2^53 + 1 is read as 2^53 + 1, not rounded to 2^53, so these empty
// tensors load with exactly the dimension written.
TEST_F(MalformedTest, DimensionsAboveTwoToThe53AreExact) {
  for (int64_t dim : {INT64_C(9007199254740993), INT64_C(9007199254740995),
                      INT64_C(18014398509481985)}) {
    SCOPED_TRACE(dim);
    std::string image =
        Image(Obj({Entry("a", "F32", std::to_string(dim) + ", 0", "0,0")}));
    ExpectLoads(image);
    for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
      cudl_safetensors *out = nullptr;
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_load_memory(ctx_, image.data(), image.size(),
                                                          flags, &out));
      cudl_safetensors_entry e;
      ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(out, 0, &e));
      ASSERT_EQ(e.ndim, 2);
      EXPECT_EQ(e.shape[0], dim);
      EXPECT_EQ(e.shape[1], 0);
      if (flags == 0) {
        ASSERT_NE(cudl_safetensors_tensor(out, 0), nullptr);
        EXPECT_EQ(cudl_tensor_dim(cudl_safetensors_tensor(out, 0), 0), dim);
      }
      cudl_safetensors_destroy(out);
    }
  }
}

// An integer literal outside [INT64_MIN, INT64_MAX] is refused by the
// parser itself ("too big integer"), wherever it is: CUDL_ERR_FILE_JSON,
// before any field is looked at.
TEST_F(MalformedTest, IntegersBeyond64BitsAreJsonErrors) {
  const std::vector<Case> cases = {
      {"dimension 2^63", Image(Obj({Entry("a", "F32", "9223372036854775808, 0", "0,0")}))},
      {"dimension 2^64", Image(Obj({Entry("a", "F32", "18446744073709551616, 0", "0,0")}))},
      {"dimension 2^64 + 1", Image(Obj({Entry("a", "F32", "18446744073709551617, 0", "0,0")}))},
      {"dimension 10^30", Image(Obj({Entry("a", "F32", "1000000000000000000000000000000, 0", "0,0")}))},
      {"dimension below INT64_MIN", Image(Obj({Entry("a", "F32", "-9223372036854775809", "0,0")}))},
      {"end offset 2^64", Image(Obj({Entry("a", "F32", "0", "0,18446744073709551616")}))},
      {"begin offset 2^63", Image(Obj({Entry("a", "F32", "0", "9223372036854775808,0")}))},
      // Not even a field cudl reads: the whole header is refused.
      {"in an unknown key", Image(Obj({RawEntry("a", "{\"dtype\":\"F32\",\"shape\":[0],"
                                                     "\"data_offsets\":[0,0],\"x\":18446744073709551616}")}))},
      // A JSON error comes before any schema error of the same file.
      {"after an unknown dtype", Image(Obj({Entry("a", "F99", "18446744073709551616, 0", "0,0")}))},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    ExpectFails(CUDL_ERR_FILE_JSON, c.image);
  }
}

// ========================================================== data_offsets ===

TEST_F(MalformedTest, DataOffsetsWrongArity) {
  for (const char *v : {"[0]", "[]", "[0,8,8]", "[[0,8]]", "\"0,8\"", "{}", "null", "8"}) {
    SCOPED_TRACE(v);
    ExpectFails(CUDL_ERR_FILE_SCHEMA,
                Image(Obj({RawEntry("a", std::string("{\"dtype\":\"F32\",\"shape\":[2],"
                                                     "\"data_offsets\":") + v + "}")}),
                      Data(8)));
  }
}

TEST_F(MalformedTest, DataOffsetsBadValues) {
  const std::vector<std::pair<const char *, std::string>> cases = {
      {"negative begin", "-8,0"},
      {"negative end", "0,-8"},
      {"fractional", "0,8.5"},
      {"fractional begin", "0.5,8.5"},
      {"string", "\"0\",8"},
      {"null", "null,8"},
      {"integral real", "0,8.0"},
      {"exponent", "0,8e0"},
      {"span of 2^53 + 2", "0,9007199254740994"},
      {"span of INT64_MAX", "0,9223372036854775807"},
      {"reversed", "8,0"},
      {"span too short", "0,4"},
      {"span too long", "0,12"},
      {"span of zero", "4,4"},
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.first);
    std::string msg = ExpectFails(CUDL_ERR_FILE_OFFSETS,
                                  Image(Obj({Entry("a", "F32", "2", c.second)}), Data(8)));
    EXPECT_NE(msg.find("'a'"), std::string::npos) << msg;
  }
  // An F16 [3] needs 6 bytes, not 3 x 4.
  ExpectFails(CUDL_ERR_FILE_OFFSETS, Image(Obj({Entry("h", "F16", "3", "0,12")}), Data(12)));
  // A scalar needs one element, an empty tensor none.
  ExpectFails(CUDL_ERR_FILE_OFFSETS, Image(Obj({Entry("s", "F32", "", "0,0")})));
  ExpectFails(CUDL_ERR_FILE_OFFSETS, Image(Obj({Entry("e", "F32", "0", "0,4")}), Data(4)));
}

TEST_F(MalformedTest, OverlapsAndHoles) {
  const std::vector<Case> overlaps = {
      {"partial overlap",
       Image(Obj({Entry("a", "F32", "2", "0,8"), Entry("b", "F32", "2", "4,12")}), Data(12))},
      {"same range",
       Image(Obj({Entry("a", "F32", "2", "0,8"), Entry("b", "F32", "2", "0,8")}), Data(8))},
      {"nested",
       Image(Obj({Entry("a", "F32", "4", "0,16"), Entry("b", "F32", "1", "4,8")}), Data(16))},
      {"overlap listed in reverse",
       Image(Obj({Entry("b", "F32", "2", "4,12"), Entry("a", "F32", "2", "0,8")}), Data(12))},
  };
  for (const Case &c : overlaps) {
    SCOPED_TRACE(c.what);
    std::string msg = ExpectFails(CUDL_ERR_FILE_OFFSETS, c.image);
    EXPECT_NE(msg.find("overlap"), std::string::npos) << msg;
  }
  const std::vector<Case> holes = {
      {"hole between",
       Image(Obj({Entry("a", "F32", "2", "0,8"), Entry("b", "F32", "2", "12,20")}), Data(20))},
      {"hole at the start", Image(Obj({Entry("a", "F32", "2", "4,12")}), Data(12))},
      {"empty tensor past the end",
       Image(Obj({Entry("a", "F32", "2", "0,8"), Entry("e", "F32", "0", "12,12")}), Data(8))},
  };
  for (const Case &c : holes) {
    SCOPED_TRACE(c.what);
    std::string msg = ExpectFails(CUDL_ERR_FILE_OFFSETS, c.image);
    EXPECT_NE(msg.find("hole"), std::string::npos) << msg;
  }
  ExpectFails(CUDL_ERR_FILE_OFFSETS,
              Image(Obj({Entry("a", "F32", "2", "0,8"), Entry("b", "F32", "2", "4,12")}),
                    Data(12)),
              true);
}

TEST_F(MalformedTest, EntriesInAnyOrderTilingTheDataLoad) {
  std::string image = Image(Obj({Entry("c", "F16", "1", "12,14"), Entry("e", "F32", "0", "8,8"),
                                 Entry("b", "F32", "1", "8,12"), Entry("a", "F32", "2", "0,8"),
                                 Entry("z", "BF16", "0", "14,14")}),
                            Data(14));
  ExpectLoads(image);
  cudl_safetensors *out = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_load_memory(ctx_, image.data(), image.size(), 0, &out));
  // Entries come back in offset order.
  uint64_t prev = 0;
  for (size_t i = 0; i < cudl_safetensors_count(out); ++i) {
    cudl_safetensors_entry e;
    ASSERT_STATUS(CUDL_OK, cudl_safetensors_entry_query(out, i, &e));
    EXPECT_EQ(e.data_begin, prev) << e.name;
    prev = e.data_end;
  }
  EXPECT_EQ(prev, 14u);
  int64_t c = cudl_safetensors_find(out, "c");
  ASSERT_GE(c, 0);
  EXPECT_EQ(std::memcmp(cudl_tensor_data(cudl_safetensors_tensor(out, static_cast<size_t>(c))),
                        Data(14).data() + 12, 2),
            0);
  cudl_safetensors_destroy(out);
}

TEST_F(MalformedTest, OffsetsBeyondTheDataAreTruncated) {
  const std::vector<Case> cases = {
      {"one tensor, half its data", Image(Obj({Entry("a", "F32", "2", "0,8")}), Data(4))},
      {"one tensor, no data", Image(Obj({Entry("a", "F32", "2", "0,8")}))},
      {"second tensor cut",
       Image(Obj({Entry("a", "F32", "2", "0,8"), Entry("b", "F32", "2", "8,16")}), Data(12))},
      {"one byte short", Image(ValidJson(), Data(13))},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    ExpectFails(CUDL_ERR_FILE_TRUNCATED, c.image);
  }
  ExpectFails(CUDL_ERR_FILE_TRUNCATED, Image(ValidJson(), Data(13)), true);
}

TEST_F(MalformedTest, BytesAfterTheLastTensorAreTrailingData) {
  const std::vector<Case> cases = {
      {"one byte", Image(ValidJson(), Data(15))},
      {"a whole tensor's worth", Image(ValidJson(), Data(22))},
      {"no tensors, one byte", Image("{}", "x")},
      {"metadata only, some bytes", Image("{\"__metadata__\":{}}", Data(8))},
      {"only empty tensors", Image(Obj({Entry("e", "F32", "0", "0,0")}), Data(4))},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    ExpectFails(CUDL_ERR_FILE_TRAILING_DATA, c.image);
  }
  ExpectFails(CUDL_ERR_FILE_TRAILING_DATA, Image(ValidJson(), Data(15)), true);
}

// ============================================================ duplicates ===

// The parser rejects a key repeated in any JSON object (Jansson's
// JSON_REJECT_DUPLICATES, after decoding escapes): CUDL_ERR_FILE_DUPLICATE,
// before the entries are validated.
TEST_F(MalformedTest, DuplicateTensorNames) {
  // Offsets that would tile, so the name is the only fault.
  const std::vector<Case> cases = {
      {"adjacent",
       Image(Obj({Entry("a", "F32", "1", "0,4"), Entry("a", "F32", "1", "4,8")}), Data(8))},
      {"apart",
       Image(Obj({Entry("a", "F32", "1", "0,4"), Entry("b", "F32", "1", "4,8"),
                  Entry("a", "F32", "1", "8,12")}),
             Data(12))},
      {"escaped spelling",
       Image(Obj({Entry("a", "F32", "1", "0,4"), Entry("\\u0061", "F32", "1", "4,8")}), Data(8))},
      {"empty tensors", Image(Obj({Entry("e", "F32", "0", "0,0"), Entry("e", "F16", "0", "0,0")}))},
      {"non-ASCII, escaped once",
       Image(Obj({Entry("\xc3\xa9", "F32", "1", "0,4"), Entry("\\u00e9", "F32", "1", "4,8")}),
             Data(8))},
      // The duplicate is found before the entries are looked at.
      {"the second entry invalid",
       Image(Obj({Entry("a", "F32", "1", "0,4"), RawEntry("a", "7")}), Data(4))},
      {"overlapping offsets", Image(Obj({Entry("a", "F32", "1", "0,4"), Entry("a", "F32", "1", "0,4")}),
                                    Data(4))},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    std::string msg = ExpectFails(CUDL_ERR_FILE_DUPLICATE, c.image);
    EXPECT_NE(msg.find("duplicate"), std::string::npos) << msg;
  }
  // Names that differ only in case or by a trailing space are distinct.
  ExpectLoads(Image(Obj({Entry("a", "F32", "1", "0,4"), Entry("A", "F32", "1", "4,8"),
                         Entry("a ", "F32", "1", "8,12")}),
                    Data(12)));
}

TEST_F(MalformedTest, DuplicateMetadata) {
  const std::vector<Case> cases = {
      {"two __metadata__",
       Image("{\"__metadata__\":{\"a\":\"1\"},\"__metadata__\":{\"b\":\"2\"}}")},
      {"two __metadata__ apart",
       Image(Obj({"\"__metadata__\":{}", Entry("a", "F32", "1", "0,4"), "\"__metadata__\":{}"}),
             Data(4))},
      // The parser finds it before __metadata__ is checked.
      {"two __metadata__, the second not an object",
       Image("{\"__metadata__\":{},\"__metadata__\":7}")},
      {"__metadata__ escaped the second time",
       Image("{\"__metadata__\":{},\"\\u005f_metadata__\":{}}")},
      // A key twice inside __metadata__, with equal or different values.
      {"repeated key", Image("{\"__metadata__\":{\"k\":\"1\",\"k\":\"2\"}}")},
      {"repeated key, same value", Image("{\"__metadata__\":{\"k\":\"v\",\"k\":\"v\"}}")},
      {"repeated key apart",
       Image(Obj({"\"__metadata__\":{\"k\":\"1\",\"j\":\"2\",\"k\":\"3\"}",
                  Entry("a", "F32", "1", "0,4")}),
             Data(4))},
      {"repeated empty key", Image("{\"__metadata__\":{\"\":\"\",\"\":\"\"}}")},
      {"repeated key, second value not a string",
       Image("{\"__metadata__\":{\"k\":\"1\",\"k\":2}}")},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    std::string msg = ExpectFails(CUDL_ERR_FILE_DUPLICATE, c.image);
    EXPECT_NE(msg.find("duplicate"), std::string::npos) << msg;
  }
}

// ============================================================== metadata ===

TEST_F(MalformedTest, MetadataNotAnObjectOfStrings) {
  const std::vector<std::pair<const char *, const char *>> cases = {
      {"string", "\"x\""},
      {"array", "[]"},
      {"array of pairs", "[[\"k\",\"v\"]]"},
      {"number", "1"},
      {"null", "null"},
      {"number value", "{\"k\":1}"},
      {"null value", "{\"k\":null}"},
      {"object value", "{\"k\":{}}"},
      {"array value", "{\"k\":[\"v\"]}"},
      {"bool value", "{\"k\":\"v\",\"j\":true}"},
      // (A repeated key is CUDL_ERR_FILE_DUPLICATE: see DuplicateMetadata.)
  };
  for (const auto &c : cases) {
    SCOPED_TRACE(c.first);
    std::string msg = ExpectFails(
        CUDL_ERR_FILE_METADATA,
        Image(Obj({std::string("\"__metadata__\":") + c.second, Entry("a", "F32", "1", "0,4")}),
              Data(4)));
    EXPECT_NE(msg.find("__metadata__"), std::string::npos) << msg;
  }
  // Empty metadata and empty strings are fine.
  ExpectLoads(Image("{\"__metadata__\":{}}"));
  ExpectLoads(Image("{\"__metadata__\":{\"\":\"\"}}"));
}

// ========================================================== strict JSON ===

// The format's header is JSON (RFC 8259), and the reference reader rejects
// all of these; so does cudl's parser (Jansson, strict), so a file cudl
// loads is never one that other readers refuse.
TEST_F(MalformedTest, NonStandardJsonIsRejected) {
  const std::string e = Entry("a", "F32", "1", "0,4");
  const std::vector<Case> cases = {
      {"byte-order mark", Image("\xef\xbb\xbf" + Obj({e}), Data(4))},
      {"control character as whitespace", Image("{\x01" + e + "}", Data(4))},
      {"raw control character in a name", Image(Obj({Entry("a\x01", "F32", "1", "0,4")}), Data(4))},
      {"raw tab in a name", Image(Obj({Entry("a\tb", "F32", "1", "0,4")}), Data(4))},
      {"leading zero", Image(Obj({Entry("a", "F32", "01", "0,4")}), Data(4))},
      {"trailing decimal point", Image(Obj({Entry("a", "F32", "1.", "0,4")}), Data(4))},
      {"leading zero in an offset", Image(Obj({Entry("a", "F32", "1", "00,4")}), Data(4))},
      {"leading plus", Image(Obj({Entry("a", "F32", "+1", "0,4")}), Data(4))},
      {"leading decimal point", Image(Obj({Entry("a", "F32", ".5", "0,4")}), Data(4))},
      {"hexadecimal", Image(Obj({Entry("a", "F32", "0x1", "0,4")}), Data(4))},
      {"Infinity", Image(Obj({Entry("a", "F32", "Infinity", "0,4")}), Data(4))},
      {"raw newline in a metadata value", Image("{\"__metadata__\":{\"k\":\"a\nb\"}}")},
      {"byte-order mark after the object", Image(Obj({e}) + "\xef\xbb\xbf", Data(4))},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.what);
    ExpectFails(CUDL_ERR_FILE_JSON, c.image);
  }
}

// ====================================================== allocation faults ===

// Fail each host allocation of a load in turn: the load returns
// CUDL_ERR_OUT_OF_MEMORY with nothing leaked, then works again.
TEST_F(MalformedTest, EveryAllocationFailureIsCleanedUp) {
  const std::string image = ValidImage();
  const std::string path = WriteTemp(image);
  for (int from_file = 0; from_file < 2; ++from_file) {
    for (unsigned flags : {0u, static_cast<unsigned>(CUDL_SAFETENSORS_HEADER_ONLY)}) {
      SCOPED_TRACE(std::string(from_file ? "file" : "memory") +
                   (flags ? ", HEADER_ONLY" : ", flags 0"));
      // Count the allocations of a successful load.
      counting_.allocations = 0;
      counting_.fail_at = -1;
      cudl_safetensors *out = nullptr;
      ASSERT_STATUS(CUDL_OK, from_file ? cudl_safetensors_load(ctx_, path.c_str(), flags, &out)
                                       : cudl_safetensors_load_memory(ctx_, image.data(),
                                                                      image.size(), flags, &out));
      cudl_safetensors_destroy(out);
      const size_t needed = counting_.allocations;
      ASSERT_GE(needed, 2u);  // at least the header and the index
      for (size_t fail = 0; fail < needed; ++fail) {
        SCOPED_TRACE("allocation " + std::to_string(fail) + " of " + std::to_string(needed));
        counting_.allocations = 0;
        counting_.fail_at = static_cast<long>(fail);
        int sentinel = 0;
        out = reinterpret_cast<cudl_safetensors *>(&sentinel);
        cudl_status st = from_file
                             ? cudl_safetensors_load(ctx_, path.c_str(), flags, &out)
                             : cudl_safetensors_load_memory(ctx_, image.data(), image.size(),
                                                            flags, &out);
        counting_.fail_at = -1;
        EXPECT_STATUS(CUDL_ERR_OUT_OF_MEMORY, st);
        EXPECT_EQ(out, nullptr);
        EXPECT_TRUE(counting_.live.empty()) << counting_.live.size() << " blocks leaked";
        ExpectUsable();
      }
    }
  }
}

TEST_F(MalformedTest, EveryAllocationFailureOfASaveLeavesNothingBehind) {
  cudl_tensor *a = nullptr, *b = nullptr;
  const int64_t sa[1] = {3}, sb[2] = {2, 2};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, sa, &a));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_BF16, 2, sb, &b));
  cudl_named_tensor tensors[2] = {{"a", a}, {"b", b}};
  cudl_metadata_pair meta[2] = {{"k", "v"}, {"j", "w"}};
  const std::string path = dir_ + "/save.safetensors";
  const std::string old_bytes = ValidImage();
  {
    std::ofstream out(path, std::ios::binary);
    out.write(old_bytes.data(), static_cast<std::streamsize>(old_bytes.size()));
  }
  files_.push_back(path);
  counting_.allocations = 0;
  const std::string fresh = dir_ + "/fresh.safetensors";
  ASSERT_STATUS(CUDL_OK, cudl_safetensors_save(ctx_, fresh.c_str(), tensors, 2, meta, 2));
  unlink(fresh.c_str());
  const size_t needed = counting_.allocations;
  ASSERT_GE(needed, 1u);
  for (size_t fail = 0; fail < needed; ++fail) {
    SCOPED_TRACE("allocation " + std::to_string(fail) + " of " + std::to_string(needed));
    counting_.allocations = 0;
    counting_.fail_at = static_cast<long>(fail);
    cudl_status st = cudl_safetensors_save(ctx_, path.c_str(), tensors, 2, meta, 2);
    counting_.fail_at = -1;
    EXPECT_STATUS(CUDL_ERR_OUT_OF_MEMORY, st);
    std::ifstream in(path, std::ios::binary);
    std::string now((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    EXPECT_TRUE(now == old_bytes);
    EXPECT_EQ(TemporaryCount(dir_), 0u);
  }
  cudl_tensor_destroy(a);
  cudl_tensor_destroy(b);
}

}  // namespace
