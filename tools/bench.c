/* bench.c - the timing loop `cudl bench ops|train|infer` share, the model
 * options of train and infer, and small output helpers. The method is
 * docs/benchmarks.md's. */
#include "bench.h"

#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "cli.h"
#if defined(_OPENMP)
#  include <omp.h>
#endif

static int compare_doubles(const void *a, const void *b) {
  double x = *(const double *)a, y = *(const double *)b;
  return (x > y) - (x < y);
}

/* Run `count` calls inside one sample of the clock; *ms per call. */
static cudl_status timed_sample(const bench_clock *clock, bench_call call,
                                void *arg, int count, double *ms) {
  cudl_status s = clock->start(clock->self);
  int i;
  for (i = 0; s == CUDL_OK && i < count; ++i) s = call(arg);
  if (s == CUDL_OK) s = clock->stop_ms(clock->self, ms);
  if (s == CUDL_OK) *ms /= count;
  return s;
}

cudl_status bench_time(const bench_clock *clock, bench_call call, void *arg,
                       const bench_settings *settings, bench_timing *out) {
  enum { MAX_SAMPLES = 1000, MAX_ITERATIONS = 100000 };
  double times[MAX_SAMPLES], one = 0.0, spent_ms = 0.0;
  int i, iterations, samples = settings->samples;
  cudl_status s = CUDL_OK;
  memset(out, 0, sizeof *out);
  if (samples < 1) samples = 1;
  if (samples > MAX_SAMPLES) samples = MAX_SAMPLES;
  for (i = 0; s == CUDL_OK && i < settings->warmup; ++i) s = call(arg);
  /* One timed call sizes the samples: enough calls that launch latency
   * and the clock's resolution do not show. */
  if (s == CUDL_OK) s = timed_sample(clock, call, arg, 1, &one);
  if (s != CUDL_OK) return s;
  if (one <= 0.0) one = 1e-6;
  iterations = (int)(settings->min_sample_ms / one) + 1;
  if (iterations > MAX_ITERATIONS) iterations = MAX_ITERATIONS;
  for (i = 0; i < samples; ++i) {
    s = timed_sample(clock, call, arg, iterations, &times[i]);
    if (s != CUDL_OK) return s;
    spent_ms += times[i] * iterations;
    if (spent_ms > settings->max_seconds * 1e3) {
      ++i;
      break;
    }
  }
  qsort(times, (size_t)i, sizeof times[0], compare_doubles);
  out->samples = i;
  out->iterations = iterations;
  out->min_ms = times[0];
  out->max_ms = times[i - 1];
  out->median_ms =
      i % 2 == 1 ? times[i / 2] : 0.5 * (times[i / 2 - 1] + times[i / 2]);
  return CUDL_OK;
}

static cudl_status event_clock_start(void *self) {
  return cudl_event_record(((bench_event_clock *)self)->start);
}

static cudl_status event_clock_stop(void *self, double *ms) {
  bench_event_clock *ec = (bench_event_clock *)self;
  cudl_status s = cudl_event_record(ec->end);
  if (s == CUDL_OK) s = cudl_event_elapsed_ms(ec->start, ec->end, ms);
  return s;
}

cudl_status bench_event_clock_init(cudl_context *ctx, bench_event_clock *ec,
                                   bench_clock *clock) {
  cudl_status s;
  memset(ec, 0, sizeof *ec);
  s = cudl_event_create(ctx, &ec->start);
  if (s == CUDL_OK) s = cudl_event_create(ctx, &ec->end);
  if (s != CUDL_OK) {
    bench_event_clock_free(ec);
    return s;
  }
  clock->start = event_clock_start;
  clock->stop_ms = event_clock_stop;
  clock->self = ec;
  return CUDL_OK;
}

void bench_event_clock_free(bench_event_clock *ec) {
  cudl_event_destroy(ec->start);
  cudl_event_destroy(ec->end);
  ec->start = ec->end = NULL;
}

void bench_json_string(FILE *f, const char *s) {
  fputc('"', f);
  for (; *s != '\0'; ++s) {
    unsigned char c = (unsigned char)*s;
    if (c == '"' || c == '\\')
      fprintf(f, "\\%c", c);
    else if (c < 0x20)
      fprintf(f, "\\u%04x", c);
    else
      fputc(c, f);
  }
  fputc('"', f);
}

void bench_json_ints(FILE *f, const int64_t *v, int n) {
  int i;
  fputc('[', f);
  for (i = 0; i < n; ++i) fprintf(f, "%s%lld", i ? ", " : "", (long long)v[i]);
  fputc(']', f);
}

void bench_json_run_fields(FILE *f, cudl_context *ctx, int tf32) {
  char name[256], date[32];
  cudl_cuda_versions versions;
  bench_device_name(ctx, name, sizeof name);
  bench_utc_now(date, sizeof date);
  fprintf(f, "  \"version\": ");
  bench_json_string(f, cudl_version());
  if (cudl_context_device(ctx) == CUDL_DEVICE_CUDA)
    fprintf(f, ",\n  \"device\": \"cuda:%d\"", cudl_context_device_index(ctx));
  else
    fprintf(f, ",\n  \"device\": \"cpu\"");
  fprintf(f, ",\n  \"device_name\": ");
  bench_json_string(f, name);
  fprintf(f, ",\n  \"threads\": %d,\n  \"date\": \"%s\",\n  \"tf32\": %s,\n",
          bench_threads(), date, tf32 ? "true" : "false");
  /* PyTorch records the cuDNN it runs on; the report puts the two side by
   * side, since a newer cuDNN can move every convolution's figure. */
  if (cudl_context_device(ctx) == CUDL_DEVICE_CUDA &&
      cudl_cuda_versions_query(&versions) == CUDL_OK)
    fprintf(f, "  \"cudnn\": %d,\n  \"cudnn_headers\": %d,\n",
            versions.cudnn_loaded, versions.cudnn_compiled);
}

void bench_utc_now(char *buf, size_t size) {
  time_t now = time(NULL);
  struct tm tm;
  gmtime_r(&now, &tm);
  strftime(buf, size, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

void bench_device_name(cudl_context *ctx, char *buf, size_t size) {
  cudl_cuda_device_properties props;
  if (cudl_context_device(ctx) == CUDL_DEVICE_CUDA &&
      cudl_cuda_device_properties_query(cudl_context_device_index(ctx),
                                        &props) == CUDL_OK)
    snprintf(buf, size, "%s", props.name);
  else
    snprintf(buf, size, "cpu");
}

int bench_threads(void) {
#if defined(_OPENMP)
  return omp_get_max_threads();
#else
  return 1;
#endif
}

uint64_t bench_peak_rss(void) {
  struct rusage usage;
  if (getrusage(RUSAGE_SELF, &usage) != 0) return 0;
  return (uint64_t)usage.ru_maxrss * 1024u; /* Linux reports KiB */
}

int bench_parse_model_option(const char *a, const char *v,
                             bench_model_options *model) {
  long long value = 0;
  if (strcmp(a, "--model") == 0) {
    model->name = v;
    return 1;
  }
  if (strcmp(a, "--batch") == 0 && cli_parse_int(v, 1, 1 << 20, &value))
    model->batch = value;
  else if (strcmp(a, "--channels") == 0 && cli_parse_int(v, 1, 4096, &value))
    model->channels = value;
  else if (strcmp(a, "--size") == 0 && cli_parse_int(v, 1, 4096, &value))
    model->size = value;
  else if (strcmp(a, "--classes") == 0 && cli_parse_int(v, 1, 1 << 20, &value))
    model->classes = value;
  else
    return 0;
  return 1;
}
