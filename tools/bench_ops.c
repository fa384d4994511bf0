/* bench_ops.c - `cudl bench ops`: every operator, forward and backward, on
 * CIFAR-scale and large tensors, beside the copy and GEMM ceilings measured
 * in the same run and, on a GPU, cuDNN's own batch norm, pooling and
 * activations. The cases and the bytes each must move are listed in
 * docs/benchmarks.md; keep the two in step (benchmarks/torch_ref.py times
 * the same cases in PyTorch). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "bench.h"
#include "bench_peers.h"
#include "cli.h"
#include "cli_file.h"
#include "commands.h"
enum { MAX_OWNED = 16 };

/* One timed pass. */
typedef struct op_result {
  char op[24], pass[16], size[8], impl[8];
  int ndim, wdim;
  int64_t shape[4], weight[4];
  bench_timing t;
  double bytes, flops;
  int gemm_bound; /* ceiling: 1 GEMM rate, 0 copy rate */
} op_result;

typedef struct ops_run {
  cudl_context *ctx;
  bench_settings settings;
  bench_clock clock;
  bench_event_clock events;
  int on_gpu, with_cudnn;
  FILE *table; /* the human table: stdout, or stderr when JSON goes there */
  const char *only; /* --ops: comma-separated names, or NULL for all */
  double copy_gbps, gemm_gflops;
  size_t copy_bytes;
  int gemm_size;
  op_result *results;
  int count, capacity, failures;
  /* the current case's tensors, freed when it ends */
  cudl_tensor *owned[MAX_OWNED];
  int owned_count;
  cudl_status status; /* of the current case's setup */
} ops_run;

/* The arguments of one operator call (each case sets what it uses). */
typedef struct op_args {
  cudl_context *ctx;
  cudl_tensor *x, *y, *dy, *dx, *a, *b, *c, *d, *e, *f;
  cudl_tensor *residual, *dresidual; /* batch norm's fused path */
  float alpha;
  cudl_pool2d_desc pool;
  cudl_conv2d_desc conv;
  cudl_optimizer *opt;
} op_args;

/* ---- the calls ---- */

#define CALL(name, expr)                     \
  static cudl_status name(void *arg) {       \
    const op_args *p = (const op_args *)arg; \
    return expr;                             \
  }
CALL(relu_f, cudl_relu_forward(p->ctx, p->x, p->y))
CALL(relu_b, cudl_relu_backward(p->ctx, p->x, p->dy, p->dx))
CALL(sigmoid_f, cudl_sigmoid_forward(p->ctx, p->x, p->y))
CALL(sigmoid_b, cudl_sigmoid_backward(p->ctx, p->y, p->dy, p->dx))
CALL(tanh_f, cudl_tanh_forward(p->ctx, p->x, p->y))
CALL(tanh_b, cudl_tanh_backward(p->ctx, p->y, p->dy, p->dx))
CALL(leaky_f, cudl_leaky_relu_forward(p->ctx, p->x, p->alpha, p->y))
CALL(leaky_b, cudl_leaky_relu_backward(p->ctx, p->x, p->alpha, p->dy, p->dx))
CALL(elu_f, cudl_elu_forward(p->ctx, p->x, p->alpha, p->y))
CALL(elu_b, cudl_elu_backward(p->ctx, p->x, p->alpha, p->dy, p->dx))
CALL(prelu_f, cudl_prelu_forward(p->ctx, p->x, p->a, p->y))
CALL(prelu_b, cudl_prelu_backward(p->ctx, p->x, p->a, p->dy, p->dx, p->b))
CALL(rrelu_f,
     cudl_rrelu_forward(p->ctx, p->x, 0.125f, 1.0f / 3.0f, 1, p->a, p->y))
CALL(rrelu_b, cudl_rrelu_backward(p->ctx, p->a, p->dy, p->dx))
CALL(dropout_f, cudl_dropout_forward(p->ctx, p->x, 0.5f, 1, p->a, p->y))
CALL(dropout_b, cudl_dropout_backward(p->ctx, p->a, p->dy, p->dx))
/* The fused path of a ReLU before dropout: one pass each way. */
CALL(relu_dropout_f, cudl_activation_dropout_forward(p->ctx, CUDL_ACT_RELU,
                                                     0.0f, p->x, 0.5f, p->a,
                                                     p->y))
CALL(relu_dropout_b,
     cudl_activation_dropout_backward(p->ctx, CUDL_ACT_RELU, 0.0f, p->x, p->a,
                                      p->dy, p->dx))
CALL(maxpool_f, cudl_max_pool2d_forward(p->ctx, &p->pool, p->x, p->y))
CALL(maxpool_b, cudl_max_pool2d_backward(p->ctx, &p->pool, p->x, p->dy, p->dx))
CALL(avgpool_f, cudl_avg_pool2d_forward(p->ctx, &p->pool, p->x, p->y))
CALL(avgpool_b, cudl_avg_pool2d_backward(p->ctx, &p->pool, p->dy, p->dx))
CALL(gap_f, cudl_global_avg_pool_forward(p->ctx, p->x, p->y))
CALL(gap_b, cudl_global_avg_pool_backward(p->ctx, p->dy, p->dx))
/* a gamma, b beta, c running mean, d running var, e save mean, f invstd */
CALL(bn_f, cudl_batchnorm_forward_training(p->ctx, p->x, p->a, p->b, 0.1f,
                                           1e-5f, p->c, p->d, p->y, p->e, p->f))
CALL(bn_b, cudl_batchnorm_backward(p->ctx, p->x, p->dy, p->a, p->e, p->f, p->dx,
                                   p->c, p->d))
CALL(bn_inf, cudl_batchnorm_forward_inference(p->ctx, p->x, p->a, p->b, p->c,
                                              p->d, 1e-5f, p->y))
