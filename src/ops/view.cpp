// Views (reshape, transpose, permute, slice, expand, unsqueeze, squeeze) and copies (contiguous,
// clone, to). A view shares its input's storage and version counter; its backward maps the gradient
// back to the input's shape (slice pads with zeros, expand sums over the broadcast dimensions).
#include "ops/view.h"

#include <algorithm>
#include <numeric>
#include <optional>

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/factory.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"

namespace tilegrad {

namespace {

// Records `out` as a view of `x` made by op `name`: `back` maps a gradient of out to one of x, and
// `tangent` maps x's tangent to out's (both are the same linear map family as the view).
template <class Back, class Fwd>
Tensor finish_view(const char* name, const Tensor& x, Tensor out, Back back, Fwd tangent) {
  class ViewBackward final : public Node {
   public:
    ViewBackward(const char* n, Back b) : Node(n), back_(std::move(b)) {}
    std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
      if (!grads[0].defined() || !needs_input_grad(0)) return {Tensor()};
      return {back_(grads[0])};
    }

   private:
    Back back_;
  };
  if (any_requires_grad({x}))
    set_history(std::make_shared<ViewBackward>(name, std::move(back)), {x}, {out});
  if (forward_ad::any_tangent({x})) {
    forward_ad::RuleScope rule;
    forward_ad::set_tangent(out, tangent(forward_ad::tangent_of(x)));
  }
  return out;
}

}  // namespace

Shape infer_shape(const Shape& shape, int64_t n, const char* op) {
  Shape out = shape;
  int64_t known = 1, infer = -1;
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == -1) {
      TG_CHECK(infer < 0, op, ": only one dimension can be -1 in ", shape_str(shape));
      infer = static_cast<int64_t>(i);
    } else {
      TG_CHECK(out[i] >= 0, op, ": invalid size in ", shape_str(shape));
      known *= out[i];
    }
  }
  if (infer >= 0) {
    TG_CHECK(known > 0 && n % known == 0, op, ": cannot infer -1 in ", shape_str(shape), " for ", n,
             " elements");
    out[infer] = n / known;
  }
  TG_CHECK(numel(out) == n, op, ": shape ", shape_str(shape), " does not fit ", n, " elements");
  check_shape(out, op);
  return out;
}

// Strides that let `shape` view the elements of (old_shape, old_strides) in row-major order without
// a copy, if any exist. Dimensions of the old layout that are laid out as one contiguous run (each
// stride = next stride × next size) can be split and merged freely; a new dimension may not
// straddle two such runs.
std::optional<Strides> view_strides(const Shape& old_shape, const Strides& old_strides,
                                    const Shape& shape) {
  Strides out(shape.size(), 0);
  if (numel(old_shape) == 0 || old_shape.empty()) {
    return contiguous_strides(shape);
  }
  int64_t view_d = static_cast<int64_t>(shape.size()) - 1;
  int64_t chunk_base_stride = old_strides.back();  // stride of the innermost dim of the current run
  int64_t tensor_numel = 1, view_numel = 1;
  for (int64_t d = static_cast<int64_t>(old_shape.size()) - 1; d >= 0; --d) {
    tensor_numel *= old_shape[d];
    // End of a contiguous run: before dim 0, or where dim d-1 does not continue dim d.
    if (d == 0 ||
        (old_shape[d - 1] != 1 && old_strides[d - 1] != tensor_numel * chunk_base_stride)) {
      while (view_d >= 0 && (view_numel < tensor_numel || shape[view_d] == 1)) {
        out[view_d] = view_numel * chunk_base_stride;
        view_numel *= shape[view_d];
        --view_d;
      }
      if (view_numel != tensor_numel) return std::nullopt;
      if (d > 0) {
        chunk_base_stride = old_strides[d - 1];
        tensor_numel = 1;
        view_numel = 1;
      }
    }
  }
  if (view_d != -1) return std::nullopt;
  return out;
}

Tensor reshape(const Tensor& x, const Shape& shape) {
  check_defined("reshape", x);
  const Shape target = infer_shape(shape, x.numel(), "reshape");
  if (target == x.shape()) return x;
  // A view when the layout allows one (always for contiguous tensors); otherwise a copy first.
  Tensor src = x;
  std::optional<Strides> strides = view_strides(x.shape(), x.strides(), target);
  if (!strides) {
    src = contiguous(x);
    strides = contiguous_strides(target);
  }
  const Shape in = x.shape();
  Tensor out = make_view(src, target, *strides, src.offset());
  return finish_view(
      "reshape", src, out, [in](const Tensor& g) { return reshape(g, in); },
      [target](const Tensor& t) { return reshape(t, target); });
}

