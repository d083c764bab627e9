// NamedParameters: what Module::named_parameters() returns and what the optimizers and checkpoints
// take.
//
// The contract the modules keep, because the optimizer and the checkpoint files depend on it:
// - names are the Hugging Face GPT-2 names ("transformer.wte.weight", "transformer.h.0.ln_1.bias",
//   "transformer.h.0.attn.c_attn.weight", ...), so model.safetensors is readable by other tools;
// - the order is the module's registration order, and it is the same on every construction of the
//   same config (checkpoint files and optimizer state are matched by name, the order only makes
//   them read well);
// - a tensor shared by two modules (GPT-2's token embedding tied to the LM head) appears once,
//   under the name Hugging Face stores it under ("transformer.wte.weight"): an optimizer given the
//   same storage twice refuses, since it would update it twice per step;
// - every entry is a leaf that requires grad, tagged Category::parameter.
#pragma once

#include <cstdint>

#include "io/named_tensors.h"

namespace tilegrad {

using NamedParameters = NamedTensors;

// Total number of elements (the "124M" of GPT-2).
inline int64_t parameter_count(const NamedParameters& params) {
  int64_t n = 0;
  for (const NamedTensor& p : params) n += p.tensor.numel();
  return n;
}

}  // namespace tilegrad
