// layer_norm: values against a float64 loop reference (with and without weight and bias), gradients
// against finite differences (contiguous and not), 16-bit and float32 accuracy, a large mean with a
// small spread, forward mode against reverse mode, saved memory, deterministic weight and bias
// gradients, the backward from the output (LayerNormSaves::output), the column sums of its input
// gradient for a bias before it, and argument errors.
#include <omp.h>

#include <cmath>
#include <cstring>

#include "autograd/grad_col_sums.h"
#include "kernels/cpu/layernorm.h"
#include "testing.h"

namespace tgtest {
namespace {

// y = (x - mean) / sqrt(var + eps) * w + b over the last dim C, in plain float64 loops; w and b
// empty means absent.
std::vector<double> layer_norm_ref(const std::vector<double>& x, int64_t C,
                                   const std::vector<double>& w, const std::vector<double>& b,
                                   double eps) {
  std::vector<double> y(x.size());
  const int64_t rows = static_cast<int64_t>(x.size()) / C;
  for (int64_t r = 0; r < rows; ++r) {
    const double* xr = x.data() + r * C;
    double mu = 0;
    for (int64_t j = 0; j < C; ++j) mu += xr[j];
    mu /= static_cast<double>(C);
    double var = 0;
    for (int64_t j = 0; j < C; ++j) var += (xr[j] - mu) * (xr[j] - mu);
    var /= static_cast<double>(C);
    for (int64_t j = 0; j < C; ++j) {
      double v = (xr[j] - mu) / std::sqrt(var + eps);
      if (!w.empty()) v *= w[j];
      if (!b.empty()) v += b[j];
      y[static_cast<size_t>(r * C + j)] = v;
    }
  }
  return y;
}

// Odd sizes, C = 1, 1-D input, and a tensor large enough (≥ 32k elements) for the threaded paths.
const Shape kShapes[] = {{4, 8}, {2, 3, 7}, {5, 1}, {1, 1, 13}, {9}, {3, 70}, {300, 130}};

struct Affine {
  bool weight, bias;
  const char* name;
};
const Affine kAffine[] = {{true, true, "weight+bias"},
                          {false, false, "none"},
                          {true, false, "weight"},
                          {false, true, "bias"}};

TEST(LayerNorm, ValuesMatchFloat64Reference) {
  uint64_t seed = 1;
  for (const Shape& shape : kShapes) {
    const int64_t C = shape.back();
    const Tensor x = rnd(shape, seed++, DType::f64, -2.0, 3.0);
    const Tensor w = rnd({C}, seed++, DType::f64, 0.5, 1.5);
    const Tensor b = rnd({C}, seed++, DType::f64, -1.0, 1.0);
    for (const Affine& a : kAffine) {
      for (double eps : {1e-5, 0.1}) {
        const Tensor y = layer_norm(x, a.weight ? w : Tensor(), a.bias ? b : Tensor(), eps);
        ASSERT_EQ(y.shape(), shape);
        const auto ref = layer_norm_ref(
            x.to_vector<double>(), C, a.weight ? w.to_vector<double>() : std::vector<double>{},
            a.bias ? b.to_vector<double>() : std::vector<double>{}, eps);
        const auto vy = y.to_vector<double>();
        for (size_t i = 0; i < vy.size(); ++i) {
          ASSERT_NEAR(vy[i], ref[i], 1e-13 * (1 + std::abs(ref[i])))
              << shape_str(shape) << " " << a.name << " eps " << eps << " element " << i;
        }
      }
    }
  }
}

TEST(LayerNorm, NormalisedRowsHaveZeroMeanAndUnitVariance) {
  // Independent of the reference: with eps = 0 each output row has mean 0 and biased variance 1.
  const Tensor x = rnd({6, 11}, 10, DType::f64, -5.0, 7.0);
  const auto vy = layer_norm(x, Tensor(), Tensor(), 0.0).to_vector<double>();
  for (int r = 0; r < 6; ++r) {
    double s = 0, ss = 0;
    for (int j = 0; j < 11; ++j) s += vy[static_cast<size_t>(r * 11 + j)];
    for (int j = 0; j < 11; ++j)
      ss += vy[static_cast<size_t>(r * 11 + j)] * vy[static_cast<size_t>(r * 11 + j)];
    EXPECT_NEAR(s / 11, 0.0, 1e-14);
    EXPECT_NEAR(ss / 11, 1.0, 1e-13);
  }
}

// Both ways the backward recovers x̂ (LayerNormSaves).
const LayerNormSaves kSaves[] = {LayerNormSaves::input, LayerNormSaves::output};
const char* saves_name(LayerNormSaves s) {
  return s == LayerNormSaves::input ? "saves input" : "saves output";
}

TEST(LayerNorm, GradientsMatchFiniteDifferences) {
  uint64_t seed = 20;
  for (const LayerNormSaves saves : kSaves) {
    for (const Shape& shape : {Shape{3, 5}, Shape{2, 3, 4}, Shape{1, 6}, Shape{4, 1}, Shape{7}}) {
      const int64_t C = shape.back();
      for (const Affine& a : kAffine) {
        const Tensor x = rnd(shape, seed++, DType::f64, -2.0, 2.0).set_requires_grad(true);
        // An absent weight or bias is passed as undefined; the leaf stands in without requiring
        // grad so that gradcheck does not expect a gradient for it. Weights of either sign, away
        // from 0 (where the output no longer tells x̂).
        std::vector<double> wv = rnd({C}, seed++, DType::f64, 0.5, 1.5).to_vector<double>();
        for (size_t j = 1; j < wv.size(); j += 2) wv[j] = -wv[j];
        const Tensor w = from_vector(wv, {C}, {DType::f64}).set_requires_grad(a.weight);
        const Tensor b = rnd({C}, seed++, DType::f64, -1.0, 1.0).set_requires_grad(a.bias);
        SCOPED_TRACE(shape_str(shape) + " " + a.name + " " + saves_name(saves));
        expect_gradcheck(
            [&](const std::vector<Tensor>& v) {
              return layer_norm(v[0], a.weight ? v[1] : Tensor(), a.bias ? v[2] : Tensor(), 1e-5,
                                saves);
            },
            {x, w, b});
      }
    }
  }
}

TEST(LayerNorm, GradientsOnNonContiguousInputs) {
  const Tensor x = noncontiguous(rnd({3, 4, 6}, 30, DType::f64, -2.0, 2.0)).set_requires_grad(true);
  const Tensor w = noncontiguous(rnd({6}, 31, DType::f64, 0.5, 1.5)).set_requires_grad(true);
  const Tensor b = noncontiguous(rnd({6}, 32, DType::f64, -1.0, 1.0)).set_requires_grad(true);
  ASSERT_FALSE(x.is_contiguous());
  ASSERT_FALSE(w.is_contiguous());
  ASSERT_FALSE(b.is_contiguous());
  expect_gradcheck([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); },
                   {x, w, b});
  // The incoming gradient arrives transposed (non-contiguous) too.
  expect_gradcheck(
      [](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]).transpose(0, 2); },
      {x, w, b});
}

