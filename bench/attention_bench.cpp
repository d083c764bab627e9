// Attention on the CPU: flash against standard, forward and forward + backward, float32, B = 1,
// H = 2, N = Nq = Nk in {1024, 2048, 4096, 8192}, D in {64, 128}, no mask; and the peer the flash
// forward is measured against, OpenBLAS's cblas_sgemm on square matrices with the same threads.
// Requirements (docs/BENCHMARKS.md): flash faster than standard for N >= 2048, and flash forward at
// >= 50% of the sgemm GFLOP/s.
//
// FLOP counters use the model count of FlashAttention's papers, the same for both implementations:
// 4 · B · H · N² · D for the forward (two products), 3.5x that for forward + backward (the
// backward's five products, one of them flash's recomputation of S, counted as 2.5 forwards).
// Standard does one product less in its backward, so for forward + backward compare times, not FLOP
// rates.
//
// BM_FlashFastMemory sweeps the fast-memory size M that sets the flash tiles (B_c = ceil(M/4D),
// B_r = min(B_c, D)); kDefaultFastMemory was chosen from it.
#include <benchmark/benchmark.h>
#include <cblas.h>
#include <omp.h>

#include <cstdint>
#include <map>
#include <tuple>
#include <vector>

#include "tilegrad/tilegrad.h"

