// test_data.cpp - datasets and the batch loader (cudl/data.h).
//
//  * IDX and CIFAR-10 files written here (raw, and gzip through zlib here)
//    read back exactly, from files and from memory;
//  * every malformation gives its documented status and a message naming
//    the problem, leaves *out NULL and returns every byte to the context's
//    allocator: bad magic, type, ndim, count mismatch, labels out of range,
//    truncation at every length, trailing bytes, huge claims (which must not
//    cause a large allocation), gzip that is corrupt (every byte flipped in
//    turn), shorter or longer than the header says, followed by garbage;
//    allocation failure at every point;
//  * the real Fashion-MNIST files when installed: counts, balanced classes,
//    pixel range and mean, and every byte against an independent gzread;
//  * the loader against a reference written here from the layout documented
//    at cudl_loader_create (order, crop, flip, normalisation) bit for bit,
//    permutations, seeds, seek, partial batches, drop_last, the thread over
//    many epochs and destroyed mid-epoch, an error from the thread.
#include <gtest/gtest.h>
#include <zlib.h>

#include <dirent.h>
#include <ftw.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "core/philox.h"
#include "cudl/cudl.h"
#include "data/data_internal.h"
#include "test_util.h"

namespace {

using cudl_test::CountingAllocator;
using cudl_test::HasSubstr;

#define EXPECT_STATUS(expected, expr) \
  EXPECT_STREQ(cudl_status_name(expected), cudl_status_name(expr))
#define ASSERT_STATUS(expected, expr) \
  ASSERT_STREQ(cudl_status_name(expected), cudl_status_name(expr))

// ------------------------------------------------------------- bytes ---

std::string Be32(uint32_t v) {
  std::string out(4, '\0');
  for (int i = 0; i < 4; ++i) out[i] = static_cast<char>((v >> (24 - 8 * i)) & 0xFF);
  return out;
}

// Pixel bytes that differ from image to image and from place to place.
std::string Pixels(size_t n, unsigned salt = 0) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 37 + salt * 11 + i / 7) % 256);
  return out;
}

std::string IdxImages(uint32_t count, uint32_t rows, uint32_t cols, const std::string &pixels) {
  return std::string("\0\0\x08\x03", 4) + Be32(count) + Be32(rows) + Be32(cols) + pixels;
}

std::string IdxLabels(const std::string &labels) {
  return std::string("\0\0\x08\x01", 4) + Be32(static_cast<uint32_t>(labels.size())) + labels;
}

std::string Labels(size_t n, int classes = 10) {
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) out[i] = static_cast<char>((i * 7 + 3) % classes);
  return out;
}

// A gzip member of data, written by zlib here (level 0..9).
std::string Gzip(const std::string &data, int level = 6) {
  z_stream z;
  std::memset(&z, 0, sizeof z);
  EXPECT_EQ(deflateInit2(&z, level, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
  std::string out(deflateBound(&z, static_cast<uLong>(data.size())) + 64, '\0');
  z.next_in = reinterpret_cast<Bytef *>(const_cast<char *>(data.data()));
  z.avail_in = static_cast<uInt>(data.size());
  z.next_out = reinterpret_cast<Bytef *>(&out[0]);
  z.avail_out = static_cast<uInt>(out.size());
  EXPECT_EQ(deflate(&z, Z_FINISH), Z_STREAM_END);
  out.resize(z.total_out);
  deflateEnd(&z);
  return out;
}

struct Cifar {
  std::string bytes;
  std::vector<int> labels;
};

Cifar CifarFile(int records, unsigned salt) {
  Cifar c;
  for (int r = 0; r < records; ++r) {
    const int label = (r * 3 + static_cast<int>(salt)) % 10;
    c.labels.push_back(label);
    c.bytes.push_back(static_cast<char>(label));
    c.bytes += Pixels(3072, salt * 100 + static_cast<unsigned>(r));
  }
  return c;
}

// ------------------------------------------------------------- files ---

std::string TempBase() {
  const char *env = std::getenv("CUDL_TEST_TMPDIR");
  return (env != nullptr && env[0] != '\0') ? env : "/tmp";
}

int RemoveEntry(const char *path, const struct stat *, int, struct FTW *) {
  return std::remove(path);
}

// ----------------------------------------------------------- fixture ---

// A CPU context whose allocations are counted; every test must give all
// of them back, with the sizes it asked for.
class DataTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_));
    cudl_allocator a = counting_.hooks();
    ASSERT_STATUS(CUDL_OK, cudl_context_set_allocator(ctx_, &a));
    std::string tmpl = TempBase() + "/cudl_data_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
  }
  void TearDown() override {
    EXPECT_TRUE(counting_.live.empty()) << counting_.live.size() << " blocks leaked";
    EXPECT_EQ(counting_.size_mismatches, 0u);
    EXPECT_EQ(counting_.unknown_frees, 0u);
    EXPECT_EQ(counting_.bad_alignments, 0u);
    cudl_context_destroy(ctx_);
    nftw(dir_.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  }

  std::string Write(const std::string &name, const std::string &bytes) {
    std::string path = dir_ + "/" + name;
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    return path;
  }

  // The largest single allocation since the last call.
  size_t LargestRequest() {
    size_t largest = 0;
    for (const auto &r : counting_.requests) largest = std::max(largest, r.first);
    counting_.requests.clear();
    return largest;
  }

  // Load an IDX pair from files (or from memory); on failure check the
  // contract (out NULL, a fresh message) and return the message.
  cudl_status LoadIdx(const std::string &images, const std::string &labels, int classes,
                      bool from_memory, std::string *message, cudl_dataset **keep = nullptr) {
    Prime();
    int sentinel = 0;
    cudl_dataset *ds = reinterpret_cast<cudl_dataset *>(&sentinel);
    cudl_status st;
    if (from_memory) {
      // Exact-size heap copies, so that AddressSanitizer sees any overread.
      std::unique_ptr<char[]> im(new char[images.size() + 1]), lb(new char[labels.size() + 1]);
      std::memcpy(im.get(), images.data(), images.size());
      std::memcpy(lb.get(), labels.data(), labels.size());
      st = cudl__dataset_load_idx_memory(ctx_, im.get(), images.size(), lb.get(), labels.size(),
                                         classes, &ds);
    } else {
      const std::string ip = Write("images" + std::to_string(files_), images);
      const std::string lp = Write("labels" + std::to_string(files_++), labels);
      st = cudl_dataset_load_idx(ctx_, ip.c_str(), lp.c_str(), classes, &ds);
    }
    return Finish(st, ds, message, keep);
  }

  cudl_status LoadCifar(const std::vector<std::string> &files, bool from_memory,
                        std::string *message, cudl_dataset **keep = nullptr) {
    Prime();
    int sentinel = 0;
    cudl_dataset *ds = reinterpret_cast<cudl_dataset *>(&sentinel);
    cudl_status st;
    if (from_memory) {
      std::vector<std::unique_ptr<char[]>> copies;
      std::vector<const void *> data;
      std::vector<size_t> sizes;
      for (const std::string &f : files) {
        copies.emplace_back(new char[f.size() + 1]);
        std::memcpy(copies.back().get(), f.data(), f.size());
        data.push_back(copies.back().get());
        sizes.push_back(f.size());
      }
      st = cudl__dataset_load_cifar10_memory(ctx_, data.data(), sizes.data(),
                                             static_cast<int>(files.size()), &ds);
    } else {
      std::vector<std::string> paths;
      std::vector<const char *> c_paths;
      for (const std::string &f : files)
        paths.push_back(Write("cifar" + std::to_string(files_++) + ".bin", f));
      for (const std::string &p : paths) c_paths.push_back(p.c_str());
      st = cudl_dataset_load_cifar10(ctx_, c_paths.data(), static_cast<int>(c_paths.size()), &ds);
    }
    return Finish(st, ds, message, keep);
  }

  void Prime() {
    // An unrelated message, so that each failure must write its own.
    cudl_dataset *scratch = nullptr;
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                  cudl_dataset_load_idx(ctx_, nullptr, "x", 10, &scratch));
    primed_ = cudl_context_last_error(ctx_);
  }

  cudl_status Finish(cudl_status st, cudl_dataset *ds, std::string *message, cudl_dataset **keep) {
    if (st == CUDL_OK) {
      EXPECT_NE(ds, nullptr);
      if (keep != nullptr)
        *keep = ds;
      else
        cudl_dataset_destroy(ds);
    } else {
      EXPECT_EQ(ds, nullptr);
      const std::string m = cudl_context_last_error(ctx_);
      EXPECT_NE(m, primed_) << "no message of its own";
      if (message != nullptr) *message = m;
    }
    return st;
  }

  cudl_context *ctx_ = nullptr;
  CountingAllocator counting_;
  std::string dir_;
  std::string primed_;
  int files_ = 0;
};

// ------------------------------------------------------- round trips ---

void ExpectIdxContents(const cudl_dataset *ds, uint32_t count, uint32_t rows, uint32_t cols,
                       const std::string &pixels, const std::string &labels, int classes) {
  ASSERT_NE(ds, nullptr);
  EXPECT_EQ(cudl_dataset_count(ds), count);
  EXPECT_EQ(cudl_dataset_channels(ds), 1);
  EXPECT_EQ(cudl_dataset_height(ds), static_cast<int>(rows));
  EXPECT_EQ(cudl_dataset_width(ds), static_cast<int>(cols));
  EXPECT_EQ(cudl_dataset_classes(ds), classes);
  const size_t image = static_cast<size_t>(rows) * cols;
  for (uint32_t i = 0; i < count; ++i) {
    const uint8_t *p = cudl_dataset_image(ds, i);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(std::memcmp(p, pixels.data() + i * image, image), 0) << "image " << i;
    EXPECT_EQ(cudl_dataset_label(ds, i), static_cast<unsigned char>(labels[i])) << i;
  }
  EXPECT_EQ(cudl_dataset_image(ds, -1), nullptr);
  EXPECT_EQ(cudl_dataset_image(ds, count), nullptr);
  EXPECT_EQ(cudl_dataset_label(ds, -1), -1);
  EXPECT_EQ(cudl_dataset_label(ds, count), -1);
}

TEST_F(DataTest, IdxRawAndGzipReadBackExactly) {
  const uint32_t count = 7, rows = 5, cols = 3;
  const std::string pixels = Pixels(count * rows * cols), labels = Labels(count);
  const std::string im = IdxImages(count, rows, cols, pixels), lb = IdxLabels(labels);
  struct Variant {
    const char *name;
    std::string images, labels;
  } variants[] = {
      {"raw", im, lb},
      {"gzip", Gzip(im), Gzip(lb)},
      {"gzip level 0 (stored blocks)", Gzip(im, 0), Gzip(lb, 0)},
      {"gzip level 9", Gzip(im, 9), Gzip(lb, 9)},
      {"raw images, gzip labels", im, Gzip(lb)},
      {"two gzip members each", Gzip(im.substr(0, 20)) + Gzip(im.substr(20)),
       Gzip(lb.substr(0, 3)) + Gzip(lb.substr(3))},
      {"an empty gzip member at the end", Gzip(im) + Gzip(""), Gzip(lb) + Gzip("") + Gzip("")},
  };
  for (const Variant &v : variants) {
    for (bool memory : {false, true}) {
      SCOPED_TRACE(std::string(v.name) + (memory ? ", memory" : ", file"));
      cudl_dataset *ds = nullptr;
      std::string message;
      ASSERT_STATUS(CUDL_OK, LoadIdx(v.images, v.labels, 0, memory, &message, &ds)) << message;
      ExpectIdxContents(ds, count, rows, cols, pixels, labels, 10);
      cudl_dataset_destroy(ds);
    }
  }
}

