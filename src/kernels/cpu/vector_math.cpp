#include "kernels/cpu/vector_math.h"

#include <cstring>
#include <limits>

#include "core/rng.h"

namespace tilegrad::kernels::cpu {

namespace {

inline float exp_one(float x) {
  // exp(x) = 2^k · e^r with k = round(x / ln2) and r = x − k·ln2 ∈ [−ln2/2, ln2/2]; ln2 is split in
  // a high part exact in float and a low correction so that r is accurate.
  constexpr float kLog2e = 1.44269504088896341f;
  constexpr float kLn2Hi = 0.693359375f;
  constexpr float kLn2Lo = -2.12194440e-4f;
  constexpr float kRound = 12582912.0f;  // 1.5 · 2^23: adding it rounds to an integer
  const float xc = x < -87.5f ? -87.5f : (x > 88.8f ? 88.8f : x);  // beyond: 0 or inf below
  const float kf = (xc * kLog2e + kRound) - kRound;
  const float r = (xc - kf * kLn2Hi) - kf * kLn2Lo;
  // e^r by its Taylor series to degree 7: the truncation error r^8/8! < 6e-9 on |r| ≤ 0.347.
  float p = 1.0f / 5040.0f;
  p = p * r + 1.0f / 720.0f;
  p = p * r + 1.0f / 120.0f;
  p = p * r + 1.0f / 24.0f;
  p = p * r + 1.0f / 6.0f;
  p = p * r + 0.5f;
  p = p * r + 1.0f;
  p = p * r + 1.0f;
  // 2^k as two factors 2^(k/2) · 2^(k − k/2): k ∈ [−126, 128] after the clamp, and 2^128 itself
  // would not fit a float's exponent.
  const int32_t k = static_cast<int32_t>(kf);
  const int32_t k1 = k >> 1, k2 = k - k1;
  const int32_t bits1 = (k1 + 127) << 23, bits2 = (k2 + 127) << 23;
  float s1, s2;
  std::memcpy(&s1, &bits1, 4);
  std::memcpy(&s2, &bits2, 4);
  float y = (p * s1) * s2;
  y = x < -87.33654f ? 0.0f : y;
  y = x > 88.72283f ? std::numeric_limits<float>::infinity() : y;
  return x != x ? x : y;  // NaN in, NaN out
}

constexpr float kGeluK = 0.7978845608028654f;  // sqrt(2 / pi)
constexpr float kGeluA = 0.044715f;

// 1 / (1 + exp(-2u)) = (1 + tanh u) / 2 for GELU's u(x). For x far below 0 the exp overflows to
// inf and s is 0; far above, the exp is 0 and s is 1: the limits of tanh, without a branch.
inline float gelu_s(float x) {
  const float u = kGeluK * (x + kGeluA * x * x * x);
  return 1.0f / (1.0f + exp_one(-2.0f * u));
}

}  // namespace

__attribute__((target_clones("arch=x86-64-v3", "default"))) void gelu_f32(const float* x, float* y,
                                                                          int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) y[i] = x[i] * gelu_s(x[i]);
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void gelu_backward_f32(const float* gy,
                                                                                   const float* x,
                                                                                   float* gx,
                                                                                   int64_t n) {
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) {
    const float v = x[i], s = gelu_s(v);
    const float du = kGeluK * (1.0f + 3.0f * kGeluA * v * v);
    gx[i] = gy[i] * (s + 2.0f * v * s * (1.0f - s) * du);
  }
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void philox_draws(uint64_t seed,
                                                                              uint64_t d0,
                                                                              int64_t n,
                                                                              uint32_t* out) {
  int64_t i = 0;
  uint64_t d = d0;
  for (; i < n && (d & 3) != 0; ++i, ++d) out[i] = philox_draw(seed, d);  // to a block boundary
  // Eight blocks (32 draws) at a time in structure-of-arrays form: each round is then the same
  // 32x32->64 multiplies and xors on eight lanes, which the compiler turns into vector code.
  constexpr int kLanes = 8;
  for (; i + 4 * kLanes <= n; i += 4 * kLanes, d += 4 * kLanes) {
    const uint64_t block0 = d >> 2;
    uint32_t c0[kLanes], c1[kLanes], c2[kLanes], c3[kLanes];
    for (int l = 0; l < kLanes; ++l) {
      const uint64_t block = block0 + static_cast<uint64_t>(l);
      c0[l] = static_cast<uint32_t>(block);
      c1[l] = static_cast<uint32_t>(block >> 32);
      c2[l] = 0;
      c3[l] = 0;
    }
    uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
    for (int round = 0; round < 10; ++round) {
      if (round > 0) {
        k0 += kPhiloxW0;
        k1 += kPhiloxW1;
      }
      for (int l = 0; l < kLanes; ++l) philox_round(c0[l], c1[l], c2[l], c3[l], k0, k1);
    }
    for (int l = 0; l < kLanes; ++l) {
      out[i + 4 * l] = c0[l];
      out[i + 4 * l + 1] = c1[l];
      out[i + 4 * l + 2] = c2[l];
      out[i + 4 * l + 3] = c3[l];
    }
  }
  for (; i < n; ++i, ++d) out[i] = philox_draw(seed, d);
}

__attribute__((target_clones("arch=x86-64-v3", "default"))) void exp_f32(const float* x, float* y,
                                                                         int64_t n) {
  // y[i] depends on x[i] alone, so even in place (x == y) there is no loop-carried dependence.
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) y[i] = exp_one(x[i]);
}

}  // namespace tilegrad::kernels::cpu
