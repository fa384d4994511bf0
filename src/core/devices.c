/* devices.c - the CUDA device queries, answered by src/cuda when the build
 * has it and with "built without CUDA" otherwise. */
#include <stdio.h>

#include "core/internal.h"
#if defined(CUDL_HAVE_CUDA)
#  include "cuda/cuda_internal.h"
#endif

int cudl_cuda_compiled(void) {
#if defined(CUDL_HAVE_CUDA)
  return 1;
#else
  return 0;
#endif
}

cudl_status cudl_cuda_device_count(int *count, char *reason,
                                   size_t reason_size) {
  if (count == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (reason != NULL && reason_size > 0) reason[0] = '\0';
#if defined(CUDL_HAVE_CUDA)
  return cudl__cuda_device_count(count, reason, reason_size);
#else
  *count = 0;
  if (reason != NULL && reason_size > 0)
    snprintf(reason, reason_size,
             "this cudl was built without CUDA (CUDL_CUDA=OFF or no nvcc)");
  return CUDL_ERR_NO_DEVICE;
#endif
}

cudl_status cudl_cuda_device_properties_query(
    int index, cudl_cuda_device_properties *props) {
  if (props == NULL || index < 0) return CUDL_ERR_INVALID_ARGUMENT;
#if defined(CUDL_HAVE_CUDA)
  return cudl__cuda_device_properties(index, props);
#else
  return CUDL_ERR_NO_DEVICE;
#endif
}

cudl_status cudl_cuda_versions_query(cudl_cuda_versions *versions) {
  if (versions == NULL) return CUDL_ERR_INVALID_ARGUMENT;
#if defined(CUDL_HAVE_CUDA)
  return cudl__cuda_versions(versions);
#else
  return CUDL_ERR_UNSUPPORTED;
#endif
}
