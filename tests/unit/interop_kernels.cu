// interop_kernels.cu - the test program's own kernels (test_cuda_interop):
// work a program that already uses CUDA queues on its stream around cudl's.
// Compiled in CUDA builds only (tests/CMakeLists.txt).
#include <cuda_runtime_api.h>

#include <cstdint>

namespace {

__device__ uint64_t NowNs() {
  uint64_t t;
  asm volatile("mov.u64 %0, %%globaltimer;" : "=l"(t));
  return t;
}

// Thread 0 holds the whole block until the host sets *open (host-mapped
// memory) or timeout_ns pass (then *timed_out = 1); then the block writes
// x[i] = base + i * step. Everything queued behind it on the stream waits
// for the host, which is how the test forces the interleaving it checks.
__global__ void GateThenFill(const volatile int *open, int *timed_out, float *x,
                             int64_t n, float base, float step,
                             uint64_t timeout_ns) {
  if (threadIdx.x == 0) {
    const uint64_t start = NowNs();
    while (*open == 0) {
      if (NowNs() - start > timeout_ns) {
        *timed_out = 1;
        __threadfence_system();
        break;
      }
    }
  }
  __syncthreads();
  for (int64_t i = threadIdx.x; i < n; i += blockDim.x)
    x[i] = __fadd_rn(base, __fmul_rn(static_cast<float>(i), step));
}

__global__ void Affine(const float *in, float *out, int64_t n, float a,
                       float b) {
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (i < n) out[i] = __fadd_rn(__fmul_rn(a, in[i]), b);
}

}  // namespace

extern "C" cudaError_t cudl_test_gate_then_fill(
    cudaStream_t stream, const volatile int *open, int *timed_out, float *x,
    int64_t n, float base, float step, uint64_t timeout_ns) {
  GateThenFill<<<1, 256, 0, stream>>>(open, timed_out, x, n, base, step,
                                      timeout_ns);
  return cudaGetLastError();
}

extern "C" cudaError_t cudl_test_affine(cudaStream_t stream, const float *in,
                                        float *out, int64_t n, float a,
                                        float b) {
  const unsigned blocks = static_cast<unsigned>((n + 255) / 256);
  Affine<<<blocks, 256, 0, stream>>>(in, out, n, a, b);
  return cudaGetLastError();
}
