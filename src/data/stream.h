/*
 * stream.h - the bytes of a file or a memory image, raw or gzip, read as
 * one exact sequence, for the dataset readers. Private.
 *
 * A stream is opened on a regular file or a memory image; the first two
 * bytes decide whether it is gzip (0x1f 0x8b). Reads ask for exactly n
 * bytes: fewer gives CUDL_ERR_FILE_TRUNCATED, corrupt gzip data
 * CUDL_ERR_FILE_COMPRESSION. cudl__stream_expect_end then checks that
 * nothing follows (CUDL_ERR_FILE_TRAILING_DATA), which for gzip also
 * verifies the CRC-32 and length of the trailer. Memory for the input
 * buffer and zlib's state comes from the context's allocator; nothing is
 * ever sized by what the data claims.
 */
#ifndef CUDL_DATA_STREAM_H
#define CUDL_DATA_STREAM_H

#include <stddef.h>
#include <stdint.h>
/* next_in as a const pointer (zlib 1.2.5.2 and newer). */
#define ZLIB_CONST
#include <zlib.h>

#include "core/internal.h"

/* The most a deflate stream can expand (zlib's FAQ: 1032:1). */
#define CUDL_GZIP_MAX_RATIO 1032u

typedef struct cudl_data_stream {
  cudl_context *ctx;
  const char *function; /* the public call, for messages */
  const char *name;     /* the path or "<memory>", for messages */
  /* The source: a file descriptor with an input buffer, or memory. */
  int fd; /* -1 for memory */
  const unsigned char *memory;
  uint64_t size;     /* bytes in the source when it was opened */
  uint64_t consumed; /* source bytes used (by the caller or zlib) */
  unsigned char *buffer;
  size_t buffer_size, buffer_pos, buffer_len;
  int eof; /* the file gave 0 bytes */
  /* gzip */
  int gzip;
  int z_ready;     /* inflateInit2 succeeded */
  int member_done; /* Z_STREAM_END of the current member */
  z_stream z;
  cudl_allocator allocator; /* zlib's allocations */
  uint64_t produced;        /* bytes delivered to the caller */
} cudl_data_stream;

/* Open path (a regular file; CUDL_ERR_IO otherwise). On failure nothing
 * stays open. */
cudl_status cudl__stream_open_file(cudl_context *ctx, const char *function,
                                   const char *path, cudl_data_stream *s);
/* Open a memory image (not copied; must outlive the stream); name is for
 * messages. */
cudl_status cudl__stream_open_memory(cudl_context *ctx, const char *function,
                                     const char *name, const void *data,
                                     size_t size, cudl_data_stream *s);
/* Release everything; safe on a stream whose open failed. */
void cudl__stream_close(cudl_data_stream *s);

/* The most bytes the stream could deliver: the source's size, or for gzip
 * CUDL_GZIP_MAX_RATIO times it (saturating). */
uint64_t cudl__stream_capacity(const cudl_data_stream *s);

/* Read exactly n bytes into dst; `what` names them in messages. */
cudl_status cudl__stream_read(cudl_data_stream *s, void *dst, size_t n,
                              const char *what);
/* Succeed only when the stream holds nothing more. */
cudl_status cudl__stream_expect_end(cudl_data_stream *s, const char *what);

#endif /* CUDL_DATA_STREAM_H */
