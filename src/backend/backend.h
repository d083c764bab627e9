// The backend interface: everything a device must implement for the ops to run on it.
//
// ops/ checks shapes and dtypes, allocates outputs and calls these entries through backend(device);
// the CPU backend forwards them to kernels/cpu/, a CUDA backend (registered with register_backend
// when built) to kernels/cuda/. Entries take StridedViews or raw pointers and sizes — never Tensors
// — so kernels can be tested and benchmarked alone. Unless an entry says otherwise, outputs are
// contiguous and inputs are contiguous or already broadcast to the output's shape (stride 0).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "backend/profile.h"
#include "core/device.h"
#include "core/dtype.h"
#include "core/error.h"
#include "kernels/layernorm_saved.h"
#include "kernels/optim_step.h"
#include "kernels/strided.h"

namespace tilegrad {

enum class UnaryOp : uint8_t { neg, exp, log, tanh, relu, gelu, sigmoid, sqrt };
// a OP b, elementwise. eq yields 1 where a == b, else 0 (in the operands' dtype).
enum class BinaryOp : uint8_t { add, sub, mul, div, eq };
// a OP s with a scalar s: add a+s, mul a*s, rsub s-a, rdiv s/a, pow a^s.
enum class ScalarOp : uint8_t { add, mul, rsub, rdiv, pow };
enum class ReduceOp : uint8_t { sum, max };

const char* unary_op_name(UnaryOp op);
const char* binary_op_name(BinaryOp op);
const char* scalar_op_name(ScalarOp op);

// The tensor that an elementwise op's backward reads: its input x or its output y.
enum class SavedOperand : uint8_t { input, output };
SavedOperand unary_backward_reads(UnaryOp op);

// What a GEMM does besides the product, in the accumulation type (float for the 16-bit types):
// `bias` adds bias[j] to column j of the result; `bias_gelu` then also stores that sum to `pre_act`
// and GELU of it (the tanh approximation, UnaryOp::gelu's function) to C; `gelu` does the same
// without a bias (a linear layer without one, as nanoGPT's bias = False); `bias_grad` writes the
// column sums of op(B) over k, Σ_k op(B)[k, j], to bias_grad[j] (a linear layer's bias gradient,
// when op(B) is the output gradient of its weight-gradient GEMM); `gelu_grad` multiplies the
// product by GELU'(pre_act) (beta must be 0: the input gradient of a GELU layer, from its output
// gradient's GEMM and the pre-activation bias_gelu stored) and, when bias_grad is set, writes the
// column sums of that result to bias_grad[j] (the GELU layer's bias gradient). On the GPU these are
// cuBLASLt epilogues, so a linear layer's bias and activation cost no extra pass over the output,
// and their gradients none over the output gradient.
// (gelu is last so that the values of the others, which GEMM tuning states record, stay as they
// were.)
enum class GemmEpilogue : uint8_t { none, bias, bias_gelu, bias_grad, gelu_grad, gelu };

// What the forward epilogues do: add `bias` (bias, bias_gelu), then apply GELU storing the sum to
// pre_act (bias_gelu, gelu). Each device's implementation asks these rather than list the values.
inline bool epilogue_adds_bias(GemmEpilogue e) {
  return e == GemmEpilogue::bias || e == GemmEpilogue::bias_gelu;
}
inline bool epilogue_applies_gelu(GemmEpilogue e) {
  return e == GemmEpilogue::bias_gelu || e == GemmEpilogue::gelu;
}

// C = epilogue(alpha * op(A) · op(B) + beta * C), row-major, for `batch` matrices spaced by
// stride_* elements. op(A) is [m, k] and op(B) is [k, n]; lda/ldb/ldc are the row strides of A, B,
// C as stored.
struct GemmArgs {
  DType dtype = DType::f32;
  bool trans_a = false, trans_b = false;
  int64_t m = 0, n = 0, k = 0;
  const void* a = nullptr;
  int64_t lda = 0;
  const void* b = nullptr;
  int64_t ldb = 0;
  void* c = nullptr;
  int64_t ldc = 0;
  int64_t batch = 1, stride_a = 0, stride_b = 0, stride_c = 0;
  double alpha = 1.0, beta = 0.0;
  // Epilogues need batch == 1. bias: [n] in C's dtype; pre_act: [m, n] with row stride ldc, C's
  // dtype, for bias_gelu, gelu and gelu_grad; bias_grad: [n] in C's dtype, for bias_grad and
  // (optional) gelu_grad.
  GemmEpilogue epilogue = GemmEpilogue::none;
  const void* bias = nullptr;
  void* pre_act = nullptr;
  void* bias_grad = nullptr;
  // The matrix that beta scales, when it is not C itself: C = epilogue(alpha * op(A) · op(B) +
  // beta * c_in), c_in [m, n] with row stride ldc in C's dtype (batch 1; it may be C). A residual
  // connection's add then costs no pass of its own (y = x · w + b + r).
  const void* c_in = nullptr;
};

// Whether g's epilogue has what it needs (batch 1 and its pointers).
inline bool epilogue_args_valid(const GemmArgs& g) {
  if (g.c_in != nullptr && g.batch != 1) return false;
  switch (g.epilogue) {
    case GemmEpilogue::none:
      return true;
    case GemmEpilogue::bias:
      return g.batch == 1 && g.bias != nullptr;
    case GemmEpilogue::bias_gelu:
      return g.batch == 1 && g.bias != nullptr && (g.pre_act != nullptr || g.m == 0);
    case GemmEpilogue::gelu:
      return g.batch == 1 && (g.pre_act != nullptr || g.m == 0);
    case GemmEpilogue::bias_grad:
      return g.batch == 1 && g.bias_grad != nullptr;
    case GemmEpilogue::gelu_grad:
      return g.batch == 1 && (g.pre_act != nullptr || g.m == 0) && g.beta == 0.0;
  }
  return false;
}

// One unbatched GEMM's arguments in one expression: C = alpha · op(A) · op(B) + beta · C.
inline GemmArgs gemm_args(DType dt, bool ta, bool tb, int64_t m, int64_t n, int64_t k, double alpha,
                          const void* a, int64_t lda, const void* b, int64_t ldb, double beta,
                          void* c, int64_t ldc) {
  GemmArgs g;
  g.dtype = dt;
  g.trans_a = ta;
  g.trans_b = tb;
  g.m = m;
  g.n = n;
  g.k = k;
  g.a = a;
  g.lda = lda;
  g.b = b;
  g.ldb = ldb;
  g.c = c;
  g.ldc = ldc;
  g.alpha = alpha;
  g.beta = beta;
  return g;
}

// Scaled dot-product attention (ops/attention.h states the conventions: masks, dropout numbering,
// logsumexp). q is [B, H, Nq, D]; k and v are [B, Hkv, Nk, D] with Hkv dividing H (query head h
// reads key/value head h / (H / Hkv)). Strides are in elements for the (batch, head, row) axes; the
// D axis is contiguous. o, dout and dq are [B, H, Nq, D], dk and dv [B, Hkv, Nk, D]: contiguous
// unless their strides below are set (a backend that reports attention_strided_outputs for the
// problem honours them); lse [B, H, Nq] is contiguous, in the accumulation type (float64 for f64,
// else float32).
struct AttentionArgs {
  DType dtype = DType::f32;
  int64_t B = 0, H = 0, Hkv = 0, Nq = 0, Nk = 0, D = 0;
  const void* q = nullptr;
  const void* k = nullptr;
  const void* v = nullptr;
  int64_t q_strides[3] = {}, k_strides[3] = {}, v_strides[3] = {};
  // (batch, head, row) strides of the outputs and gradients; all zero = contiguous. Other strides
  // let attention write o into a [B, Nq, H, D] buffer (the layout the output projection reads) and
  // dq, dk, dv into the packed [B, N, 3, H, D] gradient of a fused q/k/v projection.
  int64_t o_strides[3] = {}, dout_strides[3] = {}, dq_strides[3] = {}, dk_strides[3] = {},
          dv_strides[3] = {};
  double scale = 1.0;
  // Query i may see key j iff the bottom-right-aligned band and the block layout allow it:
  // j <= i + (Nk - Nq) + right (right = 0 when causal) and j >= i + (Nk - Nq) - left; -1 = no
  // limit on that side.
  bool causal = false;
  int64_t window_left = -1, window_right = -1;
  // Block-sparse layout, row-major [ceil(Nq / layout_block_q), ceil(Nk / layout_block_k)], nonzero
  // = visible; null = dense.
  const uint8_t* layout = nullptr;
  int64_t layout_block_q = 0, layout_block_k = 0;
  double dropout_p = 0.0;
  uint64_t seed = 0, offset = 0;
  int64_t block_r = 64, block_c = 64;          // flash tiles: B_r query rows by B_c key rows
  int64_t bwd_block_r = 64, bwd_block_c = 64;  // the flash backward's tiles
};

// A device's memory as its driver counts it, in bytes: what is free now (to any process) and the
// device's capacity.
struct DeviceMemoryInfo {
  int64_t free = 0;
  int64_t total = 0;
};

// Device work recorded once and replayed without the host code that queued it (CUDA graphs:
// Backend::capture_graph). A replay runs exactly the recorded operations, on the same buffers and
// with the same arguments; what the work reads from device memory may change between replays.
class DeviceGraph {
 public:
  virtual ~DeviceGraph() = default;
  // Queues the recorded work on the calling thread's current stream (asynchronous to the host).
  virtual void replay() = 0;
  // How many operations (kernels, copies, memsets) were recorded.
  virtual int64_t operations() const = 0;
  // Runs `work` now, eagerly, with its device memory taken from the graph's pool where the device
  // has one (CUDA: the capture stream's, ordered after the work queued before and before the work
  // queued after), so that work between replays reuses the recording's temporaries instead of
  // holding memory of its own. Whatever `work` allocates must be freed before the next replay.
  virtual void run_in_pool(const std::function<void()>& work) { work(); }
};

class Backend {
 public:
  virtual ~Backend() = default;

