/* run_dist.c - `cudl train` as one rank of a data-parallel job
 * (run_dist.h, docs/distributed.md).
 *
 * Rank 0 alone prints, evaluates and writes; every rank reads the data and
 * the checkpoint itself. The ranks must train the same thing: a hash of
 * everything that decides a step (the training options as the files
 * record them, the model's architecture, the training images and labels,
 * the normalisation) is compared before the first step, and a rank that
 * differs stops the job rather than train a silently different model. */
#include "run_dist.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/checkpoint.h>

#include "cli.h"
#include "run_config.h"

/* ---- the launcher's environment ---- */

/* An environment variable holding an integer in [lo, hi]; 0 when absent
 * or not such an integer. */
static int env_int(const char *name, long long lo, long long hi,
                   long long *out) {
  const char *text = getenv(name);
  return text != NULL && cli_parse_int(text, lo, hi, out);
}

void run_dist_detect(run_dist *d) {
  static const char *const ranks[] = {"OMPI_COMM_WORLD_RANK", "PMI_RANK",
                                      "PMIX_RANK", NULL};
  static char command[64];
  long long value = 0;
  int i;
  memset(d, 0, sizeof *d);
  d->world = 1;
  for (i = 0; ranks[i] != NULL; ++i)
    if (env_int(ranks[i], 0, 1 << 30, &value)) {
      d->launched = 1;
      d->rank = (int)value;
      break;
    }
  /* Each line one write, so that the launcher, which merges the ranks'
   * output, never splices one rank's line into another's. */
  d->local_rank = d->rank;
  {
    static const char *const locals[] = {"OMPI_COMM_WORLD_LOCAL_RANK",
                                         "MPI_LOCALRANKID", "SLURM_LOCALID",
                                         NULL};
    for (i = 0; d->launched && locals[i] != NULL; ++i)
      if (env_int(locals[i], 0, 1 << 30, &value)) {
        d->local_rank = (int)value;
        break;
      }
  }
  if (d->launched) setvbuf(stderr, NULL, _IOLBF, BUFSIZ);
  if (d->launched && d->rank != 0) {
    cli_set_quiet(1);
    snprintf(command, sizeof command, "cudl train (rank %d)", d->rank);
    cli_set_command(command);
  }
}

int run_dist_root(const run_dist *d) { return d->rank == 0; }

const char *run_dist_device(const run_dist *d, const char *device) {
  static char text[32];
  int count = 0;
  if (!d->launched ||
      (strcmp(device, "cuda") != 0 && strcmp(device, "auto") != 0))
    return device;
  /* No GPU: "cuda" fails at the context with the library's reason, and
   * "auto" takes the CPU, as for one process. */
  if (cudl_cuda_device_count(&count, NULL, 0) != CUDL_OK || count <= 0)
    return device;
  snprintf(text, sizeof text, "cuda:%d", d->local_rank % count);
  return text;
}

int run_dist_connect(run_dist *d, cudl_context *ctx, const char *backend) {
  const int on_gpu = cudl_context_device(ctx) == CUDL_DEVICE_CUDA;
  int nccl = strcmp(backend, "nccl") == 0;
  cudl_status s;
  if (strcmp(backend, "auto") == 0)
    nccl = on_gpu && cudl_comm_nccl_available();
  s = cudl_comm_create_mpi(ctx, &d->comm);
  if (s != CUDL_OK) return cli_fail(ctx, s, "starting MPI");
  /* Ranks that chose differently (their own --dist-backend, or auto on a
   * GPU here and the CPU there) would wait in different exchanges for
   * ever: they agree over MPI first, and end together if they do not. */
  {
    int same = 0;
    uint64_t lowest = 0, highest = 0;
    s = cudl_comm_agree(d->comm, (uint64_t)nccl, &same, &lowest, &highest);
    if (s != CUDL_OK)
      return cli_fail(ctx, s, "comparing the ranks' communicators");
    if (!same) {
      d->failed_together = 1;
      if (!run_dist_root(d)) return CLI_EXIT_FAILED;
      cli_error("the ranks do not choose the same communicator: this rank "
                "takes %s, another %s (--dist-backend %s here): give every "
                "rank the same --dist-backend and the same kind of device",
                nccl ? "nccl" : "mpi", nccl ? "mpi" : "nccl", backend);
      return CLI_EXIT_FAILED;
    }
  }
  if (!nccl) return 0;
  d->bootstrap = d->comm;
  d->comm = NULL;
  s = cudl_comm_create_nccl(ctx, d->bootstrap, &d->comm);
  if (s != CUDL_OK) {
    /* run_dist_finish ends the job through the MPI communicator. */
    d->comm = d->bootstrap;
    d->bootstrap = NULL;
    return cli_fail(ctx, s, "--dist-backend nccl");
  }
  return 0;
}

