// FlashAttention-2 backward for sm_80 and later (mma.sync tensor cores, cp.async, ldmatrix).
//
// Three launches after zeroing the dQ accumulator:
//   1. dsum = rowsum(dO ∘ O) per query row (float32), FlashAttention-2's D vector;
//   2. the main kernel: one CTA per (key block, batch, key/value head). K and V of its kBlockN keys
//      stay in shared memory, dK and dV in registers; the CTA walks every query head of the group
//      (GQA) and every query block that sees its keys, with Q, dO, lse and dsum of the next block
//      fetched by cp.async into the other of two stages. Each warp owns 16 keys and computes, for
//      its keys against all kBlockM queries of the block, the transposed products
//          Sᵀ = K Qᵀ,  Pᵀ = exp2(Sᵀ scale log2 e - lse log2 e),  dPᵀ = V dOᵀ,
//          dV += Pᵀ dO,  dSᵀ = Pᵀ ∘ (dPᵀ - dsum),  dK += dSᵀ Q
//      so that Pᵀ and dSᵀ pass from accumulators to A operands in registers. dSᵀ also goes to
//      shared memory, where the warps, now split over (query rows, head-dim halves), compute
//      dQ_block = dS K and add it to the float32 accumulator with atomics;
//   3. dq = scale * dq_accum, converted to 16 bits.
// The softmax scale is applied once to dK and dQ at the end instead of to every dS. Only the query
// blocks that see some key of the block (causal, sliding window) are visited.
//
// Dropout regenerates the forward's mask from the same Philox draws: with Z the mask and
// s = 1 / (1 - p), dV += (Pᵀ ∘ Z s) dO and dSᵀ = Pᵀ ∘ (dPᵀ ∘ Z s - dsum), where dsum = rowsum(dO ∘
// O) of the dropped output is still rowsum(P ∘ dP).
//
// Deterministic mode (semaphores != null): instead of atomics, a key block adds its dQ_block to
// the accumulator with plain loads and stores once the query block's counter says that every
// higher key block has added its own (flash_common.cuh, last_key_block), then advances the counter;
// the grid is launched in decreasing key-block order so that the blocks waited for are already
// running.
//
// Both options, and packed (varlen) batches, live in a second instantiation (kExtras), as run-time
// switches, so that their code and registers cost the default kernel nothing; dropout off there is
// an all-ones mask.
#include <cmath>
#include <type_traits>

#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_sm80.h"
#include "kernels/cuda/flash_sm90.h"

