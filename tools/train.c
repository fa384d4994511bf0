/*
 * train.c - `cudl train`: the training loop over the library (model zoo,
 * data loader, optimizer, schedule, checkpoints), with a progress bar on
 * stderr, a summary line per epoch on stdout and JSON-lines metrics.
 *
 * Errors are one line on stderr that starts with "cudl train: ". Exit
 * status (docs/cli.md): 2 when the command line itself is wrong, 1 when
 * something it names fails (a file, the device, the run itself), 130 on
 * Ctrl-C. A run that fails before its first checkpoint leaves nothing
 * behind: no run directory it made, no metrics file it made and left
 * empty; no file it was not told to write is touched.
 *
 * Test hook: CUDL_TEST_INTERRUPT_AT_STEP=N makes the run interrupt itself
 * (SIGINT, as Ctrl-C) once step N is done, so that a test can put the
 * interrupt exactly where it wants it, the end of an epoch included.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cudl/checkpoint.h>
#include <cudl/cudl.h>
#include <cudl/data.h>

#include "cli.h"
#include "cli_file.h"
#include "commands.h"
#include "run.h"

/* A progress line is on the terminal without its newline yet. */
static int g_progress_open = 0;

/* End the progress line, so that the next message starts a line. */
static void end_progress(void) {
  if (g_progress_open) fputc('\n', stderr);
  g_progress_open = 0;
}

/* The first Ctrl-C stops the run at the next batch, with a checkpoint; a
 * second one ends the process at once (the last checkpoint stays whole:
 * saves are atomic). */
static volatile sig_atomic_t g_interrupted = 0;
static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
  signal(SIGINT, SIG_DFL);
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Everything a training run holds. */
typedef struct trainer {
  options o;
  run r;
  cudl_optimizer_config oc;
  cudl_lr_schedule sched;
  cudl_train_state st;
  int64_t batches;       /* a training epoch's */
  int64_t interrupt_at;  /* the test hook's step, 0 when off */
  char dir[1024];        /* the run directory */
  char checkpoint[1100]; /* its checkpoint.safetensors */
  char weights[1100];    /* its model.safetensors */
  size_t made_dirs;      /* remove_made_dirs' */
  cli_file metrics;
  int has_metrics;
  cudl_layer_diagnostics *diag_rows;
  int diag_capacity;
  int tty;
} trainer;

/* What one epoch has done so far. */
typedef struct epoch_totals {
  double start, loss_sum;
  int64_t hits, seen;
  int64_t skipped; /* fp16 steps whose gradients overflowed */
} epoch_totals;

/* ---- the metrics file ---- */

/* A double for JSON: null where it is not a number. */
static void json_number(FILE *f, const char *key, double v) {
  if (isfinite(v))
    fprintf(f, ", \"%s\": %.6g", key, v);
  else
    fprintf(f, ", \"%s\": null", key);
}

/* What a run that stops now leaves: "the last checkpoint in DIR is kept",
 * or that there is none yet (a run that fails in its first epoch). */
static const char *kept_checkpoint(const trainer *t, char *text, size_t size) {
  if (access(t->checkpoint, F_OK) == 0)
    snprintf(text, size, "the last checkpoint in %s is kept", t->dir);
  else
    snprintf(text, size, "no checkpoint was saved yet");
  return text;
}

/* A metrics line is composed in memory (open_memstream: NULL when out of
 * memory) and written whole by put_metrics_line. */
static FILE *metrics_line(char **text, size_t *size) {
  *text = NULL;
  *size = 0;
  return open_memstream(text, size);
}

/* Write the line composed in line to the metrics file and free it: all of
 * it or, on failure, nothing, and the run fails (exit status returned). */
