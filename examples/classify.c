/*
 * classify.c - a program that embeds cudl: load trained weights through
 * the C API, compile them for inference and classify images.
 *
 *   classify [--device auto|cpu|cuda] WEIGHTS.safetensors [DATA_DIR [COUNT]]
 *   classify [--device auto|cpu|cuda] WEIGHTS.safetensors --image FILE...
 *
 * WEIGHTS is a model.safetensors that `cudl train` writes (by default in
 * runs/small-cnn-fashion-mnist/): any model, since the file holds its
 * architecture. It is compiled for inference only
 * (cudl_model_load_file_inference): no gradients, activations sharing
 * buffers, batch norm folded into the convolutions, dropout removed.
 * The first form classifies Fashion-MNIST test images (IDX files) from
 * DATA_DIR (default: Debian's /usr/share/datasets/fashion-mnist): the
 * class of the first COUNT (default 10) and the accuracy over them. The
 * second classifies PNG or JPEG files, each resized to the model's input,
 * and prints each file's class (named when the weights list their
 * classes). --device picks the device (default: the best one).
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

/* Class k's name from the weights' "classes" metadata (a JSON array of
 * strings, as cudl train writes it) into buf; 0 when there is none. */
static int class_name(const char *json, int64_t k, char *buf, size_t size) {
  int64_t index = 0;
  const char *p = json;
  if (json == NULL || size == 0) return 0;
  while ((p = strchr(p, '"')) != NULL) {
    size_t n = 0;
    for (++p; *p != '\0' && *p != '"'; ++p) {
      if (*p == '\\' && p[1] != '\0') ++p; /* an escaped character */
      if (index == k && n + 1 < size) buf[n++] = *p;
    }
    if (*p == '\0') return 0;
    ++p; /* past the closing quote */
    if (index++ == k) {
      buf[n] = '\0';
      return 1;
    }
  }
  return 0;
}

/* The weights' "classes" metadata, copied (NULL when absent). */
static char *read_classes(cudl_context *ctx, const char *path) {
  cudl_safetensors *set = NULL;
  const char *text;
  char *copy = NULL;
  if (cudl_safetensors_load(ctx, path, CUDL_SAFETENSORS_HEADER_ONLY, &set) !=
      CUDL_OK)
    return NULL;
  text = cudl_safetensors_metadata_find(set, "classes");
  if (text != NULL && (copy = malloc(strlen(text) + 1)) != NULL)
    strcpy(copy, text);
  cudl_safetensors_destroy(set);
  return copy;
}

static int usage(void) {
  fprintf(stderr,
          "usage: classify [--device auto|cpu|cuda] WEIGHTS.safetensors "
          "[DATA_DIR [COUNT]]\n"
          "       classify [--device auto|cpu|cuda] WEIGHTS.safetensors "
          "--image FILE...\n");
  return 2;
}

