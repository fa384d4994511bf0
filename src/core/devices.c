/* devices.c - the CUDA device queries, answered by the CUDA backend module
 * when this build has one and it loads (core/cuda_module.h), and with the
 * reason otherwise. */
#include <stdio.h>

#include "core/cuda_arch.h"
#include "core/cuda_module.h"
#include "core/internal.h"

int cudl_cuda_compiled(void) {
#if defined(CUDL_CUDA_MODULE_FILE)
  return 1;
#else
  return 0;
#endif
}

cudl_status cudl_cuda_device_count(int *count, char *reason,
                                   size_t reason_size) {
  const cudl_cuda_module *m;
  if (count == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (reason != NULL && reason_size > 0) reason[0] = '\0';
  *count = 0;
  m = cudl__cuda_module(reason, reason_size);
  if (m == NULL) return CUDL_ERR_NO_DEVICE;
  return m->device_count(count, reason, reason_size);
}

const char *cudl_cuda_architectures(void) {
#if defined(CUDL_CUDA_MODULE_FILE)
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
  cudl_cuda_device_properties props;
  if (index < 0) return CUDL_ERR_INVALID_ARGUMENT;
  status = cudl_cuda_device_count(&count, reason, reason_size);
  if (status != CUDL_OK) return status;
  if (index >= count) {
    if (reason != NULL && reason_size > 0)
      snprintf(reason, reason_size, "device %d requested, %d device(s) present",
               index, count);
    return CUDL_ERR_NO_DEVICE;
  }
  status = cudl_cuda_device_properties_query(index, &props);
  if (status != CUDL_OK) {
    if (reason != NULL && reason_size > 0)
      snprintf(reason, reason_size, "cuda:%d: cudaGetDeviceProperties failed",
               index);
    return status;
  }
  status = cudl__cuda_arch_covers(cudl_cuda_architectures(),
                                  props.compute_major, props.compute_minor);
  if (status == CUDL_ERR_UNSUPPORTED) {
    cudl__cuda_arch_refusal(reason, reason_size, index, props.name,
                            props.compute_major, props.compute_minor,
                            cudl_cuda_architectures());
  } else if (status != CUDL_OK) {
    /* CMake wrote the list and the driver the capability. */
    if (reason != NULL && reason_size > 0)
      snprintf(reason, reason_size,
               "cuda:%d: compute capability %d.%d or the build's list \"%s\" "
               "is not understood",
               index, props.compute_major, props.compute_minor,
               cudl_cuda_architectures());
    return CUDL_ERR_INTERNAL;
  }
  return status;
}

cudl_status cudl_cuda_device_properties_query(
    int index, cudl_cuda_device_properties *props) {
  const cudl_cuda_module *m;
  if (props == NULL || index < 0) return CUDL_ERR_INVALID_ARGUMENT;
  m = cudl__cuda_module(NULL, 0);
  if (m == NULL) return CUDL_ERR_NO_DEVICE;
  return m->device_properties(index, props);
}

cudl_status cudl_cuda_versions_query(cudl_cuda_versions *versions) {
  const cudl_cuda_module *m;
  if (versions == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  m = cudl__cuda_module(NULL, 0);
  /* Built without CUDA: nothing to report; built with it but not loaded:
   * the versions are those of libraries that could not be loaded. */
  if (m == NULL) return CUDL_ERR_UNSUPPORTED;
  return m->versions(versions);
}
