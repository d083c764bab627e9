#include "optim/optimizer.h"

#include <cmath>
#include <set>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "memory/category.h"
#include "ops/factory.h"
#include "optim/fused_update.h"
#include "optim/grad_clip.h"

namespace tilegrad::optim {

namespace {

// "a, b, c (+4 more)": keeps mismatch reports readable for a 150-tensor model.
std::string name_list(const std::vector<std::string>& names) {
  constexpr size_t kShown = 5;
  std::string s;
  for (size_t i = 0; i < names.size() && i < kShown; ++i) s += (i ? ", " : "") + names[i];
  if (names.size() > kShown) s += detail::cat(" (+", names.size() - kShown, " more)");
  return s;
}

}  // namespace

Optimizer::Optimizer(std::string kind, std::vector<ParamGroup> groups, double lr,
                     LossScalerConfig scaler)
    : kind_(std::move(kind)), groups_(std::move(groups)), lr_(0.0), scaler_(scaler) {
  set_lr(lr);
  std::set<std::string> names;
  std::set<const Storage*> storages;
  for (const ParamGroup& g : groups_) {
    TG_CHECK(std::isfinite(g.weight_decay) && g.weight_decay >= 0, kind_, ": group '", g.name,
             "' has weight decay ", g.weight_decay, "; it must be finite and >= 0");
    for (const NamedTensor& p : g.params) {
      const Tensor& t = p.tensor;
      TG_CHECK(t.defined(), kind_, ": parameter '", p.name, "' is an undefined tensor");
      TG_CHECK(!p.name.empty(), kind_, ": a parameter of shape ", shape_str(t.shape()),
               " has an empty name");
      TG_CHECK(names.insert(p.name).second, kind_, ": parameter name '", p.name, "' appears twice");
      TG_CHECK(is_floating(t.dtype()), kind_, ": parameter '", p.name, "' has dtype ",
               dtype_name(t.dtype()), "; parameters must be float tensors");
      TG_CHECK(t.is_contiguous(), kind_, ": parameter '", p.name, "' ", t.str(),
               " is not contiguous; the fused update needs contiguous parameters");
      // Two entries over one storage (a tied weight listed twice, or views of one buffer) would be
      // updated twice per step.
      TG_CHECK(storages.insert(t.storage().get()).second, kind_, ": parameter '", p.name,
               "' shares its storage with another parameter; list tied weights once");
      Slot s;
      s.name = p.name;
      s.param = t;
      s.weight_decay = g.weight_decay;
      if (t.dtype() == DType::bf16 || t.dtype() == DType::f16) {
        // The master starts as the exact float32 value of the 16-bit parameter.
        NoGradGuard no_grad;
        s.master = empty(t.shape(), {DType::f32, t.device(), Category::optimizer_state});
        s.master.copy_(t);
      }
      slots_.push_back(std::move(s));
    }
  }
}

void Optimizer::set_lr(double lr) {
  TG_CHECK(std::isfinite(lr) && lr >= 0, kind_, ": learning rate ", lr, " must be finite and >= 0");
  lr_ = lr;
}

Tensor Optimizer::new_state(const Slot& slot) const {
  const DType dt = slot.param.dtype() == DType::f64 ? DType::f64 : DType::f32;
  return zeros(slot.param.shape(), {dt, slot.param.device(), Category::optimizer_state});
}

StepResult Optimizer::step(const StepOptions& options) {
  TG_CHECK(options.accumulation_steps >= 1, kind_, ": accumulation_steps ",
           options.accumulation_steps, " must be >= 1");
  TG_CHECK(!std::isnan(options.max_grad_norm), kind_, ": max_grad_norm is NaN");
  // Gradients as contiguous tensors (a hand-set gradient may be a strided view: pack a copy).
  std::vector<Tensor> grads(slots_.size());
  for (size_t i = 0; i < slots_.size(); ++i) grads[i] = contiguous_grad(slots_[i].param);
  const double sum_sq = grad_sum_squares_list(grads);
  // The gradients hold d(scale · Σ_micro loss)/dθ: one factor undoes both.
  const double unscale = 1.0 / (scaler_.scale() * static_cast<double>(options.accumulation_steps));
  StepResult r;
  r.grad_norm = std::sqrt(sum_sq) * unscale;
  if (!std::isfinite(r.grad_norm)) {
    scaler_.update(/*found_inf=*/true);
    ++skipped_;
    r.skipped = true;
    r.loss_scale = scaler_.scale();
    return r;
  }
  r.clip_coef = clip_coefficient(r.grad_norm, options.max_grad_norm);
  ++step_;
  std::vector<size_t> idx;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (!grads[i].defined()) continue;
    ++slots_[i].step;
    idx.push_back(i);
  }
  update(idx, grads, unscale * r.clip_coef);
  for (size_t i : idx) {
    // Written through raw pointers: bump the version so a graph that saved the old value notices.
    slots_[i].param.storage()->bump_version();
  }
  r.params_updated = static_cast<int64_t>(idx.size());
  scaler_.update(/*found_inf=*/false);
  r.loss_scale = scaler_.scale();
  return r;
}

