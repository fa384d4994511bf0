/* memory.c - the per-context memory limit (cudl_context_set_memory_limit):
 * the check every device allocation makes, and the default of a CPU
 * context, the memory the process can actually get. */
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#include "core/internal.h"

/* ---- reading the system's figures ---- */

/* The value of `key` (a "Key:" line of /proc/meminfo or /proc/self/status,
 * in kB) times 1024, or of a "key value" line of a cgroup's memory.stat (in
 * bytes). 1 when found. */
static int read_keyed(const char *path, const char *key, int kilobytes,
                      uint64_t *value) {
  char line[256];
  const size_t key_length = strlen(key);
  int found = 0;
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  while (!found && fgets(line, sizeof line, f) != NULL) {
    unsigned long long v;
    if (strncmp(line, key, key_length) != 0) continue;
    if (kilobytes ? sscanf(line + key_length, ": %llu kB", &v) == 1
                  : sscanf(line + key_length, " %llu", &v) == 1) {
      if (kilobytes && v > UINT64_MAX / 1024) v = UINT64_MAX / 1024;
      *value = kilobytes ? (uint64_t)v * 1024u : (uint64_t)v;
      found = 1;
    }
  }
  fclose(f);
  return found;
}

/* A file holding one unsigned number (a cgroup's memory.max); 0 for "max",
 * a missing file or anything else. */
static int read_number(const char *path, uint64_t *value) {
  unsigned long long v;
  int ok;
  FILE *f = fopen(path, "r");
  if (f == NULL) return 0;
  ok = fscanf(f, "%llu", &v) == 1;
  fclose(f);
  if (ok) *value = (uint64_t)v;
  return ok;
}

static uint64_t min_u64(uint64_t a, uint64_t b) { return a < b ? a : b; }

/* What the cgroup at `dir` still allows: limit minus usage, where usage
 * leaves out the page cache the kernel can reclaim (inactive files).
 * UINT64_MAX when the group has no limit or cannot be read. */
static uint64_t cgroup_room(const char *dir, const char *limit_file,
                            const char *usage_file, const char *inactive_key) {
  char path[PATH_MAX];
  uint64_t limit, usage, inactive = 0;
  snprintf(path, sizeof path, "%s/%s", dir, limit_file);
  if (!read_number(path, &limit)) return UINT64_MAX;
  snprintf(path, sizeof path, "%s/%s", dir, usage_file);
  if (!read_number(path, &usage)) usage = 0;
  snprintf(path, sizeof path, "%s/memory.stat", dir);
  if (read_keyed(path, inactive_key, 0, &inactive) && inactive <= usage)
    usage -= inactive;
  return limit > usage ? limit - usage : 0;
}

/* The least room of the process's memory cgroup and its ancestors up to
 * `root` (a cgroup's limit binds its children too). */
static uint64_t cgroup_chain_room(const char *root, const char *group,
                                  const char *limit_file,
                                  const char *usage_file,
                                  const char *inactive_key) {
  char dir[PATH_MAX];
  uint64_t room = UINT64_MAX;
  size_t root_length = strlen(root);
  char *slash;
  snprintf(dir, sizeof dir, "%s%s", root, group);
  for (;;) {
    size_t n = strlen(dir);
    while (n > root_length && dir[n - 1] == '/') dir[--n] = '\0';
    room =
        min_u64(room, cgroup_room(dir, limit_file, usage_file, inactive_key));
    if (n <= root_length) break;
    slash = strrchr(dir + root_length, '/');
    if (slash == NULL) break;
    *slash = '\0';
  }
  return room;
}

/* The room the memory cgroup (v2, or v1's memory controller) leaves;
 * UINT64_MAX when there is no limit. */
