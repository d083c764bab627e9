// linear (the fused x · w + b and act(x · w + b)): values against a float64 loop with GELU written
// from its definition, gradients against finite differences, forward mode, the composite of
// matmul + add (+ gelu) in low precision, what it allocates and saves, and bad input.
#include <cmath>

#include "testing.h"

namespace tgtest {
namespace {

// act(x · w + b) in float64 for x [rows, K] (x's leading dimensions flattened); an undefined b
// adds nothing.
std::vector<double> reference(const Tensor& x, const Tensor& w, const Tensor& b, Activation act) {
  const int64_t K = w.size(0), N = w.size(1), rows = x.numel() / K;
  const auto vx = x.to(DType::f64).to_vector<double>(), vw = w.to(DType::f64).to_vector<double>();
  const auto vb = b.defined() ? b.to(DType::f64).to_vector<double>()
                              : std::vector<double>(static_cast<size_t>(N), 0.0);
  std::vector<double> y(static_cast<size_t>(rows * N));
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < N; ++j) {
      double s = vb[j];
      for (int64_t k = 0; k < K; ++k) s += vx[i * K + k] * vw[k * N + j];
      if (act == Activation::gelu)
        s = 0.5 * s * (1 + std::tanh(std::sqrt(2 / M_PI) * (s + 0.044715 * s * s * s)));
      y[i * N + j] = s;
    }
  return y;
}

const char* act_name(Activation act) {
  return act == Activation::gelu ? "gelu" : "none";
}

TEST(Linear, ValuesOnOddShapes) {
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{1, 1}, 1}, {{3, 5}, 7}, {{2, 3, 4}, 9}, {{17, 13}, 1}, {{2, 1, 33}, 65}, {{5}, 3}};
  for (const auto& [sx, N] : cases) {
    for (Activation act : {Activation::none, Activation::gelu}) {
      const Tensor x = rnd(sx, 1, DType::f64, -2, 2), w = rnd({sx.back(), N}, 2);
      const Tensor b = rnd({N}, 3);
      const Tensor y = linear(x, w, b, act);
      Shape expect = sx;
      expect.back() = N;
      ASSERT_EQ(y.shape(), expect);
      const auto ref = reference(x, w, b, act), got = y.to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref[i], 1e-13 * (1 + std::abs(ref[i])))
            << shape_str(sx) << " N=" << N << " " << act_name(act) << " at " << i;
    }
  }
}

TEST(Linear, TransposedAndStridedOperands) {
  // w as a transposed view (the tied-embedding layout), x a non-contiguous view, b a strided slice.
  const Tensor x = noncontiguous(rnd({6, 5}, 4)), w = rnd({7, 5}, 5).t();
  const Tensor b = noncontiguous(rnd({7}, 6));
  for (Activation act : {Activation::none, Activation::gelu}) {
    const auto ref = reference(x.contiguous(), w.contiguous(), b.contiguous(), act);
    const auto got = linear(x, w, b, act).to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i) ASSERT_NEAR(got[i], ref[i], 1e-13) << act_name(act);
  }
}

TEST(Linear, GradientsMatchFiniteDifferences) {
  const std::vector<std::pair<Shape, int64_t>> cases = {
      {{3, 4}, 2}, {{1, 5}, 1}, {{2, 3, 4}, 5}, {{2, 1, 3}, 6}};
  for (const auto& [sx, N] : cases) {
    for (Activation act : {Activation::none, Activation::gelu}) {
      SCOPED_TRACE(shape_str(sx) + " N=" + std::to_string(N) + " " + act_name(act));
      const Tensor x = rnd(sx, 7, DType::f64, -2, 2).set_requires_grad(true);
      const Tensor w = rnd({sx.back(), N}, 8).set_requires_grad(true);
      const Tensor b = rnd({N}, 9).set_requires_grad(true);
      expect_gradcheck(
          [act](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2], act); },
          {x, w, b});
    }
  }
  // Non-contiguous x, transposed w; only some inputs need gradients.
  const Tensor x = noncontiguous(rnd({4, 3}, 10)).set_requires_grad(true);
  const Tensor w = rnd({5, 3}, 11).set_requires_grad(true);
  const Tensor b = rnd({5}, 12);
  expect_gradcheck(
      [&b](const std::vector<Tensor>& in) { return linear(in[0], in[1].t(), b, Activation::gelu); },
      {x, w});
  const Tensor b2 = rnd({5}, 13).set_requires_grad(true);
  expect_gradcheck(
      [&x](const std::vector<Tensor>& in) {
        return linear(x.detach(), in[0].t(), in[1], Activation::none);
      },
      {w, b2});
}

