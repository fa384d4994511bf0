/*
 * grad_sync.h - the gradient buckets of cudl_model_set_grad_sync
 * (grad_sync.c): how the gradient arena is cut, for the tests.
 */
#ifndef CUDL_DIST_GRAD_SYNC_H
#define CUDL_DIST_GRAD_SYNC_H

#include <stdint.h>

#include "nn/graph.h"

/* A contiguous range of the gradient arena, in floats, reduced as one
 * message once backward has finished node ready_node (the lowest-numbered
 * node owning a parameter in it: backward runs from the last node down). */
typedef struct cudl__grad_bucket {
  int64_t first, count;
  int ready_node;
} cudl__grad_bucket;

/* Cut compiled model m's gradient arena into buckets, in the order they
 * are reduced (the order backward finishes them): from the arena's end,
 * whole parameters (with the alignment padding after each) until adding
 * the next would pass bucket_bytes, a bucket holding at least one
 * parameter however large; bucket_bytes 0 gives one bucket of the whole
 * arena. Then every bucket over max_floats values is cut into pieces of at
 * most max_floats (MPI counts are int). The buckets cover the arena
 * exactly, without overlap. *out (allocated with m's allocator, *count
 * entries; NULL when the arena is empty) is released with
 * cudl__grad_buckets_free(&m->allocator, *out, *count). */
cudl_status cudl__grad_buckets_plan(cudl_model *m, int64_t bucket_bytes,
                                    int64_t max_floats,
                                    cudl__grad_bucket **out, int *count);

void cudl__grad_buckets_free(cudl_allocator *allocator,
                             cudl__grad_bucket *buckets, int count);

#endif /* CUDL_DIST_GRAD_SYNC_H */
