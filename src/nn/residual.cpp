#include "nn/residual.h"

#include "ops/dropout.h"
#include "ops/elementwise.h"

namespace tilegrad::nn {

bool residual_in_gemm(const Tensor& residual, double p, bool training) {
  return residual.defined() && (p == 0.0 || !training);
}

Tensor dropout_then_residual(const Tensor& y, const Tensor& residual, double p, Generator& gen,
                             bool training) {
  const Tensor d = dropout(y, p, gen, training);
  return residual.defined() ? residual + d : d;
}

}  // namespace tilegrad::nn
