/*
 * data_check.c - `cudl data check PATH [--strict]`: what a folder of images
 * holds, before training on it. The layout (train/val/test or one tree of
 * classes), the images per class and split, their sizes, channels and
 * formats, and every file that cannot be read with the reason. Everything
 * is read through the library (cudl_folder_layout_detect,
 * cudl_dataset_load_folder, cudl_image_probe_file), exactly as training
 * will read it.
 *
 * Exit status: 0 readable (unreadable files are listed, and skipped by
 * training); 1 no readable image in a split, the folder cannot be read,
 * a val/test class unknown to train, or with --strict any unreadable file;
 * 2 a wrong command line.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/cudl.h>

#include "cli.h"
#include "commands.h"

#define CHECK_PATH_MAX 4096

typedef struct size_count {
  int height, width;
} size_count;

static int compare_sizes(const void *x, const void *y) {
  const size_count *a = (const size_count *)x, *b = (const size_count *)y;
  if (a->height != b->height) return a->height < b->height ? -1 : 1;
  return a->width < b->width ? -1 : a->width > b->width;
}

/* What one split (or the one tree) holds. */
typedef struct split_summary {
  int64_t images, skipped, gray, colour, png, jpeg;
  size_count *sizes;
} split_summary;

static void print_sizes(size_count *sizes, int64_t n) {
  int64_t i, run = 0, best = 0;
  size_count mode = {0, 0}, lo, hi;
  if (n == 0) return;
  qsort(sizes, (size_t)n, sizeof *sizes, compare_sizes);
  lo = hi = sizes[0];
  for (i = 0; i < n; ++i) {
    if (sizes[i].height < lo.height) lo.height = sizes[i].height;
    if (sizes[i].width < lo.width) lo.width = sizes[i].width;
    if (sizes[i].height > hi.height) hi.height = sizes[i].height;
    if (sizes[i].width > hi.width) hi.width = sizes[i].width;
    run = i > 0 && compare_sizes(&sizes[i], &sizes[i - 1]) == 0 ? run + 1 : 1;
    if (run > best) {
      best = run;
      mode = sizes[i];
    }
  }
  printf("  sizes (height x width): smallest %d x %d, largest %d x %d, "
         "most common %d x %d (%lld image%s)\n",
         lo.height, lo.width, hi.height, hi.width, mode.height, mode.width,
         (long long)best, best == 1 ? "" : "s");
}

/* What training would hold in memory: every file found x channels x
 * height x width bytes (at the images' own size when they share one),
 * against the default cache limit above which the folder is streamed. */
static void print_decoded_size(const split_summary *s, int64_t skipped) {
  const uint64_t limit = cudl_folder_default_cache_bytes();
  const uint64_t files = (uint64_t)(s->images + skipped);
  const uint64_t channels = s->colour > 0 ? 3 : 1;
  int64_t i;
  int same = s->images > 0;
  for (i = 1; same && i < s->images; ++i)
    same = compare_sizes(&s->sizes[i], &s->sizes[0]) == 0;
  char size[32], limit_text[32];
  cli_format_bytes(limit, limit_text, sizeof limit_text);
  if (same) {
    const uint64_t bytes = files * channels * (uint64_t)s->sizes[0].height *
                           (uint64_t)s->sizes[0].width;
    cli_format_bytes(bytes, size, sizeof size);
    printf("  decoded: %s at %d x %d x %d, %s the default cache limit of %s "
           "(%s; --cache-limit)\n",
           size, (int)channels, s->sizes[0].height, s->sizes[0].width,
           bytes > limit ? "above" : "within", limit_text,
           bytes > limit ? "training streams it from disk"
                         : "training holds it in memory");
  } else {
    printf("  decoded: %llu bytes a pixel of --size HxW; training streams it "
           "from disk above the default cache limit of %s (--cache-limit)\n",
           (unsigned long long)(files * channels), limit_text);
  }
}

