// A linear layer as one op: y = act(x · w + b), with the bias and the activation applied in the
// GEMM's epilogue (GemmEpilogue), so that neither costs a pass over the output of its own.
#pragma once

#include <cstdint>

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

enum class Activation : uint8_t { none, gelu };

// x [..., K], w [K, N] (any 2-D layout; a transposed view goes to GEMM as a flag), b [N] or
// undefined -> [..., N]. gelu is the tanh form of ops/elementwise.h's gelu. The backward saves x
// and w (each only if the other's gradient is wanted) and, for gelu, the pre-activation x · w + b.
Tensor linear(const Tensor& x, const Tensor& w, const Tensor& b, Activation act = Activation::none);

// The GEMM's cost plus the epilogue's: one FLOP per element for the bias, gelu's 8 for the
// activation; bytes of x, w, b and the output (and the pre-activation for gelu) once each.
Cost linear_cost(const Shape& x, int64_t N, DType dt, bool bias, Activation act);

}  // namespace tilegrad
