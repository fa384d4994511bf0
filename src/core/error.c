/* error.c - recording the detail of a failure in its context. */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

cudl_status cudl__fail(cudl_context *ctx, cudl_status status,
                       const char *function, const char *fmt, ...) {
  char message[CUDL_ERROR_TEXT_SIZE];
  va_list args;
  va_start(args, fmt);
  vsnprintf(message, sizeof message, fmt, args);
  va_end(args);
  if (ctx != NULL) {
    snprintf(ctx->last_error, sizeof ctx->last_error, "%s: %s", function,
             message);
  }
  cudl__log(CUDL_LOG_DEBUG, "%s: %s (%s)", function, message,
            cudl_status_name(status));
  return status;
}
