// Building blocks of the Hopper (sm_90a) FlashAttention kernels: warpgroup matrix products
// (wgmma) with operands in shared memory, the shared-memory matrix descriptors they read, bulk
// tensor copies (TMA, cp.async.bulk.tensor) completing on mbarriers, named barriers between
// warpgroups and register reallocation (setmaxnreg). Device code here assembles only for sm_90a;
// callers guard their kernel bodies with __CUDA_ARCH_FEAT_SM90_ALL.
//
// Layouts. Tiles are loaded by TMA with the 128-byte swizzle: a box is 64 16-bit elements (128
// bytes) wide, each row of it one 128-byte line, and within each 1024-byte group of eight lines the
// 16-byte chunks of line r are permuted by XOR with r % 8, so the eight rows that a tensor-core
// read touches at once fall in distinct banks. A D-wide tile is stored as D / 64 such boxes one
// after the other ("chunks"). wgmma reads the same pattern through a descriptor (start address,
// leading and stride byte offsets, swizzle mode):
//   K-major operand (Q and K in S = Q Kᵀ: the reduction dimension D is contiguous): rows 128 bytes
//     apart, groups of 8 rows SBO = 1024 bytes apart, LBO unused; a k16 step inside a chunk moves
//     the start address by 32 bytes, the next chunk starts a whole chunk later.
//   MN-major operand (V in O = P V: the output dimension D is contiguous, the reduction runs over
//     the key rows): LBO = the distance between 64-column chunks, SBO = 1024 bytes between groups
//     of 8 key rows; a k16 step moves 16 rows (2048 bytes).
// Accumulator fragments of wgmma.m64nNk16 (per warp w of the warpgroup, lane = 4 g + t): d[4 j + e]
// holds row 16 w + g + 8 (e / 2), column 8 j + 2 t + (e % 2), the mma.sync C layout repeated over
// N / 8 column tiles; an A fragment in registers has the mma.sync m16n8k16 A layout, so P passes
// from the first product's accumulators to the second's A operand in registers, as on sm_80.
#pragma once

#include <cuda.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "kernels/cuda/flash_tma.h"

namespace tilegrad::cuda::flash {

// ---- shared-memory matrix descriptors (wgmma)

// Descriptor of a 128-byte-swizzled tile at shared address `addr` (1024-byte aligned for the
// pattern to match TMA's): bits 0-13 address / 16, 16-29 LBO / 16, 32-45 SBO / 16, 62-63 swizzle
// mode (1 = 128 bytes).
__device__ __forceinline__ uint64_t smem_desc_sw128(uint32_t addr, uint32_t lbo_bytes,
                                                    uint32_t sbo_bytes) {
  return static_cast<uint64_t>((addr & 0x3FFFF) >> 4) |
         (static_cast<uint64_t>(lbo_bytes >> 4) << 16) |
         (static_cast<uint64_t>(sbo_bytes >> 4) << 32) | (1ull << 62);
}

// ---- wgmma issue, fences and waits

// Orders this warpgroup's register writes before the wgmma that follow (accumulators rescaled, A
// fragments written).
__device__ __forceinline__ void wgmma_fence() {
  asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory");
}
__device__ __forceinline__ void wgmma_commit() {
  asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory");
}
// Waits until at most kPending committed groups of this warpgroup are in flight.
template <int kPending>
__device__ __forceinline__ void wgmma_wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(kPending) : "memory");
}
// The compiler sees a wgmma's registers as read/written when it is issued; these empty asm
// statements pin them at the wait as well, so that no read, write or reuse of them moves into
// the window where the tensor cores still own them.
template <int N>
__device__ __forceinline__ void fence_regs(float (&r)[N]) {
#pragma unroll
  for (int i = 0; i < N; ++i) asm volatile("" : "+f"(r[i])::"memory");
}
template <int N>
__device__ __forceinline__ void fence_regs(uint32_t (&r)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i) {
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+r"(r[i][j])::"memory");
  }
}

