/*
 * chapter.c - the textbook chapter's claims, measured with cudl's public
 * API. One experiment per command; each writes its numbers as JSON (plot.py
 * draws them) and a one-line verdict on stdout. docs/experiments.md writes
 * them up.
 *
 *   chapter boolean   [--full] --json PATH   AND, OR, XOR with and without
 *                                            a hidden layer
 *   chapter vanishing [--full] --json PATH   per-layer gradient norms of
 *                                            20-layer MLPs (sigmoid, tanh,
 *                                            ReLU) at the start of training
 *   chapter dying     [--full] --json PATH   dead units against the learning
 *                                            rate: ReLU, leaky ReLU, PReLU
 *   chapter init      [--full] --json PATH   zero against random
 *                                            initialisation: symmetry
 *   chapter overfit   [--full] --json PATH   the train/test gap on 1000
 *                                            images, and what narrows it
 *   chapter degradation [--full] --json PATH training error of plain-20/56
 *                                            and ResNet-20/56
 *
 * --full runs more seeds or batches: the quick runs take a minute or two on
 * a 2-core CPU.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/cudl.h>

#define CHECK(call)                                                  \
  do {                                                               \
    cudl_status s_ = (call);                                         \
    if (s_ != CUDL_OK) {                                             \
      fprintf(stderr, "chapter: %s failed: %s: %s\n", #call,         \
              cudl_status_string(s_), cudl_context_last_error(ctx)); \
      exit(1);                                                       \
    }                                                                \
  } while (0)

/* ---- boolean functions ---- */

/* One SGD step over the whole model (plain, as the chapter's). */
static void sgd(cudl_context *ctx, cudl_model *m, float lr) {
  CHECK(cudl_add(ctx, cudl_model_params(m), -lr, cudl_model_grads(m),
                 cudl_model_params(m)));
}

/* The Fashion-MNIST training set, a loader config for it (batches of
 * `batch`, seed 1, no partial batch, the set's own normalisation) and the
 * batch tensors the loader fills. */
static cudl_dataset *fashion_batches(cudl_context *ctx, int64_t batch,
                                     cudl_loader_config *config,
                                     cudl_tensor **x, cudl_tensor **labels) {
  const int64_t xs[4] = {batch, 1, 28, 28};
  cudl_dataset *ds = NULL;
  *config = cudl_loader_config_default();
  CHECK(cudl_dataset_load(ctx, "fashion-mnist", NULL, 1, &ds));
  config->batch = batch;
  config->seed = 1;
  config->drop_last = 1;
  CHECK(cudl_dataset_channel_stats(ds, config->mean, config->std));
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, x));
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, &batch, labels));
  return ds;
}

/* The class with the largest of 10 scores (the first of equal ones). */
static int top_class(const float *scores) {
  int best = 0, j;
  for (j = 1; j < 10; ++j)
    if (scores[j] > scores[best]) best = j;
  return best;
}

/* Correct top-1 predictions of the last forward's output ([rows, 10])
 * against labels ([rows] i32). */
static int64_t output_hits(cudl_context *ctx, cudl_model *m,
                           const cudl_tensor *labels, int64_t rows) {
  float *logits = (float *)malloc((size_t)rows * 10 * sizeof(float));
  int32_t *y = (int32_t *)malloc((size_t)rows * sizeof(int32_t));
  int64_t r, hits = 0;
  if (logits == NULL || y == NULL) {
    fprintf(stderr, "chapter: out of memory\n");
    exit(1);
  }
  CHECK(cudl_tensor_copy_to_host(cudl_model_output(m), logits,
                                 (size_t)rows * 10 * sizeof(float)));
  CHECK(cudl_tensor_copy_to_host(labels, y, (size_t)rows * sizeof(int32_t)));
  for (r = 0; r < rows; ++r) hits += top_class(logits + r * 10) == y[r];
  free(logits);
  free(y);
  return hits;
}

