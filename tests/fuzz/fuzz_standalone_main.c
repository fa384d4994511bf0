/*
 * fuzz_standalone_main.c - runs a fuzz target (fuzz_safetensors.c,
 * fuzz_data.c, fuzz_checkpoint.c) without libFuzzer.
 *
 *   fuzz_<target>_corpus FILE...
 *
 * Feeds each file to LLVMFuzzerTestOneInput, and every prefix of it too
 * (cut at each length), from heap buffers of exactly that size. A broken
 * check aborts; exit status 0 means every input passed.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int run_file(const char *path, size_t *inputs) {
  FILE *f = fopen(path, "rb");
  unsigned char *bytes = NULL;
  size_t size = 0, cut;
  long length;
  if (f == NULL || fseek(f, 0, SEEK_END) != 0 || (length = ftell(f)) < 0 ||
      fseek(f, 0, SEEK_SET) != 0) {
    fprintf(stderr, "%s: cannot read\n", path);
    if (f != NULL) fclose(f);
    return 1;
  }
  size = (size_t)length;
  bytes = (unsigned char *)malloc(size + 1);
  if (bytes == NULL || fread(bytes, 1, size, f) != size) {
    fprintf(stderr, "%s: cannot read\n", path);
    free(bytes);
    fclose(f);
    return 1;
  }
  fclose(f);
  for (cut = 0; cut <= size; ++cut) {
    /* An exact-size copy, so a sanitizer sees any read past the end. */
    unsigned char *copy = (unsigned char *)malloc(cut > 0 ? cut : 1);
    if (copy == NULL) {
      free(bytes);
      return 1;
    }
    if (cut > 0) memcpy(copy, bytes, cut);
    LLVMFuzzerTestOneInput(copy, cut);
    free(copy);
    ++*inputs;
  }
  free(bytes);
  return 0;
}

int main(int argc, char **argv) {
  size_t inputs = 0;
  int i, failures = 0;
  if (argc < 2) {
    fprintf(stderr, "usage: %s FILE...\n", argv[0]);
    return 2;
  }
  for (i = 1; i < argc; ++i) failures += run_file(argv[i], &inputs);
  printf("%d files, %zu inputs (files and their prefixes) passed\n", argc - 1 - failures,
         inputs);
  return failures == 0 ? 0 : 1;
}
