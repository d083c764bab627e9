// CUDA reductions (sum, max) over any set of dimensions: kernels/cpu/reduce.h on a stream, with the
// same semantics (accumulation in float64, NaN propagating through max) and the same errors. The
// views' pointers are device pointers. Includable from plain C++.
#pragma once

#include <cuda_runtime.h>

#include "backend/backend.h"

namespace tilegrad::kernels::cuda {

// out has x's rank with size 1 on reduced dimensions and is contiguous.
void reduce(ReduceOp op, const StridedView& x, const StridedView& out, cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
