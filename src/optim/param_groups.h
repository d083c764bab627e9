// Parameter groups: sets of parameters that share a weight decay.
//
// Weight decay pulls weights towards zero, which regularises matrices (matmul weights, embeddings)
// but only biases a bias or a LayerNorm gain away from its useful value. nanoGPT's split is by
// rank: tensors of dim >= 2 decay, dim < 2 (biases, norm weights and biases) do not.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "io/named_tensors.h"

namespace tilegrad::optim {

struct ParamGroup {
  std::string name;  // for reports and error messages ("decay", "no_decay", ...)
  NamedTensors params;
  double weight_decay = 0.0;
};

// True if a parameter gets weight decay.
using DecayPredicate = std::function<bool(const NamedTensor&)>;

// nanoGPT's rule: dim >= 2 decays.
bool decays_by_rank(const NamedTensor& p);

// Two groups, in this order: "decay" (weight_decay) and "no_decay" (0); each keeps the parameters'
// order. Either may be empty.
std::vector<ParamGroup> weight_decay_groups(const NamedTensors& params, double weight_decay,
                                            const DecayPredicate& decays = decays_by_rank);

}  // namespace tilegrad::optim
