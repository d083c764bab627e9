#include "cuda/gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <mutex>
#include <tuple>

#include "core/error.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "memory/workspace.h"

namespace tilegrad::cuda {

namespace {

// cuBLASLt picks faster kernels with more scratch; 32 MiB is what its documentation recommends for
// Hopper. The buffer is a stream-ordered block of the caching allocator, so taking it per call
// costs no driver call once the pool holds one.
constexpr int64_t kWorkspaceBytes = int64_t{32} << 20;

cublasLtHandle_t handle() {
  // One handle per process: cuBLASLt handles are not tied to a device or a stream.
  static const cublasLtHandle_t h = [] {
    cublasLtHandle_t created = nullptr;
    TG_CUBLAS_CHECK(cublasLtCreate(&created));
    return created;
  }();
  return h;
}

struct Types {
  cudaDataType_t data;
  cublasComputeType_t compute;
  cudaDataType_t scale;
};

Types types_of(DType dt) {
  switch (dt) {
    case DType::f64:
      return {CUDA_R_64F, CUBLAS_COMPUTE_64F, CUDA_R_64F};
    case DType::f32:
      return {CUDA_R_32F, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::bf16:
      return {CUDA_R_16BF, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    case DType::f16:
      return {CUDA_R_16F, CUBLAS_COMPUTE_32F, CUDA_R_32F};
    default:
      break;
  }
  TG_CHECK(false, "gemm: no cuda GEMM for ", dtype_name(dt));
  return {};
}

// RAII owners of the descriptors, so that a failed call leaks nothing.
struct MatmulDesc {
  cublasLtMatmulDesc_t d = nullptr;
  ~MatmulDesc() {
    if (d) cublasLtMatmulDescDestroy(d);
  }
};
struct Layout {
  cublasLtMatrixLayout_t l = nullptr;
  ~Layout() {
    if (l) cublasLtMatrixLayoutDestroy(l);
  }
};

void make_layout(Layout& out, cudaDataType_t type, int64_t rows, int64_t cols, int64_t ld,
                 int64_t batch, int64_t stride) {
  TG_CUBLAS_CHECK(cublasLtMatrixLayoutCreate(&out.l, type, static_cast<uint64_t>(rows),
                                             static_cast<uint64_t>(cols), ld));
  if (batch > 1) {
    const int32_t count = static_cast<int32_t>(batch);
    TG_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(out.l, CUBLASLT_MATRIX_LAYOUT_BATCH_COUNT,
                                                     &count, sizeof count));
    TG_CUBLAS_CHECK(cublasLtMatrixLayoutSetAttribute(
        out.l, CUBLASLT_MATRIX_LAYOUT_STRIDED_BATCH_OFFSET, &stride, sizeof stride));
  }
}

// The heuristic's answer depends on the problem and on the operands' alignment; both form the key.
using AlgoKey = std::tuple<int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int, int>;

int alignment(const void* p) {
  const auto a = reinterpret_cast<uintptr_t>(p);
  for (int bytes : {256, 128, 64, 32, 16, 8, 4}) {
    if (a % static_cast<uintptr_t>(bytes) == 0) return std::min(bytes, 16);
  }
  return 1;
}

}  // namespace

void gemm(const GemmArgs& g, cudaStream_t stream) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const Types t = types_of(g.dtype);
  // Row-major C[m, n] = op(A) op(B) is column-major Cᵀ[n, m] = op(B)ᵀ op(A)ᵀ: cuBLASLt's first
  // operand is our B and its second our A. A row-major [r, c] matrix with row stride ld is the
  // column-major [c, r] matrix with leading dimension ld.
  const cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  MatmulDesc desc;
  TG_CUBLAS_CHECK(cublasLtMatmulDescCreate(&desc.d, t.compute, t.scale));
  TG_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                 sizeof op_first));
  TG_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(desc.d, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                 sizeof op_second));
  Layout la, lb, lc;
  // First operand: B stored row-major [k, n] (or [n, k] when transposed).
  make_layout(la, t.data, g.trans_b ? g.k : g.n, g.trans_b ? g.n : g.k, g.ldb, g.batch, g.stride_b);
  // Second operand: A stored row-major [m, k] (or [k, m] when transposed).
  make_layout(lb, t.data, g.trans_a ? g.m : g.k, g.trans_a ? g.k : g.m, g.lda, g.batch, g.stride_a);
  make_layout(lc, t.data, g.n, g.m, g.ldc, g.batch, g.stride_c);

  static std::mutex mutex;
  static std::map<AlgoKey, cublasLtMatmulAlgo_t> cache;
  const AlgoKey key{static_cast<int>(g.dtype),
                    g.trans_a,
                    g.trans_b,
                    g.m,
                    g.n,
                    g.k,
                    g.lda,
                    g.ldb,
                    g.ldc,
                    g.batch,
                    g.stride_a,
                    g.stride_b,
                    g.stride_c,
                    std::min({alignment(g.a), alignment(g.b), alignment(g.c)}),
                    static_cast<int>(g.beta != 0.0)};
  cublasLtMatmulAlgo_t algo;
  {
    std::lock_guard<std::mutex> lock(mutex);
    auto it = cache.find(key);
    if (it == cache.end()) {
      cublasLtMatmulPreference_t pref = nullptr;
      TG_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
      const uint64_t ws = static_cast<uint64_t>(kWorkspaceBytes);
      cublasLtMatmulHeuristicResult_t result{};
      int found = 0;
      const cublasStatus_t st = [&] {
        const cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
            pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
        if (s != CUBLAS_STATUS_SUCCESS) return s;
        return cublasLtMatmulAlgoGetHeuristic(handle(), desc.d, la.l, lb.l, lc.l, lc.l, pref, 1,
                                              &result, &found);
      }();
      cublasLtMatmulPreferenceDestroy(pref);
      TG_CUBLAS_CHECK(st);
      TG_CHECK(found > 0, "gemm: cuBLASLt has no algorithm for ", dtype_name(g.dtype), " m=", g.m,
               " n=", g.n, " k=", g.k, " batch=", g.batch);
      it = cache.emplace(key, result.algo).first;
    }
    algo = it->second;
  }

  const float alpha_f = static_cast<float>(g.alpha), beta_f = static_cast<float>(g.beta);
  const double alpha_d = g.alpha, beta_d = g.beta;
  const bool f64 = t.scale == CUDA_R_64F;
  Workspace ws(kWorkspaceBytes, Device::cuda(current_device()));
  TG_CUBLAS_CHECK(cublasLtMatmul(
      handle(), desc.d,
      f64 ? static_cast<const void*>(&alpha_d) : static_cast<const void*>(&alpha_f), g.b, la.l, g.a,
      lb.l, f64 ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f), g.c, lc.l,
      g.c, lc.l, &algo, ws.as<void>(), static_cast<size_t>(kWorkspaceBytes), stream));
}

}  // namespace tilegrad::cuda
