// FlashAttention forward for Hopper (sm_90a): wgmma from shared memory, TMA loads completing on
// mbarriers, a producer warp and two or three consumer warpgroups (FlashAttention-3's structure).
//
// One CTA computes kBlockM = 64 x (consumer warpgroups) query rows of one (batch, head): 128 rows
// with two consumers at D = 128 and 256, 192 rows with three at D = 64 (see consumers_for), against
// key blocks of kBlockN = 128 keys (80 at D = 256, see kBlockNFor). Warpgroups:
//   warpgroup 0, the producer: gives most of its registers back (setmaxnreg) and one thread issues
//     the TMA copies: Q once, then K and V of each key block into a ring of kStages stages, each
//     stage guarded by a "full" mbarrier (the copy's bytes arrived) and an "empty" one (all
//     consumer warps are done reading it);
//   warpgroups 1 .. kConsumers, the consumers: 64 query rows each, with the registers the producer
//     freed. Per key block: S = Q Kᵀ (wgmma, Q and K from shared memory), the online softmax in
//     registers as in the sm_80 kernel, O += P V (wgmma, P from registers, V from shared memory).
// The key blocks are walked from last to first, so the masked blocks (causal diagonal, the Nk tail)
// come first, and blocks that no row of the CTA sees (above the diagonal, outside a sliding window)
// are never loaded. Dropout (kDropout) zeroes the dropped probabilities after the row sum and
// before P V, as in the sm_80 kernel. Ragged tails need no special path: TMA fills rows outside
// [0, Nq) or [0, Nk) with zeros, and the mask removes those keys and rows.
//
// When every query row sees every key (no causal mask, no window), or under a causal mask at short
// lengths (run_flash_fwd_sm90 says which), the CTAs are persistent: one per SM, each walking a
// static list of tiles of equal length (under a causal mask, pairs of a short and a long tile), the
// K/V ring and the ping-pong turns running on from one tile into the next, so that the next tile's
// Q and first K/V blocks load under the current tile's last blocks and epilogue instead of after
// the CTA's exit.
//
// Two refinements, both on by default and each removable for the benchmark (Sm90Variant):
//   overlap: a consumer issues S_next = Q K_nextᵀ, then O += P V of the current block, and does the
//     softmax of S_next while O += P V runs (P of the current block must stay in registers until
//     that product completes, so O's rescale moves after it);
//   pingpong: named barriers hand the tensor cores from one consumer to the next in turn, so that
//     the products of one overlap the softmax (exp2, max, sum) of the others.
#include <cuda.h>

#include <algorithm>
#include <cmath>
#include <type_traits>

#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_common_sm90.cuh"
#include "kernels/cuda/flash_sm90.h"
#include "kernels/cuda/flash_tiles.h"
#include "kernels/cuda/flash_tma.h"

