/*
 * train.c - `cudl train`, `cudl eval` and `cudl predict`: the training
 * loop over the library (model zoo, data loader, optimizer, schedule,
 * checkpoints), with a progress bar on stderr, a summary line per epoch on
 * stdout and JSON-lines metrics.
 *
 * Errors are one line on stderr that starts with the command ("cudl
 * train: ..."). Exit status (docs/cli.md): 2 when the command line itself
 * is wrong (checked before any file is read), 1 when something it names
 * fails (a file, the device, the run itself), 130 on Ctrl-C. A run that
 * fails before training starts leaves nothing behind: no run directory,
 * no metrics file, no checkpoint touched.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cudl/checkpoint.h>
#include <cudl/cudl.h>
#include <cudl/data.h>
#include <cudl/zoo.h>

#include "cli.h"
#include "commands.h"

/* Everything the three commands are told. */
typedef struct options {
  const char *model;
  const char *data;
  const char *data_dir;
  const char *device;
  const char *optimizer;
  const char *schedule;
  const char *metrics;
  const char *out_dir;
  const char *resume;
  const char *init;
  const char *weights;
  int epochs, warmup, log_every, diagnostics, shuffle, augment, index, count;
  int check_numerics;
  int64_t batch;
  double lr, momentum, weight_decay, dropout, clip;
  uint64_t seed;
} options;

static void train_usage(FILE *out) {
  fprintf(
      out,
      "usage: cudl train [options]   (all optional; defaults in brackets)\n"
      "  --model NAME        small-cnn, resnet20/32/44/56/110, plain20/...,\n"
      "                      mlp [small-cnn]\n"
      "  --data NAME         fashion-mnist, mnist, cifar10 [fashion-mnist]\n"
      "  --data-dir DIR      where the files are [Debian's location]\n"
      "  --epochs N [10]  --batch B [128]  --lr X [0.05 sgd, 0.001 adam]\n"
      "  --optimizer sgd|adam|adamw [sgd]  --momentum M [0.9]\n"
      "  --weight-decay W [5e-4 sgd, 0 adam, 0.01 adamw]\n"
      "  --schedule constant|cosine|step [cosine]  --warmup EPOCHS [0]\n"
      "  --clip NORM         clip the gradient norm [off]\n"
      "  --dropout P         small-cnn's dropout [0]\n"
      "  --device auto|cpu|cuda:N [auto]  --seed S [1]\n"
      "  --out DIR           checkpoints [runs/MODEL-DATA]\n"
      "  --metrics PATH      JSON lines per epoch (and per --log-every K\n"
      "                      steps)\n"
      "  --log-every K  --no-shuffle\n"
      "  --diagnostics K     every K steps, per layer to the metrics file:\n"
      "                      output mean and std, weight and input gradient\n"
      "                      norms, saturated and dead unit fractions\n"
      "  --check-numerics    stop at the first NaN or infinity any layer\n"
      "                      writes, naming it (slow: for a diverging run)\n"
      "  --augment, --no-augment   random crop and flip [on for cifar10 only]\n"
      "  --resume FILE       continue a run from its checkpoint (OUT/\n"
      "                      checkpoint.safetensors, saved atomically\n"
      "                      after every epoch and on Ctrl-C)\n"
      "  --init FILE         start from these weights (fine-tuning)\n"
      "exit status: 0 done, 1 failed, 2 bad command line, 130 Ctrl-C\n"
      "(docs/cli.md)\n"
      "usage: cudl eval --weights FILE [--model M --data D --batch B "
      "--device D]\n"
      "usage: cudl predict --weights FILE [--model M --data D] --index I "
      "[--count N]\n");
}

/* A progress line is on the terminal without its newline yet. */
static int g_progress_open = 0;

/* End the progress line, so that the next message starts a line. */
static void end_progress(void) {
  if (g_progress_open) fputc('\n', stderr);
  g_progress_open = 0;
}

