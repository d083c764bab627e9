// CUDA reductions (sum, max) over any set of dimensions: kernels/cpu/reduce.h on a stream, with the
// same semantics (accumulation in float64, NaN propagating through max) and the same errors. The
// views' pointers are device pointers. Includable from plain C++.
#pragma once

#include <cuda_runtime.h>

#include "backend/backend.h"

namespace tilegrad::kernels::cuda {

// out has x's rank with size 1 on reduced dimensions and is contiguous. workspace (device memory,
// 8-byte aligned, reduce_workspace_bytes(x, out) of it) lets a reduction to few outputs spread
// over more blocks; null runs without it, on fewer SMs. Results are the same either way up to the
// association of float64 partial sums; for a given workspace choice they do not vary between runs.
size_t reduce_workspace_bytes(const StridedView& x, const StridedView& out);
void reduce(ReduceOp op, const StridedView& x, const StridedView& out, cudaStream_t stream,
            void* workspace = nullptr);

}  // namespace tilegrad::kernels::cuda
