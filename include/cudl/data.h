/*
 * cudl/data.h - datasets and batches: IDX (MNIST, Fashion-MNIST) and
 * CIFAR-10 binary readers, seeded shuffling, normalisation, augmentation,
 * and a loader that prepares batches on a background thread.
 *
 * Datasets live in host memory as 8-bit pixels, [count, channels, height,
 * width], with one label in [0, classes) each. Every reader validates the
 * whole file before it trusts a number in it (magic, dimensions, sizes,
 * labels in range): a truncated or hostile file gives a CUDL_ERR_FILE_*
 * status with the file and the reason in the context's last error, never a
 * crash or an oversized allocation. Memory comes from the context's host
 * allocator (zlib's working memory included).
 *
 * Statuses of the readers:
 *   CUDL_ERR_IO               a file cannot be opened or read, or is not a
 *                             regular file
 *   CUDL_ERR_FILE_FORMAT      wrong IDX magic number, element type (only
 *                             unsigned bytes, 0x08) or number of dimensions
 *                             (3 for images, 1 for labels); a gzip-compressed
 *                             CIFAR-10 file
 *   CUDL_ERR_FILE_SHAPE       a count or side of 0 or above the limits below;
 *                             image and label counts that differ
 *   CUDL_ERR_FILE_TRUNCATED   the file (or its decompressed data) ends before
 *                             the bytes its header describes; a CIFAR-10 file
 *                             that is empty or not whole 3073-byte records; a
 *                             gzip file too small to hold what its header
 *                             claims (deflate expands at most 1032:1)
 *   CUDL_ERR_FILE_TRAILING_DATA  bytes after the described data (raw, or
 *                             decompressed, or after the gzip stream)
 *   CUDL_ERR_FILE_COMPRESSION corrupt gzip data (deflate stream, CRC-32,
 *                             length)
 *   CUDL_ERR_FILE_VALUE       a label >= the number of classes
 *   CUDL_ERR_OUT_OF_MEMORY    an allocation failed
 * Headers are checked against the limits and against the file's size before
 * anything is allocated for the pixels, so the largest allocation a file can
 * cause is bounded by what it could really hold.
 */
#ifndef CUDL_DATA_H
#define CUDL_DATA_H

#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/* Limits the readers enforce (CUDL_ERR_FILE_SHAPE beyond them). */
#define CUDL_DATASET_MAX_IMAGES 2147483647        /* 2^31 - 1 */
#define CUDL_DATASET_MAX_SIDE 32768               /* height, width */
#define CUDL_DATASET_MAX_CHANNELS 4               /* as config.mean[] */
#define CUDL_DATASET_MAX_IMAGE_BYTES (1ull << 26) /* C x H x W */
#define CUDL_DATASET_MAX_BYTES (1ull << 36)       /* all pixels */

typedef struct cudl_dataset cudl_dataset;

/**
 * Read an IDX image file ([count, height, width] u8, magic 0x00000803) and
 * its IDX label file ([count] u8, magic 0x00000801), each raw or gzip
 * compressed (detected by content: 0x1f 0x8b; concatenated gzip members
 * are read as one stream). The counts must match and every label must be
 * < classes; classes is in [1, 256], or 0 for 10 (MNIST, Fashion-MNIST).
 * The dataset has one channel.
 */
CUDL_API cudl_status cudl_dataset_load_idx(cudl_context *ctx,
                                           const char *images_path,
                                           const char *labels_path, int classes,
                                           cudl_dataset **out);

/**
 * Read CIFAR-10 binary batch files (records of 1 label byte + 3072 pixel
 * bytes, 32x32x3 planar RGB), `count` of them (1 to 1024), concatenated in
 * order (data_batch_1..5 for training, test_batch for testing). The files
 * are read uncompressed; each must hold at least one record.
 */
CUDL_API cudl_status cudl_dataset_load_cifar10(cudl_context *ctx,
                                               const char *const *paths,
                                               int count, cudl_dataset **out);

/**
 * A dataset by name from a directory: "mnist" and "fashion-mnist"
 * ({train,t10k}-{images-idx3,labels-idx1}-ubyte, or the same with .gz when
 * the plain file does not exist, as Debian's dataset-fashion-mnist installs
 * them under /usr/share/datasets/fashion-mnist) and "cifar10" (the
 * cifar-10-batches-bin files data_batch_1.bin .. data_batch_5.bin and
 * test_batch.bin). train selects the training or the test split. dir NULL
 * uses the Debian location, which exists only for "fashion-mnist" (for the
 * others dir NULL is CUDL_ERR_INVALID_ARGUMENT).
 */
