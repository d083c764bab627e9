#include "models/gpt.h"

#include <charconv>
#include <cmath>

#include "autograd/checkpoint.h"
#include "autograd/grad_mode.h"
#include "autograd/selective.h"
#include "core/error.h"
#include "ops/cross_entropy.h"
#include "ops/dropout.h"
#include "ops/elementwise.h"
#include "ops/factory.h"
#include "ops/lm_head_cross_entropy.h"
#include "ops/matmul.h"
#include "ops/view.h"

namespace tilegrad::models {

namespace {

struct Preset {
  const char* name;
  GPTConfig config;
};

GPTConfig make(int L, int64_t H, int64_t C, int64_t V, int64_t T, double dropout) {
  GPTConfig c;
  c.L = L;
  c.H = H;
  c.C = C;
  c.V = V;
  c.T = T;
  c.dropout = dropout;
  return c;
}

const std::vector<Preset>& presets() {
  static const std::vector<Preset> p = {
      {"gpt2", make(12, 12, 768, 50257, 1024, 0.0)},
      {"gpt2-medium", make(24, 16, 1024, 50257, 1024, 0.0)},
      {"gpt2-large", make(36, 20, 1280, 50257, 1024, 0.0)},
      {"gpt2-xl", make(48, 25, 1600, 50257, 1024, 0.0)},
      {"shakespeare-char", make(6, 6, 384, 65, 256, 0.2)},
      {"tiny", make(2, 2, 32, 64, 32, 0.0)},
  };
  return p;
}

}  // namespace

std::vector<std::string> gpt_preset_names() {
  std::vector<std::string> names;
  for (const Preset& p : presets()) names.emplace_back(p.name);
  return names;
}

int remat_group_size(const std::string& remat, int L) {
  if (remat == "none") return 0;
  if (remat == "selective") return 1;
  if (remat == "sqrt") return static_cast<int>(std::ceil(std::sqrt(static_cast<double>(L))));
  TG_CHECK(remat.rfind("every:", 0) == 0, "GPT: unknown remat policy '", remat,
           "'; use none, every:K, sqrt or selective");
  int K = 0;
  const char* first = remat.data() + 6;
  const char* last = remat.data() + remat.size();
  const auto [end, ec] = std::from_chars(first, last, K);
  TG_CHECK(ec == std::errc() && end == last && K >= 1,
           "GPT: remat 'every:K' needs an integer K >= 1, got '", remat, "'");
  return K;
}

GPTConfig gpt_preset(const std::string& name) {
  std::string all;
  for (const Preset& p : presets()) {
    if (p.name == name) return p.config;
    all += all.empty() ? "" : ", ";
    all += p.name;
  }
  TG_CHECK(false, "unknown model preset '", name, "'; the presets are ", all);
  return {};
}

GPT::GPT(GPTConfig config, Generator& init) : config_(std::move(config)) {
  const GPTConfig& c = config_;
  TG_CHECK(c.L >= 1 && c.V >= 1 && c.T >= 1, "GPT: L, V and T must be >= 1 (L = ", c.L,
           ", V = ", c.V, ", T = ", c.T, ")");
  TG_CHECK(c.dropout >= 0 && c.dropout < 1, "GPT: dropout must be in [0, 1), got ", c.dropout);
  TG_CHECK(c.head_chunk >= 0, "GPT: head_chunk must be >= 0 (0: the full logits), got ",
           c.head_chunk);
  remat_every_ = remat_group_size(c.remat, c.L);
  selective_ = c.remat == "selective";
  wte_ = register_module("transformer.wte",
                         std::make_shared<nn::Embedding>(c.V, c.C, init, 0.02, c.dtype));
  wpe_ = register_module("transformer.wpe",
                         std::make_shared<nn::Embedding>(c.T, c.C, init, 0.02, c.dtype));
  const nn::AttentionConfig ac{c.C, c.H, c.dropout, c.attention, c.L, c.dtype, c.bias};
  for (int i = 0; i < c.L; ++i)
    h_.push_back(register_module("transformer.h." + std::to_string(i),
                                 std::make_shared<nn::Block>(ac, init)));
  // As the blocks' (nn/block.cpp): the plain head's GEMM saves ln_f's output; the chunked head
  // saves neither, and either tensor costs the same there.
  ln_f_ = register_module(
      "transformer.ln_f",
      std::make_shared<nn::LayerNorm>(c.C, c.dtype, 1e-5, LayerNormSaves::output, c.bias));
}

Tensor GPT::stream(const Tensor& x) const {
  return to_dtype(x, config_.stream_dtype());
}

Tensor GPT::blocks_forward(const Tensor& x0, Generator& gen) const {
  Tensor x = x0;
  if (remat_every_ == 0) {
    for (const auto& block : h_) x = block->forward(x, gen);
    return x;
  }
  // Matmuls (and linear layers) keep what they save under "selective"; everything else in a
  // segment is recomputed.
  std::optional<SelectivePolicyScope> keep;
  if (selective_)
    keep.emplace([](std::string_view op) { return op == "matmul" || op == "linear"; });
  for (size_t first = 0; first < h_.size(); first += static_cast<size_t>(remat_every_)) {
    const size_t last = std::min(h_.size(), first + static_cast<size_t>(remat_every_));
    x = checkpoint(
        [this, first, last, &gen](const std::vector<Tensor>& in) {
          Tensor y = in[0];
          for (size_t i = first; i < last; ++i) y = h_[i]->forward(y, gen);
          return y;
        },
        {x}, {&gen});
  }
  return x;
}

Tensor GPT::hidden(const Tensor& ids, Generator& gen) const {
  TG_CHECK(ids.dim() == 2 && is_integral(ids.dtype()), "GPT: ids must be [B, T] integers, got ",
           ids.str());
  const int64_t Tn = ids.size(1);
  TG_CHECK(Tn >= 1 && Tn <= config_.T, "GPT: sequence length ", Tn,
           " exceeds the block size T = ", config_.T);
  const Tensor pos = wpe_->forward(arange(Tn, {DType::i64}));  // [T', C]
  const Tensor x =
      dropout(stream(wte_->forward(ids)) + stream(pos), config_.dropout, gen, training());
  return ln_f_->forward(to_dtype(blocks_forward(x, gen), config_.dtype));
}

Tensor GPT::forward(const Tensor& ids, Generator& gen) const {
  return matmul(hidden(ids, gen), transpose(wte_->weight(), 0, 1));  // the tied head
}

Tensor GPT::loss(const Tensor& ids, const Tensor& targets, Generator& gen) const {
  TG_CHECK(targets.shape() == ids.shape(), "GPT: targets ", targets.str(),
           " must have the ids' shape ", ids.str());
  const int64_t rows = ids.numel();
  if (config_.head_chunk > 0) {
    const Tensor h = hidden(ids, gen);
    return lm_head_cross_entropy(reshape(h, {rows, config_.C}), wte_->weight(),
                                 reshape(targets, {rows}), config_.head_chunk);
  }
  const Tensor logits = forward(ids, gen);
  return cross_entropy(reshape(logits, {rows, config_.V}), reshape(targets, {rows}));
}

GPT::KVCache GPT::make_cache(int64_t B) const {
  KVCache cache;
  const int64_t D = config_.C / config_.H;
  for (int i = 0; i < config_.L; ++i) {
    cache.k.push_back(zeros({B, config_.H, config_.T, D}, {config_.dtype}));
    cache.v.push_back(zeros({B, config_.H, config_.T, D}, {config_.dtype}));
  }
  return cache;
}

Tensor GPT::forward_cached(const Tensor& ids, KVCache& cache) const {
  TG_CHECK(!training() && !grad_enabled(), "GPT: forward_cached needs eval mode and no grad");
  TG_CHECK(ids.dim() == 2 && is_integral(ids.dtype()), "GPT: ids must be [B, t] integers, got ",
           ids.str());
  const int64_t t = ids.size(1), pos = cache.length;
  TG_CHECK(pos + t <= config_.T, "GPT: ", pos + t,
           " positions exceed the block size T = ", config_.T);
  const Tensor positions = slice(arange(config_.T, {DType::i64}), 0, pos, pos + t);
  Tensor x = stream(wte_->forward(ids)) + stream(wpe_->forward(positions));
  for (size_t i = 0; i < h_.size(); ++i) x = h_[i]->forward_cached(x, cache.k[i], cache.v[i], pos);
  cache.length = pos + t;
  return matmul(ln_f_->forward(to_dtype(x, config_.dtype)), transpose(wte_->weight(), 0, 1));
}

}  // namespace tilegrad::models
