/* commands.h - the subcommands of the cudl tool that live outside cudl.c.
 * Each takes the arguments after its name and returns the exit status. */
#ifndef CUDL_TOOLS_COMMANDS_H
#define CUDL_TOOLS_COMMANDS_H

int cudl_cmd_train(int argc, char **argv);
int cudl_cmd_eval(int argc, char **argv);
int cudl_cmd_predict(int argc, char **argv);

#endif /* CUDL_TOOLS_COMMANDS_H */
