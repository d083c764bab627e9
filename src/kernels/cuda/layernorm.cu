// CUDA layer norm over the last dimension C of `rows` contiguous rows, forward and backward.
//
// Forward and gx: rows are independent; a row belongs to one warp (eight rows to a block) up to
// C = 1024, beyond that to a whole block, so that each thread has a few elements and short rows
// need no block barriers. The row is read once per statistic — Σ x, then
// Σ (x - mean)², as in the CPU kernel (a second pass, not E[x²] - mean², which cancels when |mean|
// is large against the spread), then once more to write — from L1/L2, since a block's row is small.
// Block sums reduce each warp with shuffles and then the warp sums in a fixed order, so every
// result is the same bits on every run.
//
// gw and gb sum over rows, and must be deterministic too, so no float atomics: rows are cut into
// blocks whose number depends only on `rows`; one pass has a thread per (row block, column) sum its
// rows in order into a partial buffer (workspace), a second pass has a thread per column add the
// partials in row-block order.
//
// The backward of a transformer's rows (16-bit or float32 types, C a multiple of a 16-byte
// vector's elements and at most 1,024, or 512 for float32) takes one pass instead: a warp per row
// reads gy and x once with 16-byte loads, writes gx, and adds the row's gw and gb terms to per-lane
// registers (each lane owns the same columns in every row); at the end the block's eight warps add
// their registers through shared memory in warp order, one partial per block, and the final pass
// adds the blocks' partials in order. The rows a block and a warp take depend on `rows` alone, so
// the sums are still the same bits on every run.
#include "kernels/cuda/layernorm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>
#include <optional>

#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"
#include "memory/workspace.h"

namespace tilegrad::kernels::cuda {

namespace {

// gw/gb: about this many rows per partial sum, and at most this many partials per column — enough
// blocks to fill the GPU, few enough that the final pass over the partials is cheap.
constexpr int64_t kRowsPerPartial = 64;
constexpr int64_t kMaxPartials = 512;
// Threads per block of the gw/gb passes: one column each.
constexpr int kColThreads = 256;

// Threads per block when kGroup threads own a row: eight warps, or the one group.
template <int kGroup>
constexpr int kRowBlockThreads = kGroup == 32 ? 256 : kGroup;
template <int kGroup>
constexpr int kRowsPerBlock = kRowBlockThreads<kGroup> / kGroup;

// kGroup threads per row: mean, rstd, y = (x - mean) · rstd · w + b.
template <class T, int kGroup>
__global__ void __launch_bounds__(kRowBlockThreads<kGroup>)
    forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                   T* __restrict__ y, acc_t<T>* __restrict__ mean, acc_t<T>* __restrict__ rstd,
                   int64_t rows, int64_t C, acc_t<T> eps, acc_t<T> inv_c) {
  using A = acc_t<T>;
  __shared__ A s_red[32];
  const int t = threadIdx.x % kGroup;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock<kGroup> + threadIdx.x / kGroup;
       r < rows; r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock<kGroup>) {
    const T* xr = x + r * C;  // (C)
    T* yr = y + r * C;        // (C)
    A s = 0;
    for (int64_t j = t; j < C; j += kGroup) s += A(xr[j]);
    const A mu = group_reduce<kGroup, SumOp>(s, s_red) * inv_c;
    A ss = 0;
    for (int64_t j = t; j < C; j += kGroup) {
      const A d = A(xr[j]) - mu;
      ss += d * d;
    }
    const A rs = A(1) / sqrt_acc(group_reduce<kGroup, SumOp>(ss, s_red) * inv_c + eps);
    if (t == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
    for (int64_t j = t; j < C; j += kGroup) {
      A v = (A(xr[j]) - mu) * rs;
      if (w) v *= A(w[j]);
      if (b) v += A(b[j]);
      yr[j] = T(v);
    }
  }
}

// gx_add's sum, a + b rounded once: never contracted with the multiply that made b into an FMA
// (which would skip b's rounding in float32 and float64, and so differ from a separate add).
__device__ __forceinline__ float add_rn(float a, float b) {
  return __fadd_rn(a, b);
}
__device__ __forceinline__ double add_rn(double a, double b) {
  return __dadd_rn(a, b);
}

// kGroup threads per row: ĝ = gy ⊙ w; gx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ ⊙ x̂)).
template <class T, int kGroup>
__global__ void __launch_bounds__(kRowBlockThreads<kGroup>)
    backward_gx_kernel(const T* __restrict__ gy, const T* __restrict__ x, const T* __restrict__ w,
                       const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                       T* __restrict__ gx, const T* __restrict__ gx_add, int64_t rows, int64_t C,
                       acc_t<T> inv_c) {
  using A = acc_t<T>;
  __shared__ A s_red[32];
  const int t = threadIdx.x % kGroup;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock<kGroup> + threadIdx.x / kGroup;
       r < rows; r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock<kGroup>) {
    const T* gr = gy + r * C;  // (C)
    const T* xr = x + r * C;   // (C)
    const A mu = mean[r], rs = rstd[r];
    A sg = 0, sgx = 0;
    for (int64_t j = t; j < C; j += kGroup) {
      const A g = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
      sg += g;
      sgx += g * ((A(xr[j]) - mu) * rs);
    }
    const A mg = group_reduce<kGroup, SumOp>(sg, s_red) * inv_c;
    const A mgx = group_reduce<kGroup, SumOp>(sgx, s_red) * inv_c;
    T* gxr = gx + r * C;                                         // (C)
    const T* ar = gx_add != nullptr ? gx_add + r * C : nullptr;  // (C)
    for (int64_t j = t; j < C; j += kGroup) {
      const A g = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
      const A xh = (A(xr[j]) - mu) * rs;
      const T v = T(rs * (g - mg - xh * mgx));
      gxr[j] = ar != nullptr ? T(add_rn(A(ar[j]), A(v))) : v;
    }
  }
}

