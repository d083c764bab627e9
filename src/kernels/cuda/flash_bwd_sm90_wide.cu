// FlashAttention backward for Hopper (sm_90a) at D = 256: the two warpgroups split the head
// dimension, not the keys.
//
// Why another layout: the D = 64 / 128 kernel (flash_bwd_sm90.cu) gives each warpgroup 64 keys and
// keeps their dK and dV in its registers, 64 x D float32 each; at D = 256 that is 256 registers per
// thread for the two alone. Here one CTA of two warpgroups owns 64 keys, and warpgroup w holds dK
// and dV for head-dim columns 128 w .. 128 w + 127 (64 registers each). The query-block products
// are then split so that every product has M = 64:
//   Sᵀ = K Qᵀ                     warpgroup 0, wgmma m64n64k16, K and Q K-major in shared memory
//   dPᵀ = V dOᵀ                   warpgroup 1, likewise
//   dV += Pᵀ dO, dK += dSᵀ Q      both, m64n128k16 over their head-dim half: A (Pᵀ, dSᵀ) K-major
//                                 in shared memory, B (dO, Q) MN-major
//   dQ_block = dS K               both, m64n128k16 over their half: A is dSᵀ read transposed, B is
//                                 K MN-major; added to the float32 accumulator with red.v4 from
//                                 registers (a 64 x 256 float32 staging tile would not fit beside
//                                 the operands' 208 KB)
// Pᵀ and dSᵀ go through shared memory, since each warpgroup needs all of them: warpgroup 0 turns
// Sᵀ into Pᵀ and stores it twice, 16-bit for the products and float32 for warpgroup 1, which forms
// dSᵀ = Pᵀ ∘ (dPᵀ - dsum) from its own dPᵀ (the same fragment layout, thread for thread).
// Order: warpgroup 1 issues dPᵀ only once warpgroup 0's Sᵀ is done, so that the exp2 of Pᵀ runs
// under dPᵀ on the tensor cores, and issues its dV before forming dSᵀ, so that dSᵀ runs under both
// dV halves; then dQ and dK, dQ's reductions under dK.
// Q and dO come in two stages by bulk tensor copies (TMA) that thread 0 issues, lse and dsum by
// cp.async, as in the D = 64 / 128 kernel; K and V stay for the CTA's whole walk over the query
// heads of its GQA group and the query blocks that see its keys. Windows are masks like the causal
// one; dropout is not defined at D = 256, and the deterministic mode runs the sm_80 kernel (the
// launcher says cudaErrorNotSupported).
#include <cmath>

#include "kernels/cuda/flash_bwd_sm90_common.cuh"
#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_common_sm90.cuh"
#include "kernels/cuda/flash_sm90.h"
#include "kernels/cuda/flash_tma.h"

namespace tilegrad::cuda::flash {
namespace {

constexpr int kWideD = 256;
constexpr int kWideBlockM = 64;  // queries per block
constexpr int kWideBlockN = 64;  // keys per CTA
constexpr int kWideThreads = 256;
// A 64-row box of 64 16-bit columns, the unit of every tile here (flash_common_sm90.cuh).
constexpr uint32_t kBoxBytes = 64 * 128;
constexpr uint32_t kTileBytes = kBoxBytes * (kWideD / 64);  // 64 rows x D
// Shared memory: K, V, two stages each of Q and dO, Pᵀ and dSᵀ (16-bit), Pᵀ (float32), two stages
// of lse and dsum, the stages' two barriers, and up to 1 KB to align to the swizzle period.
constexpr int kWideSmemBytes = 6 * kTileBytes + 2 * kBoxBytes + kWideBlockN * kWideBlockM * 4 +
                               4 * kWideBlockM * 4 + 2 * 8 + 1024;

template <typename T>
__global__ void __launch_bounds__(kWideThreads, 1)
    flash_bwd_sm90_wide_kernel(const __grid_constant__ CUtensorMap tm_q,
                               const __grid_constant__ CUtensorMap tm_do,
                               const __grid_constant__ CUtensorMap tm_k,
                               const __grid_constant__ CUtensorMap tm_v, const BwdMaps maps,
                               const FlashBwdParams p, float* dq_accum, const float* dsum) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  using Mma = MmaOp<T>;
  constexpr int D = kWideD, kBlockM = kWideBlockM, kBlockN = kWideBlockN;
  constexpr int kChunks = D / 64;
  constexpr uint32_t kHalfBytes = kTileBytes / 2;  // a warpgroup's 128 head-dim columns
  constexpr float kLog2e = 1.4426950408889634f;
  // Named barriers (0 is __syncthreads).
  constexpr int kBarS = 1;   // warpgroup 0's Sᵀ is complete
  constexpr int kBarP = 2;   // Pᵀ is in shared memory
  constexpr int kBarDs = 3;  // dSᵀ is in shared memory
  const FlashFwdParams& f = p.fwd;

