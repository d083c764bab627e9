// GPU softmax and log-softmax (kernels/cuda/softmax) against the CPU kernel on the same inputs:
// every float dtype, forward and backward, contiguous rows (inner = 1) on both paths — a warp per
// row up to n = 1024, a block per row beyond, up to n = 50257 — and strided rows (inner > 1) with
// odd column counts; the CPU's dtype errors.
//
// Tolerances are a few units in the last place of the dtype, plus the accumulation type's rounding
// over the row's sums (the GPU adds in a different order and its exp differs by an ulp or two),
// relative to the size of the terms that make up each element.
#include "kernels/cuda/softmax.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_kernels/cuda_testing.h"
#include "kernels/cpu/softmax.h"

namespace {

using namespace tgcuda;  // NOLINT: the GPU tests' shared helpers (cuda_testing.h)
using tilegrad::DType;

struct Shape3 {
  int64_t outer, n, inner;
};
const Shape3 kShapes[] = {{1, 1, 1},    {3, 7, 1},    {5, 64, 1},   {4, 129, 1},  {2, 768, 1},
                          {3, 1023, 1}, {2, 1024, 1}, {2, 1025, 1}, {2, 5000, 1}, {1, 50257, 1},
                          {37, 9, 1},   {9, 2000, 1}, {3, 7, 5},    {2, 129, 33}, {1, 1, 70},
                          {4, 1023, 2}, {2, 65, 40},  {1, 3000, 3}};

std::string describe(DType dt, const Shape3& s, bool log) {
  return std::string(log ? "log_softmax " : "softmax ") + std::string(tilegrad::dtype_name(dt)) +
         " [" + std::to_string(s.outer) + ", " + std::to_string(s.n) + ", " +
         std::to_string(s.inner) + "]";
}

// Offset of element i of row (o, c) in a contiguous [outer, n, inner] block.
size_t at(const Shape3& s, int64_t o, int64_t i, int64_t c) {
  return static_cast<size_t>((o * s.n + i) * s.inner + c);
}

// An absolute floor for results that fall among float16's subnormals (steps of 2^-24).
double subnormal_floor(DType dt) {
  return dt == DType::f16 ? std::ldexp(1.0, -23) : 0.0;
}

TEST(CudaSoftmax, ForwardMatchesCpu) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt);
    const double u = unit_roundoff(dt), ua = unit_roundoff(acc_dtype(dt));
    for (const Shape3& s : kShapes) {
      for (bool log : {false, true}) {
        SCOPED_TRACE(describe(dt, s, log));
        const size_t total = static_cast<size_t>(s.outer * s.n * s.inner);
        const Bytes x = encode(dt, uniform(rng, total, -4.0, 4.0));
        Bytes y_cpu(total * es);
        tilegrad::kernels::cpu::softmax_forward(dt, x.data(), y_cpu.data(), s.outer, s.n, s.inner,
                                                log);
        const DeviceBuffer dx(x.size()), dy(total * es);
        dx.upload(x.data());
        tilegrad::kernels::cuda::softmax_forward(dt, dx.get(), dy.get(), s.outer, s.n, s.inner, log,
                                                 nullptr);
        const std::vector<double> xv = decode(dt, x), yc = decode(dt, y_cpu),
                                  yg = decode(dt, download(dy));
        // The row's sum of n terms, the exp (an ulp or two) and the argument x - max (up to 8 in
        // size), all in the accumulation type.
        const double acc = ua * (24.0 + 16.0 * std::sqrt(static_cast<double>(s.n)));
        std::vector<double> tol(total);
        for (size_t k = 0; k < total; ++k) {
          tol[k] = log ? 4.0 * u * std::abs(yc[k]) + acc * (1.0 + std::abs(xv[k] - yc[k]))
                       : (4.0 * u + acc) * std::abs(yc[k]) + subnormal_floor(dt);
        }
        expect_close(yg, yc, tol, "y");
      }
    }
  }
}

