// Softmax and log-softmax along one dimension (numerically stable: the row max is subtracted).
#pragma once

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

Tensor softmax(const Tensor& x, int64_t dim = -1);
Tensor log_softmax(const Tensor& x, int64_t dim = -1);

Cost softmax_cost(const Shape& x, DType dt);

}  // namespace tilegrad