/* Train a 2-input model on a truth table; write its loss curve. */
static void boolean_run(cudl_context *ctx, FILE *json, const char *function,
                        const float targets[4], int hidden, uint64_t seed,
                        int steps, int first) {
  const float inputs[8] = {0, 0, 0, 1, 1, 0, 1, 1};
  const int64_t in = 2, xs[2] = {4, 2}, ts[2] = {4, 1};
  cudl_model *m = NULL;
  cudl_tensor *x = NULL, *t = NULL;
  int node = 0, step, correct = 0, k;
  float loss = 0.0f, logits[4], largest = 0.0f;
  CHECK(cudl_model_create(ctx, 1, &in, &m));
  if (hidden) {
    CHECK(cudl_model_add_linear(m, 0, "hidden", 4, 1, &node));
    CHECK(cudl_model_add_activation(m, node, CUDL_ACT_TANH, 0.0f, &node));
  }
  CHECK(cudl_model_add_linear(m, node, "out", 1, 1, &node));
  CHECK(cudl_model_set_output(m, node, CUDL_MODEL_LOSS_BCE_WITH_LOGITS));
  CHECK(cudl_model_compile(m, 4));
  CHECK(cudl_context_set_seed(ctx, seed));
  CHECK(cudl_model_init(m, CUDL_INIT_XAVIER_UNIFORM));
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 2, xs, &x));
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 2, ts, &t));
  CHECK(cudl_tensor_copy_from_host(x, inputs, sizeof inputs));
  CHECK(cudl_tensor_copy_from_host(t, targets, 4 * sizeof(float)));
  fprintf(json,
          "%s\n    {\"function\": \"%s\", \"model\": \"%s\", \"seed\": %llu, "
          "\"loss\": [",
          first ? "" : ",", function, hidden ? "one-hidden" : "no-hidden",
          (unsigned long long)seed);
  for (step = 0; step < steps; ++step) {
    CHECK(cudl_model_forward(m, x, t, &loss));
    if (step % 50 == 0) fprintf(json, "%s%.6g", step ? ", " : "", loss);
    CHECK(cudl_model_backward(m));
    sgd(ctx, m, 0.5f);
  }
  CHECK(cudl_model_forward(m, x, t, &loss));
  CHECK(cudl_tensor_copy_to_host(cudl_model_output(m), logits, sizeof logits));
  for (k = 0; k < 4; ++k) {
    correct += (logits[k] > 0.0f) == (targets[k] > 0.5f);
    if (fabsf(logits[k]) > largest) largest = fabsf(logits[k]);
  }
  /* A model stuck at p = 0.5 has logits near 0 whose signs are noise: its
   * "accuracy" then means nothing, which the largest logit shows. */
  fprintf(json,
          "], \"final_loss\": %.6g, \"accuracy\": %.3f, "
          "\"max_abs_logit\": %.3g}",
          loss, correct / 4.0, largest);
  printf(
      "  %-4s %-11s seed %llu: loss %.4f, accuracy %d/4, largest |logit| "
      "%.2g\n",
      function, hidden ? "one-hidden" : "no-hidden", (unsigned long long)seed,
      loss, correct, largest);
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(t);
  cudl_model_destroy(m);
}

static void boolean_experiment(cudl_context *ctx, FILE *json, int full) {
  static const struct {
    const char *name;
    float t[4];
  } functions[] = {
      {"and", {0, 0, 0, 1}}, {"or", {0, 1, 1, 1}}, {"xor", {0, 1, 1, 0}}};
  const int seeds = full ? 20 : 5, steps = full ? 5000 : 2000;
  int f, hidden, seed, first = 1;
  fprintf(json,
          "{\"experiment\": \"boolean\", \"steps\": %d, \"lr\": 0.5, "
          "\"runs\": [",
          steps);
  for (f = 0; f < 3; ++f)
    for (hidden = 0; hidden <= 1; ++hidden)
      for (seed = 1; seed <= seeds; ++seed) {
        boolean_run(ctx, json, functions[f].name, functions[f].t, hidden,
                    (uint64_t)seed, steps, first);
        first = 0;
      }
  fprintf(json, "\n  ]}\n");
}

/* ---- vanishing gradients ---- */

