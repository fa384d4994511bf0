/* run.c - the run `cudl train`, `cudl eval` and `cudl predict` set up from
 * their options (run.h). */
#include "run.h"
#include "step_queue.h"

#include <errno.h>
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/checkpoint.h>
#include <cudl/zoo.h>
#include <jansson.h>

#include "cli.h"
#include "commands.h"
#include "run_config.h"

cudl_status cudl__tool_zoo_model(cudl_context *ctx, const char *name,
                                 double dropout, int64_t c, int64_t h,
                                 int64_t w, int64_t classes,
                                 cudl_model **model) {
  long long depth;
  if (strcmp(name, "small-cnn") == 0)
    return cudl_zoo_small_cnn(ctx, c, h, w, classes, (float)dropout, model);
  if (strncmp(name, "resnet", 6) == 0 &&
      cli_parse_int(name + 6, 0, INT32_MAX, &depth))
    return cudl_zoo_resnet(ctx, (int)depth, 0, c, h, w, classes, model);
  if (strncmp(name, "plain", 5) == 0 &&
      cli_parse_int(name + 5, 0, INT32_MAX, &depth))
    return cudl_zoo_resnet(ctx, (int)depth, 1, c, h, w, classes, model);
  if (strcmp(name, "mlp") == 0) {
    const int64_t shape[3] = {c, h, w}, widths[2] = {256, 128};
    return cudl_zoo_mlp(ctx, 3, shape, 2, widths, CUDL_ACT_RELU, 0.0f, classes,
                        model);
  }
  return CUDL_ERR_INVALID_ARGUMENT; /* cudl__tool_zoo_check_name says why */
}

/* ---- the files the options name ---- */

/* What a weights file says about how its images were normalised. */
typedef struct file_normalisation {
  int present;
  int mean_count, std_count;
  float mean[CUDL_DATASET_MAX_CHANNELS], std[CUDL_DATASET_MAX_CHANNELS];
} file_normalisation;

/* The numbers of a normalize.* value: 1 to CUDL_DATASET_MAX_CHANNELS
 * finite numbers separated by commas and nothing else; their count, or 0
 * when the text is not that. */
static int parse_channel_values(const char *text, float *values) {
  const char *s = text;
  int n = 0;
  for (;;) {
    const size_t len = strcspn(s, ",");
    char piece[64];
    double v;
    if (n == CUDL_DATASET_MAX_CHANNELS || len == 0 || len >= sizeof piece)
      return 0;
    memcpy(piece, s, len);
    piece[len] = '\0';
    if (!cli_parse_double(piece, &v) || fabs(v) > FLT_MAX) return 0;
    values[n++] = (float)v;
    if (s[len] == '\0') return n;
    s += len + 1;
  }
}

static char *copy_text(const char *text) {
  const size_t n = strlen(text) + 1;
  char *out = (char *)malloc(n);
  if (out != NULL) memcpy(out, text, n);
  return out;
}

/* The class names a weights file lists ("classes": a JSON array of
 * strings), into r->weights_classes; 0, or the exit status. */
static int read_class_names(run *r, const char *option, const char *path,
                            const char *text) {
  json_error_t error;
  json_t *names = json_loads(text, 0, &error);
  size_t k, n;
  int rc = 0;
  if (!json_is_array(names) || json_array_size(names) == 0 ||
      json_array_size(names) > 65536) {
    json_decref(names);
    return cli_fail(NULL, CUDL_ERR_FILE_METADATA,
                    "%s %s: its metadata \"classes\" is not a JSON array of "
                    "1 to 65536 class names",
                    option, path);
  }
  n = json_array_size(names);
  r->weights_classes = (char **)calloc(n, sizeof *r->weights_classes);
  for (k = 0; k < n && rc == 0; ++k) {
    const char *name = json_string_value(json_array_get(names, k));
    if (name == NULL || name[0] == '\0') {
      rc = cli_fail(NULL, CUDL_ERR_FILE_METADATA,
                    "%s %s: its metadata \"classes\"[%zu] is not a class "
                    "name (a non-empty string)",
                    option, path, k);
    } else if (r->weights_classes == NULL ||
               (r->weights_classes[k] = copy_text(name)) == NULL) {
      cli_error("out of host memory for the class names of %s", path);
      rc = CLI_EXIT_FAILED;
    } else {
      r->weights_class_count = (int)k + 1;
    }
  }
  json_decref(names);
  return rc;
}