CUDL_API cudl_status cudl_dataset_load(cudl_context *ctx, const char *name,
                                       const char *dir, int train,
                                       cudl_dataset **out);

/**
 * A dataset from memory: `count` images of channels x height x width bytes
 * each, planar, back to back in `pixels`, and `count` labels, each <
 * classes (1 to 256). Both are copied. The limits above apply
 * (CUDL_ERR_INVALID_ARGUMENT beyond them or for a label out of range).
 */
CUDL_API cudl_status cudl_dataset_create(cudl_context *ctx, int64_t count,
                                         int channels, int height, int width,
                                         int classes, const uint8_t *pixels,
                                         const uint8_t *labels,
                                         cudl_dataset **out);

/** Release the dataset; NULL is a no-op. Loaders over it must be destroyed
 *  first. */
CUDL_API void cudl_dataset_destroy(cudl_dataset *ds);

/* Queries (0 / NULL for NULL). */
CUDL_API int64_t cudl_dataset_count(const cudl_dataset *ds);
CUDL_API int cudl_dataset_channels(const cudl_dataset *ds);
CUDL_API int cudl_dataset_height(const cudl_dataset *ds);
CUDL_API int cudl_dataset_width(const cudl_dataset *ds);
CUDL_API int cudl_dataset_classes(const cudl_dataset *ds);
/** Pixels of image i (channels * height * width bytes, planar); NULL when
 *  i is out of range and for a streamed dataset (cudl_dataset_streamed),
 *  whose pixels are not in memory: cudl_dataset_image_read works for
 *  both. */
CUDL_API const uint8_t *cudl_dataset_image(const cudl_dataset *ds, int64_t i);
/** Copy image i (channels * height * width bytes, planar) into out: from
 *  memory, or for a streamed dataset decoded from its file (cudl/image.h:
 *  the decoder's status, CUDL_ERR_IO when the file no longer holds the
 *  image it held at the load; the message names the file).
 *  CUDL_ERR_INVALID_ARGUMENT for NULL out or i out of range (and, without
 *  a message, for NULL ds). Errors go to the context ds was made in,
 *  which must still exist. On a failure out may have been written. */
CUDL_API cudl_status cudl_dataset_image_read(const cudl_dataset *ds, int64_t i,
                                             uint8_t *out);
/** 1 when ds is a streamed folder dataset (cudl/image.h), whose images
 *  are decoded from their files when read; 0 otherwise and for NULL. */
CUDL_API int cudl_dataset_streamed(const cudl_dataset *ds);
/** Label of image i; -1 when i is out of range. */
CUDL_API int cudl_dataset_label(const cudl_dataset *ds, int64_t i);

/** The path of the i-th file the dataset was read from, as the reader was
 *  given it: the image file then the label file for IDX, the batch files in
 *  order for CIFAR-10 (cudl_dataset_load resolves names and .gz). NULL past
 *  the last, for NULL, and for a dataset made by cudl_dataset_create. Valid
 *  while the dataset lives. */
CUDL_API const char *cudl_dataset_source(const cudl_dataset *ds, int i);

/** The name of class class_index: the folder's name for
 *  cudl_dataset_load_folder (cudl/image.h), the official names for
 *  cudl_dataset_load's "mnist" ("0" to "9"), "fashion-mnist" ("T-shirt/top",
 *  "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker",
 *  "Bag", "Ankle boot") and "cifar10" ("airplane", "automobile", "bird",
 *  "cat", "deer", "dog", "frog", "horse", "ship", "truck"), or what
 *  cudl_dataset_set_class_names gave. NULL when the dataset has no names
 *  (the other readers), for NULL and for an index out of range. Valid
 *  while the dataset lives (until the names are set again). */
CUDL_API const char *cudl_dataset_class_name(const cudl_dataset *ds,
                                             int class_index);

/** Name the classes of ds: count must be cudl_dataset_classes(ds), every
 *  name non-empty, at most 255 bytes and unlike the others
 *  (CUDL_ERR_INVALID_ARGUMENT otherwise, ds unchanged). The names are
 *  copied; earlier names are replaced. */
CUDL_API cudl_status cudl_dataset_set_class_names(cudl_context *ctx,
                                                  cudl_dataset *ds,
                                                  const char *const *names,
                                                  int count);

