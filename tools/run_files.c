/* run_files.c - the files of a training run's directory (run_files.h). */
#include "run_files.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cudl/checkpoint.h>
#include <cudl/cudl.h>
#include <cudl/data.h>

#include "cli.h"
#include "cli_file.h"
#include "run_config.h"

int run_files_name(run_files *f, const options *o) {
  if (o->out_dir != NULL) {
    snprintf(f->dir, sizeof f->dir, "%s", o->out_dir);
  } else if (o->resume != NULL) {
    /* A resumed run goes on in its checkpoint's directory. */
    const char *slash = strrchr(o->resume, '/');
    if (slash == NULL)
      snprintf(f->dir, sizeof f->dir, ".");
    else if (slash == o->resume)
      snprintf(f->dir, sizeof f->dir, "/");
    else
      snprintf(f->dir, sizeof f->dir, "%.*s", (int)(slash - o->resume),
               o->resume);
  } else {
    char model[128], data[128];
    run_model_label(o, model, sizeof model);
    run_data_label(o, data, sizeof data);
    snprintf(f->dir, sizeof f->dir, "runs/%s-%s", model, data);
  }
  if (strlen(f->dir) >= sizeof f->dir - 1)
    return cli_usage_error("--out %s: %s", f->dir, strerror(ENAMETOOLONG));
  snprintf(f->checkpoint, sizeof f->checkpoint, "%s/checkpoint.safetensors",
           f->dir);
  snprintf(f->weights, sizeof f->weights, "%s/model.safetensors", f->dir);
  snprintf(f->best, sizeof f->best, "%s/best.safetensors", f->dir);
  return 0;
}

const char *run_files_kept(const run_files *f, int rank, char *text,
                           size_t size) {
  if (rank != 0)
    snprintf(text, size,
             "rank 0 writes the checkpoints: the last one it saved, if any, "
             "is kept in %s on its machine",
             f->dir);
  else if (access(f->checkpoint, F_OK) == 0)
    snprintf(text, size, "the last checkpoint in %s is kept", f->dir);
  else
    snprintf(text, size, "no checkpoint was saved yet");
  return text;
}

/* rmdir stops at the first directory that is not empty, so nothing of
 * anyone else's goes. */
void run_files_remove_made(const run_files *f) {
  char buf[1024];
  size_t n;
  if (f->made_dirs == 0) return;
  snprintf(buf, sizeof buf, "%s", f->dir);
  n = strlen(buf);
  while (n >= f->made_dirs) {
    buf[n] = '\0';
    if (rmdir(buf) != 0) return;
    while (n > 0 && buf[n - 1] == '/') --n;
    while (n > 0 && buf[n - 1] != '/') --n;
    while (n > 0 && buf[n - 1] == '/') --n;
  }
}

/* The bytes the first save writes: the checkpoint (every model tensor and
 * the optimizer's state), the weights file and, with --val-split, the best
 * weights (every model tensor each), f32, with room for their headers. */
static uint64_t first_save_bytes(const run *r, const options *o) {
  uint64_t tensors = 0, bytes;
  int k, n = cudl_model_param_count(r->model);
  for (k = 0; k < n; ++k)
    tensors += (uint64_t)cudl_tensor_numel(
        cudl_model_param(r->model, cudl_model_param_name(r->model, k, NULL)));
  bytes = (o->val_split > 0.0 ? 3 : 2) * tensors +
          (uint64_t)cudl_optimizer_state_count(r->opt) *
              (uint64_t)cudl_tensor_numel(cudl_model_params(r->model));
  return 4 * bytes + 3 * 65536;
}

/* The directory is proven writable with room for the first save by
 * reserving that much in a file made and removed in it: an output that
 * cannot be written (under a regular file, on a read-only, pseudo or full
 * file system, without permission) then fails before training, not after
 * the first epoch. */
