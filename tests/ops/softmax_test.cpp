// softmax and log_softmax: values against a float64 loop reference along every dim, gradients
// against finite differences (contiguous and not), 16-bit and float32 accuracy, forward mode
// against reverse mode, large logits, saved memory, cost, and argument errors.
#include <cmath>
#include <limits>

#include "testing.h"

namespace tgtest {
namespace {

// Softmax (or log-softmax) of row-major `x` of `shape` along dimension d, in plain float64 loops.
std::vector<double> softmax_ref(const std::vector<double>& x, const Shape& shape, int d, bool log) {
  int64_t outer = 1, inner = 1;
  for (int i = 0; i < d; ++i) outer *= shape[i];
  for (size_t i = static_cast<size_t>(d) + 1; i < shape.size(); ++i) inner *= shape[i];
  const int64_t n = shape[d];
  std::vector<double> y(x.size());
  for (int64_t o = 0; o < outer; ++o) {
    for (int64_t i = 0; i < inner; ++i) {
      auto at = [&](int64_t k) { return static_cast<size_t>((o * n + k) * inner + i); };
      double m = -std::numeric_limits<double>::infinity();
      for (int64_t k = 0; k < n; ++k) m = std::max(m, x[at(k)]);
      double s = 0;
      for (int64_t k = 0; k < n; ++k) s += std::exp(x[at(k)] - m);
      for (int64_t k = 0; k < n; ++k) {
        y[at(k)] = log ? x[at(k)] - m - std::log(s) : std::exp(x[at(k)] - m) / s;
      }
    }
  }
  return y;
}

Tensor apply(bool log, const Tensor& x, int64_t dim) {
  return log ? log_softmax(x, dim) : softmax(x, dim);
}

const char* op_name(bool log) {
  return log ? "log_softmax" : "softmax";
}

// Odd sizes, size-1 dims, an inner extent wider than one column tile (70), and tensors large enough
// (≥ 32k elements) for the multi-threaded paths.
const Shape kShapes[] = {{7},          {1},        {3, 5},       {5, 1},     {1, 9},   {4, 1, 6},
                         {2, 3, 4, 5}, {3, 5, 70}, {40, 50, 20}, {130, 257}, {1, 1, 3}};

TEST(Softmax, ValuesMatchFloat64ReferenceAlongEveryDim) {
  uint64_t seed = 1;
  for (const Shape& shape : kShapes) {
    const Tensor x = rnd(shape, seed++, DType::f64, -3.0, 3.0);
    const auto vx = x.to_vector<double>();
    const int64_t nd = x.dim();
    for (int64_t dim = -nd; dim < nd; ++dim) {
      const int d = static_cast<int>(dim < 0 ? dim + nd : dim);
      for (bool log : {false, true}) {
        const Tensor y = apply(log, x, dim);
        ASSERT_EQ(y.shape(), shape);
        ASSERT_EQ(y.dtype(), DType::f64);
        const auto ref = softmax_ref(vx, shape, d, log);
        const auto vy = y.to_vector<double>();
        for (size_t i = 0; i < vy.size(); ++i) {
          ASSERT_NEAR(vy[i], ref[i], 1e-14 * (1 + std::abs(ref[i])))
              << op_name(log) << " " << shape_str(shape) << " dim " << dim << " element " << i;
        }
      }
    }
  }
}

TEST(Softmax, ZeroDimTensorIsOneElementAlongDimZero) {
  const Tensor x = full({}, 2.5, {DType::f64});
  const Tensor y = softmax(x, 0), ly = log_softmax(x, -1);
  EXPECT_EQ(y.dim(), 0);
  EXPECT_EQ(y.item(), 1.0);
  EXPECT_EQ(ly.item(), 0.0);
}

TEST(Softmax, GradientsMatchFiniteDifferences) {
  const std::pair<Shape, int64_t> cases[] = {{{7}, 0},       {{3, 5}, 1},     {{3, 5}, 0},
                                             {{4, 1, 6}, 1}, {{2, 3, 4}, -2}, {{2, 3, 4}, 0},
                                             {{5, 1}, -1},   {{1, 9}, 0}};
  uint64_t seed = 20;
  for (bool log : {false, true}) {
    for (const auto& [shape, dim] : cases) {
      const Tensor x = rnd(shape, seed++, DType::f64, -2.0, 2.0).set_requires_grad(true);
      SCOPED_TRACE(std::string(op_name(log)) + " " + shape_str(shape) + " dim " +
                   std::to_string(dim));
      expect_gradcheck([&](const std::vector<Tensor>& v) { return apply(log, v[0], dim); }, {x});
    }
  }
}

TEST(Softmax, GradientsOnNonContiguousInputs) {
  for (bool log : {false, true}) {
    for (int64_t dim : {0, 1, 2, -1}) {
      const Tensor x =
          noncontiguous(rnd({3, 4, 5}, 30, DType::f64, -2.0, 2.0)).set_requires_grad(true);
      ASSERT_FALSE(x.is_contiguous());
      SCOPED_TRACE(std::string(op_name(log)) + " dim " + std::to_string(dim));
      expect_gradcheck([&](const std::vector<Tensor>& v) { return apply(log, v[0], dim); }, {x});
    }
  }
}

TEST(Softmax, GradientsWhenTheIncomingGradientIsNonContiguous) {
  // The transpose's backward hands softmax a transposed (non-contiguous) gradient view.
  for (bool log : {false, true}) {
    const Tensor x = rnd({4, 6}, 31, DType::f64, -2.0, 2.0).set_requires_grad(true);
    SCOPED_TRACE(op_name(log));
    expect_gradcheck(
        [&](const std::vector<Tensor>& v) { return apply(log, v[0], 1).transpose(0, 1); }, {x});
  }
}

TEST(Softmax, GradientsOfLargeTensorsMatchAFloat64Formula) {
  // Shapes that take the threaded and the column-tiled kernel paths, checked against the backward
  // formulas evaluated here in loops: softmax gx = y (g - Σ g y), log_softmax gx = g - p Σ g.
  for (bool log : {false, true}) {
    for (const auto& [shape, d] : {std::pair<Shape, int>{{130, 257}, 1},
                                   {{40, 50, 20}, 1},
                                   {{3, 5, 70}, 1},
                                   {{300, 120}, 0}}) {
      const Tensor x = rnd(shape, 32, DType::f64, -2.0, 2.0).set_requires_grad(true);
      const Tensor g = rnd(shape, 33, DType::f64, -1.0, 1.0);
      apply(log, x, d).backward(g);
      const auto p = softmax_ref(x.to_vector<double>(), shape, d, false);
      const auto vg = g.to_vector<double>(), gx = x.grad().to_vector<double>();
      int64_t outer = 1, inner = 1;
      for (int i = 0; i < d; ++i) outer *= shape[i];
      for (size_t i = static_cast<size_t>(d) + 1; i < shape.size(); ++i) inner *= shape[i];
      const int64_t n = shape[d];
      for (int64_t o = 0; o < outer; ++o) {
        for (int64_t i = 0; i < inner; ++i) {
          auto at = [&](int64_t k) { return static_cast<size_t>((o * n + k) * inner + i); };
          double s = 0;
          for (int64_t k = 0; k < n; ++k) s += log ? vg[at(k)] : vg[at(k)] * p[at(k)];
          for (int64_t k = 0; k < n; ++k) {
            const double want = log ? vg[at(k)] - p[at(k)] * s : p[at(k)] * (vg[at(k)] - s);
            ASSERT_NEAR(gx[at(k)], want, 1e-13) << op_name(log) << " " << shape_str(shape);
          }
        }
      }
    }
  }
}

TEST(Softmax, LowPrecisionDtypesMatchFloat64Reference) {
  // The kernels compute in float and round y once to the dtype. For softmax each of exp, the n-term
  // row sum and the scaling adds float rounding error, so |y - ref| <= (u_dt + (n + 3) u_f32)
  // |ref|. log_softmax's y = x - lse loses absolute, not relative, accuracy: lse carries about (n +
  // 4) u_f32 (1 + |lse|) of float error, |lse| <= |y| + max|x| <= |y| + 1 here.
  const Shape shape{8, 37};
  const double n = 37, uf = unit_roundoff(DType::f32);
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    const Tensor x = rnd(shape, 40, DType::f64, -1.0, 1.0).to(dt);
    const auto vx = x.to_vector<double>();  // the rounded inputs the kernel sees
    const double u = unit_roundoff(dt);
    for (bool log : {false, true}) {
      const Tensor y = apply(log, x, -1);
      ASSERT_EQ(y.dtype(), dt);
      const auto ref = softmax_ref(vx, shape, 1, log);
      const auto vy = y.to_vector<double>();
      for (size_t i = 0; i < vy.size(); ++i) {
        const double r = std::abs(ref[i]);
        const double tol = log ? u * r + (n + 4) * uf * (2 + r) : (u + (n + 3) * uf) * r;
        ASSERT_NEAR(vy[i], ref[i], tol) << op_name(log) << " " << dtype_name(dt) << " " << i;
      }
    }
  }
}

TEST(Softmax, LowPrecisionGradientsMatchFloat64) {
  // The dtype run against the float64 run on the same rounded x and g. Both backwards read y, which
  // the dtype run holds rounded (|δy| <= u_dt |y|). softmax: gx = y (g - Σ g y) then moves by a few
  // u_dt of the gradient's scale. log_softmax: p = exp(y) moves by u_dt |y| relative, times the
  // row's Σ g. Float accumulation of the n-term sums adds about n u_f32 of the scale.
  const Shape shape{6, 29};
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    for (bool log : {false, true}) {
      const Tensor x = rnd(shape, 41, DType::f64, -2.0, 2.0).to(dt).set_requires_grad(true);
      const Tensor g = rnd(shape, 42, DType::f64, -1.0, 1.0).to(dt);
      apply(log, x, -1).backward(g);
      const Tensor x64 = x.detach().to(DType::f64).set_requires_grad(true);
      const Tensor y64 = apply(log, x64, -1);
      y64.backward(g.to(DType::f64));
      const double u = unit_roundoff(dt), uf = unit_roundoff(DType::f32);
      const double scale = max_abs(x64.grad()) + 1;
      double tol = (4 * u + 2 * 29 * uf) * scale;
      if (log) tol += u * max_abs(y64) * max_abs(sum(g.to(DType::f64), {-1}));
      EXPECT_LE(max_abs_diff(x.grad().to(DType::f64), x64.grad()), tol)
          << op_name(log) << " " << dtype_name(dt);
    }
  }
}

