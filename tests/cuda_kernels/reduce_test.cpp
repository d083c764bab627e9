// The CUDA reductions (kernels/cuda/reduce.h) against the CPU's (kernels/cpu/reduce.h) on the same
// random, non-zero inputs: sum and max in every float dtype, over every kind of dimension set
// (inner, outer, middle, several, all, none), with each of the kernel's block shapes (a thread, a
// warp, a block per output, and outputs across the warp), on contiguous, transposed, padded,
// broadcast (stride 0) and misaligned inputs of odd sizes. Max must give the CPU's bits; sums, both
// accumulated in float64, agree to the dtype's rounding plus float64 rounding relative to sum |x|.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "cuda_testing.h"
#include "kernels/cpu/reduce.h"
#include "kernels/cuda/reduce.h"

namespace tgcuda {
namespace {

using tgcuda::kFloatDTypes;
using tgcuda::Layout;
using tgcuda::layout_name;
using tilegrad::bfloat16;
using tilegrad::DType;
using tilegrad::float16;
using tilegrad::ReduceOp;
using tilegrad::StridedView;

double load(DType dt, const unsigned char* p) {
  switch (dt) {
    case DType::f64: {
      double v;
      std::memcpy(&v, p, 8);
      return v;
    }
    case DType::f32: {
      float v;
      std::memcpy(&v, p, 4);
      return v;
    }
    case DType::bf16: {
      bfloat16 v;
      std::memcpy(&v, p, 2);
      return static_cast<float>(v);
    }
    case DType::f16: {
      float16 v;
      std::memcpy(&v, p, 2);
      return static_cast<float>(v);
    }
    default:
      return 0.0;
  }
}

void store(DType dt, unsigned char* p, double v) {
  if (dt == DType::f64) {
    std::memcpy(p, &v, 8);
  } else if (dt == DType::f32) {
    const float f = static_cast<float>(v);
    std::memcpy(p, &f, 4);
  } else if (dt == DType::bf16) {
    const bfloat16 b(static_cast<float>(v));
    std::memcpy(p, &b, 2);
  } else {
    const float16 h(static_cast<float>(v));
    std::memcpy(p, &h, 2);
  }
}

// The machine epsilon of a float dtype: one result rounding's relative error is at most half of it.
double epsilon(DType dt) {
  switch (dt) {
    case DType::f64:
      return std::ldexp(1.0, -52);
    case DType::f32:
      return std::ldexp(1.0, -23);
    case DType::bf16:
      return std::ldexp(1.0, -7);
    default:
      return std::ldexp(1.0, -10);
  }
}

struct Config {
  std::vector<int64_t> shape;
  std::vector<int> reduced;  // dimensions reduced
  Layout layout;
};

// x: values at every buffer position (gaps included); element `set_nan` (a row-major index modulo
// the size; -1 for none) is made NaN. Compares the GPU's out buffer, plus a poisoned tail past it,
// with the CPU's.
// use_workspace: hand the kernel the partials workspace it asks for (as the backend does), so that
// reductions to few outputs take the split path; false runs them one block per output tile.
void run_case(ReduceOp op, DType dt, const Config& cfg, uint64_t seed, int64_t set_nan = -1,
              bool use_workspace = true) {
  std::mt19937_64 rng(seed);
  const int nd = static_cast<int>(cfg.shape.size());
  const size_t es = tilegrad::dtype_size(dt);
  std::ostringstream where;
  where << (op == ReduceOp::sum ? "sum" : "max") << " " << tilegrad::dtype_name(dt) << " shape [";
  for (int d = 0; d < nd; ++d) where << (d ? ", " : "") << cfg.shape[d];
  where << "] over {";
  for (size_t k = 0; k < cfg.reduced.size(); ++k) where << (k ? ", " : "") << cfg.reduced[k];
  where << "} " << layout_name(cfg.layout);
  SCOPED_TRACE(where.str());

  // x's strides for the layout (as in elementwise_test.cpp).
  StridedView x;
  x.dtype = dt;
  x.ndim = nd;
  std::vector<bool> zero(nd, false);
  if (cfg.layout == Layout::broadcast) {
    std::vector<int> candidates;
    for (int d = 0; d < nd; ++d) {
      if (cfg.shape[d] > 1) candidates.push_back(d);
    }
    for (int d : candidates) zero[d] = rng() % 2 == 0;
    if (!candidates.empty()) zero[candidates[rng() % candidates.size()]] = true;
  }
  int64_t step = cfg.layout == Layout::padded ? 2 : 1;
  if (cfg.layout == Layout::transposed) {
    for (int d = 0; d < nd; ++d) {
      x.shape[d] = cfg.shape[d];
      x.strides[d] = step;
      step *= cfg.shape[d];
    }
  } else {
    for (int d = nd - 1; d >= 0; --d) {
      x.shape[d] = cfg.shape[d];
      if (zero[d]) continue;
      x.strides[d] = step;
      step = step * cfg.shape[d] + (cfg.layout == Layout::padded ? 1 : 0);
    }
  }
  const int64_t first = cfg.layout == Layout::misaligned ? 1 : 0;
  int64_t last = 0;
  bool empty = false;
  for (int d = 0; d < nd; ++d) {
    empty = empty || cfg.shape[d] == 0;
    last += (cfg.shape[d] - 1) * x.strides[d];
  }
  const int64_t span = first + (empty ? 0 : last) + 1;
  std::vector<unsigned char> hx(static_cast<size_t>(span) * es);
  std::uniform_real_distribution<double> u(0.1, 2.0);
  for (int64_t p = 0; p < span; ++p) {
    store(dt, hx.data() + p * es, (rng() % 2 ? 1.0 : -1.0) * u(rng));
  }
  // Row-major index -> buffer position.
  const auto position = [&](int64_t i) {
    int64_t pos = first;
    for (int d = nd - 1; d >= 0; --d) {
      pos += (i % cfg.shape[d]) * x.strides[d];
      i /= cfg.shape[d];
    }
    return pos;
  };
  int64_t numel = 1;
  for (int64_t s : cfg.shape) numel *= s;
  if (set_nan >= 0 && numel > 0) {
    store(dt, hx.data() + position(set_nan % numel) * es, std::numeric_limits<double>::quiet_NaN());
  }
  DeviceBuffer dx(hx.size());
  dx.upload(hx.data());

  StridedView out;
  out.dtype = dt;
  out.ndim = nd;
  int64_t n_out = 1, n_red = 1;
  for (int d = 0; d < nd; ++d) out.shape[d] = cfg.shape[d];
  for (int d : cfg.reduced) {
    n_red *= cfg.shape[d];
    out.shape[d] = 1;
  }
  for (int d = nd - 1; d >= 0; --d) {
    out.strides[d] = n_out;  // contiguous
    n_out *= out.shape[d];
  }
  constexpr int64_t kTail = 3;  // poisoned elements past the output
  std::vector<unsigned char> hout(static_cast<size_t>(n_out + kTail) * es, 0xFF);
  DeviceBuffer dout(hout.size());

  StridedView gx = x, gout = out;
  x.data = hx.data() + first * static_cast<int64_t>(es);
  out.data = hout.data();
  gx.data = static_cast<unsigned char*>(dx.get()) + first * static_cast<int64_t>(es);
  gout.data = dout.get();
  cudaStream_t stream = nullptr;
  TG_CUDA_CHECK(cudaStreamCreate(&stream));
  const size_t ws_bytes = tilegrad::kernels::cuda::reduce_workspace_bytes(gx, gout);
  DeviceBuffer ws(std::max<size_t>(ws_bytes, 8));
  tilegrad::kernels::cuda::reduce(op, gx, gout, stream,
                                  use_workspace && ws_bytes > 0 ? ws.get() : nullptr);
  TG_CUDA_CHECK(cudaStreamSynchronize(stream));
  TG_CUDA_CHECK(cudaStreamDestroy(stream));
  tilegrad::kernels::cpu::reduce(op, x, out);
  std::vector<unsigned char> got(hout.size());
  dout.download(got.data());

  // sum |x| over each output's elements, for the sums' tolerance.
  std::vector<double> abs_sum(static_cast<size_t>(n_out), 0.0);
  for (int64_t i = 0; i < numel; ++i) {
    int64_t rem = i, o = 0, scale = 1;
    for (int d = nd - 1; d >= 0; --d) {
      const int64_t c = rem % cfg.shape[d];
      rem /= cfg.shape[d];
      if (out.shape[d] != 1) o += c * scale;
      scale *= out.shape[d];
    }
    abs_sum[o] += std::abs(load(dt, hx.data() + position(i) * es));
  }
  int failures = 0;
  for (int64_t o = 0; o < n_out + kTail; ++o) {
    const unsigned char* pg = got.data() + o * es;
    const unsigned char* pw = hout.data() + o * es;
    if (std::memcmp(pg, pw, es) == 0) continue;
    const double g = load(dt, pg), w = load(dt, pw);
    if (o < n_out && std::isnan(g) && std::isnan(w)) continue;  // NaN payloads may differ
    if (o < n_out && op == ReduceOp::sum && std::isfinite(g) && std::isfinite(w)) {
      // Both sums are float64 before the one rounding to the dtype: they differ by float64
      // rounding (at most n_red + a few units of 2^-53 relative to sum |x|, for any order),
      // after which the dtype's rounding may land on neighbouring values.
      const double tol = epsilon(dt) * std::abs(w) +
                         static_cast<double>(n_red + 8) * std::ldexp(1.0, -53) * abs_sum[o];
      if (std::abs(g - w) <= tol) continue;
    }
    if (++failures <= 5) {
      ADD_FAILURE() << (o < n_out ? "output " : "past the end: element ") << o << ": gpu " << g
                    << ", cpu " << w;
    }
  }
  EXPECT_EQ(failures, 0);
}

std::vector<Config> configs(uint64_t seed) {
  using L = Layout;
  std::vector<Config> list = {
      {{37, 1001}, {1}, L::contiguous},      // a warp per output
      {{5, 100003}, {1}, L::contiguous},     // a block per output
      {{3001, 67}, {0}, L::contiguous},      // over rows: outputs across the warp
      {{1001, 264}, {0}, L::contiguous},     // over 16-byte aligned rows: a vector per lane
      {{1234, 7}, {1}, L::contiguous},       // a thread per output
      {{300001}, {0}, L::contiguous},        // everything to one output
      {{40, 3, 50}, {0, 2}, L::contiguous},  // outer and inner, the middle kept
      {{6, 50, 41}, {0, 2}, L::transposed},
      {{9, 1, 13, 5}, {1, 3}, L::padded},  // a size-1 dimension among the reduced
      {{16, 300}, {0}, L::broadcast},
      {{20, 3000}, {1}, L::broadcast},
      {{513, 129}, {1}, L::misaligned},
      {{7, 11}, {}, L::transposed},  // nothing reduced: a copy
      {{7, 11}, {0, 1}, L::transposed},
      {{2, 3, 2, 3, 2, 3, 2, 3}, {0, 2, 5, 7}, L::padded},  // kMaxDims dimensions
      {{}, {}, L::contiguous},                              // a single element
      {{3, 0}, {1}, L::contiguous},                         // empty reductions: 0 and -inf
      {{0, 5}, {1}, L::contiguous},                         // no outputs
  };
  std::mt19937_64 rng(seed);
  const L layouts[] = {L::contiguous, L::transposed, L::padded, L::broadcast, L::misaligned};
  for (int r = 0; r < 6; ++r) {
    Config c;
    const int rank = 1 + static_cast<int>(rng() % 4);
    for (int d = 0; d < rank; ++d) {
      c.shape.push_back(1 + static_cast<int64_t>(rng() % 40));
      if (rng() % 2) c.reduced.push_back(d);
    }
    c.layout = layouts[rng() % 5];
    list.push_back(c);
  }
  return list;
}

TEST(CudaReduce, SumMatchesTheCpuForEveryDtypeAndLayout) {
  TG_REQUIRE_GPU();
  uint64_t seed = 1000;
  for (DType dt : kFloatDTypes) {
    for (const Config& cfg : configs(seed)) run_case(ReduceOp::sum, dt, cfg, ++seed);
  }
}

TEST(CudaReduce, MaxMatchesTheCpuBitForBit) {
  TG_REQUIRE_GPU();
  uint64_t seed = 2000;
  for (DType dt : kFloatDTypes) {
    for (const Config& cfg : configs(seed)) run_case(ReduceOp::max, dt, cfg, ++seed);
  }
}

// A NaN reaches its output through every block shape, for max as for sum.
TEST(CudaReduce, NanPropagatesLikeOnTheCpu) {
  TG_REQUIRE_GPU();
  const Config cases[] = {{{9, 5}, {1}, Layout::contiguous},
                          {{64, 300}, {0}, Layout::contiguous},
                          {{64, 304}, {0}, Layout::contiguous},
                          {{4, 1000}, {1}, Layout::contiguous},
                          {{3, 5000}, {1}, Layout::transposed}};
  uint64_t seed = 3000;
  for (DType dt : kFloatDTypes) {
    for (const Config& cfg : cases) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) run_case(op, dt, cfg, ++seed, 101);
    }
  }
}

