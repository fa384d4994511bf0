/*
 * cudl/safetensors.h - read and write named tensors in the safetensors format.
 *
 * Format: an 8-byte little-endian header length N, N bytes of UTF-8 JSON
 * (an object: tensor name -> {"dtype", "shape", "data_offsets": [begin, end]},
 * plus an optional "__metadata__" object of strings), then the data section
 * of little-endian tensors packed back to back. Offsets are relative to the
 * start of the data section.
 *
 * The loader validates the whole header before allocating any tensor, and
 * each kind of malformation has its own status (CUDL_ERR_FILE_*). The writer
 * produces what the reference implementation produces: compact JSON,
 * __metadata__ first (keys sorted), the header padded with spaces to a
 * multiple of 8, integers written exactly, tensors ordered as the reference
 * orders them: by its dtype enum order, last first (F32, then BF16, then
 * F16, so larger elements come first and each tensor is aligned to its
 * element size), then by name (bytewise).
 */
#ifndef CUDL_SAFETENSORS_H
#define CUDL_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

/** Largest header accepted, in bytes (the reference implementation's limit). */
#define CUDL_SAFETENSORS_MAX_HEADER 100000000u

/** One tensor to save: a name (non-empty UTF-8, not "__metadata__") and a
 *  tensor on any device. */
typedef struct cudl_named_tensor {
  const char *name;
  const cudl_tensor *tensor;
} cudl_named_tensor;

/** One metadata pair to save. */
typedef struct cudl_metadata_pair {
  const char *key;
  const char *value;
} cudl_metadata_pair;

/**
 * Write tensors (and optional metadata, n_metadata may be 0 with metadata
 * NULL) to path atomically: the file is written to a temporary file in the
 * same directory, flushed with fsync, then renamed over path, and the
 * directory is synced. A failure before the rename leaves the old file (or
 * none) and no temporary behind. The one failure after it, CUDL_ERR_IO from
 * syncing the directory, says so in its message: the new file is then in
 * place but may not survive a crash. CUDA tensors are copied to the host
 * first. Only a regular file is replaced: where path is a symbolic link,
 * the file it points to is (the link stays); a directory, device, FIFO or
 * socket at path, or a link to nothing, is CUDL_ERR_IO and left as it is.
 * Duplicate names give CUDL_ERR_INVALID_ARGUMENT.
 */
CUDL_API cudl_status cudl_safetensors_save(cudl_context *ctx, const char *path,
                                           const cudl_named_tensor *tensors,
                                           size_t n_tensors,
                                           const cudl_metadata_pair *metadata,
                                           size_t n_metadata);

/** A loaded (or inspected) file: names, dtypes, shapes, metadata and, when
 *  loaded, the tensors, all owned by the set. */
typedef struct cudl_safetensors cudl_safetensors;

/** Flags for the load calls. */
enum {
  /** Validate the header and the file size but read no tensor data; the
   *  set then has entries and metadata but cudl_safetensors_tensor returns
   *  NULL. Dtypes cudl cannot hold (I64, F64, ...) are accepted. */
  CUDL_SAFETENSORS_HEADER_ONLY = 1,
  /** Load the tensors cudl can hold and leave the others (dtypes such as
   *  I64 or F64, or more than CUDL_MAX_DIMS dimensions) as entries without
   *  a tensor (cudl_safetensors_tensor returns NULL for them), instead of
   *  failing with CUDL_ERR_UNSUPPORTED. For PyTorch state_dicts, whose
   *  batch-norm counters are I64. */
  CUDL_SAFETENSORS_SKIP_UNSUPPORTED = 2
};

/**
 * Load the file at path into tensors on ctx's device. Every entry must have
 * a dtype cudl holds (F32, F16, BF16, I32) and at most CUDL_MAX_DIMS
 * dimensions, else CUDL_ERR_UNSUPPORTED (the file itself is valid), unless
 * flags has CUDL_SAFETENSORS_SKIP_UNSUPPORTED. On failure *out is NULL and the
 * status is one of CUDL_ERR_IO, CUDL_ERR_FILE_*, CUDL_ERR_UNSUPPORTED,
 * CUDL_ERR_OUT_OF_MEMORY, CUDL_ERR_CUDA.
 */
CUDL_API cudl_status cudl_safetensors_load(cudl_context *ctx, const char *path,
                                           unsigned flags,
                                           cudl_safetensors **out);

/** As cudl_safetensors_load, from a complete file image in memory. */
CUDL_API cudl_status cudl_safetensors_load_memory(cudl_context *ctx,
                                                  const void *data, size_t size,
                                                  unsigned flags,
                                                  cudl_safetensors **out);

/** Release the set and every tensor it owns. NULL is a no-op. */
CUDL_API void cudl_safetensors_destroy(cudl_safetensors *set);

/** Number of tensors in the set (0 for NULL). */
CUDL_API size_t cudl_safetensors_count(const cudl_safetensors *set);

/** Description of entry i, in data-offset order. Pointers are owned by the set.
 */
typedef struct cudl_safetensors_entry {
  const char *name;
  const char *dtype_name; /**< as in the file: "F32", "I64", ... */
  int dtype_known; /**< 1 if cudl holds this dtype (then `dtype` is it) */
  cudl_dtype dtype;
  int ndim;
  const int64_t *shape; /**< ndim entries */
  uint64_t data_begin;  /**< byte offsets within the data section */
  uint64_t data_end;
} cudl_safetensors_entry;

/** Fill *entry for entry i (CUDL_ERR_INVALID_ARGUMENT if out of range). */
CUDL_API cudl_status cudl_safetensors_entry_query(
    const cudl_safetensors *set, size_t i, cudl_safetensors_entry *entry);

/** The loaded tensor of entry i, owned by the set; NULL if out of range or
 *  the set was loaded with CUDL_SAFETENSORS_HEADER_ONLY. */
CUDL_API cudl_tensor *cudl_safetensors_tensor(const cudl_safetensors *set,
                                              size_t i);

/** Index of the entry named `name`, or -1. */
CUDL_API int64_t cudl_safetensors_find(const cudl_safetensors *set,
                                       const char *name);

/** Number of __metadata__ pairs, and pair i (NULL if out of range). */
CUDL_API size_t cudl_safetensors_metadata_count(const cudl_safetensors *set);
CUDL_API const char *cudl_safetensors_metadata_key(const cudl_safetensors *set,
                                                   size_t i);
CUDL_API const char *cudl_safetensors_metadata_value(
    const cudl_safetensors *set, size_t i);
/** Value for key, or NULL. */
CUDL_API const char *cudl_safetensors_metadata_find(const cudl_safetensors *set,
                                                    const char *key);

CUDL_EXTERN_C_END

#endif /* CUDL_SAFETENSORS_H */
