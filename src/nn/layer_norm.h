// LayerNorm over the last dimension with a learned scale (ones) and, with `bias`, shift (zeros).
// `saves` is what its backward keeps (ops/layernorm.h): the output, for a layer norm whose output
// the next layer saves anyway.
#pragma once

#include "nn/module.h"
#include "ops/layernorm.h"

namespace tilegrad::nn {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t C, DType dtype = DType::f32, double eps = 1e-5,
                     LayerNormSaves saves = LayerNormSaves::input, bool bias = true);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor weight_, bias_;
  double eps_;
  LayerNormSaves saves_;
};

}  // namespace tilegrad::nn