/* What a weights file or checkpoint says about itself, for what the
 * command line leaves out: its architecture (cudl.architecture) unless
 * --model or --model-file is given, its dataset unless --data is, and its
 * class names, so that `cudl eval --weights F`, `cudl predict --weights F`
 * and `cudl train --resume F` need nothing else (docs/cli.md). */
static int adopt_description(run *r, options *o, const char *option,
                             const char *path, const cudl_safetensors *set) {
  const char *arch =
      cudl_safetensors_metadata_find(set, CUDL_METADATA_ARCHITECTURE);
  const char *model = cudl_safetensors_metadata_find(set, "model");
  const char *data = cudl_safetensors_metadata_find(set, "dataset");
  const char *classes = cudl_safetensors_metadata_find(set, "classes");
  const int resuming = strcmp(option, "--resume") == 0;
  /* A new --dropout builds small-cnn anew (dropout has no weights); the
   * stored architecture has the old one. */
  const int new_dropout = resuming && run_config_overrides(o, "dropout");
  if (new_dropout && !run_option_given(o, "--model") &&
      (model == NULL || strcmp(model, "small-cnn") != 0)) {
    cli_error(
        "--override dropout: --dropout is small-cnn's; --resume %s is a run "
        "of %s, whose dropout is in its architecture",
        path, model != NULL ? model : "a model it does not name");
    return CLI_EXIT_FAILED;
  }
  if (!run_option_given(o, "--model") && o->model_file == NULL &&
      r->architecture == NULL) {
    if (arch != NULL && !new_dropout) {
      r->architecture = copy_text(arch);
      r->owned_model = copy_text(model != NULL ? model : "its model");
      if (r->architecture == NULL || r->owned_model == NULL) {
        cli_error("out of host memory for the architecture of %s", path);
        return CLI_EXIT_FAILED;
      }
      o->model = r->owned_model;
    } else if (model != NULL && cudl__tool_zoo_check_name(model) == 0) {
      /* A file written before architectures were stored, or small-cnn
       * with a new --dropout: its zoo name. */
      r->owned_model = copy_text(model);
      if (r->owned_model == NULL) return CLI_EXIT_FAILED;
      o->model = r->owned_model;
    }
  }
  if (resuming) {
    /* The batch and the held-out images shape the epochs a checkpoint
     * stands in: a resumed run keeps its own unless told otherwise (and
     * load_weights refuses another). A malformed value is left for
     * load_weights to report. */
    const char *batch = cudl_safetensors_metadata_find(set, "batch_size");
    const char *split = cudl_safetensors_metadata_find(set, "val_split");
    long long n = 0;
    double f = 0.0;
    if (!run_option_given(o, "--batch") && batch != NULL &&
        cli_parse_int(batch, 1, 1 << 20, &n))
      o->batch = n;
    if (!run_option_given(o, "--val-split") && split != NULL &&
        cli_parse_double(split, &f) && f > 0.0 && f < 1.0)
      o->val_split = f;
  }
  if (!run_option_given(o, "--data") && data != NULL && r->owned_data == NULL) {
    r->owned_data = copy_text(data);
    if (r->owned_data == NULL) return CLI_EXIT_FAILED;
    o->data = r->owned_data;
  }
  if (classes != NULL && r->weights_classes == NULL)
    return read_class_names(r, option, path, classes);
  return 0;
}

/* The header of the file an option names (--resume, --init, --weights):
 * a readable safetensors file, of the model the options name and, for a
 * run to resume, of the same dataset, where its metadata names them (cudl
 * train's files do); and its normalisation, where it has one, well formed.
 * Checked before the datasets load, so that a wrong file is reported at
 * once and by what it holds rather than by the first tensor that does not
 * fit. Prints why and returns the exit status, or 0. */
