// Fused softmax cross-entropy: forward, backward node, JVP rule, cost.
//
// The forward keeps only the per-row logsumexp (rows values, not rows × V probabilities); the
// backward recomputes softmax = exp(logits − lse) inside the gradient kernel. So the node saves the
// logits, the targets and lse: the logits are the one rows × V tensor the gradient cannot do
// without, and no second one (probabilities) is kept between forward and backward.
//
// The kernel takes one upstream gradient and a host scale, which covers mean (scale 1/count) and
// sum (scale 1) directly. For `none` each row has its own upstream gradient: the kernel runs with
// gradient 1 and the result is multiplied by the per-row gradients.
#include "ops/cross_entropy.h"

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

DType acc_dtype(DType dt) {
  return dt == DType::f64 ? DType::f64 : DType::f32;
}

// A 1-D kernel view of the contiguous tensor t.
StridedView flat(const Tensor& t) {
  StridedView v;
  v.data = t.data();
  v.dtype = t.dtype();
  v.ndim = 1;
  v.shape[0] = t.numel();
  v.strides[0] = 1;
  return v;
}

// glogits = (softmax − onehot(target)) · gloss · scale for every row (0 on ignored rows), in the
// logits' dtype. gloss is a single element of the accumulation dtype.
Tensor ce_grad(const Tensor& x, const Tensor& targets, const Tensor& lse, const Tensor& gloss,
               double scale, int64_t ignore_index) {
  const int64_t V = x.size(-1), rows = targets.numel();
  Tensor gx = empty_output(x.shape(), x.dtype(), x.device());
  backend_of(x).cross_entropy_backward(x.dtype(), x.data(), targets.dtype(), targets.data(),
                                       lse.data(), gloss.data(), scale, gx.data(), rows, V, V,
                                       ignore_index);
  return gx;
}

// The same with gloss = 1 and scale = 1: the Jacobian rows of the per-row losses.
Tensor ce_unit_grad(const Tensor& x, const Tensor& targets, const Tensor& lse,
                    int64_t ignore_index) {
  const Tensor one = full({}, 1.0, {acc_dtype(x.dtype()), x.device()});
  return ce_grad(x, targets, lse, one, 1.0, ignore_index);
}

Shape with_last(const Shape& s, int64_t last) {
  Shape out = s;
  out.push_back(last);
  return out;
}

class CrossEntropyBackward final : public Node {
 public:
  CrossEntropyBackward(const Tensor& x, const Tensor& targets, const Tensor& lse,
                       Reduction reduction, double scale, int64_t ignore_index)
      : Node("cross_entropy"), reduction_(reduction), scale_(scale), ignore_index_(ignore_index) {
    x_ = save(x);
    t_ = save(targets);
    lse_ = save(lse);
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined() || !needs_input_grad(0)) return {Tensor()};
    const Tensor x = saved(x_), targets = saved(t_), lse = saved(lse_);
    if (reduction_ == Reduction::none) {
      // (..., V) · (..., 1)
      const Tensor g = to_dtype(grads[0], x.dtype());
      return {mul(ce_unit_grad(x, targets, lse, ignore_index_),
                  reshape(g, with_last(targets.shape(), 1)))};
    }
    const Tensor g = contiguous(to_dtype(grads[0], acc_dtype(x.dtype())));
    return {ce_grad(x, targets, lse, g, scale_, ignore_index_)};
  }

 private:
  Reduction reduction_;
  double scale_;
  int64_t ignore_index_;
  size_t x_, t_, lse_;
};

// How many targets equal ignore_index, as a [1] float64 tensor on their device (n > 0). Targets
// were validated to lie in [0, V) or equal ignore_index, and such values are exact in float64.
Tensor ignored_on_device(const Tensor& targets, int64_t ignore_index) {
  const int64_t n = targets.numel();
  Backend& be = backend_of(targets);
  const TensorOptions ws{DType::f64, targets.device(), Category::workspace};
  Tensor hits = empty({n}, ws);
  be.copy(flat(targets), flat(hits));
  Tensor key = empty({1}, ws);
  be.fill(strided(key), static_cast<double>(ignore_index));
  be.binary(BinaryOp::eq, flat(hits), strided_as(key, {n}), flat(hits));
  Tensor count = empty({1}, ws);
  be.reduce(ReduceOp::sum, flat(hits), strided(count));
  return count;
}

}  // namespace

int64_t count_ignored(const Tensor& targets, int64_t ignore_index) {
  if (targets.numel() == 0) return 0;
  return static_cast<int64_t>(ignored_on_device(targets, ignore_index).item());
}

