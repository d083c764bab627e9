// concat and split: forward, backward nodes, JVP rules, cost.
//
// concat allocates its output once and has the backend copy each input into its slice, whatever the
// inputs' layouts; its backward hands each input a view of the gradient (no copy). split is the
// reverse: its pieces are views of x, recorded by ONE node with an output per piece, so the
// backward runs once with all the pieces' gradients and assembles them into a single buffer of x's
// shape — a piece whose output was not used gets zeros there.
#include "ops/concat.h"

#include <string>

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/factory.h"
#include "ops/op_scope.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

// The kernel view of t's slice [start, start + len) along dimension d.
StridedView slice_view(const Tensor& t, int d, int64_t start, int64_t len) {
  StridedView v = strided(t);
  v.shape[d] = len;
  v.data = static_cast<char*>(t.data()) + start * t.stride(d) * static_cast<int64_t>(t.itemsize());
  return v;
}

std::string shapes_str(const std::vector<Tensor>& xs) {
  std::string s;
  for (size_t i = 0; i < xs.size(); ++i) {
    if (i > 0) s += ", ";
    s += xs[i].defined() ? shape_str(xs[i].shape()) : "undefined";
  }
  return s;
}

class ConcatBackward final : public Node {
 public:
  ConcatBackward(int dim, std::vector<int64_t> sizes)
      : Node("concat"), dim_(dim), sizes_(std::move(sizes)) {}
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    std::vector<Tensor> out(sizes_.size());
    const Tensor& g = grads[0];
    if (!g.defined()) return out;
    int64_t start = 0;
    for (size_t i = 0; i < sizes_.size(); ++i) {
      if (needs_input_grad(i)) out[i] = slice(g, dim_, start, start + sizes_[i]);
      start += sizes_[i];
    }
    return out;
  }

 private:
  int dim_;
  std::vector<int64_t> sizes_;
};

class SplitBackward final : public Node {
 public:
  SplitBackward(const Tensor& x, int dim, std::vector<int64_t> sizes)
      : Node("split"),
        shape_(x.shape()),
        dtype_(x.dtype()),
        device_(x.device()),
        dim_(dim),
        sizes_(std::move(sizes)) {}
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    bool any = false, all = true;
    for (const Tensor& g : grads) {
      any = any || g.defined();
      all = all && g.defined();
    }
    if (!any || !needs_input_grad(0)) return {Tensor()};
    if (all) {
      if (Tensor joined = already_joined(grads); joined.defined()) return {joined};
    }
    Tensor gx = empty_output(shape_, dtype_, device_);
    Backend& be = backend_of(gx);
    if (!all) be.fill(strided(gx), 0.0);  // an unused piece's gradient is zero
    int64_t start = 0;
    for (size_t i = 0; i < sizes_.size(); ++i) {
      if (grads[i].defined() && sizes_[i] > 0) {
        be.copy(strided(grads[i]), slice_view(gx, dim_, start, sizes_[i]));
      }
      start += sizes_[i];
    }
    return {gx};
  }

 private:
  // The pieces' gradients as one contiguous tensor of x's shape when they already are its slices —
  // views of one storage at the offsets and strides that slicing that tensor gives (as when an
  // attention backward writes dq, dk and dv into one packed buffer) — so joining them copies
  // nothing. Undefined otherwise.
  Tensor already_joined(const std::vector<Tensor>& grads) const {
    const Tensor& first = grads[0];
    if (sizes_[0] == 0) return Tensor();  // the first piece must locate the joined tensor
    const Strides strides = contiguous_strides(shape_);
    const auto storage_elems = static_cast<int64_t>(first.storage()->nbytes() / dtype_size(dtype_));
    if (first.dtype() != dtype_ || first.offset() + numel(shape_) > storage_elems) return Tensor();
    int64_t start = 0;
    for (size_t i = 0; i < grads.size(); ++i) {
      const Tensor& g = grads[i];
      if (g.storage() != first.storage() || g.dtype() != dtype_) return Tensor();
      if (sizes_[i] > 0) {
        if (g.offset() != first.offset() + start * strides[dim_]) return Tensor();
        for (int64_t d = 0; d < g.dim(); ++d) {
          if (g.size(d) > 1 && g.stride(d) != strides[d]) return Tensor();
        }
      }
      start += sizes_[i];
    }
    return make_view(first, shape_, strides, first.offset());
  }

  Shape shape_;
  DType dtype_;
  Device device_;
  int dim_;
  std::vector<int64_t> sizes_;
};

}  // namespace

