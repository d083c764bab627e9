// AdamW (Loshchilov & Hutter, "Decoupled Weight Decay Regularization", ICLR 2019), in PyTorch's
// formulation:
//
//   θ ← θ (1 - lr λ)                                   decoupled decay (λ per parameter group)
//   m ← β1 m + (1 - β1) g ;  v ← β2 v + (1 - β2) g²
//   θ ← θ - lr / (1 - β1^t) · m / (√v / √(1 - β2^t) + ε)
//
// with t counted per parameter. State: m and v in float32 (float64 for float64 parameters), plus a
// float32 master copy of each 16-bit parameter (Note [Mixed precision] in optimizer.h); all of it
// is tagged Category::optimizer_state. One fused pass per tensor (kernels/cpu/optim.h).
#pragma once

#include "kernels/optim_step.h"
#include "optim/optimizer.h"

namespace tilegrad::optim {

struct AdamWOptions {
  double lr = 1e-3;
  double beta1 = 0.9;
  double beta2 = 0.999;
  double eps = 1e-8;
  // The "decay" group's λ when built from a flat parameter list (weight_decay_groups: dim >= 2
  // decays, biases and norm weights do not). Ignored when groups are given explicitly.
  double weight_decay = 0.01;
  LossScalerConfig loss_scaling = {};  // enable for float16 parameters
};

class AdamW final : public Optimizer {
 public:
  // Groups by rank (weight_decay_groups(params, options.weight_decay)).
  explicit AdamW(const NamedTensors& params, const AdamWOptions& options = {});
  AdamW(std::vector<ParamGroup> groups, const AdamWOptions& options);

  const AdamWOptions& options() const { return options_; }

 private:
  void update(std::span<const size_t> idx, const std::vector<Tensor>& grads,
              double grad_scale) override;
  // The step parameters of slot i's update (its weight decay and step count).
  AdamWStep step_of(size_t i, double grad_scale) const;
  void append_state(size_t i, NamedTensors& out) const override;
  nlohmann::json hyperparameters() const override;

  AdamWOptions options_;
  std::vector<Tensor> exp_avg_;     // m, per slot
  std::vector<Tensor> exp_avg_sq_;  // v, per slot
};

}  // namespace tilegrad::optim
