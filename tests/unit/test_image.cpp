// test_image.cpp - PNG and JPEG decoding (cudl/image.h) and folder datasets.
//
// Every image is written here, with libpng and libjpeg directly, so the
// expected pixels are known: lossless PNG paths are checked exactly,
// channel conversions against the documented formulas, the resize against
// a float64 reference written from the documentation (a direct 2-D sum,
// not the library's separable passes), JPEG within the codec's error.
// Hostile and broken files must give the documented status with a
// message, and allocate nothing large. The folder reader is checked for
// class order, labels, skipped files and their reasons, strict mode,
// class mapping, size decisions and independence from the thread count.
#include <dirent.h>
#include <ftw.h>
#include <png.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <jpeglib.h>
#include <zlib.h>

#include <algorithm>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "cudl/cudl.h"
#include "data/image_internal.h"
#include "test_util.h"

namespace {

using Bytes = std::vector<uint8_t>;

// ------------------------------------------------------------ writers ---

void PngWriteBytes(png_structp png, png_bytep data, size_t n) {
  auto *out = static_cast<Bytes *>(png_get_io_ptr(png));
  out->insert(out->end(), data, data + n);
}
void PngFlush(png_structp) {}

// A PNG of `color_type` and `depth` from rows of packed samples (big-endian
// for 16 bits, as PNG stores them). palette: RGB triples for type 3; trns:
// alpha per palette entry (empty: none).
Bytes Png(int width, int height, int color_type, int depth, const Bytes &samples,
          const Bytes &palette = {}, const Bytes &trns = {}, bool interlace = false) {
  Bytes out;
  png_structp png = png_create_write_struct(PNG_LIBPNG_VER_STRING, nullptr, nullptr, nullptr);
  png_infop info = png_create_info_struct(png);
  if (setjmp(png_jmpbuf(png))) {
    png_destroy_write_struct(&png, &info);
    ADD_FAILURE() << "libpng could not write the test image";
    return {};
  }
  png_set_write_fn(png, &out, PngWriteBytes, PngFlush);
  png_set_IHDR(png, info, width, height, depth, color_type,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE, PNG_COMPRESSION_TYPE_DEFAULT,
               PNG_FILTER_TYPE_DEFAULT);
  if (!palette.empty())
    png_set_PLTE(png, info, reinterpret_cast<const png_color *>(palette.data()),
                 static_cast<int>(palette.size() / 3));
  if (!trns.empty()) png_set_tRNS(png, info, trns.data(), static_cast<int>(trns.size()), nullptr);
  png_write_info(png, info);
  const size_t row = samples.size() / static_cast<size_t>(height);
  std::vector<png_bytep> rows(static_cast<size_t>(height));
  for (int y = 0; y < height; ++y)
    rows[static_cast<size_t>(y)] = const_cast<png_bytep>(samples.data() + row * static_cast<size_t>(y));
  png_write_image(png, rows.data());
  png_write_end(png, nullptr);
  png_destroy_write_struct(&png, &info);
  return out;
}

// A baseline (or progressive) JPEG of 1 or 3 interleaved components.
Bytes Jpeg(int width, int height, int components, const Bytes &samples, int quality = 100,
           bool progressive = false) {
  jpeg_compress_struct c;
  jpeg_error_mgr err;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  unsigned char *mem = nullptr;
  unsigned long size = 0;
  jpeg_mem_dest(&c, &mem, &size);
  c.image_width = static_cast<JDIMENSION>(width);
  c.image_height = static_cast<JDIMENSION>(height);
  c.input_components = components;
  c.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, quality, TRUE);
  if (components == 3) {  // no chroma subsampling: the error stays small
    c.comp_info[0].h_samp_factor = c.comp_info[0].v_samp_factor = 1;
  }
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    JSAMPROW row = const_cast<JSAMPROW>(samples.data() + static_cast<size_t>(c.next_scanline) *
                                                             static_cast<size_t>(width * components));
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  Bytes out(mem, mem + size);
  free(mem);
  return out;
}

Bytes Random(size_t n, unsigned seed) {
  std::mt19937 rng(seed);
  Bytes b(n);
  for (auto &v : b) v = static_cast<uint8_t>(rng() & 0xff);
  return b;
}

// A smooth RGB or gray pattern (JPEG keeps it within a few levels).
Bytes Smooth(int width, int height, int components) {
  Bytes b(static_cast<size_t>(width * height * components));
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x)
      for (int c = 0; c < components; ++c)
        b[static_cast<size_t>((y * width + x) * components + c)] =
            static_cast<uint8_t>(40 + 3 * x + 2 * y + 30 * c);
  return b;
}

// Interleaved to planar.
Bytes Planar(const Bytes &interleaved, int pixels, int channels) {
  Bytes out(interleaved.size());
  for (int p = 0; p < pixels; ++p)
    for (int c = 0; c < channels; ++c)
      out[static_cast<size_t>(c * pixels + p)] = interleaved[static_cast<size_t>(p * channels + c)];
  return out;
}

uint8_t Luma(int r, int g, int b) {  // cudl/image.h: BT.601 in 16-bit fixed point
  return static_cast<uint8_t>((19595 * r + 38470 * g + 7471 * b + 32768) >> 16);
}

// The documented resize in float64, as one 2-D sum per output pixel.
std::vector<double> AxisWeights(int n, int m, int o) {
  const double s = static_cast<double>(n) / m, f = std::max(s, 1.0), c = (o + 0.5) * s;
  std::vector<double> w(static_cast<size_t>(n), 0.0);
  const int lo = std::max(0, static_cast<int>(c - f + 0.5));
  const int hi = std::min(n, static_cast<int>(c + f + 0.5));
  double sum = 0;
  for (int i = lo; i < hi; ++i) {
    const double t = std::fabs((i - c + 0.5) / f);
    w[static_cast<size_t>(i)] = t < 1 ? 1 - t : 0;
    sum += w[static_cast<size_t>(i)];
  }
  for (auto &v : w) v /= sum;
  return w;
}

// Reference for planar 8-bit input; returns the unrounded values.
std::vector<double> ReferenceResize(const Bytes &planar, int channels, int h, int w, int oh, int ow) {
  std::vector<double> out(static_cast<size_t>(channels * oh * ow));
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < oh; ++y) {
      const auto wy = AxisWeights(h, oh, y);
      for (int x = 0; x < ow; ++x) {
        const auto wx = AxisWeights(w, ow, x);
        double sum = 0;
        for (int i = 0; i < h; ++i)
          for (int j = 0; j < w; ++j)
            sum += wy[static_cast<size_t>(i)] * wx[static_cast<size_t>(j)] *
                   planar[static_cast<size_t>((c * h + i) * w + j)];
        out[static_cast<size_t>((c * oh + y) * ow + x)] = sum;
      }
    }
  return out;
}

// Exact agreement, except where the reference is within 1e-9 of a
// rounding tie (the separable passes may land on either side).
void ExpectResized(const Bytes &got, const std::vector<double> &ref) {
  ASSERT_EQ(got.size(), ref.size());
  size_t checked = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double frac = ref[i] - std::floor(ref[i]);
    if (std::fabs(frac - 0.5) < 1e-9) continue;
    ASSERT_EQ(got[i], static_cast<uint8_t>(std::floor(ref[i] + 0.5))) << "at " << i << ", ref " << ref[i];
    ++checked;
  }
  EXPECT_GT(checked, ref.size() * 9 / 10);
}

std::string TempBase() {
  const char *env = std::getenv("CUDL_TEST_TMPDIR");
  return (env != nullptr && env[0] != '\0') ? env : "/tmp";
}

int RemoveEntry(const char *path, const struct stat *, int, struct FTW *) { return std::remove(path); }

class ImageTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_EQ(CUDL_OK, cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx_));
    cudl_allocator a = counting_.hooks();
    ASSERT_EQ(CUDL_OK, cudl_context_set_allocator(ctx_, &a));
    std::string tmpl = TempBase() + "/cudl_image_XXXXXX";
    std::vector<char> buf(tmpl.begin(), tmpl.end());
    buf.push_back('\0');
    ASSERT_NE(mkdtemp(buf.data()), nullptr);
    dir_ = buf.data();
  }
  void TearDown() override {
    EXPECT_TRUE(counting_.live.empty()) << counting_.live.size() << " blocks leaked";
    EXPECT_EQ(counting_.size_mismatches, 0u);
    EXPECT_EQ(counting_.unknown_frees, 0u);
    cudl_context_destroy(ctx_);
    nftw(dir_.c_str(), RemoveEntry, 16, FTW_DEPTH | FTW_PHYS);
  }

  std::string Write(const std::string &name, const Bytes &bytes) {
    const std::string path = dir_ + "/" + name;
    for (size_t at = path.find('/', dir_.size() + 1); at != std::string::npos;
         at = path.find('/', at + 1))
      mkdir(path.substr(0, at).c_str(), 0755);
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(reinterpret_cast<const char *>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  void MakeDir(const std::string &name) { mkdir((dir_ + "/" + name).c_str(), 0755); }

  // Decode from memory; on failure the message is returned in *message.
  cudl_status Decode(const Bytes &data, int channels, int h, int w, Bytes *out,
                     std::string *message = nullptr) {
    out->assign(static_cast<size_t>(channels * h * w), 0xEE);
    const cudl_status st = cudl_image_decode(ctx_, data.data(), data.size(), channels, h, w, out->data());
    if (message != nullptr) *message = st == CUDL_OK ? "" : cudl_context_last_error(ctx_);
    return st;
  }

  size_t LargestRequest() {
    size_t largest = 0;
    for (const auto &r : counting_.requests) largest = std::max(largest, r.first);
    counting_.requests.clear();
    return largest;
  }

  cudl_context *ctx_ = nullptr;
  cudl_test::CountingAllocator counting_;
  std::string dir_;
};

// ------------------------------------------------------ lossless PNG ---

TEST_F(ImageTest, Gray8PngIsExactAndReplicatesToRgb) {
  const int w = 7, h = 5;
  const Bytes px = Random(w * h, 1);
  const Bytes png = Png(w, h, PNG_COLOR_TYPE_GRAY, 8, px);
  cudl_image_info info;
  ASSERT_EQ(CUDL_OK, cudl_image_probe(ctx_, png.data(), png.size(), &info));
  EXPECT_EQ(info.format, CUDL_IMAGE_FORMAT_PNG);
  EXPECT_EQ(info.height, h);
  EXPECT_EQ(info.width, w);
  EXPECT_EQ(info.channels, 1);
  EXPECT_EQ(info.bit_depth, 8);
  Bytes out;
  ASSERT_EQ(CUDL_OK, Decode(png, 1, h, w, &out));
  EXPECT_EQ(out, px);
  ASSERT_EQ(CUDL_OK, Decode(png, 3, h, w, &out));
  for (int c = 0; c < 3; ++c)
    EXPECT_TRUE(std::equal(px.begin(), px.end(), out.begin() + c * w * h)) << "channel " << c;
}

TEST_F(ImageTest, RgbPngIsPlanarAndLumaIsBt601) {
  // Enough pixels that some fall within 1/256 of a rounding tie, where a
  // weight off by one unit of 2^-16 would show.
  const int w = 64, h = 48;
  const Bytes px = Random(w * h * 3, 2);
  const Bytes png = Png(w, h, PNG_COLOR_TYPE_RGB, 8, px);
  Bytes out;
  ASSERT_EQ(CUDL_OK, Decode(png, 3, h, w, &out));
  EXPECT_EQ(out, Planar(px, w * h, 3));
  ASSERT_EQ(CUDL_OK, Decode(png, 1, h, w, &out));
  for (int p = 0; p < w * h; ++p) {
    const int r = px[p * 3], g = px[p * 3 + 1], b = px[p * 3 + 2];
    EXPECT_EQ(out[static_cast<size_t>(p)], Luma(r, g, b)) << "pixel " << p;
    // And the fixed point is the real formula within rounding.
    EXPECT_NEAR(out[static_cast<size_t>(p)], 0.299 * r + 0.587 * g + 0.114 * b, 0.51);
  }
}

TEST_F(ImageTest, AlphaIsDroppedNotComposited) {
  const int w = 3, h = 3;
  const Bytes rgba = Random(w * h * 4, 3);
  Bytes rgb, out;
  for (int p = 0; p < w * h; ++p)
    for (int c = 0; c < 3; ++c) rgb.push_back(rgba[static_cast<size_t>(p * 4 + c)]);
  ASSERT_EQ(CUDL_OK, Decode(Png(w, h, PNG_COLOR_TYPE_RGBA, 8, rgba), 3, h, w, &out));
  EXPECT_EQ(out, Planar(rgb, w * h, 3));

  const Bytes ga = Random(w * h * 2, 4);
  Bytes gray;
  for (int p = 0; p < w * h; ++p) gray.push_back(ga[static_cast<size_t>(p * 2)]);
  cudl_image_info info;
  const Bytes png = Png(w, h, PNG_COLOR_TYPE_GRAY_ALPHA, 8, ga);
  ASSERT_EQ(CUDL_OK, cudl_image_probe(ctx_, png.data(), png.size(), &info));
  EXPECT_EQ(info.channels, 1);
  ASSERT_EQ(CUDL_OK, Decode(png, 1, h, w, &out));
  EXPECT_EQ(out, gray);
}

TEST_F(ImageTest, PaletteIsExpandedAndTransparencyIgnored) {
  const Bytes palette = {10, 20, 30, 200, 100, 0, 7, 8, 9};
  const Bytes trns = {0, 128, 255};
  const int w = 5, h = 2;
  Bytes idx(static_cast<size_t>(w * h)), rgb;
  for (int p = 0; p < w * h; ++p) {
    idx[static_cast<size_t>(p)] = static_cast<uint8_t>(p % 3);
    for (int c = 0; c < 3; ++c) rgb.push_back(palette[static_cast<size_t>((p % 3) * 3 + c)]);
  }
  Bytes out;
  for (const Bytes &t : {Bytes{}, trns}) {
    ASSERT_EQ(CUDL_OK, Decode(Png(w, h, PNG_COLOR_TYPE_PALETTE, 8, idx, palette, t), 3, h, w, &out));
    EXPECT_EQ(out, Planar(rgb, w * h, 3)) << (t.empty() ? "without" : "with") << " tRNS";
  }
}

TEST_F(ImageTest, SixteenBitRoundsToNearest) {
  // Samples chosen around the rounding points of v * 255 / 65535.
  const std::vector<int> values = {0, 128, 129, 385, 386, 32767, 32768, 65407, 65408, 65535};
  const int w = static_cast<int>(values.size()), h = 1;
  Bytes be, rgb_be;
  for (int v : values) {
    be.push_back(static_cast<uint8_t>(v >> 8));
    be.push_back(static_cast<uint8_t>(v & 0xff));
    for (int c = 0; c < 3; ++c) {
      const int u = (v + 1000 * c) % 65536;
      rgb_be.push_back(static_cast<uint8_t>(u >> 8));
      rgb_be.push_back(static_cast<uint8_t>(u & 0xff));
    }
  }
  Bytes out;
  ASSERT_EQ(CUDL_OK, Decode(Png(w, h, PNG_COLOR_TYPE_GRAY, 16, be), 1, h, w, &out));
  for (int i = 0; i < w; ++i)
    EXPECT_EQ(out[static_cast<size_t>(i)], static_cast<int>(std::floor(values[static_cast<size_t>(i)] * 255.0 / 65535.0 + 0.5)))
        << "value " << values[static_cast<size_t>(i)];
  ASSERT_EQ(CUDL_OK, Decode(Png(w, h, PNG_COLOR_TYPE_RGB, 16, rgb_be), 3, h, w, &out));
  for (int c = 0; c < 3; ++c)
    for (int i = 0; i < w; ++i) {
      const int u = (values[static_cast<size_t>(i)] + 1000 * c) % 65536;
      EXPECT_EQ(out[static_cast<size_t>(c * w + i)], static_cast<int>(std::floor(u * 255.0 / 65535.0 + 0.5)));
    }
}

TEST_F(ImageTest, LowBitGrayAndInterlacedAreExpanded) {
  // 1-bit: 0 and 1 are black and white; packed 8 pixels a byte.
  const Bytes bits = {0xA5, 0x80};  // 10100101 1.......
  Bytes out;
  ASSERT_EQ(CUDL_OK, Decode(Png(9, 1, PNG_COLOR_TYPE_GRAY, 1, bits), 1, 1, 9, &out));
  EXPECT_EQ(out, (Bytes{255, 0, 255, 0, 0, 255, 0, 255, 255}));
  const Bytes nibbles = {0x0F, 0x8F};  // 4-bit: 0, 15, 8, 15 -> v * 17
  ASSERT_EQ(CUDL_OK, Decode(Png(4, 1, PNG_COLOR_TYPE_GRAY, 4, nibbles), 1, 1, 4, &out));
  EXPECT_EQ(out, (Bytes{0, 255, 136, 255}));
  const int w = 13, h = 11;
  const Bytes px = Random(w * h * 3, 5);
  ASSERT_EQ(CUDL_OK, Decode(Png(w, h, PNG_COLOR_TYPE_RGB, 8, px, {}, {}, true), 3, h, w, &out));
  EXPECT_EQ(out, Planar(px, w * h, 3));
}

// -------------------------------------------------------------- JPEG ---

TEST_F(ImageTest, JpegGrayAndRgbDecodeCloseToTheSource) {
  const int w = 24, h = 16;
  for (int comps : {1, 3})
    for (bool progressive : {false, true}) {
      const Bytes src = Smooth(w, h, comps);
      const Bytes jpg = Jpeg(w, h, comps, src, 100, progressive);
      cudl_image_info info;
      ASSERT_EQ(CUDL_OK, cudl_image_probe(ctx_, jpg.data(), jpg.size(), &info));
      EXPECT_EQ(info.format, CUDL_IMAGE_FORMAT_JPEG);
      EXPECT_EQ(info.channels, comps);
      EXPECT_EQ(info.bit_depth, 8);
      Bytes out, again;
      ASSERT_EQ(CUDL_OK, Decode(jpg, comps, h, w, &out));
      const Bytes expect = Planar(src, w * h, comps);
      int worst = 0;
      for (size_t i = 0; i < out.size(); ++i) worst = std::max(worst, std::abs(out[i] - expect[i]));
      EXPECT_LE(worst, 4) << comps << " components, progressive " << progressive;
      ASSERT_EQ(CUDL_OK, Decode(jpg, comps, h, w, &again));
      EXPECT_EQ(out, again);
    }
}

// ------------------------------------------------------------ resize ---

TEST_F(ImageTest, ResizeMatchesTheFloat64Reference) {
  struct Case { int h, w, oh, ow, channels; };
  const Case cases[] = {
      {23, 37, 11, 16, 3},  // shrink both, non-integer factors
      {4, 5, 9, 13, 1},     // grow both
      {17, 6, 5, 19, 3},    // shrink one, grow the other
      {3, 100, 1, 1, 1},    // everything to one pixel
      {31, 29, 31, 7, 1},   // one axis unchanged
  };
  for (const Case &k : cases) {
    const Bytes px = Random(static_cast<size_t>(k.h * k.w * k.channels), static_cast<unsigned>(k.h * 100 + k.w));
    const Bytes png = Png(k.w, k.h, k.channels == 1 ? PNG_COLOR_TYPE_GRAY : PNG_COLOR_TYPE_RGB, 8, px);
    Bytes out;
    ASSERT_EQ(CUDL_OK, Decode(png, k.channels, k.oh, k.ow, &out));
    SCOPED_TRACE(::testing::Message() << k.h << "x" << k.w << " -> " << k.oh << "x" << k.ow);
    ExpectResized(out, ReferenceResize(Planar(px, k.h * k.w, k.channels), k.channels, k.h, k.w, k.oh, k.ow));
  }
  // Halving by hand: the triangle widened to support 2 around centres 1
  // and 3 gives taps (0.75, 0.75, 0.25) / 1.75 and (0.25, 0.75, 0.75) /
  // 1.75: 216.25 / 1.75 = 123.57 and 176.25 / 1.75 = 100.71 (a box
  // filter would give 128, 75).
  Bytes out;
  ASSERT_EQ(CUDL_OK, Decode(Png(4, 1, PNG_COLOR_TYPE_GRAY, 8, {0, 255, 100, 50}), 1, 1, 2, &out));
  EXPECT_EQ(out, (Bytes{124, 101}));
}

TEST_F(ImageTest, ResizeOfATallThinImageNeedsLittleMemory) {
  // 20000 x 1 to 4 x 40: the rows-first intermediate would be 20000 x 40
  // doubles (6.4 MB), the columns-first one 4 x 1; the largest block is
  // then the vertical filter's weights (4 x 10001 doubles).
  const int h = 20000, w = 1, oh = 4, ow = 40;
  const Bytes px = Random(static_cast<size_t>(h * w), 11);
  const Bytes png = Png(w, h, PNG_COLOR_TYPE_GRAY, 8, px);
  Bytes out;
  LargestRequest();
  ASSERT_EQ(CUDL_OK, Decode(png, 1, oh, ow, &out));
  EXPECT_LT(LargestRequest(), size_t{1} << 20);
  ExpectResized(out, ReferenceResize(px, 1, h, w, oh, ow));
}

TEST_F(ImageTest, ConvertsBeforeResizing) {
  // Gray from RGB is computed per source pixel, then resampled.
  const int w = 8, h = 6;
  const Bytes px = Random(w * h * 3, 7);
  Bytes luma(static_cast<size_t>(w * h));
  for (int p = 0; p < w * h; ++p) luma[static_cast<size_t>(p)] = Luma(px[p * 3], px[p * 3 + 1], px[p * 3 + 2]);
  Bytes out;
  ASSERT_EQ(CUDL_OK, Decode(Png(w, h, PNG_COLOR_TYPE_RGB, 8, px), 1, 3, 5, &out));
  ExpectResized(out, ReferenceResize(luma, 1, h, w, 3, 5));
}

// ------------------------------------------------- broken and hostile ---

TEST_F(ImageTest, BrokenDataGivesTheDocumentedStatus) {
  const Bytes png = Png(16, 16, PNG_COLOR_TYPE_RGB, 8, Random(16 * 16 * 3, 8));
  const Bytes jpg = Jpeg(32, 32, 3, Smooth(32, 32, 3), 90);
  Bytes out;
  std::string message;
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Decode({'h', 'e', 'l', 'l', 'o'}, 3, 4, 4, &out, &message));
  EXPECT_NE(message.find("not a PNG or JPEG"), std::string::npos) << message;
  EXPECT_EQ(out, Bytes(48, 0xEE)) << "pixels written on failure";
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Decode({}, 3, 4, 4, &out, &message));
  // Truncated: PNG and JPEG, at several points.
  for (size_t cut : {size_t{20}, size_t{40}, png.size() / 2, png.size() - 20}) {
    const Bytes part(png.begin(), png.begin() + static_cast<long>(cut));
    const cudl_status st = Decode(part, 3, 16, 16, &out, &message);
    EXPECT_EQ(CUDL_ERR_FILE_TRUNCATED, st) << "PNG cut at " << cut << ": " << message;
  }
  for (size_t cut : {jpg.size() / 2, jpg.size() - 10}) {
    const Bytes part(jpg.begin(), jpg.begin() + static_cast<long>(cut));
    EXPECT_EQ(CUDL_ERR_FILE_TRUNCATED, Decode(part, 3, 32, 32, &out, &message)) << "JPEG cut at " << cut;
    EXPECT_NE(message.find("JPEG"), std::string::npos) << message;
  }
  // A flipped byte in the pixel data: the CRC (PNG), the entropy data (JPEG).
  Bytes bad = png;
  bad[bad.size() - 30] ^= 0x40;
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Decode(bad, 3, 16, 16, &out, &message));
  EXPECT_NE(message.find("PNG"), std::string::npos) << message;
  EXPECT_EQ(message.find('\n'), std::string::npos) << "one line";
  // JPEG has no checksum: what is certain to be caught is entropy data
  // that stops at a marker (EOI here) before the last block.
  size_t sos = 0;
  for (size_t i = 2; i + 1 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xDA) sos = i;
  ASSERT_GT(sos, 0u);
  Bytes bad_jpg(jpg.begin(), jpg.begin() + static_cast<long>(sos + 14 + 8));
  bad_jpg.push_back(0xFF);
  bad_jpg.push_back(0xD9);
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Decode(bad_jpg, 3, 32, 32, &out, &message));
  EXPECT_NE(message.find("JPEG"), std::string::npos) << message;
}

