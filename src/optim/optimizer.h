// Optimizer: what AdamW and SGD share — parameter slots, float32 master weights for 16-bit
// parameters, the step driver (global gradient norm, non-finite check, loss-scale removal,
// accumulation averaging and clipping folded into one factor for the fused update), zero_grad, and
// the state a checkpoint saves.
//
// A train loop calls it like this (nanoGPT's loop):
//
//   optim::AdamW opt(model.named_parameters(), {.lr = 6e-4, .beta2 = 0.95, .weight_decay = 0.1});
//   optim::WarmupCosineSchedule sched({.max_lr = 6e-4, .min_lr = 6e-5, ...});
//   for (int64_t it = 0; ...; ++it) {
//     opt.set_lr(sched(it));
//     for (int64_t micro = 0; micro < K; ++micro)
//       (model.loss(batch) * opt.loss_scale()).backward();  // .grad sums over micro-batches
//     optim::StepResult r = opt.step({.max_grad_norm = 1.0, .accumulation_steps = K});
//     opt.zero_grad();  // frees the gradient buffers
//   }
//
// Note [Mixed precision]: a bfloat16/float16 parameter is the model's copy, the one the forward
// reads. The optimizer keeps a float32 master copy and float32 moments; each update is computed on
// the master in float32 and the 16-bit copy is rewritten from it (round to nearest even). The
// master exists only because of the optimizer, so its bytes are tagged Category::optimizer_state
// (the accounting of ZeRO, Rajbhandari et al. 2020: 12 bytes of optimizer state per parameter for
// mixed-precision Adam); the parameter category holds exactly the bytes the model computes with.
//
// Note [Skipped steps]: a step whose gradients hold inf or NaN never touches parameters or state.
// With loss scaling on this is the expected float16 overflow: the scale backs off. Without it the
// step is still skipped (rather than writing NaN into the weights) and StepResult says so.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "io/named_tensors.h"
#include "optim/loss_scaler.h"
#include "optim/param_groups.h"

namespace tilegrad::optim {

struct StepOptions {
  // Clip the global norm of the (unscaled, averaged) gradient to this; <= 0: no clipping.
  double max_grad_norm = 0.0;
  // The .grad buffers hold the sum of this many micro-batch gradients (backward ran this many
  // times since zero_grad, each on a micro-batch's mean loss); the update uses their mean.
  int64_t accumulation_steps = 1;
};

struct StepResult {
  double grad_norm = 0.0;  // global norm of the gradient (unscaled, averaged), before clipping
  double clip_coef = 1.0;  // factor the gradient was scaled by (1: not clipped)
  bool skipped = false;    // non-finite gradients: nothing was updated (Note [Skipped steps])
  int64_t params_updated = 0;
  double loss_scale = 1.0;  // the scale for the next backward
};

// A deep copy of an optimizer's state: tensors ("exp_avg/<param>", "master/<param>", ...) and
// scalars (step counts, learning rate, loss scaler).
struct OptimizerState {
  NamedTensors tensors;
  nlohmann::json scalars;
};

class Optimizer {
 public:
  virtual ~Optimizer() = default;
  Optimizer(const Optimizer&) = delete;
  Optimizer& operator=(const Optimizer&) = delete;

  // One update from the current .grad of every parameter; parameters without a gradient are left
  // alone (their state too).
  StepResult step(const StepOptions& options = {});
  // Drops every parameter's .grad (set_to_none): the buffers go back to the allocator, and the next
  // backward allocates them afresh at its first accumulation.
  void zero_grad();
  // Re-copies every 16-bit parameter into its float32 master. Call it after overwriting parameters
  // behind the optimizer's back (loading weights without optimizer state): otherwise the next
  // update starts from the stale master and the loaded values are lost.
  void refresh_masters();

  const std::string& kind() const { return kind_; }  // "AdamW", "SGD"
  double lr() const { return lr_; }
  void set_lr(double lr);
  int64_t step_count() const { return step_; }  // updates applied; skipped steps do not count
  int64_t skipped_steps() const { return skipped_; }
  double loss_scale() const { return scaler_.scale(); }
  const LossScaler& loss_scaler() const { return scaler_; }
  NamedTensors params() const;
  const std::vector<ParamGroup>& groups() const { return groups_; }
  // Payload bytes of all state tensors (master weights included).
  int64_t state_bytes() const;

  // The live state buffers under their checkpoint names, in parameter order. Saving reads them;
  // loading fills them in place (io::load_checkpoint), so a restore needs no second copy.
  NamedTensors state_tensors() const;
  // {"optimizer", "step", "skipped_steps", "lr", "param_steps": {name: n}, "loss_scaler",
  //  "hyperparameters"}.
  nlohmann::json state_scalars() const;
  // Restores what state_scalars wrote. Throws if it comes from another optimizer kind or another
  // parameter set. Hyperparameters are taken from this optimizer's options, not the saved ones.
  void load_state_scalars(const nlohmann::json& scalars);
  OptimizerState state_dict() const;
  // Copies `state` in; names, shapes and dtypes must match exactly.
  void load_state_dict(const OptimizerState& state);

 protected:
  struct Slot {
    std::string name;
    Tensor param;
    Tensor master;  // float32 copy of a 16-bit parameter; undefined otherwise
    double weight_decay = 0.0;
    int64_t step = 0;  // updates this parameter has had
  };

  Optimizer(std::string kind, std::vector<ParamGroup> groups, double lr, LossScalerConfig scaler);

  // A zeroed state tensor shaped like the slot's parameter, in float32 (float64 for float64
  // parameters), tagged optimizer_state.
  Tensor new_state(const Slot& slot) const;
  std::vector<Slot>& slots() { return slots_; }
  const std::vector<Slot>& slots() const { return slots_; }

  // Applies one update to each slot i in `idx` (its step already incremented) with gradient
  // grads[i]; `grad_scale` multiplies the gradients (loss scale, accumulation and clipping folded
  // together). All slots at once, so that an optimizer with a multi-tensor kernel needs one launch.
  virtual void update(std::span<const size_t> idx, const std::vector<Tensor>& grads,
                      double grad_scale) = 0;
  // Appends slot i's own state buffers (not the master, which the base adds).
  virtual void append_state(size_t i, NamedTensors& out) const = 0;
  virtual nlohmann::json hyperparameters() const = 0;

 private:
  std::string kind_;
  std::vector<ParamGroup> groups_;
  std::vector<Slot> slots_;
  double lr_;
  int64_t step_ = 0;
  int64_t skipped_ = 0;
  LossScaler scaler_;
};

}  // namespace tilegrad::optim
