// CPU GEMM: OpenBLAS's sgemm/dgemm for float32/float64. Our OpenBLAS build has no half-precision
// GEMM, so bf16/f16 operands are widened into float32 workspace (tracked as `workspace`),
// multiplied, and rounded back. The epilogue (bias, GELU) runs on each row of the result in the
// accumulation type before it is stored, as cuBLASLt's does on the GPU.
#include "kernels/cpu/gemm.h"

#include <cblas.h>

#include <cstring>

#include <vector>

#include "core/error.h"
#include "kernels/cpu/parallel.h"
#include "kernels/cpu/vector_math.h"
#include "memory/workspace.h"

namespace tilegrad::kernels::cpu {

namespace {

CBLAS_TRANSPOSE tr(bool t) {
  return t ? CblasTrans : CblasNoTrans;
}

// The epilogue on row r of the result, held in the accumulation type at v (n values): v += bias
// (not for gelu), then, for bias_gelu and gelu, pre_act's row = v (rounded to T) and v = GELU(v);
// for gelu_grad, v *= GELU'(pre_act's row). The caller stores v.
template <class T, class A>
void epilogue_row(const GemmArgs& g, int64_t r, A* v) {
  if (g.epilogue == GemmEpilogue::none || g.epilogue == GemmEpilogue::bias_grad) return;
  if (g.epilogue == GemmEpilogue::gelu_grad) {
    const T* pre = static_cast<const T*>(g.pre_act) + r * g.ldc;
    if constexpr (std::is_same_v<A, float> && std::is_same_v<T, float>) {
      gelu_backward_f32(v, pre, v, g.n);
    } else {
      for (int64_t j = 0; j < g.n; ++j) v[j] *= gelu_tanh_grad(static_cast<A>(pre[j]));
    }
    return;
  }
  if (epilogue_adds_bias(g.epilogue)) {
    const T* bias = static_cast<const T*>(g.bias);
    for (int64_t j = 0; j < g.n; ++j) v[j] += static_cast<A>(bias[j]);
  }
  if (!epilogue_applies_gelu(g.epilogue)) return;
  T* pre = static_cast<T*>(g.pre_act) + r * g.ldc;
  for (int64_t j = 0; j < g.n; ++j) pre[j] = T(v[j]);
  if constexpr (std::is_same_v<A, float>) {
    gelu_f32(v, v, g.n);
  } else {
    for (int64_t j = 0; j < g.n; ++j) v[j] = gelu_tanh(v[j]);
  }
}

template <class T>
void gemm_blas(const GemmArgs& g) {
  const T* a = static_cast<const T*>(g.a);
  const T* b = static_cast<const T*>(g.b);
  T* c = static_cast<T*>(g.c);
  for (int64_t i = 0; i < g.batch; ++i) {
    const T* ai = a + i * g.stride_a;
    const T* bi = b + i * g.stride_b;
    T* ci = c + i * g.stride_c;
    if constexpr (std::is_same_v<T, float>) {
      cblas_sgemm(CblasRowMajor, tr(g.trans_a), tr(g.trans_b), static_cast<blasint>(g.m),
                  static_cast<blasint>(g.n), static_cast<blasint>(g.k), static_cast<float>(g.alpha),
                  ai, static_cast<blasint>(g.lda), bi, static_cast<blasint>(g.ldb),
                  static_cast<float>(g.beta), ci, static_cast<blasint>(g.ldc));
    } else {
      cblas_dgemm(CblasRowMajor, tr(g.trans_a), tr(g.trans_b), static_cast<blasint>(g.m),
                  static_cast<blasint>(g.n), static_cast<blasint>(g.k), g.alpha, ai,
                  static_cast<blasint>(g.lda), bi, static_cast<blasint>(g.ldb), g.beta, ci,
                  static_cast<blasint>(g.ldc));
    }
    if (g.epilogue != GemmEpilogue::none) {  // batch == 1: C's rows are the results in place
      parallel_for(g.m, g.m * g.n >= (1 << 15),
                   [&](int64_t r) { epilogue_row<T, T>(g, r, ci + r * g.ldc); });
    }
  }
}

// Packs a stored rows x cols matrix with row stride ld into contiguous float.
template <class T>
void widen(const T* src, int64_t rows, int64_t cols, int64_t ld, float* dst) {
  parallel_for(rows, rows * cols >= (1 << 15), [&](int64_t r) {
    for (int64_t j = 0; j < cols; ++j) dst[r * cols + j] = static_cast<float>(src[r * ld + j]);
  });
}

template <class T>
void gemm_half(const GemmArgs& g) {
  const int64_t a_rows = g.trans_a ? g.k : g.m, a_cols = g.trans_a ? g.m : g.k;
  const int64_t b_rows = g.trans_b ? g.n : g.k, b_cols = g.trans_b ? g.k : g.n;
  Workspace wa(a_rows * a_cols * 4), wb(b_rows * b_cols * 4), wc(g.m * g.n * 4);
  float* fa = wa.as<float>();
  float* fb = wb.as<float>();
  float* fc = wc.as<float>();
  for (int64_t i = 0; i < g.batch; ++i) {
    const T* ai = static_cast<const T*>(g.a) + i * g.stride_a;
    const T* bi = static_cast<const T*>(g.b) + i * g.stride_b;
    T* ci = static_cast<T*>(g.c) + i * g.stride_c;
    widen(ai, a_rows, a_cols, g.lda, fa);
    widen(bi, b_rows, b_cols, g.ldb, fb);
    if (g.beta != 0.0) widen(ci, g.m, g.n, g.ldc, fc);
    cblas_sgemm(CblasRowMajor, tr(g.trans_a), tr(g.trans_b), static_cast<blasint>(g.m),
                static_cast<blasint>(g.n), static_cast<blasint>(g.k), static_cast<float>(g.alpha),
                fa, static_cast<blasint>(a_cols), fb, static_cast<blasint>(b_cols),
                static_cast<float>(g.beta), fc, static_cast<blasint>(g.n));
    parallel_for(g.m, g.m * g.n >= (1 << 15), [&](int64_t r) {
      float* v = fc + r * g.n;
      epilogue_row<T, float>(g, r, v);
      for (int64_t j = 0; j < g.n; ++j) ci[r * g.ldc + j] = T(v[j]);
    });
  }
}

// out[j] = Σ_r x[r · row_stride + j · col_stride] for j < cols, in the accumulation type in order
// of r: the bias gradients, column sums of op(B) (bias_grad) or of the stored C (gelu_grad).
template <class T>
void column_sums(const void* data, int64_t rows, int64_t cols, int64_t row_stride,
                 int64_t col_stride, void* out_data) {
  using A = acc_t<T>;
  const T* x = static_cast<const T*>(data);
  T* out = static_cast<T*>(out_data);
  parallel_for(cols, cols * rows >= (1 << 15), [&](int64_t j) {
    A s = 0;
    for (int64_t r = 0; r < rows; ++r) s += static_cast<A>(x[r * row_stride + j * col_stride]);
    out[j] = T(s);
  });
}

// C = epilogue(alpha op(A) op(B) + beta C), without the bias gradients.
void product_with_epilogue(const GemmArgs& g) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  if (g.k == 0) {  // BLAS may skip C entirely; the product of empty matrices is zero
    dispatch_floating(g.dtype, "matmul", [&]<class T>() {
      using A = acc_t<T>;
      std::vector<A> v(static_cast<size_t>(g.n));
      for (int64_t i = 0; i < g.batch; ++i) {
        T* ci = static_cast<T*>(g.c) + i * g.stride_c;
        for (int64_t r = 0; r < g.m; ++r) {
          for (int64_t j = 0; j < g.n; ++j) {
            // beta = 0 ignores C, which may hold anything (NaN), as BLAS does.
            v[j] = g.beta == 0.0
                       ? A(0)
                       : A(g.beta * static_cast<double>(static_cast<A>(ci[r * g.ldc + j])));
          }
          epilogue_row<T, A>(g, r, v.data());
          for (int64_t j = 0; j < g.n; ++j) ci[r * g.ldc + j] = T(v[j]);
        }
      }
    });
    return;
  }
  dispatch_floating(g.dtype, "matmul", [&]<class T>() {
    if constexpr (std::is_same_v<T, float> || std::is_same_v<T, double>) {
      gemm_blas<T>(g);
    } else {
      gemm_half<T>(g);
    }
  });
}

}  // namespace

