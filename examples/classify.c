/*
 * classify.c - a program that embeds cudl: load trained weights through
 * the C API and classify images.
 *
 *   classify WEIGHTS.safetensors [DATA_DIR [COUNT]]
 *
 * WEIGHTS is a model.safetensors that `cudl train` writes for Fashion-MNIST
 * (by default in runs/small-cnn-fashion-mnist/): any model, since the file
 * holds its architecture (cudl_model_load_file).
 * The test images come from DATA_DIR (default: Debian's
 * /usr/share/datasets/fashion-mnist). Prints the class of the first COUNT
 * (default 10) test images and the accuracy over them, on the best device.
 *
 * Build against an installed cudl:
 *   cc -std=c99 classify.c $(pkg-config --cflags --libs cudl) -o classify
 * or with CMake: find_package(cudl) and target_link_libraries(... cudl::cudl)
 * (examples/CMakeLists.txt).
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cudl/cudl.h>

/* Print what failed and why, and say so to the caller. */
static int report(cudl_context *ctx, const char *what, cudl_status s) {
  fprintf(stderr, "classify: %s: %s (%s)\n", what, cudl_status_string(s),
          cudl_context_last_error(ctx));
  return 1;
}

/* The normalisation the weights were trained with, from the file's
 * metadata (cudl train stores it); 0 when the file does not say. */
static int read_normalisation(cudl_context *ctx, const char *path,
                              float *mean, float *std) {
  cudl_safetensors *set = NULL;
  const char *m, *d;
  int ok = 0;
  if (cudl_safetensors_load(ctx, path, CUDL_SAFETENSORS_HEADER_ONLY, &set) !=
      CUDL_OK)
    return 0;
  m = cudl_safetensors_metadata_find(set, "normalize.mean");
  d = cudl_safetensors_metadata_find(set, "normalize.std");
  ok = m != NULL && d != NULL && sscanf(m, "%f", mean) == 1 &&
       sscanf(d, "%f", std) == 1 && *std > 0.0f;
  cudl_safetensors_destroy(set);
  return ok;
}

int main(int argc, char **argv) {
  const char *weights, *dir;
  long count = 10;
  cudl_context *ctx = NULL;
  cudl_dataset *test = NULL;
  cudl_model *model = NULL;
  cudl_tensor *x = NULL;
  float *pixels = NULL, *logits = NULL, mean = 0.286f, std = 0.353f;
  long i, correct = 0;
  int64_t k, plane, classes;
  cudl_status s;
  int rc = 1;
  if (argc < 2 || argc > 4) {
    fprintf(stderr, "usage: classify WEIGHTS.safetensors [DATA_DIR [COUNT]]\n");
    return 2;
  }
  weights = argv[1];
  dir = argc > 2 ? argv[2] : NULL;
  if (argc > 3) count = strtol(argv[3], NULL, 10);
  if (count < 1 || count > 10000) {
    fprintf(stderr, "classify: COUNT must be in [1, 10000]\n");
    return 2;
  }

  s = cudl_context_create(CUDL_DEVICE_AUTO, 0, &ctx);
  if (s != CUDL_OK) {
    fprintf(stderr, "classify: no context: %s\n", cudl_status_string(s));
    return 1;
  }
  s = cudl_dataset_load(ctx, "fashion-mnist", dir, 0, &test);
  if (s != CUDL_OK) {
    report(ctx, "loading the test images", s);
    goto out;
  }
  if (count > cudl_dataset_count(test)) count = (long)cudl_dataset_count(test);
  classes = cudl_dataset_classes(test);
  /* The model, rebuilt from the weights file alone: cudl train's files
   * (and anything cudl_model_save writes) carry their architecture. */
  s = cudl_model_load_file(ctx, weights, count, &model);
  if (s == CUDL_OK) s = cudl_model_set_training(model, 0);
  if (s != CUDL_OK) {
    report(ctx, "loading the model", s);
    goto out;
  }
  {
    int64_t shape[3];
    if (cudl_model_node_shape(model, cudl_model_output_node(model), shape) !=
            1 ||
        shape[0] != classes) {
      fprintf(stderr,
              "classify: %s is not a classifier of the %lld Fashion-MNIST "
              "classes\n",
              weights, (long long)classes);
      goto out;
    }
  }
  if (!read_normalisation(ctx, weights, &mean, &std))
    fprintf(stderr, "classify: %s has no normalisation; using Fashion-MNIST's\n",
            weights);

  /* The images, scaled and normalised as in training, as one batch. */
  plane = (int64_t)cudl_dataset_channels(test) * cudl_dataset_height(test) *
          cudl_dataset_width(test);
  {
    const int64_t shape[4] = {count, cudl_dataset_channels(test),
                              cudl_dataset_height(test),
                              cudl_dataset_width(test)};
    s = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &x);
  }
  pixels = malloc((size_t)(count * plane) * sizeof *pixels);
  logits = malloc((size_t)(count * classes) * sizeof *logits);
  if (s != CUDL_OK || pixels == NULL || logits == NULL) {
    report(ctx, "allocating the batch", s == CUDL_OK ? CUDL_ERR_OUT_OF_MEMORY : s);
    goto out;
  }
  for (i = 0; i < count; ++i) {
    const uint8_t *image = cudl_dataset_image(test, i);
    for (k = 0; k < plane; ++k)
      pixels[i * plane + k] = ((float)image[k] / 255.0f - mean) / std;
  }
  s = cudl_tensor_copy_from_host(x, pixels,
                                 (size_t)(count * plane) * sizeof *pixels);
  if (s == CUDL_OK) s = cudl_model_forward(model, x, NULL, NULL);
  if (s == CUDL_OK)
    s = cudl_tensor_copy_to_host(cudl_model_output(model), logits,
                                 (size_t)(count * classes) * sizeof *logits);
  if (s != CUDL_OK) {
    report(ctx, "classifying", s);
    goto out;
  }
  for (i = 0; i < count; ++i) {
    const float *row = logits + i * classes;
    int64_t best = 0;
    const int label = cudl_dataset_label(test, i);
    for (k = 1; k < classes; ++k)
      if (row[k] > row[best]) best = k;
    correct += best == label;
    if (i < 20) /* the dataset knows its class names */
      printf("image %ld: %-11s (label %s)\n", i,
             cudl_dataset_class_name(test, (int)best),
             cudl_dataset_class_name(test, label));
  }
  printf("accuracy on the first %ld test images: %.4f (%s)\n", count,
         (double)correct / (double)count, cudl_context_device_name(ctx));
  rc = 0;
out:
  free(pixels);
  free(logits);
  cudl_tensor_destroy(x);
  cudl_model_destroy(model);
  cudl_dataset_destroy(test);
  cudl_context_destroy(ctx);
  return rc;
}
