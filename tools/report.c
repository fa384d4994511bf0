/* report.c - the progress line, the epoch summaries and the metrics file
 * of a training run (report.h). */
#include "report.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A progress line is on the terminal without its newline yet. */
static int g_progress_open = 0;

void report_end_progress(void) {
  if (g_progress_open) fputc('\n', stderr);
  g_progress_open = 0;
}

int report_open(report *rep, const options *o, const run_files *files,
                cudl_model *model, int64_t steps_done) {
  rep->o = o;
  rep->files = files;
  if (o->diagnostics > 0) {
    cudl_status s;
    rep->diag_capacity = cudl_model_node_count(model);
    rep->diag_rows = (cudl_layer_diagnostics *)calloc(
        (size_t)rep->diag_capacity, sizeof *rep->diag_rows);
    s = rep->diag_rows == NULL ? CUDL_ERR_OUT_OF_MEMORY
                               : cudl_model_set_diagnostics_after(
                                     model, o->diagnostics, steps_done);
    if (s != CUDL_OK)
      return cli_fail(cudl_model_context(model), s, "diagnostics");
  }
  return 0;
}

int report_open_metrics(report *rep) {
  const options *o = rep->o;
  if (o->metrics == NULL) return 0;
  if (!cli_file_open_lines(&rep->metrics, "the metrics file", o->metrics,
                           o->resume != NULL))
    return CLI_EXIT_FAILED;
  rep->has_metrics = 1;
  if (o->resume != NULL && !cli_file_end_torn_line(&rep->metrics)) {
    cli_error("writing the metrics file %s failed: %s", o->metrics,
              strerror(rep->metrics.error));
    return CLI_EXIT_FAILED;
  }
  return 0;
}

int report_close(report *rep, int keep) {
  int ok = 1;
  if (rep->has_metrics) ok = cli_file_close(&rep->metrics, keep);
  rep->has_metrics = 0;
  free(rep->diag_rows);
  rep->diag_rows = NULL;
  return ok;
}

/* ---- metrics lines ---- */

/* A double for JSON: null where it is not a number. */
static void json_number(FILE *f, const char *key, double v) {
  if (isfinite(v))
    fprintf(f, ", \"%s\": %.6g", key, v);
  else
    fprintf(f, ", \"%s\": null", key);
}

/* A metrics line is composed in memory (open_memstream: NULL when out of
 * memory) and written whole by put_metrics_line. */
static FILE *metrics_line(char **text, size_t *size) {
  *text = NULL;
  *size = 0;
  return open_memstream(text, size);
}

/* Write the line composed in line to the metrics file and free it: all of
 * it or, on failure, nothing, and the run fails (exit status returned). */
static int put_metrics_line(report *rep, FILE *line, char **text,
                            size_t *size) {
  char kept[1300];
  int ok = line != NULL && fclose(line) == 0 && *text != NULL &&
           cli_file_write_line(&rep->metrics, *text, *size);
  const int error = rep->metrics.error != 0 ? rep->metrics.error : ENOMEM;
  free(*text);
  *text = NULL;
  if (ok) return 0;
  cli_error("writing the metrics file %s failed: %s. Stopping; %s",
            rep->o->metrics, strerror(error),
            /* rank 0 alone writes the metrics */
            run_files_kept(rep->files, 0, kept, sizeof kept));
  return CLI_EXIT_FAILED;
}

/* One metrics line of printf's format (given without its newline). */
static int metrics_printf(report *rep, const char *fmt, ...) CLI_PRINTF(2, 3);
static int metrics_printf(report *rep, const char *fmt, ...) {
  char *text;
  size_t size;
  va_list args;
  FILE *f = metrics_line(&text, &size);
  if (f != NULL) {
    va_start(args, fmt);
    vfprintf(f, fmt, args);
    va_end(args);
  }
  return put_metrics_line(rep, f, &text, &size);
}

int report_run(report *rep, const run_settings *settings) {
  rep->pending_run = settings;
  return 0;
}

/* The run line goes before the run's first other line: a run that fails
 * before writing any leaves its metrics file empty, and so removed. */
