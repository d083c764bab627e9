// FlashAttention-2 forward for sm_80 and later (mma.sync tensor cores, cp.async, ldmatrix).
//
// One CTA computes kBlockM query rows of one (batch, head). Its kWarps warps split those rows (each
// warp owns kMT 16-row tiles), so the softmax statistics of a row live in the four lanes of one
// quad and never cross warps. The CTA walks the key blocks from the last to the first (the masked
// blocks of a causal or ragged problem come first, so the mask test is false for the rest):
//   S = Q Kᵀ (tensor cores, Q and K from shared memory through ldmatrix)
//   online softmax in registers: running max m and sum l per row, exp2 with the scale folded in
//   O = O * exp2(m_old - m_new) + P V (P converted to 16 bits in registers, V through
//   ldmatrix.trans)
// while cp.async fetches the next key block into the other of two shared-memory stages. O is
// normalised once at the end; lse = (m * scale * log2 e + log2 l) * ln 2. Only the key blocks that
// some row of the block sees (causal, sliding window) are visited. Dropout (kExtras) zeroes the
// dropped probabilities after they entered the row sum (lse is that of the undropped scores) and
// before P V; the 1 / (1 - p) goes into the final normalisation.
#include <cmath>

#include "kernels/cuda/flash_common.cuh"
#include "kernels/cuda/flash_sm80.h"