static int put_metrics_line(trainer *t, FILE *line, char **text, size_t *size) {
  char kept[1300];
  int ok = line != NULL && fclose(line) == 0 && *text != NULL &&
           cli_file_write_line(&t->metrics, *text, *size);
  const int error = t->metrics.error != 0 ? t->metrics.error : ENOMEM;
  free(*text);
  *text = NULL;
  if (ok) return 0;
  cli_error("writing the metrics file %s failed: %s. Stopping; %s",
            t->o.metrics, strerror(error),
            kept_checkpoint(t, kept, sizeof kept));
  return CLI_EXIT_FAILED;
}

/* One metrics line of printf's format (given without its newline). */
static int metrics_printf(trainer *t, const char *fmt, ...) CLI_PRINTF(2, 3);
static int metrics_printf(trainer *t, const char *fmt, ...) {
  char *text;
  size_t size;
  va_list args;
  FILE *f = metrics_line(&text, &size);
  if (f != NULL) {
    va_start(args, fmt);
    vfprintf(f, fmt, args);
    va_end(args);
  }
  return put_metrics_line(t, f, &text, &size);
}

/* One metrics line with every layer's diagnostics (cudl_model_diagnostics),
 * ending the model's diagnostics window. */
static int write_diagnostics(trainer *t) {
  char *text = NULL;
  size_t size = 0;
  int count = 0, i;
  int64_t steps = 0;
  FILE *f;
  cudl_status s = cudl_model_diagnostics(t->r.model, t->diag_rows,
                                         t->diag_capacity, &count, &steps);
  if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "diagnostics");
  f = metrics_line(&text, &size);
  if (f == NULL) return put_metrics_line(t, NULL, &text, &size);
  fprintf(f,
          "{\"step\": %" PRId64 ", \"epoch\": %" PRId64
          ", \"window_steps\": %" PRId64 ", \"layers\": [",
          t->st.step, t->st.epoch + 1, steps);
  for (i = 0; i < count; ++i) {
    const cudl_layer_diagnostics *row = &t->diag_rows[i];
    fprintf(f, "%s{\"node\": %d, \"layer\": \"%s\", \"kind\": \"%s\"",
            i ? ", " : "", row->node, row->name, row->kind);
    json_number(f, "output_mean", row->output_mean);
    json_number(f, "output_std", row->output_std);
    json_number(f, "weight_grad_norm", row->weight_grad_norm);
    json_number(f, "input_grad_norm", row->input_grad_norm);
    json_number(f, "saturated_fraction", row->saturated_fraction);
    json_number(f, "dead_fraction", row->dead_fraction);
    fputc('}', f);
  }
  fprintf(f, "]}");
  return put_metrics_line(t, f, &text, &size);
}

/* ---- the run directory ---- */

/* Remove the directories make_run_dir made: dir and its parents up to the
 * top-most one it made (`made` is that one's length). rmdir stops at the
 * first that is not empty, so nothing of anyone else's goes. */
static void remove_made_dirs(const char *dir, size_t made) {
  char buf[1024];
  size_t n;
  if (made == 0) return;
  snprintf(buf, sizeof buf, "%s", dir);
  n = strlen(buf);
  while (n >= made) {
    buf[n] = '\0';
    if (rmdir(buf) != 0) return;
    while (n > 0 && buf[n - 1] == '/') --n;
    while (n > 0 && buf[n - 1] != '/') --n;
    while (n > 0 && buf[n - 1] == '/') --n;
  }
}

/* The bytes the first save writes: the checkpoint (every model tensor and
 * the optimizer's state) and the weights file (every model tensor), f32,
 * with room for their headers. */
static uint64_t first_save_bytes(trainer *t) {
  uint64_t tensors = 0, bytes;
  int k, n = cudl_model_param_count(t->r.model);
  for (k = 0; k < n; ++k)
    tensors += (uint64_t)cudl_tensor_numel(cudl_model_param(
        t->r.model, cudl_model_param_name(t->r.model, k, NULL)));
  bytes = 2 * tensors +
          (uint64_t)cudl_optimizer_state_count(t->r.opt) *
              (uint64_t)cudl_tensor_numel(cudl_model_params(t->r.model));
  return 4 * bytes + 2 * 65536;
}