  // --- moving bytes between this device and the host ---
  // Both copy `bytes` contiguous bytes and return when the host side may be used (the host buffer
  // is read or written completely); on the CPU they are memcpy.
  virtual void copy_from_host(const void* host, void* dst, int64_t bytes) = 0;
  virtual void copy_to_host(const void* src, void* host, int64_t bytes) = 0;
  // Waits for all work queued on the device by this thread (a no-op on the CPU).
  virtual void synchronize() {}
  // How many devices of this type the machine has (the CPU counts as one).
  virtual int device_count() { return 1; }
  // Optional: free and total bytes of the calling thread's current device of this type (the one
  // the entries and the device's allocator use), so that callers above ops/ can compare a memory
  // prediction with what the device can hold without touching the device's runtime. nullopt where
  // nothing bounds a run but the host (the CPU); throws Error when the device cannot be queried.
  virtual std::optional<DeviceMemoryInfo> device_memory() const { return std::nullopt; }
  // Device time per entry between start_profile and stop_profile (backend/profile.h); a backend
  // that cannot time its entries returns no rows.
  virtual void start_profile() {}
  virtual std::vector<ProfileRow> stop_profile() { return {}; }
  // Optional: whether a GEMM problem's first call times the candidate algorithms the device's
  // library offers and keeps the fastest (CUDA: cuda/gemm.h, Note [GEMM tuning]). Faster GEMMs, at
  // the price of results that may differ in their last bits between processes. A backend with one
  // algorithm per problem ignores it.
  virtual void set_gemm_tuning(bool /*on*/) {}
  virtual bool gemm_tuning() const { return false; }
  // The tuning choices made so far as text, and loading such text into another process so that it
  // takes them without timing (cuda/gemm.h: a resumed run then computes with the algorithms of the
  // run it continues). Empty, and ignored, where there is no tuning.
  virtual std::string gemm_tuning_state() const { return {}; }
  virtual void load_gemm_tuning_state(const std::string& /*text*/) {}
  // Testing only: makes the device fail as a faulting kernel would (CUDA: a trapping kernel, whose
  // sticky error every later call reports). A device that cannot fail so throws Error at once.
  virtual void inject_device_fault() {
    TG_CHECK(false, "injected device fault (this device has no way to fail for real)");
  }
  // Optional: runs `work` and returns, instead of its effects, a recording of the device work it
  // queued (CUDA: stream capture, cuda/graph.h). Nothing runs until the first replay. Inside the
  // capture the host cannot read the device: copy_to_host and synchronize throw, index checks
  // (find_out_of_range) report nothing (whoever fills the graph's inputs checks them), and host
  // data copied in is copied once, at the capture, and replayed as it was then. Memory allocated
  // inside comes from a pool of the capture's own; blocks still referenced when it ends must stay
  // referenced while the graph replays. Throws Error when the work does something a recording
  // cannot hold; the device is then as before the call. Devices without graphs: nullptr.
  virtual std::unique_ptr<DeviceGraph> capture_graph(const std::function<void()>& /*work*/) {
    return nullptr;
  }

