/*
 * cudl/context.h - contexts, devices, logging and host allocator hooks.
 *
 * A context owns everything that runs on one device: for CUDA the device
 * index, a stream (its own, or the caller's: cudl_context_create_cuda_stream),
 * the cuBLAS and cuDNN handles; for both devices the random
 * generator state, the host allocator and the text of the last error.
 *
 * Threading contract: a context (and every tensor created from it) is used
 * by one thread at a time. Different contexts may be used from different
 * threads at the same time without any locking by the caller. The only
 * process-wide setting is the log callback (cudl_set_log_callback).
 *
 * CUDA: a call on a CUDA context makes the context's GPU the calling
 * thread's current device (cudaSetDevice) and leaves it so; a program that
 * also uses the CUDA runtime on another GPU sets its device again after
 * calling cudl.
 */
#ifndef CUDL_CONTEXT_H
#define CUDL_CONTEXT_H

#include <stddef.h>
#include <stdint.h>

#include "cudl/export.h"
#include "cudl/status.h"

CUDL_EXTERN_C_BEGIN

/** Where a context runs. */
typedef enum cudl_device_kind {
  CUDL_DEVICE_CPU = 0,
  CUDL_DEVICE_CUDA = 1,
  /** At creation only: the first usable CUDA device, else the CPU (the
   *  fallback and its reason are logged at CUDL_LOG_WARN). */
  CUDL_DEVICE_AUTO = 2
} cudl_device_kind;

typedef struct cudl_context cudl_context;

/* ------------------------------------------------------------------ */
/* Version                                                              */
/* ------------------------------------------------------------------ */

/** The library's version string at run time, e.g. "0.1.0". */
CUDL_API const char *cudl_version(void);

/** The library's version as CUDL_VERSION_NUMBER computes it. */
CUDL_API int cudl_version_number(void);

/* ------------------------------------------------------------------ */
/* Logging                                                              */
/* ------------------------------------------------------------------ */

typedef enum cudl_log_level {
  CUDL_LOG_DEBUG = 0,
  CUDL_LOG_INFO = 1,
  CUDL_LOG_WARN = 2,
  CUDL_LOG_ERROR = 3
} cudl_log_level;

/** Receives one complete message (no trailing newline). May be called from
 *  any thread that uses a context; it must be thread-safe if contexts are. */
typedef void (*cudl_log_fn)(cudl_log_level level, const char *message,
                            void *user_data);

/**
 * Install the process-wide log callback (NULL: silent, the default). cudl
 * never prints on its own; this callback receives everything it has to say.
 * Safe to call at any time from any thread; a message being delivered while
 * the callback is replaced goes to the old or the new one, never both. The
 * callback runs unlocked, so a delivery that began just before a
 * replacement may still be running after it returns: keep user_data alive
 * until the threads using contexts are done with cudl.
 */
CUDL_API void cudl_set_log_callback(cudl_log_fn fn, void *user_data);

/** Short lower-case name of a level ("warn"). */
CUDL_API const char *cudl_log_level_name(cudl_log_level level);

/* ------------------------------------------------------------------ */
/* CUDA devices                                                         */
/* ------------------------------------------------------------------ */

/** 1 when this build has a CUDA backend, else 0. The backend is a module
 *  loaded at run time (cudl_cuda_backend_load), so a build that has one
 *  may still find it unusable on a host without the CUDA libraries. */
CUDL_API int cudl_cuda_compiled(void);

/**
 * Load the CUDA backend, a separate shared object (libcudl_cuda.so.M.N)
 * that links the CUDA runtime, cuBLAS and cuDNN, so that libcudl itself
 * needs none of them; every CUDA query and CUDA context loads it on first
 * use, once per process, and it stays loaded. It is looked for in the file
 * named by the environment variable CUDL_CUDA_MODULE if set, else beside
 * libcudl (or beside the program a static libcudl.a was linked into), then
 * by the dynamic loader's search, then in the library directory cudl was
 * installed to. CUDL_OK when loaded, with its file written to path (may be
 * NULL); CUDL_ERR_UNSUPPORTED in a build without CUDA; CUDL_ERR_NO_DEVICE
 * when it cannot be loaded, with the loader's reason (a CUDA library it
 * needs is missing, the module belongs to another build of cudl) written
 * to reason (may be NULL). Both texts are NUL-terminated, truncated to
 * their sizes. The CPU backend works either way. Thread-safe.
 */
