/*
 * cuda_module.c - finding and loading the CUDA backend module
 * (core/cuda_module.h says why it is one).
 *
 * Where it is looked for, in this order:
 *   1. the file named by the environment variable CUDL_CUDA_MODULE, if
 *      set (and nothing else then): for a module kept elsewhere, and for
 *      the tests that load a missing or foreign one;
 *   2. beside the library: the directory of libcudl.so, or of the program
 *      that a static libcudl.a was linked into (the build tree and an
 *      installed prefix both keep the two together);
 *   3. the dynamic loader's own search (LD_LIBRARY_PATH, the program's
 *      RUNPATH, ld.so.cache, the system directories);
 *   4. the library directory the build was installed to (CMake's
 *      CMAKE_INSTALL_FULL_LIBDIR), for a static program installed apart.
 * The first file that exists is the one: when it cannot be loaded (a CUDA
 * library it needs is missing, say) its error is the reason, and no other
 * copy is tried.
 *
 * The module is loaded once per process, on the first CUDA query, and never
 * unloaded: cudart registers its kernels and exit handlers at load time,
 * and a context may live until exit. The outcome is process-wide and
 * immutable after the first call (pthread_once), like the driver's own
 * initialisation.
 */
/* dladdr (where this code and the module were loaded from) is a GNU
 * extension that glibc and musl both have. */
#if !defined(_GNU_SOURCE)
#  define _GNU_SOURCE
#endif

#include "core/cuda_module.h"

#include <stdio.h>
#include <string.h>

#include "core/cuda_arch.h"
#include "core/internal.h"

#if defined(CUDL_CUDA_MODULE_FILE)

#  include <dlfcn.h>
#  include <pthread.h>
#  include <stdlib.h>
#  include <unistd.h>

/* ---- the library's services, lent to the module ---- */

static cudl_status service_fail(cudl_context *ctx, cudl_status status,
                                const char *function, const char *message) {
  return cudl__fail(ctx, status, function, "%s", message);
}

static void service_log(cudl_log_level level, const char *message) {
  cudl__log(level, "%s", message);
}

static const cudl_core_services services = {
    .interface = CUDL_CUDA_MODULE_INTERFACE,
    .fail = service_fail,
    .log = service_log,
    .host_alloc = cudl__host_alloc,
    .host_free = cudl__host_free,
    .default_allocator = &cudl__default_allocator,
    .memory_limit_exceeded = cudl__memory_limit_exceeded,
    .memory_limit_fail = cudl__memory_limit_fail,
    .cuda_arch_covers = cudl__cuda_arch_covers,
    .cuda_arch_refusal = cudl__cuda_arch_refusal,
    .dtype_name = cudl_dtype_name,
    .architectures = CUDL_CUDA_CODE,
};

/* ---- loading, once ---- */

#  define PATH_TEXT 1024

static pthread_once_t load_once = PTHREAD_ONCE_INIT;
static const cudl_cuda_module *loaded;
static char loaded_path[PATH_TEXT];
static char load_error[CUDL_ERROR_TEXT_SIZE];

static int file_exists(const char *path) { return access(path, F_OK) == 0; }

/* dlopen's text, or a fallback when it has none. */
static const char *dl_error_text(void) {
  const char *e = dlerror();
  return e != NULL ? e : "unknown error";
}

/* Open the module at path (or by its name alone when path has no '/')
 * and take its table; 1 on success. On failure load_error says why. */
static int try_load(const char *path) {
  void *handle = dlopen(path, RTLD_NOW | RTLD_LOCAL);
  cudl_cuda_module_entry_fn entry;
  const cudl_cuda_module *m;
  if (handle == NULL) {
    snprintf(load_error, sizeof load_error,
             "the CUDA backend %s could not be loaded: %s", path,
             dl_error_text());
    return 0;
  }
  /* ISO C cannot convert void * to a function pointer; POSIX requires
   * dlsym's result to survive this copy. */
  {
    void *symbol = dlsym(handle, CUDL_CUDA_MODULE_ENTRY);
    memcpy(&entry, &symbol, sizeof entry);
  }
  if (entry == NULL) {
    snprintf(load_error, sizeof load_error,
             "%s is not a cudl CUDA backend (it has no %s)", path,
             CUDL_CUDA_MODULE_ENTRY);
    dlclose(handle);
    return 0;
  }
  m = entry(&services);
  if (m == NULL || m->interface == NULL ||
      strcmp(m->interface, CUDL_CUDA_MODULE_INTERFACE) != 0) {
    snprintf(load_error, sizeof load_error,
             "the CUDA backend %s belongs to another build of cudl "
             "(interface %s; this library's is %s): install the module "
             "built with this library",
             path, m != NULL && m->interface != NULL ? m->interface : "?",
             CUDL_CUDA_MODULE_INTERFACE);
    dlclose(handle);
    return 0;
  }
  loaded = m;
  /* The file the loader chose (when given the name alone), for `cudl
   * info`. */
  {
    Dl_info info;
    void *address;
    memcpy(&address, &entry, sizeof address);
    if (dladdr(address, &info) != 0 && info.dli_fname != NULL &&
        strchr(info.dli_fname, '/') != NULL)
      path = info.dli_fname;
  }
  snprintf(loaded_path, sizeof loaded_path, "%s", path);
  return 1;
}

