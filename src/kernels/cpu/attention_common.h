// What the two CPU attention kernels share: which (query, key) pairs are visible, the dropout mask
// of a run of keys, the tile GEMM, per-thread scratch, and the task loop.
//
// Visibility (ops/attention.h states it for users): with shift = Nk - Nq, row i sees key j iff
//   j >= i + shift - left  (when a left window is set),
//   j <= i + shift + right (right = 0 under causal, or the right window, whichever is smaller),
//   layout[i / bq][j / bk] != 0 (when a block-sparse layout is given).
// Both band edges grow with i, so the keys a row sees form one interval [lo(i), hi(i)] (before the
// layout), the rows that see any key of a column range form one interval too, and a tile is empty,
// fully visible or partial by looking at its corner rows — no per-element test unless partial.
#pragma once

#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "core/rng.h"
#include "kernels/cpu/vector_math.h"

namespace tilegrad::kernels::cpu::attention {

enum class TileKind : uint8_t { empty, full, partial };

class Visibility {
 public:
  explicit Visibility(const AttentionArgs& a)
      : Nq_(a.Nq),
        Nk_(a.Nk),
        shift_(a.Nk - a.Nq),
        has_left_(a.window_left >= 0),
        has_right_(a.causal || a.window_right >= 0),
        left_(a.window_left),
        right_(a.causal ? (a.window_right >= 0 ? std::min<int64_t>(a.window_right, 0) : 0)
                        : a.window_right),
        layout_(a.layout),
        bq_(a.layout_block_q),
        bk_(a.layout_block_k),
        layout_cols_(a.layout ? (a.Nk + a.layout_block_k - 1) / a.layout_block_k : 0) {}

  // The band of row i, clamped to the keys: [lo(i), hi(i)], empty when lo(i) > hi(i).
  int64_t lo(int64_t i) const { return has_left_ ? std::max<int64_t>(0, i + shift_ - left_) : 0; }
  int64_t hi(int64_t i) const {
    return has_right_ ? std::min<int64_t>(Nk_ - 1, i + shift_ + right_) : Nk_ - 1;
  }

  // The rows whose band meets keys [c0, c1): [first, last], empty when first > last. Solves
  // hi(i) >= c0 and lo(i) <= c1 - 1, which is enough because lo(i) <= hi(i) before clamping.
  std::pair<int64_t, int64_t> rows_seeing(int64_t c0, int64_t c1) const {
    const int64_t first = has_right_ ? std::max<int64_t>(0, c0 - shift_ - right_) : 0;
    const int64_t last = has_left_ ? std::min<int64_t>(Nq_ - 1, c1 - 1 - shift_ + left_) : Nq_ - 1;
    return {first, last};
  }

  TileKind classify(int64_t r0, int64_t r1, int64_t c0, int64_t c1) const {
    if (r0 >= r1 || c0 >= c1) return TileKind::empty;
    const auto [first, last] = rows_seeing(c0, c1);
    if (std::max(first, r0) > std::min(last, r1 - 1)) return TileKind::empty;
    const bool band_full = lo(r1 - 1) <= c0 && hi(r0) >= c1 - 1;
    bool any = true, all = true;
    if (layout_ != nullptr) {
      any = false;
      for (int64_t bi = r0 / bq_; bi <= (r1 - 1) / bq_; ++bi) {
        for (int64_t bj = c0 / bk_; bj <= (c1 - 1) / bk_; ++bj) {
          const bool on = layout_[bi * layout_cols_ + bj] != 0;
          any = any || on;
          all = all && on;
        }
      }
    }
    if (!any) return TileKind::empty;
    return band_full && all ? TileKind::full : TileKind::partial;
  }

