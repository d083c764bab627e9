// The final pass of a deterministic column sum: a kernel summed the rows of each block of rows into
// partials [partials, C] (in the accumulation type, row-block order), and this pass adds each
// column's partials in that order, so the sums are the same bits on every run (no float atomics).
// Used by the layer norm's backward (gw, gb, gx's sums) and the MLP's GELU backward (the bias
// gradient). Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>
#include <initializer_list>
#include <optional>

#include "core/dtype.h"
#include "core/error.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"
#include "memory/workspace.h"

namespace tilegrad::kernels::cuda {

// Up to kSums column sums finished by one launch: each [partials, C] in A in part[k], into out[k]
// [C] in T, k < count.
constexpr int kSums = 3;
template <class T>
struct ColumnSums {
  acc_t<T>* part[kSums] = {};
  T* out[kSums] = {};
  int count = 0;
};

// 32 columns of one sum to a block (blockIdx.y picks the sum); thread (y, x) adds partials y,
// y + 32, y + 64, ... of column x in order (four loads in flight before their adds), then the 32
// sums of a column meet in order. The work is a few MB spread over few blocks (24 per sum for
// C = 768), so it must not wait on one load at a time, and the sums run side by side.
constexpr int kFinalCols = 32;
constexpr int kFinalLanes = 32;

template <class T>
__global__ void __launch_bounds__(kFinalCols* kFinalLanes)
    column_sums_final_kernel(ColumnSums<T> sums, int64_t partials, int64_t C) {
  using A = acc_t<T>;
  __shared__ A s_sum[kFinalLanes][kFinalCols];
  const int x = static_cast<int>(threadIdx.x) % kFinalCols;
  const int y = static_cast<int>(threadIdx.x) / kFinalCols;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kFinalCols + x;
  // Column sums over partials p ≡ y (mod kFinalLanes), four at a time, added in p order.
  auto column = [&](const A* part) {
    A acc = 0;
    if (j >= C) return acc;
    int64_t p = y;
    for (; p + 3 * kFinalLanes < partials; p += 4 * kFinalLanes) {
      A v[4];
#pragma unroll
      for (int u = 0; u < 4; ++u) v[u] = part[(p + u * kFinalLanes) * C + j];
#pragma unroll
      for (int u = 0; u < 4; ++u) acc += v[u];
    }
    for (; p < partials; p += kFinalLanes) acc += part[p * C + j];
    return acc;
  };
  const int k = static_cast<int>(blockIdx.y);
  s_sum[y][x] = column(sums.part[k]);
  __syncthreads();
  if (y == 0 && j < C) {
    A total = 0;
    for (int l = 0; l < kFinalLanes; ++l) total += s_sum[l][x];
    sums.out[k][j] = T(total);
  }
}

// Launches the final pass over C columns of the sums in `sums` (none: nothing); `op` names the
// caller in the error for a C too wide for the grid.
template <class T>
void launch_column_sums(const ColumnSums<T>& sums, int64_t partials, int64_t C, cudaStream_t stream,
                        const char* op) {
  if (sums.count == 0) return;
  const int64_t blocks = (C + kFinalCols - 1) / kFinalCols;
  TG_CHECK(blocks <= 0x7fffffff, op, ": C = ", C, " is too large for the GPU kernel");
  const dim3 grid(static_cast<unsigned>(blocks), static_cast<unsigned>(sums.count));
  column_sums_final_kernel<T><<<grid, kFinalCols * kFinalLanes, 0, stream>>>(sums, partials, C);
  TG_CUDA_CHECK_LAUNCH();
}

// The partials of up to kSums column sums in one workspace: for each output of `outs` that is not
// null, of[k] is its [partials, C] buffer in A (null where the output is), which a kernel fills and
// finish() adds up into the output.
template <class T>
struct ColumnPartials {
  std::optional<Workspace> ws;
  ColumnSums<T> sums;
  acc_t<T>* of[kSums] = {};  // in the order of outs
  int64_t partials, C;

  ColumnPartials(std::initializer_list<T*> outs, int64_t partials_, int64_t C_, cudaStream_t stream)
      : partials(partials_), C(C_) {
    TG_ASSERT(outs.size() <= kSums, "ColumnPartials: at most kSums outputs");
    for (T* o : outs) sums.count += o != nullptr ? 1 : 0;
    if (sums.count == 0) return;
    const int64_t elems = partials * C;
    ws.emplace(sums.count * elems * static_cast<int64_t>(sizeof(acc_t<T>)),
               Device::cuda(tilegrad::cuda::current_device()));
    // The allocator serves the thread's current stream; if `stream` is another one, this keeps
    // the block from being handed out again before the work queued on `stream` has finished.
    tilegrad::cuda::record_stream(ws->as<void>(), stream);
    int next = 0, k = 0;
    for (T* o : outs) {
      if (o != nullptr) {
        of[k] = sums.part[next] = ws->as<acc_t<T>>() + next * elems;
        sums.out[next++] = o;
      }
      ++k;
    }
  }

  // The final pass into the outputs (nothing when none is wanted); `op` as launch_column_sums's.
  void finish(cudaStream_t stream, const char* op) const {
    launch_column_sums<T>(sums, partials, C, stream, op);
  }
};

}  // namespace tilegrad::kernels::cuda