namespace tilegrad::cuda::flash {
namespace {

constexpr int kStages = 2;  // K/V ring depth

// Keys per block: wgmma's N for S, its K for O += P V. 128, but 80 at D = 256 (FlashAttention-3's
// choice there): Q (128 rows) and two stages of K and V take (128 + 4 x 80) x 512 bytes = 224 KB
// of the 227 KB of shared memory (128-key blocks would need 320 KB), and O's accumulators take 128
// registers per thread, leaving S (40) and P (20) room in the consumers' 240. Per block, a
// consumer's fixed costs (O's rescale, 128 multiplies at D = 256; the row max's shuffles; the
// barrier waits and turn hand-overs) are spread over 80 keys: 1.02-1.12x the forward with 64-key
// blocks (H100, run L2 in docs/KERNELS.md). At D = 128 without a mask, 176-key blocks
// (FlashAttention-3's choice; 229 registers, no spills) measured 0.97-0.99x at N <= 8k: not kept.
template <int D>
inline constexpr int kBlockNFor = D == 256 ? 80 : 128;

// Consumer warpgroups per CTA, 64 query rows each (wgmma's M). D = 128 keeps two: O, S and P take
// 160 registers per thread (176 at D = 256), so only two consumers fit the register file. At D = 64
// they take 128, and a third consumer fits in 160 registers each (FlashAttention-3's 192-row tile):
// a block's products are half as long there while its softmax (exp2 on the quarter-rate unit) is
// not, so one consumer's softmax needs more than the other's products to hide under; with three in
// turn, each softmax has two other warpgroups' products to hide under, and each K/V tile serves 192
// rows instead of 128. The dropout instantiation keeps two: its Philox code needs the registers.
template <int D, bool kDropout>
constexpr int consumers_for() {
  return D == 64 && !kDropout ? 3 : 2;
}

struct Sm90Args {
  FlashFwdParams p;
  MapOrder q_order, k_order, v_order;
};

template <typename T, int D, bool kOverlap, bool kPingPong, bool kDropout, bool kPersistent,
          bool kPaired, int kConsumers = consumers_for<D, kDropout>()>
__global__ void __launch_bounds__(128 * (1 + kConsumers), 1)
    flash_fwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_q,
                          const __grid_constant__ CUtensorMap tm_k,
                          const __grid_constant__ CUtensorMap tm_v, const Sm90Args args) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(D == 64 || D == 128 || D == 256, "D = 64, 128 or 256");
  static_assert(!(kDropout && D == 256), "no dropout at D = 256");
  static_assert(!kPingPong || kOverlap, "ping-pong is built on the overlapped loop");
  static_assert(!kPersistent || (kPingPong && !kDropout), "persistent: the default kernel only");
  static_assert(!kPaired || kPersistent, "paired tiles: persistent CTAs only");
  constexpr float kLog2e = 1.4426950408889634f;
  constexpr float kLn2 = 0.6931471805599453f;
  static_assert(kConsumers == 2 || kConsumers == 3, "two or three consumer warpgroups");
  constexpr int kBlockM = 64 * kConsumers;  // query rows per CTA
  constexpr int kBlockN = kBlockNFor<D>;
  // Registers per thread after reallocation: 24 x 128 + 240 x 256 <= 64K with two consumers,
  // 24 x 128 + 160 x 384 <= 64K with three.
  constexpr int kProducerRegs = 24;
  constexpr int kConsumerRegs = kConsumers == 2 ? 240 : 160;
  using Mma = MmaOp<T>;
  constexpr int kChunks = D / kBoxCols;
  constexpr uint32_t kQChunkBytes = kBlockM * 128;  // one 64-column box of the Q tile
  constexpr uint32_t kKVChunkBytes = kBlockN * 128;
  constexpr uint32_t kQBytes = kQChunkBytes * kChunks;
  constexpr uint32_t kKVBytes = kKVChunkBytes * kChunks;
  constexpr int kNT = kBlockN / 8;  // 8-column tiles of S per warp row
  constexpr int kDT = D / 8;        // 8-column tiles of O
  const FlashFwdParams& p = args.p;

  // The swizzle pattern repeats every 1024 bytes and the descriptors assume tiles aligned to it.
  extern __shared__ unsigned char smem_raw[];
  const uint32_t s_q = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t s_k = s_q + kQBytes;             // kStages x (kChunks x kBlockN x 64)
  const uint32_t s_v = s_k + kStages * kKVBytes;  // kStages x (kChunks x kBlockN x 64)
  __shared__ __align__(8) uint64_t s_bars[2 + 4 * kStages];
  const uint32_t bar_q = smem_addr(&s_bars[0]);
  // Persistent CTAs only: all consumer warps are done with the Q tile (its last S is complete).
  const uint32_t bar_q_empty = smem_addr(&s_bars[1]);
  auto bar_k_full = [&](int s) { return smem_addr(&s_bars[2 + s]); };
  auto bar_k_empty = [&](int s) { return smem_addr(&s_bars[2 + kStages + s]); };
  auto bar_v_full = [&](int s) { return smem_addr(&s_bars[2 + 2 * kStages + s]); };
  auto bar_v_empty = [&](int s) { return smem_addr(&s_bars[2 + 3 * kStages + s]); };

