// Building blocks of the sm_80 FlashAttention kernels: the warp-level tensor-core instruction
// (mma.sync m16n8k16), shared-memory matrix loads (ldmatrix), asynchronous global-to-shared copies
// (cp.async) and the tile copier built on them. Everything here runs on Ampere and later.
//
// Fragment layouts of mma.sync.m16n8k16 (lane = 4 * g + t, g = lane / 4, t = lane % 4):
//   A (16 x 16, row-major) a0: (g, 2t..2t+1)  a1: (g+8, 2t..)  a2: (g, 2t+8..)  a3: (g+8, 2t+8..)
//   B (16 x 8, k x n)      b0: (k = 2t..2t+1, n = g)  b1: (k = 2t+8.., n = g)
//   C (16 x 8, float)      c0, c1: (g, 2t..2t+1)  c2, c3: (g+8, 2t..2t+1)
// so the C fragments of two neighbouring 8-column tiles are, converted to 16 bits, exactly the A
// fragment of a 16-column step: P = softmax(S) goes from one matrix product into the next without
// leaving registers.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>

#include "kernels/cuda/flash_api.h"
#include "kernels/cuda/random.h"

namespace tilegrad::cuda::flash {

// ---- launchers (host)

// An attribute of the current device, for the launchers' choices (SM count, shared memory).
inline cudaError_t current_device_attribute(cudaDeviceAttr attr, int* value) {
  int dev = 0;
  const cudaError_t err = cudaGetDevice(&dev);
  return err != cudaSuccess ? err : cudaDeviceGetAttribute(value, attr, dev);
}

// ---- masks: the band of visible keys (flash_api.h)

// Stands for "no limit" on a side of the band: far past any index, yet i + shift ± kNoLimit stays
// inside int for any N the kernels accept (flash_attention_check bounds Nq and Nk by 2^28).
inline constexpr int kNoLimit = 1 << 29;

// Query i sees key j < Nk iff i + lo <= j <= i + hi, with lo = shift - left and hi = shift + right
// (shift = Nk - Nq); causal is the band with right = 0. Two offsets, so that the band costs the
// kernels' hot loops two registers. The kernels test whole blocks against its edges and single
// elements only in blocks that straddle an edge.
struct FlashBand {
  int lo, hi;
  __host__ __device__ bool visible(int i, int j) const { return j <= i + hi && j >= i + lo; }
};
// The band of a sequence of nq queries and nk keys (a packed batch's masks apply per sequence).
__host__ __device__ inline FlashBand flash_band(const FlashFwdParams& p, int nq, int nk) {
  int right = p.window_right >= 0 && p.window_right < kNoLimit ? p.window_right : kNoLimit;
  if (p.causal && right > 0) right = 0;
  const int left = p.window_left >= 0 && p.window_left < kNoLimit ? p.window_left : kNoLimit;
  const int shift = nk - nq;
  return {shift - left, shift + right};
}
__host__ __device__ inline FlashBand flash_band(const FlashFwdParams& p) {
  return flash_band(p, p.Nq, p.Nk);
}

// ---- one sequence of the batch: padded (B, N, H, D) operands or a packed varlen batch

// Rows of lse, dsum and the dQ accumulator per head: Nq, or total_q when packed. Those buffers are
// (B, H, Nq) or (H, total_q), so row i of (b, h) is at stat_row(h) + i either way.
__host__ __device__ inline int flash_q_rows(const FlashFwdParams& p) {
  return p.cu_seqlens_q != nullptr ? p.total_q : p.Nq;
}
__host__ __device__ inline int64_t flash_stat_rows(const FlashFwdParams& p) {
  return static_cast<int64_t>(p.cu_seqlens_q != nullptr ? 1 : p.B) * p.H * flash_q_rows(p);
}

// Sequence b's lengths and where its rows start: the sm_80 kernels address everything through
// this, so the packed layout costs the padded one two selects per CTA.
struct FlashSeq {
  int b, nq, nk;
  int64_t q_row0, k_row0;  // the sequence's first row in the packed operands (0 when padded)
  bool packed;
  // Element offsets of the sequence's row 0 of head h in a q-side or k-side operand.
  __device__ int64_t q_off(const FlashStrides& s, int h) const {
    return (packed ? q_row0 * s.row : b * s.batch) + h * s.head;
  }
  __device__ int64_t k_off(const FlashStrides& s, int h) const {
    return (packed ? k_row0 * s.row : b * s.batch) + h * s.head;
  }
};
__device__ inline FlashSeq flash_seq(const FlashFwdParams& p, int b) {
  if (p.cu_seqlens_q == nullptr) return {b, p.Nq, p.Nk, 0, 0, false};
  const int q0 = p.cu_seqlens_q[b], k0 = p.cu_seqlens_k[b];
  return {b, p.cu_seqlens_q[b + 1] - q0, p.cu_seqlens_k[b + 1] - k0, q0, k0, true};
}
// Row 0 of (sequence, head h) in lse, dsum and the dQ accumulator (see flash_q_rows).
__device__ inline int64_t flash_stat_row(const FlashFwdParams& p, const FlashSeq& s, int h) {
  return s.packed ? static_cast<int64_t>(h) * p.total_q + s.q_row0
                  : (static_cast<int64_t>(s.b) * p.H + h) * p.Nq;
}

// ---- dropout: Philox4x32-10 exactly as core/rng.h computes it on the CPU

// Philox block `block` (draws 4 block ..= 4 block + 3) of the stream `seed`, and word i of it:
// random.h's, on core/rng.h's round (one IMAD.WIDE.U32 per product on the GPU).
using tilegrad::kernels::cuda::philox_block;
using tilegrad::kernels::cuda::philox_word;

// The dropout parameters of one call: the keep threshold on a draw's top 24 bits and the scale of
// kept values, computed as core/rng.h's dropout_keep_threshold and dropout_scale do.
struct Dropout {
  uint64_t seed, offset;
  uint32_t threshold;
  float scale;
  __device__ explicit Dropout(const FlashFwdParams& p)
      : seed(p.dropout_seed),
        offset(p.dropout_offset),
        threshold(static_cast<uint32_t>(ceil(p.dropout_p * 16777216.0))),
        scale(p.dropout_p < 1.0 ? static_cast<float>(1.0 / (1.0 - p.dropout_p)) : 0.0f) {}
  // Whether draw d is kept.
  __device__ __forceinline__ bool keep(uint64_t d) const {
    return dropout_keep(philox_word(philox_block(seed, d >> 2), static_cast<uint32_t>(d) & 3),
                        threshold);
  }
  // Whether draws d and d + 1 are kept (bits 0 and 1): one Philox block unless the pair straddles
  // two.
  __device__ __forceinline__ uint32_t keep2(uint64_t d) const {
    const uint32_t lane = static_cast<uint32_t>(d) & 3;
    const uint4 r = philox_block(seed, d >> 2);
    const uint32_t x0 = philox_word(r, lane);
    const uint32_t x1 = lane == 3 ? philox_block(seed, (d >> 2) + 1).x : philox_word(r, lane + 1);
    return (dropout_keep(x0, threshold) ? 1u : 0u) | (dropout_keep(x1, threshold) ? 2u : 0u);
  }
  // The draw number of element (bh = b · H + h, i, j).
  __device__ __forceinline__ uint64_t draw(const FlashFwdParams& p, int bh, int i, int j) const {
    return offset + (static_cast<uint64_t>(bh) * p.Nq + i) * p.Nk + j;
  }
};

// The dropout mask of a backward thread's elements of the transposed scores Sᵀ (both backward
// kernels' fragment layout): element e of 8-query column tile nt (of kNT) is key `key` + 8 (e / 2)
// and query `q` + 8 nt + e % 2, and bit 4 nt + e of the mask says whether dropout keeps it.
template <int kNT>
struct KeepMask {
  uint32_t bits[(kNT * 4 + 31) / 32];
  // Draws the mask into zeroed bits. Consecutive queries of a key are Nk draws apart, so each
  // element costs one Philox block. With `on` false (the extras instantiation without dropout)
  // every element is kept.
  __device__ __forceinline__ void draw(const Dropout& drop, const FlashFwdParams& f, bool on,
                                       int bh, int q, int key) {
    if (on) {
      const uint64_t d0 = drop.draw(f, bh, q, key);
#pragma unroll
      for (int nt = 0; nt < kNT; ++nt) {
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int bit = 4 * nt + e;
          const uint64_t d = d0 + static_cast<uint64_t>(nt * 8 + (e & 1)) * f.Nk + (e >> 1) * 8;
          if (drop.keep(d)) bits[bit / 32] |= 1u << (bit % 32);
        }
      }
    } else {
      for (uint32_t& w : bits) w = ~0u;  // no dropout: every element kept, scale 1
    }
  }
  __device__ __forceinline__ uint32_t kept(int bit) const {
    return (bits[bit / 32] >> (bit % 32)) & 1u;
  }
};