/* The fused path of a ResNet block's end: batch norm, residual, ReLU. */
static cudl_status bn_add_relu_f(void *arg) {
  const op_args *p = (const op_args *)arg;
  cudl_status s = cudl_batchnorm_statistics(p->ctx, p->x, 0.1f, 1e-5f, p->c,
                                            p->d, p->e, p->f);
  if (s != CUDL_OK) return s;
  return cudl_batchnorm_apply(p->ctx, p->x, p->a, p->b, p->e, p->f,
                              p->residual, 1, p->y);
}
CALL(bn_add_relu_b,
     cudl_batchnorm_relu_backward(p->ctx, p->x, p->y, p->dy, p->a, p->e, p->f,
                                  p->dx, p->dresidual, p->c, p->d))
CALL(add_f, cudl_add(p->ctx, p->x, 1.0f, p->a, p->y))
CALL(mse_f,
     cudl_mse_loss_forward(p->ctx, p->x, p->a, CUDL_REDUCTION_MEAN, p->b))
CALL(mse_b, cudl_mse_loss_backward(p->ctx, p->x, p->a, CUDL_REDUCTION_MEAN,
                                   1.0f, p->dx))
CALL(ce_f, cudl_cross_entropy_forward(p->ctx, p->x, p->a, 0.0f,
                                      CUDL_REDUCTION_MEAN, p->b))
CALL(ce_b, cudl_cross_entropy_backward(p->ctx, p->x, p->a, 0.0f,
                                       CUDL_REDUCTION_MEAN, 1.0f, p->dx))
/* convolution and linear: x input, a weight, y output */
CALL(conv_f, cudl_conv2d_forward(p->ctx, &p->conv, p->x, p->a, NULL, p->y))
CALL(conv_bd, cudl_conv2d_backward_data(p->ctx, &p->conv, p->a, p->dy, p->dx))
CALL(conv_bf, cudl_conv2d_backward_filter(p->ctx, &p->conv, p->x, p->dy, p->b))
CALL(linear_f, cudl_linear_forward(p->ctx, p->x, p->a, NULL, p->y))
CALL(linear_bd,
     cudl_linear_backward(p->ctx, NULL, p->a, p->dy, p->dx, NULL, NULL))
CALL(linear_bf,
     cudl_linear_backward(p->ctx, p->x, p->a, p->dy, NULL, p->b, NULL))
CALL(optim_step, cudl_optimizer_step(p->opt, p->x, p->a, 0.01f))
#undef CALL

/* ---- cases ---- */

/* Every op name --ops takes, in the order they run; "copy" is timed with
 * --sweep only. */
static const char *const op_names[] = {"relu",
                                       "sigmoid",
                                       "tanh",
                                       "leaky_relu",
                                       "elu",
                                       "prelu",
                                       "rrelu",
                                       "dropout",
                                       "relu_dropout",
                                       "max_pool2d",
                                       "avg_pool2d",
                                       "global_avg_pool",
                                       "batchnorm",
                                       "batchnorm_inference",
                                       "batchnorm_add_relu",
                                       "add",
                                       "mse_loss",
                                       "cross_entropy",
                                       "conv2d",
                                       "linear",
                                       "sgd",
                                       "adam",
                                       "copy"};
#define OP_NAME_COUNT (sizeof op_names / sizeof op_names[0])

/* A usage error for the first name in list (--ops) that is not an op, or
 * an empty list or name; 0 when every name is one. */
static int check_op_names(const char *list, int sweep) {
  const char *s = list;
  size_t k;
  for (;;) {
    const size_t len = strcspn(s, ",");
    int known = 0;
    if (len == 0)
      return cli_usage_error(
          "--ops '%s' has an empty name: a comma-separated list of the ops "
          "cudl bench ops --help lists",
          list);
    for (k = 0; k < OP_NAME_COUNT && !known; ++k)
      known = strlen(op_names[k]) == len && strncmp(op_names[k], s, len) == 0;
    if (!known)
      return cli_usage_error(
          "--ops: unknown op '%.*s' (cudl bench ops --help lists them)",
          (int)len, s);
    if (len == 4 && strncmp(s, "copy", 4) == 0 && !sweep)
      return cli_usage_error("--ops copy: the copy is timed with --sweep only");
    if (s[len] == '\0') return 0;
    s += len + 1;
  }
}

static int selected(const ops_run *r, const char *op) {
  const char *s = r->only;
  size_t n = strlen(op);
  if (s == NULL) return 1;
  while (*s != '\0') {
    const char *end = strchr(s, ',');
    size_t len = end ? (size_t)(end - s) : strlen(s);
    if (len == n && strncmp(s, op, n) == 0) return 1;
    if (end == NULL) break;
    s = end + 1;
  }
  return 0;
}

/* A tensor for the current case, uniform in [lo, hi]; NULL (and
 * r->status set) on failure, and a no-op once something has failed. */
static cudl_tensor *make(ops_run *r, int ndim, const int64_t *shape, float lo,
                         float hi) {
  cudl_tensor *t = NULL;
  if (r->status != CUDL_OK) return NULL;
  if (r->owned_count == MAX_OWNED) {
    r->status = CUDL_ERR_INTERNAL;
    return NULL;
  }
  r->status = cudl_tensor_create(r->ctx, CUDL_DTYPE_F32, ndim, shape, &t);
  if (r->status == CUDL_OK) r->status = cudl_tensor_uniform(t, lo, hi);
  if (t != NULL) r->owned[r->owned_count++] = t;
  return r->status == CUDL_OK ? t : NULL;
}

static cudl_tensor *make_vector(ops_run *r, int64_t n, float lo, float hi) {
  return make(r, 1, &n, lo, hi);
}

/* i32 class labels in [0, classes), from a fixed pattern. */
static cudl_tensor *make_labels(ops_run *r, int64_t rows, int64_t classes) {
  cudl_tensor *t = NULL;
  int32_t *host;
  int64_t i;
  if (r->status != CUDL_OK) return NULL;
  host = (int32_t *)malloc((size_t)rows * sizeof *host);
  if (host == NULL) {
    r->status = CUDL_ERR_OUT_OF_MEMORY;
    return NULL;
  }
  for (i = 0; i < rows; ++i) host[i] = (int32_t)((i * 7919) % classes);
  r->status = cudl_tensor_create(r->ctx, CUDL_DTYPE_I32, 1, &rows, &t);
  if (r->status == CUDL_OK)
    r->status = cudl_tensor_copy_from_host(t, host, (size_t)rows * 4u);
  free(host);
  if (t != NULL) r->owned[r->owned_count++] = t;
  return r->status == CUDL_OK ? t : NULL;
}

