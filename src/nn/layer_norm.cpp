#include "nn/layer_norm.h"

#include "ops/factory.h"

namespace tilegrad::nn {

LayerNorm::LayerNorm(int64_t C, DType dtype, double eps, LayerNormSaves saves, bool bias)
    : eps_(eps), saves_(saves) {
  weight_ = register_parameter("weight", ones({C}, {dtype}));
  if (bias) bias_ = register_parameter("bias", zeros({C}, {dtype}));
}

Tensor LayerNorm::forward(const Tensor& x) const {
  return layer_norm(x, weight_, bias_, eps_, saves_);
}

}  // namespace tilegrad::nn
