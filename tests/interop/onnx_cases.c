/*
 * onnx_cases - the cudl side of the ONNX interop test (onnx-interop.sh):
 * models, their ONNX files, inputs and cudl's outputs, for an ONNX runtime
 * to run and compare (onnx_run.js) and the ONNX checker to check
 * (onnx_check.py).
 *
 *   onnx_cases tiny DIR
 *       small models that use every node kind, every activation, both
 *       layouts, each loss, and the zoo's architectures, with random
 *       weights and batch-norm statistics: DIR/<case>.onnx (exported
 *       through the C API), DIR/<case>.in.f32 (a random batch) and
 *       DIR/<case>.out.f32 (cudl's evaluation-mode output for it).
 *   onnx_cases fashion DIR COUNT
 *       small-cnn and ResNet-20 for Fashion-MNIST, trained for a few steps
 *       (train_briefly), saved as weights files with the
 *       class names and normalisation, as cudl train saves them
 *       (DIR/<model>.safetensors: `cudl export` makes the ONNX files);
 *       the first COUNT test images normalised (DIR/fashion.in.f32) and
 *       cudl's logits for them (DIR/<model>.out.f32).
 *
 * Each mode writes DIR/manifest.txt, a line per case:
 *   <case> <rows> <input shape per sample, "CxHxW" or "F"> <output numel
 *       per sample>
 *       <loss> <probabilities 0|1> <input file>
 * Files are raw little-endian f32 (this test runs on little-endian hosts),
 * row-major [rows, per-sample values].
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cudl/cudl.h>

static cudl_context *ctx;

static int fail(const char *what, cudl_status s) {
  fprintf(stderr, "onnx_cases: %s: %s: %s\n", what, cudl_status_string(s),
          cudl_context_last_error(ctx));
  return 1;
}

/* Deterministic uniform numbers in [lo, hi): a 64-bit LCG's top bits. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ULL;
static float uniform(float lo, float hi) {
  rng_state = rng_state * 6364136223846793005ULL + 1442695040888963407ULL;
  return lo + (hi - lo) * (float)((uint32_t)(rng_state >> 40) / 16777216.0);
}

static int write_floats(const char *dir, const char *name, const char *suffix,
                        const float *values, size_t count) {
  char path[1024];
  FILE *f;
  size_t written;
  snprintf(path, sizeof path, "%s/%s%s", dir, name, suffix);
  f = fopen(path, "wb");
  if (f == NULL) {
    perror(path);
    return 1;
  }
  written = fwrite(values, sizeof(float), count, f);
  if (fclose(f) != 0 || written != count) {
    perror(path);
    return 1;
  }
  return 0;
}

static cudl_status write_file(void *user, const void *data, size_t size) {
  return fwrite(data, 1, size, (FILE *)user) == size ? CUDL_OK : CUDL_ERR_IO;
}

static int export_onnx(cudl_model *m, const char *dir, const char *name,
                       const cudl_onnx_options *options) {
  char path[1024];
  FILE *f;
  cudl_status s;
  snprintf(path, sizeof path, "%s/%s.onnx", dir, name);
  f = fopen(path, "wb");
  if (f == NULL) {
    perror(path);
    return 1;
  }
  s = cudl_model_export_onnx(m, options, write_file, f);
  if (fclose(f) != 0 && s == CUDL_OK) s = CUDL_ERR_IO;
  return s == CUDL_OK ? 0 : fail(path, s);
}

/* Batch norm's statistics and affine parameters away from their initial
 * 0, 1 (which would make the layer an identity the mapping could get
 * wrong unseen). */
