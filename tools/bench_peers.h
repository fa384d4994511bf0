/* bench_peers.h - what `cudl bench` measures beside cudl: the copy and
 * GEMM ceilings of the device (bench_peers_cpu.c, bench_peers_cuda.c) and
 * cuDNN's own operators on a GPU (bench_peers_cuda.c). They time with
 * bench.h's loop, which knows nothing of them. */
#ifndef CUDL_TOOLS_BENCH_PEERS_H
#define CUDL_TOOLS_BENCH_PEERS_H

#include <stddef.h>
#include <stdint.h>

#include <cudl/cudl.h>

#include "bench.h"

/* ---- ceilings, measured in the run ---- */

/* The device-specific halves of the two below (bench_peers_cpu.c,
 * bench_peers_cuda.c). */
cudl_status bench_cpu_copy_ceiling(cudl_context *ctx, size_t bytes,
                                   const bench_settings *settings,
                                   bench_timing *timing, double *gbps);
cudl_status bench_cpu_gemm_ceiling(cudl_context *ctx, int n,
                                   const bench_settings *settings,
                                   bench_timing *timing, double *gflops);
cudl_status bench_cuda_copy_ceiling(cudl_context *ctx, size_t bytes,
                                    const bench_settings *settings,
                                    bench_timing *timing, double *gbps);
cudl_status bench_cuda_gemm_ceiling(cudl_context *ctx, int n,
                                    const bench_settings *settings,
                                    bench_timing *timing, double *gflops);

/* The copy rate of `bytes` (bytes read + written per second, in GB/s) on
 * ctx's device: a split memcpy on the CPU, cudaMemcpyAsync device to device
 * on a GPU. */
static inline cudl_status bench_copy_ceiling(cudl_context *ctx, size_t bytes,
                                             const bench_settings *settings,
                                             bench_timing *timing,
                                             double *gbps) {
  return cudl_context_device(ctx) == CUDL_DEVICE_CUDA
             ? bench_cuda_copy_ceiling(ctx, bytes, settings, timing, gbps)
             : bench_cpu_copy_ceiling(ctx, bytes, settings, timing, gbps);
}

/* The f32 GEMM rate of a square n x n x n product: dnnl_sgemm on the CPU,
 * cublasSgemm on a GPU (TF32 per settings). */
static inline cudl_status bench_gemm_ceiling(cudl_context *ctx, int n,
                                             const bench_settings *settings,
                                             bench_timing *timing,
                                             double *gflops) {
  return cudl_context_device(ctx) == CUDL_DEVICE_CUDA
             ? bench_cuda_gemm_ceiling(ctx, n, settings, timing, gflops)
             : bench_cpu_gemm_ceiling(ctx, n, settings, timing, gflops);
}

/* ---- cuDNN's own operators on a GPU, for comparison (bench_peers_cuda.c) */

typedef enum bench_cudnn_op {
  BENCH_CUDNN_RELU,
  BENCH_CUDNN_SIGMOID,
  BENCH_CUDNN_TANH,
  BENCH_CUDNN_MAX_POOL,  /* 2x2, stride 2 */
  BENCH_CUDNN_AVG_POOL,  /* 2x2, stride 2 */
  BENCH_CUDNN_BATCHNORM, /* training statistics, spatial */
  BENCH_CUDNN_BATCHNORM_INFERENCE
} bench_cudnn_op;

/* 1 when cuDNN can be called itself: the GPU peers' module loads (a CUDA
 * build on a host with the CUDA libraries); otherwise the reason has been
 * printed once to stderr. */
int bench_cudnn_compiled(void);

/* Time cuDNN's `op` forward (backward nonzero: backward) on x [n, c, h, w],
 * with buffers allocated here on ctx's GPU. ctx is synchronised first;
 * cuDNN runs on its own stream and handle. */
cudl_status bench_cudnn_time(cudl_context *ctx, bench_cudnn_op op, int backward,
                             const int64_t shape[4],
                             const bench_settings *settings, bench_timing *out);

/* ---- the GPU peers' module (bench_peers_cuda.c, bench_peers_load.c) ----
 * The three GPU entries above live in libcudl_bench_cuda.so.M.N, beside
 * libcudl, loaded on first use; its entry takes the program's timing loop
 * and returns them. */
typedef cudl_status (*bench_time_fn)(const bench_clock *clock, bench_call call,
                                     void *arg, const bench_settings *settings,
                                     bench_timing *out);
typedef struct bench_cuda_peers {
  cudl_status (*copy_ceiling)(cudl_context *ctx, size_t bytes,
                              const bench_settings *settings,
                              bench_timing *timing, double *gbps);
  cudl_status (*gemm_ceiling)(cudl_context *ctx, int n,
                              const bench_settings *settings,
                              bench_timing *timing, double *gflops);
  cudl_status (*cudnn_time)(cudl_context *ctx, bench_cudnn_op op, int backward,
                            const int64_t shape[4],
                            const bench_settings *settings, bench_timing *out);
} bench_cuda_peers;
#define BENCH_CUDA_PEERS_ENTRY "cudl_bench_cuda_entry"
typedef const bench_cuda_peers *(*bench_cuda_peers_entry_fn)(bench_time_fn time);
const bench_cuda_peers *cudl_bench_cuda_entry(bench_time_fn time);

#endif /* CUDL_TOOLS_BENCH_PEERS_H */
