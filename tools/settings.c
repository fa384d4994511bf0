/* settings.c - the values a run settles, as notes and as JSON
 * (settings.h). */
#include "settings.h"

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/cudl.h>
#include <cudl/data.h>

#include "cli.h"

void settings_json_string(FILE *f, const char *text) {
  const unsigned char *p = (const unsigned char *)(text != NULL ? text : "");
  fputc('"', f);
  for (; *p != '\0'; ++p) {
    if (*p == '"' || *p == '\\')
      fprintf(f, "\\%c", *p);
    else if (*p < 0x20 || *p == 0x7f)
      fprintf(f, "\\u%04x", *p);
    else
      fputc(*p, f);
  }
  fputc('"', f);
}

/* "m0,m1,..." of n values, for the notes. */
static void channel_list(char *out, size_t size, const float *v, int n) {
  size_t at = 0;
  int c;
  out[0] = '\0';
  for (c = 0; c < n && at < size; ++c)
    at += (size_t)snprintf(out + at, size - at, "%s%.4f", c ? "," : "",
                           (double)v[c]);
}

/* The epochs (from 1) at whose start the step schedule multiplies the
 * rate by gamma, up to --epochs, as "4, 7, 10" into out; how many. */
static int step_epochs(const run_settings *s, char *out, size_t size) {
  const cudl_lr_schedule *sc = s->schedule;
  size_t at = 0;
  int e, n = 0;
  out[0] = '\0';
  for (e = sc->warmup_epochs + sc->step_size; e < s->o->epochs;
       e += sc->step_size, ++n)
    if (at < size)
      at += (size_t)snprintf(out + at, size - at, "%s%d", n ? ", " : "", e + 1);
  return n;
}

static int64_t images(const cudl_dataset *ds) {
  return ds != NULL ? cudl_dataset_count(ds) : 0;
}

void settings_note(const run_settings *s) {
  const options *o = s->o;
  const run *r = s->r;
  const int training = o->command == RUN_TRAIN;
  char mean[160], std[160];
  channel_list(mean, sizeof mean, r->mean, r->channels);
  channel_list(std, sizeof std, r->std, r->channels);
  if (r->normalisation_from_weights)
    cli_note(
        "using normalisation mean %s, std %s (per channel, from the "
        "--weights file)",
        mean, std);
  else
    cli_note("using normalisation mean %s, std %s (per channel, of the %" PRId64
             " %s images)",
             mean, std, images(training ? r->train_set : r->test_set),
             training ? "training" : "test");
  if (!training) {
    if (o->command == RUN_EVAL)
      cli_note("using batches of %" PRId64 " (--batch, at most the %" PRId64
               " test images)",
               r->batch, images(r->test_set));
    return;
  }
  if (r->val_set != NULL)
    cli_note("using validation: %" PRId64 " of the %" PRId64
             " training images held out (--val-split %g, %g of each class, "
             "chosen by seed %" PRIu64 ")",
             images(r->val_set), images(r->val_set) + images(r->train_set),
             o->val_split, o->val_split, r->data_seed);
  if (run_augments(o))
    cli_note(
        "using augmentation: random crop (zero padding %d) and horizontal "
        "flip%s",
        run_crop_padding(r->train_set),
        o->augment < 0 ? " (cifar10's default; --no-augment to turn off)" : "");
  else
    cli_note("using no augmentation%s",
             o->augment < 0 ? " (on by default for cifar10 only)" : "");
  if (s->optimizer->kind == CUDL_OPTIMIZER_SGD)
    cli_note("using optimizer sgd: lr %g, momentum %g, weight decay %g",
             (double)s->optimizer->lr, (double)s->optimizer->momentum,
             (double)s->optimizer->weight_decay);
  else
    cli_note(
        "using optimizer %s: lr %g, betas %g and %g, eps %g, weight decay %g",
        o->optimizer, (double)s->optimizer->lr, (double)s->optimizer->beta1,
        (double)s->optimizer->beta2, (double)s->optimizer->eps,
        (double)s->optimizer->weight_decay);
  if (s->schedule->warmup_epochs > 0)
    cli_note(
        "using warm-up: lr rising linearly step by step to %g over the first "
        "%d epoch%s",
        (double)s->schedule->base_lr, s->schedule->warmup_epochs,
        s->schedule->warmup_epochs == 1 ? "" : "s");
  if (s->schedule->kind == CUDL_LR_STEP) {
    char at[256];
    const int n = step_epochs(s, at, sizeof at);
    if (n > 0)
      cli_note(
          "using schedule step: lr x %g every %d epoch%s, at the start of "
          "epoch%s %s",
          (double)s->schedule->gamma, s->schedule->step_size,
          s->schedule->step_size == 1 ? "" : "s", n == 1 ? "" : "s", at);
    else
      cli_note(
          "using schedule step: lr x %g every %d epochs: never within %d "
          "epoch%s",
          (double)s->schedule->gamma, s->schedule->step_size, o->epochs,
          o->epochs == 1 ? "" : "s");
  } else if (s->schedule->kind == CUDL_LR_COSINE) {
    cli_note("using schedule cosine: lr from %g down to %g over %d epoch%s%s",
             (double)s->schedule->base_lr, (double)s->schedule->eta_min,
             s->schedule->total_epochs,
             s->schedule->total_epochs == 1 ? "" : "s",
             s->schedule->warmup_epochs > 0 ? " after the warm-up" : "");
  } else {
    cli_note("using schedule constant: lr %g throughout",
             (double)s->schedule->base_lr);
  }
  cli_note("using the test set %s",
           o->test_every_epoch ? "after every epoch (--test-every-epoch)"
                               : "once, at the end of training");
}

