/* model_file_read.c - building a model from a model file
 * (cudl_model_parse, cudl_model_read_file): the JSON document is checked
 * key by key, every layer through its row of the kind table
 * (model_file_kinds.c), and every failure names its place in the file. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "nn/model_file.h"

/* The longest name or id: the graph's limit, which leaves room for the
 * longest parameter suffix (cudl__model_check_name). */
#define MAX_LABEL (NAME_SIZE - 16)

/* The most layers one layer reads: a concatenation's limit. A kind whose
 * max_inputs is larger needs this raised; read_inputs refuses it. */
#define MAX_INPUTS NODE_MAX_INPUTS

/* ---- the document ---- */

static const char *const top_keys[] = {
    "version", "input_shape", "layers", "output", "loss", "comment", NULL};
/* Every layer may have these; "name", "input" and "inputs" depend on the
 * kind. */
static const char *const layer_keys[] = {"kind", "id", "comment", NULL};

static const char *const loss_names[] = {"cross_entropy", "mse",
                                         "bce_with_logits"};
static const cudl_model_loss losses[] = {CUDL_MODEL_LOSS_CROSS_ENTROPY,
                                         CUDL_MODEL_LOSS_MSE,
                                         CUDL_MODEL_LOSS_BCE_WITH_LOGITS};

static int listed(const char *const *list, const char *key) {
  for (; *list != NULL; ++list)
    if (strcmp(*list, key) == 0) return 1;
  return 0;
}

/* "a, b, c" of the list into buf. */
static void join_keys(char *buf, size_t size, const char *const *list) {
  size_t used = 0;
  buf[0] = '\0';
  for (; *list != NULL && used < size; ++list)
    used += (size_t)snprintf(buf + used, size - used, "%s%s",
                             used > 0 ? ", " : "", *list);
}

/* The state of one parse: the reader the kinds see, the document, and the
 * labels (names and ids) seen so far, mapped to their layer index (-1 for
 * "input", the model's input). */
typedef struct parse {
  cudl__mf_reader r;
  const json_t *layers;
  json_t *labels;
  int64_t scalars; /* parameters and buffers so far */
} parse;

/* The layer a label read by `key` of the current layer refers to: its
 * node (0 for "input"). Unknown labels are told apart from later ones. */
static cudl_status resolve(parse *p, const char *key, const json_t *ref,
                           int current, int *found_node) {
  const json_t *found;
  const char *label;
  size_t j;
  if (!json_is_string(ref))
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                         "must be a string naming an earlier layer (its "
                         "name or id) or \"input\", not %s",
                         cudl__mf_json_what(ref));
  label = json_string_value(ref);
  found = json_object_get(p->labels, label);
  if (found != NULL) {
    *found_node = (int)json_integer_value(found) + 1;
    return CUDL_OK;
  }
  for (j = current < 0 ? 0 : (size_t)current; j < json_array_size(p->layers);
       ++j) {
    const json_t *later = json_array_get(p->layers, j);
    const json_t *name = json_object_get(later, "name");
    const json_t *id = json_object_get(later, "id");
    if ((json_is_string(name) && strcmp(json_string_value(name), label) == 0) ||
        (json_is_string(id) && strcmp(json_string_value(id), label) == 0)) {
      if ((int)j == current)
        return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                             "\"%.*s\" is this layer: a layer reads only "
                             "layers before it",
                             MAX_LABEL, label);
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                           "\"%.*s\" is layers[%zu], which comes later: a "
                           "layer reads only layers before it",
                           MAX_LABEL, label, j);
    }
  }
  return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                       "no layer is called \"%.*s\"", MAX_LABEL, label);
}

/* A "name" or "id" of the current layer: a new label of 1 to MAX_LABEL
 * bytes. *label is NULL when it is absent. */
static cudl_status read_label(parse *p, const char *key, const char **label) {
  const json_t *v = json_object_get(p->r.layer, key);
  const json_t *seen;
  const char *text;
  *label = NULL;
  if (v == NULL) return CUDL_OK;
  if (!json_is_string(v))
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                         "must be a string, not %s", cudl__mf_json_what(v));
  text = json_string_value(v);
  if (text[0] == '\0' || strlen(text) > MAX_LABEL)
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_VALUE, key,
                         "must be 1 to %d bytes long, not %zu", MAX_LABEL,
                         strlen(text));
  seen = json_object_get(p->labels, text);
  if (seen != NULL) {
    if (json_integer_value(seen) < 0)
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_DUPLICATE, key,
                           "\"input\" is the model's input; choose another");
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_DUPLICATE, key,
                         "\"%s\" is already used by layers[%lld]", text,
                         (long long)json_integer_value(seen));
  }
  *label = text;
  return CUDL_OK;
}