static void vanishing_experiment(cudl_context *ctx, FILE *json, int full) {
  static const struct {
    const char *name;
    cudl_activation_type act;
    cudl_init_scheme init;
    const char *init_name;
  } acts[] = {
      /* each with the initialisation made for it ... */
      {"sigmoid", CUDL_ACT_SIGMOID, CUDL_INIT_XAVIER_NORMAL, "xavier"},
      {"tanh", CUDL_ACT_TANH, CUDL_INIT_XAVIER_NORMAL, "xavier"},
      {"relu", CUDL_ACT_RELU, CUDL_INIT_KAIMING_NORMAL, "kaiming"},
      /* ... and all three with PyTorch's default (weights U(+-1/sqrt(fan_in)),
       * a third of the variance Xavier gives tanh) */
      {"sigmoid", CUDL_ACT_SIGMOID, CUDL_INIT_PYTORCH_DEFAULT, "default"},
      {"tanh", CUDL_ACT_TANH, CUDL_INIT_PYTORCH_DEFAULT, "default"},
      {"relu", CUDL_ACT_RELU, CUDL_INIT_PYTORCH_DEFAULT, "default"}};
  enum { DEPTH = 20, WIDTH = 100, BATCH = 128 };
  const int batches = full ? 50 : 10;
  const int64_t shape[3] = {1, 28, 28};
  int64_t widths[DEPTH];
  cudl_dataset *ds = NULL;
  cudl_loader *loader = NULL;
  cudl_loader_config config;
  cudl_tensor *x = NULL, *labels = NULL;
  int a, i;
  for (i = 0; i < DEPTH; ++i) widths[i] = WIDTH;
  ds = fashion_batches(ctx, BATCH, &config, &x, &labels);
  fprintf(json,
          "{\"experiment\": \"vanishing\", \"depth\": %d, \"width\": %d, "
          "\"batch\": %d, \"batches\": %d, \"runs\": [",
          DEPTH, WIDTH, BATCH, batches);
  for (a = 0; a < (int)(sizeof acts / sizeof acts[0]); ++a) {
    cudl_model *m = NULL;
    cudl_layer_diagnostics *rows;
    double weight_norm[DEPTH + 1] = {0}, input_norm[DEPTH + 1] = {0};
    int count = 0, b, layer;
    int64_t rows_out = 0;
    int done = 0;
    CHECK(
        cudl_zoo_mlp(ctx, 3, shape, DEPTH, widths, acts[a].act, 0.0f, 10, &m));
    CHECK(cudl_model_compile(m, BATCH));
    CHECK(cudl_context_set_seed(ctx, 1));
    CHECK(cudl_model_init(m, acts[a].init));
    CHECK(cudl_model_set_diagnostics(m, 1));
    rows = (cudl_layer_diagnostics *)calloc((size_t)cudl_model_node_count(m),
                                            sizeof *rows);
    CHECK(cudl_loader_create(ctx, ds, &config, &loader));
    /* The gradients of the untrained network, batch by batch: no update,
     * so every batch sees the initial weights. */
    for (b = 0; b < batches; ++b) {
      CHECK(cudl_loader_next(loader, x, labels, &rows_out, &done));
      CHECK(cudl_model_forward(m, x, labels, NULL));
      CHECK(cudl_model_backward(m));
      CHECK(cudl_model_diagnostics(m, rows, cudl_model_node_count(m), &count,
                                   NULL));
      for (i = 0, layer = 0; i < count && layer <= DEPTH; ++i) {
        if (strcmp(rows[i].kind, "linear") != 0) continue;
        weight_norm[layer] += rows[i].weight_grad_norm / batches;
        if (!isnan(rows[i].input_grad_norm))
          input_norm[layer] += rows[i].input_grad_norm / batches;
        ++layer;
      }
    }
    fprintf(json,
            "%s\n    {\"activation\": \"%s\", \"init\": \"%s\", "
            "\"weight_grad_norm\": [",
            a ? "," : "", acts[a].name, acts[a].init_name);
    for (layer = 0; layer <= DEPTH; ++layer)
      fprintf(json, "%s%.6g", layer ? ", " : "", weight_norm[layer]);
    fprintf(json, "], \"input_grad_norm\": [");
    for (layer = 0; layer <= DEPTH; ++layer)
      fprintf(json, "%s%.6g", layer ? ", " : "", input_norm[layer]);
    fprintf(json, "]}");
    printf(
        "  %-7s (%s init): weight-gradient norm layer 1 %.3g, layer %d "
        "%.3g: ratio %.3g\n",
        acts[a].name, acts[a].init_name, weight_norm[0], DEPTH + 1,
        weight_norm[DEPTH], weight_norm[0] / weight_norm[DEPTH]);
    free(rows);
    cudl_loader_destroy(loader);
    loader = NULL;
    cudl_model_destroy(m);
  }
  fprintf(json, "\n  ]}\n");
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_dataset_destroy(ds);
}

/* ---- dying ReLUs ---- */

/* A 784 -> 256 x 3 -> 10 MLP with the given activation after each hidden
 * layer ("relu", "leaky_relu" with slope 0.01, "prelu" with one learnable
 * slope per layer starting at 0.25); *acts receives the activation nodes. */
static cudl_model *dying_mlp(cudl_context *ctx, const char *act, int acts[3]) {
  const int64_t shape[3] = {1, 28, 28};
  cudl_model *m = NULL;
  int node = 0, i;
  char name[32];
  CHECK(cudl_model_create(ctx, 3, shape, &m));
  CHECK(cudl_model_add_flatten(m, 0, &node));
  for (i = 0; i < 3; ++i) {
    snprintf(name, sizeof name, "hidden.%d", i);
    CHECK(cudl_model_add_linear(m, node, name, 256, 1, &node));
    if (strcmp(act, "prelu") == 0) {
      snprintf(name, sizeof name, "prelu.%d", i);
      CHECK(cudl_model_add_prelu(m, node, name, 0, 0.25f, &node));
    } else {
      CHECK(cudl_model_add_activation(
          m, node,
          strcmp(act, "relu") == 0 ? CUDL_ACT_RELU : CUDL_ACT_LEAKY_RELU, 0.01f,
          &node));
    }
    acts[i] = node;
  }
  CHECK(cudl_model_add_linear(m, node, "fc", 10, 1, &node));
  CHECK(cudl_model_set_output(m, node, CUDL_MODEL_LOSS_CROSS_ENTROPY));
  return m;
}

