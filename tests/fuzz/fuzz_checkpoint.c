/*
 * fuzz_checkpoint.c - libFuzzer target for the checkpoint loader
 * (cudl_checkpoint_load, cudl/checkpoint.h).
 *
 * The loader takes a path, so each input is written to a file in a private
 * directory (made once with mkdtemp under $TMPDIR or /tmp, removed at exit)
 * and loaded five times into the tiny model of fuzz_checkpoint_model.h:
 * without an optimizer, then with each of its four optimizers (plain SGD,
 * SGD with momentum, Adam, AdamW), so that one input meets every kind and
 * size of optimizer state. Before each load the model and the optimizers
 * hold a known pattern and *state a known byte pattern. Promises checked
 * (a broken one aborts, which libFuzzer reports as a crash):
 *   - a failure is a status the loader documents for a readable file
 *     (CUDL_ERR_FILE_TRUNCATED .. CUDL_ERR_FILE_TRAILING_DATA from the
 *     safetensors reader, FILE_METADATA or SHAPE from the checks,
 *     FILE_VALUE for a value that is not finite, UNSUPPORTED for a dtype
 *     cudl cannot hold, OUT_OF_MEMORY), with a
 *     message of its own in the context, and changes nothing: the model,
 *     every optimizer (state and step count) and *state still hold their
 *     patterns;
 *   - numbers are plain decimal digits: the metadata a load accepted is
 *     parsed here independently of strtoull (which skips white space);
 *   - a success loaded what the file holds, all of it finite: every named
 *     tensor of the model and the optimizer's state equal the file's bytes
 *     and hold no NaN or infinity, the step count and
 *     *state equal its metadata, and the other optimizers are untouched.
 * Seeds: corpus-checkpoint/, written by make_checkpoint_corpus.c.
 * Built as tests/fuzz/CMakeLists.txt says: a libFuzzer binary with
 * -DCUDL_FUZZ=ON, otherwise with fuzz_standalone_main.c as a plain program
 * that runs the seed corpus and every prefix of it in every build.
 */
#define _POSIX_C_SOURCE 200809L /* mkdtemp */

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cudl/cudl.h"
#include "fuzz_checkpoint_model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                      \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "fuzz_checkpoint: %s:%d: check failed: %s\n", __FILE__, \
              __LINE__, #cond);                                               \
      abort();                                                                \
    }                                                                         \
  } while (0)

/* What every load starts from; see fuzz_ckpt_fill. */
#define BASE 0.5f
#define STEPS 7

static fuzz_ckpt_fixture fixture;
static char dir[4096], path[4096 + 32];

static void remove_dir(void) {
  remove(path);
  rmdir(dir);
}

/* Created once per process: the loads must leave them usable. */
static void setup(void) {
  const char *tmp = getenv("TMPDIR");
  if (fixture.ctx != NULL) return;
  FUZZ_CHECK(fuzz_ckpt_fixture_create(&fixture) == CUDL_OK);
  if (tmp == NULL || tmp[0] == '\0') tmp = "/tmp";
  FUZZ_CHECK(strlen(tmp) < sizeof dir - 32);
  snprintf(dir, sizeof dir, "%s/cudl-fuzz-checkpoint-XXXXXX", tmp);
  FUZZ_CHECK(mkdtemp(dir) != NULL);
  snprintf(path, sizeof path, "%s/input.safetensors", dir);
  FUZZ_CHECK(atexit(remove_dir) == 0);
}

static int documented_failure(cudl_status s) {
  return (s >= CUDL_ERR_FILE_TRUNCATED && s <= CUDL_ERR_FILE_TRAILING_DATA) ||
         s == CUDL_ERR_FILE_VALUE || s == CUDL_ERR_SHAPE ||
         s == CUDL_ERR_UNSUPPORTED || s == CUDL_ERR_OUT_OF_MEMORY;
}

/* Metadata `key` of a successfully loaded checkpoint, parsed here without
 * strtoull: the loader must have taken only plain decimal digits (a '-'
 * only before a zero count), not the whitespace or signs strtoull skips. */
static uint64_t number(const cudl_safetensors *set, const char *key) {
  const char *text = cudl_safetensors_metadata_find(set, key);
  uint64_t value = 0;
  int negative;
  FUZZ_CHECK(text != NULL);
  negative = text[0] == '-';
  text += negative;
  FUZZ_CHECK(*text != '\0');
  for (; *text != '\0'; ++text) {
    FUZZ_CHECK(*text >= '0' && *text <= '9');
    FUZZ_CHECK(value <= (UINT64_MAX - (uint64_t)(*text - '0')) / 10);
    value = value * 10 + (uint64_t)(*text - '0');
  }
  FUZZ_CHECK(!negative || value == 0);
  return value;
}

static void check_same(cudl_tensor *loaded, const cudl_safetensors *set,
                       const char *name) {
  int64_t index = cudl_safetensors_find(set, name);
  cudl_tensor *src;
  FUZZ_CHECK(index >= 0);
  src = cudl_safetensors_tensor(set, (size_t)index);
  FUZZ_CHECK(src != NULL && cudl_tensor_dtype(src) == CUDL_DTYPE_F32 &&
             cudl_tensor_nbytes(src) == cudl_tensor_nbytes(loaded));
  if (cudl_tensor_nbytes(src) > 0)
    FUZZ_CHECK(memcmp(cudl_tensor_data(src), cudl_tensor_data(loaded),
                      cudl_tensor_nbytes(src)) == 0);
  {
    int64_t nan = -1, inf = -1;
    FUZZ_CHECK(cudl_count_nonfinite(fixture.ctx, loaded, &nan, &inf) ==
                   CUDL_OK &&
               nan == 0 && inf == 0);
  }
}

