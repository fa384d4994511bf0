/*
 * fuzz_data.c - libFuzzer target for the dataset readers (IDX raw and gzip,
 * CIFAR-10), through the memory entry points of src/data.
 *
 * Input: [mode][arg][a lo][a hi][b lo][b hi][payload...]
 *   mode % 4 == 0: IDX; the payload is cut at `a` into the image file and
 *                  the label file, classes = arg (0 means 10).
 *   mode % 4 == 1: the same, but the image part is first gzip-compressed
 *                  here (level arg % 10), so the fuzzer reaches the IDX
 *                  checks through the inflate path.
 *   mode % 4 == 2: CIFAR-10, the payload cut into 1 + arg % 3 files at `a`
 *                  and `b`.
 *   mode % 4 == 3: CIFAR-10, one file: the payload as records, the last one
 *                  padded with zeros (so whole files are common).
 * Promises checked (a broken one aborts, which libFuzzer reports):
 *   - a failure leaves *out NULL, records a message naming the public
 *     call, and is a documented status: CUDL_ERR_FILE_TRUNCATED,
 *     _TRAILING_DATA, _FORMAT, _COMPRESSION, _SHAPE, _VALUE, or
 *     OUT_OF_MEMORY;
 *   - a dataset holds what the input holds: for raw IDX the header's
 *     dimensions, every pixel and label byte; for gzip the decompressed
 *     bytes (mode 1) or at least consistent dimensions; for CIFAR-10 the
 *     records in order; every label < classes; channel statistics finite
 *     and in [0, 1].
 * Built as tests/fuzz/CMakeLists.txt says: a libFuzzer binary with
 * -DCUDL_FUZZ=ON, otherwise with fuzz_standalone_main.c as a plain program
 * that runs the seed corpus (corpus-data/) and its prefixes in every build.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "cudl/cudl.h"
#include "data/data_internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf(stderr, "fuzz_data: %s:%d: check failed: %s\n", __FILE__, \
              __LINE__, #cond);                                         \
      abort();                                                          \
    }                                                                   \
  } while (0)

static cudl_context *fuzz_context(void) {
  static cudl_context *ctx = NULL;
  if (ctx == NULL)
    FUZZ_CHECK(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) == CUDL_OK);
  return ctx;
}

static int documented_failure(cudl_status s) {
  return s == CUDL_ERR_FILE_TRUNCATED || s == CUDL_ERR_FILE_TRAILING_DATA ||
         s == CUDL_ERR_FILE_FORMAT || s == CUDL_ERR_FILE_COMPRESSION ||
         s == CUDL_ERR_FILE_SHAPE || s == CUDL_ERR_FILE_VALUE ||
         s == CUDL_ERR_OUT_OF_MEMORY;
}

static void check_outcome(cudl_context *ctx, cudl_status s,
                          const cudl_dataset *ds, const char *function) {
  if (s == CUDL_OK) {
    FUZZ_CHECK(ds != NULL);
    return;
  }
  FUZZ_CHECK(ds == NULL);
  FUZZ_CHECK(documented_failure(s));
  FUZZ_CHECK(
      strncmp(cudl_context_last_error(ctx), function, strlen(function)) == 0);
}

static uint32_t be32(const uint8_t *p) {
  return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 |
         (uint32_t)p[3];
}

static void check_stats(const cudl_dataset *ds) {
  float mean[4], std[4];
  int c;
  FUZZ_CHECK(cudl_dataset_channel_stats(ds, mean, std) == CUDL_OK);
  for (c = 0; c < cudl_dataset_channels(ds); ++c) {
    FUZZ_CHECK(mean[c] >= 0.0f && mean[c] <= 1.0f);
    FUZZ_CHECK(std[c] >= 0.0f && std[c] <= 0.5f && isfinite(std[c]));
  }
}

static void check_labels(const cudl_dataset *ds, int classes) {
  int64_t i;
  for (i = 0; i < cudl_dataset_count(ds); ++i) {
    int label = cudl_dataset_label(ds, i);
    FUZZ_CHECK(label >= 0 && label < classes);
  }
  FUZZ_CHECK(cudl_dataset_label(ds, cudl_dataset_count(ds)) == -1);
  FUZZ_CHECK(cudl_dataset_image(ds, cudl_dataset_count(ds)) == NULL);
}

/* A successful IDX load against the (uncompressed) file images. */
static void check_idx(const cudl_dataset *ds, const uint8_t *images,
                      size_t images_size, const uint8_t *labels,
                      size_t labels_size, int classes) {
  int64_t count = cudl_dataset_count(ds), i;
  size_t image;
  FUZZ_CHECK(cudl_dataset_channels(ds) == 1);
  FUZZ_CHECK(cudl_dataset_classes(ds) == classes);
  check_labels(ds, classes);
  check_stats(ds);
  if (images == NULL) return; /* gzip we did not make: structure only */
  FUZZ_CHECK(images_size >= 16 && be32(images) == 0x00000803u);
  FUZZ_CHECK((int64_t)be32(images + 4) == count);
  FUZZ_CHECK((int64_t)be32(images + 8) == cudl_dataset_height(ds));
  FUZZ_CHECK((int64_t)be32(images + 12) == cudl_dataset_width(ds));
  image = (size_t)cudl_dataset_height(ds) * (size_t)cudl_dataset_width(ds);
  FUZZ_CHECK(images_size == 16 + (size_t)count * image);
  for (i = 0; i < count; ++i)
    FUZZ_CHECK(memcmp(cudl_dataset_image(ds, i),
                      images + 16 + (size_t)i * image, image) == 0);
  if (labels == NULL) return;
  FUZZ_CHECK(labels_size == 8 + (size_t)count && be32(labels) == 0x801u);
  for (i = 0; i < count; ++i)
    FUZZ_CHECK(cudl_dataset_label(ds, i) == labels[8 + i]);
}