namespace tilegrad::cuda::flash {
namespace {

constexpr float kLog2e = 1.4426950408889634f;
constexpr float kLn2 = 0.6931471805599453f;

// The tuned shape: 128-row query blocks with 4 warps (32 rows each), so that a row's softmax
// statistics stay in one quad and the O accumulator (32 x D per warp) stays in registers; 64-key
// blocks (at D = 128 ptxas spills a few registers, yet 32-key blocks measured slower, see
// docs/KERNELS.md); two K/V stages; rows padded by 16 bytes. FwdVariant names the ablations that
// the benchmark times, each changing one of these choices.
//
// D = 256 doubles the O accumulator (16 rows x 256 columns per warp are already 128 registers per
// lane), so a warp owns one 16-row tile, not two, and shared memory, not registers, bounds the
// tile: a 264-element padded row is 528 bytes. 64 query rows with 4 warps and one stage of 64-key K
// and V tiles take 101 KB, so two CTAs share an H100/H200 SM (8 warps; one CTA's loads run under
// the other's math, which is what the second stage buys at D = 128 too) and one fits the 163 KB of
// an A100. Measured against the two alternatives of the same size class (H200, bf16, N = 2k / 8k,
// non-causal and causal; flash_attention_forward_ablation at D = 256): 231 / 239 / 197 / 212
// TFLOP/s, against 217 / 220 / 187 / 188 for 64 x 32 with two stages (101 KB as well, but twice the
// softmax rounds and barriers per FLOP) and 229 / 238 / 185 / 214 for FlashAttention-2's 128-row
// shape as 128 x 32 with 8 warps and two stages (135 KB: one CTA per SM).
struct FwdShape {
  int block_m, block_n, warps, stages, pad;
};
constexpr FwdShape fwd_shape(FwdVariant v, int D) {
  if (D == 256) {  // variant 1 is the other stage count here, 3 the other block shape
    if (v == FwdVariant::single_stage) return {64, 32, 4, 2, 8};
    if (v == FwdVariant::other_block_n) return {128, 32, 8, 2, 8};
    return {64, 64, 4, 1, 8};
  }
  switch (v) {
    case FwdVariant::single_stage:
      return {128, 64, 4, 1, 8};
    case FwdVariant::unpadded:
      return {128, 64, 4, 2, 0};
    case FwdVariant::other_block_n:
      return {128, 32, 4, 2, 8};
    case FwdVariant::tuned:
      break;
  }
  return {128, 64, 4, 2, 8};
}

template <typename T, int D, int kBlockM, int kBlockN, int kWarps, int kStages, int kPad,
          bool kExtras>
__global__ void __launch_bounds__(kWarps * 32) flash_fwd_sm80_kernel(const FlashFwdParams p) {
  using Mma = MmaOp<T>;
  constexpr int kThreads = kWarps * 32;
  constexpr int kMT = kBlockM / (16 * kWarps);  // 16-row tiles per warp
  constexpr int kNT = kBlockN / 8;              // 8-key column tiles of S
  constexpr int kDT = D / 8;                    // 8-wide column tiles of O
  constexpr int kS = D + kPad;
  static_assert(kStages == 1 || kStages == 2, "one or two K/V stages");
  static_assert(kBlockM % (16 * kWarps) == 0, "each warp owns whole 16-row tiles");
  static_assert(kBlockN % 16 == 0 && D % 16 == 0, "tiles are multiples of the mma's k = 16");

  extern __shared__ __align__(16) unsigned char smem_raw[];
  T* s_q = reinterpret_cast<T*>(smem_raw);  // (kBlockM, kS)
  T* s_k = s_q + kBlockM * kS;              // kStages of (kBlockN, kS)
  T* s_v = s_k + kStages * kBlockN * kS;    // kStages of (kBlockN, kS)

  const int tid = threadIdx.x;
  const int warp = tid / 32, lane = tid % 32;
  const int g = lane / 4, t = lane % 4;
  // Causal: the last query blocks have the most keys; start them first so they do not form the
  // tail of the grid.
  const int m_block = p.causal ? gridDim.x - 1 - blockIdx.x : blockIdx.x;
  const int h = blockIdx.y, b = blockIdx.z;
  const int hkv = h / (p.H / p.Hkv);
  const int m0 = m_block * kBlockM;
  // Packed batches and dropout run in the second instantiation (kExtras), as run-time switches: the
  // per-sequence lengths in registers instead of the parameters' constants cost the default D = 128
  // kernel, which has no register to spare, 7-8% (measured). A packed batch's grid is sized by its
  // longest sequence: blocks past this one's end do nothing.
  const FlashSeq seq = kExtras ? flash_seq(p, b) : FlashSeq{b, p.Nq, p.Nk, 0, 0, false};
  if (kExtras && m0 >= seq.nq) return;
  const int nq = seq.nq, nk = seq.nk;
  const FlashBand band = flash_band(p, nq, nk);

  const T* g_q = static_cast<const T*>(p.q) + seq.q_off(p.q_strides, h);
  const T* g_k = static_cast<const T*>(p.k) + seq.k_off(p.k_strides, hkv);
  const T* g_v = static_cast<const T*>(p.v) + seq.k_off(p.v_strides, hkv);
  T* g_o = static_cast<T*>(p.o) + seq.q_off(p.o_strides, h);

  // The key blocks that the block's rows see: [n_first, n_first + n_iter).
  int n_first = 0, n_iter = 0;
  {
    const int first_key = max(0, m0 + band.lo);
    const int last_key = min(nk - 1, min(m0 + kBlockM, nq) - 1 + band.hi);
    if (first_key <= last_key) {
      n_first = first_key / kBlockN;
      n_iter = last_key / kBlockN + 1 - n_first;
    }
  }
  const int n_end = n_first + n_iter;

  load_tile_async<kBlockM, D, kS, kThreads>(s_q, g_q, p.q_strides.row, m0, nq, tid);
  if (n_iter > 0) {
    const int n0 = (n_end - 1) * kBlockN;
    load_tile_async<kBlockN, D, kS, kThreads>(s_k, g_k, p.k_strides.row, n0, nk, tid);
    load_tile_async<kBlockN, D, kS, kThreads>(s_v, g_v, p.v_strides.row, n0, nk, tid);
  }
  cp_async_commit();

  float r_o[kMT][kDT][4];
  float r_m[kMT][2], r_l[kMT][2];
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int dt = 0; dt < kDT; ++dt) {
#pragma unroll
      for (int e = 0; e < 4; ++e) r_o[mt][dt][e] = 0.0f;
    }
    r_m[mt][0] = r_m[mt][1] = -INFINITY;
    r_l[mt][0] = r_l[mt][1] = 0.0f;
  }
  const float scale_log2 = p.softmax_scale * kLog2e;
  const int warp_row0 = warp * kMT * 16;  // first of this warp's rows within the block
  const Dropout drop(p);
  [[maybe_unused]] const bool drop_on = kExtras && p.dropout_p > 0.0;
  [[maybe_unused]] const int bh = b * p.H + h;
  // Byte addresses of this lane's ldmatrix rows; the loops add constant offsets.
  constexpr int kE = sizeof(T);
  const uint32_t s_q_lane = smem_addr(s_q) + (warp_row0 * kS + a_operand_offset<kS>(lane)) * kE;
  const uint32_t s_k_lane = smem_addr(s_k) + b_operand_offset<kS>(lane) * kE;
  const uint32_t s_v_lane = smem_addr(s_v) + b_trans_offset<kS>(lane) * kE;

