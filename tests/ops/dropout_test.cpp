// Dropout: the mask recomputed here element by element from the Philox stream, drop rates, the
// gradient (through a mask regenerated, not saved), determinism per (seed, offset), the edge
// probabilities, and forward mode.
#include <cmath>
#include <string>

#include "testing.h"

namespace tgtest {
namespace {

// Whether element i survives: the contract of Backend::dropout, written out.
bool keep(uint64_t seed, uint64_t offset, int64_t i, double p) {
  return static_cast<double>(
             uniform_from_bits(philox_draw(seed, offset + static_cast<uint64_t>(i)))) >= p;
}

int64_t count_zeros(const Tensor& y) {
  int64_t z = 0;
  for (double v : y.to_vector<double>()) z += v == 0.0;
  return z;
}

TEST(Dropout, MaskIsThePhiloxStreamElementByElement) {
  // p = 0.5 and 0.75 make 1/(1 − p) a power of two, so x·keep/(1 − p) is exact in every dtype and
  // the comparison can be exact. 37,000 elements run the kernel's parallel path.
  const uint64_t seed = 0x5eed, offset = 8;
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    for (double p : {0.5, 0.75}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " p=" + std::to_string(p));
      const Tensor x = rnd({1000, 37}, 1, dt, 0.5, 1.5);  // no zeros, so a zero means dropped
      const Tensor y = dropout_at(x, p, seed, offset);
      ASSERT_EQ(y.shape(), x.shape());
      ASSERT_EQ(y.dtype(), dt);
      const auto vx = x.to_vector<double>(), vy = y.to_vector<double>();
      int64_t mismatches = 0;
      for (size_t i = 0; i < vx.size(); ++i) {
        const double expected =
            keep(seed, offset, static_cast<int64_t>(i), p) ? vx[i] / (1 - p) : 0.0;
        mismatches += vy[i] != expected;
      }
      EXPECT_EQ(mismatches, 0);
    }
  }
}

TEST(Dropout, ScaleIsTheReciprocalInTheAccumulationType) {
  // For other p the kernel multiplies by 1/(1 − p) computed in the accumulation type (double for
  // f64, float otherwise): y = x · scale, one rounding.
  const uint64_t seed = 3, offset = 1000;
  const double p = 0.3;
  const Tensor x64 = rnd({4099}, 2, DType::f64, 0.5, 1.5);
  const auto v64 = dropout_at(x64, p, seed, offset).to_vector<double>();
  const auto vx64 = x64.to_vector<double>();
  const Tensor x32 = x64.to(DType::f32);
  const auto v32 = dropout_at(x32, p, seed, offset).to_vector<float>();
  const auto vx32 = x32.to_vector<float>();
  const float scale32 = static_cast<float>(1.0 / (1.0 - p));
  for (size_t i = 0; i < vx64.size(); ++i) {
    const bool k = keep(seed, offset, static_cast<int64_t>(i), p);
    EXPECT_EQ(v64[i], k ? vx64[i] * (1.0 / (1.0 - p)) : 0.0) << i;
    EXPECT_EQ(v32[i], k ? vx32[i] * scale32 : 0.0f) << i;
  }
}

TEST(Dropout, DropFractionIsCloseToP) {
  // Binomial: std of the fraction = sqrt(p(1 − p)/n) <= 0.0005 for n = 1e6, so 0.01 is 20 sigma.
  const int64_t n = 1000000;
  const Tensor x = rnd({n}, 3, DType::f32, 0.5, 1.5);
  Generator gen(2024);
  for (double p : {0.1, 0.17, 0.5}) {
    const Tensor y = dropout(x, p, gen);
    const double frac = static_cast<double>(count_zeros(y)) / static_cast<double>(n);
    EXPECT_NEAR(frac, p, 0.01) << "p=" << p;
  }
}

TEST(Dropout, GradientIsTheSameMaskTimesUpstream) {
  const uint64_t seed = 77, offset = 44;
  const double p = 0.4;
  const Tensor x = rnd({50, 41}, 4, DType::f64, 0.5, 1.5).set_requires_grad(true);
  const Tensor y = dropout_at(x, p, seed, offset);
  const Tensor g = rnd({50, 41}, 5, DType::f64, 0.5, 1.5);
  y.backward(g);
  const auto vg = g.to_vector<double>(), gx = x.grad().to_vector<double>();
  for (size_t i = 0; i < vg.size(); ++i) {
    const double expected =
        keep(seed, offset, static_cast<int64_t>(i), p) ? vg[i] * (1.0 / (1 - p)) : 0.0;
    EXPECT_EQ(gx[i], expected) << i;
  }
  // Also with a non-contiguous upstream gradient (the backward makes it contiguous first).
  const Tensor x2 = rnd({6, 5}, 6, DType::f64).set_requires_grad(true);
  expect_gradcheck([&](const std::vector<Tensor>& v) { return dropout_at(v[0], p, seed, offset); },
                   {x2});
}

