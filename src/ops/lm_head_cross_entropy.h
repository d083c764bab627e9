// The language-model head and its cross-entropy as one op, a chunk of rows at a time:
//   loss = mean over counted rows i of  logsumexp_j (x_i · w_j) − x_i · w_{y_i}
// with x [N, C] (the final hidden states), w [V, C] (the head's weight, in GPT the tied token
// embedding) and integer targets y [N], without ever holding the [N, V] logits. The forward keeps
// one [R, V] chunk of logits at a time and saves only the per-row logsumexp; the backward
// recomputes each chunk's logits, turns them into (softmax − onehot) · scale in place of a second
// [N, V] tensor, and adds the chunk's share to dx and dw. For GPT-2 (V = 50,257) at T = 65,536
// the full float32 logits would take 13 GB; chunks of 4,096 rows take 0.8 GB (two buffers in the
// backward). The cost is one extra head GEMM (the recomputed logits), a third more head FLOPs.
#pragma once

#include "core/tensor.h"

namespace tilegrad {

// Rows per chunk when the caller gives 0.
inline constexpr int64_t kDefaultLmHeadChunkRows = 4096;

// Targets must lie in [0, V) or equal ignore_index; the mean is over the other rows (0, with a zero
// gradient, when there are none — as cross_entropy). x and w share a floating dtype and a device.
// The loss has the accumulation dtype (float64 for f64, else float32). Differentiable in x and w;
// forward-mode AD is refused with an error.
Tensor lm_head_cross_entropy(const Tensor& x, const Tensor& w, const Tensor& targets,
                             int64_t chunk_rows = 0, int64_t ignore_index = -100);

}  // namespace tilegrad
