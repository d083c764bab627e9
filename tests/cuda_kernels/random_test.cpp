// kernels/cuda/random.h against kernels/cpu/random.h on the same (seed, offset): dropout and
// uniform fills bitwise for every float dtype, sizes that do not fill whole Philox blocks and
// offsets at every alignment; normal fills within one unit in the last place of the output dtype
// (the device's log and cos are libdevice's, not glibc's; random.h says why that is the only
// difference).
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "cuda_testing.h"
#include "kernels/cpu/random.h"
#include "kernels/cuda/random.h"

namespace {

using tgcuda::as_double;
using tgcuda::for_each_float_type;
using tgcuda::ulp_at;

using namespace tilegrad;  // NOLINT: tests read better with the engine's names
namespace kcpu = tilegrad::kernels::cpu;
namespace kcuda = tilegrad::kernels::cuda;

// Sizes around the Philox block (4 draws) and the launch shape (256 threads), and offsets at
// every alignment to a block.
const int64_t kSizes[] = {1, 3, 4, 5, 255, 1027, 100003};
const uint64_t kOffsets[] = {0, 1, 2, 3, 4100, (uint64_t{1} << 33) + 6};

// The first index where a and b differ in their bytes, or -1.
template <class T>
int64_t first_bit_difference(const std::vector<T>& a, const std::vector<T>& b) {
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::memcmp(&a[i], &b[i], sizeof(T)) != 0) return static_cast<int64_t>(i);
  }
  return -1;
}

// x values in [-2, 3), never all zero, from the CPU's own uniform fill.
template <class T>
std::vector<T> random_input(int64_t n, uint64_t seed) {
  std::vector<T> x(static_cast<size_t>(n));
  kcpu::fill_uniform(dtype_of<T>(), x.data(), n, -2.0, 3.0, seed, 0);
  return x;
}

template <class T>
void check_dropout(int64_t n, uint64_t offset, double p, bool in_place) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype_of<T>()) << " n=" << n << " offset=" << offset
                                  << " p=" << p << " in_place=" << in_place);
  const DType dt = dtype_of<T>();
  const uint64_t seed = 0x1234567890abcdefull;
  const std::vector<T> x = random_input<T>(n, 7);
  std::vector<T> want(x.size());
  kcpu::dropout(dt, x.data(), want.data(), n, p, seed, offset);

  const tgcuda::DeviceBuffer d_x(x.size() * sizeof(T)), d_y(x.size() * sizeof(T));
  d_x.upload(x.data());
  void* y = in_place ? d_x.get() : d_y.get();
  kcuda::dropout(dt, d_x.get(), y, n, p, seed, offset, nullptr);
  const std::vector<T> got = tgcuda::to_host<T>(in_place ? d_x : d_y, x.size());
  const int64_t bad = first_bit_difference(got, want);
  ASSERT_EQ(bad, -1) << "element " << bad << ": got " << as_double(got[bad]) << ", CPU "
                     << as_double(want[bad]);
}

template <class T>
void check_uniform(int64_t n, uint64_t offset, double lo, double hi) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype_of<T>()) << " n=" << n << " offset=" << offset
                                  << " [" << lo << ", " << hi << ")");
  const DType dt = dtype_of<T>();
  const uint64_t seed = 99;
  std::vector<T> want(static_cast<size_t>(n));
  kcpu::fill_uniform(dt, want.data(), n, lo, hi, seed, offset);
  const tgcuda::DeviceBuffer d(want.size() * sizeof(T));
  kcuda::fill_uniform(dt, d.get(), n, lo, hi, seed, offset, nullptr);
  const std::vector<T> got = tgcuda::to_host<T>(d, want.size());
  const int64_t bad = first_bit_difference(got, want);
  ASSERT_EQ(bad, -1) << "element " << bad << ": got " << as_double(got[bad]) << ", CPU "
                     << as_double(want[bad]);
}

