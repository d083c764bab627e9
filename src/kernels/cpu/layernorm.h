// CPU layer norm over the last dimension (see Backend::layernorm_forward for the contract).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cpu {

void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y, void* mean,
                       void* rstd, int64_t rows, int64_t C, double eps);
void layernorm_backward(DType dt, const void* gy, const void* x, const void* w, const void* mean,
                        const void* rstd, void* gx, void* gw, void* gb, int64_t rows, int64_t C);

}  // namespace tilegrad::kernels::cpu
