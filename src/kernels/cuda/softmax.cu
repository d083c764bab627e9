// CUDA softmax and log-softmax, forward and backward, along the middle axis of a contiguous
// [outer, n, inner] block.
//
// A "row" is the n elements at one (outer, inner) position, `inner` apart in memory. The usual
// case, inner = 1, has contiguous rows: a row of at most kWarpRowMax elements belongs to one warp
// (four rows to a block), a longer one to a whole block; the owning threads stride over the row, so
// a warp reads consecutive elements. With inner > 1, consecutive elements of a row are `inner`
// apart, so a block takes a tile of kTileCols adjacent rows (columns of the [n, inner] slab) —
// neighbouring threads then read neighbouring addresses — and kTileLanes threads per column split
// its n elements, combining their partial results through shared memory.
//
// As in the CPU kernel: arithmetic in acc_t<T>; the row max is subtracted before exp (two passes:
// max, then Σ exp), with a max that keeps NaN so that a NaN poisons its whole row; softmax is exp(x
// - max) / Σ, recomputing the exp rather than storing it so a 16-bit y is rounded once. Every
// reduction runs in a fixed order, so results are the same bits on every run.
#include "kernels/cuda/softmax.h"

#include <algorithm>
#include <cmath>

#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"

namespace tilegrad::kernels::cuda {

namespace {

// Contiguous rows up to this length get one warp each (kWarpRowBlock threads = 4 rows per block);
// longer rows get one block of kBlockRow threads.
constexpr int64_t kWarpRowMax = 1024;
constexpr int kWarpRowBlock = 128;
constexpr int kBlockRow = 512;
// Strided rows: kTileCols columns per block, each split over kTileLanes threads.
constexpr int kTileCols = 32;
constexpr int kTileLanes = 8;
constexpr int kTileThreads = kTileCols * kTileLanes;

// Reduces v over the kTileLanes threads of a column (threadIdx.y) in lane order, through s_red.
template <class Op, class A>
__device__ A column_reduce(A v, A (*s_red)[kTileCols]) {
  __syncthreads();
  s_red[threadIdx.y][threadIdx.x] = v;
  __syncthreads();
  A r = s_red[0][threadIdx.x];
  for (int k = 1; k < kTileLanes; ++k) r = Op::apply(r, s_red[k][threadIdx.x]);
  return r;
}

// Threads per block when kGroup threads own a row.
template <int kGroup>
constexpr int kRowBlockThreads = kGroup == 32 ? kWarpRowBlock : kGroup;

// Contiguous rows (inner = 1), kGroup threads per row.
template <class T, int kGroup, bool kLog>
__global__ void __launch_bounds__(kRowBlockThreads<kGroup>)
    forward_rows_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t rows, int64_t n) {
  using A = acc_t<T>;
  constexpr int kRowsPerBlock = kRowBlockThreads<kGroup> / kGroup;
  __shared__ A s_red[32];
  const int t = threadIdx.x % kGroup;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
       r < rows; r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const T* xr = x + r * n;  // (n)
    T* yr = y + r * n;        // (n)
    A m = MaxOp::identity<A>();
    for (int64_t j = t; j < n; j += kGroup) m = MaxOp::apply(m, A(xr[j]));
    m = group_reduce<kGroup, MaxOp>(m, s_red);
    A s = 0;
    for (int64_t j = t; j < n; j += kGroup) s += exp_acc(A(xr[j]) - m);
    s = group_reduce<kGroup, SumOp>(s, s_red);
    if constexpr (kLog) {
      const A shift = m + log_acc(s);
      for (int64_t j = t; j < n; j += kGroup) yr[j] = T(A(xr[j]) - shift);
    } else {
      const A inv = A(1) / s;
      for (int64_t j = t; j < n; j += kGroup) yr[j] = T(exp_acc(A(xr[j]) - m) * inv);
    }
  }
}

