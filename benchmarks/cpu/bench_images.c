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
 * warms the page cache; OMP_NUM_THREADS sets the decoding threads. Not a
 * test: nothing here asserts a time.
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
  cudl_context_destroy(ctx);
  return 0;
}
