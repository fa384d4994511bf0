/* run_options.c - the options of `cudl train`, `cudl eval` and `cudl
 * predict`: which command takes which, their help, their values and the
 * checks between them (run_options.h). */
#include "run_options.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/zoo.h>

#include "cli.h"
#include "commands.h"
#include "run_data.h"

enum { FOR_ALL = RUN_TRAIN | RUN_EVAL | RUN_PREDICT };

/* The options, and which commands take each: a word not here is unknown,
 * one here but not for the command is another command's. */
static const struct option_spec {
  const char *name;
  int commands;
  int takes_value;
} g_specs[] = {
    {"--model", FOR_ALL, 1},
    {"--model-file", FOR_ALL, 1},
    {"--data", FOR_ALL, 1},
    {"--size", FOR_ALL, 1},
    {"--strict", FOR_ALL, 0},
    {"--cache-limit", FOR_ALL, 1},
    {"--data-dir", FOR_ALL, 1},
    {"--device", FOR_ALL, 1},
    {"--batch", RUN_TRAIN | RUN_EVAL, 1},
    {"--weights", RUN_EVAL | RUN_PREDICT, 1},
    {"--index", RUN_PREDICT, 1},
    {"--image", RUN_PREDICT, 1},
    {"--top", RUN_PREDICT, 1},
    {"--count", RUN_PREDICT, 1},
    {"--optimizer", RUN_TRAIN, 1},
    {"--schedule", RUN_TRAIN, 1},
    {"--metrics", RUN_TRAIN, 1},
    {"--out", RUN_TRAIN, 1},
    {"--resume", RUN_TRAIN, 1},
    {"--init", RUN_TRAIN, 1},
    {"--epochs", RUN_TRAIN, 1},
    {"--warmup", RUN_TRAIN, 1},
    {"--log-every", RUN_TRAIN, 1},
    {"--diagnostics", RUN_TRAIN, 1},
    {"--seed", RUN_TRAIN, 1},
    {"--precision", RUN_TRAIN | RUN_EVAL | RUN_PREDICT, 1},
    {"--allow-emulated-precision", RUN_TRAIN | RUN_EVAL | RUN_PREDICT, 0},
    {"--layout", RUN_TRAIN | RUN_EVAL | RUN_PREDICT, 1},
    {"--lr", RUN_TRAIN, 1},
    {"--momentum", RUN_TRAIN, 1},
    {"--weight-decay", RUN_TRAIN, 1},
    {"--dropout", RUN_TRAIN, 1},
    {"--clip", RUN_TRAIN, 1},
    {"--shuffle", RUN_TRAIN, 0},
    {"--no-shuffle", RUN_TRAIN, 0},
    {"--augment", RUN_TRAIN, 0},
    {"--no-augment", RUN_TRAIN, 0},
    {"--sync-bn", RUN_TRAIN, 0},
    {"--no-sync-bn", RUN_TRAIN, 0},
    {"--deterministic", RUN_TRAIN, 0},
    {"--no-deterministic", RUN_TRAIN, 0},
    {"--check-numerics", RUN_TRAIN, 0},
    {"--val-split", RUN_TRAIN, 1},
    {"--test-every-epoch", RUN_TRAIN, 0},
    {"--steps", RUN_TRAIN, 1},
    {"--sync-every", RUN_TRAIN | RUN_EVAL, 1},
    {"--override", RUN_TRAIN, 1},
    {"--dist-timeout", RUN_TRAIN, 1},
    {"--dist-backend", RUN_TRAIN, 1},
    {"--bucket-mb", RUN_TRAIN, 1},
    {"--grad-wire", RUN_TRAIN, 1},
};
/* options.given has a bit for each. */
typedef char
    option_specs_fit_given[sizeof g_specs / sizeof g_specs[0] <= 64 ? 1 : -1];

static const char *command_name(run_command command) {
  return command == RUN_TRAIN  ? "cudl train"
         : command == RUN_EVAL ? "cudl eval"
                               : "cudl predict";
}

