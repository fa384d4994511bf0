/*
 * onnx_write.c - a model as an ONNX file (cudl/onnx.h): each node kind's
 * standard operators, the parameters as initializers, the metadata. The
 * bytes come from the protobuf encoder (protobuf.h); the field numbers are
 * those of onnx.proto (github.com/onnx/onnx, onnx/onnx.proto), named below.
 *
 * Tensor names: "input" and "output" for the graph's, "node<i>" for node
 * i's other outputs, "node<i>/<what>" for the helpers one node needs, and
 * the parameters' own names, which always end in ".<suffix>" and so never
 * meet the others (none of which holds a '.').
 */
#include <stdio.h>
#include <string.h>

#include "cudl/model_file.h"
#include "cudl/onnx.h"
#include "cudl/version.h"
#include "nn/graph.h"
#include "nn/layers.h"
#include "nn/model_file.h"
#include "nn/protobuf.h"

/* ---- onnx.proto's field numbers and enumerators ---- */
enum {
  MODEL_IR_VERSION = 1,
  MODEL_PRODUCER_NAME = 2,
  MODEL_PRODUCER_VERSION = 3,
  MODEL_GRAPH = 7,
  MODEL_OPSET_IMPORT = 8,
  MODEL_METADATA_PROPS = 14,
  OPSET_DOMAIN = 1,
  OPSET_VERSION = 2,
  ENTRY_KEY = 1,
  ENTRY_VALUE = 2,
  GRAPH_NODE = 1,
  GRAPH_NAME = 2,
  GRAPH_INITIALIZER = 5,
  GRAPH_INPUT = 11,
  GRAPH_OUTPUT = 12,
  NODE_INPUT_FIELD = 1,
  NODE_OUTPUT_FIELD = 2,
  NODE_NAME = 3,
  NODE_OP_TYPE = 4,
  NODE_ATTRIBUTE = 5,
  ATTR_NAME = 1,
  ATTR_F = 2,
  ATTR_I = 3,
  ATTR_INTS = 8,
  ATTR_TYPE = 20,
  ATTR_TYPE_FLOAT = 1,
  ATTR_TYPE_INT = 2,
  ATTR_TYPE_INTS = 7,
  TENSOR_DIMS = 1,
  TENSOR_DATA_TYPE = 2,
  TENSOR_NAME = 8,
  TENSOR_RAW_DATA = 9,
  DATA_TYPE_FLOAT = 1,
  DATA_TYPE_INT64 = 7,
  VALUE_INFO_NAME = 1,
  VALUE_INFO_TYPE = 2,
  TYPE_TENSOR = 1,
  TYPE_TENSOR_ELEM_TYPE = 1,
  TYPE_TENSOR_SHAPE = 2,
  SHAPE_DIM = 1,
  DIM_VALUE = 1,
  DIM_PARAM = 2
};

/* The longest tensor or node name: "node<i>/<helper>" or a layer's. */
#define ONNX_NAME_SIZE (NAME_SIZE + 64)

typedef struct exporter {
  cudl_model *m;
  cudl__pb nodes;        /* GraphProto's node fields, in order */
  cudl__pb initializers; /* GraphProto's initializer fields */
  float *host;           /* one parameter's values, off the device */
  size_t host_bytes;
} exporter;

/* ---- names ---- */

/* The output node is never the input (cudl_model_set_output). */
static void value_name(const cudl_model *m, int i, char *out) {
  if (i == 0)
    strcpy(out, "input");
  else if (i == m->output)
    strcpy(out, "output");
  else
    snprintf(out, ONNX_NAME_SIZE, "node%d", i);
}

/* A helper tensor or node of node i: "node<i>/<what>". */
static void helper_name(int i, const char *what, char *out) {
  snprintf(out, ONNX_NAME_SIZE, "node%d/%s", i, what);
}

/* The ONNX node name of node i: "node<i>", with ":<layer name>" for a
 * layer that has one (the index keeps them unique whatever the names). */
static void node_name(const cudl_model *m, int i, char *out) {
  if (m->nodes[i].name[0] != '\0')
    snprintf(out, ONNX_NAME_SIZE, "node%d:%s", i, m->nodes[i].name);
  else
    snprintf(out, ONNX_NAME_SIZE, "node%d", i);
}

