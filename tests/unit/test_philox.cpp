// test_philox.cpp - the Philox4x32-10 generator and the integer-to-float
// maps of core/philox.h, the one header the CPU and CUDA backends share.
#include <gtest/gtest.h>

#include <cfloat>
#include <cmath>
#include <cstdint>
#include <limits>
#include <set>
#include <vector>

#include "core/philox.h"
#include "test_util.h"

namespace {

struct Kat {
  uint32_t counter[4];
  uint32_t key[2];
  uint32_t expected[4];
};

// Known-answer vectors for philox4x32_10 from Random123's kat_vectors
// (Salmon et al.): counter, key -> output.
const Kat kKats[] = {
    {{0x00000000u, 0x00000000u, 0x00000000u, 0x00000000u},
     {0x00000000u, 0x00000000u},
     {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
     {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
     {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};

TEST(Philox, Random123KnownAnswers) {
  for (const Kat &kat : kKats) {
    cudl_philox_block ctr;
    for (int i = 0; i < 4; ++i) ctr.v[i] = kat.counter[i];
    const cudl_philox_block out = cudl_philox4x32_10(ctr, kat.key[0], kat.key[1]);
    for (int i = 0; i < 4; ++i)
      EXPECT_EQ(out.v[i], kat.expected[i])
          << std::hex << "word " << i << " for counter " << kat.counter[0]
          << " key " << kat.key[0];
  }
}

TEST(Philox, MulHiLo) {
  uint32_t hi = 0;
  // 0xffffffff^2 = 0xfffffffe00000001
  EXPECT_EQ(cudl_philox_mulhilo(0xffffffffu, 0xffffffffu, &hi), 0x00000001u);
  EXPECT_EQ(hi, 0xfffffffeu);
  EXPECT_EQ(cudl_philox_mulhilo(CUDL_PHILOX_M0, 0x12345678u, &hi),
            static_cast<uint32_t>(uint64_t{CUDL_PHILOX_M0} * 0x12345678u));
  EXPECT_EQ(hi, static_cast<uint32_t>((uint64_t{CUDL_PHILOX_M0} * 0x12345678u) >> 32));
  EXPECT_EQ(cudl_philox_mulhilo(0u, 0xffffffffu, &hi), 0u);
  EXPECT_EQ(hi, 0u);
}

TEST(Philox, EveryCounterAndKeyWordMatters) {
  // Flipping one bit of any input word changes the output (a dropped word
  // in the round function would leave it unchanged).
  cudl_philox_block base;
  base.v[0] = 0x01234567u;
  base.v[1] = 0x89abcdefu;
  base.v[2] = 0x0badf00du;
  base.v[3] = 0xdeadbeefu;
  const uint32_t k0 = 0x11111111u, k1 = 0x22222222u;
  const cudl_philox_block ref = cudl_philox4x32_10(base, k0, k1);
  for (int w = 0; w < 4; ++w) {
    cudl_philox_block c = base;
    c.v[w] ^= 0x80000000u;
    const cudl_philox_block out = cudl_philox4x32_10(c, k0, k1);
    int differing = 0;
    for (int i = 0; i < 4; ++i) differing += out.v[i] != ref.v[i];
    EXPECT_GE(differing, 3) << "counter word " << w;
  }
  const cudl_philox_block a = cudl_philox4x32_10(base, k0 ^ 1u, k1);
  const cudl_philox_block b = cudl_philox4x32_10(base, k0, k1 ^ 1u);
  int da = 0, db = 0;
  for (int i = 0; i < 4; ++i) {
    da += a.v[i] != ref.v[i];
    db += b.v[i] != ref.v[i];
  }
  EXPECT_GE(da, 3) << "key word 0";
  EXPECT_GE(db, 3) << "key word 1";
}

TEST(Philox, AtPacksIndexIntoCounterAndSeedIntoKey) {
  // Indices and seeds whose two halves differ, so a swapped or dropped half
  // shows up.
  const uint64_t seeds[] = {0, 1, 0xfedcba9876543210ull, 0x00000001ffffffffull,
                            0xffffffff00000000ull, UINT64_MAX};
  const uint64_t indices[] = {0, 1, 0xffffffffull, 0x100000000ull,
                              0x0123456789abcdefull, UINT64_MAX};
  for (uint64_t seed : seeds) {
    for (uint64_t index : indices) {
      cudl_philox_block ctr;
      ctr.v[0] = static_cast<uint32_t>(index & 0xffffffffu);
      ctr.v[1] = static_cast<uint32_t>(index >> 32);
      ctr.v[2] = 0;
      ctr.v[3] = 0;
      const cudl_philox_block want = cudl_philox4x32_10(
          ctr, static_cast<uint32_t>(seed & 0xffffffffu), static_cast<uint32_t>(seed >> 32));
      const cudl_philox_block got = cudl_philox_at(seed, index);
      for (int i = 0; i < 4; ++i)
        EXPECT_EQ(got.v[i], want.v[i])
            << std::hex << "seed " << seed << " index " << index << " word " << i;
    }
  }
}

TEST(Philox, AtKnownAnswerThroughLayout) {
  // cudl_philox_at(0, 0) is counter (0,0,0,0) key (0,0): the first KAT.
  const cudl_philox_block r = cudl_philox_at(0, 0);
  EXPECT_EQ(r.v[0], 0x6627e8d5u);
  EXPECT_EQ(r.v[1], 0xe169c58du);
  EXPECT_EQ(r.v[2], 0xbc57ac4cu);
  EXPECT_EQ(r.v[3], 0x9b00dbd8u);
}

TEST(Philox, AtDistinctIndicesGiveDistinctBlocks) {
  // 4096 consecutive blocks, plus blocks straddling the 2^32 boundary: all
  // first words distinct (a 32-bit-index bug would repeat blocks; the
  // chance of an accidental collision among ~4100 random 32-bit words is
  // about 4100^2 / 2^33 = 0.2%, so this compares whole 128-bit blocks).
  std::set<std::vector<uint32_t>> seen;
  auto add = [&](uint64_t index) {
    const cudl_philox_block r = cudl_philox_at(42, index);
    return seen.insert({r.v[0], r.v[1], r.v[2], r.v[3]}).second;
  };
  for (uint64_t i = 0; i < 4096; ++i) EXPECT_TRUE(add(i)) << i;
  EXPECT_TRUE(add(0x100000000ull)) << "index 2^32 repeats index 0";
  EXPECT_TRUE(add(0x100000001ull)) << "index 2^32+1 repeats index 1";
}

TEST(Philox, UnitMapRange) {
  // [0, 1): 0 -> 0 exactly; 0xffffffff -> 1 - 2^-24, the largest value,
  // exactly (24 bits fit a float mantissa) and below 1.
  EXPECT_EQ(cudl_uint_to_unit(0u), 0.0f);
  EXPECT_EQ(cudl_uint_to_unit(0xffffffffu), 1.0f - 5.9604644775390625e-08f);
  EXPECT_LT(cudl_uint_to_unit(0xffffffffu), 1.0f);
  // The low 8 bits are dropped; bit 8 is the least significant one kept.
  EXPECT_EQ(cudl_uint_to_unit(0x000000ffu), 0.0f);
  EXPECT_EQ(cudl_uint_to_unit(0x00000100u), 5.9604644775390625e-08f);
  EXPECT_EQ(cudl_uint_to_unit(0x80000000u), 0.5f);
}

TEST(Philox, UnitOpen0MapRange) {
  // (0, 1]: 0 -> 2^-24 (never 0, so log() is finite); 0xffffffff -> 1.
  EXPECT_EQ(cudl_uint_to_unit_open0(0u), 5.9604644775390625e-08f);
  EXPECT_GT(cudl_uint_to_unit_open0(0u), 0.0f);
  EXPECT_EQ(cudl_uint_to_unit_open0(0xffffffffu), 1.0f);
  EXPECT_EQ(cudl_uint_to_unit_open0(0x7fffffffu), 0.5f);
}

TEST(Philox, UnitMapsOverSampledWords) {
  // Every top-24-bit pattern maps to k * 2^-24 exactly; check a stride
  // through all 2^24 of them plus the ends.
  for (uint32_t k = 0; k < (1u << 24); k += 4099u) {
    const uint32_t x = (k << 8) | 0xabu;  // low bits must not matter
    const float u = cudl_uint_to_unit(x);
    const float v = cudl_uint_to_unit_open0(x);
    ASSERT_EQ(u, static_cast<float>(k) * cudl_test::kTwoPowMinus24f) << k;
    ASSERT_EQ(v, static_cast<float>(k + 1) * cudl_test::kTwoPowMinus24f) << k;
    ASSERT_GE(u, 0.0f);
    ASSERT_LT(u, 1.0f);
    ASSERT_GT(v, 0.0f);
    ASSERT_LE(v, 1.0f);
  }
}

TEST(Philox, UniformFromBitsNeverReturnsHigh) {
  // [1, 2): u = 1 - 2^-24 gives fmaf(u, 1, 1) = 2 - 2^-24, a tie between
  // 2 - 2^-23 and 2 that rounds to even: 2.0 = high. The map must move it
  // to the float below high.
  const float below_two = std::nextafter(2.0f, 1.0f);
  EXPECT_EQ(cudl_uniform_from_bits(0xffffffffu, 1.0f, 2.0f), below_two);
  EXPECT_LT(cudl_uniform_from_bits(0xffffffffu, 1.0f, 2.0f), 2.0f);
  // A range far narrower than one ulp of low: everything rounds to low or
  // high; high must never come out.
  const float lo = 1000.0f, hi = std::nextafter(1000.0f, 2000.0f);
  for (uint32_t x : {0u, 0x7fffff00u, 0x80000000u, 0xfffffe00u, 0xffffffffu}) {
    const float r = cudl_uniform_from_bits(x, lo, hi);
    EXPECT_GE(r, lo) << std::hex << x;
    EXPECT_LT(r, hi) << std::hex << x;
  }
  // Extremes of the word on an ordinary range.
  EXPECT_EQ(cudl_uniform_from_bits(0u, -3.0f, 5.0f), -3.0f);
  EXPECT_LT(cudl_uniform_from_bits(0xffffffffu, -3.0f, 5.0f), 5.0f);
  EXPECT_EQ(cudl_uniform_from_bits(0x80000000u, -3.0f, 5.0f), 1.0f);
}

TEST(Philox, UniformFromBitsEmptyRangeGivesLow) {
  // low == high is allowed by cudl_tensor_uniform; every word gives low.
  for (uint32_t x : {0u, 0x12345678u, 0xffffffffu})
    EXPECT_EQ(cudl_uniform_from_bits(x, 0.25f, 0.25f), 0.25f);
}

TEST(Philox, UniformFromBitsMatchesDocumentedFormula) {
  // fmaf(u, high - low, low), clamped below high: compare bit for bit over
  // a sweep of words and several ranges.
  const float ranges[][2] = {{0.0f, 1.0f},   {-1.0f, 1.0f},     {1.0f, 2.0f},
                             {-1e-3f, 3e5f}, {-7.5f, -7.25f},   {1e30f, 3e30f},
                             {-FLT_MAX / 2, FLT_MAX / 2}};
  for (const auto &rg : ranges) {
    // 64-bit loop counter: a 32-bit one would wrap and never end.
    for (uint64_t x64 = 0; x64 <= 0xffffffffu; x64 += 0x00f1f1f1u) {
      const uint32_t x = static_cast<uint32_t>(x64);
      const float got = cudl_uniform_from_bits(x, rg[0], rg[1]);
      const float want = cudl_test::ReferenceUniformFromBits(x, rg[0], rg[1]);
      ASSERT_EQ(cudl_test::FloatBits(got), cudl_test::FloatBits(want))
          << std::hex << "x " << x << std::dec << " range [" << rg[0] << ", " << rg[1] << ")";
      ASSERT_GE(got, rg[0]);
      ASSERT_LT(got, rg[1]);
    }
    const float top = cudl_uniform_from_bits(0xffffffffu, rg[0], rg[1]);
    EXPECT_LT(top, rg[1]);
    EXPECT_EQ(cudl_test::FloatBits(top),
              cudl_test::FloatBits(cudl_test::ReferenceUniformFromBits(0xffffffffu, rg[0], rg[1])));
  }
}

TEST(Philox, NormalFromBitsMatchesDocumentedBoxMuller) {
  // Bit for bit against the test's own double-precision Box-Muller on
  // a sweep of word pairs (same libm on both sides, one rounding each).
  for (uint64_t a64 = 0; a64 <= 0xffffffffu; a64 += 0x00a0a0a1u) {
    for (uint64_t b64 = 0x00000fffu; b64 <= 0xffffffffu; b64 += 0x01f1f1f3u) {
      const uint32_t a = static_cast<uint32_t>(a64), b = static_cast<uint32_t>(b64);
      for (int which = 0; which < 2; ++which) {
        const float got = cudl_normal_from_bits(a, b, which, 0.5f, 2.0f);
        const float want = cudl_test::ReferenceNormalFromBits(a, b, which, 0.5f, 2.0f);
        ASSERT_EQ(cudl_test::FloatBits(got), cudl_test::FloatBits(want))
            << std::hex << a << " " << b << " which " << which;
      }
    }
  }
}

TEST(Philox, NormalFromBitsExtremes) {
  // a = 0: u1 = 2^-24, the largest radius, sqrt(48 ln 2) = 5.7683...;
  // b = 0: angle 0, so cos gives +radius and sin gives 0 exactly.
  const double rmax = std::sqrt(-2.0 * std::log(5.9604644775390625e-08));
  EXPECT_EQ(cudl_normal_from_bits(0u, 0u, 0, 0.0f, 1.0f), static_cast<float>(rmax));
  EXPECT_EQ(cudl_normal_from_bits(0u, 0u, 1, 0.0f, 1.0f), 0.0f);
  // a = 0xffffffff: u1 = 1, radius 0: both outputs are the mean exactly.
  EXPECT_EQ(cudl_normal_from_bits(0xffffffffu, 0x12345678u, 0, 3.0f, 2.0f), 3.0f);
  EXPECT_EQ(cudl_normal_from_bits(0xffffffffu, 0x12345678u, 1, 3.0f, 2.0f), 3.0f);
  // stddev 0: the mean exactly, for any words.
  EXPECT_EQ(cudl_normal_from_bits(0u, 0x40000000u, 0, -1.5f, 0.0f), -1.5f);
  // Every output is finite and |z| <= rmax.
  for (uint32_t a : {0u, 1u, 0xffu, 0x100u, 0x80000000u, 0xffffffffu}) {
    for (uint32_t b : {0u, 0x40000000u, 0x80000000u, 0xc0000000u, 0xffffffffu}) {
      for (int which = 0; which < 2; ++which) {
        const float z = cudl_normal_from_bits(a, b, which, 0.0f, 1.0f);
        EXPECT_TRUE(std::isfinite(z));
        EXPECT_LE(std::fabs(static_cast<double>(z)), rmax * (1 + 1e-7));
      }
    }
  }
}

}  // namespace
