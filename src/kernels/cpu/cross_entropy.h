// CPU fused softmax-cross-entropy on logits (see Backend::cross_entropy_forward for the contract).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cpu {

void cross_entropy_forward(DType dt, const void* logits, DType t_dt, const void* targets,
                           void* losses, void* lse, int64_t rows, int64_t V, int64_t ld,
                           int64_t ignore_index);
void cross_entropy_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                            const void* lse, const void* gloss, double scale, void* glogits,
                            int64_t rows, int64_t V, int64_t ld, int64_t ignore_index);

}  // namespace tilegrad::kernels::cpu
