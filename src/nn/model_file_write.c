/* model_file_write.c - the canonical model file of a model
 * (cudl_model_describe): one layer per line, written by each node's row of
 * the kind table (model_file_kinds.c), deterministic to the byte. */
#include <stdio.h>
#include <string.h>

#include "nn/model_file.h"

/* ---- labels ---- */

int cudl__mf_valid_utf8(const char *s) {
  const unsigned char *p = (const unsigned char *)s;
  while (*p != '\0') {
    unsigned cp;
    int extra, k;
    if (*p < 0x80) {
      ++p;
      continue;
    }
    if ((*p & 0xe0) == 0xc0) {
      cp = *p & 0x1f;
      extra = 1;
    } else if ((*p & 0xf0) == 0xe0) {
      cp = *p & 0x0f;
      extra = 2;
    } else if ((*p & 0xf8) == 0xf0) {
      cp = *p & 0x07;
      extra = 3;
    } else {
      return 0;
    }
    for (k = 1; k <= extra; ++k) {
      if ((p[k] & 0xc0) != 0x80) return 0;
      cp = (cp << 6) | (p[k] & 0x3f);
    }
    if ((extra == 1 && cp < 0x80) || (extra == 2 && cp < 0x800) ||
        (extra == 3 && cp < 0x10000) || cp > 0x10ffff ||
        (cp >= 0xd800 && cp <= 0xdfff))
      return 0;
    p += extra + 1;
  }
  return 1;
}

static int name_taken(const cudl_model *m, const char *label) {
  int i;
  for (i = 0; i < m->node_count; ++i)
    if (strcmp(m->nodes[i].name, label) == 0) return 1;
  return 0;
}

/* How the file refers to node i: "input", its name, or for an unnamed
 * node "<kind>_<layer index>" with "_" added until no name is the same. */
static void label_of(const cudl_model *m, int i, char *buf, size_t size) {
  const node *n = &m->nodes[i];
  size_t used;
  if (n->name[0] != '\0') {
    snprintf(buf, size, "%s", n->name);
    return;
  }
  snprintf(buf, size, "%s_%d", cudl__model_file_kind_of(n)->kind, i - 1);
  used = strlen(buf);
  while (name_taken(m, buf) && used + 1 < size) {
    buf[used++] = '_';
    buf[used] = '\0';
  }
}

/* Whether the file must label node i: something other than the layer
 * after it reads it (an add names both its inputs), or it is the output
 * and not the last layer. */
static int referenced(const cudl_model *m, int i) {
  int j, k;
  if (m->output == i && i != m->node_count - 1) return 1;
  for (j = i + 1; j < m->node_count; ++j) {
    const node *n = &m->nodes[j];
    const cudl__model_file_kind *kind = cudl__model_file_kind_of(n);
    const int single = kind->min_inputs == 1 && kind->max_inputs == 1;
    for (k = 0; k < n->n_in; ++k)
      if (n->in[k] == i && (!single || j != i + 1)) return 1;
  }
  return 0;
}

/* ---- the text ---- */

static const char *loss_name(cudl_model_loss loss) {
  switch (loss) {
    case CUDL_MODEL_LOSS_CROSS_ENTROPY:
      return "cross_entropy";
    case CUDL_MODEL_LOSS_MSE:
      return "mse";
    case CUDL_MODEL_LOSS_BCE_WITH_LOGITS:
      return "bce_with_logits";
  }
  return NULL;
}