// Patch a PNG's IHDR sides (and its CRC, so that only the size is wrong).
Bytes PngWithSides(uint32_t width, uint32_t height) {
  Bytes png = Png(1, 1, PNG_COLOR_TYPE_GRAY, 8, {0});
  for (int i = 0; i < 4; ++i) {
    png[static_cast<size_t>(16 + i)] = static_cast<uint8_t>(width >> (24 - 8 * i));
    png[static_cast<size_t>(20 + i)] = static_cast<uint8_t>(height >> (24 - 8 * i));
  }
  const uint32_t crc = static_cast<uint32_t>(crc32(0, png.data() + 12, 17));
  for (int i = 0; i < 4; ++i) png[static_cast<size_t>(29 + i)] = static_cast<uint8_t>(crc >> (24 - 8 * i));
  return png;
}

// Patch a baseline JPEG's SOF0 sides.
Bytes JpegWithSides(int width, int height) {
  Bytes jpg = Jpeg(8, 8, 1, Smooth(8, 8, 1), 90);
  for (size_t i = 2; i + 8 < jpg.size(); ++i)
    if (jpg[i] == 0xFF && jpg[i + 1] == 0xC0) {
      jpg[i + 5] = static_cast<uint8_t>(height >> 8);
      jpg[i + 6] = static_cast<uint8_t>(height & 0xff);
      jpg[i + 7] = static_cast<uint8_t>(width >> 8);
      jpg[i + 8] = static_cast<uint8_t>(width & 0xff);
      return jpg;
    }
  ADD_FAILURE() << "no SOF0 marker";
  return jpg;
}

