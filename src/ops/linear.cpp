// The fused linear op (ops/linear.h). The forward is one GEMM whose epilogue adds the bias and
// applies the activation; x's leading dimensions fold into the GEMM's rows. The backward is
// gp = g · act'(pre), dx = gp · wᵀ through matmul, and dw = xᵀ · gp with db, the column sums of gp,
// from that GEMM's epilogue (GemmEpilogue::bias_grad), so the bias gradient costs no pass of its
// own over gp either — or, where the op that made gp summed its columns in passing (a layer norm's
// backward: autograd/grad_col_sums.h), from those sums, and the GEMM runs without the epilogue.
#include "ops/linear.h"

#include <tuple>

#include "autograd/forward_ad.h"
#include "autograd/grad_col_sums.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/matmul.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

class LinearBackward final : public Node {
 public:
  LinearBackward(const Tensor& x, const Tensor& w, const Tensor& pre, bool need_x, bool need_w,
                 Activation act)
      : Node("linear"), act_(act) {
    x_ = save(need_w ? x : Tensor());  // dw = xᵀ gp reads x
    w_ = save(need_x ? w : Tensor());  // dx = gp wᵀ reads w
    pre_ = save(pre);                  // gp = g · gelu'(pre); undefined without an activation
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor(), Tensor(), Tensor()};
    const Tensor gp =
        act_ == Activation::gelu ? unary_derivative(UnaryOp::gelu, g, saved(pre_)) : g;
    Tensor gx, gw, gb;
    if (needs_input_grad(0)) gx = matmul(gp, saved(w_).transpose(0, 1));
    std::tie(gw, gb) = linear_param_grads(saved(x_), gp, needs_input_grad(1), needs_input_grad(2));
    // The residual's gradient is the output's: the same tensor, no copy.
    return {gx, gw, gb, needs_input_grad(3) ? g : Tensor()};
  }
  // db is g's column sums when there is no activation (linear_param_grads).
  bool takes_output_col_sums(size_t output_nr) const override {
    return output_nr == 0 && act_ == Activation::none && needs_input_grad(2);
  }

 private:
  Activation act_;
  size_t x_, w_, pre_;
};

}  // namespace

Tensor linear_product(const Tensor& x, const Tensor& w, const Tensor& b, Activation act,
                      Tensor* pre, const Tensor& residual) {
  TG_ASSERT(x.is_contiguous() && (!b.defined() || b.is_contiguous()) &&
                (act == Activation::none || pre != nullptr) &&
                (!residual.defined() || (act == Activation::none && residual.is_contiguous())),
            "linear_product: operands");
  const int64_t K = w.size(0), N = w.size(1);
  const int64_t rows = x.numel() / std::max<int64_t>(K, 1);
  const Shape out_shape = linear_output_shape(x.shape(), N);
  check_shape(out_shape, "linear");
  const GemmOperand W = gemm_operand(w, {});
  Tensor out = empty_output(out_shape, x.dtype(), x.device());
  if (act == Activation::gelu) *pre = empty_output(out_shape, x.dtype(), x.device());

  GemmArgs g =
      gemm_args(x.dtype(), false, W.trans, rows, N, K, 1.0, x.data(), std::max<int64_t>(K, 1),
                W.t.data(), W.ld, 0.0, out.data(), std::max<int64_t>(N, 1));
  if (b.defined()) {
    g.epilogue = act == Activation::gelu ? GemmEpilogue::bias_gelu : GemmEpilogue::bias;
    g.bias = b.data();
  } else if (act == Activation::gelu) {
    g.epilogue = GemmEpilogue::gelu;
  }
  g.pre_act = act == Activation::gelu ? pre->data() : nullptr;
  if (residual.defined()) {
    g.c_in = residual.data();
    g.beta = 1.0;
  }
  backend_of(x).gemm(g);
  return out;
}

std::pair<Tensor, Tensor> linear_param_grads(const Tensor& x_saved, const Tensor& gp, bool need_w,
                                             bool need_b) {
  const int64_t N = gp.size(-1);
  Tensor gw, gb;
  // db made in passing by the op that made gp (autograd/grad_col_sums.h): the GEMM below then
  // runs without the bias-gradient epilogue, which costs it more than the sums cost that op.
  if (need_b) gb = take_col_sums(gp, N);
  if (need_w) {
    // dw = xᵀ gp, with db, gp's column sums, from the same GEMM's epilogue when they are wanted
    // and not made yet.
    const bool fuse_b = need_b && !gb.defined();
    const Tensor x = x_saved.contiguous();
    const Tensor g2 = reshape(gp, {-1, N}).contiguous();
    const int64_t K = x.size(-1), rows = g2.size(0);
    gw = empty_output({K, N}, gp.dtype(), gp.device());
    if (fuse_b) gb = empty_output({N}, gp.dtype(), gp.device());
    GemmArgs args =
        gemm_args(gp.dtype(), true, false, K, N, rows, 1.0, x.data(), std::max<int64_t>(K, 1),
                  g2.data(), std::max<int64_t>(N, 1), 0.0, gw.data(), std::max<int64_t>(N, 1));
    if (fuse_b) {
      args.epilogue = GemmEpilogue::bias_grad;
      args.bias_grad = gb.data();
    }
    backend_of(gp).gemm(args);
  } else if (need_b && !gb.defined()) {
    gb = sum_to(gp, {N});
  }
  return {gw, gb};
}

