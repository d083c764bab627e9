// softmax and log_softmax: forward, backward node, forward-mode rule, cost.
//
// The kernels work on a contiguous [outer, n, inner] block, n being the softmax dimension, so any
// dim of a contiguous tensor is a reinterpretation, never a transpose. Both backwards read only the
// output y (softmax: gx = y ⊙ (g - Σ g ⊙ y); log_softmax: gx = g - exp(y) · Σ g), so y is the one
// tensor saved, and x can be freed as soon as nothing else needs it.
#include "ops/softmax.h"

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

// The [outer, n, inner] factorisation of `shape` around dimension d.
struct Block {
  int64_t outer = 1, n = 1, inner = 1;
};

Block block_of(const Shape& shape, int d) {
  Block b;
  for (int i = 0; i < d; ++i) b.outer *= shape[i];
  b.n = shape[d];
  for (size_t i = static_cast<size_t>(d) + 1; i < shape.size(); ++i) b.inner *= shape[i];
  return b;
}

class SoftmaxBackward final : public Node {
 public:
  SoftmaxBackward(bool log, const Tensor& y, Block block)
      : Node(log ? "log_softmax" : "softmax"), log_(log), block_(block) {
    y_ = save(y);
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined() || !needs_input_grad(0)) return {Tensor()};
    const Tensor y = saved(y_);
    // The kernel wants a dense gradient; an incoming one may be a broadcast view (e.g. from sum).
    const Tensor g = grads[0].contiguous();
    Tensor gx = empty_output_like(y);
    backend_of(y).softmax_backward(y.dtype(), y.data(), g.data(), gx.data(), block_.outer, block_.n,
                                   block_.inner, log_);
    return {gx};
  }

 private:
  bool log_;
  Block block_;
  size_t y_;
};

Tensor softmax_impl(const Tensor& input, int64_t dim, bool log) {
  const char* name = log ? "log_softmax" : "softmax";
  check_defined(name, input);
  check_floating(name, input);
  // A 0-d tensor is softmaxed as one element along dim 0 (or -1), as a [1] tensor would be.
  if (input.dim() == 0) {
    wrap_dim(dim, 1, name);
    return reshape(softmax_impl(reshape(input, {1}), dim, log), {});
  }
  const int d = wrap_dim(dim, input.dim(), name);
  const Tensor x = input.contiguous();
  const Block blk = block_of(x.shape(), d);

  const Cost cost = softmax_cost(x.shape(), x.dtype());
  OpScope scope(name, cost);
  Tensor y = empty_output_like(x);
  backend_of(x).softmax_forward(x.dtype(), x.data(), y.data(), blk.outer, blk.n, blk.inner, log);

  if (any_requires_grad({x})) {
    auto node = std::make_shared<SoftmaxBackward>(log, y, blk);
    node->cost = cost;
    set_history(node, {x}, {y});
  }
  if (forward_ad::any_tangent({x})) {
    forward_ad::RuleScope rule;
    const Tensor t = forward_ad::tangent_of(x);
    if (log) {  // t_y = t - Σ_d softmax ⊙ t
      forward_ad::set_tangent(y, sub(t, sum(mul(exp(y), t), {d}, true)));
    } else {  // t_y = y ⊙ (t - Σ_d y ⊙ t)
      forward_ad::set_tangent(y, mul(y, sub(t, sum(mul(y, t), {d}, true))));
    }
  }
  return y;
}

}  // namespace

Tensor softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(x, dim, false);
}
Tensor log_softmax(const Tensor& x, int64_t dim) {
  return softmax_impl(x, dim, true);
}

Cost softmax_cost(const Shape& x, DType dt) {
  // Per element: the max comparison, the subtraction of the max, the exp, the add into the row sum,
  // and the final scaling (softmax: × 1/sum; log_softmax: − log-sum-exp) = 5 FLOPs; the per-row
  // reciprocal or log is negligible. Bytes: x read once, y written once.
  const double n = static_cast<double>(numel(x));
  return {5 * n, 2 * n * static_cast<double>(dtype_size(dt))};
}

}  // namespace tilegrad
