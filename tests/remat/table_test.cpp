// Prints the table of docs/REMAT.md (uniform chains, one byte and one FLOP per layer, so peaks are
// in activations' worth): for each L, the peak and the recomputed forwards of none, sqrt, revolve
// at a few C, and the budget DP at each of those peaks. Rerun with
//   build/<dir>/tests/tilegrad_tests --gtest_filter=RematTable.*
// It also checks the relations the table shows, so it fails rather than print a wrong table.
#include <gtest/gtest.h>

#include <cstdio>
#include <vector>

#include "remat/budget.h"
#include "remat/plan.h"

namespace {

using namespace tilegrad::remat;  // NOLINT

TEST(RematTable, UniformChains) {
  std::printf(
      "| L | policy | peak (units of a) | of which gradients | recomputed forwards | budget DP at "
      "that "
      "peak |\n|---|---|---|---|---|---|\n");
  for (int L : {16, 64, 256, 1024}) {
    const ChainSpec spec = ChainSpec::uniform_chain(L);
    const BudgetSolver solver(spec);
    std::vector<Plan> plans{plan_none(spec), plan_sqrt(spec)};
    for (int C : {2, 4, 8, 16}) plans.push_back(plan_revolve(spec, C));
    for (const Plan& p : plans) {
      const int64_t dp = solver.min_recompute_flops(p.sim.peak_bytes);
      EXPECT_LE(dp, p.sim.recompute_flops) << p.policy;
      std::printf("| %d | %s | %lld | %lld | %lld | %lld |\n", L, p.policy.c_str(),
                  static_cast<long long>(p.sim.peak_bytes),
                  static_cast<long long>(p.sim.peak_grad_bytes),
                  static_cast<long long>(p.sim.recomputed_steps), static_cast<long long>(dp));
    }
    std::printf("| %d | budget (smallest feasible) | %lld | | %lld | |\n", L,
                static_cast<long long>(solver.min_feasible_bytes()),
                static_cast<long long>(solver.min_recompute_flops(solver.min_feasible_bytes())));
  }
}

}  // namespace
