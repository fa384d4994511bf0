/* run.h - what `cudl train`, `cudl eval` and `cudl predict` share: their
 * options, and the run they set up from them (context, datasets,
 * normalisation, model, batch tensors), checked in an order that reports a
 * wrong command line (exit 2) before any file is read, and anything wrong
 * with the files before anything large is allocated or anything written. */
#ifndef CUDL_TOOLS_RUN_H
#define CUDL_TOOLS_RUN_H

#include <stdint.h>
#include <stdio.h>

#include <cudl/cudl.h>
#include <cudl/data.h>

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
  int model_given, data_given; /* --model, --data on the command line */
  int size_h, size_w;          /* --size HxW for folders; 0: as they are */
  int strict;                  /* --strict: an unreadable image fails */
  const char *image;           /* predict --image FILE */
  int top;                     /* predict --top K [1] */
  const char *data_dir;
  const char *device;
  const char *optimizer;
  const char *schedule;
  const char *metrics;
  const char *out_dir;
  const char *resume;
  const char *init;
  const char *weights;
  int epochs, warmup, log_every, diagnostics, shuffle, augment, count;
  int check_numerics;
  double val_split;     /* --val-split: the fraction held out, 0 when none */
  int test_every_epoch; /* --test-every-epoch */
  int64_t steps;        /* --steps: the run's last step, 0 when none */
  int64_t index;        /* predict: -1 until --index is given */
  int64_t batch;
  double lr, momentum, weight_decay, dropout, clip;
  uint64_t seed;
  cudl_precision precision; /* --precision [fp32] */
  int emulated_precision;   /* --allow-emulated-precision */
  cudl_layout layout;       /* --layout [nchw] */
} options;

/* Parse the arguments after the command's name into o. RUN_GO to go on;
 * otherwise the exit status: CLI_EXIT_OK after --help (usage printed),
 * CLI_EXIT_USAGE after printing why the command line is wrong. Every
 * check that needs no file and no device is made here. */
#define RUN_GO (-1)
int run_parse_options(run_command command, int argc, char **argv, options *o);

/* The pieces of a run, so that one cleanup releases them. */
typedef struct run {
  cudl_context *ctx;
  cudl_dataset *train_set, *test_set;
  cudl_dataset *val_set; /* held out of the training split (--val-split) */
  cudl_loader *train_loader, *test_loader, *val_loader;
  cudl_model *model;
  cudl_optimizer *opt;
  cudl_tensor *x, *labels;
  float *logits;
  int32_t *host_labels;
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
} run;

/* Open the device, check the files the options name (--resume, --init,
 * --weights: their model, dataset and normalisation), load the datasets
 * (the training split for train only, less the images --val-split holds
 * out into val_set, split with --seed) and check them against each other
 * and the options, settle the normalisation (the statistics of the images
 * trained on), build and compile the model
 * and make the batch tensors. The batch is --batch for train (which needs
 * at least one whole batch of training images), at most the test set for
 * eval (more would only take memory) and --count for predict. 0 on
 * success; else the exit status, with one line printed. r must be zeroed
 * first; run_free releases it either way. */
int run_setup(run *r, options *o);

void run_free(run *r);

/* Whether training augments: --augment, --no-augment, else for cifar10
 * only. */
int run_augments(const options *o);

/* The random crop's zero padding for ds's images: 4 pixels from 32 high,
 * else 2. */
int run_crop_padding(const cudl_dataset *ds);

/* ---- data (run_data.c) ---- */

/* 1 when o->data names a folder of images (folder:PATH). */
int run_data_is_folder(const options *o);

/* The datasets of the run: a named dataset's splits, or a folder's
 * (PATH/train, PATH/val, PATH/test, or one tree PATH/<class> that
 * --val-split divides, then without a test set). Train loads the training
 * split (and a val/ folder) and the test split where there is one; eval
 * the test split. Folder images are read with channels, height and width
 * when these are above 0 (the model's input), else as the training tree
 * has them; unreadable files are skipped and listed (or, with --strict,
 * fail the run). Sets r->train_set, r->val_set, r->test_set and
 * r->class_names; 0, or the exit status with one line printed. */
int run_load_data(run *r, const options *o, int channels, int height,
                  int width);

/* A short name of the data and of the model for the run directory
 * (runs/MODEL-DATA): a folder's last path component, a model file's name
 * without ".json". */
void run_data_label(const options *o, char *label, size_t size);
void run_model_label(const options *o, char *label, size_t size);

/* A loader over ds with the run's batch and normalisation; training
 * shuffles (per --no-shuffle), drops the last partial batch and augments
 * (per --augment; by default for cifar10). */
cudl_status run_make_loader(run *r, const options *o, const cudl_dataset *ds,
                            int training, cudl_loader **out);

/* Views of the first `rows` rows of the batch tensors (the last batch of
 * an epoch may be partial). */
cudl_status run_batch_views(run *r, int64_t rows, cudl_tensor **x,
                            cudl_tensor **labels);

/* Top-1 hits of the last forward's logits against labels. */
cudl_status run_batch_hits(run *r, const cudl_tensor *labels, int64_t rows,
                           int64_t *hits);

/* Mean loss and accuracy over one epoch of loader, in evaluation mode. */
cudl_status run_evaluate(run *r, cudl_loader *loader, double *loss,
                         double *accuracy);

/* The normalisation as metadata values: "m0,m1,..." and "s0,s1,..." with
 * one number a channel, for the files a run writes. */
void run_normalisation_text(const run *r, char *mean, char *std, size_t size);

#endif /* CUDL_TOOLS_RUN_H */
