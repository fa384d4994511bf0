/* context.c - creating contexts and the per-context settings. */
#include <stdio.h>
#include <string.h>

#include "core/cuda_module.h"
#include "core/internal.h"

/* caller_stream: a CUDA context's stream when the caller gives one
 * (cudl_context_create_cuda_stream), else NULL. */
static cudl_status context_open(cudl_device_kind kind, int device_index,
                                void *caller_stream, cudl_context **out) {
  cudl_context *ctx;
  cudl_status status;
  const cudl_backend *backend = &cudl__cpu_backend;
  if (kind == CUDL_DEVICE_CUDA) {
    /* cudl_context_create has counted the devices, which loaded it. */
    const cudl_cuda_module *module = cudl__cuda_module(NULL, 0);
    if (module == NULL) return CUDL_ERR_NO_DEVICE;
    backend = module->backend;
  }
  ctx = (cudl_context *)cudl__host_alloc(&cudl__default_allocator, sizeof *ctx,
                                         sizeof(void *));
  if (ctx == NULL) return CUDL_ERR_OUT_OF_MEMORY;
  memset(ctx, 0, sizeof *ctx);
  ctx->device = kind;
  ctx->device_index = device_index;
  ctx->backend = backend;
  ctx->allocator = cudl__default_allocator;
  ctx->caller_stream = caller_stream;
  snprintf(ctx->device_name, sizeof ctx->device_name, "cpu");
  status = backend->runtime->open(ctx, device_index);
  if (status != CUDL_OK) {
    cudl__log(CUDL_LOG_ERROR, "cannot open %s device %d: %s", backend->name,
              device_index, ctx->last_error);
    cudl__host_free(&cudl__default_allocator, ctx, sizeof *ctx);
    return status;
  }
  *out = ctx;
  return CUDL_OK;
}

/* CUDL_OK when CUDA device device_index (>= 0) exists; else the status of
 * cudl_cuda_device_count, or CUDL_ERR_NO_DEVICE past the count, with the
 * reason logged. */
static cudl_status cuda_device_present(int device_index) {
  char reason[CUDL_ERROR_TEXT_SIZE];
  int count = 0;
  cudl_status status = cudl_cuda_device_count(&count, reason, sizeof reason);
  if (status != CUDL_OK) {
    cudl__log(CUDL_LOG_ERROR, "cannot create a CUDA context: %s", reason);
    return status;
  }
  if (device_index >= count) {
    cudl__log(CUDL_LOG_ERROR,
              "cannot create a CUDA context: device %d requested, %d "
              "device(s) present",
              device_index, count);
    return CUDL_ERR_NO_DEVICE;
  }
  return CUDL_OK;
}

cudl_status cudl_context_create(cudl_device_kind kind, int device_index,
                                cudl_context **out) {
  char reason[CUDL_ERROR_TEXT_SIZE];
  int count = 0;
  cudl_status status;
  if (out == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  *out = NULL;
  switch (kind) {
    case CUDL_DEVICE_CPU:
      if (device_index != 0) return CUDL_ERR_INVALID_ARGUMENT;
      return context_open(CUDL_DEVICE_CPU, 0, NULL, out);
    case CUDL_DEVICE_CUDA:
      if (device_index < 0) return CUDL_ERR_INVALID_ARGUMENT;
      status = cuda_device_present(device_index);
      if (status != CUDL_OK) return status;
      return context_open(CUDL_DEVICE_CUDA, device_index, NULL, out);
    case CUDL_DEVICE_AUTO:
      if (device_index != 0) return CUDL_ERR_INVALID_ARGUMENT;
      status = cudl_cuda_device_count(&count, reason, sizeof reason);
      if (status == CUDL_OK) {
        /* A box may hold a card this build has no code for beside one it
         * has (an old display GPU as cuda:0): the first the build runs
         * that opens. The reason gathers why each was passed over. */
        char why[CUDL_ERROR_TEXT_SIZE];
        size_t used = 0;
        int i;
        for (i = 0; i < count; ++i) {
          status = cudl_cuda_device_supported(i, why, sizeof why);
          if (status == CUDL_OK) {
            status = context_open(CUDL_DEVICE_CUDA, i, NULL, out);
            if (status == CUDL_OK) return CUDL_OK;
            snprintf(why, sizeof why, "opening cuda:%d failed with %s", i,
                     cudl_status_name(status));
          }
          if (used < sizeof reason)
            used += (size_t)snprintf(reason + used, sizeof reason - used,
                                     "%s%s", i > 0 ? "; " : "", why);
        }
      }
      cudl__log(CUDL_LOG_WARN, "no usable CUDA device (%s); using the CPU",
                reason);
      return context_open(CUDL_DEVICE_CPU, 0, NULL, out);
  }
  return CUDL_ERR_INVALID_ARGUMENT;
}

cudl_status cudl_context_create_cuda_stream(int device_index, void *stream,
                                            cudl_context **out) {
  cudl_status status;
  if (out == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  *out = NULL;
  if (device_index < 0) return CUDL_ERR_INVALID_ARGUMENT;
  if (stream == NULL) {
    /* NULL is also the legacy default stream's handle; taking it for one
     * would hide a forgotten argument. */
    cudl__log(CUDL_LOG_ERROR,
              "cannot create a CUDA context: stream is NULL (pass a stream "
              "the program created, or cudaStreamLegacy for the default "
              "stream)");
    return CUDL_ERR_INVALID_ARGUMENT;
  }
  status = cuda_device_present(device_index);
  if (status != CUDL_OK) return status;
  return context_open(CUDL_DEVICE_CUDA, device_index, stream, out);
}

void cudl_context_destroy(cudl_context *ctx) {
  if (ctx == NULL) return;
  ctx->backend->runtime->close(ctx);
  cudl__host_free(&cudl__default_allocator, ctx, sizeof *ctx);
}

cudl_device_kind cudl_context_device(const cudl_context *ctx) {
  return ctx == NULL ? CUDL_DEVICE_CPU : ctx->device;
}

int cudl_context_device_index(const cudl_context *ctx) {
  return ctx == NULL ? 0 : ctx->device_index;
}

const char *cudl_context_device_name(const cudl_context *ctx) {
  return ctx == NULL ? "none" : ctx->device_name;
}

const char *cudl_context_last_error(const cudl_context *ctx) {
  return ctx == NULL ? "no context (NULL was passed)" : ctx->last_error;
}

cudl_status cudl_context_synchronize(cudl_context *ctx) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  return ctx->backend->runtime->synchronize(ctx);
}

cudl_status cudl_context_memory_stats(cudl_context *ctx,
                                      cudl_memory_stats *stats) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (stats == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "stats is NULL");
  memset(stats, 0, sizeof *stats);
  return ctx->backend->runtime->memory_stats(ctx, stats);
}

