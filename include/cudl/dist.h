/*
 * cudl/dist.h - data-parallel training: a communicator between the
 * processes (ranks) of one job, each holding a replica of the model.
 *
 * Each rank trains on its own shard of every global batch (the loader's
 * rank and world, cudl/data.h), then averages the gradients over the ranks
 * before its optimizer step, so that every replica takes the same step:
 * during backward, in buckets (cudl_model_set_grad_sync), or after it
 * (cudl_comm_average_grads). The initial weights come from rank 0
 * (cudl_comm_broadcast_params).
 *
 * Backends: "local" (one process, every call a no-op or a copy, for code
 * that runs the same alone and distributed), "mpi" (MPI_COMM_WORLD over
 * host memory: Open MPI or any MPI-3 library; tensors on a GPU are staged
 * through host memory) and "nccl" (one GPU per rank: tensors stay in
 * device memory, NCCL moves them on the context's stream; created over an
 * MPI communicator, cudl_comm_create_nccl). A build without MPI (CMake
 * option CUDL_MPI off, or MPI not found) has no mpi backend, one without
 * NCCL (CUDL_NCCL off: no CUDA backend, or NCCL not found) no nccl
 * backend; their creation says so with CUDL_ERR_UNSUPPORTED.
 *
 * Reductions give every rank exactly the same bits (replicas whose sums
 * differed in a last bit would drift apart): the MPI backend reduces to
 * rank 0 and broadcasts (an MPI all-reduce may add in a different order on
 * each rank); NCCL's all-reduce algorithms compute each element's sum once
 * and copy it to every rank.
 *
 * Every call is collective unless it says otherwise: each rank of the
 * communicator makes the same calls in the same order, with tensors of the
 * same shape. Errors are recorded in the communicator's context
 * (cudl_context_last_error), MPI's own error string included; MPI errors
 * are returned, never fatal (MPI_ERRORS_RETURN on the communicator), but a
 * rank that has failed may leave the others waiting in their next
 * collective call: cudl_comm_abort ends the whole job.
 */
#ifndef CUDL_DIST_H
#define CUDL_DIST_H

#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/nn.h"
#include "cudl/status.h"
#include "cudl/tensor.h"

CUDL_EXTERN_C_BEGIN

typedef struct cudl_comm cudl_comm;

/** 1 when this build of the library has the MPI backend, else 0. Not
 *  collective. */
CUDL_API int cudl_comm_mpi_available(void);

/**
 * A communicator of one rank (rank 0 of 1), for code that is written once
 * for both cases. ctx receives the errors and must outlive the
 * communicator. CUDL_ERR_INVALID_ARGUMENT for a NULL argument,
 * CUDL_ERR_OUT_OF_MEMORY. Not collective.
 */
CUDL_API cudl_status cudl_comm_create_local(cudl_context *ctx,
                                            cudl_comm **out);

/**
 * A communicator over every process of MPI_COMM_WORLD (a duplicate of it,
 * with MPI_ERRORS_RETURN). Initialises MPI when the program has not
 * (MPI_Init); then cudl_comm_destroy of this communicator finalises it, so
 * destroy it after every other communicator and MPI use of the program.
 * ctx receives the errors and must outlive the communicator.
 *
 * CUDL_ERR_UNSUPPORTED when the library was built without MPI, or when MPI
 * has already been finalised in this process (it cannot start again);
 * CUDL_ERR_INVALID_ARGUMENT for a NULL argument; CUDL_ERR_IO with MPI's
 * error string when an MPI call fails; CUDL_ERR_OUT_OF_MEMORY. On failure
 * *out is NULL and MPI is left as it was found where MPI allows (a failed
 * MPI_Init may end the process: MPI's default for it). Collective over
 * MPI_COMM_WORLD.
 */
CUDL_API cudl_status cudl_comm_create_mpi(cudl_context *ctx, cudl_comm **out);

/** 1 when NCCL can be used here: this build has the NCCL backend, its CUDA
 *  backend module loads (cudl_cuda_backend_load) and so does NCCL's
 *  library, libnccl.so.2, which the module loads on first use; else 0
 *  (cudl_comm_create_nccl then says which is missing). A 1 says nothing
 *  of the GPUs present. Not collective. */
