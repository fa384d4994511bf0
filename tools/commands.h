/* commands.h - the subcommands of the cudl tool that live outside cudl.c.
 * Each takes the arguments after its name and returns the exit status. */
#ifndef CUDL_TOOLS_COMMANDS_H
#define CUDL_TOOLS_COMMANDS_H

#include <cudl/cudl.h>

int cudl__cmd_train(int argc, char **argv);
int cudl__cmd_eval(int argc, char **argv);
int cudl__cmd_predict(int argc, char **argv);
int cudl__cmd_bench_ops(int argc, char **argv);   /* tools/bench_ops.c */
int cudl__cmd_bench_train(int argc, char **argv); /* tools/bench_train.c */
int cudl__cmd_bench_infer(int argc, char **argv); /* tools/bench_infer.c */
int cudl__cmd_data(int argc, char **argv);        /* tools/data_check.c */
int cudl__cmd_model(int argc, char **argv);       /* tools/model_cmd.c */
int cudl__cmd_export(int argc, char **argv);      /* tools/export_cmd.c */

/* 0 when `name` is a zoo model's name: small-cnn, mlp, resnetN or plainN
 * with N a depth the zoo builds (6n + 2, 8 to 1202); else prints the
 * usage error, saying which is wrong, and returns CLI_EXIT_USAGE
 * (tools/run.c). */
int cudl__tool_zoo_check_name(const char *name);

/* The zoo model called `name` for c x h x w images of `classes` classes
 * (tools/run.c); CUDL_ERR_INVALID_ARGUMENT for a name that
 * cudl__tool_zoo_check_name rejects. */
cudl_status cudl__tool_zoo_model(cudl_context *ctx, const char *name,
                                 double dropout, int64_t c, int64_t h,
                                 int64_t w, int64_t classes,
                                 cudl_model **model);

#endif /* CUDL_TOOLS_COMMANDS_H */
