// Exact attention on CUDA for the problems the FlashAttention kernels (flash_api.h) do not take:
// float32 and float64 (and 16-bit inputs too), any head dim D <= 256, block-sparse layouts and a
// logsumexp gradient. Meant to be correct and simple, not fast: no tensor cores, no tiling, each
// score is recomputed by every kernel that needs it.
//
// Arguments and conventions are AttentionArgs' (backend/backend.h) and the attention op's
// (ops/attention.h): q [B, H, Nq, D], k and v [B, Hkv, Nk, D] with the given row, head and batch
// strides (D contiguous); bottom-right aligned causal band and windows; a block-sparse layout (a
// device array of u8); dropout element (b, h, i, j) on Philox draw offset + ((b H + h) Nq + i) Nk
// + j, kept iff its top 24 bits are >= ceil(p 2^24), kept values scaled by 1 / (1 - p); the
// logsumexp is that of the undropped scores; a row that sees no key gets O = 0, lse = -inf and
// passes no gradient. Outputs are contiguous: o, dq [B, H, Nq, D], dk, dv [B, Hkv, Nk, D], lse [B,
// H, Nq] in the accumulation type (float64 for f64, else float32); all arithmetic is in that type.
// The flash tile sizes in AttentionArgs are ignored.
//
// Forward: one thread block per (b, h, query row); its warps take the row's visible keys in turn.
// A first pass computes each warp's running max and sum of exp (online softmax), the warps'
// partials are combined in warp order into lse; a second pass recomputes every score, forms P =
// exp(s - lse) (dropped under dropout) and accumulates P V per warp; the warps' accumulators are
// summed in warp order.
//
// Backward, deterministic and without atomics (every sum has a fixed order):
//   1. Dvec_i = rowsum(dO_i ∘ O_i) - glse_i (glse may be null), one warp per row, into the
//      workspace;
//   2. dq: one block per (b, h, query row) over its visible keys:
//      dS_ij = P_ij (dP_ij - Dvec_i), dP_ij = dropout(dO_i · v_j), dQ_i = scale Σ_j dS_ij k_j;
//   3. dk, dv: one block per (b, kv head, key row) over the query heads of its group and the
//      queries that see the key: dV_j = Σ P̃_ij dO_i, dK_j = scale Σ dS_ij q_i,
// with P_ij = exp(scale q_i · k_j - lse_i) recomputed each time.
//
// All entries are asynchronous on `stream` and throw tilegrad::Error for problems they do not
// take (D > 256, H not a multiple of Hkv, a non-float dtype, more than 2^31 - 1 blocks).
#pragma once

#include <cuda_runtime.h>

#include <cstddef>

#include "backend/backend.h"

namespace tilegrad::kernels::cuda {

// Writes o and lse.
void attention_reference_forward(const AttentionArgs& args, void* o, void* lse,
                                 cudaStream_t stream);

// Bytes of device scratch attention_reference_backward needs: B · H · Nq elements of the
// accumulation type (Dvec), 8-byte aligned.
size_t attention_reference_backward_workspace_bytes(const AttentionArgs& args);

// o and lse from the forward; dout contiguous [B, H, Nq, D]; glse (accumulation type, [B, H, Nq])
// may be null. Writes (overwrites) dq, dk and dv. `workspace` holds
// attention_reference_backward_workspace_bytes(args) bytes, owned by the caller so that it is
// tracked like any other buffer.
void attention_reference_backward(const AttentionArgs& args, const void* o, const void* lse,
                                  const void* dout, const void* glse, void* dq, void* dk, void* dv,
                                  void* workspace, cudaStream_t stream);

}  // namespace tilegrad::kernels::cuda