namespace tilegrad::cuda::flash {
namespace {

constexpr float kLog2e = 1.4426950408889634f;

// 8 warps of 16 keys: dK and dV (16 x D each per warp) take 2 * D / 8 float registers per lane,
// Sᵀ and dPᵀ (16 x 64) 32 each, which fits D = 128 without spilling.
template <int D>
struct BwdConfig {
  static constexpr int kBlockM = 64;
  static constexpr int kBlockN = 128;
  static constexpr int kWarps = 8;
};

template <typename T, int D, int kBlockM, int kBlockN, int kWarps, int kAtomicWidth, bool kExtras>
__global__ void __launch_bounds__(kWarps * 32, 1)
    flash_bwd_sm80_kernel(const FlashBwdParams p, float* dq_accum, const float* dsum,
                          int* semaphores) {
  using Mma = MmaOp<T>;
  constexpr int kThreads = kWarps * 32;
  constexpr int kS = kSmemStride<D>;
  constexpr int kDsStride = kBlockM + 8;  // padded like the other tiles (see kSmemStride)
  constexpr int kNT = kBlockM / 8;        // 8-query column tiles of Sᵀ
  constexpr int kDT = D / 8;              // 8-wide column tiles of dK, dV
  constexpr int kRowGroups = kBlockM / 16;
  constexpr int kDSplit = kWarps / kRowGroups;  // dQ: warps split over rows x head-dim slices
  constexpr int kDCols = D / kDSplit;
  constexpr int kQT = kDCols / 8;
  static_assert(kBlockN == 16 * kWarps, "each warp owns 16 keys");
  static_assert(kWarps % kRowGroups == 0 && D % (16 * kDSplit) == 0, "dQ warp split");
  const FlashFwdParams& f = p.fwd;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* s_k = reinterpret_cast<T*>(smem_raw);  // (kBlockN, kS)
  T* s_v = s_k + kBlockN * kS;              // (kBlockN, kS)
  T* s_q = s_v + kBlockN * kS;              // 2 stages of (kBlockM, kS)
  T* s_do = s_q + 2 * kBlockM * kS;         // 2 stages of (kBlockM, kS)
  T* s_ds = s_do + 2 * kBlockM * kS;        // (kBlockN, kDsStride): dSᵀ
  float* s_lse = reinterpret_cast<float*>(s_ds + kBlockN * kDsStride);  // 2 stages of kBlockM
  float* s_dsum = s_lse + 2 * kBlockM;                                  // 2 stages of kBlockM

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const bool deterministic = kExtras && semaphores != nullptr;
  const int n_block = deterministic ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int hkv = blockIdx.y, b = blockIdx.z;
  const int group = f.H / f.Hkv;
  const int n0 = n_block * kBlockN;
  // A packed batch's grid is sized by its longest sequence: blocks past this one's end do nothing
  // (and take no part in the deterministic order, which counts this sequence's key blocks only).
  // Packed batches run the kExtras instantiation, so that the default one keeps the lengths as
  // parameter constants (as the forward, where registers for them cost 7-8% at D = 128).
  const FlashSeq seq = kExtras ? flash_seq(f, b) : FlashSeq{b, f.Nq, f.Nk, 0, 0, false};
  if (kExtras && n0 >= seq.nk) return;
  const int nq = seq.nq, nk = seq.nk;
  const int n_key_blocks = (nk + kBlockN - 1) / kBlockN;
  const FlashBand band = flash_band(f, nq, nk);

  // The query blocks whose rows see some key of this block: [m_begin, m_begin + n_m).
  const BlockSpan m_span = query_blocks_seeing(band, n0, kBlockN, nq, nk, kBlockM);
  const int m_begin = m_span.first, n_m = m_span.count;
  const int total = group * n_m;  // (query head, query block) pairs, head-major

  const T* g_k = static_cast<const T*>(f.k) + seq.k_off(f.k_strides, hkv);
  const T* g_v = static_cast<const T*>(f.v) + seq.k_off(f.v_strides, hkv);

  auto load_query_block = [&](int it, int stage) {
    const int h = hkv * group + it / n_m;
    const int m0 = (m_begin + it % n_m) * kBlockM;
    const T* g_q = static_cast<const T*>(f.q) + seq.q_off(f.q_strides, h);
    const T* g_do = static_cast<const T*>(p.dout) + seq.q_off(p.dout_strides, h);
    load_tile_async<kBlockM, D, kS, kThreads>(s_q + stage * kBlockM * kS, g_q, f.q_strides.row, m0,
                                              nq, tid);
    load_tile_async<kBlockM, D, kS, kThreads>(s_do + stage * kBlockM * kS, g_do, p.dout_strides.row,
                                              m0, nq, tid);
    if (tid < kBlockM) {
      const int64_t row0 = flash_stat_row(f, seq, h);
      const bool valid = m0 + tid < nq;
      cp_async_4(s_lse + stage * kBlockM + tid, f.lse + (valid ? row0 + m0 + tid : 0), valid);
      cp_async_4(s_dsum + stage * kBlockM + tid, dsum + (valid ? row0 + m0 + tid : 0), valid);
    }
  };

  float r_dk[kDT][4], r_dv[kDT][4];
#pragma unroll
  for (int dt = 0; dt < kDT; ++dt) {
#pragma unroll
    for (int e = 0; e < 4; ++e) r_dk[dt][e] = r_dv[dt][e] = 0.0f;
  }

  if (total > 0) {
    load_tile_async<kBlockN, D, kS, kThreads>(s_k, g_k, f.k_strides.row, n0, nk, tid);
    load_tile_async<kBlockN, D, kS, kThreads>(s_v, g_v, f.v_strides.row, n0, nk, tid);
    load_query_block(0, 0);
  }
  cp_async_commit();

  const float scale_log2 = f.softmax_scale * kLog2e;
  const int key_row0 = warp * 16;  // this warp's keys within the block
  [[maybe_unused]] const Dropout drop(f);
  [[maybe_unused]] const bool dropout_on = f.dropout_p > 0.0;
  const int wm = warp % kRowGroups, wn = warp / kRowGroups;
  // Byte addresses of this lane's ldmatrix rows; the loops add constant offsets.
  constexpr int kE = sizeof(T);
  const uint32_t s_k_a = smem_addr(s_k) + (key_row0 * kS + a_operand_offset<kS>(lane)) * kE;
  const uint32_t s_v_a = smem_addr(s_v) + (key_row0 * kS + a_operand_offset<kS>(lane)) * kE;
  const uint32_t s_q_b = smem_addr(s_q) + b_operand_offset<kS>(lane) * kE;
  const uint32_t s_do_b = smem_addr(s_do) + b_operand_offset<kS>(lane) * kE;
  const uint32_t s_q_bt = smem_addr(s_q) + b_trans_offset<kS>(lane) * kE;
  const uint32_t s_do_bt = smem_addr(s_do) + b_trans_offset<kS>(lane) * kE;
  // dQ: A = dS from dSᵀ (stored keys x queries, read transposed), B = K rows read transposed.
  const uint32_t s_ds_at = smem_addr(s_ds) + (wm * 16 + b_operand_offset<kDsStride>(lane)) * kE;
  const uint32_t s_k_bt = smem_addr(s_k) + (wn * kDCols + b_trans_offset<kS>(lane)) * kE;

  for (int it = 0; it < total; ++it) {
    const int stage = it & 1;
    // The other stage was last read before the previous iteration's second barrier: free.
    if (it + 1 < total) load_query_block(it + 1, stage ^ 1);
    cp_async_commit();
    cp_async_wait<1>();
    __syncthreads();

    const int h = hkv * group + it / n_m;
    const int m0 = (m_begin + it % n_m) * kBlockM;
    const uint32_t stage_off = stage * kBlockM * kS * kE;
    const uint32_t s_qt_b = s_q_b + stage_off, s_dot_b = s_do_b + stage_off;
    const uint32_t s_qt_bt = s_q_bt + stage_off, s_dot_bt = s_do_bt + stage_off;
    const float* s_lset = s_lse + stage * kBlockM;
    const float* s_dsumt = s_dsum + stage * kBlockM;

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ (16 keys x kBlockM queries per warp).
    float r_s[kNT][4], r_dp[kNT][4];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) r_s[nt][e] = r_dp[nt][e] = 0.0f;
    }
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t r_ak[4], r_av[4];
      ldsm_x4(r_ak, s_k_a, ks * 16 * kE);
      ldsm_x4(r_av, s_v_a, ks * 16 * kE);
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        const uint32_t b_off = (np * 16 * kS + ks * 16) * kE;
        uint32_t r_bq[4], r_bdo[4];
        ldsm_x4(r_bq, s_qt_b, b_off);
        ldsm_x4(r_bdo, s_dot_b, b_off);
        Mma::run(r_s[2 * np], r_ak, r_bq[0], r_bq[1]);
        Mma::run(r_s[2 * np + 1], r_ak, r_bq[2], r_bq[3]);
        Mma::run(r_dp[2 * np], r_av, r_bdo[0], r_bdo[1]);
        Mma::run(r_dp[2 * np + 1], r_av, r_bdo[2], r_bdo[3]);
      }
    }

    // Pᵀ from the forward's lse; masked entries (keys past Nk, queries past Nq, outside the band)
    // are 0. A query that saw no key (lse = -inf) is outside the band for every key, so its
    // exp2(+inf) is replaced too.
    const int k_first = n0 + key_row0, k_last = k_first + 15;
    const bool need_mask = n0 + kBlockN > nk || m0 + kBlockM > nq || k_last > m0 + band.hi ||
                           k_first < m0 + kBlockM - 1 + band.lo;
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int q_local = nt * 8 + 2 * t + (e & 1);
        float pv = fast_exp2(fmaf(r_s[nt][e], scale_log2, -s_lset[q_local] * kLog2e));
        if (need_mask) {
          const int key = n0 + key_row0 + g + (e >> 1) * 8;
          const int q = m0 + q_local;
          if (key >= nk || q >= nq || !band.visible(q, key)) pv = 0.0f;
        }
        r_s[nt][e] = pv;
      }
    }
    // The dropout mask of this thread's elements: bit 4 nt + e (KeepMask).
    [[maybe_unused]] KeepMask<kNT> keep = {};
    if constexpr (kExtras) {
      keep.draw(drop, f, dropout_on, b * f.H + h, m0 + 2 * t, n0 + key_row0 + g);
    }
    // What dV reads: Pᵀ ∘ Z s under dropout.
    auto p_dropped = [&](int nt, int e) {
      if constexpr (kExtras) {
        return keep.kept(4 * nt + e) ? r_s[nt][e] * drop.scale : 0.0f;
      } else {
        return r_s[nt][e];
      }
    };

    // dV += Pᵀ dO (A = Pᵀ from registers, B = dO rows read transposed).
