// FlashAttention on CUDA GPUs: the plain C++ interface of the forward and backward kernels.
//
// Pointers, sizes and strides in; no engine types, so the kernels can be tested and timed alone and
// the engine's attention op (ops/) calls them for cuda tensors. The interface is the same for every
// architecture: flash_api.cu checks the problem and picks a kernel: the sm_80 path in
// flash_{fwd,bwd}_sm80.cu runs on every GPU from Ampere on; on Hopper (sm_90) the forward runs
// flash_fwd_sm90.cu (wgmma, TMA, warp specialisation) and the backward flash_bwd_sm90.cu's main
// kernel (wgmma) instead, at D = 256 flash_bwd_sm90_wide.cu's (the deterministic backward there
// runs the sm_80 kernel).
//
// Layout: q, o, dq, do are (B, Nq, H, D) and k, v, dk, dv are (B, Nk, Hkv, D) in the sense that an
// element's address is base + b * batch_stride + n * row_stride + h * head_stride + d; the strides
// are in elements and the last dimension is contiguous. Both (B, N, H, D) and (B, H, N, D) tensors
// fit, through their strides. lse, the logsumexp, is float32 (B, H, Nq), contiguous
// ((H, total_q) for packed batches).
//
// Semantics: O = dropout(softmax(scale * Q Kᵀ + mask)) V with float32 accumulation, lse = log Σ_j
// exp(scale * q·k_j) in natural log over the visible keys (the undropped scores). Masks are aligned
// to the bottom-right corner, as in the CPU op (ops/attention.h): with shift = Nk - Nq, query i
// sees key j iff i + shift - window_left <= j <= i + shift + right, where right = window_right, or
// min(window_right, 0) when causal (0 when causal without a right window), and -1 means no limit
// on that side. Key blocks that no query of a block sees are skipped. A query that sees no key
// (possible when Nq > Nk) gets O = 0 and lse = -inf (log 0), as in the CPU op, and no gradient.
// Query head h reads key/value head h / (H / Hkv) (GQA; MQA when Hkv = 1). D = 64, 128 or 256.
//
// Variable-length packed batches (cu_seqlens_q set, as FlashAttention's varlen API): the B
// sequences lie one after another along the row dimension, sequence b owning rows cu_seqlens_q[b]
// .. cu_seqlens_q[b + 1] - 1 of q, o, dout, dq (total_q rows) and cu_seqlens_k[b] ..
// cu_seqlens_k[b + 1] - 1 of k, v, dk, dv (total_k rows); the batch strides are unused. Nq and Nk
// are then the largest lengths (the grid is sized by them; blocks past a sequence's end return at
// once), and every mask above applies per sequence, with that sequence's lengths. lse is (H,
// total_q). The offsets are int32 device arrays of B + 1 entries, 0 = cu[0] <= cu[1] <= ... <=
// cu[B] = total, no length above Nq (Nk); the host cannot read them, so the caller guarantees this.
// Varlen problems run the sm_80 kernels (also on Hopper) and take no dropout.
//
// Dropout (dropout_p > 0) uses the CPU op's counters, so that both draw the same mask: element
// (b, h, i, j) of the probability matrix takes Philox4x32-10 draw number
//   dropout_offset + ((b · H + h) · Nq + i) · Nk + j   of the stream dropout_seed (core/rng.h)
// and is kept iff the draw's top 24 bits are >= ceil(dropout_p · 2^24); kept values are scaled by
// 1 / (1 - dropout_p). The backward regenerates the mask from the same numbers.
#pragma once

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <string>

namespace tilegrad::cuda {

enum class FlashDType : uint8_t { bf16, f16 };

// Strides of one (B, N, heads, D) operand, in elements; the D dimension has stride 1.
struct FlashStrides {
  int64_t batch = 0;
  int64_t row = 0;
  int64_t head = 0;
};

struct FlashFwdParams {
  FlashDType dtype = FlashDType::bf16;
  int B = 0, H = 0, Hkv = 0, Nq = 0, Nk = 0, D = 0;
  float softmax_scale = 0.0f;  // usually 1 / sqrt(D)
  bool causal = false;
  int window_left = -1;  // sliding window (see above); -1 = no limit on that side
  int window_right = -1;
  double dropout_p = 0.0;  // in [0, 1]; 0 = no dropout
  uint64_t dropout_seed = 0;
  uint64_t dropout_offset = 0;  // the draw number of element (0, 0, 0, 0)

  // Variable-length packed batches (see above): null for the padded (B, N, H, D) layout.
  const int* cu_seqlens_q = nullptr;  // device, B + 1 entries
  const int* cu_seqlens_k = nullptr;  // device, B + 1 entries
  int total_q = 0, total_k = 0;       // cu_seqlens_q[B], cu_seqlens_k[B]