// Within one ulp of T (float64: a few float64 ulps of the largest |value| the Box-Muller can give,
// since log and cos may differ by an ulp or two); counts exact matches, which for 32- and 16-bit
// outputs should be all but perhaps a handful.
template <class T>
void check_normal(int64_t n, uint64_t offset, double mean, double std) {
  SCOPED_TRACE(testing::Message() << dtype_name(dtype_of<T>()) << " n=" << n << " offset=" << offset
                                  << " mean=" << mean << " std=" << std);
  const DType dt = dtype_of<T>();
  const uint64_t seed = 2024;
  std::vector<T> want(static_cast<size_t>(n));
  kcpu::fill_normal(dt, want.data(), n, mean, std, seed, offset);
  const tgcuda::DeviceBuffer d(want.size() * sizeof(T));
  kcuda::fill_normal(dt, d.get(), n, mean, std, seed, offset, nullptr);
  const std::vector<T> got = tgcuda::to_host<T>(d, want.size());
  int64_t exact = 0;
  for (int64_t i = 0; i < n; ++i) {
    const double g = as_double(got[i]), w = as_double(want[i]);
    ASSERT_TRUE(std::isfinite(g)) << "element " << i;
    const double tol =
        std::is_same_v<T, double> ? 1e-14 * (std::abs(mean) + 8.0 * std) : ulp_at<T>(std::abs(w));
    ASSERT_LE(std::abs(g - w), tol) << "element " << i << ": got " << g << ", CPU " << w;
    exact += std::memcmp(&got[i], &want[i], sizeof(T)) == 0;
  }
  if constexpr (!std::is_same_v<T, double>) {
    EXPECT_GE(exact, n - 1 - n / 10000);
  }
}

TEST(CudaRandom, DropoutIsBitwiseTheCpus) {
  TG_REQUIRE_GPU();
  for_each_float_type([]<class T>() {
    for (int64_t n : kSizes) {
      for (uint64_t offset : kOffsets) check_dropout<T>(n, offset, 0.3, false);
    }
    for (double p : {0.0, 0.1, 0.5, 0.9, 1.0}) check_dropout<T>(1027, 5, p, false);
  });
}

TEST(CudaRandom, DropoutInPlace) {
  TG_REQUIRE_GPU();
  for_each_float_type([]<class T>() { check_dropout<T>(100003, 3, 0.25, true); });
}

TEST(CudaRandom, UniformIsBitwiseTheCpus) {
  TG_REQUIRE_GPU();
  for_each_float_type([]<class T>() {
    for (int64_t n : kSizes) {
      for (uint64_t offset : kOffsets) check_uniform<T>(n, offset, -2.0, 3.0);
    }
    check_uniform<T>(4099, 1, 0.0, 1.0);
    check_uniform<T>(4099, 2, -1e-3, 1e-3);
    check_uniform<T>(4099, 3, 10.0, 10.5);
  });
}

TEST(CudaRandom, NormalMatchesTheCpuToTheLastPlace) {
  TG_REQUIRE_GPU();
  for_each_float_type([]<class T>() {
    for (int64_t n : kSizes) {
      for (uint64_t offset : kOffsets) check_normal<T>(n, offset, 0.0, 1.0);
    }
    check_normal<T>(100003, 1, 0.5, 0.02);
    check_normal<T>(100003, 2, -3.0, 2.0);
  });
}

TEST(CudaRandom, EmptyCallsWriteNothing) {
  TG_REQUIRE_GPU();
  const tgcuda::DeviceBuffer d(16);  // poisoned with 0xFF
  kcuda::dropout(DType::f32, d.get(), d.get(), 0, 0.5, 1, 0, nullptr);
  kcuda::fill_uniform(DType::f32, d.get(), 0, 0.0, 1.0, 1, 0, nullptr);
  kcuda::fill_normal(DType::f32, d.get(), 0, 0.0, 1.0, 1, 0, nullptr);
  const std::vector<uint32_t> got = tgcuda::to_host<uint32_t>(d, 4);
  for (uint32_t w : got) EXPECT_EQ(w, 0xFFFFFFFFu);
}

TEST(CudaRandom, RejectsIntegerDtypes) {
  TG_REQUIRE_GPU();
  const tgcuda::DeviceBuffer d(64);
  EXPECT_THROW(kcuda::fill_uniform(DType::i32, d.get(), 4, 0.0, 1.0, 1, 0, nullptr), Error);
  EXPECT_THROW(kcuda::fill_normal(DType::i64, d.get(), 4, 0.0, 1.0, 1, 0, nullptr), Error);
  EXPECT_THROW(kcuda::dropout(DType::u8, d.get(), d.get(), 4, 0.5, 1, 0, nullptr), Error);
}

}  // namespace
