/*
 * safetensors_interop.c - the cudl side of the safetensors interop tests.
 *
 *   safetensors_interop write PATH   save the interop set with cudl_safetensors_save
 *   safetensors_interop check PATH   load PATH (written by
 *                                    scripts/safetensors_spec.py) and verify
 *                                    it holds exactly the interop set
 *
 * The interop set (the same table is in scripts/safetensors_spec.py):
 *
 *   k  name                        dtype  shape
 *   0  conv1.weight                F32    [2, 3, 3, 3]
 *   1  conv1.bias                  F32    [2]
 *   2  scalar                      F32    []
 *   3  empty                       F32    [0, 3]
 *   4  five_d                      F16    [2, 1, 3, 1, 2]
 *   5  half                        F16    [5]
 *   6  empty_half                  F16    [0]
 *   7  brain                       BF16   [3, 4]
 *   8  emb.<U+65E5 U+672C U+1F642>  BF16   [2, 2]
 *   9  quote"back\slash            F32    [3]
 *  10  scalar_bf16                 BF16   []
 *
 * Element i (row-major) of tensor k has the value
 *
 *   v(k, i) = (((7 * i + 13 * k) mod 61) - 30) / 4
 *
 * a multiple of 1/4 in [-7.5, 7.5], exact in F32, F16 and BF16: F32 and F16
 * are IEEE 754 binary32 and binary16, BF16 is the upper half of the binary32
 * value, all little-endian.
 *
 * Metadata: format = "cudl-interop-v1",
 *           formula = "v(k,i) = ((7*i + 13*k) mod 61 - 30) / 4",
 *           unicode = "<u-umlaut>n<i-diaeresis>c<o-stroke>d<e-acute> <check mark> <U+1F642>".
 *
 * Exit status 0 when everything matches, 1 with a message otherwise.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cudl/cudl.h"

typedef struct interop_tensor {
  const char *name;
  cudl_dtype dtype;
  int ndim;
  int64_t shape[5];
} interop_tensor;

static const interop_tensor kTensors[] = {
    {"conv1.weight", CUDL_DTYPE_F32, 4, {2, 3, 3, 3, 0}},
    {"conv1.bias", CUDL_DTYPE_F32, 1, {2, 0, 0, 0, 0}},
    {"scalar", CUDL_DTYPE_F32, 0, {0, 0, 0, 0, 0}},
    {"empty", CUDL_DTYPE_F32, 2, {0, 3, 0, 0, 0}},
    {"five_d", CUDL_DTYPE_F16, 5, {2, 1, 3, 1, 2}},
    {"half", CUDL_DTYPE_F16, 1, {5, 0, 0, 0, 0}},
    {"empty_half", CUDL_DTYPE_F16, 1, {0, 0, 0, 0, 0}},
    {"brain", CUDL_DTYPE_BF16, 2, {3, 4, 0, 0, 0}},
    {"emb.\xe6\x97\xa5\xe6\x9c\xac\xf0\x9f\x99\x82", CUDL_DTYPE_BF16, 2, {2, 2, 0, 0, 0}},
    {"quote\"back\\slash", CUDL_DTYPE_F32, 1, {3, 0, 0, 0, 0}},
    {"scalar_bf16", CUDL_DTYPE_BF16, 0, {0, 0, 0, 0, 0}},
};
#define N_TENSORS (sizeof kTensors / sizeof kTensors[0])

static const cudl_metadata_pair kMetadata[] = {
    {"format", "cudl-interop-v1"},
    {"formula", "v(k,i) = ((7*i + 13*k) mod 61 - 30) / 4"},
    {"unicode", "\xc3\xbcn\xc3\xaf" "c\xc3\xb8" "d\xc3\xa9 \xe2\x9c\x93 \xf0\x9f\x99\x82"},
};
#define N_METADATA (sizeof kMetadata / sizeof kMetadata[0])

static float formula(size_t k, size_t i) {
  return (float)((int)((7 * i + 13 * k) % 61) - 30) / 4.0f;
}

static uint32_t f32_bits(float v) {
  uint32_t b;
  memcpy(&b, &v, sizeof b);
  return b;
}

/* binary16 bits of v, which must be exact in binary16 and normal (or 0). */
static int f16_bits(float v, uint16_t *out) {
  uint32_t b = f32_bits(v), sign = b >> 31, exponent = (b >> 23) & 0xFF,
           mantissa = b & 0x7FFFFF;
  int e16;
  if ((b & 0x7FFFFFFF) == 0) {
    *out = (uint16_t)(sign << 15);
    return 1;
  }
  e16 = (int)exponent - 127 + 15;
  if (e16 < 1 || e16 > 30 || (mantissa & 0x1FFF) != 0) return 0;
  *out = (uint16_t)((sign << 15) | ((uint32_t)e16 << 10) | (mantissa >> 13));
  return 1;
}

