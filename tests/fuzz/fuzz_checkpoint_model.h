/*
 * fuzz_checkpoint_model.h - the model and optimizers that fuzz_checkpoint
 * loads checkpoints into, shared with make_checkpoint_corpus so that the
 * seed corpus holds checkpoints of exactly this model.
 *
 * The model is tiny on purpose (40 trainable scalars in an arena of 96, 4
 * buffers), so that a checkpoint is about a kilobyte and the fuzzer spends its
 * time in the loader's checks rather than in copying data; it still has every
 * kind of named tensor a checkpoint carries: convolution and linear weights, a
 * bias, batch norm's affine parameters and its running statistics (not
 * trainable, outside the optimizer's arena).
 *   input [1, 2, 2] -> conv (2 filters 3x3, pad 1, no bias) -> bn -> ReLU
 *   -> flatten -> fc (2 outputs, bias)
 */
#ifndef CUDL_FUZZ_CHECKPOINT_MODEL_H
#define CUDL_FUZZ_CHECKPOINT_MODEL_H

#include <stdint.h>

#include "cudl/cudl.h"

/* The optimizers, one of each kind of state a checkpoint can hold. */
enum {
  FUZZ_CKPT_SGD = 0,          /* no state */
  FUZZ_CKPT_SGD_MOMENTUM = 1, /* momentum_buffer */
  FUZZ_CKPT_ADAM = 2,         /* exp_avg, exp_avg_sq */
  FUZZ_CKPT_ADAMW = 3,        /* the same state, another kind */
  FUZZ_CKPT_OPTIMIZERS = 4
};

typedef struct fuzz_ckpt_fixture {
  cudl_context *ctx;
  cudl_model *model;
  cudl_optimizer *opt[FUZZ_CKPT_OPTIMIZERS];
} fuzz_ckpt_fixture;

/* Creates the CPU context, the compiled model and the optimizers. On
 * failure everything created is released. */
cudl_status fuzz_ckpt_fixture_create(fuzz_ckpt_fixture *f);
void fuzz_ckpt_fixture_destroy(fuzz_ckpt_fixture *f);

/* Writes a pattern determined by `base` into every named tensor of the
 * model and every optimizer's state, and sets every optimizer's step count
 * to `steps`. The values are exact binary fractions, so the seeds' bytes
 * do not depend on the compiler. */
cudl_status fuzz_ckpt_fill(fuzz_ckpt_fixture *f, float base, int64_t steps);

/* The model, as a `part` of fuzz_ckpt_holds (the optimizers are 0 to
 * FUZZ_CKPT_OPTIMIZERS - 1). */
#define FUZZ_CKPT_MODEL (-1)

/* 1 if the model's named tensors (part FUZZ_CKPT_MODEL) or optimizer
 * part's state (not its step count) hold what fuzz_ckpt_fill(f, base, ...)
 * wrote. */
int fuzz_ckpt_holds(fuzz_ckpt_fixture *f, int part, float base);

#endif /* CUDL_FUZZ_CHECKPOINT_MODEL_H */