/* Free the case's tensors; a failure while setting it up is reported and
 * counted here, and the next case starts afresh. */
static void end_case(ops_run *r, const char *what) {
  int i;
  if (r->status != CUDL_OK) {
    cli_fail(r->ctx, r->status, "setting up %s failed", what);
    ++r->failures;
  }
  for (i = 0; i < r->owned_count; ++i) cudl_tensor_destroy(r->owned[i]);
  r->owned_count = 0;
  r->status = CUDL_OK;
}

static op_result *new_result(ops_run *r) {
  if (r->count == r->capacity) {
    int cap = r->capacity ? 2 * r->capacity : 64;
    op_result *grown =
        (op_result *)realloc(r->results, (size_t)cap * sizeof *grown);
    if (grown == NULL) return NULL;
    r->results = grown;
    r->capacity = cap;
  }
  memset(&r->results[r->count], 0, sizeof r->results[0]);
  return &r->results[r->count++];
}

static void print_result(const ops_run *r, const op_result *res) {
  char shape[64];
  int i, at = 0;
  double rate = res->gemm_bound ? res->flops / res->t.median_ms * 1e-6
                                : res->bytes / res->t.median_ms * 1e-6;
  double ceiling = res->gemm_bound ? r->gemm_gflops : r->copy_gbps;
  for (i = 0; i < res->ndim && at < (int)sizeof shape - 12; ++i)
    at += snprintf(shape + at, sizeof shape - (size_t)at, "%s%lld",
                   i ? "x" : "", (long long)res->shape[i]);
  fprintf(r->table, "%-20s %-16s %-6s %-6s %-16s %10.4f %9.1f %-6s %5.1f%%\n",
          res->op, res->pass, res->size, res->impl, shape, res->t.median_ms,
          rate, res->gemm_bound ? "GFLOP" : "GB/s",
          ceiling > 0 ? 100.0 * rate / ceiling : 0.0);
  fflush(r->table);
}

/* Time one pass of the current case and record it. */
static void run_pass(ops_run *r, const char *op, const char *pass,
                     const char *size, bench_call call, op_args *args,
                     const cudl_tensor *shape_of, double bytes, double flops,
                     const cudl_tensor *weight) {
  op_result *res;
  bench_timing t;
  cudl_status s;
  if (r->status != CUDL_OK) return;
  s = bench_time(&r->clock, call, args, &r->settings, &t);
  if (s != CUDL_OK) {
    cli_fail(r->ctx, s, "%s %s (%s)", op, pass, size);
    ++r->failures;
    return;
  }
  res = new_result(r);
  if (res == NULL) {
    ++r->failures;
    return;
  }
  snprintf(res->op, sizeof res->op, "%s", op);
  snprintf(res->pass, sizeof res->pass, "%s", pass);
  snprintf(res->size, sizeof res->size, "%s", size);
  snprintf(res->impl, sizeof res->impl, "cudl");
  res->ndim = cudl_tensor_ndim(shape_of);
  memcpy(res->shape, cudl_tensor_shape(shape_of),
         (size_t)res->ndim * sizeof(int64_t));
  if (weight != NULL) {
    res->wdim = cudl_tensor_ndim(weight);
    memcpy(res->weight, cudl_tensor_shape(weight),
           (size_t)res->wdim * sizeof(int64_t));
  }
  res->t = t;
  res->bytes = bytes;
  res->flops = flops;
  res->gemm_bound = flops > 0;
  print_result(r, res);
}

/* cuDNN's own implementation of the same pass (GPU only). */
static void run_cudnn(ops_run *r, const char *op, const char *pass,
                      const char *size, bench_cudnn_op which, int backward,
                      const int64_t shape[4], double bytes) {
  op_result *res;
  bench_timing t;
  cudl_status s;
  if (!r->with_cudnn) return;
  s = bench_cudnn_time(r->ctx, which, backward, shape, &r->settings, &t);
  if (s != CUDL_OK) {
    cli_fail(r->ctx, s, "cudnn %s %s (%s)", op, pass, size);
    ++r->failures;
    return;
  }
  res = new_result(r);
  if (res == NULL) return;
  snprintf(res->op, sizeof res->op, "%s", op);
  snprintf(res->pass, sizeof res->pass, "%s", pass);
  snprintf(res->size, sizeof res->size, "%s", size);
  snprintf(res->impl, sizeof res->impl, "cudnn");
  res->ndim = 4;
  memcpy(res->shape, shape, 4 * sizeof(int64_t));
  res->t = t;
  res->bytes = bytes;
  print_result(r, res);
}

/* The elementwise activations, dropout (alone and after a ReLU) and RReLU
 * on X. */
