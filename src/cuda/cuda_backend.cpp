// The CUDA backend: every Backend entry on the GPU, queued on the thread's current stream
// (cuda/stream.h). Elementwise, reduction, normalisation, embedding, cross-entropy, randomness and
// optimizer entries forward to kernels/cuda/; GEMMs go to cuBLASLt (cuda/gemm.h); attention runs
// the FlashAttention kernels (kernels/cuda/flash_api.h) where they apply — bfloat16/float16, head
// dims 64, 128 and 256, no block-sparse layout, no logsumexp gradient — and the exact reference
// kernels (kernels/cuda/attention_reference.h) otherwise.
//
// Registered for DeviceType::cuda from a static initialiser, like the caching allocator; the
// linker keeps this file through tilegrad_cuda_backend_anchor (cmake/cuda.cmake).
#include <cuda_runtime.h>

#include <optional>
#include <string>

#include "backend/backend.h"
#include "core/error.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/entry_profiler.h"
#include "cuda/gemm.h"
#include "cuda/graph.h"
#include "cuda/stream.h"
#include "kernels/cuda/attention_reference.h"
#include "kernels/cuda/cross_entropy.h"
#include "kernels/cuda/elementwise.h"
#include "kernels/cuda/embedding.h"
#include "kernels/cuda/fault.h"
#include "kernels/cuda/flash_api.h"
#include "kernels/cuda/gelu_backward.h"
#include "kernels/cuda/layernorm.h"
#include "kernels/cuda/optim.h"
#include "kernels/cuda/random.h"
#include "kernels/cuda/reduce.h"
#include "kernels/cuda/softmax.h"
#include "memory/workspace.h"

