// FlashAttention on the CPU (FlashAttention paper, Algorithm 1, with FlashAttention-2's loop
// order): tiles of block_r query rows by block_c key rows, an online softmax, and no N x N buffer
// in either direction — the backward recomputes each tile of P from q, k, v and the logsumexp.
// Arguments and layouts: AttentionArgs in backend/backend.h; docs/ATTENTION.md describes the
// algorithm.
#pragma once

#include "backend/backend.h"

namespace tilegrad::kernels::cpu {

// Writes o and lse only.
void attention_flash_forward(const AttentionArgs& args, void* o, void* lse);
// o and lse from the forward; glse may be null. Writes dq, dk, dv.
void attention_flash_backward(const AttentionArgs& args, const void* o, const void* lse,
                              const void* dout, const void* glse, void* dq, void* dk, void* dv);

}  // namespace tilegrad::kernels::cpu