CUDL_API cudl_status cudl_cuda_backend_load(char *path, size_t path_size,
                                            char *reason, size_t reason_size);

/**
 * Count the CUDA devices the driver sees (cudl_cuda_device_supported says
 * which of them this build can run on). On success *count >= 1. Otherwise
 * *count is 0, the status says why (CUDL_ERR_NO_DEVICE: built without
 * CUDA, its backend cannot be loaded, no driver, no GPU) and, if reason is
 * not NULL, a one-line
 * explanation is written to reason (always NUL-terminated, truncated to
 * reason_size).
 */
CUDL_API cudl_status cudl_cuda_device_count(int *count, char *reason,
                                            size_t reason_size);

/**
 * The GPU code this build contains, in nvcc's names separated by spaces:
 * "sm_XY" is machine code (SASS) for compute capability X.Y, which also runs
 * on later cards of the same major (sm_86 on 8.6, 8.7 and 8.9); "compute_XY"
 * is PTX, which the driver compiles for any card of X.Y or later; an "a"
 * suffix (sm_90a) marks code for X.Y alone. The default build gives
 * "sm_80 sm_86 sm_89 sm_90 compute_90" (CMake's CMAKE_CUDA_ARCHITECTURES
 * chooses it). "" in a build without CUDA. Static; never NULL.
 */
CUDL_API const char *cudl_cuda_architectures(void);

/**
 * Whether this build has GPU code that CUDA device `index` runs, judged
 * from the card's compute capability and cudl_cuda_architectures():
 * CUDL_OK if so; CUDL_ERR_UNSUPPORTED if not, with a one-line reason (the
 * card, its compute capability, the code the build has, how to rebuild);
 * CUDL_ERR_NO_DEVICE as cudl_cuda_device_count, or when index is not below
 * the count; CUDL_ERR_INVALID_ARGUMENT for a negative index. The reason is
 * written as by cudl_cuda_device_count (reason may be NULL); "" on success.
 * cudl_context_create refuses such a card with the same status and text,
 * after also asking the driver to load the code, which can fail for a card
 * this call accepts (a driver older than the build's PTX).
 */
CUDL_API cudl_status cudl_cuda_device_supported(int index, char *reason,
                                                size_t reason_size);

/** What cudl_cuda_device_properties reports for one GPU. */
typedef struct cudl_cuda_device_properties {
  char name[256];
  int compute_major; /**< compute capability, e.g. 9 for sm_90 */
  int compute_minor;
  int multiprocessor_count;
  uint64_t total_memory; /**< bytes of device memory */
} cudl_cuda_device_properties;

/** Properties of CUDA device `index`. CUDL_ERR_NO_DEVICE if there is none. */
CUDL_API cudl_status cudl_cuda_device_properties_query(
    int index, cudl_cuda_device_properties *props);

/** Versions of the CUDA libraries in use, encoded as the libraries do
 *  (CUDA 13.0 = 13000; cuDNN 9.1.0 = 90100). 0 where unknown. */
typedef struct cudl_cuda_versions {
  int runtime;        /**< cudaRuntimeGetVersion */
  int driver;         /**< cudaDriverGetVersion (0: no driver) */
  int cudnn_compiled; /**< CUDNN_VERSION of the headers cudl was built with */
  int cudnn_loaded;   /**< cudnnGetVersion() of the library loaded */
  int cublas;         /**< cublasGetProperty major*10000+minor*100+patch */
} cudl_cuda_versions;

/** Fill *versions. CUDL_ERR_UNSUPPORTED in a build without CUDA or when
 *  its backend cannot be loaded (cudl_cuda_backend_load says why). Works
 *  without a GPU (the driver field is then 0). */
CUDL_API cudl_status cudl_cuda_versions_query(cudl_cuda_versions *versions);

/* ------------------------------------------------------------------ */
/* Host allocator hooks                                                 */
/* ------------------------------------------------------------------ */

/**
 * Host memory functions a context uses for everything it allocates on the
 * host after they are installed: tensor objects, CPU tensor storage, staging
 * buffers, loaded file headers. alloc returns memory aligned to `alignment`
 * (a power of two, at most 4096) or NULL; free receives the size that was
 * requested. Memory is always returned to the allocator that provided it.
 */
typedef struct cudl_allocator {
  void *(*alloc)(size_t size, size_t alignment, void *user_data);
  void (*free)(void *ptr, size_t size, void *user_data);
  void *user_data;
} cudl_allocator;

/* ------------------------------------------------------------------ */
/* Contexts                                                             */
/* ------------------------------------------------------------------ */