/* ---- NodeProto ---- */

/* Open a node of op_type reading inputs[0 .. n_in) and writing `output`;
 * attributes follow, then cudl__pb_end. */
static void node_begin(cudl__pb *pb, const char *op_type, const char *name,
                       const char *const *inputs, int n_in,
                       const char *output) {
  int k;
  cudl__pb_begin(pb, GRAPH_NODE);
  for (k = 0; k < n_in; ++k) cudl__pb_string(pb, NODE_INPUT_FIELD, inputs[k]);
  cudl__pb_string(pb, NODE_OUTPUT_FIELD, output);
  cudl__pb_string(pb, NODE_NAME, name);
  cudl__pb_string(pb, NODE_OP_TYPE, op_type);
}

/* A node without attributes. */
static void simple_node(cudl__pb *pb, const char *op_type, const char *name,
                        const char *const *inputs, int n_in,
                        const char *output) {
  node_begin(pb, op_type, name, inputs, n_in, output);
  cudl__pb_end(pb);
}

static void attr_int(cudl__pb *pb, const char *name, int64_t v) {
  cudl__pb_begin(pb, NODE_ATTRIBUTE);
  cudl__pb_string(pb, ATTR_NAME, name);
  cudl__pb_int(pb, ATTR_I, v);
  cudl__pb_int(pb, ATTR_TYPE, ATTR_TYPE_INT);
  cudl__pb_end(pb);
}

static void attr_float(cudl__pb *pb, const char *name, float v) {
  cudl__pb_begin(pb, NODE_ATTRIBUTE);
  cudl__pb_string(pb, ATTR_NAME, name);
  cudl__pb_float(pb, ATTR_F, v);
  cudl__pb_int(pb, ATTR_TYPE, ATTR_TYPE_FLOAT);
  cudl__pb_end(pb);
}

static void attr_ints(cudl__pb *pb, const char *name, const int64_t *v,
                      int count) {
  int k;
  cudl__pb_begin(pb, NODE_ATTRIBUTE);
  cudl__pb_string(pb, ATTR_NAME, name);
  for (k = 0; k < count; ++k) cudl__pb_int(pb, ATTR_INTS, v[k]);
  cudl__pb_int(pb, ATTR_TYPE, ATTR_TYPE_INTS);
  cudl__pb_end(pb);
}

/* ---- TensorProto (initializers) ---- */

static void float_initializer(cudl__pb *pb, const char *name, int ndim,
                              const int64_t *dims, const float *values,
                              size_t count) {
  int k;
  cudl__pb_begin(pb, GRAPH_INITIALIZER);
  for (k = 0; k < ndim; ++k) cudl__pb_int(pb, TENSOR_DIMS, dims[k]);
  cudl__pb_int(pb, TENSOR_DATA_TYPE, DATA_TYPE_FLOAT);
  cudl__pb_string(pb, TENSOR_NAME, name);
  cudl__pb_floats_le(pb, TENSOR_RAW_DATA, values, count);
  cudl__pb_end(pb);
}

/* A 1-D int64 tensor of count (at most 4) values, little-endian. */
static void int64_initializer(cudl__pb *pb, const char *name,
                              const int64_t *values, int count) {
  unsigned char raw[4 * 8];
  int k, b;
  for (k = 0; k < count; ++k)
    for (b = 0; b < 8; ++b)
      raw[8 * k + b] = (unsigned char)((uint64_t)values[k] >> (8 * b));
  cudl__pb_begin(pb, GRAPH_INITIALIZER);
  cudl__pb_int(pb, TENSOR_DIMS, count);
  cudl__pb_int(pb, TENSOR_DATA_TYPE, DATA_TYPE_INT64);
  cudl__pb_string(pb, TENSOR_NAME, name);
  cudl__pb_bytes(pb, TENSOR_RAW_DATA, raw, (size_t)count * 8);
  cudl__pb_end(pb);
}

/* Parameter p as an initializer of its own name and shape, or of dims
 * when ndim_override > 0 (the same values). */
