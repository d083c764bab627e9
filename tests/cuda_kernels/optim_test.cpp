// kernels/cuda/optim.h against kernels/cpu/optim.h: AdamW and SGD over several steps for every
// float dtype (bf16 and f16 with float32 master weights), the multi-tensor AdamW equal bit for bit
// to the per-tensor one (table flushes at the tensor and chunk limits included), and the sum of
// squares deterministic, equal with and without a caller's workspace, and close to a float64 sum.
//
// The updates are written to round exactly as the CPU does (optim.h), so the results are expected
// to be bitwise equal; the tests allow a few ulps of the accumulation type (and one ulp of a
// 16-bit parameter rounded from its master) so that a CPU build with FMA contraction still passes.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "cuda_testing.h"
#include "kernels/cpu/optim.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/optim.h"

namespace {

using tgcuda::as_double;
using tgcuda::bytes_of;
using tgcuda::for_each_float_type;
using tgcuda::random_vector;
using tgcuda::ulp_at;

using namespace tilegrad;  // NOLINT: tests read better with the engine's names
namespace kcpu = tilegrad::kernels::cpu;
namespace kcuda = tilegrad::kernels::cuda;

// Every element of got within `ulps` of T's spacing at want's value.
template <class T>
void expect_within_ulps(const std::vector<T>& got, const std::vector<T>& want, double ulps,
                        const char* what) {
  ASSERT_EQ(got.size(), want.size());
  for (size_t i = 0; i < got.size(); ++i) {
    const double g = as_double(got[i]), w = as_double(want[i]);
    ASSERT_LE(std::abs(g - w), ulps * ulp_at<T>(w))
        << what << "[" << i << "]: got " << g << ", CPU " << w;
  }
}

template <class T>
bool bitwise_equal(const std::vector<T>& a, const std::vector<T>& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), bytes_of(a)) == 0;
}

// One tensor's optimizer state on the host and on the device.
template <class T>
struct State {
  using A = acc_t<T>;
  std::vector<T> param;
  std::vector<float> master;  // 16-bit parameters only
  std::vector<A> m, v;        // AdamW moments, or the SGD momentum buffer in m
  tgcuda::DeviceBuffer d_param, d_master, d_m, d_v, d_grad;

  State(int64_t n, uint64_t seed)
      : param(random_vector<T>(n, seed, -2.0, 2.0)),
        m(static_cast<size_t>(n), A(0)),
        v(static_cast<size_t>(n), A(0)),
        d_param(bytes_of(param)),
        d_master(kHasMaster<T> ? static_cast<size_t>(n) * sizeof(float) : 0),
        d_m(bytes_of(m)),
        d_v(bytes_of(v)),
        d_grad(bytes_of(param)) {
    if constexpr (kHasMaster<T>) {
      for (const T& p : param) master.push_back(static_cast<float>(p));
      d_master.upload(master.data());
    }
    d_param.upload(param.data());
    d_m.upload(m.data());
    d_v.upload(v.data());
  }
  float* master_host() { return kHasMaster<T> ? master.data() : nullptr; }
  float* master_device() const {
    return kHasMaster<T> ? static_cast<float*>(d_master.get()) : nullptr;
  }
  // The device state against the host state.
  void expect_matches(bool with_v, int step) const {
    SCOPED_TRACE(testing::Message() << "after step " << step);
    const size_t n = param.size();
    // A 16-bit parameter is its master rounded: one 16-bit ulp if the masters differ near a tie.
    expect_within_ulps(tgcuda::to_host<T>(d_param, n), param, kHasMaster<T> ? 1.0 : 4.0, "param");
    if constexpr (kHasMaster<T>) {
      expect_within_ulps(tgcuda::to_host<float>(d_master, n), master, 4.0, "master");
    }
    expect_within_ulps(tgcuda::to_host<A>(d_m, n), m, 4.0, "m");
    if (with_v) expect_within_ulps(tgcuda::to_host<A>(d_v, n), v, 4.0, "v");
  }
};

template <class T>
void check_adamw(int64_t n) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype_of<T>()) << " n=" << n);
  const DType dt = dtype_of<T>();
  State<T> s(n, 11);
  AdamWStep st;
  st.lr = 3e-2;
  st.weight_decay = 0.1;
  st.grad_scale = 0.5;
  for (int step = 1; step <= 6; ++step) {
    st.step = step;
    // Gradients of varied size, so that sqrt(v) spans several binades.
    const std::vector<T> grad = random_vector<T>(n, 100 + step, -3.0 * step, 2.0 * step);
    s.d_grad.upload(grad.data());
    kcpu::adamw_update(dt, s.param.data(), s.master_host(), grad.data(), s.m.data(), s.v.data(), n,
                       st);
    kcuda::adamw_update(dt, s.d_param.get(), s.master_device(), s.d_grad.get(), s.d_m.get(),
                        s.d_v.get(), n, st, nullptr);
    s.expect_matches(true, step);
  }
}