  // --- elementwise: any layout for inputs and for dst/out ---
  virtual void copy(const StridedView& src, const StridedView& dst) = 0;  // converts dtype
  virtual void fill(const StridedView& dst, double value) = 0;
  virtual void unary(UnaryOp op, const StridedView& x, const StridedView& y) = 0;
  // gx = gy * f'(.), where `saved` is x or y as unary_backward_reads(op) says.
  virtual void unary_backward(UnaryOp op, const StridedView& gy, const StridedView& saved,
                              const StridedView& gx) = 0;
  virtual void binary(BinaryOp op, const StridedView& a, const StridedView& b,
                      const StridedView& out) = 0;
  virtual void scalar(ScalarOp op, const StridedView& a, double s, const StridedView& out) = 0;
  // dst += alpha * src (in place; src broadcast to dst's shape).
  virtual void add_scaled(const StridedView& src, double alpha, const StridedView& dst) = 0;

  // --- reductions: out has x's rank with size 1 on the reduced dimensions, and is contiguous ---
  virtual void reduce(ReduceOp op, const StridedView& x, const StridedView& out) = 0;

  // --- matrix multiply ---
  virtual void gemm(const GemmArgs& args) = 0;

  // --- softmax along the middle axis of a contiguous [outer, n, inner] block ---
  virtual void softmax_forward(DType dt, const void* x, void* y, int64_t outer, int64_t n,
                               int64_t inner, bool log) = 0;
  // gx from y (the forward output) and gy.
  virtual void softmax_backward(DType dt, const void* y, const void* gy, void* gx, int64_t outer,
                                int64_t n, int64_t inner, bool log) = 0;

