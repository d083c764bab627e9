// FlashAttention backward for Hopper (sm_90a): the sm_80 kernel's structure with its five products
// moved from mma.sync + ldmatrix to wgmma reading shared memory through descriptors.
//
// One CTA of two warpgroups per (128 keys, key/value head, batch), as on sm_80: K and V stay in
// shared memory, dK and dV in registers; the CTA walks every query head of the GQA group and every
// 64-query block that sees its keys, with the next block fetched into the other of two stages (Q
// and dO by bulk tensor copies, TMA, that thread 0 issues; lse and dsum by cp.async). Warpgroup w
// owns keys 64 w .. 64 w + 63 (wgmma's M = 64), so warp 4 w + i holds keys 16 (4 w + i) + g, + 8 in
// the same fragment layout as the sm_80 kernel and the element-wise code (exp2, masks, dS) is
// unchanged. Per query block:
//   Sᵀ = K Qᵀ, dPᵀ = V dOᵀ          wgmma m64n64k16, both operands K-major in shared memory
//   dV += Pᵀ dO, dK += dSᵀ Q        wgmma m64n128k16, A (Pᵀ, dSᵀ) from registers, B MN-major
//   dQ_block = dS K                 wgmma m64n64k16, warpgroup w the head-dim half w; A is dSᵀ
//                                   stored keys x queries (MN-major, transposed by the descriptor),
//                                   B is K (MN-major); staged in shared memory in the float32
//                                   accumulator's layout (dq_accum_col) and added to it by one bulk
//                                   reduction per block.
// Order of the products in a block: Sᵀ, dPᵀ (the next block's fetch and the previous block's dQ
// reduction issued behind them), dV, the first half of dK's k-steps, a barrier (dSᵀ complete), dQ,
// dK's second half; dQ's shared-memory stores run under that second half.
// The tiles are stored in the 128-byte swizzle that wgmma's descriptors describe (see
// flash_common_sm90.cuh), written by TMA (K, V, Q, dO; when every thread fetched its share by
// cp.async, the addresses took ~190 instructions per block and thread at D = 64) and by plain
// stores (dSᵀ, which fence.proxy.async then makes visible to the tensor cores). Why not ldmatrix:
// the sm_80 backward reads every Q and dO tile once per warp through ldmatrix and is limited by
// those shared-memory reads; wgmma reads each operand tile once per warpgroup.
//
// Windows, dropout and the deterministic mode as in flash_bwd_sm80.cu, in the kExtras instantiation
// only; deterministic, thread 0 issues a block's bulk dQ reduction only when the query block's
// counter says that every higher key block's reduction has completed, and advances the counter once
// its own has.
#include <cmath>
#include <type_traits>

#include "kernels/cuda/flash_bwd_sm90_common.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_common_sm90.cuh"
#include "kernels/cuda/flash_sm90.h"
#include "kernels/cuda/flash_tma.h"

namespace tilegrad::cuda::flash {
namespace {

// Queries per block (wgmma's N for Sᵀ, K for dV and dK): 64 at D = 128, 128 at D = 64, so that
// the registers (Sᵀ, dPᵀ, dK, dV, dQ) and the dQ product (64 x 64 per warpgroup) are the same.
template <int D>
inline constexpr int kBwdBlockM = D == 64 ? 128 : 64;
constexpr int kBwdBlockN = 128;  // keys per CTA: 64 per warpgroup (wgmma's M)
constexpr int kBwdThreads = 256;

// kBulkDq: dQ_block goes to shared memory and one thread adds it to the accumulator with one bulk
// reduction (cp.reduce.async.bulk) per block, issued at the next block's first barrier; otherwise
// every thread adds its fragments with red.v4 (the sm_80 kernel's way, kept as an ablation).

template <typename T, int D, bool kBulkDq, bool kExtras>
__global__ void __launch_bounds__(kBwdThreads, 1)
    flash_bwd_sm90_kernel(const __grid_constant__ CUtensorMap tm_q,
                          const __grid_constant__ CUtensorMap tm_do,
                          const __grid_constant__ CUtensorMap tm_k,
                          const __grid_constant__ CUtensorMap tm_v, const BwdMaps maps,
                          const FlashBwdParams p, float* dq_accum, const float* dsum,
                          int* semaphores) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  static_assert(D == 64 || D == 128, "D = 64 or 128");
  using Mma = MmaOp<T>;
  constexpr int kBlockM = kBwdBlockM<D>, kBlockN = kBwdBlockN;
  constexpr int kNT = kBlockM / 8;  // 8-query column tiles of Sᵀ
  constexpr int kChunks = D / 64;
  constexpr uint32_t kKChunkBytes = kBlockN * 128;
  constexpr uint32_t kQChunkBytes = kBlockM * 128;
  constexpr uint32_t kKBytes = kKChunkBytes * kChunks;
  constexpr uint32_t kQBytes = kQChunkBytes * kChunks;
  constexpr int kDT = D / 8;
  constexpr float kLog2e = 1.4426950408889634f;
  const FlashFwdParams& f = p.fwd;

