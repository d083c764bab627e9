// The `tilegrad plan blocks` computation: checkpointing and selective recomputation on a sequence
// of transformer-like blocks (the block model, remat/blocks.h), with each policy's predicted peak
// and recompute, the Pareto-optimal ones, and the exact DP's choice under a byte budget.
//
// Blocks, for activations [batch, dim] of one dtype (a = batch·dim·itemsize bytes):
//   mlp        matmul dim→ratio·dim (trainable), gelu, matmul ratio·dim→dim (trainable)
//   attention  scores (matmul, output score_ratio·a, no weight), softmax (reads its output),
//              values (matmul back to a, no weight): the shape of attention's memory, not its math
//   transformer  attention and mlp blocks alternating, attention first
// Named policies: keep-all (one segment saving everything), checkpoint-blocks (every block's input
// a checkpoint, nothing saved inside: per-layer activation checkpointing), sqrt (a checkpoint every
// ceil(sqrt(N)) blocks), selective (one segment saving the matmul outputs and recomputing
// gelu/softmax: Megatron's selective recomputation), checkpoint-blocks+selective, and budget:BYTES
// rows from the DP on a geometric grid between the smallest feasible peak and keep-all.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "remat/blocks.h"

namespace CLI {
class App;
}

namespace tilegrad::apps {

struct PlanBlocksConfig {
  std::string kind = "transformer";  // mlp, attention, transformer
  int blocks = 0;                    // N >= 1
  int64_t elements = 0;              // batch·dim
  int64_t act_bytes = 0;             // bytes of one [batch, dim] activation
  int64_t weight_bytes = 0;          // bytes of one [dim, dim] weight (its gradient likewise)
  int64_t matmul_flops = 0;          // FLOPs of one [batch, dim] x [dim, dim] matmul
  int ratio = 4;                     // MLP hidden width / dim
  int score_ratio = 2;               // attention scores' bytes / a
  std::optional<int64_t> budget;
};

struct PlanBlocksRow {
  std::string policy;
  remat::BlockPolicy choice;
  remat::BlockSim sim;
  int64_t recomputed_ops = 0;
  bool pareto = false;
  bool fits = false;
};

struct PlanBlocksResult {
  PlanBlocksConfig config;
  remat::BlockChainSpec spec;
  std::vector<PlanBlocksRow> rows;  // sorted by peak, then recompute, then name
  int64_t min_feasible_bytes = 0;
  int64_t keep_all_bytes = 0;
  std::optional<size_t> best;  // with a budget: the DP's plan for it
};

remat::BlockChainSpec plan_blocks_spec(const PlanBlocksConfig& config);
// Throws tilegrad::Error for a bad configuration or, with a budget nothing fits, stating the
// smallest feasible budget.
PlanBlocksResult plan_blocks_table(const PlanBlocksConfig& config);

// Adds `blocks` under the `plan` subcommand.
void register_plan_blocks(CLI::App& plan);

}  // namespace tilegrad::apps
