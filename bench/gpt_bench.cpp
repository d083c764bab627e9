// One training step of a GPT on the CPU: forward, cross-entropy, backward, global-norm clipping at
// 1.0 and an AdamW update, the loop `tilegrad train` runs (without its data loading and logging).
// The model is a preset (shakespeare-char by default: 6 layers, 6 heads, width 384, block 256,
// dropout 0.2, V = 65) at batch 8, on random token windows. The peer is the same model and step in
// PyTorch on the CPU (bench/gpt_torch.py), run by bench/gpt_cpu.sh in the same session; the ratio
// of tokens/s is the requirement of docs/BENCHMARKS.md (>= 1.0x).
//
// Args: preset index (0 shakespeare-char, 1 tiny), batch, attention (0 standard, 1 flash).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <string>

#include "models/gpt.h"
#include "optim/adamw.h"
#include "tilegrad/tilegrad.h"

namespace {

using tilegrad::Tensor;

void BM_GPTTrainStep(benchmark::State& state) {
  const std::string preset = state.range(0) == 0 ? "shakespeare-char" : "tiny";
  const int64_t B = state.range(1);
  tilegrad::models::GPTConfig config = tilegrad::models::gpt_preset(preset);
  if (preset == "shakespeare-char") config.V = 65;  // tinyshakespeare's characters
  config.attention =
      state.range(2) == 0 ? tilegrad::AttentionImpl::standard : tilegrad::AttentionImpl::flash;
  tilegrad::Generator init(1);
  tilegrad::models::GPT model(config, init);
  model.train();
  tilegrad::optim::AdamWOptions ao;
  ao.lr = 1e-3;
  ao.beta2 = 0.99;
  ao.weight_decay = 0.1;
  tilegrad::optim::AdamW opt(model.named_parameters(), ao);
  tilegrad::Generator data(2), dropout(3);
  const Tensor x = tilegrad::randint({B, config.T}, 0, config.V, data);
  const Tensor y = tilegrad::randint({B, config.T}, 0, config.V, data);
  auto step = [&] {
    Tensor loss = model.loss(x, y, dropout);
    loss.backward();
    tilegrad::optim::StepOptions so;
    so.max_grad_norm = 1.0;
    opt.step(so);
    opt.zero_grad();
    return loss.item();
  };
  for (int i = 0; i < 2; ++i) step();  // warm-up: optimizer state, allocator cache, page faults
  double loss = 0;
  for (auto _ : state) loss = step();
  state.counters["tokens"] = benchmark::Counter(static_cast<double>(B * config.T),
                                                benchmark::Counter::kIsIterationInvariantRate);
  state.counters["loss"] = loss;
  state.counters["params"] = static_cast<double>(model.num_parameters());
  state.counters["omp_threads"] = omp_get_max_threads();
}

BENCHMARK(BM_GPTTrainStep)
    ->ArgNames({"preset", "B", "flash"})
    ->Args({0, 8, 1})
    ->Args({0, 8, 0})
    ->Args({1, 8, 1})
    ->UseRealTime()
    ->MinTime(5.0)
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
