/* run_config.c - the training configuration a run records, and a resumed
 * run keeps (run_config.h). */
#include "run_config.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "run_options.h"

enum {
  SET_OPTIMIZER,
  SET_LR,
  SET_MOMENTUM,
  SET_WEIGHT_DECAY,
  SET_SCHEDULE,
  SET_WARMUP,
  SET_EPOCHS,
  SET_CLIP,
  SET_DROPOUT,
  SET_AUGMENT,
  SET_SHUFFLE,
  SET_SYNC_BN,
  SET_DETERMINISTIC,
  SET_PRECISION,
  SET_LAYOUT,
  SET_GRAD_WIRE,
  SET_SEED
};

static const char *const g_optimizers[] = {"sgd", "adam", "adamw", NULL};
static const char *const g_schedules[] = {"constant", "cosine", "step", NULL};
static const char *const g_on_off[] = {"on", "off", NULL};
static const char *const g_wires[] = {"auto", "f32", "bf16", "f16", NULL};

/* A setting: its option's name without "--" (the metadata key is
 * "train.NAME", and --override takes NAME), the words it takes where it
 * takes words (kept as these literals: the file's text does not outlive
 * the setup), and why a resumed run cannot change it, if it cannot. A
 * setting of on or off is two flags, --NAME and --no-NAME. */
static const struct setting {
  const char *name;
  const char *const *words;
  const char *fixed;
} g_settings[RUN_CONFIG_SETTINGS] = {
    {"optimizer", g_optimizers,
     "the checkpoint holds this optimizer's state; to train the weights "
     "with another, start from them with --init"},
    {"lr", NULL, NULL},
    {"momentum", NULL, NULL},
    {"weight-decay", NULL, NULL},
    {"schedule", g_schedules, NULL},
    {"warmup", NULL, NULL},
    {"epochs", NULL, NULL},
    {"clip", NULL, NULL},
    {"dropout", NULL, NULL},
    {"augment", g_on_off, NULL},
    {"shuffle", g_on_off, NULL},
    {"sync-bn", g_on_off, NULL},
    {"deterministic", g_on_off, NULL},
    {"precision", NULL, NULL},
    {"layout", NULL, NULL},
    {"grad-wire", g_wires, NULL},
    {"seed", NULL,
     "the data order and the --val-split images follow it, so a resumed "
     "run goes on with its own"},
};

/* What a checkpoint keeps outside the training configuration, and why
 * --override cannot change it either. */
static const struct {
  const char *name, *why;
} g_structural[] = {
    {"batch", "an epoch's batches and the position in it depend on it"},
    {"val-split", "the images trained on depend on it"},
    {"world",
     "each rank's share of a global batch and the position in the epoch "
     "depend on the number of ranks (mpirun -np)"},
    {"data",
     "the checkpoint is a run on its dataset; to train its weights on "
     "another, start from them with --init"},
    {"model",
     "the checkpoint holds this model's weights; to train another, start "
     "it with --init from weights it can take"},
    {"model-file",
     "the checkpoint holds this model's weights; to train another, start "
     "it with --init from weights it can take"},
};

double run_config_lr(const options *o) {
  if (o->lr > 0.0) return o->lr;
  return strcmp(o->optimizer, "sgd") == 0 ? 0.05 : 0.001;
}

double run_config_weight_decay(const options *o) {
  cudl_optimizer_config c;
  if (o->weight_decay >= 0.0) return o->weight_decay;
  if (strcmp(o->optimizer, "sgd") == 0) return 5e-4;
  cudl_optimizer_config_default(strcmp(o->optimizer, "adam") == 0
                                    ? CUDL_OPTIMIZER_ADAM
                                    : CUDL_OPTIMIZER_ADAMW,
                                &c);
  return (double)c.weight_decay;
}

/* The shortest decimal form of v that reads back as v. */
static void number_text(double v, char *out, size_t size) {
  int digits;
  for (digits = 15; digits < 17; ++digits) {
    snprintf(out, size, "%.*g", digits, v);
    if (strtod(out, NULL) == v) return;
  }
  snprintf(out, size, "%.17g", v);
}