  const int tid = threadIdx.x;
  const int warpgroup = tid / 128;
  const FlashBand band = flash_band(p);
  // The tiles (128 or 192 query rows of one batch and head) of this CTA. One CTA per tile: the
  // grid's (x, y, z) = (query block, head, batch). Persistent (kPersistent): gridDim.x CTAs deal
  // the tiles of a TileList (flash_tiles.h): without a mask, all tiles in order; under a causal
  // mask (kPaired), a head's last and first query blocks as one pair, its last but one and second
  // as the next, and so on, every pair of the same length (at Nq = 1024 with 192-row tiles, 8 + 1,
  // 7 + 2 and 5 + 4 key blocks). A persistent CTA loads the next tile's Q, K and V under the
  // current tile's last blocks; with one CTA per SM, a CTA per tile waits for those loads at every
  // tile (at Nq = 1024 as long as one of its key blocks). Two orders of all heads' tiles by length
  // (heaviest first, with heads in groups so that their K and V fit the L2) were slower: dealt
  // statically, unequal tiles leave some CTAs with more work, and at D = 128 the 132 CTAs at work
  // then read the K and V of as many heads, more than the L2 holds.
  const int m_blocks = tile_count(p.Nq, kBlockM);
  const TileList<kPaired> list{m_blocks, p.H * p.B, static_cast<int>(gridDim.x)};
  const int slots = kPersistent ? list.slots() : 1;
  const int first_slot = kPersistent ? list.first_slot(static_cast<int>(blockIdx.x)) : 0;
  auto next_slot = [&](int slot) { return kPersistent ? list.next_slot(slot) : slots; };
  int m_block = 0, h = 0, b = 0, hkv = 0, m0 = 0;
  // The key blocks that the tile's rows see: [n_end - n_iter, n_end), walked from the last.
  int n_end = 0, n_iter = 0;
  auto set_tile = [&](int tile) {
    if constexpr (kPersistent) {
      m_block = tile % m_blocks;
      h = (tile / m_blocks) % p.H;
      b = tile / m_blocks / p.H;
    } else {
      (void)tile;
      // Causal: the last query blocks see the most keys; start them first so they are not the tail.
      m_block = p.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
      h = blockIdx.y;
      b = blockIdx.z;
    }
    hkv = h / (p.H / p.Hkv);
    // Masked problems: the tiles end at row Nq, so a partial tile is the first, its rows above row
    // 0 padding (TMA reads them as zeros; they see no key and are never written). Under a causal
    // mask that tile sees the fewest keys, where a partial last tile would see them all: at
    // Nq = 1024 with 192-row tiles, 27 key blocks per head instead of 32.
    m0 = tile_first_row(m_block, kBlockM, p.Nq, !kPersistent || kPaired);
    n_end = 0;
    n_iter = 0;
    const int first_key = max(0, m0 + band.lo);
    const int last_key = min(p.Nk - 1, min(m0 + kBlockM, p.Nq) - 1 + band.hi);
    if (first_key <= last_key) {
      n_end = last_key / kBlockN + 1;
      n_iter = n_end - first_key / kBlockN;
    }
  };

  if (tid == 0) {
    mbar_init(bar_q, 1);
    mbar_init(bar_q_empty, kConsumers * 4);
    for (int s = 0; s < kStages; ++s) {
      mbar_init(bar_k_full(s), 1);
      mbar_init(bar_v_full(s), 1);
      mbar_init(bar_k_empty(s), kConsumers * 4);  // one arrival per consumer warp
      mbar_init(bar_v_empty(s), kConsumers * 4);
    }
    mbar_init_fence();
  }
  __syncthreads();

  if (warpgroup == 0) {
    // ---- producer
    setmaxnreg_dec<kProducerRegs>();
    if (tid != 0) return;
    // The outer coordinates (row, head, batch) of a box, in the map's dimension order.
    int c[3];
    // The K/V ring and the Q buffer run on across a persistent CTA's tiles: ring position kv + it,
    // and the tq-th tile's Q phase.
    int kv = 0, tq = 0;
    for (int slot = first_slot; slot < slots; slot = next_slot(slot)) {
      set_tile(list.tile(slot));
      if (n_iter == 0) continue;
      // The previous tile's Q is free once every consumer warp's last S of it is complete (a
      // fresh barrier's wait for parity 1 returns at once).
      if (kPersistent) mbar_wait(bar_q_empty, (tq & 1) ^ 1);
      args.q_order.coords(m0, h, b, c);
      mbar_arrive_expect_tx(bar_q, kQBytes);
      tma_load_tile<kChunks>(s_q, kQChunkBytes, &tm_q, c, bar_q);
      for (int it = 0; it < n_iter; ++it) {
        const int n0 = (n_end - 1 - it) * kBlockN;
        const int s = (kv + it) % kStages;
        const uint32_t parity = (((kv + it) / kStages) & 1) ^ 1;
        mbar_wait(bar_k_empty(s), parity);
        mbar_arrive_expect_tx(bar_k_full(s), kKVBytes);
        args.k_order.coords(n0, hkv, b, c);
        tma_load_tile<kChunks>(s_k + s * kKVBytes, kKVChunkBytes, &tm_k, c, bar_k_full(s));
        mbar_wait(bar_v_empty(s), parity);
        mbar_arrive_expect_tx(bar_v_full(s), kKVBytes);
        args.v_order.coords(n0, hkv, b, c);
        tma_load_tile<kChunks>(s_v + s * kKVBytes, kKVChunkBytes, &tm_v, c, bar_v_full(s));
      }
      kv += n_iter;
      ++tq;
    }
    return;
  }