static void write_layer(cudl__mf_writer *w, const cudl_model *m, int i) {
  const node *n = &m->nodes[i];
  const cudl__model_file_kind *kind = cudl__model_file_kind_of(n);
  char label[NAME_SIZE + 16];
  int k;
  cudl__mf_put(w, "    {\"kind\": ");
  cudl__mf_put_string(w, kind->kind);
  if (n->name[0] != '\0') {
    cudl__mf_put_key(w, "name");
    cudl__mf_put_string(w, n->name);
  } else if (referenced(m, i)) {
    label_of(m, i, label, sizeof label);
    cudl__mf_put_key(w, "id");
    cudl__mf_put_string(w, label);
  }
  if (kind->min_inputs == 1 && kind->max_inputs == 1) {
    if (n->in[0] != i - 1) {
      label_of(m, n->in[0], label, sizeof label);
      cudl__mf_put_key(w, "input");
      cudl__mf_put_string(w, label);
    }
  } else {
    cudl__mf_put_key(w, "inputs");
    cudl__mf_put(w, "[");
    for (k = 0; k < n->n_in; ++k) {
      if (k > 0) cudl__mf_put(w, ", ");
      label_of(m, n->in[k], label, sizeof label);
      cudl__mf_put_string(w, label);
    }
    cudl__mf_put(w, "]");
  }
  kind->describe(w, m, n);
  cudl__mf_put(w, i + 1 < m->node_count ? "},\n" : "}\n");
}

cudl_status cudl_model_describe(const cudl_model *m, char *buffer, size_t size,
                                size_t *length) {
  cudl__mf_writer w;
  const node *input;
  char label[NAME_SIZE + 16];
  int i;
  if (m == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if ((buffer == NULL) != (size == 0) || (buffer == NULL && length == NULL))
    return cudl__fail_const(m->ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                            "give a buffer and its size, or NULL, 0 and "
                            "length (buffer %s, size %zu, length %s)",
                            buffer == NULL ? "NULL" : "set", size,
                            length == NULL ? "NULL" : "set");
  if (!m->has_output)
    return cudl__fail_const(m->ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                            "the model has no output yet "
                            "(cudl_model_set_output): a model file names it");
  for (i = 1; i < m->node_count; ++i) {
    if (cudl__model_file_kind_of(&m->nodes[i]) == NULL)
      return cudl__fail_const(m->ctx, CUDL_ERR_INTERNAL, __func__,
                              "node %d has no kind of the model-file format",
                              i);
    if (!cudl__mf_valid_utf8(m->nodes[i].name))
      return cudl__fail_const(m->ctx, CUDL_ERR_UNSUPPORTED, __func__,
                              "the name of node %d is not valid UTF-8, which "
                              "a model file (JSON) cannot hold",
                              i);
  }
  memset(&w, 0, sizeof w);
  w.buf = buffer;
  w.size = size;
  input = &m->nodes[0];
  cudl__mf_put(&w, "{\n  \"version\": ");
  cudl__mf_put_int(&w, CUDL_MODEL_FILE_VERSION);
  cudl__mf_put(&w, ",\n  \"input_shape\": [");
  for (i = 0; i < input->ndim; ++i) {
    if (i > 0) cudl__mf_put(&w, ", ");
    cudl__mf_put_int(&w, input->shape[i]);
  }
  cudl__mf_put(&w, "],\n  \"layers\": [\n");
  for (i = 1; i < m->node_count; ++i) write_layer(&w, m, i);
  cudl__mf_put(&w, "  ],\n");
  if (m->output != m->node_count - 1) {
    label_of(m, m->output, label, sizeof label);
    cudl__mf_put(&w, "  \"output\": ");
    cudl__mf_put_string(&w, label);
    cudl__mf_put(&w, ",\n");
  }
  cudl__mf_put(&w, "  \"loss\": ");
  cudl__mf_put_string(&w, loss_name(m->loss));
  cudl__mf_put(&w, "\n}\n");
  if (length != NULL) *length = w.length;
  if (buffer == NULL) return CUDL_OK;
  if (w.length >= size) {
    buffer[0] = '\0';
    return cudl__fail_const(m->ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                            "the buffer holds %zu bytes; the model file "
                            "needs %zu and its NUL",
                            size, w.length);
  }
  buffer[w.length] = '\0';
  return CUDL_OK;
}
