// GPU layer norm (kernels/cuda/layernorm) against the CPU kernel on the same inputs: every float
// dtype; widths C from 1 to 5000 (each block size of the row kernels) and row counts that give one
// or many gw/gb partials; with and without weight and bias; rows with a large mean; every choice of
// requested gradients; backwards from the input and from the output (LayerNormSaved); gw and gb
// the same bits on two runs; the CPU's dtype errors.
//
// Tolerances are a few units in the last place of the dtype, plus the accumulation type's rounding
// over sqrt(terms) additions (the GPU adds in a different order), relative to the magnitude of the
// terms that make up each result.
#include "kernels/cuda/layernorm.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "cuda_kernels/cuda_testing.h"
#include "kernels/cpu/layernorm.h"

namespace {

using namespace tgcuda;  // NOLINT: the GPU tests' shared helpers (cuda_testing.h)
using tilegrad::DType;

struct Case {
  int64_t rows, C;
};
// C = 1, odd widths, each path (a warp per row up to C = 1024, a block of 256 threads up to 4096,
// then 512), and rows from one to several hundred (up to 10 partial sums per column in the
// backward; row counts that leave the last block of warps part full). The last two give the
// one-pass backward's warp pairs two rows and more each on a GPU of up to ~140 SMs (its steps of
// two rows, and an odd row left at the end).
const Case kCases[] = {{1, 1},      {5, 1},      {3, 7},      {70, 64},    {130, 129}, {33, 768},
                       {200, 768},  {9, 1023},   {3, 2000},   {4, 5000},   {600, 33},  {1000, 520},
                       {2000, 256}, {100, 1024}, {3001, 768}, {1703, 1000}};
constexpr double kEps = 1e-5;

// Rows of C values in [-2, 3); every third row is shifted by 50, a large mean against the spread.
std::vector<double> random_x(std::mt19937_64& rng, int64_t rows, int64_t C) {
  std::vector<double> x = uniform(rng, static_cast<size_t>(rows * C), -2.0, 3.0);
  for (int64_t r = 0; r < rows; r += 3) {
    for (int64_t j = 0; j < C; ++j) x[static_cast<size_t>(r * C + j)] += 50.0;
  }
  return x;
}

std::string describe(DType dt, const Case& c) {
  return std::string(tilegrad::dtype_name(dt)) + " rows " + std::to_string(c.rows) + " C " +
         std::to_string(c.C);
}

// A backward's inputs, drawn in the order x, w, b, gy, and the CPU forward's y, mean and rstd (with
// w when `with_w`, with b when `with_b`): the saved statistics both backwards read.
struct BackwardInputs {
  Bytes x, w, b, gy, y, mean, rstd;
};
BackwardInputs backward_inputs(std::mt19937_64& rng, DType dt, int64_t rows, int64_t C, bool with_w,
                               bool with_b) {
  const size_t n = static_cast<size_t>(rows * C);
  const size_t es = tilegrad::dtype_size(dt), as = tilegrad::dtype_size(acc_dtype(dt));
  BackwardInputs in;
  in.x = encode(dt, random_x(rng, rows, C));
  in.w = encode(dt, uniform(rng, static_cast<size_t>(C), 0.5, 1.5));
  in.b = encode(dt, uniform(rng, static_cast<size_t>(C), -1.0, 1.0));
  in.gy = encode(dt, uniform(rng, n, -1.0, 1.0));
  in.y = Bytes(n * es);
  in.mean = Bytes(rows * as);
  in.rstd = Bytes(rows * as);
  tilegrad::kernels::cpu::layernorm_forward(dt, in.x.data(), with_w ? in.w.data() : nullptr,
                                            with_b ? in.b.data() : nullptr, in.y.data(),
                                            in.mean.data(), in.rstd.data(), rows, C, kEps);
  return in;
}

TEST(CudaLayerNorm, ForwardMatchesCpu) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(1);
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt), as = tilegrad::dtype_size(acc_dtype(dt));
    const double u = unit_roundoff(dt), ua = unit_roundoff(acc_dtype(dt));
    for (const Case& cs : kCases) {
      for (int affine = 0; affine < 4; ++affine) {
        const bool has_w = (affine & 1) != 0, has_b = (affine & 2) != 0;
        const std::string what = describe(dt, cs) + (has_w ? " w" : "") + (has_b ? " b" : "");
        SCOPED_TRACE(what);
        const int64_t rows = cs.rows, C = cs.C;
        const size_t n = static_cast<size_t>(rows * C);
        const Bytes x = encode(dt, random_x(rng, rows, C));
        const Bytes w = encode(dt, uniform(rng, static_cast<size_t>(C), 0.5, 1.5));
        const Bytes b = encode(dt, uniform(rng, static_cast<size_t>(C), -1.0, 1.0));

        Bytes y_cpu(n * es), mean_cpu(rows * as), rstd_cpu(rows * as);
        tilegrad::kernels::cpu::layernorm_forward(dt, x.data(), has_w ? w.data() : nullptr,
                                                  has_b ? b.data() : nullptr, y_cpu.data(),
                                                  mean_cpu.data(), rstd_cpu.data(), rows, C, kEps);

        const DeviceBuffer dx = to_device(x), dw = to_device(w), db = to_device(b);
        const DeviceBuffer dy(n * es), dmean(rows * as), drstd(rows * as);
        tilegrad::kernels::cuda::layernorm_forward(
            dt, dx.get(), has_w ? dw.get() : nullptr, has_b ? db.get() : nullptr, dy.get(),
            dmean.get(), drstd.get(), rows, C, kEps, nullptr);

        const std::vector<double> xv = decode(dt, x), wv = decode(dt, w);
        const std::vector<double> yc = decode(dt, y_cpu), yg = decode(dt, download(dy));
        const std::vector<double> mc = decode(acc_dtype(dt), mean_cpu),
                                  mg = decode(acc_dtype(dt), download(dmean));
        const std::vector<double> rc = decode(acc_dtype(dt), rstd_cpu),
                                  rg = decode(acc_dtype(dt), download(drstd));
        std::vector<double> tol_y(n), tol_m(rows), tol_r(rows);
        const double w_max = has_w ? *std::max_element(wv.begin(), wv.end()) : 1.0;
        for (int64_t r = 0; r < rows; ++r) {
          double x_max = 0, y_max = 0;
          for (int64_t j = 0; j < C; ++j) {
            x_max = std::max(x_max, std::abs(xv[r * C + j]));
            y_max = std::max(y_max, std::abs(yc[r * C + j]));
          }
          // The statistics differ by the rounding of sums of C terms of size max |x|; y inherits
          // that through (x - mean) · rstd · w.
          const double acc = 16.0 * std::sqrt(static_cast<double>(C)) * ua;
          const double amp = 1.0 + x_max * rc[r];
          tol_m[r] = acc * x_max;
          tol_r[r] = acc * amp * rc[r];
          for (int64_t j = 0; j < C; ++j) {
            tol_y[r * C + j] = 4.0 * u * y_max + acc * amp * (y_max + x_max * rc[r] * w_max);
          }
        }
        expect_close(yg, yc, tol_y, "y");
        expect_close(mg, mc, tol_m, "mean");
        expect_close(rg, rc, tol_r, "rstd");
      }
    }
  }
}

