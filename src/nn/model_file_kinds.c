/* model_file_kinds.c - the layer kinds of model files: one row per kind
 * (model_file.h), each with the keys it takes, how it is built from the
 * file and how a node is written back. Defaults are PyTorch's, so a layer
 * written as its torch.nn module would be needs no more keys than the
 * module's constructor call. */
#include <string.h>

#include "nn/model_file.h"

/* ---- weighted layers ---- */

static const char *const conv2d_keys[] = {
    "out_channels", "kernel_size", "stride", "padding",
    "dilation",     "groups",      "bias",   NULL};

static cudl_status build_conv2d(cudl__mf_reader *r,
                                const cudl__model_file_kind *kind,
                                const int *inputs, int n_inputs,
                                int *node_out) {
  static const int one[2] = {1, 1}, zero[2] = {0, 0};
  cudl_conv2d_desc desc = CUDL_CONV2D_DESC_DEFAULT;
  int64_t out_channels = 0, groups = 1;
  int kernel[2], stride[2], pad[2], dilation[2], bias = 1;
  cudl_status s;
  (void)kind;
  (void)n_inputs;
  s = cudl__mf_int(r, "out_channels", 1, 1, CUDL_MODEL_FILE_MAX_SIZE, 0,
                   &out_channels);
  if (s == CUDL_OK)
    s = cudl__mf_pair(r, "kernel_size", 1, 1, CUDL_MODEL_FILE_MAX_WINDOW, one,
                      kernel);
  if (s == CUDL_OK)
    s = cudl__mf_pair(r, "stride", 0, 1, CUDL_MODEL_FILE_MAX_WINDOW, one,
                      stride);
  if (s == CUDL_OK)
    s = cudl__mf_pair(r, "padding", 0, 0, CUDL_MODEL_FILE_MAX_WINDOW, zero,
                      pad);
  if (s == CUDL_OK)
    s = cudl__mf_pair(r, "dilation", 0, 1, CUDL_MODEL_FILE_MAX_WINDOW, one,
                      dilation);
  if (s == CUDL_OK)
    s = cudl__mf_int(r, "groups", 0, 1, CUDL_MODEL_FILE_MAX_SIZE, 1, &groups);
  if (s == CUDL_OK) s = cudl__mf_bool(r, "bias", 1, &bias);
  if (s != CUDL_OK) return s;
  desc.stride_h = stride[0];
  desc.stride_w = stride[1];
  desc.pad_h = pad[0];
  desc.pad_w = pad[1];
  desc.dilation_h = dilation[0];
  desc.dilation_w = dilation[1];
  desc.groups = (int)groups;
  return cudl__mf_graph(
      r, cudl_model_add_conv2d(r->model, inputs[0], r->name, out_channels,
                               kernel[0], kernel[1], &desc, bias, node_out));
}

static void describe_conv2d(cudl__mf_writer *w, const cudl_model *m,
                            const node *n) {
  const param_entry *weight = &m->params[n->weight];
  const cudl_conv2d_desc *d = &n->conv;
  cudl__mf_key_int(w, "out_channels", n->shape[0]);
  cudl__mf_key_pair(w, "kernel_size", (int)weight->shape[2],
                    (int)weight->shape[3]);
  if (d->stride_h != 1 || d->stride_w != 1)
    cudl__mf_key_pair(w, "stride", d->stride_h, d->stride_w);
  if (d->pad_h != 0 || d->pad_w != 0)
    cudl__mf_key_pair(w, "padding", d->pad_h, d->pad_w);
  if (d->dilation_h != 1 || d->dilation_w != 1)
    cudl__mf_key_pair(w, "dilation", d->dilation_h, d->dilation_w);
  if (d->groups != 1) cudl__mf_key_int(w, "groups", d->groups);
  if (!n->has_bias) cudl__mf_key_bool(w, "bias", 0);
}

static const char *const linear_keys[] = {"out_features", "bias", NULL};

static cudl_status build_linear(cudl__mf_reader *r,
                                const cudl__model_file_kind *kind,
                                const int *inputs, int n_inputs,
                                int *node_out) {
  int64_t out_features = 0;
  int bias = 1;
  cudl_status s;
  (void)kind;
  (void)n_inputs;
  s = cudl__mf_int(r, "out_features", 1, 1, CUDL_MODEL_FILE_MAX_SIZE, 0,
                   &out_features);
  if (s == CUDL_OK) s = cudl__mf_bool(r, "bias", 1, &bias);
  if (s != CUDL_OK) return s;
  return cudl__mf_graph(r, cudl_model_add_linear(r->model, inputs[0], r->name,
                                                 out_features, bias, node_out));
}