int main(int argc, char **argv) {
  const char *weights, *dir = NULL, *device = "auto";
  char **images = NULL;
  char *class_names = NULL;
  long count = 10, rows;
  int arg = 1;
  cudl_device_kind kind = CUDL_DEVICE_AUTO;
  cudl_context *ctx = NULL;
  cudl_dataset *test = NULL;
  cudl_model *model = NULL;
  cudl_tensor *x = NULL;
  float *pixels = NULL, *logits = NULL, mean = 0.286f, std = 0.353f;
  uint8_t *bytes = NULL;
  long i, correct = 0;
  int64_t k, plane, classes, input[3];
  cudl_status s;
  int rc = 1;
  if (argc > 2 && strcmp(argv[1], "--device") == 0) {
    device = argv[2];
    arg = 3;
  }
  if (strcmp(device, "cpu") == 0)
    kind = CUDL_DEVICE_CPU;
  else if (strcmp(device, "cuda") == 0)
    kind = CUDL_DEVICE_CUDA;
  else if (strcmp(device, "auto") != 0)
    return usage();
  if (arg >= argc) return usage();
  weights = argv[arg++];
  if (arg < argc && strcmp(argv[arg], "--image") == 0) {
    images = argv + arg + 1;
    count = argc - arg - 1;
    if (count < 1) return usage();
  } else {
    if (argc - arg > 2) return usage();
    if (arg < argc) dir = argv[arg++];
    if (arg < argc) count = strtol(argv[arg], NULL, 10);
  }
  if (count < 1 || count > 10000) {
    fprintf(stderr, "classify: COUNT must be in [1, 10000]\n");
    return 2;
  }

  s = cudl_context_create(kind, 0, &ctx);
  if (s != CUDL_OK) {
    fprintf(stderr, "classify: no %s context: %s\n", device,
            cudl_status_string(s));
    return 1;
  }
  if (images == NULL) {
    s = cudl_dataset_load(ctx, "fashion-mnist", dir, 0, &test);
    if (s != CUDL_OK) {
      report(ctx, "loading the test images", s);
      goto out;
    }
    if (count > cudl_dataset_count(test)) count = (long)cudl_dataset_count(test);
  }
  rows = count;
  /* The model, rebuilt from the weights file alone (cudl train's files, and
   * anything cudl_model_save writes, carry their architecture), compiled
   * for inference on batches of up to `rows` images. */
  s = cudl_model_load_file_inference(ctx, weights, rows, &model);
  if (s != CUDL_OK) {
    report(ctx, "loading the model", s);
    goto out;
  }
  {
    int64_t out_shape[3];
    if (cudl_model_node_shape(model, 0, input) != 3 ||
        cudl_model_node_shape(model, cudl_model_output_node(model),
                              out_shape) != 1) {
      fprintf(stderr, "classify: %s is not an image classifier\n", weights);
      goto out;
    }
    classes = out_shape[0];
  }
  if (test != NULL &&
      (classes != cudl_dataset_classes(test) ||
       input[0] != cudl_dataset_channels(test) ||
       input[1] != cudl_dataset_height(test) ||
       input[2] != cudl_dataset_width(test))) {
    fprintf(stderr,
            "classify: %s is not a classifier of the %lld Fashion-MNIST "
            "classes\n",
            weights, (long long)cudl_dataset_classes(test));
    goto out;
  }
  if (!read_normalisation(ctx, weights, &mean, &std))
    fprintf(stderr, "classify: %s has no normalisation; using Fashion-MNIST's\n",
            weights);
  class_names = read_classes(ctx, weights);

  /* The images, decoded (PNG, JPEG) or read (IDX) as bytes, then scaled
   * and normalised as in training, as one batch. */
  plane = input[0] * input[1] * input[2];
  {
    const int64_t shape[4] = {rows, input[0], input[1], input[2]};
    s = cudl_tensor_create(ctx, CUDL_DTYPE_F32, 4, shape, &x);
  }
  pixels = malloc((size_t)(rows * plane) * sizeof *pixels);
  logits = malloc((size_t)(rows * classes) * sizeof *logits);
  bytes = malloc((size_t)plane);
  if (s != CUDL_OK || pixels == NULL || logits == NULL || bytes == NULL) {
    report(ctx, "allocating the batch", s == CUDL_OK ? CUDL_ERR_OUT_OF_MEMORY : s);
    goto out;
  }
  for (i = 0; i < rows; ++i) {
    const uint8_t *image = bytes;
    if (test != NULL) {
      image = cudl_dataset_image(test, i);
    } else {
      s = cudl_image_load(ctx, images[i], (int)input[0], (int)input[1],
                          (int)input[2], bytes);
      if (s != CUDL_OK) {
        report(ctx, images[i], s);
        goto out;
      }
    }
    for (k = 0; k < plane; ++k)
      pixels[i * plane + k] = ((float)image[k] / 255.0f - mean) / std;
  }
  s = cudl_tensor_copy_from_host(x, pixels,
                                 (size_t)(rows * plane) * sizeof *pixels);
  if (s == CUDL_OK) s = cudl_model_forward(model, x, NULL, NULL);
  if (s == CUDL_OK)
    s = cudl_tensor_copy_to_host(cudl_model_output(model), logits,
                                 (size_t)(rows * classes) * sizeof *logits);
  if (s != CUDL_OK) {
    report(ctx, "classifying", s);
    goto out;
  }
  for (i = 0; i < rows; ++i) {
    const float *row = logits + i * classes;
    int64_t best = 0;
    char name[128];
    for (k = 1; k < classes; ++k)
      if (row[k] > row[best]) best = k;
    if (test == NULL) {
      if (!class_name(class_names, best, name, sizeof name))
        snprintf(name, sizeof name, "class %lld", (long long)best);
      printf("%s: %s\n", images[i], name);
      continue;
    }
    correct += best == cudl_dataset_label(test, i);
    if (i < 20) /* the dataset knows its class names */
      printf("image %ld: %-11s (label %s)\n", i,
             cudl_dataset_class_name(test, (int)best),
             cudl_dataset_class_name(test, cudl_dataset_label(test, i)));
  }
  if (test != NULL)
    printf("accuracy on the first %ld test images: %.4f (%s)\n", count,
           (double)correct / (double)count, cudl_context_device_name(ctx));
  rc = 0;
out:
  free(pixels);
  free(logits);
  free(bytes);
  free(class_names);
  cudl_tensor_destroy(x);
  cudl_model_destroy(model);
  cudl_dataset_destroy(test);
  cudl_context_destroy(ctx);
  return rc;
}