// What a backward reads of the forward (LayerNormSaved): x, mean and rstd, or y, rstd and b.
tilegrad::LayerNormSaved saved_of(bool from_y, const void* x, const void* y, const void* mean,
                                  const void* rstd, const void* b) {
  if (from_y) return {.v = y, .rstd = rstd, .b = b, .from_output = true};
  return {.v = x, .mean = mean, .rstd = rstd};
}

// Which of gx, gw, gb a backward call asks for.
struct Outputs {
  bool gx, gw, gb;
};
const Outputs kOutputs[] = {{true, true, true},   {true, false, false}, {false, true, false},
                            {false, false, true}, {false, true, true},  {true, false, true}};

TEST(CudaLayerNorm, BackwardMatchesCpuAndIsDeterministic) {
  TG_REQUIRE_GPU();
  cudaStream_t stream;
  TG_CUDA_CHECK(cudaStreamCreate(&stream));
  std::mt19937_64 rng(2);
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt);
    const double u = unit_roundoff(dt), ua = unit_roundoff(acc_dtype(dt));
    for (const Case& cs : kCases) {
      for (int k = 0; k < 12; ++k) {
        const Outputs out = kOutputs[k % 6];
        const bool has_w = k % 2 == 0;
        // From the output: a bias too, so that x̂ = (y − b) / w has both parts.
        const bool from_y = k >= 6;
        const std::string what = describe(dt, cs) + (has_w ? " w" : "") +
                                 (from_y ? " from y" : "") + " outputs " + (out.gx ? "gx " : "") +
                                 (out.gw ? "gw " : "") + (out.gb ? "gb" : "");
        SCOPED_TRACE(what);
        const int64_t rows = cs.rows, C = cs.C;
        const size_t n = static_cast<size_t>(rows * C);
        const BackwardInputs in = backward_inputs(rng, dt, rows, C, has_w, from_y);
        const Bytes &x = in.x, &w = in.w, &b = in.b, &gy = in.gy, &y = in.y, &mean = in.mean,
                    &rstd = in.rstd;
        const void* pw = has_w ? w.data() : nullptr;

        Bytes gx_cpu(n * es), gw_cpu(C * es), gb_cpu(C * es);
        const tilegrad::LayerNormSaved cpu_saved =
            saved_of(from_y, x.data(), y.data(), mean.data(), rstd.data(), b.data());
        tilegrad::kernels::cpu::layernorm_backward(
            dt, gy.data(), cpu_saved, pw, out.gx ? gx_cpu.data() : nullptr,
            out.gw ? gw_cpu.data() : nullptr, out.gb ? gb_cpu.data() : nullptr, rows, C);

        const DeviceBuffer dx = to_device(x), dy = to_device(y), dw = to_device(w),
                           db = to_device(b), dgy = to_device(gy), dmean = to_device(mean),
                           drstd = to_device(rstd);
        const tilegrad::LayerNormSaved gpu_saved =
            saved_of(from_y, dx.get(), dy.get(), dmean.get(), drstd.get(), db.get());
        Bytes first[3];
        for (int run = 0; run < 2; ++run) {
          const DeviceBuffer dgx(n * es), dgw(C * es), dgb(C * es);
          tilegrad::kernels::cuda::layernorm_backward(
              dt, dgy.get(), gpu_saved, has_w ? dw.get() : nullptr, out.gx ? dgx.get() : nullptr,
              out.gw ? dgw.get() : nullptr, out.gb ? dgb.get() : nullptr, rows, C, stream);
          TG_CUDA_CHECK(cudaStreamSynchronize(stream));
          const Bytes got[3] = {download(dgx), download(dgw), download(dgb)};
          if (run == 1) {
            EXPECT_TRUE(got[0] == first[0] && got[1] == first[1] && got[2] == first[2])
                << "a second run gave other bits";
            break;
          }
          for (int i = 0; i < 3; ++i) first[i] = got[i];
        }

        const std::vector<double> xv = decode(dt, x), yv = decode(dt, y), wv = decode(dt, w),
                                  bv = decode(dt, b), gv = decode(dt, gy);
        const std::vector<double> mv = decode(acc_dtype(dt), mean),
                                  rv = decode(acc_dtype(dt), rstd);
        // x̂ as the kernels recover it (the magnitudes the tolerances scale with).
        auto xhat = [&](int64_t r, int64_t j) {
          const size_t i = static_cast<size_t>(r * C + j);
          if (!from_y) return (xv[i] - mv[r]) * rv[r];
          return (yv[i] - bv[j]) / (has_w ? wv[j] : 1.0);
        };
        if (out.gx) {
          // Row scale: rstd · (|ĝ| + |mean ĝ| + |x̂| · (|mean ĝx̂| + |ĝ x̂|)), the sizes of the
          // terms whose rounding can show in gx.
          std::vector<double> tol(n);
          const double acc = 16.0 * std::sqrt(static_cast<double>(C)) * ua;
          for (int64_t r = 0; r < rows; ++r) {
            double g_max = 0, xh_max = 0, gxh_max = 0, sg = 0, sgx = 0;
            for (int64_t j = 0; j < C; ++j) {
              const double g = gv[r * C + j] * (has_w ? wv[j] : 1.0);
              const double xh = xhat(r, j);
              g_max = std::max(g_max, std::abs(g));
              xh_max = std::max(xh_max, std::abs(xh));
              gxh_max = std::max(gxh_max, std::abs(g * xh));
              sg += g;
              sgx += g * xh;
            }
            const double scale =
                rv[r] * (g_max + std::abs(sg) / C + xh_max * (std::abs(sgx) / C + gxh_max));
            for (int64_t j = 0; j < C; ++j) tol[r * C + j] = (4.0 * u + acc) * scale;
          }
          expect_close(decode(dt, first[0]), decode(dt, gx_cpu), tol, "gx");
        }
        // gw and gb: per column, relative to Σ over rows of the terms' magnitudes.
        const double acc = 16.0 * std::sqrt(static_cast<double>(rows)) * ua;
        std::vector<double> tol_w(C, 0.0), tol_b(C, 0.0);
        for (int64_t r = 0; r < rows; ++r) {
          for (int64_t j = 0; j < C; ++j) {
            const double g = std::abs(gv[r * C + j]);
            tol_w[j] += g * std::abs(xhat(r, j));
            tol_b[j] += g;
          }
        }
        for (int64_t j = 0; j < C; ++j) {
          tol_w[j] *= 4.0 * u + acc;
          tol_b[j] *= 4.0 * u + acc;
        }
        if (out.gw) expect_close(decode(dt, first[1]), decode(dt, gw_cpu), tol_w, "gw");
        if (out.gb) expect_close(decode(dt, first[2]), decode(dt, gb_cpu), tol_b, "gb");
      }
    }
  }
  TG_CUDA_CHECK(cudaStreamDestroy(stream));
}

