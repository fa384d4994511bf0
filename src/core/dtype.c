/* dtype.c - what the library knows of each element type: its size and
 * name. Below everything that dispatches on a dtype. */
#include "core/internal.h"

size_t cudl_dtype_size(cudl_dtype dtype) {
  switch (dtype) {
    case CUDL_DTYPE_F32:
      return 4;
    case CUDL_DTYPE_F16:
      return 2;
    case CUDL_DTYPE_BF16:
      return 2;
    case CUDL_DTYPE_I32:
      return 4;
  }
  return 0;
}

const char *cudl_dtype_name(cudl_dtype dtype) {
  switch (dtype) {
    case CUDL_DTYPE_F32:
      return "f32";
    case CUDL_DTYPE_F16:
      return "f16";
    case CUDL_DTYPE_BF16:
      return "bf16";
    case CUDL_DTYPE_I32:
      return "i32";
  }
  return "unknown";
}