static void usage(run_command command, FILE *out) {
  static const char data[] =
      "  --model NAME        small-cnn, mlp, resnetN or plainN (N = 6n + 2\n"
      "                      from 8 to 1202: 20, 32, 44, 56, 110, ...)\n"
      "                      [small-cnn]\n"
      "  --model-file FILE   a model file instead (docs/model-files.md;\n"
      "                      examples/models/ has the zoo's)\n"
      "  --data NAME         fashion-mnist, mnist, cifar10, or folder:PATH,\n"
      "                      your images: PATH/train/CLASS/*.png|jpg and\n"
      "                      PATH/test/... (and PATH/val/...), or one tree\n"
      "                      PATH/CLASS/... to train and validate on\n"
      "                      (docs/data.md)\n"
      "                      [fashion-mnist]\n"
      "  --data-dir DIR      where a named dataset's files are [Debian's\n"
      "                      location]\n"
      "  --size HxW          resize a folder's images to H x W (bilinear,\n"
      "                      area-averaged when shrinking) [their own size]\n"
      "  --strict            an unreadable image in a folder fails the run\n"
      "                      [skipped and named]\n"
      "  --cache-limit SIZE  the most bytes a folder's decoded images may\n"
      "                      take in memory (e.g. 512M, 8G); a larger folder\n"
      "                      is streamed: decoded from disk for every batch,\n"
      "                      with the same results. 0 streams every folder\n"
      "                      [half of the memory available]\n"
      "  --device auto|cpu|cuda:N [auto]\n";
  static const char train_arithmetic[] =
      "  --precision fp32|tf32|bf16|fp16  arithmetic (bf16, fp16: mixed\n"
      "                      precision, f32 master weights) [fp32]\n"
      "  --allow-emulated-precision  run bf16/fp16 where the device lacks\n"
      "                      the arithmetic (f32 on 16-bit data: the same\n"
      "                      results, slower; for reference runs)\n"
      "  --layout auto|nchw|nhwc  activations in memory; nhwc (channels-\n"
      "                      last) is the order GPU tensor cores work in\n"
      "                      and the CPU's faster one [auto: nhwc on a CPU,\n"
      "                      nchw on CUDA]\n";
  static const char read_arithmetic[] =
      "  --precision fp32|tf32|bf16|fp16  arithmetic of the forward pass\n"
      "                      [fp32]\n"
      "  --allow-emulated-precision  run bf16/fp16 where the device lacks\n"
      "                      the arithmetic (f32 on 16-bit data)\n"
      "  --layout auto|nchw|nhwc  activations in memory [auto: nhwc on a\n"
      "                      CPU, nchw on CUDA]\n";
  static const char read_notes[] =
      "The model, the data and the class names are the weights file's own\n"
      "(cudl train writes them); --model, --model-file and --data override\n"
      "them, and a file naming another zoo model is refused. Images are\n"
      "normalised with the weights file's statistics (cudl train writes\n"
      "them), else the test set's; the values used are printed at start.\n"
      "exit status: 0 done, 1 failed, 2 bad command line (docs/cli.md)\n";
  if (command == RUN_TRAIN)
    fprintf(
        out,
        "usage: cudl train [options]   (all optional; defaults in brackets)\n"
        "%s%s"
        "  --epochs N [10]  --batch B [128]  --lr X [0.05 sgd, 0.001 adam]\n"
        "  --optimizer sgd|adam|adamw [sgd]  --momentum M [0.9]\n"
        "  --weight-decay W [5e-4 sgd, 0 adam, 0.01 adamw]\n"
        "  --schedule constant|cosine|step [cosine]  --warmup EPOCHS [0]\n"
        "                      (step: lr x 0.1 every EPOCHS/3 epochs)\n"
        "  --clip NORM         clip the gradient norm [off]\n"
        "  --dropout P         small-cnn's dropout [0]\n"
        "  --seed S            initial weights, data order, dropout, the\n"
        "                      --val-split images [1]\n"
        "  --out DIR           checkpoints [runs/MODEL-DATA]\n"
        "  --metrics PATH      JSON lines: the run, each epoch, the end (and\n"
        "                      each --log-every K steps); docs/cli.md\n"
        "  --log-every K       a metrics line every K steps\n"
        "  --sync-every K      read the loss and accuracy from the device\n"
        "                      every K steps (the progress line's interval)\n"
        "                      [1 on a CPU, 50 on CUDA; 1 under mpirun]\n"
        "  --shuffle, --no-shuffle   a new order of the training images\n"
        "                      every epoch [on]\n"
        "  --diagnostics K     every K steps, per layer to the metrics file:\n"
        "                      output mean and std, weight and input gradient\n"
        "                      norms, saturated and dead unit fractions\n"
        "  --check-numerics    stop at the first NaN or infinity any layer\n"
        "                      writes, naming it (slow: for a diverging run)\n"
        "  --augment, --no-augment   random crop and flip [on for cifar10 "
        "only]\n"
        "  --sync-bn, --no-sync-bn   under mpirun, batch norm's statistics\n"
        "                      over the rows of every rank [off: each rank's\n"
        "                      own]\n"
        "  --deterministic, --no-deterministic   only algorithms whose\n"
        "                      results are the same bits every run (cuDNN's\n"
        "                      atomics-free convolutions; the CPU always is)\n"
        "                      [off]\n"
        "  --resume FILE       continue a run from its checkpoint (OUT/\n"
        "                      checkpoint.safetensors, saved atomically\n"
        "                      after every epoch and on Ctrl-C) exactly as\n"
        "                      it began: its model, data and training\n"
        "                      options (another value given is refused)\n"
        "  --override NAME,... let a resumed run change these: lr,\n"
        "                      momentum, weight-decay, schedule, warmup,\n"
        "                      epochs (to extend it), clip, dropout,\n"
        "                      augment, shuffle, sync-bn, deterministic,\n"
        "                      precision, layout, grad-wire\n"
        "  --init FILE         start from these weights (fine-tuning)\n"
        "  --val-split F       hold out the fraction F (0 < F < 1) of each\n"
        "                      class of the training images for validation\n"
        "                      (chosen by --seed): validation loss and\n"
        "                      accuracy every epoch, and "
        "OUT/best.safetensors,\n"
        "                      the weights of the epoch of best validation\n"
        "                      accuracy (the earlier on a tie) [off: no\n"
        "                      validation and no best.safetensors]\n"
        "  --test-every-epoch  evaluate the test set after every epoch\n"
        "                      [once, at the end of training]\n"
        "  --steps N           stop after optimizer step N of the run, "
        "counted\n"
        "                      from its start (a resumed run goes on to N),\n"
        "                      saving the checkpoint [the end of --epochs]\n",
        data, train_arithmetic);
  if (command == RUN_TRAIN)
    fputs(
        "  --dist-timeout S    under mpirun: end the job when a rank waits\n"
        "                      over S seconds in one exchange (another rank\n"
        "                      hung); 0: wait without limit [600]\n"
        "  --dist-backend B    under mpirun: auto, mpi or nccl; auto takes\n"
        "                      nccl on a GPU when cudl has it, else mpi\n"
        "                      [auto]\n"
        "  --bucket-mb M       under mpirun: average the gradients in\n"
        "                      buckets of M MB while backward runs; 0: all\n"
        "                      at once after backward (same weights) [25]\n"
        "  --grad-wire W       under mpirun: what the gradients travel as:\n"
        "                      f32, bf16 or f16 (half the bytes, the sum\n"
        "                      rounded to 16 bits); auto: bf16 or f16 with\n"
        "                      --precision bf16 or fp16, else f32 [auto]\n"
        "Values derived from these (learning rate, schedule, normalisation,\n"
        "augmentation) are printed at start.\n"
        "exit status: 0 done, 1 failed, 2 bad command line, 130 Ctrl-C\n"
        "(docs/cli.md)\n",
        out);
  else if (command == RUN_EVAL)
    fprintf(out,
            "usage: cudl eval --weights FILE [options]\n"
            "  test loss and accuracy of trained weights\n"
            "  --weights FILE      a weights file (cudl train's "
            "model.safetensors\n"
            "                      or best.safetensors, or a PyTorch "
            "state_dict\n"
            "                      as safetensors)\n"
            "%s%s"
            "  --batch B [128]     images a forward pass (at most the test "
            "set)\n"
            "  --sync-every K      read the loss and accuracy from the device\n"
            "                      every K batches [1 on a CPU, 50 on CUDA]\n"
            "%s",
            data, read_arithmetic, read_notes);
  else
    fprintf(out,
            "usage: cudl predict --weights FILE --image FILE|--index I "
            "[options]\n"
            "  classify an image file, or test images I, I + 1, ...,\n"
            "  I + N - 1 (all in one batch of N)\n"
            "  --weights FILE      a weights file\n"
            "  --image FILE        a PNG or JPEG, converted and resized to\n"
            "                      the model's input as --data folder: does\n"
            "  --index I           the first test image (from 0)\n"
            "  --count N [1]       how many (with --index)\n"
            "  --top K [1]         the K most likely classes, by name\n"
            "%s%s%s",
            data, read_arithmetic, read_notes);
}