static void dying_experiment(cudl_context *ctx, FILE *json, int full) {
  static const char *const acts[] = {"relu", "leaky_relu", "prelu"};
  /* Adam: its steps have the size of the learning rate whatever the
   * gradient, so large rates push pre-activations far without diverging
   * (plain SGD at 0.5 turns the loss into NaN first). */
  static const float lrs[] = {0.0001f, 0.001f, 0.01f, 0.03f, 0.1f};
  enum { BATCH = 128, WINDOW = 50 };
  const int steps = full ? 2000 : 300;
  cudl_dataset *ds = NULL;
  cudl_loader_config config;
  cudl_tensor *x = NULL, *labels = NULL;
  cudl_optimizer_config oc;
  int a, l, first = 1;
  ds = fashion_batches(ctx, BATCH, &config, &x, &labels);
  CHECK(cudl_optimizer_config_default(CUDL_OPTIMIZER_ADAM, &oc));
  fprintf(json,
          "{\"experiment\": \"dying\", \"steps\": %d, \"window\": %d, "
          "\"batch\": %d, \"optimizer\": \"adam\", "
          "\"runs\": [",
          steps, WINDOW, BATCH);
  for (a = 0; a < 3; ++a)
    for (l = 0; l < (int)(sizeof lrs / sizeof lrs[0]); ++l) {
      cudl_model *m;
      cudl_optimizer *opt = NULL;
      cudl_loader *loader = NULL;
      cudl_layer_diagnostics *rows;
      int act_nodes[3], count = 0, step, i, k, done = 0, diverged = 0;
      int64_t rows_out = 0;
      double dead[3] = {0, 0, 0};
      float loss = 0.0f;
      m = dying_mlp(ctx, acts[a], act_nodes);
      CHECK(cudl_model_compile(m, BATCH));
      CHECK(cudl_context_set_seed(ctx, 1));
      CHECK(cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
      oc.lr = lrs[l];
      CHECK(cudl_optimizer_create(
          ctx, &oc, cudl_tensor_numel(cudl_model_params(m)), &opt));
      CHECK(cudl_model_set_diagnostics(m, WINDOW));
      rows = (cudl_layer_diagnostics *)calloc((size_t)cudl_model_node_count(m),
                                              sizeof *rows);
      CHECK(cudl_loader_create(ctx, ds, &config, &loader));
      for (step = 1; step <= steps && !diverged; ++step) {
        CHECK(cudl_loader_next(loader, x, labels, &rows_out, &done));
        CHECK(cudl_model_forward(m, x, labels, &loss));
        if (!isfinite(loss)) {
          diverged = 1;
          break;
        }
        CHECK(cudl_model_backward(m));
        CHECK(cudl_optimizer_step(opt, cudl_model_params(m),
                                  cudl_model_grads(m), lrs[l]));
        /* Read at every window's end: the last read is the last window. */
        if (step % WINDOW == 0)
          CHECK(cudl_model_diagnostics(m, rows, cudl_model_node_count(m),
                                       &count, NULL));
      }
      for (k = 0; k < count && !diverged; ++k)
        for (i = 0; i < 3; ++i)
          if (rows[k].node == act_nodes[i]) dead[i] = rows[k].dead_fraction;
      fprintf(json,
              "%s\n    {\"activation\": \"%s\", \"lr\": %g, "
              "\"diverged\": %s, \"final_loss\": ",
              first ? "" : ",", acts[a], (double)lrs[l],
              diverged ? "true" : "false");
      if (diverged)
        fprintf(json, "null, \"dead_fraction\": null}");
      else
        fprintf(json, "%.6g, \"dead_fraction\": [%.4f, %.4f, %.4f]}",
                (double)loss, dead[0], dead[1], dead[2]);
      first = 0;
      if (diverged)
        printf("  %-10s lr %-4g: diverged (non-finite loss)\n", acts[a],
               (double)lrs[l]);
      else
        printf(
            "  %-10s lr %-4g: loss %.3f, dead units per layer %.1f%% "
            "%.1f%% %.1f%%\n",
            acts[a], (double)lrs[l], (double)loss, 100 * dead[0], 100 * dead[1],
            100 * dead[2]);
      free(rows);
      cudl_loader_destroy(loader);
      cudl_optimizer_destroy(opt);
      cudl_model_destroy(m);
    }
  fprintf(json, "\n  ]}\n");
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_dataset_destroy(ds);
}

/* ---- initialisation: zero against random ---- */

static void init_experiment(cudl_context *ctx, FILE *json, int full) {
  enum { BATCH = 128, WIDTH = 32, TAIL = 50 };
  static const struct {
    const char *name;
    cudl_init_scheme scheme;
  } inits[] = {{"zeros", CUDL_INIT_ZEROS}, {"xavier", CUDL_INIT_XAVIER_NORMAL}};
  const int steps = full ? 3000 : 600;
  const int64_t shape[3] = {1, 28, 28}, widths[1] = {WIDTH};
  cudl_dataset *ds = NULL;
  cudl_loader_config config;
  cudl_tensor *x = NULL, *labels = NULL;
  cudl_optimizer_config oc;
  int k;
  ds = fashion_batches(ctx, BATCH, &config, &x, &labels);
  CHECK(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &oc));
  oc.momentum = 0.9f;
  fprintf(json,
          "{\"experiment\": \"init\", \"width\": %d, \"activation\": "
          "\"sigmoid\", \"steps\": %d, \"batch\": %d, \"lr\": 0.1, "
          "\"runs\": [",
          WIDTH, steps, BATCH);
  for (k = 0; k < 2; ++k) {
    cudl_model *m = NULL;
    cudl_optimizer *opt = NULL;
    cudl_loader *loader = NULL;
    float w[WIDTH * 784], loss = 0.0f;
    double spread = 0.0, loss_sum = 0.0;
    int64_t rows_out = 0, hits = 0, seen = 0;
    int step, u, j, distinct = 0, done = 0;
    CHECK(
        cudl_zoo_mlp(ctx, 3, shape, 1, widths, CUDL_ACT_SIGMOID, 0.0f, 10, &m));
    CHECK(cudl_model_compile(m, BATCH));
    CHECK(cudl_context_set_seed(ctx, 1));
    CHECK(cudl_model_init(m, inits[k].scheme));
    CHECK(cudl_optimizer_create(ctx, &oc,
                                cudl_tensor_numel(cudl_model_params(m)), &opt));
    CHECK(cudl_loader_create(ctx, ds, &config, &loader));
    for (step = 1; step <= steps; ++step) {
      CHECK(cudl_loader_next(loader, x, labels, &rows_out, &done));
      CHECK(cudl_model_forward(m, x, labels, &loss));
      CHECK(cudl_model_backward(m));
      CHECK(cudl_optimizer_step(opt, cudl_model_params(m), cudl_model_grads(m),
                                0.1f));
      if (step > steps - TAIL) { /* training accuracy of the last batches */
        hits += output_hits(ctx, m, labels, BATCH);
        seen += BATCH;
        loss_sum += loss;
      }
    }
    /* Hidden units: rows of hidden.0.weight. Identical rows compute the
     * same function; count the distinct ones. */
    CHECK(cudl_tensor_copy_to_host(cudl_model_param(m, "hidden.0.weight"), w,
                                   sizeof w));
    for (u = 0; u < WIDTH; ++u) {
      int same = 0, v;
      for (v = 0; v < u && !same; ++v)
        same = memcmp(w + u * 784, w + v * 784, 784 * sizeof(float)) == 0;
      distinct += !same;
      for (j = 0; j < 784; ++j) {
        const double d = fabs((double)w[u * 784 + j] - w[j]);
        if (d > spread) spread = d;
      }
    }
    fprintf(json,
            "%s\n    {\"init\": \"%s\", \"distinct_units\": %d, "
            "\"max_weight_difference\": %.6g, \"train_loss\": %.6g, "
            "\"train_accuracy\": %.4f}",
            k ? "," : "", inits[k].name, distinct, spread, loss_sum / TAIL,
            (double)hits / (double)seen);
    printf(
        "  %-6s init: %2d distinct hidden units of %d (largest weight "
        "difference %.3g), loss %.3f, train accuracy %.3f\n",
        inits[k].name, distinct, WIDTH, spread, loss_sum / TAIL,
        (double)hits / (double)seen);
    cudl_loader_destroy(loader);
    cudl_optimizer_destroy(opt);
    cudl_model_destroy(m);
  }
  fprintf(json, "\n  ]}\n");
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_dataset_destroy(ds);
}

