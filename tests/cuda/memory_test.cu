// GPU tests of the CUDA runtime layer (src/cuda): checked calls, and the caching allocator against
// the memory tracker and against the driver (cudaMemGetInfo). A plain program rather than
// GoogleTest so that it builds on the GPU machine, which has no GoogleTest: exits 0 when every
// check passes, 1 on a failure and 77 (CTest's "skipped") when there is no GPU, as on CI machines.
// It prints the figures docs/CUDA.md quotes (driver cross-check, timings of cached and uncached
// allocations).
#include <cublas_api.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <array>
#include <atomic>
#include <chrono>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "core/storage.h"
#include "cuda/caching_allocator.h"
#include "cuda/check.h"
#include "cuda/stream.h"
#include "memory/allocator.h"
#include "memory/tracker.h"

namespace {

using tilegrad::Category;
using tilegrad::Device;
using tilegrad::kNumCategories;
using tilegrad::MemoryStats;
namespace tc = tilegrad::cuda;

constexpr int64_t kMiB = int64_t{1} << 20;
constexpr int64_t kGiB = int64_t{1} << 30;

int g_failures = 0;

void expect(bool ok, const std::string& what, int line) {
  if (ok) return;
  ++g_failures;
  std::printf("FAIL line %d: %s\n", line, what.c_str());
}
#define EXPECT(cond) expect((cond), #cond, __LINE__)
#define EXPECT_EQ(a, b)                                                                         \
  do {                                                                                          \
    const auto va_ = (a);                                                                       \
    const auto vb_ = (b);                                                                       \
    expect(va_ == vb_,                                                                          \
           std::string(#a " == " #b ": ") + std::to_string(va_) + " vs " + std::to_string(vb_), \
           __LINE__);                                                                           \
  } while (0)

bool contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

tilegrad::MemoryTracker& gpu_tracker() {
  return tilegrad::tracker(Device::cuda(0));
}
tilegrad::Allocator& alloc() {
  return tc::caching_allocator();
}

int64_t driver_used() {
  size_t free_b = 0, total_b = 0;
  TG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  return static_cast<int64_t>(total_b - free_b);
}

// Writes `tag` into the first and last byte of a block and reads them back later: overlapping
// blocks, or a block the allocator gave to two owners, show as a wrong tag.
void tag_block(void* p, size_t n, unsigned char tag) {
  TG_CUDA_CHECK(cudaMemset(p, tag, 1));
  TG_CUDA_CHECK(cudaMemset(static_cast<char*>(p) + n - 1, tag, 1));
}
bool tag_intact(void* p, size_t n, unsigned char tag) {
  unsigned char first = 0, last = 0;
  TG_CUDA_CHECK(cudaMemcpy(&first, p, 1, cudaMemcpyDeviceToHost));
  TG_CUDA_CHECK(cudaMemcpy(&last, static_cast<char*>(p) + n - 1, 1, cudaMemcpyDeviceToHost));
  return first == tag && last == tag;
}

__global__ void noop_kernel(int* p) {
  if (p) *p = 0;
}

// --- checked calls -------------------------------------------------------------------------------

void test_checks() {
  bool threw = false;
  try {
    TG_CUDA_CHECK(cudaSetDevice(1 << 20));
  } catch (const tc::CudaError& e) {
    threw = true;
    const std::string m = e.what();
    std::printf("  example: %s\n", m.c_str());
    EXPECT(contains(m, "cudaSetDevice(1 << 20)"));
    EXPECT(contains(m, "memory_test.cu:"));
    EXPECT(contains(m, "invalid device ordinal"));
    EXPECT(contains(m, "cudaErrorInvalidDevice"));
    EXPECT(e.code() == cudaErrorInvalidDevice);
  }
  EXPECT(threw);
  // The failure is not left behind for the next launch check to report.
  EXPECT(cudaGetLastError() == cudaSuccess);

  threw = false;
  try {
    noop_kernel<<<1, 4096>>>(nullptr);  // more threads than a block may have
    TG_CUDA_CHECK_LAUNCH();
  } catch (const tc::CudaError& e) {
    threw = true;
    std::printf("  example: %s\n", e.what());
    EXPECT(contains(e.what(), "cudaGetLastError()"));
    EXPECT(e.code() != cudaSuccess);
  }
  EXPECT(threw);
  noop_kernel<<<1, 32>>>(nullptr);
  TG_CUDA_CHECK_LAUNCH();  // a good launch after a bad one passes
  TG_CUDA_CHECK(cudaDeviceSynchronize());

  threw = false;
  try {
    const auto unsupported = [] { return CUBLAS_STATUS_NOT_SUPPORTED; };
    TG_CUBLAS_CHECK(unsupported());
  } catch (const tc::CublasError& e) {
    threw = true;
    EXPECT(contains(e.what(), "unsupported()"));
    EXPECT(contains(e.what(), "CUBLAS_STATUS_NOT_SUPPORTED"));
    EXPECT(contains(e.what(), "memory_test.cu:"));
    EXPECT_EQ(e.status(), static_cast<int>(CUBLAS_STATUS_NOT_SUPPORTED));
  }
  EXPECT(threw);
  TG_CUBLAS_CHECK(CUBLAS_STATUS_SUCCESS);
  EXPECT(tc::is_sticky(cudaErrorIllegalAddress));
  EXPECT(!tc::is_sticky(cudaErrorMemoryAllocation));
}

// --- registration and Storage --------------------------------------------------------------------

void test_storage() {
  EXPECT(&tilegrad::allocator_for(Device::cuda(0)) == &alloc());
  const MemoryStats before = gpu_tracker().stats();
  EXPECT(alloc().allocate(0, Category::other) == nullptr);
  {
    tilegrad::Storage s(1000, Device::cuda(0), Category::parameter);
    EXPECT(s.data() != nullptr);
    EXPECT_EQ(
        gpu_tracker().stats().live_of(Category::parameter) - before.live_of(Category::parameter),
        int64_t{1000});
    tag_block(s.data(), 1000, 0x5a);
    EXPECT(tag_intact(s.data(), 1000, 0x5a));
    s.retag(Category::gradient);
    const MemoryStats mid = gpu_tracker().stats();
    EXPECT_EQ(mid.live_of(Category::parameter), before.live_of(Category::parameter));
    EXPECT_EQ(mid.live_of(Category::gradient) - before.live_of(Category::gradient), int64_t{1000});
  }
  const MemoryStats after = gpu_tracker().stats();
  EXPECT_EQ(after.live_total, before.live_total);
  EXPECT_EQ(after.num_allocs - before.num_allocs, int64_t{1});
  EXPECT_EQ(after.num_frees - before.num_frees, int64_t{1});
  // The CPU's tracker saw nothing of it.
  EXPECT_EQ(tilegrad::tracker(Device::cpu()).stats().num_allocs, int64_t{0});
}

// --- reuse
// ----------------------------------------------------------------------------------------

void test_reuse() {
  for (const int64_t n : {int64_t{1}, int64_t{511}, int64_t{512}, int64_t{4097}, kMiB, kMiB + 1,
                          5 * kMiB, 64 * kMiB, 300 * kMiB + 3}) {
    const auto bytes = static_cast<size_t>(n);
    void* p = alloc().allocate(bytes, Category::activation);
    alloc().deallocate(p, bytes, Category::activation);
    const tc::AllocatorStats s0 = tc::allocator_stats(0);
    void* q = alloc().allocate(bytes, Category::activation);
    const tc::AllocatorStats s1 = tc::allocator_stats(0);
    expect(p == q, "same pointer back for " + std::to_string(n) + " bytes", __LINE__);
    EXPECT_EQ(s1.cuda_mallocs, s0.cuda_mallocs);
    EXPECT_EQ(s1.cache_hits - s0.cache_hits, int64_t{1});
    EXPECT(reinterpret_cast<uintptr_t>(q) % 512 == 0);
    alloc().deallocate(q, bytes, Category::activation);
  }
}

// --- random patterns against the tracker ---------------------------------------------------------

struct Live {
  void* p;
  size_t n;
  Category c;
  unsigned char tag;
};

size_t random_size(std::mt19937_64& rng) {
  std::uniform_real_distribution<double> u(0.0, 1.0);
  const double kind = u(rng);
  double lo, hi;  // log2 of the size range
  if (kind < 0.70) {
    lo = 0, hi = 20;  // 1 B .. 1 MiB
  } else if (kind < 0.95) {
    lo = 20, hi = 24;  // 1 .. 16 MiB
  } else {
    lo = 24, hi = 28;  // 16 .. 256 MiB
  }
  return static_cast<size_t>(std::exp2(lo + (hi - lo) * u(rng)));
}

void check_live(const std::vector<Live>& live, const MemoryStats& base, int step) {
  std::array<int64_t, kNumCategories> want{};
  int64_t total = 0;
  for (const Live& l : live) {
    want[static_cast<int>(l.c)] += static_cast<int64_t>(l.n);
    total += static_cast<int64_t>(l.n);
  }
  const MemoryStats s = gpu_tracker().stats();
  bool ok = s.live_total - base.live_total == total;
  for (int c = 0; c < kNumCategories; ++c) ok = ok && s.live[c] - base.live[c] == want[c];
  expect(ok, "tracker live bytes per category at step " + std::to_string(step), __LINE__);
  expect(s.reserved >= s.live_total, "reserved >= live at step " + std::to_string(step), __LINE__);
  const tc::AllocatorStats a = tc::allocator_stats(0);
  expect(a.reserved == s.reserved, "the tracker's reserved is the allocator's", __LINE__);
  expect(a.allocated >= total && a.allocated + a.cached + a.pending == a.reserved,
         "allocated + cached + pending == reserved at step " + std::to_string(step), __LINE__);
}

void check_blocks(std::vector<Live> live) {
  std::sort(live.begin(), live.end(), [](const Live& a, const Live& b) { return a.p < b.p; });
  for (size_t i = 0; i + 1 < live.size(); ++i) {
    const auto end = reinterpret_cast<uintptr_t>(live[i].p) + live[i].n;
    if (end > reinterpret_cast<uintptr_t>(live[i + 1].p)) {
      expect(false, "live blocks overlap", __LINE__);
      break;
    }
  }
  for (const Live& l : live) {
    if (!tag_intact(l.p, l.n, l.tag)) {
      expect(false, "a live block's contents changed", __LINE__);
      break;
    }
  }
}

void test_random_patterns() {
  std::mt19937_64 rng(20261121);
  const MemoryStats base = gpu_tracker().stats();
  std::vector<Live> live;
  int64_t live_bytes = 0;
  const int steps = 4000;
  for (int step = 0; step < steps; ++step) {
    const bool do_alloc = live.empty() || (live_bytes < 6 * kGiB &&
                                           std::uniform_int_distribution<int>(0, 99)(rng) < 55);
    if (do_alloc) {
      const size_t n = random_size(rng);
      const auto c = static_cast<Category>(std::uniform_int_distribution<int>(0, 5)(rng));
      void* p = alloc().allocate(n, c);
      const auto tag = static_cast<unsigned char>(1 + step % 251);
      tag_block(p, n, tag);
      live.push_back({p, n, c, tag});
      live_bytes += static_cast<int64_t>(n);
    } else {
      const size_t i = std::uniform_int_distribution<size_t>(0, live.size() - 1)(rng);
      alloc().deallocate(live[i].p, live[i].n, live[i].c);
      live_bytes -= static_cast<int64_t>(live[i].n);
      live[i] = live.back();
      live.pop_back();
    }
    check_live(live, base, step);
    if (step % 1000 == 999) {
      check_blocks(live);
      // Emptying the cache with blocks live keeps them (and their segments).
      alloc().empty_cache();
      check_live(live, base, step);
      check_blocks(live);
    }
  }
  const tc::AllocatorStats a = tc::allocator_stats(0);
  std::printf(
      "  %d steps, %zu blocks live at the end (%.1f MiB); %lld segments, %lld cudaMallocs, "
      "%lld of %lld allocations from the cache\n",
      steps, live.size(), static_cast<double>(live_bytes) / kMiB,
      static_cast<long long>(a.segments), static_cast<long long>(a.cuda_mallocs),
      static_cast<long long>(a.cache_hits), static_cast<long long>(a.allocations));
  for (const Live& l : live) alloc().deallocate(l.p, l.n, l.c);
  live.clear();
  check_live(live, base, steps);
  EXPECT_EQ(tc::allocator_stats(0).allocated, int64_t{0});
}

// --- threads -------------------------------------------------------------------------------------

void test_threads() {
  const MemoryStats base = gpu_tracker().stats();
  std::vector<std::thread> threads;
  std::atomic<int> errors{0};
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([t, &errors] {
      try {
        TG_CUDA_CHECK(cudaSetDevice(0));
        std::mt19937_64 rng(100 + static_cast<uint64_t>(t));
        std::vector<std::pair<void*, size_t>> mine;
        for (int i = 0; i < 3000; ++i) {
          if (mine.size() < 64 && (mine.empty() || rng() % 2 == 0)) {
            const size_t n = 1 + rng() % (3 * kMiB);
            mine.emplace_back(alloc().allocate(n, Category::workspace), n);
          } else {
            alloc().deallocate(mine.back().first, mine.back().second, Category::workspace);
            mine.pop_back();
          }
        }
        for (auto& [p, n] : mine) alloc().deallocate(p, n, Category::workspace);
      } catch (const std::exception& e) {
        std::printf("  thread: %s\n", e.what());
        ++errors;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(errors.load(), 0);
  const MemoryStats s = gpu_tracker().stats();
  EXPECT_EQ(s.live_total, base.live_total);
  EXPECT_EQ(s.num_allocs - s.num_frees, base.num_allocs - base.num_frees);
}

// --- the driver's view ---------------------------------------------------------------------------

void test_driver_cross_check() {
  alloc().empty_cache();
  TG_CUDA_CHECK(cudaDeviceSynchronize());
  const int64_t used0 = driver_used();
  const int64_t reserved0 = gpu_tracker().stats().reserved;
  std::mt19937_64 rng(7);
  std::vector<Live> live;
  for (int i = 0; i < 2000; ++i) {
    const size_t n = random_size(rng);
    void* p = alloc().allocate(n, Category::activation);
    live.push_back({p, n, Category::activation, 0});
  }
  const int64_t used1 = driver_used();
  const int64_t reserved1 = gpu_tracker().stats().reserved;
  const int64_t d_used = used1 - used0, d_res = reserved1 - reserved0;
  std::printf(
      "  2000 random blocks: driver used +%lld bytes, tracker reserved +%lld bytes "
      "(difference %lld bytes, %lld segments)\n",
      static_cast<long long>(d_used), static_cast<long long>(d_res),
      static_cast<long long>(d_used - d_res),
      static_cast<long long>(tc::allocator_stats(0).segments));
  // Segments are multiples of 2 MiB, the driver's granularity for such sizes; a few MiB of slack
  // cover the driver's own bookkeeping (page tables).
  EXPECT(std::llabs(d_used - d_res) <= 8 * kMiB + d_res / 100);
  for (const Live& l : live) alloc().deallocate(l.p, l.n, l.c);
  // Freed blocks stay cached: the driver still counts them as used.
  const int64_t used2 = driver_used();
  EXPECT_EQ(gpu_tracker().stats().reserved, reserved1);
  EXPECT(std::llabs(used2 - used1) <= 2 * kMiB);
  alloc().empty_cache();
  const int64_t used3 = driver_used();
  std::printf(
      "  after freeing: driver used %+lld bytes against the start (cached); after "
      "empty_cache: %+lld bytes, tracker reserved %lld\n",
      static_cast<long long>(used2 - used0), static_cast<long long>(used3 - used0),
      static_cast<long long>(gpu_tracker().stats().reserved));
  EXPECT_EQ(gpu_tracker().stats().reserved, reserved0);
  EXPECT(std::llabs(used3 - used0) <= 8 * kMiB);
}

// --- streams -------------------------------------------------------------------------------------

struct Gate {
  std::atomic<bool> open{false};
};
void CUDART_CB wait_for_gate(void* gate) {
  while (!static_cast<Gate*>(gate)->open.load())
    std::this_thread::sleep_for(std::chrono::microseconds(50));
}

void test_streams() {
  cudaStream_t a, b;
  TG_CUDA_CHECK(cudaStreamCreateWithFlags(&a, cudaStreamNonBlocking));
  TG_CUDA_CHECK(cudaStreamCreateWithFlags(&b, cudaStreamNonBlocking));
  const size_t n = 4 * kMiB;
  {
    tc::StreamScope on_a(a);
    EXPECT(tc::current_stream() == a);
    void* p = alloc().allocate(n, Category::activation);
    alloc().deallocate(p, n, Category::activation);
    void* q = alloc().allocate(n, Category::activation);
    EXPECT(p == q);  // reusable at once on its own stream
    {
      tc::StreamScope on_b(b);
      void* r = alloc().allocate(n, Category::activation);
      EXPECT(r != p);  // a's cached blocks never serve b
      alloc().deallocate(r, n, Category::activation);
    }
    alloc().deallocate(q, n, Category::activation);
  }
  EXPECT(tc::current_stream() == nullptr);

  // A block used on b, declared with record_stream: not reused on a until b's work has passed.
  {
    tc::StreamScope on_a(a);
    const size_t m = kMiB;
    void* p = alloc().allocate(m, Category::activation);
    // Static, and opened on every way out of this scope: the host function reads it until then.
    static Gate gate;
    gate.open = false;
    struct Opener {
      ~Opener() { gate.open = true; }
    } opener;
    TG_CUDA_CHECK(cudaLaunchHostFunc(b, wait_for_gate, &gate));  // b is busy until the gate opens
    TG_CUDA_CHECK(cudaMemsetAsync(p, 1, m, b));
    tc::record_stream(p, b);
    alloc().deallocate(p, m, Category::activation);
    EXPECT_EQ(tc::allocator_stats(0).pending, static_cast<int64_t>(m));
    void* q = alloc().allocate(m, Category::activation);
    EXPECT(q != p);
    gate.open = true;
    TG_CUDA_CHECK(cudaStreamSynchronize(b));
    alloc().deallocate(q, m, Category::activation);
    void* r = alloc().allocate(m, Category::activation);  // b has finished: p is free again
    EXPECT(r == p);
    EXPECT_EQ(tc::allocator_stats(0).pending, int64_t{0});
    alloc().deallocate(r, m, Category::activation);
  }
  bool threw = false;
  try {
    int x = 0;
    tc::record_stream(&x, b);
  } catch (const tilegrad::Error& e) {
    threw = contains(e.what(), "not a live allocation");
  }
  EXPECT(threw);
  alloc().empty_cache();  // segments of a and b go back before the streams do
  TG_CUDA_CHECK(cudaStreamDestroy(a));
  TG_CUDA_CHECK(cudaStreamDestroy(b));
}

// --- out of memory -------------------------------------------------------------------------------

void test_oom() {
  const size_t keep_n = 3 * kMiB;
  void* keep = alloc().allocate(keep_n, Category::parameter);
  tag_block(keep, keep_n, 0x77);
  const MemoryStats before = gpu_tracker().stats();
  const int64_t ooms0 = tc::allocator_stats(0).ooms;
  const size_t huge = size_t{1} << 40;  // 1 TiB
  bool threw = false;
  try {
    alloc().allocate(huge, Category::activation);
  } catch (const tc::OutOfMemoryError& e) {
    threw = true;
    const std::string m = e.what();
    std::printf("  example: %s\n", m.c_str());
    EXPECT(contains(m, "cuda:0: out of memory"));
    EXPECT(contains(m, "1099511627776 bytes"));
    EXPECT(contains(m, "live in tensors"));
    EXPECT(contains(m, "reserved by tilegrad"));
    EXPECT(contains(m, "free on the device"));
    EXPECT_EQ(e.requested, static_cast<int64_t>(huge));
    EXPECT_EQ(e.live, before.live_total);
    EXPECT(e.device_total > 0 && e.device_free > 0 && e.device_free <= e.device_total);
    EXPECT(e.reserved >= e.live);
  }
  EXPECT(threw);
  EXPECT(cudaGetLastError() == cudaSuccess);
  EXPECT_EQ(tc::allocator_stats(0).ooms - ooms0, int64_t{1});
  // Nothing lost: the live block is intact, the tracker unchanged, and allocation still works.
  EXPECT(tag_intact(keep, keep_n, 0x77));
  const MemoryStats after = gpu_tracker().stats();
  EXPECT_EQ(after.live_total, before.live_total);
  EXPECT_EQ(after.num_allocs, before.num_allocs);
  void* p = alloc().allocate(kMiB, Category::activation);
  EXPECT(p != nullptr);
  alloc().deallocate(p, kMiB, Category::activation);

  // A request that fits only once the cache is returned: fill the device with 1 GiB segments,
  // free them (cached), then ask for more than the driver has free and more than any one segment.
  std::vector<void*> fill;
  size_t free_b = 0, total_b = 0;
  TG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  while (static_cast<int64_t>(free_b) > 3 * kGiB) {
    fill.push_back(alloc().allocate(static_cast<size_t>(kGiB), Category::other));
    TG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  }
  for (void* f : fill) alloc().deallocate(f, static_cast<size_t>(kGiB), Category::other);
  const tc::AllocatorStats s0 = tc::allocator_stats(0);
  const size_t big = free_b + 4 * static_cast<size_t>(kGiB);
  std::printf(
      "  filled %zu GiB in 1 GiB segments, freed them (reserved %.1f GiB, driver free "
      "%.2f GiB); asking for %.2f GiB\n",
      fill.size(), static_cast<double>(s0.reserved) / kGiB, static_cast<double>(free_b) / kGiB,
      static_cast<double>(big) / kGiB);
  void* q = nullptr;
  try {
    q = alloc().allocate(big, Category::activation);
  } catch (const std::exception& e) {
    expect(false, std::string("allocation after returning the cache: ") + e.what(), __LINE__);
  }
  const tc::AllocatorStats s1 = tc::allocator_stats(0);
  EXPECT(q != nullptr);
  EXPECT_EQ(s1.retries - s0.retries, int64_t{1});
  EXPECT(s1.reserved < s0.reserved);  // the cached 1 GiB segments went back to the driver
  EXPECT(tag_intact(keep, keep_n, 0x77));
  if (q) alloc().deallocate(q, big, Category::activation);
  alloc().deallocate(keep, keep_n, Category::parameter);
  alloc().empty_cache();
  EXPECT_EQ(tc::allocator_stats(0).reserved, int64_t{0});
}

// --- timings (printed, not asserted) -------------------------------------------------------------

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void time_allocations() {
  std::printf("  %-10s %22s %22s\n", "size", "cached alloc+free", "cudaMalloc+cudaFree");
  for (const size_t n : {size_t{4096}, size_t{1} << 20, size_t{64} << 20, size_t{1} << 30}) {
    alloc().deallocate(alloc().allocate(n, Category::workspace), n, Category::workspace);
    const int reps = 20000;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < reps; ++i) {
      alloc().deallocate(alloc().allocate(n, Category::workspace), n, Category::workspace);
    }
    const double cached = seconds_since(t0) / reps;
    const int dreps = n >= (size_t{1} << 30) ? 20 : 200;
    t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < dreps; ++i) {
      void* p = nullptr;
      TG_CUDA_CHECK(cudaMalloc(&p, n));
      TG_CUDA_CHECK(cudaFree(p));
    }
    const double driver = seconds_since(t0) / dreps;
    std::printf("  %-10zu %19.3f us %19.1f us\n", n, cached * 1e6, driver * 1e6);
  }
  alloc().empty_cache();
}

bool run(const char* name, const std::function<void()>& f) {
  const int before = g_failures;
  std::printf("== %s\n", name);
  try {
    f();
  } catch (const std::exception& e) {
    ++g_failures;
    std::printf("FAIL %s: exception: %s\n", name, e.what());
  }
  std::printf("   %s\n", g_failures == before ? "ok" : "FAILED");
  return g_failures == before;
}

}  // namespace

int main() {
  if (tc::device_count() == 0) {
    std::printf("skipped: no CUDA device\n");
    return 77;
  }
  cudaDeviceProp prop{};
  TG_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  size_t free_b = 0, total_b = 0;
  TG_CUDA_CHECK(cudaMemGetInfo(&free_b, &total_b));
  std::printf("device: %s, %.1f GiB, %.1f GiB free\n", prop.name,
              static_cast<double>(total_b) / kGiB, static_cast<double>(free_b) / kGiB);
  run("checked calls", test_checks);
  run("registration and Storage", test_storage);
  run("cache reuse", test_reuse);
  run("random patterns against the tracker", test_random_patterns);
  run("threads", test_threads);
  run("tracker against the driver", test_driver_cross_check);
  run("streams", test_streams);
  run("out of memory", test_oom);
  run("timings", time_allocations);
  std::printf("%s: %d failure(s)\n", g_failures == 0 ? "passed" : "FAILED", g_failures);
  return g_failures == 0 ? 0 : 1;
}
