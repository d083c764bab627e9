#include "cuda/gemm.h"

#include <cublasLt.h>

#include <algorithm>
#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <tuple>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/error.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/graph.h"
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

// How many algorithms the heuristic is asked for: the first is its choice, the rest are what the
// tuner (Note [GEMM tuning]) times against it.
constexpr int kCandidates = 16;

// Everything about a problem that does not change between calls: the descriptors and the
// algorithm. Built on the first call of a problem and kept, so that a training step, which repeats
// the same problems, pays for descriptors and the heuristic once.
struct Plan {
  Types types;
  MatmulDesc desc;
  Layout la, lb, lc;
  cublasLtMatmulAlgo_t algo;
  // The heuristic's algorithms, its choice first; `algo` is candidates[choice].
  std::vector<cublasLtMatmulAlgo_t> candidates;
  size_t choice = 0;
  // `choice` was made by timing the candidates, or taken from a loaded tuning state.
  bool tuned = false;
  std::string problem;  // "m x n x k", transposes and epilogue, for the tuning state's readers
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
    case GemmEpilogue::gelu:
      return CUBLASLT_EPILOGUE_GELU_AUX;
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
  return epilogue_applies_gelu(g.epilogue) || g.epilogue == GemmEpilogue::gelu_grad;
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
  cublasLtMatmulHeuristicResult_t results[kCandidates] = {};
  int found = 0;
  const cublasStatus_t st = [&] {
    const cublasStatus_t s = cublasLtMatmulPreferenceSetAttribute(
        pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws);
    if (s != CUBLAS_STATUS_SUCCESS) return s;
    return cublasLtMatmulAlgoGetHeuristic(handle(), p.desc.d, p.la.l, p.lb.l, p.lc.l, p.lc.l, pref,
                                          kCandidates, results, &found);
  }();
  cublasLtMatmulPreferenceDestroy(pref);
  // An epilogue the heuristic cannot serve is reported as "not supported", not as no result.
  if (st == CUBLAS_STATUS_NOT_SUPPORTED) return false;
  TG_CUBLAS_CHECK(st);
  p.candidates.clear();
  for (int i = 0; i < found; ++i) {
    if (results[i].state == CUBLAS_STATUS_SUCCESS) p.candidates.push_back(results[i].algo);
  }
  if (!p.candidates.empty()) p.algo = p.candidates.front();
  return !p.candidates.empty();
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

// The plans, and the choices of a loaded tuning state for problems not planned yet, by key. Plans
// are never freed, like the handle: a training run has a few dozen problems, and they live as long
// as the process.
struct Plans {
  std::mutex mutex;
  std::map<AlgoKey, std::unique_ptr<Plan>> plans;
  std::map<std::string, std::pair<size_t, size_t>> presets;  // key: (candidates, choice)
};

Plans& plans() {
  static auto* p = new Plans();
  return *p;
}

// A tuning state's name for a key: its fields, comma-separated.
std::string key_string(const AlgoKey& key) {
  std::string s;
  std::apply(
      [&](const auto&... field) {
        ((s += (s.empty() ? "" : ",") + std::to_string(static_cast<int64_t>(field))), ...);
      },
      key);
  return s;
}

std::string problem_string(const GemmArgs& g) {
  return std::to_string(g.m) + "x" + std::to_string(g.n) + "x" + std::to_string(g.k) + " " +
         (g.trans_a ? "T" : "N") + (g.trans_b ? "T" : "N") + " epilogue " +
         std::to_string(static_cast<int>(g.epilogue)) + (g.c_in != nullptr ? " c_in" : "") +
         (g.beta != 0.0 ? " beta" : "");
}

// The plan of g's problem, built on first use.
Plan& plan_for(const GemmArgs& g) {
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
  Plans& all = plans();
  std::lock_guard<std::mutex> lock(all.mutex);
  std::unique_ptr<Plan>& p = all.plans[key];
  if (!p) {
    auto fresh = std::make_unique<Plan>();
    fresh->types = types_of(g.dtype);
    build_plan(*fresh, g);  // throws before the plan is kept
    fresh->problem = problem_string(g);
    // A loaded choice applies when the heuristic offers the same candidates as where it was made
    // (same library and device, as far as their count tells).
    const auto preset = all.presets.find(key_string(key));
    if (preset != all.presets.end() && preset->second.first == fresh->candidates.size() &&
        preset->second.second < fresh->candidates.size()) {
      fresh->choice = preset->second.second;
      fresh->algo = fresh->candidates[fresh->choice];
      fresh->tuned = true;
    }
    p = std::move(fresh);
  }
  return *p;
}

// Note [GEMM tuning]
// cuBLASLt's heuristic picks an algorithm from a model of the problem, and for some of a training
// step's shapes (K = 768, a bias-gradient or GELU epilogue) another of its candidates runs faster.
// With tuning on, the first call of a problem times the heuristic's candidates on that call's own
// operands and keeps the fastest; the plan then uses it for the rest of the process.
// - No memory: the candidates write the call's own outputs (D, the GELU auxiliary matrix, the
//   bias-gradient sums), which the call overwrites anyway, and read its inputs. A call whose C is
//   read from D's buffer (beta != 0 without a separate C) would see its own output, so such a
//   problem keeps the heuristic's choice (and is tuned at a later call that writes D fresh).
// - Stable: another candidate replaces the heuristic's only when it is kMinGain faster, so that
//   timing noise does not flip the choice between runs on equal algorithms. Still, two processes
//   may choose differently where candidates are close, and different algorithms sum in different
//   orders: with tuning on, results are reproducible within a process, not bit for bit across
//   processes. Off by default here for that reason; `train` turns it on and keeps --resume exact by
//   saving the choices (gemm_tuning_state) and loading them in the resumed process.
// - Not while the stream is being captured into a CUDA graph (nothing would run); the problem is
//   tuned at its next uncaptured call.
std::atomic<bool>& tuning_flag() {
  static std::atomic<bool> on = [] {
    const char* e = std::getenv("TILEGRAD_GEMM_TUNE");
    return e != nullptr && std::strcmp(e, "0") != 0 && *e != '\0';
  }();
  return on;
}

bool tuning_log() {
  static const bool on = std::getenv("TILEGRAD_GEMM_TUNE_LOG") != nullptr;
  return on;
}

constexpr double kMinGain = 0.03;  // a candidate must be 3% faster than the heuristic's choice
constexpr int kTimedRuns = 5;      // per candidate, after one untimed run

// One cuBLASLt call of g with algorithm `algo` (the epilogue's pointers already set).
cublasStatus_t run(Plan& p, const GemmArgs& g, const cublasLtMatmulAlgo_t& algo,
                   cudaStream_t stream) {
  const float alpha_f = static_cast<float>(g.alpha), beta_f = static_cast<float>(g.beta);
  const double alpha_d = g.alpha, beta_d = g.beta;
  const bool f64 = p.types.scale == CUDA_R_64F;
  void* ws = gemm_workspace(current_device());
  // cuBLASLt's C (what beta scales) may differ from its D (what it writes), with the same layout.
  const void* c_in = g.c_in != nullptr ? g.c_in : g.c;
  return cublasLtMatmul(
      handle(), p.desc.d,
      f64 ? static_cast<const void*>(&alpha_d) : static_cast<const void*>(&alpha_f), g.b, p.la.l,
      g.a, p.lb.l, f64 ? static_cast<const void*>(&beta_d) : static_cast<const void*>(&beta_f),
      c_in, p.lc.l, g.c, p.lc.l, &algo, ws, static_cast<size_t>(kWorkspaceBytes), stream);
}

// Whether this call may run several times with the same result: it does not read D's buffer.
bool rerunnable(const GemmArgs& g) {
  return g.beta == 0.0 || (g.c_in != nullptr && g.c_in != g.c);
}

// RAII pair of timing events.
struct EventPair {
  cudaEvent_t start = nullptr, stop = nullptr;
  EventPair() {
    TG_CUDA_CHECK(cudaEventCreate(&start));
    TG_CUDA_CHECK(cudaEventCreate(&stop));
  }
  ~EventPair() {
    cudaEventDestroy(start);
    cudaEventDestroy(stop);
  }
  EventPair(const EventPair&) = delete;
  EventPair& operator=(const EventPair&) = delete;
};

// Times p's candidates on g's operands and sets p.algo to the fastest (Note [GEMM tuning]).
void tune(Plan& p, const GemmArgs& g, cudaStream_t stream) {
  p.tuned = true;
  if (p.candidates.size() < 2) return;
  EventPair ev;
  std::vector<float> ms(p.candidates.size(), -1.0f);
  for (size_t i = 0; i < p.candidates.size(); ++i) {
    // A candidate the heuristic offered may still refuse this call (alignment, workspace): it is
    // skipped, and the call's result comes from the chosen algorithm's run below.
    if (run(p, g, p.candidates[i], stream) != CUBLAS_STATUS_SUCCESS) continue;
    TG_CUDA_CHECK(cudaEventRecord(ev.start, stream));
    for (int r = 0; r < kTimedRuns; ++r) TG_CUBLAS_CHECK(run(p, g, p.candidates[i], stream));
    TG_CUDA_CHECK(cudaEventRecord(ev.stop, stream));
    TG_CUDA_CHECK(cudaEventSynchronize(ev.stop));
    TG_CUDA_CHECK(cudaEventElapsedTime(&ms[i], ev.start, ev.stop));
  }
  size_t best = 0;
  for (size_t i = 1; i < ms.size(); ++i) {
    if (ms[i] >= 0 && (ms[best] < 0 || ms[i] < ms[best])) best = i;
  }
  const bool replace = ms[0] < 0 || ms[best] < (1.0 - kMinGain) * ms[0];
  if (replace) {
    p.choice = best;
    p.algo = p.candidates[best];
  }
  if (tuning_log()) {
    std::fprintf(stderr, "gemm tune %s: heuristic %.1f us, best %.1f us (candidate %zu of %zu)%s\n",
                 p.problem.c_str(), 1e3 * ms[0] / kTimedRuns, 1e3 * ms[best] / kTimedRuns, best,
                 p.candidates.size(), replace ? ", taken" : ", kept the heuristic's");
  }
}

}  // namespace

