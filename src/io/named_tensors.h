// NamedTensors: an ordered list of (name, tensor) pairs — a model's parameters, an optimizer's
// state, the contents of a safetensors file.
//
// It lives in io/, the lowest layer that needs it, so that optim/ (parameters and state), io/
// (files) and nn/ (Module::named_parameters, see nn/parameters.h) all speak the same type without
// one of them reaching upwards. Order is kept: it is the order a model registers its parameters,
// which makes checkpoints and reports read in model order.
#pragma once

#include <string>
#include <string_view>
#include <vector>

#include "core/tensor.h"

namespace tilegrad {

struct NamedTensor {
  std::string name;  // e.g. GPT-2's "transformer.h.0.attn.c_attn.weight"
  Tensor tensor;
};

using NamedTensors = std::vector<NamedTensor>;

// The tensor called `name`, or null.
inline const Tensor* find_tensor(const NamedTensors& tensors, std::string_view name) {
  for (const NamedTensor& t : tensors) {
    if (t.name == name) return &t.tensor;
  }
  return nullptr;
}

}  // namespace tilegrad