// Each subset of gradients, either way to x̂; the two ways agree to float64 rounding.
TEST(LayerNorm, OnlyWantedGradientsAreComputed) {
  const Tensor x = rnd({4, 5}, 33, DType::f64, -2.0, 2.0);
  const Tensor w = rnd({5}, 34, DType::f64, 0.5, 1.5);
  const Tensor b = rnd({5}, 35, DType::f64, -1.0, 1.0);
  const Tensor g = rnd({4, 5}, 36, DType::f64, -1.0, 1.0);
  for (int wanted = 1; wanted < 8; ++wanted) {
    std::vector<Tensor> first;  // the gradients from the input
    for (const LayerNormSaves saves : kSaves) {
      SCOPED_TRACE(std::to_string(wanted) + " " + saves_name(saves));
      const Tensor xl = x.detach().set_requires_grad((wanted & 1) != 0);
      const Tensor wl = w.detach().set_requires_grad((wanted & 2) != 0);
      const Tensor bl = b.detach().set_requires_grad((wanted & 4) != 0);
      layer_norm(xl, wl, bl, 1e-5, saves).backward(g);
      EXPECT_EQ(xl.grad().defined(), (wanted & 1) != 0);
      EXPECT_EQ(wl.grad().defined(), (wanted & 2) != 0);
      EXPECT_EQ(bl.grad().defined(), (wanted & 4) != 0);
      if (bl.grad().defined()) {  // gb = Σ_rows g, checked by hand
        const auto vg = g.to_vector<double>(), gb = bl.grad().to_vector<double>();
        for (int j = 0; j < 5; ++j) {
          double s = 0;
          for (int r = 0; r < 4; ++r) s += vg[static_cast<size_t>(r * 5 + j)];
          EXPECT_NEAR(gb[static_cast<size_t>(j)], s, 1e-14);
        }
      }
      const std::vector<Tensor> grads = {xl.grad(), wl.grad(), bl.grad()};
      if (first.empty()) {
        first = grads;
        continue;
      }
      for (size_t i = 0; i < 3; ++i) {
        if (!grads[i].defined()) continue;
        EXPECT_LE(max_abs_diff(grads[i], first[i]), 1e-12 * (1 + max_abs(first[i]))) << i;
      }
    }
  }
}

