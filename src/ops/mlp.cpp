// The fused MLP (ops/mlp.h). Forward: the two linear layers' GEMMs with their epilogues (bias +
// GELU storing the pre-activation, then bias). Backward, for the output gradient g:
//   dh         = g w2ᵀ                          (one plain GEMM)
//   dpre, h,   = dh · gelu'(pre), gelu(pre),    (one pass over pre and dh:
//   db1          Σ dpre                          Backend::gelu_backward_fused; dpre over dh)
//   dw2, db2   = hᵀ g, Σ g                      (one GEMM; db2 made in passing by the layer norm
//                                                that made g: autograd/grad_col_sums.h, or by the
//                                                GEMM's bias-gradient epilogue)
//   dw1        = xᵀ dpre                        (one plain GEMM: db1 came with dpre)
//   dx         = dpre w1ᵀ
// h is recomputed rather than kept (ops/mlp.h), in the pass that makes dpre, which reads pre
// anyway, and written over pre when nothing else can see it (h_over_pre). On the GPU that pass
// stands for three costlier ones: the GEMM's GELU-gradient epilogue (cuBLASLt's DGELU, which reads
// pre at well below the memory's rate), h's recomputation, and the bias-gradient epilogue of dw1's
// GEMM (kernels/cuda/gelu_backward.cu has the figures).
#include "ops/mlp.h"

#include <algorithm>
#include <tuple>

#include "autograd/forward_ad.h"
#include "autograd/grad_col_sums.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/linear.h"
#include "ops/matmul.h"
#include "ops/op_scope.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

// inputs: x, w1, b1, w2, b2, residual.
class MlpBackward final : public Node {
 public:
  MlpBackward(const Tensor& x, const Tensor& w1, const Tensor& w2, const Tensor& pre,
              const std::vector<bool>& need)
      : Node("mlp") {
    // dw1 = xᵀ dpre reads x; dx reads w1; dpre reads w2 whenever anything below the GELU is
    // wanted.
    const bool below = need[0] || need[1] || need[2];
    x_ = save(need[1] ? x : Tensor());
    w1_ = save(need[0] ? w1 : Tensor());
    w2_ = save(below ? w2 : Tensor());
    pre_ = save(pre);
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor(), Tensor(), Tensor(), Tensor(), Tensor()};
    const Tensor pre = saved(pre_).contiguous();
    const bool below = needs_input_grad(0) || needs_input_grad(1) || needs_input_grad(2);
    Tensor gx, gw1, gb1, gw2, gb2, dpre, h;
    if (below) {
      dpre = hidden_grad(g, saved(w2_));
      const int64_t M = pre.size(-1), rows = pre.numel() / std::max<int64_t>(M, 1);
      const bool over_pre = needs_input_grad(3) && h_over_pre(pre);
      if (needs_input_grad(3))
        h = over_pre ? pre : empty_output(pre.shape(), pre.dtype(), pre.device());
      const Tensor db1 =
          needs_input_grad(2) ? empty_output({M}, pre.dtype(), pre.device()) : Tensor();
      backend_of(pre).gelu_backward_fused(pre.dtype(), pre.data(), dpre.data(),
                                          h.defined() ? h.data() : nullptr,
                                          db1.defined() ? db1.data() : nullptr, rows, M);
      if (over_pre) pre.storage()->bump_version();
      // linear_param_grads takes them for b1's gradient in place of a pass of its own.
      if (db1.defined()) attach_col_sums(dpre, db1);
    } else if (needs_input_grad(3)) {
      h = gelu(pre);
    }
    if (needs_input_grad(3) || needs_input_grad(4)) {
      std::tie(gw2, gb2) = linear_param_grads(h, g, needs_input_grad(3), needs_input_grad(4));
      h = Tensor();  // alive only until its weight gradient is made
    }
    if (below) {
      std::tie(gw1, gb1) =
          linear_param_grads(saved(x_), dpre, needs_input_grad(1), needs_input_grad(2));
      if (needs_input_grad(0)) gx = matmul(dpre, saved(w1_).transpose(0, 1));
    }
    // The residual's gradient is the output's: the same tensor, no copy.
    return {gx, gw1, gb1, gw2, gb2, needs_input_grad(5) ? g : Tensor()};
  }
  // db2 is g's column sums (linear_param_grads).
  bool takes_output_col_sums(size_t output_nr) const override {
    return output_nr == 0 && needs_input_grad(4);
  }

 private:
  // Whether h can be written over pre (Backend::gelu_backward_fused allows it): the pass reads pre
  // for the last time, and the saved tensors go once this backward returns, so the backward then
  // holds one [rows, M] buffer (pre's gradient) beside the saved ones rather than two. Only when
  // nothing else can still see pre: not under retain_graph, and nothing but this function and the
  // saved slot holds its tensor (nothing but this function when a saved-tensor hook's unpack made
  // it: a checkpoint's recomputation, say), nor another tensor or view its storage.
  bool h_over_pre(const Tensor& pre) const {
    if (!releases_saved_after_apply()) return false;
    const SavedTensor& s = saved_tensors()[pre_];
    if (!s.is_packed() && s.peek().impl_ptr() != pre.impl_ptr()) return false;  // a copy
    const long holders = s.is_packed() ? 1 : 2;
    return pre.impl_ptr().use_count() == holders && pre.storage().use_count() == 1;
  }

  // h's gradient g · w2ᵀ, [..., M] as pre, by one GEMM without an epilogue: the MLP's own call
  // (not matmul's), so that profiles and memory traces count it to this op.
  static Tensor hidden_grad(const Tensor& g, const Tensor& w2) {
    const int64_t M = w2.size(0), N = w2.size(1);
    const Tensor g2 = reshape(g, {-1, N}).contiguous();
    const int64_t rows = g2.size(0);
    // w2ᵀ as a GEMM operand: w2 [M, N] read transposed (or a transposed view read as stored).
    const GemmOperand W = gemm_operand(w2.transpose(0, 1), {});
    Shape shape = g.shape();
    shape.back() = M;
    Tensor dh = empty_output(shape, g.dtype(), g.device());
    backend_of(g).gemm(gemm_args(g.dtype(), false, W.trans, rows, M, N, 1.0, g2.data(),
                                 std::max<int64_t>(N, 1), W.t.data(), W.ld, 0.0, dh.data(),
                                 std::max<int64_t>(M, 1)));
    return dh;
  }

  size_t x_, w1_, w2_, pre_;
};

