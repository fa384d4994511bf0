/*
 * cudl/checkpoint.h - training checkpoints: everything a run needs to
 * continue exactly where it stopped.
 *
 * A checkpoint is one safetensors file, written atomically: the model's
 * tensors under their PyTorch names, the optimizer's state as
 * "optimizer.<name>" (e.g. optimizer.exp_avg), and in the metadata the
 * optimizer's kind and step count, the epoch and the position in it, the
 * context's random generator state, the data order's seed, and the model's
 * precision with FP16's loss scale (restored into an fp16 model). Loading
 * checks everything before it changes anything. For PyTorch, the model
 * alone is cudl_model_save's file (a plain state_dict); a checkpoint's
 * model entries are the same tensors under the same names.
 */
#ifndef CUDL_CHECKPOINT_H
#define CUDL_CHECKPOINT_H

#include <stdint.h>

#include "cudl/context.h"
#include "cudl/export.h"
#include "cudl/nn.h"
#include "cudl/optim.h"
#include "cudl/status.h"

CUDL_EXTERN_C_BEGIN

/** The metadata entry that marks a safetensors file as a checkpoint, and
 *  its value: what tells a checkpoint from a weights file by its header
 *  alone (cudl_safetensors_metadata_find). */
#define CUDL_CHECKPOINT_FORMAT_KEY "cudl.format"
#define CUDL_CHECKPOINT_FORMAT "checkpoint-1"

/** Where a training run stands. */
typedef struct cudl_train_state {
  int64_t epoch;      /**< the epoch in progress (from 0) */
  int64_t batch;      /**< batches of that epoch already done */
  int64_t step;       /**< optimizer steps taken in the whole run */
  uint64_t data_seed; /**< the loader's seed (shuffling, augmentation) */
  uint64_t rng_seed;  /**< the context's generator (dropout, RReLU) */
  uint64_t rng_offset;
} cudl_train_state;

/**
 * Write model, optimizer (may be NULL) and state to path atomically, with
 * optional extra metadata (keys not starting with "cudl."). The model must
 * be compiled (CUDL_ERR_INVALID_ARGUMENT saying so), and the optimizer must
 * be for the model's trainable parameters: one created for another count
 * gives CUDL_ERR_SHAPE with both counts, and nothing is written. The
 * model's architecture goes with it, as in cudl_model_save, so that
 * cudl_model_load_file can rebuild the model from the checkpoint alone.
 */
CUDL_API cudl_status cudl_checkpoint_save(cudl_model *model,
                                          cudl_optimizer *optimizer,
                                          const cudl_train_state *state,
                                          const cudl_metadata_pair *extra,
                                          size_t n_extra, const char *path);

/**
 * Read a checkpoint written by cudl_checkpoint_save into model (every
 * tensor, strictly), optimizer (may be NULL: its state is then not read;
 * otherwise it must be of the kind and size saved) and *state (may be
 * NULL). The context's generator is not changed: set it from state with
 * cudl_context_set_rng_state. A file that is not a cudl checkpoint, or
 * whose entries do not fit, gives CUDL_ERR_FILE_METADATA or CUDL_ERR_SHAPE
 * with the reason; a NaN or infinite value in any tensor to be read (model
 * or optimizer state) gives CUDL_ERR_FILE_VALUE naming the file, the
 * tensor and the counts. As for cudl_checkpoint_save, the model must be
 * compiled and the optimizer of the model's parameter count (CUDL_ERR_SHAPE
 * with both counts, before the file is read). On any failure nothing is
 * changed.
 */
CUDL_API cudl_status cudl_checkpoint_load(cudl_model *model,
                                          cudl_optimizer *optimizer,
                                          cudl_train_state *state,
                                          const char *path);

CUDL_EXTERN_C_END

#endif /* CUDL_CHECKPOINT_H */
