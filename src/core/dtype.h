// Element types: the dtype enum, the 16-bit float storage types, and dtype dispatch.
//
// bfloat16 and float16 are storage formats: arithmetic converts to float (implicitly), so generic
// kernels written for a scalar type T work for them with float accumulation (see acc_t).
#pragma once

#include <cstdint>
#include <cstring>
#include <string_view>
#include <type_traits>

#include "core/error.h"

#if defined(__CUDACC__)
#define TG_HOST_DEVICE __host__ __device__
#else
#define TG_HOST_DEVICE
#endif

namespace tilegrad {

enum class DType : uint8_t { f64, f32, bf16, f16, i32, i64, u8 };

constexpr int kNumDTypes = 7;

size_t dtype_size(DType dt);
std::string_view dtype_name(DType dt);
// Parses "f64", "float64", "f32", "float32", "bf16", "bfloat16", "f16", "float16", "i32", "int32",
// "i64", "int64", "u8", "uint8"; throws Error otherwise.
DType parse_dtype(std::string_view name);
inline bool is_floating(DType dt) {
  return dt == DType::f64 || dt == DType::f32 || dt == DType::bf16 || dt == DType::f16;
}
inline bool is_integral(DType dt) {
  return !is_floating(dt);
}

namespace detail {
TG_HOST_DEVICE inline uint32_t f32_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
TG_HOST_DEVICE inline float f32_from_bits(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
}  // namespace detail

// Brain float: the top 16 bits of an IEEE float32, rounded to nearest even.
struct bfloat16 {
  uint16_t bits = 0;
  bfloat16() = default;
  TG_HOST_DEVICE bfloat16(float f) {  // NOLINT: implicit by design (storage type)
    uint32_t u = detail::f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
      bits = static_cast<uint16_t>((u >> 16) | 0x40u);  // quiet NaN, keep sign
    } else {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
      // The GPU's conversion instruction rounds to nearest even too (subnormals kept), in one
      // instruction instead of the integer sequence below, which made conversion-heavy kernels
      // (layer norm, cross-entropy) bound by arithmetic. Only NaN, above, keeps its own rule.
      asm("cvt.rn.bf16.f32 %0, %1;" : "=h"(bits) : "f"(f));
#else
      u += 0x7fffu + ((u >> 16) & 1u);  // round to nearest, ties to even
      bits = static_cast<uint16_t>(u >> 16);
#endif
    }
  }
  TG_HOST_DEVICE operator float() const {
    return detail::f32_from_bits(uint32_t{bits} << 16);
  }
  static bfloat16 from_bits(uint16_t b) {
    bfloat16 x;
    x.bits = b;
    return x;
  }
};

// IEEE 754 binary16, with subnormals, rounded to nearest even.
struct float16 {
  uint16_t bits = 0;
  float16() = default;
  TG_HOST_DEVICE float16(float f) { bits = from_float(f); }  // NOLINT: implicit by design
  TG_HOST_DEVICE operator float() const { return to_float(bits); }
  static float16 from_bits(uint16_t b) {
    float16 x;
    x.bits = b;
    return x;
  }