TEST_F(ImageTest, HugeDeclaredSidesAreRefusedBeforeAllocating) {
  Bytes out;
  std::string message;
  struct Case { Bytes data; const char *what; };
  const Case cases[] = {
      {PngWithSides(40000, 8), "PNG side above the limit"},
      {PngWithSides(30000, 30000), "PNG above the pixel budget"},
      {PngWithSides(0, 5), "PNG side 0"},
      {PngWithSides(0x80000000u, 1), "PNG side 2^31"},
      {JpegWithSides(30000, 30000), "JPEG above the pixel budget"},
      {JpegWithSides(65000, 1), "JPEG side above the limit"},
  };
  for (const Case &k : cases) {
    LargestRequest();
    EXPECT_EQ(CUDL_ERR_FILE_SHAPE, Decode(k.data, 1, 8, 8, &out, &message)) << k.what << ": " << message;
    EXPECT_LT(LargestRequest(), size_t{1} << 16) << k.what;
    cudl_image_info info;
    EXPECT_EQ(CUDL_ERR_FILE_SHAPE, cudl_image_probe(ctx_, k.data.data(), k.data.size(), &info)) << k.what;
  }
}

TEST_F(ImageTest, ChunkLongerThanTheFileIsRefusedBeforeLibpngAllocatesIt) {
  // libpng would allocate a zTXt's declared 2^31 - 1 bytes before reading
  // them (what fuzz_image found); the chunk walk refuses it first.
  const Bytes good = Png(3, 2, PNG_COLOR_TYPE_GRAY, 8, {1, 2, 3, 4, 5, 6});
  Bytes png(good.begin(), good.begin() + 33);  // signature + IHDR
  const uint8_t ztxt[] = {0x7f, 0xff, 0xff, 0xff, 'z', 'T', 'X', 't', 'k', 0, 0, 0x78, 0x9c};
  png.insert(png.end(), ztxt, ztxt + sizeof ztxt);
  png.insert(png.end(), good.begin() + 33, good.end());
  Bytes out;
  std::string message;
  EXPECT_EQ(CUDL_ERR_FILE_TRUNCATED, Decode(png, 1, 2, 3, &out, &message));
  EXPECT_NE(message.find("chunk zTXt at byte 33 declares 2147483647 bytes"), std::string::npos) << message;
  // A chunk type that is not letters is not printed.
  png[37] = '\n';
  EXPECT_EQ(CUDL_ERR_FILE_TRUNCATED, Decode(png, 1, 2, 3, &out, &message));
  EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  // And a file cut before IEND.
  EXPECT_EQ(CUDL_ERR_FILE_TRUNCATED, Decode(Bytes(good.begin(), good.end() - 12), 1, 2, 3, &out, &message));
}

TEST_F(ImageTest, DecompressionBombWithoutItsDataIsTruncatedQuickly) {
  // 8000 x 8000 (within the budget) declared, a few bytes of pixels.
  Bytes png = PngWithSides(8000, 8000);
  std::string message;
  Bytes out;
  EXPECT_EQ(CUDL_ERR_FILE_TRUNCATED, Decode(png, 1, 8, 8, &out, &message)) << message;
  Bytes jpg = JpegWithSides(8000, 8000);
  EXPECT_NE(CUDL_OK, Decode(jpg, 1, 8, 8, &out, &message));
}

TEST_F(ImageTest, ArgumentErrors) {
  const Bytes png = Png(2, 2, PNG_COLOR_TYPE_GRAY, 8, {1, 2, 3, 4});
  Bytes out(64);
  cudl_image_info info;
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_decode(nullptr, png.data(), png.size(), 1, 2, 2, out.data()));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_decode(ctx_, nullptr, 5, 1, 2, 2, out.data()));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_decode(ctx_, png.data(), png.size(), 2, 2, 2, out.data()));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_decode(ctx_, png.data(), png.size(), 1, 0, 2, out.data()));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_decode(ctx_, png.data(), png.size(), 1, 2, 40000, out.data()));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_decode(ctx_, png.data(), png.size(), 1, 2, 2, nullptr));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_probe(ctx_, png.data(), png.size(), nullptr));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_image_load(ctx_, nullptr, 1, 2, 2, out.data()));
  EXPECT_EQ(CUDL_ERR_IO, cudl_image_load(ctx_, (dir_ + "/missing.png").c_str(), 1, 2, 2, out.data()));
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("missing.png"), std::string::npos);
  EXPECT_EQ(CUDL_ERR_IO, cudl_image_probe_file(ctx_, dir_.c_str(), &info)) << "a directory";
  // The context stays usable.
  const std::string path = Write("ok.png", png);
  ASSERT_EQ(CUDL_OK, cudl_image_load(ctx_, path.c_str(), 1, 2, 2, out.data()));
  EXPECT_EQ(Bytes(out.begin(), out.begin() + 4), (Bytes{1, 2, 3, 4}));
  ASSERT_EQ(CUDL_OK, cudl_image_probe_file(ctx_, path.c_str(), &info));
  EXPECT_EQ(info.width, 2);
}

TEST_F(ImageTest, FailedAllocationsLeakNothing) {
  const Bytes png = Png(9, 7, PNG_COLOR_TYPE_RGB, 8, Random(9 * 7 * 3, 9));
  const Bytes jpg = Jpeg(9, 7, 3, Smooth(9, 7, 3));
  Bytes out(3 * 5 * 4);
  for (const Bytes *data : {&png, &jpg})
    for (size_t k = 1; k <= 12; ++k) {
      counting_.fail_at = counting_.allocs + counting_.failed + k;
      const cudl_status st = cudl_image_decode(ctx_, data->data(), data->size(), 3, 5, 4, out.data());
      counting_.fail_at = 0;
      EXPECT_TRUE(st == CUDL_OK || st == CUDL_ERR_OUT_OF_MEMORY) << cudl_status_name(st);
      EXPECT_TRUE(counting_.live.empty()) << "allocation " << k;
    }
}

// ----------------------------------------------------------- folders ---

