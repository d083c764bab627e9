// Generation: the KV-cache forward gives the full forward's logits; sampling honours temperature
// and top-k; a seed reproduces a sample; bad prompts are clear errors.
#include "models/sampling.h"

#include "testing.h"

namespace tgtest {
namespace {

using models::GPT;

GPT make(Generator& init) {
  models::GPTConfig c = models::gpt_preset("tiny");
  c.V = 13;
  c.T = 12;
  c.dtype = DType::f64;
  return GPT(c, init);
}

TEST(Sampling, CachedLogitsEqualTheFullForward) {
  Generator init(3);
  GPT gpt = make(init);
  gpt.eval();
  NoGradGuard no_grad;
  Generator g(5);
  const Tensor ids = randint({1, 10}, 0, 13, g, {DType::i64});
  Generator unused(0);
  const Tensor full = gpt.forward(ids, unused);  // [1, 10, V]
  GPT::KVCache cache = gpt.make_cache(1);
  // A 4-token prompt, then one token at a time.
  Tensor got = gpt.forward_cached(slice(ids, 1, 0, 4), cache);
  EXPECT_LT(max_abs_diff(got, slice(full, 1, 0, 4)), 1e-12);
  for (int64_t t = 4; t < 10; ++t) {
    got = gpt.forward_cached(slice(ids, 1, t, t + 1), cache);
    EXPECT_LT(max_abs_diff(got, slice(full, 1, t, t + 1)), 1e-12) << t;
  }
  EXPECT_EQ(cache.length, 10);
  EXPECT_NE(error_of([&] {
              gpt.forward_cached(slice(ids, 1, 0, 3), cache);
            }).find("exceed the block size"),
            std::string::npos);
}

TEST(Sampling, TemperatureAndTopK) {
  const std::vector<float> logits{1.0f, 3.0f, 2.0f, -1.0f};
  // top-k 1 is the argmax for every u.
  for (double u : {0.0, 0.3, 0.999}) EXPECT_EQ(models::sample_index(logits, 1.0, 1, u), 1);
  // top-k 2 keeps indices 1 and 2 only: p(1) = e / (e + 1) at temperature 1.
  const double p1 = std::exp(1.0) / (std::exp(1.0) + 1.0);
  EXPECT_EQ(models::sample_index(logits, 1.0, 2, p1 - 1e-9), 1);
  EXPECT_EQ(models::sample_index(logits, 1.0, 2, p1 + 1e-9), 2);
  // A tiny temperature is the argmax; a large one spreads over everything (u near 1: the last).
  EXPECT_EQ(models::sample_index(logits, 1e-3, 0, 0.99), 1);
  EXPECT_EQ(models::sample_index(logits, 1e3, 0, 0.999), 3);
  EXPECT_NE(error_of([&] { models::sample_index(logits, 0.0, 0, 0.5); }).find("temperature"),
            std::string::npos);
}

TEST(Sampling, SeedReproducesAndPromptIsChecked) {
  Generator init(4);
  GPT gpt = make(init);
  models::SampleOptions o;
  o.max_new_tokens = 20;  // more than fits: T = 12 positions predict up to token 13
  Generator a(9), b(9);
  const auto x = models::generate(gpt, {1, 2, 3}, o, a);
  const auto y = models::generate(gpt, {1, 2, 3}, o, b);
  EXPECT_EQ(x, y);
  EXPECT_EQ(x.size(), 13u);
  EXPECT_EQ((std::vector<int32_t>(x.begin(), x.begin() + 3)), (std::vector<int32_t>{1, 2, 3}));
  Generator c(1);
  EXPECT_NE(error_of([&] { models::generate(gpt, {}, o, c); }).find("no tokens"),
            std::string::npos);
  EXPECT_NE(error_of([&] { models::generate(gpt, {13}, o, c); }).find("outside the vocabulary"),
            std::string::npos);
}

}  // namespace
}  // namespace tgtest
