/*
 * bench_images.c - how fast cudl_dataset_load_folder decodes images:
 * images per second over folders that `make_images bench DIR`
 * (tests/fuzz/make_images.c) writes, each loaded at a given size:
 *
 *   bench_images DIR [REPEATS]
 *
 * DIR/gray28 (28x28 gray PNGs) at 1 x 28 x 28, DIR/rgb32 (32x32 RGB JPEGs)
 * at 3 x 32 x 32, DIR/photos (640x480 RGB JPEGs) resized to 3 x 64 x 64.
 * The best of REPEATS (default 3) loads is reported, after one load that
 * warms the page cache; OMP_NUM_THREADS sets the decoding threads.
 *
 * Then the loader over each set, in memory and streamed from disk
 * (cudl_folder_options.stream): images per second that cudl_loader_next
 * delivers over whole epochs of batches of 128, shuffled and augmented
 * (crop padding 2, flips), with nothing else to do between batches: the
 * most a training loop could take. The best of REPEATS epochs after one
 * that warms up. Not a test: nothing here asserts a time.
 */
#define _POSIX_C_SOURCE 200809L
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <cudl/cudl.h>

static double now(void) {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

#define LOADER_BATCH 128

/* Images per second of the loader over ds: the best of `repeats` epochs
 * after the first; 0 on an error (printed). */
static double loader_rate(cudl_context *ctx, const cudl_dataset *ds,
                          int repeats) {
  cudl_loader_config c = cudl_loader_config_default();
  cudl_loader *l = NULL;
  cudl_tensor *x = NULL, *y = NULL;
  const int64_t xs[4] = {LOADER_BATCH, cudl_dataset_channels(ds),
                         cudl_dataset_height(ds), cudl_dataset_width(ds)};
  const int64_t ys[1] = {LOADER_BATCH};
  double best = 1e30;
  int e, ok = 1;
  c.batch = LOADER_BATCH;
  c.augment = 1;
  c.crop_padding = 2;
  c.horizontal_flip = 1;
  if (cudl_loader_create(ctx, ds, &c, &l) != CUDL_OK ||
      cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, xs, &x) != CUDL_OK ||
      cudl_tensor_create(ctx, CUDL_DTYPE_I32, 1, ys, &y) != CUDL_OK)
    ok = 0;
  for (e = 0; ok && e <= repeats; ++e) {
    const double start = now();
    int64_t b;
    for (b = 0; ok && b < cudl_loader_batches(l); ++b)
      ok = cudl_loader_next(l, x, y, NULL, NULL) == CUDL_OK;
    if (e > 0 && now() - start < best) best = now() - start;
  }
  if (!ok) fprintf(stderr, "bench_images: %s\n", cudl_context_last_error(ctx));
  cudl_tensor_destroy(x);
  cudl_tensor_destroy(y);
  cudl_loader_destroy(l);
  return ok ? (double)cudl_dataset_count(ds) / best : 0.0;
}

int main(int argc, char **argv) {
  static const struct {
    const char *name;
    int channels, height, width;
  } sets[] = {{"gray28", 1, 28, 28}, {"rgb32", 3, 32, 32}, {"photos", 3, 64, 64}};
  cudl_context *ctx = NULL;
  int repeats = argc >= 3 ? atoi(argv[2]) : 3, s, r;
  if (argc < 2 || repeats < 1) {
    fprintf(stderr, "usage: bench_images DIR [REPEATS]\n");
    return 2;
  }
  if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK) return 1;
  printf("| set | output | images | best s | images/s |\n| --- | --- | --- | --- | --- |\n");
  for (s = 0; s < 3; ++s) {
    char path[4096];
    cudl_folder_options o = cudl_folder_options_default();
    double best = 1e30;
    int64_t count = 0;
    o.channels = sets[s].channels;
    o.height = sets[s].height;
    o.width = sets[s].width;
    snprintf(path, sizeof path, "%s/%s", argv[1], sets[s].name);
    for (r = 0; r <= repeats; ++r) {
      cudl_dataset *ds = NULL;
      const double start = now();
      if (cudl_dataset_load_folder(ctx, path, &o, &ds) != CUDL_OK) {
        fprintf(stderr, "bench_images: %s\n", cudl_context_last_error(ctx));
        cudl_context_destroy(ctx);
        return 1;
      }
      if (r > 0 && now() - start < best) best = now() - start;
      count = cudl_dataset_count(ds);
      cudl_dataset_destroy(ds);
    }
    printf("| %s | %d x %d x %d | %lld | %.3f | %.0f |\n", sets[s].name,
           sets[s].channels, sets[s].height, sets[s].width, (long long)count,
           best, (double)count / best);
  }
  printf("\n| set | images | loader in memory, images/s | loader streamed, "
         "images/s |\n| --- | --- | --- | --- |\n");
  for (s = 0; s < 3; ++s) {
    char path[4096];
    cudl_folder_options o = cudl_folder_options_default();
    double rate[2];
    int64_t count = 0;
    int streamed;
    o.channels = sets[s].channels;
    o.height = sets[s].height;
    o.width = sets[s].width;
    snprintf(path, sizeof path, "%s/%s", argv[1], sets[s].name);
    for (streamed = 0; streamed < 2; ++streamed) {
      cudl_dataset *ds = NULL;
      o.stream = streamed;
      if (cudl_dataset_load_folder(ctx, path, &o, &ds) != CUDL_OK) {
        fprintf(stderr, "bench_images: %s\n", cudl_context_last_error(ctx));
        cudl_context_destroy(ctx);
        return 1;
      }
      count = cudl_dataset_count(ds);
      rate[streamed] = loader_rate(ctx, ds, repeats);
      cudl_dataset_destroy(ds);
      if (rate[streamed] == 0.0) {
        cudl_context_destroy(ctx);
        return 1;
      }
    }
    printf("| %s | %lld | %.0f | %.0f |\n", sets[s].name, (long long)count,
           rate[0], rate[1]);
  }
  cudl_context_destroy(ctx);
  return 0;
}
