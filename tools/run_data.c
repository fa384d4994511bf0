/* run_data.c - the datasets of `cudl train`, `cudl eval` and `cudl
 * predict`: a named dataset (fashion-mnist, mnist, cifar10) or a folder of
 * the user's images (--data folder:PATH, docs/data.md), with the folder's
 * skipped files listed and the class names kept for the files a run
 * writes. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/cudl.h>

#include "cli.h"
#include "run_data.h"

#define FOLDER_PREFIX "folder:"

int run_data_is_folder(const options *o) {
  return strncmp(o->data, FOLDER_PREFIX, strlen(FOLDER_PREFIX)) == 0;
}

static const char *folder_path(const options *o) {
  return o->data + strlen(FOLDER_PREFIX);
}

/* The last component of path, without a trailing '/' and without
 * `suffix` when it ends with it. */
static void last_component(const char *path, const char *suffix, char *out,
                           size_t size) {
  size_t end = strlen(path), start, n;
  while (end > 1 && path[end - 1] == '/') --end;
  start = end;
  while (start > 0 && path[start - 1] != '/') --start;
  n = end - start;
  if (suffix != NULL && n > strlen(suffix) &&
      strncmp(path + end - strlen(suffix), suffix, strlen(suffix)) == 0)
    n -= strlen(suffix);
  if (n >= size) n = size - 1;
  memcpy(out, path + start, n);
  out[n] = '\0';
  if (out[0] == '\0' || strcmp(out, ".") == 0 || strcmp(out, "..") == 0 ||
      strcmp(out, "/") == 0)
    snprintf(out, size, "%s", "data");
}

void run_data_label(const options *o, char *label, size_t size) {
  if (run_data_is_folder(o))
    last_component(folder_path(o), NULL, label, size);
  else
    snprintf(label, size, "%s", o->data);
}

void run_model_label(const options *o, char *label, size_t size) {
  if (o->model_file != NULL)
    last_component(o->model_file, ".json", label, size);
  else
    snprintf(label, size, "%s", o->model);
}

/* The count of the files of ds that could not be read (the library's
 * warnings have named each, through the log). */
static void note_skipped(const cudl_dataset *ds, const char *tree) {
  const int64_t n = cudl_dataset_skipped_count(ds);
  if (n > 0)
    cli_note("skipped %" PRId64 " unreadable file%s of %s (--strict makes one "
             "an error)",
             n, n == 1 ? "" : "s", tree);
}

/* Say that tree is streamed from disk and why: its decoded size (every
 * file found, as the library counts it) against the cache limit. */
static void note_streamed(const cudl_dataset *ds, const options *o,
                          uint64_t budget, const char *tree) {
  const int64_t files = cudl_dataset_count(ds) + cudl_dataset_skipped_count(ds);
  const uint64_t decoded = (uint64_t)files *
                           (uint64_t)cudl_dataset_channels(ds) *
                           (uint64_t)cudl_dataset_height(ds) *
                           (uint64_t)cudl_dataset_width(ds);
  char size[32], limit[32];
  if (!cudl_dataset_streamed(ds)) return;
  cli_format_bytes(decoded, size, sizeof size);
  cli_format_bytes(budget, limit, sizeof limit);
  if (o->cache_limit_given && o->cache_limit == 0)
    cli_note("%s is streamed (--cache-limit 0): its images (%s decoded) are "
             "decoded from disk for every batch",
             tree, size);
  else if (decoded > budget)
    cli_note("%s is streamed: its %" PRId64 " files decode to %s, above the "
             "cache limit of %s (%s); its images are decoded from disk for "
             "every batch",
             tree, files, size, limit,
             o->cache_limit_given ? "--cache-limit"
                                  : "half of the available memory; "
                                    "--cache-limit sets it");
  else
    cli_note("%s is streamed: its %" PRId64 " files decode to %s, more than "
             "could be allocated; its images are decoded from disk for every "
             "batch",
             tree, files, size);
}

/* One tree of classes: dir/<class>/... . classes_of, else class_list
 * (either may be NULL), gives the class names to map onto: a val/ or test/
 * tree takes train/'s labels, or those of the weights evaluated. */
static int load_tree(run *r, const options *o, const char *dir, int channels,
                     int height, int width, const cudl_dataset *classes_of,
                     const char *const *class_list, int class_count,
                     cudl_dataset **out) {
  cudl_folder_options f = cudl_folder_options_default();
  const char **names = NULL;
  int k, rc = 0;
  cudl_status s;
  f.channels = channels;
  f.height = height;
  f.width = width;
  f.strict = o->strict;
  if (o->cache_limit_given) {
    f.stream = o->cache_limit == 0;
    f.max_cache_bytes = o->cache_limit;
  }
  /* The budget that the load will use, for the note (read once: the
   * memory available changes). */
  if (f.max_cache_bytes == 0)
    f.max_cache_bytes = cudl_folder_default_cache_bytes();
  if (classes_of != NULL) {
    f.class_count = cudl_dataset_classes(classes_of);
    names = (const char **)calloc((size_t)f.class_count, sizeof *names);
    if (names == NULL) {
      cli_error("out of host memory for %d class names", f.class_count);
      return CLI_EXIT_FAILED;
    }
    for (k = 0; k < f.class_count; ++k)
      names[k] = cudl_dataset_class_name(classes_of, k);
    f.class_names = names;
  } else if (class_list != NULL) {
    f.class_count = class_count;
    f.class_names = class_list;
  }
  s = cudl_dataset_load_folder(r->ctx, dir, &f, out);
  if (s != CUDL_OK) {
    rc = cli_fail(r->ctx, s, "--data %s: reading %s", o->data, dir);
  } else {
    note_skipped(*out, dir);
    note_streamed(*out, o, f.max_cache_bytes, dir);
  }
  free(names);
  return rc;
}

