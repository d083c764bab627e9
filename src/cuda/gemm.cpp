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
#include "memory/allocator.h"

namespace tilegrad::cuda {

namespace {

// cuBLASLt picks faster kernels with more scratch; 32 MiB is what its documentation recommends for
// Hopper.
constexpr int64_t kWorkspaceBytes = int64_t{32} << 20;

// The device's GEMM workspace: one block of the caching allocator, taken at the device's first GEMM
// and kept for the process, tracked as workspace. Taken per call, it counted 32 MiB into the peak
// of every op that runs a GEMM, which byte-exact memory bounds (and predictions) then had to carry;
// kept, it is part of the baseline from the first step on (the trainer's memory check measures
// again after a first step for such buffers). Every GEMM of a device is queued on its one stream,
// so they never use it at the same time.
void* gemm_workspace(int device) {
  static std::mutex mutex;
  static auto* blocks = new std::map<int, void*>();
  std::lock_guard<std::mutex> lock(mutex);
  void*& p = (*blocks)[device];
  if (p == nullptr) {
    p = allocator_for(Device::cuda(device))
            .allocate(static_cast<size_t>(kWorkspaceBytes), Category::workspace);
  }
  return p;
}

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

// The heuristic's answer depends on the problem, the epilogue and the operands' alignment; all
// form the key.
using AlgoKey = std::tuple<int, bool, bool, int64_t, int64_t, int64_t, int64_t, int64_t, int64_t,
                           int64_t, int64_t, int64_t, int64_t, int, int, int>;

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
  // Whether cuBLASLt runs the epilogue (false: it had no algorithm for it, and the caller applies
  // it). The epilogue's pointers are attributes of desc, set for each call under `call`.
  bool fused_epilogue = false;
  std::mutex call;
};

cublasLtEpilogue_t lt_epilogue(const GemmArgs& g) {
  switch (g.epilogue) {
    case GemmEpilogue::bias:
      return CUBLASLT_EPILOGUE_BIAS;
    case GemmEpilogue::bias_gelu:
      return CUBLASLT_EPILOGUE_GELU_AUX_BIAS;
    case GemmEpilogue::bias_grad:
      // Column-major, our op(B) is cuBLASLt's first operand, whose reduction over k is BGRADA.
      return CUBLASLT_EPILOGUE_BGRADA;
    case GemmEpilogue::gelu_grad:
      // Column-major, our C's columns are cuBLASLt's rows, whose sums are DGELU_BGRAD's bias.
      return g.bias_grad != nullptr ? CUBLASLT_EPILOGUE_DGELU_BGRAD : CUBLASLT_EPILOGUE_DGELU;
    case GemmEpilogue::none:
      break;
  }
  return CUBLASLT_EPILOGUE_DEFAULT;
}

bool uses_aux(const GemmArgs& g) {
  return g.epilogue == GemmEpilogue::bias_gelu || g.epilogue == GemmEpilogue::gelu_grad;
}

// Whether g's epilogue writes bias-gradient sums (through cuBLASLt's bias pointer).
bool writes_sums(const GemmArgs& g) {
  return g.epilogue == GemmEpilogue::bias_grad ||
         (g.epilogue == GemmEpilogue::gelu_grad && g.bias_grad != nullptr);
}

// cuBLASLt's epilogues run on single matrices, and its GELU auxiliary matrix needs a leading
// dimension that is a multiple of 8; anything else gets the caller's epilogue.
bool epilogue_can_fuse(const GemmArgs& g) {
  if (g.epilogue == GemmEpilogue::none) return false;
  if (g.batch != 1 || g.dtype == DType::f64) return false;
  return !uses_aux(g) || g.ldc % 8 == 0;
}

// Finds the algorithm for p's descriptors; false if cuBLASLt has none.
bool find_algo(Plan& p) {
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
  // An epilogue the heuristic cannot serve is reported as "not supported", not as no result.
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  TG_CUBLAS_CHECK(st);
  if (found > 0) p.algo = result.algo;
  return found > 0;
}

void set_epilogue(Plan& p, cublasLtEpilogue_t e) {
  TG_CUBLAS_CHECK(
      cublasLtMatmulDescSetAttribute(p.desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE, &e, sizeof e));
}

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

