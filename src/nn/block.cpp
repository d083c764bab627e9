#include "nn/block.h"

#include "ops/elementwise.h"

namespace tilegrad::nn {

Block::Block(const AttentionConfig& config, Generator& init) {
  // Each layer norm feeds a linear layer that saves its input, the layer norm's output, for its
  // weight's gradient; the layer norms' backwards read that output too (LayerNormSaves::output),
  // so that the residual stream before them, which nothing else saves, is freed: two [B, T, C]
  // tensors per block.
  ln_1_ = register_module("ln_1", std::make_shared<LayerNorm>(config.C, config.dtype, 1e-5,
                                                              LayerNormSaves::output, config.bias));
  attn_ = register_module("attn", std::make_shared<CausalSelfAttention>(config, init));
  ln_2_ = register_module("ln_2", std::make_shared<LayerNorm>(config.C, config.dtype, 1e-5,
                                                              LayerNormSaves::output, config.bias));
  mlp_ = register_module("mlp", std::make_shared<MLP>(config.C, config.dropout, config.L, init,
                                                      config.dtype, config.bias));
}

// The residual adds happen inside the attention's and the MLP's last GEMMs (their residual
// argument), so the stream x costs no add kernel of its own.
Tensor Block::forward(const Tensor& x, Generator& gen) const {
  const Tensor h = attn_->forward(ln_1_->forward(x), gen, x);
  return mlp_->forward(ln_2_->forward(h), gen, h);
}

Tensor Block::forward_cached(const Tensor& x, const Tensor& k_cache, const Tensor& v_cache,
                             int64_t pos) const {
  Generator none(0);  // eval mode: the MLP's dropout draws nothing
  const Tensor h = x + attn_->forward_cached(ln_1_->forward(x), k_cache, v_cache, pos);
  return h + mlp_->forward(ln_2_->forward(h), none);
}

}  // namespace tilegrad::nn