CUDL_API int cudl_comm_nccl_available(void);

/**
 * An NCCL communicator between the GPUs of the ranks of bootstrap, one GPU
 * per rank: ctx's (a CUDA context; choose each rank's device when creating
 * it, e.g. its local rank modulo cudl_cuda_device_count). Rank 0 makes
 * NCCL's unique id, bootstrap's broadcast carries it to every rank, then
 * every rank joins (ncclCommInitRank on ctx's device). The communicator
 * has bootstrap's rank and size.
 *
 * Its tensor calls (cudl_comm_allreduce_mean, cudl_comm_broadcast,
 * cudl_comm_average_grads, cudl_comm_broadcast_params) take tensors of
 * ctx only (CUDL_ERR_DEVICE_MISMATCH for another context's) and run on
 * ctx's stream without copies to the host; the mean is NCCL's sum
 * (identical bits on every rank, in NCCL's order of additions, which
 * differs from the MPI backend's: results differ from an MPI run's by
 * rounding) scaled by 1 / size on the device. Without a timeout they
 * return once the work is queued (as any op on the stream); with one
 * (cudl_comm_set_timeout) they wait on the host until it is done, and the
 * wait counts the GPU work queued before them; past the deadline the NCCL
 * communicator is aborted (ncclCommAbort) and the call fails with
 * CUDL_ERR_IO. Host values (cudl_comm_allreduce_sum_f64, cudl_comm_agree)
 * and cudl_comm_barrier go through bootstrap, under this communicator's
 * timeout. NCCL's errors, asynchronous ones included (ncclCommGetAsyncError,
 * which aborts the communicator), come back as CUDL_ERR_IO with NCCL's
 * text (CUDL_ERR_CUDA for a CUDA failure inside NCCL). cudl_comm_abort
 * aborts NCCL, then the job through bootstrap.
 *
 * bootstrap (an "mpi" communicator, or a "local" one for a single rank)
 * stays the caller's: it must outlive this communicator; destroy it after.
 * Collective over bootstrap's ranks; joining is not bounded by a timeout.
 * CUDL_ERR_INVALID_ARGUMENT for a NULL argument or an "nccl" bootstrap;
 * CUDL_ERR_DEVICE_MISMATCH when ctx is not a CUDA context;
 * CUDL_ERR_UNSUPPORTED, checked first, when NCCL cannot be used here
 * (cudl_comm_nccl_available is 0: the message says whether the build
 * lacked it, with CMake's reason, or the CUDA backend or libnccl.so.2
 * could not be loaded, with the loader's); CUDL_ERR_IO with NCCL's text
 * when NCCL fails. On failure *out is NULL.
 */
CUDL_API cudl_status cudl_comm_create_nccl(cudl_context *ctx,
                                           cudl_comm *bootstrap,
                                           cudl_comm **out);

/** Release the communicator (and finalise MPI if this communicator
 *  initialised it); NULL is a no-op. Collective for the MPI backend. */
CUDL_API void cudl_comm_destroy(cudl_comm *comm);

/** This process's rank, 0 to size - 1 (0 for NULL). Not collective. */
CUDL_API int cudl_comm_rank(const cudl_comm *comm);

/** The number of ranks (1 for NULL). Not collective. */
CUDL_API int cudl_comm_size(const cudl_comm *comm);

/** The backend's name: "local", "mpi" or "nccl" (NULL for NULL). Not
 *  collective. */
CUDL_API const char *cudl_comm_backend(const cudl_comm *comm);

/**
 * Replace the f32 tensor t, on every rank, by the mean over the ranks of
 * its values: the sum (reduced to rank 0 in MPI's order, then broadcast;
 * NCCL's all-reduce for the nccl backend) times 1 / size, rounded to f32.
 * Any device: for the mpi backend a tensor that is not in host memory goes
 * through a host buffer the communicator keeps; the nccl backend takes
 * tensors of its own context only (cudl_comm_create_nccl). Shapes must
 * agree between ranks (MPI may not detect that they do not).
 * CUDL_ERR_INVALID_ARGUMENT for NULL, CUDL_ERR_DTYPE for a dtype other
 * than f32, CUDL_ERR_IO for an MPI failure, CUDL_ERR_OUT_OF_MEMORY for the
 * host buffer. On failure t's values are unspecified.
 */
