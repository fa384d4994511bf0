/* step_queue.c - each step's figures kept on the device until read
 * (step_queue.h). */
#include "step_queue.h"

#include "cli.h"

#include <stdlib.h>

int step_queue_open(step_queue *q, cudl_context *ctx, int capacity,
                    const char *what) {
  const int64_t n = 3 * (int64_t)capacity;
  cudl_status s;
  if (capacity < 1)
    return cli_fail(NULL, CUDL_ERR_INVALID_ARGUMENT, "%s: %d steps", what,
                    capacity);
  /* The host's arrays first: a failure there leaves no message in ctx. */
  q->host = (float *)malloc((size_t)n * sizeof *q->host);
  q->entries = (step_entry *)calloc((size_t)capacity, sizeof *q->entries);
  if (q->host == NULL || q->entries == NULL)
    return cli_fail(NULL, CUDL_ERR_OUT_OF_MEMORY,
                    "%s: no host memory for %d steps' figures", what, capacity);
  s = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 1, &n, &q->values);
  if (s != CUDL_OK) return cli_fail(ctx, s, "%s", what);
  q->capacity = capacity;
  q->count = 0;
  return 0;
}

void step_queue_free(step_queue *q) {
  cudl_tensor_destroy(q->values);
  free(q->host);
  free(q->entries);
  q->values = NULL;
  q->host = NULL;
  q->entries = NULL;
  q->count = q->capacity = 0;
}

cudl_status step_queue_push(step_queue *q, cudl_model *model,
                            const cudl_tensor *labels, cudl_tensor *grads,
                            float max_norm, const step_entry *e) {
  static const int64_t one = 1;
  const cudl_tensor *loss = cudl_model_loss_value(model);
  const cudl_tensor *output = cudl_model_output(model);
  cudl_context *ctx = cudl_model_context(model);
  cudl_tensor *loss_one = NULL, *loss_slot = NULL, *hits_slot = NULL;
  cudl_tensor *norm_slot = NULL;
  cudl_status s;
  if (q->count >= q->capacity || loss == NULL || output == NULL)
    return CUDL_ERR_INVALID_ARGUMENT;
  /* The loss is a scalar; its slot a one-element row of values. */
  s = cudl_tensor_reshape(loss, 1, &one, &loss_one);
  if (s == CUDL_OK) s = cudl_tensor_narrow(q->values, q->count, 1, &loss_slot);
  if (s == CUDL_OK)
    s = cudl_tensor_narrow(q->values, q->capacity + q->count, 1, &hits_slot);
  if (s == CUDL_OK && grads != NULL)
    s = cudl_tensor_narrow(q->values, 2 * q->capacity + q->count, 1,
                           &norm_slot);
  if (s == CUDL_OK) s = cudl_tensor_copy(loss_slot, loss_one);
  if (s == CUDL_OK) s = cudl_count_hits(ctx, output, labels, hits_slot);
  if (s == CUDL_OK && grads != NULL)
    s = max_norm > 0.0f ? cudl_clip_grad_norm(ctx, grads, max_norm, norm_slot)
                        : cudl_l2_norm(ctx, grads, norm_slot);
  cudl_tensor_destroy(loss_one);
  cudl_tensor_destroy(loss_slot);
  cudl_tensor_destroy(hits_slot);
  cudl_tensor_destroy(norm_slot);
  if (s != CUDL_OK) return s;
  q->entries[q->count] = *e;
  q->entries[q->count].has_grad_norm = grads != NULL;
  q->entries[q->count++].grad_norm = 0.0f;
  return CUDL_OK;
}

int step_queue_full(const step_queue *q) { return q->count >= q->capacity; }

cudl_status step_queue_read(step_queue *q) {
  int i;
  cudl_status s;
  if (q->count == 0) return CUDL_OK;
  s = cudl_tensor_copy_to_host(q->values, q->host,
                               cudl_tensor_nbytes(q->values));
  if (s != CUDL_OK) return s;
  for (i = 0; i < q->count; ++i) {
    q->entries[i].loss = q->host[i];
    q->entries[i].hits = (int64_t)q->host[q->capacity + i];
    if (q->entries[i].has_grad_norm)
      q->entries[i].grad_norm = q->host[2 * q->capacity + i];
  }
  return CUDL_OK;
}

void step_queue_clear(step_queue *q) { q->count = 0; }
