// CPU: the MLP's backward below its GELU in one pass over row blocks (Backend::gelu_backward_fused
// for the contract).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cpu {

// Per row: grad becomes grad · GELU'(pre) and h (may be null, may be pre) GELU(pre), by the unary
// GELU kernels' functions, so the values are theirs bit for bit; grad_sum (may be null, [M]) gets
// the column sums of the gradient written, in float64 by row block and the blocks in order (the
// reduce kernel's precision; the same bits on every run).
void gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                         int64_t rows, int64_t M);

}  // namespace tilegrad::kernels::cpu