static volatile sig_atomic_t g_interrupted = 0;
static void on_sigint(int sig) {
  (void)sig;
  g_interrupted = 1;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A double for JSON: null where it is not a number. */
static void json_number(FILE *f, const char *key, double v) {
  if (isfinite(v))
    fprintf(f, ", \"%s\": %.6g", key, v);
  else
    fprintf(f, ", \"%s\": null", key);
}

/* One metrics line with every layer's diagnostics (cudl_model_diagnostics),
 * ending the model's diagnostics window. */
static cudl_status write_diagnostics(FILE *f, cudl_model *model,
                                     cudl_layer_diagnostics *rows, int capacity,
                                     int64_t step, int64_t epoch) {
  int count = 0, i;
  int64_t steps = 0;
  cudl_status s = cudl_model_diagnostics(model, rows, capacity, &count, &steps);
  if (s != CUDL_OK) return s;
  fprintf(f,
          "{\"step\": %" PRId64 ", \"epoch\": %" PRId64
          ", \"window_steps\": %" PRId64 ", \"layers\": [",
          step, epoch, steps);
  for (i = 0; i < count; ++i) {
    const cudl_layer_diagnostics *r = &rows[i];
    fprintf(f, "%s{\"node\": %d, \"layer\": \"%s\", \"kind\": \"%s\"",
            i ? ", " : "", r->node, r->name, r->kind);
    json_number(f, "output_mean", r->output_mean);
    json_number(f, "output_std", r->output_std);
    json_number(f, "weight_grad_norm", r->weight_grad_norm);
    json_number(f, "input_grad_norm", r->input_grad_norm);
    json_number(f, "saturated_fraction", r->saturated_fraction);
    json_number(f, "dead_fraction", r->dead_fraction);
    fputc('}', f);
  }
  fprintf(f, "]}\n");
  fflush(f); /* whole lines, should the process be killed */
  return CUDL_OK;
}

/* A run killed while writing a metrics line may have left it without its
 * newline: end it, so that the resumed run's lines parse on their own. */
static void end_torn_line(FILE *f) {
  if (fseek(f, -1, SEEK_END) == 0 && fgetc(f) != '\n') {
    fseek(f, 0, SEEK_END);
    fputc('\n', f);
    fflush(f);
  }
  fseek(f, 0, SEEK_END);
}

/* 1 when word is one of the NULL-terminated names. */
static int one_of(const char *word, const char *const *names) {
  for (; *names != NULL; ++names)
    if (strcmp(word, *names) == 0) return 1;
  return 0;
}

/* Parse argv into o; 0 on success, else prints why and returns 2. Every
 * check that needs no file and no device is made here, so that a wrong
 * command line is told apart from a failure (exit 2, not 1) and is
 * reported before anything slow or anything written. */
static int parse_options(int argc, char **argv, options *o) {
  static const char *const datasets[] = {"fashion-mnist", "mnist", "cifar10",
                                         NULL};
  static const char *const optimizers[] = {"sgd", "adam", "adamw", NULL};
  static const char *const schedules[] = {"constant", "cosine", "step", NULL};
  /* The options that take a value: any other word is unknown. */
  static const char *const valued[] = {
      "--model",     "--data",         "--data-dir",  "--device",
      "--optimizer", "--schedule",     "--metrics",   "--out",
      "--resume",    "--init",         "--weights",   "--epochs",
      "--batch",     "--warmup",       "--log-every", "--diagnostics",
      "--index",     "--count",        "--seed",      "--lr",
      "--momentum",  "--weight-decay", "--dropout",   "--clip",
      NULL};
  cudl_device_kind kind;
  int i, index;
  memset(o, 0, sizeof *o);
  o->model = "small-cnn";
  o->data = "fashion-mnist";
  o->device = "auto";
  o->optimizer = "sgd";
  o->schedule = "cosine";
  o->epochs = 10;
  o->batch = 128;
  o->lr = -1.0;
  o->momentum = 0.9;
  o->weight_decay = -1.0;
  o->dropout = 0.0;
  o->seed = 1;
  o->shuffle = 1;
  o->augment = -1; /* by dataset: on for cifar10 (crop 4 + flip) */
  o->count = 1;
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    const char *want = NULL; /* what a numeric option accepts */
    long long n = 0;
    int ok = 1, takes_value = 1;
    if (strcmp(a, "--no-shuffle") == 0) {
      o->shuffle = 0;
      takes_value = 0;
    } else if (strcmp(a, "--no-augment") == 0) {
      o->augment = 0;
      takes_value = 0;
    } else if (strcmp(a, "--augment") == 0) {
      o->augment = 1;
      takes_value = 0;
    } else if (strcmp(a, "--check-numerics") == 0) {
      o->check_numerics = 1;
      takes_value = 0;
    } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      train_usage(stdout);
      exit(CLI_EXIT_OK);
    } else if (!one_of(a, valued)) {
      cli_error("unknown option '%s' (%s --help lists them)", a, cli_command());
      return CLI_EXIT_USAGE;
    } else if (v == NULL) {
      cli_error("option %s needs a value", a);
      return CLI_EXIT_USAGE;
    } else if (strcmp(a, "--model") == 0) {
      o->model = v;
    } else if (strcmp(a, "--data") == 0) {
      o->data = v;
    } else if (strcmp(a, "--data-dir") == 0) {
      o->data_dir = v;
    } else if (strcmp(a, "--device") == 0) {
      o->device = v;
    } else if (strcmp(a, "--optimizer") == 0) {
      o->optimizer = v;
    } else if (strcmp(a, "--schedule") == 0) {
      o->schedule = v;
    } else if (strcmp(a, "--metrics") == 0) {
      o->metrics = v;
    } else if (strcmp(a, "--out") == 0) {
      o->out_dir = v;
    } else if (strcmp(a, "--resume") == 0) {
      o->resume = v;
    } else if (strcmp(a, "--init") == 0) {
      o->init = v;
    } else if (strcmp(a, "--weights") == 0) {
      o->weights = v;
    } else if (strcmp(a, "--epochs") == 0) {
      want = "an integer from 1 to 100000";
      ok = cli_parse_int(v, 1, 100000, &n);
      o->epochs = (int)n;
    } else if (strcmp(a, "--batch") == 0) {
      want = "an integer from 1 to 1048576";
      ok = cli_parse_int(v, 1, 1 << 20, &n);
      o->batch = n;
    } else if (strcmp(a, "--warmup") == 0) {
      want = "an integer from 0 to 100000";
      ok = cli_parse_int(v, 0, 100000, &n);
      o->warmup = (int)n;
    } else if (strcmp(a, "--log-every") == 0) {
      want = "a positive integer";
      ok = cli_parse_int(v, 1, 1 << 30, &n);
      o->log_every = (int)n;
    } else if (strcmp(a, "--diagnostics") == 0) {
      want = "a positive integer";
      ok = cli_parse_int(v, 1, 1 << 30, &n);
      o->diagnostics = (int)n;
    } else if (strcmp(a, "--index") == 0) {
      want = "an integer from 0";
      ok = cli_parse_int(v, 0, 1 << 30, &n);
      o->index = (int)n;
    } else if (strcmp(a, "--count") == 0) {
      want = "an integer from 1 to 1048576";
      ok = cli_parse_int(v, 1, 1 << 20, &n);
      o->count = (int)n;
    } else if (strcmp(a, "--seed") == 0) {
      want = "an integer from 0";
      ok = cli_parse_int(v, 0, INT64_MAX, &n);
      o->seed = (uint64_t)n;
    } else if (strcmp(a, "--lr") == 0) {
      want = "a finite number above 0";
      ok = cli_parse_double(v, &o->lr) && o->lr > 0.0;
    } else if (strcmp(a, "--momentum") == 0) {
      want = "a number from 0 to below 1";
      ok = cli_parse_double(v, &o->momentum) && o->momentum >= 0.0 &&
           o->momentum < 1.0;
    } else if (strcmp(a, "--weight-decay") == 0) {
      want = "a finite number from 0";
      ok = cli_parse_double(v, &o->weight_decay) && o->weight_decay >= 0.0;
    } else if (strcmp(a, "--dropout") == 0) {
      want = "a number from 0 to below 1";
      ok = cli_parse_double(v, &o->dropout) && o->dropout >= 0.0 &&
           o->dropout < 1.0;
    } else if (strcmp(a, "--clip") == 0) {
      want = "a finite number above 0";
      ok = cli_parse_double(v, &o->clip) && o->clip > 0.0;
    }
    if (!ok) {
      cli_error("option %s needs %s, not '%s'", a, want, v);
      return CLI_EXIT_USAGE;
    }
    i += takes_value;
  }
  if (!cudl_tool_zoo_name_valid(o->model)) {
    cli_error(
        "unknown model '%s': small-cnn, mlp, resnetN or plainN "
        "(N = 20, 32, 44, 56, 110, ...)",
        o->model);
    return CLI_EXIT_USAGE;
  }
  if (!one_of(o->data, datasets)) {
    cli_error("unknown dataset '%s': fashion-mnist, mnist or cifar10", o->data);
    return CLI_EXIT_USAGE;
  }
  if (!cli_parse_device(o->device, &kind, &index)) {
    cli_error("--device must be auto, cpu or cuda:N, not '%s'", o->device);
    return CLI_EXIT_USAGE;
  }
  if (!one_of(o->optimizer, optimizers)) {
    cli_error("--optimizer must be sgd, adam or adamw, not '%s'", o->optimizer);
    return CLI_EXIT_USAGE;
  }
  if (!one_of(o->schedule, schedules)) {
    cli_error("--schedule must be constant, cosine or step, not '%s'",
              o->schedule);
    return CLI_EXIT_USAGE;
  }
  if (o->resume != NULL && o->init != NULL) {
    /* --resume replaces every weight --init would have set. */
    cli_error(
        "--resume and --init exclude each other: a resumed run "
        "takes its weights from its checkpoint");
    return CLI_EXIT_USAGE;
  }
  if (o->diagnostics > 0 && o->metrics == NULL) {
    cli_error(
        "--diagnostics writes to the metrics file: add "
        "--metrics PATH");
    return CLI_EXIT_USAGE;
  }
  return 0;
}

