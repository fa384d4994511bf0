/* settings.h - every value a run of train, eval or predict settles,
 * whether given or derived from other options (the learning rate and
 * weight decay of the optimizer, the step schedule's gamma and epochs, the
 * normalisation statistics, augmentation, the batch actually used):
 * printed once at the start as note lines (stderr) and written as the
 * metrics file's "run" line (docs/cli.md). */
#ifndef CUDL_TOOLS_SETTINGS_H
#define CUDL_TOOLS_SETTINGS_H

#include <stdio.h>

#include <cudl/optim.h>

#include "run.h"

typedef struct run_settings {
  const options *o;
  const run *r;
  /* train only (NULL for eval and predict): */
  const cudl_optimizer_config *optimizer;
  const cudl_lr_schedule *schedule;
  int64_t batches; /* an epoch's */
  int64_t parameters;
} run_settings;

/* The note lines ("<command>: ..."), once, before the run starts. */
void settings_note(const run_settings *s);

/* The run line of the metrics file, without its newline: {"type": "run",
 * ...} (docs/cli.md has its fields). */
void settings_json(FILE *f, const run_settings *s);

/* text as a JSON string, quoted and escaped. */
void settings_json_string(FILE *f, const char *text);

#endif /* CUDL_TOOLS_SETTINGS_H */