// One asm statement per (shape, element type, operand source): d (64 x N, float32) = A (64 x 16)
// B (16 x N) + (scale_d ? d : 0). "ss": A and B from shared memory, both K-major; "rs": A from
// registers, B from shared memory MN-major (imm-trans-b = 1).
__device__ __forceinline__ void wgmma_rs_m64n64k16_bf16(float (&d)[32], const uint32_t (&a)[4],
                                                        uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "
      "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, "
      "1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_rs_m64n64k16_f16(float (&d)[32], const uint32_t (&a)[4],
                                                       uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %37, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "
      "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31}, {%32, %33, %34, %35}, %36, p, "
      "1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_rs_m64n128k16_bf16(float (&d)[64], const uint32_t (&a)[4],
                                                         uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.bf16.bf16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "
      "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "
      "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "
      "%56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
        "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

__device__ __forceinline__ void wgmma_rs_m64n128k16_f16(float (&d)[64], const uint32_t (&a)[4],
                                                        uint64_t desc_b, int scale_d) {
  asm volatile(
      "{\n.reg .pred p;\n"
      "setp.ne.b32 p, %69, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 "
      "{%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, %16, %17, %18, %19, "
      "%20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, %32, %33, %34, %35, %36, %37, "
      "%38, %39, %40, %41, %42, %43, %44, %45, %46, %47, %48, %49, %50, %51, %52, %53, %54, %55, "
      "%56, %57, %58, %59, %60, %61, %62, %63}, {%64, %65, %66, %67}, %68, p, 1, 1, 1;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]),
        "+f"(d[7]), "+f"(d[8]), "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]),
        "+f"(d[14]), "+f"(d[15]), "+f"(d[16]), "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]),
        "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]), "+f"(d[25]), "+f"(d[26]), "+f"(d[27]),
        "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]), "+f"(d[33]), "+f"(d[34]),
        "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]), "+f"(d[41]),
        "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]),
        "+f"(d[56]), "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]),
        "+f"(d[63])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d));
}

// The shapes templated on the element type: each asm statement is spelled once, by a macro whose
// TY is the PTX element type ("bf16" or "f16"), and its accumulator operands by TG_WGMMA_OUT*.
#define TG_WGMMA_D32                                                       \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, " \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31"
#define TG_WGMMA_D40                                                                 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "           \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39"
#define TG_WGMMA_D64                                                                 \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "           \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, " \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, " \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63"
#define TG_WGMMA_D128                                                                            \
  "%0, %1, %2, %3, %4, %5, %6, %7, %8, %9, %10, %11, %12, %13, %14, %15, "                       \
  "%16, %17, %18, %19, %20, %21, %22, %23, %24, %25, %26, %27, %28, %29, %30, %31, "             \
  "%32, %33, %34, %35, %36, %37, %38, %39, %40, %41, %42, %43, %44, %45, %46, %47, "             \
  "%48, %49, %50, %51, %52, %53, %54, %55, %56, %57, %58, %59, %60, %61, %62, %63, "             \
  "%64, %65, %66, %67, %68, %69, %70, %71, %72, %73, %74, %75, %76, %77, %78, %79, "             \
  "%80, %81, %82, %83, %84, %85, %86, %87, %88, %89, %90, %91, %92, %93, %94, %95, "             \
  "%96, %97, %98, %99, %100, %101, %102, %103, %104, %105, %106, %107, %108, %109, %110, %111, " \
  "%112, %113, %114, %115, %116, %117, %118, %119, %120, %121, %122, %123, %124, %125, %126, %127"
#define TG_WGMMA_OUT8(d, i)                                                                   \
  "+f"(d[i]), "+f"(d[i + 1]), "+f"(d[i + 2]), "+f"(d[i + 3]), "+f"(d[i + 4]), "+f"(d[i + 5]), \
      "+f"(d[i + 6]), "+f"(d[i + 7])
#define TG_WGMMA_OUT32(d, i) \
  TG_WGMMA_OUT8(d, i), TG_WGMMA_OUT8(d, i + 8), TG_WGMMA_OUT8(d, i + 16), TG_WGMMA_OUT8(d, i + 24)
#define TG_WGMMA_OUT64(d) TG_WGMMA_OUT32(d, 0), TG_WGMMA_OUT32(d, 32)
#define TG_WGMMA_OUT128(d) \
  TG_WGMMA_OUT32(d, 0), TG_WGMMA_OUT32(d, 32), TG_WGMMA_OUT32(d, 64), TG_WGMMA_OUT32(d, 96)
