/*
 * folder.c - datasets from folders of images, dir/<class>/...: the classes
 * and their files in a fixed order, every file decoded once and in
 * parallel into the dataset (or, streamed, checked and summed and its
 * pixels dropped), the files that could not be read recorded with their
 * reasons; and the layout of a data folder (train/val/test or one tree).
 * cudl/image.h is the contract; folder_stream.c reads a streamed set's
 * images later.
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "data/data_internal.h"
#include "data/image_internal.h"

#define FOLDER_PATH_MAX 4096
#define FOLDER_MAX_DEPTH 32
#define FOLDER_MAX_CLASSES 256
#define FOLDER_OUT_OF_MEMORY "out of memory for the reason"

/* A file found under a class directory, or a directory that could not be
 * read; status not OK (with reason) once it is known to be unreadable. */
typedef struct folder_entry {
  char *path;
  size_t path_size;
  int label;
  cudl_status status;
  char *reason; /* NULL while status is OK */
  size_t reason_size;
  cudl_image_info info; /* after the header pass */
} folder_entry;

typedef struct entry_list {
  folder_entry *items;
  size_t count, capacity;
} entry_list;

cudl_folder_options cudl_folder_options_default(void) {
  cudl_folder_options o;
  memset(&o, 0, sizeof o);
  return o;
}

static char *copy_text(const cudl_allocator *a, const char *text,
                       size_t *size) {
  const size_t n = strlen(text) + 1;
  char *copy = (char *)cudl__image_alloc(a, n);
  *size = copy != NULL ? n : 0;
  if (copy != NULL) memcpy(copy, text, n);
  return copy;
}

/* Mark e unreadable. Called from the decoding threads: the allocator is
 * taken one thread at a time (cudl__image_alloc). */
static void entry_fail(const cudl_allocator *a, folder_entry *e,
                       cudl_status status, const char *reason) {
  e->status = status;
  e->reason = copy_text(a, reason, &e->reason_size);
}

static void list_free(const cudl_allocator *a, entry_list *l) {
  size_t i;
  for (i = 0; i < l->count; ++i) {
    cudl__image_free(a, l->items[i].path, l->items[i].path_size);
    cudl__image_free(a, l->items[i].reason, l->items[i].reason_size);
  }
  cudl__image_free(a, l->items, l->capacity * sizeof *l->items);
  memset(l, 0, sizeof *l);
}

static folder_entry *list_push(const cudl_allocator *a, entry_list *l,
                               const char *path, int label) {
  folder_entry *e;
  if (l->count == l->capacity) {
    const size_t capacity = l->capacity == 0 ? 64 : l->capacity * 2;
    folder_entry *items =
        (folder_entry *)cudl__image_alloc(a, capacity * sizeof *items);
    if (items == NULL) return NULL;
    if (l->count > 0) memcpy(items, l->items, l->count * sizeof *items);
    cudl__image_free(a, l->items, l->capacity * sizeof *l->items);
    l->items = items;
    l->capacity = capacity;
  }
  e = &l->items[l->count];
  memset(e, 0, sizeof *e);
  e->label = label;
  e->status = CUDL_OK;
  e->path = copy_text(a, path, &e->path_size);
  if (e->path == NULL) return NULL;
  ++l->count;
  return e;
}

static int compare_paths(const void *x, const void *y) {
  return strcmp(((const folder_entry *)x)->path,
                ((const folder_entry *)y)->path);
}

static int compare_names(const void *x, const void *y) {
  return strcmp(*(char *const *)x, *(char *const *)y);
}