int run_files_make(run_files *f, const run *r, const options *o) {
  static const char *const files[] = {"checkpoint.safetensors",
                                      "model.safetensors", "best.safetensors"};
  char buf[1200];
  const char *dir = f->dir;
  size_t i, n = strlen(dir);
  uint64_t room;
  struct stat st;
  int fd, k, error;
  f->made_dirs = 0;
  memcpy(buf, dir, n + 1);
  for (i = 1; i <= n; ++i)
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) == 0) {
        if (f->made_dirs == 0) f->made_dirs = i;
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
  room = first_save_bytes(r, o);
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
  for (k = 0; k < (o->val_split > 0.0 ? 3 : 2); ++k) {
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
 * run_files_make's probe; neither is mistaken for the checkpoint, but
 * crashes would pile them up. The next run in the directory removes those
 * of processes that are gone (a live one's may be a save in progress) and
 * this process's own (its pid reused: it has saved nothing yet). Returns
 * how many it removed. */
int run_files_remove_stale(const run_files *f) {
  static const char *const prefixes[] = {
      "checkpoint.safetensors.tmp.", "model.safetensors.tmp.",
      "best.safetensors.tmp.", ".cudl-write-test."};
  char path[1400];
  DIR *d = opendir(f->dir);
  struct dirent *e;
  int removed = 0, k;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL)
    for (k = 0; k < 4; ++k) {
      const size_t len = strlen(prefixes[k]);
      long pid;
      if (strncmp(e->d_name, prefixes[k], len) != 0) continue;
      pid = temporary_pid(e->d_name + len);
      if (pid == 0 || (pid != (long)getpid() &&
                       (kill((pid_t)pid, 0) == 0 || errno != ESRCH)))
        continue;
      snprintf(path, sizeof path, "%s/%s", f->dir, e->d_name);
      if (unlink(path) == 0) ++removed;
    }
  closedir(d);
  return removed;
}

/* The metadata of every file a run saves, the texts in the buffers: what
 * the weights are (model, dataset, normalisation, batch size, classes)
 * and the training configuration; a checkpoint adds its position's. */
typedef struct run_metadata {
  char mean[128], std[128], batch[32], world[16];
  run_config_record config;
  cudl_metadata_pair pairs[11 + RUN_CONFIG_SETTINGS];
  size_t count;
} run_metadata;

static void weights_metadata(run_metadata *m, const run *r, const options *o) {
  run_normalisation_text(r, m->mean, m->std, sizeof m->mean);
  snprintf(m->batch, sizeof m->batch, "%" PRId64, o->batch);
  m->pairs[0].key = "model";
  m->pairs[0].value = o->model;
  m->pairs[1].key = "dataset";
  m->pairs[1].value = o->data;
  m->pairs[2].key = "normalize.mean";
  m->pairs[2].value = m->mean;
  m->pairs[3].key = "normalize.std";
  m->pairs[3].value = m->std;
  m->pairs[4].key = "batch_size";
  m->pairs[4].value = m->batch;
  m->count = 5;
  if (r->class_names != NULL) {
    m->pairs[5].key = "classes";
    m->pairs[5].value = r->class_names;
    m->count = 6;
  }
  run_config_record_make(o, &m->config);
  memcpy(m->pairs + m->count, m->config.pairs,
         m->config.count * sizeof *m->pairs);
  m->count += m->config.count;
  /* The ranks of a data-parallel run (run_dist.c): a resumed run needs as
   * many. */
  snprintf(m->world, sizeof m->world, "%d", r->world > 1 ? r->world : 1);
  m->pairs[m->count].key = "train.world";
  m->pairs[m->count].value = m->world;
  ++m->count;
}

/* The position saved is always within an epoch (batch < batches): an
 * epoch whose batches are all done is finished, evaluated and saved as
 * the next one's start. The best epoch's values are written with %.17g:
 * read back, they compare exactly as the run compared them. */
cudl_status run_files_save(const run_files *f, run *r, const options *o,
                           cudl_train_state *st, const run_best *best) {
  char split[32], epoch[32], loss[32], accuracy[32];
  run_metadata m;
  cudl_status s;
  size_t weights_pairs;
  weights_metadata(&m, r, o);
  weights_pairs = m.count;
  cudl_context_rng_state(r->ctx, &st->rng_seed, &st->rng_offset);
  if (o->val_split > 0.0) {
    snprintf(split, sizeof split, "%.17g", o->val_split);
    snprintf(epoch, sizeof epoch, "%" PRId64, best->epoch);
    snprintf(loss, sizeof loss, "%.17g", best->val_loss);
    snprintf(accuracy, sizeof accuracy, "%.17g", best->val_accuracy);
    const size_t at = m.count;
    m.pairs[at].key = "val_split";
    m.pairs[at].value = split;
    m.pairs[at + 1].key = "best.epoch";
    m.pairs[at + 1].value = epoch;
    m.pairs[at + 2].key = "best.val_loss";
    m.pairs[at + 2].value = loss;
    m.pairs[at + 3].key = "best.val_accuracy";
    m.pairs[at + 3].value = accuracy;
    m.count = at + 4;
  }
  s = cudl_checkpoint_save(r->model, r->opt, st, m.pairs, m.count,
                           f->checkpoint);
  /* The weights file has the pairs that say what the weights are and how
   * they were trained, not the checkpoint's best epoch. */
  if (s == CUDL_OK)
    s = cudl_model_save(r->model, f->weights, m.pairs, weights_pairs);
  return s;
}

cudl_status run_files_save_best(const run_files *f, run *r, const options *o) {
  run_metadata m;
  weights_metadata(&m, r, o);
  return cudl_model_save(r->model, f->best, m.pairs, m.count);
}

int run_files_read_best(const cudl_safetensors *set, run_best *best) {
  const char *epoch = cudl_safetensors_metadata_find(set, "best.epoch");
  const char *loss = cudl_safetensors_metadata_find(set, "best.val_loss");
  const char *accuracy =
      cudl_safetensors_metadata_find(set, "best.val_accuracy");
  long long e = 0;
  memset(best, 0, sizeof *best);
  if (epoch == NULL && loss == NULL && accuracy == NULL) return 0;
  if (epoch == NULL || loss == NULL || accuracy == NULL ||
      !cli_parse_int(epoch, 0, INT64_MAX, &e) ||
      !cli_parse_double(loss, &best->val_loss) ||
      !cli_parse_double(accuracy, &best->val_accuracy))
    return -1;
  best->epoch = e;
  return 0;
}

int run_files_check_outputs(const run_files *f, const options *o,
                            const run *r) {
  const cudl_dataset *sets[2];
  int k, i;
  /* The validation images are the training set's: the same files. */
  struct {
    const char *path, *what;
  } taken[5];
  taken[0].path = f->checkpoint;
  taken[0].what = "the run's checkpoint";
  taken[1].path = f->weights;
  taken[1].what = "the run's weights file";
  taken[2].path = o->resume;
  taken[2].what = "the checkpoint --resume reads";
  taken[3].path = o->init;
  taken[3].what = "the weights --init reads";
  taken[4].path = o->val_split > 0.0 ? f->best : NULL;
  taken[4].what = "the run's best weights file";
  if (o->metrics == NULL) return 0;
  for (k = 0; k < 5; ++k)
    if (taken[k].path != NULL && cli_same_file(o->metrics, taken[k].path))
      return cli_usage_error(
          "--metrics %s is %s (%s): the metrics need a file of their own",
          o->metrics, taken[k].what, taken[k].path);
  sets[0] = r->train_set;
  sets[1] = r->test_set;
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