#pragma unroll
    for (int kq = 0; kq < kBlockM / 16; ++kq) {
      uint32_t r_a[4];
      r_a[0] = Mma::pack(p_dropped(2 * kq, 0), p_dropped(2 * kq, 1));
      r_a[1] = Mma::pack(p_dropped(2 * kq, 2), p_dropped(2 * kq, 3));
      r_a[2] = Mma::pack(p_dropped(2 * kq + 1, 0), p_dropped(2 * kq + 1, 1));
      r_a[3] = Mma::pack(p_dropped(2 * kq + 1, 2), p_dropped(2 * kq + 1, 3));
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t r_b[4];
        ldsm_x4_trans(r_b, s_dot_bt, (kq * 16 * kS + dp * 16) * kE);
        Mma::run(r_dv[2 * dp], r_a, r_b[0], r_b[1]);
        Mma::run(r_dv[2 * dp + 1], r_a, r_b[2], r_b[3]);
      }
    }

    // dSᵀ = Pᵀ ∘ (dPᵀ - dsum), kept in r_dp; its 16-bit copy goes to shared memory for dQ.
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float dp = r_dp[nt][e];
        if constexpr (kExtras) dp = keep.kept(4 * nt + e) ? dp * drop.scale : 0.0f;
        r_dp[nt][e] = r_s[nt][e] * (dp - s_dsumt[nt * 8 + 2 * t + (e & 1)]);
      }
      T* s_row = s_ds + (key_row0 + g) * kDsStride + nt * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(s_row) = Mma::pack(r_dp[nt][0], r_dp[nt][1]);
      *reinterpret_cast<uint32_t*>(s_row + 8 * kDsStride) = Mma::pack(r_dp[nt][2], r_dp[nt][3]);
    }

    // dK += dSᵀ Q.
#pragma unroll
    for (int kq = 0; kq < kBlockM / 16; ++kq) {
      uint32_t r_a[4];
      r_a[0] = Mma::pack(r_dp[2 * kq][0], r_dp[2 * kq][1]);
      r_a[1] = Mma::pack(r_dp[2 * kq][2], r_dp[2 * kq][3]);
      r_a[2] = Mma::pack(r_dp[2 * kq + 1][0], r_dp[2 * kq + 1][1]);
      r_a[3] = Mma::pack(r_dp[2 * kq + 1][2], r_dp[2 * kq + 1][3]);
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t r_b[4];
        ldsm_x4_trans(r_b, s_qt_bt, (kq * 16 * kS + dp * 16) * kE);
        Mma::run(r_dk[2 * dp], r_a, r_b[0], r_b[1]);
        Mma::run(r_dk[2 * dp + 1], r_a, r_b[2], r_b[3]);
      }
    }
    __syncthreads();  // dSᵀ complete in shared memory

    // dQ_block = dS K (kBlockM x D): warp (wm, wn) owns rows 16 wm.. and columns kDCols wn..;
    // A = dS read transposed from dSᵀ, B = K rows read transposed.
    float r_dq[kQT][4];
#pragma unroll
    for (int nt = 0; nt < kQT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) r_dq[nt][e] = 0.0f;
    }
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t r_a[4];
      ldsm_x4_trans(r_a, s_ds_at, kk * 16 * kDsStride * kE);
#pragma unroll
      for (int np = 0; np < kQT / 2; ++np) {
        uint32_t r_b[4];
        ldsm_x4_trans(r_b, s_k_bt, (kk * 16 * kS + np * 16) * kE);
        Mma::run(r_dq[2 * np], r_a, r_b[0], r_b[1]);
        Mma::run(r_dq[2 * np + 1], r_a, r_b[2], r_b[3]);
      }
    }
    // Add dQ_block to the float32 accumulator. kAtomicWidth 1 and 2 add a lane's own pairs; with
    // 4, lanes t and t ^ 1 swap half their pairs so that each holds four neighbouring columns of
    // one row (row g for even t, g + 8 for odd t): half the reductions again, for two shuffles.
    float* g_dqa = dq_accum + flash_stat_row(f, seq, h) * D;
    const int col0 = wn * kDCols;
    if (deterministic) {
      // Alone on this query block's accumulator rows, in key-block order: plain read-add-write
      // (L2, .cg), then the counter passes it to the next key block.
      int* sem = dq_semaphore(semaphores, f, b, h, m0);
      if (tid == 0) {
        sem_wait(sem, last_key_block(band, m0, kBlockM, kBlockN, n_key_blocks) - n_block);
      }
      __syncthreads();
#pragma unroll
      for (int nt = 0; nt < kQT; ++nt) {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = m0 + wm * 16 + g + half * 8;
          if (row < nq) {
            float2* at = reinterpret_cast<float2*>(g_dqa + static_cast<int64_t>(row) * D + col0 +
                                                   nt * 8 + 2 * t);
            float2 acc = __ldcg(at);
            acc.x += r_dq[nt][2 * half];
            acc.y += r_dq[nt][2 * half + 1];
            __stcg(at, acc);
          }
        }
      }
      __threadfence();
      __syncthreads();
      if (tid == 0) {
        sem_signal(sem, last_key_block(band, m0, kBlockM, kBlockN, n_key_blocks) - n_block + 1);
      }
      continue;
    }