  // --- layer norm over the last dimension C of `rows` contiguous rows ---
  // mean and rstd are [rows] in the accumulation type (float64 for f64 inputs, else float32).
  // w and b may be null (no affine part).
  virtual void layernorm_forward(DType dt, const void* x, const void* w, const void* b, void* y,
                                 void* mean, void* rstd, int64_t rows, int64_t C, double eps) = 0;
  // Writes (not accumulates) gx, gw, gb; a null output is not computed. `saved` is what the forward
  // kept: its input with mean and rstd, or its output with rstd (kernels/layernorm_saved.h). gx_add
  // (may be null; [rows, C], not overlapping gx) is a gradient that gx adds to: gx = gx_add + the
  // input gradient, with the bits of that sum as a separate add (the input gradient rounded to the
  // dtype first), so that the gradient already waiting for the input costs no pass of its own.
  // gx_sum (may be null; [C]; needs gx) gets gx's column sums, the values written summed over the
  // rows in the accumulation type and rounded once (autograd/grad_col_sums.h).
  virtual void layernorm_backward(DType dt, const void* gy, const LayerNormSaved& saved,
                                  const void* w, void* gx, void* gw, void* gb, int64_t rows,
                                  int64_t C, const void* gx_add, void* gx_sum) = 0;

  // --- the MLP's backward below its GELU (ops/mlp.cpp) ---
  // pre and grad are [rows, M], contiguous: the pre-activation, and h's gradient (g · w2ᵀ). grad
  // becomes pre's gradient grad · GELU'(pre), in place; h (may be null; [rows, M]; may be pre
  // itself, which it then overwrites) gets GELU(pre), UnaryOp::gelu's function; grad_sum (may be
  // null; [M]) gets the column sums of the gradient written, summed over the rows in at least
  // float32 and rounded once (the bias gradient of the layer before the GELU). The default runs the
  // entries it stands for (unary_backward, unary, reduce); the CPU's and the GPU's do all three in
  // one pass over pre and grad.
  virtual void gelu_backward_fused(DType dt, const void* pre, void* grad, void* h, void* grad_sum,
                                   int64_t rows, int64_t M);

