/* cpu_dnnl.h - what the CPU backend's oneDNN users share: the context's
 * engine and stream, turning a oneDNN status into a cudl one, and whether
 * this CPU computes in bf16 natively. */
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

/* Whether oneDNN runs bf16 arithmetic on this CPU in hardware
 * (AVX512-BF16 or AMX). Below that it has no bf16 convolution or matrix
 * product at all (AVX2) or emulates one (AVX-512 without BF16), slower
 * than f32 either way. Follows DNNL_MAX_CPU_ISA when that is set. */
int cudl__cpu_bf16_native(void);

/* The instruction set oneDNN dispatches on, as oneDNN names it ("avx2",
 * "avx512_core_bf16", ...). */
const char *cudl__cpu_isa_name(void);

/* Whether oneDNN implements pd with its reference code, the plain loops it
 * falls back on where no optimised kernel takes the parameters. */
int cudl__cpu_dnnl_is_reference(const_dnnl_primitive_desc_t pd);

/* A cudl float dtype as oneDNN's: f32, bf16 or f16. */
dnnl_data_type_t cudl__cpu_dnnl_type(cudl_dtype dtype);

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
