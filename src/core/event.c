/* event.c - timestamps in a context's work, for timing it (cudl_event). */
#include <string.h>

#include "core/internal.h"

static cudl_status create(cudl_context *ctx, int timing, const char *fn,
                          cudl_event **out) {
  cudl_event *event;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "out is NULL");
  event = (cudl_event *)cudl__host_alloc(&ctx->allocator, sizeof *event,
                                         sizeof(void *));
  if (event == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate an event");
  memset(event, 0, sizeof *event);
  event->ctx = ctx;
  event->allocator = ctx->allocator;
  event->timing = timing;
  status = ctx->backend->runtime->event_create(ctx, event);
  if (status != CUDL_OK) {
    cudl__host_free(&event->allocator, event, sizeof *event);
    return status;
  }
  *out = event;
  return CUDL_OK;
}

cudl_status cudl_event_create(cudl_context *ctx, cudl_event **out) {
  return create(ctx, 1, __func__, out);
}

cudl_status cudl__event_create_fence(cudl_context *ctx, cudl_event **out) {
  return create(ctx, 0, __func__, out);
}

void cudl_event_destroy(cudl_event *event) {
  cudl_allocator allocator;
  if (event == NULL) return;
  event->ctx->backend->runtime->event_destroy(event->ctx, event);
  allocator = event->allocator;
  cudl__host_free(&allocator, event, sizeof *event);
}

cudl_status cudl_event_record(cudl_event *event) {
  cudl_status status;
  if (event == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  status = event->ctx->backend->runtime->event_record(event->ctx, event);
  if (status == CUDL_OK) event->recorded = 1;
  return status;
}

cudl_status cudl_event_elapsed_ms(cudl_event *start, cudl_event *end,
                                  double *ms) {
  cudl_context *ctx = start != NULL ? start->ctx
                      : end != NULL ? end->ctx
                                    : NULL;
  if (start == NULL || end == NULL || ms == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "%s is NULL",
                     start == NULL ? "start"
                     : end == NULL ? "end"
                                   : "ms");
  if (end->ctx != ctx)
    return CUDL_FAIL(ctx, CUDL_ERR_DEVICE_MISMATCH,
                     "start and end belong to different contexts");
  if (!start->timing || !end->timing)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the %s event is a fence, made without timing",
                     start->timing ? "end" : "start");
  if (!start->recorded || !end->recorded)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the %s event has not been recorded",
                     start->recorded ? "end" : "start");
  return ctx->backend->runtime->event_elapsed_ms(ctx, start, end, ms);
}