/* ---- overfitting and what fights it ---- */

/* conv 3x3 (32) [BN] ReLU pool, conv 3x3 (64) [BN] ReLU pool, [dropout]
 * fc 128 ReLU [dropout] fc 10: the small CNN with each regulariser
 * optional. */
static cudl_model *overfit_cnn(cudl_context *ctx, int batchnorm,
                               float dropout) {
  const int64_t shape[3] = {1, 28, 28};
  const char *convs[2] = {"conv1", "conv2"}, *bns[2] = {"bn1", "bn2"};
  const int64_t channels[2] = {32, 64};
  cudl_conv2d_desc conv = CUDL_CONV2D_DESC_DEFAULT;
  cudl_pool2d_desc pool;
  cudl_model *m = NULL;
  int node = 0, i;
  memset(&pool, 0, sizeof pool);
  pool.kernel_h = pool.kernel_w = pool.stride_h = pool.stride_w = 2;
  conv.pad_h = conv.pad_w = 1;
  CHECK(cudl_model_create(ctx, 3, shape, &m));
  for (i = 0; i < 2; ++i) {
    CHECK(cudl_model_add_conv2d(m, node, convs[i], channels[i], 3, 3, &conv,
                                !batchnorm, &node));
    if (batchnorm)
      CHECK(cudl_model_add_batchnorm(m, node, bns[i], 0.1f, 1e-5f, &node));
    CHECK(cudl_model_add_activation(m, node, CUDL_ACT_RELU, 0.0f, &node));
    CHECK(cudl_model_add_pool2d(m, node, 1, &pool, &node));
  }
  CHECK(cudl_model_add_flatten(m, node, &node));
  if (dropout > 0.0f) CHECK(cudl_model_add_dropout(m, node, dropout, &node));
  CHECK(cudl_model_add_linear(m, node, "fc1", 128, 1, &node));
  CHECK(cudl_model_add_activation(m, node, CUDL_ACT_RELU, 0.0f, &node));
  if (dropout > 0.0f) CHECK(cudl_model_add_dropout(m, node, dropout, &node));
  CHECK(cudl_model_add_linear(m, node, "fc2", 10, 1, &node));
  CHECK(cudl_model_set_output(m, node, CUDL_MODEL_LOSS_CROSS_ENTROPY));
  return m;
}

