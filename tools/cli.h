/* cli.h - what every cudl subcommand shares: its one-line errors, the
 * library's log, the thread count, option values, the device, and the
 * files it writes (cli_file.c). docs/cli.md is the contract these keep. */
#ifndef CUDL_TOOLS_CLI_H
#define CUDL_TOOLS_CLI_H

#include <stddef.h>
#include <stdio.h>

#include <cudl/cudl.h>

#if defined(__GNUC__) || defined(__clang__)
#  define CLI_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#  define CLI_PRINTF(fmt, args)
#endif

/* Exit statuses (docs/cli.md). */
enum {
  CLI_EXIT_OK = 0,
  CLI_EXIT_FAILED = 1,       /* what the command names failed */
  CLI_EXIT_USAGE = 2,        /* the command line is wrong */
  CLI_EXIT_INTERRUPTED = 130 /* Ctrl-C; the run's checkpoint saved */
};

/* ---- errors: one line each on stderr, "<command>: <message>" ---- */

/* The command every line starts with ("cudl train"); "cudl" at first. */
void cli_set_command(const char *command);
const char *cli_command(void);

/* Called before an error line is printed (train ends its progress line). */
void cli_set_before_error(void (*hook)(void));

/* Print "<command>: <message>" and a newline. Control characters in the
 * message (a newline in a value the user gave, say) are written as
 * escapes (\n, \t, \xHH), so that every error is exactly one line. */
void cli_error(const char *fmt, ...) CLI_PRINTF(1, 2);

/* The same for a line that is not an error: what a run does, where it
 * resumes, what it cleaned up. */
void cli_note(const char *fmt, ...) CLI_PRINTF(1, 2);

/* Notes (cli_note) not printed when quiet: a data-parallel run's ranks
 * other than 0, which say nothing unless they fail. */
void cli_set_quiet(int quiet);

/* cli_error, then CLI_EXIT_USAGE: the command line is wrong. */
int cli_usage_error(const char *fmt, ...) CLI_PRINTF(1, 2);

/* cli_error of "<what>: <the context's detail> [<STATUS_NAME>]" (the
 * status's text where the context has no detail); returns
 * CLI_EXIT_FAILED. ctx may be NULL. */
int cli_fail(cudl_context *ctx, cudl_status s, const char *what, ...)
    CLI_PRINTF(3, 4);

/* ---- the library's log ---- */

/* Send the library's warnings to stderr, one escaped line each ("cudl:
 * warning: ..."). Errors are not printed: the call that failed returns
 * them and the command reports them in its own line. The last one is
 * kept for the failures that have no context to hold it (opening a
 * device): cli_logged_error. */
void cli_install_log(void);
/* The last error the library logged, "" when none. */
const char *cli_logged_error(void);

/* ---- threads ---- */

/* Keep OpenMP's thread count (OMP_NUM_THREADS) to the CPUs this process
 * may run on: libgomp crashes when it cannot start the threads asked for,
 * and more threads than CPUs only slow the loops down. Says so (one line)
 * when it lowers the count. Call before anything runs in parallel. */
void cli_limit_threads(void);

/* ---- option values ---- */

/* A decimal integer in [lo, hi], the whole text; 1 on success. */
int cli_parse_int(const char *text, long long lo, long long hi, long long *out);
/* A size in bytes: digits with an optional binary suffix K, M, G or T
 * (2^10, 2^20, 2^30, 2^40), the whole text, below 2^63; 1 on success. */
int cli_parse_bytes(const char *text, uint64_t *out);
/* bytes as "3.9 KiB", "12.0 MiB" or "1.5 GiB", for messages. */
void cli_format_bytes(uint64_t bytes, char *out, size_t size);
/* A finite number, the whole text; 1 on success. */
int cli_parse_double(const char *text, double *out);
/* auto, cpu, cuda or cuda:N; 1 on success. */
int cli_parse_device(const char *text, cudl_device_kind *kind, int *index);

/* A context on the device an option names (cli_parse_device has accepted
 * it). On failure prints one line, with the reason the library gave (no
 * driver, no such GPU), and returns CLI_EXIT_FAILED; else 0. */
int cli_open_context(const char *device, cudl_context **ctx);

/* --layout auto|nchw|nhwc; 1 on success, *layout set for nchw and nhwc,
 * *automatic for auto (cli_layout_for then picks by the device). */
int cli_parse_layout(const char *text, cudl_layout *layout, int *automatic);
/* The layout --layout auto means on ctx's device: channels-last on a CPU,
 * where oneDNN's convolutions take it as it is and every measured model
 * trained faster in it (docs/results.md); NCHW on CUDA, until
 * channels-last has been measured there. */
cudl_layout cli_layout_for(const cudl_context *ctx);

#endif /* CUDL_TOOLS_CLI_H */