static size_t numel_of(const interop_tensor *t) {
  size_t n = 1;
  int d;
  for (d = 0; d < t->ndim; ++d) n *= (size_t)t->shape[d];
  return n;
}

static size_t elem_size(cudl_dtype dtype) { return dtype == CUDL_DTYPE_F32 ? 4 : 2; }

/* The little-endian bytes of tensor k; malloc'ed (NULL only on failure). */
static unsigned char *expected_bytes(size_t k, size_t *nbytes) {
  const interop_tensor *t = &kTensors[k];
  size_t n = numel_of(t), size = elem_size(t->dtype), i;
  unsigned char *out = (unsigned char *)malloc(n * size + 1);
  if (out == NULL) return NULL;
  for (i = 0; i < n; ++i) {
    float v = formula(k, i);
    uint32_t bits = f32_bits(v);
    uint16_t half;
    switch (t->dtype) {
      case CUDL_DTYPE_F32:
        out[4 * i + 0] = (unsigned char)(bits & 0xFF);
        out[4 * i + 1] = (unsigned char)((bits >> 8) & 0xFF);
        out[4 * i + 2] = (unsigned char)((bits >> 16) & 0xFF);
        out[4 * i + 3] = (unsigned char)(bits >> 24);
        break;
      case CUDL_DTYPE_F16:
        if (!f16_bits(v, &half)) {
          fprintf(stderr, "value %g is not exact in F16\n", (double)v);
          free(out);
          return NULL;
        }
        out[2 * i + 0] = (unsigned char)(half & 0xFF);
        out[2 * i + 1] = (unsigned char)(half >> 8);
        break;
      case CUDL_DTYPE_BF16:
        if ((bits & 0xFFFF) != 0) {
          fprintf(stderr, "value %g is not exact in BF16\n", (double)v);
          free(out);
          return NULL;
        }
        out[2 * i + 0] = (unsigned char)((bits >> 16) & 0xFF);
        out[2 * i + 1] = (unsigned char)(bits >> 24);
        break;
      case CUDL_DTYPE_I32: /* not in the interop set */
        free(out);
        return NULL;
    }
  }
  *nbytes = n * size;
  return out;
}

static int write_set(cudl_context *ctx, const char *path) {
  cudl_tensor *tensors[N_TENSORS] = {NULL};
  cudl_named_tensor named[N_TENSORS];
  cudl_status status = CUDL_OK;
  size_t k;
  int rc = 1;
  for (k = 0; k < N_TENSORS && status == CUDL_OK; ++k) {
    size_t nbytes = 0;
    unsigned char *bytes = expected_bytes(k, &nbytes);
    if (bytes == NULL) goto done;
    status = cudl_tensor_create(ctx, kTensors[k].dtype, kTensors[k].ndim,
                                kTensors[k].shape, &tensors[k]);
    if (status == CUDL_OK)
      status = cudl_tensor_copy_from_host(tensors[k], bytes, nbytes);
    free(bytes);
    named[k].name = kTensors[k].name;
    named[k].tensor = tensors[k];
  }
  if (status == CUDL_OK)
    status = cudl_safetensors_save(ctx, path, named, N_TENSORS, kMetadata, N_METADATA);
  if (status != CUDL_OK) {
    fprintf(stderr, "%s: %s: %s\n", path, cudl_status_name(status),
            cudl_context_last_error(ctx));
    goto done;
  }
  printf("%s: wrote %zu tensors and %zu metadata pairs\n", path, (size_t)N_TENSORS,
         (size_t)N_METADATA);
  rc = 0;
done:
  for (k = 0; k < N_TENSORS; ++k) cudl_tensor_destroy(tensors[k]);
  return rc;
}

