// The transformer's MLP as one op: y = gelu(x · w1 + b1) · w2 + b2.
//
// Two linear layers (ops/linear.h) with the GELU between them, fused so that the backward can do
// two things the separate layers cannot:
// - the hidden activation h = gelu(x · w1 + b1), 4C wide and the largest tensor of a block, is not
//   kept for the backward: the pre-activation is (the GELU's backward needs it anyway), and h is
//   recomputed from it by one elementwise pass when w2's gradient needs it. That saves
//   B·T·4C elements per block for one extra read and write of them;
// - the GELU's backward runs in the epilogue of the GEMM that makes h's gradient (GemmEpilogue::
//   gelu_grad), so it costs no pass of its own.
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

// x [..., K], w1 [K, M], b1 [M], w2 [M, N], b2 [N] (any 2-D layouts for the weights) -> [..., N].
// Saves x, w1, w2 (each only where a gradient needs it) and the pre-activation x · w1 + b1.
// A residual r [..., N] is added in the second GEMM (linear's residual): y + r in one pass.
Tensor mlp(const Tensor& x, const Tensor& w1, const Tensor& b1, const Tensor& w2, const Tensor& b2,
           const Tensor& residual = Tensor());

// The two layers' costs (linear_cost).
Cost mlp_cost(const Shape& x, int64_t M, int64_t N, DType dt, bool residual = false);

}  // namespace tilegrad