class FolderTest : public ImageTest {
 protected:
  // dir/cats: 3 gray 6x5 images (one in a subdirectory), a dotfile;
  // dir/dogs: 2 good, one corrupt, one truncated, one text file;
  // dir/birds: empty; dir/.cache: ignored; a file in dir itself: ignored.
  void MakeTree() {
    for (int i = 0; i < 8; ++i) gray_[i] = Random(30, static_cast<unsigned>(100 + i));
    Write("cats/b.png", Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[0]));
    Write("cats/a.png", Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[1]));
    Write("cats/z/c.png", Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[2]));
    Write("cats/.hidden.png", Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[3]));
    Write("dogs/d1.png", Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[4]));
    Write("dogs/d2.jpg", Jpeg(6, 5, 1, Smooth(6, 5, 1)));
    Bytes corrupt = Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[5]);
    corrupt[corrupt.size() - 20] ^= 0x55;
    Write("dogs/bad.png", corrupt);
    const Bytes whole = Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[6]);
    Write("dogs/trunc.png", Bytes(whole.begin(), whole.begin() + 40));
    Write("dogs/notes.txt", {'h', 'i', '\n'});
    MakeDir("birds");
    Write(".cache/x.png", Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[7]));
    Write("README.png", Png(6, 5, PNG_COLOR_TYPE_GRAY, 8, gray_[7]));
  }

  cudl_status Load(const cudl_folder_options &o, cudl_dataset **ds, std::string *message = nullptr) {
    const cudl_status st = cudl_dataset_load_folder(ctx_, dir_.c_str(), &o, ds);
    if (message != nullptr) *message = st == CUDL_OK ? "" : cudl_context_last_error(ctx_);
    return st;
  }

  Bytes gray_[8];
};

TEST_F(FolderTest, ClassesFilesLabelsAndSkippedFiles) {
  MakeTree();
  cudl_test::LogCapture log;
  cudl_dataset *ds = nullptr;
  ASSERT_EQ(CUDL_OK, Load(cudl_folder_options_default(), &ds)) << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_dataset_classes(ds), 3);
  EXPECT_STREQ(cudl_dataset_class_name(ds, 0), "birds");
  EXPECT_STREQ(cudl_dataset_class_name(ds, 1), "cats");
  EXPECT_STREQ(cudl_dataset_class_name(ds, 2), "dogs");
  EXPECT_EQ(cudl_dataset_class_name(ds, 3), nullptr);
  EXPECT_EQ(cudl_dataset_channels(ds), 1);
  EXPECT_EQ(cudl_dataset_height(ds), 5);
  EXPECT_EQ(cudl_dataset_width(ds), 6);
  ASSERT_EQ(cudl_dataset_count(ds), 5);
  const char *names[5] = {"cats/a.png", "cats/b.png", "cats/z/c.png", "dogs/d1.png", "dogs/d2.jpg"};
  const int labels[5] = {1, 1, 1, 2, 2};
  for (int i = 0; i < 5; ++i) {
    EXPECT_EQ(std::string(cudl_dataset_source(ds, i)), dir_ + "/" + names[i]);
    EXPECT_EQ(cudl_dataset_label(ds, i), labels[i]) << names[i];
  }
  EXPECT_TRUE(std::equal(gray_[1].begin(), gray_[1].end(), cudl_dataset_image(ds, 0)));
  EXPECT_TRUE(std::equal(gray_[0].begin(), gray_[0].end(), cudl_dataset_image(ds, 1)));
  EXPECT_TRUE(std::equal(gray_[2].begin(), gray_[2].end(), cudl_dataset_image(ds, 2)));
  EXPECT_TRUE(std::equal(gray_[4].begin(), gray_[4].end(), cudl_dataset_image(ds, 3)));
  ASSERT_EQ(cudl_dataset_skipped_count(ds), 3);
  const char *skipped[3] = {"dogs/bad.png", "dogs/notes.txt", "dogs/trunc.png"};
  const char *reasons[3] = {"PNG", "not a PNG or JPEG", "ends"};
  for (int i = 0; i < 3; ++i) {
    const char *path = nullptr, *reason = nullptr;
    ASSERT_EQ(CUDL_OK, cudl_dataset_skipped(ds, i, &path, &reason));
    EXPECT_EQ(std::string(path), dir_ + "/" + skipped[i]);
    EXPECT_NE(std::string(reason).find(reasons[i]), std::string::npos) << reason;
  }
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_skipped(ds, 3, nullptr, nullptr));
  EXPECT_EQ(log.count(CUDL_LOG_WARN), 3u);
  cudl_dataset_destroy(ds);
}

TEST_F(FolderTest, StrictNamesTheFirstBadFile) {
  MakeTree();
  cudl_folder_options o = cudl_folder_options_default();
  o.strict = 1;
  cudl_dataset *ds = nullptr;
  std::string message;
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Load(o, &ds, &message));
  EXPECT_EQ(ds, nullptr);
  EXPECT_NE(message.find("dogs/bad.png"), std::string::npos) << message;
  // Also with a size given (no header pass).
  o.height = 5;
  o.width = 6;
  o.channels = 1;
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Load(o, &ds, &message));
  EXPECT_NE(message.find("dogs/bad.png"), std::string::npos) << message;
}

TEST_F(FolderTest, ClassListMapsLabels) {
  MakeTree();
  const char *classes[] = {"dogs", "fish", "cats", "birds"};
  cudl_folder_options o = cudl_folder_options_default();
  o.class_names = classes;
  o.class_count = 4;
  cudl_dataset *ds = nullptr;
  ASSERT_EQ(CUDL_OK, Load(o, &ds));
  EXPECT_EQ(cudl_dataset_classes(ds), 4);
  ASSERT_EQ(cudl_dataset_count(ds), 5);
  // In label order: dogs (0) first, then cats (2).
  EXPECT_EQ(cudl_dataset_label(ds, 0), 0);
  EXPECT_EQ(cudl_dataset_label(ds, 1), 0);
  EXPECT_EQ(cudl_dataset_label(ds, 2), 2);
  EXPECT_EQ(std::string(cudl_dataset_source(ds, 2)), dir_ + "/cats/a.png");
  EXPECT_STREQ(cudl_dataset_class_name(ds, 1), "fish");
  cudl_dataset_destroy(ds);
  const char *too_few[] = {"cats", "birds"};
  o.class_names = too_few;
  o.class_count = 2;
  std::string message;
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, Load(o, &ds, &message));
  EXPECT_NE(message.find("dogs"), std::string::npos) << message;
}

TEST_F(FolderTest, SizesAndChannelsFromTheImages) {
  Write("a/1.png", Png(4, 3, PNG_COLOR_TYPE_GRAY, 8, Random(12, 1)));
  Write("b/2.png", Png(5, 3, PNG_COLOR_TYPE_GRAY, 8, Random(15, 2)));
  cudl_dataset *ds = nullptr;
  std::string message;
  EXPECT_EQ(CUDL_ERR_FILE_SHAPE, Load(cudl_folder_options_default(), &ds, &message));
  EXPECT_NE(message.find("a/1.png"), std::string::npos) << message;
  EXPECT_NE(message.find("b/2.png"), std::string::npos) << message;
  EXPECT_NE(message.find("size"), std::string::npos) << message;
  // With a size, and a colour image among them: 3 channels.
  const Bytes rgb = Random(2 * 2 * 3, 3);
  Write("b/3.png", Png(2, 2, PNG_COLOR_TYPE_RGB, 8, rgb));
  cudl_folder_options o = cudl_folder_options_default();
  o.height = 2;
  o.width = 2;
  ASSERT_EQ(CUDL_OK, Load(o, &ds));
  EXPECT_EQ(cudl_dataset_channels(ds), 3);
  ASSERT_EQ(cudl_dataset_count(ds), 3);
  EXPECT_TRUE(std::equal(cudl_dataset_image(ds, 2), cudl_dataset_image(ds, 2) + 12, Planar(rgb, 4, 3).begin()));
  cudl_dataset_destroy(ds);
  o.channels = 1;
  ASSERT_EQ(CUDL_OK, Load(o, &ds));
  EXPECT_EQ(cudl_dataset_channels(ds), 1);
  cudl_dataset_destroy(ds);
}

