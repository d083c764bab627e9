// A linear layer as one op: y = act(x · w + b), with the bias and the activation applied in the
// GEMM's epilogue (GemmEpilogue), so that neither costs a pass over the output of its own.
#pragma once

#include <cstdint>
#include <utility>

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

enum class Activation : uint8_t { none, gelu };

// x [..., K], w [K, N] (any 2-D layout; a transposed view goes to GEMM as a flag), b [N] or
// undefined -> [..., N]. gelu is the tanh form of ops/elementwise.h's gelu. The backward saves x
// and w (each only if the other's gradient is wanted) and, for gelu, the pre-activation x · w + b.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Activation act = Activation::none);

// Building blocks of ops that fuse linear layers (ops/mlp.h), without autograd:
// - linear_product: act(x · w + b) for contiguous x and b, storing the pre-activation to *pre for
//   gelu (pre may be null without an activation);
// - linear_param_grads: w's and b's gradients from the layer's input x and the gradient gp of its
//   pre-activation (undefined where not wanted), both from one GEMM when both are wanted;
// - linear_tangent: the forward-mode tangent of act(x · w + b) from the tangents of x, w and b
//   (undefined ones count as zero), given the pre-activation for gelu. Call it in a RuleScope.
Tensor linear_product(const Tensor& x, const Tensor& w, const Tensor& b, Activation act,
                      Tensor* pre);
std::pair<Tensor, Tensor> linear_param_grads(const Tensor& x, const Tensor& gp, bool need_w,
                                             bool need_b);
Tensor linear_tangent(const Tensor& x, const Tensor& tx, const Tensor& w, const Tensor& tw,
                      const Tensor& tb, const Shape& out_shape, Activation act, const Tensor& pre);

// The GEMM's cost plus the epilogue's: one FLOP per element for the bias, gelu's 8 for the
// activation; bytes of x, w, b and the output (and the pre-activation for gelu) once each.
Cost linear_cost(const Shape& x, int64_t N, DType dt, bool bias, Activation act);

}  // namespace tilegrad