  // --- embedding: out[i, :] = weight[idx[i], :] for n contiguous indices ---
  virtual void embedding_forward(DType dt, const void* weight, DType idx_dt, const void* idx,
                                 void* out, int64_t n, int64_t C) = 0;
  // gweight [V, C] is overwritten with the sum of the rows of gout for each index,
  // deterministically. With `accumulate`, gweight already holds a gradient: each row that some
  // index hits becomes T(A(gweight) + A(T(sum))), the bits of adding the overwritten result to it,
  // and the other rows are left as they are.
  virtual void embedding_backward(DType dt, const void* gout, DType idx_dt, const void* idx,
                                  void* gweight, int64_t n, int64_t C, int64_t V,
                                  bool accumulate) = 0;
  // The first position i in idx[0, n) with idx[i] outside [lo, hi) and idx[i] != ignore, or -1.
  // Its value goes to *bad_value.
  virtual int64_t find_out_of_range(DType idx_dt, const void* idx, int64_t n, int64_t lo,
                                    int64_t hi, int64_t ignore, int64_t* bad_value) = 0;

  // --- cross-entropy on logits [rows, V] with integer targets [rows] ---
  // Rows of logits (and of glogits) are ld >= V elements apart: a head whose output rows are padded
  // to an aligned stride passes its logits without a copy. losses[r] = lse[r] - logits[r, t[r]],
  // or 0 where t[r] == ignore_index. losses and lse are in the accumulation type (float64 for f64
  // logits, else float32).
  virtual void cross_entropy_forward(DType dt, const void* logits, DType t_dt, const void* targets,
                                     void* losses, void* lse, int64_t rows, int64_t V, int64_t ld,
                                     int64_t ignore_index) = 0;
  // glogits[r, j] = (softmax[r, j] - [j == t[r]]) * gloss * scale, where gloss is the single
  // upstream gradient (accumulation type, on the device) and rows with ignored targets get 0.
  // glogits may be logits (in place).
  virtual void cross_entropy_backward(DType dt, const void* logits, DType t_dt, const void* targets,
                                      const void* lse, const void* gloss, double scale,
                                      void* glogits, int64_t rows, int64_t V, int64_t ld,
                                      int64_t ignore_index) = 0;
  // cross_entropy_forward and then cross_entropy_backward on the same rows, the backward from the
  // forward's lse (glogits may be logits). A backend may do both in one pass over the logits (the
  // CUDA one does when a row fits in a block's shared memory, summing in its own order); this
  // default runs the two.
  virtual void cross_entropy_forward_backward(DType dt, const void* logits, DType t_dt,
                                              const void* targets, void* losses, void* lse,
                                              const void* gloss, double scale, void* glogits,
                                              int64_t rows, int64_t V, int64_t ld,
                                              int64_t ignore_index) {
    cross_entropy_forward(dt, logits, t_dt, targets, losses, lse, rows, V, ld, ignore_index);
    cross_entropy_backward(dt, logits, t_dt, targets, lse, gloss, scale, glogits, rows, V, ld,
                           ignore_index);
  }

