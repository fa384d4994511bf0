/* run_files.h - the files a training run owns in its run directory
 * (checkpoint.safetensors, model.safetensors, and best.safetensors with
 * --val-split): making the directory and
 * proving it writable before training, checking that the metrics file is
 * none of the run's other files, saving, cleaning up what a killed save
 * left, and removing what a failed start made. */
#ifndef CUDL_TOOLS_RUN_FILES_H
#define CUDL_TOOLS_RUN_FILES_H

#include <stddef.h>

#include <cudl/checkpoint.h>

#include "run.h"

typedef struct run_files {
  char dir[1024];        /* the run directory */
  char checkpoint[1100]; /* its checkpoint.safetensors */
  char weights[1100];    /* its model.safetensors */
  char best[1100];       /* its best.safetensors */
  size_t made_dirs;      /* the top-most directory run_files_make made */
} run_files;

/* The paths: --out DIR, or runs/MODEL-DATA. 0, or the usage error's exit
 * status with one line printed (a directory name too long). */
int run_files_name(run_files *f, const options *o);

/* The metrics file must be a file of its own: appending to the checkpoint
 * being resumed, or to a dataset file, would ruin it, and one the run
 * replaces would lose the lines. 0, or the usage error's exit status with
 * one line printed. Checked before anything is made. */
int run_files_check_outputs(const run_files *f, const options *o, const run *r);

/* The run directory, made with its missing parents, and proven writable
 * with room for the first save of r's model and optimizer (and best
 * weights with --val-split). 0, or -1 with one line printed. */
int run_files_make(run_files *f, const run *r, const options *o);

/* Remove the directories run_files_make made, as far as they are empty:
 * a run that failed before its first save leaves none behind. */
void run_files_remove_made(const run_files *f);

/* Remove the temporaries that runs killed while saving left in the run
 * directory; how many. */
int run_files_remove_stale(const run_files *f);

/* The best epoch so far by validation accuracy (--val-split). */
typedef struct run_best {
  int64_t epoch; /* from 1; 0 while there is none */
  double val_loss, val_accuracy;
} run_best;

/* Save the full checkpoint (model, optimizer, st, the context's RNG
 * position into st) and the weights-only file, with the run's metadata
 * (model, dataset, normalisation, batch size); the checkpoint also records
 * --val-split and best (keys val_split, best.epoch, best.val_loss,
 * best.val_accuracy) so that a resumed run goes on comparing with the
 * same best epoch. */
cudl_status run_files_save(const run_files *f, run *r, const options *o,
                           cudl_train_state *st, const run_best *best);

/* Save the model's weights as best.safetensors, with the metadata of the
 * weights file. Atomic, as every save. */
cudl_status run_files_save_best(const run_files *f, run *r, const options *o);

/* The best epoch a checkpoint records (run_files_save): *best zeroed when
 * it records none. -1 when its values are malformed, else 0. */
int run_files_read_best(const cudl_safetensors *set, run_best *best);

/* What a run that stops now leaves, for the error line of rank `rank`:
 * "the last checkpoint in DIR is kept", or that there is none yet; on
 * another rank than 0, which writes them, where rank 0 keeps them (this
 * rank may not see rank 0's disk). */
const char *run_files_kept(const run_files *f, int rank, char *text,
                           size_t size);

#endif /* CUDL_TOOLS_RUN_FILES_H */
