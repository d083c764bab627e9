// Requirement 1: a float32 matmul through the engine reaches at least 90% of the throughput of
// calling OpenBLAS's cblas_sgemm directly, at 1024 x 1024 x 1024.
//
// Both sides multiply the same input buffers. The engine call allocates its output every time
// (that is what a training step does, and the caching allocator is meant to make it cheap); the
// direct call writes into one preallocated matrix. Both are measured in wall-clock time because
// OpenBLAS runs on several threads and the benchmark thread's CPU time would miss the others.
#include <benchmark/benchmark.h>
#include <cblas.h>

#include <cstdint>
#include <map>
#include <vector>

#include "tilegrad/tilegrad.h"

namespace {

using tilegrad::Tensor;

// FLOP/s (2·M·N·K per multiply) and OpenBLAS's thread count, reported alongside the time.
void set_counters(benchmark::State& state, int64_t n) {
  const double flops =
      2.0 * static_cast<double>(n) * static_cast<double>(n) * static_cast<double>(n);
  state.counters["FLOP"] = benchmark::Counter(flops, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["blas_threads"] = openblas_get_num_threads();
}

// Square n x n inputs with values of moderate size (the speed of sgemm does not depend on them, but
// denormals or NaNs would be a distraction). Both benchmarks multiply the very same buffers.
struct Inputs {
  explicit Inputs(int64_t n) {
    tilegrad::Generator gen(42);
    a = tilegrad::rand_uniform({n, n}, gen, -1.0, 1.0);
    b = tilegrad::rand_uniform({n, n}, gen, -1.0, 1.0);
  }
  // Drawn once per size: Google Benchmark calls a benchmark function several times.
  static const Inputs& get(int64_t n) {
    static std::map<int64_t, Inputs> cache;
    return cache.try_emplace(n, n).first->second;
  }
  Tensor a, b;
};

void BM_MatmulEngine(benchmark::State& state) {
  const int64_t n = state.range(0);
  const Inputs& in = Inputs::get(n);
  // One call outside the loop: the first output block comes from the system (page faults) and
  // OpenBLAS starts its threads; neither recurs in a training loop.
  benchmark::DoNotOptimize(tilegrad::matmul(in.a, in.b).data());
  for (auto _ : state) {
    Tensor c = tilegrad::matmul(in.a, in.b);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

void BM_MatmulCblas(benchmark::State& state) {
  const int64_t n = state.range(0);
  const Inputs& in = Inputs::get(n);
  const auto* a = in.a.data_ptr<float>();
  const auto* b = in.b.data_ptr<float>();
  std::vector<float> c(static_cast<size_t>(n * n));  // zero-filled, so its pages are already mapped
  const auto dim = static_cast<blasint>(n);
  auto multiply = [&] {
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, dim, dim, dim, 1.0f, a, dim, b, dim,
                0.0f, c.data(), dim);
  };
  multiply();  // warm-up, as for the engine
  for (auto _ : state) {
    multiply();
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, n);
}

BENCHMARK(BM_MatmulEngine)->Arg(1024)->UseRealTime()->Unit(benchmark::kMillisecond);
BENCHMARK(BM_MatmulCblas)->Arg(1024)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace

BENCHMARK_MAIN();
