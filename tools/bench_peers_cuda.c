/* bench_peers_cuda.c - what a GPU run of `cudl bench` measures beside cudl:
 * the copy rate (cudaMemcpyAsync device to device), cuBLAS's sgemm, and
 * cuDNN's own activations, pooling and batch norm on the same shapes as
 * cudl's hand-written kernels. Each peer runs on its own stream and
 * handle, timed with its own CUDA events by the program's loop
 * (bench_time, lent through the entry).
 *
 * A module of its own (libcudl_bench_cuda.so.M.N, beside libcudl), which
 * the program loads for a GPU run (bench_peers_load.c): linked into the
 * program, cudart, cuBLAS and cuDNN would stop `cudl` from starting on a
 * host without them. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cublas_v2.h>
#include <cuda_runtime_api.h>
#include <cudnn.h>

#include "bench.h"
#include "bench_peers.h"

/* The program's timing loop, set by the entry. */
static bench_time_fn program_time;
#define bench_time program_time

/* Record the failing call's text in the log line the caller prints. */
static cudl_status cuda_failed(cudl_context *ctx, const char *what,
                               const char *detail) {
  (void)ctx;
  fprintf(stderr, "cudl bench: %s failed: %s\n", what, detail);
  return CUDL_ERR_CUDA;
}