TEST(CudaSoftmax, BackwardMatchesCpu) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(4);
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt);
    const double u = unit_roundoff(dt), ua = unit_roundoff(acc_dtype(dt));
    for (const Shape3& s : kShapes) {
      for (bool log : {false, true}) {
        SCOPED_TRACE(describe(dt, s, log));
        const size_t total = static_cast<size_t>(s.outer * s.n * s.inner);
        const Bytes x = encode(dt, uniform(rng, total, -4.0, 4.0));
        const Bytes gy = encode(dt, uniform(rng, total, -1.0, 1.0));
        // y is the CPU forward's output, the same bytes for both backwards.
        Bytes y(total * es), gx_cpu(total * es);
        tilegrad::kernels::cpu::softmax_forward(dt, x.data(), y.data(), s.outer, s.n, s.inner, log);
        tilegrad::kernels::cpu::softmax_backward(dt, y.data(), gy.data(), gx_cpu.data(), s.outer,
                                                 s.n, s.inner, log);
        const DeviceBuffer dy(y.size()), dgy(gy.size()), dgx(total * es);
        dy.upload(y.data());
        dgy.upload(gy.data());
        tilegrad::kernels::cuda::softmax_backward(dt, dy.get(), dgy.get(), dgx.get(), s.outer, s.n,
                                                  s.inner, log, nullptr);
        const std::vector<double> yv = decode(dt, y), gv = decode(dt, gy), gc = decode(dt, gx_cpu),
                                  gg = decode(dt, download(dgx));

        const double acc = 16.0 * std::sqrt(static_cast<double>(s.n)) * ua;
        std::vector<double> tol(total);
        for (int64_t o = 0; o < s.outer; ++o) {
          for (int64_t c = 0; c < s.inner; ++c) {
            // The row's sum and the sum of its terms' magnitudes.
            double sum = 0, mag = 0;
            for (int64_t i = 0; i < s.n; ++i) {
              const size_t k = at(s, o, i, c);
              const double t = log ? gv[k] : gv[k] * yv[k];
              sum += t;
              mag += std::abs(t);
            }
            for (int64_t i = 0; i < s.n; ++i) {
              const size_t k = at(s, o, i, c);
              if (log) {  // gx = gy - exp(y) · Σ gy
                const double p = std::exp(yv[k]);
                const double term = std::abs(gv[k]) + p * std::abs(sum);
                tol[k] = (4.0 * u + 16.0 * ua * (1.0 + std::abs(yv[k]))) * term + p * acc * mag;
              } else {  // gx = y · (gy - Σ gy y)
                const double term = std::abs(yv[k]) * (std::abs(gv[k]) + std::abs(sum));
                tol[k] = (4.0 * u + 16.0 * ua) * term + std::abs(yv[k]) * acc * mag;
              }
              tol[k] += subnormal_floor(dt);
            }
          }
        }
        expect_close(gg, gc, tol, "gx");
      }
    }
  }
}

TEST(CudaSoftmax, RejectsIntegerDTypesLikeTheCpu) {
  TG_REQUIRE_GPU();
  for (bool log : {false, true}) {
    const std::string cpu = error_of([&] {
      tilegrad::kernels::cpu::softmax_forward(DType::i64, nullptr, nullptr, 1, 1, 1, log);
    });
    ASSERT_FALSE(cpu.empty());
    EXPECT_EQ(error_of([&] {
                tilegrad::kernels::cuda::softmax_forward(DType::i64, nullptr, nullptr, 1, 1, 1, log,
                                                         nullptr);
              }),
              cpu);
    const std::string cpu_bwd = error_of([&] {
      tilegrad::kernels::cpu::softmax_backward(DType::u8, nullptr, nullptr, nullptr, 1, 1, 1, log);
    });
    ASSERT_FALSE(cpu_bwd.empty());
    EXPECT_EQ(error_of([&] {
                tilegrad::kernels::cuda::softmax_backward(DType::u8, nullptr, nullptr, nullptr, 1,
                                                          1, 1, log, nullptr);
              }),
              cpu_bwd);
  }
}

}  // namespace
