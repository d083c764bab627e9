// Reductions over dimensions: sum, mean, max; and sum_to, which undoes broadcasting in backwards.
#pragma once

#include <vector>

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

// `dims` empty means all dimensions. Negative dims count from the end.
Tensor sum(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
Tensor mean(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// The maximum; its gradient is split evenly among tied maxima.
Tensor max(const Tensor& x, const std::vector<int64_t>& dims = {}, bool keepdim = false);
// Sums x down to `shape` (the inverse of broadcasting `shape` to x's shape).
Tensor sum_to(const Tensor& x, const Shape& shape);

Cost reduce_cost(const Shape& x, const Shape& out, DType dt);

}  // namespace tilegrad
