/*
 * cudl/status.h - status codes returned by every fallible cudl call.
 *
 * A call that fails returns one of these codes, leaves its outputs untouched
 * and, when it has a context, records a detailed message that
 * cudl_context_last_error() returns (what failed, which argument, and for
 * CUDA/cuDNN/cuBLAS failures the library's own error text and file:line).
 */
#ifndef CUDL_STATUS_H
#define CUDL_STATUS_H

#include "cudl/export.h"

CUDL_EXTERN_C_BEGIN

typedef enum cudl_status {
  CUDL_OK = 0,

  /* ---- argument and state errors ---- */
  /** A required pointer was NULL, or a value is outside its documented range.
   */
  CUDL_ERR_INVALID_ARGUMENT = 1,
  /** A shape is invalid (negative dimension, too many dimensions, element
   *  count or byte size overflows) or does not match another argument. */
  CUDL_ERR_SHAPE = 2,
  /** A tensor has a dtype the call does not accept. */
  CUDL_ERR_DTYPE = 3,
  /** A tensor lives on a device (or context) the call cannot use it on. */
  CUDL_ERR_DEVICE_MISMATCH = 4,
  /** The operation has no implementation for this device or build; or the
   *  build has no GPU code that the card runs (cudl_context_create,
   *  cudl_cuda_device_supported). */
  CUDL_ERR_UNSUPPORTED = 5,

  /* ---- resources and devices ---- */
  /** A host or device allocation failed. Nothing was modified. */
  CUDL_ERR_OUT_OF_MEMORY = 6,
  /** No usable CUDA device: no driver, no GPU, index out of range, or the
   *  library was built without CUDA. The message names which. */
  CUDL_ERR_NO_DEVICE = 7,
  /** A CUDA runtime, cuDNN or cuBLAS call failed; the message has its text. */
  CUDL_ERR_CUDA = 8,
  /** An operating-system I/O call failed (open, read, write, fsync, rename). */
  CUDL_ERR_IO = 9,
  /** A value is not finite where check-numerics mode looks
   *  (cudl_model_set_check_numerics): the message names the layer, the
   *  pass and the counts of NaN and infinities. */
  CUDL_ERR_NUMERICS = 10,

  /* ---- file format errors (safetensors, datasets: see cudl/data.h; model
   *      files: see cudl/model_file.h) ---- */
  /** The file ends before the data its header promises. */
  CUDL_ERR_FILE_TRUNCATED = 20,
  /** The header length is below the minimum or above the limit
   *  (CUDL_SAFETENSORS_MAX_HEADER bytes); a model file larger than
   *  CUDL_MODEL_FILE_MAX_BYTES. */
  CUDL_ERR_FILE_HEADER_SIZE = 21,
  /** The header is not strict JSON (RFC 8259) in UTF-8 whose top level is
   *  an object: invalid UTF-8, a byte-order mark, a NUL character (raw, or
   *  escaped in any string), a raw control character in a string, a
   *  comment, a leading zero, "1.", anything but whitespace after the
   *  object, or an integer outside [INT64_MIN, INT64_MAX] (such as 2^64)
   *  anywhere in the header. A model file that is not such JSON (the
   *  message gives the line and column). */
  CUDL_ERR_FILE_JSON = 22,
  /** An entry does not follow the schema: not an object, a key missing,
   *  unknown or of the wrong JSON type (model files also: an unknown kind
   *  or loss, a reference to no layer or to a later one). */
  CUDL_ERR_FILE_SCHEMA = 23,
  /** An entry names a dtype the format does not define. */
  CUDL_ERR_FILE_DTYPE = 24,
  /** A dimension is not a non-negative integer (a negative number, or a
   *  real such as 4.0 or 1e3), or, as in cudl_tensor_create, the product
   *  of the non-zero dimensions exceeds INT64_MAX or, times the element
   *  size, 64 bits (whatever the order of the dimensions, and even when
   *  one is 0). Dimensions are read as exact 64-bit integers (2^53 + 1 is
   *  not rounded). Datasets: a count or side of 0 or above the limits of
   *  cudl/data.h, or image and label counts that differ. Model files: a
   *  layer the model graph cannot add where it stands (its input's shape
   *  does not fit). */
  CUDL_ERR_FILE_SHAPE = 25,
  /** data_offsets are reversed, do not match dtype size x element count,
   *  overlap, or leave a hole between tensors. */
  CUDL_ERR_FILE_OFFSETS = 26,
  /** A key appears twice in one JSON object of the header (after escapes
   *  are decoded): two tensors with one name, two __metadata__, a key
   *  repeated inside an entry or inside __metadata__. Model files: a key
   *  twice in one object, or two layers with one name or id. */
  CUDL_ERR_FILE_DUPLICATE = 27,
  /** __metadata__ is not an object whose values are all strings. */
  CUDL_ERR_FILE_METADATA = 28,
  /** Bytes follow the last tensor: the data section is longer than the
   *  header accounts for (datasets: the file, its decompressed data or the
   *  gzip stream is longer than the header describes). */
  CUDL_ERR_FILE_TRAILING_DATA = 29,
  /** The file is not of the kind the reader expects: a wrong magic number,
   *  element type or number of dimensions (IDX), or compressed where only
   *  uncompressed files are read (CIFAR-10). */
  CUDL_ERR_FILE_FORMAT = 30,
  /** Compressed (gzip) data is corrupt: an invalid deflate stream, or a
   *  CRC-32 or length in the gzip trailer that does not match. */
  CUDL_ERR_FILE_COMPRESSION = 31,
  /** A value in the file is outside its range: a class label >= the number
   *  of classes; a weight, batch-norm statistic or optimizer state that is
   *  NaN or infinite (cudl_model_load, cudl_model_load_set,
   *  cudl_checkpoint_load: the message names the file, the tensor and how
   *  many of its values are NaN and infinite); in a model file, a number
   *  outside its documented range or limit, or an unknown version. */
  CUDL_ERR_FILE_VALUE = 32,

  /** A bug in cudl: an invariant failed. Please report it. */
  CUDL_ERR_INTERNAL = 99
} cudl_status;

/**
 * Short, static, English description of a status ("out of memory").
 * Never NULL; unknown values give "unknown status".
 */
CUDL_API const char *cudl_status_string(cudl_status status);

/**
 * The enum name of a status ("CUDL_ERR_OUT_OF_MEMORY"), for logs and tests.
 * Never NULL; unknown values give "CUDL_STATUS_UNKNOWN".
 */
CUDL_API const char *cudl_status_name(cudl_status status);

CUDL_EXTERN_C_END

#endif /* CUDL_STATUS_H */
