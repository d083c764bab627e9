// The loop every CPU elementwise kernel runs: visit all elements of N operands that share one shape
// (each with its own strides), a contiguous row at a time, in parallel.
//
// Dimensions are first coalesced — adjacent dimensions merge when every operand steps through them
// as through one — so a contiguous tensor of any rank becomes a single row, and a row's inner
// strides are usually 1, which lets the row functor take a vectorisable stride-1 path.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>

#include "kernels/coalesce.h"
#include "kernels/cpu/parallel.h"
#include "kernels/strided.h"

namespace tilegrad::kernels::cpu {

// Elements below which a loop stays on one thread (thread start-up costs more than it saves).
constexpr int64_t kParallelGrain = 32768;

// Calls row(offsets, n, inner_strides) for every row piece: offsets[k] is operand k's element
// offset of the first element, n the piece length, inner_strides[k] operand k's step along the row.
template <int N, class Row>
void for_each_row(const std::array<const StridedView*, N>& views, Row&& row) {
  const LoopShape<N> L = coalesce<N>(views);
  std::array<int64_t, N> inner{};
  if (L.ndim == 0) {  // a single element
    std::array<int64_t, N> off{};
    for (int k = 0; k < N; ++k) inner[k] = 1;
    row(off, int64_t{1}, inner);
    return;
  }
  const int last = L.ndim - 1;
  const int64_t n = L.shape[last];
  for (int k = 0; k < N; ++k) inner[k] = L.strides[k][last];
  int64_t rows = 1;
  for (int d = 0; d < last; ++d) rows *= L.shape[d];
  // Split long rows into chunks so that a single contiguous row still spreads over threads.
  const int64_t chunk = std::max<int64_t>(kParallelGrain / 4, 4096);
  const int64_t pieces_per_row = (n + chunk - 1) / chunk;
  const int64_t items = rows * pieces_per_row;
  const bool parallel = rows * n >= kParallelGrain;
  parallel_for(items, parallel, [&](int64_t it) {
    const int64_t r = it / pieces_per_row;
    const int64_t p = it % pieces_per_row;
    std::array<int64_t, N> off{};
    int64_t rem = r;
    for (int d = last - 1; d >= 0; --d) {
      const int64_t i = rem % L.shape[d];
      rem /= L.shape[d];
      for (int k = 0; k < N; ++k) off[k] += i * L.strides[k][d];
    }
    const int64_t start = p * chunk;
    for (int k = 0; k < N; ++k) off[k] += start * inner[k];
    row(off, std::min(chunk, n - start), inner);
  });
}

}  // namespace tilegrad::kernels::cpu
