// Rematerialization on a sequence of blocks with per-op save/recompute choices: checkpoints between
// blocks (which block inputs the first forward sweep keeps) and, inside every block, which op
// outputs are saved for the backward pass and which are recomputed (selective recomputation).
//
// Note [Block model]
// Tensors z_0..z_n: z_0 is the input (never freed), op k (k = 1..n) computes z_k from z_{k-1}, and
// a loss reads z_n. The ops are grouped into N consecutive blocks; block b holds ops P_b+1..P_{b+1}
// (P_0 = 0, P_N = n) and its input is X_b = z_{P_b}. Op k has out_bytes s_k (s_0 = input_bytes),
// flops f_k, and its backward reads dz_k and, per its flags, z_{k-1} (`bwd_reads_input`, e.g. a
// matmul's weight gradient, gelu) and z_k (`bwd_reads_output`, e.g. softmax); it produces dz_{k-1},
// which has s_{k-1} bytes, and the gradient of its parameters, pg_k bytes (0 if it has none),
// which stays live to the end. Actions (BlockAction):
//   compute(k)   needs z_{k-1} stored and z_k not; stores z_k.  live = stored + G + PG + s_k
//   free(k)      discards z_k (k >= 1).
//   loss         needs z_n stored, once; then G = dz_n, z_n released.  live = stored + s_n
//   backward(k)  k = n, n-1, ..., 1 in order after the loss; needs the z's its flags name stored;
//                then G = dz_{k-1}, PG += pg_k.  live = stored + s_k + s_{k-1} + PG + pg_k
// where "stored" is the bytes of the stored z's before the action, G the live activation gradient
// (none before the loss) and PG the parameter gradients of the ops already backpropagated. The
// peak is the maximum over the schedule; simulate_blocks checks and measures. These are the
// engine's own rules for single-op steps whose backward allocates exactly dz_{k-1} and dW_k
// (block_executor.h), which is why predictions equal the tracker's measurements.
//
// A policy (BlockPolicy) chooses checkpoint[b] for every block (checkpoint[0] is always true) and a
// save mask per block over its ops but the last (bit j: the output of the block's op j+1, an
// internal tensor; the block's output is the next block's input). Checkpoints split the blocks
// into segments [p, q). K(p, q), the segment's kept set, is its blocks' inputs and their saved
// outputs. The schedule of a policy (block_schedule) is:
//   sweep     compute(1..n); after compute(k), free z_{k-1} unless it is a checkpoint input or in
//             K(last segment). Then the loss.
//   backward  segments from the last to the first. A segment other than the last is first
//             re-forwarded from its checkpoint up to the highest tensor of K(p, q), freeing
//             tensors outside K as soon as their successor exists (dX_q is live meanwhile). Then
//             its blocks from the top: block b runs backward(k) for its ops from the top; before
//             each, the tensors the op reads that are not stored are recomputed from the highest
//             stored tensor below them, freeing intermediates on the way; after it, every block
//             tensor at or above z_k is freed, and z_{k-1} too unless it is X_b or op k-1 reads
//             its output (it is then needed next). After the block, X_b is freed (unless b = 0).
// Every moment's live bytes split into (checkpoints below the segment) + (K of the segment's
// blocks below the current block) + (the current block's own part), which is what makes the
// dynamic program of plan_blocks exact over all policies (docs/REMAT.md, "Blocks").
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tilegrad::remat {

struct BlockOp {
  std::string name;
  int64_t out_bytes = 1;  // >= 1
  int64_t flops = 0;      // >= 0
  bool bwd_reads_input = true;
  bool bwd_reads_output = false;
  // Bytes of the gradient of the op's parameters (a weight's dW): produced by backward(k) and live
  // from then to the end of the backward (accumulated into the parameter). 0 for ops without any.
  int64_t param_grad_bytes = 0;
};

struct BlockChainSpec {
  int64_t input_bytes = 1;                   // s_0, >= 1
  std::vector<std::vector<BlockOp>> blocks;  // N >= 1 blocks, each with 1..16 ops

  // Throws tilegrad::Error naming the first inconsistency.
  void validate() const;
  int num_blocks() const { return static_cast<int>(blocks.size()); }
  int num_ops() const;
  int64_t total_flops() const;
  // `count` copies of a transformer MLP block: matmul (reads input) -> gelu (reads input) ->
  // matmul (reads input), with hidden width `ratio` times the model width; `bytes` per
  // model-width tensor and `flops` per model-width matmul.
  static BlockChainSpec mlp_blocks(int count, int64_t bytes, int64_t flops, int ratio = 4);
  // `count` copies of an attention-like block: matmul (reads input) -> softmax (reads output) ->
  // matmul (reads input); the scores are `score_ratio` times the model-width tensor.
  static BlockChainSpec attention_blocks(int count, int64_t bytes, int64_t flops,
                                         int score_ratio = 2);
};

enum class BlockActionKind : uint8_t { compute, free, loss, backward };

struct BlockAction {
  BlockActionKind kind;
  int k;  // tensor/op index; 0 for the loss
  bool operator==(const BlockAction&) const = default;
};

std::string to_string(const BlockAction& a);

struct BlockSim {
  int64_t peak_bytes = 0;       // z's (z_0 included) and gradients live at once
  int64_t peak_act_bytes = 0;   // peak of the z's other than z_0 alone
  int64_t peak_grad_bytes = 0;  // peak of the gradients alone (activation and parameter)
  int64_t computes = 0;         // compute actions
  int64_t recompute_flops = 0;  // flops of all computes minus total_flops()
};

// Checks validity (throws tilegrad::Error naming the action's position and reason) and measures.
BlockSim simulate_blocks(const BlockChainSpec& spec, const std::vector<BlockAction>& schedule);

struct BlockPolicy {
  std::vector<char> checkpoint;  // per block; [0] must be 1
  std::vector<uint32_t> save;    // per block, bits 0..ops-2
  bool operator==(const BlockPolicy&) const = default;
};

// Every policy of the model, by plain enumeration (2^(N-1) checkpoint patterns times the masks):
// for brute-force checks on small models.
std::vector<BlockPolicy> all_block_policies(const BlockChainSpec& spec);

// The schedule of a policy, as in Note [Block model] (throws tilegrad::Error if malformed).
std::vector<BlockAction> block_schedule(const BlockChainSpec& spec, const BlockPolicy& policy);

struct BlockPlan {
  BlockPolicy policy;
  std::vector<BlockAction> schedule;
  BlockSim sim;
};

// The least-recompute policy whose schedule fits budget_bytes, by the exact DP over blocks and
// memory (docs/REMAT.md). Throws tilegrad::Error stating the smallest feasible budget if none fits.
BlockPlan plan_blocks(const BlockChainSpec& spec, int64_t budget_bytes);
// The DP's value alone: least recompute flops within budget_bytes, or -1 if no policy fits.
int64_t blocks_min_recompute(const BlockChainSpec& spec, int64_t budget_bytes);
// The smallest budget any policy fits in.
int64_t blocks_min_feasible_bytes(const BlockChainSpec& spec);

}  // namespace tilegrad::remat
