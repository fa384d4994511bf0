/*
 * batch.c - the contents of a batch as a pure function of (seed, epoch,
 * position): the epoch's order (a seeded Fisher-Yates shuffle) and each
 * image's crop, flip and normalisation, with the Philox layout documented
 * at cudl_loader_create. No state, no allocation, no cudl calls: the
 * loader's thread runs this (on pixels it decoded, for a streamed set).
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

/* One image: crop by (dy, dx) from the image zero-padded by p, flip,
 * normalise through the per-channel table. */
static void fill_image(const cudl_batch_recipe *recipe, const uint8_t *src,
                       int p, int dy, int dx, int flip, float *out) {
  const cudl_dataset *ds = recipe->ds;
  const int h = ds->height, w = ds->width;
  int c, y, x;
  for (c = 0; c < ds->channels; ++c) {
    const float *lut = recipe->lut[c];
    const uint8_t *plane = src + (size_t)c * (size_t)h * (size_t)w;
    for (y = 0; y < h; ++y) {
      float *row = out + ((size_t)c * (size_t)h + (size_t)y) * (size_t)w;
      const int sy = y + dy - p;
      if (sy < 0 || sy >= h) {
        for (x = 0; x < w; ++x) row[x] = lut[0];
        continue;
      }
      for (x = 0; x < w; ++x) {
        const int sx = (flip ? w - 1 - x : x) + dx - p;
        row[x] = (sx < 0 || sx >= w)
                     ? lut[0]
                     : lut[plane[(size_t)sy * (size_t)w + (size_t)sx]];
      }
    }
  }
}

void cudl__data_fill(const cudl_batch_recipe *recipe, const uint32_t *order,
                     int64_t rows, int64_t epoch, const uint8_t *staged,
                     float *x, int32_t *labels) {
  const cudl_dataset *ds = recipe->ds;
  const int p = recipe->augment ? recipe->crop_padding : 0;
  const uint64_t span = 2 * (uint64_t)p + 1;
  int64_t r;
  for (r = 0; r < rows; ++r) {
    const uint32_t k = order[r];
    const uint8_t *src = staged != NULL
                             ? staged + (size_t)r * ds->image_bytes
                             : ds->pixels + (size_t)k * ds->image_bytes;
    float *out = x + (size_t)r * ds->image_bytes;
    int dy = 0, dx = 0, flip = 0;
    if (recipe->augment) {
      cudl_philox_block b =
          data_block(recipe->seed, k, CUDL_DATA_STREAM_AUGMENT, epoch);
      dy = (int)(((uint64_t)b.v[0] * span) >> 32);
      dx = (int)(((uint64_t)b.v[1] * span) >> 32);
      flip = recipe->horizontal_flip && (b.v[2] >> 31) != 0;
    }
    if (!recipe->augment || (p == 0 && !flip)) {
      /* The common case without a crop or flip: a straight table lookup. */
      size_t i, plane = (size_t)ds->height * (size_t)ds->width;
      int c;
      for (c = 0; c < ds->channels; ++c)
        for (i = 0; i < plane; ++i)
          out[(size_t)c * plane + i] =
              recipe->lut[c][src[(size_t)c * plane + i]];
    } else {
      fill_image(recipe, src, p, dy, dx, flip, out);
    }
    labels[r] = ds->labels[k];
  }
}
