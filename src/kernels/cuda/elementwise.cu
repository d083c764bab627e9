// CUDA elementwise kernels. Each op is a scalar functor, as on the CPU
// (kernels/cpu/elementwise.cpp), applied by one of two kernels:
//   - contiguous_kernel: every operand dense and in the same order (after coalescing), so element i
//     is at offset i of each; each thread moves 16-byte vectors when all base pointers allow it;
//   - strided_kernel: anything else (transposed or padded views, stride-0 broadcasts, a
//     non-contiguous output); element i's offsets come from its row-major coordinates in the
//     coalesced shape, with 32-bit index arithmetic when the element count allows it.
// Both are grid-stride loops over one wave of blocks.
//
// Results match the CPU kernels: arithmetic is done in acc_t<T> (double for f64, float otherwise)
// and rounded to T once, as the CPU does. Adds, multiplies, divides and square roots go through the
// _rn intrinsics, which nvcc never contracts into FMAs, so every op without a transcendental
// function gives the CPU's bits exactly; exp, log, tanh, pow (and the ops built on them: sigmoid,
// GELU) use CUDA's accurate libm (expf, not __expf), within a few ulp of the CPU's — except GELU
// with 16-bit outputs, which uses the hardware's (see Gelu).
#include "kernels/cuda/elementwise.h"

#include <algorithm>
#include <array>
#include <cstdint>
#include <type_traits>
#include <utility>

#include "core/error.h"
#include "cuda/check.h"
#include "kernels/coalesce.h"
#include "kernels/cuda/kernel_common.cuh"

