// Reductions: sum, mean, max over dimensions, and sum_to. Backward of sum is a broadcast view of
// the incoming gradient (no copy); max routes the gradient to the maxima, split evenly among ties.
#include "ops/reduce.h"

#include <algorithm>

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/op_scope.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

// Sorted, unique, wrapped dims; all dims when `dims` is empty.
std::vector<int64_t> normalize_dims(const std::vector<int64_t>& dims, int64_t ndim,
                                    const char* op) {
  std::vector<int64_t> out;
  if (dims.empty()) {
    for (int64_t d = 0; d < ndim; ++d) out.push_back(d);
    return out;
  }
  for (int64_t d : dims) out.push_back(wrap_dim(d, ndim, op));
  std::sort(out.begin(), out.end());
  TG_CHECK(std::adjacent_find(out.begin(), out.end()) == out.end(), op,
           ": a dimension is listed twice");
  return out;
}

struct ReducedShapes {
  Shape keep;  // x's shape with 1 on reduced dims
  Shape out;   // the result's shape (keep, or keep without the reduced dims)
};

ReducedShapes reduced_shapes(const Shape& x, const std::vector<int64_t>& dims, bool keepdim) {
  ReducedShapes r{x, {}};
  for (int64_t d : dims) r.keep[d] = 1;
  for (size_t d = 0; d < x.size(); ++d) {
    if (keepdim || !std::binary_search(dims.begin(), dims.end(), static_cast<int64_t>(d))) {
      r.out.push_back(r.keep[d]);
    }
  }
  return r;
}

// Runs the reduction kernel and returns the result in `shapes.out` (a view of the keep-shaped
// data).
Tensor run_reduce(ReduceOp op, const char* name, const Tensor& x, const ReducedShapes& shapes) {
  if (op == ReduceOp::max) {
    TG_CHECK(x.numel() > 0, name, ": cannot take the max of an empty tensor of shape ",
             shape_str(x.shape()));
  }
  OpScope scope(name, reduce_cost(x.shape(), shapes.keep, x.dtype()));
  Tensor keep = empty_output(shapes.keep, x.dtype(), x.device());
  backend_of(x).reduce(op, strided(x), strided(keep));
  return make_view(keep, shapes.out, contiguous_strides(shapes.out), 0);
}

class SumBackward final : public Node {
 public:
  SumBackward(const Shape& x, const Shape& keep) : Node("sum"), x_(x), keep_(keep) {}
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    return {expand(reshape(grads[0], keep_), x_)};
  }

 private:
  Shape x_, keep_;
};

class MaxBackward final : public Node {
 public:
  MaxBackward(const Tensor& x, const Tensor& max_keep) : Node("max"), keep_(max_keep.shape()) {
    x_ = save(x);
    max_ = save(max_keep);
  }
  // The share of the gradient each element receives: [x == max] / (number of ties).
  static Tensor route(const Tensor& x, const Tensor& max_keep, const std::vector<int64_t>& dims) {
    const Tensor mask = eq(x, max_keep);
    // No reduced dimension of size > 1: every element is its own maximum. (An empty `dims` would
    // mean "all dimensions" to sum.)
    if (dims.empty()) return mask;
    return div(mask, sum(mask, dims, true));
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined()) return {Tensor()};
    const Tensor x = saved(x_);
    std::vector<int64_t> dims;
    for (size_t d = 0; d < keep_.size(); ++d) {
      if (keep_[d] == 1 && x.shape()[d] != 1) dims.push_back(static_cast<int64_t>(d));
    }
    return {mul(reshape(grads[0], keep_), route(x, saved(max_), dims))};
  }

 private:
  Shape keep_;
  size_t x_, max_;
};

}  // namespace

Tensor sum(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined("sum", x);
  check_floating("sum", x);
  const auto d = normalize_dims(dims, x.dim(), "sum");
  const ReducedShapes shapes = reduced_shapes(x.shape(), d, keepdim);
  Tensor out = run_reduce(ReduceOp::sum, "sum", x, shapes);
  if (any_requires_grad({x})) {
    auto node = std::make_shared<SumBackward>(x.shape(), shapes.keep);
    node->cost = reduce_cost(x.shape(), shapes.keep, x.dtype());
    set_history(node, {x}, {out});
  }
  if (forward_ad::any_tangent({x})) {
    forward_ad::RuleScope rule;
    forward_ad::set_tangent(out, sum(forward_ad::tangent_of(x), d, keepdim));
  }
  return out;
}

Tensor mean(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined("mean", x);
  const auto d = normalize_dims(dims, x.dim(), "mean");
  int64_t count = 1;
  for (int64_t i : d) count *= x.shape()[i];
  TG_CHECK(count > 0, "mean: reducing over zero elements (shape ", shape_str(x.shape()), ")");
  return mul(sum(x, d, keepdim), 1.0 / static_cast<double>(count));
}

Tensor max(const Tensor& x, const std::vector<int64_t>& dims, bool keepdim) {
  check_defined("max", x);
  check_floating("max", x);
  const auto d = normalize_dims(dims, x.dim(), "max");
  const ReducedShapes shapes = reduced_shapes(x.shape(), d, keepdim);
  Tensor out = run_reduce(ReduceOp::max, "max", x, shapes);
  const Tensor keep_view = make_view(out, shapes.keep, contiguous_strides(shapes.keep), 0);
  if (any_requires_grad({x})) {
    auto node = std::make_shared<MaxBackward>(x, keep_view);
    node->cost = reduce_cost(x.shape(), shapes.keep, x.dtype());
    set_history(node, {x}, {out});
  }
  if (forward_ad::any_tangent({x})) {
    forward_ad::RuleScope rule;
    const Tensor share = MaxBackward::route(x, keep_view, d);
    forward_ad::set_tangent(out, sum(mul(forward_ad::tangent_of(x), share), d, keepdim));
  }
  return out;
}

Tensor sum_to(const Tensor& x, const Shape& shape) {
  if (x.shape() == shape) return x;
  const int64_t lead = x.dim() - static_cast<int64_t>(shape.size());
  TG_CHECK(lead >= 0, "sum_to: cannot reduce ", shape_str(x.shape()), " to ", shape_str(shape));
  std::vector<int64_t> dims;
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (d < lead) {
      dims.push_back(d);
    } else if (shape[d - lead] == 1 && x.shape()[d] != 1) {
      dims.push_back(d);
    } else {
      TG_CHECK(shape[d - lead] == x.shape()[d], "sum_to: cannot reduce ", shape_str(x.shape()),
               " to ", shape_str(shape));
    }
  }
  if (dims.empty()) return reshape(x, shape);
  return reshape(sum(x, dims, true), shape);
}

Cost reduce_cost(const Shape& x, const Shape& out, DType dt) {
  const double n = static_cast<double>(numel(x));
  return {n, (n + static_cast<double>(numel(out))) * static_cast<double>(dtype_size(dt))};
}

}  // namespace tilegrad
