/*
 * cudl - the command-line tool: a thin layer over the library.
 *
 *   cudl info                      version, the GPU code built, devices
 *                                  (and whether the build runs on each),
 *                                  CUDA library versions
 *   cudl inspect FILE.safetensors  validate a file, list tensors and metadata
 *   cudl demo [--device cpu|cuda|auto]
 *                                  create tensors on a device, fill them
 *                                  from the RNG, round-trip a safetensors file
 *   cudl train [options]           train a zoo model (tools/train.c)
 *   cudl eval --weights FILE ...   test loss and accuracy of trained weights
 *   cudl predict --weights FILE --index I ...
 *                                  classify test images
 *   cudl bench ops|train|infer [options]
 *                                  time operators, training steps or
 *                                  inference (tools/bench*.c)
 *   cudl export --weights FILE --onnx OUT
 *                                  the network as an ONNX file
 *                                  (tools/export_cmd.c)
 *
 * Exit codes (docs/cli.md): 0 success; 1 the operation failed (a file
 * missing, unreadable or of the wrong kind, an output that cannot be
 * written, a device error, a run that diverged); 2 the command line is
 * wrong (told before any file is read); 130 training stopped by Ctrl-C
 * or SIGTERM, its checkpoint saved. Every error is one line on stderr that
 * starts with the command ("cudl train: ...").
 */
#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cudl/cudl.h>

#include "cli.h"
#include "commands.h"

static void usage(FILE *out) {
  fprintf(out,
          "usage: cudl info\n"
          "       cudl inspect FILE.safetensors\n"
          "       cudl demo [--device cpu|cuda|auto]\n"
          "       cudl train [options]      (cudl train --help)\n"
          "       cudl eval --weights FILE [options]   (cudl eval --help)\n"
          "       cudl predict --weights FILE --index I [options]\n"
          "       cudl bench ops|train|infer [options]   (cudl bench ops --help)\n"
          "       cudl data check PATH [--strict]  (a folder of images)\n"
          "       cudl model describe --model NAME [options]   (cudl model --help)\n"
          "       cudl export --weights FILE --onnx OUT.onnx   (cudl export --help)\n"
          "training curves: cudl-plot RUN_DIR|METRICS.jsonl ... -o PNG\n");
}

static void print_version(const char *label, int v, int major_div) {
  if (v <= 0) {
    printf("  %-16s unknown\n", label);
    return;
  }
  if (major_div == 1000) /* CUDA: 13000 = 13.0 */
    printf("  %-16s %d.%d\n", label, v / 1000, (v % 1000) / 10);
  else /* cuDNN and cuBLAS: 90100 = 9.1.0 */
    printf("  %-16s %d.%d.%d\n", label, v / 10000, (v % 10000) / 100, v % 100);
}