TEST(Dropout, BackwardNodeSavesNothing) {
  const Tensor x = rnd({128, 64}, 7, DType::f32).set_requires_grad(true);
  Generator gen(1);
  const Tensor y = dropout(x, 0.1, gen);
  ASSERT_TRUE(y.grad_fn() != nullptr);
  EXPECT_EQ(y.grad_fn()->saved_bytes(), 0);
  EXPECT_TRUE(y.grad_fn()->saved_tensors().empty());
}

TEST(Dropout, SameStreamPositionSameMaskNextCallNewMask) {
  const Tensor x = rnd({257}, 8, DType::f32, 0.5, 1.5);
  Generator a(99), b(99);
  const Tensor ya = dropout(x, 0.5, a), yb = dropout(x, 0.5, b);
  EXPECT_EQ(max_abs_diff(ya, yb), 0.0);
  EXPECT_EQ(a.offset(), 260u);  // 257 draws, rounded up to whole Philox blocks
  EXPECT_EQ(max_abs_diff(ya, dropout_at(x, 0.5, 99, 0)), 0.0);
  const Tensor next = dropout(x, 0.5, a);  // draws [260, 517)
  EXPECT_GT(max_abs_diff(ya, next), 0.0);
  EXPECT_EQ(max_abs_diff(next, dropout_at(x, 0.5, 99, 260)), 0.0);
  const Tensor other_seed = dropout_at(x, 0.5, 100, 0);
  EXPECT_GT(max_abs_diff(ya, other_seed), 0.0);
}

TEST(Dropout, NonContiguousInputUsesRowMajorElementOrder) {
  const Tensor x = rnd({9, 7}, 9, DType::f64, 0.5, 1.5);
  const Tensor xn = noncontiguous(x);
  ASSERT_FALSE(xn.is_contiguous());
  EXPECT_EQ(max_abs_diff(dropout_at(xn, 0.3, 5, 16), dropout_at(x, 0.3, 5, 16)), 0.0);
  const Tensor leaf = noncontiguous(x).set_requires_grad(true);
  expect_gradcheck([&](const std::vector<Tensor>& v) { return dropout_at(v[0], 0.3, 5, 16); },
                   {leaf});
}

TEST(Dropout, EdgeProbabilitiesAndEvalMode) {
  const Tensor x = rnd({10, 3}, 10, DType::f32, 0.5, 1.5).set_requires_grad(true);
  Generator gen(5);
  const Tensor same = dropout(x, 0.0, gen);
  EXPECT_TRUE(same.is_same(x));
  EXPECT_EQ(gen.offset(), 0u);  // nothing drawn
  EXPECT_TRUE(dropout(x, 0.7, gen, /*training=*/false).is_same(x));
  EXPECT_EQ(gen.offset(), 0u);
  EXPECT_TRUE(dropout_at(x, 0.0, 1, 0).is_same(x));

  const Tensor all = dropout(x, 1.0, gen);
  EXPECT_EQ(max_abs(all), 0.0);
  EXPECT_EQ(count_zeros(all), x.numel());
  sum(all).backward();
  EXPECT_EQ(max_abs(x.grad()), 0.0);
  for (double v : x.grad().to_vector<double>()) EXPECT_FALSE(std::isnan(v));

  for (double p : {-0.1, 1.5, std::nan("")}) {
    const std::string msg = error_of([&] { dropout(x, p, gen); });
    EXPECT_NE(msg.find("dropout"), std::string::npos) << p << ": " << msg;
    EXPECT_NE(error_of([&] { dropout_at(x, p, 0, 0); }), "") << p;
    EXPECT_NE(error_of([&] { dropout(x, p, gen, false); }), "") << p;
  }
}

TEST(Dropout, ForwardModeAppliesTheSameMask) {
  const Tensor x = rnd({33, 5}, 11, DType::f64, 0.5, 1.5);
  const Tensor v = rnd({33, 5}, 12, DType::f64, 0.5, 1.5);
  const double p = 0.25;
  auto [y, t] = jvp([&](const Tensor& in) { return dropout_at(in, p, 21, 4); }, x, v);
  const auto vv = v.to_vector<double>(), vt = t.to_vector<double>();
  for (size_t i = 0; i < vv.size(); ++i) {
    EXPECT_EQ(vt[i], keep(21, 4, static_cast<int64_t>(i), p) ? vv[i] * (1.0 / (1 - p)) : 0.0) << i;
  }
  expect_jvp_matches_vjp([&](const std::vector<Tensor>& in) { return dropout_at(in[0], p, 21, 4); },
                         {x});
}

}  // namespace
}  // namespace tgtest
