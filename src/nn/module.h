// Module: a named tree of parameters and submodules, the shape every layer of a model takes.
//
// Parameters are registered with their name inside the module ("weight", "bias") and children with
// theirs ("attn", "h.3"), so named_parameters() yields the dotted names Hugging Face's GPT-2
// checkpoints use ("h.0.attn.c_attn.weight" under the GPT's "transformer." prefix). A parameter's
// storage is labelled Category::parameter for the tracker and requires grad. train()/eval() switch
// dropout on and off through the whole tree.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/tensor.h"
#include "nn/parameters.h"

namespace tilegrad::nn {

class Module {
 public:
  Module() = default;
  virtual ~Module() = default;
  Module(const Module&) = delete;
  Module& operator=(const Module&) = delete;

  // Every parameter of the tree, depth first in registration order, with dotted names; each
  // tensor appears once (a parameter shared by two modules keeps its first name).
  NamedParameters named_parameters(const std::string& prefix = "") const;
  std::vector<Tensor> parameters() const;
  int64_t num_parameters() const;  // elements, shared ones counted once

  void train(bool on = true);
  void eval() { train(false); }
  bool training() const { return training_; }

 protected:
  // Labels t's storage as a parameter, sets requires_grad, and returns it.
  Tensor register_parameter(std::string name, Tensor t);
  template <class M>
  std::shared_ptr<M> register_module(std::string name, std::shared_ptr<M> m) {
    children_.emplace_back(std::move(name), m);
    return m;
  }

 private:
  void collect(const std::string& prefix, NamedParameters& out) const;

  NamedParameters params_;
  std::vector<std::pair<std::string, std::shared_ptr<Module>>> children_;
  bool training_ = true;
};

}  // namespace tilegrad::nn