  const void* q = nullptr;  // (B, Nq, H, D)
  const void* k = nullptr;  // (B, Nk, Hkv, D)
  const void* v = nullptr;  // (B, Nk, Hkv, D)
  void* o = nullptr;        // (B, Nq, H, D)
  float* lse = nullptr;     // (B, H, Nq), contiguous
  FlashStrides q_strides, k_strides, v_strides, o_strides;
};

struct FlashBwdParams {
  FlashFwdParams fwd;  // the forward's problem, with its o and lse as inputs

  const void* dout = nullptr;  // (B, Nq, H, D)
  void* dq = nullptr;          // (B, Nq, H, D)
  void* dk = nullptr;          // (B, Nk, Hkv, D)
  void* dv = nullptr;          // (B, Nk, Hkv, D)
  FlashStrides dout_strides, dq_strides, dk_strides, dv_strides;

  // Deterministic dq: the key blocks add their dQ contributions to the float32 accumulator one at
  // a time, in decreasing key-block order, each waiting for the previous one on a per-(batch,
  // head, query block) counter, with plain loads and stores on sm_80 and one ordered bulk
  // reduction per block on sm_90; so every float sum runs in the same order and repeated runs give
  // bitwise-identical dq (dk and dv always are). Slower: the key blocks of a query block wait for
  // each other.
  bool deterministic = false;

  // Scratch of flash_attention_backward_workspace_bytes(*this) bytes, 256-byte aligned, owned by
  // the caller so that it is accounted like any other buffer: the float32 dQ accumulator,
  // rowsum(dO ∘ O) and, when deterministic, the ordering counters.
  void* workspace = nullptr;
};

// Empty when the kernels support the problem; otherwise what is wrong or unsupported, naming the
// values. The launchers below return cudaErrorInvalidValue for such a problem.
std::string flash_attention_check(const FlashFwdParams& p);
std::string flash_attention_check(const FlashBwdParams& p);

// Writes o and lse. Asynchronous on `stream`; returns the launch's error, if any. Runs the Hopper
// kernel on sm_90 devices and the sm_80 kernel elsewhere (FlashKernel::automatic).
cudaError_t flash_attention_forward(const FlashFwdParams& p, cudaStream_t stream);

// The forward with an explicit kernel, so that both can be compared in one program: automatic as
// above, sm80 (any GPU from Ampere on) or sm90 (compute capability 9.0 only; cudaErrorInvalidValue
// elsewhere and for packed batches, which automatic runs on the sm_80 kernel;
// cudaErrorNotSupported when the operands cannot be described to the copy engine,
// which automatic answers by running the sm_80 kernel). Both compute the same function; they differ
// in rounding only.
enum class FlashKernel : uint8_t { automatic, sm80, sm90 };
cudaError_t flash_attention_forward_with(const FlashFwdParams& p, FlashKernel kernel,
                                         cudaStream_t stream);

// The forward with one technique removed, for the benchmark's ablations (bf16, D = 128 only):
// 1 = one K/V stage (no copy/compute overlap), 2 = unpadded shared-memory rows (bank conflicts),
// 3 = 32-key blocks instead of 64, all of the sm_80 kernel; at D = 256 (bf16) the other tiles the
// sm_80 kernel could take there: 1 = 64 x 32 with two K/V stages, 3 = 128 x 32 with 8 warps; 0 =
// the tuned sm_80 kernel; on sm_90 only, 4 = the Hopper kernel without ping-pong between its
// consumer warpgroups, 5 = without ping-pong and without the intra-warpgroup overlap of softmax and
// products.
cudaError_t flash_attention_forward_ablation(const FlashFwdParams& p, int variant,
                                             cudaStream_t stream);

// The backward with one technique removed, for the benchmark's ablations of the dQ reductions on
// sm_90 (bf16, D = 128 only): 1 = one float per reduction, 2 = float pairs; 0 = the normal
// kernels (float quads); 3 = the Hopper (wgmma) main kernel instead of the sm_80 one (sm_90
// devices only), 4 = the Hopper kernel with dQ added by per-thread float quads instead of one bulk
// reduction per block (bf16, D = 128).
cudaError_t flash_attention_backward_ablation(const FlashBwdParams& p, int variant,
                                              cudaStream_t stream);

// The backward with an explicit kernel: sm90 runs the Hopper main kernel (compute capability 9.0
// only; cudaErrorInvalidValue elsewhere and for packed batches), sm80 the sm_80 one, automatic the
// Hopper one on sm_90 and the sm_80 one elsewhere.
cudaError_t flash_attention_backward_with(const FlashBwdParams& p, FlashKernel kernel,
                                          cudaStream_t stream);

size_t flash_attention_backward_workspace_bytes(const FlashBwdParams& p);

// Writes dq, dk and dv (overwriting, not accumulating), with the automatic kernel choice. Unless
// p.deterministic, dq is summed over key blocks with float32 atomics, so its last bits may differ
// between runs; dk and dv are deterministic.
cudaError_t flash_attention_backward(const FlashBwdParams& p, cudaStream_t stream);

}  // namespace tilegrad::cuda
