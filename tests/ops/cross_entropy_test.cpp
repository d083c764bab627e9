// Cross-entropy: losses against a float64 log-sum-exp reference written with plain loops, gradients
// against finite differences, ignore_index and the three reductions, batched [B, T, V] logits,
// low-precision logits, extreme logits, target validation, forward mode, and what the node saves.
#include <cmath>
#include <string>

#include "testing.h"

namespace tgtest {
namespace {

struct Reference {
  std::vector<double> loss, lse;
  std::vector<double> grad;  // d(sum of losses)/d logits = softmax − onehot, 0 on ignored rows
};

Reference reference(const Tensor& logits, const Tensor& targets, int64_t ignore) {
  const auto x = logits.to_vector<double>();
  const auto t = targets.to_vector<int64_t>();
  const int64_t V = logits.size(-1);
  Reference r;
  r.grad.assign(x.size(), 0.0);
  for (size_t row = 0; row < t.size(); ++row) {
    const double* xr = x.data() + row * V;
    double m = -INFINITY;
    for (int64_t j = 0; j < V; ++j) m = std::max(m, xr[j]);
    double s = 0;
    for (int64_t j = 0; j < V; ++j) s += std::exp(xr[j] - m);
    const double lse = m + std::log(s);
    r.lse.push_back(lse);
    const bool ignored = t[row] == ignore;
    r.loss.push_back(ignored ? 0.0 : lse - xr[t[row]]);
    if (ignored) continue;
    for (int64_t j = 0; j < V; ++j) {
      r.grad[row * V + j] = std::exp(xr[j] - lse) - (j == t[row] ? 1.0 : 0.0);
    }
  }
  return r;
}

double total(const std::vector<double>& v) {
  double s = 0;
  for (double e : v) s += e;
  return s;
}

Tensor targets_of(std::vector<int64_t> v, const Shape& shape, DType dt = DType::i64) {
  return from_vector(v, shape, {dt});
}

TEST(CrossEntropy, LossMatchesFloat64ReferenceForEveryReduction) {
  for (DType tdt : {DType::i32, DType::i64}) {
    SCOPED_TRACE(dtype_name(tdt));
    const Tensor logits = rnd({6, 11}, 1, DType::f64, -4.0, 4.0);
    const Tensor t = targets_of({0, 10, 3, 3, 7, 1}, {6}, tdt);
    const Reference ref = reference(logits, t, -100);
    const Tensor none = cross_entropy(logits, t, -100, Reduction::none);
    ASSERT_EQ(none.shape(), (Shape{6}));
    EXPECT_EQ(none.dtype(), DType::f64);
    const auto v = none.to_vector<double>();
    for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], ref.loss[i], 1e-13) << i;
    const Tensor s = cross_entropy(logits, t, -100, Reduction::sum);
    EXPECT_EQ(s.shape(), Shape{});
    EXPECT_NEAR(s.item(), total(ref.loss), 1e-12);
    const Tensor m = cross_entropy(logits, t);  // mean is the default
    EXPECT_EQ(m.shape(), Shape{});
    EXPECT_NEAR(m.item(), total(ref.loss) / 6, 1e-13);
  }
}

TEST(CrossEntropy, GradientsMatchFiniteDifferences) {
  const Tensor t = targets_of({2, -100, 0, 4, 4}, {5});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    SCOPED_TRACE(static_cast<int>(red));
    const Tensor logits = rnd({5, 6}, 2, DType::f64, -3.0, 3.0).set_requires_grad(true);
    expect_gradcheck(
        [&](const std::vector<Tensor>& x) { return cross_entropy(x[0], t, -100, red); }, {logits});
  }
}

TEST(CrossEntropy, GradientMatchesSoftmaxMinusOneHot) {
  // mean over the 3 counted rows: gradient = (softmax − onehot) / 3, exactly zero on ignored rows.
  const Tensor logits = rnd({5, 4}, 3, DType::f64, -2.0, 2.0).set_requires_grad(true);
  const Tensor t = targets_of({1, -100, 3, -100, 0}, {5});
  cross_entropy(logits, t).backward();
  const Reference ref = reference(logits, t, -100);
  const auto g = logits.grad().to_vector<double>();
  for (size_t i = 0; i < g.size(); ++i) EXPECT_NEAR(g[i], ref.grad[i] / 3, 1e-15) << i;
  for (int64_t j = 0; j < 4; ++j) {
    EXPECT_EQ(g[1 * 4 + j], 0.0);
    EXPECT_EQ(g[3 * 4 + j], 0.0);
  }
}