static void bench_elementwise(ops_run *r, const char *size,
                              const int64_t x_shape[4]) {
  static const struct {
    const char *op;
    bench_call fwd, bwd;
    float alpha;
    int saved_is_y;       /* backward reads y (sigmoid, tanh) */
    int aux;              /* forward writes a mask or noise (3n bytes) */
    int backward_reads;   /* tensors backward reads (it writes dx) */
    bench_cudnn_op cudnn; /* its cuDNN peer ... */
    int has_cudnn;        /* ... when it has one */
  } ops[] = {
      {"relu", relu_f, relu_b, 0.0f, 0, 0, 2, BENCH_CUDNN_RELU, 1},
      {"sigmoid", sigmoid_f, sigmoid_b, 0.0f, 1, 0, 2, BENCH_CUDNN_SIGMOID, 1},
      {"tanh", tanh_f, tanh_b, 0.0f, 1, 0, 2, BENCH_CUDNN_TANH, 1},
      {"leaky_relu", leaky_f, leaky_b, 0.01f, 0, 0, 2, BENCH_CUDNN_RELU, 0},
      {"elu", elu_f, elu_b, 1.0f, 0, 0, 2, BENCH_CUDNN_RELU, 0},
      {"rrelu", rrelu_f, rrelu_b, 0.0f, 0, 1, 2, BENCH_CUDNN_RELU, 0},
      {"dropout", dropout_f, dropout_b, 0.0f, 0, 1, 2, BENCH_CUDNN_RELU, 0},
      /* against relu then dropout, each way: their times added */
      {"relu_dropout", relu_dropout_f, relu_dropout_b, 0.0f, 0, 1, 3,
       BENCH_CUDNN_RELU, 0},
  };
  size_t i;
  double n = (double)(x_shape[0] * x_shape[1] * x_shape[2] * x_shape[3]);
  for (i = 0; i < sizeof ops / sizeof ops[0]; ++i) {
    op_args p;
    if (!selected(r, ops[i].op)) continue;
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    p.alpha = ops[i].alpha;
    p.x = make(r, 4, x_shape, -1.0f, 1.0f);
    p.y = make(r, 4, x_shape, 0.0f, 0.0f);
    p.dy = make(r, 4, x_shape, -1.0f, 1.0f);
    p.dx = make(r, 4, x_shape, 0.0f, 0.0f);
    if (ops[i].aux) p.a = make(r, 4, x_shape, 0.0f, 0.0f);
    run_pass(r, ops[i].op, "forward", size, ops[i].fwd, &p, p.x,
             4.0 * (ops[i].aux ? 3 : 2) * n, 0, NULL);
    run_pass(r, ops[i].op, "backward", size, ops[i].bwd, &p, p.x,
             4.0 * (ops[i].backward_reads + 1) * n, 0, NULL);
    end_case(r, ops[i].op);
    if (ops[i].has_cudnn) {
      run_cudnn(r, ops[i].op, "forward", size, ops[i].cudnn, 0, x_shape,
                8.0 * n);
      /* cuDNN's activation backward reads y, dy and x: 4 tensors. */
      run_cudnn(r, ops[i].op, "backward", size, ops[i].cudnn, 1, x_shape,
                12.0 * n);
    }
  }
  if (selected(r, "prelu")) {
    op_args p;
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    p.x = make(r, 4, x_shape, -1.0f, 1.0f);
    p.y = make(r, 4, x_shape, 0.0f, 0.0f);
    p.dy = make(r, 4, x_shape, -1.0f, 1.0f);
    p.dx = make(r, 4, x_shape, 0.0f, 0.0f);
    p.a = make_vector(r, x_shape[1], 0.25f, 0.25f);
    p.b = make_vector(r, x_shape[1], 0.0f, 0.0f);
    run_pass(r, "prelu", "forward", size, prelu_f, &p, p.x, 8.0 * n, 0, NULL);
    run_pass(r, "prelu", "backward", size, prelu_b, &p, p.x, 12.0 * n, 0, NULL);
    end_case(r, "prelu");
  }
}

static void bench_pooling(ops_run *r, const char *size,
                          const int64_t x_shape[4]) {
  const double n = (double)(x_shape[0] * x_shape[1] * x_shape[2] * x_shape[3]);
  const double nc = (double)(x_shape[0] * x_shape[1]);
  int64_t y_shape[4], g_shape[4];
  int is_max;
  for (is_max = 1; is_max >= 0; --is_max) {
    const char *op = is_max ? "max_pool2d" : "avg_pool2d";
    op_args p;
    if (!selected(r, op)) continue;
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    p.pool.kernel_h = p.pool.kernel_w = 2;
    p.pool.stride_h = p.pool.stride_w = 2;
    p.pool.count_include_pad = 1;
    cudl_pool2d_output_shape(&p.pool, x_shape, y_shape);
    p.x = make(r, 4, x_shape, -1.0f, 1.0f);
    p.y = make(r, 4, y_shape, 0.0f, 0.0f);
    p.dy = make(r, 4, y_shape, -1.0f, 1.0f);
    p.dx = make(r, 4, x_shape, 0.0f, 0.0f);
    run_pass(r, op, "forward", size, is_max ? maxpool_f : avgpool_f, &p, p.x,
             4.0 * 1.25 * n, 0, NULL);
    run_pass(r, op, "backward", size, is_max ? maxpool_b : avgpool_b, &p, p.x,
             4.0 * (is_max ? 2.25 : 1.25) * n, 0, NULL);
    end_case(r, op);
    run_cudnn(r, op, "forward", size,
              is_max ? BENCH_CUDNN_MAX_POOL : BENCH_CUDNN_AVG_POOL, 0, x_shape,
              4.0 * 1.25 * n);
    run_cudnn(r, op, "backward", size,
              is_max ? BENCH_CUDNN_MAX_POOL : BENCH_CUDNN_AVG_POOL, 1, x_shape,
              4.0 * (is_max ? 2.25 : 1.25) * n);
  }
  if (selected(r, "global_avg_pool")) {
    op_args p;
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    g_shape[0] = x_shape[0];
    g_shape[1] = x_shape[1];
    g_shape[2] = g_shape[3] = 1;
    p.x = make(r, 4, x_shape, -1.0f, 1.0f);
    p.y = make(r, 4, g_shape, 0.0f, 0.0f);
    p.dy = make(r, 4, g_shape, -1.0f, 1.0f);
    p.dx = make(r, 4, x_shape, 0.0f, 0.0f);
    run_pass(r, "global_avg_pool", "forward", size, gap_f, &p, p.x,
             4.0 * (n + nc), 0, NULL);
    run_pass(r, "global_avg_pool", "backward", size, gap_b, &p, p.x,
             4.0 * (n + nc), 0, NULL);
    end_case(r, "global_avg_pool");
  }
}