int run_dist_check_build(const run_dist *d) {
  if (!d->launched || cudl_comm_mpi_available()) return 0;
  cli_error(
      "started by an MPI launcher (rank %d), but this cudl was built "
      "without MPI: install Open MPI's development files (Debian: "
      "libopenmpi-dev) and rebuild with -DCUDL_MPI=ON, or run one "
      "process without mpirun",
      d->rank);
  return CLI_EXIT_FAILED;
}

int run_dist_start(run_dist *d, run *r, const options *o) {
  cudl_status s;
  int rc;
  r->rank = 0;
  r->world = 1;
  if (!d->launched) return 0;
  rc = run_dist_connect(d, r->ctx, o->dist_backend);
  if (rc != 0) return rc;
  if (cudl_comm_rank(d->comm) != d->rank) {
    cli_error("the launcher's environment says rank %d, MPI says rank %d",
              d->rank, cudl_comm_rank(d->comm));
    return CLI_EXIT_FAILED;
  }
  s = cudl_comm_set_timeout(d->comm, o->dist_timeout);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "--dist-timeout");
  d->world = cudl_comm_size(d->comm);
  r->rank = d->rank;
  r->world = d->world;
  cli_note("data parallel over %d rank%s (%s): --batch %" PRId64
           " per rank, a global batch of %" PRId64
           "; rank 0 alone prints and writes",
           d->world, d->world == 1 ? "" : "s", cudl_comm_backend(d->comm),
           o->batch, o->batch * d->world);
  return 0;
}

/* ---- agreement ---- */

/* FNV-1a, 64 bits: a digest for comparing ranks, not for security. */
static void hash_bytes(uint64_t *h, const void *data, size_t size) {
  const unsigned char *p = (const unsigned char *)data;
  size_t i;
  for (i = 0; i < size; ++i) {
    *h ^= p[i];
    *h *= 0x100000001b3ull;
  }
}

static void hash_text(uint64_t *h, const char *text) {
  if (text == NULL) text = "";
  hash_bytes(h, text, strlen(text) + 1);
}

static void hash_int(uint64_t *h, int64_t v) { hash_bytes(h, &v, sizeof v); }

/* The configuration's digest; 0 and one line printed when the model
 * cannot be described. */
static int config_hash(run *r, const options *o, uint64_t *out) {
  uint64_t h = 0xcbf29ce484222325ull;
  run_config_record record;
  size_t k, length = 0;
  int64_t i;
  char *text;
  cudl_status s;
  const cudl_dataset *ds = r->train_set;
  run_config_record_make(o, &record);
  for (k = 0; k < record.count; ++k) {
    hash_text(&h, record.keys[k]);
    hash_text(&h, record.values[k]);
  }
  hash_int(&h, o->batch);
  hash_bytes(&h, &o->val_split, sizeof o->val_split);
  hash_int(&h, o->steps);
  hash_int(&h, o->check_numerics);
  hash_bytes(&h, r->mean, sizeof r->mean);
  hash_bytes(&h, r->std, sizeof r->std);
  s = cudl_model_describe(r->model, NULL, 0, &length);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "describing the model"), 0;
  text = (char *)malloc(length + 1);
  if (text == NULL) {
    cli_error("out of host memory for the model's description");
    return 0;
  }
  s = cudl_model_describe(r->model, text, length + 1, NULL);
  if (s == CUDL_OK) hash_text(&h, text);
  free(text);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "describing the model"), 0;
  hash_int(&h, cudl_dataset_count(ds));
  hash_int(&h, cudl_dataset_channels(ds));
  hash_int(&h, cudl_dataset_height(ds));
  hash_int(&h, cudl_dataset_width(ds));
  hash_int(&h, cudl_dataset_classes(ds));
  {
    const size_t image = (size_t)cudl_dataset_channels(ds) *
                         (size_t)cudl_dataset_height(ds) *
                         (size_t)cudl_dataset_width(ds);
    for (i = 0; i < cudl_dataset_count(ds); ++i) {
      hash_bytes(&h, cudl_dataset_image(ds, i), image);
      hash_int(&h, cudl_dataset_label(ds, i));
    }
  }
  *out = h;
  return 1;
}

/* The world size a checkpoint was saved by: its train.world, 1 when it
 * records none (a single-process run of an earlier cudl); 0 and one line
 * printed when the value is malformed. An unreadable file records nothing
 * here: loading it has failed already with the reason. */