TEST_F(DataTest, IdxClasses) {
  const std::string pixels = Pixels(3 * 4);
  std::string labels("\x00\xff\x07", 3);
  cudl_dataset *ds = nullptr;
  ASSERT_STATUS(CUDL_OK, LoadIdx(IdxImages(3, 2, 2, pixels), IdxLabels(labels), 256, false,
                                 nullptr, &ds));
  EXPECT_EQ(cudl_dataset_classes(ds), 256);
  EXPECT_EQ(cudl_dataset_label(ds, 1), 255);
  cudl_dataset_destroy(ds);
  std::string message;
  EXPECT_STATUS(CUDL_ERR_FILE_VALUE,
                LoadIdx(IdxImages(3, 2, 2, pixels), IdxLabels(labels), 0, false, &message));
  EXPECT_TRUE(HasSubstr(message, "label 1 is 255; there are 10 classes"));
  EXPECT_STATUS(CUDL_ERR_FILE_VALUE,
                LoadIdx(IdxImages(3, 2, 2, pixels), IdxLabels(std::string("\x00\x01\x07", 3)), 7,
                        true, &message));
  EXPECT_TRUE(HasSubstr(message, "label 2 is 7; there are 7 classes"));
  for (int bad : {-1, 257, 1000}) {
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                  LoadIdx(IdxImages(3, 2, 2, pixels), IdxLabels(labels), bad, false, &message));
    EXPECT_TRUE(HasSubstr(message, "classes is " + std::to_string(bad)));
  }
}

TEST_F(DataTest, CifarReadsBackExactly) {
  const Cifar a = CifarFile(3, 1), b = CifarFile(2, 2);
  for (bool memory : {false, true}) {
    SCOPED_TRACE(memory ? "memory" : "file");
    cudl_dataset *ds = nullptr;
    std::string message;
    ASSERT_STATUS(CUDL_OK, LoadCifar({a.bytes, b.bytes}, memory, &message, &ds)) << message;
    ASSERT_EQ(cudl_dataset_count(ds), 5);
    EXPECT_EQ(cudl_dataset_channels(ds), 3);
    EXPECT_EQ(cudl_dataset_height(ds), 32);
    EXPECT_EQ(cudl_dataset_width(ds), 32);
    EXPECT_EQ(cudl_dataset_classes(ds), 10);
    for (int i = 0; i < 5; ++i) {
      const Cifar &f = i < 3 ? a : b;
      const int r = i < 3 ? i : i - 3;
      EXPECT_EQ(cudl_dataset_label(ds, i), f.labels[r]);
      EXPECT_EQ(std::memcmp(cudl_dataset_image(ds, i), f.bytes.data() + r * 3073 + 1, 3072), 0);
    }
    cudl_dataset_destroy(ds);
  }
}

TEST_F(DataTest, FilesLargerThanTheReadBuffer) {
  // 64 KiB is the read buffer: raw reads past it go straight to the
  // destination, gzip input is refilled many times.
  const uint32_t count = 120;
  std::string pixels(count * 28 * 28, '\0');
  uint32_t state = 12345;  // noise, so that deflate cannot shrink it much
  for (char &p : pixels) {
    state = state * 1664525u + 1013904223u;
    p = static_cast<char>(state >> 24);
  }
  const std::string labels = Labels(count);
  const std::string im = IdxImages(count, 28, 28, pixels), lb = IdxLabels(labels);
  for (int level : {-1, 0, 6}) {
    SCOPED_TRACE("level " + std::to_string(level));
    cudl_dataset *ds = nullptr;
    const std::string images = level < 0 ? im : Gzip(im, level);
    ASSERT_GT(images.size(), size_t{64} << 10);
    ASSERT_STATUS(CUDL_OK, LoadIdx(images, level < 0 ? lb : Gzip(lb, level), 0, false, nullptr, &ds));
    ExpectIdxContents(ds, count, 28, 28, pixels, labels, 10);
    cudl_dataset_destroy(ds);
  }
  // Eleven CIFAR-10 files (more than fit the reader's list on the stack),
  // one of them larger than the buffer.
  std::vector<Cifar> files;
  std::vector<std::string> bytes;
  for (unsigned f = 0; f < 11; ++f) {
    files.push_back(CifarFile(f == 4 ? 30 : 1 + static_cast<int>(f % 3), f));
    bytes.push_back(files.back().bytes);
  }
  for (bool memory : {false, true}) {
    cudl_dataset *ds = nullptr;
    ASSERT_STATUS(CUDL_OK, LoadCifar(bytes, memory, nullptr, &ds));
    int64_t i = 0;
    for (const Cifar &f : files)
      for (size_t r = 0; r < f.labels.size(); ++r, ++i) {
        ASSERT_EQ(cudl_dataset_label(ds, i), f.labels[r]);
        ASSERT_EQ(std::memcmp(cudl_dataset_image(ds, i), f.bytes.data() + r * 3073 + 1, 3072), 0);
      }
    EXPECT_EQ(cudl_dataset_count(ds), i);
    cudl_dataset_destroy(ds);
  }
}

// ------------------------------------------------------ malformations ---

struct IdxCase {
  const char *name;
  std::string images, labels;
  int classes;
  cudl_status status;
  const char *message;
};

TEST_F(DataTest, IdxMalformations) {
  const std::string px = Pixels(6 * 4 * 5), lb = Labels(6);
  const std::string im = IdxImages(6, 4, 5, px), lab = IdxLabels(lb);
  const std::string hdr_lab = std::string("\0\0\x08\x01", 4);
  std::string crc_bad = Gzip(im), size_bad = Gzip(im), method_bad = Gzip(im);
  crc_bad[crc_bad.size() - 8] ^= 0x01;
  size_bad[size_bad.size() - 1] ^= 0x40;
  method_bad[2] = 7;
  const std::vector<IdxCase> cases = {
      {"bad magic", std::string("\x01\x00\x08\x03", 4) + im.substr(4), lab, 0,
       CUDL_ERR_FILE_FORMAT, "is not an IDX file: magic number 0x01000803"},
      {"text", "P5 28 28 255\n" + px, lab, 0, CUDL_ERR_FILE_FORMAT, "is not an IDX file"},
      {"float elements", std::string("\0\0\x0d\x03", 4) + im.substr(4), lab, 0,
       CUDL_ERR_FILE_FORMAT, "elements of type 0x0d"},
      {"two dimensions", std::string("\0\0\x08\x02", 4) + Be32(6) + Be32(20) + px, lab, 0,
       CUDL_ERR_FILE_FORMAT, "has 2 dimensions; an IDX image file has 3"},
      {"four dimensions", std::string("\0\0\x08\x04", 4) + Be32(6) + Be32(4) + Be32(5) + Be32(1) + px,
       lab, 0, CUDL_ERR_FILE_FORMAT, "has 4 dimensions"},
      {"files swapped", lab, im, 0, CUDL_ERR_FILE_FORMAT, "has 1 dimensions; an IDX image file"},
      {"labels with two dimensions", im, std::string("\0\0\x08\x02", 4) + Be32(6) + Be32(1) + lb,
       0, CUDL_ERR_FILE_FORMAT, "an IDX label file has 1"},
      {"fewer labels", im, IdxLabels(lb.substr(0, 5)), 0, CUDL_ERR_FILE_SHAPE,
       "holds 5 labels but"},
      {"more labels", im, IdxLabels(lb + "\x01"), 0, CUDL_ERR_FILE_SHAPE, "holds 7 labels but"},
      {"label 10", im, IdxLabels(lb.substr(0, 4) + "\x0a" + lb.substr(5)), 0, CUDL_ERR_FILE_VALUE,
       "label 4 is 10; there are 10 classes"},
      {"no images", IdxImages(0, 4, 5, ""), hdr_lab + Be32(0), 0, CUDL_ERR_FILE_SHAPE,
       "0 images; a dataset holds 1 to 2147483647"},
      {"no rows", IdxImages(6, 0, 5, ""), lab, 0, CUDL_ERR_FILE_SHAPE, "images of 0 x 5 pixels"},
      {"no columns", IdxImages(6, 4, 0, ""), lab, 0, CUDL_ERR_FILE_SHAPE, "images of 4 x 0"},
      {"2^32 - 1 images", IdxImages(0xFFFFFFFFu, 28, 28, px), lab, 0, CUDL_ERR_FILE_SHAPE,
       "4294967295 images"},
      {"side 40000", IdxImages(6, 40000, 5, px), lab, 0, CUDL_ERR_FILE_SHAPE,
       "each side must be 1 to 32768"},
      {"side 2^32 - 1", IdxImages(6, 0xFFFFFFFFu, 0xFFFFFFFFu, px), lab, 0, CUDL_ERR_FILE_SHAPE,
       "each side must be 1 to 32768"},
      {"image of 2^28 bytes", IdxImages(1, 16384, 16384, px), lab, 0, CUDL_ERR_FILE_SHAPE,
       "bytes per image, above the limit"},
      {"2^31 - 1 images of 28 x 28", IdxImages(0x7FFFFFFFu, 28, 28, px), lab, 0,
       CUDL_ERR_FILE_SHAPE, "bytes of pixels"},
      {"a million images in a small file", IdxImages(1000000, 28, 28, px), lab, 0,
       CUDL_ERR_FILE_TRUNCATED, "its header describes 784000016"},
      {"a million images in a small gzip file", Gzip(IdxImages(1000000, 28, 28, px)), lab, 0,
       CUDL_ERR_FILE_TRUNCATED, "more than its"},
      {"labels cut short", im, hdr_lab + Be32(6) + lb.substr(0, 2), 0,
       CUDL_ERR_FILE_TRUNCATED, "is 10 bytes but its header describes 14"},
      {"trailing byte after the pixels", im + "x", lab, 0, CUDL_ERR_FILE_TRAILING_DATA,
       "1 bytes follow the 120 bytes of pixels"},
      {"trailing bytes after the labels", im, lab + "abc", 0, CUDL_ERR_FILE_TRAILING_DATA,
       "3 bytes follow the 6 bytes of labels"},
      {"gzip shorter than its header says", Gzip(im.substr(0, im.size() - 3)), lab, 0,
       CUDL_ERR_FILE_TRUNCATED, "ends after 133 decompressed bytes, 117 bytes into the pixels"},
      {"gzip longer than its header says", Gzip(im + "more"), lab, 0,
       CUDL_ERR_FILE_TRAILING_DATA, "decompresses to more than the 136 bytes"},
      {"gzip labels longer", im, Gzip(lab + "z"), 0, CUDL_ERR_FILE_TRAILING_DATA,
       "decompresses to more than the 14 bytes"},
      {"gzip, then garbage", Gzip(im) + "garbage", lab, 0, CUDL_ERR_FILE_TRAILING_DATA,
       "7 bytes that are not gzip data follow"},
      {"gzip, then one zero byte", Gzip(im) + std::string(1, '\0'), lab, 0,
       CUDL_ERR_FILE_TRAILING_DATA, "not gzip data"},
      {"gzip, then a member with more data", Gzip(im) + Gzip("x"), lab, 0,
       CUDL_ERR_FILE_TRAILING_DATA, "decompresses to more than"},
      {"gzip with a wrong CRC", crc_bad, lab, 0, CUDL_ERR_FILE_COMPRESSION,
       "incorrect data check"},
      {"gzip with a wrong length", size_bad, lab, 0, CUDL_ERR_FILE_COMPRESSION,
       "incorrect length check"},
      {"gzip with an unknown method", method_bad, lab, 0, CUDL_ERR_FILE_COMPRESSION,
       "unknown compression method"},
      {"gzip cut inside its trailer", Gzip(im).substr(0, Gzip(im).size() - 2), lab, 0,
       CUDL_ERR_FILE_TRUNCATED, "the stream or its trailer is incomplete"},
      {"gzip magic only", std::string("\x1f\x8b", 2), lab, 0, CUDL_ERR_FILE_TRUNCATED,
       "is cut short after 0 decompressed bytes"},
      {"empty images file", "", lab, 0, CUDL_ERR_FILE_TRUNCATED,
       "ends at byte 0, 0 bytes into the IDX magic number, which needs 4"},
      {"empty labels file", im, "", 0, CUDL_ERR_FILE_TRUNCATED, "ends at byte 0"},
  };
  for (const IdxCase &c : cases) {
    for (bool memory : {false, true}) {
      SCOPED_TRACE(std::string(c.name) + (memory ? ", memory" : ", file"));
      std::string message;
      LargestRequest();
      EXPECT_STATUS(c.status, LoadIdx(c.images, c.labels, c.classes, memory, &message));
      EXPECT_TRUE(HasSubstr(message, c.message));
      EXPECT_TRUE(HasSubstr(message, "cudl_dataset_load_idx: "));
      EXPECT_TRUE(HasSubstr(message, memory ? "in memory>" : dir_)) << "names the file";
      // Nothing was sized by a claim the file cannot back: at most a read
      // buffer, zlib's window or this small dataset.
      EXPECT_LE(LargestRequest(), size_t{64} << 10);
    }
  }
  // The context is still usable.
  EXPECT_STATUS(CUDL_OK, LoadIdx(im, lab, 0, false, nullptr));
}