// gx_add: gx = gx_add + the gradient, with the bits of the gradient alone rounded to the dtype and
// then added in the accumulation type (what a separate add kernel gives), on every path (one pass
// and the two-pass kernels) and with and without gw, gb; the CPU kernel gives the same sums from
// its own gradient.
TEST(CudaLayerNorm, AddsIntoAGivenGradient) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(3);
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt), as = tilegrad::dtype_size(acc_dtype(dt));
    for (const Case& cs : kCases) {
      for (bool params : {false, true}) {
        SCOPED_TRACE(describe(dt, cs) + (params ? " gw gb" : ""));
        const int64_t rows = cs.rows, C = cs.C;
        const size_t n = static_cast<size_t>(rows * C);
        const Bytes x = encode(dt, random_x(rng, rows, C));
        const Bytes w = encode(dt, uniform(rng, static_cast<size_t>(C), 0.5, 1.5));
        const Bytes gy = encode(dt, uniform(rng, n, -1.0, 1.0));
        const Bytes ga = encode(dt, uniform(rng, n, -2.0, 2.0));
        Bytes y(n * es), mean(rows * as), rstd(rows * as);
        tilegrad::kernels::cpu::layernorm_forward(dt, x.data(), w.data(), nullptr, y.data(),
                                                  mean.data(), rstd.data(), rows, C, kEps);
        const DeviceBuffer dx = to_device(x), dw = to_device(w), dgy = to_device(gy),
                           dga = to_device(ga), dmean = to_device(mean), drstd = to_device(rstd);
        const DeviceBuffer plain(n * es), summed(n * es), dgw(C * es), dgb(C * es);
        namespace kc = tilegrad::kernels::cuda;
        const tilegrad::LayerNormSaved gpu_saved{
            .v = dx.get(), .mean = dmean.get(), .rstd = drstd.get()};
        kc::layernorm_backward(dt, dgy.get(), gpu_saved, dw.get(), plain.get(), nullptr, nullptr,
                               rows, C, nullptr);
        kc::layernorm_backward(dt, dgy.get(), gpu_saved, dw.get(), summed.get(),
                               params ? dgw.get() : nullptr, params ? dgb.get() : nullptr, rows, C,
                               nullptr, dga.get());
        // The separate add, on the host: exact in double, then rounded once to the dtype.
        const std::vector<double> a = decode(dt, ga), g = decode(dt, download(plain));
        std::vector<double> want(n);
        for (size_t i = 0; i < n; ++i)
          want[i] = dt == DType::f64
                        ? a[i] + g[i]
                        : static_cast<double>(static_cast<float>(a[i]) + static_cast<float>(g[i]));
        EXPECT_EQ(download(summed), encode(dt, want));
        // The CPU kernel's sum is its own gradient plus ga, rounded the same way.
        Bytes cpu_plain(n * es), cpu_sum(n * es);
        const tilegrad::LayerNormSaved cpu_saved{
            .v = x.data(), .mean = mean.data(), .rstd = rstd.data()};
        tilegrad::kernels::cpu::layernorm_backward(dt, gy.data(), cpu_saved, w.data(),
                                                   cpu_plain.data(), nullptr, nullptr, rows, C);
        tilegrad::kernels::cpu::layernorm_backward(dt, gy.data(), cpu_saved, w.data(),
                                                   cpu_sum.data(), nullptr, nullptr, rows, C,
                                                   ga.data());
        const std::vector<double> gc = decode(dt, cpu_plain);
        for (size_t i = 0; i < n; ++i)
          want[i] = dt == DType::f64
                        ? a[i] + gc[i]
                        : static_cast<double>(static_cast<float>(a[i]) + static_cast<float>(gc[i]));
        EXPECT_EQ(cpu_sum, encode(dt, want));
      }
    }
  }
}