#  define TRY_CUDA(call)                                          \
    do {                                                          \
      cudaError_t e_ = (call);                                    \
      if (e_ != cudaSuccess) {                                    \
        status = cuda_failed(ctx, #call, cudaGetErrorString(e_)); \
        goto done;                                                \
      }                                                           \
    } while (0)
#  define TRY_CUDNN(call)                                          \
    do {                                                           \
      cudnnStatus_t e_ = (call);                                   \
      if (e_ != CUDNN_STATUS_SUCCESS) {                            \
        status = cuda_failed(ctx, #call, cudnnGetErrorString(e_)); \
        goto done;                                                 \
      }                                                            \
    } while (0)
#  define TRY_CUBLAS(call)                                           \
    do {                                                             \
      cublasStatus_t e_ = (call);                                    \
      if (e_ != CUBLAS_STATUS_SUCCESS) {                             \
        status = cuda_failed(ctx, #call, cublasGetStatusString(e_)); \
        goto done;                                                   \
      }                                                              \
    } while (0)

/* A clock of CUDA events on a stream of our own. */
typedef struct stream_clock {
  cudaStream_t stream;
  cudaEvent_t start, end;
} stream_clock;

static cudl_status stream_clock_start(void *self) {
  stream_clock *c = (stream_clock *)self;
  return cudaEventRecord(c->start, c->stream) == cudaSuccess ? CUDL_OK
                                                             : CUDL_ERR_CUDA;
}

static cudl_status stream_clock_stop(void *self, double *ms) {
  stream_clock *c = (stream_clock *)self;
  float elapsed = 0.0f;
  if (cudaEventRecord(c->end, c->stream) != cudaSuccess ||
      cudaEventSynchronize(c->end) != cudaSuccess ||
      cudaEventElapsedTime(&elapsed, c->start, c->end) != cudaSuccess)
    return CUDL_ERR_CUDA;
  *ms = (double)elapsed;
  return CUDL_OK;
}

/* Everything a peer needs: the stream and clock, the library handles and
 * the buffers, released together. */
typedef struct peer {
  stream_clock sc;
  bench_clock clock;
  cudnnHandle_t cudnn;
  cublasHandle_t cublas;
  cudnnTensorDescriptor_t x_desc, y_desc, bn_desc;
  cudnnActivationDescriptor_t act;
  cudnnPoolingDescriptor_t pool;
  void *buf[8];
  /* what the call runs */
  int op, backward, n;
  size_t bytes;
} peer;

static cudl_status peer_open(cudl_context *ctx, peer *p) {
  cudl_status status = CUDL_OK;
  memset(p, 0, sizeof *p);
  /* Queued cudl work must not overlap the peer's timing. */
  status = cudl_context_synchronize(ctx);
  if (status != CUDL_OK) return status;
  TRY_CUDA(cudaSetDevice(cudl_context_device_index(ctx)));
  TRY_CUDA(cudaStreamCreateWithFlags(&p->sc.stream, cudaStreamNonBlocking));
  TRY_CUDA(cudaEventCreate(&p->sc.start));
  TRY_CUDA(cudaEventCreate(&p->sc.end));
  p->clock.start = stream_clock_start;
  p->clock.stop_ms = stream_clock_stop;
  p->clock.self = &p->sc;
done:
  return status;
}

static void peer_close(peer *p) {
  int i;
  if (p->sc.stream != NULL) cudaStreamSynchronize(p->sc.stream);
  for (i = 0; i < 8; ++i)
    if (p->buf[i] != NULL) cudaFree(p->buf[i]);
  if (p->act != NULL) cudnnDestroyActivationDescriptor(p->act);
  if (p->pool != NULL) cudnnDestroyPoolingDescriptor(p->pool);
  if (p->x_desc != NULL) cudnnDestroyTensorDescriptor(p->x_desc);
  if (p->y_desc != NULL) cudnnDestroyTensorDescriptor(p->y_desc);
  if (p->bn_desc != NULL) cudnnDestroyTensorDescriptor(p->bn_desc);
  if (p->cudnn != NULL) cudnnDestroy(p->cudnn);
  if (p->cublas != NULL) cublasDestroy(p->cublas);
  if (p->sc.start != NULL) cudaEventDestroy(p->sc.start);
  if (p->sc.end != NULL) cudaEventDestroy(p->sc.end);
  if (p->sc.stream != NULL) cudaStreamDestroy(p->sc.stream);
  (void)cudaGetLastError();
  memset(p, 0, sizeof *p);
}

/* Buffer k of `bytes`, filled with a small non-zero pattern (memset bytes
 * 0x3c give floats of about 0.0115: no denormals, no NaN). */
static cudaError_t peer_buffer(peer *p, int k, size_t bytes) {
  cudaError_t e = cudaMalloc(&p->buf[k], bytes);
  if (e == cudaSuccess)
    e = cudaMemsetAsync(p->buf[k], 0x3c, bytes, p->sc.stream);
  return e;
}

static cudl_status copy_call(void *arg) {
  peer *p = (peer *)arg;
  return cudaMemcpyAsync(p->buf[1], p->buf[0], p->bytes,
                         cudaMemcpyDeviceToDevice, p->sc.stream) == cudaSuccess
             ? CUDL_OK
             : CUDL_ERR_CUDA;
}

cudl_status bench_cuda_copy_ceiling(cudl_context *ctx, size_t bytes,
                                    const bench_settings *settings,
                                    bench_timing *timing, double *gbps) {
  peer p;
  cudl_status status = peer_open(ctx, &p);
  if (status != CUDL_OK) goto done;
  p.bytes = bytes;
  TRY_CUDA(peer_buffer(&p, 0, bytes));
  TRY_CUDA(peer_buffer(&p, 1, bytes));
  status = bench_time(&p.clock, copy_call, &p, settings, timing);
  if (status == CUDL_OK) *gbps = 2.0 * (double)bytes / timing->median_ms * 1e-6;
done:
  peer_close(&p);
  return status;
}

static cudl_status sgemm_call(void *arg) {
  peer *p = (peer *)arg;
  const float one = 1.0f, zero = 0.0f;
  return cublasSgemm(p->cublas, CUBLAS_OP_N, CUBLAS_OP_N, p->n, p->n, p->n,
                     &one, (const float *)p->buf[0], p->n,
                     (const float *)p->buf[1], p->n, &zero, (float *)p->buf[2],
                     p->n) == CUBLAS_STATUS_SUCCESS
             ? CUDL_OK
             : CUDL_ERR_CUDA;
}

cudl_status bench_cuda_gemm_ceiling(cudl_context *ctx, int n,
                                    const bench_settings *settings,
                                    bench_timing *timing, double *gflops) {
  peer p;
  size_t bytes = (size_t)n * (size_t)n * sizeof(float);
  cudl_status status = peer_open(ctx, &p);
  if (status != CUDL_OK) goto done;
  p.n = n;
  TRY_CUBLAS(cublasCreate(&p.cublas));
  TRY_CUBLAS(cublasSetStream(p.cublas, p.sc.stream));
  /* Pedantic f32 unless TF32 is asked for, as cudl's own products. */
  TRY_CUBLAS(cublasSetMathMode(p.cublas, settings->tf32
                                             ? CUBLAS_TF32_TENSOR_OP_MATH
                                             : CUBLAS_PEDANTIC_MATH));
  TRY_CUDA(peer_buffer(&p, 0, bytes));
  TRY_CUDA(peer_buffer(&p, 1, bytes));
  TRY_CUDA(peer_buffer(&p, 2, bytes));
  status = bench_time(&p.clock, sgemm_call, &p, settings, timing);
  if (status == CUDL_OK)
    *gflops = 2.0 * (double)n * n * n / timing->median_ms * 1e-6;
done:
  peer_close(&p);
  return status;
}

/* Buffers of a cuDNN case: 0 x, 1 y, 2 dy, 3 dx, 4 scale, 5 bias or
 * dscale, 6 mean / running mean, 7 var / running var; saved statistics
 * share 6 and 7 with the running ones (the timing does not depend on the
 * values). */
static cudl_status cudnn_call(void *arg) {
  peer *p = (peer *)arg;
  const float one = 1.0f, zero = 0.0f;
  void **b = p->buf;
  cudnnStatus_t e;
  switch ((bench_cudnn_op)p->op) {
    case BENCH_CUDNN_RELU:
    case BENCH_CUDNN_SIGMOID:
    case BENCH_CUDNN_TANH:
      e = p->backward
              ? cudnnActivationBackward(p->cudnn, p->act, &one, p->x_desc, b[1],
                                        p->x_desc, b[2], p->x_desc, b[0], &zero,
                                        p->x_desc, b[3])
              : cudnnActivationForward(p->cudnn, p->act, &one, p->x_desc, b[0],
                                       &zero, p->x_desc, b[1]);
      break;
    case BENCH_CUDNN_MAX_POOL:
    case BENCH_CUDNN_AVG_POOL:
      e = p->backward ? cudnnPoolingBackward(p->cudnn, p->pool, &one, p->y_desc,
                                             b[1], p->y_desc, b[2], p->x_desc,
                                             b[0], &zero, p->x_desc, b[3])
                      : cudnnPoolingForward(p->cudnn, p->pool, &one, p->x_desc,
                                            b[0], &zero, p->y_desc, b[1]);
      break;
    case BENCH_CUDNN_BATCHNORM:
      e = p->backward
              ? cudnnBatchNormalizationBackward(
                    p->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, &one, &zero,
                    p->x_desc, b[0], p->x_desc, b[2], p->x_desc, b[3],
                    p->bn_desc, b[4], b[5], b[5], 1e-5, b[6], b[7])
              : cudnnBatchNormalizationForwardTraining(
                    p->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, p->x_desc,
                    b[0], p->x_desc, b[1], p->bn_desc, b[4], b[5], 0.1, b[6],
                    b[7], 1e-5, b[6], b[7]);
      break;
    case BENCH_CUDNN_BATCHNORM_INFERENCE:
      e = cudnnBatchNormalizationForwardInference(
          p->cudnn, CUDNN_BATCHNORM_SPATIAL, &one, &zero, p->x_desc, b[0],
          p->x_desc, b[1], p->bn_desc, b[4], b[5], b[6], b[7], 1e-5);
      break;
    default:
      return CUDL_ERR_INVALID_ARGUMENT;
  }
  return e == CUDNN_STATUS_SUCCESS ? CUDL_OK : CUDL_ERR_CUDA;
}

cudl_status bench_cudnn_time(cudl_context *ctx, bench_cudnn_op op, int backward,
                             const int64_t shape[4],
                             const bench_settings *settings,
                             bench_timing *out) {
  peer p;
  const int n = (int)shape[0], c = (int)shape[1], h = (int)shape[2],
            w = (int)shape[3];
  const size_t x_bytes = (size_t)n * c * h * w * sizeof(float);
  const size_t y_bytes =
      (op == BENCH_CUDNN_MAX_POOL || op == BENCH_CUDNN_AVG_POOL) ? x_bytes / 4
                                                                 : x_bytes;
  int k;
  cudl_status status = peer_open(ctx, &p);
  if (status != CUDL_OK) goto done;
  p.op = (int)op;
  p.backward = backward;
  TRY_CUDNN(cudnnCreate(&p.cudnn));
  TRY_CUDNN(cudnnSetStream(p.cudnn, p.sc.stream));
  TRY_CUDNN(cudnnCreateTensorDescriptor(&p.x_desc));
  TRY_CUDNN(cudnnSetTensor4dDescriptor(p.x_desc, CUDNN_TENSOR_NCHW,
                                       CUDNN_DATA_FLOAT, n, c, h, w));
  TRY_CUDNN(cudnnCreateTensorDescriptor(&p.y_desc));
  TRY_CUDNN(cudnnSetTensor4dDescriptor(
      p.y_desc, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c,
      y_bytes == x_bytes ? h : h / 2, y_bytes == x_bytes ? w : w / 2));
  TRY_CUDNN(cudnnCreateTensorDescriptor(&p.bn_desc));
  TRY_CUDNN(cudnnDeriveBNTensorDescriptor(p.bn_desc, p.x_desc,
                                          CUDNN_BATCHNORM_SPATIAL));
  if (op == BENCH_CUDNN_RELU || op == BENCH_CUDNN_SIGMOID ||
      op == BENCH_CUDNN_TANH) {
    TRY_CUDNN(cudnnCreateActivationDescriptor(&p.act));
    TRY_CUDNN(cudnnSetActivationDescriptor(
        p.act,
        op == BENCH_CUDNN_RELU      ? CUDNN_ACTIVATION_RELU
        : op == BENCH_CUDNN_SIGMOID ? CUDNN_ACTIVATION_SIGMOID
                                    : CUDNN_ACTIVATION_TANH,
        CUDNN_PROPAGATE_NAN, 0.0));
  }
  if (op == BENCH_CUDNN_MAX_POOL || op == BENCH_CUDNN_AVG_POOL) {
    TRY_CUDNN(cudnnCreatePoolingDescriptor(&p.pool));
    TRY_CUDNN(cudnnSetPooling2dDescriptor(
        p.pool,
        op == BENCH_CUDNN_MAX_POOL
            ? CUDNN_POOLING_MAX
            : CUDNN_POOLING_AVERAGE_COUNT_INCLUDE_PADDING,
        CUDNN_PROPAGATE_NAN, 2, 2, 0, 0, 2, 2));
  }
  TRY_CUDA(peer_buffer(&p, 0, x_bytes));
  TRY_CUDA(peer_buffer(&p, 1, y_bytes));
  TRY_CUDA(peer_buffer(&p, 2, y_bytes));
  TRY_CUDA(peer_buffer(&p, 3, x_bytes));
  for (k = 4; k < 8; ++k)
    TRY_CUDA(peer_buffer(&p, k, (size_t)c * sizeof(float)));
  /* A backward pass reads what its forward wrote (max pooling's y). */
  if (backward) {
    p.backward = 0;
    status = cudnn_call(&p);
    p.backward = 1;
    if (status != CUDL_OK) goto done;
  }
  status = bench_time(&p.clock, cudnn_call, &p, settings, out);
done:
  peer_close(&p);
  return status;
}

/* The one symbol the module exports (tools/CMakeLists.txt). */
__attribute__((visibility("default"))) const bench_cuda_peers *
cudl_bench_cuda_entry(bench_time_fn time) {
  static const bench_cuda_peers peers = {
      bench_cuda_copy_ceiling, bench_cuda_gemm_ceiling, bench_cudnn_time};
  program_time = time;
  return &peers;
}
