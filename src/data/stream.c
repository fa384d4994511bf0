/*
 * stream.c - exact reads from a raw or gzip file or memory image.
 *
 * Gzip is inflated with zlib straight into the caller's buffer, so the
 * decompressed data is never held twice and never sized by the trailer's
 * claim: a gzip bomb costs at most the bytes the reader asked for (which
 * the header, checked first, bounds) plus one byte to see that it goes on.
 * Concatenated gzip members read as one stream, as gzip(1) does.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "data/stream.h"

#define STREAM_BUFFER_BYTES ((size_t)64 << 10)
/* One read or inflate call moves at most this much. */
#define STREAM_CHUNK_BYTES ((size_t)1 << 30)

#define S_FAIL(s, status, ...) \
  cudl__fail((s)->ctx, (status), (s)->function, __VA_ARGS__)

static const unsigned char empty_memory[1] = {0};

/* ---- zlib's memory through the context's allocator: a 16-byte prefix
 * keeps the size that the allocator's free needs. ---- */

static voidpf zlib_alloc(voidpf opaque, uInt items, uInt size) {
  const cudl_allocator *a = (const cudl_allocator *)opaque;
  size_t n;
  unsigned char *p;
  if (!cudl__mul_size(items, size, &n) || !cudl__add_size(n, 16, &n))
    return Z_NULL;
  p = (unsigned char *)cudl__host_alloc(a, n, 16);
  if (p == NULL) return Z_NULL;
  memcpy(p, &n, sizeof n);
  return p + 16;
}

static void zlib_free(voidpf opaque, voidpf address) {
  unsigned char *p;
  size_t n;
  if (address == Z_NULL) return;
  p = (unsigned char *)address - 16;
  memcpy(&n, p, sizeof n);
  cudl__host_free((const cudl_allocator *)opaque, p, n);
}

/* ---- the source: file (buffered) or memory ---- */

static const unsigned char *source_data(const cudl_data_stream *s) {
  return s->fd < 0 ? s->memory + s->consumed : s->buffer + s->buffer_pos;
}

static void source_advance(cudl_data_stream *s, size_t n) {
  s->consumed += n;
  if (s->fd >= 0) s->buffer_pos += n;
}

/* Make at least `want` (<= the buffer's size) bytes available in a row
 * when the source still has them; *avail gets how many there are. */
static cudl_status source_fill(cudl_data_stream *s, size_t want,
                               size_t *avail) {
  if (s->fd < 0) {
    uint64_t left = s->size - s->consumed;
    *avail = left > STREAM_CHUNK_BYTES ? STREAM_CHUNK_BYTES : (size_t)left;
    return CUDL_OK;
  }
  if (s->buffer_len - s->buffer_pos < want && !s->eof) {
    memmove(s->buffer, s->buffer + s->buffer_pos,
            s->buffer_len - s->buffer_pos);
    s->buffer_len -= s->buffer_pos;
    s->buffer_pos = 0;
    while (s->buffer_len < want && !s->eof) {
      ssize_t got = read(s->fd, s->buffer + s->buffer_len,
                         s->buffer_size - s->buffer_len);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0)
        return S_FAIL(
            s, CUDL_ERR_IO, "reading '%s' failed at byte %llu: %s", s->name,
            (unsigned long long)(s->consumed + s->buffer_len), strerror(errno));
      if (got == 0)
        s->eof = 1;
      else
        s->buffer_len += (size_t)got;
    }
  }
  *avail = s->buffer_len - s->buffer_pos;
  return CUDL_OK;
}

/* Bytes the source holds after what was used, for messages. */
static unsigned long long source_left(const cudl_data_stream *s) {
  return s->size > s->consumed ? (unsigned long long)(s->size - s->consumed)
                               : 0ull;
}

/* ---- opening ---- */

