#include "nn/causal_self_attention.h"

#include <cmath>

#include "core/error.h"
#include "nn/residual.h"
#include "ops/concat.h"
#include "ops/view.h"

namespace tilegrad::nn {

CausalSelfAttention::CausalSelfAttention(const AttentionConfig& config, Generator& init)
    : config_(config) {
  TG_CHECK(config.C > 0 && config.H > 0 && config.C % config.H == 0,
           "attention: width C = ", config.C,
           " must be a positive multiple of the heads H = ", config.H);
  c_attn_ = register_module("c_attn", std::make_shared<Linear>(config.C, 3 * config.C, config.bias,
                                                               init, 0.02, config.dtype));
  c_proj_ = register_module(
      "c_proj", std::make_shared<Linear>(config.C, config.C, config.bias, init,
                                         0.02 / std::sqrt(2.0 * config.L), config.dtype));
}

Tensor CausalSelfAttention::forward(const Tensor& x, Generator& gen, const Tensor& residual) const {
  TG_CHECK(x.dim() == 3 && x.size(2) == config_.C, "attention: input must be [B, T, ", config_.C,
           "], got ", shape_str(x.shape()));
  const int64_t B = x.size(0), T = x.size(1), C = config_.C, H = config_.H, D = C / H;
  const std::vector<Tensor> qkv = split(c_attn_->forward(x), {C, C, C}, 2);
  auto heads = [&](const Tensor& t) { return transpose(reshape(t, {B, T, H, D}), 1, 2); };
  AttentionOptions options;
  options.causal = true;
  options.impl = config_.impl;
  options.dropout_p = training() ? config_.dropout : 0.0;
  const Tensor y = attention(heads(qkv[0]), heads(qkv[1]), heads(qkv[2]), options, gen).out;
  const Tensor merged = reshape(transpose(y, 1, 2).contiguous(), {B, T, C});
  if (residual_in_gemm(residual, config_.dropout, training()))
    return c_proj_->forward(merged, Activation::none, residual);
  return dropout_then_residual(c_proj_->forward(merged), residual, config_.dropout, gen,
                               training());
}

Tensor CausalSelfAttention::forward_cached(const Tensor& x, const Tensor& k_cache,
                                           const Tensor& v_cache, int64_t pos) const {
  const int64_t B = x.size(0), t = x.size(1), C = config_.C, H = config_.H, D = C / H;
  TG_CHECK(pos >= 0 && pos + t <= k_cache.size(2), "attention: positions ", pos, "..", pos + t - 1,
           " exceed the KV cache's ", k_cache.size(2));
  const std::vector<Tensor> qkv = split(c_attn_->forward(x), {C, C, C}, 2);
  auto heads = [&](const Tensor& u) { return transpose(reshape(u, {B, t, H, D}), 1, 2); };
  slice(k_cache, 2, pos, pos + t).copy_(heads(qkv[1]));
  slice(v_cache, 2, pos, pos + t).copy_(heads(qkv[2]));
  AttentionOptions options;
  options.causal = true;
  options.impl = config_.impl;
  const Tensor y = attention(heads(qkv[0]), slice(k_cache, 2, 0, pos + t),
                             slice(v_cache, 2, 0, pos + t), options)
                       .out;
  return c_proj_->forward(reshape(transpose(y, 1, 2).contiguous(), {B, t, C}));
}

}  // namespace tilegrad::nn