  extern __shared__ unsigned char smem_raw[];
  const uint32_t s_k = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t s_v = s_k + kKBytes;
  const uint32_t s_q = s_v + kKBytes;        // 2 stages
  const uint32_t s_do = s_q + 2 * kQBytes;   // 2 stages
  const uint32_t s_ds = s_do + 2 * kQBytes;  // dSᵀ: kBlockM / 64 chunks of kBlockN x 64 queries
  unsigned char* s_base = smem_raw + (s_ds + kBlockN * kBlockM * 2 - smem_addr(smem_raw));
  float* s_lse = reinterpret_cast<float*>(s_base);  // 2 stages of kBlockM
  float* s_dsum = s_lse + 2 * kBlockM;              // 2 stages of kBlockM
  float* s_dq = s_dsum + 2 * kBlockM;               // kBlockM x D, row-major (kBulkDq)
  // The Q/dO stages' arrival barriers (the bulk tensor copies complete on them).
  const uint32_t bar_qdo = smem_addr(s_dq + kBlockM * D);
  auto bar = [&](int stage) { return bar_qdo + 8 * stage; };

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int wg = warp / 4, wi = warp % 4;
  const int g = lane / 4, t = lane % 4;
  const bool deterministic = kExtras && kBulkDq && semaphores != nullptr;
  const int n_block = deterministic ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int hkv = blockIdx.y, b = blockIdx.z;
  const int group = f.H / f.Hkv;
  const int n0 = n_block * kBlockN;
  const FlashBand band = flash_band(f);

  // The query blocks whose rows see some key of this block: [m_begin, m_begin + n_m).
  const BlockSpan m_span = query_blocks_seeing(band, n0, kBlockN, f.Nq, f.Nk, kBlockM);
  const int m_begin = m_span.first, n_m = m_span.count;
  const int total = group * n_m;

  // Query block `it` of the walk into a stage (flash_bwd_sm90_common.cuh).
  auto load_query_block = [&](int it, int stage) {
    bwd_fetch_query_block<kChunks, kBlockM>(
        &tm_q, &tm_do, maps, f, dsum, b, hkv * group + it / n_m, (m_begin + it % n_m) * kBlockM,
        s_q + stage * kQBytes, s_do + stage * kQBytes, kQChunkBytes, s_lse + stage * kBlockM,
        s_dsum + stage * kBlockM, bar(stage), tid);
  };

  float r_dk[D / 2], r_dv[D / 2];
#pragma unroll
  for (int i = 0; i < D / 2; ++i) r_dk[i] = r_dv[i] = 0.0f;

  bwd_start_walk<kChunks>(&tm_k, &tm_v, maps, b, hkv, n0, s_k, s_v, kKChunkBytes, bar(0), total,
                          tid, load_query_block);

