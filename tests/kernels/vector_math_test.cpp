// exp_f32 against float64 exp: ≤ 2 ulp over the whole normal range, exact edge behaviour; the
// vectorised GELU and its derivative against float64; batched Philox draws against philox_draw.
#include <cmath>
#include <limits>
#include <vector>

#include "core/rng.h"
#include "kernels/cpu/vector_math.h"
#include "testing.h"

namespace tgtest {
namespace {

TEST(VectorMath, ExpWithinTwoUlpOverTheNormalRange) {
  Generator gen(77);
  const auto u = rand_uniform({400000}, gen, -87.3, 88.7, {DType::f64}).to_vector<double>();
  std::vector<float> x(u.begin(), u.end()), y(x.size());
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1.0f, -1.0f, 0.5f, 88.72f, -87.33f}) x.push_back(v);
  y.resize(x.size());
  kernels::cpu::exp_f32(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = std::exp(static_cast<double>(x[i]));
    const double ulp = std::ldexp(1.0, std::ilogb(ref) - 23);
    ASSERT_LE(std::abs(y[i] - ref), 2 * ulp) << "x = " << x[i];
  }
}

TEST(VectorMath, ExpEdgeCases) {
  const float inf = std::numeric_limits<float>::infinity();
  std::vector<float> x = {
      -inf, -1000.0f, -88.0f, 89.0f, 1000.0f, inf, std::numeric_limits<float>::quiet_NaN()};
  std::vector<float> y(x.size());
  kernels::cpu::exp_f32(x.data(), y.data(), static_cast<int64_t>(x.size()));
  EXPECT_EQ(y[0], 0.0f);
  EXPECT_EQ(y[1], 0.0f);
  EXPECT_EQ(y[2], 0.0f);  // true value 6e-39 is subnormal: flushed
  EXPECT_EQ(y[3], inf);
  EXPECT_EQ(y[4], inf);
  EXPECT_EQ(y[5], inf);
  EXPECT_TRUE(std::isnan(y[6]));
}

TEST(VectorMath, ExpOpUsesItAndStaysAccurate) {
  const Tensor x = rnd({1000, 37}, 78, DType::f32, -20.0, 20.0);
  const auto got = tilegrad::exp(x).to_vector<double>();
  const auto vx = x.to_vector<double>();
  for (size_t i = 0; i < vx.size(); ++i) {
    EXPECT_NEAR(got[i], std::exp(vx[i]), 2.5e-7 * std::exp(vx[i]));
  }
}

// GELU (tanh form) and its derivative in float64, the references. 0.5 x (1 + tanh u) is written
// x / (1 + e^(-2u)): the same function, without the cancellation of 1 + tanh u for u << 0 (where
// even float64 returns 0 for results near 1e-29).
double gelu_u(double x) {
  return std::sqrt(2.0 / M_PI) * (x + 0.044715 * x * x * x);
}
double gelu64(double x) {
  return x / (1.0 + std::exp(-2.0 * gelu_u(x)));
}
double gelu_grad64(double x) {
  const double s = 1.0 / (1.0 + std::exp(-2.0 * gelu_u(x)));  // (1 + tanh u) / 2
  const double du = std::sqrt(2.0 / M_PI) * (1.0 + 3.0 * 0.044715 * x * x);
  return s + 2.0 * x * s * (1.0 - s) * du;
}
// Float's error bound: u is computed in float (five roundings, a relative error up to ~3 · 2^-24),
// which becomes an error of 2 |u| times that in e^(-2u), and reaches the result wherever e^(-2u)
// matters. Results within a factor 100 of float's smallest normal go through subnormal
// intermediates or are flushed (exp_f32 flushes subnormals): an absolute allowance there.
double gelu_tolerance(double x) {
  return 1e-6 + 4e-7 * std::abs(gelu_u(x));
}
constexpr double kFlush = 100.0 * std::numeric_limits<float>::min();

// Inputs over GELU's interesting range plus zeros, tiny and huge values (where x³ overflows).
std::vector<float> gelu_inputs() {
  Generator gen(79);
  const auto u = rand_uniform({200000}, gen, -12.0, 12.0, {DType::f64}).to_vector<double>();
  std::vector<float> x(u.begin(), u.end());
  for (float v : {0.0f, -0.0f, 1e-30f, -1e-30f, 1e-3f, -1e-3f, 1.0f, -1.0f, 30.0f, -30.0f, 1e4f,
                  -1e4f, 1e13f, -1e13f}) {
    x.push_back(v);
  }
  return x;
}

