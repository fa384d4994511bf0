/* cli.c - errors, log, threads, option values and the device for every
 * cudl subcommand (cli.h). */
#define _GNU_SOURCE /* sched_getaffinity, CPU_COUNT */
#include "cli.h"

#include <errno.h>
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#if defined(_OPENMP)
#  include <omp.h>
#endif

static const char *g_command = "cudl";
static void (*g_before_error)(void) = NULL;
static int g_quiet = 0; /* notes not printed (ranks other than 0) */

void cli_set_command(const char *command) { g_command = command; }
const char *cli_command(void) { return g_command; }
void cli_set_before_error(void (*hook)(void)) { g_before_error = hook; }

/* text with its control characters escaped, then a newline, to f. */
static void put_escaped_line(FILE *f, const char *text) {
  const unsigned char *c;
  for (c = (const unsigned char *)text; *c != '\0'; ++c) {
    if (*c == '\n')
      fputs("\\n", f);
    else if (*c == '\t')
      fputs("\\t", f);
    else if (*c == '\r')
      fputs("\\r", f);
    else if (*c < 0x20 || *c == 0x7f)
      fprintf(f, "\\x%02x", *c);
    else
      fputc(*c, f);
  }
  fputc('\n', f);
  fflush(f);
}

/* The message of fmt and args in a buffer of its own (NULL: out of
 * memory), to free. */
static char *format_message(const char *fmt, va_list args) {
  va_list again;
  char *text;
  int n;
  va_copy(again, args);
  n = vsnprintf(NULL, 0, fmt, again);
  va_end(again);
  if (n < 0) return NULL;
  text = (char *)malloc((size_t)n + 1);
  if (text != NULL) vsnprintf(text, (size_t)n + 1, fmt, args);
  return text;
}

static void stderr_line(const char *detail_fmt, va_list args) {
  char *text = format_message(detail_fmt, args);
  if (g_before_error != NULL) g_before_error();
  fprintf(stderr, "%s: ", g_command);
  put_escaped_line(stderr, text != NULL ? text : detail_fmt);
  free(text);
}

void cli_error(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  stderr_line(fmt, args);
  va_end(args);
}

void cli_set_quiet(int quiet) { g_quiet = quiet; }

void cli_note(const char *fmt, ...) {
  va_list args;
  if (g_quiet) return;
  va_start(args, fmt);
  stderr_line(fmt, args);
  va_end(args);
}

int cli_usage_error(const char *fmt, ...) {
  va_list args;
  va_start(args, fmt);
  stderr_line(fmt, args);
  va_end(args);
  return CLI_EXIT_USAGE;
}

int cli_fail(cudl_context *ctx, cudl_status s, const char *what, ...) {
  const char *detail = ctx != NULL ? cudl_context_last_error(ctx) : "";
  va_list args;
  char *text;
  va_start(args, what);
  text = format_message(what, args);
  va_end(args);
  cli_error("%s: %s [%s]", text != NULL ? text : what,
            detail[0] != '\0' ? detail : cudl_status_string(s),
            cudl_status_name(s));
  free(text);
  return CLI_EXIT_FAILED;
}

/* ---- the library's log ---- */

static pthread_mutex_t g_log_mutex = PTHREAD_MUTEX_INITIALIZER;
static char g_logged_error[1024];

static void log_line(cudl_log_level level, const char *message, void *user) {
  (void)user;
  if (level == CUDL_LOG_ERROR) {
    pthread_mutex_lock(&g_log_mutex);
    snprintf(g_logged_error, sizeof g_logged_error, "%s", message);
    pthread_mutex_unlock(&g_log_mutex);
  } else if (level == CUDL_LOG_WARN) {
    if (g_before_error != NULL) g_before_error();
    fprintf(stderr, "cudl: warning: ");
    put_escaped_line(stderr, message);
  }
}

void cli_install_log(void) { cudl_set_log_callback(log_line, NULL); }

const char *cli_logged_error(void) { return g_logged_error; }

/* ---- threads ---- */

