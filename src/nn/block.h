// A pre-LayerNorm transformer block with residuals: x + attn(ln_1(x)), then + mlp(ln_2(x)). The
// stream x may be float32 around a 16-bit block (GPTConfig::residual_f32): the layer norms then
// read 16-bit copies of it and the branches' outputs are added in float32.
#pragma once

#include "nn/causal_self_attention.h"
#include "nn/layer_norm.h"
#include "nn/mlp.h"

namespace tilegrad::nn {

class Block : public Module {
 public:
  Block(const AttentionConfig& config, Generator& init);
  Tensor forward(const Tensor& x, Generator& gen) const;
  // Inference with this block's KV cache (CausalSelfAttention::forward_cached).
  Tensor forward_cached(const Tensor& x, const Tensor& k_cache, const Tensor& v_cache,
                        int64_t pos) const;

 private:
  std::shared_ptr<LayerNorm> ln_1_, ln_2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<MLP> mlp_;
  DType dtype_;  // the block's parameters and activations
};

}  // namespace tilegrad::nn
