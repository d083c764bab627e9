// exp_f32 against float64 exp: ≤ 2 ulp over the whole normal range, exact edge behaviour.
#include <cmath>
#include <limits>
#include <vector>

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

}  // namespace
}  // namespace tgtest
