// CPU embedding: a row gather forward, and a backward that sums gradient rows per index.
//
// The backward must give the same bits whatever the thread count, so it never lets two threads add
// into one gweight row. Positions are bucketed by index (a counting sort that keeps them in
// increasing order); then each work item owns one row of gweight — or a column block of it, so that
// one very frequent index (a padding token, say) still spreads over threads — and adds that row's
// gradient rows in position order. Every element thus sees the same additions in the same order as
// a serial loop over positions would.
#include "kernels/cpu/embedding.h"

#include <algorithm>
#include <cstring>

#include "core/error.h"
#include "kernels/cpu/parallel.h"
#include "memory/workspace.h"

namespace tilegrad::kernels::cpu {

namespace {

// Elements copied or summed below which a loop stays on one thread.
constexpr int64_t kGrain = 1 << 15;
// Columns per backward work item: wide rows split so a hot index is shared by several threads.
constexpr int64_t kColBlock = 256;

}  // namespace

void embedding_forward(DType dt, const void* weight, DType idx_dt, const void* idx, void* out,
                       int64_t n, int64_t C) {
  const size_t row_bytes = static_cast<size_t>(C) * dtype_size(dt);
  const char* w = static_cast<const char*>(weight);
  char* o = static_cast<char*>(out);
  dispatch_index(idx_dt, "embedding", [&]<class I>() {
    const I* ix = static_cast<const I*>(idx);
    parallel_for(n, n * C >= kGrain, [&](int64_t i) {
      std::memcpy(o + static_cast<size_t>(i) * row_bytes,
                  w + static_cast<size_t>(ix[i]) * row_bytes, row_bytes);
    });
  });
}

void embedding_backward(DType dt, const void* gout, DType idx_dt, const void* idx, void* gweight,
                        int64_t n, int64_t C, int64_t V, bool accumulate) {
  // start[v] .. start[v + 1]: the slice of `order` holding the positions whose index is v.
  Workspace start_ws((V + 1) * static_cast<int64_t>(sizeof(int64_t)));
  Workspace order_ws(std::max<int64_t>(n, 1) * static_cast<int64_t>(sizeof(int64_t)));
  int64_t* start = start_ws.as<int64_t>();
  int64_t* order = order_ws.as<int64_t>();
  std::fill(start, start + V + 1, int64_t{0});
  dispatch_index(idx_dt, "embedding backward", [&]<class I>() {
    const I* ix = static_cast<const I*>(idx);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = static_cast<int64_t>(ix[i]);
      TG_ASSERT(v >= 0 && v < V, "embedding backward: index ", v, " at position ", i,
                " outside [0, ", V, ")");
      ++start[v + 1];
    }
    for (int64_t v = 0; v < V; ++v) start[v + 1] += start[v];
    // Filling in increasing i keeps each bucket sorted by position; `start` is shifted by one
    // bucket while filling and shifted back after.
    for (int64_t i = 0; i < n; ++i) order[start[static_cast<int64_t>(ix[i])]++] = i;
    for (int64_t v = V; v > 0; --v) start[v] = start[v - 1];
    start[0] = 0;
  });

  const int64_t blocks = (C + kColBlock - 1) / kColBlock;
  const int64_t items = V * blocks;
  const bool parallel = std::max(n, V) * C >= kGrain;
  dispatch_floating(dt, "embedding backward", [&]<class T>() {
    using A = acc_t<T>;
    const T* g = static_cast<const T*>(gout);
    T* gw = static_cast<T*>(gweight);
    auto item = [&](int64_t it) {
      const int64_t v = it / blocks;
      const int64_t c0 = (it % blocks) * kColBlock;
      const int64_t c1 = std::min(C, c0 + kColBlock);
      A acc[kColBlock];
      std::fill(acc, acc + (c1 - c0), A(0));
      for (int64_t k = start[v]; k < start[v + 1]; ++k) {
        const T* row = g + order[k] * C;
        for (int64_t c = c0; c < c1; ++c) acc[c - c0] += A(row[c]);
      }
      T* dst = gw + v * C;
      if (!accumulate) {
        for (int64_t c = c0; c < c1; ++c) dst[c] = T(acc[c - c0]);
      } else if (start[v + 1] > start[v]) {
        for (int64_t c = c0; c < c1; ++c) dst[c] = T(A(dst[c]) + A(T(acc[c - c0])));
      }
    };
    if (!parallel) {
      for (int64_t it = 0; it < items; ++it) item(it);
      return;
    }
    // Rows with few hits are cheap and rows with many are not: dynamic scheduling evens that out.
#pragma omp parallel for schedule(dynamic, 16)
    for (int64_t it = 0; it < items; ++it) item(it);
  });
}

int64_t find_out_of_range(DType idx_dt, const void* idx, int64_t n, int64_t lo, int64_t hi,
                          int64_t ignore, int64_t* bad_value) {
  return dispatch_index(idx_dt, "find_out_of_range", [&]<class I>() -> int64_t {
    const I* ix = static_cast<const I*>(idx);
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = static_cast<int64_t>(ix[i]);
      if ((v < lo || v >= hi) && v != ignore) {
        if (bad_value != nullptr) *bad_value = v;
        return i;
      }
    }
    return -1;
  });
}

}  // namespace tilegrad::kernels::cpu