/* PATH joined with a split's name. */
static char *join(const char *path, const char *name) {
  const size_t n = strlen(path) + strlen(name) + 2;
  char *out = (char *)malloc(n);
  if (out != NULL) snprintf(out, n, "%s/%s", path, name);
  return out;
}

static int load_folder(run *r, const options *o, int channels, int height,
                       int width) {
  const int training = o->command == RUN_TRAIN;
  const char *path = folder_path(o);
  cudl_folder_layout layout;
  char *train_dir = NULL, *val_dir = NULL, *test_dir = NULL;
  int rc = 0;
  cudl_status s = cudl_folder_layout_detect(r->ctx, path, &layout);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "--data %s", o->data);
  if (!layout.splits) {
    /* One tree: all of it is training data, and validation is what
     * --val-split holds out; there is no test set. */
    if (!training)
      return cli_fail(NULL, CUDL_ERR_IO,
                      "--data %s is one tree of classes without a test/ "
                      "folder: %s evaluates PATH/test/<class>/...",
                      o->data,
                      o->command == RUN_EVAL ? "cudl eval"
                                             : "cudl predict --index");
    if (o->val_split <= 0.0)
      return cli_usage_error(
          "--data %s is one tree of classes (no train/ and test/ folders): "
          "give --val-split F to hold out validation images",
          o->data);
    return load_tree(r, o, path, channels, height, width, NULL, NULL, 0,
                     &r->train_set);
  }
  train_dir = join(path, "train");
  val_dir = join(path, "val");
  test_dir = join(path, "test");
  if (train_dir == NULL || val_dir == NULL || test_dir == NULL) {
    cli_error("out of host memory");
    rc = CLI_EXIT_FAILED;
    goto out;
  }
  if (training && layout.has_val && o->val_split > 0.0) {
    rc = cli_usage_error(
        "--data %s has a val/ folder: --val-split would hold out other "
        "images; use one or the other",
        o->data);
    goto out;
  }
  if (!training && !layout.has_test) {
    rc = cli_fail(NULL, CUDL_ERR_IO,
                  "--data %s has no test/ folder to evaluate", o->data);
    goto out;
  }
  /* train/ decides the classes, channels and size (unless given); val/
   * and test/ are read to match it. Evaluation reads test/ with the
   * model's. */
  if (training) {
    rc = load_tree(r, o, train_dir, channels, height, width, NULL, NULL, 0,
                   &r->train_set);
    if (rc != 0) goto out;
    channels = cudl_dataset_channels(r->train_set);
    height = cudl_dataset_height(r->train_set);
    width = cudl_dataset_width(r->train_set);
    if (layout.has_val &&
        (rc = load_tree(r, o, val_dir, channels, height, width, r->train_set,
                        NULL, 0, &r->val_set)) != 0)
      goto out;
  }
  if (layout.has_test)
    rc = load_tree(r, o, test_dir, channels, height, width, r->train_set,
                   (const char *const *)r->weights_classes,
                   r->weights_class_count, &r->test_set);
out:
  free(train_dir);
  free(val_dir);
  free(test_dir);
  return rc;
}

/* The class names of ds as a JSON array, or NULL when it has none. */
static char *class_names_json(const cudl_dataset *ds) {
  const int n = cudl_dataset_classes(ds);
  size_t size = 3, used = 0;
  char *out;
  int k;
  if (n <= 0 || cudl_dataset_class_name(ds, 0) == NULL) return NULL;
  for (k = 0; k < n; ++k) {
    const char *name = cudl_dataset_class_name(ds, k);
    if (name == NULL) return NULL;
    size += 2 * strlen(name) * 3 + 4; /* worst case: every byte \u00XX */
  }
  out = (char *)malloc(size);
  if (out == NULL) return NULL;
  out[used++] = '[';
  for (k = 0; k < n; ++k) {
    const unsigned char *c =
        (const unsigned char *)cudl_dataset_class_name(ds, k);
    if (k > 0) out[used++] = ',';
    out[used++] = '"';
    for (; *c != '\0'; ++c) {
      if (*c == '"' || *c == '\\') {
        out[used++] = '\\';
        out[used++] = (char)*c;
      } else if (*c < 0x20) {
        used += (size_t)snprintf(out + used, size - used, "\\u%04x", *c);
      } else {
        out[used++] = (char)*c;
      }
    }
    out[used++] = '"';
  }
  out[used++] = ']';
  out[used] = '\0';
  return out;
}

int run_load_data(run *r, const options *o, int channels, int height,
                  int width) {
  const int training = o->command == RUN_TRAIN;
  cudl_status s;
  int rc;
  if (run_data_is_folder(o)) {
    if (o->size_h > 0) {
      height = o->size_h;
      width = o->size_w;
    }
    rc = load_folder(r, o, channels, height, width);
    if (rc != 0) return rc;
  } else {
    if (o->cache_limit_given)
      return cli_usage_error(
          "--cache-limit bounds the memory of a folder's images (--data "
          "folder:PATH); %s is read into memory whole",
          o->data);
    if (training) {
      s = cudl_dataset_load(r->ctx, o->data, o->data_dir, 1, &r->train_set);
      if (s != CUDL_OK) return cli_fail(r->ctx, s, "loading the training set");
    }
    s = cudl_dataset_load(r->ctx, o->data, o->data_dir, 0, &r->test_set);
    if (s != CUDL_OK) return cli_fail(r->ctx, s, "loading the test set");
  }
  r->class_names =
      class_names_json(r->train_set != NULL ? r->train_set : r->test_set);
  return 0;
}