  extern __shared__ unsigned char smem_raw[];
  const uint32_t s_k = (smem_addr(smem_raw) + 1023u) & ~1023u;
  const uint32_t s_v = s_k + kTileBytes;
  const uint32_t s_q = s_v + kTileBytes;       // 2 stages
  const uint32_t s_do = s_q + 2 * kTileBytes;  // 2 stages
  const uint32_t s_p = s_do + 2 * kTileBytes;  // Pᵀ: 64 keys x 64 queries, one box
  const uint32_t s_ds = s_p + kBoxBytes;       // dSᵀ, likewise
  unsigned char* s_base = smem_raw + (s_ds + kBoxBytes - smem_addr(smem_raw));
  // Pᵀ in float32 for warpgroup 1: value 4 j + e of thread i at float4 j * 128 + i (conflict-free).
  float4* s_pf = reinterpret_cast<float4*>(s_base);
  float* s_lse = reinterpret_cast<float*>(s_pf + 8 * 128);  // 2 stages of kBlockM
  float* s_dsum = s_lse + 2 * kBlockM;                      // 2 stages of kBlockM
  const uint32_t bar_qdo = smem_addr(s_dsum + 2 * kBlockM);
  auto bar = [&](int stage) { return bar_qdo + 8 * stage; };

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int wg = warp / 4, wi = warp % 4, wt = tid % 128;
  const int g = lane / 4, t = lane % 4;
  const int n_block = blockIdx.x, hkv = blockIdx.y, b = blockIdx.z;
  const int group = f.H / f.Hkv;
  const int n0 = n_block * kBlockN;
  const FlashBand band = flash_band(f);

  const BlockSpan m_span = query_blocks_seeing(band, n0, kBlockN, f.Nq, f.Nk, kBlockM);
  const int m_begin = m_span.first, n_m = m_span.count;
  const int total = group * n_m;

  // Query block `it` of the walk into a stage (flash_bwd_sm90_common.cuh).
  auto load_query_block = [&](int it, int stage) {
    bwd_fetch_query_block<kChunks, kBlockM>(
        &tm_q, &tm_do, maps, f, dsum, b, hkv * group + it / n_m, (m_begin + it % n_m) * kBlockM,
        s_q + stage * kTileBytes, s_do + stage * kTileBytes, kBoxBytes, s_lse + stage * kBlockM,
        s_dsum + stage * kBlockM, bar(stage), tid);
  };

  float r_dk[64], r_dv[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) r_dk[i] = r_dv[i] = 0.0f;

  bwd_start_walk<kChunks>(&tm_k, &tm_v, maps, b, hkv, n0, s_k, s_v, kBoxBytes, bar(0), total, tid,
                          load_query_block);

  const float scale_log2 = f.softmax_scale * kLog2e;
  const int key_row0 = wi * 16;  // this warp's 16 keys of the CTA's 64 (both warpgroups)
  // This lane's row address for the stmatrix stores of Pᵀ (warpgroup 0) or dSᵀ (warpgroup 1), and
  // the swizzle of its 16-byte chunk (as in flash_bwd_sm90.cu).
  const uint32_t st_lane =
      (wg == 0 ? s_p : s_ds) + (key_row0 + lane % 8 + 8 * (lane / 8 % 2)) * 128;
  const uint32_t st_swz = ((lane / 16) ^ (lane % 8)) << 4;
  // Descriptors (flash_common_sm90.cuh). Sᵀ / dPᵀ: A = K / V, B = a Q / dO stage, K-major, a k16
  // step of D moving 32 bytes inside a box, then to the next box. dV / dK: A = Pᵀ / dSᵀ K-major (a
  // k16 step of queries moves 32 bytes), B = this warpgroup's half of a dO / Q stage, MN-major (a
  // k16 step moves 16 rows; LBO the distance between boxes). dQ: A = dSᵀ read transposed
  // (queries contiguous), B = this warpgroup's half of K, both MN-major (k16 steps of 16 keys).
  const uint64_t desc_kv = smem_desc_sw128(wg == 0 ? s_k : s_v, 16, 1024);
  const uint64_t desc_qdo_km = smem_desc_sw128(wg == 0 ? s_q : s_do, 16, 1024);
  const uint64_t desc_p = smem_desc_sw128(s_p, 16, 1024);
  const uint64_t desc_ds_km = smem_desc_sw128(s_ds, 16, 1024);
  const uint64_t desc_ds_mn = smem_desc_sw128(s_ds, kBoxBytes, 1024);
  const uint64_t desc_do_mn = smem_desc_sw128(s_do + wg * kHalfBytes, kBoxBytes, 1024);
  const uint64_t desc_q_mn = smem_desc_sw128(s_q + wg * kHalfBytes, kBoxBytes, 1024);
  const uint64_t desc_k_mn = smem_desc_sw128(s_k + wg * kHalfBytes, kBoxBytes, 1024);
  auto km_step = [](int ks) {
    return static_cast<uint64_t>(((ks / 4) * kBoxBytes + (ks % 4) * 32) >> 4);
  };
  constexpr uint64_t kRows16 = (16 * 128) >> 4;
  constexpr uint64_t kCols16 = 32 >> 4;

