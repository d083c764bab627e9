// LayerNorm over the last dimension with a learned scale (ones) and shift (zeros).
#pragma once

#include "nn/module.h"

namespace tilegrad::nn {

class LayerNorm : public Module {
 public:
  explicit LayerNorm(int64_t C, DType dtype = DType::f32, double eps = 1e-5);
  Tensor forward(const Tensor& x) const;

 private:
  Tensor weight_, bias_;
  double eps_;
};

}  // namespace tilegrad::nn
