// Embedding lookup: weight [V, C], integer indices [...] -> [..., C]. Out-of-range indices are an
// error naming the offending position and value, raised before anything is written.
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

Tensor embedding(const Tensor& weight, const Tensor& indices);

Cost embedding_cost(const Shape& weight, const Shape& indices, DType dt, DType idx_dt);

}  // namespace tilegrad
