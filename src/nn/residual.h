// Residual connections after a dropout: r + dropout(y). With no dropout in force (p = 0, or eval
// mode) nothing stands between the branch's last GEMM and the add, so the branch passes r to that
// GEMM (ops/linear.h's residual) and the add costs no pass of its own; otherwise the add is an op.
#pragma once

#include "core/rng.h"
#include "core/tensor.h"

namespace tilegrad::nn {

// Whether the residual r (may be undefined: none) goes into the branch's last GEMM.
bool residual_in_gemm(const Tensor& residual, double p, bool training);

// r + dropout(y, p), or dropout(y, p) when r is undefined: the branch's output when its GEMM did
// not add r.
Tensor dropout_then_residual(const Tensor& y, const Tensor& residual, double p, Generator& gen,
                             bool training);

}  // namespace tilegrad::nn