static void describe_linear(cudl__mf_writer *w, const cudl_model *m,
                            const node *n) {
  (void)m;
  cudl__mf_key_int(w, "out_features", n->shape[0]);
  if (!n->has_bias) cudl__mf_key_bool(w, "bias", 0);
}

/* ---- normalisation and dropout ---- */

#define BN_MOMENTUM 0.1f
#define BN_EPS 1e-5f

static const char *const batchnorm_keys[] = {"momentum", "eps", NULL};

static cudl_status build_batchnorm(cudl__mf_reader *r,
                                   const cudl__model_file_kind *kind,
                                   const int *inputs, int n_inputs,
                                   int *node_out) {
  float momentum = BN_MOMENTUM, eps = BN_EPS;
  cudl_status s;
  (void)kind;
  (void)n_inputs;
  s = cudl__mf_float(r, "momentum", 0.0, 1.0, BN_MOMENTUM, &momentum);
  /* eps > 0: the smallest positive float is the lower bound. */
  if (s == CUDL_OK) s = cudl__mf_float(r, "eps", 1e-45, 1e30, BN_EPS, &eps);
  if (s != CUDL_OK) return s;
  return cudl__mf_graph(
      r, cudl_model_add_batchnorm(r->model, inputs[0], r->name, momentum, eps,
                                  node_out));
}

static void describe_batchnorm(cudl__mf_writer *w, const cudl_model *m,
                               const node *n) {
  (void)m;
  if (n->momentum != BN_MOMENTUM)
    cudl__mf_key_float(w, "momentum", n->momentum);
  if (n->eps != BN_EPS) cudl__mf_key_float(w, "eps", n->eps);
}

#define DROPOUT_P 0.5f

static const char *const dropout_keys[] = {"p", NULL};

static cudl_status build_dropout(cudl__mf_reader *r,
                                 const cudl__model_file_kind *kind,
                                 const int *inputs, int n_inputs,
                                 int *node_out) {
  float p = DROPOUT_P;
  cudl_status s;
  (void)kind;
  (void)n_inputs;
  s = cudl__mf_float(r, "p", 0.0, 1.0, DROPOUT_P, &p);
  if (s != CUDL_OK) return s;
  return cudl__mf_graph(
      r, cudl_model_add_dropout(r->model, inputs[0], p, node_out));
}

static void describe_dropout(cudl__mf_writer *w, const cudl_model *m,
                             const node *n) {
  (void)m;
  if (n->p != DROPOUT_P) cudl__mf_key_float(w, "p", n->p);
}

/* ---- activations ---- */

/* Only leaky ReLU (its negative slope) and ELU (its saturation) read
 * alpha; their rows list the key. */
static const char *const no_keys[] = {NULL};
static const char *const alpha_keys[] = {"alpha", NULL};

static float alpha_default(int type) {
  return type == CUDL_ACT_ELU ? 1.0f : 0.01f;
}

static int takes_alpha(const cudl__model_file_kind *kind) {
  return kind->keys == alpha_keys;
}

static cudl_status build_activation(cudl__mf_reader *r,
                                    const cudl__model_file_kind *kind,
                                    const int *inputs, int n_inputs,
                                    int *node_out) {
  float alpha = 0.0f;
  (void)n_inputs;
  if (takes_alpha(kind)) {
    cudl_status s = cudl__mf_float(r, "alpha", -1e30, 1e30,
                                   alpha_default(kind->variant), &alpha);
    if (s != CUDL_OK) return s;
  }
  return cudl__mf_graph(
      r, cudl_model_add_activation(r->model, inputs[0],
                                   (cudl_activation_type)kind->variant, alpha,
                                   node_out));
}

static int activation_variant(const node *n) { return (int)n->act; }

static void describe_activation(cudl__mf_writer *w, const cudl_model *m,
                                const node *n) {
  const cudl__model_file_kind *kind = cudl__model_file_kind_of(n);
  (void)m;
  if (kind != NULL && takes_alpha(kind) && n->alpha != alpha_default(n->act))
    cudl__mf_key_float(w, "alpha", n->alpha);
}

#define PRELU_INIT 0.25f