Tensor concat(const std::vector<Tensor>& xs, int64_t dim) {
  TG_CHECK(!xs.empty(), "concat: needs at least one tensor");
  for (const Tensor& x : xs) {
    TG_CHECK(x.defined(), "concat: an input is an undefined tensor (shapes: ", shapes_str(xs), ")");
  }
  const Tensor& first = xs[0];
  for (const Tensor& x : xs) {
    TG_CHECK(x.dtype() == first.dtype() && x.device() == first.device(),
             "concat: all tensors need one dtype and device, got ", first.str(), " and ", x.str(),
             " (shapes: ", shapes_str(xs), ")");
    TG_CHECK(x.dim() == first.dim(), "concat: all tensors need the same rank, got shapes ",
             shapes_str(xs));
  }
  TG_CHECK(first.dim() >= 1, "concat: cannot concatenate 0-d tensors (shapes: ", shapes_str(xs),
           ")");
  const int d = wrap_dim(dim, first.dim(), "concat");
  Shape out_shape = first.shape();
  out_shape[d] = 0;
  std::vector<int64_t> sizes;
  for (const Tensor& x : xs) {
    for (int64_t k = 0; k < first.dim(); ++k) {
      TG_CHECK(k == d || x.shape()[k] == first.shape()[k], "concat: sizes must match except on ",
               "dimension ", d, ", got shapes ", shapes_str(xs));
    }
    sizes.push_back(x.shape()[d]);
    out_shape[d] += x.shape()[d];
  }
  check_shape(out_shape, "concat");

  double bytes = 0;
  for (const Tensor& x : xs) bytes += 2.0 * static_cast<double>(x.nbytes());
  OpScope scope("concat", Cost{0, bytes});
  Tensor out = empty_output(out_shape, first.dtype(), first.device());
  Backend& be = backend_of(out);
  int64_t start = 0;
  for (const Tensor& x : xs) {
    if (x.shape()[d] > 0) be.copy(strided(x), slice_view(out, d, start, x.shape()[d]));
    start += x.shape()[d];
  }

  if (any_requires_grad(xs)) {
    auto node = std::make_shared<ConcatBackward>(d, sizes);
    node->cost = Cost{0, bytes};
    set_history(node, xs, {out});
  }
  if (forward_ad::any_tangent(xs)) {
    forward_ad::RuleScope rule;
    std::vector<Tensor> ts;
    for (const Tensor& x : xs) {
      const Tensor t = forward_ad::tangent_of(x);
      ts.push_back(t.defined() ? t : zeros(x.shape(), {x.dtype(), x.device()}));
    }
    forward_ad::set_tangent(out, concat(ts, d));
  }
  return out;
}

std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim) {
  check_defined("split", x);
  TG_CHECK(x.dim() >= 1, "split: cannot split a 0-d tensor");
  const int d = wrap_dim(dim, x.dim(), "split");
  int64_t total = 0;
  for (int64_t s : sizes) {
    TG_CHECK(s >= 0, "split: sizes must be non-negative, got ", shape_str(sizes), " for x ",
             shape_str(x.shape()), " on dimension ", d);
    total += s;
  }
  TG_CHECK(total == x.size(d), "split: sizes ", shape_str(sizes), " add up to ", total, ", but x ",
           shape_str(x.shape()), " has ", x.size(d), " on dimension ", d);

  std::vector<Tensor> outs;
  int64_t start = 0;
  for (int64_t s : sizes) {
    Shape shape = x.shape();
    shape[d] = s;
    outs.push_back(make_view(x, shape, x.strides(), x.offset() + start * x.stride(d)));
    start += s;
  }
  if (outs.empty()) return outs;
  if (any_requires_grad({x})) set_history(std::make_shared<SplitBackward>(x, d, sizes), {x}, outs);
  if (forward_ad::any_tangent({x})) {
    forward_ad::RuleScope rule;
    const std::vector<Tensor> ts = split(forward_ad::tangent_of(x), sizes, d);
    for (size_t i = 0; i < outs.size(); ++i) forward_ad::set_tangent(outs[i], ts[i]);
  }
  return outs;
}

}  // namespace tilegrad
