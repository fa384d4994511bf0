/*
 * safetensors_write.c - writing safetensors files atomically.
 *
 * The file goes to a temporary in the target's directory, is fsync'ed,
 * renamed over the target, and the directory is fsync'ed, so a crash at any
 * moment leaves either the old file or the complete new one. Only a regular
 * file is ever replaced: a symbolic link is followed (its target is
 * replaced, the link stays), and a device, FIFO, socket or directory at the
 * path is refused, never renamed over.
 */
#define _XOPEN_SOURCE 700 /* realpath */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/safetensors_format.h"

/* Failures name the public call, not the helper that found them. */
#define SAVE_FAIL(ctx, status, ...) \
  cudl__fail((ctx), (status), "cudl_safetensors_save", __VA_ARGS__)

/* Tensors are laid out as the reference writer lays them out: by its dtype
 * order, last first (F32, then BF16, then F16: larger elements first, so
 * every tensor is aligned to its element size), then by name. */
static int compare_layout(const void *a, const void *b) {
  const cudl_named_tensor *x = (const cudl_named_tensor *)a;
  const cudl_named_tensor *y = (const cudl_named_tensor *)b;
  int ox = cudl__st_dtype_order(x->tensor->dtype);
  int oy = cudl__st_dtype_order(y->tensor->dtype);
  if (ox != oy) return ox > oy ? -1 : 1;
  return strcmp(x->name, y->name);
}

static int compare_names(const void *a, const void *b) {
  return strcmp(((const cudl_named_tensor *)a)->name,
                ((const cudl_named_tensor *)b)->name);
}

static int compare_keys(const void *a, const void *b) {
  return strcmp(((const cudl_metadata_pair *)a)->key,
                ((const cudl_metadata_pair *)b)->key);
}

static cudl_status check_save_args(cudl_context *ctx, const char *path,
                                   const cudl_named_tensor *tensors, size_t n,
                                   const cudl_metadata_pair *metadata,
                                   size_t n_metadata) {
  size_t i;
  if (path == NULL || path[0] == '\0')
    return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "path is NULL or empty");
  if (tensors == NULL && n > 0)
    return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "tensors is NULL");
  if (metadata == NULL && n_metadata > 0)
    return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "metadata is NULL");
  for (i = 0; i < n; ++i) {
    const char *name = tensors[i].name;
    if (name == NULL || name[0] == '\0')
      return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "tensors[%zu].name is NULL or empty", i);
    if (!cudl__utf8_valid((const unsigned char *)name, strlen(name)))
      return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "tensors[%zu].name is not valid UTF-8", i);
    if (strcmp(name, "__metadata__") == 0)
      return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "tensors[%zu].name is the reserved '__metadata__'", i);
    if (tensors[i].tensor == NULL)
      return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "tensors[%zu].tensor ('%s') is NULL", i, name);
    if (cudl__st_dtype_name(tensors[i].tensor->dtype) == NULL)
      return SAVE_FAIL(ctx, CUDL_ERR_DTYPE, "tensors[%zu] has an unknown dtype",
                       i);
  }
  for (i = 0; i < n_metadata; ++i) {
    if (metadata[i].key == NULL || metadata[i].value == NULL)
      return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "metadata[%zu] has a NULL key or value", i);
    if (!cudl__utf8_valid((const unsigned char *)metadata[i].key,
                          strlen(metadata[i].key)) ||
        !cudl__utf8_valid((const unsigned char *)metadata[i].value,
                          strlen(metadata[i].value)))
      return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                       "metadata[%zu] is not valid UTF-8", i);
  }
  return CUDL_OK;
}

/* An array of exact 64-bit integers (Jansson does not round). */
static json_t *integer_array(const int64_t *values, int n) {
  json_t *array = json_array();
  int i;
  if (array == NULL) return NULL;
  for (i = 0; i < n; ++i)
    if (json_array_append_new(array, json_integer((json_int_t)values[i])) !=
        0) {
      json_decref(array);
      return NULL;
    }
  return array;
}

/* The header text, padded with spaces to a multiple of 8: compact JSON,
 * __metadata__ first, each entry's keys in the order dtype, shape,
 * data_offsets. `sorted` is the tensors in layout order. The text (not
 * NUL-terminated) comes from ctx's allocator, *length bytes. */