// ---- the backward's query blocks: those that see a key block

// The query blocks of block_m rows (of nq queries) whose rows see some key of keys n0 ..= n0 +
// block_n - 1 (of nk) under the band: first, first + 1, ..., first + count - 1 (count 0 when none).
struct BlockSpan {
  int first, count;
};
__device__ __forceinline__ BlockSpan query_blocks_seeing(const FlashBand& band, int n0, int block_n,
                                                         int nq, int nk, int block_m) {
  int first = 0, count = 0;
  const int first_q = max(0, n0 - band.hi);
  const int last_q = min(nq - 1, min(n0 + block_n, nk) - 1 - band.lo);
  if (first_q <= last_q) {
    first = first_q / block_m;
    count = last_q / block_m + 1 - first;
  }
  return {first, count};
}

// ---- the deterministic backward's ordering counters (global memory, one int per query block)

// The counter of the 64 query rows from m0 (a multiple of 64) of (batch b, head h): the workspace
// holds B · H · ceil(Nq / 64) of them (flash_api.cu).
__device__ __forceinline__ int* dq_semaphore(int* semaphores, const FlashFwdParams& f, int b, int h,
                                             int m0) {
  return semaphores + (static_cast<int64_t>(b) * f.H + h) * ((f.Nq + 63) / 64) + m0 / 64;
}