TEST(CrossEntropy, IgnoredRowsCountNeitherInLossNorInMean) {
  const Tensor logits = rnd({4, 7}, 4, DType::f64, -3.0, 3.0);
  const Tensor t = targets_of({2, -100, 5, -100}, {4});
  const Reference ref = reference(logits, t, -100);
  const auto none = cross_entropy(logits, t, -100, Reduction::none).to_vector<double>();
  EXPECT_EQ(none[1], 0.0);
  EXPECT_EQ(none[3], 0.0);
  EXPECT_GT(none[0], 0.0);
  EXPECT_NEAR(cross_entropy(logits, t).item(), (ref.loss[0] + ref.loss[2]) / 2, 1e-14);
  EXPECT_NEAR(cross_entropy(logits, t, -100, Reduction::sum).item(), ref.loss[0] + ref.loss[2],
              1e-14);
  // An ignore_index inside [0, V) is honoured too: rows targeting class 5 drop out.
  const Tensor t5 = targets_of({2, 5, 5, 0}, {4});
  const Reference ref5 = reference(logits, t5, 5);
  EXPECT_NEAR(cross_entropy(logits, t5, 5).item(), (ref5.loss[0] + ref5.loss[3]) / 2, 1e-14);
  EXPECT_EQ(ref5.loss[1], 0.0);
}

TEST(CrossEntropy, MeanOverNoCountedTargetsIsZeroWithZeroGradient) {
  const Tensor logits = rnd({3, 5}, 5, DType::f64, -2.0, 2.0).set_requires_grad(true);
  const Tensor t = targets_of({-100, -100, -100}, {3});
  const Tensor loss = cross_entropy(logits, t);
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  EXPECT_EQ(max_abs(logits.grad()), 0.0);
  for (double g : logits.grad().to_vector<double>()) EXPECT_FALSE(std::isnan(g));
  // No rows at all: the same convention.
  const Tensor empty_logits = rnd({0, 5}, 6, DType::f64).set_requires_grad(true);
  const Tensor empty_t = from_vector(std::vector<int64_t>{}, {0});
  EXPECT_EQ(cross_entropy(empty_logits, empty_t).item(), 0.0);
  EXPECT_EQ(cross_entropy(empty_logits, empty_t, -100, Reduction::sum).item(), 0.0);
}

TEST(CrossEntropy, BatchedLogitsBTV) {
  const int64_t B = 2, T = 3, V = 5;
  const Tensor logits = rnd({B, T, V}, 7, DType::f64, -3.0, 3.0).set_requires_grad(true);
  const Tensor t = targets_of({4, 0, -100, 1, 1, 3}, {B, T});
  const Reference ref = reference(logits, t, -100);
  const Tensor none = cross_entropy(logits, t, -100, Reduction::none);
  ASSERT_EQ(none.shape(), (Shape{B, T}));
  const auto v = none.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) EXPECT_NEAR(v[i], ref.loss[i], 1e-14) << i;
  EXPECT_NEAR(cross_entropy(logits, t).item(), total(ref.loss) / 5, 1e-14);
  for (Reduction red : {Reduction::mean, Reduction::none}) {
    expect_gradcheck(
        [&](const std::vector<Tensor>& x) { return cross_entropy(x[0], t, -100, red); }, {logits});
  }
}

TEST(CrossEntropy, NonContiguousLogits) {
  const Tensor logits =
      noncontiguous(rnd({4, 6}, 8, DType::f64, -2.0, 2.0)).set_requires_grad(true);
  ASSERT_FALSE(logits.is_contiguous());
  const Tensor t = targets_of({5, 0, -100, 2}, {4});
  const Reference ref = reference(logits, t, -100);
  EXPECT_NEAR(cross_entropy(logits, t, -100, Reduction::sum).item(), total(ref.loss), 1e-14);
  expect_gradcheck([&](const std::vector<Tensor>& x) { return cross_entropy(x[0], t); }, {logits});
}

TEST(CrossEntropy, LowPrecisionLogitsAgainstReference) {
  // Both dtypes compute in float. Against float64 math on the same (rounded) logits, the error of
  // lse is dominated by the float sum of V exponentials: relative error up to about V·2^-24, which
  // is an absolute error of lse, plus a few roundings of values of size |lse|. The gradient adds
  // the final rounding to the logits' dtype: at most 2^-24 (f32) or 2^-8 (bf16) relative.
  const int64_t rows = 16, V = 1000;
  Generator gen(9);
  const Tensor t = randint({rows}, 0, V, gen);
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor logits = rnd({rows, V}, 10, DType::f64, -8.0, 8.0).to(dt).set_requires_grad(true);
    const Reference ref = reference(logits, t, -100);  // on the rounded values
    const Tensor loss = cross_entropy(logits, t, -100, Reduction::none);
    EXPECT_EQ(loss.dtype(), DType::f32);
    const auto v = loss.to_vector<double>();
    double lse_tol = 0;
    for (int64_t r = 0; r < rows; ++r) {
      const double tol = (V + 8) * 0x1p-24 + 4 * 0x1p-24 * std::abs(ref.lse[r]);
      lse_tol = std::max(lse_tol, tol);
      EXPECT_NEAR(v[r], ref.loss[r], tol) << r;
    }
    sum(loss).backward();
    const double rounding = dt == DType::f32 ? 0x1p-24 : 0x1p-8;
    const auto g = logits.grad().to_vector<double>();
    for (size_t i = 0; i < g.size(); ++i) {
      // d exp(x − lse) = exp(...)·(d lse + 2 ulp of the exp), then the rounding to dt.
      const double tol = std::abs(ref.grad[i]) * (lse_tol + 4 * 0x1p-24 + rounding) + 1e-30;
      EXPECT_NEAR(g[i], ref.grad[i], 1.5 * tol) << i;
    }
  }
}

