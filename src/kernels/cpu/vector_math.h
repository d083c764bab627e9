// Vectorisable float32 math for the CPU kernels.
//
// glibc's expf is a scalar call per element (~2 ns), which makes exp-based ops compute-bound far
// below memory bandwidth; its vector variants are only declared under -ffast-math. exp_f32 is a
// branch-free range reduction plus polynomial that the compiler vectorises, built for AVX2+FMA and
// for baseline x86-64 and chosen at load time (GCC target_clones), so the same binary runs on any
// x86-64 machine.
#pragma once

#include <cmath>
#include <cstdint>

namespace tilegrad::kernels::cpu {

// GELU with the tanh approximation (GPT-2's) for one value in any float type, by its definition:
// 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x³))). The reference form; gelu_f32 below is the fast
// one.
template <class A>
A gelu_tanh(A x) {
  const A k = A(0.7978845608028654);  // sqrt(2 / pi)
  return A(0.5) * x * (A(1) + std::tanh(k * (x + A(0.044715) * x * x * x)));
}

// The derivative of gelu_tanh, by the same definition: with u = k (x + 0.044715 x³) and t = tanh u,
// GELU'(x) = (1 + t) / 2 + x (1 - t²) u'(x) / 2.
template <class A>
A gelu_tanh_grad(A x) {
  const A k = A(0.7978845608028654);
  const A u = k * (x + A(0.044715) * x * x * x);
  const A t = std::tanh(u);
  const A du = k * (A(1) + A(3) * A(0.044715) * x * x);
  return A(0.5) * (A(1) + t) + A(0.5) * x * (A(1) - t * t) * du;
}

// y[i] = exp(x[i]) for contiguous float32; relative error ≤ 2 ulp for results in the normal range,
// 0 below exp(-87.33) (where the true value is subnormal), +inf above 88.72, NaN for NaN.
// x and y may be the same array.
void exp_f32(const float* x, float* y, int64_t n);

// GELU with the tanh approximation (GPT-2's), y = 0.5 x (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715
// x³), computed as x / (1 + exp(-2u)) — the same function, with exp_f32 in place of libm's scalar
// tanh. Relative error within a few ulp of float where the result is normal; x and y may alias.
void gelu_f32(const float* x, float* y, int64_t n);

// gx[i] = gy[i] · GELU'(x[i]) for the same GELU, with s = 1 / (1 + exp(-2u)) = (1 + tanh u) / 2:
// GELU'(x) = s + 2 x s (1 - s) u'(x). gx may alias gy.
void gelu_backward_f32(const float* gy, const float* x, float* gx, int64_t n);

// out[i] = draw d0 + i of the Philox stream keyed by `seed` (core/rng.h's philox_draw), whole
// Philox blocks at a time, eight blocks side by side so that the rounds vectorise.
void philox_draws(uint64_t seed, uint64_t d0, int64_t n, uint32_t* out);

}  // namespace tilegrad::kernels::cpu