/* The keys of layer i must all be ones its kind takes. */
static cudl_status check_layer_keys(parse *p, const cudl__model_file_kind *k) {
  const char *key;
  const json_t *value;
  const int single = k->min_inputs == 1 && k->max_inputs == 1;
  char allowed[512], own[256];
  json_object_foreach((json_t *)p->r.layer, key, value) {
    if (listed(layer_keys, key) || listed(k->keys, key)) continue;
    if (strcmp(key, "name") == 0) {
      if (k->named) continue;
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                           "%s has no parameters to name; label it with "
                           "\"id\" to refer to it",
                           k->kind);
    }
    if (strcmp(key, single ? "input" : "inputs") == 0) continue;
    if (strcmp(key, "input") == 0 || strcmp(key, "inputs") == 0)
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                           single ? "%s reads one layer: \"input\""
                                  : "%s reads several layers: \"inputs\"",
                           k->kind);
    join_keys(own, sizeof own, k->keys);
    snprintf(allowed, sizeof allowed, "kind, %s%s, id, comment%s%s",
             k->named ? "name, " : "", single ? "input" : "inputs",
             own[0] != '\0' ? ", " : "", own);
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                         "unknown key; %s takes %s", k->kind, allowed);
  }
  return CUDL_OK;
}

/* The nodes layer i reads: its "input" (the previous layer by default) or
 * its "inputs". */
static cudl_status read_inputs(parse *p, const cudl__model_file_kind *k, int i,
                               int *inputs, int *count) {
  const json_t *v;
  size_t j;
  cudl_status s;
  if (k->min_inputs == 1 && k->max_inputs == 1) {
    v = json_object_get(p->r.layer, "input");
    *count = 1;
    if (v == NULL) {
      inputs[0] = i; /* the node of the layer before */
      return CUDL_OK;
    }
    return resolve(p, "input", v, i, &inputs[0]);
  }
  if (k->max_inputs > MAX_INPUTS)
    return cudl__mf_fail(&p->r, CUDL_ERR_INTERNAL, NULL,
                         "%s reads up to %d layers; the reader holds %d",
                         k->kind, k->max_inputs, MAX_INPUTS);
  v = json_object_get(p->r.layer, "inputs");
  if (v == NULL || !json_is_array(v) ||
      json_array_size(v) < (size_t)k->min_inputs ||
      json_array_size(v) > (size_t)k->max_inputs) {
    char count_text[48];
    if (k->min_inputs == k->max_inputs)
      snprintf(count_text, sizeof count_text, "%d", k->min_inputs);
    else
      snprintf(count_text, sizeof count_text, "%d to %d", k->min_inputs,
               k->max_inputs);
    if (v == NULL)
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "inputs",
                           "missing: %s needs a list of %s earlier layers",
                           k->kind, count_text);
    return cudl__mf_fail(
        &p->r, CUDL_ERR_FILE_SCHEMA, "inputs",
        "must be a list of %s layers (names or ids), not %s%s", count_text,
        json_is_array(v) ? "a list of " : cudl__mf_json_what(v),
        json_is_array(v) ? "another length" : "");
  }
  for (j = 0; j < json_array_size(v); ++j) {
    char path[32];
    snprintf(path, sizeof path, "inputs[%zu]", j);
    s = resolve(p, path, json_array_get(v, j), i, &inputs[j]);
    if (s != CUDL_OK) return s;
  }
  *count = (int)json_array_size(v);
  return CUDL_OK;
}

/* Set r.where to layer i's path, labelled by its name or id when it has a
 * string one, else by its kind. */
static void locate_layer(parse *p, int i, const json_t *layer) {
  const json_t *name = json_object_get(layer, "name");
  const json_t *id = json_object_get(layer, "id");
  const json_t *kind = json_object_get(layer, "kind");
  const json_t *label = json_is_string(name) ? name : id;
  if (json_is_string(label))
    snprintf(p->r.where, sizeof p->r.where, "layers[%d] (\"%.*s\")", i,
             MAX_LABEL, json_string_value(label));
  else if (json_is_string(kind) &&
           cudl__model_file_kind_by_name(json_string_value(kind)) != NULL)
    snprintf(p->r.where, sizeof p->r.where, "layers[%d] (%s)", i,
             json_string_value(kind));
  else
    snprintf(p->r.where, sizeof p->r.where, "layers[%d]", i);
}

