/*
 * cuda_probe.h - whether the driver can load the build's GPU code on a card:
 * the check (cuda_probe.c) and the kernel it asks about (cuda_probe.cu).
 * Free of CUDA's headers, so that the tests can call it too.
 */
#ifndef CUDL_CUDA_PROBE_H
#define CUDL_CUDA_PROBE_H

#include <stddef.h>

#include "cudl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A __global__ function of the library (cuda_probe.cu), compiled for the
 * architectures of cudl_cuda_architectures() like every kernel of it. */
const void *cudl__cuda_probe_kernel(void);

/* Whether device `index` can run `kernel`, compiled for `architectures`
 * (nvcc's names, core/cuda_arch.h): the driver loads the kernel's code
 * (cudaFuncGetAttributes), the final word, since it also knows whether it
 * can JIT-compile the PTX. CUDL_OK if it can; CUDL_ERR_UNSUPPORTED, with a
 * one-line reason naming the card, its compute capability, the
 * architectures and what to do, when the code has no image the card runs;
 * CUDL_ERR_CUDA (CUDL_ERR_NO_DEVICE for an index the driver does not know)
 * for any other failure, with the runtime's text. reason may be NULL.
 * Makes `index` the calling thread's current device. */
cudl_status cudl__cuda_kernel_loads(int index, const void *kernel,
                                    const char *architectures, char *reason,
                                    size_t reason_size);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_CUDA_PROBE_H */
