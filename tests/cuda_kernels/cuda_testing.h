// Helpers for the GPU kernel tests (tests/cuda_kernels): each test runs a kernels/cuda/ entry on
// device buffers and compares it with the kernels/cpu/ entry of the same name on the same inputs.
// Without a GPU every test is skipped (the suite passes on CI, which has none).
#pragma once

#include <cuda_runtime.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <random>
#include <string>
#include <type_traits>
#include <vector>

#include "core/dtype.h"
#include "core/error.h"
#include "cuda/check.h"
#include "kernels/cpu/random.h"

namespace tgcuda {

// True when a CUDA device is present (cached after the first call).
bool have_gpu();

// Skips the calling test when there is no GPU.
#define TG_REQUIRE_GPU()                                         \
  do {                                                           \
    if (!::tgcuda::have_gpu()) GTEST_SKIP() << "no CUDA device"; \
  } while (0)

// A device buffer of `bytes` bytes, freed on destruction; filled with 0xFF bytes ("poisoned") so
// that an element a kernel forgets to write shows up as NaN or a huge integer.
class DeviceBuffer {
 public:
  explicit DeviceBuffer(size_t bytes);
  ~DeviceBuffer();
  DeviceBuffer(const DeviceBuffer&) = delete;
  DeviceBuffer& operator=(const DeviceBuffer&) = delete;
  DeviceBuffer(DeviceBuffer&& other) noexcept : ptr_(other.ptr_), bytes_(other.bytes_) {
    other.ptr_ = nullptr;
    other.bytes_ = 0;
  }

  void* get() const { return ptr_; }
  size_t bytes() const { return bytes_; }
  void upload(const void* host) const;  // bytes() bytes from host
  void download(void* host) const;      // bytes() bytes to host (synchronises)

