/* error.c - recording the detail of a failure in its context. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

static cudl_status vfail(cudl_context *ctx, cudl_status status,
                         const char *function, const char *fmt, va_list args) {
  char message[CUDL_ERROR_TEXT_SIZE];
  vsnprintf(message, sizeof message, fmt, args);
  if (ctx != NULL) {
    snprintf(ctx->last_error, sizeof ctx->last_error, "%s: %s", function,
             message);
  }
  cudl__log(CUDL_LOG_DEBUG, "%s: %s (%s)", function, message,
            cudl_status_name(status));
  return status;
}

cudl_status cudl__fail(cudl_context *ctx, cudl_status status,
                       const char *function, const char *fmt, ...) {
  cudl_status result;
  va_list args;
  va_start(args, fmt);
  result = vfail(ctx, status, function, fmt, args);
  va_end(args);
  return result;
}

cudl_status cudl__fail_const(const cudl_context *ctx, cudl_status status,
                             const char *function, const char *fmt, ...) {
  cudl_status result;
  va_list args;
  va_start(args, fmt);
  /* The last error is a cache, not part of the context's value: every
   * context is allocated (writable) by cudl_context_create. */
  result = vfail((cudl_context *)ctx, status, function, fmt, args);
  va_end(args);
  return result;
}
