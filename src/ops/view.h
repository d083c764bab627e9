// Views: reshape, transpose, permute, slice, expand, (un)squeeze — they share storage and are
// differentiable. Also contiguous(), clone() and to(dtype), which copy. The Tensor methods of the
// same names (core/tensor.h) are defined in view.cpp and call these.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace tilegrad {

Tensor reshape(const Tensor& x, const Shape& shape);
Tensor transpose(const Tensor& x, int64_t d0, int64_t d1);
Tensor permute(const Tensor& x, const std::vector<int64_t>& dims);
Tensor slice(const Tensor& x, int64_t dim, int64_t start, int64_t end, int64_t step = 1);
Tensor expand(const Tensor& x, const Shape& shape);
Tensor unsqueeze(const Tensor& x, int64_t dim);
Tensor squeeze(const Tensor& x, int64_t dim);
Tensor contiguous(const Tensor& x);
Tensor clone(const Tensor& x);
Tensor to_dtype(const Tensor& x, DType dtype);
// A copy on `device` (x itself when it is there already); differentiable: the gradient goes back
// to x's device. Keeps the storage category of x unless a CategoryScope is active.
Tensor to_device(const Tensor& x, Device device);

// The shape `shape` resolved against numel (one entry may be -1); throws naming `op`.
Shape infer_shape(const Shape& shape, int64_t numel, const char* op);

}  // namespace tilegrad