/**
 * Create a context.
 *   kind = CUDL_DEVICE_CPU:  device_index must be 0.
 *   kind = CUDL_DEVICE_CUDA: device_index selects the GPU; fails with
 *     CUDL_ERR_NO_DEVICE when the build has no CUDA, there is no driver or
 *     GPU, or the index is out of range (the reason goes to the log at
 *     CUDL_LOG_ERROR; cudl_cuda_device_count returns the same text), and
 *     with CUDL_ERR_UNSUPPORTED when the driver cannot load the build's GPU
 *     code on that card: no code for its compute capability, or PTX the
 *     driver cannot compile (the reason, logged likewise, names the card,
 *     its compute capability and cudl_cuda_architectures();
 *     cudl_cuda_device_supported gives it too, in the first case).
 *   kind = CUDL_DEVICE_AUTO: device_index must be 0; the first GPU that
 *     opens, else the CPU, logging the reason at CUDL_LOG_WARN.
 * The random generator starts at seed 0, offset 0. On failure *out is NULL.
 */
CUDL_API cudl_status cudl_context_create(cudl_device_kind kind,
                                         int device_index, cudl_context **out);

/**
 * Create a CUDA context on GPU device_index whose work runs on the
 * caller's CUDA stream, for a program that already uses CUDA. `stream` is
 * a cudaStream_t (cast to void *) of that GPU; it stays the caller's:
 * cudl never destroys it, and it must outlive the context.
 *
 * Every piece of the context's GPU work is queued on that stream, in call
 * order: cudl's kernels, cuBLAS and cuDNN, copies, memory-pool
 * allocations and frees, events (cudl_event_record), NCCL collectives. So
 * work the caller queued on the stream before a cudl call runs before it,
 * and work queued after runs after it, with no synchronisation in between;
 * other streams need the caller's events, as between any two streams.
 *
 * What waits on the host: the calls documented to wait
 * (cudl_tensor_copy_to_host, cudl_context_synchronize,
 * cudl_event_elapsed_ms, a cudl_tensor_copy from this context to another,
 * reading a loss or any other value to the host, cudl_tensor_copy_from_host
 * from page-locked memory) wait for the whole stream, the caller's earlier
 * work included; so does the first convolution of each shape (cuDNN times
 * its algorithms, once) and cudl_context_destroy. Nothing else blocks the
 * host.
 *
 * Threads: as for every context, one thread at a time calls cudl on it;
 * the caller may queue its own work on the stream from any thread,
 * ordered against cudl's by the order of the calls. Tensors of the context
 * (their memory comes from a stream-ordered pool) are valid on this
 * stream; another stream reading them waits for an event recorded after
 * the cudl call that wrote them.
 *
 * cudaStreamPerThread is refused (it names a different stream in each
 * thread), as is a stream of another GPU (CUDA 12.8 or newer checks it;
 * older, the first operation fails instead): CUDL_ERR_INVALID_ARGUMENT,
 * with the reason logged at CUDL_LOG_ERROR. A NULL stream is refused too
 * (CUDL_ERR_INVALID_ARGUMENT): NULL is also the legacy default stream, so
 * pass cudaStreamLegacy to mean that one. Without CUDA, a GPU or the
 * device, and for a card the build has no code for, the statuses and
 * logged reasons of cudl_context_create(CUDL_DEVICE_CUDA, ...).
 * A negative device_index or a NULL out is CUDL_ERR_INVALID_ARGUMENT. On
 * failure *out is NULL (when out is not NULL).
 */
CUDL_API cudl_status cudl_context_create_cuda_stream(int device_index,
                                                     void *stream,
                                                     cudl_context **out);

/** Release the context. Tensors created from it must be destroyed first,
 *  and datasets before any further call on them that can fail
 *  (cudl_dataset_split). NULL is a no-op. */
CUDL_API void cudl_context_destroy(cudl_context *ctx);

/** CUDL_DEVICE_CPU or CUDL_DEVICE_CUDA (never AUTO). CPU for NULL. */
CUDL_API cudl_device_kind cudl_context_device(const cudl_context *ctx);

/** CUDA device index, 0 for the CPU or NULL. */
CUDL_API int cudl_context_device_index(const cudl_context *ctx);

/** Human-readable device description: "cpu" or "cuda:0 (NVIDIA H100 ...)". */
CUDL_API const char *cudl_context_device_name(const cudl_context *ctx);

