#include "optim/param_groups.h"

namespace tilegrad::optim {

bool decays_by_rank(const NamedTensor& p) {
  return p.tensor.dim() >= 2;
}

std::vector<ParamGroup> weight_decay_groups(const NamedTensors& params, double weight_decay,
                                            const DecayPredicate& decays) {
  ParamGroup decay{"decay", {}, weight_decay};
  ParamGroup no_decay{"no_decay", {}, 0.0};
  for (const NamedTensor& p : params) (decays(p) ? decay : no_decay).params.push_back(p);
  return {std::move(decay), std::move(no_decay)};
}

}  // namespace tilegrad::optim
