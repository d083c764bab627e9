// Chen et al. 2016's budgeted greedy segmentation ("memory planning with budget") and the search
// over its threshold b. The greedy only decides where the checkpoints go; the schedule is the
// segment scheme of plan_segments.
#include <algorithm>

#include "core/error.h"
#include "remat/plan.h"

namespace tilegrad::remat {

std::vector<int> chen_checkpoints(const ChainSpec& spec, int64_t b) {
  spec.validate();
  TG_CHECK(b >= 0, "chen: threshold b must be >= 0, got ", b);
  std::vector<int> ck;
  int64_t running = 0;
  // x_L is not a candidate: the loss needs it right after the sweep, so it is never worth keeping.
  for (int i = 1; i <= spec.L() - 1; ++i) {
    running += spec.act_bytes[static_cast<size_t>(i)];
    if (running > b) {
      ck.push_back(i);
      running = 0;
    }
  }
  return ck;
}

Plan plan_chen(const ChainSpec& spec, int64_t b) {
  Plan p = plan_segments(spec, chen_checkpoints(spec, b));
  p.policy = "chen:" + std::to_string(b);
  return p;
}

Plan plan_chen_search(const ChainSpec& spec, int64_t budget_bytes) {
  spec.validate();
  // Candidate thresholds: 0 (every x a checkpoint) and the prefix sums a_1 + ... + a_e, at which
  // the first segment's length changes. For uniform chains these are all the distinct placements
  // (every (m+1)-th layer for b = m*a); for others they are a grid, as Chen et al. suggest
  // searching.
  std::vector<int64_t> cand{0};
  int64_t prefix = 0;
  for (int e = 1; e <= spec.L() - 1; ++e) {
    prefix += spec.act_bytes[static_cast<size_t>(e)];
    cand.push_back(prefix);
  }
  bool found = false;
  Plan best;
  int64_t smallest_peak = INT64_MAX;
  std::vector<int> last;
  for (int64_t b : cand) {
    std::vector<int> ck = chen_checkpoints(spec, b);
    if (!last.empty() && ck == last) continue;
    last = ck;
    Plan p = plan_segments(spec, ck);
    p.policy = "chen:" + std::to_string(b);
    smallest_peak = std::min(smallest_peak, p.sim.peak_bytes);
    if (p.sim.peak_bytes > budget_bytes) continue;
    if (!found || p.sim.recompute_flops < best.sim.recompute_flops ||
        (p.sim.recompute_flops == best.sim.recompute_flops &&
         p.sim.peak_bytes < best.sim.peak_bytes)) {
      best = std::move(p);
      found = true;
    }
  }
  TG_CHECK(found, "chen-search: no threshold fits the budget of ", budget_bytes,
           " bytes; the smallest peak it reaches is ", smallest_peak, " bytes");
  return best;
}

}  // namespace tilegrad::remat