static int cmd_info(void) {
  char reason[512], where[1024];
  int count = 0, i;
  cudl_cuda_versions versions;
  cudl_status backend;
  printf("cudl %s (headers %s)\n", cudl_version(), CUDL_VERSION_STRING);
  if (cudl_cuda_compiled()) printf("GPU code: %s\n", cudl_cuda_architectures());
  /* The CUDA backend is a module loaded now: where from, or why not. */
  backend = cudl_cuda_backend_load(where, sizeof where, reason, sizeof reason);
  if (backend == CUDL_OK)
    printf("CUDA backend: %s\n", where);
  else if (backend == CUDL_ERR_NO_DEVICE)
    printf("CUDA backend: not loaded: %s\n", reason);
  else
    printf("CUDA backend: none (built without CUDA)\n");
  printf("devices:\n  cpu\n");
  if (cudl_cuda_device_count(&count, reason, sizeof reason) != CUDL_OK) {
    printf("  no GPU: %s\n", reason);
  } else {
    for (i = 0; i < count; ++i) {
      cudl_cuda_device_properties p;
      if (cudl_cuda_device_properties_query(i, &p) != CUDL_OK) continue;
      printf("  cuda:%d  %s, sm_%d%d, %d SMs, %.1f GiB, %s\n", i, p.name,
             p.compute_major, p.compute_minor, p.multiprocessor_count,
             (double)p.total_memory / (1024.0 * 1024.0 * 1024.0),
             cudl_cuda_device_supported(i, reason, sizeof reason) == CUDL_OK
                 ? "supported"
                 : "NOT supported by this build");
      if (reason[0] != '\0') printf("    %s\n", reason);
    }
  }
  if (cudl_cuda_versions_query(&versions) == CUDL_OK) {
    printf("CUDA libraries:\n");
    print_version("runtime", versions.runtime, 1000);
    if (versions.driver > 0)
      print_version("driver", versions.driver, 1000);
    else
      printf("  %-16s none\n", "driver");
    print_version("cuDNN (loaded)", versions.cudnn_loaded, 10000);
    print_version("cuDNN (headers)", versions.cudnn_compiled, 10000);
    print_version("cuBLAS", versions.cublas, 10000);
  } else {
    printf("CUDA libraries: none (%s)\n", backend == CUDL_ERR_NO_DEVICE
                                               ? "the CUDA backend is not loaded"
                                               : "built without CUDA");
  }
  /* The communicators a data-parallel run under mpirun can use. */
  printf("MPI: %s\nNCCL: %s\n", cudl_comm_mpi_available() ? "yes" : "no",
         cudl_comm_nccl_available() ? "yes" : "no");
  return CLI_EXIT_OK;
}

static int cmd_inspect(const char *path) {
  cudl_context *ctx = NULL;
  cudl_safetensors *set = NULL;
  cudl_status status;
  size_t i;
  if (cli_open_context("cpu", &ctx) != 0) return CLI_EXIT_FAILED;
  status = cudl_safetensors_load(ctx, path, CUDL_SAFETENSORS_HEADER_ONLY, &set);
  if (status != CUDL_OK) {
    cli_fail(ctx, status, "%s", path);
    cudl_context_destroy(ctx);
    return CLI_EXIT_FAILED;
  }
  printf("%s: valid safetensors, %zu tensor(s), %zu metadata entr%s\n", path,
         cudl_safetensors_count(set), cudl_safetensors_metadata_count(set),
         cudl_safetensors_metadata_count(set) == 1 ? "y" : "ies");
  for (i = 0; i < cudl_safetensors_count(set); ++i) {
    cudl_safetensors_entry e;
    int d;
    cudl_safetensors_entry_query(set, i, &e);
    printf("  %-32s %-5s [", e.name, e.dtype_name);
    for (d = 0; d < e.ndim; ++d)
      printf("%s%lld", d ? ", " : "", (long long)e.shape[d]);
    printf("]%s\n", e.dtype_known ? "" : "  (not loadable by cudl)");
  }
  for (i = 0; i < cudl_safetensors_metadata_count(set); ++i)
    printf("  metadata %s = %s\n", cudl_safetensors_metadata_key(set, i),
           cudl_safetensors_metadata_value(set, i));
  cudl_safetensors_destroy(set);
  cudl_context_destroy(ctx);
  return CLI_EXIT_OK;
}