/**
 * Detail of the most recent failure in a call on this context (or on a
 * tensor of it); "" if none yet. Valid until the next failing call on the
 * context. Never NULL; for a NULL context, a static message.
 */
CUDL_API const char *cudl_context_last_error(const cudl_context *ctx);

/** Wait until all work queued on the context's device has finished. */
CUDL_API cudl_status cudl_context_synchronize(cudl_context *ctx);

/* ------------------------------------------------------------------ */
/* Memory accounting                                                    */
/* ------------------------------------------------------------------ */

/**
 * The memory a context holds on its device for tensors and workspaces: on
 * a CUDA context its stream-ordered pool (cuBLAS's and cuDNN's own small
 * internal allocations are not counted), on the CPU the host memory of
 * tensor storage and the backend workspace (not the tensor objects, nor
 * oneDNN's caches). Sizes in bytes.
 */
typedef struct cudl_memory_stats {
  uint64_t bytes_in_use;      /**< held by live allocations now */
  uint64_t peak_bytes_in_use; /**< the most since creation or the last reset */
  uint64_t bytes_reserved;    /**< taken from the system, including blocks the
                                   pool keeps for reuse (= in use on the CPU) */
  uint64_t peak_bytes_reserved; /**< the most reserved since the last reset */
} cudl_memory_stats;

/** Fill *stats (both arguments non-NULL). */
CUDL_API cudl_status cudl_context_memory_stats(cudl_context *ctx,
                                               cudl_memory_stats *stats);

/** Start the peak figures again from what is held now. */
CUDL_API cudl_status cudl_context_reset_peak_memory(cudl_context *ctx);

/**
 * Memory limit: the most bytes of tensor storage and workspaces the
 * context may hold on its device at once (bytes_in_use above). An
 * allocation that would take it past the limit is not attempted: the call
 * that needed it fails with CUDL_ERR_OUT_OF_MEMORY, whose message gives the
 * request, the bytes in use and the limit, and changes nothing.
 *
 * The default, taken when the context is created: on the CPU, the memory
 * the process can actually get then (MemAvailable + SwapFree of
 * /proc/meminfo, at most what the memory cgroup's limit and RLIMIT_AS /
 * RLIMIT_DATA leave; the available physical pages where /proc is not
 * readable), so that an impossible allocation fails cleanly instead of
 * succeeding under Linux's overcommit and bringing the out-of-memory killer
 * when it is touched; on CUDA, the card's total memory (cudaMalloc fails
 * cleanly there; a lower limit lets programs share a card).
 *
 * set_memory_limit: bytes = 0 restores the default. A limit below what is
 * in use is accepted; allocations then fail until enough is freed.
 * memory_limit: *bytes = the limit in force (the default unless set).
 */
CUDL_API cudl_status cudl_context_set_memory_limit(cudl_context *ctx,
                                                   uint64_t bytes);
CUDL_API cudl_status cudl_context_memory_limit(const cudl_context *ctx,
                                               uint64_t *bytes);

/* ------------------------------------------------------------------ */
/* Events: timing work on the device                                    */
/* ------------------------------------------------------------------ */

/**
 * A timestamp in a context's queue of work, for timing it: a CUDA event
 * recorded on the context's stream, or the monotonic clock on the CPU
 * (whose operations are synchronous). Usage: record start, queue work,
 * record end, then cudl_event_elapsed_ms, which waits for end.
 */
typedef struct cudl_event cudl_event;

/** Create an event of ctx. On failure *out is NULL. */
CUDL_API cudl_status cudl_event_create(cudl_context *ctx, cudl_event **out);

/** Release the event (NULL is a no-op). Call before destroying the context. */
CUDL_API void cudl_event_destroy(cudl_event *event);

/** Record the event after everything queued so far on its context. Does not
 *  wait. Recording again moves it. */
CUDL_API cudl_status cudl_event_record(cudl_event *event);

/**
 * *ms = the milliseconds from start to end, both recorded, of the same
 * context. Waits until end has been reached. CUDA events resolve about
 * 0.5 microseconds; CPU events the monotonic clock.
 */
CUDL_API cudl_status cudl_event_elapsed_ms(cudl_event *start, cudl_event *end,
                                           double *ms);

/**
 * Debug mode: when enabled (nonzero), a CUDA context synchronises after
 * every operation, so an asynchronous kernel failure is reported by the call
 * that caused it. No effect on the CPU. Off by default.
 */
CUDL_API cudl_status cudl_context_set_debug_sync(cudl_context *ctx,
                                                 int enabled);

