// Text generation from a GPT: temperature and top-k sampling over the last position's logits,
// one token at a time through the KV cache (GPT::forward_cached), so each new token costs one
// position's work instead of the whole context's. Draws come from a Philox Generator, so a seed
// reproduces a sample exactly.
#pragma once

#include <cstdint>
#include <vector>

#include "models/gpt.h"

namespace tilegrad::models {

struct SampleOptions {
  int64_t max_new_tokens = 200;
  double temperature = 1.0;  // > 0
  int64_t top_k = 0;         // 0: all of the vocabulary
};

// The prompt (at least one id) followed by up to max_new_tokens sampled ids; stops when the
// context is full (T positions have been fed, so at most T + 1 tokens). The model is put in eval
// mode.
std::vector<int32_t> generate(GPT& model, const std::vector<int32_t>& prompt,
                              const SampleOptions& options, Generator& gen);

// The index drawn from logits [V] (float32 values) by temperature and top-k, with one uniform
// draw u in [0, 1). Separate so that tests can check the distribution.
int32_t sample_index(const std::vector<float>& logits, double temperature, int64_t top_k, double u);

}  // namespace tilegrad::models
