/*
 * make_checkpoint_corpus.c - writes fuzz_checkpoint's seed corpus.
 *
 *   make_checkpoint_corpus DIR          write the seeds into DIR
 *   make_checkpoint_corpus --check DIR  write them into a private temporary
 *                                       directory and compare them byte for
 *                                       byte with DIR's files of the same
 *                                       names (ctest
 *                                       fuzz_checkpoint_corpus_current)
 *
 * The seeds are checkpoints of the model of fuzz_checkpoint_model.h written
 * by cudl_checkpoint_save (without an optimizer and with each kind of
 * optimizer state), then files that break one rule each, written with
 * cudl_safetensors_save so that only that rule is broken (a bad number, a
 * missing key, an optimizer state or model tensor of the wrong shape,
 * dtype or name, a value that is not finite), and truncated copies. Each seed
 * is loaded back here and must give its expected status and, when it fails,
 * leave the model and optimizers as they were; so a seed that stops testing
 * what its name says fails the generator instead of silently becoming another
 * seed. To regenerate after a deliberate format change:
 *   <build>/tests/fuzz/make_checkpoint_corpus tests/fuzz/corpus-checkpoint
 * Files in DIR that the generator does not write (reproducers kept from
 * fuzzing) are left alone and not checked.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <inttypes.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cudl/cudl.h"
#include "fuzz_checkpoint_model.h"

#define MAX_TENSORS 16
#define MAX_META 16
#define MAX_SEEDS 32
#define PATH_LEN 4096

/* The values every seed's model and optimizers hold (exact fractions). */
#define SEED_BASE 0.25f

static fuzz_ckpt_fixture fixture;
static char out_dir[PATH_LEN];
static const char *seed_names[MAX_SEEDS];
static int seed_count;

static void fail(const char *what, const char *seed) {
  fprintf(stderr, "make_checkpoint_corpus: %s: %s (%s)\n", seed, what,
          fixture.ctx != NULL ? cudl_context_last_error(fixture.ctx) : "");
  exit(1);
}

static void seed_path(char *buf, const char *dir, const char *name) {
  if ((size_t)snprintf(buf, PATH_LEN, "%s/%s", dir, name) >= PATH_LEN)
    fail("path too long", name);
}

/* A checkpoint's contents, spelled out as cudl_checkpoint_save lays them
 * out (model tensors, then "optimizer.<state>"; the same metadata in the
 * same order), so that a seed can break exactly one thing. */
typedef struct builder {
  cudl_named_tensor tensors[MAX_TENSORS];
  size_t n_tensors;
  cudl_metadata_pair meta[MAX_META];
  size_t n_meta;
  char state_names[2][64];
  char numbers[7][32];
  char architecture[8192]; /* the model file of the fixture's model */
  cudl_tensor *owned[MAX_TENSORS];
  int n_owned;
} builder;

static const cudl_train_state seed_state = {2,     3,  41,
                                            12345, 42, (uint64_t)1 << 33};

static void prepare(int opt_index, int64_t steps) {
  if (fuzz_ckpt_fill(&fixture, SEED_BASE, 0) != CUDL_OK ||
      (opt_index >= 0 &&
       cudl_optimizer_set_steps(fixture.opt[opt_index], steps) != CUDL_OK))
    fail("cannot set the model up", "fixture");
}