static cudl_status param_initializer(exporter *e, int p, int ndim_override,
                                     const int64_t *dims_override) {
  const param_entry *pe = &e->m->params[p];
  const size_t bytes = (size_t)pe->numel * sizeof(float);
  cudl_status s;
  /* host holds the largest parameter (export_model sized it). */
  s = cudl_tensor_copy_to_host(pe->value, e->host, bytes);
  if (s != CUDL_OK) return s;
  if (ndim_override > 0)
    float_initializer(&e->initializers, pe->name, ndim_override,
                      dims_override, e->host, (size_t)pe->numel);
  else
    float_initializer(&e->initializers, pe->name, pe->ndim, pe->shape,
                      e->host, (size_t)pe->numel);
  return CUDL_OK;
}

/* ---- each node kind ---- */

/* The name of the value node n reads as its input k. */
static void input_name(const cudl_model *m, const node *n, int k, char *out) {
  value_name(m, n->in[k], out);
}

static cudl_status export_conv(exporter *e, int i, const char *name,
                               const char *x, const char *y) {
  const node *n = &e->m->nodes[i];
  const param_entry *w = &e->m->params[n->weight];
  const char *inputs[3];
  const int64_t kernel[2] = {w->shape[2], w->shape[3]};
  const int64_t strides[2] = {n->conv.stride_h, n->conv.stride_w};
  const int64_t pads[4] = {n->conv.pad_h, n->conv.pad_w, n->conv.pad_h,
                           n->conv.pad_w};
  const int64_t dilations[2] = {n->conv.dilation_h, n->conv.dilation_w};
  cudl_status s;
  inputs[0] = x;
  inputs[1] = w->name;
  inputs[2] = n->bias >= 0 ? e->m->params[n->bias].name : NULL;
  node_begin(&e->nodes, "Conv", name, inputs, n->bias >= 0 ? 3 : 2, y);
  attr_ints(&e->nodes, "kernel_shape", kernel, 2);
  attr_ints(&e->nodes, "strides", strides, 2);
  attr_ints(&e->nodes, "pads", pads, 4);
  attr_ints(&e->nodes, "dilations", dilations, 2);
  attr_int(&e->nodes, "group", n->conv.groups);
  cudl__pb_end(&e->nodes);
  s = param_initializer(e, n->weight, 0, NULL);
  if (s == CUDL_OK && n->bias >= 0) s = param_initializer(e, n->bias, 0, NULL);
  return s;
}

static cudl_status export_linear(exporter *e, int i, const char *name,
                                 const char *x, const char *y) {
  const node *n = &e->m->nodes[i];
  const node *src = &e->m->nodes[n->in[0]];
  char flat[ONNX_NAME_SIZE];
  const char *inputs[3];
  cudl_status s;
  inputs[0] = x;
  if (src->ndim > 1) {
    /* Gemm takes a matrix: the per-sample values in row-major order,
     * which is how cudl's linear layer reads an image. */
    helper_name(i, "flatten", flat); /* the node's name and its output's */
    node_begin(&e->nodes, "Flatten", flat, &x, 1, flat);
    attr_int(&e->nodes, "axis", 1);
    cudl__pb_end(&e->nodes);
    inputs[0] = flat;
  }
  inputs[1] = e->m->params[n->weight].name;
  inputs[2] = n->bias >= 0 ? e->m->params[n->bias].name : NULL;
  node_begin(&e->nodes, "Gemm", name, inputs, n->bias >= 0 ? 3 : 2, y);
  attr_int(&e->nodes, "transB", 1);
  cudl__pb_end(&e->nodes);
  s = param_initializer(e, n->weight, 0, NULL);
  if (s == CUDL_OK && n->bias >= 0) s = param_initializer(e, n->bias, 0, NULL);
  return s;
}