static void bench_batchnorm(ops_run *r, const char *size,
                            const int64_t x_shape[4]) {
  const double n = (double)(x_shape[0] * x_shape[1] * x_shape[2] * x_shape[3]);
  op_args p;
  int training = selected(r, "batchnorm");
  int inference = selected(r, "batchnorm_inference");
  int fused = selected(r, "batchnorm_add_relu");
  if (!training && !inference && !fused) return;
  memset(&p, 0, sizeof p);
  p.ctx = r->ctx;
  p.x = make(r, 4, x_shape, -1.0f, 1.0f);
  p.y = make(r, 4, x_shape, 0.0f, 0.0f);
  p.dy = make(r, 4, x_shape, -1.0f, 1.0f);
  p.dx = make(r, 4, x_shape, 0.0f, 0.0f);
  p.a = make_vector(r, x_shape[1], 0.5f, 1.5f);  /* gamma */
  p.b = make_vector(r, x_shape[1], -0.5f, 0.5f); /* beta */
  p.c = make_vector(r, x_shape[1], -0.1f, 0.1f); /* running mean, dgamma */
  p.d = make_vector(r, x_shape[1], 0.9f, 1.1f);  /* running var, dbeta */
  p.e = make_vector(r, x_shape[1], 0.0f, 0.0f);  /* save mean */
  p.f = make_vector(r, x_shape[1], 1.0f, 1.0f);  /* save invstd */
  if (fused) {
    p.residual = make(r, 4, x_shape, -1.0f, 1.0f);
    p.dresidual = make(r, 4, x_shape, 0.0f, 0.0f);
  }
  if (training) {
    run_pass(r, "batchnorm", "forward", size, bn_f, &p, p.x, 8.0 * n, 0, NULL);
    /* backward overwrites c and d with dgamma and dbeta: run it after the
     * forward that set the statistics it reads (e, f). */
    run_pass(r, "batchnorm", "backward", size, bn_b, &p, p.x, 12.0 * n, 0,
             NULL);
  }
  if (inference) {
    if (r->status == CUDL_OK) r->status = cudl_tensor_fill(p.d, 1.0f);
    run_pass(r, "batchnorm_inference", "forward", size, bn_inf, &p, p.x,
             8.0 * n, 0, NULL);
  }
  if (fused) {
    /* What the layers would move at least: x and the residual in, y out;
     * back: x, y and dy in, dx and the residual's gradient out. The same
     * group layer by layer is batchnorm + add + relu. */
    run_pass(r, "batchnorm_add_relu", "forward", size, bn_add_relu_f, &p,
             p.x, 12.0 * n, 0, NULL);
    run_pass(r, "batchnorm_add_relu", "backward", size, bn_add_relu_b, &p,
             p.x, 20.0 * n, 0, NULL);
  }
  end_case(r, "batchnorm");
  if (training) {
    run_cudnn(r, "batchnorm", "forward", size, BENCH_CUDNN_BATCHNORM, 0,
              x_shape, 8.0 * n);
    run_cudnn(r, "batchnorm", "backward", size, BENCH_CUDNN_BATCHNORM, 1,
              x_shape, 12.0 * n);
  }
  if (inference)
    run_cudnn(r, "batchnorm_inference", "forward", size,
              BENCH_CUDNN_BATCHNORM_INFERENCE, 0, x_shape, 8.0 * n);
}

static void bench_add_and_mse(ops_run *r, const char *size,
                              const int64_t x_shape[4]) {
  const double n = (double)(x_shape[0] * x_shape[1] * x_shape[2] * x_shape[3]);
  const int64_t one = 1;
  op_args p;
  if (selected(r, "add")) {
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    p.x = make(r, 4, x_shape, -1.0f, 1.0f);
    p.a = make(r, 4, x_shape, -1.0f, 1.0f);
    p.y = make(r, 4, x_shape, 0.0f, 0.0f);
    run_pass(r, "add", "forward", size, add_f, &p, p.x, 12.0 * n, 0, NULL);
    end_case(r, "add");
  }
  if (selected(r, "mse_loss")) {
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    p.x = make(r, 4, x_shape, -1.0f, 1.0f);
    p.a = make(r, 4, x_shape, -1.0f, 1.0f);
    p.b = make(r, 1, &one, 0.0f, 0.0f);
    p.dx = make(r, 4, x_shape, 0.0f, 0.0f);
    run_pass(r, "mse_loss", "forward", size, mse_f, &p, p.x, 8.0 * n, 0, NULL);
    run_pass(r, "mse_loss", "backward", size, mse_b, &p, p.x, 12.0 * n, 0,
             NULL);
    end_case(r, "mse_loss");
  }
}

static void bench_cross_entropy(ops_run *r, const char *size, int64_t rows,
                                int64_t classes) {
  const int64_t shape[2] = {rows, classes}, one = 1;
  const double n = (double)(rows * classes);
  op_args p;
  if (!selected(r, "cross_entropy")) return;
  memset(&p, 0, sizeof p);
  p.ctx = r->ctx;
  p.x = make(r, 2, shape, -3.0f, 3.0f);
  p.a = make_labels(r, rows, classes);
  p.b = make(r, 1, &one, 0.0f, 0.0f);
  p.dx = make(r, 2, shape, 0.0f, 0.0f);
  run_pass(r, "cross_entropy", "forward", size, ce_f, &p, p.x,
           4.0 * (n + (double)rows), 0, NULL);
  run_pass(r, "cross_entropy", "backward", size, ce_b, &p, p.x,
           4.0 * (2.0 * n + (double)rows), 0, NULL);
  end_case(r, "cross_entropy");
}

static void bench_conv(ops_run *r, const char *size, const int64_t x_shape[4],
                       int64_t out_channels) {
  const int64_t w_shape[4] = {out_channels, x_shape[1], 3, 3};
  int64_t y_shape[4];
  double macs, xb, wb, yb;
  op_args p;
  if (!selected(r, "conv2d")) return;
  memset(&p, 0, sizeof p);
  p.ctx = r->ctx;
  p.conv.stride_h = p.conv.stride_w = 1;
  p.conv.pad_h = p.conv.pad_w = 1;
  p.conv.dilation_h = p.conv.dilation_w = 1;
  p.conv.groups = 1;
  cudl_conv2d_output_shape(&p.conv, x_shape, w_shape, y_shape);
  macs = (double)(y_shape[0] * y_shape[1] * y_shape[2] * y_shape[3]) *
         (double)(w_shape[1] * w_shape[2] * w_shape[3]);
  xb = 4.0 * (double)(x_shape[0] * x_shape[1] * x_shape[2] * x_shape[3]);
  wb = 4.0 * (double)(w_shape[0] * w_shape[1] * 9);
  yb = 4.0 * (double)(y_shape[0] * y_shape[1] * y_shape[2] * y_shape[3]);
  p.x = make(r, 4, x_shape, -1.0f, 1.0f);
  p.a = make(r, 4, w_shape, -0.1f, 0.1f);
  p.y = make(r, 4, y_shape, 0.0f, 0.0f);
  p.dy = make(r, 4, y_shape, -1.0f, 1.0f);
  p.dx = make(r, 4, x_shape, 0.0f, 0.0f);
  p.b = make(r, 4, w_shape, 0.0f, 0.0f);
  run_pass(r, "conv2d", "forward", size, conv_f, &p, p.x, xb + wb + yb,
           2.0 * macs, p.a);
  run_pass(r, "conv2d", "backward_data", size, conv_bd, &p, p.x, xb + wb + yb,
           2.0 * macs, p.a);
  run_pass(r, "conv2d", "backward_filter", size, conv_bf, &p, p.x, xb + wb + yb,
           2.0 * macs, p.a);
  end_case(r, "conv2d");
}

