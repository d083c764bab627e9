// Binary (broadcasting) and scalar elementwise ops: forward, backward nodes, JVP rules, costs.
//
// A backward node saves only what the gradients it must produce read: mul saves b only if a needs
// a gradient, and a only if b does — an input that needs no gradient costs no saved memory.
#include <cmath>

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

// a + b where either may be undefined (undefined = zero).
Tensor add_maybe(const Tensor& a, const Tensor& b) {
  if (!a.defined()) return b;
  if (!b.defined()) return a;
  return add(a, b);
}

class BinaryBackward final : public Node {
 public:
  BinaryBackward(BinaryOp op, const Tensor& a, const Tensor& b, bool need_a, bool need_b)
      : Node(binary_op_name(op)), op_(op), a_shape_(a.shape()), b_shape_(b.shape()) {
    // Which operands the gradient formulas read.
    const bool save_a = (op == BinaryOp::mul && need_b) || (op == BinaryOp::div && need_b);
    const bool save_b = (op == BinaryOp::mul && need_a) || op == BinaryOp::div;
    a_ = save(save_a ? a : Tensor());
    b_ = save(save_b ? b : Tensor());
  }

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor()};
    Tensor ga, gb;
    const bool need_a = needs_input_grad(0), need_b = needs_input_grad(1);
    switch (op_) {
      case BinaryOp::add:
        if (need_a) ga = g;
        if (need_b) gb = g;
        break;
      case BinaryOp::sub:
        if (need_a) ga = g;
        if (need_b) gb = neg(g);
        break;
      case BinaryOp::mul:
        if (need_a) ga = mul(g, saved(b_));
        if (need_b) gb = mul(g, saved(a_));
        break;
      case BinaryOp::div: {
        const Tensor b = saved(b_);
        if (need_a) ga = div(g, b);
        if (need_b) gb = neg(div(mul(g, saved(a_)), mul(b, b)));  // -g a / b²
        break;
      }
      case BinaryOp::eq:
        break;  // piecewise constant: no gradient
    }
    return {ga.defined() ? sum_to(ga, a_shape_) : ga, gb.defined() ? sum_to(gb, b_shape_) : gb};
  }

 private:
  BinaryOp op_;
  Shape a_shape_, b_shape_;
  size_t a_, b_;
};

Tensor binary_op(BinaryOp op, const Tensor& a, const Tensor& b) {
  const char* name = binary_op_name(op);
  check_compatible(name, {a, b});
  check_floating(name, a);
  const Shape shape = broadcast_shapes(a.shape(), b.shape(), name);
  check_shape(shape, name);
  const Cost cost = binary_cost(op, a.shape(), b.shape(), a.dtype());
  OpScope scope(name, cost);
  Tensor out = empty_output(shape, a.dtype(), a.device());
  backend_of(a).binary(op, strided_as(a, shape), strided_as(b, shape), strided(out));

  if (op != BinaryOp::eq && any_requires_grad({a, b})) {
    auto node = std::make_shared<BinaryBackward>(op, a, b, a.requires_grad(), b.requires_grad());
    node->cost = cost;
    set_history(node, {a, b}, {out});
  }
  if (op != BinaryOp::eq && forward_ad::any_tangent({a, b})) {
    forward_ad::RuleScope rule;
    const Tensor ta = forward_ad::tangent_of(a), tb = forward_ad::tangent_of(b);
    Tensor t;
    switch (op) {
      case BinaryOp::add:
        t = add_maybe(ta, tb);
        break;
      case BinaryOp::sub:
        t = add_maybe(ta, tb.defined() ? neg(tb) : tb);
        break;
      case BinaryOp::mul:
        t = add_maybe(ta.defined() ? mul(ta, b) : ta, tb.defined() ? mul(a, tb) : tb);
        break;
      case BinaryOp::div:
        t = add_maybe(ta.defined() ? div(ta, b) : ta,
                      tb.defined() ? neg(div(mul(a, tb), mul(b, b))) : tb);
        break;
      case BinaryOp::eq:
        break;
    }
    if (t.shape() != shape) t = expand(t, shape);
    forward_ad::set_tangent(out, t);
  }
  return out;
}