static int check_weights_file(run *r, options *o, const char *option,
                              const char *path, file_normalisation *norm) {
  cudl_safetensors *set = NULL;
  const char *model, *data, *mean, *std, *checkpoint_format;
  int rc = 0;
  cudl_status s =
      cudl_safetensors_load(r->ctx, path, CUDL_SAFETENSORS_HEADER_ONLY, &set);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "%s %s", option, path);
  memset(norm, 0, sizeof *norm);
  if (strcmp(option, "--resume") == 0) {
    /* The run's data seed is the checkpoint's (a malformed one is
     * cudl_checkpoint_load's to report). */
    const char *seed = cudl_safetensors_metadata_find(set, "cudl.data_seed");
    char *end = NULL;
    unsigned long long value;
    errno = 0;
    value = seed != NULL ? strtoull(seed, &end, 10) : 0;
    if (seed != NULL && errno == 0 && end != seed && *end == '\0' &&
        seed[0] >= '0' && seed[0] <= '9')
      r->data_seed = (uint64_t)value;
  }
  model = cudl_safetensors_metadata_find(set, "model");
  data = cudl_safetensors_metadata_find(set, "dataset");
  checkpoint_format =
      cudl_safetensors_metadata_find(set, CUDL_CHECKPOINT_FORMAT_KEY);
  mean = cudl_safetensors_metadata_find(set, "normalize.mean");
  std = cudl_safetensors_metadata_find(set, "normalize.std");
  if (strcmp(option, "--init") != 0 &&
      (rc = adopt_description(r, o, option, path, set)) != 0) {
    cudl_safetensors_destroy(set);
    return rc;
  }
  if (model != NULL && o->model_file == NULL && r->architecture == NULL &&
      strcmp(model, o->model) != 0) {
    cli_error("%s %s holds the weights of %s%s%s%s, not of %s (--model)",
              option, path, model, data != NULL ? " (trained on " : "",
              data != NULL ? data : "", data != NULL ? ")" : "", o->model);
    rc = CLI_EXIT_FAILED;
  } else if (strcmp(option, "--resume") == 0 && data != NULL &&
             strcmp(data, o->data) != 0) {
    cli_error(
        "--resume %s is a run on %s, not on %s (--data); to fine-tune "
        "on another dataset, start from its weights with --init",
        path, data, o->data);
    rc = CLI_EXIT_FAILED;
  } else if ((mean == NULL) != (std == NULL)) {
    cli_error("%s %s: its metadata has normalize.%s but not normalize.%s",
              option, path, mean != NULL ? "mean" : "std",
              mean != NULL ? "std" : "mean");
    rc = CLI_EXIT_FAILED;
  } else if (mean != NULL) {
    norm->present = 1;
    norm->mean_count = parse_channel_values(mean, norm->mean);
    norm->std_count = parse_channel_values(std, norm->std);
    if (norm->mean_count == 0 || norm->std_count == 0) {
      const int bad_mean = norm->mean_count == 0;
      cli_error(
          "%s %s: its metadata normalize.%s is \"%s\", not 1 to %d "
          "finite numbers separated by commas (one a channel)",
          option, path, bad_mean ? "mean" : "std", bad_mean ? mean : std,
          CUDL_DATASET_MAX_CHANNELS);
      rc = CLI_EXIT_FAILED;
    }
  }
  /* The training configuration last: a checkpoint of another model or
   * dataset is that first, and a file that is no checkpoint (a weights
   * file records a configuration too) is that (cudl_checkpoint_load). */
  if (rc == 0 && strcmp(option, "--resume") == 0 && checkpoint_format != NULL &&
      strcmp(checkpoint_format, CUDL_CHECKPOINT_FORMAT) == 0)
    rc = run_config_resume(o, set, path);
  cudl_safetensors_destroy(set);
  return rc;
}

/* A file's normalisation against the data: a mean and a standard
 * deviation above 0 for each channel the images have. (Files written
 * before the values were one a channel hold three, the unused ones 0.) */
