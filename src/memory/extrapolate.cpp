// Extrapolating a timeline's peak event by event (memory/extrapolate.h).
#include "memory/extrapolate.h"

#include <algorithm>
#include <cstdint>
#include <functional>
#include <string>

namespace tilegrad {

namespace {

// What an event is, for pairing events of two timelines: an allocation or a free, of a category,
// in an op. Equal keys are compared in full; the sizes are compared apart (pairs of different
// sizes are allowed, but cost more).
uint64_t key(const MemoryEvent& e) {
  const uint64_t h = std::hash<std::string>{}(e.op);
  return h ^ ((static_cast<uint64_t>(e.category) << 1 | (e.alloc ? 1u : 0u)) +
              0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2));
}

bool same_kind(const MemoryEvent& a, const MemoryEvent& b) {
  return a.alloc == b.alloc && a.category == b.category && a.op == b.op;
}

struct Best {
  ExtrapolatedPeak peak;
  bool any = false;

  // Extrapolates one pair of live-byte counts n units on and keeps it if it is the highest yet
  // (the first to reach a total, as the tracker's own peak is).
  void offer(const CategoryBytes& one, const CategoryBytes& two, int64_t n) {
    CategoryBytes b{};
    int64_t total = 0;
    for (int k = 0; k < kNumCategories; ++k) {
      b[static_cast<size_t>(k)] = one[static_cast<size_t>(k)] +
                                  n * (two[static_cast<size_t>(k)] - one[static_cast<size_t>(k)]);
      total += b[static_cast<size_t>(k)];
    }
    if (any && total <= peak.total) return;
    peak.at_peak = b;
    peak.total = total;
    any = true;
  }
};

}  // namespace

std::optional<ExtrapolatedPeak> extrapolate_peak(const Timeline& small, const Timeline& large,
                                                 int64_t n) {
  const auto& a = small.events;
  const auto& b = large.events;
  const int64_t n1 = static_cast<int64_t>(a.size());
  const int64_t W = static_cast<int64_t>(b.size()) - n1;  // offsets 0..W: large's extra events
  if (W < 0) return std::nullopt;
  Best best;
  best.offer(small.open, large.open, n);
  if (n1 == 0) return best.peak;

  std::vector<uint64_t> ka(a.size()), kb(b.size());
  for (size_t i = 0; i < a.size(); ++i) ka[i] = key(a[i]);
  for (size_t j = 0; j < b.size(); ++j) kb[j] = key(b[j]);
  const auto row = static_cast<size_t>(W + 1);
  auto at = [&](int64_t i, int64_t d) {
    return static_cast<size_t>(i) * row + static_cast<size_t>(d);
  };

  // An embedding of `small` in `large` maps event i to event i + d(i), d never decreasing: large's
  // extra events lie in the gaps, each gap where d grows a run of them. The embeddings used are
  // those with the fewest pairs of different sizes (sizes may differ only where they must: a
  // table with an entry per parameter grows with the units) and, among those, the fewest gaps —
  // one per run of units, the unit taken out whole (or a rotation of it): with more, events of
  // one unit could pair with parts of two, whose bytes are no event's.
  // Cost = size mismatches << 32 | gaps; kNever where no embedding reaches.
  using Cost = uint64_t;
  constexpr Cost kNever = ~Cost{0}, kGap = 1, kMismatch = Cost{1} << 32;
  auto plus = [](Cost c, Cost add) { return c == kNever ? kNever : c + add; };
  // The cost of pairing event i with i + d (kNever when they are not of one kind).
  auto pair_cost = [&](int64_t i, int64_t d) -> Cost {
    const auto j = static_cast<size_t>(i + d);
    const MemoryEvent& x = a[static_cast<size_t>(i)];
    if (ka[static_cast<size_t>(i)] != kb[j] || !same_kind(x, b[j])) return kNever;
    return x.bytes == b[j].bytes ? 0 : kMismatch;
  };
  // head[i, d]: the least cost of an embedding of events 0..i with event i at i + d (a gap before
  // event 0 counts).
  std::vector<Cost> head(static_cast<size_t>(n1) * row, kNever);
  for (int64_t i = 0; i < n1; ++i) {
    Cost least_below = kNever;  // min over d' < d of head[i - 1, d']
    for (int64_t d = 0; d <= W; ++d) {
      const Cost same_gap = i == 0 ? (d == 0 ? 0 : kNever) : head[at(i - 1, d)];
      const Cost new_gap = i == 0 ? (d == 0 ? kNever : kGap) : plus(least_below, kGap);
      if (i > 0) least_below = std::min(least_below, head[at(i - 1, d)]);
      const Cost c = pair_cost(i, d);
      if (c != kNever) head[at(i, d)] = plus(std::min(same_gap, new_gap), c);
    }
  }
  // Walking back, tail[d]: the least cost of an embedding of events i..n1-1 with event i at i + d
  // (a gap after the last event counts), without event i's own pairing. A pair (i, d) is on a
  // least-cost embedding when head + tail is the least of all: head[i, d] becomes that sum (row i
  // of head is not read again), and the pairs where it is the least are extrapolated.
  std::vector<Cost> tail(row, kNever), next(row, kNever);
  Cost least = kNever;
  for (int64_t i = n1 - 1; i >= 0; --i) {
    Cost least_above = kNever;  // min over d' > d of next[d'] (tail of i + 1)
    for (int64_t d = W; d >= 0; --d) {
      const Cost same_gap = i == n1 - 1 ? (d == W ? 0 : kNever) : next[static_cast<size_t>(d)];
      const Cost new_gap = i == n1 - 1 ? (d == W ? kNever : kGap) : plus(least_above, kGap);
      if (i < n1 - 1) least_above = std::min(least_above, next[static_cast<size_t>(d)]);
      const Cost c = pair_cost(i, d);
      const Cost after = std::min(same_gap, new_gap);
      tail[static_cast<size_t>(d)] = c == kNever ? kNever : plus(after, c);
      Cost& h = head[at(i, d)];
      h = h == kNever || after == kNever ? kNever : h + after;
      least = std::min(least, h);
    }
    std::swap(tail, next);
  }
  if (least == kNever) return std::nullopt;
  // In the timeline's order, so that of equal totals the first one reached is the peak.
  for (int64_t i = 0; i < n1; ++i) {
    for (int64_t d = 0; d <= W; ++d) {
      if (head[at(i, d)] != least) continue;
      best.offer(a[static_cast<size_t>(i)].live_by_category,
                 b[static_cast<size_t>(i + d)].live_by_category, n);
    }
  }
  return best.peak;
}

int64_t first_unpaired_event(const Timeline& small, const Timeline& large) {
  size_t j = 0;
  for (size_t i = 0; i < small.events.size(); ++i) {
    while (j < large.events.size() && !same_kind(small.events[i], large.events[j])) ++j;
    if (j == large.events.size()) return static_cast<int64_t>(i);
    ++j;
  }
  return -1;
}

}  // namespace tilegrad