/* A successful load against the file's own contents, read from memory. */
static void check_loaded(const uint8_t *data, size_t size, cudl_optimizer *opt,
                         const cudl_train_state *state) {
  cudl_safetensors *set = NULL;
  const char *format;
  int k;
  FUZZ_CHECK(cudl_safetensors_load_memory(fixture.ctx, data, size, 0, &set) ==
             CUDL_OK);
  format = cudl_safetensors_metadata_find(set, "cudl.format");
  FUZZ_CHECK(format != NULL && strcmp(format, "checkpoint-1") == 0);
  for (k = 0; k < cudl_model_param_count(fixture.model); ++k) {
    const char *name = cudl_model_param_name(fixture.model, k, NULL);
    check_same(cudl_model_param(fixture.model, name), set, name);
  }
  for (k = 0; k < cudl_optimizer_state_count(opt); ++k) {
    char name[64];
    const char *state_name = NULL;
    cudl_tensor *t = cudl_optimizer_state(opt, k, &state_name);
    snprintf(name, sizeof name, "optimizer.%s", state_name);
    check_same(t, set, name);
  }
  if (opt != NULL)
    FUZZ_CHECK((uint64_t)cudl_optimizer_steps(opt) ==
               number(set, "cudl.optimizer_steps"));
  FUZZ_CHECK((uint64_t)state->epoch == number(set, "cudl.epoch"));
  FUZZ_CHECK((uint64_t)state->batch == number(set, "cudl.batch"));
  FUZZ_CHECK((uint64_t)state->step == number(set, "cudl.step"));
  FUZZ_CHECK(state->data_seed == number(set, "cudl.data_seed"));
  FUZZ_CHECK(state->rng_seed == number(set, "cudl.rng_seed"));
  FUZZ_CHECK(state->rng_offset == number(set, "cudl.rng_offset"));
  FUZZ_CHECK(state->epoch >= 0 && state->batch >= 0 && state->step >= 0);
  cudl_safetensors_destroy(set);
  /* Only what was asked for changed. */
  for (k = 0; k < FUZZ_CKPT_OPTIMIZERS; ++k)
    if (fixture.opt[k] != opt)
      FUZZ_CHECK(fuzz_ckpt_holds(&fixture, k, BASE) &&
                 cudl_optimizer_steps(fixture.opt[k]) == STEPS);
}

/* Everything as fuzz_ckpt_fill(&fixture, BASE, STEPS) left it. */
static int intact(void) {
  int k;
  if (!fuzz_ckpt_holds(&fixture, FUZZ_CKPT_MODEL, BASE)) return 0;
  for (k = 0; k < FUZZ_CKPT_OPTIMIZERS; ++k)
    if (!fuzz_ckpt_holds(&fixture, k, BASE) ||
        cudl_optimizer_steps(fixture.opt[k]) != STEPS)
      return 0;
  return 1;
}

static void load(const uint8_t *data, size_t size, cudl_optimizer *opt) {
  cudl_train_state state, before;
  char sentinel[256];
  cudl_status s;
  FUZZ_CHECK(fuzz_ckpt_fill(&fixture, BASE, STEPS) == CUDL_OK);
  memset(&state, 0xa5, sizeof state);
  before = state;
  /* A message of our own first, so that a failure must write its own. */
  FUZZ_CHECK(cudl_optimizer_set_steps(fixture.opt[0], -1) ==
             CUDL_ERR_INVALID_ARGUMENT);
  snprintf(sentinel, sizeof sentinel, "%s",
           cudl_context_last_error(fixture.ctx));
  s = cudl_checkpoint_load(fixture.model, opt, &state, path);
  if (s == CUDL_OK) {
    check_loaded(data, size, opt, &state);
    return;
  }
  if (!documented_failure(s))
    fprintf(stderr, "fuzz_checkpoint: %s: %s\n", cudl_status_name(s),
            cudl_context_last_error(fixture.ctx));
  FUZZ_CHECK(documented_failure(s));
  FUZZ_CHECK(cudl_context_last_error(fixture.ctx)[0] != '\0' &&
             strcmp(cudl_context_last_error(fixture.ctx), sentinel) != 0);
  if (!intact())
    fprintf(stderr, "fuzz_checkpoint: %s changed the model or optimizer: %s\n",
            cudl_status_name(s), cudl_context_last_error(fixture.ctx));
  FUZZ_CHECK(intact());
  FUZZ_CHECK(memcmp(&state, &before, sizeof state) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  FILE *file;
  int k;
  setup();
  /* A new file each time, not a truncated one: ext4 flushes a file that
   * was truncated and rewritten when it is closed (auto_da_alloc), which
   * made each input cost milliseconds. */
  remove(path);
  file = fopen(path, "wb");
  FUZZ_CHECK(file != NULL);
  FUZZ_CHECK(size == 0 || fwrite(data, 1, size, file) == size);
  FUZZ_CHECK(fclose(file) == 0);
  load(data, size, NULL);
  for (k = 0; k < FUZZ_CKPT_OPTIMIZERS; ++k) load(data, size, fixture.opt[k]);
  return 0;
}
