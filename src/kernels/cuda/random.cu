// CUDA kernels that draw from the Philox stream (see random.h for what matches the CPU and how).
//
// dropout and fill_uniform: one thread per Philox block of four draws, so each block is computed
// once; the block range covers [offset, offset + n) whatever offset's alignment, and a thread
// writes the elements of its block that fall inside. fill_normal: one thread per element, which
// reads its two draws from one Philox block, or from two when offset is odd and the pair
// straddles a block boundary; its float64 log, sqrt and cos dominate the cost anyway.
//
// Bitwise agreement with kernels/cpu/random.cpp rests on doing the same IEEE operations in the
// same order. The CPU build has no FMA (x86-64 baseline, -ffp-contract=off in ISO C++ mode), while
// nvcc contracts a * b + c into one fused operation by default; the __dmul_rn / __dadd_rn /
// __fmul_rn intrinsics are never contracted, so they pin the CPU's two roundings.
#include "kernels/cuda/random.h"

#include <algorithm>

#include "cuda/check.h"
#include "kernels/cuda/kernel_common.cuh"

namespace tilegrad::kernels::cuda {

namespace {

constexpr int kThreads = 256;
// Grid-stride loops: at most this many blocks per launch (results do not depend on it).
constexpr int64_t kMaxBlocks = 65535;

// The Philox blocks that hold draws [offset, offset + n): first_block .. first_block + blocks - 1.
struct BlockRange {
  uint64_t first_block;
  int64_t blocks;
};
BlockRange block_range(uint64_t offset, int64_t n) {
  const uint64_t first = offset >> 2, last = (offset + static_cast<uint64_t>(n) - 1) >> 2;
  return {first, static_cast<int64_t>(last - first + 1)};
}

// Calls f(i, word) with the word of draw offset + i, for every i in [0, n): a grid-stride loop over
// the Philox blocks of `range`, each block's four words computed once by one thread.
template <class F>
__device__ void for_each_draw(uint64_t seed, uint64_t offset, int64_t n, BlockRange range, F f) {
  for (int64_t u = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; u < range.blocks;
       u += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t block = range.first_block + static_cast<uint64_t>(u);
    const uint4 r = philox_block(seed, block);
#pragma unroll
    for (uint32_t w = 0; w < 4; ++w) {
      const uint64_t d = 4 * block + w;
      if (d < offset || d - offset >= static_cast<uint64_t>(n)) continue;
      f(static_cast<int64_t>(d - offset), philox_word(r, w));
    }
  }
}

// y[i] = keep ? T(A(x[i]) * scale) : T(A(0)), exactly kernels/cpu/random.cpp's expression.
template <class T>
__global__ void dropout_kernel(const T* x, T* y, int64_t n, uint64_t seed, uint64_t offset,
                               BlockRange range, uint32_t threshold, acc_t<T> scale) {
  using A = acc_t<T>;
  for_each_draw(seed, offset, n, range, [&](int64_t i, uint32_t word) {
    y[i] = dropout_keep(word, threshold) ? T(mul_rn(A(x[i]), scale)) : T(A(0));
  });
}

// dst[i] = T(acc_t<T>(lo + range * u)) with u the 24-bit uniform of draw offset + i, in float64.
template <class T>
__global__ void uniform_kernel(T* dst, int64_t n, uint64_t seed, uint64_t offset, BlockRange range,
                               double lo, double width) {
  for_each_draw(seed, offset, n, range, [&](int64_t i, uint32_t word) {
    const double x = static_cast<double>(uniform_from_bits(word));
    dst[i] = T(static_cast<acc_t<T>>(__dadd_rn(lo, __dmul_rn(width, x))));
  });
}

// Box-Muller as on the CPU: u1 in (0, 1] (so the log is finite), u2 in [0, 1), both exact
// multiples of 2^-24; z = sqrt(-2 log u1) cos(2π u2).
template <class T>
__global__ void normal_kernel(T* dst, int64_t n, uint64_t seed, uint64_t offset, double mean,
                              double std) {
  for (int64_t i = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; i < n;
       i += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const uint64_t d = offset + 2 * static_cast<uint64_t>(i);
    const uint32_t w = static_cast<uint32_t>(d & 3);
    const uint4 r = philox_block(seed, d >> 2);
    const uint32_t b1 = philox_word(r, w);
    // Draw d + 1 is in the same block unless d is its last word.
    const uint32_t b2 = w < 3 ? philox_word(r, w + 1) : philox_block(seed, (d >> 2) + 1).x;
    const double u1 = __ddiv_rn(__dadd_rn(static_cast<double>(b1 >> 8), 1.0), 16777216.0);
    const double u2 = __ddiv_rn(static_cast<double>(b2 >> 8), 16777216.0);
    const double z =
        __dmul_rn(__dsqrt_rn(__dmul_rn(-2.0, log(u1))), cos(__dmul_rn(6.283185307179586, u2)));
    dst[i] = T(static_cast<acc_t<T>>(__dadd_rn(mean, __dmul_rn(std, z))));
  }
}

}  // namespace

void dropout(DType dt, const void* x, void* y, int64_t n, double p, uint64_t seed, uint64_t offset,
             cudaStream_t stream) {
  dispatch_floating(dt, "dropout", [&]<class T>() {
    if (n <= 0) return;
    using A = acc_t<T>;
    const A scale = p < 1.0 ? A(1.0 / (1.0 - p)) : A(0);
    const BlockRange range = block_range(offset, n);
    dropout_kernel<T>
        <<<grid_blocks(ceil_div(range.blocks, kThreads), kMaxBlocks), kThreads, 0, stream>>>(
            static_cast<const T*>(x), static_cast<T*>(y), n, seed, offset, range,
            dropout_keep_threshold(p), scale);
    TG_CUDA_CHECK_LAUNCH();
  });
}

void fill_uniform(DType dt, void* dst, int64_t n, double lo, double hi, uint64_t seed,
                  uint64_t offset, cudaStream_t stream) {
  dispatch_floating(dt, "rand_uniform", [&]<class T>() {
    if (n <= 0) return;
    const BlockRange range = block_range(offset, n);
    uniform_kernel<T>
        <<<grid_blocks(ceil_div(range.blocks, kThreads), kMaxBlocks), kThreads, 0, stream>>>(
            static_cast<T*>(dst), n, seed, offset, range, lo, hi - lo);
    TG_CUDA_CHECK_LAUNCH();
  });
}

void fill_normal(DType dt, void* dst, int64_t n, double mean, double std, uint64_t seed,
                 uint64_t offset, cudaStream_t stream) {
  dispatch_floating(dt, "randn", [&]<class T>() {
    if (n <= 0) return;
    normal_kernel<T><<<grid_blocks(ceil_div(n, kThreads), kMaxBlocks), kThreads, 0, stream>>>(
        static_cast<T*>(dst), n, seed, offset, mean, std);
    TG_CUDA_CHECK_LAUNCH();
  });
}

}  // namespace tilegrad::kernels::cuda
