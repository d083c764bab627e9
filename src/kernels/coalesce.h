// The coalesced iteration space of N operands that share one shape (each with its own strides),
// which both devices' elementwise kernels loop over: size-1 dimensions are dropped, and a dimension
// merges into the previous one when every operand steps through both as through one, so a
// contiguous tensor of any rank becomes one dimension of stride 1. Host code, includable by nvcc;
// the struct is plain data that CUDA kernels take by value.
#pragma once

#include <array>
#include <cstdint>

#include "kernels/strided.h"

namespace tilegrad::kernels {

template <int N>
struct LoopShape {
  int ndim = 0;
  int64_t shape[kMaxDims] = {};
  int64_t strides[N][kMaxDims] = {};
};

// Coalesced iteration space of views that all have views[0]'s shape.
template <int N>
LoopShape<N> coalesce(const std::array<const StridedView*, N>& views) {
  LoopShape<N> L;
  const StridedView& ref = *views[0];
  for (int d = 0; d < ref.ndim; ++d) {  // drop size-1 dimensions
    if (ref.shape[d] == 1) continue;
    L.shape[L.ndim] = ref.shape[d];
    for (int k = 0; k < N; ++k) L.strides[k][L.ndim] = views[k]->strides[d];
    ++L.ndim;
  }
  int out = 0;  // merge dimension d into the previous one when all operands allow it
  for (int d = 1; d < L.ndim; ++d) {
    bool merge = true;
    for (int k = 0; k < N; ++k) merge = merge && L.strides[k][out] == L.strides[k][d] * L.shape[d];
    if (merge) {
      L.shape[out] *= L.shape[d];
    } else {
      ++out;
      L.shape[out] = L.shape[d];
    }
    for (int k = 0; k < N; ++k) L.strides[k][out] = L.strides[k][d];
  }
  L.ndim = L.ndim == 0 ? 0 : out + 1;
  return L;
}

}  // namespace tilegrad::kernels