static int is_directory(const char *path) {
  struct stat st;
  return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* Every file under path (depth directories below the class directory),
 * appended to files with `label`. A directory that cannot be listed, or
 * lies too deep, becomes an unreadable entry. 0 when out of memory. */
static int walk(const cudl_allocator *a, char *path, int depth, int label,
                entry_list *files) {
  const size_t len = strlen(path);
  struct dirent *d;
  int ok = 1;
  DIR *dir = opendir(path);
  if (dir == NULL) {
    char reason[128];
    folder_entry *e = list_push(a, files, path, label);
    if (e == NULL) return 0;
    snprintf(reason, sizeof reason, "cannot list the directory: %s",
             strerror(errno));
    entry_fail(a, e, CUDL_ERR_IO, reason);
    return 1;
  }
  while (ok && (d = readdir(dir)) != NULL) {
    folder_entry *e;
    if (d->d_name[0] == '.') continue;
    if (len + 1 + strlen(d->d_name) >= FOLDER_PATH_MAX) {
      e = list_push(a, files, d->d_name, label);
      if (e == NULL) ok = 0;
      else entry_fail(a, e, CUDL_ERR_IO, "the path is too long");
      continue;
    }
    path[len] = '/';
    strcpy(path + len + 1, d->d_name);
    if (!is_directory(path)) {
      ok = list_push(a, files, path, label) != NULL;
    } else if (depth + 1 > FOLDER_MAX_DEPTH) {
      /* Also where a symbolic link loops back. */
      e = list_push(a, files, path, label);
      if (e == NULL) ok = 0;
      else
        entry_fail(a, e, CUDL_ERR_IO,
                   "a directory nested more than 32 levels deep: not read");
    } else {
      ok = walk(a, path, depth + 1, label, files);
    }
    path[len] = '\0';
  }
  closedir(dir);
  return ok;
}

/* The class directories of dir, sorted; *count of them in *names (from
 * a). CUDL_ERR_IO when dir cannot be listed. */
static cudl_status list_classes(cudl_context *ctx, const char *fn,
                                const char *dir, char ***names, size_t *size,
                                int *count) {
  const cudl_allocator *a = &ctx->allocator;
  char path[FOLDER_PATH_MAX];
  char **list = NULL;
  size_t capacity = 0;
  int n = 0, i;
  struct dirent *d;
  DIR *handle = opendir(dir);
  *names = NULL;
  *size = 0;
  *count = 0;
  if (handle == NULL)
    return cudl__fail(ctx, CUDL_ERR_IO, fn, "cannot list '%s': %s", dir,
                      strerror(errno));
  while ((d = readdir(handle)) != NULL) {
    int written;
    if (d->d_name[0] == '.') continue;
    written = snprintf(path, sizeof path, "%s/%s", dir, d->d_name);
    if (written < 0 || (size_t)written >= sizeof path || !is_directory(path))
      continue;
    if ((size_t)n == capacity) {
      const size_t grown = capacity == 0 ? 16 : capacity * 2;
      char **bigger = (char **)cudl__image_alloc(a, grown * sizeof *bigger);
      if (bigger == NULL) break;
      if (n > 0) memcpy(bigger, list, (size_t)n * sizeof *list);
      cudl__image_free(a, list, capacity * sizeof *list);
      list = bigger;
      capacity = grown;
    }
    list[n] = cudl__host_strdup(a, d->d_name, &(size_t){0});
    if (list[n] == NULL) break;
    ++n;
  }
  closedir(handle);
  if (d != NULL) {
    for (i = 0; i < n; ++i) cudl__host_free(a, list[i], strlen(list[i]) + 1);
    cudl__image_free(a, list, capacity * sizeof *list);
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate the class names of '%s'", dir);
  }
  if (n > 1) qsort(list, (size_t)n, sizeof *list, compare_names);
  *names = list;
  *size = capacity;
  *count = n;
  return CUDL_OK;
}

static void free_classes(const cudl_allocator *a, char **names, size_t size,
                         int count) {
  int i;
  for (i = 0; i < count; ++i) cudl__host_free(a, names[i], strlen(names[i]) + 1);
  cudl__image_free(a, names, size * sizeof *names);
}

static cudl_status check_options(cudl_context *ctx, const char *fn,
                                 const cudl_folder_options *o) {
  int i, j;
  if (o->channels != 0 && o->channels != 1 && o->channels != 3)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "channels is %d; it must be 0 (from the images), 1 or 3",
                      o->channels);
  if ((o->height == 0) != (o->width == 0) || o->height < 0 || o->width < 0 ||
      o->height > CUDL_DATASET_MAX_SIDE || o->width > CUDL_DATASET_MAX_SIDE)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "size %d x %d; both 0 (the images' own) or both 1 to %d",
                      o->height, o->width, CUDL_DATASET_MAX_SIDE);
  if (o->stream != 0 && o->stream != 1)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "stream is %d; it must be 0 (when over the cache "
                      "budget) or 1 (always)",
                      o->stream);
  if (o->class_names == NULL) return CUDL_OK;
  if (o->class_count < 1 || o->class_count > FOLDER_MAX_CLASSES)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "class_count is %d; it must be 1 to %d", o->class_count,
                      FOLDER_MAX_CLASSES);
  for (i = 0; i < o->class_count; ++i) {
    if (o->class_names[i] == NULL || o->class_names[i][0] == '\0')
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                        "class_names[%d] is %s", i,
                        o->class_names[i] == NULL ? "NULL" : "empty");
    for (j = 0; j < i; ++j)
      if (strcmp(o->class_names[i], o->class_names[j]) == 0)
        return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                          "class_names[%d] and [%d] are both '%s'", j, i,
                          o->class_names[i]);
  }
  return CUDL_OK;
}