/* 1 when word is one of the NULL-terminated names. */
static int one_of(const char *word, const char *const *names) {
  for (; *names != NULL; ++names)
    if (strcmp(word, *names) == 0) return 1;
  return 0;
}

/* A usage error for a model name the zoo cannot build, naming what is
 * wrong: an unknown name, or a ResNet depth that is not 6n + 2. */
int cudl__tool_zoo_check_name(const char *name) {
  long long depth;
  const char *digits = strncmp(name, "resnet", 6) == 0  ? name + 6
                       : strncmp(name, "plain", 5) == 0 ? name + 5
                                                        : NULL;
  if (strcmp(name, "small-cnn") == 0 || strcmp(name, "mlp") == 0) return 0;
  if (digits == NULL || !cli_parse_int(digits, 0, INT32_MAX, &depth))
    return cli_usage_error(
        "unknown model '%s': small-cnn, mlp, resnetN or plainN (N = 20, "
        "32, 44, 56, 110, ...)",
        name);
  if (!cudl_zoo_resnet_depth_valid((int)depth))
    return cli_usage_error(
        "--model %s: the depth of a ResNet or plain net is 6n + 2 from 8 to "
        "%d (20, 32, 44, 56, 110, ...), not %lld",
        name, CUDL_ZOO_RESNET_MAX_DEPTH, depth);
  return 0;
}

