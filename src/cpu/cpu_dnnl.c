/* cpu_dnnl.c - the context's oneDNN engine and stream, oneDNN's statuses
 * as cudl's, and what this CPU computes natively (the runtime's
 * check_compute_dtype). */
#include <oneapi/dnnl/dnnl_debug.h>
#include <string.h>

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

int cudl__cpu_bf16_native(void) {
  /* oneDNN's ISA values are nested bit sets: AMX contains AVX512-BF16. */
  const unsigned isa = (unsigned)dnnl_get_effective_cpu_isa();
  const unsigned bf16 = (unsigned)dnnl_cpu_isa_avx512_core_bf16;
  return (isa & bf16) == bf16;
}

const char *cudl__cpu_isa_name(void) {
  static const char prefix[] = "cpu_isa_";
  const char *name = dnnl_cpu_isa2str(dnnl_get_effective_cpu_isa());
  return strncmp(name, prefix, sizeof prefix - 1) == 0
             ? name + sizeof prefix - 1
             : name;
}

int cudl__cpu_dnnl_is_reference(const_dnnl_primitive_desc_t pd) {
  const char *impl = NULL;
  if (dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &impl) !=
          dnnl_success ||
      impl == NULL)
    return 0;
  return strncmp(impl, "ref", 3) == 0;
}

dnnl_data_type_t cudl__cpu_dnnl_type(cudl_dtype dtype) {
  switch (dtype) {
    case CUDL_DTYPE_BF16:
      return dnnl_bf16;
    case CUDL_DTYPE_F16:
      return dnnl_f16;
    default:
      return dnnl_f32;
  }
}

cudl_status cudl__cpu_check_compute_dtype(cudl_context *ctx, cudl_dtype dtype) {
  switch (dtype) {
    case CUDL_DTYPE_F16:
      return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, "cpu",
                        "fp16 mixed precision runs on GPUs; use bf16 on the "
                        "CPU");
    case CUDL_DTYPE_BF16:
      if (cudl__cpu_bf16_native()) return CUDL_OK;
      return cudl__fail(ctx, CUDL_ERR_UNSUPPORTED, "cpu",
                        "bf16 mixed precision needs a CPU with bf16 "
                        "arithmetic (AVX512-BF16 or AMX); oneDNN reports "
                        "this one as %s, where bf16 would run slower than "
                        "f32",
                        cudl__cpu_isa_name());
    default:
      return CUDL_OK;
  }
}