/* The label of class directory `name`: its index among the sorted
 * directories, or among options' class names (-1 when not there). */
static int label_of(const cudl_folder_options *o, char **dirs, int k) {
  int i;
  if (o->class_names == NULL) return k;
  for (i = 0; i < o->class_count; ++i)
    if (strcmp(o->class_names[i], dirs[k]) == 0) return i;
  return -1;
}

/* Read the file of e and decode it into pixels (or only its header into
 * e->info when pixels is NULL); failures are recorded in e. */
static void read_entry(const cudl_allocator *a, folder_entry *e, int channels,
                       int height, int width, uint8_t *pixels) {
  cudl_image_error err;
  uint8_t *data;
  size_t size;
  cudl_status status = cudl__image_read_file(a, e->path, &data, &size, &err);
  if (status == CUDL_OK) {
    if (pixels == NULL) {
      cudl_image_info info;
      status = cudl__image_probe_memory(data, size, CUDL_IMAGE_MAX_PIXELS,
                                        &info, &err);
      if (status == CUDL_OK && info.channels == 4)
        status = cudl__image_error(&err, CUDL_ERR_FILE_FORMAT,
                                   "JPEG: CMYK/YCCK colour is not supported "
                                   "(convert the file to RGB)");
      if (status == CUDL_OK) e->info = info;
    } else {
      status = cudl__image_decode_memory(a, data, size, CUDL_IMAGE_MAX_PIXELS,
                                         channels, height, width, pixels,
                                         &err);
    }
    cudl__image_free(a, data, size > 0 ? size : 1);
  }
  if (status != CUDL_OK) entry_fail(a, e, status, err.text);
}

/* The skipped entries into ds (path NUL reason NUL each). */
static cudl_status record_skipped(cudl_context *ctx, const char *fn,
                                  cudl_dataset *ds, const entry_list *files,
                                  int64_t skipped) {
  size_t size = 0, at = 0, i;
  int64_t k = 0;
  if (skipped == 0) return CUDL_OK;
  for (i = 0; i < files->count; ++i)
    if (files->items[i].status != CUDL_OK)
      size += files->items[i].path_size +
              (files->items[i].reason != NULL ? files->items[i].reason_size
                                              : sizeof FOLDER_OUT_OF_MEMORY);
  ds->skipped = (char *)cudl__host_alloc(&ds->allocator, size, 1);
  ds->skipped_offsets = (size_t *)cudl__host_alloc(
      &ds->allocator, (size_t)skipped * sizeof(size_t), 16);
  ds->skipped_size = size;
  ds->skipped_count = skipped;
  if (ds->skipped == NULL || ds->skipped_offsets == NULL)
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate the list of skipped files");
  for (i = 0; i < files->count; ++i) {
    const folder_entry *e = &files->items[i];
    const char *reason = e->reason != NULL ? e->reason : FOLDER_OUT_OF_MEMORY;
    if (e->status == CUDL_OK) continue;
    ds->skipped_offsets[k++] = at;
    memcpy(ds->skipped + at, e->path, e->path_size);
    at += e->path_size;
    memcpy(ds->skipped + at, reason, strlen(reason) + 1);
    at += strlen(reason) + 1;
  }
  return CUDL_OK;
}

