// GPT-2's MLP: c_fc (C -> 4C), GELU (tanh form), c_proj (4C -> C), dropout; both linear layers
// with biases or (bias = false) without.
#pragma once

#include "core/rng.h"
#include "nn/linear.h"

namespace tilegrad::nn {

class MLP : public Module {
 public:
  MLP(int64_t C, double dropout, int L, Generator& init, DType dtype = DType::f32,
      bool bias = true);
  // residual (optional): returns residual + mlp(x), the add fused into the last GEMM when no
  // dropout stands between them (eval mode, or p = 0).
  Tensor forward(const Tensor& x, Generator& gen, const Tensor& residual = Tensor()) const;

 private:
  double dropout_;
  std::shared_ptr<Linear> c_fc_, c_proj_;
};

}  // namespace tilegrad::nn
