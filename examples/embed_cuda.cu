/*
 * embed_cuda.cu - cudl inside a program that already uses CUDA: the
 * program owns the stream and the device buffers, makes its input with a
 * kernel of its own, has cudl run a model on them, and goes on with the
 * result on its stream. Nothing is copied between the program and cudl,
 * and nothing waits for the GPU until the program reads its answer (but
 * the first forward of a shape, while cuDNN times its algorithms once).
 *
 *   embed_cuda [BATCH]     (1 to 256 images, default 8)
 *
 * 1. the program: a stream, buffers (cudaMalloc), a kernel that writes a
 *    batch of 28x28 images into its buffer;
 * 2. cudl: a context on that stream (cudl_context_create_cuda_stream), the
 *    program's buffers as tensors (cudl_tensor_wrap), the zoo's small CNN
 *    compiled for inference, its forward, and a softmax written straight
 *    into the program's probability buffer;
 * 3. the program: its own argmax kernel on the probabilities, then one
 *    copy of the answer to the host and the only wait;
 * 4. cudl's objects go (the program's buffers are not freed with the
 *    tensors that wrapped them), then the program's.
 * The weights are random here (cudl_model_init); a real program loads its
 * own (cudl_model_load_file_inference, docs/deploy.md).
 *
 * Exits 0 on success, 1 on a failure, 77 when there is no usable GPU (or
 * cudl was built without CUDA), which ctest counts as skipped.
 *
 * Build against an installed cudl (a CUDA build) with nvcc:
 *   nvcc embed_cuda.cu $(pkg-config --cflags --libs cudl) -o embed_cuda
 * or with CMake (examples/CMakeLists.txt).
 */
#include <cuda_runtime_api.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/cudl.h>

#define SIDE 28
#define CLASSES 10
#define SKIP 77

/* The program's input: image b is a bright disc whose radius grows with
 * b on a dark background, already normalised to [-1, 1]. */
__global__ void draw_images(float *images, int batch) {
  const int i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i >= batch * SIDE * SIDE) return;
  const int b = i / (SIDE * SIDE), y = (i / SIDE) % SIDE, x = i % SIDE;
  const float dy = (float)y - SIDE / 2, dx = (float)x - SIDE / 2;
  const float radius = 3.0f + (float)(b % 10);
  images[i] = dx * dx + dy * dy <= radius * radius ? 1.0f : -1.0f;
}

/* The program's use of cudl's result: the most likely class per row. */
__global__ void argmax_rows(const float *probs, int rows, int *label,
                            float *best) {
  const int r = blockIdx.x * blockDim.x + threadIdx.x;
  if (r >= rows) return;
  int k_best = 0;
  for (int k = 1; k < CLASSES; ++k)
    if (probs[r * CLASSES + k] > probs[r * CLASSES + k_best]) k_best = k;
  label[r] = k_best;
  best[r] = probs[r * CLASSES + k_best];
}

static int cuda_failed(cudaError_t err, const char *what) {
  if (err == cudaSuccess) return 0;
  fprintf(stderr, "embed_cuda: %s: %s\n", what, cudaGetErrorString(err));
  return 1;
}

static int cudl_failed(cudl_context *ctx, cudl_status s, const char *what) {
  if (s == CUDL_OK) return 0;
  fprintf(stderr, "embed_cuda: %s: %s (%s)\n", what, cudl_status_string(s),
          cudl_context_last_error(ctx));
  return 1;
}

/* Device buffers and the stream: the program's, made before cudl and
 * released after it. */
struct program {
  cudaStream_t stream;
  float *images, *probs, *best;
  int *labels;
  int *host_labels; /* page-locked, for the one asynchronous read-back */
  float *host_best;
};

/* cudl's part: a context on the program's stream, the program's buffers
 * as tensors, the model. */
struct engine {
  cudl_context *ctx;
  cudl_model *model;
  cudl_tensor *images, *probs;
};

static int engine_open(struct engine *e, struct program *p, int batch) {
  const int64_t image_shape[] = {batch, 1, SIDE, SIDE};
  const int64_t prob_shape[] = {batch, CLASSES};
  cudl_status s =
      cudl_context_create_cuda_stream(0, (void *)p->stream, &e->ctx);
  if (s != CUDL_OK) {
    fprintf(stderr, "embed_cuda: cannot create a context on the stream: %s\n",
            cudl_status_string(s));
    return 1;
  }
  return cudl_failed(e->ctx,
                     cudl_tensor_wrap(e->ctx, CUDL_DTYPE_F32, 4, image_shape,
                                      p->images, &e->images),
                     "wrapping the images") ||
         cudl_failed(e->ctx,
                     cudl_tensor_wrap(e->ctx, CUDL_DTYPE_F32, 2, prob_shape,
                                      p->probs, &e->probs),
                     "wrapping the probabilities") ||
         cudl_failed(e->ctx,
                     cudl_zoo_small_cnn(e->ctx, 1, SIDE, SIDE, CLASSES, 0.0f,
                                        &e->model),
                     "building the model") ||
         cudl_failed(e->ctx, cudl_model_compile_inference(e->model, batch),
                     "compiling the model") ||
         cudl_failed(e->ctx,
                     cudl_model_init(e->model, CUDL_INIT_KAIMING_UNIFORM),
                     "initialising the weights");
}

