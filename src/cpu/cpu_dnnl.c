/* cpu_dnnl.c - the context's oneDNN engine and stream, and oneDNN's
 * statuses as cudl's. */
#include "cpu/cpu_dnnl.h"

static const char *dnnl_status_text(dnnl_status_t s) {
  switch (s) {
    case dnnl_success:
      return "success";
    case dnnl_out_of_memory:
      return "out of memory";
    case dnnl_invalid_arguments:
      return "invalid arguments";
    case dnnl_unimplemented:
      return "no implementation for these parameters";
    case dnnl_iterator_ends:
      return "iterator ends";
    case dnnl_runtime_error:
      return "runtime error";
    case dnnl_not_required:
      return "not required";
  }
  return "unknown status";
}

cudl_status cudl__cpu_dnnl_error(cudl_context *ctx, dnnl_status_t s,
                                 const char *call, const char *file, int line) {
  cudl_status status = s == dnnl_out_of_memory   ? CUDL_ERR_OUT_OF_MEMORY
                       : s == dnnl_unimplemented ? CUDL_ERR_UNSUPPORTED
                                                 : CUDL_ERR_INTERNAL;
  return cudl__fail(ctx, status, "cpu", "%s failed at %s:%d: %s", call, file,
                    line, dnnl_status_text(s));
}

cudl_status cudl__cpu_dnnl(cudl_context *ctx, cudl_cpu_state **out) {
  cudl_cpu_state *state = NULL;
  cudl_status status = cudl__cpu_state(ctx, &state);
  if (status != CUDL_OK) return status;
  if (state->dnnl_engine == NULL)
    DNNL_TRY(dnnl_engine_create(&state->dnnl_engine, dnnl_cpu, 0));
  if (state->dnnl_stream == NULL)
    DNNL_TRY(dnnl_stream_create(&state->dnnl_stream, state->dnnl_engine,
                                dnnl_stream_default_flags));
  *out = state;
done:
  return status;
}

void cudl__cpu_dnnl_release(cudl_cpu_state *state) {
  if (state->dnnl_stream != NULL) dnnl_stream_destroy(state->dnnl_stream);
  if (state->dnnl_engine != NULL) dnnl_engine_destroy(state->dnnl_engine);
  state->dnnl_stream = NULL;
  state->dnnl_engine = NULL;
}
