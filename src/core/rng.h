// Counter-based random numbers: Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as
// 1, 2, 3", SC'11), the generator cuRAND and PyTorch use on GPUs.
//
// A counter-based generator is a pure function of (key, counter): draw number d of a stream keyed
// by `seed` is lane d % 4 of philox(counter = d / 4, key = seed). Nothing is stored between draws,
// so the random numbers an op used can be regenerated exactly from (seed, offset) alone — dropout's
// backward and any recomputation rely on that instead of saving a mask. The functions here are
// TG_HOST_DEVICE so that the CUDA kernels draw the very same numbers as the CPU.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>

#include "core/dtype.h"

namespace tilegrad {

using PhiloxCounter = std::array<uint32_t, 4>;
using PhiloxKey = std::array<uint32_t, 2>;

inline constexpr uint32_t kPhiloxM0 = 0xD2511F53u, kPhiloxM1 = 0xCD9E8D57u;  // multipliers
inline constexpr uint32_t kPhiloxW0 = 0x9E3779B9u, kPhiloxW1 = 0xBB67AE85u;  // key increments

// One Philox4x32 round on the counter words c0..c3 with the round key (k0, k1). Scalar words, so
// that a caller can also run it on arrays of counters side by side (kernels/cpu/vector_math.cpp).
TG_HOST_DEVICE inline void philox_round(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3,
                                        uint32_t k0, uint32_t k1) {
#if defined(__CUDA_ARCH__)
  // The high and low words as 32-bit operations, each product's pair side by side: ptxas then
  // issues one IMAD.WIDE.U32 per product. The 64-bit product below compiles to 64-bit multiplies
  // and masks on the GPU (a Philox block 104 SASS instructions on sm_80 instead of 80).
  const uint32_t hi0 = __umulhi(kPhiloxM0, c0), lo0 = kPhiloxM0 * c0;
  const uint32_t hi1 = __umulhi(kPhiloxM1, c2), lo1 = kPhiloxM1 * c2;
#else
  const uint64_t p0 = uint64_t{kPhiloxM0} * c0;
  const uint64_t p1 = uint64_t{kPhiloxM1} * c2;
  const uint32_t hi0 = static_cast<uint32_t>(p0 >> 32), lo0 = static_cast<uint32_t>(p0);
  const uint32_t hi1 = static_cast<uint32_t>(p1 >> 32), lo1 = static_cast<uint32_t>(p1);
#endif
  const uint32_t n0 = hi1 ^ c1 ^ k0;
  const uint32_t n2 = hi0 ^ c3 ^ k1;
  c1 = lo1;
  c3 = lo0;
  c0 = n0;
  c2 = n2;
}

TG_HOST_DEVICE inline PhiloxCounter philox4x32_10(PhiloxCounter ctr, PhiloxKey key) {
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      key[0] += kPhiloxW0;
      key[1] += kPhiloxW1;
    }
    philox_round(ctr[0], ctr[1], ctr[2], ctr[3], key[0], key[1]);
  }
  return ctr;
}

// The 32-bit draw number `d` of the stream keyed by `seed`.
TG_HOST_DEVICE inline uint32_t philox_draw(uint64_t seed, uint64_t d) {
  const uint64_t block = d >> 2;
  const PhiloxCounter out =
      philox4x32_10({static_cast<uint32_t>(block), static_cast<uint32_t>(block >> 32), 0u, 0u},
                    {static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32)});
  return out[d & 3];
}

// A uniform float in [0, 1) from the top 24 bits of a draw (exactly representable in float).
TG_HOST_DEVICE inline float uniform_from_bits(uint32_t bits) {
  return static_cast<float>(bits >> 8) * (1.0f / 16777216.0f);
}

// Dropout's keep test as integers, so that every device decides identically: a draw is kept iff its
// 24-bit uniform k / 2^24 is >= p, i.e. k >= ceil(p * 2^24) (exact: scaling by 2^24 rounds
// nothing).
inline uint32_t dropout_keep_threshold(double p) {
  return static_cast<uint32_t>(std::ceil(p * 16777216.0));
}
TG_HOST_DEVICE inline bool dropout_keep(uint32_t bits, uint32_t threshold) {
  return (bits >> 8) >= threshold;
}

// A stream position: draws [offset, offset + n) belong to one op call. Explicit, never global.
class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : seed_(seed), offset_(offset) {}
  uint64_t seed() const { return seed_; }
  uint64_t offset() const { return offset_; }
  // Reserves `n` draws and returns the offset of the first. Offsets stay multiples of 4, so every
  // call starts on a fresh Philox block (a GPU thread can then own whole blocks).
  uint64_t reserve(uint64_t n) {
    const uint64_t start = offset_;
    offset_ += (n + 3) / 4 * 4;
    return start;
  }
  void set_state(uint64_t seed, uint64_t offset) {
    seed_ = seed;
    offset_ = offset;
  }

 private:
  uint64_t seed_;
  uint64_t offset_;
};

}  // namespace tilegrad
