// The row loops of the attention kernels, which run once per score between two tile GEMMs. The
// float32 versions are written on eight lanes of GCC vector types: at -O2 GCC vectorises no loop
// whose trip count it cannot prove a multiple of the vector width, and a max or sum with one
// accumulator is a serial dependence chain it may not reassociate. float64 (tests, references)
// stays scalar.
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels/cpu/attention_common.h"
#include "kernels/cpu/vector_math.h"

// Each helper is compiled for AVX2 + FMA and for baseline x86-64, picked at load time.
#define TG_CLONES __attribute__((target_clones("arch=x86-64-v3", "default")))

namespace tilegrad::kernels::cpu::attention {

namespace {

typedef float v8f __attribute__((vector_size(32)));
typedef uint8_t v8u8 __attribute__((vector_size(8)));

// An unaligned load. The vector goes out by reference: passing one by value would change the ABI
// between the AVX2 and the baseline clones.
inline void load8(v8f& v, const float* p) {
  std::memcpy(&v, p, sizeof v);
}

}  // namespace

TG_CLONES float row_max(const float* x, int64_t n) {
  constexpr float kNegInf = -std::numeric_limits<float>::infinity();
  v8f m = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f v;
    load8(v, x + j);
    m = v > m ? v : m;
  }
  float r = kNegInf;
  for (int l = 0; l < 8; ++l) r = m[l] > r ? m[l] : r;
  for (; j < n; ++j) r = x[j] > r ? x[j] : r;
  return r;
}

double row_max(const double* x, int64_t n) {
  double r = -std::numeric_limits<double>::infinity();
  for (int64_t j = 0; j < n; ++j) r = x[j] > r ? x[j] : r;
  return r;
}

namespace {

TG_CLONES void subtract(float* x, int64_t n, float m) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f v;
    load8(v, x + j);
    v -= m;
    std::memcpy(x + j, &v, sizeof v);
  }
  for (; j < n; ++j) x[j] -= m;
}

TG_CLONES float sum(const float* x, int64_t n) {
  v8f s = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f v;
    load8(v, x + j);
    s += v;
  }
  float r = 0;
  for (int l = 0; l < 8; ++l) r += s[l];
  for (; j < n; ++j) r += x[j];
  return r;
}

}  // namespace

void exp_shifted(float* x, int64_t n, float m) {
  subtract(x, n, m);
  exp_f32(x, x, n);
}

float exp_shifted_sum(float* x, int64_t n, float m) {
  exp_shifted(x, n, m);
  return sum(x, n);
}

void exp_shifted(double* x, int64_t n, double m) {
  for (int64_t j = 0; j < n; ++j) x[j] = std::exp(x[j] - m);
}

double exp_shifted_sum(double* x, int64_t n, double m) {
  double s = 0;
  for (int64_t j = 0; j < n; ++j) {
    x[j] = std::exp(x[j] - m);
    s += x[j];
  }
  return s;
}

TG_CLONES void scale(float* x, int64_t n, float a) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f v;
    load8(v, x + j);
    v *= a;
    std::memcpy(x + j, &v, sizeof v);
  }
  for (; j < n; ++j) x[j] *= a;
}

void scale(double* x, int64_t n, double a) {
  for (int64_t j = 0; j < n; ++j) x[j] *= a;
}

TG_CLONES void keep_scaled(const float* x, const uint8_t* keep, float s, float* y, int64_t n) {
  const v8f zero = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f v;
    v8u8 k;
    load8(v, x + j);
    std::memcpy(&k, keep + j, sizeof k);
    const v8f kf = __builtin_convertvector(k, v8f);
    v = kf != zero ? v * s : zero;
    std::memcpy(y + j, &v, sizeof v);
  }
  for (; j < n; ++j) y[j] = keep[j] ? x[j] * s : 0.0f;
}

void keep_scaled(const double* x, const uint8_t* keep, double s, double* y, int64_t n) {
  for (int64_t j = 0; j < n; ++j) y[j] = keep[j] ? x[j] * s : 0.0;
}

TG_CLONES void ds_row(const float* p, float* dp, int64_t n, float dvec) {
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f pv, dv;
    load8(pv, p + j);
    load8(dv, dp + j);
    dv = pv * (dv - dvec);
    std::memcpy(dp + j, &dv, sizeof dv);
  }
  for (; j < n; ++j) dp[j] = p[j] * (dp[j] - dvec);
}

void ds_row(const double* p, double* dp, int64_t n, double dvec) {
  for (int64_t j = 0; j < n; ++j) dp[j] = p[j] * (dp[j] - dvec);
}

TG_CLONES float dot(const float* a, const float* b, int64_t n) {
  v8f s = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t j = 0;
  for (; j + 8 <= n; j += 8) {
    v8f x, y;
    load8(x, a + j);
    load8(y, b + j);
    s += x * y;
  }
  float r = 0;
  for (int l = 0; l < 8; ++l) r += s[l];
  for (; j < n; ++j) r += a[j] * b[j];
  return r;
}

double dot(const double* a, const double* b, int64_t n) {
  double r = 0;
  for (int64_t j = 0; j < n; ++j) r += a[j] * b[j];
  return r;
}

}  // namespace tilegrad::kernels::cpu::attention

#undef TG_CLONES
