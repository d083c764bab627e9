// Requirement 2: elementwise ops on 64 MiB float32 tensors (16,777,216 elements) run within 2x of
// memcpy bandwidth, i.e. at no less than half the bytes per second of copying the same data.
//
// Bytes are what an op must move at the least: every input read once and the output written once
// (add and mul 3 x 64 MiB, exp 2 x 64 MiB, memcpy 2 x 64 MiB); write-allocate traffic is not
// counted for anyone. The engine runs its loops on all OpenMP threads, so besides plain (single-
// threaded) memcpy there is a peer that splits the copy over the same number of OpenMP threads, and
// a plain OpenMP add loop into a preallocated buffer: the best the hardware does for add's traffic
// without the engine around it. Every result is measured in wall-clock time (the benchmark thread's
// CPU time misses the other threads' work).
#include <benchmark/benchmark.h>
#include <omp.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "tilegrad/tilegrad.h"

namespace {

using tilegrad::Tensor;

constexpr int64_t kElems = int64_t{1} << 24;  // 16,777,216 float32 = 64 MiB
constexpr int64_t kRowLen = 4096;             // broadcast case: [4096, 4096] + [4096]
constexpr double kTensorBytes = static_cast<double>(kElems) * sizeof(float);

void set_counters(benchmark::State& state, double bytes_per_iteration, int threads) {
  state.counters["bytes"] =
      benchmark::Counter(bytes_per_iteration, benchmark::Counter::kIsIterationInvariantRate);
  state.counters["omp_threads"] = threads;
}

// A 64-byte-aligned float buffer whose pages are touched up front, so that the peers do not pay
// first-touch page faults inside the timed loop (the engine's caching allocator avoids them too).
struct Buffer {
  explicit Buffer(int64_t n, float value)
      : p(static_cast<float*>(std::aligned_alloc(64, static_cast<size_t>(n) * sizeof(float)))) {
    if (!p) throw std::bad_alloc();
    for (int64_t i = 0; i < n; ++i) p.get()[i] = value;
  }
  float* data() const { return p.get(); }
  struct Free {
    void operator()(float* q) const { std::free(q); }
  };
  std::unique_ptr<float, Free> p;
};

// The peers' buffers, allocated and touched once (see Operands below for why once).
struct PeerBuffers {
  static const PeerBuffers& get() {
    static const PeerBuffers buffers;
    return buffers;
  }
  Buffer a{kElems, 1.0f}, b{kElems, 2.0f}, c{kElems, 0.0f};
};

// ---- peers ----

void BM_Memcpy(benchmark::State& state) {
  const Buffer& src = PeerBuffers::get().a;
  const Buffer& dst = PeerBuffers::get().c;
  for (auto _ : state) {
    std::memcpy(dst.data(), src.data(), static_cast<size_t>(kTensorBytes));
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2 * kTensorBytes, 1);
}

// memcpy split into one contiguous slice per OpenMP thread: the same thread count the engine uses.
void BM_MemcpyParallel(benchmark::State& state) {
  const Buffer& src = PeerBuffers::get().a;
  const Buffer& dst = PeerBuffers::get().c;
  const int threads = omp_get_max_threads();
  for (auto _ : state) {
#pragma omp parallel num_threads(threads)
    {
      const int64_t t = omp_get_thread_num(), nt = omp_get_num_threads();
      const int64_t lo = kElems * t / nt, hi = kElems * (t + 1) / nt;
      std::memcpy(dst.data() + lo, src.data() + lo, static_cast<size_t>(hi - lo) * sizeof(float));
    }
    benchmark::DoNotOptimize(dst.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, 2 * kTensorBytes, threads);
}

// c = a + b as a bare OpenMP loop into a preallocated c: shows how much of the engine's add time is
// the memory traffic itself rather than the engine.
void BM_AddRawLoop(benchmark::State& state) {
  const PeerBuffers& buf = PeerBuffers::get();
  const Buffer &a = buf.a, &b = buf.b, &c = buf.c;
  float* pc = c.data();
  const float* pa = a.data();
  const float* pb = b.data();
  for (auto _ : state) {
#pragma omp parallel for schedule(static)
    for (int64_t i = 0; i < kElems; ++i) pc[i] = pa[i] + pb[i];
    benchmark::DoNotOptimize(pc);
    benchmark::ClobberMemory();
  }
  set_counters(state, 3 * kTensorBytes, omp_get_max_threads());
}

// ---- engine ops (results allocated per call, as in a forward pass; no graph is recorded) ----

// Created once and shared by every engine benchmark: Google Benchmark calls a benchmark function
// several times (to pick the iteration count, then once per repetition), and drawing 33 million
// random numbers each time would dominate the run.
struct Operands {
  static const Operands& get() {
    static const Operands operands;
    return operands;
  }

 private:
  Operands() {
    tilegrad::Generator gen(7);
    a = tilegrad::rand_uniform({kElems / kRowLen, kRowLen}, gen, -1.0, 1.0);
    b = tilegrad::rand_uniform({kElems / kRowLen, kRowLen}, gen, -1.0, 1.0);
    row = tilegrad::rand_uniform({kRowLen}, gen, -1.0, 1.0);
  }

 public:
  Tensor a, b, row;
};

// Runs op once outside the loop (the first output block is fresh memory from the system; later ones
// come from the allocator's cache), then times it.
template <class Op>
void run_engine(benchmark::State& state, Op op, double bytes_per_iteration) {
  tilegrad::NoGradGuard no_grad;
  benchmark::DoNotOptimize(op().data());
  for (auto _ : state) {
    Tensor out = op();
    benchmark::DoNotOptimize(out.data());
    benchmark::ClobberMemory();
  }
  set_counters(state, bytes_per_iteration, omp_get_max_threads());
}

void BM_Add(benchmark::State& state) {
  const Operands& x = Operands::get();
  run_engine(
      state, [&] { return tilegrad::add(x.a, x.b); }, 3 * kTensorBytes);
}

void BM_Mul(benchmark::State& state) {
  const Operands& x = Operands::get();
  run_engine(
      state, [&] { return tilegrad::mul(x.a, x.b); }, 3 * kTensorBytes);
}

void BM_Exp(benchmark::State& state) {
  const Operands& x = Operands::get();
  run_engine(
      state, [&] { return tilegrad::exp(x.a); }, 2 * kTensorBytes);
}

// [4096, 4096] + [4096]: the bias-add pattern. The row is read once per row of a, but it stays in
// cache, so it counts once (16 KiB, negligible).
void BM_AddRowBroadcast(benchmark::State& state) {
  const Operands& x = Operands::get();
  run_engine(
      state, [&] { return tilegrad::add(x.a, x.row); },
      2 * kTensorBytes + static_cast<double>(kRowLen) * sizeof(float));
}

#define TG_BANDWIDTH_BENCH(fn) BENCHMARK(fn)->UseRealTime()->Unit(benchmark::kMillisecond)
TG_BANDWIDTH_BENCH(BM_Memcpy);
TG_BANDWIDTH_BENCH(BM_MemcpyParallel);
TG_BANDWIDTH_BENCH(BM_AddRawLoop);
TG_BANDWIDTH_BENCH(BM_Add);
TG_BANDWIDTH_BENCH(BM_Mul);
TG_BANDWIDTH_BENCH(BM_Exp);
TG_BANDWIDTH_BENCH(BM_AddRowBroadcast);

}  // namespace

BENCHMARK_MAIN();
