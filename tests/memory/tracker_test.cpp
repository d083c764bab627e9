// The tracker counts exact payload bytes by category, with nested scopes, peaks and a timeline.
#include "testing.h"

namespace tgtest {
namespace {

TEST(Tracker, ExactPayloadBytesPerDtype) {
  const std::pair<DType, int64_t> sizes[] = {{DType::f64, 8}, {DType::f32, 4}, {DType::bf16, 2},
                                             {DType::f16, 2}, {DType::i32, 4}, {DType::i64, 8},
                                             {DType::u8, 1}};
  for (const auto& [dt, sz] : sizes) {
    MemoryScope scope;
    const Tensor t = empty({3, 7, 5}, {dt});
    EXPECT_EQ(scope.delta().live_total, 3 * 7 * 5 * sz) << dtype_name(dt);
    EXPECT_EQ(scope.delta().live_of(Category::other), 3 * 7 * 5 * sz);
  }
}

TEST(Tracker, ViewsAllocateNothingAndFreesAreCounted) {
  MemoryScope scope;
  {
    const Tensor t = zeros({100, 10}, {DType::f32});
    const Tensor v = t.t().slice(0, 2, 7).unsqueeze(0);
    EXPECT_EQ(scope.delta().live_total, 4000);
  }
  EXPECT_EQ(scope.delta().live_total, 0);
  EXPECT_EQ(scope.peak_delta(), 4000);
  EXPECT_EQ(scope.delta().num_allocs, 1);
  EXPECT_EQ(scope.delta().num_frees, 1);
}

TEST(Tracker, CategoriesFromScopesOpsAndRetagging) {
  MemoryScope scope;
  const Tensor w = zeros({10, 10}, {DType::f64});  // factory: other
  w.set_category(Category::parameter);
  Tensor opt_state;
  {
    CategoryScope cat(Category::optimizer_state);
    opt_state = zeros({10, 10}, {DType::f64});
  }
  const Tensor a = exp(w);  // op result: activation
  const MemoryStats d = scope.delta();
  EXPECT_EQ(d.live_of(Category::parameter), 800);
  EXPECT_EQ(d.live_of(Category::optimizer_state), 800);
  EXPECT_EQ(d.live_of(Category::activation), 800);
  EXPECT_EQ(d.live_of(Category::other), 0);
  EXPECT_EQ(d.live_total, 2400);
}

TEST(Tracker, NestedScopesKeepTheirOwnPeaks) {
  MemoryScope outer;
  Tensor big = zeros({1000}, {DType::f64});  // 8000 bytes
  big = Tensor();
  MemoryScope inner;
  const Tensor small = zeros({10}, {DType::f64});
  EXPECT_EQ(inner.peak_delta(), 80);
  EXPECT_EQ(outer.peak_delta(), 8000);
  inner.reset_peak();
  EXPECT_EQ(inner.peak_delta(), 80);
}

TEST(Tracker, TimelineCarriesOpNamesAndCategories) {
  const Tensor a = rnd({4, 4}, 1).set_requires_grad(true);
  MemoryScope scope(/*record_timeline=*/true);
  {
    const Tensor y = sum(matmul(a, a));
    y.backward();
  }
  const auto events = scope.events();
  ASSERT_FALSE(events.empty());
  bool saw_matmul_fwd = false, saw_grad = false;
  int64_t live = 0;
  for (const MemoryEvent& e : events) {
    live += e.alloc ? e.bytes : -e.bytes;
    EXPECT_EQ(e.live_after - scope.snapshot().live_total + scope.delta().live_total, live)
        << "live_after must track the running sum";
    if (e.alloc && e.op == "matmul" && e.category == Category::activation) saw_matmul_fwd = true;
    if (e.alloc && e.category == Category::gradient) saw_grad = true;
  }
  EXPECT_TRUE(saw_matmul_fwd);
  EXPECT_TRUE(saw_grad);
}

TEST(Tracker, KernelWorkspaceIsTracked) {
  // bf16 GEMM widens its operands into float32 workspace: it must show as `workspace` while it runs
  // and be gone afterwards.
  const Tensor a = rnd({16, 32}, 2, DType::bf16), b = rnd({32, 8}, 3, DType::bf16);
  MemoryScope scope;
  const Tensor c = matmul(a, b);
  EXPECT_EQ(scope.delta().live_of(Category::workspace), 0);
  EXPECT_EQ(scope.snapshot().peak_of(Category::workspace) - 0,
            scope.snapshot().peak_of(Category::workspace));
  EXPECT_GE(scope.snapshot().peak_total - scope.delta().live_total,
            0);  // sanity
  EXPECT_EQ(scope.peak_delta(), 16 * 8 * 2 + (16 * 32 + 32 * 8 + 16 * 8) * 4);
}

TEST(Tracker, AllocatorCachesLargeBlocksAsReservedNotLive) {
  Allocator& alloc = allocator_for(Device::cpu());
  alloc.empty_cache();
  const int64_t live0 = tracker().stats().live_total;
  { const Tensor t = empty({1 << 20}, {DType::f32}); }  // 4 MiB: cached on free
  const MemoryStats s = tracker().stats();
  EXPECT_EQ(s.live_total, live0);
  EXPECT_GE(s.reserved, 4 << 20);
  alloc.empty_cache();
  EXPECT_LT(tracker().stats().reserved, 4 << 20);
}

TEST(Tracker, ReportTableListsEveryCategory) {
  const std::string t = tracker().stats().table();
  for (const char* c :
       {"parameter", "gradient", "optimizer_state", "activation", "workspace", "other", "total"}) {
    EXPECT_NE(t.find(c), std::string::npos) << c;
  }
}

// Without CUDA in the build, or without a GPU, a tensor on cuda:0 is a clear error naming the
// device; with both, its bytes are tracked on cuda:0's tracker and given back with it.
TEST(Tracker, CudaTensorsAreTrackedOrAClearError) {
  const int64_t before = tracker(Device::cuda()).stats().live_total;
  try {
    {
      const Tensor t = empty({2}, {DType::f32, Device::cuda()});
      EXPECT_EQ(tracker(Device::cuda()).stats().live_total, before + 8);
    }
    EXPECT_EQ(tracker(Device::cuda()).stats().live_total, before);
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("cuda:0"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace tgtest