/* Queued on the program's stream behind what it queued before (the
 * images), ahead of what it queues next: nothing here waits. */
static int engine_classify(struct engine *e) {
  return cudl_failed(e->ctx,
                     cudl_model_forward(e->model, e->images, NULL, NULL),
                     "the forward pass") ||
         cudl_failed(e->ctx,
                     cudl_softmax_forward(e->ctx, cudl_model_output(e->model),
                                          e->probs),
                     "the softmax");
}

/* The wrapped tensors go without freeing the program's buffers; the
 * context waits for the stream and leaves it to the program. */
static void engine_close(struct engine *e) {
  cudl_tensor_destroy(e->images);
  cudl_tensor_destroy(e->probs);
  cudl_model_destroy(e->model);
  cudl_context_destroy(e->ctx);
}

int main(int argc, char **argv) {
  struct program p;
  struct engine e;
  char reason[512];
  int batch = 8, count = 0, failed = 1, r;
  memset(&p, 0, sizeof p);
  memset(&e, 0, sizeof e);
  if (argc > 2 || (argc == 2 && (sscanf(argv[1], "%d", &batch) != 1 ||
                                 batch < 1 || batch > 256))) {
    fprintf(stderr, "usage: embed_cuda [BATCH (1 to 256)]\n");
    return 1;
  }
  if (cudl_cuda_device_count(&count, reason, sizeof reason) != CUDL_OK ||
      cudl_cuda_device_supported(0, reason, sizeof reason) != CUDL_OK) {
    fprintf(stderr, "embed_cuda: SKIP: no usable CUDA device: %s\n", reason);
    return SKIP;
  }

  if (cuda_failed(cudaSetDevice(0), "cudaSetDevice") ||
      cuda_failed(cudaStreamCreateWithFlags(&p.stream, cudaStreamNonBlocking),
                  "cudaStreamCreate") ||
      cuda_failed(
          cudaMalloc((void **)&p.images, sizeof(float) * batch * SIDE * SIDE),
          "cudaMalloc") ||
      cuda_failed(
          cudaMalloc((void **)&p.probs, sizeof(float) * batch * CLASSES),
          "cudaMalloc") ||
      cuda_failed(cudaMalloc((void **)&p.best, sizeof(float) * batch),
                  "cudaMalloc") ||
      cuda_failed(cudaMalloc((void **)&p.labels, sizeof(int) * batch),
                  "cudaMalloc") ||
      cuda_failed(cudaMallocHost((void **)&p.host_labels, sizeof(int) * batch),
                  "cudaMallocHost") ||
      cuda_failed(cudaMallocHost((void **)&p.host_best, sizeof(float) * batch),
                  "cudaMallocHost"))
    goto done;

  draw_images<<<(batch * SIDE * SIDE + 255) / 256, 256, 0, p.stream>>>(p.images,
                                                                       batch);
  if (cuda_failed(cudaGetLastError(), "draw_images")) goto done;
  if (engine_open(&e, &p, batch) != 0 || engine_classify(&e) != 0) goto done;
  argmax_rows<<<(batch + 63) / 64, 64, 0, p.stream>>>(p.probs, batch, p.labels,
                                                      p.best);
  if (cuda_failed(cudaGetLastError(), "argmax_rows") ||
      cuda_failed(cudaMemcpyAsync(p.host_labels, p.labels, sizeof(int) * batch,
                                  cudaMemcpyDeviceToHost, p.stream),
                  "cudaMemcpyAsync") ||
      cuda_failed(cudaMemcpyAsync(p.host_best, p.best, sizeof(float) * batch,
                                  cudaMemcpyDeviceToHost, p.stream),
                  "cudaMemcpyAsync") ||
      cuda_failed(cudaStreamSynchronize(p.stream), "cudaStreamSynchronize"))
    goto done;

  failed = 0;
  for (r = 0; r < batch; ++r) {
    printf("image %d: class %d (p = %.3f)\n", r, p.host_labels[r],
           p.host_best[r]);
    /* A probability the softmax wrote: the largest of 10 is in [0.1, 1]. */
    if (!(p.host_best[r] >= 0.1f && p.host_best[r] <= 1.0f) ||
        p.host_labels[r] < 0 || p.host_labels[r] >= CLASSES) {
      fprintf(stderr, "embed_cuda: row %d is not a softmax's\n", r);
      failed = 1;
    }
  }
  if (!failed) printf("classified %d images on the program's stream\n", batch);
done:
  engine_close(&e);
  cudaFree(p.images);
  cudaFree(p.probs);
  cudaFree(p.best);
  cudaFree(p.labels);
  cudaFreeHost(p.host_labels);
  cudaFreeHost(p.host_best);
  if (p.stream != NULL) cudaStreamDestroy(p.stream);
  return failed;
}