static int put_run_line(report *rep) {
  char *text = NULL;
  size_t size = 0;
  FILE *f;
  const run_settings *settings = rep->pending_run;
  if (settings == NULL) return 0;
  rep->pending_run = NULL;
  f = metrics_line(&text, &size);
  if (f != NULL) settings_json(f, settings);
  return put_metrics_line(rep, f, &text, &size);
}

int report_step(report *rep, int64_t step, int64_t epoch, double loss,
                double lr, double loss_scale) {
  int rc;
  if (!rep->has_metrics) return 0;
  if ((rc = put_run_line(rep)) != 0) return rc;
  return metrics_printf(rep,
                        "{\"type\": \"step\", \"step\": %" PRId64
                        ", \"epoch\": %" PRId64
                        ", \"loss\": %.6f, \"lr\": %.6g, "
                        "\"loss_scale\": %.9g}",
                        step, epoch, loss, lr, loss_scale);
}

int report_diagnostics(report *rep, cudl_context *ctx, cudl_model *model,
                       int64_t step, int64_t epoch) {
  char *text = NULL;
  size_t size = 0;
  int count = 0, i;
  int64_t steps = 0;
  FILE *f;
  cudl_status s = cudl_model_diagnostics(model, rep->diag_rows,
                                         rep->diag_capacity, &count, &steps);
  if (s != CUDL_OK) return cli_fail(ctx, s, "diagnostics");
  if ((i = put_run_line(rep)) != 0) return i;
  f = metrics_line(&text, &size);
  if (f == NULL) return put_metrics_line(rep, NULL, &text, &size);
  fprintf(f,
          "{\"type\": \"diagnostics\", \"step\": %" PRId64
          ", \"epoch\": %" PRId64 ", \"window_steps\": %" PRId64
          ", \"layers\": [",
          step, epoch, steps);
  for (i = 0; i < count; ++i) {
    const cudl_layer_diagnostics *row = &rep->diag_rows[i];
    fprintf(f, "%s{\"node\": %d, \"layer\": \"%s\", \"kind\": \"%s\"",
            i ? ", " : "", row->node, row->name, row->kind);
    json_number(f, "output_mean", row->output_mean);
    json_number(f, "output_std", row->output_std);
    json_number(f, "weight_grad_norm", row->weight_grad_norm);
    json_number(f, "input_grad_norm", row->input_grad_norm);
    json_number(f, "saturated_fraction", row->saturated_fraction);
    json_number(f, "dead_fraction", row->dead_fraction);
    fputc('}', f);
  }
  fprintf(f, "]}");
  return put_metrics_line(rep, f, &text, &size);
}

/* ---- the terminal ---- */

void report_progress(report *rep, const report_progress_values *v,
                     int epoch_done) {
  double left;
  /* Calls come each --sync-every batches: a line off a terminal when they
   * passed a multiple of 50. */
  if (!(rep->tty || epoch_done || v->batch / 50 > (v->batch - v->since) / 50))
    return;
  left = (double)v->batches_left * (double)v->batch_size /
         (v->images_per_second > 0.0 ? v->images_per_second : 1.0);
  fprintf(stderr,
          "\r epoch %" PRId64 "/%" PRId64 "  step %" PRId64 "/%" PRId64
          "  loss %.4f  acc %.4f",
          v->epoch, v->epochs, v->batch, v->batches, v->loss, v->accuracy);
  if (rep->has_last_val)
    fprintf(stderr, "  (last val loss %.4f  acc %.4f)", rep->last_val_loss,
            rep->last_val_accuracy);
  fprintf(stderr, "  %.0f img/s  ETA %02d:%02d  ", v->images_per_second,
          (int)(left / 60.0), (int)fmod(left, 60.0));
  fflush(stderr);
  if (rep->tty)
    g_progress_open = 1;
  else
    fputc('\n', stderr);
}

/* ", \"key\": value" pairs for the evaluated sets of an epoch or the end,
 * into a metrics line. */
static void json_pair(FILE *f, const char *key, double v, const char *fmt) {
  fprintf(f, ", \"%s\": ", key);
  if (isfinite(v))
    fprintf(f, fmt, v);
  else
    fputs("null", f);
}