  // Column-major, our C is [n, m]: the bias (one value per column of C) is cuBLASLt's per-row
  // bias, which is what its BIAS epilogues add.
  if (epilogue_can_fuse(g)) {
    set_epilogue(p, lt_epilogue(g));
    if (uses_aux(g)) {
      const int64_t ld = g.ldc;
      TG_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_LD,
                                                     &ld, sizeof ld));
    }
    p.fused_epilogue = find_algo(p);
    if (p.fused_epilogue) return;
    set_epilogue(p, CUBLASLT_EPILOGUE_DEFAULT);
  }
  TG_CHECK(find_algo(p), "gemm: cuBLASLt has no algorithm for ", dtype_name(g.dtype), " m=", g.m,
           " n=", g.n, " k=", g.k, " batch=", g.batch);
}

// The plan of g's problem, built on first use. Plans are never freed, like the handle: a training
// run has a few dozen problems, and they live as long as the process.
Plan& plan_for(const GemmArgs& g) {
  static std::mutex mutex;
  static auto* plans = new std::map<AlgoKey, std::unique_ptr<Plan>>();
  const AlgoKey key{
      static_cast<int>(g.dtype),
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
      std::min({alignment(g.a), alignment(g.b), alignment(g.c), g.bias ? alignment(g.bias) : 16,
                g.c_in ? alignment(g.c_in) : 16, g.pre_act ? alignment(g.pre_act) : 16,
                g.bias_grad ? alignment(g.bias_grad) : 16}),
      static_cast<int>(g.beta != 0.0),
      static_cast<int>(g.epilogue) * 2 + static_cast<int>(g.bias_grad != nullptr)};
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

bool gemm(const GemmArgs& g, cudaStream_t stream) {
  // An empty product still owes its bias-gradient sums (zeros, or op(B)'s columns) when there are
  // columns: the caller's sum.
  if (g.m == 0 || g.n == 0 || g.batch == 0) return !writes_sums(g) || g.n == 0;
  Plan& p = plan_for(g);
  const float alpha_f = static_cast<float>(g.alpha), beta_f = static_cast<float>(g.beta);
  const double alpha_d = g.alpha, beta_d = g.beta;
  const bool f64 = p.types.scale == CUDA_R_64F;
  void* ws = gemm_workspace(current_device());
  std::unique_lock<std::mutex> lock(p.call, std::defer_lock);
  if (p.fused_epilogue) {
    lock.lock();
    // BGRADA and DGELU_BGRAD write their sums through the bias pointer.
    const void* bias = writes_sums(g) ? g.bias_grad : g.bias;
    TG_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(p.desc.d, CUBLASLT_MATMUL_DESC_BIAS_POINTER,
                                                   &bias, sizeof bias));
    if (uses_aux(g)) {
      void* aux = g.pre_act;
      TG_CUBLAS_CHECK(cublasLtMatmulDescSetAttribute(
          p.desc.d, CUBLASLT_MATMUL_DESC_EPILOGUE_AUX_POINTER, &aux, sizeof aux));
    }
  }
  // cuBLASLt's C (what beta scales) may differ from its D (what it writes), with the same layout.
  const void* c_in = g.c_in != nullptr ? g.c_in : g.c;
  TG_CUBLAS_CHECK(cublasLtMatmul(
      handle(), p.desc.d,
      f64 ? static_cast<const void*>(&alpha_d) : static_cast<const void*>(&alpha_f), g.b, p.la.l,
      g.a, p.lb.l, f64 ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f),
      c_in, p.lc.l, g.c, p.lc.l, &p.algo, ws, static_cast<size_t>(kWorkspaceBytes), stream));
  return g.epilogue == GemmEpilogue::none || p.fused_epilogue;
}

}  // namespace tilegrad::cuda