static void builder_start(builder *b, int opt_index, int64_t steps) {
  static const char *const kinds[FUZZ_CKPT_OPTIMIZERS] = {"sgd", "sgd", "adam",
                                                          "adamw"};
  cudl_optimizer *opt = opt_index < 0 ? NULL : fixture.opt[opt_index];
  const char *keys[13] = {"cudl.format",
                          "cudl.epoch",
                          "cudl.batch",
                          "cudl.step",
                          "cudl.data_seed",
                          "cudl.rng_seed",
                          "cudl.rng_offset",
                          "cudl.optimizer_steps",
                          "cudl.optimizer",
                          "cudl.precision",
                          "cudl.loss_scale",
                          "cudl.loss_scale_clean_steps",
                          "cudl.layout"};
  int k;
  prepare(opt_index, steps);
  memset(b, 0, sizeof *b);
  for (k = 0; k < cudl_model_param_count(fixture.model); ++k) {
    const char *name = cudl_model_param_name(fixture.model, k, NULL);
    b->tensors[b->n_tensors].name = name;
    b->tensors[b->n_tensors++].tensor = cudl_model_param(fixture.model, name);
  }
  for (k = 0; k < cudl_optimizer_state_count(opt); ++k) {
    const char *name = NULL;
    cudl_tensor *t = cudl_optimizer_state(opt, k, &name);
    snprintf(b->state_names[k], sizeof b->state_names[k], "optimizer.%s", name);
    b->tensors[b->n_tensors].name = b->state_names[k];
    b->tensors[b->n_tensors++].tensor = t;
  }
  snprintf(b->numbers[0], 32, "%" PRId64, seed_state.epoch);
  snprintf(b->numbers[1], 32, "%" PRId64, seed_state.batch);
  snprintf(b->numbers[2], 32, "%" PRId64, seed_state.step);
  snprintf(b->numbers[3], 32, "%" PRIu64, seed_state.data_seed);
  snprintf(b->numbers[4], 32, "%" PRIu64, seed_state.rng_seed);
  snprintf(b->numbers[5], 32, "%" PRIu64, seed_state.rng_offset);
  snprintf(b->numbers[6], 32, "%" PRId64, opt == NULL ? (int64_t)0 : steps);
  for (k = 0; k < 9; ++k) {
    b->meta[k].key = keys[k];
    b->meta[k].value = k == 0   ? "checkpoint-1"
                       : k == 8 ? (opt == NULL ? "none" : kinds[opt_index])
                                : b->numbers[k - 1];
  }
  /* The fixture's model is fp32 (no loss scaling) and NCHW. */
  b->meta[9].key = keys[9];
  b->meta[9].value = "fp32";
  b->meta[10].key = keys[10];
  b->meta[10].value = "1";
  b->meta[11].key = keys[11];
  b->meta[11].value = "0";
  b->meta[12].key = keys[12];
  b->meta[12].value = "nchw";
  /* cudl_checkpoint_save stores the model's file after its own keys. */
  if (cudl_model_describe(fixture.model, b->architecture,
                          sizeof b->architecture, NULL) != CUDL_OK)
    fail("cannot describe the model", "fixture");
  b->meta[13].key = CUDL_METADATA_ARCHITECTURE;
  b->meta[13].value = b->architecture;
  b->n_meta = 14;
}

/* Replace (or with value NULL remove) metadata `key`. */
static void builder_meta(builder *b, const char *key, const char *value) {
  size_t i;
  for (i = 0; i < b->n_meta; ++i)
    if (strcmp(b->meta[i].key, key) == 0) break;
  if (i == b->n_meta) {
    if (value == NULL || b->n_meta == MAX_META) fail("bad metadata", key);
    b->meta[b->n_meta].key = key;
    b->meta[b->n_meta++].value = value;
  } else if (value != NULL) {
    b->meta[i].value = value;
  } else {
    memmove(&b->meta[i], &b->meta[i + 1],
            (b->n_meta - i - 1) * sizeof b->meta[0]);
    --b->n_meta;
  }
}

/* Replace (or with t NULL remove, or add) tensor `name`; the builder owns t
 * (a new tensor or a view), whose values are the pattern's where it has
 * f32 values of its own. */