/* Accuracy of m on ds (evaluation mode, in batches through the loader's
 * normalisation); the softmax probabilities are added to probs when it is
 * not NULL ([count, 10]). */
static double evaluate(cudl_context *ctx, cudl_model *m, cudl_dataset *ds,
                       const cudl_loader_config *train_config, int64_t batch,
                       cudl_tensor *x, cudl_tensor *labels, double *probs) {
  cudl_loader_config config = *train_config;
  cudl_loader *loader = NULL;
  int64_t rows = 0, hits = 0, seen = 0, r;
  int done = 0, j;
  float *logits = (float *)malloc((size_t)batch * 10 * sizeof(float));
  int32_t *y = (int32_t *)malloc((size_t)batch * sizeof(int32_t));
  config.batch = batch;
  config.shuffle = 0;
  config.augment = 0;
  config.drop_last = 0;
  CHECK(cudl_model_set_training(m, 0));
  CHECK(cudl_loader_create(ctx, ds, &config, &loader));
  while (!done) {
    cudl_tensor *xv = NULL, *lv = NULL;
    CHECK(cudl_loader_next(loader, x, labels, &rows, &done));
    CHECK(cudl_tensor_narrow(x, 0, rows, &xv));
    CHECK(cudl_tensor_narrow(labels, 0, rows, &lv));
    CHECK(cudl_model_forward(m, xv, NULL, NULL));
    CHECK(cudl_tensor_copy_to_host(cudl_model_output(m), logits,
                                   (size_t)rows * 10 * sizeof(float)));
    CHECK(cudl_tensor_copy_to_host(lv, y, (size_t)rows * sizeof(int32_t)));
    for (r = 0; r < rows; ++r) {
      const int best = top_class(logits + r * 10);
      const double top = logits[r * 10 + best];
      double sum = 0.0;
      hits += best == y[r];
      if (probs == NULL) continue;
      for (j = 0; j < 10; ++j) sum += exp(logits[r * 10 + j] - top);
      for (j = 0; j < 10; ++j)
        probs[(seen + r) * 10 + j] += exp(logits[r * 10 + j] - top) / sum;
    }
    seen += rows;
    cudl_tensor_destroy(xv);
    cudl_tensor_destroy(lv);
  }
  cudl_loader_destroy(loader);
  CHECK(cudl_model_set_training(m, 1));
  free(logits);
  free(y);
  return (double)hits / (double)seen;
}