  TG_HOST_DEVICE static uint16_t from_float(float f) {
    const uint32_t u = detail::f32_bits(f);
    const uint16_t sign = static_cast<uint16_t>((u >> 16) & 0x8000u);
    const uint32_t a = u & 0x7fffffffu;
    if (a >= 0x7f800000u) {  // inf or NaN
      return static_cast<uint16_t>(sign | 0x7c00u | (a > 0x7f800000u ? 0x200u : 0u));
    }
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 530
    // The GPU's instruction: round to nearest even with subnormals and overflow to inf, as below.
    uint16_t h;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(h) : "f"(f));
    return h;
#else
    if (a >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);  // rounds to >= 65520: inf
    if (a < 0x38800000u) {  // below the smallest normal half (2^-14): subnormal or zero
      // Add 0.5 (in float arithmetic) so the hardware rounding puts the half mantissa in the low
      // bits: values are scaled so that one half ulp (2^-24) becomes one unit.
      const float scaled = detail::f32_from_bits(a) + 0.5f;
      return static_cast<uint16_t>(sign |
                                   static_cast<uint16_t>(detail::f32_bits(scaled) - 0x3f000000u));
    }
    // Normal: rebias exponent (127 -> 15) and round the 13 dropped mantissa bits to nearest even.
    uint32_t m = a + 0xc8000fffu + ((a >> 13) & 1u);  // 0xc8000000 = -(112 << 23)
    return static_cast<uint16_t>(sign | static_cast<uint16_t>(m >> 13));
#endif
  }
  TG_HOST_DEVICE static float to_float(uint16_t h) {
    const uint32_t sign = uint32_t{h & 0x8000u} << 16;
    const uint32_t exp = (h >> 10) & 0x1fu;
    const uint32_t man = h & 0x3ffu;
    if (exp == 0x1f) return detail::f32_from_bits(sign | 0x7f800000u | (man << 13));
    if (exp == 0) {  // zero or subnormal: man * 2^-24
      const float v = static_cast<float>(man) * 5.9604644775390625e-08f;
      return sign ? -v : v;
    }
    return detail::f32_from_bits(sign | ((exp + 112u) << 23) | (man << 13));
  }
};

// The type arithmetic on T is carried out in: double for double, float for every other float type.
template <class T>
using acc_t = std::conditional_t<std::is_same_v<T, double>, double, float>;

template <class T>
constexpr DType dtype_of();
template <>
constexpr DType dtype_of<double>() {
  return DType::f64;
}
template <>
constexpr DType dtype_of<float>() {
  return DType::f32;
}
template <>
constexpr DType dtype_of<bfloat16>() {
  return DType::bf16;
}
template <>
constexpr DType dtype_of<float16>() {
  return DType::f16;
}
template <>
constexpr DType dtype_of<int32_t>() {
  return DType::i32;
}
template <>
constexpr DType dtype_of<int64_t>() {
  return DType::i64;
}
template <>
constexpr DType dtype_of<uint8_t>() {
  return DType::u8;
}

// dispatch_floating(dt, "op", [&]<class T>() { ... }) calls the lambda with T = the C++ type of dt,
// for the four float dtypes; any other dtype is a user error naming the op.
template <class F>
decltype(auto) dispatch_floating(DType dt, std::string_view op, F&& f) {
  switch (dt) {
    case DType::f64:
      return f.template operator()<double>();
    case DType::f32:
      return f.template operator()<float>();
    case DType::bf16:
      return f.template operator()<bfloat16>();
    case DType::f16:
      return f.template operator()<float16>();
    default:
      break;
  }
  throw Error(
      detail::cat(op, ": dtype ", dtype_name(dt), " is not supported (needs a float dtype)"));
}

// dispatch_index(dt, "op", f): T = int32_t or int64_t.
template <class F>
decltype(auto) dispatch_index(DType dt, std::string_view op, F&& f) {
  switch (dt) {
    case DType::i32:
      return f.template operator()<int32_t>();
    case DType::i64:
      return f.template operator()<int64_t>();
    default:
      break;
  }
  throw Error(detail::cat(op, ": indices must be int32 or int64, got ", dtype_name(dt)));
}

// dispatch_all(dt, "op", f): every dtype.
template <class F>
decltype(auto) dispatch_all(DType dt, std::string_view op, F&& f) {
  switch (dt) {
    case DType::i32:
      return f.template operator()<int32_t>();
    case DType::i64:
      return f.template operator()<int64_t>();
    case DType::u8:
      return f.template operator()<uint8_t>();
    default:
      return dispatch_floating(dt, op, std::forward<F>(f));
  }
}

}  // namespace tilegrad