namespace tilegrad::kernels::cuda {

namespace {

constexpr int kThreads = 256;

// ---- launch geometry and layouts (host)

// The iteration space of N operands (operand 0 the output) that share the output's shape, each with
// its own strides, coalesced as on the CPU (kernels/coalesce.h). Passed to kernels by value.
template <int N>
using Layout = LoopShape<N>;

void check_same_shape(const StridedView& a, const StridedView& b, const char* op) {
  TG_ASSERT(a.ndim == b.ndim, op, ": rank mismatch");
  for (int i = 0; i < a.ndim; ++i) TG_ASSERT(a.shape[i] == b.shape[i], op, ": shape mismatch");
}

// ---- kernels

// Elements per vector: as many as fit in 16 bytes for the widest operand type.
template <class TO, class... TI>
constexpr int vec_width() {
  return static_cast<int>(16 / std::max({sizeof(TO), sizeof(TI)...}));
}

template <int kVec, class TO, class F, class... TI>
__device__ __forceinline__ void apply_vec(Vec<kVec, TO>* out, const F& f,
                                          const Vec<kVec, TI>&... x) {
  Vec<kVec, TO> r;
#pragma unroll
  for (int j = 0; j < kVec; ++j) r.v[j] = TO(f(x.v[j]...));
  *out = r;
}

// One vector of each input, held together: loaded first, applied later.
template <int kVec, class... TI>
struct VecPack {};
template <int kVec, class T0, class... TR>
struct VecPack<kVec, T0, TR...> {
  Vec<kVec, T0> head;
  VecPack<kVec, TR...> tail;
};

template <int kVec>
__device__ __forceinline__ void load_pack(VecPack<kVec>&, int64_t) {}
template <int kVec, class T0, class... TR>
__device__ __forceinline__ void load_pack(VecPack<kVec, T0, TR...>& p, int64_t j, const T0* in0,
                                          const TR*... rest) {
  p.head = reinterpret_cast<const Vec<kVec, T0>*>(in0)[j];
  load_pack<kVec>(p.tail, j, rest...);
}

// apply_vec on the pack's vectors: the heads are peeled off into arguments one by one.
template <int kVec, class TO, class F, class... Got>
__device__ __forceinline__ void apply_pack(Vec<kVec, TO>* out, const F& f, const VecPack<kVec>&,
                                           const Got&... got) {
  apply_vec<kVec>(out, f, got...);
}
template <int kVec, class TO, class F, class T0, class... TR, class... Got>
__device__ __forceinline__ void apply_pack(Vec<kVec, TO>* out, const F& f,
                                           const VecPack<kVec, T0, TR...>& p, const Got&... got) {
  apply_pack<kVec>(out, f, p.tail, got..., p.head);
}

// Vectors per thread per loop trip: their loads are all issued before the first is used, so that
// each thread keeps several 16-byte loads in flight. With one, a wave of 2,048 threads per SM
// held too few bytes in flight to cover HBM's latency: GELU over [16384, 3072] bf16 ran at about
// 2.3 TB/s on an H200 with the hardware exp as with the accurate one.
constexpr int kUnroll = 4;

// out[i] = f(in[i]...) for i < n, all operands dense; n / kVec whole vectors, then the tail.
// Every pointer is aligned to its Vec (the host checks). All of a trip's inputs are read before
// any output is written, so an output that is one of the inputs (in place) is safe.
template <int kVec, class TO, class F, class... TI>
__global__ void __launch_bounds__(kThreads)
    contiguous_kernel(F f, int64_t n, TO* out, const TI*... in) {
  const int64_t step = int64_t{gridDim.x} * kThreads;
  const int64_t tid = int64_t{blockIdx.x} * kThreads + threadIdx.x;
  const int64_t n_vec = n / kVec;
  auto* out_vec = reinterpret_cast<Vec<kVec, TO>*>(out);
  int64_t i = tid;
  for (; i + (kUnroll - 1) * step < n_vec; i += kUnroll * step) {
    VecPack<kVec, TI...> x[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) load_pack<kVec>(x[u], i + u * step, in...);
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) apply_pack<kVec>(out_vec + i + u * step, f, x[u]);
  }
  for (; i < n_vec; i += step) {
    apply_vec<kVec>(out_vec + i, f, reinterpret_cast<const Vec<kVec, TI>*>(in)[i]...);
  }
  for (int64_t j = n_vec * kVec + tid; j < n; j += step) out[j] = TO(f(in[j]...));
}

// off[k] = operand k's element offset of element i (row-major in L's shape). Index is uint32_t when
// every element index fits, since 64-bit division costs several times more. The loop runs over
// kMaxDims so that it unrolls and reads L's arrays at fixed positions (no local-memory copy); the
// outermost dimension needs no division.
template <class Index, int N>
__device__ __forceinline__ void offsets_of(int64_t i, const Layout<N>& L, int64_t (&off)[N]) {
  Index rem = static_cast<Index>(i);
#pragma unroll
  for (int k = 0; k < N; ++k) off[k] = 0;
#pragma unroll
  for (int d = kMaxDims - 1; d > 0; --d) {
    if (d < L.ndim) {
      const Index size = static_cast<Index>(L.shape[d]);
      const Index q = rem / size;
      const int64_t c = static_cast<int64_t>(rem - q * size);
#pragma unroll
      for (int k = 0; k < N; ++k) off[k] += c * L.strides[k][d];
      rem = q;
    }
  }
  if (L.ndim > 0) {
#pragma unroll
    for (int k = 0; k < N; ++k) off[k] += static_cast<int64_t>(rem) * L.strides[k][0];
  }
}

template <class TO, class F, size_t... K, class... TI>
__device__ __forceinline__ void apply_at(TO* out, const int64_t* off, const F& f,
                                         std::index_sequence<K...>, const TI*... in) {
  out[off[0]] = TO(f(in[off[K + 1]]...));
}

// out[i] = f(in[i]...) for each element i of L's shape, at each operand's own strides.
template <class Index, class TO, class F, class... TI>
__global__ void __launch_bounds__(kThreads)
    strided_kernel(F f, int64_t n, Layout<1 + sizeof...(TI)> L, TO* out, const TI*... in) {
  constexpr int N = 1 + sizeof...(TI);
  const int64_t step = int64_t{gridDim.x} * kThreads;
  for (int64_t i = int64_t{blockIdx.x} * kThreads + threadIdx.x; i < n; i += step) {
    int64_t off[N];
    offsets_of<Index>(i, L, off);
    apply_at(out, off, f, std::make_index_sequence<N - 1>{}, in...);
  }
}

template <class T>
bool aligned_to(const void* p, int kVec) {
  return reinterpret_cast<uintptr_t>(p) % (sizeof(T) * kVec) == 0;
}

// out[i] = TO(f(in[i]...)) over out's shape; the inputs (element types TI) have out's shape, with
// any strides. Launches nothing for an empty output.
template <class TO, class... TI, class F, class... V>
void launch_map(const F& f, cudaStream_t stream, const StridedView& out, const V&... in) {
  static_assert(sizeof...(TI) == sizeof...(V), "one element type per input view");
  constexpr int N = 1 + sizeof...(TI);
  const int64_t n = out.numel();
  if (n == 0) return;
  const Layout<N> L = coalesce<N>({&out, &in...});
  TO* po = static_cast<TO*>(out.data);
  bool dense = true;  // all operands step through the same single dimension with stride 1
  if (L.ndim == 1) {
    for (int k = 0; k < N; ++k) dense = dense && L.strides[k][0] == 1;
  } else {
    dense = L.ndim == 0;  // a single element
  }
  constexpr int kVec = vec_width<TO, TI...>();
  if (dense && aligned_to<TO>(out.data, kVec) && (aligned_to<TI>(in.data, kVec) && ...)) {
    // kUnroll vectors per thread where there are enough (but a block per SM first), up to one
    // wave of blocks.
    const int64_t n_vec = ceil_div(n, kVec);
    const int64_t blocks = std::max(ceil_div(n_vec, int64_t{kThreads} * kUnroll),
                                    std::min(ceil_div(n_vec, kThreads), sm_count()));
    contiguous_kernel<kVec, TO, F, TI...>
        <<<grid_blocks(blocks, one_wave_blocks()), kThreads, 0, stream>>>(
            f, n, po, static_cast<const TI*>(in.data)...);
  } else if (n <= int64_t{UINT32_MAX}) {
    strided_kernel<uint32_t, TO, F, TI...>
        <<<grid_blocks(ceil_div(n, kThreads), one_wave_blocks()), kThreads, 0, stream>>>(
            f, n, L, po, static_cast<const TI*>(in.data)...);
  } else {
    strided_kernel<int64_t, TO, F, TI...>
        <<<grid_blocks(ceil_div(n, kThreads), one_wave_blocks()), kThreads, 0, stream>>>(
            f, n, L, po, static_cast<const TI*>(in.data)...);
  }
  TG_CUDA_CHECK_LAUNCH();
}

// GELU, tanh approximation (GPT-2's): 0.5 x (1 + tanh u), u = sqrt(2/pi) (x + 0.044715 x³),
// computed as the CPU's vectorised float32 path does (kernels/cpu/vector_math.h): x · s with
// s = 1 / (1 + exp(-2u)) = (1 + tanh u) / 2, which avoids the cancellation of 1 + tanh u for x << 0
// and saturates to 0 or 1 without a branch.
template <class A>
__device__ __forceinline__ A gelu_s(A x) {
  const A u = A(0.7978845608028654) * (x + A(0.044715) * x * x * x);
  return A(1) / (A(1) + exp_acc(A(-2) * u));
}

// ---- op functors: f(T...) -> A, the CPU kernels' lambdas; A = acc_t<T>

template <class TI>
struct Convert {
  // Through the wider of the two types, as the CPU's copy: float for the 16-bit floats (exact),
  // else double, which keeps int64 and float64 exact.
  __device__ auto operator()(TI v) const {
    if constexpr (std::is_same_v<TI, bfloat16> || std::is_same_v<TI, float16>) {
      return static_cast<float>(v);
    } else {
      return static_cast<double>(v);
    }
  }
};
template <class T>
struct Same {
  __device__ T operator()(T v) const { return v; }
};
template <class T>
struct Constant {
  T v;
  __device__ T operator()() const { return v; }
};

template <class T, class A = acc_t<T>>
struct Neg {
  __device__ A operator()(T v) const { return -A(v); }
};
template <class T, class A = acc_t<T>>
struct Exp {
  __device__ A operator()(T v) const { return exp_acc(A(v)); }
};
template <class T, class A = acc_t<T>>
struct Log {
  __device__ A operator()(T v) const { return log_acc(A(v)); }
};
template <class T, class A = acc_t<T>>
struct Tanh {
  __device__ A operator()(T v) const { return tanh_acc(A(v)); }
};
template <class T, class A = acc_t<T>>
struct Relu {
  __device__ A operator()(T v) const { return A(v) > A(0) ? A(v) : A(0); }
};
// For 16-bit outputs GELU takes the hardware exp and reciprocal (relative error ~2^-21, far below
// the output's rounding, so results stay within the tests' 2 ulp of the CPU's): the accurate expf
// and division made it compute-bound, 1.06 ms per GPT-2 step on an H200 for the 12 recomputations
// of h (ops/mlp.cpp), about 2.3 TB/s.
template <class T, class A = acc_t<T>>
struct Gelu {
  __device__ A operator()(T v) const {
    if constexpr (std::is_same_v<T, bfloat16> || std::is_same_v<T, float16>) {
      const float x = float(v);
      return x * gelu_sigmoid_fast(x);
    } else {
      return A(v) * gelu_s(A(v));
    }
  }
};
template <class T, class A = acc_t<T>>
struct Sigmoid {
  __device__ A operator()(T v) const { return div_rn(A(1), add_rn(A(1), exp_acc(-A(v)))); }
};
template <class T, class A = acc_t<T>>
struct Sqrt {
  __device__ A operator()(T v) const { return sqrt_rn(A(v)); }
};

// Backward functors: f(g, s), the gradient given upstream g and the saved operand s (x or y).
template <class T, class A = acc_t<T>>
struct NegBackward {
  __device__ A operator()(T g, T) const { return -A(g); }
};
template <class T, class A = acc_t<T>>
struct ExpBackward {
  __device__ A operator()(T g, T y) const { return mul_rn(A(g), A(y)); }
};
template <class T, class A = acc_t<T>>
struct LogBackward {
  __device__ A operator()(T g, T x) const { return div_rn(A(g), A(x)); }
};
template <class T, class A = acc_t<T>>
struct TanhBackward {
  __device__ A operator()(T g, T y) const { return mul_rn(A(g), sub_rn(A(1), mul_rn(A(y), A(y)))); }
};
template <class T, class A = acc_t<T>>
struct ReluBackward {
  __device__ A operator()(T g, T x) const { return A(x) > A(0) ? A(g) : A(0); }
};
template <class T, class A = acc_t<T>>
struct GeluBackward {
  // GELU'(x) = s + 2 x s (1 - s) u'(x), u'(x) = sqrt(2/pi) (1 + 3 · 0.044715 x²): the derivative of
  // x · s, in the CPU vectorised path's form.
  __device__ A operator()(T g, T xv) const {
    const A x = A(xv), s = gelu_s(x);
    const A du = A(0.7978845608028654) * (A(1) + A(3) * A(0.044715) * x * x);
    return A(g) * (s + A(2) * x * s * (A(1) - s) * du);
  }
};
template <class T, class A = acc_t<T>>
struct SigmoidBackward {
  __device__ A operator()(T g, T y) const { return mul_rn(mul_rn(A(g), A(y)), sub_rn(A(1), A(y))); }
};
template <class T, class A = acc_t<T>>
struct SqrtBackward {
  __device__ A operator()(T g, T y) const { return div_rn(mul_rn(A(g), A(0.5)), A(y)); }
};

template <class T, class A = acc_t<T>>
struct Add {
  __device__ A operator()(T x, T y) const { return add_rn(A(x), A(y)); }
};
template <class T, class A = acc_t<T>>
struct Sub {
  __device__ A operator()(T x, T y) const { return sub_rn(A(x), A(y)); }
};
template <class T, class A = acc_t<T>>
struct Mul {
  __device__ A operator()(T x, T y) const { return mul_rn(A(x), A(y)); }
};
template <class T, class A = acc_t<T>>
struct Div {
  __device__ A operator()(T x, T y) const { return div_rn(A(x), A(y)); }
};
template <class T, class A = acc_t<T>>
struct Eq {
  __device__ A operator()(T x, T y) const { return A(x) == A(y) ? A(1) : A(0); }
};

// Scalar functors carry c = A(s), converted once on the host as the CPU does.
template <class T, class A = acc_t<T>>
struct AddScalar {
  A c;
  __device__ A operator()(T x) const { return add_rn(A(x), c); }
};
template <class T, class A = acc_t<T>>
struct MulScalar {
  A c;
  __device__ A operator()(T x) const { return mul_rn(A(x), c); }
};
template <class T, class A = acc_t<T>>
struct RsubScalar {
  A c;
  __device__ A operator()(T x) const { return sub_rn(c, A(x)); }
};
template <class T, class A = acc_t<T>>
struct RdivScalar {
  A c;
  __device__ A operator()(T x) const { return div_rn(c, A(x)); }
};
template <class T, class A = acc_t<T>>
struct Square {
  __device__ A operator()(T x) const { return mul_rn(A(x), A(x)); }
};
template <class T, class A = acc_t<T>>
struct PowScalar {
  A c;
  __device__ A operator()(T x) const { return pow_acc(A(x), c); }
};

// add_scaled: f(d, s) = d + c s, or d + s for alpha = 1 (one rounding fewer, as on the CPU).
template <class T, class A = acc_t<T>>
struct AddScaled {
  A c;
  __device__ A operator()(T d, T s) const { return add_rn(A(d), mul_rn(c, A(s))); }
};

}  // namespace