static const char *const prelu_keys[] = {"per_channel", "init_slope", NULL};

static cudl_status build_prelu(cudl__mf_reader *r,
                               const cudl__model_file_kind *kind,
                               const int *inputs, int n_inputs, int *node_out) {
  int per_channel = 0;
  float init = PRELU_INIT;
  cudl_status s;
  (void)kind;
  (void)n_inputs;
  s = cudl__mf_bool(r, "per_channel", 0, &per_channel);
  if (s == CUDL_OK)
    s = cudl__mf_float(r, "init_slope", -1e30, 1e30, PRELU_INIT, &init);
  if (s != CUDL_OK) return s;
  return cudl__mf_graph(r, cudl_model_add_prelu(r->model, inputs[0], r->name,
                                                per_channel, init, node_out));
}

static void describe_prelu(cudl__mf_writer *w, const cudl_model *m,
                           const node *n) {
  (void)m;
  if (n->per_channel) cudl__mf_key_bool(w, "per_channel", 1);
  if (n->init_slope != PRELU_INIT)
    cudl__mf_key_float(w, "init_slope", n->init_slope);
}

/* PyTorch's nn.RReLU: lower 1/8, upper 1/3. */
#define RRELU_LOWER 0.125f
#define RRELU_UPPER ((float)(1.0 / 3.0))

static const char *const rrelu_keys[] = {"lower", "upper", NULL};

static cudl_status build_rrelu(cudl__mf_reader *r,
                               const cudl__model_file_kind *kind,
                               const int *inputs, int n_inputs, int *node_out) {
  float lower = RRELU_LOWER, upper = RRELU_UPPER;
  cudl_status s;
  (void)kind;
  (void)n_inputs;
  s = cudl__mf_float(r, "lower", -1e30, 1e30, RRELU_LOWER, &lower);
  if (s == CUDL_OK)
    s = cudl__mf_float(r, "upper", -1e30, 1e30, RRELU_UPPER, &upper);
  if (s != CUDL_OK) return s;
  if (!(lower <= upper))
    return cudl__mf_fail(r, CUDL_ERR_FILE_VALUE, "upper",
                         "must be at least lower (%g), not %g", (double)lower,
                         (double)upper);
  return cudl__mf_graph(
      r, cudl_model_add_rrelu(r->model, inputs[0], lower, upper, node_out));
}

static void describe_rrelu(cudl__mf_writer *w, const cudl_model *m,
                           const node *n) {
  (void)m;
  if (n->lower != RRELU_LOWER) cudl__mf_key_float(w, "lower", n->lower);
  if (n->upper != RRELU_UPPER) cudl__mf_key_float(w, "upper", n->upper);
}

/* ---- pooling ---- */

static const char *const max_pool_keys[] = {"kernel_size", "stride", "padding",
                                            "ceil_mode", NULL};
static const char *const avg_pool_keys[] = {"kernel_size", "stride", "padding",
                                            "ceil_mode", "count_include_pad",
                                            NULL};

static cudl_status build_pool2d(cudl__mf_reader *r,
                                const cudl__model_file_kind *kind,
                                const int *inputs, int n_inputs,
                                int *node_out) {
  static const int one[2] = {1, 1}, zero[2] = {0, 0};
  cudl_pool2d_desc desc;
  int kernel[2], stride[2], pad[2], include_pad = 1, ceil_mode = 0;
  cudl_status s;
  (void)n_inputs;
  memset(&desc, 0, sizeof desc);
  s = cudl__mf_pair(r, "kernel_size", 1, 1, CUDL_MODEL_FILE_MAX_WINDOW, one,
                    kernel);
  /* PyTorch: the stride defaults to the window. */
  if (s == CUDL_OK)
    s = cudl__mf_pair(r, "stride", 0, 1, CUDL_MODEL_FILE_MAX_WINDOW, kernel,
                      stride);
  if (s == CUDL_OK)
    s = cudl__mf_pair(r, "padding", 0, 0, CUDL_MODEL_FILE_MAX_WINDOW, zero,
                      pad);
  if (s == CUDL_OK) s = cudl__mf_bool(r, "ceil_mode", 0, &ceil_mode);
  if (s == CUDL_OK && !kind->variant)
    s = cudl__mf_bool(r, "count_include_pad", 1, &include_pad);
  if (s != CUDL_OK) return s;
  desc.kernel_h = kernel[0];
  desc.kernel_w = kernel[1];
  desc.stride_h = stride[0];
  desc.stride_w = stride[1];
  desc.pad_h = pad[0];
  desc.pad_w = pad[1];
  desc.count_include_pad = kind->variant ? 0 : include_pad;
  desc.ceil_mode = ceil_mode;
  return cudl__mf_graph(
      r, cudl_model_add_pool2d(r->model, inputs[0], kind->variant, &desc,
                               node_out));
}

