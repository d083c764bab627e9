#include "ops/lm_head_cross_entropy.h"

#include <algorithm>

#include "autograd/forward_ad.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/cross_entropy.h"
#include "ops/factory.h"
#include "ops/op_scope.h"
#include "ops/view.h"

namespace tilegrad {

namespace {

DType acc_dtype(DType dt) {
  return dt == DType::f64 ? DType::f64 : DType::f32;
}

const void* row_ptr(const Tensor& t, int64_t r0, int64_t row_elems) {
  return static_cast<const char*>(t.data()) + r0 * row_elems * dtype_size(t.dtype());
}

// C[m, n] = op(A) · op(B) + beta · C on row-major operands whose rows are lda, ldb, n apart.
void gemm(Backend& be, DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* a,
          int64_t lda, const void* b, int64_t ldb, void* c, double beta = 0.0) {
  be.gemm(gemm_args(dt, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, n));
}

// logits[R, V] = x[r0 : r0 + R] · wᵀ, into the chunk buffer.
void chunk_logits(Backend& be, const Tensor& x, const Tensor& w, int64_t r0, int64_t R,
                  const Tensor& logits) {
  const int64_t C = x.size(1), V = w.size(0);
  gemm(be, x.dtype(), false, true, R, V, C, row_ptr(x, r0, C), C, w.data(), C, logits.data());
}

class LmHeadCrossEntropyBackward final : public Node {
 public:
  LmHeadCrossEntropyBackward(const Tensor& x, const Tensor& w, const Tensor& targets,
                             const Tensor& lse, double scale, int64_t chunk, int64_t ignore_index)
      : Node("lm_head_cross_entropy"), scale_(scale), chunk_(chunk), ignore_index_(ignore_index) {
    x_ = save(x);
    w_ = save(w);
    t_ = save(targets);
    lse_ = save(lse);
  }

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    const bool need_x = needs_input_grad(0), need_w = needs_input_grad(1);
    if (!grads[0].defined() || !(need_x || need_w)) return {Tensor(), Tensor()};
    const Tensor x = saved(x_), w = saved(w_), targets = saved(t_), lse = saved(lse_);
    const int64_t N = x.size(0), C = x.size(1), V = w.size(0);
    const DType dt = x.dtype();
    const Tensor gloss = grads[0].to(acc_dtype(dt)).contiguous();
    Backend& be = backend_of(x);
    Tensor dx = need_x ? empty_output({N, C}, dt, x.device()) : Tensor();
    Tensor dw = need_w ? zeros({V, C}, {dt, x.device(), Category::gradient}) : Tensor();
    const int64_t R = std::min(chunk_, std::max<int64_t>(N, 1));
    const TensorOptions ws{dt, x.device(), Category::workspace};
    const Tensor logits = empty({R, V}, ws), glogits = empty({R, V}, ws);
    for (int64_t r0 = 0; r0 < N; r0 += R) {
      const int64_t rows = std::min(R, N - r0);
      chunk_logits(be, x, w, r0, rows, logits);
      be.cross_entropy_backward(dt, logits.data(), targets.dtype(), row_ptr(targets, r0, 1),
                                row_ptr(lse, r0, 1), gloss.data(), scale_, glogits.data(), rows, V,
                                ignore_index_);
      if (need_x) {  // dx[r0 : r0 + rows] = glogits · w
        gemm(be, dt, false, false, rows, C, V, glogits.data(), V, w.data(), C,
             static_cast<char*>(dx.data()) + r0 * C * dtype_size(dt));
      }
      if (need_w) {  // dw += glogitsᵀ · x[r0 : r0 + rows]
        gemm(be, dt, true, false, V, C, rows, glogits.data(), V, row_ptr(x, r0, C), C, dw.data(),
             1.0);
      }
    }
    return {dx, dw};
  }

 private:
  double scale_;
  int64_t chunk_;
  int64_t ignore_index_;
  size_t x_, w_, t_, lse_;
};

}  // namespace

