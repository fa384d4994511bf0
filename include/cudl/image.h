/*
 * cudl/image.h - PNG and JPEG images: decoding one image into the layout of
 * a dataset, and datasets read from folders of images (dir/<class>/...).
 *
 * Formats are recognised by content, never by the file name: PNG by its
 * 8-byte signature (decoded by libpng), JPEG by its SOI marker FF D8 FF
 * (decoded by libjpeg-turbo). The output is always 8-bit, planar
 * [channels, height, width], as cudl_dataset_image gives it.
 *
 * Conversions, in this order (docs/data.md has the table):
 *  1. Decoding to 8 bits per sample: PNG palettes are expanded to RGB
 *     (transparency ignored), gray of 1, 2 or 4 bits is expanded to 8 (0 and
 *     the maximum map to 0 and 255), 16-bit samples become round(v * 255 /
 *     65535) (libpng's png_set_scale_16, exact rounding), alpha is dropped
 *     (not composited: what PIL's convert("RGB") does). No gamma or colour
 *     profile is applied. JPEG: YCbCr and RGB decode to RGB, grayscale to
 *     gray, with libjpeg's accurate integer IDCT (JDCT_ISLOW) and its
 *     default (fancy) chroma upsampling; CMYK and YCCK JPEGs are refused
 *     (CUDL_ERR_FILE_FORMAT).
 *  2. Channels: gray to RGB replicates the gray value; RGB to gray is ITU-R
 *     BT.601 luma in fixed point, (19595 R + 38470 G + 7471 B + 32768) >> 16
 *     (the weights 0.299, 0.587, 0.114 scaled by 2^16; PIL's
 *     convert("L") computes exactly this).
 *  3. Size: when the requested height x width is the image's own, the
 *     pixels are copied. Otherwise each axis is resampled separately,
 *     in double, rounding only at the end (the pass whose intermediate is
 *     smaller goes first; the order changes a result only at an exact
 *     rounding tie, within 1e-12), with a
 *     triangle (bilinear) filter on half-pixel centres whose support is
 *     widened by the scale when shrinking (antialiasing): for output index
 *     o of an axis scaled from n to m, s = n / m, f = max(s, 1), centre c =
 *     (o + 0.5) * s, the taps are the inputs i in [max(0, (int)(c - f +
 *     0.5)), min(n, (int)(c + f + 0.5))) with weight max(0, 1 - |(i - c +
 *     0.5) / f|), normalised to sum 1. The result is rounded half up and
 *     clamped to [0, 255]. This is the filter of PIL's
 *     Image.resize(BILINEAR) and of torchvision's Resize with
 *     antialias=True; PIL rounds its intermediate row pass to 8 bits in
 *     fixed point, so its pixels may differ from cudl's by 1.
 *
 * Limits (checked before the pixels are allocated): a side of at most
 * CUDL_DATASET_MAX_SIDE, at most CUDL_IMAGE_MAX_PIXELS pixels in the
 * decoded image, at most CUDL_IMAGE_MAX_FILE_BYTES bytes of file,
 * ancillary PNG chunks of at most 8 MiB decompressed, progressive JPEGs of
 * at most CUDL_IMAGE_MAX_JPEG_SCANS scans. A decompression bomb therefore
 * costs at most the pixel budget's memory and time.
 *
 * Statuses of the decoders (the detail, one line naming the reason, in the
 * context's last error):
 *   CUDL_ERR_IO               a file cannot be opened or read, or is not a
 *                             regular file
 *   CUDL_ERR_FILE_FORMAT      not a PNG or JPEG image; a corrupt stream (bad
 *                             CRC, invalid deflate or Huffman data, a
 *                             libpng or libjpeg error, and every libjpeg
 *                             warning but "extraneous bytes before marker",
 *                             which drop no pixel); a CMYK or YCCK JPEG
 *   CUDL_ERR_FILE_SHAPE       a side of 0 or above CUDL_DATASET_MAX_SIDE,
 *                             more than CUDL_IMAGE_MAX_PIXELS pixels, a
 *                             file above CUDL_IMAGE_MAX_FILE_BYTES bytes,
 *                             too many progressive scans
 *   CUDL_ERR_FILE_TRUNCATED   the data ends before the image does
 *   CUDL_ERR_OUT_OF_MEMORY    an allocation failed
 * The pixels and file contents come from the context's host allocator;
 * libpng's and libjpeg's own working memory from malloc (neither library
 * offers a hook that the folder reader's threads could share).
 */
#ifndef CUDL_IMAGE_H
#define CUDL_IMAGE_H

#include <stddef.h>
#include <stdint.h>

#include "cudl/context.h"
#include "cudl/data.h"
#include "cudl/export.h"
#include "cudl/status.h"

CUDL_EXTERN_C_BEGIN

/* Limits of the decoders (CUDL_ERR_FILE_SHAPE beyond them). */
#define CUDL_IMAGE_MAX_PIXELS (1ull << 26)      /* height x width decoded */
#define CUDL_IMAGE_MAX_FILE_BYTES (1ull << 28)  /* 256 MiB */
#define CUDL_IMAGE_MAX_JPEG_SCANS 100           /* progressive JPEG */

