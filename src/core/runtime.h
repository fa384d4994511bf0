/*
 * runtime.h - a backend: its device runtime (open and close, memory,
 * copies, synchronisation, events) and its operator table (core/ops.h).
 *
 * The runtime is the small interface a new device implements first; every
 * entry is required. Entries report failures with cudl__fail on the context
 * they are given.
 */
#ifndef CUDL_RUNTIME_H
#define CUDL_RUNTIME_H

#include <stddef.h>
#include <stdint.h>

#include "core/ops.h"

typedef struct cudl_runtime {
  /* Per-context state: open sets ctx->backend_state, close releases it. */
  cudl_status (*open)(cudl_context *ctx, int device_index);
  void (*close)(cudl_context *ctx);

  /* Storage. `host` is the allocator recorded in the tensor, for backends
   * whose storage is host memory. alloc returns zeroed memory. */
  cudl_status (*alloc_zeroed)(cudl_context *ctx, const cudl_allocator *host,
                              size_t nbytes, void **ptr);
  void (*free)(cudl_context *ctx, const cudl_allocator *host, void *ptr,
               size_t nbytes);

  /* Whether nbytes at ptr, memory the caller allocated, can be the storage
   * of a tensor of ctx (cudl_tensor_wrap): CUDL_OK, or
   * CUDL_ERR_INVALID_ARGUMENT with the reason recorded (host memory given
   * to a device context, another device's memory). Checks what the device
   * can tell; alignment and size were checked before. */
  cudl_status (*check_foreign_memory)(cudl_context *ctx, const void *ptr,
                                      size_t nbytes);

  /* Copies within the device and across the host boundary. copy_from_host
   * returns once src may be reused; copy_to_host once dst is written. */
  cudl_status (*copy_from_host)(cudl_context *ctx, void *dst, const void *src,
                                size_t nbytes);
  cudl_status (*copy_to_host)(cudl_context *ctx, void *dst, const void *src,
                              size_t nbytes);
  cudl_status (*copy_on_device)(cudl_context *ctx, void *dst, const void *src,
                                size_t nbytes);
  /* From another context of the same backend (a different GPU, or another
   * stream on the same one). src_ctx has already been synchronised. */
  cudl_status (*copy_from_peer)(cudl_context *ctx, void *dst,
                                cudl_context *src_ctx, const void *src,
                                size_t nbytes);
  /* Uploads that do not wait: copy_from_host_async returns once the copy
   * is queued, and src must stay unchanged until an event recorded after
   * it is reached (event_wait). Truly asynchronous only from memory of
   * host_pinned_alloc (page-locked on CUDA; ordinary host memory on the
   * CPU, whose copies are done on return); host_pinned_free takes the size
   * it was allocated with. */
  cudl_status (*host_pinned_alloc)(cudl_context *ctx, size_t nbytes,
                                   void **ptr);
  void (*host_pinned_free)(cudl_context *ctx, void *ptr, size_t nbytes);
  cudl_status (*copy_from_host_async)(cudl_context *ctx, void *dst,
                                      const void *src, size_t nbytes);
  /* Wait for the work queued so far. */
  cudl_status (*synchronize)(cudl_context *ctx);

  /* Memory accounting (cudl_context_memory_stats). */
  cudl_status (*memory_stats)(cudl_context *ctx, cudl_memory_stats *stats);
  cudl_status (*reset_peak_memory)(cudl_context *ctx);

  /* Events (cudl_event_*): create may set event->handle (event->timing 0:
   * a fence, never timed); record marks the point reached by the work
   * queued so far; elapsed_ms waits for end. */
  cudl_status (*event_create)(cudl_context *ctx, cudl_event *event);
  void (*event_destroy)(cudl_context *ctx, cudl_event *event);
  cudl_status (*event_record)(cudl_context *ctx, cudl_event *event);
  cudl_status (*event_elapsed_ms)(cudl_context *ctx, cudl_event *start,
                                  cudl_event *end, double *ms);
  /* Wait until the point event marks is reached. */
  cudl_status (*event_wait)(cudl_context *ctx, cudl_event *event);

  /* Whether mixed precision computing in dtype (f32, bf16 or f16) runs
   * natively on the context's device: CUDL_OK, or CUDL_ERR_UNSUPPORTED
   * with a one-line reason recorded where the device would only emulate
   * it (the 16-bit operators still give correct results there, slowly).
   * f32 is always native. Called through cudl__check_compute_dtype. */
  cudl_status (*check_compute_dtype)(cudl_context *ctx, cudl_dtype dtype);

  /* Graphs (CUDA graphs; NULL where the device runs operators as they are
   * called). graph_begin starts recording the work queued on ctx instead
   * of running it; graph_end stops and, when keep, makes *graph of what
   * was recorded (on failure, e.g. an operator that cannot be recorded,
   * or without keep, nothing is made; ctx runs work again either way);
   * graph_launch queues one run of it. While recording, the backend makes
   * nothing that outlives the recorded work (no cached plan, no larger
   * workspace): such an operator fails, naming what it would have made. */
  cudl_status (*graph_begin)(cudl_context *ctx);
  cudl_status (*graph_end)(cudl_context *ctx, int keep, void **graph);
  cudl_status (*graph_launch)(cudl_context *ctx, void *graph);
  void (*graph_destroy)(cudl_context *ctx, void *graph);
} cudl_runtime;

typedef struct cudl_backend {
  const char *name;
  const cudl_runtime *runtime;
  const cudl_ops *ops;
} cudl_backend;

extern const cudl_backend cudl__cpu_backend;
/* The CUDA backend is the module's (core/cuda_module.h). */

#endif /* CUDL_RUNTIME_H */
