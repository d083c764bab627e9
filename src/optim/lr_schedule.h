// Learning-rate schedule: linear warmup, then cosine decay to a floor (nanoGPT's get_lr).
//
//   it <  warmup_iters:  max_lr * (it + 1) / (warmup_iters + 1)
//   it >  decay_iters:   min_lr
//   otherwise:           min_lr + 0.5 (1 + cos(π r)) (max_lr - min_lr),
//                        r = (it - warmup_iters) / (decay_iters - warmup_iters)
//
// The warmup starts at max_lr / (warmup_iters + 1) rather than 0 (a first step at lr 0 would be
// wasted). `it` is the 0-based index of the optimizer step about to be taken.
#pragma once

#include <cstdint>

namespace tilegrad::optim {

struct WarmupCosineConfig {
  double max_lr = 6e-4;
  double min_lr = 6e-5;
  int64_t warmup_iters = 2000;
  int64_t decay_iters = 600000;
  bool decay = true;  // false: constant max_lr (nanoGPT's decay_lr = False)
};

class WarmupCosineSchedule {
 public:
  explicit WarmupCosineSchedule(WarmupCosineConfig config);
  double lr(int64_t it) const;
  double operator()(int64_t it) const { return lr(it); }
  const WarmupCosineConfig& config() const { return config_; }

 private:
  WarmupCosineConfig config_;
};

}  // namespace tilegrad::optim
