/*
 * make_images.c - small PNG and JPEG files written with libpng and
 * libjpeg, for two uses:
 *
 *   make_images corpus DIR   the seeds of fuzz_image (corpus-image/, with
 *                            the 3-byte header fuzz_image.c reads): every
 *                            PNG colour type and depth, interlaced,
 *                            baseline and progressive JPEG, gray and RGB
 *   make_images folder DIR   an image folder as users have them, for the
 *                            CLI tests: DIR/train/<class> and
 *                            DIR/test/<class> of 8x8 gray PNGs and 8x8
 *                            RGB JPEGs, plus corrupt, truncated and
 *                            non-image files in train/
 *   make_images bench DIR    what benchmarks/cpu/bench_images decodes:
 *                            DIR/gray28 (10 classes x 300 28x28 gray PNGs),
 *                            DIR/rgb32 (10 x 300 32x32 RGB JPEGs, quality
 *                            90) and DIR/photos (2 x 50 640x480 RGB JPEGs,
 *                            quality 85), with pixel noise so that they
 *                            compress like real images
 *
 * The pixels are a fixed function of (x, y, channel, image), so a run
 * writes the same images each time (for a given libpng/libjpeg: the
 * committed seeds need not be rewritten when those change).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <jpeglib.h>
#include <png.h>

typedef struct buffer {
  unsigned char *data;
  size_t size;
} buffer;

static void die(const char *what) {
  fprintf(stderr, "make_images: %s: %s\n", what, strerror(errno));
  exit(1);
}

static void write_file(const char *dir, const char *name, const uint8_t *head,
                       size_t head_size, const buffer *b, size_t keep) {
  char path[4096];
  FILE *f;
  snprintf(path, sizeof path, "%s/%s", dir, name);
  f = fopen(path, "wb");
  if (f == NULL) die(path);
  if ((head_size > 0 && fwrite(head, 1, head_size, f) != head_size) ||
      fwrite(b->data, 1, keep, f) != keep || fclose(f) != 0)
    die(path);
}

static void png_append(png_structp png, png_bytep data, size_t n) {
  buffer *b = (buffer *)png_get_io_ptr(png);
  b->data = (unsigned char *)realloc(b->data, b->size + n);
  if (b->data == NULL) die("realloc");
  memcpy(b->data + b->size, data, n);
  b->size += n;
}

static void png_no_flush(png_structp png) { (void)png; }

static int g_noise = 0; /* bench mode: add noise */

static uint8_t sample(int x, int y, int c, int image) {
  uint32_t h = (uint32_t)x * 73856093u ^ (uint32_t)y * 19349663u ^
               (uint32_t)c * 83492791u ^ (uint32_t)image * 2654435761u;
  h ^= h >> 13;
  h *= 0x5bd1e995u;
  h ^= h >> 15;
  return (uint8_t)(x * 29 + y * 13 + c * 71 + image * 37 +
                   (g_noise ? (int)(h & 31) : 0));
}

/* The rows of a w x h PNG of color_type and depth with the fixed pattern,
 * written through png. Apart from make_png, so that nothing but the
 * libpng structures lives across its setjmp (GCC 12 at -O3 failed with an
 * internal compiler error on the whole in one function). */
static void write_png(png_structp png, png_infop info, int w, int h,
                      int color_type, int depth, int interlace, int image) {
  static const int channels[7] = {1, 0, 3, 1, 2, 0, 4};
  const int n = channels[color_type];
  const size_t row_bytes = ((size_t)w * (size_t)n * (size_t)depth + 7) / 8;
  unsigned char *row = (unsigned char *)calloc(row_bytes, 1);
  int y, pass, passes;
  if (row == NULL) die("out of memory");
  png_set_IHDR(png, info, (png_uint_32)w, (png_uint_32)h, depth, color_type,
               interlace ? PNG_INTERLACE_ADAM7 : PNG_INTERLACE_NONE,
               PNG_COMPRESSION_TYPE_DEFAULT, PNG_FILTER_TYPE_DEFAULT);
  if (color_type == PNG_COLOR_TYPE_PALETTE) {
    png_color palette[16];
    png_byte alpha[4] = {0, 80, 160, 255};
    int i;
    for (i = 0; i < 16; ++i) {
      palette[i].red = sample(i, 0, 0, image);
      palette[i].green = sample(i, 0, 1, image);
      palette[i].blue = sample(i, 0, 2, image);
    }
    png_set_PLTE(png, info, palette, 1 << (depth < 4 ? depth : 4));
    png_set_tRNS(png, info, alpha, 4, NULL);
  }
  png_write_info(png, info);
  passes = png_set_interlace_handling(png);
  for (pass = 0; pass < passes; ++pass)
    for (y = 0; y < h; ++y) {
      size_t i;
      for (i = 0; i < row_bytes; ++i)
        row[i] = sample((int)i, y, 0, image) &
                 (color_type == PNG_COLOR_TYPE_PALETTE && depth == 8 ? 0x0f
                                                                     : 0xff);
      png_write_row(png, row);
    }
  png_write_end(png, NULL);
  free(row);
}

