// matmul: values against a float64 triple loop, gradients against finite differences, transposed
// operands without copies, batching with broadcast, low precision, forward mode, errors.
#include <cmath>

#include "testing.h"

namespace tgtest {
namespace {

// Reference: C[b, i, j] = Σ_k A[b, i, k] B[b, k, j] with a and b already broadcast to 3-D.
std::vector<double> reference(const Tensor& a3, const Tensor& b3) {
  const int64_t Bn = a3.size(0), M = a3.size(1), K = a3.size(2), N = b3.size(2);
  const auto va = a3.to_vector<double>(), vb = b3.to_vector<double>();
  std::vector<double> c(static_cast<size_t>(Bn * M * N), 0.0);
  for (int64_t b = 0; b < Bn; ++b)
    for (int64_t i = 0; i < M; ++i)
      for (int64_t j = 0; j < N; ++j) {
        double s = 0;
        for (int64_t k = 0; k < K; ++k) s += va[(b * M + i) * K + k] * vb[(b * K + k) * N + j];
        c[(b * M + i) * N + j] = s;
      }
  return c;
}

void expect_matches_reference(const Tensor& a, const Tensor& b, double tol) {
  const Tensor c = matmul(a, b);
  Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                 Shape(b.shape().begin(), b.shape().end() - 2), "test");
  Shape sa = batch, sb = batch;
  sa.insert(sa.end(), {a.size(-2), a.size(-1)});
  sb.insert(sb.end(), {b.size(-2), b.size(-1)});
  const int64_t nb = numel(batch);
  const auto ref = reference(a.to(DType::f64).expand(sa).reshape({nb, a.size(-2), a.size(-1)}),
                             b.to(DType::f64).expand(sb).reshape({nb, b.size(-2), b.size(-1)}));
  const auto got = c.to_vector<double>();
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_NEAR(got[i], ref[i], tol * (1 + std::abs(ref[i])))
        << a.str() << " x " << b.str() << " at " << i;
  }
}

TEST(Matmul, ValuesOnOddShapes) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{1, 1}, {1, 1}},          {{3, 5}, {5, 7}},       {{17, 1}, {1, 13}},
      {{2, 3, 4}, {4, 5}},       {{2, 3, 4}, {2, 4, 6}}, {{1, 3, 4}, {5, 4, 2}},
      {{4, 1, 3, 5}, {2, 5, 3}}, {{64, 33}, {33, 65}},
  };
  for (const auto& [sa, sb] : cases) expect_matches_reference(rnd(sa, 1), rnd(sb, 2), 1e-13);
}

TEST(Matmul, TransposedViewsNeedNoCopy) {
  const Tensor a = rnd({6, 5}, 3), w = rnd({7, 5}, 4);
  // w.t() is column-major: it must reach BLAS as a transpose flag, so the only allocation is C.
  MemoryScope scope;
  const Tensor c = matmul(a, w.t());
  EXPECT_EQ(scope.delta().live_total, 6 * 7 * 8);
  EXPECT_EQ(scope.peak_delta(), 6 * 7 * 8);
  expect_matches_reference(a, w.t(), 1e-13);
  expect_matches_reference(w.t().t(), a.t(), 1e-13);
  expect_matches_reference(rnd({3, 4, 2}, 5).transpose(1, 2), rnd({3, 4, 6}, 6), 1e-13);
}

TEST(Matmul, GradientsMatchFiniteDifferences) {
  const std::vector<std::pair<Shape, Shape>> cases = {
      {{3, 4}, {4, 2}},       {{1, 5}, {5, 1}},       {{2, 3, 4}, {4, 5}},
      {{2, 3, 4}, {2, 4, 3}}, {{1, 2, 3}, {3, 3, 2}}, {{3, 1, 2, 3}, {2, 3, 1}},
  };
  for (const auto& [sa, sb] : cases) {
    const Tensor a = rnd(sa, 7).set_requires_grad(true), b = rnd(sb, 8).set_requires_grad(true);
    SCOPED_TRACE(shape_str(sa) + " x " + shape_str(sb));
    expect_gradcheck([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); }, {a, b});
  }
  // Non-contiguous (and transposed) leaves.
  const Tensor a = noncontiguous(rnd({4, 3}, 9)).set_requires_grad(true);
  const Tensor b = noncontiguous(rnd({3, 5}, 10)).set_requires_grad(true);
  expect_gradcheck([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); }, {a, b});
  const Tensor c = rnd({2, 4, 3}, 11).set_requires_grad(true);
  const Tensor d = rnd({2, 6, 3}, 12).set_requires_grad(true);
  expect_gradcheck([](const std::vector<Tensor>& x) { return matmul(x[0], x[1].transpose(1, 2)); },
                   {c, d});
}

TEST(Matmul, LowPrecisionAccumulatesInFloat) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    const Tensor a = rnd({19, 64}, 13).to(dt), b = rnd({64, 23}, 14).to(dt);
    // Exact products of the rounded inputs, summed in float32 then rounded once: error is bounded
    // by one rounding of the result plus the float32 summation error (K · 2^-24 relative to
    // Σ|a||b|).
    const double out_eps = dt == DType::f32 ? 0x1p-24 : (dt == DType::bf16 ? 0x1p-8 : 0x1p-11);
    const Tensor c = matmul(a, b);
    EXPECT_EQ(c.dtype(), dt);
    const auto ref = reference(a.to(DType::f64).unsqueeze(0), b.to(DType::f64).unsqueeze(0));
    const auto got = c.to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) {
      EXPECT_NEAR(got[i], ref[i], out_eps * std::abs(ref[i]) + 64 * 0x1p-24 * 64) << dtype_name(dt);
    }
  }
}

TEST(Matmul, ForwardModeMatchesReverseMode) {
  expect_jvp_matches_vjp([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
                         {rnd({3, 5}, 15), rnd({5, 4}, 16)});
  expect_jvp_matches_vjp([](const std::vector<Tensor>& x) { return matmul(x[0], x[1]); },
                         {rnd({2, 3, 5}, 17), rnd({5, 4}, 18)});
}

TEST(Matmul, CostCountsTwoFlopsPerMultiplyAdd) {
  const Cost c = matmul_cost({8, 3, 5}, {5, 7}, DType::f32);
  EXPECT_EQ(c.flops, 2.0 * 8 * 3 * 5 * 7);
  EXPECT_EQ(c.bytes, (8 * 3 * 5 + 5 * 7 + 8 * 3 * 7) * 4.0);
}

TEST(Matmul, BadInputThrowsNamingTheShapes) {
  const Tensor a = rnd({3, 4}, 1), b = rnd({5, 6}, 2);
  try {
    matmul(a, b);
    FAIL() << "no error";
  } catch (const Error& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("matmul"), std::string::npos) << m;
    EXPECT_NE(m.find("[3, 4]"), std::string::npos) << m;
    EXPECT_NE(m.find("[5, 6]"), std::string::npos) << m;
  }
  EXPECT_THROW(matmul(rnd({3}, 1), rnd({3, 2}, 2)), Error);
  EXPECT_THROW(matmul(rnd({3, 4}, 1), rnd({4, 2}, 2, DType::f32)), Error);  // dtype mismatch
  EXPECT_THROW(matmul(rnd({2, 3, 4}, 1), rnd({3, 4, 2}, 2)), Error);        // batch 2 vs 3
  EXPECT_THROW(
      matmul(arange(4, {DType::i64}).reshape({2, 2}), arange(4, {DType::i64}).reshape({2, 2})),
      Error);
}

}  // namespace
}  // namespace tgtest