/* Check one tree of classes; with train_names, its classes must be among
 * them. Returns CLI_EXIT_OK, or CLI_EXIT_FAILED after saying why. */
static int check_tree(cudl_context *ctx, const char *label, const char *dir,
                      const cudl_dataset *train, int strict,
                      cudl_dataset **out) {
  cudl_folder_options o = cudl_folder_options_default();
  const char **names = NULL;
  cudl_dataset *ds = NULL;
  split_summary s;
  cudl_status status;
  int64_t i, *per_class;
  int c, classes, rc = CLI_EXIT_OK;
  /* Decoding to 1 x 1 gray proves every file readable without holding
   * its pixels; sizes and channels come from the headers below. */
  o.channels = 1;
  o.height = 1;
  o.width = 1;
  if (train != NULL) {
    names = (const char **)malloc((size_t)cudl_dataset_classes(train) *
                                  sizeof *names);
    if (names == NULL) {
      cli_error("out of memory");
      return CLI_EXIT_FAILED;
    }
    for (c = 0; c < cudl_dataset_classes(train); ++c)
      names[c] = cudl_dataset_class_name(train, c);
    o.class_names = names;
    o.class_count = cudl_dataset_classes(train);
  }
  status = cudl_dataset_load_folder(ctx, dir, &o, &ds);
  free((void *)names);
  if (status != CUDL_OK) return cli_fail(ctx, status, "%s", label);
  memset(&s, 0, sizeof s);
  classes = cudl_dataset_classes(ds);
  per_class = (int64_t *)calloc((size_t)classes, sizeof *per_class);
  s.sizes = (size_count *)malloc((size_t)cudl_dataset_count(ds) *
                                 sizeof *s.sizes);
  if (per_class == NULL || s.sizes == NULL) {
    free(per_class);
    free(s.sizes);
    cudl_dataset_destroy(ds);
    cli_error("out of memory");
    return CLI_EXIT_FAILED;
  }
  for (i = 0; i < cudl_dataset_count(ds); ++i) {
    cudl_image_info info;
    ++per_class[cudl_dataset_label(ds, i)];
    status = cudl_image_probe_file(ctx, cudl_dataset_source(ds, (int)i), &info);
    if (status != CUDL_OK) { /* changed since it was decoded */
      rc = cli_fail(ctx, status, "%s", cudl_dataset_source(ds, (int)i));
      continue;
    }
    s.sizes[s.images].height = info.height;
    s.sizes[s.images].width = info.width;
    ++s.images;
    if (info.channels == 1) ++s.gray; else ++s.colour;
    if (info.format == CUDL_IMAGE_FORMAT_PNG) ++s.png; else ++s.jpeg;
  }
  s.skipped = cudl_dataset_skipped_count(ds);
  printf("%s: %s\n  %lld image%s in %d class%s, %lld unreadable\n", label, dir,
         (long long)cudl_dataset_count(ds),
         cudl_dataset_count(ds) == 1 ? "" : "s", classes,
         classes == 1 ? "" : "es", (long long)s.skipped);
  for (c = 0; c < classes; ++c)
    printf("    %6lld  %s\n", (long long)per_class[c],
           cudl_dataset_class_name(ds, c));
  print_sizes(s.sizes, s.images);
  printf("  channels: %lld gray, %lld colour; formats: %lld PNG, %lld JPEG\n",
         (long long)s.gray, (long long)s.colour, (long long)s.png,
         (long long)s.jpeg);
  print_decoded_size(&s, s.skipped);
  for (i = 0; i < s.skipped; ++i) {
    const char *path, *reason;
    cudl_dataset_skipped(ds, i, &path, &reason);
    printf("  unreadable: %s: %s\n", path, reason);
  }
  if (strict && s.skipped > 0) {
    const char *path, *reason;
    cudl_dataset_skipped(ds, 0, &path, &reason);
    cli_error("--strict: %lld unreadable file%s, the first '%s': %s",
              (long long)s.skipped, s.skipped == 1 ? "" : "s", path, reason);
    rc = CLI_EXIT_FAILED;
  }
  free(per_class);
  free(s.sizes);
  if (out != NULL && rc == CLI_EXIT_OK)
    *out = ds;
  else
    cudl_dataset_destroy(ds);
  return rc;
}