/** Per-channel mean and standard deviation (population, ddof = 0) of the
 *  pixels scaled to [0, 1], for normalisation: from the exact integer sums
 *  S1 of the values and S2 of their squares over the whole dataset
 *  (N pixels a channel), m1 = S1 / N and m2 = S2 / N in double, mean =
 *  m1 / 255 and std = sqrt(max(0, m2 - m1^2)) / 255 (exactly 0 for a
 *  constant channel). The same for a dataset streamed or in memory
 *  (cudl/image.h); a streamed one answers from the sums its load kept,
 *  without reading its files. mean and std have cudl_dataset_channels
 *  entries. CUDL_ERR_INVALID_ARGUMENT for a NULL argument. */
CUDL_API cudl_status cudl_dataset_channel_stats(const cudl_dataset *ds,
                                                float *mean, float *std);

/**
 * A seeded, stratified split of ds into `rest` (kept, e.g. for training)
 * and `held_out` (e.g. for validation), both new datasets in ds's context.
 *
 * Of a class with n >= 2 images, round(fraction * n) are held out (halves
 * round up), but at least 1 and at most n - 1, so that each such class is
 * in both parts; a class with 1 image stays whole in `rest`, and one with
 * none is in neither. Which images are held out is a Fisher-Yates shuffle
 * of each class's images drawn from Philox keyed by seed (stream 3, the
 * class in the counter): the same for a seed and labels on every machine,
 * and different for different seeds. Both parts keep ds's order (each is
 * a subsequence of ds), its classes count and its source files; together
 * they are exactly ds's images, each in one part. The parts of a streamed
 * dataset (cudl/image.h) are streamed too: the same images, labels and
 * statistics as the parts of the same folder in memory, no pixels.
 *
 * fraction must be above 0 and below 1; a dataset where no class has 2
 * images cannot be split. CUDL_ERR_INVALID_ARGUMENT for those, for a NULL
 * argument and for rest == held_out; CUDL_ERR_OUT_OF_MEMORY when the
 * copies do not fit. The details go to the context ds was made in (none
 * for a NULL ds), which must still exist. On failure *rest and *held_out
 * are NULL and ds is unchanged.
 */
CUDL_API cudl_status cudl_dataset_split(const cudl_dataset *ds, double fraction,
                                        uint64_t seed, cudl_dataset **rest,
                                        cudl_dataset **held_out);

/* ---- batches ---- */

/** How batches are made. Start from cudl_loader_config_default(). */
typedef struct cudl_loader_config {
  int64_t batch;         /* >= 1 */
  int shuffle;           /* a new seeded permutation each epoch */
  uint64_t seed;         /* shuffling and augmentation */
  int drop_last;         /* skip a final partial batch */
  float mean[4], std[4]; /* per channel: x = (pixel / 255 - mean) / std */
  int augment;           /* random crop and flip (below) */
  int crop_padding;      /* augment: zero-pad by this much, crop back;
                            0 to min(height, width) */
  int horizontal_flip;   /* augment: flip with probability 1/2 */
  int rank;              /* data parallel: this rank's shard, 0 to world - 1 */
  int world;             /* data parallel: the number of ranks, >= 1 */
} cudl_loader_config;

/** batch 64, shuffle on, seed 0, drop_last off, mean 0 and std 1 for every
 *  channel (x = pixel / 255), no augmentation, rank 0 of world 1 (the whole
 *  batch). */
CUDL_API cudl_loader_config cudl_loader_config_default(void);

typedef struct cudl_loader cudl_loader;

