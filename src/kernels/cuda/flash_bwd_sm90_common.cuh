// What the Hopper (sm_90a) backward kernels share (flash_bwd_sm90.cu at D = 64 and 128,
// flash_bwd_sm90_wide.cu at D = 256): the operand fetches (a CTA's K and V once, then each query
// block's Q and dO into one of two stages, by bulk tensor copies (TMA) that one thread issues, with
// lse and dsum by cp.async; tiles of kChunks boxes of 64 columns, chunk_bytes apart, rows past the
// sequence arriving as zeros), Pᵀ from Sᵀ with its mask, dQ's per-thread reductions, and the
// final dK and dV stores. Fragments are wgmma's accumulator layout (flash_common_sm90.cuh): the
// thread holds keys key0 + g and key0 + g + 8 (Sᵀ, dK, dV) or queries row0 + g, + 8 (dQ), columns
// 8 j + 2 t and + 1. Callers guard their kernel bodies with __CUDA_ARCH_FEAT_SM90_ALL.
#pragma once

#include <cuda.h>

#include <cstdint>

#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_common_sm90.cuh"
#include "kernels/cuda/flash_tma.h"

namespace tilegrad::cuda::flash {

// ---- operand fetches

// Query block m0 of head h into a stage (s_q, s_do, s_lse, s_dsum): thread 0 issues Q's and dO's
// copies, which complete on `bar` with its one arrival; threads 0 .. kBlockM - 1 fetch lse and
// dsum (zeros past Nq).
template <int kChunks, int kBlockM>
__device__ __forceinline__ void bwd_fetch_query_block(
    const CUtensorMap* tm_q, const CUtensorMap* tm_do, const BwdMaps& maps, const FlashFwdParams& f,
    const float* dsum, int b, int h, int m0, uint32_t s_q, uint32_t s_do, uint32_t chunk_bytes,
    float* s_lse, float* s_dsum, uint32_t bar, int tid) {
  if (tid == 0) {
    int cq[3], cdo[3];
    maps.q.coords(m0, h, b, cq);
    maps.dout.coords(m0, h, b, cdo);
    mbar_arrive_expect_tx(bar, 2 * kChunks * chunk_bytes);
    tma_load_tile<kChunks>(s_q, chunk_bytes, tm_q, cq, bar);
    tma_load_tile<kChunks>(s_do, chunk_bytes, tm_do, cdo, bar);
  }
  if (tid < kBlockM) {
    const int64_t row0 = (static_cast<int64_t>(b) * f.H + h) * f.Nq;
    const bool valid = m0 + tid < f.Nq;
    cp_async_4(s_lse + tid, f.lse + (valid ? row0 + m0 + tid : 0), valid);
    cp_async_4(s_dsum + tid, dsum + (valid ? row0 + m0 + tid : 0), valid);
  }
}

// The walk's start: the two stages' barriers (at bar0 and bar0 + 8) initialised by thread 0; then,
// when the CTA has query blocks (total > 0), K and V of keys n0 .. of key/value head hkv, which
// complete on stage 0's barrier with the first query block (load_query_block(0, 0)), whose fetch
// makes the phase's one arrival.
template <int kChunks, typename LoadQueryBlock>
__device__ __forceinline__ void bwd_start_walk(const CUtensorMap* tm_k, const CUtensorMap* tm_v,
                                               const BwdMaps& maps, int b, int hkv, int n0,
                                               uint32_t s_k, uint32_t s_v, uint32_t chunk_bytes,
                                               uint32_t bar0, int total, int tid,
                                               LoadQueryBlock&& load_query_block) {
  if (tid == 0) {
    mbar_init(bar0, 1);
    mbar_init(bar0 + 8, 1);
    mbar_init_fence();
  }
  __syncthreads();
  if (total > 0) {
    if (tid == 0) {
      int ck[3], cv[3];
      maps.k.coords(n0, hkv, b, ck);
      maps.v.coords(n0, hkv, b, cv);
      mbar_expect_tx(bar0, 2 * kChunks * chunk_bytes);
      tma_load_tile<kChunks>(s_k, chunk_bytes, tm_k, ck, bar0);
      tma_load_tile<kChunks>(s_v, chunk_bytes, tm_v, cv, bar0);
    }
    load_query_block(0, 0);
  }
  cp_async_commit();
}

// Pᵀ = exp2(Sᵀ · scale · log2(e) - lse · log2(e)) over 8 kNT queries from m0 (s_lse2: lse ·
// log2(e) of the block), then the mask where the block needs one (the causal diagonal, window
// edges, the last blocks of ragged lengths): each of the thread's two keys sees the queries m0 + 2
// t
// + c for c in [c_lo, c_hi], so an element costs two compares and a select, and only here (written
// as per-element tests inside the exp2 loop, the compiler evaluated them for every block under a
// predicate, a third of the loop's instructions at D = 64). key0: the warp's first key; block_n:
// the CTA's keys from n0.
template <int kNT>
__device__ __forceinline__ void bwd_probabilities(float (&r)[4 * kNT], const float* s_lse2,
                                                  float scale_log2, const FlashFwdParams& f,
                                                  const FlashBand& band, int n0, int block_n,
                                                  int key0, int m0, int g, int t) {
  constexpr int kBlockM = 8 * kNT;
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int q_local = nt * 8 + 2 * t + (e & 1);
      r[4 * nt + e] = fast_exp2(fmaf(r[4 * nt + e], scale_log2, -s_lse2[q_local]));
    }
  }
  const int k_last = key0 + 15;
  const bool need_mask = n0 + block_n > f.Nk || m0 + kBlockM > f.Nq || k_last > m0 + band.hi ||
                         key0 < m0 + kBlockM - 1 + band.lo;
  if (need_mask) {
    int c_lo[2], c_hi[2];
#pragma unroll
    for (int i = 0; i < 2; ++i) {
      const int key = key0 + g + 8 * i;
      c_lo[i] = key - band.hi - m0 - 2 * t;
      c_hi[i] = key < f.Nk ? min(key - band.lo, f.Nq - 1) - m0 - 2 * t : -1;
    }
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int c = nt * 8 + (e & 1);
        if (c < c_lo[e >> 1] || c > c_hi[e >> 1]) r[4 * nt + e] = 0.0f;
      }
    }
  }
}

