#include "models/sampling.h"

#include <algorithm>
#include <cmath>
#include <functional>

#include "autograd/grad_mode.h"
#include "core/error.h"
#include "ops/factory.h"
#include "ops/view.h"

namespace tilegrad::models {

int32_t sample_index(const std::vector<float>& logits, double temperature, int64_t top_k,
                     double u) {
  TG_CHECK(!logits.empty(), "sample: no logits");
  TG_CHECK(temperature > 0, "sample: temperature must be > 0, got ", temperature);
  const size_t V = logits.size();
  // The k-th largest logit is the cut: smaller ones get probability 0 (ties at the cut stay in).
  double cut = -INFINITY;
  if (top_k > 0 && static_cast<size_t>(top_k) < V) {
    std::vector<float> sorted = logits;
    std::nth_element(sorted.begin(), sorted.begin() + (top_k - 1), sorted.end(),
                     std::greater<float>());
    cut = sorted[static_cast<size_t>(top_k - 1)];
  }
  const double mx = *std::max_element(logits.begin(), logits.end());
  std::vector<double> p(V, 0.0);
  double sum = 0;
  for (size_t i = 0; i < V; ++i) {
    if (logits[i] < cut) continue;
    p[i] = std::exp((logits[i] - mx) / temperature);
    sum += p[i];
  }
  double acc = 0;
  const double target = u * sum;
  int32_t last = 0;
  for (size_t i = 0; i < V; ++i) {
    if (p[i] == 0) continue;
    acc += p[i];
    last = static_cast<int32_t>(i);
    if (target < acc) return last;
  }
  return last;  // u * sum rounded up to the total
}

std::vector<int32_t> generate(GPT& model, const std::vector<int32_t>& prompt,
                              const SampleOptions& options, Generator& gen) {
  TG_CHECK(!prompt.empty(), "sample: the prompt has no tokens");
  const GPTConfig& c = model.config();
  TG_CHECK(static_cast<int64_t>(prompt.size()) <= c.T, "sample: the prompt has ", prompt.size(),
           " tokens; the model's block size is ", c.T);
  for (int32_t id : prompt)
    TG_CHECK(id >= 0 && id < c.V, "sample: token id ", id, " is outside the vocabulary of ", c.V);
  model.eval();
  NoGradGuard no_grad;
  GPT::KVCache cache = model.make_cache(1);
  std::vector<int32_t> out = prompt;
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  Tensor next = from_vector(ids, {1, static_cast<int64_t>(ids.size())});
  for (int64_t n = 0; n < options.max_new_tokens && cache.length + next.size(1) <= c.T; ++n) {
    const Tensor logits = model.forward_cached(next, cache);  // [1, t, V]
    const std::vector<float> last = slice(logits, 1, logits.size(1) - 1, logits.size(1))
                                        .to(DType::f32)
                                        .contiguous()
                                        .to_vector<float>();
    const double u = uniform_from_bits(philox_draw(gen.seed(), gen.reserve(1)));
    const int32_t id = sample_index(last, options.temperature, options.top_k, u);
    out.push_back(id);
    next = from_vector(std::vector<int64_t>{id}, {1, 1});
  }
  return out;
}

}  // namespace tilegrad::models
