/*
 * safetensors.c - validating and loading safetensors files.
 *
 * The whole header is checked before any tensor is allocated, in this
 * order, each failure with its own status: file length, header length,
 * UTF-8 and JSON, per-entry schema, dtype, shape, offsets vs. size, duplicate
 * names, metadata, then the entries sorted by offset must tile the data
 * section exactly: no overlap, no hole, nothing missing (truncated) and
 * nothing left over (trailing data). Only then is memory for tensors taken.
 */
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/internal.h"
#include "core/safetensors_format.h"

/* JSON_REJECT_DUPLICATES with json_error_code() came in Jansson 2.11. */
#if JANSSON_VERSION_HEX < 0x020B00
#  error "cudl needs Jansson 2.11 or newer (Debian: libjansson-dev)"
#endif

/* Failures name the public call, not the helper that found them. */
#define ST_FAIL(ctx, status, ...) \
  cudl__fail((ctx), (status), "cudl_safetensors_load", __VA_ARGS__)

/* In the reference implementation's enum order (its layout sorts by it). */
static const cudl_st_dtype st_dtypes[] = {
    {"BOOL", 1, 0, CUDL_DTYPE_F32},    {"U8", 1, 0, CUDL_DTYPE_F32},
    {"I8", 1, 0, CUDL_DTYPE_F32},      {"F8_E5M2", 1, 0, CUDL_DTYPE_F32},
    {"F8_E4M3", 1, 0, CUDL_DTYPE_F32}, {"I16", 2, 0, CUDL_DTYPE_F32},
    {"U16", 2, 0, CUDL_DTYPE_F32},     {"F16", 2, 1, CUDL_DTYPE_F16},
    {"BF16", 2, 1, CUDL_DTYPE_BF16},   {"I32", 4, 1, CUDL_DTYPE_I32},
    {"U32", 4, 0, CUDL_DTYPE_F32},     {"F32", 4, 1, CUDL_DTYPE_F32},
    {"F64", 8, 0, CUDL_DTYPE_F32},     {"I64", 8, 0, CUDL_DTYPE_F32},
    {"U64", 8, 0, CUDL_DTYPE_F32},
};

const cudl_st_dtype *cudl__st_dtype_by_name(const char *name) {
  size_t i;
  for (i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; ++i)
    if (strcmp(st_dtypes[i].name, name) == 0) return &st_dtypes[i];
  return NULL;
}

int cudl__st_dtype_order(cudl_dtype dtype) {
  size_t i;
  for (i = 0; i < sizeof st_dtypes / sizeof st_dtypes[0]; ++i)
    if (st_dtypes[i].known && st_dtypes[i].dtype == dtype) return (int)i;
  return -1;
}

const char *cudl__st_dtype_name(cudl_dtype dtype) {
  int order = cudl__st_dtype_order(dtype);
  return order < 0 ? NULL : st_dtypes[order].name;
}

int cudl__utf8_valid(const unsigned char *s, size_t n) {
  size_t i = 0;
  while (i < n) {
    unsigned c = s[i];
    size_t len, k;
    unsigned cp;
    if (c == 0) return 0;
    if (c < 0x80) {
      ++i;
      continue;
    }
    if ((c & 0xE0) == 0xC0) {
      len = 2;
      cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3;
      cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4;
      cp = c & 0x07;
    } else
      return 0;
    if (n - i < len) return 0;
    for (k = 1; k < len; ++k) {
      if ((s[i + k] & 0xC0) != 0x80) return 0;
      cp = (cp << 6) | (s[i + k] & 0x3F);
    }
    /* Overlong forms, surrogates and values past U+10FFFF are invalid. */
    if ((len == 2 && cp < 0x80) || (len == 3 && cp < 0x800) ||
        (len == 4 && cp < 0x10000) || cp > 0x10FFFF ||
        (cp >= 0xD800 && cp <= 0xDFFF))
      return 0;
    i += len;
  }
  return 1;
}

int cudl__host_little_endian(void) {
  const uint16_t probe = 1;
  unsigned char first;
  memcpy(&first, &probe, 1);
  return first == 1;
}

/* ------------------------------------------------------------------ */
/* Where the bytes come from: a file descriptor or a memory image.      */
/* ------------------------------------------------------------------ */

