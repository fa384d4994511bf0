/* bench_infer.c - `cudl bench infer`: the latency and memory of a zoo
 * model's forward pass on one batch already on the device, compiled for
 * inference (cudl_model_compile_inference; on CUDA also replayed as a CUDA
 * graph, cudl_model_set_graphs) and compiled for training then run in
 * evaluation mode, in the same run; benchmarks/torch_ref.py infer times
 * PyTorch's eval mode, torch.inference_mode and its CUDA graph on the same
 * case. */
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "cli.h"
#include "cli_file.h"
#include "commands.h"

typedef struct infer_bench {
  cudl_model *model;
  cudl_tensor *x;
} infer_bench;

static cudl_status infer_call(void *arg) {
  const infer_bench *b = (const infer_bench *)arg;
  return cudl_model_forward(b->model, b->x, NULL, NULL);
}

/* What is timed: the inference compile, with CUDA graphs (CUDA only), the
 * training compile in evaluation mode. */
typedef enum infer_variant {
  INFER_DIRECT,
  INFER_GRAPHS,
  INFER_TRAINING_EVAL
} infer_variant;

static const char *const k_impl[] = {"cudl-inference", "cudl-inference-graphs",
                                     "cudl-training-eval"};

/* One variant's figures. */
typedef struct infer_result {
  const char *impl; /* k_impl */
  bench_timing timing;
  uint64_t peak_bytes; /* the context's peak over compile and forwards */
  cudl_model_memory memory;
  cudl_graph_stats graphs; /* INFER_GRAPHS: what the graphs did */
} infer_result;

static void infer_usage(FILE *out) {
  fprintf(
      out,
      "usage: cudl bench infer [options]\n"
      "  --model NAME      small-cnn, resnet20/32/44/56/110, plain20/..., mlp\n"
      "                    [resnet20]\n"
      "  --batch B [1]     --device auto|cpu|cuda:N [auto]\n"
      "  --channels C [3]  --size S [32]  --classes K [10]  (the input)\n"
      "  --samples N [50]  --warmup W [5]\n"
      "  --precision P     fp32, tf32, bf16 or fp16 [fp32]\n"
      "  --tf32            the same as --precision tf32\n"
      "  --layout L        auto, nchw or nhwc (channels-last) [auto: nhwc\n"
      "                    on a CPU, nchw on CUDA]\n"
      "  --json PATH       write the results as one JSON object (\"-\": "
      "stdout)\n"
      "\n"
      "Times one forward pass on a fixed batch already on the device, for\n"
      "the model compiled for inference (no gradients, buffers shared by\n"
      "liveness, batch norm folded, dropout removed), on CUDA the same\n"
      "replayed as a CUDA graph (cudl-inference-graphs), and for the model\n"
      "compiled for training and run in evaluation mode, in that order.\n"
      "Figures (docs/benchmarks.md):\n"
      "  latency       the median time of one forward call, with the fastest\n"
      "                and slowest of --samples calls (one call a sample)\n"
      "  peak memory   the most device memory the context held from before\n"
      "                compiling to the last timed call (host memory of\n"
      "                tensors and workspaces on the CPU); the model's own\n"
      "                bytes by use (cudl_model_memory_usage)\n");
}

/* How both compiles are set up. */
typedef struct infer_setup {
  bench_model_options model;
  cudl_precision precision;
  cudl_layout layout;
} infer_setup;

/* Build, compile (inference or training), initialise and time one model;
 * the context's peak is reset first, so it covers this compile only. */
