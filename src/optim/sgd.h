// SGD with momentum, in PyTorch's formulation:
//
//   g ← g + λ θ                        (L2 weight decay, λ per parameter group)
//   b ← g at the first update, else μ b + (1 - dampening) g
//   g ← g + μ b (Nesterov) or b
//   θ ← θ - lr g
//
// State: the momentum buffer b (when μ ≠ 0) in float32 (float64 for float64 parameters) and the
// float32 master of each 16-bit parameter, tagged Category::optimizer_state.
#pragma once

#include "optim/optimizer.h"

namespace tilegrad::optim {

struct SgdOptions {
  double lr = 1e-2;
  double momentum = 0.0;
  double dampening = 0.0;
  bool nesterov = false;
  // The "decay" group's λ when built from a flat list (dim >= 2 decays), as for AdamW.
  double weight_decay = 0.0;
  LossScalerConfig loss_scaling = {};
};

class SGD final : public Optimizer {
 public:
  explicit SGD(const NamedTensors& params, const SgdOptions& options = {});
  SGD(std::vector<ParamGroup> groups, const SgdOptions& options);

  const SgdOptions& options() const { return options_; }

 private:
  void update(std::span<const size_t> idx, const std::vector<Tensor>& grads,
              double grad_scale) override;
  void append_state(size_t i, NamedTensors& out) const override;
  nlohmann::json hyperparameters() const override;

  SgdOptions options_;
  std::vector<Tensor> momentum_;  // per slot; empty when momentum == 0
};

}  // namespace tilegrad::optim
