/*
 * cuda_probe.c - whether the driver can load the build's GPU code on a card
 * (cuda_probe.h), asked with the kernel of cuda_probe.cu.
 */
#include <cuda_runtime_api.h>
#include <stdio.h>

#include "core/cuda_arch.h"
#include "cuda/cuda_probe.h"

/* The failures that mean the driver has no image of the code that this card
 * runs: none was built for it, or there is PTX that it cannot (an older
 * driver than the compiler) or may not (CUDA_DISABLE_PTX_JIT) compile. */
static int is_missing_image(cudaError_t err) {
  switch (err) {
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorInvalidDeviceFunction:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorInvalidPtx:
    case cudaErrorJitCompilerNotFound:
    case cudaErrorJitCompilationDisabled:
      return 1;
    default:
      return 0;
  }
}

cudl_status cudl__cuda_kernel_loads(int index, const void *kernel,
                                    const char *architectures, char *reason,
                                    size_t reason_size) {
  struct cudaDeviceProp device;
  struct cudaFuncAttributes attributes;
  int have_reason = reason != NULL && reason_size > 0;
  cudaError_t err = cudaSetDevice(index);
  if (err == cudaSuccess) err = cudaGetDeviceProperties(&device, index);
  if (err != cudaSuccess) {
    (void)cudaGetLastError();
    if (have_reason)
      snprintf(reason, reason_size, "cuda:%d: %s (%s)", index,
               cudaGetErrorString(err), cudaGetErrorName(err));
    return err == cudaErrorInvalidDevice ? CUDL_ERR_NO_DEVICE : CUDL_ERR_CUDA;
  }
  err = cudaFuncGetAttributes(&attributes, kernel);
  (void)cudaGetLastError();
  if (err == cudaSuccess) return CUDL_OK;
  if (!is_missing_image(err)) {
    if (have_reason)
      snprintf(reason, reason_size,
               "cuda:%d (%s): cudaFuncGetAttributes failed: %s (%s)", index,
               device.name, cudaGetErrorString(err), cudaGetErrorName(err));
    return CUDL_ERR_CUDA;
  }
  if (cudl__cuda_arch_covers(architectures, device.major, device.minor) !=
      CUDL_OK) {
    cudl__cuda_arch_refusal(reason, reason_size, index, device.name,
                            device.major, device.minor, architectures);
  } else if (have_reason) {
    /* The list has code for the card, yet the driver finds none it can
     * use: PTX newer than the driver, or JIT compilation turned off. */
    snprintf(reason, reason_size,
             "cuda:%d (%s) has compute capability %d.%d, and the driver "
             "cannot load this build's GPU code (%s) for it: %s (%s): update "
             "the NVIDIA driver, or rebuild with %d%d added to "
             "CMAKE_CUDA_ARCHITECTURES",
             index, device.name, device.major, device.minor, architectures,
             cudaGetErrorString(err), cudaGetErrorName(err), device.major,
             device.minor);
  }
  return CUDL_ERR_UNSUPPORTED;
}