static cudl_status measure(cudl_context *ctx, const infer_setup *setup,
                           infer_variant variant,
                           const bench_settings *settings, infer_result *r) {
  const int inference = variant != INFER_TRAINING_EVAL;
  const bench_model_options *model = &setup->model;
  infer_bench b;
  bench_event_clock events;
  bench_clock clock;
  cudl_memory_stats memory;
  cudl_status s;
  int i;
  memset(&b, 0, sizeof b);
  memset(&events, 0, sizeof events);
  r->impl = k_impl[variant];
  s = cudl_context_synchronize(ctx);
  if (s == CUDL_OK) s = cudl_context_reset_peak_memory(ctx);
  if (s == CUDL_OK)
    s = cudl__tool_zoo_model(ctx, model->name, 0.0, model->channels,
                             model->size, model->size, model->classes,
                             &b.model);
  if (s == CUDL_OK) s = cudl_model_set_precision(b.model, setup->precision);
  if (s == CUDL_OK) s = cudl_model_set_layout(b.model, setup->layout);
  if (s == CUDL_OK)
    s = inference ? cudl_model_compile_inference(b.model, model->batch)
                  : cudl_model_compile(b.model, model->batch);
  if (s == CUDL_OK) s = cudl_model_init(b.model, CUDL_INIT_KAIMING_NORMAL);
  if (s == CUDL_OK) s = cudl_model_set_training(b.model, 0);
  if (s == CUDL_OK && variant == INFER_GRAPHS)
    s = cudl_model_set_graphs(b.model, 1);
  if (s == CUDL_OK) {
    const int64_t shape[4] = {model->batch, model->channels, model->size,
                              model->size};
    s = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &b.x);
  }
  if (s == CUDL_OK) s = cudl_tensor_normal(b.x, 0.0f, 1.0f);
  for (i = 0; s == CUDL_OK && i < settings->warmup; ++i) s = infer_call(&b);
  if (s == CUDL_OK) s = bench_event_clock_init(ctx, &events, &clock);
  if (s == CUDL_OK) {
    bench_settings timed = *settings;
    timed.warmup = 0;
    s = bench_time(&clock, infer_call, &b, &timed, &r->timing);
  }
  if (s == CUDL_OK) s = cudl_context_synchronize(ctx);
  if (s == CUDL_OK) s = cudl_context_memory_stats(ctx, &memory);
  if (s == CUDL_OK) r->peak_bytes = memory.peak_bytes_in_use;
  if (s == CUDL_OK) s = cudl_model_memory_usage(b.model, &r->memory);
  if (s == CUDL_OK && variant == INFER_GRAPHS)
    s = cudl_model_graph_stats(b.model, &r->graphs);
  bench_event_clock_free(&events);
  cudl_tensor_destroy(b.x);
  cudl_model_destroy(b.model);
  return s;
}

static void json_result(FILE *f, const infer_result *r, long long batch,
                        int last) {
  const cudl_model_memory *m = &r->memory;
  fprintf(f,
          "    {\"impl\": \"%s\", \"latency_ms_median\": %.6g, "
          "\"latency_ms_min\": %.6g, \"latency_ms_max\": %.6g, "
          "\"images_per_second\": %.6g, \"samples\": %d, "
          "\"peak_memory_bytes\": %llu,\n     \"model_memory\": "
          "{\"parameters\": %llu, \"activations\": %llu, \"gradients\": %llu, "
          "\"saved_activations\": %llu, \"workspace\": %llu, \"total\": "
          "%llu}",
          r->impl, r->timing.median_ms, r->timing.min_ms, r->timing.max_ms,
          (double)batch / r->timing.median_ms * 1e3,
          r->timing.samples * r->timing.iterations,
          (unsigned long long)r->peak_bytes, (unsigned long long)m->parameters,
          (unsigned long long)m->activations, (unsigned long long)m->gradients,
          (unsigned long long)m->saved_activations,
          (unsigned long long)m->workspace, (unsigned long long)m->total);
  if (strcmp(r->impl, k_impl[INFER_GRAPHS]) == 0) {
    fprintf(f,
            ",\n     \"graphs\": {\"recorded\": %lld, \"replayed\": %lld, "
            "\"direct\": %lld, \"reason\": ",
            (long long)r->graphs.recorded, (long long)r->graphs.replayed,
            (long long)r->graphs.direct);
    bench_json_string(f, r->graphs.reason);
    fputc('}', f);
  }
  fprintf(f, "}%s\n", last ? "" : ",");
}

