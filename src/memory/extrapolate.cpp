// Extrapolating a timeline's peak event by event (memory/extrapolate.h).
#include "memory/extrapolate.h"

#include <algorithm>
#include <functional>
#include <string>

namespace tilegrad {

namespace {

// What an event is, for pairing events of two timelines: equal keys are compared in full.
uint64_t key(const MemoryEvent& e) {
  uint64_t h = std::hash<std::string>{}(e.op);
  h ^= static_cast<uint64_t>(e.bytes) + 0x9e3779b97f4a7c15ull + (h << 6) + (h >> 2);
  h ^= (static_cast<uint64_t>(e.category) << 1 | (e.alloc ? 1u : 0u)) + (h << 6) + (h >> 2);
  return h;
}

bool same(const MemoryEvent& a, const MemoryEvent& b) {
  return a.alloc == b.alloc && a.category == b.category && a.bytes == b.bytes && a.op == b.op;
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
  auto match = [&](int64_t i, int64_t d) {
    const auto j = static_cast<size_t>(i + d);
    return ka[static_cast<size_t>(i)] == kb[j] && same(a[static_cast<size_t>(i)], b[j]);
  };
  const auto row = static_cast<size_t>(W + 1);
  auto at = [&](int64_t i, int64_t d) {
    return static_cast<size_t>(i) * row + static_cast<size_t>(d);
  };

  // An embedding of `small` in `large` maps event i to event i + d(i), d never decreasing: large's
  // extra events lie in the gaps, each gap where d grows a run of them. Only embeddings with the
  // fewest gaps are used — one per run of units, the unit taken out whole (or a rotation of it):
  // with more gaps, events of one unit could pair with events of two, whose bytes are no event's.
  // head[i, d]: the fewest gaps of an embedding of events 0..i with event i at i + d (a gap
  // before event 0 counts); kNever where there is none.
  constexpr uint16_t kNever = 0xffff;
  auto plus_one = [](uint16_t g) { return g == kNever ? kNever : static_cast<uint16_t>(g + 1); };
  std::vector<uint16_t> head(static_cast<size_t>(n1) * row, kNever);
  for (int64_t i = 0; i < n1; ++i) {
    uint16_t fewest_below = kNever;  // min over d' < d of head[i - 1, d']
    for (int64_t d = 0; d <= W; ++d) {
      const uint16_t same_gap = i == 0 ? (d == 0 ? 0 : kNever) : head[at(i - 1, d)];
      const uint16_t new_gap = i == 0 ? (d == 0 ? kNever : 1) : plus_one(fewest_below);
      if (i > 0) fewest_below = std::min(fewest_below, head[at(i - 1, d)]);
      if (match(i, d)) head[at(i, d)] = std::min(same_gap, new_gap);
    }
  }
  // Walking back, tail[d]: the fewest gaps of an embedding of events i..n1-1 with event i at
  // i + d (a gap after the last event counts). A pair (i, d) is on a fewest-gap embedding when
  // head + tail is the fewest of all: head[i, d] becomes that sum (row i of head is not read
  // again), and the pairs where it is the fewest are extrapolated.
  std::vector<uint16_t> tail(row, kNever), next(row, kNever);
  uint16_t fewest = kNever;
  for (int64_t i = n1 - 1; i >= 0; --i) {
    uint16_t fewest_above = kNever;  // min over d' > d of tail[i + 1, d']
    for (int64_t d = W; d >= 0; --d) {
      const uint16_t same_gap = i == n1 - 1 ? (d == W ? 0 : kNever) : next[static_cast<size_t>(d)];
      const uint16_t new_gap = i == n1 - 1 ? (d == W ? kNever : 1) : plus_one(fewest_above);
      if (i < n1 - 1) fewest_above = std::min(fewest_above, next[static_cast<size_t>(d)]);
      tail[static_cast<size_t>(d)] = match(i, d) ? std::min(same_gap, new_gap) : kNever;
      uint16_t& h = head[at(i, d)];
      const uint16_t t = tail[static_cast<size_t>(d)];
      h = h == kNever || t == kNever ? kNever : static_cast<uint16_t>(std::min(h + t, kNever - 1));
      fewest = std::min(fewest, h);
    }
    std::swap(tail, next);
  }
  if (fewest == kNever) return std::nullopt;
  // In the timeline's order, so that of equal totals the first one reached is the peak.
  for (int64_t i = 0; i < n1; ++i) {
    for (int64_t d = 0; d <= W; ++d) {
      if (head[at(i, d)] != fewest) continue;
      best.offer(a[static_cast<size_t>(i)].live_by_category,
                 b[static_cast<size_t>(i + d)].live_by_category, n);
    }
  }
  return best.peak;
}

}  // namespace tilegrad