class ScalarBackward final : public Node {
 public:
  ScalarBackward(ScalarOp op, double s, const Tensor& x, const Tensor& y)
      : Node(scalar_op_name(op)), op_(op), s_(s) {
    if (op == ScalarOp::pow || op == ScalarOp::rdiv) x_ = save(x);
    if (op == ScalarOp::rdiv) y_ = save(y);  // d(s/x)/dx = -s/x² = -y/x
  }

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined() || !needs_input_grad(0)) return {Tensor()};
    return {scalar_grad(op_, s_, g, x_ == kNone ? Tensor() : saved(x_),
                        y_ == kNone ? Tensor() : saved(y_))};
  }

  // d(op(x, s))/dx · g (also the JVP rule with g = tangent).
  static Tensor scalar_grad(ScalarOp op, double s, const Tensor& g, const Tensor& x,
                            const Tensor& y) {
    switch (op) {
      case ScalarOp::add:
        return g;
      case ScalarOp::mul:
        return mul(g, s);
      case ScalarOp::rsub:
        return neg(g);
      case ScalarOp::rdiv:
        return neg(mul(g, div(y, x)));
      case ScalarOp::pow:
        if (s == 0.0) return mul(g, 0.0);
        if (s == 1.0) return g;
        if (s == 2.0) return mul(g, mul(x, 2.0));
        return mul(g, mul(pow(x, s - 1.0), s));
    }
    return Tensor();
  }

 private:
  static constexpr size_t kNone = static_cast<size_t>(-1);
  ScalarOp op_;
  double s_;
  size_t x_ = kNone, y_ = kNone;
};

Tensor scalar_op(ScalarOp op, const Tensor& a, double s) {
  const char* name = scalar_op_name(op);
  check_defined(name, a);
  check_floating(name, a);
  const Cost cost = scalar_cost(op, a.shape(), a.dtype());
  OpScope scope(name, cost);
  Tensor out = empty_output_like(a);
  backend_of(a).scalar(op, strided(a), s, strided(out));
  if (any_requires_grad({a})) {
    auto node = std::make_shared<ScalarBackward>(op, s, a, out);
    node->cost = cost;
    set_history(node, {a}, {out});
  }
  if (forward_ad::any_tangent({a})) {
    forward_ad::RuleScope rule;
    forward_ad::set_tangent(out,
                            ScalarBackward::scalar_grad(op, s, forward_ad::tangent_of(a), a, out));
  }
  return out;
}

}  // namespace

Tensor add(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::add, a, b);
}
Tensor sub(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::sub, a, b);
}
Tensor mul(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::mul, a, b);
}
Tensor div(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::div, a, b);
}
Tensor eq(const Tensor& a, const Tensor& b) {
  return binary_op(BinaryOp::eq, a, b);
}

Tensor add(const Tensor& a, double s) {
  return scalar_op(ScalarOp::add, a, s);
}
Tensor mul(const Tensor& a, double s) {
  return scalar_op(ScalarOp::mul, a, s);
}
Tensor rsub(double s, const Tensor& a) {
  return scalar_op(ScalarOp::rsub, a, s);
}
Tensor rdiv(double s, const Tensor& a) {
  return scalar_op(ScalarOp::rdiv, a, s);
}
Tensor pow(const Tensor& a, double exponent) {
  return scalar_op(ScalarOp::pow, a, exponent);
}

Cost binary_cost(BinaryOp, const Shape& a, const Shape& b, DType dt) {
  const double n = static_cast<double>(numel(broadcast_shapes(a, b, "binary_cost")));
  const double sz = static_cast<double>(dtype_size(dt));
  return {n, (static_cast<double>(numel(a)) + static_cast<double>(numel(b)) + n) * sz};
}

Cost scalar_cost(ScalarOp, const Shape& a, DType dt) {
  const double n = static_cast<double>(numel(a));
  return {n, 2 * n * static_cast<double>(dtype_size(dt))};
}

}  // namespace tilegrad
