// Fused softmax cross-entropy on logits [..., V] with integer targets [...]. Never forms the
// softmax in the forward: it keeps the per-row logsumexp and recomputes probabilities in the
// backward.
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

enum class Reduction : uint8_t { mean, sum, none };

// Targets must lie in [0, V) or equal ignore_index (an error otherwise, naming the position and
// value). Ignored rows contribute a zero loss and a zero gradient.
// mean: averaged over the targets != ignore_index. When every target is ignored (or there are no
// rows) the mean is 0 with a zero gradient, not PyTorch's 0/0 = NaN: a batch made only of padding
// then leaves the parameters untouched instead of poisoning them with NaN.
// sum: summed over all rows. none: per-row losses with the targets' shape.
// The loss has the accumulation dtype (float64 for f64 logits, else float32).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, int64_t ignore_index = -100,
                     Reduction reduction = Reduction::mean);

Cost cross_entropy_cost(const Shape& logits, DType dt);

// How many of the (validated) targets equal ignore_index, counted on the targets' device: the
// rows a mean-reduced cross-entropy does not divide by.
int64_t count_ignored(const Tensor& targets, int64_t ignore_index);

// 1 / max(1, the number of targets != ignore_index): a scalar of dtype dt on the targets' device,
// computed there. The factor of a mean that the host never reads, so that a step recorded in a
// CUDA graph (Backend::capture_graph) takes each replay's count. Where every target is ignored the
// losses and their gradients are all 0, so the 1 gives the mean 0 of count_ignored's rule.
Tensor inverse_counted(const Tensor& targets, int64_t ignore_index, DType dt);

}  // namespace tilegrad
