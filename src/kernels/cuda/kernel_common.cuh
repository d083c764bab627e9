// What the engine's CUDA kernels (kernels/cuda/*.cu) share: launch geometry for grid-stride loops,
// correctly rounded arithmetic that matches the CPU kernels' rounding, exp/log in the accumulation
// type, a warp sum, and the integer min/max the device can call. Included by .cu files only.
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdint>
#include <type_traits>

#include "core/dtype.h"
#include "cuda/check.h"

namespace tilegrad::kernels::cuda {

// ---- launch geometry (host)

// Blocks launched at most by a grid-stride loop over rows; each block strides over the rest.
inline constexpr int64_t kMaxGridBlocks = int64_t{1} << 24;

inline int64_t ceil_div(int64_t a, int64_t b) {
  return (a + b - 1) / b;
}

// The blocks of a grid-stride launch that wants `blocks`: at least one, at most `cap` (the loops
// take the rest, and no kernel's result depends on the grid size).
inline unsigned grid_blocks(int64_t blocks, int64_t cap) {
  return static_cast<unsigned>(std::clamp<int64_t>(blocks, 1, cap));
}

// The current device's streaming multiprocessors. Launch geometry asks on every launch, so the
// attribute is read once per device and kept (it cannot change while the process runs).
inline int64_t sm_count() {
  constexpr int kCached = 64;
  static std::atomic<int> cache[kCached] = {};  // 0: not read yet
  int device = 0;
  TG_CUDA_CHECK(cudaGetDevice(&device));
  if (device < kCached && cache[device].load(std::memory_order_relaxed) > 0)
    return cache[device].load(std::memory_order_relaxed);
  int sms = 0;
  TG_CUDA_CHECK(cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device));
  if (device < kCached) cache[device].store(sms, std::memory_order_relaxed);
  return sms;
}

// One wave on the current device: 8 blocks of 256 threads fill an SM's 2048 thread slots on sm_80
// and sm_90.
inline int64_t one_wave_blocks() {
  return sm_count() * 8;
}

// ---- device arithmetic

// Correctly rounded operations that nvcc never fuses into an FMA (the CPU kernels, built for
// baseline x86-64, have no FMA to fuse into), so that a product followed by a sum rounds twice on
// both devices and the results agree bit for bit.
__device__ __forceinline__ float add_rn(float a, float b) {
  return __fadd_rn(a, b);
}
__device__ __forceinline__ double add_rn(double a, double b) {
  return __dadd_rn(a, b);
}
__device__ __forceinline__ float sub_rn(float a, float b) {
  return __fsub_rn(a, b);
}
__device__ __forceinline__ double sub_rn(double a, double b) {
  return __dsub_rn(a, b);
}
__device__ __forceinline__ float mul_rn(float a, float b) {
  return __fmul_rn(a, b);
}
__device__ __forceinline__ double mul_rn(double a, double b) {
  return __dmul_rn(a, b);
}
__device__ __forceinline__ float div_rn(float a, float b) {
  return __fdiv_rn(a, b);
}
__device__ __forceinline__ double div_rn(double a, double b) {
  return __ddiv_rn(a, b);
}
__device__ __forceinline__ float sqrt_rn(float a) {
  return __fsqrt_rn(a);
}
__device__ __forceinline__ double sqrt_rn(double a) {
  return __dsqrt_rn(a);
}

// exp, log, tanh, pow and sqrt in the accumulation type, through CUDA's accurate libm (expf, not
// __expf; within 2, 1, 2 and 4 ulp by the CUDA C Programming Guide's tables, sqrt correctly
// rounded): host math functions are not callable on the device.
__device__ __forceinline__ float exp_acc(float v) {
  return expf(v);
}
__device__ __forceinline__ double exp_acc(double v) {
  return exp(v);
}
__device__ __forceinline__ float log_acc(float v) {
  return logf(v);
}
__device__ __forceinline__ double log_acc(double v) {
  return log(v);
}
__device__ __forceinline__ float tanh_acc(float v) {
  return tanhf(v);
}
__device__ __forceinline__ double tanh_acc(double v) {
  return tanh(v);
}
__device__ __forceinline__ float pow_acc(float a, float b) {
  return powf(a, b);
}
__device__ __forceinline__ double pow_acc(double a, double b) {
  return pow(a, b);
}
__device__ __forceinline__ float sqrt_acc(float v) {
  return sqrtf(v);
}
__device__ __forceinline__ double sqrt_acc(double v) {
  return sqrt(v);
}

// GELU's sigmoid factor s = 1 / (1 + exp(-2u)), u = sqrt(2/pi) (x + 0.044715 x³) (GELU(x) = x · s,
// the tanh approximation), with the hardware exp and reciprocal: relative error ~2^-21, far below
// a 16-bit output's rounding. __expf overflows to inf for u << 0, whose reciprocal is 0: GELU's
// limit. The 16-bit GELU kernels share it, so that they give the same bits.
__device__ __forceinline__ float gelu_sigmoid_fast(float x) {
  const float u = 0.7978845608028654f * (x + 0.044715f * x * x * x);
  return __frcp_rn(1.0f + __expf(-2.0f * u));
}

