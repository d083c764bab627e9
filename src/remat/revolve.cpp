// Griewank-Walther binomial checkpointing ("revolve") on the chain model, by recursive binomial
// partitioning.
//
// Note [Revolve on the chain]
// Griewank's setting: l steps, s snapshots (one of them holding the initial state) and one working
// state; reversing step i needs state i-1 in the working state. Our chain maps onto it with
// l = L and s = C: x_0 is the first snapshot, the C-1 other snapshots and the working state are the
// C activation slots besides x_0. Reversing step i < L is backward(i), which reads x_{i-1};
// reversing step L is forward(L), loss, backward(L) (in Griewank's model the last step's forward
// belongs to its reversal; here the loss consumes x_L at once, so x_L never occupies a slot at
// rest). An advance is a forward(j) with j < L.
//
// Revolve(s, l, c) reverses steps s+l..s+1 with x_s stored, c snapshots (x_s's included):
//   l = 1:  reverse step s+1 from x_s.
//   else:   advance x_s -> x_{s+m} (freeing intermediates), keep x_{s+m} as a snapshot,
//           Revolve(s+m, l-m, c-1), then Revolve(s, m, c).
// With r the smallest integer such that beta(c, r) = binom(c+r, c) >= l, the split
// m = max(beta(c, r-2), l - beta(c-1, r)) (beta(c, -1) = 0, and m >= 1) gives the right part
// exactly r repetitions with c-1 snapshots and the left part r-1 with c, so the advance counts add
// up to t(l, c) = r*l - binom(c+r, c+1) (Pascal's rule twice); the tests check the schedule against
// the formula and against the recurrence's minimum.
#include <algorithm>

#include "core/error.h"
#include "remat/plan.h"

namespace tilegrad::remat {

int64_t binomial(int64_t n, int64_t k) {
  TG_CHECK(n >= 0, "binomial: n must be >= 0, got ", n);
  if (k < 0 || k > n) return 0;
  k = std::min(k, n - k);
  int64_t r = 1;
  for (int64_t j = 1; j <= k; ++j) {
    // r * (n-k+j) / j is exact at every step (it is binom(n-k+j, j)); check the product first.
    const int64_t num = n - k + j;
    TG_CHECK(r <= INT64_MAX / num, "binomial: binom(", n, ", ", k, ") overflows int64");
    r = r * num / j;
  }
  return r;
}

namespace {

// beta(c, r) = binom(c+r, c): the most steps c snapshots reverse with r repetitions; 0 for r < 0.
// Saturates at `cap` (callers only compare it with step counts <= cap) to avoid overflow.
int64_t beta(int c, int64_t r, int64_t cap) {
  if (r < 0) return 0;
  // Grows with r; stop as soon as it passes cap.
  int64_t v = 1;  // binom(c + j, j) for j = 0.. computed incrementally
  for (int64_t j = 1; j <= r; ++j) {
    // binom(c+j, j) = binom(c+j-1, j-1) * (c+j) / j
    if (v > cap) return cap + 1;
    v = v * (c + j) / j;
  }
  return std::min(v, cap + 1);
}

int64_t repetitions(int64_t l, int c) {  // smallest r with beta(c, r) >= l
  int64_t r = 0;
  while (beta(c, r, l) < l) ++r;
  return r;
}

struct Revolver {
  int L;
  std::vector<Action> out;

  void reverse_step(int i) {  // x_{i-1} is stored
    if (i == L) {
      out.push_back(Action::forward(L));
      out.push_back(Action::loss());
    }
    out.push_back(Action::backward(i));
  }

  void advance(int from, int to) {  // x_from stored and kept; x_to stored at the end
    for (int j = from + 1; j <= to; ++j) {
      out.push_back(Action::forward(j));
      if (j - 1 > from) out.push_back(Action::free(j - 1));
    }
  }

  void run(int s, int l, int c) {
    // Iterative in the left part (Revolve(s, m, c) is a tail call), recursive in the right.
    while (l > 1) {
      TG_ASSERT(c >= 1, "revolve: no snapshot for ", l, " steps");
      const int64_t r = repetitions(l, c);
      int64_t m = std::max(beta(c, r - 2, l), static_cast<int64_t>(l) - beta(c - 1, r, l));
      m = std::clamp<int64_t>(m, 1, l - 1);
      advance(s, s + static_cast<int>(m));
      run(s + static_cast<int>(m), l - static_cast<int>(m), c - 1);
      l = static_cast<int>(m);
    }
    reverse_step(s + 1);
  }
};

}  // namespace

int64_t revolve_advances(int64_t l, int s) {
  TG_CHECK(l >= 1, "revolve: l must be >= 1, got ", l);
  TG_CHECK(s >= 1 || l == 1, "revolve: ", s, " snapshots cannot reverse ", l, " steps");
  const int64_t r = repetitions(l, s);
  return r * l - binomial(s + r, s + 1);
}

Plan plan_revolve(const ChainSpec& spec, int C) {
  spec.validate();
  const int L = spec.L();
  TG_CHECK(C >= 0, "revolve:C: C must be >= 0, got ", C);
  TG_CHECK(C >= 1 || L == 1, "revolve:0: infeasible for L = ", L,
           " layers: backward(L) reads x_{L-1}, which must be stored besides x_0, so C >= 1 is "
           "needed (C = 0 reverses only L = 1)");
  Revolver rv{L, {}};
  // More than L-1 slots are never used: with C = L-1 every x_1..x_{L-1} is kept.
  rv.run(0, L, std::min(C, std::max(L - 1, 1)));
  return make_plan(spec, "revolve:" + std::to_string(C), std::move(rv.out));
}

}  // namespace tilegrad::remat
