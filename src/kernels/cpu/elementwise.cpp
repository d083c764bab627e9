// CPU elementwise kernels. Each op is a scalar functor applied over for_each_row; arithmetic is
// done in acc_t<T> (float for 16-bit types), and the stride-1 path of every row is a plain loop the
// compiler vectorises.
#include "kernels/cpu/elementwise.h"

#include <cmath>

#include "core/error.h"
#include "kernels/cpu/strided_loop.h"
#include "kernels/cpu/vector_math.h"

namespace tilegrad::kernels::cpu {

namespace {

// out[i] = f(x[i]) over two views (out first).
template <class TO, class TI, class F>
void map1(const StridedView& x, const StridedView& out, F f) {
  TO* po = static_cast<TO*>(out.data);
  const TI* px = static_cast<const TI*>(x.data);
  for_each_row<2>({&out, &x}, [&](const std::array<int64_t, 2>& off, int64_t n,
                                  const std::array<int64_t, 2>& st) {
    TO* o = po + off[0];
    const TI* a = px + off[1];
    if (st[0] == 1 && st[1] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = TO(f(a[i]));
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = TO(f(a[i * st[1]]));
    }
  });
}

// out[i] = f(a[i], b[i]) over three views (out first).
template <class T, class F>
void map2(const StridedView& a, const StridedView& b, const StridedView& out, F f) {
  T* po = static_cast<T*>(out.data);
  const T* pa = static_cast<const T*>(a.data);
  const T* pb = static_cast<const T*>(b.data);
  for_each_row<3>({&out, &a, &b}, [&](const std::array<int64_t, 3>& off, int64_t n,
                                      const std::array<int64_t, 3>& st) {
    T* o = po + off[0];
    const T* x = pa + off[1];
    const T* y = pb + off[2];
    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
      for (int64_t i = 0; i < n; ++i) o[i] = T(f(x[i], y[i]));
    } else {
      for (int64_t i = 0; i < n; ++i) o[i * st[0]] = T(f(x[i * st[1]], y[i * st[2]]));
    }
  });
}

void check_same_shape(const StridedView& a, const StridedView& b, const char* op) {
  TG_ASSERT(a.ndim == b.ndim, op, ": rank mismatch");
  for (int i = 0; i < a.ndim; ++i) TG_ASSERT(a.shape[i] == b.shape[i], op, ": shape mismatch");
}

}  // namespace

void copy(const StridedView& src, const StridedView& dst) {
  check_same_shape(src, dst, "copy");
  dispatch_all(dst.dtype, "copy", [&]<class TO>() {
    dispatch_all(src.dtype, "copy", [&]<class TI>() {
      if constexpr (std::is_same_v<TO, TI>) {
        map1<TO, TI>(src, dst, [](TI v) { return v; });
      } else {
        // Through the wider of the two: double keeps int64 and float64 exact.
        map1<TO, TI>(src, dst, [](TI v) {
          if constexpr (std::is_same_v<TI, bfloat16> || std::is_same_v<TI, float16>) {
            return static_cast<float>(v);
          } else {
            return static_cast<double>(v);
          }
        });
      }
    });
  });
}

void fill(const StridedView& dst, double value) {
  dispatch_all(dst.dtype, "fill", [&]<class T>() {
    const T v = T(static_cast<acc_t<T>>(value));
    map1<T, T>(dst, dst, [v](T) { return v; });
  });
}

void unary(UnaryOp op, const StridedView& x, const StridedView& y) {
  check_same_shape(x, y, "unary");
  if ((op == UnaryOp::exp || op == UnaryOp::gelu) && x.dtype == DType::f32 && x.is_contiguous() &&
      y.is_contiguous()) {
    // The vectorised float32 math, in chunks so that both cores share the work.
    const float* px = static_cast<const float*>(x.data);
    float* py = static_cast<float*>(y.data);
    const int64_t n = x.numel(), chunk = 1 << 14;
    parallel_for((n + chunk - 1) / chunk, n >= kParallelGrain, [&](int64_t c) {
      const int64_t m = std::min(chunk, n - c * chunk);
      if (op == UnaryOp::exp) {
        exp_f32(px + c * chunk, py + c * chunk, m);
      } else {
        gelu_f32(px + c * chunk, py + c * chunk, m);
      }
    });
    return;
  }
  dispatch_floating(x.dtype, unary_op_name(op), [&]<class T>() {
    using A = acc_t<T>;
    switch (op) {
      case UnaryOp::neg:
        return map1<T, T>(x, y, [](T v) { return -A(v); });
      case UnaryOp::exp:
        return map1<T, T>(x, y, [](T v) { return std::exp(A(v)); });
      case UnaryOp::log:
        return map1<T, T>(x, y, [](T v) { return std::log(A(v)); });
      case UnaryOp::tanh:
        return map1<T, T>(x, y, [](T v) { return std::tanh(A(v)); });
      case UnaryOp::relu:
        return map1<T, T>(x, y, [](T v) { return A(v) > A(0) ? A(v) : A(0); });
      case UnaryOp::gelu:
        return map1<T, T>(x, y, [](T v) { return gelu_tanh(A(v)); });
      case UnaryOp::sigmoid:
        return map1<T, T>(x, y, [](T v) { return A(1) / (A(1) + std::exp(-A(v))); });
      case UnaryOp::sqrt:
        return map1<T, T>(x, y, [](T v) { return std::sqrt(A(v)); });
    }
  });
}

