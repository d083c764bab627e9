// Dynamic loss scaling for float16 training (Micikevicius et al., "Mixed Precision Training", 2018;
// the policy of PyTorch's GradScaler).
//
// float16 gradients underflow: values below 2^-24 become zero. Multiplying the loss by a large
// scale S moves the whole backward up by S; the optimizer divides it out again (inside its fused
// update, for free). If S was too large some gradient overflows to inf/NaN: the step is skipped, S
// shrinks by `backoff_factor`, and the next batch is tried at the smaller scale. After
// `growth_interval` consecutive good steps S grows by `growth_factor`, so it tracks the largest
// scale that does not overflow. bfloat16 has float32's exponent range and needs no scaling.
#pragma once

#include <cstdint>

#include <nlohmann/json.hpp>

namespace tilegrad::optim {

struct LossScalerConfig {
  bool enabled = false;
  double init_scale = 65536.0;  // 2^16
  double growth_factor = 2.0;
  double backoff_factor = 0.5;
  int64_t growth_interval = 2000;
};

class LossScaler {
 public:
  explicit LossScaler(LossScalerConfig config = {});

  bool enabled() const { return config_.enabled; }
  const LossScalerConfig& config() const { return config_; }
  // What to multiply the loss by before backward (1 when disabled).
  double scale() const { return config_.enabled ? scale_ : 1.0; }
  // Good steps since the last change of scale.
  int64_t growth_tracker() const { return growth_tracker_; }
  // After a step: `found_inf` (non-finite gradients, step skipped) backs the scale off; otherwise
  // the step counts towards growth. Does nothing when disabled.
  void update(bool found_inf);

  // {"enabled", "scale", "growth_tracker"}: what a checkpoint must restore.
  nlohmann::json state() const;
  void load_state(const nlohmann::json& state);

 private:
  LossScalerConfig config_;
  double scale_;
  int64_t growth_tracker_ = 0;
};

}  // namespace tilegrad::optim