typedef struct st_source {
  uint64_t size;
  int fd; /* -1 for memory */
  const unsigned char *memory;
} st_source;

/* Read n bytes at offset; offset + n <= size was checked by the caller. */
static cudl_status source_read(cudl_context *ctx, const st_source *src,
                               uint64_t offset, void *dst, size_t n) {
  unsigned char *out = (unsigned char *)dst;
  if (src->fd < 0) {
    memcpy(dst, src->memory + offset, n);
    return CUDL_OK;
  }
  while (n > 0) {
    ssize_t got = pread(src->fd, out, n, (off_t)offset);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0)
      return ST_FAIL(ctx, CUDL_ERR_IO, "read failed at byte %llu: %s",
                     (unsigned long long)offset, strerror(errno));
    if (got == 0) /* the file shrank under us */
      return ST_FAIL(ctx, CUDL_ERR_FILE_TRUNCATED,
                     "file ended at byte %llu while reading",
                     (unsigned long long)offset);
    out += got;
    n -= (size_t)got;
    offset += (uint64_t)got;
  }
  return CUDL_OK;
}

/* ------------------------------------------------------------------ */
/* The set                                                              */
/* ------------------------------------------------------------------ */

typedef struct st_entry {
  const char *name;
  const cudl_st_dtype *dtype;
  int ndim;
  int64_t *shape;
  uint64_t begin, end;
  cudl_tensor *tensor;
} st_entry;

struct cudl_safetensors {
  cudl_allocator allocator;
  size_t arena_size; /* this struct and everything it points to */
  size_t n_entries;
  st_entry *entries; /* in data-offset order */
  size_t n_metadata;
  const char **metadata_keys;
  const char **metadata_values;
};

/* Bump allocation inside the set's single block. */
typedef struct st_arena {
  unsigned char *next;
} st_arena;

static void *arena_take(st_arena *a, size_t size, size_t align) {
  uintptr_t p = ((uintptr_t)a->next + (align - 1)) & ~(uintptr_t)(align - 1);
  a->next = (unsigned char *)p + size;
  return (void *)p;
}

static const char *arena_string(st_arena *a, const char *s) {
  size_t n = strlen(s) + 1;
  char *copy = (char *)arena_take(a, n, 1);
  memcpy(copy, s, n);
  return copy;
}

/* ------------------------------------------------------------------ */
/* Header validation                                                    */
/* ------------------------------------------------------------------ */

/* An entry as parsed from JSON, before the set exists. */
typedef struct st_parsed {
  const char *name; /* owned by the JSON tree */
  json_t *shape;    /* the validated shape array */
  const cudl_st_dtype *dtype;
  int ndim;
  uint64_t begin, end;
} st_parsed;

/* Jansson keeps integers exactly (json_int_t, 64 bits): no rounding. */
static int json_uint(const json_t *item, uint64_t *out) {
  if (!json_is_integer(item) || json_integer_value(item) < 0) return 0;
  *out = (uint64_t)json_integer_value(item);
  return 1;
}

static int compare_offsets(const void *a, const void *b) {
  const st_parsed *x = (const st_parsed *)a, *y = (const st_parsed *)b;
  if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
  if (x->end != y->end) return x->end < y->end ? -1 : 1;
  return 0;
}

