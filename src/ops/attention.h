// Scaled dot-product attention, softmax(scale · Q Kᵀ + mask) V, with two implementations behind one
// op: `standard` (materialises the N x N scores and probabilities, FlashAttention paper Algorithm
// 0) and `flash` (tiles and an online softmax, Algorithm 1 with FlashAttention-2's refinements; no
// N x N buffer in the forward or the backward). docs/ATTENTION.md describes both.
//
// Shapes: q [B, H, Nq, D]; k and v [B, Hkv, Nk, D] with Hkv dividing H (MHA Hkv = H, GQA, MQA
// Hkv = 1): query head h reads key/value head h / (H / Hkv). D <= 256; any lengths. Storage dtypes
// f32, f64, bf16 and f16; arithmetic in float32 (float64 for f64). Returns the output [B, H, Nq, D]
// in q's dtype and the logsumexp [B, H, Nq] of the (undropped, masked, scaled) scores, natural log,
// in the accumulation dtype (float32, or float64 for f64 inputs so that float64 stays exact). Both
// outputs are differentiable.
//
// Visibility — which keys query i may see, with shift = Nk - Nq (aligned to the bottom-right corner
// when Nq != Nk, as FlashAttention-2 does, so the last query sees the last key):
//   causal:               j <= i + shift
//   window (left, right): i + shift - left <= j <= i + shift + right; -1 = unlimited on that side
//   block layout:         layout[i / layout_block_q][j / layout_block_k] != 0, a
//                         [ceil(Nq / layout_block_q), ceil(Nk / layout_block_k)] tensor; the flash
//                         implementation skips the tiles it hides (block-sparse FlashAttention)
// A pair is visible when every mask given allows it. A row that sees no key at all (possible with
// causal or a window when Nq > Nk, or with a layout) has output 0 and logsumexp -inf, and passes no
// gradient to anything.
//
// Dropout on the probabilities (p = dropout_p, counter-based, core/rng.h): element (b, h, i, j) of
// the probability matrix uses Philox draw number
//     offset + ((b · H + h) · Nq + i) · Nk + j      of the stream `seed`
// and is kept iff dropout_keep(philox_draw(seed, draw), dropout_keep_threshold(p)); kept values are
// scaled by 1 / (1 - p). Every device uses this numbering, so masks agree across devices and
// implementations, and the backward regenerates the mask instead of storing it. The Generator
// overload reserves B · H · Nq · Nk draws per call (none when p = 0). The logsumexp is that of the
// undropped scores.
#pragma once

#include <cstdint>
#include <optional>

#include "core/cost.h"
#include "core/rng.h"
#include "core/tensor.h"

namespace tilegrad {

enum class AttentionImpl : uint8_t { standard, flash };

// The flash tile sizes from a fast-memory size M (in elements): B_c = ceil(M / 4D) key rows so that
// the blocks of K, V, Q and O fit in M together, and B_r = min(B_c, D) query rows (FlashAttention
// paper, Algorithm 1, line 1).
//
// The backward's tiles are square, of side min(2 B_c, 256): each backward tile runs five products
// instead of the forward's two, on tiles whose per-call packing in OpenBLAS costs the same whatever
// their size, so larger tiles pay off there. Measured on the 2-core EPYC of docs/BENCHMARKS.md
// (BM_FlashTiles, N = 4096): 256 x 256 against the forward's tiles made the backward 7% faster at
// D = 64 and 8% at D = 128; beyond 256 rows the two score tiles (2 x 256 KiB) leave the L2.
struct FlashBlocks {
  int64_t r = 0;    // B_r
  int64_t c = 0;    // B_c
  int64_t bwd = 0;  // B_r = B_c of the backward
};
FlashBlocks flash_blocks(int64_t fast_memory, int64_t D);

// The default M: 65,536 elements (256 KiB of float32), a quarter of the per-core L2 of the machine
// the flash kernel was tuned on, leaving room for OpenBLAS's packing buffers. For D = 64 it gives
// B_c = 256, B_r = 64; for D = 128, B_c = B_r = 128. Larger M measured at most ~5% faster on long
// sequences but leaves short ones with a single key block per head, which serialises the
// backward. A fixed number, not the detected cache: the tiles set the order of floating-point
// sums, and results must not depend on the machine. docs/BENCHMARKS.md has the sweep.
inline constexpr int64_t kDefaultFastMemory = 65536;

struct AttentionOptions {
  std::optional<double> scale;  // default 1 / sqrt(D)
  bool causal = false;
  int64_t window_left = -1;  // -1: unlimited
  int64_t window_right = -1;
  double dropout_p = 0.0;
  uint64_t dropout_seed = 0;  // the stream and first draw when no Generator is given
  uint64_t dropout_offset = 0;
  Tensor block_layout;  // optional; u8/bool, i32 or i64; nonzero = visible
  int64_t layout_block_q = 0;
  int64_t layout_block_k = 0;
  AttentionImpl impl = AttentionImpl::flash;
  int64_t fast_memory = kDefaultFastMemory;  // M, elements; sets the flash tiles
  int64_t block_r = 0;                       // flash tiles set directly (0: from fast_memory)
  int64_t block_c = 0;
};

struct AttentionResult {
  Tensor out;  // [B, H, Nq, D]
  Tensor lse;  // [B, H, Nq]
};

AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          const AttentionOptions& options = {});
// The same with dropout drawn from `gen`: seed and offset come from it (dropout_seed and
// dropout_offset are ignored).
AttentionResult attention(const Tensor& q, const Tensor& k, const Tensor& v,
                          AttentionOptions options, Generator& gen);

// How many (i, j) pairs of one head are visible under the options' masks.
int64_t attention_visible_pairs(int64_t Nq, int64_t Nk, const AttentionOptions& options);
// FLOPs: the two products over the visible pairs, 4 · B · H · D per pair (a causal square halves
// it). Bytes: q, k, v read and the output and logsumexp written once; the standard implementation
// adds writing and reading S and P (B · H · Nq · Nk elements each).
Cost attention_cost(const Shape& q, const Shape& k, DType dt, const AttentionOptions& options);

}  // namespace tilegrad
