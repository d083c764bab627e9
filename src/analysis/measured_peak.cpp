#include "analysis/measured_peak.h"

#include <algorithm>
#include <chrono>
#include <limits>
#include <vector>

#include "backend/backend.h"
#include "core/error.h"
#include "core/rng.h"
#include "ops/factory.h"

namespace tilegrad::analysis {

double measure_gemm_flops(int64_t n, int reps) {
  TG_CHECK(n >= 1 && reps >= 1, "measure_gemm_flops: n and reps must be >= 1, got n = ", n,
           ", reps = ", reps);
  const auto elements = static_cast<size_t>(n * n);
  // Values in [-1, 1) so that no denormals slow the product down; the pattern does not matter.
  std::vector<float> a(elements), b(elements), c(elements);
  for (size_t i = 0; i < elements; ++i) {
    a[i] = static_cast<float>(i % 1021) / 510.5f - 1.0f;
    b[i] = static_cast<float>(i % 1019) / 509.5f - 1.0f;
  }
  GemmArgs g;
  g.dtype = DType::f32;
  g.m = g.n = g.k = n;
  g.a = a.data();
  g.b = b.data();
  g.c = c.data();
  g.lda = g.ldb = g.ldc = n;
  Backend& cpu = backend(Device::cpu());
  cpu.gemm(g);  // warm-up: thread start-up, first-touch page faults
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    cpu.gemm(g);
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best;
}

double measure_gemm_flops_on(Device device, DType dt, int64_t n, int reps) {
  TG_CHECK(n >= 1 && reps >= 1, "measure_gemm_flops_on: n and reps must be >= 1, got n = ", n,
           ", reps = ", reps);
  if (device.is_cpu() && dt == DType::f32) return measure_gemm_flops(n, reps);
  Generator gen(7);
  const TensorOptions opts{dt, device, Category::workspace};
  const Tensor a = rand_uniform({n, n}, gen, -1.0, 1.0, opts);
  const Tensor b = rand_uniform({n, n}, gen, -1.0, 1.0, opts);
  const Tensor c = empty({n, n}, opts);
  const GemmArgs g =
      gemm_args(dt, false, false, n, n, n, 1.0, a.data(), n, b.data(), n, 0.0, c.data(), n);
  Backend& be = backend(device);
  be.gemm(g);  // warm-up: library initialisation, algorithm choice, clocks
  be.synchronize();
  double best = std::numeric_limits<double>::infinity();
  for (int r = 0; r < reps; ++r) {
    const auto t0 = std::chrono::steady_clock::now();
    be.gemm(g);
    be.synchronize();
    const auto t1 = std::chrono::steady_clock::now();
    best = std::min(best, std::chrono::duration<double>(t1 - t0).count());
  }
  return 2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n) / best;
}

}  // namespace tilegrad::analysis