TEST(LayerNorm, SavesOnlyWhatTheWantedGradientsRead) {
  const Tensor x = rnd({8, 16}, 37, DType::f32);
  const Tensor w = rnd({16}, 38, DType::f32, 0.5, 1.5);
  const Tensor b = rnd({16}, 39, DType::f32);
  const int64_t stats = 2 * 8 * 4;  // mean and rstd: [rows] float32 each
  {                                 // bias only: gb = Σ g needs nothing saved
    const Tensor y = layer_norm(x, w, b.detach().set_requires_grad(true));
    EXPECT_EQ(y.grad_fn()->saved_bytes(), 0);
  }
  {  // weight only: x, mean, rstd, but not w
    const Tensor y = layer_norm(x, w.detach().set_requires_grad(true), b);
    EXPECT_EQ(y.grad_fn()->saved_bytes(), x.nbytes() + stats);
  }
  {  // input: x, w, mean, rstd
    const Tensor y = layer_norm(x.detach().set_requires_grad(true), w, b);
    EXPECT_EQ(y.grad_fn()->saved_bytes(), x.nbytes() + w.nbytes() + stats);
  }
}

TEST(LayerNorm, LowPrecisionDtypesMatchFloat64Reference) {
  // The kernel computes in float and rounds y once to the dtype: |y - ref| <= u_dt |ref| + float
  // error. The float error comes from the C-term sums for mean and variance (about C u_f32 relative
  // each) propagated through x̂ (|x̂| <= sqrt(C)) and the affine part; 4 (C + 8) u_f32 (1 + |ref|)
  // bounds it with room to spare while staying far below one 16-bit ulp.
  const Shape shape{12, 40};
  const int64_t C = 40;
  const double uf = unit_roundoff(DType::f32);
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    const Tensor x = rnd(shape, 40, DType::f64, -2.0, 3.0).to(dt);
    const Tensor w = rnd({C}, 41, DType::f64, 0.5, 1.5).to(dt);
    const Tensor b = rnd({C}, 42, DType::f64, -1.0, 1.0).to(dt);
    const Tensor y = layer_norm(x, w, b);
    ASSERT_EQ(y.dtype(), dt);
    const auto ref = layer_norm_ref(x.to_vector<double>(), C, w.to_vector<double>(),
                                    b.to_vector<double>(), 1e-5);
    const auto vy = y.to_vector<double>();
    const double u = unit_roundoff(dt);
    for (size_t i = 0; i < vy.size(); ++i) {
      const double r = std::abs(ref[i]);
      ASSERT_NEAR(vy[i], ref[i], u * r + 4 * (C + 8) * uf * (1 + r)) << dtype_name(dt) << " " << i;
    }
  }
}

TEST(LayerNorm, LowPrecisionGradientsMatchFloat64) {
  // Against the float64 op on the same rounded x, w, b, g (whose gradients gradcheck verifies). The
  // kernel rounds each result once (u_dt relative); the float error of gx's row means and of the
  // rows-term sums of gw, gb is bounded by (rows + C + 8) u_f32 of each gradient's scale. From the
  // output, y was rounded to the dtype before the backward reads it, so x̂ = (y − b) / w carries
  // u_dt (|x̂| + |b / w|) more, up to u_dt (sqrt(C) + max |b / w|) relative (|x̂| ≤ sqrt(C)).
  const int64_t rows = 10, C = 24;
  const double uf = unit_roundoff(DType::f32);
  for (const LayerNormSaves saves : kSaves) {
    for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
      SCOPED_TRACE(saves_name(saves));
      const Tensor x = rnd({rows, C}, 43, DType::f64, -2.0, 2.0).to(dt);
      const Tensor w = rnd({C}, 44, DType::f64, 0.5, 1.5).to(dt);
      const Tensor b = rnd({C}, 45, DType::f64, -1.0, 1.0).to(dt);
      const Tensor g = rnd({rows, C}, 46, DType::f64, -1.0, 1.0).to(dt);
      std::vector<Tensor> lo = {x.detach().set_requires_grad(true),
                                w.detach().set_requires_grad(true),
                                b.detach().set_requires_grad(true)};
      std::vector<Tensor> hi;
      for (const Tensor& t : lo) hi.push_back(t.detach().to(DType::f64).set_requires_grad(true));
      layer_norm(lo[0], lo[1], lo[2], 1e-5, saves).backward(g);
      layer_norm(hi[0], hi[1], hi[2]).backward(g.to(DType::f64));
      const double u = unit_roundoff(dt);
      const double k = saves == LayerNormSaves::input
                           ? 0.0
                           : std::sqrt(static_cast<double>(C)) +
                                 max_abs(div(b.to(DType::f64), w.to(DType::f64)));
      for (int i = 0; i < 3; ++i) {
        ASSERT_EQ(lo[static_cast<size_t>(i)].grad().dtype(), dt);
        const Tensor ref = hi[static_cast<size_t>(i)].grad();
        const double scale = max_abs(ref);
        EXPECT_LE(max_abs_diff(lo[static_cast<size_t>(i)].grad().to(DType::f64), ref),
                  (u * (1 + 2 * k) + 4 * (rows + C + 8) * uf) * scale)
            << dtype_name(dt) << " gradient " << i;
      }
    }
  }
}