template <class T>
void check_sgd(int64_t n, const SgdStep& base) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype_of<T>()) << " n=" << n << " momentum="
                                  << base.momentum << " nesterov=" << base.nesterov);
  const DType dt = dtype_of<T>();
  State<T> s(n, 12);
  SgdStep st = base;
  const bool momentum = st.momentum != 0.0;
  for (int step = 1; step <= 5; ++step) {
    st.first_step = step == 1;
    const std::vector<T> grad = random_vector<T>(n, 200 + step, -1.0, 1.5);
    s.d_grad.upload(grad.data());
    kcpu::sgd_update(dt, s.param.data(), s.master_host(), grad.data(),
                     momentum ? s.m.data() : nullptr, n, st);
    kcuda::sgd_update(dt, s.d_param.get(), s.master_device(), s.d_grad.get(),
                      momentum ? s.d_m.get() : nullptr, n, st, nullptr);
    s.expect_matches(false, step);
  }
}

TEST(CudaOptim, AdamWMatchesTheCpuOverSeveralSteps) {
  TG_REQUIRE_GPU();
  for_each_float_type([]<class T>() {
    for (int64_t n : {1, 7, 1000, 70001}) check_adamw<T>(n);
  });
}

TEST(CudaOptim, SgdMatchesTheCpuOverSeveralSteps) {
  TG_REQUIRE_GPU();
  SgdStep plain;
  plain.lr = 0.05;
  SgdStep heavy = plain;
  heavy.momentum = 0.9;
  heavy.dampening = 0.1;
  heavy.weight_decay = 0.01;
  heavy.grad_scale = 0.25;
  SgdStep nesterov = heavy;
  nesterov.dampening = 0.0;
  nesterov.nesterov = true;
  for_each_float_type([&]<class T>() {
    for (const SgdStep& st : {plain, heavy, nesterov}) {
      check_sgd<T>(1, st);
      check_sgd<T>(33333, st);
    }
  });
}

// Runs the same AdamW steps once per tensor and once through adamw_update_multi, on separate
// copies of the same state; every buffer must come out with the same bits.
template <class T>
void check_multi_equals_single(const std::vector<int64_t>& sizes, int steps) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype_of<T>()) << ", " << sizes.size()
                                  << " tensors");
  using A = acc_t<T>;
  const DType dt = dtype_of<T>();
  std::vector<std::unique_ptr<State<T>>> single, multi;
  std::vector<std::vector<T>> grads;
  for (size_t t = 0; t < sizes.size(); ++t) {
    single.push_back(std::make_unique<State<T>>(sizes[t], 300 + t));
    multi.push_back(std::make_unique<State<T>>(sizes[t], 300 + t));
  }
  for (int step = 1; step <= steps; ++step) {
    std::vector<AdamWTensor> table;
    for (size_t t = 0; t < sizes.size(); ++t) {
      const std::vector<T> grad = random_vector<T>(sizes[t], 1000 * step + t, -1.0, 1.0);
      single[t]->d_grad.upload(grad.data());
      multi[t]->d_grad.upload(grad.data());
      AdamWStep st;
      st.step = step + static_cast<int64_t>(t % 3);  // tensors may be at different steps
      st.lr = 1e-2 * (1.0 + static_cast<double>(t % 5));
      st.weight_decay = t % 2 == 0 ? 0.1 : 0.0;
      st.grad_scale = 0.75;
      State<T>& a = *single[t];
      kcuda::adamw_update(dt, a.d_param.get(), a.master_device(), a.d_grad.get(), a.d_m.get(),
                          a.d_v.get(), sizes[t], st, nullptr);
      State<T>& b = *multi[t];
      table.push_back({b.d_param.get(), b.master_device(), b.d_grad.get(), b.d_m.get(), b.d_v.get(),
                       sizes[t], st});
    }
    kcuda::adamw_update_multi(dt, table, nullptr);
  }
  for (size_t t = 0; t < sizes.size(); ++t) {
    SCOPED_TRACE(testing::Message() << "tensor " << t << " of " << sizes[t] << " elements");
    const size_t n = static_cast<size_t>(sizes[t]);
    const State<T>& a = *single[t];
    const State<T>& b = *multi[t];
    EXPECT_TRUE(bitwise_equal(tgcuda::to_host<T>(a.d_param, n), tgcuda::to_host<T>(b.d_param, n)));
    EXPECT_TRUE(bitwise_equal(tgcuda::to_host<A>(a.d_m, n), tgcuda::to_host<A>(b.d_m, n)));
    EXPECT_TRUE(bitwise_equal(tgcuda::to_host<A>(a.d_v, n), tgcuda::to_host<A>(b.d_v, n)));
    if constexpr (kHasMaster<T>) {
      EXPECT_TRUE(bitwise_equal(tgcuda::to_host<float>(a.d_master, n),
                                tgcuda::to_host<float>(b.d_master, n)));
    }
  }
}