static int randomise_batchnorm(cudl_model *m) {
  int i, count = cudl_model_param_count(m);
  for (i = 0; i < count; ++i) {
    int trainable;
    const char *name = cudl_model_param_name(m, i, &trainable);
    const size_t len = strlen(name);
    cudl_tensor *t = cudl_model_param(m, name);
    const int64_t n = cudl_tensor_numel(t);
    float lo, hi, *values;
    int64_t k;
    cudl_status s;
    if (len > 13 && strcmp(name + len - 13, ".running_mean") == 0) {
      lo = -0.5f;
      hi = 0.5f;
    } else if (len > 12 && strcmp(name + len - 12, ".running_var") == 0) {
      lo = 0.25f;
      hi = 2.0f;
    } else {
      continue;
    }
    values = (float *)malloc((size_t)n * sizeof *values);
    if (values == NULL) return 1;
    for (k = 0; k < n; ++k) values[k] = uniform(lo, hi);
    s = cudl_tensor_copy_from_host(t, values, (size_t)n * sizeof *values);
    free(values);
    if (s != CUDL_OK) return fail(name, s);
  }
  return 0;
}

/* cudl's evaluation-mode output for rows x in_numel inputs x. */
static int forward(cudl_model *m, const float *x, int64_t rows,
                   int64_t in_numel, const int64_t *in_shape, int in_ndim,
                   float *out, int64_t out_numel) {
  int64_t shape[4];
  cudl_tensor *t = NULL;
  cudl_status s;
  int k;
  shape[0] = rows;
  for (k = 0; k < in_ndim; ++k) shape[k + 1] = in_shape[k];
  s = cudl_tensor_create(ctx, CUDL_DTYPE_F32, in_ndim + 1, shape, &t);
  if (s == CUDL_OK)
    s = cudl_tensor_copy_from_host(t, x, (size_t)(rows * in_numel) * 4);
  if (s == CUDL_OK) s = cudl_model_forward(m, t, NULL, NULL);
  if (s == CUDL_OK)
    s = cudl_tensor_copy_to_host(cudl_model_output(m), out,
                                 (size_t)(rows * out_numel) * 4);
  cudl_tensor_destroy(t);
  return s == CUDL_OK ? 0 : fail("forward", s);
}

static const char *loss_name(const char *text) {
  if (strstr(text, "\"bce_with_logits\"") != NULL) return "bce";
  if (strstr(text, "\"mse\"") != NULL) return "mse";
  return "ce";
}

/* One tiny case: the model of `text` (a model file), or the zoo model
 * made by `zoo` when text is NULL. */
typedef struct tiny_case {
  const char *name;
  const char *text;
  int layout_nhwc;
  int probabilities;
} tiny_case;