static cudl_status read_layer(parse *p, int i) {
  const json_t *layer = json_array_get(p->layers, (size_t)i);
  const json_t *kind_value;
  const cudl__model_file_kind *k;
  const char *name = NULL, *id = NULL;
  int inputs[MAX_INPUTS], count = 0, added = -1, params_before, j;
  cudl_status s;
  p->r.layer = layer;
  p->r.name = NULL;
  if (!json_is_object(layer)) {
    snprintf(p->r.where, sizeof p->r.where, "layers[%d]", i);
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, NULL,
                         "must be an object, not %s",
                         cudl__mf_json_what(layer));
  }
  locate_layer(p, i, layer);
  kind_value = json_object_get(layer, "kind");
  if (kind_value == NULL)
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "kind",
                         "missing: every layer has a kind");
  if (!json_is_string(kind_value))
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "kind",
                         "must be a string, not %s",
                         cudl__mf_json_what(kind_value));
  k = cudl__model_file_kind_by_name(json_string_value(kind_value));
  if (k == NULL) {
    char kinds[512];
    size_t used = 0;
    kinds[0] = '\0';
    for (j = 0; j < cudl__model_file_kind_count && used < sizeof kinds; ++j)
      used +=
          (size_t)snprintf(kinds + used, sizeof kinds - used, "%s%s",
                           j > 0 ? ", " : "", cudl__model_file_kinds[j].kind);
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "kind",
                         "unknown kind \"%.*s\"; the kinds are %s", MAX_LABEL,
                         json_string_value(kind_value), kinds);
  }
  s = check_layer_keys(p, k);
  if (s == CUDL_OK) s = read_label(p, "name", &name);
  if (s == CUDL_OK && k->named && name == NULL)
    s = cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "name",
                      "missing: a %s layer is named (its parameters are "
                      "\"<name>.weight\", ...)",
                      k->kind);
  if (s == CUDL_OK) s = read_label(p, "id", &id);
  if (s == CUDL_OK && name != NULL && id != NULL && strcmp(name, id) == 0)
    s = cudl__mf_fail(&p->r, CUDL_ERR_FILE_DUPLICATE, "id",
                      "\"%s\" is the layer's name already", id);
  if (s == CUDL_OK) s = read_inputs(p, k, i, inputs, &count);
  if (s != CUDL_OK) return s;
  p->r.name = name;
  params_before = p->r.model->param_count;
  s = k->build(&p->r, k, inputs, count, &added);
  if (s != CUDL_OK) return s;
  if (added != i + 1)
    return cudl__mf_fail(&p->r, CUDL_ERR_INTERNAL, NULL,
                         "the layer became node %d, not %d", added, i + 1);
  for (j = params_before; j < p->r.model->param_count; ++j) {
    p->scalars += p->r.model->params[j].numel;
    if (p->scalars > CUDL_MODEL_FILE_MAX_PARAMETERS)
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_VALUE, NULL,
                           "the model would hold more than %lld parameters "
                           "and buffers (CUDL_MODEL_FILE_MAX_PARAMETERS)",
                           (long long)CUDL_MODEL_FILE_MAX_PARAMETERS);
  }
  if ((name != NULL &&
       json_object_set_new(p->labels, name, json_integer(i)) != 0) ||
      (id != NULL && json_object_set_new(p->labels, id, json_integer(i)) != 0))
    return cudl__mf_fail(&p->r, CUDL_ERR_OUT_OF_MEMORY, NULL,
                         "cannot record the layer's label");
  return CUDL_OK;
}

static cudl_status read_input_shape(parse *p, const json_t *root,
                                    cudl_model **model) {
  const json_t *v = json_object_get(root, "input_shape");
  int64_t shape[3], values = 1;
  size_t i;
  cudl_status s;
  if (v == NULL)
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "input_shape",
                         "missing: the per-sample input shape, [C, H, W] or "
                         "[F], is required");
  if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 3)
    return cudl__mf_fail(
        &p->r, CUDL_ERR_FILE_SCHEMA, "input_shape",
        "must be a list of 1 to 3 integers ([C, H, W], "
        "[H, W] or [F]), not %s%s",
        json_is_array(v) ? "a list of " : cudl__mf_json_what(v),
        json_is_array(v) ? "another length" : "");
  for (i = 0; i < json_array_size(v); ++i) {
    char path[32];
    snprintf(path, sizeof path, "input_shape[%zu]", i);
    s = cudl__mf_check_int(&p->r, path, json_array_get(v, i), 1,
                           CUDL_MODEL_FILE_MAX_SIZE, "", &shape[i]);
    if (s != CUDL_OK) return s;
    values *= shape[i]; /* <= 2^72 cannot happen: checked each step */
    if (values > (int64_t)1 << 31)
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_VALUE, "input_shape",
                           "more than 2^31 values per sample");
  }
  s = cudl_model_create(p->r.ctx, (int)json_array_size(v), shape, model);
  if (s != CUDL_OK) return cudl__mf_graph(&p->r, s);
  return CUDL_OK;
}