static void bench_linear(ops_run *r, const char *size, int64_t rows, int64_t in,
                         int64_t out) {
  const int64_t x_shape[2] = {rows, in}, w_shape[2] = {out, in},
                y_shape[2] = {rows, out};
  const double macs = (double)rows * (double)in * (double)out;
  const double bytes = 4.0 * (double)(rows * in + out * in + rows * out);
  op_args p;
  if (!selected(r, "linear")) return;
  memset(&p, 0, sizeof p);
  p.ctx = r->ctx;
  p.x = make(r, 2, x_shape, -1.0f, 1.0f);
  p.a = make(r, 2, w_shape, -0.05f, 0.05f);
  p.y = make(r, 2, y_shape, 0.0f, 0.0f);
  p.dy = make(r, 2, y_shape, -1.0f, 1.0f);
  p.dx = make(r, 2, x_shape, 0.0f, 0.0f);
  p.b = make(r, 2, w_shape, 0.0f, 0.0f);
  run_pass(r, "linear", "forward", size, linear_f, &p, p.x, bytes, 2.0 * macs,
           p.a);
  run_pass(r, "linear", "backward_data", size, linear_bd, &p, p.x, bytes,
           2.0 * macs, p.a);
  run_pass(r, "linear", "backward_filter", size, linear_bf, &p, p.x, bytes,
           2.0 * macs, p.a);
  end_case(r, "linear");
}

static void bench_optimizers(ops_run *r, const char *size, int64_t numel) {
  int adam;
  for (adam = 0; adam <= 1; ++adam) {
    const char *op = adam ? "adam" : "sgd";
    cudl_optimizer_config config;
    op_args p;
    if (!selected(r, op)) continue;
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    cudl_optimizer_config_default(
        adam ? CUDL_OPTIMIZER_ADAM : CUDL_OPTIMIZER_SGD, &config);
    if (!adam) {
      config.momentum = 0.9f;
      config.weight_decay = 5e-4f;
    }
    p.x = make_vector(r, numel, -0.1f, 0.1f);
    p.a = make_vector(r, numel, -0.01f, 0.01f);
    if (r->status == CUDL_OK)
      r->status = cudl_optimizer_create(r->ctx, &config, numel, &p.opt);
    run_pass(r, op, "step", size, optim_step, &p, p.x,
             4.0 * (adam ? 7.0 : 5.0) * (double)numel, 0, NULL);
    cudl_optimizer_destroy(p.opt);
    end_case(r, op);
  }
}

/* The docs/benchmarks.md cases of one size set. */
static void bench_size(ops_run *r, int large) {
  const char *size = large ? "large" : "cifar";
  static const int64_t x_cifar[4] = {128, 16, 32, 32};
  static const int64_t x_large[4] = {256, 64, 64, 64};
  const int64_t *x = large ? x_large : x_cifar;
  bench_elementwise(r, size, x);
  bench_pooling(r, size, x);
  bench_batchnorm(r, size, x);
  bench_add_and_mse(r, size, x);
  bench_cross_entropy(r, size, large ? 65536 : 128, large ? 1000 : 10);
  if (large) {
    static const int64_t conv_large[4] = {64, 64, 56, 56};
    bench_conv(r, size, conv_large, 64);
  } else {
    static const int64_t conv1[4] = {128, 16, 32, 32};
    static const int64_t conv2[4] = {128, 32, 16, 16};
    static const int64_t conv3[4] = {128, 64, 8, 8};
    bench_conv(r, size, conv1, 16);
    bench_conv(r, size, conv2, 32);
    bench_conv(r, size, conv3, 64);
  }
  bench_linear(r, size, large ? 4096 : 128, large ? 4096 : 1024,
               large ? 4096 : 1024);
  bench_optimizers(r, size, large ? 67108864 : 272192);
}

/* Memory-bound operators and the copy over [k, 64, 32, 32], k = 1 .. 1024:
 * bandwidth against size. */