  // ---- consumers
  setmaxnreg_inc<kConsumerRegs>();
  const int wg = warpgroup - 1;  // rows 64 wg .. 64 wg + 63 of the block
  const int wt = tid % 128;
  const int warp = wt / 32, lane = wt % 32;
  const int g = lane / 4, t = lane % 4;
  int row0 = 0;  // this warp's first row in the tile; the thread's are +g, +g+8

  float r_o[D / 2];
  float r_s[kBlockN / 2];
  uint32_t r_p[kBlockN / 16][4];
  float r_m[2], r_l[2];
#pragma unroll
  for (int i = 0; i < kBlockN / 2; ++i) r_s[i] = 0.0f;
  const float scale_log2 = p.softmax_scale * kLog2e;

  // Descriptors: Q rows of this warpgroup and a K stage (K-major), a V stage (MN-major).
  const uint64_t desc_q = smem_desc_sw128(s_q + wg * 64 * 128, 16, 1024);
  const uint64_t desc_k0 = smem_desc_sw128(s_k, 16, 1024);
  const uint64_t desc_v0 = smem_desc_sw128(s_v, kKVChunkBytes, 1024);
  // k16 step ks of the D reduction: chunk ks / 4, then 32 bytes per step inside the chunk (in the
  // descriptor's 16-byte units).
  auto qk_step = [](int ks, uint32_t chunk_bytes) {
    return static_cast<uint64_t>(((ks / 4) * chunk_bytes + (ks % 4) * 32) >> 4);
  };
  auto gemm_qk = [&](int s) {
    const uint64_t desc_k = desc_k0 + ((s * kKVBytes) >> 4);
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      Wgmma<T>::ss(r_s, desc_q + qk_step(ks, kQChunkBytes), desc_k + qk_step(ks, kKVChunkBytes),
                   ks > 0 ? 1 : 0);
    }
  };
  auto gemm_pv = [&](int s) {
    const uint64_t desc_v = desc_v0 + ((s * kKVBytes) >> 4);
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) {
      Wgmma<T>::rs(r_o, r_p[ks], desc_v + ((ks * 16 * 128) >> 4), 1);
    }
  };
  // One arrival per warp on an "empty" barrier once the warp's products that read the stage are
  // complete (after wgmma_wait).
  auto release = [&](uint32_t bar) {
    if (lane == 0) mbar_arrive(bar);
  };
  // Keys past Nk and outside the band get -inf; only blocks that straddle an edge for some row of
  // the warp pay for the test.
  auto mask = [&](int n_block) {
    const int n0 = n_block * kBlockN;
    if (n0 + kBlockN > p.Nk || n0 + kBlockN - 1 > row0 + band.hi || n0 < row0 + 15 + band.lo) {
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int row = row0 + g + (e >> 1) * 8;
          const int col = n0 + nt * 8 + 2 * t + (e & 1);
          if (col >= p.Nk || !band.visible(row, col)) r_s[4 * nt + e] = -INFINITY;
        }
      }
    }
  };
  // Online softmax of S in place (S becomes exp2(S scale log2 e - m)); returns the factors by
  // which the old O and l must be scaled and updates m and l. A row's kBlockN scores lie in the
  // four lanes of a quad: the max needs two shuffles; the sums stay per lane until the end. Without
  // fast-math the compiler keeps each float reduction in source order, so a single accumulator
  // makes a chain of kNT dependent max (and 2 kNT dependent adds) per row, whose latency the
  // softmax pays while the tensor cores wait for the next turn; four partial accumulators per row,
  // both rows' chains side by side, cut the depth fourfold.
  auto softmax = [&](float(&corr)[2]) {
    static_assert(kNT >= 4, "four partial reductions per row");
    float mx[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float part[4];
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        part[j] = fmaxf(r_s[4 * j + 2 * half], r_s[4 * j + 2 * half + 1]);
      }
#pragma unroll
      for (int nt = 4; nt < kNT; ++nt) {
        part[nt % 4] =
            fmaxf(part[nt % 4], fmaxf(r_s[4 * nt + 2 * half], r_s[4 * nt + 2 * half + 1]));
      }
      mx[half] = fmaxf(fmaxf(fmaxf(part[0], part[1]), fmaxf(part[2], part[3])), r_m[half]);
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      mx[half] = fmaxf(mx[half], __shfl_xor_sync(0xffffffffu, mx[half], 1));
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      mx[half] = fmaxf(mx[half], __shfl_xor_sync(0xffffffffu, mx[half], 2));
    }
    float m_scaled[2];
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      // A row with no visible key so far keeps m = -inf; subtract 0 then, not inf - inf.
      m_scaled[half] = mx[half] == -INFINITY ? 0.0f : mx[half] * scale_log2;
      corr[half] = fast_exp2(r_m[half] * scale_log2 - m_scaled[half]);
      r_m[half] = mx[half];
    }
    float sum[2][4] = {};
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float& sv = r_s[4 * nt + e];
        sv = fast_exp2(fmaf(sv, scale_log2, -m_scaled[e >> 1]));
        sum[e >> 1][(nt % 2) * 2 + (e & 1)] += sv;
      }
    }
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      r_l[half] =
          r_l[half] * corr[half] + ((sum[half][0] + sum[half][1]) + (sum[half][2] + sum[half][3]));
    }
  };
  // Dropout, after softmax has added the block to the row sums: zero the dropped P.
  const Dropout drop(p);
  auto dropout = [&](int n_block) {
    if constexpr (kDropout) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        const uint64_t d_row = drop.draw(p, b * p.H + h, row0 + g + half * 8, n_block * kBlockN);
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          const uint32_t keep = drop.keep2(d_row + nt * 8 + 2 * t);
          if (!(keep & 1)) r_s[4 * nt + 2 * half] = 0.0f;
          if (!(keep & 2)) r_s[4 * nt + 2 * half + 1] = 0.0f;
        }
      }
    } else {
      (void)n_block;
    }
  };
  auto rescale_o = [&](const float(&corr)[2]) {
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) r_o[4 * dt + e] *= corr[e >> 1];
    }
  };
  // P's accumulator fragments, converted to 16 bits, are the A fragments of O += P V.
  auto convert_p = [&]() {
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) {
      r_p[ks][0] = Mma::pack(r_s[8 * ks + 0], r_s[8 * ks + 1]);
      r_p[ks][1] = Mma::pack(r_s[8 * ks + 2], r_s[8 * ks + 3]);
      r_p[ks][2] = Mma::pack(r_s[8 * ks + 4], r_s[8 * ks + 5]);
      r_p[ks][3] = Mma::pack(r_s[8 * ks + 6], r_s[8 * ks + 7]);
    }
  };
  // Ping-pong: consumer wg waits on barrier 1 + wg for its turn at the tensor cores and hands the
  // turn to the next one, (wg + 1) mod kConsumers, with an arrival on its barrier once its products
  // are issued. Each barrier thus has one waiting and one arriving warpgroup per turn.
  auto turn_wait = [&]() {
    if constexpr (kPingPong) named_bar_sync(1 + wg, 2 * 128);
  };
  auto turn_pass = [&]() {
    if constexpr (kPingPong) named_bar_arrive(1 + (wg + 1) % kConsumers, 2 * 128);
  };

  // The K/V ring position and the Q phase, continued across a persistent CTA's tiles as in the
  // producer.
  int kv = 0, tq = 0;
  for (int slot = first_slot; slot < slots; slot = next_slot(slot)) {
    set_tile(list.tile(slot));
    row0 = m0 + 64 * wg + 16 * warp;
#pragma unroll
    for (int i = 0; i < D / 2; ++i) r_o[i] = 0.0f;
    r_m[0] = r_m[1] = -INFINITY;
    r_l[0] = r_l[1] = 0.0f;
    // Persistent: once the tile's last S is complete, this warp no longer reads Q.
    auto release_q = [&]() {
      if (kPersistent) release(bar_q_empty);
    };
    if (n_iter > 0) {
      mbar_wait(bar_q, tq & 1);
      if constexpr (!kOverlap) {
        for (int it = 0; it < n_iter; ++it) {
          const int s = (kv + it) % kStages;
          const uint32_t parity = ((kv + it) / kStages) & 1;
          mbar_wait(bar_k_full(s), parity);
          fence_regs(r_s);
          wgmma_fence();
          gemm_qk(s);
          wgmma_commit();
          wgmma_wait<0>();
          fence_regs(r_s);
          release(bar_k_empty(s));
          mask(n_end - 1 - it);
          float corr[2];
          softmax(corr);
          dropout(n_end - 1 - it);
          rescale_o(corr);
          convert_p();
          mbar_wait(bar_v_full(s), parity);
          fence_regs(r_o);
          fence_regs(r_p);
          wgmma_fence();
          gemm_pv(s);
          wgmma_commit();
          wgmma_wait<0>();
          fence_regs(r_o);
          fence_regs(r_p);
          release(bar_v_empty(s));
        }
      } else {
        // The first consumer takes the CTA's first turn: the last grants it.
        if (kPingPong && wg == kConsumers - 1 && tq == 0) named_bar_arrive(1, 2 * 128);
        // Prologue: S and P of the first (last-indexed) key block.
        const int s_first = kv % kStages;
        mbar_wait(bar_k_full(s_first), (kv / kStages) & 1);
        turn_wait();
        fence_regs(r_s);
        wgmma_fence();
        gemm_qk(s_first);
        wgmma_commit();
        turn_pass();
        wgmma_wait<0>();
        fence_regs(r_s);
        release(bar_k_empty(s_first));
        if (n_iter == 1) release_q();
        mask(n_end - 1);
        {
          float corr[2];
          softmax(corr);  // O is still zero: no rescale
        }
        dropout(n_end - 1);
        convert_p();
        for (int it = 1; it < n_iter; ++it) {
          const int ring = kv + it;
          const int s = ring % kStages, s_prev = (ring - 1) % kStages;
          const uint32_t parity = (ring / kStages) & 1, parity_prev = ((ring - 1) / kStages) & 1;
          mbar_wait(bar_k_full(s), parity);
          mbar_wait(bar_v_full(s_prev), parity_prev);
          turn_wait();
          fence_regs(r_s);
          fence_regs(r_o);
          fence_regs(r_p);
          wgmma_fence();
          gemm_qk(s);  // S of block it
          wgmma_commit();
          gemm_pv(s_prev);  // O += P V of block it - 1
          wgmma_commit();
          turn_pass();
          wgmma_wait<1>();  // S is ready; O += P V may still run
          fence_regs(r_s);
          release(bar_k_empty(s));
          if (it == n_iter - 1) release_q();
          mask(n_end - 1 - it);
          float corr[2];
          softmax(corr);
          dropout(n_end - 1 - it);
          wgmma_wait<0>();  // P of block it - 1 and O are free again
          fence_regs(r_o);
          fence_regs(r_p);
          release(bar_v_empty(s_prev));
          rescale_o(corr);
          convert_p();
        }
        // Epilogue: O += P V of the last block. The last consumer's last turn of the CTA is granted
        // to no one, so that every wait above has exactly one matching arrival; in a persistent CTA
        // it grants the first consumer's first turn of the next tile (every tile has key blocks).
        const int s_last = (kv + n_iter - 1) % kStages;
        mbar_wait(bar_v_full(s_last), ((kv + n_iter - 1) / kStages) & 1);
        turn_wait();
        fence_regs(r_o);
        fence_regs(r_p);
        wgmma_fence();
        gemm_pv(s_last);
        wgmma_commit();
        if (wg != kConsumers - 1 || next_slot(slot) < slots) turn_pass();
        wgmma_wait<0>();
        fence_regs(r_o);
        fence_regs(r_p);
        release(bar_v_empty(s_last));
      }
      kv += n_iter;
      ++tq;
    }

    // Normalise, write O (16 bits) and lse (float, natural log). A row with no visible key has l =
    // 0: O = 0 and lse = -inf.
    T* g_o = static_cast<T*>(p.o) + b * p.o_strides.batch + h * p.o_strides.head;
    float* g_lse = p.lse + (static_cast<int64_t>(b) * p.H + h) * p.Nq;
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float l = r_l[half];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? (kDropout ? drop.scale : 1.0f) / l : 0.0f;
      const int row = row0 + g + half * 8;
      if (row >= 0 && row < p.Nq) {
        T* g_orow = g_o + row * p.o_strides.row;
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          *reinterpret_cast<uint32_t*>(g_orow + dt * 8 + 2 * t) =
              Mma::pack(r_o[4 * dt + 2 * half] * inv, r_o[4 * dt + 2 * half + 1] * inv);
        }
        if (t == 0) {
          g_lse[row] = l > 0.0f ? (r_m[half] * scale_log2 + log2f(l)) * kLn2 : -INFINITY;
        }
      }
    }
  }