static cudl_status parse_entry(cudl_context *ctx, const char *name,
                               json_t *entry, st_parsed *out) {
  const char *key;
  json_t *field, *dtype = NULL, *shape = NULL, *offsets = NULL;
  uint64_t extent = 1, nbytes;
  size_t d;
  int empty = 0;
  if (name[0] == '\0')
    return ST_FAIL(ctx, CUDL_ERR_FILE_SCHEMA, "a tensor has an empty name");
  if (!json_is_object(entry))
    return ST_FAIL(ctx, CUDL_ERR_FILE_SCHEMA, "entry '%s' is not a JSON object",
                   name);
  json_object_foreach(entry, key, field) {
    json_t **slot = NULL;
    if (strcmp(key, "dtype") == 0)
      slot = &dtype;
    else if (strcmp(key, "shape") == 0)
      slot = &shape;
    else if (strcmp(key, "data_offsets") == 0)
      slot = &offsets;
    if (slot == NULL)
      return ST_FAIL(ctx, CUDL_ERR_FILE_SCHEMA,
                     "entry '%s' has an unknown key '%s'", name, key);
    *slot = field;
  }
  if (dtype == NULL || shape == NULL || offsets == NULL)
    return ST_FAIL(
        ctx, CUDL_ERR_FILE_SCHEMA, "entry '%s' lacks '%s'", name,
        dtype == NULL ? "dtype" : (shape == NULL ? "shape" : "data_offsets"));
  if (!json_is_string(dtype))
    return ST_FAIL(ctx, CUDL_ERR_FILE_SCHEMA,
                   "entry '%s': dtype is not a string", name);
  if (!json_is_array(shape))
    return ST_FAIL(ctx, CUDL_ERR_FILE_SCHEMA,
                   "entry '%s': shape is not an array", name);
  if (!json_is_array(offsets) || json_array_size(offsets) != 2)
    return ST_FAIL(ctx, CUDL_ERR_FILE_SCHEMA,
                   "entry '%s': data_offsets is not an array of two numbers",
                   name);

  out->dtype = cudl__st_dtype_by_name(json_string_value(dtype));
  if (out->dtype == NULL)
    return ST_FAIL(ctx, CUDL_ERR_FILE_DTYPE, "entry '%s': unknown dtype '%s'",
                   name, json_string_value(dtype));

  /* As for tensors in memory (cudl__shape_check): the product of the
   * non-zero dimensions must fit, whatever their order. */
  for (d = 0; d < json_array_size(shape); ++d) {
    uint64_t dim;
    if (!json_uint(json_array_get(shape, d), &dim))
      return ST_FAIL(ctx, CUDL_ERR_FILE_SHAPE,
                     "entry '%s': dimension %zu is not a non-negative integer",
                     name, d);
    if (dim == 0) {
      empty = 1;
      continue;
    }
    if (extent > UINT64_MAX / dim)
      return ST_FAIL(ctx, CUDL_ERR_FILE_SHAPE,
                     "entry '%s': the element count overflows", name);
    extent *= dim;
  }
  if (extent > (uint64_t)INT64_MAX || extent > UINT64_MAX / out->dtype->size)
    return ST_FAIL(ctx, CUDL_ERR_FILE_SHAPE,
                   "entry '%s': the byte size overflows", name);
  nbytes = empty ? 0 : extent * out->dtype->size;

  if (!json_uint(json_array_get(offsets, 0), &out->begin) ||
      !json_uint(json_array_get(offsets, 1), &out->end))
    return ST_FAIL(ctx, CUDL_ERR_FILE_OFFSETS,
                   "entry '%s': data_offsets are not non-negative integers",
                   name);
  if (out->begin > out->end)
    return ST_FAIL(ctx, CUDL_ERR_FILE_OFFSETS,
                   "entry '%s': data_offsets [%llu, %llu] are reversed", name,
                   (unsigned long long)out->begin,
                   (unsigned long long)out->end);
  if (out->end - out->begin != nbytes)
    return ST_FAIL(ctx, CUDL_ERR_FILE_OFFSETS,
                   "entry '%s': data_offsets span %llu bytes but %s x %llu "
                   "elements need %llu",
                   name, (unsigned long long)(out->end - out->begin),
                   out->dtype->name,
                   (unsigned long long)(nbytes / out->dtype->size),
                   (unsigned long long)nbytes);
  out->name = name;
  out->shape = shape;
  out->ndim = (int)json_array_size(shape);
  return CUDL_OK;
}

static cudl_status check_metadata(cudl_context *ctx, json_t *metadata) {
  const char *key;
  json_t *value;
  if (!json_is_object(metadata))
    return ST_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                   "__metadata__ is not an object");
  json_object_foreach(metadata, key, value) {
    if (!json_is_string(value))
      return ST_FAIL(ctx, CUDL_ERR_FILE_METADATA,
                     "__metadata__ value of '%s' is not a string", key);
  }
  return CUDL_OK;
}

/* Validate everything about the header. Keys are unique (the parser
 * rejected duplicates). On success parsed[] (n_parsed slots, from the
 * caller) holds the tensor entries sorted by offset and *metadata the
 * __metadata__ object or NULL. */
