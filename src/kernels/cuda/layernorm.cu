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
// vector's elements and at most 1,024, or 512 for float32) takes one pass instead: two warps per
// row read gy and x once, write gx, and add the row's gw and gb terms to their pair's sums in
// shared memory (each thread owns the same columns in every row); at the end a block adds its
// pairs' sums in pair order, one partial per block, and the final pass adds the blocks' partials in
// order. The rows a block and a pair take depend on `rows` alone, so the sums are still the same
// bits on every run. The same way, the kernel can sum the gx it writes by column (gx_sum: a
// transformer's projection takes them for its bias gradient, autograd/grad_col_sums.h).
#include "kernels/cuda/layernorm.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <initializer_list>

#include "cuda/check.h"
#include "kernels/cuda/column_sums.cuh"
#include "kernels/cuda/kernel_common.cuh"

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

// kGroup threads per row: ĝ = gy ⊙ w; gx = rstd · (ĝ - mean(ĝ) - x̂ · mean(ĝ ⊙ x̂)). v, mean and b
// as LayerNormSaved's.
template <class T, int kGroup>
__global__ void __launch_bounds__(kRowBlockThreads<kGroup>)
    backward_gx_kernel(const T* __restrict__ gy, const T* __restrict__ v, const T* __restrict__ w,
                       const T* __restrict__ b, bool from_output, const acc_t<T>* __restrict__ mean,
                       const acc_t<T>* __restrict__ rstd, T* __restrict__ gx,
                       const T* __restrict__ gx_add, int64_t rows, int64_t C, acc_t<T> inv_c) {
  using A = acc_t<T>;
  __shared__ A s_red[32];
  const int t = threadIdx.x % kGroup;
  for (int64_t r = static_cast<int64_t>(blockIdx.x) * kRowsPerBlock<kGroup> + threadIdx.x / kGroup;
       r < rows; r += static_cast<int64_t>(gridDim.x) * kRowsPerBlock<kGroup>) {
    const T* gr = gy + r * C;  // (C)
    const T* vr = v + r * C;   // (C)
    const A mu = from_output ? A(0) : mean[r], rs = rstd[r];
    A sg = 0, sgx = 0;
    for (int64_t j = t; j < C; j += kGroup) {
      const A g = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
      sg += g;
      sgx += g * layernorm_xhat<A>(from_output, vr[j], mu, rs, w, b, j);
    }
    const A mg = group_reduce<kGroup, SumOp>(sg, s_red) * inv_c;
    const A mgx = group_reduce<kGroup, SumOp>(sgx, s_red) * inv_c;
    T* gxr = gx + r * C;                                         // (C)
    const T* ar = gx_add != nullptr ? gx_add + r * C : nullptr;  // (C)
    for (int64_t j = t; j < C; j += kGroup) {
      const A g = w ? A(gr[j]) * A(w[j]) : A(gr[j]);
      const A xh = layernorm_xhat<A>(from_output, vr[j], mu, rs, w, b, j);
      const T o = T(rs * (g - mg - xh * mgx));
      gxr[j] = ar != nullptr ? T(add_rn(A(ar[j]), A(o))) : o;
    }
  }
}

// Thread (row block blockIdx.y, column j): Σ gy ⊙ x̂, Σ gy and Σ gx over the block's rows, in row
// order, into part_w / part_b / part_s [partials, C] (any may be null; part_s reads gx, which an
// earlier kernel wrote). v, w, b, mean as backward_gx_kernel's.
template <class T>
__global__ void __launch_bounds__(kColThreads)
    backward_partial_kernel(const T* __restrict__ gy, const T* __restrict__ v,
                            const T* __restrict__ w, const T* __restrict__ b, bool from_output,
                            const acc_t<T>* __restrict__ mean, const acc_t<T>* __restrict__ rstd,
                            const T* __restrict__ gx, acc_t<T>* __restrict__ part_w,
                            acc_t<T>* __restrict__ part_b, acc_t<T>* __restrict__ part_s,
                            int64_t rows, int64_t C, int64_t per_partial) {
  using A = acc_t<T>;
  const int64_t j = static_cast<int64_t>(blockIdx.x) * kColThreads + threadIdx.x;
  if (j >= C) return;
  const int64_t blk = blockIdx.y;
  const int64_t r0 = blk * per_partial < rows ? blk * per_partial : rows;
  const int64_t r1 = r0 + per_partial < rows ? r0 + per_partial : rows;
  A sw = 0, sb = 0, ss = 0;
#pragma unroll 4
  for (int64_t r = r0; r < r1; ++r) {
    if (part_s) ss += A(gx[r * C + j]);
    if (!part_w && !part_b) continue;
    const A g = A(gy[r * C + j]);
    sb += g;
    if (part_w) {
      const A mu = from_output ? A(0) : mean[r];
      sw += g * layernorm_xhat<A>(from_output, v[r * C + j], mu, rstd[r], w, b, j);
    }
  }
  if (part_w) part_w[blk * C + j] = sw;
  if (part_b) part_b[blk * C + j] = sb;
  if (part_s) part_s[blk * C + j] = ss;
}