TEST_F(FolderTest, SameResultWhateverTheThreadCount) {
  for (int c = 0; c < 4; ++c)
    for (int i = 0; i < 9; ++i)
      Write("c" + std::to_string(c) + "/" + std::to_string(i) + ".png",
            Png(11, 9, PNG_COLOR_TYPE_RGB, 8, Random(11 * 9 * 3, static_cast<unsigned>(c * 10 + i))));
  Write("c1/bad.png", {0x89, 'P', 'N', 'G'});
  cudl_folder_options o = cudl_folder_options_default();
  o.height = 7;
  o.width = 5;
  std::vector<Bytes> results;
#ifdef _OPENMP
  const int before = omp_get_max_threads();
  for (int threads : {1, 3, 7}) {
    omp_set_num_threads(threads);
#else
  for (int threads : {1}) {
#endif
    cudl_dataset *ds = nullptr;
    ASSERT_EQ(CUDL_OK, Load(o, &ds)) << threads;
    ASSERT_EQ(cudl_dataset_count(ds), 36);
    EXPECT_EQ(cudl_dataset_skipped_count(ds), 1);
    Bytes all;
    for (int i = 0; i < 36; ++i) {
      all.insert(all.end(), cudl_dataset_image(ds, i), cudl_dataset_image(ds, i) + 3 * 7 * 5);
      all.push_back(static_cast<uint8_t>(cudl_dataset_label(ds, i)));
    }
    results.push_back(all);
    cudl_dataset_destroy(ds);
  }
#ifdef _OPENMP
  omp_set_num_threads(before);
#endif
  for (const Bytes &r : results) EXPECT_EQ(r, results[0]);
}

TEST_F(FolderTest, ErrorsOfTheFolderItself) {
  cudl_dataset *ds = nullptr;
  std::string message;
  EXPECT_EQ(CUDL_ERR_FILE_SHAPE, Load(cudl_folder_options_default(), &ds, &message)) << "no classes";
  Write("only/notes.txt", {'x'});
  EXPECT_EQ(CUDL_ERR_FILE_SHAPE, Load(cudl_folder_options_default(), &ds, &message));
  EXPECT_NE(message.find("no readable image"), std::string::npos) << message;
  EXPECT_EQ(CUDL_ERR_IO, cudl_dataset_load_folder(ctx_, (dir_ + "/missing").c_str(), nullptr, &ds));
  cudl_folder_options o = cudl_folder_options_default();
  o.channels = 2;
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, Load(o, &ds));
  o.channels = 0;
  o.height = 4;
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, Load(o, &ds)) << "height without width";
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_folder(ctx_, nullptr, nullptr, &ds));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_load_folder(ctx_, dir_.c_str(), nullptr, nullptr));
  EXPECT_EQ(ds, nullptr);
}

TEST_F(FolderTest, LayoutDetection) {
  cudl_folder_layout layout;
  EXPECT_EQ(CUDL_ERR_FILE_SHAPE, cudl_folder_layout_detect(ctx_, dir_.c_str(), &layout));
  Write("cats/a.png", Png(1, 1, PNG_COLOR_TYPE_GRAY, 8, {0}));
  Write("dogs/a.png", Png(1, 1, PNG_COLOR_TYPE_GRAY, 8, {0}));
  ASSERT_EQ(CUDL_OK, cudl_folder_layout_detect(ctx_, dir_.c_str(), &layout));
  EXPECT_EQ(layout.splits, 0);
  EXPECT_EQ(layout.classes, 2);
  Write("train/x/a.png", Png(1, 1, PNG_COLOR_TYPE_GRAY, 8, {0}));
  Write("test/x/a.png", Png(1, 1, PNG_COLOR_TYPE_GRAY, 8, {0}));
  ASSERT_EQ(CUDL_OK, cudl_folder_layout_detect(ctx_, dir_.c_str(), &layout));
  EXPECT_EQ(layout.splits, 1);
  EXPECT_EQ(layout.has_train, 1);
  EXPECT_EQ(layout.has_test, 1);
  EXPECT_EQ(layout.has_val, 0);
  EXPECT_EQ(layout.classes, 1);
  MakeDir("val");
  ASSERT_EQ(CUDL_OK, cudl_folder_layout_detect(ctx_, dir_.c_str(), &layout));
  EXPECT_EQ(layout.has_val, 1);
  EXPECT_EQ(CUDL_ERR_IO, cudl_folder_layout_detect(ctx_, (dir_ + "/nope").c_str(), &layout));
}

TEST_F(ImageTest, ClassNamesOfOtherDatasets) {
  const uint8_t px[4] = {0, 1, 2, 3}, labels[4] = {0, 1, 1, 0};
  cudl_dataset *ds = nullptr;
  ASSERT_EQ(CUDL_OK, cudl_dataset_create(ctx_, 4, 1, 1, 1, 2, px, labels, &ds));
  EXPECT_EQ(cudl_dataset_class_name(ds, 0), nullptr);
  const char *dup[] = {"a", "a"}, *good[] = {"no", "yes"};
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_set_class_names(ctx_, ds, dup, 2));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_set_class_names(ctx_, ds, good, 3));
  EXPECT_EQ(cudl_dataset_class_name(ds, 0), nullptr);
  ASSERT_EQ(CUDL_OK, cudl_dataset_set_class_names(ctx_, ds, good, 2));
  EXPECT_STREQ(cudl_dataset_class_name(ds, 1), "yes");
  cudl_dataset_destroy(ds);
  if (access("/usr/share/datasets/fashion-mnist", R_OK) != 0) {
    GTEST_SKIP() << "Debian's dataset-fashion-mnist is not installed";
  }
  ASSERT_EQ(CUDL_OK, cudl_dataset_load(ctx_, "fashion-mnist", nullptr, 0, &ds));
  EXPECT_STREQ(cudl_dataset_class_name(ds, 0), "T-shirt/top");
  EXPECT_STREQ(cudl_dataset_class_name(ds, 9), "Ankle boot");
  cudl_dataset_destroy(ds);
}

}  // namespace

// ------------------------------------------------- streamed folders ---
//
// A folder streamed from disk must be the cached folder in every
// observable way (images kept, order, labels, skipped files, statistics,
// pixels, batches, splits), and a file that fails after the load must fail
// the read that needs it, naming it.