/* Report a failed call and give up. */
#define DEMO_TRY(call)                       \
  do {                                       \
    cudl_status s_ = (call);                 \
    if (s_ != CUDL_OK) {                     \
      cli_fail(ctx, s_, "%s failed", #call); \
      goto done;                             \
    }                                        \
  } while (0)

static int cmd_demo(const char *device) {
  const int64_t shape[4] = {8, 3, 32, 32};
  cudl_context *ctx = NULL;
  cudl_tensor *weights = NULL, *noise = NULL;
  cudl_safetensors *loaded = NULL;
  float *host = NULL;
  char path[4096];
  const char *tmpdir = getenv("TMPDIR");
  int fd, rc = CLI_EXIT_FAILED, made_file = 0;
  size_t n, i;
  double sum = 0, sum_sq = 0;
  cudl_status status;
  if (cli_open_context(device, &ctx) != 0) return CLI_EXIT_FAILED;
  printf("device: %s\n", cudl_context_device_name(ctx));
  DEMO_TRY(cudl_context_set_seed(ctx, 2024));
  DEMO_TRY(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &weights));
  DEMO_TRY(cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &noise));
  DEMO_TRY(cudl_tensor_uniform(weights, -1.0f, 1.0f));
  DEMO_TRY(cudl_tensor_normal(noise, 0.0f, 1.0f));

  n = (size_t)cudl_tensor_numel(noise);
  host = (float *)malloc(n * sizeof *host);
  if (host == NULL) {
    cli_error("out of memory");
    goto done;
  }
  DEMO_TRY(cudl_tensor_copy_to_host(noise, host, n * sizeof *host));
  for (i = 0; i < n; ++i) {
    sum += host[i];
    sum_sq += (double)host[i] * host[i];
  }
  printf("normal tensor [8, 3, 32, 32]: mean %.4f, std %.4f (expect 0, 1)\n",
         sum / (double)n,
         sqrt(sum_sq / (double)n - (sum / (double)n) * (sum / (double)n)));

  if (tmpdir == NULL || tmpdir[0] == '\0') tmpdir = "/tmp";
  snprintf(path, sizeof path, "%s/cudl-demo-XXXXXX", tmpdir);
  fd = mkstemp(path);
  if (fd < 0) {
    cli_error("cannot create a file in %s: %s", tmpdir, strerror(errno));
    goto done;
  }
  made_file = 1;
  close(fd);
  {
    cudl_named_tensor named[2];
    cudl_metadata_pair meta[1] = {{"produced_by", "cudl demo"}};
    named[0].name = "weights";
    named[0].tensor = weights;
    named[1].name = "noise";
    named[1].tensor = noise;
    DEMO_TRY(cudl_safetensors_save(ctx, path, named, 2, meta, 1));
  }
  DEMO_TRY(cudl_safetensors_load(ctx, path, 0, &loaded));
  printf("saved and reloaded %zu tensors through %s (%s)\n",
         cudl_safetensors_count(loaded), path,
         cudl_safetensors_metadata_find(loaded, "produced_by"));
  {
    float *back = (float *)malloc(n * sizeof *back);
    int64_t idx = cudl_safetensors_find(loaded, "noise");
    int same;
    if (back == NULL || idx < 0) {
      free(back);
      goto done;
    }
    status = cudl_tensor_copy_to_host(
        cudl_safetensors_tensor(loaded, (size_t)idx), back, n * sizeof *back);
    same = status == CUDL_OK && memcmp(back, host, n * sizeof *back) == 0;
    free(back);
    printf("round trip: %s\n", same ? "bit-identical" : "MISMATCH");
    if (!same) goto done;
  }
  rc = CLI_EXIT_OK;
done:
  if (made_file) unlink(path);
  free(host);
  cudl_safetensors_destroy(loaded);
  cudl_tensor_destroy(noise);
  cudl_tensor_destroy(weights);
  cudl_context_destroy(ctx);
  return rc;
}

static void bench_usage(FILE *out) {
  fprintf(out,
          "usage: cudl bench ops [options]     time every operator "
          "(cudl bench ops --help)\n"
          "       cudl bench train [options]   time training steps of a "
          "zoo model (cudl bench train --help)\n"
          "       cudl bench infer [options]   time a zoo model's forward, "
          "compiled for inference and for training (cudl bench infer "
          "--help)\n");
}

/* `cudl bench ops|train|infer`: which benchmark. */
static int cmd_bench(int argc, char **argv) {
  if (argc >= 1 && strcmp(argv[0], "ops") == 0) {
    cli_set_command("cudl bench ops");
    return cudl__cmd_bench_ops(argc - 1, argv + 1);
  }
  if (argc >= 1 && strcmp(argv[0], "train") == 0) {
    cli_set_command("cudl bench train");
    return cudl__cmd_bench_train(argc - 1, argv + 1);
  }
  if (argc >= 1 && strcmp(argv[0], "infer") == 0) {
    cli_set_command("cudl bench infer");
    return cudl__cmd_bench_infer(argc - 1, argv + 1);
  }
  cli_set_command("cudl bench");
  if (argc >= 1 &&
      (strcmp(argv[0], "--help") == 0 || strcmp(argv[0], "-h") == 0)) {
    bench_usage(stdout);
    return 0;
  }
  if (argc >= 1)
    return cli_usage_error(
        "unknown benchmark '%s': ops, train or infer (cudl bench --help)", argv[0]);
  return cli_usage_error("which benchmark? ops, train or infer (cudl bench --help)");
}

