/*
 * A program outside the cudl tree, built against the installed package: it
 * proves the headers are C99 (built with -std=c99 -pedantic -Werror) and the
 * library links and runs. Exits 0 on success.
 */
#include <stdio.h>
#include <string.h>

#include <cudl/cudl.h>

int main(void) {
  const int64_t shape[2] = {3, 5};
  float host[15];
  cudl_context *ctx = NULL;
  cudl_tensor *t = NULL;
  int i, ok = 1;

  if (strcmp(cudl_version(), CUDL_VERSION_STRING) != 0) {
    fprintf(stderr, "header %s but library %s\n", CUDL_VERSION_STRING,
            cudl_version());
    return 1;
  }
  if (cudl_context_create(CUDL_DEVICE_CPU, 0, &ctx) != CUDL_OK) return 1;
  if (cudl_tensor_create(ctx, CUDL_DTYPE_F32, 2, shape, &t) != CUDL_OK ||
      cudl_tensor_fill(t, 2.5f) != CUDL_OK ||
      cudl_tensor_copy_to_host(t, host, sizeof host) != CUDL_OK) {
    fprintf(stderr, "tensor calls failed: %s\n", cudl_context_last_error(ctx));
    ok = 0;
  }
  for (i = 0; ok && i < 15; ++i) ok = host[i] == 2.5f;
  cudl_tensor_destroy(t);
  cudl_context_destroy(ctx);
  printf("consumer: cudl %s %s\n", cudl_version(), ok ? "works" : "FAILED");
  return ok ? 0 : 1;
}
