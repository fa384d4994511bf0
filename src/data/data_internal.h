/*
 * data_internal.h - the dataset layout and what the data files share:
 * allocation of a dataset, readers from memory (for the fuzz target and the
 * tests), the batch arithmetic of the loader. Private.
 */
#ifndef CUDL_DATA_INTERNAL_H
#define CUDL_DATA_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"
#include "cudl/data.h"

/* The tests (C++) call the memory readers and the loader's hook. */
CUDL_EXTERN_C_BEGIN

/* One CIFAR-10 record: the label byte, then 32x32x3 planar pixels. */
#define CUDL_CIFAR10_SIDE 32
#define CUDL_CIFAR10_IMAGE_BYTES (3 * 32 * 32)
#define CUDL_CIFAR10_RECORD_BYTES (1 + CUDL_CIFAR10_IMAGE_BYTES)
#define CUDL_CIFAR10_MAX_FILES 1024

struct cudl_dataset {
  cudl_allocator allocator; /* what allocated this struct and the arrays */
  /* The context it was made in: where calls on the dataset that can fail
   * (cudl_dataset_split) record their errors and allocate. */
  cudl_context *ctx;
  int64_t count;
  int channels, height, width, classes;
  size_t image_bytes; /* channels * height * width */
  uint8_t *pixels;    /* count * image_bytes */
  size_t pixels_size;
  uint8_t *labels; /* count */
  size_t labels_size;
  /* The files it was read from, NUL-terminated one after another
   * (cudl_dataset_source) and where each starts; none for
   * cudl_dataset_create's. */
  char *sources;
  size_t sources_size;
  size_t *source_offsets;
  int source_count;
  /* Class names, `classes` of them NUL-terminated one after another
   * (cudl_dataset_class_name); NULL when unknown. */
  char *class_names;
  size_t class_names_size;
  /* Files the folder reader skipped: path NUL reason NUL, one pair after
   * another, and where each pair starts (cudl_dataset_skipped). */
  char *skipped;
  size_t skipped_size;
  size_t *skipped_offsets;
  int64_t skipped_count;
};

/* Check the limits of cudl/data.h and allocate an uninitialised dataset
 * from ctx's allocator. `status_if_too_big` is what a count or side beyond
 * the limits gives (CUDL_ERR_FILE_SHAPE for files, INVALID_ARGUMENT for
 * cudl_dataset_create); `what` names the source in messages. */
cudl_status cudl__dataset_check(cudl_context *ctx, const char *function,
                                cudl_status status_if_bad, const char *what,
                                uint64_t count, uint64_t channels,
                                uint64_t height, uint64_t width);
cudl_status cudl__dataset_alloc(cudl_context *ctx, const char *function,
                                int64_t count, int channels, int height,
                                int width, int classes, cudl_dataset **out);

/* Record the `count` files ds was read from; on failure (out of memory)
 * ds is destroyed and the status returned. */
cudl_status cudl__dataset_set_sources(cudl_context *ctx, const char *function,
                                      cudl_dataset *ds,
                                      const char *const *paths, int count);

/* Give ds the names of its `ds->classes` classes (each non-empty, at most
 * 255 bytes, no two alike: INVALID_ARGUMENT, naming `function`). ds is
 * left as it was on failure. */
cudl_status cudl__dataset_set_class_names(cudl_context *ctx,
                                          const char *function,
                                          cudl_dataset *ds,
                                          const char *const *names);

/* The readers on memory images, exactly as on files (messages name them
 * "<images in memory>" etc.); for the fuzz target and the tests. */
cudl_status cudl__dataset_load_idx_memory(cudl_context *ctx, const void *images,
                                          size_t images_size,
                                          const void *labels,
                                          size_t labels_size, int classes,
                                          cudl_dataset **out);
cudl_status cudl__dataset_load_cifar10_memory(cudl_context *ctx,
                                              const void *const *data,
                                              const size_t *sizes, int count,
                                              cudl_dataset **out);

/* ---- batches (batch.c): pure functions of their arguments ---- */

/* The Philox counter's second word per stream (cudl/data.h). */
#define CUDL_DATA_STREAM_SHUFFLE 1u
#define CUDL_DATA_STREAM_AUGMENT 2u
#define CUDL_DATA_STREAM_SPLIT 3u

/* perm[0..count) = the order of `epoch` (identity without shuffle). */
void cudl__data_order(uint32_t *perm, int64_t count, int shuffle, uint64_t seed,
                      int64_t epoch);

/* What a batch is made with: the loader's validated configuration. */
typedef struct cudl_batch_recipe {
  const cudl_dataset *ds;
  uint64_t seed;
  int augment, crop_padding, horizontal_flip;
  float lut[CUDL_DATASET_MAX_CHANNELS][256]; /* pixel -> normalised value */
} cudl_batch_recipe;

/* Fill x (rows * C * H * W floats) and labels (rows) with the images
 * order[0..rows) of `epoch`. */
void cudl__data_fill(const cudl_batch_recipe *recipe, const uint32_t *order,
                     int64_t rows, int64_t epoch, float *x, int32_t *labels);

/* ---- loader test hook ---- */

/* Make the loader's thread fail, with CUDL_ERR_IO and a message, when it
 * comes to batch (epoch, batch); epoch -1 disables. For the tests of error
 * reporting: nothing else can make the thread fail. */
void cudl__loader_fail_at(cudl_loader *loader, int64_t epoch, int64_t batch);

CUDL_EXTERN_C_END

#endif /* CUDL_DATA_INTERNAL_H */
