// Elementwise ops: values against float64 formulas, gradients against finite differences (random
// shapes with size-1 dims, broadcasting, non-contiguous views), forward mode against reverse mode.
#include <cmath>

#include "testing.h"

namespace tgtest {
namespace {

using BinaryFn = Tensor (*)(const Tensor&, const Tensor&);

struct BinaryCase {
  const char* name;
  BinaryFn fn;
  double (*ref)(double, double);
};

const BinaryCase kBinary[] = {
    {"add", [](const Tensor& a, const Tensor& b) { return add(a, b); },
     [](double x, double y) { return x + y; }},
    {"sub", [](const Tensor& a, const Tensor& b) { return sub(a, b); },
     [](double x, double y) { return x - y; }},
    {"mul", [](const Tensor& a, const Tensor& b) { return mul(a, b); },
     [](double x, double y) { return x * y; }},
    {"div", [](const Tensor& a, const Tensor& b) { return div(a, b); },
     [](double x, double y) { return x / y; }},
};

// Pairs of broadcast-compatible shapes, including size-1 and missing leading dims and odd sizes.
const std::pair<Shape, Shape> kShapePairs[] = {
    {{7}, {7}},    {{3, 5}, {3, 5}},          {{3, 5}, {5}},    {{4, 1, 3}, {1, 6, 3}},
    {{1}, {2, 3}}, {{2, 1, 5, 1}, {3, 1, 4}}, {{1, 1}, {1, 1}}, {{13, 1}, {1, 11}},
};

TEST(Binary, ValuesMatchFloat64FormulaWithBroadcasting) {
  for (const auto& c : kBinary) {
    for (const auto& [sa, sb] : kShapePairs) {
      const Tensor a = rnd(sa, 1), b = rnd(sb, 2, DType::f64, 0.5, 2.0);  // b away from 0 for div
      const Tensor out = c.fn(a, b);
      const Shape shape = broadcast_shapes(sa, sb, "test");
      ASSERT_EQ(out.shape(), shape) << c.name;
      const auto va = a.expand(shape).to_vector<double>(), vb = b.expand(shape).to_vector<double>();
      const auto vo = out.to_vector<double>();
      for (size_t i = 0; i < vo.size(); ++i)
        EXPECT_EQ(vo[i], c.ref(va[i], vb[i])) << c.name << " " << i;
    }
  }
}

TEST(Binary, GradientsMatchFiniteDifferences) {
  for (const auto& c : kBinary) {
    for (const auto& [sa, sb] : kShapePairs) {
      const Tensor a = rnd(sa, 3).set_requires_grad(true);
      const Tensor b = rnd(sb, 4, DType::f64, 0.5, 2.0).set_requires_grad(true);
      SCOPED_TRACE(std::string(c.name) + " " + shape_str(sa) + " " + shape_str(sb));
      expect_gradcheck([&](const std::vector<Tensor>& x) { return c.fn(x[0], x[1]); }, {a, b});
    }
  }
}

TEST(Binary, GradientsOnNonContiguousViews) {
  for (const auto& c : kBinary) {
    const Tensor a = noncontiguous(rnd({3, 4, 5}, 5)).set_requires_grad(true);
    const Tensor b = noncontiguous(rnd({4, 5}, 6, DType::f64, 0.5, 2.0)).set_requires_grad(true);
    ASSERT_FALSE(a.is_contiguous());
    ASSERT_FALSE(b.is_contiguous());
    SCOPED_TRACE(c.name);
    expect_gradcheck([&](const std::vector<Tensor>& x) { return c.fn(x[0], x[1]); }, {a, b});
  }
}

TEST(Binary, OnlyInputsThatNeedGradientsGetThem) {
  const Tensor a = rnd({4, 3}, 7).set_requires_grad(true);
  const Tensor b = rnd({4, 3}, 8);
  sum(mul(a, b)).backward();
  EXPECT_TRUE(a.grad().defined());
  EXPECT_FALSE(b.grad().defined());
  EXPECT_LT(max_abs_diff(a.grad(), b), 1e-15);
}

TEST(Scalar, ValuesAndGradients) {
  const Tensor x = rnd({5, 3}, 9, DType::f64, 0.5, 2.0).set_requires_grad(true);
  const auto vx = x.to_vector<double>();
  struct Case {
    const char* name;
    std::function<Tensor(const Tensor&)> f;
    std::function<double(double)> ref;
  };
  const Case cases[] = {
      {"add", [](const Tensor& t) { return t + 1.5; }, [](double v) { return v + 1.5; }},
      {"sub", [](const Tensor& t) { return t - 0.25; }, [](double v) { return v - 0.25; }},
      {"mul", [](const Tensor& t) { return t * -3.0; }, [](double v) { return v * -3.0; }},
      {"div", [](const Tensor& t) { return t / 4.0; }, [](double v) { return v / 4.0; }},
      {"rsub", [](const Tensor& t) { return 2.0 - t; }, [](double v) { return 2.0 - v; }},
      {"rdiv", [](const Tensor& t) { return 3.0 / t; }, [](double v) { return 3.0 / v; }},
      {"pow2", [](const Tensor& t) { return pow(t, 2.0); }, [](double v) { return v * v; }},
      {"pow1.7", [](const Tensor& t) { return pow(t, 1.7); },
       [](double v) { return std::pow(v, 1.7); }},
      {"pow0", [](const Tensor& t) { return pow(t, 0.0); }, [](double) { return 1.0; }},
  };
  for (const auto& c : cases) {
    const auto vo = c.f(x).to_vector<double>();
    for (size_t i = 0; i < vo.size(); ++i)
      EXPECT_NEAR(vo[i], c.ref(vx[i]), 1e-15 * (1 + std::abs(vo[i]))) << c.name;
    SCOPED_TRACE(c.name);
    expect_gradcheck([&](const std::vector<Tensor>& v) { return c.f(v[0]); }, {x});
  }
}

TEST(Unary, ValuesMatchFloat64Formulas) {
  const Tensor x = rnd({6, 7}, 10, DType::f64, -2.0, 2.0);
  const Tensor xp = rnd({6, 7}, 11, DType::f64, 0.1, 3.0);
  const double k = std::sqrt(2.0 / M_PI);
  struct Case {
    const char* name;
    Tensor (*f)(const Tensor&);
    double (*ref)(double);
    bool positive;
  };
  const Case cases[] = {
      {"neg", neg, [](double v) { return -v; }, false},
      {"exp", tilegrad::exp, [](double v) { return std::exp(v); }, false},
      {"log", tilegrad::log, [](double v) { return std::log(v); }, true},
      {"tanh", tilegrad::tanh, [](double v) { return std::tanh(v); }, false},
      {"relu", relu, [](double v) { return v > 0 ? v : 0.0; }, false},
      {"sigmoid", sigmoid, [](double v) { return 1 / (1 + std::exp(-v)); }, false},
      {"sqrt", tilegrad::sqrt, [](double v) { return std::sqrt(v); }, true},
  };
  for (const auto& c : cases) {
    const Tensor in = c.positive ? xp : x;
    const auto vi = in.to_vector<double>(), vo = c.f(in).to_vector<double>();
    for (size_t i = 0; i < vo.size(); ++i) EXPECT_NEAR(vo[i], c.ref(vi[i]), 1e-14) << c.name;
  }
  const auto vi = x.to_vector<double>(), vo = gelu(x).to_vector<double>();
  for (size_t i = 0; i < vo.size(); ++i) {
    const double v = vi[i];
    EXPECT_NEAR(vo[i], 0.5 * v * (1 + std::tanh(k * (v + 0.044715 * v * v * v))), 1e-14);
  }
}

TEST(Unary, GradientsMatchFiniteDifferences) {
  using F = Tensor (*)(const Tensor&);
  const std::pair<const char*, F> fs[] = {
      {"neg", neg},   {"exp", tilegrad::exp}, {"tanh", tilegrad::tanh},
      {"relu", relu}, {"gelu", gelu},         {"sigmoid", sigmoid}};
  for (const auto& [name, f] : fs) {
    for (const Shape& s : {Shape{1}, Shape{9}, Shape{3, 1, 4}}) {
      const Tensor x = rnd(s, 12, DType::f64, -2.0, 2.0).set_requires_grad(true);
      SCOPED_TRACE(name);
      expect_gradcheck([&](const std::vector<Tensor>& v) { return f(v[0]); }, {x});
    }
    const Tensor xn = noncontiguous(rnd({4, 5}, 13, DType::f64, -2.0, 2.0)).set_requires_grad(true);
    expect_gradcheck([&](const std::vector<Tensor>& v) { return f(v[0]); }, {xn});
  }
  for (F f : {F(tilegrad::log), F(tilegrad::sqrt)}) {
    const Tensor x = rnd({3, 4}, 14, DType::f64, 0.2, 3.0).set_requires_grad(true);
    expect_gradcheck([&](const std::vector<Tensor>& v) { return f(v[0]); }, {x});
  }
}

TEST(Elementwise, LowPrecisionDtypesComputeInFloat) {
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    const Tensor a64 = rnd({33, 17}, 15), b64 = rnd({17}, 16, DType::f64, 0.5, 2.0);
    const Tensor a = a64.to(dt), b = b64.to(dt);
    const Tensor out = div(exp(a), b);
    EXPECT_EQ(out.dtype(), dt);
    // Reference: float64 math on the rounded inputs, then rounded once to dt.
    const Tensor ref = div(exp(a.to(DType::f64)), b.to(DType::f64)).to(dt);
    // Two roundings (exp, then div) against one: at most ~3 units of dt's relative epsilon.
    const double eps = dt == DType::f32 ? 0x1p-23 : (dt == DType::bf16 ? 0x1p-7 : 0x1p-10);
    const auto vo = out.to_vector<double>(), vr = ref.to_vector<double>();
    for (size_t i = 0; i < vo.size(); ++i) {
      EXPECT_LE(std::abs(vo[i] - vr[i]), 3 * eps * std::abs(vr[i])) << dtype_name(dt) << " " << i;
    }
  }
}

}  // namespace
}  // namespace tgtest