  // --- attention (AttentionArgs above) ---
  // Optional: a device without them throws Error naming the device when attention is called.
  // Algorithm 0, one head after another. s is an [Nq, Nk] scratch matrix in the input dtype reused
  // by every head; p [B, H, Nq, Nk] receives the softmax that the backward reads. The caller
  // allocates both, so the N x N buffers go through the tracker as the op's own.
  virtual void attention_standard_forward(const AttentionArgs& args, void* s, void* p, void* o,
                                          void* lse);
  // dq, dk, dv from the saved p; ds is an [Nq, Nk] scratch matrix in the input dtype; glse (the
  // logsumexp's gradient, accumulation type) may be null.
  virtual void attention_standard_backward(const AttentionArgs& args, const void* p,
                                           const void* dout, const void* glse, void* ds, void* dq,
                                           void* dk, void* dv);
  // Whether the flash entries below honour the output strides of AttentionArgs for this problem
  // (else the op passes contiguous outputs).
  virtual bool attention_strided_outputs(const AttentionArgs& /*args*/) { return false; }
  // FlashAttention: tiles of block_r x block_c, online softmax; only o and lse are written.
  virtual void attention_flash_forward(const AttentionArgs& args, void* o, void* lse);
  // Recomputes the tiles of p from q, k, v and lse; glse may be null.
  virtual void attention_flash_backward(const AttentionArgs& args, const void* o, const void* lse,
                                        const void* dout, const void* glse, void* dq, void* dk,
                                        void* dv);

  // --- optimizers (kernels/optim_step.h): one fused pass per tensor, all operands contiguous ---
  // param and grad have dtype dt; master is float32 for bf16/f16 parameters, else null; m, v and
  // momentum_buf are in the accumulation type (momentum_buf may be null when momentum is 0).
  virtual void adamw_update(DType dt, void* param, float* master, const void* grad, void* m,
                            void* v, int64_t n, const AdamWStep& s) = 0;
  // adamw_update on every tensor of `ts` (all of dtype dt), each with its own step: one launch for
  // many tensors where the device can (CUDA's multi-tensor kernel), the same results as the loop.
  virtual void adamw_update_multi(DType dt, std::span<const AdamWTensor> ts) {
    for (const AdamWTensor& t : ts)
      adamw_update(dt, t.param, t.master, t.grad, t.m, t.v, t.n, t.step);
  }
  virtual void sgd_update(DType dt, void* param, float* master, const void* grad,
                          void* momentum_buf, int64_t n, const SgdStep& s) = 0;
  // Σ x[i]² in float64, the same bits on every call for the same input; inf or NaN when some
  // element is.
  virtual double sum_squares(DType dt, const void* x, int64_t n) = 0;
  // Σ of sum_squares over the inputs, added in input order (the same bits as that loop), in one
  // round trip to the device.
  virtual double sum_squares_list(std::span<const SumSquaresInput> xs) {
    double total = 0.0;
    for (const SumSquaresInput& x : xs) total += sum_squares(x.dtype, x.x, x.n);
    return total;
  }

  // --- counter-based randomness (core/rng.h); element i uses draw offset + i ---
  // y[i] = x[i] * keep[i] / (1 - p), keep[i] = uniform(draw(seed, offset + i)) >= p; contiguous.
  virtual void dropout(DType dt, const void* x, void* y, int64_t n, double p, uint64_t seed,
                       uint64_t offset) = 0;
  virtual void fill_uniform(DType dt, void* dst, int64_t n, double lo, double hi, uint64_t seed,
                            uint64_t offset) = 0;
  // Element i draws offset + 2i and offset + 2i + 1 (Box-Muller).
  virtual void fill_normal(DType dt, void* dst, int64_t n, double mean, double std, uint64_t seed,
                           uint64_t offset) = 0;
};

// The backend of a device; throws Error if this build has none for it.
Backend& backend(Device device);
// True when this build has a backend for the type and the machine has at least one such device.
bool device_available(DeviceType type);
void register_backend(DeviceType type, Backend* backend);

}  // namespace tilegrad
