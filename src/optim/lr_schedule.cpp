#include "optim/lr_schedule.h"

#include <cmath>
#include <numbers>

#include "core/error.h"

namespace tilegrad::optim {

WarmupCosineSchedule::WarmupCosineSchedule(WarmupCosineConfig config) : config_(config) {
  TG_CHECK(config.max_lr >= 0 && config.min_lr >= 0 && config.min_lr <= config.max_lr,
           "WarmupCosineSchedule: need 0 <= min_lr <= max_lr, got min_lr ", config.min_lr,
           ", max_lr ", config.max_lr);
  TG_CHECK(config.warmup_iters >= 0, "WarmupCosineSchedule: warmup_iters ", config.warmup_iters,
           " is negative");
  TG_CHECK(!config.decay || config.decay_iters > config.warmup_iters,
           "WarmupCosineSchedule: decay_iters ", config.decay_iters, " must exceed warmup_iters ",
           config.warmup_iters);
}

double WarmupCosineSchedule::lr(int64_t it) const {
  TG_CHECK(it >= 0, "WarmupCosineSchedule: step ", it, " is negative");
  const WarmupCosineConfig& c = config_;
  if (!c.decay) return c.max_lr;
  if (it < c.warmup_iters) {
    return c.max_lr * static_cast<double>(it + 1) / static_cast<double>(c.warmup_iters + 1);
  }
  if (it > c.decay_iters) return c.min_lr;
  const double ratio = static_cast<double>(it - c.warmup_iters) /
                       static_cast<double>(c.decay_iters - c.warmup_iters);
  const double coeff = 0.5 * (1.0 + std::cos(std::numbers::pi * ratio));
  return c.min_lr + coeff * (c.max_lr - c.min_lr);
}

}  // namespace tilegrad::optim
