// CUDA: the MLP's backward below its GELU in one pass (Backend::gelu_backward_fused for the
// contract). Pointers are device memory; asynchronous on `stream`.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cuda {

// Whether the one-pass kernel serves this problem: a 16-bit type, rows and M not 0, M a multiple
// of 8 (a 16-byte vector per lane) and 16-byte aligned pointers. Otherwise the caller runs the
// separate entries.
bool gelu_backward_fused_supported(DType dt, const void* pre, const void* grad, const void* h,
                                   int64_t rows, int64_t M);

// grad [rows, M] becomes grad · GELU'(pre) in place; h (may be null, may be pre) gets GELU(pre)
// with the bits of the unary GELU kernel (a NaN aside: both come out as the conversion
// instruction's); grad_sum (may be null, [M]) gets the column sums of the gradient written, summed
// in float over row blocks and the blocks' sums in order (the same bits on every run of one
// device).
void gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                         int64_t rows, int64_t M, cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