/* The first unreadable entry, in path order; NULL when none. */
static const folder_entry *first_failure(const entry_list *files) {
  size_t i;
  for (i = 0; i < files->count; ++i)
    if (files->items[i].status != CUDL_OK) return &files->items[i];
  return NULL;
}

static cudl_status strict_failure(cudl_context *ctx, const char *fn,
                                  const folder_entry *e) {
  return cudl__fail(ctx, e->status, fn, "'%s': %s", e->path,
                    e->reason != NULL ? e->reason : FOLDER_OUT_OF_MEMORY);
}

/* Channels and size from the headers (options 0): 3 when any image is
 * colour; one common size or an error naming two files that differ. */
static cudl_status decide_shape(cudl_context *ctx, const char *fn,
                                const char *dir, const entry_list *files,
                                const cudl_folder_options *o, int *channels,
                                int *height, int *width) {
  const folder_entry *first = NULL;
  size_t i;
  int colour = 0;
  for (i = 0; i < files->count; ++i) {
    const folder_entry *e = &files->items[i];
    if (e->status != CUDL_OK) continue;
    if (e->info.channels == 3) colour = 1;
    if (first == NULL) {
      first = e;
    } else if (o->height == 0 && (e->info.height != first->info.height ||
                                  e->info.width != first->info.width)) {
      return cudl__fail(ctx, CUDL_ERR_FILE_SHAPE, fn,
                        "the images differ in size ('%s' is %d x %d, '%s' "
                        "%d x %d): give a size to resize them to",
                        first->path, first->info.height, first->info.width,
                        e->path, e->info.height, e->info.width);
    }
  }
  if (first == NULL) {
    const folder_entry *bad = first_failure(files);
    return cudl__fail(ctx, CUDL_ERR_FILE_SHAPE, fn,
                      "no readable image in '%s' (%zu files; the first: "
                      "'%s': %s)",
                      dir, files->count, bad->path,
                      bad->reason != NULL ? bad->reason : FOLDER_OUT_OF_MEMORY);
  }
  *channels = o->channels != 0 ? o->channels : colour ? 3 : 1;
  *height = o->height != 0 ? o->height : first->info.height;
  *width = o->width != 0 ? o->width : first->info.width;
  return CUDL_OK;
}

/* Find the files of every class, in label order, each class sorted. */
static cudl_status find_files(cudl_context *ctx, const char *fn,
                              const char *dir, const cudl_folder_options *o,
                              char **dirs, int dir_count, entry_list *files) {
  char path[FOLDER_PATH_MAX];
  int label, k;
  const int labels = o->class_names != NULL ? o->class_count : dir_count;
  for (label = 0; label < labels; ++label)
    for (k = 0; k < dir_count; ++k) {
      const size_t start = files->count;
      int written;
      if (label_of(o, dirs, k) != label) continue;
      written = snprintf(path, sizeof path, "%s/%s", dir, dirs[k]);
      if (written < 0 || (size_t)written >= sizeof path)
        return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                          "the path of class '%s' in '%.200s' is too long",
                          dirs[k], dir);
      if (!walk(&ctx->allocator, path, 0, label, files))
        return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                          "cannot allocate the list of files of '%s'", dir);
      if (files->count - start > 1)
        qsort(files->items + start, files->count - start, sizeof *files->items,
              compare_paths);
    }
  return CUDL_OK;
}

/* Decode every readable entry into its slot, then move the decoded ones
 * together; returns how many were kept. */
