// StridedView: what a kernel sees of a tensor — a pointer, a dtype and a layout (shape and strides
// in elements, up to kMaxDims), like a CuTe tensor is a pointer plus a layout. No Tensor, no
// ownership.
#pragma once

#include <cstdint>

#include "core/dtype.h"
#include "core/shape.h"

namespace tilegrad {

struct StridedView {
  void* data = nullptr;
  DType dtype = DType::f32;
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[kMaxDims] = {};

  int64_t numel() const {
    int64_t n = 1;
    for (int i = 0; i < ndim; ++i) n *= shape[i];
    return n;
  }
  bool is_contiguous() const {
    int64_t expected = 1;
    for (int i = ndim - 1; i >= 0; --i) {
      if (shape[i] == 1) continue;
      if (strides[i] != expected) return false;
      expected *= shape[i];
    }
    return true;
  }
};

// A row-major [rows, cols] matrix with row stride ld (0: one row broadcast to all rows).
inline StridedView matrix_view(const void* data, DType dt, int64_t rows, int64_t cols, int64_t ld) {
  StridedView v;
  v.data = const_cast<void*>(data);
  v.dtype = dt;
  v.ndim = 2;
  v.shape[0] = rows;
  v.shape[1] = cols;
  v.strides[0] = ld;
  v.strides[1] = 1;
  return v;
}

}  // namespace tilegrad