void cli_limit_threads(void) {
#if defined(_OPENMP)
  cpu_set_t set;
  long cpus = 0;
  int asked = omp_get_max_threads();
  if (sched_getaffinity(0, sizeof set, &set) == 0) cpus = CPU_COUNT(&set);
  if (cpus <= 0) cpus = sysconf(_SC_NPROCESSORS_ONLN);
  if (cpus <= 0 || asked <= cpus) return;
  omp_set_num_threads((int)cpus);
  fprintf(stderr,
          "cudl: warning: OMP_NUM_THREADS asks for %d threads, but this "
          "process may run on %ld CPUs: using %ld\n",
          asked, cpus, cpus);
#endif
}

/* ---- option values ---- */

int cli_parse_int(const char *text, long long lo, long long hi,
                  long long *out) {
  char *end = NULL;
  long long v;
  errno = 0;
  v = strtoll(text, &end, 10);
  if (errno != 0 || end == text || *end != '\0' || v < lo || v > hi) return 0;
  *out = v;
  return 1;
}

int cli_parse_bytes(const char *text, uint64_t *out) {
  static const char units[] = "KMGT";
  const char *unit;
  char digits[32];
  size_t n = strlen(text);
  long long v = 0;
  int shift = 0;
  if (n == 0 || n >= sizeof digits) return 0;
  memcpy(digits, text, n + 1);
  unit = n > 1 ? strchr(units, digits[n - 1]) : NULL;
  if (unit != NULL && *unit != '\0') {
    shift = 10 * (int)(unit - units + 1);
    digits[n - 1] = '\0';
  }
  /* Digits only: no sign, no space, which strtoll would let through. */
  if (digits[strspn(digits, "0123456789")] != '\0') return 0;
  if (!cli_parse_int(digits, 0, LLONG_MAX >> shift, &v)) return 0;
  *out = (uint64_t)v << shift;
  return 1;
}

void cli_format_bytes(uint64_t bytes, char *out, size_t size) {
  const double b = (double)bytes;
  if (b >= 1073741824.0)
    snprintf(out, size, "%.1f GiB", b / 1073741824.0);
  else if (b >= 1048576.0)
    snprintf(out, size, "%.1f MiB", b / 1048576.0);
  else
    snprintf(out, size, "%.1f KiB", b / 1024.0);
}

int cli_parse_double(const char *text, double *out) {
  char *end = NULL;
  double v;
  errno = 0;
  v = strtod(text, &end);
  if (errno != 0 || end == text || *end != '\0' || !isfinite(v)) return 0;
  *out = v;
  return 1;
}

int cli_parse_device(const char *text, cudl_device_kind *kind, int *index) {
  long long n = 0;
  *index = 0;
  if (strcmp(text, "auto") == 0) {
    *kind = CUDL_DEVICE_AUTO;
  } else if (strcmp(text, "cpu") == 0) {
    *kind = CUDL_DEVICE_CPU;
  } else if (strcmp(text, "cuda") == 0 ||
             (strncmp(text, "cuda:", 5) == 0 &&
              cli_parse_int(text + 5, 0, 1 << 20, &n))) {
    *kind = CUDL_DEVICE_CUDA;
    *index = (int)n;
  } else {
    return 0;
  }
  return 1;
}

int cli_parse_layout(const char *text, cudl_layout *layout, int *automatic) {
  *automatic = strcmp(text, "auto") == 0;
  if (strcmp(text, "nchw") == 0)
    *layout = CUDL_LAYOUT_NCHW;
  else if (strcmp(text, "nhwc") == 0)
    *layout = CUDL_LAYOUT_NHWC;
  else
    return *automatic;
  return 1;
}

cudl_layout cli_layout_for(const cudl_context *ctx) {
  return cudl_context_device(ctx) == CUDL_DEVICE_CPU ? CUDL_LAYOUT_NHWC
                                                     : CUDL_LAYOUT_NCHW;
}

int cli_open_context(const char *device, cudl_context **ctx) {
  cudl_device_kind kind = CUDL_DEVICE_AUTO;
  int index = 0;
  cudl_status s;
  (void)cli_parse_device(device, &kind, &index); /* the caller checked it */
  g_logged_error[0] = '\0';
  s = cudl_context_create(kind, index, ctx);
  if (s == CUDL_OK) return 0;
  cli_error("--device %s: %s [%s]", device,
            g_logged_error[0] != '\0' ? g_logged_error : cudl_status_string(s),
            cudl_status_name(s));
  return CLI_EXIT_FAILED;
}