#pragma unroll
    for (int nt = 0; nt < kQT; ++nt) {
      if constexpr (kAtomicWidth == 4) {
        const bool odd = t & 1;
        const float x0 = __shfl_xor_sync(0xffffffffu, odd ? r_dq[nt][0] : r_dq[nt][2], 1);
        const float x1 = __shfl_xor_sync(0xffffffffu, odd ? r_dq[nt][1] : r_dq[nt][3], 1);
        const int row = m0 + wm * 16 + g + (odd ? 8 : 0);
        const float v[4] = {odd ? x0 : r_dq[nt][0], odd ? x1 : r_dq[nt][1], odd ? r_dq[nt][2] : x0,
                            odd ? r_dq[nt][3] : x1};
        if (row < nq) {
          red_add<4>(g_dqa + static_cast<int64_t>(row) * D + col0 + nt * 8 + 2 * (t & ~1), v);
        }
      } else {
#pragma unroll
        for (int half = 0; half < 2; ++half) {
          const int row = m0 + wm * 16 + g + half * 8;
          if (row < nq) {
            float* g_at = g_dqa + static_cast<int64_t>(row) * D + col0 + nt * 8 + 2 * t;
            if constexpr (kAtomicWidth == 2) {
              red_add<2>(g_at, {r_dq[nt][2 * half], r_dq[nt][2 * half + 1]});
            } else {
              red_add<1>(g_at, {r_dq[nt][2 * half]});
              red_add<1>(g_at + 1, {r_dq[nt][2 * half + 1]});
            }
          }
        }
      }
    }
    // No barrier here: the next iteration writes s_ds only after its first barrier, and its
    // cp.async targets the stage that this iteration finished reading before the barrier above.
  }

  // dK (scaled) and dV, 16 bits; keys past Nk are not written. A key block that no query sees
  // (causal, Nq < Nk) writes zeros.
  T* g_dk = static_cast<T*>(p.dk) + seq.k_off(p.dk_strides, hkv);
  T* g_dv = static_cast<T*>(p.dv) + seq.k_off(p.dv_strides, hkv);
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int key = n0 + key_row0 + g + half * 8;
    if (key < nk) {
      T* g_dkrow = g_dk + key * p.dk_strides.row + 2 * t;
      T* g_dvrow = g_dv + key * p.dv_strides.row + 2 * t;
#pragma unroll
      for (int dt = 0; dt < kDT; ++dt) {
        *reinterpret_cast<uint32_t*>(g_dkrow + dt * 8) = Mma::pack(
            r_dk[dt][2 * half] * f.softmax_scale, r_dk[dt][2 * half + 1] * f.softmax_scale);
        *reinterpret_cast<uint32_t*>(g_dvrow + dt * 8) =
            Mma::pack(r_dv[dt][2 * half], r_dv[dt][2 * half + 1]);
      }
    }
  }
}

