// Vectorisable float32 math for the CPU kernels.
//
// glibc's expf is a scalar call per element (~2 ns), which makes exp-based ops compute-bound far
// below memory bandwidth; its vector variants are only declared under -ffast-math. exp_f32 is a
// branch-free range reduction plus polynomial that the compiler vectorises, built for AVX2+FMA and
// for baseline x86-64 and chosen at load time (GCC target_clones), so the same binary runs on any
// x86-64 machine.
#pragma once

#include <cstdint>

namespace tilegrad::kernels::cpu {

// y[i] = exp(x[i]) for contiguous float32; relative error ≤ 2 ulp for results in the normal range,
// 0 below exp(-87.33) (where the true value is subnormal), +inf above 88.72, NaN for NaN.
// x and y may be the same array.
void exp_f32(const float* x, float* y, int64_t n);

}  // namespace tilegrad::kernels::cpu