static buffer make_png(int w, int h, int color_type, int depth, int interlace,
                       int image) {
  buffer b = {NULL, 0};
  png_structp png =
      png_create_write_struct(PNG_LIBPNG_VER_STRING, NULL, NULL, NULL);
  png_infop info = png_create_info_struct(png);
  if (png == NULL || info == NULL || setjmp(png_jmpbuf(png))) die("libpng");
  png_set_write_fn(png, &b, png_append, png_no_flush);
  write_png(png, info, w, h, color_type, depth, interlace, image);
  png_destroy_write_struct(&png, &info);
  return b;
}

static int g_quality = 85;

static buffer make_jpeg(int w, int h, int components, int progressive,
                        int image) {
  struct jpeg_compress_struct c;
  struct jpeg_error_mgr err;
  unsigned char *mem = NULL;
  unsigned long size = 0;
  unsigned char *row = (unsigned char *)malloc((size_t)(w * components));
  buffer b;
  c.err = jpeg_std_error(&err);
  jpeg_create_compress(&c);
  jpeg_mem_dest(&c, &mem, &size);
  c.image_width = (JDIMENSION)w;
  c.image_height = (JDIMENSION)h;
  c.input_components = components;
  c.in_color_space = components == 1 ? JCS_GRAYSCALE : JCS_RGB;
  jpeg_set_defaults(&c);
  jpeg_set_quality(&c, g_quality, TRUE);
  if (progressive) jpeg_simple_progression(&c);
  jpeg_start_compress(&c, TRUE);
  while (c.next_scanline < c.image_height) {
    int x, k;
    for (x = 0; x < w; ++x)
      for (k = 0; k < components; ++k)
        row[x * components + k] = sample(x, (int)c.next_scanline, k, image);
    jpeg_write_scanlines(&c, &row, 1);
  }
  jpeg_finish_compress(&c);
  jpeg_destroy_compress(&c);
  free(row);
  b.data = mem;
  b.size = size;
  return b;
}

static void corpus(const char *dir) {
  static const struct {
    const char *name;
    int type, depth, interlace;
  } pngs[] = {{"png_gray1", PNG_COLOR_TYPE_GRAY, 1, 0},
              {"png_gray4", PNG_COLOR_TYPE_GRAY, 4, 0},
              {"png_gray8", PNG_COLOR_TYPE_GRAY, 8, 0},
              {"png_gray16", PNG_COLOR_TYPE_GRAY, 16, 0},
              {"png_gray_alpha", PNG_COLOR_TYPE_GRAY_ALPHA, 8, 0},
              {"png_rgb8", PNG_COLOR_TYPE_RGB, 8, 0},
              {"png_rgb16", PNG_COLOR_TYPE_RGB, 16, 0},
              {"png_rgba", PNG_COLOR_TYPE_RGBA, 8, 0},
              {"png_palette2", PNG_COLOR_TYPE_PALETTE, 2, 0},
              {"png_palette8", PNG_COLOR_TYPE_PALETTE, 8, 0},
              {"png_interlaced", PNG_COLOR_TYPE_RGB, 8, 1}};
  const uint8_t native[3] = {0, 0, 0}, resized[3] = {1, 12, 21};
  char name[64];
  size_t i;
  for (i = 0; i < sizeof pngs / sizeof pngs[0]; ++i) {
    buffer b = make_png(9, 7, pngs[i].type, pngs[i].depth, pngs[i].interlace,
                        (int)i);
    snprintf(name, sizeof name, "%s.bin", pngs[i].name);
    write_file(dir, name, i % 2 ? resized : native, 3, &b, b.size);
    free(b.data);
  }
  for (i = 0; i < 4; ++i) {
    buffer b = make_jpeg(11, 9, i % 2 ? 3 : 1, i >= 2, (int)i);
    snprintf(name, sizeof name, "jpeg_%s_%s.bin", i % 2 ? "rgb" : "gray",
             i >= 2 ? "progressive" : "baseline");
    write_file(dir, name, i == 1 ? resized : native, 3, &b, b.size);
    free(b.data);
  }
}

