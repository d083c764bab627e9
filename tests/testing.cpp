#include "testing.h"

#include "backend/backend.h"

#include <cmath>
#include <cstdlib>
#include <cstring>
#include <numeric>

namespace tgtest {

namespace {
// TILEGRAD_TEST_DEVICE=cuda runs the suite with tensors created on that device by default (every
// test that names no device), so one set of device-generic tests checks both backends:
// tests/cuda/run_engine.sh runs the device-generic suites this way on the GPU machine. Set before
// main() on the main thread, where GoogleTest runs the tests; never undone.
[[maybe_unused]] const DeviceScope* const g_test_device = [] {
  const char* env = std::getenv("TILEGRAD_TEST_DEVICE");
  return env != nullptr && *env != '\0' ? new DeviceScope(parse_device(env)) : nullptr;
}();
}  // namespace

Tensor rnd(const Shape& shape, uint64_t seed, DType dtype, double lo, double hi) {
  Generator gen(seed);
  return rand_uniform(shape, gen, lo, hi, {dtype});
}

Tensor noncontiguous(const Tensor& t) {
  NoGradGuard no_grad;
  Tensor out;
  if (t.dim() <= 1) {
    Shape wide = t.shape();
    if (wide.empty()) return t.detach();
    wide[0] *= 2;
    Tensor base = zeros(wide, {t.dtype(), t.device()});
    out = base.slice(0, 0, wide[0], 2);
  } else {
    std::vector<int64_t> rev(static_cast<size_t>(t.dim()));
    std::iota(rev.rbegin(), rev.rend(), 0);  // [n-1, ..., 0]
    Shape rshape;
    for (int64_t d : rev) rshape.push_back(t.shape()[d]);
    Tensor base = empty(rshape, {t.dtype(), t.device()});
    out = base.permute(rev);
  }
  out.copy_(t);
  return out.detach();
}

std::vector<int64_t> element_offsets(const Tensor& t) {
  std::vector<int64_t> out;
  out.reserve(static_cast<size_t>(t.numel()));
  std::vector<int64_t> idx(static_cast<size_t>(t.dim()), 0);
  for (int64_t i = 0; i < t.numel(); ++i) {
    int64_t off = t.offset();
    for (int64_t d = 0; d < t.dim(); ++d) off += idx[d] * t.strides()[d];
    out.push_back(off);
    for (int64_t d = t.dim() - 1; d >= 0; --d) {
      if (++idx[d] < t.shape()[d]) break;
      idx[d] = 0;
    }
  }
  return out;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype() || a.shape() != b.shape()) return false;
  if (a.numel() == 0) return true;  // no bytes (and no pointer memcmp may be given)
  const Tensor ca = a.to(Device::cpu()).contiguous(), cb = b.to(Device::cpu()).contiguous();
  return std::memcmp(ca.data(), cb.data(), static_cast<size_t>(ca.nbytes())) == 0;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  EXPECT_EQ(a.shape(), b.shape());
  const auto va = a.to_vector<double>(), vb = b.to_vector<double>();
  double m = 0;
  for (size_t i = 0; i < va.size() && i < vb.size(); ++i) {
    const double d = std::abs(va[i] - vb[i]);
    if (std::isnan(d)) return d;
    m = std::max(m, d);
  }
  return m;
}

double unit_roundoff(DType dt) {
  switch (dt) {
    case DType::f64:
      return 0x1p-53;
    case DType::f32:
      return 0x1p-24;
    case DType::bf16:
      return 0x1p-8;
    case DType::f16:
      return 0x1p-11;
    default:
      break;
  }
  throw Error("unit_roundoff: not a float dtype");
}

double max_abs(const Tensor& a) {
  double m = 0;
  for (double v : a.to_vector<double>()) m = std::max(m, std::abs(v));
  return m;
}

namespace {

double weighted_loss(const std::vector<Tensor>& ys, const std::vector<Tensor>& ws) {
  double l = 0;
  for (size_t k = 0; k < ys.size(); ++k) {
    const auto y = ys[k].to_vector<double>(), w = ws[k].to_vector<double>();
    for (size_t i = 0; i < y.size(); ++i) l += y[i] * w[i];
  }
  return l;
}

}  // namespace