int cudl_tool_zoo_name_valid(const char *name) {
  long long depth;
  return strcmp(name, "small-cnn") == 0 || strcmp(name, "mlp") == 0 ||
         (strncmp(name, "resnet", 6) == 0 &&
          cli_parse_int(name + 6, 1, 1000, &depth)) ||
         (strncmp(name, "plain", 5) == 0 &&
          cli_parse_int(name + 5, 1, 1000, &depth));
}

cudl_status cudl_tool_zoo_model(cudl_context *ctx, const char *name,
                                double dropout, int64_t c, int64_t h, int64_t w,
                                int64_t classes, cudl_model **model) {
  long long depth;
  if (strcmp(name, "small-cnn") == 0)
    return cudl_zoo_small_cnn(ctx, c, h, w, classes, (float)dropout, model);
  if (strncmp(name, "resnet", 6) == 0 &&
      cli_parse_int(name + 6, 1, 1000, &depth))
    return cudl_zoo_resnet(ctx, (int)depth, 0, c, h, w, classes, model);
  if (strncmp(name, "plain", 5) == 0 &&
      cli_parse_int(name + 5, 1, 1000, &depth))
    return cudl_zoo_resnet(ctx, (int)depth, 1, c, h, w, classes, model);
  if (strcmp(name, "mlp") == 0) {
    const int64_t shape[3] = {c, h, w}, widths[2] = {256, 128};
    return cudl_zoo_mlp(ctx, 3, shape, 2, widths, CUDL_ACT_RELU, 0.0f, classes,
                        model);
  }
  (void)name; /* callers check cudl_tool_zoo_name_valid first */
  return CUDL_ERR_INVALID_ARGUMENT;
}

/* The zoo model of the options for images of ds's shape. */
static cudl_status build_model(cudl_context *ctx, const options *o,
                               const cudl_dataset *ds, cudl_model **model) {
  return cudl_tool_zoo_model(ctx, o->model, o->dropout,
                             cudl_dataset_channels(ds), cudl_dataset_height(ds),
                             cudl_dataset_width(ds), cudl_dataset_classes(ds),
                             model);
}

/* Top-1 hits of logits [rows, classes] against labels. */
static int64_t count_correct(const float *logits, const int32_t *labels,
                             int64_t rows, int64_t classes) {
  int64_t r, k, hits = 0;
  for (r = 0; r < rows; ++r) {
    const float *row = logits + r * classes;
    int64_t best = 0;
    for (k = 1; k < classes; ++k)
      if (row[k] > row[best]) best = k;
    hits += best == labels[r];
  }
  return hits;
}

/* The pieces of a run, so that one cleanup releases them. */
typedef struct run {
  cudl_context *ctx;
  cudl_dataset *train_set, *test_set;
  cudl_loader *train_loader, *test_loader;
  cudl_model *model;
  cudl_optimizer *opt;
  cudl_tensor *x, *labels, *norm;
  float *logits;
  int32_t *host_labels;
  int64_t classes;
  float mean[4], std[4];
  FILE *metrics;
} run;

static void run_free(run *r) {
  cudl_tensor_destroy(r->x);
  cudl_tensor_destroy(r->labels);
  cudl_tensor_destroy(r->norm);
  cudl_optimizer_destroy(r->opt);
  cudl_model_destroy(r->model);
  cudl_loader_destroy(r->train_loader);
  cudl_loader_destroy(r->test_loader);
  cudl_dataset_destroy(r->train_set);
  cudl_dataset_destroy(r->test_set);
  free(r->logits);
  free(r->host_labels);
  if (r->metrics != NULL) fclose(r->metrics);
  cudl_context_destroy(r->ctx);
}

/* Views of the first `rows` rows of the batch tensors (the last batch of
 * an epoch may be partial). */
static cudl_status batch_views(run *r, int64_t rows, cudl_tensor **x,
                               cudl_tensor **labels) {
  cudl_status s = cudl_tensor_narrow(r->x, 0, rows, x);
  if (s == CUDL_OK) s = cudl_tensor_narrow(r->labels, 0, rows, labels);
  return s;
}

/* One batch's loss (mean) and hits, from the last forward. */
static cudl_status batch_hits(run *r, const cudl_tensor *labels, int64_t rows,
                              int64_t *hits) {
  cudl_status s =
      cudl_tensor_copy_to_host(cudl_model_output(r->model), r->logits,
                               (size_t)(rows * r->classes) * sizeof(float));
  if (s == CUDL_OK)
    s = cudl_tensor_copy_to_host(labels, r->host_labels,
                                 (size_t)rows * sizeof(int32_t));
  if (s == CUDL_OK)
    *hits = count_correct(r->logits, r->host_labels, rows, r->classes);
  return s;
}