// gx_sum: gx's column sums, of the values the call wrote (after gx_add), on every path — the
// one-pass kernel summing in shared memory (16-bit C up to 800, float32 up to 512), the one-pass
// kernel whose shared memory has no room for them (16-bit C = 1024: a pass over gx), the two-pass
// kernels — from the input and from the output, with and without gx_add, gw and gb; the same bits
// on a second run, and gx itself the bits of a call without the sums.
TEST(CudaLayerNorm, SumsTheGradientItWrites) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  namespace kc = tilegrad::kernels::cuda;
  for (DType dt : kFloatDTypes) {
    const size_t es = tilegrad::dtype_size(dt);
    const double u = unit_roundoff(dt), ua = unit_roundoff(acc_dtype(dt));
    for (const Case& cs : kCases) {
      for (int k = 0; k < 4; ++k) {
        const bool from_y = (k & 1) != 0, add = (k & 2) != 0, params = k == 1 || k == 2;
        SCOPED_TRACE(describe(dt, cs) + (from_y ? " from y" : "") + (add ? " gx_add" : "") +
                     (params ? " gw gb" : ""));
        const int64_t rows = cs.rows, C = cs.C;
        const size_t n = static_cast<size_t>(rows * C);
        const BackwardInputs in = backward_inputs(rng, dt, rows, C, true, true);
        const Bytes &x = in.x, &w = in.w, &b = in.b, &gy = in.gy, &y = in.y, &mean = in.mean,
                    &rstd = in.rstd;
        const Bytes ga = encode(dt, uniform(rng, n, -2.0, 2.0));
        const DeviceBuffer dx = to_device(x), dy = to_device(y), dw = to_device(w),
                           db = to_device(b), dgy = to_device(gy), dga = to_device(ga),
                           dmean = to_device(mean), drstd = to_device(rstd);
        const DeviceBuffer dgw(C * es), dgb(C * es);
        const tilegrad::LayerNormSaved saved =
            saved_of(from_y, dx.get(), dy.get(), dmean.get(), drstd.get(), db.get());
        const void* pa = add ? dga.get() : nullptr;
        const DeviceBuffer plain(n * es);
        kc::layernorm_backward(dt, dgy.get(), saved, dw.get(), plain.get(), nullptr, nullptr, rows,
                               C, nullptr, pa);
        Bytes gx, sums;
        for (int run = 0; run < 2; ++run) {
          const DeviceBuffer dgx(n * es), dsum(C * es);
          kc::layernorm_backward(dt, dgy.get(), saved, dw.get(), dgx.get(),
                                 params ? dgw.get() : nullptr, params ? dgb.get() : nullptr, rows,
                                 C, nullptr, pa, dsum.get());
          TG_CUDA_CHECK(cudaDeviceSynchronize());
          if (run == 1) {
            EXPECT_TRUE(download(dgx) == gx && download(dsum) == sums) << "a second run differs";
            break;
          }
          gx = download(dgx);
          sums = download(dsum);
        }
        EXPECT_EQ(gx, download(plain)) << "the sums changed gx";
        // Against gx's sums in float64: the accumulation's error and the final rounding.
        const std::vector<double> g = decode(dt, gx), got = decode(dt, sums);
        for (int64_t j = 0; j < C; ++j) {
          double want = 0, mag = 0;
          for (int64_t r = 0; r < rows; ++r) {
            want += g[r * C + j];
            mag += std::abs(g[r * C + j]);
          }
          const double tol =
              u * std::abs(want) + 16.0 * std::sqrt(static_cast<double>(rows)) * ua * mag;
          ASSERT_NEAR(got[j], want, tol) << "column " << j;
        }
      }
    }
  }
}