TEST(Softmax, ForwardModeMatchesReverseMode) {
  for (bool log : {false, true}) {
    for (int64_t dim : {0, 1, -1}) {
      const Tensor x = rnd({3, 4, 5}, 50, DType::f64, -2.0, 2.0);
      SCOPED_TRACE(std::string(op_name(log)) + " dim " + std::to_string(dim));
      expect_jvp_matches_vjp([&](const std::vector<Tensor>& v) { return apply(log, v[0], dim); },
                             {x});
      expect_jvp_matches_vjp([&](const std::vector<Tensor>& v) { return apply(log, v[0], dim); },
                             {noncontiguous(x)});
    }
  }
}

TEST(Softmax, TangentMatchesFiniteDifference) {
  // Forward mode against (f(x + h v) - f(x - h v)) / 2h, element by element.
  for (bool log : {false, true}) {
    const Tensor x = rnd({4, 7}, 51, DType::f64, -2.0, 2.0);
    const Tensor v = rnd({4, 7}, 52, DType::f64, -1.0, 1.0);
    auto [y, t] = jvp([&](const Tensor& a) { return apply(log, a, 1); }, x, v);
    const double h = 1e-6;
    const auto yp = apply(log, add(x, mul(v, h)), 1).to_vector<double>();
    const auto ym = apply(log, sub(x, mul(v, h)), 1).to_vector<double>();
    const auto vt = t.to_vector<double>();
    for (size_t i = 0; i < vt.size(); ++i) {
      EXPECT_NEAR(vt[i], (yp[i] - ym[i]) / (2 * h), 1e-8) << op_name(log) << " " << i;
    }
  }
}