TEST(Linear, ForwardModeMatchesReverseMode) {
  for (Activation act : {Activation::none, Activation::gelu}) {
    expect_jvp_matches_vjp(
        [act](const std::vector<Tensor>& in) { return linear(in[0], in[1], in[2], act); },
        {rnd({2, 3, 5}, 14), rnd({5, 4}, 15), rnd({4}, 16)});
  }
}

// In bfloat16 and float16 the fused op accumulates and applies its epilogue in float32 before one
// rounding; the composite rounds after the GEMM and again after each elementwise op. Both must be
// within a few roundings of the float64 value, and their gradients within a few of each other.
TEST(Linear, LowPrecisionBesideTheComposite) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    for (Activation act : {Activation::none, Activation::gelu}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + act_name(act));
      const double u = unit_roundoff(dt);
      const Tensor x = rnd({3, 11, 64}, 17).to(dt).set_requires_grad(true);
      const Tensor w = rnd({64, 40}, 18, DType::f64, -0.2, 0.2).to(dt).set_requires_grad(true);
      const Tensor b = rnd({40}, 19).to(dt).set_requires_grad(true);
      const Tensor y = linear(x, w, b, act);
      const auto ref = reference(x, w, b, act), got = y.to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref[i], 2 * u * std::abs(ref[i]) + 64 * 0x1p-24 * 4) << i;

      const Tensor g = rnd({3, 11, 40}, 20).to(dt);
      const auto fused = backward_grads(y, g, {x, w, b});
      const Tensor pre = add(matmul(x, w), b);
      const Tensor yc = act == Activation::gelu ? gelu(pre) : pre;
      const auto comp = backward_grads(yc, g, {x, w, b});
      for (size_t i = 0; i < 3; ++i) {
        const double scale = max_abs(comp[i]);
        EXPECT_LE(max_abs_diff(fused[i], comp[i]), 16 * u * scale + 1e-6) << "input " << i;
      }
    }
  }
}

// Many rows, as a transformer's weight-gradient GEMMs have (on the GPU db then comes from the
// GEMM's epilogue): db is gy's column sums and dw is xᵀ gy, each against float64, for float32 and
// bfloat16, odd sizes; a second backward gives the same bits.
TEST(Linear, ParameterGradientsOfManyRows) {
  const int64_t R = 4099, K = 24, N = 1031;
  for (DType dt : {DType::f32, DType::bf16}) {
    SCOPED_TRACE(dtype_name(dt));
    const double u = unit_roundoff(dt);
    const Tensor x = rnd({R, K}, 31).to(dt);
    const Tensor w = rnd({K, N}, 32, DType::f64, -0.2, 0.2).to(dt).set_requires_grad(true);
    const Tensor b = rnd({N}, 33).to(dt).set_requires_grad(true);
    const Tensor g = rnd({R, N}, 34).to(dt);
    const auto grads = backward_grads(linear(x, w, b), g, {w, b});
    const auto again = backward_grads(linear(x, w, b), g, {w, b});
    const auto vx = x.to(DType::f64).to_vector<double>(), vg = g.to(DType::f64).to_vector<double>();
    const auto gw = grads[0].to(DType::f64).to_vector<double>();
    const auto gb = grads[1].to(DType::f64).to_vector<double>();
    for (int64_t j = 0; j < N; ++j) {
      double s = 0, a = 0;
      for (int64_t r = 0; r < R; ++r) {
        s += vg[r * N + j];
        a += std::abs(vg[r * N + j]);
      }
      ASSERT_NEAR(gb[j], s, u * std::abs(s) + 256 * 0x1p-24 * a) << "db column " << j;
    }
    for (int64_t k = 0; k < K; k += 7) {
      for (int64_t j = 0; j < N; j += 3) {
        double s = 0, a = 0;
        for (int64_t r = 0; r < R; ++r) {
          s += vx[r * K + k] * vg[r * N + j];
          a += std::abs(vx[r * K + k] * vg[r * N + j]);
        }
        ASSERT_NEAR(gw[k * N + j], s, u * std::abs(s) + 256 * 0x1p-24 * a)
            << "dw " << k << "," << j;
      }
    }
    for (size_t i = 0; i < 2; ++i) EXPECT_TRUE(bitwise_equal(grads[i], again[i])) << "input " << i;
  }
}