/* The directory of the object holding this code, into dir; 0 if unknown. */
static int own_directory(char *dir, size_t size) {
  Dl_info info;
  const char *slash;
  void *self;
  const cudl_cuda_module *(*fn)(char *, size_t) = cudl__cuda_module;
  memcpy(&self, &fn, sizeof self);
  if (dladdr(self, &info) == 0 || info.dli_fname == NULL) return 0;
  slash = strrchr(info.dli_fname, '/');
  if (slash == NULL) return 0;
  if ((size_t)(slash - info.dli_fname) >= size) return 0;
  memcpy(dir, info.dli_fname, (size_t)(slash - info.dli_fname));
  dir[slash - info.dli_fname] = '\0';
  return 1;
}

static void load(void) {
  char path[PATH_TEXT];
  const char *chosen = getenv("CUDL_CUDA_MODULE");
  if (chosen != NULL && chosen[0] != '\0') {
    (void)try_load(chosen);
    return;
  }
  if (own_directory(path, sizeof path) &&
      strlen(path) + 1 + strlen(CUDL_CUDA_MODULE_FILE) < sizeof path) {
    strcat(path, "/");
    strcat(path, CUDL_CUDA_MODULE_FILE);
    if (file_exists(path)) {
      (void)try_load(path);
      return;
    }
  }
  if (try_load(CUDL_CUDA_MODULE_FILE)) return;
  /* The loader found the file but not what it needs: that is the reason. */
  if (strstr(load_error, ": " CUDL_CUDA_MODULE_FILE ":") == NULL) return;
  snprintf(path, sizeof path, "%s/%s", CUDL_INSTALL_LIBDIR,
           CUDL_CUDA_MODULE_FILE);
  if (file_exists(path)) {
    (void)try_load(path);
    return;
  }
  snprintf(load_error, sizeof load_error,
           "the CUDA backend %s was found neither beside the library nor "
           "in the loader's search path nor in %s (set CUDL_CUDA_MODULE to "
           "its file)",
           CUDL_CUDA_MODULE_FILE, CUDL_INSTALL_LIBDIR);
}

const cudl_cuda_module *cudl__cuda_module(char *reason, size_t reason_size) {
  pthread_once(&load_once, load);
  if (loaded == NULL && reason != NULL && reason_size > 0)
    snprintf(reason, reason_size, "%s", load_error);
  return loaded;
}

cudl_status cudl_cuda_backend_load(char *path, size_t path_size, char *reason,
                                   size_t reason_size) {
  const cudl_cuda_module *m;
  if (path != NULL && path_size > 0) path[0] = '\0';
  if (reason != NULL && reason_size > 0) reason[0] = '\0';
  m = cudl__cuda_module(reason, reason_size);
  if (m == NULL) return CUDL_ERR_NO_DEVICE;
  if (path != NULL && path_size > 0)
    snprintf(path, path_size, "%s", loaded_path);
  return CUDL_OK;
}

#else /* a build without the CUDA backend */

#  define NOT_BUILT "this cudl was built without CUDA (CUDL_CUDA=OFF or no nvcc)"

const cudl_cuda_module *cudl__cuda_module(char *reason, size_t reason_size) {
  if (reason != NULL && reason_size > 0)
    snprintf(reason, reason_size, "%s", NOT_BUILT);
  return NULL;
}

cudl_status cudl_cuda_backend_load(char *path, size_t path_size, char *reason,
                                   size_t reason_size) {
  if (path != NULL && path_size > 0) path[0] = '\0';
  (void)cudl__cuda_module(reason, reason_size);
  return CUDL_ERR_UNSUPPORTED;
}

#endif
