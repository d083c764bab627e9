// Standard attention (Algorithm 0), one (batch, head) after another.
//
// Forward, per head:   S = scale · Q Kᵀ          [Nq, Nk]  (GEMM into the scratch s)
//                      P = softmax(mask(S)), lse  [Nq, Nk]  (rows in parallel; P kept for backward)
//                      P̃ = P ∘ Z / (1 - p)                  (dropout, written over S: S is dead)
//                      O = P̃ V                    [Nq, D]
// Backward, per head (FlashAttention paper, Algorithm 3's standard backward):
//                      dV += P̃ᵀ dO,  dP = (dO Vᵀ) ∘ Z / (1 - p)
//                      dS = P ∘ (dP - Dvec + glse),  Dvec_i = Σ_j P_ij dP_ij
//                      dQ = scale · dS K,  dK += scale · dSᵀ Q
// dK and dV of a key/value head sum over the query heads that share it (GQA): the first head of a
// group writes (beta = 0), the others accumulate. Every matrix is in the input dtype, as in a
// framework that composes matmul and softmax ops; the row loops compute in acc_t<T>.
#include "kernels/cpu/attention_standard.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/gemm.h"
#include "memory/workspace.h"

namespace tilegrad::kernels::cpu {

namespace {

namespace at = attention;

// Per-thread scratch of the row loops: an accumulation-type copy of one score row (16-bit dtypes
// convert into it; float and double work in place) and the dropout mask of that row.
template <class A>
class RowScratch {
 public:
  RowScratch(int64_t Nk, int threads)
      : Nk_(Nk), stride_(slices(nullptr).bytes()), ws_(static_cast<int64_t>(stride_) * threads) {}
  A* row(int thread) const {
    A* r = nullptr;
    slices(base(thread), &r);
    return r;
  }
  uint8_t* keep(int thread) const {
    uint8_t* k = nullptr;
    slices(base(thread), nullptr, &k);
    return k;
  }

 private:
  char* base(int thread) const { return ws_.as<char>() + stride_ * static_cast<size_t>(thread); }
  at::Carve slices(char* base, A** row = nullptr, uint8_t** keep = nullptr) const {
    at::Carve c(base);
    A* r = c.take<A>(Nk_);
    uint8_t* k = c.take<uint8_t>(Nk_);
    if (row != nullptr) *row = r;
    if (keep != nullptr) *keep = k;
    return c;
  }

