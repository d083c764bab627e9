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

#include <cstdint>

namespace tilegrad::cuda::flash {

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