int cudl__cmd_bench_infer(int argc, char **argv) {
  const char *device = "auto", *json = NULL;
  infer_setup setup = {
      {"resnet20", 1, 3, 32, 10}, CUDL_PRECISION_FP32, CUDL_LAYOUT_NCHW};
  bench_model_options *model = &setup.model;
  int layout_auto = 1;
  long long value;
  bench_settings settings;
  infer_result results[3];
  infer_variant variants[3];
  cli_file out;
  cudl_context *ctx = NULL;
  cudl_device_kind kind = CUDL_DEVICE_AUTO;
  int i, count = 0, index = 0, rc = CLI_EXIT_OK;
  cudl_status s = CUDL_OK;
  memset(&settings, 0, sizeof settings);
  memset(results, 0, sizeof results);
  /* One call per sample: a latency is what one call takes. */
  settings.warmup = 5;
  settings.samples = 50;
  settings.min_sample_ms = 0;
  settings.max_seconds = 60;
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      infer_usage(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(a, "--tf32") == 0) {
      setup.precision = CUDL_PRECISION_TF32;
      continue;
    }
    if (v == NULL)
      return cli_usage_error("%s needs a value (or is unknown)", a);
    ++i;
    if (bench_parse_model_option(a, v, model)) {
    } else if (strcmp(a, "--device") == 0) {
      device = v;
    } else if (strcmp(a, "--precision") == 0 &&
               cudl_precision_from_name(v, &setup.precision) == CUDL_OK) {
    } else if (strcmp(a, "--layout") == 0 &&
               cli_parse_layout(v, &setup.layout, &layout_auto)) {
    } else if (strcmp(a, "--json") == 0) {
      json = v;
    } else if (strcmp(a, "--samples") == 0 &&
               cli_parse_int(v, 1, 1000, &value)) {
      settings.samples = (int)value;
    } else if (strcmp(a, "--warmup") == 0 &&
               cli_parse_int(v, 0, 1000, &value)) {
      settings.warmup = (int)value;
    } else {
      return cli_usage_error("bad option or value: %s '%s'", a, v);
    }
  }
  if ((rc = cudl__tool_zoo_check_name(model->name)) != 0) return rc;
  if (!cli_parse_device(device, &kind, &index))
    return cli_usage_error("--device must be auto, cpu or cuda:N, not '%s'",
                           device);
  if (json != NULL && !cli_file_open_whole(&out, "the JSON file", json))
    return CLI_EXIT_FAILED;
  if (cli_open_context(device, &ctx) != 0) {
    if (json != NULL) cli_file_close(&out, 0);
    return CLI_EXIT_FAILED;
  }
  if (layout_auto) setup.layout = cli_layout_for(ctx);
  cudl_context_set_allow_tf32(ctx, setup.precision == CUDL_PRECISION_TF32);
  cudl_context_set_seed(ctx, 1);
  variants[count++] = INFER_DIRECT;
  if (cudl_context_device(ctx) == CUDL_DEVICE_CUDA)
    variants[count++] = INFER_GRAPHS;
  variants[count++] = INFER_TRAINING_EVAL;
  for (i = 0; i < count && s == CUDL_OK; ++i)
    s = measure(ctx, &setup, variants[i], &settings, &results[i]);
  if (s != CUDL_OK) {
    rc = cli_fail(ctx, s, "%s, batch %lld, %s, %s", model->name, model->batch,
                  cudl_precision_name(setup.precision),
                  cudl_layout_name(setup.layout));
    goto done;
  }
  {
    FILE *table = json != NULL && strcmp(json, "-") == 0 ? stderr : stdout;
    fprintf(table, "%s, batch %lld, %lldx%lldx%lld input, %s, %s, on %s:\n",
            model->name, model->batch, model->channels, model->size,
            model->size, cudl_precision_name(setup.precision),
            cudl_layout_name(setup.layout), cudl_context_device_name(ctx));
    for (i = 0; i < count; ++i) {
      fprintf(table,
              "  %-21s %.3f ms median (%.3f-%.3f min-max, %d calls); peak "
              "%.2f MiB (model: parameters %.2f, activations %.2f, "
              "gradients %.2f, saved %.2f, workspace %.2f MiB)\n",
              results[i].impl, results[i].timing.median_ms,
              results[i].timing.min_ms, results[i].timing.max_ms,
              results[i].timing.samples * results[i].timing.iterations,
              (double)results[i].peak_bytes / 1048576.0,
              (double)results[i].memory.parameters / 1048576.0,
              (double)results[i].memory.activations / 1048576.0,
              (double)results[i].memory.gradients / 1048576.0,
              (double)results[i].memory.saved_activations / 1048576.0,
              (double)results[i].memory.workspace / 1048576.0);
      if (variants[i] == INFER_GRAPHS)
        fprintf(table,
                "  %-21s graphs: %lld recorded, %lld replayed, %lld run "
                "directly%s%s\n",
                "", (long long)results[i].graphs.recorded,
                (long long)results[i].graphs.replayed,
                (long long)results[i].graphs.direct,
                results[i].graphs.reason[0] ? ", the last because: " : "",
                results[i].graphs.reason);
    }
  }
  if (json != NULL) {
    FILE *f = cli_file_stream(&out);
    fprintf(f,
            "{\n  \"schema\": \"cudl-bench-infer/1\",\n  \"tool\": "
            "\"cudl\",\n");
    bench_json_run_fields(f, ctx, setup.precision == CUDL_PRECISION_TF32);
    fprintf(f, "  \"model\": ");
    bench_json_string(f, model->name);
    fprintf(f,
            ",\n  \"batch\": %lld,\n  \"input_shape\": [%lld, %lld, %lld],\n"
            "  \"classes\": %lld,\n  \"precision\": \"%s\",\n"
            "  \"layout\": \"%s\",\n  \"warmup\": %d,\n  \"results\": [\n",
            model->batch, model->channels, model->size, model->size,
            model->classes, cudl_precision_name(setup.precision),
            cudl_layout_name(setup.layout), settings.warmup);
    for (i = 0; i < count; ++i)
      json_result(f, &results[i], model->batch, i == count - 1);
    fprintf(f, "  ]\n}\n");
  }
done:
  if (json != NULL && !cli_file_close(&out, rc == CLI_EXIT_OK))
    rc = CLI_EXIT_FAILED;
  cudl_context_destroy(ctx);
  return rc;
}