// Few outputs over many elements (a bias gradient: sums over the rows of a [rows, C] matrix), where
// the reduced range is cut into chunks whose partials a second kernel combines: with and without
// the workspace, for sum and max, with a NaN in one chunk.
TEST(CudaReduce, SplitReductionsMatchTheCpu) {
  TG_REQUIRE_GPU();
  const Config cases[] = {
      {{16384, 96}, {0}, Layout::contiguous},   {{5003, 1032}, {0}, Layout::contiguous},
      {{7, 20011, 33}, {0, 1}, Layout::padded}, {{3, 200003}, {1}, Layout::contiguous},
      {{40000, 5}, {0}, Layout::transposed},    {{9000, 37}, {0}, Layout::misaligned}};
  uint64_t seed = 4000;
  for (DType dt : kFloatDTypes) {
    for (const Config& cfg : cases) {
      for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
        for (bool ws : {true, false}) run_case(op, dt, cfg, ++seed, -1, ws);
        run_case(op, dt, cfg, ++seed, 12345, true);
      }
    }
  }
}

TEST(CudaReduce, UnsupportedDtypesThrowTheCpuError) {
  TG_REQUIRE_GPU();
  StridedView x;
  x.dtype = DType::i32;
  x.ndim = 2;
  x.shape[0] = 3;
  x.shape[1] = 4;
  x.strides[0] = 4;
  x.strides[1] = 1;
  StridedView out = x;
  out.shape[1] = 1;
  out.strides[0] = 1;
  for (ReduceOp op : {ReduceOp::sum, ReduceOp::max}) {
    std::string gpu_error, cpu_error;
    try {
      tilegrad::kernels::cuda::reduce(op, x, out, nullptr);
    } catch (const tilegrad::Error& e) {
      gpu_error = e.what();
    }
    try {
      tilegrad::kernels::cpu::reduce(op, x, out);
    } catch (const tilegrad::Error& e) {
      cpu_error = e.what();
    }
    EXPECT_FALSE(cpu_error.empty());
    EXPECT_EQ(gpu_error, cpu_error);
  }
}

}  // namespace
}  // namespace tgcuda
