// CUDA kernels that draw from the Philox stream: dropout and random fills.
//
// Same entries as kernels/cpu/random.h, plus the stream they are queued on, and the same numbers:
// element i of a call uses draw offset + i (dropout, uniform) or draws offset + 2i and
// offset + 2i + 1 (normal) of core/rng.h's Philox4x32-10 stream, whatever the launch shape.
//   dropout, fill_uniform: bitwise equal to the CPU kernels (the arithmetic is the CPU's, rounded
//     the same way; the device code uses explicitly rounded operations so that nvcc cannot fuse a
//     multiply and an add into an FMA the CPU does not do).
//   fill_normal: Box-Muller in float64 as on the CPU, but log and cos come from CUDA's libdevice
//     (1 and 2 ulp) rather than glibc, so float64 results may differ from the CPU's in the last
//     bits; rounded to float32 or 16 bits they practically always agree (a difference needs the
//     float64 value within a few float64 ulps of a rounding boundary).
// Asynchronous on `stream`; pointers are device memory; n <= 0 does nothing.
#pragma once

#include <cuda_runtime.h>

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::kernels::cuda {

// y[i] = x[i] * keep[i] / (1 - p), keep[i] = dropout_keep(draw(seed, offset + i), threshold(p)).
// x and y may be the same array.
void dropout(DType dt, const void* x, void* y, int64_t n, double p, uint64_t seed, uint64_t offset,
             cudaStream_t stream);
// dst[i] = lo + (hi - lo) * uniform_from_bits(draw(seed, offset + i)).
void fill_uniform(DType dt, void* dst, int64_t n, double lo, double hi, uint64_t seed,
                  uint64_t offset, cudaStream_t stream);
// dst[i] = mean + std * z, z by Box-Muller from draws offset + 2i and offset + 2i + 1.
void fill_normal(DType dt, void* dst, int64_t n, double mean, double std, uint64_t seed,
                 uint64_t offset, cudaStream_t stream);

#if defined(__CUDACC__)
}  // namespace tilegrad::kernels::cuda

// core/rng.h's philox4x32_10 and philox_draw are declared __host__ __device__ but index std::array,
// whose operator[] is a host function (nvcc diagnostics 20013/20015 without
// --expt-relaxed-constexpr). Device code here never calls them, only philox_round and the
// constants, so the diagnostics are silenced for the include.
#pragma nv_diag_suppress 20013, 20015
#include "core/rng.h"
#pragma nv_diag_default 20013, 20015

namespace tilegrad::kernels::cuda {

// The four draws of Philox block `block` (draws 4·block .. 4·block + 3) of the stream `seed`:
// core/rng.h's philox4x32_10 on counter (block, 0) and key (seed), written with plain words so
// that device code can call it (core/rng.h's version passes std::array, whose members are host
// functions). Shared by the CUDA kernels that draw (random.cu, attention_reference.cu).
__device__ __forceinline__ uint4 philox_block(uint64_t seed, uint64_t block) {
  uint32_t c0 = static_cast<uint32_t>(block), c1 = static_cast<uint32_t>(block >> 32), c2 = 0,
           c3 = 0;
  uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
#pragma unroll
  for (int round = 0; round < 10; ++round) {
    if (round > 0) {
      k0 += kPhiloxW0;
      k1 += kPhiloxW1;
    }
    philox_round(c0, c1, c2, c3, k0, k1);
  }
  return make_uint4(c0, c1, c2, c3);
}

// Word w (0..3) of a Philox block.
__device__ __forceinline__ uint32_t philox_word(const uint4& r, uint32_t w) {
  return w == 0 ? r.x : w == 1 ? r.y : w == 2 ? r.z : r.w;
}

// Draw number d of the stream `seed` (core/rng.h's philox_draw).
__device__ __forceinline__ uint32_t philox_draw_device(uint64_t seed, uint64_t d) {
  return philox_word(philox_block(seed, d >> 2), static_cast<uint32_t>(d & 3));
}
#endif

}  // namespace tilegrad::kernels::cuda