void check_weight(const Tensor& w, const Tensor& b, int64_t K, const char* wn, const char* bn) {
  TG_CHECK(w.dim() == 2 && w.size(0) == K, "mlp: ", wn, " ", shape_str(w.shape()), " must be [", K,
           ", *]");
  TG_CHECK(!b.defined() || (b.dim() == 1 && b.size(0) == w.size(1)), "mlp: ", bn, " ",
           shape_str(b.shape()), " must be [", w.size(1), "]");
}

}  // namespace

Tensor mlp(const Tensor& x_in, const Tensor& w1, const Tensor& b1, const Tensor& w2,
           const Tensor& b2, const Tensor& residual) {
  check_defined("mlp", x_in);
  check_defined("mlp", w1, "weight");
  check_defined("mlp", w2, "weight");
  check_floating("mlp", x_in);
  std::vector<Tensor> operands{x_in, w1, w2};
  for (const Tensor* t : {&b1, &b2, &residual})
    if (t->defined()) operands.push_back(*t);
  check_compatible("mlp", operands);
  TG_CHECK(x_in.dim() >= 1, "mlp: x must have at least one dimension");
  check_weight(w1, b1, x_in.size(-1), "w1", "b1");
  check_weight(w2, b2, w1.size(1), "w2", "b2");
  const int64_t M = w1.size(1), N = w2.size(1);
  check_residual("mlp", residual, linear_output_shape(x_in.shape(), N));

  const Cost cost =
      mlp_cost(x_in.shape(), M, N, x_in.dtype(), residual.defined(), b1.defined(), b2.defined());
  OpScope scope("mlp", cost);
  Tensor x = x_in, c1 = b1, c2 = b2, res = residual;
  {
    NoGradGuard no_grad;  // copies that only serve the GEMMs; gradients flow to the inputs
    x = x.contiguous();
    c1 = contiguous_or_undefined(c1);
    c2 = contiguous_or_undefined(c2);
    res = contiguous_or_undefined(res);
  }
  Tensor pre;
  // h lives only in this scope: the backward recomputes it from pre.
  const Tensor h = linear_product(x, w1, c1, Activation::gelu, &pre);
  Tensor out = linear_product(h, w2, c2, Activation::none, nullptr, res);

  const std::vector<Tensor> inputs{x_in, w1, b1, w2, b2, residual};
  if (any_requires_grad(inputs)) {
    std::vector<bool> need;
    for (const Tensor& t : inputs) need.push_back(t.defined() && t.requires_grad());
    auto node = std::make_shared<MlpBackward>(x, w1, w2, pre, need);
    node->cost = cost;
    set_history(node, inputs, {out});
  }
  if (forward_ad::any_tangent(inputs)) {
    forward_ad::RuleScope rule;
    const Tensor th =
        linear_tangent(x, forward_ad::tangent_of(x_in), w1, forward_ad::tangent_of(w1),
                       forward_ad::tangent_of(b1), h.shape(), Activation::gelu, pre);
    forward_ad::set_tangent(
        out,
        linear_tangent(h, th, w2, forward_ad::tangent_of(w2), forward_ad::tangent_of(b2),
                       out.shape(), Activation::none, Tensor(), forward_ad::tangent_of(residual)));
  }
  return out;
}

Cost mlp_cost(const Shape& x, int64_t M, int64_t N, DType dt, bool residual, bool bias1,
              bool bias2) {
  Shape hidden = x;
  if (hidden.empty()) hidden.push_back(1);
  hidden.back() = M;
  Cost c = linear_cost(x, M, dt, bias1, Activation::gelu);
  c += linear_cost(hidden, N, dt, bias2, Activation::none, residual);
  return c;
}

}  // namespace tilegrad
