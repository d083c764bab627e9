#include "cuda/gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <cstdint>
#include <map>
#include <memory>
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

// Everything about a problem that does not change between calls: the descriptors and the
// algorithm. Built on the first call of a problem and kept, so that a training step, which repeats
// the same problems, pays for descriptors and the heuristic once.
struct Plan {
  Types types;
  MatmulDesc desc;
  Layout la, lb, lc;
  cublasLtMatmulAlgo_t algo;
};

void build_plan(Plan& p, const GemmArgs& g) {
  const Types& t = p.types;
  // Row-major C[m, n] = op(A) op(B) is column-major Cᵀ[n, m] = op(B)ᵀ op(A)ᵀ: cuBLASLt's first
  // operand is our B and its second our A. A row-major [r, c] matrix with row stride ld is the
  // column-major [c, r] matrix with leading dimension ld.
  const cublasOperation_t op_first = g.trans_b ? CUBLAS_OP_T : CUBLAS_OP_N;
  const cublasOperation_t op_second = g.trans_a ? CUBLAS_OP_T : CUBLAS_OP_N;
  TG_CUBLAS_CHECK(cublasLtMatmulDescCreate(&p.desc.d, t.compute, t.scale));
  TG_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc.d, CUBLASLT_MATMUL_DESC_TRANSA, &op_first,
                                                 sizeof op_first));
  TG_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc.d, CUBLASLT_MATMUL_DESC_TRANSB, &op_second,
                                                 sizeof op_second));
  // First operand: B stored row-major [k, n] (or [n, k] when transposed).
  make_layout(p.la, t.data, g.trans_b ? g.k : g.n, g.trans_b ? g.n : g.k, g.ldb, g.batch,
              g.stride_b);
  // Second operand: A stored row-major [m, k] (or [k, m] when transposed).
  make_layout(p.lb, t.data, g.trans_a ? g.m : g.k, g.trans_a ? g.k : g.m, g.lda, g.batch,
              g.stride_a);
  make_layout(p.lc, t.data, g.n, g.m, g.ldc, g.batch, g.stride_c);

  cublasLtMatmulPreference_t pref = nullptr;
  TG_CUBLAS_CHECK(cublasLtMatmulPreferenceCreate(&pref));
  const uint64_t ws = static_cast<uint64_t>(kWorkspaceBytes);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const cublasStatus_t st = [&] {
    const cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    return cublasLtMatmulAlgoGetHeuristic(handle(), p.desc.d, p.la.l, p.lb.l, p.lc.l, p.lc.l, pref,
                                          1, &result, &found);
  }();
  cublasLtMatmulPreferenceDestroy(pref);
  TG_CUBLAS_CHECK(st);
  TG_CHECK(found > 0, "gemm: cuBLASLt has no algorithm for ", dtype_name(g.dtype), " m=", g.m,
           " n=", g.n, " k=", g.k, " batch=", g.batch);
  p.algo = result.algo;
}

// The plan of g's problem, built on first use. Plans are never freed, like the handle: a training
// run has a few dozen problems, and they live as long as the process.
const Plan& plan_for(const GemmArgs& g) {
  static std::mutex mutex;
  static auto* plans = new std::map<AlgoKey, std::unique_ptr<Plan>>();
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
  std::lock_guard<std::mutex> lock(mutex);
  std::unique_ptr<Plan>& p = (*plans)[key];
  if (!p) {
    auto fresh = std::make_unique<Plan>();
    fresh->types = types_of(g.dtype);
    build_plan(*fresh, g);  // throws before the plan is kept
    p = std::move(fresh);
  }
  return *p;
}

}  // namespace

void gemm(const GemmArgs& g, cudaStream_t stream) {
  if (g.m == 0 || g.n == 0 || g.batch == 0) return;
  const Plan& p = plan_for(g);
  const float alpha_f = static_cast<float>(g.alpha), beta_f = static_cast<float>(g.beta);
  const double alpha_d = g.alpha, beta_d = g.beta;
  const bool f64 = p.types.scale == CUDA_R_64F;
  Workspace ws(kWorkspaceBytes, Device::cuda(current_device()));
  TG_CUBLAS_CHECK(cublasLtMatmul(
      handle(), p.desc.d,
      f64 ? static_cast<const void*>(&alpha_d) : static_cast<const void*>(&alpha_f), g.b, p.la.l,
      g.a, p.lb.l, f64 ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f), g.c,
      p.lc.l, g.c, p.lc.l, &p.algo, ws.as<void>(), static_cast<size_t>(kWorkspaceBytes), stream));
}

}  // namespace tilegrad::cuda