namespace {

using tilegrad::AttentionImpl;
using tilegrad::AttentionOptions;
using tilegrad::Tensor;

constexpr int64_t kB = 1, kH = 2;

struct Inputs {
  Inputs(int64_t N, int64_t D) {
    tilegrad::Generator gen(7);
    q = tilegrad::rand_uniform({kB, kH, N, D}, gen, -1.0, 1.0);
    k = tilegrad::rand_uniform({kB, kH, N, D}, gen, -1.0, 1.0);
    v = tilegrad::rand_uniform({kB, kH, N, D}, gen, -1.0, 1.0);
    dout = tilegrad::rand_uniform({kB, kH, N, D}, gen, -1.0, 1.0);
  }
  // Drawn once per shape: Google Benchmark calls a benchmark function several times.
  static const Inputs& get(int64_t N, int64_t D) {
    static std::map<std::pair<int64_t, int64_t>, Inputs> cache;
    return cache.try_emplace({N, D}, N, D).first->second;
  }
  Tensor q, k, v, dout;
};

void set_counters(benchmark::State& state, double flops) {
  state.counters["FLOP"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["omp_threads"] = omp_get_max_threads();
  state.counters["blas_threads"] = openblas_get_num_threads();
}

// One forward, or one forward + backward, of attention on the inputs of (N, D).
void run(const Inputs& in, const AttentionOptions& o, bool backward) {
  if (!backward) {
    tilegrad::NoGradGuard no_grad;
    const Tensor out = tilegrad::attention(in.q, in.k, in.v, o).out;
    benchmark::DoNotOptimize(out.data());
    return;
  }
  const Tensor q = in.q.detach().set_requires_grad(true);
  const Tensor k = in.k.detach().set_requires_grad(true);
  const Tensor v = in.v.detach().set_requires_grad(true);
  tilegrad::attention(q, k, v, o).out.backward(in.dout);
  benchmark::DoNotOptimize(q.grad().data());
}

// Args: implementation (0 standard, 1 flash), backward (0/1), N, D.
void BM_Attention(benchmark::State& state) {
  const auto impl = state.range(0) == 0 ? AttentionImpl::standard : AttentionImpl::flash;
  const bool backward = state.range(1) != 0;
  const int64_t N = state.range(2), D = state.range(3);
  const Inputs& in = Inputs::get(N, D);
  AttentionOptions o;
  o.impl = impl;
  run(in, o, backward);  // warm-up: page faults of fresh buffers, thread start-up
  for (auto _ : state) run(in, o, backward);
  const double fwd = 4.0 * kB * kH * static_cast<double>(N) * static_cast<double>(N) * D;
  set_counters(state, backward ? 3.5 * fwd : fwd);
}

// Args: implementation, backward, N, D, as BM_Attention, with a causal mask: flash skips the tiles
// above the diagonal, standard computes and then masks them. The FLOP counter counts the visible
// half (N (N + 1) / 2 pairs per head).
void BM_AttentionCausal(benchmark::State& state) {
  const int64_t N = state.range(2), D = state.range(3);
  const bool backward = state.range(1) != 0;
  const Inputs& in = Inputs::get(N, D);
  AttentionOptions o;
  o.impl = state.range(0) == 0 ? AttentionImpl::standard : AttentionImpl::flash;
  o.causal = true;
  run(in, o, backward);
  for (auto _ : state) run(in, o, backward);
  const double fwd = 4.0 * kB * kH * static_cast<double>(N) * static_cast<double>(N + 1) / 2 * D;
  set_counters(state, backward ? 3.5 * fwd : fwd);
}

// Args: M (elements), backward (0/1), N, D. Flash only.
void BM_FlashFastMemory(benchmark::State& state) {
  const int64_t M = state.range(0), N = state.range(2), D = state.range(3);
  const bool backward = state.range(1) != 0;
  const Inputs& in = Inputs::get(N, D);
  AttentionOptions o;
  o.fast_memory = M;
  run(in, o, backward);
  for (auto _ : state) run(in, o, backward);
  const double fwd = 4.0 * kB * kH * static_cast<double>(N) * static_cast<double>(N) * D;
  set_counters(state, backward ? 3.5 * fwd : fwd);
  const tilegrad::FlashBlocks fb = tilegrad::flash_blocks(M, D);
  state.counters["B_r"] = static_cast<double>(fb.r);
  state.counters["B_c"] = static_cast<double>(fb.c);
}

// Args: B_r, B_c, backward (0/1), N, D. Flash with the tiles set directly (not from M).
void BM_FlashTiles(benchmark::State& state) {
  const int64_t N = state.range(3), D = state.range(4);
  const bool backward = state.range(2) != 0;
  const Inputs& in = Inputs::get(N, D);
  AttentionOptions o;
  o.block_r = state.range(0);
  o.block_c = state.range(1);
  run(in, o, backward);
  for (auto _ : state) run(in, o, backward);
  const double fwd = 4.0 * kB * kH * static_cast<double>(N) * static_cast<double>(N) * D;
  set_counters(state, backward ? 3.5 * fwd : fwd);
}

// The peer: a square float32 GEMM through OpenBLAS (its own threads), as in bench_matmul.
void BM_Sgemm(benchmark::State& state) {
  const int64_t n = state.range(0);
  tilegrad::Generator gen(42);
  const Tensor a = tilegrad::rand_uniform({n, n}, gen, -1.0, 1.0);
  const Tensor b = tilegrad::rand_uniform({n, n}, gen, -1.0, 1.0);
  std::vector<float> c(static_cast<size_t>(n * n));
  const auto dim = static_cast<blasint>(n);
  auto multiply = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0f, a.data_ptr<float>(),
                dim, b.data_ptr<float>(), dim, 0.0f, c.data(), dim);
  };
  multiply();
  for (auto _ : state) {
    multiply();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2.0 * static_cast<double>(n) * static_cast<double>(n) * n);
}

BENCHMARK(BM_Sgemm)->Arg(1024)->Arg(2048)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_Attention)
    ->ArgNames({"flash", "bwd", "N", "D"})
    ->ArgsProduct({{0, 1}, {0, 1}, {1024, 2048, 4096, 8192}, {64, 128}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_AttentionCausal)
    ->ArgNames({"flash", "bwd", "N", "D"})
    ->ArgsProduct({{0, 1}, {0, 1}, {4096}, {64, 128}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FlashTiles)
    ->ArgNames({"B_r", "B_c", "bwd", "N", "D"})
    ->ArgsProduct({{64, 128, 256}, {128, 256, 512}, {0, 1}, {4096}, {64, 128}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);
BENCHMARK(BM_FlashFastMemory)
    ->ArgNames({"M", "bwd", "N", "D"})
    ->ArgsProduct({{16384, 32768, 65536, 131072, 262144, 524288}, {0, 1}, {4096}, {64, 128}})
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
