// The Hopper (sm_90a) FlashAttention launchers. Internal to src/kernels/cuda: callers use
// flash_api.h, which checks the problem and chooses between these and the sm_80 kernels.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/flash_api.h"

namespace tilegrad::cuda::flash {

// True when the current device runs the sm_90a kernels (compute capability 9.0 exactly: the "a"
// instructions, wgmma and setmaxnreg, exist on no later architecture).
bool flash_sm90_device();

// Forward variants, each adding one technique to the one before; the benchmark times them all.
//   plain:     TMA producer warp, two consumer warpgroups doing wgmma then softmax in turn
//   overlap:   + each consumer issues the next block's S = Q Kᵀ before the softmax of the current
//              one and the current O += P V after it (intra-warpgroup overlap)
//   pingpong:  + named barriers order the two consumers' products, so that one's softmax runs
//              while the other's products occupy the tensor cores (the default)
enum class Sm90Variant : int { plain = 0, overlap = 1, pingpong = 2 };

// Forward: o and lse. Returns cudaErrorNotSupported (launching nothing) when the operands cannot
// be described to the copy engine, so that the caller can fall back to the sm_80 kernel.
template <typename T, int D>
cudaError_t run_flash_fwd_sm90(const FlashFwdParams& p, Sm90Variant variant, cudaStream_t stream);

// The backward's main kernel on sm_90a (wgmma): dk, dv and the float32 dQ accumulator, given the
// zeroed accumulator and dsum = rowsum(dO ∘ O); D = 64 and 128, bf16 and f16. run_flash_bwd_sm80
// with hopper_main runs it between the shared preprocessing and dQ conversion. bulk_dq = false: dQ
// is added by every thread with red.v4 instead of one bulk reduction per block (an ablation for the
// benchmark; bf16, D = 128 only). semaphores: the deterministic mode's zeroed ordering counters
// (bulk_dq only), or null. Returns cudaErrorNotSupported (launching nothing) when the operands
// cannot be described to the copy engine.
template <typename T, int D>
cudaError_t run_flash_bwd_sm90_main(const FlashBwdParams& p, float* dq_accum, const float* dsum,
                                    int* semaphores, cudaStream_t stream, bool bulk_dq = true);

// The same at D = 256 (flash_bwd_sm90_wide.cu: the warpgroups split the head dimension, dQ is
// added by red.v4 from registers), bf16 and f16. No dropout (not defined at D = 256); with
// semaphores (the deterministic mode) it launches nothing and says cudaErrorNotSupported, as it
// does when the copy engine cannot describe the operands.
template <typename T>
cudaError_t run_flash_bwd_sm90_wide(const FlashBwdParams& p, float* dq_accum, const float* dsum,
                                    int* semaphores, cudaStream_t stream);

}  // namespace tilegrad::cuda::flash
