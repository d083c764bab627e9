// CPU softmax / log-softmax along the middle axis of a contiguous [outer, n, inner] block.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cpu {

void softmax_forward(DType dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner,
                     bool log);
void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n,
                      int64_t inner, bool log);

}  // namespace tilegrad::kernels::cpu