static int pool2d_variant(const node *n) { return n->is_max; }

static void describe_pool2d(cudl__mf_writer *w, const cudl_model *m,
                            const node *n) {
  const cudl_pool2d_desc *d = &n->pool;
  (void)m;
  cudl__mf_key_pair(w, "kernel_size", d->kernel_h, d->kernel_w);
  if (d->stride_h != d->kernel_h || d->stride_w != d->kernel_w)
    cudl__mf_key_pair(w, "stride", d->stride_h, d->stride_w);
  if (d->pad_h != 0 || d->pad_w != 0)
    cudl__mf_key_pair(w, "padding", d->pad_h, d->pad_w);
  if (d->ceil_mode) cudl__mf_key_bool(w, "ceil_mode", 1);
  if (!n->is_max && !d->count_include_pad)
    cudl__mf_key_bool(w, "count_include_pad", 0);
}

/* ---- routing: no settings ---- */

static cudl_status build_global_avg_pool(cudl__mf_reader *r,
                                         const cudl__model_file_kind *kind,
                                         const int *inputs, int n_inputs,
                                         int *node_out) {
  (void)kind;
  (void)n_inputs;
  return cudl__mf_graph(
      r, cudl_model_add_global_avg_pool(r->model, inputs[0], node_out));
}

static cudl_status build_flatten(cudl__mf_reader *r,
                                 const cudl__model_file_kind *kind,
                                 const int *inputs, int n_inputs,
                                 int *node_out) {
  (void)kind;
  (void)n_inputs;
  return cudl__mf_graph(r,
                        cudl_model_add_flatten(r->model, inputs[0], node_out));
}

static cudl_status build_add(cudl__mf_reader *r,
                             const cudl__model_file_kind *kind,
                             const int *inputs, int n_inputs, int *node_out) {
  (void)kind;
  (void)n_inputs;
  return cudl__mf_graph(
      r, cudl_model_add_add(r->model, inputs[0], inputs[1], node_out));
}

static cudl_status build_concat(cudl__mf_reader *r,
                                const cudl__model_file_kind *kind,
                                const int *inputs, int n_inputs,
                                int *node_out) {
  (void)kind;
  return cudl__mf_graph(
      r, cudl_model_add_concat(r->model, n_inputs, inputs, node_out));
}

static const char *const reshape_keys[] = {"shape", NULL};

/* "shape": the per-sample shape, 1 to 3 sizes, one of which may be -1
 * (inferred, as PyTorch's reshape). */
static cudl_status build_reshape(cudl__mf_reader *r,
                                 const cudl__model_file_kind *kind,
                                 const int *inputs, int n_inputs,
                                 int *node_out) {
  const json_t *v = json_object_get(r->layer, "shape");
  int64_t shape[3];
  size_t j;
  (void)kind;
  (void)n_inputs;
  if (v == NULL)
    return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, "shape",
                         "missing: a reshape gives the per-sample shape");
  if (!json_is_array(v) || json_array_size(v) < 1 || json_array_size(v) > 3)
    return cudl__mf_fail(r, CUDL_ERR_FILE_SCHEMA, "shape",
                         "must be an array of 1 to 3 sizes, not %s",
                         json_is_array(v) ? "an array of another length"
                                          : cudl__mf_json_what(v));
  for (j = 0; j < json_array_size(v); ++j) {
    char path[32];
    cudl_status s;
    snprintf(path, sizeof path, "shape[%zu]", j);
    const json_t *size = json_array_get(v, j);
    if (json_is_integer(size) && json_integer_value(size) == -1) {
      shape[j] = -1;
      continue;
    }
    s = cudl__mf_check_int(r, path, size, 1, CUDL_MODEL_FILE_MAX_SIZE,
                           " or -1 (inferred)", &shape[j]);
    if (s != CUDL_OK) return s;
  }
  return cudl__mf_graph(r, cudl_model_add_reshape(r->model, inputs[0],
                                                  (int)json_array_size(v),
                                                  shape, node_out));
}

