/* dispatch.c - what the door to the backends (CUDL_OP_CALL, the internal
 * copies and the compute-dtype query) does besides calling the entry. */
#include <stdio.h>

#include "core/internal.h"

cudl_status cudl__after_op(cudl_context *ctx, cudl_status status) {
  if (status != CUDL_OK || !ctx->debug_sync) return status;
  return ctx->backend->runtime->synchronize(ctx);
}

cudl_status cudl__op_missing(cudl_context *ctx, const char *function,
                             const char *op, cudl_dtype dtype) {
  return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, function,
                    "the %s backend has no %s operator for %s",
                    ctx->backend->name, op, cudl_dtype_name(dtype));
}

cudl_status cudl__copy_on_device(cudl_context *ctx, void *dst, const void *src,
                                 size_t nbytes) {
  if (nbytes == 0) return CUDL_OK;
  return cudl__after_op(
      ctx, ctx->backend->runtime->copy_on_device(ctx, dst, src, nbytes));
}

cudl_status cudl__copy_from_host(cudl_context *ctx, void *dst, const void *src,
                                 size_t nbytes) {
  if (nbytes == 0) return CUDL_OK;
  return cudl__after_op(
      ctx, ctx->backend->runtime->copy_from_host(ctx, dst, src, nbytes));
}

cudl_status cudl__copy_from_host_async(cudl_context *ctx, void *dst,
                                       const void *src, size_t nbytes) {
  if (nbytes == 0) return CUDL_OK;
  return cudl__after_op(
      ctx, ctx->backend->runtime->copy_from_host_async(ctx, dst, src, nbytes));
}

cudl_status cudl__host_pinned_alloc(cudl_context *ctx, size_t nbytes,
                                    void **ptr) {
  return ctx->backend->runtime->host_pinned_alloc(ctx, nbytes, ptr);
}

void cudl__host_pinned_free(cudl_context *ctx, void *ptr, size_t nbytes) {
  if (ptr != NULL) ctx->backend->runtime->host_pinned_free(ctx, ptr, nbytes);
}

cudl_status cudl__event_wait(cudl_event *event) {
  return event->ctx->backend->runtime->event_wait(event->ctx, event);
}

cudl_status cudl__check_compute_dtype(cudl_context *ctx, cudl_dtype dtype,
                                      const char *function) {
  char reason[CUDL_ERROR_TEXT_SIZE];
  cudl_status status;
  if (dtype != CUDL_DTYPE_F32 && dtype != CUDL_DTYPE_BF16 &&
      dtype != CUDL_DTYPE_F16)
    return cudl__fail(ctx, CUDL_ERR_DTYPE, function,
                      "%s is not a compute dtype (f32, bf16 or f16)",
                      cudl_dtype_name(dtype));
  status = ctx->backend->runtime->check_compute_dtype(ctx, dtype);
  if (status == CUDL_OK) return CUDL_OK;
  if (status == CUDL_ERR_UNSUPPORTED && ctx->allow_emulated_precision)
    return CUDL_OK; /* asked for: f32 arithmetic on 16-bit storage */
  /* The runtime recorded "<backend>: <reason>"; the caller's name goes
   * first, as in every message. */
  snprintf(reason, sizeof reason, "%s", ctx->last_error);
  return cudl__fail(ctx, status, function,
                    "%s (cudl_context_set_allow_emulated_precision runs it "
                    "emulated, for reference)",
                    reason);
}
