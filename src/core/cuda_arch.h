/*
 * cuda_arch.h - whether GPU code built for a list of architectures runs on
 * a card of a given compute capability, and the message that refuses a card
 * it does not. Pure functions of their arguments: no CUDA, so that every
 * build, CPU-only included, compiles and tests them.
 *
 * The list holds nvcc's names, separated by spaces, as the build records
 * them (cmake/CudlCuda.cmake, cudl_cuda_architectures()):
 *   sm_XY       SASS: runs on compute capability X.Z for every Z >= Y of the
 *               same major X (sm_86 runs on 8.6, 8.7 and 8.9, not on 9.0);
 *   compute_XY  PTX: the driver JIT-compiles it for any X.Y or later;
 *   sm_XYa, compute_XYa  code for the features of X.Y alone: runs on X.Y
 *               only.
 * XY is 10 * major + minor: sm_100 is 10.0, sm_120 is 12.0.
 */
#ifndef CUDL_CUDA_ARCH_H
#define CUDL_CUDA_ARCH_H

#include <stddef.h>

#include "cudl/status.h"

#ifdef __cplusplus
extern "C" {
#endif

/* CUDL_OK when some entry of `architectures` runs on compute capability
 * major.minor, CUDL_ERR_UNSUPPORTED when none does, and
 * CUDL_ERR_INVALID_ARGUMENT when the list is NULL, has no entry or has one
 * that is not of the forms above (the whole list is checked, so a malformed
 * list is refused whatever the card), or major.minor is not a compute
 * capability (major < 1, minor outside 0-9). */
cudl_status cudl__cuda_arch_covers(const char *architectures, int major,
                                   int minor);

/* The one-line reason a card is refused because `architectures` has no
 * code for it: the card (cuda:index and its name), its compute capability,
 * the list, and the CMAKE_CUDA_ARCHITECTURES entry to rebuild with. Written
 * to out, NUL-terminated, truncated to size. */
void cudl__cuda_arch_refusal(char *out, size_t size, int index,
                             const char *name, int major, int minor,
                             const char *architectures);

#ifdef __cplusplus
}
#endif

#endif /* CUDL_CUDA_ARCH_H */
