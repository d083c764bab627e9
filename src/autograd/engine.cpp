#include "autograd/engine.h"

#include <queue>
#include <unordered_map>

#include "autograd/grad_mode.h"
#include "autograd/meta.h"
#include "autograd/node.h"
#include "core/error.h"
#include "memory/category.h"

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
    buf.grads[slot] = buf.grads[slot].clone();
    buf.owned[slot] = true;
  }
  buf.grads[slot].add_(g);
}

struct ByNewest {
  bool operator()(const std::shared_ptr<Node>& a, const std::shared_ptr<Node>& b) const {
    return a->sequence_nr() < b->sequence_nr();
  }
};

}  // namespace

void run_backward(const Tensor& root, const Tensor& grad, BackwardOptions options) {
  TG_CHECK(root.defined(), "backward: called on an undefined tensor");
  TG_CHECK(root.requires_grad(), "backward: tensor of shape ", shape_str(root.shape()),
           " does not require grad and has no grad_fn (did you set requires_grad on an input, and "
           "is grad mode on?)");
  Tensor seed = grad;
  if (!seed.defined()) {
    TG_CHECK(root.numel() == 1,
             "backward: the gradient can only be implied for a single-element "
             "tensor; root has shape ",
             shape_str(root.shape()), ", pass a gradient");
    CategoryScope cat(Category::gradient);
    seed = empty(root.shape(), {root.dtype(), root.device()});
    seed.fill_(1.0);
  } else {
    TG_CHECK(seed.shape() == root.shape() && seed.dtype() == root.dtype() &&
                 seed.device() == root.device(),
             "backward: gradient ", seed.str(), " does not match root ", root.str());
  }

  const Edge root_edge = gradient_edge(root);
  TG_ASSERT(root_edge.valid());

  // Dependency counts by iterative DFS.
  std::unordered_map<Node*, int> deps;
  {
    std::vector<Node*> stack{root_edge.node.get()};
    std::unordered_map<Node*, bool> seen{{root_edge.node.get(), true}};
    while (!stack.empty()) {
      Node* n = stack.back();
      stack.pop_back();
      for (const Edge& e : n->next_edges()) {
        if (!e.valid()) continue;
        ++deps[e.node.get()];
        if (seen.emplace(e.node.get(), true).second) stack.push_back(e.node.get());
      }
    }
  }

  std::unordered_map<Node*, InputBuffer> buffers;
  auto buffer_of = [&](Node* n) -> InputBuffer& {
    auto [it, fresh] = buffers.try_emplace(n);
    if (fresh) {
      const size_t k = std::max<size_t>(n->num_outputs(), 1);
      it->second.grads.resize(k);
      it->second.owned.assign(k, false);
      auto& pre = n->preallocated_grads();  // eager mode: start from the zero buffers
      for (size_t i = 0; i < pre.size() && i < k; ++i) {
        it->second.grads[i] = std::move(pre[i]);
        it->second.owned[i] = true;
      }
      pre.clear();
    }
    return it->second;
  };

  NoGradGuard no_grad;
  CategoryScope category(Category::gradient);
  {
    InputBuffer& rb = buffer_of(root_edge.node.get());
    accumulate(rb, root_edge.input_nr, seed);
    seed = Tensor();
  }

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
      auto it = buffers.find(node.get());
      TG_ASSERT(it != buffers.end());
      std::vector<Tensor> in_grads = std::move(it->second.grads);
      buffers.erase(it);
      OpNameScope op(node->name());
      out_grads = node->apply(in_grads);
      // in_grads is destroyed here: the gradients this node consumed are freed.
    }
    if (!options.retain_graph) node->release_saved();

    const auto& edges = node->next_edges();
    TG_ASSERT(out_grads.empty() || out_grads.size() == edges.size(), node->name(), " returned ",
              out_grads.size(), " gradients for ", edges.size(), " inputs");
    for (size_t i = 0; i < edges.size(); ++i) {
      const Edge& e = edges[i];
      if (!e.valid()) continue;
      if (i < out_grads.size() && out_grads[i].defined()) {
        const auto& info = e.node->outputs().at(e.input_nr);
        TG_ASSERT(out_grads[i].shape() == info.shape, node->name(), " gradient ", i, " has shape ",
                  shape_str(out_grads[i].shape()), ", expected ", shape_str(info.shape));
        accumulate(buffer_of(e.node.get()), e.input_nr, std::move(out_grads[i]));
      } else {
        buffer_of(e.node.get());
      }
      if (--deps[e.node.get()] == 0) ready.push(e.node);
    }
    out_grads.clear();
    if (options.on_node_done) options.on_node_done(*node);
  }
}

}  // namespace tilegrad