static int64_t decode_all(cudl_context *ctx, entry_list *files,
                          cudl_dataset *ds) {
  const cudl_allocator *a = &ctx->allocator;
  const int64_t n = (int64_t)files->count;
  int64_t i, kept = 0;
#pragma omp parallel for schedule(dynamic, 4)
  for (i = 0; i < n; ++i) {
    folder_entry *e = &files->items[i];
    if (e->status == CUDL_OK)
      read_entry(a, e, ds->channels, ds->height, ds->width,
                 ds->pixels + (size_t)i * ds->image_bytes);
  }
  for (i = 0; i < n; ++i) {
    const folder_entry *e = &files->items[i];
    if (e->status != CUDL_OK) continue;
    if (kept != i)
      memmove(ds->pixels + (size_t)kept * ds->image_bytes,
              ds->pixels + (size_t)i * ds->image_bytes, ds->image_bytes);
    ds->labels[kept++] = (uint8_t)e->label;
  }
  return kept;
}

/* Streamed: decode every readable entry into a buffer of its thread, keep
 * its sums (for the statistics and to recognise the file later) and drop
 * the pixels; then move the kept ones together. The files that fail are
 * exactly those decode_all would skip. -1 when a thread's buffer cannot be
 * allocated. */
static int64_t check_all(cudl_context *ctx, entry_list *files,
                         cudl_dataset *ds) {
  const cudl_allocator *a = &ctx->allocator;
  const int64_t n = (int64_t)files->count;
  const size_t stride = (size_t)ds->channels * CUDL_MOMENTS;
  const size_t plane = (size_t)ds->height * (size_t)ds->width;
  int64_t i, kept = 0;
  int no_buffer = 0;
#pragma omp parallel
  {
    uint8_t *buffer = (uint8_t *)cudl__image_alloc(a, ds->image_bytes);
    if (buffer == NULL) {
#pragma omp atomic write
      no_buffer = 1;
    }
#pragma omp for schedule(dynamic, 4)
    for (i = 0; i < n; ++i) {
      folder_entry *e = &files->items[i];
      if (buffer == NULL || e->status != CUDL_OK) continue;
      read_entry(a, e, ds->channels, ds->height, ds->width, buffer);
      if (e->status == CUDL_OK)
        cudl__image_moments(buffer, ds->channels, plane,
                            ds->moments + (size_t)i * stride);
    }
    cudl__image_free(a, buffer, ds->image_bytes);
  }
  if (no_buffer) return -1;
  for (i = 0; i < n; ++i) {
    const folder_entry *e = &files->items[i];
    if (e->status != CUDL_OK) continue;
    if (kept != i)
      memmove(ds->moments + (size_t)kept * stride,
              ds->moments + (size_t)i * stride, stride * sizeof *ds->moments);
    ds->labels[kept] = (uint8_t)e->label;
    ds->image_source[kept] = (uint32_t)kept; /* the sources are the kept */
    ++kept;
  }
  return kept;
}

/* The kept files' paths as the dataset's sources. */
static cudl_status set_sources(cudl_context *ctx, const char *fn,
                               cudl_dataset *ds, const entry_list *files) {
  const char **paths;
  const size_t size = (size_t)ds->count * sizeof *paths;
  size_t i;
  int64_t k = 0;
  cudl_status status;
  paths = (const char **)cudl__image_alloc(&ctx->allocator, size);
  if (paths == NULL) {
    cudl_dataset_destroy(ds);
    return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate the dataset's file names");
  }
  for (i = 0; i < files->count; ++i)
    if (files->items[i].status == CUDL_OK) paths[k++] = files->items[i].path;
  status = cudl__dataset_set_sources(ctx, fn, ds, paths, (int)ds->count);
  cudl__image_free(&ctx->allocator, (void *)paths, size);
  return status;
}