static cudl_status stream_start(cudl_data_stream *s) {
  size_t avail = 0;
  const unsigned char *head;
  int ret;
  cudl_status status = source_fill(s, 2, &avail);
  if (status != CUDL_OK) return status;
  head = source_data(s);
  if (avail < 2 || head[0] != 0x1f || head[1] != 0x8b) return CUDL_OK;
  s->gzip = 1;
  memset(&s->z, 0, sizeof s->z);
  s->z.zalloc = zlib_alloc;
  s->z.zfree = zlib_free;
  s->z.opaque = &s->allocator;
  /* 16 + MAX_WBITS: gzip wrapper only, 32 KiB window. */
  ret = inflateInit2(&s->z, 16 + MAX_WBITS);
  if (ret == Z_MEM_ERROR)
    return S_FAIL(s, CUDL_ERR_OUT_OF_MEMORY,
                  "cannot allocate zlib's state for '%s'", s->name);
  if (ret != Z_OK)
    return S_FAIL(s, CUDL_ERR_INTERNAL, "inflateInit2 failed (%d) for '%s'",
                  ret, s->name);
  s->z_ready = 1;
  return CUDL_OK;
}

static void stream_init(cudl_data_stream *s, cudl_context *ctx,
                        const char *function, const char *name) {
  memset(s, 0, sizeof *s);
  s->ctx = ctx;
  s->function = function;
  s->name = name;
  s->fd = -1;
  s->memory = empty_memory;
  s->allocator = ctx->allocator;
}

cudl_status cudl__stream_open_file(cudl_context *ctx, const char *function,
                                   const char *path, cudl_data_stream *s) {
  struct stat info;
  cudl_status status;
  stream_init(s, ctx, function, path);
  /* O_NONBLOCK: opening a FIFO must not wait for a writer; anything but a
   * regular file is refused below. */
  s->fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
  if (s->fd < 0)
    return S_FAIL(s, CUDL_ERR_IO, "cannot open '%s': %s", path,
                  strerror(errno));
  if (fstat(s->fd, &info) != 0 || !S_ISREG(info.st_mode)) {
    status =
        S_FAIL(s, CUDL_ERR_IO, "'%s' is not a readable regular file", path);
    cudl__stream_close(s);
    return status;
  }
  s->size = (uint64_t)info.st_size;
  s->buffer_size = STREAM_BUFFER_BYTES;
  if (s->size < s->buffer_size)
    s->buffer_size = s->size < 16 ? 16 : (size_t)s->size;
  s->buffer =
      (unsigned char *)cudl__host_alloc(&s->allocator, s->buffer_size, 16);
  if (s->buffer == NULL) {
    status =
        S_FAIL(s, CUDL_ERR_OUT_OF_MEMORY,
               "cannot allocate %zu bytes to read '%s'", s->buffer_size, path);
    cudl__stream_close(s);
    return status;
  }
  status = stream_start(s);
  if (status != CUDL_OK) cudl__stream_close(s);
  return status;
}

cudl_status cudl__stream_open_memory(cudl_context *ctx, const char *function,
                                     const char *name, const void *data,
                                     size_t size, cudl_data_stream *s) {
  cudl_status status;
  stream_init(s, ctx, function, name);
  if (data != NULL) s->memory = (const unsigned char *)data;
  s->size = data != NULL ? size : 0;
  status = stream_start(s);
  if (status != CUDL_OK) cudl__stream_close(s);
  return status;
}

void cudl__stream_close(cudl_data_stream *s) {
  if (s->z_ready) inflateEnd(&s->z);
  s->z_ready = 0;
  cudl__host_free(&s->allocator, s->buffer, s->buffer_size);
  s->buffer = NULL;
  if (s->fd >= 0) close(s->fd);
  s->fd = -1;
}

uint64_t cudl__stream_capacity(const cudl_data_stream *s) {
  if (!s->gzip) return s->size;
  return s->size > UINT64_MAX / CUDL_GZIP_MAX_RATIO
             ? UINT64_MAX
             : s->size * CUDL_GZIP_MAX_RATIO;
}

/* ---- raw ---- */