static void describe_reshape(cudl__mf_writer *w, const cudl_model *m,
                             const node *n) {
  int k;
  (void)m;
  cudl__mf_put_key(w, "shape");
  cudl__mf_put(w, "[");
  for (k = 0; k < n->ndim; ++k) {
    if (k > 0) cudl__mf_put(w, ", ");
    cudl__mf_put_int(w, n->shape[k]);
  }
  cudl__mf_put(w, "]");
}

static void describe_nothing(cudl__mf_writer *w, const cudl_model *m,
                             const node *n) {
  (void)w;
  (void)m;
  (void)n;
}

/* ---- the table ---- */

#define ACTIVATION(kind, type, keys)                              \
  {                                                               \
    kind, NODE_ACTIVATION, type, 0, 1, 1, keys, build_activation, \
        activation_variant, describe_activation                   \
  }

const cudl__model_file_kind cudl__model_file_kinds[] = {
    {"conv2d", NODE_CONV, 0, 1, 1, 1, conv2d_keys, build_conv2d, NULL,
     describe_conv2d},
    {"linear", NODE_LINEAR, 0, 1, 1, 1, linear_keys, build_linear, NULL,
     describe_linear},
    {"batchnorm", NODE_BATCHNORM, 0, 1, 1, 1, batchnorm_keys, build_batchnorm,
     NULL, describe_batchnorm},
    ACTIVATION("sigmoid", CUDL_ACT_SIGMOID, no_keys),
    ACTIVATION("tanh", CUDL_ACT_TANH, no_keys),
    ACTIVATION("relu", CUDL_ACT_RELU, no_keys),
    ACTIVATION("leaky_relu", CUDL_ACT_LEAKY_RELU, alpha_keys),
    ACTIVATION("elu", CUDL_ACT_ELU, alpha_keys),
    ACTIVATION("gelu", CUDL_ACT_GELU, no_keys),
    ACTIVATION("silu", CUDL_ACT_SILU, no_keys),
    {"prelu", NODE_PRELU, 0, 1, 1, 1, prelu_keys, build_prelu, NULL,
     describe_prelu},
    {"rrelu", NODE_RRELU, 0, 0, 1, 1, rrelu_keys, build_rrelu, NULL,
     describe_rrelu},
    {"dropout", NODE_DROPOUT, 0, 0, 1, 1, dropout_keys, build_dropout, NULL,
     describe_dropout},
    {"max_pool2d", NODE_POOL, 1, 0, 1, 1, max_pool_keys, build_pool2d,
     pool2d_variant, describe_pool2d},
    {"avg_pool2d", NODE_POOL, 0, 0, 1, 1, avg_pool_keys, build_pool2d,
     pool2d_variant, describe_pool2d},
    {"global_avg_pool", NODE_GLOBAL_AVG_POOL, 0, 0, 1, 1, no_keys,
     build_global_avg_pool, NULL, describe_nothing},
    {"flatten", NODE_FLATTEN, 0, 0, 1, 1, no_keys, build_flatten, NULL,
     describe_nothing},
    {"add", NODE_ADD, 0, 0, 2, 2, no_keys, build_add, NULL, describe_nothing},
    {"concat", NODE_CONCAT, 0, 0, 2, CUDL_MODEL_CONCAT_MAX_INPUTS, no_keys,
     build_concat, NULL, describe_nothing},
    {"reshape", NODE_RESHAPE, 0, 0, 1, 1, reshape_keys, build_reshape, NULL,
     describe_reshape},
};

const int cudl__model_file_kind_count =
    (int)(sizeof cudl__model_file_kinds / sizeof cudl__model_file_kinds[0]);

const cudl__model_file_kind *cudl__model_file_kind_by_name(const char *kind) {
  int i;
  for (i = 0; i < cudl__model_file_kind_count; ++i)
    if (strcmp(cudl__model_file_kinds[i].kind, kind) == 0)
      return &cudl__model_file_kinds[i];
  return NULL;
}

const cudl__model_file_kind *cudl__model_file_kind_of(const node *n) {
  int i;
  for (i = 0; i < cudl__model_file_kind_count; ++i) {
    const cudl__model_file_kind *k = &cudl__model_file_kinds[i];
    if (k->builds == n->kind &&
        (k->variant_of == NULL || k->variant_of(n) == k->variant))
      return k;
  }
  return NULL;
}
