/*
 * protobuf.h - a small encoder of the protobuf wire format
 * (protobuf.dev/programming-guides/encoding), enough to write ONNX files
 * (onnx_write.c): varints, fixed32 floats, length-delimited bytes and
 * nested messages. Only encoding: cudl never reads protobuf.
 *
 * The message grows in one buffer allocated through the model's allocator.
 * A nested message is opened with cudl__pb_begin and closed with
 * cudl__pb_end, which inserts its length (the minimal varint) before its
 * contents, so no size has to be computed in advance. Failures are sticky:
 * after running out of memory, exceeding CUDL__PB_MAX_BYTES or nesting
 * deeper than CUDL__PB_MAX_DEPTH every later call does nothing, and the
 * caller checks pb->failed once at the end.
 */
#ifndef CUDL_NN_PROTOBUF_H
#define CUDL_NN_PROTOBUF_H

#include <stddef.h>
#include <stdint.h>

#include "core/internal.h"

CUDL_EXTERN_C_BEGIN

/* Protobuf's parsers refuse messages of 2 GiB or more. */
#define CUDL__PB_MAX_BYTES ((size_t)INT32_MAX)
#define CUDL__PB_MAX_DEPTH 16

/* The wire types this encoder writes. */
#define CUDL__PB_VARINT 0
#define CUDL__PB_LEN 2
#define CUDL__PB_FIXED32 5

typedef enum cudl__pb_failure {
  CUDL__PB_OK = 0,
  CUDL__PB_OUT_OF_MEMORY,
  CUDL__PB_TOO_LARGE, /* over CUDL__PB_MAX_BYTES */
  CUDL__PB_TOO_DEEP,  /* nesting over CUDL__PB_MAX_DEPTH, or an end
                         without a begin */
} cudl__pb_failure;

typedef struct cudl__pb {
  const cudl_allocator *allocator;
  unsigned char *data;
  size_t length, capacity;
  cudl__pb_failure failed;
  /* Where the contents of each open nested message start. */
  size_t open[CUDL__PB_MAX_DEPTH];
  int depth;
} cudl__pb;

/* An empty message that allocates through `allocator` (kept by pointer). */
void cudl__pb_init(cudl__pb *pb, const cudl_allocator *allocator);
void cudl__pb_release(cudl__pb *pb);

/* The bytes a varint of v takes: 1 to 10. */
size_t cudl__pb_varint_size(uint64_t v);

/* A bare varint (no key). */
void cudl__pb_varint(cudl__pb *pb, uint64_t v);
/* A field's key: (field << 3) | wire_type. */
void cudl__pb_key(cudl__pb *pb, uint32_t field, int wire_type);

/* Fields. A negative int64 is written as its two's complement (10 bytes),
 * as protobuf's int64 type has it. */
void cudl__pb_int(cudl__pb *pb, uint32_t field, int64_t v);
void cudl__pb_float(cudl__pb *pb, uint32_t field, float v);
void cudl__pb_bytes(cudl__pb *pb, uint32_t field, const void *data,
                    size_t size);
/* A NUL-terminated string as a length-delimited field. */
void cudl__pb_string(cudl__pb *pb, uint32_t field, const char *s);
/* count floats as one length-delimited field of their IEEE 754 bits,
 * little-endian whatever the host's order (ONNX's raw_data). */
void cudl__pb_floats_le(cudl__pb *pb, uint32_t field, const float *values,
                        size_t count);

/* Bytes already encoded as fields (a message's contents built apart),
 * appended as they are. */
void cudl__pb_raw(cudl__pb *pb, const void *data, size_t size);

/* Open a nested message as field `field`; fields written until the
 * matching cudl__pb_end are its contents. */
void cudl__pb_begin(cudl__pb *pb, uint32_t field);
void cudl__pb_end(cudl__pb *pb);

CUDL_EXTERN_C_END

#endif /* CUDL_NN_PROTOBUF_H */