static cudl_status raw_read(cudl_data_stream *s, unsigned char *dst, size_t n,
                            const char *what) {
  size_t done = 0;
  while (done < n) {
    size_t avail = 0, take;
    cudl_status status;
    /* Large reads bypass the buffer. */
    if (s->fd >= 0 && s->buffer_pos == s->buffer_len && !s->eof &&
        n - done >= s->buffer_size) {
      size_t want =
          n - done > STREAM_CHUNK_BYTES ? STREAM_CHUNK_BYTES : n - done;
      ssize_t got = read(s->fd, dst + done, want);
      if (got < 0 && errno == EINTR) continue;
      if (got < 0)
        return S_FAIL(s, CUDL_ERR_IO, "reading '%s' failed at byte %llu: %s",
                      s->name, (unsigned long long)s->consumed,
                      strerror(errno));
      if (got == 0) {
        s->eof = 1;
        continue;
      }
      done += (size_t)got;
      s->consumed += (uint64_t)got;
      continue;
    }
    status = source_fill(s, 1, &avail);
    if (status != CUDL_OK) return status;
    if (avail == 0)
      return S_FAIL(s, CUDL_ERR_FILE_TRUNCATED,
                    "'%s' ends at byte %llu, %zu bytes into %s, which needs "
                    "%zu",
                    s->name, (unsigned long long)s->consumed, done, what, n);
    take = avail < n - done ? avail : n - done;
    memcpy(dst + done, source_data(s), take);
    source_advance(s, take);
    done += take;
  }
  s->produced += n;
  return CUDL_OK;
}

/* ---- gzip ---- */

/* One inflate call into dst (n >= 1 bytes): *got gets the bytes written;
 * *starved is set when zlib needs input and the source has none. */
static cudl_status gz_step(cudl_data_stream *s, unsigned char *dst, size_t n,
                           size_t *got, int *starved) {
  size_t avail = 0, used;
  uInt in_before, out_before;
  int ret;
  cudl_status status = source_fill(s, 1, &avail);
  *got = 0;
  *starved = 0;
  if (status != CUDL_OK) return status;
  in_before = avail > UINT_MAX ? UINT_MAX : (uInt)avail;
  out_before = n > STREAM_CHUNK_BYTES ? (uInt)STREAM_CHUNK_BYTES : (uInt)n;
  s->z.next_in = source_data(s);
  s->z.avail_in = in_before;
  s->z.next_out = dst;
  s->z.avail_out = out_before;
  ret = inflate(&s->z, Z_NO_FLUSH);
  used = in_before - s->z.avail_in;
  source_advance(s, used);
  *got = out_before - s->z.avail_out;
  s->z.next_in = NULL;
  s->z.avail_in = 0;
  switch (ret) {
    case Z_OK:
      return CUDL_OK;
    case Z_STREAM_END:
      s->member_done = 1;
      return CUDL_OK;
    case Z_BUF_ERROR: /* no progress possible */
      if (avail == 0) {
        *starved = 1;
        return CUDL_OK;
      }
      return S_FAIL(s, CUDL_ERR_INTERNAL,
                    "zlib made no progress on '%s' with input left", s->name);
    case Z_DATA_ERROR:
      return S_FAIL(s, CUDL_ERR_FILE_COMPRESSION,
                    "'%s' holds corrupt gzip data (before compressed byte "
                    "%llu): %s",
                    s->name, (unsigned long long)s->consumed,
                    s->z.msg != NULL ? s->z.msg : "invalid data");
    case Z_NEED_DICT:
      return S_FAIL(s, CUDL_ERR_FILE_COMPRESSION,
                    "'%s' asks for a preset deflate dictionary, which gzip "
                    "does not use",
                    s->name);
    case Z_MEM_ERROR:
      return S_FAIL(s, CUDL_ERR_OUT_OF_MEMORY,
                    "zlib cannot allocate its window for '%s'", s->name);
    default:
      return S_FAIL(s, CUDL_ERR_INTERNAL, "inflate returned %d for '%s'", ret,
                    s->name);
  }
}

