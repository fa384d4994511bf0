/* train_setup.c - everything `cudl train` does before its first step
 * (train_setup.h): the optimizer and schedule the options ask for, the weights
 * (fresh, --init, or the whole run from --resume, checked against the
 * options), the loaders, and the run's files. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cudl/checkpoint.h>
#include <cudl/cudl.h>
#include <cudl/data.h>

#include "cli.h"
#include "run_config.h"
#include "train_setup.h"

static int make_optimizer(trainer *t) {
  const options *o = &t->o;
  cudl_optimizer_kind kind =
      strcmp(o->optimizer, "adam") == 0    ? CUDL_OPTIMIZER_ADAM
      : strcmp(o->optimizer, "adamw") == 0 ? CUDL_OPTIMIZER_ADAMW
                                           : CUDL_OPTIMIZER_SGD;
  cudl_status s;
  cudl_optimizer_config_default(kind, &t->oc);
  t->oc.lr = (float)run_config_lr(o);
  if (kind == CUDL_OPTIMIZER_SGD) t->oc.momentum = (float)o->momentum;
  t->oc.weight_decay = (float)run_config_weight_decay(o);
  s = cudl_optimizer_create(t->r.ctx, &t->oc,
                            cudl_tensor_numel(cudl_model_params(t->r.model)),
                            &t->r.opt);
  if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "creating the optimizer");
  memset(&t->sched, 0, sizeof t->sched);
  t->sched.base_lr = t->oc.lr;
  t->sched.warmup_epochs = o->warmup;
  if (strcmp(o->schedule, "cosine") == 0) {
    t->sched.kind = CUDL_LR_COSINE;
    t->sched.total_epochs =
        o->epochs - o->warmup > 0 ? o->epochs - o->warmup : 1;
  } else if (strcmp(o->schedule, "step") == 0) {
    t->sched.kind = CUDL_LR_STEP;
    t->sched.gamma = 0.1f;
    t->sched.step_size = o->epochs / 3 > 0 ? o->epochs / 3 : 1;
  } else {
    t->sched.kind = CUDL_LR_CONSTANT;
  }
  return 0;
}

/* What a checkpoint records of the options its run must keep, and of its
 * best epoch. A file that cannot be read records nothing here
 * (cudl_checkpoint_load refuses it with a better reason). */
typedef struct saved_run {
  int64_t batch;    /* 0 when not recorded (an earlier version's file) */
  double val_split; /* 0 when the run had none */
  run_best best;
} saved_run;

/* 0, or the exit status with one line printed (a malformed value). */
static int read_saved_run(trainer *t, saved_run *saved) {
  cudl_safetensors *set = NULL;
  const char *batch, *split, *bad = NULL;
  long long value = 0;
  memset(saved, 0, sizeof *saved);
  if (cudl_safetensors_load(t->r.ctx, t->o.resume, CUDL_SAFETENSORS_HEADER_ONLY,
                            &set) != CUDL_OK)
    return 0;
  batch = cudl_safetensors_metadata_find(set, "batch_size");
  split = cudl_safetensors_metadata_find(set, "val_split");
  if (batch != NULL && !cli_parse_int(batch, 1, INT64_MAX, &value))
    bad = "batch_size is not a positive integer";
  else if (split != NULL && !(cli_parse_double(split, &saved->val_split) &&
                              saved->val_split > 0.0 && saved->val_split < 1.0))
    bad = "val_split is not a number above 0 and below 1";
  else if (run_files_read_best(set, &saved->best) != 0)
    bad =
        "best.epoch, best.val_loss and best.val_accuracy are not an "
        "epoch and two numbers";
  saved->batch = value;
  cudl_safetensors_destroy(set);
  if (bad == NULL) return 0;
  cli_error("--resume %s: its metadata %s", t->o.resume, bad);
  return CLI_EXIT_FAILED;
}

/* Weights: fresh, from --init, or the whole run from --resume (its batch
 * size and --val-split must be this run's: an epoch's batches and the
 * position in it depend on them; its best epoch so far goes on). */
static int load_weights(trainer *t) {
  options *o = &t->o;
  saved_run saved;
  int rc;
  cudl_status s;
  t->st.data_seed = o->seed;
  t->st.rng_seed = o->seed;
  s = cudl_context_set_seed(t->r.ctx, o->seed);
  if (s == CUDL_OK) s = cudl_model_init(t->r.model, CUDL_INIT_KAIMING_NORMAL);
  if (s == CUDL_OK && o->init != NULL)
    s = cudl_model_load(t->r.model, o->init, 1);
  if (s != CUDL_OK)
    return o->init != NULL ? cli_fail(t->r.ctx, s, "--init %s", o->init)
                           : cli_fail(t->r.ctx, s, "initialising %s", o->model);
  if (o->resume == NULL) return 0;
  if ((rc = read_saved_run(t, &saved)) != 0) return rc;
  if (saved.batch != 0 && saved.batch != o->batch) {
    cli_error("--resume %s: the run was trained with --batch %" PRId64
              ", not %" PRId64
              ": an epoch's batches and the position in it depend on it",
              o->resume, saved.batch, o->batch);
    return CLI_EXIT_FAILED;
  }
  if (saved.val_split != o->val_split) {
    char was[64], is[64];
    snprintf(was, sizeof was, "--val-split %g", saved.val_split);
    snprintf(is, sizeof is, "--val-split %g", o->val_split);
    cli_error(
        "--resume %s: the run was trained %s, not %s: the images "
        "trained on depend on it",
        o->resume, saved.val_split > 0.0 ? was : "without --val-split",
        o->val_split > 0.0 ? is : "without it");
    return CLI_EXIT_FAILED;
  }
  t->best = saved.best;
  s = cudl_checkpoint_load(t->r.model, t->r.opt, &t->st, o->resume);
  if (s == CUDL_OK)
    s = cudl_context_set_rng_state(t->r.ctx, t->st.rng_seed, t->st.rng_offset);
  if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "--resume %s", o->resume);
  /* The data order goes on as the run began it, whatever --seed says. */
  o->seed = t->st.data_seed;
  return 0;
}