static void overfit_experiment(cudl_context *ctx, FILE *json, int full) {
  enum { SUBSET = 1000, BATCH = 64, EVAL = 500, ENSEMBLE = 5 };
  static const struct {
    const char *name;
    int batchnorm, augment;
    float dropout, weight_decay;
  } configs[] = {{"none", 0, 0, 0.0f, 0.0f},
                 {"dropout 0.5", 0, 0, 0.5f, 0.0f},
                 {"weight decay 5e-3", 0, 0, 0.0f, 5e-3f},
                 {"batch norm", 1, 0, 0.0f, 0.0f},
                 {"augmentation", 0, 1, 0.0f, 0.0f}};
  const int epochs = full ? 100 : 30;
  const int64_t xs[4] = {EVAL, 1, 28, 28}, ls[1] = {EVAL};
  const int64_t txs[4] = {BATCH, 1, 28, 28}, tls[1] = {BATCH};
  cudl_dataset *train_full = NULL, *train = NULL, *test = NULL;
  cudl_loader_config config = cudl_loader_config_default();
  cudl_tensor *x = NULL, *labels = NULL, *tx = NULL, *tl = NULL;
  uint8_t *pixels = (uint8_t *)malloc((size_t)SUBSET * 784), y[SUBSET];
  double *probs = NULL, mean_single = 0.0;
  int c, i, first = 1;
  CHECK(cudl_dataset_load(ctx, "fashion-mnist", NULL, 1, &train_full));
  CHECK(cudl_dataset_load(ctx, "fashion-mnist", NULL, 0, &test));
  /* The first SUBSET training images: a small set a CNN can memorise. */
  for (i = 0; i < SUBSET; ++i) {
    memcpy(pixels + (size_t)i * 784, cudl_dataset_image(train_full, i), 784);
    y[i] = (uint8_t)cudl_dataset_label(train_full, i);
  }
  CHECK(cudl_dataset_create(ctx, SUBSET, 1, 28, 28, 10, pixels, y, &train));
  free(pixels);
  CHECK(cudl_dataset_channel_stats(train_full, config.mean, config.std));
  config.batch = BATCH;
  config.seed = 1;
  config.crop_padding = 2;
  config.horizontal_flip = 1;
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &x));
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, ls, &labels));
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, txs, &tx));
  CHECK(cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, tls, &tl));
  probs =
      (double *)calloc((size_t)cudl_dataset_count(test) * 10, sizeof *probs);
  fprintf(json,
          "{\"experiment\": \"overfit\", \"train_images\": %d, "
          "\"test_images\": %lld, \"epochs\": %d, \"batch\": %d, "
          "\"optimizer\": \"sgd momentum 0.9, lr 0.02\", \"runs\": [",
          SUBSET, (long long)cudl_dataset_count(test), epochs, BATCH);
  /* Each regulariser alone, then ENSEMBLE unregularised models (seeds 1..)
   * whose averaged probabilities are the ensemble. */
  for (c = 0; c < 5 + ENSEMBLE - 1; ++c) {
    const int k = c < 5 ? c : 0;
    const uint64_t seed = c < 5 ? 1 : (uint64_t)(c - 3);
    cudl_model *m = overfit_cnn(ctx, configs[k].batchnorm, configs[k].dropout);
    cudl_optimizer *opt = NULL;
    cudl_optimizer_config oc;
    cudl_loader *loader = NULL;
    cudl_loader_config tc = config;
    double train_acc, test_acc;
    int64_t rows = 0;
    int epoch, done;
    CHECK(cudl_model_compile(m, EVAL));
    CHECK(cudl_context_set_seed(ctx, seed));
    CHECK(cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
    CHECK(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &oc));
    oc.momentum = 0.9f;
    oc.weight_decay = configs[k].weight_decay;
    CHECK(cudl_optimizer_create(ctx, &oc,
                                cudl_tensor_numel(cudl_model_params(m)), &opt));
    tc.augment = configs[k].augment;
    tc.seed = seed;
    CHECK(cudl_loader_create(ctx, train, &tc, &loader));
    for (epoch = 0; epoch < epochs; ++epoch) {
      done = 0;
      while (!done) {
        cudl_tensor *xv = NULL, *lv = NULL;
        CHECK(cudl_loader_next(loader, tx, tl, &rows, &done));
        CHECK(cudl_tensor_narrow(tx, 0, rows, &xv));
        CHECK(cudl_tensor_narrow(tl, 0, rows, &lv));
        CHECK(cudl_model_forward(m, xv, lv, NULL));
        CHECK(cudl_model_backward(m));
        CHECK(cudl_optimizer_step(opt, cudl_model_params(m),
                                  cudl_model_grads(m), 0.02f));
        cudl_tensor_destroy(xv);
        cudl_tensor_destroy(lv);
      }
    }
    cudl_loader_destroy(loader);
    train_acc = evaluate(ctx, m, train, &config, EVAL, x, labels, NULL);
    test_acc =
        evaluate(ctx, m, test, &config, EVAL, x, labels, k == 0 ? probs : NULL);
    if (k == 0) mean_single += test_acc / ENSEMBLE;
    fprintf(json,
            "%s\n    {\"regulariser\": \"%s\", \"seed\": %llu, "
            "\"train_accuracy\": %.4f, \"test_accuracy\": %.4f, "
            "\"gap\": %.4f}",
            first ? "" : ",", configs[k].name, (unsigned long long)seed,
            train_acc, test_acc, train_acc - test_acc);
    first = 0;
    printf("  %-18s seed %llu: train %.3f, test %.3f, gap %.3f\n",
           configs[k].name, (unsigned long long)seed, train_acc, test_acc,
           train_acc - test_acc);
    cudl_optimizer_destroy(opt);
    cudl_model_destroy(m);
  }
  {
    /* The ensemble: the argmax of the averaged probabilities. */
    const int64_t n = cudl_dataset_count(test);
    int64_t r, hits = 0;
    int j;
    for (r = 0; r < n; ++r) {
      int best = 0;
      for (j = 1; j < 10; ++j)
        if (probs[r * 10 + j] > probs[r * 10 + best]) best = j;
      hits += best == cudl_dataset_label(test, r);
    }
    fprintf(json,
            "\n  ], \"ensemble\": {\"models\": %d, \"test_accuracy\": "
            "%.4f, \"mean_single_test_accuracy\": %.4f}}\n",
            ENSEMBLE, (double)hits / (double)n, mean_single);
    printf(
        "  ensemble of %d unregularised models: test %.3f (their mean "
        "alone %.3f)\n",
        ENSEMBLE, (double)hits / (double)n, mean_single);
  }
  free(probs);
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_tensor_destroy(tx);
  cudl_tensor_destroy(tl);
  cudl_dataset_destroy(train);
  cudl_dataset_destroy(train_full);
  cudl_dataset_destroy(test);
}

/* ---- degradation: plain deep nets against ResNets ---- */

