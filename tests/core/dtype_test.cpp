// 16-bit float conversions against the compiler's _Float16 (IEEE binary16) and an exact bfloat16
// rounding reference; dtype names and sizes.
#include <cmath>
#include <cstring>
#include <limits>

#include "testing.h"

namespace tgtest {
namespace {

TEST(DType, Float16MatchesCompilerHalfForEveryBitPattern) {
  for (uint32_t bits = 0; bits < 65536; ++bits) {
    _Float16 h;
    const uint16_t b16 = static_cast<uint16_t>(bits);
    std::memcpy(&h, &b16, 2);
    const float ref = static_cast<float>(h);
    const float got = float16::to_float(b16);
    if (std::isnan(ref)) {
      EXPECT_TRUE(std::isnan(got)) << bits;
      continue;
    }
    ASSERT_EQ(got, ref) << "bits " << bits;
    ASSERT_EQ(float16::from_float(ref), b16) << "round trip of bits " << bits;
  }
}

TEST(DType, Float16RoundsLikeTheCompiler) {
  Generator gen(5);
  const Tensor u = rand_uniform({200000}, gen, -70000.0, 70000.0, {DType::f64});
  const auto v = u.to_vector<double>();
  for (size_t i = 0; i < v.size(); ++i) {
    // Scale into every exponent range, subnormals included.
    const float f = static_cast<float>(v[i] * std::pow(2.0, -static_cast<double>(i % 40)));
    const _Float16 h = static_cast<_Float16>(f);
    uint16_t ref;
    std::memcpy(&ref, &h, 2);
    ASSERT_EQ(float16::from_float(f), ref) << f;
  }
}

TEST(DType, BFloat16RoundsToNearestEven) {
  Generator gen(6);
  const auto v = rand_uniform({100000}, gen, -1e6, 1e6, {DType::f64}).to_vector<double>();
  for (double d : v) {
    const float f = static_cast<float>(d);
    const float got = static_cast<float>(bfloat16(f));
    // Reference: the two bf16 neighbours of f by truncation, choose the nearer (even on ties).
    uint32_t u;
    std::memcpy(&u, &f, 4);
    const uint32_t lo_bits = u & 0xffff0000u, hi_bits = lo_bits + 0x10000u;
    float lo, hi;
    std::memcpy(&lo, &lo_bits, 4);
    std::memcpy(&hi, &hi_bits, 4);
    const double dl = std::abs(static_cast<double>(f) - lo),
                 dh = std::abs(static_cast<double>(hi) - f);
    const float ref = dl < dh ? lo : (dh < dl ? hi : (((lo_bits >> 16) & 1) ? hi : lo));
    ASSERT_EQ(got, ref) << f;
  }
  EXPECT_TRUE(std::isnan(static_cast<float>(bfloat16(std::numeric_limits<float>::quiet_NaN()))));
  EXPECT_TRUE(std::isinf(static_cast<float>(bfloat16(std::numeric_limits<float>::infinity()))));
}

TEST(DType, NamesSizesAndParsing) {
  EXPECT_EQ(dtype_size(DType::bf16), 2u);
  EXPECT_EQ(dtype_name(DType::f16), "float16");
  EXPECT_EQ(parse_dtype("f64"), DType::f64);
  EXPECT_EQ(parse_dtype("bfloat16"), DType::bf16);
  EXPECT_THROW(parse_dtype("f8"), Error);
}

TEST(DType, CastsBetweenAllDtypes) {
  const Tensor x = from_vector(std::vector<double>{-3, -1, 0, 1, 2, 100}, {6}, {DType::f64});
  for (DType dt : {DType::f32, DType::bf16, DType::f16, DType::i32, DType::i64}) {
    EXPECT_EQ(x.to(dt).to(DType::f64).to_vector<double>(), x.to_vector<double>()) << dtype_name(dt);
  }
  EXPECT_EQ(x.slice(0, 2, 6).to(DType::u8).to_vector<int64_t>(),
            (std::vector<int64_t>{0, 1, 2, 100}));
}

}  // namespace
}  // namespace tgtest
