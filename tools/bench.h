/* bench.h - the method `cudl bench` measures by: the timing loop, its
 * clocks, and the JSON writer (docs/benchmarks.md describes it). The peers
 * timed beside cudl are bench_peers.h's; the subcommands are commands.h's.
 */
#ifndef CUDL_TOOLS_BENCH_H
#define CUDL_TOOLS_BENCH_H

#include <stdint.h>
#include <stdio.h>

#include <cudl/cudl.h>

/* How long to time a case. */
typedef struct bench_settings {
  int warmup;           /* untimed calls first */
  int samples;          /* timed samples at most */
  double min_sample_ms; /* a sample repeats the call at least this long */
  double max_seconds;   /* stop sampling a case after this (>= 1 sample) */
  int tf32;             /* allow TF32 in cuBLAS/cuDNN (cudl and peers) */
} bench_settings;

typedef struct bench_timing {
  double median_ms, min_ms, max_ms; /* per call, over the samples */
  int samples, iterations;          /* iterations: calls per sample */
} bench_timing;

/* A timer on some queue of work: start marks now, stop_ms marks the end,
 * waits for it and returns the milliseconds between the two. */
typedef struct bench_clock {
  cudl_status (*start)(void *self);
  cudl_status (*stop_ms)(void *self, double *ms);
  void *self;
} bench_clock;

/* The work timed: one call of the operation. */
typedef cudl_status (*bench_call)(void *arg);

/* Time `call` by the method of docs/benchmarks.md. On failure the status of
 * the failing call is returned (and the context's error says why). */
cudl_status bench_time(const bench_clock *clock, bench_call call, void *arg,
                       const bench_settings *settings, bench_timing *out);

/* The zoo model a benchmark builds (bench train, bench infer): its name
 * and its input, with each command's defaults. */
typedef struct bench_model_options {
  const char *name; /* --model */
  /* --batch, --channels, --size (height and width), --classes */
  long long batch, channels, size, classes;
} bench_model_options;

/* 1 when option a with value v is one of the model's options and v is in
 * its range (batch and classes 1 to 2^20, channels and size 1 to 4096):
 * then it is stored in *model. 0 otherwise, for the command's own options
 * and its usage error. */
int bench_parse_model_option(const char *a, const char *v,
                             bench_model_options *model);

/* A clock from two cudl events of ctx (CUDA events or the CPU's monotonic
 * clock): *events_out receives the pair, to free with bench_clock_free. */
typedef struct bench_event_clock {
  cudl_event *start, *end;
} bench_event_clock;
cudl_status bench_event_clock_init(cudl_context *ctx, bench_event_clock *ec,
                                   bench_clock *clock);
void bench_event_clock_free(bench_event_clock *ec);

/* ---- output ---- */

/* Write s as a JSON string (quoted, escaped). */
void bench_json_string(FILE *f, const char *s);
/* Write n integers as a JSON array. */
void bench_json_ints(FILE *f, const int64_t *v, int n);
/* The fields every JSON object of `cudl bench` has, each on its own line
 * and followed by a comma: version, device, device_name, threads, date,
 * tf32, and on a GPU the cuDNN cudl loaded and the one its headers named
 * (docs/benchmarks.md). */
void bench_json_run_fields(FILE *f, cudl_context *ctx, int tf32);
/* UTC now as "YYYY-MM-DDTHH:MM:SSZ". */
void bench_utc_now(char *buf, size_t size);
/* The device's plain name for the JSON: "cpu", or the GPU's name as the
 * driver gives it ("NVIDIA H100 80GB HBM3"), as PyTorch reports it, so that
 * benchmarks/report.py joins the two runs. */
void bench_device_name(cudl_context *ctx, char *buf, size_t size);
/* Threads the CPU backend uses (OpenMP), 1 without OpenMP. */
int bench_threads(void);
/* The process's peak resident set in bytes (getrusage), 0 if unknown. */
uint64_t bench_peak_rss(void);

#endif /* CUDL_TOOLS_BENCH_H */
