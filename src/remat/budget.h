// The exact minimum-recompute planner under a byte budget: a dynamic program over segments of the
// chain and the memory available to them, whose memory accounting is the simulator's (chain.h).
//
// Note [Budget DP]
// Memory is counted in units of u = gcd(act_bytes): every live total in the model is a sum of
// act_bytes, so a budget of M bytes allows exactly floor(M / u) units. Write w_j = a_j / u and
// gw(t) = w_t for t <= L, gw(L+1) = 0 (before the loss there is no gradient; the loss plays the
// role of a step "L+1" whose backward reads x_L and produces g_L).
//
// Opt(s, t, c), 0 <= s < t <= L+1: the least total forward FLOPs to run the backward steps t..s+1
// (step L+1 being the loss) starting from the state "x_s stored, g_t live (gw(t) units), nothing
// stored strictly between s and t", with c units available for x_s, g_t and everything the segment
// computes (the stored x's below s are outside c). The segment ends with g_s live and x_s released
// (kept if s = 0).
//   t = s+1:  backward(t) (the loss if t = L+1) needs 2*w_s + gw(t) <= c; cost 0.
//   t > s+1:  choose the next checkpoint k, s < k < t: forward(s+1..k), freeing each intermediate
//             after its successor is computed, keep x_k; then Opt(k, t, c - w_s); then
//             Opt(s, k, c). forward(j) needs w_s + [j-1 > s] w_{j-1} + w_j + gw(t) <= c.
//             Opt = min over k of sum_{j=s+1..k} f_j + Opt(k, t, c - w_s) + Opt(s, k, c).
// Opt(0, L+1, floor(M/u)) - total_fwd_flops() is the least recompute FLOPs of a schedule in the
// nested family (each checkpoint kept from its computation until the backward step that reads it);
// docs/REMAT.md gives the argument and its assumptions, and tests/remat compares it with an
// exhaustive search over all valid schedules.
//
// A row Opt(s, t, .) is non-increasing in c and constant (the segment's first-sweep cost
// sum f_{s+1..t-1}) from the peak of keeping everything, so rows are stored up to that point. For a
// uniform chain Opt depends only on t - s and on whether t = L+1, which brings L = 1024 within
// reach (about L^3/3 simple steps); a general chain costs about L^3/6 * (mean w) steps and L^2/2 *
// (segment peak) cells, and the constructor refuses chains needing more than 2^25 cells.
//
// Note [Exact search over all schedules]
// The DP above is exact only within the nested family. exact_search finds the optimum over every
// valid schedule of the model: it is a shortest-path search (A*) over the simulator's own state
// graph, state = (set of stored x's, next step t), edge = an action within the budget, edge cost =
// the forward's FLOPs. It is exact by construction once it finishes, because it explores every
// state whose lower bound is below the best schedule known. Two devices keep it small:
//   - the lower bound h(S, t) = sum of f_j over 1 <= j < t with x_j not in S: each such x_j is read
//     by B_{j+1} (or the loss), which has not run, so it is computed at least once more. h drops
//     by exactly f_i on forward(i), rises by f_{i-1} if x_{i-1} is freed, and is unchanged by a
//     backward step, so it is consistent and A* settles every state at its exact distance;
//   - the DP's value is an upper bound: states with g + h >= the DP's total are never expanded,
//     and if none remains below it the DP's schedule is proven optimal over all schedules.
// Two reductions of the graph keep an optimal schedule (docs/REMAT.md gives the arguments):
//   - normal form: a free(j) only right after forward(j+1). Moving each free up to just after the
//     last use of x_j before it (forward(j+1); B_{j+1} releases x_j itself), and deleting forwards
//     whose output is never used, lowers every moment's live bytes and never adds cost. So the
//     moves are forward(i), keeping x_{i-1} or freeing it at once, and the steps;
//   - when x_{t-1} is stored and backward(t) (or the loss) fits, it is the only move. A normal-form
//     schedule doing actions alpha first can do them after it: the step swaps x_{t-1} + g_t for
//     g_{t-1} (a gradient has its activation's bytes), so each alpha sees no more live bytes, and
//     no alpha touches x_{t-1} (forward(t) would need t < t, free(t-1) must follow it).
// Below the DP's smallest feasible budget the search runs without the upper bound, so a finished
// search there proves that no schedule fits. It stops after max_states states; it then reports
// that it did not finish.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "remat/chain.h"

namespace tilegrad::remat {

class BudgetSolver {
 public:
  // Solves for every budget at once (throws tilegrad::Error if the tables would be too large).
  explicit BudgetSolver(ChainSpec spec);

  const ChainSpec& spec() const { return spec_; }
  int64_t unit() const { return u_; }  // gcd of act_bytes; all peaks are multiples of it
  // The smallest budget (bytes) any schedule of the family fits in, and the peak of keeping all.
  int64_t min_feasible_bytes() const { return min_units_ * u_; }
  int64_t keep_all_bytes() const { return cap_ * u_; }
  // Least recompute FLOPs within budget_bytes, or -1 if no schedule fits.
  int64_t min_recompute_flops(int64_t budget_bytes) const;
  // The optimal schedule for budget_bytes; throws tilegrad::Error stating min_feasible_bytes() if
  // the budget is too small.
  std::vector<Action> schedule(int64_t budget_bytes) const;
  // The budgets (bytes, increasing) at which the optimum improves, with the recompute FLOPs from
  // each on: the frontier of this planner over all budgets.
  std::vector<std::pair<int64_t, int64_t>> frontier() const;

 private:
  static constexpr int64_t kInf = INT64_MAX / 4;
  int row_index(int s, int t) const;
  int64_t opt(int s, int t, int64_t c) const;  // clamps c to the row's stored range
  void fill_row(int s, int t);
  void emit(int s, int t, int64_t c, std::vector<Action>& out) const;
  int64_t fwd_need(int s, int j) const;  // units during forward(j) from x_s, without gradient

  ChainSpec spec_;
  int L_ = 0;
  bool uniform_ = false;
  int64_t u_ = 1;
  std::vector<int64_t> w_;   // act_bytes / u, index 0..L
  std::vector<int64_t> gw_;  // gradient units of step t: w_t, and 0 for t = L+1
  int64_t cap_ = 0;          // keep-all peak in units
  int64_t min_units_ = 0;
  std::vector<std::vector<int64_t>> rows_;
};

struct ExactSearchResult {
  bool finished = false;  // the search ran to completion: `schedule` is optimal over all schedules
  bool feasible = false;  // a schedule that fits is known (none exists if also finished)
  int64_t recompute_flops = -1;  // of `schedule`
  std::vector<Action> schedule;  // an optimal schedule (the DP's when nothing beats it)
  int64_t states = 0;            // states settled by the search
};

// The least recompute FLOPs over all valid schedules within budget_bytes (Note [Exact search over
// all schedules]). Needs L <= 63 (a state's stored set is one 64-bit word); for larger L, or when
// more than max_states states would be needed, it returns finished = false and the DP's schedule.
ExactSearchResult exact_search(const BudgetSolver& solver, int64_t budget_bytes,
                               int64_t max_states = int64_t{1} << 16);

}  // namespace tilegrad::remat