// Spins until *sem == value; the acquire orders this thread's later accesses after the previous
// key block's writes to the accumulator.
__device__ __forceinline__ void sem_wait(const int* sem, int value) {
  int v;
  do {
    asm volatile("ld.acquire.gpu.global.s32 %0, [%1];\n" : "=r"(v) : "l"(sem) : "memory");
  } while (v != value);
}
// Publishes value; the release orders this CTA's earlier writes to the accumulator before it.
__device__ __forceinline__ void sem_signal(int* sem, int value) {
  asm volatile("st.release.gpu.global.s32 [%0], %1;\n" ::"l"(sem), "r"(value) : "memory");
}
// The deterministic order: key blocks add their part of query block m (rows m0 .. m0 + block_m -
// 1) from the highest key block that any of those rows sees down to the lowest, so key block n
// goes when the counter reads last_key_block(m) - n. Both backward kernels walk the query blocks in
// increasing order and launch the key blocks in decreasing order, so a key block only ever waits
// for blocks that started before it.
__device__ __forceinline__ int last_key_block(const FlashBand& band, int m0, int block_m,
                                              int block_n, int n_blocks) {
  const int hi = m0 + block_m - 1 + band.hi;  // the last key the block's rows see
  return hi < 0 ? -1 : min(n_blocks - 1, hi / block_n);
}