static void builder_tensor(builder *b, const char *name, cudl_tensor *t) {
  size_t i;
  if (t != NULL) {
    if (b->n_owned == MAX_TENSORS) fail("too many tensors", name);
    b->owned[b->n_owned++] = t;
  }
  for (i = 0; i < b->n_tensors; ++i)
    if (strcmp(b->tensors[i].name, name) == 0) break;
  if (i == b->n_tensors) {
    if (t == NULL || b->n_tensors == MAX_TENSORS) fail("bad tensor", name);
    b->tensors[b->n_tensors].name = name;
    b->tensors[b->n_tensors++].tensor = t;
  } else if (t != NULL) {
    b->tensors[i].tensor = t;
  } else {
    memmove(&b->tensors[i], &b->tensors[i + 1],
            (b->n_tensors - i - 1) * sizeof b->tensors[0]);
    --b->n_tensors;
  }
}

static cudl_tensor *new_tensor(cudl_dtype dtype, int ndim,
                               const int64_t *shape) {
  cudl_tensor *t = NULL;
  if (cudl_tensor_create(fixture.ctx, dtype, ndim, shape, &t) != CUDL_OK ||
      (dtype == CUDL_DTYPE_F32 && cudl_tensor_fill(t, 0.75f) != CUDL_OK))
    fail("cannot create a tensor", cudl_dtype_name(dtype));
  return t;
}

/* t, every value set to `value`. */
static cudl_tensor *filled(cudl_tensor *t, float value) {
  if (cudl_tensor_fill(t, value) != CUDL_OK) fail("cannot fill", "a tensor");
  return t;
}

static void builder_write(builder *b, const char *dir, const char *name) {
  char path[PATH_LEN];
  int k;
  seed_path(path, dir, name);
  if (cudl_safetensors_save(fixture.ctx, path, b->tensors, b->n_tensors,
                            b->meta, b->n_meta) != CUDL_OK)
    fail("cannot write", name);
  for (k = 0; k < b->n_owned; ++k) cudl_tensor_destroy(b->owned[k]);
  b->n_owned = 0;
}

/* Load seed `name` into the fixture with optimizer opt_index (-1: none)
 * and require `expected`; a failure must leave everything as it was. */
static void verify(const char *name, int opt_index, cudl_status expected) {
  char path[PATH_LEN];
  cudl_train_state state;
  cudl_status s;
  int k;
  if (seed_count == MAX_SEEDS) fail("too many seeds", name);
  seed_names[seed_count++] = name;
  seed_path(path, out_dir, name);
  if (fuzz_ckpt_fill(&fixture, 2.0f, 11) != CUDL_OK) fail("cannot fill", name);
  s = cudl_checkpoint_load(fixture.model,
                           opt_index < 0 ? NULL : fixture.opt[opt_index],
                           &state, path);
  if (s != expected) {
    fprintf(stderr, "make_checkpoint_corpus: %s: %s, expected %s\n", name,
            cudl_status_name(s), cudl_status_name(expected));
    fail("unexpected status", name);
  }
  for (k = FUZZ_CKPT_MODEL; k < FUZZ_CKPT_OPTIMIZERS; ++k) {
    /* Loaded: the saved pattern; otherwise the one filled in above. */
    float base = s == CUDL_OK && (k == FUZZ_CKPT_MODEL || k == opt_index)
                     ? SEED_BASE
                     : 2.0f;
    if (!fuzz_ckpt_holds(&fixture, k, base))
      fail(s == CUDL_OK ? "the load did not restore the saved values"
                        : "a failed load changed the model or the optimizer",
           name);
  }
}

static void save(const char *name, int opt_index, int64_t steps,
                 const cudl_train_state *state, const cudl_metadata_pair *extra,
                 size_t n_extra) {
  char path[PATH_LEN];
  prepare(opt_index, steps);
  seed_path(path, out_dir, name);
  if (cudl_checkpoint_save(fixture.model,
                           opt_index < 0 ? NULL : fixture.opt[opt_index], state,
                           extra, n_extra, path) != CUDL_OK)
    fail("cannot save", name);
  verify(name, opt_index, CUDL_OK);
}