  for (int it = 0; it < total; ++it) {
    const int stage = it & 1;
    // Block it has arrived; after the barrier both warpgroups' products of the previous block, the
    // last readers of the other stage and of Pᵀ and dSᵀ, are complete.
    cp_async_wait<0>();
    if (tid < kBlockM) s_lse[stage * kBlockM + tid] *= kLog2e;
    mbar_wait(bar(stage), (it >> 1) & 1);
    __syncthreads();

    const int h = hkv * group + it / n_m;
    const int m0 = (m_begin + it % n_m) * kBlockM;
    const uint64_t stage_off = (stage * kTileBytes) >> 4;

    // Sᵀ (warpgroup 0) or dPᵀ (warpgroup 1): 64 keys x 64 queries; r_x[4 nt + e] is key
    // key_row0 + g + 8 (e / 2), query 8 nt + 2 t + e % 2. Each warpgroup issues and waits for it
    // in its own branch (issued before the branches, ptxas saw it in flight across their merge and
    // serialised the products).
    float r_x[32];
    auto issue_x = [&]() {
      fence_regs(r_x);
      wgmma_fence();
#pragma unroll
      for (int ks = 0; ks < D / 16; ++ks) {
        wgmma_ss_m64n64k16<T, 0, 0>(r_x, desc_kv + km_step(ks),
                                    desc_qdo_km + stage_off + km_step(ks), ks > 0);
      }
      wgmma_commit();
    };
    // dV += Pᵀ dO over this warpgroup's head-dim half.
    auto issue_dv = [&]() {
      fence_regs(r_dv);
      wgmma_fence();
#pragma unroll
      for (int kq = 0; kq < kBlockM / 16; ++kq) {
        wgmma_ss_m64n128k16<T, 0, 1>(r_dv, desc_p + kq * kCols16,
                                     desc_do_mn + stage_off + kq * kRows16, 1);
      }
      wgmma_commit();
    };
    // The 16-bit copy of r_x (Pᵀ or dSᵀ) to shared memory, swizzled: r_pk holds the four 8 x 8
    // matrices of queries 16 kq .. + 15 (as dSᵀ in flash_bwd_sm90.cu), one stmatrix each.
    auto store_x = [&]() {
#pragma unroll
      for (int kq = 0; kq < 4; ++kq) {
        const uint32_t r_pk[4] = {Mma::pack(r_x[8 * kq], r_x[8 * kq + 1]),
                                  Mma::pack(r_x[8 * kq + 2], r_x[8 * kq + 3]),
                                  Mma::pack(r_x[8 * kq + 4], r_x[8 * kq + 5]),
                                  Mma::pack(r_x[8 * kq + 6], r_x[8 * kq + 7])};
        stmatrix_x4(st_lane + (st_swz ^ (kq << 5)), r_pk);
      }
      fence_proxy_async();
    };

    if (wg == 0) {
      issue_x();
      if (it + 1 < total) load_query_block(it + 1, stage ^ 1);
      cp_async_commit();
      wgmma_wait<0>();
      fence_regs(r_x);
      named_bar_arrive(kBarS, kWideThreads);  // warpgroup 1's dPᵀ may take the tensor cores
      // Pᵀ, masked where the block needs it.
      bwd_probabilities<8>(r_x, s_lse + stage * kBlockM, scale_log2, f, band, n0, kBlockN,
                           n0 + key_row0, m0, g, t);
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        s_pf[j * 128 + wt] =
            make_float4(r_x[4 * j], r_x[4 * j + 1], r_x[4 * j + 2], r_x[4 * j + 3]);
      }
      store_x();
      named_bar_sync(kBarP, kWideThreads);
      issue_dv();
    } else {
      named_bar_sync(kBarS, kWideThreads);
      issue_x();
      named_bar_sync(kBarP, kWideThreads);
      issue_dv();
      // dSᵀ = Pᵀ ∘ (dPᵀ - dsum), under dV.
      wgmma_wait<1>();
      fence_regs(r_x);
      const float* s_dsumt = s_dsum + stage * kBlockM;
#pragma unroll
      for (int j = 0; j < 8; ++j) {
        const float4 pf = s_pf[j * 128 + wt];
        const float pv[4] = {pf.x, pf.y, pf.z, pf.w};
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          r_x[4 * j + e] = pv[e] * (r_x[4 * j + e] - s_dsumt[j * 8 + 2 * t + (e & 1)]);
        }
      }
      store_x();
    }
    named_bar_sync(kBarDs, kWideThreads);

