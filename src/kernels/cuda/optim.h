// CUDA optimizer kernels: fused AdamW and SGD updates (one tensor, or many tensors in a few
// launches) and the sum of squares for gradient norms.
//
// Same entries and update rules as kernels/cpu/optim.h, with the same step structs
// (kernels/optim_step.h), plus the stream they are queued on. Math is in acc_t<T>; 16-bit
// parameters carry a float32 master copy. The updates do the CPU's IEEE operations in the CPU's
// order with explicitly rounded device intrinsics (no FMA contraction), and the scalars (bias
// corrections and the like) are formed on the host exactly as the CPU forms them, so the results
// are meant to be bitwise equal to the CPU kernels; the tests allow a few ulps. Pointers are device
// memory; n <= 0 does nothing.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <span>

#include "core/dtype.h"
#include "kernels/optim_step.h"

namespace tilegrad::kernels::cuda {

// One AdamW step on one tensor (kernels/cpu/optim.h's adamw_update): param of dtype `dt` updated in
// place; master float32 (required for bf16/f16, null for f32/f64); grad of dtype `dt`; m, v in
// acc_t.
void adamw_update(DType dt, void* param, float* master, const void* grad, void* m, void* v,
                  int64_t n, const AdamWStep& s, cudaStream_t stream);

// One SGD step on one tensor (kernels/cpu/optim.h's sgd_update); momentum_buf may be null when
// s.momentum == 0.
void sgd_update(DType dt, void* param, float* master, const void* grad, void* momentum_buf,
                int64_t n, const SgdStep& s, cudaStream_t stream);

// The same update as adamw_update on every tensor of `tensors` (all of dtype `dt`), in as few
// launches as possible, as PyTorch's multi_tensor_apply does: the tensors are cut into chunks of
// kAdamWChunk elements, and each launch receives, as its kernel argument, a table of up to
// kAdamWMaxTensors tensors (pointers, sizes, scalars) and of up to kAdamWMaxChunks (tensor, chunk)
// pairs, one thread block per pair. The results are those of adamw_update, element for element.
// The host vector may be freed as soon as the call returns (kernel arguments are copied at launch).
inline constexpr int64_t kAdamWChunk = 65536;
inline constexpr int kAdamWMaxTensors = 64;
inline constexpr int kAdamWMaxChunks = 1024;
void adamw_update_multi(DType dt, std::span<const AdamWTensor> tensors, cudaStream_t stream);

// Σ x[i]² in float64 (inf or NaN if any element is), deterministic: the elements are cut into a
// fixed number of contiguous ranges (a function of n alone, never of the device or of timing),
// each summed by one thread block into a float64 partial in a fixed order (strided per thread,
// then a fixed tree over the block's threads), and one block adds the partials in a fixed tree
// order. The same n and data give the same bits on every run and every GPU; the order differs from
// the CPU's, so the value agrees with cpu::sum_squares to float64 rounding, not bitwise.
//
// Scratch: kSumSquaresWorkspaceBytes of device memory (8-byte aligned) for the partials, passed
// by the caller so that it is tracked like any other buffer. A null workspace takes it from CUDA's
// stream-ordered pool instead (cudaMallocAsync / cudaFreeAsync on `stream`, no host
// synchronisation), outside the engine's tracker.
inline constexpr int kSumSquaresPartials = 1024;
inline constexpr size_t kSumSquaresWorkspaceBytes = (kSumSquaresPartials + 1) * sizeof(double);

// Writes the sum to *d_out (device memory) without synchronising: for a global gradient norm
// summed on the device (clipping without host round trips).
void sum_squares_async(DType dt, const void* x, int64_t n, double* d_out, cudaStream_t stream,
                       void* workspace = nullptr);

// The same, returned to the host: synchronises with `stream`.
double sum_squares(DType dt, const void* x, int64_t n, cudaStream_t stream,
                   void* workspace = nullptr);

// Σ over the inputs of each one's sum of squares (as sum_squares computes it), the per-input sums
// added in input order in float64 — the bits of adding sum_squares' results on the host in that
// order — with one synchronisation for the whole list instead of one per input.
size_t sum_squares_list_workspace_bytes(std::span<const SumSquaresInput> xs);
double sum_squares_list(std::span<const SumSquaresInput> xs, cudaStream_t stream, void* workspace);

}  // namespace tilegrad::kernels::cuda