  const float scale_log2 = f.softmax_scale * kLog2e;
  const int key_row0 = warp * 16;
  // This lane's row address for the dSᵀ stmatrix stores (below) and the swizzle of its chunk.
  const uint32_t s_ds_lane = s_ds + (key_row0 + lane % 8 + 8 * (lane / 8 % 2)) * 128;
  const uint32_t ds_swz = ((lane / 16) ^ (lane % 8)) << 4;
  [[maybe_unused]] const Dropout drop(f);
  [[maybe_unused]] const bool dropout_on = f.dropout_p > 0.0;
  // Descriptors. K-major (Sᵀ, dPᵀ): this warpgroup's 64 K/V rows, a Q/dO stage; a k16 step of D
  // moves 32 bytes inside a chunk, then to the next chunk. MN-major (dV, dK, dQ): a k16 step moves
  // 16 rows (2048 bytes); LBO is the distance between 64-column chunks.
  const uint64_t desc_k = smem_desc_sw128(s_k + wg * 64 * 128, 16, 1024);
  const uint64_t desc_v = smem_desc_sw128(s_v + wg * 64 * 128, 16, 1024);
  const uint64_t desc_q_km = smem_desc_sw128(s_q, 16, 1024);
  const uint64_t desc_do_km = smem_desc_sw128(s_do, 16, 1024);
  const uint64_t desc_q_mn = smem_desc_sw128(s_q, kQChunkBytes, 1024);
  const uint64_t desc_do_mn = smem_desc_sw128(s_do, kQChunkBytes, 1024);
  // dQ (kBlockM x D) is split over the warpgroups by head-dim halves at D = 128 (all 64 queries,
  // K chunk wg) and by query halves at D = 64 (dSᵀ chunk wg, all 64 columns): 64 x 64 each.
  constexpr bool kSplitD = D == 128;
  const uint64_t desc_ds =
      smem_desc_sw128(s_ds + (kSplitD ? 0 : wg * kBlockN * 128), kBlockN * 128, 1024);
  const uint64_t desc_k_dq =
      smem_desc_sw128(s_k + (kSplitD ? wg * kKChunkBytes : 0), kKChunkBytes, 1024);
  auto km_step = [](int ks, uint32_t chunk_bytes) {
    return static_cast<uint64_t>(((ks / 4) * chunk_bytes + (ks % 4) * 32) >> 4);
  };
  constexpr uint64_t kRows16 = (16 * 128) >> 4;
  // Sᵀ and dPᵀ: 64 keys x kBlockM queries.
  auto gemm_km = [](float(&d)[kBlockM / 2], uint64_t a, uint64_t b, int scale_d) {
    if constexpr (kBlockM == 64) {
      wgmma_ss_m64n64k16<T, 0, 0>(d, a, b, scale_d);
    } else {
      Wgmma<T>::ss(d, a, b, scale_d);
    }
  };

  // The bulk reduction of the previous block's dQ (kBulkDq): destination and bytes, thread 0; when
  // deterministic, the block's counter and the value at which it is this key block's turn.
  float* g_dq_pending = nullptr;
  uint32_t dq_pending_bytes = 0;
  int* sem_pending = nullptr;
  int sem_turn = 0;
  auto issue_dq_reduction = [&]() {
    if (tid == 0 && g_dq_pending != nullptr) {
      if (deterministic) {
        sem_wait(sem_pending, sem_turn);
        // The previous key block's reduction (async proxy) is ordered before this one.
        asm volatile("fence.proxy.async.global;\n" ::: "memory");
      }
      asm volatile(
          "cp.reduce.async.bulk.global.shared::cta.bulk_group.add.f32 [%0], [%1], %2;\n" ::"l"(
              g_dq_pending),
          "r"(smem_addr(s_dq)), "r"(dq_pending_bytes)
          : "memory");
      asm volatile("cp.async.bulk.commit_group;\n" ::: "memory");
    }
  };
  // Deterministic: once this key block's reduction has completed, pass the turn on.
  auto finish_dq_reduction = [&]() {
    if (tid == 0 && g_dq_pending != nullptr) {
      asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
      asm volatile("fence.proxy.async.global;\n" ::: "memory");
      sem_signal(sem_pending, sem_turn + 1);
    }
  };

