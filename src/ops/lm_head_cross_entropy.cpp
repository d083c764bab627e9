#include "ops/lm_head_cross_entropy.h"

#include <algorithm>
#include <optional>

#include "autograd/engine.h"
#include "autograd/forward_ad.h"
#include "autograd/grad_mode.h"
#include "autograd/node.h"
#include "core/error.h"
#include "ops/common.h"
#include "ops/cross_entropy.h"
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

const void* row_ptr(const Tensor& t, int64_t r0, int64_t row_elems) {
  return static_cast<const char*>(t.data()) + r0 * row_elems * dtype_size(t.dtype());
}
void* row_ptr(Tensor& t, int64_t r0, int64_t row_elems) {
  return static_cast<char*>(t.data()) + r0 * row_elems * dtype_size(t.dtype());
}

// C[m, n] = op(A) · op(B) + beta · C on row-major operands whose rows are lda, ldb, ldc apart.
void gemm(Backend& be, DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, const void* a,
          int64_t lda, const void* b, int64_t ldb, void* c, int64_t ldc, double beta = 0.0) {
  be.gemm(gemm_args(dt, ta, tb, m, n, k, 1.0, a, lda, b, ldb, beta, c, ldc));
}

// Holds dx and dw, computed by the forward for an upstream gradient of 1, and scales them by the
// actual one. They are plain members rather than saved tensors so that release_saved() drops them
// before the engine passes the gradients on: AccumulateGrad can then adopt dw as w's .grad.
class LmHeadCrossEntropyBackward final : public Node {
 public:
  LmHeadCrossEntropyBackward(Tensor dx, Tensor dw)
      : Node("lm_head_cross_entropy"), dx_(std::move(dx)), dw_(std::move(dw)) {}

  std::vector<Tensor> apply(std::vector<Tensor>& grads) override {
    if (!grads[0].defined()) return {Tensor(), Tensor()};
    // The upstream scalar, read on the host: known without the device when it is the seed a
    // backward implied (loss.backward()), as it must be inside a CUDA graph capture.
    const std::optional<double> seed = implied_seed_value(grads[0]);
    const double g = seed ? *seed : grads[0].item();
    auto scaled = [&](const Tensor& t, bool needed) {
      if (!needed || !t.defined()) return Tensor();
      return g == 1.0 ? t : mul(t, g);
    };
    return {scaled(dx_, needs_input_grad(0)), scaled(dw_, needs_input_grad(1))};
  }
  void release_saved() override {
    Node::release_saved();
    dx_ = Tensor();
    dw_ = Tensor();
  }

 private:
  Tensor dx_, dw_;
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
  const int64_t Vp = lm_head_padded_vocab(V);
  const Tensor t = targets_in.contiguous();
  Backend& be = backend_of(x_in);
  int64_t bad_value = 0;
  const int64_t bad = be.find_out_of_range(t.dtype(), t.data(), N, 0, V, ignore_index, &bad_value);
  TG_CHECK(bad < 0, "lm_head_cross_entropy: target ", bad_value, " at position ", bad,
           " is out of range [0, ", V, ") and is not ignore_index (", ignore_index, ")");

  const Tensor x = contiguous(x_in), w = contiguous(w_in);  // differentiable: history flows
  const bool need_x = x.requires_grad() && grad_enabled(),
             need_w = w.requires_grad() && grad_enabled();
  const bool with_grad = need_x || need_w;
  const double n = static_cast<double>(N), v = static_cast<double>(V), c = static_cast<double>(C);
  const double bytes = static_cast<double>(dtype_size(x.dtype())) * (n * c + v * c);
  // The head GEMM and softmax, and with gradients the two gradient GEMMs as well.
  OpScope scope(op, {(with_grad ? 6.0 : 2.0) * n * v * c + 4.0 * n * v, bytes});
  const DType dt = x.dtype(), acc = acc_dtype(dt);
  const int64_t R =
      std::min(chunk_rows > 0 ? chunk_rows : kDefaultLmHeadChunkRows, std::max<int64_t>(N, 1));
  // The mean's factor stays on the device (inverse_counted): no host read in the step.
  const Tensor inv_counted = inverse_counted(t, ignore_index, acc);

