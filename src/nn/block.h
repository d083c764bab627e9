// A pre-LayerNorm transformer block with residuals: x + attn(ln_1(x)), then + mlp(ln_2(x)).
#pragma once

#include "nn/causal_self_attention.h"
#include "nn/layer_norm.h"
#include "nn/mlp.h"

namespace tilegrad::nn {

class Block : public Module {
 public:
  Block(const AttentionConfig& config, Generator& init);
  Tensor forward(const Tensor& x, Generator& gen) const;

 private:
  std::shared_ptr<LayerNorm> ln_1_, ln_2_;
  std::shared_ptr<CausalSelfAttention> attn_;
  std::shared_ptr<MLP> mlp_;
};

}  // namespace tilegrad::nn
