// Attention memory, as the tracker counts it: the extra bytes of one forward + backward (everything
// allocated beyond the inputs and the upstream gradient, at its peak) and the largest single
// allocation. Flash's extra memory grows linearly in N and it never allocates an N x N buffer;
// standard's grows as N².
#include <omp.h>

#include <algorithm>

#include "ops/attention_harness.h"

namespace tgtest {
namespace {

struct Footprint {
  int64_t peak = 0;     // peak live bytes above the baseline
  int64_t largest = 0;  // largest single allocation
};

Footprint measure(int64_t N, int64_t D, AttentionImpl impl, bool causal) {
  const Tensor q = rnd({1, 1, N, D}, 1, DType::f32).set_requires_grad(true);
  const Tensor k = rnd({1, 1, N, D}, 2, DType::f32).set_requires_grad(true);
  const Tensor v = rnd({1, 1, N, D}, 3, DType::f32).set_requires_grad(true);
  const Tensor dout = rnd({1, 1, N, D}, 4, DType::f32);
  AttentionOptions o;
  o.impl = impl;
  o.causal = causal;
  Footprint f;
  {
    MemoryScope scope(/*record_timeline=*/true);
    {
      const AttentionResult r = attention(q, k, v, o);
      r.out.backward(dout);
    }
    f.peak = scope.peak_delta();
    for (const MemoryEvent& e : scope.events()) {
      if (e.alloc) f.largest = std::max(f.largest, e.bytes);
    }
  }
  return f;
}

// What flash holds at its peak (float32): the output, dq, dk, dv and one partial dq per thread
// ((4 + threads) N·D floats), the logsumexp and Dvec (2 N floats), and per-thread tiles that do not
// depend on N (256 KiB a thread for D = 64 with the default tiles; 4 MiB allowed).
int64_t linear_bound(int64_t N, int64_t D) {
  return ((4 + omp_get_max_threads()) * N * D + 2 * N) * 4 + (4 << 20);
}

TEST(AttentionMemory, FlashExtraMemoryGrowsLinearlyInN) {
  const int64_t D = 64;
  Footprint prev = measure(1024, D, AttentionImpl::flash, false);
  for (int64_t N : {2048, 4096}) {
    const Footprint f = measure(N, D, AttentionImpl::flash, false);
    SCOPED_TRACE("N = " + std::to_string(N));
    // Doubling N at most doubles the extra memory (a constant part — the per-thread tiles — makes
    // the ratio smaller); an N² term would push it towards 4.
    EXPECT_LE(static_cast<double>(f.peak), 2.05 * static_cast<double>(prev.peak))
        << f.peak << " bytes after " << prev.peak;
    EXPECT_LE(f.peak, linear_bound(N, D));
    prev = f;
  }
}

TEST(AttentionMemory, FlashAtN16384AllocatesNoNSquaredBuffer) {
  // N = 16384, D = 64: an N x N float32 matrix would be 1 GiB. Causal, which halves the work, not
  // the buffers: the tiles and workspace do not depend on the mask.
  const int64_t N = 16384, D = 64;
  const Footprint f = measure(N, D, AttentionImpl::flash, true);
  EXPECT_LT(f.largest, N * N) << "largest allocation " << f.largest << " bytes";
  EXPECT_LE(f.peak, linear_bound(N, D)) << "peak " << f.peak << " bytes";
}

TEST(AttentionMemory, StandardExtraMemoryGrowsAsNSquared) {
  const int64_t D = 64;
  Footprint prev = measure(512, D, AttentionImpl::standard, false);
  for (int64_t N : {1024, 2048}) {
    const Footprint f = measure(N, D, AttentionImpl::standard, false);
    SCOPED_TRACE("N = " + std::to_string(N));
    // P [N, N] is saved and an [N, N] scratch is live with it, in the forward and the backward.
    EXPECT_GE(f.largest, N * N * 4);
    EXPECT_GE(f.peak, 2 * N * N * 4);
    // Doubling N more than triples it (the linear part — output and gradients — keeps the ratio
    // under 4 at these sizes); linear growth would at most double it.
    EXPECT_GE(static_cast<double>(f.peak), 3.0 * static_cast<double>(prev.peak))
        << f.peak << " bytes after " << prev.peak;
    prev = f;
  }
}

}  // namespace
}  // namespace tgtest
