// layer_norm: argument checks, forward, backward node, forward-mode rule, cost.
//
// The forward also produces each row's mean and rstd = 1/sqrt(var + eps) ([rows], in the
// accumulation dtype); the backward reuses them instead of recomputing two reductions per row. They
// cost 2 · rows values against the rows · C of x, so saving them is nearly free. The node saves
// only what the wanted gradients read: gb needs nothing but the incoming gradient; gw needs x̂,
// from x, mean and rstd (or from y, rstd, weight and bias: LayerNormSaves::output); gx needs those
// and the weight.
#include "ops/layernorm.h"

#include "autograd/forward_ad.h"
#include "autograd/grad_col_sums.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

DType accumulation_dtype(DType dt) {
  return dt == DType::f64 ? DType::f64 : DType::f32;
}

// The number of rows normalised: every dimension but the last.
int64_t rows_of(const Shape& x) {
  return numel(Shape(x.begin(), x.end() - 1));
}

void check_affine(const Tensor& x, const Tensor& p, const char* what) {
  if (!p.defined()) return;
  const int64_t C = x.size(-1);
  TG_CHECK(p.device() == x.device(), "layer_norm: ", what, " is on ", p.str(),
           " but the input is on ", x.str());
  TG_CHECK(p.dtype() == x.dtype(), "layer_norm: ", what, " has dtype ", dtype_name(p.dtype()),
           ", expected the input's dtype ", dtype_name(x.dtype()), " (input ", shape_str(x.shape()),
           ")");
  TG_CHECK(p.shape() == Shape{C}, "layer_norm: ", what, " has shape ", shape_str(p.shape()),
           ", expected [C] = [", C, "] for input ", shape_str(x.shape()));
}

class LayerNormBackward final : public Node {
 public:
  // `v` is x, or y with LayerNormSaves::output.
  LayerNormBackward(const Tensor& v, const Tensor& w, const Tensor& b, const Tensor& mean,
                    const Tensor& rstd, bool need_x, bool need_w, LayerNormSaves saves)
      : Node("layer_norm"),
        C_(v.size(-1)),
        rows_(rows_of(v.shape())),
        from_output_(saves == LayerNormSaves::output) {
    const bool stats = need_x || need_w;
    v_ = save(stats ? v : Tensor());
    mean_ = save(stats && !from_output_ ? mean : Tensor());
    rstd_ = save(stats ? rstd : Tensor());
    w_ = save(need_x || (stats && from_output_) ? w : Tensor());
    b_ = save(stats && from_output_ ? b : Tensor());
  }

  // gx is written in the pass that computes it, added to the gradient already waiting for x (the
  // residual path's, in a transformer block), instead of a separate add.
  bool adds_into_input_grad(size_t i) const override { return i == 0; }

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined()) return {Tensor(), Tensor(), Tensor()};
    const bool need_x = needs_input_grad(0), need_w = needs_input_grad(1),
               need_b = needs_input_grad(2);
    const Tensor g = grads[0].contiguous();
    if (!need_x && !need_w) {  // gb alone: the gradient summed over rows
      return {Tensor(), Tensor(), need_b ? sum_to(g, {C_}) : Tensor()};
    }
    const Tensor v = saved(v_), mean = saved(mean_), rstd = saved(rstd_);
    const Tensor w = saved(w_), b = saved(b_);
    Tensor gx, gw, gb;
    if (need_x) gx = empty_output_like(v);
    if (need_w) gw = empty_output({C_}, v.dtype(), v.device());
    if (need_b) gb = empty_output({C_}, v.dtype(), v.device());
    // The waiting gradient, when the kernel can read it as it is (else the engine adds it).
    Tensor add_to;
    if (need_x && waiting_grad(0).defined()) {
      const Tensor& w0 = waiting_grad(0);
      if (w0.dtype() == v.dtype() && w0.device() == v.device() && w0.is_contiguous())
        add_to = std::move(waiting_grad(0));
    }
    // gx's column sums, made in the same pass, when the node that gx goes to sums it for a bias
    // gradient (a transformer's projections: gx is the residual stream's gradient).
    const Edge& to = next_edges()[0];
    Tensor gx_sum;
    if (need_x && to.valid() && to.node->takes_output_col_sums(to.input_nr))
      gx_sum = empty_output({C_}, v.dtype(), v.device());
    auto ptr = [](const Tensor& t) -> void* { return t.defined() ? t.data() : nullptr; };
    const LayerNormSaved from{.v = v.data(),
                              .mean = ptr(mean),
                              .rstd = rstd.data(),
                              .b = ptr(b),
                              .from_output = from_output_};
    backend_of(v).layernorm_backward(v.dtype(), g.data(), from, ptr(w), ptr(gx), ptr(gw), ptr(gb),
                                     rows_, C_, ptr(add_to), ptr(gx_sum));
    if (gx_sum.defined()) attach_col_sums(gx, std::move(gx_sum));
    return {gx, gw, gb};
  }

 private:
  int64_t C_, rows_;
  bool from_output_;
  size_t v_, mean_, rstd_, w_, b_;
};