/* After a member's end: *more = 1 when another gzip member follows (zlib
 * is reset for it), 0 at the end of the source, -1 when bytes that are
 * not a gzip member follow. */
static cudl_status gz_next_member(cudl_data_stream *s, int *more) {
  size_t avail = 0;
  const unsigned char *head;
  cudl_status status = source_fill(s, 2, &avail);
  if (status != CUDL_OK) return status;
  head = source_data(s);
  if (avail == 0) {
    *more = 0;
  } else if (avail >= 2 && head[0] == 0x1f && head[1] == 0x8b) {
    if (inflateReset(&s->z) != Z_OK)
      return S_FAIL(s, CUDL_ERR_INTERNAL, "inflateReset failed");
    s->member_done = 0;
    *more = 1;
  } else {
    *more = -1;
  }
  return CUDL_OK;
}

static cudl_status gz_read(cudl_data_stream *s, unsigned char *dst, size_t n,
                           const char *what) {
  size_t done = 0;
  while (done < n) {
    size_t got;
    int starved = 0, more = 1;
    cudl_status status;
    if (s->member_done) {
      status = gz_next_member(s, &more);
      if (status != CUDL_OK) return status;
    }
    if (more == 1) {
      status = gz_step(s, dst + done, n - done, &got, &starved);
      if (status != CUDL_OK) return status;
      done += got;
    }
    if (more != 1 || starved)
      return S_FAIL(s, CUDL_ERR_FILE_TRUNCATED,
                    "the gzip data of '%s' %s after %llu decompressed bytes, "
                    "%zu bytes into %s, which needs %zu",
                    s->name,
                    more == 0    ? "ends"
                    : more == -1 ? "ends (followed by bytes that are not gzip)"
                                 : "is cut short",
                    (unsigned long long)(s->produced + done), done, what, n);
  }
  s->produced += n;
  return CUDL_OK;
}

static cudl_status gz_expect_end(cudl_data_stream *s, const char *what) {
  for (;;) {
    cudl_status status;
    if (!s->member_done) {
      unsigned char byte;
      size_t got;
      int starved;
      status = gz_step(s, &byte, 1, &got, &starved);
      if (status != CUDL_OK) return status;
      if (got > 0)
        return S_FAIL(s, CUDL_ERR_FILE_TRAILING_DATA,
                      "'%s' decompresses to more than the %llu bytes of %s",
                      s->name, (unsigned long long)s->produced, what);
      if (starved)
        return S_FAIL(s, CUDL_ERR_FILE_TRUNCATED,
                      "the gzip data of '%s' is cut short after its %llu "
                      "decompressed bytes (the stream or its trailer is "
                      "incomplete)",
                      s->name, (unsigned long long)s->produced);
    } else {
      int more;
      status = gz_next_member(s, &more);
      if (status != CUDL_OK) return status;
      if (more == 0) return CUDL_OK;
      if (more < 0)
        return S_FAIL(s, CUDL_ERR_FILE_TRAILING_DATA,
                      "%llu bytes that are not gzip data follow the gzip "
                      "stream of '%s'",
                      source_left(s), s->name);
    }
  }
}

/* ---- public to the readers ---- */

cudl_status cudl__stream_read(cudl_data_stream *s, void *dst, size_t n,
                              const char *what) {
  if (n == 0) return CUDL_OK;
  return s->gzip ? gz_read(s, (unsigned char *)dst, n, what)
                 : raw_read(s, (unsigned char *)dst, n, what);
}

cudl_status cudl__stream_expect_end(cudl_data_stream *s, const char *what) {
  size_t avail = 0;
  cudl_status status;
  if (s->gzip) return gz_expect_end(s, what);
  status = source_fill(s, 1, &avail);
  if (status != CUDL_OK) return status;
  if (avail > 0)
    return S_FAIL(s, CUDL_ERR_FILE_TRAILING_DATA,
                  "%llu bytes follow the %llu bytes of %s in '%s'",
                  source_left(s), (unsigned long long)s->consumed, what,
                  s->name);
  return CUDL_OK;
}
