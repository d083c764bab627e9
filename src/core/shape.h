// Shapes and strides (in elements), and the arithmetic on them that views and broadcasting need.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace tilegrad {

using Shape = std::vector<int64_t>;
using Strides = std::vector<int64_t>;

// The most dimensions a tensor may have (kernels carry shapes in fixed arrays of this size).
constexpr int kMaxDims = 8;

std::string shape_str(const Shape& s);  // "[2, 3]"
int64_t numel(const Shape& s);
Strides contiguous_strides(const Shape& s);
// Wraps a possibly negative dimension index into [0, ndim); throws Error naming `op` if out of
// range.
int wrap_dim(int64_t dim, int64_t ndim, const char* op);
// NumPy broadcasting of two shapes; throws Error naming `op` and both shapes if incompatible.
Shape broadcast_shapes(const Shape& a, const Shape& b, const char* op);
// Checks every size is >= 0 and the rank is at most kMaxDims.
void check_shape(const Shape& s, const char* op);

}  // namespace tilegrad
