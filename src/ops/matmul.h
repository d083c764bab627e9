// Matrix multiply: a [..., M, K] · b [..., K, N] -> [..., M, N], batch dimensions broadcast.
// Transposed views (e.g. w.t()) go to BLAS as transpose flags, without a copy.
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

Tensor matmul(const Tensor& a, const Tensor& b);

// How GEMM reads t's last two dimensions, broadcast to the batch shape `batch` (empty for one
// matrix): as stored when row-major, with the transpose flag when column-major (a transposed
// view), and otherwise from a contiguous copy made without recording a graph.
struct GemmOperand {
  Tensor t;  // the tensor whose data GEMM reads (t itself or its copy)
  bool trans = false;
  int64_t ld = 0;
  int64_t batch_stride = 0;
};
GemmOperand gemm_operand(const Tensor& t, const Shape& batch);

// 2·batch·M·N·K FLOPs; bytes of A, B and C once each.
Cost matmul_cost(const Shape& a, const Shape& b, DType dt);

}  // namespace tilegrad
