/* run_options.h - the options of `cudl train`, `cudl eval` and `cudl
 * predict`, parsed and checked against each other: everything about a
 * command line that needs no file and no device. */
#ifndef CUDL_TOOLS_RUN_OPTIONS_H
#define CUDL_TOOLS_RUN_OPTIONS_H

#include "run_types.h"

/* Parse the arguments after the command's name into o. RUN_GO to go on;
 * otherwise the exit status: CLI_EXIT_OK after --help (usage printed),
 * CLI_EXIT_USAGE after printing why the command line is wrong. Every
 * check that needs no file and no device is made here, but for train's
 * --override (run_config_check_override). */
#define RUN_GO (-1)
int run_parse_options(run_command command, int argc, char **argv, options *o);

/* Set o's field for option a (one of the command's options, "--lr") from
 * its value v (NULL for a switch such as "--no-shuffle"), as the command
 * line would; 0 when v is not what a takes, with *want (if not NULL) set
 * to what it takes ("a finite number above 0"). Marks nothing given. */
int run_set_option(options *o, const char *a, const char *v, const char **want);

/* 1 when option name ("--lr") was on the command line. */
int run_option_given(const options *o, const char *name);

/* Whether training augments: --augment, --no-augment, else for cifar10
 * only. */
int run_augments(const options *o);

#endif /* CUDL_TOOLS_RUN_OPTIONS_H */