// Runs STMT(TY) with T's PTX element type.
#define TG_WGMMA_FOR_TYPE(T, STMT)                  \
  if constexpr (std::is_same_v<T, __nv_bfloat16>) { \
    STMT("bf16");                                   \
  } else {                                          \
    STMT("f16");                                    \
  }

// d (64 x 64) = A B + (scale_d ? d : 0), both operands from shared memory; kTransA / kTransB = 1
// for an MN-major operand.
#define TG_WGMMA_SS_M64N64K16(TY)                                               \
  asm volatile(                                                                 \
      "{\n.reg .pred p;\n"                                                      \
      "setp.ne.b32 p, %34, 0;\n"                                                \
      "wgmma.mma_async.sync.aligned.m64n64k16.f32." TY "." TY " {" TG_WGMMA_D32 \
      "}, %32, %33, p, 1, 1, %35, %36;\n}\n"                                    \
      : TG_WGMMA_OUT32(d, 0)                                                    \
      : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransA), "n"(kTransB))
template <typename T, int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_ss_m64n64k16(float (&d)[32], uint64_t desc_a, uint64_t desc_b,
                                                   int scale_d) {
  TG_WGMMA_FOR_TYPE(T, TG_WGMMA_SS_M64N64K16)
}

// d (64 x 128) = A B + (scale_d ? d : 0), both operands from shared memory (kTransA / kTransB = 1
// for an MN-major operand): S = Q Kᵀ at D = 64 (both K-major), and the D = 256 backward's dV, dK
// (A K-major, B MN-major) and dQ (both MN-major).
#define TG_WGMMA_SS_M64N128K16(TY)                                               \
  asm volatile(                                                                  \
      "{\n.reg .pred p;\n"                                                       \
      "setp.ne.b32 p, %66, 0;\n"                                                 \
      "wgmma.mma_async.sync.aligned.m64n128k16.f32." TY "." TY " {" TG_WGMMA_D64 \
      "}, %64, %65, p, 1, 1, %67, %68;\n}\n"                                     \
      : TG_WGMMA_OUT64(d)                                                        \
      : "l"(desc_a), "l"(desc_b), "r"(scale_d), "n"(kTransA), "n"(kTransB))
template <typename T, int kTransA, int kTransB>
__device__ __forceinline__ void wgmma_ss_m64n128k16(float (&d)[64], uint64_t desc_a,
                                                    uint64_t desc_b, int scale_d) {
  TG_WGMMA_FOR_TYPE(T, TG_WGMMA_SS_M64N128K16)
}

// d (64 x 256) = A (64 x 16, registers) B (16 x 256, MN-major) + (scale_d ? d : 0): O += P V at
// D = 256.
#define TG_WGMMA_RS_M64N256K16(TY)                                                \
  asm volatile(                                                                   \
      "{\n.reg .pred p;\n"                                                        \
      "setp.ne.b32 p, %133, 0;\n"                                                 \
      "wgmma.mma_async.sync.aligned.m64n256k16.f32." TY "." TY " {" TG_WGMMA_D128 \
      "}, {%128, %129, %130, %131}, %132, p, 1, 1, 1;\n}\n"                       \
      : TG_WGMMA_OUT128(d)                                                        \
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(desc_b), "r"(scale_d))
template <typename T>
__device__ __forceinline__ void wgmma_rs_m64n256k16(float (&d)[128], const uint32_t (&a)[4],
                                                    uint64_t desc_b, int scale_d) {
  TG_WGMMA_FOR_TYPE(T, TG_WGMMA_RS_M64N256K16)
}

// d (64 x 80) = A B + (scale_d ? d : 0), A and B K-major in shared memory: S over the forward's
// 80-key blocks at D = 256.
#define TG_WGMMA_SS_M64N80K16(TY)                                               \
  asm volatile(                                                                 \
      "{\n.reg .pred p;\n"                                                      \
      "setp.ne.b32 p, %42, 0;\n"                                                \
      "wgmma.mma_async.sync.aligned.m64n80k16.f32." TY "." TY " {" TG_WGMMA_D40 \
      "}, %40, %41, p, 1, 1, 0, 0;\n}\n"                                        \
      : TG_WGMMA_OUT32(d, 0), TG_WGMMA_OUT8(d, 32)                              \
      : "l"(desc_a), "l"(desc_b), "r"(scale_d))