 private:
  void* ptr_ = nullptr;
  size_t bytes_ = 0;
};

// A device copy of a host vector.
template <class T>
DeviceBuffer to_device(const std::vector<T>& v) {
  DeviceBuffer b(v.size() * sizeof(T));
  b.upload(v.data());
  return b;
}

// n values of type T, uniform in [lo, hi), from the CPU's Philox stream `seed`.
template <class T>
std::vector<T> random_vector(int64_t n, uint64_t seed, double lo = -1.0, double hi = 1.0) {
  std::vector<T> x(static_cast<size_t>(n));
  tilegrad::kernels::cpu::fill_uniform(tilegrad::dtype_of<T>(), x.data(), n, lo, hi, seed, 0);
  return x;
}

// The bytes of v's elements (a DeviceBuffer of 0 bytes still allocates one).
template <class T>
size_t bytes_of(const std::vector<T>& v) {
  return v.size() * sizeof(T);
}

// f.template operator()<T>() for each floating storage type.
template <class F>
void for_each_float_type(F&& f) {
  f.template operator()<double>();
  f.template operator()<float>();
  f.template operator()<tilegrad::bfloat16>();
  f.template operator()<tilegrad::float16>();
}

// A host copy of n elements of a device buffer.
template <class T>
std::vector<T> to_host(const DeviceBuffer& b, size_t n) {
  std::vector<T> v(n);
  TG_CUDA_CHECK(cudaDeviceSynchronize());
  TG_CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
  return v;
}

using tilegrad::DType;

// --- Inputs as raw bytes of any float dtype, and comparisons (the kernels' tests share them) ---

using Bytes = std::vector<uint8_t>;

inline const DType kFloatDTypes[] = {DType::f64, DType::f32, DType::bf16, DType::f16};

// Half the machine epsilon: 2^-53, 2^-24, 2^-8, 2^-11.
inline double unit_roundoff(DType dt) {
  switch (dt) {
    case DType::f64:
      return std::ldexp(1.0, -53);
    case DType::f32:
      return std::ldexp(1.0, -24);
    case DType::bf16:
      return std::ldexp(1.0, -8);
    default:
      return std::ldexp(1.0, -11);
  }
}
inline DType acc_dtype(DType dt) {
  return dt == DType::f64 ? DType::f64 : DType::f32;
}

// Doubles rounded to dtype dt, as the raw bytes the kernels read.
inline Bytes encode(DType dt, const std::vector<double>& v) {
  Bytes out(v.size() * tilegrad::dtype_size(dt));
  tilegrad::dispatch_floating(dt, "encode", [&]<class T>() {
    for (size_t i = 0; i < v.size(); ++i) {
      const T t = T(static_cast<tilegrad::acc_t<T>>(v[i]));
      std::memcpy(out.data() + i * sizeof(T), &t, sizeof(T));
    }
  });
  return out;
}
inline std::vector<double> decode(DType dt, const Bytes& b) {
  std::vector<double> out(b.size() / tilegrad::dtype_size(dt));
  tilegrad::dispatch_floating(dt, "decode", [&]<class T>() {
    for (size_t i = 0; i < out.size(); ++i) {
      T t;
      std::memcpy(&t, b.data() + i * sizeof(T), sizeof(T));
      out[i] = static_cast<double>(static_cast<tilegrad::acc_t<T>>(t));
    }
  });
  return out;
}

inline std::vector<double> uniform(std::mt19937_64& rng, size_t n, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> v(n);
  for (double& x : v) x = dist(rng);
  return v;
}

inline Bytes download(const DeviceBuffer& b) {
  return to_host<uint8_t>(b, b.bytes());
}

// Every |got[i] - want[i]| <= tol[i] (a NaN fails); reports the first few misses.
inline void expect_close(const std::vector<double>& got, const std::vector<double>& want,
                         const std::vector<double>& tol, const std::string& what) {
  ASSERT_EQ(got.size(), want.size()) << what;
  int64_t bad = 0;
  for (size_t i = 0; i < got.size(); ++i) {
    if (!(std::abs(got[i] - want[i]) <= tol[i])) {
      if (bad < 5) {
        ADD_FAILURE() << what << "[" << i << "]: gpu " << got[i] << ", cpu " << want[i]
                      << ", tolerance " << tol[i];
      }
      ++bad;
    }
  }
  EXPECT_EQ(bad, 0) << what << ": elements out of tolerance";
}

template <class F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const tilegrad::Error& e) {
    return e.what();
  }
  return "";
}

// --- Layouts of the operands the elementwise and reduction tests build ---

enum class Layout {
  contiguous,  // row-major
  transposed,  // column-major: the dimensions reversed in memory
  padded,      // inner stride 2 and one spare element after every row: gaps between elements
  broadcast,   // stride 0 on a random non-empty set of the dimensions longer than 1
  misaligned,  // row-major from element 1 of the buffer (defeats vector loads)
};

inline const char* layout_name(Layout l) {
  switch (l) {
    case Layout::contiguous:
      return "contiguous";
    case Layout::transposed:
      return "transposed";
    case Layout::padded:
      return "padded";
    case Layout::broadcast:
      return "broadcast";
    case Layout::misaligned:
      return "misaligned";
  }
  return "?";
}

// --- Values of a float type ---

template <class T>
double as_double(T x) {
  return static_cast<double>(static_cast<tilegrad::acc_t<T>>(x));
}

// The spacing of T's values at |x|.
template <class T>
double ulp_at(double x) {
  int mantissa = 52, min_exp = -1022;
  if constexpr (std::is_same_v<T, float>) {
    mantissa = 23;
    min_exp = -126;
  } else if constexpr (std::is_same_v<T, tilegrad::bfloat16>) {
    mantissa = 7;
    min_exp = -126;
  } else if constexpr (std::is_same_v<T, tilegrad::float16>) {
    mantissa = 10;
    min_exp = -14;
  }
  const int e = x == 0.0 ? min_exp : std::max(std::ilogb(std::abs(x)), min_exp);
  return std::ldexp(1.0, e - mantissa);
}

}  // namespace tgcuda