static int check_normalisation(const file_normalisation *norm,
                               const char *option, const char *path,
                               int channels) {
  int c;
  if (norm->mean_count < channels || norm->std_count < channels)
    return cli_fail(NULL, CUDL_ERR_FILE_METADATA,
                    "%s %s: its normalize.mean and normalize.std have %d and "
                    "%d values; the images have %d channel%s",
                    option, path, norm->mean_count, norm->std_count, channels,
                    channels == 1 ? "" : "s");
  for (c = 0; c < channels; ++c)
    if (!(norm->std[c] > 0.0f))
      return cli_fail(NULL, CUDL_ERR_FILE_METADATA,
                      "%s %s: its normalize.std of channel %d is %g; a "
                      "standard deviation to divide by must be above 0",
                      option, path, c, (double)norm->std[c]);
  return 0;
}

/* The two splits of a dataset hold images of one shape and one set of
 * classes; a directory that mixes two datasets would otherwise fail only
 * at the first step, after the run directory was made. */
static int check_splits(const options *o, const cudl_dataset *train,
                        const cudl_dataset *test) {
  if (cudl_dataset_channels(train) == cudl_dataset_channels(test) &&
      cudl_dataset_height(train) == cudl_dataset_height(test) &&
      cudl_dataset_width(train) == cudl_dataset_width(test) &&
      cudl_dataset_classes(train) == cudl_dataset_classes(test))
    return 0;
  return cli_fail(NULL, CUDL_ERR_FILE_SHAPE,
                  "the %s files in %s do not match: the training images "
                  "are %dx%dx%d of %d classes (%s), the test images "
                  "%dx%dx%d of %d classes (%s)",
                  o->data,
                  o->data_dir != NULL ? o->data_dir : "the default directory",
                  cudl_dataset_channels(train), cudl_dataset_height(train),
                  cudl_dataset_width(train), cudl_dataset_classes(train),
                  cudl_dataset_source(train, 0), cudl_dataset_channels(test),
                  cudl_dataset_height(test), cudl_dataset_width(test),
                  cudl_dataset_classes(test), cudl_dataset_source(test, 0));
}

/* ---- setting up ---- */

/* Hold --val-split of the training images out into r->val_set (seeded by
 * the run's data seed, so that a resumed run holds out the same ones). */
static int split_validation(run *r, const options *o) {
  cudl_dataset *rest = NULL, *held = NULL;
  cudl_status s = cudl_dataset_split(r->train_set, o->val_split, r->data_seed,
                                     &rest, &held);
  if (s != CUDL_OK)
    return cli_fail(r->ctx, s,
                    "--val-split %g of the %" PRId64 " training images",
                    o->val_split, cudl_dataset_count(r->train_set));
  cudl_dataset_destroy(r->train_set);
  r->train_set = rest;
  r->val_set = held;
  return 0;
}

/* The model a file describes (--model-file, or the architecture of the
 * weights file), built but not compiled, before the data are read: its
 * input shape says how to read a folder of images. */
static int model_from_text(run *r, options *o) {
  cudl_status s;
  if (o->model_file != NULL) {
    char label[128];
    s = cudl_model_read_file(r->ctx, o->model_file, &r->model);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "--model-file");
    /* The model's name in messages, metrics and the files' "model". */
    run_model_label(o, label, sizeof label);
    free(r->owned_model);
    r->owned_model = copy_text(label);
    if (r->owned_model == NULL) {
      cli_error("out of host memory");
      return CLI_EXIT_FAILED;
    }
    o->model = r->owned_model;
  } else if (r->architecture != NULL) {
    char source[4096];
    const char *path = o->weights != NULL ? o->weights : o->resume;
    snprintf(source, sizeof source, "%s: " CUDL_METADATA_ARCHITECTURE, path);
    s = cudl_model_parse(r->ctx, r->architecture, strlen(r->architecture),
                         source, &r->model);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "the weights' architecture");
  }
  return 0;
}

/* The input shape [C, H, W] of a model from a file; 0 when it takes
 * another shape (a flat input), with the reason printed. */
static int image_input(run *r, const options *o, int64_t shape[3]) {
  if (cudl_model_node_shape(r->model, 0, shape) == 3) return 1;
  cli_fail(NULL, CUDL_ERR_SHAPE,
           "%s takes a flat input of %" PRId64
           " values; cudl %s feeds images "
           "[C, H, W] (add a flatten layer after an image input)",
           o->model_file != NULL ? o->model_file : "the weights' model",
           shape[0], o->command == RUN_TRAIN ? "train" : "eval/predict");
  return 0;
}

