// This machine's dense GEMM rate, measured: the peak that MFU is quoted against when no datasheet
// figure is given. On a CPU there is no datasheet peak that its BLAS reaches (turbo, AVX frequency
// offsets and the BLAS's kernels decide), so the honest denominator is what the engine's GEMM
// achieves on a large square product: MFU then says how much of the achievable GEMM rate a
// training step sustains.
#pragma once

#include <cstdint>

#include "core/device.h"
#include "core/dtype.h"

namespace tilegrad::analysis {

// FLOP/s of the CPU backend's float32 GEMM on n x n matrices (2 n³ per product): the best of
// `reps` timed products after one untimed warm-up — the best, because other load on the machine
// only ever slows a product down. The matrices are plain host buffers outside the tracker, so
// that measuring (during training, say) never shows in the memory figures. About 10 ms per
// product at n = 1024 on two cores.
double measure_gemm_flops(int64_t n = 1024, int reps = 8);

// The same on a device (a GPU's bfloat16 tensor-core rate, say): n x n operands of dtype `dt` in
// the device's memory (tracked as workspace while they live), the best of `reps` products, each
// timed from queueing to synchronize().
double measure_gemm_flops_on(Device device, DType dt, int64_t n, int reps);

}  // namespace tilegrad::analysis
