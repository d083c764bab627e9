// The reverse-mode engine.
//
// Note [Backward order and memory]: the engine first counts, for every node reachable from the
// root, how many edges point at it (an iterative DFS, so a 10,000-node chain does not touch the
// call stack). A node runs when all its consumers have run, i.e. when its count reaches zero; among
// ready nodes the most recently created runs first, which in a chain frees memory in the reverse of
// the order it was allocated. A node's incoming gradients live in its input buffer only until it
// runs: after apply() the buffer is dropped (non-leaf gradients are freed then), and unless
// retain_graph the node's saved tensors are released at once.
#pragma once

#include <functional>
#include <optional>

#include "core/tensor.h"

namespace tilegrad {

class Node;

struct BackwardOptions {
  bool retain_graph = false;
  // Called after each node has run, its consumed gradients have been freed and (unless
  // retain_graph) its saved tensors released: the point at which a memory trace reads the tracker.
  std::function<void(const Node&)> on_node_done;
  // Called once, before the first node runs: the seed is in place and the engine holds neither the
  // root nor the gradient passed in (a caller that moved them in has freed them by now).
  std::function<void()> on_start;
};

// Backpropagates `grad` (default: 1 for a single-element root) from `root` into every leaf. Both
// are taken by value: a caller that moves them in lets the engine drop the root's value before the
// backward and free the seed once the root's node has consumed it.
void run_backward(Tensor root, Tensor grad, BackwardOptions options = {});

// 1 when `grad` is the seed that the running backward implied for its single-element root, still
// unchanged; nullopt for any other tensor. A node that needs its upstream scalar on the host
// (lm_head_cross_entropy scales two buffers by it) reads it here rather than waiting for the
// device — which inside a CUDA graph capture it could not do at all.
std::optional<double> implied_seed_value(const Tensor& grad);

}  // namespace tilegrad