/**
 * TF32: when allowed (nonzero), cuBLAS matrix products and cuDNN
 * convolutions on a CUDA context may round f32 inputs to TF32 (10-bit
 * mantissa) on the tensor cores: several times faster on Ampere and Hopper,
 * with products accurate to about 1e-3 relative instead of 1e-6. Off by
 * default, so results match the CPU to f32 accuracy. No effect on the CPU.
 */
CUDL_API cudl_status cudl_context_set_allow_tf32(cudl_context *ctx,
                                                 int allowed);
/** 1 when TF32 is allowed, else 0 (also for NULL). */
CUDL_API int cudl_context_allow_tf32(const cudl_context *ctx);

/**
 * Deterministic mode: when enabled (nonzero), a CUDA context uses only
 * algorithms whose results are bitwise identical from run to run: cuDNN
 * convolution algorithms that reduce with atomics are excluded (which may be
 * slower). cudl's own kernels are deterministic in either mode, and so is
 * every CPU operation. Off by default. The choice is part of the
 * per-shape algorithm cache key, so switching takes effect at the next call.
 */
CUDL_API cudl_status cudl_context_set_deterministic(cudl_context *ctx,
                                                    int enabled);
/** 1 in deterministic mode, else 0 (also for NULL). */
CUDL_API int cudl_context_deterministic(const cudl_context *ctx);

/**
 * Emulated mixed precision: a model's bf16 or fp16 precision
 * (cudl_model_set_precision) is refused where the device has no 16-bit
 * arithmetic for it (the CPU without AVX512-BF16 or AMX for bf16, every CPU
 * for fp16), since it would run slower than fp32. Enabled (nonzero), the
 * context runs it anyway, computing in f32 with 16-bit storage: the same
 * results as native hardware gives, for testing and as the reference the
 * GPU's mixed precision is checked against. Off by default.
 */
CUDL_API cudl_status
cudl_context_set_allow_emulated_precision(cudl_context *ctx, int enabled);
/** 1 when emulated mixed precision is allowed, else 0 (also for NULL). */
CUDL_API int cudl_context_allow_emulated_precision(const cudl_context *ctx);

/**
 * Random generator state: Philox4x32-10 keyed by `seed`; `offset` counts
 * the 128-bit blocks already consumed. Every random call uses the current
 * offset and advances it, so the same (seed, offset) gives the same numbers
 * on every device. set_seed also resets the offset to 0.
 */
CUDL_API cudl_status cudl_context_set_seed(cudl_context *ctx, uint64_t seed);
CUDL_API cudl_status cudl_context_set_rng_state(cudl_context *ctx,
                                                uint64_t seed, uint64_t offset);
CUDL_API cudl_status cudl_context_rng_state(const cudl_context *ctx,
                                            uint64_t *seed, uint64_t *offset);

/**
 * Install host allocator hooks (copied; NULL restores malloc-based
 * defaults). Both alloc and free must be set. Objects allocated before keep
 * using the allocator they came from.
 */
CUDL_API cudl_status cudl_context_set_allocator(cudl_context *ctx,
                                                const cudl_allocator *alloc);

/* ------------------------------------------------------------------ */
/* Fault injection (testing)                                            */
/* ------------------------------------------------------------------ */

/**
 * For tests of out-of-memory handling. From this call on the context counts
 * its allocations, host (through its allocator hooks) and device (the CUDA
 * memory pool) alike, in the order they happen, and makes the k-th fail as
 * if memory had run out: the call that needed it returns
 * CUDL_ERR_OUT_OF_MEMORY with its usual message (a device allocation's says
 * the failure was injected). Only that one fails. k = 0 counts without failing; k < 0 stops counting.
 * Calling again restarts the count. Objects created while counting must be
 * destroyed before the allocator hooks change, and the hooks cannot be
 * changed while counting is on (CUDL_ERR_INVALID_ARGUMENT).
 */
CUDL_API cudl_status cudl_context_fail_allocation(cudl_context *ctx,
                                                  int64_t k);

/**
 * What cudl_context_fail_allocation has counted since it was last called:
 * *counted allocations (the failed one included) and *failed of them made
 * to fail (0 or 1). Either pointer may be NULL; both 0 when counting is off.
 */
CUDL_API cudl_status cudl_context_allocation_count(const cudl_context *ctx,
                                                   uint64_t *counted,
                                                   uint64_t *failed);

CUDL_EXTERN_C_END

#endif /* CUDL_CONTEXT_H */