// Adds a dQ fragment of 8 kNT columns from col0, rows row0 + g and + 8 of one (batch, head)'s
// accumulator g_dqa (D columns, dq_accum_col's layout), with red.v4: lanes t and t ^ 1 swap half
// their pairs so that each adds four neighbouring columns of one row. Rows from nq on are skipped.
template <int D, int kNT>
__device__ __forceinline__ void bwd_red_dq(const float (&r_dq)[4 * kNT], float* g_dqa, int row0,
                                           int col0, int nq, int g, int t) {
  const bool odd = t & 1;
  const int row = row0 + g + (odd ? 8 : 0);
#pragma unroll
  for (int nt = 0; nt < kNT; ++nt) {
    const float* c = r_dq + 4 * nt;
    const float x0 = __shfl_xor_sync(0xffffffffu, odd ? c[0] : c[2], 1);
    const float x1 = __shfl_xor_sync(0xffffffffu, odd ? c[1] : c[3], 1);
    const float v[4] = {odd ? x0 : c[0], odd ? x1 : c[1], odd ? c[2] : x0, odd ? c[3] : x1};
    if (row < nq) {
      red_add<4>(
          g_dqa + static_cast<int64_t>(row) * D + dq_accum_col(row, col0 + nt * 8 + 2 * (t & ~1)),
          v);
    }
  }
}

// dK (times the softmax scale) and dV of keys key0 + g and + 8, 8 kDT columns from col0, to 16-bit
// global memory; keys from Nk on are skipped.
template <typename T, int kDT>
__device__ __forceinline__ void bwd_store_dk_dv(const FlashBwdParams& p,
                                                const float (&r_dk)[4 * kDT],
                                                const float (&r_dv)[4 * kDT], int b, int hkv,
                                                int key0, int col0, int g, int t) {
  using Mma = MmaOp<T>;
  const FlashFwdParams& f = p.fwd;
  T* g_dk = static_cast<T*>(p.dk) + b * p.dk_strides.batch + hkv * p.dk_strides.head;
  T* g_dv = static_cast<T*>(p.dv) + b * p.dv_strides.batch + hkv * p.dv_strides.head;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = key0 + g + half * 8;
    if (key < f.Nk) {
      T* g_dkrow = g_dk + key * p.dk_strides.row + col0 + 2 * t;
      T* g_dvrow = g_dv + key * p.dv_strides.row + col0 + 2 * t;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        *reinterpret_cast<uint32_t*>(g_dkrow + dt * 8) =
            Mma::pack(r_dk[4 * dt + 2 * half] * f.softmax_scale,
                      r_dk[4 * dt + 2 * half + 1] * f.softmax_scale);
        *reinterpret_cast<uint32_t*>(g_dvrow + dt * 8) =
            Mma::pack(r_dv[4 * dt + 2 * half], r_dv[4 * dt + 2 * half + 1]);
      }
    }
  }
}

}  // namespace tilegrad::cuda::flash