class StreamTest : public FolderTest {
 protected:
  // 3 classes of PNGs and JPEGs of different sizes and kinds (resized to
  // 9 x 10 RGB), one corrupt and one text file among them.
  void MakeSet() {
    for (int c = 0; c < 3; ++c)
      for (int i = 0; i < 9; ++i) {
        const std::string name = "k" + std::to_string(c) + "/" + std::to_string(i);
        const unsigned seed = static_cast<unsigned>(c * 100 + i);
        const int w = 7 + i, h = 6 + (i * 5) % 7;
        if (i % 3 == 0)
          Write(name + ".jpg", Jpeg(w, h, 3, Random(static_cast<size_t>(w * h * 3), seed), 90));
        else if (i % 3 == 1)
          Write(name + ".png", Png(w, h, PNG_COLOR_TYPE_GRAY, 8, Random(static_cast<size_t>(w * h), seed)));
        else
          Write(name + ".png", Png(w, h, PNG_COLOR_TYPE_RGB, 8, Random(static_cast<size_t>(w * h * 3), seed)));
      }
    Bytes corrupt = Png(8, 8, PNG_COLOR_TYPE_GRAY, 8, Random(64, 7));
    corrupt[corrupt.size() - 20] ^= 0x55;
    Write("k1/4a.png", corrupt);
    Write("k2/notes.txt", {'n', 'o'});
    files_ = 29;
  }
  cudl_folder_options Options(int stream) {
    cudl_folder_options o = cudl_folder_options_default();
    o.height = 9;
    o.width = 10;
    o.stream = stream;
    return o;
  }
  Bytes Read(const cudl_dataset *ds, int64_t i) {
    Bytes out(static_cast<size_t>(cudl_dataset_channels(ds) * cudl_dataset_height(ds) * cudl_dataset_width(ds)));
    const cudl_status st = cudl_dataset_image_read(ds, i, out.data());
    EXPECT_EQ(CUDL_OK, st) << cudl_context_last_error(ctx_);
    return out;
  }
  // Every batch of `epochs` epochs: the x bytes then the labels.
  std::vector<Bytes> Batches(const cudl_dataset *ds, int epochs, int64_t batch) {
    cudl_loader_config c = cudl_loader_config_default();
    c.batch = batch;
    c.seed = 11;
    c.augment = 1;
    c.crop_padding = 2;
    c.horizontal_flip = 1;
    for (int k = 0; k < 3; ++k) {
      c.mean[k] = 0.25f * static_cast<float>(k + 1);
      c.std[k] = 0.3f;
    }
    cudl_loader *l = nullptr;
    std::vector<Bytes> out;
    EXPECT_EQ(CUDL_OK, cudl_loader_create(ctx_, ds, &c, &l)) << cudl_context_last_error(ctx_);
    if (l == nullptr) return out;
    const int64_t xs[4] = {batch, 3, 9, 10}, ys[1] = {batch};
    cudl_tensor *x = nullptr, *y = nullptr;
    EXPECT_EQ(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, xs, &x));
    EXPECT_EQ(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, ys, &y));
    for (int64_t b = 0; b < epochs * cudl_loader_batches(l); ++b) {
      int64_t rows = 0;
      const cudl_status st = cudl_loader_next(l, x, y, &rows, nullptr);
      EXPECT_EQ(CUDL_OK, st) << cudl_context_last_error(ctx_);
      if (st != CUDL_OK) break;
      // The whole tensors, then only the batch's rows of each.
      Bytes xb(static_cast<size_t>(batch * 270 * 4)), yb(static_cast<size_t>(batch * 4));
      EXPECT_EQ(CUDL_OK, cudl_tensor_copy_to_host(x, xb.data(), xb.size()));
      EXPECT_EQ(CUDL_OK, cudl_tensor_copy_to_host(y, yb.data(), yb.size()));
      Bytes got(xb.begin(), xb.begin() + rows * 270 * 4);
      got.insert(got.end(), yb.begin(), yb.begin() + rows * 4);
      out.push_back(got);
    }
    cudl_tensor_destroy(x);
    cudl_tensor_destroy(y);
    cudl_loader_destroy(l);
    return out;
  }
  // The skipped list as "path|reason" lines.
  static std::vector<std::string> Skipped(const cudl_dataset *ds) {
    std::vector<std::string> out;
    for (int64_t i = 0; i < cudl_dataset_skipped_count(ds); ++i) {
      const char *path = nullptr, *reason = nullptr;
      EXPECT_EQ(CUDL_OK, cudl_dataset_skipped(ds, i, &path, &reason));
      out.push_back(std::string(path) + "|" + reason);
    }
    return out;
  }
  // Count, classes, labels, sources and pixels of two datasets agree.
  void ExpectSameImages(const cudl_dataset *a, const cudl_dataset *b) {
    ASSERT_EQ(cudl_dataset_count(a), cudl_dataset_count(b));
    EXPECT_EQ(cudl_dataset_classes(a), cudl_dataset_classes(b));
    for (int64_t i = 0; i < cudl_dataset_count(a); ++i) {
      EXPECT_EQ(cudl_dataset_label(a, i), cudl_dataset_label(b, i)) << i;
      EXPECT_EQ(Read(a, i), Read(b, i)) << i;
    }
    float ma[3], sa[3], mb[3], sb[3];
    ASSERT_EQ(CUDL_OK, cudl_dataset_channel_stats(a, ma, sa));
    ASSERT_EQ(CUDL_OK, cudl_dataset_channel_stats(b, mb, sb));
    for (int c = 0; c < cudl_dataset_channels(a); ++c) {
      EXPECT_EQ(ma[c], mb[c]) << c;  // bit for bit: the same integer sums
      EXPECT_EQ(sa[c], sb[c]) << c;
    }
  }
  int64_t files_ = 0;
};

TEST_F(StreamTest, SameImagesLabelsSkippedAndStatisticsAsCached) {
  MakeSet();
  cudl_test::LogCapture log;
  cudl_dataset *cached = nullptr, *streamed = nullptr;
  ASSERT_EQ(CUDL_OK, Load(Options(0), &cached)) << cudl_context_last_error(ctx_);
  const size_t cached_warnings = log.count(CUDL_LOG_WARN);
  ASSERT_EQ(CUDL_OK, Load(Options(1), &streamed)) << cudl_context_last_error(ctx_);
  EXPECT_EQ(log.count(CUDL_LOG_WARN), 2 * cached_warnings);
  EXPECT_EQ(cudl_dataset_streamed(cached), 0);
  EXPECT_EQ(cudl_dataset_streamed(streamed), 1);
  EXPECT_EQ(cudl_dataset_count(cached), 27);
  EXPECT_EQ(cudl_dataset_channels(streamed), 3);
  EXPECT_EQ(cudl_dataset_height(streamed), 9);
  EXPECT_EQ(cudl_dataset_width(streamed), 10);
  ExpectSameImages(cached, streamed);
  for (int64_t i = 0; i < cudl_dataset_count(cached); ++i) {
    EXPECT_STREQ(cudl_dataset_source(cached, static_cast<int>(i)), cudl_dataset_source(streamed, static_cast<int>(i)));
    const uint8_t *p = cudl_dataset_image(cached, i);
    ASSERT_NE(p, nullptr);
    EXPECT_EQ(Read(cached, i), Bytes(p, p + 270)) << "image_read of a cached set copies its pixels";
    EXPECT_EQ(cudl_dataset_image(streamed, i), nullptr) << "no pixels in memory";
  }
  EXPECT_EQ(Skipped(cached), Skipped(streamed));
  ASSERT_EQ(Skipped(streamed).size(), 2u);
  EXPECT_NE(Skipped(streamed)[0].find("k1/4a.png"), std::string::npos);
  // Not a constant: the statistics come from the images.
  float mean[3], sd[3];
  ASSERT_EQ(CUDL_OK, cudl_dataset_channel_stats(streamed, mean, sd));
  EXPECT_GT(sd[0], 0.1f);
  EXPECT_NEAR(mean[1], 0.5, 0.1);
  cudl_dataset_destroy(cached);
  cudl_dataset_destroy(streamed);
}

TEST_F(StreamTest, StrictFailsOnTheSameFile) {
  MakeSet();
  cudl_folder_options o = Options(1);
  o.strict = 1;
  cudl_dataset *ds = nullptr;
  std::string streamed, cached;
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Load(o, &ds, &streamed));
  EXPECT_EQ(ds, nullptr);
  o.stream = 0;
  EXPECT_EQ(CUDL_ERR_FILE_FORMAT, Load(o, &ds, &cached));
  EXPECT_EQ(streamed, cached);
  EXPECT_NE(streamed.find("k1/4a.png"), std::string::npos) << streamed;
}

TEST_F(StreamTest, TheCacheBudgetDecides) {
  MakeSet();
  // Every file found counts, the two unreadable ones too.
  const uint64_t decoded = static_cast<uint64_t>(files_) * 270;
  cudl_folder_options o = Options(0);
  cudl_dataset *ds = nullptr;
  o.max_cache_bytes = decoded;
  ASSERT_EQ(CUDL_OK, Load(o, &ds));
  EXPECT_EQ(cudl_dataset_streamed(ds), 0) << "exactly the budget: cached";
  cudl_dataset_destroy(ds);
  o.max_cache_bytes = decoded - 1;
  ASSERT_EQ(CUDL_OK, Load(o, &ds));
  EXPECT_EQ(cudl_dataset_streamed(ds), 1) << "one byte over: streamed";
  cudl_dataset_destroy(ds);
  o.max_cache_bytes = 0;  // the default: this machine has more than 16 KiB
  ASSERT_EQ(CUDL_OK, Load(o, &ds));
  EXPECT_EQ(cudl_dataset_streamed(ds), 0);
  cudl_dataset_destroy(ds);
  const uint64_t budget = cudl_folder_default_cache_bytes();
  EXPECT_GT(budget, 0u);
  EXPECT_LE(budget, CUDL_DATASET_MAX_BYTES);
}