int run_set_option(options *o, const char *a, const char *v,
                   const char **wanted) {
  const char *want = NULL; /* what a valued option accepts */
  long long n = 0;
  int ok = 1;
  if (strcmp(a, "--shuffle") == 0) {
    o->shuffle = 1;
  } else if (strcmp(a, "--no-shuffle") == 0) {
    o->shuffle = 0;
  } else if (strcmp(a, "--no-augment") == 0) {
    o->augment = 0;
  } else if (strcmp(a, "--augment") == 0) {
    o->augment = 1;
  } else if (strcmp(a, "--sync-bn") == 0) {
    o->sync_bn = 1;
  } else if (strcmp(a, "--no-sync-bn") == 0) {
    o->sync_bn = 0;
  } else if (strcmp(a, "--deterministic") == 0) {
    o->deterministic = 1;
  } else if (strcmp(a, "--no-deterministic") == 0) {
    o->deterministic = 0;
  } else if (strcmp(a, "--check-numerics") == 0) {
    o->check_numerics = 1;
  } else if (strcmp(a, "--strict") == 0) {
    o->strict = 1;
  } else if (strcmp(a, "--test-every-epoch") == 0) {
    o->test_every_epoch = 1;
  } else if (strcmp(a, "--allow-emulated-precision") == 0) {
    o->emulated_precision = 1;
  } else if (v[0] == '\0') {
    /* An empty path would mean the current directory or "/" to whatever
     * joins it; an empty name is no name. */
    want = "a value";
    ok = 0;
  } else if (strcmp(a, "--model") == 0) {
    o->model = v;
  } else if (strcmp(a, "--model-file") == 0) {
    o->model_file = v;
  } else if (strcmp(a, "--data") == 0) {
    o->data = v;
  } else if (strcmp(a, "--image") == 0) {
    o->image = v;
  } else if (strcmp(a, "--top") == 0) {
    want = "an integer from 1 to 1000";
    ok = cli_parse_int(v, 1, 1000, &n);
    o->top = (int)n;
  } else if (strcmp(a, "--cache-limit") == 0) {
    want =
        "a size in bytes with an optional K, M, G or T (e.g. 512M; 0 "
        "streams every folder)";
    ok = cli_parse_bytes(v, &o->cache_limit);
    o->cache_limit_given = 1;
  } else if (strcmp(a, "--size") == 0) {
    long long h = 0, w = 0;
    const char *x = strchr(v, 'x');
    char side[32];
    want = "HxW, each side from 1 to 32768 (e.g. 64x64)";
    ok = x != NULL && (size_t)(x - v) < sizeof side;
    if (ok) {
      memcpy(side, v, (size_t)(x - v));
      side[x - v] = '\0';
      ok = cli_parse_int(side, 1, CUDL_DATASET_MAX_SIDE, &h) &&
           cli_parse_int(x + 1, 1, CUDL_DATASET_MAX_SIDE, &w);
    }
    o->size_h = (int)h;
    o->size_w = (int)w;
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
  } else if (strcmp(a, "--override") == 0) {
    o->override = v;
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
  } else if (strcmp(a, "--sync-every") == 0) {
    want = "an integer from 1 to 100000";
    ok = cli_parse_int(v, 1, 100000, &n);
    o->sync_every = (int)n;
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
    ok = cli_parse_int(v, 0, INT32_MAX, &n);
    o->index = n;
  } else if (strcmp(a, "--count") == 0) {
    want = "an integer from 1 to 1048576";
    ok = cli_parse_int(v, 1, 1 << 20, &n);
    o->count = (int)n;
  } else if (strcmp(a, "--precision") == 0) {
    want = "fp32, tf32, bf16 or fp16";
    ok = cudl_precision_from_name(v, &o->precision) == CUDL_OK;
  } else if (strcmp(a, "--layout") == 0) {
    int automatic = 0;
    want = "auto, nchw or nhwc";
    ok = cli_parse_layout(v, &o->layout, &automatic);
    o->layout_chosen = !automatic;
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
  } else if (strcmp(a, "--val-split") == 0) {
    want = "a number above 0 and below 1";
    ok = cli_parse_double(v, &o->val_split) && o->val_split > 0.0 &&
         o->val_split < 1.0;
  } else if (strcmp(a, "--steps") == 0) {
    want = "a positive integer";
    ok = cli_parse_int(v, 1, INT64_MAX, &n);
    o->steps = n;
  } else if (strcmp(a, "--dist-timeout") == 0) {
    want = "a number of seconds from 0 (no limit) to 1e9";
    ok = cli_parse_double(v, &o->dist_timeout) && o->dist_timeout >= 0.0 &&
         o->dist_timeout <= 1e9;
  } else if (strcmp(a, "--dist-backend") == 0) {
    static const char *const backends[] = {"auto", "mpi", "nccl", NULL};
    want = "auto, mpi or nccl";
    ok = one_of(v, backends);
    o->dist_backend = v;
  } else if (strcmp(a, "--grad-wire") == 0) {
    want = "auto, f32, bf16 or f16";
    ok = cudl_grad_wire_from_name(v, &o->grad_wire) == CUDL_OK;
  } else if (strcmp(a, "--bucket-mb") == 0) {
    want = "a number of MB from 0 (one bucket) to 1e6";
    ok = cli_parse_double(v, &o->bucket_mb) && o->bucket_mb >= 0.0 &&
         o->bucket_mb <= 1e6;
  } else if (strcmp(a, "--clip") == 0) {
    want = "a finite number above 0";
    ok = cli_parse_double(v, &o->clip) && o->clip > 0.0;
  }
  if (wanted != NULL) *wanted = want;
  return ok;
}

