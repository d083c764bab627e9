// What the FlashAttention GPU programs share on the host: the check of a CUDA call, the names they
// use from kernels/cuda/flash_api.h, and the band of keys a query sees as the CPU op defines it.
// Used by tests/cuda/flash_test.cu (the correctness test) and bench/device/flash_features.cu (the
// options' timings).
#pragma once

#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>

#include "kernels/cuda/flash_api.h"

// Exits with the call, its place and CUDA's message when a runtime call fails: these are programs,
// not the engine, so nothing is left to clean up.
#define CHECK_CUDA(call)                                                 \
  do {                                                                   \
    const cudaError_t err_ = (call);                                     \
    if (err_ != cudaSuccess) {                                           \
      std::fprintf(stderr, "%s:%d: %s: %s\n", __FILE__, __LINE__, #call, \
                   cudaGetErrorString(err_));                            \
      std::exit(1);                                                      \
    }                                                                    \
  } while (0)

namespace flash_testing {

using tilegrad::cuda::FlashBwdParams;
using tilegrad::cuda::FlashDType;
using tilegrad::cuda::FlashFwdParams;
using tilegrad::cuda::FlashKernel;
using tilegrad::cuda::FlashStrides;

// The keys query i sees, lo ..= hi (none when lo > hi): the CPU op's band (ops/attention.h),
// aligned to the bottom-right corner, a window side of -1 unlimited, causal capping the right side
// at 0.
struct KeyRange {
  int64_t lo, hi;
};
inline KeyRange visible_keys(int64_t i, int64_t nq, int64_t nk, bool causal, int64_t window_left,
                             int64_t window_right) {
  const int64_t shift = nk - nq;
  int64_t hi = window_right >= 0 ? i + shift + window_right : nk - 1;
  if (causal) hi = std::min(hi, i + shift);
  const int64_t lo = window_left >= 0 ? i + shift - window_left : 0;
  return {std::max<int64_t>(lo, 0), std::min(hi, nk - 1)};
}

}  // namespace flash_testing
