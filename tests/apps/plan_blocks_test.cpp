// `tilegrad plan blocks`: every row is its policy simulated, the budget rows are the DP's optimum
// and never beaten by a named policy that fits the same budget, the named policies are what their
// names say, and an impossible budget states the smallest feasible one.
#include "apps/plan_blocks.h"

#include "testing.h"

namespace tgtest {
namespace {

apps::PlanBlocksConfig config(const std::string& kind, int blocks) {
  apps::PlanBlocksConfig c;
  c.kind = kind;
  c.blocks = blocks;
  c.elements = 64 * 16;
  c.act_bytes = c.elements * 4;
  c.weight_bytes = 16 * 16 * 4;
  c.matmul_flops = 2 * 64 * 16 * 16;
  return c;
}

TEST(PlanBlocks, RowsAreSimulatedAndBudgetRowsOptimal) {
  for (const char* kind : {"mlp", "attention", "transformer"}) {
    for (int N : {1, 3, 6}) {
      SCOPED_TRACE(std::string(kind) + " N=" + std::to_string(N));
      const apps::PlanBlocksResult r = apps::plan_blocks_table(config(kind, N));
      ASSERT_GE(r.rows.size(), 6u);
      for (const auto& row : r.rows) {
        const remat::BlockSim sim =
            remat::simulate_blocks(r.spec, remat::block_schedule(r.spec, row.choice));
        EXPECT_EQ(sim.peak_bytes, row.sim.peak_bytes) << row.policy;
        EXPECT_EQ(sim.recompute_flops, row.sim.recompute_flops) << row.policy;
        if (row.policy.rfind("budget:", 0) == 0) {
          const int64_t budget = std::stoll(row.policy.substr(7));
          EXPECT_LE(row.sim.peak_bytes, budget);
          EXPECT_EQ(row.sim.recompute_flops, remat::blocks_min_recompute(r.spec, budget));
          EXPECT_TRUE(row.pareto) << row.policy;  // nothing named does better at its budget
        }
      }
      // Sorted by peak; keep-all recomputes nothing; full per-block checkpointing is feasible.
      for (size_t i = 1; i < r.rows.size(); ++i)
        EXPECT_LE(r.rows[i - 1].sim.peak_bytes, r.rows[i].sim.peak_bytes);
      EXPECT_GE(r.keep_all_bytes, r.min_feasible_bytes);
    }
  }
}

TEST(PlanBlocks, NamedPoliciesAreWhatTheySay) {
  const apps::PlanBlocksResult r = apps::plan_blocks_table(config("transformer", 4));
  auto find = [&](const std::string& name) {
    for (const auto& row : r.rows)
      if (row.policy == name) return row;
    ADD_FAILURE() << name;
    return r.rows[0];
  };
  const auto keep = find("keep-all");
  EXPECT_EQ(keep.sim.recompute_flops, 0);
  EXPECT_EQ(keep.choice.checkpoint, (std::vector<char>{1, 0, 0, 0}));
  EXPECT_EQ(keep.choice.save, (std::vector<uint32_t>{3, 3, 3, 3}));
  const auto ckpt = find("checkpoint-blocks");
  EXPECT_EQ(ckpt.choice.checkpoint, (std::vector<char>{1, 1, 1, 1}));
  EXPECT_EQ(ckpt.choice.save, (std::vector<uint32_t>{0, 0, 0, 0}));
  // Selective: the matmul outputs are saved (bit 0: scores, matmul_up), softmax and gelu are not.
  const auto sel = find("selective");
  EXPECT_EQ(sel.choice.save, (std::vector<uint32_t>{1, 1, 1, 1}));
  EXPECT_GT(sel.sim.recompute_flops, 0);
  EXPECT_LT(sel.sim.recompute_flops, ckpt.sim.recompute_flops);
  EXPECT_LT(sel.sim.peak_bytes, keep.sim.peak_bytes);
}

TEST(PlanBlocks, ImpossibleBudgetStatesTheSmallest) {
  apps::PlanBlocksConfig c = config("mlp", 3);
  const int64_t smallest = apps::plan_blocks_table(c).min_feasible_bytes;
  c.budget = smallest - 1;
  EXPECT_NE(error_of([&] {
              apps::plan_blocks_table(c);
            }).find("the smallest feasible budget is " + std::to_string(smallest) + " bytes"),
            std::string::npos);
  c.budget = smallest;
  const apps::PlanBlocksResult r = apps::plan_blocks_table(c);
  ASSERT_TRUE(r.best.has_value());
  EXPECT_EQ(r.rows[*r.best].sim.peak_bytes, smallest);
  EXPECT_NE(error_of([] { apps::plan_blocks_table(config("lstm", 2)); }).find("--kind"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
