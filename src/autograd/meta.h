// The autograd state of a tensor, allocated only for tensors that take part in autograd.
#pragma once

#include <functional>
#include <memory>
#include <vector>

#include "core/tensor.h"

namespace tilegrad {

struct AutogradMeta {
  bool requires_grad = false;            // set on leaves by the user
  std::shared_ptr<Node> grad_fn;         // the node that produced this tensor (null for leaves)
  uint32_t output_nr = 0;                // which output of grad_fn this tensor is
  Tensor grad;                           // leaves: accumulated gradient
  std::weak_ptr<Node> grad_accumulator;  // leaves: the AccumulateGrad node, while a graph uses it
  std::vector<std::function<void(const Tensor&)>> final_hooks;
  Tensor tangent;  // forward mode
  // A gradient's column sums made in passing (autograd/grad_col_sums.h), and the storage version
  // they were made at.
  Tensor col_sums;
  uint64_t col_sums_version = 0;
};

// The meta of `t`, created if absent.
AutogradMeta& autograd_meta(const Tensor& t);
// The meta of `t`, or null.
inline AutogradMeta* autograd_meta_or_null(const Tensor& t) {
  return t.impl().autograd.get();
}

}  // namespace tilegrad
