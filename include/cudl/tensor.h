/*
 * cudl/tensor.h - dense tensors on the CPU or a CUDA device.
 *
 * A tensor is a dtype, a shape of 0 to CUDL_MAX_DIMS dimensions (row-major,
 * NCHW for images), and storage on its context's device. Data moves between
 * devices only through the explicit copy calls below. Calls on a tensor
 * record failures in its context (cudl_context_last_error).
 */
#ifndef CUDL_TENSOR_H
#define CUDL_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/status.h"

CUDL_EXTERN_C_BEGIN

/** Most dimensions a tensor can have. */
#define CUDL_MAX_DIMS 5

/** Element types. An operator's data tensors (x, y, their gradients,
 *  dropout masks and RReLU noise, the weights and biases of convolution and
 *  linear layers) share one float dtype, f32, bf16 or f16, which picks the
 *  implementation: it computes in f32 and rounds what it stores once.
 *  What mixed precision keeps in f32 is f32 whatever that dtype:
 *  batch-norm gamma, beta and statistics, PReLU slopes and their gradient,
 *  norms and losses. Softmax, the losses, sum and mean, the optimizers and
 *  the random initialisers are f32-only. A tensor whose dtype breaks these
 *  rules gives CUDL_ERR_DTYPE, naming it and both dtypes. i32 holds
 *  integers such as class labels. */
typedef enum cudl_dtype {
  CUDL_DTYPE_F32 = 0,
  CUDL_DTYPE_F16 = 1,
  CUDL_DTYPE_BF16 = 2,
  CUDL_DTYPE_I32 = 3
} cudl_dtype;

/** Bytes per element; 0 for an unknown dtype. */
CUDL_API size_t cudl_dtype_size(cudl_dtype dtype);

/** "f32", "f16", "bf16", "i32"; "unknown" otherwise. */
CUDL_API const char *cudl_dtype_name(cudl_dtype dtype);

typedef struct cudl_tensor cudl_tensor;

/** How a 4-D image tensor's elements lie in memory. The shape is always
 *  the logical [N, C, H, W] (a convolution weight [K, C, R, S]); the layout
 *  says which order the bytes are in:
 *  - CUDL_LAYOUT_NCHW (every tensor's at creation): row-major [N, C, H, W],
 *    PyTorch's default;
 *  - CUDL_LAYOUT_NHWC, channels-last: row-major [N, H, W, C] (a weight
 *    [K, R, S, C]), PyTorch's torch.channels_last: the order cuDNN's
 *    tensor-core convolutions work in, which NCHW data is transposed to
 *    and from around them (cudl_model_set_layout).
 *  An operator's 4-D data tensors share one layout (CUDL_ERR_SHAPE naming
 *  both otherwise). Convolution, pooling, batch norm, PReLU and the
 *  elementwise operators take both; cudl_tensor_convert moves data between
 *  them. Tensors of other ranks have no layout (NCHW). */
typedef enum cudl_layout {
  CUDL_LAYOUT_NCHW = 0,
  CUDL_LAYOUT_NHWC = 1
} cudl_layout;

/** "nchw", "nhwc"; "unknown" otherwise. */
CUDL_API const char *cudl_layout_name(cudl_layout layout);

/**
 * Create a zero-filled tensor on ctx's device.
 * ndim in [0, CUDL_MAX_DIMS] (0 = a scalar with one element); every
 * dimension >= 0 (a 0 gives an empty tensor). The element count and byte
 * size are checked for overflow (CUDL_ERR_SHAPE). On failure *out is NULL.
 */
CUDL_API cudl_status cudl_tensor_create(cudl_context *ctx, cudl_dtype dtype,
                                        int ndim, const int64_t *shape,
                                        cudl_tensor **out);

/** Release the tensor. Its storage is freed with the last tensor that
 *  shares it (see cudl_tensor_reshape), unless it is the caller's memory
 *  (cudl_tensor_wrap), which is never freed. NULL is a no-op. */
CUDL_API void cudl_tensor_destroy(cudl_tensor *t);

/** The alignment, in bytes, that cudl_tensor_wrap requires of memory: the
 *  widest single access cudl's kernels make (16-byte vectors), and that
 *  cuBLAS and cuDNN want for their tensor-core paths. malloc and
 *  cudaMalloc give at least this. */
#define CUDL_TENSOR_WRAP_ALIGNMENT 16