/* Loss and accuracy over one epoch of `loader`, in evaluation mode. */
static cudl_status evaluate(run *r, cudl_loader *loader, double *loss,
                            double *accuracy) {
  double total = 0.0;
  int64_t seen = 0, hits = 0, rows = 0;
  int done = 0;
  cudl_status s = cudl_model_set_training(r->model, 0);
  while (s == CUDL_OK && !done) {
    float batch_loss = 0.0f;
    int64_t batch_hit = 0;
    cudl_tensor *xv = NULL, *lv = NULL;
    s = cudl_loader_next(loader, r->x, r->labels, &rows, &done);
    if (s == CUDL_OK) s = batch_views(r, rows, &xv, &lv);
    if (s == CUDL_OK) s = cudl_model_forward(r->model, xv, lv, &batch_loss);
    if (s == CUDL_OK) s = batch_hits(r, lv, rows, &batch_hit);
    cudl_tensor_destroy(xv);
    cudl_tensor_destroy(lv);
    total += (double)batch_loss * (double)rows;
    hits += batch_hit;
    seen += rows;
  }
  if (s == CUDL_OK) s = cudl_model_set_training(r->model, 1);
  *loss = seen > 0 ? total / (double)seen : 0.0;
  *accuracy = seen > 0 ? (double)hits / (double)seen : 0.0;
  return s;
}

/* The header of the file an option names (--resume, --init, --weights):
 * a readable safetensors file and, where its metadata names them (cudl
 * train's files do), of the model the options name and, for a run to
 * resume, of the same dataset. Checked before the datasets load, so that
 * a wrong file is reported at once and by its model's name rather than by
 * the first tensor that does not fit. */
static int check_weights_file(run *r, const options *o, const char *option,
                              const char *path) {
  cudl_safetensors *set = NULL;
  const char *model, *data;
  int rc = 0;
  cudl_status s =
      cudl_safetensors_load(r->ctx, path, CUDL_SAFETENSORS_HEADER_ONLY, &set);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "%s %s", option, path);
  model = cudl_safetensors_metadata_find(set, "model");
  data = cudl_safetensors_metadata_find(set, "dataset");
  if (model != NULL && strcmp(model, o->model) != 0) {
    cli_error(
        "%s %s holds the weights of %s%s%s%s, not of %s "
        "(--model)",
        option, path, model, data != NULL ? " (trained on " : "",
        data != NULL ? data : "", data != NULL ? ")" : "", o->model);
    rc = CLI_EXIT_FAILED;
  } else if (strcmp(option, "--resume") == 0 && data != NULL &&
             strcmp(data, o->data) != 0) {
    cli_error(
        "--resume %s is a run on %s, not on %s (--data); to "
        "fine-tune on another dataset, start from its weights with "
        "--init",
        path, data, o->data);
    rc = CLI_EXIT_FAILED;
  }
  cudl_safetensors_destroy(set);
  return rc;
}

/* Datasets, normalisation, model and batch tensors shared by the three
 * commands. need_train loads the training split too. */
static int setup(run *r, const options *o, int need_train) {
  cudl_status s;
  int rc = cli_open_context(o->device, &r->ctx);
  if (rc != 0) return rc;
  if (rc == 0 && o->resume != NULL)
    rc = check_weights_file(r, o, "--resume", o->resume);
  if (rc == 0 && o->init != NULL)
    rc = check_weights_file(r, o, "--init", o->init);
  if (rc == 0 && o->weights != NULL)
    rc = check_weights_file(r, o, "--weights", o->weights);
  if (rc != 0) return rc;
  if (need_train) {
    s = cudl_dataset_load(r->ctx, o->data, o->data_dir, 1, &r->train_set);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "loading the training set");
  }
  s = cudl_dataset_load(r->ctx, o->data, o->data_dir, 0, &r->test_set);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "loading the test set");
  s = build_model(r->ctx, o, r->test_set, &r->model);
  if (s == CUDL_OK) s = cudl_model_compile(r->model, o->batch);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "building %s", o->model);
  r->classes = cudl_dataset_classes(r->test_set);
  {
    const int64_t xs[4] = {o->batch, cudl_dataset_channels(r->test_set),
                           cudl_dataset_height(r->test_set),
                           cudl_dataset_width(r->test_set)};
    s = cudl_tensor_create(r->ctx, CUDL_DTYPE_F32, 4, xs, &r->x);
    if (s == CUDL_OK)
      s = cudl_tensor_create(r->ctx, CUDL_DTYPE_I32, 1, xs, &r->labels);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "allocating the batch");
  }
  r->logits = malloc((size_t)(o->batch * r->classes) * sizeof *r->logits);
  r->host_labels = malloc((size_t)o->batch * sizeof *r->host_labels);
  if (r->logits == NULL || r->host_labels == NULL) {
    cli_error("out of host memory");
    return CLI_EXIT_FAILED;
  }
  /* Normalise with the training split's statistics (the test split's when
   * only that is loaded: eval and predict read them from the checkpoint
   * when it has them). */
  s = cudl_dataset_channel_stats(
      r->train_set != NULL ? r->train_set : r->test_set, r->mean, r->std);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "dataset statistics");
  return 0;
}

static cudl_status make_loader(run *r, const options *o, const cudl_dataset *ds,
                               int training, cudl_loader **out) {
  cudl_loader_config c = cudl_loader_config_default();
  int i;
  c.batch = o->batch;
  c.seed = o->seed;
  c.shuffle = training && o->shuffle;
  c.drop_last = training;
  c.augment = training && (o->augment > 0 ||
                           (o->augment < 0 && strcmp(o->data, "cifar10") == 0));
  c.crop_padding = cudl_dataset_height(ds) >= 32 ? 4 : 2;
  c.horizontal_flip = 1;
  for (i = 0; i < 4; ++i) {
    c.mean[i] = r->mean[i];
    c.std[i] = r->std[i] > 0.0f ? r->std[i] : 1.0f;
  }
  return cudl_loader_create(r->ctx, ds, &c, out);
}

/* Remove the directories make_run_dir made: dir and its parents up to the
 * top-most one it made (`made` is that one's length). rmdir stops at the
 * first that is not empty, so nothing of anyone else's goes. */
static void remove_made_dirs(const char *dir, size_t made) {
  char buf[1024];
  size_t n;
  if (made == 0) return;
  snprintf(buf, sizeof buf, "%s", dir);
  n = strlen(buf);
  while (n >= made) {
    buf[n] = '\0';
    if (rmdir(buf) != 0) return;
    while (n > 0 && buf[n - 1] == '/') --n;
    while (n > 0 && buf[n - 1] != '/') --n;
    while (n > 0 && buf[n - 1] == '/') --n;
  }
}