static cudl_status build_header(cudl_context *ctx,
                                const cudl_named_tensor *sorted, size_t n,
                                const cudl_metadata_pair *metadata,
                                size_t n_metadata, char **text,
                                size_t *length) {
  json_t *root = json_object(), *meta, *entry;
  int64_t offsets[2] = {0, 0};
  const size_t flags = JSON_COMPACT | JSON_PRESERVE_ORDER;
  size_t i, len, padded;
  char *out;
  if (root == NULL) goto oom;
  if (n_metadata > 0) {
    if ((meta = json_object()) == NULL ||
        json_object_set_new(root, "__metadata__", meta) != 0)
      goto oom;
    for (i = 0; i < n_metadata; ++i)
      if (json_object_set_new(meta, metadata[i].key,
                              json_string(metadata[i].value)) != 0)
        goto oom;
  }
  for (i = 0; i < n; ++i) {
    const cudl_tensor *t = sorted[i].tensor;
    offsets[0] = offsets[1];
    offsets[1] += (int64_t)t->nbytes;
    if ((entry = json_object()) == NULL ||
        json_object_set_new(root, sorted[i].name, entry) != 0 ||
        json_object_set_new(entry, "dtype",
                            json_string(cudl__st_dtype_name(t->dtype))) != 0 ||
        json_object_set_new(entry, "shape", integer_array(t->shape, t->ndim)) !=
            0 ||
        json_object_set_new(entry, "data_offsets", integer_array(offsets, 2)) !=
            0)
      goto oom;
  }
  /* Dumped into memory from the context's allocator: the string
   * json_dumps returns comes from Jansson's process-wide hooks, which an
   * embedding program may have replaced. */
  len = json_dumpb(root, NULL, 0, flags);
  if (len == 0) goto oom;
  padded = (len + 7) / 8 * 8;
  if (padded > CUDL_SAFETENSORS_MAX_HEADER) {
    json_decref(root);
    return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                     "the header would be %zu bytes, above the format's limit",
                     padded);
  }
  out = (char *)cudl__host_alloc(&ctx->allocator, padded, 8);
  if (out == NULL || json_dumpb(root, out, len, flags) != len) {
    cudl__host_free(&ctx->allocator, out, padded);
    goto oom;
  }
  json_decref(root);
  memset(out + len, ' ', padded - len);
  *text = out;
  *length = padded;
  return CUDL_OK;
oom:
  json_decref(root);
  return SAVE_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot build the JSON header");
}

static cudl_status write_all(cudl_context *ctx, int fd, const void *data,
                             size_t n, const char *path) {
  const unsigned char *p = (const unsigned char *)data;
  while (n > 0) {
    ssize_t put = write(fd, p, n);
    if (put < 0 && errno == EINTR) continue;
    if (put < 0)
      return SAVE_FAIL(ctx, CUDL_ERR_IO, "writing '%s' failed: %s", path,
                       strerror(errno));
    p += put;
    n -= (size_t)put;
  }
  return CUDL_OK;
}

#define ST_STAGING_BYTES ((size_t)16 << 20)

/* Tensor bytes in layout order; device tensors through a bounded buffer. */
static cudl_status write_data(cudl_context *ctx, int fd,
                              const cudl_named_tensor *sorted, size_t n,
                              const char *path) {
  unsigned char *staging = NULL;
  size_t staging_size = 0, i;
  cudl_status status = CUDL_OK;
  for (i = 0; i < n; ++i)
    if (sorted[i].tensor->ctx->device != CUDL_DEVICE_CPU &&
        sorted[i].tensor->nbytes > staging_size)
      staging_size = sorted[i].tensor->nbytes;
  if (staging_size > ST_STAGING_BYTES) staging_size = ST_STAGING_BYTES;
  if (staging_size > 0) {
    staging =
        (unsigned char *)cudl__host_alloc(&ctx->allocator, staging_size, 64);
    if (staging == NULL)
      return SAVE_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot allocate the download buffer");
  }
  for (i = 0; i < n && status == CUDL_OK; ++i) {
    const cudl_tensor *t = sorted[i].tensor;
    size_t done = 0;
    if (t->nbytes == 0) continue;
    if (t->ctx->device == CUDL_DEVICE_CPU) {
      status = write_all(ctx, fd, t->data, t->nbytes, path);
      continue;
    }
    while (done < t->nbytes && status == CUDL_OK) {
      size_t chunk =
          t->nbytes - done < staging_size ? t->nbytes - done : staging_size;
      status = t->ctx->backend->runtime->copy_to_host(
          t->ctx, staging, (const unsigned char *)t->data + done, chunk);
      if (status != CUDL_OK)
        status = SAVE_FAIL(ctx, status, "reading '%s' from the device: %s",
                           sorted[i].name, t->ctx->last_error);
      else
        status = write_all(ctx, fd, staging, chunk, path);
      done += chunk;
    }
  }
  cudl__host_free(&ctx->allocator, staging, staging_size);
  return status;
}