static cudl_status read_output(parse *p, const json_t *root) {
  const json_t *output = json_object_get(root, "output");
  const json_t *loss = json_object_get(root, "loss");
  cudl_model_loss which = CUDL_MODEL_LOSS_CROSS_ENTROPY;
  int out_node = p->r.model->node_count - 1;
  size_t i;
  cudl_status s;
  p->r.where[0] = '\0';
  if (output != NULL) {
    s = resolve(p, "output", output, -1, &out_node);
    if (s != CUDL_OK) return s;
    if (out_node == 0)
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "output",
                           "must be a layer, not the model's input");
  }
  if (loss != NULL) {
    if (!json_is_string(loss))
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "loss",
                           "must be a string, not %s",
                           cudl__mf_json_what(loss));
    for (i = 0; i < sizeof losses / sizeof losses[0]; ++i)
      if (strcmp(json_string_value(loss), loss_names[i]) == 0) break;
    if (i == sizeof losses / sizeof losses[0])
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "loss",
                           "unknown loss \"%.*s\"; the losses are "
                           "cross_entropy, mse and bce_with_logits",
                           MAX_LABEL, json_string_value(loss));
    which = losses[i];
  }
  s = cudl_model_set_output(p->r.model, out_node, which);
  if (s != CUDL_OK) {
    snprintf(p->r.where, sizeof p->r.where, "%s", output ? "output" : "loss");
    return cudl__mf_graph(&p->r, s);
  }
  return CUDL_OK;
}

static cudl_status read_document(parse *p, const json_t *root,
                                 cudl_model **model) {
  const char *key;
  const json_t *value, *version;
  size_t count, i;
  cudl_status s;
  p->r.where[0] = '\0';
  p->r.layer = root;
  if (!json_is_object(root))
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, NULL,
                         "the top level must be an object, not %s",
                         cudl__mf_json_what(root));
  json_object_foreach((json_t *)root, key, value) {
    if (!listed(top_keys, key))
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, key,
                           "unknown key; a model file has version, "
                           "input_shape, layers, output, loss and comment");
  }
  version = json_object_get(root, "version");
  if (version != NULL) {
    if (!json_is_integer(version))
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "version",
                           "must be an integer, not %s",
                           cudl__mf_json_what(version));
    if (json_integer_value(version) != CUDL_MODEL_FILE_VERSION)
      return cudl__mf_fail(&p->r, CUDL_ERR_FILE_VALUE, "version",
                           "this cudl reads version %d of the format, not "
                           "%lld",
                           CUDL_MODEL_FILE_VERSION,
                           (long long)json_integer_value(version));
  }
  p->layers = json_object_get(root, "layers");
  if (p->layers == NULL)
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "layers",
                         "missing: the list of layers is required");
  if (!json_is_array(p->layers))
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_SCHEMA, "layers",
                         "must be a list of layers, not %s",
                         cudl__mf_json_what(p->layers));
  count = json_array_size(p->layers);
  if (count < 1 || count > CUDL_MODEL_FILE_MAX_LAYERS)
    return cudl__mf_fail(&p->r, CUDL_ERR_FILE_VALUE, "layers",
                         "must list 1 to %d layers, not %zu",
                         CUDL_MODEL_FILE_MAX_LAYERS, count);
  s = read_input_shape(p, root, model);
  if (s != CUDL_OK) return s;
  p->r.model = *model;
  for (i = 0; i < count; ++i) {
    s = read_layer(p, (int)i);
    if (s != CUDL_OK) return s;
  }
  return read_output(p, root);
}

/* ---- the public calls ---- */

