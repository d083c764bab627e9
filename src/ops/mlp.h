// The transformer's MLP as one op: y = gelu(x · w1 + b1) · w2 + b2.
//
// Two linear layers (ops/linear.h) with the GELU between them, fused so that the backward can do
// two things the separate layers cannot:
// - the hidden activation h = gelu(x · w1 + b1), 4C wide and the largest tensor of a block, is not
//   kept for the backward: the pre-activation is (the GELU's backward needs it anyway), and h is
//   recomputed from it when w2's gradient needs it. That saves B·T·4C elements per block;
// - the GELU's backward, h's recomputation and b1's gradient (the column sums of pre's gradient)
//   run in one pass over pre and h's gradient (Backend::gelu_backward_fused), so that the
//   recomputation costs only h's write.
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

// x [..., K], w1 [K, M], b1 [M], w2 [M, N], b2 [N] (any 2-D layouts for the weights) -> [..., N].
// Either bias may be undefined (a layer without one). Saves x, w1, w2 (each only where a gradient
// needs it) and the pre-activation x · w1 + b1.
// A residual r [..., N] is added in the second GEMM (linear's residual): y + r in one pass.
Tensor mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
           const Tensor& residual = Tensor());

// The two layers' costs (linear_cost), with or without each layer's bias.
Cost mlp_cost(const Shape& x, int64_t M, int64_t N, DType dt, bool residual = false,
              bool bias1 = true, bool bias2 = true);

}  // namespace tilegrad
