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
  /* A streamed folder dataset (cudl/image.h): pixels is NULL and image i
   * is decoded from sources[image_source[i]] when it is read, with the
   * dataset's channels and size. moments holds each image's exact sums
   * (cudl__image_moments), for cudl_dataset_channel_stats without a pass
   * over the files and to notice a file that changed since the load.
   * NULL for the other datasets. */
  int streamed;
  uint32_t *image_source; /* count */
  size_t image_source_size;
  uint64_t *moments; /* count * channels * CUDL_MOMENTS */
  size_t moments_size;
};

/* Per image and channel: the sum of the pixel values and of their
 * squares (exact: at most 2^26 pixels of 255^2 each). */
#define CUDL_MOMENTS 2

/* The moments of one planar image of `channels` planes of `plane` pixels
 * into out[channels * CUDL_MOMENTS]. */
void cudl__image_moments(const uint8_t *pixels, int channels, size_t plane,
                         uint64_t *out);

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
/* The limits of cudl__dataset_check but the total size's, which a
 * streamed dataset does not hold. */
cudl_status cudl__dataset_check_shape(cudl_context *ctx, const char *function,
                                      cudl_status status_if_bad,
                                      const char *what, uint64_t count,
                                      uint64_t channels, uint64_t height,
                                      uint64_t width);
/* A streamed dataset without pixels: labels, image_source and moments
 * allocated, uninitialised; the sources are the caller's to set. */
cudl_status cudl__dataset_alloc_streamed(cudl_context *ctx,
                                         const char *function, int64_t count,
                                         int channels, int height, int width,
                                         int classes, cudl_dataset **out);

/* Decode image i of a streamed ds into out (image_bytes), with memory
 * from `a` (thread-safe when called from several threads), and check it
 * against the moments of the load. On failure err names the reason (the
 * caller names the file: cudl__dataset_image_path). */
struct cudl_image_error;
cudl_status cudl__dataset_decode(const cudl_dataset *ds, int64_t i,
                                 const cudl_allocator *a, uint8_t *out,
                                 struct cudl_image_error *err);
/* The file of image i of a streamed dataset; NULL for the others. */
const char *cudl__dataset_image_path(const cudl_dataset *ds, int64_t i);

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
  float lut[CUDL_DATASET_MAX_CHANNELS][256]; /* byte -> normalised value */
} cudl_batch_recipe;

/* The images order[0..rows) of `epoch` as the images_from_bytes operator
 * takes them: their bytes into pixels (rows * image_bytes; left as they
 * are when decoded, a streamed dataset's batch already decoded there), each
 * one's crop and flip into crops[3 r .. 3 r + 2] (dy, dx, flip: zeros
 * without augmentation) and its label into labels[r]. */
void cudl__data_gather(const cudl_batch_recipe *recipe, const uint32_t *order,
                       int64_t rows, int64_t epoch, int decoded,
                       uint8_t *pixels, int32_t *crops, int32_t *labels);

/* ---- loader test hook ---- */

/* Make the loader's thread fail, with CUDL_ERR_IO and a message, when it
 * comes to batch (epoch, batch); epoch -1 disables. For the tests of error
 * reporting: nothing else can make the thread fail. */
void cudl__loader_fail_at(cudl_loader *loader, int64_t epoch, int64_t batch);

CUDL_EXTERN_C_END

#endif /* CUDL_DATA_INTERNAL_H */