// The backward at D = 256. The kernel above keeps a warp's 16 keys x D of dK and dV in registers:
// 2 x 128 floats per lane at D = 256, more than a thread has. Here, as in FlashAttention-2's
// hdim-256 backward, the warps split each product differently and Pᵀ and dSᵀ pass through shared
// memory: one CTA of 8 warps per (64 keys, key/value head, batch) and 64-query blocks;
//   Sᵀ, dPᵀ (64 x 64): warp (wk, wq) of 4 x 2 takes keys 16 wk.., queries 32 wq..;
//   dV += Pᵀ dO, dK += dSᵀ Q (64 x 256): warp (wn, wd) of 2 x 4 takes keys 32 wn.., columns 64
//   wd..,
//     so dK and dV cost 64 + 64 accumulator registers per lane;
//   dQ_block = dS K (64 x 256): warp (wm, wd) of 2 x 4 takes queries 32 wm.., columns 64 wd...
// The 2 x 4 splits read fewer operand bytes per mma than 4 x 2 would (an A tile feeds 8 column
// tiles). Shared memory: K, V, Q, dO (64 x 264 each, 33 KB) and Pᵀ, dSᵀ (64 x 72): 150 KB, one CTA
// per SM. Q, dO, lse and dsum have kQStages stages: one where the device's shared memory ends near
// 163 KB (A100): the next block's fetch is issued once dV and dK have read them and runs under
// dQ's product and reductions only; two where 217 KB fit (H100, H200): the next block's fetch is
// issued at the top of the iteration into the other stage and runs under the whole block, and the
// barrier that guarded the single stage before the fetch goes. The deterministic mode is a
// run-time switch here (one instantiation per type and stage count); no dropout
// (flash_attention_check rejects it at D = 256).
template <int D, int kQStages>
constexpr int wide_bwd_smem_bytes(int elem_bytes) {
  // K, V; kQStages x (Q, dO); Pᵀ, dSᵀ (64 x 72 each); kQStages x (lse, dsum), float.
  return ((2 + 2 * kQStages) * 64 * kSmemStride<D> + 2 * 64 * 72) * elem_bytes +
         kQStages * 2 * 64 * 4;
}
template <typename T, int D, int kQStages>
__global__ void __launch_bounds__(256, 1)
    flash_bwd_sm80_wide_kernel(const FlashBwdParams p, float* dq_accum, const float* dsum,
                               int* semaphores) {
  static_assert(kQStages == 1 || kQStages == 2, "one or two query-block stages");
  using Mma = MmaOp<T>;
  constexpr int kBlockM = 64, kBlockN = 64, kThreads = 256;
  constexpr int kS = kSmemStride<D>;
  constexpr int kPS = kBlockM + 8;  // Pᵀ and dSᵀ rows, padded like the other tiles
  constexpr int kDW = D / 4;        // columns of dK, dV and dQ per warp
  constexpr int kDT = kDW / 8;
  constexpr int kE = sizeof(T);
  const FlashFwdParams& f = p.fwd;

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* s_k = reinterpret_cast<T*>(smem_raw);                        // (kBlockN, kS)
  T* s_v = s_k + kBlockN * kS;                                    // (kBlockN, kS)
  T* s_q = s_v + kBlockN * kS;                                    // kQStages x (kBlockM, kS)
  T* s_do = s_q + kQStages * kBlockM * kS;                        // kQStages x (kBlockM, kS)
  T* s_p = s_do + kQStages * kBlockM * kS;                        // (kBlockN, kPS): Pᵀ
  T* s_ds = s_p + kBlockN * kPS;                                  // (kBlockN, kPS): dSᵀ
  float* s_lse = reinterpret_cast<float*>(s_ds + kBlockN * kPS);  // kQStages x kBlockM
  float* s_dsum = s_lse + kQStages * kBlockM;                     // kQStages x kBlockM

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  const bool deterministic = semaphores != nullptr;
  const int n_block = deterministic ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int hkv = blockIdx.y, b = blockIdx.z;
  const int group = f.H / f.Hkv;
  const int n0 = n_block * kBlockN;
  const FlashSeq seq = flash_seq(f, b);
  if (n0 >= seq.nk) return;
  const int nq = seq.nq, nk = seq.nk;
  const int n_key_blocks = (nk + kBlockN - 1) / kBlockN;
  const FlashBand band = flash_band(f, nq, nk);

  // The query blocks whose rows see some key of this block: [m_begin, m_begin + n_m).
  const BlockSpan m_span = query_blocks_seeing(band, n0, kBlockN, nq, nk, kBlockM);
  const int m_begin = m_span.first, n_m = m_span.count;
  const int total = group * n_m;

  const T* g_k = static_cast<const T*>(f.k) + seq.k_off(f.k_strides, hkv);
  const T* g_v = static_cast<const T*>(f.v) + seq.k_off(f.v_strides, hkv);
  // Query block `it` (its Q, dO, lse and dsum) into stage it % kQStages.
  auto load_query_block = [&](int it) {
    const int h = hkv * group + it / n_m;
    const int m0 = (m_begin + it % n_m) * kBlockM;
    const int stage = it % kQStages;
    const T* g_q = static_cast<const T*>(f.q) + seq.q_off(f.q_strides, h);
    const T* g_do = static_cast<const T*>(p.dout) + seq.q_off(p.dout_strides, h);
    load_tile_async<kBlockM, D, kS, kThreads>(s_q + stage * kBlockM * kS, g_q, f.q_strides.row, m0,
                                              nq, tid);
    load_tile_async<kBlockM, D, kS, kThreads>(s_do + stage * kBlockM * kS, g_do, p.dout_strides.row,
                                              m0, nq, tid);
    if (tid < kBlockM) {
      const int64_t row0 = flash_stat_row(f, seq, h);
      const bool valid = m0 + tid < nq;
      cp_async_4(s_lse + stage * kBlockM + tid, f.lse + (valid ? row0 + m0 + tid : 0), valid);
      cp_async_4(s_dsum + stage * kBlockM + tid, dsum + (valid ? row0 + m0 + tid : 0), valid);
    }
  };

  // Warp roles of the three splits.
  const int wk = warp % 4, wq = warp / 4;  // Sᵀ, dPᵀ: 16 keys x 32 queries
  const int wn = warp % 2, wd = warp / 2;  // dV, dK: 32 keys x kDW columns; dQ: 32 queries x kDW
  const int key_s = wk * 16, q_s = wq * 32;
  float r_dk[2][kDT][4], r_dv[2][kDT][4];
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) r_dk[mt][dt][e] = r_dv[mt][dt][e] = 0.0f;
    }
  }

  if (total > 0) {
    load_tile_async<kBlockN, D, kS, kThreads>(s_k, g_k, f.k_strides.row, n0, nk, tid);
    load_tile_async<kBlockN, D, kS, kThreads>(s_v, g_v, f.v_strides.row, n0, nk, tid);
    load_query_block(0);
  }
  cp_async_commit();

  const float scale_log2 = f.softmax_scale * kLog2e;
  // Byte addresses of this lane's ldmatrix rows; the loops add constant offsets.
  const uint32_t s_k_a = smem_addr(s_k) + (key_s * kS + a_operand_offset<kS>(lane)) * kE;
  const uint32_t s_v_a = smem_addr(s_v) + (key_s * kS + a_operand_offset<kS>(lane)) * kE;
  const uint32_t s_q_b = smem_addr(s_q) + (q_s * kS + b_operand_offset<kS>(lane)) * kE;
  const uint32_t s_do_b = smem_addr(s_do) + (q_s * kS + b_operand_offset<kS>(lane)) * kE;
  const uint32_t s_p_a = smem_addr(s_p) + (wn * 32 * kPS + a_operand_offset<kPS>(lane)) * kE;
  const uint32_t s_ds_a = smem_addr(s_ds) + (wn * 32 * kPS + a_operand_offset<kPS>(lane)) * kE;
  const uint32_t s_do_bt = smem_addr(s_do) + (wd * kDW + b_trans_offset<kS>(lane)) * kE;
  const uint32_t s_q_bt = smem_addr(s_q) + (wd * kDW + b_trans_offset<kS>(lane)) * kE;
  // dQ: A = dS read transposed from dSᵀ (queries 32 wn..), B = K rows read transposed.
  const uint32_t s_ds_at = smem_addr(s_ds) + (wn * 32 + b_operand_offset<kPS>(lane)) * kE;
  const uint32_t s_k_bt = smem_addr(s_k) + (wd * kDW + b_trans_offset<kS>(lane)) * kE;

  for (int it = 0; it < total; ++it) {
    cp_async_wait<0>();
    // This block's Q, dO, lse, dsum landed; the last dQ's reads of dSᵀ are done; with two stages,
    // the other stage's last reads (the previous block's) are done too.
    __syncthreads();
    if constexpr (kQStages == 2) {
      if (it + 1 < total) load_query_block(it + 1);
      cp_async_commit();
    }
    const int h = hkv * group + it / n_m;
    const int m0 = (m_begin + it % n_m) * kBlockM;
    const int stage = it % kQStages;
    const uint32_t stage_off = stage * kBlockM * kS * kE;
    const float* s_lset = s_lse + stage * kBlockM;
    const float* s_dsumt = s_dsum + stage * kBlockM;

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ: 16 keys x 32 queries per warp.
    float r_s[4][4], r_dp[4][4];
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) r_s[nt][e] = r_dp[nt][e] = 0.0f;
    }
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t r_ak[4], r_av[4];
      ldsm_x4(r_ak, s_k_a, ks * 16 * kE);
      ldsm_x4(r_av, s_v_a, ks * 16 * kE);
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        const uint32_t b_off = (np * 16 * kS + ks * 16) * kE;
        uint32_t r_bq[4], r_bdo[4];
        ldsm_x4(r_bq, s_q_b + stage_off, b_off);
        ldsm_x4(r_bdo, s_do_b + stage_off, b_off);
        Mma::run(r_s[2 * np], r_ak, r_bq[0], r_bq[1]);
        Mma::run(r_s[2 * np + 1], r_ak, r_bq[2], r_bq[3]);
        Mma::run(r_dp[2 * np], r_av, r_bdo[0], r_bdo[1]);
        Mma::run(r_dp[2 * np + 1], r_av, r_bdo[2], r_bdo[3]);
      }
    }

    // Pᵀ and dSᵀ = Pᵀ ∘ (dPᵀ - dsum) to shared memory in 16 bits (masks as in the kernel above).
    const int k_first = n0 + key_s, k_last = k_first + 15;
    const int q_first = m0 + q_s, q_last = q_first + 31;
    const bool need_mask = n0 + kBlockN > nk || m0 + kBlockM > nq || k_last > q_first + band.hi ||
                           k_first < q_last + band.lo;