  for (int it = 0; it < total; ++it) {
    const int stage = it & 1;
    // Block it has arrived; after the barrier every warpgroup's products of the previous block,
    // the last readers of the other stage, are complete, so the next block can be fetched there.
    cp_async_wait<0>();
    // This thread's own lse (its cp.async has landed), times log2(e) once here rather than in
    // every element's exponent; the barrier below publishes it.
    if (tid < kBlockM) s_lse[stage * kBlockM + tid] *= kLog2e;
    mbar_wait(bar(stage), (it >> 1) & 1);
    __syncthreads();

    const int h = hkv * group + it / n_m;
    const int m0 = (m_begin + it % n_m) * kBlockM;
    const uint64_t stage_off = (stage * kQBytes) >> 4;
    const float* s_lset = s_lse + stage * kBlockM;  // lse · log2(e)
    const float* s_dsumt = s_dsum + stage * kBlockM;

    // Sᵀ = K Qᵀ and dPᵀ = V dOᵀ.
    float r_s[kBlockM / 2], r_dp[kBlockM / 2];
    fence_regs(r_s);
    fence_regs(r_dp);
    wgmma_fence();
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      gemm_km(r_s, desc_k + km_step(ks, kKChunkBytes),
              desc_q_km + stage_off + km_step(ks, kQChunkBytes), ks > 0);
    }
    wgmma_commit();
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      gemm_km(r_dp, desc_v + km_step(ks, kKChunkBytes),
              desc_do_km + stage_off + km_step(ks, kQChunkBytes), ks > 0);
    }
    wgmma_commit();
    // The next block's fetch and the previous block's dQ reduction are issued once the tensor
    // cores have work, so that their address arithmetic delays no product.
    if (it + 1 < total) load_query_block(it + 1, stage ^ 1);
    cp_async_commit();
    if constexpr (kBulkDq) issue_dq_reduction();  // the previous block's s_dq is complete
    wgmma_wait<1>();  // Sᵀ is ready; dPᵀ may still run under the exp2 below
    fence_regs(r_s);

    // Pᵀ (r_s[4 nt + e] is key g + 8 (e / 2), query 8 nt + 2 t + e % 2 of the warp's tile), masked
    // where the block needs it.
    bwd_probabilities<kNT>(r_s, s_lset, scale_log2, f, band, n0, kBlockN, n0 + key_row0, m0, g, t);
    // The dropout mask of this thread's elements, bit 4 nt + e (KeepMask).
    [[maybe_unused]] KeepMask<kNT> keep = {};
    if constexpr (kExtras) {
      keep.draw(drop, f, dropout_on, b * f.H + h, m0 + 2 * t, n0 + key_row0 + g);
    }

    // dV += Pᵀ dO (Pᵀ ∘ Z s under dropout), issued now and overlapped with dS below.
    uint32_t r_p[kBlockM / 16][4];
#pragma unroll
    for (int kq = 0; kq < kBlockM / 16; ++kq) {
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        float p0 = r_s[8 * kq + 2 * j], p1 = r_s[8 * kq + 2 * j + 1];
        if constexpr (kExtras) {
          p0 = keep.kept(8 * kq + 2 * j) ? p0 * drop.scale : 0.0f;
          p1 = keep.kept(8 * kq + 2 * j + 1) ? p1 * drop.scale : 0.0f;
        }
        r_p[kq][j] = Mma::pack(p0, p1);
      }
    }
    fence_regs(r_dv);
    fence_regs(r_p);
    wgmma_fence();
#pragma unroll
    for (int kq = 0; kq < kBlockM / 16; ++kq) {
      Wgmma<T>::rs(r_dv, r_p[kq], desc_do_mn + stage_off + kq * kRows16, 1);
    }
    wgmma_commit();
    wgmma_wait<1>();  // dPᵀ is ready; dV may still run under dS below
    fence_regs(r_dp);

    // dSᵀ = Pᵀ ∘ (dPᵀ - dsum); its 16-bit copy goes to shared memory (swizzled) for dQ.
    uint32_t r_ds[kBlockM / 16][4];