Tensor lm_head_cross_entropy(const Tensor& x_in, const Tensor& w_in, const Tensor& targets_in,
                             int64_t chunk_rows, int64_t ignore_index) {
  const char* op = "lm_head_cross_entropy";
  check_defined(op, x_in, "x");
  check_defined(op, w_in, "w");
  check_defined(op, targets_in, "targets");
  TG_CHECK(x_in.dim() == 2 && w_in.dim() == 2 && x_in.size(1) == w_in.size(1),
           "lm_head_cross_entropy: x must be [N, C] and w [V, C], got x ", shape_str(x_in.shape()),
           " and w ", shape_str(w_in.shape()));
  TG_CHECK(is_floating(x_in.dtype()) && x_in.dtype() == w_in.dtype(),
           "lm_head_cross_entropy: x and w must share a float dtype, got ",
           dtype_name(x_in.dtype()), " and ", dtype_name(w_in.dtype()));
  TG_CHECK(targets_in.dtype() == DType::i32 || targets_in.dtype() == DType::i64,
           "lm_head_cross_entropy: targets must be int32 or int64, got ",
           dtype_name(targets_in.dtype()));
  TG_CHECK(targets_in.dim() == 1 && targets_in.size(0) == x_in.size(0),
           "lm_head_cross_entropy: targets must be [N] = [", x_in.size(0), "], got ",
           shape_str(targets_in.shape()));
  TG_CHECK(x_in.device() == w_in.device() && x_in.device() == targets_in.device(),
           "lm_head_cross_entropy: x on ", x_in.device().str(), ", w on ", w_in.device().str(),
           ", targets on ", targets_in.device().str());
  TG_CHECK(chunk_rows >= 0,
           "lm_head_cross_entropy: chunk_rows must be >= 0 (0: ", kDefaultLmHeadChunkRows,
           "), got ", chunk_rows);
  TG_CHECK(!forward_ad::any_tangent({x_in, w_in}),
           "lm_head_cross_entropy: forward-mode AD (tangents on x or w) is not supported");
  const int64_t N = x_in.size(0), C = x_in.size(1), V = w_in.size(0);
  const Tensor t = targets_in.contiguous();
  Backend& be = backend_of(x_in);
  int64_t bad_value = 0;
  const int64_t bad = be.find_out_of_range(t.dtype(), t.data(), N, 0, V, ignore_index, &bad_value);
  TG_CHECK(bad < 0, "lm_head_cross_entropy: target ", bad_value, " at position ", bad,
           " is out of range [0, ", V, ") and is not ignore_index (", ignore_index, ")");

  const double n = static_cast<double>(N), v = static_cast<double>(V);
  const double bytes = static_cast<double>(dtype_size(x_in.dtype())) * (n * C + v * C);
  OpScope scope(op, {2.0 * n * v * static_cast<double>(C) + 4.0 * n * v, bytes});
  const Tensor x = contiguous(x_in), w = contiguous(w_in);  // differentiable: history flows
  const DType dt = x.dtype(), acc = acc_dtype(dt);
  const int64_t R =
      std::min(chunk_rows > 0 ? chunk_rows : kDefaultLmHeadChunkRows, std::max<int64_t>(N, 1));
  Tensor lse = empty_output({N}, acc, x.device());
  const Tensor losses = empty({N}, {acc, x.device(), Category::workspace});  // ignored rows: 0
  {
    const Tensor logits = empty({R, V}, {dt, x.device(), Category::workspace});
    for (int64_t r0 = 0; r0 < N; r0 += R) {
      const int64_t rows = std::min(R, N - r0);
      chunk_logits(be, x, w, r0, rows, logits);
      be.cross_entropy_forward(dt, logits.data(), t.dtype(), row_ptr(t, r0, 1),
                               static_cast<char*>(losses.data()) + r0 * dtype_size(acc),
                               static_cast<char*>(lse.data()) + r0 * dtype_size(acc), rows, V,
                               ignore_index);
    }
  }
  double total = 0.0;  // in row order, in double: the same sum whatever the chunk size
  for (const double l : losses.to_vector<double>()) total += l;
  const int64_t counted = N - count_ignored(t, ignore_index);
  const double scale = counted > 0 ? 1.0 / static_cast<double>(counted) : 0.0;
  Tensor out = full({}, total * scale, {acc, x.device()});
  if (any_requires_grad({x, w})) {
    // The chunk size travels with the node, so the backward holds no more than the forward did.
    auto node = std::make_shared<LmHeadCrossEntropyBackward>(x, w, t, lse, scale, R, ignore_index);
    set_history(node, {x, w}, {out});
  }
  return out;
}

}  // namespace tilegrad
