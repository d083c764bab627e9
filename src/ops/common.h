// Helpers every op file uses: kernel views of tensors, output allocation, argument checks.
#pragma once

#include <vector>

#include "backend/backend.h"
#include "core/tensor.h"

namespace tilegrad {

// The kernel's view of t.
StridedView strided(const Tensor& t);
// The kernel's view of t broadcast to `shape` (stride 0 on broadcast dimensions).
StridedView strided_as(const Tensor& t, const Shape& shape);
// A fresh contiguous output of an op: category from the thread's CategoryScope, else activation.
Tensor empty_output(const Shape& shape, DType dtype, Device device);
inline Tensor empty_output_like(const Tensor& t) {
  return empty_output(t.shape(), t.dtype(), t.device());
}
inline Backend& backend_of(const Tensor& t) {
  return backend(t.device());
}
// t.contiguous(), or t itself when undefined: an optional operand (a bias, a residual) as a kernel
// takes it.
inline Tensor contiguous_or_undefined(const Tensor& t) {
  return t.defined() ? t.contiguous() : t;
}

void check_defined(const char* op, const Tensor& t, const char* what = "input");
void check_floating(const char* op, const Tensor& t);
// Same dtype and device for every operand (the message names the op and all shapes).
void check_compatible(const char* op, const std::vector<Tensor>& ts);

}  // namespace tilegrad