#pragma unroll
    for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) {
        float dp = r_dp[4 * nt + e];
        if constexpr (kExtras) dp = keep.kept(4 * nt + e) ? dp * drop.scale : 0.0f;
        r_dp[4 * nt + e] = r_s[4 * nt + e] * (dp - s_dsumt[nt * 8 + 2 * t + (e & 1)]);
      }
      const uint32_t lo = Mma::pack(r_dp[4 * nt], r_dp[4 * nt + 1]);
      const uint32_t hi = Mma::pack(r_dp[4 * nt + 2], r_dp[4 * nt + 3]);
      r_ds[nt / 2][(nt % 2) * 2] = lo;
      r_ds[nt / 2][(nt % 2) * 2 + 1] = hi;
      // r_ds[kq] holds four 8 x 8 matrices of the mma fragment layout: keys 0-7 and 8-15 of the
      // warp's rows by queries 16 kq .. + 7, then the same by 16 kq + 8 .. + 15; one stmatrix
      // stores them (a quarter of the st.shared it took as 32-bit stores). Lane l gives the row of
      // matrix l / 8: key row (l % 8) + 8 (l / 8 % 2), 16-byte chunk 2 kq + l / 16 of the
      // swizzled tile.
      if (nt % 2 == 1) {
        const int kq = nt / 2;
        stmatrix_x4(s_ds_lane + (kq / 4) * kBlockN * 128 + (ds_swz ^ ((kq % 4) << 5)), r_ds[kq]);
      }
    }

    // dK += dSᵀ Q: the first half of its k-steps now, to keep the tensor cores busy across the
    // barrier below; the second half after dQ, so that dQ's shared-memory stores run under it.
    constexpr int kDkFirst = kBlockM / 32;
    fence_regs(r_dk);
    fence_regs(r_ds);
    wgmma_fence();
#pragma unroll
    for (int kq = 0; kq < kDkFirst; ++kq) {
      Wgmma<T>::rs(r_dk, r_ds[kq], desc_q_mn + stage_off + kq * kRows16, 1);
    }
    wgmma_commit();
    // dV and dK may still run: they read registers and the Q/dO stage, which the next fetch
    // overwrites only after the next iteration's barrier, when every wait below has returned.
    if constexpr (kBulkDq) {
      // s_dq is written after this barrier: the reduction must have read it by then.
      if (deterministic) {
        finish_dq_reduction();
      } else if (tid == 0) {
        asm volatile("cp.async.bulk.wait_group.read 0;\n" ::: "memory");
      }
    }
    fence_proxy_async();
    __syncthreads();  // dSᵀ complete in shared memory

    // This warpgroup's 64 x 64 of dQ_block = dS K: A = dSᵀ read transposed, B = K MN-major.
    float r_dq[32];
    fence_regs(r_dq);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      wgmma_ss_m64n64k16<T, 1, 1>(r_dq, desc_ds + kk * kRows16, desc_k_dq + kk * kRows16, kk > 0);
    }
    wgmma_commit();
#pragma unroll
    for (int kq = kDkFirst; kq < kBlockM / 16; ++kq) {
      Wgmma<T>::rs(r_dk, r_ds[kq], desc_q_mn + stage_off + kq * kRows16, 1);
    }
    wgmma_commit();
    wgmma_wait<1>();  // dV, dK's first half and dQ are complete; dK's second half may run
    fence_regs(r_dq);
    fence_regs(r_dv);
    fence_regs(r_p);

    // r_dq[4 nt + e]: query row0 + 16 wi + g + 8 (e / 2), column col0 + 8 nt + 2 t + e % 2. Lanes
    // t and t ^ 1 swap half their pairs so that each adds four neighbouring columns of one row.
    float* g_dqa = dq_accum + (static_cast<int64_t>(b) * f.H + h) * f.Nq * D;
    const int col0 = kSplitD ? wg * 64 : 0;
    const int q_row0 = m0 + (kSplitD ? 0 : wg * 64);
    if constexpr (kBulkDq) {
      // The accumulator's layout (dq_accum_col): conflict-free stores, since rows lr and lr + 8
      // of a half-warp's four rows g fall on four different 8-float groups.
      const int lr = q_row0 - m0 + wi * 16 + g;
#pragma unroll
      for (int nt = 0; nt < 8; ++nt) {
        const int col = col0 + nt * 8 + 2 * t;
        *reinterpret_cast<float2*>(s_dq + lr * D + dq_accum_col(lr, col)) =
            make_float2(r_dq[4 * nt], r_dq[4 * nt + 1]);
        *reinterpret_cast<float2*>(s_dq + (lr + 8) * D + dq_accum_col(lr + 8, col)) =
            make_float2(r_dq[4 * nt + 2], r_dq[4 * nt + 3]);
      }
      fence_proxy_async();  // the next barrier then orders these writes before the bulk read
      g_dq_pending = g_dqa + static_cast<int64_t>(m0) * D;
      dq_pending_bytes = static_cast<uint32_t>(min(kBlockM, f.Nq - m0) * D * sizeof(float));
      if (deterministic) {
        sem_pending = dq_semaphore(semaphores, f, b, h, m0);
        sem_turn = last_key_block(band, m0, kBlockM, kBlockN, gridDim.x) - n_block;
      }
    } else {
      bwd_red_dq<D, 8>(r_dq, g_dqa, q_row0 + wi * 16, col0, f.Nq, g, t);
    }
    wgmma_wait<0>();  // dK: r_ds and the Q stage are free again
    fence_regs(r_dk);
    fence_regs(r_ds);
    // No barrier here: the next iteration writes s_ds only after its first barrier, by which time
    // every warpgroup's dQ product (waited above) has finished reading it.
  }

  if constexpr (kBulkDq) {
    __syncthreads();  // the last block's s_dq is complete
    issue_dq_reduction();
    if (deterministic) {
      finish_dq_reduction();
    } else if (tid == 0) {
      asm volatile("cp.async.bulk.wait_group 0;\n" ::: "memory");
    }
  }

  bwd_store_dk_dv<T, kDT>(p, r_dk, r_dv, b, hkv, n0 + key_row0, 0, g, t);