static cudl_status validate_header(cudl_context *ctx, json_t *root,
                                   uint64_t data_size, st_parsed *parsed,
                                   size_t n_parsed, json_t **metadata) {
  const char *key;
  json_t *item;
  size_t n = 0, i;
  uint64_t expected = 0;
  cudl_status status;
  *metadata = NULL;
  json_object_foreach(root, key, item) {
    if (strcmp(key, "__metadata__") == 0) {
      status = check_metadata(ctx, item);
      if (status != CUDL_OK) return status;
      *metadata = item;
      continue;
    }
    if (n == n_parsed) return ST_FAIL(ctx, CUDL_ERR_INTERNAL, "entry count");
    status = parse_entry(ctx, key, item, &parsed[n]);
    if (status != CUDL_OK) return status;
    ++n;
  }
  if (n > 1) qsort(parsed, n, sizeof *parsed, compare_offsets);
  for (i = 0; i < n; ++i) {
    if (parsed[i].begin < expected)
      return ST_FAIL(ctx, CUDL_ERR_FILE_OFFSETS,
                     "'%s' at bytes [%llu, %llu) overlaps the tensor before "
                     "it, which ends at %llu",
                     parsed[i].name, (unsigned long long)parsed[i].begin,
                     (unsigned long long)parsed[i].end,
                     (unsigned long long)expected);
    if (parsed[i].begin > expected)
      return ST_FAIL(ctx, CUDL_ERR_FILE_OFFSETS,
                     "hole: no tensor covers bytes [%llu, %llu) before '%s'",
                     (unsigned long long)expected,
                     (unsigned long long)parsed[i].begin, parsed[i].name);
    expected = parsed[i].end;
  }
  if (expected > data_size)
    return ST_FAIL(ctx, CUDL_ERR_FILE_TRUNCATED,
                   "the header describes %llu bytes of tensor data but the "
                   "file holds %llu",
                   (unsigned long long)expected, (unsigned long long)data_size);
  if (expected < data_size)
    return ST_FAIL(ctx, CUDL_ERR_FILE_TRAILING_DATA,
                   "%llu bytes follow the last tensor",
                   (unsigned long long)(data_size - expected));
  return CUDL_OK;
}

/* ------------------------------------------------------------------ */
/* Building the set and reading tensors                                 */
/* ------------------------------------------------------------------ */

static cudl_status build_set(cudl_context *ctx, const st_parsed *parsed,
                             size_t n, json_t *metadata,
                             cudl_safetensors **out) {
  size_t n_meta = metadata == NULL ? 0 : json_object_size(metadata);
  size_t size = sizeof(cudl_safetensors) + 64, i;
  const char *key;
  json_t *value;
  cudl_safetensors *set;
  st_arena arena;
  /* First pass: the size, with room for every alignment pad. All terms are
   * bounded by the header length (<= 100 MB), so nothing overflows. */
  size += n * (sizeof(st_entry) + 16) + 2 * n_meta * sizeof(char *) + 16;
  for (i = 0; i < n; ++i)
    size += strlen(parsed[i].name) + 1 +
            (size_t)parsed[i].ndim * sizeof(int64_t) + 8;
  if (metadata != NULL)
    json_object_foreach(metadata, key, value) size +=
        strlen(key) + strlen(json_string_value(value)) + 2;

  set = (cudl_safetensors *)cudl__host_alloc(&ctx->allocator, size, 16);
  if (set == NULL)
    return ST_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                   "cannot allocate %zu bytes for the file's index", size);
  arena.next = (unsigned char *)set;
  arena_take(&arena, sizeof *set, 16);
  memset(set, 0, sizeof *set);
  set->allocator = ctx->allocator;
  set->arena_size = size;
  set->n_entries = n;
  set->entries = (st_entry *)arena_take(&arena, n * sizeof(st_entry), 16);
  for (i = 0; i < n; ++i) {
    st_entry *e = &set->entries[i];
    int d;
    e->name = arena_string(&arena, parsed[i].name);
    e->dtype = parsed[i].dtype;
    e->ndim = parsed[i].ndim;
    e->begin = parsed[i].begin;
    e->end = parsed[i].end;
    e->tensor = NULL;
    e->shape = (int64_t *)arena_take(
        &arena, (size_t)parsed[i].ndim * sizeof(int64_t), 8);
    for (d = 0; d < parsed[i].ndim; ++d)
      e->shape[d] = (int64_t)json_integer_value(
          json_array_get(parsed[i].shape, (size_t)d));
  }
  set->n_metadata = n_meta;
  set->metadata_keys =
      (const char **)arena_take(&arena, n_meta * sizeof(char *), 8);
  set->metadata_values =
      (const char **)arena_take(&arena, n_meta * sizeof(char *), 8);
  i = 0;
  if (metadata != NULL) json_object_foreach(metadata, key, value) {
      set->metadata_keys[i] = arena_string(&arena, key);
      set->metadata_values[i] = arena_string(&arena, json_string_value(value));
      ++i;
    }
  *out = set;
  return CUDL_OK;
}