/* The directory part of path ("." when there is none), into dir. */
static void directory_of(const char *path, char *dir, size_t size) {
  const char *slash = strrchr(path, '/');
  if (slash == NULL) {
    snprintf(dir, size, ".");
  } else if (slash == path) {
    snprintf(dir, size, "/");
  } else {
    snprintf(dir, size, "%.*s", (int)(slash - path), path);
  }
}

static const char *file_kind(mode_t mode) {
  if (S_ISDIR(mode)) return "a directory";
  if (S_ISCHR(mode)) return "a character device";
  if (S_ISBLK(mode)) return "a block device";
  if (S_ISFIFO(mode)) return "a FIFO";
  if (S_ISSOCK(mode)) return "a socket";
  return "not a regular file";
}

/* What a save to `path` replaces: *target is path, or, for a symbolic
 * link, the file it points to (resolved into `resolved`, PATH_MAX bytes).
 * Anything there but a regular file is refused. */
static cudl_status save_target(cudl_context *ctx, const char *path,
                               char *resolved, const char **target) {
  struct stat st;
  *target = path;
  if (lstat(path, &st) != 0) return CUDL_OK; /* new (open reports the rest) */
  if (S_ISLNK(st.st_mode)) {
    if (realpath(path, resolved) == NULL || stat(resolved, &st) != 0)
      return SAVE_FAIL(ctx, CUDL_ERR_IO,
                       "'%s' is a symbolic link to nothing that can be "
                       "replaced: %s",
                       path, strerror(errno));
    *target = resolved;
  }
  if (!S_ISREG(st.st_mode))
    return SAVE_FAIL(ctx, CUDL_ERR_IO,
                     "'%s' is %s: a save replaces only a regular file", path,
                     file_kind(st.st_mode));
  return CUDL_OK;
}

static cudl_status write_file(cudl_context *ctx, const char *given_path,
                              const char *header, size_t header_len,
                              const cudl_named_tensor *sorted, size_t n) {
  unsigned char length_bytes[8];
  char resolved[PATH_MAX];
  const char *path;
  size_t tmp_len, i;
  char *tmp_path;
  struct stat old;
  int fd = -1, dir_fd, attempt;
  cudl_status status = save_target(ctx, given_path, resolved, &path);

  if (status != CUDL_OK) return status;
  tmp_len = strlen(path) + 48;
  tmp_path = (char *)cudl__host_alloc(&ctx->allocator, tmp_len, 1);
  if (tmp_path == NULL)
    return SAVE_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot allocate a path");
  /* O_EXCL with mode 0666 lets the umask decide a new file's permissions
   * (mkstemp would force 0600); a name taken by a concurrent save is
   * skipped. */
  for (attempt = 0; attempt < 100 && fd < 0; ++attempt) {
    snprintf(tmp_path, tmp_len, "%s.tmp.%ld.%d", path, (long)getpid(), attempt);
    fd = open(tmp_path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0 && errno != EEXIST) break;
  }
  if (fd < 0) {
    status = SAVE_FAIL(ctx, CUDL_ERR_IO,
                       "cannot create a temporary file "
                       "beside '%s': %s",
                       path, strerror(errno));
    cudl__host_free(&ctx->allocator, tmp_path, tmp_len);
    return status;
  }
  /* A file being replaced keeps its permissions. */
  if (stat(path, &old) == 0) (void)fchmod(fd, old.st_mode & 07777);

  for (i = 0; i < 8; ++i)
    length_bytes[i] = (unsigned char)((uint64_t)header_len >> (8 * i));
  status = write_all(ctx, fd, length_bytes, 8, path);
  if (status == CUDL_OK) status = write_all(ctx, fd, header, header_len, path);
  if (status == CUDL_OK) status = write_data(ctx, fd, sorted, n, path);
  if (status == CUDL_OK && fsync(fd) != 0)
    status = SAVE_FAIL(ctx, CUDL_ERR_IO, "fsync of '%s' failed: %s", tmp_path,
                       strerror(errno));
  if (close(fd) != 0 && status == CUDL_OK)
    status = SAVE_FAIL(ctx, CUDL_ERR_IO, "closing '%s' failed: %s", tmp_path,
                       strerror(errno));
  if (status == CUDL_OK && rename(tmp_path, path) != 0)
    status = SAVE_FAIL(ctx, CUDL_ERR_IO, "renaming '%s' to '%s' failed: %s",
                       tmp_path, path, strerror(errno));
  if (status != CUDL_OK) {
    unlink(tmp_path);
  } else {
    /* Make the rename itself durable (the path buffer is free now and
     * long enough for the directory part). The new file is in place
     * whatever happens here; a failure means its durability is unknown. */
    directory_of(path, tmp_path, tmp_len);
    dir_fd = open(tmp_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dir_fd < 0 || fsync(dir_fd) != 0)
      status = SAVE_FAIL(ctx, CUDL_ERR_IO,
                         "'%s' was replaced, but syncing its directory '%s' "
                         "failed (%s): the new file may not survive a crash",
                         path, tmp_path, strerror(errno));
    if (dir_fd >= 0) close(dir_fd);
  }
  cudl__host_free(&ctx->allocator, tmp_path, tmp_len);
  return status;
}

