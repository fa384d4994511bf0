/*
 * replay.c - work recorded once into a CUDA graph and replayed in one
 * launch (cudl__replay_run; the inference forward's cudl_model_set_graphs).
 *
 * A recording runs the caller's own code between the runtime's graph_begin
 * and graph_end; nothing executes while recording, so the graph is launched
 * at once. Whatever cannot be recorded (an operator that waits for the
 * device, a convolution whose algorithm is still to be chosen, a workspace
 * that would grow) makes the recording fail: the work then runs directly
 * and the reason is kept. A replay reads the input, the weights and the
 * backend's workspace at the addresses of the recording, so a recording is
 * kept only while those stay: the input's address and rows, the TF32
 * setting the kernels were chosen under, and the context's graph epoch,
 * which the backend bumps when it frees its workspace; and the
 * deterministic setting, under which other algorithms are chosen.
 */
#include <stdio.h>
#include <string.h>

#include "core/internal.h"

void cudl__replay_release(cudl_context *ctx, cudl__replay *r) {
  if (r->graph != NULL) ctx->backend->runtime->graph_destroy(ctx, r->graph);
  memset(r, 0, sizeof *r);
}

static cudl_status run_direct(cudl__replay *r, const char *why,
                              cudl_status (*work)(void *), void *arg) {
  snprintf(r->reason, sizeof r->reason, "%s", why);
  ++r->direct;
  return work(arg);
}

/* Record work into *graph (NULL on failure, with the reason in why). */
static cudl_status record(cudl_context *ctx, cudl_status (*work)(void *),
                          void *arg, void **graph, char *why,
                          size_t why_size) {
  const cudl_runtime *rt = ctx->backend->runtime;
  cudl_status recorded, status = rt->graph_begin(ctx);
  *graph = NULL;
  if (status != CUDL_OK) {
    snprintf(why, why_size, "%s", ctx->last_error);
    return status;
  }
  recorded = work(arg);
  /* The first failure is the reason; graph_end's would be its echo. */
  if (recorded != CUDL_OK) snprintf(why, why_size, "%s", ctx->last_error);
  status = rt->graph_end(ctx, recorded == CUDL_OK, graph);
  if (recorded == CUDL_OK && status != CUDL_OK)
    snprintf(why, why_size, "%s", ctx->last_error);
  return recorded != CUDL_OK ? recorded : status;
}

cudl_status cudl__replay_run(cudl_context *ctx, cudl__replay *r,
                             const void *input, int64_t rows,
                             const char *direct_reason,
                             cudl_status (*work)(void *arg), void *arg) {
  const cudl_runtime *rt = ctx->backend->runtime;
  char why[CUDL_ERROR_TEXT_SIZE];
  void *graph = NULL;
  cudl_status status;
  if (rt->graph_begin == NULL)
    return run_direct(r,
                      "the device runs operators as they are called "
                      "(graphs are CUDA's)",
                      work, arg);
  if (direct_reason != NULL) return run_direct(r, direct_reason, work, arg);
  if (ctx->debug_sync)
    return run_direct(r,
                      "debug sync (cudl_context_set_debug_sync) waits for "
                      "the device after each operator",
                      work, arg);
  if (r->graph != NULL && r->input == input && r->rows == rows &&
      r->tf32 == ctx->allow_tf32 && r->deterministic == ctx->deterministic &&
      r->epoch == ctx->graph_epoch) {
    status = rt->graph_launch(ctx, r->graph);
    if (status != CUDL_OK) return status;
    ++r->replayed;
    r->reason[0] = '\0';
    return CUDL_OK;
  }
  if (r->graph != NULL) rt->graph_destroy(ctx, r->graph);
  r->graph = NULL;
  if (record(ctx, work, arg, &graph, why, sizeof why) != CUDL_OK)
    return run_direct(r, why, work, arg);
  r->graph = graph;
  r->input = input;
  r->rows = rows;
  r->tf32 = ctx->allow_tf32;
  r->deterministic = ctx->deterministic;
  r->epoch = ctx->graph_epoch;
  status = rt->graph_launch(ctx, graph);
  if (status != CUDL_OK) return status;
  ++r->recorded;
  r->reason[0] = '\0';
  return CUDL_OK;
}
