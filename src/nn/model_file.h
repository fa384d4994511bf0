/*
 * model_file.h - what the model-file reader (model_file_read.c), writer
 * (model_file_write.c) and the table of layer kinds (model_file_kinds.c)
 * share: key readers and messages (model_file_keys.c), the JSON writer
 * (model_file_text.c) and the table. A layer kind of the file is one row of
 * cudl__model_file_kinds: its "kind" string, the node it builds, the keys it
 * takes, and a function to build it from the file and one to describe a node
 * back. A new kind of the graph API is one row and those two functions; the
 * reader and writer never ask which kind they handle.
 */
#ifndef CUDL_NN_MODEL_FILE_H
#define CUDL_NN_MODEL_FILE_H

#include <jansson.h>

#include "cudl/model_file.h"
#include "nn/graph.h"

CUDL_EXTERN_C_BEGIN

/* Where a message points: "layers[12] (\"layer1.0.conv1\")" plus room. */
#define CUDL__MF_WHERE_SIZE (NAME_SIZE + 64)

/* The reader, as a kind's build function sees it. */
typedef struct cudl__mf_reader {
  cudl_context *ctx;
  cudl_model *model;
  const char *source;              /* the text's name in messages */
  const char *function;            /* the public call that reports */
  const json_t *layer;             /* the layer object being built */
  const char *name;                /* its "name", or NULL */
  char where[CUDL__MF_WHERE_SIZE]; /* its path: "layers[3] (\"conv1\")" */
} cudl__mf_reader;

/* Record `text` as `function`'s failure, on one line: control characters
 * (from names and values in the file) are written as escapes (\n, \xHH). */
cudl_status cudl__mf_fail_line(cudl_context *ctx, cudl_status status,
                               const char *function, const char *text);

/* "a string", "an object", ... (for "not <what>" in messages). */
const char *cudl__mf_json_what(const json_t *value);

/* Record "<source>: <where>.<key>: <message>" (no ".<key>" when key is NULL)
 * as the reader's failure and return status. */
cudl_status cudl__mf_fail(cudl__mf_reader *r, cudl_status status,
                          const char *key, const char *fmt, ...)
    CUDL_PRINTF(4, 5);

/* v, the value at `path` (in messages), as an integer in [lo, hi];
 * `alternative` continues "must be an integer from lo to hi". */
cudl_status cudl__mf_check_int(cudl__mf_reader *r, const char *path,
                               const json_t *v, int64_t lo, int64_t hi,
                               const char *alternative, int64_t *out);

/* Key readers for build functions. Absent keys give the fallback, or a
 * CUDL_ERR_FILE_SCHEMA failure when required is nonzero; a value of the
 * wrong JSON type CUDL_ERR_FILE_SCHEMA; one outside [lo, hi]
 * CUDL_ERR_FILE_VALUE. */
cudl_status cudl__mf_int(cudl__mf_reader *r, const char *key, int required,
                         int64_t lo, int64_t hi, int64_t fallback,
                         int64_t *out);
/* An integer for both sides, or [h, w]; each in [lo, hi]. */
cudl_status cudl__mf_pair(cudl__mf_reader *r, const char *key, int required,
                          int lo, int hi, const int fallback[2], int out[2]);
/* A JSON number read as a float: finite, in [lo, hi]. */
cudl_status cudl__mf_float(cudl__mf_reader *r, const char *key, double lo,
                           double hi, float fallback, float *out);
cudl_status cudl__mf_bool(cudl__mf_reader *r, const char *key, int fallback,
                          int *out);
/* After a cudl_model_add_* call: CUDL_OK stays; a refusal of the layer
 * (CUDL_ERR_SHAPE, CUDL_ERR_INVALID_ARGUMENT) becomes CUDL_ERR_FILE_SHAPE
 * with the graph's reason after the layer's path; any other status keeps
 * itself and gets the path too. */
cudl_status cudl__mf_graph(cudl__mf_reader *r, cudl_status status);

/* Whether s is valid UTF-8 (no overlong forms, surrogates or code points
 * above U+10FFFF): what JSON text and protobuf strings can hold. */
int cudl__mf_valid_utf8(const char *s);

/* The writer: the text goes to buf while it fits; length counts all of
 * it. */
typedef struct cudl__mf_writer {
  char *buf;
  size_t size, length;
} cudl__mf_writer;

void cudl__mf_put(cudl__mf_writer *w, const char *text);
void cudl__mf_put_int(cudl__mf_writer *w, int64_t value);
/* ", \"key\": " */
void cudl__mf_put_key(cudl__mf_writer *w, const char *key);
/* The JSON string of s (quotes, escapes; s is valid UTF-8). */
void cudl__mf_put_string(cudl__mf_writer *w, const char *s);
/* ", \"key\": value" for each kind of value. */
void cudl__mf_key_int(cudl__mf_writer *w, const char *key, int64_t value);
/* An integer when both sides agree, else [h, w]. */
void cudl__mf_key_pair(cudl__mf_writer *w, const char *key, int h, int wd);
void cudl__mf_key_float(cudl__mf_writer *w, const char *key, float value);
void cudl__mf_key_bool(cudl__mf_writer *w, const char *key, int value);

/* One layer kind of the file. */
typedef struct cudl__model_file_kind {
  const char *kind; /* the "kind" string */
  node_kind builds; /* the node kind it builds */
  int variant;      /* for kinds sharing a node kind: the activation
                       type; 1 for max pooling, 0 for average */
  int named;        /* has parameters: "name" is required (and allowed) */
  int min_inputs, max_inputs; /* 1, 1: an optional "input"; otherwise a
                                 required "inputs" array of that many */
  const char *const *keys;    /* its own keys, NULL-terminated, in the order
                                 describe writes them */
  /* Add the layer reading `inputs` to r->model; *node receives it. */
  cudl_status (*build)(cudl__mf_reader *r,
                       const struct cudl__model_file_kind *kind,
                       const int *inputs, int n_inputs, int *node_out);
  /* The variant of a node of this node kind (NULL: always 0). */
  int (*variant_of)(const node *n);
  /* Write the node's own keys (", \"key\": value" each; defaults left
   * out). */
  void (*describe)(cudl__mf_writer *w, const cudl_model *m, const node *n);
} cudl__model_file_kind;

extern const cudl__model_file_kind cudl__model_file_kinds[];
extern const int cudl__model_file_kind_count;

/* The row for the "kind" string, or NULL. */
const cudl__model_file_kind *cudl__model_file_kind_by_name(const char *kind);
/* The row describing node n, or NULL (the input node, or a kind without a
 * row). */
const cudl__model_file_kind *cudl__model_file_kind_of(const node *n);

CUDL_EXTERN_C_END

#endif /* CUDL_NN_MODEL_FILE_H */
