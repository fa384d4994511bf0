/* bench_train.c - `cudl bench train`: images/s of whole training steps
 * (forward, cross-entropy, backward, optimizer update) of a zoo model on a
 * fixed batch already on the device, so that data loading is not timed;
 * peak memory; FLOP utilisation against the sgemm rate measured in the same
 * run. benchmarks/torch_ref.py train times the same step in PyTorch. */
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "bench.h"
#include "bench_peers.h"
#include "cli.h"
#include "cli_file.h"
#include "commands.h"
#include "run_dist.h"

typedef struct train_bench {
  cudl_model *model;
  cudl_optimizer *opt;
  cudl_tensor *x, *labels;
  /* --diagnostics K: read them every K steps, as cudl train does */
  int diagnostics_every;
  int64_t steps;
  cudl_layer_diagnostics *rows;
  int capacity;
  /* Under mpirun: the gradients averaged by each step's backward in
   * buckets (cudl_model_set_grad_sync); while recording is set (the timed
   * steps), each step's wait for them (its exposed communication). */
  cudl_comm *comm;
  int recording;
  double *allreduce_ms;
  int recorded, record_capacity;
} train_bench;

/* The time the step's backward waited for its averaged gradients (with
 * NCCL, the host's wait for each bucket's all-reduce within the timeout,
 * which also waits for the kernels queued before it). */
static void record_wait(train_bench *t) {
  if (t->recording && t->recorded < t->record_capacity)
    t->allreduce_ms[t->recorded++] =
        cudl_model_grad_sync_wait_seconds(t->model) * 1e3;
}

static cudl_status train_step(void *arg) {
  const train_bench *t = (const train_bench *)arg;
  /* No loss read back: that would wait for the device every step. */
  cudl_status s = cudl_model_forward(t->model, t->x, t->labels, NULL);
  if (s == CUDL_OK) s = cudl_model_backward(t->model);
  if (s == CUDL_OK && t->comm != NULL) record_wait((train_bench *)arg);
  /* fp16: a step whose gradients overflowed is skipped, as in training
   * (cudl_model_step_skipped). */
  if (s == CUDL_OK && !cudl_model_step_skipped(t->model))
    s = cudl_optimizer_step(t->opt, cudl_model_params(t->model),
                            cudl_model_grads(t->model), 0.05f);
  if (s == CUDL_OK && t->diagnostics_every > 0 &&
      ++((train_bench *)arg)->steps % t->diagnostics_every == 0) {
    int count = 0;
    s = cudl_model_diagnostics(t->model, t->rows, t->capacity, &count, NULL);
  }
  return s;
}

