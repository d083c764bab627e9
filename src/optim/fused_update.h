// The one place optim/ reaches device kernels: Tensor arguments are checked (device, dtype, layout)
// and the kernel for the parameter's device is called with raw pointers.
//
// Only the CPU kernels exist so far; a CUDA port adds its branch here (or moves these entries into
// the Backend interface) and nothing else in optim/ changes.
#pragma once

#include "core/tensor.h"
#include "kernels/cpu/optim.h"

namespace tilegrad::optim {

using kernels::cpu::AdamWStep;
using kernels::cpu::SgdStep;

// `master` is undefined for float32/float64 parameters and a float32 tensor shaped like `param`
// for bfloat16/float16 ones. State tensors (m, v, momentum) are float32 (float64 for float64
// parameters). All tensors contiguous, on one device; `op` names the optimizer in errors.
void fused_adamw(const char* op, const Tensor& param, const Tensor& master, const Tensor& grad,
                 const Tensor& m, const Tensor& v, const AdamWStep& s);
// `momentum_buf` may be undefined when s.momentum == 0.
void fused_sgd(const char* op, const Tensor& param, const Tensor& master, const Tensor& grad,
               const Tensor& momentum_buf, const SgdStep& s);
// Σ g² in float64 (contiguous g); inf or NaN when some element is.
double grad_sum_squares(const Tensor& g);

}  // namespace tilegrad::optim