Tensor permute(const Tensor& x, const std::vector<int64_t>& dims) {
  check_defined("permute", x);
  TG_CHECK(static_cast<int64_t>(dims.size()) == x.dim(), "permute: ", dims.size(),
           " dims given for a tensor of shape ", shape_str(x.shape()));
  std::vector<int64_t> p(dims.size()), inverse(dims.size());
  std::vector<bool> seen(dims.size(), false);
  Shape shape(dims.size());
  Strides strides(dims.size());
  for (size_t i = 0; i < dims.size(); ++i) {
    p[i] = wrap_dim(dims[i], x.dim(), "permute");
    TG_CHECK(!seen[p[i]], "permute: dimension ", dims[i], " repeated");
    seen[p[i]] = true;
    inverse[p[i]] = static_cast<int64_t>(i);
    shape[i] = x.shape()[p[i]];
    strides[i] = x.strides()[p[i]];
  }
  Tensor out = make_view(x, shape, strides, x.offset());
  return finish_view(
      "permute", x, out, [inverse](const Tensor& g) { return permute(g, inverse); },
      [p](const Tensor& t) { return permute(t, p); });
}

Tensor transpose(const Tensor& x, int64_t d0, int64_t d1) {
  check_defined("transpose", x);
  std::vector<int64_t> p(static_cast<size_t>(x.dim()));
  std::iota(p.begin(), p.end(), 0);
  std::swap(p[wrap_dim(d0, x.dim(), "transpose")], p[wrap_dim(d1, x.dim(), "transpose")]);
  return permute(x, p);
}

Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step) {
  check_defined("slice", x);
  const int d = wrap_dim(dim, x.dim(), "slice");
  TG_CHECK(step > 0, "slice: step must be positive, got ", step);
  const int64_t n = x.shape()[d];
  // Python semantics: negative indices count from the end; out-of-range bounds are clamped.
  auto clamp = [n](int64_t i) { return std::clamp<int64_t>(i < 0 ? i + n : i, 0, n); };
  const int64_t s = clamp(start), e = std::max(clamp(end), clamp(start));
  Shape shape = x.shape();
  Strides strides = x.strides();
  shape[d] = (e - s + step - 1) / step;
  strides[d] *= step;
  Tensor out = make_view(x, shape, strides, x.offset() + s * x.strides()[d]);
  const Shape in = x.shape();
  return finish_view(
      "slice", x, out,
      [in, d, s, e, step](const Tensor& g) {
        Tensor gx = zeros(in, {g.dtype(), g.device()});
        gx.slice(d, s, e, step).copy_(g);
        return gx;
      },
      [d, s, e, step](const Tensor& t) { return slice(t, d, s, e, step); });
}

Tensor expand(const Tensor& x, const Shape& shape) {
  check_defined("expand", x);
  const int64_t lead = static_cast<int64_t>(shape.size()) - x.dim();
  TG_CHECK(lead >= 0, "expand: cannot expand ", shape_str(x.shape()), " to fewer dimensions ",
           shape_str(shape));
  Shape out_shape(shape.size());
  Strides strides(shape.size());
  for (int64_t i = 0; i < static_cast<int64_t>(shape.size()); ++i) {
    const int64_t xi = i - lead;
    const int64_t want = shape[i] == -1 && xi >= 0 ? x.shape()[xi] : shape[i];
    if (xi < 0) {
      TG_CHECK(want >= 0, "expand: invalid size in ", shape_str(shape));
      out_shape[i] = want;
      strides[i] = 0;
    } else {
      const int64_t have = x.shape()[xi];
      TG_CHECK(want == have || have == 1, "expand: cannot expand ", shape_str(x.shape()), " to ",
               shape_str(shape), " (dimension ", i, ": ", have, " -> ", want, ")");
      out_shape[i] = want;
      strides[i] = want == have ? x.strides()[xi] : 0;
    }
  }
  check_shape(out_shape, "expand");
  if (out_shape == x.shape()) return x;
  Tensor out = make_view(x, out_shape, strides, x.offset());
  const Shape in = x.shape();
  return finish_view(
      "expand", x, out, [in](const Tensor& g) { return sum_to(g, in); },
      [out_shape](const Tensor& t) { return expand(t, out_shape); });
}

Tensor unsqueeze(const Tensor& x, int64_t dim) {
  check_defined("unsqueeze", x);
  const int d = wrap_dim(dim, x.dim() + 1, "unsqueeze");
  Shape shape = x.shape();
  shape.insert(shape.begin() + d, 1);
  return reshape(x, shape);
}

