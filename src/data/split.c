/*
 * split.c - cudl_dataset_split: a seeded, stratified split of a dataset
 * into the images kept for training and those held out (validation).
 * Which images are held out is a per-class Fisher-Yates shuffle drawn from
 * Philox (stream CUDL_DATA_STREAM_SPLIT, the class in the counter), so the
 * split depends on the seed and the labels alone, never on the thread
 * count or the device.
 */
#include <math.h>
#include <string.h>

#include "core/philox.h"
#include "data/data_internal.h"

/* How many of a class's n images are held out (cudl/data.h). */
static int64_t held_out_of_class(int64_t n, double fraction) {
  int64_t k;
  if (n < 2) return 0;
  k = (int64_t)floor(fraction * (double)n + 0.5);
  if (k < 1) k = 1;
  if (k > n - 1) k = n - 1;
  return k;
}

/* Mark held[i] = 1 for k of the n images of class c, whose indices are
 * members[0..n): the first k of a seeded shuffle of them. */
static void pick_class(uint32_t *members, int64_t n, int64_t k, int c,
                       uint64_t seed, uint8_t *held) {
  int64_t i;
  for (i = n - 1; i >= 1; --i) {
    cudl_philox_block ctr, r;
    uint64_t bits;
    int64_t j;
    uint32_t t;
    ctr.v[0] = (uint32_t)i;
    ctr.v[1] = CUDL_DATA_STREAM_SPLIT;
    ctr.v[2] = (uint32_t)c;
    ctr.v[3] = 0;
    r = cudl_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
    bits = (uint64_t)r.v[1] << 32 | r.v[0];
    j = (int64_t)(bits % (uint64_t)(i + 1));
    t = members[i];
    members[i] = members[j];
    members[j] = t;
  }
  for (i = 0; i < k; ++i) held[members[i]] = 1;
}

/* ds's source files and class names into part; on failure part is
 * destroyed. */
