/*
 * philox.h - Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy
 * as 1, 2, 3", SC'11) and the integer-to-float maps built on it.
 *
 * Compiled for the host (C99) and for CUDA devices from this one text, so
 * the CPU and CUDA backends draw bit-identical numbers: everything here is
 * integer arithmetic or a single correctly rounded float operation.
 */
#ifndef CUDL_PHILOX_H
#define CUDL_PHILOX_H

#include <math.h>
#include <stdint.h>

#if defined(__CUDACC__)
#  define CUDL_HD __host__ __device__ __forceinline__
#else
#  define CUDL_HD static inline
#endif

#define CUDL_PHILOX_M0 0xD2511F53u
#define CUDL_PHILOX_M1 0xCD9E8D57u
#define CUDL_PHILOX_W0 0x9E3779B9u
#define CUDL_PHILOX_W1 0xBB67AE85u

typedef struct cudl_philox_block {
  uint32_t v[4];
} cudl_philox_block;

CUDL_HD uint32_t cudl_philox_mulhilo(uint32_t a, uint32_t b, uint32_t *hi) {
  uint64_t product = (uint64_t)a * (uint64_t)b;
  *hi = (uint32_t)(product >> 32);
  return (uint32_t)product;
}

/** Ten rounds of Philox4x32 on counter ctr with key (k0, k1). */
CUDL_HD cudl_philox_block cudl_philox4x32_10(cudl_philox_block ctr, uint32_t k0,
                                             uint32_t k1) {
  int round;
  for (round = 0; round < 10; ++round) {
    uint32_t hi0, hi1;
    uint32_t lo0 = cudl_philox_mulhilo(CUDL_PHILOX_M0, ctr.v[0], &hi0);
    uint32_t lo1 = cudl_philox_mulhilo(CUDL_PHILOX_M1, ctr.v[2], &hi1);
    cudl_philox_block next;
    next.v[0] = hi1 ^ ctr.v[1] ^ k0;
    next.v[1] = lo1;
    next.v[2] = hi0 ^ ctr.v[3] ^ k1;
    next.v[3] = lo0;
    ctr = next;
    k0 += CUDL_PHILOX_W0;
    k1 += CUDL_PHILOX_W1;
  }
  return ctr;
}

/** The block cudl uses for stream position `block_index` under `seed`:
 *  counter = (index low, index high, 0, 0), key = (seed low, seed high). */
CUDL_HD cudl_philox_block cudl_philox_at(uint64_t seed, uint64_t block_index) {
  cudl_philox_block ctr;
  ctr.v[0] = (uint32_t)block_index;
  ctr.v[1] = (uint32_t)(block_index >> 32);
  ctr.v[2] = 0;
  ctr.v[3] = 0;
  return cudl_philox4x32_10(ctr, (uint32_t)seed, (uint32_t)(seed >> 32));
}

/** [0, 1) with 24 random bits: exact in float, never 1. */
CUDL_HD float cudl_uint_to_unit(uint32_t x) {
  return (float)(x >> 8) * 5.9604644775390625e-08f; /* 2^-24 */
}

/** (0, 1] with 24 random bits: safe for log(). */
CUDL_HD float cudl_uint_to_unit_open0(uint32_t x) {
  return (float)((x >> 8) + 1u) * 5.9604644775390625e-08f;
}

/** The dropout keep test: keep when the word's [0, 1) number is >= p, so
 *  p = 0 keeps all and p = 1 keeps none. */
CUDL_HD int cudl_dropout_keep(uint32_t x, float p) {
  return cudl_uint_to_unit(x) >= p;
}

/** A uniform number in [low, high) from one 32-bit word. One fused
 *  multiply-add (correctly rounded on both devices); a result rounded up to
 *  high is moved to the float just below it. */
CUDL_HD float cudl_uniform_from_bits(uint32_t x, float low, float high) {
  float r = fmaf(cudl_uint_to_unit(x), high - low, low);
  return (r >= high && low < high) ? nextafterf(high, low) : r;
}

/** Normal number `which` (0 or 1) of the Box-Muller pair made from words a
 *  and b. Computed in double, scaled with one fused multiply-add, rounded
 *  to float once. */
CUDL_HD float cudl_normal_from_bits(uint32_t a, uint32_t b, int which,
                                    float mean, float stddev) {
  const double two_pi = 6.283185307179586476925286766559;
  double radius = sqrt(-2.0 * log((double)cudl_uint_to_unit_open0(a)));
  double angle = two_pi * (double)cudl_uint_to_unit(b);
  double z = radius * (which == 0 ? cos(angle) : sin(angle));
  return (float)fma((double)stddev, z, (double)mean);
}

#endif /* CUDL_PHILOX_H */