/* The run directory, made with its missing parents, and proven writable
 * by making and removing a file in it: an output that cannot be written
 * (under a regular file, on a read-only or pseudo file system, without
 * permission) then fails before training, not after the first epoch.
 * *made is the length of the top-most directory made here, 0 when none,
 * for remove_made_dirs. Prints why and returns -1 on failure. */
static int make_run_dir(const char *dir, size_t *made) {
  static const char *const files[] = {"checkpoint.safetensors",
                                      "model.safetensors"};
  char buf[1200];
  size_t i, n = strlen(dir);
  struct stat st;
  int fd, k;
  *made = 0;
  if (n == 0 || n >= 1024) {
    cli_error("--out '%s': %s", dir, n == 0 ? "empty" : strerror(ENAMETOOLONG));
    return -1;
  }
  memcpy(buf, dir, n + 1);
  for (i = 1; i <= n; ++i)
    if (buf[i] == '/' || buf[i] == '\0') {
      char c = buf[i];
      buf[i] = '\0';
      if (mkdir(buf, 0777) == 0) {
        if (*made == 0) *made = i;
      } else if (errno != EEXIST) {
        cli_error("cannot create the run directory %s: %s", buf,
                  strerror(errno));
        remove_made_dirs(dir, *made);
        return -1;
      }
      buf[i] = c;
    }
  snprintf(buf, sizeof buf, "%s/.cudl-write-test.%ld", dir, (long)getpid());
  fd = open(buf, O_WRONLY | O_CREAT | O_EXCL, 0666);
  if (fd < 0) {
    cli_error("cannot write in the run directory %s: %s", dir, strerror(errno));
    remove_made_dirs(dir, *made);
    return -1;
  }
  close(fd);
  unlink(buf);
  /* The writer renames its temporary over these: a directory there would
   * fail the first save. */
  for (k = 0; k < 2; ++k) {
    snprintf(buf, sizeof buf, "%s/%s", dir, files[k]);
    if (stat(buf, &st) == 0 && !S_ISREG(st.st_mode)) {
      cli_error("%s is in the way: it is not a regular file", buf);
      remove_made_dirs(dir, *made);
      return -1;
    }
  }
  return 0;
}

/* The pid in a temporary's name after its prefix: "<pid>" or
 * "<pid>.<n>"; 0 when the rest is not that. */
static long temporary_pid(const char *rest) {
  char *end = NULL;
  long pid;
  errno = 0;
  pid = strtol(rest, &end, 10);
  if (errno != 0 || end == rest || pid <= 0) return 0;
  if (*end == '.' && end[1] != '\0')
    for (++end; *end >= '0' && *end <= '9'; ++end) continue;
  return *end == '\0' ? pid : 0;
}

/* A run killed while saving leaves the writer's temporary beside its
 * target, "<target>.tmp.<pid>.<n>" (src/core/safetensors_write.c), or
 * make_run_dir's probe; neither is mistaken for the checkpoint, but
 * crashes would pile them up. The next run in the directory removes those
 * of processes that are gone (a live one's may be a save in progress) and
 * this process's own (its pid reused: it has saved nothing yet). Returns
 * how many it removed. */
static int remove_stale_temporaries(const char *dir) {
  static const char *const prefixes[] = {"checkpoint.safetensors.tmp.",
                                         "model.safetensors.tmp.",
                                         ".cudl-write-test."};
  char path[1400];
  DIR *d = opendir(dir);
  struct dirent *e;
  int removed = 0, k;
  if (d == NULL) return 0;
  while ((e = readdir(d)) != NULL)
    for (k = 0; k < 3; ++k) {
      const size_t len = strlen(prefixes[k]);
      long pid;
      if (strncmp(e->d_name, prefixes[k], len) != 0) continue;
      pid = temporary_pid(e->d_name + len);
      if (pid == 0 || (pid != (long)getpid() &&
                       (kill((pid_t)pid, 0) == 0 || errno != ESRCH)))
        continue;
      snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
      if (unlink(path) == 0) ++removed;
    }
  closedir(d);
  return removed;
}

/* What a run that stops now leaves: "the last checkpoint in DIR is kept",
 * or that there is none yet (a run that diverges in its first epoch). */
static const char *kept_checkpoint(const char *dir, char *text, size_t size) {
  char path[1200];
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  if (access(path, F_OK) == 0)
    snprintf(text, size, "the last checkpoint in %s is kept", dir);
  else
    snprintf(text, size, "no checkpoint was saved yet");
  return text;
}

/* Save the full checkpoint and the weights-only file. */
static cudl_status save_run(run *r, const options *o, const char *dir,
                            const cudl_train_state *st) {
  char path[1200], mean[64], std[64];
  cudl_metadata_pair extra[4];
  cudl_status s;
  snprintf(mean, sizeof mean, "%.9g,%.9g,%.9g", (double)r->mean[0],
           (double)r->mean[1], (double)r->mean[2]);
  snprintf(std, sizeof std, "%.9g,%.9g,%.9g", (double)r->std[0],
           (double)r->std[1], (double)r->std[2]);
  extra[0].key = "model";
  extra[0].value = o->model;
  extra[1].key = "dataset";
  extra[1].value = o->data;
  extra[2].key = "normalize.mean";
  extra[2].value = mean;
  extra[3].key = "normalize.std";
  extra[3].value = std;
  snprintf(path, sizeof path, "%s/checkpoint.safetensors", dir);
  s = cudl_checkpoint_save(r->model, r->opt, st, extra, 4, path);
  if (s != CUDL_OK) return s;
  snprintf(path, sizeof path, "%s/model.safetensors", dir);
  return cudl_model_save(r->model, path, extra, 4);
}

static void progress(int64_t epoch, int epochs, int64_t batch, int64_t batches,
                     double loss, double acc, double ips, double eta) {
  fprintf(stderr,
          "\r epoch %" PRId64 "/%d  step %" PRId64 "/%" PRId64
          "  loss %.4f  acc %.4f  %.0f img/s  ETA %02d:%02d  ",
          epoch + 1, epochs, batch, batches, loss, acc, ips, (int)(eta / 60.0),
          (int)fmod(eta, 60.0));
  fflush(stderr);
}