// Thread (row block blockIdx.y, column j): Σ gy ⊙ x̂ and Σ gy over the block's rows, in row order,
// into part_w / part_b [partials, C] (either may be null).
template <class T>
__global__ void __launch_bounds__(kColThreads)
    backward_partial_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                            const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                            acc_t<T>* __restrict__ part_w, acc_t<T>* __restrict__ part_b,
                            int64_t rows, int64_t C, int64_t per_partial) {
  using A = acc_t<T>;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColThreads + threadIdx.x;
  if (j >= C) return;
  const int64_t blk = blockIdx.y;
  const int64_t r0 = blk * per_partial < rows ? blk * per_partial : rows;
  const int64_t r1 = r0 + per_partial < rows ? r0 + per_partial : rows;
  A sw = 0, sb = 0;
#pragma unroll 4
  for (int64_t r = r0; r < r1; ++r) {
    const A g = A(gy[r * C + j]);
    sb += g;
    if (part_w) sw += g * ((A(x[r * C + j]) - mean[r]) * rstd[r]);
  }
  if (part_w) part_w[blk * C + j] = sw;
  if (part_b) part_b[blk * C + j] = sb;
}

// The final pass: 32 columns to a block; thread (y, x) adds partials y, y + 32, y + 64, ... of
// column x in order (four loads in flight before their adds), then the 32 sums of a column meet in
// order. The work is a few MB spread over few blocks (24 for C = 768), so it must not wait on one
// load at a time.
constexpr int kFinalCols = 32;
constexpr int kFinalLanes = 32;