static const tiny_case tiny_cases[] = {
    /* Convolutions of every geometry, both poolings with and without
     * padding and ceil mode, PReLU per channel, linear with and without
     * bias, dropout. */
    {"conv_pool",
     "{\"version\": 1, \"input_shape\": [3, 11, 13], \"layers\": ["
     "{\"kind\": \"conv2d\", \"name\": \"c1\", \"out_channels\": 6, "
     "\"kernel_size\": 3, \"stride\": 2, \"padding\": 1},"
     "{\"kind\": \"batchnorm\", \"name\": \"bn1\"},"
     "{\"kind\": \"relu\"},"
     "{\"kind\": \"conv2d\", \"name\": \"c2\", \"out_channels\": 6, "
     "\"kernel_size\": [3, 2], \"padding\": [1, 0], \"dilation\": 2, "
     "\"groups\": 3, \"bias\": false},"
     "{\"kind\": \"max_pool2d\", \"kernel_size\": 3, \"stride\": 2, "
     "\"padding\": 1, \"ceil_mode\": true},"
     "{\"kind\": \"leaky_relu\", \"alpha\": 0.2},"
     "{\"kind\": \"avg_pool2d\", \"kernel_size\": 2, \"stride\": 1, "
     "\"padding\": 1},"
     "{\"kind\": \"prelu\", \"name\": \"p1\", \"per_channel\": true, "
     "\"init_slope\": 0.1},"
     "{\"kind\": \"avg_pool2d\", \"kernel_size\": 2, \"stride\": 2, "
     "\"padding\": 1, \"ceil_mode\": true, \"count_include_pad\": false},"
     "{\"kind\": \"max_pool2d\", \"kernel_size\": 2, \"stride\": 1},"
     "{\"kind\": \"flatten\"},"
     "{\"kind\": \"linear\", \"name\": \"fc1\", \"out_features\": 7},"
     "{\"kind\": \"dropout\", \"p\": 0.3},"
     "{\"kind\": \"linear\", \"name\": \"fc2\", \"out_features\": 4, "
     "\"bias\": false}]}",
     0, 1},
    /* Every activation on vectors; batch norm per feature. */
    {"activations",
     "{\"version\": 1, \"input_shape\": [17], \"layers\": ["
     "{\"kind\": \"linear\", \"name\": \"l1\", \"out_features\": 12},"
     "{\"kind\": \"sigmoid\"},"
     "{\"kind\": \"linear\", \"name\": \"l2\", \"out_features\": 12},"
     "{\"kind\": \"tanh\"},"
     "{\"kind\": \"linear\", \"name\": \"l3\", \"out_features\": 12},"
     "{\"kind\": \"elu\", \"alpha\": 0.7},"
     "{\"kind\": \"linear\", \"name\": \"l4\", \"out_features\": 12},"
     "{\"kind\": \"gelu\"},"
     "{\"kind\": \"linear\", \"name\": \"l5\", \"out_features\": 12},"
     "{\"kind\": \"silu\"},"
     "{\"kind\": \"prelu\", \"name\": \"pr\", \"init_slope\": 0.3},"
     "{\"kind\": \"rrelu\", \"lower\": 0.1, \"upper\": 0.3},"
     "{\"kind\": \"batchnorm\", \"name\": \"bn\", \"eps\": 0.001},"
     "{\"kind\": \"linear\", \"name\": \"out\", \"out_features\": 5}]}",
     0, 0},
    /* Residual add, concatenations of images and of vectors (an input
     * repeated), reshapes (with -1), PReLU per channel on [A, B], global
     * average pooling. */
    {"graph",
     "{\"version\": 1, \"input_shape\": [4, 6, 6], \"layers\": ["
     "{\"kind\": \"conv2d\", \"name\": \"a\", \"out_channels\": 4, "
     "\"kernel_size\": 3, \"padding\": 1},"
     "{\"kind\": \"relu\", \"id\": \"ra\"},"
     "{\"kind\": \"conv2d\", \"name\": \"b\", \"out_channels\": 4, "
     "\"kernel_size\": 3, \"padding\": 1},"
     "{\"kind\": \"batchnorm\", \"name\": \"bnb\"},"
     "{\"kind\": \"add\", \"inputs\": [\"bnb\", \"ra\"], \"id\": \"sum\"},"
     "{\"kind\": \"concat\", \"inputs\": [\"ra\", \"sum\", \"ra\"]},"
     "{\"kind\": \"reshape\", \"shape\": [12, 36]},"
     "{\"kind\": \"prelu\", \"name\": \"pc\", \"per_channel\": true},"
     "{\"kind\": \"reshape\", \"shape\": [3, 12, -1]},"
     "{\"kind\": \"global_avg_pool\"},"
     "{\"kind\": \"flatten\", \"id\": \"flat\"},"
     "{\"kind\": \"concat\", \"inputs\": [\"flat\", \"flat\"]},"
     "{\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 3}]}",
     0, 0},
    /* An image output with binary cross-entropy, its probabilities a
     * sigmoid. */
    {"bce_image",
     "{\"version\": 1, \"input_shape\": [2, 5, 5], \"layers\": ["
     "{\"kind\": \"conv2d\", \"name\": \"c\", \"out_channels\": 3, "
     "\"kernel_size\": 3, \"padding\": 1}],"
     " \"loss\": \"bce_with_logits\"}",
     0, 1},
    /* Regression: MSE on a linear layer. */
    {"mse",
     "{\"version\": 1, \"input_shape\": [6], \"layers\": ["
     "{\"kind\": \"linear\", \"name\": \"fc\", \"out_features\": 2}],"
     " \"loss\": \"mse\"}",
     0, 0},
};