/* Setting k of o as the files record it. */
static void setting_text(int k, const options *o, char *out, size_t size) {
  switch (k) {
    case SET_OPTIMIZER:
      snprintf(out, size, "%s", o->optimizer);
      break;
    case SET_LR:
      number_text(run_config_lr(o), out, size);
      break;
    case SET_MOMENTUM:
      number_text(o->momentum, out, size);
      break;
    case SET_WEIGHT_DECAY:
      number_text(run_config_weight_decay(o), out, size);
      break;
    case SET_SCHEDULE:
      snprintf(out, size, "%s", o->schedule);
      break;
    case SET_WARMUP:
      snprintf(out, size, "%d", o->warmup);
      break;
    case SET_EPOCHS:
      snprintf(out, size, "%d", o->epochs);
      break;
    case SET_CLIP:
      if (o->clip > 0.0)
        number_text(o->clip, out, size);
      else
        snprintf(out, size, "off");
      break;
    case SET_DROPOUT:
      number_text(o->dropout, out, size);
      break;
    case SET_AUGMENT:
      snprintf(out, size, "%s", run_augments(o) ? "on" : "off");
      break;
    case SET_SHUFFLE:
      snprintf(out, size, "%s", o->shuffle ? "on" : "off");
      break;
    case SET_SYNC_BN:
      snprintf(out, size, "%s", o->sync_bn ? "on" : "off");
      break;
    case SET_DETERMINISTIC:
      snprintf(out, size, "%s", o->deterministic ? "on" : "off");
      break;
    case SET_PRECISION:
      snprintf(out, size, "%s", cudl_precision_name(o->precision));
      break;
    case SET_LAYOUT:
      snprintf(out, size, "%s", cudl_layout_name(o->layout));
      break;
    case SET_GRAD_WIRE:
      snprintf(out, size, "%s", cudl_grad_wire_name(o->grad_wire));
      break;
    default: /* SET_SEED */
      snprintf(out, size, "%" PRIu64, o->seed);
      break;
  }
}

/* Set setting k of o from a file's text, as the option would; 0 when the
 * text is not a value of it, with *want what it takes. */
static int setting_apply(int k, options *o, const char *text,
                         const char **want) {
  const struct setting *s = &g_settings[k];
  char option[32];
  if (s->words == g_on_off) {
    const int on = strcmp(text, "on") == 0;
    *want = "on or off";
    if (!on && strcmp(text, "off") != 0) return 0;
    snprintf(option, sizeof option, "--%s%s", on ? "" : "no-", s->name);
    return run_set_option(o, option, NULL, want);
  }
  snprintf(option, sizeof option, "--%s", s->name);
  if (s->words != NULL) {
    int i;
    for (i = 0; s->words[i] != NULL && strcmp(s->words[i], text) != 0; ++i) {
    }
    *want = s->words == g_optimizers  ? "sgd, adam or adamw"
            : s->words == g_schedules ? "constant, cosine or step"
                                      : "auto, f32, bf16 or f16";
    if (s->words[i] == NULL) return 0;
    return run_set_option(o, option, s->words[i], want);
  }
  if (k == SET_CLIP && strcmp(text, "off") == 0) {
    o->clip = 0.0;
    return 1;
  }
  return run_set_option(o, option, text, want);
}

/* 1 when the command line sets setting k. */
static int setting_given(int k, const options *o) {
  char option[32];
  if (g_settings[k].words == g_on_off) {
    snprintf(option, sizeof option, "--no-%s", g_settings[k].name);
    if (run_option_given(o, option)) return 1;
  }
  snprintf(option, sizeof option, "--%s", g_settings[k].name);
  return run_option_given(o, option);
}

/* Setting k with value text as a command line says it ("--lr 0.05",
 * "--no-augment"), for messages. */
static void setting_words(int k, const char *text, char *out, size_t size) {
  if (g_settings[k].words == g_on_off)
    snprintf(out, size, "--%s%s", strcmp(text, "on") == 0 ? "" : "no-",
             g_settings[k].name);
  else if (k == SET_CLIP && strcmp(text, "off") == 0)
    snprintf(out, size, "no --clip");
  else
    snprintf(out, size, "--%s %s", g_settings[k].name, text);
}

void run_config_record_make(const options *o, run_config_record *record) {
  int k;
  for (k = 0; k < RUN_CONFIG_SETTINGS; ++k) {
    snprintf(record->keys[k], sizeof record->keys[k], "train.%s",
             g_settings[k].name);
    setting_text(k, o, record->values[k], sizeof record->values[k]);
    record->pairs[k].key = record->keys[k];
    record->pairs[k].value = record->values[k];
  }
  record->count = RUN_CONFIG_SETTINGS;
}

/* The index of setting name (len bytes), or -1. */
static int setting_index(const char *name, size_t len) {
  int k;
  for (k = 0; k < RUN_CONFIG_SETTINGS; ++k)
    if (strlen(g_settings[k].name) == len &&
        strncmp(g_settings[k].name, name, len) == 0)
      return k;
  return -1;
}