cudl_status cudl_safetensors_save(cudl_context *ctx, const char *path,
                                  const cudl_named_tensor *tensors,
                                  size_t n_tensors,
                                  const cudl_metadata_pair *metadata,
                                  size_t n_metadata) {
  cudl_named_tensor *sorted = NULL;
  cudl_metadata_pair *sorted_meta = NULL;
  size_t sorted_size = 0, meta_size = 0, header_len = 0, i;
  char *header = NULL;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (!cudl__host_little_endian())
    return SAVE_FAIL(ctx, CUDL_ERR_UNSUPPORTED,
                     "safetensors needs a little-endian host");
  status = check_save_args(ctx, path, tensors, n_tensors, metadata, n_metadata);
  if (status != CUDL_OK) return status;

  if (!cudl__mul_size(n_tensors, sizeof *sorted, &sorted_size) ||
      !cudl__mul_size(n_metadata, sizeof *sorted_meta, &meta_size))
    return SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "too many entries");
  if (sorted_size > 0 && (sorted = (cudl_named_tensor *)cudl__host_alloc(
                              &ctx->allocator, sorted_size, 16)) == NULL)
    return SAVE_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot allocate the layout");
  if (meta_size > 0 && (sorted_meta = (cudl_metadata_pair *)cudl__host_alloc(
                            &ctx->allocator, meta_size, 16)) == NULL) {
    status =
        SAVE_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY, "cannot allocate the layout");
    goto done;
  }
  if (sorted_size > 0) {
    memcpy(sorted, tensors, sorted_size);
    /* By name first, to find duplicates; then into layout order. */
    qsort(sorted, n_tensors, sizeof *sorted, compare_names);
    for (i = 1; i < n_tensors; ++i)
      if (strcmp(sorted[i - 1].name, sorted[i].name) == 0) {
        status =
            SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                      "the tensor name '%s' is given twice", sorted[i].name);
        goto done;
      }
    qsort(sorted, n_tensors, sizeof *sorted, compare_layout);
  }
  if (meta_size > 0) {
    memcpy(sorted_meta, metadata, meta_size);
    qsort(sorted_meta, n_metadata, sizeof *sorted_meta, compare_keys);
  }
  for (i = 1; i < n_metadata; ++i)
    if (strcmp(sorted_meta[i - 1].key, sorted_meta[i].key) == 0) {
      status =
          SAVE_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT,
                    "the metadata key '%s' is given twice", sorted_meta[i].key);
      goto done;
    }

  status = build_header(ctx, sorted, n_tensors, sorted_meta, n_metadata,
                        &header, &header_len);
  if (status == CUDL_OK)
    status = write_file(ctx, path, header, header_len, sorted, n_tensors);

done:
  cudl__host_free(&ctx->allocator, header, header_len);
  cudl__host_free(&ctx->allocator, sorted_meta, meta_size);
  cudl__host_free(&ctx->allocator, sorted, sorted_size);
  return status;
}