TEST(Softmax, LargeLogitsStayFinite) {
  const std::vector<double> values = {
      1000,  -1000, 999,    998,   0,      // one dominant logit
      -1000, -1000, -1000,  -1000, -1000,  // all equal, very negative
      1000,  1000,  1000,   1000,  1000,   // all equal, very positive
      -1000, 1000,  -999.5, 500,   -1};
  const Shape shape{4, 5};
  for (DType dt : {DType::f64, DType::f32, DType::bf16, DType::f16}) {
    const Tensor x = from_vector(values, shape, {dt});
    const auto vx = x.to_vector<double>();
    const double u = unit_roundoff(dt), uf = unit_roundoff(DType::f32);
    for (bool log : {false, true}) {
      for (int d : {1, 0}) {  // rows contiguous, and rows strided (the column-tile path)
        const Tensor xg = x.detach().set_requires_grad(true);
        const Tensor y = apply(log, xg, d);
        const auto vy = y.to_vector<double>();
        const auto ref = softmax_ref(vx, shape, d, log);
        for (size_t i = 0; i < vy.size(); ++i) {
          ASSERT_TRUE(std::isfinite(vy[i]))
              << op_name(log) << " " << dtype_name(dt) << " dim " << d << " " << i;
          // Relative rounding of y, plus float error in the max-shifted exp/log-sum-exp, which
          // scales with the logits' magnitude (1000) in log_softmax's x - lse.
          const double tol = u * std::abs(ref[i]) + (log ? 16 * uf * 1000 : 8 * uf);
          EXPECT_NEAR(vy[i], ref[i], tol)
              << op_name(log) << " " << dtype_name(dt) << " dim " << d << " " << i;
        }
        y.backward(rnd(shape, 60, DType::f64).to(dt));
        for (double g : xg.grad().to_vector<double>()) EXPECT_TRUE(std::isfinite(g));
      }
    }
  }
}

