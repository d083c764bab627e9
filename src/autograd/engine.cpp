#include "autograd/engine.h"

#include <memory>
#include <queue>

#include "autograd/grad_mode.h"
#include "autograd/meta.h"
#include "autograd/node.h"
#include "core/error.h"
#include "memory/category.h"
#include "ops/elementwise.h"

namespace tilegrad {

namespace {

// Gradients waiting for a node: one slot per output of the node. `owned` marks slots holding a
// buffer the engine itself allocated, which it may therefore add into in place.
struct InputBuffer {
  std::vector<Tensor> grads;
  std::vector<bool> owned;
};

void accumulate(InputBuffer& buf, size_t slot, Tensor g) {
  if (!buf.grads[slot].defined()) {
    buf.grads[slot] = std::move(g);
    return;
  }
  if (!buf.owned[slot]) {
    // The first gradient may be shared (an add's backward hands one tensor to both inputs): the
    // sum goes to a buffer of the engine's own, in one pass rather than a copy and an add.
    buf.grads[slot] = add(buf.grads[slot], g);
    buf.owned[slot] = true;
    return;
  }
  buf.grads[slot].add_(g);
}

// The seed run_backward implied on this thread (implied_seed_value): its storage and the version
// it had when filled with 1. A weak reference: the seed is freed as soon as its node has consumed
// it, and a later storage at the same address must not pass for it.
struct ImpliedSeed {
  std::weak_ptr<Storage> storage;
  uint64_t version = 0;
};
thread_local ImpliedSeed t_implied_seed;

struct ByNewest {
  bool operator()(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) const {
    return a->sequence_nr() < b->sequence_nr();
  }
};

}  // namespace

void run_backward(Tensor root, Tensor grad, BackwardOptions options) {
  TG_CHECK(root.defined(), "backward: called on an undefined tensor");
  TG_CHECK(root.requires_grad(), "backward: tensor of shape ", shape_str(root.shape()),
           " does not require grad and has no grad_fn (did you set requires_grad on an input, and "
           "is grad mode on?)");
  Tensor seed = std::move(grad);
  ImpliedSeed implied;
  if (!seed.defined()) {
    TG_CHECK(root.numel() == 1,
             "backward: the gradient can only be implied for a single-element "
             "tensor; root has shape ",
             shape_str(root.shape()), ", pass a gradient");
    CategoryScope cat(Category::gradient);
    seed = empty(root.shape(), {root.dtype(), root.device()});
    seed.fill_(1.0);
    implied = {seed.storage(), seed.storage()->version()};
  } else {
    TG_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype() &&
                 seed.device() == root.device(),
             "backward: gradient ", seed.str(), " does not match root ", root.str());
  }

  const Edge root_edge = gradient_edge(root);
  TG_ASSERT(root_edge.valid());
  root = Tensor();  // only its node is needed from here on