static int64_t checkpoint_world(run *r, const char *path) {
  cudl_safetensors *set = NULL;
  const char *text;
  long long world = 1;
  if (cudl_safetensors_load(r->ctx, path, CUDL_SAFETENSORS_HEADER_ONLY,
                            &set) != CUDL_OK)
    return 1;
  text = cudl_safetensors_metadata_find(set, "train.world");
  if (text != NULL && !cli_parse_int(text, 1, 1 << 30, &world)) {
    cli_error("--resume %s: its metadata \"train.world\" is \"%s\", not a "
              "number of ranks",
              path, text);
    world = 0;
  }
  cudl_safetensors_destroy(set);
  return world;
}

int run_dist_agree(run_dist *d, run *r, const options *o) {
  uint64_t hash = 0, lowest = 0, highest = 0;
  int same = 0;
  cudl_status s;
  if (o->resume != NULL) {
    const int64_t saved = checkpoint_world(r, o->resume);
    if (saved == 0) return CLI_EXIT_FAILED;
    if (saved != d->world) {
      cli_error("--resume %s was saved by a run over %" PRId64
                " rank%s, not %d: each rank's share of a global batch and "
                "the position in the epoch depend on the number of ranks; "
                "resume it with mpirun -np %" PRId64
                " (or start from its weights with --init)",
                o->resume, saved, saved == 1 ? "" : "s", d->world, saved);
      return CLI_EXIT_FAILED;
    }
  }
  if (d->world == 1) {
    if (o->sync_bn)
      cli_note("--sync-bn with one process: batch norm's statistics are "
               "already those of the whole batch");
    return 0;
  }
  if (!config_hash(r, o, &hash)) return CLI_EXIT_FAILED;
  s = cudl_comm_agree(d->comm, hash, &same, &lowest, &highest);
  if (s != CUDL_OK)
    return cli_fail(r->ctx, s, "comparing the ranks' configurations");
  if (!same) {
    /* Every rank knows: they end together, rank 0 saying why. */
    d->failed_together = 1;
    if (!run_dist_root(d)) return CLI_EXIT_FAILED;
    cli_error("the ranks do not train the same configuration (this rank's "
              "digest %016" PRIx64 "; they range from %016" PRIx64
              " to %016" PRIx64
              "): give every rank the same options, model and data",
              hash, lowest, highest);
    return CLI_EXIT_FAILED;
  }
  s = cudl_comm_broadcast_params(d->comm, r->model, 0);
  if (s != CUDL_OK)
    return cli_fail(r->ctx, s, "sending rank 0's weights to every rank");
  if (o->sync_bn && (s = cudl_model_set_sync_bn(r->model, d->comm)) != CUDL_OK)
    return cli_fail(r->ctx, s, "synchronising batch norm over the ranks");
  /* Recorded with the run (train.grad-wire): a 16-bit wire rounds the
   * sums. */
  s = cudl_model_set_grad_wire(r->model, o->grad_wire);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "choosing the gradients' wire");
  /* Not recorded with the run: it decides when the gradients move, not
   * their values (docs/distributed.md). */
  s = cudl_model_set_grad_sync(r->model, d->comm,
                               run_dist_bucket_bytes(o->bucket_mb));
  if (s != CUDL_OK)
    return cli_fail(r->ctx, s, "averaging the gradients during backward");
  return 0;
}

/* ---- steps ---- */

int64_t run_dist_bucket_bytes(double mb) {
  return (int64_t)(mb * 1048576.0 + 0.5);
}

cudl_status run_dist_step(run_dist *d, float *loss, int64_t *rows,
                          int64_t *hits, int *stop) {
  double sums[4];
  cudl_status s;
  if (d->world == 1) return CUDL_OK;
  sums[0] = (double)*loss * (double)*rows;
  sums[1] = (double)*rows;
  sums[2] = (double)*hits;
  sums[3] = *stop ? 1.0 : 0.0;
  s = cudl_comm_allreduce_sum_f64(d->comm, sums, 4);
  if (s != CUDL_OK) return s;
  *stop = sums[3] > 0.0;
  *loss = sums[1] > 0.0 ? (float)(sums[0] / sums[1]) : 0.0f;
  *rows = (int64_t)sums[1];
  *hits = (int64_t)sums[2];
  return CUDL_OK;
}

int run_dist_finish(run_dist *d, int rc) {
  if (d->comm == NULL) return rc;
  /* An interrupted run stopped every rank at the same step (run_dist_step):
   * it ends as a finished one does. */
  if (rc != CLI_EXIT_OK && rc != CLI_EXIT_INTERRUPTED && d->world > 1 &&
      !d->failed_together) {
    /* The other ranks may be waiting in a collective for this one. */
    fflush(stdout);
    fflush(stderr);
    cudl_comm_abort(d->comm, rc);
  }
  /* NCCL's communicator before the MPI one it was created over. */
  cudl_comm_destroy(d->comm);
  cudl_comm_destroy(d->bootstrap);
  d->comm = NULL;
  d->bootstrap = NULL;
  return rc;
}
