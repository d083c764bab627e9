// Unary math ops (neg, exp, log, tanh, relu, gelu, sigmoid, sqrt): forward, backward, JVP, cost.
//
// Each backward is one fused kernel, gx = gy · f'(saved), reading x or y — whichever f' is cheaper
// from (exp, tanh, sigmoid and sqrt read their output; the rest their input). The JVP rule is the
// same kernel applied to the tangent, since f'(x) · t is an elementwise product too.
#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/op_scope.h"

namespace tilegrad {

Tensor unary_derivative(UnaryOp op, const Tensor& g, const Tensor& saved) {
  Tensor gx = empty_output_like(saved);
  backend_of(saved).unary_backward(op, strided_as(g, saved.shape()), strided(saved), strided(gx));
  return gx;
}

namespace {

class UnaryBackward final : public Node {
 public:
  UnaryBackward(UnaryOp op, const Tensor& saved) : Node(unary_op_name(op)), op_(op) {
    saved_ = save(op == UnaryOp::neg ? Tensor() : saved);
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined() || !needs_input_grad(0)) return {Tensor()};
    if (op_ == UnaryOp::neg) return {neg(g)};
    return {unary_derivative(op_, g, saved(saved_))};
  }

 private:
  UnaryOp op_;
  size_t saved_;
};

Tensor unary_op(UnaryOp op, const Tensor& x) {
  const char* name = unary_op_name(op);
  check_defined(name, x);
  check_floating(name, x);
  const Cost cost = unary_cost(op, x.shape(), x.dtype());
  OpScope scope(name, cost);
  Tensor y = empty_output_like(x);
  backend_of(x).unary(op, strided(x), strided(y));
  const Tensor& operand = unary_backward_reads(op) == SavedOperand::input ? x : y;
  if (any_requires_grad({x})) {
    auto node = std::make_shared<UnaryBackward>(op, operand);
    node->cost = cost;
    set_history(node, {x}, {y});
  }
  if (forward_ad::any_tangent({x})) {
    forward_ad::RuleScope rule;
    const Tensor t = forward_ad::tangent_of(x);
    forward_ad::set_tangent(y, op == UnaryOp::neg ? neg(t) : unary_derivative(op, t, operand));
  }
  return y;
}

}  // namespace

Tensor neg(const Tensor& x) {
  return unary_op(UnaryOp::neg, x);
}
Tensor exp(const Tensor& x) {
  return unary_op(UnaryOp::exp, x);
}
Tensor log(const Tensor& x) {
  return unary_op(UnaryOp::log, x);
}
Tensor tanh(const Tensor& x) {
  return unary_op(UnaryOp::tanh, x);
}
Tensor relu(const Tensor& x) {
  return unary_op(UnaryOp::relu, x);
}
Tensor gelu(const Tensor& x) {
  return unary_op(UnaryOp::gelu, x);
}
Tensor sigmoid(const Tensor& x) {
  return unary_op(UnaryOp::sigmoid, x);
}
Tensor sqrt(const Tensor& x) {
  return unary_op(UnaryOp::sqrt, x);
}

double unary_flops_per_element(UnaryOp op) {
  switch (op) {
    case UnaryOp::gelu:
      return 8;
    case UnaryOp::sigmoid:
      return 3;
    default:
      return 1;
  }
}

Cost unary_cost(UnaryOp op, const Shape& x, DType dt) {
  const double n = static_cast<double>(numel(x));
  return {n * unary_flops_per_element(op), 2 * n * static_cast<double>(dtype_size(dt))};
}

}  // namespace tilegrad