TEST(LayerNorm, LargeMeanWithSmallSpreadStaysAccurate) {
  // Values 1e4 ± 1 in float32: E[x²] - mean² would cancel ~8 significant digits and leave noise (or
  // a negative variance); the centred second pass keeps x̂ accurate to about C u_f32 |x| / std.
  const int64_t C = 64;
  const Tensor x = add(rnd({8, C}, 50, DType::f64, -1.0, 1.0), 1e4).to(DType::f32);
  const auto ref = layer_norm_ref(x.to_vector<double>(), C, {}, {}, 1e-5);
  const auto vy = layer_norm(x, Tensor(), Tensor()).to_vector<double>();
  for (size_t i = 0; i < vy.size(); ++i) {
    ASSERT_TRUE(std::isfinite(vy[i]));
    ASSERT_NEAR(vy[i], ref[i], 1e-2) << i;
  }
}

TEST(LayerNorm, ForwardModeMatchesReverseMode) {
  const Tensor x = rnd({3, 4, 6}, 60, DType::f64, -2.0, 2.0);
  const Tensor w = rnd({6}, 61, DType::f64, 0.5, 1.5);
  const Tensor b = rnd({6}, 62, DType::f64, -1.0, 1.0);
  expect_jvp_matches_vjp([](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], v[2]); },
                         {x, w, b});
  expect_jvp_matches_vjp(
      [](const std::vector<Tensor>& v) { return layer_norm(v[0], Tensor(), Tensor()); }, {x});
  expect_jvp_matches_vjp([&](const std::vector<Tensor>& v) { return layer_norm(x, v[0], v[1]); },
                         {w, b});
  expect_jvp_matches_vjp([&](const std::vector<Tensor>& v) { return layer_norm(x, w, v[0]); }, {b});
  expect_jvp_matches_vjp(
      [](const std::vector<Tensor>& v) { return layer_norm(v[0], v[1], Tensor()); },
      {noncontiguous(x), w});
}

TEST(LayerNorm, TangentMatchesFiniteDifference) {
  const Tensor x = rnd({5, 9}, 63, DType::f64, -2.0, 2.0);
  const Tensor w = rnd({9}, 64, DType::f64, 0.5, 1.5);
  const Tensor b = rnd({9}, 65, DType::f64, -1.0, 1.0);
  const Tensor v = rnd({5, 9}, 66, DType::f64, -1.0, 1.0);
  auto [y, t] = jvp([&](const Tensor& a) { return layer_norm(a, w, b); }, x, v);
  const double h = 1e-6;
  const auto yp = layer_norm(add(x, mul(v, h)), w, b).to_vector<double>();
  const auto ym = layer_norm(sub(x, mul(v, h)), w, b).to_vector<double>();
  const auto vt = t.to_vector<double>();
  for (size_t i = 0; i < vt.size(); ++i) EXPECT_NEAR(vt[i], (yp[i] - ym[i]) / (2 * h), 1e-7) << i;
}

TEST(LayerNorm, ForwardModeInLowPrecision) {
  // The rule runs in float for bf16; its tangent must match the float64 rule's to bf16 accuracy.
  const Tensor x = rnd({4, 16}, 67, DType::f64, -2.0, 2.0).to(DType::bf16);
  const Tensor v = rnd({4, 16}, 68, DType::f64, -1.0, 1.0).to(DType::bf16);
  auto [y, t] = jvp([](const Tensor& a) { return layer_norm(a, Tensor(), Tensor()); }, x, v);
  ASSERT_EQ(t.dtype(), DType::bf16);
  auto [y64, t64] = jvp([](const Tensor& a) { return layer_norm(a, Tensor(), Tensor()); },
                        x.to(DType::f64), v.to(DType::f64));
  EXPECT_LE(max_abs_diff(t.to(DType::f64), t64), 2 * 0x1p-8 * max_abs(t64));
}

