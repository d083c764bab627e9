// Dropout on the counter-based RNG: forward, backward node, JVP rule, cost.
//
// Element i keeps or drops according to draw offset + i of stream `seed` alone, and dropout is
// linear in its input with that fixed mask, so the backward is the forward kernel applied to the
// incoming gradient with the same (seed, offset): the mask is regenerated, never stored, and the
// node saves no tensor at all. The JVP is the same kernel on the tangent.
#include "ops/dropout.h"

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/op_scope.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

void check_p(double p) {
  // Written so that NaN fails too.
  TG_CHECK(p >= 0.0 && p <= 1.0, "dropout: probability p must be in [0, 1], got ", p);
}

// x with the mask of (seed, offset) applied; x contiguous.
Tensor apply_mask(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  Tensor y = empty_output_like(x);
  backend_of(x).dropout(x.dtype(), x.data(), y.data(), x.numel(), p, seed, offset);
  return y;
}

class DropoutBackward final : public Node {
 public:
  DropoutBackward(double p, uint64_t seed, uint64_t offset)
      : Node("dropout"), p_(p), seed_(seed), offset_(offset) {}
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined() || !needs_input_grad(0)) return {Tensor()};
    return {apply_mask(contiguous(grads[0]), p_, seed_, offset_)};
  }

 private:
  double p_;
  uint64_t seed_, offset_;
};

}  // namespace

Tensor dropout(const Tensor& x, double p, Generator& gen, bool training) {
  check_defined("dropout", x);
  check_floating("dropout", x);
  check_p(p);
  if (!training || p == 0.0) return x;
  const uint64_t offset = gen.reserve(static_cast<uint64_t>(x.numel()));
  return dropout_at(x, p, gen.seed(), offset);
}

Tensor dropout_at(const Tensor& x, double p, uint64_t seed, uint64_t offset) {
  check_defined("dropout", x);
  check_floating("dropout", x);
  check_p(p);
  if (p == 0.0) return x;
  const Cost cost = dropout_cost(x.shape(), x.dtype());
  OpScope scope("dropout", cost);
  // The kernel numbers elements in row-major order, which is the mask's definition.
  const Tensor xc = contiguous(x);
  Tensor y = apply_mask(xc, p, seed, offset);
  if (any_requires_grad({xc})) {
    auto node = std::make_shared<DropoutBackward>(p, seed, offset);
    node->cost = cost;
    set_history(node, {xc}, {y});
  }
  if (forward_ad::any_tangent({xc})) {
    forward_ad::RuleScope rule;
    forward_ad::set_tangent(y, apply_mask(contiguous(forward_ad::tangent_of(xc)), p, seed, offset));
  }
  return y;
}

Cost dropout_cost(const Shape& x, DType dt) {
  // Per element: a 10-round Philox block shared by four draws is ~ a dozen integer ops per draw,
  // counted as one scale multiply here since FLOPs count floating-point work; bytes: x in, y out.
  const double n = static_cast<double>(numel(x));
  return {n, 2 * n * static_cast<double>(dtype_size(dt))};
}

}  // namespace tilegrad
