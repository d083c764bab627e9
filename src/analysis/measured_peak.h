// This machine's dense GEMM rate, measured: the peak that MFU is quoted against when no datasheet
// figure is given. On a CPU there is no datasheet peak that its BLAS reaches (turbo, AVX frequency
// offsets and the BLAS's kernels decide), so the honest denominator is what the engine's own
// matmul achieves on a large square product: MFU then says how much of the achievable GEMM rate a
// training step sustains.
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace tilegrad::analysis {

// FLOP/s of matmul on two n x n tensors of `dtype` (2 n³ per product), the best of `reps` timed
// products after one untimed warm-up, with grad mode off: the best, because other load on the
// machine only ever slows a product down. About 10 ms per product at n = 1024 on two cores; the
// tracker sees three n x n buffers come and go.
double measure_gemm_flops(DType dtype = DType::f32, int64_t n = 1024, int reps = 8);

}  // namespace tilegrad::analysis
