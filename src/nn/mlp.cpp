#include "nn/mlp.h"

#include <cmath>

#include "nn/residual.h"
#include "ops/mlp.h"

namespace tilegrad::nn {

MLP::MLP(int64_t C, double dropout, int L, Generator& init, DType dtype, bool bias)
    : dropout_(dropout) {
  c_fc_ = register_module("c_fc", std::make_shared<Linear>(C, 4 * C, bias, init, 0.02, dtype));
  c_proj_ = register_module(
      "c_proj", std::make_shared<Linear>(4 * C, C, bias, init, 0.02 / std::sqrt(2.0 * L), dtype));
}

// One op (ops/mlp.h) rather than c_proj(c_fc(x, gelu)): the same values, but the 4C-wide hidden
// activation is not kept for the backward, and the GELU's backward runs in a GEMM's epilogue.
Tensor MLP::forward(const Tensor& x, Generator& gen, const Tensor& residual) const {
  const bool in_gemm = residual_in_gemm(residual, dropout_, training());
  const Tensor y = mlp(x, c_fc_->weight(), c_fc_->bias(), c_proj_->weight(), c_proj_->bias(),
                       in_gemm ? residual : Tensor());
  return in_gemm ? y : dropout_then_residual(y, residual, dropout_, gen, training());
}

}  // namespace tilegrad::nn