static void train_usage(FILE *out) {
  fprintf(
      out,
      "usage: cudl bench train [options]\n"
      "  --model NAME      small-cnn, resnet20/32/44/56/110, plain20/..., mlp\n"
      "                    [resnet20]\n"
      "  --batch B [128]   --device auto|cpu|cuda:N [auto]\n"
      "  --channels C [1]  --size S [28]  --classes K [10]  (the input)\n"
      "  --optimizer sgd|adam [sgd: lr 0.05, momentum 0.9, weight decay 5e-4]\n"
      "  --samples N [50]  --min-sample-ms M [0]  --warmup W [5]\n"
      "  --precision P     fp32, tf32, bf16 or fp16 [fp32]\n"
      "  --tf32            the same as --precision tf32\n"
      "  --layout L        auto, nchw or nhwc (channels-last) [auto: nhwc\n"
      "                    on a CPU, nchw on CUDA]\n"
      "  --no-fusion       run batch norm, residual addition and ReLU layer\n"
      "                    by layer (cudl_model_set_fusion): what fusing saves\n"
      "  --diagnostics K   with per-layer diagnostics on, read every K steps\n"
      "                    (cudl train --diagnostics K): their overhead\n"
      "  --json PATH       write the results as one JSON object (\"-\": "
      "stdout)\n"
      "  --dist-backend B  under mpirun: auto, mpi or nccl [auto: nccl on a\n"
      "                    GPU when cudl has it, else mpi]\n"
      "  --bucket-mb M     under mpirun: gradient buckets of M MB averaged\n"
      "                    during backward; 0: all after backward [25]\n"
      "  --grad-wire W     under mpirun: the gradients travel as f32, bf16\n"
      "                    or f16; auto follows --precision [auto]\n"
      "Under mpirun -np N each rank trains its own batch B and averages the\n"
      "gradients every step (cudl train's data parallelism; --device cuda\n"
      "gives each rank the GPU of its local rank); rank 0 prints and writes\n"
      "the JSON. --min-sample-ms is not taken there: every rank must take\n"
      "the same number of steps.\n"
      "\n"
      "Figures (docs/benchmarks.md):\n"
      "  images/s      batch / the median time of a training step (forward,\n"
      "                cross-entropy, backward, update) on one fixed batch\n"
      "                already on the device; a sample is one step (the\n"
      "                median, fastest and slowest of --samples steps, as\n"
      "                torch_ref.py train), or with --min-sample-ms M > 0 the\n"
      "                mean of whole steps lasting at least M ms\n"
      "  peak memory   the most device memory the context held during the\n"
      "                timed steps (host memory of tensors and workspaces\n"
      "                on the CPU); process: the peak resident set\n"
      "  FLOP/image    3 x the forward FLOPs of the convolutions and linear\n"
      "                layers (forward, backward data, backward filter)\n"
      "  utilisation   achieved FLOP/s over the sgemm rate measured in this\n"
      "                run (cuBLAS, or oneDNN on the CPU)\n"
      "  all-reduce    under mpirun: the time each step waits for its\n"
      "                averaged gradients after the last layer's backward\n"
      "                (the exposed communication; with --bucket-mb 0 the\n"
      "                whole all-reduce), median, fastest, slowest of the\n"
      "                timed steps, its share of the step (median over\n"
      "                median), the bytes reduced (4 x parameters) and\n"
      "                NCCL's bus bandwidth busbw = bytes / time x\n"
      "                2(N-1)/N (a transfer rate with --bucket-mb 0 only)\n");
}

/* One rank's figures, gathered on every rank by a sum of vectors in which
 * each rank fills its own row. */
enum {
  FIG_IMAGES_PER_SECOND,
  FIG_STEP_MEDIAN,
  FIG_STEP_MIN,
  FIG_STEP_MAX,
  FIG_ALLREDUCE_MEDIAN,
  FIG_ALLREDUCE_MIN,
  FIG_ALLREDUCE_MAX,
  FIG_COUNT
};

static int compare_ms(const void *a, const void *b) {
  const double x = *(const double *)a, y = *(const double *)b;
  return x < y ? -1 : x > y;
}

/* Median, fastest and slowest of the averagings of the timed steps: the
 * first recorded one belongs to bench_time's sizing call, not to a
 * sample, and is left out (one step a sample under mpirun). */
static void allreduce_stats(train_bench *t, double *row) {
  double *v = t->allreduce_ms + 1;
  const int n = t->recorded - 1;
  if (n < 1) return;
  qsort(v, (size_t)n, sizeof *v, compare_ms);
  row[FIG_ALLREDUCE_MEDIAN] =
      n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  row[FIG_ALLREDUCE_MIN] = v[0];
  row[FIG_ALLREDUCE_MAX] = v[n - 1];
}

static double share_of(const double *row) {
  return row[FIG_STEP_MEDIAN] > 0.0
             ? row[FIG_ALLREDUCE_MEDIAN] / row[FIG_STEP_MEDIAN]
             : 0.0;
}

