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
  printf("%s on %s test set (%" PRId64 " images): loss %.4f  accuracy %.4f\n",
         o.model, o.data, cudl_dataset_count(r.test_set), loss, acc);
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
  cudl_status s;
  int64_t i, k;
  if (host == NULL) return CUDL_ERR_OUT_OF_MEMORY;
  for (i = 0; i < r->batch; ++i) {
    const uint8_t *px = cudl_dataset_image(r->test_set, o->index + i);
    for (k = 0; k < per; ++k) {
      const int c = (int)(k / plane);
      host[i * per + k] = ((float)px[k] / 255.0f - r->mean[c]) / r->std[c];
    }
  }
  s = cudl_tensor_copy_from_host(r->x, host, cudl_tensor_nbytes(r->x));
  free(host);
  return s;
}

int cudl__cmd_predict(int argc, char **argv) {
  options o;
  run r;
  int rc;
  int64_t i, k;
  cudl_status s;
  cli_set_command("cudl predict");
  rc = start(RUN_PREDICT, argc, argv, &o, &r);
  if (rc != RUN_GO) goto out;
  s = cudl_model_set_training(r.model, 0);
  if (s == CUDL_OK) s = load_images(&r, &o);
  if (s == CUDL_OK) s = cudl_model_forward(r.model, r.x, NULL, NULL);
  if (s == CUDL_OK)
    s = cudl_tensor_copy_to_host(cudl_model_output(r.model), r.logits,
                                 (size_t)(r.batch * r.classes) * sizeof(float));
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "predicting");
    goto out;
  }
  for (i = 0; i < r.batch; ++i) {
    const float *row = r.logits + i * r.classes;
    double sum = 0.0;
    int64_t best = 0;
    for (k = 1; k < r.classes; ++k)
      if (row[k] > row[best]) best = k;
    for (k = 0; k < r.classes; ++k) sum += exp((double)row[k] - row[best]);
    printf("image %" PRId64 ": class %" PRId64 " (p = %.3f), label %d\n",
           o.index + i, best, 1.0 / sum,
           cudl_dataset_label(r.test_set, o.index + i));
  }
  rc = CLI_EXIT_OK;
out:
  run_free(&r);
  return rc;
}