/* The run directory, made with its missing parents, and proven writable
 * with room for the first save by reserving that much in a file made and
 * removed in it: an output that cannot be written (under a regular file,
 * on a read-only, pseudo or full file system, without permission) then
 * fails before training, not after the first epoch. Prints why and
 * returns -1 on failure. */
static int make_run_dir(trainer *t) {
  static const char *const files[] = {"checkpoint.safetensors",
                                      "model.safetensors"};
  char buf[1200];
  const char *dir = t->dir;
  size_t i, n = strlen(dir);
  uint64_t room;
  struct stat st;
  int fd, k, error;
  t->made_dirs = 0;
  memcpy(buf, dir, n + 1);
  for (i = 1; i <= n; ++i)
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) == 0) {
        if (t->made_dirs == 0) t->made_dirs = i;
      } else if (errno != EEXIST) {
        cli_error("cannot create the run directory %s: %s", buf,
                  strerror(errno));
        return -1;
      }
      buf[i] = c;
    }
  snprintf(buf, sizeof buf, "%s/.cudl-write-test.%ld", dir, (long)getpid());
  fd = open(buf, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
  if (fd < 0) {
    cli_error("cannot write in the run directory %s: %s", dir, strerror(errno));
    return -1;
  }
  room = first_save_bytes(t);
  error = posix_fallocate(fd, 0, (off_t)room);
  close(fd);
  unlink(buf);
  if (error != 0) {
    cli_error(
        "no room in the run directory %s for the first checkpoint "
        "(%.1f MiB): %s",
        dir, (double)room / 1048576.0, strerror(error));
    return -1;
  }
  /* The writer renames its temporary over these: a directory there would
   * fail the first save, and a device or FIFO must not be replaced. */
  for (k = 0; k < 2; ++k) {
    snprintf(buf, sizeof buf, "%s/%s", dir, files[k]);
    if (stat(buf, &st) == 0 && !S_ISREG(st.st_mode)) {
      cli_error("%s is in the way: it is not a regular file", buf);
      return -1;
    }
  }
  return 0;
}

/* The pid in a temporary's name after its prefix: "<pid>" or
 * "<pid>.<n>"; 0 when the rest is not that. */
static long temporary_pid(const char *rest) {
  char *end = NULL;
  long pid;
  errno = 0;
  pid = strtol(rest, &end, 10);
  if (errno != 0 || end == rest || pid <= 0) return 0;
  if (*end == '.' && end[1] != '\0')
    for (++end; *end >= '0' && *end <= '9'; ++end) continue;
  return *end == '\0' ? pid : 0;
}

/* A run killed while saving leaves the writer's temporary beside its
 * target, "<target>.tmp.<pid>.<n>" (src/core/safetensors_write.c), or
 * make_run_dir's probe; neither is mistaken for the checkpoint, but
 * crashes would pile them up. The next run in the directory removes those
 * of processes that are gone (a live one's may be a save in progress) and
 * this process's own (its pid reused: it has saved nothing yet). Returns
 * how many it removed. */
static int remove_stale_temporaries(const char *dir) {
  static const char *const prefixes[] = {"checkpoint.safetensors.tmp.",
                                         "model.safetensors.tmp.",
                                         ".cudl-write-test."};
  char path[1400];
  DIR *d = opendir(dir);
  struct dirent *e;
  int removed = 0, k;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL)
    for (k = 0; k < 3; ++k) {
      const size_t len = strlen(prefixes[k]);
      long pid;
      if (strncmp(e->d_name, prefixes[k], len) != 0) continue;
      pid = temporary_pid(e->d_name + len);
      if (pid == 0 || (pid != (long)getpid() &&
                       (kill((pid_t)pid, 0) == 0 || errno != ESRCH)))
        continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (unlink(path) == 0) ++removed;
    }
  closedir(d);
  return removed;
}

/* Save the full checkpoint and the weights-only file. The position saved
 * is always within an epoch (batch < batches): an epoch whose batches are
 * all done is finished, evaluated and saved as the next one's start. */
