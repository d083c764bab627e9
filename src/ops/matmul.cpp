// Matrix multiply through the backend's GEMM.
//
// Layouts: an operand whose last two dimensions are row-major (unit column stride) goes to GEMM as
// is; one that is column-major — a transposed view such as w.t() — goes with the transpose flag;
// only other layouts are copied. So the backward's g · bᵀ and aᵀ · g never copy b or a. A 2-D right
// operand with a batched left operand (x [B, T, C] · w [C, N], the Linear case) folds the batch
// into the rows: one large GEMM, and a backward that sums over the batch inside that GEMM.
#include "ops/matmul.h"

#include "autograd/forward_ad.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/elementwise.h"
#include "ops/op_scope.h"
#include "ops/reduce.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

// The single stride that steps through the batch dimensions of t (broadcast to `batch`), if any.
bool batch_stride_of(const Tensor& t, const Shape& batch, int64_t* stride) {
  const int64_t lead = static_cast<int64_t>(batch.size()) - (t.dim() - 2);
  int64_t expected = -1;  // stride the next-outer dimension must have
  int64_t inner = 0;
  bool first = true;
  for (int64_t d = static_cast<int64_t>(batch.size()) - 1; d >= 0; --d) {
    const int64_t td = d - lead;
    const bool broadcast = td < 0 || (t.shape()[td] == 1 && batch[d] != 1);
    const int64_t s = broadcast ? 0 : t.strides()[td];
    if (batch[d] == 1) continue;
    if (first) {
      inner = s;
      expected = s * batch[d];
      first = false;
    } else {
      if (s != expected && !(s == 0 && inner == 0)) return false;
      expected = s * batch[d];
    }
  }
  *stride = inner;
  return true;
}

}  // namespace

GemmOperand gemm_operand(const Tensor& t, const Shape& batch) {
  GemmOperand op{t};
  auto fits = [&](const Tensor& x, GemmOperand& o) {
    const int64_t r = x.size(-2), c = x.size(-1);
    const int64_t sr = x.stride(-2), sc = x.stride(-1);
    if ((sc == 1 || c == 1) && sr >= std::max<int64_t>(c, 1)) {
      o.trans = false;
      o.ld = std::max<int64_t>(sr, 1);
    } else if ((sr == 1 || r == 1) && sc >= std::max<int64_t>(r, 1)) {
      o.trans = true;
      o.ld = std::max<int64_t>(sc, 1);
    } else {
      return false;
    }
    return batch_stride_of(x, batch, &o.batch_stride);
  };
  if (fits(t, op)) return op;
  // Copies serve only the data GEMM reads (the node saves the original operands): record no graph.
  NoGradGuard no_grad;
  op.t = t.contiguous();
  if (fits(op.t, op)) return op;
  // Broadcast batch dimensions that no single stride can step through (e.g. [4, 1, M, K] against
  // batch [4, 2]): materialise the broadcast.
  Shape full = batch;
  full.push_back(t.size(-2));
  full.push_back(t.size(-1));
  op.t = t.expand(full).contiguous();
  TG_ASSERT(fits(op.t, op));
  return op;
}

namespace {

class MatmulBackward final : public Node {
 public:
  MatmulBackward(const Tensor& a, const Tensor& b, bool need_a, bool need_b) : Node("matmul") {
    a_ = save(need_b ? a : Tensor());  // dB = Aᵀ g reads A
    b_ = save(need_a ? b : Tensor());  // dA = g Bᵀ reads B
    a_shape_ = a.shape();
    b_shape_ = b.shape();
  }
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const Tensor& g = grads[0];
    if (!g.defined()) return {Tensor(), Tensor()};
    Tensor ga, gb;
    if (needs_input_grad(0)) ga = sum_to(matmul(g, saved(b_).transpose(-2, -1)), a_shape_);
    if (needs_input_grad(1)) gb = sum_to(matmul(saved(a_).transpose(-2, -1), g), b_shape_);
    return {ga, gb};
  }

 private:
  size_t a_, b_;
  Shape a_shape_, b_shape_;
};

}  // namespace

Tensor matmul(const Tensor& a, const Tensor& b) {
  check_compatible("matmul", {a, b});
  check_floating("matmul", a);
  TG_CHECK(a.dim() >= 2 && b.dim() >= 2, "matmul: both operands need at least 2 dimensions, got ",
           shape_str(a.shape()), " and ", shape_str(b.shape()));
  const int64_t M = a.size(-2), K = a.size(-1), N = b.size(-1);
  TG_CHECK(b.size(-2) == K, "matmul: inner dimensions differ: a ", shape_str(a.shape()), " (K=", K,
           "), b ", shape_str(b.shape()), " (K=", b.size(-2), ")");

  // Linear case: fold a's batch dimensions into its rows when that needs no copy.
  if (b.dim() == 2 && a.dim() > 2 && a.is_contiguous()) {
    Shape out_shape(a.shape().begin(), a.shape().end() - 1);
    out_shape.push_back(N);
    return reshape(matmul(reshape(a, {-1, K}), b), out_shape);
  }

  const Shape batch = broadcast_shapes(Shape(a.shape().begin(), a.shape().end() - 2),
                                       Shape(b.shape().begin(), b.shape().end() - 2), "matmul");
  Shape out_shape = batch;
  out_shape.push_back(M);
  out_shape.push_back(N);
  check_shape(out_shape, "matmul");

  const Cost cost = matmul_cost(a.shape(), b.shape(), a.dtype());
  OpScope scope("matmul", cost);
  const GemmOperand A = gemm_operand(a, batch), B = gemm_operand(b, batch);
  Tensor out = empty_output(out_shape, a.dtype(), a.device());
  GemmArgs g;
  g.dtype = a.dtype();
  g.trans_a = A.trans;
  g.trans_b = B.trans;
  g.m = M;
  g.n = N;
  g.k = K;
  g.a = A.t.data();
  g.lda = A.ld;
  g.b = B.t.data();
  g.ldb = B.ld;
  g.c = out.data();
  g.ldc = std::max<int64_t>(N, 1);
  g.batch = numel(batch);
  g.stride_a = A.batch_stride;
  g.stride_b = B.batch_stride;
  g.stride_c = M * N;
  backend_of(a).gemm(g);

  if (any_requires_grad({a, b})) {
    auto node = std::make_shared<MatmulBackward>(a, b, a.requires_grad(), b.requires_grad());
    node->cost = cost;
    set_history(node, {a, b}, {out});
  }
  if (forward_ad::any_tangent({a, b})) {
    forward_ad::RuleScope rule;
    const Tensor ta = forward_ad::tangent_of(a), tb = forward_ad::tangent_of(b);
    Tensor t;
    if (ta.defined()) t = matmul(ta, b);
    if (tb.defined()) t = t.defined() ? add(t, matmul(a, tb)) : matmul(a, tb);
    if (t.shape() != out_shape) t = expand(t, out_shape);
    forward_ad::set_tangent(out, t);
  }
  return out;
}

Cost matmul_cost(const Shape& a, const Shape& b, DType dt) {
  const Shape batch =
      broadcast_shapes(Shape(a.begin(), a.end() - 2), Shape(b.begin(), b.end() - 2), "matmul_cost");
  const double B = static_cast<double>(numel(batch));
  const double M = static_cast<double>(a[a.size() - 2]), K = static_cast<double>(a.back());
  const double N = static_cast<double>(b.back());
  const double sz = static_cast<double>(dtype_size(dt));
  return {2 * B * M * N * K,
          (static_cast<double>(numel(a)) + static_cast<double>(numel(b)) + B * M * N) * sz};
}

}  // namespace tilegrad