int run_setup(run *r, options *o) {
  const int training = o->command == RUN_TRAIN;
  const int single_image = o->command == RUN_PREDICT && o->image != NULL;
  file_normalisation norm[3];
  const char *option[3] = {"--resume", "--init", "--weights"};
  const char *path[3];
  const cudl_dataset *shape_of;
  int64_t in[3] = {0, 0, 0};
  int rc, k;
  int64_t count;
  cudl_status s;
  path[0] = o->resume;
  path[1] = o->init;
  path[2] = o->weights;
  r->data_seed = o->seed;
  if ((rc = cli_open_context(o->device, &r->ctx)) != 0) return rc;
  /* Before a checkpoint's configuration, which keeps its run's layout. */
  if (!o->layout_chosen) o->layout = cli_layout_for(r->ctx);
  for (k = 0; k < 3; ++k)
    if (path[k] != NULL &&
        (rc = check_weights_file(r, o, option[k], path[k], &norm[k])) != 0)
      return rc;
  if ((rc = model_from_text(r, o)) != 0) return rc;
  if (r->model != NULL && !image_input(r, o, in)) return CLI_EXIT_FAILED;
  if (single_image) {
    /* One image file: no dataset; the model says what it reads. */
    if (r->model == NULL)
      return cli_fail(NULL, CUDL_ERR_FILE_METADATA,
                      "--image needs the model: --weights %s has no "
                      "architecture (give --model or --model-file)",
                      o->weights);
    r->channels = (int)in[0];
    r->height = (int)in[1];
    r->width = (int)in[2];
  } else {
    if ((rc = run_load_data(r, o, (int)in[0], (int)in[1], (int)in[2])) != 0)
      return rc;
    if (training && r->val_set == NULL && o->val_split > 0.0 &&
        (rc = split_validation(r, o)) != 0)
      return rc;
    if (training && r->test_set != NULL &&
        (rc = check_splits(o, r->train_set, r->test_set)) != 0)
      return rc;
    shape_of = training ? r->train_set : r->test_set;
    r->channels = cudl_dataset_channels(shape_of);
    r->height = cudl_dataset_height(shape_of);
    r->width = cudl_dataset_width(shape_of);
    r->classes = cudl_dataset_classes(shape_of);
  }
  for (k = 0; k < 3; ++k)
    if (path[k] != NULL && norm[k].present &&
        (rc = check_normalisation(&norm[k], option[k], path[k], r->channels)) !=
            0)
      return rc;
  /* The batch, checked against the data before anything of its size is
   * allocated: memory goes by the batch. */
  if (o->command == RUN_TRAIN) {
    count = cudl_dataset_count(r->train_set);
    if (o->batch > count)
      return cli_usage_error(
          "--batch %" PRId64 " is more than the %" PRId64
          " training images: an epoch would have no whole batch",
          o->batch, count);
    r->batch = o->batch;
  } else if (o->command == RUN_EVAL) {
    count = cudl_dataset_count(r->test_set);
    r->batch = o->batch < count ? o->batch : count;
  } else if (single_image) {
    r->batch = 1;
  } else {
    count = cudl_dataset_count(r->test_set);
    if (o->index + o->count > count)
      return cli_usage_error("--index %" PRId64
                             " --count %d: the test set "
                             "has %" PRId64 " images",
                             o->index, o->count, count);
    r->batch = o->count;
  }
  /* Normalise with the training split's statistics in training, and with
   * the weights file's where it has them (cudl train's do); the test
   * split's otherwise. */
  if (o->weights != NULL && norm[2].present) {
    memcpy(r->mean, norm[2].mean, sizeof r->mean);
    memcpy(r->std, norm[2].std, sizeof r->std);
    r->normalisation_from_weights = 1;
  } else if (single_image) {
    return cli_fail(NULL, CUDL_ERR_FILE_METADATA,
                    "--image: --weights %s has no normalize.mean and "
                    "normalize.std to scale an image as in training",
                    o->weights);
  } else {
    int c;
    s = cudl_dataset_channel_stats(training ? r->train_set : r->test_set,
                                   r->mean, r->std);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "dataset statistics");
    /* A channel constant over the whole set has std 0: leave it as is. */
    for (c = 0; c < r->channels; ++c)
      if (!(r->std[c] > 0.0f)) r->std[c] = 1.0f;
  }
  if (r->model == NULL) {
    s = cudl__tool_zoo_model(r->ctx, o->model, o->dropout, r->channels,
                             r->height, r->width, r->classes, &r->model);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "building %s", o->model);
  } else if (in[0] != r->channels || in[1] != r->height || in[2] != r->width) {
    return cli_fail(NULL, CUDL_ERR_SHAPE,
                    "%s reads %" PRId64 "x%" PRId64 "x%" PRId64
                    " images; %s has %dx%dx%d",
                    o->model_file != NULL ? o->model_file : o->model, in[0],
                    in[1], in[2], o->data, r->channels, r->height, r->width);
  }
  cudl_context_set_allow_emulated_precision(r->ctx, o->emulated_precision);
  s = cudl_context_set_deterministic(r->ctx, o->deterministic);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "--deterministic");
  s = cudl_model_set_precision(r->model, o->precision);
  if (s != CUDL_OK)
    return cli_fail(r->ctx, s, "--precision %s",
                    cudl_precision_name(o->precision));
  s = cudl_model_set_layout(r->model, o->layout);
  if (s == CUDL_OK) s = cudl_model_compile(r->model, r->batch);
  if (s != CUDL_OK)
    return cli_fail(r->ctx, s, "building %s for batches of %" PRId64, o->model,
                    r->batch);
  {
    int64_t shape[3] = {0, 0, 0};
    const int64_t outputs =
        cudl_model_node_shape(r->model, cudl_model_output_node(r->model),
                              shape) == 1
            ? shape[0]
            : -1;
    if (single_image) r->classes = outputs;
    if (outputs != r->classes)
      return cli_fail(NULL, CUDL_ERR_SHAPE,
                      "%s has %" PRId64 " outputs; %s has %" PRId64
                      " classes (a classifier has one output a class)",
                      o->model_file != NULL ? o->model_file : o->model, outputs,
                      o->data, r->classes);
    if (single_image && r->weights_classes != NULL &&
        r->weights_class_count != r->classes)
      return cli_fail(NULL, CUDL_ERR_FILE_METADATA,
                      "--weights %s lists %d class names for %" PRId64
                      " outputs",
                      o->weights, r->weights_class_count, r->classes);
  }
  {
    const int64_t xs[4] = {r->batch, r->channels, r->height, r->width};
    s = cudl_tensor_create(r->ctx, CUDL_DTYPE_F32, 4, xs, &r->x);
    if (s == CUDL_OK)
      s = cudl_tensor_create(r->ctx, CUDL_DTYPE_I32, 1, xs, &r->labels);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "allocating the batch");
  }
  /* On the CPU a read costs nothing and a failure stops at its step; on a
   * GPU each one waits for the device, so they come every 50 steps. */
  r->sync_every = o->sync_every > 0 ? o->sync_every
                  : cudl_context_device(r->ctx) == CUDL_DEVICE_CPU ? 1
                                                                   : 50;
  if (o->command != RUN_PREDICT &&
      (rc = step_queue_open(&r->eval_queue, r->ctx, r->sync_every,
                            "queueing the evaluation's losses")) != 0)
    return rc;
  r->logits = (float *)malloc((size_t)(r->batch * r->classes) * sizeof(float));
  if (r->logits == NULL) {
    cli_error("out of host memory for a batch of %" PRId64, r->batch);
    return CLI_EXIT_FAILED;
  }
  return 0;
}