static void data_usage(FILE *f) {
  fprintf(f,
          "usage: cudl data check PATH [--strict]\n"
          "  summarise a folder of PNG/JPEG images as training reads it:\n"
          "  PATH/train/<class>/... (with PATH/val, PATH/test) or "
          "PATH/<class>/...;\n"
          "  classes and images per split, sizes, channels, formats, and "
          "every\n"
          "  unreadable file with its reason (training skips them).\n"
          "  --strict  exit 1 when any file is unreadable\n"
          "  exit status 0 readable, 1 nothing readable in a split (or "
          "--strict),\n"
          "  2 bad command line\n");
}

static int data_check(const char *path, int strict) {
  cudl_context *ctx = NULL;
  cudl_folder_layout layout;
  cudl_dataset *train = NULL;
  cudl_status status;
  char split[CHECK_PATH_MAX];
  int rc;
  /* Skipped files are listed below; the library's warnings would repeat
   * them on stderr. */
  cudl_set_log_callback(NULL, NULL);
  if (cli_open_context("cpu", &ctx) != 0) return CLI_EXIT_FAILED;
  status = cudl_folder_layout_detect(ctx, path, &layout);
  if (status != CUDL_OK) {
    rc = cli_fail(ctx, status, "%s", path);
    cudl_context_destroy(ctx);
    return rc;
  }
  if (!layout.splits) {
    printf("layout: one tree of classes, %s/<class>/... (training splits it "
           "with --val-split)\n",
           path);
    rc = check_tree(ctx, "all", path, NULL, strict, NULL);
    cudl_context_destroy(ctx);
    return rc;
  }
  printf("layout: splits, %s/train%s%s\n", path,
         layout.has_val ? ", val" : " (no val: --val-split makes one)",
         layout.has_test ? ", test" : " (no test)");
  snprintf(split, sizeof split, "%s/train", path);
  rc = check_tree(ctx, "train", split, NULL, strict, &train);
  if (rc == CLI_EXIT_OK && layout.has_val) {
    snprintf(split, sizeof split, "%s/val", path);
    rc = check_tree(ctx, "val", split, train, strict, NULL);
  }
  if (layout.has_test) {
    int test_rc;
    snprintf(split, sizeof split, "%s/test", path);
    test_rc = train != NULL ? check_tree(ctx, "test", split, train, strict, NULL)
                            : CLI_EXIT_OK;
    if (test_rc != CLI_EXIT_OK) rc = test_rc;
  }
  cudl_dataset_destroy(train);
  cudl_context_destroy(ctx);
  return rc;
}

int cudl__cmd_data(int argc, char **argv) {
  const char *path = NULL;
  int strict = 0, i;
  cli_set_command("cudl data");
  if (argc >= 1 && (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    data_usage(stdout);
    return CLI_EXIT_OK;
  }
  if (argc < 1 || strcmp(argv[0], "check") != 0)
    return cli_usage_error("the one subcommand is check: cudl data check PATH "
                           "[--strict]");
  cli_set_command("cudl data check");
  for (i = 1; i < argc; ++i) {
    if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
      data_usage(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(argv[i], "--strict") == 0) {
      strict = 1;
    } else if (argv[i][0] == '-' && argv[i][1] != '\0') {
      return cli_usage_error("unknown option '%s' (cudl data check --help)",
                             argv[i]);
    } else if (path == NULL) {
      path = argv[i];
    } else {
      return cli_usage_error("one PATH, not '%s' and '%s'", path, argv[i]);
    }
  }
  if (path == NULL) return cli_usage_error("which folder? cudl data check PATH");
  return data_check(path, strict);
}