int cudl_cmd_train(int argc, char **argv) {
  options o;
  run r;
  cudl_optimizer_config oc;
  cudl_lr_schedule sched;
  cudl_train_state st;
  char dir[1024];
  int rc, tty = isatty(2);
  int64_t batches;
  double run_start, last_test_acc = 0.0;
  cudl_layer_diagnostics *diag_rows = NULL;
  cudl_numerics_report numerics;
  char kept[1300];
  int diag_capacity = 0, stale;
  size_t made_dirs = 0;
  cudl_status s;
  cli_set_command("cudl train");
  cli_set_before_error(end_progress);
  rc = parse_options(argc, argv, &o);
  if (rc != 0) return rc;
  memset(&r, 0, sizeof r);
  memset(&st, 0, sizeof st);
  rc = setup(&r, &o, 1);
  if (rc != 0) goto out;
  /* Optimizer and schedule. */
  {
    cudl_optimizer_kind kind =
        strcmp(o.optimizer, "adam") == 0    ? CUDL_OPTIMIZER_ADAM
        : strcmp(o.optimizer, "adamw") == 0 ? CUDL_OPTIMIZER_ADAMW
                                            : CUDL_OPTIMIZER_SGD;
    cudl_optimizer_config_default(kind, &oc);
    oc.lr = (float)(o.lr > 0.0                   ? o.lr
                    : kind == CUDL_OPTIMIZER_SGD ? 0.05
                                                 : 0.001);
    if (kind == CUDL_OPTIMIZER_SGD) oc.momentum = (float)o.momentum;
    if (o.weight_decay >= 0.0)
      oc.weight_decay = (float)o.weight_decay;
    else if (kind == CUDL_OPTIMIZER_SGD)
      oc.weight_decay = 5e-4f;
    s = cudl_optimizer_create(
        r.ctx, &oc, cudl_tensor_numel(cudl_model_params(r.model)), &r.opt);
    if (s != CUDL_OK) {
      rc = cli_fail(r.ctx, s, "creating the optimizer");
      goto out;
    }
  }
  memset(&sched, 0, sizeof sched);
  sched.base_lr = oc.lr;
  sched.warmup_epochs = o.warmup;
  if (strcmp(o.schedule, "cosine") == 0) {
    sched.kind = CUDL_LR_COSINE;
    sched.total_epochs = o.epochs - o.warmup > 0 ? o.epochs - o.warmup : 1;
  } else if (strcmp(o.schedule, "step") == 0) {
    sched.kind = CUDL_LR_STEP;
    sched.gamma = 0.1f;
    sched.step_size = o.epochs / 3 > 0 ? o.epochs / 3 : 1;
  } else {
    sched.kind = CUDL_LR_CONSTANT;
  }
  s = make_loader(&r, &o, r.train_set, 1, &r.train_loader);
  if (s == CUDL_OK) s = make_loader(&r, &o, r.test_set, 0, &r.test_loader);
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "creating the data loaders");
    goto out;
  }
  batches = cudl_loader_batches(r.train_loader);
  /* Weights: fresh, from --init, or the whole run from --resume. */
  st.data_seed = o.seed;
  st.rng_seed = o.seed;
  s = cudl_context_set_seed(r.ctx, o.seed);
  if (s == CUDL_OK) s = cudl_model_init(r.model, CUDL_INIT_KAIMING_NORMAL);
  if (s == CUDL_OK && o.init != NULL) s = cudl_model_load(r.model, o.init, 1);
  if (s == CUDL_OK && o.resume != NULL) {
    s = cudl_checkpoint_load(r.model, r.opt, &st, o.resume);
    if (s == CUDL_OK)
      s = cudl_context_set_rng_state(r.ctx, st.rng_seed, st.rng_offset);
    if (s == CUDL_OK) s = cudl_loader_seek(r.train_loader, st.epoch, st.batch);
  }
  if (s != CUDL_OK) {
    rc = o.resume != NULL ? cli_fail(r.ctx, s, "--resume %s", o.resume)
         : o.init != NULL ? cli_fail(r.ctx, s, "--init %s", o.init)
                          : cli_fail(r.ctx, s, "initialising %s", o.model);
    goto out;
  }
  if (o.resume != NULL && st.epoch >= o.epochs) {
    /* Nothing would be trained, and the summary would report a test
     * accuracy this run never measured. */
    cli_error("--resume %s has finished %" PRId64
              " epoch%s already: --epochs must be more than that, not %d",
              o.resume, st.epoch, st.epoch == 1 ? "" : "s", o.epochs);
    rc = CLI_EXIT_USAGE;
    goto out;
  }
  if (o.check_numerics &&
      (s = cudl_model_set_check_numerics(r.model, 1)) != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "check-numerics mode");
    goto out;
  }
  if (o.diagnostics > 0) {
    diag_capacity = cudl_model_node_count(r.model);
    diag_rows = (cudl_layer_diagnostics *)calloc((size_t)diag_capacity,
                                                 sizeof *diag_rows);
    s = diag_rows == NULL ? CUDL_ERR_OUT_OF_MEMORY
                          : cudl_model_set_diagnostics(r.model, o.diagnostics);
    if (s != CUDL_OK) {
      rc = cli_fail(r.ctx, s, "diagnostics");
      goto out;
    }
  }
  /* Files last, once nothing else can fail: a run that does not start
   * leaves no directory, metrics file or checkpoint behind. */
  if (o.out_dir != NULL)
    snprintf(dir, sizeof dir, "%s", o.out_dir);
  else
    snprintf(dir, sizeof dir, "runs/%s-%s", o.model, o.data);
  if (make_run_dir(dir, &made_dirs) != 0) {
    rc = CLI_EXIT_FAILED;
    goto out;
  }
  if (o.metrics != NULL) {
    r.metrics = fopen(o.metrics, o.resume != NULL ? "a+" : "w");
    if (r.metrics == NULL) {
      cli_error("cannot open the metrics file %s: %s", o.metrics,
                strerror(errno));
      remove_made_dirs(dir, made_dirs);
      rc = CLI_EXIT_FAILED;
      goto out;
    }
    if (o.resume != NULL) end_torn_line(r.metrics);
  }
  if (o.resume != NULL)
    cli_note("resuming %s at epoch %" PRId64 ", batch %" PRId64
             ", step %" PRId64,
             o.resume, st.epoch + 1, st.batch, st.step);
  stale = remove_stale_temporaries(dir);
  if (stale > 0)
    cli_note(
        "removed %d temporary file%s left in %s by a run that was "
        "killed while saving",
        stale, stale == 1 ? "" : "s", dir);
  cli_note("training %s on %s (%" PRId64 " images, %" PRId64
           " batches of %" PRId64 ") on %s, %lld parameters",
           o.model, o.data, cudl_dataset_count(r.train_set), batches, o.batch,
           cudl_context_device_name(r.ctx),
           (long long)cudl_tensor_numel(cudl_model_params(r.model)));
  signal(SIGINT, on_sigint);
  run_start = now_seconds();
  while (st.epoch < o.epochs) {
    double epoch_start = now_seconds(), loss_sum = 0.0, seconds;
    double test_loss = 0.0, test_acc = 0.0;
    int64_t hits = 0, seen = 0, images = 0;
    int done = 0;
    while (!done && !g_interrupted) {
      int64_t rows = 0, batch_hits_n = 0;
      float loss = 0.0f, lr = oc.lr;
      cudl_tensor *xv = NULL, *lv = NULL;
      s = cudl_loader_next(r.train_loader, r.x, r.labels, &rows, &done);
      if (s == CUDL_OK) s = batch_views(&r, rows, &xv, &lv);
      if (s == CUDL_OK) s = cudl_model_forward(r.model, xv, lv, &loss);
      if (s == CUDL_OK && !isfinite(loss)) {
        int node = -1;
        const char *what = "";
        cudl_model_first_nonfinite(r.model, &node, &what);
        end_progress();
        cli_error("the loss is %g at step %" PRId64 " (epoch %" PRId64
                  ", batch %" PRId64
                  "); the first "
                  "non-finite output is node %d (%s). Stopping; %s. Try a "
                  "lower --lr (--check-numerics finds the first layer and "
                  "pass).",
                  (double)loss, st.step, st.epoch + 1, st.batch, node, what,
                  kept_checkpoint(dir, kept, sizeof kept));
        cudl_tensor_destroy(xv);
        cudl_tensor_destroy(lv);
        rc = CLI_EXIT_FAILED;
        goto out;
      }
      if (s == CUDL_OK) s = batch_hits(&r, lv, rows, &batch_hits_n);
      if (s == CUDL_OK) s = cudl_model_backward(r.model);
      if (s == CUDL_OK) s = cudl_model_check_gradients(r.model, &numerics);
      if (s == CUDL_OK && numerics.node >= 0) {
        end_progress();
        cli_error("the gradients are not finite at step %" PRId64
                  " (epoch %" PRId64 ", batch %" PRId64 "): %s has %" PRId64
                  " NaN and %" PRId64 " infinite of %" PRId64
                  " values (all parameters: %" PRId64 " NaN, %" PRId64
                  " infinite). Stopping; %s. Try a lower --lr or --clip.",
                  st.step, st.epoch + 1, st.batch, numerics.layer,
                  numerics.nan_count, numerics.inf_count, numerics.numel,
                  numerics.total_nan, numerics.total_inf,
                  kept_checkpoint(dir, kept, sizeof kept));
        cudl_tensor_destroy(xv);
        cudl_tensor_destroy(lv);
        rc = CLI_EXIT_FAILED;
        goto out;
      }
      if (s == CUDL_OK && o.clip > 0.0)
        s = cudl_clip_grad_norm(r.ctx, cudl_model_grads(r.model), (float)o.clip,
                                NULL);
      if (s == CUDL_OK) s = cudl_lr_schedule_at(&sched, st.step, batches, &lr);
      if (s == CUDL_OK)
        s = cudl_optimizer_step(r.opt, cudl_model_params(r.model),
                                cudl_model_grads(r.model), lr);
      cudl_tensor_destroy(xv);
      cudl_tensor_destroy(lv);
      if (s != CUDL_OK) {
        rc = cli_fail(r.ctx, s, "training step %" PRId64, st.step + 1);
        goto out;
      }
      ++st.step;
      ++st.batch;
      loss_sum += (double)loss * (double)rows;
      hits += batch_hits_n;
      seen += rows;
      images += rows;
      if (diag_rows != NULL && st.step % o.diagnostics == 0) {
        s = write_diagnostics(r.metrics, r.model, diag_rows, diag_capacity,
                              st.step, st.epoch + 1);
        if (s != CUDL_OK) {
          rc = cli_fail(r.ctx, s, "diagnostics");
          goto out;
        }
      }
      if (r.metrics != NULL && o.log_every > 0 && st.step % o.log_every == 0) {
        fprintf(r.metrics,
                "{\"step\": %" PRId64 ", \"epoch\": %" PRId64
                ", \"loss\": %.6f, \"lr\": %.6g}\n",
                st.step, st.epoch + 1, (double)loss, (double)lr);
        fflush(r.metrics); /* whole lines, should the process be killed */
      }
      if (tty || st.batch % 50 == 0 || done) {
        const double elapsed = now_seconds() - epoch_start;
        const double ips = (double)images / (elapsed > 0.0 ? elapsed : 1e-9);
        const double left =
            (double)((o.epochs - st.epoch) * batches - st.batch) *
            (double)o.batch / (ips > 0.0 ? ips : 1.0);
        progress(st.epoch, o.epochs, st.batch, batches, loss_sum / (double)seen,
                 (double)hits / (double)seen, ips, left);
        if (tty)
          g_progress_open = 1;
        else
          fputc('\n', stderr);
      }
    }
    seconds = now_seconds() - epoch_start;
    if (g_interrupted) {
      cudl_context_get_rng_state(r.ctx, &st.rng_seed, &st.rng_offset);
      s = save_run(&r, &o, dir, &st);
      end_progress();
      cli_note("interrupted at epoch %" PRId64 ", batch %" PRId64
               "; %s %s/checkpoint.safetensors (continue with --resume)",
               st.epoch + 1, st.batch,
               s == CUDL_OK ? "saved" : "could not save", dir);
      rc = CLI_EXIT_INTERRUPTED;
      goto out;
    }
    s = evaluate(&r, r.test_loader, &test_loss, &test_acc);
    if (s != CUDL_OK) {
      rc = cli_fail(r.ctx, s, "evaluating epoch %" PRId64, st.epoch + 1);
      goto out;
    }
    end_progress();
    last_test_acc = test_acc;
    printf("epoch %" PRId64
           "/%d  train loss %.4f  train acc %.4f  "
           "test loss %.4f  test acc %.4f  %.0f img/s  %.1f s\n",
           st.epoch + 1, o.epochs, loss_sum / (double)seen,
           (double)hits / (double)seen, test_loss, test_acc,
           (double)images / seconds, seconds);
    fflush(stdout);
    if (r.metrics != NULL) {
      fprintf(r.metrics,
              "{\"epoch\": %" PRId64
              ", \"train_loss\": %.6f, "
              "\"train_accuracy\": %.6f, \"test_loss\": %.6f, "
              "\"test_accuracy\": %.6f, \"images_per_second\": %.1f, "
              "\"seconds\": %.3f}\n",
              st.epoch + 1, loss_sum / (double)seen,
              (double)hits / (double)seen, test_loss, test_acc,
              (double)images / seconds, seconds);
      fflush(r.metrics);
    }
    ++st.epoch;
    st.batch = 0;
    cudl_context_get_rng_state(r.ctx, &st.rng_seed, &st.rng_offset);
    s = save_run(&r, &o, dir, &st);
    if (s != CUDL_OK) {
      rc = cli_fail(r.ctx, s, "saving the checkpoint of epoch %" PRId64,
                    st.epoch);
      goto out;
    }
  }
  printf(
      "final test accuracy %.4f after %d epochs (%.1f s); weights in "
      "%s/model.safetensors\n",
      last_test_acc, o.epochs, now_seconds() - run_start, dir);
  rc = CLI_EXIT_OK;