    // dQ_block = dS K, then dK += dSᵀ Q, over this warpgroup's head-dim half.
    float r_dq[64];
    fence_regs(r_dq);
    fence_regs(r_dk);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBlockN / 16; ++kk) {
      wgmma_ss_m64n128k16<T, 1, 1>(r_dq, desc_ds_mn + kk * kRows16, desc_k_mn + kk * kRows16,
                                   kk > 0);
    }
    wgmma_commit();
#pragma unroll
    for (int kq = 0; kq < kBlockM / 16; ++kq) {
      wgmma_ss_m64n128k16<T, 0, 1>(r_dk, desc_ds_km + kq * kCols16,
                                   desc_q_mn + stage_off + kq * kRows16, 1);
    }
    wgmma_commit();
    wgmma_wait<1>();  // dV and dQ are complete; dK may run under the reductions
    fence_regs(r_dq);
    fence_regs(r_dv);

    // r_dq[4 nt + e]: query m0 + 16 wi + g + 8 (e / 2), column 128 wg + 8 nt + 2 t + e % 2.
    float* g_dqa = dq_accum + (static_cast<int64_t>(b) * f.H + h) * f.Nq * D;
    bwd_red_dq<D, 16>(r_dq, g_dqa, m0 + wi * 16, wg * 128, f.Nq, g, t);
    wgmma_wait<0>();
    fence_regs(r_dk);
  }

  bwd_store_dk_dv<T, 16>(p, r_dk, r_dv, b, hkv, n0 + key_row0, wg * 128, g, t);
#else
  (void)p;
  (void)dq_accum;
  (void)dsum;
#endif
}

}  // namespace

template <typename T>
cudaError_t run_flash_bwd_sm90_wide(const FlashBwdParams& p, float* dq_accum, const float* dsum,
                                    int* semaphores, cudaStream_t stream) {
  const FlashFwdParams& f = p.fwd;
  if (f.D != kWideD || f.dropout_p > 0.0) return cudaErrorInvalidValue;
  // The deterministic mode orders whole-block reductions (flash_bwd_sm90.cu); this kernel's are
  // per thread, so the sm_80 kernel serves it.
  if (semaphores != nullptr) return cudaErrorNotSupported;
  BwdTensorMaps tm;
  if (!make_bwd_maps(&tm, p, kWideBlockM, kWideBlockN)) return cudaErrorNotSupported;
  auto kernel = flash_bwd_sm90_wide_kernel<T>;
  cudaError_t err =
      cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, kWideSmemBytes);
  if (err != cudaSuccess) return err;
  const dim3 grid((f.Nk + kWideBlockN - 1) / kWideBlockN, f.Hkv, f.B);
  kernel<<<grid, kWideThreads, kWideSmemBytes, stream>>>(tm.q, tm.dout, tm.k, tm.v, tm.order, p,
                                                         dq_accum, dsum);
  return cudaGetLastError();
}

template cudaError_t run_flash_bwd_sm90_wide<__nv_bfloat16>(const FlashBwdParams&, float*,
                                                            const float*, int*, cudaStream_t);
template cudaError_t run_flash_bwd_sm90_wide<__half>(const FlashBwdParams&, float*, const float*,
                                                     int*, cudaStream_t);

}  // namespace tilegrad::cuda::flash