static void bench_sweep(ops_run *r) {
  static const int64_t ks[] = {1, 4, 16, 64, 256, 1024};
  size_t i;
  for (i = 0; i < sizeof ks / sizeof ks[0]; ++i) {
    const int64_t x[4] = {ks[i], 64, 32, 32};
    const double n = (double)(ks[i] * 64 * 32 * 32);
    op_args p;
    memset(&p, 0, sizeof p);
    p.ctx = r->ctx;
    p.x = make(r, 4, x, -1.0f, 1.0f);
    p.y = make(r, 4, x, 0.0f, 0.0f);
    p.dy = make(r, 4, x, -1.0f, 1.0f);
    p.dx = make(r, 4, x, 0.0f, 0.0f);
    p.a = make(r, 4, x, 0.0f, 0.0f); /* dropout mask, add operand */
    p.b = make_vector(r, 64, 0.5f, 1.5f);
    p.c = make_vector(r, 64, -0.5f, 0.5f);
    p.d = make_vector(r, 64, 0.0f, 0.0f);
    p.e = make_vector(r, 64, 1.0f, 1.0f);
    if (selected(r, "relu")) {
      run_pass(r, "relu", "forward", "sweep", relu_f, &p, p.x, 8.0 * n, 0,
               NULL);
      run_pass(r, "relu", "backward", "sweep", relu_b, &p, p.x, 12.0 * n, 0,
               NULL);
    }
    if (selected(r, "dropout"))
      run_pass(r, "dropout", "forward", "sweep", dropout_f, &p, p.x, 12.0 * n,
               0, NULL);
    if (selected(r, "add"))
      run_pass(r, "add", "forward", "sweep", add_f, &p, p.x, 12.0 * n, 0, NULL);
    if (selected(r, "batchnorm")) {
      /* gamma b, beta c; d, e: the running statistics then dgamma, dbeta;
       * the saved statistics in the sixth slot. */
      op_args q = p;
      q.a = p.b;
      q.b = p.c;
      q.c = p.d;
      q.d = p.e;
      q.e = make_vector(r, 64, 0.0f, 0.0f);
      q.f = make_vector(r, 64, 1.0f, 1.0f);
      run_pass(r, "batchnorm", "forward", "sweep", bn_f, &q, q.x, 8.0 * n, 0,
               NULL);
      run_pass(r, "batchnorm", "backward", "sweep", bn_b, &q, q.x, 12.0 * n, 0,
               NULL);
    }
    if (selected(r, "copy") && r->status == CUDL_OK) {
      op_result *res;
      bench_timing t;
      double gbps = 0.0;
      cudl_status s = bench_copy_ceiling(r->ctx, (size_t)(4.0 * n),
                                         &r->settings, &t, &gbps);
      if (s == CUDL_OK && (res = new_result(r)) != NULL) {
        snprintf(res->op, sizeof res->op, "copy");
        snprintf(res->pass, sizeof res->pass, "forward");
        snprintf(res->size, sizeof res->size, "sweep");
        snprintf(res->impl, sizeof res->impl, "cudl");
        res->ndim = 4;
        memcpy(res->shape, x, sizeof x);
        res->t = t;
        res->bytes = 8.0 * n;
        print_result(r, res);
      } else if (s != CUDL_OK) {
        cli_fail(r->ctx, s, "copy (sweep)");
        ++r->failures;
      }
    }
    end_case(r, "the sweep");
  }
}

static void write_json(const ops_run *r, FILE *f) {
  int i;
  fprintf(f, "{\n  \"schema\": \"cudl-bench-ops/1\",\n  \"tool\": \"cudl\",\n");
  bench_json_run_fields(f, r->ctx, r->settings.tf32);
  fprintf(f,
          "  \"ceilings\": {\"copy_gbps\": %.6g, \"copy_bytes\": %zu, "
          "\"gemm_gflops\": %.6g, \"gemm_size\": %d},\n  \"results\": [",
          r->copy_gbps, r->copy_bytes, r->gemm_gflops, r->gemm_size);
  for (i = 0; i < r->count; ++i) {
    const op_result *res = &r->results[i];
    double gbps = res->bytes / res->t.median_ms * 1e-6;
    double gflops = res->flops / res->t.median_ms * 1e-6;
    double ceiling = res->gemm_bound ? r->gemm_gflops : r->copy_gbps;
    fprintf(f,
            "%s\n    {\"op\": \"%s\", \"pass\": \"%s\", \"size\": \"%s\", "
            "\"shape\": ",
            i ? "," : "", res->op, res->pass, res->size);
    bench_json_ints(f, res->shape, res->ndim);
    if (res->wdim > 0) {
      fprintf(f, ", \"weight\": ");
      bench_json_ints(f, res->weight, res->wdim);
    }
    fprintf(f,
            ", \"impl\": \"%s\", \"median_ms\": %.6g, \"min_ms\": %.6g, "
            "\"samples\": %d, \"iterations\": %d, \"bytes\": %.0f, "
            "\"gbps\": %.6g, \"flops\": %.0f, \"gflops\": %.6g, "
            "\"ceiling\": \"%s\", \"fraction_of_ceiling\": %.6g}",
            res->impl, res->t.median_ms, res->t.min_ms, res->t.samples,
            res->t.iterations, res->bytes, gbps, res->flops, gflops,
            res->gemm_bound ? "gemm" : "copy",
            ceiling > 0 ? (res->gemm_bound ? gflops : gbps) / ceiling : 0.0);
  }
  fprintf(f, "\n  ]\n}\n");
}

static void ops_usage(FILE *out) {
  size_t k;
  fprintf(
      out,
      "usage: cudl bench ops [options]\n"
      "  --device auto|cpu|cuda:N  [auto]\n"
      "  --size cifar|large|all    [all on a GPU, cifar on the CPU]\n"
      "  --sweep                   also memory-bound ops and the copy over\n"
      "                            [k, 64, 32, 32], k = 1 .. 1024\n"
      "  --ops a,b,...             only these ops (names below)\n"
      "  --samples N [20]  --min-sample-ms M [1 GPU, 5 CPU]\n"
      "  --max-seconds S [2]       per case  --warmup N [3]\n"
      "  --tf32                    allow TF32 in cuBLAS/cuDNN\n"
      "  --no-cudnn                skip cuDNN's own kernels on a GPU\n"
      "  --json PATH               write the results as one JSON object\n"
      "                            (\"-\": stdout, the table then to stderr)\n"
      "\n"
      "ops:");
  for (k = 0; k < OP_NAME_COUNT; ++k)
    fprintf(out, "%s %s", k % 8 == 0 ? "\n " : "", op_names[k]);
  fprintf(out,
          " (--sweep only)\n"
          "\n"
          "Figures (docs/benchmarks.md has the cases and the method):\n"
          "  ms     median time of one call over the samples; each sample\n"
          "         repeats the call for at least --min-sample-ms, timed with\n"
          "         CUDA events on a GPU, the monotonic clock on the CPU\n"
          "  GB/s   the bytes the pass must move (each input read once, each\n"
          "         output written once) per second\n"
          "  GFLOP  for conv2d and linear: 2 x multiply-adds per second\n"
          "  %%      of the ceiling measured in this run: the copy rate (a\n"
          "         512 MiB device-to-device copy, or memcpy on the CPU over\n"
          "         all threads) for memory-bound ops, the sgemm rate\n"
          "         (cuBLAS, or oneDNN on the CPU) for conv2d and linear\n"
          "  impl   cudl, or cudnn: cuDNN's own kernel on the same shape\n");
}