TEST_F(DataTest, IdxTruncatedAtEveryLength) {
  const std::string px = Pixels(3 * 4 * 2), lb = Labels(3);
  const std::string im = IdxImages(3, 4, 2, px), lab = IdxLabels(lb);
  const std::string gim = Gzip(im), glab = Gzip(lab);
  struct Whole {
    const char *name;
    std::string images, labels;
    bool cut_labels;
  } wholes[] = {{"raw images", im, lab, false},
                {"raw labels", im, lab, true},
                {"gzip images", gim, glab, false},
                {"gzip labels", gim, glab, true}};
  for (const Whole &w : wholes) {
    const std::string &file = w.cut_labels ? w.labels : w.images;
    for (size_t cut = 0; cut < file.size(); ++cut) {
      SCOPED_TRACE(std::string(w.name) + " cut to " + std::to_string(cut));
      const std::string part = file.substr(0, cut);
      std::string message;
      // Memory for the exact-size heap copies; a few lengths from files.
      const bool memory = cut % 5 != 0;
      const cudl_status st = w.cut_labels ? LoadIdx(w.images, part, 0, memory, &message)
                                          : LoadIdx(part, w.labels, 0, memory, &message);
      EXPECT_STATUS(CUDL_ERR_FILE_TRUNCATED, st) << message;
    }
  }
}

TEST_F(DataTest, GzipWithEveryByteFlipped) {
  // A flipped byte may land in a field gzip does not check (the FTEXT flag,
  // the time stamp, XFL, the OS byte, padding bits after the last deflate
  // code); then the data must still be exact.
  // Anywhere else it is an error with a file status, never a crash or wrong
  // data. The CRC-32 is only known at the end of the stream, after the IDX
  // header was used, so damage in the deflate data can also surface as a
  // bad header (format, shape) or a bad label.
  const std::string px = Pixels(4 * 3 * 3), lb = Labels(4);
  const std::string im = IdxImages(4, 3, 3, px), lab = IdxLabels(lb);
  const std::string gz = Gzip(im, 9);
  size_t accepted = 0;
  for (size_t i = 0; i < gz.size(); ++i) {
    for (unsigned char mask : {0x01, 0x80, 0xFF}) {
      SCOPED_TRACE("byte " + std::to_string(i) + " ^ " + std::to_string(mask));
      std::string bad = gz;
      bad[i] = static_cast<char>(bad[i] ^ mask);
      std::string message;
      cudl_dataset *ds = nullptr;
      const cudl_status st = LoadIdx(bad, lab, 0, true, &message, &ds);
      if (st == CUDL_OK) {
        ++accepted;
        ExpectIdxContents(ds, 4, 3, 3, px, lb, 10);
        cudl_dataset_destroy(ds);
        // FLG's FTEXT bit, MTIME, XFL, OS, or the unused bits after the
        // last deflate code: nothing that changes the data.
        EXPECT_TRUE((i >= 3 && i < 10) || i == gz.size() - 9) << i;
        continue;
      }
      EXPECT_TRUE(st == CUDL_ERR_FILE_COMPRESSION || st == CUDL_ERR_FILE_TRUNCATED ||
                  st == CUDL_ERR_FILE_TRAILING_DATA || st == CUDL_ERR_FILE_FORMAT ||
                  st == CUDL_ERR_FILE_SHAPE || st == CUDL_ERR_FILE_VALUE)
          << cudl_status_name(st) << ": " << message;
      if (i < 2) {
        EXPECT_STATUS(CUDL_ERR_FILE_FORMAT, st) << "no longer gzip: a bad IDX magic";
      }
      if (i >= gz.size() - 8) {
        EXPECT_STATUS(CUDL_ERR_FILE_COMPRESSION, st) << "the trailer";
      }
    }
  }
  EXPECT_GT(accepted, 0u);
}

TEST_F(DataTest, GzipBombAllocatesOnlyWhatTheHeaderClaims) {
  // 64 MiB of zeros compress to ~64 KiB; the header claims 10 images of
  // 28 x 28. The reader must stop one byte past the claim.
  const std::string zeros(size_t{64} << 20, '\0');
  const std::string bomb = Gzip(IdxImages(10, 28, 28, "") + zeros, 9);
  ASSERT_LT(bomb.size(), size_t{1} << 20);
  std::string message;
  LargestRequest();
  EXPECT_STATUS(CUDL_ERR_FILE_TRAILING_DATA,
                LoadIdx(bomb, IdxLabels(Labels(10)), 0, false, &message));
  EXPECT_TRUE(HasSubstr(message, "decompresses to more than the 7856 bytes"));
  EXPECT_LE(LargestRequest(), size_t{64} << 10);
  // A claim the compressed size cannot back is refused before allocating.
  const std::string small = Gzip(IdxImages(200000, 28, 28, "") + std::string(1000, '\0'));
  EXPECT_STATUS(CUDL_ERR_FILE_TRUNCATED,
                LoadIdx(small, IdxLabels(Labels(10)), 0, false, &message));
  EXPECT_TRUE(HasSubstr(message, "deflate expands at most 1032:1"));
  EXPECT_LE(LargestRequest(), size_t{64} << 10);
}

TEST_F(DataTest, CifarMalformations) {
  const Cifar a = CifarFile(2, 3);
  std::string label10 = a.bytes;
  label10[3073] = 10;
  struct Case {
    const char *name;
    std::vector<std::string> files;
    cudl_status status;
    const char *message;
  } cases[] = {
      {"empty", {""}, CUDL_ERR_FILE_TRUNCATED, "is empty"},
      {"a partial record", {a.bytes.substr(0, 3073 + 100)}, CUDL_ERR_FILE_TRUNCATED,
       "is 3173 bytes, not a whole number of 3073-byte CIFAR-10 records (the last one has 100"},
      {"a byte too many", {a.bytes + "x"}, CUDL_ERR_FILE_TRUNCATED, "not a whole number"},
      {"the second file empty", {a.bytes, ""}, CUDL_ERR_FILE_TRUNCATED, "is empty"},
      {"label 10", {label10}, CUDL_ERR_FILE_VALUE, "record 1 has label 10"},
      {"label 255 in the second file", {a.bytes, std::string(1, '\xff') + Pixels(3072)},
       CUDL_ERR_FILE_VALUE, "record 0 has label 255"},
      {"gzip", {Gzip(a.bytes)}, CUDL_ERR_FILE_FORMAT, "is gzip-compressed"},
  };
  for (const Case &c : cases) {
    for (bool memory : {false, true}) {
      SCOPED_TRACE(std::string(c.name) + (memory ? ", memory" : ", file"));
      std::string message;
      EXPECT_STATUS(c.status, LoadCifar(c.files, memory, &message));
      EXPECT_TRUE(HasSubstr(message, c.message));
      EXPECT_TRUE(HasSubstr(message, "cudl_dataset_load_cifar10: "));
    }
  }
  // Every length: whole records read, anything else is truncated.
  for (size_t cut = 0; cut <= a.bytes.size(); ++cut) {
    SCOPED_TRACE("cut to " + std::to_string(cut));
    std::string message;
    const cudl_status st = LoadCifar({a.bytes.substr(0, cut)}, cut % 7 != 0, &message);
    if (cut > 0 && cut % 3073 == 0)
      EXPECT_STATUS(CUDL_OK, st) << message;
    else
      EXPECT_STATUS(CUDL_ERR_FILE_TRUNCATED, st) << message;
  }
}

TEST_F(DataTest, ArgumentsAndFiles) {
  cudl_dataset *ds = nullptr;
  const std::string im = Write("im", IdxImages(2, 2, 2, Pixels(8)));
  const std::string lb = Write("lb", IdxLabels(Labels(2)));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_idx(nullptr, im.c_str(), lb.c_str(), 0, &ds));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_idx(ctx_, im.c_str(), lb.c_str(), 0, nullptr));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "out is NULL"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_idx(ctx_, im.c_str(), nullptr, 0, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "labels_path is NULL"));
  EXPECT_EQ(ds, nullptr);

  const std::string missing = dir_ + "/no-such-file";
  EXPECT_STATUS(CUDL_ERR_IO, cudl_dataset_load_idx(ctx_, missing.c_str(), lb.c_str(), 0, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "cannot open '" + missing + "'"));
  EXPECT_STATUS(CUDL_ERR_IO, cudl_dataset_load_idx(ctx_, im.c_str(), dir_.c_str(), 0, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "is not a readable regular file"));

  const char *paths[] = {im.c_str(), nullptr};
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_cifar10(ctx_, nullptr, 1, &ds));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_cifar10(ctx_, paths, 0, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "count is 0"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_cifar10(ctx_, paths, 2, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "paths[1] is NULL"));
  const char *missing_paths[] = {missing.c_str()};
  EXPECT_STATUS(CUDL_ERR_IO, cudl_dataset_load_cifar10(ctx_, missing_paths, 1, &ds));
  EXPECT_EQ(ds, nullptr);

  // Queries on NULL.
  EXPECT_EQ(cudl_dataset_count(nullptr), 0);
  EXPECT_EQ(cudl_dataset_channels(nullptr), 0);
  EXPECT_EQ(cudl_dataset_height(nullptr), 0);
  EXPECT_EQ(cudl_dataset_width(nullptr), 0);
  EXPECT_EQ(cudl_dataset_classes(nullptr), 0);
  EXPECT_EQ(cudl_dataset_image(nullptr, 0), nullptr);
  EXPECT_EQ(cudl_dataset_label(nullptr, 0), -1);
  cudl_dataset_destroy(nullptr);
  float mean[4], std_[4];
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_channel_stats(nullptr, mean, std_));
}