Tensor inverse_counted(const Tensor& targets, int64_t ignore_index, DType dt) {
  const int64_t n = targets.numel();
  Backend& be = backend_of(targets);
  const TensorOptions ws{DType::f64, targets.device(), Category::workspace};
  Tensor c;
  if (n == 0) {
    c = empty({1}, ws);
    be.fill(strided(c), 0.0);
  } else {
    c = ignored_on_device(targets, ignore_index);
  }
  be.scalar(ScalarOp::rsub, strided(c), static_cast<double>(n), strided(c));  // counted
  Tensor none = empty({1}, ws);  // counted + [counted == 0] = max(1, counted)
  be.fill(strided(none), 0.0);
  be.binary(BinaryOp::eq, strided(c), strided(none), strided(none));
  be.binary(BinaryOp::add, strided(c), strided(none), strided(c));
  be.scalar(ScalarOp::rdiv, strided(c), 1.0, strided(c));
  Tensor out = empty({}, {dt, targets.device(), Category::workspace});
  be.copy(strided(c), flat(out));  // flat: out as [1], c's shape
  return out;
}

Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index,
                     Reduction reduction) {
  check_defined("cross_entropy", logits, "logits");
  check_defined("cross_entropy", targets, "targets");
  TG_CHECK(is_floating(logits.dtype()), "cross_entropy: logits must be a float tensor, got ",
           dtype_name(logits.dtype()), " of shape ", shape_str(logits.shape()));
  TG_CHECK(targets.dtype() == DType::i32 || targets.dtype() == DType::i64,
           "cross_entropy: targets must be int32 or int64, got ", dtype_name(targets.dtype()),
           " of shape ", shape_str(targets.shape()));
  TG_CHECK(logits.device() == targets.device(), "cross_entropy: logits on ", logits.device().str(),
           ", targets on ", targets.device().str());
  TG_CHECK(logits.dim() >= 1 &&
               Shape(logits.shape().begin(), logits.shape().end() - 1) == targets.shape(),
           "cross_entropy: logits ", shape_str(logits.shape()),
           " must be [..., V] with targets [...]", " of the same leading shape, got targets ",
           shape_str(targets.shape()));
  const int64_t V = logits.size(-1);
  const int64_t rows = targets.numel();

  const Tensor t = contiguous(targets);
  int64_t bad_value = 0;
  const int64_t bad =
      backend_of(t).find_out_of_range(t.dtype(), t.data(), rows, 0, V, ignore_index, &bad_value);
  TG_CHECK(bad < 0, "cross_entropy: target ", bad_value, " at position ", bad,
           " (flat) is out of range [0, ", V, ") and is not ignore_index (", ignore_index,
           ") for logits ", shape_str(logits.shape()), " and targets ", shape_str(targets.shape()));

  const Cost cost = cross_entropy_cost(logits.shape(), logits.dtype());
  OpScope scope("cross_entropy", cost);
  const Tensor x = contiguous(logits);
  const DType acc = acc_dtype(x.dtype());
  Tensor losses = empty_output(targets.shape(), acc, x.device());
  Tensor lse = empty_output(targets.shape(), acc, x.device());
  Backend& be = backend_of(x);
  be.cross_entropy_forward(x.dtype(), x.data(), t.dtype(), t.data(), losses.data(), lse.data(),
                           rows, V, V, ignore_index);

  // mean over zero counted targets is defined as 0 (scale 0): see the header.
  double scale = 1.0;
  if (reduction == Reduction::mean) {
    const int64_t count = rows - count_ignored(t, ignore_index);
    scale = count > 0 ? 1.0 / static_cast<double>(count) : 0.0;
  }
  Tensor out = losses;
  if (reduction != Reduction::none) {
    out = empty_output({}, acc, x.device());
    // flat: out as [1], for the reduce kernel wants out with x's rank.
    be.reduce(ReduceOp::sum, flat(losses), flat(out));
    if (scale != 1.0) be.scalar(ScalarOp::mul, strided(out), scale, strided(out));
  }

  if (any_requires_grad({x})) {
    auto node = std::make_shared<CrossEntropyBackward>(x, t, lse, reduction, scale, ignore_index);
    node->cost = cost;
    set_history(node, {x}, {out});
  }
  if (forward_ad::any_tangent({x})) {
    forward_ad::RuleScope rule;
    // d loss_r = Σ_j (softmax − onehot)[r, j] · tangent[r, j], reduced like the loss.
    const Tensor jac = to_dtype(ce_unit_grad(x, t, lse, ignore_index), acc);
    const Tensor per_row = sum(mul(jac, to_dtype(forward_ad::tangent_of(x), acc)), {-1});
    Tensor tangent = per_row;
    if (reduction != Reduction::none) tangent = mul(sum(per_row, {}), scale);
    forward_ad::set_tangent(out, tangent);
  }
  return out;
}

Cost cross_entropy_cost(const Shape& logits, DType dt) {
  // Per logit: a max, a subtract, an exp and an add. Bytes: the logits once, plus per row an int64
  // target in and the loss and logsumexp (accumulation type) out.
  const double n = static_cast<double>(numel(logits));
  const double V = logits.empty() ? 1.0 : static_cast<double>(logits.back());
  const double rows = V > 0 ? n / V : 0.0;
  const double acc = dt == DType::f64 ? 8.0 : 4.0;
  return {4 * n, n * static_cast<double>(dtype_size(dt)) + rows * (8.0 + 2 * acc)};
}

}  // namespace tilegrad
