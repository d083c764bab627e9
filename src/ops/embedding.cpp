// Embedding lookup: forward, backward node, JVP rule, cost.
//
// Indices are validated on the backend before the output is even allocated, so a bad token id
// leaves no half-written state behind. The backward needs only the indices (the lookup is linear in
// the weight), and the JVP is the same lookup applied to the weight's tangent.
#include "ops/embedding.h"

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/op_scope.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

class EmbeddingBackward final : public Node {
 public:
  EmbeddingBackward(const Tensor& indices, const Shape& weight, DType dt)
      : Node("embedding"), V_(weight[0]), C_(weight[1]), dt_(dt) {
    idx_ = save(indices);
  }
  // The weight's gradient is added into one already waiting for it when nothing else can see that
  // one (a tied weight: GPT's head gives wte a full [V, C] gradient first). Only the rows that
  // some index hits are then touched, where writing a whole [V, C] gradient of mostly zeros and
  // adding the two read and wrote it four times more (a GPT-2 step: 0.3 ms).
  bool adds_into_input_grad(size_t i) const override { return i == 0; }

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined() || !needs_input_grad(0)) return {Tensor()};
    const Tensor g = contiguous(grads[0]);  // (n, C) as rows
    const Tensor idx = saved(idx_);
    Tensor gw;
    bool accumulate = false;
    if (waiting_grad(0).defined()) {
      Tensor& w0 = waiting_grad(0);
      // In place only when nothing else holds it and no graph records it (a gradient of the
      // gradient would).
      if (w0.unshared() && !w0.requires_grad() && w0.dtype() == dt_ && w0.device() == g.device() &&
          w0.is_contiguous() && w0.shape() == Shape{V_, C_}) {
        gw = std::move(w0);
        accumulate = true;
      }
    }
    if (!accumulate) gw = empty_output({V_, C_}, dt_, g.device());
    backend_of(g).embedding_backward(dt_, g.data(), idx.dtype(), idx.data(), gw.data(), idx.numel(),
                                     C_, V_, accumulate);
    return {gw};
  }

 private:
  int64_t V_, C_;
  DType dt_;
  size_t idx_;
};

}  // namespace

Tensor embedding(const Tensor& weight, const Tensor& indices) {
  check_defined("embedding", weight, "weight");
  check_defined("embedding", indices, "indices");
  TG_CHECK(weight.dim() == 2, "embedding: weight must be [V, C], got ", shape_str(weight.shape()),
           " (indices ", shape_str(indices.shape()), ")");
  TG_CHECK(is_floating(weight.dtype()), "embedding: weight must be a float tensor, got ",
           dtype_name(weight.dtype()), " of shape ", shape_str(weight.shape()));
  TG_CHECK(indices.dtype() == DType::i32 || indices.dtype() == DType::i64,
           "embedding: indices must be int32 or int64, got ", dtype_name(indices.dtype()),
           " of shape ", shape_str(indices.shape()));
  TG_CHECK(weight.device() == indices.device(), "embedding: weight on ", weight.device().str(),
           ", indices on ", indices.device().str());
  const int64_t V = weight.size(0), C = weight.size(1);
  Shape out_shape = indices.shape();
  out_shape.push_back(C);
  check_shape(out_shape, "embedding");

  const Tensor idx = contiguous(indices);
  const int64_t n = idx.numel();
  // Any value in [0, V) can stand for "ignore nothing": in-range values are never reported anyway.
  // With V == 0 every index is out of range, and no value in [0, 0) exists to stand in.
  TG_CHECK(V > 0 || n == 0, "embedding: weight ", shape_str(weight.shape()),
           " has no rows, but indices ", shape_str(indices.shape()), " has ", n, " elements");
  int64_t bad_value = 0;
  const int64_t bad =
      backend_of(idx).find_out_of_range(idx.dtype(), idx.data(), n, 0, V, 0, &bad_value);
  TG_CHECK(bad < 0, "embedding: index ", bad_value, " at position ", bad, " (flat) is out of range",
           " [0, ", V, ") for weight ", shape_str(weight.shape()), " and indices ",
           shape_str(indices.shape()));

  const Cost cost = embedding_cost(weight.shape(), indices.shape(), weight.dtype(), idx.dtype());
  OpScope scope("embedding", cost);
  const Tensor w = contiguous(weight);
  Tensor out = empty_output(out_shape, w.dtype(), w.device());
  backend_of(w).embedding_forward(w.dtype(), w.data(), idx.dtype(), idx.data(), out.data(), n, C);

  if (any_requires_grad({w})) {
    auto node = std::make_shared<EmbeddingBackward>(idx, w.shape(), w.dtype());
    node->cost = cost;
    set_history(node, {w}, {out});
  }
  if (forward_ad::any_tangent({w})) {
    forward_ad::RuleScope rule;
    forward_ad::set_tangent(out, embedding(forward_ad::tangent_of(w), idx));
  }
  return out;
}

Cost embedding_cost(const Shape& weight, const Shape& indices, DType dt, DType idx_dt) {
  // A pure gather: no arithmetic; each selected row is read once and written once.
  const double n = static_cast<double>(numel(indices));
  const double C = weight.size() == 2 ? static_cast<double>(weight[1]) : 0.0;
  return {0.0, n * static_cast<double>(dtype_size(idx_dt)) +
                   2 * n * C * static_cast<double>(dtype_size(dt))};
}

}  // namespace tilegrad