/** What an image file holds. */
typedef enum cudl_image_format {
  CUDL_IMAGE_FORMAT_UNKNOWN = 0,
  CUDL_IMAGE_FORMAT_PNG = 1,
  CUDL_IMAGE_FORMAT_JPEG = 2
} cudl_image_format;

/** An image's header, as cudl_image_probe reads it. */
typedef struct cudl_image_info {
  cudl_image_format format;
  int height, width;
  /** 1 for gray (gray + alpha too), 3 for colour (RGB, RGBA, palette,
   *  YCbCr and RGB JPEGs): what the image decodes to before any
   *  conversion. 4 for a CMYK or YCCK JPEG, which cannot be decoded. */
  int channels;
  /** Bits per sample in the file: 1, 2, 4, 8 or 16 (PNG), 8 or 12 (JPEG;
   *  12 cannot be decoded by this libjpeg build). */
  int bit_depth;
} cudl_image_info;

/**
 * Read the header of the image in data[0..size) into *info, without
 * decoding its pixels. The limits and statuses above apply (a header whose
 * sides are beyond the limits is CUDL_ERR_FILE_SHAPE here already); a
 * valid header does not promise decodable pixels. CUDL_ERR_INVALID_ARGUMENT
 * for NULL data (with size > 0) or info.
 */
CUDL_API cudl_status cudl_image_probe(cudl_context *ctx, const void *data,
                                      size_t size, cudl_image_info *info);

/** cudl_image_probe on the contents of the file at path. */
CUDL_API cudl_status cudl_image_probe_file(cudl_context *ctx, const char *path,
                                           cudl_image_info *info);

/**
 * Decode the image in data[0..size) into pixels: channels (1 gray or 3
 * RGB) x height x width bytes, planar, converted and resized as the top of
 * this header says. channels, height and width must be given (the image's
 * own are in cudl_image_probe's info); height and width are 1 to
 * CUDL_DATASET_MAX_SIDE with at most CUDL_DATASET_MAX_IMAGE_BYTES output
 * bytes (CUDL_ERR_INVALID_ARGUMENT otherwise). pixels is written only on
 * success.
 */
CUDL_API cudl_status cudl_image_decode(cudl_context *ctx, const void *data,
                                       size_t size, int channels, int height,
                                       int width, uint8_t *pixels);

/** cudl_image_decode on the contents of the file at path (what `cudl
 *  predict --image` uses with the model's input shape). */
CUDL_API cudl_status cudl_image_load(cudl_context *ctx, const char *path,
                                     int channels, int height, int width,
                                     uint8_t *pixels);

/* ---- folders of images ---- */

/** How cudl_dataset_load_folder reads a folder. Start from
 *  cudl_folder_options_default(). */
typedef struct cudl_folder_options {
  /** 1 or 3; 0 decides from the images: 3 when any readable image is
   *  colour (cudl_image_info.channels 3), else 1. */
  int channels;
  /** Both > 0: every image is resized to height x width. Both 0: the
   *  images' own size, which must then be the same for all of them (else
   *  CUDL_ERR_FILE_SHAPE, naming two files of different sizes and asking
   *  for a size). */
  int height, width;
  /** 0: a file that cannot be read as an image (unreadable, not PNG or
   *  JPEG, corrupt, truncated, too large) is skipped and recorded
   *  (cudl_dataset_skipped); 1: the first such file, in path order, fails
   *  the load with its name and reason. */
  int strict;
  /** NULL: the classes are the subdirectories of dir, sorted bytewise
   *  (strcmp), as torchvision's ImageFolder sorts them. Otherwise the
   *  class_count names (1 to 256, distinct) that label i means: each
   *  subdirectory of dir must be one of them (else
   *  CUDL_ERR_INVALID_ARGUMENT naming it), and a name without a
   *  subdirectory simply has no images. For a test or val tree to use a
   *  training tree's labels. */
  const char *const *class_names;
  int class_count;
  /** The most bytes of decoded pixels the dataset may hold in memory: a
   *  set whose decoded size (every file found x channels x height x
   *  width, unreadable files included: what the cache is allocated for)
   *  is larger is streamed (cudl_dataset_load_folder). 0:
   *  cudl_folder_default_cache_bytes() at the time of the load. */
  uint64_t max_cache_bytes;
  /** 0: stream only when the decoded size is above max_cache_bytes, above
   *  CUDL_DATASET_MAX_BYTES, or more than the allocator gives; 1: always
   *  stream. */
  int stream;
} cudl_folder_options;

/** channels 0, height 0, width 0, strict 0, class_names NULL,
 *  max_cache_bytes 0, stream 0. */
CUDL_API cudl_folder_options cudl_folder_options_default(void);

/**
 * What max_cache_bytes 0 means: half of the memory the system has
 * available now (MemAvailable of /proc/meminfo; where that cannot be read,
 * the free pages of sysconf(_SC_AVPHYS_PAGES); where neither, 1 GiB), at
 * most CUDL_DATASET_MAX_BYTES. The other half is left to the model, its
 * activations and batches, and the page cache that a streamed set's files
 * are read from.
 */
