// The exact budget planner: Note [Budget DP] in budget.h.
#include "remat/budget.h"

#include <algorithm>
#include <numeric>
#include <queue>
#include <unordered_map>

#include "core/error.h"
#include "remat/plan.h"

namespace tilegrad::remat {

namespace {
constexpr int64_t kMaxCells = int64_t{1} << 25;
constexpr int64_t kSearchInf = INT64_MAX / 4;  // above any schedule's FLOPs (checked in the solver)
}  // namespace

BudgetSolver::BudgetSolver(ChainSpec spec) : spec_(std::move(spec)) {
  spec_.validate();
  L_ = spec_.L();
  uniform_ = spec_.uniform();
  u_ = 0;
  for (int64_t a : spec_.act_bytes) u_ = std::gcd(u_, a);
  w_.resize(static_cast<size_t>(L_) + 1);
  for (int j = 0; j <= L_; ++j)
    w_[static_cast<size_t>(j)] = spec_.act_bytes[static_cast<size_t>(j)] / u_;
  gw_ = w_;
  gw_.push_back(0);  // step L+1, the loss: no gradient is live before it
  // A nested schedule forwards each layer at most L+1 times (every advance over x_j belongs to a
  // different, strictly smaller segment around j), so costs stay below (L+1) * total < kInf.
  TG_CHECK(spec_.total_fwd_flops() <= kInf / (4 * (int64_t{L_} + 1)),
           "budget: fwd_flops too large for exact int64 sums (total ", spec_.total_fwd_flops(),
           "); express them in a coarser unit");

  // keep_all(s, t): the segment's peak when it stores everything it computes (units).
  auto keep_all = [&](int s, int t) {
    int64_t stored = 0, peak = 0;
    for (int j = s; j <= t - 1; ++j) {
      stored += w_[static_cast<size_t>(j)];
      if (j > s) peak = std::max(peak, stored + gw_[static_cast<size_t>(t)]);  // forward(j)
    }
    // backward(t) (the loss if t = L+1), then backward(t-1..s+1), each releasing x_{i-1} after.
    for (int i = t; i >= s + 1; --i) {
      peak = std::max(peak, stored + gw_[static_cast<size_t>(i)] + w_[static_cast<size_t>(i - 1)]);
      stored -= w_[static_cast<size_t>(i - 1)];
    }
    return peak;
  };
  cap_ = keep_all(0, L_ + 1);

  // The rows to fill, in an order where every (k, t) and (s, k) with s < k < t comes first.
  std::vector<std::pair<int, int>> order;
  for (int d = 1; d <= L_ + 1; ++d) {
    if (uniform_) {
      if (d <= L_) order.emplace_back(0, d);
      order.emplace_back(L_ + 1 - d, L_ + 1);
    } else {
      for (int s = 0; s + d <= L_ + 1; ++s) order.emplace_back(s, s + d);
    }
  }
  int64_t cells = 0;
  std::vector<int64_t> len(order.size());
  for (size_t r = 0; r < order.size(); ++r) {
    len[r] = std::min(keep_all(order[r].first, order[r].second), cap_) + 1;
    cells += len[r];
  }
  TG_CHECK(cells <= kMaxCells, "budget: the exact DP for this chain needs ", cells,
           " table cells (L = ", L_, ", memory unit gcd(act_bytes) = ", u_,
           " bytes, keep-all peak ", cap_, " units); the limit is ", kMaxCells,
           ". Round act_bytes to a coarser common unit or shorten the chain.");
  rows_.resize(static_cast<size_t>(uniform_ ? 2 * (L_ + 2) : (L_ + 2) * (L_ + 2)));
  for (size_t r = 0; r < order.size(); ++r) {
    rows_[static_cast<size_t>(row_index(order[r].first, order[r].second))].assign(
        static_cast<size_t>(len[r]), kInf);
    fill_row(order[r].first, order[r].second);
  }
  min_units_ = 0;
  while (min_units_ <= cap_ && opt(0, L_ + 1, min_units_) >= kInf) ++min_units_;
  TG_ASSERT(min_units_ <= cap_, "budget: keeping everything must be feasible");
}

int BudgetSolver::row_index(int s, int t) const {
  if (uniform_) return (t == L_ + 1 ? L_ + 2 : 0) + (t - s);
  return s * (L_ + 2) + t;
}

int64_t BudgetSolver::opt(int s, int t, int64_t c) const {
  if (c < 0) return kInf;
  const auto& row = rows_[static_cast<size_t>(row_index(s, t))];
  return row[static_cast<size_t>(std::min<int64_t>(c, static_cast<int64_t>(row.size()) - 1))];
}

int64_t BudgetSolver::fwd_need(int s, int j) const {
  return w_[static_cast<size_t>(s)] + (j - 1 > s ? w_[static_cast<size_t>(j - 1)] : 0) +
         w_[static_cast<size_t>(j)];
}

void BudgetSolver::fill_row(int s, int t) {
  auto& row = rows_[static_cast<size_t>(row_index(s, t))];
  const int64_t top = static_cast<int64_t>(row.size()) - 1;
  const int64_t ws = w_[static_cast<size_t>(s)];
  const int64_t gt = gw_[static_cast<size_t>(t)];
  if (t == s + 1) {
    for (int64_t c = 2 * ws + gt; c <= top; ++c) row[static_cast<size_t>(c)] = 0;
    return;
  }
  int64_t F = 0, fp = 0;
  for (int k = s + 1; k <= t - 1; ++k) {
    F += spec_.fwd_flops[static_cast<size_t>(k)];
    fp = std::max(fp, fwd_need(s, k));
    const int64_t need = fp + gt;
    if (need > top) break;                                        // fp only grows with k
    const auto& A = rows_[static_cast<size_t>(row_index(k, t))];  // Opt(k, t, c - w_s)
    const auto& B = rows_[static_cast<size_t>(row_index(s, k))];  // Opt(s, k, c)
    const int64_t lastA = static_cast<int64_t>(A.size()) - 1;
    const int64_t lastB = static_cast<int64_t>(B.size()) - 1;
    for (int64_t c = need; c <= top; ++c) {
      const int64_t a = A[static_cast<size_t>(std::min(c - ws, lastA))];
      const int64_t b = B[static_cast<size_t>(std::min(c, lastB))];
      // a, b <= kInf, so the sum cannot overflow, and row[c] stays <= kInf.
      row[static_cast<size_t>(c)] = std::min(row[static_cast<size_t>(c)], F + a + b);
    }
  }
}

void BudgetSolver::emit(int s, int t, int64_t c, std::vector<Action>& out) const {
  if (t == s + 1) {
    out.push_back(t == L_ + 1 ? Action::loss() : Action::backward(t));
    return;
  }
  const int64_t best = opt(s, t, c);
  TG_ASSERT(best < kInf, "budget: emitting an infeasible segment");
  const int64_t ws = w_[static_cast<size_t>(s)];
  int64_t F = 0, fp = 0;
  for (int k = s + 1; k <= t - 1; ++k) {
    F += spec_.fwd_flops[static_cast<size_t>(k)];
    fp = std::max(fp, fwd_need(s, k));
    if (fp + gw_[static_cast<size_t>(t)] > c) break;
    const int64_t a = opt(k, t, c - ws), b = opt(s, k, c);
    if (a >= kInf || b >= kInf || F + a + b != best) continue;
    for (int j = s + 1; j <= k; ++j) {
      out.push_back(Action::forward(j));
      if (j - 1 > s) out.push_back(Action::free(j - 1));
    }
    emit(k, t, c - ws, out);
    emit(s, k, c, out);
    return;
  }
  TG_ASSERT(false, "budget: no split reproduces Opt(", s, ", ", t, ", ", c, ")");
}

int64_t BudgetSolver::min_recompute_flops(int64_t budget_bytes) const {
  if (budget_bytes < min_feasible_bytes()) return -1;
  return opt(0, L_ + 1, std::min(budget_bytes / u_, cap_)) - spec_.total_fwd_flops();
}

std::vector<Action> BudgetSolver::schedule(int64_t budget_bytes) const {
  TG_CHECK(budget_bytes >= min_feasible_bytes(), "budget: ", budget_bytes,
           " bytes is infeasible for this chain (L = ", L_, "); the smallest feasible budget is ",
           min_feasible_bytes(), " bytes");
  std::vector<Action> out;
  emit(0, L_ + 1, std::min(budget_bytes / u_, cap_), out);
  return out;
}

std::vector<std::pair<int64_t, int64_t>> BudgetSolver::frontier() const {
  std::vector<std::pair<int64_t, int64_t>> f;
  for (int64_t c = min_units_; c <= cap_; ++c) {
    const int64_t v = opt(0, L_ + 1, c) - spec_.total_fwd_flops();
    if (f.empty() || v < f.back().second) f.emplace_back(c * u_, v);
  }
  return f;
}

ExactSearchResult exact_search(const BudgetSolver& solver, int64_t budget_bytes,
                               int64_t max_states) {
  const ChainSpec& spec = solver.spec();
  const int L = spec.L();
  const auto& a = spec.act_bytes;
  const auto& f = spec.fwd_flops;
  ExactSearchResult res;
  const int64_t dp = solver.min_recompute_flops(budget_bytes);
  if (dp >= 0) {
    res.feasible = true;
    res.recompute_flops = dp;
    res.schedule = solver.schedule(budget_bytes);
  }
  if (L > 63) return res;
  // Below the DP's smallest feasible budget nothing bounds the search from above: it then proves
  // that no schedule at all fits (or finds one, which the tests say does not happen).
  const int64_t upper = dp >= 0 ? dp + spec.total_fwd_flops() : kSearchInf;  // FLOPs to beat

  struct Node {
    uint64_t mask;  // bit j: x_j stored
    int t;          // next step: L+1 before the loss
    int64_t g;      // forward FLOPs so far
    int64_t parent;
    Action via;     // the action from the parent
    bool replaced;  // via is forward(i) followed by free(i-1)
  };
  struct KeyHash {
    size_t operator()(const std::pair<uint64_t, int>& k) const {
      return std::hash<uint64_t>()(k.first * 0x9E3779B97F4A7C15ull +
                                   static_cast<uint64_t>(k.second));
    }
  };
  std::vector<Node> nodes;
  std::unordered_map<std::pair<uint64_t, int>, int64_t, KeyHash> index;  // state -> node
  std::vector<char> settled;
  using Item = std::pair<int64_t, int64_t>;  // (g + h, node)
  std::priority_queue<Item, std::vector<Item>, std::greater<>> open;

  auto has = [](uint64_t mask, int j) { return (mask >> j & 1u) != 0; };
  auto h = [&](uint64_t mask, int t) {
    int64_t s = 0;
    for (int j = 1; j < t && j <= L; ++j)
      if (!has(mask, j)) s += f[static_cast<size_t>(j)];
    return s;
  };
  auto relax = [&](uint64_t mask, int t, int64_t g, int64_t parent, Action via, bool replaced) {
    const int64_t fg = g + h(mask, t);
    if (fg >= upper) return;  // cannot beat the DP's schedule
    auto [it, fresh] = index.try_emplace({mask, t}, static_cast<int64_t>(nodes.size()));
    if (fresh) {
      nodes.push_back({mask, t, g, parent, via, replaced});
      settled.push_back(0);
    } else {
      Node& n = nodes[static_cast<size_t>(it->second)];
      if (settled[static_cast<size_t>(it->second)] || g >= n.g) return;
      n.g = g;
      n.parent = parent;
      n.via = via;
      n.replaced = replaced;
    }
    open.emplace(fg, it->second);
  };

  relax(1u, L + 1, 0, -1, Action::loss(), false);
  int64_t goal = -1;
  while (!open.empty()) {
    const int64_t id = open.top().second;
    open.pop();
    // The first pop of a state carries its least g (h depends on the state only), so later ones
    // are stale.
    if (settled[static_cast<size_t>(id)]) continue;
    settled[static_cast<size_t>(id)] = 1;
    const Node n = nodes[static_cast<size_t>(id)];
    if (n.t == 0) {
      goal = id;
      break;
    }
    if (++res.states > max_states) return res;  // not finished: the DP's schedule stands
    int64_t live = n.t <= L ? a[static_cast<size_t>(n.t)] : 0;
    for (int j = 0; j <= L; ++j)
      if (has(n.mask, j)) live += a[static_cast<size_t>(j)];
    const int t = n.t;
    if (has(n.mask, t - 1) && live + a[static_cast<size_t>(t - 1)] <= budget_bytes) {
      // The step itself: the only successor (the reduction in the Note).
      const uint64_t next = t - 1 >= 1 ? n.mask & ~(uint64_t{1} << (t - 1)) : n.mask;
      relax(next, t - 1, n.g, id, t == L + 1 ? Action::loss() : Action::backward(t), false);
      continue;
    }
    // Forward moves only, each keeping its input or freeing it at once (the normal form).
    for (int i = 1; i < t && i <= L; ++i) {
      if (!has(n.mask, i - 1) || has(n.mask, i) || live + a[static_cast<size_t>(i)] > budget_bytes)
        continue;
      const uint64_t kept = n.mask | uint64_t{1} << i;
      const int64_t g = n.g + f[static_cast<size_t>(i)];
      relax(kept, t, g, id, Action::forward(i), false);
      if (i - 1 >= 1) relax(kept & ~(uint64_t{1} << (i - 1)), t, g, id, Action::forward(i), true);
    }
  }
  res.finished = true;
  if (goal < 0) return res;  // nothing beats the DP: its schedule is optimal (or none fits)
  res.feasible = true;
  std::vector<Action> path;
  for (int64_t v = goal; nodes[static_cast<size_t>(v)].parent >= 0;
       v = nodes[static_cast<size_t>(v)].parent) {
    const Node& n = nodes[static_cast<size_t>(v)];
    if (n.replaced) path.push_back(Action::free(n.via.i - 1));  // reversed below
    path.push_back(n.via);
  }
  std::reverse(path.begin(), path.end());
  res.schedule = std::move(path);
  res.recompute_flops = nodes[static_cast<size_t>(goal)].g - spec.total_fwd_flops();
  return res;
}

Plan plan_budget(const ChainSpec& spec, int64_t budget_bytes) {
  BudgetSolver solver(spec);
  ExactSearchResult ex = exact_search(solver, budget_bytes);
  if (!ex.feasible) solver.schedule(budget_bytes);  // throws, naming the smallest feasible budget
  Plan p = make_plan(spec, "budget:" + std::to_string(budget_bytes), std::move(ex.schedule));
  p.exact_over_all_schedules = ex.finished;
  // The search and the simulator must agree exactly; a mismatch is a bug here, not a user error.
  TG_ASSERT(p.sim.peak_bytes <= budget_bytes, "budget: schedule peak ", p.sim.peak_bytes,
            " exceeds the budget ", budget_bytes);
  TG_ASSERT(p.sim.recompute_flops == ex.recompute_flops, "budget: simulated recompute ",
            p.sim.recompute_flops, " differs from the planner's ", ex.recompute_flops);
  TG_ASSERT(ex.recompute_flops <= solver.min_recompute_flops(budget_bytes),
            "budget: the search is above the DP");
  return p;
}

}  // namespace tilegrad::remat