void copy(const StridedView& src, const StridedView& dst, cudaStream_t stream) {
  check_same_shape(src, dst, "copy");
  dispatch_all(dst.dtype, "copy", [&]<class TO>() {
    dispatch_all(src.dtype, "copy", [&]<class TI>() {
      if constexpr (std::is_same_v<TO, TI>) {
        launch_map<TO, TI>(Same<TI>{}, stream, dst, src);
      } else {
        launch_map<TO, TI>(Convert<TI>{}, stream, dst, src);
      }
    });
  });
}

void fill(const StridedView& dst, double value, cudaStream_t stream) {
  dispatch_all(dst.dtype, "fill", [&]<class T>() {
    // Through acc_t<T> as on the CPU (float for the integer types too).
    const T v = T(static_cast<acc_t<T>>(value));
    launch_map<T>(Constant<T>{v}, stream, dst);
  });
}

void unary(UnaryOp op, const StridedView& x, const StridedView& y, cudaStream_t stream) {
  check_same_shape(x, y, "unary");
  dispatch_floating(x.dtype, unary_op_name(op), [&]<class T>() {
    const auto run = [&](const auto& f) { launch_map<T, T>(f, stream, y, x); };
    switch (op) {
      case UnaryOp::neg:
        return run(Neg<T>{});
      case UnaryOp::exp:
        return run(Exp<T>{});
      case UnaryOp::log:
        return run(Log<T>{});
      case UnaryOp::tanh:
        return run(Tanh<T>{});
      case UnaryOp::relu:
        return run(Relu<T>{});
      case UnaryOp::gelu:
        return run(Gelu<T>{});
      case UnaryOp::sigmoid:
        return run(Sigmoid<T>{});
      case UnaryOp::sqrt:
        return run(Sqrt<T>{});
    }
  });
}

