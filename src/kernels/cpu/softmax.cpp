// CPU softmax and log-softmax, forward and backward, along the middle axis of a contiguous
// [outer, n, inner] block.
//
// A "row" is the n elements at one (outer, inner) position, `inner` apart in memory. For inner = 1
// (softmax over the last dimension, the usual case) a row is contiguous and is handled in a few
// stride-1 passes. Otherwise the rows of one outer index are processed a tile of kTile adjacent
// columns at a time, with the column index innermost, so memory is still read with stride 1 and the
// per-row max and sums live in small arrays on the stack. Arithmetic is in acc_t<T>; the row max is
// subtracted before exp so that large logits cannot overflow.
#include "kernels/cpu/softmax.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "kernels/cpu/parallel.h"
#include "kernels/cpu/strided_loop.h"

namespace tilegrad::kernels::cpu {

namespace {

// Columns of an inner > 1 slab processed together: enough for stride-1 runs, small enough that the
// accumulators stay in L1.
constexpr int64_t kTile = 64;

// Comparison written so that a NaN becomes the max and then propagates to the whole row.
template <class A>
inline A max_keep_nan(A m, A v) {
  return (v > m || std::isnan(v)) ? v : m;
}

template <class T>
void forward_row(const T* x, T* y, int64_t n, bool log) {
  using A = acc_t<T>;
  A m = -std::numeric_limits<A>::infinity();
  for (int64_t i = 0; i < n; ++i) m = max_keep_nan(m, A(x[i]));
  A s = 0;
  if (log) {
    for (int64_t i = 0; i < n; ++i) s += std::exp(A(x[i]) - m);
    const A shift = m + std::log(s);
    for (int64_t i = 0; i < n; ++i) y[i] = T(A(x[i]) - shift);
    return;
  }
  if constexpr (std::is_same_v<T, A>) {
    // y can hold exp(x - m) exactly as computed, so store it and rescale: one exp per element.
    for (int64_t i = 0; i < n; ++i) {
      const A e = std::exp(x[i] - m);
      y[i] = e;
      s += e;
    }
    const A inv = A(1) / s;
    for (int64_t i = 0; i < n; ++i) y[i] *= inv;
  } else {
    // A 16-bit y would round exp(x - m) before the division, then round again; recomputing the exp
    // keeps the result to a single rounding.
    for (int64_t i = 0; i < n; ++i) s += std::exp(A(x[i]) - m);
    const A inv = A(1) / s;
    for (int64_t i = 0; i < n; ++i) y[i] = T(std::exp(A(x[i]) - m) * inv);
  }
}

// Columns [c0, c0 + w) of one [n, inner] slab.
template <class T>
void forward_tile(const T* x, T* y, int64_t n, int64_t inner, int64_t w, bool log) {
  using A = acc_t<T>;
  A m[kTile], s[kTile];  // (w): per-row max and sum of exp
  for (int64_t j = 0; j < w; ++j) {
    m[j] = -std::numeric_limits<A>::infinity();
    s[j] = 0;
  }
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * inner;
    for (int64_t j = 0; j < w; ++j) m[j] = max_keep_nan(m[j], A(xi[j]));
  }
  for (int64_t i = 0; i < n; ++i) {
    const T* xi = x + i * inner;
    for (int64_t j = 0; j < w; ++j) s[j] += std::exp(A(xi[j]) - m[j]);
  }
  if (log) {
    for (int64_t j = 0; j < w; ++j) m[j] += std::log(s[j]);  // m becomes the log-sum-exp
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = 0; j < w; ++j) y[i * inner + j] = T(A(x[i * inner + j]) - m[j]);
    }
    return;
  }
  for (int64_t j = 0; j < w; ++j) s[j] = A(1) / s[j];
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < w; ++j) {
      y[i * inner + j] = T(std::exp(A(x[i * inner + j]) - m[j]) * s[j]);
    }
  }
}

template <class T>
void backward_row(const T* y, const T* gy, T* gx, int64_t n, bool log) {
  using A = acc_t<T>;
  A s = 0;
  if (log) {  // gx = gy - softmax · Σ gy, with softmax = exp(y)
    for (int64_t i = 0; i < n; ++i) s += A(gy[i]);
    for (int64_t i = 0; i < n; ++i) gx[i] = T(A(gy[i]) - std::exp(A(y[i])) * s);
  } else {  // gx = y ⊙ (gy - Σ gy ⊙ y)
    for (int64_t i = 0; i < n; ++i) s += A(gy[i]) * A(y[i]);
    for (int64_t i = 0; i < n; ++i) gx[i] = T(A(y[i]) * (A(gy[i]) - s));
  }
}

template <class T>
void backward_tile(const T* y, const T* gy, T* gx, int64_t n, int64_t inner, int64_t w, bool log) {
  using A = acc_t<T>;
  A s[kTile];  // (w): per-row Σ gy (log) or Σ gy ⊙ y
  for (int64_t j = 0; j < w; ++j) s[j] = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i * inner;
    if (log) {
      for (int64_t j = 0; j < w; ++j) s[j] += A(gy[r + j]);
    } else {
      for (int64_t j = 0; j < w; ++j) s[j] += A(gy[r + j]) * A(y[r + j]);
    }
  }
  for (int64_t i = 0; i < n; ++i) {
    const int64_t r = i * inner;
    if (log) {
      for (int64_t j = 0; j < w; ++j) gx[r + j] = T(A(gy[r + j]) - std::exp(A(y[r + j])) * s[j]);
    } else {
      for (int64_t j = 0; j < w; ++j) gx[r + j] = T(A(y[r + j]) * (A(gy[r + j]) - s[j]));
    }
  }
}

// Runs row_fn(offset) for each contiguous row (inner == 1) or tile_fn(offset, width) for each tile
// of columns of each slab; rows and tiles are independent, so they are spread over threads.
template <class RowFn, class TileFn>
void for_each_row_or_tile(int64_t outer, int64_t n, int64_t inner, RowFn row_fn, TileFn tile_fn) {
  const bool parallel = outer * n * inner >= kParallelGrain;
  if (inner == 1) {
    parallel_for(outer, parallel, [&](int64_t o) { row_fn(o * n); });
    return;
  }
  const int64_t tiles = (inner + kTile - 1) / kTile;
  parallel_for(outer * tiles, parallel, [&](int64_t it) {
    const int64_t o = it / tiles, c0 = (it % tiles) * kTile;
    tile_fn(o * n * inner + c0, std::min(kTile, inner - c0));
  });
}

}  // namespace

void softmax_forward(DType dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner,
                     bool log) {
  dispatch_floating(dt, log ? "log_softmax" : "softmax", [&]<class T>() {
    const T* px = static_cast<const T*>(x);
    T* py = static_cast<T*>(y);
    for_each_row_or_tile(
        outer, n, inner, [&](int64_t off) { forward_row(px + off, py + off, n, log); },
        [&](int64_t off, int64_t w) { forward_tile(px + off, py + off, n, inner, w, log); });
  });
}

void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n,
                      int64_t inner, bool log) {
  dispatch_floating(dt, log ? "log_softmax" : "softmax", [&]<class T>() {
    const T* py = static_cast<const T*>(y);
    const T* pg = static_cast<const T*>(gy);
    T* pgx = static_cast<T*>(gx);
    for_each_row_or_tile(
        outer, n, inner, [&](int64_t off) { backward_row(py + off, pg + off, pgx + off, n, log); },
        [&](int64_t off, int64_t w) {
          backward_tile(py + off, pg + off, pgx + off, n, inner, w, log);
        });
  });
}

}  // namespace tilegrad::kernels::cpu
