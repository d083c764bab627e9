// The lectures' memory formulas for a GPT-like transformer, in elements (multiply by the element
// size for bytes). Shape letters: L layers, d width, H heads, V vocabulary, T sequence length,
// B sequences per batch (the lecture's formulas are per sequence; activation terms scale with B).
//
//   parameters   12 d² L + 2 d V
//                per layer 4d² (W_q, W_k, W_v, W_o) + 8d² (W_fc d×4d, W_proj 4d×d); 2dV is the
//                token embedding and an UNTIED output matrix (dV each; tying them gives dV).
//                Biases, layer-norm weights and position embeddings are not counted.
//   forward      B (4dT + H·T² + V·T)
//                the largest transient tensors of a forward without a graph: the MLP's hidden
//                activation (4dT), one layer's attention matrices (H·T²) and the logits (V·T).
//   graph        B (12 L d T + L·H·T² + 2 V T)
//                what a training forward keeps for the backward: per layer 12dT (read here as Q, K,
//                V, the attention output, the MLP hidden before and after the GELU: 3+1+4+4) and
//                the H·T² attention probabilities; the logits and their softmax (2VT).
//   checkpoint 1 B (L d T + 12 d T + H·T²)
//                keep only each block's input (L·dT) and recompute one block at a time in the
//                backward, so at most one block's graph (12dT + H·T²) exists besides the inputs.
//   checkpoint 2 B (⌈L/k⌉ d T + k (12 d T + H·T²)),  k = ⌈√L⌉
//                keep the input of every k-th block and recompute a segment of k blocks at a time
//                (Chen et al.'s √L scheme): ⌈L/k⌉ inputs plus one segment's graph.
// The head's 2VT is live at the end of a checkpointed forward as well (it is not inside any
// block), but it is freed by the time the first block is recomputed; the stored_* figures say what
// a checkpointed forward holds when it ends.
#pragma once

#include <cstdint>

namespace tilegrad::analysis {

struct TransformerShape {
  int64_t L = 1;
  int64_t d = 0;
  int64_t H = 1;
  int64_t V = 0;
  int64_t T = 0;
  int64_t B = 1;
};

struct MemoryFormulas {
  int64_t parameters = 0;
  int64_t forward = 0;
  int64_t graph = 0;
  int64_t block_graph = 0;  // B (12 d T + H T²): one block's share of `graph`
  int64_t head_graph = 0;   // B · 2 V T
  int64_t checkpoint1 = 0;  // peak working set of option 1 (without the head)
  int64_t checkpoint2 = 0;  // peak working set of option 2 (without the head)
  int64_t stored1 = 0;      // option 1 at the end of the forward: B L d T + head
  int64_t stored2 = 0;      // option 2 at the end of the forward: B ⌈L/k⌉ d T + head
  int64_t segment = 0;      // k
};

// Throws tilegrad::Error when a size is < 1.
MemoryFormulas memory_formulas(const TransformerShape& s);

}  // namespace tilegrad::analysis