namespace tilegrad::cuda {

namespace {

namespace k = kernels::cuda;

cudaStream_t s() {
  return current_stream();
}

// The host waits for the device in `entry`, which a graph capture cannot record.
void refuse_in_capture(const char* entry) {
  TG_CHECK(!cuda::capturing(), "cuda ", entry,
           ": the host cannot wait for the device while a CUDA graph is being captured (a value "
           "read on the host inside the captured work, such as Tensor::item())");
}

// The FlashAttention kernels' view of the problem, or nullopt-like `false` when they do not apply.
bool flash_applies(const AttentionArgs& a) {
  return (a.dtype == DType::bf16 || a.dtype == DType::f16) &&
         (a.D == 64 || a.D == 128 || a.D == 256) && a.layout == nullptr;
}

// A bias, GELU or GELU-gradient epilogue that cuBLASLt could not run, as elementwise kernels over C
// (GemmArgs says what each epilogue computes); the 16-bit types round the product before the
// epilogue here, unlike the fused path.
void apply_epilogue(const GemmArgs& g, cudaStream_t stream) {
  const StridedView c = matrix_view(g.c, g.dtype, g.m, g.n, g.ldc);
  if (g.epilogue == GemmEpilogue::gelu_grad) {
    k::unary_backward(UnaryOp::gelu, c, matrix_view(g.pre_act, g.dtype, g.m, g.n, g.ldc), c,
                      stream);
    return;
  }
  if (epilogue_adds_bias(g.epilogue))
    k::binary(BinaryOp::add, c, matrix_view(g.bias, g.dtype, g.m, g.n, 0), c, stream);
  if (!epilogue_applies_gelu(g.epilogue)) return;
  const StridedView pre = matrix_view(g.pre_act, g.dtype, g.m, g.n, g.ldc);
  k::copy(c, pre, stream);
  k::unary(UnaryOp::gelu, pre, c, stream);
}

// q/k/v strides come as (batch, head, row); the flash API takes (batch, row, head).
FlashStrides flash_strides(const int64_t st[3]) {
  return {st[0], st[2], st[1]};
}
// A contiguous [B, heads, N, D] buffer.
FlashStrides contiguous_strides(int64_t heads, int64_t N, int64_t D) {
  return {heads * N * D, D, N * D};
}
bool strides_set(const int64_t st[3]) {
  return st[0] != 0 || st[1] != 0 || st[2] != 0;
}
// An output's flash strides: those of AttentionArgs when set, else contiguous.
FlashStrides output_strides(const int64_t st[3], int64_t heads, int64_t N, int64_t D) {
  return strides_set(st) ? flash_strides(st) : contiguous_strides(heads, N, D);
}

// A [B, heads, N, D] operand with (batch, head, row) strides st (all zero: contiguous).
StridedView bhnd_view(const void* data, DType dt, int64_t B, int64_t heads, int64_t N, int64_t D,
                      const int64_t st[3]) {
  StridedView v;
  v.data = const_cast<void*>(data);
  v.dtype = dt;
  v.ndim = 4;
  const int64_t shape[4] = {B, heads, N, D};
  const int64_t contiguous[4] = {heads * N * D, N * D, D, 1};
  for (int i = 0; i < 4; ++i) {
    v.shape[i] = shape[i];
    v.strides[i] = i < 3 && strides_set(st) ? st[i] : contiguous[i];
  }
  return v;
}

// A strided attention operand staged through a contiguous workspace for the reference kernels,
// which read and write contiguous [B, heads, N, D] only. `in`: the operand is read (copied in).
class Staged {
 public:
  Staged(const void* data, DType dt, int64_t B, int64_t heads, int64_t N, int64_t D,
         const int64_t st[3], bool in)
      : view_(bhnd_view(data, dt, B, heads, N, D, st)) {
    if (!strides_set(st)) {
      ptr_ = const_cast<void*>(data);
      return;
    }
    ws_.emplace(B * heads * N * D * static_cast<int64_t>(dtype_size(dt)),
                Device::cuda(current_device()));
    ptr_ = ws_->as<void>();
    if (in) k::copy(view_, bhnd_view(ptr_, dt, B, heads, N, D, kNone), s());
  }
  void* ptr() const { return ptr_; }
  // Copies the contiguous result to the strided operand (for outputs).
  void write_back() {
    if (!ws_) return;
    const StridedView c = bhnd_view(ptr_, view_.dtype, view_.shape[0], view_.shape[1],
                                    view_.shape[2], view_.shape[3], kNone);
    k::copy(c, view_, s());
  }

