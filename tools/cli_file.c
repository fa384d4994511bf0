/* cli_file.c - the files the cudl tool writes, by cli_file.h's rule. */
#define _XOPEN_SOURCE 700 /* realpath */
#include "cli_file.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"

static char *copy_text(const char *text) {
  size_t n = strlen(text) + 1;
  char *copy = (char *)malloc(n);
  if (copy != NULL) memcpy(copy, text, n);
  return copy;
}

static const char *kind_of(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/* 1 when path names one of the process's open descriptors (/dev/stdout,
 * /dev/fd/N, /proc/self/fd/N, or a link to one): that is written through,
 * in place, whatever file the descriptor has open. */
static int names_descriptor(const char *path) {
  char link[PATH_MAX], next[PATH_MAX];
  int hops;
  snprintf(next, sizeof next, "%s", path);
  for (hops = 0; hops < 16; ++hops) {
    struct stat st;
    ssize_t n;
    if (strncmp(next, "/dev/fd/", 8) == 0 ||
        strncmp(next, "/proc/self/fd/", 14) == 0 ||
        strcmp(next, "/dev/stdout") == 0 || strcmp(next, "/dev/stderr") == 0)
      return 1;
    if (lstat(next, &st) != 0 || !S_ISLNK(st.st_mode)) return 0;
    n = readlink(next, link, sizeof link - 1);
    if (n < 0) return 0;
    link[n] = '\0';
    if (link[0] == '/') {
      snprintf(next, sizeof next, "%s", link);
    } else { /* relative to the link's directory */
      char *slash = strrchr(next, '/');
      if (slash == NULL)
        snprintf(next, sizeof next, "%s", link);
      else if ((size_t)(slash - next) + 1 + (size_t)n < sizeof next)
        memcpy(slash + 1, link, (size_t)n + 1);
      else
        return 0;
    }
  }
  return 0;
}

/* Decide by the rule what f->path is: sets f->target and f->direct, or
 * prints why it cannot be written and returns 0. */
static int resolve(cli_file *f) {
  struct stat st;
  if (names_descriptor(f->path)) {
    f->direct = 1;
    f->target = copy_text(f->path);
  } else if (stat(f->path, &st) != 0) {
    if (errno != ENOENT) {
      cli_error("cannot write %s %s: %s", f->what, f->path, strerror(errno));
      return 0;
    }
    if (lstat(f->path, &st) == 0 && S_ISLNK(st.st_mode)) {
      cli_error("cannot write %s %s: it is a symbolic link to nothing", f->what,
                f->path);
      return 0;
    }
    f->target = copy_text(f->path); /* a new file */
  } else if (S_ISREG(st.st_mode)) {
    f->target = realpath(f->path, NULL);
  } else if (S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode)) {
    f->direct = 1;
    f->target = copy_text(f->path);
  } else {
    cli_error("cannot write %s %s: it is %s", f->what, f->path,
              kind_of(st.st_mode));
    return 0;
  }
  if (f->target == NULL) {
    cli_error("cannot write %s %s: %s", f->what, f->path, strerror(errno));
    return 0;
  }
  return 1;
}

/* Open a device, FIFO or descriptor to write in place. A FIFO is opened
 * without waiting for a reader (none: an error now, not a hang); what is
 * opened must still be a device or FIFO, or a descriptor's file (not a
 * file put there since); appending, so that a descriptor's file keeps
 * what the process wrote before. */