TEST(Softmax, BackwardSavesOnlyTheOutput) {
  for (bool log : {false, true}) {
    const Tensor x = rnd({5, 6}, 70).set_requires_grad(true);
    const Tensor y = apply(log, x, 1);
    ASSERT_TRUE(y.grad_fn());
    EXPECT_EQ(y.grad_fn()->saved_bytes(), y.nbytes());
    int defined = 0;
    for (const SavedTensor& s : y.grad_fn()->saved_tensors()) {
      if (!s.peek().defined()) continue;
      ++defined;
      EXPECT_EQ(s.peek().data(), y.data()) << "the saved tensor should alias y";
    }
    EXPECT_EQ(defined, 1);
  }
}

TEST(Softmax, ReportsItsCost) {
  const Tensor x = rnd({6, 10}, 71, DType::f32);
  OpCounter counter;
  softmax(x, -1);
  log_softmax(x, 0);
  ASSERT_EQ(counter.calls("softmax"), 1);
  ASSERT_EQ(counter.calls("log_softmax"), 1);
  const OpStats s = counter.by_op().at("softmax");
  EXPECT_EQ(s.flops, 5.0 * 60);
  EXPECT_EQ(s.bytes, 2.0 * 60 * 4);
  const Cost c = softmax_cost({6, 10}, DType::bf16);
  EXPECT_EQ(c.bytes, 2.0 * 60 * 2);
}

void expect_error_naming(const std::function<void()>& f, const std::string& op,
                         const std::string& detail) {
  try {
    f();
    ADD_FAILURE() << "expected an Error from " << op;
  } catch (const Error& e) {
    const std::string what = e.what();
    EXPECT_NE(what.find(op), std::string::npos) << what;
    EXPECT_NE(what.find(detail), std::string::npos) << what;
  }
}

TEST(Softmax, ErrorBadDim) {
  const Tensor x = rnd({2, 3}, 80);
  EXPECT_THROW(softmax(x, 2), Error);
  expect_error_naming([&] { softmax(x, 2); }, "softmax", "2");
  expect_error_naming([&] { softmax(x, -3); }, "softmax", "-3");
}

TEST(LogSoftmax, ErrorBadDim) {
  const Tensor x = rnd({4}, 81);
  EXPECT_THROW(log_softmax(x, 1), Error);
  expect_error_naming([&] { log_softmax(x, 1); }, "log_softmax", "1");
}

TEST(Softmax, ErrorIntegerDtype) {
  const Tensor x = from_vector(std::vector<int64_t>{1, 2, 3, 4}, {2, 2});
  EXPECT_THROW(softmax(x, -1), Error);
  expect_error_naming([&] { softmax(x, -1); }, "softmax", "int64");
}

TEST(LogSoftmax, ErrorIntegerDtype) {
  const Tensor x = from_vector(std::vector<int64_t>{1, 2, 3}, {3}, {DType::i32});
  EXPECT_THROW(log_softmax(x, 0), Error);
  expect_error_naming([&] { log_softmax(x, 0); }, "log_softmax", "int32");
}

TEST(Softmax, ErrorUndefinedInput) {
  expect_error_naming([] { softmax(Tensor(), 0); }, "softmax", "undefined");
}

}  // namespace
}  // namespace tgtest