// Where column col of query row i lives in a row of the float32 dQ accumulator as the Hopper
// backward lays it out: 8-float groups swapped by XOR with i % 4. The Hopper kernel stages a block
// of dQ in shared memory in exactly the accumulator's layout (one bulk reduction adds it), and its
// fragments put 8 rows with the same columns into one store; rows are a multiple of 128 bytes
// apart, so unswizzled those 8 rows share banks (4 wavefronts per half-warp instead of 1). The
// sm_80 kernel keeps the plain layout; the conversion kernel reads either.
__host__ __device__ __forceinline__ int dq_accum_col(int i, int col) {
  return col ^ ((i & 3) << 3);
}

template <typename T>
struct MmaOp;

template <>
struct MmaOp<__nv_bfloat16> {
  // c += a * b on a 16 x 8 x 16 tile, bf16 operands, float32 accumulators.
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __nv_bfloat162 h = __floats2bfloat162_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ float2 unpack(uint32_t u) {
    __nv_bfloat162 h;
    *reinterpret_cast<uint32_t*>(&h) = u;
    return __bfloat1622float2(h);
  }
};

template <>
struct MmaOp<__half> {
  static __device__ __forceinline__ void run(float (&c)[4], const uint32_t (&a)[4], uint32_t b0,
                                             uint32_t b1) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, "
        "{%8,%9}, {%0,%1,%2,%3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
  static __device__ __forceinline__ uint32_t pack(float lo, float hi) {
    const __half2 h = __floats2half2_rn(lo, hi);
    return *reinterpret_cast<const uint32_t*>(&h);
  }
  static __device__ __forceinline__ float2 unpack(uint32_t u) {
    __half2 h;
    *reinterpret_cast<uint32_t*>(&h) = u;
    return __half22float2(h);
  }
};

__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// Four 8 x 8 matrices of 16-bit elements; lanes 8i..8i+7 give the row addresses of matrix i, and
// r[i] receives this lane's pair of matrix i (row lane / 4, columns 2 (lane % 4) ..+1). The address
// is a per-thread shared-memory base plus an offset that is a constant after unrolling: the add
// sits inside the asm so that the compiler cannot hoist one address register per (k-step, tile) out
// of the loop (it did, and spilled); ptxas folds the constant into the instruction's immediate.
__device__ __forceinline__ void ldsm_x4(uint32_t (&r)[4], uint32_t s_base, uint32_t offset) {
  asm volatile(
      "{\n.reg .b32 addr;\nadd.u32 addr, %4, %5;\n"
      "ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0,%1,%2,%3}, [addr];\n}\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(s_base), "r"(offset));
}
// The same, each matrix transposed: r[i] receives (rows 2 (lane % 4) ..+1, column lane / 4).
__device__ __forceinline__ void ldsm_x4_trans(uint32_t (&r)[4], uint32_t s_base, uint32_t offset) {
  asm volatile(
      "{\n.reg .b32 addr;\nadd.u32 addr, %4, %5;\n"
      "ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0,%1,%2,%3}, [addr];\n}\n"
      : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
      : "r"(s_base), "r"(offset));
}

// Per-lane element offsets of the ldmatrix.x4 row addresses within a row-major tile of kStride
// elements per row, for the three ways the kernels read 16 x 16 blocks:
//   a_operand:  an A fragment (rows = M, columns = K): matrices (r, c), (r+8, c), (r, c+8), (r+8,
//   c+8) b_operand:  B fragments of two 8-column tiles from rows = N, columns = K (K rows of QKᵀ):
//               (n, k), (n, k+8), (n+8, k), (n+8, k+8), no transpose
//   b_trans:    B fragments of two 8-column tiles from rows = K, columns = N (V of PV), transposed:
//               (k, n), (k+8, n), (k, n+8), (k+8, n+8)
template <int kStride>
__device__ __forceinline__ int a_operand_offset(int lane) {
  return (lane & 15) * kStride + (lane >> 4) * 8;
}
template <int kStride>
__device__ __forceinline__ int b_operand_offset(int lane) {
  return ((lane & 7) + (lane >> 4) * 8) * kStride + ((lane >> 3) & 1) * 8;
}
template <int kStride>
__device__ __forceinline__ int b_trans_offset(int lane) {
  return ((lane & 7) + ((lane >> 3) & 1) * 8) * kStride + (lane >> 4) * 8;
}

// 16 bytes global -> shared without passing through registers; when !valid the destination is
// zero-filled and nothing is read (the source must still be a mapped address).
__device__ __forceinline__ void cp_async_16(void* s_dst, const void* g_src, bool valid) {
  const int src_bytes = valid ? 16 : 0;
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(s_dst)),
               "l"(g_src), "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_4(void* s_dst, const void* g_src, bool valid) {
  const int src_bytes = valid ? 4 : 0;
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(s_dst)), "l"(g_src),
               "r"(src_bytes));
}
__device__ __forceinline__ void cp_async_commit() {
  asm volatile("cp.async.commit_group;\n" ::);
}
// Waits until at most `kPending` of this thread's committed groups are still in flight.
template <int kPending>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(kPending));
}

