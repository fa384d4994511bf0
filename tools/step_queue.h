/* step_queue.h - each step's loss, correct rows and gradient norm, kept on
 * the device until the host reads a batch of them. A loop that read them every
 * step would wait for the device every step (a GPU then idles while the host
 * prepares the next one); this one waits once per --sync-every steps. The
 * host adds what it reads in the order of the steps, in double, so the
 * totals are the same bits whatever the interval. */
#ifndef CUDL_TOOLS_STEP_QUEUE_H
#define CUDL_TOOLS_STEP_QUEUE_H

#include <stdint.h>

#include <cudl/cudl.h>

/* One queued step: what the caller knew when it queued it, and (after
 * step_queue_read) what the device computed. */
typedef struct step_entry {
  int64_t step, epoch, batch; /* the caller's position: step counts from 1 */
  int64_t rows;               /* the batch's rows */
  double lr;                  /* the learning rate the step used */
  float loss_scale;           /* fp16's loss scale after the step */
  float loss;                 /* read: the batch's mean loss */
  int64_t hits;               /* read: rows whose top class is the label */
  int has_grad_norm;          /* whether grad_norm was queued */
  float grad_norm;            /* read: the gradients' L2 norm */
} step_entry;

typedef struct step_queue {
  cudl_tensor *values; /* f32 [3 * capacity]: losses, hit counts, norms */
  float *host;         /* values, once read */
  step_entry *entries;
  int count, capacity;
} step_queue;

/* A queue of `capacity` steps (1 or more) on ctx's device; q zeroed first.
 * 0, or CLI_EXIT_FAILED after printing why (`what` failed). step_queue_free
 * releases it either way. */
int step_queue_open(step_queue *q, cudl_context *ctx, int capacity,
                    const char *what);
void step_queue_free(step_queue *q);

/* Queue the model's last forward: its loss (it must have had labels), its
 * output's hits against labels and, unless grads is NULL, the L2 norm of
 * grads, all computed on the device without waiting, with *e (whose loss,
 * hits and grad_norm are ignored). With max_norm > 0 the grads are clipped
 * to it (cudl_clip_grad_norm) by the same pass, which queues the norm
 * before clipping. The queue must not be full (step_queue_full). */
cudl_status step_queue_push(step_queue *q, cudl_model *model,
                            const cudl_tensor *labels, cudl_tensor *grads,
                            float max_norm, const step_entry *e);

int step_queue_full(const step_queue *q);

/* Wait for the device and fill in the queued entries' figures; the
 * entries stay queued until step_queue_clear. */
cudl_status step_queue_read(step_queue *q);

void step_queue_clear(step_queue *q);

#endif /* CUDL_TOOLS_STEP_QUEUE_H */