void unary_backward(UnaryOp op, const StridedView& gy, const StridedView& saved,
                    const StridedView& gx, cudaStream_t stream) {
  check_same_shape(gy, gx, "unary_backward");
  dispatch_floating(gy.dtype, unary_op_name(op), [&]<class T>() {
    const auto run = [&](const auto& f) { launch_map<T, T, T>(f, stream, gx, gy, saved); };
    switch (op) {
      case UnaryOp::neg:
        return run(NegBackward<T>{});
      case UnaryOp::exp:
        return run(ExpBackward<T>{});
      case UnaryOp::log:
        return run(LogBackward<T>{});
      case UnaryOp::tanh:
        return run(TanhBackward<T>{});
      case UnaryOp::relu:
        return run(ReluBackward<T>{});
      case UnaryOp::gelu:
        return run(GeluBackward<T>{});
      case UnaryOp::sigmoid:
        return run(SigmoidBackward<T>{});
      case UnaryOp::sqrt:
        return run(SqrtBackward<T>{});
    }
  });
}

void binary(BinaryOp op, const StridedView& a, const StridedView& b, const StridedView& out,
            cudaStream_t stream) {
  check_same_shape(a, out, "binary");
  check_same_shape(b, out, "binary");
  dispatch_floating(out.dtype, binary_op_name(op), [&]<class T>() {
    const auto run = [&](const auto& f) { launch_map<T, T, T>(f, stream, out, a, b); };
    switch (op) {
      case BinaryOp::add:
        return run(Add<T>{});
      case BinaryOp::sub:
        return run(Sub<T>{});
      case BinaryOp::mul:
        return run(Mul<T>{});
      case BinaryOp::div:
        return run(Div<T>{});
      case BinaryOp::eq:
        return run(Eq<T>{});
    }
  });
}

