#include "optim/adamw.h"

#include <cmath>

#include "core/error.h"
#include "optim/fused_update.h"

namespace tilegrad::optim {

AdamW::AdamW(const NamedTensors& params, const AdamWOptions& options)
    : AdamW(weight_decay_groups(params, options.weight_decay), options) {}

AdamW::AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options)
    : Optimizer("AdamW", std::move(groups), options.lr, options.loss_scaling), options_(options) {
  TG_CHECK(options.beta1 >= 0 && options.beta1 < 1 && options.beta2 >= 0 && options.beta2 < 1,
           "AdamW: betas (", options.beta1, ", ", options.beta2, ") must lie in [0, 1)");
  TG_CHECK(std::isfinite(options.eps) && options.eps >= 0, "AdamW: eps ", options.eps,
           " must be finite and >= 0");
  for (const Slot& s : slots()) {
    exp_avg_.push_back(new_state(s));
    exp_avg_sq_.push_back(new_state(s));
  }
}

AdamWStep AdamW::step_of(size_t i, double grad_scale) const {
  const Slot& s = slots()[i];
  AdamWStep st;
  st.lr = lr();
  st.beta1 = options_.beta1;
  st.beta2 = options_.beta2;
  st.eps = options_.eps;
  st.weight_decay = s.weight_decay;
  st.step = s.step;
  st.grad_scale = grad_scale;
  return st;
}

void AdamW::update(std::span<const size_t> idx, const std::vector<Tensor>& grads,
                   double grad_scale) {
  std::vector<AdamWOperands> xs;
  xs.reserve(idx.size());
  for (size_t i : idx) {
    const Slot& s = slots()[i];
    xs.push_back(
        {s.param, s.master, grads[i], exp_avg_[i], exp_avg_sq_[i], step_of(i, grad_scale)});
  }
  fused_adamw_multi("AdamW", xs);
}

void AdamW::append_state(size_t i, NamedTensors& out) const {
  out.push_back({"exp_avg/" + slots()[i].name, exp_avg_[i]});
  out.push_back({"exp_avg_sq/" + slots()[i].name, exp_avg_sq_[i]});
}

nlohmann::json AdamW::hyperparameters() const {
  return {{"beta1", options_.beta1}, {"beta2", options_.beta2}, {"eps", options_.eps}};
}

}  // namespace tilegrad::optim