/* The channels-last copies of these: the file must not depend on the
 * layout. */
static const char *const nhwc_cases[] = {"conv_pool", "graph"};

static int run_case(const char *dir, FILE *manifest, const char *name,
                    cudl_model *m, int nhwc, int probabilities,
                    const char *loss) {
  const int64_t rows = 5;
  int64_t in_shape[3], out_shape[3], in_numel = 1, out_numel = 1;
  int in_ndim, out_ndim, k, rc = 1;
  float *x = NULL, *y = NULL;
  cudl_onnx_options options;
  const cudl_metadata_pair meta[2] = {{"classes", "[\"a\", \"b\"]"},
                                      {"normalize.mean", "0.5"}};
  cudl_status s = CUDL_OK;
  if (nhwc) s = cudl_model_set_layout(m, CUDL_LAYOUT_NHWC);
  if (s == CUDL_OK) s = cudl_model_compile(m, rows);
  if (s == CUDL_OK) s = cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM);
  if (s == CUDL_OK) s = cudl_model_set_training(m, 0);
  if (s != CUDL_OK) return fail(name, s);
  if (randomise_batchnorm(m) != 0) return 1;
  in_ndim = cudl_model_node_shape(m, 0, in_shape);
  out_ndim = cudl_model_node_shape(m, cudl_model_output_node(m), out_shape);
  for (k = 0; k < in_ndim; ++k) in_numel *= in_shape[k];
  for (k = 0; k < out_ndim; ++k) out_numel *= out_shape[k];
  x = (float *)malloc((size_t)(rows * in_numel) * sizeof *x);
  y = (float *)malloc((size_t)(rows * out_numel) * sizeof *y);
  if (x == NULL || y == NULL) goto done;
  for (k = 0; k < rows * in_numel; ++k) x[k] = uniform(-2.0f, 2.0f);
  if (forward(m, x, rows, in_numel, in_shape, in_ndim, y, out_numel) != 0)
    goto done;
  memset(&options, 0, sizeof options);
  options.probabilities = probabilities;
  options.metadata = meta;
  options.metadata_count = 2;
  if (export_onnx(m, dir, name, &options) != 0 ||
      write_floats(dir, name, ".in.f32", x, (size_t)(rows * in_numel)) != 0 ||
      write_floats(dir, name, ".out.f32", y, (size_t)(rows * out_numel)) != 0)
    goto done;
  fprintf(manifest, "%s %lld ", name, (long long)rows);
  for (k = 0; k < in_ndim; ++k)
    fprintf(manifest, "%s%lld", k ? "x" : "", (long long)in_shape[k]);
  fprintf(manifest, " %lld %s %d %s.in.f32\n", (long long)out_numel, loss,
          probabilities, name);
  rc = 0;
done:
  free(x);
  free(y);
  return rc;
}