void expect_gradcheck(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& f,
                      const std::vector<Tensor>& inputs, GradCheckOptions o) {
  for (const Tensor& x : inputs) x.set_grad(Tensor());
  std::vector<Tensor> ys = f(inputs);
  std::vector<Tensor> ws;
  Tensor loss;
  for (size_t k = 0; k < ys.size(); ++k) {
    ws.push_back(rnd(ys[k].shape(), o.weight_seed + k, DType::f64, 0.5, 1.5));
    Tensor term = sum(mul(ys[k].to(DType::f64), ws[k]));
    loss = loss.defined() ? add(loss, term) : term;
  }
  ASSERT_TRUE(loss.requires_grad()) << "gradcheck: output does not depend on a grad input";
  loss.backward();

  NoGradGuard no_grad;
  for (size_t i = 0; i < inputs.size(); ++i) {
    const Tensor& x = inputs[i];
    if (!x.requires_grad() || x.dtype() != DType::f64) continue;
    const Tensor g = x.grad();
    ASSERT_TRUE(g.defined()) << "input " << i << " got no gradient";
    ASSERT_EQ(g.shape(), x.shape());
    const auto analytic = g.to_vector<double>();
    // Elements are nudged in place through the device's backend, so the check works on any device.
    double* base = static_cast<double*>(x.storage()->data());
    Backend& be = backend(x.device());
    auto poke = [&](int64_t off, double v) { be.copy_from_host(&v, base + off, sizeof v); };
    const auto offs = element_offsets(x);
    for (size_t j = 0; j < offs.size(); ++j) {
      double orig = 0;
      be.copy_to_host(base + offs[j], &orig, sizeof orig);
      poke(offs[j], orig + o.eps);
      const double lp = weighted_loss(f(inputs), ws);
      poke(offs[j], orig - o.eps);
      const double lm = weighted_loss(f(inputs), ws);
      poke(offs[j], orig);
      const double numeric = (lp - lm) / (2 * o.eps);
      EXPECT_NEAR(analytic[j], numeric, o.atol + o.rtol * std::abs(numeric))
          << "input " << i << " " << x.str() << ", element " << j;
    }
  }
}

void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      const std::vector<Tensor>& inputs, GradCheckOptions options) {
  expect_gradcheck([&](const std::vector<Tensor>& xs) { return std::vector<Tensor>{f(xs)}; },
                   inputs, options);
}

void expect_jvp_matches_vjp(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            const std::vector<Tensor>& inputs, double tol) {
  std::vector<Tensor> vs;
  for (size_t i = 0; i < inputs.size(); ++i) {
    vs.push_back(rnd(inputs[i].shape(), 777 + i, inputs[i].dtype()));
  }
  // Forward mode.
  auto [ys, ts] =
      jvp([&](const std::vector<Tensor>& xs) { return std::vector<Tensor>{f(xs)}; }, inputs, vs);
  const Tensor u = rnd(ys[0].shape(), 999, ys[0].dtype());
  const double fwd = sum(mul(ts[0], u)).item();
  // Reverse mode on fresh leaves.
  std::vector<Tensor> leaves;
  for (const Tensor& x : inputs) leaves.push_back(x.detach().set_requires_grad(true));
  sum(mul(f(leaves), u)).backward();
  double rev = 0;
  for (size_t i = 0; i < leaves.size(); ++i) {
    if (leaves[i].grad().defined()) rev += sum(mul(leaves[i].grad(), vs[i])).item();
  }
  EXPECT_NEAR(fwd, rev, tol * (1 + std::abs(rev)))
      << "forward-mode <u, Jv> vs reverse-mode <Jᵀu, v>";
}

std::vector<Tensor> backward_grads(const Tensor& y, const Tensor& g,
                                   const std::vector<Tensor>& leaves) {
  for (const Tensor& l : leaves) l.set_grad(Tensor());
  y.backward(g);
  std::vector<Tensor> r;
  for (const Tensor& l : leaves) r.push_back(l.grad());
  return r;
}

}  // namespace tgtest