TEST_F(DataTest, LoadByName) {
  // Fashion-MNIST's file names, gzip; MNIST's, raw; CIFAR-10's batches.
  const std::string fm = dir_ + "/fm", mn = dir_ + "/mn", cf = dir_ + "/cf";
  ASSERT_EQ(mkdir(fm.c_str(), 0700), 0);
  ASSERT_EQ(mkdir(mn.c_str(), 0700), 0);
  ASSERT_EQ(mkdir(cf.c_str(), 0700), 0);
  Write("fm/train-images-idx3-ubyte.gz", Gzip(IdxImages(5, 2, 3, Pixels(30, 1))));
  Write("fm/train-labels-idx1-ubyte.gz", Gzip(IdxLabels(Labels(5))));
  Write("fm/t10k-images-idx3-ubyte.gz", Gzip(IdxImages(2, 2, 3, Pixels(12, 2))));
  Write("fm/t10k-labels-idx1-ubyte.gz", Gzip(IdxLabels(Labels(2))));
  Write("mn/train-images-idx3-ubyte", IdxImages(4, 2, 2, Pixels(16, 3)));
  Write("mn/train-labels-idx1-ubyte", IdxLabels(Labels(4)));
  // Both: the plain file wins.
  Write("mn/train-images-idx3-ubyte.gz", "not read");
  for (int i = 1; i <= 5; ++i)
    Write("cf/data_batch_" + std::to_string(i) + ".bin", CifarFile(i, static_cast<unsigned>(i)).bytes);
  Write("cf/test_batch.bin", CifarFile(3, 9).bytes);

  struct Case {
    const char *name;
    std::string dir;
    int train;
    int64_t count;
    int channels, height;
    std::vector<std::string> sources;  // the files read, in order
  } cases[] = {
      {"fashion-mnist",
       fm,
       1,
       5,
       1,
       2,
       {fm + "/train-images-idx3-ubyte.gz", fm + "/train-labels-idx1-ubyte.gz"}},
      {"fashion-mnist",
       fm,
       0,
       2,
       1,
       2,
       {fm + "/t10k-images-idx3-ubyte.gz", fm + "/t10k-labels-idx1-ubyte.gz"}},
      {"mnist", mn, 1, 4, 1, 2, {mn + "/train-images-idx3-ubyte", mn + "/train-labels-idx1-ubyte"}},
      {"cifar10",
       cf,
       1,
       15,
       3,
       32,
       {cf + "/data_batch_1.bin", cf + "/data_batch_2.bin", cf + "/data_batch_3.bin",
        cf + "/data_batch_4.bin", cf + "/data_batch_5.bin"}},
      {"cifar10", cf, 0, 3, 3, 32, {cf + "/test_batch.bin"}}};
  for (const Case &c : cases) {
    SCOPED_TRACE(std::string(c.name) + (c.train ? " train" : " test"));
    cudl_dataset *ds = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_dataset_load(ctx_, c.name, c.dir.c_str(), c.train, &ds))
        << cudl_context_last_error(ctx_);
    EXPECT_EQ(cudl_dataset_count(ds), c.count);
    EXPECT_EQ(cudl_dataset_channels(ds), c.channels);
    EXPECT_EQ(cudl_dataset_height(ds), c.height);
    for (size_t i = 0; i < c.sources.size(); ++i) {
      const char *source = cudl_dataset_source(ds, static_cast<int>(i));
      ASSERT_NE(source, nullptr) << i;
      EXPECT_EQ(std::string(source), c.sources[i]);
    }
    EXPECT_EQ(cudl_dataset_source(ds, static_cast<int>(c.sources.size())), nullptr);
    EXPECT_EQ(cudl_dataset_source(ds, -1), nullptr);
    cudl_dataset_destroy(ds);
  }
  EXPECT_EQ(cudl_dataset_source(nullptr, 0), nullptr);
  cudl_dataset *ds = nullptr;
  EXPECT_STATUS(CUDL_ERR_IO, cudl_dataset_load(ctx_, "mnist", mn.c_str(), 0, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "t10k-images-idx3-ubyte"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load(ctx_, "imagenet", fm.c_str(), 1, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "unknown dataset 'imagenet'"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load(ctx_, "mnist", nullptr, 1, &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "no default directory for 'mnist'"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load(ctx_, nullptr, fm.c_str(), 1, &ds));
  EXPECT_EQ(ds, nullptr);
}

TEST_F(DataTest, AllocationFailureAtEveryPoint) {
  const std::string im = IdxImages(9, 4, 4, Pixels(144)), lb = IdxLabels(Labels(9));
  const Cifar cifar = CifarFile(2, 5);
  const std::string pixels = Pixels(2 * 3 * 4 * 4), labels = Labels(2);
  struct Job {
    const char *name;
    std::function<cudl_status(cudl_context *, cudl_dataset **)> run;
  };
  const std::string raw_i = Write("raw_i", im), raw_l = Write("raw_l", lb);
  const std::string gz_i = Write("gz_i", Gzip(im)), gz_l = Write("gz_l", Gzip(lb));
  const std::string cf = Write("cf", cifar.bytes);
  const std::vector<Job> jobs = {
      {"idx raw",
       [&](cudl_context *c, cudl_dataset **d) {
         return cudl_dataset_load_idx(c, raw_i.c_str(), raw_l.c_str(), 0, d);
       }},
      {"idx gzip",
       [&](cudl_context *c, cudl_dataset **d) {
         return cudl_dataset_load_idx(c, gz_i.c_str(), gz_l.c_str(), 0, d);
       }},
      {"idx gzip from memory",
       [&](cudl_context *c, cudl_dataset **d) {
         const std::string g = Gzip(im), h = Gzip(lb);
         return cudl__dataset_load_idx_memory(c, g.data(), g.size(), h.data(), h.size(), 0, d);
       }},
      {"cifar",
       [&](cudl_context *c, cudl_dataset **d) {
         const char *paths[] = {cf.c_str(), cf.c_str()};
         return cudl_dataset_load_cifar10(c, paths, 2, d);
       }},
      {"cifar, nine files",
       [&](cudl_context *c, cudl_dataset **d) {
         std::vector<const char *> paths(9, cf.c_str());
         return cudl_dataset_load_cifar10(c, paths.data(), 9, d);
       }},
      {"create",
       [&](cudl_context *c, cudl_dataset **d) {
         return cudl_dataset_create(c, 2, 3, 4, 4, 10,
                                    reinterpret_cast<const uint8_t *>(pixels.data()),
                                    reinterpret_cast<const uint8_t *>(labels.data()), d);
       }},
  };
  for (const Job &job : jobs) {
    size_t k = 1;
    for (;; ++k) {
      SCOPED_TRACE(std::string(job.name) + ": allocation " + std::to_string(k) + " fails");
      CountingAllocator counting;
      counting.fail_at = k;
      cudl_context *ctx = nullptr;
      ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx));
      cudl_allocator hooks = counting.hooks();
      ASSERT_STATUS(CUDL_OK, cudl_context_set_allocator(ctx, &hooks));
      cudl_dataset *ds = nullptr;
      const cudl_status st = job.run(ctx, &ds);
      if (counting.failed == 0) {
        ASSERT_STATUS(CUDL_OK, st);
        cudl_dataset_destroy(ds);
      } else {
        EXPECT_STATUS(CUDL_ERR_OUT_OF_MEMORY, st);
        EXPECT_EQ(ds, nullptr);
        EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx), "allocate"));
      }
      EXPECT_TRUE(counting.live.empty()) << counting.live.size() << " blocks leaked";
      EXPECT_EQ(counting.size_mismatches, 0u);
      cudl_context_destroy(ctx);
      if (counting.failed == 0) break;
    }
    EXPECT_GE(k, 3u) << job.name << ": allocations counted";
  }
}

TEST_F(DataTest, CreateAndChannelStats) {
  // Three channels with different contents; the statistics against a
  // two-pass double computation here.
  const int n = 5, c = 3, h = 4, w = 6;
  std::vector<uint8_t> pixels(static_cast<size_t>(n * c * h * w));
  for (size_t i = 0; i < pixels.size(); ++i) {
    const size_t ch = (i / (h * w)) % c;
    pixels[i] = static_cast<uint8_t>(ch == 0 ? 0 : ch == 1 ? (i * 13) % 256 : 200 + i % 56);
  }
  std::vector<uint8_t> labels = {0, 1, 2, 1, 0};
  cudl_dataset *ds = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_dataset_create(ctx_, n, c, h, w, 3, pixels.data(), labels.data(), &ds));
  EXPECT_EQ(cudl_dataset_source(ds, 0), nullptr) << "made from memory: no file";
  float mean[3], std_[3];
  ASSERT_STATUS(CUDL_OK, cudl_dataset_channel_stats(ds, mean, std_));
  for (int ch = 0; ch < c; ++ch) {
    double sum = 0, sq = 0, count = 0;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < h * w; ++p) {
        sum += cudl_dataset_image(ds, i)[ch * h * w + p] / 255.0;
        count += 1;
      }
    const double m = sum / count;
    for (int i = 0; i < n; ++i)
      for (int p = 0; p < h * w; ++p) {
        const double d = cudl_dataset_image(ds, i)[ch * h * w + p] / 255.0 - m;
        sq += d * d;
      }
    EXPECT_NEAR(mean[ch], m, 1e-6 * std::max(1.0, m)) << ch;
    EXPECT_NEAR(std_[ch], std::sqrt(sq / count), 1e-6) << ch;
  }
  EXPECT_EQ(mean[0], 0.0f);
  EXPECT_EQ(std_[0], 0.0f);
  cudl_dataset_destroy(ds);

  // Bad arguments.
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_dataset_create(ctx_, n, c, h, w, 2, pixels.data(), labels.data(), &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "labels[2] is 2; there are 2 classes"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_dataset_create(ctx_, n, 5, h, w, 3, pixels.data(), labels.data(), &ds));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "5 channels"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_dataset_create(ctx_, 0, c, h, w, 3, pixels.data(), labels.data(), &ds));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_dataset_create(ctx_, n, c, h, w, 0, pixels.data(), labels.data(), &ds));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_dataset_create(ctx_, n, c, h, w, 3, nullptr, labels.data(), &ds));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                cudl_dataset_create(ctx_, -1, c, h, w, 3, pixels.data(), labels.data(), &ds));
  EXPECT_EQ(ds, nullptr);
}

