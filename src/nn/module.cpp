#include "nn/module.h"

#include <algorithm>

#include "memory/category.h"

namespace tilegrad::nn {

Tensor Module::register_parameter(std::string name, Tensor t) {
  t.set_category(Category::parameter);
  t.set_requires_grad(true);
  params_.push_back({std::move(name), t});
  return t;
}

void Module::collect(const std::string& prefix, NamedParameters& out) const {
  for (const auto& [name, t] : params_) {
    const bool seen = std::any_of(out.begin(), out.end(), [&](const NamedTensor& p) {
      return p.tensor.storage() == t.storage() && p.tensor.offset() == t.offset();
    });
    if (!seen) out.push_back({prefix + name, t});
  }
  for (const auto& [name, child] : children_) child->collect(prefix + name + ".", out);
}

NamedParameters Module::named_parameters(const std::string& prefix) const {
  NamedParameters out;
  collect(prefix, out);
  return out;
}

std::vector<Tensor> Module::parameters() const {
  std::vector<Tensor> out;
  for (auto& [name, t] : named_parameters()) out.push_back(t);
  return out;
}

int64_t Module::num_parameters() const {
  int64_t n = 0;
  for (const auto& [name, t] : named_parameters()) n += t.numel();
  return n;
}

void Module::train(bool on) {
  training_ = on;
  for (auto& [name, child] : children_) child->train(on);
}

}  // namespace tilegrad::nn
