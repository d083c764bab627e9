// The node at the end of every path to a leaf: it adds the incoming gradient into the leaf's .grad.
//
// When it runs, the engine has already summed every contribution of this backward into its input,
// so the leaf's gradient for this backward is final: that is where the final-gradient hooks run
// (an optimizer step can be fused into the backward through them).
#pragma once

#include "autograd/node.h"

namespace tilegrad {

class AccumulateGrad final : public Node {
 public:
  explicit AccumulateGrad(const Tensor& leaf);
  std::vector<Tensor> apply(std::vector<Tensor>& grads) override;
  // Leaves outlive a backward: this node is reused by every graph that reads the leaf.
  void release_saved() override {}
  const Tensor& leaf() const { return leaf_; }

 private:
  Tensor leaf_;
};

}  // namespace tilegrad
