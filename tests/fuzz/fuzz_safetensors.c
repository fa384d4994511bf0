/*
 * fuzz_safetensors.c - libFuzzer target for the safetensors loader.
 *
 * Each input is loaded from memory on one CPU context, first with
 * CUDL_SAFETENSORS_HEADER_ONLY, then with flags 0, and the outcome is
 * checked against what the API promises, so the fuzzer finds wrong answers
 * as well as crashes:
 *   - a failure leaves *out NULL, records a message, and is a status the
 *     loader documents for a load from memory on the CPU
 *     (CUDL_ERR_FILE_TRUNCATED .. CUDL_ERR_FILE_TRAILING_DATA, including
 *     FILE_DUPLICATE for any key repeated in one JSON object;
 *     UNSUPPORTED; OUT_OF_MEMORY) -- never CUDL_ERR_SHAPE from
 *     cudl_tensor_create, since the loader checks shapes the same way;
 *   - both loads validate the same way: a full load fails with the
 *     inspection's status, or succeeds, or says UNSUPPORTED exactly when an
 *     entry has a dtype cudl cannot hold or more than CUDL_MAX_DIMS dims;
 *   - a loaded set's entries tile the data section in order, each name is
 *     unique and found by cudl_safetensors_find, metadata keys are unique,
 *     and every loaded tensor has the entry's dtype and shape and holds the
 *     entry's bytes of the input.
 * A broken promise calls abort(), which libFuzzer reports as a crash.
 *
 * Built two ways (tests/fuzz/CMakeLists.txt): with -DCUDL_FUZZ=ON as a
 * libFuzzer binary (clang; the whole library is compiled with
 * -fsanitize=fuzzer-no-link plus ASan/UBSan and this target links
 * -fsanitize=fuzzer against cudl_static); otherwise with
 * fuzz_standalone_main.c as a plain program that runs the seed corpus in
 * every build.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudl/cudl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                    \
  do {                                                                      \
    if (!(cond)) {                                                          \
      fprintf(stderr, "fuzz_safetensors: %s:%d: check failed: %s\n",        \
              __FILE__, __LINE__, #cond);                                   \
      abort();                                                              \
    }                                                                       \
  } while (0)

/* One context for the whole run: it must stay usable after every input. */
static cudl_context *fuzz_context(void) {
  static cudl_context *ctx = NULL;
  if (ctx == NULL) FUZZ_CHECK(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) == CUDL_OK);
  return ctx;
}

static int documented_failure(cudl_status s) {
  return (s >= CUDL_ERR_FILE_TRUNCATED && s <= CUDL_ERR_FILE_TRAILING_DATA) ||
         s == CUDL_ERR_UNSUPPORTED || s == CUDL_ERR_OUT_OF_MEMORY;
}

static uint64_t header_length(const uint8_t *data) {
  uint64_t n = 0;
  int i;
  for (i = 7; i >= 0; --i) n = (n << 8) | data[i];
  return n;
}

/* 1 if the set holds an entry a full load cannot hold. */
static int needs_unsupported(const cudl_safetensors *set) {
  size_t i;
  for (i = 0; i < cudl_safetensors_count(set); ++i) {
    cudl_safetensors_entry e;
    FUZZ_CHECK(cudl_safetensors_entry_query(set, i, &e) == CUDL_OK);
    if (!e.dtype_known || e.ndim > CUDL_MAX_DIMS) return 1;
  }
  return 0;
}