template <class T>
__global__ void __launch_bounds__(kFinalCols* kFinalLanes)
    backward_final_kernel(const acc_t<T>* __restrict__ part_w, const acc_t<T>* __restrict__ part_b,
                          T* __restrict__ gw, T* __restrict__ gb, int64_t partials, int64_t C) {
  using A = acc_t<T>;
  __shared__ A s_w[kFinalLanes][kFinalCols], s_b[kFinalLanes][kFinalCols];
  const int x = static_cast<int>(threadIdx.x) % kFinalCols;
  const int y = static_cast<int>(threadIdx.x) / kFinalCols;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kFinalCols + x;
  // Column sums over partials p ≡ y (mod kFinalLanes), four at a time, added in p order.
  auto column = [&](const A* part) {
    A acc = 0;
    if (part == nullptr || j >= C) return acc;
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
  s_w[y][x] = column(part_w);
  s_b[y][x] = column(part_b);
  __syncthreads();
  if (y != 0 || j >= C) return;
  A sw = 0, sb = 0;
  for (int k = 0; k < kFinalLanes; ++k) {
    sw += s_w[k][x];
    sb += s_b[k][x];
  }
  if (gw) gw[j] = T(sw);
  if (gb) gb[j] = T(sb);
}

// The gw and gb partial sums of a backward, [partials, C] each in A, in one workspace; a gradient
// that is not wanted gets no buffer (a null pointer).
template <class A>
struct Partials {
  std::optional<Workspace> ws;
  A* w = nullptr;
  A* b = nullptr;
  Partials(bool want_w, bool want_b, int64_t elems, cudaStream_t stream) {
    const int64_t bufs = (want_w ? 1 : 0) + (want_b ? 1 : 0);
    if (bufs == 0) return;
    ws.emplace(bufs * elems * static_cast<int64_t>(sizeof(A)),
               Device::cuda(tilegrad::cuda::current_device()));
    // The allocator serves the thread's current stream; if `stream` is another one, this keeps
    // the block from being handed out again before the work queued on `stream` has finished.
    tilegrad::cuda::record_stream(ws->as<void>(), stream);
    w = want_w ? ws->as<A>() : nullptr;
    b = want_b ? ws->as<A>() + (want_w ? elems : 0) : nullptr;
  }
};

// Launches backward_final_kernel over C columns.
template <class T>
void launch_final(const acc_t<T>* part_w, const acc_t<T>* part_b, T* gw, T* gb, int64_t partials,
                  int64_t C, cudaStream_t stream) {
  const int64_t blocks = (C + kFinalCols - 1) / kFinalCols;
  TG_CHECK(blocks <= 0x7fffffff, "layer_norm: C = ", C, " is too large for the GPU kernel");
  backward_final_kernel<T><<<static_cast<unsigned>(blocks), kFinalCols * kFinalLanes, 0, stream>>>(
      part_w, part_b, gw, gb, partials, C);
  TG_CUDA_CHECK_LAUNCH();
}

// ---- the one-pass backward

constexpr int kFusedWarps = 8;
constexpr int kFusedMaxC = 1024;  // s_w's size; the sums take 2 x kFusedWarps x C floats

// Lane l owns columns c · 32 · V + l · V + [0, V) for chunk c < kChunks (those below C).
//
// Registers decide this kernel's speed: it is latency-bound, so each warp loads its next row while
// it works on the current one, and what a lane keeps across rows lives where it costs no
// registers: w as float in shared memory, and the warp's Σ gy ⊙ x̂ and Σ gy (gw's and gb's terms)
// in its rows of the dynamic shared memory `sums` [2, kFusedWarps, C]. Held in registers, w and
// the sums took 72 of them at C = 768, and the kernel spilled at its bound of 128. In shared memory
// element e of vector q sits at e · (C / V) + q, so a warp's lanes (consecutive q) read
// consecutive words: stored by column, lane l's eight columns would share banks with lanes l + 4k.
template <class T, int kChunks>
__global__ void __launch_bounds__(kFusedWarps * 32, 2)
    fused_backward_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                          const T* __restrict__ w, const float* __restrict__ mean,
                          const float* __restrict__ rstd, T* __restrict__ gx,
                          const T* __restrict__ gx_add, float* __restrict__ part_w,
                          float* __restrict__ part_b, int64_t rows, int C, float inv_c,
                          int rows_per_block) {
  constexpr int V = kVec16<T>;
  extern __shared__ float sums[];  // (2, kFusedWarps, C)
  __shared__ float s_w[kFusedMaxC];
  const int lane = static_cast<int>(threadIdx.x) % 32, warp = static_cast<int>(threadIdx.x) / 32;
  const int nvec = C / V;  // vectors per row
  // This warp's sums; lane l touches only its own vectors' slots.
  float* dw = sums + warp * C;
  float* db = sums + (kFusedWarps + warp) * C;
  for (int j = static_cast<int>(threadIdx.x); j < C; j += kFusedWarps * 32)
    s_w[(j % V) * nvec + j / V] = w != nullptr ? float(w[j]) : 1.0f;
#pragma unroll
  for (int c = 0; c < kChunks; ++c) {
    const int q = c * 32 + lane;
    if (q >= nvec) continue;
#pragma unroll
    for (int e = 0; e < V; ++e) {
      dw[e * nvec + q] = 0.0f;
      db[e * nvec + q] = 0.0f;
    }
  }
  __syncthreads();  // s_w is written
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int64_t r1 = min64(rows, r0 + rows_per_block);
  // The row's vectors stay packed in T; x̂ and ĝ are formed again where needed.
  Vec16<T> vg[kChunks], vx[kChunks];
  auto load_row = [&](int64_t r, Vec16<T>(&g)[kChunks], Vec16<T>(&xv)[kChunks]) {
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int col = (c * 32 + lane) * V;
      if (col >= C) continue;
      g[c] = *reinterpret_cast<const Vec16<T>*>(gy + r * C + col);
      xv[c] = *reinterpret_cast<const Vec16<T>*>(x + r * C + col);
    }
  };
  if (r0 + warp < r1) load_row(r0 + warp, vg, vx);
  for (int64_t r = r0 + warp; r < r1; r += kFusedWarps) {
    Vec16<T> ng[kChunks], nx[kChunks];
    if (r + kFusedWarps < r1) load_row(r + kFusedWarps, ng, nx);  // in flight during this row
    const float mu = mean[r], rs = rstd[r];
    float sg = 0.0f, sgx = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int col = (c * 32 + lane) * V;
      if (col >= C) continue;
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const int at = e * nvec + c * 32 + lane;
        const float gye = float(vg[c].v[e]), xh = (float(vx[c].v[e]) - mu) * rs;
        const float g = gye * s_w[at];
        sg += g;
        sgx += g * xh;
        dw[at] += gye * xh;
        db[at] += gye;
      }
    }
    if (gx != nullptr) {
      const float mg = warp_sum(sg) * inv_c, mgx = warp_sum(sgx) * inv_c;
#pragma unroll
      for (int c = 0; c < kChunks; ++c) {
        const int col = (c * 32 + lane) * V;
        if (col >= C) continue;
        Vec16<T> out;
#pragma unroll
        for (int e = 0; e < V; ++e) {
          const float xh = (float(vx[c].v[e]) - mu) * rs;
          out.v[e] = T(rs * (float(vg[c].v[e]) * s_w[e * nvec + c * 32 + lane] - mg - xh * mgx));
        }
        // gx_add's vectors are read here, not with gy and x before the reductions: held across
        // them, their registers slowed the kernel (1.90 against 1.67 ms for the 25 calls of a
        // GPT-2 step on an H200).
        if (gx_add != nullptr) {
          const Vec16<T> a = *reinterpret_cast<const Vec16<T>*>(gx_add + r * C + col);
#pragma unroll
          for (int e = 0; e < V; ++e) out.v[e] = T(add_rn(float(a.v[e]), float(out.v[e])));
        }
        *reinterpret_cast<Vec16<T>*>(gx + r * C + col) = out;
      }
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      vg[c] = ng[c];
      vx[c] = nx[c];
    }
  }
  // The block's partials of gw and gb: a thread per column adds the eight warps' sums in warp
  // order.
  __syncthreads();
  for (int which = 0; which < 2; ++which) {
    float* part = which == 0 ? part_w : part_b;
    if (part == nullptr) continue;
    const float* s = sums + which * kFusedWarps * C;
    for (int col = static_cast<int>(threadIdx.x); col < C; col += kFusedWarps * 32) {
      const int at = (col % V) * nvec + col / V;
      float acc = 0.0f;
      for (int k = 0; k < kFusedWarps; ++k) acc += s[k * C + at];
      part[static_cast<int64_t>(blockIdx.x) * C + col] = acc;
    }
  }
}

