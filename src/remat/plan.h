// The checkpointing planners: each turns a ChainSpec (chain.h) into a schedule of actions and that
// schedule's simulated figures (simulate.h). Every planner returns the same representation, so an
// executor can run any of them; see docs/REMAT.md for the algorithms and their guarantees.
//
//   plan_none        keep every activation: L forwards, no recompute
//   plan_segments    Chen et al.'s segment scheme for a given set of checkpoints
//   plan_every       segments with checkpoints x_K, x_2K, ...
//   plan_sqrt        plan_every with K = ceil(sqrt(L))
//   plan_chen        Chen et al.'s greedy checkpoint placement for a running-size threshold b
//   plan_chen_search the search over b that Chen et al. suggest, under a byte budget
//   plan_revolve     Griewank-Walther binomial checkpointing with C slots besides x_0
//   plan_budget      the minimum-recompute schedule whose peak fits a byte budget (exact DP,
//                    budget.h)
//   plan_policy      any of these from its name: "none", "every:K", "sqrt", "chen:B",
//                    "chen-search:BYTES", "revolve:C", "budget:BYTES"
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "remat/chain.h"
#include "remat/simulate.h"

namespace tilegrad::remat {

struct Plan {
  std::string policy;  // the name plan_policy accepts for this plan, e.g. "every:4"
  std::vector<Action> schedule;
  SimResult sim;  // simulate(spec, schedule)
  // budget:BYTES only: true when the schedule is proven optimal over all valid schedules of the
  // model (budget.h, Note [Exact search over all schedules]); false means optimal within the nested
  // family only. Other planners leave it false.
  bool exact_over_all_schedules = false;
};

// Simulates `schedule` and wraps it (throws tilegrad::Error if the schedule is invalid).
Plan make_plan(const ChainSpec& spec, std::string policy, std::vector<Action> schedule);

Plan plan_none(const ChainSpec& spec);
// Checkpoints: indices in 1..L-1, strictly increasing (x_0 is always a checkpoint). The forward
// sweep keeps the checkpoints and the last segment's activations; the backward recomputes each
// earlier segment once from its checkpoint, keeping the segment's activations during its backward.
Plan plan_segments(const ChainSpec& spec, const std::vector<int>& checkpoints,
                   std::string policy = "segments");
Plan plan_every(const ChainSpec& spec, int K);  // K >= 1; K >= L keeps only x_0
Plan plan_sqrt(const ChainSpec& spec);
int ceil_sqrt(int L);  // smallest K with K*K >= L

// Chen et al.'s greedy placement: walk x_1..x_{L-1} adding act_bytes to a running size; when it
// exceeds b, make that x a checkpoint and restart the running size at 0.
std::vector<int> chen_checkpoints(const ChainSpec& spec, int64_t b);
Plan plan_chen(const ChainSpec& spec, int64_t b);
// Tries every threshold b at which the greedy placement changes and returns the plan with the
// fewest recompute FLOPs whose simulated peak is <= budget_bytes (ties: lower peak). Throws
// tilegrad::Error naming the smallest peak any threshold reaches if none fits.
Plan plan_chen_search(const ChainSpec& spec, int64_t budget_bytes);

// Throws tilegrad::Error if C slots cannot reverse the chain (C = 0 with L > 1).
Plan plan_revolve(const ChainSpec& spec, int C);
// Griewank-Walther's minimal number of forward advances for l steps and s snapshots,
// r*l - binom(s+r, s+1) with r the smallest integer such that binom(s+r, s) >= l (s >= 1, or
// s = 0 and l = 1). plan_revolve(spec, C) performs revolve_advances(L, C) + 1 forward actions.
int64_t revolve_advances(int64_t l, int s);
int64_t binomial(int64_t n, int64_t k);  // exact; throws tilegrad::Error on int64 overflow

Plan plan_budget(const ChainSpec& spec, int64_t budget_bytes);

Plan plan_policy(const ChainSpec& spec, const std::string& name);

}  // namespace tilegrad::remat