TEST(CudaOptim, MultiTensorAdamWEqualsPerTensor) {
  TG_REQUIRE_GPU();
  // Odd sizes, an empty tensor, tensors of several chunks, one ending exactly on a chunk.
  const std::vector<int64_t> sizes = {1,    0,    5, kcuda::kAdamWChunk, 2 * kcuda::kAdamWChunk + 3,
                                      1000, 77777};
  for_each_float_type([&]<class T>() { check_multi_equals_single<T>(sizes, 3); });
}

TEST(CudaOptim, MultiTensorAdamWFlushesFullTables) {
  TG_REQUIRE_GPU();
  // More tensors than one table holds (kAdamWMaxTensors), then more chunks than one table holds
  // (kAdamWMaxChunks) with a tensor straddling the boundary.
  std::vector<int64_t> many;
  for (int t = 0; t < 2 * kcuda::kAdamWMaxTensors + 5; ++t) many.push_back(1 + 37 * t);
  check_multi_equals_single<float>(many, 2);
  check_multi_equals_single<bfloat16>(many, 2);
  const std::vector<int64_t> big = {(kcuda::kAdamWMaxChunks - 3) * kcuda::kAdamWChunk + 17,
                                    6 * kcuda::kAdamWChunk + 1, 12345};
  check_multi_equals_single<float>(big, 1);
}

// Σ x² in float64 with a compensated sum, the reference.
template <class T>
double reference_sum_squares(const std::vector<T>& x) {
  double sum = 0.0, c = 0.0;
  for (const T& e : x) {
    const double v = as_double(e);
    const double y = v * v - c, t = sum + y;
    c = (t - sum) - y;
    sum = t;
  }
  return sum;
}

template <class T>
void check_sum_squares(int64_t n) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype_of<T>()) << " n=" << n);
  const DType dt = dtype_of<T>();
  const std::vector<T> x = random_vector<T>(n, 400 + n, -3.0, 2.0);
  const tgcuda::DeviceBuffer d_x(std::max<size_t>(bytes_of(x), 1));
  if (n > 0) d_x.upload(x.data());
  const double got = kcuda::sum_squares(dt, d_x.get(), n, nullptr);
  const double want = reference_sum_squares(x);
  // Sums of positive terms: a relative error of a few float64 ulps times the depth of the sums.
  EXPECT_NEAR(got, want, 1e-12 * want);
  EXPECT_NEAR(got, kcpu::sum_squares(dt, x.data(), n), 1e-12 * want);
  // Deterministic: again, through a caller's workspace, and asynchronously.
  const tgcuda::DeviceBuffer ws(kcuda::kSumSquaresWorkspaceBytes), d_out(sizeof(double));
  const double again = kcuda::sum_squares(dt, d_x.get(), n, nullptr, ws.get());
  kcuda::sum_squares_async(dt, d_x.get(), n, static_cast<double*>(d_out.get()), nullptr, ws.get());
  const double async_ws = tgcuda::to_host<double>(d_out, 1)[0];
  kcuda::sum_squares_async(dt, d_x.get(), n, static_cast<double*>(d_out.get()), nullptr);
  const double async_pool = tgcuda::to_host<double>(d_out, 1)[0];
  for (double r : {again, async_ws, async_pool}) {
    EXPECT_EQ(std::memcmp(&r, &got, sizeof(double)), 0) << r << " != " << got;
  }
}

TEST(CudaOptim, SumSquaresIsDeterministicAndAccurate) {
  TG_REQUIRE_GPU();
  for_each_float_type([]<class T>() {
    // Empty; one element; around one partial's range (4096) and the block (256); many partials;
    // more elements than 1024 partials of the minimum range (ranges grow).
    for (int64_t n : {0, 1, 255, 4095, 4097, 100003, 5000011}) check_sum_squares<T>(n);
  });
}