static cudl_status export_batchnorm(exporter *e, int i, const char *name,
                                    const char *x, const char *y) {
  const node *n = &e->m->nodes[i];
  const int params[4] = {n->weight, n->bias, n->running_mean,
                         n->running_var};
  const char *inputs[5];
  cudl_status s = CUDL_OK;
  int k;
  inputs[0] = x;
  for (k = 0; k < 4; ++k) inputs[k + 1] = e->m->params[params[k]].name;
  node_begin(&e->nodes, "BatchNormalization", name, inputs, 5, y);
  attr_float(&e->nodes, "epsilon", n->eps);
  cudl__pb_end(&e->nodes);
  for (k = 0; k < 4 && s == CUDL_OK; ++k)
    s = param_initializer(e, params[k], 0, NULL);
  return s;
}

/* A float scalar initializer "node<i>/<what>". */
static void scalar(exporter *e, int i, const char *what, float value,
                   char *out) {
  helper_name(i, what, out);
  float_initializer(&e->initializers, out, 0, NULL, &value, 1);
}

static cudl_status export_activation(exporter *e, int i, const char *name,
                                     const char *x, const char *y) {
  const node *n = &e->m->nodes[i];
  switch (n->act) {
    case CUDL_ACT_SIGMOID:
      simple_node(&e->nodes, "Sigmoid", name, &x, 1, y);
      return CUDL_OK;
    case CUDL_ACT_TANH:
      simple_node(&e->nodes, "Tanh", name, &x, 1, y);
      return CUDL_OK;
    case CUDL_ACT_RELU:
      simple_node(&e->nodes, "Relu", name, &x, 1, y);
      return CUDL_OK;
    case CUDL_ACT_LEAKY_RELU:
      node_begin(&e->nodes, "LeakyRelu", name, &x, 1, y);
      attr_float(&e->nodes, "alpha", n->alpha);
      cudl__pb_end(&e->nodes);
      return CUDL_OK;
    case CUDL_ACT_ELU:
      node_begin(&e->nodes, "Elu", name, &x, 1, y);
      attr_float(&e->nodes, "alpha", n->alpha);
      cudl__pb_end(&e->nodes);
      return CUDL_OK;
    case CUDL_ACT_GELU: {
      /* Opset 17 has no Gelu: 0.5 * x * (1 + erf(x / sqrt 2)). */
      char root2[ONNX_NAME_SIZE], one[ONNX_NAME_SIZE], half[ONNX_NAME_SIZE];
      char scaled[ONNX_NAME_SIZE], erf[ONNX_NAME_SIZE], sum[ONNX_NAME_SIZE];
      char product[ONNX_NAME_SIZE];
      const char *in2[2];
      scalar(e, i, "sqrt2", 1.41421356237309504880f, root2);
      scalar(e, i, "one", 1.0f, one);
      scalar(e, i, "half", 0.5f, half);
      helper_name(i, "div", scaled);
      helper_name(i, "erf", erf);
      helper_name(i, "add", sum);
      helper_name(i, "mul", product);
      in2[0] = x;
      in2[1] = root2;
      simple_node(&e->nodes, "Div", scaled, in2, 2, scaled);
      in2[0] = scaled;
      simple_node(&e->nodes, "Erf", erf, in2, 1, erf);
      in2[0] = erf;
      in2[1] = one;
      simple_node(&e->nodes, "Add", sum, in2, 2, sum);
      in2[0] = x;
      in2[1] = sum;
      simple_node(&e->nodes, "Mul", product, in2, 2, product);
      in2[0] = product;
      in2[1] = half;
      simple_node(&e->nodes, "Mul", name, in2, 2, y);
      return CUDL_OK;
    }
    case CUDL_ACT_SILU: {
      char gate[ONNX_NAME_SIZE];
      const char *in2[2];
      helper_name(i, "sigmoid", gate);
      simple_node(&e->nodes, "Sigmoid", gate, &x, 1, gate);
      in2[0] = x;
      in2[1] = gate;
      simple_node(&e->nodes, "Mul", name, in2, 2, y);
      return CUDL_OK;
    }
    case CUDL_ACT_COUNT:
      break;
  }
  return CUDL_FAIL(e->m->ctx, CUDL_ERR_UNSUPPORTED,
                   "node %d: activation type %d has no ONNX mapping", i,
                   (int)n->act);
}

