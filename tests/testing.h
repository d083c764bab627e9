// Test utilities: random inputs (never all zero), non-contiguous leaves, element access by logical
// index, and a float64 central finite-difference gradient check.
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "tilegrad/tilegrad.h"

namespace tgtest {

using namespace tilegrad;  // NOLINT: tests read better with the engine's names

// Uniform values in [lo, hi) from Philox stream `seed`.
Tensor rnd(const Shape& shape, uint64_t seed, DType dtype = DType::f64, double lo = -1.0,
           double hi = 1.0);
// A leaf with the same values as `t` but non-contiguous strides (a permuted view of a buffer laid
// out in reverse dimension order; for 1-D, a stride-2 slice).
Tensor noncontiguous(const Tensor& t);
// Storage offsets (in elements) of t's elements in row-major logical order.
std::vector<int64_t> element_offsets(const Tensor& t);
double max_abs_diff(const Tensor& a, const Tensor& b);
// Same dtype, shape and bits, element by element (either may live on any device).
bool bitwise_equal(const Tensor& a, const Tensor& b);
// Unit roundoff (half the machine epsilon) of a float dtype: 2^-53, 2^-24, 2^-8, 2^-11.
double unit_roundoff(DType dt);

// A portable integer generator (splitmix64): fixed seeds give the same random models everywhere.
struct SplitMix64 {
  uint64_t s;
  uint64_t next() {
    uint64_t z = (s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  int64_t in(int64_t lo, int64_t hi) {  // uniform in [lo, hi]
    return lo + static_cast<int64_t>(next() % static_cast<uint64_t>(hi - lo + 1));
  }
};

// The message of the tilegrad::Error that f() throws, or "" if it throws none.
template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}
double max_abs(const Tensor& a);
// The gradients that backpropagating g from y leaves in `leaves` (their .grad cleared first).
std::vector<Tensor> backward_grads(const Tensor& y, const Tensor& g,
                                   const std::vector<Tensor>& leaves);

struct GradCheckOptions {
  double eps = 1e-6;
  double atol = 1e-6;
  double rtol = 1e-5;
  uint64_t weight_seed = 1234;
};

// Checks the reverse-mode gradient of L = sum(f(inputs) * W) — W a fixed random weight, so every
// output element matters differently — against central differences, for every float64 input that
// requires grad. f may return several tensors; each gets its own weight.
void expect_gradcheck(const std::function<std::vector<Tensor>(const std::vector<Tensor>&)>& f,
                      const std::vector<Tensor>& inputs, GradCheckOptions options = {});
void expect_gradcheck(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                      const std::vector<Tensor>& inputs, GradCheckOptions options = {});

// Checks jvp(f, inputs, tangents) against the reverse-mode directional derivative: for a random
// cotangent u, <u, J v> computed by forward mode must equal <Jᵀ u, v> computed by reverse mode.
void expect_jvp_matches_vjp(const std::function<Tensor(const std::vector<Tensor>&)>& f,
                            const std::vector<Tensor>& inputs, double tol = 1e-9);

}  // namespace tgtest