static int tiny(const char *dir, FILE *manifest) {
  size_t c;
  int rc = 0;
  for (c = 0; c < sizeof tiny_cases / sizeof tiny_cases[0] && rc == 0; ++c) {
    const tiny_case *t = &tiny_cases[c];
    size_t j;
    int layout;
    for (layout = 0; layout < 2 && rc == 0; ++layout) {
      char name[128];
      cudl_model *m = NULL;
      cudl_status s;
      int wanted = layout == 0;
      for (j = 0; j < sizeof nhwc_cases / sizeof nhwc_cases[0]; ++j)
        if (layout == 1 && strcmp(nhwc_cases[j], t->name) == 0) wanted = 1;
      if (!wanted) continue;
      snprintf(name, sizeof name, "%s%s", t->name, layout ? "_nhwc" : "");
      s = cudl_model_parse(ctx, t->text, strlen(t->text), t->name, &m);
      if (s != CUDL_OK) return fail(t->name, s);
      rc = run_case(dir, manifest, name, m, layout, t->probabilities,
                    loss_name(t->text));
      cudl_model_destroy(m);
    }
  }
  /* The zoo's architectures, small. */
  if (rc == 0) {
    const int64_t shape[3] = {3, 8, 8}, widths[2] = {9, 7};
    const char *names[4] = {"zoo_small_cnn", "zoo_resnet8", "zoo_plain8",
                            "zoo_mlp"};
    int z;
    for (z = 0; z < 4 && rc == 0; ++z) {
      cudl_model *m = NULL;
      cudl_status s;
      if (z == 0)
        s = cudl_zoo_small_cnn(ctx, 1, 12, 12, 10, 0.25f, &m);
      else if (z == 3)
        s = cudl_zoo_mlp(ctx, 3, shape, 2, widths, CUDL_ACT_RELU, 0.0f, 6,
                         &m);
      else
        s = cudl_zoo_resnet(ctx, 8, z == 2, 3, 8, 8, 10, &m);
      if (s != CUDL_OK) return fail(names[z], s);
      rc = run_case(dir, manifest, names[z], m, 0, 1, "ce");
      cudl_model_destroy(m);
    }
  }
  return rc;
}

/* For `cudl export` (onnx-interop.sh): DIR/cli/weights.safetensors, a
 * small-cnn saved as cudl train saves one, its input and output and
 * manifest as above (probabilities asked for); DIR/no_arch.safetensors, a
 * weights file without an architecture. */
static int cli_files(const char *dir) {
  char sub[1024], path[1100];
  const int64_t rows = 3, in_numel = 144, classes = 3;
  const int64_t in_shape[3] = {1, 12, 12};
  const cudl_metadata_pair meta[5] = {{"model", "tiny-cli"},
                                      {"dataset", "made-up"},
                                      {"classes", "[\"x\", \"y\", \"z\"]"},
                                      {"normalize.mean", "0.25"},
                                      {"normalize.std", "0.5"}};
  float x[3 * 144], y[3 * 3];
  cudl_model *m = NULL;
  cudl_named_tensor named;
  FILE *manifest;
  int64_t k;
  cudl_status s;
  snprintf(sub, sizeof sub, "%s/cli", dir);
  if (mkdir(sub, 0777) != 0 && errno != EEXIST) {
    perror(sub);
    return 1;
  }
  s = cudl_zoo_small_cnn(ctx, 1, 12, 12, classes, 0.5f, &m);
  if (s == CUDL_OK) s = cudl_model_compile(m, rows);
  if (s == CUDL_OK) s = cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM);
  if (s == CUDL_OK) s = cudl_model_set_training(m, 0);
  if (s != CUDL_OK) return fail("cli model", s);
  if (randomise_batchnorm(m) != 0) return 1;
  for (k = 0; k < rows * in_numel; ++k) x[k] = uniform(-2.0f, 2.0f);
  if (forward(m, x, rows, in_numel, in_shape, 3, y, classes) != 0) return 1;
  snprintf(path, sizeof path, "%s/weights.safetensors", sub);
  s = cudl_model_save(m, path, meta, 5);
  named.name = cudl_model_param_name(m, 0, NULL);
  named.tensor = cudl_model_param(m, named.name);
  snprintf(path, sizeof path, "%s/no_arch.safetensors", dir);
  if (s == CUDL_OK) s = cudl_safetensors_save(ctx, path, &named, 1, NULL, 0);
  cudl_model_destroy(m);
  if (s != CUDL_OK) return fail(path, s);
  if (write_floats(sub, "weights", ".in.f32", x, (size_t)(rows * in_numel)) ||
      write_floats(sub, "weights", ".out.f32", y, (size_t)(rows * classes)))
    return 1;
  snprintf(path, sizeof path, "%s/manifest.txt", sub);
  manifest = fopen(path, "w");
  if (manifest == NULL) return 1;
  fprintf(manifest, "weights 3 1x12x12 3 ce 1 weights.in.f32\n");
  return fclose(manifest) != 0;
}