static cudl_status export_prelu(exporter *e, int i, const char *name,
                                const char *x, const char *y) {
  const node *n = &e->m->nodes[i];
  const param_entry *w = &e->m->params[n->weight];
  /* PRelu broadcasts the slope from the right: one per channel needs
   * [C, 1, 1] against [N, C, H, W] ([C, 1] against [N, C, L]). */
  int64_t dims[3] = {w->numel, 1, 1};
  const char *inputs[2];
  inputs[0] = x;
  inputs[1] = w->name;
  simple_node(&e->nodes, "PRelu", name, inputs, 2, y);
  return param_initializer(e, n->weight, n->per_channel ? n->ndim : 1, dims);
}

static cudl_status export_pool(exporter *e, int i, const char *name,
                               const char *x, const char *y) {
  const node *n = &e->m->nodes[i];
  const int64_t kernel[2] = {n->pool.kernel_h, n->pool.kernel_w};
  const int64_t strides[2] = {n->pool.stride_h, n->pool.stride_w};
  const int64_t pads[4] = {n->pool.pad_h, n->pool.pad_w, n->pool.pad_h,
                           n->pool.pad_w};
  node_begin(&e->nodes, n->is_max ? "MaxPool" : "AveragePool", name, &x, 1,
             y);
  attr_ints(&e->nodes, "kernel_shape", kernel, 2);
  attr_ints(&e->nodes, "strides", strides, 2);
  attr_ints(&e->nodes, "pads", pads, 4);
  attr_int(&e->nodes, "ceil_mode", n->pool.ceil_mode != 0);
  if (!n->is_max)
    attr_int(&e->nodes, "count_include_pad", n->pool.count_include_pad != 0);
  cudl__pb_end(&e->nodes);
  return CUDL_OK;
}

static cudl_status export_reshape(exporter *e, int i, const char *name,
                                  const char *x, const char *y) {
  const node *n = &e->m->nodes[i];
  char shape_name[ONNX_NAME_SIZE];
  const char *inputs[2];
  int64_t shape[4];
  int k;
  /* 0 copies the batch from the input; the rest is the node's resolved
   * per-sample shape (any -1 already inferred). */
  shape[0] = 0;
  for (k = 0; k < n->ndim; ++k) shape[k + 1] = n->shape[k];
  helper_name(i, "shape", shape_name);
  int64_initializer(&e->initializers, shape_name, shape, n->ndim + 1);
  inputs[0] = x;
  inputs[1] = shape_name;
  simple_node(&e->nodes, "Reshape", name, inputs, 2, y);
  return CUDL_OK;
}

/* Node i (not the input) as operators writing its value. The switch has
 * no default, so a new node kind without its case is a -Wswitch warning
 * (an error with CUDL_WERROR) rather than a file that silently lacks it;
 * the refusal after it is for values outside the enum. */
