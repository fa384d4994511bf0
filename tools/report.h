/* report.h - what a training run tells: the progress line on stderr, the
 * summary line of each epoch on stdout, and the metrics file's JSON lines
 * (per epoch, per --log-every steps, per --diagnostics window). The lines'
 * schema is docs/cli.md's. */
#ifndef CUDL_TOOLS_REPORT_H
#define CUDL_TOOLS_REPORT_H

#include <stdint.h>

#include <cudl/cudl.h>

#include "cli.h"
#include "cli_file.h"
#include "run.h"
#include "run_files.h"
#include "settings.h"

typedef struct report {
  const options *o;
  const run_files *files; /* named in the error of a failed write */
  cli_file metrics;
  int has_metrics;
  int tty; /* stderr is a terminal: the progress line is redrawn */
  cudl_layer_diagnostics *diag_rows;
  int diag_capacity;
  const run_settings *pending_run; /* the run line, until it is written */
  /* The last epoch's validation, shown on the progress line. */
  int has_last_val;
  double last_val_loss, last_val_accuracy;
} report;

/* Where the progress line stands. */
typedef struct report_progress_values {
  int64_t epoch, epochs; /* from 1 */
  int64_t batch, batches, batch_size;
  int64_t since;        /* the batches done since the last call (>= 1) */
  int64_t batches_left; /* in the whole run */
  double loss, accuracy, images_per_second;
} report_progress_values;

/* One finished epoch. */
typedef struct report_epoch_values {
  int64_t epoch, epochs; /* from 1 */
  int64_t step;          /* steps of the run done */
  double train_loss, train_accuracy;
  int has_val; /* --val-split */
  double val_loss, val_accuracy;
  int64_t best_epoch; /* with has_val: the best so far, this one included */
  int has_test;       /* the test set was evaluated after this epoch */
  double test_loss, test_accuracy;
  double images_per_second, seconds;
  cudl_precision precision;
  cudl_layout layout;
  double loss_scale;
  int64_t skipped_steps; /* fp16 steps whose gradients overflowed */
} report_epoch_values;

/* The end of a run that finished (its epochs, or --steps). */
typedef struct report_end_values {
  const char *reason;  /* "epochs" or "steps" */
  int64_t epoch, step; /* epochs finished, steps taken */
  int has_test;        /* at the end, unless there is no test set */
  double test_loss, test_accuracy;
  run_best best;            /* epoch 0 without --val-split */
  double seconds;           /* this process's training time */
  const char *weights;      /* model.safetensors */
  const char *best_weights; /* best.safetensors, NULL when none */
} report_end_values;

/* Start reporting: the diagnostics rows for model when --diagnostics
 * asks (before any file is made), on the steps of the whole run after the
 * steps_done a resumed run has taken. 0, or the exit status with one line
 * printed. */
int report_open(report *rep, const options *o, const run_files *files,
                cudl_model *model, int64_t steps_done);

/* Open the metrics file (--metrics; nothing without it), appended to when
 * the run resumes (a line a killed run left torn is ended first). Made
 * last: a run that does not start leaves nothing behind. 0, or the exit
 * status with one line printed. */
int report_open_metrics(report *rep);

/* Close the metrics file: kept when keep, else removed if this run made
 * it and left it empty; 1 on success. Frees what report_open took. */
int report_close(report *rep, int keep);

/* Redraw (terminal) or print (when a multiple of 50 batches has passed
 * since the last call, and at an epoch's last, elsewhere) the progress
 * line. */
void report_progress(report *rep, const report_progress_values *v,
                     int epoch_done);

/* End an open progress line, so that the next message starts a line
 * (cli_set_before_error's hook). */
void report_end_progress(void);

/* The metrics file's first line of this run: {"type": "run", ...}
 * (settings_json), written before the run's first other line (so a run
 * that fails before any leaves the file empty). settings must live until
 * then. 0, or the exit status with one line printed. */
int report_run(report *rep, const run_settings *settings);

/* A step's metrics line (--log-every). 0, or the exit status with one
 * line printed (the write failed). */
int report_step(report *rep, int64_t step, int64_t epoch, double loss,
                double lr, double loss_scale);

/* Every layer's diagnostics of model's window (cudl_model_diagnostics)
 * as one metrics line, ending the window. 0, or the exit status. */
int report_diagnostics(report *rep, cudl_context *ctx, cudl_model *model,
                       int64_t step, int64_t epoch);

/* An epoch's summary line on stdout and metrics line. 0, or the exit
 * status. */
int report_epoch(report *rep, const report_epoch_values *v);

/* The run's final line on stdout (the test accuracy, where the weights
 * are) and its "end" metrics line. 0, or the exit status. */
int report_end(report *rep, const report_end_values *v);

#endif /* CUDL_TOOLS_REPORT_H */
