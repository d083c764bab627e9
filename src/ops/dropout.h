// Dropout with the counter-based RNG: each call reserves numel draws from `gen`; the backward
// regenerates the same mask from (seed, offset) instead of saving it, so dropout saves no bytes.
#pragma once

#include "core/cost.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace tilegrad {

// Zeroes each element with probability p and scales the rest by 1/(1-p). Identity when !training
// or p == 0.
Tensor dropout(const Tensor& x, double p, Generator& gen, bool training = true);
// The same with an explicit stream position: element i uses draw offset + i of stream `seed`.
Tensor dropout_at(const Tensor& x, double p, uint64_t seed, uint64_t offset);

Cost dropout_cost(const Shape& x, DType dt);

}  // namespace tilegrad