// The list form equals adding the single sums on the host in list order, bit for bit, over inputs
// of mixed dtypes and sizes (an empty one included).
TEST(CudaOptim, SumSquaresListEqualsTheHostSumOfSingles) {
  TG_REQUIRE_GPU();
  const std::vector<float> a = random_vector<float>(100003, 71, -3.0, 2.0);
  const std::vector<double> b = random_vector<double>(4097, 72, -1.0, 5.0);
  const std::vector<float> c = random_vector<float>(1, 73, 0.5, 2.0);
  const tgcuda::DeviceBuffer da(bytes_of(a)), db(bytes_of(b)), dc(bytes_of(c)), dz(8);
  da.upload(a.data());
  db.upload(b.data());
  dc.upload(c.data());
  const std::vector<tilegrad::SumSquaresInput> xs = {{DType::f32, da.get(), 100003},
                                                     {DType::f64, db.get(), 4097},
                                                     {DType::f32, dz.get(), 0},
                                                     {DType::f32, dc.get(), 1}};
  double want = 0.0;
  for (const auto& x : xs) want += kcuda::sum_squares(x.dtype, x.x, x.n, nullptr);
  const tgcuda::DeviceBuffer ws(kcuda::sum_squares_list_workspace_bytes(xs));
  const double got = kcuda::sum_squares_list(xs, nullptr, ws.get());
  EXPECT_EQ(std::memcmp(&got, &want, sizeof(double)), 0) << got << " != " << want;
  EXPECT_GT(got, 0.0);
}

// More tensors than one launch's table holds (256), in runs of one dtype broken by another, sizes
// from one element to more than 1024 partials' worth: still the host's sum of singles, bitwise.
TEST(CudaOptim, SumSquaresListOverManyTensorsEqualsTheHostSumOfSingles) {
  TG_REQUIRE_GPU();
  std::vector<tgcuda::DeviceBuffer> bufs;
  std::vector<tilegrad::SumSquaresInput> xs;
  for (int i = 0; i < 600; ++i) {
    const int64_t n = i == 17 ? 5000011 : 1 + (int64_t{i} * 7919) % 20011;
    const DType dt = (i / 100) % 2 == 0 ? DType::f32 : DType::f64;
    const uint64_t seed = 100 + static_cast<uint64_t>(i);
    if (dt == DType::f32) {
      const std::vector<float> v = random_vector<float>(n, seed, -2.0, 3.0);
      bufs.emplace_back(bytes_of(v));
      bufs.back().upload(v.data());
    } else {
      const std::vector<double> v = random_vector<double>(n, seed, -2.0, 3.0);
      bufs.emplace_back(bytes_of(v));
      bufs.back().upload(v.data());
    }
    xs.push_back({dt, bufs.back().get(), n});
  }
  double want = 0.0;
  for (const auto& x : xs) want += kcuda::sum_squares(x.dtype, x.x, x.n, nullptr);
  const tgcuda::DeviceBuffer ws(kcuda::sum_squares_list_workspace_bytes(xs));
  const double got = kcuda::sum_squares_list(xs, nullptr, ws.get());
  EXPECT_EQ(std::memcmp(&got, &want, sizeof(double)), 0) << got << " != " << want;
}

TEST(CudaOptim, SumSquaresPropagatesInfAndNan) {
  TG_REQUIRE_GPU();
  std::vector<float> x = random_vector<float>(10000, 5);
  const tgcuda::DeviceBuffer d(bytes_of(x));
  x[1234] = INFINITY;
  d.upload(x.data());
  EXPECT_EQ(kcuda::sum_squares(DType::f32, d.get(), 10000, nullptr), INFINITY);
  x[4321] = NAN;
  d.upload(x.data());
  EXPECT_TRUE(std::isnan(kcuda::sum_squares(DType::f32, d.get(), 10000, nullptr)));
}

TEST(CudaOptim, MissingMasterIsAnInternalError) {
  TG_REQUIRE_GPU();
  const tgcuda::DeviceBuffer d(64);
  EXPECT_THROW(kcuda::adamw_update(DType::bf16, d.get(), nullptr, d.get(), d.get(), d.get(), 4,
                                   AdamWStep{}, nullptr),
               InternalError);
  EXPECT_THROW(kcuda::sgd_update(DType::f32, d.get(), static_cast<float*>(d.get()), d.get(),
                                 nullptr, 4, SgdStep{}, nullptr),
               InternalError);
}

}  // namespace