static int check_set(cudl_context *ctx, const char *path) {
  cudl_safetensors *set = NULL;
  size_t k, errors = 0;
  cudl_status status = cudl_safetensors_load(ctx, path, 0, &set);
  if (status != CUDL_OK) {
    fprintf(stderr, "%s: %s: %s\n", path, cudl_status_name(status),
            cudl_context_last_error(ctx));
    return 1;
  }
  if (cudl_safetensors_count(set) != N_TENSORS) {
    fprintf(stderr, "%s: %zu tensors, expected %zu\n", path,
            cudl_safetensors_count(set), (size_t)N_TENSORS);
    ++errors;
  }
  for (k = 0; k < N_TENSORS; ++k) {
    const interop_tensor *want = &kTensors[k];
    int64_t index = cudl_safetensors_find(set, want->name);
    cudl_safetensors_entry entry;
    cudl_tensor *t;
    unsigned char *bytes, *got;
    size_t nbytes = 0;
    int d;
    if (index < 0) {
      fprintf(stderr, "%s: no tensor '%s'\n", path, want->name);
      ++errors;
      continue;
    }
    if (cudl_safetensors_entry_query(set, (size_t)index, &entry) != CUDL_OK ||
        strcmp(entry.name, want->name) != 0 || !entry.dtype_known ||
        entry.dtype != want->dtype || entry.ndim != want->ndim) {
      fprintf(stderr, "%s: '%s' has dtype %s and %d dimensions, expected %s and %d\n",
              path, want->name, entry.dtype_name, entry.ndim,
              cudl_dtype_name(want->dtype), want->ndim);
      ++errors;
      continue;
    }
    for (d = 0; d < want->ndim; ++d)
      if (entry.shape[d] != want->shape[d]) {
        fprintf(stderr, "%s: '%s' dimension %d is %lld, expected %lld\n", path,
                want->name, d, (long long)entry.shape[d], (long long)want->shape[d]);
        ++errors;
      }
    t = cudl_safetensors_tensor(set, (size_t)index);
    bytes = expected_bytes(k, &nbytes);
    if (bytes == NULL || t == NULL || cudl_tensor_nbytes(t) != nbytes) {
      fprintf(stderr, "%s: '%s' holds %zu bytes, expected %zu\n", path, want->name,
              cudl_tensor_nbytes(t), nbytes);
      ++errors;
      free(bytes);
      continue;
    }
    got = (unsigned char *)malloc(nbytes + 1);
    if (got == NULL ||
        cudl_tensor_copy_to_host(t, got, nbytes) != CUDL_OK ||
        (nbytes > 0 && memcmp(got, bytes, nbytes) != 0)) {
      fprintf(stderr, "%s: the bytes of '%s' differ from the formula\n", path,
              want->name);
      ++errors;
    }
    free(got);
    free(bytes);
  }
  if (cudl_safetensors_metadata_count(set) != N_METADATA) {
    fprintf(stderr, "%s: %zu metadata pairs, expected %zu\n", path,
            cudl_safetensors_metadata_count(set), (size_t)N_METADATA);
    ++errors;
  }
  for (k = 0; k < N_METADATA; ++k) {
    const char *value = cudl_safetensors_metadata_find(set, kMetadata[k].key);
    if (value == NULL || strcmp(value, kMetadata[k].value) != 0) {
      fprintf(stderr, "%s: metadata '%s' is '%s', expected '%s'\n", path,
              kMetadata[k].key, value == NULL ? "(missing)" : value,
              kMetadata[k].value);
      ++errors;
    }
  }
  cudl_safetensors_destroy(set);
  if (errors > 0) {
    fprintf(stderr, "%s: %zu mismatches\n", path, errors);
    return 1;
  }
  printf("%s: %zu tensors and %zu metadata pairs as expected\n", path,
         (size_t)N_TENSORS, (size_t)N_METADATA);
  return 0;
}

int main(int argc, char **argv) {
  cudl_context *ctx = NULL;
  int rc;
  if (argc != 3 || (strcmp(argv[1], "write") != 0 && strcmp(argv[1], "check") != 0)) {
    fprintf(stderr, "usage: %s write|check PATH\n", argv[0]);
    return 2;
  }
  if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK) {
    fprintf(stderr, "cannot create a CPU context\n");
    return 1;
  }
  rc = strcmp(argv[1], "write") == 0 ? write_set(ctx, argv[2]) : check_set(ctx, argv[2]);
  cudl_context_destroy(ctx);
  return rc;
}