TEST(Linear, AllocatesOnlyItsOutputAndPreActivation) {
  const Tensor x = rnd({4, 6, 8}, 21).set_requires_grad(true);
  const Tensor w = rnd({8, 10}, 22).set_requires_grad(true);
  const Tensor b = rnd({10}, 23).set_requires_grad(true);
  const int64_t out = 4 * 6 * 10 * 8;
  for (Activation act : {Activation::none, Activation::gelu}) {
    MemoryScope scope;
    const int64_t before = scope.snapshot().live_of(Category::activation);
    const Tensor y = linear(x, w, b, act);
    const int64_t expect = act == Activation::gelu ? 2 * out : out;  // y (+ the pre-activation)
    EXPECT_EQ(scope.snapshot().peak_of(Category::activation) - before, expect) << act_name(act);
    EXPECT_EQ(scope.delta().live_of(Category::activation), expect) << act_name(act);
    // Saved: x (for dw), w (for dx) are inputs, not new bytes; the pre-activation for gelu.
    const int64_t saved_new = y.grad_fn()->saved_bytes() - x.nbytes() - w.nbytes();
    EXPECT_EQ(saved_new, act == Activation::gelu ? out : 0) << act_name(act);
  }
}

TEST(Linear, CostIsTheGemmsPlusTheEpilogues) {
  const Cost c = linear_cost({8, 3, 5}, 7, DType::f32, true, Activation::gelu);
  EXPECT_EQ(c.flops, 2.0 * 24 * 5 * 7 + 24 * 7 + 8.0 * 24 * 7);
  EXPECT_EQ(c.bytes, (24 * 5 + 5 * 7 + 7 + 2 * 24 * 7) * 4.0);
  const Cost m = linear_cost({8, 3, 5}, 7, DType::f32, false, Activation::none);
  EXPECT_EQ(m.flops, matmul_cost({8, 3, 5}, {5, 7}, DType::f32).flops);
}

// A residual r: linear(x, w, b, none, r) = x · w + b + r from one GEMM. float64 values against the
// reference plus r (odd shapes, a non-contiguous r), gradients by finite differences (r's is the
// output's gradient itself), forward mode, low precision beside the unfused add (one rounding
// against two), and a residual of the wrong shape or with an activation.
TEST(Linear, ResidualIsAddedInTheGemm) {
  for (const auto& [sx, N] : std::vector<std::pair<Shape, int64_t>>{
           {{1, 1}, 1}, {{3, 5}, 7}, {{2, 3, 4}, 9}, {{17, 13}, 1}}) {
    SCOPED_TRACE(shape_str(sx));
    const Tensor x = rnd(sx, 1, DType::f64, -2, 2), w = rnd({sx.back(), N}, 2), b = rnd({N}, 3);
    Shape so = sx;
    so.back() = N;
    const Tensor r = rnd(so, 4, DType::f64, -3, 3);
    const auto ref = reference(x, w, b, Activation::none), vr = r.to_vector<double>();
    for (const Tensor& rr : {r, noncontiguous(r)}) {
      const auto got = linear(x, w, b, Activation::none, rr).to_vector<double>();
      ASSERT_EQ(got.size(), ref.size());
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref[i] + vr[i], 1e-13 * (1 + std::abs(ref[i] + vr[i]))) << i;
    }
    std::vector<Tensor> in{x, w, b, r};
    for (Tensor& t : in) t.set_requires_grad(true);
    const auto f = [](const std::vector<Tensor>& v) {
      return linear(v[0], v[1], v[2], Activation::none, v[3]);
    };
    expect_gradcheck(f, in);
    const Tensor g = rnd(so, 5);
    const Tensor y = f(in);
    EXPECT_EQ(backward_grads(y, g, in)[3].to_vector<double>(), g.to_vector<double>());
    expect_jvp_matches_vjp(f, {x, w, b, r});
  }
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    const double u = unit_roundoff(dt);
    const Tensor x = rnd({3, 11, 64}, 6).to(dt), w = rnd({64, 40}, 7).to(dt),
                 b = rnd({40}, 8).to(dt), r = rnd({3, 11, 40}, 9, DType::f64, -4, 4).to(dt);
    const Tensor y = linear(x, w, b, Activation::none, r), yc = add(r, linear(x, w, b));
    EXPECT_LE(max_abs_diff(y, yc), 4 * u * max_abs(yc) + 1e-6);
  }
  const Tensor x = rnd({3, 4}, 1), w = rnd({4, 6}, 2), b = rnd({6}, 3);
  const std::string m = error_of([&] { linear(x, w, b, Activation::none, rnd({3, 5}, 4)); });
  EXPECT_NE(m.find("[3, 5]"), std::string::npos) << m;
  EXPECT_NE(m.find("[3, 6]"), std::string::npos) << m;
  EXPECT_THROW(linear(x, w, b, Activation::gelu, rnd({3, 6}, 4)), Error);
  EXPECT_THROW(linear(x, w, b, Activation::none, rnd({3, 6}, 4, DType::f32)), Error);
}

