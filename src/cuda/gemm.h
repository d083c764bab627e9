// GEMMs on the GPU through cuBLASLt: the Backend's row-major GemmArgs (backend/backend.h) mapped
// onto cuBLASLt's column-major matmul, with the algorithm chosen once per problem and cached.
//
// Precision: float32 operands run in float32 (no TF32, so results match the CPU's to float32
// rounding); bfloat16 and float16 operands accumulate in float32; float64 runs in float64.
#pragma once

#include <cuda_runtime.h>

#include "backend/backend.h"

namespace tilegrad::cuda {

// C = epilogue(alpha · op(A) · op(B) + beta · C) on `stream`, batched as GemmArgs says (a batch
// stride of 0 broadcasts that operand). The workspace cuBLASLt may use is taken from the caching
// allocator for the call and tracked as `workspace`. Returns false when the epilogue was not run
// (cuBLASLt has none for this problem: float64, batches, an unaligned GELU output), in which case
// C holds alpha · op(A) · op(B) + beta · C and the caller applies it.
[[nodiscard]] bool gemm(const GemmArgs& args, cudaStream_t stream);

}  // namespace tilegrad::cuda