TEST_F(StreamTest, AllocationFailureStreamsInsteadOfFailing) {
  MakeSet();
  // The cache's block (files x 270 bytes) is the only request that large:
  // the allocator refuses it as a full heap would.
  counting_.max_size = static_cast<size_t>(files_) * 270 - 1;
  cudl_dataset *ds = nullptr;
  ASSERT_EQ(CUDL_OK, Load(Options(0), &ds)) << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_dataset_streamed(ds), 1);
  EXPECT_EQ(cudl_dataset_count(ds), 27);
  cudl_dataset_destroy(ds);
}

TEST_F(StreamTest, BatchesAreByteIdenticalToCachedOnes) {
  MakeSet();
  cudl_dataset *cached = nullptr, *streamed = nullptr;
  ASSERT_EQ(CUDL_OK, Load(Options(0), &cached));
  ASSERT_EQ(CUDL_OK, Load(Options(1), &streamed));
  const std::vector<Bytes> want = Batches(cached, 3, 8);  // 4 batches, the last of 3
  ASSERT_EQ(want.size(), 12u);
  EXPECT_NE(want[0], want[4]) << "the epochs differ: shuffled and augmented";
#ifdef _OPENMP
  const int before = omp_get_max_threads();
  for (int threads : {1, 2, 5}) {
    omp_set_num_threads(threads);
#else
  for (int threads : {1}) {
#endif
    const std::vector<Bytes> got = Batches(streamed, 3, 8);
    ASSERT_EQ(got.size(), want.size()) << threads;
    for (size_t b = 0; b < want.size(); ++b) EXPECT_EQ(got[b], want[b]) << "batch " << b << ", " << threads << " threads";
  }
#ifdef _OPENMP
  omp_set_num_threads(before);
#endif
  cudl_dataset_destroy(cached);
  cudl_dataset_destroy(streamed);
}

TEST_F(StreamTest, SplitOfStreamedIsTheSplitOfCached) {
  MakeSet();
  cudl_dataset *cached = nullptr, *streamed = nullptr;
  ASSERT_EQ(CUDL_OK, Load(Options(0), &cached));
  ASSERT_EQ(CUDL_OK, Load(Options(1), &streamed));
  cudl_dataset *cr = nullptr, *ch = nullptr, *sr = nullptr, *sh = nullptr;
  ASSERT_EQ(CUDL_OK, cudl_dataset_split(cached, 0.3, 5, &cr, &ch));
  ASSERT_EQ(CUDL_OK, cudl_dataset_split(streamed, 0.3, 5, &sr, &sh)) << cudl_context_last_error(ctx_);
  EXPECT_EQ(cudl_dataset_streamed(sr), 1);
  EXPECT_EQ(cudl_dataset_streamed(sh), 1);
  EXPECT_EQ(cudl_dataset_count(sh), 9);
  ExpectSameImages(cr, sr);
  ExpectSameImages(ch, sh);
  // A part's statistics are its own, not the whole set's.
  float whole[3], part[3], sd[3];
  ASSERT_EQ(CUDL_OK, cudl_dataset_channel_stats(streamed, whole, sd));
  ASSERT_EQ(CUDL_OK, cudl_dataset_channel_stats(sh, part, sd));
  EXPECT_NE(whole[0], part[0]);
  // And the loader reads a streamed part as the cached part.
  EXPECT_EQ(Batches(sr, 2, 5), Batches(cr, 2, 5));
  for (cudl_dataset *d : {cr, ch, sr, sh, cached, streamed}) cudl_dataset_destroy(d);
}

TEST_F(StreamTest, AFileGoneOrChangedAfterTheLoadFailsTheReadNamingIt) {
  MakeSet();
  cudl_dataset *ds = nullptr;
  ASSERT_EQ(CUDL_OK, Load(Options(1), &ds));
  const std::string gone = cudl_dataset_source(ds, 4), changed = cudl_dataset_source(ds, 20);
  ASSERT_EQ(std::remove(gone.c_str()), 0);
  // Another valid image in a file's place.
  Write(changed.substr(dir_.size() + 1), Png(8, 8, PNG_COLOR_TYPE_RGB, 8, Random(192, 999)));
  Bytes out(270);
  EXPECT_EQ(CUDL_ERR_IO, cudl_dataset_image_read(ds, 4, out.data()));
  std::string message = cudl_context_last_error(ctx_);
  EXPECT_NE(message.find(gone), std::string::npos) << message;
  EXPECT_NE(message.find("cannot open"), std::string::npos) << message;
  EXPECT_EQ(CUDL_ERR_IO, cudl_dataset_image_read(ds, 20, out.data()));
  message = cudl_context_last_error(ctx_);
  EXPECT_NE(message.find(changed), std::string::npos) << message;
  EXPECT_NE(message.find("changed since the dataset was loaded"), std::string::npos) << message;
  EXPECT_EQ(CUDL_OK, cudl_dataset_image_read(ds, 5, out.data())) << "the others still read";

  // The loader: in order, batches of 10; batch 0 holds image 4, batch 2
  // image 20. The error names the batch and the file; nothing crashes.
  cudl_loader_config c = cudl_loader_config_default();
  c.batch = 10;
  c.shuffle = 0;
  cudl_loader *l = nullptr;
  ASSERT_EQ(CUDL_OK, cudl_loader_create(ctx_, ds, &c, &l));
  const int64_t xs[4] = {10, 3, 9, 10}, ys[1] = {10};
  cudl_tensor *x = nullptr, *y = nullptr;
  ASSERT_EQ(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_F32, 4, xs, &x));
  ASSERT_EQ(CUDL_OK, cudl_tensor_create(ctx_, CUDL_DTYPE_I32, 1, ys, &y));
  EXPECT_EQ(CUDL_ERR_IO, cudl_loader_next(l, x, y, nullptr, nullptr));
  message = cudl_context_last_error(ctx_);
  EXPECT_NE(message.find("batch 0 of epoch 0"), std::string::npos) << message;
  EXPECT_NE(message.find(gone), std::string::npos) << message;
  EXPECT_EQ(CUDL_ERR_IO, cudl_loader_next(l, x, y, nullptr, nullptr)) << "again until a seek";
  ASSERT_EQ(CUDL_OK, cudl_loader_seek(l, 0, 1));
  EXPECT_EQ(CUDL_OK, cudl_loader_next(l, x, y, nullptr, nullptr)) << cudl_context_last_error(ctx_);
  EXPECT_EQ(CUDL_ERR_IO, cudl_loader_next(l, x, y, nullptr, nullptr));
  message = cudl_context_last_error(ctx_);
  EXPECT_NE(message.find("batch 2 of epoch 0"), std::string::npos) << message;
  EXPECT_NE(message.find(changed), std::string::npos) << message;
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(y);
  cudl_loader_destroy(l);
  cudl_dataset_destroy(ds);
}

TEST_F(StreamTest, ArgumentErrors) {
  MakeSet();
  cudl_dataset *ds = nullptr;
  ASSERT_EQ(CUDL_OK, Load(Options(1), &ds));
  Bytes out(270, 0xEE);
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_image_read(nullptr, 0, out.data()));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_image_read(ds, 0, nullptr));
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("out is NULL"), std::string::npos);
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_image_read(ds, -1, out.data()));
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, cudl_dataset_image_read(ds, 27, out.data()));
  EXPECT_NE(std::string(cudl_context_last_error(ctx_)).find("image 27 of a dataset of 27"), std::string::npos);
  EXPECT_EQ(out, Bytes(270, 0xEE)) << "nothing written";
  EXPECT_EQ(cudl_dataset_image(ds, 0), nullptr);
  EXPECT_EQ(cudl_dataset_streamed(nullptr), 0);
  EXPECT_EQ(CUDL_OK, cudl_dataset_image_read(ds, 26, out.data())) << "usable after the errors";
  cudl_dataset_destroy(ds);
  cudl_folder_options o = Options(2);
  EXPECT_EQ(CUDL_ERR_INVALID_ARGUMENT, Load(o, &ds));
  EXPECT_EQ(ds, nullptr);
}
