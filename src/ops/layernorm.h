// Layer normalisation over the last dimension: y = (x - mean) / sqrt(var + eps) * weight + bias,
// with the biased variance. weight and bias [C] may be undefined (no affine part).
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

Cost layer_norm_cost(const Shape& x, DType dt);

}  // namespace tilegrad
