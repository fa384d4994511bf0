/* bench_peers_load.c - the GPU peers of `cudl bench` (bench_peers.h),
 * reached through their module, libcudl_bench_cuda.so.M.N, which lives
 * beside libcudl and is loaded on the first GPU peer measured. Without it
 * (a CPU-only build, or a host without cudart, cuBLAS or cuDNN) each entry
 * says why once and fails, and the run goes on without that peer. */
#define _GNU_SOURCE /* dladdr */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "bench.h"
#include "bench_peers.h"

static int tried;

#if defined(CUDL_BENCH_CUDA_MODULE)
static const bench_cuda_peers *peers;

/* The directory of libcudl, where the module is installed beside it. */
static int library_directory(char *dir, size_t size) {
  Dl_info info;
  const char *(*fn)(void) = cudl_version;
  void *address;
  const char *slash;
  memcpy(&address, &fn, sizeof address);
  if (dladdr(address, &info) == 0 || info.dli_fname == NULL) return 0;
  slash = strrchr(info.dli_fname, '/');
  if (slash == NULL || (size_t)(slash - info.dli_fname) >= size) return 0;
  memcpy(dir, info.dli_fname, (size_t)(slash - info.dli_fname));
  dir[slash - info.dli_fname] = '\0';
  return 1;
}

static const bench_cuda_peers *load_peers(void) {
  char path[1024];
  void *handle = NULL, *symbol;
  bench_cuda_peers_entry_fn entry;
  if (tried) return peers;
  tried = 1;
  if (library_directory(path, sizeof path - sizeof CUDL_BENCH_CUDA_MODULE - 1)) {
    strcat(path, "/" CUDL_BENCH_CUDA_MODULE);
    handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  }
  if (handle == NULL) handle = dlopen(CUDL_BENCH_CUDA_MODULE, RTLD_NOW | RTLD_LOCAL);
  if (handle == NULL) {
    fprintf(stderr, "cudl bench: the GPU peers (cuBLAS, cuDNN) are not measured: %s\n",
            dlerror());
    return NULL;
  }
  symbol = dlsym(handle, BENCH_CUDA_PEERS_ENTRY);
  memcpy(&entry, &symbol, sizeof entry);
  if (entry == NULL) {
    fprintf(stderr, "cudl bench: %s has no %s\n", CUDL_BENCH_CUDA_MODULE,
            BENCH_CUDA_PEERS_ENTRY);
    dlclose(handle);
    return NULL;
  }
  peers = entry(bench_time);
  return peers;
}
#else
static const bench_cuda_peers *load_peers(void) {
  if (!tried) fprintf(stderr, "cudl bench: this build has no CUDA\n");
  tried = 1;
  return NULL;
}
#endif

int bench_cudnn_compiled(void) { return load_peers() != NULL; }

cudl_status bench_cuda_copy_ceiling(cudl_context *ctx, size_t bytes,
                                    const bench_settings *settings,
                                    bench_timing *timing, double *gbps) {
  const bench_cuda_peers *p = load_peers();
  if (p == NULL) return CUDL_ERR_UNSUPPORTED;
  return p->copy_ceiling(ctx, bytes, settings, timing, gbps);
}

cudl_status bench_cuda_gemm_ceiling(cudl_context *ctx, int n,
                                    const bench_settings *settings,
                                    bench_timing *timing, double *gflops) {
  const bench_cuda_peers *p = load_peers();
  if (p == NULL) return CUDL_ERR_UNSUPPORTED;
  return p->gemm_ceiling(ctx, n, settings, timing, gflops);
}

cudl_status bench_cudnn_time(cudl_context *ctx, bench_cudnn_op op, int backward,
                             const int64_t shape[4],
                             const bench_settings *settings,
                             bench_timing *out) {
  const bench_cuda_peers *p = load_peers();
  if (p == NULL) return CUDL_ERR_UNSUPPORTED;
  return p->cudnn_time(ctx, op, backward, shape, settings, out);
}
