/* commands.h - the subcommands of the cudl tool that live outside cudl.c.
 * Each takes the arguments after its name and returns the exit status. */
#ifndef CUDL_TOOLS_COMMANDS_H
#define CUDL_TOOLS_COMMANDS_H

#include <cudl/cudl.h>

int cudl_cmd_train(int argc, char **argv);
int cudl_cmd_eval(int argc, char **argv);
int cudl_cmd_predict(int argc, char **argv);
int cudl_cmd_bench(int argc, char **argv); /* tools/bench.c */

/* 1 when `name` is a zoo model's name: small-cnn, mlp, resnetN, plainN
 * (whether N is a valid depth is the zoo's to say). */
int cudl_tool_zoo_name_valid(const char *name);

/* The zoo model called `name` for c x h x w images of `classes` classes
 * (tools/train.c); CUDL_ERR_INVALID_ARGUMENT for a name that
 * cudl_tool_zoo_name_valid rejects. */
cudl_status cudl_tool_zoo_model(cudl_context *ctx, const char *name,
                                double dropout, int64_t c, int64_t h,
                                int64_t w, int64_t classes,
                                cudl_model **model);

#endif /* CUDL_TOOLS_COMMANDS_H */