// log: gx = gy - softmax · Σ gy, with softmax = exp(y); else gx = y ⊙ (gy - Σ gy ⊙ y).
template <class T, int kGroup, bool kLog>
__global__ void __launch_bounds__(kRowBlockThreads<kGroup>)
    backward_rows_kernel(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                         int64_t rows, int64_t n) {
  using A = acc_t<T>;
  constexpr int kRowsPerBlock = kRowBlockThreads<kGroup> / kGroup;
  __shared__ A s_red[32];
  const int t = threadIdx.x % kGroup;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock + threadIdx.x / kGroup;
       r < rows; r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock) {
    const T* yr = y + r * n;   // (n)
    const T* gr = gy + r * n;  // (n)
    T* gxr = gx + r * n;       // (n)
    A s = 0;
    for (int64_t j = t; j < n; j += kGroup) s += kLog ? A(gr[j]) : A(gr[j]) * A(yr[j]);
    s = group_reduce<kGroup, SumOp>(s, s_red);
    for (int64_t j = t; j < n; j += kGroup) {
      if constexpr (kLog) {
        gxr[j] = T(A(gr[j]) - exp_acc(A(yr[j])) * s);
      } else {
        gxr[j] = T(A(yr[j]) * (A(gr[j]) - s));
      }
    }
  }
}

// Strided rows (inner > 1): block `blk` is tile blk % tiles of slab blk / tiles; thread (x, y)
// works on column x of the tile and elements y, y + kTileLanes, ... of it.
template <class T, bool kLog>
__global__ void __launch_bounds__(kTileThreads)
    forward_strided_kernel(const T* __restrict__ x, T* __restrict__ y, int64_t outer, int64_t n,
                           int64_t inner, int64_t tiles) {
  using A = acc_t<T>;
  __shared__ A s_red[kTileLanes][kTileCols];
  for (int64_t blk = blockIdx.x; blk < outer * tiles; blk += gridDim.x) {
    const int64_t c = (blk % tiles) * kTileCols + threadIdx.x;
    const bool active = c < inner;
    const int64_t base = (blk / tiles) * n * inner + c;  // element i of the row: base + i * inner
    A m = MaxOp::identity<A>();
    if (active) {
      for (int64_t i = threadIdx.y; i < n; i += kTileLanes)
        m = MaxOp::apply(m, A(x[base + i * inner]));
    }
    m = column_reduce<MaxOp>(m, s_red);
    A s = 0;
    if (active) {
      for (int64_t i = threadIdx.y; i < n; i += kTileLanes)
        s += exp_acc(A(x[base + i * inner]) - m);
    }
    s = column_reduce<SumOp>(s, s_red);
    if (!active) continue;  // no barrier below: idle threads may go on to the next tile
    if constexpr (kLog) {
      const A shift = m + log_acc(s);
      for (int64_t i = threadIdx.y; i < n; i += kTileLanes) {
        y[base + i * inner] = T(A(x[base + i * inner]) - shift);
      }
    } else {
      const A inv = A(1) / s;
      for (int64_t i = threadIdx.y; i < n; i += kTileLanes) {
        y[base + i * inner] = T(exp_acc(A(x[base + i * inner]) - m) * inv);
      }
    }
  }
}

