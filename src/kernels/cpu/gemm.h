// CPU GEMM through OpenBLAS (float32/float64 directly; bf16/f16 through float32 workspace copies).
#pragma once

#include "backend/backend.h"

namespace tilegrad::kernels::cpu {

void gemm(const GemmArgs& args);

}  // namespace tilegrad::kernels::cpu
