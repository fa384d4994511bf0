/* cpu_dnnl.h - what the CPU backend's oneDNN users share: the context's
 * engine and stream, and turning a oneDNN status into a cudl one. */
#ifndef CUDL_CPU_DNNL_H
#define CUDL_CPU_DNNL_H

#include <oneapi/dnnl/dnnl.h>

#include "cpu/cpu_internal.h"

/* The context's state with its oneDNN engine and stream made (on first
 * use). */
cudl_status cudl__cpu_dnnl(cudl_context *ctx, cudl_cpu_state **out);

/* Record "<call> failed at file:line: <text>" in ctx and return the cudl
 * status for s: out of memory, unsupported (no implementation for these
 * parameters) or internal. */
cudl_status cudl__cpu_dnnl_error(cudl_context *ctx, dnnl_status_t s,
                                 const char *call, const char *file, int line);

/* Inside a function with `ctx`, `status` and a `done:` label. */
#define DNNL_TRY(call)                                                        \
  do {                                                                        \
    dnnl_status_t dnnl_s_ = (call);                                           \
    if (dnnl_s_ != dnnl_success) {                                            \
      status = cudl__cpu_dnnl_error(ctx, dnnl_s_, #call, __FILE__, __LINE__); \
      goto done;                                                              \
    }                                                                         \
  } while (0)

#endif /* CUDL_CPU_DNNL_H */