int run_option_given(const options *o, const char *name) {
  size_t k;
  for (k = 0; k < sizeof g_specs / sizeof g_specs[0]; ++k)
    if (strcmp(g_specs[k].name, name) == 0) return (int)((o->given >> k) & 1u);
  return 0;
}

/* The checks between options, once all are read. */
static int check_options(const options *o) {
  static const char *const datasets[] = {"fashion-mnist", "mnist", "cifar10",
                                         NULL};
  static const char *const optimizers[] = {"sgd", "adam", "adamw", NULL};
  static const char *const schedules[] = {"constant", "cosine", "step", NULL};
  cudl_device_kind kind;
  int index, rc;
  if (o->model_file != NULL && run_option_given(o, "--model"))
    return cli_usage_error(
        "--model and --model-file exclude each other: one names a zoo model, "
        "the other a model file");
  if (o->model_file == NULL && (rc = cudl__tool_zoo_check_name(o->model)) != 0)
    return rc;
  if (!one_of(o->data, datasets) && !run_data_is_folder(o))
    return cli_usage_error(
        "unknown dataset '%s': fashion-mnist, mnist, cifar10 or "
        "folder:PATH (a folder of images, docs/data.md)",
        o->data);
  if (run_data_is_folder(o) && o->data[strlen("folder:")] == '\0')
    return cli_usage_error("--data folder:PATH needs a PATH");
  if (o->size_h > 0 && !run_data_is_folder(o))
    return cli_usage_error(
        "--size resizes the images of a folder (--data folder:PATH); %s's "
        "images have their own size",
        o->data);
  if (!cli_parse_device(o->device, &kind, &index))
    return cli_usage_error("--device must be auto, cpu or cuda:N, not '%s'",
                           o->device);
  if (!one_of(o->optimizer, optimizers))
    return cli_usage_error("--optimizer must be sgd, adam or adamw, not '%s'",
                           o->optimizer);
  if (!one_of(o->schedule, schedules))
    return cli_usage_error(
        "--schedule must be constant, cosine or step, not '%s'", o->schedule);
  if (o->resume != NULL && o->init != NULL)
    /* --resume replaces every weight --init would have set. */
    return cli_usage_error(
        "--resume and --init exclude each other: a resumed run takes its "
        "weights from its checkpoint");
  if (run_option_given(o, "--dropout") &&
      (o->model_file != NULL ||
       (run_option_given(o, "--model") && strcmp(o->model, "small-cnn") != 0)))
    return cli_usage_error(
        "--dropout is small-cnn's; %s has its dropout in its architecture",
        o->model_file != NULL ? o->model_file : o->model);
  if (o->diagnostics > 0 && o->metrics == NULL)
    return cli_usage_error(
        "--diagnostics writes to the metrics file: add --metrics PATH");
  if (o->command != RUN_TRAIN && o->weights == NULL)
    return cli_usage_error("needs --weights FILE");
  if (o->command == RUN_PREDICT && (o->index < 0) == (o->image == NULL))
    return cli_usage_error(
        o->image == NULL
            ? "needs --index I (the first test image to classify, from 0) or "
              "--image FILE"
            : "--index and --image exclude each other");
  if (o->image != NULL && o->count != 1)
    return cli_usage_error("--count goes with --index; --image is one image");
  return 0;
}

