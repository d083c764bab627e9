#include "autograd/forward_ad.h"

#include "autograd/grad_mode.h"
#include "autograd/meta.h"
#include "core/error.h"

namespace tilegrad {

namespace forward_ad {

namespace {
thread_local bool t_propagate = true;
}

struct RuleScope::NoGrad {
  NoGradGuard guard;
};

RuleScope::RuleScope() : prev_(t_propagate), no_grad_(std::make_unique<NoGrad>()) {
  t_propagate = false;
}
RuleScope::~RuleScope() {
  t_propagate = prev_;
}

bool any_tangent(std::initializer_list<Tensor> inputs) {
  if (!t_propagate) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && tangent_of(t).defined()) return true;
  }
  return false;
}

bool any_tangent(const std::vector<Tensor>& inputs) {
  if (!t_propagate) return false;
  for (const Tensor& t : inputs) {
    if (t.defined() && tangent_of(t).defined()) return true;
  }
  return false;
}

Tensor tangent_of(const Tensor& t) {
  if (!t.defined()) return Tensor();
  const AutogradMeta* m = autograd_meta_or_null(t);
  return m ? m->tangent : Tensor();
}

void set_tangent(const Tensor& t, const Tensor& tangent) {
  autograd_meta(t).tangent = tangent;
}

}  // namespace forward_ad

Tensor make_dual(const Tensor& primal, const Tensor& tangent) {
  TG_CHECK(tangent.shape() == primal.shape() && tangent.dtype() == primal.dtype() &&
               tangent.device() == primal.device(),
           "make_dual: tangent ", tangent.str(), " does not match primal ", primal.str());
  TG_CHECK(is_floating(primal.dtype()), "make_dual: primal must be a float tensor, got ",
           primal.str());
  Tensor dual = primal.alias();  // forward mode only: the dual carries no reverse history
  forward_ad::set_tangent(dual, tangent);
  return dual;
}

std::pair<std::vector<Tensor>, std::vector<Tensor>> jvp(
    const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& f,
    const std::vector<Tensor>& xs, const std::vector<Tensor>& vs) {
  TG_CHECK(xs.size() == vs.size(), "jvp: ", xs.size(), " inputs but ", vs.size(), " tangents");
  std::vector<Tensor> duals;
  duals.reserve(xs.size());
  for (size_t i = 0; i < xs.size(); ++i) duals.push_back(make_dual(xs[i], vs[i]));
  std::vector<Tensor> ys = f(duals);
  std::vector<Tensor> ts;
  ts.reserve(ys.size());
  for (const Tensor& y : ys) {
    Tensor t = forward_ad::tangent_of(y);
    if (!t.defined()) {
      t = empty(y.shape(), {y.dtype(), y.device()});
      t.zero_();
    }
    ts.push_back(t);
  }
  return {ys, ts};
}

std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                              const Tensor& v) {
  auto [ys, ts] =
      jvp([&](const std::vector<Tensor>& in) { return std::vector<Tensor>{f(in[0])}; }, {x}, {v});
  return {ys[0], ts[0]};
}

}  // namespace tilegrad