#define ST_STAGING_BYTES ((size_t)16 << 20)

static cudl_status read_tensors(cudl_context *ctx, cudl_safetensors *set,
                                const st_source *src, uint64_t data_start,
                                unsigned flags) {
  const int skip = (flags & CUDL_SAFETENSORS_SKIP_UNSUPPORTED) != 0;
  size_t i, staging_size = 0;
  unsigned char *staging = NULL;
  cudl_status status = CUDL_OK;
  /* Staging for device uploads: the largest tensor, at most 16 MiB, so a
   * large file is not doubled in host memory. */
  for (i = 0; i < set->n_entries; ++i) {
    size_t nbytes = (size_t)(set->entries[i].end - set->entries[i].begin);
    if (nbytes > staging_size) staging_size = nbytes;
  }
  /* Entries cudl cannot hold: an error, or (skip) left without a tensor. */
  if (staging_size > ST_STAGING_BYTES) staging_size = ST_STAGING_BYTES;
  for (i = 0; i < set->n_entries; ++i) {
    const st_entry *e = &set->entries[i];
    if (skip && (!e->dtype->known || e->ndim > CUDL_MAX_DIMS)) continue;
    if (!e->dtype->known)
      return ST_FAIL(ctx, CUDL_ERR_UNSUPPORTED,
                     "tensor '%s' has dtype %s, which cudl cannot hold "
                     "(F32, F16, BF16, I32)",
                     e->name, e->dtype->name);
    if (e->ndim > CUDL_MAX_DIMS)
      return ST_FAIL(ctx, CUDL_ERR_UNSUPPORTED,
                     "tensor '%s' has %d dimensions; cudl holds at most %d",
                     e->name, e->ndim, CUDL_MAX_DIMS);
  }
  for (i = 0; i < set->n_entries && status == CUDL_OK; ++i) {
    st_entry *e = &set->entries[i];
    size_t nbytes = (size_t)(e->end - e->begin), done = 0;
    if (!e->dtype->known || e->ndim > CUDL_MAX_DIMS) continue; /* skipped */
    status =
        cudl_tensor_create(ctx, e->dtype->dtype, e->ndim, e->shape, &e->tensor);
    if (status != CUDL_OK || nbytes == 0) continue;
    if (ctx->device == CUDL_DEVICE_CPU) {
      status =
          source_read(ctx, src, data_start + e->begin, e->tensor->data, nbytes);
      continue;
    }
    if (staging == NULL) {
      staging =
          (unsigned char *)cudl__host_alloc(&ctx->allocator, staging_size, 64);
      if (staging == NULL) {
        status = ST_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                         "cannot allocate the upload buffer");
        break;
      }
    }
    while (done < nbytes && status == CUDL_OK) {
      size_t chunk =
          nbytes - done < staging_size ? nbytes - done : staging_size;
      status =
          source_read(ctx, src, data_start + e->begin + done, staging, chunk);
      if (status == CUDL_OK)
        status = ctx->backend->runtime->copy_from_host(
            ctx, (unsigned char *)e->tensor->data + done, staging, chunk);
      done += chunk;
    }
    /* The staging buffer is reused: wait until the device has its copy. */
    if (status == CUDL_OK) status = ctx->backend->runtime->synchronize(ctx);
  }
  cudl__host_free(&ctx->allocator, staging, staging_size);
  return status;
}