template <typename T>
__device__ __forceinline__ void wgmma_ss_m64n80k16(float (&d)[40], uint64_t desc_a, uint64_t desc_b,
                                                   int scale_d) {
  TG_WGMMA_FOR_TYPE(T, TG_WGMMA_SS_M64N80K16)
}

#undef TG_WGMMA_SS_M64N80K16
#undef TG_WGMMA_RS_M64N256K16
#undef TG_WGMMA_SS_M64N64K16
#undef TG_WGMMA_SS_M64N128K16
#undef TG_WGMMA_FOR_TYPE
#undef TG_WGMMA_OUT128
#undef TG_WGMMA_OUT64
#undef TG_WGMMA_OUT32
#undef TG_WGMMA_OUT8
#undef TG_WGMMA_D128
#undef TG_WGMMA_D64
#undef TG_WGMMA_D40
#undef TG_WGMMA_D32

// The shapes whose asm is written once for both element types, the forward's at D = 256: S over
// 80-key blocks (m64n80k16) and O += P V (m64n256k16). Wgmma<T> adds the per-type shapes below.
template <typename T>
struct WgmmaShapes {
  static __device__ __forceinline__ void ss(float (&d)[40], uint64_t a, uint64_t b, int scale_d) {
    wgmma_ss_m64n80k16<T>(d, a, b, scale_d);
  }
  static __device__ __forceinline__ void rs(float (&d)[128], const uint32_t (&a)[4], uint64_t b,
                                            int scale_d) {
    wgmma_rs_m64n256k16<T>(d, a, b, scale_d);
  }
};

template <typename T>
struct Wgmma;

template <>
struct Wgmma<__nv_bfloat16> : WgmmaShapes<__nv_bfloat16> {
  static __device__ __forceinline__ void ss(float (&d)[64], uint64_t a, uint64_t b, int scale_d) {
    wgmma_ss_m64n128k16<__nv_bfloat16, 0, 0>(d, a, b, scale_d);
  }
  static __device__ __forceinline__ void rs(float (&d)[64], const uint32_t (&a)[4], uint64_t b,
                                            int scale_d) {
    wgmma_rs_m64n128k16_bf16(d, a, b, scale_d);
  }
  static __device__ __forceinline__ void rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b,
                                            int scale_d) {
    wgmma_rs_m64n64k16_bf16(d, a, b, scale_d);
  }
  using WgmmaShapes<__nv_bfloat16>::ss;
  using WgmmaShapes<__nv_bfloat16>::rs;
};

template <>
struct Wgmma<__half> : WgmmaShapes<__half> {
  static __device__ __forceinline__ void ss(float (&d)[64], uint64_t a, uint64_t b, int scale_d) {
    wgmma_ss_m64n128k16<__half, 0, 0>(d, a, b, scale_d);
  }
  static __device__ __forceinline__ void rs(float (&d)[64], const uint32_t (&a)[4], uint64_t b,
                                            int scale_d) {
    wgmma_rs_m64n128k16_f16(d, a, b, scale_d);
  }
  static __device__ __forceinline__ void rs(float (&d)[32], const uint32_t (&a)[4], uint64_t b,
                                            int scale_d) {
    wgmma_rs_m64n64k16_f16(d, a, b, scale_d);
  }
  using WgmmaShapes<__half>::ss;
  using WgmmaShapes<__half>::rs;
};

// Four 8 x 8 matrices of 16-bit elements, each thread holding its mma-fragment pair of each
// (r[i]: row lane / 4, columns 2 (lane % 4) and + 1 of matrix i), to shared memory; lane l gives
// the 16-byte-aligned address of row l % 8 of matrix l / 8.
__device__ __forceinline__ void stmatrix_x4(uint32_t addr, const uint32_t (&r)[4]) {
  asm volatile("stmatrix.sync.aligned.m8n8.x4.shared.b16 [%0], {%1, %2, %3, %4};\n" ::"r"(addr),
               "r"(r[0]), "r"(r[1]), "r"(r[2]), "r"(r[3])
               : "memory");
}