TEST(CrossEntropy, LargeLogitsStayFinite) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor logits =
        from_vector(std::vector<double>{1000, -1000, 999, 0, -1000, -999, 1000, 1000, -1000},
                    {3, 3}, {dt})
            .set_requires_grad(true);
    const Tensor t = targets_of({2, 1, 2}, {3});
    const Reference ref = reference(logits, t, -100);
    const auto v = cross_entropy(logits, t, -100, Reduction::none).to_vector<double>();
    for (size_t r = 0; r < 3; ++r) {
      EXPECT_TRUE(std::isfinite(v[r])) << r;
      EXPECT_NEAR(v[r], ref.loss[r], 1e-4 * (1 + ref.loss[r])) << r;
    }
    if (dt != DType::bf16) {  // bf16 rounds 999 to 1000
      // The ±1000 offset must cancel exactly: a float lse rounded at the scale of 1000 (ulp 2^-14)
      // before subtracting the target logit would be off by up to 3e-5 here.
      EXPECT_NEAR(v[0], 1.0 + std::log1p(std::exp(-1.0)), 1e-6);
    }
    EXPECT_NEAR(v[1], 1000.0, 1e-3);
    EXPECT_NEAR(v[2], 2000.0 + std::log(2.0), 1e-3);
    cross_entropy(logits, t).backward();
    for (double g : logits.grad().to_vector<double>()) EXPECT_TRUE(std::isfinite(g));
  }
}

TEST(CrossEntropy, OutOfRangeTargetThrows) {
  const Tensor logits = rnd({3, 7}, 11, DType::f64);
  for (int64_t bad : {int64_t{7}, int64_t{-1}, int64_t{-101}, int64_t{1} << 40}) {
    SCOPED_TRACE(bad);
    const Tensor t = targets_of({0, bad, 6}, {3});
    const std::string msg = error_of([&] { cross_entropy(logits, t); });
    ASSERT_FALSE(msg.empty()) << "no error";
    EXPECT_NE(msg.find("cross_entropy"), std::string::npos) << msg;
    EXPECT_NE(msg.find("target " + std::to_string(bad)), std::string::npos) << msg;
    EXPECT_NE(msg.find("position 1"), std::string::npos) << msg;
  }
  EXPECT_EQ(error_of([&] { cross_entropy(logits, targets_of({0, -100, 6}, {3})); }), "");
  // With another ignore_index, -100 is an ordinary (out-of-range) target.
  EXPECT_NE(error_of([&] { cross_entropy(logits, targets_of({0, -100, 6}, {3}), -1); }), "");
}

TEST(CrossEntropy, RejectsBadArguments) {
  const Tensor logits = rnd({3, 7}, 12, DType::f64);
  const std::string shape = error_of([&] { cross_entropy(logits, targets_of({0, 1}, {2})); });
  EXPECT_NE(shape.find("cross_entropy"), std::string::npos) << shape;
  EXPECT_NE(shape.find("[3, 7]"), std::string::npos) << shape;
  EXPECT_NE(error_of([&] { cross_entropy(logits, rnd({3}, 1)); }).find("cross_entropy"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              cross_entropy(targets_of({0, 1, 2}, {3, 1}), targets_of({0, 0, 0}, {3}));
            }).find("cross_entropy"),
            std::string::npos);
}

TEST(CrossEntropy, ForwardModeMatchesReverseMode) {
  const Tensor t = targets_of({3, -100, 0, 2}, {2, 2});
  for (Reduction red : {Reduction::mean, Reduction::sum, Reduction::none}) {
    SCOPED_TRACE(static_cast<int>(red));
    const Tensor logits = rnd({2, 2, 5}, 13, DType::f64, -2.0, 2.0);
    expect_jvp_matches_vjp(
        [&](const std::vector<Tensor>& x) { return cross_entropy(x[0], t, -100, red); }, {logits});
  }
}

TEST(CrossEntropy, SavesLogitsTargetsAndLseOnly) {
  const int64_t rows = 64, V = 1000;
  Generator gen(14);
  const Tensor t = randint({rows}, 0, V, gen);
  for (DType dt : {DType::f32, DType::bf16, DType::f64}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor logits = rnd({rows, V}, 15, dt).set_requires_grad(true);
    const Tensor loss = cross_entropy(logits, t);
    ASSERT_TRUE(loss.grad_fn() != nullptr);
    const int64_t acc = dt == DType::f64 ? 8 : 4;
    EXPECT_EQ(loss.grad_fn()->saved_bytes(), logits.nbytes() + t.nbytes() + rows * acc);
  }
}

}  // namespace
}  // namespace tgtest
