// Requirement 3: the backward of a 10,000-node chain of tiny ops takes under 50 ms.
//
// With 16-element tensors the arithmetic is negligible, so this measures the engine's fixed cost
// per node: scheduling, gradient buffers, the op call inside each backward node, allocation of tiny
// tensors. Two chains, both on a 16-element float32 leaf and ending in sum() (which adds one node,
// plus the leaf's accumulator):
//   affine: y = y * 1.0001 + 0.001 repeated 5,000 times (10,000 scalar-op nodes, nothing saved);
//   tanh:   y = tanh(y) repeated 10,000 times (each node saves its 16-element output).
// The forward build and the backward are timed separately, each by hand (manual time), so that
// neither includes building or tearing down the graph the other needs.
#include <benchmark/benchmark.h>

#include <chrono>
#include <cstdint>

#include "tilegrad/tilegrad.h"

namespace {

using tilegrad::Tensor;
using Clock = std::chrono::steady_clock;

constexpr int64_t kElems = 16;

enum class Chain { affine, tanh };

Tensor make_leaf() {
  Tensor x = tilegrad::full({kElems}, 0.5);
  x.set_requires_grad(true);
  return x;
}

// The chain's root: sum of `nodes` ops applied to x.
Tensor build_chain(const Tensor& x, Chain kind, int64_t nodes) {
  Tensor y = x;
  if (kind == Chain::affine) {
    for (int64_t i = 0; i < nodes / 2; ++i) y = y * 1.0001 + 0.001;
  } else {
    for (int64_t i = 0; i < nodes; ++i) y = tilegrad::tanh(y);
  }
  return tilegrad::sum(y);
}

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

void set_counters(benchmark::State& state, int64_t nodes) {
  state.counters["nodes"] = static_cast<double>(nodes);
  // Time per node (the counter is nodes per second inverted: seconds per node).
  state.counters["per_node"] =
      benchmark::Counter(static_cast<double>(nodes), benchmark::Counter::kIsIterationInvariantRate |
                                                         benchmark::Counter::kInvert);
}

void BM_ChainForward(benchmark::State& state, Chain kind) {
  const int64_t nodes = state.range(0);
  for (auto _ : state) {
    const Tensor x = make_leaf();
    const auto start = Clock::now();
    Tensor loss = build_chain(x, kind, nodes);
    state.SetIterationTime(seconds_since(start));
    benchmark::DoNotOptimize(loss.data());
    // The graph is destroyed here, outside the timed part.
  }
  set_counters(state, nodes);
}

void BM_ChainBackward(benchmark::State& state, Chain kind) {
  const int64_t nodes = state.range(0);
  for (auto _ : state) {
    const Tensor x = make_leaf();
    Tensor loss = build_chain(x, kind, nodes);
    const auto start = Clock::now();
    loss.backward();
    state.SetIterationTime(seconds_since(start));
    benchmark::DoNotOptimize(x.grad().data());
  }
  set_counters(state, nodes);
}

// 1,000 nodes as well as 10,000: the time per node should not grow with the chain's length.
#define TG_CHAIN_BENCH(fn, kind)           \
  BENCHMARK_CAPTURE(fn, kind, Chain::kind) \
      ->Arg(1000)                          \
      ->Arg(10000)                         \
      ->UseManualTime()                    \
      ->Unit(benchmark::kMillisecond)
TG_CHAIN_BENCH(BM_ChainForward, affine);
TG_CHAIN_BENCH(BM_ChainBackward, affine);
TG_CHAIN_BENCH(BM_ChainForward, tanh);
TG_CHAIN_BENCH(BM_ChainBackward, tanh);

}  // namespace

BENCHMARK_MAIN();
