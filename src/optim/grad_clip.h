// Global-norm gradient clipping (Pascanu et al., 2013; torch.nn.utils.clip_grad_norm_).
//
// The norm is over all gradients together, √(Σ_tensors Σ g²), accumulated in float64 so that it is
// exact to float32 precision for any model size and independent of the thread count. The
// optimizers fold the clipping factor into their fused update (StepOptions::max_grad_norm) and
// never rewrite the gradients; clip_grad_norm_ is the standalone version that scales .grad in
// place, for loops that want the gradients themselves clipped.
#pragma once

#include "io/named_tensors.h"

namespace tilegrad::optim {

// √(Σ g²) over the .grad of every tensor that has one (0 if none does); inf or NaN when some
// gradient element is.
double global_grad_norm(const NamedTensors& params);

// The factor that brings `norm` down to `max_norm`: min(1, max_norm / (norm + 1e-6)), as PyTorch
// (the 1e-6 keeps a zero norm harmless). 1 when max_norm <= 0 (clipping off).
double clip_coefficient(double norm, double max_norm);

// Scales every gradient by clip_coefficient(norm, max_norm) and returns the norm before clipping.
// A non-finite norm leaves the gradients untouched (and is returned, for the caller to act on).
double clip_grad_norm_(const NamedTensors& params, double max_norm);

}  // namespace tilegrad::optim