static cudl_status save_run(trainer *t) {
  char mean[128], std[128], batch[32];
  cudl_metadata_pair extra[5];
  cudl_status s;
  run_normalisation_text(&t->r, mean, std, sizeof mean);
  snprintf(batch, sizeof batch, "%" PRId64, t->o.batch);
  extra[0].key = "model";
  extra[0].value = t->o.model;
  extra[1].key = "dataset";
  extra[1].value = t->o.data;
  extra[2].key = "normalize.mean";
  extra[2].value = mean;
  extra[3].key = "normalize.std";
  extra[3].value = std;
  extra[4].key = "batch_size";
  extra[4].value = batch;
  cudl_context_rng_state(t->r.ctx, &t->st.rng_seed, &t->st.rng_offset);
  s = cudl_checkpoint_save(t->r.model, t->r.opt, &t->st, extra, 5,
                           t->checkpoint);
  if (s == CUDL_OK) s = cudl_model_save(t->r.model, t->weights, extra, 5);
  return s;
}

static void progress(const trainer *t, const epoch_totals *e, double ips) {
  const double left =
      (double)((t->o.epochs - t->st.epoch) * t->batches - t->st.batch) *
      (double)t->o.batch / (ips > 0.0 ? ips : 1.0);
  fprintf(stderr,
          "\r epoch %" PRId64 "/%d  step %" PRId64 "/%" PRId64
          "  loss %.4f  acc %.4f  %.0f img/s  ETA %02d:%02d  ",
          t->st.epoch + 1, t->o.epochs, t->st.batch, t->batches,
          e->loss_sum / (double)e->seen, (double)e->hits / (double)e->seen, ips,
          (int)(left / 60.0), (int)fmod(left, 60.0));
  fflush(stderr);
}

/* ---- setting up ---- */