void scalar(ScalarOp op, const StridedView& a, double s, const StridedView& out,
            cudaStream_t stream) {
  check_same_shape(a, out, "scalar");
  dispatch_floating(out.dtype, scalar_op_name(op), [&]<class T>() {
    using A = acc_t<T>;
    const A c = static_cast<A>(s);
    const auto run = [&](const auto& f) { launch_map<T, T>(f, stream, out, a); };
    switch (op) {
      case ScalarOp::add:
        return run(AddScalar<T>{c});
      case ScalarOp::mul:
        return run(MulScalar<T>{c});
      case ScalarOp::rsub:
        return run(RsubScalar<T>{c});
      case ScalarOp::rdiv:
        return run(RdivScalar<T>{c});
      case ScalarOp::pow:
        if (s == 2.0) return run(Square<T>{});  // exact x·x, as the CPU special-cases it
        return run(PowScalar<T>{c});
    }
  });
}

void add_scaled(const StridedView& src, double alpha, const StridedView& dst, cudaStream_t stream) {
  check_same_shape(src, dst, "add_scaled");
  dispatch_floating(dst.dtype, "add_", [&]<class T>() {
    using A = acc_t<T>;
    if (alpha == 1.0) return launch_map<T, T, T>(Add<T>{}, stream, dst, dst, src);
    launch_map<T, T, T>(AddScaled<T>{static_cast<A>(alpha)}, stream, dst, dst, src);
  });
}

}  // namespace tilegrad::kernels::cuda