#pragma unroll
    for (int nt = 0; nt < 4; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        const int q_local = q_s + nt * 8 + 2 * t + (e & 1);
        float pv = fast_exp2(fmaf(r_s[nt][e], scale_log2, -s_lset[q_local] * kLog2e));
        if (need_mask) {
          const int key = k_first + g + (e >> 1) * 8;
          const int q = m0 + q_local;
          if (key >= nk || q >= nq || !band.visible(q, key)) pv = 0.0f;
        }
        r_s[nt][e] = pv;
        r_dp[nt][e] = pv * (r_dp[nt][e] - s_dsumt[q_local]);
      }
      const int off = (key_s + g) * kPS + q_s + nt * 8 + 2 * t;
      *reinterpret_cast<uint32_t*>(s_p + off) = Mma::pack(r_s[nt][0], r_s[nt][1]);
      *reinterpret_cast<uint32_t*>(s_p + off + 8 * kPS) = Mma::pack(r_s[nt][2], r_s[nt][3]);
      *reinterpret_cast<uint32_t*>(s_ds + off) = Mma::pack(r_dp[nt][0], r_dp[nt][1]);
      *reinterpret_cast<uint32_t*>(s_ds + off + 8 * kPS) = Mma::pack(r_dp[nt][2], r_dp[nt][3]);
    }
    __syncthreads();  // Pᵀ and dSᵀ complete

    // dV += Pᵀ dO and dK += dSᵀ Q: A from Pᵀ / dSᵀ rows, B = dO / Q rows read transposed.
#pragma unroll
    for (int kq = 0; kq < kBlockM / 16; ++kq) {
      uint32_t r_ap[2][4], r_ads[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        ldsm_x4(r_ap[mt], s_p_a, (mt * 16 * kPS + kq * 16) * kE);
        ldsm_x4(r_ads[mt], s_ds_a, (mt * 16 * kPS + kq * 16) * kE);
      }
#pragma unroll
      for (int dp = 0; dp < kDT / 2; ++dp) {
        const uint32_t b_off = (kq * 16 * kS + dp * 16) * kE;
        uint32_t r_bdo[4], r_bq[4];
        ldsm_x4_trans(r_bdo, s_do_bt + stage_off, b_off);
        ldsm_x4_trans(r_bq, s_q_bt + stage_off, b_off);
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          Mma::run(r_dv[mt][2 * dp], r_ap[mt], r_bdo[0], r_bdo[1]);
          Mma::run(r_dv[mt][2 * dp + 1], r_ap[mt], r_bdo[2], r_bdo[3]);
          Mma::run(r_dk[mt][2 * dp], r_ads[mt], r_bq[0], r_bq[1]);
          Mma::run(r_dk[mt][2 * dp + 1], r_ads[mt], r_bq[2], r_bq[3]);
        }
      }
    }
    if constexpr (kQStages == 1) {
      __syncthreads();  // Q and dO read by every warp: the next block's fetch may overwrite them
      if (it + 1 < total) load_query_block(it + 1);
      cp_async_commit();
    }

    // dQ_block = dS K: 32 queries x kDW columns per warp.
    float r_dq[2][kDT][4];
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kDT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) r_dq[mt][nt][e] = 0.0f;
      }
    }
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      uint32_t r_a[2][4];
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
        ldsm_x4_trans(r_a[mt], s_ds_at, (kk * 16 * kPS + mt * 16) * kE);
      }
#pragma unroll
      for (int np = 0; np < kDT / 2; ++np) {
        uint32_t r_b[4];
        ldsm_x4_trans(r_b, s_k_bt, (kk * 16 * kS + np * 16) * kE);
#pragma unroll
        for (int mt = 0; mt < 2; ++mt) {
          Mma::run(r_dq[mt][2 * np], r_a[mt], r_b[0], r_b[1]);
          Mma::run(r_dq[mt][2 * np + 1], r_a[mt], r_b[2], r_b[3]);
        }
      }
    }
    float* g_dqa = dq_accum + flash_stat_row(f, seq, h) * D;
    const int col0 = wd * kDW;
    if (deterministic) {  // as in the kernel above: plain adds in key-block order
      int* sem = dq_semaphore(semaphores, f, b, h, m0);
      const int turn = last_key_block(band, m0, kBlockM, kBlockN, n_key_blocks) - n_block;
      if (tid == 0) sem_wait(sem, turn);
      __syncthreads();
#pragma unroll
      for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kDT; ++nt) {
#pragma unroll
          for (int half = 0; half < 2; ++half) {
            const int row = m0 + wn * 32 + mt * 16 + g + half * 8;
            if (row < nq) {
              float2* at = reinterpret_cast<float2*>(g_dqa + static_cast<int64_t>(row) * D + col0 +
                                                     nt * 8 + 2 * t);
              float2 acc = __ldcg(at);
              acc.x += r_dq[mt][nt][2 * half];
              acc.y += r_dq[mt][nt][2 * half + 1];
              __stcg(at, acc);
            }
          }
        }
      }
      __threadfence();
      __syncthreads();
      if (tid == 0) sem_signal(sem, turn + 1);
      continue;
    }
    // Lanes t and t ^ 1 swap half their pairs so that each adds four neighbouring columns.
