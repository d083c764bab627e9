#include "kernels/cpu/vector_math.h"

#include <cstring>
#include <limits>

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

}  // namespace

__attribute__((target_clones("arch=x86-64-v3", "default"))) void exp_f32(const float* x, float* y,
                                                                         int64_t n) {
  // y[i] depends on x[i] alone, so even in place (x == y) there is no loop-carried dependence.
#pragma GCC ivdep
  for (int64_t i = 0; i < n; ++i) y[i] = exp_one(x[i]);
}

}  // namespace tilegrad::kernels::cpu