static cudl_status copy_names(const cudl_dataset *ds, cudl_dataset *part) {
  static const char fn[] = "cudl_dataset_split";
  const int n = ds->source_count > ds->classes ? ds->source_count : ds->classes;
  const size_t bytes = (size_t)(n > 0 ? n : 1) * sizeof(const char *);
  cudl_allocator allocator = part->allocator; /* part may be destroyed */
  const char **names = (const char **)cudl__host_alloc(&allocator, bytes, 16);
  cudl_status s = CUDL_OK;
  int i;
  if (names == NULL) {
    cudl_dataset_destroy(part);
    return cudl__fail(ds->ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate the list of the dataset's file and class names");
  }
  if (ds->source_count > 0) {
    for (i = 0; i < ds->source_count; ++i)
      names[i] = cudl_dataset_source(ds, i);
    /* destroys part on failure */
    s = cudl__dataset_set_sources(ds->ctx, fn, part, names, ds->source_count);
    if (s != CUDL_OK) {
      cudl__host_free(&allocator, names, bytes);
      return s;
    }
  }
  if (ds->class_names != NULL) {
    for (i = 0; i < ds->classes; ++i) names[i] = cudl_dataset_class_name(ds, i);
    s = cudl__dataset_set_class_names(ds->ctx, fn, part, names);
  }
  cudl__host_free(&allocator, names, bytes);
  if (s != CUDL_OK) cudl_dataset_destroy(part);
  return s;
}

/* A part of ds: the images whose held[i] is `which`, in ds's order, with
 * ds's classes and source files. */
static cudl_status make_part(const cudl_dataset *ds, const uint8_t *held,
                             uint8_t which, int64_t count, cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_split";
  const size_t stride = (size_t)ds->channels * CUDL_MOMENTS;
  cudl_dataset *part;
  int64_t i, at = 0;
  cudl_status s =
      ds->streamed
          ? cudl__dataset_alloc_streamed(ds->ctx, fn, count, ds->channels,
                                         ds->height, ds->width, ds->classes,
                                         &part)
          : cudl__dataset_alloc(ds->ctx, fn, count, ds->channels, ds->height,
                                ds->width, ds->classes, &part);
  if (s != CUDL_OK) return s;
  for (i = 0; i < ds->count; ++i) {
    if (held[i] != which) continue;
    if (ds->streamed) {
      /* The part keeps ds's sources: its images point into them. */
      part->image_source[at] = ds->image_source[i];
      memcpy(part->moments + (size_t)at * stride,
             ds->moments + (size_t)i * stride, stride * sizeof *ds->moments);
    } else {
      memcpy(part->pixels + (size_t)at * ds->image_bytes,
             ds->pixels + (size_t)i * ds->image_bytes, ds->image_bytes);
    }
    part->labels[at++] = ds->labels[i];
  }
  /* The files and class names through the setters, which copy them. */
  s = copy_names(ds, part);
  if (s != CUDL_OK) return s; /* part destroyed */
  *out = part;
  return CUDL_OK;
}

cudl_status cudl_dataset_split(const cudl_dataset *ds, double fraction,
                               uint64_t seed, cudl_dataset **rest,
                               cudl_dataset **held_out) {
  static const char fn[] = "cudl_dataset_split";
  int64_t per_class[256], start[256], next[256];
  int64_t held_count = 0, i;
  uint32_t *members;
  uint8_t *held;
  size_t members_size, held_size;
  cudl_allocator allocator;
  cudl_status s;
  int c;
  if (rest != NULL) *rest = NULL;
  if (held_out != NULL) *held_out = NULL;
  if (ds == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (rest == NULL || held_out == NULL)
    return cudl__fail(ds->ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      rest == NULL ? "rest" : "held_out");
  if (rest == held_out)
    return cudl__fail(ds->ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "rest and held_out are the same pointer");
  if (!(fraction > 0.0 && fraction < 1.0))
    return cudl__fail(ds->ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "fraction is %g; it must be above 0 and below 1",
                      fraction);
  memset(per_class, 0, sizeof per_class);
  for (i = 0; i < ds->count; ++i) ++per_class[ds->labels[i]];
  for (c = 0; c < ds->classes; ++c)
    held_count += held_out_of_class(per_class[c], fraction);
  if (held_count == 0)
    return cudl__fail(ds->ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "no class has 2 images: nothing can be held out of %lld "
                      "image%s while keeping each class in training",
                      (long long)ds->count, ds->count == 1 ? "" : "s");
  /* count < 2^31 (CUDL_DATASET_MAX_IMAGES): no size overflows. */
  allocator = ds->allocator;
  members_size = (size_t)ds->count * sizeof *members;
  held_size = (size_t)ds->count;
  members = (uint32_t *)cudl__host_alloc(&allocator, members_size, 16);
  held = (uint8_t *)cudl__host_alloc(&allocator, held_size, 16);
  if (members == NULL || held == NULL) {
    cudl__host_free(&allocator, members, members_size);
    cudl__host_free(&allocator, held, held_size);
    return cudl__fail(ds->ctx, CUDL_ERR_OUT_OF_MEMORY, fn,
                      "cannot allocate %lld indices", (long long)ds->count);
  }
  /* Each class's images, in order, one class after another. */
  for (c = 0, start[0] = 0; c < ds->classes; ++c) {
    if (c > 0) start[c] = start[c - 1] + per_class[c - 1];
    next[c] = start[c];
  }
  for (i = 0; i < ds->count; ++i)
    members[next[ds->labels[i]]++] = (uint32_t)i;
  memset(held, 0, held_size);
  for (c = 0; c < ds->classes; ++c)
    pick_class(members + start[c], per_class[c],
               held_out_of_class(per_class[c], fraction), c, seed, held);
  s = make_part(ds, held, 0, ds->count - held_count, rest);
  if (s == CUDL_OK) s = make_part(ds, held, 1, held_count, held_out);
  if (s != CUDL_OK) {
    cudl_dataset_destroy(*rest);
    *rest = NULL;
  }
  cudl__host_free(&allocator, members, members_size);
  cudl__host_free(&allocator, held, held_size);
  return s;
}