static cudl_status load_folder(cudl_context *ctx, const char *fn,
                               const char *dir, const cudl_folder_options *o,
                               char **dirs, int dir_count, entry_list *files,
                               cudl_dataset **out) {
  cudl_dataset *ds;
  cudl_status status;
  int channels = o->channels, height = o->height, width = o->width, k;
  const int classes = o->class_names != NULL ? o->class_count : dir_count;
  int64_t i, skipped, kept;
  uint64_t decoded, budget;
  int streamed;
  for (k = 0; k < dir_count; ++k)
    if (label_of(o, dirs, k) < 0)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                        "'%s/%s' is not one of the %d classes given", dir,
                        dirs[k], o->class_count);
  status = find_files(ctx, fn, dir, o, dirs, dir_count, files);
  if (status != CUDL_OK) return status;
  if (files->count == 0)
    return cudl__fail(ctx, CUDL_ERR_FILE_SHAPE, fn,
                      "no files in the class directories of '%s'", dir);
  if (files->count > CUDL_DATASET_MAX_IMAGES)
    return cudl__fail(ctx, CUDL_ERR_FILE_SHAPE, fn,
                      "'%s' holds %zu files; a dataset holds at most %d", dir,
                      files->count, CUDL_DATASET_MAX_IMAGES);
  if (channels == 0 || height == 0) {
    const int64_t n = (int64_t)files->count;
#pragma omp parallel for schedule(dynamic, 8)
    for (i = 0; i < n; ++i)
      if (files->items[i].status == CUDL_OK)
        read_entry(&ctx->allocator, &files->items[i], 0, 0, 0, NULL);
    /* With strict, a file whose header reads may still fail to decode
     * and come before the first bad header: decide after decoding. */
    status = decide_shape(ctx, fn, dir, files, o, &channels, &height, &width);
    if (status != CUDL_OK) return status;
  }
  status = cudl__dataset_check_shape(ctx, fn, CUDL_ERR_FILE_SHAPE, dir,
                                     files->count, (uint64_t)channels,
                                     (uint64_t)height, (uint64_t)width);
  if (status != CUDL_OK) return status;
  /* What the cached set would hold: a slot for every file, as decoding
   * goes straight into it. count < 2^31, image < 2^26 bytes: no overflow. */
  decoded = (uint64_t)files->count * (uint64_t)channels * (uint64_t)height *
            (uint64_t)width;
  budget = o->max_cache_bytes != 0 ? o->max_cache_bytes
                                   : cudl_folder_default_cache_bytes();
  streamed = o->stream || decoded > budget ||
             decoded > CUDL_DATASET_MAX_BYTES || decoded > (uint64_t)SIZE_MAX;
  if (!streamed) {
    status = cudl__dataset_alloc(ctx, fn, (int64_t)files->count, channels,
                                 height, width, classes, &ds);
    /* What the allocator cannot give is streamed instead. */
    if (status == CUDL_ERR_OUT_OF_MEMORY) streamed = 1;
    else if (status != CUDL_OK) return status;
  }
  if (streamed) {
    status = cudl__dataset_alloc_streamed(ctx, fn, (int64_t)files->count,
                                          channels, height, width, classes,
                                          &ds);
    if (status != CUDL_OK) return status;
    kept = check_all(ctx, files, ds);
    if (kept < 0) {
      cudl_dataset_destroy(ds);
      return cudl__fail(ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                        "cannot allocate a decoding buffer of %zu bytes",
                        (size_t)channels * (size_t)height * (size_t)width);
    }
  } else {
    kept = decode_all(ctx, files, ds);
  }
  skipped = (int64_t)files->count - kept;
  if (skipped > 0 && (o->strict || kept == 0)) {
    const folder_entry *bad = first_failure(files);
    cudl_dataset_destroy(ds);
    if (o->strict) return strict_failure(ctx, fn, bad);
    return cudl__fail(ctx, CUDL_ERR_FILE_SHAPE, fn,
                      "no readable image in '%s' (%zu files; the first: "
                      "'%s': %s)",
                      dir, files->count, bad->path,
                      bad->reason != NULL ? bad->reason : FOLDER_OUT_OF_MEMORY);
  }
  ds->count = kept;
  status = set_sources(ctx, fn, ds, files);
  if (status != CUDL_OK) return status; /* ds destroyed */
  status = cudl__dataset_set_class_names(
      ctx, fn, ds, o->class_names != NULL ? o->class_names
                                          : (const char *const *)dirs);
  if (status == CUDL_OK) status = record_skipped(ctx, fn, ds, files, skipped);
  if (status != CUDL_OK) {
    cudl_dataset_destroy(ds);
    return status;
  }
  for (i = 0; i < (int64_t)files->count; ++i)
    if (files->items[i].status != CUDL_OK)
      cudl__log(CUDL_LOG_WARN, "skipped '%s': %s", files->items[i].path,
                files->items[i].reason != NULL ? files->items[i].reason
                                               : FOLDER_OUT_OF_MEMORY);
  *out = ds;
  return CUDL_OK;
}

