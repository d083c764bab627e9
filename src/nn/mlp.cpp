#include "nn/mlp.h"

#include <cmath>

#include "ops/dropout.h"
#include "ops/elementwise.h"

namespace tilegrad::nn {

MLP::MLP(int64_t C, double dropout, int L, Generator& init, DType dtype) : dropout_(dropout) {
  c_fc_ = register_module("c_fc", std::make_shared<Linear>(C, 4 * C, true, init, 0.02, dtype));
  c_proj_ = register_module(
      "c_proj", std::make_shared<Linear>(4 * C, C, true, init, 0.02 / std::sqrt(2.0 * L), dtype));
}

Tensor MLP::forward(const Tensor& x, Generator& gen) const {
  return dropout(c_proj_->forward(c_fc_->forward(x, Activation::gelu)), dropout_, gen, training());
}

}  // namespace tilegrad::nn