// Runs f.template operator()<kChunks>() when the one-pass backward serves (T, C, the pointers);
// false otherwise.
template <class T, class F>
bool with_fused_chunks(int64_t C, std::initializer_list<const void*> ptrs, F&& f) {
  constexpr int V = kVec16<T>;
  if (C <= 0 || C > kFusedMaxC || C % V != 0) return false;
  for (const void* p : ptrs)
    if (p != nullptr && reinterpret_cast<uintptr_t>(p) % 16 != 0) return false;
  switch ((C + 32 * V - 1) / (32 * V)) {
    case 1:
      f.template operator()<1>();
      return true;
    case 2:
      f.template operator()<2>();
      return true;
    case 3:
      f.template operator()<3>();
      return true;
    case 4:
      f.template operator()<4>();
      return true;
    default:
      return false;  // float32 beyond C = 512: the registers would spill
  }
}

// Runs f.template operator()<kGroup>() with the threads per row that give each thread a few of
// the C elements: a warp up to C = 1024, then a block of 256 or 512.
template <class F>
void with_row_threads(int64_t C, F&& f) {
  if (C <= 1024) {
    f.template operator()<32>();
  } else if (C <= 4096) {
    f.template operator()<256>();
  } else {
    f.template operator()<512>();
  }
}

// The one-pass backward with its final pass over the blocks' partials; false when it does not
// serve this problem.
template <class T>
bool fused_backward(const T* gy, const T* x, const T* w, const acc_t<T>* mean, const acc_t<T>* rstd,
                    T* gx, const T* gx_add, T* gw, T* gb, int64_t rows, int64_t C,
                    cudaStream_t stream) {
  if constexpr (sizeof(T) > 4) {
    return false;  // float64 keeps the two-pass kernels
  } else {
    return with_fused_chunks<T>(C, {gy, x, w, gx, gx_add}, [&]<int kChunks>() {
      // Rows per block such that the blocks make one wave of two per SM (the kernel's occupancy):
      // a second, partial wave cost 13% at 16,384 rows on an H200 (1.52 against 1.35 ms for the 25
      // calls of a GPT-2 step with 32 rows per block; 16 and 128 rows, 1.80 and 1.87 ms). A whole
      // number of rows per warp. gw and gb sum the blocks' partials, so their bits depend on the
      // device's SM count (the same on every run of one device); gx does not.
      const int64_t rows_per_block =
          kFusedWarps * std::max<int64_t>(1, ceil_div(rows, 2 * sm_count() * kFusedWarps));
      TG_CHECK(rows_per_block <= 0x7fffffff, "layer_norm: too many rows for the GPU kernel");
      const int64_t blocks = ceil_div(rows, rows_per_block);
      TG_CHECK(blocks <= 0x7fffffff, "layer_norm: too many rows for the GPU kernel");
      const Partials<float> part(gw != nullptr, gb != nullptr, blocks * C, stream);
      const auto kernel = fused_backward_kernel<T, kChunks>;
      const int sums_bytes =
          2 * kFusedWarps * static_cast<int>(C) * static_cast<int>(sizeof(float));
      // Beyond the 48 KB a block may take by default (s_w's 4 KB count too).
      if (sums_bytes + kFusedMaxC * static_cast<int>(sizeof(float)) > 48 * 1024) {
        TG_CUDA_CHECK(
            cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, sums_bytes));
      }
      kernel<<<static_cast<unsigned>(blocks), kFusedWarps * 32, static_cast<size_t>(sums_bytes),
               stream>>>(gy, x, w, mean, rstd, gx, gx_add, part.w, part.b, rows,
                         static_cast<int>(C), 1.0f / float(C), static_cast<int>(rows_per_block));
      TG_CUDA_CHECK_LAUNCH();
      if (gw || gb) launch_final<T>(part.w, part.b, gw, gb, blocks, C, stream);
    });
  }
}

