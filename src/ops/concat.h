// concat joins tensors along a dimension (a copy); split cuts one into views along a dimension.
#pragma once

#include <vector>

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

// A new tensor holding xs one after another along dim: at least one tensor, all of one rank, dtype
// and device, with equal sizes except on dim.
Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Pieces of the given sizes (non-negative, adding up to x.size(dim)); they are views of x, recorded
// by one backward node, so pieces that never reach the loss simply get a zero gradient.
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);

}  // namespace tilegrad