// Without a bias (nanoGPT's bias = False) the op is still one GEMM with its epilogue — GELU alone,
// or a residual as C — not the composite of matmul, add and gelu: values against float64 (odd
// shapes, with and without a residual), gradients by finite differences, forward mode, bfloat16
// and float16 against float64, and the activation bytes of the fused path (the composite's
// matmul would add an [rows, N] tensor of its own).
TEST(Linear, WithoutBias) {
  for (const auto& [sx, N] : std::vector<std::pair<Shape, int64_t>>{
           {{1, 1}, 1}, {{3, 5}, 7}, {{2, 3, 4}, 9}, {{17, 13}, 1}, {{2, 1, 33}, 65}}) {
    Shape so = sx;
    so.back() = N;
    const Tensor x = rnd(sx, 41, DType::f64, -2, 2), w = rnd({sx.back(), N}, 42);
    const Tensor r = rnd(so, 43, DType::f64, -3, 3);
    for (Activation act : {Activation::none, Activation::gelu}) {
      SCOPED_TRACE(shape_str(sx) + " N=" + std::to_string(N) + " " + act_name(act));
      const Tensor y = linear(x, w, Tensor(), act);
      ASSERT_EQ(y.shape(), so);
      const auto ref = reference(x, w, Tensor(), act), got = y.to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref[i], 1e-13 * (1 + std::abs(ref[i]))) << i;
      std::vector<Tensor> in{x, w};
      for (Tensor& t : in) t.set_requires_grad(true);
      const auto f = [act](const std::vector<Tensor>& v) {
        return linear(v[0], v[1], Tensor(), act);
      };
      expect_gradcheck(f, in);
      expect_jvp_matches_vjp(f, {x, w});
    }
    const auto ref = reference(x, w, Tensor(), Activation::none), vr = r.to_vector<double>();
    const auto got = linear(x, w, Tensor(), Activation::none, r).to_vector<double>();
    for (size_t i = 0; i < got.size(); ++i)
      ASSERT_NEAR(got[i], ref[i] + vr[i], 1e-13 * (1 + std::abs(ref[i] + vr[i]))) << i;
    std::vector<Tensor> in{x, w, r};
    for (Tensor& t : in) t.set_requires_grad(true);
    expect_gradcheck(
        [](const std::vector<Tensor>& v) {
          return linear(v[0], v[1], Tensor(), Activation::none, v[2]);
        },
        in);
  }
  for (DType dt : {DType::bf16, DType::f16}) {
    for (Activation act : {Activation::none, Activation::gelu}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) + " " + act_name(act));
      const double u = unit_roundoff(dt);
      const Tensor x = rnd({3, 11, 64}, 44).to(dt);
      const Tensor w = rnd({64, 40}, 45, DType::f64, -0.2, 0.2).to(dt);
      const auto ref = reference(x, w, Tensor(), act);
      const auto got = linear(x, w, Tensor(), act).to_vector<double>();
      for (size_t i = 0; i < got.size(); ++i)
        ASSERT_NEAR(got[i], ref[i], 2 * u * std::abs(ref[i]) + 64 * 0x1p-24 * 4) << i;
    }
  }
  const Tensor x = rnd({4, 6, 8}, 46).set_requires_grad(true);
  const Tensor w = rnd({8, 10}, 47).set_requires_grad(true);
  const int64_t out = 4 * 6 * 10 * 8;
  for (Activation act : {Activation::none, Activation::gelu}) {
    MemoryScope scope;
    const int64_t before = scope.snapshot().live_of(Category::activation);
    const Tensor y = linear(x, w, Tensor(), act);
    EXPECT_STREQ(y.grad_fn()->name(), "linear") << act_name(act);
    const int64_t expect = act == Activation::gelu ? 2 * out : out;  // y (+ the pre-activation)
    EXPECT_EQ(scope.snapshot().peak_of(Category::activation) - before, expect) << act_name(act);
  }
}

TEST(Linear, BadInputThrowsNamingTheShapes) {
  const Tensor x = rnd({3, 4}, 1), w = rnd({5, 6}, 2), b = rnd({6}, 3);
  const std::string m = error_of([&] { linear(x, w, b); });
  EXPECT_NE(m.find("linear"), std::string::npos) << m;
  EXPECT_NE(m.find("[3, 4]"), std::string::npos) << m;
  EXPECT_NE(m.find("[5, 6]"), std::string::npos) << m;
  EXPECT_NE(error_of([&] {
              linear(x, rnd({4, 6}, 2), rnd({5}, 3));
            }).find("[6]"),
            std::string::npos);
  EXPECT_THROW(linear(x, rnd({4, 6}, 2, DType::f32), b), Error);  // dtype mismatch
  EXPECT_THROW(linear(x, rnd({4}, 2), rnd({4}, 3)), Error);       // w not 2-D
  EXPECT_THROW(linear(arange(4, {DType::i64}).reshape({1, 4}),
                      arange(8, {DType::i64}).reshape({4, 2}), arange(2, {DType::i64})),
               Error);
}

}  // namespace
}  // namespace tgtest
