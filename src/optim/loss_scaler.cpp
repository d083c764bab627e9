#include "optim/loss_scaler.h"

#include <cmath>

#include "core/error.h"

namespace tilegrad::optim {

LossScaler::LossScaler(LossScalerConfig config) : config_(config), scale_(config.init_scale) {
  TG_CHECK(std::isfinite(config.init_scale) && config.init_scale > 0, "LossScaler: init_scale ",
           config.init_scale, " must be a positive finite number");
  TG_CHECK(config.growth_factor > 1.0, "LossScaler: growth_factor ", config.growth_factor,
           " must be > 1");
  TG_CHECK(config.backoff_factor > 0.0 && config.backoff_factor < 1.0,
           "LossScaler: backoff_factor ", config.backoff_factor, " must be in (0, 1)");
  TG_CHECK(config.growth_interval >= 1, "LossScaler: growth_interval ", config.growth_interval,
           " must be >= 1");
}

void LossScaler::update(bool found_inf) {
  if (!config_.enabled) return;
  if (found_inf) {
    scale_ *= config_.backoff_factor;
    growth_tracker_ = 0;
    return;
  }
  if (++growth_tracker_ == config_.growth_interval) {
    // A scale that itself overflows float32 would turn every loss into inf; stop growing there.
    const double grown = scale_ * config_.growth_factor;
    if (grown <= 3.4028234663852886e38) scale_ = grown;
    growth_tracker_ = 0;
  }
}

nlohmann::json LossScaler::state() const {
  return {{"enabled", config_.enabled}, {"scale", scale_}, {"growth_tracker", growth_tracker_}};
}

void LossScaler::load_state(const nlohmann::json& state) {
  TG_CHECK(state.is_object() && state.contains("scale") && state.contains("growth_tracker"),
           "LossScaler: state must hold 'scale' and 'growth_tracker', got ", state.dump());
  const double scale = state.at("scale").get<double>();
  const int64_t tracker = state.at("growth_tracker").get<int64_t>();
  TG_CHECK(std::isfinite(scale) && scale > 0, "LossScaler: saved scale ", scale,
           " is not a positive finite number");
  TG_CHECK(tracker >= 0, "LossScaler: saved growth_tracker ", tracker, " is negative");
  scale_ = scale;
  growth_tracker_ = tracker;
}

}  // namespace tilegrad::optim
