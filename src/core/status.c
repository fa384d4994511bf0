/* status.c - text for status codes, and the run-time version. */
#include "core/internal.h"

#define CUDL_STATUSES(X)                                                     \
  X(CUDL_OK, "success")                                                      \
  X(CUDL_ERR_INVALID_ARGUMENT, "invalid argument")                           \
  X(CUDL_ERR_SHAPE, "invalid or mismatched shape")                           \
  X(CUDL_ERR_DTYPE, "unsupported or mismatched dtype")                       \
  X(CUDL_ERR_DEVICE_MISMATCH, "tensor on the wrong device")                  \
  X(CUDL_ERR_UNSUPPORTED, "operation not supported on this device or build") \
  X(CUDL_ERR_OUT_OF_MEMORY, "out of memory")                                 \
  X(CUDL_ERR_NO_DEVICE, "no usable CUDA device")                             \
  X(CUDL_ERR_CUDA, "CUDA, cuDNN or cuBLAS call failed")                      \
  X(CUDL_ERR_IO, "input/output error")                                       \
  X(CUDL_ERR_NUMERICS, "value not finite")                                   \
  X(CUDL_ERR_FILE_TRUNCATED, "file truncated")                               \
  X(CUDL_ERR_FILE_HEADER_SIZE, "file header size out of range")              \
  X(CUDL_ERR_FILE_JSON, "file header is not valid JSON")                     \
  X(CUDL_ERR_FILE_SCHEMA, "file header entry malformed")                     \
  X(CUDL_ERR_FILE_DTYPE, "unknown dtype in file")                            \
  X(CUDL_ERR_FILE_SHAPE, "invalid shape in file")                            \
  X(CUDL_ERR_FILE_OFFSETS, "invalid data offsets in file")                   \
  X(CUDL_ERR_FILE_DUPLICATE, "duplicate tensor name in file")                \
  X(CUDL_ERR_FILE_METADATA, "invalid metadata in file")                      \
  X(CUDL_ERR_FILE_TRAILING_DATA, "unexpected data after the content")        \
  X(CUDL_ERR_FILE_FORMAT, "not a file of the expected format")               \
  X(CUDL_ERR_FILE_COMPRESSION, "corrupt compressed data in file")            \
  X(CUDL_ERR_FILE_VALUE, "value out of range in file")                       \
  X(CUDL_ERR_INTERNAL, "internal error")

const char *cudl_status_string(cudl_status status) {
#define CUDL_STATUS_TEXT(code, text) \
  case code:                         \
    return text;
  switch (status) { CUDL_STATUSES(CUDL_STATUS_TEXT) }
#undef CUDL_STATUS_TEXT
  return "unknown status";
}

const char *cudl_status_name(cudl_status status) {
#define CUDL_STATUS_NAME(code, text) \
  case code:                         \
    return #code;
  switch (status) { CUDL_STATUSES(CUDL_STATUS_NAME) }
#undef CUDL_STATUS_NAME
  return "CUDL_STATUS_UNKNOWN";
}

const char *cudl_version(void) { return CUDL_VERSION_STRING; }

int cudl_version_number(void) { return CUDL_VERSION_NUMBER; }