/* A resumed run's position against the epoch: batch 0 to batches - 1. A
 * checkpoint an earlier version saved after an epoch's last batch and
 * before its evaluation (batch == batches) continues at the next epoch's
 * start, where the loader would too; a later batch is another batch
 * size's. And the run must have epochs left. */
static int check_position(trainer *t) {
  const options *o = &t->o;
  if (o->resume == NULL) return 0;
  if (t->st.batch > t->batches) {
    cli_error("--resume %s is at batch %" PRId64 " of epoch %" PRId64
              ", but an epoch has %" PRId64 " batches of %" PRId64
              ": resume with the --batch the run was started with",
              o->resume, t->st.batch, t->st.epoch + 1, t->batches, o->batch);
    return CLI_EXIT_FAILED;
  }
  if (t->st.batch == t->batches) {
    cli_note("--resume %s was saved after the last batch of epoch %" PRId64
             ", before its evaluation: continuing with epoch %" PRId64,
             o->resume, t->st.epoch + 1, t->st.epoch + 2);
    ++t->st.epoch;
    t->st.batch = 0;
  }
  if (t->st.epoch >= o->epochs) {
    /* Nothing would be trained, and the summary would report a test
     * accuracy this run never measured. */
    cli_error("--resume %s has finished %" PRId64
              " epoch%s already: --epochs must be more than that, not %d",
              o->resume, t->st.epoch, t->st.epoch == 1 ? "" : "s", o->epochs);
    return CLI_EXIT_USAGE;
  }
  if (o->steps > 0 && t->st.step >= o->steps) {
    cli_error("--resume %s has taken %" PRId64
              " steps already: --steps must be more than that, not %" PRId64,
              o->resume, t->st.step, o->steps);
    return CLI_EXIT_USAGE;
  }
  return 0;
}

int train_start(trainer *t, int argc, char **argv) {
  options *o = &t->o;
  const char *hook = getenv("CUDL_TEST_INTERRUPT_AT_STEP");
  long long at = 0;
  int rc;
  cudl_status s;
  run_dist_detect(&t->dist);
  rc = run_parse_options(RUN_TRAIN, argc, argv, o);
  if (rc != RUN_GO) return rc;
  if ((rc = run_dist_check_build(&t->dist)) != 0) return rc;
  if ((rc = run_config_check_override(o)) != 0) return rc;
  if (hook != NULL && cli_parse_int(hook, 1, INT64_MAX, &at))
    t->interrupt_at = at;
  hook = getenv("CUDL_TEST_HANG_AT_STEP");
  if (hook != NULL && cli_parse_int(hook, 1, INT64_MAX, &at))
    t->hang_at = at;
  /* One GPU per rank: the device is chosen before the context is made. */
  o->device = run_dist_device(&t->dist, o->device);
  if ((rc = run_setup(&t->r, o)) != 0) return rc;
  if ((rc = run_dist_start(&t->dist, &t->r, o)) != 0) return rc;
  if ((rc = make_optimizer(t)) != 0) return rc;
  if ((rc = load_weights(t)) != 0) return rc;
  if ((rc = run_dist_agree(&t->dist, &t->r, o)) != 0) return rc;
  s = run_make_loader(&t->r, o, t->r.train_set, 1, &t->r.train_loader);
  if (s == CUDL_OK && t->r.test_set != NULL)
    s = run_make_loader(&t->r, o, t->r.test_set, 0, &t->r.test_loader);
  if (s == CUDL_OK && t->r.val_set != NULL)
    s = run_make_loader(&t->r, o, t->r.val_set, 0, &t->r.val_loader);
  if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "creating the data loaders");
  t->batches = cudl_loader_batches(t->r.train_loader);
  if ((rc = check_position(t)) != 0) return rc;
  s = cudl_loader_seek(t->r.train_loader, t->st.epoch, t->st.batch);
  if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "--resume %s", o->resume);
  if (o->check_numerics &&
      (s = cudl_model_set_check_numerics(t->r.model, 1)) != CUDL_OK)
    return cli_fail(t->r.ctx, s, "check-numerics mode");
  /* Every step of a data-parallel run is exchanged: one at a time. */
  if (t->dist.world > 1 && t->r.sync_every > 1) {
    if (o->sync_every > 1 && run_dist_root(&t->dist))
      cli_note(
          "--sync-every %d: under mpirun each step's loss is exchanged "
          "between the ranks, so it is read every step",
          o->sync_every);
    t->r.sync_every = 1;
  }
  if ((rc = step_queue_open(&t->queue, t->r.ctx, t->r.sync_every,
                            "queueing the steps' losses")) != 0)
    return rc;
  /* The other ranks of a data-parallel run write nothing and report
   * nothing. */
  if (!run_dist_root(&t->dist)) return RUN_GO;
  t->rep.tty = isatty(2);
  if ((rc = report_open(&t->rep, o, &t->files, t->r.model, t->st.step)) != 0)
    return rc;
  /* Files last: a run that does not start leaves nothing behind. */
  if ((rc = run_files_name(&t->files, o)) != 0) return rc;
  if ((rc = run_files_check_outputs(&t->files, o, &t->r)) != 0) return rc;
  if (run_files_make(&t->files, &t->r, o) != 0) return CLI_EXIT_FAILED;
  if ((rc = report_open_metrics(&t->rep)) != 0) return rc;
  return RUN_GO;
}
