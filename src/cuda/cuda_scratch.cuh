/*
 * cuda_scratch.cuh - temporary device memory for one entry of the CUDA
 * backend (block partial sums and the like), for the C++ entries of
 * the kernels/ files:
 *
 *   Scratch<float> partial(s);
 *   CUDL_CUDA_TRY(ctx, partial.alloc(ctx, count));
 *   kernel<<<grid, block, 0, s->stream>>>(..., partial.get());
 *   return CUDL_CUDA_LAUNCHED(ctx);
 *
 * The memory comes from the context's pool through cudl__cuda_pool_alloc,
 * so the memory limit and fault injection see it as any other allocation,
 * and a refusal reaches cudl__cuda_error (through CUDL_CUDA_TRY) with the
 * limit's message. It goes back with cudaFreeAsync when the Scratch goes
 * out of scope, whichever way the entry returns: stream-ordered, after the
 * kernels queued to use it, so neither end synchronises the host.
 */
#ifndef CUDL_CUDA_SCRATCH_CUH
#define CUDL_CUDA_SCRATCH_CUH

#include <stddef.h>

#include "cuda/cuda_internal.h"

namespace {  // a copy per kernel file: no symbol outside it

template <class T>
class Scratch {
 public:
  explicit Scratch(cudl_cuda_state *s) : s_(s) {}
  Scratch(const Scratch &) = delete;
  Scratch &operator=(const Scratch &) = delete;
  ~Scratch() {
    // A failure here cannot be reported (the entry has returned); clear
    // it, so the next entry does not report it as its own.
    if (p_ != nullptr && cudaFreeAsync(p_, s_->stream) != cudaSuccess)
      (void)cudaGetLastError();
  }

  // `count` elements of T, once per Scratch.
  cudaError_t alloc(cudl_context *ctx, size_t count) {
    void *p = nullptr;
    const cudaError_t err =
        cudl__cuda_pool_alloc(ctx, s_, &p, count * sizeof(T));
    if (err == cudaSuccess) p_ = static_cast<T *>(p);
    return err;
  }

  T *get() const { return p_; }

 private:
  cudl_cuda_state *s_;
  T *p_ = nullptr;
};

}  // namespace

#endif /* CUDL_CUDA_SCRATCH_CUH */
