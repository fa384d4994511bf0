/*
 * forward_graph.c - CUDA graphs of an inference forward
 * (cudl_model_set_graphs): the forward recorded once and replayed in one
 * launch while its input stays where it was.
 *
 * A recording is made from the forward's own code (cudl__forward_run)
 * between the runtime's graph_begin and graph_end, and launched at once:
 * nothing runs while recording. Whatever cannot be recorded (an operator
 * that waits for the device, a convolution whose algorithm is still to be
 * chosen, a workspace that would grow) makes graph_end fail; the forward
 * then runs operator by operator and the reason is kept for
 * cudl_model_graph_stats. The replay reads the input, the weights and the
 * context's workspace at the addresses of the recording, so a graph is
 * kept only while those stay: the input's address and rows, the TF32
 * setting the kernels were chosen under, and the context's graph epoch,
 * which the backend bumps when it frees its workspace.
 */
#include <stdio.h>
#include <string.h>

#include "nn/graph.h"

void cudl__graph_release(cudl_model *m) {
  if (m->graph != NULL)
    m->ctx->backend->runtime->graph_destroy(m->ctx, m->graph);
  m->graph = NULL;
  m->graph_x = NULL;
  m->graph_rows = 0;
}

cudl_status cudl_model_set_graphs(cudl_model *m, int on) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!m->inference)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "graphs are for models compiled for inference "
                     "(cudl_model_compile_inference)");
  cudl__graph_release(m);
  memset(&m->graph_stats, 0, sizeof m->graph_stats);
  m->graphs = on != 0;
  return CUDL_OK;
}

cudl_status cudl_model_graph_stats(const cudl_model *m,
                                   cudl_graph_stats *stats) {
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (stats == NULL)
    return cudl__fail_const(m->ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                            "stats is NULL");
  *stats = m->graph_stats;
  return CUDL_OK;
}

static cudl_status run_direct(cudl_model *m, const cudl_tensor *x,
                              const char *why) {
  snprintf(m->graph_stats.reason, sizeof m->graph_stats.reason, "%s", why);
  ++m->graph_stats.direct;
  return cudl__forward_run(m, x, NULL, NULL);
}

static int graph_fits(const cudl_model *m, const cudl_tensor *x) {
  const cudl_context *ctx = m->ctx;
  return m->graph != NULL && m->graph_x == x->data &&
         m->graph_rows == m->rows && m->graph_tf32 == ctx->allow_tf32 &&
         m->graph_epoch == ctx->graph_epoch;
}

/* Record the forward into *graph (NULL on failure, with the reason in
 * why). */
static cudl_status record(cudl_model *m, const cudl_tensor *x, void **graph,
                          char *why, size_t why_size) {
  cudl_context *ctx = m->ctx;
  const cudl_runtime *rt = ctx->backend->runtime;
  cudl_status recorded, status = rt->graph_begin(ctx);
  *graph = NULL;
  if (status != CUDL_OK) {
    snprintf(why, why_size, "%s", ctx->last_error);
    return status;
  }
  recorded = cudl__forward_run(m, x, NULL, NULL);
  /* The first failure is the reason; graph_end's would be its echo. */
  if (recorded != CUDL_OK) snprintf(why, why_size, "%s", ctx->last_error);
  status = rt->graph_end(ctx, graph);
  if (recorded == CUDL_OK && status != CUDL_OK)
    snprintf(why, why_size, "%s", ctx->last_error);
  if (recorded != CUDL_OK && *graph != NULL) {
    rt->graph_destroy(ctx, *graph);
    *graph = NULL;
  }
  return recorded != CUDL_OK ? recorded : status;
}

cudl_status cudl__graph_forward(cudl_model *m, const cudl_tensor *x) {
  cudl_context *ctx = m->ctx;
  const cudl_runtime *rt = ctx->backend->runtime;
  char why[CUDL_ERROR_TEXT_SIZE];
  void *graph = NULL;
  cudl_status status = cudl__forward_prepare(m, x, NULL);
  if (status != CUDL_OK) return status;
  if (rt->graph_begin == NULL)
    return run_direct(m, x,
                      "the device runs operators as they are called "
                      "(graphs are CUDA's)");
  if (m->check_numerics)
    return run_direct(m, x,
                      "check-numerics mode waits for the device after each "
                      "layer");
  if (ctx->debug_sync)
    return run_direct(m, x,
                      "debug sync (cudl_context_set_debug_sync) waits for "
                      "the device after each operator");
  if (graph_fits(m, x)) {
    status = rt->graph_launch(ctx, m->graph);
    if (status != CUDL_OK) return status;
    ++m->graph_stats.replayed;
    m->graph_stats.reason[0] = '\0';
    m->forward_done = 1;
    return CUDL_OK;
  }
  cudl__graph_release(m);
  if (record(m, x, &graph, why, sizeof why) != CUDL_OK)
    return run_direct(m, x, why);
  m->graph = graph;
  m->graph_x = x->data;
  m->graph_rows = m->rows;
  m->graph_tf32 = ctx->allow_tf32;
  m->graph_epoch = ctx->graph_epoch;
  status = rt->graph_launch(ctx, graph);
  if (status != CUDL_OK) return status;
  ++m->graph_stats.recorded;
  m->graph_stats.reason[0] = '\0';
  m->forward_done = 1;
  return CUDL_OK;
}