// ---- the one-pass backward

constexpr int kFusedWarps = 8;
constexpr int kFusedMaxC = 1024;  // the widest row the one-pass kernels take (s_w's size)

// Two warps share a row. A warp per row kept the row's gy and x, and the next row's, in one warp's
// registers: 125 of them for bf16 at C = 768, so two blocks fit on an SM, and with 16 warps the SM
// could not hide its loads' latency (the 25 calls of a GPT-2 step took 1.45 ms on an H100; this
// kernel 1.23 ms). Here each thread holds half as many elements. A pair takes its rows two at a
// time (rows_step in the kernel), which needs 80 registers: three blocks, 24 warps, per SM.
//
// The lanes of a pair hold 4-element vectors (8 bytes of a 16-bit type, 16 of float32) so that
// C = 768 splits evenly: 192 vectors, three per thread. Pair lane p = half · 32 + lane owns vectors
// c · 64 + p for chunk c < kPC (those below C / 4): a warp's loads stay 256 or 512 contiguous
// bytes, and a partial last chunk falls to half 0 first.
//
// The row's Σ ĝ and Σ ĝ ⊙ x̂ need both halves: each warp sums its own with shuffles, the pair swaps
// the two through shared memory behind a barrier of its 64 threads, and both warps add half 0 +
// half 1, so both hold the same bits. w and the gw/gb terms live in shared memory: the kernel uses
// all 80 registers without them, and a thread's 12 columns at C = 768 would add 36 (24 for the
// sums alone). They are stored by column: a lane's four columns are one 16-byte word, so one
// instruction moves them and a warp's lanes read 512 contiguous bytes (no bank conflicts). A
// pair's two warps own disjoint columns, so the sums take a row per pair, not per warp:
// [2, kPairs, C], 32 KB at C = 1024, so that three blocks fit the shared memory of an SM of sm_80
// (164 KB) or sm_90.
constexpr int kPairs = kFusedWarps / 2;  // warp pairs per block; pair k is warps 2k and 2k + 1
constexpr int kPairVec = 4;              // elements per vector
constexpr int kPairBlocksPerSm = 3;      // the kernel's occupancy, which its bound asks of ptxas

// with_fused_chunks's kChunks (chunks of 32 · kVec16<T> columns) as chunks of the pair's
// 64 · kPairVec columns: the same for 16-bit types, half (rounded up) for float32.
template <class T, int kChunks>
constexpr int kPairChunks = (kChunks * 32 * kVec16<T> + 64 * kPairVec - 1) / (64 * kPairVec);

// A vector of kPairVec elements of T as 32-bit words. Held as Vec<4, T>, 16-bit elements were
// kept one to a register (ptxas split the struct into 16-bit values): 24 registers for a row's gy
// and x at C = 768 instead of 12, which spilled at the bound of 64.
template <class T>
struct alignas(kPairVec * sizeof(T)) PairWords {
  uint32_t w[kPairVec * sizeof(T) / 4];
};

// Element e of v, as float.
template <class T>
__device__ __forceinline__ float pair_elem(const PairWords<T>& v, int e) {
  if constexpr (sizeof(T) == 4) {
    return __uint_as_float(v.w[e]);
  } else {
    T t;
    t.bits = static_cast<uint16_t>(v.w[e / 2] >> (16 * (e % 2)));
    return float(t);
  }
}