#pragma unroll
    for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kDT; ++nt) {
        const bool odd = t & 1;
        const float x0 = __shfl_xor_sync(0xffffffffu, odd ? r_dq[mt][nt][0] : r_dq[mt][nt][2], 1);
        const float x1 = __shfl_xor_sync(0xffffffffu, odd ? r_dq[mt][nt][1] : r_dq[mt][nt][3], 1);
        const int row = m0 + wn * 32 + mt * 16 + g + (odd ? 8 : 0);
        const float v[4] = {odd ? x0 : r_dq[mt][nt][0], odd ? x1 : r_dq[mt][nt][1],
                            odd ? r_dq[mt][nt][2] : x0, odd ? r_dq[mt][nt][3] : x1};
        if (row < nq) {
          red_add<4>(g_dqa + static_cast<int64_t>(row) * D + col0 + nt * 8 + 2 * (t & ~1), v);
        }
      }
    }
  }

  // dK (scaled) and dV, 16 bits; keys past the sequence's end are not written.
  T* g_dk = static_cast<T*>(p.dk) + seq.k_off(p.dk_strides, hkv);
  T* g_dv = static_cast<T*>(p.dv) + seq.k_off(p.dv_strides, hkv);
#pragma unroll
  for (int mt = 0; mt < 2; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int key = n0 + wn * 32 + mt * 16 + g + half * 8;
      if (key < nk) {
        T* g_dkrow = g_dk + key * p.dk_strides.row + wd * kDW + 2 * t;
        T* g_dvrow = g_dv + key * p.dv_strides.row + wd * kDW + 2 * t;
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          *reinterpret_cast<uint32_t*>(g_dkrow + dt * 8) =
              Mma::pack(r_dk[mt][dt][2 * half] * f.softmax_scale,
                        r_dk[mt][dt][2 * half + 1] * f.softmax_scale);
          *reinterpret_cast<uint32_t*>(g_dvrow + dt * 8) =
              Mma::pack(r_dv[mt][dt][2 * half], r_dv[mt][dt][2 * half + 1]);
        }
      }
    }
  }
}

// dsum[b, h, i] = Σ_d dO[b, i, h, d] O[b, i, h, d]: D / 8 threads per row, 16-byte loads.
template <typename T, int D>
__global__ void __launch_bounds__(128) flash_bwd_dsum_kernel(const FlashBwdParams p, float* dsum) {
  using Mma = MmaOp<T>;
  constexpr int kLanesPerRow = D / 8;
  static_assert(32 % kLanesPerRow == 0, "a row's lanes sit in one warp");
  const FlashFwdParams& f = p.fwd;
  // Rows (b, h, i) of lse's layout; a packed batch's are (h, token), read here as b = 0, i = token.
  const int64_t rows = flash_stat_rows(f);
  const int q_rows = flash_q_rows(f);
  const int64_t r =
      static_cast<int64_t>(blockIdx.x) * (128 / kLanesPerRow) + threadIdx.x / kLanesPerRow;
  const int c = (threadIdx.x % kLanesPerRow) * 8;
  float sum = 0.0f;
  if (r < rows) {
    const int i = static_cast<int>(r % q_rows);
    const int64_t bh = r / q_rows;
    const int h = static_cast<int>(bh % f.H), b = static_cast<int>(bh / f.H);
    const T* g_do = static_cast<const T*>(p.dout) + b * p.dout_strides.batch +
                    i * p.dout_strides.row + h * p.dout_strides.head + c;
    const T* g_o = static_cast<const T*>(f.o) + b * f.o_strides.batch + i * f.o_strides.row +
                   h * f.o_strides.head + c;
    const uint4 u_do = *reinterpret_cast<const uint4*>(g_do);
    const uint4 u_o = *reinterpret_cast<const uint4*>(g_o);
    const uint32_t w_do[4] = {u_do.x, u_do.y, u_do.z, u_do.w};
    const uint32_t w_o[4] = {u_o.x, u_o.y, u_o.z, u_o.w};
#pragma unroll
    for (int k = 0; k < 4; ++k) {
      const float2 a = Mma::unpack(w_do[k]), o = Mma::unpack(w_o[k]);
      sum = fmaf(a.x, o.x, fmaf(a.y, o.y, sum));
    }
  }
#pragma unroll
  for (int off = kLanesPerRow / 2; off > 0; off /= 2) sum += __shfl_xor_sync(0xffffffffu, sum, off);
  if (r < rows && threadIdx.x % kLanesPerRow == 0) dsum[r] = sum;
}

// dq[b, i, h, :] = scale * dq_accum[b, h, i, :] in 16 bits, 8 elements per thread; swizzled: the
// accumulator's rows are in the Hopper kernel's layout (dq_accum_col), which keeps 8-float groups
// whole.
template <typename T, int D>
__global__ void __launch_bounds__(256)
    flash_bwd_convert_dq_kernel(const FlashBwdParams p, const float* dq_accum, bool swizzled) {
  using Mma = MmaOp<T>;
  const FlashFwdParams& f = p.fwd;
  const int64_t chunks = flash_stat_rows(f) * (D / 8);  // rows as in the dsum kernel
  const int q_rows = flash_q_rows(f);
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (idx >= chunks) return;
  const int64_t r = idx / (D / 8);
  const int c = static_cast<int>(idx % (D / 8)) * 8;
  const int i = static_cast<int>(r % q_rows);
  const int64_t bh = r / q_rows;
  const int h = static_cast<int>(bh % f.H), b = static_cast<int>(bh / f.H);
  const float4* src =
      reinterpret_cast<const float4*>(dq_accum + r * D + (swizzled ? dq_accum_col(i, c) : c));
  const float4 lo = src[0], hi = src[1];
  const float s = f.softmax_scale;
  uint4 out;
  out.x = Mma::pack(lo.x * s, lo.y * s);
  out.y = Mma::pack(lo.z * s, lo.w * s);
  out.z = Mma::pack(hi.x * s, hi.y * s);
  out.w = Mma::pack(hi.z * s, hi.w * s);
  T* g_dq = static_cast<T*>(p.dq) + b * p.dq_strides.batch + i * p.dq_strides.row +
            h * p.dq_strides.head + c;
  *reinterpret_cast<uint4*>(g_dq) = out;
}

}  // namespace

