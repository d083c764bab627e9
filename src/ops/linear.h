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
// A residual r ([..., N], without an activation) makes it x · w + b + r in the same GEMM (its
// C operand): a residual connection's add costs no pass of its own, and r's gradient is the
// output's, passed on without a copy. The sum is rounded once, not after x · w + b and again.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Activation act = Activation::none,
              const Tensor& residual = Tensor());

// Building blocks of ops that fuse linear layers (ops/mlp.h), without autograd:
// - linear_product: act(x · w + b) (+ residual) for contiguous x, b and residual, storing the
//   pre-activation to *pre for gelu (pre may be null without an activation);
// - linear_param_grads: w's and b's gradients from the layer's input x and the gradient gp of its
//   pre-activation (undefined where not wanted), both from one GEMM when both are wanted;
// - linear_tangent: the forward-mode tangent of act(x · w + b) from the tangents of x, w and b
//   and of the residual (undefined ones count as zero), given the pre-activation for gelu. Call it
//   in a RuleScope.
Tensor linear_product(const Tensor& x, const Tensor& w, const Tensor& b, Activation act,
                      Tensor* pre, const Tensor& residual = Tensor());
std::pair<Tensor, Tensor> linear_param_grads(const Tensor& x, const Tensor& gp, bool need_w,
                                             bool need_b);
// - linear_output_shape: x's shape with its last size replaced by N;
// - check_residual: a residual of op's output (shape out) must have that shape (undefined: none).
Shape linear_output_shape(const Shape& x, int64_t N);
void check_residual(const char* op, const Tensor& residual, const Shape& out);
Tensor linear_tangent(const Tensor& x, const Tensor& tx, const Tensor& w, const Tensor& tw,
                      const Tensor& tb, const Shape& out_shape, Activation act, const Tensor& pre,
                      const Tensor& tr = Tensor());

// The GEMM's cost plus the epilogue's: one FLOP per element for the bias, gelu's 8 for the
// activation, one for a residual; bytes of x, w, b, the output (and the pre-activation for gelu,
// the residual) once each.
Cost linear_cost(const Shape& x, int64_t N, DType dt, bool bias, Activation act,
                 bool residual = false);

}  // namespace tilegrad
