/* train_setup.h - the state of a `cudl train` run, shared by its setup
 * (train_setup.c: options, run, optimizer, weights, files) and its loop
 * (train.c). */
#ifndef CUDL_TOOLS_TRAIN_SETUP_H
#define CUDL_TOOLS_TRAIN_SETUP_H

#include <stdint.h>

#include <cudl/checkpoint.h>
#include <cudl/cudl.h>

#include "report.h"
#include "run.h"
#include "run_dist.h"
#include "run_files.h"
#include "step_queue.h"

/* Everything a training run holds. */
typedef struct trainer {
  options o;
  run r;
  cudl_optimizer_config oc;
  cudl_lr_schedule sched;
  cudl_train_state st;
  int64_t batches;      /* a training epoch's */
  int64_t interrupt_at; /* the test hook's step, 0 when off */
  /* With several ranks: a rank was asked to stop (SIGINT, SIGTERM), as the
   * last step's exchange told every rank. */
  int stopping;
  int64_t hang_at; /* CUDL_TEST_HANG_AT_STEP's step, 0 when off */
  run_files files;
  run_best best; /* --val-split: the best epoch so far */
  report rep;
  run_settings settings; /* what the run settled (the metrics' run line) */
  run_dist dist;         /* this rank of a data-parallel run */
  step_queue queue;      /* the steps not yet read from the device */
} trainer;

/* Everything before the first step: the options, the run, optimizer,
 * weights (fresh, --init or --resume), loaders and modes; then, once
 * nothing else can fail, the run directory and the metrics file. RUN_GO
 * when ready, else the exit status with one line printed. t zeroed
 * first. */
int train_start(trainer *t, int argc, char **argv);

#endif /* CUDL_TOOLS_TRAIN_SETUP_H */