static cudl_status load_from_source(cudl_context *ctx, const st_source *src,
                                    unsigned flags, cudl_safetensors **out) {
  unsigned char length_bytes[8];
  uint64_t header_len = 0;
  char *header = NULL;
  size_t header_alloc = 0, n_entries = 0;
  json_t *root = NULL, *metadata = NULL;
  json_error_t error;
  st_parsed *parsed = NULL;
  size_t parsed_size = 0;
  cudl_safetensors *set = NULL;
  cudl_status status;
  int i;

  if (!cudl__host_little_endian())
    return ST_FAIL(ctx, CUDL_ERR_UNSUPPORTED,
                   "safetensors needs a little-endian host");
  if (src->size < 8)
    return ST_FAIL(ctx, CUDL_ERR_FILE_TRUNCATED,
                   "the file is %llu bytes, too short for the 8-byte header "
                   "length",
                   (unsigned long long)src->size);
  status = source_read(ctx, src, 0, length_bytes, 8);
  if (status != CUDL_OK) return status;
  for (i = 7; i >= 0; --i) header_len = (header_len << 8) | length_bytes[i];
  if (header_len < 2 || header_len > CUDL_SAFETENSORS_MAX_HEADER)
    return ST_FAIL(ctx, CUDL_ERR_FILE_HEADER_SIZE,
                   "header length %llu is outside [2, %u]",
                   (unsigned long long)header_len, CUDL_SAFETENSORS_MAX_HEADER);
  if (header_len > src->size - 8)
    return ST_FAIL(ctx, CUDL_ERR_FILE_TRUNCATED,
                   "the header needs %llu bytes but only %llu follow",
                   (unsigned long long)header_len,
                   (unsigned long long)(src->size - 8));

  header_alloc = (size_t)header_len;
  header = (char *)cudl__host_alloc(&ctx->allocator, header_alloc, 1);
  if (header == NULL)
    return ST_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                   "cannot allocate %zu bytes for the header", header_alloc);
  status = source_read(ctx, src, 8, header, (size_t)header_len);
  if (status != CUDL_OK) goto done;

  /* Jansson is strict (RFC 8259, UTF-8 checked, no NUL in keys), keeps
   * integers exact, reports errors through `error` rather than global
   * state, and with JSON_REJECT_DUPLICATES refuses a repeated key at any
   * level: two tensors, two __metadata__, or a key twice in one object. */
  root = json_loadb(header, (size_t)header_len, JSON_REJECT_DUPLICATES, &error);
  if (root == NULL) {
    enum json_error_code code = json_error_code(&error);
    if (code == json_error_duplicate_key)
      status = ST_FAIL(ctx, CUDL_ERR_FILE_DUPLICATE,
                       "the header repeats a key: %s (byte %d)", error.text,
                       error.position);
    else
      status = ST_FAIL(ctx, CUDL_ERR_FILE_JSON,
                       "the header is not valid %s: %s (byte %d)",
                       code == json_error_invalid_utf8 ? "UTF-8" : "JSON",
                       error.text, error.position);
    goto done;
  }
  if (!json_is_object(root)) {
    status = ST_FAIL(ctx, CUDL_ERR_FILE_JSON,
                     "the header's top level is not a JSON object");
    goto done;
  }
  n_entries = json_object_size(root) -
              (json_object_get(root, "__metadata__") != NULL ? 1 : 0);

  parsed_size = n_entries * sizeof *parsed;
  if (n_entries > 0) {
    parsed = (st_parsed *)cudl__host_alloc(&ctx->allocator, parsed_size, 16);
    if (parsed == NULL) {
      status = ST_FAIL(ctx, CUDL_ERR_OUT_OF_MEMORY,
                       "cannot allocate the entry table");
      goto done;
    }
  }
  status = validate_header(ctx, root, src->size - 8 - header_len, parsed,
                           n_entries, &metadata);
  if (status != CUDL_OK) goto done;
  status = build_set(ctx, parsed, n_entries, metadata, &set);
  if (status != CUDL_OK) goto done;
  if (!(flags & CUDL_SAFETENSORS_HEADER_ONLY)) {
    status = read_tensors(ctx, set, src, 8 + header_len, flags);
    if (status != CUDL_OK) {
      cudl_safetensors_destroy(set);
      set = NULL;
      goto done;
    }
  }
  *out = set;

done:
  cudl__host_free(&ctx->allocator, parsed, parsed_size);
  json_decref(root);
  cudl__host_free(&ctx->allocator, header, header_alloc);
  return status;
}