// ---- the vectorised forward

// A warp per row, for the widths the one-pass backward serves (with_fused_chunks): the row is read
// once, in 16-byte vectors held in registers, and the statistics and y come from there. Lane l
// owns the vectors l, l + 32, ... of the row, as in fused_backward_kernel. forward_kernel reads x
// three times in 2-byte loads; for GPT-2's 25 layer norms of [16384, 768] bf16 rows it took
// 0.68 ms per step on an H200 (1.85 TB/s). The sums run in another order than forward_kernel's, so
// mean and rstd may differ from its in the last bits.
template <class T, int kChunks>
__global__ void __launch_bounds__(kFusedWarps * 32)
    fused_forward_kernel(const T* __restrict__ x, const T* __restrict__ w, const T* __restrict__ b,
                         T* __restrict__ y, float* __restrict__ mean, float* __restrict__ rstd,
                         int64_t rows, int C, float eps, float inv_c) {
  constexpr int V = kVec16<T>;
  const int lane = static_cast<int>(threadIdx.x) % 32;
  const int64_t warps = static_cast<int64_t>(gridDim.x) * kFusedWarps;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kFusedWarps + threadIdx.x / 32; r < rows;
       r += warps) {
    Vec16<T> v[kChunks];
    float s = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int col = (c * 32 + lane) * V;
      if (col < C) v[c] = *reinterpret_cast<const Vec16<T>*>(x + r * C + col);
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      if ((c * 32 + lane) * V >= C) continue;
#pragma unroll
      for (int e = 0; e < V; ++e) s += float(v[c].v[e]);
    }
    const float mu = warp_sum(s) * inv_c;
    float ss = 0.0f;
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      if ((c * 32 + lane) * V >= C) continue;
#pragma unroll
      for (int e = 0; e < V; ++e) {
        const float d = float(v[c].v[e]) - mu;
        ss += d * d;
      }
    }
    const float rs = 1.0f / sqrt_acc(warp_sum(ss) * inv_c + eps);
    if (lane == 0) {
      mean[r] = mu;
      rstd[r] = rs;
    }