int report_epoch(report *rep, const report_epoch_values *v) {
  char *text = NULL;
  size_t size = 0;
  FILE *f;
  report_end_progress();
  printf("epoch %" PRId64 "/%" PRId64 "  train loss %.4f  train acc %.4f",
         v->epoch, v->epochs, v->train_loss, v->train_accuracy);
  if (v->has_val)
    printf("  val loss %.4f  val acc %.4f%s", v->val_loss, v->val_accuracy,
           v->best_epoch == v->epoch ? " (best)" : "");
  if (v->has_test)
    printf("  test loss %.4f  test acc %.4f", v->test_loss, v->test_accuracy);
  printf("  %.0f img/s  %.1f s\n", v->images_per_second, v->seconds);
  fflush(stdout);
  if (!rep->has_metrics) return 0;
  if (put_run_line(rep) != 0) return CLI_EXIT_FAILED;
  f = metrics_line(&text, &size);
  if (f == NULL) return put_metrics_line(rep, NULL, &text, &size);
  fprintf(f, "{\"type\": \"epoch\", \"epoch\": %" PRId64 ", \"step\": %" PRId64,
          v->epoch, v->step);
  json_pair(f, "train_loss", v->train_loss, "%.6f");
  json_pair(f, "train_accuracy", v->train_accuracy, "%.6f");
  if (v->has_val) {
    json_pair(f, "val_loss", v->val_loss, "%.6f");
    json_pair(f, "val_accuracy", v->val_accuracy, "%.6f");
    fprintf(f, ", \"best_epoch\": %" PRId64, v->best_epoch);
  }
  if (v->has_test) {
    json_pair(f, "test_loss", v->test_loss, "%.6f");
    json_pair(f, "test_accuracy", v->test_accuracy, "%.6f");
  }
  fprintf(f,
          ", \"images_per_second\": %.1f, \"seconds\": %.3f, "
          "\"precision\": \"%s\", \"loss_scale\": %.9g, "
          "\"skipped_steps\": %" PRId64 ", \"layout\": \"%s\"}",
          v->images_per_second, v->seconds, cudl_precision_name(v->precision),
          v->loss_scale, v->skipped_steps, cudl_layout_name(v->layout));
  return put_metrics_line(rep, f, &text, &size);
}

int report_end(report *rep, const report_end_values *v) {
  char *text = NULL;
  size_t size = 0;
  FILE *f;
  report_end_progress();
  if (v->has_test)
    printf("final test accuracy %.4f after %" PRId64 " epoch%s",
           v->test_accuracy, v->epoch, v->epoch == 1 ? "" : "s");
  else
    printf("done after %" PRId64 " epoch%s (no test set)", v->epoch,
           v->epoch == 1 ? "" : "s");
  if (strcmp(v->reason, "steps") == 0)
    printf(" and %" PRId64 " steps (--steps)", v->step);
  printf(" (%.1f s); weights in %s\n", v->seconds, v->weights);
  if (v->best_weights != NULL)
    printf("best validation accuracy %.4f at epoch %" PRId64
           "; weights in %s\n",
           v->best.val_accuracy, v->best.epoch, v->best_weights);
  fflush(stdout);
  if (!rep->has_metrics) return 0;
  if (put_run_line(rep) != 0) return CLI_EXIT_FAILED;
  f = metrics_line(&text, &size);
  if (f == NULL) return put_metrics_line(rep, NULL, &text, &size);
  fprintf(f,
          "{\"type\": \"end\", \"reason\": \"%s\", \"epoch\": %" PRId64
          ", \"step\": %" PRId64,
          v->reason, v->epoch, v->step);
  if (v->has_test) {
    json_pair(f, "test_loss", v->test_loss, "%.6f");
    json_pair(f, "test_accuracy", v->test_accuracy, "%.6f");
  }
  if (v->best.epoch > 0) {
    fprintf(f, ", \"best_epoch\": %" PRId64, v->best.epoch);
    json_pair(f, "best_val_loss", v->best.val_loss, "%.6f");
    json_pair(f, "best_val_accuracy", v->best.val_accuracy, "%.6f");
  }
  fprintf(f, "}");
  return put_metrics_line(rep, f, &text, &size);
}