static cudl_status export_node(exporter *e, int i) {
  const cudl_model *m = e->m;
  const node *n = &m->nodes[i];
  char name[ONNX_NAME_SIZE], x[ONNX_NAME_SIZE], y[ONNX_NAME_SIZE];
  const char *xp = x;
  node_name(m, i, name);
  input_name(m, n, 0, x);
  value_name(m, i, y);
  switch (n->kind) {
    case NODE_CONV:
      return export_conv(e, i, name, x, y);
    case NODE_LINEAR:
      return export_linear(e, i, name, x, y);
    case NODE_BATCHNORM:
      return export_batchnorm(e, i, name, x, y);
    case NODE_ACTIVATION:
      return export_activation(e, i, name, x, y);
    case NODE_PRELU:
      return export_prelu(e, i, name, x, y);
    case NODE_RRELU:
      /* Evaluation's fixed slope, computed as the CPU backend does. */
      node_begin(&e->nodes, "LeakyRelu", name, &xp, 1, y);
      attr_float(&e->nodes, "alpha", (n->lower + n->upper) * 0.5f);
      cudl__pb_end(&e->nodes);
      return CUDL_OK;
    case NODE_DROPOUT:
      simple_node(&e->nodes, "Identity", name, &xp, 1, y);
      return CUDL_OK;
    case NODE_POOL:
      return export_pool(e, i, name, x, y);
    case NODE_GLOBAL_AVG_POOL:
      simple_node(&e->nodes, "GlobalAveragePool", name, &xp, 1, y);
      return CUDL_OK;
    case NODE_FLATTEN:
      node_begin(&e->nodes, "Flatten", name, &xp, 1, y);
      attr_int(&e->nodes, "axis", 1);
      cudl__pb_end(&e->nodes);
      return CUDL_OK;
    case NODE_ADD: {
      char b[ONNX_NAME_SIZE];
      const char *inputs[2];
      input_name(m, n, 1, b);
      inputs[0] = x;
      inputs[1] = b;
      simple_node(&e->nodes, "Add", name, inputs, 2, y);
      return CUDL_OK;
    }
    case NODE_CONCAT: {
      char names[NODE_MAX_INPUTS][ONNX_NAME_SIZE];
      const char *inputs[NODE_MAX_INPUTS];
      int k;
      for (k = 0; k < n->n_in; ++k) {
        input_name(m, n, k, names[k]);
        inputs[k] = names[k];
      }
      node_begin(&e->nodes, "Concat", name, inputs, n->n_in, y);
      attr_int(&e->nodes, "axis", 1);
      cudl__pb_end(&e->nodes);
      return CUDL_OK;
    }
    case NODE_RESHAPE:
      return export_reshape(e, i, name, x, y);
    case NODE_INPUT:
    case NODE_KIND_COUNT:
      break;
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_UNSUPPORTED,
                   "node %d (%s): no ONNX mapping for this node kind", i,
                   (unsigned)n->kind < NODE_KIND_COUNT
                       ? cudl__layers[n->kind]->name
                       : "unknown kind");
}

/* ---- the graph's inputs and outputs ---- */

/* A ValueInfoProto: f32 [N, shape[0 .. ndim)] with N a free dimension. */
static void value_info(cudl__pb *pb, int field, const char *name, int ndim,
                       const int64_t *shape) {
  int k;
  cudl__pb_begin(pb, field);
  cudl__pb_string(pb, VALUE_INFO_NAME, name);
  cudl__pb_begin(pb, VALUE_INFO_TYPE);
  cudl__pb_begin(pb, TYPE_TENSOR);
  cudl__pb_int(pb, TYPE_TENSOR_ELEM_TYPE, DATA_TYPE_FLOAT);
  cudl__pb_begin(pb, TYPE_TENSOR_SHAPE);
  cudl__pb_begin(pb, SHAPE_DIM);
  cudl__pb_string(pb, DIM_PARAM, "N");
  cudl__pb_end(pb);
  for (k = 0; k < ndim; ++k) {
    cudl__pb_begin(pb, SHAPE_DIM);
    cudl__pb_int(pb, DIM_VALUE, shape[k]);
    cudl__pb_end(pb);
  }
  cudl__pb_end(pb); /* shape */
  cudl__pb_end(pb); /* tensor type */
  cudl__pb_end(pb); /* type */
  cudl__pb_end(pb);
}

/* ---- checks ---- */

static int reserved_key(const char *key) {
  return strcmp(key, CUDL_ONNX_METADATA_VERSION) == 0 ||
         strcmp(key, CUDL_ONNX_METADATA_ARCHITECTURE) == 0;
}

static cudl_status check_metadata(cudl_model *m,
                                  const cudl_onnx_options *o) {
  size_t k, j;
  if (o->metadata_count > 0 && o->metadata == NULL)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "options->metadata is NULL with metadata_count %zu",
                     o->metadata_count);
  for (k = 0; k < o->metadata_count; ++k) {
    const cudl_metadata_pair *p = &o->metadata[k];
    if (p->key == NULL || p->key[0] == '\0' || p->value == NULL)
      return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "metadata[%zu]: the key must be a non-empty string "
                       "and the value a string",
                       k);
    if (!cudl__mf_valid_utf8(p->key) || !cudl__mf_valid_utf8(p->value))
      return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "metadata[%zu]: key and value must be UTF-8", k);
    if (reserved_key(p->key))
      return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "metadata[%zu]: \"%s\" is written by the export "
                       "itself",
                       k, p->key);
    for (j = 0; j < k; ++j)
      if (strcmp(o->metadata[j].key, p->key) == 0)
        return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                         "metadata[%zu]: key \"%s\" repeats metadata[%zu]",
                         k, p->key, j);
  }
  return CUDL_OK;
}

