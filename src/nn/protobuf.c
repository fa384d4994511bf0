/* protobuf.c - the protobuf wire-format encoder (protobuf.h). */
#include "nn/protobuf.h"

#include <string.h>

void cudl__pb_init(cudl__pb *pb, const cudl_allocator *allocator) {
  memset(pb, 0, sizeof *pb);
  pb->allocator = allocator;
}

void cudl__pb_release(cudl__pb *pb) {
  if (pb->data != NULL)
    cudl__host_free(pb->allocator, pb->data, pb->capacity);
  pb->data = NULL;
  pb->length = pb->capacity = 0;
}

/* Room for `more` bytes after the current end; 0 (and pb->failed set)
 * when there is none. */
static int reserve(cudl__pb *pb, size_t more) {
  size_t needed, capacity;
  unsigned char *grown;
  if (pb->failed != CUDL__PB_OK) return 0;
  if (!cudl__add_size(pb->length, more, &needed) ||
      needed > CUDL__PB_MAX_BYTES) {
    pb->failed = CUDL__PB_TOO_LARGE;
    return 0;
  }
  if (needed <= pb->capacity) return 1;
  /* Doubling keeps appends amortised constant; the cap is below SIZE_MAX
   * / 2, so it cannot overflow. */
  capacity = pb->capacity < 256 ? 256 : pb->capacity;
  while (capacity < needed) capacity *= 2;
  if (capacity > CUDL__PB_MAX_BYTES) capacity = CUDL__PB_MAX_BYTES;
  grown = (unsigned char *)cudl__host_alloc(pb->allocator, capacity, 16);
  if (grown == NULL) {
    pb->failed = CUDL__PB_OUT_OF_MEMORY;
    return 0;
  }
  if (pb->length > 0) memcpy(grown, pb->data, pb->length);
  if (pb->data != NULL)
    cudl__host_free(pb->allocator, pb->data, pb->capacity);
  pb->data = grown;
  pb->capacity = capacity;
  return 1;
}

size_t cudl__pb_varint_size(uint64_t v) {
  size_t n = 1;
  while (v >= 0x80) {
    v >>= 7;
    ++n;
  }
  return n;
}

/* The varint of v at out (which has room); the bytes written. */
static size_t put_varint(unsigned char *out, uint64_t v) {
  size_t n = 0;
  while (v >= 0x80) {
    out[n++] = (unsigned char)(v | 0x80);
    v >>= 7;
  }
  out[n++] = (unsigned char)v;
  return n;
}

void cudl__pb_varint(cudl__pb *pb, uint64_t v) {
  if (!reserve(pb, cudl__pb_varint_size(v))) return;
  pb->length += put_varint(pb->data + pb->length, v);
}

void cudl__pb_key(cudl__pb *pb, uint32_t field, int wire_type) {
  cudl__pb_varint(pb, ((uint64_t)field << 3) | (uint64_t)wire_type);
}

void cudl__pb_int(cudl__pb *pb, uint32_t field, int64_t v) {
  cudl__pb_key(pb, field, CUDL__PB_VARINT);
  cudl__pb_varint(pb, (uint64_t)v);
}

/* A float's bits, least significant byte first, at out[0 .. 4). */
static void put_float_le(unsigned char *out, float v) {
  uint32_t bits;
  memcpy(&bits, &v, sizeof bits);
  out[0] = (unsigned char)bits;
  out[1] = (unsigned char)(bits >> 8);
  out[2] = (unsigned char)(bits >> 16);
  out[3] = (unsigned char)(bits >> 24);
}

void cudl__pb_float(cudl__pb *pb, uint32_t field, float v) {
  cudl__pb_key(pb, field, CUDL__PB_FIXED32);
  if (!reserve(pb, 4)) return;
  put_float_le(pb->data + pb->length, v);
  pb->length += 4;
}

void cudl__pb_bytes(cudl__pb *pb, uint32_t field, const void *data,
                    size_t size) {
  cudl__pb_key(pb, field, CUDL__PB_LEN);
  cudl__pb_varint(pb, (uint64_t)size);
  if (size == 0 || !reserve(pb, size)) return;
  memcpy(pb->data + pb->length, data, size);
  pb->length += size;
}

void cudl__pb_raw(cudl__pb *pb, const void *data, size_t size) {
  if (size == 0 || !reserve(pb, size)) return;
  memcpy(pb->data + pb->length, data, size);
  pb->length += size;
}

void cudl__pb_string(cudl__pb *pb, uint32_t field, const char *s) {
  cudl__pb_bytes(pb, field, s, strlen(s));
}

void cudl__pb_floats_le(cudl__pb *pb, uint32_t field, const float *values,
                        size_t count) {
  size_t size, i;
  unsigned char *out;
  if (!cudl__mul_size(count, 4, &size)) {
    if (pb->failed == CUDL__PB_OK) pb->failed = CUDL__PB_TOO_LARGE;
    return;
  }
  cudl__pb_key(pb, field, CUDL__PB_LEN);
  cudl__pb_varint(pb, (uint64_t)size);
  if (size == 0 || !reserve(pb, size)) return;
  out = pb->data + pb->length;
  for (i = 0; i < count; ++i) put_float_le(out + 4 * i, values[i]);
  pb->length += size;
}

void cudl__pb_begin(cudl__pb *pb, uint32_t field) {
  if (pb->failed != CUDL__PB_OK) return;
  if (pb->depth == CUDL__PB_MAX_DEPTH) {
    pb->failed = CUDL__PB_TOO_DEEP;
    return;
  }
  cudl__pb_key(pb, field, CUDL__PB_LEN);
  pb->open[pb->depth++] = pb->length;
}

void cudl__pb_end(cudl__pb *pb) {
  size_t start, size, prefix;
  if (pb->failed != CUDL__PB_OK) return;
  if (pb->depth == 0) {
    pb->failed = CUDL__PB_TOO_DEEP;
    return;
  }
  start = pb->open[--pb->depth];
  size = pb->length - start;
  prefix = cudl__pb_varint_size((uint64_t)size);
  /* The length goes before the contents, which move up to make room. */
  if (!reserve(pb, prefix)) return;
  memmove(pb->data + start + prefix, pb->data + start, size);
  put_varint(pb->data + start, (uint64_t)size);
  pb->length += prefix;
}
