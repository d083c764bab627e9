// Linear: y = act(x · W + b) with W stored [in, out], the layout of GPT-2's Conv1D weights in
// Hugging Face checkpoints, so those load without a transpose and the product needs none either.
// One op (ops/linear.h): the bias and the activation run in the GEMM's epilogue.
#pragma once

#include "core/rng.h"
#include "nn/module.h"
#include "ops/linear.h"

namespace tilegrad::nn {

class Linear : public Module {
 public:
  // W ~ N(0, init_std²), b = 0 (GPT-2's initialisation).
  Linear(int64_t in, int64_t out, bool bias, Generator& gen, double init_std = 0.02,
         DType dtype = DType::f32);
  // x [..., in] -> [..., out]
  // With a residual r: x · w + b + r in one GEMM (ops/linear.h).
  Tensor forward(const Tensor& x, Activation act = Activation::none,
                 const Tensor& residual = Tensor()) const;
  const Tensor& weight() const { return weight_; }
  const Tensor& bias() const { return bias_; }

 private:
  Tensor weight_, bias_;
};

}  // namespace tilegrad::nn