static cudl_status measure_ceilings(ops_run *r) {
  bench_timing t;
  cudl_status s;
  r->copy_bytes = (size_t)512 << 20;
  r->gemm_size = r->on_gpu ? 4096 : 2048;
  s = bench_copy_ceiling(r->ctx, r->copy_bytes, &r->settings, &t,
                         &r->copy_gbps);
  if (s == CUDL_OK)
    s = bench_gemm_ceiling(r->ctx, r->gemm_size, &r->settings, &t,
                           &r->gemm_gflops);
  if (s == CUDL_OK)
    fprintf(r->table,
            "ceilings: copy %.1f GB/s (%zu MiB), sgemm %.1f GFLOP/s (%d^3)\n",
            r->copy_gbps, r->copy_bytes >> 20, r->gemm_gflops, r->gemm_size);
  return s;
}

int cudl__cmd_bench_ops(int argc, char **argv) {
  ops_run r;
  cli_file out;
  const char *device = "auto", *size = NULL, *json = NULL;
  int i, sweep = 0, no_cudnn = 0, rc = CLI_EXIT_OK, index = 0;
  cudl_device_kind kind = CUDL_DEVICE_AUTO;
  cudl_status s;
  memset(&r, 0, sizeof r);
  r.settings.warmup = 3;
  r.settings.samples = 20;
  r.settings.min_sample_ms = -1.0;
  r.settings.max_seconds = 2.0;
  for (i = 0; i < argc; ++i) {
    const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
    long long n = 0;
    int ok = 1;
    if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
      ops_usage(stdout);
      return CLI_EXIT_OK;
    } else if (strcmp(a, "--sweep") == 0) {
      sweep = 1;
      continue; /* a flag: the next argument is an option of its own */
    } else if (strcmp(a, "--tf32") == 0) {
      r.settings.tf32 = 1;
      continue;
    } else if (strcmp(a, "--no-cudnn") == 0) {
      no_cudnn = 1;
      continue;
    } else if (v == NULL) {
      return cli_usage_error("%s needs a value (or is unknown)", a);
    } else if (strcmp(a, "--device") == 0) {
      device = v;
    } else if (strcmp(a, "--size") == 0) {
      size = v;
    } else if (strcmp(a, "--ops") == 0) {
      r.only = v;
    } else if (strcmp(a, "--json") == 0) {
      json = v;
    } else if (strcmp(a, "--samples") == 0) {
      ok = cli_parse_int(v, 1, 1000, &n);
      r.settings.samples = (int)n;
    } else if (strcmp(a, "--warmup") == 0) {
      ok = cli_parse_int(v, 0, 1000000, &n);
      r.settings.warmup = (int)n;
    } else if (strcmp(a, "--min-sample-ms") == 0) {
      ok = cli_parse_double(v, &r.settings.min_sample_ms) &&
           r.settings.min_sample_ms >= 0;
    } else if (strcmp(a, "--max-seconds") == 0) {
      ok = cli_parse_double(v, &r.settings.max_seconds) &&
           r.settings.max_seconds > 0;
    } else {
      return cli_usage_error("unknown option %s (cudl bench ops --help)", a);
    }
    if (!ok) return cli_usage_error("bad value for %s: '%s'", a, v);
    ++i;
  }
  if (!cli_parse_device(device, &kind, &index))
    return cli_usage_error("--device must be auto, cpu or cuda:N, not '%s'",
                           device);
  if (size != NULL && strcmp(size, "cifar") != 0 &&
      strcmp(size, "large") != 0 && strcmp(size, "all") != 0)
    return cli_usage_error("--size must be cifar, large or all, not '%s'",
                           size);
  if (r.only != NULL && (rc = check_op_names(r.only, sweep)) != 0) return rc;
  r.table = json != NULL && strcmp(json, "-") == 0 ? stderr : stdout;
  if (json != NULL && !cli_file_open_whole(&out, "the JSON file", json))
    return CLI_EXIT_FAILED;
  if (cli_open_context(device, &r.ctx) != 0) {
    if (json != NULL) cli_file_close(&out, 0);
    return CLI_EXIT_FAILED;
  }
  r.on_gpu = cudl_context_device(r.ctx) == CUDL_DEVICE_CUDA;
  r.with_cudnn = r.on_gpu && !no_cudnn && bench_cudnn_compiled();
  if (r.settings.min_sample_ms < 0) r.settings.min_sample_ms = r.on_gpu ? 1 : 5;
  if (size == NULL) size = r.on_gpu ? "all" : "cifar";
  cudl_context_set_allow_tf32(r.ctx, r.settings.tf32);
  cudl_context_set_seed(r.ctx, 1);
  s = bench_event_clock_init(r.ctx, &r.events, &r.clock);
  if (s == CUDL_OK) s = measure_ceilings(&r);
  if (s != CUDL_OK) {
    rc = cli_fail(r.ctx, s, "measuring the ceilings");
  } else {
    fprintf(r.table, "%-20s %-16s %-6s %-6s %-16s %10s %9s %-6s %6s\n", "op",
            "pass", "size", "impl", "shape", "ms", "rate", "unit", "ceil");
    if (strcmp(size, "large") != 0) bench_size(&r, 0);
    if (strcmp(size, "cifar") != 0) bench_size(&r, 1);
    if (sweep) bench_sweep(&r);
    if (json != NULL) write_json(&r, cli_file_stream(&out));
    if (r.failures > 0) {
      cli_error("%d case(s) failed (above)", r.failures);
      rc = CLI_EXIT_FAILED;
    } else if (r.count == 0) {
      cli_error("no case ran: nothing was measured");
      rc = CLI_EXIT_FAILED;
    }
  }
  end_case(&r, "the last case");
  /* The results of the cases that ran are kept, even when some failed. */
  if (json != NULL && !cli_file_close(&out, s == CUDL_OK && r.count > 0))
    rc = CLI_EXIT_FAILED;
  bench_event_clock_free(&r.events);
  free(r.results);
  cudl_context_destroy(r.ctx);
  return rc;
}