// ----------------------------------------------------- Fashion-MNIST ---

const char kFashionDir[] = "/usr/share/datasets/fashion-mnist";

// Every byte of a gzip file through zlib's own gzread: a reader independent
// of cudl's inflate loop.
std::string GzRead(const std::string &path) {
  std::string out;
  gzFile f = gzopen(path.c_str(), "rb");
  if (f == nullptr) return out;
  char buf[1 << 16];
  int got;
  while ((got = gzread(f, buf, sizeof buf)) > 0) out.append(buf, static_cast<size_t>(got));
  gzclose(f);
  return out;
}

TEST_F(DataTest, RealFashionMnist) {
  const std::string train_images = std::string(kFashionDir) + "/train-images-idx3-ubyte.gz";
  if (access(train_images.c_str(), R_OK) != 0)
    GTEST_SKIP() << train_images << " is not installed (Debian package dataset-fashion-mnist)";
  struct Split {
    int train;
    int64_t count;
    const char *prefix;
  } splits[] = {{1, 60000, "train"}, {0, 10000, "t10k"}};
  for (const Split &s : splits) {
    SCOPED_TRACE(s.prefix);
    cudl_dataset *ds = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_dataset_load(ctx_, "fashion-mnist", nullptr, s.train, &ds))
        << cudl_context_last_error(ctx_);
    ASSERT_EQ(cudl_dataset_count(ds), s.count);
    EXPECT_EQ(cudl_dataset_channels(ds), 1);
    EXPECT_EQ(cudl_dataset_height(ds), 28);
    EXPECT_EQ(cudl_dataset_width(ds), 28);
    EXPECT_EQ(cudl_dataset_classes(ds), 10);
    // Balanced classes: 6000 / 1000 of each of the ten.
    std::vector<int64_t> histogram(10, 0);
    for (int64_t i = 0; i < s.count; ++i) {
      const int label = cudl_dataset_label(ds, i);
      ASSERT_GE(label, 0);
      ASSERT_LT(label, 10);
      ++histogram[static_cast<size_t>(label)];
    }
    for (int c = 0; c < 10; ++c) EXPECT_EQ(histogram[static_cast<size_t>(c)], s.count / 10) << c;
    // Pixels: the full range occurs; the mean is Fashion-MNIST's 0.286
    // (train) and the deviation 0.353 (both published with the data set's
    // usual normalisation constants).
    int lo = 255, hi = 0;
    double sum = 0;
    for (int64_t i = 0; i < s.count; ++i) {
      const uint8_t *p = cudl_dataset_image(ds, i);
      for (int k = 0; k < 784; ++k) {
        lo = std::min(lo, static_cast<int>(p[k]));
        hi = std::max(hi, static_cast<int>(p[k]));
        sum += p[k];
      }
    }
    EXPECT_EQ(lo, 0);
    EXPECT_EQ(hi, 255);
    const double mean = sum / (255.0 * 784.0 * static_cast<double>(s.count));
    float stat_mean, stat_std;
    ASSERT_STATUS(CUDL_OK, cudl_dataset_channel_stats(ds, &stat_mean, &stat_std));
    EXPECT_NEAR(stat_mean, mean, 1e-6);
    if (s.train) {
      EXPECT_NEAR(mean, 0.286, 0.01);
      EXPECT_NEAR(stat_std, 0.353, 0.01);
    }
    // Every byte equals what zlib's gzread gives for the same files.
    const std::string dir(kFashionDir);
    const std::string raw_images = GzRead(dir + "/" + s.prefix + "-images-idx3-ubyte.gz");
    const std::string raw_labels = GzRead(dir + "/" + s.prefix + "-labels-idx1-ubyte.gz");
    ASSERT_EQ(raw_images.size(), 16 + static_cast<size_t>(s.count) * 784);
    ASSERT_EQ(raw_labels.size(), 8 + static_cast<size_t>(s.count));
    EXPECT_EQ(std::memcmp(cudl_dataset_image(ds, 0), raw_images.data() + 16,
                          static_cast<size_t>(s.count) * 784),
              0);
    for (int64_t i = 0; i < s.count; ++i)
      ASSERT_EQ(cudl_dataset_label(ds, i), static_cast<unsigned char>(raw_labels[8 + i])) << i;
    cudl_dataset_destroy(ds);
  }
}

// ------------------------------------------------------------ loader ---

// The Philox block of the documented layout, built here.
cudl_philox_block DataBlock(uint64_t seed, uint32_t index, uint32_t stream, int64_t epoch) {
  cudl_philox_block c;
  c.v[0] = index;
  c.v[1] = stream;
  c.v[2] = static_cast<uint32_t>(static_cast<uint64_t>(epoch) & 0xFFFFFFFFu);
  c.v[3] = static_cast<uint32_t>(static_cast<uint64_t>(epoch) >> 32);
  return cudl_philox4x32_10(c, static_cast<uint32_t>(seed & 0xFFFFFFFFu),
                            static_cast<uint32_t>(seed >> 32));
}

std::vector<uint32_t> ReferenceOrder(int64_t n, bool shuffle, uint64_t seed, int64_t epoch) {
  std::vector<uint32_t> perm(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) perm[static_cast<size_t>(i)] = static_cast<uint32_t>(i);
  if (!shuffle) return perm;
  for (int64_t i = n - 1; i >= 1; --i) {
    const cudl_philox_block r = DataBlock(seed, static_cast<uint32_t>(i), 1, epoch);
    const uint64_t bits = (static_cast<uint64_t>(r.v[1]) << 32) | r.v[0];
    std::swap(perm[static_cast<size_t>(i)], perm[bits % static_cast<uint64_t>(i + 1)]);
  }
  return perm;
}

struct HostData {
  int64_t n;
  int c, h, w, classes;
  std::vector<uint8_t> pixels, labels;
  size_t image() const { return static_cast<size_t>(c) * h * w; }
};

HostData MakeData(int64_t n, int c, int h, int w, int classes) {
  HostData d{n, c, h, w, classes, {}, {}};
  d.pixels.resize(static_cast<size_t>(n) * d.image());
  for (size_t i = 0; i < d.pixels.size(); ++i)
    d.pixels[i] = static_cast<uint8_t>((i * 97 + i / 13 + 1) % 256);
  for (int64_t i = 0; i < n; ++i)
    d.labels.push_back(static_cast<uint8_t>((i * 5 + 1) % classes));
  return d;
}

// Image k of `epoch` as the loader must produce it.
std::vector<float> ReferenceImage(const HostData &d, const cudl_loader_config &cfg, uint32_t k,
                                  int64_t epoch) {
  int p = 0, dy = 0, dx = 0;
  bool flip = false;
  if (cfg.augment) {
    p = cfg.crop_padding;
    const cudl_philox_block b = DataBlock(cfg.seed, k, 2, epoch);
    const uint64_t span = 2 * static_cast<uint64_t>(p) + 1;
    dy = static_cast<int>((static_cast<uint64_t>(b.v[0]) * span) >> 32);
    dx = static_cast<int>((static_cast<uint64_t>(b.v[1]) * span) >> 32);
    flip = cfg.horizontal_flip && (b.v[2] >> 31) != 0;
  }
  std::vector<float> out(d.image());
  const uint8_t *src = d.pixels.data() + k * d.image();
  for (int c = 0; c < d.c; ++c)
    for (int y = 0; y < d.h; ++y)
      for (int x = 0; x < d.w; ++x) {
        const int sy = y + dy - p, sx = (flip ? d.w - 1 - x : x) + dx - p;
        const uint8_t v =
            (sy < 0 || sy >= d.h || sx < 0 || sx >= d.w) ? 0 : src[(c * d.h + sy) * d.w + sx];
        out[static_cast<size_t>((c * d.h + y) * d.w + x)] =
            (static_cast<float>(v) / 255.0f - cfg.mean[c]) / cfg.std[c];
      }
  return out;
}

struct Batch {
  std::vector<float> x;
  std::vector<int32_t> labels;
  int64_t rows = 0;
  int done = 0;
};

class LoaderTest : public DataTest {
 protected:
  void Build(const HostData &d) {
    data_ = d;
    ASSERT_STATUS(CUDL_OK, cudl_dataset_create(ctx_, d.n, d.c, d.h, d.w, d.classes,
                                               d.pixels.data(), d.labels.data(), &ds_));
  }
  void TearDown() override {
    for (cudl_loader *l : loaders_) cudl_loader_destroy(l);
    cudl_tensor_destroy(x_);
    cudl_tensor_destroy(y_);
    cudl_dataset_destroy(ds_);
    DataTest::TearDown();
  }
  cudl_loader *Loader(const cudl_loader_config &cfg) {
    cudl_loader *l = nullptr;
    EXPECT_STATUS(CUDL_OK, cudl_loader_create(ctx_, ds_, &cfg, &l)) << cudl_context_last_error(ctx_);
    if (l != nullptr) loaders_.push_back(l);
    if (x_ == nullptr || cudl_tensor_dim(x_, 0) != cfg.batch) {
      cudl_tensor_destroy(x_);
      cudl_tensor_destroy(y_);
      const int64_t xs[4] = {cfg.batch, data_.c, data_.h, data_.w}, ys[1] = {cfg.batch};
      EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, xs, &x_));
      EXPECT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, ys, &y_));
    }
    return l;
  }
  Batch Next(cudl_loader *l) {
    Batch b;
    b.rows = -1;
    b.done = -1;
    EXPECT_STATUS(CUDL_OK, cudl_loader_next(l, x_, y_, &b.rows, &b.done))
        << cudl_context_last_error(ctx_);
    b.x = cudl_test::ReadF32(x_);
    b.labels.resize(static_cast<size_t>(cudl_tensor_numel(y_)));
    EXPECT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(y_, b.labels.data(), b.labels.size() * 4));
    b.x.resize(static_cast<size_t>(b.rows) * data_.image());
    b.labels.resize(static_cast<size_t>(b.rows));
    return b;
  }
  // Batch `b` of `epoch` from the reference.
  Batch Reference(const cudl_loader_config &cfg, int64_t epoch, int64_t b) {
    const std::vector<uint32_t> order = ReferenceOrder(data_.n, cfg.shuffle != 0, cfg.seed, epoch);
    const int64_t batches =
        cfg.drop_last ? data_.n / cfg.batch : (data_.n + cfg.batch - 1) / cfg.batch;
    Batch out;
    const int64_t first = b * cfg.batch;
    out.rows = std::min(cfg.batch, data_.n - first);
    out.done = b == batches - 1;
    for (int64_t r = 0; r < out.rows; ++r) {
      const uint32_t k = order[static_cast<size_t>(first + r)];
      const std::vector<float> img = ReferenceImage(data_, cfg, k, epoch);
      out.x.insert(out.x.end(), img.begin(), img.end());
      out.labels.push_back(data_.labels[k]);
    }
    return out;
  }
  void ExpectSame(const Batch &got, const Batch &want, const std::string &where) {
    SCOPED_TRACE(where);
    EXPECT_EQ(got.rows, want.rows);
    EXPECT_EQ(got.done, want.done);
    EXPECT_TRUE(cudl_test::BitEqual(got.x, want.x));
    EXPECT_EQ(got.labels, want.labels);
  }

  void RunOnCuda(bool loader_of_the_gpu);

  HostData data_;
  cudl_dataset *ds_ = nullptr;
  cudl_tensor *x_ = nullptr, *y_ = nullptr;
  std::vector<cudl_loader *> loaders_;
};