template <typename T, int D>
cudaError_t run_flash_bwd_sm80(const FlashBwdParams& p, float* dq_accum, float* dsum,
                               cudaStream_t stream, const BwdOptions& opt) {
  using Cfg = BwdConfig<D>;
  const int atomic_width = opt.atomic_width;
  if (opt.hopper_main && atomic_width != 4) return cudaErrorInvalidValue;
  const FlashFwdParams& f = p.fwd;
  const int64_t rows = flash_stat_rows(f);
  const bool dropout = f.dropout_p > 0.0;

  // Dropout, the deterministic mode and packed batches run in a separate instantiation (kExtras).
  const bool extras = dropout || opt.semaphores != nullptr || f.cu_seqlens_q != nullptr;
  void (*kernel)(const FlashBwdParams, float*, const float*, int*) = nullptr;
  // The main kernel's shared memory and keys per CTA (the Hopper main kernel sets its own); both
  // main kernels run 256 threads.
  int smem = 0, block_n = 0;
  if constexpr (D == 256) {
    // Its own kernel (above), deterministic as a run-time switch; no dropout, no ablations; the
    // Hopper main kernel is flash_bwd_sm90_wide.cu's (one bulk dQ reduction per block does not fit
    // there). Its stage count is chosen below, where it runs.
    if (dropout || atomic_width != 4 || (opt.hopper_main && !opt.hopper_bulk_dq)) {
      return cudaErrorInvalidValue;
    }
    block_n = 64;
  } else {
    kernel = extras
                 ? flash_bwd_sm80_kernel<T, D, Cfg::kBlockM, Cfg::kBlockN, Cfg::kWarps, 4, true>
                 : flash_bwd_sm80_kernel<T, D, Cfg::kBlockM, Cfg::kBlockN, Cfg::kWarps, 4, false>;
    constexpr int kS = kSmemStride<D>;
    smem = static_cast<int>(
        ((2 * Cfg::kBlockN + 4 * Cfg::kBlockM) * kS + Cfg::kBlockN * (Cfg::kBlockM + 8)) *
            sizeof(T) +
        4 * Cfg::kBlockM * sizeof(float));
    block_n = Cfg::kBlockN;
    static_assert(Cfg::kWarps * 32 == 256, "both main kernels run 256 threads");
  }
  // The ablations exist for bf16 at D = 128 only, to keep the build short.
  if (atomic_width != 4 && extras) return cudaErrorInvalidValue;
  if constexpr (std::is_same_v<T, __nv_bfloat16> && D == 128) {
    if (atomic_width == 2) {
      kernel = flash_bwd_sm80_kernel<T, D, Cfg::kBlockM, Cfg::kBlockN, Cfg::kWarps, 2, false>;
    } else if (atomic_width == 1) {
      kernel = flash_bwd_sm80_kernel<T, D, Cfg::kBlockM, Cfg::kBlockN, Cfg::kWarps, 1, false>;
    }
  } else if (atomic_width != 4) {
    return cudaErrorInvalidValue;
  }

  cudaError_t err = cudaMemsetAsync(dq_accum, 0, rows * D * sizeof(float), stream);
  if (err != cudaSuccess) return err;
  if (opt.semaphores != nullptr) {
    err = cudaMemsetAsync(opt.semaphores, 0, opt.n_semaphores * sizeof(int), stream);
    if (err != cudaSuccess) return err;
  }

  constexpr int kRowsPerDsumBlock = 128 / (D / 8);
  flash_bwd_dsum_kernel<T, D>
      <<<static_cast<unsigned>((rows + kRowsPerDsumBlock - 1) / kRowsPerDsumBlock), 128, 0,
         stream>>>(p, dsum);
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;

  // The Hopper kernel launches nothing and says cudaErrorNotSupported when the copy engine cannot
  // describe the operands; this kernel then runs instead.
  bool hopper_main = opt.hopper_main;
  if (hopper_main) {
    if constexpr (D == 256) {
      err = run_flash_bwd_sm90_wide<T>(p, dq_accum, dsum, opt.semaphores, stream);
    } else {
      err = run_flash_bwd_sm90_main<T, D>(p, dq_accum, dsum, opt.semaphores, stream,
                                          opt.hopper_bulk_dq);
    }
    if (err == cudaErrorNotSupported) {
      hopper_main = false;
    } else if (err != cudaSuccess) {
      return err;
    }
  }
  if (!hopper_main) {
    if constexpr (D == 256) {
      // Two query-block stages where the device's shared memory holds them.
      int optin = 0;
      err = current_device_attribute(cudaDevAttrMaxSharedMemoryPerBlockOptin, &optin);
      if (err != cudaSuccess) return err;
      constexpr int kTwoStages = wide_bwd_smem_bytes<D, 2>(static_cast<int>(sizeof(T)));
      if (optin >= kTwoStages) {
        kernel = flash_bwd_sm80_wide_kernel<T, D, 2>;
        smem = kTwoStages;
      } else {
        kernel = flash_bwd_sm80_wide_kernel<T, D, 1>;
        smem = wide_bwd_smem_bytes<D, 1>(static_cast<int>(sizeof(T)));
      }
    }
    err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
    if (err != cudaSuccess) return err;
    const dim3 grid((f.Nk + block_n - 1) / block_n, f.Hkv, f.B);
    kernel<<<grid, 256, smem, stream>>>(p, dq_accum, dsum, opt.semaphores);
    err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }

  const int64_t chunks = rows * (D / 8);
  flash_bwd_convert_dq_kernel<T, D>
      <<<static_cast<unsigned>((chunks + 255) / 256), 256, 0, stream>>>(p, dq_accum, hopper_main);
  return cudaGetLastError();
}

template cudaError_t run_flash_bwd_sm80<__nv_bfloat16, 64>(const FlashBwdParams&, float*, float*,
                                                           cudaStream_t, const BwdOptions&);
template cudaError_t run_flash_bwd_sm80<__nv_bfloat16, 128>(const FlashBwdParams&, float*, float*,
                                                            cudaStream_t, const BwdOptions&);
template cudaError_t run_flash_bwd_sm80<__half, 64>(const FlashBwdParams&, float*, float*,
                                                    cudaStream_t, const BwdOptions&);
template cudaError_t run_flash_bwd_sm80<__half, 128>(const FlashBwdParams&, float*, float*,
                                                     cudaStream_t, const BwdOptions&);
template cudaError_t run_flash_bwd_sm80<__nv_bfloat16, 256>(const FlashBwdParams&, float*, float*,
                                                            cudaStream_t, const BwdOptions&);
template cudaError_t run_flash_bwd_sm80<__half, 256>(const FlashBwdParams&, float*, float*,
                                                     cudaStream_t, const BwdOptions&);

}  // namespace tilegrad::cuda::flash