int run_config_overrides(const options *o, const char *name) {
  const char *p = o->override;
  const size_t want = strlen(name);
  while (p != NULL && *p != '\0') {
    const size_t len = strcspn(p, ",");
    if (len == want && strncmp(p, name, len) == 0) return 1;
    p += len + (p[len] == ',');
  }
  return 0;
}

int run_config_check_override(const options *o) {
  const char *p = o->override;
  if (p == NULL) return 0;
  if (o->resume == NULL)
    return cli_usage_error(
        "--override names what a resumed run changes: it goes with "
        "--resume");
  for (;;) {
    const size_t len = strcspn(p, ",");
    const int k = setting_index(p, len);
    size_t i;
    if (len == 0)
      return cli_usage_error(
          "--override '%s': an empty name (NAME,NAME,... without spaces)",
          o->override);
    for (i = 0; i < sizeof g_structural / sizeof g_structural[0]; ++i)
      if (strlen(g_structural[i].name) == len &&
          strncmp(g_structural[i].name, p, len) == 0)
        return cli_usage_error(
            "--override %s: a resumed run cannot change its --%s: %s",
            g_structural[i].name, g_structural[i].name, g_structural[i].why);
    if (k < 0) {
      char names[256] = "";
      int j;
      for (j = 0; j < RUN_CONFIG_SETTINGS; ++j)
        if (g_settings[j].fixed == NULL)
          snprintf(names + strlen(names), sizeof names - strlen(names), "%s%s",
                   names[0] != '\0' ? ", " : "", g_settings[j].name);
      return cli_usage_error("--override: unknown setting '%.*s' (%s)",
                             (int)len, p, names);
    }
    if (g_settings[k].fixed != NULL)
      return cli_usage_error(
          "--override %s: a resumed run cannot change its --%s: %s",
          g_settings[k].name, g_settings[k].name, g_settings[k].fixed);
    if (!setting_given(k, o)) {
      const char *name = g_settings[k].name;
      if (g_settings[k].words == g_on_off)
        return cli_usage_error(
            "--override %s: give the new value (--%s or --no-%s)", name, name,
            name);
      return cli_usage_error("--override %s: give the new value (%s)", name,
                             k == SET_CLIP ? "--clip NORM" : "and its option");
    }
    if (p[len] == '\0') return 0;
    p += len + 1;
  }
}

int run_config_resume(options *o, const cudl_safetensors *set,
                      const char *path) {
  int k, recorded = 0;
  for (k = 0; k < RUN_CONFIG_SETTINGS; ++k) {
    char key[32], saved[64], given[64], was[96], is[96];
    const char *text, *want = NULL;
    options saved_options = *o;
    snprintf(key, sizeof key, "train.%s", g_settings[k].name);
    text = cudl_safetensors_metadata_find(set, key);
    if (text == NULL) continue;
    ++recorded;
    if (!setting_apply(k, &saved_options, text, &want)) {
      cli_error("--resume %s: its metadata \"%s\" is \"%s\", not %s", path, key,
                text, want != NULL ? want : "a value");
      return CLI_EXIT_FAILED;
    }
    if (!setting_given(k, o)) {
      setting_apply(k, o, text, &want);
      continue;
    }
    /* Both sides as the files write them: "0.10" given is the run's
     * "0.1". */
    setting_text(k, &saved_options, saved, sizeof saved);
    setting_text(k, o, given, sizeof given);
    if (strcmp(saved, given) == 0) continue;
    setting_words(k, saved, was, sizeof was);
    setting_words(k, given, is, sizeof is);
    if (g_settings[k].fixed != NULL) {
      cli_error("--resume %s: the run was trained with %s, not %s: %s", path,
                was, is, g_settings[k].fixed);
      return CLI_EXIT_FAILED;
    }
    if (!run_config_overrides(o, g_settings[k].name)) {
      cli_error(
          "--resume %s: the run was trained with %s, not %s; a resumed run "
          "goes on exactly as it began: add --override %s to change it, "
          "or start from its weights with --init",
          path, was, is, g_settings[k].name);
      return CLI_EXIT_FAILED;
    }
    cli_note("using %s instead of the run's %s (--override %s)", is, was,
             g_settings[k].name);
  }
  if (recorded == 0)
    cli_note(
        "using the options as given, defaults for the others: --resume %s "
        "records no training configuration (an earlier cudl wrote it)",
        path);
  return 0;
}