/* ", \"key\": " then a number, or null where it is not finite. */
static void number(FILE *f, const char *key, double v) {
  if (isfinite(v))
    fprintf(f, ", \"%s\": %.9g", key, v);
  else
    fprintf(f, ", \"%s\": null", key);
}

/* A float's shortest decimal form that reads back as the same float. */
static void float_text(FILE *f, float v) {
  char text[40];
  int digits;
  for (digits = 6; digits < 9; ++digits) {
    snprintf(text, sizeof text, "%.*g", digits, (double)v);
    if (strtof(text, NULL) == v) break;
  }
  if (digits == 9) snprintf(text, sizeof text, "%.9g", (double)v);
  fputs(text, f);
}

static void number_float(FILE *f, const char *key, float v) {
  if (!isfinite(v)) {
    fprintf(f, ", \"%s\": null", key);
    return;
  }
  fprintf(f, ", \"%s\": ", key);
  float_text(f, v);
}

static void string(FILE *f, const char *key, const char *v) {
  fprintf(f, ", \"%s\": ", key);
  if (v == NULL)
    fputs("null", f);
  else
    settings_json_string(f, v);
}

static void channels(FILE *f, const char *key, const float *v, int n) {
  int c;
  fprintf(f, ", \"%s\": [", key);
  for (c = 0; c < n; ++c) {
    if (c) fputs(", ", f);
    float_text(f, v[c]);
  }
  fputc(']', f);
}

void settings_json(FILE *f, const run_settings *s) {
  const options *o = s->o;
  const run *r = s->r;
  const cudl_lr_schedule *sc = s->schedule;
  fprintf(f, "{\"type\": \"run\"");
  string(f, "cudl_version", cudl_version());
  string(f, "command",
         o->command == RUN_TRAIN  ? "train"
         : o->command == RUN_EVAL ? "eval"
                                  : "predict");
  string(f, "device", cudl_context_device_name(r->ctx));
  string(f, "precision", cudl_precision_name(o->precision));
  string(f, "layout", cudl_layout_name(o->layout));
  fprintf(f, ", \"seed\": %" PRIu64, r->data_seed);
  fprintf(f, ", \"model\": {");
  settings_json_string(f, "name");
  fprintf(f, ": ");
  settings_json_string(f, o->model);
  fprintf(f, ", \"parameters\": %" PRId64 "}", s->parameters);
  fprintf(f, ", \"dataset\": {\"name\": ");
  settings_json_string(f, o->data);
  string(f, "dir", o->data_dir);
  fprintf(f,
          ", \"train_images\": %" PRId64 ", \"val_images\": %" PRId64
          ", \"test_images\": %" PRId64
          ", \"classes\": %d, \"image_shape\": [%d, %d, %d]}",
          images(r->train_set), images(r->val_set), images(r->test_set),
          (int)r->classes, r->channels, r->height, r->width);
  fprintf(f,
          ", \"config\": {\"epochs\": %d, \"batch\": %" PRId64
          ", \"batches_per_epoch\": %" PRId64,
          o->epochs, o->batch, s->batches);
  if (o->steps > 0)
    fprintf(f, ", \"steps\": %" PRId64, o->steps);
  else
    fprintf(f, ", \"steps\": null");
  if (o->val_split > 0.0)
    number(f, "val_split", o->val_split);
  else
    fprintf(f, ", \"val_split\": null");
  fprintf(f, ", \"test_every_epoch\": %s",
          o->test_every_epoch ? "true" : "false");
  string(f, "optimizer", o->optimizer);
  number_float(f, "lr", s->optimizer->lr);
  number_float(f, "momentum", s->optimizer->momentum);
  number_float(f, "weight_decay", s->optimizer->weight_decay);
  if (s->optimizer->kind != CUDL_OPTIMIZER_SGD) {
    number_float(f, "beta1", s->optimizer->beta1);
    number_float(f, "beta2", s->optimizer->beta2);
    number_float(f, "eps", s->optimizer->eps);
  }
  fprintf(f, ", \"schedule\": {");
  settings_json_string(f, "kind");
  fprintf(f, ": ");
  settings_json_string(f, o->schedule);
  fprintf(f, ", \"warmup_epochs\": %d", sc->warmup_epochs);
  if (sc->kind == CUDL_LR_STEP) {
    number_float(f, "gamma", sc->gamma);
    fprintf(f, ", \"step_epochs\": %d", sc->step_size);
  } else if (sc->kind == CUDL_LR_COSINE) {
    fprintf(f, ", \"total_epochs\": %d", sc->total_epochs);
    number_float(f, "eta_min", sc->eta_min);
  }
  fputc('}', f);
  if (o->clip > 0.0)
    number(f, "clip", o->clip);
  else
    fprintf(f, ", \"clip\": null");
  number(f, "dropout", o->dropout);
  fprintf(f, ", \"shuffle\": %s, \"augment\": %s",
          o->shuffle ? "true" : "false", run_augments(o) ? "true" : "false");
  if (run_augments(o))
    fprintf(f, ", \"crop_padding\": %d, \"horizontal_flip\": true",
            run_crop_padding(r->train_set));
  channels(f, "normalize_mean", r->mean, r->channels);
  channels(f, "normalize_std", r->std, r->channels);
  string(f, "init", o->init);
  string(f, "resume", o->resume);
  fprintf(f, ", \"log_every\": %d, \"diagnostics\": %d", o->log_every,
          o->diagnostics);
  fprintf(f, "}}");
}