static void degradation_experiment(cudl_context *ctx, FILE *json, int full) {
  enum { BATCH = 128, EVERY = 10 };
  static const struct {
    int depth, plain;
    const char *name;
  } nets[] = {{20, 1, "plain-20"},
              {56, 1, "plain-56"},
              {20, 0, "resnet-20"},
              {56, 0, "resnet-56"}};
  const int steps = full ? 4680 : 300; /* full: 10 epochs of 468 batches */
  cudl_dataset *ds = NULL;
  cudl_loader_config config;
  cudl_tensor *x = NULL, *labels = NULL;
  int n, first = 1;
  ds = fashion_batches(ctx, BATCH, &config, &x, &labels);
  fprintf(json,
          "{\"experiment\": \"degradation\", \"steps\": %d, \"batch\": "
          "%d, \"every\": %d, \"optimizer\": \"sgd momentum 0.9, lr 0.1, "
          "weight decay 1e-4\", \"runs\": [",
          steps, BATCH, EVERY);
  for (n = 0; n < 4; ++n) {
    cudl_model *m = NULL;
    cudl_optimizer *opt = NULL;
    cudl_optimizer_config oc;
    cudl_loader *loader = NULL;
    float loss = 0.0f;
    int64_t rows = 0, hits = 0, seen = 0;
    double last_error = 0.0;
    int step, done = 0;
    CHECK(
        cudl_zoo_resnet(ctx, nets[n].depth, nets[n].plain, 1, 28, 28, 10, &m));
    CHECK(cudl_model_compile(m, BATCH));
    CHECK(cudl_context_set_seed(ctx, 1));
    CHECK(cudl_model_init(m, CUDL_INIT_KAIMING_NORMAL));
    CHECK(cudl_optimizer_config_default(CUDL_OPTIMIZER_SGD, &oc));
    oc.momentum = 0.9f;
    oc.weight_decay = 1e-4f;
    CHECK(cudl_optimizer_create(ctx, &oc,
                                cudl_tensor_numel(cudl_model_params(m)), &opt));
    CHECK(cudl_loader_create(ctx, ds, &config, &loader));
    fprintf(json, "%s\n    {\"model\": \"%s\", \"train_error\": [",
            first ? "" : ",", nets[n].name);
    first = 0;
    for (step = 1; step <= steps; ++step) {
      CHECK(cudl_loader_next(loader, x, labels, &rows, &done));
      CHECK(cudl_model_forward(m, x, labels, &loss));
      CHECK(cudl_model_backward(m));
      CHECK(cudl_optimizer_step(opt, cudl_model_params(m), cudl_model_grads(m),
                                0.1f));
      /* Training error of the batches of the last EVERY steps, before each
       * step's update (what the forward saw). */
      hits += output_hits(ctx, m, labels, BATCH);
      seen += BATCH;
      if (step % EVERY == 0) {
        last_error = 1.0 - (double)hits / (double)seen;
        fprintf(json, "%s%.4f", step == EVERY ? "" : ", ", last_error);
        hits = seen = 0;
      }
    }
    fprintf(json, "]}");
    printf("  %-9s: training error of the last %d steps %.3f (loss %.3f)\n",
           nets[n].name, EVERY, last_error, (double)loss);
    cudl_loader_destroy(loader);
    cudl_optimizer_destroy(opt);
    cudl_model_destroy(m);
  }
  fprintf(json, "\n  ]}\n");
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(labels);
  cudl_dataset_destroy(ds);
}

int main(int argc, char **argv) {
  const char *json_path = NULL;
  int full = 0, i;
  cudl_context *ctx = NULL;
  FILE *json;
  if (argc < 2) {
    fprintf(stderr,
            "usage: chapter boolean|vanishing|dying|init|overfit|degradation "
            "[--full] --json PATH\n");
    return 2;
  }
  for (i = 2; i < argc; ++i) {
    if (strcmp(argv[i], "--full") == 0)
      full = 1;
    else if (strcmp(argv[i], "--json") == 0 && i + 1 < argc)
      json_path = argv[++i];
    else {
      fprintf(stderr, "chapter: unknown option %s\n", argv[i]);
      return 2;
    }
  }
  if (json_path == NULL) {
    fprintf(stderr, "chapter: --json PATH is required\n");
    return 2;
  }
  json = fopen(json_path, "w");
  if (json == NULL) {
    perror(json_path);
    return 1;
  }
  CHECK(cudl_context_create(CUDL_DEVICE_AUTO, 0, &ctx));
  printf("chapter %s on %s%s\n", argv[1], cudl_context_device_name(ctx),
         full ? " (full run)" : "");
  if (strcmp(argv[1], "boolean") == 0)
    boolean_experiment(ctx, json, full);
  else if (strcmp(argv[1], "vanishing") == 0)
    vanishing_experiment(ctx, json, full);
  else if (strcmp(argv[1], "dying") == 0)
    dying_experiment(ctx, json, full);
  else if (strcmp(argv[1], "init") == 0)
    init_experiment(ctx, json, full);
  else if (strcmp(argv[1], "overfit") == 0)
    overfit_experiment(ctx, json, full);
  else if (strcmp(argv[1], "degradation") == 0)
    degradation_experiment(ctx, json, full);
  else {
    fprintf(stderr, "chapter: unknown experiment %s\n", argv[1]);
    return 2;
  }
  fclose(json);
  cudl_context_destroy(ctx);
  return 0;
}
