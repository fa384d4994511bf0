/* model_cmd.c - `cudl model describe`: the model file (docs/model-files.md)
 * of a zoo model, or the canonical form of a model file, which checks it:
 * the files in examples/models/ are this command's output. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "cli_file.h"
#include "commands.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: cudl model describe --model NAME [--input CxHxW] "
          "[--classes K]\n"
          "                           [--dropout P] [--output FILE]\n"
          "       cudl model describe --model-file FILE [--output FILE]\n"
          "\n"
          "Writes the model file of a zoo model, or reads a model file and "
          "writes its\n"
          "canonical form (one layer per line, defaults left out): a file "
          "that does not\n"
          "build gives a one-line error naming its line and column or the "
          "path of the\n"
          "bad value. docs/model-files.md describes the format.\n"
          "\n"
          "  --model NAME        small-cnn, mlp, resnetN or plainN (N = 6n + "
          "2)\n"
          "  --input CxHxW       the per-sample input [1x28x28]\n"
          "  --classes K         the classes of the output layer [10]\n"
          "  --dropout P         small-cnn's dropout [0]\n"
          "  --model-file FILE   a model file to read instead\n"
          "  --output FILE       where to write it, replaced atomically [-: "
          "standard output]\n");
}

/* "CxHxW" into shape; 1 on success. */
static int parse_input(const char *text, int64_t shape[3]) {
  char copy[64];
  char *part, *rest = NULL;
  int i;
  long long value;
  if (strlen(text) >= sizeof copy) return 0;
  strcpy(copy, text);
  part = strtok_r(copy, "x", &rest);
  for (i = 0; i < 3; ++i) {
    if (part == NULL || !cli_parse_int(part, 1, 1LL << 24, &value)) return 0;
    shape[i] = value;
    part = strtok_r(NULL, "x", &rest);
  }
  return part == NULL;
}

static int describe(int argc, char **argv) {
  const char *model = NULL, *model_file = NULL, *output = "-";
  int64_t shape[3] = {1, 28, 28};
  long long classes = 10;
  double dropout = 0.0;
  cudl_context *ctx = NULL;
  cudl_model *m = NULL;
  cudl_status s;
  char *text = NULL;
  size_t length = 0;
  cli_file out;
  int i, rc = CLI_EXIT_FAILED;
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      usage(stdout);
      return CLI_EXIT_OK;
    }
    if (v == NULL)
      return cli_usage_error("%s needs a value (cudl model describe --help)",
                             a);
    if (strcmp(a, "--model") == 0) {
      model = v;
    } else if (strcmp(a, "--model-file") == 0) {
      model_file = v;
    } else if (strcmp(a, "--output") == 0) {
      output = v;
    } else if (strcmp(a, "--input") == 0) {
      if (!parse_input(v, shape))
        return cli_usage_error(
            "--input %s: need CxHxW, three integers from 1 to 2^24", v);
    } else if (strcmp(a, "--classes") == 0) {
      if (!cli_parse_int(v, 1, 1LL << 24, &classes))
        return cli_usage_error("--classes %s: need an integer from 1 to 2^24",
                               v);
    } else if (strcmp(a, "--dropout") == 0) {
      if (!cli_parse_double(v, &dropout) || !(dropout >= 0 && dropout <= 1))
        return cli_usage_error("--dropout %s: need a number from 0 to 1", v);
    } else {
      return cli_usage_error("unknown option '%s' (cudl model describe --help)",
                             a);
    }
    ++i;
  }
  if ((model == NULL) == (model_file == NULL))
    return cli_usage_error(
        "give --model NAME or --model-file FILE (cudl model describe --help)");
  if (model != NULL && (rc = cudl__tool_zoo_check_name(model)) != 0) return rc;
  rc = CLI_EXIT_FAILED;
  if (cli_open_context("cpu", &ctx) != 0) return CLI_EXIT_FAILED;
  if (model != NULL)
    s = cudl__tool_zoo_model(ctx, model, dropout, shape[0], shape[1], shape[2],
                             classes, &m);
  else
    s = cudl_model_read_file(ctx, model_file, &m);
  if (s != CUDL_OK) {
    rc = cli_fail(ctx, s, "%s", model != NULL ? model : model_file);
    goto done;
  }
  s = cudl_model_describe(m, NULL, 0, &length);
  if (s == CUDL_OK) {
    text = (char *)malloc(length + 1);
    s = text == NULL ? CUDL_ERR_OUT_OF_MEMORY
                     : cudl_model_describe(m, text, length + 1, &length);
  }
  if (s != CUDL_OK) {
    rc = cli_fail(ctx, s, "describing the model");
    goto done;
  }
  if (!cli_file_open_whole(&out, "the model file", output)) goto done;
  if (fwrite(text, 1, length, cli_file_stream(&out)) != length) {
    cli_file_close(&out, 0);
    cli_error("cannot write the model file %s", output);
    goto done;
  }
  if (cli_file_close(&out, 1)) rc = CLI_EXIT_OK;
done:
  free(text);
  cudl_model_destroy(m);
  cudl_context_destroy(ctx);
  return rc;
}

int cudl__cmd_model(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "describe") == 0) {
    cli_set_command("cudl model describe");
    return describe(argc - 1, argv + 1);
  }
  cli_set_command("cudl model");
  if (argc >= 1 &&
      (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (argc >= 1)
    return cli_usage_error(
        "unknown subcommand '%s': describe (cudl model "
        "--help)",
        argv[0]);
  return cli_usage_error("which subcommand? describe (cudl model --help)");
}