int cudl__cmd_bench_train(int argc, char **argv) {
  const char *device = "auto", *json = NULL, *optimizer = "sgd",
             *dist_backend = "auto";
  bench_model_options model = {"resnet20", 128, 1, 28, 10};
  long long value;
  double bucket_mb = 25.0;
  cudl_grad_wire grad_wire = CUDL_GRAD_WIRE_AUTO;
  bench_settings settings;
  bench_timing timing, gemm_timing;
  bench_event_clock events;
  bench_clock clock;
  cudl_memory_stats memory;
  cli_file out;
  cudl_context *ctx = NULL;
  cudl_device_kind kind = CUDL_DEVICE_AUTO;
  cudl_precision precision = CUDL_PRECISION_FP32;
  cudl_layout layout = CUDL_LAYOUT_NCHW;
  int layout_auto = 1;
  int fusion = 1;
  train_bench t;
  cudl_optimizer_config config;
  int i, index = 0, on_gpu, rc = CLI_EXIT_OK, gemm_size;
  int64_t flops = 0;
  double images_per_second = 0, gemm_gflops = 0, achieved = 0;
  uint64_t peak_rss;
  cudl_status s;
  run_dist dist;
  static char command[64];
  double *figures = NULL, job[FIG_COUNT], job_share = 0.0, images_total = 0.0;
  double grad_bytes = 0.0, algbw_gbps = 0.0, busbw_gbps = 0.0;
  int world = 1, rank = 0;
  run_dist_detect(&dist);
  if (dist.launched && dist.rank != 0) {
    snprintf(command, sizeof command, "cudl bench train (rank %d)", dist.rank);
    cli_set_command(command);
  }
  memset(job, 0, sizeof job);
  memset(&settings, 0, sizeof settings);
  memset(&t, 0, sizeof t);
  memset(&events, 0, sizeof events);
  /* One step per sample: the statistic torch_ref.py train reports. */
  settings.warmup = 5;
  settings.samples = 50;
  settings.min_sample_ms = 0;
  settings.max_seconds = 60;
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      train_usage(stdout);
      return CLI_EXIT_OK;
    }
    if (strcmp(a, "--tf32") == 0) {
      precision = CUDL_PRECISION_TF32;
      continue;
    }
    if (strcmp(a, "--no-fusion") == 0) {
      fusion = 0;
      continue;
    }
    if (v == NULL)
      return cli_usage_error("%s needs a value (or is unknown)", a);
    ++i;
    if (bench_parse_model_option(a, v, &model)) {
    } else if (strcmp(a, "--device") == 0) {
      device = v;
    } else if (strcmp(a, "--precision") == 0 &&
               cudl_precision_from_name(v, &precision) == CUDL_OK) {
    } else if (strcmp(a, "--layout") == 0 &&
               cli_parse_layout(v, &layout, &layout_auto)) {
    } else if (strcmp(a, "--json") == 0) {
      json = v;
    } else if (strcmp(a, "--dist-backend") == 0 &&
               (strcmp(v, "auto") == 0 || strcmp(v, "mpi") == 0 ||
                strcmp(v, "nccl") == 0)) {
      dist_backend = v;
    } else if (strcmp(a, "--optimizer") == 0 &&
               (strcmp(v, "sgd") == 0 || strcmp(v, "adam") == 0)) {
      optimizer = v;
    } else if (strcmp(a, "--diagnostics") == 0 &&
               cli_parse_int(v, 1, 1 << 30, &value)) {
      t.diagnostics_every = (int)value;
    } else if (strcmp(a, "--samples") == 0 &&
               cli_parse_int(v, 1, 1000, &value)) {
      settings.samples = (int)value;
    } else if (strcmp(a, "--warmup") == 0 &&
               cli_parse_int(v, 0, 1000, &value)) {
      settings.warmup = (int)value;
    } else if (strcmp(a, "--grad-wire") == 0 &&
               cudl_grad_wire_from_name(v, &grad_wire) == CUDL_OK) {
    } else if (strcmp(a, "--bucket-mb") == 0 &&
               cli_parse_double(v, &bucket_mb) && bucket_mb >= 0.0 &&
               bucket_mb <= 1e6) {
    } else if (strcmp(a, "--min-sample-ms") == 0 &&
               cli_parse_int(v, 0, 100000, &value)) {
      settings.min_sample_ms = (double)value;
    } else {
      return cli_usage_error("bad option or value: %s '%s'", a, v);
    }
  }
  if ((rc = cudl__tool_zoo_check_name(model.name)) != 0) return rc;
  if ((rc = run_dist_check_build(&dist)) != 0) return rc;
  if (dist.launched && settings.min_sample_ms > 0)
    return cli_usage_error("--min-sample-ms is not taken under mpirun: every "
                           "rank must take the same number of steps");
  /* Every rank takes the same number of steps, however long they last. */
  if (dist.launched) settings.max_seconds = 1e9;
  if (!run_dist_root(&dist)) json = NULL;
  if (!cli_parse_device(device, &kind, &index))
    return cli_usage_error("--device must be auto, cpu or cuda:N, not '%s'",
                           device);
  if (json != NULL && !cli_file_open_whole(&out, "the JSON file", json))
    return CLI_EXIT_FAILED;
  device = run_dist_device(&dist, device);
  if (cli_open_context(device, &ctx) != 0) {
    if (json != NULL) cli_file_close(&out, 0);
    return CLI_EXIT_FAILED;
  }
  if (dist.launched) {
    if ((rc = run_dist_connect(&dist, ctx, dist_backend)) != 0) goto done;
    world = dist.world = cudl_comm_size(dist.comm);
    rank = cudl_comm_rank(dist.comm);
    t.comm = dist.comm;
    t.record_capacity = settings.samples + 1;
    t.allreduce_ms =
        (double *)calloc((size_t)t.record_capacity, sizeof(double));
  }
  figures = (double *)calloc((size_t)world * FIG_COUNT, sizeof *figures);
  if (figures == NULL || (dist.launched && t.allreduce_ms == NULL)) {
    cli_error("out of host memory for the figures of %d ranks", world);
    rc = CLI_EXIT_FAILED;
    goto done;
  }
  on_gpu = cudl_context_device(ctx) == CUDL_DEVICE_CUDA;
  if (layout_auto) layout = cli_layout_for(ctx);
  gemm_size = on_gpu ? 4096 : 2048;
  settings.tf32 = precision == CUDL_PRECISION_TF32;
  cudl_context_set_allow_tf32(ctx, settings.tf32);
  cudl_context_set_seed(ctx, 1);

  s = cudl__tool_zoo_model(ctx, model.name, 0.0, model.channels, model.size,
                           model.size, model.classes, &t.model);
  if (s == CUDL_OK) s = cudl_model_set_precision(t.model, precision);
  if (s == CUDL_OK) s = cudl_model_set_layout(t.model, layout);
  if (s == CUDL_OK) s = cudl_model_set_fusion(t.model, fusion);
  if (s == CUDL_OK) s = cudl_model_compile(t.model, model.batch);
  if (s == CUDL_OK) s = cudl_model_init(t.model, CUDL_INIT_KAIMING_NORMAL);
  if (s == CUDL_OK) s = cudl_model_flops(t.model, &flops);
  if (s == CUDL_OK) s = cudl_model_set_grad_wire(t.model, grad_wire);
  if (s == CUDL_OK && t.comm != NULL)
    s = cudl_model_set_grad_sync(t.model, t.comm,
                                 run_dist_bucket_bytes(bucket_mb));
  if (s == CUDL_OK && t.diagnostics_every > 0) {
    t.capacity = cudl_model_node_count(t.model);
    t.rows =
        (cudl_layer_diagnostics *)calloc((size_t)t.capacity, sizeof *t.rows);
    s = t.rows == NULL
            ? CUDL_ERR_OUT_OF_MEMORY
            : cudl_model_set_diagnostics(t.model, t.diagnostics_every);
  }
  if (s == CUDL_OK) {
    const int64_t x_shape[4] = {model.batch, model.channels, model.size,
                                model.size};
    const int64_t rows = model.batch;
    int32_t *labels = (int32_t *)malloc((size_t)model.batch * sizeof *labels);
    int64_t k;
    s = labels == NULL ? CUDL_ERR_OUT_OF_MEMORY : CUDL_OK;
    for (k = 0; s == CUDL_OK && k < model.batch; ++k)
      labels[k] = (int32_t)((k * 7919) % model.classes);
    if (s == CUDL_OK)
      s = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, x_shape, &t.x);
    if (s == CUDL_OK) s = cudl_tensor_normal(t.x, 0.0f, 1.0f);
    if (s == CUDL_OK)
      s = cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, &rows, &t.labels);
    if (s == CUDL_OK)
      s = cudl_tensor_copy_from_host(t.labels, labels,
                                     (size_t)model.batch * sizeof *labels);
    free(labels);
  }
  if (s == CUDL_OK)
    s = cudl_optimizer_config_default(strcmp(optimizer, "adam") == 0
                                          ? CUDL_OPTIMIZER_ADAM
                                          : CUDL_OPTIMIZER_SGD,
                                      &config);
  if (s == CUDL_OK && strcmp(optimizer, "sgd") == 0) {
    config.lr = 0.05f;
    config.momentum = 0.9f;
    config.weight_decay = 5e-4f;
  }
  if (s == CUDL_OK)
    s = cudl_optimizer_create(
        ctx, &config, cudl_tensor_numel(cudl_model_params(t.model)), &t.opt);
  if (s == CUDL_OK) {
    /* The GEMM ceiling as cudl bench ops times it: samples of back-to-back
     * calls, whatever the steps' sampling. */
    bench_settings gemm_settings = settings;
    gemm_settings.warmup = 3;
    gemm_settings.samples = 10;
    gemm_settings.min_sample_ms = 50;
    s = bench_gemm_ceiling(ctx, gemm_size, &gemm_settings, &gemm_timing,
                           &gemm_gflops);
  }
  /* Warm up outside the timing (cuDNN's algorithm search, first-touch
   * allocations), then measure the peak of steady training only. */
  for (i = 0; s == CUDL_OK && i < settings.warmup; ++i) s = train_step(&t);
  if (s == CUDL_OK) s = cudl_context_synchronize(ctx);
  if (s == CUDL_OK) s = cudl_context_reset_peak_memory(ctx);
  if (s == CUDL_OK) s = bench_event_clock_init(ctx, &events, &clock);
  if (s == CUDL_OK) {
    bench_settings timed = settings;
    timed.warmup = 0;
    t.recording = 1;
    s = bench_time(&clock, train_step, &t, &timed, &timing);
    t.recording = 0;
  }
  if (s == CUDL_OK) s = cudl_context_memory_stats(ctx, &memory);
  if (s != CUDL_OK) {
    rc = cli_fail(ctx, s, "%s, batch %lld", model.name, model.batch);
    goto done;
  }
  peak_rss = bench_peak_rss();
  images_per_second = (double)model.batch / timing.median_ms * 1e3;
  {
    double *row = figures + (size_t)rank * FIG_COUNT;
    int r;
    row[FIG_IMAGES_PER_SECOND] = images_per_second;
    row[FIG_STEP_MEDIAN] = timing.median_ms;
    row[FIG_STEP_MIN] = timing.min_ms;
    row[FIG_STEP_MAX] = timing.max_ms;
    allreduce_stats(&t, row);
    if (dist.comm != NULL)
      s = cudl_comm_allreduce_sum_f64(dist.comm, figures,
                                      (int64_t)world * FIG_COUNT);
    if (s != CUDL_OK) {
      rc = cli_fail(ctx, s, "gathering the ranks' figures");
      goto done;
    }
    /* The job: images/s summed over the ranks; the all-reduce of the
     * slowest rank (the step cannot end before it) and the widest range. */
    for (r = 0; r < world; ++r) {
      const double *f = figures + (size_t)r * FIG_COUNT;
      images_total += f[FIG_IMAGES_PER_SECOND];
      if (r == 0 || f[FIG_ALLREDUCE_MEDIAN] > job[FIG_ALLREDUCE_MEDIAN])
        job[FIG_ALLREDUCE_MEDIAN] = f[FIG_ALLREDUCE_MEDIAN];
      if (r == 0 || f[FIG_ALLREDUCE_MIN] < job[FIG_ALLREDUCE_MIN])
        job[FIG_ALLREDUCE_MIN] = f[FIG_ALLREDUCE_MIN];
      if (r == 0 || f[FIG_ALLREDUCE_MAX] > job[FIG_ALLREDUCE_MAX])
        job[FIG_ALLREDUCE_MAX] = f[FIG_ALLREDUCE_MAX];
      if (r == 0 || share_of(f) > job_share) job_share = share_of(f);
    }
    /* The bytes on the wire: 2 per value on a 16-bit one. */
    grad_bytes = (double)cudl_dtype_size(cudl_model_grad_wire_dtype(t.model)) *
                 (double)cudl_tensor_numel(cudl_model_grads(t.model));
    if (job[FIG_ALLREDUCE_MEDIAN] > 0.0)
      algbw_gbps = grad_bytes / (job[FIG_ALLREDUCE_MEDIAN] * 1e-3) * 1e-9;
    busbw_gbps = algbw_gbps * 2.0 * (world - 1) / world;
  }
  if (!run_dist_root(&dist)) goto done;
  achieved = 3.0 * (double)flops * images_per_second * 1e-9;
  {
    FILE *table = json != NULL && strcmp(json, "-") == 0 ? stderr : stdout;
    fprintf(table,
            "%s, batch %lld, %dx%lldx%lld input, %s, %s%s, %s on %s:\n"
            "  %.1f images/s (step %.3f ms median, %.3f-%.3f min-max, %d "
            "samples of %d steps)\n"
            "  peak memory %.1f MiB (process resident set %.1f MiB)\n"
            "  %.2f MFLOP/image (3 x forward) -> %.1f GFLOP/s = %.1f%% of "
            "sgemm's %.1f GFLOP/s\n",
            model.name, model.batch, (int)model.channels, model.size,
            model.size, cudl_precision_name(precision),
            cudl_layout_name(layout), fusion ? "" : ", unfused", optimizer,
            cudl_context_device_name(ctx), images_per_second, timing.median_ms, timing.min_ms, timing.max_ms,
            timing.samples, timing.iterations,
            (double)memory.peak_bytes_in_use / 1048576.0,
            (double)peak_rss / 1048576.0, 3.0 * (double)flops * 1e-6, achieved,
            100.0 * achieved / gemm_gflops, gemm_gflops);
    if (dist.launched)
      fprintf(
          table,
          "  %d ranks (%s): %.1f images/s in all; all-reduce of %.0f "
          "bytes (%s) in %d bucket%s (--bucket-mb %g): exposed %.3f ms median "
          "(%.3f-%.3f), %.1f%% of the step, bus bandwidth %.3f GB/s\n",
          world, cudl_comm_backend(dist.comm), images_total, grad_bytes,
          cudl_dtype_name(cudl_model_grad_wire_dtype(t.model)),
          cudl_model_grad_sync_buckets(t.model),
          cudl_model_grad_sync_buckets(t.model) == 1 ? "" : "s", bucket_mb,
          job[FIG_ALLREDUCE_MEDIAN], job[FIG_ALLREDUCE_MIN],
          job[FIG_ALLREDUCE_MAX], 100.0 * job_share, busbw_gbps);
  }
  if (json != NULL) {
    FILE *f = cli_file_stream(&out);
    fprintf(f,
            "{\n  \"schema\": \"cudl-bench-train/1\",\n  \"tool\": "
            "\"cudl\",\n  \"impl\": \"cudl\",\n");
    bench_json_run_fields(f, ctx, settings.tf32);
    fprintf(f,
            "  \"precision\": \"%s\",\n  \"layout\": \"%s\",\n"
            "  \"fusion\": %s,\n  \"model\": ",
            cudl_precision_name(precision), cudl_layout_name(layout),
            fusion ? "true" : "false");
    bench_json_string(f, model.name);
    fprintf(f,
            ",\n  \"batch\": %lld,\n"
            "  \"input_shape\": [%lld, %lld, %lld],\n  \"classes\": %lld,\n"
            "  \"optimizer\": \"%s\",\n  \"diagnostics_every\": %d,\n"
            "  \"steps\": %d,\n  \"steps_per_sample\": %d,\n  \"warmup\": %d,\n"
            "  \"images_per_second\": %.6g,\n  \"step_ms_median\": %.6g,\n"
            "  \"step_ms_min\": %.6g,\n  \"step_ms_max\": %.6g,\n"
            "  \"peak_memory_bytes\": %llu,\n"
            "  \"peak_host_memory_bytes\": %llu,\n"
            "  \"peak_device_memory_bytes\": %llu,\n"
            "  \"flops_per_image\": %lld,\n  \"achieved_gflops\": %.6g,\n"
            "  \"gemm_gflops\": %.6g,\n  \"flop_utilisation\": %.6g,\n",
            model.batch, model.channels, model.size, model.size, model.classes,
            optimizer, t.diagnostics_every, timing.samples * timing.iterations,
            timing.iterations, settings.warmup, images_per_second,
            timing.median_ms, timing.min_ms, timing.max_ms,
            (unsigned long long)memory.peak_bytes_in_use,
            (unsigned long long)peak_rss,
            (unsigned long long)(on_gpu ? memory.peak_bytes_in_use : 0),
            (long long)(3 * flops), achieved, gemm_gflops,
            achieved / gemm_gflops);
    /* null for one process: no communicator. */
    fprintf(f, "  \"dist_backend\": ");
    if (dist.comm != NULL)
      bench_json_string(f, cudl_comm_backend(dist.comm));
    else
      fprintf(f, "null");
    fprintf(f,
            ",\n  \"world\": %d,\n  \"images_per_second_total\": %.6g,\n"
            "  \"grad_wire\": \"%s\",\n"
            "  \"bucket_bytes\": %lld,\n  \"buckets\": %d,\n"
            "  \"allreduce_ms_median\": %.6g,\n  \"allreduce_ms_min\": %.6g,\n"
            "  \"allreduce_ms_max\": %.6g,\n  \"allreduce_share\": %.6g,\n"
            "  \"grad_bytes\": %.0f,\n  \"allreduce_algbw_gbps\": %.6g,\n"
            "  \"allreduce_busbw_gbps\": %.6g,\n  \"ranks\": [",
            world, images_total,
            cudl_dtype_name(cudl_model_grad_wire_dtype(t.model)),
            (long long)(t.comm != NULL ? run_dist_bucket_bytes(bucket_mb) : 0),
            cudl_model_grad_sync_buckets(t.model), job[FIG_ALLREDUCE_MEDIAN],
            job[FIG_ALLREDUCE_MIN], job[FIG_ALLREDUCE_MAX], job_share,
            grad_bytes, algbw_gbps, busbw_gbps);
    for (i = 0; i < world; ++i) {
      const double *r = figures + (size_t)i * FIG_COUNT;
      fprintf(f,
              "%s\n    {\"rank\": %d, \"images_per_second\": %.6g, "
              "\"step_ms_median\": %.6g, \"step_ms_min\": %.6g, "
              "\"step_ms_max\": %.6g, \"allreduce_ms_median\": %.6g, "
              "\"allreduce_ms_min\": %.6g, \"allreduce_ms_max\": %.6g, "
              "\"allreduce_share\": %.6g}",
              i == 0 ? "" : ",", i, r[FIG_IMAGES_PER_SECOND],
              r[FIG_STEP_MEDIAN], r[FIG_STEP_MIN], r[FIG_STEP_MAX],
              r[FIG_ALLREDUCE_MEDIAN], r[FIG_ALLREDUCE_MIN],
              r[FIG_ALLREDUCE_MAX], share_of(r));
    }
    fprintf(f, "\n  ]\n}\n");
  }
done:
  if (json != NULL && !cli_file_close(&out, rc == CLI_EXIT_OK))
    rc = CLI_EXIT_FAILED;
  bench_event_clock_free(&events);
  cudl_optimizer_destroy(t.opt);
  cudl_tensor_destroy(t.x);
  cudl_tensor_destroy(t.labels);
  cudl_model_destroy(t.model);
  free(t.rows);
  free(t.allreduce_ms);
  free(figures);
  /* A failing rank ends the job: the others may wait for it. */
  rc = run_dist_finish(&dist, rc);
  cudl_context_destroy(ctx);
  return rc;
}
