// Extrapolating a peak event by event (memory/extrapolate.h), on timelines made here of a forward
// and a backward over g identical units: the extrapolation from g = 1, 2 (and 2, 3) equals the
// peak of the timeline with G units, total and split, over random sizes, including the ones where
// the two small timelines peak at different points and their peaks alone extrapolate wrongly.
#include "memory/extrapolate.h"

#include <random>

#include "testing.h"

namespace tgtest {
namespace {

// Byte sizes of the made-up computation: first each unit's state, in two runs; each unit's forward
// keeps `act` activations and uses a transient; the middle part (a head) makes `logits` and frees
// them; each unit's backward makes `grad` gradients, frees its activations and uses a transient of
// `bwd_tmp`, which appears twice (the same event twice in one unit, so that units can pair up in
// more than one way); the epilogue makes `tail` bytes with every gradient live, then a table whose
// size grows with g.
struct Sizes {
  int64_t act, fwd_tmp, logits, grad, bwd_tmp, tail;
};

struct Maker {
  Timeline t;
  CategoryBytes live{};

  void event(bool alloc, Category c, int64_t bytes, const char* op) {
    MemoryEvent e;
    e.alloc = alloc;
    e.category = c;
    e.bytes = bytes;
    e.op = op;
    live[static_cast<size_t>(c)] += alloc ? bytes : -bytes;
    e.live_by_category = live;
    for (const int64_t v : live) e.live_after += v;
    e.seq = static_cast<int64_t>(t.events.size());
    t.events.push_back(e);
  }
};

Timeline make(int g, const Sizes& s) {
  Maker m;
  m.live[static_cast<size_t>(Category::parameter)] = 1000;
  m.t.open = m.live;
  // Two runs of allocations of one kind (an optimizer's state, tensor by tensor, in two groups).
  for (int u = 0; u < g; ++u) {
    m.event(true, Category::optimizer_state, s.act + 1, "");
    m.event(true, Category::optimizer_state, s.grad + 2, "");
  }
  for (int u = 0; u < g; ++u) m.event(true, Category::optimizer_state, s.bwd_tmp + 3, "");
  m.event(true, Category::activation, 64, "embedding");
  for (int u = 0; u < g; ++u) {
    m.event(true, Category::workspace, s.fwd_tmp, "block");
    m.event(true, Category::activation, s.act, "block");
    m.event(false, Category::workspace, s.fwd_tmp, "block");
  }
  m.event(true, Category::activation, s.logits, "head");
  m.event(true, Category::gradient, s.logits, "head backward");
  m.event(false, Category::activation, s.logits, "head");
  m.event(false, Category::gradient, s.logits, "head backward");
  for (int u = 0; u < g; ++u) {
    m.event(true, Category::gradient, s.bwd_tmp, "block backward");
    m.event(false, Category::gradient, s.bwd_tmp, "block backward");
    m.event(true, Category::gradient, s.grad, "block backward");
    m.event(true, Category::gradient, s.bwd_tmp, "block backward");
    m.event(false, Category::gradient, s.bwd_tmp, "block backward");
    m.event(false, Category::activation, s.act, "block backward");
  }
  m.event(true, Category::gradient, s.tail, "embedding backward");
  m.event(false, Category::gradient, s.tail, "embedding backward");
  m.event(false, Category::activation, 64, "embedding backward");
  // A table with an entry per unit (an optimizer's list of tensors): its size grows with g.
  m.event(true, Category::workspace, 8 + 16 * g, "step");
  m.event(false, Category::workspace, 8 + 16 * g, "step");
  return m.t;
}

// The timeline's own peak: the live bytes by category at the first event reaching the highest
// total (or at its start).
ExtrapolatedPeak own_peak(const Timeline& t) {
  ExtrapolatedPeak p{t.open, 0};
  for (const int64_t v : t.open) p.total += v;
  for (const MemoryEvent& e : t.events) {
    if (e.live_after <= p.total) continue;
    p.total = e.live_after;
    p.at_peak = e.live_by_category;
  }
  return p;
}

TEST(ExtrapolatePeak, EqualsThePeakOfTheLargerTimelineEventByEvent) {
  std::mt19937_64 rng(20261123);
  auto draw = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  int peak_to_peak_wrong = 0;
  for (int trial = 0; trial < 300; ++trial) {
    const Sizes s{draw(1, 500), draw(1, 900), draw(1, 3000),
                  draw(1, 500), draw(1, 900), draw(1, 3000)};
    const int g = static_cast<int>(draw(1, 2));
    const int G = g + static_cast<int>(draw(1, 9));
    const Timeline one = make(g, s), two = make(g + 1, s), full = make(G, s);
    const std::optional<ExtrapolatedPeak> e = extrapolate_peak(one, two, G - g);
    ASSERT_TRUE(e.has_value());
    const ExtrapolatedPeak want = own_peak(full);
    SCOPED_TRACE(testing::Message() << "trial " << trial << " g " << g << " G " << G);
    EXPECT_EQ(e->total, want.total);
    for (int k = 0; k < kNumCategories; ++k) {
      EXPECT_EQ(e->at_peak[static_cast<size_t>(k)], want.at_peak[static_cast<size_t>(k)]) << k;
    }
    const ExtrapolatedPeak p1 = own_peak(one), p2 = own_peak(two);
    if (p1.total + (G - g) * (p2.total - p1.total) != want.total) ++peak_to_peak_wrong;
  }
  // The case that needs the pairing: the small timelines peak at different points.
  EXPECT_GT(peak_to_peak_wrong, 10);
}

TEST(ExtrapolatePeak, WithNoUnitsAddedIsTheTimelinesOwnPeak) {
  const Timeline t = make(3, Sizes{10, 20, 300, 40, 50, 600});
  const std::optional<ExtrapolatedPeak> e = extrapolate_peak(t, t, 0);
  ASSERT_TRUE(e.has_value());
  const ExtrapolatedPeak want = own_peak(t);
  EXPECT_EQ(e->total, want.total);
  EXPECT_EQ(e->at_peak, want.at_peak);
  // Nothing happening: the opening bytes.
  const Timeline quiet{t.open, {}};
  EXPECT_EQ(extrapolate_peak(quiet, quiet, 5)->at_peak, t.open);
}

TEST(ExtrapolatePeak, TimelinesThatDoNotPairUpGiveNothing) {
  const Sizes s{10, 20, 300, 40, 50, 600};
  const Timeline one = make(1, s), two = make(2, s);
  // The larger one shorter than the smaller: not one more unit.
  EXPECT_FALSE(extrapolate_peak(two, one, 3).has_value());
  // An event of the smaller one that the larger one lacks (of another category, then another op).
  Timeline odd = one;
  odd.events[1].category = Category::other;
  EXPECT_FALSE(extrapolate_peak(odd, two, 3).has_value());
  EXPECT_EQ(first_unpaired_event(odd, two), 1);
  odd = one;
  odd.events.back().op = "something else";
  EXPECT_FALSE(extrapolate_peak(odd, two, 3).has_value());
  EXPECT_EQ(first_unpaired_event(odd, two), static_cast<int64_t>(odd.events.size()) - 1);
  EXPECT_EQ(first_unpaired_event(one, two), -1);
}

}  // namespace
}  // namespace tgtest