cudl_loader_config Config(int64_t batch, bool shuffle, uint64_t seed) {
  cudl_loader_config c = cudl_loader_config_default();
  c.batch = batch;
  c.shuffle = shuffle;
  c.seed = seed;
  return c;
}

TEST_F(LoaderTest, DefaultConfig) {
  const cudl_loader_config c = cudl_loader_config_default();
  EXPECT_EQ(c.batch, 64);
  EXPECT_EQ(c.shuffle, 1);
  EXPECT_EQ(c.seed, 0u);
  EXPECT_EQ(c.drop_last, 0);
  EXPECT_EQ(c.augment, 0);
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(c.mean[i], 0.0f);
    EXPECT_EQ(c.std[i], 1.0f);
  }
}

TEST_F(LoaderTest, BatchesPartialAndDropLast) {
  Build(MakeData(10, 1, 3, 2, 4));
  cudl_loader_config cfg = Config(3, false, 0);
  cudl_loader *l = Loader(cfg);
  EXPECT_EQ(cudl_loader_batches(l), 4);
  for (int epoch = 0; epoch < 2; ++epoch)
    for (int b = 0; b < 4; ++b) {
      if (b == 3) {
        // The rows past the partial batch keep what was there.
        const std::vector<float> sentinel(static_cast<size_t>(cudl_tensor_numel(x_)), -7.0f);
        ASSERT_STATUS(CUDL_OK, cudl_test::WriteF32(x_, sentinel));
      }
      const Batch got = Next(l);
      ExpectSame(got, Reference(cfg, epoch, b), "epoch " + std::to_string(epoch) + " batch " + std::to_string(b));
      EXPECT_EQ(got.rows, b == 3 ? 1 : 3);
      EXPECT_EQ(got.done, b == 3);
      if (b == 3) {
        const std::vector<float> all = cudl_test::ReadF32(x_);
        for (size_t i = data_.image(); i < all.size(); ++i) ASSERT_EQ(all[i], -7.0f) << i;
      }
    }
  cfg.drop_last = 1;
  cudl_loader *d = Loader(cfg);
  EXPECT_EQ(cudl_loader_batches(d), 3);
  for (int b = 0; b < 6; ++b) {
    const Batch got = Next(d);
    ExpectSame(got, Reference(cfg, b / 3, b % 3), "drop_last batch " + std::to_string(b));
    EXPECT_EQ(got.rows, 3);
  }
  // A batch larger than the dataset: one partial batch per epoch.
  cfg = Config(25, true, 4);
  cudl_loader *big = Loader(cfg);
  EXPECT_EQ(cudl_loader_batches(big), 1);
  ExpectSame(Next(big), Reference(cfg, 0, 0), "batch 25 of 10");
  ExpectSame(Next(big), Reference(cfg, 1, 0), "batch 25 of 10, epoch 1");
}

TEST_F(LoaderTest, ShuffleIsASeededPermutationPerEpoch) {
  // Pixel 0 of image i is i, so the order can be read back from x.
  HostData d = MakeData(200, 1, 2, 2, 10);
  for (int64_t i = 0; i < d.n; ++i) d.pixels[static_cast<size_t>(i) * 4] = static_cast<uint8_t>(i);
  Build(d);
  auto epoch_order = [&](cudl_loader *l) {
    std::vector<int> order;
    for (int64_t b = 0; b < cudl_loader_batches(l); ++b) {
      const Batch got = Next(l);
      for (int64_t r = 0; r < got.rows; ++r)
        order.push_back(static_cast<int>(std::lround(got.x[static_cast<size_t>(r) * 4] * 255.0f)));
    }
    return order;
  };
  cudl_loader *a = Loader(Config(16, true, 42));
  cudl_loader *b = Loader(Config(16, true, 42));
  cudl_loader *c = Loader(Config(16, true, 43));
  std::vector<std::vector<int>> epochs;
  for (int e = 0; e < 3; ++e) {
    const std::vector<int> oa = epoch_order(a), ob = epoch_order(b), oc = epoch_order(c);
    std::vector<int> sorted = oa;
    std::sort(sorted.begin(), sorted.end());
    for (int i = 0; i < 200; ++i) ASSERT_EQ(sorted[static_cast<size_t>(i)], i) << "epoch " << e;
    EXPECT_EQ(oa, ob) << "the same seed gives the same order";
    EXPECT_NE(oa, oc) << "another seed gives another order";
    const std::vector<uint32_t> ref = ReferenceOrder(200, true, 42, e);
    EXPECT_TRUE(std::equal(oa.begin(), oa.end(), ref.begin())) << "the documented layout";
    for (const auto &earlier : epochs) EXPECT_NE(oa, earlier) << "each epoch has its own order";
    epochs.push_back(oa);
  }
  // Without shuffle: the identity, every epoch.
  cudl_loader *plain = Loader(Config(16, false, 42));
  for (int e = 0; e < 2; ++e) {
    const std::vector<int> o = epoch_order(plain);
    for (int i = 0; i < 200; ++i) ASSERT_EQ(o[static_cast<size_t>(i)], i);
  }
}

TEST_F(LoaderTest, SeekReproducesAnUninterruptedRun) {
  Build(MakeData(23, 3, 6, 5, 7));
  cudl_loader_config cfg = Config(4, true, 0x123456789abcdefull);
  cfg.augment = 1;
  cfg.crop_padding = 2;
  cfg.horizontal_flip = 1;
  cfg.mean[0] = 0.5f;
  cfg.mean[1] = 0.25f;
  cfg.mean[2] = -0.125f;
  cfg.std[0] = 0.3f;
  cfg.std[1] = 2.0f;
  cfg.std[2] = 0.7f;
  cudl_loader *run = Loader(cfg);
  const int64_t batches = cudl_loader_batches(run);
  ASSERT_EQ(batches, 6);
  std::vector<Batch> all;
  for (int64_t i = 0; i < 4 * batches; ++i) {
    all.push_back(Next(run));
    ExpectSame(all.back(), Reference(cfg, i / batches, i % batches), "reference " + std::to_string(i));
  }
  int64_t epoch = -1, batch = -1;
  ASSERT_STATUS(CUDL_OK, cudl_loader_position(run, &epoch, &batch));
  EXPECT_EQ(epoch, 4);
  EXPECT_EQ(batch, 0);
  // A fresh loader seeking into the middle, as a resumed run.
  cudl_loader *resumed = Loader(cfg);
  ASSERT_STATUS(CUDL_OK, cudl_loader_seek(resumed, 2, 3));
  for (int64_t i = 2 * batches + 3; i < 4 * batches; ++i)
    ExpectSame(Next(resumed), all[static_cast<size_t>(i)], "resumed " + std::to_string(i));
  // Seeking back and forth on a loader whose thread is ahead; the end of an
  // epoch (batch == batches) is the next epoch's start.
  const int64_t targets[][2] = {{0, 0}, {3, 5}, {1, 2}, {1, 2}, {0, 5}, {1, 6}};
  for (const auto &t : targets) {
    ASSERT_STATUS(CUDL_OK, cudl_loader_seek(run, t[0], t[1]));
    ASSERT_STATUS(CUDL_OK, cudl_loader_position(run, &epoch, &batch));
    const int64_t i = t[0] * batches + t[1];
    EXPECT_EQ(epoch, i / batches);
    EXPECT_EQ(batch, i % batches);
    ExpectSame(Next(run), all[static_cast<size_t>(i)], "after seek " + std::to_string(i));
    if (i + 1 < static_cast<int64_t>(all.size()))
      ExpectSame(Next(run), all[static_cast<size_t>(i + 1)], "after seek, next");
  }
  // Bad positions.
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_seek(run, -1, 0));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_seek(run, 0, batches + 1));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "the batch 0 to 6"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_seek(run, INT64_MAX, batches));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_seek(run, 0, -1));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_seek(nullptr, 0, 0));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_position(run, nullptr, &batch));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_position(nullptr, &epoch, &batch));
  // Epochs past 2^32 use the counter's fourth word.
  ASSERT_STATUS(CUDL_OK, cudl_loader_seek(run, (int64_t{1} << 32) + 1, 1));
  ExpectSame(Next(run), Reference(cfg, (int64_t{1} << 32) + 1, 1), "epoch 2^32 + 1");
}

TEST_F(LoaderTest, SeeksWhileTheThreadIsBusy) {
  // Batches that take a while to fill, and a seek after every batch, so
  // that seeks land while the thread is filling: every batch returned must
  // still be the one asked for, and the run must neither stall nor touch
  // freed memory (AddressSanitizer build).
  Build(MakeData(300, 3, 32, 32, 10));
  cudl_loader_config cfg = Config(100, true, 11);
  cfg.augment = 1;
  cfg.crop_padding = 4;
  cfg.horizontal_flip = 1;
  cudl_loader *l = Loader(cfg);
  uint32_t state = 1;
  std::vector<std::pair<int64_t, int64_t>> positions;
  for (int i = 0; i < 300; ++i) {
    state = state * 1664525u + 1013904223u;
    const int64_t epoch = (state >> 8) % 4, batch = (state >> 20) % 3;
    ASSERT_STATUS(CUDL_OK, cudl_loader_seek(l, epoch, batch));
    int64_t rows = 0;
    ASSERT_STATUS(CUDL_OK, cudl_loader_next(l, x_, y_, &rows, nullptr));
    if (i % 50 == 0) {
      Batch got;
      got.rows = rows;
      got.done = batch == 2;
      got.x = cudl_test::ReadF32(x_);
      got.labels.resize(100);
      ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(y_, got.labels.data(), 400));
      ExpectSame(got, Reference(cfg, epoch, batch), "seek " + std::to_string(i));
    }
  }
}

TEST_F(LoaderTest, Normalisation) {
  Build(MakeData(6, 3, 2, 3, 5));
  cudl_loader_config cfg = Config(6, false, 0);
  const float means[3] = {0.4914f, 0.4822f, 0.4465f}, stds[3] = {0.2470f, 0.2435f, 0.2616f};
  for (int c = 0; c < 3; ++c) {
    cfg.mean[c] = means[c];
    cfg.std[c] = stds[c];
  }
  const Batch got = Next(Loader(cfg));
  ASSERT_EQ(got.rows, 6);
  for (int64_t i = 0; i < 6; ++i)
    for (int c = 0; c < 3; ++c)
      for (int p = 0; p < 6; ++p) {
        const size_t at = static_cast<size_t>((i * 3 + c) * 6 + p);
        const float v = static_cast<float>(data_.pixels[at]);
        ASSERT_EQ(cudl_test::FloatBits(got.x[at]),
                  cudl_test::FloatBits((v / 255.0f - means[c]) / stds[c]))
            << i << " " << c << " " << p;
      }
  for (int64_t i = 0; i < 6; ++i) EXPECT_EQ(got.labels[static_cast<size_t>(i)], data_.labels[static_cast<size_t>(i)]);
}

