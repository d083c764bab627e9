// Fused softmax cross-entropy on logits [..., V] with integer targets [...]. Never forms the
// softmax in the forward: it keeps the per-row logsumexp and recomputes probabilities in the backward.
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

enum class Reduction : uint8_t { mean, sum, none };

// mean: averaged over targets != ignore_index. none: per-row losses with the targets' shape. The
// loss has the accumulation dtype (float64 for f64 logits, else float32).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::mean);

Cost cross_entropy_cost(const Shape& logits, DType dt);

}  // namespace tilegrad
