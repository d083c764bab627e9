// CUDA layer norm over the last dimension C of `rows` contiguous rows (see
// Backend::layernorm_forward for the contract). The same functions as kernels/cpu/layernorm.h, plus
// the stream the work is queued on; pointers are device memory; mean and rstd are in the
// accumulation type (double for f64, float otherwise). Asynchronous: nothing waits for the GPU.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"
#include "kernels/layernorm_saved.h"

namespace tilegrad::kernels::cuda {

void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y, void* mean,
                       void* rstd, int64_t rows, int64_t C, double eps, cudaStream_t stream);
// Writes (not accumulates) gx, gw and gb; a null output is not computed. gw and gb are the same
// bits on every run (no float atomics). gx_add (optional, [rows, C], not overlapping gx) is added
// to gx as in the CPU kernel. gx_sum (optional, [C], needs gx) gets gx's column sums, the values
// written summed in float (double for f64), the same bits on every run of one device.
void layernorm_backward(DType dt, const void* gy, const LayerNormSaved& saved, const void* w,
                        void* gx, void* gw, void* gb, int64_t rows, int64_t C, cudaStream_t stream,
                        const void* gx_add = nullptr, void* gx_sum = nullptr);

}  // namespace tilegrad::kernels::cuda