// No rows: the statistics are never written and the parameter gradients are zero, as on the CPU.
// A NaN in one row's gy: that row's gx is NaN in every column (its means are), every other row's
// is finite, and gw and gb are NaN in that column only — on the one-pass backward, whose 16-bit
// outputs round two to an instruction except where a pair holds a NaN.
TEST(CudaLayerNorm, ANanStaysInItsRowAndColumn) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(5);
  for (DType dt : {DType::f32, DType::bf16, DType::f16}) {
    for (bool from_y : {false, true}) {
      SCOPED_TRACE(std::string(tilegrad::dtype_name(dt)) + (from_y ? " from y" : ""));
      const int64_t rows = 3001, C = 768, bad_row = 1234, bad_col = 77;
      const size_t n = static_cast<size_t>(rows * C), es = tilegrad::dtype_size(dt);
      BackwardInputs in = backward_inputs(rng, dt, rows, C, true, from_y);
      std::vector<double> g = decode(dt, in.gy);
      g[static_cast<size_t>(bad_row * C + bad_col)] = std::nan("");
      in.gy = encode(dt, g);
      const DeviceBuffer dx = to_device(in.x), dy = to_device(in.y), dw = to_device(in.w),
                         db = to_device(in.b), dgy = to_device(in.gy), dmean = to_device(in.mean),
                         drstd = to_device(in.rstd);
      const DeviceBuffer dgx(n * es), dgw(C * es), dgb(C * es);
      const tilegrad::LayerNormSaved saved =
          saved_of(from_y, dx.get(), dy.get(), dmean.get(), drstd.get(), db.get());
      tilegrad::kernels::cuda::layernorm_backward(dt, dgy.get(), saved, dw.get(), dgx.get(),
                                                  dgw.get(), dgb.get(), rows, C, nullptr);
      TG_CUDA_CHECK(cudaDeviceSynchronize());
      const std::vector<double> gx = decode(dt, download(dgx)), gw = decode(dt, download(dgw)),
                                gb = decode(dt, download(dgb));
      for (int64_t r = 0; r < rows; ++r) {
        for (int64_t j = 0; j < C; ++j) {
          const double v = gx[static_cast<size_t>(r * C + j)];
          const bool want_nan = r == bad_row;
          ASSERT_TRUE(want_nan ? std::isnan(v) : std::isfinite(v))
              << "gx row " << r << " column " << j << ": " << v;
        }
      }
      for (int64_t j = 0; j < C; ++j) {
        EXPECT_EQ(std::isnan(gw[j]), j == bad_col) << "gw column " << j;
        EXPECT_EQ(std::isnan(gb[j]), j == bad_col) << "gb column " << j;
      }
    }
  }
}

