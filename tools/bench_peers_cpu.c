/* bench_peers_cpu.c - the CPU's ceilings, measured beside cudl: the copy
 * rate (memcpy split over the OpenMP threads, as cudl's own loops are) and
 * oneDNN's sgemm called directly. */
#include <stdlib.h>
#include <string.h>

#include <dnnl.h>

#include "bench.h"
#include "bench_peers.h"

typedef struct copy_args {
  char *dst;
  const char *src;
  size_t bytes;
} copy_args;

static cudl_status split_memcpy(void *arg) {
  const copy_args *c = (const copy_args *)arg;
  const int chunks = bench_threads();
  int i;
#pragma omp parallel for schedule(static)
  for (i = 0; i < chunks; ++i) {
    size_t begin = c->bytes / (size_t)chunks * (size_t)i;
    size_t end = i + 1 == chunks ? c->bytes
                                 : c->bytes / (size_t)chunks * (size_t)(i + 1);
    memcpy(c->dst + begin, c->src + begin, end - begin);
  }
  return CUDL_OK;
}

typedef struct gemm_args {
  int n;
  const float *a, *b;
  float *c;
} gemm_args;

static cudl_status onednn_sgemm(void *arg) {
  const gemm_args *g = (const gemm_args *)arg;
  return dnnl_sgemm('N', 'N', g->n, g->n, g->n, 1.0f, g->a, g->n, g->b, g->n,
                    0.0f, g->c, g->n) == dnnl_success
             ? CUDL_OK
             : CUDL_ERR_INTERNAL;
}

/* Time `call` with ctx's (CPU) events. */
static cudl_status time_on(cudl_context *ctx, bench_call call, void *arg,
                           const bench_settings *settings,
                           bench_timing *timing) {
  bench_event_clock ec;
  bench_clock clock;
  cudl_status s = bench_event_clock_init(ctx, &ec, &clock);
  if (s == CUDL_OK) s = bench_time(&clock, call, arg, settings, timing);
  bench_event_clock_free(&ec);
  return s;
}

cudl_status bench_cpu_copy_ceiling(cudl_context *ctx, size_t bytes,
                                   const bench_settings *settings,
                                   bench_timing *timing, double *gbps) {
  copy_args c;
  cudl_status s;
  char *src = (char *)malloc(bytes), *dst = (char *)malloc(bytes);
  if (src == NULL || dst == NULL) {
    free(src);
    free(dst);
    return CUDL_ERR_OUT_OF_MEMORY;
  }
  /* Touch every page first so that faults are not timed. */
  memset(src, 1, bytes);
  memset(dst, 0, bytes);
  c.dst = dst;
  c.src = src;
  c.bytes = bytes;
  s = time_on(ctx, split_memcpy, &c, settings, timing);
  if (s == CUDL_OK) *gbps = 2.0 * (double)bytes / timing->median_ms * 1e-6;
  free(src);
  free(dst);
  return s;
}

cudl_status bench_cpu_gemm_ceiling(cudl_context *ctx, int n,
                                   const bench_settings *settings,
                                   bench_timing *timing, double *gflops) {
  gemm_args g;
  cudl_status s;
  size_t count = (size_t)n * (size_t)n, i;
  float *a = (float *)malloc(count * sizeof *a);
  float *b = (float *)malloc(count * sizeof *b);
  float *c = (float *)malloc(count * sizeof *c);
  if (a == NULL || b == NULL || c == NULL) {
    free(a);
    free(b);
    free(c);
    return CUDL_ERR_OUT_OF_MEMORY;
  }
  for (i = 0; i < count; ++i) {
    a[i] = (float)(i % 17) * 0.01f;
    b[i] = (float)(i % 13) * 0.01f;
    c[i] = 0.0f;
  }
  g.n = n;
  g.a = a;
  g.b = b;
  g.c = c;
  s = time_on(ctx, onednn_sgemm, &g, settings, timing);
  if (s == CUDL_OK)
    *gflops = 2.0 * (double)n * n * n / timing->median_ms * 1e-6;
  free(a);
  free(b);
  free(c);
  return s;
}