  Tensor lse = empty({N}, {acc, x.device(), Category::workspace});
  Tensor losses = empty({N}, {acc, x.device(), Category::workspace});  // ignored rows: 0
  // dx and dw for an upstream gradient of 1, kept from here to the backward.
  Tensor dx = need_x ? empty_output({N, C}, dt, x.device()) : Tensor();
  // dw is the first V rows of a [Vp, C] buffer, so that its GEMM too runs at the aligned Vp (the
  // padded rows come out 0 from glogits' zero columns and are never read).
  const Tensor dw_full = need_w ? empty_output({Vp, C}, dt, x.device()) : Tensor();
  Tensor dw = need_w ? dw_full.detach().slice(0, 0, V) : Tensor();
  if (need_w && N == 0) be.fill(strided(dw), 0.0);
  {
    const TensorOptions ws{dt, x.device(), Category::workspace};
    // w with zero rows up to Vp, so that the head's GEMMs see an aligned V (cuBLASLt picks kernels
    // several times slower for V = 50,257): the padded logits are 0 and never read, and the padded
    // columns of glogits are 0, so dx = glogits · w_pad is exact. An aligned V needs no copy.
    Tensor w_pad = w;
    const Tensor logits = empty({R, Vp}, ws);
    // The gradient overwrites the logits in place (each element is read before it is written), so
    // a chunk costs one [R, Vp] buffer, not two. Its padded columns keep the GEMM's zeros, which
    // cross_entropy_backward does not touch.
    const Tensor glogits = with_grad ? logits : Tensor();
    if (Vp > V) {
      NoGradGuard no_grad;
      w_pad = empty({Vp, C}, ws);
      slice(w_pad, 0, 0, V).copy_(w);
      slice(w_pad, 0, V, Vp).fill_(0.0);
    }
    for (int64_t r0 = 0; r0 < N; r0 += R) {
      const int64_t rows = std::min(R, N - r0);
      // logits[rows, Vp] = x[r0 : r0 + rows] · w_padᵀ.
      gemm(be, dt, false, true, rows, Vp, C, row_ptr(x, r0, C), C, w_pad.data(), C, logits.data(),
           Vp);
      if (!with_grad) {
        be.cross_entropy_forward(dt, logits.data(), t.dtype(), row_ptr(t, r0, 1),
                                 row_ptr(losses, r0, 1), row_ptr(lse, r0, 1), rows, V, Vp,
                                 ignore_index);
        continue;
      }
      // The loss and the logits' gradient in one pass over the chunk where the backend can; the
      // upstream "scalar" is the mean's factor.
      be.cross_entropy_forward_backward(
          dt, logits.data(), t.dtype(), row_ptr(t, r0, 1), row_ptr(losses, r0, 1),
          row_ptr(lse, r0, 1), inv_counted.data(), 1.0, glogits.data(), rows, V, Vp, ignore_index);
      if (need_x) {  // dx[r0 : r0 + rows] = glogits · w
        gemm(be, dt, false, false, rows, C, Vp, glogits.data(), Vp, w_pad.data(), C,
             row_ptr(dx, r0, C), C);
      }
      if (need_w) {  // dw_full (+)= glogitsᵀ · x[r0 : r0 + rows]
        gemm(be, dt, true, false, Vp, C, rows, glogits.data(), Vp, row_ptr(x, r0, C), C,
             dw_full.data(), C, r0 == 0 ? 0.0 : 1.0);
      }
    }
  }
  // The mean on the device: a float64 sum over the rows in a fixed order, the same whatever the
  // chunk size.
  Tensor out;
  {
    NoGradGuard no_grad;
    out = mul(sum(losses, {0}, false), inv_counted);
  }
  if (with_grad) {
    auto node = std::make_shared<LmHeadCrossEntropyBackward>(std::move(dx), std::move(dw));
    set_history(node, {x, w}, {out});
  }
  return out;
}

}  // namespace tilegrad
