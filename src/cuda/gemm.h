// GEMMs on the GPU through cuBLASLt: the Backend's row-major GemmArgs (backend/backend.h) mapped
// onto cuBLASLt's column-major matmul, with the algorithm chosen once per problem and cached.
//
// Precision: float32 operands run in float32 (no TF32, so results match the CPU's to float32
// rounding); bfloat16 and float16 operands accumulate in float32; float64 runs in float64.
#pragma once

#include <cuda_runtime.h>

#include <string>

#include "backend/backend.h"

namespace tilegrad::cuda {

// C = epilogue(alpha · op(A) · op(B) + beta · C) on `stream`, batched as GemmArgs says (a batch
// stride of 0 broadcasts that operand). cuBLASLt's workspace is one block per device, taken from
// the caching allocator at the device's first GEMM, kept, and tracked as `workspace`. Returns false
// when the epilogue was not run (cuBLASLt has none for this problem: float64, batches, an unaligned
// GELU output), in which case C holds alpha · op(A) · op(B) + beta · C and the caller applies it.
[[nodiscard]] bool gemm(const GemmArgs& args, cudaStream_t stream);

// Tuning (Note [GEMM tuning] in gemm.cpp): when on, the first call of each problem times the
// heuristic's candidate algorithms on its own operands and keeps the fastest. Off by default
// (results are then the same bits in every process); the environment variable TILEGRAD_GEMM_TUNE=1
// turns it on at start-up, and TILEGRAD_GEMM_TUNE_LOG prints each problem's timings to stderr.
// Problems already tuned keep their algorithm when it is turned off.
void set_gemm_tuning(bool on);
bool gemm_tuning();
// The choices made so far (by timing, or loaded), as JSON text: for each problem its key, a
// readable description, how many candidates the heuristic offered and which was taken. Loaded into
// another process (before its first GEMM of those problems), they are taken without timing, so that
// a resumed training run uses the algorithms of the run it continues and gives its bits. A choice
// is ignored where the heuristic offers another number of candidates (another library or device).
// Loading throws Error on text that is not such a state, and then changes nothing.
std::string gemm_tuning_state();
void load_gemm_tuning_state(const std::string& text);

}  // namespace tilegrad::cuda