out:
  free(diag_rows);
  run_free(&r);
  return rc;
}

/* The normalisation a weights file was trained with (its metadata), if it
 * says; otherwise r keeps the statistics setup computed. */
static void read_normalisation(run *r, const char *path) {
  cudl_safetensors *set = NULL;
  const char *mean, *std;
  if (cudl_safetensors_load(r->ctx, path, CUDL_SAFETENSORS_HEADER_ONLY, &set) !=
      CUDL_OK)
    return;
  mean = cudl_safetensors_metadata_find(set, "normalize.mean");
  std = cudl_safetensors_metadata_find(set, "normalize.std");
  if (mean != NULL && std != NULL) {
    float m[3] = {0, 0, 0}, d[3] = {1, 1, 1};
    if (sscanf(mean, "%f,%f,%f", &m[0], &m[1], &m[2]) == 3 &&
        sscanf(std, "%f,%f,%f", &d[0], &d[1], &d[2]) == 3) {
      memcpy(r->mean, m, sizeof m);
      memcpy(r->std, d, sizeof d);
    }
  }
  cudl_safetensors_destroy(set);
}

int cudl_cmd_eval(int argc, char **argv) {
  options o;
  run r;
  double loss = 0.0, acc = 0.0;
  int rc;
  cudl_status s;
  cli_set_command("cudl eval");
  rc = parse_options(argc, argv, &o);
  if (rc != 0) return rc;
  if (o.weights == NULL) {
    cli_error("needs --weights FILE");
    return CLI_EXIT_USAGE;
  }
  memset(&r, 0, sizeof r);
  rc = setup(&r, &o, 0);
  if (rc != 0) goto out;
  read_normalisation(&r, o.weights);
  s = cudl_model_load(r.model, o.weights, 0);
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "--weights %s", o.weights);
    goto out;
  }
  s = make_loader(&r, &o, r.test_set, 0, &r.test_loader);
  if (s == CUDL_OK) s = evaluate(&r, r.test_loader, &loss, &acc);
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "evaluating");
    goto out;
  }
  printf("%s on %s test set (%" PRId64 " images): loss %.4f  accuracy %.4f\n",
         o.model, o.data, cudl_dataset_count(r.test_set), loss, acc);
  rc = CLI_EXIT_OK;
