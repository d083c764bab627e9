// The language-model head and its cross-entropy as one op, a chunk of rows at a time:
//   loss = mean over counted rows i of  logsumexp_j (x_i · w_j) − x_i · w_{y_i}
// with x [N, C] (the final hidden states), w [V, C] (the head's weight, in GPT the tied token
// embedding) and integer targets y [N], without ever holding the [N, V] logits.
//
// The loss is the last op of a training step, so its gradient is known up to the upstream scalar
// while the logits are still at hand: when x or w needs a gradient, the forward turns each chunk's
// logits into (softmax − onehot) / counted in place of a second [N, V] tensor and adds the chunk's
// share to dx and dw right away (the Liger-kernel scheme). The backward then only scales dx and dw
// by the upstream gradient (nothing at all when it is 1, the usual case), so the head costs the
// plain head's three GEMMs — no recomputed logits — and holds one or two [R, V] chunks instead of
// [N, V] logits and their gradient. The price is dx and dw held from the forward to the backward.
//
// The GEMMs run on a copy of w padded with zero rows to lm_head_padded_vocab(V), and chunk buffers
// have rows of that many elements: cuBLASLt runs V = 50,257 several times slower than 50,304, and
// the padding is never read by the cross-entropy (its logits are 0, its gradient columns 0). For
// GPT-2 (V = 50,257) at T = 65,536 the full float32 logits would take 13 GB; chunks of 4,096 rows
// take 0.8 GB (two buffers).
#pragma once

#include "core/tensor.h"

namespace tilegrad {

// Rows per chunk when the caller gives 0.
inline constexpr int64_t kDefaultLmHeadChunkRows = 4096;

// The row stride of the chunk buffers: V rounded up to a multiple of 64 elements.
inline int64_t lm_head_padded_vocab(int64_t V) {
  return (V + 63) / 64 * 64;
}

// Targets must lie in [0, V) or equal ignore_index; the mean is over the other rows (0, with a zero
// gradient, when there are none — as cross_entropy). x and w share a floating dtype and a device.
// The loss has the accumulation dtype (float64 for f64, else float32). Differentiable in x and w;
// forward-mode AD is refused with an error.
Tensor lm_head_cross_entropy(const Tensor& x, const Tensor& w, const Tensor& targets,
                             int64_t chunk_rows = 0, int64_t ignore_index = -100);

}  // namespace tilegrad
