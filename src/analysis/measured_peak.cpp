#include "analysis/measured_peak.h"

#include <algorithm>
#include <chrono>
#include <limits>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "ops/factory.h"
#include "ops/matmul.h"

namespace tilegrad::analysis {

double measure_gemm_flops(DType dtype, int64_t n, int reps) {
  TG_CHECK(n >= 1 && reps >= 1, "measure_gemm_flops: n and reps must be >= 1, got n = ", n,
           ", reps = ", reps);
  NoGradGuard no_grad;
  Generator gen(0);
  const Tensor a = rand_uniform({n, n}, gen, -1.0, 1.0, {dtype});
  const Tensor b = rand_uniform({n, n}, gen, -1.0, 1.0, {dtype});
  (void)matmul(a, b);  // warm-up: thread start-up, first-touch page faults
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    const Tensor c = matmul(a, b);
    (void)c.data();
    best = std::min(best,
                    std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
  }
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best;
}

}  // namespace tilegrad::analysis