 private:
  static constexpr int64_t kNone[3] = {0, 0, 0};
  StridedView view_;
  std::optional<Workspace> ws_;
  void* ptr_ = nullptr;
};

FlashFwdParams flash_params(const AttentionArgs& a, void* o, void* lse) {
  FlashFwdParams p;
  p.dtype = a.dtype == DType::bf16 ? FlashDType::bf16 : FlashDType::f16;
  p.B = static_cast<int>(a.B);
  p.H = static_cast<int>(a.H);
  p.Hkv = static_cast<int>(a.Hkv);
  p.Nq = static_cast<int>(a.Nq);
  p.Nk = static_cast<int>(a.Nk);
  p.D = static_cast<int>(a.D);
  p.softmax_scale = static_cast<float>(a.scale);
  p.causal = a.causal;
  p.window_left = static_cast<int>(a.window_left);
  p.window_right = static_cast<int>(a.window_right);
  p.dropout_p = a.dropout_p;
  p.dropout_seed = a.seed;
  p.dropout_offset = a.offset;
  p.q = a.q;
  p.k = a.k;
  p.v = a.v;
  p.o = o;
  p.lse = static_cast<float*>(lse);
  p.q_strides = flash_strides(a.q_strides);
  p.k_strides = flash_strides(a.k_strides);
  p.v_strides = flash_strides(a.v_strides);
  p.o_strides = output_strides(a.o_strides, a.H, a.Nq, a.D);
  return p;
}

class CudaBackend final : public Backend {
 public:
  void copy_from_host(const void* host, void* dst, int64_t bytes) override {
    if (bytes <= 0) return;
    const auto n = static_cast<size_t>(bytes);
    if (cuda::capturing()) {
      // Recorded from a pinned copy that the graph owns (Note [Graph capture]).
      TG_CUDA_CHECK(cudaMemcpyAsync(dst, keep_host_copy(host, n), n, cudaMemcpyHostToDevice, s()));
      return;
    }
    // Synchronous for the caller: the host buffer may be freed as soon as this returns.
    TG_CUDA_CHECK(cudaMemcpyAsync(dst, host, n, cudaMemcpyHostToDevice, s()));
    TG_CUDA_CHECK(cudaStreamSynchronize(s()));
  }
  void copy_to_host(const void* src, void* host, int64_t bytes) override {
    if (bytes <= 0) return;
    refuse_in_capture("copy_to_host");
    TG_CUDA_CHECK(
        cudaMemcpyAsync(host, src, static_cast<size_t>(bytes), cudaMemcpyDeviceToHost, s()));
    TG_CUDA_CHECK(cudaStreamSynchronize(s()));
  }
  void synchronize() override {
    refuse_in_capture("synchronize");
    TG_CUDA_CHECK(cudaStreamSynchronize(s()));
  }
  std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& work) override {
    return cuda::capture_graph(work);
  }
  int device_count() override { return cuda::device_count(); }
  // The driver's count: it includes other processes' allocations and the CUDA context, which the
  // tracker never sees.
  std::optional<DeviceMemoryInfo> device_memory() const override {
    size_t free_b = 0, total_b = 0;
    TG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
    return DeviceMemoryInfo{static_cast<int64_t>(free_b), static_cast<int64_t>(total_b)};
  }
  void start_profile() override { profiler_.start(); }
  std::vector<ProfileRow> stop_profile() override { return profiler_.stop(); }
  void set_gemm_tuning(bool on) override { cuda::set_gemm_tuning(on); }
  bool gemm_tuning() const override { return cuda::gemm_tuning(); }
  void inject_device_fault() override { k::trap(s()); }
  std::string gemm_tuning_state() const override { return cuda::gemm_tuning_state(); }
  void load_gemm_tuning_state(const std::string& text) override {
    cuda::load_gemm_tuning_state(text);
  }

