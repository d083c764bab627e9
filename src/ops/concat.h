// concat joins tensors along a dimension (a copy); split cuts one into views along a dimension.
#pragma once

#include <vector>

#include "core/cost.h"
#include "core/tensor.h"

namespace tilegrad {

Tensor concat(const std::vector<Tensor>& xs, int64_t dim);
// Pieces of the given sizes (which must add up to x.size(dim)); they are views of x.
std::vector<Tensor> split(const Tensor& x, const std::vector<int64_t>& sizes, int64_t dim);

}  // namespace tilegrad