// t_y for tangents tx, tw, tb (any may be undefined), computed in the accumulation dtype.
Tensor layer_norm_tangent(const Tensor& x, const Tensor& w, const Tensor& row_mean,
                          const Tensor& row_rstd, const Tensor& tx, const Tensor& tw,
                          const Tensor& tb) {
  const DType acc = row_mean.dtype();
  Shape keep = x.shape();
  keep.back() = 1;
  const Tensor mu = reshape(row_mean, keep), rs = reshape(row_rstd, keep);  // (..., 1)
  const Tensor xhat = mul(sub(x.to(acc), mu), rs);
  Tensor t;
  if (tx.defined()) {
    // t_x̂ = rstd · (t_x − mean(t_x) − x̂ · mean(t_x ⊙ x̂)): the variance moves with t_x too.
    const Tensor ta = tx.to(acc);
    const Tensor centred = sub(ta, mean(ta, {-1}, true));
    t = mul(rs, sub(centred, mul(xhat, mean(mul(ta, xhat), {-1}, true))));
    if (w.defined()) t = mul(t, w.to(acc));
  }
  if (tw.defined()) {
    const Tensor term = mul(xhat, tw.to(acc));
    t = t.defined() ? add(t, term) : term;
  }
  if (tb.defined()) t = t.defined() ? add(t, tb.to(acc)) : expand(tb.to(acc), x.shape());
  return t.to(x.dtype());
}

}  // namespace

Tensor layer_norm(const Tensor& input, const Tensor& weight, const Tensor& bias, double eps,
                  LayerNormSaves saves) {
  check_defined("layer_norm", input);
  check_floating("layer_norm", input);
  TG_CHECK(input.dim() >= 1, "layer_norm: the input needs at least 1 dimension, got a 0-d tensor");
  check_affine(input, weight, "weight");
  check_affine(input, bias, "bias");
  TG_CHECK(eps >= 0, "layer_norm: eps must be >= 0, got ", eps);

  const Tensor x = input.contiguous();
  const Tensor w = contiguous_or_undefined(weight);
  const Tensor b = contiguous_or_undefined(bias);
  const int64_t C = x.size(-1);
  const int64_t rows = rows_of(x.shape());

  const Cost cost = layer_norm_cost(x.shape(), x.dtype());
  OpScope scope("layer_norm", cost);
  Tensor y = empty_output_like(x);
  const DType acc = accumulation_dtype(x.dtype());
  Tensor mean = empty_output({rows}, acc, x.device());  // (rows)
  Tensor rstd = empty_output({rows}, acc, x.device());  // (rows)
  backend_of(x).layernorm_forward(x.dtype(), x.data(), w.defined() ? w.data() : nullptr,
                                  b.defined() ? b.data() : nullptr, y.data(), mean.data(),
                                  rstd.data(), rows, C, eps);

  if (any_requires_grad({x, w, b})) {
    auto node = std::make_shared<LayerNormBackward>(saves == LayerNormSaves::output ? y : x, w, b,
                                                    mean, rstd, x.requires_grad(),
                                                    w.defined() && w.requires_grad(), saves);
    node->cost = cost;
    set_history(node, {x, w, b}, {y});
  }
  if (forward_ad::any_tangent({x, w, b})) {
    forward_ad::RuleScope rule;
    forward_ad::set_tangent(y,
                            layer_norm_tangent(x, w, mean, rstd, forward_ad::tangent_of(x),
                                               w.defined() ? forward_ad::tangent_of(w) : Tensor(),
                                               b.defined() ? forward_ad::tangent_of(b) : Tensor()));
  }
  return y;
}

Cost layer_norm_cost(const Shape& x, DType dt) {
  // Per element: the add into the mean, the subtraction and square-and-add of the variance pass,
  // then (x − mean) · rstd · w + b = 4 more: 8 FLOPs. The per-row sqrt and division are negligible.
  // Bytes: x read, y written, weight and bias read (counted as present: the shape cannot tell), and
  // mean and rstd written in the accumulation dtype.
  const double n = static_cast<double>(numel(x));
  const double C = x.empty() ? 0.0 : static_cast<double>(x.back());
  const double rows = x.empty() ? 0.0 : static_cast<double>(rows_of(x));
  const double sz = static_cast<double>(dtype_size(dt));
  const double acc_sz = static_cast<double>(dtype_size(accumulation_dtype(dt)));
  return {8 * n, (2 * n + 2 * C) * sz + 2 * rows * acc_sz};
}

}  // namespace tilegrad