// Does out (one channel, h x w, mean 0 std 1) equal src shifted by (sy, sx)
// (out[y][x] = src[y + sy][x + sx]) with 0 outside, after an optional flip?
bool ShiftExplains(const std::vector<float> &out, const uint8_t *src, int h, int w, int sy, int sx,
                   bool flip) {
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) {
      const int yy = y + sy, xx = (flip ? w - 1 - x : x) + sx;
      const uint8_t v = (yy < 0 || yy >= h || xx < 0 || xx >= w) ? 0 : src[yy * w + xx];
      if (out[static_cast<size_t>(y * w + x)] != static_cast<float>(v) / 255.0f) return false;
    }
  return true;
}

TEST_F(LoaderTest, CropWithPaddingShiftsByAtMostThePaddingWithZeroFill) {
  // Pixels 1..255 (never 0), so zero fill is visible and shifts are unique.
  HostData d = MakeData(50, 1, 7, 9, 3);
  for (size_t i = 0; i < d.pixels.size(); ++i) d.pixels[i] = static_cast<uint8_t>(1 + (i * 31 + i / 9) % 255);
  Build(d);
  const int p = 3;
  cudl_loader_config cfg = Config(10, true, 7);
  cfg.augment = 1;
  cfg.crop_padding = p;
  std::set<std::pair<int, int>> seen;
  cudl_loader *l = Loader(cfg);
  for (int e = 0; e < 4; ++e) {
    const std::vector<uint32_t> order = ReferenceOrder(d.n, true, 7, e);
    for (int b = 0; b < 5; ++b) {
      const Batch got = Next(l);
      for (int r = 0; r < got.rows; ++r) {
        const uint32_t k = order[static_cast<size_t>(b * 10 + r)];
        const std::vector<float> img(got.x.begin() + r * 63, got.x.begin() + (r + 1) * 63);
        int found = 0;
        for (int sy = -p; sy <= p; ++sy)
          for (int sx = -p; sx <= p; ++sx)
            if (ShiftExplains(img, d.pixels.data() + k * 63, 7, 9, sy, sx, false)) {
              ++found;
              seen.insert({sy, sx});
            }
        ASSERT_EQ(found, 1) << "image " << k << " epoch " << e;
      }
    }
  }
  // 200 crops over 49 equally likely shifts: on average 0.8 shifts are
  // never drawn (49 * (48/49)^200); 5 or more missing is very unlikely
  // (and the seed is fixed).
  EXPECT_GE(seen.size(), 45u);
}

TEST_F(LoaderTest, HorizontalFlip) {
  HostData d = MakeData(100, 2, 3, 5, 3);
  Build(d);
  cudl_loader_config cfg = Config(20, false, 99);
  cfg.augment = 1;
  cfg.horizontal_flip = 1;
  cudl_loader *l = Loader(cfg);
  int flipped = 0, total = 0;
  for (int e = 0; e < 3; ++e)
    for (int b = 0; b < 5; ++b) {
      const Batch got = Next(l);
      for (int r = 0; r < 20; ++r) {
        const uint32_t k = static_cast<uint32_t>(b * 20 + r);
        bool is_flipped = true, is_plain = true;
        for (int c = 0; c < 2; ++c)
          for (int y = 0; y < 3; ++y)
            for (int x = 0; x < 5; ++x) {
              const float v = got.x[static_cast<size_t>(((r * 2 + c) * 3 + y) * 5 + x)];
              const uint8_t *src = d.pixels.data() + k * 30 + c * 15 + y * 5;
              is_plain &= v == static_cast<float>(src[x]) / 255.0f;
              is_flipped &= v == static_cast<float>(src[4 - x]) / 255.0f;
            }
        ASSERT_TRUE(is_plain || is_flipped) << "image " << k;
        ASSERT_FALSE(is_plain && is_flipped);
        flipped += is_flipped;
        ++total;
      }
    }
  // Binomial(300, 1/2): mean 150, deviation 8.7; five deviations each way.
  EXPECT_GT(flipped, 150 - 44);
  EXPECT_LT(flipped, 150 + 44);
  // Flip off (augment on, padding 0): unchanged images.
  cfg.horizontal_flip = 0;
  cudl_loader *none = Loader(cfg);
  const Batch got = Next(none);
  for (size_t i = 0; i < got.x.size(); ++i)
    ASSERT_EQ(got.x[i], static_cast<float>(d.pixels[i]) / 255.0f);
}

TEST_F(LoaderTest, ManyEpochsAndDestroyMidEpoch) {
  Build(MakeData(7, 1, 4, 4, 3));
  cudl_loader_config cfg = Config(2, true, 5);
  cfg.augment = 1;
  cfg.crop_padding = 1;
  cfg.horizontal_flip = 1;
  cudl_loader *l = Loader(cfg);
  for (int64_t e = 0; e < 150; ++e)
    for (int64_t b = 0; b < 4; ++b) {
      const Batch got = Next(l);
      const Batch want = Reference(cfg, e, b);
      ASSERT_EQ(got.x, want.x) << e << " " << b;
      ASSERT_EQ(got.labels, want.labels);
      ASSERT_EQ(got.done, b == 3);
    }
  // Destroyed at every stage: before any batch, after one, mid-epoch.
  for (int i = 0; i < 40; ++i) {
    cudl_loader *m = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_loader_create(ctx_, ds_, &cfg, &m));
    for (int k = 0; k < i % 5; ++k) {
      int64_t rows = 0;
      ASSERT_STATUS(CUDL_OK, cudl_loader_next(m, x_, y_, &rows, nullptr));
    }
    if (i % 3 == 0) {
      ASSERT_STATUS(CUDL_OK, cudl_loader_seek(m, 9, 1));
    }
    cudl_loader_destroy(m);
  }
  cudl_loader_destroy(nullptr);
}

TEST_F(LoaderTest, ErrorFromTheThreadIsReportedByNext) {
  Build(MakeData(9, 1, 2, 2, 3));
  const cudl_loader_config cfg = Config(2, true, 1);
  cudl_loader *l = Loader(cfg);
  // Set before the thread can reach batch 3 of epoch 1.
  cudl__loader_fail_at(l, 1, 3);
  for (int64_t i = 0; i < 5 + 3; ++i)
    ExpectSame(Next(l), Reference(cfg, i / 5, i % 5), "before the failure");
  int64_t rows = -1;
  int done = -1;
  for (int again = 0; again < 2; ++again) {
    EXPECT_STATUS(CUDL_ERR_IO, cudl_loader_next(l, x_, y_, &rows, &done));
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_),
                          "cudl_loader_next: the loader's thread failed at batch 3 of epoch 1"));
    EXPECT_EQ(rows, -1);
    EXPECT_EQ(done, -1);
  }
  int64_t epoch = 0, batch = 0;
  ASSERT_STATUS(CUDL_OK, cudl_loader_position(l, &epoch, &batch));
  EXPECT_EQ(epoch, 1);
  EXPECT_EQ(batch, 3);
  // A seek clears the error; the cause is gone, so the run goes on.
  cudl__loader_fail_at(l, -1, -1);
  ASSERT_STATUS(CUDL_OK, cudl_loader_seek(l, 1, 3));
  ExpectSame(Next(l), Reference(cfg, 1, 3), "after the failure");
  ExpectSame(Next(l), Reference(cfg, 1, 4), "after the failure, next");
}

TEST_F(LoaderTest, BadArguments) {
  Build(MakeData(10, 2, 3, 4, 3));
  cudl_loader *l = nullptr;
  cudl_loader_config cfg = Config(4, true, 0);
  struct Case {
    const char *name;
    std::function<void(cudl_loader_config *)> edit;
    const char *message;
  } cases[] = {
      {"batch 0", [](cudl_loader_config *c) { c->batch = 0; }, "config->batch is 0"},
      {"batch -5", [](cudl_loader_config *c) { c->batch = -5; }, "config->batch is -5"},
      {"drop_last, batch 11", [](cudl_loader_config *c) { c->batch = 11; c->drop_last = 1; },
       "drop_last leaves no batch"},
      {"std 0", [](cudl_loader_config *c) { c->std[1] = 0.0f; }, "config->std[1] is 0"},
      {"std -1", [](cudl_loader_config *c) { c->std[0] = -1.0f; }, "config->std[0] is -1"},
      {"std inf", [](cudl_loader_config *c) { c->std[0] = INFINITY; }, "config->std[0] is inf"},
      {"mean NaN", [](cudl_loader_config *c) { c->mean[1] = NAN; }, "config->mean[1] is not finite"},
      {"padding 4", [](cudl_loader_config *c) { c->augment = 1; c->crop_padding = 4; },
       "crop_padding is 4; it must be 0 to 3"},
      {"padding -1", [](cudl_loader_config *c) { c->augment = 1; c->crop_padding = -1; },
       "crop_padding is -1"},
  };
  for (const Case &c : cases) {
    SCOPED_TRACE(c.name);
    cudl_loader_config bad = cfg;
    c.edit(&bad);
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, &bad, &l));
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), c.message));
    EXPECT_EQ(l, nullptr);
  }
  // Channels past the dataset's are not looked at; padding without augment
  // is ignored.
  cudl_loader_config fine = cfg;
  fine.std[2] = 0.0f;
  fine.std[3] = NAN;
  fine.crop_padding = 100;
  cudl_loader *ok = Loader(fine);
  ASSERT_NE(ok, nullptr);
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(nullptr, ds_, &cfg, &l));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, nullptr, &cfg, &l));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "ds is NULL"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, nullptr, &l));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_create(ctx_, ds_, &cfg, nullptr));
  EXPECT_EQ(cudl_loader_batches(nullptr), 0);

  // next: tensors of the wrong dtype or shape; nothing is consumed.
  cudl_tensor *wrong = nullptr, *wrong_dtype = nullptr, *labels_f32 = nullptr;
  cudl_tensor *labels_short = nullptr;
  const int64_t ws[4] = {3, 2, 3, 4}, ls[1] = {4}, short_shape[1] = {3};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, short_shape, &labels_short));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, ws, &wrong));
  const int64_t xs[4] = {4, 2, 3, 4};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 4, xs, &wrong_dtype));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 1, ls, &labels_f32));
  int64_t rows = -1;
  EXPECT_STATUS(CUDL_ERR_SHAPE, cudl_loader_next(ok, wrong, y_, &rows, nullptr));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "x must have shape [4, 2, 3, 4]"));
  EXPECT_STATUS(CUDL_ERR_DTYPE, cudl_loader_next(ok, wrong_dtype, y_, &rows, nullptr));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "x is i32; it must be f32"));
  EXPECT_STATUS(CUDL_ERR_DTYPE, cudl_loader_next(ok, x_, labels_f32, &rows, nullptr));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "labels is f32; it must be i32"));
  EXPECT_STATUS(CUDL_ERR_SHAPE, cudl_loader_next(ok, x_, labels_short, &rows, nullptr));
  EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "labels must have shape [4]"));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_next(ok, nullptr, y_, &rows, nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_next(ok, x_, nullptr, &rows, nullptr));
  EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_next(nullptr, x_, y_, &rows, nullptr));
  EXPECT_EQ(rows, -1);
  int64_t epoch = -1, batch = -1;
  ASSERT_STATUS(CUDL_OK, cudl_loader_position(ok, &epoch, &batch));
  EXPECT_EQ(epoch, 0);
  EXPECT_EQ(batch, 0);
  ExpectSame(Next(ok), Reference(fine, 0, 0), "first batch after the errors");
  cudl_tensor_destroy(wrong);
  cudl_tensor_destroy(wrong_dtype);
  cudl_tensor_destroy(labels_f32);
  cudl_tensor_destroy(labels_short);
}

