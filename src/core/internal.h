/*
 * internal.h - the layout of contexts and tensors and the helpers every part
 * of the library shares: error recording, logging, host allocation, checked
 * arithmetic. Private: nothing here is installed.
 */
#ifndef CUDL_INTERNAL_H
#define CUDL_INTERNAL_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "cudl/cudl.h"
#include "core/runtime.h"

#ifdef __cplusplus
extern "C" { /* the CUDA entries in kernels/ are C++ */
#endif

#if defined(__GNUC__) || defined(__clang__)
#  define CUDL_PRINTF(fmt_index, first_arg) \
    __attribute__((format(printf, fmt_index, first_arg)))
#else
#  define CUDL_PRINTF(fmt_index, first_arg)
#endif

/* A compile-time check for C99: false `cond` declares an array of size -1.
 * `name` (an identifier, unique in its file) says what must hold. */
#define CUDL_STATIC_ASSERT(cond, name) \
  typedef char cudl__static_assert_##name[(cond) ? 1 : -1]

#define CUDL_ERROR_TEXT_SIZE 1024
#define CUDL_DEVICE_NAME_SIZE 320
/* Alignment of CPU tensor storage: a cache line, enough for any SIMD load. */
#define CUDL_HOST_ALIGNMENT 64

/* Fault injection (cudl_context_fail_allocation). While `on`, host
 * allocations go through a wrapper around `inner` that counts them, and
 * device allocations ask cudl__allocation_fails first. */
typedef struct cudl_fault_injection {
  cudl_allocator inner;              /* the hooks the wrapper forwards to */
  uint64_t counted, fail_at, failed; /* fail_at 0: count only */
  int on;
} cudl_fault_injection;

/* Count one allocation; 1 if it is the one to fail. */
static inline int cudl__fault_tick(cudl_fault_injection *f) {
  if (!f->on) return 0;
  if (++f->counted != f->fail_at) return 0;
  ++f->failed;
  return 1;
}

struct cudl_context {
  cudl_device_kind device; /* CPU or CUDA, never AUTO */
  int device_index;
  const cudl_backend *backend;
  void *backend_state;      /* owned by the backend (open/close) */
  cudl_allocator allocator; /* host allocations from now on */
  uint64_t rng_seed;
  uint64_t rng_offset; /* Philox blocks consumed */
  int debug_sync;
  int allow_tf32;    /* cuBLAS and cuDNN may round f32 inputs to TF32 */
  int deterministic; /* only bitwise-reproducible algorithms */
  int allow_emulated_precision; /* 16-bit models without 16-bit hardware */
  /* Host bytes of tensor storage and workspaces, for backends that have no
   * pool to ask (the CPU): see cudl__memory_allocated. */
  uint64_t memory_in_use, memory_peak;
  /* The most bytes of tensor storage and workspaces the context may hold
   * on its device (cudl_context_set_memory_limit; 0: the default, which
   * the backend's open sets). */
  uint64_t memory_limit, memory_limit_default;
  cudl_fault_injection fault;
  /* The caller's cudaStream_t (cudl_context_create_cuda_stream), which the
   * CUDA runtime's open takes as the context's stream instead of creating
   * one, and never destroys; NULL: the runtime makes its own. */
  void *caller_stream;
  /* Counts the times the backend freed memory of its own that recorded
   * graphs may use (the CUDA convolution workspace, when it grows): a
   * graph recorded at another count is recorded again, not replayed. */
  uint64_t graph_epoch;
  char device_name[CUDL_DEVICE_NAME_SIZE];
  char last_error[CUDL_ERROR_TEXT_SIZE];
};

/* Whether a device allocation about to be made must fail (injected). */
static inline int cudl__allocation_fails(cudl_context *ctx) {
  return cudl__fault_tick(&ctx->fault);
}

/* ---- the memory limit (memory.c) ---- */

/* The limit in force: the one set, else the default. */
uint64_t cudl__memory_limit(const cudl_context *ctx);
/* 1 when allocating nbytes more, with in_use bytes held now, would take
 * ctx past its limit. Every device allocation asks before it allocates. */
int cudl__memory_limit_exceeded(const cudl_context *ctx, size_t nbytes,
                                uint64_t in_use);
/* Record the limit's CUDL_ERR_OUT_OF_MEMORY message (the request, what is
 * in use, the limit and how to change it) and return that status. */
cudl_status cudl__memory_limit_fail(cudl_context *ctx, const char *function,
                                    size_t nbytes, uint64_t in_use);
/* The default limit of a CPU context: MemAvailable + SwapFree, capped by
 * the memory cgroup's room (v2 memory.max - memory.current, or v1's
 * limit_in_bytes - usage_in_bytes, less reclaimable page cache, up the
 * hierarchy) and by what RLIMIT_AS and RLIMIT_DATA leave; the available
 * physical pages where /proc cannot be read. */
uint64_t cudl__host_memory_default(void);

/* Count nbytes allocated to, or freed from, ctx's tensors and workspaces. */
static inline void cudl__memory_allocated(cudl_context *ctx, size_t nbytes) {
  ctx->memory_in_use += nbytes;
  if (ctx->memory_in_use > ctx->memory_peak)
    ctx->memory_peak = ctx->memory_in_use;
}
static inline void cudl__memory_freed(cudl_context *ctx, size_t nbytes) {
  ctx->memory_in_use -=
      nbytes < ctx->memory_in_use ? nbytes : ctx->memory_in_use;
}

/* A timestamp in a context's work (cudl/context.h). */
struct cudl_event {
  cudl_context *ctx;
  cudl_allocator allocator; /* allocated this object */
  void *handle;             /* the backend's (a cudaEvent_t), or NULL */
  double host_ms;           /* CPU: the monotonic clock when recorded */
  int recorded;
  int timing; /* 0: a fence (cudl__event_create_fence), not for timing */
};

/* Device memory shared by a tensor and its views (cudl_tensor_reshape). A
 * context is used by one thread at a time, so the count needs no atomics. */
typedef struct cudl_storage {
  cudl_context *ctx;
  cudl_allocator allocator; /* allocated this object and CPU data */
  void *data;
  size_t nbytes;
  int64_t refs; /* tensors sharing it */
  /* The caller's memory (cudl_tensor_wrap): the last release frees the
   * object but never the data, which the runtime did not allocate. */
  int borrowed;
} cudl_storage;

struct cudl_tensor {
  cudl_context *ctx;
  cudl_allocator allocator; /* what allocated this struct */
  cudl_dtype dtype;
  cudl_layout layout; /* CUDL_LAYOUT_NHWC only for 4-D tensors */
  int ndim;
  int64_t shape[CUDL_MAX_DIMS];
  int64_t numel;
  size_t nbytes;
  cudl_storage *storage; /* NULL when nbytes == 0 */
  void *data;            /* storage->data, or NULL */
};

/* ---- errors ---- */

/* Record "<function>: <message>" as ctx's last error (ctx may be NULL) and
 * return status, so a failing path reads `return cudl__fail(...)`. */
cudl_status cudl__fail(cudl_context *ctx, cudl_status status,
                       const char *function, const char *fmt, ...)
    CUDL_PRINTF(4, 5);
#define CUDL_FAIL(ctx, status, ...) \
  cudl__fail((ctx), (status), __func__, __VA_ARGS__)
/* The same for a call whose context is const (an accessor): the last-error
 * text is a cache that a const call may still write. */
cudl_status cudl__fail_const(const cudl_context *ctx, cudl_status status,
                             const char *function, const char *fmt, ...)
    CUDL_PRINTF(4, 5);

/* ---- logging ---- */
void cudl__log(cudl_log_level level, const char *fmt, ...) CUDL_PRINTF(2, 3);

/* ---- host allocation ---- */
extern const cudl_allocator cudl__default_allocator;
/* The counting wrapper's hooks; user_data is the cudl_fault_injection. */
void *cudl__fault_alloc(size_t size, size_t alignment, void *user_data);
void cudl__fault_free(void *ptr, size_t size, void *user_data);
/* Allocate through `a`; NULL on failure or size 0. */
void *cudl__host_alloc(const cudl_allocator *a, size_t size, size_t alignment);
void cudl__host_free(const cudl_allocator *a, void *ptr, size_t size);
/* A copy of s made with `a` (length + 1 bytes, returned through *size). */
char *cudl__host_strdup(const cudl_allocator *a, const char *s, size_t *size);

/* ---- checked arithmetic: 0 on overflow, 1 on success ---- */
int cudl__mul_size(size_t a, size_t b, size_t *out);
int cudl__add_size(size_t a, size_t b, size_t *out);

/* ---- shape helpers ---- */
/* Validate shape (ndim in [0, CUDL_MAX_DIMS], dims >= 0) and compute the
 * element count and byte size for dtype, checking for overflow. Returns
 * CUDL_OK or a status with the message recorded in ctx. */
cudl_status cudl__shape_check(cudl_context *ctx, const char *function,
                              cudl_dtype dtype, int ndim, const int64_t *shape,
                              int64_t *numel, size_t *nbytes);

/* Internal views (the model graph's parameter arenas, partial batches): a
 * tensor of `shape` on src's storage starting `offset` elements into src's
 * data. The range must lie inside src (CUDL_ERR_SHAPE otherwise). Released
 * with cudl_tensor_destroy like any view. */
cudl_status cudl__tensor_view(const cudl_tensor *src, int64_t offset, int ndim,
                              const int64_t *shape, cudl_tensor **out);

/* The checks of the convolution calls (cudl/conv.h) on shapes alone, for
 * the model graph: messages go to ctx as `function`'s and name x_name and
 * w_name. Dimensions or matrix sizes above INT_MAX give
 * CUDL_ERR_UNSUPPORTED (cuDNN and the BLAS take int sizes). */
cudl_status cudl__conv2d_geometry(cudl_context *ctx, const char *function,
                                  const cudl_conv2d_desc *desc,
                                  const int64_t x_shape[4], const char *x_name,
                                  const int64_t w_shape[4], const char *w_name,
                                  cudl_conv2d_geometry *g);

/* 1 when a and b (either may be NULL) share bytes: of one storage, or of
 * the caller's memory wrapped more than once (cudl_tensor_wrap). */
int cudl__tensors_overlap(const cudl_tensor *a, const cudl_tensor *b);

/* 1 when a and b share bytes without being the same elements (the same
 * first byte and layout): an operator that may write its output over an
 * input elementwise can take the input itself, never a shifted view. */
int cudl__tensors_overlap_unlike(const cudl_tensor *a, const cudl_tensor *b);

/* ---- the checks every operator makes of its tensors ----
 *
 * Each checks a group of tensors: non-NULL, of ctx, all of the first one's
 * shape, and a dtype by the rule of ops.def. names[i] labels tensors[i] in
 * messages; a NULL ctx gives CUDL_ERR_INVALID_ARGUMENT without a message.
 * A wrong dtype is CUDL_ERR_DTYPE, with a message naming the tensor, its
 * dtype and the one it needs. */

/* The dtype of one call's data tensors (x, y, their gradients, masks and
 * noise, and the weights and biases of convolution and linear): f32, bf16
 * or f16, which picks the entry. The first data tensor checked sets it;
 * every later one, in any group of the same call, must match. */
typedef struct cudl_data_dtype {
  cudl_dtype dtype;
  const char *name; /* the tensor that set it; NULL until one did */
  /* The layout of the 4-D data tensors (cudl/tensor.h): the first one's,
   * which every other must share. */
  cudl_layout layout;
  const char *layout_name; /* NULL until a 4-D tensor set it */
} cudl_data_dtype;
#define CUDL_DATA_DTYPE_INIT \
  { CUDL_DTYPE_F32, NULL, CUDL_LAYOUT_NCHW, NULL }

/* Data tensors of a FLOATS operator, against (and setting) *data. */
cudl_status cudl__check_data(cudl_context *ctx, const char *function,
                             cudl_data_dtype *data,
                             const cudl_tensor *const *tensors,
                             const char *const *names, int count);
/* The f32 tensors of a FLOATS operator, whatever its data's dtype:
 * batch-norm parameters and statistics, PReLU slopes and their gradient,
 * norms (the `float *` of ops.def). */
cudl_status cudl__check_f32_params(cudl_context *ctx, const char *function,
                                   const cudl_tensor *const *tensors,
                                   const char *const *names, int count);
/* The tensors of an f32-only operator (softmax, losses, sums, optimizers,
 * random initialisation): a 16-bit one gets a message saying so. */
cudl_status cudl__check_f32_op(cudl_context *ctx, const char *function,
                               const cudl_tensor *const *tensors,
                               const char *const *names, int count);

/* The checks of cudl__check_f32_op for one tensor, and that it holds one
 * element (a loss, a norm, a count, written as a scalar on the device):
 * CUDL_ERR_SHAPE naming it otherwise. */
cudl_status cudl__check_f32_scalar(cudl_context *ctx, const char *function,
                                   const cudl_tensor *t, const char *name);

/* The checks of cudl__check_data for one data tensor, and that it is 1-D
 * of n elements (a bias or its gradient): CUDL_ERR_SHAPE naming it
 * otherwise. */
cudl_status cudl__check_vector(cudl_context *ctx, const char *function,
                               cudl_data_dtype *data, const cudl_tensor *t,
                               const char *name, int64_t n);

/* dst = scale * src element for element, in dst's dtype and layout (a
 * change of layout transposes): cudl_tensor_convert's work, for callers
 * that have checked what it checks (same shape and context, float
 * dtypes, no overlap) and may fold in a scale (mixed precision's loss
 * scale). Failures are recorded as `function`'s. */
cudl_status cudl__convert_scaled(cudl_context *ctx, const char *function,
                                 cudl_tensor *dst, const cudl_tensor *src,
                                 float scale);

/* x ([N, C, ...], at least 2-D) seen as [outer, channels, inner] around
 * its channel dimension, as batch norm, PReLU and biases read it: NCHW is
 * outer = N, inner = the product of the rest; channels-last is outer =
 * N * H * W, inner = 1. */
void cudl__channel_view(const cudl_tensor *x, int64_t *outer,
                        int64_t *channels, int64_t *inner);

/* CUDL_ERR_SHAPE, naming t, when t is channels-last: for operators that
 * read t's last dimension as a row (softmax, linear layers). */
cudl_status cudl__require_nchw(cudl_context *ctx, const char *function,
                               const cudl_tensor *t, const char *name);

/* Philox blocks (four numbers each) a draw of n numbers consumes. */
static inline uint64_t cudl__philox_blocks(int64_t n) {
  return ((uint64_t)n + 3u) / 4u;
}

/* One part of a concatenation along dimension 1 (concat.c), checked by
 * the caller (same dtype, layout and dimensions but 1, no overlap): part
 * is whole's channels [offset, offset + part's dimension 1), copied into
 * whole (into_whole) or out of it. Failures are recorded as `function`'s. */
cudl_status cudl__concat_part(cudl_context *ctx, const char *function,
                              const cudl_tensor *whole,
                              const cudl_tensor *part, int64_t offset,
                              int into_whole);

/* Synchronise after an op when the context's debug mode asks for it. */
cudl_status cudl__after_op(cudl_context *ctx, cudl_status status);

/* ---- activations (activation.c) ---- */

/* What the library knows of an activation type besides its kernels. */
typedef struct cudl_activation_info {
  const char *name;    /* cudl_activation_name */
  int backward_from_y; /* backward reads y (sigmoid, tanh), else x */
  /* A ReLU-family function: a unit whose input stays <= 0 passes (almost)
   * no gradient, so the diagnostics count such units. */
  int dead_units;
  /* Outputs below low or above high are saturated: the derivative there is
   * nearly 0. low == high: the function does not saturate. */
  float low, high;
} cudl_activation_info;

/* The row of `type`; NULL for a value that is no type. */
const cudl_activation_info *cudl__activation_info(cudl_activation_type type);
/* An activation of a valid type, checked and dispatched as the public calls
 * are, with messages as `function`'s. Backward reads x or y as the type
 * needs. */
cudl_status cudl__activation_forward(cudl_context *ctx, const char *function,
                                     cudl_activation_type type, float alpha,
                                     const cudl_tensor *x, cudl_tensor *y);
cudl_status cudl__activation_backward(cudl_context *ctx, const char *function,
                                      cudl_activation_type type, float alpha,
                                      const cudl_tensor *x,
                                      const cudl_tensor *y,
                                      const cudl_tensor *dy, cudl_tensor *dx);

/* The one door to a backend's operators, for public calls and internal
 * callers alike: call operator `op` (ops.def) of ctx's backend registered
 * for dtype, with ctx and the arguments that follow. An empty entry gives
 * CUDL_ERR_UNSUPPORTED with a message naming `function`, the operator, the
 * dtype and the backend; otherwise the entry's status after the debug
 * synchronisation (cudl__after_op). An expression of type cudl_status. */
#define CUDL_OP_CALL(ctx, function, dtype, op, ...)        \
  ((ctx)->backend->ops->op[(dtype)] == NULL                \
       ? cudl__op_missing((ctx), (function), #op, (dtype)) \
       : cudl__after_op((ctx),                             \
                        (ctx)->backend->ops->op[(dtype)]((ctx), __VA_ARGS__)))
/* CUDL_OP_CALL's message for an operator the backend lacks. */
cudl_status cudl__op_missing(cudl_context *ctx, const char *function,
                             const char *op, cudl_dtype dtype);

/* The runtime's copies for internal callers (src/nn, src/data), checked the
 * same way: nbytes of device memory to device memory, or from the host. */
cudl_status cudl__copy_on_device(cudl_context *ctx, void *dst, const void *src,
                                 size_t nbytes);
cudl_status cudl__copy_from_host(cudl_context *ctx, void *dst, const void *src,
                                 size_t nbytes);

/* Uploads that do not wait (the runtime's copy_from_host_async): src must
 * stay unchanged until an event recorded after the copy is reached
 * (cudl__event_wait); only memory of cudl__host_pinned_alloc makes them
 * truly asynchronous on CUDA. The loader's batches go this way. */
cudl_status cudl__copy_from_host_async(cudl_context *ctx, void *dst,
                                       const void *src, size_t nbytes);
cudl_status cudl__host_pinned_alloc(cudl_context *ctx, size_t nbytes,
                                    void **ptr);
void cudl__host_pinned_free(cudl_context *ctx, void *ptr, size_t nbytes);
cudl_status cudl__event_wait(cudl_event *event);
/* An event only waited for (cudl__event_wait), never timed: on CUDA made
 * without timing, which makes recording and waiting cheaper. */
cudl_status cudl__event_create_fence(cudl_context *ctx, cudl_event **out);

/* ---- recorded work (replay.c) ---- */

/* Work recorded once into a graph of the runtime's (CUDA graphs) and
 * replayed while what it was recorded for stays: the input's address and
 * rows, the context's TF32 and deterministic settings (the algorithms
 * chosen under them) and its graph epoch. Zeroed: nothing recorded. */
typedef struct cudl__replay {
  void *graph;
  const void *input;
  int64_t rows;
  int tf32, deterministic;
  uint64_t epoch;
  /* Since zeroed: runs recorded, replayed, and run directly (the reason
   * of the last in `reason`, "" after a recorded or replayed one). */
  int64_t recorded, replayed, direct;
  char reason[256];
} cudl__replay;

/* Queue `work` (which queues the device work of one call and returns its
 * status) on ctx through r: replayed when r holds a recording for input
 * and rows, else recorded and launched, else (the device has no graphs,
 * debug sync waits, `direct_reason` is not NULL, or the recording failed)
 * run directly with the reason kept. Work that fails while being recorded
 * is run again directly, so a call fails only with the direct run's
 * error. */
cudl_status cudl__replay_run(cudl_context *ctx, cudl__replay *r,
                             const void *input, int64_t rows,
                             const char *direct_reason,
                             cudl_status (*work)(void *arg), void *arg);
/* Destroy r's recording and zero it (its counts too). */
void cudl__replay_release(cudl_context *ctx, cudl__replay *r);

/* Whether ctx's device runs mixed precision computing in dtype natively
 * (the runtime's check_compute_dtype), for the model layer to refuse a
 * precision the device would only emulate: CUDL_OK; CUDL_ERR_UNSUPPORTED
 * with the backend's reason (f16 on the CPU, bf16 on a CPU without bf16
 * arithmetic, 16-bit types below compute capability 8.0); CUDL_ERR_DTYPE
 * for a dtype that is not f32, bf16 or f16. Messages as `function`'s. */
cudl_status cudl__check_compute_dtype(cudl_context *ctx, cudl_dtype dtype,
                                      const char *function);

CUDL_STATIC_ASSERT(CUDL_DTYPE_I32 < CUDL_DTYPE_COUNT, dtype_count);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_INTERNAL_H */