static int make_optimizer(trainer *t) {
  const options *o = &t->o;
  cudl_optimizer_kind kind =
      strcmp(o->optimizer, "adam") == 0    ? CUDL_OPTIMIZER_ADAM
      : strcmp(o->optimizer, "adamw") == 0 ? CUDL_OPTIMIZER_ADAMW
                                           : CUDL_OPTIMIZER_SGD;
  cudl_status s;
  cudl_optimizer_config_default(kind, &t->oc);
  t->oc.lr = (float)(o->lr > 0.0                  ? o->lr
                     : kind == CUDL_OPTIMIZER_SGD ? 0.05
                                                  : 0.001);
  if (kind == CUDL_OPTIMIZER_SGD) t->oc.momentum = (float)o->momentum;
  if (o->weight_decay >= 0.0)
    t->oc.weight_decay = (float)o->weight_decay;
  else if (kind == CUDL_OPTIMIZER_SGD)
    t->oc.weight_decay = 5e-4f;
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

/* The run's batch size as its checkpoint records it: 0 when it does not
 * (a file of an earlier version, or one cudl_checkpoint_load will refuse
 * with a better reason), -1 when the value is not a positive integer. */
static int64_t saved_batch_size(trainer *t) {
  cudl_safetensors *set = NULL;
  const char *text;
  long long value = 0;
  if (cudl_safetensors_load(t->r.ctx, t->o.resume, CUDL_SAFETENSORS_HEADER_ONLY,
                            &set) != CUDL_OK)
    return 0;
  text = cudl_safetensors_metadata_find(set, "batch_size");
  if (text != NULL && !cli_parse_int(text, 1, INT64_MAX, &value)) value = -1;
  cudl_safetensors_destroy(set);
  return value;
}

/* Weights: fresh, from --init, or the whole run from --resume (its batch
 * size must be this run's: an epoch's batches and the position in it
 * depend on it). */
static int load_weights(trainer *t) {
  options *o = &t->o;
  int64_t saved_batch;
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
  saved_batch = saved_batch_size(t);
  if (saved_batch < 0) {
    cli_error("--resume %s: its metadata batch_size is not a positive integer",
              o->resume);
    return CLI_EXIT_FAILED;
  }
  if (saved_batch != 0 && saved_batch != o->batch) {
    cli_error("--resume %s: the run was trained with --batch %" PRId64
              ", not %" PRId64
              ": an epoch's batches and the position in it depend on it",
              o->resume, saved_batch, o->batch);
    return CLI_EXIT_FAILED;
  }
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
  return 0;
}

/* The metrics file must be a file of its own: appending to the checkpoint
 * being resumed, or to a dataset file, would ruin it, and one the run
 * replaces would lose the lines. Checked before anything is made. */
static int check_outputs(const trainer *t) {
  const options *o = &t->o;
  const cudl_dataset *sets[2];
  int k, i;
  struct {
    const char *path, *what;
  } taken[4];
  taken[0].path = t->checkpoint;
  taken[0].what = "the run's checkpoint";
  taken[1].path = t->weights;
  taken[1].what = "the run's weights file";
  taken[2].path = o->resume;
  taken[2].what = "the checkpoint --resume reads";
  taken[3].path = o->init;
  taken[3].what = "the weights --init reads";
  if (o->metrics == NULL) return 0;
  for (k = 0; k < 4; ++k)
    if (taken[k].path != NULL && cli_same_file(o->metrics, taken[k].path))
      return cli_usage_error(
          "--metrics %s is %s (%s): the metrics need a file of their own",
          o->metrics, taken[k].what, taken[k].path);
  sets[0] = t->r.train_set;
  sets[1] = t->r.test_set;
  for (k = 0; k < 2; ++k)
    for (i = 0; cudl_dataset_source(sets[k], i) != NULL; ++i)
      if (cli_same_file(o->metrics, cudl_dataset_source(sets[k], i)))
        return cli_usage_error(
            "--metrics %s is a file of the %s set (%s): the metrics need a "
            "file of their own",
            o->metrics, k == 0 ? "training" : "test",
            cudl_dataset_source(sets[k], i));
  return 0;
}

/* Everything before the first step: the run, optimizer, weights, loaders,
 * modes; then, once nothing else can fail, the files. RUN_GO when ready,
 * else the exit status. */
static int start(trainer *t, int argc, char **argv) {
  options *o = &t->o;
  const char *hook = getenv("CUDL_TEST_INTERRUPT_AT_STEP");
  long long at = 0;
  int rc;
  cudl_status s;
  rc = run_parse_options(RUN_TRAIN, argc, argv, o);
  if (rc != RUN_GO) return rc;
  if (hook != NULL && cli_parse_int(hook, 1, INT64_MAX, &at))
    t->interrupt_at = at;
  if ((rc = run_setup(&t->r, o)) != 0) return rc;
  if ((rc = make_optimizer(t)) != 0) return rc;
  if ((rc = load_weights(t)) != 0) return rc;
  s = run_make_loader(&t->r, o, t->r.train_set, 1, &t->r.train_loader);
  if (s == CUDL_OK)
    s = run_make_loader(&t->r, o, t->r.test_set, 0, &t->r.test_loader);
  if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "creating the data loaders");
  t->batches = cudl_loader_batches(t->r.train_loader);
  if ((rc = check_position(t)) != 0) return rc;
  s = cudl_loader_seek(t->r.train_loader, t->st.epoch, t->st.batch);
  if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "--resume %s", o->resume);
  if (o->check_numerics &&
      (s = cudl_model_set_check_numerics(t->r.model, 1)) != CUDL_OK)
    return cli_fail(t->r.ctx, s, "check-numerics mode");
  if (o->diagnostics > 0) {
    t->diag_capacity = cudl_model_node_count(t->r.model);
    t->diag_rows = (cudl_layer_diagnostics *)calloc((size_t)t->diag_capacity,
                                                    sizeof *t->diag_rows);
    s = t->diag_rows == NULL
            ? CUDL_ERR_OUT_OF_MEMORY
            : cudl_model_set_diagnostics(t->r.model, o->diagnostics);
    if (s != CUDL_OK) return cli_fail(t->r.ctx, s, "diagnostics");
  }
  /* Files last: a run that does not start leaves nothing behind. */
  if (o->out_dir != NULL)
    snprintf(t->dir, sizeof t->dir, "%s", o->out_dir);
  else
    snprintf(t->dir, sizeof t->dir, "runs/%s-%s", o->model, o->data);
  if (strlen(t->dir) >= sizeof t->dir - 1)
    return cli_usage_error("--out %s: %s", t->dir, strerror(ENAMETOOLONG));
  snprintf(t->checkpoint, sizeof t->checkpoint, "%s/checkpoint.safetensors",
           t->dir);
  snprintf(t->weights, sizeof t->weights, "%s/model.safetensors", t->dir);
  if ((rc = check_outputs(t)) != 0) return rc;
  if (make_run_dir(t) != 0) return CLI_EXIT_FAILED;
  if (o->metrics != NULL) {
    if (!cli_file_open_lines(&t->metrics, "the metrics file", o->metrics,
                             o->resume != NULL))
      return CLI_EXIT_FAILED;
    t->has_metrics = 1;
    if (o->resume != NULL && !cli_file_end_torn_line(&t->metrics)) {
      cli_error("writing the metrics file %s failed: %s", o->metrics,
                strerror(t->metrics.error));
      return CLI_EXIT_FAILED;
    }
  }
  return RUN_GO;
}