static void make_dir(const char *parent, const char *name, char *out,
                     size_t out_size) {
  snprintf(out, out_size, "%s/%s", parent, name);
  if (mkdir(out, 0755) != 0 && errno != EEXIST) die(out);
}

static void folder(const char *dir) {
  static const char *const splits[2] = {"train", "test"};
  static const char *const classes[3] = {"circle", "square", "triangle"};
  char split_dir[4096], class_dir[4096], name[64];
  int s, c, i;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) die(dir);
  for (s = 0; s < 2; ++s) {
    make_dir(dir, splits[s], split_dir, sizeof split_dir);
    for (c = 0; c < 3; ++c) {
      make_dir(split_dir, classes[c], class_dir, sizeof class_dir);
      for (i = 0; i < (s == 0 ? 6 : 3); ++i) {
        const int image = s * 100 + c * 10 + i;
        buffer b = i % 3 == 2 ? make_jpeg(8, 8, 3, 0, image)
                              : make_png(8, 8, PNG_COLOR_TYPE_GRAY, 8, 0, image);
        snprintf(name, sizeof name, "%d.%s", i, i % 3 == 2 ? "jpg" : "png");
        write_file(class_dir, name, NULL, 0, &b, b.size);
        if (s == 0 && c == 0 && i == 0) {
          /* A truncated copy and one with a byte of its pixels flipped. */
          write_file(class_dir, "truncated.png", NULL, 0, &b, b.size / 2);
          b.data[b.size - 20] ^= 0x55;
          write_file(class_dir, "corrupt.png", NULL, 0, &b, b.size);
        }
        free(b.data);
      }
    }
  }
  {
    buffer text = {(unsigned char *)"not an image\n", 13};
    snprintf(class_dir, sizeof class_dir, "%s/train/square", dir);
    write_file(class_dir, "notes.txt", NULL, 0, &text, text.size);
  }
}

/* count images per class of n classes under dir/name. */
static void bench_set(const char *dir, const char *name, int classes, int count,
                      int jpeg, int size, int components, int quality) {
  char set_dir[4096], class_dir[4096], file[64];
  int c, i;
  make_dir(dir, name, set_dir, sizeof set_dir);
  g_quality = quality;
  for (c = 0; c < classes; ++c) {
    snprintf(file, sizeof file, "class%d", c);
    make_dir(set_dir, file, class_dir, sizeof class_dir);
    for (i = 0; i < count; ++i) {
      buffer b = jpeg ? make_jpeg(size == 480 ? 640 : size, size, components,
                                  0, c * 1000 + i)
                      : make_png(size, size, PNG_COLOR_TYPE_GRAY, 8, 0,
                                 c * 1000 + i);
      snprintf(file, sizeof file, "%d.%s", i, jpeg ? "jpg" : "png");
      write_file(class_dir, file, NULL, 0, &b, b.size);
      free(b.data);
    }
  }
}

static void bench(const char *dir) {
  g_noise = 1;
  if (mkdir(dir, 0755) != 0 && errno != EEXIST) die(dir);
  bench_set(dir, "gray28", 10, 300, 0, 28, 1, 0);
  bench_set(dir, "rgb32", 10, 300, 1, 32, 3, 90);
  bench_set(dir, "photos", 2, 50, 1, 480, 3, 85);
}

int main(int argc, char **argv) {
  if (argc == 3 && strcmp(argv[1], "bench") == 0) {
    bench(argv[2]);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "corpus") == 0) {
    corpus(argv[2]);
    return 0;
  }
  if (argc == 3 && strcmp(argv[1], "folder") == 0) {
    folder(argv[2]);
    return 0;
  }
  fprintf(stderr, "usage: make_images corpus|folder|bench DIR\n");
  return 2;
}
