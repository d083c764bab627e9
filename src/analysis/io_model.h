// The IO model of attention: how many elements (and bytes) move between slow memory (HBM, or main
// memory on a CPU) and a fast memory of M elements (SRAM, or cache), for standard attention and
// for FlashAttention, forward and backward; and the FLOPs each performs.
//
// Note [IO model]: the counts are made by walking the algorithms' block loops, one load or store
// of one block at a time, for one (batch, head) pair and multiplied by B·H (every head does the
// same work). They are exact for the algorithm as written, not asymptotic:
//
//   standard   Algorithm 0 of the FlashAttention paper (S = QKᵀ, P = softmax(S), O = PV, each
//              written to and read back from slow memory) and its backward (Algorithm 3 there:
//              dV = PᵀdO, dP = dO Vᵀ, dS = P∘(dP − rowsum(P∘dP)), dQ = dS K, dK = dSᵀQ). Optional
//              extra kernels of common implementations: a separate masking pass and a separate
//              dropout pass (see StandardOptions).
//   flash1     FlashAttention (Algorithm 1 forward, Algorithm 2/4 backward without dropout): the
//              OUTER loop runs over K/V blocks of B_c rows, the inner over Q blocks of B_r rows; O,
//              ℓ and m are read and written back for every (Q block, K/V block) pair.
//   flash2     FlashAttention-2: the forward's OUTER loop runs over Q blocks (Q_i loaded once, K/V
//              streamed, O_i and the logsumexp L_i written once); the backward's outer loop runs
//              over K/V blocks (as FlashAttention-2 does, with D = rowsum(dO∘O) computed first).
//
// M is in ELEMENTS (the paper's unit: B_c = ⌈M/4d⌉ makes Q_i, K_j, V_j, O_i fit in M). A byte
// budget becomes elements by dividing by the element size. Bytes are elements times the element
// size of each tensor: data tensors (Q, K, V, O, S, P and their gradients) have one size, the
// per-row statistics (ℓ, m, L, D) another (FlashAttention keeps them in float32), dropout masks a
// third.
//
// Causal masking is aligned to the bottom-right corner (query r sees key c iff c ≤ r + Nk − Nq,
// as FlashAttention-2 does). Flash skips blocks that are entirely masked — no loads, no stores, no
// FLOPs — and computes partially masked blocks in full. Standard attention computes and moves the
// full Nq×Nk matrices whatever the mask.
//
// The tilegrad attention op's flash path follows the same loop structure (outer K/V loop with
// ⌈M/4d⌉-row blocks as in Algorithm 1), so these counts describe its traffic too; the model does
// not depend on the op.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace tilegrad::analysis {

// One attention problem: q [B, H, Nq, d], k and v [B, H, Nk, d].
struct AttentionDims {
  int64_t B = 1;
  int64_t H = 1;
  int64_t Nq = 0;
  int64_t Nk = 0;
  int64_t d = 0;
  bool causal = false;  // bottom-right aligned
};

// Bytes per element of each kind of tensor.
struct ElementSizes {
  int64_t data = 2;  // Q, K, V, O, S, P, dO, dQ, ... (fp16/bf16 by default)
  int64_t stat = 4;  // ℓ, m, L, D: one per query row
  int64_t mask = 1;  // a dropout mask element (a bool)
};

// Block sizes: B_r rows of Q per block, B_c rows of K and V per block.
struct Blocks {
  int64_t Br = 0;
  int64_t Bc = 0;
};

// Algorithm 1's rule: B_c = ⌈M/4d⌉, B_r = min(⌈M/4d⌉, d). The cap on B_r keeps the B_r×B_c score
// block within M/4; it costs nothing there because Q is the streamed operand.
Blocks algorithm1_blocks(int64_t M, int64_t d);
// The same rule with the roles swapped for FlashAttention-2's forward order, where Q_i is the
// resident block and K/V are streamed: B_r = ⌈M/4d⌉, B_c = min(⌈M/4d⌉, d). (Applying Algorithm 1's
// rule to Q-outer order would re-read K and V N/d times: Θ(N²) traffic instead of Θ(N²d²/M).)
Blocks flash2_blocks(int64_t M, int64_t d);

enum class AttentionAlgo { standard, flash1, flash2 };
std::string_view algo_name(AttentionAlgo a);
// "standard", "flash1" (or "flash"), "flash2"; throws tilegrad::Error otherwise.
AttentionAlgo parse_algo(std::string_view name);