/* ---- training ---- */

/* Train the batches of the current epoch until it ends (*done) or an
 * interrupt stops it; 0, or the exit status with one line printed. */
static int train_batches(trainer *t, epoch_totals *e, int *done) {
  cudl_numerics_report numerics;
  char kept[1300];
  run *r = &t->r;
  while (!*done && !g_interrupted) {
    int64_t rows = 0, batch_hits = 0;
    int skipped = 0;
    float loss = 0.0f, lr = t->oc.lr;
    cudl_tensor *xv = NULL, *lv = NULL;
    cudl_status s =
        cudl_loader_next(r->train_loader, r->x, r->labels, &rows, done);
    if (s == CUDL_OK) s = run_batch_views(r, rows, &xv, &lv);
    if (s == CUDL_OK) s = cudl_model_forward(r->model, xv, lv, &loss);
    if (s == CUDL_OK && !isfinite(loss)) {
      int node = -1;
      const char *what = "";
      cudl_model_first_nonfinite(r->model, &node, &what);
      cudl_tensor_destroy(xv);
      cudl_tensor_destroy(lv);
      cli_error("the loss is %g at step %" PRId64 " (epoch %" PRId64
                ", batch %" PRId64
                "); the first non-finite output is node %d (%s). Stopping; "
                "%s. Try a lower --lr (--check-numerics finds the first "
                "layer and pass).",
                (double)loss, t->st.step, t->st.epoch + 1, t->st.batch, node,
                what, kept_checkpoint(t, kept, sizeof kept));
      return CLI_EXIT_FAILED;
    }
    if (s == CUDL_OK) s = run_batch_hits(r, lv, rows, &batch_hits);
    if (s == CUDL_OK) s = cudl_model_backward(r->model);
    if (s == CUDL_OK) s = cudl_model_check_gradients(r->model, &numerics);
    if (s == CUDL_OK && numerics.node >= 0) {
      cudl_tensor_destroy(xv);
      cudl_tensor_destroy(lv);
      cli_error("the gradients are not finite at step %" PRId64
                " (epoch %" PRId64 ", batch %" PRId64 "): %s has %" PRId64
                " NaN and %" PRId64 " infinite of %" PRId64
                " values (all parameters: %" PRId64 " NaN, %" PRId64
                " infinite). Stopping; %s. Try a lower --lr or --clip.",
                t->st.step, t->st.epoch + 1, t->st.batch, numerics.layer,
                numerics.nan_count, numerics.inf_count, numerics.numel,
                numerics.total_nan, numerics.total_inf,
                kept_checkpoint(t, kept, sizeof kept));
      return CLI_EXIT_FAILED;
    }
    /* fp16: gradients that overflowed the loss scale are not applied; the
     * model has halved the scale for the next step. */
    skipped = s == CUDL_OK && cudl_model_step_skipped(r->model);
    if (s == CUDL_OK && t->o.clip > 0.0 && !skipped)
      s = cudl_clip_grad_norm(r->ctx, cudl_model_grads(r->model),
                              (float)t->o.clip, NULL);
    if (s == CUDL_OK)
      s = cudl_lr_schedule_at(&t->sched, t->st.step, t->batches, &lr);
    if (s == CUDL_OK && !skipped)
      s = cudl_optimizer_step(r->opt, cudl_model_params(r->model),
                              cudl_model_grads(r->model), lr);
    cudl_tensor_destroy(xv);
    cudl_tensor_destroy(lv);
    if (s != CUDL_OK)
      return cli_fail(r->ctx, s, "training step %" PRId64, t->st.step + 1);
    ++t->st.step;
    ++t->st.batch;
    e->loss_sum += (double)loss * (double)rows;
    e->hits += batch_hits;
    e->seen += rows;
    e->skipped += skipped;
    if (t->diag_rows != NULL && t->st.step % t->o.diagnostics == 0) {
      int rc = write_diagnostics(t);
      if (rc != 0) return rc;
    }
    if (t->has_metrics && t->o.log_every > 0 &&
        t->st.step % t->o.log_every == 0) {
      int rc =
          metrics_printf(t,
                         "{\"step\": %" PRId64 ", \"epoch\": %" PRId64
                         ", \"loss\": %.6f, \"lr\": %.6g, "
                         "\"loss_scale\": %.9g}",
                         t->st.step, t->st.epoch + 1, (double)loss, (double)lr,
                         (double)cudl_model_loss_scale(r->model));
      if (rc != 0) return rc;
    }
    if (t->tty || t->st.batch % 50 == 0 || *done) {
      const double elapsed = now_seconds() - e->start;
      progress(t, e, (double)e->seen / (elapsed > 0.0 ? elapsed : 1e-9));
      if (t->tty)
        g_progress_open = 1;
      else
        fputc('\n', stderr);
    }
    if (t->st.step == t->interrupt_at) raise(SIGINT);
  }
  return 0;
}