TEST(CudaLayerNorm, NoRowsGivesZeroParameterGradients) {
  TG_REQUIRE_GPU();
  const int64_t C = 37;
  const DeviceBuffer dgw(C * 4), dgb(C * 4), dummy(4);
  const tilegrad::LayerNormSaved saved{.v = dummy.get(), .mean = dummy.get(), .rstd = dummy.get()};
  tilegrad::kernels::cuda::layernorm_backward(DType::f32, dummy.get(), saved, nullptr, nullptr,
                                              dgw.get(), dgb.get(), 0, C, nullptr);
  const std::vector<float> gw = tgcuda::to_host<float>(dgw, C), gb = tgcuda::to_host<float>(dgb, C);
  for (int64_t j = 0; j < C; ++j) {
    EXPECT_EQ(gw[j], 0.0f);
    EXPECT_EQ(gb[j], 0.0f);
  }
}

TEST(CudaLayerNorm, RejectsIntegerDTypesLikeTheCpu) {
  TG_REQUIRE_GPU();
  const std::string cpu = error_of([] {
    tilegrad::kernels::cpu::layernorm_forward(DType::i32, nullptr, nullptr, nullptr, nullptr,
                                              nullptr, nullptr, 1, 1, kEps);
  });
  ASSERT_FALSE(cpu.empty());
  EXPECT_EQ(error_of([] {
              tilegrad::kernels::cuda::layernorm_forward(DType::i32, nullptr, nullptr, nullptr,
                                                         nullptr, nullptr, nullptr, 1, 1, kEps,
                                                         nullptr);
            }),
            cpu);
  const std::string cpu_bwd = error_of([] {
    tilegrad::kernels::cpu::layernorm_backward(DType::u8, nullptr, {}, nullptr, nullptr, nullptr,
                                               nullptr, 1, 1);
  });
  ASSERT_FALSE(cpu_bwd.empty());
  EXPECT_EQ(error_of([] {
              tilegrad::kernels::cuda::layernorm_backward(DType::u8, nullptr, {}, nullptr, nullptr,
                                                          nullptr, nullptr, 1, 1, nullptr);
            }),
            cpu_bwd);
}

}  // namespace