static cudl_status parse_text(cudl_context *ctx, const char *function,
                              const char *text, size_t length,
                              const char *source, cudl_model **out) {
  parse p;
  json_t *root;
  json_error_t error;
  cudl_model *model = NULL;
  cudl_status s;
  memset(&p, 0, sizeof p);
  p.r.ctx = ctx;
  p.r.function = function;
  p.r.source = source != NULL ? source : "model file";
  if (length > CUDL_MODEL_FILE_MAX_BYTES)
    return cudl__mf_fail(&p.r, CUDL_ERR_FILE_HEADER_SIZE, NULL,
                         "%zu bytes, more than the %zu a model file may have "
                         "(CUDL_MODEL_FILE_MAX_BYTES)",
                         length, CUDL_MODEL_FILE_MAX_BYTES);
  /* Strict JSON (RFC 8259, UTF-8 checked), a repeated key refused. */
  root = json_loadb(text, length, JSON_REJECT_DUPLICATES, &error);
  if (root == NULL) {
    char text_line[CUDL_ERROR_TEXT_SIZE];
    snprintf(text_line, sizeof text_line, "%s:%d:%d: %s", p.r.source,
             error.line, error.column, error.text);
    return cudl__mf_fail_line(
        ctx,
        json_error_code(&error) == json_error_duplicate_key
            ? CUDL_ERR_FILE_DUPLICATE
            : CUDL_ERR_FILE_JSON,
        function, text_line);
  }
  p.labels = json_object();
  if (p.labels == NULL ||
      json_object_set_new(p.labels, "input", json_integer(-1)) != 0) {
    json_decref(p.labels);
    json_decref(root);
    return cudl__mf_fail(&p.r, CUDL_ERR_OUT_OF_MEMORY, NULL,
                         "cannot allocate the table of labels");
  }
  s = read_document(&p, root, &model);
  json_decref(p.labels);
  json_decref(root);
  if (s != CUDL_OK) {
    cudl_model_destroy(model);
    return s;
  }
  *out = model;
  return CUDL_OK;
}

cudl_status cudl_model_parse(cudl_context *ctx, const char *text, size_t length,
                             const char *source_name, cudl_model **out) {
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (text == NULL || out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "%s is NULL",
                     text == NULL ? "text" : "out");
  return parse_text(ctx, __func__, text, length, source_name, out);
}

cudl_status cudl_model_read_file(cudl_context *ctx, const char *path,
                                 cudl_model **out) {
  struct stat info;
  char *text = NULL;
  size_t size, done = 0;
  int fd;
  cudl_status s;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (path == NULL || out == NULL)
    return CUDL_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "%s is NULL",
                     path == NULL ? "path" : "out");
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a
   * regular file is refused below. */
  fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (fd < 0)
    return CUDL_FAIL(ctx, CUDL_ERR_IO, "cannot open '%s': %s", path,
                     strerror(errno));
  if (fstat(fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    close(fd);
    return CUDL_FAIL(ctx, CUDL_ERR_IO, "'%s' is not a readable regular file",
                     path);
  }
  if ((uint64_t)info.st_size > (uint64_t)CUDL_MODEL_FILE_MAX_BYTES) {
    close(fd);
    return CUDL_FAIL(ctx, CUDL_ERR_FILE_HEADER_SIZE,
                     "%s: %llu bytes, more than the %zu a model file may "
                     "have (CUDL_MODEL_FILE_MAX_BYTES)",
                     path, (unsigned long long)info.st_size,
                     CUDL_MODEL_FILE_MAX_BYTES);
  }
  size = (size_t)info.st_size;
  /* One byte more than the size: a file that grew is seen to, not cut. */
  text = (char *)cudl__host_alloc(&ctx->allocator, size + 1, 1);
  if (text == NULL) {
    close(fd);
    return CUDL_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                     "cannot allocate %zu bytes for '%s'", size + 1, path);
  }
  while (done < size + 1) {
    ssize_t got = read(fd, text + done, size + 1 - done);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) {
      s = CUDL_FAIL(ctx, CUDL_ERR_IO, "cannot read '%s': %s", path,
                    strerror(errno));
      close(fd);
      cudl__host_free(&ctx->allocator, text, size + 1);
      return s;
    }
    if (got == 0) break;
    done += (size_t)got;
  }
  close(fd);
  if (done != size) {
    cudl__host_free(&ctx->allocator, text, size + 1);
    return CUDL_FAIL(ctx, CUDL_ERR_IO,
                     "'%s' changed while it was read (%zu bytes, then %s)",
                     path, size, done > size ? "more" : "fewer");
  }
  s = parse_text(ctx, "cudl_model_read_file", text, size, path, out);
  cudl__host_free(&ctx->allocator, text, size + 1);
  return s;
}