/* The end of an epoch whose batches are all done: its evaluation, summary
 * and metrics line, and the checkpoint at the next epoch's start. */
static int finish_epoch(trainer *t, const epoch_totals *e, double *test_acc) {
  const double seconds = now_seconds() - e->start;
  const double train_loss = e->loss_sum / (double)e->seen;
  const double train_acc = (double)e->hits / (double)e->seen;
  double test_loss = 0.0;
  cudl_status s = run_evaluate(&t->r, t->r.test_loader, &test_loss, test_acc);
  if (s != CUDL_OK)
    return cli_fail(t->r.ctx, s, "evaluating epoch %" PRId64, t->st.epoch + 1);
  end_progress();
  printf("epoch %" PRId64
         "/%d  train loss %.4f  train acc %.4f  "
         "test loss %.4f  test acc %.4f  %.0f img/s  %.1f s\n",
         t->st.epoch + 1, t->o.epochs, train_loss, train_acc, test_loss,
         *test_acc, (double)e->seen / seconds, seconds);
  fflush(stdout);
  if (t->has_metrics) {
    int rc = metrics_printf(
        t,
        "{\"epoch\": %" PRId64
        ", \"train_loss\": %.6f, \"train_accuracy\": %.6f, "
        "\"test_loss\": %.6f, \"test_accuracy\": %.6f, "
        "\"images_per_second\": %.1f, \"seconds\": %.3f, "
        "\"precision\": \"%s\", \"loss_scale\": %.9g, "
        "\"skipped_steps\": %" PRId64 ", \"layout\": \"%s\"}",
        t->st.epoch + 1, train_loss, train_acc, test_loss, *test_acc,
        (double)e->seen / seconds, seconds, cudl_precision_name(t->o.precision),
        (double)cudl_model_loss_scale(t->r.model), e->skipped,
        cudl_layout_name(t->o.layout));
    if (rc != 0) return rc;
  }
  ++t->st.epoch;
  t->st.batch = 0;
  s = save_run(t);
  if (s != CUDL_OK)
    return cli_fail(t->r.ctx, s, "saving the checkpoint of epoch %" PRId64,
                    t->st.epoch);
  return 0;
}