/* The first `keep` bytes of seed `from` (keep < 0: all but -keep). */
static void truncated(const char *name, const char *from, long keep,
                      cudl_status expected) {
  char src[PATH_LEN], dst[PATH_LEN];
  unsigned char bytes[16384];
  size_t n;
  FILE *f;
  seed_path(src, out_dir, from);
  seed_path(dst, out_dir, name);
  f = fopen(src, "rb");
  if (f == NULL) fail("cannot read", from);
  n = fread(bytes, 1, sizeof bytes, f);
  if (ferror(f) || !feof(f)) fail("cannot read all of", from);
  fclose(f);
  n = keep < 0 ? n - (size_t)-keep : (size_t)keep;
  f = fopen(dst, "wb");
  if (f == NULL || fwrite(bytes, 1, n, f) != n || fclose(f) != 0)
    fail("cannot write", name);
  verify(name, FUZZ_CKPT_ADAM, expected);
}

static void write_seeds(void) {
  static const cudl_train_state extremes = {INT64_MAX,  0, INT64_MAX,
                                            UINT64_MAX, 0, UINT64_MAX};
  static const cudl_metadata_pair extra[2] = {{"note", "fuzz seed"},
                                              {"run", ""}};
  /* The optimizers' state has the parameter arena's length. */
  const int64_t arena = cudl_tensor_numel(cudl_model_params(fixture.model));
  const int64_t state_shape[2] = {1, arena}, short_shape[1] = {arena - 1},
                fc_t[2] = {8, 2}, two[1] = {2};
  builder b;
  cudl_tensor *view = NULL;
  char path[PATH_LEN];

  /* Real checkpoints, one per kind of optimizer state. */
  save("valid_none.safetensors", -1, 0, &seed_state, NULL, 0);
  save("valid_sgd.safetensors", FUZZ_CKPT_SGD, 3, &seed_state, NULL, 0);
  save("valid_sgd_momentum.safetensors", FUZZ_CKPT_SGD_MOMENTUM, 5, &seed_state,
       NULL, 0);
  save("valid_adam.safetensors", FUZZ_CKPT_ADAM, 9, &seed_state, NULL, 0);
  save("valid_adamw_extremes.safetensors", FUZZ_CKPT_ADAMW, INT64_MAX,
       &extremes, extra, 2);

  /* The builder reproduces the saver's bytes, so each bad seed below
   * differs from a real checkpoint by its one flaw. */
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_write(&b, out_dir, "builder_check.tmp");
  {
    char a[PATH_LEN], c[PATH_LEN];
    FILE *fa, *fc;
    int x = 0, y = 0;
    seed_path(a, out_dir, "valid_adam.safetensors");
    seed_path(c, out_dir, "builder_check.tmp");
    fa = fopen(a, "rb");
    fc = fopen(c, "rb");
    if (fa == NULL || fc == NULL) fail("cannot read", "builder_check.tmp");
    while (x == y && x != EOF) {
      x = getc(fa);
      y = getc(fc);
    }
    fclose(fa);
    fclose(fc);
    remove(c);
    if (x != y)
      fail("the builder no longer writes what cudl_checkpoint_save writes",
           "builder_check.tmp");
  }

  /* A weights file (cudl_model_save) is not a checkpoint. */
  prepare(-1, 0);
  seed_path(path, out_dir, "bad_weights_only.safetensors");
  if (cudl_model_save(fixture.model, path, NULL, 0) != CUDL_OK)
    fail("cannot save", "bad_weights_only.safetensors");
  verify("bad_weights_only.safetensors", -1, CUDL_ERR_FILE_METADATA);

  /* Metadata. */
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.format", "checkpoint-2");
  builder_write(&b, out_dir, "bad_format_version.safetensors");
  verify("bad_format_version.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.rng_offset", NULL);
  builder_write(&b, out_dir, "bad_missing_rng_offset.safetensors");
  verify("bad_missing_rng_offset.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);
  /* An fp16 checkpoint's loss scale must be a finite positive number. */
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.precision", "fp16");
  builder_meta(&b, "cudl.loss_scale", "inf");
  builder_write(&b, out_dir, "bad_loss_scale_inf.safetensors");
  verify("bad_loss_scale_inf.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.precision", "fp16");
  builder_meta(&b, "cudl.loss_scale_clean_steps", NULL);
  builder_write(&b, out_dir, "bad_missing_loss_scale_steps.safetensors");
  verify("bad_missing_loss_scale_steps.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.epoch", "+1");
  builder_write(&b, out_dir, "bad_number_plus.safetensors");
  verify("bad_number_plus.safetensors", FUZZ_CKPT_ADAM, CUDL_ERR_FILE_METADATA);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.data_seed", "18446744073709551616");
  builder_write(&b, out_dir, "bad_number_overflow.safetensors");
  verify("bad_number_overflow.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);
  /* strtoull skips the tab and negates: once read as 2^64 - 1. */
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.data_seed", "\t-1");
  builder_write(&b, out_dir, "bad_number_tab_minus.safetensors");
  verify("bad_number_tab_minus.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.optimizer_steps", "-1");
  builder_write(&b, out_dir, "bad_negative_steps.safetensors");
  verify("bad_negative_steps.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_meta(&b, "cudl.optimizer", "rmsprop");
  builder_write(&b, out_dir, "bad_optimizer_kind.safetensors");
  verify("bad_optimizer_kind.safetensors", FUZZ_CKPT_ADAM,
         CUDL_ERR_FILE_METADATA);

  /* Optimizer state: the right count in the wrong shape (once accepted by
   * the checks and refused by the copy, after the model was loaded), a wrong
   * count, a wrong dtype, a missing tensor. */
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  if (cudl_tensor_reshape(
          cudl_optimizer_state(fixture.opt[FUZZ_CKPT_ADAM], 0, NULL), 2,
          state_shape, &view) != CUDL_OK)
    fail("cannot reshape", "optimizer.exp_avg");
  builder_tensor(&b, "optimizer.exp_avg", view);
  builder_write(&b, out_dir, "bad_state_shape.safetensors");
  verify("bad_state_shape.safetensors", FUZZ_CKPT_ADAM, CUDL_ERR_SHAPE);
  builder_start(&b, FUZZ_CKPT_SGD_MOMENTUM, 5);
  builder_tensor(&b, "optimizer.momentum_buffer",
                 new_tensor(CUDL_DTYPE_F32, 1, short_shape));
  builder_write(&b, out_dir, "bad_state_size.safetensors");
  verify("bad_state_size.safetensors", FUZZ_CKPT_SGD_MOMENTUM, CUDL_ERR_SHAPE);
  builder_start(&b, FUZZ_CKPT_SGD_MOMENTUM, 5);
  builder_tensor(&b, "optimizer.momentum_buffer",
                 new_tensor(CUDL_DTYPE_I32, 1, &arena));
  builder_write(&b, out_dir, "bad_state_dtype.safetensors");
  verify("bad_state_dtype.safetensors", FUZZ_CKPT_SGD_MOMENTUM, CUDL_ERR_SHAPE);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_tensor(&b, "optimizer.exp_avg_sq", NULL);
  builder_write(&b, out_dir, "bad_state_missing.safetensors");
  verify("bad_state_missing.safetensors", FUZZ_CKPT_ADAM, CUDL_ERR_SHAPE);

  /* Model tensors: one the model lacks, a transposed one, a missing
   * buffer, an f16 bias. */
  builder_start(&b, -1, 0);
  builder_tensor(&b, "head.weight", new_tensor(CUDL_DTYPE_F32, 1, two));
  builder_write(&b, out_dir, "bad_unknown_tensor.safetensors");
  verify("bad_unknown_tensor.safetensors", -1, CUDL_ERR_SHAPE);
  builder_start(&b, -1, 0);
  builder_tensor(&b, "fc.weight", new_tensor(CUDL_DTYPE_F32, 2, fc_t));
  builder_write(&b, out_dir, "bad_param_shape.safetensors");
  verify("bad_param_shape.safetensors", -1, CUDL_ERR_SHAPE);
  builder_start(&b, -1, 0);
  builder_tensor(&b, "bn.running_var", NULL);
  builder_write(&b, out_dir, "bad_param_missing.safetensors");
  verify("bad_param_missing.safetensors", -1, CUDL_ERR_SHAPE);
  builder_start(&b, -1, 0);
  builder_tensor(&b, "fc.bias", new_tensor(CUDL_DTYPE_F16, 1, two));
  builder_write(&b, out_dir, "bad_param_f16.safetensors");
  verify("bad_param_f16.safetensors", -1, CUDL_ERR_SHAPE);

  /* Values that are not finite: a NaN weight, infinite optimizer state. */
  builder_start(&b, -1, 0);
  builder_tensor(&b, "fc.bias",
                 filled(new_tensor(CUDL_DTYPE_F32, 1, two), NAN));
  builder_write(&b, out_dir, "bad_param_nan.safetensors");
  verify("bad_param_nan.safetensors", -1, CUDL_ERR_FILE_VALUE);
  builder_start(&b, FUZZ_CKPT_ADAM, 9);
  builder_tensor(&b, "optimizer.exp_avg_sq",
                 filled(new_tensor(CUDL_DTYPE_F32, 1, &arena), INFINITY));
  builder_write(&b, out_dir, "bad_state_inf.safetensors");
  verify("bad_state_inf.safetensors", FUZZ_CKPT_ADAM, CUDL_ERR_FILE_VALUE);

  /* Cut inside the JSON header, and inside the data. */
  truncated("bad_cut_header.safetensors", "valid_adam.safetensors", 200,
            CUDL_ERR_FILE_TRUNCATED);
  truncated("bad_cut_data.safetensors", "valid_adam.safetensors", -4,
            CUDL_ERR_FILE_TRUNCATED);
}

static int same_file(const char *a, const char *b) {
  FILE *fa = fopen(a, "rb"), *fb = fopen(b, "rb");
  int x = 0, y = 0;
  if (fa != NULL && fb != NULL)
    while (x == y && x != EOF) {
      x = getc(fa);
      y = getc(fb);
    }
  if (fa != NULL) fclose(fa);
  if (fb != NULL) fclose(fb);
  return fa != NULL && fb != NULL && x == y;
}

int main(int argc, char **argv) {
  const char *committed = NULL;
  int check = argc == 3 && strcmp(argv[1], "--check") == 0, k, stale = 0;
  if (argc != 2 && !check) {
    fprintf(stderr, "usage: %s DIR | --check DIR\n", argv[0]);
    return 2;
  }
  if (check) {
    const char *tmp = getenv("TMPDIR");
    committed = argv[2];
    snprintf(out_dir, sizeof out_dir, "%s/cudl-checkpoint-corpus-XXXXXX",
             tmp != NULL && tmp[0] != '\0' ? tmp : "/tmp");
    if (mkdtemp(out_dir) == NULL) fail("cannot make a directory", out_dir);
  } else {
    snprintf(out_dir, sizeof out_dir, "%s", argv[1]);
  }
  if (fuzz_ckpt_fixture_create(&fixture) != CUDL_OK)
    fail("cannot create the model", "fixture");
  write_seeds();
  for (k = 0; k < seed_count && check; ++k) {
    char fresh[PATH_LEN], old[PATH_LEN];
    seed_path(fresh, out_dir, seed_names[k]);
    seed_path(old, committed, seed_names[k]);
    if (!same_file(fresh, old)) {
      fprintf(stderr, "make_checkpoint_corpus: %s differs from a fresh one\n",
              old);
      stale = 1;
    }
    remove(fresh);
  }
  if (check) rmdir(out_dir);
  fuzz_ckpt_fixture_destroy(&fixture);
  if (stale)
    fprintf(stderr,
            "make_checkpoint_corpus: regenerate the corpus: "
            "make_checkpoint_corpus tests/fuzz/corpus-checkpoint\n");
  else
    printf("%d seeds %s\n", seed_count, check ? "match" : "written");
  return stale;
}