  for (int it = 0; it < n_iter; ++it) {
    const int n_block = n_end - 1 - it;
    const int stage = kStages == 2 ? it & 1 : 0;
    if constexpr (kStages == 2) {
      // Fetch the next key block into the other stage while this one is computed on.
      if (it + 1 < n_iter) {
        const int n0_next = (n_block - 1) * kBlockN;
        const int next = stage ^ 1;
        load_tile_async<kBlockN, D, kS, kThreads>(s_k + next * kBlockN * kS, g_k, p.k_strides.row,
                                                  n0_next, nk, tid);
        load_tile_async<kBlockN, D, kS, kThreads>(s_v + next * kBlockN * kS, g_v, p.v_strides.row,
                                                  n0_next, nk, tid);
      }
      cp_async_commit();  // possibly empty, so that wait<1> below always means "this stage"
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint32_t s_kt = s_k_lane + stage * kBlockN * kS * kE;
    const uint32_t s_vt = s_v_lane + stage * kBlockN * kS * kE;

    // S = Q Kᵀ: A = Q rows (ldmatrix), B = K rows read as columns (ldmatrix, no transpose).
    float r_s[kMT][kNT][4];
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) r_s[mt][nt][e] = 0.0f;
      }
    }
#pragma unroll
    for (int ks = 0; ks < D / 16; ++ks) {
      uint32_t r_a[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        ldsm_x4(r_a[mt], s_q_lane, (mt * 16 * kS + ks * 16) * kE);
      }
#pragma unroll
      for (int np = 0; np < kNT / 2; ++np) {
        uint32_t r_b[4];
        ldsm_x4(r_b, s_kt, (np * 16 * kS + ks * 16) * kE);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          Mma::run(r_s[mt][2 * np], r_a[mt], r_b[0], r_b[1]);
          Mma::run(r_s[mt][2 * np + 1], r_a[mt], r_b[2], r_b[3]);
        }
      }
    }

    // Mask keys past Nk and outside the band. Only blocks that straddle an edge for some row of
    // the warp pay for the test.
    const int n0 = n_block * kBlockN;
    const int w_first = m0 + warp_row0, w_last = w_first + kMT * 16 - 1;
    const bool need_mask =
        n0 + kBlockN > nk || n0 + kBlockN - 1 > w_first + band.hi || n0 < w_last + band.lo;
    if (need_mask) {
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int row = m0 + warp_row0 + mt * 16 + g + (e >> 1) * 8;
            const int col = n0 + nt * 8 + 2 * t + (e & 1);
            if (col >= nk || !band.visible(row, col)) r_s[mt][nt][e] = -INFINITY;
          }
        }
      }
    }

    // Online softmax. A row's kBlockN scores are spread over the 4 lanes of a quad: reduce the max
    // with two shuffles; the sums stay per lane until the end.
#pragma unroll
    for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
      for (int half = 0; half < 2; ++half) {
        float mx = r_m[mt][half];
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
          mx = fmaxf(mx, fmaxf(r_s[mt][nt][2 * half], r_s[mt][nt][2 * half + 1]));
        }
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        // A row with no visible key so far keeps m = -inf; subtract 0 then, not inf - inf.
        const float m_scaled = mx == -INFINITY ? 0.0f : mx * scale_log2;
        const float corr = fast_exp2(r_m[mt][half] * scale_log2 - m_scaled);
        r_m[mt][half] = mx;
        float sum = 0.0f;
