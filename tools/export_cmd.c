/* export_cmd.c - `cudl export`: a weights file as an ONNX file
 * (cudl_model_export_onnx), with what the weights file says about its
 * data (class names, normalisation) in the ONNX metadata. */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "cli_file.h"
#include "commands.h"

/* What a weights file of cudl train holds about its data and the ONNX
 * file carries on: the same keys, the same texts (docs/deploy.md). */
static const char *const carried_keys[] = {"model", "dataset", "classes",
                                           "normalize.mean", "normalize.std"};
#define CARRIED_COUNT (sizeof carried_keys / sizeof carried_keys[0])

static void usage(FILE *out) {
  fprintf(out,
          "usage: cudl export --weights FILE --onnx OUT.onnx "
          "[--probabilities]\n"
          "\n"
          "Writes the network of a weights file or checkpoint that cudl "
          "wrote (it holds\n"
          "its architecture) as an ONNX file (opset %d), for other "
          "inference engines.\n"
          "The ONNX model takes the normalised input \"input\" "
          "[N, C, H, W] and gives\n"
          "\"output\" (the logits); the file's class names and "
          "normalisation go into its\n"
          "metadata. docs/deploy.md describes the file.\n"
          "\n"
          "  --weights FILE      the weights file or checkpoint to export\n"
          "  --onnx OUT          where to write the ONNX file, replaced "
          "atomically\n"
          "  --probabilities     also the output \"probabilities\" "
          "(softmax, or sigmoid\n"
          "                      for a binary cross-entropy model)\n",
          CUDL_ONNX_OPSET);
}

static cudl_status write_stream(void *user, const void *data, size_t size) {
  return fwrite(data, 1, size, (FILE *)user) == size ? CUDL_OK : CUDL_ERR_IO;
}

int cudl__cmd_export(int argc, char **argv) {
  const char *weights = NULL, *onnx = NULL;
  cudl_context *ctx = NULL;
  cudl_model *m = NULL;
  cudl_safetensors *header = NULL;
  cudl_metadata_pair pairs[CARRIED_COUNT];
  cudl_onnx_options options;
  cudl_status s;
  cli_file out;
  int i, out_open = 0, rc = CLI_EXIT_FAILED;
  size_t k;
  memset(&options, 0, sizeof options);
  cli_set_command("cudl export");
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(a, "--probabilities") == 0) {
      options.probabilities = 1;
      continue;
    }
    if (strcmp(a, "--weights") != 0 && strcmp(a, "--onnx") != 0)
      return cli_usage_error("unknown option '%s' (cudl export --help)", a);
    if (v == NULL)
      return cli_usage_error("%s needs a value (cudl export --help)", a);
    if (strcmp(a, "--weights") == 0)
      weights = v;
    else
      onnx = v;
    ++i;
  }
  if (weights == NULL || onnx == NULL)
    return cli_usage_error("give --weights FILE and --onnx OUT (cudl export "
                           "--help)");
  if (cli_same_file(weights, onnx))
    return cli_usage_error("--onnx %s is the weights file itself", onnx);
  if (cli_open_context("cpu", &ctx) != 0) return CLI_EXIT_FAILED;
  s = cudl_safetensors_load(ctx, weights, CUDL_SAFETENSORS_HEADER_ONLY,
                            &header);
  if (s != CUDL_OK) {
    rc = cli_fail(ctx, s, "--weights %s", weights);
    goto done;
  }
  for (k = 0; k < CARRIED_COUNT; ++k) {
    const char *value = cudl_safetensors_metadata_find(header, carried_keys[k]);
    if (value == NULL) continue;
    pairs[options.metadata_count].key = carried_keys[k];
    pairs[options.metadata_count].value = value;
    ++options.metadata_count;
  }
  options.metadata = pairs;
  s = cudl_model_load_file(ctx, weights, 1, &m);
  if (s != CUDL_OK) {
    rc = cli_fail(ctx, s, "--weights %s", weights);
    goto done;
  }
  if (!cli_file_open_whole(&out, "the ONNX file", onnx)) goto done;
  out_open = 1;
  s = cudl_model_export_onnx(m, &options, write_stream, cli_file_stream(&out));
  if (s == CUDL_ERR_IO) {
    cli_error("cannot write the ONNX file %s: %s", onnx, strerror(errno));
    goto done;
  }
  if (s != CUDL_OK) {
    rc = cli_fail(ctx, s, "exporting %s", weights);
    goto done;
  }
  out_open = 0;
  if (cli_file_close(&out, 1)) rc = CLI_EXIT_OK;
done:
  if (out_open) cli_file_close(&out, 0);
  cudl_model_destroy(m);
  cudl_safetensors_destroy(header);
  cudl_context_destroy(ctx);
  return rc;
}