/* The model can be written: compiled, with an output, UTF-8 names, and
 * parameters that fit in one protobuf message. *largest receives the
 * largest parameter's element count. */
static cudl_status check_model(cudl_model *m, const cudl_onnx_options *o,
                               int64_t *largest) {
  int64_t total = 0;
  int i;
  if (!m->compiled)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model is not compiled: its parameters exist only "
                     "after cudl_model_compile");
  if (!m->has_output)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the model has no output (cudl_model_set_output)");
  if (o->probabilities && m->loss == CUDL_MODEL_LOSS_MSE)
    return CUDL_FAIL(m->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "probabilities: a model trained with MSE has no "
                     "probabilities to give");
  for (i = 0; i < m->node_count; ++i)
    if (!cudl__mf_valid_utf8(m->nodes[i].name))
      return CUDL_FAIL(m->ctx, CUDL_ERR_UNSUPPORTED,
                       "the name of node %d is not valid UTF-8, which ONNX "
                       "names must be",
                       i);
  *largest = 0;
  for (i = 0; i < m->param_count; ++i) {
    total += m->params[i].numel;
    if (m->params[i].numel > *largest) *largest = m->params[i].numel;
  }
  /* The model's limits keep total below 2^31 floats, so this cannot
   * overflow; the encoder checks the exact size again. */
  if (total > (int64_t)(CUDL__PB_MAX_BYTES / sizeof(float)))
    return CUDL_FAIL(m->ctx, CUDL_ERR_UNSUPPORTED,
                     "the model's %lld parameters need %lld bytes; an ONNX "
                     "file of 2 GiB or more needs the external-data form, "
                     "which this export does not write",
                     (long long)total, (long long)total * 4);
  return check_metadata(m, o);
}

static cudl_status pb_status(cudl_model *m, const cudl__pb *pb) {
  switch (pb->failed) {
    case CUDL__PB_OK:
      return CUDL_OK;
    case CUDL__PB_OUT_OF_MEMORY:
      return CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "out of host memory for the ONNX file (%zu bytes "
                       "built)",
                       pb->length);
    case CUDL__PB_TOO_LARGE:
      return CUDL_FAIL(m->ctx, CUDL_ERR_UNSUPPORTED,
                       "the ONNX file would reach 2 GiB; that needs the "
                       "external-data form, which this export does not "
                       "write");
    case CUDL__PB_TOO_DEEP:
      break;
  }
  return CUDL_FAIL(m->ctx, CUDL_ERR_INTERNAL,
                   "ONNX writer: nested messages unbalanced");
}

/* ---- the file ---- */

static void metadata_entry(cudl__pb *pb, const char *key, const char *value) {
  cudl__pb_begin(pb, MODEL_METADATA_PROPS);
  cudl__pb_string(pb, ENTRY_KEY, key);
  cudl__pb_string(pb, ENTRY_VALUE, value);
  cudl__pb_end(pb);
}