static int open_direct(cli_file *f) {
  struct stat st;
  int flags;
  f->fd =
      open(f->target, O_WRONLY | O_APPEND | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
  if (f->fd < 0) {
    cli_error(
        "cannot write %s %s: %s", f->what, f->path,
        errno == ENXIO ? "no process is reading the FIFO" : strerror(errno));
    return 0;
  }
  flags = fcntl(f->fd, F_GETFL);
  if (fstat(f->fd, &st) != 0 ||
      !(S_ISCHR(st.st_mode) || S_ISFIFO(st.st_mode) ||
        (S_ISREG(st.st_mode) && names_descriptor(f->path))) ||
      flags < 0 || fcntl(f->fd, F_SETFL, flags & ~O_NONBLOCK) != 0) {
    cli_error("cannot write %s %s: it changed while being opened", f->what,
              f->path);
    close(f->fd);
    f->fd = -1;
    return 0;
  }
  return 1;
}

static void release(cli_file *f) {
  free(f->target);
  free(f->tmp);
  f->target = f->tmp = NULL;
}

int cli_file_open_whole(cli_file *f, const char *what, const char *path) {
  struct stat old;
  size_t size;
  int attempt;
  memset(f, 0, sizeof *f);
  f->what = what;
  f->path = path;
  f->fd = -1;
  if (strcmp(path, "-") == 0) {
    f->stream = stdout;
    f->direct = 1;
    return 1;
  }
  if (!resolve(f)) return 0;
  if (f->direct) {
    if (!open_direct(f)) goto fail;
  } else {
    size = strlen(f->target) + 64;
    f->tmp = (char *)malloc(size);
    if (f->tmp == NULL) {
      cli_error("cannot write %s %s: out of memory", what, path);
      goto fail;
    }
    /* Mode 0666 lets the umask decide a new file's permissions; a file
     * replaced keeps its own. A name a concurrent run took is skipped. */
    for (attempt = 0; attempt < 100 && f->fd < 0; ++attempt) {
      snprintf(f->tmp, size, "%s.tmp.%ld.%d", f->target, (long)getpid(),
               attempt);
      f->fd = open(f->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
      if (f->fd < 0 && errno != EEXIST) break;
    }
    if (f->fd < 0) {
      cli_error("cannot write %s %s: %s", what, path, strerror(errno));
      goto fail;
    }
    if (stat(f->target, &old) == 0) (void)fchmod(f->fd, old.st_mode & 07777);
  }
  f->stream = fdopen(f->fd, "w");
  if (f->stream == NULL) {
    cli_error("cannot write %s %s: %s", what, path, strerror(errno));
    close(f->fd);
    if (f->tmp != NULL) unlink(f->tmp);
    goto fail;
  }
  f->fd = -1; /* the stream owns it */
  return 1;
fail:
  release(f);
  return 0;
}

FILE *cli_file_stream(cli_file *f) { return f->stream; }

int cli_file_open_lines(cli_file *f, const char *what, const char *path,
                        int append) {
  struct stat st;
  memset(f, 0, sizeof *f);
  f->what = what;
  f->path = path;
  f->fd = -1;
  if (!resolve(f)) return 0;
  if (f->direct) {
    if (open_direct(f)) return 1;
    release(f);
    return 0;
  }
  f->fd =
      open(f->target, O_RDWR | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0666);
  if (f->fd >= 0)
    f->created = 1;
  else if (errno == EEXIST)
    f->fd = open(f->target, O_RDWR | O_APPEND | O_NOFOLLOW | O_CLOEXEC |
                                (append ? 0 : O_TRUNC));
  if (f->fd < 0 || fstat(f->fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    cli_error("cannot write %s %s: %s", what, path,
              f->fd < 0 ? strerror(errno) : "it changed while being opened");
    if (f->fd >= 0) close(f->fd);
    release(f);
    return 0;
  }
  return 1;
}

int cli_file_write_line(cli_file *f, const char *text, size_t length) {
  char *line;
  size_t done = 0;
  off_t before = 0;
  int error = 0;
  if (f->error != 0) return 0;
  line = (char *)malloc(length + 1);
  if (line == NULL) {
    error = ENOMEM;
  } else {
    memcpy(line, text, length);
    line[length] = '\n';
    /* Appends go to the end: where the line starts, to cut back to. */
    if (!f->direct && (before = lseek(f->fd, 0, SEEK_END)) < 0) error = errno;
    while (error == 0 && done < length + 1) {
      ssize_t n = write(f->fd, line + done, length + 1 - done);
      if (n > 0)
        done += (size_t)n;
      else if (n < 0 && errno == EINTR)
        continue;
      else
        error = n < 0 ? errno : ENOSPC;
    }
    free(line);
  }
  if (error == 0) return 1;
  if (!f->direct && done > 0) (void)ftruncate(f->fd, before);
  f->error = error;
  return 0;
}

/* (Files of lines are opened read-write for the pread here.) */
int cli_file_end_torn_line(cli_file *f) {
  struct stat st;
  char last = '\n';
  if (f->direct || fstat(f->fd, &st) != 0 || st.st_size == 0) return 1;
  if (pread(f->fd, &last, 1, st.st_size - 1) == 1 && last == '\n') return 1;
  return cli_file_write_line(f, "", 0);
}

/* Make a rename in path's directory durable. */
static int sync_directory(const char *path) {
  const char *slash = strrchr(path, '/');
  char *dir;
  int fd, ok;
  if (slash == NULL) {
    dir = copy_text(".");
  } else {
    size_t n = slash == path ? 1 : (size_t)(slash - path);
    dir = (char *)malloc(n + 1);
    if (dir != NULL) {
      memcpy(dir, path, n);
      dir[n] = '\0';
    }
  }
  if (dir == NULL) return 0;
  fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  ok = fd >= 0 && fsync(fd) == 0;
  if (fd >= 0) close(fd);
  free(dir);
  return ok;
}

static int close_whole(cli_file *f, int keep) {
  int ok = 1;
  if (f->stream == stdout) {
    if (keep && (fflush(stdout) != 0 || ferror(stdout))) {
      cli_error("writing %s to standard output failed: %s", f->what,
                strerror(errno));
      ok = 0;
    }
    return ok;
  }
  if (keep && (fflush(f->stream) != 0 || ferror(f->stream) ||
               (!f->direct && fsync(fileno(f->stream)) != 0))) {
    cli_error("writing %s %s failed: %s", f->what, f->path, strerror(errno));
    ok = 0;
  }
  if (fclose(f->stream) != 0 && keep && ok) {
    cli_error("writing %s %s failed: %s", f->what, f->path, strerror(errno));
    ok = 0;
  }
  f->stream = NULL;
  if (f->tmp == NULL) return ok;
  if (keep && ok && rename(f->tmp, f->target) != 0) {
    cli_error("cannot write %s %s: %s", f->what, f->path, strerror(errno));
    ok = 0;
  }
  if (!keep || !ok) {
    unlink(f->tmp);
  } else if (!sync_directory(f->target)) {
    cli_error(
        "%s %s was written, but syncing its directory failed (%s): it "
        "may not survive a crash",
        f->what, f->path, strerror(errno));
    ok = 0;
  }
  return ok;
}

static int close_lines(cli_file *f, int keep) {
  struct stat st;
  int ok = 1;
  if (!keep && f->created && fstat(f->fd, &st) == 0 && st.st_size == 0)
    unlink(f->target);
  if (close(f->fd) != 0 && keep && f->error == 0) {
    cli_error("writing %s %s failed: %s", f->what, f->path, strerror(errno));
    ok = 0;
  }
  f->fd = -1;
  return ok;
}

int cli_file_close(cli_file *f, int keep) {
  int ok = 1;
  if (f->stream != NULL)
    ok = close_whole(f, keep);
  else if (f->fd >= 0)
    ok = close_lines(f, keep);
  release(f);
  return keep ? ok : 1;
}

/* ---- one file or two ---- */

/* path made absolute, its longest existing prefix resolved by realpath and
 * the rest (which has no links: it does not exist) normalised by hand. */
static char *canonical_path(const char *path) {
  size_t n = strlen(path), cut = n, at;
  char *head = copy_text(path), *base = NULL, *out;
  const char *rest;
  if (head == NULL) return NULL;
  for (;;) {
    head[cut] = '\0';
    base = realpath(cut > 0 ? head : (path[0] == '/' ? "/" : "."), NULL);
    if (base != NULL || cut == 0) break;
    while (cut > 0 && path[cut - 1] != '/') --cut; /* the last component */
    while (cut > 0 && path[cut - 1] == '/') --cut; /* and its slashes */
  }
  free(head);
  if (base == NULL) return NULL;
  out = (char *)malloc(strlen(base) + n + 2);
  if (out == NULL) {
    free(base);
    return NULL;
  }
  strcpy(out, base);
  free(base);
  at = strlen(out);
  for (rest = path + cut; *rest != '\0';) {
    size_t len;
    while (*rest == '/') ++rest;
    len = strcspn(rest, "/");
    if (len == 0 || (len == 1 && rest[0] == '.')) {
      /* nothing */
    } else if (len == 2 && rest[0] == '.' && rest[1] == '.') {
      while (at > 1 && out[at - 1] != '/') --at;
      if (at > 1) --at;
      out[at] = '\0';
    } else {
      if (at > 1) out[at++] = '/';
      memcpy(out + at, rest, len);
      at += len;
      out[at] = '\0';
    }
    rest += len;
  }
  return out;
}

int cli_same_file(const char *a, const char *b) {
  struct stat sa, sb;
  int has_a = stat(a, &sa) == 0, has_b = stat(b, &sb) == 0, same;
  char *ca, *cb;
  if (has_a && has_b) return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino;
  if (has_a || has_b) return 0;
  ca = canonical_path(a);
  cb = canonical_path(b);
  same = ca != NULL && cb != NULL && strcmp(ca, cb) == 0;
  free(ca);
  free(cb);
  return same;
}
