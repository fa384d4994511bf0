/* run_types.h - what a run of `cudl train`, `cudl eval` and `cudl predict`
 * is told (options) and what it holds (run): the types the run's modules
 * share (run.c sets them up, run_data.c reads the data into them). */
#ifndef CUDL_TOOLS_RUN_TYPES_H
#define CUDL_TOOLS_RUN_TYPES_H

#include <stdint.h>

#include <cudl/cudl.h>
#include <cudl/data.h>

#include "step_queue.h"

/* Which command a run is for. */
typedef enum run_command {
  RUN_TRAIN = 1,
  RUN_EVAL = 2,
  RUN_PREDICT = 4
} run_command;

/* Everything the commands are told. */
typedef struct options {
  run_command command;
  const char *model;      /* a zoo name; after run_setup also a label for a
                             --model-file or the weights' architecture */
  const char *model_file; /* --model-file: a model file (docs/model-files.md) */
  const char *data; /* a dataset name, or folder:PATH (run_data.c) */
  uint64_t given; /* the options on the command line, a bit each
                     (run_option_given) */
  int size_h, size_w;          /* --size HxW for folders; 0: as they are */
  int strict;                  /* --strict: an unreadable image fails */
  int cache_limit_given;       /* --cache-limit SIZE: */
  uint64_t cache_limit;        /* a folder's decoded bytes kept in memory;
                                  0: every folder streamed */
  const char *image;           /* predict --image FILE */
  int top;                     /* predict --top K [1] */
  const char *data_dir;
  const char *device;
  const char *optimizer;
  const char *schedule;
  const char *metrics;
  const char *out_dir;
  const char *resume;
  const char *override; /* --override NAME,...: what a resumed run changes */
  const char *init;
  const char *weights;
  int epochs, warmup, log_every, diagnostics, shuffle, augment, count;
  int sync_bn; /* --sync-bn: batch-norm statistics over every rank */
  int deterministic; /* --deterministic: cudl_context_set_deterministic */
  int check_numerics;
  double val_split;     /* --val-split: the fraction held out, 0 when none */
  int test_every_epoch; /* --test-every-epoch */
  int64_t steps;        /* --steps: the run's last step, 0 when none */
  int sync_every;       /* --sync-every: steps between reads of the losses
                           from the device; 0: the device's default */
  double dist_timeout;  /* --dist-timeout: seconds a rank waits [600] */
  const char *dist_backend; /* --dist-backend: auto, mpi or nccl [auto] */
  double bucket_mb;     /* --bucket-mb: gradient bucket cap, MB [25] */
  cudl_grad_wire grad_wire; /* --grad-wire: what gradients travel as [auto] */
  int64_t index;        /* predict: -1 until --index is given */
  int64_t batch;
  double lr, momentum, weight_decay, dropout, clip;
  uint64_t seed;
  cudl_precision precision; /* --precision [fp32] */
  int emulated_precision;   /* --allow-emulated-precision */
  cudl_layout layout;       /* --layout [auto: cli_layout_for] */
  int layout_chosen;        /* --layout nchw or nhwc, not auto */
} options;

/* The pieces of a run, so that one cleanup releases them. */
typedef struct run {
  cudl_context *ctx;
  cudl_dataset *train_set, *test_set;
  cudl_dataset *val_set; /* held out of the training split (--val-split) */
  cudl_loader *train_loader, *test_loader, *val_loader;
  cudl_model *model;
  cudl_optimizer *opt;
  cudl_tensor *x, *labels;
  float *logits; /* predict: a batch's output on the host */
  int64_t batch; /* the batch tensors' rows: --batch, or fewer (below) */
  int64_t classes;
  int channels;
  uint64_t data_seed; /* --seed, or the checkpoint's when resuming */
  int normalisation_from_weights; /* mean and std are --weights' metadata */
  float mean[CUDL_DATASET_MAX_CHANNELS], std[CUDL_DATASET_MAX_CHANNELS];
  int height, width; /* the images the model reads */
  char *owned_data;  /* --data and --model as the weights file names them */
  char *owned_model;
  char *architecture; /* the weights file's cudl.architecture, if used */
  char *class_names;  /* a JSON array of the class names, or NULL */
  char **weights_classes; /* the class names the weights file lists */
  int weights_class_count;
  int rank, world; /* the training loader's shard: 0 of 1 but in a
                      data-parallel run (run_dist.c) */
  int sync_every;  /* --sync-every, or the device's default (run_setup) */
  step_queue eval_queue; /* run_evaluate's batches (sync_every of them) */
} run;

#endif /* CUDL_TOOLS_RUN_TYPES_H */
