// The ops of a GPT-like transformer, one row per engine op call, with each call's forward cost
// (FLOPs and bytes) from the op's own cost function (ops/*.h), so the analysis and the engine count
// the same thing.
//
// The op sequence is the one tilegrad runs for the model in apps/analyze_gpt.h (pre-LayerNorm
// GPT-2 block, attention as explicit matmuls with a causal mask so the H·T² matrices exist):
//   embed:  embedding(wte) + wpe[:T]
//   layer:  ln_1; qkv = ln_1·W_qkv (+b); q, k, v split into heads and made contiguous [B,H,T,D];
//           q·(1/√D); S = q kᵀ; S + mask; P = softmax; y = P v; heads merged (a copy);
//           y·W_o (+b); residual add; ln_2; h = ·W_fc (+b); gelu; ·W_proj (+b); residual add
//   head:   ln_f; logits = x·W_lm (untied from wte, no bias); cross_entropy
// Views (split, reshape of contiguous data, transpose) are free and have no row; a reshape or
// contiguous() of a strided view is a "copy" (no FLOPs, read + write).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "core/cost.h"
#include "core/dtype.h"

namespace tilegrad::analysis {

struct GptDims {
  int64_t B = 1;  // batch
  int64_t T = 0;  // sequence length (also the number of positions in wpe)
  int64_t d = 0;  // model width C
  int64_t H = 1;  // heads; D = d / H
  int64_t L = 1;  // layers
  int64_t V = 0;  // vocabulary
  DType dtype = DType::f32;
  bool bias = true;  // biases on the linear layers (GPT-2 has them)
  // Throws tilegrad::Error naming the field when a size is < 1 or H does not divide d.
  void validate() const;
};

struct OpRow {
  std::string name;   // the model's name for the call: "ln_1", "qkv", "scores", ...
  std::string op;     // the engine op that runs it: "layer_norm", "matmul", "add", "copy", ...
  std::string shape;  // operand shapes, e.g. "[4096,1024]x[1024,3072]"
  Cost cost;          // forward FLOPs and bytes of the call
};

// The MLP: h = x·W_fc (+b), gelu, ·W_proj (+b), for x [B, T, d] and a hidden width `hidden`.
std::vector<OpRow> mlp_ops(int64_t B, int64_t T, int64_t d, int64_t hidden, DType dtype, bool bias);
// One transformer layer (attention part and MLP), in engine order.
std::vector<OpRow> gpt_layer_ops(const GptDims& g);
// The calls before the first layer and after the last.
std::vector<OpRow> gpt_embed_ops(const GptDims& g);
std::vector<OpRow> gpt_head_ops(const GptDims& g);

// Sum of the rows' costs.
Cost total_cost(const std::vector<OpRow>& rows);
// The whole forward: embed + L · layer + head.
Cost gpt_forward_cost(const GptDims& g);

}  // namespace tilegrad::analysis
