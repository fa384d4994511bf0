/*
 * batch.c - the contents of a batch as a pure function of (seed, epoch,
 * position): the epoch's order (a seeded Fisher-Yates shuffle) and each
 * image's bytes, crop and flip, with the Philox layout documented at
 * cudl_loader_create; the images_from_bytes operator then crops, flips and
 * normalises on the batch's device. No state, no allocation, no cudl
 * calls: the loader's thread runs this (on pixels it decoded, for a
 * streamed set).
 */
#include <string.h>

#include "core/philox.h"
#include "data/data_internal.h"

static cudl_philox_block data_block(uint64_t seed, uint32_t index,
                                    uint32_t stream, int64_t epoch) {
  cudl_philox_block ctr;
  ctr.v[0] = index;
  ctr.v[1] = stream;
  ctr.v[2] = (uint32_t)(uint64_t)epoch;
  ctr.v[3] = (uint32_t)((uint64_t)epoch >> 32);
  return cudl_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

void cudl__data_order(uint32_t *perm, int64_t count, int shuffle, uint64_t seed,
                      int64_t epoch) {
  int64_t i;
  for (i = 0; i < count; ++i) perm[i] = (uint32_t)i;
  if (!shuffle) return;
  for (i = count - 1; i >= 1; --i) {
    cudl_philox_block r =
        data_block(seed, (uint32_t)i, CUDL_DATA_STREAM_SHUFFLE, epoch);
    uint64_t bits = (uint64_t)r.v[1] << 32 | r.v[0];
    int64_t j = (int64_t)(bits % (uint64_t)(i + 1));
    uint32_t t = perm[i];
    perm[i] = perm[j];
    perm[j] = t;
  }
}

void cudl__data_gather(const cudl_batch_recipe *recipe, const uint32_t *order,
                       int64_t rows, int64_t epoch, int decoded,
                       uint8_t *pixels, int32_t *crops, int32_t *labels) {
  const cudl_dataset *ds = recipe->ds;
  const int p = recipe->augment ? recipe->crop_padding : 0;
  const uint64_t span = 2 * (uint64_t)p + 1;
  int64_t r;
  for (r = 0; r < rows; ++r) {
    const uint32_t k = order[r];
    int32_t *crop = crops + 3 * r;
    if (!decoded)
      memcpy(pixels + (size_t)r * ds->image_bytes,
             ds->pixels + (size_t)k * ds->image_bytes, ds->image_bytes);
    crop[0] = crop[1] = crop[2] = 0;
    if (recipe->augment) {
      cudl_philox_block b =
          data_block(recipe->seed, k, CUDL_DATA_STREAM_AUGMENT, epoch);
      crop[0] = (int32_t)(((uint64_t)b.v[0] * span) >> 32);
      crop[1] = (int32_t)(((uint64_t)b.v[1] * span) >> 32);
      crop[2] = recipe->horizontal_flip && (b.v[2] >> 31) != 0;
    }
    labels[r] = ds->labels[k];
  }
}
