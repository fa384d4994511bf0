/*
 * catalog.c - the datasets cudl knows by name (mnist, fashion-mnist,
 * cifar10): where their files are in a directory, and which reader reads
 * them. Above the readers (idx.c, cifar.c) and the dataset object
 * (dataset.c), which know nothing of it.
 */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "data/data_internal.h"

#define DEBIAN_FASHION_MNIST "/usr/share/datasets/fashion-mnist"
#define DATA_PATH_MAX 4096

/* The official class names, in label order. */
static const char *const MNIST_CLASSES[10] = {"0", "1", "2", "3", "4",
                                              "5", "6", "7", "8", "9"};
static const char *const FASHION_MNIST_CLASSES[10] = {
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal",      "Shirt",   "Sneaker",  "Bag",   "Ankle boot"};
static const char *const CIFAR10_CLASSES[10] = {
    "airplane", "automobile", "bird",  "cat",  "deer",
    "dog",      "frog",       "horse", "ship", "truck"};

/* The reader's status; on success ds gets the names (or is destroyed). */
static cudl_status named(cudl_context *ctx, cudl_status status,
                         const char *const *names, cudl_dataset **out) {
  if (status != CUDL_OK) return status;
  status = cudl__dataset_set_class_names(ctx, "cudl_dataset_load", *out, names);
  if (status != CUDL_OK) {
    cudl_dataset_destroy(*out);
    *out = NULL;
  }
  return status;
}

/* dir/file into buf; INVALID_ARGUMENT when it does not fit. */
static cudl_status join_path(cudl_context *ctx, char *buf, const char *dir,
                             const char *file) {
  int n = snprintf(buf, DATA_PATH_MAX, "%s/%s", dir, file);
  if (n < 0 || n >= DATA_PATH_MAX)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_dataset_load",
                      "the path of '%s' in '%.200s' is too long", file, dir);
  return CUDL_OK;
}

/* dir/file, or dir/file.gz when only that exists. */
static cudl_status idx_path(cudl_context *ctx, char *buf, const char *dir,
                            const char *file) {
  char gz[DATA_PATH_MAX];
  cudl_status status = join_path(ctx, buf, dir, file);
  if (status != CUDL_OK) return status;
  if (access(buf, F_OK) == 0) return CUDL_OK;
  if (strlen(buf) + 3 >= DATA_PATH_MAX)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, "cudl_dataset_load",
                      "the path of '%s' in '%.200s' is too long", file, dir);
  memcpy(gz, buf, strlen(buf) + 1);
  strcat(gz, ".gz");
  if (access(gz, F_OK) == 0) memcpy(buf, gz, strlen(gz) + 1);
  return CUDL_OK; /* the reader reports a missing file */
}

cudl_status cudl_dataset_load(cudl_context *ctx, const char *name,
                              const char *dir, int train, cudl_dataset **out) {
  static const char fn[] = "cudl_dataset_load";
  char images[DATA_PATH_MAX], labels[DATA_PATH_MAX];
  cudl_status status;
  int idx;
  if (out != NULL) *out = NULL;
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (out == NULL || name == NULL)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn, "%s is NULL",
                      out == NULL ? "out" : "name");
  idx = strcmp(name, "mnist") == 0 || strcmp(name, "fashion-mnist") == 0;
  if (!idx && strcmp(name, "cifar10") != 0)
    return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                      "unknown dataset '%.100s' (mnist, fashion-mnist, "
                      "cifar10)",
                      name);
  if (dir == NULL) {
    if (strcmp(name, "fashion-mnist") != 0)
      return cudl__fail(ctx, CUDL_ERR_INVALID_ARGUMENT, fn,
                        "no default directory for '%s': give dir", name);
    dir = DEBIAN_FASHION_MNIST;
  }
  if (idx) {
    const char *split = train ? "train" : "t10k";
    char file[64];
    snprintf(file, sizeof file, "%s-images-idx3-ubyte", split);
    status = idx_path(ctx, images, dir, file);
    if (status != CUDL_OK) return status;
    snprintf(file, sizeof file, "%s-labels-idx1-ubyte", split);
    status = idx_path(ctx, labels, dir, file);
    if (status != CUDL_OK) return status;
    return named(ctx, cudl_dataset_load_idx(ctx, images, labels, 10, out),
                 strcmp(name, "mnist") == 0 ? MNIST_CLASSES
                                            : FASHION_MNIST_CLASSES,
                 out);
  }
  if (!train) {
    const char *paths[1];
    status = join_path(ctx, images, dir, "test_batch.bin");
    if (status != CUDL_OK) return status;
    paths[0] = images;
    return named(ctx, cudl_dataset_load_cifar10(ctx, paths, 1, out),
                 CIFAR10_CLASSES, out);
  } else {
    char buffers[5][DATA_PATH_MAX];
    const char *paths[5];
    int i;
    for (i = 0; i < 5; ++i) {
      char file[32];
      snprintf(file, sizeof file, "data_batch_%d.bin", i + 1);
      status = join_path(ctx, buffers[i], dir, file);
      if (status != CUDL_OK) return status;
      paths[i] = buffers[i];
    }
    return named(ctx, cudl_dataset_load_cifar10(ctx, paths, 5, out),
                 CIFAR10_CLASSES, out);
  }
}