  int64_t Nk_;
  size_t stride_;
  Workspace ws_;
};

template <class T>
void forward_impl(const AttentionArgs& a, T* s, T* p, T* o, acc_t<T>* lse) {
  using A = acc_t<T>;
  const at::Visibility vis(a);
  const int64_t group = a.H / a.Hkv, Nq = a.Nq, Nk = a.Nk, D = a.D;
  const bool dropout = a.dropout_p > 0.0;
  const uint32_t threshold = dropout_keep_threshold(a.dropout_p);
  const A drop_scale = static_cast<A>(at::dropout_scale(a.dropout_p));
  const int threads = at::task_threads(Nq, 8.0 * static_cast<double>(Nq * Nk));
  RowScratch<A> scratch(Nk, threads);
  for (int64_t b = 0; b < a.B; ++b) {
    for (int64_t h = 0; h < a.H; ++h) {
      const int64_t hk = h / group;
      const T* qp = static_cast<const T*>(a.q) + b * a.q_strides[0] + h * a.q_strides[1];
      const T* kp = static_cast<const T*>(a.k) + b * a.k_strides[0] + hk * a.k_strides[1];
      const T* vp = static_cast<const T*>(a.v) + b * a.v_strides[0] + hk * a.v_strides[1];
      T* ph = p + (b * a.H + h) * Nq * Nk;
      A* lh = lse + (b * a.H + h) * Nq;
      gemm(gemm_args(a.dtype, false, true, Nq, Nk, D, a.scale, qp, a.q_strides[2], kp,
                     a.k_strides[2], 0.0, s, Nk));
      at::for_each_task(Nq, threads, [&](int64_t i, int thread) {
        T* si = s + i * Nk;
        T* pi = ph + i * Nk;
        A* x;  // the row, in the accumulation type
        if constexpr (std::is_same_v<T, A>) {
          x = pi;
          std::copy(si, si + Nk, x);
        } else {
          x = scratch.row(thread);
          for (int64_t j = 0; j < Nk; ++j) x[j] = static_cast<A>(si[j]);
        }
        vis.mask_row(i, 0, Nk, x);
        const A m = at::row_max(x, Nk);
        if (m == -std::numeric_limits<A>::infinity()) {  // no visible key: P = 0, lse = -inf
          for (int64_t j = 0; j < Nk; ++j) pi[j] = T(A(0));
          lh[i] = m;
        } else {
          const A sum = at::exp_shifted_sum(x, Nk, m);
          at::scale(x, Nk, A(1) / sum);
          if constexpr (!std::is_same_v<T, A>) {
            for (int64_t j = 0; j < Nk; ++j) pi[j] = T(x[j]);
          }
          lh[i] = m + std::log(sum);
        }
        if (dropout) {  // P̃ over S: O reads P̃, the backward regenerates the mask
          uint8_t* keep = scratch.keep(thread);
          at::dropout_keep_run(a.seed, at::dropout_draw_index(a, b, h, i, 0), Nk, threshold, keep);
          if constexpr (std::is_same_v<T, A>) {
            at::keep_scaled(pi, keep, drop_scale, si, Nk);
          } else {
            for (int64_t j = 0; j < Nk; ++j) {
              si[j] = keep[j] ? T(static_cast<A>(pi[j]) * drop_scale) : T(A(0));
            }
          }
        }
      });
      gemm(gemm_args(a.dtype, false, false, Nq, D, Nk, 1.0, dropout ? s : ph, Nk, vp,
                     a.v_strides[2], 0.0, o + (b * a.H + h) * Nq * D, D));
    }
  }
}

template <class T>
void backward_impl(const AttentionArgs& a, const T* p, const T* dout, const acc_t<T>* glse, T* ds,
                   T* dq, T* dk, T* dv) {
  using A = acc_t<T>;
  const int64_t group = a.H / a.Hkv, Nq = a.Nq, Nk = a.Nk, D = a.D;
  const bool dropout = a.dropout_p > 0.0;
  const uint32_t threshold = dropout_keep_threshold(a.dropout_p);
  const A drop_scale = static_cast<A>(at::dropout_scale(a.dropout_p));
  const int threads = at::task_threads(Nq, 8.0 * static_cast<double>(Nq * Nk));
  RowScratch<A> scratch(Nk, threads);
  for (int64_t b = 0; b < a.B; ++b) {
    for (int64_t h = 0; h < a.H; ++h) {
      const int64_t hk = h / group;
      const double beta = h % group == 0 ? 0.0 : 1.0;  // the group's first head writes dk, dv
      const T* qp = static_cast<const T*>(a.q) + b * a.q_strides[0] + h * a.q_strides[1];
      const T* kp = static_cast<const T*>(a.k) + b * a.k_strides[0] + hk * a.k_strides[1];
      const T* vp = static_cast<const T*>(a.v) + b * a.v_strides[0] + hk * a.v_strides[1];
      const T* ph = p + (b * a.H + h) * Nq * Nk;
      const T* doh = dout + (b * a.H + h) * Nq * D;
      T* dkh = dk + (b * a.Hkv + hk) * Nk * D;
      T* dvh = dv + (b * a.Hkv + hk) * Nk * D;
      if (dropout) {  // P̃ into ds for dV
        at::for_each_task(Nq, threads, [&](int64_t i, int thread) {
          uint8_t* keep = scratch.keep(thread);
          at::dropout_keep_run(a.seed, at::dropout_draw_index(a, b, h, i, 0), Nk, threshold, keep);
          if constexpr (std::is_same_v<T, A>) {
            at::keep_scaled(ph + i * Nk, keep, drop_scale, ds + i * Nk, Nk);
          } else {
            for (int64_t j = 0; j < Nk; ++j) {
              ds[i * Nk + j] = keep[j] ? T(static_cast<A>(ph[i * Nk + j]) * drop_scale) : T(A(0));
            }
          }
        });
      }
      gemm(gemm_args(a.dtype, true, false, Nk, D, Nq, 1.0, dropout ? ds : ph, Nk, doh, D, beta, dvh,
                     D));
      gemm(
          gemm_args(a.dtype, false, true, Nq, Nk, D, 1.0, doh, D, vp, a.v_strides[2], 0.0, ds, Nk));
      at::for_each_task(Nq, threads, [&](int64_t i, int thread) {
        const T* pi = ph + i * Nk;
        T* dsi = ds + i * Nk;
        uint8_t* keep = scratch.keep(thread);
        if (dropout) {
          at::dropout_keep_run(a.seed, at::dropout_draw_index(a, b, h, i, 0), Nk, threshold, keep);
        }
        const A glse_i = glse != nullptr ? glse[(b * a.H + h) * Nq + i] : A(0);
        if constexpr (std::is_same_v<T, A>) {  // in place: dS over dP
          if (dropout) at::keep_scaled(dsi, keep, drop_scale, dsi, Nk);
          at::ds_row(pi, dsi, Nk, at::dot(pi, dsi, Nk) - glse_i);
        } else {
          A* dp = scratch.row(thread);  // dP of the row, in the accumulation type
          for (int64_t j = 0; j < Nk; ++j) dp[j] = static_cast<A>(dsi[j]);
          if (dropout) at::keep_scaled(dp, keep, drop_scale, dp, Nk);
          A dvec = 0;
          for (int64_t j = 0; j < Nk; ++j) dvec += static_cast<A>(pi[j]) * dp[j];
          dvec -= glse_i;
          for (int64_t j = 0; j < Nk; ++j) dsi[j] = T(static_cast<A>(pi[j]) * (dp[j] - dvec));
        }
      });
      gemm(gemm_args(a.dtype, false, false, Nq, D, Nk, a.scale, ds, Nk, kp, a.k_strides[2], 0.0,
                     dq + (b * a.H + h) * Nq * D, D));
      gemm(gemm_args(a.dtype, true, false, Nk, D, Nq, a.scale, ds, Nk, qp, a.q_strides[2], beta,
                     dkh, D));
    }
  }
}

}  // namespace

void attention_standard_forward(const AttentionArgs& args, void* s, void* p, void* o, void* lse) {
  dispatch_floating(args.dtype, "attention", [&]<class T>() {
    forward_impl<T>(args, static_cast<T*>(s), static_cast<T*>(p), static_cast<T*>(o),
                    static_cast<acc_t<T>*>(lse));
  });
}

void attention_standard_backward(const AttentionArgs& args, const void* p, const void* dout,
                                 const void* glse, void* ds, void* dq, void* dk, void* dv) {
  dispatch_floating(args.dtype, "attention", [&]<class T>() {
    backward_impl<T>(args, static_cast<const T*>(p), static_cast<const T*>(dout),
                     static_cast<const acc_t<T>*>(glse), static_cast<T*>(ds), static_cast<T*>(dq),
                     static_cast<T*>(dk), static_cast<T*>(dv));
  });
}

}  // namespace tilegrad::kernels::cpu