out:
  run_free(&r);
  return rc;
}

int cudl_cmd_predict(int argc, char **argv) {
  options o;
  run r;
  int rc;
  int64_t i, k, total;
  cudl_status s;
  cli_set_command("cudl predict");
  rc = parse_options(argc, argv, &o);
  if (rc != 0) return rc;
  if (o.weights == NULL) {
    cli_error("needs --weights FILE");
    return CLI_EXIT_USAGE;
  }
  o.batch = o.count;
  memset(&r, 0, sizeof r);
  rc = setup(&r, &o, 0);
  if (rc != 0) goto out;
  read_normalisation(&r, o.weights);
  total = cudl_dataset_count(r.test_set);
  if (o.index < 0 || o.index + o.count > total) {
    cli_error("--index %d --count %d: the test set has %" PRId64 " images",
              o.index, o.count, total);
    rc = CLI_EXIT_USAGE;
    goto out;
  }
  s = cudl_model_load(r.model, o.weights, 0);
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "--weights %s", o.weights);
    goto out;
  }
  s = cudl_model_set_training(r.model, 0);
  if (s == CUDL_OK) {
    /* Normalise the chosen images on the host, as the loader would. */
    const int64_t per = cudl_tensor_numel(r.x) / o.batch;
    const int64_t plane = per / cudl_dataset_channels(r.test_set);
    float *host = malloc((size_t)cudl_tensor_nbytes(r.x));
    if (host == NULL) {
      cli_error("out of host memory");
      rc = CLI_EXIT_FAILED;
      goto out;
    }
    for (i = 0; i < o.count; ++i) {
      const uint8_t *px = cudl_dataset_image(r.test_set, o.index + i);
      for (k = 0; k < per; ++k) {
        const int c = (int)(k / plane);
        host[i * per + k] = ((float)px[k] / 255.0f - r.mean[c]) / r.std[c];
      }
    }
    s = cudl_tensor_copy_from_host(r.x, host, cudl_tensor_nbytes(r.x));
    free(host);
  }
  if (s == CUDL_OK) s = cudl_model_forward(r.model, r.x, NULL, NULL);
  if (s == CUDL_OK)
    s = cudl_tensor_copy_to_host(cudl_model_output(r.model), r.logits,
                                 (size_t)(o.count * r.classes) * sizeof(float));
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "predicting");
    goto out;
  }
  for (i = 0; i < o.count; ++i) {
    const float *row = r.logits + i * r.classes;
    double max = row[0], sum = 0.0;
    int64_t best = 0;
    for (k = 1; k < r.classes; ++k)
      if (row[k] > row[best]) best = k;
    max = row[best];
    for (k = 0; k < r.classes; ++k) sum += exp((double)row[k] - max);
    printf("image %" PRId64 ": class %" PRId64 " (p = %.3f), label %d\n",
           o.index + i, best, 1.0 / sum,
           cudl_dataset_label(r.test_set, o.index + i));
  }
  rc = CLI_EXIT_OK;
out:
  run_free(&r);
  return rc;
}
