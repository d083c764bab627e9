// The chain rematerializer: runs a planner's schedule (chain.h) on the real engine.
//
// Note [Executing a schedule]
// Given the layer functions F_1..F_L, the input x_0 and a schedule, forward() runs the schedule's
// actions up to `loss` with graph recording: each forward(i) calls F_i on the recorded x_{i-1}
// under saved-tensor hooks (Note [Saved-tensor hooks]), and each free(i) drops the executor's
// reference to x_i. It returns x_L, from which the caller forms the loss and runs an ordinary
// backward; the engine runs unchanged.
//
// Which saved tensor is "the input of layer i": while F_i records, the pack hook compares every
// tensor an op saves with x_{i-1}, the tensor F_i was called on. A saved tensor that is an alias of
// it (same storage, shape, strides and offset) is replaced by a handle naming layer i; any other
// saved tensor (weights, intermediates inside F_i, views of x_{i-1}) is saved normally. So the
// nodes never hold an x themselves: the executor holds the stored set S of the schedule (as
// detached aliases, so no x keeps the graph alive), and x_{i-1} is "kept" when it is in S at the
// moment of the loss and "dropped" (to be recomputed) otherwise. Either way the handle is its
// recipe.
//
// In the backward, the first unpack of a layer-i handle (the engine runs layer i's node) carries
// out the schedule's actions after the loss up to backward(i): forward(j) recomputes
// x_j = F_j(x_{j-1}) from stored tensors under NoGradGuard (allocations labelled activation),
// free(j) drops x_j, and an earlier backward(k) whose node unpacked nothing releases x_{k-1}. The
// handle then takes x_{i-1} out of S (backward(i) releases it; x_0 stays), and the last handle of
// layer i drops it when the engine releases the node's saved tensors, i.e. right after the node
// ran. So the rematerialization follows the schedule action by action, revolve's multi-level
// recomputation included, and the recomputed x's are the bits the forward produced (same
// kernels, same inputs), which makes the gradients bitwise identical to a plain backward.
//
// Requirements: each F_i must compute the same values every time it is called on the same input
// (a dropout inside F_i must draw from a fixed stream position, e.g. dropout_at(x, p, seed,
// offset_i) with offset_i fixed per layer, not from a Generator that advances), must not modify its
// input in place, and must record graph. Only x_{i-1} is managed: what else F_i saves (tanh's
// output, say) stays with its node as without the executor, outside the chain model. With
// retain_graph the handles keep what they handed out (as a retained graph keeps its saved
// tensors), so a second backward recomputes nothing; the schedule runs once per forward. Schedules
// whose forward sweep computes a layer twice before the loss are refused: the graph records each
// F_i once.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "remat/chain.h"
#include "remat/plan.h"

namespace tilegrad::remat {

using LayerFn = std::function<Tensor(const Tensor&)>;

// The lecture's naive per-tensor recipe with checkpoints x_0 and x_C (0 <= C <= L-1; C = 0 keeps
// only x_0): the forward keeps x_0 and x_C only; each dropped x_j (1 <= j <= L-1, j != C) is
// recomputed when backward(j+1) needs it, from the nearest checkpoint c below it, through
// F_{c+1}..F_j, freeing each intermediate as soon as the next one is computed (nothing it
// recomputes on the way is cached for later layers). As a schedule, so that the simulator predicts
// its peak and recompute count and the same executor runs it. Recomputed steps: sum over the
// dropped j of (j - c(j)).
std::vector<Action> naive_schedule(int L, int C);
Plan plan_naive(const ChainSpec& spec, int C);
// plan_policy (plan.h) plus "naive:C".
Plan plan_executable(const ChainSpec& spec, const std::string& policy);

// The same view of the same bytes (storage, offset, shape, strides, dtype): what "a saved copy of
// x" means to the executors, since a node saves aliases, never copies.
bool same_alias(const Tensor& a, const Tensor& b);

class ChainRematerializer {
 public:
  // Throws tilegrad::Error, before anything runs, if the schedule is invalid for L = layers.size()
  // (simulate.h's checks, including a schedule planned for another L) or if a layer is empty.
  ChainRematerializer(std::vector<LayerFn> layers, std::vector<Action> schedule);
  ~ChainRematerializer();
  ChainRematerializer(const ChainRematerializer&) = delete;
  ChainRematerializer& operator=(const ChainRematerializer&) = delete;

  // Runs the schedule's forward part with graph recording and returns x_L (call once; needs grad
  // mode on). on_forward(i, x_i), if given, is called after forward(i) and the frees that follow it
  // in the sweep. The executor's state lives on in the saved handles, so this object may be
  // destroyed before the backward.
  Tensor forward(const Tensor& x0, const std::function<void(int, const Tensor&)>& on_forward = {});

  int L() const;
  // Which x_j (j = 0..L) the schedule stores at the loss (x_L included; it is released then).
  const std::vector<bool>& stored_at_loss() const;
  // Forward actions executed so far after the loss: the recomputed steps once the backward is done.
  int64_t recomputed_steps() const;
  // Schedule actions executed so far (all of them once backward(1) has run).
  size_t actions_done() const;

  struct State;  // defined in executor.cpp; shared with the handles the nodes hold

 private:
  std::shared_ptr<State> state_;
};

}  // namespace tilegrad::remat
