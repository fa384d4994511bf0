/*
 * fuzz_model_file.c - libFuzzer target for the model-file parser
 * (cudl_model_parse, cudl/model_file.h).
 *
 * Each input is parsed on one CPU context whose memory limit is 256 MiB,
 * and the outcome is checked against what the API promises:
 *   - a failure leaves *out NULL and is a status the parser documents
 *     (CUDL_ERR_FILE_JSON, FILE_DUPLICATE, FILE_SCHEMA, FILE_VALUE,
 *     FILE_SHAPE, FILE_HEADER_SIZE, OUT_OF_MEMORY) with a one-line message
 *     that starts "cudl_model_parse: fuzz.json";
 *   - a model that parses describes to text that parses again and
 *     describes to the same bytes (the round trip), with as many nodes and
 *     named tensors;
 *   - it compiles at batch 2, or fails cleanly with CUDL_ERR_OUT_OF_MEMORY
 *     (the context's limit: the file's limits bound a model to 2^31
 *     parameters, which this target does not allocate) or
 *     CUDL_ERR_UNSUPPORTED (a graph whose gradients need more buffers than
 *     the planner holds);
 *   - a compiled model of up to 2^20 parameters exports to ONNX
 *     (cudl_model_export_onnx): every layer kind maps, and the file starts
 *     with its IR version, or the export fails cleanly for lack of memory.
 * A broken promise calls abort(), which libFuzzer reports as a crash.
 * Seeds: corpus-model-file/ (the zoo's files of examples/models and files
 * with every kind and key); dictionary: model_file.dict. Built as
 * tests/fuzz/CMakeLists.txt says (libFuzzer with -DCUDL_FUZZ=ON, otherwise
 * a plain program running the seeds and every prefix of them).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudl/cudl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                      \
  do {                                                                        \
    if (!(cond)) {                                                            \
      fprintf(stderr, "fuzz_model_file: %s:%d: check failed: %s\n", __FILE__, \
              __LINE__, #cond);                                               \
      abort();                                                                \
    }                                                                         \
  } while (0)

#define MEMORY_LIMIT ((uint64_t)256 << 20)

/* One context for the whole run: it must stay usable after every input. */
static cudl_context *fuzz_context(void) {
  static cudl_context *ctx = NULL;
  if (ctx == NULL) {
    FUZZ_CHECK(cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) == CUDL_OK);
    FUZZ_CHECK(cudl_context_set_memory_limit(ctx, MEMORY_LIMIT) == CUDL_OK);
  }
  return ctx;
}

static int documented_failure(cudl_status s) {
  return s == CUDL_ERR_FILE_JSON || s == CUDL_ERR_FILE_DUPLICATE ||
         s == CUDL_ERR_FILE_SCHEMA || s == CUDL_ERR_FILE_VALUE ||
         s == CUDL_ERR_FILE_SHAPE || s == CUDL_ERR_FILE_HEADER_SIZE ||
         s == CUDL_ERR_OUT_OF_MEMORY;
}

/* The model's canonical text, malloc'ed. */
static char *describe(cudl_model *m, size_t *length) {
  char *text;
  FUZZ_CHECK(cudl_model_describe(m, NULL, 0, length) == CUDL_OK);
  text = (char *)malloc(*length + 1);
  FUZZ_CHECK(text != NULL);
  FUZZ_CHECK(cudl_model_describe(m, text, *length + 1, length) == CUDL_OK);
  FUZZ_CHECK(strlen(text) == *length);
  return text;
}

/* The ONNX writer's callback: counts the bytes, keeps the first two. */
typedef struct onnx_sink {
  size_t size;
  unsigned char head[2];
} onnx_sink;

static cudl_status onnx_count(void *user, const void *data, size_t size) {
  onnx_sink *sink = (onnx_sink *)user;
  size_t k;
  for (k = 0; k < size && sink->size + k < 2; ++k)
    sink->head[sink->size + k] = ((const unsigned char *)data)[k];
  sink->size += size;
  return CUDL_OK;
}

static void check_onnx_export(cudl_model *m) {
  onnx_sink sink = {0, {0, 0}};
  cudl_tensor *params = cudl_model_params(m);
  cudl_status s;
  if (params != NULL && cudl_tensor_numel(params) > ((int64_t)1 << 20)) return;
  s = cudl_model_export_onnx(m, NULL, onnx_count, &sink);
  if (s != CUDL_OK && s != CUDL_ERR_OUT_OF_MEMORY)
    fprintf(stderr, "export: %s\n", cudl_context_last_error(fuzz_context()));
  FUZZ_CHECK(s == CUDL_OK || s == CUDL_ERR_OUT_OF_MEMORY);
  /* ir_version (field 1, varint) = CUDL_ONNX_IR_VERSION comes first. */
  if (s == CUDL_OK)
    FUZZ_CHECK(sink.size > 2 && sink.head[0] == 0x08 &&
               sink.head[1] == CUDL_ONNX_IR_VERSION);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  cudl_context *ctx = fuzz_context();
  cudl_model *m = (cudl_model *)ctx, *again = (cudl_model *)ctx;
  cudl_status s;
  char *text, *text_again;
  size_t length, length_again;
  s = cudl_model_parse(ctx, (const char *)data, size, "fuzz.json", &m);
  if (s != CUDL_OK) {
    const char *message = cudl_context_last_error(ctx);
    FUZZ_CHECK(m == NULL);
    FUZZ_CHECK(documented_failure(s));
    FUZZ_CHECK(strncmp(message, "cudl_model_parse: fuzz.json", 27) == 0);
    FUZZ_CHECK(strchr(message, '\n') == NULL);
    return 0;
  }
  FUZZ_CHECK(m != NULL);
  text = describe(m, &length);
  s = cudl_model_parse(ctx, text, length, "canonical.json", &again);
  if (s != CUDL_OK)
    fprintf(stderr, "%s\n%s\n", cudl_context_last_error(ctx), text);
  FUZZ_CHECK(s == CUDL_OK);
  text_again = describe(again, &length_again);
  FUZZ_CHECK(length_again == length && memcmp(text, text_again, length) == 0);
  FUZZ_CHECK(cudl_model_node_count(again) == cudl_model_node_count(m));
  FUZZ_CHECK(cudl_model_param_count(again) == cudl_model_param_count(m));
  free(text_again);
  free(text);
  cudl_model_destroy(again);
  s = cudl_model_compile(m, 2);
  if (s != CUDL_OK && s != CUDL_ERR_OUT_OF_MEMORY && s != CUDL_ERR_UNSUPPORTED)
    fprintf(stderr, "compile: %s\n", cudl_context_last_error(ctx));
  FUZZ_CHECK(s == CUDL_OK || s == CUDL_ERR_OUT_OF_MEMORY ||
             s == CUDL_ERR_UNSUPPORTED);
  if (s == CUDL_OK) check_onnx_export(m);
  cudl_model_destroy(m);
  return 0;
}
