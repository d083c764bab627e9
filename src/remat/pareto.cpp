// The Pareto frontier helper: collects plans over policies and budgets, then marks dominance.
#include "remat/pareto.h"

#include <algorithm>
#include <numeric>

#include "remat/budget.h"
#include "remat/plan.h"

namespace tilegrad::remat {

namespace {
ParetoPoint point_of(const Plan& p) {
  return {p.policy, p.sim.peak_bytes, p.sim.recompute_flops, p.sim.recomputed_steps, false};
}
}  // namespace

std::vector<ParetoPoint> pareto_points(const ChainSpec& spec, const ParetoOptions& opt) {
  spec.validate();
  const int L = spec.L();
  std::vector<ParetoPoint> pts;
  if (opt.every) {
    pts.push_back(point_of(plan_none(spec)));
    pts.push_back(point_of(plan_sqrt(spec)));
    for (int K = 1; K <= L; ++K) pts.push_back(point_of(plan_every(spec, K)));
  }
  if (opt.chen) {
    std::vector<int> last{-1};
    int64_t b = 0;
    for (int e = 0; e <= L - 1; ++e) {
      if (e >= 1) b += spec.act_bytes[static_cast<size_t>(e)];
      std::vector<int> ck = chen_checkpoints(spec, b);
      if (ck == last) continue;
      last = ck;
      pts.push_back(point_of(plan_chen(spec, b)));
    }
  }
  std::vector<int> Cs = opt.revolve_C;
  if (Cs.empty()) {
    for (int C = 1; C <= std::min(L - 1, 32); ++C) Cs.push_back(C);
    if (L == 1) Cs.push_back(0);
  }
  for (int C : Cs) pts.push_back(point_of(plan_revolve(spec, C)));
  if (opt.budget) {
    BudgetSolver solver(spec);
    for (const auto& [bytes, flops] : solver.frontier()) {
      ParetoPoint p{"budget:" + std::to_string(bytes), bytes, flops, -1, false};
      if (opt.simulate_budget) p = point_of(plan_budget(spec, bytes));
      pts.push_back(p);
    }
  }
  mark_dominated(pts);
  return pts;
}

void mark_dominated(std::vector<ParetoPoint>& points) {
  std::vector<size_t> idx(points.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::sort(idx.begin(), idx.end(), [&](size_t x, size_t y) {
    const auto& p = points[x];
    const auto& q = points[y];
    return p.peak_bytes != q.peak_bytes ? p.peak_bytes < q.peak_bytes
                                        : p.recompute_flops < q.recompute_flops;
  });
  // Sweep by increasing peak: a point is dominated iff an earlier point (peak <=) has fewer flops,
  // or the same flops at a strictly lower peak.
  int64_t best = INT64_MAX;       // least flops among strictly lower peaks
  int64_t best_here = INT64_MAX;  // least flops at the current peak
  int64_t cur_peak = INT64_MIN;
  for (size_t n : idx) {
    auto& p = points[n];
    if (p.peak_bytes != cur_peak) {
      best = std::min(best, best_here);
      best_here = INT64_MAX;
      cur_peak = p.peak_bytes;
    }
    p.dominated = best <= p.recompute_flops || best_here < p.recompute_flops;
    best_here = std::min(best_here, p.recompute_flops);
  }
}

}  // namespace tilegrad::remat
