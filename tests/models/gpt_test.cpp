// The GPT model: Hugging Face's parameter names and GPT-2's parameter count, gradients against
// float64 central differences (dropout on, masks replayed from the same seed), gradients bitwise
// equal under every rematerialization policy, and clear errors for bad input.
#include "models/gpt.h"
#include "optim/adamw.h"

#include <cstdio>
#include <cstring>

#include "testing.h"

#include "backend/backend.h"

namespace tgtest {
namespace {

using models::GPT;
using models::GPTConfig;

GPTConfig small(DType dt, double dropout) {
  GPTConfig c;
  c.L = 2;
  c.H = 2;
  c.C = 12;
  c.V = 11;
  c.T = 9;
  c.dropout = dropout;
  c.dtype = dt;
  return c;
}

Tensor ids(int64_t B, int64_t T, int64_t V, uint64_t seed) {
  Generator g(seed);
  return randint({B, T}, 0, V, g, {DType::i64});
}

TEST(GPT, HuggingFaceNamesAndGpt2ParameterCount) {
  Generator init(1);
  GPTConfig c = models::gpt_preset("gpt2");
  const GPT gpt(c, init);
  // 124,439,808: GPT-2 small's parameter count with the head tied to the token embedding.
  EXPECT_EQ(gpt.num_parameters(), 124439808);
  const auto named = gpt.named_parameters();
  ASSERT_FALSE(named.empty());
  EXPECT_EQ(named.front().name, "transformer.wte.weight");
  EXPECT_EQ(named.front().tensor.shape(), (Shape{50257, 768}));
  auto find = [&](const std::string& name) -> Shape {
    for (const auto& [n, t] : named)
      if (n == name) return t.shape();
    ADD_FAILURE() << "no parameter " << name;
    return {};
  };
  EXPECT_EQ(find("transformer.wpe.weight"), (Shape{1024, 768}));
  EXPECT_EQ(find("transformer.h.0.ln_1.weight"), (Shape{768}));
  EXPECT_EQ(find("transformer.h.0.attn.c_attn.weight"), (Shape{768, 2304}));
  EXPECT_EQ(find("transformer.h.0.attn.c_attn.bias"), (Shape{2304}));
  EXPECT_EQ(find("transformer.h.11.attn.c_proj.weight"), (Shape{768, 768}));
  EXPECT_EQ(find("transformer.h.11.mlp.c_fc.weight"), (Shape{768, 3072}));
  EXPECT_EQ(find("transformer.h.11.mlp.c_proj.bias"), (Shape{768}));
  EXPECT_EQ(find("transformer.ln_f.bias"), (Shape{768}));
  EXPECT_EQ(named.size(), 2u + 12u * 12u + 2u);
}

// bias = false (nanoGPT's bias = False): no "...bias" parameter anywhere, and the count is GPT-2's
// less its biases — per block the two layer norms' (2C), c_attn's (3C), attn.c_proj's (C), c_fc's
// (4C) and mlp.c_proj's (C), and ln_f's (C).
TEST(GPT, WithoutBiasesHasNoBiasParameters) {
  Generator init(1);
  GPTConfig c = models::gpt_preset("gpt2");
  c.bias = false;
  const GPT gpt(c, init);
  EXPECT_EQ(gpt.num_parameters(), 124439808 - 12 * (2 + 3 + 1 + 4 + 1) * 768 - 768);
  const auto named = gpt.named_parameters();
  EXPECT_EQ(named.size(), 2u + 12u * 6u + 1u);
  for (const auto& [name, t] : named) EXPECT_EQ(name.find("bias"), std::string::npos) << name;
}

// Every parameter's gradient at three random elements against float64 central differences, dropout
// on (the same masks every time).
void expect_gpt_gradcheck(bool bias) {
  Generator init(2);
  GPTConfig c = small(DType::f64, 0.1);
  c.bias = bias;
  GPT gpt(c, init);
  const Tensor x = ids(2, 7, 11, 3), y = ids(2, 7, 11, 4);
  auto loss_at = [&] {
    Generator gen(99);  // the same dropout masks every time
    return gpt.loss(x, y, gen);
  };
  Tensor loss = loss_at();
  loss.backward();
  SplitMix64 pick{5};
  int checked = 0;
  for (const auto& [name, p] : gpt.named_parameters()) {
    ASSERT_TRUE(p.grad().defined()) << name;
    const std::vector<double> g = p.grad().to_vector<double>();
    // Weights are nudged through the device's backend, so the check runs on any device.
    double* w = static_cast<double*>(p.data());
    Backend& be = backend(p.device());
    auto poke = [&](int64_t i, double v) { be.copy_from_host(&v, w + i, sizeof v); };
    for (int s = 0; s < 3; ++s) {
      const int64_t i = pick.in(0, p.numel() - 1);
      double saved = 0;
      be.copy_to_host(w + i, &saved, sizeof saved);
      const double eps = 1e-6;
      double plus = 0, minus = 0;
      {
        NoGradGuard ng;
        poke(i, saved + eps);
        plus = loss_at().item();
        poke(i, saved - eps);
        minus = loss_at().item();
        poke(i, saved);
      }
      const double numeric = (plus - minus) / (2 * eps);
      const double analytic = g[static_cast<size_t>(i)];
      EXPECT_NEAR(analytic, numeric, 1e-7 + 1e-5 * std::abs(numeric)) << name << "[" << i << "]";
      ++checked;
    }
  }
  EXPECT_EQ(checked, 3 * static_cast<int>(gpt.named_parameters().size()));
}

TEST(GPT, GradientsMatchFiniteDifferences) {
  for (bool bias : {true, false}) {
    SCOPED_TRACE(bias ? "with biases" : "without biases");
    expect_gpt_gradcheck(bias);
  }
}

std::vector<std::vector<uint8_t>> grads_under(const std::string& remat, AttentionImpl impl,
                                              bool bias = true) {
  GPTConfig c = small(DType::f32, 0.2);
  c.L = 4;
  c.bias = bias;
  c.remat = remat;
  c.attention = impl;
  Generator init(7);
  GPT gpt(c, init);
  Generator gen(11);
  gpt.loss(ids(3, 9, 11, 8), ids(3, 9, 11, 9), gen).backward();
  std::vector<std::vector<uint8_t>> out;
  for (const auto& [name, p] : gpt.named_parameters()) {
    const Tensor g = p.grad().to(Device::cpu()).contiguous();  // bytes read on the host
    std::vector<uint8_t> b(static_cast<size_t>(g.nbytes()));
    std::memcpy(b.data(), g.data(), b.size());
    out.push_back(std::move(b));
  }
  return out;
}

TEST(GPT, GradientsBitwiseEqualUnderRematerialization) {
  for (AttentionImpl impl : {AttentionImpl::flash, AttentionImpl::standard}) {
    // The CUDA backend has no standard (materialising) attention kernel (docs/STATUS.md).
    if (impl == AttentionImpl::standard && !default_device().is_cpu()) continue;
    const auto plain = grads_under("none", impl);
    for (const char* policy : {"every:1", "every:3", "sqrt", "selective"}) {
      const auto g = grads_under(policy, impl);
      ASSERT_EQ(g.size(), plain.size());
      for (size_t i = 0; i < g.size(); ++i) EXPECT_TRUE(g[i] == plain[i]) << policy << " " << i;
    }
  }
  const auto plain = grads_under("none", AttentionImpl::flash, false);
  for (const char* policy : {"every:1", "selective"}) {
    const auto g = grads_under(policy, AttentionImpl::flash, false);
    ASSERT_EQ(g.size(), plain.size());
    for (size_t i = 0; i < g.size(); ++i)
      EXPECT_TRUE(g[i] == plain[i]) << "without biases, " << policy << " " << i;
  }
}

// The chunked head (lm_head_cross_entropy, chunks of 5 rows: 27 rows end ragged) gives the plain
// head's loss and gradients, with dropout on (the masks come from the same stream either way).
TEST(GPT, ChunkedHeadEqualsThePlainHead) {
  auto run = [](int64_t head_chunk) {
    GPTConfig c = small(DType::f64, 0.1);
    c.head_chunk = head_chunk;
    Generator init(7);
    GPT gpt(c, init);
    Generator gen(11);
    const Tensor loss = gpt.loss(ids(3, 9, 11, 8), ids(3, 9, 11, 9), gen);
    loss.backward();
    std::vector<double> out = loss.to_vector<double>();
    for (const auto& [name, p] : gpt.named_parameters()) {
      const auto g = p.grad().to_vector<double>();
      out.insert(out.end(), g.begin(), g.end());
    }
    return out;
  };
  const std::vector<double> plain = run(0), chunked = run(5);
  ASSERT_EQ(plain.size(), chunked.size());
  EXPECT_GT(plain[0], 1.0);
  for (size_t i = 0; i < plain.size(); ++i) EXPECT_NEAR(chunked[i], plain[i], 1e-12) << i;
}

// GPTConfig::residual_f32 under bf16: the residual stream in float32 brings the logits and the
// gradients closer to a float64 model holding the same (bf16) parameters than the bf16 stream
// does, since the stream is no longer rounded to 8 bits of mantissa after every branch; its
// gradient flows in float32 too. Under float32 the option changes nothing, to the bit.
TEST(GPT, Float32ResidualStreamComesCloserToFloat64) {
  auto config = [](DType dt, bool f32_stream) {
    GPTConfig c = small(dt, 0.0);
    c.L = 6;
    c.C = 48;
    c.H = 4;
    c.V = 29;
    c.T = 33;
    c.residual_f32 = f32_stream;
    return c;
  };
  const Tensor x = ids(3, 33, 29, 8), y = ids(3, 33, 29, 9);
  // Logits, then every parameter's gradient, as float64 on the host.
  auto run = [&](GPT& gpt) {
    Generator gen(11);
    std::vector<double> out;
    {
      NoGradGuard ng;
      out = gpt.forward(x, gen).to(DType::f64).to_vector<double>();
    }
    gpt.loss(x, y, gen).backward();
    for (const auto& [name, p] : gpt.named_parameters()) {
      const auto g = p.grad().to(DType::f64).to_vector<double>();
      out.insert(out.end(), g.begin(), g.end());
    }
    return out;
  };
  Generator init(7);
  GPT bf16_stream(config(DType::bf16, false), init);
  Generator init2(7);
  GPT f32_stream(config(DType::bf16, true), init2);
  Generator init3(7);
  GPT reference(config(DType::f64, false), init3);
  {
    NoGradGuard ng;
    const auto ps = bf16_stream.named_parameters(), pf = f32_stream.named_parameters(),
               pr = reference.named_parameters();
    ASSERT_EQ(ps.size(), pr.size());
    for (size_t i = 0; i < ps.size(); ++i) {
      pf[i].tensor.copy_(ps[i].tensor);
      pr[i].tensor.copy_(ps[i].tensor.to(DType::f64));
    }
  }
  const std::vector<double> want = run(reference), got_bf16 = run(bf16_stream),
                            got_f32 = run(f32_stream);
  ASSERT_EQ(got_bf16.size(), want.size());
  ASSERT_EQ(got_f32.size(), want.size());
  const size_t n_logits = 3 * 33 * 29;
  // Mean absolute error of [begin, end) against the reference, relative to its mean magnitude.
  auto error = [&](const std::vector<double>& got, size_t begin, size_t end) {
    double e = 0, m = 0;
    for (size_t i = begin; i < end; ++i) {
      e += std::abs(got[i] - want[i]);
      m += std::abs(want[i]);
    }
    return e / m;
  };
  const double logits_bf16 = error(got_bf16, 0, n_logits), logits_f32 = error(got_f32, 0, n_logits);
  const double grads_bf16 = error(got_bf16, n_logits, want.size()),
               grads_f32 = error(got_f32, n_logits, want.size());
  std::printf(
      "relative error against float64: logits %.3g (bf16 stream) %.3g (float32 stream), "
      "gradients %.3g %.3g\n",
      logits_bf16, logits_f32, grads_bf16, grads_f32);
  EXPECT_LT(logits_f32, 0.8 * logits_bf16) << logits_f32 << " against " << logits_bf16;
  EXPECT_LT(grads_f32, 0.8 * grads_bf16) << grads_f32 << " against " << grads_bf16;
  EXPECT_LT(logits_f32, 1e-2);

  // Under float32 the option is a no-op.
  Generator init4(7), init5(7);
  GPT plain(config(DType::f32, false), init4), flagged(config(DType::f32, true), init5);
  const std::vector<double> a = run(plain), b = run(flagged);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) ASSERT_EQ(a[i], b[i]) << i;
}

// A fixed batch is memorised: AdamW drives the loss below 0.1 (from ln V ≈ 2.4).
TEST(GPT, OverfitsAFixedBatch) {
  GPTConfig c = small(DType::f32, 0.0);
  c.C = 32;
  c.H = 4;
  Generator init(5);
  GPT gpt(c, init);
  const Tensor x = ids(4, 8, c.V, 21), y = ids(4, 8, c.V, 22);
  optim::AdamWOptions o;
  o.lr = 3e-3;
  o.weight_decay = 0.0;
  optim::AdamW opt(gpt.named_parameters(), o);
  Generator gen(1);
  double first = 0, last = 0;
  for (int it = 0; it < 300; ++it) {
    Tensor loss = gpt.loss(x, y, gen);
    last = loss.item();
    if (it == 0) first = last;
    loss.backward();
    opt.step();
    opt.zero_grad();
  }
  EXPECT_GT(first, 2.0);
  EXPECT_LT(last, 0.1);
}

TEST(GPT, BadInputIsAClearError) {
  Generator init(3);
  const GPT gpt(small(DType::f32, 0.0), init);
  Generator gen(1);
  EXPECT_NE(error_of([&] { gpt.forward(ids(1, 10, 11, 1), gen); }).find("exceeds the block size"),
            std::string::npos);
  EXPECT_NE(error_of([&] {
              gpt.forward(rnd({1, 3}, 1, DType::f32), gen);
            }).find("integers"),
            std::string::npos);
  EXPECT_NE(error_of([] { models::gpt_preset("gpt5"); }).find("shakespeare-char"),
            std::string::npos);
  GPTConfig bad = small(DType::f32, 0.0);
  bad.remat = "every:0";
  Generator g2(1);
  EXPECT_NE(error_of([&] { GPT m(bad, g2); }).find("every:K"), std::string::npos);
}

}  // namespace
}  // namespace tgtest
