// Tests of the block model (src/remat/blocks.h): the simulator's accounting on a hand-checked
// schedule, and the DP's optimality over every policy (checkpoints between blocks, save masks
// inside them) by brute force through the simulator, including infeasible budgets.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <vector>

#include "core/error.h"
#include "remat/blocks.h"
#include "testing.h"

namespace {

using namespace tilegrad::remat;  // NOLINT: the tests read better with the planner names
using tilegrad::Error;

using Rng = tgtest::SplitMix64;

BlockChainSpec random_blocks(uint64_t seed) {
  Rng rng{seed};
  BlockChainSpec spec;
  spec.input_bytes = rng.in(1, 6);
  const int N = static_cast<int>(rng.in(1, 4));
  for (int b = 0; b < N; ++b) {
    std::vector<BlockOp> ops;
    const int m = static_cast<int>(rng.in(1, 3));
    for (int j = 0; j < m; ++j) {
      ops.push_back({"op", rng.in(1, 6), rng.in(0, 9), rng.in(0, 1) == 1, rng.in(0, 2) == 0});
      // Half the ops have parameters, whose gradients stay live to the end of the backward.
      if (rng.in(0, 1) == 1) ops.back().param_grad_bytes = rng.in(1, 4);
    }
    spec.blocks.push_back(ops);
  }
  return spec;
}

TEST(Blocks, SimulatorCountsBytesByTheRules) {
  // One block: input 2 bytes, op 1 (4 bytes, reads input), op 2 (1 byte, reads output).
  BlockChainSpec spec;
  spec.input_bytes = 2;
  spec.blocks = {{{"a", 4, 3, true, false}, {"b", 1, 5, false, true}}};
  using K = BlockActionKind;
  // Save nothing. Sweep: compute(1) 2+4 = 6, compute(2) 2+4+1 = 7, then z_1 is freed; the loss
  // 2+1 + dz_2 1 = 4 and releases z_2. backward(2) reads z_2, so z_1 and z_2 are recomputed from
  // z_0: compute(1) 2 + dz_2 1 + 4 = 7, compute(2) 2+4 + 1 + 1 = 8, free z_1; backward(2)
  // 2+1 + dz_2 1 + dz_1 4 = 8; backward(1) reads z_0: 2 + 4 + 2 = 8.
  const std::vector<BlockAction> s = block_schedule(spec, {{1}, {0}});
  const std::vector<BlockAction> want{
      {K::compute, 1}, {K::compute, 2}, {K::free, 1},     {K::loss, 0}, {K::compute, 1},
      {K::compute, 2}, {K::free, 1},    {K::backward, 2}, {K::free, 2}, {K::backward, 1}};
  EXPECT_EQ(s, want);
  const BlockSim r = simulate_blocks(spec, s);
  EXPECT_EQ(r.peak_bytes, 8);
  EXPECT_EQ(r.recompute_flops, 8);
  EXPECT_EQ(r.computes, 4);
  // Saving z_1 instead: the sweep keeps it (2+4+1 = 7 at compute(2), loss 2+4+1+1 = 8), only z_2
  // is recomputed (5 flops), and backward(2) sees 2+4+1 + 1+4 = 12.
  const BlockSim r2 = simulate_blocks(spec, block_schedule(spec, {{1}, {1}}));
  EXPECT_EQ(r2.peak_bytes, 12);
  EXPECT_EQ(r2.recompute_flops, 5);
  // Each category's own peak: the activations z_1 + z_2 = 5 (sweep, loss, backward(2)); the
  // gradients dz_1 + dz_0 = 6 at backward(1), above dz_2 + dz_1 = 5 at backward(2).
  EXPECT_EQ(r2.peak_act_bytes, 5);
  EXPECT_EQ(r2.peak_grad_bytes, 6);
  // A parameter on op 2 (3 bytes of gradient): live from backward(2) on, so backward(2) sees 15
  // and backward(1) 2 + 4 + 2 + 3 = 11; the gradients alone peak at backward(1), 4 + 2 + 3.
  BlockChainSpec with_param = spec;
  with_param.blocks[0][1].param_grad_bytes = 3;
  const BlockSim r3 = simulate_blocks(with_param, block_schedule(with_param, {{1}, {1}}));
  EXPECT_EQ(r3.peak_bytes, 15);
  EXPECT_EQ(r3.peak_grad_bytes, 9);
  // Invalid schedules name the action.
  const std::string msg = [&] {
    try {
      simulate_blocks(spec, {{K::compute, 2}});
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  }();
  EXPECT_NE(msg.find("action 0 (compute(2)): its input z_1 is not stored"), std::string::npos)
      << msg;
}

TEST(Blocks, OptimalOverAllPoliciesByBruteForce) {
  int checked = 0, infeasible = 0;
  for (uint64_t seed = 1; seed <= 60; ++seed) {
    const BlockChainSpec spec = random_blocks(seed);
    std::vector<BlockSim> sims;
    int64_t top = 0, lowest = INT64_MAX;
    for (const BlockPolicy& p : all_block_policies(spec)) {
      sims.push_back(simulate_blocks(spec, block_schedule(spec, p)));
      top = std::max(top, sims.back().peak_bytes);
      lowest = std::min(lowest, sims.back().peak_bytes);
    }
    EXPECT_EQ(blocks_min_feasible_bytes(spec), lowest) << "seed=" << seed;
    for (int64_t M = lowest - 2; M <= top + 1; ++M) {
      SCOPED_TRACE("seed=" + std::to_string(seed) + " M=" + std::to_string(M));
      int64_t want = -1;
      for (const BlockSim& r : sims)
        if (r.peak_bytes <= M && (want < 0 || r.recompute_flops < want)) want = r.recompute_flops;
      ASSERT_EQ(blocks_min_recompute(spec, M), want);
      if (want < 0) {
        ++infeasible;
        bool returned = false;
        try {
          plan_blocks(spec, M);
          returned = true;
        } catch (const Error& e) {
          EXPECT_NE(std::string(e.what()).find("smallest feasible budget is " +
                                               std::to_string(lowest) + " bytes"),
                    std::string::npos)
              << e.what();
        }
        EXPECT_FALSE(returned);
        continue;
      }
      const BlockPlan plan = plan_blocks(spec, M);
      EXPECT_LE(plan.sim.peak_bytes, M);
      EXPECT_EQ(plan.sim.recompute_flops, want);
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
  EXPECT_GT(infeasible, 60);
}

TEST(Blocks, TransformerLikeBlocks) {
  // MLP and attention-like blocks: keeping everything costs nothing, tighter budgets cost more,
  // and selective saving inside blocks reaches budgets between full recompute and keeping all.
  for (const BlockChainSpec& spec :
       {BlockChainSpec::mlp_blocks(6, 4, 10), BlockChainSpec::attention_blocks(6, 4, 10)}) {
    const int64_t lo = blocks_min_feasible_bytes(spec);
    int64_t prev = -1, keep_all = -1;
    for (int64_t M = lo; M <= 400; M += 4) {
      const BlockPlan p = plan_blocks(spec, M);
      EXPECT_LE(p.sim.peak_bytes, M);
      if (prev >= 0) {
        EXPECT_LE(p.sim.recompute_flops, prev) << M;
      }
      prev = p.sim.recompute_flops;
      if (prev == 0 && keep_all < 0) keep_all = M;
    }
    EXPECT_GT(keep_all, lo);  // some budget needs no recompute
    EXPECT_GT(blocks_min_recompute(spec, lo), 0);
    bool some_partial = false;  // a plan that saves some but not all internal outputs
    for (int64_t M = lo; M < keep_all; M += 4) {
      const BlockPlan p = plan_blocks(spec, M);
      for (uint32_t m : p.policy.save) some_partial = some_partial || (m != 0 && m != 3);
    }
    EXPECT_TRUE(some_partial);
  }
}

}  // namespace