TEST(LayerNorm, WeightAndBiasGradientsAreDeterministicAcrossThreadCounts) {
  // Threaded path (rows · C ≥ 32k): gw and gb must be bit-identical for 1, 2 and 3 threads.
  const int64_t rows = 300, C = 130;
  const auto x = rnd({rows, C}, 70, DType::f32, -2.0, 2.0).to_vector<float>();
  const auto gy = rnd({rows, C}, 71, DType::f32, -1.0, 1.0).to_vector<float>();
  const auto w = rnd({C}, 72, DType::f32, 0.5, 1.5).to_vector<float>();
  std::vector<float> y(x.size()), mean(rows), rstd(rows);
  kernels::cpu::layernorm_forward(DType::f32, x.data(), w.data(), nullptr, y.data(), mean.data(),
                                  rstd.data(), rows, C, 1e-5);
  const int saved_threads = omp_get_max_threads();
  std::vector<std::vector<float>> results;
  for (int threads : {1, 2, 3}) {
    omp_set_num_threads(threads);
    std::vector<float> gx(x.size()), gw(C), gb(C);
    const LayerNormSaved saved{.v = x.data(), .mean = mean.data(), .rstd = rstd.data()};
    kernels::cpu::layernorm_backward(DType::f32, gy.data(), saved, w.data(), gx.data(), gw.data(),
                                     gb.data(), rows, C);
    std::vector<float> all = gw;
    all.insert(all.end(), gb.begin(), gb.end());
    all.insert(all.end(), gx.begin(), gx.end());
    results.push_back(all);
  }
  omp_set_num_threads(saved_threads);
  for (size_t k = 1; k < results.size(); ++k) {
    EXPECT_EQ(std::memcmp(results[0].data(), results[k].data(), results[0].size() * sizeof(float)),
              0)
        << "thread count " << k + 1;
  }
  // And gb is the column sum of gy.
  for (int64_t j = 0; j < C; ++j) {
    double s = 0;
    for (int64_t r = 0; r < rows; ++r) s += gy[static_cast<size_t>(r * C + j)];
    EXPECT_NEAR(results[0][static_cast<size_t>(C + j)], s, 1e-3);
  }
}

// In a residual connection, y = x + layer_norm(x), the add's gradient reaches x first and the layer
// norm's backward adds its own to it in its kernel (Node::adds_into_input_grad) instead of a
// separate add. The result must be the bits of the separate add, in every dtype (the gradient
// rounded to the dtype, then summed), a float64 finite-difference check must hold, and the
// backward must allocate one [rows, C] gradient fewer than an unfused sum would.
TEST(LayerNorm, AddsIntoTheGradientWaitingForItsInput) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    SCOPED_TRACE(dtype_name(dt));
    const Tensor x0 = rnd({37, 72}, 80, DType::f64, -2, 2).to(dt);
    const Tensor w = rnd({72}, 81, DType::f64, 0.5, 1.5).to(dt), b = rnd({72}, 82).to(dt);
    const Tensor g = rnd({37, 72}, 83).to(dt);
    Tensor x = x0.detach();
    x.set_requires_grad(true);
    const Tensor fused_gx = backward_grads(add(x, layer_norm(x, w, b)), g, {x})[0];
    // The same sum made by hand: the layer norm's gradient alone, then an add.
    Tensor x2 = x0.detach();
    x2.set_requires_grad(true);
    const Tensor ln_gx = backward_grads(layer_norm(x2, w, b), g, {x2})[0];
    const Tensor want = add(g, ln_gx);
    ASSERT_EQ(fused_gx.dtype(), dt);
    EXPECT_EQ(fused_gx.to(DType::f64).to_vector<double>(), want.to(DType::f64).to_vector<double>());
  }
  std::vector<Tensor> in{rnd({5, 9}, 84, DType::f64, -2, 2), rnd({9}, 85, DType::f64, 0.5, 1.5),
                         rnd({9}, 86)};
  for (Tensor& t : in) t.set_requires_grad(true);
  expect_gradcheck(
      [](const std::vector<Tensor>& v) { return add(v[0], layer_norm(v[0], v[1], v[2])); }, in);
  // Memory: with the add folded in, the backward allocates one [rows, C] gradient (x's), not the
  // layer norm's and then their sum.
  const int64_t rows = 64, C = 128;
  Tensor x = rnd({rows, C}, 87, DType::f32, -2, 2);
  x.set_requires_grad(true);
  const Tensor y = add(x, layer_norm(x, Tensor(), Tensor()));
  const Tensor g = rnd({rows, C}, 88, DType::f32);
  MemoryScope scope;
  const int64_t base = scope.snapshot().live_of(Category::gradient);
  y.backward(g);
  EXPECT_EQ(scope.snapshot().peak_of(Category::gradient) - base, rows * C * 4);
}