#pragma unroll
        for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
          for (int e = 0; e < 2; ++e) {
            const float pv = fast_exp2(fmaf(r_s[mt][nt][2 * half + e], scale_log2, -m_scaled));
            r_s[mt][nt][2 * half + e] = pv;
            sum += pv;
          }
        }
        r_l[mt][half] = r_l[mt][half] * corr + sum;
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          r_o[mt][dt][2 * half] *= corr;
          r_o[mt][dt][2 * half + 1] *= corr;
        }
        if (kExtras && drop_on) {
          // After the row sum: the dropped probabilities count in l (and lse), not in P V.
          const int row = m0 + warp_row0 + mt * 16 + g + half * 8;
          const uint64_t d_row = drop.draw(p, bh, row, n0 + 2 * t);
#pragma unroll
          for (int nt = 0; nt < kNT; ++nt) {
            const uint32_t keep = drop.keep2(d_row + nt * 8);
            if (!(keep & 1)) r_s[mt][nt][2 * half] = 0.0f;
            if (!(keep & 2)) r_s[mt][nt][2 * half + 1] = 0.0f;
          }
        }
      }
    }

    // O += P V: P's C fragments become A fragments in registers; V (keys x D) is read transposed.
#pragma unroll
    for (int ks = 0; ks < kBlockN / 16; ++ks) {
      uint32_t r_p[kMT][4];
#pragma unroll
      for (int mt = 0; mt < kMT; ++mt) {
        r_p[mt][0] = Mma::pack(r_s[mt][2 * ks][0], r_s[mt][2 * ks][1]);
        r_p[mt][1] = Mma::pack(r_s[mt][2 * ks][2], r_s[mt][2 * ks][3]);
        r_p[mt][2] = Mma::pack(r_s[mt][2 * ks + 1][0], r_s[mt][2 * ks + 1][1]);
        r_p[mt][3] = Mma::pack(r_s[mt][2 * ks + 1][2], r_s[mt][2 * ks + 1][3]);
      }
#pragma unroll
      for (int dp = 0; dp < D / 16; ++dp) {
        uint32_t r_b[4];
        ldsm_x4_trans(r_b, s_vt, (ks * 16 * kS + dp * 16) * kE);
#pragma unroll
        for (int mt = 0; mt < kMT; ++mt) {
          Mma::run(r_o[mt][2 * dp], r_p[mt], r_b[0], r_b[1]);
          Mma::run(r_o[mt][2 * dp + 1], r_p[mt], r_b[2], r_b[3]);
        }
      }
    }
    __syncthreads();  // the next iteration's cp.async overwrites this stage
    if constexpr (kStages == 1) {
      if (it + 1 < n_iter) {  // no overlap: the copy waits for the compute and vice versa
        const int n0_next = (n_block - 1) * kBlockN;
        load_tile_async<kBlockN, D, kS, kThreads>(s_k, g_k, p.k_strides.row, n0_next, nk, tid);
        load_tile_async<kBlockN, D, kS, kThreads>(s_v, g_v, p.v_strides.row, n0_next, nk, tid);
      }
      cp_async_commit();
    }
  }

  // Normalise, write O (16 bits) and lse (float, natural log).
  float* g_lse = p.lse + flash_stat_row(p, seq, h);
#pragma unroll
  for (int mt = 0; mt < kMT; ++mt) {
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      float l = r_l[mt][half];
      l += __shfl_xor_sync(0xffffffffu, l, 1);
      l += __shfl_xor_sync(0xffffffffu, l, 2);
      const float inv = l > 0.0f ? (kExtras ? drop.scale : 1.0f) / l : 0.0f;
      const int row = m0 + warp_row0 + mt * 16 + g + half * 8;
      if (row < nq) {
        T* g_orow = g_o + row * p.o_strides.row;
#pragma unroll
        for (int dt = 0; dt < kDT; ++dt) {
          *reinterpret_cast<uint32_t*>(g_orow + dt * 8 + 2 * t) =
              Mma::pack(r_o[mt][dt][2 * half] * inv, r_o[mt][dt][2 * half + 1] * inv);
        }
        if (t == 0) {
          g_lse[row] = l > 0.0f ? (r_m[mt][half] * scale_log2 + log2f(l)) * kLn2 : -INFINITY;
        }
      }
    }
  }
}

