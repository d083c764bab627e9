// GPT: token and position embeddings, L pre-LayerNorm blocks, a final LayerNorm, and a language-
// model head tied to the token embedding (logits = x · wteᵀ), as GPT-2. Parameter names are
// Hugging Face's ("transformer.wte.weight", "transformer.h.0.attn.c_attn.weight", ...; the tied
// head has no tensor of its own, as in their checkpoints).
//
// Rematerialization (GPTConfig::remat): "none"; "every:K" checkpoints groups of K blocks (the
// block inputs at group boundaries are kept, everything inside is recomputed in the backward,
// dropout masks replayed from the generator); "sqrt" is every:ceil(sqrt(L)); "selective"
// checkpoints every block but keeps what matmuls save, recomputing only the outputs of the other
// ops (layer norm, GELU, attention, dropout) — Megatron's selective recomputation.
#pragma once

#include <string>
#include <vector>

#include "nn/block.h"
#include "nn/embedding.h"

namespace tilegrad::models {

struct GPTConfig {
  int L = 2;       // layers
  int64_t H = 2;   // heads
  int64_t C = 32;  // width
  int64_t V = 64;  // vocabulary
  int64_t T = 32;  // block size (longest context)
  double dropout = 0.0;
  // Biases in every linear layer and layer norm (GPT-2's). false drops them all, as nanoGPT's
  // bias = False (its shakespeare-char recipe): the parameters "...bias" are then absent.
  bool bias = true;
  AttentionImpl attention = AttentionImpl::flash;
  DType dtype = DType::f32;
  std::string remat = "none";
  // How loss() computes the head: 0 forms the [B·T', V] logits and applies cross_entropy; > 0
  // runs lm_head_cross_entropy on chunks of that many rows, never holding the full logits (the
  // same loss and gradients up to rounding; one extra head GEMM). A way of computing, not a
  // property of the model: checkpoints do not record it.
  int64_t head_chunk = 0;
  // With a 16-bit dtype, keep the residual stream (the embeddings' sum, every block's output and
  // their gradients) in float32, as PyTorch's autocast does: each branch reads a 16-bit copy of
  // the stream and its output is added in float32, so that small updates are not rounded away
  // at every layer. Costs the adds their fusion into the GEMMs, and two casts per branch. Like
  // head_chunk, a way of computing: checkpoints do not record it.
  bool residual_f32 = false;

  // The residual stream's dtype: float32 under residual_f32 when dtype is narrower (the option
  // widens, never narrows), else dtype.
  DType stream_dtype() const {
    return residual_f32 && dtype_size(dtype) < dtype_size(DType::f32) ? DType::f32 : dtype;
  }
};

// gpt2 (124M), gpt2-medium, gpt2-large, gpt2-xl, shakespeare-char (nanoGPT's: 6 layers, 6 heads,
// width 384, block 256, dropout 0.2; V from the data) and tiny (2 layers, 2 heads, width 32, block
// 32: tests). Throws tilegrad::Error listing the names for an unknown one.
GPTConfig gpt_preset(const std::string& name);
// Blocks per checkpointed group under remat policy `remat` for L blocks: 0 for "none", 1 for
// "selective", ceil(sqrt(L)) for "sqrt", K for "every:K"; a clear error for anything else.
int remat_group_size(const std::string& remat, int L);
std::vector<std::string> gpt_preset_names();

class GPT : public nn::Module {
 public:
  // Parameters from `init` (GPT-2's initialisation).
  GPT(GPTConfig config, Generator& init);
  const GPTConfig& config() const { return config_; }

  // ids [B, T'] (integers, T' <= T) -> logits [B, T', V]. Dropout draws from `gen`.
  Tensor forward(const Tensor& ids, Generator& gen) const;
  // Mean cross-entropy of forward(ids) against targets [B, T'] (chunked when config.head_chunk).
  Tensor loss(const Tensor& ids, const Tensor& targets, Generator& gen) const;

  // Keys and values of every layer for incremental decoding: [B, H, T, D] each.
  struct KVCache {
    std::vector<Tensor> k, v;
    int64_t length = 0;  // positions filled
  };
  KVCache make_cache(int64_t B) const;
  // Logits [B, t, V] of ids [B, t] at positions cache.length.., which are then added to the
  // cache. Needs eval mode and grad mode off.
  Tensor forward_cached(const Tensor& ids, KVCache& cache) const;

 private:
  Tensor blocks_forward(const Tensor& x, Generator& gen) const;
  // x in the residual stream's dtype (GPTConfig::stream_dtype).
  Tensor stream(const Tensor& x) const;
  // The final hidden states [B, T', C]: everything before the head.
  Tensor hidden(const Tensor& ids, Generator& gen) const;

  GPTConfig config_;
  std::shared_ptr<nn::Embedding> wte_, wpe_;
  std::vector<std::shared_ptr<nn::Block>> h_;
  std::shared_ptr<nn::LayerNorm> ln_f_;
  int remat_every_ = 0;  // 0: none
  bool selective_ = false;
};

}  // namespace tilegrad::models