// The point of saving the output: the node holds y (which the next op holds anyway), rstd and the
// parameters, and no tensor with x's storage, so x is freed once the caller drops it.
TEST(LayerNorm, SavingTheOutputKeepsTheInputFree) {
  const int64_t rows = 8, C = 16;
  const Tensor w = rnd({C}, 150, DType::f32, 0.5, 1.5), b = rnd({C}, 151, DType::f32);
  const Tensor x0 = rnd({rows, C}, 152, DType::f32).set_requires_grad(true);
  Tensor x = mul(x0, 2.0);  // an intermediate: alive only while something holds it
  const Tensor y = layer_norm(x, w, b, 1e-5, LayerNormSaves::output);
  const std::weak_ptr<Storage> x_storage = x.storage();
  for (const SavedTensor& s : y.grad_fn()->saved_tensors()) {
    if (s.peek().defined()) {
      EXPECT_NE(s.peek().storage(), x.storage());
    }
  }
  EXPECT_EQ(y.grad_fn()->saved_bytes(), y.nbytes() + w.nbytes() + b.nbytes() + rows * 4);
  x = Tensor();
  EXPECT_TRUE(x_storage.expired());
  // And the gradients are still right (against the input's way, on a fresh graph).
  const Tensor g = rnd({rows, C}, 153, DType::f32);
  y.backward(g);
  const Tensor x1 = x0.detach().set_requires_grad(true);
  layer_norm(mul(x1, 2.0), w, b).backward(g);
  EXPECT_LE(max_abs_diff(x0.grad(), x1.grad()), 1e-5 * (1 + max_abs(x1.grad())));
}

// gx_sum: the CPU kernel's column sums of the gx it writes (after gx_add), against float64 sums of
// those values, for every float dtype, both ways to x̂, a threaded size; gx the same bits as
// without.
TEST(LayerNorm, KernelSumsTheGradientItWrites) {
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    for (const auto& [rows, C] : {std::pair<int64_t, int64_t>{1, 1}, {5, 7}, {300, 130}}) {
      for (int k = 0; k < 4; ++k) {
        const bool from_y = (k & 1) != 0, add = (k & 2) != 0;
        SCOPED_TRACE(std::string(dtype_name(dt)) + " " + std::to_string(rows) + "x" +
                     std::to_string(C) + (from_y ? " from y" : "") + (add ? " gx_add" : ""));
        // The CPU kernel reads host memory, whatever device the suite runs on.
        const Device cpu = Device::cpu();
        const Tensor x = rnd({rows, C}, 170, DType::f64, -2, 3).to(dt).to(cpu);
        const Tensor w = rnd({C}, 171, DType::f64, 0.5, 1.5).to(dt).to(cpu);
        const Tensor b = rnd({C}, 172).to(dt).to(cpu), gy = rnd({rows, C}, 173).to(dt).to(cpu);
        const Tensor ga = rnd({rows, C}, 174, DType::f64, -2, 2).to(dt).to(cpu);
        const DType acc = dt == DType::f64 ? DType::f64 : DType::f32;
        const Tensor y = empty({rows, C}, {dt, cpu}), mean = empty({rows}, {acc, cpu}),
                     rstd = empty({rows}, {acc, cpu});
        kernels::cpu::layernorm_forward(dt, x.data(), w.data(), b.data(), y.data(), mean.data(),
                                        rstd.data(), rows, C, 1e-5);
        const LayerNormSaved saved{.v = from_y ? y.data() : x.data(),
                                   .mean = mean.data(),
                                   .rstd = rstd.data(),
                                   .b = b.data(),
                                   .from_output = from_y};
        const Tensor plain = empty({rows, C}, {dt, cpu}), gx = empty({rows, C}, {dt, cpu}),
                     sums = empty({C}, {dt, cpu});
        kernels::cpu::layernorm_backward(dt, gy.data(), saved, w.data(), plain.data(), nullptr,
                                         nullptr, rows, C, add ? ga.data() : nullptr);
        kernels::cpu::layernorm_backward(dt, gy.data(), saved, w.data(), gx.data(), nullptr,
                                         nullptr, rows, C, add ? ga.data() : nullptr, sums.data());
        EXPECT_TRUE(bitwise_equal(gx, plain)) << "the sums changed gx";
        const auto g = gx.to(DType::f64).to_vector<double>();
        const auto got = sums.to(DType::f64).to_vector<double>();
        const double u = unit_roundoff(dt), ua = unit_roundoff(acc);
        for (int64_t j = 0; j < C; ++j) {
          double want = 0, mag = 0;
          for (int64_t r = 0; r < rows; ++r) {
            want += g[static_cast<size_t>(r * C + j)];
            mag += std::abs(g[static_cast<size_t>(r * C + j)]);
          }
          EXPECT_NEAR(got[static_cast<size_t>(j)], want,
                      u * std::abs(want) + static_cast<double>(rows) * ua * mag)
              << "column " << j;
        }
      }
    }
  }
}