cudl_status cudl_context_reset_peak_memory(cudl_context *ctx) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  return ctx->backend->runtime->reset_peak_memory(ctx);
}

cudl_status cudl_context_set_debug_sync(cudl_context *ctx, int enabled) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx->debug_sync = enabled != 0;
  return CUDL_OK;
}

cudl_status cudl_context_set_allow_tf32(cudl_context *ctx, int allowed) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx->allow_tf32 = allowed != 0;
  return CUDL_OK;
}

int cudl_context_allow_tf32(const cudl_context *ctx) {
  return ctx == NULL ? 0 : ctx->allow_tf32;
}

cudl_status cudl_context_set_deterministic(cudl_context *ctx, int enabled) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx->deterministic = enabled != 0;
  return CUDL_OK;
}

int cudl_context_deterministic(const cudl_context *ctx) {
  return ctx == NULL ? 0 : ctx->deterministic;
}

cudl_status cudl_context_set_allow_emulated_precision(cudl_context *ctx,
                                                      int enabled) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx->allow_emulated_precision = enabled != 0;
  return CUDL_OK;
}

int cudl_context_allow_emulated_precision(const cudl_context *ctx) {
  return ctx == NULL ? 0 : ctx->allow_emulated_precision;
}

cudl_status cudl_context_set_seed(cudl_context *ctx, uint64_t seed) {
  return cudl_context_set_rng_state(ctx, seed, 0);
}

cudl_status cudl_context_set_rng_state(cudl_context *ctx, uint64_t seed,
                                       uint64_t offset) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx->rng_seed = seed;
  ctx->rng_offset = offset;
  return CUDL_OK;
}

cudl_status cudl_context_rng_state(const cudl_context *ctx, uint64_t *seed,
                                   uint64_t *offset) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (seed == NULL || offset == NULL)
    return cudl__fail_const(ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                            "%s is NULL", seed == NULL ? "seed" : "offset");
  *seed = ctx->rng_seed;
  *offset = ctx->rng_offset;
  return CUDL_OK;
}

cudl_status cudl_context_set_allocator(cudl_context *ctx,
                                       const cudl_allocator *alloc) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (ctx->fault.on)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "allocations are being counted "
                     "(cudl_context_fail_allocation): stop that first");
  if (alloc == NULL) {
    ctx->allocator = cudl__default_allocator;
    return CUDL_OK;
  }
  if (alloc->alloc == NULL || alloc->free == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "allocator must set both alloc and free");
  ctx->allocator = *alloc;
  return CUDL_OK;
}

cudl_status cudl_context_fail_allocation(cudl_context *ctx, int64_t k) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (k < 0) {
    if (ctx->fault.on) ctx->allocator = ctx->fault.inner;
    ctx->fault.on = 0;
    return CUDL_OK;
  }
  if (!ctx->fault.on) {
    /* Objects made while counting keep the wrapper, whose user_data is
     * ctx->fault: inner stays what they were allocated from. */
    ctx->fault.inner = ctx->allocator;
    ctx->allocator.alloc = cudl__fault_alloc;
    ctx->allocator.free = cudl__fault_free;
    ctx->allocator.user_data = &ctx->fault;
  }
  ctx->fault.on = 1;
  ctx->fault.counted = 0;
  ctx->fault.failed = 0;
  ctx->fault.fail_at = (uint64_t)k;
  return CUDL_OK;
}

cudl_status cudl_context_allocation_count(const cudl_context *ctx,
                                          uint64_t *counted, uint64_t *failed) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (counted != NULL) *counted = ctx->fault.on ? ctx->fault.counted : 0;
  if (failed != NULL) *failed = ctx->fault.on ? ctx->fault.failed : 0;
  return CUDL_OK;
}