void set_gemm_tuning(bool on) {
  tuning_flag().store(on);
}

bool gemm_tuning() {
  return tuning_flag().load();
}

std::string gemm_tuning_state() {
  Plans& all = plans();
  std::lock_guard<std::mutex> lock(all.mutex);
  nlohmann::json entries = nlohmann::json::array();
  for (const auto& [key, p] : all.plans) {
    if (!p->tuned) continue;
    entries.push_back({{"key", key_string(key)},
                       {"problem", p->problem},
                       {"candidates", p->candidates.size()},
                       {"choice", p->choice}});
  }
  return nlohmann::json{{"format", "tilegrad gemm tuning 1"}, {"problems", entries}}.dump(1);
}

void load_gemm_tuning_state(const std::string& text) {
  nlohmann::json j;
  try {
    j = nlohmann::json::parse(text);
  } catch (const nlohmann::json::exception& e) {
    TG_CHECK(false, "gemm tuning state: not JSON (", e.what(), ")");
  }
  TG_CHECK(j.is_object() && j.value("format", "") == "tilegrad gemm tuning 1" &&
               j.contains("problems") && j.at("problems").is_array(),
           "gemm tuning state: not a tilegrad GEMM tuning state (format 'tilegrad gemm tuning 1')");
  // Everything is read before anything is kept, so a bad state changes nothing.
  std::map<std::string, std::pair<size_t, size_t>> read;
  for (const nlohmann::json& e : j.at("problems")) {
    TG_CHECK(e.is_object() && e.contains("key") && e.contains("candidates") && e.contains("choice"),
             "gemm tuning state: an entry lacks 'key', 'candidates' or 'choice': ", e.dump());
    const auto n = e.at("candidates").get<size_t>(), c = e.at("choice").get<size_t>();
    TG_CHECK(c < n, "gemm tuning state: choice ", c, " of ", n, " candidates in ", e.dump());
    read[e.at("key").get<std::string>()] = {n, c};
  }
  Plans& all = plans();
  std::lock_guard<std::mutex> lock(all.mutex);
  for (const auto& [key, choice] : read) all.presets[key] = choice;
}

bool gemm(const GemmArgs& g, cudaStream_t stream) {
  // An empty product still owes its bias-gradient sums (zeros, or op(B)'s columns) when there are
  // columns: the caller's sum.
  if (g.m == 0 || g.n == 0 || g.batch == 0) return !writes_sums(g) || g.n == 0;
  Plan& p = plan_for(g);
  // The descriptor carries the epilogue's pointers and the tuner reruns it: one call at a time.
  std::lock_guard<std::mutex> lock(p.call);
  if (p.fused_epilogue) {
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
  if (!p.tuned && gemm_tuning() && rerunnable(g) && !capturing(stream)) tune(p, g, stream);
  TG_CUBLAS_CHECK(run(p, g, p.algo, stream));
  return g.epilogue == GemmEpilogue::none || p.fused_epilogue;
}

}  // namespace tilegrad::cuda