// dst[0..kWidth) += v, as float reductions with no value returned; dst is 4 * kWidth-byte aligned.
// sm_90 adds 2 or 4 neighbouring floats in one instruction; earlier GPUs one float at a time.
template <int kWidth>
__device__ __forceinline__ void red_add(float* dst, const float (&v)[kWidth]) {
  static_assert(kWidth == 1 || kWidth == 2 || kWidth == 4, "1, 2 or 4 floats");
#if __CUDA_ARCH__ >= 900
  if constexpr (kWidth == 4) {
    asm volatile("red.global.add.v4.f32 [%0], {%1, %2, %3, %4};" ::"l"(dst), "f"(v[0]), "f"(v[1]),
                 "f"(v[2]), "f"(v[3])
                 : "memory");
  } else if constexpr (kWidth == 2) {
    asm volatile("red.global.add.v2.f32 [%0], {%1, %2};" ::"l"(dst), "f"(v[0]), "f"(v[1])
                 : "memory");
  } else {
    atomicAdd(dst, v[0]);
  }
#else
#pragma unroll
  for (int i = 0; i < kWidth; ++i) atomicAdd(dst + i, v[i]);
#endif
}

__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Shared-memory tiles are row-major with kStride = D + 8 elements per row: the 16-byte pad shifts
// consecutive rows by four banks, so the eight row addresses of an ldmatrix hit eight distinct
// 16-byte bank groups (no conflicts) while every row stays 16-byte aligned for cp.async.
template <int D>
inline constexpr int kSmemStride = D + 8;

// Copies rows [row0, row0 + kRows) of a (rows, D) operand into a shared tile of kStride elements
// per row with cp.async, zero-filling rows >= n_rows. Thread tid moves the 16-byte chunk tid %
// (D/8) of rows tid / (D/8), + kRowsPerPass, + 2 kRowsPerPass, ...: one 64-bit address per thread,
// advanced by a fixed stride, instead of a multiply per chunk.
template <int kRows, int D, int kStride, int kThreads, typename T>
__device__ __forceinline__ void load_tile_async(T* s_tile, const T* g_base, int64_t row_stride,
                                                int row0, int n_rows, int tid) {
  constexpr int kChunksPerRow = D / 8;
  static_assert(kThreads % kChunksPerRow == 0, "a pass of the threads covers whole rows");
  constexpr int kRowsPerPass = kThreads / kChunksPerRow;
  static_assert(kRows % kRowsPerPass == 0, "the tile is a whole number of passes");
  const int r = tid / kChunksPerRow;
  const int c = (tid % kChunksPerRow) * 8;
  const T* src = g_base + (row0 + r) * row_stride + c;
  const int64_t pass_stride = kRowsPerPass * row_stride;
  T* dst = s_tile + r * kStride + c;
#pragma unroll
  for (int i = 0; i < kRows / kRowsPerPass; ++i) {
    const bool valid = row0 + r + i * kRowsPerPass < n_rows;
    cp_async_16(dst + i * kRowsPerPass * kStride, valid ? src + i * pass_stride : g_base, valid);
  }
}

}  // namespace tilegrad::cuda::flash