  // Sets s[j - c0] to -inf for every key j in [c0, c1) that row i may not see.
  template <class A>
  void mask_row(int64_t i, int64_t c0, int64_t c1, A* s) const {
    constexpr A kNegInf = -std::numeric_limits<A>::infinity();
    const int64_t first = std::min(std::max(lo(i), c0), c1);    // left of it: before the band
    const int64_t end = std::max(std::min(hi(i) + 1, c1), c0);  // from it on: after the band
    for (int64_t j = c0; j < first; ++j) s[j - c0] = kNegInf;
    for (int64_t j = end; j < c1; ++j) s[j - c0] = kNegInf;
    if (layout_ == nullptr) return;
    const uint8_t* row = layout_ + (i / bq_) * layout_cols_;
    for (int64_t bj = c0 / bk_; bj * bk_ < c1; ++bj) {
      if (row[bj] != 0) continue;
      const int64_t j0 = std::max(c0, bj * bk_), j1 = std::min(c1, (bj + 1) * bk_);
      for (int64_t j = j0; j < j1; ++j) s[j - c0] = kNegInf;
    }
  }

 private:
  int64_t Nq_, Nk_, shift_;
  bool has_left_, has_right_;
  int64_t left_, right_;
  const uint8_t* layout_;
  int64_t bq_, bk_, layout_cols_;
};

// The Philox draw of element (b, h, i, j) of the probability matrix (ops/attention.h).
inline uint64_t dropout_draw_index(const AttentionArgs& a, int64_t b, int64_t h, int64_t i,
                                   int64_t j) {
  return a.offset + static_cast<uint64_t>(((b * a.H + h) * a.Nq + i) * a.Nk + j);
}

// keep[t] = 1 if draw d0 + t of stream `seed` is kept, for t in [0, n). The draws come in
// vectorised batches (philox_draws), each Philox block of four computed once.
inline void dropout_keep_run(uint64_t seed, uint64_t d0, int64_t n, uint32_t threshold,
                             uint8_t* keep) {
  constexpr int64_t kChunk = 512;
  uint32_t bits[kChunk];
  for (int64_t t0 = 0; t0 < n; t0 += kChunk) {
    const int64_t m = std::min(kChunk, n - t0);
    philox_draws(seed, d0 + static_cast<uint64_t>(t0), m, bits);
    for (int64_t t = 0; t < m; ++t) keep[t0 + t] = dropout_keep(bits[t], threshold);
  }
}

// 1 / (1 - p), or 0 when p = 1 (everything dropped), as the dropout op does.
inline double dropout_scale(double p) {
  return p < 1.0 ? 1.0 / (1.0 - p) : 0.0;
}

// C = alpha · op(A) · op(B) + beta · C on one tile, row-major. Called from inside the kernels' own
// parallel regions, where OpenBLAS's OpenMP build runs single-threaded; when a call is too small to
// be spread over tasks (task_threads returns 1), OpenBLAS may thread the tiles itself.
inline void tile_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, float alpha,
                      const float* a, int64_t lda, const float* b, int64_t ldb, float beta,
                      float* c, int64_t ldc) {
  cblas_sgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}
inline void tile_gemm(bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                      const double* a, int64_t lda, const double* b, int64_t ldb, double beta,
                      double* c, int64_t ldc) {
  cblas_dgemm(CblasRowMajor, ta ? CblasTrans : CblasNoTrans, tb ? CblasTrans : CblasNoTrans,
              static_cast<blasint>(m), static_cast<blasint>(n), static_cast<blasint>(k), alpha, a,
              static_cast<blasint>(lda), b, static_cast<blasint>(ldb), beta, c,
              static_cast<blasint>(ldc));
}

// Row loops of the online softmax and the backward, on accumulation-type rows (vectorised for
// float; attention_common.cpp).
float row_max(const float* x, int64_t n);
double row_max(const double* x, int64_t n);
// x[j] = exp(x[j] - m) in place (the backward's P = exp(S - lse)); m must be finite.
void exp_shifted(float* x, int64_t n, float m);
void exp_shifted(double* x, int64_t n, double m);
// The same, returning the sum of the results.
float exp_shifted_sum(float* x, int64_t n, float m);
double exp_shifted_sum(double* x, int64_t n, double m);
// x[j] *= a.
void scale(float* x, int64_t n, float a);
void scale(double* x, int64_t n, double a);
// y[j] = keep[j] ? x[j] * s : 0 (dropout; y may be x).
void keep_scaled(const float* x, const uint8_t* keep, float s, float* y, int64_t n);
void keep_scaled(const double* x, const uint8_t* keep, double s, double* y, int64_t n);
// dp[j] = p[j] * (dp[j] - dvec): a row of dS from P and dP.
void ds_row(const float* p, float* dp, int64_t n, float dvec);
void ds_row(const double* p, double* dp, int64_t n, double dvec);
// Σ_j a[j] b[j].
float dot(const float* a, const float* b, int64_t n);
double dot(const double* a, const double* b, int64_t n);

