// The CUDA elementwise kernels (kernels/cuda/elementwise.h) against the CPU kernels of the same
// name on the same random, non-zero inputs: every op and every dtype the CPU supports, on
// contiguous, transposed, padded, broadcast (stride 0) and misaligned operands of odd sizes, into
// contiguous, transposed, padded and misaligned outputs. Copy, fill and the ops that round once
// (neg, relu, sqrt, +, -, ×, ÷, ==, ...) must give the CPU's bits; ops with exp, log, tanh or pow,
// and products of two roundings (which a compiler may fuse into an FMA), agree within a few ulp of
// the dtype. Elements of the output buffer outside the view must keep their poison bytes.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <memory>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "cuda_testing.h"
#include "kernels/cpu/elementwise.h"
#include "kernels/cuda/elementwise.h"

namespace tgcuda {
namespace {

using tgcuda::error_of;
using tgcuda::kFloatDTypes;
using tgcuda::Layout;
using tgcuda::layout_name;
using tilegrad::bfloat16;
using tilegrad::DType;
using tilegrad::float16;
using tilegrad::StridedView;
namespace cpu = tilegrad::kernels::cpu;
namespace gpu = tilegrad::kernels::cuda;

constexpr DType kAllTypes[] = {DType::f64, DType::f32, DType::bf16, DType::f16,
                               DType::i32, DType::i64, DType::u8};

// How an operand's elements sit in its buffer.
// Random values: magnitude in [lo, hi), random sign unless `positive`; `small_ints` draws from
// {±1, ±2} instead, so that equal elements are common (for ==).
struct Values {
  double lo = 0.1, hi = 2.0;
  bool positive = false;
  bool small_ints = false;
};

double draw(const Values& v, std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double sign = v.positive || u(rng) < 0.5 ? 1.0 : -1.0;
  if (v.small_ints) return sign * (u(rng) < 0.5 ? 1.0 : 2.0);
  return sign * (v.lo + (v.hi - v.lo) * u(rng));
}

// One operand: a host buffer and a device buffer of `span` elements, and the view's shape, strides
// and first element into them. Buffers start as 0xFF bytes ("poison").
struct Operand {
  DType dtype = DType::f32;
  std::vector<int64_t> shape, strides;
  int64_t first = 0, span = 1;
  std::vector<unsigned char> host;
  std::unique_ptr<DeviceBuffer> dev;

  size_t esize() const { return tilegrad::dtype_size(dtype); }
  int64_t numel() const {
    int64_t n = 1;
    for (int64_t s : shape) n *= s;
    return n;
  }
  StridedView view(void* base) const {
    StridedView v;
    v.data = static_cast<unsigned char*>(base) + first * static_cast<int64_t>(esize());
    v.dtype = dtype;
    v.ndim = static_cast<int>(shape.size());
    for (int d = 0; d < v.ndim; ++d) {
      v.shape[d] = shape[d];
      v.strides[d] = strides[d];
    }
    return v;
  }
  StridedView host_view() { return view(host.data()); }
  StridedView device_view() const { return view(dev->get()); }
  // Buffer position of the element with row-major index i.
  int64_t position(int64_t i) const {
    int64_t off = first;
    for (int d = static_cast<int>(shape.size()) - 1; d >= 0; --d) {
      off += (i % shape[d]) * strides[d];
      i /= shape[d];
    }
    return off;
  }
  double get(const std::vector<unsigned char>& buf, int64_t pos) const {
    const unsigned char* p = buf.data() + pos * static_cast<int64_t>(esize());
    switch (dtype) {
      case DType::f64:
        return load<double>(p);
      case DType::f32:
        return load<float>(p);
      case DType::bf16:
        return static_cast<float>(load<bfloat16>(p));
      case DType::f16:
        return static_cast<float>(load<float16>(p));
      case DType::i32:
        return static_cast<double>(load<int32_t>(p));
      case DType::i64:
        return static_cast<double>(load<int64_t>(p));
      case DType::u8:
        return static_cast<double>(load<uint8_t>(p));
    }
    return 0.0;
  }
  void set(int64_t pos, double v) {
    unsigned char* p = host.data() + pos * static_cast<int64_t>(esize());
    switch (dtype) {
      case DType::f64:
        return store(p, v);
      case DType::f32:
        return store(p, static_cast<float>(v));
      case DType::bf16:
        return store(p, bfloat16(static_cast<float>(v)));
      case DType::f16:
        return store(p, float16(static_cast<float>(v)));
      case DType::i32:
        return store(p, static_cast<int32_t>(v));
      case DType::i64:
        return store(p, static_cast<int64_t>(v));
      case DType::u8:
        return store(p, static_cast<uint8_t>(v));
    }
  }
  void upload() const { dev->upload(host.data()); }
  std::vector<unsigned char> download() const {
    std::vector<unsigned char> buf(host.size());
    dev->download(buf.data());
    return buf;
  }

