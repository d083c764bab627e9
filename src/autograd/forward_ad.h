// Forward-mode autodiff: tangents propagated alongside values (the lectures' "forward mode").
//
// A dual tensor carries a tangent t = dx/dε. Every op that supports forward mode computes its
// output's tangent from its inputs' tangents with its JVP rule (e.g. mul: ta·b + a·tb), so after
// running f on duals, the output's tangent is J_f · v without ever forming J_f. An input with no
// tangent counts as constant (zero tangent). Rules run inside RuleScope, where ops neither record
// graph nor propagate tangents, so a rule's own ops do not recurse.
#pragma once

#include <functional>
#include <utility>
#include <vector>

#include "core/tensor.h"

namespace tilegrad {

// A new handle on `primal`'s data whose tangent is `tangent` (same shape and dtype).
Tensor make_dual(const Tensor& primal, const Tensor& tangent);

// (f(x), J_f(x) · v). An output that does not depend on x gets a zero tangent.
std::pair<Tensor, Tensor> jvp(const std::function<Tensor(const Tensor&)>& f, const Tensor& x,
                              const Tensor& v);
std::pair<std::vector<Tensor>, std::vector<Tensor>> jvp(
    const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& f,
    const std::vector<Tensor>& xs, const std::vector<Tensor>& vs);

namespace forward_ad {

// True when tangent propagation is on (outside rules) and any defined input has a tangent.
bool any_tangent(std::initializer_list<Tensor> inputs);
bool any_tangent(const std::vector<Tensor>& inputs);
// The tangent of t, undefined if none (and for an undefined t: an optional operand).
Tensor tangent_of(const Tensor& t);
void set_tangent(const Tensor& t, const Tensor& tangent);

// While a JVP rule runs: no graph recording, no tangent propagation.
class RuleScope {
 public:
  RuleScope();
  ~RuleScope();
  RuleScope(const RuleScope&) = delete;
  RuleScope& operator=(const RuleScope&) = delete;

 private:
  bool prev_;
  struct NoGrad;
  std::unique_ptr<NoGrad> no_grad_;
};

}  // namespace forward_ad
}  // namespace tilegrad
