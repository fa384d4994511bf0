/* run_config.h - the training configuration a run records in the files it
 * saves ("train.NAME" metadata, one a setting), and what a resumed run
 * does with it: a setting not on the command line is the checkpoint's, and
 * one given with another value is refused unless --override names it, so
 * that `cudl train --resume CHECKPOINT` goes on exactly as the run began
 * (docs/cli.md, "The training configuration, and --resume --override"). */
#ifndef CUDL_TOOLS_RUN_CONFIG_H
#define CUDL_TOOLS_RUN_CONFIG_H

#include <stddef.h>

#include <cudl/safetensors.h>

#include "run_types.h"

/* The settings recorded: optimizer, lr, momentum, weight-decay, schedule,
 * warmup, epochs, clip, dropout, augment, shuffle, sync-bn, deterministic,
 * precision, layout, seed. */
#define RUN_CONFIG_SETTINGS 17

/* The learning rate and weight decay a run uses: --lr and --weight-decay,
 * or the optimizer's defaults (0.05 for sgd, else 0.001; 5e-4 for sgd,
 * else the optimizer's own). */
double run_config_lr(const options *o);
double run_config_weight_decay(const options *o);

/* The metadata pairs that record o's configuration; the texts live in the
 * record. Each value is what the option takes on the command line ("0.05",
 * "cosine"; "on"/"off" for augment, shuffle, sync-bn and deterministic, "off"
 * for no clip). */
typedef struct run_config_record {
  char keys[RUN_CONFIG_SETTINGS][32];
  char values[RUN_CONFIG_SETTINGS][64];
  cudl_metadata_pair pairs[RUN_CONFIG_SETTINGS];
  size_t count;
} run_config_record;
void run_config_record_make(const options *o, run_config_record *record);

/* The checks of --override that need no file: it goes with --resume, and
 * each NAME it lists is a recorded setting that may change, given on the
 * command line. 0, or the usage status with one line printed. */
int run_config_check_override(const options *o);

/* 1 when --override lists name ("dropout"). */
int run_config_overrides(const options *o, const char *name);

/* A resumed run's options against the configuration its checkpoint (at
 * path, header in set) records: a setting not given is set to the
 * checkpoint's; one given with another value is refused (exit status 1,
 * one line printed) unless --override names it, which a note reports.
 * A checkpoint of an earlier cudl records none: then a note says so and
 * the options stand as given. 0, or the exit status. */
int run_config_resume(options *o, const cudl_safetensors *set,
                      const char *path);

#endif /* CUDL_TOOLS_RUN_CONFIG_H */
