/*
 * cuda_core_calls.c - the module's boundary: its entry, and the library's
 * functions as the module's files call them, each forwarded to the table
 * the library handed the entry (core/cuda_module.h), so that the files of
 * src/cuda and kernels/ are written as if they were part of the library.
 * Built into the module only; a program that links the CUDA objects into
 * itself (test_cuda_arch) gets the library's own functions instead.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "core/cuda_arch.h"
#include "core/cuda_module.h"
#include "cuda/cuda_internal.h"

/* Set once by the entry, before the library calls anything else. */
static const cudl_core_services *core;

/* The one symbol the module exports (cmake/cudl-cuda-exports.map). */
__attribute__((visibility("default"))) const cudl_cuda_module *
cudl_cuda_module_entry(const cudl_core_services *services) {
  /* A library of another build would read the table wrongly, and this
   * module its services: the library refuses the module on the stamp, so
   * keep nothing of it. */
  if (services != NULL && services->interface != NULL &&
      strcmp(services->interface, CUDL_CUDA_MODULE_INTERFACE) == 0)
    core = services;
  return &cudl__cuda_module_table;
}

cudl_status cudl__fail(cudl_context *ctx, cudl_status status,
                       const char *function, const char *fmt, ...) {
  char message[CUDL_ERROR_TEXT_SIZE];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  return core->fail(ctx, status, function, message);
}

void cudl__log(cudl_log_level level, const char *fmt, ...) {
  char message[CUDL_ERROR_TEXT_SIZE];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  core->log(level, message);
}

void *cudl__host_alloc(const cudl_allocator *a, size_t size,
                       size_t alignment) {
  return core->host_alloc(a, size, alignment);
}

void cudl__host_free(const cudl_allocator *a, void *ptr, size_t size) {
  core->host_free(a, ptr, size);
}

/* The library's default allocator, reached through its table. */
static void *default_alloc(size_t size, size_t alignment, void *user_data) {
  (void)user_data;
  return core->default_allocator->alloc(size, alignment,
                                        core->default_allocator->user_data);
}

static void default_free(void *ptr, size_t size, void *user_data) {
  (void)user_data;
  core->default_allocator->free(ptr, size, core->default_allocator->user_data);
}

const cudl_allocator cudl__default_allocator = {default_alloc, default_free,
                                                NULL};

int cudl__memory_limit_exceeded(const cudl_context *ctx, size_t nbytes,
                                uint64_t in_use) {
  return core->memory_limit_exceeded(ctx, nbytes, in_use);
}

cudl_status cudl__memory_limit_fail(cudl_context *ctx, const char *function,
                                    size_t nbytes, uint64_t in_use) {
  return core->memory_limit_fail(ctx, function, nbytes, in_use);
}

cudl_status cudl__cuda_arch_covers(const char *architectures, int major,
                                   int minor) {
  return core->cuda_arch_covers(architectures, major, minor);
}

void cudl__cuda_arch_refusal(char *out, size_t size, int index,
                             const char *name, int major, int minor,
                             const char *architectures) {
  core->cuda_arch_refusal(out, size, index, name, major, minor,
                          architectures);
}

const char *cudl_dtype_name(cudl_dtype dtype) {
  return core->dtype_name(dtype);
}

const char *cudl_cuda_architectures(void) { return core->architectures; }
