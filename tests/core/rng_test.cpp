// The Philox4x32-10 generator against the published Random123 known-answer vectors, and the
// Generator's draw bookkeeping.
#include <cmath>
#include <iterator>

#include "testing.h"

namespace tgtest {
namespace {

struct PhiloxKat {
  PhiloxCounter ctr;
  PhiloxKey key;
  PhiloxCounter expected;
};

// The "philox4x32 10" rows of Random123's tests/kat_vectors.
const PhiloxKat kKat[] = {
    {{0u, 0u, 0u, 0u}, {0u, 0u}, {0x6627e8d5u, 0xe169c58du, 0xbc57ac4cu, 0x9b00dbd8u}},
    {{0xffffffffu, 0xffffffffu, 0xffffffffu, 0xffffffffu},
     {0xffffffffu, 0xffffffffu},
     {0x408f276du, 0x41c83b0eu, 0xa20bc7c6u, 0x6d5451fdu}},
    {{0x243f6a88u, 0x85a308d3u, 0x13198a2eu, 0x03707344u},
     {0xa4093822u, 0x299f31d0u},
     {0xd16cfe09u, 0x94fdccebu, 0x5001e420u, 0x24126ea1u}},
};

TEST(Philox, MatchesRandom123KnownAnswers) {
  for (const PhiloxKat& k : kKat) {
    const PhiloxCounter out = philox4x32_10(k.ctr, k.key);
    for (int lane = 0; lane < 4; ++lane) {
      EXPECT_EQ(out[lane], k.expected[lane])
          << "lane " << lane << " of ctr " << std::hex << k.ctr[0] << " key " << k.key[0];
    }
  }
}

TEST(Philox, DrawIsALaneOfTheBlockAtDrawOverFour) {
  // Draw d of stream `seed` is lane d % 4 of the block with the 64-bit counter d / 4 in words 0-1
  // and the 64-bit seed as the key; a counter above 2^32 must reach word 1.
  const uint64_t seed = 0x0123456789abcdefull;
  const PhiloxKey key = {0x89abcdefu, 0x01234567u};
  for (uint64_t block : {uint64_t{0}, uint64_t{1}, uint64_t{0x1'0000'0002}}) {
    const PhiloxCounter out = philox4x32_10(
        {static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u}, key);
    for (uint64_t lane = 0; lane < 4; ++lane) {
      EXPECT_EQ(philox_draw(seed, 4 * block + lane), out[lane]) << block << " " << lane;
    }
  }
  EXPECT_NE(philox_draw(seed, 0), philox_draw(seed + 1, 0));
  EXPECT_NE(philox_draw(seed, 0), philox_draw(seed, 4));
}

TEST(Philox, UniformCoversZeroToOneExclusive) {
  EXPECT_EQ(uniform_from_bits(0u), 0.0f);
  EXPECT_EQ(uniform_from_bits(0xffu), 0.0f);  // the low 8 bits are dropped
  EXPECT_EQ(uniform_from_bits(0x100u), 0x1p-24f);
  EXPECT_EQ(uniform_from_bits(0xffffffffu), 1.0f - 0x1p-24f);
  EXPECT_LT(uniform_from_bits(0xffffffffu), 1.0f);
  // Mean of many draws near 1/2 (std of the mean = 1/sqrt(12 n) ~ 0.0009 for n = 1e5).
  double s = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) s += uniform_from_bits(philox_draw(9, static_cast<uint64_t>(i)));
  EXPECT_NEAR(s / n, 0.5, 0.005);
}

TEST(Generator, ReserveAdvancesInWholeBlocks) {
  Generator gen(77);
  EXPECT_EQ(gen.seed(), 77u);
  EXPECT_EQ(gen.offset(), 0u);
  const uint64_t ns[] = {5, 1, 4, 0, 3, 1000001, 8};
  const uint64_t starts[] = {0, 8, 12, 16, 16, 20, 1000024};
  for (size_t i = 0; i < std::size(ns); ++i) {
    const uint64_t before = gen.offset();
    EXPECT_EQ(gen.reserve(ns[i]), starts[i]) << i;
    EXPECT_EQ(gen.offset() % 4, 0u) << i;
    EXPECT_GE(gen.offset(), before + ns[i]) << i;  // the reserved draws are never handed out again
    EXPECT_LT(gen.offset(), before + ns[i] + 4) << i;
  }
  EXPECT_EQ(gen.offset(), 1000032u);
  gen.set_state(5, 40);
  EXPECT_EQ(gen.seed(), 5u);
  EXPECT_EQ(gen.reserve(2), 40u);
  EXPECT_EQ(gen.offset(), 44u);
}

}  // namespace
}  // namespace tgtest
