#include "optim/sgd.h"

#include <cmath>

#include "core/error.h"
#include "optim/fused_update.h"

namespace tilegrad::optim {

SGD::SGD(const NamedTensors& params, const SgdOptions& options)
    : SGD(weight_decay_groups(params, options.weight_decay), options) {}

SGD::SGD(std::vector<ParamGroup> groups, const SgdOptions& options)
    : Optimizer("SGD", std::move(groups), options.lr, options.loss_scaling), options_(options) {
  TG_CHECK(std::isfinite(options.momentum) && options.momentum >= 0, "SGD: momentum ",
           options.momentum, " must be finite and >= 0");
  TG_CHECK(options.dampening >= 0 && options.dampening <= 1, "SGD: dampening ", options.dampening,
           " must lie in [0, 1]");
  TG_CHECK(!options.nesterov || (options.momentum > 0 && options.dampening == 0),
           "SGD: Nesterov momentum needs momentum > 0 and dampening 0 (got momentum ",
           options.momentum, ", dampening ", options.dampening, ")");
  if (options.momentum != 0.0) {
    for (const Slot& s : slots()) momentum_.push_back(new_state(s));
  }
}

void SGD::update(std::span<const size_t> idx, const std::vector<Tensor>& grads, double grad_scale) {
  for (size_t i : idx) {
    const Slot& s = slots()[i];
    SgdStep st;
    st.lr = lr();
    st.momentum = options_.momentum;
    st.dampening = options_.dampening;
    st.weight_decay = s.weight_decay;
    st.nesterov = options_.nesterov;
    st.first_step = s.step == 1;
    st.grad_scale = grad_scale;
    fused_sgd("SGD", s.param, s.master, grads[i], momentum_.empty() ? Tensor() : momentum_[i], st);
  }
}

void SGD::append_state(size_t i, NamedTensors& out) const {
  if (!momentum_.empty()) out.push_back({"momentum/" + slots()[i].name, momentum_[i]});
}

nlohmann::json SGD::hyperparameters() const {
  return {{"momentum", options_.momentum},
          {"dampening", options_.dampening},
          {"nesterov", options_.nesterov}};
}

}  // namespace tilegrad::optim