void Optimizer::zero_grad() {
  for (const Slot& s : slots_) s.param.set_grad(Tensor());
}

void Optimizer::refresh_masters() {
  NoGradGuard no_grad;
  for (const Slot& s : slots_) {
    if (s.master.defined()) s.master.copy_(s.param);
  }
}

NamedTensors Optimizer::params() const {
  NamedTensors out;
  out.reserve(slots_.size());
  for (const Slot& s : slots_) out.push_back({s.name, s.param});
  return out;
}

int64_t Optimizer::state_bytes() const {
  int64_t n = 0;
  for (const NamedTensor& t : state_tensors()) n += t.tensor.nbytes();
  return n;
}

NamedTensors Optimizer::state_tensors() const {
  NamedTensors out;
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (slots_[i].master.defined()) out.push_back({"master/" + slots_[i].name, slots_[i].master});
    append_state(i, out);
  }
  return out;
}

nlohmann::json Optimizer::state_scalars() const {
  nlohmann::json steps = nlohmann::json::object();
  for (const Slot& s : slots_) steps[s.name] = s.step;
  return {{"optimizer", kind_},
          {"step", step_},
          {"skipped_steps", skipped_},
          {"lr", lr_},
          {"param_steps", steps},
          {"loss_scaler", scaler_.state()},
          {"hyperparameters", hyperparameters()}};
}

void Optimizer::load_state_scalars(const nlohmann::json& j) {
  TG_CHECK(j.is_object() && j.contains("optimizer") && j.contains("step") &&
               j.contains("param_steps") && j.contains("loss_scaler"),
           kind_, ": optimizer state lacks 'optimizer', 'step', 'param_steps' or 'loss_scaler'");
  const std::string saved_kind = j.at("optimizer").get<std::string>();
  TG_CHECK(saved_kind == kind_, kind_, ": the saved optimizer state is ", saved_kind, "'s");
  const nlohmann::json& steps = j.at("param_steps");
  TG_CHECK(steps.is_object(), kind_, ": 'param_steps' must be an object");
  std::vector<std::string> missing, unexpected;
  for (const Slot& s : slots_) {
    if (!steps.contains(s.name)) missing.push_back(s.name);
  }
  for (const auto& [name, value] : steps.items()) {
    bool known = false;
    for (const Slot& s : slots_) known = known || s.name == name;
    if (!known) unexpected.push_back(name);
  }
  TG_CHECK(missing.empty() && unexpected.empty(), kind_,
           ": the saved state is for other parameters; missing: [", name_list(missing),
           "], unexpected: [", name_list(unexpected), "]");
  // Validate everything before changing anything, so a bad state leaves this optimizer as it was.
  LossScaler scaler = scaler_;
  scaler.load_state(j.at("loss_scaler"));
  const int64_t step = j.at("step").get<int64_t>();
  const int64_t skipped = j.value("skipped_steps", int64_t{0});
  const double lr = j.value("lr", lr_);
  TG_CHECK(step >= 0 && skipped >= 0, kind_, ": negative step counts in the saved state");
  for (Slot& s : slots_) {
    const int64_t n = steps.at(s.name).get<int64_t>();
    TG_CHECK(n >= 0 && n <= step, kind_, ": parameter '", s.name, "' has step ", n, " outside [0, ",
             step, "]");
  }
  set_lr(lr);
  for (Slot& s : slots_) s.step = steps.at(s.name).get<int64_t>();
  step_ = step;
  skipped_ = skipped;
  scaler_ = scaler;
}

OptimizerState Optimizer::state_dict() const {
  OptimizerState st;
  NoGradGuard no_grad;
  CategoryScope cat(Category::optimizer_state);
  for (const NamedTensor& t : state_tensors()) st.tensors.push_back({t.name, t.tensor.clone()});
  st.scalars = state_scalars();
  return st;
}

void Optimizer::load_state_dict(const OptimizerState& state) {
  const NamedTensors mine = state_tensors();
  std::vector<std::string> problems;
  for (const NamedTensor& t : mine) {
    const Tensor* src = find_tensor(state.tensors, t.name);
    if (!src) {
      problems.push_back("missing " + t.name);
    } else if (src->shape() != t.tensor.shape() || src->dtype() != t.tensor.dtype()) {
      problems.push_back(detail::cat(t.name, " is ", src->str(), ", expected ", t.tensor.str()));
    }
  }
  for (const NamedTensor& t : state.tensors) {
    if (!find_tensor(mine, t.name)) problems.push_back("unexpected " + t.name);
  }
  TG_CHECK(problems.empty(), kind_, ": optimizer state does not match: ", name_list(problems));
  load_state_scalars(state.scalars);
  NoGradGuard no_grad;
  for (const NamedTensor& t : mine) t.tensor.copy_(*find_tensor(state.tensors, t.name));
}

}  // namespace tilegrad::optim
