// The sm_80 FlashAttention kernels' launchers, one instantiation per element type and head dim.
// Internal to src/kernels/cuda: callers use flash_api.h, which checks the problem first.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include "kernels/cuda/flash_api.h"

namespace tilegrad::cuda::flash {

// Forward: o and lse.
template <typename T, int D>
cudaError_t run_flash_fwd_sm80(const FlashFwdParams& p, cudaStream_t stream);

// Ablations of the forward for the benchmark (bf16, D = 128), each one technique removed or
// changed: one K/V stage (no copy/compute overlap), unpadded shared rows (ldmatrix bank
// conflicts), 32-key blocks instead of 64; at D = 256 (bf16) single_stage and other_block_n name
// the two other tiles measured there (fwd_shape in flash_fwd_sm80.cu).
enum class FwdVariant : int { tuned = 0, single_stage = 1, unpadded = 2, other_block_n = 3 };
cudaError_t run_flash_fwd_sm80_variant(const FlashFwdParams& p, FwdVariant variant,
                                       cudaStream_t stream);

// Backward: dsum = rowsum(dO ∘ O), dq_accum zeroed then summed over key blocks, dk and dv written,
// dq converted from dq_accum. The workspace holds dq_accum (B, H, Nq, D) and dsum (B, H, Nq).
struct BwdOptions {
  // How many neighbouring dQ floats one reduction adds on sm_90 (4, 2 or 1; sm_80 adds one at a
  // time); 4 is the default, 2 and 1 are ablations for the benchmark (bf16, D = 128 only).
  int atomic_width = 4;
  // The main kernel is flash_bwd_sm90.cu's, or at D = 256 flash_bwd_sm90_wide.cu's (wgmma; sm_90
  // devices only), the other steps are shared; hopper_bulk_dq as run_flash_bwd_sm90_main's bulk_dq
  // (false is refused at D = 256, whose kernel has only per-thread reductions). The Hopper kernels
  // keep dq_accum in dq_accum_col's layout (flash_common.cuh), which the conversion then reads.
  bool hopper_main = false;
  bool hopper_bulk_dq = true;
  // Deterministic dq (FlashBwdParams::deterministic): n_semaphores ordering counters, zeroed here
  // before the main kernel; null otherwise.
  int* semaphores = nullptr;
  int64_t n_semaphores = 0;
};
template <typename T, int D>
cudaError_t run_flash_bwd_sm80(const FlashBwdParams& p, float* dq_accum, float* dsum,
                               cudaStream_t stream, const BwdOptions& options);

}  // namespace tilegrad::cuda::flash