// A linear layer before the layer norm, with the residual path a transformer has: out = h +
// layer_norm(h), h = linear(x, w, b). The layer norm's backward makes h's gradient (adding into the
// residual's) and, since the linear node sums that gradient for b, its column sums too; the linear
// node takes them for b, and its GEMM makes w's gradient alone. b's gradient must be the sums the
// layer norm's kernel made, bit for bit (the association differs from a sum of its own: 300 rows
// fall into several of the kernel's row blocks), and every gradient must match a composite that
// makes h's gradient on a detached leaf.
TEST(LayerNorm, MakesTheBiasGradientOfTheLinearBeforeIt) {
  const int64_t B = 3, T = 100, K = 9, C = 130;
  for (DType dt : {DType::f64, DType::f32, DType::bf16}) {
    for (LayerNormSaves saves : {LayerNormSaves::input, LayerNormSaves::output}) {
      SCOPED_TRACE(std::string(dtype_name(dt)) +
                   (saves == LayerNormSaves::output ? " from the output" : ""));
      const Tensor x = rnd({B, T, K}, 180, DType::f64).to(dt).set_requires_grad(true);
      const Tensor w = rnd({K, C}, 181, DType::f64).to(dt).set_requires_grad(true);
      const Tensor b = rnd({C}, 182, DType::f64).to(dt).set_requires_grad(true);
      const Tensor lw = rnd({C}, 183, DType::f64, 0.5, 1.5).to(dt), lb = rnd({C}, 184).to(dt);
      const Tensor g = rnd({B, T, C}, 185).to(dt);
      const Tensor h = linear(x, w, b);
      const Tensor z = layer_norm(h, lw, lb, 1e-5, saves);
      const Tensor out = add(h, z);
      ASSERT_TRUE(h.grad_fn()->takes_output_col_sums(0));
      // The node's own pass, as the engine runs it: gx, with the residual's gradient added, carries
      // its column sums.
      Tensor sums;
      {
        NoGradGuard no_grad;
        Node& ln = *z.grad_fn();
        ln.waiting_grad(0) = g;
        std::vector<Tensor> grads{g};
        const Tensor gx = ln.apply(grads)[0];
        ln.clear_waiting_grads();
        sums = take_col_sums(gx, C);
        ASSERT_TRUE(sums.defined());
        const auto gv = gx.to(DType::f64).to_vector<double>();
        std::vector<double> own(C, 0.0);
        for (size_t i = 0; i < gv.size(); ++i) own[i % C] += gv[i];
        const Tensor own_t = from_vector(own, {C}, {DType::f64});
        EXPECT_LE(max_abs_diff(sums.to(DType::f64), own_t), 1e-2 * max_abs(own_t));
      }
      out.backward(g);
      EXPECT_TRUE(bitwise_equal(b.grad(), sums)) << "b's gradient is not the layer norm's sums";
      // The composite: h's gradient on a leaf, then the linear's backward from it with b not
      // wanted (so its GEMM is the same plain one).
      const Tensor hd = h.detach().set_requires_grad(true);
      add(hd, layer_norm(hd, lw, lb, 1e-5, saves)).backward(g);
      const Tensor x2 = x.detach().set_requires_grad(true), w2 = w.detach().set_requires_grad(true);
      linear(x2, w2, b.detach()).backward(hd.grad());
      EXPECT_TRUE(bitwise_equal(x.grad(), x2.grad()));
      EXPECT_TRUE(bitwise_equal(w.grad(), w2.grad()));
      // The bias-gradient epilogue's own sums of the same gradient: other bits in float32, so the
      // check on b above can tell which made it.
      const Tensor b3 = b.detach().set_requires_grad(true);
      linear(x.detach(), w.detach(), b3).backward(hd.grad());
      if (dt == DType::f32) {
        EXPECT_FALSE(bitwise_equal(b3.grad(), sums)) << "the test can't tell";
      }
      EXPECT_LE(max_abs_diff(b3.grad().to(DType::f64), sums.to(DType::f64)),
                1e-2 * max_abs(sums.to(DType::f64)));
    }
  }
}