static void check_set(const cudl_safetensors *set, int loaded,
                      const uint8_t *data, size_t size) {
  size_t n = cudl_safetensors_count(set), i;
  uint64_t end = 0, data_start;
  cudl_safetensors_entry e;
  FUZZ_CHECK(size >= 8);
  data_start = 8 + header_length(data);
  FUZZ_CHECK(data_start <= size);
  for (i = 0; i < n; ++i) {
    cudl_tensor *t;
    int d;
    FUZZ_CHECK(cudl_safetensors_entry_query(set, i, &e) == CUDL_OK);
    FUZZ_CHECK(e.name != NULL && e.name[0] != '\0' && e.dtype_name != NULL);
    FUZZ_CHECK(strcmp(e.name, "__metadata__") != 0);
    FUZZ_CHECK(cudl_safetensors_find(set, e.name) == (int64_t)i);
    FUZZ_CHECK(e.data_begin == end && e.data_begin <= e.data_end);
    FUZZ_CHECK(e.ndim >= 0 && (e.ndim == 0 || e.shape != NULL));
    for (d = 0; d < e.ndim; ++d) FUZZ_CHECK(e.shape[d] >= 0);
    end = e.data_end;
    t = cudl_safetensors_tensor(set, i);
    if (!loaded) {
      FUZZ_CHECK(t == NULL);
      continue;
    }
    FUZZ_CHECK(t != NULL);
    FUZZ_CHECK(e.dtype_known && cudl_tensor_dtype(t) == e.dtype);
    FUZZ_CHECK(cudl_tensor_ndim(t) == e.ndim);
    for (d = 0; d < e.ndim; ++d) FUZZ_CHECK(cudl_tensor_dim(t, d) == e.shape[d]);
    FUZZ_CHECK((uint64_t)cudl_tensor_nbytes(t) == e.data_end - e.data_begin);
    FUZZ_CHECK((uint64_t)cudl_tensor_numel(t) * cudl_dtype_size(e.dtype) ==
               (uint64_t)cudl_tensor_nbytes(t));
    if (cudl_tensor_nbytes(t) > 0)
      FUZZ_CHECK(memcmp(cudl_tensor_data(t), data + data_start + e.data_begin,
                        cudl_tensor_nbytes(t)) == 0);
  }
  FUZZ_CHECK(data_start + end == size);
  FUZZ_CHECK(cudl_safetensors_entry_query(set, n, &e) ==
             CUDL_ERR_INVALID_ARGUMENT);
  FUZZ_CHECK(cudl_safetensors_tensor(set, n) == NULL);
  for (i = 0; i < cudl_safetensors_metadata_count(set); ++i) {
    const char *key = cudl_safetensors_metadata_key(set, i);
    const char *value = cudl_safetensors_metadata_value(set, i);
    FUZZ_CHECK(key != NULL && value != NULL);
    FUZZ_CHECK(cudl_safetensors_metadata_find(set, key) == value);
  }
  FUZZ_CHECK(cudl_safetensors_metadata_key(set, i) == NULL);
}

static void check_entries_equal(const cudl_safetensors *a, const cudl_safetensors *b) {
  size_t i;
  FUZZ_CHECK(cudl_safetensors_count(a) == cudl_safetensors_count(b));
  FUZZ_CHECK(cudl_safetensors_metadata_count(a) == cudl_safetensors_metadata_count(b));
  for (i = 0; i < cudl_safetensors_count(a); ++i) {
    cudl_safetensors_entry x, y;
    FUZZ_CHECK(cudl_safetensors_entry_query(a, i, &x) == CUDL_OK);
    FUZZ_CHECK(cudl_safetensors_entry_query(b, i, &y) == CUDL_OK);
    FUZZ_CHECK(strcmp(x.name, y.name) == 0 && x.data_begin == y.data_begin &&
               x.data_end == y.data_end && x.ndim == y.ndim);
  }
}

static cudl_status load(cudl_context *ctx, const uint8_t *data, size_t size,
                        unsigned flags, cudl_safetensors **set) {
  static int marker;
  cudl_status status;
  *set = (cudl_safetensors *)(void *)&marker;
  status = cudl_safetensors_load_memory(ctx, data, size, flags, set);
  if (status == CUDL_OK) {
    FUZZ_CHECK(*set != NULL && *set != (cudl_safetensors *)(void *)&marker);
  } else {
    FUZZ_CHECK(*set == NULL);
    FUZZ_CHECK(documented_failure(status));
    FUZZ_CHECK(cudl_context_last_error(ctx)[0] != '\0');
  }
  return status;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cudl_context *ctx = fuzz_context();
  cudl_safetensors *header = NULL, *full = NULL;
  cudl_status inspected, loaded;

  inspected = load(ctx, data, size, CUDL_SAFETENSORS_HEADER_ONLY, &header);
  FUZZ_CHECK(inspected != CUDL_ERR_UNSUPPORTED);
  if (inspected == CUDL_OK) check_set(header, 0, data, size);

  loaded = load(ctx, data, size, 0, &full);
  if (inspected != CUDL_OK) {
    FUZZ_CHECK(loaded == inspected);
  } else if (needs_unsupported(header)) {
    FUZZ_CHECK(loaded == CUDL_ERR_UNSUPPORTED);
  } else {
    FUZZ_CHECK(loaded == CUDL_OK || loaded == CUDL_ERR_OUT_OF_MEMORY);
  }
  if (loaded == CUDL_OK) {
    check_set(full, 1, data, size);
    check_entries_equal(header, full);
  }
  cudl_safetensors_destroy(full);
  cudl_safetensors_destroy(header);
  return 0;
}
