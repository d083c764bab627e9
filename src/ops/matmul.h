// Matrix multiply: a [..., M, K] · b [..., K, N] -> [..., M, N], batch dimensions broadcast.
// Transposed views (e.g. w.t()) go to BLAS as transpose flags, without a copy.
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

Tensor matmul(const Tensor& a, const Tensor& b);

// 2·batch·M·N·K FLOPs; bytes of A, B and C once each.
Cost matmul_cost(const Shape& a, const Shape& b, DType dt);

}  // namespace tilegrad
