/* dispatch.c - what the door to the backends (CUDL_OP_CALL and the internal
 * copies) does besides calling the entry. */
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

/* PROVISIONAL until the runtime's check_compute_dtype lands (merge). */
cudl_status cudl__check_compute_dtype(cudl_context *ctx, cudl_dtype dtype,
                                      const char *function) {
  (void)ctx;
  (void)dtype;
  (void)function;
  return CUDL_OK;
}
