/* cpu_state.c - the CPU backend's per-context state, made on first use,
 * and the grow-only workspace the convolutions and losses share. Released
 * by the runtime's close (cpu_backend.c). */
#include <string.h>

#include "cpu/cpu_internal.h"

cudl_status cudl__cpu_state(cudl_context *ctx, cudl_cpu_state **out) {
  cudl_cpu_state *state = (cudl_cpu_state *)ctx->backend_state;
  if (state == NULL) {
    state = (cudl_cpu_state *)cudl__host_alloc(&ctx->allocator, sizeof *state,
                                               sizeof(void *));
    if (state == NULL)
      return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, "cpu",
                        "cannot allocate the backend state");
    memset(state, 0, sizeof *state);
    state->allocator = ctx->allocator;
    ctx->backend_state = state;
  }
  *out = state;
  return CUDL_OK;
}

cudl_status cudl__cpu_workspace(cudl_context *ctx, size_t nbytes, void **ptr) {
  cudl_cpu_state *state = NULL;
  void *grown;
  cudl_status status = cudl__cpu_state(ctx, &state);
  if (status != CUDL_OK) return status;
  if (state->workspace_size < nbytes) {
    /* The old workspace is freed only once the new one is there. */
    if (cudl__memory_limit_exceeded(ctx, nbytes, ctx->memory_in_use))
      return cudl__memory_limit_fail(ctx, "cpu", nbytes, ctx->memory_in_use);
    grown = cudl__host_alloc(&ctx->allocator, nbytes, CUDL_HOST_ALIGNMENT);
    if (grown == NULL)
      return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, "cpu",
                        "cannot grow the workspace to %zu bytes", nbytes);
    if (state->workspace != NULL) {
      cudl__host_free(&state->workspace_allocator, state->workspace,
                      state->workspace_size);
      cudl__memory_freed(ctx, state->workspace_size);
    }
    cudl__memory_allocated(ctx, nbytes);
    state->workspace_allocator = ctx->allocator;
    state->workspace = grown;
    state->workspace_size = nbytes;
  }
  *ptr = state->workspace;
  return CUDL_OK;
}