static cudl_status check_load_args(cudl_context *ctx, unsigned flags,
                                   cudl_safetensors **out) {
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL)
    return ST_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "out is NULL");
  if ((flags & ~(unsigned)(CUDL_SAFETENSORS_HEADER_ONLY |
                           CUDL_SAFETENSORS_SKIP_UNSUPPORTED)) != 0)
    return ST_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "unknown flags 0x%x", flags);
  return CUDL_OK;
}

cudl_status cudl_safetensors_load(cudl_context *ctx, const char *path,
                                  unsigned flags, cudl_safetensors **out) {
  st_source src;
  struct stat info;
  cudl_status status = check_load_args(ctx, flags, out);
  if (status != CUDL_OK) return status;
  if (path == NULL)
    return ST_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "path is NULL");
  src.memory = NULL;
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a
   * regular file is refused below. */
  src.fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (src.fd < 0)
    return ST_FAIL(ctx, CUDL_ERR_IO, "cannot open '%s': %s", path,
                   strerror(errno));
  if (fstat(src.fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    status =
        ST_FAIL(ctx, CUDL_ERR_IO, "'%s' is not a readable regular file", path);
  } else {
    src.size = (uint64_t)info.st_size;
    status = load_from_source(ctx, &src, flags, out);
  }
  close(src.fd);
  return status;
}

cudl_status cudl_safetensors_load_memory(cudl_context *ctx, const void *data,
                                         size_t size, unsigned flags,
                                         cudl_safetensors **out) {
  st_source src;
  cudl_status status = check_load_args(ctx, flags, out);
  if (status != CUDL_OK) return status;
  if (data == NULL && size > 0)
    return ST_FAIL(ctx, CUDL_ERR_INVALID_ARGUMENT, "data is NULL");
  src.fd = -1;
  src.memory = (const unsigned char *)data;
  src.size = size;
  return load_from_source(ctx, &src, flags, out);
}

void cudl_safetensors_destroy(cudl_safetensors *set) {
  size_t i;
  cudl_allocator allocator;
  if (set == NULL) return;
  for (i = 0; i < set->n_entries; ++i)
    cudl_tensor_destroy(set->entries[i].tensor);
  allocator = set->allocator;
  cudl__host_free(&allocator, set, set->arena_size);
}

size_t cudl_safetensors_count(const cudl_safetensors *set) {
  return set == NULL ? 0 : set->n_entries;
}

cudl_status cudl_safetensors_entry_query(const cudl_safetensors *set, size_t i,
                                         cudl_safetensors_entry *entry) {
  const st_entry *e;
  if (set == NULL || entry == NULL || i >= set->n_entries)
    return CUDL_ERR_INVALID_ARGUMENT;
  e = &set->entries[i];
  entry->name = e->name;
  entry->dtype_name = e->dtype->name;
  entry->dtype_known = e->dtype->known;
  entry->dtype = e->dtype->dtype;
  entry->ndim = e->ndim;
  entry->shape = e->shape;
  entry->data_begin = e->begin;
  entry->data_end = e->end;
  return CUDL_OK;
}

cudl_tensor *cudl_safetensors_tensor(const cudl_safetensors *set, size_t i) {
  if (set == NULL || i >= set->n_entries) return NULL;
  return set->entries[i].tensor;
}

int64_t cudl_safetensors_find(const cudl_safetensors *set, const char *name) {
  size_t i;
  if (set == NULL || name == NULL) return -1;
  for (i = 0; i < set->n_entries; ++i)
    if (strcmp(set->entries[i].name, name) == 0) return (int64_t)i;
  return -1;
}

size_t cudl_safetensors_metadata_count(const cudl_safetensors *set) {
  return set == NULL ? 0 : set->n_metadata;
}

const char *cudl_safetensors_metadata_key(const cudl_safetensors *set,
                                          size_t i) {
  return (set == NULL || i >= set->n_metadata) ? NULL : set->metadata_keys[i];
}

const char *cudl_safetensors_metadata_value(const cudl_safetensors *set,
                                            size_t i) {
  return (set == NULL || i >= set->n_metadata) ? NULL : set->metadata_values[i];
}

const char *cudl_safetensors_metadata_find(const cudl_safetensors *set,
                                           const char *key) {
  size_t i;
  if (set == NULL || key == NULL) return NULL;
  for (i = 0; i < set->n_metadata; ++i)
    if (strcmp(set->metadata_keys[i], key) == 0) return set->metadata_values[i];
  return NULL;
}