#pragma unroll
    for (int c = 0; c < kChunks; ++c) {
      const int col = (c * 32 + lane) * V;
      if (col >= C) continue;
      Vec16<T> wv, bv, out;
      if (w) wv = *reinterpret_cast<const Vec16<T>*>(w + col);
      if (b) bv = *reinterpret_cast<const Vec16<T>*>(b + col);
#pragma unroll
      for (int e = 0; e < V; ++e) {
        float o = (float(v[c].v[e]) - mu) * rs;
        if (w) o *= float(wv.v[e]);
        if (b) o += float(bv.v[e]);
        out.v[e] = T(o);
      }
      *reinterpret_cast<Vec16<T>*>(y + r * C + col) = out;
    }
  }
}

// The vectorised forward; false when it does not serve this problem.
template <class T>
bool fused_forward(const T* x, const T* w, const T* b, T* y, acc_t<T>* mean, acc_t<T>* rstd,
                   int64_t rows, int64_t C, double eps, cudaStream_t stream) {
  if constexpr (sizeof(T) > 4) {
    return false;  // float64 keeps forward_kernel
  } else {
    return with_fused_chunks<T>(C, {x, w, b, y}, [&]<int kChunks>() {
      const int64_t blocks = std::min(ceil_div(rows, kFusedWarps), one_wave_blocks());
      fused_forward_kernel<T, kChunks>
          <<<grid_blocks(blocks, kMaxGridBlocks), kFusedWarps * 32, 0, stream>>>(
              x, w, b, y, mean, rstd, rows, static_cast<int>(C), float(eps), 1.0f / float(C));
      TG_CUDA_CHECK_LAUNCH();
    });
  }
}

}  // namespace

