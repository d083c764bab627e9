#include "ops/attention_harness.h"

#include <cmath>
#include <limits>

namespace tgtest {

Tensor randn_rounded(const Shape& shape, uint64_t seed, DType dt) {
  Generator gen(seed);
  NoGradGuard no_grad;
  return randn(shape, gen, 0.0, 1.0, {DType::f64}).to(dt).to(DType::f64);
}

AttnRun run_attention(const Tensor& q, const Tensor& k, const Tensor& v, DType dt,
                      const AttentionOptions& o, const Tensor& dout, const Tensor& glse) {
  const Tensor ql = q.to(dt).detach().set_requires_grad(true);
  const Tensor kl = k.to(dt).detach().set_requires_grad(true);
  const Tensor vl = v.to(dt).detach().set_requires_grad(true);
  const AttentionResult r = attention(ql, kl, vl, o);
  AttnRun run;
  run.out = r.out.to_vector<double>();
  run.lse = r.lse.to_vector<double>();
  if (!dout.defined()) return run;
  Tensor loss = sum(mul(r.out, dout.to(dt)).to(DType::f64));
  if (glse.defined()) loss = add(loss, sum(mul(r.lse.to(DType::f64), glse)));
  loss.backward();
  run.dq = ql.grad().to_vector<double>();
  run.dk = kl.grad().to_vector<double>();
  run.dv = vl.grad().to_vector<double>();
  return run;
}

RefResult run_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionOptions& o, const Tensor& dout, const Tensor& glse) {
  return attention_reference(ref_problem(q, k, o), q.to_vector<double>(), k.to_vector<double>(),
                             v.to_vector<double>(),
                             dout.defined() ? dout.to_vector<double>() : std::vector<double>{},
                             glse.defined() ? glse.to_vector<double>() : std::vector<double>{});
}

double max_err(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size()) return std::numeric_limits<double>::infinity();
  double m = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    if (a[i] == b[i]) continue;  // includes -inf = -inf
    const double d = std::abs(a[i] - b[i]);
    if (!std::isfinite(d)) return std::numeric_limits<double>::infinity();
    m = std::max(m, d);
  }
  return m;
}

double max_abs(const std::vector<double>& a) {
  double m = 0;
  for (double x : a) {
    if (std::isfinite(x)) m = std::max(m, std::abs(x));
  }
  return m;
}

Tensor random_layout(int64_t rows, int64_t cols, double density, uint64_t seed) {
  SplitMix64 rng{seed};
  std::vector<double> bits(static_cast<size_t>(rows * cols));
  for (double& b : bits) b = static_cast<double>(rng.next() % 1000) < density * 1000 ? 1.0 : 0.0;
  return from_vector(bits, {rows, cols}, {DType::u8});
}

}  // namespace tgtest