/* The subcommand's exit status, once what it printed has reached its
 * destination: a full disk or a closed pipe on standard output fails the
 * command rather than losing its output silently. */
static int finish(int rc) {
  if (fflush(stdout) != 0 || ferror(stdout)) {
    cli_error("writing the standard output failed: %s", strerror(errno));
    if (rc == CLI_EXIT_OK) rc = CLI_EXIT_FAILED;
  }
  return rc;
}

static int dispatch(int argc, char **argv) {
  const char *command = argc >= 2 ? argv[1] : NULL;
  if (command == NULL) {
    usage(stderr);
    return CLI_EXIT_USAGE;
  }
  if (strcmp(command, "--help") == 0 || strcmp(command, "-h") == 0) {
    usage(stdout);
    return CLI_EXIT_OK;
  }
  if (strcmp(command, "train") == 0) return cudl__cmd_train(argc - 2, argv + 2);
  if (strcmp(command, "eval") == 0) return cudl__cmd_eval(argc - 2, argv + 2);
  if (strcmp(command, "predict") == 0)
    return cudl__cmd_predict(argc - 2, argv + 2);
  if (strcmp(command, "bench") == 0) return cmd_bench(argc - 2, argv + 2);
  if (strcmp(command, "data") == 0) return cudl__cmd_data(argc - 2, argv + 2);
  if (strcmp(command, "model") == 0) return cudl__cmd_model(argc - 2, argv + 2);
  if (strcmp(command, "export") == 0)
    return cudl__cmd_export(argc - 2, argv + 2);
  if (strcmp(command, "info") == 0) {
    cli_set_command("cudl info");
    if (argc == 3 &&
        (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
      usage(stdout);
      return CLI_EXIT_OK;
    }
    if (argc == 2) return cmd_info();
    return cli_usage_error("takes no arguments, not '%s'", argv[2]);
  }
  if (strcmp(command, "inspect") == 0) {
    cli_set_command("cudl inspect");
    if (argc == 3 &&
        (strcmp(argv[2], "--help") == 0 || strcmp(argv[2], "-h") == 0)) {
      printf(
          "usage: cudl inspect FILE.safetensors\n"
          "  validate a safetensors file and list its tensors and "
          "metadata;\n"
          "  exit status 0 valid, 1 invalid (one line: why), 2 bad command "
          "line\n");
      return CLI_EXIT_OK;
    }
    if (argc == 3) return cmd_inspect(argv[2]);
    return cli_usage_error("needs one FILE.safetensors, not %d arguments",
                           argc - 2);
  }
  if (strcmp(command, "demo") == 0) {
    cudl_device_kind kind;
    int index;
    cli_set_command("cudl demo");
    if (argc == 4 && strcmp(argv[2], "--device") == 0) {
      if (!cli_parse_device(argv[3], &kind, &index))
        return cli_usage_error("--device must be auto, cpu or cuda:N, not '%s'",
                               argv[3]);
      return cmd_demo(argv[3]);
    }
    if (argc == 2) return cmd_demo("auto");
    return cli_usage_error("the one option is --device auto|cpu|cuda:N");
  }
  /* One line, like every other error: the list is a --help away. */
  return cli_usage_error("unknown command '%s' (cudl --help lists them)",
                         command);
}

int main(int argc, char **argv) {
  /* A reader that goes away (a pipe, a FIFO) makes a write fail with
   * EPIPE, which the command reports, rather than end the process. */
  signal(SIGPIPE, SIG_IGN);
  cli_install_log();
  cli_limit_threads();
  return finish(dispatch(argc, argv));
}