// T(f[e]) for each element, two to a conversion for 16-bit T (packed_pair).
template <class T>
__device__ __forceinline__ PairWords<T> pair_pack(const float (&f)[kPairVec]) {
  PairWords<T> v;
#pragma unroll
  for (int e = 0; e < kPairVec; e += 2) {
    if constexpr (sizeof(T) == 4) {
      v.w[e] = __float_as_uint(f[e]);
      v.w[e + 1] = __float_as_uint(f[e + 1]);
    } else {
      v.w[e / 2] = packed_pair<T>(f[e], f[e + 1]);
    }
  }
  return v;
}

// Waits for the 64 threads of warp pair `pair` only, at barrier 1 + pair (barrier 0 is
// __syncthreads). The ids are immediates: with the id in a register ptxas counts all 16 barriers
// as used, and an SM has 64 for its resident blocks (cuda_occupancy.h, sm_80 and sm_90), which
// would cap the kernel at four blocks per SM (it had four before it took two rows at a time); this
// way it uses 5. The branch is uniform over each warp. The clobber keeps the compiler from moving
// shared-memory accesses across the barrier.
template <int kId>
__device__ __forceinline__ void bar_sync_64() {
  asm volatile("bar.sync %0, 64;" ::"n"(kId) : "memory");
}
__device__ __forceinline__ void pair_barrier(int pair) {
  static_assert(kPairs == 4, "one case per pair");
  switch (pair) {
    case 0:
      bar_sync_64<1>();
      break;
    case 1:
      bar_sync_64<2>();
      break;
    case 2:
      bar_sync_64<3>();
      break;
    default:
      bar_sync_64<4>();
      break;
  }
}

