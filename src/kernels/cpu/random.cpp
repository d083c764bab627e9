// CPU kernels that draw from the Philox stream (core/rng.h). Element i of a call uses draw
// offset + i (dropout, uniform) or draws offset + 2i and offset + 2i + 1 (normal), whatever the
// thread count, so the numbers are the same on every run and every device.
#include "kernels/cpu/random.h"

#include <algorithm>
#include <cmath>

#include "core/rng.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"

namespace tilegrad::kernels::cpu {

namespace {
constexpr int64_t kGrain = 1 << 14;
}

void dropout(DType dt, const void* x, void* y, int64_t n, double p, uint64_t seed,
             uint64_t offset) {
  dispatch_floating(dt, "dropout", [&]<class T>() {
    using A = acc_t<T>;
    const T* px = static_cast<const T*>(x);
    T* py = static_cast<T*>(y);
    const A scale = p < 1.0 ? A(1.0 / (1.0 - p)) : A(0);
    const uint32_t threshold = dropout_keep_threshold(p);
    // Chunks of whole Philox blocks: each chunk draws its bits in one vectorised batch.
    constexpr int64_t kChunk = 2048;
    parallel_for((n + kChunk - 1) / kChunk, n >= kGrain, [&](int64_t c) {
      const int64_t i0 = c * kChunk, m = std::min(kChunk, n - i0);
      uint32_t bits[kChunk];
      philox_draws(seed, offset + static_cast<uint64_t>(i0), m, bits);
      for (int64_t j = 0; j < m; ++j) {
        py[i0 + j] = dropout_keep(bits[j], threshold) ? T(A(px[i0 + j]) * scale) : T(A(0));
      }
    });
  });
}

void fill_uniform(DType dt, void* dst, int64_t n, double lo, double hi, uint64_t seed,
                  uint64_t offset) {
  dispatch_floating(dt, "rand_uniform", [&]<class T>() {
    T* p = static_cast<T*>(dst);
    parallel_for(n, n >= kGrain, [&](int64_t i) {
      const double u = uniform_from_bits(philox_draw(seed, offset + static_cast<uint64_t>(i)));
      p[i] = T(static_cast<acc_t<T>>(lo + (hi - lo) * u));
    });
  });
}

void fill_normal(DType dt, void* dst, int64_t n, double mean, double std, uint64_t seed,
                 uint64_t offset) {
  dispatch_floating(dt, "randn", [&]<class T>() {
    T* p = static_cast<T*>(dst);
    parallel_for(n, n >= kGrain, [&](int64_t i) {
      const uint64_t d = offset + 2 * static_cast<uint64_t>(i);
      // Box-Muller; u1 in (0, 1] so the log is finite.
      const double u1 = (static_cast<double>(philox_draw(seed, d) >> 8) + 1.0) / 16777216.0;
      const double u2 = static_cast<double>(philox_draw(seed, d + 1) >> 8) / 16777216.0;
      const double z = std::sqrt(-2.0 * std::log(u1)) * std::cos(6.283185307179586 * u2);
      p[i] = T(static_cast<acc_t<T>>(mean + std * z));
    });
  });
}

}  // namespace tilegrad::kernels::cpu
