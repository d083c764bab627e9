#include "ops/attention_reference.h"

#include <cmath>
#include <limits>

namespace tgtest {

namespace {

// op(A) · op(B) for row-major A [ra, ca] and B [rb, cb], through the engine's float64 matmul.
std::vector<double> product(const std::vector<double>& a, int64_t ra, int64_t ca, bool ta,
                            const std::vector<double>& b, int64_t rb, int64_t cb, bool tb) {
  NoGradGuard no_grad;
  Tensor x = from_vector(a, {ra, ca}, {DType::f64});
  Tensor y = from_vector(b, {rb, cb}, {DType::f64});
  if (ta) x = x.t();
  if (tb) y = y.t();
  return matmul(x, y).to_vector<double>();
}

// Rows [row0, row0 + rows) of a row-major matrix with `cols` columns.
std::vector<double> rows_of(const std::vector<double>& m, int64_t row0, int64_t rows,
                            int64_t cols) {
  return std::vector<double>(m.begin() + row0 * cols, m.begin() + (row0 + rows) * cols);
}

}  // namespace

bool ref_visible(const RefProblem& pr, int64_t i, int64_t j) {
  const int64_t diag = i + pr.Nk - pr.Nq;  // the key aligned with query i (bottom-right corner)
  if (pr.causal && j > diag) return false;
  if (pr.left >= 0 && j < diag - pr.left) return false;
  if (pr.right >= 0 && j > diag + pr.right) return false;
  if (!pr.layout.empty()) {
    const int64_t cols = (pr.Nk + pr.bk - 1) / pr.bk;
    if (pr.layout[static_cast<size_t>((i / pr.bq) * cols + j / pr.bk)] == 0) return false;
  }
  return true;
}

bool ref_kept(const RefProblem& pr, int64_t b, int64_t h, int64_t i, int64_t j) {
  if (pr.p == 0.0) return true;
  const uint64_t draw = pr.offset + static_cast<uint64_t>(((b * pr.H + h) * pr.Nq + i) * pr.Nk + j);
  return dropout_keep(philox_draw(pr.seed, draw), dropout_keep_threshold(pr.p));
}

RefResult attention_reference(const RefProblem& pr, const std::vector<double>& q,
                              const std::vector<double>& k, const std::vector<double>& v,
                              const std::vector<double>& dout, const std::vector<double>& glse) {
  const int64_t Nq = pr.Nq, Nk = pr.Nk, D = pr.D, group = pr.H / pr.Hkv;
  const bool backward = !dout.empty();
  const double keep_scale = pr.p < 1.0 ? 1.0 / (1.0 - pr.p) : 0.0;
  RefResult r;
  r.out.assign(static_cast<size_t>(pr.B * pr.H * Nq * D), 0.0);
  r.lse.assign(static_cast<size_t>(pr.B * pr.H * Nq), 0.0);
  if (backward) {
    r.dq.assign(r.out.size(), 0.0);
    r.dk.assign(static_cast<size_t>(pr.B * pr.Hkv * Nk * D), 0.0);
    r.dv.assign(r.dk.size(), 0.0);
  }
  // The visibility of every (i, j), the same for all heads, and per head the dropout mask: each
  // decided once, since the backward reads them again.
  std::vector<uint8_t> visible(static_cast<size_t>(Nq * Nk)), kept(visible.size());
  for (int64_t i = 0; i < Nq; ++i) {
    for (int64_t j = 0; j < Nk; ++j) visible[i * Nk + j] = ref_visible(pr, i, j) ? 1 : 0;
  }
  std::vector<double> P(visible.size()), Pd(P.size());  // softmax, and after dropout
  for (int64_t b = 0; b < pr.B; ++b) {
    for (int64_t h = 0; h < pr.H; ++h) {
      const int64_t hk = h / group;
      const int64_t qrow = (b * pr.H + h) * Nq, krow = (b * pr.Hkv + hk) * Nk;
      const auto Q = rows_of(q, qrow, Nq, D), K = rows_of(k, krow, Nk, D);
      const auto V = rows_of(v, krow, Nk, D);
      for (int64_t i = 0; i < Nq; ++i) {
        for (int64_t j = 0; j < Nk; ++j) kept[i * Nk + j] = ref_kept(pr, b, h, i, j) ? 1 : 0;
      }
      std::vector<double> S = product(Q, Nq, D, false, K, Nk, D, true);  // [Nq, Nk]
      for (int64_t i = 0; i < Nq; ++i) {
        double m = -std::numeric_limits<double>::infinity();
        for (int64_t j = 0; j < Nk; ++j) {
          if (visible[i * Nk + j]) m = std::max(m, pr.scale * S[i * Nk + j]);
        }
        double sum = 0;
        for (int64_t j = 0; j < Nk; ++j) {
          const bool vis = visible[i * Nk + j] && m > -std::numeric_limits<double>::infinity();
          P[i * Nk + j] = vis ? std::exp(pr.scale * S[i * Nk + j] - m) : 0.0;
          sum += P[i * Nk + j];
        }
        for (int64_t j = 0; j < Nk; ++j) {
          if (sum > 0) P[i * Nk + j] /= sum;
          Pd[i * Nk + j] = kept[i * Nk + j] ? P[i * Nk + j] * keep_scale : 0.0;
        }
        r.lse[qrow + i] = sum > 0 ? m + std::log(sum) : -std::numeric_limits<double>::infinity();
      }
      const auto O = product(Pd, Nq, Nk, false, V, Nk, D, false);
      std::copy(O.begin(), O.end(), r.out.begin() + qrow * D);
      if (!backward) continue;

      // dV = P̃ᵀ dO; dP = (dO Vᵀ) ∘ keep / (1 - p); dS = P ∘ (dP - Σ_j P dP + glse);
      // dQ = scale dS K; dK = scale dSᵀ Q. A key/value head sums over its query heads.
      const auto dO = rows_of(dout, qrow, Nq, D);
      const auto dV = product(Pd, Nq, Nk, true, dO, Nq, D, false);
      std::vector<double> dS = product(dO, Nq, D, false, V, Nk, D, true);
      for (int64_t i = 0; i < Nq; ++i) {
        double rowdot = 0;
        for (int64_t j = 0; j < Nk; ++j) {
          dS[i * Nk + j] = kept[i * Nk + j] ? dS[i * Nk + j] * keep_scale : 0.0;
          rowdot += P[i * Nk + j] * dS[i * Nk + j];
        }
        if (!glse.empty()) rowdot -= glse[qrow + i];
        for (int64_t j = 0; j < Nk; ++j) dS[i * Nk + j] = P[i * Nk + j] * (dS[i * Nk + j] - rowdot);
      }
      const auto dQ = product(dS, Nq, Nk, false, K, Nk, D, false);
      const auto dK = product(dS, Nq, Nk, true, Q, Nq, D, false);
      for (size_t e = 0; e < dQ.size(); ++e) r.dq[qrow * D + e] = pr.scale * dQ[e];
      for (size_t e = 0; e < dK.size(); ++e) {
        r.dk[krow * D + e] += pr.scale * dK[e];
        r.dv[krow * D + e] += dV[e];
      }
    }
  }
  return r;
}

RefProblem ref_problem(const Tensor& q, const Tensor& k, const AttentionOptions& o) {
  RefProblem pr;
  pr.B = q.size(0);
  pr.H = q.size(1);
  pr.Nq = q.size(2);
  pr.D = q.size(3);
  pr.Hkv = k.size(1);
  pr.Nk = k.size(2);
  pr.scale = o.scale.value_or(1.0 / std::sqrt(static_cast<double>(pr.D)));
  pr.causal = o.causal;
  pr.left = o.window_left;
  pr.right = o.window_right;
  if (o.block_layout.defined()) {
    for (double x : o.block_layout.to_vector<double>()) pr.layout.push_back(x != 0.0 ? 1 : 0);
    pr.bq = o.layout_block_q;
    pr.bk = o.layout_block_k;
  }
  pr.p = o.dropout_p;
  pr.seed = o.dropout_seed;
  pr.offset = o.dropout_offset;
  return pr;
}

}  // namespace tgtest