  template <class T>
  static T load(const unsigned char* p) {
    T v;
    std::memcpy(&v, p, sizeof(T));
    return v;
  }
  template <class T>
  static void store(unsigned char* p, T v) {
    std::memcpy(p, &v, sizeof(T));
  }
};

Operand make_operand(DType dtype, const std::vector<int64_t>& shape, Layout layout,
                     std::mt19937_64& rng) {
  Operand op;
  op.dtype = dtype;
  op.shape = shape;
  const int nd = static_cast<int>(shape.size());
  op.strides.assign(nd, 0);
  int64_t step = layout == Layout::padded ? 2 : 1;
  std::vector<bool> zero(nd, false);
  if (layout == Layout::broadcast) {
    std::vector<int> candidates;
    for (int d = 0; d < nd; ++d) {
      if (shape[d] > 1) candidates.push_back(d);
    }
    for (int d : candidates) zero[d] = rng() % 2 == 0;
    if (!candidates.empty()) zero[candidates[rng() % candidates.size()]] = true;
  }
  if (layout == Layout::transposed) {
    for (int d = 0; d < nd; ++d) {
      op.strides[d] = step;
      step *= shape[d];
    }
  } else {
    for (int d = nd - 1; d >= 0; --d) {
      if (zero[d]) continue;
      op.strides[d] = step;
      step = step * shape[d] + (layout == Layout::padded ? 1 : 0);
    }
  }
  op.first = layout == Layout::misaligned ? 1 : 0;
  int64_t last = 0;
  bool empty = false;
  for (int d = 0; d < nd; ++d) {
    if (shape[d] == 0) empty = true;
    last += (shape[d] - 1) * op.strides[d];
  }
  op.span = op.first + (empty ? 0 : last) + 1;
  op.host.assign(static_cast<size_t>(op.span) * op.esize(), 0xFF);
  op.dev = std::make_unique<DeviceBuffer>(op.host.size());
  return op;
}

// Tolerance for agreement: a multiple of the dtype's machine epsilon (2 ulp for the 16-bit types,
// whose results differ only where float results straddle a rounding boundary; 8 for f32 and f64,
// whose libm functions each err by up to a few ulp) times a per-element magnitude.
double tolerance(DType dt) {
  switch (dt) {
    case DType::f64:
      return 8 * std::ldexp(1.0, -52);
    case DType::f32:
      return 8 * std::ldexp(1.0, -23);
    case DType::bf16:
      return 2 * std::ldexp(1.0, -7);
    case DType::f16:
      return 2 * std::ldexp(1.0, -10);
    default:
      return 0.0;
  }
}

using Views = std::vector<StridedView>;
// The magnitude that element i's error is measured against, from its inputs (and out's initial
// value when the op reads out) and the CPU's result.
using Scale = std::function<double(const std::vector<double>& inputs, double want)>;

double magnitude_of_result(const std::vector<double>&, double want) {
  return std::abs(want);
}

// One op under test on both devices.
struct Case {
  std::string name;
  DType out_dtype = DType::f32;
  std::vector<DType> in_dtypes;
  std::vector<Values> in_values;  // one per input
  bool out_is_input = false;      // out is read as well (add_scaled): random initial values
  Values out_values;
  bool exact = true;
  Scale scale = magnitude_of_result;
  std::function<void(const Views& in, const StridedView& out)> cpu;
  std::function<void(const Views& in, const StridedView& out, cudaStream_t stream)> gpu;
};

// Runs `c` on one shape and layout set and compares the GPU's output buffer with the CPU's.
void run_case(const Case& c, const std::vector<int64_t>& shape, Layout out_layout,
              const std::vector<Layout>& in_layouts, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::ostringstream where;
  where << c.name << " shape [";
  for (size_t d = 0; d < shape.size(); ++d) where << (d ? ", " : "") << shape[d];
  where << "] out " << tilegrad::dtype_name(c.out_dtype) << " " << layout_name(out_layout);
  std::vector<Operand> ins;
  for (size_t k = 0; k < c.in_dtypes.size(); ++k) {
    ins.push_back(make_operand(c.in_dtypes[k], shape, in_layouts[k], rng));
    // Every buffer position gets a value, gaps included: they must not leak into results.
    for (int64_t p = 0; p < ins.back().span; ++p) ins.back().set(p, draw(c.in_values[k], rng));
    ins.back().upload();
    where << ", in" << k << " " << tilegrad::dtype_name(c.in_dtypes[k]) << " "
          << layout_name(in_layouts[k]);
  }
  Operand out = make_operand(c.out_dtype, shape, out_layout, rng);
  const int64_t n = out.numel();
  if (c.out_is_input) {
    for (int64_t i = 0; i < n; ++i) out.set(out.position(i), draw(c.out_values, rng));
  }
  out.upload();
  const std::vector<unsigned char> out_initial = out.host;
  SCOPED_TRACE(where.str());

  Views host_in, dev_in;
  for (Operand& op : ins) {
    host_in.push_back(op.host_view());
    dev_in.push_back(op.device_view());
  }
  cudaStream_t stream = nullptr;
  TG_CUDA_CHECK(cudaStreamCreate(&stream));
  c.gpu(dev_in, out.device_view(), stream);
  TG_CUDA_CHECK(cudaStreamSynchronize(stream));
  TG_CUDA_CHECK(cudaStreamDestroy(stream));
  c.cpu(host_in, out.host_view());
  const std::vector<unsigned char> got = out.download();

  const size_t es = out.esize();
  std::vector<bool> written(static_cast<size_t>(out.span), false);
  int failures = 0;
  for (int64_t i = 0; i < n; ++i) {
    const int64_t pos = out.position(i);
    written[pos] = true;
    if (std::memcmp(got.data() + pos * es, out.host.data() + pos * es, es) == 0) continue;
    const double g = out.get(got, pos), w = out.get(out.host, pos);
    std::vector<double> inputs;
    for (const Operand& op : ins) inputs.push_back(op.get(op.host, op.position(i)));
    if (c.out_is_input) inputs.push_back(out.get(out_initial, pos));
    const double tol = tolerance(c.out_dtype) * c.scale(inputs, w);
    if (!c.exact && std::isfinite(g) && std::isfinite(w) && std::abs(g - w) <= tol) continue;
    if (++failures <= 5) {
      std::ostringstream in_text;
      for (double v : inputs) in_text << " " << v;
      ADD_FAILURE() << "element " << i << ": gpu " << g << ", cpu " << w << " (diff "
                    << std::abs(g - w) << ", tolerance " << (c.exact ? 0.0 : tol) << "), inputs"
                    << in_text.str();
    }
  }
  for (int64_t p = 0; p < out.span; ++p) {
    if (written[p]) continue;
    if (std::memcmp(got.data() + p * es, out.host.data() + p * es, es) != 0 && ++failures <= 5) {
      ADD_FAILURE() << "buffer position " << p << " outside the view was written";
    }
  }
  EXPECT_EQ(failures, 0);
}

struct Config {
  std::vector<int64_t> shape;
  Layout out, a, b;  // b: the second input's layout, where there is one
};

// Fixed configurations (one per path of the kernels), then random ones.
std::vector<Config> configs(uint64_t seed) {
  using L = Layout;
  std::vector<Config> list = {
      {{1001}, L::contiguous, L::contiguous, L::contiguous},  // vectors and a tail
      {{7, 33, 5}, L::contiguous, L::contiguous, L::contiguous},
      {{13, 9, 6}, L::transposed, L::contiguous, L::transposed},
      {{6, 1, 17, 3}, L::contiguous, L::broadcast, L::contiguous},
      {{11, 7}, L::padded, L::transposed, L::broadcast},
      {{5, 8, 3}, L::transposed, L::broadcast, L::padded},
      {{517}, L::misaligned, L::contiguous, L::contiguous},
      {{300}, L::contiguous, L::misaligned, L::contiguous},
      {{2, 3, 2, 3, 2, 3, 2, 3}, L::transposed, L::padded, L::broadcast},  // kMaxDims dims
      {{}, L::contiguous, L::contiguous, L::contiguous},                   // one element
      {{4, 0, 3}, L::contiguous, L::contiguous, L::contiguous},            // none
  };
  std::mt19937_64 rng(seed);
  const L outs[] = {L::contiguous, L::transposed, L::padded, L::misaligned};
  const L any[] = {L::contiguous, L::transposed, L::padded, L::broadcast, L::misaligned};
  for (int r = 0; r < 4; ++r) {
    Config c;
    const int rank = static_cast<int>(rng() % 5);
    for (int d = 0; d < rank; ++d) c.shape.push_back(1 + static_cast<int64_t>(rng() % 12));
    c.out = outs[rng() % 4];
    c.a = any[rng() % 5];
    c.b = any[rng() % 5];
    list.push_back(c);
  }
  return list;
}

void run_everywhere(const Case& c, uint64_t seed) {
  uint64_t s = seed;
  for (const Config& cfg : configs(seed)) {
    std::vector<Layout> in_layouts = {cfg.a, cfg.b};
    in_layouts.resize(c.in_dtypes.size(), Layout::contiguous);
    run_case(c, cfg.shape, cfg.out, in_layouts, ++s);
  }
}

// The message of the tilegrad::Error that f() throws, or "" if none.
// Magnitudes for the tolerances of ops whose intermediate terms exceed their result.
double gelu_scale(const std::vector<double>& in, double want) {
  return std::abs(want) + std::abs(in[0]);  // 1 + tanh u cancels for x < 0 in the tanh form
}
double gelu_backward_scale(const std::vector<double>& in, double want) {
  return std::abs(want) + std::abs(in[0]) * (1 + in[1] * in[1]);
}
double product_scale(const std::vector<double>& in, double want) {
  return std::abs(want) + std::abs(in[0]) * (1 + in[1] * in[1]);
}

TEST(CudaElementwise, CopyConvertsEveryDtypePairLikeTheCpu) {
  TG_REQUIRE_GPU();
  uint64_t seed = 100;
  for (DType to : kAllTypes) {
    for (DType from : kAllTypes) {
      Case c;
      c.name = "copy";
      c.out_dtype = to;
      c.in_dtypes = {from};
      // In range for both types: uint8 takes [0, 255]; the others hold ±3000 (float16's
      // integers are exact only to 2048, so rounding is exercised).
      const bool bytes = to == DType::u8 || from == DType::u8;
      c.in_values = {Values{1.0, bytes ? 250.0 : 3000.0, bytes}};
      c.cpu = [](const Views& in, const StridedView& out) { cpu::copy(in[0], out); };
      c.gpu = [](const Views& in, const StridedView& out, cudaStream_t s) {
        gpu::copy(in[0], out, s);
      };
      run_everywhere(c, seed += 100);
    }
  }
}

TEST(CudaElementwise, FillWritesTheCpuValueForEveryDtype) {
  TG_REQUIRE_GPU();
  uint64_t seed = 200;
  for (DType dt : kAllTypes) {
    // 123456789 is not a float: integer fills round through float as on the CPU.
    std::vector<double> values = {2.5, 200.0};
    if (dt != DType::u8) values.insert(values.end(), {-7.25, 123456789.0});
    for (double v : values) {
      Case c;
      c.name = "fill " + std::to_string(v);
      c.out_dtype = dt;
      c.cpu = [v](const Views&, const StridedView& out) { cpu::fill(out, v); };
      c.gpu = [v](const Views&, const StridedView& out, cudaStream_t s) { gpu::fill(out, v, s); };
      run_everywhere(c, seed += 100);
    }
  }
}

struct UnaryCase {
  tilegrad::UnaryOp op;
  Values x;         // forward input
  Values saved;     // backward: the saved x or y
  bool exact;       // forward rounds once
  bool exact_back;  // backward rounds once
  Scale scale = magnitude_of_result;
  Scale back_scale = magnitude_of_result;
};

std::vector<UnaryCase> unary_cases() {
  using tilegrad::UnaryOp;
  const Values general{0.1, 3.0}, positive{0.1, 4.0, true};
  return {
      {UnaryOp::neg, general, general, true, true},
      {UnaryOp::exp, general, Values{0.1, 20.0, true}, false, true},
      {UnaryOp::log, positive, positive, false, true},
      {UnaryOp::tanh, general, Values{0.05, 0.95}, false, false, magnitude_of_result,
       product_scale},
      {UnaryOp::relu, general, general, true, true},
      {UnaryOp::gelu, general, general, false, false, gelu_scale, gelu_backward_scale},
      {UnaryOp::sigmoid, Values{0.1, 4.0}, Values{0.05, 0.95, true}, false, false,
       magnitude_of_result, product_scale},
      {UnaryOp::sqrt, positive, positive, true, true},
  };
}

TEST(CudaElementwise, UnaryMatchesTheCpuForEveryOpAndDtype) {
  TG_REQUIRE_GPU();
  uint64_t seed = 300;
  for (const UnaryCase& u : unary_cases()) {
    for (DType dt : kFloatDTypes) {
      Case c;
      c.name = tilegrad::unary_op_name(u.op);
      c.out_dtype = dt;
      c.in_dtypes = {dt};
      c.in_values = {u.x};
      c.exact = u.exact;
      c.scale = u.scale;
      const tilegrad::UnaryOp op = u.op;
      c.cpu = [op](const Views& in, const StridedView& out) { cpu::unary(op, in[0], out); };
      c.gpu = [op](const Views& in, const StridedView& out, cudaStream_t s) {
        gpu::unary(op, in[0], out, s);
      };
      run_everywhere(c, seed += 100);
    }
  }
}

TEST(CudaElementwise, UnaryBackwardMatchesTheCpuForEveryOpAndDtype) {
  TG_REQUIRE_GPU();
  uint64_t seed = 400;
  for (const UnaryCase& u : unary_cases()) {
    for (DType dt : kFloatDTypes) {
      Case c;
      c.name = std::string(tilegrad::unary_op_name(u.op)) + " backward";
      c.out_dtype = dt;
      c.in_dtypes = {dt, dt};
      c.in_values = {Values{0.1, 2.0}, u.saved};
      c.exact = u.exact_back;
      c.scale = u.back_scale;
      const tilegrad::UnaryOp op = u.op;
      c.cpu = [op](const Views& in, const StridedView& out) {
        cpu::unary_backward(op, in[0], in[1], out);
      };
      c.gpu = [op](const Views& in, const StridedView& out, cudaStream_t s) {
        gpu::unary_backward(op, in[0], in[1], out, s);
      };
      run_everywhere(c, seed += 100);
    }
  }
}

TEST(CudaElementwise, BinaryMatchesTheCpuBitForBit) {
  TG_REQUIRE_GPU();
  using tilegrad::BinaryOp;
  uint64_t seed = 500;
  for (BinaryOp op : {BinaryOp::add, BinaryOp::sub, BinaryOp::mul, BinaryOp::div, BinaryOp::eq}) {
    for (DType dt : kFloatDTypes) {
      Case c;
      c.name = tilegrad::binary_op_name(op);
      c.out_dtype = dt;
      c.in_dtypes = {dt, dt};
      // Few distinct values for ==, so that both outcomes occur.
      const Values v = op == BinaryOp::eq ? Values{1.0, 2.0, false, true} : Values{0.1, 3.0};
      c.in_values = {v, v};
      c.cpu = [op](const Views& in, const StridedView& out) { cpu::binary(op, in[0], in[1], out); };
      c.gpu = [op](const Views& in, const StridedView& out, cudaStream_t s) {
        gpu::binary(op, in[0], in[1], out, s);
      };
      run_everywhere(c, seed += 100);
    }
  }
}

TEST(CudaElementwise, ScalarMatchesTheCpuForEveryOpAndDtype) {
  TG_REQUIRE_GPU();
  using tilegrad::ScalarOp;
  struct ScalarCase {
    ScalarOp op;
    double s;
    bool exact;
  };
  const ScalarCase cases[] = {{ScalarOp::add, 0.75, true},  {ScalarOp::mul, -1.5, true},
                              {ScalarOp::rsub, 2.25, true}, {ScalarOp::rdiv, 1.75, true},
                              {ScalarOp::pow, 2.0, true},   {ScalarOp::pow, 1.5, false},
                              {ScalarOp::pow, -0.5, false}};
  uint64_t seed = 600;
  for (const ScalarCase& sc : cases) {
    for (DType dt : kFloatDTypes) {
      Case c;
      c.name = std::string(tilegrad::scalar_op_name(sc.op)) + " " + std::to_string(sc.s);
      c.out_dtype = dt;
      c.in_dtypes = {dt};
      // pow with a fractional exponent needs positive bases.
      c.in_values = {Values{0.1, 3.0, sc.op == ScalarOp::pow}};
      c.exact = sc.exact;
      const ScalarOp op = sc.op;
      const double s = sc.s;
      c.cpu = [op, s](const Views& in, const StridedView& out) { cpu::scalar(op, in[0], s, out); };
      c.gpu = [op, s](const Views& in, const StridedView& out, cudaStream_t st) {
        gpu::scalar(op, in[0], s, out, st);
      };
      run_everywhere(c, seed += 100);
    }
  }
}

TEST(CudaElementwise, AddScaledMatchesTheCpuInPlace) {
  TG_REQUIRE_GPU();
  uint64_t seed = 700;
  for (double alpha : {1.0, -0.37}) {
    for (DType dt : kFloatDTypes) {
      Case c;
      c.name = "add_scaled " + std::to_string(alpha);
      c.out_dtype = dt;
      c.in_dtypes = {dt};
      c.in_values = {Values{0.1, 3.0}};
      c.out_is_input = true;
      c.out_values = Values{0.1, 3.0};
      // d + alpha s rounds once for alpha = 1; otherwise the product may be fused.
      c.exact = alpha == 1.0;
      c.scale = [alpha](const std::vector<double>& in, double want) {
        return std::abs(want) + std::abs(in[1]) + std::abs(alpha * in[0]);
      };
      c.cpu = [alpha](const Views& in, const StridedView& out) {
        cpu::add_scaled(in[0], alpha, out);
      };
      c.gpu = [alpha](const Views& in, const StridedView& out, cudaStream_t s) {
        gpu::add_scaled(in[0], alpha, out, s);
      };
      run_everywhere(c, seed += 100);
    }
  }
}

// Past one wave of blocks, so that every thread loops (grid-stride), on the vector path and on the
// strided one.
TEST(CudaElementwise, LargeTensorsLoopOverTheGrid) {
  TG_REQUIRE_GPU();
  const std::vector<int64_t> shape = {1031, 2053};
  Case gelu;
  gelu.name = "gelu";
  gelu.in_values = {Values{0.1, 3.0}};
  gelu.exact = false;
  gelu.scale = gelu_scale;
  gelu.cpu = [](const Views& in, const StridedView& out) {
    cpu::unary(tilegrad::UnaryOp::gelu, in[0], out);
  };
  gelu.gpu = [](const Views& in, const StridedView& out, cudaStream_t s) {
    gpu::unary(tilegrad::UnaryOp::gelu, in[0], out, s);
  };
  Case add;
  add.name = "add";
  add.in_values = {Values{0.1, 3.0}, Values{0.1, 3.0}};
  add.cpu = [](const Views& in, const StridedView& out) {
    cpu::binary(tilegrad::BinaryOp::add, in[0], in[1], out);
  };
  add.gpu = [](const Views& in, const StridedView& out, cudaStream_t s) {
    gpu::binary(tilegrad::BinaryOp::add, in[0], in[1], out, s);
  };
  Case copy;
  copy.name = "copy";
  copy.in_values = {Values{0.1, 3.0}};
  copy.cpu = [](const Views& in, const StridedView& out) { cpu::copy(in[0], out); };
  copy.gpu = [](const Views& in, const StridedView& out, cudaStream_t s) {
    gpu::copy(in[0], out, s);
  };
  for (DType dt : {DType::f32, DType::bf16}) {
    gelu.out_dtype = dt;
    gelu.in_dtypes = {dt};
    run_case(gelu, shape, Layout::contiguous, {Layout::contiguous}, 1);
    run_case(gelu, shape, Layout::transposed, {Layout::contiguous}, 2);
    add.out_dtype = dt;
    add.in_dtypes = {dt, dt};
    run_case(add, shape, Layout::contiguous, {Layout::contiguous, Layout::broadcast}, 3);
    copy.out_dtype = dt;
    copy.in_dtypes = {DType::f32};
    run_case(copy, shape, Layout::transposed, {Layout::contiguous}, 4);
  }
}

// y = f(x) with y and x the same buffer, and out = a + b with out the same buffer as a.
TEST(CudaElementwise, InPlaceOperandsMatchTheCpu) {
  TG_REQUIRE_GPU();
  std::mt19937_64 rng(9);
  for (DType dt : kFloatDTypes) {
    for (Layout layout : {Layout::contiguous, Layout::transposed}) {
      const std::vector<int64_t> shape = {37, 29};
      Operand a = make_operand(dt, shape, layout, rng);
      Operand b = make_operand(dt, shape, Layout::broadcast, rng);
      for (int64_t p = 0; p < a.span; ++p) a.set(p, draw(Values{0.1, 3.0}, rng));
      for (int64_t p = 0; p < b.span; ++p) b.set(p, draw(Values{0.1, 3.0}, rng));
      a.upload();
      b.upload();
      gpu::unary(tilegrad::UnaryOp::tanh, a.device_view(), a.device_view(), nullptr);
      gpu::binary(tilegrad::BinaryOp::mul, a.device_view(), b.device_view(), a.device_view(),
                  nullptr);
      cpu::unary(tilegrad::UnaryOp::tanh, a.host_view(), a.host_view());
      cpu::binary(tilegrad::BinaryOp::mul, a.host_view(), b.host_view(), a.host_view());
      const std::vector<unsigned char> got = a.download();
      for (int64_t i = 0; i < a.numel(); ++i) {
        const int64_t pos = a.position(i);
        const double g = a.get(got, pos), w = a.get(a.host, pos);
        // tanh's few ulp, then a product by |b| <= 3 and one more rounding.
        ASSERT_NEAR(g, w, 2 * tolerance(dt) * std::abs(w)) << "element " << i;
      }
    }
  }
}

TEST(CudaElementwise, UnsupportedDtypesThrowTheCpuError) {
  TG_REQUIRE_GPU();
  StridedView v;
  v.dtype = DType::i32;
  v.ndim = 1;
  v.shape[0] = 4;
  v.strides[0] = 1;
  const auto same = [](const std::string& gpu_error, const std::string& cpu_error) {
    EXPECT_FALSE(cpu_error.empty());
    EXPECT_EQ(gpu_error, cpu_error);
  };
  same(error_of([&] { gpu::unary(tilegrad::UnaryOp::exp, v, v, nullptr); }),
       error_of([&] { cpu::unary(tilegrad::UnaryOp::exp, v, v); }));
  same(error_of([&] { gpu::unary_backward(tilegrad::UnaryOp::gelu, v, v, v, nullptr); }),
       error_of([&] { cpu::unary_backward(tilegrad::UnaryOp::gelu, v, v, v); }));
  same(error_of([&] { gpu::binary(tilegrad::BinaryOp::add, v, v, v, nullptr); }),
       error_of([&] { cpu::binary(tilegrad::BinaryOp::add, v, v, v); }));
  same(error_of([&] { gpu::scalar(tilegrad::ScalarOp::pow, v, 3.0, v, nullptr); }),
       error_of([&] { cpu::scalar(tilegrad::ScalarOp::pow, v, 3.0, v); }));
  same(error_of([&] { gpu::add_scaled(v, 2.0, v, nullptr); }),
       error_of([&] { cpu::add_scaled(v, 2.0, v); }));
}

}  // namespace
}  // namespace tgcuda
