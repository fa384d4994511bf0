/* cpu_backend.c - the CPU backend: host memory from the context's allocator
 * and OpenMP loops. It is the reference the CUDA backend is tested against. */
#include <string.h>
#include <time.h>

#include "core/internal.h"
#include "cpu/cpu_internal.h"

static cudl_status cpu_open(cudl_context *ctx, int device_index) {
  (void)device_index;
  ctx->backend_state = NULL;
  ctx->memory_limit_default = cudl__host_memory_default();
  return CUDL_OK;
}

static void cpu_close(cudl_context *ctx) {
  cudl_cpu_state *state = (cudl_cpu_state *)ctx->backend_state;
  cudl_allocator allocator;
  if (state == NULL) return;
  cudl__cpu_conv_plans_release(state);
  cudl__cpu_dnnl_release(state);
  allocator = state->allocator;
  if (state->workspace != NULL)
    cudl__host_free(&state->workspace_allocator, state->workspace,
                    state->workspace_size);
  cudl__host_free(&allocator, state, sizeof *state);
  ctx->backend_state = NULL;
}

static cudl_status cpu_alloc_zeroed(cudl_context *ctx,
                                    const cudl_allocator *host, size_t nbytes,
                                    void **ptr) {
  void *p;
  /* Before malloc: with overcommit a huge malloc succeeds and zeroing it
   * below would bring in the out-of-memory killer. */
  if (cudl__memory_limit_exceeded(ctx, nbytes, ctx->memory_in_use))
    return cudl__memory_limit_fail(ctx, "cpu", nbytes, ctx->memory_in_use);
  p = cudl__host_alloc(host, nbytes, CUDL_HOST_ALIGNMENT);
  if (p == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, "cpu",
                      "cannot allocate %zu bytes of host memory", nbytes);
  memset(p, 0, nbytes);
  cudl__memory_allocated(ctx, nbytes);
  *ptr = p;
  return CUDL_OK;
}

static void cpu_free(cudl_context *ctx, const cudl_allocator *host, void *ptr,
                     size_t nbytes) {
  cudl__host_free(host, ptr, nbytes);
  if (ptr != NULL) cudl__memory_freed(ctx, nbytes);
}

/* Any host memory can hold a tensor, and nothing tells a malloc'd block
 * from a stack array or a mapped file: the caller's word is taken. */
static cudl_status cpu_check_foreign_memory(cudl_context *ctx, const void *ptr,
                                            size_t nbytes) {
  (void)ctx;
  (void)ptr;
  (void)nbytes;
  return CUDL_OK;
}

static cudl_status cpu_copy(cudl_context *ctx, void *dst, const void *src,
                            size_t nbytes) {
  (void)ctx;
  memmove(dst, src, nbytes);
  return CUDL_OK;
}

static cudl_status cpu_copy_from_peer(cudl_context *ctx, void *dst,
                                      cudl_context *src_ctx, const void *src,
                                      size_t nbytes) {
  (void)src_ctx;
  return cpu_copy(ctx, dst, src, nbytes);
}

static cudl_status cpu_synchronize(cudl_context *ctx) {
  (void)ctx;
  return CUDL_OK;
}

static cudl_status cpu_memory_stats(cudl_context *ctx,
                                    cudl_memory_stats *stats) {
  stats->bytes_in_use = ctx->memory_in_use;
  stats->peak_bytes_in_use = ctx->memory_peak;
  stats->bytes_reserved = ctx->memory_in_use; /* no caching on the host */
  stats->peak_bytes_reserved = ctx->memory_peak;
  return CUDL_OK;
}

static cudl_status cpu_reset_peak_memory(cudl_context *ctx) {
  ctx->memory_peak = ctx->memory_in_use;
  return CUDL_OK;
}

/* CPU operations finish before they return, so an event is the clock. */
static cudl_status cpu_event_create(cudl_context *ctx, cudl_event *event) {
  (void)ctx;
  event->handle = NULL;
  return CUDL_OK;
}

static void cpu_event_destroy(cudl_context *ctx, cudl_event *event) {
  (void)ctx;
  (void)event;
}

static cudl_status cpu_event_record(cudl_context *ctx, cudl_event *event) {
  struct timespec ts;
  if (clock_gettime(CLOCK_MONOTONIC, &ts) != 0)
    return cudl__fail(ctx, CUDL_ERR_INTERNAL, "cpu",
                      "the monotonic clock cannot be read");
  event->host_ms = (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec * 1e-6;
  return CUDL_OK;
}

static cudl_status cpu_event_elapsed_ms(cudl_context *ctx, cudl_event *start,
                                        cudl_event *end, double *ms) {
  (void)ctx;
  *ms = end->host_ms - start->host_ms;
  return CUDL_OK;
}

/* Nothing to lock: the copies finish before they return. */
static cudl_status cpu_host_pinned_alloc(cudl_context *ctx, size_t nbytes,
                                         void **ptr) {
  *ptr = cudl__host_alloc(&ctx->allocator, nbytes, CUDL_HOST_ALIGNMENT);
  if (*ptr == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, "cpu",
                      "cannot allocate %zu bytes of host memory", nbytes);
  return CUDL_OK;
}

static void cpu_host_pinned_free(cudl_context *ctx, void *ptr, size_t nbytes) {
  cudl__host_free(&ctx->allocator, ptr, nbytes);
}

static cudl_status cpu_event_wait(cudl_context *ctx, cudl_event *event) {
  (void)ctx;
  (void)event;
  return CUDL_OK;
}

static const cudl_runtime cpu_runtime = {
    .open = cpu_open,
    .close = cpu_close,
    .alloc_zeroed = cpu_alloc_zeroed,
    .free = cpu_free,
    .check_foreign_memory = cpu_check_foreign_memory,
    .copy_from_host = cpu_copy,
    .copy_to_host = cpu_copy,
    .copy_on_device = cpu_copy,
    .copy_from_peer = cpu_copy_from_peer,
    .host_pinned_alloc = cpu_host_pinned_alloc,
    .host_pinned_free = cpu_host_pinned_free,
    .copy_from_host_async = cpu_copy,
    .synchronize = cpu_synchronize,
    .memory_stats = cpu_memory_stats,
    .reset_peak_memory = cpu_reset_peak_memory,
    .event_create = cpu_event_create,
    .event_destroy = cpu_event_destroy,
    .event_record = cpu_event_record,
    .event_elapsed_ms = cpu_event_elapsed_ms,
    .event_wait = cpu_event_wait,
    .check_compute_dtype = cudl__cpu_check_compute_dtype,
};

/* Every entry of ops.def, each operator in its dtypes: one this backend
 * lacks fails to link. */
static const cudl_ops cpu_ops = {
#define CUDL_OP(name, dtypes, params) CUDL_REGISTER_OP(cpu, name, dtypes)
#include "core/ops.def"
#undef CUDL_OP
};

const cudl_backend cudl__cpu_backend = {"cpu", &cpu_runtime, &cpu_ops};
