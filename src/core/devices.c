/* devices.c - the CUDA device queries, answered by src/cuda when the build
 * has it and with "built without CUDA" otherwise. */
#include <stdio.h>

#include "core/cuda_arch.h"
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

const char *cudl_cuda_architectures(void) {
#if defined(CUDL_HAVE_CUDA)
  /* Made from CMAKE_CUDA_ARCHITECTURES by cmake/CudlCuda.cmake. */
  return CUDL_CUDA_CODE;
#else
  return "";
#endif
}

cudl_status cudl_cuda_device_supported(int index, char *reason,
                                       size_t reason_size) {
  int count = 0;
  cudl_status status;
#if defined(CUDL_HAVE_CUDA)
  cudl_cuda_device_properties props;
#endif
  if (index < 0) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl_cuda_device_count(&count, reason, reason_size);
#if !defined(CUDL_HAVE_CUDA)
  return status; /* CUDL_ERR_NO_DEVICE: built without CUDA */
#else
  if (status != CUDL_OK) return status;
  if (index >= count) {
    if (reason != NULL && reason_size > 0)
      snprintf(reason, reason_size, "device %d requested, %d device(s) present",
               index, count);
    return CUDL_ERR_NO_DEVICE;
  }
  status = cudl__cuda_device_properties(index, &props);
  if (status != CUDL_OK) {
    if (reason != NULL && reason_size > 0)
      snprintf(reason, reason_size, "cuda:%d: cudaGetDeviceProperties failed",
               index);
    return status;
  }
  status = cudl__cuda_arch_covers(CUDL_CUDA_CODE, props.compute_major,
                                  props.compute_minor);
  if (status == CUDL_ERR_UNSUPPORTED) {
    cudl__cuda_arch_refusal(reason, reason_size, index, props.name,
                            props.compute_major, props.compute_minor,
                            CUDL_CUDA_CODE);
  } else if (status != CUDL_OK) {
    /* CMake wrote the list and the driver the capability. */
    if (reason != NULL && reason_size > 0)
      snprintf(reason, reason_size,
               "cuda:%d: compute capability %d.%d or the build's list \"%s\" "
               "is not understood",
               index, props.compute_major, props.compute_minor, CUDL_CUDA_CODE);
    return CUDL_ERR_INTERNAL;
  }
  return status;
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