template <class T, bool kLog>
__global__ void __launch_bounds__(kTileThreads)
    backward_strided_kernel(const T* __restrict__ y, const T* __restrict__ gy, T* __restrict__ gx,
                            int64_t outer, int64_t n, int64_t inner, int64_t tiles) {
  using A = acc_t<T>;
  __shared__ A s_red[kTileLanes][kTileCols];
  for (int64_t blk = blockIdx.x; blk < outer * tiles; blk += gridDim.x) {
    const int64_t c = (blk % tiles) * kTileCols + threadIdx.x;
    const bool active = c < inner;
    const int64_t base = (blk / tiles) * n * inner + c;  // element i of the row: base + i * inner
    A s = 0;
    if (active) {
      for (int64_t i = threadIdx.y; i < n; i += kTileLanes) {
        const int64_t k = base + i * inner;
        s += kLog ? A(gy[k]) : A(gy[k]) * A(y[k]);
      }
    }
    s = column_reduce<SumOp>(s, s_red);
    if (!active) continue;
    for (int64_t i = threadIdx.y; i < n; i += kTileLanes) {
      const int64_t k = base + i * inner;
      if constexpr (kLog) {
        gx[k] = T(A(gy[k]) - exp_acc(A(y[k])) * s);
      } else {
        gx[k] = T(A(y[k]) * (A(gy[k]) - s));
      }
    }
  }
}

// Calls f.template operator()<kLog>() with log as a compile-time flag.
template <class F>
void with_log(bool log, F&& f) {
  if (log) {
    f.template operator()<true>();
  } else {
    f.template operator()<false>();
  }
}

}  // namespace

void softmax_forward(DType dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner,
                     bool log, cudaStream_t stream) {
  dispatch_floating(dt, log ? "log_softmax" : "softmax", [&]<class T>() {
    if (outer <= 0 || n <= 0 || inner <= 0) return;  // no elements
    const T* px = static_cast<const T*>(x);
    T* py = static_cast<T*>(y);
    with_log(log, [&]<bool kLog>() {
      if (inner > 1) {
        const int64_t tiles = (inner + kTileCols - 1) / kTileCols;
        forward_strided_kernel<T, kLog>
            <<<grid_blocks(outer * tiles, kMaxGridBlocks), dim3(kTileCols, kTileLanes), 0,
               stream>>>(px, py, outer, n, inner, tiles);
      } else if (n <= kWarpRowMax) {
        constexpr int kRowsPerBlock = kWarpRowBlock / 32;
        forward_rows_kernel<T, 32, kLog>
            <<<grid_blocks((outer + kRowsPerBlock - 1) / kRowsPerBlock, kMaxGridBlocks),
               kWarpRowBlock, 0, stream>>>(px, py, outer, n);
      } else {
        forward_rows_kernel<T, kBlockRow, kLog>
            <<<grid_blocks(outer, kMaxGridBlocks), kBlockRow, 0, stream>>>(px, py, outer, n);
      }
      TG_CUDA_CHECK_LAUNCH();
    });
  });
}

void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n,
                      int64_t inner, bool log, cudaStream_t stream) {
  dispatch_floating(dt, log ? "log_softmax" : "softmax", [&]<class T>() {
    if (outer <= 0 || n <= 0 || inner <= 0) return;  // no elements
    const T* py = static_cast<const T*>(y);
    const T* pg = static_cast<const T*>(gy);
    T* pgx = static_cast<T*>(gx);
    with_log(log, [&]<bool kLog>() {
      if (inner > 1) {
        const int64_t tiles = (inner + kTileCols - 1) / kTileCols;
        backward_strided_kernel<T, kLog>
            <<<grid_blocks(outer * tiles, kMaxGridBlocks), dim3(kTileCols, kTileLanes), 0,
               stream>>>(py, pg, pgx, outer, n, inner, tiles);
      } else if (n <= kWarpRowMax) {
        constexpr int kRowsPerBlock = kWarpRowBlock / 32;
        backward_rows_kernel<T, 32, kLog>
            <<<grid_blocks((outer + kRowsPerBlock - 1) / kRowsPerBlock, kMaxGridBlocks),
               kWarpRowBlock, 0, stream>>>(py, pg, pgx, outer, n);
      } else {
        backward_rows_kernel<T, kBlockRow, kLog>
            <<<grid_blocks(outer, kMaxGridBlocks), kBlockRow, 0, stream>>>(py, pg, pgx, outer, n);
      }
      TG_CUDA_CHECK_LAUNCH();
    });
  });
}

}  // namespace tilegrad::kernels::cuda
