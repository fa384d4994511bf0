/*
 * cuda_module.c - the CUDA backend's side of core/cuda_module.h: the table
 * the library takes from the module (its entry, which hands the table
 * over, is in cuda_core_calls.c).
 */
#include "core/cuda_module.h"

#include <stdio.h>

#include "cuda/cuda_internal.h"
#if defined(CUDL_HAVE_NCCL)
#  include "cuda/cuda_nccl.h"
#else
/* A module built without NCCL's header says so (CUDL_NCCL_MISSING, from
 * CMake), and has none of the other NCCL entries. */
static cudl_status nccl_not_built(char *reason, size_t reason_size) {
  if (reason != NULL && reason_size > 0)
    snprintf(reason, reason_size, "%s", CUDL_NCCL_MISSING);
  return CUDL_ERR_UNSUPPORTED;
}
#endif

const cudl_cuda_module cudl__cuda_module_table = {
    .interface = CUDL_CUDA_MODULE_INTERFACE,
    .backend = &cudl__cuda_backend,
    .device_count = cudl__cuda_device_count,
    .device_properties = cudl__cuda_device_properties,
    .versions = cudl__cuda_versions,
#if defined(CUDL_HAVE_NCCL)
    .nccl_load = cudl__nccl_load,
    .nccl_unique_id = cudl__nccl_unique_id,
    .nccl_open = cudl__nccl_open,
    .nccl_sum = cudl__nccl_sum,
    .nccl_broadcast = cudl__nccl_broadcast,
    .nccl_bucket_slots = cudl__nccl_bucket_slots,
    .nccl_bucket_start = cudl__nccl_bucket_start,
    .nccl_bucket_finish = cudl__nccl_bucket_finish,
    .nccl_abort = cudl__nccl_abort,
    .nccl_close = cudl__nccl_close,
#else
    .nccl_load = nccl_not_built,
#endif
};