/**
 * A loader over ds (which must outlive it) producing batches as f32 NCHW
 * host data and i32 labels. A background thread prepares up to two batches
 * ahead while the caller uses the current one; it touches only the
 * loader's own buffers and ds, never the context (all memory is taken here,
 * from ctx's allocator, so the allocator need not be thread-safe), and
 * signals are blocked in it. For a streamed ds (cudl/image.h) it also
 * decodes each batch's images from their files, in parallel (OpenMP), with
 * malloc's memory; a file that fails then (deleted or changed since the
 * load) fails cudl_loader_next with the decoder's status and a message
 * naming the batch, the image and its file (never zeros in its place).
 *
 * Batch b of epoch e holds the images at positions [b * batch, (b + 1) *
 * batch) of the epoch's order. Every random choice is a pure function of
 * (seed, epoch, index), so a run is reproducible and a resumed run
 * (cudl_loader_seek) continues exactly. With Philox4x32-10 (core/philox.h)
 * under key (seed low 32 bits, seed high 32 bits) and a counter
 * (c0, c1, epoch low 32 bits, epoch high 32 bits):
 *  - order: identity without shuffle; with shuffle, perm = [0, count), then
 *    for i = count - 1 down to 1: block at counter (i, 1, epoch), r =
 *    (uint64)v[1] << 32 | v[0], j = r % (i + 1), swap perm[i] and perm[j].
 *  - augmentation of dataset image k: block at counter (k, 2, epoch);
 *    with p = crop_padding, dy = ((uint64)v[0] * (2p + 1)) >> 32 and dx =
 *    ((uint64)v[1] * (2p + 1)) >> 32; flip = horizontal_flip && (v[2] >>
 *    31). Output pixel (c, y, x) is source pixel (c, y + dy - p, xs + dx -
 *    p) with xs = flip ? width - 1 - x : x, and 0 outside the image (crop
 *    from the zero-padded image, then flip). Without augment dy = dx = p =
 *    0 and no flip.
 *  - value = ((float)pixel / 255.0f - mean[c]) / std[c], each operation
 *    rounded to float.
 *
 * Data parallel (world > 1): `batch` is this rank's share, and the epoch
 * is cut into global batches of world * batch images, the batches of one
 * loader with batch world * batch; rank r's batch b holds the rows [r *
 * batch, (r + 1) * batch) of global batch b, so the union of the ranks'
 * batches is exactly that loader's batch, in order, augmentation included
 * (it depends on the dataset image and the epoch, never on the rank).
 * Batches per epoch count global batches. Without drop_last, the epoch's
 * last global batch may leave this rank fewer rows than batch, or none
 * (rows 0 from cudl_loader_next). Every rank must use the same dataset
 * and configuration but for rank.
 *
 * Config errors (CUDL_ERR_INVALID_ARGUMENT): batch < 1; world < 1; rank
 * outside [0, world); world * batch overflows; no batch at all (drop_last
 * and world * batch > count); a mean not finite or a std not positive
 * and finite for a channel of ds; crop_padding outside [0, min(height,
 * width)] with augment. The buffers hold min(batch, count) rows each.
 */
CUDL_API cudl_status cudl_loader_create(cudl_context *ctx,
                                        const cudl_dataset *ds,
                                        const cudl_loader_config *config,
                                        cudl_loader **out);
/** Stop the thread (also mid-epoch) and release everything; NULL is a
 *  no-op. */
CUDL_API void cudl_loader_destroy(cudl_loader *loader);

/** Batches per epoch: ceil(count / (world * batch)), or floor with
 *  drop_last. */
CUDL_API int64_t cudl_loader_batches(const cudl_loader *loader);

/** Position the loader at batch `batch` of epoch `epoch` (>= 0): the next
 *  cudl_loader_next returns exactly that batch, as an uninterrupted run
 *  would have. batch is in [0, batches]; batches (the end of the epoch)
 *  means batch 0 of epoch + 1. Clears an error from the thread. */
CUDL_API cudl_status cudl_loader_seek(cudl_loader *loader, int64_t epoch,
                                      int64_t batch);

/** The (epoch, batch) the next cudl_loader_next returns, for checkpoints.
 */
CUDL_API cudl_status cudl_loader_position(const cudl_loader *loader,
                                          int64_t *epoch, int64_t *batch);

/**
 * Copy the next batch into x ([batch, C, H, W] f32, any device or context)
 * and labels ([batch] i32, likewise). The last batch of an epoch may have fewer
 * rows than `batch`: then only its rows are written and the rest of x and
 * labels is left as it was. rows (may be NULL) receives the number of rows;
 * epoch_done (may be NULL) is set to 1 after the epoch's last batch, else
 * 0; the next call starts the next epoch. Waits while the thread prepares
 * the batch. An error of the thread is reported here (and again until a
 * seek); a failed copy leaves the position unchanged, so the same batch
 * can be asked for again. Errors are recorded in the loader's context.
 * The batch is made on the loader's context: the images' bytes, crops
 * and labels are queued up from pinned host memory, and the crop, flip
 * and normalisation run there (on a GPU a kernel), with the same bits as
 * the recipe above on any device. For tensors of the loader's context the
 * call returns without waiting for the device (on a GPU the batch arrives
 * in stream order, before any work queued after the call; the next call, a
 * seek or cudl_loader_destroy waits for the uploads); tensors of another
 * context receive it through cudl_tensor_copy, done when the call returns.
 */
CUDL_API cudl_status cudl_loader_next(cudl_loader *loader, cudl_tensor *x,
                                      cudl_tensor *labels, int64_t *rows,
                                      int *epoch_done);

CUDL_EXTERN_C_END

#endif /* CUDL_DATA_H */
