/*
 * cuda_module.h - the one door between the library and its CUDA backend,
 * which is a separate shared object (libcudl_cuda.so.MAJOR.MINOR, built
 * from src/cuda and kernels/) loaded at run time (core/cuda_module.c).
 *
 * Why a module: cudart, cuBLAS and cuDNN are hundreds of megabytes that a
 * CPU host may not have. Linked into libcudl they would stop the library
 * from loading at all there; loaded on first use, their absence is a
 * reason that cudl_cuda_device_count and `cudl info` report, and the CPU
 * backend works as in a CPU-only build.
 *
 * The module reaches the library only through cudl_core_services (the
 * handful of core functions its files call: src/cuda/cuda_core_calls.c
 * forwards them), and the library reaches the module only through
 * cudl_cuda_module: the backend's tables (core/runtime.h) and the device
 * and NCCL queries. Both sides are compiled against the same private
 * headers (struct layouts, ops.def), so each carries the interface stamp
 * made from them (CUDL_CUDA_MODULE_INTERFACE, set by src/CMakeLists.txt)
 * and the library refuses a module whose stamp differs.
 */
#ifndef CUDL_CUDA_MODULE_H
#define CUDL_CUDA_MODULE_H

#include <stddef.h>
#include <stdint.h>

#include "core/runtime.h"

#ifdef __cplusplus
extern "C" {
#endif

/* The module's one exported function (dlsym looks it up by this name). */
#define CUDL_CUDA_MODULE_ENTRY "cudl_cuda_module_entry"

/* What the library lends the module: the core functions its files call,
 * with the messages already formatted (a table of variadic functions
 * would need a va_list twin of each). */
typedef struct cudl_core_services {
  const char *interface; /* CUDL_CUDA_MODULE_INTERFACE of the library */
  cudl_status (*fail)(cudl_context *ctx, cudl_status status,
                      const char *function, const char *message);
  void (*log)(cudl_log_level level, const char *message);
  void *(*host_alloc)(const cudl_allocator *a, size_t size, size_t alignment);
  void (*host_free)(const cudl_allocator *a, void *ptr, size_t size);
  const cudl_allocator *default_allocator;
  int (*memory_limit_exceeded)(const cudl_context *ctx, size_t nbytes,
                               uint64_t in_use);
  cudl_status (*memory_limit_fail)(cudl_context *ctx, const char *function,
                                   size_t nbytes, uint64_t in_use);
  cudl_status (*cuda_arch_covers)(const char *architectures, int major,
                                  int minor);
  void (*cuda_arch_refusal)(char *out, size_t size, int index,
                            const char *name, int major, int minor,
                            const char *architectures);
  const char *(*dtype_name)(cudl_dtype dtype);
  const char *architectures; /* cudl_cuda_architectures() */
} cudl_core_services;

/* An NCCL communicator of the module (src/cuda/cuda_nccl.h says what each
 * call does), and the bytes of NCCL's ncclUniqueId (NCCL_UNIQUE_ID_BYTES;
 * cuda_nccl.c checks that they agree). */
typedef struct cudl_nccl cudl_nccl;
#define CUDL_NCCL_ID_BYTES 128

/* What the module gives the library. `interface` stays the first member in
 * every version, so a library can read a foreign module's stamp. */
typedef struct cudl_cuda_module {
  const char *interface; /* CUDL_CUDA_MODULE_INTERFACE of the module */
  const cudl_backend *backend;
  cudl_status (*device_count)(int *count, char *reason, size_t reason_size);
  cudl_status (*device_properties)(int index,
                                   cudl_cuda_device_properties *props);
  cudl_status (*versions)(cudl_cuda_versions *versions);
  /* NCCL, which the module loads on first use (libnccl.so.2): nccl_load
   * says whether it can, with the reason when not; the others may only be
   * called after it succeeded. */
  cudl_status (*nccl_load)(char *reason, size_t reason_size);
  cudl_status (*nccl_unique_id)(cudl_context *ctx, unsigned char *id,
                                const char *function);
  cudl_status (*nccl_open)(cudl_context *ctx, const unsigned char *id,
                           int rank, int size, const char *function,
                           cudl_nccl **out);
  cudl_status (*nccl_sum)(cudl_nccl *n, void *values, size_t count,
                          cudl_dtype dtype, double timeout_seconds,
                          const char *function);
  cudl_status (*nccl_broadcast)(cudl_nccl *n, void *data, size_t bytes,
                                int root, double timeout_seconds,
                                const char *function);
  cudl_status (*nccl_bucket_slots)(cudl_nccl *n, int count,
                                   const char *function);
  cudl_status (*nccl_bucket_start)(cudl_nccl *n, int slot, void *values,
                                   size_t count, cudl_dtype dtype,
                                   const char *function);
  cudl_status (*nccl_bucket_finish)(cudl_nccl *n, int slot,
                                    double timeout_seconds,
                                    const char *function);
  void (*nccl_abort)(cudl_nccl *n);
  void (*nccl_close)(cudl_nccl *n);
} cudl_cuda_module;

/* The entry's type: called once, by the loader, with the library's
 * services; returns the module's table (never NULL). The module keeps
 * `core` only when the two interface stamps agree. */
typedef const cudl_cuda_module *(*cudl_cuda_module_entry_fn)(
    const cudl_core_services *core);
/* The module's side (src/cuda/cuda_core_calls.c). */
const cudl_cuda_module *cudl_cuda_module_entry(const cudl_core_services *core);

/* The library's side (core/cuda_module.c). */

/* The loaded module, loading it on the first call from any thread; NULL
 * when this build has no CUDA backend or the module cannot be loaded,
 * with the reason in reason (may be NULL). */
const cudl_cuda_module *cudl__cuda_module(char *reason, size_t reason_size);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_CUDA_MODULE_H */