CUDL_API cudl_status cudl_comm_allreduce_mean(cudl_comm *comm, cudl_tensor *t);

/**
 * Replace values[0..count) (host memory), on every rank, by their sums
 * over the ranks, in double: for the statistics of a step (loss sums, hit
 * and row counts). count >= 0; CUDL_ERR_INVALID_ARGUMENT for a negative
 * count or NULL values with count > 0; CUDL_ERR_IO for an MPI failure.
 */
CUDL_API cudl_status cudl_comm_allreduce_sum_f64(cudl_comm *comm,
                                                 double *values,
                                                 int64_t count);

/**
 * Copy tensor t of rank root to t of every other rank, byte for byte (any
 * dtype, any device; a tensor not in host memory goes through the host).
 * root in [0, size); CUDL_ERR_INVALID_ARGUMENT otherwise or for NULL;
 * CUDL_ERR_IO for an MPI failure.
 */
CUDL_API cudl_status cudl_comm_broadcast(cudl_comm *comm, cudl_tensor *t,
                                         int root);

/** Wait until every rank has called it. CUDL_ERR_IO for an MPI failure. */
CUDL_API cudl_status cudl_comm_barrier(cudl_comm *comm);

/**
 * Whether every rank passed the same value (a hash of its configuration,
 * say): *same is 1 when they all did, else 0, on every rank; *lowest and
 * *highest (either may be NULL) receive the smallest and largest value
 * passed, for a message. CUDL_ERR_INVALID_ARGUMENT for a NULL comm or
 * same; CUDL_ERR_IO for an MPI failure.
 */
CUDL_API cudl_status cudl_comm_agree(cudl_comm *comm, uint64_t value,
                                     int *same, uint64_t *lowest,
                                     uint64_t *highest);

/**
 * Average the model's gradient arena (cudl_model_grads) over the ranks,
 * all of it after backward: the values of cudl_comm_allreduce_mean on it,
 * computed as one bucket of cudl_model_set_grad_sync (the same reduce and
 * broadcast, the same scaling). Call after cudl_model_backward and before
 * clipping and the optimizer step, on every rank, each with its own shard
 * of the batch: every replica then steps with the gradient of the whole
 * global batch (as one process with batch size * the rank's batch, up to
 * the order of the additions). The model must be compiled and not attached
 * by cudl_model_set_grad_sync, whose backward averages already
 * (CUDL_ERR_INVALID_ARGUMENT otherwise). For an FP16 model use
 * cudl_model_set_grad_sync: here backward has already divided out the loss
 * scale and checked this rank's own gradients for overflow, so the ranks
 * could skip different steps and their scales drift apart.
 */
CUDL_API cudl_status cudl_comm_average_grads(cudl_comm *comm,
                                             cudl_model *model);

/**
 * Average the model's gradients over the ranks inside cudl_model_backward,
 * overlapped with it: the gradient arena is cut into buckets (contiguous
 * ranges, whole parameters, filled from the arena's end as backward runs
 * from the last layer: parameters are added until the next would pass
 * bucket_bytes; a parameter larger than bucket_bytes is a bucket alone;
 * bucket_bytes 0 is one bucket of the whole arena, reduced after the last
 * layer); once backward has passed every layer owning a parameter of a
 * bucket, the bucket's reduction starts without waiting and backward goes
 * on, letting the transfers move between layers. After the last layer
 * backward waits for every bucket (within cudl_comm_set_timeout's limit)
 * and scales each to the mean, so that cudl_model_backward returns the
 * averaged gradients: clipping, cudl_model_check_gradients and the optimizer
 * see them; in FP16 the loss scale is divided out of the averaged
 * gradients and its overflow check sees them too. PyTorch DDP's default
 * cap is 25 MB (25 << 20).
 *
 * Each bucket is a reduce to rank 0 and a broadcast, as every sum of the
 * communicator, so every rank holds the same bits, and each value's sum is
 * the same operation whatever the buckets: over 2 ranks bucket_bytes does
 * not change a bit of the result; over more, MPI may group the additions
 * of a sum differently for messages of other sizes (the ranks still
 * agree).
 *
 * Every cudl_model_backward of the model is then collective, and
 * cudl_comm_average_grads refuses it. A backward that fails after its
 * first bucket started leaves exchanges in flight that the other ranks
 * will not match: the next backward (and attaching again) fails, and the
 * job must end (cudl_comm_abort). comm must outlive the attachment and
 * record its errors in the model's context. NULL detaches (bucket_bytes
 * is then ignored); attaching again replaces the buckets. The model must
 * be compiled. CUDL_ERR_INVALID_ARGUMENT for a NULL model, an uncompiled
 * one, another context or a negative bucket_bytes;
 * CUDL_ERR_UNSUPPORTED for a backend without bucket reductions;
 * CUDL_ERR_OUT_OF_MEMORY. Not collective.
 */