CUDL_API uint64_t cudl_folder_default_cache_bytes(void);

/**
 * A dataset from a folder of images: dir/<class>/... where every
 * subdirectory of dir not starting with '.' is a class (dir/<class> may
 * itself be a symbolic link to a directory), and the images of a class are
 * every file under its directory, at any depth (at most 32 directories
 * deep), whose name does not start with '.' (dot directories are skipped
 * too). Files are taken in bytewise order of their path relative to the
 * class directory; the dataset holds the classes in order, each with its
 * images in that order. Files that are not regular files (FIFOs, devices)
 * are skipped like unreadable ones. Regular files directly in dir are
 * ignored.
 *
 * Every file is decoded once, in parallel (OpenMP, one file per
 * iteration), into the in-memory dataset; the result does not depend on
 * the number of threads. With channels or size 0 the headers are read
 * first (a second pass over the files).
 *
 * Streamed: a set whose decoded pixels exceed options->max_cache_bytes
 * (or CUDL_DATASET_MAX_BYTES, or what the allocator can give), or any set
 * with options->stream, keeps its file list, labels and decoding
 * parameters but no pixels (cudl_dataset_streamed says 1). The load still
 * decodes every file once, in parallel, and drops the pixels, so that the
 * files skipped (or, with strict, the failure), the images kept, their
 * order and labels are exactly the cached set's; it keeps each image's
 * per-channel sums of values and of squares (16 bytes a channel), from
 * which cudl_dataset_channel_stats answers, also for the parts of a
 * cudl_dataset_split. Images are then decoded again whenever they are
 * read: by cudl_dataset_image_read, and by a loader's thread for each
 * batch (in parallel, OpenMP; its decoding memory from malloc, as the
 * context's allocator belongs to the caller's thread). They are the same
 * bytes as the cached set's, so batches are identical. A file that cannot
 * be decoded any more (deleted, truncated, replaced) or decodes to other
 * pixels than at the load (its sums differ) makes that read fail with its
 * path and reason: cudl_dataset_image_read returns the decoder's status
 * (CUDL_ERR_IO for a changed image), cudl_loader_next the same with the
 * batch's position. cudl_dataset_image gives NULL for a streamed set.
 * Memory per image: a label, a file index, the sums and the path.
 *
 * Errors: CUDL_ERR_INVALID_ARGUMENT for NULL, options out of range, an
 * unknown class with options->class_names, more than 256 classes;
 * CUDL_ERR_IO when dir cannot be listed; CUDL_ERR_FILE_SHAPE for no class
 * subdirectory, no readable image at all, or sizes that differ without a
 * requested size; with strict, the status of the first bad file. options
 * NULL means cudl_folder_options_default(). cudl_dataset_source(ds, i)
 * gives the path of image i (dir/<class>/<file>) and cudl_dataset_class_name
 * the class names.
 */
CUDL_API cudl_status cudl_dataset_load_folder(cudl_context *ctx,
                                              const char *dir,
                                              const cudl_folder_options *options,
                                              cudl_dataset **out);

/** How many files cudl_dataset_load_folder skipped (0 for other datasets
 *  and NULL). */
CUDL_API int64_t cudl_dataset_skipped_count(const cudl_dataset *ds);

/**
 * The i-th skipped file, in path order: its path (dir/<class>/<file>) and
 * the one-line reason it was skipped (the decoder's error text). Both stay
 * valid while the dataset lives; either pointer may be NULL.
 * CUDL_ERR_INVALID_ARGUMENT for NULL ds or i out of range.
 */
CUDL_API cudl_status cudl_dataset_skipped(const cudl_dataset *ds, int64_t i,
                                          const char **path,
                                          const char **reason);

/**
 * How a data folder is laid out, for a command line to decide what it
 * reads (cudl_folder_layout_detect).
 */
typedef struct cudl_folder_layout {
  /** 1: dir/train/<class> with the splits below; 0: one tree of classes,
   *  dir/<class>, to be split by the caller (--val-split). */
  int splits;
  /** With splits: whether dir/train, dir/val and dir/test are
   *  directories (has_train is 1). */
  int has_train, has_val, has_test;
  /** Without splits: the number of class subdirectories of dir. With
   *  splits: those of dir/train. */
  int classes;
} cudl_folder_layout;

/**
 * Tell how dir is laid out: splits when dir/train is a directory (a class
 * called "train" is therefore read as a split), else one tree of classes
 * when dir has at least one subdirectory not starting with '.'.
 * CUDL_ERR_IO when dir (or dir/train) cannot be listed;
 * CUDL_ERR_FILE_SHAPE when there is no class subdirectory.
 */
CUDL_API cudl_status cudl_folder_layout_detect(cudl_context *ctx,
                                               const char *dir,
                                               cudl_folder_layout *layout);

CUDL_EXTERN_C_END

#endif /* CUDL_IMAGE_H */
