// Shared by the attention tests: random inputs rounded to a dtype, one forward + backward of the op
// collected as float64 vectors, and error measures that treat matching -inf (rows without visible
// keys) as exact.
#pragma once

#include <cstdint>
#include <vector>

#include "ops/attention_reference.h"
#include "testing.h"

namespace tgtest {

// Normal(0, 1) values of `shape`, rounded to dt and held as float64 (so the reference sees exactly
// the values the dt run sees).
Tensor randn_rounded(const Shape& shape, uint64_t seed, DType dt);

struct AttnRun {
  std::vector<double> out, lse, dq, dk, dv;
};

// attention(q, k, v, o) in dtype dt from float64 inputs, and the gradients of sum(out ∘ dout)
// (+ sum(lse ∘ glse) when glse is defined).
AttnRun run_attention(const Tensor& q, const Tensor& k, const Tensor& v, DType dt,
                      const AttentionOptions& o, const Tensor& dout, const Tensor& glse = Tensor());

// The reference on the same inputs.
RefResult run_reference(const Tensor& q, const Tensor& k, const Tensor& v,
                        const AttentionOptions& o, const Tensor& dout,
                        const Tensor& glse = Tensor());

// max_i |a_i - b_i|, with -inf = -inf counted as 0 and any other non-finite difference as +inf.
double max_err(const std::vector<double>& a, const std::vector<double>& b);
double max_abs(const std::vector<double>& a);  // over finite entries

// A random block layout of about `density` ones, fixed by `seed`.
Tensor random_layout(int64_t rows, int64_t cols, double density, uint64_t seed);

}  // namespace tgtest
