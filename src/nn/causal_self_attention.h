// Causal multi-head self-attention as in GPT-2: one projection to q, k, v ("c_attn", [C, 3C]),
// the attention op (flash by default; standard selectable) with a causal mask and dropout on the
// probabilities, and an output projection ("c_proj") followed by residual dropout.
//
// q, k and v are views into the projection's output ([B, T, 3C] split and reshaped to
// [B, H, T, D] without copying; the attention op reads strided inputs whose D axis is contiguous).
#pragma once

#include "core/rng.h"
#include "nn/linear.h"
#include "ops/attention.h"

namespace tilegrad::nn {

struct AttentionConfig {
  int64_t C = 0;  // model width
  int64_t H = 0;  // heads; C % H == 0
  double dropout = 0.0;
  AttentionImpl impl = AttentionImpl::flash;
  int L = 1;  // layers of the model (c_proj's init is scaled by 1/sqrt(2L), as GPT-2's)
  DType dtype = DType::f32;
  // Biases in the linear layers and layer norms (GPT-2's); false drops them all (nanoGPT's
  // bias = False). Read by the block as well as by the attention.
  bool bias = true;
};

class CausalSelfAttention : public Module {
 public:
  CausalSelfAttention(const AttentionConfig& config, Generator& init);
  // x [B, T, C]; dropout draws from `gen` (attention probabilities, then the residual). With a
  // residual r [B, T, C], returns r + attention(x), the add fused into the output projection's GEMM
  // when no dropout stands between them (eval mode, or p = 0).
  Tensor forward(const Tensor& x, Generator& gen, const Tensor& residual = Tensor()) const;
  // Inference with a KV cache: x [B, t, C] are positions pos..pos+t-1; their keys and values are
  // written into k_cache/v_cache [B, H, T, D] at those positions, and the queries attend to the
  // cache's first pos + t positions (causal, aligned to the bottom right). No graph, no dropout.
  Tensor forward_cached(const Tensor& x, const Tensor& k_cache, const Tensor& v_cache,
                        int64_t pos) const;

 private:
  AttentionConfig config_;
  std::shared_ptr<Linear> c_attn_, c_proj_;
};

}  // namespace tilegrad::nn