static uint64_t cgroup_memory_room(void) {
  char line[PATH_MAX + 64];
  uint64_t room = UINT64_MAX;
  FILE *f = fopen("/proc/self/cgroup", "r");
  if (f == NULL)
    return cgroup_room("/sys/fs/cgroup", "memory.max", "memory.current",
                       "inactive_file");
  while (fgets(line, sizeof line, f) != NULL) {
    char *controllers = strchr(line, ':'), *group;
    if (controllers == NULL) continue;
    ++controllers;
    group = strchr(controllers, ':');
    if (group == NULL) continue;
    *group++ = '\0';
    group[strcspn(group, "\n")] = '\0';
    if (controllers[0] == '\0') /* v2: "0::/path" */
      room =
          min_u64(room, cgroup_chain_room("/sys/fs/cgroup", group, "memory.max",
                                          "memory.current", "inactive_file"));
    else if (strcmp(controllers, "memory") == 0 ||
             strstr(controllers, ",memory") != NULL ||
             strncmp(controllers, "memory,", 7) == 0) /* v1 */
      room = min_u64(room, cgroup_chain_room("/sys/fs/cgroup/memory", group,
                                             "memory.limit_in_bytes",
                                             "memory.usage_in_bytes",
                                             "total_inactive_file"));
  }
  fclose(f);
  return room;
}

/* What a resource limit on the address space or the data segment leaves:
 * the limit minus what the process uses of it now (/proc/self/status). */
static uint64_t rlimit_room(int resource, const char *status_key) {
  struct rlimit limit;
  uint64_t used = 0;
  if (getrlimit(resource, &limit) != 0 || limit.rlim_cur == RLIM_INFINITY)
    return UINT64_MAX;
  (void)read_keyed("/proc/self/status", status_key, 1, &used);
  return (uint64_t)limit.rlim_cur > used ? (uint64_t)limit.rlim_cur - used : 0;
}

uint64_t cudl__host_memory_default(void) {
  uint64_t available = 0, swap = 0, room;
  if (read_keyed("/proc/meminfo", "MemAvailable", 1, &available)) {
    (void)read_keyed("/proc/meminfo", "SwapFree", 1, &swap);
    room = available > UINT64_MAX - swap ? UINT64_MAX : available + swap;
  } else {
    long pages = sysconf(_SC_AVPHYS_PAGES), page_size = sysconf(_SC_PAGESIZE);
    room = pages > 0 && page_size > 0 ? (uint64_t)pages * (uint64_t)page_size
                                      : UINT64_MAX;
  }
  room = min_u64(room, cgroup_memory_room());
  room = min_u64(room, rlimit_room(RLIMIT_AS, "VmSize"));
  room = min_u64(room, rlimit_room(RLIMIT_DATA, "VmData"));
  return room;
}

/* ---- the limit ---- */

uint64_t cudl__memory_limit(const cudl_context *ctx) {
  return ctx->memory_limit != 0 ? ctx->memory_limit : ctx->memory_limit_default;
}

static double mib(uint64_t bytes) { return (double)bytes / 1048576.0; }

cudl_status cudl__memory_limit_fail(cudl_context *ctx, const char *function,
                                    size_t nbytes, uint64_t in_use) {
  const uint64_t limit = cudl__memory_limit(ctx);
  return cudl__fail(
      ctx, CUDL_ERR_OUT_OF_MEMORY, function,
      "cannot allocate %zu bytes (%.1f MiB) on %s with %llu bytes (%.1f "
      "MiB) in use: that would pass the context's memory limit of %llu "
      "bytes (%.1f MiB)%s; cudl_context_set_memory_limit changes the limit",
      nbytes, mib(nbytes), ctx->device_name, (unsigned long long)in_use,
      mib(in_use), (unsigned long long)limit, mib(limit),
      ctx->memory_limit != 0 ? ""
      : ctx->device == CUDL_DEVICE_CPU
          ? ", the memory the process could get when the context was made"
          : ", the device's memory");
}

int cudl__memory_limit_exceeded(const cudl_context *ctx, size_t nbytes,
                                uint64_t in_use) {
  const uint64_t limit = cudl__memory_limit(ctx);
  return (uint64_t)nbytes > limit || in_use > limit - (uint64_t)nbytes;
}

cudl_status cudl_context_set_memory_limit(cudl_context *ctx, uint64_t bytes) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  ctx->memory_limit = bytes;
  return CUDL_OK;
}

cudl_status cudl_context_memory_limit(const cudl_context *ctx,
                                      uint64_t *bytes) {
  if (ctx == NULL) return CUDL_ERR_INVALID_ARGUMENT;
  if (bytes == NULL)
    return cudl__fail_const(ctx, CUDL_ERR_INVALID_ARGUMENT, __func__,
                            "bytes is NULL");
  *bytes = cudl__memory_limit(ctx);
  return CUDL_OK;
}