/* ---- Fashion-MNIST ---- */

/* TRAIN_STEPS Adam steps on batches of the first `count` images x (of
 * ds): enough for a network that tells the classes apart (a random one
 * answers a few classes for everything, and would agree by chance), and
 * batch-norm running statistics of real activations. Not a good network:
 * the test compares engines, not accuracy. */
#define TRAIN_STEPS 20
#define TRAIN_BATCH 100
static cudl_status train_briefly(cudl_model *m, const cudl_dataset *ds,
                                 const float *x, int64_t count) {
  const int64_t shape[4] = {TRAIN_BATCH, 1, 28, 28}, rows = TRAIN_BATCH;
  cudl_optimizer_config config;
  cudl_optimizer *opt = NULL;
  cudl_tensor *images = NULL, *labels = NULL;
  int32_t host_labels[TRAIN_BATCH];
  int64_t step, k;
  cudl_status s = cudl_optimizer_config_default(CUDL_OPTIMIZER_ADAM, &config);
  if (count < TRAIN_BATCH) return CUDL_OK;
  if (s == CUDL_OK)
    s = cudl_optimizer_create(ctx, &config,
                              cudl_tensor_numel(cudl_model_params(m)), &opt);
  if (s == CUDL_OK)
    s = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &images);
  if (s == CUDL_OK) s = cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, &rows, &labels);
  for (step = 0; step < TRAIN_STEPS && s == CUDL_OK; ++step) {
    const int64_t first = (step * TRAIN_BATCH) % (count - TRAIN_BATCH + 1);
    for (k = 0; k < TRAIN_BATCH; ++k)
      host_labels[k] = cudl_dataset_label(ds, first + k);
    s = cudl_tensor_copy_from_host(images, x + first * 784,
                                   (size_t)TRAIN_BATCH * 784 * 4);
    if (s == CUDL_OK)
      s = cudl_tensor_copy_from_host(labels, host_labels, sizeof host_labels);
    if (s == CUDL_OK) s = cudl_model_forward(m, images, labels, NULL);
    if (s == CUDL_OK) s = cudl_model_backward(m);
    if (s == CUDL_OK)
      s = cudl_optimizer_step(opt, cudl_model_params(m), cudl_model_grads(m),
                              config.lr);
  }
  cudl_tensor_destroy(images);
  cudl_tensor_destroy(labels);
  cudl_optimizer_destroy(opt);
  return s;
}