Shape linear_output_shape(const Shape& x, int64_t N) {
  Shape out(x.begin(), x.end() - 1);
  out.push_back(N);
  return out;
}

void check_residual(const char* op, const Tensor& residual, const Shape& out) {
  TG_CHECK(!residual.defined() || residual.shape() == out, op, ": the residual ",
           shape_str(residual.shape()), " must have the output's shape ", shape_str(out));
}

Tensor linear_tangent(const Tensor& x, const Tensor& tx, const Tensor& w, const Tensor& tw,
                      const Tensor& tb, const Shape& out_shape, Activation act, const Tensor& pre,
                      const Tensor& tr) {
  Tensor t;
  auto plus = [&t](const Tensor& u) { t = t.defined() ? add(t, u) : u; };
  if (tx.defined()) plus(matmul(tx, w));
  if (tw.defined()) plus(matmul(x, tw));
  if (tb.defined()) plus(tb);
  if (tr.defined()) plus(tr);
  if (!t.defined()) return t;  // no tangent reaches the output
  if (t.shape() != out_shape) t = expand(t, out_shape);
  if (act == Activation::gelu) t = unary_derivative(UnaryOp::gelu, t, pre);
  return t;
}

Tensor linear(const Tensor& x_in, const Tensor& w, const Tensor& b, Activation act,
              const Tensor& residual) {
  check_defined("linear", x_in);
  check_defined("linear", w, "weight");
  check_floating("linear", x_in);
  std::vector<Tensor> operands{x_in, w};
  if (b.defined()) operands.push_back(b);
  if (residual.defined()) operands.push_back(residual);
  check_compatible("linear", operands);
  TG_CHECK(x_in.dim() >= 1 && w.dim() == 2 && w.size(0) == x_in.size(-1), "linear: x ",
           shape_str(x_in.shape()), " and w ", shape_str(w.shape()),
           " do not compose: w must be [K, N] with K = x's last size");
  const int64_t N = w.size(1);
  TG_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == N), "linear: b ", shape_str(b.shape()),
           " must be [", N, "]");
  const Shape out_shape = linear_output_shape(x_in.shape(), N);
  check_residual("linear", residual, out_shape);
  TG_CHECK(!residual.defined() || act == Activation::none,
           "linear: a residual is added after the bias, so it takes no activation");
  const Cost cost =
      linear_cost(x_in.shape(), N, x_in.dtype(), b.defined(), act, residual.defined());
  OpScope scope("linear", cost);
  Tensor x = x_in, bias = b, res = residual;
  {
    NoGradGuard no_grad;  // copies that only serve the GEMM; gradients flow to the originals
    x = x.contiguous();
    bias = contiguous_or_undefined(bias);
    res = contiguous_or_undefined(res);
  }
  Tensor pre;
  Tensor out = linear_product(x, w, bias, act, &pre, res);

  if (any_requires_grad({x_in, w, b, residual})) {
    auto node =
        std::make_shared<LinearBackward>(x, w, pre, x_in.requires_grad(), w.requires_grad(), act);
    node->cost = cost;
    set_history(node, {x_in, w, b, residual}, {out});
  }
  if (forward_ad::any_tangent({x_in, w, b, residual})) {
    forward_ad::RuleScope rule;
    forward_ad::set_tangent(
        out, linear_tangent(x, forward_ad::tangent_of(x_in), w, forward_ad::tangent_of(w),
                            forward_ad::tangent_of(b), out_shape, act, pre,
                            forward_ad::tangent_of(residual)));
  }
  return out;
}

Cost linear_cost(const Shape& x, int64_t N, DType dt, bool bias, Activation act, bool residual) {
  const int64_t K = x.empty() ? 1 : x.back();
  const double rows = static_cast<double>(numel(x)) / static_cast<double>(std::max<int64_t>(K, 1));
  const double n = static_cast<double>(N), k = static_cast<double>(K);
  const double sz = static_cast<double>(dtype_size(dt));
  const double outputs = rows * n * (act == Activation::gelu ? 2 : 1);
  double flops = 2 * rows * n * k;
  if (bias) flops += rows * n;
  if (act == Activation::gelu) flops += rows * n * unary_flops_per_element(UnaryOp::gelu);
  if (residual) flops += rows * n;
  return {flops, (static_cast<double>(numel(x)) + k * n + (bias ? n : 0) + outputs +
                  (residual ? rows * n : 0)) *
                     sz};
}

}  // namespace tilegrad