/**
 * A tensor of ctx whose storage is the caller's memory at `data`, without
 * a copy: the contiguous row-major bytes of `shape` (ndim dimensions, as
 * cudl_tensor_create; every dimension >= 1: an empty shape has nothing to
 * wrap). cudl_tensor_data returns `data`; operators read and write it in
 * place, as input or output, and the caller sees their results there.
 *
 * What the memory must be: on a CPU context, host memory (not checked:
 * nothing tells it apart from device memory there); on a CUDA
 * context, device memory (cudaMalloc, cudaMallocAsync, a pool) or managed
 * memory of the context's GPU, checked with cudaPointerGetAttributes at
 * both ends of the range: host memory, page-locked included, and another
 * GPU's memory give CUDL_ERR_INVALID_ARGUMENT saying which. `data` must be
 * aligned to CUDL_TENSOR_WRAP_ALIGNMENT bytes (CUDL_ERR_INVALID_ARGUMENT).
 * The byte size is checked for overflow (CUDL_ERR_SHAPE); that the
 * allocation holds that many bytes is the caller's promise.
 *
 * Ownership: the caller keeps the memory. cudl_tensor_destroy of the
 * tensor, and of every view made from it (reshape, flatten, narrow), never
 * frees it; the memory must stay valid until the last of them is
 * destroyed, and on a CUDA context until the work queued on it has run
 * (cudl_context_synchronize, or an event the caller orders after it). It
 * is not counted by cudl_context_memory_stats nor against the memory
 * limit. Access from the caller's side while cudl works on it is ordered
 * as any other work of the context: see cudl_context_create_cuda_stream.
 *
 * Errors as cudl_tensor_create's, and CUDL_ERR_INVALID_ARGUMENT for a NULL
 * data. On failure *out is NULL.
 */
CUDL_API cudl_status cudl_tensor_wrap(cudl_context *ctx, cudl_dtype dtype,
                                      int ndim, const int64_t *shape,
                                      void *data, cudl_tensor **out);

/* ---- queries (all accept NULL and then return 0 / NULL) ---- */
CUDL_API cudl_context *cudl_tensor_context(const cudl_tensor *t);
CUDL_API cudl_device_kind cudl_tensor_device(const cudl_tensor *t);
CUDL_API cudl_dtype cudl_tensor_dtype(const cudl_tensor *t);
CUDL_API int cudl_tensor_ndim(const cudl_tensor *t);
/** Dimension `axis`; a negative axis counts from the end (-1 = last).
 *  -1 when the axis is out of range or t is NULL. */
CUDL_API int64_t cudl_tensor_dim(const cudl_tensor *t, int axis);
/** The shape array (ndim entries), owned by the tensor. */
CUDL_API const int64_t *cudl_tensor_shape(const cudl_tensor *t);
CUDL_API int64_t cudl_tensor_numel(const cudl_tensor *t);
CUDL_API size_t cudl_tensor_nbytes(const cudl_tensor *t);
/** The tensor's layout; CUDL_LAYOUT_NCHW for NULL. */
CUDL_API cudl_layout cudl_tensor_layout(const cudl_tensor *t);

/**
 * Read t's bytes in another layout from now on: nothing moves, so the
 * values change meaning (use cudl_tensor_convert to move data between
 * layouts). For a tensor just created, or filled from host memory already
 * in that order. t must be 4-D for CUDL_LAYOUT_NHWC (CUDL_ERR_SHAPE);
 * CUDL_ERR_INVALID_ARGUMENT for an unknown layout. Views made from t later
 * (cudl_tensor_narrow) keep it.
 */
CUDL_API cudl_status cudl_tensor_set_layout(cudl_tensor *t, cudl_layout layout);

/** Raw storage: a host pointer for CPU tensors, a device pointer for CUDA
 *  tensors; NULL for an empty tensor. For programs that hand the memory to
 *  other libraries; ordering with queued work is the caller's business. */
CUDL_API void *cudl_tensor_data(cudl_tensor *t);

/* ---- views: new shapes on the same storage, without copying ---- */

/**
 * A new tensor *out of shape `shape` (ndim dimensions) on src's storage:
 * nothing is copied, and writes through either tensor are seen through the
 * other. The element count must equal src's (CUDL_ERR_SHAPE otherwise); one
 * dimension may be -1, inferred from the others (torch.reshape's rule).
 * Tensors are contiguous, so every reshape is a view. The view is an
 * independent handle: destroy it with cudl_tensor_destroy; the storage is
 * released when the last tensor sharing it is destroyed, in any order. On
 * failure *out is NULL.
 */
/* A channels-last src gives CUDL_ERR_SHAPE: its bytes are not in the
 * order a reshape would read them (convert it to NCHW first). */
CUDL_API cudl_status cudl_tensor_reshape(const cudl_tensor *src, int ndim,
                                         const int64_t *shape,
                                         cudl_tensor **out);

/**
 * A view of src with dimensions start_axis..end_axis (inclusive; negative
 * counts from the end) merged into one, as torch.flatten(src, start, end):
 * flatten(x, 1, -1) turns [N, C, H, W] into [N, C*H*W]. A scalar counts as
 * one dimension. CUDL_ERR_INVALID_ARGUMENT for axes outside the tensor or
 * start after end. Ownership as for cudl_tensor_reshape; a channels-last
 * src gives CUDL_ERR_SHAPE, as there.
 */
