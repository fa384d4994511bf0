/* eval.c - `cudl eval` (test loss and accuracy of a weights file) and
 * `cudl predict` (the classes of chosen test images). Both only read. */
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/cudl.h>

#include "cli.h"
#include "commands.h"
#include "run.h"
#include "settings.h"

/* The options, the run and the --weights loaded into its model: RUN_GO,
 * or the exit status (r to release with run_free either way). */
static int start(run_command command, int argc, char **argv, options *o,
                 run *r) {
  run_settings settings;
  cudl_status s;
  int rc = run_parse_options(command, argc, argv, o);
  memset(&settings, 0, sizeof settings);
  memset(r, 0, sizeof *r);
  if (rc != RUN_GO) return rc;
  if ((rc = run_setup(r, o)) != 0) return rc;
  settings.o = o;
  settings.r = r;
  settings_note(&settings);
  s = cudl_model_load(r->model, o->weights, 0);
  if (s != CUDL_OK) return cli_fail(r->ctx, s, "--weights %s", o->weights);
  return RUN_GO;
}

int cudl__cmd_eval(int argc, char **argv) {
  options o;
  run r;
  double loss = 0.0, acc = 0.0;
  int rc;
  cudl_status s;
  cli_set_command("cudl eval");
  rc = start(RUN_EVAL, argc, argv, &o, &r);
  if (rc != RUN_GO) goto out;
  s = run_make_loader(&r, &o, r.test_set, 0, &r.test_loader);
  if (s == CUDL_OK) s = run_evaluate(&r, r.test_loader, &loss, &acc);
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "evaluating");
    goto out;
  }
  {
    char model[128];
    run_model_label(&o, model, sizeof model);
    printf("%s on %s test set (%" PRId64
           " images): loss %.4f  accuracy %.4f\n",
           model, o.data, cudl_dataset_count(r.test_set), loss, acc);
  }
  rc = CLI_EXIT_OK;
out:
  run_free(&r);
  return rc;
}

/* The chosen images, normalised on the host as the loader would, into the
 * batch tensor. */
static cudl_status load_images(run *r, const options *o) {
  const int64_t per = cudl_tensor_numel(r->x) / r->batch;
  const int64_t plane = per / r->channels;
  float *host = (float *)malloc((size_t)cudl_tensor_nbytes(r->x));
  /* Read, not pointed at: a streamed folder has no pixels in memory. */
  uint8_t *px = (uint8_t *)malloc((size_t)per);
  cudl_status s = CUDL_OK;
  int64_t i, k;
  if (host == NULL || px == NULL) {
    free(host);
    free(px);
    return CUDL_ERR_OUT_OF_MEMORY;
  }
  for (i = 0; i < r->batch; ++i) {
    s = cudl_dataset_image_read(r->test_set, o->index + i, px);
    if (s != CUDL_OK) {
      free(host);
      free(px);
      return s;
    }
    for (k = 0; k < per; ++k) {
      const int c = (int)(k / plane);
      host[i * per + k] = ((float)px[k] / 255.0f - r->mean[c]) / r->std[c];
    }
  }
  s = cudl_tensor_copy_from_host(r->x, host, cudl_tensor_nbytes(r->x));
  free(host);
  free(px);
  return s;
}

/* The name of class k: the weights file's, else the dataset's, else its
 * number. */
static const char *class_name(const run *r, int64_t k, char *buf,
                              size_t size) {
  const char *name = NULL;
  if (r->weights_classes != NULL && k < r->weights_class_count)
    name = r->weights_classes[k];
  else if (r->test_set != NULL)
    name = cudl_dataset_class_name(r->test_set, (int)k);
  if (name != NULL) return name;
  snprintf(buf, size, "%" PRId64, k);
  return buf;
}

/* --image FILE: decoded, converted and resized to the model's input as
 * the folder reader does (docs/data.md), normalised with the weights'
 * statistics. */
static cudl_status load_image_file(run *r, const options *o) {
  const int64_t per = cudl_tensor_numel(r->x);
  const int64_t plane = per / r->channels;
  uint8_t *px = (uint8_t *)malloc((size_t)per);
  float *host = (float *)malloc((size_t)per * sizeof(float));
  cudl_status s = CUDL_ERR_OUT_OF_MEMORY;
  int64_t k;
  if (px != NULL && host != NULL)
    s = cudl_image_load(r->ctx, o->image, r->channels, r->height, r->width,
                        px);
  if (s == CUDL_OK) {
    for (k = 0; k < per; ++k) {
      const int c = (int)(k / plane);
      host[k] = ((float)px[k] / 255.0f - r->mean[c]) / r->std[c];
    }
    s = cudl_tensor_copy_from_host(r->x, host, (size_t)per * sizeof(float));
  }
  free(px);
  free(host);
  return s;
}

/* Row `row` of the logits: the --top classes by probability, one line
 * each after the first ("name: class NAME (p = P)"). */
static void print_top(const run *r, const options *o, const float *row,
                      const char *name, int label) {
  const int top = o->top < r->classes ? o->top : (int)r->classes;
  double sum = 0.0;
  int64_t k, best = 0;
  int shown;
  char *taken = (char *)calloc((size_t)r->classes, 1);
  char buf[32];
  for (k = 1; k < r->classes; ++k)
    if (row[k] > row[best]) best = k;
  for (k = 0; k < r->classes; ++k) sum += exp((double)row[k] - row[best]);
  for (shown = 0; shown < top; ++shown) {
    int64_t pick = -1;
    for (k = 0; k < r->classes; ++k)
      if ((taken == NULL || !taken[k]) && (pick < 0 || row[k] > row[pick]))
        pick = k;
    if (pick < 0) break;
    if (taken != NULL) taken[pick] = 1;
    if (shown == 0)
      printf("%s: class %s (p = %.3f)", name,
             class_name(r, pick, buf, sizeof buf),
             exp((double)row[pick] - row[best]) / sum);
    else
      printf("  %d. %s (p = %.3f)", shown + 1,
             class_name(r, pick, buf, sizeof buf),
             exp((double)row[pick] - row[best]) / sum);
    if (shown == 0 && label >= 0)
      printf(", label %s", class_name(r, label, buf, sizeof buf));
    printf("\n");
    if (taken == NULL) break;
  }
  free(taken);
}

int cudl__cmd_predict(int argc, char **argv) {
  options o;
  run r;
  int rc;
  int64_t i;
  cudl_status s;
  cli_set_command("cudl predict");
  rc = start(RUN_PREDICT, argc, argv, &o, &r);
  if (rc != RUN_GO) goto out;
  s = cudl_model_set_training(r.model, 0);
  if (s == CUDL_OK) s = o.image != NULL ? load_image_file(&r, &o)
                                        : load_images(&r, &o);
  if (s == CUDL_OK) s = cudl_model_forward(r.model, r.x, NULL, NULL);
  if (s == CUDL_OK)
    s = cudl_tensor_copy_to_host(cudl_model_output(r.model), r.logits,
                                 (size_t)(r.batch * r.classes) * sizeof(float));
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, o.image != NULL ? "--image %s" : "predicting%s",
                  o.image != NULL ? o.image : "");
    goto out;
  }
  for (i = 0; i < r.batch; ++i) {
    char name[48];
    if (o.image != NULL) {
      print_top(&r, &o, r.logits, o.image, -1);
    } else {
      snprintf(name, sizeof name, "image %" PRId64, o.index + i);
      print_top(&r, &o, r.logits + i * r.classes, name,
                cudl_dataset_label(r.test_set, o.index + i));
    }
  }
  rc = CLI_EXIT_OK;
out:
  run_free(&r);
  return rc;
}