// Generic-proxy writes to shared memory (cp.async, st.shared, stmatrix) become visible to wgmma's
// reads after this fence and a barrier.
__device__ __forceinline__ void fence_proxy_async() {
  asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory");
}

// ---- mbarriers and bulk tensor copies

__device__ __forceinline__ void mbar_init(uint32_t bar, uint32_t count) {
  asm volatile("mbarrier.init.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(count) : "memory");
}
// Makes the initialised barriers visible to the copy engine and the other threads (with the
// __syncthreads that follows).
__device__ __forceinline__ void mbar_init_fence() {
  asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
}
// The producer's arrival: one arrival plus the bytes the copies will deliver to this phase.
__device__ __forceinline__ void mbar_arrive_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.arrive.expect_tx.shared::cta.b64 _, [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
// More bytes for the current phase without an arrival: copies that complete on a phase which
// another thread's arrive_expect_tx closes.
__device__ __forceinline__ void mbar_expect_tx(uint32_t bar, uint32_t bytes) {
  asm volatile("mbarrier.expect_tx.relaxed.cta.shared::cta.b64 [%0], %1;\n" ::"r"(bar), "r"(bytes)
               : "memory");
}
__device__ __forceinline__ void mbar_arrive(uint32_t bar) {
  asm volatile("mbarrier.arrive.shared::cta.b64 _, [%0];\n" ::"r"(bar) : "memory");
}
// Spins until the phase of parity `parity` has completed. A fresh barrier is in phase 0, so a wait
// for parity 1 returns at once: producers start their waits on "empty" barriers there.
__device__ __forceinline__ void mbar_wait(uint32_t bar, uint32_t parity) {
  asm volatile(
      "{\n.reg .pred done;\nWAIT:\n"
      "mbarrier.try_wait.parity.shared::cta.b64 done, [%0], %1;\n"
      "@!done bra WAIT;\n}\n" ::"r"(bar),
      "r"(parity)
      : "memory");
}

// One box of a 4-d tensor map into shared memory; completes `bytes` on `bar`.
__device__ __forceinline__ void tma_load_4d(uint32_t s_dst, const CUtensorMap* map, int c0, int c1,
                                            int c2, int c3, uint32_t bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.tile.mbarrier::complete_tx::bytes [%0], "
      "[%1, {%2, %3, %4, %5}], [%6];\n" ::"r"(s_dst),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(bar)
      : "memory");
}

// A tile of kChunks boxes (64 columns each, chunk_bytes apart in shared memory) at the outer
// coordinates c of a map (MapOrder::coords); completes on `bar`.
template <int kChunks>
__device__ __forceinline__ void tma_load_tile(uint32_t s_dst, uint32_t chunk_bytes,
                                              const CUtensorMap* map, const int (&c)[3],
                                              uint32_t bar) {
#pragma unroll
  for (int ch = 0; ch < kChunks; ++ch) {
    tma_load_4d(s_dst + ch * chunk_bytes, map, ch * kBoxCols, c[0], c[1], c[2], bar);
  }
}

// ---- warpgroup coordination

// Named barriers (ids 1.. ; 0 is __syncthreads): `sync` waits until `threads` threads have arrived
// or synced, `arrive` counts this warp in without waiting.
__device__ __forceinline__ void named_bar_sync(int id, int threads) {
  asm volatile("bar.sync %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}
__device__ __forceinline__ void named_bar_arrive(int id, int threads) {
  asm volatile("bar.arrive %0, %1;\n" ::"r"(id), "r"(threads) : "memory");
}

// Register reallocation between warpgroups: the producer gives registers back, the consumers take
// them. Every thread of the warpgroup executes it.
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_dec() {
  asm volatile("setmaxnreg.dec.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}
template <int kRegs>
__device__ __forceinline__ void setmaxnreg_inc() {
  asm volatile("setmaxnreg.inc.sync.aligned.u32 %0;\n" ::"n"(kRegs));
}

}  // namespace tilegrad::cuda::flash