void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y, void* mean,
                       void* rstd, int64_t rows, int64_t C, double eps, cudaStream_t stream) {
  dispatch_floating(dt, "layer_norm", [&]<class T>() {
    using A = acc_t<T>;
    if (rows <= 0) return;
    // As the CPU kernel: multiply by 1/C (0 for an empty row) and add eps in the accumulation type.
    const A inv_c = C > 0 ? A(1) / A(C) : A(0);
    if (fused_forward(static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b),
                      static_cast<T*>(y), static_cast<A*>(mean), static_cast<A*>(rstd), rows, C,
                      eps, stream))
      return;
    with_row_threads(C, [&]<int kGroup>() {
      const int64_t blocks = (rows + kRowsPerBlock<kGroup> - 1) / kRowsPerBlock<kGroup>;
      forward_kernel<T, kGroup>
          <<<grid_blocks(blocks, kMaxGridBlocks), kRowBlockThreads<kGroup>, 0, stream>>>(
              static_cast<const T*>(x), static_cast<const T*>(w), static_cast<const T*>(b),
              static_cast<T*>(y), static_cast<A*>(mean), static_cast<A*>(rstd), rows, C, A(eps),
              inv_c);
      TG_CUDA_CHECK_LAUNCH();
    });
  });
}

void layernorm_backward(DType dt, const void* gy, const void* x, const void* w, const void* mean,
                        const void* rstd, void* gx, void* gw, void* gb, int64_t rows, int64_t C,
                        cudaStream_t stream, const void* gx_add) {
  dispatch_floating(dt, "layer_norm", [&]<class T>() {
    using A = acc_t<T>;
    if (C <= 0) return;  // every output is empty
    const T* pgy = static_cast<const T*>(gy);
    const T* px = static_cast<const T*>(x);
    const A* pmean = static_cast<const A*>(mean);
    const A* prstd = static_cast<const A*>(rstd);
    if (rows > 0 && fused_backward(pgy, px, static_cast<const T*>(w), pmean, prstd,
                                   static_cast<T*>(gx), static_cast<const T*>(gx_add),
                                   static_cast<T*>(gw), static_cast<T*>(gb), rows, C, stream))
      return;
    if (gx && rows > 0) {
      const A inv_c = A(1) / A(C);
      with_row_threads(C, [&]<int kGroup>() {
        const int64_t blocks = (rows + kRowsPerBlock<kGroup> - 1) / kRowsPerBlock<kGroup>;
        backward_gx_kernel<T, kGroup>
            <<<grid_blocks(blocks, kMaxGridBlocks), kRowBlockThreads<kGroup>, 0, stream>>>(
                pgy, px, static_cast<const T*>(w), pmean, prstd, static_cast<T*>(gx),
                static_cast<const T*>(gx_add), rows, C, inv_c);
        TG_CUDA_CHECK_LAUNCH();
      });
    }
    if (!gw && !gb) return;

    // The partition depends on `rows` alone, so the sums are the same bits on every run and GPU.
    // With rows == 0 there is one empty partial per column, and gw = gb = 0.
    const int64_t partials = std::clamp<int64_t>((rows + kRowsPerPartial - 1) / kRowsPerPartial,
                                                 int64_t{1}, kMaxPartials);
    const int64_t per_partial = (rows + partials - 1) / partials;
    const Partials<A> part(gw != nullptr, gb != nullptr, partials * C, stream);

    const int64_t col_blocks = (C + kColThreads - 1) / kColThreads;
    TG_CHECK(col_blocks <= 0x7fffffff, "layer_norm: C = ", C, " is too large for the GPU kernel");
    const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(partials));
    backward_partial_kernel<T><<<grid, kColThreads, 0, stream>>>(pgy, px, pmean, prstd, part.w,
                                                                 part.b, rows, C, per_partial);
    TG_CUDA_CHECK_LAUNCH();
    launch_final<T>(part.w, part.b, static_cast<T*>(gw), static_cast<T*>(gb), partials, C, stream);
  });
}

}  // namespace tilegrad::kernels::cuda