void run_free(run *r) {
  cudl_tensor_destroy(r->x);
  cudl_tensor_destroy(r->labels);
  step_queue_free(&r->eval_queue);
  cudl_optimizer_destroy(r->opt);
  cudl_model_destroy(r->model);
  cudl_loader_destroy(r->train_loader);
  cudl_loader_destroy(r->test_loader);
  cudl_loader_destroy(r->val_loader);
  cudl_dataset_destroy(r->train_set);
  cudl_dataset_destroy(r->test_set);
  cudl_dataset_destroy(r->val_set);
  free(r->logits);
  free(r->owned_data);
  free(r->owned_model);
  free(r->architecture);
  free(r->class_names);
  if (r->weights_classes != NULL) {
    int k;
    for (k = 0; k < r->weights_class_count; ++k) free(r->weights_classes[k]);
    free(r->weights_classes);
  }
  cudl_context_destroy(r->ctx);
  memset(r, 0, sizeof *r);
}

int run_crop_padding(const cudl_dataset *ds) {
  return cudl_dataset_height(ds) >= 32 ? 4 : 2;
}

cudl_status run_make_loader(run *r, const options *o, const cudl_dataset *ds,
                            int training, cudl_loader **out) {
  cudl_loader_config c = cudl_loader_config_default();
  int i;
  c.batch = r->batch;
  c.seed = o->seed;
  c.shuffle = training && o->shuffle;
  c.drop_last = training;
  c.augment = training && run_augments(o);
  c.crop_padding = run_crop_padding(ds);
  c.horizontal_flip = 1;
  if (training && r->world > 1) {
    c.rank = r->rank;
    c.world = r->world;
  }
  for (i = 0; i < r->channels; ++i) {
    c.mean[i] = r->mean[i];
    c.std[i] = r->std[i];
  }
  return cudl_loader_create(r->ctx, ds, &c, out);
}

