// CUDA softmax / log-softmax along the middle axis of a contiguous [outer, n, inner] block (see
// Backend::softmax_forward for the contract). The same functions as kernels/cpu/softmax.h, plus the
// stream the work is queued on; pointers are device memory. Asynchronous: nothing waits for the
// GPU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cuda {

void softmax_forward(DType dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner,
                     bool log, cudaStream_t stream);
// gx from y (the forward output) and gy.
void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n,
                      int64_t inner, bool log, cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
