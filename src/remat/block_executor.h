// The block rematerializer: runs a block-model schedule (blocks.h) — checkpoints between blocks,
// saved or recomputed op outputs inside them — on the real engine, so that the tracker can check
// the block model's predicted peak byte for byte.
//
// Note [Executing a block schedule]
// The network is the block model's chain of ops z_k = F_k(z_{k-1}), k = 1..n (the blocks
// flattened), each F_k one engine op: z_k's grad_fn is the only node F_k records besides
// parameter accumulators, and it reads its input through an edge to z_{k-1}. forward() runs the
// schedule's actions up to the loss with graph recording. While F_k records, saved-tensor hooks
// (Note [Saved-tensor hooks]) replace every saved alias of z_{k-1} and of z_k (softmax saves its
// output) by a handle naming that tensor; other saved tensors (weights) are kept as usual. So the
// nodes hold no z: the executor's stored set S is the only owner, exactly as in the model.
//
// backward(z_n, dz_n) is the loss action's other half: the caller forms dz_n while z_n is stored
// (the loss moment), then hands both over, and the engine drops z_n at once. The actions between
// the loss and backward(n) run before the first node (BackwardOptions::on_start), and the actions
// between backward(k) and backward(k-1) right after op k's node has run
// (BackwardOptions::on_node_done): by then dz_k has been freed and dz_{k-1} and dW_k are live,
// which is the model's state after backward(k). compute(j) re-runs F_j on the stored z_{j-1}
// without recording (allocations labelled activation); free(j) drops z_j. A node's unpack hands
// over the stored tensor and checks that the schedule stores it (a spec whose read flags are wrong
// is reported, not silently mispredicted). The recomputed z's are the bits the forward produced
// (same kernels, same inputs), so gradients are bitwise identical to a plain backward.
//
// Byte-exact prediction (blocks.h's rules) further needs: each op's backward allocates exactly
// dz_{k-1} and, if it has parameters, their gradient (param_grad_bytes) — one kernel each, no
// scratch — and its forward allocates exactly z_k; z_0 requires grad (backward(1) produces dz_0);
// parameters and z_0 are allocated before forward(); the caller keeps nothing else. The
// constructor checks what it can (the schedule's validity); forward() checks every z_k's bytes
// against the spec.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "core/tensor.h"
#include "remat/blocks.h"
#include "remat/executor.h"

namespace tilegrad::remat {

class BlockRematerializer {
 public:
  // ops: F_1..F_n, the blocks' ops in order. Throws tilegrad::Error, before anything runs, if the
  // schedule is invalid for spec (simulate_blocks' checks), if ops.size() is not spec's op count,
  // or if the forward part is not one sweep compute(1..n) with frees.
  BlockRematerializer(BlockChainSpec spec, std::vector<LayerFn> ops,
                      std::vector<BlockAction> schedule);
  ~BlockRematerializer();
  BlockRematerializer(const BlockRematerializer&) = delete;
  BlockRematerializer& operator=(const BlockRematerializer&) = delete;

  // Runs the actions up to the loss with graph recording and returns z_n (call once, grad mode
  // on). Throws if an op's output has other bytes than the spec says.
  Tensor forward(const Tensor& z0);
  // Runs the backward from z_n with gradient dz_n, carrying out the rest of the schedule (call
  // once, after forward). Pass both by std::move to let the engine free them as the model does.
  void backward(Tensor zn, Tensor dzn);

  // compute actions run after the loss so far: the recomputed ops once backward() has returned.
  int64_t recomputed_ops() const;

  struct State;  // defined in block_executor.cpp; shared with the handles the nodes hold

 private:
  std::shared_ptr<State> state_;
};

}  // namespace tilegrad::remat