#else
  (void)p;
  (void)dq_accum;
  (void)dsum;
  (void)semaphores;
#endif
}

}  // namespace

template <typename T, int D>
cudaError_t run_flash_bwd_sm90_main(const FlashBwdParams& p, float* dq_accum, const float* dsum,
                                    int* semaphores, cudaStream_t stream, bool bulk_dq) {
  const FlashFwdParams& f = p.fwd;
  // Windows, dropout and the deterministic mode run in a separate instantiation (kExtras), so that
  // their code and registers cost the default kernel nothing.
  const bool extras =
      f.dropout_p > 0.0 || semaphores != nullptr || f.window_left >= 0 || f.window_right >= 0;
  auto kernel =
      extras ? flash_bwd_sm90_kernel<T, D, true, true> : flash_bwd_sm90_kernel<T, D, true, false>;
  // The per-thread reductions are kept for bf16, D = 128 only, to keep the build short; they have
  // neither dropout nor a deterministic mode.
  if (!bulk_dq && extras) return cudaErrorInvalidValue;
  if constexpr (std::is_same_v<T, __nv_bfloat16> && D == 128) {
    if (!bulk_dq) kernel = flash_bwd_sm90_kernel<T, D, false, false>;
  } else if (!bulk_dq) {
    return cudaErrorInvalidValue;
  }
  // K, V, two stages of Q and dO, dSᵀ, lse and dsum, dQ_block (float32), the stages' two
  // barriers, and up to 1 KB to align to the swizzle period.
  constexpr int kBlockM = kBwdBlockM<D>;
  const int smem = (2 * kBwdBlockN + 4 * kBlockM) * D * static_cast<int>(sizeof(T)) +
                   kBwdBlockN * kBlockM * static_cast<int>(sizeof(T)) +
                   4 * kBlockM * static_cast<int>(sizeof(float)) +
                   kBlockM * D * static_cast<int>(sizeof(float)) + 2 * 8 + 1024;
  BwdTensorMaps tm;
  if (!make_bwd_maps(&tm, p, kBlockM, kBwdBlockN)) return cudaErrorNotSupported;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid((f.Nk + kBwdBlockN - 1) / kBwdBlockN, f.Hkv, f.B);
  kernel<<<grid, kBwdThreads, smem, stream>>>(tm.q, tm.dout, tm.k, tm.v, tm.order, p, dq_accum,
                                              dsum, semaphores);
  return cudaGetLastError();
}

template cudaError_t run_flash_bwd_sm90_main<__nv_bfloat16, 128>(const FlashBwdParams&, float*,
                                                                 const float*, int*, cudaStream_t,
                                                                 bool);
template cudaError_t run_flash_bwd_sm90_main<__half, 128>(const FlashBwdParams&, float*,
                                                          const float*, int*, cudaStream_t, bool);
template cudaError_t run_flash_bwd_sm90_main<__nv_bfloat16, 64>(const FlashBwdParams&, float*,
                                                                const float*, int*, cudaStream_t,
                                                                bool);
template cudaError_t run_flash_bwd_sm90_main<__half, 64>(const FlashBwdParams&, float*,
                                                         const float*, int*, cudaStream_t, bool);

}  // namespace tilegrad::cuda::flash