CUDL_API cudl_status cudl_model_set_grad_sync(cudl_model *model,
                                              cudl_comm *comm,
                                              int64_t bucket_bytes);

/** What a model's gradients travel between ranks as
 *  (cudl_model_set_grad_wire). */
typedef enum cudl_grad_wire {
  /** bf16 under bf16 mixed precision, f16 under fp16, else f32. */
  CUDL_GRAD_WIRE_AUTO = 0,
  CUDL_GRAD_WIRE_F32 = 1,  /**< exact sums of the f32 gradients */
  CUDL_GRAD_WIRE_BF16 = 2, /**< half the bytes; 8 significant bits */
  CUDL_GRAD_WIRE_F16 = 3   /**< half the bytes; 11 significant bits, range
                                65504 (for loss-scaled fp16 gradients) */
} cudl_grad_wire;

/**
 * Choose what the gradients travel as when they are averaged over the
 * ranks (cudl_model_set_grad_sync's buckets and cudl_comm_average_grads):
 * each bucket of the f32 gradient arena divided by the number of ranks and
 * converted to wire's dtype on the model's device (before any copy to host
 * memory), summed over the ranks in that dtype (each addition rounded to
 * it, as NCCL's bf16 and f16 sums and PyTorch DDP's bf16 and fp16
 * compression hooks do), and converted back to f32: the mean. A 16-bit wire halves the bytes moved, at
 * the price of the sum's precision: bf16 keeps 8 significant bits, f16 11
 * with a range of +-65504 (in FP16 mixed precision the gradients are still
 * multiplied by the loss scale when they are summed, and a sum that
 * overflows is an overflow the loss scale's check sees: the step is
 * skipped on every rank). Every rank still holds the same bits. One rank
 * exchanges nothing, and its gradients stay exact whatever the wire. The
 * default, CUDL_GRAD_WIRE_AUTO, follows the model's precision
 * (cudl_model_set_precision) at each backward. The ranks must agree (it is
 * part of `cudl train`'s configuration). CUDL_ERR_INVALID_ARGUMENT for a
 * NULL model or an unknown value. Not collective.
 */
CUDL_API cudl_status cudl_model_set_grad_wire(cudl_model *model,
                                              cudl_grad_wire wire);

/** The dtype the model's next exchange of gradients uses
 *  (cudl_model_set_grad_wire resolved against its precision): f32, bf16
 *  or f16; f32 for NULL. */
CUDL_API cudl_dtype cudl_model_grad_wire_dtype(const cudl_model *model);

/** "auto", "f32", "bf16" or "f16"; "unknown" otherwise. Static. */
CUDL_API const char *cudl_grad_wire_name(cudl_grad_wire wire);

/** The wire of a name of cudl_grad_wire_name: CUDL_OK, or
 *  CUDL_ERR_INVALID_ARGUMENT for NULL or an unknown name (*out
 *  unchanged). */
CUDL_API cudl_status cudl_grad_wire_from_name(const char *name,
                                              cudl_grad_wire *out);

/** The number of gradient buckets of cudl_model_set_grad_sync's
 *  attachment (0 when not attached, or when nothing is trainable). Not
 *  collective. */