cudl_status run_batch_views(run *r, int64_t rows, cudl_tensor **x,
                            cudl_tensor **labels) {
  cudl_status s = cudl_tensor_narrow(r->x, 0, rows, x);
  if (s == CUDL_OK) s = cudl_tensor_narrow(r->labels, 0, rows, labels);
  return s;
}

/* The queued batches' loss and hits, added in order. */
static cudl_status add_queued(step_queue *q, double *total, int64_t *hits) {
  int i;
  cudl_status s = step_queue_read(q);
  if (s != CUDL_OK) return s;
  for (i = 0; i < q->count; ++i) {
    *total += (double)q->entries[i].loss * (double)q->entries[i].rows;
    *hits += q->entries[i].hits;
  }
  step_queue_clear(q);
  return CUDL_OK;
}

cudl_status run_evaluate(run *r, cudl_loader *loader, double *loss,
                         double *accuracy) {
  double total = 0.0;
  int64_t seen = 0, hits = 0, rows = 0;
  int done = 0;
  step_queue *q = &r->eval_queue;
  cudl_status s;
  step_queue_clear(q); /* what a failed evaluation left */
  s = cudl_model_set_training(r->model, 0);
  while (s == CUDL_OK && !done) {
    step_entry m;
    cudl_tensor *xv = NULL, *lv = NULL;
    s = cudl_loader_next(loader, r->x, r->labels, &rows, &done);
    if (s == CUDL_OK) s = run_batch_views(r, rows, &xv, &lv);
    if (s == CUDL_OK) s = cudl_model_forward(r->model, xv, lv, NULL);
    memset(&m, 0, sizeof m);
    m.rows = rows;
    if (s == CUDL_OK) s = step_queue_push(q, r->model, lv, NULL, 0.0f, &m);
    cudl_tensor_destroy(xv);
    cudl_tensor_destroy(lv);
    seen += rows;
    if (s == CUDL_OK && step_queue_full(q)) s = add_queued(q, &total, &hits);
  }
  if (s == CUDL_OK) s = add_queued(q, &total, &hits);
  if (s == CUDL_OK) s = cudl_model_set_training(r->model, 1);
  *loss = seen > 0 ? total / (double)seen : 0.0;
  *accuracy = seen > 0 ? (double)hits / (double)seen : 0.0;
  return s;
}

void run_normalisation_text(const run *r, char *mean, char *std, size_t size) {
  size_t m = 0, d = 0;
  int c;
  mean[0] = std[0] = '\0';
  for (c = 0; c < r->channels; ++c) {
    if (m < size)
      m += (size_t)snprintf(mean + m, size - m, "%s%.9g", c ? "," : "",
                            (double)r->mean[c]);
    if (d < size)
      d += (size_t)snprintf(std + d, size - d, "%s%.9g", c ? "," : "",
                            (double)r->std[c]);
  }
}