//
// kFromY (LayerNormSaved::from_output): x holds y, and x̂ = (y − b) · (1 / w), with b and 1 / w by
// column in shared memory beside w (the column's shift and scale, where the input's are the row's
// mean and rstd); mean is not read.
//
// kSumGx: the pairs also sum the gx they write (the values rounded to T, after gx_add) by column,
// a third row of sums per pair, into part_s (Backend::layernorm_backward's gx_sum).
template <class T, int kPC, bool kFromY, bool kSumGx>
__global__ void __launch_bounds__(kFusedWarps * 32, kPairBlocksPerSm)
    fused_backward_pair_kernel(const T* __restrict__ gy, const T* __restrict__ x,
                               const T* __restrict__ w, const T* __restrict__ b,
                               const float* __restrict__ mean, const float* __restrict__ rstd,
                               T* __restrict__ gx, const T* __restrict__ gx_add,
                               float* __restrict__ part_w, float* __restrict__ part_b,
                               float* __restrict__ part_s, int64_t rows, int C, float inv_c,
                               int rows_per_block) {
  using VecW = PairWords<T>;
  using VecF = Vec<kPairVec, float>;
  // (kNumSums, kPairs, C / kPairVec) sums, then with kFromY the columns' shift b and scale 1 / w
  // (C / kPairVec each).
  constexpr int kNumSums = kSumGx ? 3 : 2;
  extern __shared__ VecF pair_sums[];
  __shared__ VecF s_w[kFusedMaxC / kPairVec];
  // The halves' (Σ ĝ, Σ ĝ ⊙ x̂) of a step's one or two rows, [pair][step parity][half]. A warp
  // writes slot (parity, half) at step k, then waits at the pair's barrier for its partner's; it
  // next writes that slot at step k + 2, after passing the barrier of step k + 1, which the partner
  // reaches only once it has read step k's slots. So one barrier per step suffices; with one slot,
  // a warp could overwrite it for the next step while its partner still reads.
  __shared__ float4 s_stat[kPairs][2][2];
  // From the unsigned thread index: shifts and masks that ptxas recomputes where a value is needed
  // again, rather than keep it in a register (from the int index, sm_80's fp16 kPC = 4 spilled
  // `half`).
  const int lane = static_cast<int>(threadIdx.x % 32u), warp = static_cast<int>(threadIdx.x / 32u);
  const int pair = static_cast<int>(threadIdx.x / 64u), half = warp % 2;
  const int pl = static_cast<int>(threadIdx.x % 64u);  // the thread's lane in its pair
  const int nvec = C / kPairVec;                       // vectors per row
  VecF* dw = pair_sums + pair * nvec;
  VecF* db = pair_sums + (kPairs + pair) * nvec;
  VecF* ds = pair_sums + (2 * kPairs + pair) * nvec;     // kSumGx only
  VecF* s_shift = pair_sums + kNumSums * kPairs * nvec;  // kFromY only
  VecF* s_scale = s_shift + nvec;
  for (int q = static_cast<int>(threadIdx.x); q < nvec; q += kFusedWarps * 32) {
    VecW wq{};
    if (w != nullptr) wq = *reinterpret_cast<const VecW*>(w + q * kPairVec);
    VecF wv;
#pragma unroll
    for (int e = 0; e < kPairVec; ++e) wv.v[e] = w != nullptr ? pair_elem(wq, e) : 1.0f;
    s_w[q] = wv;
    if constexpr (kFromY) {
      VecW bq{};
      if (b != nullptr) bq = *reinterpret_cast<const VecW*>(b + q * kPairVec);
      VecF bv, iw;
#pragma unroll
      for (int e = 0; e < kPairVec; ++e) {
        bv.v[e] = b != nullptr ? pair_elem(bq, e) : 0.0f;
        iw.v[e] = 1.0f / wv.v[e];  // inf where w is 0: x̂ is then 0 · inf, NaN
      }
      s_shift[q] = bv;
      s_scale[q] = iw;
    }
  }
  for (int q = static_cast<int>(threadIdx.x); q < kNumSums * kPairs * nvec; q += kFusedWarps * 32)
    pair_sums[q] = VecF{};
  __syncthreads();  // s_w and the sums are written
  // The pair takes rows r0 + i, i = pair, pair + kPairs, ... below n. Offsets from row r0 are int
  // (the launch checks rows_per_block · C), so a thread keeps 32-bit offsets, not 64-bit pointers.
  const int64_t r0 = static_cast<int64_t>(blockIdx.x) * rows_per_block;
  const int n = static_cast<int>(min64(rows - r0, rows_per_block));
  const T* gyb = gy + r0 * C;
  const T* xb = x + r0 * C;
  T* gxb = gx != nullptr ? gx + r0 * C : nullptr;
  const T* ab = gx_add != nullptr ? gx_add + r0 * C : nullptr;
  auto load_row = [&](int i, VecW(&g)[kPC], VecW(&xv)[kPC]) {
#pragma unroll
    for (int c = 0; c < kPC; ++c) {
      const int q = c * 64 + pl;
      if (q >= nvec) continue;
      g[c] = *reinterpret_cast<const VecW*>(gyb + (i * C + q * kPairVec));
      xv[c] = *reinterpret_cast<const VecW*>(xb + (i * C + q * kPairVec));
    }
  };
  // Column vector q's w and, from the output, its shift and scale.
  struct ColumnParams {
    VecF w, shift, scale;
  };
  auto column_params = [&](int q) {
    ColumnParams pq{s_w[q], {}, {}};
    if constexpr (kFromY) {
      pq.shift = s_shift[q];
      pq.scale = s_scale[q];
    }
    return pq;
  };
  // Row i's vectors of the thread into L2.
  auto prefetch_row = [&](const T* base, int i) {
#pragma unroll
    for (int c = 0; c < kPC; ++c) {
      const int q = c * 64 + pl;
      if (q < nvec) prefetch_l2(base + (i * C + q * kPairVec));
    }
  };
  // The pair's rows kRows at a time: i and i + kPairs. Each vector of w, of the shifts and scales
  // and of the sums is read from shared memory once for the rows together, and the pair meets
  // once: shared memory moved ~48 bytes per element with one row at a time (w, shift and scale in
  // both phases, the sums read and written), 6x what the kernel moves through DRAM, and bounded the
  // kernel with it. Each sum still adds row i's terms before row i + kPairs's, element by element,
  // as one row at a time did: with the same rows to a block, every result is the same bits.
  auto rows_step = [&]<int kRows>(int i, int parity) {
    VecW vg[kRows][kPC], vx[kRows][kPC];
    float mu[kRows], rs[kRows];
#pragma unroll
    for (int k = 0; k < kRows; ++k) {
      load_row(i + k * kPairs, vg[k], vx[k]);
      mu[k] = 0.0f;
      if constexpr (!kFromY) mu[k] = mean[r0 + i + k * kPairs];
      rs[k] = rstd[r0 + i + k * kPairs];
    }
    // The kernel waits on memory more than it computes (ncu, H200: no warp eligible in 48% of the
    // cycles, 52% of DRAM's rate): this step's gx_add, read after the pair's barrier, and the next
    // step's gy and x go to L2 now, so that those loads wait for L2 rather than DRAM. A prefetch
    // needs no registers, which the kernel has none left of to hold the values themselves.
#pragma unroll
    for (int k = 0; k < kRows; ++k) {
      if (ab != nullptr) prefetch_row(ab, i + k * kPairs);
      const int next = i + (2 + k) * kPairs;
      if (next < n) {
        prefetch_row(gyb, next);
        prefetch_row(xb, next);
      }
    }
    // x̂ of element e of vector (row k, chunk c), with the column's shift and scale (kFromY).
    auto xhat = [&](int k, int c, int e, const ColumnParams& pq) {
      if constexpr (kFromY) {
        return (pair_elem(vx[k][c], e) - pq.shift.v[e]) * pq.scale.v[e];
      } else {
        return (pair_elem(vx[k][c], e) - mu[k]) * rs[k];
      }
    };
    float sg[kRows] = {}, sgx[kRows] = {};
#pragma unroll
    for (int c = 0; c < kPC; ++c) {
      const int q = c * 64 + pl;
      if (q >= nvec) continue;
      const ColumnParams pq = column_params(q);
      VecF sw = dw[q], sb = db[q];
#pragma unroll
      for (int k = 0; k < kRows; ++k) {
#pragma unroll
        for (int e = 0; e < kPairVec; ++e) {
          const float gye = pair_elem(vg[k][c], e), xh = xhat(k, c, e, pq);
          const float g = gye * pq.w.v[e];
          sg[k] += g;
          sgx[k] += g * xh;
          sw.v[e] += gye * xh;
          sb.v[e] += gye;
        }
      }
      dw[q] = sw;
      db[q] = sb;
    }
    if (gx == nullptr) return;
    float4 mine = make_float4(0.0f, 0.0f, 0.0f, 0.0f);  // (Σ ĝ, Σ ĝ ⊙ x̂) of the rows
    mine.x = warp_sum(sg[0]);
    mine.y = warp_sum(sgx[0]);
    if constexpr (kRows == 2) {
      mine.z = warp_sum(sg[1]);
      mine.w = warp_sum(sgx[1]);
    }
    if (lane == 0) s_stat[pair][parity][half] = mine;
    pair_barrier(pair);
    const float4 h0 = s_stat[pair][parity][0], h1 = s_stat[pair][parity][1];
    const float mg[2] = {(h0.x + h1.x) * inv_c, (h0.z + h1.z) * inv_c};
    const float mgx[2] = {(h0.y + h1.y) * inv_c, (h0.w + h1.w) * inv_c};
#pragma unroll
    for (int c = 0; c < kPC; ++c) {
      const int q = c * 64 + pl;
      if (q >= nvec) continue;
      const ColumnParams pq = column_params(q);
      [[maybe_unused]] VecF sv{};
      if constexpr (kSumGx) sv = ds[q];
#pragma unroll
      for (int k = 0; k < kRows; ++k) {
        const int off = (i + k * kPairs) * C + q * kPairVec;
        float o[kPairVec];
#pragma unroll
        for (int e = 0; e < kPairVec; ++e) {
          o[e] = rs[k] * (pair_elem(vg[k][c], e) * pq.w.v[e] - mg[k] - xhat(k, c, e, pq) * mgx[k]);
        }
        VecW out = pair_pack<T>(o);
        // gx_add is read here, not with gy and x: held across the reductions, its registers
        // slowed the warp-per-row kernel (1.90 against 1.67 ms for the 25 calls of a GPT-2 step,
        // H200).
        if (ab != nullptr) {
          const VecW a = *reinterpret_cast<const VecW*>(ab + off);
#pragma unroll
          for (int e = 0; e < kPairVec; ++e) o[e] = add_rn(pair_elem(a, e), pair_elem(out, e));
          out = pair_pack<T>(o);
        }
        *reinterpret_cast<VecW*>(gxb + off) = out;
        if constexpr (kSumGx) {
#pragma unroll
          for (int e = 0; e < kPairVec; ++e) sv.v[e] += pair_elem(out, e);
        }
      }
      if constexpr (kSumGx) ds[q] = sv;
    }
  };
  // Both warps of a pair take the same rows, so they meet at the same barriers.
  int i = pair, parity = 0;
  for (; i + kPairs < n; i += 2 * kPairs, parity ^= 1) rows_step.template operator()<2>(i, parity);
  if (i < n) rows_step.template operator()<1>(i, parity);
  // The block's partials of gw, gb (and gx): a thread per vector of columns adds the pairs' sums
  // in pair order.
  __syncthreads();
  for (int which = 0; which < kNumSums; ++which) {
    float* part = which == 0 ? part_w : which == 1 ? part_b : part_s;
    if (part == nullptr) continue;
    const VecF* s = pair_sums + which * kPairs * nvec;
    for (int q = static_cast<int>(threadIdx.x); q < nvec; q += kFusedWarps * 32) {
      VecF acc = s[q];
      for (int k = 1; k < kPairs; ++k) {
        const VecF v = s[k * nvec + q];
#pragma unroll
        for (int e = 0; e < kPairVec; ++e) acc.v[e] += v.v[e];
      }
      *reinterpret_cast<VecF*>(part + static_cast<int64_t>(blockIdx.x) * C + q * kPairVec) = acc;
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
      return false;  // float32 beyond C = 512: the two-pass kernels
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

// The one-pass backward (fused_backward_pair_kernel) with its final pass over the blocks'
// partials; false when it does not serve this problem. gx_sum (null, or [C] with gx) is made here
// when the kernel's shared memory has room for its sums (GPT-2's C = 768 has), and then set to
// null; otherwise it is left to the caller.
template <class T>
bool fused_backward(const T* gy, const LayerNormSaved& saved, const T* w, T* gx, const T* gx_add,
                    T* gw, T* gb, T*& gx_sum, int64_t rows, int64_t C, cudaStream_t stream) {
  if constexpr (sizeof(T) > 4) {
    return false;  // float64 keeps the two-pass kernels
  } else {
    const T* v = static_cast<const T*>(saved.v);
    const T* b = saved.from_output ? static_cast<const T*>(saved.b) : nullptr;
    return with_fused_chunks<T>(C, {gy, v, w, b, gx, gx_add}, [&]<int kChunks>() {
      // Rows per block such that the blocks make one wave at the kernel's occupancy: a second,
      // partial wave cost 13% at 16,384 rows (H200, the warp-per-row kernel before this one). A
      // whole number of rows per warp pair. gw and gb sum the blocks' partials, so their bits
      // depend on the device's SM count (the same on every run of one device); gx does not.
      const int64_t rows_per_block =
          kPairs * std::max<int64_t>(1, ceil_div(rows, kPairBlocksPerSm * sm_count() * kPairs));
      // The kernel's offsets from a block's first row are int.
      TG_CHECK(rows_per_block * C <= 0x7fffffff, "layer_norm: too many rows for the GPU kernel");
      const int64_t blocks = ceil_div(rows, rows_per_block);
      TG_CHECK(blocks <= 0x7fffffff, "layer_norm: too many rows for the GPU kernel");
      // The sums, the shifts and scales, and s_w stay within the 48 KB a block may take without
      // opting in; gx's sums, a third row of sums per pair, only where they fit beside them (C up
      // to 800 from the output, 896 from the input): at three blocks per SM they take 144 KB of an
      // sm_90 SM's 228 or sm_80's 164.
      static_assert((2 * kPairs + 3) * kFusedMaxC * sizeof(float) <= 48 * 1024);
      // The dynamic shared memory with `sums` rows of sums per pair (s_w is static).
      auto smem_for = [&](int sums) {
        return (sums * kPairs + (saved.from_output ? 2 : 0)) * static_cast<size_t>(C) *
               sizeof(float);
      };
      const bool sum_gx =
          gx_sum != nullptr && smem_for(3) + kFusedMaxC * sizeof(float) <= 48 * 1024;
      const size_t smem_bytes = smem_for(sum_gx ? 3 : 2);
      // Partials of gw, gb and gx_sum: part.of[0], [1], [2].
      const ColumnPartials<T> part({gw, gb, sum_gx ? gx_sum : nullptr}, blocks, C, stream);
      auto pick = [&]<bool kFromY>() {
        return sum_gx ? fused_backward_pair_kernel<T, kPairChunks<T, kChunks>, kFromY, true>
                      : fused_backward_pair_kernel<T, kPairChunks<T, kChunks>, kFromY, false>;
      };
      auto kernel =
          saved.from_output ? pick.template operator()<true>() : pick.template operator()<false>();
      kernel<<<static_cast<unsigned>(blocks), kFusedWarps * 32, smem_bytes, stream>>>(
          gy, v, w, b, static_cast<const float*>(saved.mean), static_cast<const float*>(saved.rstd),
          gx, gx_add, part.of[0], part.of[1], part.of[2], rows, static_cast<int>(C),
          1.0f / float(C), static_cast<int>(rows_per_block));
      TG_CUDA_CHECK_LAUNCH();
      part.finish(stream, "layer_norm");
      if (sum_gx) gx_sum = nullptr;  // made
    });
  }
}

// ---- the vectorised forward

// A warp per row, for the widths the one-pass backward serves (with_fused_chunks): the row is read
// once, in 16-byte vectors held in registers, and the statistics and y come from there. Lane l
// owns the vectors l, l + 32, ... of the row. forward_kernel reads x three times in 2-byte loads;
// for GPT-2's 25 layer norms of [16384, 768] bf16 rows it took 0.68 ms per step on an H200 (1.85
// TB/s). The sums run in another order than forward_kernel's, so mean and rstd may differ from its
// in the last bits.
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

void layernorm_backward(DType dt, const void* gy, const LayerNormSaved& saved, const void* w,
                        void* gx, void* gw, void* gb, int64_t rows, int64_t C, cudaStream_t stream,
                        const void* gx_add, void* gx_sum) {
  dispatch_floating(dt, "layer_norm", [&]<class T>() {
    using A = acc_t<T>;
    if (C <= 0) return;  // every output is empty
    const T* pgy = static_cast<const T*>(gy);
    const T* pv = static_cast<const T*>(saved.v);
    const T* pw = static_cast<const T*>(w);
    const T* pb = saved.from_output ? static_cast<const T*>(saved.b) : nullptr;
    const A* pmean = static_cast<const A*>(saved.mean);
    const A* prstd = static_cast<const A*>(saved.rstd);
    T* pgx = static_cast<T*>(gx);
    T* pgw = static_cast<T*>(gw);
    T* pgb = static_cast<T*>(gb);
    T* sum_left = pgx != nullptr ? static_cast<T*>(gx_sum) : nullptr;  // gx's sums still to make
    if (rows > 0) {
      if (fused_backward(pgy, saved, pw, pgx, static_cast<const T*>(gx_add), pgw, pgb, sum_left,
                         rows, C, stream)) {
        pgw = pgb = nullptr;  // made
      } else if (pgx != nullptr) {
        const A inv_c = A(1) / A(C);
        with_row_threads(C, [&]<int kGroup>() {
          const int64_t blocks = (rows + kRowsPerBlock<kGroup> - 1) / kRowsPerBlock<kGroup>;
          backward_gx_kernel<T, kGroup>
              <<<grid_blocks(blocks, kMaxGridBlocks), kRowBlockThreads<kGroup>, 0, stream>>>(
                  pgy, pv, pw, pb, saved.from_output, pmean, prstd, pgx,
                  static_cast<const T*>(gx_add), rows, C, inv_c);
          TG_CUDA_CHECK_LAUNCH();
        });
      }
    }
    if (!pgw && !pgb && !sum_left) return;

    // The partition depends on `rows` alone, so the sums are the same bits on every run and GPU.
    // With rows == 0 there is one empty partial per column, and the sums are 0.
    const int64_t partials = std::clamp<int64_t>((rows + kRowsPerPartial - 1) / kRowsPerPartial,
                                                 int64_t{1}, kMaxPartials);
    const int64_t per_partial = (rows + partials - 1) / partials;
    const ColumnPartials<T> part({pgw, pgb, sum_left}, partials, C, stream);  // of[0..2]

    const int64_t col_blocks = (C + kColThreads - 1) / kColThreads;
    TG_CHECK(col_blocks <= 0x7fffffff, "layer_norm: C = ", C, " is too large for the GPU kernel");
    const dim3 grid(static_cast<unsigned>(col_blocks), static_cast<unsigned>(partials));
    backward_partial_kernel<T><<<grid, kColThreads, 0, stream>>>(
        pgy, pv, pw, pb, saved.from_output, pmean, prstd, pgx, part.of[0], part.of[1], part.of[2],
        rows, C, per_partial);
    TG_CUDA_CHECK_LAUNCH();
    part.finish(stream, "layer_norm");
  });
}

}  // namespace tilegrad::kernels::cuda