TEST_F(LoaderTest, AllocationFailureAtEveryPointOfCreate) {
  Build(MakeData(10, 1, 4, 4, 3));
  const cudl_loader_config cfg = Config(4, true, 0);
  ASSERT_NE(Loader(cfg), nullptr);  // and x_, y_ for this batch size
  const size_t baseline = counting_.live.size();
  size_t k = 1;
  for (;; ++k) {
    SCOPED_TRACE("allocation " + std::to_string(k) + " fails");
    // The k-th allocation of this call (the allocator's index is 1-based
    // over its whole life).
    const size_t failed_before = counting_.failed;
    counting_.fail_at = counting_.allocs + counting_.failed + k;
    cudl_loader *l = nullptr;
    const cudl_status st = cudl_loader_create(ctx_, ds_, &cfg, &l);
    counting_.fail_at = 0;
    if (counting_.failed == failed_before) {
      ASSERT_STATUS(CUDL_OK, st);
      ExpectSame(Next(l), Reference(cfg, 0, 0), "after the failures");
      cudl_loader_destroy(l);
      break;
    }
    EXPECT_STATUS(CUDL_ERR_OUT_OF_MEMORY, st);
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "allocate"));
    EXPECT_EQ(l, nullptr);
    EXPECT_EQ(counting_.live.size(), baseline) << "a failed create keeps nothing";
    ASSERT_LT(k, 40u);
  }
  // The loader; three slots of bytes, crops, labels and an event; the
  // order; the context's upload, crops and table tensors (3 each: the
  // tensor, its storage and its memory).
  EXPECT_EQ(k, 24u) << "23 allocations";
}

// A batch for tensors of another context goes through the loader's own
// buffers, made at the first such call, and views of both sides: every
// allocation of that call (the two contexts count into one allocator)
// fails once, on a fresh loader each time. The call names what failed;
// the batch stays offered, so the next call makes the same batch, even
// where the failure came after its bytes had been uploaded and converted.
TEST_F(LoaderTest, AllocationFailureAtEveryPointOfABatchForAnotherContext) {
  Build(MakeData(10, 1, 4, 4, 3));
  cudl_loader_config cfg = Config(4, true, 5);
  cfg.augment = 1;
  cfg.crop_padding = 1;
  cudl_context *other = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &other));
  cudl_allocator hooks = counting_.hooks();
  ASSERT_STATUS(CUDL_OK, cudl_context_set_allocator(other, &hooks));
  cudl_tensor *x = nullptr, *y = nullptr;
  const int64_t xs[4] = {4, 1, 4, 4}, ys[1] = {4};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(other, CUDL_DTYPE_F32, 4, xs, &x));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(other, CUDL_DTYPE_I32, 1, ys, &y));
  auto expect_batch = [&](cudl_loader *l, int64_t b, const std::string &what) {
    Batch got;
    ASSERT_STATUS(CUDL_OK, cudl_loader_next(l, x, y, &got.rows, &got.done))
        << cudl_context_last_error(ctx_);
    got.x = cudl_test::ReadF32(x);
    got.x.resize(static_cast<size_t>(got.rows) * data_.image());
    got.labels.resize(4);
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(y, got.labels.data(), 16));
    got.labels.resize(static_cast<size_t>(got.rows));
    ExpectSame(got, Reference(cfg, 0, b), what);
  };
  size_t k = 1;
  for (;; ++k) {
    SCOPED_TRACE("allocation " + std::to_string(k) + " of the batch fails");
    cudl_loader *l = nullptr;
    ASSERT_STATUS(CUDL_OK, cudl_loader_create(ctx_, ds_, &cfg, &l));
    // Errors in both contexts, so that a message read from the wrong one
    // shows.
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT, cudl_loader_position(l, nullptr, nullptr));
    EXPECT_STATUS(CUDL_ERR_INVALID_ARGUMENT,
                  cudl_tensor_create(other, CUDL_DTYPE_F32, 4, xs, nullptr));
    const std::string stale = cudl_context_last_error(other);
    const size_t failed_before = counting_.failed;
    counting_.fail_at = counting_.allocs + counting_.failed + k;
    int64_t rows = -1;
    const cudl_status st = cudl_loader_next(l, x, y, &rows, nullptr);
    counting_.fail_at = 0;
    if (counting_.failed == failed_before) {
      ASSERT_STATUS(CUDL_OK, st);
      cudl_loader_destroy(l);
      break;
    }
    EXPECT_STATUS(CUDL_ERR_OUT_OF_MEMORY, st);
    EXPECT_TRUE(
        HasSubstr(cudl_context_last_error(ctx_), "cudl_loader_next: copying the batch failed: "));
    EXPECT_TRUE(HasSubstr(cudl_context_last_error(ctx_), "allocate"));
    EXPECT_FALSE(HasSubstr(cudl_context_last_error(ctx_), "is NULL"));
    EXPECT_FALSE(HasSubstr(cudl_context_last_error(ctx_), stale));
    EXPECT_EQ(rows, -1) << "nothing is reported for a failed batch";
    expect_batch(l, 0, "the same batch again");
    expect_batch(l, 1, "and the next");
    cudl_loader_destroy(l);
    ASSERT_LT(k, 40u);
  }
  // The two buffers (a tensor, its storage and its memory each), then a
  // view of each side for the images and for the labels (a tensor each).
  EXPECT_EQ(k, 11u) << "10 allocations";
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(y);
  cudl_context_destroy(other);
}

// Batches of a loader into tensors of a CUDA context, against the
// reference: nine batches over three epochs, then a seek back (with a
// slot still in flight when the loader is the GPU's own) and one more,
// then the loader destroyed with a slot in flight. With
// loader_of_the_gpu the loader is the GPU context's (pinned uploads that
// do not wait, images_from_bytes as a kernel); else the CPU context's,
// whose batches reach the GPU through cudl_tensor_copy.
void LoaderTest::RunOnCuda(bool loader_of_the_gpu) {
  Build(MakeData(11, 3, 5, 5, 4));
  cudl_loader_config cfg = Config(4, true, 3);
  cfg.augment = 1;
  cfg.crop_padding = 1;
  cfg.horizontal_flip = 1;
  cudl_context *gpu = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_context_create(CUDL_DEVICE_CUDA, 0, &gpu));
  cudl_tensor *gx = nullptr, *gy = nullptr;
  const int64_t xs[4] = {4, 3, 5, 5}, ys[1] = {4};
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu, CUDL_DTYPE_F32, 4, xs, &gx));
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu, CUDL_DTYPE_I32, 1, ys, &gy));
  cudl_context *owner = loader_of_the_gpu ? gpu : ctx_;
  cudl_loader *l = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_loader_create(owner, ds_, &cfg, &l))
      << cudl_context_last_error(owner);
  auto check = [&](int64_t epoch, int64_t batch, const std::string &what) {
    int64_t rows = 0;
    int done = 0;
    ASSERT_STATUS(CUDL_OK, cudl_loader_next(l, gx, gy, &rows, &done))
        << cudl_context_last_error(owner);
    Batch got;
    got.rows = rows;
    got.done = done;
    got.x = cudl_test::ReadF32(gx);
    got.x.resize(static_cast<size_t>(rows) * data_.image());
    got.labels.resize(4);
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(gy, got.labels.data(), 16));
    got.labels.resize(static_cast<size_t>(rows));
    ExpectSame(got, Reference(cfg, epoch, batch), what);
  };
  for (int64_t i = 0; i < 9; ++i) check(i / 3, i % 3, "CUDA batch " + std::to_string(i));
  ASSERT_STATUS(CUDL_OK, cudl_loader_seek(l, 1, 1));
  check(1, 1, "after the seek");
  check(1, 2, "the next");
  // The host ahead of the device, as in training: milliseconds of work
  // queued first, then four batches into four pairs of tensors with
  // nothing read in between, so that each upload waits behind that work
  // while the loader's thread fills the next slots (more batches than
  // slots). Each must still be its own batch.
  const int64_t busy_shape[1] = {int64_t{1} << 26};
  cudl_tensor *busy = nullptr;
  ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu, CUDL_DTYPE_F32, 1, busy_shape, &busy));
  for (int i = 0; i < 32; ++i) ASSERT_STATUS(CUDL_OK, cudl_tensor_uniform(busy, 0.0f, 1.0f));
  cudl_tensor *ahead_x[4] = {}, *ahead_y[4] = {};
  int64_t ahead_rows[4] = {};
  int ahead_done[4] = {};
  for (int j = 0; j < 4; ++j) {
    ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu, CUDL_DTYPE_F32, 4, xs, &ahead_x[j]));
    ASSERT_STATUS(CUDL_OK, cudl_tensor_create(gpu, CUDL_DTYPE_I32, 1, ys, &ahead_y[j]));
    ASSERT_STATUS(CUDL_OK,
                  cudl_loader_next(l, ahead_x[j], ahead_y[j], &ahead_rows[j], &ahead_done[j]))
        << cudl_context_last_error(owner);
  }
  for (int j = 0; j < 4; ++j) {
    const int64_t epoch = 2 + j / 3, batch = j % 3;
    Batch got;
    got.rows = ahead_rows[j];
    got.done = ahead_done[j];
    got.x = cudl_test::ReadF32(ahead_x[j]);
    got.x.resize(static_cast<size_t>(got.rows) * data_.image());
    got.labels.resize(4);
    ASSERT_STATUS(CUDL_OK, cudl_tensor_copy_to_host(ahead_y[j], got.labels.data(), 16));
    got.labels.resize(static_cast<size_t>(got.rows));
    ExpectSame(got, Reference(cfg, epoch, batch),
               "ahead of the device, batch " + std::to_string(j));
    cudl_tensor_destroy(ahead_x[j]);
    cudl_tensor_destroy(ahead_y[j]);
  }
  cudl_tensor_destroy(busy);
  cudl_loader_destroy(l);
  cudl_tensor_destroy(gx);
  cudl_tensor_destroy(gy);
  cudl_context_destroy(gpu);
}

TEST_F(LoaderTest, CudaTensorsWhenAvailable) {
  const cudl_test::CudaAvailability cuda = cudl_test::QueryCuda();
  if (!cuda.available) GTEST_SKIP() << "no CUDA device: " << cuda.reason;
  RunOnCuda(false);
}

TEST_F(LoaderTest, CudaLoaderOfTheGpuContextUploadsWithoutWaiting) {
  const cudl_test::CudaAvailability cuda = cudl_test::QueryCuda();
  if (!cuda.available) GTEST_SKIP() << "no CUDA device: " << cuda.reason;
  RunOnCuda(true);
}

}  // namespace