static int fashion(const char *dir, FILE *manifest, int64_t count) {
  const int64_t in_shape[3] = {1, 28, 28}, in_numel = 784, classes = 10;
  const int64_t batch = 250;
  const char *models[2] = {"small-cnn", "resnet20"};
  cudl_dataset *ds = NULL;
  float mean, std, *x = NULL, *y = NULL;
  char class_json[512], mean_text[32], std_text[32];
  int64_t i, k;
  int z, rc = 1;
  cudl_status s = cudl_dataset_load(ctx, "fashion-mnist", NULL, 0, &ds);
  if (s != CUDL_OK) return fail("fashion-mnist test set", s);
  if (count > cudl_dataset_count(ds)) count = cudl_dataset_count(ds);
  s = cudl_dataset_channel_stats(ds, &mean, &std);
  if (s != CUDL_OK) {
    rc = fail("channel stats", s);
    goto done;
  }
  snprintf(mean_text, sizeof mean_text, "%.9g", (double)mean);
  snprintf(std_text, sizeof std_text, "%.9g", (double)std);
  strcpy(class_json, "[");
  for (k = 0; k < classes; ++k) {
    strcat(class_json, k ? ", \"" : "\"");
    strcat(class_json, cudl_dataset_class_name(ds, (int)k));
    strcat(class_json, "\"");
  }
  strcat(class_json, "]");
  x = (float *)malloc((size_t)(count * in_numel) * sizeof *x);
  y = (float *)malloc((size_t)(count * classes) * sizeof *y);
  if (x == NULL || y == NULL) goto done;
  /* As cudl train normalises: pixel / 255, then (v - mean) / std. */
  for (i = 0; i < count; ++i) {
    const uint8_t *p = cudl_dataset_image(ds, i);
    for (k = 0; k < in_numel; ++k)
      x[i * in_numel + k] = ((float)p[k] / 255.0f - mean) / std;
  }
  if (write_floats(dir, "fashion", ".in.f32", x, (size_t)(count * in_numel)))
    goto done;
  for (z = 0; z < 2; ++z) {
    char path[1024];
    cudl_model *m = NULL;
    const cudl_metadata_pair meta[5] = {{"model", models[z]},
                                        {"dataset", "fashion-mnist"},
                                        {"classes", class_json},
                                        {"normalize.mean", mean_text},
                                        {"normalize.std", std_text}};
    s = z == 0 ? cudl_zoo_small_cnn(ctx, 1, 28, 28, classes, 0.25f, &m)
               : cudl_zoo_resnet(ctx, 20, 0, 1, 28, 28, classes, &m);
    if (s == CUDL_OK) s = cudl_model_compile(m, batch);
    if (s == CUDL_OK) s = cudl_model_init(m, CUDL_INIT_KAIMING_UNIFORM);
    if (s == CUDL_OK) s = train_briefly(m, ds, x, count);
    if (s == CUDL_OK) s = cudl_model_set_training(m, 0);
    for (i = 0; i < count && s == CUDL_OK; i += batch) {
      const int64_t rows = count - i < batch ? count - i : batch;
      if (forward(m, x + i * in_numel, rows, in_numel, in_shape, 3,
                  y + i * classes, classes) != 0)
        s = CUDL_ERR_INTERNAL;
    }
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, models[z]);
    if (s == CUDL_OK) s = cudl_model_save(m, path, meta, 5);
    cudl_model_destroy(m);
    if (s != CUDL_OK) {
      rc = fail(models[z], s);
      goto done;
    }
    if (write_floats(dir, models[z], ".out.f32", y, (size_t)(count * classes)))
      goto done;
    fprintf(manifest, "%s %lld 1x28x28 %lld ce 0 fashion.in.f32\n",
            models[z], (long long)count, (long long)classes);
  }
  rc = 0;
done:
  free(x);
  free(y);
  cudl_dataset_destroy(ds);
  return rc;
}

int main(int argc, char **argv) {
  char path[1024];
  FILE *manifest;
  int rc;
  long long count = 0;
  if (argc < 3 || (strcmp(argv[1], "tiny") != 0 &&
                   (strcmp(argv[1], "fashion") != 0 || argc != 4 ||
                    (count = atoll(argv[3])) < 1))) {
    fprintf(stderr, "usage: onnx_cases tiny DIR | fashion DIR COUNT\n");
    return 2;
  }
  if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK) {
    fprintf(stderr, "onnx_cases: no CPU context\n");
    return 1;
  }
  snprintf(path, sizeof path, "%s/manifest.txt", argv[2]);
  manifest = fopen(path, "w");
  if (manifest == NULL) {
    perror(path);
    cudl_context_destroy(ctx);
    return 1;
  }
  rc = strcmp(argv[1], "tiny") == 0 ? tiny(argv[2], manifest)
                                    : fashion(argv[2], manifest, count);
  if (rc == 0 && strcmp(argv[1], "tiny") == 0) rc = cli_files(argv[2]);
  if (fclose(manifest) != 0) rc = 1;
  cudl_context_destroy(ctx);
  return rc;
}