int run_parse_options(run_command command, int argc, char **argv, options *o) {
  const size_t count = sizeof g_specs / sizeof g_specs[0];
  int i;
  memset(o, 0, sizeof *o);
  o->command = command;
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
  o->index = -1;
  o->count = 1;
  o->top = 1;
  o->dist_timeout = 600.0;
  o->dist_backend = "auto";
  o->bucket_mb = 25.0;
  o->grad_wire = CUDL_GRAD_WIRE_AUTO;
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i];
    const struct option_spec *spec = NULL;
    const char *want = NULL;
    size_t k;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(command, stdout);
      return CLI_EXIT_OK;
    }
    for (k = 0; k < count && spec == NULL; ++k)
      if (strcmp(a, g_specs[k].name) == 0) spec = &g_specs[k];
    if (spec == NULL)
      return cli_usage_error("unknown option '%s' (%s --help lists them)", a,
                             command_name(command));
    if (!(spec->commands & (int)command)) {
      run_command other = (spec->commands & RUN_TRAIN)  ? RUN_TRAIN
                          : (spec->commands & RUN_EVAL) ? RUN_EVAL
                                                        : RUN_PREDICT;
      return cli_usage_error("%s is an option of %s, not of %s", a,
                             command_name(other), command_name(command));
    }
    if (spec->takes_value && i + 1 == argc)
      return cli_usage_error("option %s needs a value", a);
    if (!run_set_option(o, a, spec->takes_value ? argv[i + 1] : NULL, &want))
      return cli_usage_error("option %s needs %s, not '%s'", a, want,
                             argv[i + 1]);
    o->given |= (uint64_t)1 << (spec - g_specs);
    i += spec->takes_value;
  }
  return check_options(o) == 0 ? RUN_GO : CLI_EXIT_USAGE;
}

int run_augments(const options *o) {
  return o->augment > 0 || (o->augment < 0 && strcmp(o->data, "cifar10") == 0);
}