static int train(trainer *t) {
  double run_start, test_acc = 0.0;
  int stale = remove_stale_temporaries(t->dir);
  if (t->o.resume != NULL)
    cli_note("resuming %s at epoch %" PRId64 ", batch %" PRId64
             ", step %" PRId64,
             t->o.resume, t->st.epoch + 1, t->st.batch, t->st.step);
  if (stale > 0)
    cli_note(
        "removed %d temporary file%s left in %s by a run that was killed "
        "while saving",
        stale, stale == 1 ? "" : "s", t->dir);
  cli_note("training %s on %s (%" PRId64 " images, %" PRId64
           " batches of %" PRId64 ") on %s, %lld parameters",
           t->o.model, t->o.data, cudl_dataset_count(t->r.train_set),
           t->batches, t->r.batch, cudl_context_device_name(t->r.ctx),
           (long long)cudl_tensor_numel(cudl_model_params(t->r.model)));
  signal(SIGINT, on_sigint);
  run_start = now_seconds();
  while (t->st.epoch < t->o.epochs) {
    epoch_totals e;
    int done = 0, rc;
    memset(&e, 0, sizeof e);
    e.start = now_seconds();
    if ((rc = train_batches(t, &e, &done)) != 0) return rc;
    if (!done) { /* interrupted within the epoch */
      cudl_status s = save_run(t);
      end_progress();
      cli_note("interrupted at epoch %" PRId64 ", batch %" PRId64
               "; %s %s (continue with --resume)",
               t->st.epoch + 1, t->st.batch,
               s == CUDL_OK ? "saved" : "could not save", t->checkpoint);
      return s == CUDL_OK ? CLI_EXIT_INTERRUPTED : CLI_EXIT_FAILED;
    }
    if ((rc = finish_epoch(t, &e, &test_acc)) != 0) return rc;
    if (g_interrupted && t->st.epoch < t->o.epochs) {
      cli_note("interrupted after epoch %" PRId64
               "; saved %s (continue with --resume)",
               t->st.epoch, t->checkpoint);
      return CLI_EXIT_INTERRUPTED;
    }
  }
  printf("final test accuracy %.4f after %d epochs (%.1f s); weights in %s\n",
         test_acc, t->o.epochs, now_seconds() - run_start, t->weights);
  return CLI_EXIT_OK;
}

int cudl__cmd_train(int argc, char **argv) {
  trainer t;
  int rc;
  cli_set_command("cudl train");
  cli_set_before_error(end_progress);
  memset(&t, 0, sizeof t);
  t.tty = isatty(2);
  rc = start(&t, argc, argv);
  if (rc == RUN_GO) rc = train(&t);
  if (t.has_metrics &&
      !cli_file_close(&t.metrics,
                      rc == CLI_EXIT_OK || rc == CLI_EXIT_INTERRUPTED) &&
      rc == CLI_EXIT_OK)
    rc = CLI_EXIT_FAILED;
  /* A run that failed before its first save leaves no directory it made:
   * rmdir takes only empty ones. */
  if (rc != CLI_EXIT_OK && rc != CLI_EXIT_INTERRUPTED)
    remove_made_dirs(t.dir, t.made_dirs);
  free(t.diag_rows);
  run_free(&t.r);
  return rc;
}
