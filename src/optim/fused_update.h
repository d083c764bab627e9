// The one place optim/ reaches device kernels: Tensor arguments are checked (device, dtype, layout)
// and the Backend of the parameter's device runs the update with raw pointers.
#pragma once

#include <span>

#include "core/tensor.h"
#include "kernels/optim_step.h"

namespace tilegrad::optim {

using ::tilegrad::AdamWStep;
using ::tilegrad::SgdStep;

// `master` is undefined for float32/float64 parameters and a float32 tensor shaped like `param`
// for bfloat16/float16 ones. State tensors (m, v, momentum) are float32 (float64 for float64
// parameters). All tensors contiguous, on one device; `op` names the optimizer in errors.
// One parameter's AdamW operands and its own step.
struct AdamWOperands {
  Tensor param, master, grad, m, v;
  AdamWStep step;
};
// One AdamW step on every entry; runs of entries that share a device and dtype go to the backend
// as one multi-tensor update (one launch on CUDA for the whole model instead of one per
// parameter).
void fused_adamw_multi(const char* op, std::span<const AdamWOperands> xs);
// `momentum_buf` may be undefined when s.momentum == 0.
void fused_sgd(const char* op, const Tensor& param, const Tensor& master, const Tensor& grad,
               const Tensor& momentum_buf, const SgdStep& s);
// Σ g² in float64 (contiguous g); inf or NaN when some element is.
double grad_sum_squares(const Tensor& g);
// Σ of grad_sum_squares over the defined tensors, added in order (the same bits as that loop); one
// device round trip when they share a device.
double grad_sum_squares_list(const std::vector<Tensor>& gs);
// param's gradient as a contiguous tensor: the gradient itself, or a packed workspace copy when it
// is a strided view (a gradient set by hand may be one); undefined when there is none.
Tensor contiguous_grad(const Tensor& param);

}  // namespace tilegrad::optim
