// Forward mode: jvp equals the reverse-mode directional derivative on composite functions, and on a
// case with a known closed form.
#include <cmath>

#include "testing.h"

namespace tgtest {
namespace {

TEST(ForwardAD, ClosedForm) {
  // f(x) = exp(x) * x: J v = (exp(x) + exp(x) x) v elementwise.
  const Tensor x = rnd({5}, 40), v = rnd({5}, 41);
  auto [y, t] = jvp([](const Tensor& a) { return mul(exp(a), a); }, x, v);
  const auto vx = x.to_vector<double>(), vv = v.to_vector<double>(), vt = t.to_vector<double>();
  for (size_t i = 0; i < vx.size(); ++i) {
    EXPECT_NEAR(vt[i], (std::exp(vx[i]) * (1 + vx[i])) * vv[i], 1e-14);
  }
  EXPECT_FALSE(y.requires_grad());
}

TEST(ForwardAD, MatchesReverseModeOnAnMLP) {
  expect_jvp_matches_vjp(
      [](const std::vector<Tensor>& v) {
        const Tensor h = gelu(add(matmul(v[0], v[1]), v[2]));
        return sum(mul(tanh(matmul(h, v[3])), sigmoid(h.slice(1, 0, 3))), {1});
      },
      {rnd({4, 5}, 42), rnd({5, 6}, 43), rnd({6}, 44), rnd({6, 3}, 45)});
}

TEST(ForwardAD, AllElementwiseOps) {
  expect_jvp_matches_vjp(
      [](const std::vector<Tensor>& v) {
        const Tensor a = v[0], b = v[1];
        const Tensor pos = add(exp(a), 0.5);
        return add(div(sub(mul(a, b), relu(b)), pos),
                   add(log(pos),
                       add(sqrt(pos), add(pow(pos, 1.5), add(rdiv(2.0, pos), rsub(1.0, neg(b)))))));
      },
      {rnd({3, 4}, 46), rnd({4}, 47)});
}

TEST(ForwardAD, InputsWithoutTangentAreConstants) {
  const Tensor x = rnd({3}, 48), c = rnd({3}, 49);
  auto [y, t] = jvp([&](const Tensor& a) { return mul(a, c); }, x, ones({3}, {DType::f64}));
  EXPECT_EQ(t.to_vector<double>(), c.to_vector<double>());
  // An output that does not depend on the input has a zero tangent.
  auto [y2, t2] = jvp([&](const Tensor&) { return exp(c); }, x, ones({3}, {DType::f64}));
  EXPECT_EQ(max_abs(t2), 0.0);
}

TEST(ForwardAD, MismatchedTangentThrows) {
  EXPECT_THROW(jvp([](const Tensor& a) { return a; }, rnd({3}, 1), rnd({4}, 2)), Error);
  EXPECT_THROW(jvp([](const Tensor& a) { return a; }, rnd({3}, 1), rnd({3}, 2, DType::f32)), Error);
}

}  // namespace
}  // namespace tgtest