Tensor squeeze(const Tensor& x, int64_t dim) {
  check_defined("squeeze", x);
  const int d = wrap_dim(dim, x.dim(), "squeeze");
  TG_CHECK(x.shape()[d] == 1, "squeeze: dimension ", dim, " of ", shape_str(x.shape()),
           " has size ", x.shape()[d], ", not 1");
  Shape shape = x.shape();
  shape.erase(shape.begin() + d);
  Strides strides = x.strides();
  strides.erase(strides.begin() + d);
  Tensor out = make_view(x, shape, strides, x.offset());
  const Shape in = x.shape();
  return finish_view(
      "squeeze", x, out, [in](const Tensor& g) { return reshape(g, in); },
      [d](const Tensor& t) { return squeeze(t, d); });
}

Tensor clone(const Tensor& x) {
  check_defined("clone", x);
  OpScope scope("copy", Cost{0, 2.0 * static_cast<double>(x.nbytes())});
  Tensor out = empty_output(x.shape(), x.dtype(), x.device());
  backend_of(x).copy(strided(x), strided(out));
  return finish_view(
      "copy", x, out, [](const Tensor& g) { return g; }, [](const Tensor& t) { return clone(t); });
}

Tensor contiguous(const Tensor& x) {
  check_defined("contiguous", x);
  return x.is_contiguous() ? x : clone(x);
}

Tensor to_dtype(const Tensor& x, DType dtype) {
  check_defined("to", x);
  if (x.dtype() == dtype) return x;
  const DType from = x.dtype();
  OpScope scope("cast", Cost{0, static_cast<double>(x.numel()) *
                                    static_cast<double>(dtype_size(from) + dtype_size(dtype))});
  Tensor out = empty_output(x.shape(), dtype, x.device());
  backend_of(x).copy(strided(x), strided(out));
  if (!is_floating(dtype) || !is_floating(from)) return out;  // no gradient through integer casts
  return finish_view(
      "cast", x, out, [from](const Tensor& g) { return to_dtype(g, from); },
      [dtype](const Tensor& t) { return to_dtype(t, dtype); });
}

Tensor to_device(const Tensor& x, Device device) {
  check_defined("to", x);
  if (x.device() == device) return x;
  const Device from = x.device();
  // Device to device goes through the host; tilegrad runs on one GPU per process so far.
  if (!from.is_cpu() && !device.is_cpu()) return to_device(to_device(x, Device::cpu()), device);
  const Tensor src = x.contiguous();
  OpScope scope("to_device", Cost{0, 2.0 * static_cast<double>(src.nbytes())});
  // The copy keeps the bytes' category (parameters stay parameters) unless a scope says otherwise.
  Tensor out =
      empty(src.shape(), {src.dtype(), device, current_category_or(src.storage()->category())});
  if (from.is_cpu()) {
    backend(device).copy_from_host(src.data(), out.data(), src.nbytes());
  } else {
    backend(from).copy_to_host(src.data(), out.data(), src.nbytes());
  }
  if (!is_floating(x.dtype())) return out;
  return finish_view(
      "to_device", x, out, [from](const Tensor& g) { return to_device(g, from); },
      [device](const Tensor& t) { return to_device(t, device); });
}

// The Tensor methods of core/tensor.h.
Tensor Tensor::reshape(const Shape& shape) const {
  return tilegrad::reshape(*this, shape);
}
Tensor Tensor::transpose(int64_t d0, int64_t d1) const {
  return tilegrad::transpose(*this, d0, d1);
}
Tensor Tensor::permute(const std::vector<int64_t>& dims) const {
  return tilegrad::permute(*this, dims);
}
Tensor Tensor::slice(int64_t dim, int64_t start, int64_t end, int64_t step) const {
  return tilegrad::slice(*this, dim, start, end, step);
}
Tensor Tensor::expand(const Shape& shape) const {
  return tilegrad::expand(*this, shape);
}
Tensor Tensor::unsqueeze(int64_t dim) const {
  return tilegrad::unsqueeze(*this, dim);
}
Tensor Tensor::squeeze(int64_t dim) const {
  return tilegrad::squeeze(*this, dim);
}
Tensor Tensor::contiguous() const {
  return tilegrad::contiguous(*this);
}
Tensor Tensor::clone() const {
  return tilegrad::clone(*this);
}
Tensor Tensor::to(DType dtype) const {
  return to_dtype(*this, dtype);
}
Tensor Tensor::to(Device device) const {
  return to_device(*this, device);
}

}  // namespace tilegrad