  void copy(const StridedView& src, const StridedView& dst) override {
    const EntryProfiler::Range range(profiler_, "copy");
    k::copy(src, dst, s());
  }
  void fill(const StridedView& dst, double value) override {
    const EntryProfiler::Range range(profiler_, "fill");
    k::fill(dst, value, s());
  }
  void unary(UnaryOp op, const StridedView& x, const StridedView& y) override {
    const EntryProfiler::Range range(profiler_, "unary", unary_op_name(op));
    k::unary(op, x, y, s());
  }
  void unary_backward(UnaryOp op, const StridedView& gy, const StridedView& saved,
                      const StridedView& gx) override {
    const EntryProfiler::Range range(profiler_, "unary_backward", unary_op_name(op));
    k::unary_backward(op, gy, saved, gx, s());
  }
  void binary(BinaryOp op, const StridedView& a, const StridedView& b,
              const StridedView& out) override {
    const EntryProfiler::Range range(profiler_, "binary", binary_op_name(op));
    k::binary(op, a, b, out, s());
  }
  void scalar(ScalarOp op, const StridedView& a, double v, const StridedView& out) override {
    const EntryProfiler::Range range(profiler_, "scalar", scalar_op_name(op));
    k::scalar(op, a, v, out, s());
  }
  void add_scaled(const StridedView& src, double alpha, const StridedView& dst) override {
    const EntryProfiler::Range range(profiler_, "add_scaled");
    k::add_scaled(src, alpha, dst, s());
  }
  void reduce(ReduceOp op, const StridedView& x, const StridedView& out) override {
    const EntryProfiler::Range range(profiler_, "reduce", op == ReduceOp::sum ? "sum" : "max");
    // Partials for reductions to few outputs (cuda/reduce.h); most reductions need none.
    const auto bytes = static_cast<int64_t>(k::reduce_workspace_bytes(x, out));
    std::optional<Workspace> ws;
    if (bytes > 0) ws.emplace(bytes, Device::cuda(current_device()));
    k::reduce(op, x, out, s(), ws ? ws->as<void>() : nullptr);
  }
  void gemm(const GemmArgs& args) override {
    // Profiled GEMMs are told apart by problem: "m x n x k", operand transposes, batch.
    std::string problem;
    if (profiler_.active()) {
      problem = std::to_string(args.m) + "x" + std::to_string(args.n) + "x" +
                std::to_string(args.k) + (args.trans_a ? " T" : " N") + (args.trans_b ? "T" : "N");
      if (args.batch > 1) problem += " b" + std::to_string(args.batch);
    }
    const EntryProfiler::Range range(profiler_, "gemm",
                                     problem.empty() ? nullptr : problem.c_str());
    TG_ASSERT(epilogue_args_valid(args), "gemm: an epilogue without its operands");
    if (cuda::gemm(args, s())) return;
    if (args.epilogue == GemmEpilogue::bias_grad) {
      // The bias gradient as a column sum of op(B) [k, n] (a [n, k] row-major matrix if
      // transposed).
      StridedView b = matrix_view(args.b, args.dtype, args.k, args.n, args.ldb);
      if (args.trans_b) {
        b.strides[0] = 1;
        b.strides[1] = args.ldb;
      }
      return reduce(ReduceOp::sum, b, matrix_view(args.bias_grad, args.dtype, 1, args.n, args.n));
    }
    apply_epilogue(args, s());
    if (args.epilogue == GemmEpilogue::gelu_grad && args.bias_grad != nullptr) {
      reduce(ReduceOp::sum, matrix_view(args.c, args.dtype, args.m, args.n, args.ldc),
             matrix_view(args.bias_grad, args.dtype, 1, args.n, args.n));
    }
  }
  void softmax_forward(DType dt, const void* x, void* y, int64_t outer, int64_t n, int64_t inner,
                       bool log) override {
    const EntryProfiler::Range range(profiler_, "softmax_forward");
    k::softmax_forward(dt, x, y, outer, n, inner, log, s());
  }
  void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t outer, int64_t n,
                        int64_t inner, bool log) override {
    const EntryProfiler::Range range(profiler_, "softmax_backward");
    k::softmax_backward(dt, y, gy, gx, outer, n, inner, log, s());
  }
  void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y, void* mean,
                         void* rstd, int64_t rows, int64_t C, double eps) override {
    const EntryProfiler::Range range(profiler_, "layernorm_forward");
    k::layernorm_forward(dt, x, w, b, y, mean, rstd, rows, C, eps, s());
  }
  void layernorm_backward(DType dt, const void* gy, const LayerNormSaved& saved, const void* w,
                          void* gx, void* gw, void* gb, int64_t rows, int64_t C, const void* gx_add,
                          void* gx_sum) override {
    const EntryProfiler::Range range(profiler_, "layernorm_backward");
    k::layernorm_backward(dt, gy, saved, w, gx, gw, gb, rows, C, s(), gx_add, gx_sum);
  }
  void gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                           int64_t rows, int64_t M) override {
    if (!k::gelu_backward_fused_supported(dt, pre, grad, h, rows, M))
      return Backend::gelu_backward_fused(dt, pre, grad, h, grad_sum, rows, M);
    const EntryProfiler::Range range(profiler_, "gelu_backward_fused");
    k::gelu_backward_fused(dt, pre, grad, h, grad_sum, rows, M, s());
  }
  void embedding_forward(DType dt, const void* weight, DType idx_dt, const void* idx, void* out,
                         int64_t n, int64_t C) override {
    const EntryProfiler::Range range(profiler_, "embedding_forward");
    k::embedding_forward(dt, weight, idx_dt, idx, out, n, C, s());
  }
  void embedding_backward(DType dt, const void* gout, DType idx_dt, const void* idx, void* gweight,
                          int64_t n, int64_t C, int64_t V, bool accumulate) override {
    const EntryProfiler::Range range(profiler_, "embedding_backward");
    k::embedding_backward(dt, gout, idx_dt, idx, gweight, n, C, V, accumulate, s());
  }
  int64_t find_out_of_range(DType idx_dt, const void* idx, int64_t n, int64_t lo, int64_t hi,
                            int64_t ignore, int64_t* bad_value) override {
    // A capture cannot wait for the answer: whoever fills the graph's inputs checks them
    // (Backend::capture_graph).
    if (cuda::capturing()) return -1;
    const EntryProfiler::Range range(profiler_, "find_out_of_range");
    return k::find_out_of_range(idx_dt, idx, n, lo, hi, ignore, bad_value, s());
  }
  void cross_entropy_forward(DType dt, const void* logits, DType t_dt, const void* targets,
                             void* losses, void* lse, int64_t rows, int64_t V, int64_t ld,
                             int64_t ignore_index) override {
    const EntryProfiler::Range range(profiler_, "cross_entropy_forward");
    k::cross_entropy_forward(dt, logits, t_dt, targets, losses, lse, rows, V, ld, ignore_index,
                             s());
  }
  void cross_entropy_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                              const void* lse, const void* gloss, double scale, void* glogits,
                              int64_t rows, int64_t V, int64_t ld, int64_t ignore_index) override {
    const EntryProfiler::Range range(profiler_, "cross_entropy_backward");
    k::cross_entropy_backward(dt, logits, t_dt, targets, lse, gloss, scale, glogits, rows, V, ld,
                              ignore_index, s());
  }
  void cross_entropy_forward_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                                      void* losses, void* lse, const void* gloss, double scale,
                                      void* glogits, int64_t rows, int64_t V, int64_t ld,
                                      int64_t ignore_index) override {
    const EntryProfiler::Range range(profiler_, "cross_entropy_forward_backward");
    k::cross_entropy_forward_backward(dt, logits, t_dt, targets, losses, lse, gloss, scale, glogits,
                                      rows, V, ld, ignore_index, s());
  }

  void attention_flash_forward(const AttentionArgs& a, void* o, void* lse) override {
    const EntryProfiler::Range range(profiler_, "attention_flash_forward");
    if (flash_applies(a)) {
      const FlashFwdParams p = flash_params(a, o, lse);
      if (flash_attention_check(p).empty()) {
        TG_CUDA_CHECK(flash_attention_forward(p, s()));
        return;
      }
    }
    Staged so(o, a.dtype, a.B, a.H, a.Nq, a.D, a.o_strides, false);
    k::attention_reference_forward(a, so.ptr(), lse, s());
    so.write_back();
  }
  bool attention_strided_outputs(const AttentionArgs& a) override { return flash_applies(a); }
  void attention_flash_backward(const AttentionArgs& a, const void* o, const void* lse,
                                const void* dout, const void* glse, void* dq, void* dk,
                                void* dv) override {
    const EntryProfiler::Range range(profiler_, "attention_flash_backward");
    if (flash_applies(a) && glse == nullptr) {
      FlashBwdParams p;
      p.fwd = flash_params(a, const_cast<void*>(o), const_cast<void*>(lse));
      p.dout = dout;
      p.dq = dq;
      p.dk = dk;
      p.dv = dv;
      p.dout_strides = output_strides(a.dout_strides, a.H, a.Nq, a.D);
      p.dq_strides = output_strides(a.dq_strides, a.H, a.Nq, a.D);
      p.dk_strides = output_strides(a.dk_strides, a.Hkv, a.Nk, a.D);
      p.dv_strides = output_strides(a.dv_strides, a.Hkv, a.Nk, a.D);
      // The workspace is part of what the check validates, so it is taken first.
      Workspace ws(static_cast<int64_t>(flash_attention_backward_workspace_bytes(p)),
                   Device::cuda(current_device()));
      p.workspace = ws.as<void>();
      if (flash_attention_check(p).empty()) {
        TG_CUDA_CHECK(flash_attention_backward(p, s()));
        return;
      }
    }
    const int64_t acc_bytes = a.dtype == DType::f64 ? 8 : 4;
    Workspace ws(a.B * a.H * a.Nq * acc_bytes, Device::cuda(current_device()));
    const DType dt = a.dtype;
    Staged so(o, dt, a.B, a.H, a.Nq, a.D, a.o_strides, true);
    Staged sdo(dout, dt, a.B, a.H, a.Nq, a.D, a.dout_strides, true);
    Staged sdq(dq, dt, a.B, a.H, a.Nq, a.D, a.dq_strides, false);
    Staged sdk(dk, dt, a.B, a.Hkv, a.Nk, a.D, a.dk_strides, false);
    Staged sdv(dv, dt, a.B, a.Hkv, a.Nk, a.D, a.dv_strides, false);
    k::attention_reference_backward(a, so.ptr(), lse, sdo.ptr(), glse, sdq.ptr(), sdk.ptr(),
                                    sdv.ptr(), ws.as<void>(), s());
    sdq.write_back();
    sdk.write_back();
    sdv.write_back();
  }

  void adamw_update(DType dt, void* param, float* master, const void* grad, void* m, void* v,
                    int64_t n, const AdamWStep& st) override {
    const EntryProfiler::Range range(profiler_, "adamw_update");
    k::adamw_update(dt, param, master, grad, m, v, n, st, s());
  }
  void adamw_update_multi(DType dt, std::span<const AdamWTensor> ts) override {
    const EntryProfiler::Range range(profiler_, "adamw_update_multi");
    k::adamw_update_multi(dt, ts, s());
  }
  void sgd_update(DType dt, void* param, float* master, const void* grad, void* momentum_buf,
                  int64_t n, const SgdStep& st) override {
    const EntryProfiler::Range range(profiler_, "sgd_update");
    k::sgd_update(dt, param, master, grad, momentum_buf, n, st, s());
  }
  double sum_squares(DType dt, const void* x, int64_t n) override {
    const EntryProfiler::Range range(profiler_, "sum_squares");
    return k::sum_squares(dt, x, n, s());
  }
  double sum_squares_list(std::span<const SumSquaresInput> xs) override {
    const EntryProfiler::Range range(profiler_, "sum_squares_list");
    Workspace ws(static_cast<int64_t>(k::sum_squares_list_workspace_bytes(xs)),
                 Device::cuda(current_device()));
    return k::sum_squares_list(xs, s(), ws.as<void>());
  }
  void dropout(DType dt, const void* x, void* y, int64_t n, double p, uint64_t seed,
               uint64_t offset) override {
    const EntryProfiler::Range range(profiler_, "dropout");
    k::dropout(dt, x, y, n, p, seed, offset, s());
  }
  void fill_uniform(DType dt, void* dst, int64_t n, double lo, double hi, uint64_t seed,
                    uint64_t offset) override {
    const EntryProfiler::Range range(profiler_, "fill_uniform");
    k::fill_uniform(dt, dst, n, lo, hi, seed, offset, s());
  }
  void fill_normal(DType dt, void* dst, int64_t n, double mean, double std, uint64_t seed,
                   uint64_t offset) override {
    const EntryProfiler::Range range(profiler_, "fill_normal");
    k::fill_normal(dt, dst, n, mean, std, seed, offset, s());
  }

 private:
  EntryProfiler profiler_;
};

// Registered before main(); never destroyed, since tensors may be freed during static destruction.
const bool g_registered = [] {
  register_backend(DeviceType::cuda, new CudaBackend());
  return true;
}();

}  // namespace

}  // namespace tilegrad::cuda

extern "C" void tilegrad_cuda_backend_anchor() {}
