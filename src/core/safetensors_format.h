/*
 * safetensors_format.h - what the loader and the writer share: the dtype
 * table of the format and UTF-8 validation.
 */
#ifndef CUDL_SAFETENSORS_FORMAT_H
#define CUDL_SAFETENSORS_FORMAT_H

#include <stddef.h>

#include "core/internal.h"

typedef struct cudl_st_dtype {
  const char *name; /* as written in the header */
  size_t size;      /* bytes per element */
  int known;        /* 1 if cudl holds it as `dtype` */
  cudl_dtype dtype;
} cudl_st_dtype;

/* The entry for a header dtype name, or NULL. */
const cudl_st_dtype *cudl__st_dtype_by_name(const char *name);
/* The header name of a cudl dtype ("F32"), or NULL. */
const char *cudl__st_dtype_name(cudl_dtype dtype);
/* Position of a cudl dtype in the reference implementation's dtype enum
 * (BOOL, U8, I8, F8_E5M2, F8_E4M3, I16, U16, F16, BF16, I32, U32, F32, F64,
 * I64, U64), which orders its layout; -1 if unknown. */
int cudl__st_dtype_order(cudl_dtype dtype);
/* 1 if the n bytes at s are well-formed UTF-8 without NUL bytes. */
int cudl__utf8_valid(const unsigned char *s, size_t n);
/* 1 on a little-endian host (the format's byte order). */
int cudl__host_little_endian(void);

#endif /* CUDL_SAFETENSORS_FORMAT_H */
