/*
 * cuda_probe.cu - a kernel that never runs, for asking the driver whether
 * this build's GPU code loads on a card (cuda_probe.c, at context
 * creation). Every CUDA file of the library is compiled for the same
 * architectures, so what holds for this kernel holds for all of them.
 */
#include "cuda/cuda_probe.h"

namespace {

__global__ void probe_kernel() {}

}  // namespace

extern "C" const void *cudl__cuda_probe_kernel(void) {
  return reinterpret_cast<const void *>(&probe_kernel);
}