#else
  // Built for another architecture: the launcher never selects this kernel there.
  (void)tm_q;
  (void)tm_k;
  (void)tm_v;
  (void)args;
  __trap();
#endif
}

template <typename T, int D, bool kOverlap, bool kPingPong, bool kDropout = false,
          bool kPersistent = false, bool kPaired = false,
          int kConsumers = consumers_for<D, kDropout>()>
cudaError_t launch_sm90(const FlashFwdParams& p, cudaStream_t stream) {
  constexpr int kBlockM = 64 * kConsumers;
  constexpr int kBlockN = kBlockNFor<D>;
  const bool bf16 = p.dtype == FlashDType::bf16;
  CUtensorMap tm_q, tm_k, tm_v;
  Sm90Args args{p, {}, {}, {}};
  if (!make_operand_map(&tm_q, &args.q_order, p.q, p.q_strides, p.B, p.Nq, p.H, D, kBlockM, bf16) ||
      !make_operand_map(&tm_k, &args.k_order, p.k, p.k_strides, p.B, p.Nk, p.Hkv, D, kBlockN,
                        bf16) ||
      !make_operand_map(&tm_v, &args.v_order, p.v, p.v_strides, p.B, p.Nk, p.Hkv, D, kBlockN,
                        bf16)) {
    return cudaErrorNotSupported;
  }
  auto kernel =
      flash_fwd_sm90_kernel<T, D, kOverlap, kPingPong, kDropout, kPersistent, kPaired, kConsumers>;
  // Q, kStages of K and V, and up to 1 KB to align the tiles to the swizzle period.
  const int smem = (kBlockM + 2 * kStages * kBlockN) * D * static_cast<int>(sizeof(T)) + 1024;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const int m_blocks = tile_count(p.Nq, kBlockM);
  dim3 grid(m_blocks, p.H, p.B);
  if constexpr (kPersistent) {
    int sms = 0;
    err = current_device_attribute(cudaDevAttrMultiProcessorCount, &sms);
    if (err != cudaSuccess) return err;
    // One CTA per SM (the shared memory and registers allow no second).
    const TileList<kPaired> list{m_blocks, p.H * p.B, 0};
    grid = dim3(static_cast<unsigned>(std::min(list.units(), sms)), 1, 1);
  }
  kernel<<<grid, 128 * (1 + kConsumers), smem, stream>>>(tm_q, tm_k, tm_v, args);
  return cudaGetLastError();
}

}  // namespace

