// The `tilegrad plan chain` computation: every checkpointing policy on one uniform chain, with its
// predicted peak and recompute, which of them are Pareto-optimal, and which fits a byte budget.
//
// The figures are the chain model's (src/remat/chain.h): each row is plan_policy(spec, policy) run
// through the simulator, nothing else. The function is separate from the CLI's printing (plan.cpp)
// so that tests can check the rows against the planners directly.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "remat/chain.h"

namespace tilegrad::apps {

struct PlanChainConfig {
  int layers = 0;                 // L >= 1
  int64_t act_bytes = 0;          // bytes of each x_i (x_0 included), >= 1
  int64_t layer_flops = 0;        // forward cost of one layer, >= 0
  std::optional<int64_t> budget;  // bytes; when set, rows are marked by whether they fit
};

struct PlanRow {
  std::string policy;  // the name plan_policy accepts, e.g. "every:8", "budget:1200000"
  int64_t peak_bytes = 0;
  int64_t recomputed_steps = 0;  // forward actions beyond the first L
  int64_t recompute_flops = 0;
  bool pareto = false;  // no other row has <= peak and <= recompute, one of them strictly
  bool fits = false;    // peak_bytes <= budget (false when no budget was given)
};

struct PlanChainResult {
  PlanChainConfig config;
  remat::ChainSpec spec;
  std::vector<PlanRow> rows;       // sorted by peak, then recompute, then policy name
  int64_t min_feasible_bytes = 0;  // the smallest peak any schedule reaches
  int64_t keep_all_bytes = 0;      // the peak of `none`, beyond which memory does not help
  std::optional<size_t> best;      // with a budget: index in rows of the fitting row with the
                                   // least recompute (ties: lower peak, then earlier row)
};

// Runs every policy; throws tilegrad::Error for an invalid configuration, and, when a budget is
// given that no schedule fits, an Error stating the smallest feasible budget.
PlanChainResult plan_chain(const PlanChainConfig& config);

// The policy names plan_chain tries on a chain of L layers whose budget planner spans
// [min_feasible_bytes, keep_all_bytes] in multiples of unit_bytes (plus budget:BYTES for a given
// budget): none, sqrt, every:K for K = 2, 4, 8, ... and revolve:C for C = 1, 2, 4, ... below L,
// chen at the paper's sqrt(L) threshold, and budget on a geometric grid of 12 budgets.
std::vector<std::string> chain_policies(int L, int64_t act_bytes, int64_t min_feasible_bytes,
                                        int64_t keep_all_bytes, std::optional<int64_t> budget);

// Parses a byte count: a non-negative number with an optional unit, B, kB/KB, MB, GB, TB (powers
// of 1000) or KiB, MiB, GiB, TiB (powers of 1024), case-insensitive, e.g. "512MB", "1.5GiB",
// "1200000". The result must be a whole number of bytes that fits int64. Throws tilegrad::Error
// naming `what` (e.g. "--budget") and the reason.
int64_t parse_bytes(std::string_view text, std::string_view what = "byte count");

}  // namespace tilegrad::apps
