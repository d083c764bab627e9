// `tilegrad plan chain`'s computation: every row is what plan_policy and the simulator say for its
// policy, the Pareto marks are exactly the non-dominated rows, the choice under a budget is the
// least recompute that fits, an impossible budget names the smallest feasible one, and the byte
// parser's units and refusals.
#include <gtest/gtest.h>

#include <set>
#include <string>

#include "apps/plan_chain.h"
#include "core/error.h"
#include "remat/budget.h"
#include "remat/plan.h"
#include "remat/simulate.h"

namespace {

using tilegrad::apps::parse_bytes;
using tilegrad::apps::plan_chain;
using tilegrad::apps::PlanChainConfig;
using tilegrad::apps::PlanChainResult;
using tilegrad::apps::PlanRow;

// memtrace's small chain: [40, 10] f64 activations, 2·40·10² FLOPs per layer.
constexpr int64_t kAct = 40 * 10 * 8;
constexpr int64_t kFlops = 2 * 40 * 10 * 10;

PlanChainConfig config(int L, std::optional<int64_t> budget = std::nullopt) {
  PlanChainConfig c;
  c.layers = L;
  c.act_bytes = kAct;
  c.layer_flops = kFlops;
  c.budget = budget;
  return c;
}

bool dominates(const PlanRow& a, const PlanRow& b) {
  return a.peak_bytes <= b.peak_bytes && a.recompute_flops <= b.recompute_flops &&
         (a.peak_bytes < b.peak_bytes || a.recompute_flops < b.recompute_flops);
}

std::string error_of(const PlanChainConfig& c) {
  try {
    plan_chain(c);
  } catch (const tilegrad::Error& e) {
    return e.what();
  }
  return "";
}

TEST(PlanChain, EveryRowIsItsPlannerSimulated) {
  for (int L : {1, 2, 3, 16, 64}) {
    const PlanChainResult r = plan_chain(config(L));
    EXPECT_EQ(r.spec.act_bytes,
              tilegrad::remat::ChainSpec::uniform_chain(L, kAct, kFlops).act_bytes);
    ASSERT_FALSE(r.rows.empty());
    std::set<std::string> heads;
    for (const PlanRow& row : r.rows) {
      SCOPED_TRACE("L = " + std::to_string(L) + ", " + row.policy);
      const tilegrad::remat::Plan p = tilegrad::remat::plan_policy(r.spec, row.policy);
      const tilegrad::remat::SimResult sim = tilegrad::remat::simulate(r.spec, p.schedule);
      EXPECT_EQ(row.peak_bytes, sim.peak_bytes);
      EXPECT_EQ(row.recomputed_steps, sim.recomputed_steps);
      EXPECT_EQ(row.recompute_flops, sim.recompute_flops);
      EXPECT_GE(row.peak_bytes, r.min_feasible_bytes);
      EXPECT_LE(row.peak_bytes, r.keep_all_bytes);
      EXPECT_FALSE(row.fits);  // no budget given
      heads.insert(row.policy.substr(0, row.policy.find(':')));
    }
    // Every family of policy is tried (L = 1 has no layer to checkpoint or revolve around).
    for (const char* h : {"none", "sqrt", "budget"}) EXPECT_TRUE(heads.count(h)) << h;
    if (L >= 16) {
      for (const char* h : {"every", "chen", "revolve"}) EXPECT_TRUE(heads.count(h)) << h;
    }
    EXPECT_FALSE(r.best.has_value());
    // Sorted by peak.
    for (size_t i = 1; i < r.rows.size(); ++i) {
      EXPECT_LE(r.rows[i - 1].peak_bytes, r.rows[i].peak_bytes);
    }
  }
}

TEST(PlanChain, ParetoFlagsAreExactlyTheNonDominatedRows) {
  for (int L : {4, 16, 64}) {
    const PlanChainResult r = plan_chain(config(L));
    int optimal = 0;
    for (const PlanRow& row : r.rows) {
      bool dominated = false;
      for (const PlanRow& other : r.rows) dominated = dominated || dominates(other, row);
      EXPECT_EQ(row.pareto, !dominated) << "L = " << L << ", " << row.policy;
      optimal += row.pareto ? 1 : 0;
    }
    // The ends of the frontier: keeping everything, and the smallest feasible peak.
    EXPECT_GE(optimal, 2);
    EXPECT_TRUE(r.rows.front().pareto);
    EXPECT_EQ(r.rows.front().peak_bytes, r.min_feasible_bytes);
    EXPECT_EQ(r.rows.back().peak_bytes, r.keep_all_bytes);
  }
}

TEST(PlanChain, BestWithinABudgetIsTheLeastRecomputeThatFits) {
  const int L = 16;
  const PlanChainResult all = plan_chain(config(L));
  const tilegrad::remat::BudgetSolver solver(all.spec);
  // Budgets at and between the rows' peaks, and ones that are not multiples of an activation.
  std::vector<int64_t> budgets{all.min_feasible_bytes, all.keep_all_bytes, all.keep_all_bytes * 10,
                               9 * kAct + 1234};
  for (const PlanRow& row : all.rows) budgets.push_back(row.peak_bytes + kAct / 2);
  for (int64_t budget : budgets) {
    SCOPED_TRACE("budget " + std::to_string(budget));
    const PlanChainResult r = plan_chain(config(L, budget));
    ASSERT_TRUE(r.best.has_value());
    const PlanRow& best = r.rows[*r.best];
    EXPECT_TRUE(best.fits);
    EXPECT_LE(best.peak_bytes, budget);
    for (const PlanRow& row : r.rows) {
      EXPECT_EQ(row.fits, row.peak_bytes <= budget) << row.policy;
      if (row.fits) {
        EXPECT_GE(row.recompute_flops, best.recompute_flops) << row.policy;
        if (row.recompute_flops == best.recompute_flops) {
          EXPECT_GE(row.peak_bytes, best.peak_bytes);
        }
      }
    }
    // The budget planner at this budget is among the rows, so the choice is the exact optimum on
    // a uniform chain.
    EXPECT_EQ(best.recompute_flops, solver.min_recompute_flops(budget));
  }
}

TEST(PlanChain, InfeasibleBudgetNamesTheSmallestFeasibleOne) {
  const PlanChainResult all = plan_chain(config(16));
  // Four activations: x_0, x_{i-1}, g_i and g_{i-1} during a backward step.
  EXPECT_EQ(all.min_feasible_bytes, 4 * kAct);
  const std::string expected =
      "the smallest feasible budget is " + std::to_string(all.min_feasible_bytes) + " bytes";
  for (int64_t budget : {int64_t{0}, kAct, all.min_feasible_bytes - 1}) {
    const std::string msg = error_of(config(16, budget));
    EXPECT_NE(msg.find(expected), std::string::npos) << msg;
    EXPECT_NE(msg.find("budget of " + std::to_string(budget) + " bytes"), std::string::npos) << msg;
  }
  EXPECT_EQ(error_of(config(16, all.min_feasible_bytes)), "");
}

TEST(PlanChain, RejectsInvalidConfigurations) {
  EXPECT_NE(error_of(config(0)).find("--layers"), std::string::npos);
  PlanChainConfig c = config(4);
  c.act_bytes = 0;
  EXPECT_NE(error_of(c).find("activation size"), std::string::npos);
  c = config(4);
  c.budget = -1;
  EXPECT_NE(error_of(c).find("--budget"), std::string::npos);
}

TEST(ParseBytes, UnitsAndFractions) {
  EXPECT_EQ(parse_bytes("1200000"), 1200000);
  EXPECT_EQ(parse_bytes("0"), 0);
  EXPECT_EQ(parse_bytes("12B"), 12);
  EXPECT_EQ(parse_bytes("4kB"), 4000);
  EXPECT_EQ(parse_bytes("512MB"), 512000000);
  EXPECT_EQ(parse_bytes("512mb"), 512000000);
  EXPECT_EQ(parse_bytes("2GB"), 2000000000);
  EXPECT_EQ(parse_bytes("3TB"), 3000000000000);
  EXPECT_EQ(parse_bytes("4KiB"), 4096);
  EXPECT_EQ(parse_bytes("1MiB"), 1 << 20);
  EXPECT_EQ(parse_bytes("1.5GiB"), 1610612736);
  EXPECT_EQ(parse_bytes("2TiB"), int64_t{2} << 40);
  EXPECT_EQ(parse_bytes("0.25MB"), 250000);
  EXPECT_EQ(parse_bytes("1.MB"), 1000000);
  EXPECT_EQ(parse_bytes("9223372036854775807"), INT64_MAX);
}

TEST(ParseBytes, ClearErrors) {
  auto error = [](const char* text) {
    try {
      parse_bytes(text, "--budget");
    } catch (const tilegrad::Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(error("").find("--budget: expected a number of bytes"), std::string::npos);
  EXPECT_NE(error("MB").find("expected a number of bytes"), std::string::npos);
  EXPECT_NE(error("-5").find("expected a number of bytes"), std::string::npos);
  EXPECT_NE(error("12XB").find("unknown unit 'xb'"), std::string::npos);
  EXPECT_NE(error("1e6").find("unknown unit 'e6'"), std::string::npos);
  EXPECT_NE(error("12 MB").find("unknown unit"), std::string::npos);
  EXPECT_NE(error("1.5B").find("not a whole number of bytes"), std::string::npos);
  EXPECT_NE(error("1.2.3").find("unknown unit"), std::string::npos);
  EXPECT_NE(error("9223372036854775808").find("too large"), std::string::npos);
  EXPECT_NE(error("10000000TiB").find("too large"), std::string::npos);
  EXPECT_NE(error("1234567890123456789012345").find("too many digits"), std::string::npos);
}

}  // namespace
