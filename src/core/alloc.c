/* alloc.c - host allocation through the context's allocator hooks, and
 * overflow-checked size arithmetic. */
#include <stdlib.h>
#include <string.h>

#include "core/internal.h"

static void *default_alloc(size_t size, size_t alignment, void *user_data) {
  void *ptr = NULL;
  (void)user_data;
  if (alignment < sizeof(void *)) alignment = sizeof(void *);
  if (posix_memalign(&ptr, alignment, size) != 0) return NULL;
  return ptr;
}

static void default_free(void *ptr, size_t size, void *user_data) {
  (void)size;
  (void)user_data;
  free(ptr);
}

const cudl_allocator cudl__default_allocator = {default_alloc, default_free,
                                                NULL};

void *cudl__fault_alloc(size_t size, size_t alignment, void *user_data) {
  cudl_fault_injection *f = (cudl_fault_injection *)user_data;
  if (cudl__fault_tick(f)) return NULL;
  return f->inner.alloc(size, alignment, f->inner.user_data);
}

void cudl__fault_free(void *ptr, size_t size, void *user_data) {
  cudl_fault_injection *f = (cudl_fault_injection *)user_data;
  f->inner.free(ptr, size, f->inner.user_data);
}

void *cudl__host_alloc(const cudl_allocator *a, size_t size, size_t alignment) {
  if (size == 0) return NULL;
  return a->alloc(size, alignment, a->user_data);
}

void cudl__host_free(const cudl_allocator *a, void *ptr, size_t size) {
  if (ptr != NULL) a->free(ptr, size, a->user_data);
}

char *cudl__host_strdup(const cudl_allocator *a, const char *s, size_t *size) {
  size_t n = strlen(s) + 1;
  char *copy = (char *)cudl__host_alloc(a, n, 1);
  if (copy == NULL) return NULL;
  memcpy(copy, s, n);
  *size = n;
  return copy;
}

int cudl__mul_size(size_t a, size_t b, size_t *out) {
  if (a != 0 && b > SIZE_MAX / a) return 0;
  *out = a * b;
  return 1;
}

int cudl__add_size(size_t a, size_t b, size_t *out) {
  if (b > SIZE_MAX - a) return 0;
  *out = a + b;
  return 1;
}
