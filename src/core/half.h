/*
 * half.h - f32 <-> bf16 and f32 <-> f16 on the host, bit by bit, rounding
 * to nearest with ties to even as the GPU's conversion instructions do,
 * and like them turning every NaN into the canonical 0x7fff (so a 16-bit
 * NaN has the same bits on every device); overflow gives an infinity; f16
 * keeps its subnormals. Integer code, so it needs no compiler support for
 * 16-bit floats and gives the same bits everywhere.
 */
#ifndef CUDL_HALF_H
#define CUDL_HALF_H

#include <stdint.h>
#include <string.h>

static inline uint32_t cudl__f32_bits(float f) {
  uint32_t u;
  memcpy(&u, &f, sizeof u);
  return u;
}

static inline float cudl__f32_from_bits(uint32_t u) {
  float f;
  memcpy(&f, &u, sizeof f);
  return f;
}

/* bf16 is the top half of an f32: widening is exact. */
static inline float cudl__bf16_to_f32(uint16_t h) {
  return cudl__f32_from_bits((uint32_t)h << 16);
}

static inline uint16_t cudl__f32_to_bf16(float f) {
  const uint32_t u = cudl__f32_bits(f);
  /* Adding 0x7fff plus the lowest kept bit carries into the kept half
   * exactly when the dropped half is above one half, or equal to it with
   * the kept half odd; a carry out of the largest finite gives infinity.
   * NaN by a select rather than a branch, so that loops vectorise. */
  const uint32_t rounded = (u + 0x7fffu + ((u >> 16) & 1u)) >> 16;
  return (uint16_t)((u & 0x7fffffffu) > 0x7f800000u ? 0x7fffu : rounded);
}

static inline float cudl__f16_to_f32(uint16_t h) {
  const uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
  const uint32_t exponent = (h >> 10) & 0x1fu, mantissa = h & 0x3ffu;
  if (exponent == 0) { /* zero or subnormal: mantissa * 2^-24, exact */
    const float magnitude = (float)mantissa * 0x1p-24f;
    return sign ? -magnitude : magnitude;
  }
  if (exponent == 31) /* infinity or NaN */
    return cudl__f32_from_bits(sign | 0x7f800000u | (mantissa << 13));
  return cudl__f32_from_bits(sign | ((exponent + 112u) << 23) |
                             (mantissa << 13));
}

static inline uint16_t cudl__f32_to_f16(float f) {
  const uint32_t u = cudl__f32_bits(f);
  const uint16_t sign = (uint16_t)((u >> 16) & 0x8000u);
  const uint32_t a = u & 0x7fffffffu;
  if (a > 0x7f800000u) return 0x7fffu; /* NaN */
  /* 65520 = 65504 (the largest f16) + half a step, a tie that rounds to
   * the even 65536: infinity from there up. */
  if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00u);
  if (a >= 0x38800000u) { /* normal in f16 (>= 2^-14) */
    /* Rebias the exponent (127 -> 15) and round the mantissa from 23 to
     * 10 bits as in cudl__f32_to_bf16; a carry moves into the exponent,
     * which is the right result. */
    const uint32_t rebased = a - 0x38000000u;
    return (uint16_t)(sign |
                      ((rebased + 0xfffu + ((rebased >> 13) & 1u)) >> 13));
  }
  if (a <= 0x33000000u) return sign; /* at most 2^-25: rounds to 0 */
  {
    /* Subnormal: round(|f| * 2^24) with ties to even, from the full
     * mantissa m (|f| = m * 2^(e - 150)); the shift is 126 - e, 14..24. */
    const uint32_t m = (a & 0x7fffffu) | 0x800000u;
    const unsigned shift = 126u - (a >> 23);
    const uint32_t rest = m & ((1u << shift) - 1u), half = 1u << (shift - 1);
    uint32_t r = m >> shift;
    if (rest > half || (rest == half && (r & 1u))) ++r;
    return (uint16_t)(sign | r); /* r == 0x400 is 2^-14, correctly */
  }
}

#endif /* CUDL_HALF_H */
