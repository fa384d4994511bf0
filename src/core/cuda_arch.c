/* cuda_arch.c - which cards a build's GPU code runs on (cuda_arch.h). */
#include "core/cuda_arch.h"

#include <stdio.h>
#include <string.h>

/* One entry of the list: nvcc's name, taken apart. */
typedef struct arch_entry {
  int ptx;      /* compute_XY: 1; sm_XY: 0 */
  int number;   /* XY = 10 * major + minor */
  int specific; /* the "a" suffix: for X.Y alone */
} arch_entry;

/* Parse the entry that starts at *p and ends at the next space or at the
 * end of the string, and move *p past it. 0 when it is malformed. */
static int parse_entry(const char **p, arch_entry *e) {
  const char *s = *p;
  int digits = 0;
  if (strncmp(s, "sm_", 3) == 0) {
    e->ptx = 0;
    s += 3;
  } else if (strncmp(s, "compute_", 8) == 0) {
    e->ptx = 1;
    s += 8;
  } else {
    return 0;
  }
  /* Two to four digits, no leading zero: sm_10 to sm_9999, so the number
   * cannot overflow and "sm_8" or "sm_080" are not mistaken for 8.0. */
  if (*s < '1' || *s > '9') return 0;
  e->number = 0;
  for (; *s >= '0' && *s <= '9'; ++s) {
    if (++digits > 4) return 0;
    e->number = 10 * e->number + (*s - '0');
  }
  if (digits < 2) return 0;
  e->specific = *s == 'a';
  if (e->specific) ++s;
  if (*s != ' ' && *s != '\0') return 0;
  *p = s;
  return 1;
}

/* Compared as (major, minor) pairs rather than as 10 * major + minor, which
 * a large major would overflow. */
static int entry_runs_on(const arch_entry *e, int major, int minor) {
  const int entry_major = e->number / 10, entry_minor = e->number % 10;
  if (e->specific) return major == entry_major && minor == entry_minor;
  if (e->ptx)
    return major > entry_major ||
           (major == entry_major && minor >= entry_minor);
  return major == entry_major && minor >= entry_minor;
}

cudl_status cudl__cuda_arch_covers(const char *architectures, int major,
                                   int minor) {
  const char *p = architectures;
  arch_entry entry;
  int entries = 0, covered = 0;
  if (p == NULL || major < 1 || minor < 0 || minor > 9)
    return CUDL_ERR_INVALID_ARGUMENT;
  for (;;) {
    while (*p == ' ') ++p;
    if (*p == '\0') break;
    if (!parse_entry(&p, &entry)) return CUDL_ERR_INVALID_ARGUMENT;
    ++entries;
    if (entry_runs_on(&entry, major, minor)) covered = 1;
  }
  if (entries == 0) return CUDL_ERR_INVALID_ARGUMENT;
  return covered ? CUDL_OK : CUDL_ERR_UNSUPPORTED;
}

void cudl__cuda_arch_refusal(char *out, size_t size, int index,
                             const char *name, int major, int minor,
                             const char *architectures) {
  if (out == NULL || size == 0) return;
  snprintf(out, size,
           "cuda:%d (%s) has compute capability %d.%d, and this build of "
           "cudl has GPU code for %s only, none of which runs on it: "
           "rebuild with %d%d added to CMAKE_CUDA_ARCHITECTURES (for this "
           "card alone, -DCMAKE_CUDA_ARCHITECTURES=%d%d)",
           index, name, major, minor, architectures, major, minor, major,
           minor);
}