void unary_backward(UnaryOp op, const StridedView& gy, const StridedView& saved,
                    const StridedView& gx) {
  check_same_shape(gy, gx, "unary_backward");
  if (op == UnaryOp::gelu && gy.dtype == DType::f32 && gy.is_contiguous() &&
      saved.is_contiguous() && gx.is_contiguous()) {
    const float* pg = static_cast<const float*>(gy.data);
    const float* px = static_cast<const float*>(saved.data);
    float* pd = static_cast<float*>(gx.data);
    const int64_t n = gy.numel(), chunk = 1 << 14;
    parallel_for((n + chunk - 1) / chunk, n >= kParallelGrain, [&](int64_t c) {
      gelu_backward_f32(pg + c * chunk, px + c * chunk, pd + c * chunk,
                        std::min(chunk, n - c * chunk));
    });
    return;
  }
  dispatch_floating(gy.dtype, unary_op_name(op), [&]<class T>() {
    using A = acc_t<T>;
    // f(g, s): the gradient given upstream g and the saved operand s (x or y).
    switch (op) {
      case UnaryOp::neg:
        return map2<T>(gy, saved, gx, [](T g, T) { return -A(g); });
      case UnaryOp::exp:
        return map2<T>(gy, saved, gx, [](T g, T y) { return A(g) * A(y); });
      case UnaryOp::log:
        return map2<T>(gy, saved, gx, [](T g, T x) { return A(g) / A(x); });
      case UnaryOp::tanh:
        return map2<T>(gy, saved, gx, [](T g, T y) { return A(g) * (A(1) - A(y) * A(y)); });
      case UnaryOp::relu:
        return map2<T>(gy, saved, gx, [](T g, T x) { return A(x) > A(0) ? A(g) : A(0); });
      case UnaryOp::gelu:
        return map2<T>(gy, saved, gx, [](T g, T x) { return A(g) * gelu_tanh_grad(A(x)); });
      case UnaryOp::sigmoid:
        return map2<T>(gy, saved, gx, [](T g, T y) { return A(g) * A(y) * (A(1) - A(y)); });
      case UnaryOp::sqrt:
        return map2<T>(gy, saved, gx, [](T g, T y) { return A(g) * A(0.5) / A(y); });
    }
  });
}

void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out) {
  check_same_shape(a, out, "binary");
  check_same_shape(b, out, "binary");
  dispatch_floating(out.dtype, binary_op_name(op), [&]<class T>() {
    using A = acc_t<T>;
    switch (op) {
      case BinaryOp::add:
        return map2<T>(a, b, out, [](T x, T y) { return A(x) + A(y); });
      case BinaryOp::sub:
        return map2<T>(a, b, out, [](T x, T y) { return A(x) - A(y); });
      case BinaryOp::mul:
        return map2<T>(a, b, out, [](T x, T y) { return A(x) * A(y); });
      case BinaryOp::div:
        return map2<T>(a, b, out, [](T x, T y) { return A(x) / A(y); });
      case BinaryOp::eq:
        return map2<T>(a, b, out, [](T x, T y) { return A(x) == A(y) ? A(1) : A(0); });
    }
  });
}

void scalar(ScalarOp op, const StridedView& a, double s, const StridedView& out) {
  check_same_shape(a, out, "scalar");
  dispatch_floating(out.dtype, scalar_op_name(op), [&]<class T>() {
    using A = acc_t<T>;
    const A c = static_cast<A>(s);
    switch (op) {
      case ScalarOp::add:
        return map1<T, T>(a, out, [c](T x) { return A(x) + c; });
      case ScalarOp::mul:
        return map1<T, T>(a, out, [c](T x) { return A(x) * c; });
      case ScalarOp::rsub:
        return map1<T, T>(a, out, [c](T x) { return c - A(x); });
      case ScalarOp::rdiv:
        return map1<T, T>(a, out, [c](T x) { return c / A(x); });
      case ScalarOp::pow:
        if (s == 2.0) return map1<T, T>(a, out, [](T x) { return A(x) * A(x); });
        return map1<T, T>(a, out, [c](T x) { return std::pow(A(x), c); });
    }
  });
}

void add_scaled(const StridedView& src, double alpha, const StridedView& dst) {
  check_same_shape(src, dst, "add_scaled");
  dispatch_floating(dst.dtype, "add_", [&]<class T>() {
    using A = acc_t<T>;
    const A c = static_cast<A>(alpha);
    if (alpha == 1.0) return map2<T>(dst, src, dst, [](T d, T s) { return A(d) + A(s); });
    map2<T>(dst, src, dst, [c](T d, T s) { return A(d) + c * A(s); });
  });
}

}  // namespace tilegrad::kernels::cpu