// Copies a rows x cols block with row stride ld into contiguous accumulation-type storage.
template <class T, class A>
void widen_block(const T* src, int64_t rows, int64_t cols, int64_t ld, A* dst) {
  for (int64_t r = 0; r < rows; ++r) {
    for (int64_t c = 0; c < cols; ++c) dst[r * cols + c] = static_cast<A>(src[r * ld + c]);
  }
}

// Per-thread scratch carved from one Workspace: slices start on 64-byte boundaries so that threads
// never share a cache line. Run once with base = nullptr to measure the bytes a thread needs.
class Carve {
 public:
  explicit Carve(char* base) : base_(base) {}
  template <class X>
  X* take(int64_t n) {
    off_ = (off_ + 63) / 64 * 64;
    X* p = base_ ? reinterpret_cast<X*>(base_ + off_) : nullptr;
    off_ += static_cast<size_t>(n) * sizeof(X);
    return p;
  }
  size_t bytes() const { return (off_ + 63) / 64 * 64; }

 private:
  char* base_;
  size_t off_ = 0;
};

// Below this many multiply-adds a call runs on the calling thread: waking the OpenMP team costs
// more than it saves.
constexpr double kParallelFlops = 1 << 20;

// The threads a loop of n tasks uses.
inline int task_threads(int64_t n, double flops) {
  if (n < 2 || flops < kParallelFlops) return 1;
  return static_cast<int>(std::min<int64_t>(omp_get_max_threads(), n));
}

// f(task, thread) for every task in [0, n), rows of the standard kernel and other equal-cost
// loops: schedule(static), so each thread gets one contiguous run.
template <class F>
void for_each_task(int64_t n, int threads, F&& f) {
  if (threads <= 1) {
    for (int64_t t = 0; t < n; ++t) f(t, 0);
    return;
  }
#pragma omp parallel for schedule(static) num_threads(threads)
  for (int64_t t = 0; t < n; ++t) f(t, omp_get_thread_num());
}

// Tasks of unequal cost (tiles hidden by a causal band or a layout are skipped, so the work of a
// query or key block varies) dealt to `slots` lists: longest first, each to the least-loaded list,
// ties to the lower index. Which list a task lands in depends on the costs and the slot count
// alone, never on timing — the flash backward sums one partial dq per slot in slot order, so its
// result is reproducible for a given thread count — and greedy longest-first dealing keeps the
// slots within one task's cost of each other.
inline std::vector<std::vector<int64_t>> deal_tasks(const std::vector<double>& cost, int slots) {
  std::vector<int64_t> order(cost.size());
  for (size_t t = 0; t < order.size(); ++t) order[t] = static_cast<int64_t>(t);
  std::stable_sort(order.begin(), order.end(),
                   [&](int64_t a, int64_t b) { return cost[a] > cost[b]; });
  std::vector<std::vector<int64_t>> lists(static_cast<size_t>(slots));
  std::vector<double> load(static_cast<size_t>(slots), 0.0);
  for (int64_t t : order) {
    const size_t s = static_cast<size_t>(std::min_element(load.begin(), load.end()) - load.begin());
    lists[s].push_back(t);
    load[s] += cost[t];
  }
  return lists;
}

// f(task, slot) for every task of every list, one list per OpenMP thread (a smaller team runs
// several lists in turn; a list's tasks always share its slot).
template <class F>
void run_dealt(const std::vector<std::vector<int64_t>>& lists, F&& f) {
  const int64_t slots = static_cast<int64_t>(lists.size());
  if (slots <= 1) {
    for (const auto& list : lists) {
      for (int64_t t : list) f(t, 0);
    }
    return;
  }
#pragma omp parallel for schedule(static, 1) num_threads(static_cast <int>(slots))
  for (int64_t s = 0; s < slots; ++s) {
    for (int64_t t : lists[static_cast<size_t>(s)]) f(t, static_cast<int>(s));
  }
}

}  // namespace tilegrad::kernels::cpu::attention
