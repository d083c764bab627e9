#include "nn/linear.h"

#include "ops/factory.h"

namespace tilegrad::nn {

Linear::Linear(int64_t in, int64_t out, bool bias, Generator& gen, double init_std, DType dtype) {
  weight_ = register_parameter("weight", randn({in, out}, gen, 0.0, init_std, {dtype}));
  if (bias) bias_ = register_parameter("bias", zeros({out}, {dtype}));
}

Tensor Linear::forward(const Tensor& x, Activation act, const Tensor& residual) const {
  return linear(x, weight_, bias_, act, residual);
}

}  // namespace tilegrad::nn
