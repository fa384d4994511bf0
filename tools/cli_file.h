/* cli_file.h - every file the cudl tool writes, by one rule (docs/cli.md):
 *
 *  - a regular file, or a path where nothing is yet, is never written in
 *    place: a whole file (a --json report) goes to a temporary beside it
 *    that is renamed over it once complete; lines (--metrics) are appended
 *    whole, and a line that cannot be written whole is cut off again;
 *  - a symbolic link is followed: its target is the file written, and the
 *    link stays;
 *  - a character device, a FIFO or an open descriptor (/dev/null, a pipe,
 *    /dev/stdout, /dev/fd/N, a link to one) is written in place, appended
 *    to: it cannot be replaced, and must not be;
 *  - anything else (a directory, a socket, a block device, a link to
 *    nothing) is refused before anything is measured or trained.
 *
 * A failed write fails the command, and a command that fails leaves
 * nothing of its own behind: no temporary, and no file it made and left
 * empty. Errors are printed (cli_error) naming the file and the reason.
 */
#ifndef CUDL_TOOLS_CLI_FILE_H
#define CUDL_TOOLS_CLI_FILE_H

#include <stdio.h>
#include <sys/types.h>

typedef struct cli_file {
  const char *what; /* "the metrics file", for messages */
  const char *path; /* as given */
  char *target;     /* the file written: path with links resolved */
  char *tmp;        /* whole files on a regular path: the temporary */
  FILE *stream;     /* whole files: what the report is written to */
  int fd;           /* lines: the open file */
  int direct;       /* a device or FIFO, written in place */
  int created;      /* lines: this command made the file */
  int error;        /* lines: the errno of a failed write, else 0 */
} cli_file;

/* Make ready to write a whole file at path ("-": standard output): checks
 * the path by the rule above and makes the temporary, so that a path that
 * cannot be written fails now. 1 on success; else 0, with one line
 * printed. */
int cli_file_open_whole(cli_file *f, const char *what, const char *path);

/* The stream the whole file is written to. */
FILE *cli_file_stream(cli_file *f);

/* Open a file of lines at path: appended to when `append` (a resumed run),
 * else emptied first. 1 on success; else 0, with one line printed. */
int cli_file_open_lines(cli_file *f, const char *what, const char *path,
                        int append);

/* Append one line (text without its newline): all of it and the newline,
 * or, on a regular file, nothing (what a failed write left is cut off).
 * 1 on success; else 0 with f->error set to the errno, and every later
 * call fails too. Prints nothing: the caller says what the failure
 * means for the command. */
int cli_file_write_line(cli_file *f, const char *text, size_t length);

/* A file of lines that a killed run left without its final newline gets
 * one, so that the lines appended next parse on their own. As
 * cli_file_write_line on failure. */
int cli_file_end_torn_line(cli_file *f);

/* Finish: keep nonzero puts a whole file in place (fsync, rename) and
 * closes a file of lines; zero (the command failed) removes the temporary,
 * and a file of lines this command made and that is still empty. 1 on
 * success (always for keep zero); else 0, with one line printed. */
int cli_file_close(cli_file *f, int keep);

/* 1 when paths a and b name the same file, existing or not yet: the same
 * inode, or the same absolute path once links and "." and ".." of their
 * existing part are resolved. */
int cli_same_file(const char *a, const char *b);

#endif /* CUDL_TOOLS_CLI_FILE_H */