  // Number the reachable nodes (an iterative walk) and count the edges into each: the per-node
  // tables below are vectors indexed by that number, so the hot loop does no hashing.
  std::vector<std::shared_ptr<Node>> nodes{root_edge.node};
  TG_CHECK(root_edge.node->engine_slot < 0, "backward: called from inside a running backward");
  root_edge.node->engine_slot = 0;
  std::vector<int> deps(1, 0);
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const Edge& e : nodes[i]->next_edges()) {
      if (!e.valid()) continue;
      if (e.node->engine_slot < 0) {
        e.node->engine_slot = static_cast<int64_t>(nodes.size());
        nodes.push_back(e.node);
        deps.push_back(0);
      }
      ++deps[e.node->engine_slot];
    }
  }
  // Whatever happens (a node may throw), leave the nodes reusable for a later backward.
  struct ResetSlots {
    std::vector<std::shared_ptr<Node>>& nodes;
    ~ResetSlots() {
      for (auto& n : nodes) n->engine_slot = -1;
    }
  } reset_slots{nodes};

  // The implied seed is known for this backward only (a nested one, from a hook, has its own).
  struct SeedScope {
    ImpliedSeed prev = t_implied_seed;
    explicit SeedScope(ImpliedSeed s) { t_implied_seed = s; }
    ~SeedScope() { t_implied_seed = prev; }
  } seed_scope{implied};

  std::vector<InputBuffer> buffers(nodes.size());
  std::vector<bool> has_buffer(nodes.size(), false);
  auto buffer_of = [&](Node* n) -> InputBuffer& {
    const auto slot = static_cast<size_t>(n->engine_slot);
    InputBuffer& buf = buffers[slot];
    if (!has_buffer[slot]) {
      has_buffer[slot] = true;
      const size_t k = std::max<size_t>(n->num_outputs(), 1);
      buf.grads.resize(k);
      buf.owned.assign(k, false);
      auto& pre = n->preallocated_grads();  // eager mode: start from the zero buffers
      for (size_t i = 0; i < pre.size() && i < k; ++i) {
        buf.grads[i] = std::move(pre[i]);
        buf.owned[i] = true;
      }
      pre.clear();
    }
    return buf;
  };

  NoGradGuard no_grad;
  CategoryScope category(Category::gradient);
  {
    InputBuffer& rb = buffer_of(root_edge.node.get());
    accumulate(rb, root_edge.input_nr, std::move(seed));
  }
  if (options.on_start) options.on_start();

  std::priority_queue<std::shared_ptr<Node>, std::vector<std::shared_ptr<Node>>, ByNewest> ready;
  ready.push(root_edge.node);
  while (!ready.empty()) {
    std::shared_ptr<Node> node = ready.top();
    ready.pop();
    TG_CHECK(!node->released(), "backward: ", node->name(),
             " has already been run by an earlier backward that freed its saved tensors; pass "
             "retain_graph=true to the first backward to run it again");
    std::vector<Tensor> out_grads;
    {
      const auto slot = static_cast<size_t>(node->engine_slot);
      TG_ASSERT(has_buffer[slot]);
      std::vector<Tensor> in_grads = std::move(buffers[slot].grads);
      buffers[slot] = InputBuffer();
      // Gradients already waiting for an input that the node adds into
      // (Node::adds_into_input_grad). Only a gradient the engine does not own is handed over: it
      // arrived alone (typically the residual path's, shared with another input), so without the
      // node it would cost an out-of-place add; an owned one is a sum of the engine's (or an eager
      // buffer), added in place.
      const auto& edges = node->next_edges();
      for (size_t i = 0; i < edges.size(); ++i) {
        const Edge& e = edges[i];
        if (!e.valid() || !node->adds_into_input_grad(i)) continue;
        const auto dst = static_cast<size_t>(e.node->engine_slot);
        if (!has_buffer[dst]) continue;
        InputBuffer& buf = buffers[dst];
        if (!buf.grads[e.input_nr].defined() || buf.owned[e.input_nr]) continue;
        node->waiting_grad(i) = std::move(buf.grads[e.input_nr]);
        buf.grads[e.input_nr] = Tensor();
      }
      OpNameScope op(node->name());
      node->set_releases_saved_after_apply(!options.retain_graph);
      try {
        out_grads = node->apply(in_grads);
      } catch (...) {
        node->set_releases_saved_after_apply(false);
        node->clear_waiting_grads();
        throw;
      }
      node->set_releases_saved_after_apply(false);
      // in_grads is destroyed here: the gradients this node consumed are freed.
    }
    if (!options.retain_graph) node->release_saved();

    const auto& edges = node->next_edges();
    TG_ASSERT(out_grads.empty() || out_grads.size() == edges.size(), node->name(), " returned ",
              out_grads.size(), " gradients for ", edges.size(), " inputs");
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      if (node->adds_into_input_grad(i)) {  // a waiting gradient the node left goes back
        Tensor& left = node->waiting_grad(i);
        if (left.defined()) accumulate(buffer_of(e.node.get()), e.input_nr, std::move(left));
        left = Tensor();
      }
      if (i < out_grads.size() && out_grads[i].defined()) {
        const auto& info = e.node->outputs().at(e.input_nr);
        TG_ASSERT(out_grads[i].shape() == info.shape, node->name(), " gradient ", i, " has shape ",
                  shape_str(out_grads[i].shape()), ", expected ", shape_str(info.shape));
        accumulate(buffer_of(e.node.get()), e.input_nr, std::move(out_grads[i]));
      } else {
        buffer_of(e.node.get());
      }
      if (--deps[e.node->engine_slot] == 0) ready.push(e.node);
    }
    out_grads.clear();
    if (options.on_node_done) options.on_node_done(*node);
  }
}

std::optional<double> implied_seed_value(const Tensor& grad) {
  const ImpliedSeed& s = t_implied_seed;
  if (!grad.defined() || grad.numel() != 1) return std::nullopt;
  const std::shared_ptr<Storage> seed = s.storage.lock();
  if (seed == nullptr || grad.storage() != seed || seed->version() != s.version)
    return std::nullopt;
  return 1.0;
}

}  // namespace tilegrad
