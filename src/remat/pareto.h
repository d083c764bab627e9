// The (peak bytes, recompute FLOPs) trade-off of a chain over all planners and budgets, and which
// points of it are non-dominated.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "remat/chain.h"

namespace tilegrad::remat {

struct ParetoPoint {
  std::string policy;           // plan_policy name, e.g. "every:4", "budget:1234"
  int64_t peak_bytes = 0;       // simulated
  int64_t recompute_flops = 0;  // simulated (for budget points: the DP's value, which is the same)
  int64_t recomputed_steps = -1;  // forward actions beyond the first L; -1 where not simulated
  bool dominated = false;         // another point has <= peak and <= flops, one of them strictly
};

struct ParetoOptions {
  bool every = true;             // every:K for K = 1..L (and none, sqrt)
  bool chen = true;              // chen:b for each distinct greedy placement
  std::vector<int> revolve_C;    // revolve:C for these C; empty: C = 1..min(L-1, 32)
  bool budget = true;            // budget at every budget where its optimum improves
  bool simulate_budget = false;  // also build and simulate those schedules (fills steps)
};

std::vector<ParetoPoint> pareto_points(const ChainSpec& spec, const ParetoOptions& opt = {});
// Sets `dominated` on every point (O(n log n)).
void mark_dominated(std::vector<ParetoPoint>& points);

}  // namespace tilegrad::remat