bool flash_sm90_device() {
  int major = 0, minor = 0;
  return current_device_attribute(cudaDevAttrComputeCapabilityMajor, &major) == cudaSuccess &&
         current_device_attribute(cudaDevAttrComputeCapabilityMinor, &minor) == cudaSuccess &&
         major == 9 && minor == 0;
}

template <typename T, int D>
cudaError_t run_flash_fwd_sm90(const FlashFwdParams& p, Sm90Variant variant, cudaStream_t stream) {
  // The ablation variants are built for bf16, D = 128 only, to keep CI's compile time down.
  // Dropout is built into the default (ping-pong) kernel only, as a separate instantiation so that
  // its Philox code costs the plain kernel nothing.
  const bool dropout = p.dropout_p > 0.0;
  if constexpr (std::is_same_v<T, __nv_bfloat16> && D == 128) {
    if (variant != Sm90Variant::pingpong && dropout) return cudaErrorInvalidValue;
    if (variant == Sm90Variant::plain) return launch_sm90<T, D, false, false>(p, stream);
    if (variant == Sm90Variant::overlap) return launch_sm90<T, D, true, false>(p, stream);
  } else if (variant != Sm90Variant::pingpong) {
    return cudaErrorInvalidValue;
  }
  if (dropout) {
    // flash_attention_check refuses dropout at D = 256 (the sm_80 kernels have none either).
    if constexpr (D == 256)
      return cudaErrorInvalidValue;
    else
      return launch_sm90<T, D, true, true, true>(p, stream);
  }
  // Persistent CTAs when every query row sees every key (no causal mask, no window): the tiles
  // are then equal and a static schedule balances them.
  const FlashBand band = flash_band(p);
  if (band.lo <= 1 - p.Nq && band.hi >= p.Nk - 1) {
    return launch_sm90<T, D, true, true, false, true>(p, stream);
  }
  // Persistent too when every row sees key 0 (no left window; a causal mask with Nq <= Nk): each
  // tile then has key blocks, as the CTAs' hand-over of turns between tiles needs, and its length
  // grows linearly with its query block, as the pairing of tiles needs. Only where it measured
  // faster (H100, against a CTA per tile): an even number of query blocks (an odd one leaves a
  // middle tile without a partner, half a pair's length: 0.95-0.96x at D = 64, N = 512 and 2k),
  // and Nq <= 4096: the pairs are dealt statically, and at 16k, with 8-11 pairs per CTA, the last
  // round's idle CTAs cost more than the loads the persistent CTAs hide (0.89-0.91x). At D = 128,
  // N = 512-4096 it measured 1.04-1.10x, at D = 64, N = 1024 1.09x.
  const bool sees_key_0 = band.lo <= 1 - p.Nq && band.hi >= 0;
  // At D = 64 and short causal lengths, two consumers (128-row tiles) instead of three: at
  // Nq = 512 the 192-row tiles are three per head, an odd number that the pairing cannot serve,
  // and each CTA per tile lives for 1-4 key blocks, its prologue (barriers, Q's load) unhidden;
  // 128-row tiles are four per head, two pairs of 5 key blocks each. Measured on an H100 (run L5
  // in docs/KERNELS.md): 1.25x at N = 512; 1.005x at N = 1024 (eight 128-row tiles against six of
  // 192 rows, both paired), so the larger tiles keep N > 512.
  if constexpr (D == 64) {
    if (sees_key_0 && p.Nq <= 512 && tile_count(p.Nq, 128) % 2 == 0) {
      return launch_sm90<T, D, true, true, false, true, true, 2>(p, stream);
    }
  }
  if (sees_key_0 && tile_count(p.Nq, 64 * consumers_for<D, false>()) % 2 == 0 && p.Nq <= 4096) {
    return launch_sm90<T, D, true, true, false, true, true>(p, stream);
  }
  return launch_sm90<T, D, true, true>(p, stream);
}

template cudaError_t run_flash_fwd_sm90<__nv_bfloat16, 64>(const FlashFwdParams&, Sm90Variant,
                                                           cudaStream_t);
template cudaError_t run_flash_fwd_sm90<__nv_bfloat16, 128>(const FlashFwdParams&, Sm90Variant,
                                                            cudaStream_t);
template cudaError_t run_flash_fwd_sm90<__half, 64>(const FlashFwdParams&, Sm90Variant,
                                                    cudaStream_t);
template cudaError_t run_flash_fwd_sm90<__half, 128>(const FlashFwdParams&, Sm90Variant,
                                                     cudaStream_t);
template cudaError_t run_flash_fwd_sm90<__nv_bfloat16, 256>(const FlashFwdParams&, Sm90Variant,
                                                            cudaStream_t);
template cudaError_t run_flash_fwd_sm90<__half, 256>(const FlashFwdParams&, Sm90Variant,
                                                     cudaStream_t);

}  // namespace tilegrad::cuda::flash