// Options of the standard algorithm's accounting.
struct StandardOptions {
  // A separate elementwise masking kernel between S and the softmax (read S, write the masked S),
  // as in PyTorch reference code that adds a causal mask; an additive mask's gradient is the
  // identity, so it adds no backward kernel.
  bool mask_kernel = false;
  // A separate dropout kernel after the softmax: it reads P and writes P_drop and a mask (of
  // ElementSizes::mask bytes per element); O = P_drop V. The backward reads dP_drop and the mask
  // and writes dP before the softmax backward.
  bool dropout = false;
  // false: every GEMM operand crosses between slow and fast memory once (the paper's accounting
  // in the proof of Theorem 2, which holds when the operand being streamed stays cached).
  // true: output-stationary tiled GEMMs with the blocks from M: the resident block (a row block
  // of the output) is loaded once, the other operand is re-read for every resident block.
  bool tiled_gemm = false;
};

// Block sizes follow from M by the rule that gives the RESIDENT operand of a loop the large block:
// Algorithm 1's rule where K/V blocks stay in fast memory (flash1 both passes, flash2's backward,
// tiled standard), flash2_blocks where Q blocks do (flash2's forward).
struct IoOptions {
  int64_t M = 0;                 // fast memory, in elements
  std::optional<Blocks> blocks;  // override the rule's block sizes in every pass
  ElementSizes sizes;
  StandardOptions standard;
  // Count the initialisation writes the flash algorithms state explicitly (Algorithm 1: O = 0,
  // ℓ = 0, m = −∞ in HBM; Algorithm 4: dQ = dK = dV = 0; FlashAttention-2's backward: dQ = 0,
  // since it accumulates dQ in slow memory). Implementations often fold them into the first
  // iteration.
  bool count_init = true;
};

// Slow-memory traffic of one tensor.
struct TensorTraffic {
  std::string name;
  int64_t elem_bytes = 0;
  int64_t reads = 0;  // elements
  int64_t writes = 0;
  int64_t bytes() const { return (reads + writes) * elem_bytes; }
};

// Slow-memory traffic of one pass, per tensor in the order first touched.
struct Traffic {
  std::vector<TensorTraffic> tensors;

  void read(std::string_view name, int64_t elements, int64_t elem_bytes);
  void write(std::string_view name, int64_t elements, int64_t elem_bytes);
  void scale(int64_t factor);  // every count times factor (one head -> B·H heads)

  int64_t reads() const;     // elements
  int64_t writes() const;    // elements
  int64_t elements() const;  // reads + writes: the paper's "HBM accesses"
  int64_t bytes() const;
  const TensorTraffic* find(std::string_view name) const;  // null when untouched
};

// One pass (forward or backward) of one algorithm.
struct PassIo {
  Traffic traffic;
  double flops = 0;           // matmuls + elementwise (see Note [Attention FLOPs] in io_model.cpp)
  double matmul_flops = 0;    // the GEMM part alone
  Blocks blocks;              // as walked; untiled standard: one block {Nq, Nk}
  int64_t Tr = 0;             // ⌈Nq/B_r⌉
  int64_t Tc = 0;             // ⌈Nk/B_c⌉
  int64_t active_blocks = 0;  // (i, j) pairs computed per head (all of them without causal)
};

struct AttentionIo {
  AttentionAlgo algo = AttentionAlgo::standard;
  AttentionDims dims;
  int64_t softmax_passes = 0;  // standard: reads of S per softmax (1 if a row of Nk fits in M)
  PassIo forward;
  PassIo backward;

  int64_t elements() const { return forward.traffic.elements() + backward.traffic.elements(); }
  int64_t bytes() const { return forward.traffic.bytes() + backward.traffic.bytes(); }
  double flops() const { return forward.flops + backward.flops; }
};

// Walks the algorithm's loops; throws tilegrad::Error for invalid dimensions or options, or when
// the walk would exceed 2^30 block pairs per head (choose a larger M or explicit blocks).
AttentionIo attention_io(AttentionAlgo algo, const AttentionDims& dims, const IoOptions& options);

// Whether block (i, j) of the given sizes holds any unmasked (query, key) pair under the
// bottom-right causal mask; always true without causal.
bool block_active(const AttentionDims& dims, const Blocks& blocks, int64_t i, int64_t j);

}  // namespace tilegrad::analysis