CUDL_API int cudl_model_grad_sync_buckets(const cudl_model *model);

/**
 * The seconds the last cudl_model_backward of an attached model spent
 * waiting for its buckets (host wall time): the exposed communication,
 * from the last layer to the averaged gradients, plus any wait between
 * layers for a bucket's reduction to complete before its broadcast can
 * start. 0 when not attached. Not collective.
 */
CUDL_API double cudl_model_grad_sync_wait_seconds(const cudl_model *model);

/**
 * Copy rank root's parameters (cudl_model_params, the f32 master weights
 * of a mixed-precision model) to every rank, before training, so that the
 * replicas start equal whatever each initialised. The model must be
 * compiled, with the same architecture on every rank. Batch-norm running
 * statistics are not parameters and are not copied.
 */
CUDL_API cudl_status cudl_comm_broadcast_params(cudl_comm *comm,
                                                cudl_model *model, int root);

/**
 * Bound every later collective call of this rank: one that has not
 * completed after seconds (a rank is hung, or far slower) fails with
 * CUDL_ERR_IO naming the MPI or NCCL call, the library function and the
 * time, instead of waiting forever (the nccl backend: see
 * cudl_comm_create_nccl). seconds from 0 to 1e9; 0, the default, waits
 * without limit. The MPI backend then uses MPI's non-blocking collectives
 * (MPI_Ireduce, MPI_Ibcast, MPI_Iallreduce, MPI_Ibarrier) and tests them
 * until the deadline, with the same reduce-to-0-then-broadcast and so the
 * same bits on every rank. After a timeout the collective is still
 * pending and the communicator cannot be used again: end the job with
 * cudl_comm_abort (cudl_comm_destroy may wait for the missing rank).
 * Creating and destroying the communicator are not bounded. Not
 * collective; each rank sets its own. CUDL_ERR_INVALID_ARGUMENT for NULL
 * or a value out of range (the timeout is then unchanged).
 */
CUDL_API cudl_status cudl_comm_set_timeout(cudl_comm *comm, double seconds);

/** The timeout cudl_comm_set_timeout set, in seconds (0: none, and for
 *  NULL). Not collective. */
CUDL_API double cudl_comm_timeout(const cudl_comm *comm);

/**
 * Synchronised batch norm: with comm, every batch-norm layer of the model
 * normalises in training mode with the statistics of the rows of every
 * rank together (the rows of the global batch), as PyTorch's
 * SyncBatchNorm does, instead of its own rank's rows (the default):
 * forward sums each channel's values and squared deviations over the ranks
 * (through cudl_comm_allreduce_sum_f64, so every rank gets the same bits)
 * and updates the running statistics from the global mean and unbiased
 * variance; backward sums dy and dy * xhat over the ranks, so that the
 * input's gradient is that of the global batch norm (the weight and bias
 * gradients stay the rank's own, averaged by cudl_comm_average_grads like
 * every gradient). Each rank's rows must still hold at least 2 values per
 * channel. Evaluation mode is unchanged (running statistics).
 *
 * Every forward and backward in training mode of a model with batch norm
 * is then collective: every rank must run them together, with the same
 * model. comm must outlive the attachment and record its errors in the
 * model's context (CUDL_ERR_INVALID_ARGUMENT otherwise). NULL detaches; a
 * communicator of one rank (the local backend) also leaves batch norm as
 * it is, which is then already synchronised (bit for bit the same).
 * CUDL_ERR_INVALID_ARGUMENT for a NULL model. Not collective; the model
 * need not be compiled.
 */
CUDL_API cudl_status cudl_model_set_sync_bn(cudl_model *model,
                                            cudl_comm *comm);

/**
 * End every process of the communicator's job with exit status code
 * (MPI_Abort), for a program that has failed on one rank and must not
 * leave the others waiting in a collective call. The library calls it
 * only when asked. Returns only for the local backend or NULL (nothing
 * done: the caller then exits itself), or when MPI_Abort returns.
 */
CUDL_API void cudl_comm_abort(cudl_comm *comm, int code);

CUDL_EXTERN_C_END

#endif /* CUDL_DIST_H */