// Only a node that sums the gradient for a bias is given the sums: not a linear layer without a
// wanted bias, nor one with an activation between (its bias's gradient sums another tensor).
TEST(LayerNorm, MakesNoColumnSumsForAnInputNobodySums) {
  const Tensor x = rnd({4, 6}, 190).set_requires_grad(true);
  const Tensor w = rnd({6, 8}, 191).set_requires_grad(true);
  const Tensor b = rnd({8}, 192), bg = rnd({8}, 193).set_requires_grad(true);
  const Tensor g = rnd({4, 8}, 194);
  for (const Tensor& h : {linear(x, w, b), linear(x, w, bg, Activation::gelu), mul(x, 2.0)}) {
    const Tensor z = layer_norm(h, Tensor(), Tensor());
    NoGradGuard no_grad;
    std::vector<Tensor> grads{h.size(-1) == 8 ? g : rnd({4, 6}, 195)};
    const Tensor gx = z.grad_fn()->apply(grads)[0];
    EXPECT_FALSE(take_col_sums(gx, h.size(-1)).defined());
  }
}

// A zero in the weight erases x̂ from y in that column: the gradients come out NaN there (and in
// gx, whose rows sum over every column), never finite and wrong.
TEST(LayerNorm, ZeroWeightFromTheOutputGivesNaNGradients) {
  const int64_t C = 6;
  std::vector<double> wv = {1.0, 0.5, 0.0, 1.5, 0.7, 1.2};
  const Tensor w = from_vector(wv, {C}, {DType::f64}).set_requires_grad(true);
  const Tensor x = rnd({3, C}, 160, DType::f64, -2.0, 2.0).set_requires_grad(true);
  sum(layer_norm(x, w, Tensor(), 1e-5, LayerNormSaves::output)).backward();
  EXPECT_TRUE(std::isnan(w.grad().to_vector<double>()[2]));
  for (double v : x.grad().to_vector<double>()) EXPECT_TRUE(std::isnan(v));
}

TEST(LayerNorm, ReportsItsCost) {
  const Tensor x = rnd({6, 10}, 80, DType::f32);
  OpCounter counter;
  layer_norm(x, Tensor(), Tensor());
  ASSERT_EQ(counter.calls("layer_norm"), 1);
  EXPECT_EQ(counter.by_op().at("layer_norm").flops, 8.0 * 60);
  // x and y (60 floats each), weight and bias (10 each), mean and rstd (6 floats each).
  EXPECT_EQ(counter.by_op().at("layer_norm").bytes, (2.0 * 60 + 2 * 10 + 2 * 6) * 4);
}

void expect_error_naming(const std::function<void()>& f, const std::string& detail) {
  try {
    f();
    ADD_FAILURE() << "expected an Error";
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find("layer_norm"), std::string::npos) << what;
    EXPECT_NE(what.find(detail), std::string::npos) << what;
  }
}

TEST(LayerNorm, ErrorWeightShapeMismatch) {
  const Tensor x = rnd({2, 8}, 90), w = rnd({7}, 91);
  EXPECT_THROW(layer_norm(x, w, Tensor()), Error);
  expect_error_naming([&] { layer_norm(x, w, Tensor()); },
                      "weight has shape [7], expected [C] = [8] for input [2, 8]");
  expect_error_naming([&] { layer_norm(x, rnd({1, 8}, 92), Tensor()); }, "weight has shape [1, 8]");
}

TEST(LayerNorm, ErrorBiasShapeMismatch) {
  const Tensor x = rnd({3, 5}, 93), b = rnd({3}, 94);
  EXPECT_THROW(layer_norm(x, Tensor(), b), Error);
  expect_error_naming([&] { layer_norm(x, Tensor(), b); },
                      "bias has shape [3], expected [C] = [5]");
}

TEST(LayerNorm, ErrorDtypeMismatch) {
  const Tensor x = rnd({2, 4}, 95, DType::f32);
  const Tensor w = rnd({4}, 96, DType::f64), b = rnd({4}, 97, DType::bf16);
  EXPECT_THROW(layer_norm(x, w, Tensor()), Error);
  expect_error_naming([&] { layer_norm(x, w, Tensor()); }, "weight has dtype float64");
  expect_error_naming([&] { layer_norm(x, Tensor(), b); }, "bias has dtype bfloat16");
}

TEST(LayerNorm, ErrorIntegerDtype) {
  const Tensor x = from_vector(std::vector<int64_t>{1, 2, 3, 4}, {2, 2});
  EXPECT_THROW(layer_norm(x, Tensor(), Tensor()), Error);
  expect_error_naming([&] { layer_norm(x, Tensor(), Tensor()); }, "int64");
}

TEST(LayerNorm, ErrorZeroDimInput) {
  expect_error_naming([] { layer_norm(full({}, 1.0), Tensor(), Tensor()); }, "0-d");
}

}  // namespace
}  // namespace tgtest