CUDL_API cudl_status cudl_tensor_flatten(const cudl_tensor *src, int start_axis,
                                         int end_axis, cudl_tensor **out);

/**
 * A view of rows [start, start + length) of src's first dimension: the
 * same storage (tensors are contiguous, so the rows are too), shape
 * [length, rest of src's shape], as src.narrow(0, start, length) in
 * PyTorch. For the partial last batch of an epoch. src must have at least
 * one dimension; 0 <= start, 0 <= length, start + length <= dim 0
 * (CUDL_ERR_SHAPE). Ownership as for cudl_tensor_reshape. The view keeps
 * src's layout: the rows of a channels-last tensor are contiguous too.
 */
CUDL_API cudl_status cudl_tensor_narrow(const cudl_tensor *src, int64_t start,
                                        int64_t length, cudl_tensor **out);

/* ---- copies ---- */

/**
 * Copy nbytes (must equal cudl_tensor_nbytes(dst)) from host memory into
 * dst. Returns when src may be reused.
 */
CUDL_API cudl_status cudl_tensor_copy_from_host(cudl_tensor *dst,
                                                const void *src, size_t nbytes);

/**
 * Copy src's contents into host memory (nbytes must equal
 * cudl_tensor_nbytes(src)). Waits for work queued on src's device and
 * returns when dst holds the data.
 */
CUDL_API cudl_status cudl_tensor_copy_to_host(const cudl_tensor *src, void *dst,
                                              size_t nbytes);

/**
 * Copy src into dst: same dtype, shape and layout (else CUDL_ERR_DTYPE,
 * CUDL_ERR_SHAPE; cudl_tensor_convert changes either), any devices (CPU<->CUDA,
 * CUDA<->CUDA on the same or another GPU). Errors are recorded in dst's
 * context. When the tensors belong to different contexts, src's context is
 * synchronised first, so the copy sees all work queued before it; work
 * queued on src's context afterwards (writes, destroying src) is ordered
 * after the copy.
 */
CUDL_API cudl_status cudl_tensor_copy(cudl_tensor *dst, const cudl_tensor *src);

/**
 * Convert src into dst, a tensor of the same shape and context in another
 * (or the same) float dtype, f32, bf16 or f16, and layout: element
 * [n, c, h, w] of dst gets element [n, c, h, w] of src, so converting
 * between CUDL_LAYOUT_NCHW and CUDL_LAYOUT_NHWC transposes the bytes. Rounds to nearest with ties
 * to even, as the GPU does; NaN stays NaN (in 16 bits the canonical 0x7fff,
 * the GPU's), a value beyond the dtype's range
 * becomes an infinity, and f16 keeps subnormals. The results are the same
 * bits on every device. dst and src must not overlap unless they are the
 * same elements (converting a tensor into itself is allowed):
 * CUDL_ERR_INVALID_ARGUMENT (a change of layout needs distinct tensors).
 * CUDL_ERR_DTYPE for an integer tensor,
 * CUDL_ERR_SHAPE for different shapes, CUDL_ERR_DEVICE_MISMATCH for
 * different contexts (convert, then cudl_tensor_copy).
 */
CUDL_API cudl_status cudl_tensor_convert(cudl_tensor *dst,
                                         const cudl_tensor *src);

/* ---- initialisation (f32; fill also bf16 and f16) ---- */

/** Set every element to value (rounded to the tensor's float dtype). */
CUDL_API cudl_status cudl_tensor_fill(cudl_tensor *t, float value);

/**
 * Uniform numbers in [low, high) from the context's Philox4x32-10 stream.
 * Element i takes 32-bit word i % 4 of the block at counter
 * (offset + i / 4); the context's offset then advances by ceil(numel / 4).
 * Bit-identical on the CPU and CUDA for the same seed and offset.
 * Requires finite low <= high with a finite high - low, else
 * CUDL_ERR_INVALID_ARGUMENT (the tensor and the offset are left unchanged).
 */
CUDL_API cudl_status cudl_tensor_uniform(cudl_tensor *t, float low, float high);

/**
 * Normal numbers N(mean, stddev^2) by the Box-Muller transform on the same
 * counter layout as cudl_tensor_uniform (elements 2k and 2k+1 of a block
 * share one pair of uniforms). The transform is computed in double and
 * rounded once, so CPU and CUDA agree to the last bit except, rarely
 * (~1e-8 per value), by one unit in the last place where their libm differs.
 * Requires finite mean and a finite stddev >= 0, else
 * CUDL_ERR_INVALID_ARGUMENT (the tensor and the offset are left unchanged).
 */
CUDL_API cudl_status cudl_tensor_normal(cudl_tensor *t, float mean,
                                        float stddev);

CUDL_EXTERN_C_END

#endif /* CUDL_TENSOR_H */
