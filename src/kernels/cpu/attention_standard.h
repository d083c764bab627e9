// Standard attention on the CPU (FlashAttention paper, Algorithm 0): S = scale · Q Kᵀ and P =
// softmax(S) are materialised as N x N matrices, O = P V; the backward reads the saved P. The
// products are the engine's GEMM (OpenBLAS); the masked softmax and the backward's elementwise step
// are row loops here. Arguments and layouts: AttentionArgs in backend/backend.h.
#pragma once

#include "backend/backend.h"

namespace tilegrad::kernels::cpu {

// s: [Nq, Nk] scratch reused per head; p: [B, H, Nq, Nk] (written, undropped softmax); o, lse.
void attention_standard_forward(const AttentionArgs& args, void* s, void* p, void* o, void* lse);
// ds: [Nq, Nk] scratch; glse may be null. Writes dq, dk, dv.
void attention_standard_backward(const AttentionArgs& args, const void* p, const void* dout,
                                 const void* glse, void* ds, void* dq, void* dk, void* dv);

}  // namespace tilegrad::kernels::cpu