static int is_gzip(const uint8_t *p, size_t n) {
  return n >= 2 && p[0] == 0x1f && p[1] == 0x8b;
}

static void fuzz_idx(const uint8_t *payload, size_t size, size_t cut,
                     int classes, int compress_level) {
  cudl_context *ctx = fuzz_context();
  const uint8_t *images = payload, *labels = payload + cut;
  size_t images_size = cut, labels_size = size - cut;
  uint8_t *packed = NULL;
  cudl_dataset *ds = NULL;
  cudl_status s;
  if (compress_level >= 0) {
    uLongf packed_size = compressBound((uLong)images_size) + 32;
    z_stream z;
    memset(&z, 0, sizeof z);
    packed = (uint8_t *)malloc(packed_size);
    FUZZ_CHECK(packed != NULL);
    FUZZ_CHECK(deflateInit2(&z, compress_level, Z_DEFLATED, 15 + 16, 8,
                            Z_DEFAULT_STRATEGY) == Z_OK);
    z.next_in = (Bytef *)(uintptr_t)images;
    z.avail_in = (uInt)images_size;
    z.next_out = packed;
    z.avail_out = (uInt)packed_size;
    FUZZ_CHECK(deflate(&z, Z_FINISH) == Z_STREAM_END);
    packed_size = z.total_out;
    deflateEnd(&z);
    s = cudl__dataset_load_idx_memory(ctx, packed, packed_size, labels,
                                      labels_size, classes, &ds);
  } else {
    s = cudl__dataset_load_idx_memory(ctx, images, images_size, labels,
                                      labels_size, classes, &ds);
  }
  check_outcome(ctx, s, ds, "cudl_dataset_load_idx: ");
  if (s == CUDL_OK)
    check_idx(
        ds, compress_level < 0 && is_gzip(images, images_size) ? NULL : images,
        images_size, is_gzip(labels, labels_size) ? NULL : labels, labels_size,
        classes == 0 ? 10 : classes);
  cudl_dataset_destroy(ds);
  free(packed);
}

static void fuzz_cifar(const uint8_t *const *files, const size_t *sizes,
                       int count) {
  cudl_context *ctx = fuzz_context();
  cudl_dataset *ds = NULL;
  cudl_status s = cudl__dataset_load_cifar10_memory(
      ctx, (const void *const *)files, sizes, count, &ds);
  int64_t i = 0;
  int f;
  check_outcome(ctx, s, ds, "cudl_dataset_load_cifar10: ");
  if (s != CUDL_OK) return;
  FUZZ_CHECK(cudl_dataset_channels(ds) == 3 && cudl_dataset_height(ds) == 32 &&
             cudl_dataset_width(ds) == 32 && cudl_dataset_classes(ds) == 10);
  check_labels(ds, 10);
  check_stats(ds);
  for (f = 0; f < count; ++f) {
    size_t r;
    FUZZ_CHECK(sizes[f] > 0 && sizes[f] % 3073 == 0);
    for (r = 0; r < sizes[f] / 3073; ++r, ++i) {
      FUZZ_CHECK(cudl_dataset_label(ds, i) == files[f][r * 3073]);
      FUZZ_CHECK(memcmp(cudl_dataset_image(ds, i), files[f] + r * 3073 + 1,
                        3072) == 0);
    }
  }
  FUZZ_CHECK(i == cudl_dataset_count(ds));
  cudl_dataset_destroy(ds);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *payload;
  size_t n, a, b;
  int mode, arg;
  if (size < 6) return 0;
  mode = data[0] % 4;
  arg = data[1];
  a = (size_t)data[2] | (size_t)data[3] << 8;
  b = (size_t)data[4] | (size_t)data[5] << 8;
  payload = data + 6;
  n = size - 6;
  if (a > n) a = n;
  if (b > n) b = n;
  if (mode == 0 || mode == 1) {
    fuzz_idx(payload, n, a, arg, mode == 1 ? arg % 10 : -1);
  } else if (mode == 2) {
    const uint8_t *files[3];
    size_t sizes[3], lo = a < b ? a : b, hi = a < b ? b : a;
    int count = 1 + arg % 3;
    if (count == 1) {
      files[0] = payload;
      sizes[0] = n;
    } else if (count == 2) {
      files[0] = payload;
      sizes[0] = a;
      files[1] = payload + a;
      sizes[1] = n - a;
    } else {
      files[0] = payload;
      sizes[0] = lo;
      files[1] = payload + lo;
      sizes[1] = hi - lo;
      files[2] = payload + hi;
      sizes[2] = n - hi;
    }
    fuzz_cifar(files, sizes, count);
  } else {
    /* Whole records, the last padded with zeros; at most 8. */
    size_t records = n == 0 ? 0 : (n + 3072) / 3073, padded;
    uint8_t *file;
    const uint8_t *files[1];
    if (records > 8) records = 8;
    padded = records * 3073;
    file = (uint8_t *)calloc(padded > 0 ? padded : 1, 1);
    FUZZ_CHECK(file != NULL);
    memcpy(file, payload, n < padded ? n : padded);
    files[0] = file;
    fuzz_cifar(files, &padded, 1);
    free(file);
  }
  return 0;
}