/* The ModelProto into *out (released by the caller). */
static cudl_status build_model(exporter *e, const cudl_onnx_options *o,
                               cudl__pb *out) {
  cudl_model *m = e->m;
  const node *in = &m->nodes[0], *y = &m->nodes[m->output];
  char *architecture = NULL;
  size_t architecture_length = 0, architecture_size = 0, k;
  cudl_status s = CUDL_OK;
  int i;
  for (i = 1; i < m->node_count && s == CUDL_OK; ++i) s = export_node(e, i);
  if (s == CUDL_OK && o->probabilities) {
    const char *output = "output";
    if (m->loss == CUDL_MODEL_LOSS_CROSS_ENTROPY) {
      node_begin(&e->nodes, "Softmax", "probabilities", &output, 1,
                 "probabilities");
      attr_int(&e->nodes, "axis", 1); /* the classes of [N, K] */
      cudl__pb_end(&e->nodes);
    } else {
      simple_node(&e->nodes, "Sigmoid", "probabilities", &output, 1,
                  "probabilities");
    }
  }
  if (s != CUDL_OK) return s;
  if ((s = pb_status(m, &e->nodes)) != CUDL_OK ||
      (s = pb_status(m, &e->initializers)) != CUDL_OK)
    return s;

  s = cudl_model_describe(m, NULL, 0, &architecture_length);
  if (s == CUDL_OK) {
    architecture_size = architecture_length + 1;
    architecture =
        (char *)cudl__host_alloc(&m->allocator, architecture_size, 1);
    s = architecture == NULL
            ? CUDL_FAIL(m->ctx, CUDL_ERR_OUT_OF_MEMORY,
                        "out of host memory for the model's architecture")
            : cudl_model_describe(m, architecture, architecture_size,
                                  &architecture_length);
  }
  if (s != CUDL_OK) {
    cudl__host_free(&m->allocator, architecture, architecture_size);
    return s;
  }

  cudl__pb_int(out, MODEL_IR_VERSION, CUDL_ONNX_IR_VERSION);
  cudl__pb_string(out, MODEL_PRODUCER_NAME, "cudl");
  cudl__pb_string(out, MODEL_PRODUCER_VERSION, cudl_version());
  cudl__pb_begin(out, MODEL_GRAPH);
  /* The graph's node and initializer fields, already encoded. */
  cudl__pb_raw(out, e->nodes.data, e->nodes.length);
  cudl__pb_string(out, GRAPH_NAME, "cudl");
  cudl__pb_raw(out, e->initializers.data, e->initializers.length);
  value_info(out, GRAPH_INPUT, "input", in->ndim, in->shape);
  value_info(out, GRAPH_OUTPUT, "output", y->ndim, y->shape);
  if (o->probabilities)
    value_info(out, GRAPH_OUTPUT, "probabilities", y->ndim, y->shape);
  cudl__pb_end(out);
  cudl__pb_begin(out, MODEL_OPSET_IMPORT);
  cudl__pb_string(out, OPSET_DOMAIN, "");
  cudl__pb_int(out, OPSET_VERSION, CUDL_ONNX_OPSET);
  cudl__pb_end(out);
  for (k = 0; k < o->metadata_count; ++k)
    metadata_entry(out, o->metadata[k].key, o->metadata[k].value);
  metadata_entry(out, CUDL_ONNX_METADATA_VERSION, cudl_version());
  metadata_entry(out, CUDL_ONNX_METADATA_ARCHITECTURE, architecture);
  cudl__host_free(&m->allocator, architecture, architecture_size);
  return pb_status(m, out);
}

cudl_status cudl_model_export_onnx(cudl_model *model,
                                   const cudl_onnx_options *options,
                                   cudl_onnx_write_fn write, void *user) {
  static const cudl_onnx_options defaults = {0, NULL, 0};
  const cudl_onnx_options *o = options != NULL ? options : &defaults;
  exporter e;
  cudl__pb file;
  int64_t largest = 0;
  cudl_status s;
  if (model == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (write == NULL)
    return CUDL_FAIL(model->ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "write is NULL: the bytes need somewhere to go");
  s = check_model(model, o, &largest);
  if (s != CUDL_OK) return s;
  memset(&e, 0, sizeof e);
  e.m = model;
  cudl__pb_init(&e.nodes, &model->allocator);
  cudl__pb_init(&e.initializers, &model->allocator);
  cudl__pb_init(&file, &model->allocator);
  e.host_bytes = (size_t)(largest > 0 ? largest : 1) * sizeof(float);
  e.host = (float *)cudl__host_alloc(&model->allocator, e.host_bytes, 64);
  if (e.host == NULL)
    s = CUDL_FAIL(model->ctx, CUDL_ERR_OUT_OF_MEMORY,
                  "out of host memory for a parameter of %lld values",
                  (long long)largest);
  if (s == CUDL_OK) s = build_model(&e, o, &file);
  cudl__host_free(&model->allocator, e.host, e.host_bytes);
  cudl__pb_release(&e.nodes);
  cudl__pb_release(&e.initializers);
  if (s == CUDL_OK) s = write(user, file.data, file.length);
  cudl__pb_release(&file);
  return s;
}