// The tolerance is float's: u itself is rounded to float before the exponential (as the scalar
// tanhf version rounds it), so the error is relative to the result, plus a tiny absolute part
// where the result underflows towards 0 on the far negative side.
TEST(VectorMath, GeluMatchesFloat64) {
  const std::vector<float> x = gelu_inputs();
  std::vector<float> y(x.size());
  kernels::cpu::gelu_f32(x.data(), y.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    const double ref = gelu64(x[i]);
    ASSERT_LE(std::abs(y[i] - ref), gelu_tolerance(x[i]) * std::abs(ref) + kFlush)
        << "x = " << x[i];
  }
  std::vector<float> z = {std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN()};
  kernels::cpu::gelu_f32(z.data(), z.data(), 2);  // in place
  EXPECT_EQ(z[0], std::numeric_limits<float>::infinity());
  EXPECT_TRUE(std::isnan(z[1]));
}

TEST(VectorMath, GeluBackwardMatchesFloat64) {
  const std::vector<float> x = gelu_inputs();
  Generator gen(80);
  const auto g64 = rand_uniform({static_cast<int64_t>(x.size())}, gen, -2.0, 2.0, {DType::f64})
                       .to_vector<double>();
  std::vector<float> g(g64.begin(), g64.end()), gx(x.size());
  kernels::cpu::gelu_backward_f32(g.data(), x.data(), gx.data(), static_cast<int64_t>(x.size()));
  for (size_t i = 0; i < x.size(); ++i) {
    if (std::abs(x[i]) > 1e6f) {  // 1 or 0 exactly: s is 0 or 1 and s (1 - s) vanishes
      EXPECT_EQ(gx[i], x[i] > 0 ? g[i] : 0.0f) << "x = " << x[i];
      continue;
    }
    const double ref = g[i] * gelu_grad64(x[i]);
    // GELU' reaches -0.17 near x = -2.4 after crossing 0 near -0.75: absolute near the crossing.
    ASSERT_LE(std::abs(gx[i] - ref), 2e-6 * std::abs(ref) + 2e-7 * std::abs(g[i]))
        << "x = " << x[i];
  }
}

TEST(VectorMath, GeluOpsUseItAndGradientsFlow) {
  const Tensor x = rnd({333, 17}, 81, DType::f32, -6.0, 6.0).set_requires_grad(true);
  const Tensor y = tilegrad::gelu(x);
  y.backward(tilegrad::ones_like(y));
  const auto vx = x.to_vector<double>(), vy = y.to_vector<double>();
  const auto vg = x.grad().to_vector<double>();
  for (size_t i = 0; i < vx.size(); ++i) {
    ASSERT_NEAR(vy[i], gelu64(vx[i]), gelu_tolerance(vx[i]) * std::abs(gelu64(vx[i])) + kFlush);
    ASSERT_NEAR(vg[i], gelu_grad64(vx[i]),
                2 * gelu_tolerance(vx[i]) * std::abs(gelu_grad64(vx[i])) + 2e-7);
  }
}

// Every alignment of the first draw to a Philox block, lengths around the batch of 32, and
// counters whose block index crosses 2^32 (the counter's high word).
TEST(VectorMath, PhiloxDrawsEqualPhiloxDraw) {
  const uint64_t seed = 0x0123456789ABCDEFull;
  for (uint64_t d0 : {uint64_t{0}, uint64_t{1}, uint64_t{2}, uint64_t{3}, uint64_t{5},
                      uint64_t{1000003}, (uint64_t{1} << 34) - 37, (uint64_t{1} << 40) + 6}) {
    for (int64_t n : {0, 1, 3, 4, 31, 32, 33, 63, 100, 1000}) {
      std::vector<uint32_t> got(static_cast<size_t>(n) + 1, 0xDEADBEEFu);
      kernels::cpu::philox_draws(seed, d0, n, got.data());
      for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(got[i], philox_draw(seed, d0 + static_cast<uint64_t>(i)))
            << "d0 = " << d0 << ", n = " << n << ", i = " << i;
      }
      EXPECT_EQ(got[n], 0xDEADBEEFu) << "wrote past n";
    }
  }
}

}  // namespace
}  // namespace tgtest
