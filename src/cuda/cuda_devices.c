/* cuda_devices.c - finding GPUs and the versions of the CUDA libraries. */
#include <stdio.h>
#include <string.h>

#include "cuda/cuda_internal.h"

cudl_status cudl__cuda_device_count(int *count, char *reason,
                                    size_t reason_size) {
  int driver = 0, n = 0;
  cudaError_t err;
  *count = 0;
  if (cudaDriverGetVersion(&driver) != cudaSuccess || driver == 0) {
    (void)cudaGetLastError();
    if (reason != NULL && reason_size > 0)
      snprintf(reason, reason_size,
               "no NVIDIA driver is installed (the CUDA driver library "
               "libcuda.so could not be loaded)");
    return CUDL_ERR_NO_DEVICE;
  }
  err = cudaGetDeviceCount(&n);
  if (err != cudaSuccess || n == 0) {
    (void)cudaGetLastError();
    if (reason != NULL && reason_size > 0) {
      if (err == cudaSuccess || err == cudaErrorNoDevice)
        snprintf(reason, reason_size, "the NVIDIA driver sees no GPU");
      else
        snprintf(reason, reason_size,
                 "cudaGetDeviceCount failed: %s (%s); driver %d.%d",
                 cudaGetErrorString(err), cudaGetErrorName(err), driver / 1000,
                 (driver % 1000) / 10);
    }
    return CUDL_ERR_NO_DEVICE;
  }
  *count = n;
  return CUDL_OK;
}

cudl_status cudl__cuda_device_properties(int index,
                                         cudl_cuda_device_properties *props) {
  struct cudaDeviceProp p;
  int count = 0;
  if (cudl__cuda_device_count(&count, NULL, 0) != CUDL_OK || index >= count)
    return CUDL_ERR_NO_DEVICE;
  if (cudaGetDeviceProperties(&p, index) != cudaSuccess) {
    (void)cudaGetLastError();
    return CUDL_ERR_CUDA;
  }
  memset(props, 0, sizeof *props);
  snprintf(props->name, sizeof props->name, "%s", p.name);
  props->compute_major = p.major;
  props->compute_minor = p.minor;
  props->multiprocessor_count = p.multiProcessorCount;
  props->total_memory = (uint64_t)p.totalGlobalMem;
  return CUDL_OK;
}

cudl_status cudl__cuda_versions(cudl_cuda_versions *versions) {
  int major = 0, minor = 0, patch = 0;
  memset(versions, 0, sizeof *versions);
  if (cudaRuntimeGetVersion(&versions->runtime) != cudaSuccess)
    versions->runtime = 0;
  if (cudaDriverGetVersion(&versions->driver) != cudaSuccess)
    versions->driver = 0;
  (void)cudaGetLastError();
  versions->cudnn_compiled = CUDNN_VERSION;
  versions->cudnn_loaded = (int)cudnnGetVersion();
  if (cublasGetProperty(MAJOR_VERSION, &major) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(MINOR_VERSION, &minor) == CUBLAS_STATUS_SUCCESS &&
      cublasGetProperty(PATCH_LEVEL, &patch) == CUBLAS_STATUS_SUCCESS)
    versions->cublas = major * 10000 + minor * 100 + patch;
  return CUDL_OK;
}
