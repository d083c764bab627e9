#include "nn/block.h"

#include "ops/elementwise.h"
#include "ops/view.h"

namespace tilegrad::nn {

Block::Block(const AttentionConfig& config, Generator& init) : dtype_(config.dtype) {
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

// In the block's dtype, the residual adds happen inside the attention's and the MLP's last GEMMs
// (their residual argument), so the stream x costs no add kernel of its own. A float32 stream
// around a 16-bit block is added to outside them (the GEMM writes the block's dtype).
Tensor Block::forward(const Tensor& x, Generator& gen) const {
  if (x.dtype() == dtype_) {
    const Tensor h = attn_->forward(ln_1_->forward(x), gen, x);
    return mlp_->forward(ln_2_->forward(h), gen, h);
  }
  const Tensor h =
      x + to_dtype(attn_->forward(ln_1_->forward(to_dtype(x, dtype_)), gen), x.dtype());
  return h + to_dtype(mlp_->forward(ln_2_->forward(to_dtype(h, dtype_)), gen), h.dtype());
}

Tensor Block::forward_cached(const Tensor& x, const Tensor& k_cache, const Tensor& v_cache,
                             int64_t pos) const {
  Generator none(0);  // eval mode: the MLP's dropout draws nothing
  const Tensor attn =
      attn_->forward_cached(ln_1_->forward(to_dtype(x, dtype_)), k_cache, v_cache, pos);
  const Tensor h = x + to_dtype(attn, x.dtype());
  return h + to_dtype(mlp_->forward(ln_2_->forward(to_dtype(h, dtype_)), none), h.dtype());
}

}  // namespace tilegrad::nn