cudl_status cudl_dataset_load_folder(cudl_context *ctx, const char *dir,
                                     const cudl_folder_options *options,
                                     cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_load_folder";
  cudl_folder_options o = cudl_folder_options_default();
  entry_list files;
  char **dirs;
  size_t dirs_size;
  int dir_count;
  cudl_status status;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || dir == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      out == NULL ? "out" : "dir");
  if (options != NULL) o = *options;
  status = check_options(ctx, fn, &o);
  if (status != CUDL_OK) return status;
  status = list_classes(ctx, fn, dir, &dirs, &dirs_size, &dir_count);
  if (status != CUDL_OK) return status;
  if (dir_count == 0 || (o.class_names == NULL && dir_count > FOLDER_MAX_CLASSES)) {
    free_classes(&ctx->allocator, dirs, dirs_size, dir_count);
    return dir_count == 0
               ? cudl__fail(ctx, CUDL_ERR_FILE_SHAPE, fn,
                            "'%s' has no class subdirectories (the layout is "
                            "DIR/<class>/<image>)",
                            dir)
               : cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                            "'%s' has %d class subdirectories; at most %d",
                            dir, dir_count, FOLDER_MAX_CLASSES);
  }
  memset(&files, 0, sizeof files);
  status = load_folder(ctx, fn, dir, &o, dirs, dir_count, &files, out);
  list_free(&ctx->allocator, &files);
  free_classes(&ctx->allocator, dirs, dirs_size, dir_count);
  return status;
}

int64_t cudl_dataset_skipped_count(const cudl_dataset *ds) {
  return ds == NULL ? 0 : ds->skipped_count;
}

cudl_status cudl_dataset_skipped(const cudl_dataset *ds, int64_t i,
                                 const char **path, const char **reason) {
  const char *p;
  if (ds == NULL || i < 0 || i >= ds->skipped_count)
    return CUDL_ERR_INVALID_ARGUMENT;
  p = ds->skipped + ds->skipped_offsets[i];
  if (path != NULL) *path = p;
  if (reason != NULL) *reason = p + strlen(p) + 1;
  return CUDL_OK;
}

/* ---- layout ---- */

cudl_status cudl_folder_layout_detect(cudl_context *ctx, const char *dir,
                                      cudl_folder_layout *layout) {
  static const char fn[] = "cudl_folder_layout_detect";
  char path[FOLDER_PATH_MAX];
  const char *classes_dir = dir;
  char **dirs;
  size_t dirs_size;
  int count, written;
  cudl_status status;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (dir == NULL || layout == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      dir == NULL ? "dir" : "layout");
  memset(layout, 0, sizeof *layout);
  written = snprintf(path, sizeof path, "%s/train", dir);
  if (written < 0 || (size_t)written >= sizeof path - 8)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "the path '%.200s' is too long", dir);
  if (is_directory(path)) {
    layout->splits = 1;
    layout->has_train = 1;
    classes_dir = path;
    snprintf(path, sizeof path, "%s/val", dir);
    layout->has_val = is_directory(path);
    snprintf(path, sizeof path, "%s/test", dir);
    layout->has_test = is_directory(path);
    snprintf(path, sizeof path, "%s/train", dir);
  }
  status = list_classes(ctx, fn, classes_dir, &dirs, &dirs_size, &count);
  if (status != CUDL_OK) return status;
  free_classes(&ctx->allocator, dirs, dirs_size, count);
  if (count == 0)
    return cudl__fail(ctx, CUDL_ERR_FILE_SHAPE, fn,
                      "'%s' has no class subdirectories (the layouts are "
                      "DIR/<class>/<image> and DIR/train/<class>/<image>)",
                      classes_dir);
  layout->classes = count;
  return CUDL_OK;
}