// ---- vectors

// kN elements of T, aligned so that one load or store moves them all (16 bytes at most).
template <int kN, class T>
struct alignas(sizeof(T) * kN) Vec {
  T v[kN];
};

// Elements of T in one 16-byte load or store, and that vector.
template <class T>
inline constexpr int kVec16 = 16 / static_cast<int>(sizeof(T));
template <class T>
using Vec16 = Vec<kVec16<T>, T>;

// A vector of values in the accumulation type to T, element by element.
template <class T, class A>
__device__ __forceinline__ Vec16<T> convert(const A (&v)[kVec16<T>]) {
  Vec16<T> out;
#pragma unroll
  for (int e = 0; e < kVec16<T>; ++e) out.v[e] = T(v[e]);
  return out;
}

// Two values to 16-bit T in one instruction (cvt.rn.bf16x2.f32, cvt.rn.f16x2.f32), lo in the low
// half of the word: for values that are not NaN these round as T's own conversion does
// (core/dtype.h), which differs only in the NaN it writes and spends a test per element on it.
template <class T>
__device__ __forceinline__ uint32_t packed_pair_not_nan(float lo, float hi) {
  static_assert(std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>);
  uint32_t r;
  if constexpr (std::is_same_v<T, bfloat16>) {
    asm("cvt.rn.bf16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  } else {
    asm("cvt.rn.f16x2.f32 %0, %1, %2;" : "=r"(r) : "f"(hi), "f"(lo));
  }
  return r;
}

// The same for any values: a pair holding a NaN takes T's conversion (and its NaN) instead, on a
// branch that rows without NaN never take.
template <class T>
__device__ __forceinline__ uint32_t packed_pair(float lo, float hi) {
  uint32_t r = packed_pair_not_nan<T>(lo, hi);
  if (lo != lo || hi != hi) [[unlikely]]
    r = uint32_t{T(lo).bits} | uint32_t{T(hi).bits} << 16;
  return r;
}

// convert for values that are not NaN, two to an instruction for 16-bit T (packed_pair_not_nan).
template <class T, class A>
__device__ __forceinline__ Vec16<T> convert_not_nan(const A (&v)[kVec16<T>]) {
  if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
    Vec16<T> out;
#pragma unroll
    for (int e = 0; e < kVec16<T>; e += 2) {
      const uint32_t r = packed_pair_not_nan<T>(v[e], v[e + 1]);
      out.v[e].bits = static_cast<uint16_t>(r);
      out.v[e + 1].bits = static_cast<uint16_t>(r >> 16);
    }
    return out;
  } else {
    return convert<T>(v);
  }
}

// Moves the line holding p into L2 ahead of its load; no register waits for it.
__device__ __forceinline__ void prefetch_l2(const void* p) {
  asm volatile("prefetch.global.L2 [%0];" ::"l"(p));
}

// ---- warps

inline constexpr unsigned kFullMask = 0xffffffffu;  // every lane of a warp

// Reduction operators for warp_reduce and group_reduce.
struct SumOp {
  template <class A>
  __device__ static A apply(A a, A b) {
    return a + b;
  }
  template <class A>
  __device__ static A identity() {
    return A(0);
  }
};
// The CPU's max_keep_nan: a NaN wins, so it reaches every element of its row.
struct MaxOp {
  template <class A>
  __device__ static A apply(A a, A b) {
    return (b > a || b != b) ? b : a;
  }
  template <class A>
  __device__ static A identity() {
    return -A(INFINITY);
  }
};

// Op over the warp by a butterfly of shuffles: every lane ends with the same bits.
template <class Op, class A>
__device__ __forceinline__ A warp_reduce(A v) {
  for (int o = 16; o > 0; o >>= 1) v = Op::apply(v, __shfl_xor_sync(kFullMask, v, o));
  return v;
}
template <class A>
__device__ __forceinline__ A warp_sum(A v) {
  return warp_reduce<SumOp>(v);
}

// Reduces v over the kGroup threads that own a row — a warp, or the whole block — and returns the
// result to each of them, in a fixed order. s_red holds 32 values; the leading barrier lets a call
// reuse it at once.
template <int kGroup, class Op, class A>
__device__ A group_reduce(A v, A* s_red) {
  static_assert(kGroup % 32 == 0 && kGroup <= 1024, "whole warps, at most 1024 threads");
  v = warp_reduce<Op>(v);
  if constexpr (kGroup == 32) {
    return v;
  } else {
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    __syncthreads();
    if (lane == 0) s_red[warp] = v;
    __syncthreads();
    return warp_reduce<Op>(lane < kGroup / 32 ? s_red[lane] : Op::template identity<A>());
  }
}

// std::min and std::max are host functions (constexpr, but nvcc runs no host constexpr code on
// the device).
__device__ __forceinline__ int64_t min64(int64_t a, int64_t b) {
  return a < b ? a : b;
}
__device__ __forceinline__ int64_t max64(int64_t a, int64_t b) {
  return a > b ? a : b;
}

}  // namespace tilegrad::kernels::cuda
