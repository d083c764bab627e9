#include "autograd/accumulate_grad.h"

#include "autograd/meta.h"
#include "memory/category.h"

namespace tilegrad {

AccumulateGrad::AccumulateGrad(const Tensor& leaf) : Node("AccumulateGrad"), leaf_(leaf) {
  outputs().push_back({leaf.shape(), leaf.dtype(), leaf.device()});
}

std::vector<Tensor> AccumulateGrad::apply(std::vector<Tensor>& grads) {
  Tensor g = std::move(grads[0]);
  if (!g.defined()) return {};
  AutogradMeta& m = autograd_meta(leaf_);
  if (!m.grad.defined()) {
    // Take the incoming buffer if nothing else refers to it and it is laid out like the leaf;
    // otherwise copy it (it may be a view, broadcast, or shared with another leaf's gradient).
    const bool exclusive = g.unshared() && g.is_contiguous() && g.offset() == 0 &&
                           g.storage()->nbytes() == static_cast<size_t>(g.nbytes());
    if (exclusive && g.shape() == leaf_.shape()) {
      m.grad = g.alias();
    } else {
      CategoryScope cat(Category::gradient);
      m.grad = g.reshape(leaf_.shape()).clone();
    }
    m.grad.set_category(Category::gradient);
  } else {
    m.grad.add_(g);
  }
  for (auto& hook : m.final_hooks) hook(leaf_);
  return {};
}

}  // namespace tilegrad