template <typename T, int D, FwdVariant kVariant, bool kExtras = false>
cudaError_t launch_fwd(const FlashFwdParams& p, cudaStream_t stream) {
  constexpr FwdShape c = fwd_shape(kVariant, D);
  auto kernel =
      flash_fwd_sm80_kernel<T, D, c.block_m, c.block_n, c.warps, c.stages, c.pad, kExtras>;
  const int smem =
      (c.block_m + 2 * c.stages * c.block_n) * (D + c.pad) * static_cast<int>(sizeof(T));
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, smem);
  if (err != cudaSuccess) return err;
  const dim3 grid((p.Nq + c.block_m - 1) / c.block_m, p.H, p.B);
  kernel<<<grid, c.warps * 32, smem, stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

template <typename T, int D>
cudaError_t run_flash_fwd_sm80(const FlashFwdParams& p, cudaStream_t stream) {
  // Dropout and packed batches are a separate instantiation, so that their code and registers
  // cost the plain kernel nothing (D = 256 takes no dropout: flash_attention_check).
  if (p.dropout_p > 0.0 || p.cu_seqlens_q != nullptr) {
    return launch_fwd<T, D, FwdVariant::tuned, true>(p, stream);
  }
  return launch_fwd<T, D, FwdVariant::tuned>(p, stream);
}

cudaError_t run_flash_fwd_sm80_variant(const FlashFwdParams& p, FwdVariant variant,
                                       cudaStream_t stream) {
  using T = __nv_bfloat16;
  if (p.dtype == FlashDType::bf16 && p.D == 256) {  // the other D = 256 tiles (see fwd_shape)
    if (variant == FwdVariant::single_stage)
      return launch_fwd<T, 256, FwdVariant::single_stage>(p, stream);
    if (variant == FwdVariant::other_block_n)
      return launch_fwd<T, 256, FwdVariant::other_block_n>(p, stream);
    if (variant == FwdVariant::tuned) return run_flash_fwd_sm80<T, 256>(p, stream);
    return cudaErrorInvalidValue;
  }
  if (p.dtype != FlashDType::bf16 || p.D != 128) return cudaErrorInvalidValue;
  if (variant == FwdVariant::tuned) return run_flash_fwd_sm80<__nv_bfloat16, 128>(p, stream);
  if (p.dropout_p > 0.0) return cudaErrorInvalidValue;  // the ablations have no dropout
  switch (variant) {
    case FwdVariant::single_stage:
      return launch_fwd<T, 128, FwdVariant::single_stage>(p, stream);
    case FwdVariant::unpadded:
      return launch_fwd<T, 128, FwdVariant::unpadded>(p, stream);
    case FwdVariant::other_block_n:
      return launch_fwd<T, 128, FwdVariant::other_block_n>(p, stream);
    case FwdVariant::tuned:
      break;
  }
  return launch_fwd<T, 128, FwdVariant::tuned>(p, stream);
}

template cudaError_t run_flash_fwd_sm80<__nv_bfloat16, 64>(const FlashFwdParams&, cudaStream_t);
template cudaError_t run_flash_fwd_sm80<__nv_bfloat16, 128>(const FlashFwdParams&, cudaStream_t);
template cudaError_t run_flash_fwd_sm80<__half, 64>(const FlashFwdParams&, cudaStream_t);
template cudaError_t run_flash_fwd_sm80<__half, 128>(const FlashFwdParams&, cudaStream_t);
template cudaError_t run_flash_fwd_sm80<__nv_bfloat16, 256>(const FlashFwdParams&, cudaStream_t);
template cudaError_t run_flash_fwd_sm80<__half, 256>(const FlashFwdParams&, cudaStream_t);

}  // namespace tilegrad::cuda::flash