void gemm(const GemmArgs& g) {
  TG_ASSERT(epilogue_args_valid(g), "gemm: an epilogue without its operands");
  if (g.c_in != nullptr && g.c_in != g.c && g.beta != 0.0) {
    // beta scales c_in: its rows go to C first, and the product then adds into C as beta · C.
    const size_t row = static_cast<size_t>(g.n) * dtype_size(g.dtype);
    const size_t ld = static_cast<size_t>(g.ldc) * dtype_size(g.dtype);
    const auto* src = static_cast<const char*>(g.c_in);
    auto* dst = static_cast<char*>(g.c);
    for (int64_t i = 0; i < g.m; ++i) std::memcpy(dst + i * ld, src + i * ld, row);
  }
  if (g.epilogue == GemmEpilogue::bias_grad) {  // op(B) is [k, n]
    dispatch_floating(g.dtype, "matmul", [&]<class T>() {
      column_sums<T>(g.b, g.k, g.n, g.trans_b ? 1 : g.ldb, g.trans_b ? g.ldb : 1, g.bias_grad);
    });
  }
  product_with_epilogue(g);
  if (g.epilogue == GemmEpilogue::gelu_grad && g.bias_grad != nullptr) {
    dispatch_floating(g.dtype, "matmul",
                      [&]<class T>() { column_sums<T>(g.c, g.m, g.n, g.ldc, 1, g.bias_grad); });
  }
}

}  // namespace tilegrad::kernels::cpu
