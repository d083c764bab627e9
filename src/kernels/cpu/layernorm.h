// CPU layer norm over the last dimension (see Backend::layernorm_forward for the contract).
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "kernels/layernorm_saved.h"

namespace tilegrad::kernels::cpu {

void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y, void* mean,
                       void* rstd, int64_t rows, int64_t C, double eps);
// gx_add (optional, [rows, C] like gx) is added to gx: gx = gx_add + the layer norm's input
// gradient, rounded to the dtype before the sum as a separate add would round it. gx_sum (optional,
// [C], needs gx) gets gx's column sums: the values written, summed in the accumulation type.
void layernorm_backward(DType dt, const void* gy, const LayerNormSaved& saved, const void* w,
                        void* gx, void* gw, void* gb, int64_t rows, int64_t C,
                        const void* gx_add = nullptr, void* gx_sum = nullptr);

}  // namespace tilegrad::kernels::cpu
